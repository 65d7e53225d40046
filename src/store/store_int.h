/* Store internals shared by store*.c (see store.h and docs/store.md).
 *
 * Ownership of struct te_store's fields, by thread:
 *   caller  the thread that calls te_store_* (the daemon's loop thread)
 *   writer  the writer thread
 *   mu      either, holding s->mu
 *   const   set by te_store_open before the writer starts, then read-only */
#ifndef TE_STORE_INT_H
#define TE_STORE_INT_H

#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"

#define ST_VERSION 1            /* "#v" in the meta DB */
#define ST_NEVER UINT64_MAX     /* no expiry */
#define ST_MIN_BYTES (256u << 10)
#define ST_AUTO_MAX_BYTES (64ull << 20)
#define ST_RUNS 64              /* completion runs kept for te_store_process */
#define ST_BOOT_ID_MAX 40

/* Keys are big-endian so that LMDB's byte order is numeric order.
 *   q (queues):  ep u32 | prio u8 | seq u64        -> st_rec + record
 *   x (expiry):  exp_ms u64 | seq u64              -> ep u32 | prio u8
 *   m (meta):    "#v" "#seq" "#clock", 'E'+name -> id, 'C'+id+prio -> st_qc
 *   k (kv):      the caller's key bytes            -> the caller's value */
#define QKEY_LEN 13
#define XKEY_LEN 16
#define XVAL_LEN 5
#define CKEY_LEN 6

/* The header of a stored value; the record follows. Native byte order
 * (an LMDB file is not portable across byte orders anyway). */
struct st_rec {
	uint64_t enq_ms;  /* store clock at put */
	uint64_t exp_ms;  /* store clock; ST_NEVER */
	uint64_t wall_ms; /* wall clock at put, as it was */
};

/* Per-queue counters, persisted as 'C' records. */
struct st_qc {
	uint64_t msgs, bytes, delivered, expired, evicted, purged, failed;
};

/* The clock record ("#clock"): see st_clock_resume. */
struct st_clockrec {
	char boot_id[ST_BOOT_ID_MAX];
	uint64_t base_ms;       /* store time = base_ms + CLOCK_BOOTTIME of that boot */
	uint64_t alive_ms;      /* store time of the last commit or alive tick */
	uint64_t alive_wall_ms; /* wall clock then */
	uint64_t wall_good_ms;  /* latest wall clock seen that looked set */
};

struct st_ep {
	char name[TE_STORE_NAME_MAX + 1]; /* const once counted in nep */
	bool stored;                      /* writer: its 'E' record is committed */
	uint16_t dirty;                   /* writer: w[prio] changed in this txn */
	struct st_qc c[TE_STORE_PRIOS];   /* mu (written by the writer): committed */
	struct st_qc w[TE_STORE_PRIOS];   /* writer: working copy in the open txn */
};

/* Pending operations, appended by the caller, applied by the writer in
 * order. 8-byte aligned; a put's value (st_rec + record) is contiguous, so
 * the writer hands it to LMDB without another copy. */
enum { OP_PUT = 1, OP_ACK, OP_PURGE, OP_KV_PUT, OP_KV_DEL };

/* st_op.pad flags, set by the writer under s->mu. */
#define OPF_RETRY 1        /* an ack, purge or kv op that failed once */
#define OPF_DONE 2         /* failed for good, already reported */

struct st_op {
	uint8_t type;
	uint8_t prio;
	uint16_t pad;
	uint32_t ep;
	uint64_t seq;
};

struct st_put {
	struct st_op op;
	uint32_t len;
	uint32_t pad;
	struct st_rec h;
	/* record bytes, then padding to 8 */
};

/* A key-value op (OP_KV_PUT, OP_KV_DEL; op.ep and op.seq are 0): klen
 * key bytes, then vlen value bytes (none for a delete), padded to 8. */
struct st_kv {
	struct st_op op;
	uint32_t klen;
	uint32_t vlen;
	/* key bytes, value bytes, then padding to 8 */
};

struct st_buf {
	uint8_t *p;
	uint32_t used;  /* bytes of ops */
	uint32_t nops;
};

struct te_store {
	/* const */
	struct te_store_opts o;
	char dir[PATH_MAX];
	char file[PATH_MAX];         /* dir/data.mdb, for messages */
	struct te_store_clock clk;
	char boot_id[ST_BOOT_ID_MAX];
	uint64_t base_ms;            /* store time = base_ms + boot clock */
	uint64_t wall_floor_ms;
	unsigned psize, nodemax;
	uint64_t map_pages, max_bytes;
	uint64_t budget;             /* estimated page bytes per write txn */
	uint64_t rec_max;
	uint32_t bufcap;
	unsigned epcap;
	int dirfd;                   /* holds the flock */
	MDB_env *env;
	MDB_dbi q, x, m, k;

	/* caller */
	MDB_txn *rtxn;               /* reset between calls (no allocation) */
	MDB_cursor *rcur;
	int efd;

	pthread_mutex_t mu;
	pthread_cond_t work;         /* the writer waits for ops */
	pthread_cond_t done_cv;      /* te_store_sync waits for the writer */
	/* mu */
	struct st_buf buf[2];
	struct st_buf *fill;         /* the caller appends here */
	uint64_t next_seq;
	uint64_t queued, done;       /* ops appended / applied */
	uint64_t cap_pages;          /* map_pages, less after ENOSPC */
	unsigned maint;              /* te_store_maintain calls pending */
	bool stopping, idle, broken, failing;
	struct te_store_done runs[ST_RUNS];
	unsigned nruns;
	struct st_ep *eps;
	unsigned nep;
	uint64_t committed_seq;
	uint64_t commits, commit_errors, map_full, bytes_written, ack_failed, kv_failed;
	uint64_t used_pages, stale_readers;
	int last_err;
	char last_error[TE_STORE_ERR_MAX];

	/* writer */
	pthread_t writer;
	bool writer_started;
	struct st_clockrec clock;    /* last written (or loaded) */
	uint64_t next_exp;           /* head of the expiry index (store ms) */
	uint64_t last_commit_mono, last_expire_mono;
	bool expire_more;
};

/* store.c */
int st_err(int mdb_rc);
void st_wake_loop(struct te_store *s);

/* store_queue.c, under s->mu: room for need bytes of ops in the fill
 * buffer (NULL with *rc set), and whether the writer sleeps (signal
 * s->work after unlocking). */
struct st_op *st_reserve(struct te_store *s, uint32_t need, int *rc);
bool st_wants_wake(struct te_store *s);

/* store_read.c: renew the read transaction (and its cursor). */
int st_rd_begin(struct te_store *s);

/* store_clock.c */
void st_sys_clock(void *ctx, uint64_t *wall_ms, uint64_t *boot_ms);
int st_read_boot_id(char *out, size_t cap);
uint64_t st_clock_resume(const struct st_clockrec *prev, const char *boot_id,
			 uint64_t wall_ms, uint64_t boot_ms, uint64_t floor_ms);
uint64_t st_now(const struct te_store *s, uint64_t *wall_ms);
void st_clock_alive(struct te_store *s, uint64_t now, uint64_t wall);
uint64_t st_mono_ms(void);

/* store_write.c */
void *st_writer_main(void *arg);

/* Key codecs. */
static inline void st_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint64_t st_get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static inline void st_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t st_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void st_qkey(uint8_t k[QKEY_LEN], uint32_t ep, unsigned prio, uint64_t seq)
{
	st_be32(k, ep);
	k[4] = (uint8_t)prio;
	st_be64(k + 5, seq);
}

static inline void st_xkey(uint8_t k[XKEY_LEN], uint64_t exp, uint64_t seq)
{
	st_be64(k, exp);
	st_be64(k + 8, seq);
}

static inline void st_ckey(uint8_t k[CKEY_LEN], uint32_t ep, unsigned prio)
{
	k[0] = 'C';
	st_be32(k + 1, ep);
	k[5] = (uint8_t)prio;
}

static inline uint32_t st_op_size(const struct st_op *op)
{
	const struct st_kv *kv = (const struct st_kv *)op;

	if (op->type == OP_PUT)
		return (uint32_t)((sizeof(struct st_put) + ((const struct st_put *)op)->len + 7) &
				  ~(size_t)7);
	if (op->type == OP_KV_PUT || op->type == OP_KV_DEL)
		return (uint32_t)((sizeof(*kv) + (size_t)kv->klen + kv->vlen + 7) & ~(size_t)7);
	return sizeof(*op);
}

#endif
