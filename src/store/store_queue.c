/* The caller's side of the queue: endpoints, put, ack, purge, completions,
 * housekeeping. Nothing here touches the disk: operations are appended to
 * the fill buffer under s->mu and the writer takes them (store_write.c). */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/statvfs.h>

#include "core/err.h"
#include "store_int.h"

int te_store_endpoint(struct te_store *s, const char *name, uint32_t *id)
{
	size_t n = name ? strlen(name) : 0;
	int rc = 0;

	if (!n || n > TE_STORE_NAME_MAX)
		return -EINVAL;
	pthread_mutex_lock(&s->mu);
	for (unsigned i = 0; i < s->nep; i++) {
		if (strcmp(s->eps[i].name, name) == 0) {
			*id = i + 1;
			goto out;
		}
	}
	if (s->nep == s->epcap) {
		rc = -TE_ELIMIT;
		goto out;
	}
	/* The name is complete before nep counts it: the writer reads names
	 * below the nep it saw under the lock. */
	memcpy(s->eps[s->nep].name, name, n + 1);
	*id = ++s->nep;
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

struct st_op *st_reserve(struct te_store *s, uint32_t need, int *rc)
{
	struct st_buf *b = s->fill;
	struct st_op *op;

	if (s->broken)
		*rc = -EIO;
	else if (s->bufcap - b->used < need)
		*rc = -EAGAIN;
	else
		*rc = 0;
	if (*rc)
		return NULL;
	op = (struct st_op *)(b->p + b->used);
	b->used += need;
	b->nops++;
	s->queued++;
	return op;
}

/* st_reserve for an op on endpoint ep (which must exist). */
static struct st_op *reserve(struct te_store *s, uint32_t ep, uint32_t need, int *rc)
{
	if (!s->broken && (ep < 1 || ep > s->nep)) {
		*rc = -EINVAL;
		return NULL;
	}
	return st_reserve(s, need, rc);
}

bool st_wants_wake(struct te_store *s)
{
	bool idle = s->idle;

	s->idle = false;
	return idle;
}

int te_store_put(struct te_store *s, uint32_t ep, unsigned prio, int64_t ttl_s,
		 const void *rec, size_t len, uint64_t *seq)
{
	uint32_t need = (uint32_t)((sizeof(struct st_put) + len + 7) & ~(size_t)7);
	uint64_t wall, now, exp = ST_NEVER;
	struct st_put *p;
	bool wake = false;
	int rc;

	if (prio >= TE_STORE_PRIOS || (!rec && len))
		return -EINVAL;
	if (len > s->rec_max)
		return -TE_ELIMIT;
	if (ttl_s == TE_STORE_TTL_DEFAULT)
		ttl_s = s->o.default_ttl_s;
	now = st_now(s, &wall);
	if (ttl_s > 0)
		exp = (uint64_t)ttl_s < (ST_NEVER - 1 - now) / 1000 ? now + (uint64_t)ttl_s * 1000 : ST_NEVER - 1;
	pthread_mutex_lock(&s->mu);
	p = (struct st_put *)reserve(s, ep, need, &rc);
	if (p) {
		p->op = (struct st_op){ .type = OP_PUT, .prio = (uint8_t)prio, .ep = ep, .seq = s->next_seq++ };
		p->len = (uint32_t)len;
		p->pad = 0;
		p->h = (struct st_rec){ .enq_ms = now, .exp_ms = exp, .wall_ms = wall };
		memcpy(p + 1, rec, len);
		if (seq)
			*seq = p->op.seq;
		wake = st_wants_wake(s);
	}
	pthread_mutex_unlock(&s->mu);
	if (wake)
		pthread_cond_signal(&s->work);
	return rc;
}

static int append_op(struct te_store *s, uint8_t type, uint32_t ep, unsigned prio, uint64_t seq)
{
	struct st_op *op;
	bool wake = false;
	int rc;

	if (prio >= TE_STORE_PRIOS)
		return -EINVAL;
	pthread_mutex_lock(&s->mu);
	op = reserve(s, ep, sizeof(*op), &rc);
	if (op) {
		*op = (struct st_op){ .type = type, .prio = (uint8_t)prio, .ep = ep, .seq = seq };
		wake = st_wants_wake(s);
	}
	pthread_mutex_unlock(&s->mu);
	if (wake)
		pthread_cond_signal(&s->work);
	return rc;
}

int te_store_ack(struct te_store *s, uint32_t ep, unsigned prio, uint64_t seq)
{
	return append_op(s, OP_ACK, ep, prio, seq);
}

int te_store_purge(struct te_store *s, uint32_t ep)
{
	return append_op(s, OP_PURGE, ep, 0, 0);
}

int te_store_fd(const struct te_store *s)
{
	return s->efd;
}

int te_store_process(struct te_store *s)
{
	struct te_store_done runs[ST_RUNS];
	unsigned n;
	uint64_t v;

	if (read(s->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	pthread_mutex_lock(&s->mu);
	n = s->nruns;
	memcpy(runs, s->runs, n * sizeof(runs[0]));
	s->nruns = 0;
	pthread_mutex_unlock(&s->mu);
	for (unsigned i = 0; i < n && s->o.on_commit; i++)
		s->o.on_commit(s->o.ctx, &runs[i]);
	return (int)n;
}

/* Under mu rather than a 64-bit atomic: MIPS32 has none lock-free (they
 * would need libatomic, which a musl toolchain may lack). */
uint64_t te_store_committed(struct te_store *s)
{
	uint64_t seq;

	pthread_mutex_lock(&s->mu);
	seq = s->committed_seq;
	pthread_mutex_unlock(&s->mu);
	return seq;
}

int te_store_sync(struct te_store *s)
{
	uint64_t target;
	int rc;

	pthread_mutex_lock(&s->mu);
	target = s->queued;
	while (s->done < target) {
		pthread_cond_signal(&s->work);
		pthread_cond_wait(&s->done_cv, &s->mu);
	}
	rc = s->last_err;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* After ENOSPC the capacity shrank to the file; give it back once the
 * filesystem has room for the difference again (and a margin). */
static void restore_cap(struct te_store *s, uint64_t avail)
{
	uint64_t full = s->max_bytes / s->psize;

	if (s->cap_pages < full && avail >= (full - s->cap_pages) * s->psize + (1u << 20))
		s->cap_pages = full;
}

int te_store_maintain(struct te_store *s, int *stale)
{
	int dead = 0, mrc = mdb_reader_check(s->env, &dead);
	struct statvfs v;
	uint64_t avail = 0;

	if (stale)
		*stale = dead;
	if (statvfs(s->dir, &v) == 0)
		avail = (uint64_t)v.f_bavail * v.f_frsize;
	pthread_mutex_lock(&s->mu);
	s->stale_readers += (uint64_t)dead;
	restore_cap(s, avail);
	s->maint++;
	s->queued++;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->mu);
	return st_err(mrc);
}
