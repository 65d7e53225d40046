/* The writer thread: group commit, TTL expiry and quota eviction.
 *
 * The caller appends operations to the fill buffer; the writer swaps it for
 * the other (empty) buffer and applies everything it took in as few write
 * transactions as the per-transaction budget allows (one, unless the batch
 * is large against the quota). Each transaction also deletes what has
 * expired and persists the sequence, the touched counters and the clock
 * record, then commits durably.
 *
 * Space. "live" is the pages LMDB's trees use (exact, from mdb_stat inside
 * the transaction). A put that would take live past the high-water mark
 * ends the transaction; the next one evicts (expired first, then lowest
 * priority, then oldest) down to the low-water mark and commits on its own,
 * so the space it frees is reusable by the puts that follow. With live
 * under the high-water mark and each transaction dirtying at most about one
 * budget, LMDB's file stays below the map size: no MDB_MAP_FULL (see
 * docs/store.md for the arithmetic). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>

#include "core/err.h"
#include "core/log.h"
#include "store_int.h"

#define ROOM_REFUSED 1     /* nothing ranks below the incoming record */
#define NODE_HDR 8         /* LMDB node header */
#define XCOST (2 * (NODE_HDR + XKEY_LEN + XVAL_LEN + 2))

enum why { WHY_DELIVERED, WHY_EXPIRED, WHY_EVICTED, WHY_PURGED };

struct wtx {
	MDB_txn *txn;
	MDB_cursor *qc, *xc;
	uint64_t now, wall;      /* store clock, wall clock */
	int64_t budget;          /* estimated page bytes left */
	uint64_t cap, hw, lw;    /* capacity, high/low-water marks, pages */
	uint64_t next_seq;       /* persisted as "#seq" */
	unsigned nep;
	unsigned nops, deleted;  /* ops applied, records deleted */
	uint64_t first_seq, last_seq; /* puts resolved */
	uint64_t put_bytes, live;
	bool expire_more;
};

/* --- costs and space --- */

static uint64_t put_cost(const struct te_store *s, uint64_t len)
{
	uint64_t v = sizeof(struct st_rec) + len, node = NODE_HDR + QKEY_LEN + v + 2;

	if (node <= s->nodemax)
		return 2 * node + XCOST; /* pages split half full */
	return (v + 16 + s->psize - 1) / s->psize * s->psize +
	       2 * (NODE_HDR + QKEY_LEN + 8 + 2) + XCOST;
}

/* Sequential deletes copy each leaf they touch once; overflow pages are
 * freed without a copy. */
static uint64_t del_cost(const struct te_store *s, uint64_t vsize)
{
	uint64_t node = NODE_HDR + QKEY_LEN + vsize + 2;

	if (node > s->nodemax)
		node = NODE_HDR + QKEY_LEN + 8 + 2;
	return 2 * node + XCOST;
}

static uint64_t live_pages(const struct te_store *s, MDB_txn *txn)
{
	MDB_dbi dbi[] = { 0 /* free list */, 1 /* main */, s->q, s->x, s->m, s->k };
	uint64_t n = 2; /* the meta pages */
	MDB_stat st;

	for (unsigned i = 0; i < sizeof(dbi) / sizeof(dbi[0]); i++)
		if (mdb_stat(txn, dbi[i], &st) == 0)
			n += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
	return n;
}

/* High-water: 80 % of the capacity, but always leaving room for three
 * transactions' worth of pages (this one, the one a reader may still pin,
 * and the tree's fixed overhead) on small stores. */
static void water_marks(const struct te_store *s, uint64_t cap, struct wtx *t)
{
	uint64_t bp = s->budget / s->psize, hw = cap * 8 / 10;

	if (cap > 3 * bp + 16 && hw > cap - 3 * bp - 16)
		hw = cap - 3 * bp - 16;
	if (hw < 8)
		hw = 8;
	t->hw = hw;
	t->lw = hw > bp + 8 ? hw - bp : hw / 2;
}

/* --- counters --- */

static void count(struct te_store *s, struct wtx *t, uint32_t ep, unsigned p,
		  uint64_t len, enum why why)
{
	struct st_qc *q;

	if (ep < 1 || ep > t->nep || p >= TE_STORE_PRIOS)
		return; /* a record of an unknown queue: deleted, not counted */
	q = &s->eps[ep - 1].w[p];
	s->eps[ep - 1].dirty |= (uint16_t)(1u << p);
	q->msgs -= q->msgs ? 1 : 0;
	q->bytes -= q->bytes >= len ? len : q->bytes;
	if (why == WHY_DELIVERED)
		q->delivered++;
	else if (why == WHY_EXPIRED)
		q->expired++;
	else if (why == WHY_EVICTED)
		q->evicted++;
	else
		q->purged++;
}

/* --- deleting --- */

/* Delete the record under t->qc (key, val), and its expiry entry unless
 * the caller is iterating the expiry index itself. */
static int cur_delete(struct te_store *s, struct wtx *t, const MDB_val *key,
		      const MDB_val *val, enum why why, bool del_x)
{
	const uint8_t *kp = key->mv_data;
	struct st_rec h = { .exp_ms = ST_NEVER };
	uint64_t vsize = val->mv_size;
	uint8_t xk[XKEY_LEN];
	MDB_val xkey = { XKEY_LEN, xk };
	int mrc;

	if (key->mv_size != QKEY_LEN)
		return -TE_EMALFORMED;
	if (vsize >= sizeof(h))
		memcpy(&h, val->mv_data, sizeof(h));
	if (del_x && h.exp_ms != ST_NEVER) {
		st_xkey(xk, h.exp_ms, st_get_be64(kp + 5));
		mrc = mdb_del(t->txn, s->x, &xkey, NULL);
		if (mrc && mrc != MDB_NOTFOUND)
			return st_err(mrc);
	}
	count(s, t, st_get_be32(kp), kp[4], vsize >= sizeof(h) ? vsize - sizeof(h) : 0, why);
	if ((mrc = mdb_cursor_del(t->qc, 0)))
		return st_err(mrc);
	t->budget -= (int64_t)del_cost(s, vsize);
	t->deleted++;
	return 0;
}

static int q_delete(struct te_store *s, struct wtx *t, uint32_t ep, unsigned p,
		    uint64_t seq, enum why why, bool del_x)
{
	uint8_t k[QKEY_LEN];
	MDB_val key = { QKEY_LEN, k }, val;
	int mrc;

	st_qkey(k, ep, p, seq);
	mrc = mdb_cursor_get(t->qc, &key, &val, MDB_SET_KEY);
	if (mrc)
		return st_err(mrc);
	return cur_delete(s, t, &key, &val, why, del_x);
}

/* Up to max records from the head of queue (ep, p), or of every priority
 * of ep when p < 0. Returns how many, or -errno. */
static int del_head(struct te_store *s, struct wtx *t, uint32_t ep, int p,
		    unsigned max, enum why why)
{
	uint8_t k[QKEY_LEN];
	MDB_val key = { QKEY_LEN, k }, val;
	size_t plen = p < 0 ? 4 : 5;
	unsigned n = 0;
	int mrc, rc;

	st_qkey(k, ep, p < 0 ? 0 : (unsigned)p, 0);
	for (mrc = mdb_cursor_get(t->qc, &key, &val, MDB_SET_RANGE);
	     !mrc && n < max && key.mv_size >= plen && memcmp(key.mv_data, k, plen) == 0;
	     mrc = mdb_cursor_get(t->qc, &key, &val, MDB_NEXT)) {
		if ((rc = cur_delete(s, t, &key, &val, why, true)))
			return rc;
		n++;
	}
	if (mrc && mrc != MDB_NOTFOUND)
		return st_err(mrc);
	return (int)n;
}

/* Expired records, oldest expiry first: at most max, or while the budget
 * lasts when max is 0. Returns how many, or -errno. */
static int expire_some(struct te_store *s, struct wtx *t, unsigned max)
{
	MDB_val key, val;
	const uint8_t *kp, *vp;
	unsigned n = 0;
	int mrc, rc;

	for (mrc = mdb_cursor_get(t->xc, &key, &val, MDB_FIRST); !mrc;
	     mrc = mdb_cursor_get(t->xc, &key, &val, MDB_NEXT)) {
		kp = key.mv_data;
		vp = val.mv_data;
		if (key.mv_size == XKEY_LEN && st_get_be64(kp) > t->now)
			break;
		if ((max && n >= max) || (!max && t->budget <= 0)) {
			t->expire_more = true;
			break;
		}
		if (key.mv_size == XKEY_LEN && val.mv_size == XVAL_LEN) {
			rc = q_delete(s, t, st_get_be32(vp), vp[4], st_get_be64(kp + 8), WHY_EXPIRED, false);
			if (rc && rc != -ENOENT)
				return rc;
		}
		if ((mrc = mdb_cursor_del(t->xc, 0)))
			return st_err(mrc);
		n++;
	}
	if (mrc && mrc != MDB_NOTFOUND)
		return st_err(mrc);
	return (int)n;
}

static int queue_head(struct te_store *s, struct wtx *t, uint32_t ep, unsigned p, uint64_t *seq)
{
	uint8_t k[QKEY_LEN];
	MDB_val key = { QKEY_LEN, k }, val;
	int mrc;

	st_qkey(k, ep, p, 0);
	mrc = mdb_cursor_get(t->qc, &key, &val, MDB_SET_RANGE);
	if (mrc)
		return st_err(mrc);
	if (key.mv_size != QKEY_LEN || memcmp(key.mv_data, k, 5) != 0)
		return -ENOENT;
	*seq = st_get_be64((const uint8_t *)key.mv_data + 5);
	return 0;
}

/* One eviction step: the oldest records of the lowest priority present,
 * not better than min_prio. Returns how many, 0 if none rank that low. */
static int evict_some(struct te_store *s, struct wtx *t, unsigned min_prio)
{
	uint64_t seq = 0, best_seq;
	uint32_t best;
	int rc;

	for (int p = TE_STORE_PRIOS - 1; p >= (int)min_prio; p--) {
		best = 0;
		best_seq = UINT64_MAX;
		for (uint32_t i = 0; i < t->nep; i++) {
			if (!s->eps[i].w[p].msgs)
				continue;
			rc = queue_head(s, t, i + 1, (unsigned)p, &seq);
			if (rc && rc != -ENOENT)
				return rc;
			if (!rc && seq < best_seq) {
				best_seq = seq;
				best = i + 1;
			}
		}
		if (best)
			return del_head(s, t, best, p, s->o.evict_batch, WHY_EVICTED);
	}
	return 0;
}

/* Room for a put of cost bytes under the high-water mark. If there is
 * none, a transaction that has applied ops ends here (-EAGAIN); a fresh
 * one evicts down to the low-water mark and ends (-EAGAIN), so that the
 * next transaction's puts can reuse what it freed. */
static int make_room(struct te_store *s, struct wtx *t, uint64_t cost, unsigned prio)
{
	int n;

	if (live_pages(s, t->txn) * s->psize + cost <= t->hw * s->psize)
		return 0;
	if (t->nops)
		return -EAGAIN;
	while (live_pages(s, t->txn) > t->lw && t->budget > 0) {
		n = expire_some(s, t, s->o.evict_batch);
		if (n == 0)
			n = evict_some(s, t, prio);
		if (n < 0)
			return n;
		if (n == 0)
			break;
	}
	return t->deleted ? -EAGAIN : ROOM_REFUSED;
}

/* --- ops --- */

static void seq_done(struct wtx *t, uint64_t seq)
{
	if (!t->first_seq)
		t->first_seq = seq;
	t->last_seq = seq;
}

static int wtx_put(struct te_store *s, struct wtx *t, struct st_put *p)
{
	struct st_ep *e = &s->eps[p->op.ep - 1];
	uint64_t cost = put_cost(s, p->len);
	uint8_t k[QKEY_LEN], xk[XKEY_LEN], xv[XVAL_LEN];
	MDB_val key = { QKEY_LEN, k }, val = { sizeof(p->h) + p->len, &p->h };
	MDB_val xkey = { XKEY_LEN, xk }, xval = { XVAL_LEN, xv };
	int rc, mrc;

	if (t->nops && (int64_t)cost > t->budget)
		return -EAGAIN;
	rc = make_room(s, t, cost, p->op.prio);
	e->dirty |= (uint16_t)(1u << p->op.prio);
	if (rc == ROOM_REFUSED) {
		e->w[p->op.prio].evicted++; /* refused on arrival, counted as evicted */
		seq_done(t, p->op.seq);
		return 0;
	}
	if (rc)
		return rc;
	st_qkey(k, p->op.ep, p->op.prio, p->op.seq);
	if ((mrc = mdb_put(t->txn, s->q, &key, &val, 0)))
		return st_err(mrc);
	if (p->h.exp_ms != ST_NEVER) {
		st_xkey(xk, p->h.exp_ms, p->op.seq);
		st_be32(xv, p->op.ep);
		xv[4] = p->op.prio;
		if ((mrc = mdb_put(t->txn, s->x, &xkey, &xval, 0)))
			return st_err(mrc);
	}
	e->w[p->op.prio].msgs++;
	e->w[p->op.prio].bytes += p->len;
	t->budget -= (int64_t)cost;
	t->put_bytes += p->len;
	seq_done(t, p->op.seq);
	return 0;
}

static int wtx_ack(struct te_store *s, struct wtx *t, const struct st_op *op)
{
	int rc = q_delete(s, t, op->ep, op->prio, op->seq, WHY_DELIVERED, true);

	return rc == -ENOENT ? 0 : rc;
}

/* A key-value put or delete. KV entries are never evicted; a put above
 * the high-water mark first evicts messages like any put (of any priority:
 * state outranks a queue), and when none are left it is written anyway —
 * the margin between the high-water mark and the map absorbs it. */
static int wtx_kv(struct te_store *s, struct wtx *t, const struct st_kv *kv)
{
	const uint8_t *kp = (const uint8_t *)(kv + 1);
	MDB_val key = { kv->klen, (void *)kp }, val = { kv->vlen, (void *)(kp + kv->klen) };
	uint64_t cost;
	int rc, mrc;

	if (kv->op.type == OP_KV_DEL) {
		mrc = mdb_del(t->txn, s->k, &key, NULL);
		if (mrc && mrc != MDB_NOTFOUND)
			return st_err(mrc);
		t->budget -= (int64_t)del_cost(s, 64);
		return 0;
	}
	cost = put_cost(s, (uint64_t)kv->klen + kv->vlen);
	if (t->nops && (int64_t)cost > t->budget)
		return -EAGAIN;
	rc = make_room(s, t, cost, 0);
	if (rc && rc != ROOM_REFUSED)
		return rc;
	if ((mrc = mdb_put(t->txn, s->k, &key, &val, 0)))
		return st_err(mrc);
	t->budget -= (int64_t)cost;
	t->put_bytes += kv->vlen;
	return 0;
}

/* A purge deletes while the budget lasts; -EAGAIN: more to do in the next
 * transaction (the op stays). */
static int wtx_purge(struct te_store *s, struct wtx *t, const struct st_op *op)
{
	unsigned max = t->budget > 0 ? (unsigned)(t->budget / (int64_t)del_cost(s, 64)) + 1 : 1;
	int n = del_head(s, t, op->ep, -1, max, WHY_PURGED);

	if (n < 0)
		return n;
	return (unsigned)n == max ? -EAGAIN : 0;
}

/* Apply ops from *pos while the budget lasts. *pos ends at the first op
 * not applied: on error, the failing one. */
static int wtx_apply(struct te_store *s, struct wtx *t, struct st_buf *b, uint32_t *pos)
{
	struct st_op *op;
	int rc = 0;

	for (; *pos < b->used; *pos += st_op_size(op)) {
		op = (struct st_op *)(b->p + *pos);
		if (op->pad & OPF_DONE)
			continue;
		if (t->nops && t->budget <= 0)
			return 0;
		if (op->type == OP_PUT)
			rc = wtx_put(s, t, (struct st_put *)op);
		else if (op->type == OP_ACK)
			rc = wtx_ack(s, t, op);
		else if (op->type == OP_PURGE)
			rc = wtx_purge(s, t, op);
		else
			rc = wtx_kv(s, t, (const struct st_kv *)op);
		if (rc == -EAGAIN)
			return 0;
		if (rc)
			return rc;
		t->nops++;
	}
	return 0;
}

/* --- one transaction --- */

static int mput(struct te_store *s, struct wtx *t, const void *k, size_t klen,
		const void *v, size_t vlen)
{
	MDB_val key = { klen, (void *)k }, val = { vlen, (void *)v };

	return st_err(mdb_put(t->txn, s->m, &key, &val, 0));
}

static int wtx_begin(struct te_store *s, struct wtx *t)
{
	int mrc;

	memset(t, 0, sizeof(*t));
	if ((mrc = mdb_txn_begin(s->env, NULL, 0, &t->txn)))
		return st_err(mrc);
	if ((mrc = mdb_cursor_open(t->txn, s->q, &t->qc)) ||
	    (mrc = mdb_cursor_open(t->txn, s->x, &t->xc)))
		return st_err(mrc);
	t->now = st_now(s, &t->wall);
	t->budget = (int64_t)s->budget;
	pthread_mutex_lock(&s->mu);
	t->nep = s->nep;
	t->next_seq = s->next_seq;
	t->cap = s->cap_pages;
	pthread_mutex_unlock(&s->mu);
	water_marks(s, t->cap, t);
	return 0;
}

/* New endpoints get their 'E' record in the first transaction after them. */
static int wtx_endpoints(struct te_store *s, struct wtx *t)
{
	char k[TE_STORE_NAME_MAX + 2];
	size_t n;
	int rc;

	for (uint32_t id = 1; id <= t->nep; id++) {
		if (s->eps[id - 1].stored)
			continue;
		n = strlen(s->eps[id - 1].name);
		k[0] = 'E';
		memcpy(k + 1, s->eps[id - 1].name, n);
		if ((rc = mput(s, t, k, n + 1, &id, sizeof(id))))
			return rc;
	}
	return 0;
}

static int wtx_meta(struct te_store *s, struct wtx *t)
{
	uint8_t k[CKEY_LEN];
	int rc;

	st_clock_alive(s, t->now, t->wall);
	if ((rc = mput(s, t, "#seq", 4, &t->next_seq, sizeof(t->next_seq))) ||
	    (rc = mput(s, t, "#clock", 6, &s->clock, sizeof(s->clock))))
		return rc;
	for (uint32_t i = 0; i < t->nep; i++) {
		for (unsigned p = 0; p < TE_STORE_PRIOS; p++) {
			if (!(s->eps[i].dirty & (1u << p)))
				continue;
			st_ckey(k, i + 1, p);
			if ((rc = mput(s, t, k, CKEY_LEN, &s->eps[i].w[p], sizeof(struct st_qc))))
				return rc;
		}
	}
	return 0;
}

/* Persist the meta records, note the expiry head, commit. */
static int wtx_commit(struct te_store *s, struct wtx *t)
{
	MDB_val key, val;
	int rc = wtx_meta(s, t), mrc;

	if (rc)
		return rc;
	mrc = mdb_cursor_get(t->xc, &key, &val, MDB_FIRST);
	s->next_exp = mrc == 0 && key.mv_size == XKEY_LEN ? st_get_be64(key.mv_data) : ST_NEVER;
	t->live = live_pages(s, t->txn);
	mdb_cursor_close(t->qc);
	mdb_cursor_close(t->xc);
	t->qc = t->xc = NULL;
	mrc = mdb_txn_commit(t->txn);
	t->txn = NULL;
	return mrc ? st_err(mrc) : 0;
}

static void wtx_abort(struct wtx *t)
{
	if (t->qc)
		mdb_cursor_close(t->qc);
	if (t->xc)
		mdb_cursor_close(t->xc);
	if (t->txn)
		mdb_txn_abort(t->txn);
	t->txn = NULL;
	t->qc = t->xc = NULL;
}

/* --- results --- */

/* Runs for te_store_process, merged while contiguous with the same error.
 * A caller more than ST_RUNS runs behind gets the newest merged into the
 * last (the error wins): the writer never waits for the loop. */
static void run_add(struct te_store *s, uint64_t first, uint64_t last, int err)
{
	struct te_store_done *r = s->nruns ? &s->runs[s->nruns - 1] : NULL;

	if (r && (r->err == err || s->nruns == ST_RUNS) && r->last_seq + 1 == first) {
		r->last_seq = last;
		if (err)
			r->err = err;
		return;
	}
	if (s->nruns == ST_RUNS) {
		r->last_seq = last;
		r->err = r->err ? r->err : err;
		return;
	}
	s->runs[s->nruns++] = (struct te_store_done){ first, last, err };
}

static void published_ok(struct te_store *s, struct wtx *t)
{
	for (uint32_t i = 0; i < t->nep; i++) {
		struct st_ep *e = &s->eps[i];

		e->stored = true;
		for (unsigned p = 0; e->dirty && p < TE_STORE_PRIOS; p++)
			if (e->dirty & (1u << p))
				e->c[p] = e->w[p];
		e->dirty = 0;
	}
	s->commits++;
	s->bytes_written += t->put_bytes;
	s->used_pages = t->live;
	if (t->last_seq)
		s->committed_seq = t->last_seq;
}

/* A failed commit: LMDB's data is as before the transaction, so the
 * working counters go back to the committed ones. */
static void rollback_counters(struct te_store *s, struct wtx *t)
{
	for (uint32_t i = 0; i < t->nep; i++) {
		struct st_ep *e = &s->eps[i];

		for (unsigned p = 0; e->dirty && p < TE_STORE_PRIOS; p++)
			if (e->dirty & (1u << p))
				e->w[p] = e->c[p];
		e->dirty = 0;
	}
}

/* The failed transaction's puts are reported and counted; its acks,
 * purges and key-value ops get one more try in the next transaction. Ops are marked in
 * place (the buffer is the writer's until published). */
static void fail_ops(struct te_store *s, struct wtx *t, struct st_buf *b, uint32_t from,
		     uint32_t to, int err)
{
	struct st_op *op;

	t->first_seq = t->last_seq = 0;
	for (uint32_t pos = from; pos < to; pos += st_op_size(op)) {
		op = (struct st_op *)(b->p + pos);
		if (op->pad & OPF_DONE)
			continue;
		if (op->type == OP_PUT) {
			struct st_ep *e = &s->eps[op->ep - 1];

			e->c[op->prio].failed++;
			e->w[op->prio].failed++;
			e->dirty |= (uint16_t)(1u << op->prio); /* persisted next time */
			seq_done(t, op->seq);
			op->pad |= OPF_DONE;
		} else if (op->pad & OPF_RETRY) {
			if (op->type == OP_KV_PUT || op->type == OP_KV_DEL)
				s->kv_failed++;
			else
				s->ack_failed++;
			op->pad |= OPF_DONE;
		} else {
			op->pad |= OPF_RETRY;
		}
	}
}

/* A full filesystem shows as ENOSPC, or as EIO when LMDB's write came up
 * short. Either way the file cannot grow now: the capacity becomes the
 * file's size, and eviction keeps the data inside it. MDB_MAP_FULL
 * (-TE_ELIMIT; the marks are there to prevent it) shrinks the capacity by
 * an eighth. Runs without s->mu (syscalls); *cap is the new capacity, or 0
 * to keep it. */
static int classify(struct te_store *s, int rc, uint64_t cap, uint64_t *newcap)
{
	struct statvfs v;
	struct stat st;

	*newcap = 0;
	if (rc == -EIO && statvfs(s->dir, &v) == 0 && (uint64_t)v.f_bavail * v.f_frsize < 16ull * s->psize)
		rc = -ENOSPC;
	if (rc == -TE_ELIMIT)
		*newcap = cap - cap / 8;
	else if (rc == -ENOSPC && stat(s->file, &st) == 0 && (uint64_t)st.st_size / s->psize < cap)
		*newcap = (uint64_t)st.st_size / s->psize;
	if (*newcap && *newcap < 16)
		*newcap = 16;
	return rc;
}

/* The last op that a failed transaction takes down with it: everything it
 * applied, the op that failed, and at least one op, so that a store that
 * keeps failing still works through its buffer. */
static uint32_t fail_end(const struct st_buf *b, uint32_t start, uint32_t pos, bool at_op)
{
	const struct st_op *op;

	if (!b)
		return 0;
	if (pos < b->used && (at_op || pos == start)) {
		while (pos < b->used && (((const struct st_op *)(b->p + pos))->pad & OPF_DONE))
			pos += st_op_size((const struct st_op *)(b->p + pos));
		if (pos < b->used) {
			op = (const struct st_op *)(b->p + pos);
			pos += st_op_size(op);
		}
	}
	return pos;
}

static void note_error(struct te_store *s, int rc)
{
	s->commit_errors++;
	s->map_full += rc == -TE_ELIMIT;
	s->last_err = rc;
	snprintf(s->last_error, sizeof(s->last_error), "store %s: commit failed: %s", s->file,
		 rc == -TE_ELIMIT ? "LMDB map full" : te_strerror(rc));
	if (!s->failing)
		te_warn("store", "%s", s->last_error);
	s->failing = true;
}

/* MDB_PANIC: LMDB could not write its meta page and refuses every
 * transaction from now on; only a reopen helps. */
static bool env_panicked(struct te_store *s)
{
	MDB_txn *txn;
	int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);

	if (mrc == 0)
		mdb_txn_abort(txn);
	return mrc == MDB_PANIC;
}

/* Under s->mu: make the transaction's outcome visible. */
static void txn_published(struct te_store *s, struct wtx *t, int rc, struct st_buf *b,
			  uint32_t start, uint32_t end, uint64_t newcap, bool panicked)
{
	/* Retries of housekeeping wait for their intervals, also on failure. */
	s->last_commit_mono = s->last_expire_mono = st_mono_ms();
	if (!rc) {
		published_ok(s, t);
		if (s->failing)
			te_info("store", "%s: commits work again", s->file);
		s->failing = false;
		s->expire_more = t->expire_more;
	} else {
		rollback_counters(s, t);
		if (b)
			fail_ops(s, t, b, start, end, rc);
		if (newcap)
			s->cap_pages = newcap;
		note_error(s, rc);
		s->expire_more = false;
		s->broken = panicked;
	}
	if (t->last_seq)
		run_add(s, t->first_seq, t->last_seq, rc);
}

/* One transaction over the ops of b from *pos (b may be NULL: housekeeping
 * only). On failure *pos goes back to start: the failed range's puts are
 * skipped from then on and its acks retried once. */
static void txn_run(struct te_store *s, struct st_buf *b, uint32_t *pos)
{
	struct wtx t;
	uint32_t start = *pos, end = *pos;
	uint64_t newcap = 0;
	bool at_op = false, panicked = false;
	int rc = wtx_begin(s, &t), n;

	if (!rc && (n = expire_some(s, &t, 0)) < 0)
		rc = n;
	if (!rc)
		rc = wtx_endpoints(s, &t);
	if (!rc && b)
		at_op = (rc = wtx_apply(s, &t, b, pos)) != 0;
	if (!rc)
		rc = wtx_commit(s, &t);
	else
		wtx_abort(&t);
	if (rc) {
		end = fail_end(b, start, *pos, at_op);
		rc = classify(s, rc, t.cap ? t.cap : s->max_bytes / s->psize, &newcap);
		panicked = rc == -EIO && env_panicked(s);
	}
	pthread_mutex_lock(&s->mu);
	txn_published(s, &t, rc, b, start, end, newcap, panicked);
	pthread_mutex_unlock(&s->mu);
	if (t.last_seq)
		st_wake_loop(s);
	if (rc)
		*pos = start;
}

/* --- the thread --- */

static bool housekeeping_due(struct te_store *s, uint64_t mono)
{
	if (s->expire_more)
		return true;
	if (mono - s->last_commit_mono >= s->o.alive_interval_s * 1000ull)
		return true;
	return s->next_exp != ST_NEVER && mono - s->last_expire_mono >= s->o.expire_interval_s * 1000ull &&
	       s->next_exp <= st_now(s, NULL);
}

/* When to look again without being woken: the alive tick, or the next
 * expiry but not before the expiry interval has passed since the last. */
static struct timespec wake_at(struct te_store *s, uint64_t mono)
{
	uint64_t at = s->last_commit_mono + s->o.alive_interval_s * 1000ull, now, e;
	struct timespec ts;

	if (s->next_exp != ST_NEVER) {
		now = st_now(s, NULL);
		e = mono + (s->next_exp > now ? s->next_exp - now : 0);
		if (e < s->last_expire_mono + s->o.expire_interval_s * 1000ull)
			e = s->last_expire_mono + s->o.expire_interval_s * 1000ull;
		if (e < at)
			at = e;
	}
	if (at < mono + 1)
		at = mono + 1;
	ts.tv_sec = (time_t)(at / 1000);
	ts.tv_nsec = (long)(at % 1000) * 1000000;
	return ts;
}

/* Wait for work; swap buffers. NULL: stop (nothing left). */
static struct st_buf *writer_take(struct te_store *s, unsigned *nmaint)
{
	struct st_buf *b;
	struct timespec ts;
	uint64_t mono;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		mono = st_mono_ms();
		if (s->fill->used || s->maint || s->stopping || housekeeping_due(s, mono))
			break;
		ts = wake_at(s, mono);
		s->idle = true;
		pthread_cond_timedwait(&s->work, &s->mu, &ts);
		s->idle = false;
	}
	if (s->stopping && !s->fill->used && !s->maint) {
		pthread_mutex_unlock(&s->mu);
		return NULL;
	}
	b = s->fill;
	s->fill = b == &s->buf[0] ? &s->buf[1] : &s->buf[0];
	*nmaint = s->maint;
	s->maint = 0;
	pthread_mutex_unlock(&s->mu);
	return b;
}

static void writer_batch(struct te_store *s, struct st_buf *b, unsigned nmaint)
{
	struct wtx t = { 0 };
	uint32_t pos = 0;

	do
		txn_run(s, b, &pos);
	while (!s->broken && pos < b->used);
	pthread_mutex_lock(&s->mu);
	if (s->broken) {
		fail_ops(s, &t, b, pos, b->used, -EIO);
		if (t.last_seq)
			run_add(s, t.first_seq, t.last_seq, -EIO);
	}
	s->done += b->nops + nmaint;
	b->used = b->nops = 0;
	pthread_cond_broadcast(&s->done_cv);
	pthread_mutex_unlock(&s->mu);
	if (t.last_seq)
		st_wake_loop(s);
}

void *st_writer_main(void *arg)
{
	struct te_store *s = arg;
	struct st_buf *b;
	unsigned nmaint = 0;

	/* Background work: when the CPU is short, the daemon's loop (message
	 * routing) goes first. Linux nice values are per thread. Group commit
	 * makes a late writer cheaper, not lossy: puts wait in the pending
	 * buffers and backpressure holds the producers. */
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
	while ((b = writer_take(s, &nmaint)))
		writer_batch(s, b, nmaint);
	if (!s->broken) {
		uint32_t pos = 0;

		txn_run(s, NULL, &pos); /* the last alive record: how long this run lasted */
	}
	return NULL;
}
