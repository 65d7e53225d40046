/* The offline store: a durable store-and-forward queue in LMDB.
 *
 * Messages (opaque records, encoded by the caller) are queued per endpoint
 * ("$upstream", a spilled module input, ...) and priority (0 highest .. 9),
 * in the order they were put, until the caller acknowledges them, their TTL
 * expires, or the byte quota evicts them. docs/store.md has the file
 * layout, the durability argument, the clock rule and the eviction rules.
 *
 * Threads. A store has one internal writer thread; everything else runs on
 * one caller thread (the daemon's loop thread): every te_store_* call but
 * te_store_open takes the store the caller opened and must not race with
 * another call on the same store. te_store_put and te_store_ack never touch
 * the disk: they copy into a bounded pending buffer and return. The writer
 * takes everything pending, applies it in one write transaction (group
 * commit, fsync'd), and signals te_store_fd(); the loop then calls
 * te_store_process(), which reports each committed or failed run of puts
 * through opts.on_commit. Reads (te_store_next, te_store_stats) use a short
 * read transaction of their own and see committed data only.
 *
 * Guarantees. A put reported committed survives kill -9 and power loss.
 * Delivery is at-least-once and in order per endpoint and priority: a
 * record is returned by te_store_next until it is acknowledged, expired or
 * evicted. Sequences are global to the store, start at 1 and are never
 * reused, also across reopens.
 *
 * Key-value entries. Besides the queues the store keeps a small map of
 * named values (te_store_kv_*: module twins, "twin/NAME"), in a
 * sub-database of its own. Puts and deletes are queued like message puts
 * and committed durably with the next group commit (no disk I/O on the
 * caller's thread); a get sees every put and delete made before it, also
 * those not committed yet (read-your-writes). Entries are never expired
 * nor evicted and are not messages (no endpoint, no counters); their
 * pages count towards the quota, and a put above the high-water mark
 * evicts messages as a message put would.
 *
 * Errors are 0 or negative: -errno, or -TE_E* (core/err.h). A corrupt,
 * locked or unwritable store fails te_store_open with a message naming the
 * file; the caller keeps running without a store. */
#ifndef TE_STORE_H
#define TE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TE_STORE_PRIOS 10              /* priorities 0 (first) .. 9 */
#define TE_STORE_NAME_MAX 127          /* endpoint name bytes */
#define TE_STORE_TTL_DEFAULT INT64_MIN /* te_store_put: the store's default TTL */
#define TE_STORE_ERR_MAX 256           /* te_store_open's err: enough for any message */
#define TE_STORE_KEY_MAX 255           /* key-value entries: key bytes */
#define TE_STORE_VAL_MAX (256u * 1024) /* key-value entries: value bytes */

struct te_store;

/* A clock for tests; NULL in te_store_opts means the system's. now() fills
 * the wall clock (CLOCK_REALTIME) and the boot clock (CLOCK_BOOTTIME, which
 * counts suspend) in milliseconds. It is called from the caller's thread and
 * the writer thread: it must be thread-safe. */
struct te_store_clock {
	void (*now)(void *ctx, uint64_t *wall_ms, uint64_t *boot_ms);
	void *ctx;
	const char *boot_id; /* NULL: /proc/sys/kernel/random/boot_id */
};

/* A run of puts whose fate is known: every put with first_seq <= seq <=
 * last_seq is committed (err == 0; or refused by the quota because only
 * more important records were left to evict, counted as evicted), or was
 * not stored (err < 0: -ENOSPC, -EIO, -TE_ELIMIT for a full LMDB map;
 * counted as failed). Runs are reported in sequence order, contiguous,
 * never overlapping. */
struct te_store_done {
	uint64_t first_seq, last_seq;
	int err;
};

struct te_store_opts {
	const char *path;         /* directory (created 0700); the caller's string */
	/* Byte quota and LMDB map size: the data file never grows past it.
	 * 0: min(64 MiB, 50 % of (free space + this store's file)) at open. */
	uint64_t max_bytes;
	int64_t default_ttl_s;    /* for TE_STORE_TTL_DEFAULT; <= 0: until evicted */
	uint32_t pending_bytes;   /* each of the two pending buffers */
	unsigned max_endpoints;   /* endpoint table size (more if the file has more) */
	unsigned evict_batch;     /* records deleted per eviction step */
	unsigned alive_interval_s;  /* "last alive" clock record at least this often */
	unsigned expire_interval_s; /* delete expired records at least this often */
	/* The earliest plausible wall clock (ms since the epoch), e.g. the build
	 * time: a wall clock before it is "not set" (an RTC-less boot in 1970).
	 * 0: a built-in floor (2025-01-01). */
	uint64_t wall_floor_ms;
	/* Called from te_store_process() on the caller's thread. May be NULL. */
	void (*on_commit)(void *ctx, const struct te_store_done *d);
	void *ctx;
	const struct te_store_clock *clock;
};

/* Where te_store_next resumes, per endpoint: the last sequence handed out
 * per priority. Caller-owned; te_store_cursor_init starts from the oldest
 * unacknowledged record (what a reconnect does to resend its window). */
struct te_store_cursor {
	uint32_t ep;
	uint64_t after[TE_STORE_PRIOS];
};

/* One record as te_store_next hands it out. */
struct te_store_item {
	unsigned prio;
	uint64_t seq;
	uint32_t len;       /* record bytes (also when the buffer was too small) */
	uint64_t age_ms;    /* since it was put, by the store clock */
	uint64_t wall_ms;   /* the wall clock when it was put (may be unset: 1970) */
};

/* Per endpoint and priority; counters are cumulative across reopens. */
struct te_store_qstat {
	const char *endpoint;   /* valid until te_store_close */
	uint32_t ep;
	unsigned prio;
	uint64_t msgs, bytes;   /* stored now (record bytes) */
	uint64_t oldest_age_ms; /* 0 when empty */
	uint64_t delivered;     /* acknowledged */
	uint64_t expired;       /* removed by TTL */
	uint64_t evicted;       /* removed (or refused) by the quota */
	uint64_t purged;        /* removed by te_store_purge */
	uint64_t failed;        /* puts whose commit failed */
};

struct te_store_stats {
	uint64_t msgs, bytes;           /* stored now, all queues */
	uint64_t expired, evicted, purged, failed, delivered;
	uint64_t file_bytes;            /* data.mdb size on disk */
	uint64_t map_bytes;             /* LMDB map: the file's ceiling */
	uint64_t max_bytes;             /* the quota (after defaults) */
	uint64_t cap_bytes;             /* max_bytes, or less after ENOSPC */
	uint64_t used_bytes;            /* B-tree pages in use (last commit) */
	uint64_t pending_bytes;         /* queued, not yet applied */
	uint64_t commits, commit_errors, map_full;
	uint64_t bytes_written;         /* record bytes committed (flash budget) */
	uint64_t stale_readers;         /* cleared by reader checks */
	uint64_t rec_max;               /* largest record te_store_put takes */
	uint64_t kv_failed;             /* key-value ops lost: two commits failed */
	int last_err;                   /* last commit error; 0 if none yet */
	char last_error[TE_STORE_ERR_MAX]; /* its text, "" if none */
};

/* Defaults: default_ttl_s 7200, pending_bytes 1 MiB, max_endpoints 64,
 * evict_batch 64, alive_interval_s 300, expire_interval_s 60; the rest 0. */
void te_store_opts_init(struct te_store_opts *o);

/* Open (create) the store at o->path and start its writer. Clears the
 * reader slots of dead processes (mdb_reader_check). Only one process may
 * have a store open at a time (flock on the directory).
 * @param out   the store, on success; NULL on failure
 * @param err   on failure, one line naming the path and the cause, e.g.
 *              "store /var/lib/tinyedge/store/data.mdb: not an LMDB file
 *              (corrupt?)"; may be NULL
 * @return 0; -EINVAL (bad opts), -EBUSY (in use), -TE_EMALFORMED (corrupt
 *         or foreign file), -ENOSPC, -EACCES, -EROFS, -ENOMEM, other -errno */
int te_store_open(struct te_store **out, const struct te_store_opts *o,
		  char *err, size_t errlen);

/* Apply everything pending, write a last "alive" clock record, stop the
 * writer, close. Completions not yet processed are dropped. s may be NULL. */
void te_store_close(struct te_store *s);

/* The id of an endpoint (created on first use; ids are persisted with the
 * first commit after creation and never change).
 * @return 0; -EINVAL (empty or longer than TE_STORE_NAME_MAX), -TE_ELIMIT
 *         (endpoint table full) */
int te_store_endpoint(struct te_store *s, const char *name, uint32_t *id);

/* Queue a record for endpoint ep at priority prio. Copies rec; no disk I/O.
 * @param ttl_s  seconds to live; <= 0: until acknowledged or evicted;
 *               TE_STORE_TTL_DEFAULT: opts.default_ttl_s
 * @param seq    its sequence (may be NULL); committed when a te_store_done
 *               run covering it reports err == 0
 * @return 0; -EAGAIN when the pending buffer is full (backpressure: retry
 *         after te_store_fd() is readable); -TE_ELIMIT when len exceeds
 *         rec_max (see te_store_stats); -EINVAL (bad ep or prio); -EIO when
 *         the store failed for good (reopen it) */
int te_store_put(struct te_store *s, uint32_t ep, unsigned prio, int64_t ttl_s,
		 const void *rec, size_t len, uint64_t *seq);

/* Delete a delivered record (batched with the next commit). A record that
 * is already gone (expired, evicted, acked) is ignored.
 * @return 0; -EAGAIN (pending buffer full); -EINVAL; -EIO as for put */
int te_store_ack(struct te_store *s, uint32_t ep, unsigned prio, uint64_t seq);

/* Delete every record of an endpoint (batched; large queues over several
 * commits). @return as te_store_ack */
int te_store_purge(struct te_store *s, uint32_t ep);

/* Start a cursor at the oldest unacknowledged record of ep. */
void te_store_cursor_init(struct te_store_cursor *c, uint32_t ep);

/* The next committed record of c->ep not yet handed out through c: best
 * priority first, then sequence. Expired records are skipped (and never
 * returned). The record is copied into buf.
 * @return 0 (c advanced, it filled); -ENOENT (nothing more now);
 *         -TE_ENOSPACE (cap < it->len: it filled, c not advanced);
 *         -TE_EMALFORMED (a damaged record); other -errno */
int te_store_next(struct te_store *s, struct te_store_cursor *c,
		  struct te_store_item *it, void *buf, size_t cap);

/* An eventfd (non-blocking, close-on-exec) readable when runs of puts
 * have been committed or failed. Owned by the store. */
int te_store_fd(const struct te_store *s);

/* Drain te_store_fd() and report each new run through opts.on_commit.
 * @return the number of runs reported */
int te_store_process(struct te_store *s);

/* The highest sequence known committed (0 if none since open). */
uint64_t te_store_committed(struct te_store *s);

/* Block until everything queued before the call has been applied (for
 * shutdown paths, tools and tests; never on the loop's hot path).
 * @return the last commit error since open, or 0 */
int te_store_sync(struct te_store *s);

/* Housekeeping, e.g. once a minute: clears reader slots of dead processes,
 * has the writer delete expired records and write an "alive" clock record,
 * and restores the full quota if the filesystem has room again after an
 * ENOSPC. Does not wait for the writer.
 * @param stale  reader slots cleared (may be NULL)
 * @return 0 or -errno */
int te_store_maintain(struct te_store *s, int *stale);

/* Set key (a C string of 1..TE_STORE_KEY_MAX bytes) to val[0..n)
 * (n <= TE_STORE_VAL_MAX; 0 is a valid length). Copies val; no disk I/O:
 * committed with the next group commit. A commit that fails is retried
 * once with the next one; if that fails too the op is lost and counted
 * (kv_failed in te_store_stats), and gets see the committed value again.
 * @return 0; -EINVAL (bad key, NULL val with n > 0); -TE_ELIMIT (n over
 *         TE_STORE_VAL_MAX or the pending buffer); -EAGAIN (the pending
 *         buffer is full: retry after te_store_fd() is readable); -EIO
 *         when the store failed for good */
int te_store_kv_put(struct te_store *s, const char *key, const void *val, size_t n);

/* Delete key (queued as te_store_kv_put; deleting a missing key is not an
 * error). @return as te_store_kv_put */
int te_store_kv_del(struct te_store *s, const char *key);

/* The value of key as of every put and delete made so far, committed or
 * not: a malloc'd copy in *val (the caller frees it; never NULL on
 * success, also for an empty value) of *n bytes.
 * @return 0; -ENOENT (no such key, or deleted); -EINVAL (bad key);
 *         -ENOMEM; other -errno from LMDB */
int te_store_kv_get(struct te_store *s, const char *key, void **val, size_t *n);

/* Totals. @return 0 or -errno */
int te_store_stats(struct te_store *s, struct te_store_stats *st);

/* Call cb for each endpoint and priority that has records or counts.
 * @return 0, or the first non-zero value cb returned */
int te_store_foreach_queue(struct te_store *s,
			   int (*cb)(void *ctx, const struct te_store_qstat *q),
			   void *ctx);

#endif
