/* Deployments from the cloud: build, validate, admit, apply, report, keep
 * the last good one, roll back (deploy.h, docs/deployments.md). */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/json_patch.h"
#include "core/log.h"
#include "deploy.h"
#include "supervisor.h"
#include "version.h"

#define DOC_MAX (1u << 20)          /* a deployment document */
#define REPORTED_MAX (256u * 1024)
#define TICK_MS 1000

static const char *const doc_names[] = { "$edgeAgent", "$edgeHub", "deployment" };

/* --- small helpers --- */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	while (n--)
		h = (h ^ *s++) * 0x100000001b3ull;
	return h;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Azure's timestamps: "2026-11-24T10:00:00.123Z". */
static void iso_time(uint64_t ms, char *out, size_t cap)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned)(ms % 1000));
}

/* A token's text as JSON (a string's span includes its quotes). */
static void tok_raw(const struct te_json_doc *d, unsigned t, const char **p, size_t *n)
{
	bool str = d->tok[t].type == TE_JSON_STRING;

	*p = d->text + d->tok[t].start - str;
	*n = d->tok[t].end - d->tok[t].start + 2 * str;
}

/* Collects the first problems a validator reports into one description. */
struct desc_sink {
	struct te_diag diag;
	char *buf;
	size_t cap, len;
};

static void desc_emit(struct te_diag *d, const char *file, unsigned line, unsigned col,
		      const char *msg)
{
	struct desc_sink *s = (struct desc_sink *)d;
	char one[600];

	te_diag_format(one, sizeof(one), file, line, col, msg);
	te_warn("agent", "%s", one);
	if (s->len + 3 < s->cap)
		s->len += (size_t)snprintf(s->buf + s->len, s->cap - s->len, "%s%s",
					   s->len ? "; " : "", one);
	if (s->len >= s->cap)
		s->len = s->cap - 1;
}

static void set_status(struct te_deployer *dp, unsigned code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_status(struct te_deployer *dp, unsigned code, const char *fmt, ...)
{
	va_list ap;

	dp->status = code;
	va_start(ap, fmt);
	vsnprintf(dp->desc, sizeof(dp->desc), fmt, ap);
	va_end(ap);
	if (code == 200)
		te_info("agent", "deployment version %lld: applied%s%s",
			(long long)dp->desired_version, dp->desc[0] ? ": " : "", dp->desc);
	else
		te_error("agent", "deployment version %lld: %u: %s",
			 (long long)dp->desired_version, code, dp->desc);
	dp->report_hash = 0;  /* report at the next tick */
}

/* --- admission --- */

static uint64_t device_ram(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

	return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : UINT64_MAX;
}

int te_deploy_admit(const struct te_manifest *m, const struct te_config *cfg, char *err,
		    size_t errlen)
{
	uint64_t budget = cfg->deployment.memory_budget ? cfg->deployment.memory_budget
							 : device_ram();
	uint64_t sum = TE_DEPLOY_RUNTIME_BYTES, limits = 0, rings = 0;

	for (unsigned i = 0; i < m->nmodules; i++) {
		const struct te_module_spec *ms = &m->modules[i];

		if (ms->status != TE_STATUS_RUNNING)
			continue;
		if (ms->limits.memory_bytes > 0)
			limits += (uint64_t)ms->limits.memory_bytes;
		rings += 2ull * ms->ring_bytes;
	}
	sum += limits + rings;
	if (sum <= budget)
		return 0;
	snprintf(err, errlen,
		 "declared memory %llu bytes (module limits %llu + rings %llu + runtime %u) exceeds the device's budget of %llu bytes",
		 (unsigned long long)sum, (unsigned long long)limits,
		 (unsigned long long)rings, TE_DEPLOY_RUNTIME_BYTES, (unsigned long long)budget);
	return -TE_ELIMIT;
}

/* --- the last good deployment --- */

static int good_write(struct te_deployer *dp, const char *text, size_t n)
{
	char tmp[PATH_MAX + 8];
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", dp->good_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < n && r == 0;) {
		ssize_t w = write(fd, text + off, n - off);

		if (w < 0 && errno != EINTR)
			r = -errno;
		else if (w > 0)
			off += (size_t)w;
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && rename(tmp, dp->good_path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		te_error("agent", "%s: %s: the last good deployment is not saved", dp->good_path,
			 te_strerror(r));
	}
	return r;
}

int te_deploy_load_good(struct te_deployer *dp, struct te_manifest *m)
{
	struct te_diag diag;
	int r;

	if (access(dp->good_path, F_OK) < 0)
		return 1;
	te_diag_init_stderr(&diag);
	r = te_manifest_load(m, dp->good_path, &diag);
	if (r < 0) {
		te_error("agent", "%s: %s; running the local deployment", dp->good_path,
			 te_strerror(r));
		return r;
	}
	m->cloud = dp->cfg->upstream.protocol == TE_UP_AZURE;
	dp->cloud_active = true;
	dp->desired_version = m->version;
	te_info("agent", "running the last good cloud deployment (version %lld) from %s",
		(long long)m->version, dp->good_path);
	return 0;
}

/* --- building the deployment --- */

/* The object at doc[0..n) without its "$" members ($version, $metadata). */
static int strip_meta(const char *json, size_t n, struct te_jw *w)
{
	struct te_diag quiet = { 0 };
	struct te_json_doc d;
	int r = te_json_parse(&d, "desired", json, n, NULL, &quiet);

	if (r < 0)
		return r;
	if (d.tok[0].type != TE_JSON_OBJECT) {
		te_json_free(&d);
		return -TE_EMALFORMED;
	}
	te_jw_obj_open(w);
	TE_JSON_FOREACH_MEMBER(&d, 0, k, v) {
		const char *p;
		size_t len;

		if (d.text[d.tok[k].start] == '$')
			continue;
		tok_raw(&d, k, &p, &len);
		te_jw_key_raw(w, p, len);
		tok_raw(&d, v, &p, &len);
		te_jw_raw(w, p, len);
	}
	te_jw_obj_close(w);
	te_json_free(&d);
	return 0;
}

/* The local deployment file's $edgeHub desired properties ("{}" if none). */
static void local_hub(struct te_deployer *dp, struct te_jw *w)
{
	struct te_diag quiet = { 0 };
	struct te_json_doc d;
	int mc, hub, des = -1;

	if (!dp->local_path[0] ||
	    te_json_load_file(&d, dp->local_path, NULL, NULL, &quiet) < 0) {
		te_jw_raw(w, "{}", 2);
		return;
	}
	mc = te_json_get(&d, 0, "modulesContent");
	hub = mc >= 0 ? te_json_get(&d, (unsigned)mc, "$edgeHub") : -1;
	des = hub >= 0 ? te_json_get(&d, (unsigned)hub, "properties.desired") : -1;
	if (des >= 0 && d.tok[des].type == TE_JSON_OBJECT) {
		const char *p;
		size_t len;

		tok_raw(&d, (unsigned)des, &p, &len);
		te_jw_raw(w, p, len);
	} else {
		te_jw_raw(w, "{}", 2);
	}
	te_json_free(&d);
}

/* Azure: {"$version":V,"modulesContent":{"$edgeAgent":{"properties.desired":A},
 * "$edgeHub":{"properties.desired":H}}} from the twins' documents. */
static int build_azure(struct te_deployer *dp, struct te_jw *w)
{
	int r;

	te_jw_obj_open(w);
	te_jw_kint(w, "$version", dp->docver[TE_DEPLOY_AGENT]);
	te_jw_key(w, "modulesContent");
	te_jw_obj_open(w);
	te_jw_key(w, "$edgeAgent");
	te_jw_obj_open(w);
	te_jw_key(w, "properties.desired");
	r = strip_meta(dp->doc[TE_DEPLOY_AGENT], dp->doclen[TE_DEPLOY_AGENT], w);
	te_jw_obj_close(w);
	te_jw_key(w, "$edgeHub");
	te_jw_obj_open(w);
	te_jw_key(w, "properties.desired");
	if (r == 0 && dp->doc[TE_DEPLOY_HUB])
		r = strip_meta(dp->doc[TE_DEPLOY_HUB], dp->doclen[TE_DEPLOY_HUB], w);
	else if (r == 0)
		local_hub(dp, w);
	te_jw_obj_close(w);
	te_jw_obj_close(w);
	te_jw_obj_close(w);
	return r < 0 ? r : te_jw_finish(w);
}

/* 412 / 417 before the full validation: what Azure checks first. */
static unsigned precheck(struct te_deployer *dp, const char *text, size_t n)
{
	static const char *const schemas[] = { "1.0", "1.1", "1.2" };
	struct te_diag quiet = { 0 };
	struct te_json_doc d;
	int mc, ag = -1, des = -1, sv;
	unsigned code = 0;

	if (te_json_parse(&d, "deployment", text, n, NULL, &quiet) < 0)
		return 0;  /* the full validation says where */
	mc = te_json_get(&d, 0, "modulesContent");
	if (mc >= 0)
		ag = te_json_get(&d, (unsigned)mc, "$edgeAgent");
	if (ag >= 0 && d.tok[ag].type == TE_JSON_OBJECT)
		des = te_json_get(&d, (unsigned)ag, "properties.desired");
	if (des < 0 || d.tok[des].type != TE_JSON_OBJECT ||
	    (te_json_get(&d, (unsigned)des, "modules") < 0 &&
	     te_json_get(&d, (unsigned)des, "runtime") < 0)) {
		set_status(dp, 417, "the desired properties hold no deployment ($edgeAgent modules and runtime)");
		code = 417;
	} else if ((sv = te_json_get(&d, (unsigned)des, "schemaVersion")) >= 0) {
		code = 412;
		for (unsigned i = 0; i < 3; i++)
			if (te_json_streq(&d, (unsigned)sv, schemas[i]))
				code = 0;
		if (code)
			set_status(dp, 412, "$edgeAgent schemaVersion %.*s: supported are 1.0, 1.1, 1.2",
				   d.tok[sv].end - d.tok[sv].start, d.text + d.tok[sv].start);
	}
	te_json_free(&d);
	return code;
}

/* --- probation and rollback --- */

static void watch_changes(struct te_deployer *dp, const struct te_manifest *m)
{
	dp->nwatch = 0;
	for (unsigned i = 0; i < m->nmodules && dp->nwatch < TE_DEPLOY_WATCH_MAX; i++) {
		const struct te_module_spec *ns = &m->modules[i];
		struct te_mod *md = te_sv_find(dp->sv, ns->name);

		if (ns->status != TE_STATUS_RUNNING || (md && te_spec_equal(md->spec, ns)))
			continue;
		snprintf(dp->watch[dp->nwatch].name, sizeof(dp->watch[0].name), "%s", ns->name);
		dp->watch[dp->nwatch++].restarts = md ? md->restart_count : 0;
	}
}

static void rollback(struct te_deployer *dp, const char *module, unsigned restarts)
{
	struct te_manifest *m = malloc(sizeof(*m));
	char err[300];
	int64_t bad = dp->desired_version;

	free(dp->pending);
	dp->pending = NULL;
	te_timer_cancel(dp->loop, &dp->probe);
	if (!m || te_deploy_load_good(dp, m) != 0) {
		free(m);
		set_status(dp, 500, "module %s crash-looped (%u restarts) after the update; no earlier deployment to roll back to",
			   module, restarts);
		return;
	}
	dp->desired_version = bad;
	if (dp->apply(dp, m, err, sizeof(err)) < 0) {
		set_status(dp, 500, "module %s crash-looped; the rollback failed: %s", module, err);
		return;
	}
	set_status(dp, 500, "module %s crash-looped (%u restarts) after the update: rolled back to the last good deployment (version %lld)",
		   module, restarts, (long long)dp->sv->manifest->version);
}

static void on_probe(struct te_loop *loop, struct te_timer *t)
{
	struct te_deployer *dp = (struct te_deployer *)((char *)t -
							 offsetof(struct te_deployer, probe));

	for (unsigned i = 0; i < dp->nwatch; i++) {
		struct te_mod *md = te_sv_find(dp->sv, dp->watch[i].name);
		unsigned n = md ? md->restart_count - dp->watch[i].restarts : 0;

		if (md && (n >= TE_DEPLOY_CRASH_LOOP || md->state == TE_MOD_FAILED)) {
			rollback(dp, md->name, n);
			return;
		}
	}
	if (te_now_ms() < dp->probe_end) {
		te_timer_set(loop, t, 500);
		return;
	}
	te_info("agent", "deployment version %lld passed probation: now the last good one",
		(long long)dp->desired_version);
	good_write(dp, dp->pending, dp->pending_len);
	free(dp->pending);
	dp->pending = NULL;
}

/* --- applying --- */

/* Applied: probation, or the last good deployment now. */
static void deploy_done(struct te_deployer *dp, const char *text, size_t n)
{
	dp->cloud_active = true;
	free(dp->pending);
	dp->pending = NULL;
	if (dp->cfg->deployment.rollback_on_failure && dp->nwatch) {
		dp->pending = malloc(n);
		if (dp->pending)
			memcpy(dp->pending, text, n), dp->pending_len = n;
		dp->probe_end = te_now_ms() + dp->cfg->deployment.probation_secs * 1000ull;
		te_timer_set(dp->loop, &dp->probe, 500);
		set_status(dp, 200, "on probation for %u s", dp->cfg->deployment.probation_secs);
		return;
	}
	te_timer_cancel(dp->loop, &dp->probe);
	good_write(dp, text, n);
	set_status(dp, 200, "%s", "");
}

static void deploy_text(struct te_deployer *dp, const char *text, size_t n, int64_t version)
{
	struct te_manifest *m = malloc(sizeof(*m));
	struct desc_sink sink = { .diag = { .emit = desc_emit }, .buf = dp->desc,
				  .cap = sizeof(dp->desc) };
	char name[64], err[400];
	int r;

	dp->desired_version = version;
	if (!m) {
		set_status(dp, 500, "out of memory");
		return;
	}
	if (precheck(dp, text, n)) {
		free(m);
		return;
	}
	snprintf(name, sizeof(name), "deployment version %lld", (long long)version);
	dp->desc[0] = '\0';
	r = te_manifest_parse(m, name, text, n, &sink.diag);
	if (r == 0 && te_routes_check(m, &sink.diag))
		r = -TE_EINVALID;
	if (r < 0) {
		char why[sizeof(dp->desc)];

		snprintf(why, sizeof(why), "%s", dp->desc);
		free(m);
		set_status(dp, r == -ENOMEM ? 500 : 400, "invalid deployment, nothing changed: %s",
			   why);
		return;
	}
	m->cloud = dp->cfg->upstream.protocol == TE_UP_AZURE;
	m->version = version;
	if (te_deploy_admit(m, dp->cfg, err, sizeof(err)) < 0) {
		te_manifest_free(m);
		free(m);
		set_status(dp, 400, "refused by the admission check, nothing changed: %s", err);
		return;
	}
	watch_changes(dp, m);
	free(dp->waiting);
	dp->waiting = NULL;
	r = dp->apply(dp, m, err, sizeof(err));
	if (r < 0) {
		set_status(dp, 500, "cannot apply: %s", err);
		return;
	}
	if (r == 1) {
		/* Download, then swap: the modules run on meanwhile. */
		if ((dp->waiting = malloc(n)))
			memcpy(dp->waiting, text, n), dp->waiting_len = n;
		te_info("agent", "deployment version %lld waits for its images",
			(long long)version);
		return;
	}
	deploy_done(dp, text, n);
}

void te_deploy_applied(struct te_deployer *dp, int r, const char *err)
{
	if (r == 1) {
		set_status(dp, 500, "image download failed, the running modules are unchanged (trying again): %s",
			   err);
		return;
	}
	if (r < 0) {
		set_status(dp, 500, "cannot apply: %s", err);
	} else if (dp->waiting) {
		deploy_done(dp, dp->waiting, dp->waiting_len);
	} else {
		dp->cloud_active = true;
		set_status(dp, 200, "%s", "");
	}
	free(dp->waiting);
	dp->waiting = NULL;
}

/* Keep the cloud's document (whole, or merged with a patch). */
static int doc_update(struct te_deployer *dp, enum te_deploy_doc kind, const char *json,
		      size_t n, bool full)
{
	char err[300], *out;
	size_t len;

	if (full || !dp->doc[kind]) {
		out = malloc(n + 1);
		if (!out)
			return -ENOMEM;
		memcpy(out, json, n);
		len = n;
	} else {
		out = malloc(DOC_MAX);
		if (!out)
			return -ENOMEM;
		if (te_json_merge_patch(dp->doc[kind], dp->doclen[kind], json, n, out, DOC_MAX,
					&len, err, sizeof(err)) < 0) {
			free(out);
			te_warn("agent", "%s desired patch: %s", doc_names[kind], err);
			return -TE_EINVALID;
		}
	}
	free(dp->doc[kind]);
	dp->doc[kind] = out;
	dp->doclen[kind] = len;
	return 0;
}

void te_deploy_cloud(struct te_deployer *dp, enum te_deploy_doc kind, const char *json,
		     size_t n, int64_t version, bool full)
{
	static char text[DOC_MAX];
	struct te_jw w;
	char hash[17];
	uint64_t h;

	if (!full && dp->doc[kind] && version && version <= dp->docver[kind])
		return;  /* stale */
	if (doc_update(dp, kind, json, n, full) < 0) {
		dp->desired_version = version;
		set_status(dp, 400, "the %s desired patch cannot be applied", doc_names[kind]);
		return;
	}
	dp->docver[kind] = version;
	te_jw_init(&w, text, sizeof(text));
	if (kind == TE_DEPLOY_MANIFEST) {
		te_jw_raw(&w, dp->doc[kind], dp->doclen[kind]);
		te_jw_finish(&w);
	} else if (!dp->doc[TE_DEPLOY_AGENT]) {
		return;  /* $edgeHub alone: wait for $edgeAgent */
	} else if (build_azure(dp, &w) < 0) {
		dp->desired_version = dp->docver[TE_DEPLOY_AGENT];
		set_status(dp, 400, "the desired properties are not JSON objects");
		return;
	}
	/* The same documents again (a twin GET or a retained message after a
	 * reconnect): nothing to do. */
	h = fnv1a(0xcbf29ce484222325ull, text, w.len);
	snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)h);
	if (!strcmp(hash, dp->applied_hash))
		return;
	memcpy(dp->applied_hash, hash, sizeof(hash));
	deploy_text(dp, text, w.len, kind == TE_DEPLOY_MANIFEST ? version
								 : dp->docver[TE_DEPLOY_AGENT]);
}

/* --- $edgeAgent reported properties --- */

static void module_json(struct te_jw *w, const struct te_mod *md)
{
	char t[40];

	te_jw_key(w, md->name);
	te_jw_obj_open(w);
	te_jw_kstr(w, "runtimeStatus", te_mod_status(md));
	te_jw_kint(w, "exitCode", !md->has_exited ? 0 : WIFEXITED(md->exit_status)
			   ? WEXITSTATUS(md->exit_status) : 128 + WTERMSIG(md->exit_status));
	te_jw_kstr(w, "statusDescription", md->reason);
	if (md->start_wall_ms) {
		iso_time(md->start_wall_ms, t, sizeof(t));
		te_jw_kstr(w, "lastStartTimeUtc", t);
	}
	if (md->exit_wall_ms) {
		iso_time(md->exit_wall_ms, t, sizeof(t));
		te_jw_kstr(w, "lastExitTimeUtc", t);
	}
	te_jw_kint(w, "restartCount", md->restart_count);
	te_jw_kstr(w, "status", te_module_status_name(md->spec->status));
	te_jw_kstr(w, "restartPolicy", te_restart_policy_name(md->spec->restart));
	te_jw_kstr(w, "type", "native");
	te_jw_key(w, "settings");
	te_jw_obj_open(w);
	te_jw_kstr(w, "image", md->spec->image_url ? md->spec->image_url : md->spec->image);
	te_jw_obj_close(w);
	te_jw_obj_close(w);
}

static void system_modules_json(struct te_jw *w, const struct te_deployer *dp)
{
	static const char *const names[] = { "edgeAgent", "edgeHub" };
	char t[40];

	iso_time(dp->start_wall_ms, t, sizeof(t));
	te_jw_key(w, "systemModules");
	te_jw_obj_open(w);
	for (unsigned i = 0; i < 2; i++) {
		te_jw_key(w, names[i]);
		te_jw_obj_open(w);
		te_jw_kstr(w, "runtimeStatus", "running");
		te_jw_kstr(w, "lastStartTimeUtc", t);
		te_jw_kint(w, "restartCount", 0);
		te_jw_kstr(w, "type", "native");
		te_jw_obj_close(w);
	}
	te_jw_obj_close(w);
}

static void runtime_json(struct te_jw *w)
{
	struct utsname u;

	uname(&u);
	te_jw_key(w, "runtime");
	te_jw_obj_open(w);
	te_jw_kstr(w, "type", "native");
	te_jw_key(w, "platform");
	te_jw_obj_open(w);
	te_jw_kstr(w, "os", "linux");
	te_jw_kstr(w, "architecture", u.machine);
	te_jw_kstr(w, "version", u.release);
	te_jw_obj_close(w);
	te_jw_obj_close(w);
	te_jw_key(w, "version");
	te_jw_obj_open(w);
	te_jw_kstr(w, "version", TE_VERSION);
	te_jw_kstr(w, "commit", TE_GIT_COMMIT);
	te_jw_obj_close(w);
}

/* Modules of the last report that are gone are set to null (the report is
 * a merge patch). */
static void removed_json(struct te_jw *w, const struct te_deployer *dp)
{
	for (size_t off = 0; off < dp->reported_mods_len;) {
		const char *name = dp->reported_mods + off;

		if (!te_sv_find(dp->sv, name)) {
			te_jw_key(w, name);
			te_jw_null(w);
		}
		off += strlen(name) + 1;
	}
}

int te_deploy_reported(struct te_deployer *dp, char **out, size_t *len)
{
	char *buf = malloc(REPORTED_MAX);
	struct te_jw w;

	if (!buf)
		return -ENOMEM;
	te_jw_init(&w, buf, REPORTED_MAX);
	te_jw_obj_open(&w);
	te_jw_kstr(&w, "schemaVersion", "1.1");
	te_jw_kint(&w, "lastDesiredVersion", dp->desired_version);
	te_jw_key(&w, "lastDesiredStatus");
	te_jw_obj_open(&w);
	te_jw_kint(&w, "code", dp->status ? dp->status : 417);
	te_jw_kstr(&w, "description", dp->status ? dp->desc : "no deployment from the cloud yet");
	te_jw_obj_close(&w);
	runtime_json(&w);
	system_modules_json(&w, dp);
	te_jw_key(&w, "modules");
	te_jw_obj_open(&w);
	for (unsigned i = 0; i < dp->sv->nmods; i++)
		if (!dp->sv->mods[i]->remove_after_stop)
			module_json(&w, dp->sv->mods[i]);
	removed_json(&w, dp);
	te_jw_obj_close(&w);
	te_jw_obj_close(&w);
	if (te_jw_finish(&w) < 0) {
		free(buf);
		return -TE_ENOSPACE;
	}
	*out = buf;
	*len = w.len;
	return 0;
}

/* Remember which modules this report named. */
static void remember_modules(struct te_deployer *dp)
{
	size_t n = 0;
	char *p;

	for (unsigned i = 0; i < dp->sv->nmods; i++)
		n += strlen(dp->sv->mods[i]->name) + 1;
	p = malloc(n ? n : 1);
	if (!p)
		return;
	free(dp->reported_mods);
	dp->reported_mods = p;
	dp->reported_mods_len = n;
	for (unsigned i = 0; i < dp->sv->nmods; i++)
		p = stpcpy(p, dp->sv->mods[i]->name) + 1;
}

static void on_tick(struct te_loop *loop, struct te_timer *t)
{
	struct te_deployer *dp = (struct te_deployer *)((char *)t -
							 offsetof(struct te_deployer, tick));
	char *json;
	size_t len;
	uint64_t h;

	te_timer_set(loop, t, TICK_MS);
	if (!dp->report || te_deploy_reported(dp, &json, &len) < 0)
		return;
	h = fnv1a(0xcbf29ce484222325ull, json, len);
	if (h != dp->report_hash) {
		dp->report(dp, json, len);
		dp->report_hash = h;
		remember_modules(dp);
	}
	free(json);
}

void te_deploy_init(struct te_deployer *dp, struct te_loop *loop, const struct te_config *cfg,
		    struct te_supervisor *sv, const char *local_path)
{
	memset(dp, 0, sizeof(*dp));
	dp->loop = loop;
	dp->cfg = cfg;
	dp->sv = sv;
	dp->start_wall_ms = wall_ms();
	snprintf(dp->good_path, sizeof(dp->good_path), "%s/deployment.good.json", cfg->state_dir);
	snprintf(dp->local_path, sizeof(dp->local_path), "%s", local_path ? local_path : "");
	dp->probe.cb = on_probe;
	dp->tick.cb = on_tick;
}

void te_deploy_start(struct te_deployer *dp)
{
	if (dp->cfg->upstream.protocol != TE_UP_NONE)
		te_timer_set(dp->loop, &dp->tick, TICK_MS);
}

void te_deploy_free(struct te_deployer *dp)
{
	if (dp->loop) {
		te_timer_cancel(dp->loop, &dp->probe);
		te_timer_cancel(dp->loop, &dp->tick);
	}
	for (unsigned i = 0; i < 3; i++)
		free(dp->doc[i]);
	free(dp->pending);
	free(dp->waiting);
	free(dp->reported_mods);
	memset(dp, 0, sizeof(*dp));
}
