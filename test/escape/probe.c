/* The escape probe (test/e2e/test_escape.py builds it static with musl-gcc
 * and runs it as a module in the default sandbox): it tries each way out
 * of the sandbox it knows and reports one JSON line per attempt, then a
 * summary, then sleeps until stopped.
 *
 *   probe DAEMON_PID OTHER_PID DAEMON_EXE STATE_DIR
 *
 * The pids are host pids (the daemon's, another module's: in a pid
 * namespace they should not even be visible), DAEMON_EXE the daemon's
 * binary, STATE_DIR its state directory.
 *
 *   {"probe":NAME,"escaped":BOOL,"errno":"EPERM"...,"detail":"..."}
 *   {"escapes":N,"probes":K}
 *
 * "escaped" means a boundary of the sandbox was crossed: something outside
 * the module was read, written, signalled or gained. An attempt that
 * succeeds only inside the module's own namespaces (a mount in a user
 * namespace it created itself) is not an escape; it is reported with
 * "surface":true (kernel attack surface that a seccomp filter removes).
 * "errno" is the error of the attempt that came closest; "detail" lists
 * every attempt as what=result. Nothing here needs root to build; nothing
 * destructive is written even when an attempt succeeds (files are only
 * opened, mounts are undone). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#endif
#define CAP_SYS_ADMIN_NR 21

struct res {
	bool escaped;
	bool surface;
	int err;            /* the last failure seen, 0 = none */
	char detail[4096];
	size_t dlen;
};

static pid_t daemon_pid, other_pid;
static const char *daemon_exe, *state_dir;
static dev_t exe_dev;
static ino_t exe_ino;
static bool have_exe;
static ino_t my_ring_ino;
static int escapes, probes;

/* ---- reporting ------------------------------------------------------------ */

static void note(struct res *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (r->dlen >= sizeof(r->detail) - 1)
		return;
	if (r->dlen)
		r->detail[r->dlen++] = ' ';
	va_start(ap, fmt);
	n = vsnprintf(r->detail + r->dlen, sizeof(r->detail) - r->dlen, fmt, ap);
	va_end(ap);
	if (n > 0)
		r->dlen += (size_t)n < sizeof(r->detail) - r->dlen ? (size_t)n :
			   sizeof(r->detail) - r->dlen - 1;
}

static const char *ename(int e)
{
	static char buf[16];

	switch (e) {
	case 0: return "ok";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EINVAL: return "EINVAL";
	case EROFS: return "EROFS";
	case ENXIO: return "ENXIO";
	case ENOTTY: return "ENOTTY";
	case EBADF: return "EBADF";
	case ENOSYS: return "ENOSYS";
	case EIO: return "EIO";
	case EBUSY: return "EBUSY";
	case ENODEV: return "ENODEV";
	case ENOTDIR: return "ENOTDIR";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ECONNREFUSED: return "ECONNREFUSED";
	case EXDEV: return "EXDEV";
	case ENOSPC: return "ENOSPC";
	case EMFILE: return "EMFILE";
	}
	snprintf(buf, sizeof(buf), "E%d", e);
	return buf;
}

/* Record an attempt: rc < 0 = it failed with errno; rc >= 0 = it worked,
 * which is an escape when bad. */
static bool attempt(struct res *r, const char *what, long rc, bool bad)
{
	int e = rc < 0 ? errno : 0;

	note(r, "%s=%s", what, ename(e));
	if (e)
		r->err = e;
	else if (bad)
		r->escaped = true;
	return rc >= 0;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void report(const char *name, struct res *r)
{
	printf("{\"probe\":\"%s\",\"escaped\":%s,", name, r->escaped ? "true" : "false");
	if (r->surface)
		printf("\"surface\":true,");
	printf("\"errno\":\"%s\",\"detail\":", ename(r->err));
	json_str(r->detail);
	printf("}\n");
	fflush(stdout);
	escapes += r->escaped;
	probes++;
}

/* ---- helpers ---------------------------------------------------------------- */

static bool is_foreign_ring(int fd)
{
	char path[64], target[256];
	struct stat st;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return strstr(target, "memfd:tinyedge-ring") && fstat(fd, &st) == 0 &&
	       st.st_ino != my_ring_ino;
}

static bool is_daemon_exe(int fd)
{
	struct stat st;

	return have_exe && fstat(fd, &st) == 0 && st.st_dev == exe_dev &&
	       st.st_ino == exe_ino;
}

static bool status_field(const char *path, const char *key, char *out, size_t cap)
{
	char line[256];
	size_t kl = strlen(key);
	FILE *f = fopen(path, "r");
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, kl) || line[kl] != ':')
			continue;
		snprintf(out, cap, "%s", line + kl + 1 + strspn(line + kl + 1, " \t"));
		out[strcspn(out, "\n")] = '\0';
		found = true;
	}
	fclose(f);
	return found;
}

/* Host uid of uid 0 in our user namespace (0 in the initial one). */
static long host_uid_of_root(void)
{
	unsigned long in, out, cnt;
	FILE *f = fopen("/proc/self/uid_map", "r");
	long host = -1;

	if (!f)
		return -1;
	while (fscanf(f, "%lu %lu %lu", &in, &out, &cnt) == 3)
		if (in == 0)
			host = (long)out;
	fclose(f);
	return host;
}

/* ---- the probes ------------------------------------------------------------- */

/* Every fd of every process we can see, and their mapped files: a
 * tinyedge ring that is not ours is another module's. */
static void scan_proc_rings(struct res *r)
{
	static const char *subs[] = { "fd", "map_files" };
	DIR *procd = opendir("/proc"), *d;
	struct dirent *p, *e;
	char path[1024];
	int fd, opened = 0, denied = 0;

	if (!procd) {
		attempt(r, "opendir(/proc)", -1, false);
		return;
	}
	while ((p = readdir(procd))) {
		if (p->d_name[0] < '1' || p->d_name[0] > '9')
			continue;
		for (int s = 0; s < 2; s++) {
			snprintf(path, sizeof(path), "/proc/%s/%s", p->d_name, subs[s]);
			d = opendir(path);
			if (!d) {
				denied++;
				continue;
			}
			while ((e = readdir(d))) {
				if (e->d_name[0] == '.')
					continue;
				snprintf(path, sizeof(path), "/proc/%s/%s/%s", p->d_name, subs[s],
					 e->d_name);
				fd = open(path, O_RDONLY | O_CLOEXEC);
				if (fd < 0)
					continue;
				opened++;
				if (is_foreign_ring(fd)) {
					r->escaped = true;
					note(r, "foreign-ring:%s", path);
				}
				close(fd);
			}
			closedir(d);
		}
	}
	closedir(procd);
	note(r, "scan:opened=%d,dirs-denied=%d", opened, denied);
}

static void try_pid_fds(struct res *r, const char *who, pid_t pid)
{
	char what[64], path[64];
	long pfd, fd;

	snprintf(path, sizeof(path), "/proc/%d/fd/3", (int)pid);
	snprintf(what, sizeof(what), "open(/proc/%s/fd/3)", who);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	attempt(r, what, fd, fd >= 0 && is_foreign_ring((int)fd));
	if (fd >= 0)
		close((int)fd);
	snprintf(path, sizeof(path), "/proc/%d/map_files", (int)pid);
	snprintf(what, sizeof(what), "opendir(/proc/%s/map_files)", who);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	attempt(r, what, fd, false);
	if (fd >= 0)
		close((int)fd);
	snprintf(what, sizeof(what), "pidfd_open(%s)", who);
	pfd = syscall(SYS_pidfd_open, pid, 0);
	if (!attempt(r, what, pfd, false))
		return;
	snprintf(what, sizeof(what), "pidfd_getfd(%s,3)", who);
	fd = syscall(SYS_pidfd_getfd, pfd, 3, 0);
	attempt(r, what, fd, true);
	if (fd >= 0)
		close((int)fd);
	close((int)pfd);
}

static void probe_other_ring(void)
{
	struct res r = { 0 };

	try_pid_fds(&r, "other", other_pid);
	try_pid_fds(&r, "daemon", daemon_pid);
	scan_proc_rings(&r);
	report("other_ring", &r);
}

static void try_mem(struct res *r, const char *who, pid_t pid)
{
	char what[64], path[64], buf[16];
	struct iovec l = { buf, sizeof(buf) }, rem = { (void *)0x400000, sizeof(buf) };
	long fd, n;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	snprintf(what, sizeof(what), "open(/proc/%s/mem)", who);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	attempt(r, what, fd, true);
	if (fd >= 0)
		close((int)fd);
	snprintf(what, sizeof(what), "process_vm_readv(%s)", who);
	n = process_vm_readv(pid, &l, 1, &rem, 1, 0);
	/* EFAULT: the call was allowed, only the address was wrong */
	attempt(r, what, n < 0 && errno == EFAULT ? 0 : n, true);
}

static void probe_daemon_mem(void)
{
	struct res r = { 0 };

	try_mem(&r, "daemon", daemon_pid);
	try_mem(&r, "other", other_pid);
	report("daemon_mem", &r);
}

/* Anything open beyond 0-2, the rings (3 memfd, 4 and 5 eventfds) and the
 * watchdog fd is a leak from the daemon. */
static void probe_leaked_fds(void)
{
	struct res r = { 0 };
	const char *nfd = getenv("TINYEDGE_NOTIFY_FD");
	int notify = nfd ? atoi(nfd) : -1, fd, dfd;
	char path[64], target[256];
	struct dirent *e;
	ssize_t n;
	DIR *d = opendir("/proc/self/fd");

	if (!d) {
		attempt(&r, "opendir(/proc/self/fd)", -1, false);
		report("leaked_fds", &r);
		return;
	}
	dfd = dirfd(d);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		fd = atoi(e->d_name);
		if (fd == dfd)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, target, sizeof(target) - 1);
		target[n < 0 ? 0 : n] = '\0';
		note(&r, "%d:%s", fd, target);
		if (fd <= 2 || fd == notify)
			continue;
		if (fd == 3 && strstr(target, "memfd:tinyedge-ring"))
			continue;
		if ((fd == 4 || fd == 5) && !strcmp(target, "anon_inode:[eventfd]"))
			continue;
		r.escaped = true;
		note(&r, "(leaked)");
	}
	closedir(d);
	report("leaked_fds", &r);
}

static void try_exe(struct res *r, const char *path, int flags)
{
	char what[96];
	int fd = open(path, flags | O_CLOEXEC);

	snprintf(what, sizeof(what), "open(%s,%s)", path, flags == O_RDONLY ? "r" : "w");
	attempt(r, what, fd, fd >= 0 && (flags != O_RDONLY || is_daemon_exe(fd)));
	if (fd >= 0)
		close(fd);
}

static void probe_daemon_exe(void)
{
	struct res r = { 0 };
	char path[64], target[256];
	ssize_t n = readlink("/proc/1/exe", target, sizeof(target) - 1);

	target[n < 0 ? 0 : n] = '\0';
	note(&r, "/proc/1/exe->%s", target);
	try_exe(&r, "/proc/1/exe", O_RDONLY);
	try_exe(&r, "/proc/1/exe", O_WRONLY);
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)daemon_pid);
	try_exe(&r, path, O_RDONLY);
	if (have_exe)
		try_exe(&r, daemon_exe, O_WRONLY);
	else
		note(&r, "daemon-binary:not-visible");
	report("daemon_exe", &r);
}

/* Mount points of one filesystem type, from our mountinfo. */
static int mounts_of(const char *fstype, char mp[][256], int max)
{
	char line[1024], point[256], type[64];
	FILE *f = fopen("/proc/self/mountinfo", "r");
	int n = 0;
	char *sep;

	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		sep = strstr(line, " - ");
		if (!sep || sscanf(line, "%*s %*s %*s %*s %255s", point) != 1 ||
		    sscanf(sep + 3, "%63s", type) != 1)
			continue;
		if (!strcmp(type, fstype))
			snprintf(mp[n++], 256, "%s", point);
	}
	fclose(f);
	return n;
}

static void try_open_w(struct res *r, const char *path)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	attempt(r, path, fd, true);
	if (fd >= 0)
		close(fd);
}

static void try_mount(struct res *r, const char *what, const char *src,
		      const char *dst, const char *type, unsigned long fl, const char *data)
{
	if (attempt(r, what, mount(src, dst, type, fl, data), true))
		umount2(dst, MNT_DETACH);
}

static void probe_release_agent(void)
{
	static char mp[32][256];
	struct res r = { 0 };
	char path[1024];
	int n = mounts_of("cgroup", mp, 32);

	note(&r, "v1-mounts=%d", n);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/release_agent", mp[i]);
		if (access(path, F_OK) == 0)
			try_open_w(&r, path);
		snprintf(path, sizeof(path), "%s/notify_on_release", mp[i]);
		if (access(path, F_OK) == 0)
			try_open_w(&r, path);
	}
	mkdir("/tmp/te-probe-cg", 0700);
	try_mount(&r, "mount(cgroup,memory)", "cgroup", "/tmp/te-probe-cg", "cgroup", 0, "memory");
	try_mount(&r, "mount(cgroup,rdma)", "cgroup", "/tmp/te-probe-cg", "cgroup", 0, "rdma");
	try_mount(&r, "mount(cgroup,name=x)", "cgroup", "/tmp/te-probe-cg", "cgroup", 0,
		  "none,name=teprobe");
	try_mount(&r, "mount(cgroup2)", "cgroup2", "/tmp/te-probe-cg", "cgroup2", 0, NULL);
	report("cgroup_release_agent", &r);
}

static void probe_mount(void)
{
	struct res r = { 0 };
	long fd;

	mkdir("/tmp/te-probe-mnt", 0700);
	try_mount(&r, "mount(tmpfs)", "none", "/tmp/te-probe-mnt", "tmpfs", 0, NULL);
	try_mount(&r, "mount(proc)", "proc", "/tmp/te-probe-mnt", "proc", 0, NULL);
	try_mount(&r, "mount(bind /)", "/", "/tmp/te-probe-mnt", NULL, MS_BIND | MS_REC, NULL);
	attempt(&r, "remount(/,rw)", mount(NULL, "/", NULL, MS_REMOUNT, NULL), true);
	/* Under our /proc and /dev lie the host's: unmounting would show them. */
	attempt(&r, "umount(/proc)", umount2("/proc", MNT_DETACH), true);
	attempt(&r, "umount(/dev)", umount2("/dev", MNT_DETACH), true);
	fd = syscall(SYS_fsopen, "tmpfs", 0);
	attempt(&r, "fsopen(tmpfs)", fd, true);
	if (fd >= 0)
		close((int)fd);
	report("mount", &r);
}

/* In a child: a user namespace of our own, where we hold every capability
 * over what we create. Not an escape by itself (the locked mounts we
 * inherited stay locked: the host's /proc under ours stays hidden), but
 * kernel surface. Exit code: bit 0 unshare worked, bit 1 a tmpfs mount
 * worked, bit 2 /proc could be unmounted, bit 3 the daemon became visible. */
static int userns_child(void)
{
	char path[64];
	int got = 0;

	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
		return 0;
	got |= 1;
	if (mount("none", "/tmp", "tmpfs", 0, NULL) == 0)
		got |= 2;
	if (umount2("/proc", MNT_DETACH) == 0) {
		got |= 4;
		snprintf(path, sizeof(path), "/proc/%d", (int)daemon_pid);
		if (access(path, F_OK) == 0)
			got |= 8;
	}
	return got;
}

static void probe_userns(void)
{
	struct res r = { 0 };
	int st = 0;
	pid_t pid = fork();

	if (pid == 0)
		_exit(userns_child());
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st)) {
		attempt(&r, "fork", -1, false);
		report("userns_mount", &r);
		return;
	}
	st = WEXITSTATUS(st);
	note(&r, "unshare(user+mnt)=%s mount(tmpfs)=%s umount(/proc)=%s daemon-visible=%s",
	     st & 1 ? "ok" : "failed", st & 2 ? "ok" : "failed", st & 4 ? "ok" : "failed",
	     st & 8 ? "yes" : "no");
	r.surface = st & 1;
	r.escaped = st & 8;
	r.err = st & 1 ? 0 : EPERM;
	report("userns_mount", &r);
}

/* Exec a setuid-root program under PTRACE_TRACEME and look at what it got. */
static void try_setuid_exec(struct res *r)
{
	static const char *cands[] = { "/usr/bin/passwd", "/bin/su", "/usr/bin/su",
		"/bin/mount", "/usr/bin/mount", "/usr/bin/newgrp", "/usr/bin/chfn", NULL };
	const char *bin = NULL;
	char path[64], uid[128] = "?", cap[64] = "?";
	struct stat st;
	int ws;
	pid_t pid;

	for (int i = 0; cands[i] && !bin; i++)
		if (stat(cands[i], &st) == 0 && (st.st_mode & S_ISUID) && st.st_uid == 0)
			bin = cands[i];
	if (!bin) {
		note(r, "setuid-exec:no-setuid-binary-visible");
		return;
	}
	pid = fork();
	if (pid == 0) {
		ptrace(PTRACE_TRACEME, 0, NULL, NULL);
		execl(bin, bin, "--help", (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &ws, 0) < 0)
		return;
	if (WIFSTOPPED(ws)) {
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
		status_field(path, "Uid", uid, sizeof(uid));
		status_field(path, "CapEff", cap, sizeof(cap));
	}
	kill(pid, SIGKILL);
	waitpid(pid, &ws, 0);
	note(r, "setuid-exec(%s):Uid=[%s],CapEff=%s", bin, uid, cap);
	if (strcmp(cap, "?") && strtoull(cap, NULL, 16) != 0)
		r->escaped = true;
	/* effective uid (second field) 0 while ours is not */
	if (geteuid() != 0 && strchr(uid, '\t') && atoi(strchr(uid, '\t') + 1) == 0)
		r->escaped = true;
}

static void probe_ptrace(void)
{
	struct res r = { 0 };

	attempt(&r, "PTRACE_ATTACH(other)", ptrace(PTRACE_ATTACH, other_pid, NULL, NULL), true);
	attempt(&r, "PTRACE_SEIZE(other)", ptrace(PTRACE_SEIZE, other_pid, NULL, NULL), true);
	attempt(&r, "PTRACE_ATTACH(daemon)", ptrace(PTRACE_ATTACH, daemon_pid, NULL, NULL), true);
	try_setuid_exec(&r);
	report("ptrace", &r);
}

struct cap_hdr { uint32_t version; int pid; };
struct cap_data { uint32_t eff, perm, inh; };

static bool caps_nonzero(struct res *r, const char *when)
{
	char eff[64] = "?", prm[64] = "?", amb[64] = "?", nnp[16] = "?";

	status_field("/proc/self/status", "CapEff", eff, sizeof(eff));
	status_field("/proc/self/status", "CapPrm", prm, sizeof(prm));
	status_field("/proc/self/status", "CapAmb", amb, sizeof(amb));
	status_field("/proc/self/status", "NoNewPrivs", nnp, sizeof(nnp));
	note(r, "%s:CapEff=%s,CapPrm=%s,CapAmb=%s,NoNewPrivs=%s", when, eff, prm, amb, nnp);
	return strtoull(eff, NULL, 16) || strtoull(prm, NULL, 16) || strtoull(amb, NULL, 16) ||
	       strcmp(nnp, "1");
}

static void probe_capabilities(void)
{
	struct res r = { 0 };
	struct cap_hdr h = { 0x20080522, 0 };  /* _LINUX_CAPABILITY_VERSION_3 */
	struct cap_data d[2] = { { ~0u, ~0u, ~0u }, { ~0u, ~0u, ~0u } };
	long root_host = host_uid_of_root();
	gid_t g0 = 0;

	if (caps_nonzero(&r, "start"))
		r.escaped = true;
	attempt(&r, "capset(all)", syscall(SYS_capset, &h, d), true);
	attempt(&r, "ambient_raise(SYS_ADMIN)",
		prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN_NR, 0, 0), true);
	attempt(&r, "prctl(NO_NEW_PRIVS,0)", prctl(PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0), false);
	/* uid 0 of a user namespace that maps it to an unprivileged host uid
	 * is no gain: an escape only if it is the host's root. */
	note(&r, "ns-root-is-host-uid=%ld", root_host);
	attempt(&r, "setresuid(0)", setresuid(0, 0, 0), root_host == 0);
	attempt(&r, "setresgid(0)", setresgid(0, 0, 0), root_host == 0);
	attempt(&r, "setgroups(0)", setgroups(1, &g0), root_host == 0);
	if (caps_nonzero(&r, "end"))
		r.escaped = true;
	report("capabilities", &r);
}

static void try_tiocsti(struct res *r, const char *what, int fd)
{
	char c = '#';
	char w[64];

	snprintf(w, sizeof(w), "TIOCSTI(%s)", what);
	attempt(r, w, ioctl(fd, TIOCSTI, &c), true);
}

static void probe_tiocsti(void)
{
	static const char *ttys[] = { "/dev/tty", "/dev/console", "/dev/tty0", "/dev/tty1",
		"/dev/pts/0", "/dev/pts/1", "/dev/pts/2", NULL };
	struct res r = { 0 };
	char what[32];
	int fd;

	for (fd = 0; fd <= 5; fd++) {
		snprintf(what, sizeof(what), "fd%d", fd);
		try_tiocsti(&r, what, fd);
	}
	for (int i = 0; ttys[i]; i++) {
		fd = open(ttys[i], O_RDWR | O_NOCTTY | O_CLOEXEC);
		snprintf(what, sizeof(what), "open(%s)", ttys[i]);
		if (!attempt(&r, what, fd, false))
			continue;
		try_tiocsti(&r, ttys[i], fd);
		close(fd);
	}
	report("tiocsti", &r);
}

static void try_raise(struct res *r, const char *what, int res)
{
	struct rlimit rl;

	if (getrlimit(res, &rl) < 0 || rl.rlim_max == RLIM_INFINITY) {
		note(r, "%s:hard=unlimited", what);
		return;
	}
	rl.rlim_max++;
	rl.rlim_cur = rl.rlim_max;
	attempt(r, what, setrlimit(res, &rl), true);
}

static void try_cgroup_dir(struct res *r, const char *mp, const char *rel, int *tried)
{
	static const char *files[] = { "memory.limit_in_bytes", "memory.memsw.limit_in_bytes",
		"memory.max", "memory.high", "pids.max", "cpu.cfs_quota_us", "cpu.max",
		"cpu.shares", "cgroup.procs", NULL };
	char path[1024];

	for (int k = 0; files[k]; k++) {
		snprintf(path, sizeof(path), "%s%s/%s", mp, rel, files[k]);
		if (access(path, F_OK) == 0) {
			try_open_w(r, path);
			(*tried)++;
		}
	}
	/* the root's cgroup.procs: moving out leaves every limit behind */
	snprintf(path, sizeof(path), "%s/cgroup.procs", mp);
	if (access(path, F_OK) == 0) {
		try_open_w(r, path);
		(*tried)++;
	}
}

/* Our own cgroup's limit files, found from /proc/self/cgroup and the
 * mounts (a v1 mount point is named after its controllers). */
static void try_cgroup_files(struct res *r)
{
	static char v1[32][256], v2[8][256];
	char line[512], first[64];
	FILE *f = fopen("/proc/self/cgroup", "r");
	int n1 = mounts_of("cgroup", v1, 32), n2 = mounts_of("cgroup2", v2, 8), tried = 0;

	while (f && fgets(line, sizeof(line), f)) {
		char *ctl = strchr(line, ':'), *rel = ctl ? strchr(ctl + 1, ':') : NULL;
		const char *base;

		if (!rel)
			continue;
		*rel++ = '\0';
		rel[strcspn(rel, "\n")] = '\0';
		ctl++;
		if (!*ctl) {
			for (int i = 0; i < n2; i++)
				try_cgroup_dir(r, v2[i], rel, &tried);
			continue;
		}
		snprintf(first, sizeof(first), "%s", ctl);
		first[strcspn(first, ",")] = '\0';
		if (!strncmp(first, "name=", 5))
			memmove(first, first + 5, strlen(first + 5) + 1);
		for (int i = 0; i < n1; i++)
			if ((base = strrchr(v1[i], '/')) && strstr(base + 1, first))
				try_cgroup_dir(r, v1[i], rel, &tried);
	}
	if (f)
		fclose(f);
	note(r, "cgroup-files-tried=%d", tried);
}

static void probe_limits(void)
{
	struct res r = { 0 };
	struct rlimit big = { RLIM_INFINITY, RLIM_INFINITY };

	try_raise(&r, "setrlimit(NOFILE)", RLIMIT_NOFILE);
	try_raise(&r, "setrlimit(NPROC)", RLIMIT_NPROC);
	try_raise(&r, "setrlimit(AS)", RLIMIT_AS);
	try_raise(&r, "setrlimit(MEMLOCK)", RLIMIT_MEMLOCK);
	try_raise(&r, "setrlimit(STACK)", RLIMIT_STACK);
	attempt(&r, "prlimit(other)", prlimit(other_pid, RLIMIT_NOFILE, &big, NULL), true);
	attempt(&r, "prlimit(daemon)", prlimit(daemon_pid, RLIMIT_NOFILE, &big, NULL), true);
	try_cgroup_files(&r);
	report("limits", &r);
}

static void probe_devices(void)
{
	static const char *devs[] = { "/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg",
		"/dev/sda", "/dev/vda", "/dev/nvme0n1", "/dev/loop0", "/dev/loop-control",
		"/dev/fuse", "/dev/net/tun", NULL };
	struct res r = { 0 };
	int fd;

	if (attempt(&r, "mknod(c1:1)", mknod("/tmp/te-probe-mem", S_IFCHR | 0600,
					      makedev(1, 1)), true))
		unlink("/tmp/te-probe-mem");
	if (attempt(&r, "mknod(b8:0)", mknod("/tmp/te-probe-sda", S_IFBLK | 0600,
					      makedev(8, 0)), true))
		unlink("/tmp/te-probe-sda");
	for (int i = 0; devs[i]; i++) {
		fd = open(devs[i], O_RDWR | O_CLOEXEC);
		attempt(&r, devs[i], fd, true);
		if (fd >= 0)
			close(fd);
	}
	report("devices", &r);
}

/* Files the host would regret: opened for writing only, never written. */
static void probe_proc_writes(void)
{
	static const char *files[] = { "/proc/sysrq-trigger", "/proc/sys/kernel/core_pattern",
		"/proc/sys/kernel/modprobe", "/proc/sys/vm/drop_caches",
		"/sys/kernel/uevent_helper", NULL };
	struct res r = { 0 };

	for (int i = 0; files[i]; i++)
		if (access(files[i], F_OK) == 0 || errno != ENOENT)
			try_open_w(&r, files[i]);
		else
			note(&r, "%s=absent", files[i]);
	report("proc_writes", &r);
}

static void probe_signal(void)
{
	struct res r = { 0 };

	attempt(&r, "kill(other,0)", kill(other_pid, 0), true);
	attempt(&r, "kill(daemon,0)", kill(daemon_pid, 0), true);
	attempt(&r, "kill(-1,0)", kill(-1, 0), false);
	report("signal_others", &r);
}

/* The daemon's control socket and its store. */
static void probe_state_dir(void)
{
	struct res r = { 0 };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[512];
	struct dirent *e;
	DIR *d;
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control.sock", state_dir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	attempt(&r, "connect(control.sock)",
		fd < 0 ? -1 : connect(fd, (struct sockaddr *)&sa, sizeof(sa)), true);
	if (fd >= 0)
		close(fd);
	d = opendir(state_dir);
	attempt(&r, "opendir(state)", d ? 0 : -1, true);
	if (d) {
		while ((e = readdir(d))) {
			snprintf(path, sizeof(path), "%s/%s", state_dir, e->d_name);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0 && e->d_name[0] != '.')
				attempt(&r, path, fd, true);
			if (fd >= 0)
				close(fd);
		}
		closedir(d);
	}
	report("state_dir", &r);
}

static void on_term(int sig)
{
	(void)sig;
	_exit(0);
}

int main(int argc, char **argv)
{
	struct stat st;

	signal(SIGTERM, on_term);
	if (argc < 5) {
		fprintf(stderr, "usage: probe DAEMON_PID OTHER_PID DAEMON_EXE STATE_DIR\n");
		return 2;
	}
	daemon_pid = (pid_t)atoi(argv[1]);
	other_pid = (pid_t)atoi(argv[2]);
	daemon_exe = argv[3];
	state_dir = argv[4];
	if (stat(daemon_exe, &st) == 0) {
		exe_dev = st.st_dev;
		exe_ino = st.st_ino;
		have_exe = true;
	}
	if (fstat(3, &st) == 0)
		my_ring_ino = st.st_ino;
	/* First, before this process opens anything. */
	probe_leaked_fds();
	probe_other_ring();
	probe_daemon_mem();
	probe_daemon_exe();
	probe_release_agent();
	probe_mount();
	probe_userns();
	probe_ptrace();
	probe_capabilities();
	probe_tiocsti();
	probe_limits();
	probe_devices();
	probe_proc_writes();
	probe_signal();
	probe_state_dir();
	printf("{\"escapes\":%d,\"probes\":%d}\n", escapes, probes);
	fflush(stdout);
	for (;;)
		pause();
}
