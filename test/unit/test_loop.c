/* Unit tests for src/core/loop.c. Nothing here asserts a duration: waits are
 * bounded by turn counts, and an alarm() turns a hang into a failure. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/wait.h>

#include "loop.h"
#include "tap.h"

#define container_of(p, type, member) \
	((type *)((char *)(p) - offsetof(type, member)))

#define MAX_TURNS 200
#define TURN_MS 100

/* Turn until *counter reaches want or MAX_TURNS have passed. */
static void turn_until(struct te_loop *loop, const int *counter, int want)
{
	int i;

	for (i = 0; i < MAX_TURNS && *counter < want; i++)
		te_loop_turn(loop, TURN_MS);
}

static bool is_blocked(int signo)
{
	sigset_t cur;

	sigprocmask(SIG_BLOCK, NULL, &cur);
	return sigismember(&cur, signo);
}

/* ---- timers ------------------------------------------------------------- */

struct rec_timer {
	struct te_timer t;
	int id;
	int fired;
};

static int order[8], norder;

static void rec_cb(struct te_loop *loop, struct te_timer *t)
{
	struct rec_timer *r = container_of(t, struct rec_timer, t);

	r->fired++;
	if (norder < 8)
		order[norder++] = r->id;
}

static void rec_init(struct rec_timer *r, int id)
{
	memset(r, 0, sizeof(*r));
	r->t.cb = rec_cb;
	r->id = id;
}

static void test_timer_order(void)
{
	struct te_loop loop;
	struct rec_timer a, b, c, x, y, z;
	uint64_t d;

	te_loop_init(&loop);
	rec_init(&a, 1);
	rec_init(&b, 2);
	rec_init(&c, 3);
	norder = 0;
	te_timer_set(&loop, &a.t, 30);
	te_timer_set(&loop, &b.t, 10);
	te_timer_set(&loop, &c.t, 20);
	turn_until(&loop, &norder, 3);
	TAP_EQ_INT(norder, 3, "three timers fired");
	TAP_OK(order[0] == 2 && order[1] == 3 && order[2] == 1,
	       "timers fire in deadline order (got %d %d %d)", order[0],
	       order[1], order[2]);

	rec_init(&x, 4);
	rec_init(&y, 5);
	rec_init(&z, 6);
	norder = 0;
	d = te_now_ms();
	te_timer_set_at(&loop, &x.t, d);
	te_timer_set_at(&loop, &y.t, d);
	te_timer_set_at(&loop, &z.t, d);
	te_loop_turn(&loop, 0);
	TAP_OK(norder == 3 && order[0] == 4 && order[1] == 5 && order[2] == 6,
	       "equal deadlines fire in arming order");
	TAP_OK(!loop.timers && !x.t.active, "fired timers are unlinked");
	te_loop_close(&loop);
}

static void test_timerfd_arming(void)
{
	struct te_loop loop;
	struct rec_timer a, b, c, d;
	struct pollfd pfd;

	te_loop_init(&loop);
	rec_init(&a, 1);
	rec_init(&b, 2);
	rec_init(&c, 3);
	rec_init(&d, 4);
	te_timer_set(&loop, &a.t, 100000);
	TAP_EQ_INT(loop.timerfd_deadline, a.t.deadline, "timerfd armed for a");
	te_timer_set(&loop, &b.t, 50000);
	TAP_EQ_INT(loop.timerfd_deadline, b.t.deadline,
		   "earlier timer re-arms timerfd");
	te_timer_set(&loop, &c.t, 200000);
	TAP_EQ_INT(loop.timerfd_deadline, b.t.deadline,
		   "later timer leaves timerfd alone");
	te_timer_cancel(&loop, &b.t);
	TAP_EQ_INT(loop.timerfd_deadline, a.t.deadline,
		   "cancelling the head re-arms for the next");
	te_timer_cancel(&loop, &a.t);
	te_timer_cancel(&loop, &c.t);
	TAP_EQ_INT(loop.timerfd_deadline, 0, "no timers: timerfd disarmed");

	te_timer_set(&loop, &d.t, 20);
	pfd.fd = loop.timerfd;
	pfd.events = POLLIN;
	TAP_EQ_INT(poll(&pfd, 1, 10000), 1, "timerfd rings at the deadline");
	te_loop_turn(&loop, 0);
	TAP_EQ_INT(d.fired, 1, "the timer fires on the turn after the ring");
	TAP_EQ_INT(poll(&pfd, 1, 0), 0, "timerfd drained and disarmed");
	te_loop_close(&loop);
}

static void test_timer_cancel(void)
{
	struct te_loop loop;
	struct rec_timer a, b;

	te_loop_init(&loop);
	rec_init(&a, 1);
	rec_init(&b, 2);
	te_timer_set(&loop, &a.t, 0);
	te_timer_set(&loop, &b.t, 0);
	te_timer_cancel(&loop, &a.t);
	te_timer_cancel(&loop, &a.t);
	te_loop_turn(&loop, 0);
	TAP_OK(a.fired == 0 && b.fired == 1,
	       "cancelled timer does not fire, the other does");
	te_loop_close(&loop);
}

static int rearm_count;

static void rearm_cb(struct te_loop *loop, struct te_timer *t)
{
	if (++rearm_count < 3)
		te_timer_set(loop, t, 0);
}

static void rearm_past_cb(struct te_loop *loop, struct te_timer *t)
{
	if (++rearm_count < 3)
		te_timer_set_at(loop, t, 0);
}

static void test_timer_rearm(void)
{
	struct te_loop loop;
	struct te_timer t = { .cb = rearm_cb }, p = { .cb = rearm_past_cb };

	te_loop_init(&loop);
	rearm_count = 0;
	te_timer_set(&loop, &t, 0);
	te_loop_turn(&loop, 0);
	TAP_OK(rearm_count == 1 && t.active,
	       "re-armed with delay 0 from its callback: once per turn");
	te_loop_turn(&loop, 0);
	TAP_EQ_INT(rearm_count, 2, "fires again on the next turn");
	turn_until(&loop, &rearm_count, 3);
	TAP_OK(rearm_count == 3 && !t.active && !loop.timers,
	       "stops after it no longer re-arms");

	rearm_count = 0;
	te_timer_set(&loop, &p, 0);
	te_loop_turn(&loop, 0);
	TAP_EQ_INT(rearm_count, 1,
		   "re-armed for a past deadline: still once per turn");
	turn_until(&loop, &rearm_count, 3);
	te_loop_close(&loop);
}

static void test_timer_zero(void)
{
	struct te_loop loop;
	struct rec_timer a, b;

	te_loop_init(&loop);
	rec_init(&a, 1);
	rec_init(&b, 2);
	te_timer_set(&loop, &a.t, 0);
	TAP_EQ_INT(a.fired, 0, "a timer does not fire outside a turn");
	te_loop_turn(&loop, -1); /* would hang if -1 were not capped */
	TAP_EQ_INT(a.fired, 1, "delay 0 fires on the next turn(-1)");
	te_timer_set_at(&loop, &b.t, 0);
	te_loop_turn(&loop, -1);
	TAP_EQ_INT(b.fired, 1, "a deadline in the past fires on the next turn");
	te_loop_close(&loop);
}

static struct rec_timer *victim;

static void killer_cb(struct te_loop *loop, struct te_timer *t)
{
	rec_cb(loop, t);
	te_timer_cancel(loop, &victim->t);
}

static void test_timer_cancel_other(void)
{
	struct te_loop loop;
	struct rec_timer a, b;
	uint64_t d;

	te_loop_init(&loop);
	rec_init(&a, 1);
	rec_init(&b, 2);
	a.t.cb = killer_cb;
	victim = &b;
	d = te_now_ms();
	te_timer_set_at(&loop, &a.t, d);
	te_timer_set_at(&loop, &b.t, d);
	te_loop_turn(&loop, 0);
	TAP_OK(a.fired == 1 && b.fired == 0 && !b.t.active,
	       "a callback cancelling another due timer stops it firing");
	te_loop_close(&loop);
}

/* ---- io ----------------------------------------------------------------- */

struct rec_io {
	struct te_io io;
	struct rec_io *other;
	int calls;
	uint32_t revents;
};

static void rec_io_cb(struct te_loop *loop, struct te_io *io, uint32_t revents)
{
	struct rec_io *r = container_of(io, struct rec_io, io);
	char c;

	r->calls++;
	r->revents = revents;
	if (revents & EPOLLIN) {
		if (read(io->fd, &c, 1) < 0)
			r->revents = 0;
	}
	if (r->other)
		te_io_del(loop, &r->other->io);
}

static void test_io_readable(void)
{
	struct te_loop loop;
	struct rec_io r = { .io.cb = rec_io_cb }, w = { .io.cb = rec_io_cb };
	int p[2];

	te_loop_init(&loop);
	pipe2(p, O_NONBLOCK | O_CLOEXEC);
	r.io.fd = p[0];
	TAP_EQ_INT(te_io_add(&loop, &r.io, EPOLLIN), 0, "te_io_add");
	TAP_EQ_INT(te_io_add(&loop, &r.io, EPOLLIN), -EEXIST,
		   "adding twice is -EEXIST");
	te_loop_turn(&loop, 0);
	TAP_EQ_INT(r.calls, 0, "empty pipe: no callback");
	TAP_EQ_INT(write(p[1], "x", 1), 1, "write a byte");
	te_loop_turn(&loop, 10000);
	TAP_OK(r.calls == 1 && (r.revents & EPOLLIN),
	       "readable pipe: callback with EPOLLIN");

	w.io.fd = p[1];
	te_io_add(&loop, &w.io, EPOLLIN);
	te_loop_turn(&loop, 0);
	TAP_EQ_INT(w.calls, 0, "write end watched for EPOLLIN: quiet");
	TAP_EQ_INT(te_io_mod(&loop, &w.io, EPOLLOUT), 0, "te_io_mod");
	te_loop_turn(&loop, 10000);
	TAP_OK(w.calls == 1 && (w.revents & EPOLLOUT) &&
	       w.io.events == EPOLLOUT, "after mod: callback with EPOLLOUT");
	te_io_del(&loop, &w.io);
	te_io_del(&loop, &w.io);
	te_loop_turn(&loop, 0);
	TAP_OK(w.calls == 1 && !w.io.active, "deleted io is quiet");
	te_io_del(&loop, &r.io);
	close(p[0]);
	close(p[1]);
	te_loop_close(&loop);
}

static void test_io_del_other(void)
{
	struct te_loop loop;
	struct rec_io a = { .io.cb = rec_io_cb }, b = { .io.cb = rec_io_cb };
	int p[2], q[2];

	te_loop_init(&loop);
	pipe2(p, O_NONBLOCK | O_CLOEXEC);
	pipe2(q, O_NONBLOCK | O_CLOEXEC);
	a.io.fd = p[0];
	b.io.fd = q[0];
	a.other = &b;
	b.other = &a;
	te_io_add(&loop, &a.io, EPOLLIN);
	te_io_add(&loop, &b.io, EPOLLIN);
	TAP_OK(write(p[1], "x", 1) == 1 && write(q[1], "y", 1) == 1,
	       "both pipes readable");
	te_loop_turn(&loop, 10000);
	TAP_EQ_INT(a.calls + b.calls, 1,
		   "io deleted by a callback in the same turn is not dispatched");
	TAP_OK(a.io.active != b.io.active, "exactly one io still watched");
	te_loop_turn(&loop, 0);
	TAP_EQ_INT(a.calls + b.calls, 1, "and the deleted one stays quiet");
	te_io_del(&loop, &a.io);
	te_io_del(&loop, &b.io);
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
	te_loop_close(&loop);
}

/* ---- signals ------------------------------------------------------------ */

struct rec_sig {
	struct te_sig s;
	struct rec_sig *other;
	int calls;
	int signo;
};

static int sig_total;

static void rec_sig_cb(struct te_loop *loop, struct te_sig *s,
		       const struct signalfd_siginfo *si)
{
	struct rec_sig *r = container_of(s, struct rec_sig, s);

	r->calls++;
	r->signo = (int)si->ssi_signo;
	sig_total++;
	if (r->other)
		te_signal_del(loop, &r->other->s);
}

static void rec_sig_init(struct rec_sig *r, int signo)
{
	memset(r, 0, sizeof(*r));
	r->s.signo = signo;
	r->s.cb = rec_sig_cb;
}

static void raise_and_wait(struct te_loop *loop, int signo)
{
	int want = sig_total + 1;

	raise(signo);
	turn_until(loop, &sig_total, want);
}

static void test_signals(void)
{
	struct te_loop loop;
	struct rec_sig s1, s2, bad;

	te_loop_init(&loop);
	rec_sig_init(&s1, SIGUSR1);
	rec_sig_init(&s2, SIGUSR1);
	rec_sig_init(&bad, SIGKILL);
	sig_total = 0;
	TAP_EQ_INT(te_signal_add(&loop, &bad.s), -EINVAL, "SIGKILL refused");
	TAP_EQ_INT(te_signal_add(&loop, &s1.s), 0, "te_signal_add(SIGUSR1)");
	TAP_EQ_INT(te_signal_add(&loop, &s1.s), -EEXIST, "adding twice");
	TAP_OK(is_blocked(SIGUSR1), "SIGUSR1 blocked while watched");
	raise_and_wait(&loop, SIGUSR1);
	TAP_OK(s1.calls == 1 && s1.signo == SIGUSR1,
	       "callback with ssi_signo == SIGUSR1");

	te_signal_add(&loop, &s2.s);
	raise_and_wait(&loop, SIGUSR1);
	TAP_OK(s1.calls == 2 && s2.calls == 1,
	       "two handles on one signal: both called");
	te_signal_del(&loop, &s1.s);
	TAP_OK(is_blocked(SIGUSR1), "still blocked while s2 watches");
	raise_and_wait(&loop, SIGUSR1);
	TAP_OK(s1.calls == 2 && s2.calls == 2, "deleted handle not called");
	te_signal_del(&loop, &s2.s);
	TAP_OK(!is_blocked(SIGUSR1), "unblocked once nobody watches");

	te_signal_add(&loop, &s1.s);
	raise_and_wait(&loop, SIGUSR1);
	TAP_EQ_INT(s1.calls, 3, "re-added handle works");

	/* Each deletes the other: whichever runs first must stop the other. */
	te_signal_add(&loop, &s2.s);
	s1.other = &s2;
	s2.other = &s1;
	raise_and_wait(&loop, SIGUSR1);
	te_loop_turn(&loop, 0);
	TAP_EQ_INT((s1.calls - 3) + (s2.calls - 2), 1,
		   "handle deleted during dispatch is not called");
	te_signal_del(&loop, &s1.s);
	te_signal_del(&loop, &s2.s);
	TAP_OK(!is_blocked(SIGUSR1) && !loop.sigs, "all handles gone");
	te_loop_close(&loop);
}

static void test_signal_masks(void)
{
	struct te_loop loop;
	struct rec_sig s;
	sigset_t usr2;

	TAP_OK(!is_blocked(SIGCHLD), "SIGCHLD unblocked before init");
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	sigprocmask(SIG_BLOCK, &usr2, NULL);
	te_loop_init(&loop);
	TAP_OK(is_blocked(SIGCHLD), "te_loop_init blocks SIGCHLD");
	rec_sig_init(&s, SIGUSR2);
	te_signal_add(&loop, &s.s);
	te_signal_del(&loop, &s.s);
	TAP_OK(is_blocked(SIGUSR2), "a signal blocked before init stays blocked");
	te_loop_close(&loop);
	TAP_OK(!is_blocked(SIGCHLD) && is_blocked(SIGUSR2),
	       "te_loop_close restores the saved mask");
	sigprocmask(SIG_UNBLOCK, &usr2, NULL);
}

/* ---- children ----------------------------------------------------------- */

#define NKIDS 50

struct kid {
	struct te_child c;
	int want;
	int status;
	int done;
};

static int kids_done;
static int orphans;
static pid_t orphan_pid;
static int orphan_status;

static void kid_cb(struct te_loop *loop, struct te_child *c, int status)
{
	struct kid *k = container_of(c, struct kid, c);

	k->status = status;
	k->done++;
	kids_done++;
}

static void orphan_cb(struct te_loop *loop, pid_t pid, int status)
{
	orphans++;
	orphan_pid = pid;
	orphan_status = status;
}

static pid_t spawn_exit(int code)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(code);
	return pid;
}

static void test_children_many(void)
{
	static struct kid kids[NKIDS];
	struct te_loop loop;
	int i, added = 0, matched = 0;

	te_loop_init(&loop);
	loop.on_orphan = orphan_cb;
	kids_done = orphans = 0;
	for (i = 0; i < NKIDS; i++) {
		memset(&kids[i], 0, sizeof(kids[i]));
		kids[i].want = i % 256;
		kids[i].c.cb = kid_cb;
		kids[i].c.pid = spawn_exit(kids[i].want);
		if (kids[i].c.pid > 0 && te_child_add(&loop, &kids[i].c) == 0)
			added++;
	}
	TAP_EQ_INT(added, NKIDS, "forked and watched %d children", NKIDS);
	turn_until(&loop, &kids_done, NKIDS);
	TAP_EQ_INT(kids_done, NKIDS, "every child reported");
	for (i = 0; i < NKIDS; i++)
		if (kids[i].done == 1 && WIFEXITED(kids[i].status) &&
		    WEXITSTATUS(kids[i].status) == kids[i].want &&
		    !kids[i].c.active)
			matched++;
	TAP_EQ_INT(matched, NKIDS, "every exit status matched its child");
	TAP_EQ_INT(orphans, 0, "no orphans");
	TAP_OK(!loop.children, "child list empty");
	te_loop_close(&loop);
}

static void test_children_misc(void)
{
	struct te_loop loop;
	struct kid k = { .c.cb = kid_cb }, bad = { .c.cb = kid_cb };
	pid_t pid;

	te_loop_init(&loop);
	loop.on_orphan = orphan_cb;
	kids_done = orphans = 0;

	bad.c.pid = 0;
	TAP_EQ_INT(te_child_add(&loop, &bad.c), -EINVAL, "pid 0 refused");
	bad.c.pid = getpid();
	TAP_EQ_INT(te_child_add(&loop, &bad.c), -ECHILD,
		   "a pid that is not our child refused");

	pid = spawn_exit(7);
	turn_until(&loop, &orphans, 1);
	TAP_OK(orphans == 1 && orphan_pid == pid &&
	       WIFEXITED(orphan_status) && WEXITSTATUS(orphan_status) == 7,
	       "unwatched child goes to on_orphan");

	k.c.pid = spawn_exit(3);
	te_child_add(&loop, &k.c);
	te_child_del(&loop, &k.c);
	turn_until(&loop, &orphans, 2);
	TAP_OK(orphans == 2 && orphan_pid == k.c.pid && k.done == 0,
	       "child unwatched with te_child_del goes to on_orphan");

	k.c.pid = fork();
	if (k.c.pid == 0)
		for (;;)
			pause();
	te_child_add(&loop, &k.c);
	kill(k.c.pid, SIGKILL);
	turn_until(&loop, &kids_done, 1);
	TAP_OK(k.done == 1 && WIFSIGNALED(k.status) &&
	       WTERMSIG(k.status) == SIGKILL, "killed child reports WIFSIGNALED");
	te_loop_close(&loop);
}

/* The handle is unlinked before cb runs, so cb may reuse it for a new pid. */
static int chain_left, chain_ok;

static void chain_cb(struct te_loop *loop, struct te_child *c, int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == chain_left && !c->active)
		chain_ok++;
	if (--chain_left > 0) {
		c->pid = spawn_exit(chain_left);
		te_child_add(loop, c);
	}
}

static void test_children_chain(void)
{
	struct te_loop loop;
	struct te_child c = { .cb = chain_cb };
	int i;

	te_loop_init(&loop);
	chain_left = 3;
	chain_ok = 0;
	c.pid = spawn_exit(chain_left);
	te_child_add(&loop, &c);
	for (i = 0; i < MAX_TURNS && chain_left > 0; i++)
		te_loop_turn(&loop, TURN_MS);
	TAP_EQ_INT(chain_ok, 3, "child cb re-adds its handle for a new pid");
	te_loop_close(&loop);
}

/* SIGCHLD set to SIG_IGN (it survives exec) makes the kernel reap children
 * itself; te_loop_init must undo that or no exit is ever reported. */
static void test_children_sigign(void)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, cur;
	struct te_loop loop;
	struct kid k = { .c.cb = kid_cb };

	sigaction(SIGCHLD, &ign, NULL);
	te_loop_init(&loop);
	sigaction(SIGCHLD, NULL, &cur);
	TAP_OK(cur.sa_handler == SIG_DFL, "te_loop_init resets SIGCHLD SIG_IGN");
	kids_done = 0;
	k.c.pid = spawn_exit(5);
	te_child_add(&loop, &k.c);
	turn_until(&loop, &kids_done, 1);
	TAP_OK(k.done == 1 && WIFEXITED(k.status) && WEXITSTATUS(k.status) == 5,
	       "exit reported although SIGCHLD was ignored before init");
	te_loop_close(&loop);
	ign.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &ign, NULL);
}

/* ---- eventfd ------------------------------------------------------------ */

static int ev_sum, ev_calls;

static void ev_cb(struct te_loop *loop, struct te_event *ev, uint64_t count)
{
	ev_sum += (int)count;
	ev_calls++;
}

static void *ev_thread(void *arg)
{
	struct te_event *ev = arg;
	int i;

	for (i = 0; i < 3; i++)
		te_event_signal(ev);
	return NULL;
}

static void test_eventfd(void)
{
	struct te_loop loop;
	struct te_event ev = { .cb = ev_cb };
	pthread_t th;
	int calls;

	te_loop_init(&loop);
	ev_sum = ev_calls = 0;
	TAP_EQ_INT(te_event_open(&loop, &ev), 0, "te_event_open");
	TAP_EQ_INT(pthread_create(&th, NULL, ev_thread, &ev), 0,
		   "signalling thread started");
	turn_until(&loop, &ev_sum, 3);
	pthread_join(th, NULL);
	TAP_EQ_INT(ev_sum, 3, "three signals from a thread sum to 3");
	calls = ev_calls;
	te_loop_turn(&loop, 0);
	TAP_EQ_INT(ev_calls, calls, "counter reset: no further callback");
	te_event_close(&loop, &ev);
	TAP_OK(ev.io.fd == -1 && !ev.io.active, "te_event_close");
	te_loop_close(&loop);
}

/* ---- hooks -------------------------------------------------------------- */

struct rec_hook {
	struct te_hook h;
	struct rec_hook *other;
	int calls;
	int limit; /* remove itself after this many calls; 0 = never */
};

static void rec_hook_cb(struct te_loop *loop, struct te_hook *h)
{
	struct rec_hook *r = container_of(h, struct rec_hook, h);

	r->calls++;
	if (r->limit && r->calls >= r->limit)
		te_hook_del(loop, h);
	if (r->other)
		te_hook_del(loop, &r->other->h);
}

static void test_hooks(void)
{
	struct te_loop loop;
	struct rec_hook a = { .h.cb = rec_hook_cb };
	struct rec_hook b = { .h.cb = rec_hook_cb, .limit = 2 };
	struct rec_hook c = { .h.cb = rec_hook_cb };
	struct rec_hook d = { .h.cb = rec_hook_cb };
	int i;

	te_loop_init(&loop);
	te_hook_add(&loop, &a.h);
	te_hook_add(&loop, &b.h);
	te_hook_add(&loop, &a.h);
	for (i = 0; i < 5; i++)
		te_loop_turn(&loop, 0);
	TAP_EQ_INT(a.calls, 5, "hook runs once per turn");
	TAP_OK(b.calls == 2 && !b.h.active, "hook removing itself stops");

	c.other = &d;
	d.other = &c;
	te_hook_add(&loop, &c.h);
	te_hook_add(&loop, &d.h);
	te_loop_turn(&loop, 0);
	TAP_EQ_INT(c.calls + d.calls, 1,
		   "hook removed by another in the same pass is not run");
	TAP_EQ_INT(a.calls, 6, "other hooks unaffected");
	te_hook_del(&loop, &a.h);
	te_hook_del(&loop, &c.h);
	te_hook_del(&loop, &d.h);
	TAP_OK(!loop.hooks, "hook list empty");
	te_loop_close(&loop);
}

/* ---- stop --------------------------------------------------------------- */

static void stop_timer_cb(struct te_loop *loop, struct te_timer *t)
{
	rec_cb(loop, t);
	te_loop_stop(loop);
}

static void stop_hook_cb(struct te_loop *loop, struct te_hook *h)
{
	te_hook_del(loop, h);
	te_loop_stop(loop);
}

static void test_stop(void)
{
	struct te_loop loop;
	struct rec_timer a, b;
	struct te_hook h = { .cb = stop_hook_cb };

	te_loop_init(&loop);
	rec_init(&a, 1);
	rec_init(&b, 2);
	a.t.cb = stop_timer_cb;
	te_timer_set(&loop, &a.t, 10);
	TAP_EQ_INT(te_loop_run(&loop), 0, "te_loop_run returns 0");
	TAP_EQ_INT(a.fired, 1, "te_loop_stop from a timer ends te_loop_run");
	b.t.cb = stop_timer_cb;
	te_timer_set(&loop, &b.t, 10);
	te_loop_run(&loop);
	TAP_EQ_INT(b.fired, 1, "te_loop_run can run again");
	te_hook_add(&loop, &h);
	TAP_EQ_INT(te_loop_run(&loop), 0,
		   "te_loop_stop from a hook does not sleep");
	te_loop_close(&loop);
}

/* ---- te_loop_child_reset_signals ---------------------------------------- */

/* "Name:\t<hex>" from /proc/self/status is all zeros. */
static bool status_zero(const char *buf, const char *name)
{
	const char *p = strstr(buf, name);

	if (!p)
		return false;
	for (p += strlen(name); *p == ':' || *p == '\t'; p++)
		;
	for (; *p && *p != '\n'; p++)
		if (*p != '0')
			return false;
	return true;
}

/* Exit codes: 0 ok, 10 unreadable, 11 SigBlk, 12 SigIgn, 13 SIGTERM. */
static void child_check_signals(bool reset)
{
	static char buf[8192];
	ssize_t n, len = 0;
	int fd;

	if (reset)
		te_loop_child_reset_signals();
	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		_exit(10);
	while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += n;
	buf[len] = 0;
	if (!status_zero(buf, "\nSigBlk"))
		_exit(11);
	if (!status_zero(buf, "\nSigIgn"))
		_exit(12);
	if (is_blocked(SIGTERM))
		_exit(13);
	_exit(0);
}

static int check_child(struct te_loop *loop, bool reset)
{
	struct kid k = { .c.cb = kid_cb };

	kids_done = 0;
	k.c.pid = fork();
	if (k.c.pid == 0)
		child_check_signals(reset);
	te_child_add(loop, &k.c);
	turn_until(loop, &kids_done, 1);
	if (!k.done || !WIFEXITED(k.status))
		return -1;
	return WEXITSTATUS(k.status);
}

static void test_child_reset_signals(void)
{
	struct te_loop loop;
	struct sigaction ign = { .sa_handler = SIG_IGN }, dfl = { 0 };
	sigset_t term;

	te_loop_init(&loop);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);
	sigaction(SIGUSR2, &ign, NULL);
	TAP_OK(is_blocked(SIGTERM), "SIGTERM blocked in the parent");
	TAP_EQ_INT(check_child(&loop, false), 11,
		   "without reset the child inherits a blocked mask");
	TAP_EQ_INT(check_child(&loop, true), 0,
		   "after reset: SigBlk and SigIgn zero, SIGTERM unblocked");
	dfl.sa_handler = SIG_DFL;
	sigaction(SIGUSR2, &dfl, NULL);
	sigprocmask(SIG_UNBLOCK, &term, NULL);
	te_loop_close(&loop);
}

int main(void)
{
	uint64_t t0 = te_now_ms(), t1;

	setvbuf(stdout, NULL, _IONBF, 0); /* no duplicated output after fork */
	alarm(120); /* a hang is a failure, not a stuck build */
	t1 = te_now_ms();
	TAP_OK(t0 > 0 && t1 >= t0, "te_now_ms is monotonic");
	test_timer_order();
	test_timerfd_arming();
	test_timer_cancel();
	test_timer_rearm();
	test_timer_zero();
	test_timer_cancel_other();
	test_io_readable();
	test_io_del_other();
	test_signals();
	test_signal_masks();
	test_children_many();
	test_children_misc();
	test_children_chain();
	test_children_sigign();
	test_eventfd();
	test_hooks();
	test_stop();
	test_child_reset_signals();
	return tap_done();
}
