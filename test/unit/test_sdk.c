/* The module SDK (sdk/module.c): messages. Twins and direct methods are
 * test_sdk_twin.c.
 *
 * The test process plays the daemon (sdk_daemon.h): streaming tests fork
 * a module process and read and write the rings with the daemon's calls,
 * checking every record; validation and error paths run in-process, with
 * the parent as both sides. */
#include <sched.h>
#include <sys/mman.h>

#include "core/err.h"
#include "hub/wire.h"
#include "sdk_daemon.h"
#include "tap.h"

/* ---- helpers ------------------------------------------------------------- */

static uint32_t hash32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

/* Body of message i: 1..max bytes. */
static size_t body_gen(uint32_t i, uint8_t *p, size_t max)
{
	size_t len = 1 + hash32(i) % max;

	for (size_t j = 0; j < len; j++)
		p[j] = (uint8_t)(i * 131 + j * 7 + 1);
	return len;
}

static bool body_ok(uint32_t i, const void *p, size_t len, size_t max)
{
	uint8_t want[512];

	return len == body_gen(i, want, max) && memcmp(p, want, len) == 0;
}

static bool str_is(const struct te_str *s, const char *c)
{
	if (!c)
		return s->p == NULL;
	return s->p && s->n == strlen(c) && memcmp(s->p, c, s->n) == 0;
}

/* The next record of the module's out ring, decoded into m (views into
 * buf). 1, 0 on timeout, or a negative code. */
static int daemon_recv(struct daemon *d, uint8_t *buf, uint32_t cap,
		       struct te_msg *m, struct te_prop *props)
{
	uint32_t len;
	int got = daemon_read(d, buf, cap, &len);

	if (got != 1)
		return got;
	got = te_msg_decode(buf, len, m, props, TE_MSG_PROPS_MAX);
	return got ? got : 1;
}

/* Input record i, as the daemon would route it to "in1". */
static int daemon_send_input(struct daemon *d, uint32_t i)
{
	char mid[32], cid[32], keys[4][16], vals[4][16];
	uint8_t body[512], buf[2048];
	struct te_prop props[4];
	struct te_msg m;
	size_t len;

	memset(&m, 0, sizeof(m));
	m.origin = TE_ORIGIN_MODULE;
	snprintf(mid, sizeof(mid), "m%u", i);
	snprintf(cid, sizeof(cid), "c%u", i);
	m.sys[TE_SYS_INPUT_NAME] = (struct te_str){ "in1", 3 };
	m.sys[TE_SYS_MESSAGE_ID] = (struct te_str){ mid, (uint32_t)strlen(mid) };
	if (i % 2)
		m.sys[TE_SYS_CORRELATION_ID] = (struct te_str){ cid, (uint32_t)strlen(cid) };
	if (i % 3 == 0)
		m.sys[TE_SYS_CONTENT_ENCODING] = (struct te_str){ "utf-8", 5 };
	m.nprops = i % 5;
	for (uint32_t k = 0; k < m.nprops; k++) {
		snprintf(keys[k], sizeof(keys[k]), "k%u", k);
		snprintf(vals[k], sizeof(vals[k]), "v%u_%u", i, k);
		props[k].key = (struct te_str){ keys[k], (uint32_t)strlen(keys[k]) };
		props[k].val = (struct te_str){ vals[k], (uint32_t)strlen(vals[k]) };
	}
	m.props = props;
	m.bodylen = (uint32_t)body_gen(i, body, 300);
	m.body = body;
	if (te_msg_encode(&m, buf, sizeof(buf), &len))
		return -EINVAL;
	return daemon_put(d, buf, len);
}

/* Module message i of the send test. */
static void out_msg(uint32_t i, struct te_message *msg, uint8_t *body,
		    char *seq, size_t seqcap, struct te_property *props)
{
	memset(msg, 0, sizeof(*msg));
	snprintf(seq, seqcap, "%u", i);
	props[0] = (struct te_property){ "seq", seq };
	props[1] = (struct te_property){ "empty", "" };
	msg->props = props;
	msg->nprops = i % 2 ? 2 : 1;
	msg->body = body;
	msg->body_len = body_gen(i, body, 300);
	msg->message_id = seq;
	msg->content_type = i % 4 == 0 ? "application/json" : NULL;
}

static bool out_msg_ok(uint32_t i, const struct te_msg *m, const char *output)
{
	char seq[16];

	snprintf(seq, sizeof(seq), "%u", i);
	return m->origin == TE_ORIGIN_MODULE &&
	       str_is(&m->sys[TE_SYS_OUTPUT_NAME], output) &&
	       str_is(&m->sys[TE_SYS_MESSAGE_ID], seq) &&
	       str_is(&m->sys[TE_SYS_CONTENT_TYPE],
		      i % 4 == 0 ? "application/json" : NULL) &&
	       str_is(&m->sys[TE_SYS_INPUT_NAME], NULL) &&
	       m->nprops == (i % 2 ? 2u : 1u) &&
	       str_is(&m->props[0].key, "seq") && str_is(&m->props[0].val, seq) &&
	       (m->nprops < 2 || (str_is(&m->props[1].key, "empty") &&
				  str_is(&m->props[1].val, ""))) &&
	       body_ok(i, m->body, m->bodylen, 300);
}

/* Send, retrying while the ring is full. */
static int send_retry(te_module *m, const char *output, const struct te_message *msg)
{
	int err;

	while ((err = te_module_send(m, output, msg)) == -EAGAIN)
		sched_yield();
	return err;
}

/* ---- 1: a stream of sends ---------------------------------------------------- */

#define NSEND 1000

static int child_send(void *arg)
{
	struct te_property props[2];
	struct te_message msg;
	uint8_t body[512];
	char seq[16];
	te_module *m;

	CHILD_CHECK(te_module_open(&m) == 0, 2);
	CHILD_CHECK(strcmp(te_module_name(m), "child") == 0, 3);
	for (uint32_t i = 0; i < NSEND; i++) {
		out_msg(i, &msg, body, seq, sizeof(seq), props);
		CHILD_CHECK(send_retry(m, "out1", &msg) == 0, 4);
	}
	te_module_close(m);
	return 0;
}

static void test_send_stream(void)
{
	static uint8_t buf[65536];
	struct te_prop props[TE_MSG_PROPS_MAX];
	struct daemon d;
	struct te_msg msg;
	uint32_t n = 0, bad = 0;
	pid_t pid;
	int got = 1;

	TAP_EQ_INT(daemon_init(&d, 8192), 0, "send: daemon setup");
	pid = module_spawn(&d, child_send, NULL);
	while (n < NSEND && (got = daemon_recv(&d, buf, sizeof(buf), &msg, props)) == 1) {
		if (!out_msg_ok(n, &msg, "out1") && bad++ < 3)
			printf("# record %u differs\n", n);
		n++;
	}
	TAP_EQ_INT(got, 1, "send: every record read and decoded");
	TAP_EQ_INT(n, NSEND, "send: %u messages arrived", NSEND);
	TAP_EQ_INT(bad, 0, "send: contents, order and outputName as sent");
	TAP_EQ_INT(module_reap(pid), 0, "send: the module's checks held");
	TAP_EQ_INT(te_ring_read_copy(te_ringset_rx(&d.rs), buf, sizeof(buf),
				     &(uint32_t){ 0 }), 0,
		   "send: nothing after the last message");
	daemon_fini(&d);
}

/* ---- 2: inputs echoed back ---------------------------------------------------- */

#define NECHO 500

struct echo {
	uint32_t n;
	int err;
};

static void on_echo(te_module *m, const struct te_message *in, void *arg)
{
	struct echo *e = arg;
	struct te_property props[TE_MODULE_PROPS_MAX + 1];
	struct te_message out = *in;

	memcpy(props, in->props, in->nprops * sizeof(props[0]));
	props[in->nprops] = (struct te_property){ "input", in->input ? in->input : "(null)" };
	out.props = props;
	out.nprops = in->nprops + 1;
	if (!e->err)
		e->err = send_retry(m, "echo", &out);
	e->n++;
}

/* First half with dispatch's own wait, second half polling its fd. */
static int child_echo(void *arg)
{
	struct echo e = { 0, 0 };
	te_module *m;
	int n;

	CHILD_CHECK(te_module_open(&m) == 0, 2);
	te_module_on_input(m, on_echo, &e);
	while (e.n < NECHO) {
		if (e.n >= NECHO / 2) {
			struct pollfd pfd = { .fd = te_module_fd(m), .events = POLLIN };

			CHILD_CHECK(poll(&pfd, 1, WAIT_MS) == 1, 3);
			n = te_module_dispatch(m, 0);
		} else {
			n = te_module_dispatch(m, WAIT_MS);
			CHILD_CHECK(n != 0, 4);
		}
		CHILD_CHECK(n >= 0, 5);
		CHILD_CHECK(e.err == 0, 6);
	}
	CHILD_CHECK(e.n == NECHO, 7);
	te_module_close(m);
	return 0;
}

static bool echo_ok(uint32_t i, const struct te_msg *m)
{
	char mid[32], cid[32], key[16], val[16];
	bool ok;

	snprintf(mid, sizeof(mid), "m%u", i);
	snprintf(cid, sizeof(cid), "c%u", i);
	ok = str_is(&m->sys[TE_SYS_OUTPUT_NAME], "echo") &&
	     str_is(&m->sys[TE_SYS_MESSAGE_ID], mid) &&
	     str_is(&m->sys[TE_SYS_CORRELATION_ID], i % 2 ? cid : NULL) &&
	     str_is(&m->sys[TE_SYS_CONTENT_ENCODING], i % 3 == 0 ? "utf-8" : NULL) &&
	     str_is(&m->sys[TE_SYS_CONTENT_TYPE], NULL) &&
	     m->nprops == i % 5 + 1 && body_ok(i, m->body, m->bodylen, 300) &&
	     str_is(&m->props[i % 5].key, "input") &&
	     str_is(&m->props[i % 5].val, "in1");
	for (uint32_t k = 0; ok && k < i % 5; k++) {
		snprintf(key, sizeof(key), "k%u", k);
		snprintf(val, sizeof(val), "v%u_%u", i, k);
		ok = str_is(&m->props[k].key, key) && str_is(&m->props[k].val, val);
	}
	return ok;
}

static void test_echo(void)
{
	static uint8_t buf[65536];
	struct te_prop props[TE_MSG_PROPS_MAX];
	struct daemon d;
	struct te_msg msg;
	uint32_t sent = 0, n = 0, bad = 0;
	int got = 1;
	pid_t pid;

	TAP_EQ_INT(daemon_init(&d, 4096), 0, "echo: daemon setup");
	pid = module_spawn(&d, child_echo, NULL);
	while (n < NECHO) {
		/* Fill the in ring as far as it goes, then wait for echoes:
		 * each one the module sends frees room for more input. */
		while (sent < NECHO && daemon_send_input(&d, sent) == 0)
			sent++;
		daemon_wake_module(&d);
		got = daemon_recv(&d, buf, sizeof(buf), &msg, props);
		if (got != 1)
			break;
		if (!echo_ok(n, &msg) && bad++ < 3)
			printf("# echo %u differs\n", n);
		n++;
	}
	TAP_EQ_INT(got, 1, "echo: every echo read and decoded");
	TAP_EQ_INT(n, NECHO, "echo: %u echoes arrived", NECHO);
	TAP_EQ_INT(bad, 0, "echo: inputs delivered whole, with inputName, in order");
	TAP_EQ_INT(module_reap(pid), 0, "echo: the module's checks held");
	daemon_fini(&d);
}

/* ---- 3: a full out ring --------------------------------------------------------- */

static int child_full(void *arg)
{
	struct sync *s = arg;
	struct te_property props[2];
	struct te_message msg;
	uint8_t body[512];
	char seq[16], go;
	uint32_t k = 0;
	te_module *m;
	int err;

	CHILD_CHECK(te_module_open(&m) == 0, 2);
	for (;;) {
		out_msg(k, &msg, body, seq, sizeof(seq), props);
		err = te_module_send(m, "out1", &msg);
		if (err)
			break;
		k++;
	}
	CHILD_CHECK(err == -EAGAIN, 3);
	CHILD_CHECK(te_module_send(m, "out1", &msg) == -EAGAIN, 4);
	CHILD_CHECK(write(s->up[1], &k, sizeof(k)) == sizeof(k), 5);
	CHILD_CHECK(read(s->down[0], &go, 1) == 1, 6);
	CHILD_CHECK(te_module_send(m, "out1", &msg) == 0, 7);
	te_module_close(m);
	return 0;
}

static void test_full(void)
{
	static uint8_t buf[65536];
	struct te_prop props[TE_MSG_PROPS_MAX];
	struct sync s;
	struct daemon d;
	struct te_msg msg;
	uint32_t k = 0, n = 0, bad = 0;
	pid_t pid;

	TAP_OK(pipe_high(s.up) == 0 && pipe_high(s.down) == 0, "full: pipes");
	TAP_EQ_INT(daemon_init(&d, 4096), 0, "full: daemon setup");
	pid = module_spawn(&d, child_full, &s);
	close(s.up[1]);     /* a child that fails early then reads as EOF */
	close(s.down[0]);
	TAP_EQ_INT(read(s.up[0], &k, sizeof(k)), sizeof(k),
		   "full: the module reported -EAGAIN");
	TAP_OK(k > 0 && k < 4096 / 8, "full: %u messages fitted before -EAGAIN", k);
	while (n < k && daemon_recv(&d, buf, sizeof(buf), &msg, props) == 1)
		bad += !out_msg_ok(n++, &msg, "out1");
	TAP_OK(n == k && bad == 0, "full: the ring held exactly those %u, intact", k);
	TAP_EQ_INT(write(s.down[1], "g", 1), 1, "full: drained, module resumed");
	TAP_OK(daemon_recv(&d, buf, sizeof(buf), &msg, props) == 1 &&
	       out_msg_ok(k, &msg, "out1"),
	       "full: the refused message was sent after the drain");
	TAP_EQ_INT(module_reap(pid), 0, "full: the module's checks held");
	close(s.up[0]);
	close(s.down[1]);
	daemon_fini(&d);
}

/* ---- 4: open failures ------------------------------------------------------------- */

static int open_with(const char *ipc_fd)
{
	te_module *m = NULL;
	int err;

	if (ipc_fd)
		setenv("TINYEDGE_IPC_FD", ipc_fd, 1);
	else
		unsetenv("TINYEDGE_IPC_FD");
	err = te_module_open(&m);
	if (err && m)
		return -9999;  /* out must stay untouched on failure */
	te_module_close(m);
	return err;
}

static void test_open_errors(void)
{
	struct daemon d;
	char base[16];
	int fd;

	snprintf(base, sizeof(base), "%d", FD_BASE);
	fds_unplace(FD_BASE);
	TAP_EQ_INT(open_with(NULL), -ENOENT, "open: no TINYEDGE_IPC_FD");
	TAP_EQ_INT(open_with("abc"), -EINVAL, "open: not a number");
	TAP_EQ_INT(open_with("3x"), -EINVAL, "open: trailing junk");
	TAP_EQ_INT(open_with("-1"), -EINVAL, "open: negative");
	TAP_EQ_INT(open_with(""), -EINVAL, "open: empty");
	TAP_EQ_INT(open_with("2147483647"), -EINVAL, "open: no room for the eventfds");
	TAP_EQ_INT(open_with(base), -EINVAL, "open: fds not open");

	TAP_EQ_INT(daemon_init(&d, 4096), 0, "open: daemon setup");
	fds_place(&d, FD_BASE);
	fd = open("/dev/null", O_RDWR);
	dup2(fd, FD_BASE);
	close(fd);
	TAP_EQ_INT(open_with(base), -EINVAL, "open: /dev/null as the memfd");

	fd = memfd_create("unsealed", MFD_CLOEXEC);
	TAP_OK(fd >= 0 && ftruncate(fd, 4096 + 2 * 4096) == 0, "open: unsealed memfd");
	(void)!pwrite(fd, d.rs.map, 4096, 0);  /* a valid header, no seals */
	dup2(fd, FD_BASE);
	close(fd);
	TAP_EQ_INT(open_with(base), -EINVAL, "open: memfd without seals");

	dup2(d.memfd, FD_BASE);
	close(FD_BASE + 2);
	TAP_EQ_INT(open_with(base), -EINVAL, "open: from-daemon eventfd missing");
	dup2(d.efd_to_module, FD_BASE + 2);
	((struct te_wire_hdr *)d.rs.map)->magic ^= 1;
	TAP_EQ_INT(open_with(base), -EINVAL, "open: bad magic");
	((struct te_wire_hdr *)d.rs.map)->magic ^= 1;
	TAP_EQ_INT(open_with(base), 0, "open: and the same fds with the header fixed");
	fds_unplace(FD_BASE);
	daemon_fini(&d);
}

/* ---- 5: in process: both sides here ----------------------------------------------- */

struct seen {
	int calls;
	int reentry;
	bool fields_ok;
};

static void on_seen(te_module *m, const struct te_message *in, void *arg)
{
	struct seen *s = arg;

	s->calls++;
	s->reentry = te_module_dispatch(m, 0);
	s->fields_ok = cstr_is(in->input, "in1") && cstr_is(in->message_id, "m7") &&
		       cstr_is(in->correlation_id, "c7") &&
		       cstr_is(in->content_type, NULL) &&
		       cstr_is(in->content_encoding, NULL) && in->nprops == 2 &&
		       cstr_is(in->props[0].key, "k0") &&
		       cstr_is(in->props[0].value, "v7_0") &&
		       cstr_is(in->props[1].key, "k1") &&
		       cstr_is(in->props[1].value, "v7_1") &&
		       body_ok(7, in->body, in->body_len, 300);
}

static void test_send_errors(void)
{
	static uint8_t big[TE_MODULE_BODY_MAX + 1];
	static char longstr[TE_MODULE_STR_MAX + 2];
	struct te_property props[TE_MODULE_PROPS_MAX + 1];
	struct te_message msg = { .body = "x", .body_len = 1 };
	struct daemon d;
	uint8_t buf[4096];
	te_module *m = open_here(&d, 4096);

	TAP_OK(m != NULL, "send errors: open in process");
	if (!m)
		return;
	TAP_EQ_STR(te_module_name(m), "", "name: \"\" without IOTEDGE_MODULEID");
	TAP_EQ_INT(te_module_fd(m), FD_BASE + 2, "fd: the from-daemon eventfd");
	TAP_OK(fcntl(FD_BASE, F_GETFD) & FD_CLOEXEC, "open: memfd made close-on-exec");
	TAP_EQ_INT(te_module_send(m, NULL, &msg), -EINVAL, "send: NULL output");
	TAP_EQ_INT(te_module_send(m, "", &msg), -EINVAL, "send: empty output");
	TAP_EQ_INT(te_module_send(m, "o", NULL), -EINVAL, "send: NULL message");
	msg.body = NULL;
	TAP_EQ_INT(te_module_send(m, "o", &msg), -EINVAL, "send: NULL body, length 1");
	msg.body = big;
	msg.body_len = sizeof(big);
	TAP_EQ_INT(te_module_send(m, "o", &msg), -EMSGSIZE, "send: body over 256 KiB");
	msg.body_len = 3000;
	TAP_EQ_INT(te_module_send(m, "o", &msg), -EMSGSIZE, "send: over the ring's record limit");
	msg.body_len = 1;
	for (int i = 0; i <= TE_MODULE_PROPS_MAX; i++)
		props[i] = (struct te_property){ "k", "v" };
	msg.props = props;
	msg.nprops = TE_MODULE_PROPS_MAX + 1;
	TAP_EQ_INT(te_module_send(m, "o", &msg), -EMSGSIZE, "send: 65 properties");
	msg.nprops = 1;
	props[0].key = "";
	TAP_EQ_INT(te_module_send(m, "o", &msg), -EINVAL, "send: empty property name");
	props[0].key = NULL;
	TAP_EQ_INT(te_module_send(m, "o", &msg), -EINVAL, "send: NULL property name");
	props[0] = (struct te_property){ "k", NULL };
	TAP_EQ_INT(te_module_send(m, "o", &msg), -EINVAL, "send: NULL property value");
	memset(longstr, 'a', sizeof(longstr) - 1);
	props[0] = (struct te_property){ "k", longstr };
	TAP_EQ_INT(te_module_send(m, "o", &msg), -EMSGSIZE, "send: 4097-byte value");
	TAP_EQ_INT(te_module_send(m, longstr, &msg), -EMSGSIZE, "send: 4097-byte output");
	TAP_EQ_INT(te_ring_read_copy(te_ringset_rx(&d.rs), buf, sizeof(buf),
				     &(uint32_t){ 0 }), 0,
		   "send: refused messages left nothing in the ring");
	TAP_EQ_INT(te_module_send(m, "o", &(struct te_message){ 0 }), 0,
		   "send: an empty message");
	TAP_EQ_INT(fd_readable(d.efd_to_daemon), false,
		   "send: no wakeup when the daemon did not ask");
	close_here(&d, m);
}

static void test_dispatch_here(void)
{
	struct seen s = { 0, 0, false };
	struct daemon d;
	te_module *m = open_here(&d, 4096);
	uint32_t *wake;

	TAP_OK(m != NULL, "dispatch: open in process");
	if (!m)
		return;
	wake = d.rs.in.wake_p;
	TAP_EQ_INT(te_module_dispatch(m, 0), -EINVAL, "dispatch: no callback");
	te_module_on_input(m, on_seen, &s);
	TAP_EQ_INT(te_module_dispatch(m, 10), 0, "dispatch: timeout, nothing pending");
	TAP_EQ_INT(*wake, 1, "dispatch: left the daemon asked for a wakeup");
	TAP_EQ_INT(daemon_send_input(&d, 7), 0, "dispatch: daemon writes an input");
	daemon_wake_module(&d);
	TAP_OK(fd_readable(te_module_fd(m)), "dispatch: fd readable after the daemon's wakeup");
	TAP_EQ_INT(te_module_dispatch(m, 0), 1, "dispatch: one message delivered");
	TAP_EQ_INT(s.calls, 1, "dispatch: callback called once");
	TAP_OK(s.fields_ok, "dispatch: strings NUL-terminated, absent ones NULL, body intact");
	TAP_EQ_INT(s.reentry, -EBUSY, "dispatch: reentry refused");
	TAP_OK(!fd_readable(te_module_fd(m)), "dispatch: wakeup consumed");
	TAP_EQ_INT(*wake, 1, "dispatch: re-armed after draining");

	memcpy(te_ring_reserve(te_ringset_tx(&d.rs), 5), "hello", 5);
	te_ring_commit(te_ringset_tx(&d.rs));
	TAP_EQ_INT(te_module_dispatch(m, 0), -EPROTO, "dispatch: a record that is no message");
	TAP_EQ_INT(s.calls, 1, "dispatch: ...not delivered");

	__atomic_store_n(d.rs.in.prod_p, d.rs.in.local + 3, __ATOMIC_RELEASE);
	TAP_EQ_INT(te_module_dispatch(m, 1000), -EPROTO, "dispatch: a corrupt producer index");
	close_here(&d, m);
}

static void test_heartbeat(void)
{
	struct daemon d;
	te_module *m;
	char nl[4] = "";
	char num[16];
	int p[2];

	unsetenv("TINYEDGE_NOTIFY_FD");
	m = open_here(&d, 4096);
	TAP_OK(m && te_module_heartbeat(m) == 0, "heartbeat: 0 when not configured");
	close_here(&d, m);

	TAP_OK(pipe(p) == 0, "heartbeat: pipe");
	snprintf(num, sizeof(num), "%d", p[1]);
	setenv("TINYEDGE_NOTIFY_FD", num, 1);
	m = open_here(&d, 4096);
	TAP_OK(m && te_module_heartbeat(m) == 0, "heartbeat: written");
	TAP_OK(read(p[0], nl, sizeof(nl)) == 1 && nl[0] == '\n', "heartbeat: a newline");
	close(p[1]);
	close(p[0]);
	TAP_EQ_INT(m ? te_module_heartbeat(m) : 0, -EBADF, "heartbeat: -errno on a closed fd");
	close_here(&d, m);
	setenv("TINYEDGE_NOTIFY_FD", "x", 1);
	TAP_EQ_INT(open_with("3"), -EINVAL, "heartbeat: TINYEDGE_NOTIFY_FD not a number");
	unsetenv("TINYEDGE_NOTIFY_FD");
}

int main(void)
{
	unsetenv("IOTEDGE_MODULEID");
	unsetenv("TINYEDGE_NOTIFY_FD");
	test_send_stream();
	test_echo();
	test_full();
	test_open_errors();
	test_send_errors();
	test_dispatch_here();
	test_heartbeat();
	return tap_done();
}
