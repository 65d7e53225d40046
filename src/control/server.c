/* The daemon's control socket (see server.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent/methods.h"
#include "core/base64.h"
#include "core/err.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/log.h"
#include "hub/wire.h"
#include "images/images.h"
#include "store/store.h"
#include "upstream/upstream.h"
#include "metrics.h"
#include "server.h"

#define FOLLOW_POLL_MS 200

static void client_close(struct te_ctl_client *c)
{
	if (c->img_pull && c->ctl->images)
		te_images_cancel(c->ctl->images, c->img_pull);
	c->img_pull = 0;
	te_io_del(c->ctl->loop, &c->io);
	close(c->io.fd);
	free(c->out);
	c->out = NULL;
	free(c->req);
	c->req = NULL;
	c->reqlen = c->reqcap = 0;
	c->used = false;
}

/* --- responses --- */

/* "seccomp": the profile; "seccompDenied": calls denied so far (all
 * instances); "seccompDeniedBy": the same per syscall name (first 16). */
static void list_seccomp(struct te_jw *w, const struct te_mod *md)
{
	const struct te_module_spec *sp = md->spec;
	const struct te_seccomp_mon *m = &md->sc;

	te_jw_kstr(w, "seccomp", sp->seccomp_unconfined ? "unconfined" :
		   sp->seccomp_kill ? "kill" : "errno");
	te_jw_kint(w, "seccompDenied", (int64_t)m->denied);
	te_jw_key(w, "seccompDeniedBy");
	te_jw_obj_open(w);
	for (unsigned i = 0; i < m->nby; i++) {
		const char *n = m->by[i].nr < 0 ? "SIGSYS" : te_syscall_name(m->by[i].nr);
		char num[16];

		if (!n)  /* an x32 number, say */
			snprintf(num, sizeof(num), "%d", m->by[i].nr);
		te_jw_kint(w, n ? n : num, (int64_t)m->by[i].n);
	}
	te_jw_obj_close(w);
}

static void list_module(struct te_jw *w, struct te_supervisor *sv,
			const struct te_mod *md)
{
	char t[40];
	uint64_t mem;

	te_jw_obj_open(w);
	te_jw_kstr(w, "name", md->name);
	te_jw_kstr(w, "status", md->want_running ? "running" : "stopped");
	te_jw_kstr(w, "runtimeStatus", te_mod_status(md));
	te_jw_kint(w, "pid", md->pid);
	te_jw_kint(w, "restartCount", md->restart_count);
	if (md->has_exited && WIFEXITED(md->exit_status))
		te_jw_kint(w, "exitCode", WEXITSTATUS(md->exit_status));
	if (md->has_exited && WIFSIGNALED(md->exit_status))
		te_jw_kint(w, "signal", WTERMSIG(md->exit_status));
	if (md->start_wall_ms) {
		te_time_iso(md->start_wall_ms, false, t, sizeof(t));
		te_jw_kstr(w, "lastStartTimeUtc", t);
		te_jw_kint(w, "uptimeSecs", md->pid ? (int64_t)(te_now_ms() - md->start_mono_ms) / 1000 : 0);
	}
	if (md->has_exited) {
		te_time_iso(md->exit_wall_ms, false, t, sizeof(t));
		te_jw_kstr(w, "lastExitTimeUtc", t);
	}
	if (md->pid && sv->have_cgroups && te_cgroup_memory(&sv->cgroups, &md->cg, &mem) == 0)
		te_jw_kint(w, "memoryBytes", (int64_t)mem);
	te_jw_kstr(w, "restartPolicy", te_restart_policy_name(md->spec->restart));
	if (md->port) {
		te_jw_kint(w, "messagesOut", (int64_t)md->port->msgs_out);
		te_jw_kint(w, "messagesIn", (int64_t)md->port->msgs_in);
		te_jw_kint(w, "messagesSpilled", (int64_t)md->port->spilled);
		te_jw_kint(w, "spillBytes", (int64_t)md->port->spill.used);
		te_jw_kint(w, "messagesDropped", (int64_t)md->port->dropped);
		if (md->port->stdio)
			te_jw_kint(w, "linesMalformed", (int64_t)md->port->malformed);
		/* Times its sending was paused by a block route's backlog. */
		te_jw_kint(w, "blockedCount", (int64_t)md->port->blocked);
		te_jw_kbool(w, "blocked", md->port->blocked_on != NULL);
	}
	list_seccomp(w, md);
	if (md->reason[0])
		te_jw_kstr(w, "statusDescription", md->reason);
	te_jw_obj_close(w);
}

int te_ctl_list_json(struct te_supervisor *sv, char *buf, size_t cap,
		     size_t *len)
{
	struct te_jw w;
	int r;

	te_jw_init(&w, buf, cap);
	te_jw_obj_open(&w);
	te_jw_key(&w, "modules");
	te_jw_arr_open(&w);
	for (unsigned i = 0; i < sv->nmods; i++)
		list_module(&w, sv, sv->mods[i]);
	te_jw_arr_close(&w);
	if (sv->router) {
		te_jw_key(&w, "routes");
		te_jw_arr_open(&w);
		for (unsigned i = 0; i < sv->router->nroutes; i++) {
			const struct te_rroute *rr = &sv->router->routes[i];

			te_jw_obj_open(&w);
			te_jw_kstr(&w, "name", rr->name);
			te_jw_kint(&w, "matched", (int64_t)rr->matched);
			te_jw_kint(&w, "delivered", (int64_t)rr->delivered);
			te_jw_kstr(&w, "overflow", te_overflow_name(rr->overflow));
			te_jw_kint(&w, "dropped", (int64_t)(rr->dropped_absent + rr->dropped_full +
							   rr->dropped_oldest));
			te_jw_kint(&w, "droppedNoModule", (int64_t)rr->dropped_absent);
			te_jw_kint(&w, "droppedFull", (int64_t)rr->dropped_full);
			te_jw_kint(&w, "droppedOldest", (int64_t)rr->dropped_oldest);
			te_jw_obj_close(&w);
		}
		te_jw_arr_close(&w);
		te_jw_kint(&w, "upstreamMessages", (int64_t)sv->router->upstream_msgs);
		if (sv->router->uplink) {
			te_jw_key(&w, "upstream");
			te_upstream_json(sv->router->uplink, &w);
		}
		te_jw_key(&w, "store");
		te_jw_obj_open(&w);
		te_jw_kbool(&w, "ok", sv->router->store != NULL);
		if (!sv->router->store)
			te_jw_kstr(&w, "error", sv->router->store_error);
		te_jw_obj_close(&w);
	}
	te_jw_obj_close(&w);
	r = te_jw_finish(&w);
	*len = w.len;
	return r;
}

/* Queue text for the client; the buffer grows (control path only). */
static int client_put(struct te_ctl_client *c, const char *s, size_t n)
{
	char *p = realloc(c->out, c->outlen + n);

	if (!p)
		return -ENOMEM;
	if (!c->out)
		c->out_ms = te_now_ms();
	memcpy(p + c->outlen, s, n);
	c->out = p;
	c->outlen += n;
	return 0;
}

static void client_error(struct te_ctl_client *c, int code, const char *msg)
{
	char buf[512];
	struct te_jw w;

	te_jw_init(&w, buf, sizeof(buf) - 1);
	te_jw_obj_open(&w);
	te_jw_kstr(&w, "error", msg);
	te_jw_kint(&w, "code", code);
	te_jw_obj_close(&w);
	if (te_jw_finish(&w) == 0) {
		buf[w.len] = '\n';
		client_put(c, buf, w.len + 1);
	}
}

static void reply_list(struct te_ctl_client *c)
{
	struct te_supervisor *sv = c->ctl->sv;
	size_t cap = 4096 + sv->nmods * 1024 + (sv->router ? sv->router->nroutes * 256 : 0), len;
	char *buf = malloc(cap);

	if (!buf || te_ctl_list_json(c->ctl->sv, buf, cap, &len) < 0) {
		client_error(c, 1, "out of memory");
	} else {
		buf[len] = '\n';
		client_put(c, buf, len + 1);
	}
	free(buf);
}

/* `tinyedge metrics`: the Prometheus text, as GET /metrics answers it. */
static void reply_metrics(struct te_ctl_client *c)
{
	struct te_prom p;
	int r;

	if (!c->ctl->metrics)
		return client_error(c, 1, "metrics are not available");
	te_prom_init_alloc(&p, 16384);
	r = te_metrics_render(c->ctl->metrics, &p);
	if (r < 0)
		client_error(c, 1, te_strerror(r));
	else
		client_put(c, p.buf, p.len);
	te_prom_free(&p);
}

/* Append the lines of md from c->next_seq on (no more than max). */
static void send_lines(struct te_ctl_client *c, struct te_mod *md,
		       uint64_t since_ms, unsigned max)
{
	struct te_logline l;
	char line[TE_LOG_LINE_MAX * 4 + 64];
	unsigned n = 0;

	while (n < max && te_logring_get(&md->log, c->next_seq, &l)) {
		c->next_seq = l.seq + 1;
		if (l.time_ms < since_ms)
			continue;
		client_put(c, line, te_logline_format(&l, line, sizeof(line)));
		n++;
	}
}


/* The first seq to send so that at most tail lines newer than since_ms go. */
static uint64_t tail_start(const struct te_mod *md, uint64_t since_ms,
			   int64_t tail)
{
	struct te_logline l;
	uint64_t seq = 0, total = 0, skip;

	while (te_logring_get(&md->log, seq, &l)) {
		seq = l.seq + 1;
		total += l.time_ms >= since_ms;
	}
	skip = tail >= 0 && (uint64_t)tail < total ? total - (uint64_t)tail : 0;
	seq = 0;
	while (skip && te_logring_get(&md->log, seq, &l)) {
		seq = l.seq + 1;
		skip -= l.time_ms >= since_ms;
	}
	return seq;
}

static void reply_logs(struct te_ctl_client *c, struct te_mod *md,
		       uint64_t since_ms, int64_t tail, bool follow)
{
	c->next_seq = tail_start(md, since_ms, tail);
	send_lines(c, md, since_ms, UINT32_MAX);
	if (follow) {
		c->follow = true;
		snprintf(c->module, sizeof(c->module), "%s", md->name);
		if (!c->ctl->follow_timer.active)
			te_timer_set(c->ctl->loop, &c->ctl->follow_timer, FOLLOW_POLL_MS);
	}
}

static const struct te_json_policy req_policy[] = {
	{ "cmd", TE_JSON_STRING, TE_JSON_REQUIRED },
	{ "module", TE_JSON_STRING, 0 },
	{ "tail", TE_JSON_NUMBER, 0 },
	{ "sinceMs", TE_JSON_NUMBER, 0 },
	{ "follow", TE_JSON_BOOL, 0 },
	{ "input", TE_JSON_STRING, 0 },
	{ "record", TE_JSON_STRING, 0 },
	{ "method", TE_JSON_STRING, 0 },
	{ "payload", TE_JSON_NULL | TE_JSON_BOOL | TE_JSON_NUMBER | TE_JSON_STRING |
		     TE_JSON_OBJECT | TE_JSON_ARRAY, 0 },
	{ "timeoutSecs", TE_JSON_NUMBER, 0 },
	{ "action", TE_JSON_STRING, 0 },
	{ "endpoint", TE_JSON_STRING, 0 },
	{ "limit", TE_JSON_NUMBER, 0 },
	{ "desired", TE_JSON_STRING, 0 },
	{ "url", TE_JSON_STRING, 0 },
};
enum { RQ_CMD, RQ_MODULE, RQ_TAIL, RQ_SINCE, RQ_FOLLOW, RQ_INPUT, RQ_RECORD, RQ_METHOD,
       RQ_PAYLOAD, RQ_TIMEOUT, RQ_ACTION, RQ_ENDPOINT, RQ_LIMIT, RQ_DESIRED, RQ_URL, RQ_N };

/* `tinyedge queue`: figures, purge ENDPOINT, peek ENDPOINT. */
static void reply_queue(struct te_ctl_client *c, struct te_json_doc *doc, const int *tb)
{
	struct te_router *rt = c->ctl->sv->router;
	char action[16] = "stats", ep[160] = "";
	struct te_store_cursor cur;
	int64_t limit = 100, n = 0;
	struct te_jw w;
	char *buf;
	size_t len;
	int r;

	if (!rt)
		return client_error(c, 1, "no router");
	if (tb[RQ_ACTION] >= 0 && te_json_str(doc, (unsigned)tb[RQ_ACTION], action, sizeof(action), NULL) < 0)
		return client_error(c, 2, "invalid action");
	if (tb[RQ_ENDPOINT] >= 0 && te_json_str(doc, (unsigned)tb[RQ_ENDPOINT], ep, sizeof(ep), NULL) < 0)
		return client_error(c, 2, "invalid endpoint");
	if (tb[RQ_LIMIT] >= 0 && (te_json_int(doc, (unsigned)tb[RQ_LIMIT], &limit) < 0 || limit < 1))
		return client_error(c, 2, "limit: a positive number");
	if (!strcmp(action, "stats")) {
		buf = malloc(1u << 20);
		if (!buf)
			return client_error(c, 1, te_strerror(-ENOMEM));
		te_jw_init(&w, buf, 1u << 20);
		r = te_queue_json(rt, &w);
		if (r < 0)
			client_error(c, 1, te_strerror(r));
		else
			client_put(c, buf, w.len), client_put(c, "\n", 1);
		free(buf);
		return;
	}
	if (strcmp(action, "purge") && strcmp(action, "peek"))
		return client_error(c, 2, "unknown queue action");
	r = !strcmp(action, "purge") ? te_queue_purge(rt, ep) : te_queue_peek_begin(rt, ep, &cur);
	if (r == -ENOTCONN)
		return client_error(c, 1, rt->store_error[0] ? rt->store_error : "no store");
	if (r == -ENOENT)
		return client_error(c, 2, "no such endpoint in the store");
	if (r < 0)
		return client_error(c, 1, te_strerror(r));
	if (!strcmp(action, "purge")) {
		client_put(c, "{\"ok\":true}\n", 12);
		return;
	}
	client_put(c, "{\"records\":[", 12);
	while (n < limit && (r = te_queue_peek_next(rt, &cur, &buf, &len)) == 0) {
		if (n++)
			client_put(c, ",", 1);
		client_put(c, buf, len);
		free(buf);
	}
	client_put(c, "]}\n", 3);
}

#define CALL_TIMEOUT_DEFAULT 30  /* seconds: Azure's default responseTimeout */

/* The call's method name into method; 0, or -1 with the error sent. */
static int call_method(struct te_ctl_client *c, struct te_json_doc *doc, const int *tb,
		       char method[TE_WIRE_STR_MAX + 2])
{
	size_t len;

	if (tb[RQ_METHOD] < 0 ||
	    te_json_str(doc, (unsigned)tb[RQ_METHOD], method, TE_WIRE_STR_MAX + 2, &len) < 0 ||
	    len == 0 || len > TE_WIRE_STR_MAX || memchr(method, '\0', len)) {
		client_error(c, 2, "call needs a method name (1-4096 bytes)");
		return -1;
	}
	return 0;
}

/* The payload's JSON text as given (a string token starts inside its
 * quotes), or dflt when there is none. */
static const char *call_payload(struct te_json_doc *doc, const int *tb, const char *dflt,
				size_t *len)
{
	const struct te_json_tok *t;

	if (tb[RQ_PAYLOAD] < 0) {
		*len = strlen(dflt);
		return dflt;
	}
	t = &doc->tok[tb[RQ_PAYLOAD]];
	*len = t->end - t->start + 2 * (t->type == TE_JSON_STRING);
	return doc->text + t->start - (t->type == TE_JSON_STRING);
}

/* `tinyedge call '$edgeAgent' METHOD`: the agent's built-in methods
 * (agent/methods.h), answered at once in the shape of a module's answer. */
static void reply_agent_call(struct te_ctl_client *c, struct te_json_doc *doc, const int *tb)
{
	char method[TE_WIRE_STR_MAX + 2], head[40];
	const char *payload;
	size_t plen, blen;
	unsigned status;
	char *body;
	int n;

	if (!c->ctl->agent)
		return client_error(c, 1, "this daemon has no $edgeAgent methods");
	if (call_method(c, doc, tb, method) < 0)
		return;
	payload = call_payload(doc, tb, "", &plen);
	status = te_agent_method(c->ctl->agent, method, payload, plen, &body, &blen);
	n = snprintf(head, sizeof(head), "{\"status\":%u,\"payload\":", status);
	client_put(c, head, (size_t)n);
	if (body)
		client_put(c, body, blen);
	else
		client_put(c, "null", 4);
	client_put(c, "}\n", 2);
	free(body);
}

/* `tinyedge call`: a direct method to a module; the answer comes later
 * (te_ctl_method_result) or the call times out (on_call_timer). */
static void reply_call(struct te_ctl_client *c, struct te_json_doc *doc, const int *tb,
		       struct te_mod *md)
{
	struct te_ctl *ctl = c->ctl;
	char method[TE_WIRE_STR_MAX + 2];
	const char *payload;
	int64_t secs = CALL_TIMEOUT_DEFAULT;
	size_t plen;
	int r;

	if (call_method(c, doc, tb, method) < 0)
		return;
	if (tb[RQ_TIMEOUT] >= 0 &&
	    (te_json_int(doc, (unsigned)tb[RQ_TIMEOUT], &secs) < 0 || secs < 1 || secs > 3600))
		return client_error(c, 2, "timeoutSecs: 1 to 3600");
	payload = call_payload(doc, tb, "null", &plen);
	if (!md->port)
		return client_error(c, 1, "the module has no message connection");
	if (++ctl->next_call_id == 0)
		ctl->next_call_id = 1;
	r = te_port_call(md->port, ctl->next_call_id, method, payload, (uint32_t)plen);
	if (r == -ENOTCONN)
		return client_error(c, 1, "the module is not running");
	if (r == -EOPNOTSUPP)
		return client_error(c, 2, "stdio modules have no direct methods");
	if (r == -EMSGSIZE)
		return client_error(c, 2, "the payload is too large for the module's ring");
	if (r < 0)
		return client_error(c, 1, te_strerror(r));
	c->call_id = ctl->next_call_id;
	c->call_secs = (unsigned)secs;
	c->call_deadline = te_now_ms() + (uint64_t)secs * 1000;
	snprintf(c->module, sizeof(c->module), "%s", md->name);
	if (!ctl->call_timer.active)
		te_timer_set(ctl->loop, &ctl->call_timer, 200);
}

static void client_respond(struct te_ctl_client *c);

/* `tinyedge twin NAME [--desired PATCH]`: apply a local desired patch
 * first (the request carries it as a string), then answer the twin. */
static void reply_twin(struct te_ctl_client *c, struct te_json_doc *doc, const int *tb,
		       struct te_mod *md)
{
	static char buf[TE_WIRE_TWIN_FULL_MAX + 2];
	char err[300], msg[360];
	size_t len;
	unsigned st;
	int r;

	if (!md->port || !md->port->twin.desired)
		return client_error(c, 1, "the module has no twin");
	if (tb[RQ_DESIRED] >= 0) {
		r = te_json_bytes(doc, (unsigned)tb[RQ_DESIRED], buf, TE_WIRE_TWIN_MAX + 1, &len);
		if (r < 0 || len > TE_WIRE_TWIN_MAX) {
			snprintf(msg, sizeof(msg), "the desired patch is over %u bytes",
				 TE_WIRE_TWIN_MAX);
			return client_error(c, 2, msg);
		}
		st = te_router_twin_desired(c->ctl->sv->router, md->name, buf, len, false, 0,
					    false, err, sizeof(err));
		if (st >= 400) {
			snprintf(msg, sizeof(msg), "%s desired patch: %s",
				 st == TE_WIRE_STATUS_TOO_LARGE ? "too large a" : "invalid", err);
			return client_error(c, st == TE_WIRE_STATUS_BAD_REQUEST ||
						       st == TE_WIRE_STATUS_TOO_LARGE ? 2 : 1, msg);
		}
	}
	if (te_twin_full(&md->port->twin, buf, sizeof(buf) - 1, &len) < 0)
		return client_error(c, 1, "twin too large");
	buf[len++] = '\n';
	client_put(c, buf, len);
}

void te_ctl_method_result(struct te_ctl *ctl, const char *module, uint32_t id,
			  uint32_t status, const void *body, uint32_t len)
{
	struct te_diag diag = { 0 };
	struct te_json_doc doc;
	struct te_ctl_client *c = NULL;
	struct te_jw w;
	char *buf;
	size_t cap = 6 * (size_t)len + 64;

	for (unsigned i = 0; i < TE_CTL_CLIENTS && !c; i++)
		if (ctl->clients[i].used && ctl->clients[i].call_id == id &&
		    !strcmp(ctl->clients[i].module, module))
			c = &ctl->clients[i];
	if (!c) {
		te_info("control", "module %s: late answer to method call %u dropped", module, id);
		return;
	}
	c->call_id = 0;
	buf = malloc(cap);
	if (!buf) {
		client_error(c, 1, te_strerror(-ENOMEM));
		client_respond(c);
		return;
	}
	te_jw_init(&w, buf, cap);
	te_jw_obj_open(&w);
	te_jw_kint(&w, "status", (int32_t)status);
	te_jw_key(&w, "payload");
	/* The module's JSON as it is; anything else becomes a string. */
	if (!len)
		te_jw_null(&w);
	else if (te_json_parse(&doc, "payload", body, len, NULL, &diag) == 0)
		te_jw_raw(&w, body, len), te_json_free(&doc);
	else
		te_jw_strn(&w, body, len);
	te_jw_obj_close(&w);
	if (te_jw_finish(&w) < 0) {
		client_error(c, 1, "answer too large");
	} else {
		client_put(c, buf, w.len);
		client_put(c, "\n", 1);
	}
	free(buf);
	client_respond(c);
}

static void on_call_timer(struct te_loop *l, struct te_timer *t)
{
	struct te_ctl *ctl = (struct te_ctl *)((char *)t - offsetof(struct te_ctl, call_timer));
	uint64_t now = te_now_ms();
	bool any = false;
	char msg[128];

	for (unsigned i = 0; i < TE_CTL_CLIENTS; i++) {
		struct te_ctl_client *c = &ctl->clients[i];

		if (!c->used || !c->call_id)
			continue;
		if (now < c->call_deadline) {
			any = true;
			continue;
		}
		c->call_id = 0;
		snprintf(msg, sizeof(msg), "module %s did not answer within %u s", c->module,
			 c->call_secs);
		client_error(c, 1, msg);
		client_respond(c);
	}
	if (any)
		te_timer_set(l, t, 200);
}

/* `tinyedge send`: a message record (wire.h, base64) into a module's input. */
static void reply_send(struct te_ctl_client *c, struct te_json_doc *doc, const int *tb,
		       const char *module)
{
	struct te_router *rt = c->ctl->sv->router;
	const struct te_json_tok *t = tb[RQ_RECORD] >= 0 ? &doc->tok[tb[RQ_RECORD]] : NULL;
	struct te_prop props[TE_WIRE_PROPS_MAX];
	char input[TE_WIRE_STR_MAX + 2];
	struct te_msg m;
	size_t len;
	uint8_t *rec;
	int r;

	if (!rt || !t || tb[RQ_INPUT] < 0 ||
	    te_json_str(doc, (unsigned)tb[RQ_INPUT], input, sizeof(input), &len) < 0 ||
	    len == 0 || len > TE_WIRE_STR_MAX)
		return client_error(c, 2, "send needs an input name and a record");
	rec = malloc(t->end - t->start);
	if (!rec)
		return client_error(c, 1, te_strerror(-ENOMEM));
	/* base64 has no escapes: the token's text is the encoding. */
	r = te_base64_decode(doc->text + t->start, t->end - t->start, rec, t->end - t->start,
			     &len, NULL);
	if (r == 0)
		r = te_msg_decode(rec, len, &m, props, TE_WIRE_PROPS_MAX);
	if (r < 0) {
		free(rec);
		return client_error(c, 2, "malformed message record");
	}
	m.origin = TE_ORIGIN_DEVICE;
	r = te_router_send(rt, module, input, &m);
	free(rec);
	if (r == -ENOENT)
		return client_error(c, 2, "that module has no message input (not running rings or stdio)");
	if (r < 0)
		return client_error(c, 1, r == -ENOSPC ? "its queue is full: message dropped"
						       : te_strerror(r));
	client_put(c, "{\"ok\":true}\n", 12);
}

/* --- images --- */

static void images_pulled(void *ctx, int status, const char *path, const char *err)
{
	struct te_ctl_client *c = ctx;
	char buf[PATH_MAX + 64];
	struct te_jw w;

	c->img_pull = 0;
	if (status < 0) {
		client_error(c, 1, err);
	} else {
		te_jw_init(&w, buf, sizeof(buf) - 1);
		te_jw_obj_open(&w);
		te_jw_kbool(&w, "ok", true);
		te_jw_kstr(&w, "path", path);
		te_jw_obj_close(&w);
		if (te_jw_finish(&w) == 0) {
			buf[w.len] = '\n';
			client_put(c, buf, w.len + 1);
		}
	}
	client_respond(c);
}

static void images_removed(void *ctx, const struct te_image *im)
{
	struct te_jw *w = ctx;

	te_jw_obj_open(w);
	te_jw_kstr(w, "sha256", im->sha256);
	te_jw_key(w, "size");
	te_jw_uint(w, im->size);
	te_jw_kstr(w, "url", im->url);
	te_jw_obj_close(w);
}

/* `tinyedge images`: list, pull URL (answered when done), gc. */
static void reply_images(struct te_ctl_client *c, struct te_json_doc *doc, const int *tb)
{
	struct te_images *im = c->ctl->images;
	size_t cap = 64 + TE_IMAGES_MAX * (TE_IMAGES_URL_MAX * 6 + 256);
	char url[TE_URL_MAX + 400], err[256];
	struct te_image_ref ref;
	struct te_jw w;
	char *buf;
	int r;

	if (!im)
		return client_error(c, 1, "the image cache is not available");
	if (tb[RQ_ACTION] >= 0 && te_json_streq(doc, (unsigned)tb[RQ_ACTION], "pull")) {
		if (tb[RQ_URL] < 0 || te_json_str(doc, (unsigned)tb[RQ_URL], url, sizeof(url), NULL) < 0)
			return client_error(c, 2, "images pull needs a url");
		if (te_image_ref_parse(url, &ref, err, sizeof(err)) < 0)
			return client_error(c, 2, err);
		r = te_images_pull(im, &ref, url, images_pulled, c);
		if (r < 0)
			return client_error(c, 1, r == -EBUSY ? "too many image pulls at once"
							       : te_strerror(r));
		c->img_pull = (unsigned)r;
		return;
	}
	if (!(buf = malloc(cap)))
		return client_error(c, 1, te_strerror(-ENOMEM));
	te_jw_init(&w, buf, cap - 1);
	if (tb[RQ_ACTION] >= 0 && te_json_streq(doc, (unsigned)tb[RQ_ACTION], "gc")) {
		te_jw_obj_open(&w);
		te_jw_key(&w, "removed");
		te_jw_arr_open(&w);
		te_images_gc(im, images_removed, &w);
		te_jw_arr_close(&w);
		te_jw_obj_close(&w);
	} else if (tb[RQ_ACTION] < 0 || te_json_streq(doc, (unsigned)tb[RQ_ACTION], "list")) {
		te_images_json(im, &w);
	} else {
		free(buf);
		return client_error(c, 2, "unknown images action");
	}
	if (te_jw_finish(&w) < 0) {
		client_error(c, 1, "answer too large");
	} else {
		buf[w.len] = '\n';
		client_put(c, buf, w.len + 1);
	}
	free(buf);
}

static void dispatch(struct te_ctl_client *c, struct te_json_doc *doc,
		     const int *tb)
{
	struct te_supervisor *sv = c->ctl->sv;
	char name[TE_MODULE_NAME_MAX + 2] = "", msg[160];
	int64_t tail = -1, since = 0;
	bool follow = false;
	struct te_mod *md = NULL;
	int r;

	if (te_json_streq(doc, (unsigned)tb[RQ_CMD], "list"))
		return reply_list(c);
	if (te_json_streq(doc, (unsigned)tb[RQ_CMD], "queue"))
		return reply_queue(c, doc, tb);
	if (te_json_streq(doc, (unsigned)tb[RQ_CMD], "call") && tb[RQ_MODULE] >= 0 &&
	    te_json_streq(doc, (unsigned)tb[RQ_MODULE], "$edgeAgent"))
		return reply_agent_call(c, doc, tb);
	if (te_json_streq(doc, (unsigned)tb[RQ_CMD], "metrics"))
		return reply_metrics(c);
	if (te_json_streq(doc, (unsigned)tb[RQ_CMD], "images"))
		return reply_images(c, doc, tb);
	if (tb[RQ_MODULE] < 0 || te_json_str(doc, (unsigned)tb[RQ_MODULE], name, sizeof(name), NULL) < 0)
		return client_error(c, 2, "missing or invalid module name");
	md = te_sv_find(sv, name);
	if (!md) {
		snprintf(msg, sizeof(msg), "no module named '%s'", name);
		return client_error(c, 2, msg);
	}
	if (te_json_streq(doc, (unsigned)tb[RQ_CMD], "logs")) {
		if (tb[RQ_TAIL] >= 0)
			te_json_int(doc, (unsigned)tb[RQ_TAIL], &tail);
		if (tb[RQ_SINCE] >= 0)
			te_json_int(doc, (unsigned)tb[RQ_SINCE], &since);
		if (tb[RQ_FOLLOW] >= 0)
			te_json_bool(doc, (unsigned)tb[RQ_FOLLOW], &follow);
		return reply_logs(c, md, since > 0 ? (uint64_t)since : 0, tail, follow);
	}
	if (te_json_streq(doc, (unsigned)tb[RQ_CMD], "send"))
		return reply_send(c, doc, tb, name);
	if (te_json_streq(doc, (unsigned)tb[RQ_CMD], "call"))
		return reply_call(c, doc, tb, md);
	if (te_json_streq(doc, (unsigned)tb[RQ_CMD], "twin"))
		return reply_twin(c, doc, tb, md);
	if (te_json_streq(doc, (unsigned)tb[RQ_CMD], "start"))
		r = te_sv_start(sv, name);
	else if (te_json_streq(doc, (unsigned)tb[RQ_CMD], "stop"))
		r = te_sv_stop(sv, name);
	else if (te_json_streq(doc, (unsigned)tb[RQ_CMD], "restart"))
		r = te_sv_restart(sv, name);
	else
		return client_error(c, 2, "unknown cmd");
	if (r < 0)
		return client_error(c, 1, te_strerror(r));
	client_put(c, "{\"ok\":true}\n", 12);
}

static void handle_request(struct te_ctl_client *c)
{
	struct te_diag diag = { 0 };
	struct te_json_limits lim = { TE_CTL_REQ_MAX, 65536, 16 };
	struct te_json_doc doc;
	int tb[RQ_N];

	if (te_json_parse(&doc, "request", c->req, c->reqlen, &lim, &diag) < 0)
		return client_error(c, 2, "malformed request");
	if (doc.tok[0].type != TE_JSON_OBJECT ||
	    te_json_read_object(&doc, 0, "", req_policy, RQ_N, tb, &diag))
		client_error(c, 2, "invalid request");
	else
		dispatch(c, &doc, tb);
	te_json_free(&doc);
}

void te_ctl_request(struct te_ctl_client *c, const char *line, size_t len)
{
	char *keep = c->req;
	size_t keeplen = c->reqlen;

	c->req = (char *)line;
	c->reqlen = len;
	handle_request(c);
	c->req = keep;
	c->reqlen = keeplen;
}

/* --- client I/O --- */

/* Write what is pending; 0 when done or waiting for EPOLLOUT, -1 on error. */
static int client_flush(struct te_ctl_client *c)
{
	size_t off = c->outoff;
	int r = te_send_pending(c->io.fd, c->out, c->outlen, &c->outoff);

	if (r < 0)
		return -1;
	if (c->outoff != off)
		c->out_ms = te_now_ms();
	if (r == 0) {
		te_io_mod(c->ctl->loop, &c->io, EPOLLIN | EPOLLOUT);
		return 0;
	}
	free(c->out);
	c->out = NULL;
	c->outlen = c->outoff = 0;
	te_io_mod(c->ctl->loop, &c->io, EPOLLIN);
	return 0;
}

/* After a request: flush; close unless following a log. */
static void client_respond(struct te_ctl_client *c)
{
	if (client_flush(c) < 0 || (!c->follow && !c->call_id && !c->img_pull && !c->out))
		client_close(c);
}

static void client_read(struct te_ctl_client *c)
{
	ssize_t n;
	char *nl;

	if (c->reqlen + 1 >= c->reqcap && c->reqcap < TE_CTL_REQ_MAX) {
		size_t cap = c->reqcap ? c->reqcap * 2 : 1024;
		char *p = realloc(c->req, cap);

		if (!p) {
			client_close(c);
			return;
		}
		c->req = p;
		c->reqcap = cap;
	}
	n = recv(c->io.fd, c->req + c->reqlen, c->reqcap - 1 - c->reqlen, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0 || c->follow) { /* closed, or input after the request */
		client_close(c);
		return;
	}
	c->reqlen += (size_t)n;
	nl = memchr(c->req, '\n', c->reqlen);
	if (!nl) {
		/* Keep reading (and, past the limit, dropping) to the newline, so
		 * the answer is not lost to a reset of unread input. */
		if (c->reqlen == c->reqcap - 1 && c->reqcap >= TE_CTL_REQ_MAX) {
			c->overlong = true;
			c->reqlen = 0;
		}
		return;
	}
	c->reqlen = (size_t)(nl - c->req);
	c->answered = true;
	if (c->overlong)
		client_error(c, 2, "request too long");
	else
		handle_request(c);
	c->reqlen = 1; /* a request was answered (see on_client) */
	client_respond(c);
}

static void on_client(struct te_loop *l, struct te_io *io, uint32_t ev)
{
	struct te_ctl_client *c = (struct te_ctl_client *)io;

	if (ev & (EPOLLERR | EPOLLHUP)) {
		client_close(c);
		return;
	}
	if ((ev & EPOLLOUT) && client_flush(c) < 0) {
		client_close(c);
		return;
	}
	if (!c->follow && !c->call_id && !c->img_pull && c->reqlen && !c->out && (ev & EPOLLOUT)) {
		client_close(c); /* response fully sent */
		return;
	}
	if (ev & EPOLLIN)
		client_read(c);
}

/* Root, the daemon's own user and, when configured, the admin group
 * (the peer's primary group or one of its supplementary groups). */
static bool peer_allowed(const struct te_ctl *ctl, int fd, struct ucred *cred)
{
	gid_t groups[256];
	socklen_t len = sizeof(*cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) < 0)
		return false;
	if (cred->uid == 0 || cred->uid == geteuid())
		return true;
	if (!ctl->admin)
		return false;
	if (cred->gid == ctl->admin_gid)
		return true;
	len = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false;
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == ctl->admin_gid)
			return true;
	return false;
}

/* Say why, in the protocol's error shape, then hang up; a warning in the
 * log at most once per 10 s so a flood cannot fill it. */
static void refuse(struct te_ctl *ctl, int fd, const char *why, const struct ucred *cred)
{
	char line[200];
	int n = snprintf(line, sizeof(line), "{\"error\":\"%s\",\"code\":1}\n", why);
	uint64_t now = te_now_ms();
	unsigned drained = 0;

	(void)!send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	/* A request already here, read, spares the client a reset before it
	 * reads the line (a unix socket closed with unread input resets). */
	while (recv(fd, line, sizeof(line), MSG_DONTWAIT) > 0 && ++drained < 64)
		;
	close(fd);
	ctl->refused++;
	if (!ctl->refused_log_ms || now - ctl->refused_log_ms >= 10000) {
		ctl->refused_log_ms = now;
		if (cred)
			te_warn("control", "refused a client (uid %u, pid %d): %s (%llu refused so far)",
				(unsigned)cred->uid, (int)cred->pid, why, (unsigned long long)ctl->refused);
		else
			te_warn("control", "refused a client: %s (%llu refused so far)", why,
				(unsigned long long)ctl->refused);
	}
}

static void on_reap(struct te_loop *l, struct te_timer *t)
{
	struct te_ctl *ctl = (struct te_ctl *)((char *)t - offsetof(struct te_ctl, reap_timer));
	uint64_t now = te_now_ms();
	bool any = false;

	for (unsigned i = 0; i < TE_CTL_CLIENTS; i++) {
		struct te_ctl_client *c = &ctl->clients[i];

		if (!c->used)
			continue;
		if (!c->answered && now >= c->deadline_ms) {
			te_warn("control", "dropped a client that sent no request in %d s",
				TE_CTL_REQ_SECS);
			client_close(c);
		} else if (c->out && now - c->out_ms >= TE_CTL_STALL_SECS * 1000ull) {
			te_warn("control", "dropped a client that read none of its answer in %d s",
				TE_CTL_STALL_SECS);
			client_close(c);
		} else {
			any = true;
		}
	}
	if (any)
		te_timer_set(l, t, 1000);
}

static void on_accept(struct te_loop *l, struct te_io *io, uint32_t ev)
{
	struct te_ctl *ctl = (struct te_ctl *)((char *)io - offsetof(struct te_ctl, listen));
	int fd;

	while ((fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct te_ctl_client *c = NULL;
		struct ucred cred;

		if (!peer_allowed(ctl, fd, &cred)) {
			refuse(ctl, fd, ctl->admin ? "permission denied: not root, the daemon's user or the admin group"
						   : "permission denied: not root or the daemon's user", &cred);
			continue;
		}
		for (unsigned i = 0; i < TE_CTL_CLIENTS && !c; i++)
			if (!ctl->clients[i].used)
				c = &ctl->clients[i];
		if (!c) {
			refuse(ctl, fd, "busy: too many control connections; try again", NULL);
			continue;
		}
		memset(c, 0, sizeof(*c));
		c->used = true;
		c->ctl = ctl;
		c->deadline_ms = te_now_ms() + TE_CTL_REQ_SECS * 1000ull;
		c->io = (struct te_io){ .fd = fd, .cb = on_client };
		if (te_io_add(l, &c->io, EPOLLIN) < 0)
			client_close(c);
		else if (!ctl->reap_timer.active)
			te_timer_set(l, &ctl->reap_timer, 1000);
	}
}

/* Followed logs: send new lines of each followed module. */
static void on_follow(struct te_loop *l, struct te_timer *t)
{
	struct te_ctl *ctl = (struct te_ctl *)((char *)t - offsetof(struct te_ctl, follow_timer));
	bool any = false;

	for (unsigned i = 0; i < TE_CTL_CLIENTS; i++) {
		struct te_ctl_client *c = &ctl->clients[i];
		struct te_mod *md;

		if (!c->used || !c->follow)
			continue;
		md = te_sv_find(ctl->sv, c->module);
		if (!md) {
			client_close(c);
			continue;
		}
		if (!c->out)
			send_lines(c, md, 0, 1000);
		if (client_flush(c) < 0) {
			client_close(c);
			continue;
		}
		any = true;
	}
	if (any)
		te_timer_set(l, t, FOLLOW_POLL_MS);
}

int te_ctl_open(struct te_ctl *ctl, struct te_loop *loop,
		struct te_supervisor *sv, const char *state_dir)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	mode_t old;
	int fd, r;

	memset(ctl, 0, sizeof(*ctl));
	ctl->loop = loop;
	ctl->sv = sv;
	ctl->follow_timer.cb = on_follow;
	ctl->call_timer.cb = on_call_timer;
	ctl->reap_timer.cb = on_reap;
	snprintf(ctl->path, sizeof(ctl->path), "%s/control.sock", state_dir);
	if (strlen(ctl->path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, ctl->path, strlen(ctl->path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(ctl->path);
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old);
	if (r < 0 || listen(fd, 16) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	ctl->listen = (struct te_io){ .fd = fd, .cb = on_accept };
	return te_io_add(loop, &ctl->listen, EPOLLIN);
}

void te_ctl_close(struct te_ctl *ctl)
{
	for (unsigned i = 0; i < TE_CTL_CLIENTS; i++)
		if (ctl->clients[i].used)
			client_close(&ctl->clients[i]);
	te_timer_cancel(ctl->loop, &ctl->follow_timer);
	te_timer_cancel(ctl->loop, &ctl->call_timer);
	te_timer_cancel(ctl->loop, &ctl->reap_timer);
	if (ctl->listen.fd > 0) {
		te_io_del(ctl->loop, &ctl->listen);
		close(ctl->listen.fd);
		unlink(ctl->path);
	}
}

void te_ctl_set_admin(struct te_ctl *ctl, bool admin, gid_t gid)
{
	char dir[PATH_MAX];
	char *slash;

	if (!admin && !ctl->admin)
		return;  /* nothing to undo: the defaults stay as made */
	snprintf(dir, sizeof(dir), "%s", ctl->path);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	if (!admin)
		gid = getegid();
	if (chown(ctl->path, (uid_t)-1, gid) < 0 || chmod(ctl->path, admin ? 0660 : 0600) < 0 ||
	    (slash && (chown(dir, (uid_t)-1, gid) < 0 || chmod(dir, admin ? 0710 : 0700) < 0))) {
		te_error("control", "admin group %u for %s: %s", (unsigned)gid, ctl->path,
			 strerror(errno));
		return;
	}
	if (admin && (!ctl->admin || gid != ctl->admin_gid))
		te_info("control", "group %u may use %s", (unsigned)gid, ctl->path);
	else if (!admin)
		te_info("control", "only root and the daemon's user may use %s", ctl->path);
	ctl->admin = admin;
	ctl->admin_gid = gid;
}
