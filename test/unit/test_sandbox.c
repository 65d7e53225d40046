/* Unit tests for src/agent/sandbox.c: real namespaces, run as root.
 *
 * Each test spawns /bin/sh -c SCRIPT (or another program) in a sandbox and
 * checks what the module saw, printed on its stdout. No assertion depends
 * on time; an alarm() turns a hang into a failure. Every child is reaped
 * and every temporary directory removed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pwd.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "agent/sandbox.h"
#include "tap.h"

#define OUT_MAX 16384

static const char *const test_env[] = {
	"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL,
};

struct mod {
	struct te_module_spec spec;
	const char *args[2];
	struct te_spawn_ctx ctx;
};

struct run {
	int spawn;                  /* te_sandbox_spawn's return */
	char spawn_err[256];
	int result;                 /* te_sandbox_result: 0 exec'd, 1 failed */
	struct te_spawn_fail fail;
	int status;                 /* from waitpid */
	char out[OUT_MAX], err[OUT_MAX], notify[256];
};

static void mod_init(struct mod *m, const char *script)
{
	memset(m, 0, sizeof(*m));
	m->args[0] = "-c";
	m->args[1] = script;
	m->spec.name = "sbtest";
	m->spec.image = "/bin/sh";
	m->spec.args = m->args;
	m->spec.nargs = 2;
	m->spec.namespaces = TE_NS_DEFAULT;
	m->spec.limits = (struct te_limits){ -1, -1, -1, -1 };
	m->ctx.spec = &m->spec;
	m->ctx.env = test_env;
}

static int wait_result(int fd, struct te_spawn_fail *f)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int r;

	while ((r = te_sandbox_result(fd, f)) == -EAGAIN)
		poll(&pfd, 1, -1);
	return r;
}

/* Read what is there; false at EOF or error. */
static bool pump(int *fd, char *buf, size_t cap, size_t *len)
{
	ssize_t n = read(*fd, buf + *len, cap - 1 - *len);

	if (n < 0 && errno == EAGAIN)
		return true;
	if (n <= 0 || *len + (size_t)n >= cap - 1) {
		if (n > 0)
			*len += (size_t)n;
		buf[*len] = '\0';
		close(*fd);
		*fd = -1;
		return false;
	}
	*len += (size_t)n;
	buf[*len] = '\0';
	return true;
}

/* stdout and stderr until both are at EOF (the module has exited or
 * closed them). */
static void drain(struct te_spawn *sp, struct run *r)
{
	size_t lo = 0, le = 0;

	r->out[0] = r->err[0] = '\0';
	while (sp->out_fd >= 0 || sp->err_fd >= 0) {
		struct pollfd p[2] = { { .fd = sp->out_fd, .events = POLLIN },
				       { .fd = sp->err_fd, .events = POLLIN } };

		poll(p, 2, -1);
		if (sp->out_fd >= 0 && p[0].revents)
			pump(&sp->out_fd, r->out, sizeof(r->out), &lo);
		if (sp->err_fd >= 0 && p[1].revents)
			pump(&sp->err_fd, r->err, sizeof(r->err), &le);
	}
}

/* Spawn, wait for the outcome, feed input to a stdin pipe, collect the
 * output until EOF, reap. */
static void run_input(struct mod *m, struct run *r, const char *input)
{
	struct te_spawn sp;
	size_t n = 0;

	memset(&r->fail, 0, sizeof(r->fail));
	r->result = -1;
	r->notify[0] = '\0';
	r->spawn = te_sandbox_spawn(&m->ctx, &sp, r->spawn_err,
				    sizeof(r->spawn_err));
	if (r->spawn < 0) {
		printf("# spawn: %s\n", r->spawn_err);
		return;
	}
	r->result = wait_result(sp.sync_fd, &r->fail);
	if (r->result == 1)
		printf("# module failed: %s %s: %s\n", r->fail.step,
		       r->fail.detail, strerror(r->fail.err));
	if (sp.in_fd >= 0 && input)
		(void)!write(sp.in_fd, input, strlen(input));
	if (sp.in_fd >= 0) {
		close(sp.in_fd);
		sp.in_fd = -1;
	}
	drain(&sp, r);
	while (waitpid(sp.pid, &r->status, 0) < 0 && errno == EINTR)
		;
	if (sp.notify_fd >= 0)
		while (pump(&sp.notify_fd, r->notify, sizeof(r->notify), &n))
			;
	te_sandbox_close(&sp);
	if (r->err[0])
		printf("# stderr: %.300s\n", r->err);
}

static void run(struct mod *m, struct run *r)
{
	run_input(m, r, NULL);
}

static bool exited_ok(const struct run *r)
{
	return r->spawn == 0 && WIFEXITED(r->status) &&
	       WEXITSTATUS(r->status) == 0;
}

/* The value of the line "key..." of out, its whitespace runs made single
 * spaces; "" if absent (then a comparison fails visibly). */
static const char *field(const char *out, const char *key)
{
	static char buf[4][1024];
	static unsigned k;
	char *b = buf[k++ % 4], *q = b;
	const char *p = out;
	size_t n = strlen(key);

	*b = '\0';
	while (p && strncmp(p, key, n) != 0)
		if ((p = strchr(p, '\n')))
			p++;
	if (!p)
		return b;
	for (p += n; *p == ' ' || *p == '\t'; p++)
		;
	for (; *p && *p != '\n' && q < b + sizeof(buf[0]) - 1; p++) {
		if ((*p == ' ' || *p == '\t') && (q[-1] == ' '))
			continue;
		*q++ = *p == '\t' ? ' ' : *p;
	}
	while (q > b && q[-1] == ' ')
		q--;
	*q = '\0';
	return b;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	return remove(path);
}

static void rm_tree(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static unsigned count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

#define ZERO_CAPS "0000000000000000"

/* ---- ids ---------------------------------------------------------------- */

static void test_resolve_ids(void)
{
	struct te_module_spec s = { 0 };
	struct passwd *pw = getpwnam("daemon");
	char err[128];
	uid_t u = 1;
	gid_t g = 1;
	int r;

	r = te_sandbox_resolve_ids(&s, &u, &g, err, sizeof(err));
	TAP_OK(r == 0 && u == 65534 && g == 65534, "default user is nobody");
	s.user = "root";
	r = te_sandbox_resolve_ids(&s, &u, &g, err, sizeof(err));
	TAP_OK(r == 0 && u == 0 && g == 0, "root is 0:0");
	s.user = "4321";
	r = te_sandbox_resolve_ids(&s, &u, &g, err, sizeof(err));
	TAP_OK(r == 0 && u == 4321 && g == 4321,
	       "numeric user without entry: gid = uid");
	s.group = "root";
	r = te_sandbox_resolve_ids(&s, &u, &g, err, sizeof(err));
	TAP_OK(r == 0 && u == 4321 && g == 0, "group root");
	s.group = "77";
	r = te_sandbox_resolve_ids(&s, &u, &g, err, sizeof(err));
	TAP_OK(r == 0 && g == 77, "numeric group");
	if (pw) {
		s.user = "daemon";
		s.group = NULL;
		r = te_sandbox_resolve_ids(&s, &u, &g, err, sizeof(err));
		TAP_OK(r == 0 && u == pw->pw_uid && g == pw->pw_gid,
		       "named user and primary group from /etc/passwd");
	}
	s.user = "no-such-user";
	s.group = NULL;
	r = te_sandbox_resolve_ids(&s, &u, &g, err, sizeof(err));
	TAP_OK(r == -ENOENT && strstr(err, "no-such-user"),
	       "unknown user: -ENOENT naming it (%s)", err);
	s.user = "nobody";
	s.group = "no-such-group";
	r = te_sandbox_resolve_ids(&s, &u, &g, err, sizeof(err));
	TAP_OK(r == -ENOENT && strstr(err, "no-such-group"),
	       "unknown group: -ENOENT naming it (%s)", err);
	s.user = "4294967295";
	s.group = NULL;
	r = te_sandbox_resolve_ids(&s, &u, &g, err, sizeof(err));
	TAP_OK(r == -ENOENT, "uid -1 is not a number but an unknown name");
}

/* ---- the default module --------------------------------------------------- */

static const char default_script[] =
	"echo pid=$$\n"
	"echo host=$(cat /proc/sys/kernel/hostname)\n"
	"grep -E '^(Cap|NoNewPrivs|Sig(Blk|Ign)|Uid|Gid|Groups)' /proc/self/status\n"
	"echo tmp=$(ls -A /tmp | wc -l) $(stat -f -c %T /tmp) $(stat -c %a /tmp)\n"
	"echo dev=$(ls /dev)\n"
	"echo cwd=$(pwd)\n"
	"read line; echo stdin=[$?$line]\n"
	"echo to-stderr >&2\n";

static void test_default(void)
{
	struct mod m;
	struct run r;

	mod_init(&m, default_script);
	run(&m, &r);
	TAP_EQ_INT(r.result, 0, "result: exec'd");
	TAP_OK(exited_ok(&r), "module exited 0");
	TAP_EQ_STR(field(r.out, "pid="), "1", "PID 1 of its pid namespace");
	TAP_EQ_STR(field(r.out, "host="), "sbtest", "hostname = module name");
	TAP_EQ_STR(field(r.out, "CapEff:"), ZERO_CAPS, "CapEff 0");
	TAP_EQ_STR(field(r.out, "CapPrm:"), ZERO_CAPS, "CapPrm 0");
	TAP_EQ_STR(field(r.out, "CapInh:"), ZERO_CAPS, "CapInh 0");
	TAP_EQ_STR(field(r.out, "CapBnd:"), ZERO_CAPS, "CapBnd 0");
	TAP_EQ_STR(field(r.out, "CapAmb:"), ZERO_CAPS, "CapAmb 0");
	TAP_EQ_STR(field(r.out, "NoNewPrivs:"), "1", "no_new_privs");
	TAP_EQ_STR(field(r.out, "SigBlk:"), ZERO_CAPS,
		   "no signal blocked (the test blocks SIGTERM)");
	TAP_EQ_STR(field(r.out, "SigIgn:"), ZERO_CAPS,
		   "no signal ignored (the test ignores SIGUSR1)");
	TAP_EQ_STR(field(r.out, "Uid:"), "65534 65534 65534 65534",
		   "runs as nobody");
	TAP_EQ_STR(field(r.out, "Gid:"), "65534 65534 65534 65534",
		   "with nobody's group");
	TAP_EQ_STR(field(r.out, "Groups:"), "", "no supplementary groups");
	TAP_EQ_STR(field(r.out, "tmp="), "0 tmpfs 1777",
		   "/tmp is an empty tmpfs, mode 1777");
	TAP_EQ_STR(field(r.out, "dev="), "full null random tty urandom zero",
		   "/dev holds only the minimal nodes");
	TAP_EQ_STR(field(r.out, "cwd="), "/", "workdir defaults to /");
	TAP_EQ_STR(field(r.out, "stdin="), "[1]", "stdin is /dev/null (EOF)");
	TAP_EQ_STR(r.err, "to-stderr\n", "stderr is its own pipe");
}

static void test_root_and_caps(void)
{
	struct mod m;
	struct run r;

	mod_init(&m, "grep -E '^(Cap|Uid)' /proc/self/status");
	m.spec.user = "root";
	run(&m, &r);
	TAP_OK(exited_ok(&r), "root module ran");
	TAP_EQ_STR(field(r.out, "Uid:"), "0 0 0 0", "user root: uid 0");
	TAP_EQ_STR(field(r.out, "CapEff:"), ZERO_CAPS,
		   "root without listed caps has none");
	TAP_EQ_STR(field(r.out, "CapBnd:"), ZERO_CAPS, "nor a bounding set");

	mod_init(&m, "grep -E '^(Cap|Uid)' /proc/self/status");
	m.spec.capabilities = 1ull << 10; /* CAP_NET_BIND_SERVICE */
	run(&m, &r);
	TAP_OK(exited_ok(&r), "nobody with CAP_NET_BIND_SERVICE ran");
	TAP_EQ_STR(field(r.out, "Uid:"), "65534 65534 65534 65534",
		   "still nobody");
	TAP_EQ_STR(field(r.out, "CapEff:"), "0000000000000400",
		   "CapEff: bit 10 only");
	TAP_EQ_STR(field(r.out, "CapPrm:"), "0000000000000400",
		   "CapPrm: bit 10 only");
	TAP_EQ_STR(field(r.out, "CapAmb:"), "0000000000000400",
		   "CapAmb: bit 10 only (survives exec of a child)");
	TAP_EQ_STR(field(r.out, "CapBnd:"), "0000000000000400",
		   "CapBnd: bit 10 only");

	mod_init(&m, "grep -E '^Cap' /proc/self/status");
	m.spec.user = "root";
	m.spec.capabilities = 1ull << 10;
	run(&m, &r);
	TAP_EQ_STR(field(r.out, "CapEff:"), "0000000000000400",
		   "root with one cap: CapEff bit 10");
	TAP_EQ_STR(field(r.out, "CapAmb:"), ZERO_CAPS,
		   "root needs no ambient caps");
}

/* ---- fds ------------------------------------------------------------------ */

static void test_fds(void)
{
	struct mod m;
	struct run r;
	int keep[2];
	char buf[64] = "";
	ssize_t n;

	mod_init(&m, "");
	m.spec.image = "/bin/ls";
	m.args[0] = "/proc/self/fd";
	m.spec.nargs = 1;
	run(&m, &r);
	TAP_OK(exited_ok(&r), "ls ran");
	TAP_EQ_STR(r.out, "0\n1\n2\n3\n",
		   "only 0 1 2 (and ls's own directory fd)");

	if (pipe(keep) < 0)
		return;
	mod_init(&m, "echo keep >&3; echo beat >&4; exec ls /proc/self/fd");
	m.ctx.keep_fds = &keep[1];
	m.ctx.nkeep = 1;
	m.ctx.want_notify = true;
	run(&m, &r);
	close(keep[1]);
	n = read(keep[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(keep[0]);
	TAP_EQ_STR(r.out, "0\n1\n2\n3\n4\n5\n",
		   "0 1 2, keep fd 3, notify 4 (and ls's 5)");
	TAP_EQ_STR(buf, "keep\n", "fd 3 is the kept fd");
	TAP_EQ_STR(r.notify, "beat\n", "fd 4 is the notify pipe");

	mod_init(&m, "read a; read b; echo got=$a,$b");
	m.ctx.stdin_pipe = true;
	run_input(&m, &r, "hello\nworld\n");
	TAP_EQ_STR(field(r.out, "got="), "hello,world", "stdin pipe");
}

/* Keep fds that sit on each other's target numbers: 4 -> 3 and 3 -> 4
 * (a naive dup2 in order would pass the same pipe twice). */
static void test_fd_shuffle(void)
{
	int a[2], b[2], fds[2] = { 4, 3 };
	char ba[16] = "", bb[16] = "";
	struct mod m;
	struct run r;

	if (pipe(a) < 0 || pipe(b) < 0)
		return;
	dup2(a[1], 4);
	dup2(b[1], 3);
	close(a[1]);
	close(b[1]);
	mod_init(&m, "echo a >&3; echo b >&4");
	m.ctx.keep_fds = fds;
	m.ctx.nkeep = 2;
	run(&m, &r);
	close(3);
	close(4);
	(void)!read(a[0], ba, sizeof(ba) - 1);
	(void)!read(b[0], bb, sizeof(bb) - 1);
	close(a[0]);
	close(b[0]);
	TAP_OK(exited_ok(&r), "keep fds 4 and 3 passed as 3 and 4");
	TAP_EQ_STR(ba, "a\n", "fd 3 of the module is our fd 4");
	TAP_EQ_STR(bb, "b\n", "fd 4 of the module is our fd 3");
}

/* ---- limits, workdir ------------------------------------------------------ */

static void test_limits_workdir(void)
{
	struct mod m;
	struct run r;

	mod_init(&m, "echo n=$(ulimit -n) $(ulimit -Hn); echo cwd=$(pwd)");
	m.spec.limits.nofile = 64;
	m.spec.workdir = "/usr/share";
	run(&m, &r);
	TAP_EQ_STR(field(r.out, "n="), "64 64", "nofile 64 (soft and hard)");
	TAP_EQ_STR(field(r.out, "cwd="), "/usr/share", "workdir");
}

/* ---- mounts --------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static bool read_file(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return false;
	n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
	return true;
}

/* Sources under the host's /tmp, targets under the module's own /tmp:
 * the sources are covered by the time they are bound. */
static void test_binds(void)
{
	char dir[] = "/tmp/hsb-bind-XXXXXX", ro[64], rw[64], path[96];
	char buf[64];
	struct te_mount mt[2];
	struct te_device dev = { "/dev/null", "/dev/sub/null2", "rwm" };
	struct mod m;
	struct run r;

	if (!mkdtemp(dir))
		return;
	snprintf(ro, sizeof(ro), "%s/ro", dir);
	snprintf(rw, sizeof(rw), "%s/rw", dir);
	mkdir(ro, 0777);
	mkdir(rw, 0777);
	chmod(ro, 0777);
	chmod(rw, 0777);
	snprintf(path, sizeof(path), "%s/seed", ro);
	write_file(path, "seed\n");
	mt[0] = (struct te_mount){ ro, "/tmp/ro", true };
	mt[1] = (struct te_mount){ rw, "/tmp/rw", false };
	mod_init(&m, "echo seed=$(cat /tmp/ro/seed)\n"
		 "echo a > /tmp/ro/f; echo ro=$?\n"
		 "echo b > /tmp/rw/f; echo rw=$?\n"
		 "echo dev=$(ls /dev)\n"
		 "test -c /dev/sub/null2 && echo x > /dev/sub/null2; echo sub=$?\n");
	m.spec.mounts = mt;
	m.spec.nmounts = 2;
	m.spec.devices = &dev;
	m.spec.ndevices = 1;
	run(&m, &r);
	TAP_EQ_STR(field(r.out, "seed="), "seed", "bind source content visible");
	TAP_OK(strcmp(field(r.out, "ro="), "0") != 0 &&
	       strstr(r.err, "Read-only file system"),
	       "writing into the ro bind fails (read-only)");
	snprintf(path, sizeof(path), "%s/f", ro);
	TAP_OK(access(path, F_OK) < 0, "nothing written on the host");
	TAP_EQ_STR(field(r.out, "rw="), "0", "writing into the rw bind works");
	snprintf(path, sizeof(path), "%s/f", rw);
	TAP_OK(read_file(path, buf, sizeof(buf)) && strcmp(buf, "b\n") == 0,
	       "and lands on the host");
	TAP_EQ_STR(field(r.out, "dev="), "full null random sub tty urandom zero",
		   "a listed device appears in /dev");
	TAP_EQ_STR(field(r.out, "sub="), "0",
		   "at its target, as a usable device node");
	rm_tree(dir);
}

/* A rootfs made of symlinks and a read-only bind of the host's /usr. In a
 * user namespace the module's root cannot create mount points in a rootfs
 * owned by the host's root: they must exist. */
static void test_rootfs(bool userns)
{
	char dir[] = "/tmp/hsb-root-XXXXXX", path[96];
	static const char *const links[][2] = {
		{ "usr/bin", "bin" }, { "usr/lib", "lib" },
		{ "usr/lib64", "lib64" }, { "usr/sbin", "sbin" },
	};
	static const char *const dirs[] = { "usr", "proc", "tmp", "dev" };
	const char *ns = userns ? "rootfs+userns: " : "rootfs: ";
	struct te_mount mt = { "/usr", "/usr", true };
	struct mod m;
	struct run r;
	unsigned i;

	if (!mkdtemp(dir))
		return;
	chmod(dir, 0755); /* "/" of a module running as nobody */
	for (i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, links[i][1]);
		if (symlink(links[i][0], path) < 0)
			perror(path);
		snprintf(path, sizeof(path), "%s/%s", dir, dirs[i]);
		if (userns && mkdir(path, 0755) < 0)
			perror(path);
	}
	mod_init(&m, "echo pid=$$\n"
		 "echo root=$(ls /)\n"
		 "echo dev=$(ls /dev)\n"
		 "echo tmp=$(stat -f -c %T /tmp)\n"
		 "touch /usr/x; echo usr=$?\n"
		 "grep NoNewPrivs /proc/self/status\n");
	m.spec.rootfs = dir;
	m.spec.mounts = &mt;
	m.spec.nmounts = 1;
	if (userns)
		m.spec.namespaces |= TE_NS_USER;
	run(&m, &r);
	TAP_EQ_INT(r.result, 0, "%sexec'd /bin/sh inside it", ns);
	TAP_OK(exited_ok(&r), "%smodule exited 0", ns);
	TAP_EQ_STR(field(r.out, "pid="), "1", "%sPID 1", ns);
	TAP_EQ_STR(field(r.out, "root="), "bin dev lib lib64 proc sbin tmp usr",
		   "%s/ is the rootfs after pivot_root", ns);
	TAP_EQ_STR(field(r.out, "dev="), "full null random tty urandom zero",
		   "%sminimal /dev", ns);
	TAP_EQ_STR(field(r.out, "tmp="), "tmpfs", "%s/tmp is a tmpfs", ns);
	TAP_OK(strcmp(field(r.out, "usr="), "0") != 0 &&
	       strstr(r.err, "Read-only file system"),
	       "%sthe ro /usr bind refuses writes", ns);
	TAP_EQ_STR(field(r.out, "NoNewPrivs:"), "1", "%sproc mounted", ns);
	rm_tree(dir);
}

/* ---- failures ------------------------------------------------------------- */

static void test_exec_fail(void)
{
	struct mod m;
	struct run r;

	mod_init(&m, "");
	m.spec.image = "/nonexistent/x";
	run(&m, &r);
	TAP_EQ_INT(r.result, 1, "missing image: failure reported");
	TAP_EQ_STR(r.fail.step, "exec", "step exec");
	TAP_EQ_INT(r.fail.err, ENOENT, "ENOENT");
	TAP_OK(strstr(r.fail.detail, "/nonexistent/x") != NULL,
	       "detail names the image (%s)", r.fail.detail);
	TAP_OK(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 127,
	       "exit status 127");

	mod_init(&m, "echo never");
	m.spec.workdir = "/does/not/exist";
	run(&m, &r);
	TAP_EQ_INT(r.result, 1, "missing workdir: failure reported");
	TAP_EQ_STR(r.fail.step, "chdir", "step chdir");
	TAP_EQ_INT(r.fail.err, ENOENT, "ENOENT");
	TAP_EQ_STR(r.fail.detail, "/does/not/exist", "detail is the workdir");
	TAP_EQ_STR(r.out, "", "nothing ran");
	TAP_OK(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 127,
	       "exit status 127");
}

static void test_mount_fail(void)
{
	struct te_mount mt = { "/nonexistent/src", "/tmp/x", false };
	struct te_mount mt2 = { "/usr", "/nonexistent-target", false };
	struct mod m;
	struct run r;

	mod_init(&m, "echo never");
	m.spec.mounts = &mt;
	m.spec.nmounts = 1;
	run(&m, &r);
	TAP_EQ_INT(r.result, 1, "missing mount source: failure reported");
	TAP_EQ_STR(r.fail.step, "open", "step open");
	TAP_EQ_STR(r.fail.detail, "/nonexistent/src", "detail is the source");
	TAP_EQ_INT(r.fail.err, ENOENT, "ENOENT");

	/* The host view never creates mount points outside its tmpfs. */
	mod_init(&m, "echo never");
	m.spec.mounts = &mt2;
	m.spec.nmounts = 1;
	run(&m, &r);
	TAP_EQ_STR(r.fail.step, "bind", "host view: missing target");
	TAP_EQ_INT(r.fail.err, ENOENT, "ENOENT");
	TAP_OK(access("/nonexistent-target", F_OK) < 0,
	       "and no directory made on the host");
}

static void test_spawn_errors(void)
{
	int fds[TE_SPAWN_MAX_FDS + 1] = { 0 };
	struct te_mount mt = { "/usr", "/usr", true };
	unsigned before = count_fds();
	struct mod m;
	struct run r;

	mod_init(&m, "true");
	m.ctx.keep_fds = fds;
	m.ctx.nkeep = TE_SPAWN_MAX_FDS + 1;
	run(&m, &r);
	TAP_EQ_INT(r.spawn, -EINVAL, "too many keep fds: -EINVAL");

	mod_init(&m, "true");
	m.spec.namespaces = TE_NS_PID;
	m.spec.mounts = &mt;
	m.spec.nmounts = 1;
	run(&m, &r);
	TAP_OK(r.spawn == -EINVAL && strstr(r.spawn_err, "mount namespace"),
	       "mounts without a mount namespace: -EINVAL (%s)", r.spawn_err);

	mod_init(&m, "true");
	m.spec.user = "no-such-user";
	run(&m, &r);
	TAP_EQ_INT(r.spawn, -ENOENT, "unknown user: -ENOENT before clone");

	mod_init(&m, "true");
	m.spec.capabilities = 1ull << 62;
	run(&m, &r);
	TAP_EQ_INT(r.spawn, -EINVAL, "capability unknown to the kernel");
	TAP_EQ_INT(count_fds(), before, "failed spawns leave no fd open");

	mod_init(&m, "true");
	run(&m, &r);
	TAP_EQ_INT(count_fds(), before, "a finished module leaves no fd open");
}

/* ---- other namespace sets ------------------------------------------------- */

static void test_userns(void)
{
	struct mod m;
	struct run r;

	mod_init(&m, "echo uid=$(id -u) gid=$(id -g)\n"
		 "echo map=$(cat /proc/self/uid_map)\n"
		 "echo gmap=$(cat /proc/self/gid_map)\n"
		 "echo pid=$$ dev=$(ls /dev)\n"
		 "grep -E '^(Cap(Eff|Bnd)|Groups)' /proc/self/status\n");
	m.spec.namespaces = TE_NS_DEFAULT | TE_NS_USER;
	run(&m, &r);
	TAP_OK(exited_ok(&r), "user ns module ran");
	TAP_EQ_STR(field(r.out, "uid="), "0 gid=0", "root inside");
	TAP_EQ_STR(field(r.out, "map="), "0 65534 1", "uid 0 is nobody outside");
	TAP_EQ_STR(field(r.out, "gmap="), "0 65534 1", "gid 0 is nobody's");
	TAP_EQ_STR(field(r.out, "pid="), "1 dev=full null random tty urandom zero",
		   "user ns: PID 1 and the minimal /dev");
	TAP_EQ_STR(field(r.out, "CapEff:"), ZERO_CAPS,
		   "user ns root holds no capability");
	TAP_EQ_STR(field(r.out, "CapBnd:"), ZERO_CAPS, "not even bounding");
	TAP_EQ_STR(field(r.out, "Groups:"), "",
		   "the daemon's supplementary groups are gone");
}

static void test_no_namespaces(void)
{
	char host[128] = "";
	struct mod m;
	struct run r;

	gethostname(host, sizeof(host));
	mod_init(&m, "echo pid=$$; echo host=$(cat /proc/sys/kernel/hostname)\n"
		 "test -e /dev/tty0 && echo hostdev=yes\n");
	m.spec.namespaces = 0;
	run(&m, &r);
	TAP_OK(exited_ok(&r), "module without namespaces ran");
	TAP_OK(strcmp(field(r.out, "pid="), "1") != 0, "not PID 1");
	TAP_EQ_STR(field(r.out, "host="), host, "the host's hostname");
	TAP_EQ_STR(field(r.out, "hostdev="), "yes", "the host's /dev");
}

static void test_netns(void)
{
	struct mod m;
	struct run r;

	mod_init(&m, "echo ifs=$(tail -n +3 /proc/net/dev | cut -d: -f1)");
	m.spec.namespaces = TE_NS_DEFAULT | TE_NS_NET;
	run(&m, &r);
	TAP_EQ_STR(field(r.out, "ifs="), "lo", "net ns: only lo");
}

/* ---- spawn latency (information, not a test) ------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void measure_spawn(void)
{
	uint64_t t[50];
	struct te_spawn_fail f;
	struct te_spawn sp;
	struct run r;
	struct mod m;
	unsigned i, ok = 0;

	mod_init(&m, "");
	m.spec.image = "/bin/true";
	m.spec.nargs = 0;
	for (i = 0; i < 50; i++) {
		uint64_t t0 = now_ns();

		if (te_sandbox_spawn(&m.ctx, &sp, r.spawn_err,
				     sizeof(r.spawn_err)) < 0)
			break;
		ok += wait_result(sp.sync_fd, &f) == 0;
		t[i] = now_ns() - t0;
		drain(&sp, &r);
		while (waitpid(sp.pid, NULL, 0) < 0 && errno == EINTR)
			;
		te_sandbox_close(&sp);
	}
	TAP_EQ_INT(ok, 50, "50 spawns exec'd");
	if (i == 50) {
		qsort(t, 50, sizeof(t[0]), cmp_u64);
		printf("# spawn to exec: p50 %.0f us, min %.0f us, max %.0f us\n",
		       t[25] / 1e3, t[0] / 1e3, t[49] / 1e3);
	}
}

int main(void)
{
	sigset_t set;
	int i;

	if (geteuid() != 0) {
		printf("1..0 # SKIP needs root\n");
		return 0;
	}
	alarm(120);
	/* What a daemon looks like: SIGTERM blocked (signalfd), a signal
	 * ignored, fds open without close-on-exec, some high, supplementary
	 * groups. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGUSR1, SIG_IGN);
	for (i = 0; i < 3; i++)
		if (open("/dev/null", O_RDONLY) < 0)
			perror("open");
	dup2(0, 57);
	dup2(0, 200);
	if (setgroups(2, (gid_t[]){ 0, 4242 }) < 0)
		perror("setgroups");
	setvbuf(stdout, NULL, _IOLBF, 0);

	test_resolve_ids();
	test_default();
	test_root_and_caps();
	test_fds();
	test_fd_shuffle();
	test_limits_workdir();
	test_binds();
	test_rootfs(false);
	test_rootfs(true);
	test_exec_fail();
	test_mount_fail();
	test_spawn_errors();
	test_userns();
	test_no_namespaces();
	test_netns();
	measure_spawn();
	return tap_done();
}
