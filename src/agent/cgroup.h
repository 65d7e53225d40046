/* cgroups for modules: placement, limits, accounting, and kill-all.
 *
 * Layout. Each daemon owns one directory, named by its instance id (derived
 * from the state dir, so side-by-side daemons never collide), under the
 * cgroup the daemon itself is in (so a service manager's delegation is
 * respected): <mount>/<own path>/<instance>/<module>.
 *   - cgroup v2 when the unified hierarchy offers the controllers we need
 *     (the daemon enables them in cgroup.subtree_control on the way down);
 *   - else cgroup v1, one directory per controller (memory, pids, cpu,
 *     freezer, cpuacct): /sys/fs/cgroup/<ctrl>/<own path>/<instance>/<module>.
 * Membership (which processes belong to a module, for kill-all) is tracked
 * by the pids controller in v1 (always created, with or without a limit)
 * and by the unified directory in v2.
 *
 * Fail closed: a limit that is requested but cannot be written and read
 * back (no controller, write refused, value not what was written) is an
 * error for that module, never skipped.
 *
 * The child joins its cgroups itself, between clone and exec: the parent
 * opens each cgroup.procs file (O_WRONLY|O_CLOEXEC) in te_cgroup_create,
 * the child writes "0" to each (te_cgroup_join: async-signal-safe, no
 * allocation), so the module is placed before its first instruction. */
#ifndef TE_CGROUP_H
#define TE_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "manifest.h"

enum te_cgroup_mode { TE_CG_NONE, TE_CG_V1, TE_CG_V2 };

/* v1 controllers we use; in v2 they are all in one directory. cpuacct
 * only accounts (v1; often mounted with cpu, then one directory). */
enum { TE_CG_MEMORY, TE_CG_PIDS, TE_CG_CPU, TE_CG_FREEZER, TE_CG_CPUACCT, TE_CG_NCTRL };

struct te_cgroups {
	enum te_cgroup_mode mode;
	char instance[64];            /* "tinyedge-<hash>" */
	/* v2: the instance dir; v1: per controller ("" = controller absent). */
	char root[TE_CG_NCTRL][PATH_MAX];
	bool have[TE_CG_NCTRL];       /* controller usable for limits */
	bool has_kill;                /* v2 cgroup.kill (Linux >= 5.14) */
};

struct te_cgroup {
	char module[TE_MODULE_NAME_MAX + 1];
	/* cgroup.procs of each directory the module joins; -1 = none. */
	int procs_fd[TE_CG_NCTRL];
	bool created;
};

/* Detect the hierarchy and create the instance directory.
 * instance_key: any string that identifies this daemon (its state dir).
 * Never fails for lack of cgroups: mode is then TE_CG_NONE and every limit
 * request will be refused by te_cgroup_create. -errno only for a real
 * error creating directories that should be creatable. On error, err
 * (cap bytes) says what failed on what path. */
int te_cgroups_init(struct te_cgroups *cg, const char *instance_key,
		    char *err, size_t cap);

/* Kill every process left in this instance's module cgroups (a previous
 * run of this daemon that was killed -9) and remove those directories.
 * *killed gets the number of processes signalled. 0 or -errno. */
int te_cgroups_reap_stale(struct te_cgroups *cg, unsigned *killed);

/* Remove the (empty) instance directories; best effort. */
void te_cgroups_close(struct te_cgroups *cg);

/* Create the module's cgroup(s), write the limits (memory_bytes, pids,
 * cpu_percent of te_limits; -1 = unset) and read each back, then open the
 * cgroup.procs fds. A leftover directory of the same name is emptied
 * (killed) first. On error, err says which limit or path failed and why,
 * e.g. "memory limit: no memory cgroup controller" or
 * "pids.max: wrote 32, read back max"; cgroups already made are removed.
 * 0 or -errno / -TE_EINVALID. */
int te_cgroup_create(struct te_cgroups *cg, struct te_cgroup *c,
		     const char *module, const struct te_limits *lim,
		     char *err, size_t cap);

/* Child side, between clone and exec: write "0" to every procs fd.
 * Async-signal-safe. 0 or -errno. */
int te_cgroup_join(const struct te_cgroup *c);

/* Close the procs fds (parent, after the child has exec'd or failed). */
void te_cgroup_close_fds(struct te_cgroup *c);

/* SIGKILL every process in the module's cgroup, including grandchildren
 * that left the module's process group or session; v2 cgroup.kill when
 * present, else freeze (if a freezer exists), kill each pid in
 * cgroup.procs, thaw, and repeat until empty (bounded). Returns the number
 * of processes signalled, or -errno. */
int te_cgroup_kill(struct te_cgroups *cg, struct te_cgroup *c);

/* Number of processes in the module's cgroup (0 = empty), or -errno. */
int te_cgroup_count(struct te_cgroups *cg, const struct te_cgroup *c);

/* Memory in use (v1 memory.usage_in_bytes, v2 memory.current), or -errno
 * (-ENOENT without a memory controller). */
int te_cgroup_memory(struct te_cgroups *cg, const struct te_cgroup *c,
		     uint64_t *bytes);

/* CPU time the module's processes used, in microseconds (v1
 * cpuacct.usage, v2 cpu.stat usage_usec), or -errno (-ENOENT without
 * accounting). */
int te_cgroup_cpu_usec(struct te_cgroups *cg, const struct te_cgroup *c,
		       uint64_t *usec);

/* Did the kernel's OOM killer act in this cgroup since creation?
 * (v1 memory.oom_control oom_kill, v2 memory.events oom_kill). */
bool te_cgroup_oom_killed(struct te_cgroups *cg, const struct te_cgroup *c);

/* Kill what is left, close fds, rmdir. Best effort; safe to call twice. */
void te_cgroup_destroy(struct te_cgroups *cg, struct te_cgroup *c);

#endif
