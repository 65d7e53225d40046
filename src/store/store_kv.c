/* The key-value space (store.h, "Key-value entries"): the caller's side.
 *
 * Puts and deletes are ops in the pending buffers, applied by the writer
 * with the next group commit like message puts. A get looks at the
 * pending ops first, newest last: the buffer the writer is applying (the
 * one that is not s->fill, while its used is non-zero) holds older ops
 * than the fill buffer. Both are read under s->mu, which is also what the
 * writer holds whenever it changes a buffer (the OPF_* flags, used = 0
 * once applied): an op found there is either not committed yet or
 * committed with the same value, so the answer is the newest write either
 * way. Only when no op for the key is pending is the committed value read,
 * and then nothing can change it meanwhile: only this thread adds ops. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "store_int.h"

static int kv_key(const char *key, size_t *klen)
{
	*klen = key ? strlen(key) : 0;
	return *klen && *klen <= TE_STORE_KEY_MAX ? 0 : -EINVAL;
}

static int kv_append(struct te_store *s, uint8_t type, const char *key, const void *val,
		     size_t n)
{
	size_t klen, need;
	struct st_kv *kv;
	bool wake = false;
	int rc = kv_key(key, &klen);

	if (rc)
		return rc;
	if ((!val && n) || n > TE_STORE_VAL_MAX)
		return !val && n ? -EINVAL : -TE_ELIMIT;
	need = (sizeof(*kv) + klen + n + 7) & ~(size_t)7;
	if (need > s->bufcap)
		return -TE_ELIMIT;
	pthread_mutex_lock(&s->mu);
	kv = (struct st_kv *)st_reserve(s, (uint32_t)need, &rc);
	if (kv) {
		kv->op = (struct st_op){ .type = type };
		kv->klen = (uint32_t)klen;
		kv->vlen = (uint32_t)n;
		memcpy(kv + 1, key, klen);
		if (n)
			memcpy((uint8_t *)(kv + 1) + klen, val, n);
		wake = st_wants_wake(s);
	}
	pthread_mutex_unlock(&s->mu);
	if (wake)
		pthread_cond_signal(&s->work);
	return rc;
}

int te_store_kv_put(struct te_store *s, const char *key, const void *val, size_t n)
{
	return kv_append(s, OP_KV_PUT, key, val, n);
}

int te_store_kv_del(struct te_store *s, const char *key)
{
	return kv_append(s, OP_KV_DEL, key, NULL, 0);
}

/* The newest op for key in b at or after the one found so far. */
static const struct st_kv *kv_newest(const struct st_buf *b, const char *key, size_t klen,
				     const struct st_kv *found)
{
	const struct st_op *op;

	for (uint32_t pos = 0; pos < b->used; pos += st_op_size(op)) {
		const struct st_kv *kv = (const struct st_kv *)(b->p + pos);

		op = &kv->op;
		if ((op->type != OP_KV_PUT && op->type != OP_KV_DEL) || (op->pad & OPF_DONE))
			continue;  /* not a kv op, or one that failed for good */
		if (kv->klen == klen && !memcmp(kv + 1, key, klen))
			found = kv;
	}
	return found;
}

static int copy_out(const void *src, size_t n, void **val, size_t *len)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		return -ENOMEM;
	memcpy(p, src, n);
	*val = p;
	*len = n;
	return 0;
}

/* 1 = answered from the pending ops (rc in *rc), 0 = none pending. */
static int kv_pending(struct te_store *s, const char *key, size_t klen, void **val,
		      size_t *n, int *rc)
{
	const struct st_buf *other;
	const struct st_kv *kv;

	pthread_mutex_lock(&s->mu);
	other = s->fill == &s->buf[0] ? &s->buf[1] : &s->buf[0];
	kv = kv_newest(other, key, klen, NULL);
	kv = kv_newest(s->fill, key, klen, kv);
	if (kv)
		*rc = kv->op.type == OP_KV_DEL ? -ENOENT :
		      copy_out((const uint8_t *)(kv + 1) + klen, kv->vlen, val, n);
	pthread_mutex_unlock(&s->mu);
	return kv != NULL;
}

int te_store_kv_get(struct te_store *s, const char *key, void **val, size_t *n)
{
	size_t klen;
	MDB_val k, v;
	int rc = kv_key(key, &klen), mrc;

	*val = NULL;
	*n = 0;
	if (rc)
		return rc;
	if (kv_pending(s, key, klen, val, n, &rc))
		return rc;
	if ((rc = st_rd_begin(s)))
		return rc;
	k = (MDB_val){ klen, (void *)key };
	mrc = mdb_get(s->rtxn, s->k, &k, &v);
	rc = mrc ? st_err(mrc) : copy_out(v.mv_data, v.mv_size, val, n);
	mdb_txn_reset(s->rtxn);
	return rc;
}
