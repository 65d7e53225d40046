/* tinyedge run: the daemon. One event loop; signals arrive as an fd.
 *
 * SIGTERM/SIGINT stop it cleanly; SIGHUP reloads config and manifest (an
 * invalid reload is logged and changes nothing). The state dir is created
 * 0700 and locked, so two daemons never share one. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/inotify.h>

#include "control/cli.h"
#include "control/commands.h"
#include "control/metrics.h"
#include "control/server.h"
#include "core/err.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/loop.h"
#include "deploy.h"
#include "methods.h"
#include "store/store.h"
#include "supervisor.h"
#include "upstream/upstream.h"
#include "images/images.h"
#include "imagegate.h"
#include "version.h"

#define RELOAD_SETTLE_MS 300 /* a file write usually comes in several events */

struct daemon {
	struct te_loop loop;
	struct te_sig sig_term, sig_int, sig_hup;
	struct te_cli cli;
	struct te_config cfg;
	struct te_manifest *manifest; /* until handed to the supervisor */
	struct te_supervisor sv;
	struct te_agent agent;        /* the $edgeAgent direct methods */
	struct te_router router;
	struct te_store *store;       /* NULL: could not be opened */
	struct te_upstream ups[1 + TE_UP_IDENTITIES_MAX]; /* the device's, then modules' */
	unsigned nups;
	struct te_up_hooks up_hooks;
	struct te_deployer deploy;    /* cloud deployments, $edgeAgent reported */
	struct te_ctl ctl;
	struct te_images images;      /* the image cache (images.h) */
	struct te_imagegate gate;     /* deployments waiting for images */
	struct te_metrics metrics;
	struct te_io inotify;         /* the deployment file's directory */
	struct te_timer reload_timer;
	char manifest_path[PATH_MAX];
	int lock_fd;
	bool stopping;
};

static struct daemon the_daemon;

static int state_dir_open(struct daemon *d)
{
	char path[PATH_MAX + 16];
	int r = te_mkdir_p(d->cfg.state_dir, 0755, 0700);

	if (r < 0) {
		te_error("agent", "state dir %s: %s", d->cfg.state_dir, te_strerror(r));
		return r;
	}
	snprintf(path, sizeof(path), "%s/daemon.lock", d->cfg.state_dir);
	d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (d->lock_fd < 0 || flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		te_error("agent", "%s: %s", path, r == -EWOULDBLOCK ?
			 "another tinyedge daemon uses this state dir" : te_strerror(r));
		return r;
	}
	return 0;
}

static void log_deployment(const struct te_manifest *m)
{
	te_info("agent", "deployment %s: %u module%s, %u route%s",
		m->path ? m->path : "(command line)", m->nmodules,
		m->nmodules == 1 ? "" : "s", m->nroutes, m->nroutes == 1 ? "" : "s");
	for (unsigned i = 0; i < m->nmodules; i++) {
		const struct te_module_spec *ms = &m->modules[i];

		te_info("agent", "module %s: image %s, status %s, restartPolicy %s",
			ms->name, ms->image, te_module_status_name(ms->status),
			te_restart_policy_name(ms->restart));
	}
	for (unsigned i = 0; i < m->nroutes; i++)
		te_info("hub", "route %s (priority %u): %s", m->routes[i].name,
			m->routes[i].priority, m->routes[i].route);
}

/* With --syslog, load problems go where the log lines go. */
static void diag_to_log(struct te_diag *dg, const char *file, unsigned line,
			unsigned col, const char *msg)
{
	char buf[1024];

	te_diag_format(buf, sizeof(buf), file, line, col, msg);
	te_error("config", "%s", buf);
}

/* Load everything into fresh structs; swap only if all of it is valid.
 * The new manifest is left in d->manifest for the caller. */
static int daemon_load(struct daemon *d, bool initial)
{
	static struct te_config cfg;
	struct te_manifest *m = malloc(sizeof(*m));
	struct te_diag diag;
	const char *cpath, *mpath;
	int r;

	if (!m)
		return -ENOMEM;
	te_diag_init_stderr(&diag);
	if (d->cli.syslog)
		diag.emit = diag_to_log;
	r = te_cli_load(&d->cli, &cfg, m, &diag, &cpath, &mpath);
	if (r < 0) {
		te_manifest_free(m);
		free(m);
		if (!initial)
			te_error("agent", "reload failed (%u problem%s above); nothing changed",
				 diag.errors, diag.errors == 1 ? "" : "s");
		return r;
	}
	if (!initial && strcmp(cfg.state_dir, d->cfg.state_dir) != 0) {
		te_warn("agent", "stateDir change to %s takes effect at the next start",
			cfg.state_dir);
		memcpy(cfg.state_dir, d->cfg.state_dir, sizeof(cfg.state_dir));
	}
	d->manifest = m;
	d->cfg = cfg;
	snprintf(d->manifest_path, sizeof(d->manifest_path), "%s", mpath ? mpath : "");
	te_log_set_level(cfg.log_level);
	te_log_set_syslog(cfg.logs.syslog);
	if (!cpath)
		te_info("agent", "no config file; using defaults");
	else
		te_config_warn_mode(&cfg, cpath);
	if (!mpath && m->nmodules == 0)
		te_warn("agent", "no deployment manifest and no --module: nothing to run");
	return 0;
}

static void on_idle(struct te_supervisor *sv)
{
	te_loop_stop(sv->loop);
}

/* First signal: stop modules in reverse startup order, then exit. A second
 * one: kill them all now. */
static void on_stop(struct te_loop *loop, struct te_sig *s,
		    const struct signalfd_siginfo *si)
{
	struct daemon *d = &the_daemon;
	const char *name = si->ssi_signo == SIGINT ? "SIGINT" : "SIGTERM";

	if (d->stopping) {
		te_warn("agent", "%s again: killing every module now", name);
		for (unsigned i = 0; i < d->sv.nmods; i++)
			if (d->sv.have_cgroups)
				te_cgroup_kill(&d->sv.cgroups, &d->sv.mods[i]->cg);
		te_loop_stop(loop);
		return;
	}
	te_info("agent", "%s: stopping modules", name);
	d->stopping = true;
	d->sv.on_idle = on_idle;
	te_sv_shutdown(&d->sv);
}

/* Where a deployment waiting in the image gate came from. */
enum { GATE_BOOT, GATE_LOCAL, GATE_CLOUD };

/* A local deployment (the file, or the boot's) whose images are here. */
static void apply_local(struct daemon *d, struct te_manifest *m)
{
	struct te_diag diag;

	log_deployment(m);
	te_diag_init_stderr(&diag);
	if (te_router_set_routes(&d->router, m, &diag) < 0)
		te_error("hub", "reload: routes unchanged");
	if (te_sv_apply(&d->sv, m) < 0)
		te_error("agent", "reload: out of memory");
	else
		te_gate_applied(&d->gate, m);
}

static void daemon_reload(struct daemon *d, const char *why)
{
	char err[600];
	int tag, r;

	if (d->stopping)
		return;
	te_info("agent", "%s: reloading", why);
	if (daemon_load(d, false) < 0)
		return;
	te_ctl_set_admin(&d->ctl, d->cfg.control.admin_group[0], d->cfg.control.admin_gid);
	if (d->deploy.cloud_active) {
		te_warn("agent", "a cloud deployment runs: the local deployment file is not applied");
		te_manifest_free(d->manifest);
		free(d->manifest);
		d->manifest = NULL;
		return;
	}
	if (te_gate_waiting(&d->gate, &tag) && tag == GATE_CLOUD) {
		te_warn("agent", "a cloud deployment waits for its images: the local deployment file is not applied");
		te_manifest_free(d->manifest);
		free(d->manifest);
		d->manifest = NULL;
		return;
	}
	r = te_gate_prepare(&d->gate, d->manifest, GATE_LOCAL, err, sizeof(err));
	if (r < 0) {
		te_error("agent", "reload: %s; nothing changed", err);
		te_manifest_free(d->manifest);
		free(d->manifest);
	} else if (r == 0) {
		apply_local(d, d->manifest);
	}
	d->manifest = NULL;
}

static void on_reload(struct te_loop *loop, struct te_sig *s,
		      const struct signalfd_siginfo *si)
{
	daemon_reload(&the_daemon, "SIGHUP");
}

static void on_reload_timer(struct te_loop *loop, struct te_timer *t)
{
	daemon_reload(&the_daemon, "deployment file changed");
}

/* Editors replace files (rename) as often as they rewrite them: watch the
 * directory for the file's name. */
static void on_inotify(struct te_loop *loop, struct te_io *io, uint32_t ev)
{
	struct daemon *d = &the_daemon;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const char *base = strrchr(d->manifest_path, '/');
	ssize_t n;

	base = base ? base + 1 : d->manifest_path;
	while ((n = read(io->fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)p;

			if (e->len && strcmp(e->name, base) == 0)
				te_timer_set(loop, &d->reload_timer, RELOAD_SETTLE_MS);
			p += sizeof(*e) + e->len;
		}
	}
}

static void watch_manifest(struct daemon *d)
{
	char dir[PATH_MAX];
	char *slash;
	int fd;

	d->inotify.fd = -1;
	d->reload_timer.cb = on_reload_timer;
	if (!d->manifest_path[0])
		return;
	snprintf(dir, sizeof(dir), "%s", d->manifest_path);
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0 || inotify_add_watch(fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
		te_warn("agent", "cannot watch %s for changes: %s (SIGHUP still reloads)",
			d->manifest_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	d->inotify = (struct te_io){ .fd = fd, .cb = on_inotify };
	te_io_add(&d->loop, &d->inotify, EPOLLIN);
}

static void on_corrupt(struct te_router *rt, struct te_port *p)
{
	te_sv_kill(&the_daemon.sv, p->name, "corrupted its message ring");
}

static void on_method_result(struct te_router *rt, struct te_port *p, uint32_t id,
			     uint32_t status, const void *body, uint32_t len)
{
	if (id & TE_UP_CALL_BIT)
		for (unsigned i = 0; i < the_daemon.nups; i++)
			te_upstream_method_result(&the_daemon.ups[i], id, status, body, len);
	else
		te_ctl_method_result(&the_daemon.ctl, p->name, id, status, body, len);
}

static void on_reported(struct te_router *rt, struct te_port *p, const void *patch,
			uint32_t len)
{
	for (unsigned i = 0; i < the_daemon.nups; i++)
		te_upstream_report(&the_daemon.ups[i], p->name, patch, len);
}

/* --- cloud deployments --- */

/* A cloud deployment whose images are here, as a reload applies. */
static int cloud_apply(struct daemon *d, struct te_manifest *m, char *err, size_t errlen)
{
	struct te_diag quiet = { 0 };

	if (te_router_set_routes(&d->router, m, &quiet) < 0) {
		snprintf(err, errlen, "its routes do not compile");
		te_manifest_free(m);
		free(m);
		return -TE_EINVALID;
	}
	log_deployment(m);
	if (te_sv_apply(&d->sv, m) < 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	te_gate_applied(&d->gate, m);
	for (unsigned i = 0; i < d->nups; i++)
		te_upstream_twin_refresh(&d->ups[i]);
	return 0;
}

/* 0 applied, 1 waiting for images (te_deploy_applied follows), < 0. */
static int deploy_apply(struct te_deployer *dp, struct te_manifest *m, char *err, size_t errlen)
{
	struct daemon *d = dp->ctx;
	int r = te_gate_prepare(&d->gate, m, GATE_CLOUD, err, errlen);

	if (r < 0) {
		te_manifest_free(m);
		free(m);
		return r;
	}
	return r ? 1 : cloud_apply(d, m, err, errlen);
}

static void gate_ready(struct te_imagegate *g, struct te_manifest *m, int tag)
{
	struct daemon *d = g->ctx;
	char err[300];

	if (tag != GATE_CLOUD) {
		apply_local(d, m);
		return;
	}
	if (cloud_apply(d, m, err, sizeof(err)) < 0)
		te_deploy_applied(&d->deploy, -TE_EINVALID, err);
	else
		te_deploy_applied(&d->deploy, 0, "");
}

static void gate_failed(struct te_imagegate *g, int tag, const char *err)
{
	struct daemon *d = g->ctx;

	if (tag == GATE_CLOUD)
		te_deploy_applied(&d->deploy, 1, err);
	else
		te_error("agent", "deployment not applied: %s", err);
}

/* $edgeAgent's reported properties: on its own connection (Azure), or on
 * the device's as module "$edgeAgent" (generic MQTT). */
static void deploy_report(struct te_deployer *dp, const char *patch, size_t n)
{
	struct daemon *d = dp->ctx;

	for (unsigned i = 0; i < d->nups; i++) {
		struct te_upstream *u = &d->ups[i];
		bool own = u->id && !strcmp(u->id->module, TE_AGENT_ID);

		if (own || (!u->id && d->cfg.upstream.protocol == TE_UP_MQTT))
			te_upstream_report(u, TE_AGENT_ID, patch, (uint32_t)n);
	}
}

static void up_deployment(void *ctx, int kind, const char *json, size_t n, int64_t version,
			  bool full)
{
	te_deploy_cloud(&((struct daemon *)ctx)->deploy, (enum te_deploy_doc)kind, json, n,
			version, full);
}

static unsigned up_agent_method(void *ctx, const char *method, const char *payload, size_t n,
				char **out, size_t *outlen)
{
	return te_agent_method(&((struct daemon *)ctx)->agent, method, payload, n, out, outlen);
}

/* At boot: the last good cloud deployment instead of the local file (when
 * an upstream is configured and no --module was given), then the
 * admission check. */
static int deploy_boot(struct daemon *d)
{
	struct te_manifest *m = malloc(sizeof(*m));
	char err[400];

	te_deploy_init(&d->deploy, &d->loop, &d->cfg, &d->sv, d->manifest_path);
	d->deploy.ctx = d;
	d->deploy.apply = deploy_apply;
	d->deploy.report = deploy_report;
	if (m && d->cfg.upstream.protocol != TE_UP_NONE && !d->cli.nmodules &&
	    te_deploy_load_good(&d->deploy, m) == 0) {
		te_manifest_free(d->manifest);
		free(d->manifest);
		d->manifest = m;
	} else {
		free(m);
	}
	if (te_deploy_admit(d->manifest, &d->cfg, err, sizeof(err)) < 0) {
		te_error("agent", "%s: %s", d->manifest->path ? d->manifest->path : "deployment",
			 err);
		return -TE_ELIMIT;
	}
	return 0;
}

static void on_upstream(struct te_router *rt)
{
	for (unsigned i = 0; i < the_daemon.nups; i++)
		te_upstream_kick(&the_daemon.ups[i]);
}

static void on_orphan(struct te_loop *loop, pid_t pid, int status)
{
	te_debug("agent", "reaped orphan %d", (int)pid);
}

static int daemon_signals(struct daemon *d)
{
	int r;

	/* A module that closes its stdin, a client that hangs up: EPIPE from
	 * write, never a dead daemon. Children get every signal reset to
	 * SIG_DFL before exec (te_loop_child_reset_signals). */
	signal(SIGPIPE, SIG_IGN);
	d->sig_term = (struct te_sig){ .signo = SIGTERM, .cb = on_stop };
	d->sig_int = (struct te_sig){ .signo = SIGINT, .cb = on_stop };
	d->sig_hup = (struct te_sig){ .signo = SIGHUP, .cb = on_reload };
	if ((r = te_signal_add(&d->loop, &d->sig_term)) < 0 ||
	    (r = te_signal_add(&d->loop, &d->sig_int)) < 0 ||
	    (r = te_signal_add(&d->loop, &d->sig_hup)) < 0)
		te_error("agent", "signals: %s", te_strerror(r));
	return r;
}

/* The offline store. A store that cannot be opened (corrupt, unwritable,
 * disk full, locked) is reported, and the daemon runs without it: modules
 * still talk, $upstream messages are counted and dropped. */
static void store_open(struct daemon *d)
{
	struct te_router *rt = &d->router;
	struct te_store_opts o;
	char path[PATH_MAX + 8];
	int r;

	te_store_opts_init(&o);
	if (d->cfg.store.path[0])
		snprintf(path, sizeof(path), "%s", d->cfg.store.path);
	else
		snprintf(path, sizeof(path), "%s/store", d->cfg.state_dir);
	o.path = path;
	o.max_bytes = d->cfg.store.max_bytes;
	o.expire_interval_s = 5;
	te_router_store_opts(rt, &o);
	r = te_store_open(&d->store, &o, rt->store_error, sizeof(rt->store_error));
	if (r == 0 && (r = te_router_attach_store(rt, d->store)) < 0) {
		snprintf(rt->store_error, sizeof(rt->store_error), "store %s: %s", path,
			 te_strerror(r));
		te_store_close(d->store);
		d->store = NULL;
	}
	if (r < 0)
		te_error("hub", "%s; running without the store: $upstream messages are dropped",
			 rt->store_error);
}

/* The cloud link: the device's connection, and one per module with its
 * own identity. A configuration it cannot use (a certificate file, a
 * connection string) is reported; the daemon runs on and queues. */
static void uplink_start(struct daemon *d)
{
	const struct te_upstream_config *c = &d->cfg.upstream;
	char err[300];
	int r;

	if (c->protocol == TE_UP_NONE)
		return;
	d->up_hooks = (struct te_up_hooks){ .deployment = up_deployment,
					    .agent_method = up_agent_method, .ctx = d };
	if (!d->store) {
		te_error("upstream", "no store: the uplink is not started");
		return;
	}
	for (unsigned i = 0; i <= c->nids; i++) {
		struct te_upstream *u = &d->ups[d->nups];

		err[0] = '\0';
		r = te_upstream_init(u, &d->loop, &d->cfg, &d->router, i ? &c->ids[i - 1] : NULL,
				     err, sizeof(err));
		if (r < 0) {
			te_error("upstream", "%s; not connecting (messages stay in the store)",
				 err[0] ? err : te_strerror(r));
			te_upstream_free(u);
			continue;
		}
		u->next_call = (uint32_t)d->nups << 24;  /* call ids apart per session */
		u->hooks = &d->up_hooks;
		if (i && c->ids[i - 1].module[0] != '$' &&
		    te_router_identity(&d->router, c->ids[i - 1].module, u->ep) < 0)
			te_error("upstream", "module %s: too many identities", c->ids[i - 1].module);
		d->nups++;
	}
	d->router.on_upstream = on_upstream;
	d->router.on_reported = on_reported;
	if (d->nups && !d->ups[0].id)
		d->router.uplink = &d->ups[0];
}

/* The image cache; without it (a bad trusted key, an unwritable state
 * dir) the daemon runs on and `tinyedge images` says why not. */
static void images_open(struct daemon *d)
{
	char err[512];
	int r = te_images_open(&d->images, &d->loop, &d->cfg, err, sizeof(err));

	if (r < 0)
		te_error("images", "image cache disabled: %s", err);
	te_gate_init(&d->gate, &d->loop, r < 0 ? NULL : &d->images);
}

/* The boot's deployment: at once when its images are cached, else the
 * supervisor starts empty and the deployment follows its pulls. */
static int daemon_boot_modules(struct daemon *d)
{
	struct te_manifest *m = d->manifest, *none = NULL;
	char err[600];
	int r;

	images_open(d);
	d->gate.ready = gate_ready;
	d->gate.failed = gate_failed;
	d->gate.ctx = d;
	d->manifest = NULL;
	r = te_gate_prepare(&d->gate, m, GATE_BOOT, err, sizeof(err));
	if (r != 0) {
		if (r < 0) {
			te_error("agent", "deployment not run: %s", err);
			te_manifest_free(m);
			free(m);
		} else {
			te_info("agent", "the deployment starts once its images are pulled");
		}
		if (!(none = malloc(sizeof(*none))))
			return -ENOMEM;
		te_manifest_init(none);
		m = none;
	}
	r = te_sv_init(&d->sv, &d->loop, &d->cfg, &d->router, m);
	if (r == 0)
		te_gate_applied(&d->gate, m);
	return r;
}

static int daemon_serve(struct daemon *d)
{
	int r = te_loop_init(&d->loop);

	if (r < 0) {
		te_error("agent", "event loop: %s", te_strerror(r));
		return TE_EXIT_FAIL;
	}
	/* Orphans of our modules are reparented to us and reaped by the loop. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		te_warn("agent", "PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	if (daemon_signals(d) < 0) {
		te_loop_close(&d->loop);
		return TE_EXIT_FAIL;
	}
	d->loop.on_orphan = on_orphan;
	r = te_router_init(&d->router, &d->loop);
	if (r == 0) {
		struct te_diag diag;

		te_diag_init_stderr(&diag);
		d->router.on_corrupt = on_corrupt;
		d->router.on_method_result = on_method_result;
		d->router.ttl_config = d->cfg.store.ttl_secs;
		store_open(d);
		r = te_router_set_routes(&d->router, d->manifest, &diag);
	}
	if (r == 0)
		r = daemon_boot_modules(d);
	te_agent_init(&d->agent, &d->sv);
	if (r == 0 && (r = te_ctl_open(&d->ctl, &d->loop, &d->sv, d->cfg.state_dir)) < 0)
		te_error("agent", "control socket in %s: %s", d->cfg.state_dir, te_strerror(r));
	d->ctl.agent = &d->agent;
	d->ctl.images = d->gate.images;
	if (r == 0)
		te_ctl_set_admin(&d->ctl, d->cfg.control.admin_group[0], d->cfg.control.admin_gid);
	if (r < 0) {
		te_gate_free(&d->gate);
		te_images_close(&d->images);
		te_sv_free(&d->sv);
		te_router_free(&d->router);
		te_store_close(d->store);
		te_loop_close(&d->loop);
		return TE_EXIT_FAIL;
	}
	watch_manifest(d);
	uplink_start(d);
	te_metrics_init(&d->metrics, &d->loop, &d->cfg, &(struct te_metrics_src){
		.sv = &d->sv, .ups = d->ups, .nups = &d->nups, .device_id = d->cfg.device_id });
	d->ctl.metrics = &d->metrics.src;
	te_deploy_start(&d->deploy);
	te_info("agent", "ready");
	r = te_loop_run(&d->loop);
	te_metrics_free(&d->metrics);
	te_ctl_close(&d->ctl);
	te_gate_free(&d->gate);
	te_images_close(&d->images);
	te_deploy_free(&d->deploy);
	if (d->inotify.fd >= 0)
		close(d->inotify.fd);
	for (unsigned i = 0; i < d->nups; i++)
		te_upstream_free(&d->ups[i]);
	d->nups = 0;
	d->router.uplink = NULL;
	te_router_persist_spills(&d->router);  /* the modules are stopped */
	te_sv_free(&d->sv);
	te_router_free(&d->router);
	te_store_close(d->store);  /* commits what is pending */
	te_loop_close(&d->loop);
	if (r < 0) {
		te_error("agent", "event loop: %s", te_strerror(r));
		return TE_EXIT_FAIL;
	}
	te_info("agent", "stopped");
	return TE_EXIT_OK;
}

int te_cmd_run(int argc, char **argv)
{
	struct daemon *d = &the_daemon;
	int rc;

	if (te_cli_parse(&d->cli, argc, argv, TE_OPT_FILES | TE_OPT_RUN | TE_OPT_LOG) < 0)
		return TE_EXIT_USAGE;
	if (d->cli.help)
		return te_help(argv[0]);
	if (d->cli.argc)
		return te_cli_usage_error(&d->cli, "unexpected argument '%s'", d->cli.argv[0]);
	d->lock_fd = -1;
	if (d->cli.syslog) {
		te_log_set_syslog(true);
		te_log_set_fd(-1);
	}
	if (daemon_load(d, true) < 0)
		return TE_EXIT_USAGE;
	te_info("agent", "tinyedge %s (%s) starting: device %s, state dir %s, upstream %s",
		TE_VERSION, TE_GIT_COMMIT, d->cfg.device_id, d->cfg.state_dir,
		te_upstream_protocol_name(d->cfg.upstream.protocol));
	if (state_dir_open(d) < 0) {
		te_manifest_free(d->manifest);
		free(d->manifest);
		return TE_EXIT_FAIL;
	}
	if (deploy_boot(d) < 0) {
		te_manifest_free(d->manifest);
		free(d->manifest);
		close(d->lock_fd);
		return TE_EXIT_USAGE;
	}
	log_deployment(d->manifest);
	rc = daemon_serve(d);
	close(d->lock_fd);
	return rc;
}
