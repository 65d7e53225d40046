/* The daemon's side of the module SDK tests (test_sdk.c, test_sdk_twin.c).
 *
 * The test process plays the daemon: it creates a ringset and two
 * eventfds, then either forks a child that puts them at fds 3, 4, 5, sets
 * the module environment and runs SDK code (module_spawn; the child
 * reports through its exit status, 0 = all its checks held, printing the
 * failed one as a TAP comment), or opens the module in-process with the
 * fds at 200, 201, 202 and plays both sides (open_here). */
#ifndef TE_SDK_DAEMON_H
#define TE_SDK_DAEMON_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/wait.h>

#include "hub/ring.h"
#include "tinyedge/module.h"

#define WAIT_MS 5000   /* a hang guard, never a timing assertion */
#define FD_BASE 200    /* in-process tests put the module's fds here */

struct daemon {
	struct te_ringset rs;
	int memfd;
	int efd_to_daemon;   /* the module writes it */
	int efd_to_module;   /* we write it */
};

static inline int daemon_init(struct daemon *d, size_t ring)
{
	int err = te_ring_create(ring, &d->rs, &d->memfd);

	if (err)
		return err;
	d->efd_to_daemon = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	d->efd_to_module = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return d->efd_to_daemon < 0 || d->efd_to_module < 0 ? -errno : 0;
}

static inline void daemon_fini(struct daemon *d)
{
	te_ring_close(&d->rs);
	close(d->memfd);
	close(d->efd_to_daemon);
	close(d->efd_to_module);
}

/* Place the daemon's three fds at base, base + 1, base + 2 (via high
 * copies first, so that no source is clobbered by an earlier dup2). */
static inline void fds_place(const struct daemon *d, int base)
{
	int a = fcntl(d->memfd, F_DUPFD, 500);
	int b = fcntl(d->efd_to_daemon, F_DUPFD, 500);
	int c = fcntl(d->efd_to_module, F_DUPFD, 500);

	dup2(a, base);
	dup2(b, base + 1);
	dup2(c, base + 2);
	close(a);
	close(b);
	close(c);
}

static inline void fds_unplace(int base)
{
	close(base);
	close(base + 1);
	close(base + 2);
}

static inline pid_t module_spawn(const struct daemon *d, int (*fn)(void *), void *arg)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid != 0)
		return pid;
	fds_place(d, 3);
	setenv("TINYEDGE_IPC_FD", "3", 1);
	setenv("IOTEDGE_MODULEID", "child", 1);
	unsetenv("TINYEDGE_NOTIFY_FD");
	exit(fn(arg));
}

/* Exit status, or 128 + signal. A child still running after WAIT_MS is
 * stuck (say, retrying a send nobody will drain): kill it, so a broken
 * SDK fails the test instead of hanging it. */
static inline int module_reap(pid_t pid)
{
	int st = 0;
	pid_t got = 0;

	if (pid < 0)
		return -1;
	for (int ms = 0; ms < WAIT_MS && (got = waitpid(pid, &st, WNOHANG)) == 0; ms++)
		usleep(1000);
	if (got == 0) {
		printf("# child %d stuck: killed\n", (int)pid);
		kill(pid, SIGKILL);
		got = waitpid(pid, &st, 0);
	}
	if (got != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define CHILD_CHECK(cond, code)                                                 \
	do {                                                                    \
		if (!(cond)) {                                                  \
			printf("# child: %s:%d: %s\n", __FILE__, __LINE__,      \
			       #cond);                                          \
			fflush(stdout);                                         \
			_exit(code);                                            \
		}                                                               \
	} while (0)

static inline bool cstr_is(const char *a, const char *b)
{
	return a && b ? strcmp(a, b) == 0 : a == b;
}

/* Copy the next record of the module's out ring into buf. Sleeps on the
 * eventfd with the wakeup protocol when the ring is empty. 1 (*len bytes),
 * 0 on timeout, or a negative code. */
static inline int daemon_read(struct daemon *d, void *buf, uint32_t cap, uint32_t *len)
{
	struct te_ring *rx = te_ringset_rx(&d->rs);
	struct pollfd pfd = { .fd = d->efd_to_daemon, .events = POLLIN };
	uint64_t v;
	int got;

	for (;;) {
		got = te_ring_read_copy(rx, buf, cap, len);
		if (got)
			return got;
		if (!te_ring_prepare_wait(rx))
			continue;
		if (poll(&pfd, 1, WAIT_MS) != 1)
			return 0;
		(void)!read(d->efd_to_daemon, &v, sizeof(v));
	}
}

/* Put a record of len bytes on the module's in ring (no wakeup yet).
 * 0 or -EAGAIN (full). */
static inline int daemon_put(struct daemon *d, const void *rec, size_t len)
{
	struct te_ring *tx = te_ringset_tx(&d->rs);
	void *p = te_ring_reserve(tx, (uint32_t)len);

	if (!p)
		return -EAGAIN;
	memcpy(p, rec, len);
	te_ring_commit(tx);
	return 0;
}

static inline void daemon_wake_module(struct daemon *d)
{
	uint64_t one = 1;

	if (te_ring_needs_wakeup(te_ringset_tx(&d->rs)))
		(void)!write(d->efd_to_module, &one, sizeof(one));
}

/* Both sides in this process: the module's fds at FD_BASE. */
static inline te_module *open_here(struct daemon *d, size_t ring)
{
	char base[16];
	te_module *m = NULL;

	if (daemon_init(d, ring))
		return NULL;
	fds_place(d, FD_BASE);
	snprintf(base, sizeof(base), "%d", FD_BASE);
	setenv("TINYEDGE_IPC_FD", base, 1);
	if (te_module_open(&m))
		return NULL;
	return m;
}

static inline void close_here(struct daemon *d, te_module *m)
{
	te_module_close(m);
	fds_unplace(FD_BASE);
	daemon_fini(d);
}

static inline bool fd_readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1;
}

struct sync {
	int up[2];     /* child -> parent */
	int down[2];   /* parent -> child */
};

/* A pipe away from the fds the child's dup2s overwrite. */
static inline int pipe_high(int p[2])
{
	int q[2];

	if (pipe(q) < 0)
		return -errno;
	p[0] = fcntl(q[0], F_DUPFD_CLOEXEC, 300);
	p[1] = fcntl(q[1], F_DUPFD, 300);
	close(q[0]);
	close(q[1]);
	return p[0] < 0 || p[1] < 0 ? -EMFILE : 0;
}

#endif
