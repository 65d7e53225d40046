/* seccomp.c: the generated syscall table, the BPF program (run over
 * synthetic seccomp_data by a small classic-BPF interpreter), the
 * manifest keys, and real filters installed in forked children with the
 * daemon's listener answering. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "agent/manifest.h"
#include "agent/seccomp.h"
#include "core/loop.h"
#include "tap.h"

#define CLONE_NS_NEWNS 0x00020000u
#define CAP 2048

static struct te_bpf prog[CAP];

/* Classic BPF as seccomp uses it: LD W ABS, JEQ/JSET/JGT/JGE K, RET K.
 * Returns the RET value, or 0xdeadbeef on anything out of bounds. */
static uint32_t bpf_run(const struct te_bpf *p, int n,
			const struct te_seccomp_data *d)
{
	const unsigned char *mem = (const unsigned char *)d;
	uint32_t a = 0;

	for (int pc = 0; pc >= 0 && pc < n; pc++) {
		const struct te_bpf *i = &p[pc];
		bool t;

		switch (i->code) {
		case 0x20:
			if (i->k + 4 > sizeof(*d) || i->k % 4)
				return 0xdeadbeef;
			memcpy(&a, mem + i->k, 4);
			continue;
		case 0x06:
			return i->k;
		case 0x15: t = a == i->k; break;
		case 0x45: t = (a & i->k) != 0; break;
		case 0x25: t = a > i->k; break;
		case 0x35: t = a >= i->k; break;
		default:
			return 0xdeadbeef;
		}
		pc += t ? i->jt : i->jf;
	}
	return 0xdeadbeef;
}

static uint32_t call(int n, int nr, uint64_t a0, uint64_t a1)
{
	struct te_seccomp_data d = { .nr = nr, .arch = te_seccomp_arch,
				     .args = { a0, a1 } };

	return bpf_run(prog, n, &d);
}

static void spec_default(struct te_module_spec *s)
{
	memset(s, 0, sizeof(*s));
}

static void test_table(void)
{
	TAP_EQ_INT(te_syscall_nr("read"), SYS_read, "read's number");
	TAP_EQ_INT(te_syscall_nr("openat"), SYS_openat, "openat's number");
	TAP_EQ_INT(te_syscall_nr("_sysctl") >= -1, 1, "a name with _ looks up");
	TAP_EQ_INT(te_syscall_nr("no_such_call"), -1, "unknown name: -1");
	TAP_EQ_INT(te_syscall_nr(""), -1, "empty name: -1");
	TAP_EQ_STR(te_syscall_name(SYS_mount), "mount", "mount by number");
	TAP_OK(te_syscall_name(-5) == NULL, "no name for -5");
	TAP_OK(te_seccomp_arch != 0, "this build has a profile (arch 0x%x)",
	       te_seccomp_arch);
}

/* Every jump lands inside, the last instruction returns. */
static bool well_formed(int n)
{
	for (int i = 0; i < n; i++)
		if (prog[i].code != 0x06 &&
		    (i + 1 + prog[i].jt >= n || i + 1 + prog[i].jf >= n))
			return false;
	return n > 0 && prog[n - 1].code == 0x06;
}

static void test_default_program(void)
{
	struct te_module_spec s;
	const uint32_t deny = TE_SECCOMP_RET_USER_NOTIF, ok = TE_SECCOMP_RET_ALLOW;
	struct te_seccomp_data d = { .nr = SYS_read, .arch = te_seccomp_arch ^ 1 };
	int n;

	spec_default(&s);
	n = te_seccomp_build(&s, prog, CAP);
	TAP_OK(n > 100 && (unsigned)n <= te_seccomp_max_insns(&s),
	       "default program: %d instructions, bound %u", n,
	       te_seccomp_max_insns(&s));
	TAP_OK(well_formed(n), "every jump in range, ends in a return");
	TAP_EQ_INT(te_seccomp_build(&s, prog, 10), -E2BIG, "too small a buffer");
	n = te_seccomp_build(&s, prog, CAP);
	TAP_EQ_INT(bpf_run(prog, n, &d), TE_SECCOMP_RET_KILL_PROCESS,
		   "another arch: killed");
	TAP_EQ_INT(call(n, SYS_read, 0, 0), ok, "read allowed");
	TAP_EQ_INT(call(n, SYS_execve, 0, 0), ok, "execve allowed");
	TAP_EQ_INT(call(n, SYS_mount, 0, 0), deny, "mount denied");
	TAP_EQ_INT(call(n, SYS_ptrace, 0, 0), deny, "ptrace denied");
	TAP_EQ_INT(call(n, SYS_unshare, 0, 0), deny, "unshare denied");
	TAP_EQ_INT(call(n, SYS_keyctl, 0, 0), deny, "keyctl denied");
	TAP_EQ_INT(call(n, SYS_bpf, 0, 0), deny, "bpf denied");
	TAP_EQ_INT(call(n, SYS_io_uring_setup, 0, 0), deny, "io_uring denied");
	TAP_EQ_INT(call(n, SYS_settimeofday, 0, 0), deny, "settimeofday denied");
	TAP_EQ_INT(call(n, 9999, 0, 0), deny, "an unknown number denied");
#ifdef __x86_64__
	TAP_EQ_INT(call(n, 0x40000000 | SYS_read, 0, 0), deny, "x32 read denied");
#endif
	TAP_EQ_INT(call(n, SYS_clone, SIGCHLD, 0), ok, "clone (fork) allowed");
	TAP_EQ_INT(call(n, SYS_clone, 0x003d0f00, 0), ok, "clone (thread) allowed");
	TAP_EQ_INT(call(n, SYS_clone, SIGCHLD | CLONE_NS_NEWNS, 0), deny,
		   "clone with CLONE_NEWNS denied");
	TAP_EQ_INT(call(n, SYS_clone, SIGCHLD | 0x10000000, 0), deny,
		   "clone with CLONE_NEWUSER denied");
	TAP_EQ_INT(call(n, SYS_clone3, 0, 0), TE_SECCOMP_RET_ERRNO | ENOSYS,
		   "clone3: ENOSYS");
	TAP_EQ_INT(call(n, SYS_ioctl, 0, TIOCGWINSZ), ok, "ioctl TIOCGWINSZ allowed");
	TAP_EQ_INT(call(n, SYS_ioctl, 0, TIOCSTI), deny, "ioctl TIOCSTI denied");
	TAP_EQ_INT(call(n, SYS_ioctl, 0, TIOCLINUX), deny, "ioctl TIOCLINUX denied");
	TAP_EQ_INT(call(n, SYS_ioctl, 0, (1ull << 32) | TIOCSTI), deny,
		   "ioctl TIOCSTI with a high bit denied");
	TAP_EQ_INT(call(n, SYS_ioctl, 0, (1ull << 63) | TIOCGWINSZ), deny,
		   "any high-bit ioctl denied");
	TAP_EQ_INT(call(n, SYS_personality, 0, 0), ok, "personality(PER_LINUX)");
	TAP_EQ_INT(call(n, SYS_personality, 0xffffffffu, 0), ok, "personality query");
	TAP_EQ_INT(call(n, SYS_personality, 0x0400000, 0), deny,
		   "personality(READ_IMPLIES_EXEC) denied");
}

static void test_variants(void)
{
	const char *extra[] = { "mount", "ioctl" };
	struct te_module_spec s;
	int n;

	spec_default(&s);
	s.seccomp_extra = extra;
	s.nseccomp_extra = 2;
	n = te_seccomp_build(&s, prog, CAP);
	TAP_EQ_INT(call(n, SYS_mount, 0, 0), TE_SECCOMP_RET_ALLOW, "extra mount allowed");
	TAP_EQ_INT(call(n, SYS_ioctl, 0, TIOCSTI), TE_SECCOMP_RET_ALLOW,
		   "an extra ioctl overrides its argument checks");
	TAP_EQ_INT(call(n, SYS_ptrace, 0, 0), TE_SECCOMP_RET_USER_NOTIF,
		   "ptrace still denied");
	extra[0] = "no_such_call";
	TAP_EQ_INT(te_seccomp_build(&s, prog, CAP), -ENOENT, "unknown extra: -ENOENT");
	/* Capabilities bring the calls Docker grants with them. */
	spec_default(&s);
	n = te_seccomp_build(&s, prog, CAP);
	TAP_EQ_INT(call(n, SYS_chroot, 0, 0), TE_SECCOMP_RET_USER_NOTIF, "no caps: chroot denied");
	s.capabilities = 1ull << te_capability_from_name("SYS_CHROOT");
	n = te_seccomp_build(&s, prog, CAP);
	TAP_EQ_INT(call(n, SYS_chroot, 0, 0), TE_SECCOMP_RET_ALLOW, "SYS_CHROOT: chroot allowed");
	TAP_EQ_INT(call(n, SYS_mount, 0, 0), TE_SECCOMP_RET_USER_NOTIF, "SYS_CHROOT: mount denied");
	TAP_EQ_INT(call(n, SYS_clone, CLONE_NS_NEWNS, 0), TE_SECCOMP_RET_USER_NOTIF,
		   "SYS_CHROOT: clone(CLONE_NEWNS) denied");
	s.capabilities = 1ull << te_capability_from_name("SYS_ADMIN") |
			 1ull << te_capability_from_name("SYS_TIME") |
			 1ull << te_capability_from_name("SYS_PTRACE");
	n = te_seccomp_build(&s, prog, CAP);
	TAP_OK(n > 0 && (unsigned)n <= te_seccomp_max_insns(&s), "caps: %d instructions", n);
	TAP_EQ_INT(call(n, SYS_mount, 0, 0), TE_SECCOMP_RET_ALLOW, "SYS_ADMIN: mount allowed");
	TAP_EQ_INT(call(n, SYS_unshare, CLONE_NS_NEWNS, 0), TE_SECCOMP_RET_ALLOW, "SYS_ADMIN: unshare");
	TAP_EQ_INT(call(n, SYS_clone, CLONE_NS_NEWNS, 0), TE_SECCOMP_RET_ALLOW,
		   "SYS_ADMIN: clone(CLONE_NEWNS) allowed");
	TAP_EQ_INT(call(n, SYS_settimeofday, 0, 0), TE_SECCOMP_RET_ALLOW, "SYS_TIME: settimeofday");
	TAP_EQ_INT(call(n, SYS_ptrace, 0, 0), TE_SECCOMP_RET_ALLOW, "SYS_PTRACE: ptrace");
	TAP_EQ_INT(call(n, SYS_reboot, 0, 0), TE_SECCOMP_RET_USER_NOTIF, "no SYS_BOOT: reboot denied");
	TAP_EQ_INT(call(n, SYS_ioctl, 0, TIOCSTI), TE_SECCOMP_RET_USER_NOTIF,
		   "caps: TIOCSTI still denied");
	s.capabilities = ~0ull;
	n = te_seccomp_build(&s, prog, te_seccomp_max_insns(&s));
	TAP_OK(n > 0, "every capability: the program fits its room (%d)", n);
	TAP_EQ_INT(call(n, SYS_bpf, 0, 0), TE_SECCOMP_RET_ALLOW, "every capability: bpf");
	spec_default(&s);
	s.seccomp_kill = true;
	n = te_seccomp_build(&s, prog, CAP);
	TAP_EQ_INT(call(n, SYS_mount, 0, 0), TE_SECCOMP_RET_KILL_PROCESS, "kill action");
	TAP_EQ_INT(call(n, SYS_read, 0, 0), TE_SECCOMP_RET_ALLOW, "kill action: read");
	spec_default(&s);
	s.seccomp_unconfined = true;
	TAP_EQ_INT(te_seccomp_build(&s, prog, CAP), 0, "unconfined: no program");
}

static const char *doc_with(const char *seccomp)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf),
		 "{\"modulesContent\":{\"$edgeAgent\":{\"properties.desired\":{"
		 "\"modules\":{\"m\":{\"type\":\"native\",\"settings\":{\"image\":"
		 "\"/bin/sh\",\"createOptions\":{%s}}}}}}}}", seccomp);
	return buf;
}

struct collect {
	struct te_diag d;
	char last[512];
};

static void collect_emit(struct te_diag *d, const char *file, unsigned line,
			 unsigned col, const char *msg)
{
	snprintf(((struct collect *)d)->last, sizeof(((struct collect *)d)->last),
		 "%s", msg);
}

static int parse(const char *co, struct te_manifest *m, struct collect *c)
{
	const char *t = doc_with(co);

	memset(c, 0, sizeof(*c));
	c->d.emit = collect_emit;
	te_manifest_init(m);
	return te_manifest_parse(m, "t.json", t, strlen(t), &c->d);
}

static void test_manifest(void)
{
	struct te_manifest m;
	struct collect c;

	TAP_EQ_INT(parse("", &m, &c), 0, "no seccomp key");
	TAP_OK(!m.modules[0].seccomp_unconfined && !m.modules[0].seccomp_kill &&
	       !m.modules[0].nseccomp_extra, "default profile, errno action");
	te_manifest_free(&m);
	TAP_EQ_INT(parse("\"seccomp\":\"unconfined\"", &m, &c), 0, "unconfined");
	TAP_OK(m.modules[0].seccomp_unconfined, "unconfined set");
	te_manifest_free(&m);
	TAP_EQ_INT(parse("\"seccomp\":[\"mount\",\"ptrace\"],\"seccompAction\":\"kill\"",
			 &m, &c), 0, "a list and kill");
	TAP_OK(m.modules[0].nseccomp_extra == 2 && m.modules[0].seccomp_kill &&
	       !strcmp(m.modules[0].seccomp_extra[1], "ptrace"), "two extras, kill");
	te_manifest_free(&m);
	TAP_OK(parse("\"seccomp\":[\"read\",\"mountt\"]", &m, &c) < 0 &&
	       strstr(c.last, "seccomp[1]") && strstr(c.last, "mountt"),
	       "unknown name names its index: %s", c.last);
	te_manifest_free(&m);
	TAP_OK(parse("\"seccomp\":\"strict\"", &m, &c) < 0 &&
	       strstr(c.last, "seccomp"), "bad mode: %s", c.last);
	te_manifest_free(&m);
	TAP_OK(parse("\"seccompAction\":\"trap\"", &m, &c) < 0 &&
	       strstr(c.last, "seccompAction"), "bad action: %s", c.last);
	te_manifest_free(&m);
	TAP_OK(parse("\"seccomp\":\"unconfined\",\"seccompAction\":\"kill\"", &m, &c) < 0,
	       "an action without a profile: %s", c.last);
	te_manifest_free(&m);
	TAP_OK(parse("\"seccomp\":[1]", &m, &c) < 0, "a number in the list: %s", c.last);
	te_manifest_free(&m);
}

/* ---- real filters in forked children ---- */

static void send_fd(int sock, int fd)
{
	char c = 'N', b[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &c, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = b, .msg_controllen = sizeof(b) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	memset(b, 0, sizeof(b));
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	if (sendmsg(sock, &mh, 0) != 1)
		_exit(100);
}

static int recv_fd(int sock)
{
	char c, b[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &c, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = b, .msg_controllen = sizeof(b) };
	int fd = -1;

	if (recvmsg(sock, &mh, 0) == 1 && CMSG_FIRSTHDR(&mh))
		memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof(int));
	return fd;
}

/* The child's exit: errno of keyctl (twice) and of mount, or 200+. Only
 * raw syscalls and _exit after the filter: no sanitizer runtime at exit. */
static _Noreturn void child(int n, int sock, bool twice)
{
	int fd, e1, e2;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    te_seccomp_install(prog, (unsigned)n, &fd) < 0)
		_exit(201);
	if (twice) {
		/* a second listener is refused: this one answers EPERM itself */
		int fd2;

		if (te_seccomp_install(prog, (unsigned)n, &fd2) < 0 || fd2 != -1)
			_exit(202);
	}
	if (fd >= 0) {
		send_fd(sock, fd);
		close(fd);
	}
	e1 = syscall(SYS_keyctl, 0, -3, 0) < 0 ? errno : 0;
	e2 = syscall(SYS_mount, "none", "/nonexistent", "tmpfs", 0, NULL) < 0 ? errno : 0;
	if (syscall(SYS_getpid) <= 0)
		_exit(203);
	_exit(e1 == e2 ? e1 : 204);
}

static bool done;
static int status;

static void on_child(struct te_loop *l, struct te_child *c, int st)
{
	done = true;
	status = st;
}

static void run_child(struct te_module_spec *s, bool twice, struct te_seccomp_mon *mon)
{
	struct te_loop loop;
	struct te_child ch = { .cb = on_child };
	int sv[2], n = te_seccomp_build(s, prog, CAP), fd = -1;
	uint64_t end;

	te_seccomp_mon_init(mon, "unit");
	if (te_loop_init(&loop) < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
		abort();
	done = false;
	ch.pid = fork();
	if (ch.pid == 0)
		child(n, sv[1], twice);
	close(sv[1]);
	te_child_add(&loop, &ch);
	if (!s->seccomp_kill && !twice)
		fd = recv_fd(sv[0]);
	if (fd >= 0)
		te_seccomp_mon_start(&loop, mon, fd);
	end = te_now_ms() + 10000;
	while (!done && te_now_ms() < end)
		te_loop_turn(&loop, 100);
	te_seccomp_mon_stop(&loop, mon);
	close(sv[0]);
	te_loop_close(&loop);
}

static void test_real(void)
{
	struct te_module_spec s;
	struct te_seccomp_mon mon;

	spec_default(&s);
	run_child(&s, false, &mon);
	TAP_OK(done && WIFEXITED(status) && WEXITSTATUS(status) == EPERM,
	       "errno action: keyctl and mount get EPERM (status 0x%x)", status);
	TAP_EQ_INT(mon.denied, 2, "the listener counted two denials");
	TAP_OK(mon.nby == 2 && mon.by[0].nr == SYS_keyctl && mon.by[0].n == 1 &&
	       mon.by[1].nr == SYS_mount, "per syscall: keyctl, mount");
	run_child(&s, true, &mon);
	TAP_OK(done && WIFEXITED(status) && WEXITSTATUS(status) == EPERM,
	       "without a listener: EPERM from the filter (status 0x%x)", status);
	TAP_EQ_INT(mon.denied, 0, "nothing counted");
	s.seccomp_kill = true;
	run_child(&s, false, &mon);
	TAP_OK(done && WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
	       "kill action: SIGSYS (status 0x%x)", status);
	te_seccomp_mon_count(&mon, -1);
	te_seccomp_mon_count(&mon, -1);
	TAP_OK(mon.denied == 2 && mon.nby == 1 && mon.by[0].n == 2,
	       "kill exits counted under one entry");
}

int main(void)
{
	test_table();
	test_default_program();
	test_variants();
	test_manifest();
	if (geteuid() == 0 || prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) >= 0)
		test_real();
	return tap_done();
}
