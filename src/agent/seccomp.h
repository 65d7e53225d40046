/* Per-module seccomp filters: classic BPF built by hand (no libseccomp),
 * and the daemon's side of the denials (docs/modules.md, "Seccomp").
 *
 * The program, in order:
 *   1. seccomp_data.arch must be this build's AUDIT_ARCH (else the process
 *      is killed: another ABI's numbers mean other calls); on x86_64 x32
 *      numbers (nr & 0x40000000) are denied;
 *   2. the module's extra syscalls (createOptions.seccomp list): allowed;
 *   3. calls allowed only with some arguments: clone (no CLONE_NEW* bit),
 *      ioctl (request's upper 32 bits zero, and not TIOCSTI or TIOCLINUX),
 *      personality (the harmless values); clone3 fails with ENOSYS so libc
 *      falls back to clone, whose flags a filter can see;
 *   4. the default allow-list (a Docker-like profile; names this arch
 *      lacks are skipped);
 *   5. everything else is denied.
 *
 * Denied = SECCOMP_RET_USER_NOTIF with the errno action: the daemon holds
 * the listener, counts the call and answers EPERM (a kernel without
 * SECCOMP_FILTER_FLAG_NEW_LISTENER gets RET_ERRNO(EPERM), uncounted), or
 * SECCOMP_RET_KILL_PROCESS with the kill action (the supervisor counts the
 * SIGSYS exit). */
#ifndef TE_SECCOMP_H
#define TE_SECCOMP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/loop.h"
#include "manifest.h"

/* struct sock_filter (musl ships no <linux/filter.h>; the ABI is fixed). */
struct te_bpf {
	uint16_t code;
	uint8_t jt, jf;
	uint32_t k;
};

/* struct seccomp_data: what a filter sees. */
struct te_seccomp_data {
	int32_t nr;
	uint32_t arch;
	uint64_t ip;
	uint64_t args[6];
};

/* Return values a program uses (the action in the upper 16 bits). */
#define TE_SECCOMP_RET_KILL_PROCESS 0x80000000u
#define TE_SECCOMP_RET_ERRNO 0x00050000u
#define TE_SECCOMP_RET_USER_NOTIF 0x7fc00000u
#define TE_SECCOMP_RET_ALLOW 0x7fff0000u

/* This build's AUDIT_ARCH_* (0: no profile for this architecture). */
extern const uint32_t te_seccomp_arch;

/* The syscall table of the target (scripts/gen-syscalls.sh): number of a
 * name, or -1 if this architecture has no such call; the name of a
 * number, or NULL. */
int te_syscall_nr(const char *name);
const char *te_syscall_name(int nr);

/* Instructions te_seccomp_build may write for spec (an upper bound). */
unsigned te_seccomp_max_insns(const struct te_module_spec *spec);

/* Build spec's program into prog (cap instructions). Denials return
 * USER_NOTIF (errno action) or KILL_PROCESS (kill action). Returns the
 * number of instructions, or -ENOTSUP (no profile for this architecture),
 * -ENOENT (an extra name unknown here; the manifest checks this first),
 * -E2BIG (cap too small). Nothing to build for "unconfined": returns 0. */
int te_seccomp_build(const struct te_module_spec *spec, struct te_bpf *prog,
		     unsigned cap);

/* In the sandbox child, after no_new_privs: install prog. With a
 * USER_NOTIF program, asks for a listener; *listener is its fd (close-
 * on-exec), or -1 when the kernel has no listeners, after the program was
 * changed to answer EPERM itself. No allocation. 0 or -errno. */
int te_seccomp_install(struct te_bpf *prog, unsigned n, int *listener);

/* Denied calls of one module, across its restarts. Lives in its owner
 * (struct te_mod); the io is the current instance's listener. */
#define TE_SECCOMP_BY_MAX 16

struct te_seccomp_mon {
	struct te_io io;       /* the listener; fd -1 when none */
	const char *module;    /* for the log */
	uint64_t denied;       /* every denial counted */
	struct { int nr; uint64_t n; } by[TE_SECCOMP_BY_MAX]; /* nr -1: kill */
	unsigned nby;
	uint64_t log_ms;       /* last "denied" log line */
	unsigned quiet;        /* denials not logged since */
};

void te_seccomp_mon_init(struct te_seccomp_mon *m, const char *module);
/* Watch listener fd (the monitor owns it from now on). -errno. */
int te_seccomp_mon_start(struct te_loop *loop, struct te_seccomp_mon *m,
			 int fd);
/* Close the listener (the module's calls then fail with ENOSYS). */
void te_seccomp_mon_stop(struct te_loop *loop, struct te_seccomp_mon *m);
/* Count one denial of nr (-1: the kill action's SIGSYS) and log it, at
 * most one line a second per module. */
void te_seccomp_mon_count(struct te_seccomp_mon *m, int nr);

#endif
