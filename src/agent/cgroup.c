/* cgroups for modules (cgroup.h).
 *
 * Directories. cg->root[i] is the instance directory that holds
 * controller i's module directories. In v1 each controller has its own;
 * controllers mounted together (cpu,cpuacct style) share one, and in v2
 * all share one. A directory is "owned" by the first controller index
 * naming it, so each is made, joined and removed exactly once. The member
 * directory (pids if present) is the one whose cgroup.procs says which
 * processes belong to a module.
 *
 * Nothing here allocates after te_cgroups_init except
 * te_cgroups_reap_stale (opendir), which runs once at daemon start; paths
 * are built in PATH_MAX buffers on the stack.
 *
 * Killing. A module's processes need not be our children (grandchildren
 * are reparented to the daemon, the subreaper); the caller reaps what is
 * ours, so nothing here waits for a child. Without cgroup.kill, pids are
 * read from cgroup.procs and signalled by number, so a listed process
 * could exit and its pid be reused before kill() reaches it. Freezing
 * first stops listed processes from exiting or forking in between; with
 * no freezer the window is one read and one kill(). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "core/err.h"
#include "cgroup.h"

#define CG_POLLS 100        /* rounds while waiting for a cgroup to empty */
#define CG_POLL_MS 10
#define CG_FREEZE_POLLS 10  /* 1 ms each, waiting for a freeze to settle */
#define CG_RMDIR_TRIES 5    /* 2 ms apart */
#define CG_SEEN_MAX 128     /* distinct pids remembered per kill */
#define CG_CPU_PERIOD 100000
#define CG_V2 TE_CG_NCTRL   /* the unified hierarchy's slot in cg_scan */

/* Controller names; a v1 one can take limits when its dir has probe. */
static const struct { const char *name, *probe; } cg_ctrl[TE_CG_NCTRL] = {
	[TE_CG_MEMORY] = { "memory", "memory.limit_in_bytes" },
	[TE_CG_PIDS] = { "pids", "pids.max" },
	[TE_CG_CPU] = { "cpu", "cpu.cfs_quota_us" },
	[TE_CG_FREEZER] = { "freezer", "freezer.state" },
	[TE_CG_CPUACCT] = { "cpuacct", "cpuacct.usage" },
};

/* Detection: per hierarchy, the daemon's own cgroup ("" = unknown). */
struct cg_scan {
	char own[TE_CG_NCTRL + 1][PATH_MAX]; /* as /proc/self/cgroup says */
	char dir[TE_CG_NCTRL + 1][PATH_MAX]; /* that cgroup under a mount */
};

/* One kill: pids signalled, each counted once. */
struct cg_kill {
	pid_t seen[CG_SEEN_MAX];
	unsigned nseen, signalled;
	bool dry; /* count only: cgroup.kill does the killing */
};

/* ---- helpers ------------------------------------------------------------- */

__attribute__((format(printf, 3, 4)))
static void errf(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (!err || !cap)
		return;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)ms * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* A path into a PATH_MAX buffer. 0 or -ENAMETOOLONG. */
__attribute__((format(printf, 2, 3)))
static int path_fmt(char *out, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, PATH_MAX, fmt, ap);
	va_end(ap);
	return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* root[i]/module, or root[i]/module/file. -ENOENT without that root. */
static int mod_path(const struct te_cgroups *cg, int i, const char *module,
		    const char *file, char *out)
{
	if (i < 0 || !cg->root[i][0])
		return -ENOENT;
	if (!file)
		return path_fmt(out, "%s/%s", cg->root[i], module);
	return path_fmt(out, "%s/%s/%s", cg->root[i], module, file);
}

static bool exists(const char *dir, const char *name)
{
	char path[PATH_MAX];

	return !path_fmt(path, "%s/%s", dir, name) && access(path, F_OK) == 0;
}

/* A small file into buf, NUL-terminated, trailing whitespace cut.
 * Length or -errno. */
static int file_read(const char *path, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (len < cap - 1 &&
	       ((n = read(fd, buf + len, cap - 1 - len)) > 0 || (n < 0 && errno == EINTR)))
		len += n > 0 ? (size_t)n : 0;
	n = n < 0 ? -errno : 0;
	close(fd);
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		len--;
	buf[len] = '\0';
	return n < 0 ? (int)n : (int)len;
}

/* One write(2): a cgroup file takes one value per write. 0 or -errno. */
static int file_write(const char *path, const char *s)
{
	size_t len = strlen(s);
	ssize_t n;
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while ((n = write(fd, s, len)) < 0 && errno == EINTR)
		;
	n = n < 0 ? -errno : (size_t)n == len ? 0 : -EIO;
	close(fd);
	return (int)n;
}

/* N of the "key N" line of a flat keyed file (memory.events,
 * memory.oom_control, cgroup.events). 0 or -errno / -ENOENT. */
static int file_key(const char *path, const char *key, long long *val)
{
	char buf[1024], *line, *save = NULL;
	size_t klen = strlen(key);
	int n = file_read(path, buf, sizeof(buf));

	for (line = n < 0 ? NULL : strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
			*val = strtoll(line + klen + 1, NULL, 10);
			return 0;
		}
	}
	return n < 0 ? n : -ENOENT;
}

/* Is word an element of list (elements separated by any of seps)? */
static bool has_word(const char *list, const char *word, const char *seps)
{
	size_t wlen = strlen(word), n;

	for (list += strspn(list, seps); *list; list += strspn(list, seps)) {
		n = strcspn(list, seps);
		if (n == wlen && strncmp(list, word, n) == 0)
			return true;
		list += n;
	}
	return false;
}

static bool cg_owned(const struct te_cgroups *cg, int i)
{
	int j;

	for (j = 0; j < i; j++)
		if (strcmp(cg->root[j], cg->root[i]) == 0)
			return false;
	return cg->root[i][0] != '\0';
}

/* The membership directory's index, or -1 with no cgroups at all. */
static int cg_member(const struct te_cgroups *cg)
{
	static const int order[] = { TE_CG_PIDS, TE_CG_MEMORY, TE_CG_FREEZER,
				     TE_CG_CPU, TE_CG_CPUACCT };
	unsigned k;

	for (k = 0; k < sizeof(order) / sizeof(order[0]); k++)
		if (cg->root[order[k]][0])
			return order[k];
	return -1;
}

/* 0 also when already gone. Zombies do not keep a cgroup busy on current
 * kernels; a process still exiting may, for a moment. */
static int rmdir_retry(const char *path)
{
	int i;

	for (i = 0; i < CG_RMDIR_TRIES; i++) {
		if (rmdir(path) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -errno;
		sleep_ms(2);
	}
	return -EBUSY;
}

/* ---- detection ----------------------------------------------------------- */

typedef void cg_line_fn(char *line, struct cg_scan *s);

/* fn on each line of a proc file. A line longer than the buffer (huge
 * overlay mount options) is skipped, never cut. 0 or -errno. */
static int each_line(const char *path, cg_line_fn *fn, struct cg_scan *s)
{
	char buf[4096], *start, *nl;
	size_t len = 0;
	bool skip = false;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0 ||
	       (n < 0 && errno == EINTR)) {
		len += n > 0 ? (size_t)n : 0;
		for (start = buf; (nl = memchr(start, '\n', len - (size_t)(start - buf)));
		     start = nl + 1) {
			*nl = '\0';
			if (!skip)
				fn(start, s);
			skip = false;
		}
		len -= (size_t)(start - buf);
		memmove(buf, start, len);
		if (len == sizeof(buf) - 1) {
			skip = true;
			len = 0;
		}
	}
	n = n < 0 ? -errno : 0;
	close(fd);
	return (int)n;
}

/* "ID:ctrl,ctrl:/path"; the v2 line has no controllers. */
static void proc_cgroup_line(char *line, struct cg_scan *s)
{
	char *ctrls = strchr(line, ':'), *path;
	int i;

	if (!ctrls || !(path = strchr(++ctrls, ':')))
		return;
	*path++ = '\0';
	for (i = 0; i <= CG_V2 && strlen(path) < PATH_MAX; i++)
		if (i == CG_V2 ? !*ctrls : has_word(ctrls, cg_ctrl[i].name, ","))
			strcpy(s->own[i], path);
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *d = s;

	for (; *s; s++, d++) {
		*d = *s;
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + s[3] - '0');
			s += 3;
		}
	}
	*d = '\0';
}

/* Where the daemon's own cgroup is under a mount showing the subtree at
 * mroot (own must lie inside it). The first usable mount wins. */
static void own_dir(struct cg_scan *s, int i, const char *mnt,
		    const char *mroot)
{
	const char *rel = s->own[i];
	size_t rlen = strlen(mroot);

	if (s->dir[i][0] || !rel[0])
		return;
	if (strcmp(mroot, "/") != 0) {
		if (strncmp(rel, mroot, rlen) != 0 ||
		    (rel[rlen] != '/' && rel[rlen] != '\0'))
			return;
		rel += rlen;
	}
	if (path_fmt(s->dir[i], "%s%s", mnt, strcmp(rel, "/") ? rel : ""))
		s->dir[i][0] = '\0';
}

/* "id parent maj:min root mountpoint opts [tags] - fstype source super" */
static void mountinfo_line(char *line, struct cg_scan *s)
{
	char *f[6], *tail = strstr(line, " - "), *fstype, *super, *save = NULL;
	int i, n = 0;

	if (!tail)
		return;
	*tail = '\0';
	for (f[0] = strtok_r(line, " ", &save); f[n] && n < 5;)
		f[++n] = strtok_r(NULL, " ", &save);
	fstype = strtok_r(tail + 3, " ", &save);
	if (n < 5 || !f[4] || !fstype || !strtok_r(NULL, " ", &save))
		return;
	super = strtok_r(NULL, " ", &save);
	unescape(f[3]);
	unescape(f[4]);
	if (strcmp(fstype, "cgroup2") == 0)
		own_dir(s, CG_V2, f[4], f[3]);
	for (i = 0; i < TE_CG_NCTRL && super && !strcmp(fstype, "cgroup"); i++)
		if (has_word(super, cg_ctrl[i].name, ","))
			own_dir(s, i, f[4], f[3]);
}

/* Enable a controller in dir/cgroup.subtree_control unless it is. */
static int v2_enable(const char *dir, const char *ctrl)
{
	char path[PATH_MAX], buf[256], op[32];
	int err = path_fmt(path, "%s/cgroup.subtree_control", dir);

	if (err)
		return err;
	if (file_read(path, buf, sizeof(buf)) >= 0 && has_word(buf, ctrl, " "))
		return 0;
	snprintf(op, sizeof(op), "+%s", ctrl);
	return file_write(path, op);
}

static int mkdir_ok(const char *path)
{
	return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -errno;
}

/* Does a failed mkdir mean "no cgroups for us" rather than a fault? */
static bool denied(int err)
{
	return err == -EACCES || err == -EPERM || err == -EROFS;
}

/* v2 when the daemon's cgroup offers memory and pids and they can be
 * enabled on the way down. Enabling in the daemon's own cgroup fails with
 * EBUSY when it holds processes (no internal processes) unless it is the
 * root. 0 = mode set; 1 = not offered, 2 = offered but unusable (why in
 * note); -errno = a mkdir that should work failed (note). */
static int v2_setup(struct te_cgroups *cg, const char *own, char *note,
		    size_t cap)
{
	char path[PATH_MAX], buf[256], inst[PATH_MAX];
	const char *at = own;
	bool cpu;
	int err, i;

	if (path_fmt(path, "%s/cgroup.controllers", own) ||
	    file_read(path, buf, sizeof(buf)) < 0 ||
	    !has_word(buf, "memory", " ") || !has_word(buf, "pids", " ")) {
		errf(note, cap, "cgroup v2 %s: memory and pids not offered", own);
		return 1;
	}
	cpu = has_word(buf, "cpu", " ");
	if ((err = v2_enable(own, "memory")) || (err = v2_enable(own, "pids")))
		goto fail;
	cpu = cpu && v2_enable(own, "cpu") == 0;
	if ((err = path_fmt(inst, "%s/%s", own, cg->instance)) || (err = mkdir_ok(inst))) {
		errf(note, cap, "mkdir %s: %s", inst, strerror(-err));
		return denied(err) ? 2 : err;
	}
	at = inst;
	if ((err = v2_enable(inst, "memory")) || (err = v2_enable(inst, "pids")))
		goto fail;
	cpu = cpu && v2_enable(inst, "cpu") == 0;
	/* cpu.stat's usage_usec is there with or without the cpu controller. */
	for (i = 0; i < TE_CG_NCTRL; i++) {
		cg->have[i] = i == TE_CG_FREEZER ? exists(inst, "cgroup.freeze")
						 : i != TE_CG_CPU || cpu;
		if (cg->have[i])
			strcpy(cg->root[i], inst);
	}
	cg->has_kill = exists(inst, "cgroup.kill");
	cg->mode = TE_CG_V2;
	return 0;
fail:
	errf(note, cap, "cgroup v2: enabling memory and pids in %s/cgroup.subtree_control: %s",
	     at, strerror(-err));
	if (at == inst)
		rmdir(inst);
	return 2;
}

/* v1: an instance dir per mounted controller. One we may not create is
 * left out (noted in err); any other mkdir failure is an error. */
static int v1_setup(struct te_cgroups *cg, struct cg_scan *s, char *err,
		    size_t cap)
{
	char *dir;
	int i, r;

	for (i = 0; i < TE_CG_NCTRL; i++) {
		dir = cg->root[i];
		if (!s->dir[i][0] || path_fmt(dir, "%s/%s", s->dir[i], cg->instance))
			continue;
		if ((r = mkdir_ok(dir)) < 0) {
			errf(err, cap, "mkdir %s: %s", dir, strerror(-r));
			dir[0] = '\0';
			if (!denied(r))
				return r;
			continue;
		}
		cg->have[i] = exists(dir, cg_ctrl[i].probe);
		cg->mode = TE_CG_V1;
	}
	return 0;
}

/* err: empty when the best hierarchy is in use, else why not (v2
 * refused, a v1 controller denied, or why the mode is TE_CG_NONE). */
int te_cgroups_init(struct te_cgroups *cg, const char *instance_key,
		    char *err, size_t cap)
{
	struct cg_scan s;
	int r, v2 = 1;

	memset(cg, 0, sizeof(*cg));
	memset(&s, 0, sizeof(s));
	cg->mode = TE_CG_NONE;
	snprintf(cg->instance, sizeof(cg->instance), "tinyedge-%08x",
		 fnv1a(instance_key));
	errf(err, cap, "%s", "");
	if ((r = each_line("/proc/self/cgroup", proc_cgroup_line, &s)) < 0 ||
	    (r = each_line("/proc/self/mountinfo", mountinfo_line, &s)) < 0) {
		errf(err, cap, "cgroups: reading /proc/self: %s", strerror(-r));
		return 0;
	}
	if (s.dir[CG_V2][0] && (v2 = v2_setup(cg, s.dir[CG_V2], err, cap)) <= 0)
		return v2;
	if (v2 == 1)
		errf(err, cap, "%s", ""); /* hybrid: v2 without controllers */
	r = v1_setup(cg, &s, err, cap);
	if (!r && cg->mode == TE_CG_NONE && err && cap && !err[0])
		errf(err, cap, "no cgroup hierarchy with memory, pids, cpu or freezer");
	return r;
}

void te_cgroups_close(struct te_cgroups *cg)
{
	int i;

	for (i = 0; i < TE_CG_NCTRL; i++)
		if (cg_owned(cg, i))
			rmdir(cg->root[i]);
}

/* ---- killing ------------------------------------------------------------- */

/* Signal every time it is listed (the pid may be new); count it once. */
static int kill_one(long pid, struct cg_kill *k)
{
	unsigned i;

	if (pid <= 1 || !k || pid == getpid())
		return pid > 0;
	if (!k->dry && kill((pid_t)pid, SIGKILL) < 0)
		return 1;
	for (i = 0; i < k->nseen; i++)
		if (k->seen[i] == pid)
			return 1;
	if (k->nseen < CG_SEEN_MAX)
		k->seen[k->nseen++] = (pid_t)pid;
	k->signalled++;
	return 1;
}

/* kill_one each pid of a cgroup.procs file (k NULL: only count); read in
 * pieces, it may be long. Number of pids or -errno. */
static int procs_each(const char *path, struct cg_kill *k)
{
	char buf[512];
	long pid = -1; /* -1: between numbers, -2: too long to be a pid */
	ssize_t n, j;
	int count = 0, fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
		for (j = 0; j < n; j++) {
			if (buf[j] < '0' || buf[j] > '9') {
				count += pid != -1 ? kill_one(pid, k) : 0;
				pid = -1;
			} else if (pid != -2) {
				pid = pid < 0 ? buf[j] - '0' :
				      pid < 1L << 28 ? pid * 10 + buf[j] - '0' : -2;
			}
		}
	}
	count += n == 0 && pid != -1 ? kill_one(pid, k) : 0;
	n = n < 0 ? -errno : count;
	close(fd);
	return (int)n;
}

/* Freeze (and wait briefly for it to settle) or thaw a module. */
static void freezer_set(const struct te_cgroups *cg, const char *module,
			bool frozen)
{
	char path[PATH_MAX], buf[32];
	bool v1 = cg->mode == TE_CG_V1;
	long long v = 0;
	int i;

	if (mod_path(cg, TE_CG_FREEZER, module, v1 ? "freezer.state" : "cgroup.freeze", path) ||
	    file_write(path, v1 ? (frozen ? "FROZEN" : "THAWED") : (frozen ? "1" : "0")) ||
	    !frozen || (!v1 && mod_path(cg, TE_CG_FREEZER, module, "cgroup.events", path)))
		return;
	for (i = 0; i < CG_FREEZE_POLLS; i++) {
		if (v1 ? file_read(path, buf, sizeof(buf)) > 0 && !strcmp(buf, "FROZEN")
		       : file_key(path, "frozen", &v) == 0 && v == 1)
			return;
		sleep_ms(1);
	}
}

/* Until procs lists nothing (bounded): with k, freeze, kill each listed
 * pid, thaw; without, just wait. 0, -EBUSY or -errno. */
static int drain(const struct te_cgroups *cg, const char *module,
		 const char *procs, struct cg_kill *k)
{
	bool fr = k && cg->have[TE_CG_FREEZER] && cg->root[TE_CG_FREEZER][0];
	int i, n;

	for (i = 0; i < CG_POLLS; i++) {
		if (fr)
			freezer_set(cg, module, true);
		n = procs_each(procs, k);
		if (fr)
			freezer_set(cg, module, false);
		if (n == 0 || n == -ENOENT)
			return 0;
		if (n < 0)
			return n;
		sleep_ms(CG_POLL_MS);
	}
	return -EBUSY;
}

/* Kill everything in the module's directory i. cgroup.kill is atomic
 * (forks in flight included); its count is of the pids listed before. */
static int kill_dir(const struct te_cgroups *cg, int i, const char *module,
		    struct cg_kill *k)
{
	char procs[PATH_MAX], path[PATH_MAX];
	int err = mod_path(cg, i, module, "cgroup.procs", procs);

	if (err)
		return err == -ENOENT ? 0 : err;
	if (cg->mode == TE_CG_V2 && cg->has_kill &&
	    !mod_path(cg, i, module, "cgroup.kill", path)) {
		k->dry = true;
		err = procs_each(procs, k);
		k->dry = false;
		if (err == -ENOENT)
			return 0;
		if (file_write(path, "1") == 0)
			return drain(cg, module, procs, NULL);
	}
	return drain(cg, module, procs, k);
}

/* Empty and remove every directory of a module: the member first (it
 * lists all), then the others (a join may have stopped half-way). 0 or
 * the first -errno. */
static int module_reap(const struct te_cgroups *cg, const char *module,
		       struct cg_kill *k)
{
	char dir[PATH_MAX];
	int i, r, first, m = cg_member(cg);

	first = m < 0 ? 0 : kill_dir(cg, m, module, k);
	for (i = 0; i < TE_CG_NCTRL; i++)
		if (i != m && cg_owned(cg, i) && (r = kill_dir(cg, i, module, k)) && !first)
			first = r;
	for (i = 0; i < TE_CG_NCTRL; i++)
		if (cg_owned(cg, i) && !mod_path(cg, i, module, NULL, dir) &&
		    (r = rmdir_retry(dir)) && !first)
			first = r;
	return first;
}

int te_cgroups_reap_stale(struct te_cgroups *cg, unsigned *killed)
{
	struct cg_kill k;
	struct dirent *e;
	DIR *d;
	int i, r, first = 0;

	memset(&k, 0, sizeof(k));
	for (i = 0; i < TE_CG_NCTRL; i++) {
		if (!cg_owned(cg, i))
			continue;
		if (!(d = opendir(cg->root[i]))) {
			first = first ? first : errno == ENOENT ? 0 : -errno;
			continue;
		}
		/* Directories only (cgroupfs fills d_type); the rest are the
		 * kernel's files. */
		while ((e = readdir(d)))
			if (e->d_name[0] != '.' && e->d_type == DT_DIR &&
			    strlen(e->d_name) <= TE_MODULE_NAME_MAX &&
			    (r = module_reap(cg, e->d_name, &k)) && !first)
				first = r;
		closedir(d);
	}
	if (killed)
		*killed = k.signalled;
	return first;
}

/* ---- module cgroups ------------------------------------------------------ */

/* Every requested limit in range and with its controller. */
static int limits_check(const struct te_cgroups *cg,
			const struct te_limits *lim, char *err, size_t cap)
{
	const struct { int64_t v, max; int ctrl; } req[] = {
		{ lim->memory_bytes, INT64_MAX, TE_CG_MEMORY },
		{ lim->pids, INT32_MAX, TE_CG_PIDS },
		{ lim->cpu_percent, 1000000, TE_CG_CPU },
	};
	unsigned i;

	for (i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
		const char *what = cg_ctrl[req[i].ctrl].name;

		if (req[i].v == -1)
			continue;
		if (req[i].v <= 0 || req[i].v > req[i].max) {
			errf(err, cap, "%s limit: %lld out of range", what,
			     (long long)req[i].v);
			return -TE_EINVALID;
		}
		if (!cg->have[req[i].ctrl] || !cg->root[req[i].ctrl][0]) {
			errf(err, cap, "%s limit: no %s cgroup controller", what, what);
			return -TE_EINVALID;
		}
	}
	return 0;
}

/* Write val to the module's file and read it back; alt is another
 * acceptable read-back (the kernel's page rounding) or NULL. */
static int limit_set(const struct te_cgroups *cg, int ctrl, const char *module,
		     const char *file, const char *val, const char *alt,
		     char *err, size_t cap)
{
	char path[PATH_MAX], got[64];
	int r;

	if ((r = mod_path(cg, ctrl, module, file, path))) {
		errf(err, cap, "%s: %s", file, strerror(-r));
		return r;
	}
	if ((r = file_write(path, val)) < 0) {
		errf(err, cap, "%s: write %s: %s", file, val, strerror(-r));
		return r;
	}
	if ((r = file_read(path, got, sizeof(got))) < 0) {
		errf(err, cap, "%s: read back: %s", file, strerror(-r));
		return r;
	}
	if (strcmp(got, val) != 0 && (!alt || strcmp(got, alt) != 0)) {
		errf(err, cap, "%s: wrote %s, read back %s", file, val, got);
		return -TE_EINVALID;
	}
	return 0;
}

/* Swap is turned off where the kernel lets us (best effort: swap
 * accounting may be off, and the memory limit holds either way). */
static int limits_write(const struct te_cgroups *cg, const char *m,
			const struct te_limits *lim, char *err, size_t cap)
{
	char val[48], alt[24], path[PATH_MAX];
	bool v2 = cg->mode == TE_CG_V2;
	long page = sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096;
	long long quota = (long long)lim->cpu_percent * (CG_CPU_PERIOD / 100);
	int r = 0;

	if (lim->memory_bytes != -1) {
		snprintf(val, sizeof(val), "%lld", (long long)lim->memory_bytes);
		snprintf(alt, sizeof(alt), "%lld", (long long)(lim->memory_bytes / page * page));
		r = limit_set(cg, TE_CG_MEMORY, m, v2 ? "memory.max" : "memory.limit_in_bytes",
			      val, alt, err, cap);
		if (!r && !mod_path(cg, TE_CG_MEMORY, m, v2 ? "memory.swap.max" :
				    "memory.memsw.limit_in_bytes", path))
			file_write(path, v2 ? "0" : val);
	}
	if (!r && lim->pids != -1) {
		snprintf(val, sizeof(val), "%lld", (long long)lim->pids);
		r = limit_set(cg, TE_CG_PIDS, m, "pids.max", val, NULL, err, cap);
	}
	if (r || lim->cpu_percent == -1)
		return r;
	if (v2) {
		snprintf(val, sizeof(val), "%lld %d", quota, CG_CPU_PERIOD);
		return limit_set(cg, TE_CG_CPU, m, "cpu.max", val, NULL, err, cap);
	}
	snprintf(val, sizeof(val), "%d", CG_CPU_PERIOD);
	if ((r = limit_set(cg, TE_CG_CPU, m, "cpu.cfs_period_us", val, NULL, err, cap)))
		return r;
	snprintf(val, sizeof(val), "%lld", quota);
	return limit_set(cg, TE_CG_CPU, m, "cpu.cfs_quota_us", val, NULL, err, cap);
}

/* mkdir each owned directory and open its cgroup.procs for the child. A
 * leftover has been removed, so a name that exists is not ours. */
static int module_mkdirs(const struct te_cgroups *cg, struct te_cgroup *c,
			 char *err, size_t cap)
{
	char dir[PATH_MAX], procs[PATH_MAX];
	int i, r;

	for (i = 0; i < TE_CG_NCTRL; i++) {
		if (!cg_owned(cg, i))
			continue;
		if ((r = mod_path(cg, i, c->module, NULL, dir)) ||
		    (r = mod_path(cg, i, c->module, "cgroup.procs", procs))) {
			errf(err, cap, "cgroup path for %s: %s", c->module, strerror(-r));
			return r;
		}
		if (mkdir(dir, 0755) < 0) {
			errf(err, cap, "mkdir %s: %s", dir, strerror(errno));
			return -errno;
		}
		c->created = true;
		if ((c->procs_fd[i] = open(procs, O_WRONLY | O_CLOEXEC)) < 0) {
			errf(err, cap, "open %s: %s", procs, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

int te_cgroup_create(struct te_cgroups *cg, struct te_cgroup *c,
		     const char *module, const struct te_limits *lim,
		     char *err, size_t cap)
{
	size_t len = strlen(module);
	struct cg_kill k;
	int i, r;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < TE_CG_NCTRL; i++)
		c->procs_fd[i] = -1;
	errf(err, cap, "%s", "");
	if (!len || len > TE_MODULE_NAME_MAX || strchr(module, '/') || module[0] == '.') {
		errf(err, cap, "cgroup: invalid module name \"%s\"", module);
		return -TE_EINVALID;
	}
	memcpy(c->module, module, len + 1);
	if ((r = limits_check(cg, lim, err, cap)) || cg->mode == TE_CG_NONE)
		return r;
	memset(&k, 0, sizeof(k));
	if ((r = module_reap(cg, module, &k))) {
		errf(err, cap, "cgroup %s: removing a leftover: %s", module,
		     te_strerror(r));
		return r;
	}
	if (!(r = module_mkdirs(cg, c, err, cap)))
		r = limits_write(cg, module, lim, err, cap);
	if (r)
		te_cgroup_destroy(cg, c);
	return r;
}

int te_cgroup_join(const struct te_cgroup *c)
{
	ssize_t n;
	int i;

	for (i = 0; i < TE_CG_NCTRL; i++) {
		if (c->procs_fd[i] < 0)
			continue;
		while ((n = write(c->procs_fd[i], "0", 1)) < 0 && errno == EINTR)
			;
		if (n != 1)
			return n < 0 ? -errno : -EIO;
	}
	return 0;
}

/* With created false no fd is open (create and destroy keep it so); a
 * zeroed struct's fds of 0 are not ours to close. */
void te_cgroup_close_fds(struct te_cgroup *c)
{
	int i;

	for (i = 0; i < TE_CG_NCTRL && c->created; i++) {
		if (c->procs_fd[i] >= 0)
			close(c->procs_fd[i]);
		c->procs_fd[i] = -1;
	}
}

int te_cgroup_kill(struct te_cgroups *cg, struct te_cgroup *c)
{
	struct cg_kill k;
	int r, m = cg_member(cg);

	if (!c->created || m < 0)
		return -ENOENT;
	memset(&k, 0, sizeof(k));
	r = kill_dir(cg, m, c->module, &k);
	return r < 0 ? r : (int)k.signalled;
}

int te_cgroup_count(struct te_cgroups *cg, const struct te_cgroup *c)
{
	char procs[PATH_MAX];

	if (!c->created || mod_path(cg, cg_member(cg), c->module, "cgroup.procs", procs))
		return -ENOENT;
	return procs_each(procs, NULL);
}

int te_cgroup_memory(struct te_cgroups *cg, const struct te_cgroup *c,
		     uint64_t *bytes)
{
	char path[PATH_MAX], buf[32], *end;
	int r;

	if (!c->created || mod_path(cg, TE_CG_MEMORY, c->module, cg->mode == TE_CG_V2 ?
				    "memory.current" : "memory.usage_in_bytes", path))
		return -ENOENT;
	if ((r = file_read(path, buf, sizeof(buf))) < 0)
		return r;
	errno = 0;
	*bytes = strtoull(buf, &end, 10);
	return errno || end == buf || *end ? -EINVAL : 0;
}

int te_cgroup_cpu_usec(struct te_cgroups *cg, const struct te_cgroup *c,
		       uint64_t *usec)
{
	char path[PATH_MAX], buf[32], *end;
	bool v2 = cg->mode == TE_CG_V2;
	long long v = 0;
	int r;

	if (!c->created || mod_path(cg, TE_CG_CPUACCT, c->module,
				    v2 ? "cpu.stat" : "cpuacct.usage", path))
		return -ENOENT;
	if (v2) {
		r = file_key(path, "usage_usec", &v);
		*usec = (uint64_t)(v > 0 ? v : 0);
		return r;
	}
	if ((r = file_read(path, buf, sizeof(buf))) < 0)
		return r;
	errno = 0;
	*usec = strtoull(buf, &end, 10) / 1000;  /* nanoseconds */
	return errno || end == buf || *end ? -EINVAL : 0;
}

/* The module's memory cgroup is new at every start (te_cgroup_create
 * removes a leftover), so any OOM kill it counts happened since. */
bool te_cgroup_oom_killed(struct te_cgroups *cg, const struct te_cgroup *c)
{
	char path[PATH_MAX];
	long long v = 0;

	return c->created &&
	       !mod_path(cg, TE_CG_MEMORY, c->module, cg->mode == TE_CG_V2 ?
			 "memory.events" : "memory.oom_control", path) &&
	       file_key(path, "oom_kill", &v) == 0 && v > 0;
}

/* A directory still busy after a few tries is left for te_cgroup_create
 * or te_cgroups_reap_stale to remove. */
void te_cgroup_destroy(struct te_cgroups *cg, struct te_cgroup *c)
{
	char dir[PATH_MAX];
	int i;

	if (!c->created)
		return;
	te_cgroup_close_fds(c);
	te_cgroup_kill(cg, c);
	for (i = 0; i < TE_CG_NCTRL; i++)
		if (cg_owned(cg, i) && !mod_path(cg, i, c->module, NULL, dir))
			rmdir_retry(dir);
	c->created = false;
}
