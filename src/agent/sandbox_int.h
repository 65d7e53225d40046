/* Private to the sandbox (sandbox.c, sandbox_mount.c): the plan a child
 * executes between clone and exec. Built by the parent in one block; the
 * child works on its own copy (fork semantics) and may write to it. */
#ifndef TE_SANDBOX_INT_H
#define TE_SANDBOX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox.h"
#include "seccomp.h"

#define SB_NFD (3 + TE_SPAWN_MAX_FDS + 1)   /* stdio, keep fds, notify */

/* What a mount step creates before mounting on its target. */
enum sb_make { SB_MAKE_NONE, SB_MAKE_DIR, SB_MAKE_LIKE_SRC };

/* A bind source. The child opens it (O_PATH) before any mount covers it,
 * and binds from /proc/self/fd/N: a host-view /tmp or /dev source would
 * be hidden by our own tmpfs otherwise. It must be opened in the child:
 * a bind from a mount of another namespace (the parent's) is refused. */
struct sb_src {
	const char *path;
	int fd;
	bool dir;
};

struct sb_plan;
struct sb_step;
typedef int (*sb_fn)(struct sb_plan *p, struct sb_step *s);

struct sb_step {
	const char *name;    /* te_spawn_fail.step */
	sb_fn fn;
	const char *detail;  /* te_spawn_fail.detail */
	/* Arguments; their meaning depends on fn. */
	char *path;          /* a target; mutable: make_parents walks it */
	const char *src;
	const char *fstype;
	const char *data;
	unsigned long flags;
	int isrc;            /* index in plan->src */
	enum sb_make make;
};

struct sb_plan {
	const struct te_spawn_ctx *ctx;
	const struct te_module_spec *spec;
	struct sb_step *step;
	unsigned nstep, maxstep;
	struct sb_src *src;
	unsigned nsrc;
	char *pool;          /* path strings */
	size_t pool_left;
	char **argv;
	int fd_src[SB_NFD];  /* what becomes fd 0, 1, 2, 3.. in the child */
	unsigned nfd;
	int sync_fd;         /* the child's end */
	int parent_sync;     /* the parent's end: the child closes its copy */
	pid_t parent_pid;
	uid_t uid;           /* ids set in the child (0 in a user ns) */
	gid_t gid;
	uid_t host_uid;      /* the module's ids as the host sees them */
	gid_t host_gid;
	bool root;           /* runs as uid 0 (maybe of its own user ns) */
	uint64_t caps;
	unsigned cap_last;
	struct te_bpf *bpf;  /* the seccomp program (seccomp.h) */
	unsigned nbpf;       /* 0: unconfined */
	char uid_str[16], gid_str[16], nofile_str[24], caps_str[24];
};

/* ---- sandbox.c --------------------------------------------------------- */

/* Append a step (the plan is sized for every step the spec can need). */
struct sb_step *sb_plan_add(struct sb_plan *p, const char *name, sb_fn fn,
			    const char *detail);
/* prefix + path copied into the plan; NULL if longer than PATH_MAX. */
char *sb_plan_path(struct sb_plan *p, const char *prefix, const char *path);

/* ---- sandbox_mount.c --------------------------------------------------- */

/* What the mount steps of this spec need at most: steps, bind sources,
 * bytes of sb_plan_path. */
unsigned sb_mount_max_steps(const struct te_module_spec *sp);
unsigned sb_mount_max_srcs(const struct te_module_spec *sp);
size_t sb_mount_pool_bytes(const struct te_module_spec *sp);

/* The mount namespace steps: / private; the rootfs bound onto itself;
 * proc (new pid ns), tmpfs on /tmp and /dev; the /dev nodes, devices and
 * mounts bound from sources opened first; pivot_root into the rootfs.
 * 0 or -ENAMETOOLONG. */
int sb_plan_mounts(struct sb_plan *p);

#endif
