/* The event loop (loop.h): epoll + signalfd + timerfd, no allocation.
 *
 * Signals are process-wide but masks are per thread: te_loop_init and
 * te_signal_add block signals in the calling thread only. Create threads
 * after them (threads inherit the mask) or block the signals in each thread,
 * or a process-directed signal may be delivered to a thread that does not
 * block it. One te_loop per process: the loop owns SIGCHLD and reaps every
 * child with waitpid(-1), so nothing else in the process may wait for its
 * children (no system(), no popen()).
 *
 * The loop is not reentrant: a callback must not call te_loop_turn or
 * te_loop_run.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#include "loop.h"

#define LOOP_MAXEV 64
#define LOOP_SIGBATCH 16

#define container_of(p, type, member) \
	((type *)((char *)(p) - offsetof(type, member)))

uint64_t te_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t te_now_ms(void)
{
	return te_now_ns() / 1000000;
}

/* ---- fds ---------------------------------------------------------------- */

static int io_ctl(struct te_loop *loop, struct te_io *io, int op,
		  uint32_t events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = io;
	if (epoll_ctl(loop->epfd, op, io->fd, &ev) < 0)
		return -errno;
	io->events = events;
	return 0;
}

int te_io_add(struct te_loop *loop, struct te_io *io, uint32_t events)
{
	int err = io_ctl(loop, io, EPOLL_CTL_ADD, events);

	if (!err)
		io->active = true;
	return err;
}

int te_io_mod(struct te_loop *loop, struct te_io *io, uint32_t events)
{
	return io_ctl(loop, io, EPOLL_CTL_MOD, events);
}

/* Call before closing io->fd: epoll forgets a closed fd only when no
 * duplicate of it remains open. */
void te_io_del(struct te_loop *loop, struct te_io *io)
{
	int i;

	if (!io->active)
		return;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->active = false;
	/* The owner may free io as soon as we return: forget this turn's
	 * events for it so dispatch never touches it again. */
	for (i = 0; i < loop->nready; i++)
		if (loop->ready[i] == io)
			loop->ready[i] = NULL;
}

/* ---- timers --------------------------------------------------------------
 * loop->timers is sorted by deadline; equal deadlines keep arming order.
 * prev is NULL only for its head.
 * The timerfd is armed for the head's deadline and touched only when that
 * changes (timerfd_deadline caches it). */

static void timer_unlink(struct te_loop *loop, struct te_timer *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		loop->timers = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->next = t->prev = NULL;
	t->active = false;
}

static void timer_insert(struct te_loop *loop, struct te_timer *t)
{
	struct te_timer *prev = NULL, *cur = loop->timers;

	while (cur && cur->deadline <= t->deadline) {
		prev = cur;
		cur = cur->next;
	}
	t->prev = prev;
	t->next = cur;
	if (prev)
		prev->next = t;
	else
		loop->timers = t;
	if (cur)
		cur->prev = t;
	t->active = true;
}

/* If arming fails the timerfd is merely late: te_loop_turn also caps its
 * epoll_wait timeout by the head's deadline. */
static void timer_arm(struct te_loop *loop)
{
	struct itimerspec its;
	uint64_t want = 0;

	if (loop->timers)
		want = loop->timers->deadline ? loop->timers->deadline : 1;
	if (want == loop->timerfd_deadline)
		return;
	memset(&its, 0, sizeof(its)); /* a zero it_value disarms */
	its.it_value.tv_sec = (time_t)(want / 1000);
	its.it_value.tv_nsec = (long)(want % 1000) * 1000000;
	if (timerfd_settime(loop->timerfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		loop->timerfd_deadline = want;
}

void te_timer_set_at(struct te_loop *loop, struct te_timer *t,
		     uint64_t deadline_ms)
{
	if (t->active)
		timer_unlink(loop, t);
	t->deadline = deadline_ms;
	timer_insert(loop, t);
	timer_arm(loop);
}

void te_timer_set(struct te_loop *loop, struct te_timer *t, uint64_t delay_ms)
{
	uint64_t now = te_now_ms();

	if (delay_ms > UINT64_MAX - now)
		delay_ms = UINT64_MAX - now;
	te_timer_set_at(loop, t, now + delay_ms);
}

void te_timer_cancel(struct te_loop *loop, struct te_timer *t)
{
	if (!t->active)
		return;
	timer_unlink(loop, t);
	timer_arm(loop);
}

/* Fire the timers due at the start of the pass, earliest first. They are
 * first moved behind a sentinel on the stack, so each keeps a non-NULL prev
 * and timer_unlink works on them unchanged: a callback may cancel or re-arm
 * any of them. Anything armed during the pass goes to loop->timers and waits
 * for the next turn, so a timer re-arming itself cannot spin. */
static void timer_run(struct te_loop *loop)
{
	struct te_timer due = { .next = loop->timers }, *t, *last = NULL;
	uint64_t now = te_now_ms();

	for (t = loop->timers; t && t->deadline <= now; t = t->next)
		last = t;
	if (!last)
		return;
	loop->timers->prev = &due;
	loop->timers = last->next;
	if (last->next)
		last->next->prev = NULL;
	last->next = NULL;
	timer_arm(loop);
	while ((t = due.next)) {
		timer_unlink(loop, t);
		t->cb(loop, t);
	}
}

static void timer_io_cb(struct te_loop *loop, struct te_io *io,
			uint32_t revents)
{
	uint64_t ticks;
	ssize_t n;

	/* Only clears readiness (EAGAIN: already clear); timer_run reads the
	 * clock itself. */
	n = read(io->fd, &ticks, sizeof(ticks));
	(void)n;
}

/* ---- hooks ---------------------------------------------------------------
 * Hooks and te_sig are singly linked, newest first. Their passes walk with
 * a marker node kept just before the next handle to call: a callback may
 * unlink (and free) any handle, itself included, and the walk resumes from
 * the marker, which only the loop can unlink. Handles added during a pass
 * go to the head, before the marker, and wait for the next pass. Finding
 * the marker's predecessor is a scan; these lists hold a handful. */

static void hook_unlink(struct te_loop *loop, struct te_hook *h)
{
	struct te_hook **pp;

	for (pp = &loop->hooks; *pp; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			h->next = NULL;
			return;
		}
	}
}

static void hook_run(struct te_loop *loop)
{
	struct te_hook mark = { .next = loop->hooks };
	struct te_hook *h;

	loop->hooks = &mark;
	while ((h = mark.next)) {
		hook_unlink(loop, &mark);
		mark.next = h->next;
		h->next = &mark;
		h->cb(loop, h);
	}
	hook_unlink(loop, &mark);
}

void te_hook_add(struct te_loop *loop, struct te_hook *h)
{
	if (h->active)
		return;
	h->next = loop->hooks;
	loop->hooks = h;
	h->active = true;
}

void te_hook_del(struct te_loop *loop, struct te_hook *h)
{
	if (!h->active)
		return;
	hook_unlink(loop, h);
	h->active = false;
}

/* ---- signals -------------------------------------------------------------
 * loop->sigmask is both the signalfd's mask and the set we blocked. SIGCHLD
 * is in it from te_loop_init on, whether or not anyone watches it. */

static void sig_unlink(struct te_loop *loop, struct te_sig *s)
{
	struct te_sig **pp;

	for (pp = &loop->sigs; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			s->next = NULL;
			return;
		}
	}
}

static bool sig_watched(struct te_loop *loop, int signo)
{
	struct te_sig *s;

	for (s = loop->sigs; s; s = s->next)
		if (s->active && s->signo == signo)
			return true;
	return false;
}

/* Block signo, then route it: one raised in between stays pending and the
 * signalfd reports it. */
static int sig_route(struct te_loop *loop, int signo)
{
	sigset_t one, mask = loop->sigmask;
	int err;

	sigemptyset(&one);
	sigaddset(&one, signo);
	if (sigprocmask(SIG_BLOCK, &one, NULL) < 0)
		return -errno;
	sigaddset(&mask, signo);
	if (signalfd(loop->sigfd, &mask, 0) < 0) {
		err = -errno;
		if (!sigismember(&loop->saved_mask, signo))
			sigprocmask(SIG_UNBLOCK, &one, NULL);
		return err;
	}
	loop->sigmask = mask;
	return 0;
}

/* Stop routing signo; unblock it unless it was blocked before te_loop_init.
 * An instance still pending is then delivered to its disposition. */
static void sig_unroute(struct te_loop *loop, int signo)
{
	sigset_t one;

	sigdelset(&loop->sigmask, signo);
	signalfd(loop->sigfd, &loop->sigmask, 0);
	if (sigismember(&loop->saved_mask, signo))
		return;
	sigemptyset(&one);
	sigaddset(&one, signo);
	sigprocmask(SIG_UNBLOCK, &one, NULL);
}

int te_signal_add(struct te_loop *loop, struct te_sig *s)
{
	int err;

	if (s->active)
		return -EEXIST;
	if (s->signo <= 0 || s->signo >= _NSIG || s->signo == SIGKILL ||
	    s->signo == SIGSTOP)
		return -EINVAL;
	if (!sigismember(&loop->sigmask, s->signo)) {
		err = sig_route(loop, s->signo);
		if (err)
			return err;
	}
	s->next = loop->sigs;
	loop->sigs = s;
	s->active = true;
	return 0;
}

void te_signal_del(struct te_loop *loop, struct te_sig *s)
{
	if (!s->active)
		return;
	sig_unlink(loop, s);
	s->active = false;
	if (s->signo != SIGCHLD && !sig_watched(loop, s->signo))
		sig_unroute(loop, s->signo);
}

/* Same marker walk as hook_run. */
static void sig_dispatch(struct te_loop *loop,
			 const struct signalfd_siginfo *si)
{
	struct te_sig mark = { .next = loop->sigs };
	struct te_sig *s;

	loop->sigs = &mark;
	while ((s = mark.next)) {
		sig_unlink(loop, &mark);
		mark.next = s->next;
		s->next = &mark;
		if (s->signo == (int)si->ssi_signo)
			s->cb(loop, s, si);
	}
	sig_unlink(loop, &mark);
}

/* ---- children ------------------------------------------------------------
 * SIGCHLD is blocked from te_loop_init on, so an exit is never lost: it
 * waits in the signalfd and is reaped only from a loop turn. A caller that
 * forks and calls te_child_add before returning to the loop therefore
 * always finds its child's exit, even if the child is already dead. */

static void child_unlink(struct te_loop *loop, struct te_child *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		loop->children = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	c->active = false;
}

static struct te_child *child_find(struct te_loop *loop, pid_t pid)
{
	struct te_child *c;

	for (c = loop->children; c; c = c->next)
		if (c->pid == pid)
			return c;
	return NULL;
}

/* Signals coalesce: one SIGCHLD may stand for many exits, so reap until
 * nothing is left. The handle is unlinked before cb, which may re-add it. */
static void child_reap(struct te_loop *loop)
{
	struct te_child *c;
	int status;
	pid_t pid;

	for (;;) {
		pid = waitpid(-1, &status, WNOHANG);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		c = child_find(loop, pid);
		if (c) {
			child_unlink(loop, c);
			c->cb(loop, c, status);
		} else if (loop->on_orphan) {
			loop->on_orphan(loop, pid, status);
		}
	}
}

int te_child_add(struct te_loop *loop, struct te_child *c)
{
	siginfo_t si;

	if (c->active)
		return -EEXIST;
	if (c->pid <= 0)
		return -EINVAL;
	/* Refuse a pid that is not (or no longer) our child: no exit of it
	 * would ever come. WNOWAIT leaves a zombie for child_reap. */
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return -errno;
	c->prev = NULL;
	c->next = loop->children;
	if (c->next)
		c->next->prev = c;
	loop->children = c;
	c->active = true;
	return 0;
}

void te_child_del(struct te_loop *loop, struct te_child *c)
{
	if (c->active)
		child_unlink(loop, c);
}

/* Drain the signalfd, then reap once for however many SIGCHLDs came. */
static void sig_io_cb(struct te_loop *loop, struct te_io *io, uint32_t revents)
{
	struct signalfd_siginfo si[LOOP_SIGBATCH];
	bool reap = false;
	ssize_t n;
	size_t i;

	for (;;) {
		n = read(io->fd, si, sizeof(si));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (i = 0; i < (size_t)n / sizeof(si[0]); i++) {
			if (si[i].ssi_signo == SIGCHLD)
				reap = true;
			sig_dispatch(loop, &si[i]);
		}
	}
	if (reap)
		child_reap(loop);
}

/* ---- eventfd ------------------------------------------------------------ */

static void event_io_cb(struct te_loop *loop, struct te_io *io,
			uint32_t revents)
{
	struct te_event *ev = container_of(io, struct te_event, io);
	uint64_t count;

	/* Reading resets the counter; nothing to do if it was already 0. */
	if (read(io->fd, &count, sizeof(count)) != sizeof(count))
		return;
	ev->cb(loop, ev, count);
}

int te_event_open(struct te_loop *loop, struct te_event *ev)
{
	int err;

	ev->io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ev->io.fd < 0)
		return -errno;
	ev->io.cb = event_io_cb;
	ev->io.active = false;
	err = te_io_add(loop, &ev->io, EPOLLIN);
	if (err) {
		close(ev->io.fd);
		ev->io.fd = -1;
	}
	return err;
}

/* Only write(2): async-signal-safe and thread-safe. EAGAIN means the counter
 * is saturated, which still wakes the loop. errno is preserved for the
 * benefit of signal handlers. */
void te_event_signal(struct te_event *ev)
{
	uint64_t one = 1;
	int saved = errno;
	ssize_t n;

	n = write(ev->io.fd, &one, sizeof(one));
	(void)n;
	errno = saved;
}

void te_event_close(struct te_loop *loop, struct te_event *ev)
{
	te_io_del(loop, &ev->io);
	if (ev->io.fd >= 0)
		close(ev->io.fd);
	ev->io.fd = -1;
}

/* ---- the loop ----------------------------------------------------------- */

/* A SIGCHLD disposition of SIG_IGN (inheritable across exec) or
 * SA_NOCLDWAIT makes the kernel reap children itself; we would never learn
 * of their exits. */
static void loop_want_zombies(void)
{
	struct sigaction sa;

	if (sigaction(SIGCHLD, NULL, &sa) < 0)
		return;
	if (sa.sa_handler != SIG_IGN && !(sa.sa_flags & SA_NOCLDWAIT))
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
}

static void loop_close_fds(struct te_loop *loop)
{
	if (loop->epfd >= 0)
		close(loop->epfd);
	if (loop->sigfd >= 0)
		close(loop->sigfd);
	if (loop->timerfd >= 0)
		close(loop->timerfd);
	loop->epfd = loop->sigfd = loop->timerfd = -1;
}

static int loop_open_fds(struct te_loop *loop)
{
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		return -errno;
	loop->sigfd = signalfd(-1, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (loop->sigfd < 0)
		return -errno;
	loop->timerfd = timerfd_create(CLOCK_MONOTONIC,
				       TFD_NONBLOCK | TFD_CLOEXEC);
	if (loop->timerfd < 0)
		return -errno;
	return 0;
}

int te_loop_init(struct te_loop *loop)
{
	int err;

	memset(loop, 0, sizeof(*loop));
	loop->epfd = loop->sigfd = loop->timerfd = -1;
	sigemptyset(&loop->sigmask);
	sigaddset(&loop->sigmask, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &loop->sigmask, &loop->saved_mask) < 0)
		return -errno;
	loop_want_zombies();
	err = loop_open_fds(loop);
	if (err)
		goto fail;
	loop->sig_io.fd = loop->sigfd;
	loop->sig_io.cb = sig_io_cb;
	err = te_io_add(loop, &loop->sig_io, EPOLLIN);
	if (err)
		goto fail;
	loop->timer_io.fd = loop->timerfd;
	loop->timer_io.cb = timer_io_cb;
	err = te_io_add(loop, &loop->timer_io, EPOLLIN);
	if (err)
		goto fail;
	return 0;
fail:
	loop_close_fds(loop);
	sigprocmask(SIG_SETMASK, &loop->saved_mask, NULL);
	return err;
}

/* Restoring the mask delivers any still-pending routed signal to its
 * disposition. */
void te_loop_close(struct te_loop *loop)
{
	loop_close_fds(loop);
	sigprocmask(SIG_SETMASK, &loop->saved_mask, NULL);
	loop->sigs = NULL;
	loop->timers = NULL;
	loop->children = NULL;
	loop->hooks = NULL;
	loop->timerfd_deadline = 0;
}

/* timeout_ms capped by the earliest timer; 0 once stopping, so a stop
 * requested from a hook does not sleep. */
static int loop_timeout(struct te_loop *loop, int timeout_ms)
{
	uint64_t now, wait;

	if (loop->stopping)
		return 0;
	if (!loop->timers)
		return timeout_ms;
	now = te_now_ms();
	wait = loop->timers->deadline > now ? loop->timers->deadline - now : 0;
	if (wait > INT_MAX)
		wait = INT_MAX;
	if (timeout_ms >= 0 && (uint64_t)timeout_ms < wait)
		return timeout_ms;
	return (int)wait;
}

/* loop->ready points at this turn's ready list while it is dispatched, so
 * te_io_del can strike entries out of it. */
static void loop_dispatch(struct te_loop *loop, struct epoll_event *evs,
			  int n)
{
	struct te_io *ready[LOOP_MAXEV];
	int i;

	for (i = 0; i < n; i++)
		ready[i] = evs[i].data.ptr;
	loop->ready = ready;
	loop->nready = n;
	for (i = 0; i < n; i++)
		if (ready[i])
			ready[i]->cb(loop, ready[i], evs[i].events);
	loop->ready = NULL;
	loop->nready = 0;
}

int te_loop_turn(struct te_loop *loop, int timeout_ms)
{
	struct epoll_event evs[LOOP_MAXEV];
	int n;

	hook_run(loop);
	timeout_ms = loop_timeout(loop, timeout_ms);
	do {
		n = epoll_wait(loop->epfd, evs, LOOP_MAXEV, timeout_ms);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	loop_dispatch(loop, evs, n);
	timer_run(loop);
	return 0;
}

int te_loop_run(struct te_loop *loop)
{
	int err;

	loop->stopping = false;
	while (!loop->stopping) {
		err = te_loop_turn(loop, -1);
		if (err)
			return err;
	}
	return 0;
}

void te_loop_stop(struct te_loop *loop)
{
	loop->stopping = true;
}

/* Async-signal-safe (sigaction, sigprocmask only): fine between fork and
 * exec. Dispositions first, so nothing pending meets a stale handler when
 * the mask opens. */
/* libc refuses sigaction() on the signals it reserves for itself (32-34),
 * yet an ancestor may have set them to SIG_IGN and an ignored disposition
 * survives execve. The kernel call takes them: an all-zero kernel
 * sigaction is SIG_DFL with no flags and an empty mask on every
 * architecture, whatever the order of its fields. */
static void reset_reserved_signal(int sig)
{
	unsigned long ksa[8] = { 0 };

	syscall(SYS_rt_sigaction, sig, ksa, NULL, (_NSIG - 1) / 8);
}

void te_loop_child_reset_signals(void)
{
	struct sigaction sa;
	sigset_t none;
	int sig;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (sig = 1; sig < _NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (sigaction(sig, &sa, NULL) < 0)
			reset_reserved_signal(sig);
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}
