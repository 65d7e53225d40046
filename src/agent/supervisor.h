/* The supervisor: keeps every module in the state the manifest asks for.
 *
 * Each module is a small state machine driven by an explicit state x event
 * table of action functions (s6-supervise). Runtime states use Azure's
 * words: running, stopped, failed, backoff, unhealthy (plus the transient
 * starting and stopping, reported as running). Events: start and stop
 * requests, the exec outcome from the sandbox's sync socket, the child's
 * exit (reaped by the loop), timers (restart backoff, stop timeout,
 * watchdog) and heartbeats (a line on the module's notify fd).
 *
 * Restart policies as Azure: never; on-failure (exit code != 0 or killed by
 * a signal); on-unhealthy (the watchdog expired); always. Backoff doubles
 * from restartBackoff.initialMs to maxMs with +-20 % jitter, and starts
 * over once a module has run resetAfterSecs. It never gives up: with
 * always, it keeps retrying at the cap, status backoff with the reason.
 * All timing is monotonic.
 *
 * Modules start by startupOrder (lower first; equal values together; the
 * next group starts once every module of the previous one has exec'd or
 * failed) and stop in reverse order at shutdown. Stop is SIGTERM, then
 * SIGKILL to the whole cgroup after stopTimeoutSecs; a module's
 * grandchildren never outlive it. */
#ifndef TE_SUPERVISOR_H
#define TE_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>

#include "cgroup.h"
#include "core/config.h"
#include "core/loop.h"
#include "logring.h"
#include "manifest.h"
#include "hub/router.h"
#include "sandbox.h"
#include "seccomp.h"

enum te_mod_state {
	TE_MOD_STOPPED,
	TE_MOD_STARTING,   /* cloned, exec outcome not known yet */
	TE_MOD_RUNNING,
	TE_MOD_UNHEALTHY,  /* running, watchdog expired */
	TE_MOD_STOPPING,   /* SIGTERM sent, waiting for the exit */
	TE_MOD_BACKOFF,    /* waiting to restart */
	TE_MOD_FAILED,     /* will not restart by itself */
	TE_MOD_NSTATES
};

struct te_supervisor;

#define TE_SV_RETIRED_MAX 16

struct te_mod {
	struct te_supervisor *sv;
	const struct te_module_spec *spec; /* in sv->manifest */
	char name[TE_MODULE_NAME_MAX + 1];
	enum te_mod_state state;
	bool want_running;      /* desired: the manifest's status or start/stop */
	bool pending_start;     /* waiting for its startupOrder group */
	bool restart_after_stop;
	bool remove_after_stop; /* dropped from the deployment by a reload */
	bool unhealthy_kill;    /* this exit was our watchdog's doing */
	pid_t pid;
	struct te_spawn sp;
	struct te_child child;
	struct te_io sync_io, out_io, err_io, notify_io;
	struct te_timer timer;     /* backoff or stop timeout */
	struct te_timer watchdog;
	struct te_seccomp_mon sc;  /* its denied syscalls, across restarts */
	struct te_cgroup cg;
	struct te_port *port;      /* its rings or stdio pipes in the router */
	struct te_logring log;
	char **env;                /* built once per spec */
	unsigned restart_count;
	unsigned backoff_step;     /* restarts since the last healthy run */
	uint64_t start_mono_ms, spawn_mono_ns;
	uint64_t start_wall_ms, exit_wall_ms;
	int exit_status;           /* waitpid status of the last exit */
	bool has_exited;
	uint64_t exec_ns;          /* spawn request to exec, last start */
	uint64_t exit_mono_ns;     /* when the last exit was reaped */
	uint64_t cpu_usec_past;    /* CPU time of its ended instances (cgroup) */
	char reason[256];          /* why failed/backoff: exec error, limit, exit */
};

struct te_supervisor {
	struct te_loop *loop;
	const struct te_config *cfg;
	struct te_manifest *manifest;
	struct te_cgroups cgroups;
	bool have_cgroups;
	struct te_router *router;  /* NULL: modules get no rings */
	char crash_dir[PATH_MAX];
	struct te_mod **mods;      /* nmods entries, sized per deployment */
	unsigned nmods;
	/* Older manifests that modules being removed still point into. */
	struct te_manifest *retired[TE_SV_RETIRED_MAX];
	unsigned nretired;
	bool shutting_down;
	bool cloud_twins;          /* the manifest being applied is the cloud's */
	void (*on_idle)(struct te_supervisor *sv); /* all stopped at shutdown */
};

/* Prepare cgroups (and kill leftovers of a previous run of this state dir),
 * then create and start the modules of m, a malloc'd manifest the
 * supervisor now owns (freed with te_manifest_free + free). 0 or -errno. */
int te_sv_init(struct te_supervisor *sv, struct te_loop *loop,
	       const struct te_config *cfg, struct te_router *router,
	       struct te_manifest *m);

/* Apply a new manifest by difference: modules added are started, removed
 * ones stopped and dropped, changed ones restarted; unchanged ones are not
 * touched (they are re-pointed at the new spec). The supervisor takes
 * ownership of m (malloc'd); the old manifest is freed once no module
 * refers to it. A module stopped or started by the CLI follows the
 * manifest's status again at the next reload. */
int te_sv_apply(struct te_supervisor *sv, struct te_manifest *m);

/* Control: 0, -ENOENT (no such module). */
int te_sv_start(struct te_supervisor *sv, const char *name);
int te_sv_stop(struct te_supervisor *sv, const char *name);
int te_sv_restart(struct te_supervisor *sv, const char *name);
/* Kill a misbehaving module now (SIGKILL to its cgroup); its restart
 * policy then applies. reason goes to its statusDescription. */
int te_sv_kill(struct te_supervisor *sv, const char *name, const char *reason);

/* Stop everything in reverse startup order, then call sv->on_idle. */
void te_sv_shutdown(struct te_supervisor *sv);
void te_sv_free(struct te_supervisor *sv);

struct te_mod *te_sv_find(struct te_supervisor *sv, const char *name);
/* Azure's runtimeStatus word for a state. */
const char *te_mod_status(const struct te_mod *md);

/* Do two specs describe the same module instance (no restart needed)? */
bool te_spec_equal(const struct te_module_spec *a,
		   const struct te_module_spec *b);

#endif
