/* The supervisor: a state x event table per module (see supervisor.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/loop.h"
#include "core/log.h"
#include "image_mount.h"
#include "supervisor.h"

enum ev { EV_START, EV_STOP, EV_EXEC_OK, EV_EXEC_FAIL, EV_EXIT, EV_TIMER,
	  EV_WATCHDOG, EV_N };

static void sv_kick(struct te_supervisor *sv);
static void sv_shutdown_step(struct te_supervisor *sv);
static void mod_event(struct te_mod *md, enum ev e);

static const char *const state_names[TE_MOD_NSTATES] = {
	"stopped", "running", "running", "unhealthy", "running", "backoff",
	"failed",
};

const char *te_mod_status(const struct te_mod *md)
{
	return state_names[md->state];
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void set_state(struct te_mod *md, enum te_mod_state s)
{
	md->state = s;
}

/* --- environment --- */

static int env_put(char **env, unsigned *n, const char *k, const char *v)
{
	size_t len = strlen(k) + strlen(v) + 2;

	env[*n] = malloc(len);
	if (!env[*n])
		return -ENOMEM;
	snprintf(env[*n], len, "%s=%s", k, v);
	(*n)++;
	return 0;
}

static void env_free(char **env)
{
	for (unsigned i = 0; env && env[i]; i++)
		free(env[i]);
	free(env);
}

/* IOTEDGE_* names kept from Azure IoT Edge so ported code finds them. */
static char **env_build(const struct te_supervisor *sv,
			const struct te_module_spec *s)
{
	char **env = calloc(s->nenv + 8, sizeof(*env));
	unsigned n = 0;
	bool has_path = false;
	int r = 0;

	if (!env)
		return NULL;
	for (unsigned i = 0; i < s->nenv && r == 0; i++) {
		has_path |= strncmp(s->env[i], "PATH=", 5) == 0;
		env[n] = strdup(s->env[i]);
		r = env[n++] ? 0 : -ENOMEM;
	}
	if (!has_path && !r)
		r = env_put(env, &n, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	if (!r)
		r = env_put(env, &n, "IOTEDGE_MODULEID", s->name);
	if (!r)
		r = env_put(env, &n, "IOTEDGE_DEVICEID", sv->cfg->device_id);
	if (!r)
		r = env_put(env, &n, "IOTEDGE_GATEWAYHOSTNAME", sv->cfg->hostname);
	if (!r)
		r = env_put(env, &n, "IOTEDGE_IOTHUBHOSTNAME",
			    sv->cfg->upstream.host[0] ? sv->cfg->upstream.host : sv->cfg->hostname);
	if (!r && sv->router && s->io == TE_IO_RING)
		r = env_put(env, &n, "TINYEDGE_IPC_FD", "3"); /* + 4, 5: eventfds */
	if (!r && s->watchdog_secs)
		r = env_put(env, &n, "TINYEDGE_NOTIFY_FD",
			    sv->router && s->io == TE_IO_RING ? "6" : "3");
	if (r) {
		env_free(env);
		return NULL;
	}
	return env;
}

/* --- fds of a running module --- */

static void io_close(struct te_mod *md, struct te_io *io)
{
	if (io->fd < 0)
		return;
	te_io_del(md->sv->loop, io);
	close(io->fd);
	io->fd = -1;
}

/* Read what the module wrote; EOF closes the pipe. */
static void drain_output(struct te_mod *md, struct te_io *io, int stream)
{
	char buf[4096];
	ssize_t n;

	while (io->fd >= 0) {
		n = read(io->fd, buf, sizeof(buf));
		if (n > 0) {
			te_logring_feed(&md->log, stream, buf, (size_t)n, wall_ms());
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		io_close(md, io);
	}
}

static struct te_mod *mod_of_io(struct te_io *io, size_t off)
{
	return (struct te_mod *)((char *)io - off);
}

static void on_stdout(struct te_loop *l, struct te_io *io, uint32_t ev)
{
	drain_output(mod_of_io(io, offsetof(struct te_mod, out_io)), io, 1);
}

static void on_stderr(struct te_loop *l, struct te_io *io, uint32_t ev)
{
	drain_output(mod_of_io(io, offsetof(struct te_mod, err_io)), io, 2);
}

static void arm_watchdog(struct te_mod *md)
{
	if (md->spec->watchdog_secs)
		te_timer_set(md->sv->loop, &md->watchdog,
			     (uint64_t)md->spec->watchdog_secs * 1000);
}

/* A heartbeat: anything written to the notify fd. */
static void on_notify(struct te_loop *l, struct te_io *io, uint32_t ev)
{
	struct te_mod *md = mod_of_io(io, offsetof(struct te_mod, notify_io));
	char buf[256];
	ssize_t n = read(io->fd, buf, sizeof(buf));

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		io_close(md, io);
		return;
	}
	if (n < 0)
		return;
	if (md->state == TE_MOD_UNHEALTHY) {
		te_info("agent", "module %s: heartbeat again, healthy", md->name);
		set_state(md, TE_MOD_RUNNING);
	}
	if (md->state == TE_MOD_RUNNING)
		arm_watchdog(md);
}

static void on_sync(struct te_loop *l, struct te_io *io, uint32_t ev)
{
	struct te_mod *md = mod_of_io(io, offsetof(struct te_mod, sync_io));
	struct te_spawn_fail f;
	int r, fd;

	while ((r = te_sandbox_result_fd(io->fd, &f, &fd)) == 2) {
		if (fd < 0)
			te_warn("agent", "module %s: seccomp: no user "
				"notification in this kernel; denied calls get "
				"EPERM uncounted", md->name);
		else
			te_seccomp_mon_start(l, &md->sc, fd);
	}
	if (r == -EAGAIN)
		return;
	io_close(md, io);
	md->sp.sync_fd = -1;
	if (r == 1) {
		snprintf(md->reason, sizeof(md->reason), "cannot %s%s%s: %s", f.step,
			 f.detail[0] ? " " : "", f.detail, strerror(f.err));
		te_error("agent", "module %s: %s", md->name, md->reason);
		mod_event(md, EV_EXEC_FAIL);
	} else {
		md->exec_ns = te_now_ns() - md->spawn_mono_ns;
		mod_event(md, EV_EXEC_OK);
	}
}

static void watch_fd(struct te_mod *md, struct te_io *io, int fd,
		     void (*cb)(struct te_loop *, struct te_io *, uint32_t))
{
	io->fd = fd;
	io->cb = cb;
	if (fd >= 0 && te_io_add(md->sv->loop, io, EPOLLIN) < 0) {
		close(fd);
		io->fd = -1;
	}
}

/* --- spawning --- */

static void on_exit_cb(struct te_loop *l, struct te_child *c, int status);

static int mod_spawn_prepare(struct te_mod *md)
{
	struct te_supervisor *sv = md->sv;
	char err[256];
	int r;

	if (!md->env && !(md->env = env_build(sv, md->spec))) {
		snprintf(md->reason, sizeof(md->reason), "out of memory");
		return -ENOMEM;
	}
	if (!sv->have_cgroups)
		return 0;
	r = te_cgroup_create(&sv->cgroups, &md->cg, md->name, &md->spec->limits,
			     err, sizeof(err));
	if (r < 0)
		snprintf(md->reason, sizeof(md->reason), "cgroup: %s", err);
	return r;
}

/* A directory or squashfs image: the sandbox gets a spec whose rootfs is
 * the image's tree (image_mount.h); the image is held until the exit. */
static int mod_spawn_image(struct te_mod *md, struct te_spawn_ctx *ctx,
			   char *err, size_t cap)
{
	struct te_image_run *run = malloc(sizeof(*run)); /* not on the stack */
	int r;

	if (!run) {
		snprintf(err, cap, "out of memory");
		return -ENOMEM;
	}
	r = te_image_acquire(md, md->spec, run, err, cap);
	if (r == 0) {
		ctx->spec = &run->spec;
		r = te_sandbox_spawn(ctx, &md->sp, err, cap);
		ctx->spec = md->spec;
		if (r < 0)
			te_image_release(md);
	}
	free(run);
	return r;
}

static int mod_spawn(struct te_mod *md)
{
	struct te_spawn_ctx ctx = {
		.spec = md->spec,
		.cgroup = md->sv->have_cgroups ? &md->cg : NULL,
		.want_notify = md->spec->watchdog_secs > 0,
		.stdin_pipe = md->port && md->spec->io == TE_IO_STDIO,
	};
	int fds[3];
	char err[256];
	int r;

	md->spawn_mono_ns = te_now_ns();
	r = mod_spawn_prepare(md);
	ctx.env = (const char *const *)md->env; /* built by prepare */
	if (r == 0 && md->port && md->spec->io == TE_IO_RING) {
		r = te_port_open(md->port, fds);
		if (r < 0)
			snprintf(md->reason, sizeof(md->reason), "rings: %s", te_strerror(r));
		ctx.keep_fds = fds;
		ctx.nkeep = 3;
	}
	if (r == 0 && md->spec->image_kind != TE_IMAGE_EXEC)
		r = mod_spawn_image(md, &ctx, err, sizeof(err));
	else if (r == 0)
		r = te_sandbox_spawn(&ctx, &md->sp, err, sizeof(err));
	else
		err[0] = '\0';
	if (md->sv->have_cgroups)
		te_cgroup_close_fds(&md->cg);
	if (r < 0) {
		if (err[0])
			snprintf(md->reason, sizeof(md->reason), "%s", err);
		te_error("agent", "module %s: %s", md->name, md->reason);
		if (md->port)
			te_port_stopped(md->port);
		if (md->sv->have_cgroups)
			te_cgroup_destroy(&md->sv->cgroups, &md->cg);
		return r;
	}
	md->pid = md->sp.pid;
	md->child = (struct te_child){ .pid = md->pid, .cb = on_exit_cb };
	te_child_add(md->sv->loop, &md->child);
	watch_fd(md, &md->sync_io, md->sp.sync_fd, on_sync);
	if (ctx.stdin_pipe) {
		/* Its stdin and stdout carry messages (JSON lines), not logs. */
		r = te_port_open_stdio(md->port, md->sp.in_fd, md->sp.out_fd);
		if (r < 0)
			te_error("agent", "module %s: stdio: %s", md->name, te_strerror(r));
		md->sp.in_fd = md->sp.out_fd = -1;
	}
	watch_fd(md, &md->out_io, md->sp.out_fd, on_stdout);
	watch_fd(md, &md->err_io, md->sp.err_fd, on_stderr);
	watch_fd(md, &md->notify_io, md->sp.notify_fd, on_notify);
	if (md->sp.in_fd >= 0)
		close(md->sp.in_fd);
	md->unhealthy_kill = false; /* the last exit stays reported while running */
	md->start_mono_ms = te_now_ms();
	md->start_wall_ms = wall_ms();
	return 0;
}

/* --- actions --- */

static void act_spawn(struct te_mod *md)
{
	te_timer_cancel(md->sv->loop, &md->timer);
	md->pending_start = false;
	md->reason[0] = '\0';
	if (mod_spawn(md) < 0) {
		set_state(md, TE_MOD_FAILED);
		sv_kick(md->sv);
		return;
	}
	set_state(md, TE_MOD_STARTING);
}

static void act_exec_ok(struct te_mod *md)
{
	te_info("agent", "module %s: running (pid %d, started in %.3f ms)",
		md->name, (int)md->pid, (double)md->exec_ns / 1e6);
	if (md->exit_mono_ns)
		te_debug("agent", "module %s: running again %.3f ms after its exit",
			 md->name, (double)(te_now_ns() - md->exit_mono_ns) / 1e6);
	set_state(md, TE_MOD_RUNNING);
	if (md->port)
		te_port_running(md->port);
	arm_watchdog(md);
	sv_kick(md->sv);
}

static void act_exec_fail(struct te_mod *md)
{
	/* Nothing yet: the child exits 127 next, and that exit decides. */
}

static void kill_module(struct te_mod *md, int sig)
{
	if (sig == SIGKILL && md->sv->have_cgroups)
		te_cgroup_kill(&md->sv->cgroups, &md->cg);
	else if (md->pid > 0)
		kill(md->pid, sig);
}

static void act_term(struct te_mod *md)
{
	te_timer_cancel(md->sv->loop, &md->watchdog);
	kill_module(md, md->state == TE_MOD_STARTING ? SIGKILL : SIGTERM);
	set_state(md, TE_MOD_STOPPING);
	te_timer_set(md->sv->loop, &md->timer,
		     (uint64_t)md->spec->stop_timeout_secs * 1000);
}

static void act_kill(struct te_mod *md)
{
	te_warn("agent", "module %s: did not stop within %u s, killing it",
		md->name, md->spec->stop_timeout_secs);
	kill_module(md, SIGKILL);
}

static void act_unhealthy(struct te_mod *md)
{
	enum te_restart_policy p = md->spec->restart;

	te_warn("agent", "module %s: no heartbeat for %u s: unhealthy", md->name,
		md->spec->watchdog_secs);
	set_state(md, TE_MOD_UNHEALTHY);
	snprintf(md->reason, sizeof(md->reason), "no heartbeat for %u s",
		 md->spec->watchdog_secs);
	if (p == TE_RESTART_ON_UNHEALTHY || p == TE_RESTART_ALWAYS) {
		md->unhealthy_kill = true;
		act_term(md);
	}
}

static void act_stopped(struct te_mod *md)
{
	te_timer_cancel(md->sv->loop, &md->timer);
	set_state(md, TE_MOD_STOPPED);
}

static void act_nop(struct te_mod *md)
{
}

static void act_exit(struct te_mod *md);

/* The table: what each event does in each state. */
static void (*const table[TE_MOD_NSTATES][EV_N])(struct te_mod *) = {
	/*                 START      STOP         EXEC_OK      EXEC_FAIL      EXIT      TIMER      WATCHDOG */
	[TE_MOD_STOPPED]   = { act_spawn, act_nop,     act_nop,     act_nop,       act_nop,  act_nop,   act_nop },
	[TE_MOD_STARTING]  = { act_nop,   act_term,    act_exec_ok, act_exec_fail, act_exit, act_nop,   act_nop },
	[TE_MOD_RUNNING]   = { act_nop,   act_term,    act_nop,     act_nop,       act_exit, act_nop,   act_unhealthy },
	[TE_MOD_UNHEALTHY] = { act_nop,   act_term,    act_nop,     act_nop,       act_exit, act_nop,   act_nop },
	[TE_MOD_STOPPING]  = { act_nop,   act_nop,     act_nop,     act_exec_fail, act_exit, act_kill,  act_nop },
	[TE_MOD_BACKOFF]   = { act_spawn, act_stopped, act_nop,     act_nop,       act_nop,  act_spawn, act_nop },
	[TE_MOD_FAILED]    = { act_spawn, act_stopped, act_nop,     act_nop,       act_nop,  act_nop,   act_nop },
};

static void mod_event(struct te_mod *md, enum ev e)
{
	table[md->state][e](md);
}

static void on_timer(struct te_loop *l, struct te_timer *t)
{
	mod_event((struct te_mod *)((char *)t - offsetof(struct te_mod, timer)),
		  EV_TIMER);
}

static void on_watchdog(struct te_loop *l, struct te_timer *t)
{
	mod_event((struct te_mod *)((char *)t - offsetof(struct te_mod, watchdog)),
		  EV_WATCHDOG);
}


/* --- exits and restarts --- */

static void describe_status(int status, char *buf, size_t cap)
{
	if (WIFEXITED(status))
		snprintf(buf, cap, "exited %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, cap, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, cap, "status 0x%x", status);
}

/* Backoff: initialMs doubling to maxMs, +-20 % jitter; starts over after a
 * run of resetAfterSecs. */
static uint64_t backoff_delay(struct te_mod *md)
{
	const struct te_config *c = md->sv->cfg;
	uint64_t ran = te_now_ms() - md->start_mono_ms, d = c->backoff.initial_ms;
	uint32_t rnd = 0;

	if (ran >= (uint64_t)c->backoff.reset_after_secs * 1000)
		md->backoff_step = 0;
	for (unsigned i = 0; i < md->backoff_step && d < c->backoff.max_ms; i++)
		d *= 2;
	if (d > c->backoff.max_ms)
		d = c->backoff.max_ms;
	if (md->backoff_step < 64)
		md->backoff_step++;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)te_now_ns();
	return d * 8 / 10 + (d * 4 / 10) * (rnd % 1001) / 1000;
}

static bool should_restart(const struct te_mod *md, bool failure)
{
	switch (md->spec->restart) {
	case TE_RESTART_ALWAYS: return true;
	case TE_RESTART_ON_UNHEALTHY: return failure || md->unhealthy_kill;
	case TE_RESTART_ON_FAILURE: return failure;
	default: return false;
	}
}

/* Everything a dead module leaves behind: output, grandchildren, cgroup. */
static void mod_cleanup(struct te_mod *md, const char *status_text, bool failure)
{
	struct te_supervisor *sv = md->sv;
	bool oom = false;
	char path[PATH_MAX];

	te_timer_cancel(sv->loop, &md->watchdog);
	te_timer_cancel(sv->loop, &md->timer);
	drain_output(md, &md->out_io, 1);
	drain_output(md, &md->err_io, 2);
	io_close(md, &md->out_io);
	io_close(md, &md->err_io);
	io_close(md, &md->notify_io);
	io_close(md, &md->sync_io);
	te_seccomp_mon_stop(sv->loop, &md->sc);
	te_logring_flush(&md->log, wall_ms());
	te_image_release(md);
	if (md->port)
		te_port_stopped(md->port);
	if (sv->have_cgroups) {
		uint64_t usec;

		oom = te_cgroup_oom_killed(&sv->cgroups, &md->cg);
		if (te_cgroup_cpu_usec(&sv->cgroups, &md->cg, &usec) == 0)
			md->cpu_usec_past += usec;
		te_cgroup_destroy(&sv->cgroups, &md->cg);
	}
	if (oom)
		snprintf(md->reason, sizeof(md->reason), "out of memory (limit %lld bytes)",
			 (long long)md->spec->limits.memory_bytes);
	else if (failure && !md->reason[0])
		snprintf(md->reason, sizeof(md->reason), "%s", status_text);
	if (failure && te_logring_crash_record(&md->log, sv->crash_dir, md->name,
					      md->exit_status, oom ? md->reason : NULL,
					      wall_ms(), path, sizeof(path)) == 0)
		te_info("agent", "module %s: crash record %s", md->name, path);
}

static void mod_destroy(struct te_mod *md);
static void sv_gc(struct te_supervisor *sv);

static void act_exit(struct te_mod *md)
{
	char status[96];
	bool failure = !(WIFEXITED(md->exit_status) && WEXITSTATUS(md->exit_status) == 0);
	uint64_t delay;

	describe_status(md->exit_status, status, sizeof(status));
	if (WIFSIGNALED(md->exit_status) && WTERMSIG(md->exit_status) == SIGSYS &&
	    md->spec->seccomp_kill && !md->spec->seccomp_unconfined) {
		snprintf(status, sizeof(status), "killed by seccomp (SIGSYS)");
		te_seccomp_mon_count(&md->sc, -1);
	}
	mod_cleanup(md, status, failure);
	md->pid = 0;
	if (md->remove_after_stop) {
		te_info("agent", "module %s: %s; removed", md->name, status);
		mod_destroy(md);
		return;
	}
	if (md->sv->shutting_down || !md->want_running) {
		te_info("agent", "module %s: %s; stopped", md->name, status);
		set_state(md, TE_MOD_STOPPED);
		sv_shutdown_step(md->sv);
		return;
	}
	if (md->restart_after_stop) {
		md->restart_after_stop = false;
		md->restart_count++;
		te_info("agent", "module %s: %s; restarting", md->name, status);
		act_spawn(md);
		return;
	}
	if (!should_restart(md, failure)) {
		te_info("agent", "module %s: %s; restartPolicy %s: not restarting",
			md->name, status, te_restart_policy_name(md->spec->restart));
		set_state(md, failure ? TE_MOD_FAILED : TE_MOD_STOPPED);
		return;
	}
	delay = backoff_delay(md);
	te_warn("agent", "module %s: %s; restarting in %llu ms", md->name,
		md->reason[0] ? md->reason : status, (unsigned long long)delay);
	set_state(md, TE_MOD_BACKOFF);
	md->restart_count++;
	te_timer_set(md->sv->loop, &md->timer, delay);
}

static void on_exit_cb(struct te_loop *l, struct te_child *c, int status)
{
	struct te_mod *md = (struct te_mod *)((char *)c - offsetof(struct te_mod, child));
	struct te_supervisor *sv = md->sv; /* md may be gone after the event */

	md->exit_status = status;
	md->has_exited = true;
	md->exit_mono_ns = te_now_ns();
	md->exit_wall_ms = wall_ms();
	mod_event(md, EV_EXIT);
	sv_kick(sv); /* a group waiting on this module may start now */
}

/* --- modules --- */

#define PERSIST_BYTES (1u << 20) /* per file */
#define PERSIST_FILES 3          /* NAME.log, NAME.log.1, NAME.log.2 */

/* logs.persist: also <state-dir>/logs/NAME.log, rotated. */
static void mod_persist_logs(struct te_mod *md)
{
	char path[PATH_MAX];
	int r;

	snprintf(path, sizeof(path), "%s/logs", md->sv->cfg->state_dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		te_warn("agent", "module %s: %s: %s", md->name, path, strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/logs/%s.log", md->sv->cfg->state_dir, md->name);
	r = te_logring_persist(&md->log, path, PERSIST_BYTES, PERSIST_FILES);
	if (r < 0)
		te_warn("agent", "module %s: %s: %s", md->name, path, te_strerror(r));
}

/* The deployment's desired properties into the module's twin; a cloud
 * deployment's modules keep theirs (they come from their own twins). */
static void mod_desired(struct te_mod *md, const struct te_module_spec *spec)
{
	int r;

	if (!md->port)
		return;
	r = md->sv->cloud_twins && !spec->desired_json ? te_port_twin_keep(md->port)
							: te_port_set_desired(md->port, spec->desired_json);
	if (r < 0)
		te_warn("agent", "module %s: invalid desired properties: ignored", md->name);
}

static struct te_mod *mod_new(struct te_supervisor *sv,
			      const struct te_module_spec *spec)
{
	struct te_mod *md = calloc(1, sizeof(*md));

	if (!md)
		return NULL;
	if (te_logring_init(&md->log, sv->cfg->logs.ring_bytes) < 0) {
		free(md);
		return NULL;
	}
	md->sv = sv;
	md->spec = spec;
	snprintf(md->name, sizeof(md->name), "%s", spec->name);
	if (sv->router &&
	    !(md->port = te_router_port(sv->router, spec->name, spec->ring_bytes))) {
		te_logring_free(&md->log);
		free(md);
		return NULL;
	}
	mod_desired(md, spec);
	if (sv->cfg->logs.persist)
		mod_persist_logs(md);
	md->state = TE_MOD_STOPPED;
	md->out_io.fd = md->err_io.fd = md->notify_io.fd = md->sync_io.fd = -1;
	md->sp = (struct te_spawn){ .sync_fd = -1, .in_fd = -1, .out_fd = -1,
				    .err_fd = -1, .notify_fd = -1 };
	md->timer.cb = on_timer;
	md->watchdog.cb = on_watchdog;
	te_seccomp_mon_init(&md->sc, md->name);
	for (unsigned i = 0; i < TE_CG_NCTRL; i++)
		md->cg.procs_fd[i] = -1;
	return md;
}

static void mod_destroy(struct te_mod *md)
{
	struct te_supervisor *sv = md->sv;
	unsigned i;

	for (i = 0; i < sv->nmods && sv->mods[i] != md; i++)
		;
	if (i < sv->nmods) {
		memmove(&sv->mods[i], &sv->mods[i + 1], (sv->nmods - i - 1) * sizeof(*sv->mods));
		sv->nmods--;
	}
	te_timer_cancel(sv->loop, &md->timer);
	te_timer_cancel(sv->loop, &md->watchdog);
	te_seccomp_mon_stop(sv->loop, &md->sc);
	te_image_release(md);
	te_logring_free(&md->log);
	if (md->port)
		te_port_free(md->port);
	env_free(md->env);
	free(md);
	sv_gc(sv);
	sv_shutdown_step(sv);
}

struct te_mod *te_sv_find(struct te_supervisor *sv, const char *name)
{
	for (unsigned i = 0; i < sv->nmods; i++)
		if (strcmp(sv->mods[i]->name, name) == 0)
			return sv->mods[i];
	return NULL;
}

/* Start the next startupOrder group once no module is still starting. */
static void sv_kick(struct te_supervisor *sv)
{
	uint32_t order = UINT32_MAX;
	bool any = false;

	if (sv->shutting_down)
		return;
	for (unsigned i = 0; i < sv->nmods; i++) {
		struct te_mod *md = sv->mods[i];

		if (md->state == TE_MOD_STARTING)
			return;
		if (md->pending_start && md->spec->startup_order <= order) {
			order = md->spec->startup_order;
			any = true;
		}
	}
	for (unsigned i = 0; any && i < sv->nmods; i++)
		if (sv->mods[i]->pending_start &&
		    sv->mods[i]->spec->startup_order == order)
			mod_event(sv->mods[i], EV_START);
}

static bool is_active(const struct te_mod *md)
{
	return md->state == TE_MOD_STARTING || md->state == TE_MOD_RUNNING ||
	       md->state == TE_MOD_UNHEALTHY || md->state == TE_MOD_STOPPING;
}

/* --- shutdown: reverse startup order --- */

static void sv_shutdown_step(struct te_supervisor *sv)
{
	uint32_t order = 0;
	bool any = false;

	if (!sv->shutting_down)
		return;
	for (unsigned i = 0; i < sv->nmods; i++) {
		const struct te_mod *md = sv->mods[i];

		if (md->state == TE_MOD_STOPPING)
			return; /* one group at a time */
		if (is_active(md) && md->spec->startup_order >= order) {
			order = md->spec->startup_order;
			any = true;
		}
	}
	if (!any) {
		if (sv->on_idle) {
			void (*idle)(struct te_supervisor *) = sv->on_idle;

			sv->on_idle = NULL;
			idle(sv);
		}
		return;
	}
	for (unsigned i = 0; i < sv->nmods; i++) {
		struct te_mod *md = sv->mods[i];

		if (is_active(md) && md->spec->startup_order == order) {
			md->want_running = false;
			mod_event(md, EV_STOP);
		}
	}
}

void te_sv_shutdown(struct te_supervisor *sv)
{
	sv->shutting_down = true;
	for (unsigned i = 0; i < sv->nmods; i++) {
		struct te_mod *md = sv->mods[i];

		md->pending_start = false;
		if (md->state == TE_MOD_BACKOFF || md->state == TE_MOD_FAILED)
			act_stopped(md);
	}
	sv_shutdown_step(sv);
}

/* --- control --- */

int te_sv_start(struct te_supervisor *sv, const char *name)
{
	struct te_mod *md = te_sv_find(sv, name);

	if (!md)
		return -ENOENT;
	md->want_running = true;
	md->backoff_step = 0;
	if (md->state == TE_MOD_STOPPING)
		md->restart_after_stop = true;
	mod_event(md, EV_START);
	return 0;
}

int te_sv_stop(struct te_supervisor *sv, const char *name)
{
	struct te_mod *md = te_sv_find(sv, name);

	if (!md)
		return -ENOENT;
	md->want_running = false;
	md->pending_start = false;
	md->restart_after_stop = false;
	mod_event(md, EV_STOP);
	return 0;
}

int te_sv_restart(struct te_supervisor *sv, const char *name)
{
	struct te_mod *md = te_sv_find(sv, name);

	if (!md)
		return -ENOENT;
	md->want_running = true;
	md->backoff_step = 0;
	if (is_active(md) && md->state != TE_MOD_STOPPING) {
		md->restart_after_stop = true;
		mod_event(md, EV_STOP);
	} else if (md->state == TE_MOD_STOPPING) {
		md->restart_after_stop = true;
	} else {
		mod_event(md, EV_START);
	}
	return 0;
}

/* --- reload by difference --- */

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool strv_eq(const char **a, unsigned na, const char **b, unsigned nb)
{
	if (na != nb)
		return false;
	for (unsigned i = 0; i < na; i++)
		if (!str_eq(a[i], b[i]))
			return false;
	return true;
}

static bool mounts_eq(const struct te_module_spec *a, const struct te_module_spec *b)
{
	if (a->nmounts != b->nmounts || a->ndevices != b->ndevices)
		return false;
	for (unsigned i = 0; i < a->nmounts; i++)
		if (!str_eq(a->mounts[i].source, b->mounts[i].source) ||
		    !str_eq(a->mounts[i].target, b->mounts[i].target) ||
		    a->mounts[i].read_only != b->mounts[i].read_only)
			return false;
	for (unsigned i = 0; i < a->ndevices; i++)
		if (!str_eq(a->devices[i].path, b->devices[i].path) ||
		    !str_eq(a->devices[i].target, b->devices[i].target) ||
		    !str_eq(a->devices[i].permissions, b->devices[i].permissions))
			return false;
	return true;
}

/* Equal = the running instance can stay: status, restartPolicy,
 * startupOrder and twin contents may differ. */
/* A URL names its content (sha256): equal URLs are the same image, whether
 * or not a spec has been resolved to the cached file yet. */
static bool image_eq(const struct te_module_spec *a, const struct te_module_spec *b)
{
	if (a->image_url || b->image_url)
		return str_eq(a->image_url, b->image_url);
	return str_eq(a->image, b->image) && a->image_kind == b->image_kind;
}

bool te_spec_equal(const struct te_module_spec *a, const struct te_module_spec *b)
{
	return image_eq(a, b) && str_eq(a->workdir, b->workdir) &&
	       a->writable == b->writable &&
	       a->writable_bytes == b->writable_bytes &&
	       str_eq(a->user, b->user) && str_eq(a->group, b->group) &&
	       str_eq(a->rootfs, b->rootfs) &&
	       strv_eq(a->env, a->nenv, b->env, b->nenv) &&
	       strv_eq(a->args, a->nargs, b->args, b->nargs) &&
	       a->namespaces == b->namespaces && a->capabilities == b->capabilities &&
	       !memcmp(&a->limits, &b->limits, sizeof(a->limits)) &&
	       a->stop_timeout_secs == b->stop_timeout_secs &&
	       a->watchdog_secs == b->watchdog_secs && a->io == b->io &&
	       a->ring_bytes == b->ring_bytes && mounts_eq(a, b) &&
	       a->seccomp_unconfined == b->seccomp_unconfined &&
	       a->seccomp_kill == b->seccomp_kill &&
	       strv_eq(a->seccomp_extra, a->nseccomp_extra, b->seccomp_extra,
		       b->nseccomp_extra);
}

static bool spec_in(const struct te_manifest *m, const struct te_module_spec *s)
{
	return m->nmodules && s >= m->modules && s < m->modules + m->nmodules;
}

/* Free retired manifests that no module points into any more. */
static void sv_gc(struct te_supervisor *sv)
{
	for (unsigned r = 0; r < sv->nretired;) {
		bool used = false;

		for (unsigned i = 0; i < sv->nmods && !used; i++)
			used = spec_in(sv->retired[r], sv->mods[i]->spec);
		if (used) {
			r++;
			continue;
		}
		te_manifest_free(sv->retired[r]);
		free(sv->retired[r]);
		sv->retired[r] = sv->retired[--sv->nretired];
	}
}

static void apply_existing(struct te_mod *md, const struct te_module_spec *ns)
{
	bool changed = !te_spec_equal(md->spec, ns);
	bool want = ns->status == TE_STATUS_RUNNING;

	md->spec = ns;
	/* A desired-properties change alone reaches the module as a new twin,
	 * without a restart. */
	mod_desired(md, ns);
	if (changed) {
		env_free(md->env);
		md->env = NULL;
		if (md->port)
			md->port->ring_bytes = ns->ring_bytes;
	}
	if (changed && is_active(md)) {
		te_info("agent", "module %s: changed, restarting", md->name);
		md->want_running = want;
		md->restart_after_stop = want;
		mod_event(md, EV_STOP);
		return;
	}
	if (want && (!md->want_running || changed) && !is_active(md))
		md->pending_start = true;
	if (!want && md->want_running)
		mod_event(md, EV_STOP);
	md->want_running = want;
}

static void apply_removed(struct te_mod *md)
{
	te_info("agent", "module %s: removed from the deployment", md->name);
	md->want_running = false;
	md->remove_after_stop = true;
	md->pending_start = false;
	if (is_active(md))
		mod_event(md, EV_STOP);
	else
		mod_destroy(md);
}

static int apply_added(struct te_supervisor *sv, const struct te_module_spec *ns)
{
	struct te_mod *md = mod_new(sv, ns);

	if (!md)
		return -ENOMEM;
	sv->mods[sv->nmods++] = md;
	md->want_running = ns->status == TE_STATUS_RUNNING;
	md->pending_start = md->want_running;
	return 0;
}

int te_sv_apply(struct te_supervisor *sv, struct te_manifest *m)
{
	struct te_mod **mods;
	unsigned cap = sv->nmods + m->nmodules;

	mods = realloc(sv->mods, (cap ? cap : 1) * sizeof(*mods));
	if (!mods)
		return -ENOMEM;
	sv->mods = mods;
	sv->cloud_twins = m->cloud;
	for (unsigned i = sv->nmods; i-- > 0;) {
		const struct te_module_spec *ns = te_manifest_find(m, sv->mods[i]->name);

		if (ns)
			apply_existing(sv->mods[i], ns);
		else if (!sv->mods[i]->remove_after_stop)
			apply_removed(sv->mods[i]);
	}
	for (unsigned i = 0; i < m->nmodules; i++)
		if (!te_sv_find(sv, m->modules[i].name) && apply_added(sv, &m->modules[i]) < 0)
			return -ENOMEM;
	if (sv->manifest && sv->nretired < TE_SV_RETIRED_MAX)
		sv->retired[sv->nretired++] = sv->manifest;
	else if (sv->manifest)
		te_warn("agent", "too many reloads in flight; keeping an old deployment in memory");
	sv->manifest = m;
	sv_gc(sv);
	sv_kick(sv);
	return 0;
}

/* --- life of the supervisor --- */

int te_sv_kill(struct te_supervisor *sv, const char *name, const char *reason)
{
	struct te_mod *md = te_sv_find(sv, name);

	if (!md)
		return -ENOENT;
	snprintf(md->reason, sizeof(md->reason), "%s", reason);
	if (is_active(md))
		kill_module(md, SIGKILL);
	return 0;
}

int te_sv_init(struct te_supervisor *sv, struct te_loop *loop,
	       const struct te_config *cfg, struct te_router *router,
	       struct te_manifest *m)
{
	char err[256];
	unsigned killed = 0;
	int r;

	memset(sv, 0, sizeof(*sv));
	sv->loop = loop;
	sv->cfg = cfg;
	sv->router = router;
	snprintf(sv->crash_dir, sizeof(sv->crash_dir), "%s/crash", cfg->state_dir);
	r = te_cgroups_init(&sv->cgroups, cfg->state_dir, err, sizeof(err));
	if (r < 0) {
		te_warn("agent", "cgroups unavailable (%s): modules with limits will fail", err);
	} else {
		sv->have_cgroups = true;
		if (te_cgroups_reap_stale(&sv->cgroups, &killed) == 0 && killed)
			te_warn("agent", "killed %u leftover module process%s of a previous run",
				killed, killed == 1 ? "" : "es");
	}
	te_images_init(cfg->state_dir); /* after the leftovers that used them */
	return te_sv_apply(sv, m);
}

void te_sv_free(struct te_supervisor *sv)
{
	while (sv->nmods)
		mod_destroy(sv->mods[sv->nmods - 1]);
	free(sv->mods);
	sv->mods = NULL;
	for (unsigned r = 0; r < sv->nretired; r++) {
		te_manifest_free(sv->retired[r]);
		free(sv->retired[r]);
	}
	sv->nretired = 0;
	if (sv->manifest) {
		te_manifest_free(sv->manifest);
		free(sv->manifest);
		sv->manifest = NULL;
	}
	if (sv->have_cgroups)
		te_cgroups_close(&sv->cgroups);
	te_images_shutdown();
}
