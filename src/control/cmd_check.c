/* tinyedge check: validate config, manifest and host; report every problem. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "core/err.h"
#include "store/store.h"
#include "upstream/azure.h"
#include "upstream/tls.h"
#include "core/json.h"
#include "agent/sandbox.h"

#define CHECK_MAX_PROBLEMS 256

struct problem {
	char *file;
	unsigned line, col;
	char *msg;
};

struct collect {
	struct te_diag diag;
	struct problem v[CHECK_MAX_PROBLEMS];
	unsigned n;
};

static void collect_emit(struct te_diag *d, const char *file, unsigned line,
			 unsigned col, const char *msg)
{
	struct collect *c = (struct collect *)d;
	struct problem *p;

	if (c->n == CHECK_MAX_PROBLEMS)
		return;
	p = &c->v[c->n++];
	p->file = file ? strdup(file) : NULL;
	p->line = line;
	p->col = col;
	p->msg = strdup(msg);
}

static void collect_free(struct collect *c)
{
	for (unsigned i = 0; i < c->n; i++) {
		free(c->v[i].file);
		free(c->v[i].msg);
	}
}

static unsigned check_state_dir(const struct te_config *cfg, struct te_diag *d)
{
	struct stat st;

	if (stat(cfg->state_dir, &st) < 0)
		return 0; /* created at start */
	if (!S_ISDIR(st.st_mode)) {
		te_diag_report(d, NULL, 0, 0, "state dir %s is not a directory", cfg->state_dir);
		return 1;
	}
	if (access(cfg->state_dir, W_OK | X_OK) < 0) {
		te_diag_report(d, NULL, 0, 0, "state dir %s: %s", cfg->state_dir, strerror(errno));
		return 1;
	}
	return 0;
}

/* An existing store must open: a corrupt or unwritable one would leave the
 * daemon without its offline queue. One a running daemon holds is fine. */
static unsigned check_store(const struct te_config *cfg, struct te_diag *d)
{
	struct te_store_opts o;
	struct te_store *s;
	char path[PATH_MAX + 8], file[PATH_MAX + 16], err[TE_STORE_ERR_MAX];
	int r;

	if (cfg->store.path[0])
		snprintf(path, sizeof(path), "%s", cfg->store.path);
	else
		snprintf(path, sizeof(path), "%s/store", cfg->state_dir);
	snprintf(file, sizeof(file), "%s/data.mdb", path);
	if (access(file, F_OK) < 0)
		return 0;  /* created at start */
	te_store_opts_init(&o);
	o.path = path;
	o.max_bytes = cfg->store.max_bytes;
	r = te_store_open(&s, &o, err, sizeof(err));
	if (r == -EBUSY)
		return 0;  /* the running daemon's */
	if (r < 0) {
		te_diag_report(d, NULL, 0, 0, "%s", err);
		return 1;
	}
	te_store_close(s);
	return 0;
}

/* The uplink's TLS files must load (trust anchors, client certificate and
 * key), as the daemon will load them. */
static unsigned check_upstream(const struct te_config *cfg, struct te_diag *d)
{
	const struct te_upstream_config *u = &cfg->upstream;
	struct te_azure_cs cs;
	struct te_tls_config tc = {
		.ca_file = u->ca_file[0] ? u->ca_file : NULL,
		.cert_file = u->cert_file[0] ? u->cert_file : NULL,
		.key_file = u->key_file[0] ? u->key_file : NULL,
		.server_name = u->host,
	};
	struct te_tls *t;
	char err[300];

	if (u->protocol == TE_UP_NONE || !u->tls)
		return 0;
	if (u->protocol == TE_UP_AZURE) {
		if (te_azure_cs_parse(u->connection_string, &cs, NULL, 0) < 0)
			return 0;  /* reported by the config's own checks */
		tc.server_name = cs.gateway[0] ? cs.gateway : cs.host;
	}
	if (te_tls_new(&t, &tc, err, sizeof(err)) < 0) {
		te_diag_report(d, NULL, 0, 0, "upstream: %s", err);
		return 1;
	}
	te_tls_free(t);
	return 0;
}

/* Users and groups must exist on this host. */
static unsigned check_ids(const struct te_manifest *m, struct te_diag *d)
{
	unsigned bad = 0;
	char err[200];
	uid_t uid;
	gid_t gid;

	for (unsigned i = 0; i < m->nmodules; i++) {
		const struct te_module_spec *ms = &m->modules[i];

		if (te_sandbox_resolve_ids(ms, &uid, &gid, err, sizeof(err)) < 0) {
			te_diag_report(d, m->path, ms->line, ms->col, "module %s: %s", ms->name, err);
			bad++;
		}
	}
	return bad;
}

static void print_text(const struct te_config *cfg, const struct te_manifest *m,
		       const char *cpath, const char *mpath)
{
	printf("config %s: ok (device %s, upstream %s, state dir %s)\n",
	       cpath ? cpath : "(defaults)", cfg->device_id,
	       te_upstream_protocol_name(cfg->upstream.protocol), cfg->state_dir);
	printf("manifest %s: ok (%u module%s, %u route%s)\n",
	       mpath ? mpath : "(command line)", m->nmodules,
	       m->nmodules == 1 ? "" : "s", m->nroutes, m->nroutes == 1 ? "" : "s");
	for (unsigned i = 0; i < m->nmodules; i++) {
		const struct te_module_spec *ms = &m->modules[i];

		printf("  module %-16s %-8s %-12s %s\n", ms->name,
		       te_module_status_name(ms->status),
		       te_restart_policy_name(ms->restart), ms->image);
	}
	for (unsigned i = 0; i < m->nroutes; i++)
		printf("  route  %-16s %s\n", m->routes[i].name, m->routes[i].route);
}

static void json_modules(struct te_jw *w, const struct te_manifest *m)
{
	te_jw_key(w, "modules");
	te_jw_arr_open(w);
	for (unsigned i = 0; i < m->nmodules; i++) {
		const struct te_module_spec *ms = &m->modules[i];

		te_jw_obj_open(w);
		te_jw_kstr(w, "name", ms->name);
		te_jw_kstr(w, "image", ms->image);
		te_jw_kstr(w, "status", te_module_status_name(ms->status));
		te_jw_kstr(w, "restartPolicy", te_restart_policy_name(ms->restart));
		if (ms->startup_order != TE_STARTUP_ORDER_UNSET)
			te_jw_kint(w, "startupOrder", ms->startup_order);
		te_jw_obj_close(w);
	}
	te_jw_arr_close(w);
	te_jw_key(w, "routes");
	te_jw_arr_open(w);
	for (unsigned i = 0; i < m->nroutes; i++) {
		te_jw_obj_open(w);
		te_jw_kstr(w, "name", m->routes[i].name);
		te_jw_kstr(w, "route", m->routes[i].route);
		te_jw_kint(w, "priority", m->routes[i].priority);
		te_jw_obj_close(w);
	}
	te_jw_arr_close(w);
}

static void json_body(struct te_jw *w, const struct collect *c,
		      const struct te_config *cfg, const struct te_manifest *m,
		      const char *cpath, const char *mpath)
{
	te_jw_obj_open(w);
	te_jw_kbool(w, "ok", c->n == 0);
	te_jw_key(w, "config");
	cpath ? te_jw_str(w, cpath) : te_jw_null(w);
	te_jw_key(w, "manifest");
	mpath ? te_jw_str(w, mpath) : te_jw_null(w);
	te_jw_key(w, "problems");
	te_jw_arr_open(w);
	for (unsigned i = 0; i < c->n; i++) {
		te_jw_obj_open(w);
		te_jw_key(w, "file");
		c->v[i].file ? te_jw_str(w, c->v[i].file) : te_jw_null(w);
		te_jw_kint(w, "line", c->v[i].line);
		te_jw_kint(w, "column", c->v[i].col);
		te_jw_kstr(w, "message", c->v[i].msg);
		te_jw_obj_close(w);
	}
	te_jw_arr_close(w);
	if (c->n == 0) {
		te_jw_kstr(w, "deviceId", cfg->device_id);
		te_jw_kstr(w, "stateDir", cfg->state_dir);
		te_jw_kstr(w, "upstream", te_upstream_protocol_name(cfg->upstream.protocol));
		json_modules(w, m);
	}
	te_jw_obj_close(w);
}

/* One JSON document on stdout; the buffer grows until it fits. */
static int print_json(const struct collect *c, const struct te_config *cfg,
		      const struct te_manifest *m, const char *cpath,
		      const char *mpath)
{
	size_t cap = 16384;
	struct te_jw w;
	char *buf = NULL;
	int r;

	do {
		free(buf);
		cap *= 4;
		buf = malloc(cap);
		if (!buf)
			return -ENOMEM;
		te_jw_init(&w, buf, cap);
		json_body(&w, c, cfg, m, cpath, mpath);
		r = te_jw_finish(&w);
	} while (r == -TE_ENOSPACE && cap < (64u << 20));
	if (r == 0)
		printf("%s\n", buf);
	free(buf);
	return r;
}

int te_cmd_check(int argc, char **argv)
{
	static struct te_config cfg;
	static struct collect c;
	struct te_manifest m;
	struct te_cli cli;
	const char *cpath, *mpath;
	int rc;

	if (te_cli_parse(&cli, argc, argv, TE_OPT_FILES | TE_OPT_RUN | TE_OPT_JSON) < 0)
		return TE_EXIT_USAGE;
	if (cli.help)
		return te_help(argv[0]);
	if (cli.argc)
		return te_cli_usage_error(&cli, "unexpected argument '%s'", cli.argv[0]);
	if (cli.json)
		c.diag.emit = collect_emit;
	else
		te_diag_init_stderr(&c.diag);
	rc = te_cli_load(&cli, &cfg, &m, &c.diag, &cpath, &mpath);
	if (rc == 0) {
		te_manifest_check_host(&m, &c.diag);
		check_ids(&m, &c.diag);
		if (!check_state_dir(&cfg, &c.diag))
			check_store(&cfg, &c.diag);
		check_upstream(&cfg, &c.diag);
	}
	if (cli.json)
		print_json(&c, &cfg, &m, cpath, mpath);
	else if (c.diag.errors == 0)
		print_text(&cfg, &m, cpath, mpath);
	else
		fprintf(stderr, "tinyedge check: %u problem%s found\n", c.diag.errors,
			c.diag.errors == 1 ? "" : "s");
	rc = c.diag.errors ? TE_EXIT_USAGE : TE_EXIT_OK;
	collect_free(&c);
	te_manifest_free(&m);
	return rc;
}
