/* Unit tests for src/agent/cgroup.c, against the machine's real cgroups
 * (root only; skipped otherwise). Every cgroup made here lives under an
 * instance named from this test's pid and is removed at the end, also
 * after a failed check. Waits are bounded by poll counts, never asserted
 * as durations; an alarm() turns a hang into a failure. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#include "agent/cgroup.h"
#include "core/err.h"
#include "tap.h"

#define POLLS 500 /* of 10 ms */
#define CGROUP2_MAGIC 0x63677270
#define UNIFIED "/sys/fs/cgroup/unified"

static struct te_cgroups cg;
static char key[64];           /* instance key, from the outer process's pid */
static char v2name[64];        /* test_v2_membership's instance */
static unsigned reaped;        /* processes reaped by reap_some */
static pid_t watched;          /* whose status reap_some keeps */
static int watched_status = -1;
static const struct te_limits nolim = { -1, -1, -1, -1 };

/* ---- helpers ------------------------------------------------------------- */

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { 0, (long)ms * 1000000 };

	nanosleep(&ts, NULL);
}

static const char *slurp(const char *path)
{
	static char buf[4096];
	ssize_t n = -1;
	int fd = open(path, O_RDONLY);

	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = '\0';
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	return buf;
}

/* root[i]/module[/file] of a struct (the one used to create). */
static const char *mpath(const struct te_cgroups *g, int i, const char *module,
			 const char *file)
{
	static char path[PATH_MAX * 2];

	snprintf(path, sizeof(path), "%s/%s%s%s", g->root[i], module,
		 file ? "/" : "", file ? file : "");
	return path;
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Does any directory of the module remain? */
static bool any_dir(const struct te_cgroups *g, const char *module)
{
	int i;

	for (i = 0; i < TE_CG_NCTRL; i++)
		if (g->root[i][0] && is_dir(mpath(g, i, module, NULL)))
			return true;
	return false;
}

static bool procs_has(const char *path, pid_t pid)
{
	const char *s = slurp(path);
	char *end;
	long v;

	while (*s) {
		v = strtol(s, &end, 10);
		if (end == s)
			break;
		if (v == pid)
			return true;
		s = end + (*end != '\0');
	}
	return false;
}

/* Reap whatever has exited: ours and the orphans we adopt as subreaper. */
static void reap_some(void)
{
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		reaped++;
		if (pid == watched)
			watched_status = st;
	}
}

/* The exit status of pid; SIGKILLed (and failed) after POLLS polls. */
static int wait_for(pid_t pid)
{
	int i, status = 0;

	for (i = 0; i < POLLS; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	TAP_OK(0, "pid %d did not end by itself", (int)pid);
	return status;
}

/* Poll (reaping) until the module's cgroup is empty; the last count. */
static int count_until_empty(struct te_cgroups *g, struct te_cgroup *c)
{
	int i, n = -1;

	for (i = 0; i < POLLS && n != 0; i++) {
		reap_some();
		n = te_cgroup_count(g, c);
		if (n)
			sleep_ms(10);
	}
	reap_some();
	return n;
}

typedef void child_fn(int sync);

/* Fork a child that joins c, then runs fn (which writes a byte to sync
 * when ready and never returns); returns once that byte arrived (or the
 * child died: EOF). The procs fds are closed here, as the daemon does. */
static pid_t spawn(struct te_cgroup *c, child_fn *fn)
{
	int p[2];
	char b;
	pid_t pid;

	if (pipe(p) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		if (te_cgroup_join(c) < 0)
			_exit(99);
		fn(p[1]);
		_exit(98);
	}
	close(p[1]);
	if (pid > 0 && read(p[0], &b, 1) != 1)
		TAP_OK(0, "child %d ready", (int)pid);
	close(p[0]);
	te_cgroup_close_fds(c);
	return pid;
}

static void ready(int sync)
{
	if (write(sync, "r", 1) != 1)
		_exit(97);
	close(sync);
}

/* Touch 1 MiB (charged to the new memory cgroup), then wait. */
/* 20 ms of CPU time (a forked child starts from zero), then wait. */
static void child_spin(int sync)
{
	struct timespec ts;

	do
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	while (ts.tv_sec == 0 && ts.tv_nsec < 20000000);
	ready(sync);
	for (;;)
		pause();
}

static void child_pause(int sync)
{
	static char mem[1 << 20];

	memset(mem, 1, sizeof(mem));
	ready(sync);
	for (;;)
		pause();
}

/* Three grandchildren that leave the session and are orphaned (adopted by
 * this test, the subreaper), then wait: 4 processes in the cgroup. */
static void child_tree(int sync)
{
	pid_t g;
	int i;

	for (i = 0; i < 3; i++) {
		g = fork();
		if (g == 0) {
			setsid();
			if (fork() == 0)
				for (;;)
					pause();
			_exit(0);
		}
		if (g < 0 || waitpid(g, NULL, 0) != g)
			_exit(96);
	}
	ready(sync);
	for (;;)
		pause();
}

/* Fork 10 waiting children; exit with how many forks worked, + 64 if one
 * failed with EAGAIN. */
static void child_forks(int sync)
{
	int i, ok = 0, eagain = 0;
	pid_t g;

	for (i = 0; i < 10; i++) {
		g = fork();
		if (g == 0)
			for (;;)
				pause();
		if (g > 0)
			ok++;
		else if (errno == EAGAIN)
			eagain = 1;
	}
	ready(sync);
	_exit(ok + 64 * eagain);
}

/* Exec a program that fills 64 MiB: not this ASan binary, whose shadow
 * memory would blur what a 16 MiB limit means. dd's buffer is one
 * 64 MiB block, filled by read(2). */
static void child_hog(int sync)
{
	ready(sync);
	execl("/bin/dd", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M",
	      "count=1", "status=none", (char *)NULL);
	_exit(95);
}

/* ---- tests --------------------------------------------------------------- */

static bool has_word(const char *list, const char *w)
{
	size_t n = strlen(w);
	const char *p;

	for (p = strstr(list, w); p; p = strstr(p + 1, w))
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || !p[n]))
			return true;
	return false;
}

static void test_init(void)
{
	char err[256], name2[64];
	struct te_cgroups *other = malloc(sizeof(*other));
	const char *ctl = slurp(UNIFIED "/cgroup.controllers");
	bool v2mem = has_word(ctl, "memory") && has_word(ctl, "pids");
	int i, n = 0;

	TAP_EQ_INT(te_cgroups_init(&cg, key, err, sizeof(err)), 0, "init");
	TAP_EQ_STR(err, "", "init: no note");
	if (!v2mem)
		TAP_EQ_INT(cg.mode, TE_CG_V1, "v1 (unified offers [%s])", ctl);
	else
		TAP_OK(cg.mode != TE_CG_NONE, "a mode (unified offers [%s])", ctl);
	TAP_OK(strncmp(cg.instance, "tinyedge-", 9) == 0 &&
	       strlen(cg.instance) == 17 &&
	       strspn(cg.instance + 9, "0123456789abcdef") == 8,
	       "instance name %s", cg.instance);
	for (i = 0; i < TE_CG_NCTRL; i++)
		if (cg.root[i][0])
			n += is_dir(cg.root[i]) ? 1 : -100;
	TAP_OK(n > 0, "instance dirs exist (%d)", n);
	TAP_OK(cg.have[TE_CG_MEMORY] && cg.have[TE_CG_PIDS] && cg.have[TE_CG_CPU],
	       "memory, pids and cpu usable");

	te_cgroups_init(other, "another key", err, sizeof(err));
	snprintf(name2, sizeof(name2), "%s", other->instance);
	te_cgroups_close(other);
	TAP_OK(strcmp(name2, cg.instance) != 0, "other key: %s", name2);
	te_cgroups_init(other, "", err, sizeof(err));
	TAP_EQ_STR(other->instance, "tinyedge-811c9dc5", "FNV-1a of \"\"");
	te_cgroups_close(other);
	TAP_OK(!is_dir(other->root[TE_CG_PIDS]), "close removes the instance dir");
	te_cgroups_init(other, key, err, sizeof(err));
	TAP_EQ_STR(other->instance, cg.instance, "same key, same name");
	free(other);
}

static void test_limits(void)
{
	struct te_limits lim = { 32 << 20, 16, 50, -1 };
	struct te_cgroup c;
	char err[256];
	uint64_t mem = 0;
	pid_t pid;
	int st;
	bool v2 = cg.mode == TE_CG_V2;

	TAP_EQ_INT(te_cgroup_create(&cg, &c, "lim", &lim, err, sizeof(err)), 0,
		   "create with limits: %s", err);
	TAP_EQ_STR(slurp(mpath(&cg, TE_CG_MEMORY, "lim",
			       v2 ? "memory.max" : "memory.limit_in_bytes")),
		   "33554432", "memory limit");
	TAP_EQ_STR(slurp(mpath(&cg, TE_CG_PIDS, "lim", "pids.max")), "16", "pids.max");
	if (v2) {
		TAP_EQ_STR(slurp(mpath(&cg, TE_CG_CPU, "lim", "cpu.max")),
			   "50000 100000", "cpu.max");
	} else {
		TAP_EQ_STR(slurp(mpath(&cg, TE_CG_CPU, "lim", "cpu.cfs_quota_us")),
			   "50000", "cpu.cfs_quota_us");
		TAP_EQ_STR(slurp(mpath(&cg, TE_CG_CPU, "lim", "cpu.cfs_period_us")),
			   "100000", "cpu.cfs_period_us");
	}
	pid = spawn(&c, child_pause);
	TAP_OK(procs_has(mpath(&cg, TE_CG_PIDS, "lim", "cgroup.procs"), pid),
	       "child %d in the pids cgroup", (int)pid);
	TAP_OK(procs_has(mpath(&cg, TE_CG_MEMORY, "lim", "cgroup.procs"), pid) &&
	       procs_has(mpath(&cg, TE_CG_CPU, "lim", "cgroup.procs"), pid),
	       "and in the memory and cpu cgroups");
	TAP_EQ_INT(te_cgroup_count(&cg, &c), 1, "count");
	TAP_EQ_INT(te_cgroup_memory(&cg, &c, &mem), 0, "memory");
	TAP_OK(mem > 0, "memory in use: %llu", (unsigned long long)mem);
	TAP_OK(!te_cgroup_oom_killed(&cg, &c), "no OOM kill");
	TAP_EQ_INT(te_cgroup_kill(&cg, &c), 1, "kill: one signalled");
	st = wait_for(pid);
	TAP_OK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child SIGKILLed");
	TAP_EQ_INT(count_until_empty(&cg, &c), 0, "empty");
	te_cgroup_destroy(&cg, &c);
	TAP_OK(!any_dir(&cg, "lim"), "destroy removes the directories");
	te_cgroup_destroy(&cg, &c);
	TAP_OK(!c.created, "destroy twice");
}

static void test_cpu_accounting(struct te_cgroups *g)
{
	const char *file = g->mode == TE_CG_V2 ? "cpu.stat" : "cpuacct.usage";
	struct te_cgroup c;
	char err[256];
	uint64_t us = 0;
	pid_t pid;

	if (!g->root[TE_CG_CPUACCT][0]) {
		TAP_OK(1, "# SKIP no cpuacct hierarchy");
		return;
	}
	TAP_EQ_INT(te_cgroup_create(g, &c, "acct", &nolim, err, sizeof(err)), 0,
		   "%s: create: %s", file, err);
	pid = spawn(&c, child_spin);
	TAP_EQ_INT(te_cgroup_cpu_usec(g, &c, &us), 0, "%s: CPU time readable", file);
	TAP_OK(us >= 10000 && us < 60000000, "%s: about the 20 ms the child spun: %llu us",
	       file, (unsigned long long)us);
	te_cgroup_kill(g, &c);
	wait_for(pid);
	te_cgroup_destroy(g, &c);
	TAP_EQ_INT(te_cgroup_cpu_usec(g, &c, &us), -ENOENT, "%s: none once the cgroup is gone",
		   file);
}

static void test_limit_edges(void)
{
	struct te_limits lim = { (32 << 20) + 100, -1, -1, -1 };
	struct te_cgroup c;
	char err[256];
	int r;

	r = te_cgroup_create(&cg, &c, "round", &lim, err, sizeof(err));
	TAP_EQ_INT(r, 0, "memory not a page multiple: %s", err);
	te_cgroup_destroy(&cg, &c);

	lim = (struct te_limits){ -1, 99999999, -1, -1 };
	r = te_cgroup_create(&cg, &c, "badpids", &lim, err, sizeof(err));
	TAP_EQ_INT(r, -EINVAL, "pids.max above the kernel's maximum");
	TAP_EQ_STR(err, "pids.max: write 99999999: Invalid argument", "its message");
	TAP_OK(!any_dir(&cg, "badpids") && !c.created, "and nothing left behind");

	lim = (struct te_limits){ -1, 0, -1, -1 };
	r = te_cgroup_create(&cg, &c, "zero", &lim, err, sizeof(err));
	TAP_EQ_INT(r, -TE_EINVALID, "pids 0");
	TAP_EQ_STR(err, "pids limit: 0 out of range", "its message");
	r = te_cgroup_create(&cg, &c, "a/b", &nolim, err, sizeof(err));
	TAP_EQ_INT(r, -TE_EINVALID, "a module name with a slash");
}

static void test_pids_enforced(void)
{
	struct te_limits lim = { -1, 4, -1, -1 };
	struct te_cgroup c;
	char err[256];
	pid_t pid;
	int st;

	TAP_EQ_INT(te_cgroup_create(&cg, &c, "pids", &lim, err, sizeof(err)), 0,
		   "create pids=4: %s", err);
	pid = spawn(&c, child_forks);
	st = wait_for(pid);
	TAP_OK(WIFEXITED(st) && WEXITSTATUS(st) >= 64, "fork saw EAGAIN (status %#x)", st);
	TAP_OK(WIFEXITED(st) && WEXITSTATUS(st) % 64 <= 3, "at most 3 forks: %d",
	       WEXITSTATUS(st) % 64);
	TAP_EQ_INT(te_cgroup_kill(&cg, &c), WEXITSTATUS(st) % 64,
		   "kill the orphaned grandchildren");
	TAP_EQ_INT(count_until_empty(&cg, &c), 0, "empty");
	te_cgroup_destroy(&cg, &c);
}

static void test_memory_enforced(void)
{
	struct te_limits lim = { 16 << 20, -1, -1, -1 };
	struct te_cgroup c;
	char err[256];
	pid_t pid;
	int st;

	TAP_EQ_INT(te_cgroup_create(&cg, &c, "mem", &lim, err, sizeof(err)), 0,
		   "create memory=16M: %s", err);
	pid = spawn(&c, child_hog);
	st = wait_for(pid);
	TAP_OK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	       "64 MiB in 16 MiB: SIGKILL (status %#x)", st);
	TAP_OK(te_cgroup_oom_killed(&cg, &c), "oom_killed");
	te_cgroup_destroy(&cg, &c);
}

/* The tree scenario on g: kill reaches orphans in another session. */
static void kill_tree(struct te_cgroups *g, const char *what)
{
	struct te_cgroup c;
	char err[256];
	pid_t pid;
	int st;

	TAP_EQ_INT(te_cgroup_create(g, &c, "tree", &nolim, err, sizeof(err)), 0,
		   "%s: create: %s", what, err);
	reaped = 0;
	watched = pid = spawn(&c, child_tree);
	watched_status = -1;
	TAP_EQ_INT(te_cgroup_count(g, &c), 4, "%s: child and 3 grandchildren", what);
	TAP_EQ_INT(te_cgroup_kill(g, &c), 4, "%s: kill signals 4", what);
	TAP_EQ_INT(count_until_empty(g, &c), 0, "%s: empty", what);
	st = watched_status == -1 ? wait_for(pid) : watched_status;
	TAP_OK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s: child SIGKILLed", what);
	st = 0;
	while (reaped < 4 && st++ < POLLS) {
		reap_some();
		sleep_ms(10);
	}
	TAP_EQ_INT(reaped, 4, "%s: the child and the 3 orphans (ours as subreaper) reaped",
		   what);
	TAP_EQ_INT(te_cgroup_kill(g, &c), 0, "%s: kill on empty", what);
	te_cgroup_destroy(g, &c);
	TAP_OK(!any_dir(g, "tree"), "%s: destroyed", what);
}

static void test_kill_all(void)
{
	static struct te_cgroups nofreeze;

	kill_tree(&cg, cg.have[TE_CG_FREEZER] ? "freezer" : "no freezer");
	nofreeze = cg;
	nofreeze.have[TE_CG_FREEZER] = false;
	nofreeze.root[TE_CG_FREEZER][0] = '\0';
	nofreeze.has_kill = false;
	kill_tree(&nofreeze, "no freezer, no cgroup.kill");
}

static void test_leftover(void)
{
	struct te_cgroup c, c2;
	char err[256];
	pid_t pid;
	int st;

	te_cgroup_create(&cg, &c, "left", &nolim, err, sizeof(err));
	pid = spawn(&c, child_pause);
	TAP_EQ_INT(te_cgroup_create(&cg, &c2, "left", &nolim, err, sizeof(err)), 0,
		   "create over a leftover with a process: %s", err);
	st = wait_for(pid);
	TAP_OK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "its process killed");
	TAP_EQ_INT(te_cgroup_count(&cg, &c2), 0, "new cgroup empty");
	te_cgroup_destroy(&cg, &c2);
}

static void test_reap_stale(void)
{
	static struct te_cgroups fresh;
	struct te_cgroup c;
	char err[256];
	unsigned killed = 0;
	pid_t pid;
	int st;

	te_cgroup_create(&cg, &c, "stale", &nolim, err, sizeof(err));
	pid = spawn(&c, child_pause);
	TAP_EQ_INT(te_cgroups_init(&fresh, key, err, sizeof(err)), 0, "re-init");
	TAP_EQ_INT(te_cgroups_reap_stale(&fresh, &killed), 0, "reap_stale");
	TAP_EQ_INT(killed, 1, "one process killed");
	st = wait_for(pid);
	TAP_OK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "it was SIGKILLed");
	TAP_OK(!any_dir(&cg, "stale"), "stale directories removed");
}

static void test_missing_controller(void)
{
	static struct te_cgroups g, none;
	struct te_limits lim = { 32 << 20, -1, -1, -1 };
	struct te_cgroup c;
	char err[256];

	g = cg;
	g.have[TE_CG_MEMORY] = false;
	g.root[TE_CG_MEMORY][0] = '\0';
	TAP_EQ_INT(te_cgroup_create(&g, &c, "nomem", &lim, err, sizeof(err)),
		   -TE_EINVALID, "memory limit without memory controller");
	TAP_EQ_STR(err, "memory limit: no memory cgroup controller", "its message");
	TAP_OK(!any_dir(&cg, "nomem"), "nothing created");
	g.have[TE_CG_CPU] = false;
	lim = (struct te_limits){ -1, -1, 10, -1 };
	te_cgroup_create(&g, &c, "nocpu", &lim, err, sizeof(err));
	TAP_EQ_STR(err, "cpu limit: no cpu cgroup controller", "cpu too");

	none.mode = TE_CG_NONE;
	TAP_EQ_INT(te_cgroup_create(&none, &c, "free", &nolim, err, sizeof(err)), 0,
		   "no cgroups, no limits: fine");
	TAP_OK(!c.created && te_cgroup_join(&c) == 0, "nothing to join");
	TAP_EQ_INT(te_cgroup_kill(&none, &c), -ENOENT, "nothing to kill");
	lim.cpu_percent = -1;
	lim.pids = 8;
	TAP_EQ_INT(te_cgroup_create(&none, &c, "free", &lim, err, sizeof(err)),
		   -TE_EINVALID, "no cgroups, a limit: refused");
	TAP_EQ_STR(err, "pids limit: no pids cgroup controller", "its message");
}

/* v2 paths (cgroup.kill, cgroup.freeze) on the unified mount, which has
 * no controllers here: a hand-made instance with membership only. */
static void test_v2_membership(void)
{
	static struct te_cgroups g;
	struct te_limits lim = { 32 << 20, -1, -1, -1 };
	struct te_cgroup c;
	struct statfs sfs;
	char *dir = g.root[TE_CG_PIDS], err[256];

	if (statfs(UNIFIED, &sfs) < 0 || sfs.f_type != CGROUP2_MAGIC) {
		TAP_OK(1, "# SKIP no cgroup2 at " UNIFIED);
		return;
	}
	g.mode = TE_CG_V2;
	snprintf(g.instance, sizeof(g.instance), "%s", v2name);
	snprintf(dir, PATH_MAX, UNIFIED "/%s", g.instance);
	TAP_EQ_INT(mkdir(dir, 0755), 0, "mkdir %s", dir);
	snprintf(g.root[TE_CG_FREEZER], PATH_MAX, "%s", dir);
	g.have[TE_CG_FREEZER] = access(mpath(&g, TE_CG_FREEZER, "", "cgroup.freeze"), F_OK) == 0;
	g.has_kill = access(mpath(&g, TE_CG_PIDS, "", "cgroup.kill"), F_OK) == 0;
	TAP_OK(g.has_kill && g.have[TE_CG_FREEZER], "cgroup.kill and cgroup.freeze");
	snprintf(g.root[TE_CG_CPUACCT], PATH_MAX, "%s", dir);  /* cpu.stat is always there */
	test_cpu_accounting(&g);
	kill_tree(&g, "v2 cgroup.kill");
	g.has_kill = false;
	kill_tree(&g, "v2 cgroup.freeze");
	TAP_EQ_INT(te_cgroup_create(&g, &c, "m", &lim, err, sizeof(err)),
		   -TE_EINVALID, "v2 without memory controller: %s", err);
	te_cgroups_close(&g);
	TAP_OK(!is_dir(dir), "v2 instance removed");
}

static int run_tests(void)
{
	unsigned killed = 0;
	int i;

	alarm(120);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	test_init();
	if (cg.mode == TE_CG_NONE) {
		TAP_OK(1, "# SKIP no usable cgroups");
		return tap_done();
	}
	test_limits();
	test_limit_edges();
	test_cpu_accounting(&cg);
	test_pids_enforced();
	test_memory_enforced();
	test_kill_all();
	test_leftover();
	test_reap_stale();
	test_missing_controller();
	test_v2_membership();

	TAP_EQ_INT(te_cgroups_reap_stale(&cg, &killed), 0, "final sweep");
	TAP_EQ_INT(killed, 0, "nothing was left running");
	te_cgroups_close(&cg);
	for (i = 0; i < TE_CG_NCTRL; i++)
		if (cg.root[i][0] && is_dir(cg.root[i]))
			TAP_OK(0, "instance dir %s removed", cg.root[i]);
	reap_some();
	return tap_done();
}

/* After the tests, however they ended (failed check, ASan abort, alarm):
 * kill and remove whatever they left, and reap the orphans that came to
 * us. Returns how many processes had to be killed. */
static unsigned cleanup(void)
{
	static struct te_cgroups g;
	unsigned killed = 0, more = 0;
	char err[256];
	int i;

	te_cgroups_init(&g, key, err, sizeof(err));
	te_cgroups_reap_stale(&g, &killed);
	te_cgroups_close(&g);
	memset(&g, 0, sizeof(g));
	g.mode = TE_CG_V2;
	snprintf(g.root[TE_CG_PIDS], PATH_MAX, UNIFIED "/%s", v2name);
	g.has_kill = access(mpath(&g, TE_CG_PIDS, "", "cgroup.kill"), F_OK) == 0;
	te_cgroups_reap_stale(&g, &more);
	te_cgroups_close(&g);
	for (i = 0; i < 100; i++) {
		reap_some();
		sleep_ms(1);
	}
	return killed + more;
}

/* The tests run in a child so that cleanup() runs even if they die. */
int main(void)
{
	unsigned left;
	pid_t pid;
	int st = 0;

	if (getuid() != 0) {
		TAP_OK(1, "# SKIP cgroup tests need root");
		return tap_done();
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	snprintf(key, sizeof(key), "test_cgroup-%d", (int)getpid());
	snprintf(v2name, sizeof(v2name), "tinyedge-v2t%d", (int)getpid());
	pid = fork();
	if (pid == 0)
		exit(run_tests());
	while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	left = cleanup();
	if (pid < 0 || !WIFEXITED(st))
		printf("# test process %s (status %#x)\n",
		       pid < 0 ? "not started" : "died", st);
	if (left)
		printf("# cleanup killed %u leftover processes\n", left);
	return pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) || left ? 1 : 0;
}
