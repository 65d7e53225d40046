/* The deployment manifest: modulesContent.$edgeAgent / $edgeHub / twins. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/json_patch.h"
#include "core/jvalue.h"
#include "image_mount.h"
#include "images/imgcodec.h"
#include "manifest_int.h"

#define TWIN_DESIRED_MAX (32 * 1024)
#define ROUTE_MAX 4096
#define CREATE_OPTIONS_PARTS 100 /* createOptions, createOptions01..99 */

static const char *const restart_names[] = { "never", "on-failure",
					     "on-unhealthy", "always" };
static const char *const status_names[] = { "running", "stopped" };

const char *te_restart_policy_name(enum te_restart_policy p)
{
	return p <= TE_RESTART_ALWAYS ? restart_names[p] : "?";
}

const char *te_module_status_name(enum te_module_status s)
{
	return s <= TE_STATUS_STOPPED ? status_names[s] : "?";
}

/* --- helpers shared with createopts.c --- */

void *mf_alloc(struct mf_ctx *x, size_t n)
{
	void *p = te_arena_alloc(&x->m->arena, n);

	if (!p && !x->oom) {
		x->oom = true;
		te_diag_report(x->diag, x->doc ? x->doc->name : NULL, 0, 0,
			       "out of memory");
	}
	return p;
}

void mf_error(struct mf_ctx *x, unsigned t, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	te_json_error(x->doc, x->diag, t, "%s", msg);
	x->bad++;
}

const char *mf_str(struct mf_ctx *x, unsigned t)
{
	const struct te_json_tok *k = &x->doc->tok[t];
	size_t cap = k->end - k->start + 1;
	char *s = mf_alloc(x, cap);

	if (s && te_json_str(x->doc, t, s, cap, NULL) < 0) {
		mf_error(x, t, "string must not contain \\u0000");
		return NULL;
	}
	return s;
}

const char *mf_str_checked(struct mf_ctx *x, unsigned t, const char *what,
			   size_t max)
{
	const char *s;

	if (x->doc->tok[t].type != TE_JSON_STRING) {
		mf_error(x, t, "%s must be a string", what);
		return NULL;
	}
	s = mf_str(x, t);
	if (s && (!s[0] || strlen(s) > max)) {
		mf_error(x, t, "%s must be 1 to %zu bytes long", what, max);
		return NULL;
	}
	return s;
}

const char *mf_path(struct mf_ctx *x, unsigned t, const char *what)
{
	const char *s = mf_str_checked(x, t, what, PATH_MAX - 1);

	if (s && s[0] != '/') {
		mf_error(x, t, "%s must be an absolute path, got \"%s\"", what, s);
		return NULL;
	}
	return s;
}

/* Module names are also hostnames, cgroup and file names. */
static bool valid_module_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > TE_MODULE_NAME_MAX || !isalnum((unsigned char)s[0]))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
			return false;
	return true;
}

static bool valid_env_name(const char *s)
{
	return s[0] && !strchr(s, '=');
}

/* --- $edgeAgent: modules --- */

static void mf_defaults(struct te_module_spec *ms)
{
	ms->status = TE_STATUS_RUNNING;
	ms->restart = TE_RESTART_ALWAYS;
	ms->startup_order = TE_STARTUP_ORDER_UNSET;
	ms->namespaces = TE_NS_DEFAULT;
	ms->limits = (struct te_limits){ -1, -1, -1, -1 };
	ms->stop_timeout_secs = 10;
	ms->ring_bytes = TE_RING_BYTES_DEFAULT;
	ms->writable_bytes = TE_WRITABLE_BYTES_DEFAULT;
}

/* What the image is (from the file: a missing one stays EXEC, and check
 * and spawn say why), and the createOptions that go with each kind. */
static void mf_image(struct mf_ctx *x, struct te_module_spec *ms, unsigned t,
		     const char *what)
{
	enum te_image_kind k = TE_IMAGE_EXEC;
	bool exists = te_image_kind_of(ms->image, &k) == 0;

	ms->image_kind = k;
	if (k == TE_IMAGE_EXEC) {
		if (exists && ms->writable != TE_WRITABLE_NONE)
			mf_error(x, t, "%s.settings.createOptions.writable: %s is an executable; a writable layer needs a directory or squashfs image",
				 what, ms->image);
		return;
	}
	if (ms->rootfs)
		mf_error(x, t, "%s.settings.createOptions.rootfs: not with a %s image (the image is the root filesystem)",
			 what, k == TE_IMAGE_DIR ? "directory" : "squashfs");
	if (!(ms->namespaces & TE_NS_MOUNT))
		mf_error(x, t, "%s.settings.image: a directory or squashfs image needs the \"mount\" namespace", what);
}

/* settings.image as a URL: checked here, pulled and resolved by the
 * daemon (imagegate.c); until then image is the URL itself. */
static void mf_image_url(struct mf_ctx *x, struct te_module_spec *ms, unsigned t,
			 const char *name)
{
	struct te_image_ref *ref = malloc(sizeof(*ref));
	char err[300];

	if (!ref) {
		x->oom = true;
		return;
	}
	if (te_image_ref_parse(ms->image, ref, err, sizeof(err)) < 0) {
		mf_error(x, t, "%s: %s", name, err);
	} else {
		ms->image_url = ms->image;
		snprintf(ms->image_sha256, sizeof(ms->image_sha256), "%s", ref->sha256);
	}
	free(ref);
}

static void mf_env(struct mf_ctx *x, struct te_module_spec *ms, unsigned obj,
		   const char *what)
{
	static const struct te_json_policy pol[] = {
		{ "value", TE_JSON_STRING | TE_JSON_NUMBER | TE_JSON_BOOL, TE_JSON_REQUIRED },
	};
	char name[200];
	int tb[1];

	ms->env = mf_alloc(x, (x->doc->tok[obj].size + 1) * sizeof(*ms->env));
	if (!ms->env)
		return;
	TE_JSON_FOREACH_MEMBER(x->doc, obj, k, v) {
		const char *key = mf_str(x, k), *val;
		const struct te_json_tok *vt;
		char *kv;

		if (!key)
			continue;
		snprintf(name, sizeof(name), "%s.env.%s", what, key);
		if (!valid_env_name(key) || !strncmp(key, "IOTEDGE_", 8) ||
		    !strncmp(key, "TINYEDGE_", 9)) {
			mf_error(x, k, "%s: environment names must be non-empty, without '=', and not start with IOTEDGE_ or TINYEDGE_ (set by tinyedge)", name);
			continue;
		}
		if (te_json_read_object(x->doc, v, name, pol, 1, tb, x->diag)) {
			x->bad++;
			continue;
		}
		vt = &x->doc->tok[tb[0]];
		val = vt->type == TE_JSON_STRING ? mf_str(x, (unsigned)tb[0]) : NULL;
		kv = mf_alloc(x, strlen(key) + (vt->end - vt->start) + 2);
		if (!kv)
			return;
		if (val)
			sprintf(kv, "%s=%s", key, val);
		else
			sprintf(kv, "%s=%.*s", key, (int)(vt->end - vt->start),
				x->doc->text + vt->start);
		ms->env[ms->nenv++] = kv;
	}
}

/* settings: image, createOptions (object or string), createOptions01..99 */
static void mf_settings(struct mf_ctx *x, struct te_module_spec *ms,
			unsigned obj, const char *what)
{
	unsigned parts[CREATE_OPTIONS_PARTS], nparts = 0, co_obj = 0;
	char name[200];
	int image = -1;

	snprintf(name, sizeof(name), "%s.settings", what);
	TE_JSON_FOREACH_MEMBER(x->doc, obj, k, v) {
		const char *key = mf_str(x, k);
		unsigned idx;

		if (!key)
			continue;
		if (!strcmp(key, "image")) {
			image = (int)v;
			continue;
		}
		if (!strcmp(key, "createOptions") &&
		    x->doc->tok[v].type == TE_JSON_OBJECT) {
			co_obj = v;
			continue;
		}
		idx = !strcmp(key, "createOptions") ? 0 : CREATE_OPTIONS_PARTS;
		if (!strncmp(key, "createOptions", 13) && isdigit((unsigned char)key[13]) &&
		    isdigit((unsigned char)key[14]) && !key[15])
			idx = (unsigned)atoi(key + 13);
		if (idx == 0 && strcmp(key, "createOptions"))
			idx = CREATE_OPTIONS_PARTS;
		if (idx >= CREATE_OPTIONS_PARTS) {
			mf_error(x, k, "unknown key \"%s\" in %s (expected image, createOptions)", key, name);
		} else if (x->doc->tok[v].type != TE_JSON_STRING) {
			mf_error(x, v, "%s.%s must be a string or an object", name, key);
		} else if (idx != nparts) {
			mf_error(x, k, "%s.%s: the createOptions parts must be consecutive", name, key);
		} else {
			parts[nparts++] = v;
		}
	}
	snprintf(name, sizeof(name), "%s.settings.image", what);
	if (image < 0)
		mf_error(x, obj, "%s.settings: missing required key \"image\"", what);
	else if (x->doc->tok[image].type == TE_JSON_STRING &&
		 (ms->image = mf_str(x, (unsigned)image)) && te_image_ref_is_url(ms->image))
		mf_image_url(x, ms, (unsigned)image, name);
	else
		ms->image = mf_path(x, (unsigned)image, name);
	snprintf(name, sizeof(name), "%s.settings.createOptions", what);
	if (co_obj && nparts)
		mf_error(x, parts[0], "%s: give createOptions as an object or as strings, not both", name);
	else if (co_obj)
		mf_create_options(x, ms, co_obj, name);
	else if (nparts)
		mf_create_options_string(x, ms, parts, nparts, name);
	if (ms->image && !ms->image_url)
		mf_image(x, ms, (unsigned)image, what);
}

static const struct te_json_policy module_policy[] = {
	{ "type", TE_JSON_STRING, TE_JSON_REQUIRED },
	{ "status", TE_JSON_STRING, 0 },
	{ "restartPolicy", TE_JSON_STRING, 0 },
	{ "startupOrder", TE_JSON_NUMBER, 0 },
	{ "env", TE_JSON_OBJECT, 0 },
	{ "settings", TE_JSON_OBJECT, TE_JSON_REQUIRED },
	{ "version", TE_JSON_STRING, 0 },
	{ "imagePullPolicy", TE_JSON_STRING, 0 },
};
enum { MO_TYPE, MO_STATUS, MO_RESTART, MO_ORDER, MO_ENV, MO_SETTINGS, MO_VERSION, MO_PULL,
       MO_N };

static const char *const pull_names[] = { "on-create", "never" };

static void mf_module_fields(struct mf_ctx *x, struct te_module_spec *ms,
			     const int *tb, const char *what)
{
	char name[200];
	unsigned e;
	int64_t order;

	snprintf(name, sizeof(name), "%s.type", what);
	if (tb[MO_TYPE] >= 0 && !te_json_streq(x->doc, (unsigned)tb[MO_TYPE], "native"))
		mf_error(x, (unsigned)tb[MO_TYPE], "%s: only \"native\" modules are supported (tinyedge runs executables, not containers)", name);
	snprintf(name, sizeof(name), "%s.status", what);
	if (tb[MO_STATUS] >= 0 && te_jv_enum(x->doc, (unsigned)tb[MO_STATUS], name,
					      status_names, 2, &e, x->diag) == 0)
		ms->status = e;
	else if (tb[MO_STATUS] >= 0)
		x->bad++;
	snprintf(name, sizeof(name), "%s.restartPolicy", what);
	if (tb[MO_RESTART] >= 0 && te_jv_enum(x->doc, (unsigned)tb[MO_RESTART], name,
					       restart_names, 4, &e, x->diag) == 0)
		ms->restart = e;
	else if (tb[MO_RESTART] >= 0)
		x->bad++;
	snprintf(name, sizeof(name), "%s.startupOrder", what);
	if (tb[MO_ORDER] >= 0 && te_jv_int(x->doc, (unsigned)tb[MO_ORDER], name, 0,
					    UINT32_MAX - 1, &order, x->diag) == 0)
		ms->startup_order = (uint32_t)order;
	else if (tb[MO_ORDER] >= 0)
		x->bad++;
	if (tb[MO_ENV] >= 0)
		mf_env(x, ms, (unsigned)tb[MO_ENV], what);
	if (tb[MO_SETTINGS] >= 0)
		mf_settings(x, ms, (unsigned)tb[MO_SETTINGS], what);
	snprintf(name, sizeof(name), "%s.imagePullPolicy", what);
	if (tb[MO_PULL] >= 0 && te_jv_enum(x->doc, (unsigned)tb[MO_PULL], name,
					    pull_names, 2, &e, x->diag) == 0)
		ms->pull_never = e == 1;
	else if (tb[MO_PULL] >= 0)
		x->bad++;
}

static void mf_modules(struct mf_ctx *x, unsigned obj)
{
	struct te_manifest *m = x->m;
	char what[200];
	int tb[MO_N];

	m->modules = mf_alloc(x, (x->doc->tok[obj].size + 1) * sizeof(*m->modules));
	if (!m->modules)
		return;
	TE_JSON_FOREACH_MEMBER(x->doc, obj, k, v) {
		struct te_module_spec *ms = &m->modules[m->nmodules];
		const char *name = mf_str(x, k);

		if (!name)
			continue;
		if (!valid_module_name(name)) {
			mf_error(x, k, "module name \"%s\": use 1 to %d letters, digits, '.', '_' or '-', starting with a letter or digit",
				 name, TE_MODULE_NAME_MAX);
			continue;
		}
		snprintf(what, sizeof(what), "modules.%s", name);
		mf_defaults(ms);
		ms->name = name;
		te_json_pos(x->doc, x->doc->tok[k].start - 1, &ms->line, &ms->col);
		if (te_json_read_object(x->doc, v, what, module_policy, MO_N, tb, x->diag))
			x->bad++;
		mf_module_fields(x, ms, tb, what);
		m->nmodules++;
	}
}

static const struct te_json_policy runtime_policy[] = {
	{ "type", TE_JSON_STRING, TE_JSON_REQUIRED },
	{ "settings", TE_JSON_OBJECT, 0 },
};

static void mf_runtime(struct mf_ctx *x, unsigned obj)
{
	int tb[2];

	x->bad += te_json_read_object(x->doc, obj, "$edgeAgent.runtime",
				      runtime_policy, 2, tb, x->diag);
	if (tb[0] >= 0 && !te_json_streq(x->doc, (unsigned)tb[0], "native"))
		mf_error(x, (unsigned)tb[0], "$edgeAgent.runtime.type: only \"native\" is supported (tinyedge runs modules as processes, not Docker containers)");
}

static const struct te_json_policy agent_policy[] = {
	{ "schemaVersion", TE_JSON_STRING, 0 },
	{ "runtime", TE_JSON_OBJECT, 0 },
	{ "systemModules", TE_JSON_OBJECT, 0 },
	{ "modules", TE_JSON_OBJECT, 0 },
};

static void mf_agent(struct mf_ctx *x, unsigned obj)
{
	static const struct te_json_policy pol[] = {
		{ "properties.desired", TE_JSON_OBJECT, TE_JSON_REQUIRED },
	};
	int tb[1], atb[4];

	x->bad += te_json_read_object(x->doc, obj, "$edgeAgent", pol, 1, tb, x->diag);
	if (tb[0] < 0)
		return;
	x->bad += te_json_read_object(x->doc, (unsigned)tb[0], "$edgeAgent.properties.desired",
				      agent_policy, 4, atb, x->diag);
	if (atb[1] >= 0)
		mf_runtime(x, (unsigned)atb[1]);
	/* systemModules describe edgeAgent/edgeHub containers: tinyedge is
	 * both, so they are accepted and ignored. */
	if (atb[3] >= 0)
		mf_modules(x, (unsigned)atb[3]);
}

/* --- $edgeHub: routes, storeAndForwardConfiguration --- */

static const struct te_json_policy route_policy[] = {
	{ "route", TE_JSON_STRING, TE_JSON_REQUIRED },
	{ "priority", TE_JSON_NUMBER, 0 },
	{ "timeToLiveSecs", TE_JSON_NUMBER, 0 },
	{ "overflow", TE_JSON_STRING, 0 },
};

static const char *const overflow_names[] = { "spill", "drop-oldest", "drop-newest", "block" };

const char *te_overflow_name(enum te_overflow o)
{
	return overflow_names[o];
}

static void mf_route(struct mf_ctx *x, struct te_route_spec *r, unsigned v,
		     const char *what)
{
	char name[200];
	int64_t n;
	unsigned o;
	int tb[4];
	int text = (int)v;

	if (x->doc->tok[v].type == TE_JSON_OBJECT) {
		if (te_json_read_object(x->doc, v, what, route_policy, 4, tb, x->diag))
			x->bad++;
		text = tb[0];
		snprintf(name, sizeof(name), "%s.priority", what);
		if (tb[1] >= 0 && te_jv_int(x->doc, (unsigned)tb[1], name, 0, 9, &n, x->diag) == 0)
			r->priority = (unsigned)n;
		else if (tb[1] >= 0)
			x->bad++;
		snprintf(name, sizeof(name), "%s.timeToLiveSecs", what);
		if (tb[2] >= 0 && te_jv_int(x->doc, (unsigned)tb[2], name, INT32_MIN, INT32_MAX, &n, x->diag) == 0)
			r->ttl_secs = n;
		else if (tb[2] >= 0)
			x->bad++;
		snprintf(name, sizeof(name), "%s.overflow", what);
		if (tb[3] >= 0 && te_jv_enum(x->doc, (unsigned)tb[3], name, overflow_names, 4,
					     &o, x->diag) == 0)
			r->overflow = (enum te_overflow)o;
		else if (tb[3] >= 0)
			x->bad++;
	} else if (x->doc->tok[v].type != TE_JSON_STRING) {
		mf_error(x, v, "%s must be a string or an object", what);
		return;
	}
	if (text >= 0)
		r->route = mf_str_checked(x, (unsigned)text, what, ROUTE_MAX);
}

static void mf_routes(struct mf_ctx *x, unsigned obj)
{
	struct te_manifest *m = x->m;
	char what[200];

	m->routes = mf_alloc(x, (x->doc->tok[obj].size + 1) * sizeof(*m->routes));
	if (!m->routes)
		return;
	TE_JSON_FOREACH_MEMBER(x->doc, obj, k, v) {
		struct te_route_spec *r = &m->routes[m->nroutes];

		r->name = mf_str(x, k);
		if (!r->name)
			continue;
		snprintf(what, sizeof(what), "routes.%s", r->name);
		r->priority = TE_ROUTE_PRIORITY_DEFAULT;
		r->ttl_secs = TE_TTL_UNSET;
		te_json_pos(x->doc, x->doc->tok[k].start - 1, &r->line, &r->col);
		mf_route(x, r, v, what);
		if (r->route)
			m->nroutes++;
	}
}

static const struct te_json_policy hub_policy[] = {
	{ "schemaVersion", TE_JSON_STRING, 0 },
	{ "routes", TE_JSON_OBJECT, 0 },
	{ "storeAndForwardConfiguration", TE_JSON_OBJECT, 0 },
};

static void mf_hub(struct mf_ctx *x, unsigned obj)
{
	static const struct te_json_policy pol[] = {
		{ "properties.desired", TE_JSON_OBJECT, TE_JSON_REQUIRED },
	};
	static const struct te_json_policy sf[] = {
		{ "timeToLiveSecs", TE_JSON_NUMBER, 0 },
	};
	int tb[1], htb[3], stb[1];

	x->bad += te_json_read_object(x->doc, obj, "$edgeHub", pol, 1, tb, x->diag);
	if (tb[0] < 0)
		return;
	x->bad += te_json_read_object(x->doc, (unsigned)tb[0], "$edgeHub.properties.desired",
				      hub_policy, 3, htb, x->diag);
	if (htb[1] >= 0)
		mf_routes(x, (unsigned)htb[1]);
	if (htb[2] < 0)
		return;
	x->bad += te_json_read_object(x->doc, (unsigned)htb[2], "storeAndForwardConfiguration",
				      sf, 1, stb, x->diag);
	if (stb[0] >= 0 && te_jv_int(x->doc, (unsigned)stb[0],
				     "storeAndForwardConfiguration.timeToLiveSecs",
				     INT32_MIN, INT32_MAX, &x->m->ttl_secs, x->diag) == 0)
		x->m->has_ttl = true;
	else if (stb[0] >= 0)
		x->bad++;
}

/* --- module twins: modulesContent.{name}["properties.desired"] --- */

/* Desired properties follow IoT Hub's naming rules (core/json_patch.h):
 * applying them as a patch to {} says whether they do. */
static bool mf_twin_names_ok(struct mf_ctx *x, unsigned t, const char *what,
			     const char *json, size_t n)
{
	char err[300], *out = malloc(n + 64);
	size_t len;
	int r = out ? te_json_merge_patch("{}", 2, json, n, out, n + 64, &len, err, sizeof(err))
		    : -ENOMEM;

	free(out);
	if (r == -TE_EINVALID || r == -TE_ELIMIT) {
		/* err is "patch:LINE:COL: reason"; the reason is what matters. */
		const char *why = strstr(err, ": ");

		mf_error(x, t, "%s[\"properties.desired\"]: %s", what, why ? why + 2 : err);
		return false;
	}
	return r == 0;
}

static void mf_twin(struct mf_ctx *x, unsigned k, unsigned v)
{
	static const struct te_json_policy pol[] = {
		{ "properties.desired", TE_JSON_OBJECT, TE_JSON_REQUIRED },
	};
	const char *name = mf_str(x, k);
	struct te_module_spec *ms;
	const struct te_json_tok *d;
	char what[200];
	int tb[1];
	char *json;

	if (!name)
		return;
	ms = (struct te_module_spec *)te_manifest_find(x->m, name);
	snprintf(what, sizeof(what), "modulesContent.%s", name);
	if (!ms) {
		mf_error(x, k, "%s: no module named \"%s\" in $edgeAgent modules", what, name);
		return;
	}
	if (te_json_read_object(x->doc, v, what, pol, 1, tb, x->diag)) {
		x->bad++;
		return;
	}
	d = &x->doc->tok[tb[0]];
	if (d->end - d->start > TWIN_DESIRED_MAX) {
		mf_error(x, (unsigned)tb[0], "%s desired properties are %u bytes, at most %u",
			 what, d->end - d->start, TWIN_DESIRED_MAX);
		return;
	}
	json = mf_alloc(x, d->end - d->start + 1);
	if (!json)
		return;
	memcpy(json, x->doc->text + d->start, d->end - d->start);
	if (mf_twin_names_ok(x, (unsigned)tb[0], what, json, d->end - d->start))
		ms->desired_json = json;
}

static void mf_content(struct mf_ctx *x, unsigned obj)
{
	int agent = te_json_get(x->doc, obj, "$edgeAgent");
	int hub = te_json_get(x->doc, obj, "$edgeHub");

	if (agent < 0)
		mf_error(x, obj, "modulesContent: missing required key \"$edgeAgent\"");
	else if (x->doc->tok[agent].type != TE_JSON_OBJECT)
		mf_error(x, (unsigned)agent, "$edgeAgent must be an object");
	else
		mf_agent(x, (unsigned)agent);
	if (hub >= 0 && x->doc->tok[hub].type != TE_JSON_OBJECT)
		mf_error(x, (unsigned)hub, "$edgeHub must be an object");
	else if (hub >= 0)
		mf_hub(x, (unsigned)hub);
	TE_JSON_FOREACH_MEMBER(x->doc, obj, k, v) {
		if ((int)v == agent || (int)v == hub)
			continue;
		if (x->doc->tok[v].type != TE_JSON_OBJECT)
			mf_error(x, v, "modulesContent members must be objects");
		else
			mf_twin(x, k, v);
	}
}

/* --- public --- */

void te_manifest_init(struct te_manifest *m)
{
	memset(m, 0, sizeof(*m));
	m->ttl_secs = TE_TTL_DEFAULT;
}

void te_manifest_free(struct te_manifest *m)
{
	te_arena_free(&m->arena);
	te_manifest_init(m);
}

const struct te_module_spec *te_manifest_find(const struct te_manifest *m,
					      const char *name)
{
	for (unsigned i = 0; i < m->nmodules; i++)
		if (!strcmp(m->modules[i].name, name))
			return &m->modules[i];
	return NULL;
}

static int mf_root(struct te_manifest *m, struct te_json_doc *doc, struct te_diag *diag)
{
	static const struct te_json_policy root[] = {
		{ "modulesContent", TE_JSON_OBJECT, TE_JSON_REQUIRED },
		{ "$version", TE_JSON_NUMBER, 0 },
	};
	struct mf_ctx x = { .m = m, .doc = doc, .diag = diag };
	int tb[2];

	if (doc->tok[0].type != TE_JSON_OBJECT)
		mf_error(&x, 0, "a deployment manifest must be a JSON object");
	else if (te_json_read_object(doc, 0, "", root, 2, tb, diag))
		x.bad++;
	else if (tb[1] >= 0 && te_jv_int(doc, (unsigned)tb[1], "$version", 0, INT64_MAX,
					 &m->version, diag) < 0)
		x.bad++;
	else
		mf_content(&x, (unsigned)tb[0]);
	if (x.bad || x.oom) {
		te_manifest_free(m);
		return x.oom ? -ENOMEM : -TE_EINVALID;
	}
	return 0;
}

int te_manifest_load(struct te_manifest *m, const char *path,
		     struct te_diag *diag)
{
	struct te_json_doc doc;
	int r;

	te_manifest_init(m);
	r = te_json_load_file(&doc, path, NULL, NULL, diag);
	if (r < 0)
		return r == -TE_EMALFORMED || r == -TE_ELIMIT ? -TE_EINVALID : r;
	m->path = te_arena_strdup(&m->arena, path);
	r = m->path ? mf_root(m, &doc, diag) : -ENOMEM;
	te_json_free(&doc);
	return r;
}

int te_manifest_parse(struct te_manifest *m, const char *name, const char *text,
		      size_t n, struct te_diag *diag)
{
	struct te_json_doc doc;
	int r;

	te_manifest_init(m);
	r = te_json_parse(&doc, name, text, n, NULL, diag);
	if (r < 0)
		return r == -TE_EMALFORMED || r == -TE_ELIMIT ? -TE_EINVALID : r;
	m->path = te_arena_strdup(&m->arena, name);
	r = m->path ? mf_root(m, &doc, diag) : -ENOMEM;
	te_json_free(&doc);
	return r;
}

/* --- one-off runs: --module and --route --- */

static void flag_error(struct te_diag *diag, const char *flag, const char *arg,
		       const char *msg)
{
	te_diag_report(diag, NULL, 0, 0, "%s '%s': %s", flag, arg, msg);
}

/* Room for one more module; the old array stays in the arena. */
static struct te_module_spec *mf_append_module(struct te_manifest *m)
{
	struct te_module_spec *v;

	v = te_arena_alloc(&m->arena, (m->nmodules + 1) * sizeof(*v));
	if (!v)
		return NULL;
	if (m->nmodules)
		memcpy(v, m->modules, m->nmodules * sizeof(*v));
	m->modules = v;
	return &v[m->nmodules];
}

/* Split s at ':' into a NULL-terminated arena vector. */
static const char **split_args(struct te_arena *a, char *s, unsigned *n)
{
	unsigned count = 1;
	const char **v;

	for (char *p = s; *p; p++)
		count += *p == ':';
	v = te_arena_alloc(a, (count + 1) * sizeof(*v));
	if (!v)
		return NULL;
	*n = 0;
	for (char *tok = s, *p; tok; tok = p) {
		p = strchr(tok, ':');
		if (p)
			*p++ = '\0';
		v[(*n)++] = tok;
	}
	return v;
}

int te_manifest_add_module_flag(struct te_manifest *m, const char *arg,
				struct te_diag *diag)
{
	char *s = te_arena_strdup(&m->arena, arg), *path, *colon;
	struct te_module_spec ms, *slot;

	if (!s)
		return -ENOMEM;
	path = strchr(s, '=');
	if (!path) {
		flag_error(diag, "--module", arg, "expected NAME=PATH[:ARG...]");
		return -TE_EINVALID;
	}
	*path++ = '\0';
	if (!valid_module_name(s)) {
		flag_error(diag, "--module", arg, "the name must be 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit");
		return -TE_EINVALID;
	}
	if (path[0] != '/') {
		flag_error(diag, "--module", arg, "PATH must be absolute");
		return -TE_EINVALID;
	}
	memset(&ms, 0, sizeof(ms));
	mf_defaults(&ms);
	ms.name = s;
	ms.image = path;
	colon = strchr(path, ':');
	if (colon) {
		*colon = '\0';
		ms.args = split_args(&m->arena, colon + 1, &ms.nargs);
		if (!ms.args)
			return -ENOMEM;
	}
	if (te_image_kind_of(path, &ms.image_kind) < 0)
		ms.image_kind = TE_IMAGE_EXEC;
	slot = (struct te_module_spec *)te_manifest_find(m, s);
	if (!slot && !(slot = mf_append_module(m)))
		return -ENOMEM;
	if (slot == &m->modules[m->nmodules])
		m->nmodules++;
	*slot = ms;
	return 0;
}

int te_manifest_add_route_flag(struct te_manifest *m, const char *arg,
			       struct te_diag *diag)
{
	struct te_route_spec *v;
	char name[32];

	if (!arg[0] || strlen(arg) > ROUTE_MAX) {
		flag_error(diag, "--route", arg, "a route is 1 to 4096 bytes");
		return -TE_EINVALID;
	}
	v = te_arena_alloc(&m->arena, (m->nroutes + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (m->nroutes)
		memcpy(v, m->routes, m->nroutes * sizeof(*v));
	m->routes = v;
	snprintf(name, sizeof(name), "flag%u", m->nroutes + 1);
	v[m->nroutes] = (struct te_route_spec){
		.name = te_arena_strdup(&m->arena, name),
		.route = te_arena_strdup(&m->arena, arg),
		.priority = TE_ROUTE_PRIORITY_DEFAULT,
		.ttl_secs = TE_TTL_UNSET,
	};
	if (!v[m->nroutes].name || !v[m->nroutes].route)
		return -ENOMEM;
	m->nroutes++;
	return 0;
}

/* --- host checks --- */

static unsigned host_problem(const struct te_manifest *m,
			     const struct te_module_spec *ms,
			     struct te_diag *diag, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static unsigned host_problem(const struct te_manifest *m,
			     const struct te_module_spec *ms,
			     struct te_diag *diag, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	te_diag_vreport(diag, m->path, ms->line, ms->col, fmt, ap);
	va_end(ap);
	return 1;
}

/* A directory or squashfs image: its superblock, its program, and the
 * mount points a read-only one must have (a squashfs is not mounted here:
 * its superblock only). */
static unsigned check_image_root(const struct te_manifest *m,
				 const struct te_module_spec *ms,
				 struct te_diag *diag)
{
	char err[256] = "";
	int r = 0;

	if (!ms->nargs && ms->image_kind == TE_IMAGE_DIR)
		return host_problem(m, ms, diag, "module %s: image %s is not an executable file; a directory image needs createOptions.args[0], the absolute path of its program",
				    ms->name, ms->image);
	if (!ms->nargs || ms->args[0][0] != '/')
		snprintf(err, sizeof(err), "createOptions.args[0] must be the absolute path of the program inside the image");
	else if (ms->image_kind == TE_IMAGE_DIR)
		r = te_image_check_tree(ms->image, ms, err, sizeof(err));
	else if ((r = te_image_check_squashfs(ms->image, err, sizeof(err))) < 0 &&
		 r != -TE_EINVALID)
		snprintf(err, sizeof(err), "%s", strerror(-r));
	if (!err[0])
		return 0;
	return host_problem(m, ms, diag, "module %s: image %s: %s", ms->name, ms->image, err);
}

static unsigned check_image(const struct te_manifest *m,
			    const struct te_module_spec *ms,
			    struct te_diag *diag)
{
	enum te_image_kind kind;
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s%s", ms->rootfs ? ms->rootfs : "", ms->image);
	if (stat(path, &st) < 0)
		return host_problem(m, ms, diag, "module %s: image %s: %s",
				    ms->name, path, strerror(errno));
	/* the kind seen at load, or the file's now (it may have appeared) */
	if (!ms->rootfs && te_image_kind_of(path, &kind) == 0 && kind != TE_IMAGE_EXEC) {
		struct te_module_spec now = *ms;

		now.image_kind = kind;
		return check_image_root(m, &now, diag);
	}
	if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111) || access(path, X_OK) < 0)
		return host_problem(m, ms, diag, "module %s: image %s is not an executable file",
				    ms->name, path);
	return 0;
}

static unsigned check_paths(const struct te_manifest *m,
			    const struct te_module_spec *ms,
			    struct te_diag *diag)
{
	unsigned bad = 0;
	struct stat st;

	if (ms->rootfs && (stat(ms->rootfs, &st) < 0 || !S_ISDIR(st.st_mode)))
		bad += host_problem(m, ms, diag, "module %s: rootfs %s is not a directory",
				    ms->name, ms->rootfs);
	for (unsigned i = 0; i < ms->nmounts; i++)
		if (stat(ms->mounts[i].source, &st) < 0)
			bad += host_problem(m, ms, diag, "module %s: mount source %s: %s",
					    ms->name, ms->mounts[i].source, strerror(errno));
	for (unsigned i = 0; i < ms->ndevices; i++)
		if (stat(ms->devices[i].path, &st) < 0 ||
		    !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
			bad += host_problem(m, ms, diag, "module %s: %s is not a device node",
					    ms->name, ms->devices[i].path);
	return bad;
}

unsigned te_manifest_check_host(const struct te_manifest *m,
				struct te_diag *diag)
{
	unsigned bad = 0;

	for (unsigned i = 0; i < m->nmodules; i++) {
		/* a URL image is checked when the daemon pulls it */
		if (!m->modules[i].image_url)
			bad += check_image(m, &m->modules[i], diag);
		bad += check_paths(m, &m->modules[i], diag);
	}
	return bad;
}
