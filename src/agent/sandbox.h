/* Starting a module: the sandbox as a plan, then its execution (bubblewrap).
 *
 * te_sandbox_spawn() resolves everything in the parent (user and group ids,
 * paths, the ordered list of setup steps, every buffer the child needs),
 * then clones straight into the module's namespaces. The child runs the
 * plan, one named function per step, touching no allocator, and execs:
 *
 *   join cgroups, setsid, hostname (= module name), mounts (rootfs via
 *   pivot_root, or the host view with a private /tmp, /proc and a minimal
 *   /dev holding only null, zero, full, random, urandom, tty and the listed
 *   devices; then the bind mounts), rlimits (nofile), stdio and the
 *   module's fds in place, every other fd closed, workdir, groups/gid/uid,
 *   capabilities (bounding set dropped to the listed ones; ambient caps for
 *   a non-root user), no_new_privs, the seccomp filter (seccomp.h; its
 *   listener fd is sent to the parent on the sync socket), signal mask and
 *   dispositions reset, PR_SET_PDEATHSIG(SIGKILL), execve.
 *
 * Any failure between clone and exec is written as one struct
 * te_spawn_fail to the close-on-exec sync socket and the child exits 127;
 * a successful exec closes the socket (EOF). So the parent learns the real
 * cause ("exec /usr/lib/x/sensor: No such file or directory") instead of
 * an anonymous exit status.
 *
 * Child fd layout: 0 stdin (/dev/null, or a pipe in stdio mode), 1 and 2
 * pipes to the daemon, 3.. the ctx->keep_fds in order, then the watchdog
 * notify pipe's write end (fd 3 + nkeep) when ctx->want_notify. */
#ifndef TE_SANDBOX_H
#define TE_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "manifest.h"

#define TE_SPAWN_MAX_FDS 8

struct te_spawn_ctx {
	const struct te_module_spec *spec;
	const struct te_cgroup *cgroup;  /* NULL: no cgroup placement */
	const char *const *env;          /* full environment, NULL-terminated */
	const int *keep_fds;             /* passed as 3, 4, ... (at most 8) */
	unsigned nkeep;
	bool want_notify;                /* watchdog notify pipe */
	bool stdin_pipe;                 /* stdio-mode modules: a pipe on fd 0 */
};

struct te_spawn {
	pid_t pid;       /* in the daemon's pid namespace */
	int sync_fd;     /* EOF = exec'd; a te_spawn_fail record = failed */
	int in_fd;       /* write end of the stdin pipe, or -1 */
	int out_fd;      /* read ends of stdout/stderr (O_NONBLOCK|O_CLOEXEC) */
	int err_fd;
	int notify_fd;   /* read end of the notify pipe, or -1 */
};

struct te_spawn_fail {
	char step[32];     /* plan step that failed: "exec", "mount /proc", ... */
	int32_t err;       /* errno */
	char detail[256];  /* what it acted on: a path, a uid, a limit */
};

/* Resolve a module's user and group ("root", a name from /etc/passwd or
 * /etc/group, or a number; NULL user = "nobody", else 65534). Used by
 * spawn and by `check`. 0, or -ENOENT with a message in err. */
int te_sandbox_resolve_ids(const struct te_module_spec *spec, uid_t *uid,
			   gid_t *gid, char *err, size_t cap);

/* A group ("root", a name from /etc/group, or a number): 0, or -ENOENT
 * with a message in err. The control socket's admin group uses it too. */
int te_sandbox_resolve_group(const char *group, gid_t *gid, char *err, size_t cap);

/* Start the module. On success sp is filled and the child is running its
 * plan; the caller watches sp->sync_fd. On failure before clone, returns
 * -errno with err (cap bytes) naming what failed, and nothing is left
 * open. All fds in sp are O_CLOEXEC. */
int te_sandbox_spawn(const struct te_spawn_ctx *ctx, struct te_spawn *sp,
		     char *err, size_t cap);

/* Read the outcome from the sync socket without blocking: 0 = exec'd (EOF),
 * 1 = failed (*f filled), -EAGAIN = not decided yet, other -errno on error.
 * The caller closes sync_fd once it has an answer. */
int te_sandbox_result(int sync_fd, struct te_spawn_fail *f);

/* The same, and the seccomp listener the child sends just before exec:
 * 2 = *listener is its fd (close-on-exec), or -1 when the kernel has no
 * listeners (the filter answers EPERM itself); call again for the rest.
 * te_sandbox_result closes the listener (the module's denied calls then
 * fail with ENOSYS). */
int te_sandbox_result_fd(int sync_fd, struct te_spawn_fail *f, int *listener);

/* Close every fd of sp that is open (sets them to -1). */
void te_sandbox_close(struct te_spawn *sp);

#endif
