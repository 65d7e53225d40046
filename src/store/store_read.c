/* Reading: delivery in order (te_store_next) and statistics. Both use the
 * store's one read transaction, renewed per call and reset before return,
 * so a read never pins old pages past the call (docs/store.md). */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "store_int.h"

int st_rd_begin(struct te_store *s)
{
	int mrc = mdb_txn_renew(s->rtxn);

	if (mrc)
		return st_err(mrc);
	if ((mrc = mdb_cursor_renew(s->rtxn, s->rcur))) {
		mdb_txn_reset(s->rtxn);
		return st_err(mrc);
	}
	return 0;
}

void te_store_cursor_init(struct te_store_cursor *c, uint32_t ep)
{
	memset(c, 0, sizeof(*c));
	c->ep = ep;
}

/* The first record of queue (c->ep, p) after c->after[p] that has not
 * expired. Expired ones are stepped over for good. */
static int next_in(struct te_store *s, struct te_store_cursor *c, unsigned p, uint64_t now,
		   struct te_store_item *it, void *buf, size_t cap)
{
	uint8_t k[QKEY_LEN];
	MDB_val key = { QKEY_LEN, k }, val;
	struct st_rec h;
	uint64_t seq;
	int mrc;

	if (c->after[p] == UINT64_MAX)
		return -ENOENT;
	st_qkey(k, c->ep, p, c->after[p] + 1);
	for (mrc = mdb_cursor_get(s->rcur, &key, &val, MDB_SET_RANGE); !mrc;
	     mrc = mdb_cursor_get(s->rcur, &key, &val, MDB_NEXT)) {
		if (key.mv_size != QKEY_LEN || memcmp(key.mv_data, k, 5) != 0)
			return -ENOENT;
		seq = st_get_be64((const uint8_t *)key.mv_data + 5);
		if (val.mv_size < sizeof(h)) {
			c->after[p] = seq;
			return -TE_EMALFORMED;
		}
		memcpy(&h, val.mv_data, sizeof(h));
		if (h.exp_ms <= now) {
			c->after[p] = seq;
			continue;
		}
		it->prio = p;
		it->seq = seq;
		it->len = (uint32_t)(val.mv_size - sizeof(h));
		it->age_ms = now > h.enq_ms ? now - h.enq_ms : 0;
		it->wall_ms = h.wall_ms;
		if (it->len > cap)
			return -TE_ENOSPACE;
		memcpy(buf, (const uint8_t *)val.mv_data + sizeof(h), it->len);
		c->after[p] = seq;
		return 0;
	}
	return mrc == MDB_NOTFOUND ? -ENOENT : st_err(mrc);
}

int te_store_next(struct te_store *s, struct te_store_cursor *c, struct te_store_item *it,
		  void *buf, size_t cap)
{
	uint64_t now = st_now(s, NULL);
	int rc;

	if (!buf && cap)
		return -EINVAL;
	if ((rc = st_rd_begin(s)))
		return rc;
	rc = -ENOENT;
	for (unsigned p = 0; p < TE_STORE_PRIOS && rc == -ENOENT; p++)
		rc = next_in(s, c, p, now, it, buf, cap);
	mdb_txn_reset(s->rtxn);
	return rc;
}

int te_store_stats(struct te_store *s, struct te_store_stats *st)
{
	struct stat fst;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&s->mu);
	for (unsigned i = 0; i < s->nep; i++) {
		for (unsigned p = 0; p < TE_STORE_PRIOS; p++) {
			const struct st_qc *c = &s->eps[i].c[p];

			st->msgs += c->msgs;
			st->bytes += c->bytes;
			st->delivered += c->delivered;
			st->expired += c->expired;
			st->evicted += c->evicted;
			st->purged += c->purged;
			st->failed += c->failed;
		}
	}
	st->cap_bytes = s->cap_pages * s->psize;
	st->used_bytes = s->used_pages * s->psize;
	st->pending_bytes = s->buf[0].used + s->buf[1].used;
	st->commits = s->commits;
	st->commit_errors = s->commit_errors;
	st->map_full = s->map_full;
	st->bytes_written = s->bytes_written;
	st->stale_readers = s->stale_readers;
	st->kv_failed = s->kv_failed;
	st->last_err = s->last_err;
	memcpy(st->last_error, s->last_error, sizeof(st->last_error));
	pthread_mutex_unlock(&s->mu);
	if (stat(s->file, &fst) == 0)
		st->file_bytes = (uint64_t)fst.st_size;
	st->map_bytes = s->map_pages * s->psize;
	st->max_bytes = s->max_bytes;
	st->rec_max = s->rec_max;
	return 0;
}

/* Age of the oldest record of (ep, p), by the store clock. */
static uint64_t oldest_age(struct te_store *s, uint32_t ep, unsigned p, uint64_t now)
{
	uint8_t k[QKEY_LEN];
	MDB_val key = { QKEY_LEN, k }, val;
	struct st_rec h;
	uint64_t age = 0;

	if (st_rd_begin(s))
		return 0;
	st_qkey(k, ep, p, 0);
	if (mdb_cursor_get(s->rcur, &key, &val, MDB_SET_RANGE) == 0 && key.mv_size == QKEY_LEN &&
	    memcmp(key.mv_data, k, 5) == 0 && val.mv_size >= sizeof(h)) {
		memcpy(&h, val.mv_data, sizeof(h));
		age = now > h.enq_ms ? now - h.enq_ms : 0;
	}
	mdb_txn_reset(s->rtxn);
	return age;
}

int te_store_foreach_queue(struct te_store *s,
			   int (*cb)(void *ctx, const struct te_store_qstat *q), void *ctx)
{
	static const struct st_qc zero;
	struct st_qc c[TE_STORE_PRIOS];
	struct te_store_qstat q;
	uint64_t now = st_now(s, NULL);
	int rc;

	for (uint32_t i = 0;; i++) {
		pthread_mutex_lock(&s->mu);
		if (i >= s->nep) {
			pthread_mutex_unlock(&s->mu);
			return 0;
		}
		memcpy(c, s->eps[i].c, sizeof(c));
		pthread_mutex_unlock(&s->mu);
		for (unsigned p = 0; p < TE_STORE_PRIOS; p++) {
			if (!memcmp(&c[p], &zero, sizeof(zero)))
				continue;
			q = (struct te_store_qstat){
				.endpoint = s->eps[i].name, .ep = i + 1, .prio = p,
				.msgs = c[p].msgs, .bytes = c[p].bytes,
				.delivered = c[p].delivered, .expired = c[p].expired,
				.evicted = c[p].evicted, .purged = c[p].purged, .failed = c[p].failed,
			};
			if (q.msgs)
				q.oldest_age_ms = oldest_age(s, i + 1, p, now);
			if ((rc = cb(ctx, &q)))
				return rc;
		}
	}
}
