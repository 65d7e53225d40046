/* Unit tests for the offline store (src/store/).
 *
 * Everything runs against real LMDB files under /tmp; crash cases kill
 * real child processes with SIGKILL; the disk-full case mounts a small
 * tmpfs (root; skipped if the mount fails). Clocks are injected where time
 * matters, so nothing here waits for wall time or asserts a duration. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <lmdb.h>

#include "core/err.h"
#include "store/store.h"
#include "store/store_int.h"
#include "tap.h"

#define KiB 1024u
#define MiB (1024u * 1024u)
#define DAY_MS 86400000ull
#define WALL0 1750000000000ull /* 2025-06-15, after the built-in floor */

static char base[] = "/tmp/test_store.XXXXXX";

/* ---- helpers ------------------------------------------------------------ */

static const char *dir_of(const char *name)
{
	static char path[4][256];
	static unsigned n;
	char *p = path[n++ % 4];

	snprintf(p, 256, "%s/%s", base, name);
	return p;
}

static uint64_t file_size(const char *dir)
{
	char p[300];
	struct stat st;

	snprintf(p, sizeof(p), "%s/data.mdb", dir);
	return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Record number i of length len: i in the first 8 bytes, then a pattern. */
static void rec_fill(uint8_t *p, uint64_t i, size_t len)
{
	memcpy(p, &i, len < 8 ? len : 8);
	for (size_t j = 8; j < len; j++)
		p[j] = (uint8_t)(i * 131 + j * 7 + 1);
}

/* The record's number, or UINT64_MAX if its bytes are not what rec_fill made. */
static uint64_t rec_check(const uint8_t *p, size_t len)
{
	uint64_t i = 0;

	if (len < 8)
		return UINT64_MAX;
	memcpy(&i, p, 8);
	for (size_t j = 8; j < len; j++)
		if (p[j] != (uint8_t)(i * 131 + j * 7 + 1))
			return UINT64_MAX;
	return i;
}

/* Completion runs, checked for order and contiguity as they arrive. */
static struct {
	uint64_t next_first; /* 0: any */
	uint64_t ok_last;
	unsigned runs, err_runs, gaps;
	int last_err;
} R;

static void on_done(void *ctx, const struct te_store_done *d)
{
	if (R.next_first && d->first_seq != R.next_first)
		R.gaps++;
	R.next_first = d->last_seq + 1;
	R.runs++;
	if (d->err) {
		R.err_runs++;
		R.last_err = d->err;
	} else {
		R.ok_last = d->last_seq;
	}
}

static void results_reset(void)
{
	memset(&R, 0, sizeof(R));
}

/* A fake clock, read by the writer thread too. */
struct fclock {
	uint64_t wall, boot;
	struct te_store_clock c;
};

static void fake_now(void *ctx, uint64_t *wall, uint64_t *boot)
{
	struct fclock *f = ctx;

	*wall = __atomic_load_n(&f->wall, __ATOMIC_ACQUIRE);
	*boot = __atomic_load_n(&f->boot, __ATOMIC_ACQUIRE);
}

static void fclock_init(struct fclock *f, const char *boot_id, uint64_t wall, uint64_t boot)
{
	f->wall = wall;
	f->boot = boot;
	f->c = (struct te_store_clock){ .now = fake_now, .ctx = f, .boot_id = boot_id };
}

static void fclock_add(struct fclock *f, uint64_t wall_ms, uint64_t boot_ms)
{
	__atomic_add_fetch(&f->wall, wall_ms, __ATOMIC_RELEASE);
	__atomic_add_fetch(&f->boot, boot_ms, __ATOMIC_RELEASE);
}

static void opts_for(struct te_store_opts *o, const char *dir, uint64_t max_bytes)
{
	te_store_opts_init(o);
	o->path = dir;
	o->max_bytes = max_bytes;
	o->on_commit = on_done;
}

static struct te_store *open_or_die(const struct te_store_opts *o)
{
	struct te_store *s = NULL;
	char err[TE_STORE_ERR_MAX];
	int rc = te_store_open(&s, o, err, sizeof(err));

	if (rc) {
		printf("# te_store_open %s: %d %s\n", o->path, rc, err);
		TAP_OK(0, "open %s", o->path);
		exit(tap_done() | 1);
	}
	return s;
}

/* Apply everything queued and report the runs. */
static int settle(struct te_store *s)
{
	int rc = te_store_sync(s);

	te_store_process(s);
	return rc;
}

/* Put, waiting for the writer while the pending buffer is full. */
static int put_wait(struct te_store *s, uint32_t ep, unsigned prio, int64_t ttl,
		    const void *rec, size_t len, uint64_t *seq)
{
	int rc;

	while ((rc = te_store_put(s, ep, prio, ttl, rec, len, seq)) == -EAGAIN)
		settle(s);
	return rc;
}

/* Put n records numbered from first, of len bytes, at prio. */
static int put_n(struct te_store *s, uint32_t ep, unsigned prio, int64_t ttl,
		 uint64_t first, unsigned n, size_t len)
{
	uint8_t buf[16 * KiB];
	int rc = 0;

	for (unsigned k = 0; k < n && !rc; k++) {
		rec_fill(buf, first + k, len);
		rc = put_wait(s, ep, prio, ttl, buf, len, NULL);
	}
	return rc;
}

/* Everything te_store_next hands out for ep from a fresh cursor: how many
 * per priority, whether numbers rise within each priority and priorities
 * never go back, the first and last number per priority. Acks each record
 * if ack is set. */
struct drained {
	unsigned n[TE_STORE_PRIOS];
	uint64_t first[TE_STORE_PRIOS], last[TE_STORE_PRIOS];
	unsigned total, bad, disorder;
	uint64_t age_ms;     /* of the last record */
};

static void drain(struct te_store *s, uint32_t ep, bool ack, struct drained *d)
{
	static uint8_t buf[1 * MiB];
	struct te_store_cursor c;
	struct te_store_item it;
	unsigned prio = 0;
	uint64_t i;

	memset(d, 0, sizeof(*d));
	te_store_cursor_init(&c, ep);
	while (te_store_next(s, &c, &it, buf, sizeof(buf)) == 0) {
		i = rec_check(buf, it.len);
		if (i == UINT64_MAX) {
			d->bad++;
			continue;
		}
		if (it.prio < prio || (d->n[it.prio] && i <= d->last[it.prio]))
			d->disorder++;
		prio = it.prio;
		if (!d->n[it.prio]++)
			d->first[it.prio] = i;
		d->last[it.prio] = i;
		d->total++;
		d->age_ms = it.age_ms;
		if (ack)
			while (te_store_ack(s, ep, it.prio, it.seq) == -EAGAIN)
				settle(s);
	}
	if (ack)
		settle(s);
}

struct qfind {
	uint32_t ep;
	unsigned prio;
	struct te_store_qstat q;
	bool found;
};

static int qfind_cb(void *ctx, const struct te_store_qstat *q)
{
	struct qfind *f = ctx;

	if (q->ep == f->ep && q->prio == f->prio) {
		f->q = *q;
		f->found = true;
	}
	return 0;
}

static struct te_store_qstat qstat(struct te_store *s, uint32_t ep, unsigned prio)
{
	struct qfind f = { .ep = ep, .prio = prio };

	te_store_foreach_queue(s, qfind_cb, &f);
	return f.q;
}

static struct te_store_stats stats(struct te_store *s)
{
	struct te_store_stats st;

	te_store_stats(s, &st);
	return st;
}

/* ---- opening ------------------------------------------------------------ */

static void test_open_errors(void)
{
	struct te_store_opts o;
	struct te_store *s = NULL, *s2 = NULL;
	char err[TE_STORE_ERR_MAX];
	int rc;

	opts_for(&o, "", 0);
	TAP_EQ_INT(te_store_open(&s, &o, err, sizeof(err)), -EINVAL, "open: empty path");
	TAP_OK(s == NULL && strstr(err, "no path"), "open: empty path says so (%s)", err);

	opts_for(&o, "/dev/null/store", 0);
	rc = te_store_open(&s, &o, err, sizeof(err));
	TAP_OK(rc < 0 && s == NULL, "open under a file fails (%d)", rc);
	TAP_OK(strstr(err, "/dev/null/store") && strstr(err, "cannot create"),
	       "... and names the path: %s", err);

	opts_for(&o, dir_of("small"), 100 * KiB);
	TAP_EQ_INT(te_store_open(&s, &o, err, sizeof(err)), -EINVAL, "open: quota below the minimum");

	opts_for(&o, dir_of("busy"), 0);
	s = open_or_die(&o);
	rc = te_store_open(&s2, &o, err, sizeof(err));
	TAP_EQ_INT(rc, -EBUSY, "a second open of one store is refused");
	TAP_OK(strstr(err, "in use") && strstr(err, dir_of("busy")), "... naming it: %s", err);
	TAP_EQ_INT(stats(s).max_bytes, 64 * MiB, "default quota on a roomy disk: 64 MiB");
	te_store_close(s);
}

static void test_corrupt(void)
{
	const char *dir = dir_of("corrupt");
	struct te_store_opts o;
	struct te_store *s = NULL;
	char err[TE_STORE_ERR_MAX], path[300], junk[64 * KiB];
	int fd, rc;

	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	memset(junk, 0x5a, sizeof(junk));
	TAP_OK(fd >= 0 && write(fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk), "garbage data.mdb written");
	close(fd);
	opts_for(&o, dir, 0);
	rc = te_store_open(&s, &o, err, sizeof(err));
	TAP_EQ_INT(rc, -TE_EMALFORMED, "open of a garbage file fails as malformed");
	TAP_OK(s == NULL && strstr(err, path) && strstr(err, "corrupt"), "... naming the file: %s", err);

	fd = open(path, O_WRONLY | O_TRUNC);
	TAP_OK(fd >= 0 && write(fd, junk, 100) == 100, "truncated data.mdb written");
	close(fd);
	rc = te_store_open(&s, &o, err, sizeof(err));
	TAP_OK(rc < 0 && s == NULL && strstr(err, path), "a truncated file fails too (%d): %s", rc, err);
}

/* Somebody else's LMDB environment (say, the twins) is not adopted. */
static void test_foreign(void)
{
	const char *dir = dir_of("foreign");
	struct te_store_opts o;
	struct te_store *s = NULL;
	char err[TE_STORE_ERR_MAX];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc;

	mkdir(dir, 0700);
	rc = mdb_env_create(&env);
	mdb_env_set_maxdbs(env, 4);
	rc = rc ? rc : mdb_env_open(env, dir, 0, 0600);
	rc = rc ? rc : mdb_txn_begin(env, NULL, 0, &txn);
	rc = rc ? rc : mdb_dbi_open(txn, "twins", MDB_CREATE, &dbi);
	rc = rc ? rc : mdb_txn_commit(txn);
	mdb_env_close(env);
	TAP_EQ_INT(rc, 0, "a foreign LMDB environment made");
	opts_for(&o, dir, 0);
	rc = te_store_open(&s, &o, err, sizeof(err));
	TAP_OK(rc == -TE_EMALFORMED && s == NULL && strstr(err, "not a tinyedge store"),
	       "it is refused: %s", err);
}

/* ---- order, acks, completions -------------------------------------------- */

static void test_order(void)
{
	static const unsigned prios[] = { 5, 0, 9, 0, 5, 1, 9, 0, 1, 5 };
	const unsigned n = sizeof(prios) / sizeof(prios[0]);
	struct te_store_opts o;
	struct te_store_cursor c;
	struct te_store_item it;
	struct drained d;
	struct te_store *s;
	uint32_t a, b, a2;
	uint64_t seq[16], got[16];
	uint8_t buf[64], small[4];
	unsigned k = 0, bad = 0;
	int rc;

	results_reset();
	opts_for(&o, dir_of("order"), 4 * MiB);
	s = open_or_die(&o);
	TAP_EQ_INT(te_store_endpoint(s, "$upstream", &a), 0, "endpoint $upstream");
	TAP_EQ_INT(te_store_endpoint(s, "/modules/sink/inputs/in", &b), 0, "endpoint for a module input");
	te_store_endpoint(s, "$upstream", &a2);
	TAP_OK(a == 1 && b == 2 && a2 == a, "ids are stable (%u %u %u)", a, b, a2);
	TAP_EQ_INT(te_store_endpoint(s, "", &a2), -EINVAL, "empty endpoint name refused");
	for (unsigned i = 0; i < n; i++) {
		rec_fill(buf, i, sizeof(buf));
		rc = te_store_put(s, a, prios[i], TE_STORE_TTL_DEFAULT, buf, sizeof(buf), &seq[i]);
		bad += rc != 0 || seq[i] != 2 * i + 1;
		rec_fill(buf, 100 + i, sizeof(buf));
		bad += te_store_put(s, b, 3, 0, buf, sizeof(buf), NULL) != 0;
	}
	TAP_EQ_INT(bad, 0, "puts queue with sequences 1, 3, 5, ... (one counter for the store)");
	TAP_EQ_INT(te_store_put(s, a, 10, 0, buf, 8, NULL), -EINVAL, "priority 10 refused");
	TAP_EQ_INT(te_store_put(s, 9, 0, 0, buf, 8, NULL), -EINVAL, "unknown endpoint refused");
	TAP_EQ_INT(settle(s), 0, "sync: no error");
	TAP_OK(R.runs >= 1 && R.err_runs == 0 && R.gaps == 0 && R.ok_last == 2 * n,
	       "completions: contiguous runs up to %u (runs %u, last %llu)", 2 * n, R.runs,
	       (unsigned long long)R.ok_last);
	TAP_EQ_INT(te_store_committed(s), 2 * n, "te_store_committed");

	/* Best priority first, then put order. */
	te_store_cursor_init(&c, a);
	while (te_store_next(s, &c, &it, buf, sizeof(buf)) == 0 && k < 16)
		got[k++] = rec_check(buf, it.len);
	TAP_EQ_INT(k, n, "every record of $upstream handed out once");
	TAP_OK(got[0] == 1 && got[1] == 3 && got[2] == 7 && got[3] == 5 && got[4] == 8 &&
	       got[5] == 0 && got[6] == 4 && got[7] == 9 && got[8] == 2 && got[9] == 6,
	       "order: prio 0 (1 3 7), 1 (5 8), 5 (0 4 9), 9 (2 6)");
	TAP_EQ_INT(te_store_next(s, &c, &it, buf, sizeof(buf)), -ENOENT, "then nothing");

	/* A record that does not fit: reported, cursor stays. */
	te_store_cursor_init(&c, b);
	TAP_EQ_INT(te_store_next(s, &c, &it, small, sizeof(small)), -TE_ENOSPACE, "small buffer: ENOSPACE");
	TAP_OK(it.len == sizeof(buf) && te_store_next(s, &c, &it, buf, sizeof(buf)) == 0 &&
	       rec_check(buf, it.len) == 100, "... with the length; the next call gets it");

	/* Ack the prio 0 records and one of prio 5, then resend the window. */
	te_store_ack(s, a, 0, seq[1]);
	te_store_ack(s, a, 0, seq[3]);
	te_store_ack(s, a, 0, seq[7]);
	te_store_ack(s, a, 5, seq[4]);
	te_store_ack(s, a, 5, seq[4]); /* twice: the second is a no-op */
	te_store_ack(s, b, 3, 12345);  /* never existed */
	settle(s);
	drain(s, a, false, &d);
	TAP_OK(d.total == 6 && d.n[0] == 0 && d.n[1] == 2 && d.n[5] == 2 && d.n[9] == 2 &&
	       d.first[5] == 0 && d.last[5] == 9 && !d.disorder && !d.bad,
	       "after acks a fresh cursor resends the rest, in order");
	TAP_EQ_INT(qstat(s, a, 0).delivered, 3, "delivered counted per queue");
	TAP_EQ_INT(qstat(s, a, 5).msgs, 2, "prio 5: 2 left");
	TAP_EQ_INT(qstat(s, b, 3).msgs, n, "the other endpoint untouched");
	TAP_OK(qstat(s, a, 9).bytes == 2 * sizeof(buf), "bytes per queue");

	/* Purge one endpoint. */
	TAP_EQ_INT(te_store_purge(s, b), 0, "purge queued");
	settle(s);
	TAP_OK(qstat(s, b, 3).msgs == 0 && qstat(s, b, 3).purged == n, "purge removed %u", n);
	drain(s, b, false, &d);
	TAP_EQ_INT(d.total, 0, "nothing left to deliver for it");
	te_store_close(s);
}

static void test_reopen(void)
{
	const char *dir = dir_of("reopen");
	struct te_store_opts o;
	struct te_store *s;
	struct drained d;
	uint32_t a, b;
	uint64_t seq = 0;
	uint8_t buf[32];

	opts_for(&o, dir, 4 * MiB);
	s = open_or_die(&o);
	te_store_endpoint(s, "x", &b);
	te_store_endpoint(s, "$upstream", &a);
	put_n(s, a, 2, 0, 0, 10, 32);
	settle(s);
	te_store_close(s);

	s = open_or_die(&o);
	te_store_endpoint(s, "$upstream", &b);
	TAP_EQ_INT(b, a, "endpoint id survives a reopen");
	TAP_EQ_INT(qstat(s, a, 2).msgs, 10, "counters survive a reopen");
	rec_fill(buf, 10, sizeof(buf));
	te_store_put(s, a, 2, 0, buf, sizeof(buf), &seq);
	TAP_EQ_INT(seq, 11, "sequences continue after a reopen");
	te_store_close(s); /* close applies what is pending */

	s = open_or_die(&o);
	drain(s, a, false, &d);
	TAP_OK(d.total == 11 && d.first[2] == 0 && d.last[2] == 10 && !d.disorder,
	       "all 11 records back after close (pending applied at close)");
	rec_fill(buf, 11, sizeof(buf));
	te_store_put(s, a, 2, 0, buf, sizeof(buf), &seq);
	TAP_EQ_INT(seq, 12, "and the sequence goes on");
	te_store_close(s);
}

static void test_backpressure(void)
{
	struct te_store_opts o;
	struct te_store *s;
	static uint8_t big[16 * KiB];
	unsigned again = 0, k;
	uint64_t seq = 0, seq2 = 0;
	uint32_t a;
	int rc = 0;

	opts_for(&o, dir_of("bp"), 8 * MiB);
	o.pending_bytes = 64 * KiB;
	s = open_or_die(&o);
	te_store_endpoint(s, "a", &a);
	TAP_EQ_INT(te_store_put(s, a, 0, 0, big, stats(s).rec_max + 1, NULL), -TE_ELIMIT,
		   "a record over rec_max (%llu) is refused", (unsigned long long)stats(s).rec_max);
	for (k = 0; k < 2000 && !again; k++) {
		rc = te_store_put(s, a, 0, 0, big, sizeof(big), &seq);
		again += rc == -EAGAIN;
	}
	TAP_OK(again && k < 2000, "a full pending buffer says EAGAIN (after %u puts)", k);
	TAP_OK(stats(s).pending_bytes <= 2 * 64 * KiB, "pending memory stays bounded");
	settle(s);
	TAP_EQ_INT(te_store_put(s, a, 0, 0, big, sizeof(big), &seq2), 0, "room again after the writer caught up");
	TAP_EQ_INT(seq2, seq + 1, "a refused put took no sequence");
	te_store_close(s);
}

/* ---- key-value entries ------------------------------------------------------ */

/* A clock that can hold the writer thread in place: while gate.closed, the
 * writer's next clock read (wtx_begin, outside s->mu) waits, after it has
 * taken the pending buffer. Only after the first commit: before it, the
 * writer may read the clock under s->mu (the expiry head is unknown). */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t caller;
	bool closed;
	unsigned waiting;
} gate = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void gated_now(void *ctx, uint64_t *wall, uint64_t *boot)
{
	pthread_mutex_lock(&gate.mu);
	if (!pthread_equal(pthread_self(), gate.caller)) {
		gate.waiting++;
		pthread_cond_broadcast(&gate.cv);
		while (gate.closed)
			pthread_cond_wait(&gate.cv, &gate.mu);
		gate.waiting--;
	}
	pthread_mutex_unlock(&gate.mu);
	st_sys_clock(ctx, wall, boot);
}

/* Close the gate and wait until the writer is held in it. */
static void gate_hold(struct te_store *s, const char *key)
{
	pthread_mutex_lock(&gate.mu);
	gate.closed = true;
	pthread_mutex_unlock(&gate.mu);
	te_store_kv_put(s, key, "wake", 4);  /* the writer takes it, then waits */
	pthread_mutex_lock(&gate.mu);
	while (!gate.waiting)
		pthread_cond_wait(&gate.cv, &gate.mu);
	pthread_mutex_unlock(&gate.mu);
}

static void gate_open(void)
{
	pthread_mutex_lock(&gate.mu);
	gate.closed = false;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.mu);
}

/* get as a NUL-terminated string in out ("" on error); the error code. */
static int kv_str(struct te_store *s, const char *key, char *out, size_t cap)
{
	void *v = NULL;
	size_t n = 0;
	int rc = te_store_kv_get(s, key, &v, &n);

	out[0] = '\0';
	if (!rc)
		snprintf(out, cap, "%.*s", (int)n, (const char *)v);
	free(v);
	return rc;
}

static void test_kv_basic(void)
{
	static char longkey[TE_STORE_KEY_MAX + 2];
	struct te_store_clock clk = { .now = gated_now };
	struct te_store_opts o;
	struct te_store *s;
	char got[64];
	void *v = (void *)1;
	size_t n = 99;

	gate.caller = pthread_self();
	opts_for(&o, dir_of("kv"), 4 * MiB);
	o.clock = &clk;
	s = open_or_die(&o);
	TAP_EQ_INT(te_store_kv_get(s, "twin/a", &v, &n), -ENOENT, "kv: a missing key");
	TAP_OK(v == NULL && n == 0, "...leaves nothing to free");
	TAP_EQ_INT(te_store_kv_put(s, "twin/a", "one", 3), 0, "kv: put");
	TAP_EQ_INT(kv_str(s, "twin/a", got, sizeof(got)), 0, "...get");
	TAP_EQ_STR(got, "one", "...its value");
	TAP_EQ_INT(te_store_kv_put(s, "twin/a", "two!", 4), 0, "kv: overwrite");
	TAP_EQ_INT(te_store_kv_put(s, "twin/b", "bee", 3), 0, "kv: another key");
	TAP_EQ_INT(settle(s), 0, "committed");
	kv_str(s, "twin/a", got, sizeof(got));
	TAP_EQ_STR(got, "two!", "...the newer value won");
	TAP_OK(stats(s).msgs == 0 && stats(s).bytes == 0, "kv entries are not messages");

	/* Read-your-writes: with the writer held, nothing below commits. */
	gate_hold(s, "twin/c");
	TAP_EQ_INT(kv_str(s, "twin/c", got, sizeof(got)), 0, "uncommitted put (taken by the writer) seen");
	TAP_EQ_STR(got, "wake", "...with its value");
	te_store_kv_put(s, "twin/a", "three", 5);
	kv_str(s, "twin/a", got, sizeof(got));
	TAP_EQ_STR(got, "three", "an uncommitted overwrite is seen");
	te_store_kv_del(s, "twin/b");
	TAP_EQ_INT(kv_str(s, "twin/b", got, sizeof(got)), -ENOENT, "an uncommitted delete is seen");
	te_store_kv_put(s, "twin/c", "", 0);
	TAP_EQ_INT(te_store_kv_get(s, "twin/c", &v, &n), 0, "an empty value");
	TAP_OK(v != NULL && n == 0, "...is 0 bytes, not NULL");
	free(v);
	TAP_EQ_INT(te_store_kv_del(s, "twin/never"), 0, "deleting a missing key is fine");
	gate_open();
	settle(s);
	kv_str(s, "twin/a", got, sizeof(got));
	TAP_EQ_STR(got, "three", "after the commit: the same");
	TAP_EQ_INT(kv_str(s, "twin/b", got, sizeof(got)), -ENOENT, "...and the delete holds");

	/* Errors. */
	memset(longkey, 'k', TE_STORE_KEY_MAX);
	TAP_EQ_INT(te_store_kv_put(s, longkey, "x", 1), 0, "a %u-byte key", TE_STORE_KEY_MAX);
	longkey[TE_STORE_KEY_MAX] = 'k';
	TAP_EQ_INT(te_store_kv_put(s, longkey, "x", 1), -EINVAL, "a longer key is refused");
	TAP_EQ_INT(te_store_kv_get(s, longkey, &v, &n), -EINVAL, "...also by get");
	TAP_EQ_INT(te_store_kv_put(s, "", "x", 1), -EINVAL, "an empty key is refused");
	TAP_EQ_INT(te_store_kv_put(s, NULL, "x", 1), -EINVAL, "a NULL key is refused");
	TAP_EQ_INT(te_store_kv_put(s, "k", NULL, 1), -EINVAL, "a NULL value of length 1 is refused");
	TAP_EQ_INT(te_store_kv_put(s, "k", "x", TE_STORE_VAL_MAX + 1), -TE_ELIMIT,
		   "a value over TE_STORE_VAL_MAX is refused");
	te_store_close(s);

	s = open_or_die(&o);
	kv_str(s, "twin/a", got, sizeof(got));
	TAP_EQ_STR(got, "three", "kv: survives close and reopen");
	TAP_EQ_INT(kv_str(s, "twin/b", got, sizeof(got)), -ENOENT, "...the deleted key stays deleted");
	TAP_EQ_INT(te_store_kv_get(s, "twin/c", &v, &n), 0, "...the empty value is there");
	free(v);
	te_store_close(s);
}

/* Big values; entries the quota never evicts; a small pending buffer. */
static void test_kv_big(void)
{
	static uint8_t big[TE_STORE_VAL_MAX];
	struct te_store_opts o;
	struct te_store_stats st;
	struct te_store *s;
	struct drained d;
	void *v = NULL;
	size_t n = 0;
	uint32_t ep;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + i / 251);
	opts_for(&o, dir_of("kvbig"), 1 * MiB);
	s = open_or_die(&o);
	TAP_EQ_INT(te_store_kv_put(s, "big", big, sizeof(big)), 0, "kv: a %u KiB value",
		   TE_STORE_VAL_MAX / KiB);
	TAP_EQ_INT(te_store_kv_put(s, "twin", big, 66 * KiB), 0, "kv: a 66 KiB value");
	settle(s);
	te_store_endpoint(s, "a", &ep);
	put_n(s, ep, 0, 0, 0, 3000, 1000);  /* 3x the quota, of priority 0 */
	settle(s);
	st = stats(s);
	TAP_OK(st.evicted > 0 && st.commit_errors == 0 && st.map_full == 0,
	       "3x the quota in messages: evicted %llu, no failed commit",
	       (unsigned long long)st.evicted);
	drain(s, ep, false, &d);
	TAP_OK(d.total > 0 && d.total == st.msgs, "queue figures count the messages only (%u, %llu)",
	       d.total, (unsigned long long)st.msgs);
	TAP_EQ_INT(te_store_kv_put(s, "late", big, 16 * KiB), 0, "a kv put into a full store");
	settle(s);
	st = stats(s);
	TAP_OK(st.commit_errors == 0 && st.kv_failed == 0 && stats(s).file_bytes <= 1 * MiB,
	       "...commits (messages make room), the file within the quota");
	te_store_close(s);
	s = open_or_die(&o);
	TAP_OK(te_store_kv_get(s, "big", &v, &n) == 0 && n == sizeof(big) && !memcmp(v, big, n),
	       "the big value survives eviction and a reopen, intact");
	free(v);
	TAP_OK(te_store_kv_get(s, "twin", &v, &n) == 0 && n == 66 * KiB && !memcmp(v, big, n),
	       "...and the 66 KiB one");
	free(v);
	TAP_OK(te_store_kv_get(s, "late", &v, &n) == 0 && n == 16 * KiB, "...and the late one");
	free(v);
	te_store_close(s);

	opts_for(&o, dir_of("kvsmall"), 4 * MiB);
	o.pending_bytes = 64 * KiB;
	s = open_or_die(&o);
	TAP_EQ_INT(te_store_kv_put(s, "x", big, 64 * KiB), -TE_ELIMIT,
		   "a value larger than the pending buffer is refused");
	TAP_EQ_INT(te_store_kv_put(s, "x", big, 40 * KiB), 0, "40 KiB fits");
	TAP_EQ_INT(te_store_kv_put(s, "y", big, 40 * KiB), -EAGAIN,
		   "a second one waits for the writer (EAGAIN)");
	settle(s);
	TAP_EQ_INT(te_store_kv_put(s, "y", big, 40 * KiB), 0, "...then fits");
	te_store_close(s);
}

/* A store written before key-value entries existed (q, x, m) opens and
 * gains them. */
static void test_kv_old_store(void)
{
	const char *dir = dir_of("kvold");
	struct te_store_opts o;
	struct te_store *s;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi q, x, m;
	MDB_val k = { 2, "#v" }, val;
	uint32_t ver = 1;
	char got[16];
	int rc;

	mkdir(dir, 0700);
	rc = mdb_env_create(&env);
	mdb_env_set_maxdbs(env, 4);
	rc = rc ? rc : mdb_env_open(env, dir, 0, 0600);
	rc = rc ? rc : mdb_txn_begin(env, NULL, 0, &txn);
	rc = rc ? rc : mdb_dbi_open(txn, "q", MDB_CREATE, &q);
	rc = rc ? rc : mdb_dbi_open(txn, "x", MDB_CREATE, &x);
	rc = rc ? rc : mdb_dbi_open(txn, "m", MDB_CREATE, &m);
	val = (MDB_val){ sizeof(ver), &ver };
	rc = rc ? rc : mdb_put(txn, m, &k, &val, 0);
	rc = rc ? rc : mdb_txn_commit(txn);
	mdb_env_close(env);
	TAP_EQ_INT(rc, 0, "a store of the first layout made");
	opts_for(&o, dir, 0);
	s = open_or_die(&o);
	TAP_EQ_INT(te_store_kv_put(s, "k", "v", 1), 0, "it opens and takes kv entries");
	te_store_close(s);
	s = open_or_die(&o);
	TAP_OK(kv_str(s, "k", got, sizeof(got)) == 0 && !strcmp(got, "v"), "...kept across a reopen");
	te_store_close(s);
}

/* ---- crashes -------------------------------------------------------------- */

/* The child: put numbered records as fast as it can, and report through
 * the pipe the highest number known committed. Runs until killed. */
static void crash_child(const char *dir, uint64_t first, int wfd)
{
	struct te_store_opts o;
	struct te_store *s;
	struct pollfd pfd;
	uint64_t seq0 = 0, seq, i = first, told = 0, done;
	uint8_t buf[200];
	uint32_t ep;
	int rc;

	opts_for(&o, dir, 16 * MiB);
	o.on_commit = NULL;
	if (te_store_open(&s, &o, NULL, 0))
		_exit(3);
	te_store_endpoint(s, "$upstream", &ep);
	for (;;) {
		rec_fill(buf, i, 40 + i % 160);
		rc = te_store_put(s, ep, (unsigned)(i % 3), 0, buf, 40 + i % 160, &seq);
		if (rc == 0) {
			seq0 = seq0 ? seq0 : seq;
			i++;
		} else if (rc == -EAGAIN) {
			pfd = (struct pollfd){ .fd = te_store_fd(s), .events = POLLIN };
			poll(&pfd, 1, 100);
		} else {
			_exit(4);
		}
		if (rc == 0 && i % 64)
			continue;
		te_store_process(s);
		seq = te_store_committed(s);
		if (seq0 && seq >= seq0 && (done = first + (seq - seq0)) != told) {
			if (write(wfd, &done, sizeof(done)) != sizeof(done))
				_exit(5);
			told = done;
		}
	}
}

/* One round: a child writes from first on and is killed once at least
 * want records were reported committed. Returns the last reported. */
static uint64_t crash_round(const char *dir, uint64_t first, uint64_t want)
{
	uint64_t done = 0, v;
	int p[2], st;
	pid_t pid;

	if (pipe(p))
		return 0;
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		crash_child(dir, first, p[1]);
	}
	close(p[1]);
	while (done < first + want && read(p[0], &v, sizeof(v)) == sizeof(v))
		done = v;
	kill(pid, SIGKILL); /* mid-stream: it keeps putting until this */
	waitpid(pid, &st, 0);
	close(p[0]);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		printf("# crash child ended with status %#x\n", st);
	return done;
}

static void test_crash(void)
{
	const char *dir = dir_of("crash");
	struct te_store_opts o;
	struct te_store *s;
	struct drained d;
	uint64_t first = 0, done, seq_before, seq;
	uint32_t ep;
	unsigned lost = 0, disorder = 0, bad = 0, rounds = 8;
	uint8_t buf[8] = { 0 };

	opts_for(&o, dir, 16 * MiB);
	for (unsigned r = 0; r < rounds; r++) {
		done = crash_round(dir, first, 5000);
		s = open_or_die(&o);
		te_store_endpoint(s, "$upstream", &ep);
		drain(s, ep, false, &d);
		/* Numbers go round-robin over prios 0..2: each prio holds an
		 * unbroken run from first up to at least done. */
		for (unsigned p = 0; p < 3; p++) {
			if (!d.n[p] || d.first[p] > first + 2 || d.last[p] + 3 <= done ||
			    d.n[p] != (d.last[p] - d.first[p]) / 3 + 1)
				lost++;
		}
		disorder += d.disorder;
		bad += d.bad;
		seq_before = te_store_committed(s);
		te_store_purge(s, ep);
		settle(s);
		first = done + 1000;
		if (r == rounds - 1) {
			te_store_put(s, ep, 0, 0, buf, sizeof(buf), &seq);
			TAP_OK(seq > d.total, "sequence after the crashes is new (%llu)",
			       (unsigned long long)seq);
		}
		(void)seq_before;
		te_store_close(s);
	}
	TAP_EQ_INT(lost, 0, "kill -9 x%u: every record reported committed is there", rounds);
	TAP_EQ_INT(disorder, 0, "... in order per priority");
	TAP_EQ_INT(bad, 0, "... and intact");
}

/* A reader killed inside a read transaction pins the pages of its
 * snapshot: the file grows on churn until a reader check clears it. */
static void churn(struct te_store *s, uint32_t ep, unsigned rounds)
{
	struct drained d;

	for (unsigned r = 0; r < rounds; r++) {
		put_n(s, ep, 0, 0, 0, 300, 1000);
		settle(s);
		drain(s, ep, true, &d);
	}
}

static void test_stale_reader(void)
{
	const char *dir = dir_of("stale");
	struct te_store_opts o;
	struct te_store *s;
	uint64_t f0, f1, f2, f3;
	uint32_t ep;
	int p[2], stale = -1, st;
	char c;
	pid_t pid;

	opts_for(&o, dir, 32 * MiB);
	s = open_or_die(&o);
	te_store_endpoint(s, "a", &ep);
	churn(s, ep, 2);
	f0 = file_size(dir);
	if (pipe(p))
		return;
	pid = fork();
	if (pid == 0) {
		MDB_env *env;
		MDB_txn *txn;

		if (mdb_env_create(&env) || mdb_env_open(env, dir, MDB_NOTLS, 0600) ||
		    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))
			_exit(3);
		if (write(p[1], "r", 1) != 1)
			_exit(4);
		pause();
		_exit(0);
	}
	close(p[1]);
	TAP_OK(read(p[0], &c, 1) == 1, "child holds a read transaction");
	close(p[0]);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	churn(s, ep, 4);
	f1 = file_size(dir);
	TAP_OK(f1 > f0 + 512 * KiB, "the dead reader pins pages: file %llu -> %llu",
	       (unsigned long long)f0, (unsigned long long)f1);
	TAP_EQ_INT(te_store_maintain(s, &stale), 0, "maintain");
	TAP_EQ_INT(stale, 1, "the reader check cleared the dead reader's slot");
	churn(s, ep, 4);
	f2 = file_size(dir);
	churn(s, ep, 8);
	f3 = file_size(dir);
	TAP_OK(f3 <= f2 + 64 * KiB, "then the file stops growing: %llu -> %llu",
	       (unsigned long long)f2, (unsigned long long)f3);
	te_store_maintain(s, &stale);
	TAP_EQ_INT(stale, 0, "nothing stale the second time");
	te_store_close(s);
}

/* ---- TTL and the clock ------------------------------------------------------- */

static void test_ttl(void)
{
	struct fclock fc;
	struct te_store_opts o;
	struct te_store *s;
	struct drained d;
	uint32_t ep;
	uint8_t buf[64];

	fclock_init(&fc, "boot-a", WALL0, 1000 * 1000);
	opts_for(&o, dir_of("ttl"), 4 * MiB);
	o.clock = &fc.c;
	o.default_ttl_s = 50;
	s = open_or_die(&o);
	te_store_endpoint(s, "a", &ep);
	rec_fill(buf, 1, sizeof(buf));
	te_store_put(s, ep, 0, 10, buf, sizeof(buf), NULL);
	rec_fill(buf, 2, sizeof(buf));
	te_store_put(s, ep, 0, 100, buf, sizeof(buf), NULL);
	rec_fill(buf, 3, sizeof(buf));
	te_store_put(s, ep, 0, 0, buf, sizeof(buf), NULL);
	rec_fill(buf, 4, sizeof(buf));
	te_store_put(s, ep, 0, TE_STORE_TTL_DEFAULT, buf, sizeof(buf), NULL);
	rec_fill(buf, 5, sizeof(buf));
	te_store_put(s, ep, 0, -5, buf, sizeof(buf), NULL);
	settle(s);
	drain(s, ep, false, &d);
	TAP_EQ_INT(d.total, 5, "ttl: all five there at first");

	fclock_add(&fc, 0, 10 * 1000);
	drain(s, ep, false, &d);
	TAP_OK(d.total == 4 && d.first[0] == 2, "at exactly its TTL a record is expired, never returned");
	TAP_EQ_INT(qstat(s, ep, 0).msgs, 5, "... though not deleted yet");
	te_store_maintain(s, NULL);
	settle(s);
	TAP_OK(qstat(s, ep, 0).msgs == 4 && qstat(s, ep, 0).expired == 1,
	       "maintain: the writer deletes it and counts it expired");

	/* Same boot: wall-clock jumps change nothing. */
	fclock_add(&fc, 365 * DAY_MS, 30 * 1000);
	drain(s, ep, false, &d);
	TAP_EQ_INT(d.total, 4, "wall clock +1 year, boot clock +30 s: nothing more expires");
	__atomic_store_n(&fc.wall, 0, __ATOMIC_RELEASE); /* and back to 1970 */
	fclock_add(&fc, 0, 11 * 1000);
	drain(s, ep, false, &d);
	TAP_OK(d.total == 3 && d.first[0] == 2 && d.last[0] == 5, "boot clock +51 s: the default TTL (50 s) expired");
	fclock_add(&fc, 0, 50 * 1000);
	te_store_maintain(s, NULL);
	settle(s);
	drain(s, ep, false, &d);
	TAP_OK(d.total == 2 && d.first[0] == 3 && qstat(s, ep, 0).expired == 3,
	       "+101 s: only the ones without TTL remain");
	te_store_close(s);
}

/* st_clock_resume: the rule itself, case by case. */
static void test_clock_rule(void)
{
	const uint64_t floor = WALL0 - 100 * DAY_MS;
	struct st_clockrec prev = {
		.boot_id = "boot-a", .base_ms = 5000, .alive_ms = 905000,
		.alive_wall_ms = WALL0, .wall_good_ms = WALL0,
	};

	TAP_EQ_INT(st_clock_resume(NULL, "x", WALL0, 7000, floor), 7000, "fresh store: the boot clock");
	TAP_EQ_INT(st_clock_resume(&prev, "boot-a", 0, 1000000, floor), 1005000, "same boot: base + boot clock");
	TAP_EQ_INT(st_clock_resume(&prev, "boot-a", 0, 1000, floor), 905000, "same boot never goes back");
	TAP_EQ_INT(st_clock_resume(&prev, "boot-b", WALL0 + 60000, 5000, floor), 965000,
		   "new boot, wall clock set: last alive + wall time since");
	TAP_EQ_INT(st_clock_resume(&prev, "boot-b", 5000, 5000, floor), 910000,
		   "new boot in 1970: last alive + uptime");
	TAP_EQ_INT(st_clock_resume(&prev, "boot-b", WALL0 - 1000, 5000, floor), 910000,
		   "new boot, wall before the last good time: uptime only");
	TAP_EQ_INT(st_clock_resume(&prev, "boot-b", WALL0 + 1000, 5000, floor), 910000,
		   "new boot, wall says less than the uptime: uptime");
	prev.alive_wall_ms = 3000; /* the last run never had a set clock */
	TAP_EQ_INT(st_clock_resume(&prev, "boot-b", WALL0 + 60000, 5000, floor), 910000,
		   "new boot after a run in 1970: uptime only");
	TAP_EQ_INT(st_clock_resume(&prev, "", WALL0, 5000, floor), 910000,
		   "unknown boot id: a new boot");
}

/* The rule end to end: a record put with a 100 s TTL, its store closed 40 s
 * later, reopened in various ways; its age as te_store_next reports it. */
static uint64_t reboot_age(const char *dir, const char *boot, uint64_t wall, uint64_t up_ms,
			   unsigned *n)
{
	struct fclock fc;
	struct te_store_opts o;
	struct te_store *s;
	struct drained d;
	uint32_t ep;

	fclock_init(&fc, boot, wall, up_ms);
	opts_for(&o, dir, 4 * MiB);
	o.clock = &fc.c;
	s = open_or_die(&o);
	te_store_endpoint(s, "a", &ep);
	drain(s, ep, false, &d);
	te_store_close(s);
	*n = d.total;
	return d.age_ms;
}

static void test_reboots(void)
{
	const char *dir = dir_of("reboot");
	struct fclock fc;
	struct te_store_opts o;
	struct te_store *s;
	uint8_t buf[32];
	uint32_t ep;
	uint64_t age;
	unsigned n;

	fclock_init(&fc, "boot-1", WALL0, 90 * 1000);
	opts_for(&o, dir, 4 * MiB);
	o.clock = &fc.c;
	s = open_or_die(&o);
	te_store_endpoint(s, "a", &ep);
	rec_fill(buf, 7, sizeof(buf));
	te_store_put(s, ep, 0, 100, buf, sizeof(buf), NULL);
	settle(s);
	fclock_add(&fc, 40 * 1000, 40 * 1000);
	te_store_close(s); /* alive at +40 s */

	age = reboot_age(dir, "boot-1", 0, 150 * 1000, &n);
	TAP_OK(n == 1 && age == 60 * 1000, "same boot, reopened 60 s after put: age %llu ms",
	       (unsigned long long)age);
	reboot_age(dir, "boot-1", 0, 191 * 1000, &n);
	TAP_EQ_INT(n, 0, "same boot, 101 s after put: expired");
}

static void fresh_copy(const char *src, const char *dir)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "rm -rf %s && cp -a %s %s", dir, src, dir);
	TAP_OK(system(cmd) == 0, "a fresh copy of the stored state");
}

/* Each case starts from the same file: a copy of the state after the put. */
static void test_reboot_cases(void)
{
	const char *src = dir_of("reboot0"), *dir = dir_of("reboot1");
	struct fclock fc;
	struct te_store_opts o;
	struct te_store *s;
	uint8_t buf[32];
	uint32_t ep;
	uint64_t age;
	unsigned n;

	fclock_init(&fc, "boot-1", WALL0, 90 * 1000);
	opts_for(&o, src, 4 * MiB);
	o.clock = &fc.c;
	s = open_or_die(&o);
	te_store_endpoint(s, "a", &ep);
	rec_fill(buf, 7, sizeof(buf));
	te_store_put(s, ep, 0, 100, buf, sizeof(buf), NULL);
	settle(s);
	fclock_add(&fc, 40 * 1000, 40 * 1000);
	te_store_close(s); /* last alive: 40 s after the put, wall WALL0 + 40 s */

	fresh_copy(src, dir);
	age = reboot_age(dir, "boot-2", WALL0 + 70 * 1000, 5 * 1000, &n);
	TAP_OK(n == 1 && age == 70 * 1000,
	       "new boot, wall clock set, 30 s after the last run: age %llu ms (70 s)", (unsigned long long)age);
	fresh_copy(src, dir);
	reboot_age(dir, "boot-2", WALL0 + 110 * 1000, 5 * 1000, &n);
	TAP_EQ_INT(n, 0, "new boot, wall clock 70 s after the last run: expired");
	fresh_copy(src, dir);
	age = reboot_age(dir, "boot-2", 5000, 5 * 1000, &n);
	TAP_OK(n == 1 && age == 45 * 1000,
	       "new boot in 1970: not expired, aged by the runs (%llu ms = 40 + 5 s)", (unsigned long long)age);
	fresh_copy(src, dir);
	reboot_age(dir, "boot-2", 5000, 61 * 1000, &n);
	TAP_EQ_INT(n, 0, "new boot in 1970: expires once the device has run past the TTL");
	fresh_copy(src, dir);
	age = reboot_age(dir, "boot-2", WALL0 - DAY_MS, 5 * 1000, &n);
	TAP_OK(n == 1 && age == 45 * 1000, "new boot, wall clock behind the last good time: uptime only (%llu ms)",
	       (unsigned long long)age);
	fresh_copy(src, dir);
	reboot_age(dir, "boot-2", 5000, 35 * 1000, &n);
	TAP_EQ_INT(n, 1, "two reboots in 1970: after the first (40 + 35 s) still there");
	reboot_age(dir, "boot-3", 5000, 30 * 1000, &n);
	TAP_EQ_INT(n, 0, "... after the second (40 + 35 + 30 s) expired");
}

/* ---- quota ------------------------------------------------------------------- */

static void test_quota_order(void)
{
	const char *dir = dir_of("quota");
	struct te_store_opts o;
	struct te_store_stats st;
	struct te_store *s;
	struct drained d;
	uint32_t ep, ep2;
	uint64_t ev5;
	unsigned n5;

	results_reset();
	opts_for(&o, dir, 1 * MiB);
	o.evict_batch = 16;
	s = open_or_die(&o);
	te_store_endpoint(s, "a", &ep);
	te_store_endpoint(s, "b", &ep2);
	put_n(s, ep, 0, 0, 0, 40, 1000);        /* important */
	put_n(s, ep2, 9, 0, 1000, 1500, 1000);  /* 1.5 MB of the least important */
	put_n(s, ep, 9, 0, 5000, 1500, 1000);   /* and 1.5 MB more, other endpoint */
	settle(s);
	st = stats(s);
	TAP_OK(st.map_full == 0 && st.commit_errors == 0 && R.err_runs == 0,
	       "3x the quota: no MAP_FULL, no failed commit (%llu, %llu, %u)",
	       (unsigned long long)st.map_full, (unsigned long long)st.commit_errors, R.err_runs);
	TAP_OK(st.evicted > 0 && st.file_bytes <= 1 * MiB && st.used_bytes <= 1 * MiB * 8 / 10,
	       "evicted %llu; file %llu and used %llu within the quota", (unsigned long long)st.evicted,
	       (unsigned long long)st.file_bytes, (unsigned long long)st.used_bytes);
	drain(s, ep, false, &d);
	TAP_OK(d.n[0] == 40 && d.first[0] == 0 && d.last[0] == 39, "priority 0 untouched");
	TAP_OK(d.n[9] > 0 && d.last[9] == 6499 && d.n[9] == d.last[9] - d.first[9] + 1,
	       "priority 9 of a: the newest %u remain, unbroken", d.n[9]);
	drain(s, ep2, false, &d);
	TAP_EQ_INT(d.n[9], 0, "the older priority-9 queue (b) went first");
	TAP_EQ_INT(qstat(s, ep2, 9).evicted, 1500, "... all 1500 counted evicted on b");

	/* Middle priority displaces the lowest, never the highest. */
	put_n(s, ep2, 5, 0, 20000, 300, 1000);
	settle(s);
	drain(s, ep2, false, &d);
	TAP_OK(d.n[5] == 300, "priority 5: all 300 stored");
	drain(s, ep, false, &d);
	TAP_OK(d.n[0] == 40 && d.n[9] < 300, "room made from priority 9 (%u left), priority 0 intact", d.n[9]);

	/* Lower priority never displaces higher: refused on arrival. */
	put_n(s, ep2, 5, 0, 30000, 900, 1000);
	settle(s);
	drain(s, ep, false, &d);
	TAP_OK(d.n[9] == 0 && d.n[0] == 40, "priority 9 all gone to priority 5, priority 0 intact");
	ev5 = qstat(s, ep2, 5).evicted;
	drain(s, ep2, false, &d);
	TAP_EQ_INT(d.n[5] + ev5, 1200, "priority 5: stored + evicted = put");
	n5 = d.n[5];
	put_n(s, ep, 9, 0, 40000, 400, 1000);
	settle(s);
	drain(s, ep2, false, &d);
	TAP_OK(d.n[5] == n5 && qstat(s, ep2, 5).evicted == ev5,
	       "a full store of priority 5 loses nothing to 400 of priority 9");
	drain(s, ep, false, &d);
	TAP_OK(d.n[9] < 100 && d.n[9] + qstat(s, ep, 9).evicted - 1500 == 400,
	       "priority 9 only got the free space (%u kept, the rest refused or evicted)", d.n[9]);
	st = stats(s);
	TAP_OK(st.map_full == 0 && st.commit_errors == 0, "still no MAP_FULL");
	te_store_close(s);
}

static void test_quota_expired_first(void)
{
	struct fclock fc;
	struct te_store_opts o;
	struct te_store *s;
	struct drained d;
	uint32_t ep;

	fclock_init(&fc, "b", WALL0, 1000);
	opts_for(&o, dir_of("quota-exp"), 2 * MiB);
	o.clock = &fc.c;
	s = open_or_die(&o);
	te_store_endpoint(s, "a", &ep);
	put_n(s, ep, 9, 0, 0, 200, 1000);    /* keep */
	put_n(s, ep, 0, 30, 100, 400, 1000); /* important, 30 s */
	settle(s);
	TAP_EQ_INT(stats(s).evicted, 0, "expired first: 600 records fit");
	fclock_add(&fc, 0, 31 * 1000);
	put_n(s, ep, 5, 0, 1000, 400, 1000); /* 1000 would not fit */
	settle(s);
	drain(s, ep, false, &d);
	TAP_OK(qstat(s, ep, 0).expired == 400 && stats(s).evicted == 0 && d.n[9] == 200 &&
	       d.n[5] == 400 && d.n[0] == 0,
	       "expired records go before any live one (expired %llu, evicted %llu, prio 9 left %u)",
	       (unsigned long long)qstat(s, ep, 0).expired, (unsigned long long)stats(s).evicted, d.n[9]);
	put_n(s, ep, 5, 0, 2000, 300, 1000);
	settle(s);
	TAP_OK(stats(s).evicted > 0, "(and 300 more do not fit without evicting)");
	te_store_close(s);
}

/* Filling 3x the quota with each record size: no MAP_FULL, file bounded. */
static void test_map_never_full(void)
{
	static const unsigned sizes[] = { 64, 1000, 3000, 9000 };
	static const uint64_t quotas[] = { 1 * MiB, 256 * KiB };
	char name[32];
	struct te_store_opts o;
	struct te_store_stats st;
	struct te_store *s;
	struct drained d;
	uint32_t ep;

	for (unsigned q = 0; q < 2; q++) {
		for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			unsigned n = (unsigned)(3 * quotas[q] / sizes[i]);

			results_reset();
			snprintf(name, sizeof(name), "full-%u-%u", q, sizes[i]);
			opts_for(&o, dir_of(name), quotas[q]);
			s = open_or_die(&o);
			te_store_endpoint(s, "a", &ep);
			if (sizes[i] > stats(s).rec_max) {
				te_store_close(s);
				continue;
			}
			put_n(s, ep, (unsigned)(i * 3 % 10), 0, 0, n, sizes[i]);
			settle(s);
			st = stats(s);
			drain(s, ep, false, &d);
			TAP_OK(st.map_full == 0 && st.commit_errors == 0 && R.err_runs == 0 &&
			       st.file_bytes <= quotas[q] && st.evicted > 0 && d.total > 0 &&
			       d.last[i * 3 % 10] == n - 1 && !d.disorder,
			       "%llu KiB quota, %u x %u B: no MAP_FULL, file %llu, %u kept (newest), %llu evicted",
			       (unsigned long long)quotas[q] / KiB, n, sizes[i],
			       (unsigned long long)st.file_bytes, d.total, (unsigned long long)st.evicted);
			te_store_close(s);
		}
	}
}

static void test_file_size(void)
{
	const char *dir = dir_of("size");
	struct te_store_opts o;
	struct te_store *s;
	struct drained d;
	uint64_t f[4];
	uint32_t ep;
	bool drained_all = true;

	opts_for(&o, dir, 16 * MiB);
	s = open_or_die(&o);
	te_store_endpoint(s, "a", &ep);
	for (unsigned r = 0; r < 4; r++) {
		for (unsigned p = 0; p < 3; p++)
			put_n(s, ep, p, 0, (uint64_t)r * 100000 + p * 10000, 1500, 900 + p * 100);
		settle(s);
		drain(s, ep, true, &d);
		drained_all &= d.total == 4500 && stats(s).msgs == 0;
		f[r] = file_size(dir);
	}
	TAP_OK(drained_all, "four rounds of 4500 in and out");
	TAP_OK(f[3] <= f[1] + 64 * KiB && f[2] <= f[1] + 64 * KiB,
	       "the file does not grow after a backlog drains: %llu %llu %llu %llu",
	       (unsigned long long)f[0], (unsigned long long)f[1], (unsigned long long)f[2],
	       (unsigned long long)f[3]);
	te_store_close(s);
}

/* ---- disk full ----------------------------------------------------------------- */

static void test_disk_full(void)
{
	const char *dir = dir_of("tmpfs");
	struct te_store_opts o;
	struct te_store_stats st;
	struct te_store *s;
	struct drained d;
	bool enospc = false;
	unsigned k;
	uint64_t ok_mid;
	uint32_t ep;

	mkdir(dir, 0700);
	if (mount("tmpfs", dir, "tmpfs", 0, "size=512k")) {
		TAP_OK(1, "# SKIP disk full: cannot mount a tmpfs (%s)", strerror(errno));
		return;
	}
	opts_for(&o, dir, 0);
	s = open_or_die(&o);
	TAP_EQ_INT(stats(s).max_bytes, 256 * KiB, "default quota on a 512k disk: half its space, at least 256k");
	te_store_close(s);

	results_reset();
	opts_for(&o, dir, 8 * MiB); /* a quota larger than the disk */
	s = open_or_die(&o);
	te_store_endpoint(s, "a", &ep);
	put_n(s, ep, 0, 0, 0, 20, 1000);
	TAP_EQ_INT(settle(s), 0, "early records committed");
	for (k = 0; k < 3000 && !enospc; k++) {
		put_n(s, ep, 5, 0, 1000 + k, 1, 1000);
		if (k % 16 == 15)
			settle(s);
		enospc = R.last_err == -ENOSPC;
	}
	settle(s);
	st = stats(s);
	TAP_OK(enospc, "a put completion reports ENOSPC (after %u puts, last error %d)", k, R.last_err);
	TAP_OK(st.last_err == -ENOSPC && strstr(st.last_error, "data.mdb") &&
	       strstr(st.last_error, "No space"), "last error: %s", st.last_error);
	drain(s, ep, false, &d);
	TAP_OK(d.n[0] == 20 && d.first[0] == 0, "reads work, early records there");
	TAP_OK(st.cap_bytes < 8 * MiB && st.cap_bytes <= st.file_bytes,
	       "capacity lowered to the file (%llu)", (unsigned long long)st.cap_bytes);
	ok_mid = R.ok_last;
	for (k = 0; k < 200; k++) {
		put_n(s, ep, 5, 0, 10000 + k, 1, 1000);
		settle(s);
	}
	TAP_OK(R.ok_last > ok_mid, "puts commit again, inside the file (last ok seq %llu, was %llu)",
	       (unsigned long long)R.ok_last, (unsigned long long)ok_mid);
	TAP_OK(stats(s).evicted > 0, "by evicting priority 5");
	te_store_close(s);
	s = open_or_die(&o);
	drain(s, ep, false, &d);
	TAP_OK(d.n[0] == 20 && d.first[0] == 0 && d.last[0] == 19 && !d.bad, "after reopen: early records intact");
	te_store_close(s);
	TAP_EQ_INT(umount(dir), 0, "tmpfs unmounted");
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0); /* no duplicated output after fork */
	alarm(240);
	if (!mkdtemp(base))
		return 2;
	test_open_errors();
	test_corrupt();
	test_foreign();
	test_order();
	test_reopen();
	test_backpressure();
	test_kv_basic();
	test_kv_big();
	test_kv_old_store();
	test_crash();
	test_stale_reader();
	test_ttl();
	test_clock_rule();
	test_reboots();
	test_reboot_cases();
	test_quota_order();
	test_quota_expired_first();
	test_map_never_full();
	test_file_size();
	test_disk_full();
	umount2(dir_of("tmpfs"), MNT_DETACH);
	nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
