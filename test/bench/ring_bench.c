/* Ring throughput: a forked producer (the module side) sends 64-byte
 * records as fast as it can; the parent (the daemon side) copies them out
 * with te_ring_read_copy for about a second. Both follow the full wakeup
 * protocol (needs_wakeup after every commit, prepare_wait + eventfd when
 * empty), so the figure includes the barriers. The consumer backs off a
 * little before it sleeps: sleeping at the first empty read makes both
 * sides pay for a wakeup every few records (about half the throughput
 * here, and much worse on VMs, where waking an idle vCPU is slow).
 * Prints one line:
 *
 *   ring_spsc_msgs_per_s N msgs/s
 *
 * Usage: ring_bench [ring bytes each way, default 262144]. A benchmark, not
 * a test: it asserts nothing. */
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/wait.h>

#include "core/err.h"
#include "hub/ring.h"

#define REC 64u
#define SECS 1.0
#define SPIN 4       /* empty reads (with a backoff each) before sleeping */
#define PAUSES 256   /* pause instructions per backoff */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu >= sysconf(_SC_NPROCESSORS_ONLN))
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);  /* best effort */
}

static void kick(int efd)
{
	uint64_t one = 1;

	if (write(efd, &one, sizeof(one)) < 0)
		_exit(3);
}

static int producer(int memfd, int efd)
{
	struct te_ringset rs;
	struct te_ring *r;
	uint64_t seq = 0;
	uint8_t *p;

	pin(1);
	if (te_ring_attach(memfd, true, &rs))
		return 2;
	r = te_ringset_tx(&rs);
	for (;;) {
		p = te_ring_reserve(r, REC);
		if (!p) {
			sched_yield();
			continue;
		}
		memcpy(p, &seq, sizeof(seq));
		memset(p + sizeof(seq), 0x5a, REC - sizeof(seq));
		seq++;
		te_ring_commit(r);
		if (te_ring_needs_wakeup(r))
			kick(efd);
	}
}

/* Let a batch build up without touching the producer's cache line. */
static void backoff(void)
{
	for (int i = 0; i < PAUSES; i++) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#else
		__asm__ __volatile__("" ::: "memory");
#endif
	}
}

static void wait_efd(int efd)
{
	struct pollfd pfd = { .fd = efd, .events = POLLIN };
	uint64_t v;

	if (poll(&pfd, 1, 1000) == 1 && read(efd, &v, sizeof(v)) < 0)
		exit(1);
}

/* Read for SECS seconds from the first record on; the number of records. */
static uint64_t consume(struct te_ring *r, int efd, double *secs)
{
	uint8_t buf[REC];
	uint64_t n = 0, expect = 0, seq;
	double t0 = 0, t = 0;
	uint32_t len, idle = 0;
	int rc;

	while (!t0 || t - t0 < SECS) {
		rc = te_ring_read_copy(r, buf, sizeof(buf), &len);
		if (rc == 1) {
			idle = 0;
			memcpy(&seq, buf, sizeof(seq));
			if (seq != expect++ || len != REC)
				exit(1);
			if (!t0)
				t0 = now_s();
			if (++n % 4096 == 0)
				t = now_s();
		} else if (rc == 0) {
			if (++idle < SPIN) {
				backoff();
				continue;
			}
			idle = 0;
			if (te_ring_prepare_wait(r))
				wait_efd(efd);
		} else {
			fprintf(stderr, "ring_bench: %s\n", te_strerror(rc));
			exit(1);
		}
	}
	*secs = t - t0;
	return n;
}

int main(int argc, char **argv)
{
	size_t bytes = argc > 1 ? strtoul(argv[1], NULL, 0) : 262144;
	struct te_ringset rs;
	double secs;
	uint64_t n;
	int memfd, efd, err;
	pid_t pid;

	err = te_ring_create(bytes, &rs, &memfd);
	efd = eventfd(0, EFD_CLOEXEC);
	if (err || efd < 0) {
		fprintf(stderr, "ring_bench: create: %s\n", te_strerror(err));
		return 1;
	}
	pid = fork();
	if (pid == 0)
		_exit(producer(memfd, efd));
	pin(0);
	n = consume(te_ringset_rx(&rs), efd, &secs);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	printf("ring_spsc_msgs_per_s %.0f msgs/s\n", (double)n / secs);
	te_ring_close(&rs);
	return 0;
}
