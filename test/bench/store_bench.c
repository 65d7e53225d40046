/* Store throughput and put latency, against a real file (fsync'd group
 * commits; put the directory on the device's storage, not a tmpfs, or the
 * figures mean nothing). Each figure uses a fresh store under DIR.
 * Prints "name value unit" lines:
 *
 *   store_put_commit_64b_msgs_per_s   puts until every one is committed
 *   store_put_commit_256b_msgs_per_s
 *   store_put_commit_1k_msgs_per_s
 *   store_drain_msgs_per_s            te_store_next + te_store_ack of 64 B
 *                                     records until the acks are committed
 *   store_put_call_ns_p50/p99/p999/max one te_store_put call on the caller's
 *                                     thread at 100,000 puts/s while the
 *                                     writer commits (the disk's fsync must
 *                                     not show here)
 *   store_file_bytes_after_1m_in_out  the file after 1 M 256 B messages in
 *                                     and out in 50,000-message waves
 *
 * Usage: store_bench DIR. A benchmark, not a test: it asserts nothing but
 * that the store works. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "core/err.h"
#include "store/store.h"

#define GiB (1024ull * 1024 * 1024)
#define LAT_RATE 100000      /* puts per second in the latency run */
#define LAT_SECS 2
#define LAT_MAX (LAT_RATE * LAT_SECS)

static char base[512];
static unsigned run;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "store_bench: %s: %s\n", what, te_strerror(rc));
	exit(1);
}

static struct te_store *open_fresh(uint64_t max_bytes, uint32_t *ep, char *dir, size_t cap)
{
	struct te_store_opts o;
	struct te_store *s;
	char err[TE_STORE_ERR_MAX];
	int rc;

	snprintf(dir, cap, "%s/run%u", base, run++);
	te_store_opts_init(&o);
	o.path = dir;
	o.max_bytes = max_bytes;
	if ((rc = te_store_open(&s, &o, err, sizeof(err)))) {
		fprintf(stderr, "store_bench: %s\n", err);
		exit(1);
	}
	if ((rc = te_store_endpoint(s, "$upstream", ep)))
		die("endpoint", rc);
	return s;
}

/* Close and delete a run's store (the ingest runs leave hundreds of MB). */
static void close_rm(struct te_store *s, const char *dir)
{
	char p[700];

	te_store_close(s);
	snprintf(p, sizeof(p), "%s/data.mdb", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/lock.mdb", dir);
	unlink(p);
	rmdir(dir);
}

/* Wait for the writer's next report (backpressure, or the end). */
static void wait_writer(struct te_store *s)
{
	struct pollfd pfd = { .fd = te_store_fd(s), .events = POLLIN };

	poll(&pfd, 1, 100);
	te_store_process(s);
}

/* Put n records of len bytes; returns the last sequence. */
static uint64_t put_all(struct te_store *s, uint32_t ep, unsigned n, size_t len, uint64_t tag)
{
	static uint8_t rec[4096];
	uint64_t seq = 0;
	int rc;

	for (unsigned i = 0; i < n;) {
		memcpy(rec, &tag, sizeof(tag));
		rc = te_store_put(s, ep, 0, 0, rec, len, &seq);
		if (rc == 0) {
			i++;
			tag++;
		} else if (rc == -EAGAIN) {
			wait_writer(s);
		} else {
			die("put", rc);
		}
	}
	return seq;
}

static void wait_committed(struct te_store *s, uint64_t seq)
{
	while (te_store_committed(s) < seq)
		wait_writer(s);
}

static void ingest(const char *name, size_t len, unsigned n)
{
	char dir[600];
	uint32_t ep;
	struct te_store *s = open_fresh(4 * GiB, &ep, dir, sizeof(dir));
	uint64_t t0 = now_ns(), last;

	last = put_all(s, ep, n, len, 0);
	wait_committed(s, last);
	printf("%s %.0f msgs/s\n", name, n / ((double)(now_ns() - t0) / 1e9));
	close_rm(s, dir);
}

/* Read and ack everything; the number handed out. */
static unsigned drain_all(struct te_store *s, uint32_t ep)
{
	static uint8_t buf[4096];
	struct te_store_cursor c;
	struct te_store_item it;
	unsigned n = 0;
	int rc;

	te_store_cursor_init(&c, ep);
	while ((rc = te_store_next(s, &c, &it, buf, sizeof(buf))) == 0) {
		while ((rc = te_store_ack(s, ep, it.prio, it.seq)) == -EAGAIN)
			wait_writer(s);
		if (rc)
			die("ack", rc);
		n++;
	}
	if (rc != -ENOENT)
		die("next", rc);
	return n;
}

static void drain(unsigned n)
{
	char dir[600];
	uint32_t ep;
	struct te_store *s = open_fresh(4 * GiB, &ep, dir, sizeof(dir));
	struct te_store_stats st;
	uint64_t t0;
	unsigned got;

	wait_committed(s, put_all(s, ep, n, 64, 0));
	t0 = now_ns();
	got = drain_all(s, ep);
	te_store_sync(s);
	te_store_stats(s, &st);
	if (got != n || st.msgs)
		die("drain: not everything came out", -EIO);
	printf("store_drain_msgs_per_s %.0f msgs/s\n", n / ((double)(now_ns() - t0) / 1e9));
	close_rm(s, dir);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Paced puts of 64 B, each call timed; the writer commits all along. */
static void put_latency(void)
{
	static uint64_t lat[LAT_MAX];
	static uint8_t rec[64];
	char dir[600];
	uint32_t ep;
	struct te_store *s = open_fresh(4 * GiB, &ep, dir, sizeof(dir));
	uint64_t t0 = now_ns(), t, a, n = 0, again = 0, commits0;
	struct te_store_stats st;
	int rc;

	te_store_stats(s, &st);
	commits0 = st.commits;
	while (n < LAT_MAX) {
		t = now_ns();
		if (t < t0 + n * (1000000000u / LAT_RATE)) {
			if (n % 64 == 0)
				te_store_process(s); /* what the loop does on the eventfd */
			continue;
		}
		a = now_ns();
		rc = te_store_put(s, ep, 0, 0, rec, sizeof(rec), NULL);
		lat[n] = now_ns() - a;
		if (rc == -EAGAIN)
			again++;
		else if (rc)
			die("put", rc);
		n++;
	}
	te_store_sync(s);
	te_store_stats(s, &st);
	qsort(lat, n, sizeof(lat[0]), cmp_u64);
	printf("store_put_call_ns_p50 %llu ns\n", (unsigned long long)lat[n / 2]);
	printf("store_put_call_ns_p99 %llu ns\n", (unsigned long long)lat[n * 99 / 100]);
	printf("store_put_call_ns_p999 %llu ns\n", (unsigned long long)lat[n * 999 / 1000]);
	printf("store_put_call_ns_max %llu ns\n", (unsigned long long)lat[n - 1]);
	printf("store_put_call_commits %llu count\n", (unsigned long long)(st.commits - commits0));
	if (again)
		printf("store_put_call_eagain %llu count\n", (unsigned long long)again);
	close_rm(s, dir);
}

/* 1 M messages in and out, 50,000 at a time, under the default quota. */
static void in_out(void)
{
	char dir[600];
	uint32_t ep;
	struct te_store *s = open_fresh(64ull << 20, &ep, dir, sizeof(dir));
	struct te_store_stats st;
	uint64_t hw = 0;

	for (unsigned w = 0; w < 20; w++) {
		wait_committed(s, put_all(s, ep, 50000, 256, (uint64_t)w * 50000));
		te_store_stats(s, &st);
		hw = st.file_bytes > hw ? st.file_bytes : hw;
		drain_all(s, ep);
		te_store_sync(s);
	}
	te_store_stats(s, &st);
	printf("store_file_bytes_high_water_1m_in_out %llu bytes\n", (unsigned long long)hw);
	printf("store_file_bytes_after_1m_in_out %llu bytes\n", (unsigned long long)st.file_bytes);
	close_rm(s, dir);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: store_bench DIR\n");
		return 2;
	}
	snprintf(base, sizeof(base), "%s", argv[1]);
	ingest("store_put_commit_64b_msgs_per_s", 64, 1000000);
	ingest("store_put_commit_256b_msgs_per_s", 256, 500000);
	ingest("store_put_commit_1k_msgs_per_s", 1024, 200000);
	drain(500000);
	put_latency();
	in_out();
	return 0;
}
