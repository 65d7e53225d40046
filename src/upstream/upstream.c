/* The uplink session (upstream.h). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "azure.h"
#include "core/err.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/json_patch.h"
#include "core/log.h"
#include "hub/router.h"
#include "hub/wire.h"
#include "mqtt.h"
#include "tls.h"
#include "upstream.h"
#include "version.h"

#define BUF_BYTES (1u << 20)          /* largest packet in either direction */
#define MSG_LIMIT (256u * 1024)       /* IoT Hub's message size limit */
#define RESOLVE_TIMEOUT_MS 10000
#define CONNECT_TIMEOUT_MS 10000
#define CLOCK_RECHECK_MS 1000        /* waiting for a sane clock costs no I/O */
#define SAS_TTL_SECS 3600             /* renewed (reconnect) at 80 % */
#define PID_SUBSCRIBE 1               /* packet ids of our own below the window */

static void up_fail(struct te_upstream *u, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void good_time_write(struct te_upstream *u);
static void up_connect(struct te_upstream *u);

const char *te_upstream_state_name(enum te_up_state s)
{
	static const char *const n[] = { "idle", "resolving", "connecting", "tls",
					 "mqtt", "online", "backoff" };

	return n[s];
}

static uint64_t wall_secs(void)
{
	return (uint64_t)time(NULL);
}

/* --- output --- */

/* Queue bytes for the peer; false when the buffer is full. */
static bool out_room(struct te_upstream *u, size_t n)
{
	if (u->woff && u->wlen + n > u->bufcap) {
		memmove(u->wbuf, u->wbuf + u->woff, u->wlen - u->woff);
		u->wlen -= u->woff;
		u->woff = 0;
	}
	return u->wlen + n <= u->bufcap;
}

/* Write what is queued; arm EPOLLOUT while some is left. */
static void out_flush(struct te_upstream *u)
{
	ssize_t n;
	uint32_t ev = EPOLLIN;

	while (u->woff < u->wlen) {
		n = u->tls ? te_tls_write(u->tls, u->wbuf + u->woff, u->wlen - u->woff)
			   : send(u->io.fd, u->wbuf + u->woff, u->wlen - u->woff,
				  MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && !u->tls && errno == EINTR)
			continue;
		if ((n < 0 && !u->tls && errno == EAGAIN) || n == -EAGAIN)
			break;
		if (n < 0) {
			up_fail(u, "send: %s", u->tls ? te_tls_error(u->tls) : strerror(errno));
			return;
		}
		u->woff += (size_t)n;
		u->last_tx_ms = te_now_ms();
	}
	if (u->woff == u->wlen)
		u->woff = u->wlen = 0;
	if (u->tls) {
		int fr = te_tls_flush(u->tls);

		if (fr < 0 && fr != -EAGAIN) {
			up_fail(u, "TLS: %s", te_tls_error(u->tls));
			return;
		}
		ev = te_tls_events(u->tls) | EPOLLIN;
	} else if (u->wlen) {
		ev |= EPOLLOUT;
	}
	if (u->io.events != ev)
		te_io_mod(u->loop, &u->io, ev);
}

/* --- Azure IoT Hub: identity, SAS, twin, direct methods --- */

static int azure_setup(struct te_upstream *u, char *err, size_t errlen)
{
	struct te_azure_cs *cs = &u->cs;
	size_t len;
	int r = te_azure_cs_parse(u->id ? u->id->connection_string : u->cfg->connection_string,
				  cs, err, errlen);

	if (r < 0)
		return r;
	snprintf(u->host, sizeof(u->host), "%s", cs->gateway[0] ? cs->gateway : cs->host);
	u->device_id = cs->device;
	snprintf(u->module_id, sizeof(u->module_id), "%s", cs->module);
	if (te_azure_client_id(cs->device, cs->module, u->client_id, sizeof(u->client_id), &len) < 0 ||
	    te_azure_username(cs->host, cs->device, cs->module, u->username, sizeof(u->username),
			      &len) < 0) {
		snprintf(err, errlen, "upstream.connectionString: ids too long");
		return -TE_EINVALID;
	}
	u->sas_expiry = cs->x509 ? UINT64_MAX : 0;  /* X.509: the client certificate */
	return 0;
}

/* A SAS token for this connection, valid until u->sas_expiry. */
static int azure_password(struct te_upstream *u)
{
	char resource[3 * TE_HOST_MAX], token[TE_SECRET_MAX];
	size_t len;
	int r = te_azure_resource(u->cs.host, u->cs.device, u->cs.module, resource,
				  sizeof(resource), &len);

	if (r == 0)
		r = te_azure_sas(u->cs.key, resource, u->sas_expiry,
				 u->cs.key_name[0] ? u->cs.key_name : NULL, token, sizeof(token));
	if (r < 0) {
		snprintf(u->last_error, sizeof(u->last_error), "cannot mint a SAS token: %s",
			 te_strerror(r));
		return r;
	}
	free(u->password);
	u->password = strdup(token);
	explicit_bzero(token, sizeof(token));
	return u->password ? 0 : -ENOMEM;
}

/* Generic mode: the daemon's own methods are under this module name. */
#define GEN_SELF "edge"

/* A QoS 0 PUBLISH of ours (twin requests, method results). */
static void azure_send(struct te_upstream *u, const char *topic, const void *payload, size_t n)
{
	struct te_mqtt_publish pub = { .topic = { topic, strlen(topic) }, .payload = payload,
				       .payload_len = n };
	size_t len;

	if (!out_room(u, strlen(topic) + n + 16) ||
	    te_mqtt_enc_publish(u->wbuf + u->wlen, u->bufcap - u->wlen, &pub, &len) < 0) {
		te_warn("upstream", "no room to send %s", topic);
		return;
	}
	u->wlen += len;
	out_flush(u);
}

static void azure_get_twin(struct te_upstream *u)
{
	char rid[16], topic[128];
	size_t len;

	snprintf(rid, sizeof(rid), "t%u", ++u->next_rid);
	if (te_azure_twin_get_topic(rid, topic, sizeof(topic), &len) == 0)
		azure_send(u, topic, "", 0);
}

void te_upstream_twin_refresh(struct te_upstream *u)
{
	if (u->loop && u->state == TE_UPS_ONLINE && u->cfg->protocol == TE_UP_AZURE &&
	    !(u->id && u->id->module[0] == '$'))
		azure_get_twin(u);
}

/* A method's answer: IoT Hub's topic, or generic mode's under module
 * (GEN_SELF for the daemon's own methods). */
static void method_answer(struct te_upstream *u, const char *module, unsigned status,
			  const char *rid, const void *body, size_t n)
{
	char topic[600];
	size_t len;
	int r = u->cfg->protocol == TE_UP_AZURE ?
		te_azure_method_res_topic(status, rid, topic, sizeof(topic), &len) :
		te_gen_topic(TE_GEN_METHOD_RES, u->device_id, module, rid, status, topic,
			     sizeof(topic), &len);

	if (r == 0)
		azure_send(u, topic, body, n);
}

/* A built-in $edgeAgent method, answered at once. */
static void agent_call(struct te_upstream *u, const char *reply_to, const char *method,
		       const char *rid, const void *payload, size_t n)
{
	static const char none[] = "{\"message\":\"no such method\"}";
	char *out = NULL;
	size_t len = 0;
	unsigned status = u->hooks && u->hooks->agent_method ?
			  u->hooks->agent_method(u->hooks->ctx, method, payload, n, &out, &len) : 404;

	if (!out && status == 404)
		method_answer(u, reply_to, status, rid, none, sizeof(none) - 1);
	else
		method_answer(u, reply_to, status, rid, out ? out : "null", out ? len : 4);
	free(out);
}

/* A direct method for module (NULL: the daemon's own, which has "ping"):
 * a module's goes to its handler (te_port_call) and its answer comes back
 * through te_upstream_method_result. */
static void method_call(struct te_upstream *u, const char *module, const char *method,
			const char *rid, const void *payload, size_t n)
{
	const char *reply_to = module ? module : GEN_SELF;
	struct te_port *p = NULL;
	char body[300];
	int r;

	if (!module && !strcmp(method, "ping")) {
		snprintf(body, sizeof(body), "{\"device\":\"%s\",\"version\":\"%s\"}", u->device_id,
			 TE_VERSION);
		method_answer(u, reply_to, 200, rid, body, strlen(body));
		return;
	}
	if (!module || !strcmp(module, TE_AGENT_ID)) {
		agent_call(u, reply_to, method, rid, payload, n);
		return;
	}
	for (unsigned i = 0; module && i < u->rt->nports && !p; i++)
		if (!strcmp(u->rt->ports[i]->name, module))
			p = u->rt->ports[i];
	if (!p || u->ncalls == TE_UP_CALLS_MAX) {
		snprintf(body, sizeof(body), "{\"message\":\"%s\"}",
			 p ? "too many calls in progress" : "no such method");
		method_answer(u, reply_to, p ? 429 : 404, rid, body, strlen(body));
		return;
	}
	if (++u->next_call == 0)
		u->next_call = 1;
	r = te_port_call(p, TE_UP_CALL_BIT | u->next_call, method, n ? payload : "null",
			 n ? (uint32_t)n : 4);
	if (r < 0) {
		snprintf(body, sizeof(body), "{\"message\":\"module %s: %s\"}", p->name,
			 r == -ENOTCONN ? "not running" : "cannot take the call");
		method_answer(u, reply_to, r == -ENOTCONN ? 404 : 500, rid, body, strlen(body));
		return;
	}
	for (unsigned i = 0; i < TE_UP_CALLS_MAX; i++) {
		if (!u->calls[i].id) {
			u->calls[i].id = TE_UP_CALL_BIT | u->next_call;
			u->calls[i].deadline = te_now_ms() + 30000;
			snprintf(u->calls[i].rid, sizeof(u->calls[i].rid), "%s", rid);
			snprintf(u->calls[i].module, sizeof(u->calls[i].module), "%s", module);
			u->ncalls++;
			break;
		}
	}
}

/* IoT Hub: "ping", or "MODULE.METHOD" for a module's handler. */
static void azure_method(struct te_upstream *u, const struct te_azure_in *in,
			 const void *payload, size_t n)
{
	char module[TE_ID_MAX + 1];
	const char *dot = strchr(in->method, '.');

	if (u->id) {  /* the module's own connection ($edgeAgent's: the built-ins) */
		method_call(u, u->id->module, in->method, in->rid, payload, n);
		return;
	}
	if (!dot || (size_t)(dot - in->method) > TE_ID_MAX) {
		method_call(u, NULL, in->method, in->rid, payload, n);
		return;
	}
	snprintf(module, sizeof(module), "%.*s", (int)(dot - in->method), in->method);
	method_call(u, module, dot + 1, in->rid, payload, n);
}

void te_upstream_method_result(struct te_upstream *u, uint32_t id, uint32_t status,
			       const void *body, uint32_t n)
{
	for (unsigned i = 0; i < TE_UP_CALLS_MAX; i++) {
		if (u->calls[i].id != id)
			continue;
		if (u->state == TE_UPS_ONLINE)
			method_answer(u, u->calls[i].module, status >= 100 && status <= 999 ? status : 500,
				      u->calls[i].rid, body, n);
		u->calls[i].id = 0;
		u->ncalls--;
		return;
	}
}

static void expire_calls(struct te_upstream *u)
{
	static const char late[] = "{\"message\":\"the module did not answer in time\"}";
	uint64_t now = te_now_ms();

	for (unsigned i = 0; i < TE_UP_CALLS_MAX; i++) {
		if (!u->calls[i].id || now < u->calls[i].deadline)
			continue;
		method_answer(u, u->calls[i].module, 504, u->calls[i].rid, late, sizeof(late) - 1);
		u->calls[i].id = 0;
		u->ncalls--;
	}
}

/* The cloud's desired properties (whole: a twin GET; else a patch) at
 * version: $edgeAgent's and $edgeHub's make the deployment; a module
 * identity's are its twin; the device twin's hold module twins by module
 * name ({"filter": {...}}). */
static void desired_dispatch(struct te_upstream *u, const char *json, size_t n,
			     int64_t version, bool full)
{
	struct te_diag quiet = { 0 };
	struct te_json_doc d;
	char err[300], module[TE_ID_MAX + 1];
	const char *p;
	size_t len;

	if (u->id && u->id->module[0] == '$') {
		int kind = !strcmp(u->id->module, TE_AGENT_ID) ? 0 : 1;

		if (u->hooks && u->hooks->deployment)
			u->hooks->deployment(u->hooks->ctx, kind, json, n, version, full);
		return;
	}
	if (u->id) {
		if (te_router_twin_desired(u->rt, u->id->module, json, n, true, version, full, err,
					   sizeof(err)) / 100 == 4)
			te_warn("upstream", "module %s: desired properties refused: %s",
				u->id->module, err);
		return;
	}
	if (te_json_parse(&d, "desired", json, n, NULL, &quiet) < 0 ||
	    d.tok[0].type != TE_JSON_OBJECT) {
		te_warn("upstream", "desired properties that are not a JSON object: ignored");
		te_json_free(&d);
		return;
	}
	TE_JSON_FOREACH_MEMBER(&d, 0, k, v) {
		unsigned st;

		if (te_json_str(&d, k, module, sizeof(module), NULL) < 0 || module[0] == '$' ||
		    te_router_identity_of(u->rt, module))
			continue;
		if (d.tok[v].type == TE_JSON_NULL)
			p = "{}", len = 2, full = true;
		else
			p = d.text + d.tok[v].start, len = d.tok[v].end - d.tok[v].start;
		if (d.tok[v].type != TE_JSON_OBJECT && d.tok[v].type != TE_JSON_NULL)
			continue;
		st = te_router_twin_desired(u->rt, module, p, len, true, version, full, err,
					    sizeof(err));
		if (st == 400 || st == 413)
			te_warn("upstream", "module %s: desired properties refused: %s", module, err);
	}
	te_json_free(&d);
}

/* A twin GET's answer: {"desired": {...}, "reported": {...}}. */
static void twin_received(struct te_upstream *u, const char *json, size_t n)
{
	struct te_diag quiet = { 0 };
	struct te_json_doc d;
	int des, ver;
	int64_t v = 0;

	if (te_json_parse(&d, "twin", json, n, NULL, &quiet) < 0 ||
	    d.tok[0].type != TE_JSON_OBJECT ||
	    (des = te_json_get(&d, 0, "desired")) < 0 || d.tok[des].type != TE_JSON_OBJECT) {
		te_warn("upstream", "twin without desired properties: ignored");
		te_json_free(&d);
		return;
	}
	ver = te_json_get(&d, (unsigned)des, "$version");
	if (ver >= 0)
		te_json_int(&d, (unsigned)ver, &v);
	u->desired_version = v > 0 ? (uint64_t)v : 0;
	desired_dispatch(u, d.text + d.tok[des].start, d.tok[des].end - d.tok[des].start, v,
			 true);
	te_json_free(&d);
}

static void azure_inbound(struct te_upstream *u, const char *topic, size_t tlen,
			  const void *payload, size_t n)
{
	struct te_azure_in in;

	if (te_azure_parse_topic(topic, tlen, &in) < 0) {
		te_warn("upstream", "ignored a message on an unexpected topic (%zu bytes)", tlen);
		return;
	}
	switch (in.kind) {
	case TE_AZ_TWIN_RES:
		if (in.status / 100 != 2)
			te_warn("upstream", "twin request %s: status %u", in.rid, in.status);
		else if (in.rid[0] == 't') {
			te_info("upstream", "%s twin received (%zu bytes)", u->id ? u->id->module : "device", n);
			twin_received(u, payload, n);
		}
		return;
	case TE_AZ_TWIN_DESIRED:
		/* Newest $version wins; a stale patch is ignored. */
		if (in.version <= u->desired_version) {
			te_info("upstream", "stale desired patch %llu ignored (have %llu)",
				(unsigned long long)in.version, (unsigned long long)u->desired_version);
			return;
		}
		u->desired_version = in.version;
		te_info("upstream", "desired properties version %llu (%zu bytes)",
			(unsigned long long)in.version, n);
		desired_dispatch(u, payload, n, (int64_t)in.version, false);
		return;
	case TE_AZ_METHOD:
		azure_method(u, &in, payload, n);
		return;
	}
}

/* For `tinyedge list --json`. */
void te_upstream_json(const struct te_upstream *u, struct te_jw *w)
{
	te_jw_obj_open(w);
	te_jw_kstr(w, "protocol", te_upstream_protocol_name(u->cfg->protocol));
	te_jw_kstr(w, "state", te_upstream_state_name(u->state));
	te_jw_kstr(w, "host", u->host);
	te_jw_kint(w, "port", u->port);
	te_jw_kstr(w, "clientId", u->client_id);
	te_jw_kint(w, "connects", (int64_t)u->connects);
	te_jw_kint(w, "failures", (int64_t)u->failures);
	te_jw_kint(w, "published", (int64_t)u->published);
	te_jw_kint(w, "acknowledged", (int64_t)u->acked);
	te_jw_kint(w, "inflight", u->ninflight);
	te_jw_kint(w, "deadLettered", (int64_t)u->dead_lettered);
	if (u->last_error[0])
		te_jw_kstr(w, "lastError", u->last_error);
	te_jw_obj_close(w);
}

/* A JSON object's "$version" (0 when it has none). */
static int64_t json_version(const void *json, size_t n)
{
	struct te_diag quiet = { 0 };
	struct te_json_doc d;
	int64_t v = 0;
	int t;

	if (te_json_parse(&d, "desired", json, n, NULL, &quiet) == 0 &&
	    d.tok[0].type == TE_JSON_OBJECT && (t = te_json_get(&d, 0, "$version")) >= 0)
		te_json_int(&d, (unsigned)t, &v);
	te_json_free(&d);
	return v;
}

/* Generic mode: the retained deployment (tinyedge/{device}/deployment),
 * desired patches (tinyedge/{device}/{module}/twin/desired, "$version"
 * inside) and methods (tinyedge/{device}/{module}/methods/{name}/{rid}). */
static void gen_inbound(struct te_upstream *u, const char *topic, size_t tlen,
			const void *payload, size_t n)
{
	struct te_gen_in in;
	char dep[TE_HOST_MAX + 32], err[300];
	int64_t v;

	snprintf(dep, sizeof(dep), "tinyedge/%s/deployment", u->device_id);
	if (tlen == strlen(dep) && !memcmp(topic, dep, tlen)) {
		if (n && u->hooks && u->hooks->deployment)
			u->hooks->deployment(u->hooks->ctx, 2, payload, n, json_version(payload, n),
					     true);
		return;
	}
	if (te_gen_parse_topic(topic, tlen, u->device_id, &in) < 0) {
		te_warn("upstream", "ignored a message on an unexpected topic (%zu bytes)", tlen);
		return;
	}
	if (in.kind == TE_GEN_IN_DESIRED) {
		v = json_version(payload, n);
		if (te_router_twin_desired(u->rt, in.module, payload, n, true, v, false, err,
					   sizeof(err)) / 100 == 4)
			te_warn("upstream", "module %s: desired patch refused: %s", in.module, err);
		return;
	}
	if (in.kind == TE_GEN_IN_METHOD)
		method_call(u, strcmp(in.module, GEN_SELF) ? in.module : NULL, in.method, in.rid,
			    payload, n);
}

/* --- reported properties to the cloud --- */

#define REPORTED_MAX (64u * 1024)

/* Send what waits: IoT Hub's reported PATCH (one merged document), or in
 * generic mode one .../twin/reported/{rid} per module. */
static void reported_flush(struct te_upstream *u)
{
	struct te_diag diag = { 0 };
	struct te_json_doc doc;
	char rid[16], topic[600];
	size_t len;

	if (!u->reported || u->state != TE_UPS_ONLINE)
		return;
	snprintf(rid, sizeof(rid), "r%u", ++u->next_rid);
	if (u->cfg->protocol == TE_UP_AZURE) {
		if (te_azure_twin_reported_topic(rid, topic, sizeof(topic), &len) == 0)
			azure_send(u, topic, u->reported, u->reported_len);
	} else if (te_json_parse(&doc, "reported", u->reported, u->reported_len, NULL,
				 &diag) == 0) {
		TE_JSON_FOREACH_MEMBER(&doc, 0, k, v) {
			char module[TE_ID_MAX + 1];

			if (te_json_str(&doc, k, module, sizeof(module), NULL) < 0 ||
			    te_gen_topic(TE_GEN_TWIN_REPORTED, u->device_id, module, rid, 0, topic,
					 sizeof(topic), &len) < 0)
				continue;
			azure_send(u, topic, doc.text + doc.tok[v].start,
				   doc.tok[v].end - doc.tok[v].start);
		}
		te_json_free(&doc);
	}
	free(u->reported);
	u->reported = NULL;
	u->reported_len = 0;
}

void te_upstream_report(struct te_upstream *u, const char *module, const void *patch,
			uint32_t len)
{
	char err[200], *wrapped, *out;
	size_t wlen, olen;
	bool own = u->id != NULL;  /* a module's own connection: its twin */

	if (!u->loop || u->cfg->protocol == TE_UP_NONE ||
	    (own ? strcmp(u->id->module, module) : te_router_identity_of(u->rt, module)))
		return;
	wrapped = malloc(len + strlen(module) + 16);
	out = malloc(REPORTED_MAX);
	if (!wrapped || !out) {
		free(wrapped);
		free(out);
		return;
	}
	/* The device's twin holds each module's reported properties under
	 * the module's name; a module identity's twin is its own. */
	wlen = own ? (size_t)snprintf(wrapped, len + 1, "%.*s", (int)len, (const char *)patch)
		   : (size_t)sprintf(wrapped, "{\"%s\":%.*s}", module, (int)len,
				     (const char *)patch);
	/* Nothing waits: the patch as it is (its nulls delete in the cloud). */
	if (!u->reported && wlen < REPORTED_MAX) {
		memcpy(out, wrapped, wlen);
		u->reported = out;
		u->reported_len = wlen;
	} else if (te_json_merge_patch_ex(u->reported, u->reported_len, wrapped, wlen,
					  TE_JSON_PATCH_COMPOSE | TE_JSON_PATCH_ANY_NAMES, out,
					  REPORTED_MAX, &olen, err, sizeof(err)) < 0) {
		te_warn("upstream", "module %s: reported patch not sent: %s", module, err);
		free(out);
	} else {
		free(u->reported);
		u->reported = out;
		u->reported_len = olen;
	}
	free(wrapped);
	reported_flush(u);
}

/* --- the session's packets --- */

static int send_connect(struct te_upstream *u)
{
	struct te_mqtt_connect c = {
		.client_id = { u->client_id, strlen(u->client_id) },
		.username = { u->username[0] ? u->username : NULL, strlen(u->username) },
		.password = (const uint8_t *)u->password,
		.password_len = u->password ? strlen(u->password) : 0,
		.keepalive = u->cfg->keepalive_secs,
		.clean_session = false,
	};
	size_t len;
	int r = te_mqtt_enc_connect(u->wbuf + u->wlen, u->bufcap - u->wlen, &c, &len);

	if (r == 0)
		u->wlen += len;
	return r;
}

#define SUBS_MAX 64

static int send_subscribe(struct te_upstream *u)
{
	static char topics[SUBS_MAX][300];
	struct te_mqtt_sub subs[SUBS_MAX];
	unsigned n = 0;
	size_t len;
	int r;

	if (u->cfg->protocol == TE_UP_AZURE) {
		for (; n < TE_AZURE_NSUBS; n++)
			subs[n] = (struct te_mqtt_sub){ { te_azure_subscriptions[n],
							  strlen(te_azure_subscriptions[n]) }, 0 };
	} else {
		/* The deployment, desired patches for every module, methods for
		 * the daemon ("edge") and for each module. */
		snprintf(topics[n], sizeof(topics[n]), "tinyedge/%s/deployment", u->device_id);
		subs[n] = (struct te_mqtt_sub){ { topics[n], strlen(topics[n]) }, 1 }, n++;
		snprintf(topics[n], sizeof(topics[n]), "tinyedge/%s/+/twin/desired", u->device_id);
		subs[n] = (struct te_mqtt_sub){ { topics[n], strlen(topics[n]) }, 1 }, n++;
		for (unsigned i = 0; i <= u->rt->nports && n < SUBS_MAX; i++) {
			const char *m = i == 0 ? GEN_SELF : u->rt->ports[i - 1]->name;

			if (te_gen_topic(TE_GEN_SUB_METHODS, u->device_id, m, NULL, 0, topics[n],
					 sizeof(topics[n]), &len) == 0)
				subs[n] = (struct te_mqtt_sub){ { topics[n], len }, 0 }, n++;
		}
	}
	r = te_mqtt_enc_subscribe(u->wbuf + u->wlen, u->bufcap - u->wlen, PID_SUBSCRIBE,
				  subs, n, &len);
	if (r == 0)
		u->wlen += len;
	return r;
}

/* The topic a message goes to: Azure's events topic with its property bag,
 * or the configured template. Messages from modules without their own
 * identity go on the device's connection, tagged with the module and its
 * output. */
static int topic_for(struct te_upstream *u, const struct te_msg *m, char *out, size_t cap)
{
	char module[TE_HOST_MAX], output[TE_HOST_MAX], err[160];
	struct te_prop tags[2];
	size_t len;

	snprintf(module, sizeof(module), "%.*s", (int)m->sys[TE_SYS_CONNECTION_MODULE_ID].n,
		 m->sys[TE_SYS_CONNECTION_MODULE_ID].p ? m->sys[TE_SYS_CONNECTION_MODULE_ID].p : "");
	snprintf(output, sizeof(output), "%.*s", (int)m->sys[TE_SYS_OUTPUT_NAME].n,
		 m->sys[TE_SYS_OUTPUT_NAME].p ? m->sys[TE_SYS_OUTPUT_NAME].p : "");
	if (u->cfg->protocol == TE_UP_AZURE) {
		tags[0] = (struct te_prop){ { TE_AZURE_TAG_MODULE, sizeof(TE_AZURE_TAG_MODULE) - 1 },
					    { module, (uint32_t)strlen(module) } };
		tags[1] = (struct te_prop){ { TE_AZURE_TAG_OUTPUT, sizeof(TE_AZURE_TAG_OUTPUT) - 1 },
					    { output, (uint32_t)strlen(output) } };
		return te_azure_telemetry_topic(u->device_id, u->module_id[0] ? u->module_id : NULL,
						m, tags, module[0] && !u->module_id[0] ? 2 : 0, out, cap, &len);
	}
	return te_topic_expand(u->cfg->topic, u->device_id, module[0] ? module : "$device",
			       output[0] ? output : "$default", out, cap, &len, err, sizeof(err));
}

/* Publish from the store while the window and the buffer allow. */
static void fill_window(struct te_upstream *u)
{
	static char topic[8192];
	struct te_mqtt_publish pub;
	struct te_prop props[TE_WIRE_PROPS_MAX];
	struct te_store_item it;
	struct te_msg m;
	unsigned window = u->cfg->inflight ? u->cfg->inflight : 16;
	size_t len;
	int r;

	while (u->state == TE_UPS_ONLINE && u->ninflight < window && u->rt->store) {
		struct te_store_cursor prev = u->cur;

		r = te_store_next(u->rt->store, &u->cur, &it, u->rt->rx, TE_RECORD_CAP);
		if (r == -ENOENT)
			break;
		if (r == -TE_ENOSPACE || (r == 0 && it.len > MSG_LIMIT + 64 * 1024)) {
			/* Too large to send: dead-letter, never block the queue. */
			if (r == -TE_ENOSPACE)
				u->cur.after[it.prio] = it.seq;
			te_store_ack(u->rt->store, u->ep, it.prio, it.seq);
			u->dead_lettered++;
			te_warn("upstream", "message %llu of %u bytes is over the limit: dropped",
				(unsigned long long)it.seq, it.len);
			continue;
		}
		if (r < 0 || te_msg_decode(u->rt->rx, it.len, &m, props, TE_WIRE_PROPS_MAX) < 0) {
			te_warn("upstream", "unreadable stored message %llu: dropped",
				(unsigned long long)it.seq);
			if (r == 0)
				te_store_ack(u->rt->store, u->ep, it.prio, it.seq);
			u->dead_lettered++;
			continue;
		}
		if (m.bodylen > MSG_LIMIT || topic_for(u, &m, topic, sizeof(topic)) < 0) {
			te_store_ack(u->rt->store, u->ep, it.prio, it.seq);
			u->dead_lettered++;
			te_warn("upstream", "message %llu: over IoT Hub's limits: dropped",
				(unsigned long long)it.seq);
			continue;
		}
		if (++u->next_pid <= PID_SUBSCRIBE)
			u->next_pid = PID_SUBSCRIBE + 1;
		pub = (struct te_mqtt_publish){ .topic = { topic, strlen(topic) },
						.payload = m.body, .payload_len = m.bodylen,
						.id = u->next_pid, .qos = 1 };
		if (!out_room(u, strlen(topic) + m.bodylen + 16) ||
		    te_mqtt_enc_publish(u->wbuf + u->wlen, u->bufcap - u->wlen, &pub, &len) < 0) {
			u->cur = prev;  /* no room now: again after a flush */
			break;
		}
		u->wlen += len;
		for (unsigned i = 0; i < TE_UP_INFLIGHT_MAX; i++) {
			if (!u->inflight[i].pid) {
				u->inflight[i] = (struct te_up_inflight){ u->next_pid, it.prio, it.seq };
				break;
			}
		}
		u->ninflight++;
		u->published++;
	}
	out_flush(u);
}

void te_upstream_kick(struct te_upstream *u)
{
	if (u && u->state == TE_UPS_ONLINE)
		fill_window(u);
}

static void on_puback(struct te_upstream *u, uint16_t pid)
{
	for (unsigned i = 0; i < TE_UP_INFLIGHT_MAX; i++) {
		struct te_up_inflight *f = &u->inflight[i];

		if (f->pid != pid)
			continue;
		te_store_ack(u->rt->store, u->ep, f->prio, f->seq);
		f->pid = 0;
		u->ninflight--;
		u->acked++;
		fill_window(u);
		return;
	}
	te_debug("upstream", "PUBACK for unknown packet id %u", pid);
}

/* A PUBLISH from the cloud: twin responses, desired patches, methods. */
static void on_publish(struct te_upstream *u, const struct te_mqtt_pkt *p)
{
	size_t len;

	if (p->pub.qos == 1 && out_room(u, 8) &&
	    te_mqtt_enc_puback(u->wbuf + u->wlen, u->bufcap - u->wlen, p->pub.id, &len) == 0)
		u->wlen += len;
	if (u->cfg->protocol == TE_UP_AZURE)
		azure_inbound(u, p->pub.topic.p, p->pub.topic.n, p->pub.payload, p->pub.payload_len);
	else
		gen_inbound(u, p->pub.topic.p, p->pub.topic.n, p->pub.payload, p->pub.payload_len);
}

static void on_packet(struct te_upstream *u, const struct te_mqtt_pkt *p)
{
	u->last_rx_ms = te_now_ms();
	switch (p->type) {
	case TE_MQTT_CONNACK:
		if (u->state != TE_UPS_MQTT) {
			up_fail(u, "CONNACK out of place");
			return;
		}
		if (p->connack.rc) {
			up_fail(u, "refused by the broker: %s", te_mqtt_connack_str(p->connack.rc));
			return;
		}
		u->state = TE_UPS_ONLINE;
		te_timer_set(u->loop, &u->timer, 1000);  /* keepalive ticks */
		u->backoff_ms = 0;
		u->online_since_ms = te_now_ms();
		u->connects++;
		u->last_error[0] = '\0';
		if (u->tls)
			good_time_write(u);  /* a verified server: the clock was plausible */
		if (u->tls)
			te_info("upstream", "online: %s:%u as %s (TLS handshake %.1f ms)", u->host,
				u->port, u->client_id, u->tls_ms);
		else
			te_info("upstream", "online: %s:%u as %s", u->host, u->port, u->client_id);
		if (send_subscribe(u) < 0) {
			up_fail(u, "cannot subscribe");
			return;
		}
		if (u->cfg->protocol == TE_UP_AZURE)
			azure_get_twin(u);
		reported_flush(u);  /* what modules reported while offline */
		/* Resend from the oldest unacknowledged record. */
		te_store_cursor_init(&u->cur, u->ep);
		fill_window(u);
		return;
	case TE_MQTT_PUBACK:
		on_puback(u, p->id);
		return;
	case TE_MQTT_PUBLISH:
		on_publish(u, p);
		return;
	case TE_MQTT_SUBACK:
	case TE_MQTT_PINGRESP:
	case TE_MQTT_UNSUBACK:
		return;
	default:
		up_fail(u, "unexpected packet type %u from the broker", p->type);
	}
}

/* Decode every whole packet read so far. */
static void in_process(struct te_upstream *u)
{
	struct te_mqtt_pkt p;
	size_t at = 0;
	int r;

	while (u->io.fd >= 0 && at < u->rlen) {
		r = te_mqtt_decode(u->rbuf + at, u->rlen - at, u->bufcap, &p);
		if (r == TE_MQTT_NEED_MORE)
			break;
		if (r < 0) {
			up_fail(u, "malformed packet from the broker: %s (%s)",
				te_mqtt_type_str(u->rbuf[at] >> 4), te_strerror(r));
			return;
		}
		on_packet(u, &p);
		at += p.len;
	}
	if (u->io.fd < 0)
		return;
	memmove(u->rbuf, u->rbuf + at, u->rlen - at);
	u->rlen -= at;
}

/* --- connection --- */

static void up_close(struct te_upstream *u)
{
	if (u->io.fd >= 0) {
		if (u->state == TE_UPS_ONLINE)
			u->online_ms += te_now_ms() - u->online_since_ms;
		if (u->io.active)
			te_io_del(u->loop, &u->io);
		close(u->io.fd);
		u->io.fd = -1;
	}
	u->rlen = u->wlen = u->woff = 0;
	if (u->inflight)
		memset(u->inflight, 0, TE_UP_INFLIGHT_MAX * sizeof(*u->inflight));
	u->ninflight = 0;
}

static unsigned jitter(unsigned ms)
{
	return ms / 2 + (unsigned)(rand() % (int)(ms / 2 + 1));
}

static void up_fail(struct te_upstream *u, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(u->last_error, sizeof(u->last_error), fmt, ap);
	va_end(ap);
	up_close(u);
	u->failures++;
	u->backoff_ms = u->backoff_ms ? u->backoff_ms * 2 : u->cfg->reconnect_min_ms;
	if (u->backoff_ms > u->cfg->reconnect_max_ms)
		u->backoff_ms = u->cfg->reconnect_max_ms;
	te_warn("upstream", "%s:%u: %s; again in about %.1f s", u->host, u->port, u->last_error,
		u->backoff_ms / 1000.0);
	u->state = TE_UPS_BACKOFF;
	te_timer_set(u->loop, &u->timer, jitter(u->backoff_ms));
}

static void on_io(struct te_loop *l, struct te_io *io, uint32_t ev)
{
	struct te_upstream *u = (struct te_upstream *)((char *)io - offsetof(struct te_upstream, io));
	ssize_t n;
	int err = 0;
	socklen_t elen = sizeof(err);

	if (u->state == TE_UPS_CONNECTING) {
		if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err) {
			up_fail(u, "connect: %s", strerror(err ? err : errno));
			return;
		}
		if (u->tls) {
			u->state = TE_UPS_TLS;
			u->tls_start_ns = te_now_ns();
			if (te_tls_start(u->tls, io->fd) < 0) {
				up_fail(u, "TLS: %s", te_tls_error(u->tls));
				return;
			}
		} else {
			u->state = TE_UPS_MQTT;
		}
		if (u->state == TE_UPS_MQTT && send_connect(u) < 0) {
			up_fail(u, "cannot encode CONNECT");
			return;
		}
		te_timer_set(l, &u->timer, CONNECT_TIMEOUT_MS);
	}
	if (u->state == TE_UPS_TLS) {
		/* Drive the handshake: flush its records, read its answers. */
		n = te_tls_flush(u->tls);
		if (n < 0 && n != -EAGAIN) {
			up_fail(u, "TLS: %s", te_tls_error(u->tls));
			return;
		}
		n = te_tls_read(u->tls, u->rbuf + u->rlen, u->bufcap - u->rlen);
		if (n < 0 && n != -EAGAIN) {
			up_fail(u, "TLS: %s", te_tls_error(u->tls));
			return;
		}
		if (n > 0)
			u->rlen += (size_t)n;
		if (!te_tls_ready(u->tls)) {
			te_io_mod(l, io, te_tls_events(u->tls) ? te_tls_events(u->tls) : EPOLLIN);
			return;
		}
		u->tls_ms = (double)(te_now_ns() - u->tls_start_ns) / 1e6;
		if (te_tls_time_floored(u->tls))
			te_warn("upstream", "the clock is behind the build date or the last good time: "
				"certificates checked at that time instead");
		u->state = TE_UPS_MQTT;
		if (send_connect(u) < 0) {
			up_fail(u, "cannot encode CONNECT");
			return;
		}
	}
	for (;;) {
		if (u->rlen == u->bufcap) {
			up_fail(u, "packet larger than %u bytes", (unsigned)u->bufcap);
			return;
		}
		n = u->tls ? te_tls_read(u->tls, u->rbuf + u->rlen, u->bufcap - u->rlen)
			   : recv(io->fd, u->rbuf + u->rlen, u->bufcap - u->rlen, MSG_DONTWAIT);
		if (!u->tls && n < 0)
			n = errno == EAGAIN ? -EAGAIN : errno == EINTR ? -EINTR : -errno;
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN)
			break;
		if (n == 0) {
			up_fail(u, "the broker closed the connection");
			return;
		}
		if (n < 0) {
			up_fail(u, "receive: %s", u->tls ? te_tls_error(u->tls) : strerror((int)-n));
			return;
		}
		u->rlen += (size_t)n;
		in_process(u);
		if (u->io.fd < 0)
			return;
	}
	out_flush(u);
}

/* getaddrinfo may block for long: it runs on a thread. */
static void *resolve_main(void *arg)
{
	struct te_upstream *u = arg;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	char port[8];
	int r;

	snprintf(port, sizeof(port), "%u", u->port);
	r = getaddrinfo(u->host, port, &hints, &res);
	if (r == 0 && res && res->ai_addrlen <= sizeof(u->addr)) {
		memcpy(&u->addr, res->ai_addr, res->ai_addrlen);
		u->addrlen = res->ai_addrlen;
		u->resolve_err = 0;
	} else {
		u->resolve_err = r ? r : EAI_FAIL;
	}
	if (res)
		freeaddrinfo(res);
	te_event_signal(&u->resolved);
	return NULL;
}

static void on_resolved(struct te_loop *l, struct te_event *ev, uint64_t count)
{
	struct te_upstream *u = (struct te_upstream *)((char *)ev - offsetof(struct te_upstream, resolved));
	int fd, one = 1;

	pthread_join(u->resolver, NULL);
	u->resolver_running = false;
	if (u->state != TE_UPS_RESOLVING)
		return;
	if (u->resolve_err) {
		up_fail(u, "cannot resolve %s: %s", u->host, gai_strerror(u->resolve_err));
		return;
	}
	fd = socket(u->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		up_fail(u, "socket: %s", strerror(errno));
		return;
	}
	/* Nagle + delayed ACK cost ~40 ms per QoS 1 round trip (PITFALLS). */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	u->io = (struct te_io){ .fd = fd, .cb = on_io };
	if (connect(fd, (struct sockaddr *)&u->addr, u->addrlen) < 0 && errno != EINPROGRESS) {
		up_fail(u, "connect: %s", strerror(errno));
		return;
	}
	u->state = TE_UPS_CONNECTING;
	if (te_io_add(l, &u->io, EPOLLOUT | EPOLLIN) < 0) {
		up_fail(u, "epoll: %s", strerror(errno));
		return;
	}
	te_timer_set(l, &u->timer, CONNECT_TIMEOUT_MS);
}

/* --- the clock floor ---
 * A device without an RTC boots in 1970. Certificates are then checked at
 * the floor instead of the clock, and no SAS token is minted: the floor is
 * the newest of the build time and the last time a verified connection saw
 * a sane clock (<state dir>/last-good-time, written at most hourly to
 * spare the flash). */
#define GOOD_TIME_EVERY_SECS 3600

static int64_t good_time_read(const char *path)
{
	char *buf = NULL;
	size_t len;
	long long v = 0;

	if (te_read_file(path, 32, &buf, &len) == 0)
		v = strtoll(buf, NULL, 10);
	free(buf);
	return v > 0 ? (int64_t)v : 0;
}

static void good_time_write(struct te_upstream *u)
{
	uint64_t now = wall_secs();
	char tmp[sizeof(u->good_time_path) + 8], text[32];
	int fd, n;

	if (!u->good_time_path[0] || now < (uint64_t)u->floor ||
	    now < u->good_time_written + GOOD_TIME_EVERY_SECS)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", u->good_time_path);
	n = snprintf(text, sizeof(text), "%llu\n", (unsigned long long)now);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, text, (size_t)n) == n && fsync(fd) == 0 && rename(tmp, u->good_time_path) == 0)
		u->good_time_written = now;
	close(fd);
}

/* Fresh credentials for each connection (a SAS token is minted now). */
static int credentials(struct te_upstream *u)
{
	uint64_t now = wall_secs();

	if (u->cfg->protocol != TE_UP_AZURE || u->sas_expiry == UINT64_MAX)
		return 0;
	if (now < (uint64_t)u->floor) {
		snprintf(u->last_error, sizeof(u->last_error),
			 "the clock is behind the build date or the last good time: no SAS token is "
			 "minted until it is set");
		return -EAGAIN;
	}
	u->sas_expiry = now + SAS_TTL_SECS;
	return azure_password(u);
}

static void up_connect(struct te_upstream *u)
{
	int r = credentials(u);

	if (r < 0) {
		/* Said once; the clock is looked at again every second so that
		 * a clock set by NTP is used at once, without a restart. */
		if (!u->clock_wait)
			te_warn("upstream", "%s", u->last_error);
		u->clock_wait = true;
		u->state = TE_UPS_BACKOFF;
		te_timer_set(u->loop, &u->timer, CLOCK_RECHECK_MS);
		return;
	}
	if (u->clock_wait)
		te_info("upstream", "the clock is past the floor now: connecting");
	u->clock_wait = false;
	u->state = TE_UPS_RESOLVING;
	r = pthread_create(&u->resolver, NULL, resolve_main, u);
	if (r) {
		up_fail(u, "resolver thread: %s", strerror(r));
		return;
	}
	u->resolver_running = true;
	te_timer_set(u->loop, &u->timer, RESOLVE_TIMEOUT_MS);
}

static void on_timer(struct te_loop *l, struct te_timer *t)
{
	struct te_upstream *u = (struct te_upstream *)((char *)t - offsetof(struct te_upstream, timer));
	uint64_t now = te_now_ms(), ka = (uint64_t)u->cfg->keepalive_secs * 1000;
	size_t len;

	switch (u->state) {
	case TE_UPS_BACKOFF:
	case TE_UPS_IDLE:
		up_connect(u);
		return;
	case TE_UPS_RESOLVING:
		/* The thread goes on; its answer is ignored when it comes. */
		u->state = TE_UPS_IDLE;
		up_fail(u, "resolving %s timed out", u->host);
		return;
	case TE_UPS_CONNECTING:
	case TE_UPS_TLS:
	case TE_UPS_MQTT:
		up_fail(u, "%s timed out", te_upstream_state_name(u->state));
		return;
	case TE_UPS_ONLINE:
		if (now - u->last_rx_ms > ka + ka / 2) {
			up_fail(u, "no answer for %llu s", (unsigned long long)(now - u->last_rx_ms) / 1000);
			return;
		}
		if (u->sas_expiry && u->sas_expiry != UINT64_MAX &&
		    wall_secs() + SAS_TTL_SECS / 5 > u->sas_expiry) {
			te_info("upstream", "renewing the SAS token");
			up_close(u);
			up_connect(u);
			return;
		}
		expire_calls(u);
		if (now - u->last_tx_ms >= ka && out_room(u, 2) &&
		    te_mqtt_enc_pingreq(u->wbuf + u->wlen, u->bufcap - u->wlen, &len) == 0) {
			u->wlen += len;
			out_flush(u);
		}
		te_timer_set(l, t, 1000);
		return;
	}
}

int te_upstream_init(struct te_upstream *u, struct te_loop *loop,
		     const struct te_config *cfg, struct te_router *rt,
		     const struct te_module_identity *id, char *err, size_t errlen)
{
	const struct te_upstream_config *c = &cfg->upstream;
	char name[TE_ID_MAX + 16];
	int r;

	memset(u, 0, sizeof(*u));
	u->since_ms = te_now_ms();
	u->loop = loop;
	u->cfg = c;
	u->rt = rt;
	u->id = id;
	u->ep = rt->up_ep;
	if (id) {
		/* Its own queue in the store, drained by its own connection. */
		snprintf(name, sizeof(name), "$upstream/%s", id->module);
		r = rt->store ? te_store_endpoint(rt->store, name, &u->ep) : -ENOTCONN;
		if (r < 0) {
			snprintf(err, errlen, "module %s: store endpoint: %s", id->module,
				 te_strerror(r));
			return r;
		}
	}
	u->device_id = cfg->device_id;
	u->io.fd = -1;
	u->resolved.io.fd = -1;
	if (c->protocol == TE_UP_NONE)
		return 0;
	snprintf(u->host, sizeof(u->host), "%s", c->host);
	snprintf(u->client_id, sizeof(u->client_id), "%s", c->client_id[0] ? c->client_id : cfg->device_id);
	snprintf(u->username, sizeof(u->username), "%s", c->username);
	u->sas_expiry = UINT64_MAX;
	snprintf(u->good_time_path, sizeof(u->good_time_path), "%s/last-good-time", cfg->state_dir);
	u->floor = good_time_read(u->good_time_path);
	if (u->floor < (int64_t)TE_BUILD_EPOCH)
		u->floor = TE_BUILD_EPOCH;
	if (c->password[0] && !(u->password = strdup(c->password)))
		return -ENOMEM;
	if (c->protocol == TE_UP_AZURE && (r = azure_setup(u, err, errlen)) < 0)
		return r;
	u->port = c->port ? c->port : c->tls ? 8883 : 1883;
	u->bufcap = BUF_BYTES;
	u->rbuf = malloc(u->bufcap);
	u->wbuf = malloc(u->bufcap);
	u->inflight = calloc(TE_UP_INFLIGHT_MAX, sizeof(*u->inflight));
	if (!u->rbuf || !u->wbuf || !u->inflight)
		return -ENOMEM;
	if (c->tls) {
		struct te_tls_config tc = {
			.ca_file = c->ca_file[0] ? c->ca_file : NULL,
			.cert_file = c->cert_file[0] ? c->cert_file : NULL,
			.key_file = c->key_file[0] ? c->key_file : NULL,
			.server_name = u->host,
			.time_floor = u->floor,
		};

		r = te_tls_new(&u->tls, &tc, err, errlen);
		if (r < 0)
			return r;
	}
	u->timer.cb = on_timer;
	u->resolved.cb = on_resolved;
	r = te_event_open(loop, &u->resolved);
	if (r < 0)
		return r;
	srand((unsigned)(te_now_ns() ^ (uint64_t)getpid()));
	up_connect(u);
	return 0;
}

void te_upstream_free(struct te_upstream *u)
{
	size_t len;

	if (!u->loop)
		return;
	if (u->state == TE_UPS_ONLINE && out_room(u, 2) &&
	    te_mqtt_enc_disconnect(u->wbuf + u->wlen, u->bufcap - u->wlen, &len) == 0) {
		u->wlen += len;
		out_flush(u);
		if (u->tls)
			te_tls_close(u->tls);
	}
	up_close(u);
	te_timer_cancel(u->loop, &u->timer);
	if (u->resolver_running)
		pthread_join(u->resolver, NULL);
	te_event_close(u->loop, &u->resolved);
	te_tls_free(u->tls);
	free(u->rbuf);
	free(u->wbuf);
	free(u->inflight);
	free(u->password);
	free(u->reported);
	memset(u, 0, sizeof(*u));
}
