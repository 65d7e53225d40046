/* Per-module seccomp filters (seccomp.h): the program builder, its
 * installation in the sandbox child, and the daemon's listener. */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "core/log.h"
#include "seccomp.h"

/* ---- the syscall table (generated: $(BUILD)/syscalls.h) --------------- */

struct sc_name {
	const char *name;
	int nr;
};

#define TE_SYSCALL(name, nr) { name, nr },
static const struct sc_name sc_table[] = {
#include "syscalls.h"
};
#undef TE_SYSCALL
#define SC_NTABLE (sizeof(sc_table) / sizeof(sc_table[0]))

static int sc_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct sc_name *)elem)->name);
}

int te_syscall_nr(const char *name)
{
	const struct sc_name *e = bsearch(name, sc_table, SC_NTABLE,
					  sizeof(sc_table[0]), sc_cmp);

	return e ? e->nr : -1;
}

const char *te_syscall_name(int nr)
{
	for (size_t i = 0; i < SC_NTABLE; i++)
		if (sc_table[i].nr == nr)
			return sc_table[i].name;
	return NULL;
}

/* ---- the profile -------------------------------------------------------- */

/* Allowed whatever the arguments: Docker's default profile, minus what
 * it grants only with capabilities (sc_bycap, below) and minus the clock
 * adjusters; the architecture-specific names (arch_prctl, set_tls,
 * cacheflush, the 32-bit variants) are skipped where they do not exist.
 * Not here, so denied unless a capability or an extra grants them:
 * mount/umount2, pivot_root, chroot, ptrace, process_vm_*, kexec_*,
 * *_module, bpf, perf_event_open, the key calls, reboot, swapon/off,
 * settimeofday/clock_settime/adjtimex/clock_adjtime, unshare/setns,
 * open_by_handle_at, userfaultfd, iopl/ioperm, acct, quotactl, syslog,
 * fsopen/fsmount/move_mount/open_tree/fspick, io_uring_*, pidfd_getfd. */
static const char *const sc_default[] = {
	"_llseek", "_newselect", "accept", "accept4", "access", "alarm",
	"arch_prctl", "arm_fadvise64_64", "arm_sync_file_range", "bind",
	"breakpoint", "brk", "cachectl", "cacheflush", "cachestat", "capget",
	"capset", "chdir", "chmod", "chown", "chown32", "clock_getres",
	"clock_getres_time64", "clock_gettime", "clock_gettime64",
	"clock_nanosleep", "clock_nanosleep_time64", "close", "close_range",
	"connect", "copy_file_range", "creat", "dup", "dup2", "dup3",
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait",
	"epoll_pwait2", "epoll_wait", "eventfd", "eventfd2", "execve",
	"execveat", "exit", "exit_group", "faccessat", "faccessat2",
	"fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir",
	"fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat",
	"fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock",
	"fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64",
	"fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex",
	"futex_requeue", "futex_time64", "futex_wait", "futex_waitv",
	"futex_wake", "futimesat", "get_robust_list", "get_thread_area",
	"getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32",
	"geteuid", "geteuid32", "getgid", "getgid32", "getgroups",
	"getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp",
	"getpid", "getppid", "getpriority", "getrandom", "getresgid",
	"getresgid32", "getresuid", "getresuid32", "getrlimit", "getrusage",
	"getsid", "getsockname", "getsockopt", "gettid", "gettimeofday",
	"getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init",
	"inotify_init1", "inotify_rm_watch", "io_cancel", "io_destroy",
	"io_getevents", "io_pgetevents", "io_pgetevents_time64", "io_setup",
	"io_submit", "ioprio_get", "ioprio_set", "ipc", "kill",
	"landlock_add_rule", "landlock_create_ruleset",
	"landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link",
	"linkat", "listen", "listxattr", "llistxattr", "lremovexattr", "lseek",
	"lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack",
	"membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir",
	"mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap",
	"mmap2", "modify_ldt", "mprotect", "mq_getsetattr", "mq_notify",
	"mq_open", "mq_timedreceive", "mq_timedreceive_time64",
	"mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap", "mseal",
	"msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
	"munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat",
	"nice", "open", "openat", "openat2", "pause", "pidfd_open",
	"pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
	"pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64",
	"preadv", "preadv2", "prlimit64", "process_madvise",
	"process_mrelease", "pselect6", "pselect6_time64", "pwrite64",
	"pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat",
	"readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg",
	"remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
	"restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
	"rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
	"rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
	"sched_get_priority_max", "sched_get_priority_min",
	"sched_getaffinity", "sched_getattr", "sched_getparam",
	"sched_getscheduler", "sched_rr_get_interval",
	"sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
	"sched_setparam", "sched_setscheduler", "sched_yield", "seccomp",
	"select", "semctl", "semget", "semop", "semtimedop",
	"semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg",
	"sendmsg", "sendto", "set_robust_list", "set_thread_area",
	"set_tid_address", "set_tls", "setfsgid", "setfsgid32", "setfsuid",
	"setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32",
	"setitimer", "setpgid", "setpriority", "setregid", "setregid32",
	"setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid",
	"setreuid32", "setrlimit", "setsid", "setsockopt", "setuid",
	"setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget",
	"shutdown", "sigaction", "sigaltstack", "signal", "signalfd",
	"signalfd4", "sigpending", "sigprocmask", "sigreturn", "sigsuspend",
	"socket", "socketcall", "socketpair", "splice", "stat", "stat64",
	"statfs", "statfs64", "statx", "symlink", "symlinkat", "sync",
	"sync_file_range", "sync_file_range2", "syncfs", "sysinfo", "tee",
	"tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun",
	"timer_gettime", "timer_gettime64", "timer_settime",
	"timer_settime64", "timerfd_create", "timerfd_gettime",
	"timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times",
	"tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname",
	"unlink", "unlinkat", "uretprobe", "utime", "utimensat",
	"utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid",
	"waitpid", "write", "writev",
};
#define SC_NDEFAULT (sizeof(sc_default) / sizeof(sc_default[0]))

/* Calls Docker's default profile allows only with a capability: a module
 * that lists the capability gets them (an unlisted capability is never
 * in its sets, so the kernel would refuse most of these anyway). With
 * SYS_ADMIN `clone` is allowed whatever its flags, as in Docker. */
static const struct {
	const char *cap;   /* its name, as in createOptions.capabilities */
	const char *calls; /* NUL-separated, ending with an empty name */
} sc_bycap[] = {
	{ "DAC_READ_SEARCH", "open_by_handle_at\0" },
	{ "SYS_MODULE", "init_module\0finit_module\0delete_module\0" },
	{ "SYS_RAWIO", "iopl\0ioperm\0" },
	{ "SYS_CHROOT", "chroot\0" },
	{ "SYS_PTRACE", "ptrace\0process_vm_readv\0process_vm_writev\0kcmp\0"
			"pidfd_getfd\0" },
	{ "SYS_PACCT", "acct\0" },
	{ "SYS_ADMIN", "mount\0umount\0umount2\0mount_setattr\0fsopen\0"
		       "fsconfig\0fsmount\0fspick\0move_mount\0open_tree\0"
		       "unshare\0setns\0sethostname\0setdomainname\0quotactl\0"
		       "quotactl_fd\0fanotify_init\0clone\0" },
	{ "SYS_BOOT", "reboot\0" },
	{ "SYS_NICE", "get_mempolicy\0set_mempolicy\0mbind\0move_pages\0" },
	{ "SYS_TIME", "settimeofday\0stime\0clock_settime\0clock_settime64\0"
		      "adjtimex\0clock_adjtime\0clock_adjtime64\0" },
	{ "SYS_TTY_CONFIG", "vhangup\0" },
	{ "SYSLOG", "syslog\0" },
	{ "PERFMON", "perf_event_open\0" },
	{ "BPF", "bpf\0" },
};
#define SC_NBYCAP (sizeof(sc_bycap) / sizeof(sc_bycap[0]))
#define SC_BYCAP_CALLS 64  /* at least the names in sc_bycap (47): room in the program */

/* CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET. CLONE_NEWTIME
 * (0x80) is clone3/unshare only: in clone's flags that bit is part of the
 * exit signal. */
#define SC_CLONE_NS 0x7e020000u

/* personality values Docker allows: PER_LINUX, PER_LINUX32, UNAME26
 * variants and the query. */
static const uint32_t sc_personality[] = { 0x0, 0x8, 0x20000, 0x20008,
					   0xffffffffu };

#ifndef TIOCLINUX
#define TIOCLINUX 0x541c
#endif

/* AUDIT_ARCH_*: EM_* | 64-bit 0x80000000 | little-endian 0x40000000. */
#define SC_LE (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? 0x40000000u : 0)
#if defined(__x86_64__) && !defined(__ILP32__)
const uint32_t te_seccomp_arch = 0xc000003eu;
#elif defined(__i386__)
const uint32_t te_seccomp_arch = 0x40000003u;
#elif defined(__aarch64__) && !defined(__ILP32__)
const uint32_t te_seccomp_arch = 0x800000b7u | SC_LE;
#elif defined(__arm__)
const uint32_t te_seccomp_arch = 0x28u | SC_LE;
#elif defined(__mips__) && defined(_MIPS_SIM) && _MIPS_SIM == _ABIO32
const uint32_t te_seccomp_arch = 0x8u | SC_LE;
#elif defined(__riscv) && __riscv_xlen == 64
const uint32_t te_seccomp_arch = 0xc00000f3u;
#else
const uint32_t te_seccomp_arch = 0;
#endif

/* ---- the program -------------------------------------------------------- */

#define BPF_LD_W_ABS 0x20   /* BPF_LD | BPF_W | BPF_ABS */
#define BPF_JEQ_K 0x15      /* BPF_JMP | BPF_JEQ | BPF_K */
#define BPF_JSET_K 0x45     /* BPF_JMP | BPF_JSET | BPF_K */
#define BPF_RET_K 0x06      /* BPF_RET | BPF_K */

#define OFF_NR offsetof(struct te_seccomp_data, nr)
#define OFF_ARCH offsetof(struct te_seccomp_data, arch)
/* The 32-bit halves of argument i in the native byte order. */
#define OFF_LO(i) (offsetof(struct te_seccomp_data, args) + 8 * (i) + \
		   (SC_LE ? 0 : 4))
#define OFF_HI(i) (offsetof(struct te_seccomp_data, args) + 8 * (i) + \
		   (SC_LE ? 4 : 0))

struct bld {
	struct te_bpf *p;
	unsigned n, cap;
	uint32_t deny;
};

static void emit(struct bld *b, uint16_t code, uint8_t jt, uint8_t jf,
		 uint32_t k)
{
	if (b->n < b->cap)
		b->p[b->n] = (struct te_bpf){ code, jt, jf, k };
	b->n++;
}

static void ld(struct bld *b, size_t off)
{
	emit(b, BPF_LD_W_ABS, 0, 0, (uint32_t)off);
}

static void ret(struct bld *b, uint32_t k)
{
	emit(b, BPF_RET_K, 0, 0, k);
}

/* A holds nr: allow it (2 instructions, no long jumps). */
static void allow_nr(struct bld *b, int nr)
{
	emit(b, BPF_JEQ_K, 0, 1, (uint32_t)nr);
	ret(b, TE_SECCOMP_RET_ALLOW);
}

/* Starts a block for nr of len instructions (A holds nr; the block
 * returns, so A still holds nr after it). false if no such call here. */
static bool block(struct bld *b, const char *name, uint8_t len)
{
	int nr = te_syscall_nr(name);

	if (nr < 0)
		return false;
	emit(b, BPF_JEQ_K, 0, len, (uint32_t)nr);
	return true;
}

static void prog_head(struct bld *b)
{
	ld(b, OFF_ARCH);
	emit(b, BPF_JEQ_K, 1, 0, te_seccomp_arch);
	ret(b, TE_SECCOMP_RET_KILL_PROCESS);
	ld(b, OFF_NR);
#if defined(__x86_64__)
	emit(b, BPF_JSET_K, 0, 1, 0x40000000u);  /* x32 */
	ret(b, b->deny);
#endif
}

/* clone without namespace flags; clone3 (flags in memory, out of a
 * filter's sight) says ENOSYS, and libc falls back to clone. */
static void prog_clone(struct bld *b)
{
	if (block(b, "clone", 4)) {
		ld(b, OFF_LO(0));
		emit(b, BPF_JSET_K, 0, 1, SC_CLONE_NS);
		ret(b, b->deny);
		ret(b, TE_SECCOMP_RET_ALLOW);
	}
	if (block(b, "clone3", 1))
		ret(b, TE_SECCOMP_RET_ERRNO | ENOSYS);
}

/* The kernel truncates ioctl's request to 32 bits: a filter comparing 64
 * would let TIOCSTI | 1 << 32 through. Deny any upper bit instead. */
static void prog_ioctl(struct bld *b)
{
	if (!block(b, "ioctl", 8))
		return;
	ld(b, OFF_HI(1));
	emit(b, BPF_JEQ_K, 1, 0, 0);
	ret(b, b->deny);
	ld(b, OFF_LO(1));
	emit(b, BPF_JEQ_K, 2, 0, TIOCSTI);
	emit(b, BPF_JEQ_K, 1, 0, TIOCLINUX);
	ret(b, TE_SECCOMP_RET_ALLOW);
	ret(b, b->deny);
}

static void prog_personality(struct bld *b)
{
	unsigned n = sizeof(sc_personality) / sizeof(sc_personality[0]);

	if (!block(b, "personality", (uint8_t)(n + 3)))
		return;
	ld(b, OFF_LO(0));
	for (unsigned i = 0; i < n; i++)
		emit(b, BPF_JEQ_K, (uint8_t)(n - i), 0, sc_personality[i]);
	ret(b, b->deny);
	ret(b, TE_SECCOMP_RET_ALLOW);
}

unsigned te_seccomp_max_insns(const struct te_module_spec *spec)
{
	return 48 + 2 * (unsigned)(SC_NDEFAULT + SC_BYCAP_CALLS + spec->nseccomp_extra);
}

int te_seccomp_build(const struct te_module_spec *spec, struct te_bpf *prog,
		     unsigned cap)
{
	struct bld b = { prog, 0, cap, spec->seccomp_kill ?
			 TE_SECCOMP_RET_KILL_PROCESS : TE_SECCOMP_RET_USER_NOTIF };
	int nr;

	if (spec->seccomp_unconfined)
		return 0;
	if (!te_seccomp_arch)
		return -ENOTSUP;
	prog_head(&b);
	for (unsigned i = 0; i < spec->nseccomp_extra; i++) {
		if ((nr = te_syscall_nr(spec->seccomp_extra[i])) < 0)
			return -ENOENT;
		allow_nr(&b, nr);
	}
	for (unsigned i = 0; spec->capabilities && i < SC_NBYCAP; i++) {
		int c = te_capability_from_name(sc_bycap[i].cap);

		if (c < 0 || !(spec->capabilities & (1ull << c)))
			continue;
		for (const char *n = sc_bycap[i].calls; *n; n += strlen(n) + 1)
			if ((nr = te_syscall_nr(n)) >= 0)
				allow_nr(&b, nr);
	}
	prog_clone(&b);
	prog_ioctl(&b);
	prog_personality(&b);
	for (unsigned i = 0; i < SC_NDEFAULT; i++)
		if ((nr = te_syscall_nr(sc_default[i])) >= 0)
			allow_nr(&b, nr);
	ret(&b, b.deny);
	return b.n > b.cap || b.n > 4096 ? -E2BIG : (int)b.n;
}

/* ---- the child ---------------------------------------------------------- */

struct sc_fprog {
	unsigned short len;
	struct te_bpf *filter;
};

#define SC_SET_MODE_FILTER 1
#define SC_FLAG_NEW_LISTENER (1u << 3)

int te_seccomp_install(struct te_bpf *prog, unsigned n, int *listener)
{
	struct sc_fprog fp = { (unsigned short)n, prog };
	bool notify = false;
	long fd;

	*listener = -1;
	for (unsigned i = 0; i < n; i++)
		notify |= prog[i].code == BPF_RET_K &&
			  prog[i].k == TE_SECCOMP_RET_USER_NOTIF;
	if (notify) {
		fd = syscall(SYS_seccomp, SC_SET_MODE_FILTER,
			     SC_FLAG_NEW_LISTENER, &fp);
		if (fd >= 0) {
			*listener = (int)fd;
			return 0;
		}
		/* EINVAL: no such flag (< 5.0); EBUSY: a listener already
		 * watches us (a supervisor of our own); ENOSYS: no seccomp()
		 * (< 3.17, or valgrind). Answer EPERM here. */
		if (errno != EINVAL && errno != EBUSY && errno != ENOSYS)
			return -errno;
		for (unsigned i = 0; i < n; i++)
			if (prog[i].code == BPF_RET_K &&
			    prog[i].k == TE_SECCOMP_RET_USER_NOTIF)
				prog[i].k = TE_SECCOMP_RET_ERRNO | EPERM;
	}
	if (syscall(SYS_seccomp, SC_SET_MODE_FILTER, 0, &fp) == 0)
		return 0;
	if (errno != ENOSYS)
		return -errno;
	/* The older entry point for the same filter (PR_SET_SECCOMP,
	 * SECCOMP_MODE_FILTER); qemu-user refuses this one too. */
	return prctl(PR_SET_SECCOMP, 2, &fp, 0, 0) < 0 ? -errno : 0;
}

/* ---- the daemon's listener ---------------------------------------------- */

struct sc_notif {
	uint64_t id;
	uint32_t pid;
	uint32_t flags;
	struct te_seccomp_data data;
};

struct sc_notif_resp {
	uint64_t id;
	int64_t val;
	int32_t error;
	uint32_t flags;
};

#define SC_IOCTL_RECV _IOWR('!', 0, struct sc_notif)
#define SC_IOCTL_SEND _IOWR('!', 1, struct sc_notif_resp)
#define SC_BATCH 32    /* notifications per wakeup */

void te_seccomp_mon_init(struct te_seccomp_mon *m, const char *module)
{
	memset(m, 0, sizeof(*m));
	m->io.fd = -1;
	m->module = module;
}

void te_seccomp_mon_count(struct te_seccomp_mon *m, int nr)
{
	const char *name = nr < 0 ? "a syscall (kill action: SIGSYS)" :
			   te_syscall_name(nr);
	uint64_t now = te_now_ms();
	unsigned i;

	m->denied++;
	for (i = 0; i < m->nby && m->by[i].nr != nr; i++)
		;
	if (i == m->nby && m->nby < TE_SECCOMP_BY_MAX)
		m->by[m->nby++].nr = nr;
	if (i < m->nby)
		m->by[i].n++;
	if (m->log_ms && now - m->log_ms < 1000) {
		m->quiet++;
		return;
	}
	if (m->quiet)
		te_warn("agent", "module %s: seccomp denied %s (and %u more "
			"since the last report)", m->module, name ? name : "?",
			m->quiet);
	else if (name)
		te_warn("agent", "module %s: seccomp denied %s", m->module, name);
	else
		te_warn("agent", "module %s: seccomp denied syscall %d",
			m->module, nr);
	m->log_ms = now;
	m->quiet = 0;
}

/* RECV blocks when nothing is pending, whatever O_NONBLOCK says: ask poll
 * first. Its POLLIN means a notification was queued and not received
 * yet, so RECV returns at once (ENOENT if its caller died meanwhile). */
static bool mon_pending(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static int mon_one(struct te_seccomp_mon *m)
{
	struct sc_notif req;
	struct sc_notif_resp resp;

	memset(&req, 0, sizeof(req)); /* the kernel wants it zeroed */
	if (ioctl(m->io.fd, SC_IOCTL_RECV, &req) < 0)
		return errno == ENOENT || errno == EINTR ? 0 : -errno;
	resp = (struct sc_notif_resp){ .id = req.id, .error = -EPERM };
	/* ENOENT: the caller was killed before the answer; still a denial */
	if (ioctl(m->io.fd, SC_IOCTL_SEND, &resp) < 0 && errno != ENOENT)
		te_debug("agent", "module %s: seccomp answer: %s", m->module,
			 strerror(errno));
	te_seccomp_mon_count(m, req.data.nr);
	return 0;
}

static void mon_ready(struct te_loop *loop, struct te_io *io, uint32_t ev)
{
	struct te_seccomp_mon *m = (struct te_seccomp_mon *)
		((char *)io - offsetof(struct te_seccomp_mon, io));
	unsigned i;
	int r = 0;

	for (i = 0; i < SC_BATCH && r == 0 && mon_pending(io->fd); i++)
		r = mon_one(m);
	if (r < 0)
		te_warn("agent", "module %s: seccomp listener: %s", m->module,
			strerror(-r));
	/* HUP: no task uses the filter any more */
	if (r < 0 || (i < SC_BATCH && (ev & (EPOLLHUP | EPOLLERR))))
		te_seccomp_mon_stop(loop, m);
}

int te_seccomp_mon_start(struct te_loop *loop, struct te_seccomp_mon *m,
			 int fd)
{
	int r;

	te_seccomp_mon_stop(loop, m);
	m->io.fd = fd;
	m->io.cb = mon_ready;
	if ((r = te_io_add(loop, &m->io, EPOLLIN)) < 0) {
		close(fd);
		m->io.fd = -1;
	}
	return r;
}

void te_seccomp_mon_stop(struct te_loop *loop, struct te_seccomp_mon *m)
{
	if (m->io.fd < 0)
		return;
	te_io_del(loop, &m->io);
	close(m->io.fd);
	m->io.fd = -1;
}
