#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "config.h"
#include "err.h"
#include "json.h"
#include "jvalue.h"
#include "agent/sandbox.h"
#include "upstream/azure.h"

static const char *const protocol_names[] = { "none", "mqtt", "azure-iot-hub" };
static const char *const level_names[] = { "error", "warn", "info", "debug" };

const char *te_upstream_protocol_name(enum te_upstream_protocol p)
{
	return p <= TE_UP_AZURE ? protocol_names[p] : "?";
}

bool te_config_valid_id(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > TE_ID_MAX)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x80 || !(isalnum(c) || strchr("-.%_*?!(),:=@$'", c)))
			return false;
	}
	return true;
}

void te_config_defaults(struct te_config *c)
{
	struct utsname u;

	memset(c, 0, sizeof(*c));
	if (uname(&u) == 0) {
		snprintf(c->hostname, sizeof(c->hostname), "%s", u.nodename);
		if (te_config_valid_id(u.nodename))
			snprintf(c->device_id, sizeof(c->device_id), "%s",
				 u.nodename);
	}
	if (!c->device_id[0])
		snprintf(c->device_id, sizeof(c->device_id), "tinyedge");
	snprintf(c->state_dir, sizeof(c->state_dir), "%s", TE_DEFAULT_STATE_DIR);
	c->log_level = TE_LOG_INFO;
	c->upstream.protocol = TE_UP_NONE;
	c->upstream.tls = true;
	c->upstream.keepalive_secs = 240;
	c->upstream.inflight = 16;
	c->upstream.reconnect_min_ms = 1000;
	c->upstream.reconnect_max_ms = 60000;
	snprintf(c->upstream.topic, sizeof(c->upstream.topic), "tinyedge/{device}/{module}/{output}");
	c->store.ttl_secs = 7200;
	c->backoff.initial_ms = 1000;
	c->backoff.max_ms = 300000;
	c->backoff.reset_after_secs = 600;
	c->logs.ring_bytes = 64 * 1024;
	c->deployment.probation_secs = 60;
	c->images.cache_bytes = 512ull << 20;
	c->images.max_image_bytes = 256ull << 20;
	c->images.gc_grace_secs = 86400;
	c->images.timeout_secs = 600;
	snprintf(c->metrics.address, sizeof(c->metrics.address), "127.0.0.1");
}

/* --- sections --- */

struct cfg_ctx {
	const struct te_json_doc *doc;
	struct te_diag *diag;
	struct te_config *c;
	unsigned bad;
};

static void cfg_str(struct cfg_ctx *x, int t, const char *what, char *buf,
		    size_t cap)
{
	if (t >= 0 && te_jv_str(x->doc, (unsigned)t, what, buf, cap, false, x->diag))
		x->bad++;
}

static void cfg_uint(struct cfg_ctx *x, int t, const char *what, int64_t min,
		     int64_t max, unsigned *out)
{
	int64_t v;

	if (t < 0)
		return;
	if (te_jv_int(x->doc, (unsigned)t, what, min, max, &v, x->diag))
		x->bad++;
	else
		*out = (unsigned)v;
}

static void cfg_bool(struct cfg_ctx *x, int t, const char *what, bool *out)
{
	if (t >= 0 && te_jv_bool(x->doc, (unsigned)t, what, out, x->diag))
		x->bad++;
}

static const struct te_json_policy upstream_policy[] = {
	{ "protocol", TE_JSON_STRING, TE_JSON_REQUIRED },
	{ "connectionString", TE_JSON_STRING, 0 },
	{ "host", TE_JSON_STRING, 0 },
	{ "port", TE_JSON_NUMBER, 0 },
	{ "tls", TE_JSON_BOOL, 0 },
	{ "caFile", TE_JSON_STRING, 0 },
	{ "certFile", TE_JSON_STRING, 0 },
	{ "keyFile", TE_JSON_STRING, 0 },
	{ "username", TE_JSON_STRING, 0 },
	{ "password", TE_JSON_STRING, 0 },
	{ "keepAliveSecs", TE_JSON_NUMBER, 0 },
	{ "topic", TE_JSON_STRING, 0 },
	{ "inflight", TE_JSON_NUMBER, 0 },
	{ "clientId", TE_JSON_STRING, 0 },
	{ "moduleIdentities", TE_JSON_OBJECT, 0 },
	{ "reconnectMinMs", TE_JSON_NUMBER, 0 },
	{ "reconnectMaxMs", TE_JSON_NUMBER, 0 },
};
enum { UP_PROTOCOL, UP_CS, UP_HOST, UP_PORT, UP_TLS, UP_CA, UP_CERT, UP_KEY,
       UP_USER, UP_PASS, UP_KEEPALIVE, UP_TOPIC, UP_INFLIGHT, UP_CLIENT, UP_IDS,
       UP_RECON_MIN, UP_RECON_MAX, UP_N };

static void cfg_upstream_rules(struct cfg_ctx *x, unsigned obj, const int *tb,
			       int device_tok)
{
	struct te_upstream_config *u = &x->c->upstream;
	struct te_azure_cs cs;
	char err[160];

	if (u->protocol == TE_UP_MQTT && !u->host[0]) {
		te_json_error(x->doc, x->diag, obj, "upstream: protocol mqtt needs \"host\"");
		x->bad++;
	}
	if (u->protocol != TE_UP_AZURE) {
		if (tb[UP_CS] >= 0) {
			te_json_error(x->doc, x->diag, (unsigned)tb[UP_CS],
				      "upstream.connectionString is only for protocol azure-iot-hub");
			x->bad++;
		}
		return;
	}
	if (tb[UP_CS] < 0) {
		te_json_error(x->doc, x->diag, obj,
			      "upstream: protocol azure-iot-hub needs \"connectionString\"");
		x->bad++;
		return;
	}
	if (te_azure_cs_parse(u->connection_string, &cs, err, sizeof(err)) < 0) {
		te_json_error(x->doc, x->diag, (unsigned)tb[UP_CS],
			      "upstream.connectionString: %s", err);
		x->bad++;
	} else if (device_tok >= 0 && strcmp(cs.device, x->c->device_id) != 0) {
		te_json_error(x->doc, x->diag, (unsigned)device_tok,
			      "deviceId \"%s\" differs from the connection string's DeviceId \"%s\"",
			      x->c->device_id, cs.device);
		x->bad++;
	} else {
		snprintf(x->c->device_id, sizeof(x->c->device_id), "%s", cs.device);
	}
	explicit_bzero(&cs, sizeof(cs));
}

/* Azure: modules with their own identity, {"name": "connection string"};
 * each must name this device and that module. */
static void cfg_identities(struct cfg_ctx *x, unsigned obj)
{
	struct te_upstream_config *u = &x->c->upstream;
	struct te_azure_cs cs;
	char err[200];

	if (u->protocol != TE_UP_AZURE) {
		te_json_error(x->doc, x->diag, obj,
			      "upstream.moduleIdentities is only for protocol azure-iot-hub");
		x->bad++;
		return;
	}
	TE_JSON_FOREACH_MEMBER(x->doc, obj, k, v) {
		struct te_module_identity *id = &u->ids[u->nids];

		if (u->nids == TE_UP_IDENTITIES_MAX) {
			te_json_error(x->doc, x->diag, k, "upstream.moduleIdentities: at most %d",
				      TE_UP_IDENTITIES_MAX);
			x->bad++;
			return;
		}
		if (x->doc->tok[v].type != TE_JSON_STRING ||
		    te_json_str(x->doc, k, id->module, sizeof(id->module), NULL) < 0 ||
		    te_json_str(x->doc, v, id->connection_string,
				sizeof(id->connection_string), NULL) < 0) {
			te_json_error(x->doc, x->diag, v,
				      "upstream.moduleIdentities: a module name and its connection string");
			x->bad++;
			continue;
		}
		if (te_azure_cs_parse(id->connection_string, &cs, err, sizeof(err)) < 0) {
			te_json_error(x->doc, x->diag, v, "upstream.moduleIdentities.%s: %s",
				      id->module, err);
			x->bad++;
		} else if (strcmp(cs.module, id->module)) {
			te_json_error(x->doc, x->diag, v,
				      "upstream.moduleIdentities.%s: the connection string's ModuleId is \"%s\"",
				      id->module, cs.module);
			x->bad++;
		} else {
			u->nids++;
		}
		explicit_bzero(&cs, sizeof(cs));
	}
}

static void cfg_upstream(struct cfg_ctx *x, int obj, int device_tok)
{
	struct te_upstream_config *u = &x->c->upstream;
	int tb[UP_N];
	unsigned p = 0;

	if (obj < 0)
		return;
	x->bad += te_json_read_object(x->doc, (unsigned)obj, "upstream",
				      upstream_policy, UP_N, tb, x->diag);
	if (tb[UP_PROTOCOL] >= 0 &&
	    te_jv_enum(x->doc, (unsigned)tb[UP_PROTOCOL], "upstream.protocol",
		       protocol_names, 3, &p, x->diag) < 0)
		x->bad++;
	u->protocol = p;
	cfg_str(x, tb[UP_CS], "upstream.connectionString", u->connection_string,
		sizeof(u->connection_string));
	cfg_str(x, tb[UP_HOST], "upstream.host", u->host, sizeof(u->host));
	cfg_uint(x, tb[UP_PORT], "upstream.port", 1, 65535, &u->port);
	cfg_bool(x, tb[UP_TLS], "upstream.tls", &u->tls);
	cfg_str(x, tb[UP_CA], "upstream.caFile", u->ca_file, sizeof(u->ca_file));
	cfg_str(x, tb[UP_CERT], "upstream.certFile", u->cert_file, sizeof(u->cert_file));
	cfg_str(x, tb[UP_KEY], "upstream.keyFile", u->key_file, sizeof(u->key_file));
	cfg_str(x, tb[UP_USER], "upstream.username", u->username, sizeof(u->username));
	cfg_str(x, tb[UP_PASS], "upstream.password", u->password, sizeof(u->password));
	cfg_uint(x, tb[UP_KEEPALIVE], "upstream.keepAliveSecs", 5, 65535,
		 &u->keepalive_secs);
	cfg_str(x, tb[UP_TOPIC], "upstream.topic", u->topic, sizeof(u->topic));
	cfg_uint(x, tb[UP_INFLIGHT], "upstream.inflight", 1, 1024, &u->inflight);
	cfg_str(x, tb[UP_CLIENT], "upstream.clientId", u->client_id, sizeof(u->client_id));
	cfg_uint(x, tb[UP_RECON_MIN], "upstream.reconnectMinMs", 100, 3600000,
		 &u->reconnect_min_ms);
	cfg_uint(x, tb[UP_RECON_MAX], "upstream.reconnectMaxMs", 100, 3600000,
		 &u->reconnect_max_ms);
	if (u->reconnect_max_ms < u->reconnect_min_ms) {
		te_json_error(x->doc, x->diag, (unsigned)obj,
			      "upstream: reconnectMaxMs is below reconnectMinMs");
		x->bad++;
	}
	if ((tb[UP_CERT] >= 0) != (tb[UP_KEY] >= 0)) {
		te_json_error(x->doc, x->diag, (unsigned)obj,
			      "upstream: certFile and keyFile go together");
		x->bad++;
	}
	if (!x->bad)
		cfg_upstream_rules(x, (unsigned)obj, tb, device_tok);
	if (!x->bad && tb[UP_IDS] >= 0)
		cfg_identities(x, (unsigned)tb[UP_IDS]);
}

static const struct te_json_policy store_policy[] = {
	{ "path", TE_JSON_STRING, 0 },
	{ "maxBytes", TE_JSON_NUMBER, 0 },
	{ "timeToLiveSecs", TE_JSON_NUMBER, 0 },
};

static void cfg_store(struct cfg_ctx *x, int obj)
{
	int tb[3];
	int64_t v;

	if (obj < 0)
		return;
	x->bad += te_json_read_object(x->doc, (unsigned)obj, "storeAndForward",
				      store_policy, 3, tb, x->diag);
	cfg_str(x, tb[0], "storeAndForward.path", x->c->store.path,
		sizeof(x->c->store.path));
	if (tb[1] >= 0 && te_jv_int(x->doc, (unsigned)tb[1], "storeAndForward.maxBytes",
				    1 << 20, INT64_MAX, &v, x->diag) == 0)
		x->c->store.max_bytes = (uint64_t)v;
	else if (tb[1] >= 0)
		x->bad++;
	if (tb[2] >= 0 && te_jv_int(x->doc, (unsigned)tb[2], "storeAndForward.timeToLiveSecs",
				    INT32_MIN, INT32_MAX, &v, x->diag) == 0)
		x->c->store.ttl_secs = v;
	else if (tb[2] >= 0)
		x->bad++;
}

static const struct te_json_policy backoff_policy[] = {
	{ "initialMs", TE_JSON_NUMBER, 0 },
	{ "maxMs", TE_JSON_NUMBER, 0 },
	{ "resetAfterSecs", TE_JSON_NUMBER, 0 },
};

static void cfg_backoff(struct cfg_ctx *x, int obj)
{
	int tb[3];

	if (obj < 0)
		return;
	x->bad += te_json_read_object(x->doc, (unsigned)obj, "restartBackoff",
				      backoff_policy, 3, tb, x->diag);
	cfg_uint(x, tb[0], "restartBackoff.initialMs", 0, 3600000,
		 &x->c->backoff.initial_ms);
	cfg_uint(x, tb[1], "restartBackoff.maxMs", 0, 86400000,
		 &x->c->backoff.max_ms);
	cfg_uint(x, tb[2], "restartBackoff.resetAfterSecs", 1, 86400,
		 &x->c->backoff.reset_after_secs);
	if (x->c->backoff.max_ms < x->c->backoff.initial_ms) {
		te_json_error(x->doc, x->diag, (unsigned)obj,
			      "restartBackoff.maxMs (%u) is less than initialMs (%u)",
			      x->c->backoff.max_ms, x->c->backoff.initial_ms);
		x->bad++;
	}
}

static const struct te_json_policy logs_policy[] = {
	{ "ringBytes", TE_JSON_NUMBER, 0 },
	{ "persist", TE_JSON_BOOL, 0 },
	{ "syslog", TE_JSON_BOOL, 0 },
};

static void cfg_logs(struct cfg_ctx *x, int obj)
{
	int tb[3];

	if (obj < 0)
		return;
	x->bad += te_json_read_object(x->doc, (unsigned)obj, "logs", logs_policy,
				      3, tb, x->diag);
	cfg_uint(x, tb[0], "logs.ringBytes", 4096, 16 << 20, &x->c->logs.ring_bytes);
	cfg_bool(x, tb[1], "logs.persist", &x->c->logs.persist);
	cfg_bool(x, tb[2], "logs.syslog", &x->c->logs.syslog);
}

static const struct te_json_policy deployment_policy[] = {
	{ "rollbackOnFailure", TE_JSON_BOOL, 0 },
	{ "probationSecs", TE_JSON_NUMBER, 0 },
	{ "memoryBudgetBytes", TE_JSON_NUMBER, 0 },
};

static void cfg_deployment(struct cfg_ctx *x, int obj)
{
	int tb[3];
	int64_t v;

	if (obj < 0)
		return;
	x->bad += te_json_read_object(x->doc, (unsigned)obj, "deployment", deployment_policy,
				      3, tb, x->diag);
	cfg_bool(x, tb[0], "deployment.rollbackOnFailure", &x->c->deployment.rollback_on_failure);
	cfg_uint(x, tb[1], "deployment.probationSecs", 1, 86400,
		 &x->c->deployment.probation_secs);
	if (tb[2] >= 0 && te_jv_int(x->doc, (unsigned)tb[2], "deployment.memoryBudgetBytes",
				    1 << 20, INT64_MAX, &v, x->diag) == 0)
		x->c->deployment.memory_budget = (uint64_t)v;
	else if (tb[2] >= 0)
		x->bad++;
}

static const struct te_json_policy metrics_policy[] = {
	{ "port", TE_JSON_NUMBER, TE_JSON_REQUIRED },
	{ "address", TE_JSON_STRING, 0 },
};

/* The HTTP endpoint: off unless configured; an IPv4 literal only, so the
 * config says exactly which interface is exposed (no name lookups). */
static void cfg_metrics(struct cfg_ctx *x, int obj)
{
	struct in_addr a;
	char addr[TE_HOST_MAX];
	int tb[2];

	if (obj < 0)
		return;
	x->bad += te_json_read_object(x->doc, (unsigned)obj, "metrics", metrics_policy,
				      2, tb, x->diag);
	cfg_uint(x, tb[0], "metrics.port", 1, 65535, &x->c->metrics.port);
	if (tb[1] < 0)
		return;
	if (te_jv_str(x->doc, (unsigned)tb[1], "metrics.address", addr, sizeof(addr), false,
		      x->diag) < 0) {
		x->bad++;
	} else if (inet_pton(AF_INET, addr, &a) != 1) {
		te_json_error(x->doc, x->diag, (unsigned)tb[1],
			      "metrics.address must be an IPv4 address such as 127.0.0.1, not \"%s\"",
			      addr);
		x->bad++;
	} else {
		snprintf(x->c->metrics.address, sizeof(x->c->metrics.address), "%s", addr);
	}
}

static const struct te_json_policy images_policy[] = {
	{ "cacheBytes", TE_JSON_NUMBER, 0 },
	{ "gcGraceSecs", TE_JSON_NUMBER, 0 },
	{ "maxImageBytes", TE_JSON_NUMBER, 0 },
	{ "timeoutSecs", TE_JSON_NUMBER, 0 },
	{ "trustedKeys", TE_JSON_ARRAY, 0 },
	{ "caFile", TE_JSON_STRING, 0 },
};

static void cfg_bytes(struct cfg_ctx *x, int t, const char *what, uint64_t *out)
{
	int64_t v;

	if (t < 0)
		return;
	if (te_jv_int(x->doc, (unsigned)t, what, 1 << 20, INT64_MAX, &v, x->diag) < 0)
		x->bad++;
	else
		*out = (uint64_t)v;
}

static void cfg_images(struct cfg_ctx *x, int obj)
{
	int tb[6];

	if (obj < 0)
		return;
	x->bad += te_json_read_object(x->doc, (unsigned)obj, "images", images_policy, 6, tb,
				      x->diag);
	cfg_bytes(x, tb[0], "images.cacheBytes", &x->c->images.cache_bytes);
	cfg_uint(x, tb[1], "images.gcGraceSecs", 0, 365 * 86400, &x->c->images.gc_grace_secs);
	cfg_bytes(x, tb[2], "images.maxImageBytes", &x->c->images.max_image_bytes);
	cfg_uint(x, tb[3], "images.timeoutSecs", 1, 86400, &x->c->images.timeout_secs);
	cfg_str(x, tb[5], "images.caFile", x->c->images.ca_file, sizeof(x->c->images.ca_file));
	if (tb[4] < 0)
		return;
	TE_JSON_FOREACH_ELEM(x->doc, (unsigned)tb[4], e) {
		if (x->c->images.nkeys == TE_IMAGES_KEYS_MAX) {
			te_json_error(x->doc, x->diag, e, "images.trustedKeys: at most %d keys",
				      TE_IMAGES_KEYS_MAX);
			x->bad++;
			return;
		}
		if (te_jv_str(x->doc, e, "images.trustedKeys[]",
			      x->c->images.trusted_keys[x->c->images.nkeys], TE_KEY_PATH_MAX, false, x->diag) < 0)
			x->bad++;
		else
			x->c->images.nkeys++;
	}
}

static const struct te_json_policy control_policy[] = {
	{ "adminGroup", TE_JSON_STRING | TE_JSON_NUMBER, 0 },
};

/* control.adminGroup: members may use the control socket too (the socket
 * becomes 0660 and the state dir 0710 with that group). The group must
 * exist now: a typo would otherwise lock its members out silently. */
static void cfg_control(struct cfg_ctx *x, int obj)
{
	char err[160];
	int tb[1];

	if (obj < 0)
		return;
	x->bad += te_json_read_object(x->doc, (unsigned)obj, "control", control_policy, 1, tb,
				      x->diag);
	if (tb[0] < 0)
		return;
	if (x->doc->tok[tb[0]].type == TE_JSON_NUMBER) {
		int64_t v;

		if (te_jv_int(x->doc, (unsigned)tb[0], "control.adminGroup", 0, 0x7fffffff, &v,
			      x->diag) < 0) {
			x->bad++;
			return;
		}
		snprintf(x->c->control.admin_group, sizeof(x->c->control.admin_group), "%lld",
			 (long long)v);
	} else if (te_jv_str(x->doc, (unsigned)tb[0], "control.adminGroup",
			     x->c->control.admin_group, sizeof(x->c->control.admin_group), false,
			     x->diag) < 0) {
		x->bad++;
		return;
	}
	if (!x->c->control.admin_group[0] ||
	    te_sandbox_resolve_group(x->c->control.admin_group, &x->c->control.admin_gid, err,
				     sizeof(err)) < 0) {
		te_json_error(x->doc, x->diag, (unsigned)tb[0], "control.adminGroup: %s",
			      x->c->control.admin_group[0] ? err : "must not be empty");
		x->c->control.admin_group[0] = '\0';
		x->bad++;
	}
}

static const struct te_json_policy root_policy[] = {
	{ "deviceId", TE_JSON_STRING, 0 },
	{ "hostname", TE_JSON_STRING, 0 },
	{ "stateDir", TE_JSON_STRING, 0 },
	{ "logLevel", TE_JSON_STRING, 0 },
	{ "upstream", TE_JSON_OBJECT, 0 },
	{ "storeAndForward", TE_JSON_OBJECT, 0 },
	{ "restartBackoff", TE_JSON_OBJECT, 0 },
	{ "logs", TE_JSON_OBJECT, 0 },
	{ "deployment", TE_JSON_OBJECT, 0 },
	{ "metrics", TE_JSON_OBJECT, 0 },
	{ "images", TE_JSON_OBJECT, 0 },
	{ "control", TE_JSON_OBJECT, 0 },
};
enum { R_DEVICE, R_HOSTNAME, R_STATE, R_LEVEL, R_UPSTREAM, R_STORE, R_BACKOFF,
       R_LOGS, R_DEPLOYMENT, R_METRICS, R_IMAGES, R_CONTROL, R_N };

static void cfg_root(struct cfg_ctx *x)
{
	int tb[R_N];
	unsigned level;

	x->bad += te_json_read_object(x->doc, 0, "", root_policy, R_N, tb, x->diag);
	cfg_str(x, tb[R_DEVICE], "deviceId", x->c->device_id, sizeof(x->c->device_id));
	if (tb[R_DEVICE] >= 0 && x->c->device_id[0] &&
	    !te_config_valid_id(x->c->device_id)) {
		te_json_error(x->doc, x->diag, (unsigned)tb[R_DEVICE],
			      "deviceId may hold only letters, digits and -.%%_*?!(),:=@$'");
		x->bad++;
	}
	cfg_str(x, tb[R_HOSTNAME], "hostname", x->c->hostname, sizeof(x->c->hostname));
	cfg_str(x, tb[R_STATE], "stateDir", x->c->state_dir, sizeof(x->c->state_dir));
	if (tb[R_STATE] >= 0 && x->c->state_dir[0] && x->c->state_dir[0] != '/') {
		te_json_error(x->doc, x->diag, (unsigned)tb[R_STATE],
			      "stateDir must be an absolute path");
		x->bad++;
	}
	if (tb[R_LEVEL] >= 0) {
		if (te_jv_enum(x->doc, (unsigned)tb[R_LEVEL], "logLevel",
			       level_names, 4, &level, x->diag) < 0)
			x->bad++;
		else
			x->c->log_level = level;
	}
	cfg_store(x, tb[R_STORE]);
	cfg_backoff(x, tb[R_BACKOFF]);
	cfg_logs(x, tb[R_LOGS]);
	cfg_deployment(x, tb[R_DEPLOYMENT]);
	cfg_metrics(x, tb[R_METRICS]);
	cfg_images(x, tb[R_IMAGES]);
	cfg_control(x, tb[R_CONTROL]);
	cfg_upstream(x, tb[R_UPSTREAM], tb[R_DEVICE]);
}

int te_config_load(struct te_config *c, const char *path, struct te_diag *diag)
{
	struct te_json_doc doc;
	struct cfg_ctx x = { .doc = &doc, .diag = diag, .c = c };
	int r;

	r = te_json_load_file(&doc, path, NULL, NULL, diag);
	if (r < 0)
		return r == -TE_EMALFORMED || r == -TE_ELIMIT ? -TE_EINVALID : r;
	if (doc.tok[0].type != TE_JSON_OBJECT) {
		te_json_error(&doc, diag, 0, "the config must be a JSON object");
		x.bad++;
	} else {
		cfg_root(&x);
	}
	te_json_free(&doc);
	return x.bad ? -TE_EINVALID : 0;
}

/* The first inline secret of c, by its config key; NULL when none. */
static const char *config_secret_key(const struct te_config *c)
{
	if (c->upstream.connection_string[0])
		return "upstream.connectionString";
	if (c->upstream.password[0])
		return "upstream.password";
	for (unsigned i = 0; i < c->upstream.nids; i++)
		if (c->upstream.ids[i].connection_string[0])
			return "a module identity's connectionString";
	return NULL;
}

int te_config_warn_mode(const struct te_config *c, const char *path)
{
	const char *key = config_secret_key(c);
	struct stat st;

	if (!key || stat(path, &st) < 0 || !(st.st_mode & 077))
		return 0;
	te_warn("config", "%s holds a secret (%s) but is mode %04o, readable by %s: "
		"chmod 600 %s", path, key, (unsigned)(st.st_mode & 07777),
		st.st_mode & 07 ? "everyone" : "its group", path);
	return 1;
}

/* --- --upstream URL --- */

int te_config_parse_upstream_url(struct te_config *c, const char *url,
				 char *err, unsigned long cap)
{
	struct te_upstream_config *u = &c->upstream;
	const char *host, *colon, *end;
	char *num_end;
	unsigned long port = 0;

	if (strcmp(url, "none") == 0) {
		u->protocol = TE_UP_NONE;
		return 0;
	}
	if (strncmp(url, "mqtt://", 7) == 0) {
		u->tls = false;
		host = url + 7;
	} else if (strncmp(url, "mqtts://", 8) == 0) {
		u->tls = true;
		host = url + 8;
	} else {
		snprintf(err, cap, "--upstream: expected none, mqtt://HOST[:PORT] or mqtts://HOST[:PORT], got '%s'", url);
		return -TE_EINVALID;
	}
	if (*host == '[') { /* [v6]:port */
		end = strchr(host, ']');
		colon = end && end[1] == ':' ? end + 1 : NULL;
		if (!end || (end[1] && !colon))
			goto bad;
		host++;
	} else {
		colon = strchr(host, ':');
		end = colon ? colon : host + strlen(host);
	}
	if (end == host || (size_t)(end - host) >= sizeof(u->host) ||
	    memchr(host, '/', (size_t)(end - host)))
		goto bad;
	if (colon) {
		errno = 0;
		port = strtoul(colon + 1, &num_end, 10);
		if (*num_end || colon[1] == '\0' || port < 1 || port > 65535 || errno)
			goto bad;
	}
	snprintf(u->host, sizeof(u->host), "%.*s", (int)(end - host), host);
	u->port = (unsigned)port;
	u->protocol = TE_UP_MQTT;
	return 0;
bad:
	snprintf(err, cap, "--upstream: '%s' is not a valid URL (mqtt[s]://HOST[:PORT], port 1-65535)", url);
	return -TE_EINVALID;
}
