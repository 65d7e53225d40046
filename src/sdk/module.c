/* The module SDK (include/tinyedge/module.h) over the rings (hub/ring.h)
 * and the record codecs (hub/wire.h).
 *
 * Trust. The module trusts the daemon (it is the module's supervisor) but
 * still never reads outside the mapping: the in ring is read zero-copy
 * with te_ring_peek, and the decoders bound every field by the record.
 *
 * Memory. Everything is sized in te_module_open: the property arrays for
 * both directions, one scratch buffer for the NUL-terminated copies of a
 * received record's strings, and the method response buffer, which is
 * also the one slot for a result waiting for room in the out ring. The
 * strings of a record lie inside its payload without overlapping, so
 * their bytes total at most the ring's largest payload; add one NUL per
 * string.
 *
 * The out ring has two writers, sending and dispatch's method results,
 * possibly on two threads (module.h, Threads): its producer is taken with
 * an atomic flag, never waited for. */
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

_Static_assert(TE_MODULE_TWIN_MAX == TE_WIRE_TWIN_MAX &&
	       TE_MODULE_METHOD_MAX == TE_WIRE_METHOD_MAX, "public twin limits");

/* Strings a received message shows: five system properties, then a key
 * and a value per application property. */
#define RX_STRS (5 + 2 * TE_MSG_PROPS_MAX)
#define SCRATCH_MAX ((size_t)RX_STRS * (TE_WIRE_STR_MAX + 1))
/* A control record shows its name and body (a method's are the largest). */
_Static_assert(SCRATCH_MAX >= TE_WIRE_STR_MAX + TE_WIRE_METHOD_MAX + 2 &&
	       TE_WIRE_METHOD_MAX >= TE_WIRE_TWIN_FULL_MAX, "scratch fits a control record");

/* The answers the SDK gives itself. The smallest ring's response buffer
 * holds them. */
static const char no_handler[] = "{\"message\":\"no method handler\"}";
static const char resp_overflow[] = "{\"message\":\"method response too long\"}";
_Static_assert(sizeof(resp_overflow) <= TE_WIRE_RING_MIN / 2 - TE_WIRE_REC_HDR -
	       TE_WIRE_CTL_HDR, "fits the smallest ring");

#define RETRY_MS 1   /* how long dispatch waits while a result waits */
#define BLOCKED 1    /* a method call must wait for the pending result */

/* A method result, in resp[0..len), waiting for room in the out ring. */
struct result {
	bool due;
	uint32_t id;
	int32_t status;
	size_t len;
};

struct te_module {
	struct te_ringset rs;       /* module side: tx = out, rx = in */
	int memfd;                  /* inherited; never closed here */
	int efd_out;                /* memfd + 1: we write it to wake the daemon */
	int efd_in;                 /* memfd + 2: the daemon writes it to wake us */
	int notify_fd;              /* TINYEDGE_NOTIFY_FD, or -1 */
	te_input_fn fn;
	void *arg;
	te_twin_fn twin_fn;
	void *twin_arg;
	te_ack_fn ack_fn;
	void *ack_arg;
	te_method_fn method_fn;
	void *method_arg;
	bool dispatching;           /* inside te_module_dispatch (reentry guard) */
	bool tx_busy;               /* the out ring's producer is taken (atomic) */
	uint32_t seq;               /* request ids handed out (atomic) */
	uint64_t dropped;           /* messages without an input callback */
	struct result res;
	char *resp;                 /* method response, resp_cap bytes */
	size_t resp_cap;
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
	m->resp_cap = te_ring_max_payload(te_ringset_tx(&m->rs)) - TE_WIRE_CTL_HDR;
	if (m->resp_cap > TE_WIRE_METHOD_MAX)
		m->resp_cap = TE_WIRE_METHOD_MAX;
	m->scratch = malloc(m->scratch_cap);
	m->resp = malloc(m->resp_cap);
	return m->scratch && m->resp ? 0 : -ENOMEM;
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
	free(m->resp);
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

void te_module_on_twin(te_module *m, te_twin_fn fn, void *arg)
{
	m->twin_fn = fn;
	m->twin_arg = arg;
}

void te_module_on_ack(te_module *m, te_ack_fn fn, void *arg)
{
	m->ack_fn = fn;
	m->ack_arg = arg;
}

void te_module_on_method(te_module *m, te_method_fn fn, void *arg)
{
	m->method_fn = fn;
	m->method_arg = arg;
}

uint64_t te_module_dropped(const te_module *m)
{
	return m->dropped;
}

/* ---- the out ring --------------------------------------------------------------- */

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

/* Take the producer, or fail at once if the other writer has it. Acquire
 * and release: the ring's private producer state passes with the flag. */
static bool tx_lock(struct te_module *m)
{
	return !__atomic_test_and_set(&m->tx_busy, __ATOMIC_ACQUIRE);
}

static void tx_unlock(struct te_module *m)
{
	__atomic_clear(&m->tx_busy, __ATOMIC_RELEASE);
}

/* Room for a need-byte payload at *p, with the producer taken: the caller
 * writes it, then calls tx_commit. -EMSGSIZE, -EAGAIN, -EPROTO. */
static int tx_reserve(struct te_module *m, size_t need, void **p)
{
	struct te_ring *tx = te_ringset_tx(&m->rs);

	if (need > te_ring_max_payload(tx))
		return -EMSGSIZE;
	if (!tx_lock(m))
		return -EAGAIN;
	*p = te_ring_reserve(tx, (uint32_t)need);
	if (*p)
		return 0;
	tx_unlock(m);
	return te_ring_broken(tx) ? -EPROTO : -EAGAIN;
}

/* Publish len bytes of the reservation (0 abandons it), wake the daemon if
 * it asked, and free the producer. */
static void tx_commit(struct te_module *m, size_t len)
{
	struct te_ring *tx = te_ringset_tx(&m->rs);

	te_ring_commit_len(tx, (uint32_t)len);
	if (len && te_ring_needs_wakeup(tx))
		efd_signal(m->efd_out);
	tx_unlock(m);
}

static int codec_err(int err)
{
	return err == -TE_ELIMIT ? -EMSGSIZE : -EINVAL;
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

int te_module_send(te_module *m, const char *output, const struct te_message *msg)
{
	struct te_msg tm;
	size_t need = 0;
	void *p;
	int err;

	if (!m || !msg)
		return -EINVAL;
	err = msg_in(m, output, msg, &tm);
	if (err)
		return err;
	/* Size it first (capacity 0 writes nothing), then encode in place. */
	err = te_msg_encode(&tm, NULL, 0, &need);
	if (err != -TE_ENOSPACE)
		return codec_err(err);
	err = tx_reserve(m, need, &p);
	if (err)
		return err;
	err = te_msg_encode(&tm, p, need, &need);  /* fails if msg changed under us */
	tx_commit(m, err ? 0 : need);
	return err ? codec_err(err) : 0;
}

/* ---- twin requests and method results -------------------------------------------- */

/* Encode c into the out ring. */
static int ctl_send(struct te_module *m, const struct te_ctlrec *c)
{
	size_t need = 0;
	void *p;
	int err = te_ctlrec_encode(c, NULL, 0, &need);

	if (err != -TE_ENOSPACE)
		return codec_err(err);
	err = tx_reserve(m, need, &p);
	if (err)
		return err;
	err = te_ctlrec_encode(c, p, need, &need);
	tx_commit(m, err ? 0 : need);
	return err ? codec_err(err) : 0;
}

/* 1..INT_MAX, then 1 again: positive as an int, never 0 on the wire. */
static uint32_t request_id(struct te_module *m)
{
	return __atomic_fetch_add(&m->seq, 1, __ATOMIC_RELAXED) % INT_MAX + 1;
}

int te_module_twin_get(te_module *m)
{
	struct te_ctlrec c = { .kind = TE_WIRE_KIND_TWIN_GET };

	if (!m)
		return -EINVAL;
	c.id = request_id(m);
	return ctl_send(m, &c);
}

static bool json_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The light check: first and last non-blank characters are braces. */
static bool object_shaped(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && json_blank(s[i]))
		i++;
	while (n > i && json_blank(s[n - 1]))
		n--;
	return n - i >= 2 && s[i] == '{' && s[n - 1] == '}';
}

int te_module_twin_report(te_module *m, const char *patch_json)
{
	struct te_ctlrec c = { .kind = TE_WIRE_KIND_REPORTED };
	size_t n;
	int err;

	if (!m || !patch_json)
		return -EINVAL;
	n = strnlen(patch_json, TE_WIRE_TWIN_MAX + 1);
	if (n > TE_WIRE_TWIN_MAX)
		return -EMSGSIZE;
	if (!object_shaped(patch_json, n))
		return -EINVAL;
	c.id = request_id(m);
	c.body = patch_json;
	c.bodylen = (uint32_t)n;
	err = ctl_send(m, &c);
	return err ? err : (int)c.id;
}

/* Write the waiting method result, if any. 0 (sent, or none waiting),
 * -EAGAIN (it keeps waiting), -EPROTO. */
static int result_flush(struct te_module *m)
{
	struct te_ctlrec c = {
		.kind = TE_WIRE_KIND_METHOD_RESULT,
		.id = m->res.id,
		.status = (uint32_t)m->res.status,
		.body = m->resp,
		.bodylen = (uint32_t)m->res.len,
	};
	int err;

	if (!m->res.due)
		return 0;
	err = ctl_send(m, &c);
	if (!err)
		m->res.due = false;
	return err;
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

static int on_message(struct te_module *m, const void *rec, uint32_t len)
{
	struct te_message um;
	struct te_msg tm;

	if (te_msg_decode(rec, len, &tm, m->rx_props, TE_MSG_PROPS_MAX))
		return -EPROTO;
	if (!m->fn) {
		m->dropped++;
		return 0;
	}
	if (msg_out(m, &tm, &um))
		return -EPROTO;
	m->fn(m, &um, m->arg);
	return 0;
}

/* A NUL-terminated copy of c's body ("" if empty). */
static int body_out(struct scratch *sc, const struct te_ctlrec *c, const char **out)
{
	struct te_str b = { (const char *)c->body, c->bodylen };

	return str_out(sc, &b, out);
}

static int on_twin(struct te_module *m, const struct te_ctlrec *c)
{
	struct scratch sc = { m->scratch, m->scratch_cap };
	const char *json;

	if (!m->twin_fn)
		return 0;
	if (body_out(&sc, c, &json))
		return -EPROTO;
	m->twin_fn(m, c->kind == TE_WIRE_KIND_TWIN ? TE_TWIN_FULL : TE_TWIN_DESIRED_PATCH,
		   json, c->bodylen, m->twin_arg);
	return 0;
}

static int on_ack(struct te_module *m, const struct te_ctlrec *c)
{
	struct scratch sc = { m->scratch, m->scratch_cap };
	const char *text;

	if (c->id > INT_MAX)
		return -EPROTO;  /* not an id we hand out */
	if (!m->ack_fn)
		return 0;
	if (body_out(&sc, c, &text))
		return -EPROTO;
	m->ack_fn(m, (int)c->id, (int)c->status, text, m->ack_arg);
	return 0;
}

/* The SDK's own answer, in the response buffer. */
static void result_text(struct te_module *m, int32_t status, const char *json)
{
	m->res.status = status;
	m->res.len = strlen(json);
	memcpy(m->resp, json, m->res.len);
}

/* Run the handler into the result slot (free on entry). */
static void method_call(struct te_module *m, const char *name,
			const char *payload, size_t len)
{
	size_t n = 0;

	if (!m->method_fn) {
		result_text(m, TE_WIRE_STATUS_NOT_IMPLEMENTED, no_handler);
		return;
	}
	m->res.status = m->method_fn(m, name, payload, len, m->resp, m->resp_cap,
				     &n, m->method_arg);
	if (n > m->resp_cap)
		result_text(m, TE_WIRE_STATUS_ERROR, resp_overflow);
	else
		m->res.len = n;
}

/* A call: answered now if the out ring has room, else its result waits.
 * BLOCKED while an earlier result still waits: the call stays in the ring. */
static int on_method(struct te_module *m, const struct te_ctlrec *c)
{
	struct scratch sc = { m->scratch, m->scratch_cap };
	const char *name, *payload;
	int err = result_flush(m);

	if (err)
		return err == -EAGAIN ? BLOCKED : err;
	if (str_out(&sc, &c->name, &name) || body_out(&sc, c, &payload))
		return -EPROTO;
	m->res = (struct result){ .due = true, .id = c->id };
	method_call(m, name, payload, c->bodylen);
	err = result_flush(m);
	return err == -EAGAIN ? 0 : err;
}

/* One record of any kind to its callback: 0, BLOCKED or -EPROTO (a record
 * that is not the grammar, or of a kind only modules send). */
static int on_record(struct te_module *m, const void *rec, uint32_t len)
{
	struct te_ctlrec c;

	if (te_wire_kind(rec, len) == TE_WIRE_KIND_MSG)
		return on_message(m, rec, len);
	if (te_ctlrec_decode(rec, len, &c))
		return -EPROTO;
	switch (c.kind) {
	case TE_WIRE_KIND_TWIN:
	case TE_WIRE_KIND_DESIRED:
		return on_twin(m, &c);
	case TE_WIRE_KIND_ACK:
		return on_ack(m, &c);
	case TE_WIRE_KIND_METHOD:
		return on_method(m, &c);
	default:
		return -EPROTO;
	}
}

/* Handle what is in the ring now, up to a call that must wait (*blocked).
 * A record is released only after its callback returns: a message body
 * the callback saw points into it. */
static int drain(struct te_module *m, bool *blocked)
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
		err = on_record(m, rec, len);
		if (err == BLOCKED) {
			*blocked = true;
			return n;
		}
		te_ring_release(rx);
		if (err)
			return err;
		n++;
	}
}

/* Drain until the ring is empty with need_wakeup set: from then on the
 * daemon signals efd_in for the next record, so the fd is a valid thing
 * to poll. A corrupt ring makes prepare_wait say "not empty", and drain
 * then reports it. Blocked, the ring is left as it is (not armed). */
static int drain_armed(struct te_module *m)
{
	struct te_ring *rx = te_ringset_rx(&m->rs);
	bool blocked = false;
	int total = 0, n;

	do {
		n = drain(m, &blocked);
		if (n < 0)
			return n;
		total += n;
	} while (!blocked && !te_ring_prepare_wait(rx));
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

/* Retry the waiting result, then handle the ring. */
static int flush_drain(struct te_module *m)
{
	int err = result_flush(m);

	if (err && err != -EAGAIN)
		return err;
	return drain_armed(m);
}

static int dispatch(struct te_module *m, int timeout_ms)
{
	int n;

	/* Before draining: a signal arriving after this is for records we
	 * may not have seen, and must stay pending. */
	efd_reset(m->efd_in);
	n = flush_drain(m);
	if (n || !timeout_ms)
		return n;
	if (m->res.due && (timeout_ms < 0 || timeout_ms > RETRY_MS))
		timeout_ms = RETRY_MS;
	n = efd_wait(m->efd_in, timeout_ms);
	return n ? n : flush_drain(m);
}

int te_module_dispatch(te_module *m, int timeout_ms)
{
	int n;

	if (!m->fn && !m->twin_fn && !m->ack_fn && !m->method_fn)
		return -EINVAL;
	if (m->dispatching)
		return -EBUSY;
	m->dispatching = true;
	n = dispatch(m, timeout_ms);
	/* The daemon does not know we wait for room: keep the fd readable. */
	if (m->res.due && n >= 0)
		efd_signal(m->efd_in);
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
