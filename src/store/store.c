/* The store: open, close, the environment and its meta records (store.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "core/err.h"
#include "core/fs.h"
#include "store_int.h"

#define WALL_FLOOR_DEFAULT 1735689600000ull /* 2025-01-01T00:00:00Z */

void te_store_opts_init(struct te_store_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->default_ttl_s = 7200;
	o->pending_bytes = 1u << 20;
	o->max_endpoints = 64;
	o->evict_batch = 64;
	o->alive_interval_s = 300;
	o->expire_interval_s = 60;
}

/* LMDB's codes into ours: -errno, or -TE_EMALFORMED for a damaged file. */
int st_err(int rc)
{
	if (rc >= 0)
		return -rc;
	switch (rc) {
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
		return -TE_ELIMIT;
	case MDB_INVALID:
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_VERSION_MISMATCH:
	case MDB_INCOMPATIBLE:
		return -TE_EMALFORMED;
	case MDB_READERS_FULL:
		return -EBUSY;
	default:
		return -EIO; /* MDB_PANIC, MDB_BAD_TXN, ... */
	}
}

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* Why LMDB refused the file, in words a user can act on. */
static int env_fail(struct te_store *s, char *err, size_t errlen, const char *what, int mrc)
{
	int rc = st_err(mrc);

	if (rc == -TE_EMALFORMED)
		return fail(err, errlen, rc, "store %s: %s: not a valid store file (corrupt?): %s; "
			    "move it away to start an empty store", s->file, what, mdb_strerror(mrc));
	if (rc == -ENOSPC || rc == -TE_ELIMIT)
		return fail(err, errlen, rc, "store %s: %s: no space left (device or map)", s->file, what);
	/* LMDB maps its files shared from a writable fd: JFFS2 (and an
	 * overlay on it, OpenWrt's usual /overlay) refuses that. */
	if (mrc == EINVAL || mrc == ENODEV)
		return fail(err, errlen, rc, "store %s: %s: %s (a filesystem without shared "
			    "writable mmap, such as JFFS2, does this: put the state dir on tmpfs, "
			    "UBIFS, ext4 or f2fs)", s->file, what, mdb_strerror(mrc));
	return fail(err, errlen, rc, "store %s: %s: %s", s->file, what, mdb_strerror(mrc));
}

/* One process per store: the writer's in-memory counters and sequences
 * assume it. A killed holder releases the lock with its last fd. */
static int lock_dir(struct te_store *s, char *err, size_t errlen)
{
	int rc = te_mkdir_p(s->dir, 0700, 0700);

	if (rc < 0)
		return fail(err, errlen, rc, "store %s: cannot create directory: %s", s->dir,
			    te_strerror(rc));
	s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0)
		return fail(err, errlen, -errno, "store %s: %s", s->dir, strerror(errno));
	if (flock(s->dirfd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		return fail(err, errlen, rc, "store %s: in use by another process", s->dir);
	}
	return 0;
}

/* The quota, which is also the map size: the file cannot outgrow it. */
static int size_quota(struct te_store *s, char *err, size_t errlen)
{
	struct statvfs v;
	struct stat st;
	uint64_t q = s->o.max_bytes, have = 0;

	if (q && q < ST_MIN_BYTES)
		return fail(err, errlen, -EINVAL, "store %s: maxBytes %llu is below %u", s->dir,
			    (unsigned long long)q, ST_MIN_BYTES);
	if (!q) {
		if (statvfs(s->dir, &v) < 0)
			return fail(err, errlen, -errno, "store %s: %s", s->dir, strerror(errno));
		if (stat(s->file, &st) == 0)
			have = (uint64_t)st.st_size;
		q = ((uint64_t)v.f_bavail * v.f_frsize + have) / 2;
		if (q > ST_AUTO_MAX_BYTES)
			q = ST_AUTO_MAX_BYTES;
		if (q < ST_MIN_BYTES)
			q = ST_MIN_BYTES;
	}
	s->max_bytes = q / s->psize * s->psize;
	return 0;
}

static int env_open(struct te_store *s, char *err, size_t errlen)
{
	MDB_envinfo info;
	int mrc, dead = 0;

	if ((mrc = mdb_env_create(&s->env)))
		return env_fail(s, err, errlen, "create", mrc);
	mdb_env_set_maxdbs(s->env, 4);  /* q, x, m, k */
	mdb_env_set_mapsize(s->env, s->max_bytes);
	/* No MDB_WRITEMAP (a full disk would be SIGBUS, not an error), no
	 * NOSYNC: every commit is durable. NOTLS: reader slots belong to our
	 * one reusable read txn, not to a thread. */
	mrc = mdb_env_open(s->env, s->dir, MDB_NOTLS, 0600);
	if (mrc) {
		mdb_env_close(s->env);
		s->env = NULL;
		return env_fail(s, err, errlen, "open", mrc);
	}
	mdb_reader_check(s->env, &dead);
	s->stale_readers = (uint64_t)dead;
	mdb_env_info(s->env, &info);
	/* An existing file larger than the quota keeps its size (LMDB never
	 * shrinks a map below its data); the quota still applies to data. */
	s->map_pages = info.me_mapsize / s->psize;
	s->cap_pages = s->max_bytes / s->psize;
	return 0;
}

static int meta_get(struct te_store *s, MDB_txn *txn, const char *key, void *val, size_t len)
{
	MDB_val k = { strlen(key), (void *)key }, v;
	int mrc = mdb_get(txn, s->m, &k, &v);

	if (mrc)
		return st_err(mrc);
	if (v.mv_size != len)
		return -TE_EMALFORMED;
	memcpy(val, v.mv_data, len);
	return 0;
}

static int meta_put(struct te_store *s, MDB_txn *txn, const char *key, const void *val, size_t len)
{
	MDB_val k = { strlen(key), (void *)key }, v = { len, (void *)val };

	return st_err(mdb_put(txn, s->m, &k, &v, 0));
}

/* "#v": a store this code understands, or a fresh one. */
static int meta_version(struct te_store *s, MDB_txn *txn, char *err, size_t errlen)
{
	MDB_stat st;
	uint32_t v = ST_VERSION;
	int rc = meta_get(s, txn, "#v", &v, sizeof(v));

	if (rc == -ENOENT) {
		mdb_stat(txn, 1 /* main: q, x, m, k and nothing else */, &st);
		if (st.ms_entries != 4)
			return fail(err, errlen, -TE_EMALFORMED,
				    "store %s: an LMDB file, but not a tinyedge store", s->file);
		mdb_stat(txn, s->q, &st);
		if (st.ms_entries)
			return fail(err, errlen, -TE_EMALFORMED,
				    "store %s: queue records without a version record (corrupt?)", s->file);
		v = ST_VERSION;
		return meta_put(s, txn, "#v", &v, sizeof(v));
	}
	if (rc == 0 && v != ST_VERSION)
		return fail(err, errlen, -TE_EMALFORMED, "store %s: format version %u, this tinyedge reads %u",
			    s->file, v, ST_VERSION);
	return rc;
}

/* Resume the store clock (st_clock_resume) and persist this boot's base. */
static int meta_clock(struct te_store *s, MDB_txn *txn)
{
	struct st_clockrec prev;
	uint64_t wall, boot, now;
	int rc = meta_get(s, txn, "#clock", &prev, sizeof(prev));

	if (rc && rc != -ENOENT)
		return rc;
	prev.boot_id[sizeof(prev.boot_id) - 1] = '\0';
	s->clk.now(s->clk.ctx, &wall, &boot);
	now = st_clock_resume(rc ? NULL : &prev, s->boot_id, wall, boot, s->wall_floor_ms);
	s->base_ms = now - boot;
	if (!rc)
		s->clock = prev;
	st_clock_alive(s, now, wall);
	return meta_put(s, txn, "#clock", &s->clock, sizeof(s->clock));
}

static int meta_counter(struct te_store *s, const MDB_val *k, const MDB_val *v, bool count)
{
	const uint8_t *kp = k->mv_data;
	uint32_t id;

	if (k->mv_size != CKEY_LEN || v->mv_size != sizeof(struct st_qc) || kp[5] >= TE_STORE_PRIOS)
		return -TE_EMALFORMED;
	id = st_get_be32(kp + 1);
	if (count)
		return 0;
	if (id < 1 || id > s->nep)
		return -TE_EMALFORMED;
	memcpy(&s->eps[id - 1].c[kp[5]], v->mv_data, sizeof(struct st_qc));
	s->eps[id - 1].w[kp[5]] = s->eps[id - 1].c[kp[5]];
	return 0;
}

static int meta_endpoint(struct te_store *s, const MDB_val *k, const MDB_val *v, bool count,
			 unsigned *maxid)
{
	uint32_t id;

	if (k->mv_size < 2 || k->mv_size > TE_STORE_NAME_MAX + 1 || v->mv_size != sizeof(id))
		return -TE_EMALFORMED;
	memcpy(&id, v->mv_data, sizeof(id));
	if (id == 0 || id > 1u << 20)
		return -TE_EMALFORMED;
	if (count) {
		if (id > *maxid)
			*maxid = id;
		return 0;
	}
	memcpy(s->eps[id - 1].name, (const char *)k->mv_data + 1, k->mv_size - 1);
	s->eps[id - 1].stored = true;
	return 0;
}

/* Endpoint ('E') and counter ('C') records. Ids are dense from 1 (the
 * writer persists every new endpoint in the first commit after it). */
static int meta_endpoints(struct te_store *s, MDB_txn *txn, bool count, unsigned *maxid)
{
	MDB_cursor *c;
	MDB_val k = { 1, "C" }, v;
	int mrc = mdb_cursor_open(txn, s->m, &c), rc = 0;

	if (mrc)
		return st_err(mrc);
	for (mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); !mrc && !rc;
	     mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const uint8_t *kp = k.mv_data;

		if (kp[0] == 'C')
			rc = meta_counter(s, &k, &v, count);
		else if (kp[0] == 'E')
			rc = meta_endpoint(s, &k, &v, count, maxid);
		else
			break;
	}
	mdb_cursor_close(c);
	if (rc)
		return rc;
	return mrc && mrc != MDB_NOTFOUND ? st_err(mrc) : 0;
}

static int meta_load_eps(struct te_store *s, MDB_txn *txn)
{
	unsigned maxid = 0;
	int rc = meta_endpoints(s, txn, true, &maxid);

	if (rc)
		return rc;
	s->epcap = maxid > s->o.max_endpoints ? maxid : s->o.max_endpoints;
	s->eps = calloc(s->epcap, sizeof(*s->eps));
	if (!s->eps)
		return -ENOMEM;
	s->nep = maxid;
	rc = meta_endpoints(s, txn, false, &maxid);
	for (unsigned i = 0; !rc && i < s->nep; i++)
		if (!s->eps[i].name[0])
			rc = -TE_EMALFORMED; /* a hole in the ids */
	return rc;
}

/* One write transaction at open: sub-databases, version, sequence, clock,
 * endpoints and counters. */
static int meta_load(struct te_store *s, char *err, size_t errlen)
{
	MDB_txn *txn;
	int mrc, rc;

	if ((mrc = mdb_txn_begin(s->env, NULL, 0, &txn)))
		return env_fail(s, err, errlen, "begin", mrc);
	if ((mrc = mdb_dbi_open(txn, "q", MDB_CREATE, &s->q)) ||
	    (mrc = mdb_dbi_open(txn, "x", MDB_CREATE, &s->x)) ||
	    (mrc = mdb_dbi_open(txn, "m", MDB_CREATE, &s->m)) ||
	    (mrc = mdb_dbi_open(txn, "k", MDB_CREATE, &s->k))) {
		mdb_txn_abort(txn);
		return env_fail(s, err, errlen, "open sub-databases", mrc);
	}
	rc = meta_version(s, txn, err, errlen);
	if (rc) {
		mdb_txn_abort(txn);
		if (err && errlen && !err[0])
			fail(err, errlen, rc, "store %s: version record: %s", s->file, te_strerror(rc));
		return rc;
	}
	s->next_seq = 1;
	rc = meta_get(s, txn, "#seq", &s->next_seq, sizeof(s->next_seq));
	if (!rc || rc == -ENOENT)
		rc = meta_clock(s, txn);
	if (!rc)
		rc = meta_load_eps(s, txn);
	if (rc) {
		mdb_txn_abort(txn);
		return fail(err, errlen, rc, "store %s: meta records: %s", s->file, te_strerror(rc));
	}
	if ((mrc = mdb_txn_commit(txn)))
		return env_fail(s, err, errlen, "first commit", mrc);
	return 0;
}

/* Sizes that follow from the quota. A write transaction may dirty about
 * budget bytes of pages: with live pages kept under 80 % of the map, the
 * file then stays below 80 % + a few budgets (docs/store.md, "Quota"). */
static void size_limits(struct te_store *s)
{
	uint64_t rm;

	s->nodemax = (((s->psize - 16) / 2) & ~1u) - 2;
	s->budget = s->max_bytes / 32;
	if (s->budget < 4ull * s->psize)
		s->budget = 4ull * s->psize;
	s->bufcap = s->o.pending_bytes;
	rm = s->budget - s->psize - 256;
	if (rm > s->bufcap - sizeof(struct st_put) - 8)
		rm = s->bufcap - sizeof(struct st_put) - 8;
	s->rec_max = rm;
}

static int start(struct te_store *s, char *err, size_t errlen)
{
	int mrc, rc;

	for (int i = 0; i < 2; i++)
		if (!(s->buf[i].p = malloc(s->bufcap)))
			return fail(err, errlen, -ENOMEM, "store %s: out of memory", s->dir);
	s->fill = &s->buf[0];
	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->efd < 0)
		return fail(err, errlen, -errno, "store %s: eventfd: %s", s->dir, strerror(errno));
	if ((mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->rtxn)) ||
	    (mrc = mdb_cursor_open(s->rtxn, s->q, &s->rcur)))
		return env_fail(s, err, errlen, "read transaction", mrc);
	mdb_txn_reset(s->rtxn);
	s->last_commit_mono = s->last_expire_mono = st_mono_ms();
	s->next_exp = 0; /* unknown: the first transaction looks */
	rc = -pthread_create(&s->writer, NULL, st_writer_main, s);
	if (rc)
		return fail(err, errlen, rc, "store %s: writer thread: %s", s->dir, strerror(-rc));
	s->writer_started = true;
	return 0;
}

static int init(struct te_store *s, const struct te_store_opts *o, char *err, size_t errlen)
{
	struct te_store_opts d;

	te_store_opts_init(&d);
	s->o = *o;
	if (!s->o.pending_bytes)
		s->o.pending_bytes = d.pending_bytes;
	if (!s->o.max_endpoints)
		s->o.max_endpoints = d.max_endpoints;
	if (!s->o.evict_batch)
		s->o.evict_batch = d.evict_batch;
	if (!s->o.alive_interval_s)
		s->o.alive_interval_s = d.alive_interval_s;
	if (!s->o.expire_interval_s)
		s->o.expire_interval_s = d.expire_interval_s;
	if (s->o.pending_bytes < 4096 || s->o.pending_bytes > (1u << 30))
		return fail(err, errlen, -EINVAL, "store %s: pending_bytes out of range", o->path);
	if (snprintf(s->dir, sizeof(s->dir), "%s", o->path) >= (int)sizeof(s->dir) ||
	    snprintf(s->file, sizeof(s->file), "%s/data.mdb", o->path) >= (int)sizeof(s->file))
		return fail(err, errlen, -ENAMETOOLONG, "store %s: path too long", o->path);
	s->o.path = s->dir;
	s->psize = (unsigned)sysconf(_SC_PAGESIZE);
	s->wall_floor_ms = o->wall_floor_ms ? o->wall_floor_ms : WALL_FLOOR_DEFAULT;
	s->clk.now = st_sys_clock;
	if (o->clock && o->clock->now)
		s->clk = *o->clock;
	if (s->clk.boot_id)
		snprintf(s->boot_id, sizeof(s->boot_id), "%s", s->clk.boot_id);
	else
		st_read_boot_id(s->boot_id, sizeof(s->boot_id));
	return 0;
}

int te_store_open(struct te_store **out, const struct te_store_opts *o, char *err, size_t errlen)
{
	pthread_condattr_t ca;
	struct te_store *s;
	int rc;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!o || !o->path || !o->path[0])
		return fail(err, errlen, -EINVAL, "store: no path");
	s = calloc(1, sizeof(*s));
	if (!s)
		return fail(err, errlen, -ENOMEM, "store %s: out of memory", o->path);
	s->dirfd = s->efd = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->done_cv, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the writer's timed waits */
	pthread_cond_init(&s->work, &ca);
	pthread_condattr_destroy(&ca);
	if ((rc = init(s, o, err, errlen)) || (rc = lock_dir(s, err, errlen)) ||
	    (rc = size_quota(s, err, errlen)) || (rc = env_open(s, err, errlen)) ||
	    (rc = meta_load(s, err, errlen)))
		goto fail;
	size_limits(s);
	if ((rc = start(s, err, errlen)))
		goto fail;
	*out = s;
	return 0;
fail:
	te_store_close(s);
	return rc;
}

void te_store_close(struct te_store *s)
{
	if (!s)
		return;
	if (s->writer_started) {
		pthread_mutex_lock(&s->mu);
		s->stopping = true;
		pthread_cond_signal(&s->work);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->writer, NULL);
	}
	if (s->rcur)
		mdb_cursor_close(s->rcur); /* a read txn's cursor outlives it */
	if (s->rtxn)
		mdb_txn_abort(s->rtxn);
	if (s->env)
		mdb_env_close(s->env);
	if (s->efd >= 0)
		close(s->efd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->buf[0].p);
	free(s->buf[1].p);
	free(s->eps);
	pthread_cond_destroy(&s->done_cv);
	pthread_cond_destroy(&s->work);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

void st_wake_loop(struct te_store *s)
{
	uint64_t one = 1;

	if (write(s->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return; /* the counter saturates only if nobody reads it */
}
