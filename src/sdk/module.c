/* The module SDK (include/tinyedge/module.h) over the rings (hub/ring.h)
 * and the message codec (hub/wire.h).
 *
 * Trust. The module trusts the daemon (it is the module's supervisor) but
 * still never reads outside the mapping: the in ring is read zero-copy
 * with te_ring_peek, and te_msg_decode bounds every field by the record.
 *
 * Memory. Everything is sized in te_module_open: the property arrays for
 * both directions and one scratch buffer for the NUL-terminated copies of
 * a received message's strings. The strings of a record lie inside its
 * payload without overlapping, so their bytes total at most the ring's
 * largest payload; add one NUL per string. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "hub/ring.h"
#include "hub/wire.h"
#include "tinyedge/module.h"

_Static_assert(TE_MODULE_PROPS_MAX == TE_MSG_PROPS_MAX &&
	       TE_MODULE_BODY_MAX == TE_MSG_BODY_MAX &&
	       TE_MODULE_STR_MAX == TE_WIRE_STR_MAX, "public limits");

/* Strings a received message shows: five system properties, then a key
 * and a value per application property. */
#define RX_STRS (5 + 2 * TE_MSG_PROPS_MAX)
#define SCRATCH_MAX ((size_t)RX_STRS * (TE_WIRE_STR_MAX + 1))

struct te_module {
	struct te_ringset rs;       /* module side: tx = out, rx = in */
	int memfd;                  /* inherited; never closed here */
	int efd_out;                /* memfd + 1: we write it to wake the daemon */
	int efd_in;                 /* memfd + 2: the daemon writes it to wake us */
	int notify_fd;              /* TINYEDGE_NOTIFY_FD, or -1 */
	te_input_fn fn;
	void *arg;
	bool dispatching;           /* inside te_module_dispatch (reentry guard) */
	char *name;
	char *scratch;              /* NUL-terminated copies for the callback */
	size_t scratch_cap;
	struct te_prop tx_props[TE_MSG_PROPS_MAX];
	struct te_prop rx_props[TE_MSG_PROPS_MAX];
	struct te_property user_props[TE_MSG_PROPS_MAX];
};

/* ---- open / close ----------------------------------------------------------- */

/* A decimal fd number from the environment. -ENOENT if unset, -EINVAL if
 * not a number in 0..max. */
static int env_fd(const char *var, long max, int *fd)
{
	const char *s = getenv(var);
	char *end;
	long v;

	if (!s)
		return -ENOENT;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > max)
		return -EINVAL;
	*fd = (int)v;
	return 0;
}

/* The fd must be open; keep it out of programs the module executes. */
static int fd_adopt(int fd)
{
	int flags = fcntl(fd, F_GETFD);

	if (flags < 0)
		return -EINVAL;
	if (!(flags & FD_CLOEXEC))
		fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
	return 0;
}

static int module_fds(struct te_module *m)
{
	int err = env_fd("TINYEDGE_IPC_FD", INT_MAX - 2, &m->memfd);

	if (err)
		return err;
	m->efd_out = m->memfd + 1;
	m->efd_in = m->memfd + 2;
	m->notify_fd = -1;
	err = env_fd("TINYEDGE_NOTIFY_FD", INT_MAX, &m->notify_fd);
	if (err == -ENOENT)
		err = 0;
	if (!err)
		err = fd_adopt(m->memfd);
	if (!err)
		err = fd_adopt(m->efd_out);
	if (!err)
		err = fd_adopt(m->efd_in);
	return err;
}

/* Every attach failure but memory is a bad fd or mapping. */
static int module_attach(struct te_module *m)
{
	int err = te_ring_attach(m->memfd, true, &m->rs);

	if (err)
		return err == -ENOMEM ? -ENOMEM : -EINVAL;
	m->scratch_cap = (size_t)te_ring_max_payload(te_ringset_rx(&m->rs)) + RX_STRS;
	if (m->scratch_cap > SCRATCH_MAX)
		m->scratch_cap = SCRATCH_MAX;
	m->scratch = malloc(m->scratch_cap);
	return m->scratch ? 0 : -ENOMEM;
}

int te_module_open(te_module **out)
{
	const char *name = getenv("IOTEDGE_MODULEID");
	struct te_module *m = calloc(1, sizeof(*m));
	int err;

	if (!m)
		return -ENOMEM;
	err = module_fds(m);
	if (err)
		goto fail;
	err = module_attach(m);
	if (err)
		goto fail;
	m->name = strdup(name ? name : "");
	if (!m->name) {
		err = -ENOMEM;
		goto fail;
	}
	*out = m;
	return 0;
fail:
	te_module_close(m);
	return err;
}

void te_module_close(te_module *m)
{
	if (!m)
		return;
	te_ring_close(&m->rs);
	free(m->scratch);
	free(m->name);
	free(m);
}

const char *te_module_name(const te_module *m)
{
	return m->name;
}

int te_module_fd(const te_module *m)
{
	return m->efd_in;
}

void te_module_on_input(te_module *m, te_input_fn fn, void *arg)
{
	m->fn = fn;
	m->arg = arg;
}

/* ---- send ---------------------------------------------------------------------- */

/* NULL stays absent; a string over the limit is reported as such without
 * scanning the rest of it. */
static int str_in(struct te_str *s, const char *c)
{
	size_t n = c ? strnlen(c, TE_WIRE_STR_MAX + 1) : 0;

	s->p = c;
	s->n = (uint32_t)n;
	return n > TE_WIRE_STR_MAX ? -EMSGSIZE : 0;
}

static int props_in(struct te_module *m, const struct te_message *msg)
{
	int err = 0;

	if (msg->nprops > TE_MSG_PROPS_MAX)
		return -EMSGSIZE;
	if (msg->nprops && !msg->props)
		return -EINVAL;
	for (size_t i = 0; i < msg->nprops && !err; i++) {
		const struct te_property *p = &msg->props[i];

		if (!p->key || !p->value || !*p->key)
			return -EINVAL;
		err = str_in(&m->tx_props[i].key, p->key);
		if (!err)
			err = str_in(&m->tx_props[i].val, p->value);
	}
	return err;
}

/* Fill the codec's view of msg; it points into the caller's memory. */
static int msg_in(struct te_module *m, const char *output,
		  const struct te_message *msg, struct te_msg *tm)
{
	int err;

	if (!output || !*output)
		return -EINVAL;
	if (msg->body_len > TE_MSG_BODY_MAX)
		return -EMSGSIZE;
	if (msg->body_len && !msg->body)
		return -EINVAL;
	memset(tm, 0, sizeof(*tm));
	tm->origin = TE_ORIGIN_MODULE;
	tm->body = msg->body;
	tm->bodylen = (uint32_t)msg->body_len;
	tm->props = m->tx_props;
	tm->nprops = (uint32_t)msg->nprops;
	err = props_in(m, msg);
	err = err ? err : str_in(&tm->sys[TE_SYS_OUTPUT_NAME], output);
	err = err ? err : str_in(&tm->sys[TE_SYS_MESSAGE_ID], msg->message_id);
	err = err ? err : str_in(&tm->sys[TE_SYS_CORRELATION_ID], msg->correlation_id);
	err = err ? err : str_in(&tm->sys[TE_SYS_CONTENT_TYPE], msg->content_type);
	return err ? err : str_in(&tm->sys[TE_SYS_CONTENT_ENCODING], msg->content_encoding);
}

static int codec_err(int err)
{
	return err == -TE_ELIMIT ? -EMSGSIZE : -EINVAL;
}

/* Best effort: the record is committed either way. The counter cannot
 * realistically overflow, and a dead daemon is noticed by other means. */
static void efd_signal(int fd)
{
	uint64_t one = 1;
	ssize_t n;

	do
		n = write(fd, &one, sizeof(one));
	while (n < 0 && errno == EINTR);
}

int te_module_send(te_module *m, const char *output, const struct te_message *msg)
{
	struct te_ring *tx;
	struct te_msg tm;
	size_t need = 0;
	void *p;
	int err;

	if (!m || !msg)
		return -EINVAL;
	tx = te_ringset_tx(&m->rs);
	err = msg_in(m, output, msg, &tm);
	if (err)
		return err;
	/* Size it first (capacity 0 writes nothing), then encode in place. */
	err = te_msg_encode(&tm, NULL, 0, &need);
	if (err != -TE_ENOSPACE)
		return codec_err(err);
	if (need > te_ring_max_payload(tx))
		return -EMSGSIZE;
	p = te_ring_reserve(tx, (uint32_t)need);
	if (!p)
		return te_ring_broken(tx) ? -EPROTO : -EAGAIN;
	err = te_msg_encode(&tm, p, need, &need);
	if (err) {  /* the caller changed msg under us */
		te_ring_commit_len(tx, 0);
		return codec_err(err);
	}
	te_ring_commit(tx);
	if (te_ring_needs_wakeup(tx))
		efd_signal(m->efd_out);
	return 0;
}

/* ---- receive --------------------------------------------------------------------- */

struct scratch {
	char *p;
	size_t left;
};

/* A NUL-terminated copy of s (NULL if absent). -EPROTO if it does not fit,
 * which the sizing in te_module_open rules out for a well-formed record. */
static int str_out(struct scratch *sc, const struct te_str *s, const char **out)
{
	*out = NULL;
	if (!s->p)
		return 0;
	if (s->n >= sc->left)
		return -EPROTO;
	memcpy(sc->p, s->p, s->n);
	sc->p[s->n] = '\0';
	*out = sc->p;
	sc->p += s->n + 1;
	sc->left -= s->n + 1;
	return 0;
}

static int props_out(struct te_module *m, struct scratch *sc,
		     const struct te_msg *tm)
{
	int err = 0;

	for (uint32_t i = 0; i < tm->nprops && !err; i++) {
		err = str_out(sc, &tm->props[i].key, &m->user_props[i].key);
		if (!err)
			err = str_out(sc, &tm->props[i].val, &m->user_props[i].value);
	}
	return err;
}

/* The callback's view of a decoded record: strings copied, body in place. */
static int msg_out(struct te_module *m, const struct te_msg *tm,
		   struct te_message *um)
{
	struct scratch sc = { m->scratch, m->scratch_cap };
	int err;

	memset(um, 0, sizeof(*um));
	um->body = tm->body;
	um->body_len = tm->bodylen;
	um->props = m->user_props;
	um->nprops = tm->nprops;
	err = str_out(&sc, &tm->sys[TE_SYS_INPUT_NAME], &um->input);
	err = err ? err : str_out(&sc, &tm->sys[TE_SYS_MESSAGE_ID], &um->message_id);
	err = err ? err : str_out(&sc, &tm->sys[TE_SYS_CORRELATION_ID], &um->correlation_id);
	err = err ? err : str_out(&sc, &tm->sys[TE_SYS_CONTENT_TYPE], &um->content_type);
	err = err ? err : str_out(&sc, &tm->sys[TE_SYS_CONTENT_ENCODING], &um->content_encoding);
	return err ? err : props_out(m, &sc, tm);
}

static int deliver(struct te_module *m, const void *rec, uint32_t len)
{
	struct te_message um;
	struct te_msg tm;

	if (te_msg_decode(rec, len, &tm, m->rx_props, TE_MSG_PROPS_MAX))
		return -EPROTO;
	if (msg_out(m, &tm, &um))
		return -EPROTO;
	m->fn(m, &um, m->arg);
	return 0;
}

/* Deliver what is in the ring now. The record is released only after the
 * callback returns: the body it saw points into it. */
static int drain(struct te_module *m)
{
	struct te_ring *rx = te_ringset_rx(&m->rs);
	const void *rec;
	uint32_t len;
	int n = 0, got, err;

	for (;;) {
		got = te_ring_peek(rx, &rec, &len);
		if (got == 0)
			return n;
		if (got < 0)
			return -EPROTO;
		err = deliver(m, rec, len);
		te_ring_release(rx);
		if (err)
			return err;
		n++;
	}
}

/* Drain until the ring is empty with need_wakeup set: from then on the
 * daemon signals efd_in for the next record, so the fd is a valid thing
 * to poll. A corrupt ring makes prepare_wait say "not empty", and drain
 * then reports it. */
static int drain_armed(struct te_module *m)
{
	struct te_ring *rx = te_ringset_rx(&m->rs);
	int total = 0, n;

	do {
		n = drain(m);
		if (n < 0)
			return n;
		total += n;
	} while (!te_ring_prepare_wait(rx));
	return total;
}

/* Consume a pending wakeup without blocking; we are its only reader, so a
 * read after POLLIN cannot block even on a blocking fd (whose flags we
 * must not change: the open file is shared with the daemon). */
static void efd_reset(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint64_t v;

	if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN))
		(void)!read(fd, &v, sizeof(v));
}

/* Sleep until the daemon signals or the timeout passes. 0 or -errno. */
static int efd_wait(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint64_t v;

	if (poll(&pfd, 1, timeout_ms < 0 ? -1 : timeout_ms) < 0)
		return -errno;
	if (pfd.revents & POLLIN)
		(void)!read(fd, &v, sizeof(v));
	return 0;
}

static int dispatch(struct te_module *m, int timeout_ms)
{
	int n;

	/* Before draining: a signal arriving after this is for records we
	 * may not have seen, and must stay pending. */
	efd_reset(m->efd_in);
	n = drain_armed(m);
	if (n || !timeout_ms)
		return n;
	n = efd_wait(m->efd_in, timeout_ms);
	return n ? n : drain_armed(m);
}

int te_module_dispatch(te_module *m, int timeout_ms)
{
	int n;

	if (!m->fn)
		return -EINVAL;
	if (m->dispatching)
		return -EBUSY;
	m->dispatching = true;
	n = dispatch(m, timeout_ms);
	m->dispatching = false;
	return n;
}

/* ---- heartbeat ---------------------------------------------------------------- */

int te_module_heartbeat(te_module *m)
{
	ssize_t n;

	if (m->notify_fd < 0)
		return 0;
	do
		n = write(m->notify_fd, "\n", 1);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}
