/* The event loop: one epoll set, one signalfd, one timerfd.
 *
 * Every handle (fd, timer, signal, child, eventfd, hook) is a struct that
 * lives inside its owner (as libubox's uloop); the loop links them and never
 * allocates. Timers use CLOCK_MONOTONIC milliseconds (te_now_ms), never the
 * wall clock. Signals are blocked and delivered through the signalfd.
 * SIGCHLD is always the loop's, from te_loop_init on (an inherited SIG_IGN
 * is reset to SIG_DFL): each SIGCHLD reaps with waitpid(-1, WNOHANG) until
 * nothing is left (one signalfd read may stand for many exits) and calls
 * the matching te_child; pids nobody watches (orphans, when we are a
 * subreaper) go to on_orphan. So: one loop per process, nothing else may
 * wait for children (no system()/popen()), and a forked child must be
 * passed to te_child_add before control returns to the loop.
 *
 * A callback may add or remove any handle, including its own, and may call
 * te_loop_stop(). Hooks run once per turn, just before the loop sleeps
 * (redis's before_sleep: batch work, e.g. a group commit).
 */
#ifndef TE_LOOP_H
#define TE_LOOP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/signalfd.h>
#include <sys/types.h>

struct te_loop;

/* CLOCK_MONOTONIC in milliseconds, and in nanoseconds. */
uint64_t te_now_ms(void);
uint64_t te_now_ns(void);

struct te_io {
	int fd;
	uint32_t events; /* EPOLLIN, EPOLLOUT, ... as last added/modified */
	void (*cb)(struct te_loop *loop, struct te_io *io, uint32_t revents);
	bool active;
};

/* Watch io->fd for events. -errno from epoll_ctl. */
int te_io_add(struct te_loop *loop, struct te_io *io, uint32_t events);
int te_io_mod(struct te_loop *loop, struct te_io *io, uint32_t events);
/* Stop watching (does not close the fd). Safe if not active. Events already
 * returned by this turn's epoll_wait for this io are not delivered. */
void te_io_del(struct te_loop *loop, struct te_io *io);

struct te_timer {
	uint64_t deadline; /* te_now_ms() time at which cb runs */
	void (*cb)(struct te_loop *loop, struct te_timer *t);
	struct te_timer *next, *prev;
	bool active;
};

/* (Re)arm t to fire once, delay_ms from now / at deadline_ms. */
void te_timer_set(struct te_loop *loop, struct te_timer *t, uint64_t delay_ms);
void te_timer_set_at(struct te_loop *loop, struct te_timer *t,
		     uint64_t deadline_ms);
/* Disarm; safe if not armed. */
void te_timer_cancel(struct te_loop *loop, struct te_timer *t);

struct te_sig {
	int signo;
	void (*cb)(struct te_loop *loop, struct te_sig *s,
		   const struct signalfd_siginfo *si);
	struct te_sig *next;
	bool active;
};

/* Route signo through the signalfd to s->cb (blocks it for the process).
 * Several te_sig may watch one signal; each is called. SIGCHLD may be
 * watched too, but te_child is the way to learn about exits. -errno. */
int te_signal_add(struct te_loop *loop, struct te_sig *s);
void te_signal_del(struct te_loop *loop, struct te_sig *s);

struct te_child {
	pid_t pid;
	/* status as from waitpid(). The handle is already removed when cb runs,
	 * so cb may re-add it for a new pid. */
	void (*cb)(struct te_loop *loop, struct te_child *c, int status);
	struct te_child *next, *prev;
	bool active;
};

/* Watch c->pid (a child of this process) until it is reaped. -errno. */
int te_child_add(struct te_loop *loop, struct te_child *c);
void te_child_del(struct te_loop *loop, struct te_child *c);

struct te_event {
	struct te_io io; /* io.fd is the eventfd */
	/* count: the sum of te_event_signal() calls since the last cb */
	void (*cb)(struct te_loop *loop, struct te_event *ev, uint64_t count);
};

/* Create an eventfd (non-blocking, close-on-exec) and watch it. -errno. */
int te_event_open(struct te_loop *loop, struct te_event *ev);
/* Wake the loop; safe from any thread and from a signal handler. */
void te_event_signal(struct te_event *ev);
void te_event_close(struct te_loop *loop, struct te_event *ev);

struct te_hook {
	void (*cb)(struct te_loop *loop, struct te_hook *h);
	struct te_hook *next;
	bool active;
};

/* Run h->cb once per loop turn, before sleeping. */
void te_hook_add(struct te_loop *loop, struct te_hook *h);
void te_hook_del(struct te_loop *loop, struct te_hook *h);

struct te_loop {
	int epfd;
	int sigfd;
	int timerfd;
	struct te_io sig_io;
	struct te_io timer_io;
	sigset_t sigmask;      /* signals currently routed to the signalfd */
	sigset_t saved_mask;   /* the process mask before te_loop_init */
	struct te_sig *sigs;
	struct te_timer *timers;  /* sorted by deadline, earliest first */
	uint64_t timerfd_deadline; /* what timerfd is armed for; 0 = disarmed */
	struct te_child *children;
	struct te_hook *hooks;
	/* Called for reaped pids that no te_child watches (may be NULL). */
	void (*on_orphan)(struct te_loop *loop, pid_t pid, int status);
	struct te_io **ready;  /* this turn's ready ios, for te_io_del */
	int nready;
	bool stopping;
};

int te_loop_init(struct te_loop *loop);
/* Close the loop's own fds and restore the signal mask. Handles are simply
 * forgotten (their fds are their owners'). */
void te_loop_close(struct te_loop *loop);
/* Run turns until te_loop_stop(). 0, or -errno if epoll_wait fails. */
int te_loop_run(struct te_loop *loop);
/* One turn: run hooks, wait at most timeout_ms (-1 = until something
 * happens, capped by the next timer), dispatch. 0 or -errno. For tests and
 * for callers with their own outer loop. */
int te_loop_turn(struct te_loop *loop, int timeout_ms);
void te_loop_stop(struct te_loop *loop);

/* In a forked child before exec: unblock every signal and reset every
 * disposition to default (a blocked mask survives execve — see PITFALLS). */
void te_loop_child_reset_signals(void);

#endif
