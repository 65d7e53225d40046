/* The module SDK (sdk/module.c): module twins and direct methods, over
 * real rings with the test playing the daemon (sdk_daemon.h). Most tests
 * run both sides in this process, so that every record and every callback
 * is checked in order; the last one runs the module in a child process
 * against a small ring, so that method results meet a full out ring and
 * real wakeups. */
#include <limits.h>

#include "core/err.h"
#include "hub/wire.h"
#include "sdk_daemon.h"
#include "tap.h"

#define TWIN1 "{\"desired\":{\"threshold\":25,\"$version\":1},\"reported\":{\"$version\":1}}"
#define TWIN2 "{\"desired\":{\"threshold\":30,\"$version\":2},\"reported\":{\"$version\":4}}"
#define PATCH1 "{\"threshold\":30,\"$version\":2}"
#define BIG_RING (128 * 1024)   /* records up to 64 KiB - 8 */

static uint8_t rec[TE_WIRE_CTL_HDR + TE_WIRE_STR_MAX + TE_WIRE_METHOD_MAX];

/* ---- the daemon's side ------------------------------------------------------ */

/* Put a control record on the module's in ring (NULL strings: empty). */
static int daemon_ctl(struct daemon *d, unsigned kind, uint32_t id, uint32_t status,
		      const char *name, const char *body)
{
	struct te_ctlrec c = {
		.kind = kind, .id = id, .status = status,
		.name = { name, name ? (uint32_t)strlen(name) : 0 },
		.body = body, .bodylen = body ? (uint32_t)strlen(body) : 0,
	};
	size_t len;
	int err = te_ctlrec_encode(&c, rec, sizeof(rec), &len);

	return err ? err : daemon_put(d, rec, len);
}

/* A message for input "in1". */
static int daemon_msg(struct daemon *d, const char *body)
{
	struct te_msg m = { .origin = TE_ORIGIN_MODULE, .body = body,
			    .bodylen = (uint32_t)strlen(body) };
	size_t len;

	m.sys[TE_SYS_INPUT_NAME] = (struct te_str){ "in1", 3 };
	if (te_msg_encode(&m, rec, sizeof(rec), &len))
		return -EINVAL;
	return daemon_put(d, rec, len);
}

/* The next record of the out ring as a control record (views into buf):
 * 1, 0 on timeout, or a negative code (also for a message). */
static int daemon_ctl_recv(struct daemon *d, void *buf, uint32_t cap, struct te_ctlrec *c)
{
	uint32_t len;
	int got = daemon_read(d, buf, cap, &len);

	if (got != 1)
		return got;
	got = te_ctlrec_decode(buf, len, c);
	return got ? got : 1;
}

static bool ctl_is(const struct te_ctlrec *c, unsigned kind, uint32_t id,
		   uint32_t status, const char *body)
{
	return c->kind == kind && c->id == id && c->status == status &&
	       c->bodylen == strlen(body) && memcmp(c->body, body, c->bodylen) == 0;
}

/* The out ring holds nothing (without waiting). */
static bool out_empty(struct daemon *d)
{
	static uint8_t buf[BIG_RING];
	uint32_t len;

	return te_ring_read_copy(te_ringset_rx(&d->rs), buf, sizeof(buf), &len) == 0;
}

/* ---- what the callbacks saw ------------------------------------------------- */

#define LOG_MAX 8

struct seen {
	int n;                       /* calls */
	int what[LOG_MAX];           /* twin: TE_TWIN_*; ack: id */
	int status[LOG_MAX];         /* ack */
	char text[LOG_MAX][512];     /* twin: json; ack: text */
	bool lens_ok;                /* every len matched the NUL-terminated text */
};

static void on_twin(te_module *m, int what, const char *json, size_t len, void *arg)
{
	struct seen *s = arg;
	int i = s->n++ % LOG_MAX;

	s->what[i] = what;
	snprintf(s->text[i], sizeof(s->text[i]), "%s", json);
	s->lens_ok &= strlen(json) == len;
}

static void on_ack(te_module *m, int id, int status, const char *text, void *arg)
{
	struct seen *s = arg;
	int i = s->n++ % LOG_MAX;

	s->what[i] = id;
	s->status[i] = status;
	snprintf(s->text[i], sizeof(s->text[i]), "%s", text);
}

/* ---- 1: the twin -------------------------------------------------------------- */

static void test_twin(void)
{
	static uint8_t buf[BIG_RING];
	struct seen tw = { .lens_ok = true };
	struct daemon d;
	struct te_ctlrec c;
	te_module *m = open_here(&d, BIG_RING);

	TAP_OK(m != NULL, "twin: open in process");
	if (!m)
		return;
	te_module_on_twin(m, on_twin, &tw);
	TAP_OK(daemon_ctl(&d, TE_WIRE_KIND_TWIN, 0, 0, NULL, TWIN1) == 0 &&
	       daemon_msg(&d, "dropped") == 0 &&
	       daemon_ctl(&d, TE_WIRE_KIND_DESIRED, 0, 0, NULL, PATCH1) == 0,
	       "twin: the daemon writes the twin, a message, a desired patch");
	TAP_EQ_INT(te_module_dispatch(m, 0), 3, "twin: three records taken (no input callback)");
	TAP_EQ_INT(tw.n, 2, "twin: callback called twice");
	TAP_OK(tw.what[0] == TE_TWIN_FULL && !strcmp(tw.text[0], TWIN1),
	       "twin: first the whole twin, as sent");
	TAP_OK(tw.what[1] == TE_TWIN_DESIRED_PATCH && !strcmp(tw.text[1], PATCH1),
	       "twin: then the desired patch, as sent");
	TAP_OK(tw.lens_ok, "twin: json NUL-terminated, len its length");
	TAP_EQ_INT(te_module_dropped(m), 1, "twin: the message was dropped and counted");

	TAP_EQ_INT(te_module_twin_get(m), 0, "twin_get: sent");
	TAP_OK(daemon_ctl_recv(&d, buf, sizeof(buf), &c) == 1 &&
	       ctl_is(&c, TE_WIRE_KIND_TWIN_GET, 1, 0, ""),
	       "twin_get: a TWIN_GET with request id 1");
	TAP_EQ_INT(daemon_ctl(&d, TE_WIRE_KIND_TWIN, c.id, 0, NULL, TWIN2), 0,
		   "twin_get: the daemon answers with that id");
	TAP_EQ_INT(te_module_dispatch(m, 0), 1, "twin_get: one record taken");
	TAP_OK(tw.n == 3 && tw.what[2] == TE_TWIN_FULL && !strcmp(tw.text[2], TWIN2),
	       "twin_get: the whole twin reached the callback");
	TAP_EQ_INT(te_module_twin_get(NULL), -EINVAL, "twin_get: NULL module");
	TAP_OK(out_empty(&d), "twin: nothing else was sent");
	close_here(&d, m);
}

/* ---- 2: reported properties and their acknowledgements --------------------------- */

static void test_report(void)
{
	static uint8_t buf[BIG_RING];
	static char big[TE_MODULE_TWIN_MAX + 2];
	struct seen ack = { 0 };
	struct daemon d;
	struct te_ctlrec c;
	te_module *m = open_here(&d, BIG_RING);
	int id;

	TAP_OK(m != NULL, "report: open in process");
	if (!m)
		return;
	te_module_on_ack(m, on_ack, &ack);
	id = te_module_twin_report(m, " {\"temp\":{\"max\":21.5},\"old\":null}\n");
	TAP_EQ_INT(id, 1, "report: request id 1");
	TAP_OK(daemon_ctl_recv(&d, buf, sizeof(buf), &c) == 1 &&
	       ctl_is(&c, TE_WIRE_KIND_REPORTED, 1, 0,
		      " {\"temp\":{\"max\":21.5},\"old\":null}\n"),
	       "report: a REPORTED record with the patch as given");
	TAP_EQ_INT(daemon_ctl(&d, TE_WIRE_KIND_ACK, 1, 200, NULL, NULL), 0, "report: acked");
	TAP_EQ_INT(te_module_twin_report(m, "{\"a.b\":1}"), 2, "report: request id 2");
	TAP_OK(daemon_ctl_recv(&d, buf, sizeof(buf), &c) == 1 &&
	       ctl_is(&c, TE_WIRE_KIND_REPORTED, 2, 0, "{\"a.b\":1}"),
	       "report: the SDK leaves the names to the daemon");
	TAP_EQ_INT(daemon_ctl(&d, TE_WIRE_KIND_ACK, 2, 400, NULL,
			      "property name \"a.b\" contains '.'"), 0, "report: refused");
	TAP_EQ_INT(te_module_dispatch(m, 0), 2, "report: two acks taken");
	TAP_OK(ack.n == 2 && ack.what[0] == 1 && ack.status[0] == 200 && !strcmp(ack.text[0], ""),
	       "report: ack 1, 200, no text");
	TAP_OK(ack.what[1] == 2 && ack.status[1] == 400 &&
	       !strcmp(ack.text[1], "property name \"a.b\" contains '.'"),
	       "report: ack 2, 400, the reason");

	TAP_EQ_INT(te_module_twin_report(m, NULL), -EINVAL, "report: NULL patch");
	TAP_EQ_INT(te_module_twin_report(NULL, "{}"), -EINVAL, "report: NULL module");
	TAP_EQ_INT(te_module_twin_report(m, ""), -EINVAL, "report: empty");
	TAP_EQ_INT(te_module_twin_report(m, "  "), -EINVAL, "report: blanks");
	TAP_EQ_INT(te_module_twin_report(m, "[1]"), -EINVAL, "report: an array");
	TAP_EQ_INT(te_module_twin_report(m, "{"), -EINVAL, "report: one brace");
	TAP_EQ_INT(te_module_twin_report(m, "{} x"), -EINVAL, "report: trailing junk");
	memset(big, ' ', sizeof(big) - 1);
	big[0] = '{';
	big[TE_MODULE_TWIN_MAX] = '}';
	TAP_EQ_INT(te_module_twin_report(m, big), -EMSGSIZE, "report: 32 KiB + 1 bytes");
	TAP_OK(out_empty(&d), "report: refused patches sent nothing");
	big[TE_MODULE_TWIN_MAX] = '\0';
	big[TE_MODULE_TWIN_MAX - 1] = '}';
	TAP_EQ_INT(te_module_twin_report(m, big), 3, "report: 32 KiB exactly");
	TAP_OK(daemon_ctl_recv(&d, buf, sizeof(buf), &c) == 1 && c.id == 3 &&
	       c.bodylen == TE_MODULE_TWIN_MAX, "report: ...sent whole");
	te_module_on_ack(m, NULL, NULL);
	te_module_on_twin(m, on_twin, &(struct seen){ .lens_ok = true });
	TAP_OK(daemon_ctl(&d, TE_WIRE_KIND_ACK, 3, 200, NULL, NULL) == 0 &&
	       te_module_dispatch(m, 0) == 1, "report: an ack without a callback is taken");
	close_here(&d, m);

	m = open_here(&d, 4096);
	memset(big, ' ', 3000);
	big[0] = '{';
	big[2999] = '}';
	big[3000] = '\0';
	TAP_EQ_INT(te_module_twin_report(m, big), -EMSGSIZE, "report: over a 4 KiB ring's record");
	close_here(&d, m);
}

/* ---- 3: direct methods ---------------------------------------------------------- */

struct calls {
	int n;
	char name[64], payload[256];
	size_t len, cap;
	int reentry, report;
};

static int on_method(te_module *m, const char *method, const char *payload, size_t len,
		     char *resp, size_t resp_cap, size_t *resp_len, void *arg)
{
	struct calls *k = arg;

	k->n++;
	snprintf(k->name, sizeof(k->name), "%s", method);
	snprintf(k->payload, sizeof(k->payload), "%s", payload);
	k->len = len;
	k->cap = resp_cap;
	if (!strcmp(method, "echo")) {
		memcpy(resp, payload, len);
		*resp_len = len;
		return 200;
	}
	if (!strcmp(method, "overflow")) {
		*resp_len = resp_cap + 1;
		return 200;
	}
	if (!strcmp(method, "inside")) {
		k->reentry = te_module_dispatch(m, 0);
		k->report = te_module_twin_report(m, "{\"in\":\"method\"}");
		*resp_len = (size_t)snprintf(resp, resp_cap, "{\"id\":%d}", k->report);
		return 201;
	}
	return !strcmp(method, "negative") ? -7 : 404;
}

/* Call method id on the module and read back the result. */
static bool call(struct daemon *d, te_module *m, uint32_t id, const char *name,
		 const char *payload, struct te_ctlrec *res)
{
	static uint8_t buf[BIG_RING];

	return daemon_ctl(d, TE_WIRE_KIND_METHOD, id, 0, name, payload) == 0 &&
	       te_module_dispatch(m, 0) == 1 &&
	       daemon_ctl_recv(d, buf, sizeof(buf), res) == 1 &&
	       res->kind == TE_WIRE_KIND_METHOD_RESULT && res->id == id;
}

static void test_methods(void)
{
	static uint8_t buf[BIG_RING];
	struct calls k = { 0 };
	struct daemon d;
	struct te_ctlrec c;
	te_module *m = open_here(&d, BIG_RING);

	TAP_OK(m != NULL, "method: open in process");
	if (!m)
		return;
	te_module_on_method(m, on_method, &k);
	TAP_OK(call(&d, m, 7, "echo", "{\"delay\":5}", &c), "method: echo 7 answered");
	TAP_OK(k.n == 1 && !strcmp(k.name, "echo") && !strcmp(k.payload, "{\"delay\":5}") &&
	       k.len == 11, "method: the handler saw the name and the payload");
	TAP_EQ_INT(k.cap, BIG_RING / 2 - TE_WIRE_REC_HDR - TE_WIRE_CTL_HDR,
		   "method: resp_cap is what the ring can carry");
	TAP_OK(ctl_is(&c, TE_WIRE_KIND_METHOD_RESULT, 7, 200, "{\"delay\":5}"),
	       "method: result 200 with the handler's payload");
	TAP_OK(call(&d, m, 8, "nosuch", NULL, &c) && ctl_is(&c, TE_WIRE_KIND_METHOD_RESULT, 8, 404, ""),
	       "method: no payload in, status 404 and none out");
	TAP_OK(k.len == 0 && !strcmp(k.payload, ""), "method: an empty payload is \"\", length 0");
	TAP_OK(call(&d, m, 9, "negative", "null", &c) && (int32_t)c.status == -7,
	       "method: a negative status goes through");
	TAP_OK(call(&d, m, 10, "overflow", "1", &c) &&
	       ctl_is(&c, TE_WIRE_KIND_METHOD_RESULT, 10, 500,
		      "{\"message\":\"method response too long\"}"),
	       "method: resp_len over resp_cap is answered 500");
	TAP_OK(daemon_ctl(&d, TE_WIRE_KIND_METHOD, 11, 0, "inside", "{}") == 0 &&
	       te_module_dispatch(m, 0) == 1, "method: a handler that reports");
	TAP_EQ_INT(k.reentry, -EBUSY, "method: dispatch from the handler refused");
	TAP_EQ_INT(k.report, 1, "method: twin_report from the handler works");
	TAP_OK(daemon_ctl_recv(&d, buf, sizeof(buf), &c) == 1 &&
	       ctl_is(&c, TE_WIRE_KIND_REPORTED, 1, 0, "{\"in\":\"method\"}"),
	       "method: the report went out first");
	TAP_OK(daemon_ctl_recv(&d, buf, sizeof(buf), &c) == 1 &&
	       ctl_is(&c, TE_WIRE_KIND_METHOD_RESULT, 11, 201, "{\"id\":1}"),
	       "method: then the result");

	te_module_on_method(m, NULL, NULL);
	TAP_EQ_INT(te_module_dispatch(m, 0), -EINVAL, "method: no callback of any kind");
	te_module_on_twin(m, on_twin, &(struct seen){ .lens_ok = true });
	TAP_OK(call(&d, m, 12, "reboot", "{}", &c) &&
	       ctl_is(&c, TE_WIRE_KIND_METHOD_RESULT, 12, 501,
		      "{\"message\":\"no method handler\"}"),
	       "method: no handler: the SDK answers 501");
	TAP_EQ_INT(k.n, 5, "method: ...without calling the old handler");
	TAP_OK(out_empty(&d), "method: nothing else was sent");
	close_here(&d, m);
}

/* ---- 4: a result meets a full out ring ---------------------------------------------- */

static void test_result_waits(void)
{
	static uint8_t buf[BIG_RING];
	struct te_message msg = { .body = "x", .body_len = 1 };
	struct seen tw = { .lens_ok = true };
	struct calls k = { 0 };
	struct daemon d;
	struct te_ctlrec c;
	te_module *m = open_here(&d, 4096);
	uint32_t len;
	int nmsg = 0, n;

	TAP_OK(m != NULL, "full: open in process");
	if (!m)
		return;
	te_module_on_method(m, on_method, &k);
	te_module_on_twin(m, on_twin, &tw);
	while (te_module_send(m, "o", &msg) == 0)
		nmsg++;
	TAP_OK(nmsg > 0, "full: %d messages fill the out ring", nmsg);
	TAP_OK(daemon_ctl(&d, TE_WIRE_KIND_METHOD, 20, 0, "echo", "{\"n\":20}") == 0 &&
	       daemon_msg(&d, "m") == 0 &&
	       daemon_ctl(&d, TE_WIRE_KIND_METHOD, 21, 0, "echo", "{\"n\":21}") == 0 &&
	       daemon_ctl(&d, TE_WIRE_KIND_DESIRED, 0, 0, NULL, PATCH1) == 0,
	       "full: the daemon calls 20, sends a message, calls 21, patches");
	TAP_EQ_INT(te_module_dispatch(m, 0), 2, "full: call 20 and the message taken");
	TAP_EQ_INT(k.n, 1, "full: call 20 handled, its result kept");
	TAP_OK(fd_readable(te_module_fd(m)), "full: the fd is left readable");
	TAP_EQ_INT(te_module_twin_report(m, "{}"), -EAGAIN, "full: a report meanwhile gets -EAGAIN");
	TAP_EQ_INT(te_module_dispatch(m, 0), 0, "full: still full: call 21 waits in the ring");
	TAP_EQ_INT(te_module_dispatch(m, -1), 0, "full: a wait while a result waits is short");
	TAP_OK(k.n == 1 && tw.n == 0, "full: nothing past call 21 handled");
	for (n = 0; n < nmsg && daemon_read(&d, buf, sizeof(buf), &len) == 1 &&
		    te_wire_kind(buf, len) == TE_WIRE_KIND_MSG; n++)
		;
	TAP_EQ_INT(n, nmsg, "full: the daemon drains the messages");
	TAP_EQ_INT(te_module_dispatch(m, 0), 2, "full: then call 21 and the patch are taken");
	TAP_OK(k.n == 2 && tw.n == 1, "full: ...and handled");
	TAP_OK(daemon_ctl_recv(&d, buf, sizeof(buf), &c) == 1 &&
	       ctl_is(&c, TE_WIRE_KIND_METHOD_RESULT, 20, 200, "{\"n\":20}"),
	       "full: result 20 went out first");
	TAP_OK(daemon_ctl_recv(&d, buf, sizeof(buf), &c) == 1 &&
	       ctl_is(&c, TE_WIRE_KIND_METHOD_RESULT, 21, 200, "{\"n\":21}"),
	       "full: then result 21");
	TAP_OK(out_empty(&d), "full: nothing else");
	TAP_OK(!fd_readable(te_module_fd(m)), "full: the fd is quiet again");
	TAP_EQ_INT(*d.rs.in.wake_p, 1, "full: and the daemon asked for a wakeup");
	close_here(&d, m);
}

/* ---- 5: records the module must refuse ----------------------------------------------- */

static void test_refused(void)
{
	static const struct {
		unsigned kind;
		uint32_t id, status;
		const char *name, *body, *what;
	} bad[] = {
		{ TE_WIRE_KIND_REPORTED, 1, 0, NULL, "{}", "a REPORTED (a module's kind)" },
		{ TE_WIRE_KIND_TWIN_GET, 1, 0, NULL, NULL, "a TWIN_GET (a module's kind)" },
		{ TE_WIRE_KIND_METHOD_RESULT, 1, 200, NULL, NULL, "a METHOD_RESULT (a module's kind)" },
		{ TE_WIRE_KIND_ACK, 0x80000000u, 200, NULL, NULL, "an ACK for an id never handed out" },
	};
	static const uint8_t junk[] = { TE_WIRE_KIND_DESIRED, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0,
					0, 0, 0, 0, 2, 0, 0, 0, '{', '}' };
	struct seen tw = { .lens_ok = true };
	struct daemon d;
	te_module *m;

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = open_here(&d, 4096);
		te_module_on_twin(m, on_twin, &tw);
		te_module_on_ack(m, on_ack, &tw);
		daemon_ctl(&d, bad[i].kind, bad[i].id, bad[i].status, bad[i].name, bad[i].body);
		TAP_EQ_INT(te_module_dispatch(m, 0), -EPROTO, "refused: %s", bad[i].what);
		close_here(&d, m);
	}
	m = open_here(&d, 4096);
	te_module_on_twin(m, on_twin, &tw);
	daemon_put(&d, junk, sizeof(junk));
	TAP_EQ_INT(te_module_dispatch(m, 0), -EPROTO, "refused: a reserved byte set");
	TAP_EQ_INT(tw.n, 0, "refused: no callback saw any of them");
	close_here(&d, m);
}

/* ---- 6: a module process serving calls through a small ring --------------------------- */

#define NCALL 400

struct served {
	struct calls k;
	int twins, acks, order_bad;
	bool bye;
};

static void served_twin(te_module *m, int what, const char *json, size_t len, void *arg)
{
	struct served *s = arg;

	if (what == TE_TWIN_FULL) {
		s->twins++;
		s->order_bad += s->k.n != 0;  /* the twin comes before any call */
		if (te_module_twin_report(m, "{\"started\":true}") != 1)
			s->order_bad++;
	} else if (strstr(json, "\"bye\":true")) {
		s->bye = true;
	}
}

static void served_ack(te_module *m, int id, int status, const char *text, void *arg)
{
	struct served *s = arg;

	s->acks += id == 1 && status == 200;
}

static int child_serve(void *arg)
{
	struct served s = { { 0 }, 0, 0, 0, false };
	struct pollfd pfd;
	te_module *m;

	CHILD_CHECK(te_module_open(&m) == 0, 2);
	te_module_on_twin(m, served_twin, &s);
	te_module_on_ack(m, served_ack, &s);
	te_module_on_method(m, on_method, &s.k);
	pfd = (struct pollfd){ .fd = te_module_fd(m), .events = POLLIN };
	for (;;) {  /* dispatch first: only dispatch arms the fd */
		CHILD_CHECK(te_module_dispatch(m, 0) >= 0, 3);
		if (s.bye)
			break;
		CHILD_CHECK(poll(&pfd, 1, WAIT_MS) == 1, 4);
	}
	CHILD_CHECK(s.twins == 1 && s.order_bad == 0, 5);
	CHILD_CHECK(s.acks == 1, 6);
	CHILD_CHECK(s.k.n == NCALL, 7);
	te_module_close(m);
	return 0;
}

static int daemon_call(struct daemon *d, uint32_t i)
{
	char payload[64];

	snprintf(payload, sizeof(payload), "{\"call\":%u,\"pad\":\"%0*u\"}", i, (int)(i % 40), 0);
	return daemon_ctl(d, TE_WIRE_KIND_METHOD, i + 1, 0, "echo", payload);
}

static bool result_ok(uint32_t i, const struct te_ctlrec *c)
{
	char payload[64];

	snprintf(payload, sizeof(payload), "{\"call\":%u,\"pad\":\"%0*u\"}", i, (int)(i % 40), 0);
	return ctl_is(c, TE_WIRE_KIND_METHOD_RESULT, i + 1, 200, payload);
}

static void test_serve(void)
{
	static uint8_t buf[4096];
	struct daemon d;
	struct te_ctlrec c;
	uint32_t sent = 0, n = 0, bad = 0;
	int got = 1;
	pid_t pid;

	TAP_EQ_INT(daemon_init(&d, 4096), 0, "serve: daemon setup");
	TAP_EQ_INT(daemon_ctl(&d, TE_WIRE_KIND_TWIN, 0, 0, NULL, TWIN1), 0,
		   "serve: the twin is in the ring before the module starts");
	pid = module_spawn(&d, child_serve, NULL);
	TAP_OK(daemon_ctl_recv(&d, buf, sizeof(buf), &c) == 1 &&
	       ctl_is(&c, TE_WIRE_KIND_REPORTED, 1, 0, "{\"started\":true}"),
	       "serve: the module reported on its twin");
	TAP_EQ_INT(daemon_ctl(&d, TE_WIRE_KIND_ACK, 1, 200, NULL, NULL), 0, "serve: acked");
	while (n < NCALL) {
		/* As many calls as fit, then a result: the module's out ring
		 * fills whenever we fall behind. */
		while (sent < NCALL && daemon_call(&d, sent) == 0)
			sent++;
		daemon_wake_module(&d);
		got = daemon_ctl_recv(&d, buf, sizeof(buf), &c);
		if (got != 1)
			break;
		if (!result_ok(n, &c) && bad++ < 3)
			printf("# result %u differs\n", n);
		n++;
	}
	TAP_EQ_INT(got, 1, "serve: every result read and decoded");
	TAP_EQ_INT(n, NCALL, "serve: %u results", NCALL);
	TAP_EQ_INT(bad, 0, "serve: in order, with the call's id, status and payload");
	TAP_OK(daemon_ctl(&d, TE_WIRE_KIND_DESIRED, 0, 0, NULL, "{\"bye\":true,\"$version\":2}") == 0,
	       "serve: a last desired patch");
	daemon_wake_module(&d);
	TAP_EQ_INT(module_reap(pid), 0, "serve: the module's checks held");
	daemon_fini(&d);
}

int main(void)
{
	unsetenv("IOTEDGE_MODULEID");
	unsetenv("TINYEDGE_NOTIFY_FD");
	test_twin();
	test_report();
	test_methods();
	test_result_waits();
	test_refused();
	test_serve();
	return tap_done();
}
