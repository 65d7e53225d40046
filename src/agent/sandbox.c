/* Starting a module (sandbox.h): a plan built in the parent, executed by
 * the child between clone and exec.
 *
 * Parent: resolve ids, copy every path the child needs into one block,
 * list the steps in order, open the pipes and the sync socket, clone into
 * the namespaces (fork semantics: the child runs on a copy of our memory,
 * so the plan is simply there), and return.
 *
 * Child: run the steps, each a small named function returning 0 or -errno.
 * It must not allocate or take any libc lock: the clone is a raw syscall,
 * so no atfork handler ran and libc's thread bookkeeping (malloc arenas,
 * stdio locks, the thread list used by set*id broadcasts) is a stale copy.
 * Hence raw syscalls for the id and capability calls, which libc would
 * otherwise broadcast to "all threads" of a process that has only one. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "core/loop.h"
#include "sandbox_int.h"

/* musl has no <linux/capability.h>; the v3 ABI is stable. */
struct sb_cap_header {
	uint32_t version;
	int pid;
};

struct sb_cap_data {
	uint32_t effective, permitted, inheritable;
};

#define SB_CAP_V3 0x20080522
#define SB_CAP_MAX 63

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#endif
#ifndef PR_CAP_AMBIENT_RAISE
#define PR_CAP_AMBIENT_RAISE 2
#endif
#ifndef PR_CAP_AMBIENT_CLEAR_ALL
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

/* 16-bit id calls keep the plain names on 32-bit arm and i386. */
#ifdef SYS_setresuid32
#define SB_SYS_SETRESUID SYS_setresuid32
#define SB_SYS_SETRESGID SYS_setresgid32
#define SB_SYS_SETGROUPS SYS_setgroups32
#else
#define SB_SYS_SETRESUID SYS_setresuid
#define SB_SYS_SETRESGID SYS_setresgid
#define SB_SYS_SETGROUPS SYS_setgroups
#endif

#define SB_NOBODY 65534u
#define SB_FIXED_STEPS 25  /* the steps outside sb_plan_mounts */

/* ---- ids (parent) ------------------------------------------------------ */

/* A decimal id; (uint32_t)-1 is not one. */
static bool id_parse(const char *s, uint32_t *id)
{
	unsigned long long v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (unsigned)(*s - '0');
		if (v >= UINT32_MAX)
			return false;
	}
	*id = (uint32_t)v;
	return true;
}

/* Find a line of a passwd/group-style file whose first field is name (or,
 * with name NULL, whose third field is id). f[0] = third field, f[1] =
 * fourth. 0, -ENOENT (no such line) or -errno (cannot read). */
static int db_find(const char *path, const char *name, uint32_t id,
		   uint32_t f[2])
{
	char *line = NULL, *fld[4];
	size_t cap = 0;
	FILE *fp = fopen(path, "re");
	int r = -ENOENT;

	if (!fp)
		return -errno;
	while (r == -ENOENT && getline(&line, &cap, fp) > 0) {
		char *s = line;
		unsigned n;

		for (n = 0; n < 4 && s; n++)
			fld[n] = strsep(&s, ":\n");
		if (n < 3 || !id_parse(fld[2], &f[0]))
			continue;
		if (n < 4 || !id_parse(fld[3], &f[1]))
			f[1] = f[0];
		if (name ? strcmp(fld[0], name) == 0 : f[0] == id)
			r = 0;
	}
	free(line);
	fclose(fp);
	return r;
}

static int resolve_user(const char *user, uid_t *uid, gid_t *gid,
			char *err, size_t cap)
{
	uint32_t f[2];
	int r;

	if (!user) {
		/* The unprivileged default: "nobody", or the overflow ids. */
		r = db_find("/etc/passwd", "nobody", 0, f);
		*uid = r ? SB_NOBODY : f[0];
		*gid = r ? SB_NOBODY : f[1];
		return 0;
	}
	if (strcmp(user, "root") == 0) {
		*uid = *gid = 0;
		return 0;
	}
	if (id_parse(user, &f[0])) {
		/* without a passwd entry: gid = uid (not root's group) */
		*uid = f[0];
		*gid = db_find("/etc/passwd", NULL, f[0], f) ? *uid : f[1];
		return 0;
	}
	r = db_find("/etc/passwd", user, 0, f);
	if (r < 0) {
		snprintf(err, cap, "user %s: %s", user, r == -ENOENT ?
			 "not found in /etc/passwd" : strerror(-r));
		return -ENOENT;
	}
	*uid = f[0];
	*gid = f[1];
	return 0;
}

static int resolve_group(const char *group, gid_t *gid, char *err, size_t cap)
{
	uint32_t f[2];
	int r;

	if (strcmp(group, "root") == 0) {
		*gid = 0;
		return 0;
	}
	if (id_parse(group, &f[0])) {
		*gid = f[0];
		return 0;
	}
	r = db_find("/etc/group", group, 0, f);
	if (r < 0) {
		snprintf(err, cap, "group %s: %s", group, r == -ENOENT ?
			 "not found in /etc/group" : strerror(-r));
		return -ENOENT;
	}
	*gid = f[0];
	return 0;
}

int te_sandbox_resolve_group(const char *group, gid_t *gid, char *err, size_t cap)
{
	return resolve_group(group, gid, err, cap);
}

int te_sandbox_resolve_ids(const struct te_module_spec *spec, uid_t *uid,
			   gid_t *gid, char *err, size_t cap)
{
	int r = resolve_user(spec->user, uid, gid, err, cap);

	if (r == 0 && spec->group)
		r = resolve_group(spec->group, gid, err, cap);
	return r;
}

/* ---- child: helpers ---------------------------------------------------- */

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t i = 0;

	for (; src && src[i] && i + 1 < cap; i++)
		dst[i] = src[i];
	dst[i] = '\0';
}

/* Report the failed step on the sync socket and exit. */
static _Noreturn void child_fail(struct sb_plan *p, const struct sb_step *s,
				 int err)
{
	struct te_spawn_fail f;

	memset(&f, 0, sizeof(f));
	copy_str(f.step, sizeof(f.step), s->name);
	f.err = err;
	copy_str(f.detail, sizeof(f.detail), s->detail);
	send(p->sync_fd, &f, sizeof(f), MSG_NOSIGNAL);
	_exit(127);
}

struct sb_dirent64 {
	uint64_t ino;
	int64_t off;
	unsigned short reclen;
	unsigned char type;
	char name[];
};

/* Last resort: every number below the hard fd limit (an fd may sit above
 * a lowered soft limit; the hard one is bounded by fs.nr_open). */
static int close_below_limit(int from, int keep)
{
	struct { uint64_t cur, max; } rl;
	uint64_t fd;

	if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl) < 0)
		return -errno;
	for (fd = (uint64_t)from; fd < rl.max && fd < INT_MAX; fd++)
		if ((int)fd != keep)
			close((int)fd);
	return 0;
}

/* Kernels before 5.9 (no close_range): walk /proc/self/fd with getdents64
 * (opendir would allocate). fd numbers are the directory offsets, so
 * closing while walking skips nothing. */
static int close_from_proc(int from, int keep)
{
	char buf[1024] __attribute__((aligned(8)));
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	long n, i;

	if (dfd < 0)
		return close_below_limit(from, keep);
	while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
		for (i = 0; i < n; ) {
			struct sb_dirent64 *d = (struct sb_dirent64 *)(buf + i);
			const char *c = d->name;
			int fd = 0;

			for (; *c >= '0' && *c <= '9'; c++)
				fd = fd * 10 + (*c - '0');
			if (!*c && c != d->name && fd >= from && fd != keep &&
			    fd != dfd)
				close(fd);
			i += d->reclen;
		}
	}
	if (n < 0)
		n = -errno;
	close(dfd);
	return (int)n;
}

/* Close every fd >= from except keep (the sync socket). */
static int close_from(int from, int keep)
{
#ifdef SYS_close_range
	if (keep > from &&
	    syscall(SYS_close_range, from, keep - 1, 0) < 0 && errno != ENOSYS)
		return -errno;
	if (syscall(SYS_close_range, keep + 1, ~0U, 0) == 0)
		return 0;
	if (errno != ENOSYS)
		return -errno;
#endif
	return close_from_proc(from, keep);
}

/* ---- child: steps ------------------------------------------------------ */

/* User ns: wait until the parent has written our uid and gid maps (EOF:
 * the parent is gone, nobody to report to), then become the mapped root.
 * Until then our ids are the parent's global root, unmapped here: files
 * we create would fail with EOVERFLOW, and the daemon's supplementary
 * groups (root's group) would stay with the module. */
static int step_userns(struct sb_plan *p, struct sb_step *s)
{
	char go;
	ssize_t n;

	do
		n = recv(p->sync_fd, &go, 1, 0);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		_exit(127);
	if (n < 0 || syscall(SB_SYS_SETGROUPS, 0, NULL) < 0 ||
	    syscall(SB_SYS_SETRESGID, 0, 0, 0) < 0 ||
	    syscall(SB_SYS_SETRESUID, 0, 0, 0) < 0)
		return -errno;
	return 0;
}

static int step_cgroup(struct sb_plan *p, struct sb_step *s)
{
	return te_cgroup_join(p->ctx->cgroup);
}

static int step_signals(struct sb_plan *p, struct sb_step *s)
{
	te_loop_child_reset_signals();
	return 0;
}

/* Set, then check the parent did not die before it was set. In a new pid
 * ns getppid() is 0 (the parent is outside); there the parent's end of
 * the sync socket tells: its last copy closes when the parent dies (our
 * copy was closed first thing). Best effort: see PITFALLS. */
static int step_pdeathsig(struct sb_plan *p, struct sb_step *s)
{
	pid_t pp;
	char b;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		return -errno;
	pp = getppid();
	if (pp != 0 && pp != p->parent_pid)
		_exit(127);
	if (pp == 0 && recv(p->sync_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
		_exit(127);
	return 0;
}

static int step_setsid(struct sb_plan *p, struct sb_step *s)
{
	return setsid() < 0 ? -errno : 0;
}

static int step_hostname(struct sb_plan *p, struct sb_step *s)
{
	return sethostname(s->detail, strlen(s->detail)) < 0 ? -errno : 0;
}

/* Final layout 0..nfd-1 from fd_src. Sources may sit on target numbers
 * (the daemon's own stdio, a keep fd numbered 1): copy everything above
 * the layout first, then into place. dup2 clears FD_CLOEXEC on the
 * targets. The sync socket moves above the layout too and stays open
 * (close-on-exec) for the later steps. */
static int step_fds(struct sb_plan *p, struct sb_step *s)
{
	int tmp[SB_NFD], n = (int)p->nfd, i, sync;

	for (i = 0; i < n; i++)
		if ((tmp[i] = fcntl(p->fd_src[i], F_DUPFD_CLOEXEC, n)) < 0)
			return -errno;
	if ((sync = fcntl(p->sync_fd, F_DUPFD_CLOEXEC, n)) < 0)
		return -errno;
	p->sync_fd = sync;
	for (i = 0; i < n; i++)
		if (dup2(tmp[i], i) < 0)
			return -errno;
	return close_from(n, sync);
}

static int step_rlimit(struct sb_plan *p, struct sb_step *s)
{
	struct { uint64_t cur, max; } rl;

	rl.cur = rl.max = (uint64_t)p->spec->limits.nofile;
	if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &rl, NULL) < 0)
		return -errno;
	return 0;
}

static int step_chdir(struct sb_plan *p, struct sb_step *s)
{
	return chdir(s->detail) < 0 ? -errno : 0;
}

/* While still root in full: take every unlisted cap out of the bounding
 * set, so no later exec (setuid root, file caps) can regain it. */
static int step_bounding(struct sb_plan *p, struct sb_step *s)
{
	unsigned c;

	for (c = 0; c <= p->cap_last; c++) {
		if (p->caps & (1ull << c))
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
			return errno == EINVAL ? 0 : -errno;
	}
	return 0;
}

static int step_groups(struct sb_plan *p, struct sb_step *s)
{
	return syscall(SB_SYS_SETGROUPS, 0, NULL) < 0 ? -errno : 0;
}

static int step_setgid(struct sb_plan *p, struct sb_step *s)
{
	gid_t g = p->gid;

	return syscall(SB_SYS_SETRESGID, g, g, g) < 0 ? -errno : 0;
}

/* Leaving uid 0 empties the permitted set unless KEEPCAPS holds it for
 * the capset that follows (KEEPCAPS itself is cleared by execve). */
static int step_setuid(struct sb_plan *p, struct sb_step *s)
{
	uid_t u = p->uid;

	if (!p->root && p->caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return -errno;
	return syscall(SB_SYS_SETRESUID, u, u, u) < 0 ? -errno : 0;
}

/* permitted = effective = inheritable = the listed caps. For root that is
 * what execve keeps (its new permitted set is inheritable | bounding);
 * a non-root user keeps them through the ambient set. */
static int step_caps(struct sb_plan *p, struct sb_step *s)
{
	struct sb_cap_header h = { .version = SB_CAP_V3, .pid = 0 };
	struct sb_cap_data d[2];
	unsigned i;

	for (i = 0; i < 2; i++) {
		d[i].effective = (uint32_t)(p->caps >> (32 * i));
		d[i].permitted = d[i].inheritable = d[i].effective;
	}
	if (syscall(SYS_capset, &h, d) < 0)
		return -errno;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 &&
	    errno != EINVAL)
		return -errno;
	return 0;
}

static int step_ambient(struct sb_plan *p, struct sb_step *s)
{
	unsigned c;

	for (c = 0; c <= p->cap_last; c++)
		if ((p->caps & (1ull << c)) &&
		    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
			return -errno;
	return 0;
}

static int step_nnp(struct sb_plan *p, struct sb_step *s)
{
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ? -errno : 0;
}

/* One byte on the sync socket before exec: 'N' with the seccomp
 * listener (SCM_RIGHTS), or 'E' when the kernel has none (denials answer
 * EPERM uncounted). */
static int send_listener(int sock, int fd)
{
	char c = fd >= 0 ? 'N' : 'E';
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	memset(&u, 0, sizeof(u));
	if (fd >= 0) {
		mh.msg_control = u.b;
		mh.msg_controllen = sizeof(u.b);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

/* Last before exec (it needs no_new_privs). The listener goes to the
 * daemon and is closed here: the module must not answer for itself. */
static int step_seccomp(struct sb_plan *p, struct sb_step *s)
{
	int fd, r = te_seccomp_install(p->bpf, p->nbpf, &fd);

	if (r < 0)
		return r;
	if (!p->spec->seccomp_kill)
		r = send_listener(p->sync_fd, fd);
	if (fd >= 0)
		close(fd);
	return r;
}

/* Returns only on failure; success closes the sync socket (EOF). */
static int step_exec(struct sb_plan *p, struct sb_step *s)
{
	static char *const none[] = { NULL };

	execve(p->spec->image, p->argv,
	       p->ctx->env ? (char *const *)p->ctx->env : none);
	return -errno;
}

static _Noreturn void child_run(struct sb_plan *p)
{
	unsigned i;
	int r;

	close(p->parent_sync);
	for (i = 0; i < p->nstep; i++)
		if ((r = p->step[i].fn(p, &p->step[i])) < 0)
			child_fail(p, &p->step[i], -r);
	_exit(127); /* the last step is exec */
}

/* ---- parent: the plan -------------------------------------------------- */

struct sb_step *sb_plan_add(struct sb_plan *p, const char *name, sb_fn fn,
			    const char *detail)
{
	struct sb_step *s = &p->step[p->nstep++];

	/* maxstep is computed from the spec: overflow is a bug here */
	if (p->nstep > p->maxstep)
		abort();
	memset(s, 0, sizeof(*s));
	s->name = name;
	s->fn = fn;
	s->detail = detail;
	s->isrc = -1;
	return s;
}

char *sb_plan_path(struct sb_plan *p, const char *prefix, const char *path)
{
	size_t a = strlen(prefix), b = strlen(path);
	char *d = p->pool;

	if (a + b >= PATH_MAX || a + b + 1 > p->pool_left)
		return NULL;
	memcpy(d, prefix, a);
	memcpy(d + a, path, b + 1);
	p->pool += a + b + 1;
	p->pool_left -= a + b + 1;
	return d;
}

/* One block: plan, steps, sources, argv, path pool. */
static struct sb_plan *plan_alloc(const struct te_spawn_ctx *ctx)
{
	const struct te_module_spec *sp = ctx->spec;
	unsigned nsrc = sb_mount_max_srcs(sp);
	unsigned maxstep = SB_FIXED_STEPS + sb_mount_max_steps(sp);
	size_t pool = sb_mount_pool_bytes(sp);
	unsigned nbpf = te_seccomp_max_insns(sp);
	size_t size = sizeof(struct sb_plan) + maxstep * sizeof(struct sb_step) +
		      nsrc * sizeof(struct sb_src) + nbpf * sizeof(struct te_bpf) +
		      (sp->nargs + 2) * sizeof(char *) + pool;
	struct sb_plan *p = calloc(1, size);

	if (!p)
		return NULL;
	p->ctx = ctx;
	p->spec = sp;
	p->maxstep = maxstep;
	p->step = (struct sb_step *)(p + 1);
	p->src = (struct sb_src *)(p->step + maxstep);
	p->bpf = (struct te_bpf *)(p->src + nsrc);
	p->nbpf = nbpf;  /* capacity until plan_seccomp */
	p->argv = (char **)(p->bpf + nbpf);
	p->pool = (char *)(p->argv + sp->nargs + 2);
	p->pool_left = pool;
	return p;
}

/* Every step, in order. Identity comes late: the mounts and the bounding
 * set need root's capabilities. */
static int plan_steps(struct sb_plan *p)
{
	const struct te_module_spec *sp = p->spec;
	unsigned ns = sp->namespaces;
	int r;

	if (ns & TE_NS_USER)
		sb_plan_add(p, "enter user namespace", step_userns, "");
	if (p->ctx->cgroup)
		sb_plan_add(p, "join cgroup", step_cgroup, sp->name);
	sb_plan_add(p, "reset signals", step_signals, "");
	sb_plan_add(p, "set parent death signal", step_pdeathsig, "");
	sb_plan_add(p, "setsid", step_setsid, "");
	if (ns & TE_NS_UTS)
		sb_plan_add(p, "set hostname", step_hostname, sp->name);
	if ((ns & TE_NS_MOUNT) && (r = sb_plan_mounts(p)) < 0)
		return r;
	sb_plan_add(p, "set up fds", step_fds, "");
	if (sp->limits.nofile >= 0)
		sb_plan_add(p, "set nofile limit", step_rlimit, p->nofile_str);
	sb_plan_add(p, "chdir", step_chdir, sp->workdir ? sp->workdir : "/");
	sb_plan_add(p, "drop bounding capabilities", step_bounding, p->caps_str);
	sb_plan_add(p, "setgroups", step_groups, p->gid_str);
	sb_plan_add(p, "setgid", step_setgid, p->gid_str);
	sb_plan_add(p, "setuid", step_setuid, p->uid_str);
	sb_plan_add(p, "set capabilities", step_caps, p->caps_str);
	if (!p->root && p->caps)
		sb_plan_add(p, "raise ambient capabilities", step_ambient,
			    p->caps_str);
	sb_plan_add(p, "set no_new_privs", step_nnp, "");
	if (p->nbpf)
		sb_plan_add(p, "install seccomp filter", step_seccomp, "");
	sb_plan_add(p, "exec", step_exec, sp->image);
	return 0;
}

/* Highest capability number of the running kernel. */
static unsigned cap_last(void)
{
	unsigned v = SB_CAP_MAX;
	FILE *fp = fopen("/proc/sys/kernel/cap_last_cap", "re");

	if (fp) {
		if (fscanf(fp, "%u", &v) != 1 || v > SB_CAP_MAX)
			v = SB_CAP_MAX;
		fclose(fp);
	}
	return v;
}

/* Ids, capabilities and their printed forms (the failure details). */
static int plan_ids(struct sb_plan *p, char *err, size_t cap)
{
	const struct te_module_spec *sp = p->spec;
	uid_t uid;
	gid_t gid;
	int r = te_sandbox_resolve_ids(sp, &uid, &gid, err, cap);

	if (r < 0)
		return r;
	p->cap_last = cap_last();
	p->caps = sp->capabilities;
	if (p->cap_last < SB_CAP_MAX && (p->caps >> (p->cap_last + 1))) {
		snprintf(err, cap, "capability %d unknown to this kernel",
			 63 - __builtin_clzll(p->caps));
		return -EINVAL;
	}
	/* in a user ns the module is root, mapped to uid:gid outside */
	p->host_uid = uid;
	p->host_gid = gid;
	p->uid = sp->namespaces & TE_NS_USER ? 0 : uid;
	p->gid = sp->namespaces & TE_NS_USER ? 0 : gid;
	p->root = p->uid == 0;
	snprintf(p->uid_str, sizeof(p->uid_str), "%u", (unsigned)p->uid);
	snprintf(p->gid_str, sizeof(p->gid_str), "%u", (unsigned)p->gid);
	snprintf(p->nofile_str, sizeof(p->nofile_str), "%" PRId64,
		 sp->limits.nofile);
	snprintf(p->caps_str, sizeof(p->caps_str), "0x%" PRIx64, p->caps);
	return 0;
}

static void plan_argv(struct sb_plan *p)
{
	const struct te_module_spec *sp = p->spec;
	unsigned i;

	p->argv[0] = (char *)sp->image;
	for (i = 0; i < sp->nargs; i++)
		p->argv[i + 1] = (char *)sp->args[i];
	p->argv[sp->nargs + 1] = NULL;
}

/* ---- parent: fds and clone --------------------------------------------- */

struct sb_fds {
	int sync[2];      /* [0] the parent's end, [1] the child's */
	int in[2], out[2], err[2], notify[2];  /* pipes: [0] read, [1] write */
	int devnull;
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void fds_close_child_ends(struct sb_fds *f)
{
	close_fd(&f->sync[1]);
	close_fd(&f->in[0]);
	close_fd(&f->out[1]);
	close_fd(&f->err[1]);
	close_fd(&f->notify[1]);
	close_fd(&f->devnull);
}

static void fds_close_all(struct sb_fds *f)
{
	fds_close_child_ends(f);
	close_fd(&f->sync[0]);
	close_fd(&f->in[1]);
	close_fd(&f->out[0]);
	close_fd(&f->err[0]);
	close_fd(&f->notify[0]);
}

/* Both ends close-on-exec; the parent's end (mine) also non-blocking. */
static int open_pipe(int fd[2], int mine)
{
	if (pipe2(fd, O_CLOEXEC) < 0)
		return -errno;
	if (fcntl(fd[mine], F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static int fds_open(const struct te_spawn_ctx *ctx, struct sb_fds *f,
		    char *err, size_t cap)
{
	int r = 0;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, f->sync) < 0)
		r = -errno;
	if (!r)
		r = open_pipe(f->out, 0);
	if (!r)
		r = open_pipe(f->err, 0);
	if (!r && ctx->stdin_pipe)
		r = open_pipe(f->in, 1);
	if (!r && !ctx->stdin_pipe &&
	    (f->devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		r = -errno;
	if (!r && ctx->want_notify)
		r = open_pipe(f->notify, 0);
	if (r)
		snprintf(err, cap, "pipes: %s", strerror(-r));
	return r;
}

static void plan_fds(struct sb_plan *p, const struct sb_fds *f)
{
	const struct te_spawn_ctx *ctx = p->ctx;
	unsigned i;

	p->fd_src[0] = ctx->stdin_pipe ? f->in[0] : f->devnull;
	p->fd_src[1] = f->out[1];
	p->fd_src[2] = f->err[1];
	p->nfd = 3;
	for (i = 0; i < ctx->nkeep; i++)
		p->fd_src[p->nfd++] = ctx->keep_fds[i];
	if (ctx->want_notify)
		p->fd_src[p->nfd++] = f->notify[1];
	p->sync_fd = f->sync[1];
	p->parent_sync = f->sync[0];
}

static int write_proc(pid_t pid, const char *file, const char *text)
{
	char path[64];
	size_t n = strlen(text);
	int fd, r = 0;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (write(fd, text, n) != (ssize_t)n)
		r = -errno;
	close(fd);
	return r;
}

/* Map uid 0 of the child's user ns to the module's user, then let it go
 * on. /proc/<pid>/setgroups stays "allow" (we are privileged, so the
 * kernel does not demand "deny"): the child needs setgroups to shed the
 * daemon's supplementary groups, and only gid 0 -> gid is mapped, so it
 * can gain none. */
static int userns_map(const struct sb_plan *p, pid_t pid, int sync,
		      char *err, size_t cap)
{
	char map[48];
	const char *what = "uid_map";
	int r;

	snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)p->host_uid);
	r = write_proc(pid, what, map);
	if (!r) {
		snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)p->host_gid);
		r = write_proc(pid, what = "gid_map", map);
	}
	if (!r && send(sync, "g", 1, MSG_NOSIGNAL) != 1)
		r = -errno, what = "sync socket";
	if (r)
		snprintf(err, cap, "user namespace: %s: %s", what,
			 strerror(-r));
	return r;
}

static unsigned long clone_flags(unsigned ns)
{
	unsigned long fl = SIGCHLD;

	fl |= ns & TE_NS_PID ? CLONE_NEWPID : 0;
	fl |= ns & TE_NS_MOUNT ? CLONE_NEWNS : 0;
	fl |= ns & TE_NS_UTS ? CLONE_NEWUTS : 0;
	fl |= ns & TE_NS_IPC ? CLONE_NEWIPC : 0;
	fl |= ns & TE_NS_NET ? CLONE_NEWNET : 0;
	fl |= ns & TE_NS_USER ? CLONE_NEWUSER : 0;
	return fl;
}

/* Fork semantics (no stack argument), straight into the namespaces. The
 * other arguments are NULL, so their per-architecture order is moot. */
static int spawn_clone(struct sb_plan *p, const struct sb_fds *f, pid_t *pid,
		       char *err, size_t cap)
{
	long ret;
	int r = 0;

	p->parent_pid = getpid();
	ret = syscall(SYS_clone, clone_flags(p->spec->namespaces), NULL, NULL,
		      NULL, NULL);
	if (ret == 0)
		child_run(p);
	if (ret < 0) {
		r = -errno;
		snprintf(err, cap, "clone: %s", strerror(-r));
		return r;
	}
	*pid = (pid_t)ret;
	if (p->spec->namespaces & TE_NS_USER)
		r = userns_map(p, *pid, f->sync[0], err, cap);
	if (r) {
		kill(*pid, SIGKILL);
		while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	return r;
}

static int spawn_check(const struct te_spawn_ctx *ctx, char *err, size_t cap)
{
	const struct te_module_spec *sp = ctx->spec;
	unsigned i;

	if (ctx->nkeep > TE_SPAWN_MAX_FDS) {
		snprintf(err, cap, "%u fds to pass, at most %d", ctx->nkeep,
			 TE_SPAWN_MAX_FDS);
		return -EINVAL;
	}
	for (i = 0; i < ctx->nkeep; i++) {
		if (fcntl(ctx->keep_fds[i], F_GETFD) < 0) {
			snprintf(err, cap, "fd %d to pass: %s",
				 ctx->keep_fds[i], strerror(errno));
			return -EBADF;
		}
	}
	if ((sp->rootfs || sp->nmounts) && !(sp->namespaces & TE_NS_MOUNT)) {
		snprintf(err, cap, "rootfs and mounts need the mount "
			 "namespace");
		return -EINVAL;
	}
	return 0;
}

static int plan_seccomp(struct sb_plan *p, char *err, size_t cap)
{
	int n = te_seccomp_build(p->spec, p->bpf, p->nbpf);

	if (n == -ENOTSUP)
		snprintf(err, cap, "seccomp: no profile for this architecture "
			 "(createOptions.seccomp \"unconfined\" runs without)");
	else if (n < 0)
		snprintf(err, cap, "seccomp: %s", strerror(-n));
	p->nbpf = n < 0 ? 0 : (unsigned)n;
	return n < 0 ? n : 0;
}

static int spawn_plan(struct sb_plan *p, struct sb_fds *f, char *err,
		      size_t cap)
{
	int r = plan_ids(p, err, cap);

	if (!r)
		r = plan_seccomp(p, err, cap);

	if (!r)
		r = fds_open(p->ctx, f, err, cap);
	if (r)
		return r;
	plan_fds(p, f);
	plan_argv(p);
	if ((r = plan_steps(p)) < 0)
		snprintf(err, cap, "a mount path is longer than %d",
			 PATH_MAX - 1);
	return r;
}

int te_sandbox_spawn(const struct te_spawn_ctx *ctx, struct te_spawn *sp,
		     char *err, size_t cap)
{
	struct sb_fds f = { { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 },
			    { -1, -1 }, -1 };
	struct sb_plan *p;
	pid_t pid = -1;
	int r;

	if (cap)
		err[0] = '\0';
	if ((r = spawn_check(ctx, err, cap)) < 0)
		return r;
	if (!(p = plan_alloc(ctx))) {
		snprintf(err, cap, "out of memory");
		return -ENOMEM;
	}
	r = spawn_plan(p, &f, err, cap);
	if (!r)
		r = spawn_clone(p, &f, &pid, err, cap);
	free(p);
	if (r) {
		fds_close_all(&f);
		return r;
	}
	fds_close_child_ends(&f);
	*sp = (struct te_spawn){ .pid = pid, .sync_fd = f.sync[0],
				 .in_fd = f.in[1], .out_fd = f.out[0],
				 .err_fd = f.err[0], .notify_fd = f.notify[0] };
	return 0;
}

/* The fd an SCM_RIGHTS message carried, or -1 (any other closed). */
static int msg_fd(struct msghdr *mh)
{
	struct cmsghdr *cm;
	int fd = -1, x;

	for (cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; CMSG_LEN((i + 1) * sizeof(int)) <= cm->cmsg_len; i++) {
			memcpy(&x, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (fd < 0)
				fd = x;
			else
				close(x);
		}
	}
	return fd;
}

int te_sandbox_result_fd(int sync_fd, struct te_spawn_fail *f, int *listener)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = { .iov_base = f, .iov_len = sizeof(*f) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.b, .msg_controllen = sizeof(u.b) };
	ssize_t n;
	int fd;

	do
		n = recvmsg(sync_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	fd = msg_fd(&mh);
	if (n == 1 && ((char *)f)[0] == (fd >= 0 ? 'N' : 'E')) {
		if (listener)
			*listener = fd;
		else if (fd >= 0)
			close(fd);
		return 2;
	}
	if (fd >= 0)
		close(fd);
	if (n == 0)
		return 0;
	if ((size_t)n != sizeof(*f))
		return -EPROTO;
	f->step[sizeof(f->step) - 1] = '\0';
	f->detail[sizeof(f->detail) - 1] = '\0';
	return 1;
}

int te_sandbox_result(int sync_fd, struct te_spawn_fail *f)
{
	int r;

	while ((r = te_sandbox_result_fd(sync_fd, f, NULL)) == 2)
		;
	return r;
}

void te_sandbox_close(struct te_spawn *sp)
{
	close_fd(&sp->sync_fd);
	close_fd(&sp->in_fd);
	close_fd(&sp->out_fd);
	close_fd(&sp->err_fd);
	close_fd(&sp->notify_fd);
}
