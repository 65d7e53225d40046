/* Shared-memory SPSC rings (ring.h; the format is tinyedge/wire.h).
 *
 * Indices. r->local is this side's own index: the producer's or the
 * consumer's, kept in private memory and only ever stored to the mapping
 * (never read back: the peer may scribble on it). r->seen is the peer's
 * index as last loaded and validated; it is reloaded only when it says the
 * ring is full (producer) or empty (consumer), so in steady state each side
 * touches the peer's cache line once per batch, not once per record.
 *
 * Invariants kept for both sides, in uint32_t arithmetic:
 *   producer: 0 <= local - seen <= size; both multiples of TE_WIRE_ALIGN
 *   consumer: 0 <= seen - local <= size; both multiples of TE_WIRE_ALIGN
 * Every shared index is loaded once into a local, checked against these,
 * and only then stored in r->seen. Record headers are loaded once, field by
 * field, and checked before the payload is touched. All data-area offsets
 * are index & mask plus lengths checked against the end of the area, so no
 * value read from the mapping can move an access outside it. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "core/err.h"
#include "ring.h"

#define REC_HDR TE_WIRE_REC_HDR
/* What both sides insist on before they trust the size (ring.h): no shrink
 * (a peer's ftruncate would SIGBUS the other's accesses), no grow, and no
 * change to the seals themselves (else a peer could add F_SEAL_WRITE or
 * F_SEAL_FUTURE_WRITE and stop the other side's stores). */
#define SEALS_REQUIRED (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

_Static_assert(sizeof(struct te_wire_hdr) <= TE_WIRE_OUT_CTRL, "header overlaps out ctrl");
_Static_assert(sizeof(struct te_wire_ctrl) == 3 * TE_WIRE_LINE, "ctrl block layout");
_Static_assert(TE_WIRE_OUT_CTRL + sizeof(struct te_wire_ctrl) <= TE_WIRE_IN_CTRL,
	       "out ctrl overlaps in ctrl");
_Static_assert(TE_WIRE_IN_CTRL + sizeof(struct te_wire_ctrl) <= TE_WIRE_HDR_SIZE,
	       "in ctrl overflows the header page");
_Static_assert(sizeof(struct te_wire_rec) == REC_HDR, "record header size");

/* A full barrier (StoreLoad included), for the wakeup protocol. On x86 a
 * locked instruction on the stack is one (as the Linux kernel's smp_mb).
 * gcc emits mfence for a seq_cst fence at -Os, which recent Intel CPUs
 * also make wait for every earlier instruction: the locked instruction
 * gave this ring 3-5x the throughput of mfence under the musl -Os build.
 * The "memory" clobber makes it a compiler barrier too. */
static inline void full_barrier(void)
{
#if defined(__x86_64__)
	__asm__ __volatile__("lock orl $0, (%%rsp)" ::: "memory", "cc");
#elif defined(__i386__)
	__asm__ __volatile__("lock orl $0, (%%esp)" ::: "memory", "cc");
#else
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

/* ---- layout --------------------------------------------------------------- */

static bool ring_size_ok(uint64_t s)
{
	return s >= TE_WIRE_RING_MIN && s <= TE_WIRE_RING_MAX && (s & (s - 1)) == 0;
}

/* The only header version 1 allows for data areas of s bytes. */
static void layout(uint32_t s, struct te_wire_hdr *h)
{
	memset(h, 0, sizeof(*h));
	h->magic = TE_WIRE_MAGIC;
	h->version = TE_WIRE_VERSION;
	h->hdr_size = TE_WIRE_HDR_SIZE;
	h->line = TE_WIRE_LINE;
	h->total_size = TE_WIRE_HDR_SIZE + 2 * (uint64_t)s;
	h->out.ctrl_off = TE_WIRE_OUT_CTRL;
	h->out.data_off = TE_WIRE_HDR_SIZE;
	h->out.data_size = s;
	h->in.ctrl_off = TE_WIRE_IN_CTRL;
	h->in.data_off = TE_WIRE_HDR_SIZE + s;
	h->in.data_size = s;
}

/* Point r at its ring in the mapping and take the current indices (each
 * loaded once and checked). */
static int ring_bind(struct te_ring *r, uint8_t *base,
		     const struct te_wire_ring_desc *d, bool producer)
{
	struct te_wire_ctrl *c = (struct te_wire_ctrl *)(base + d->ctrl_off);
	uint32_t prod, cons;

	memset(r, 0, sizeof(*r));
	r->prod_p = &c->producer;
	r->cons_p = &c->consumer;
	r->wake_p = &c->need_wakeup;
	r->data = base + d->data_off;
	r->size = d->data_size;
	r->mask = d->data_size - 1;
	r->max_payload = d->data_size / 2 - REC_HDR;
	/* Acquire, both: a producer must not overwrite bytes the consumer has
	 * not finished reading, a consumer must see the records it is told of
	 * (pairs with the peer's release stores). */
	prod = __atomic_load_n(r->prod_p, __ATOMIC_ACQUIRE);
	cons = __atomic_load_n(r->cons_p, __ATOMIC_ACQUIRE);
	if (prod - cons > r->size || (prod | cons) % TE_WIRE_ALIGN)
		return -TE_EMALFORMED;
	r->local = producer ? prod : cons;
	r->seen = cons;  /* a consumer starts "empty" and loads prod on first read */
	return 0;
}

static int ringset_bind(struct te_ringset *rs, const struct te_wire_hdr *h,
			bool module_side)
{
	int err;

	rs->module_side = module_side;
	err = ring_bind(&rs->out, rs->map, &h->out, module_side);
	if (!err)
		err = ring_bind(&rs->in, rs->map, &h->in, !module_side);
	return err;
}

static int ringset_map(struct te_ringset *rs, int fd, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	rs->map = p;
	rs->maplen = len;
	return 0;
}

void te_ring_close(struct te_ringset *rs)
{
	if (rs->map)
		munmap(rs->map, rs->maplen);
	memset(rs, 0, sizeof(*rs));
}

/* ---- create / attach ----------------------------------------------------- */

/* 0 if fd carries every required seal; -EPERM if not (or if it is not a
 * sealable file at all), -errno. */
static int seals_check(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0)
		return errno == EINVAL ? -EPERM : -errno;
	return (seals & SEALS_REQUIRED) == SEALS_REQUIRED ? 0 : -EPERM;
}

/* Size the memfd and seal it, then read the seals back: the daemon hands
 * out only what it has seen sealed (a kernel or a seccomp filter that
 * quietly dropped F_ADD_SEALS must not give a module a resizable ring).
 * F_SEAL_FUTURE_WRITE is not wanted: the module maps it writable (why that
 * only ever hurts the module itself: ring.h, "Trust"). */
static int memfd_setup(int fd, uint64_t len)
{
	if (ftruncate(fd, (off_t)len) < 0)
		return -errno;
	if (fcntl(fd, F_ADD_SEALS, SEALS_REQUIRED) < 0)
		return -errno;
	return seals_check(fd);
}

int te_ring_create(size_t bytes_each_way, struct te_ringset *rs, int *memfd)
{
	struct te_wire_hdr h;
	int fd, err;

	memset(rs, 0, sizeof(*rs));
	if (!ring_size_ok(bytes_each_way))
		return -EINVAL;
	layout((uint32_t)bytes_each_way, &h);
	fd = memfd_create("tinyedge-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	err = memfd_setup(fd, h.total_size);
	if (!err)
		err = ringset_map(rs, fd, h.total_size);
	if (err)
		goto fail;
	memcpy(rs->map, &h, sizeof(h));  /* the rest of the file is zeros */
	err = ringset_bind(rs, &h, false);
	if (err)
		goto fail;
	*memfd = fd;
	return 0;
fail:
	te_ring_close(rs);
	close(fd);
	return err;
}

/* The seals are checked before the size is read: once SHRINK and GROW are
 * set nobody can change the size, so what fstat says then holds for as
 * long as the mapping lives (no SIGBUS from a peer's ftruncate). */
static int attach_size(int fd, uint32_t *ring_bytes)
{
	struct stat st;
	uint64_t sz, s;
	int err = seals_check(fd);

	if (err)
		return err;
	if (fstat(fd, &st) < 0)
		return -errno;
	sz = (uint64_t)st.st_size;
	if (!S_ISREG(st.st_mode) || st.st_size < 0 || sz < TE_WIRE_HDR_SIZE)
		return -TE_EMALFORMED;
	s = (sz - TE_WIRE_HDR_SIZE) / 2;
	if (!ring_size_ok(s) || sz != TE_WIRE_HDR_SIZE + 2 * s)
		return -TE_EMALFORMED;
	*ring_bytes = (uint32_t)s;
	return 0;
}

int te_ring_attach(int memfd, bool module_side, struct te_ringset *rs)
{
	struct te_wire_hdr want, got;
	uint32_t s = 0;
	int err;

	memset(rs, 0, sizeof(*rs));
	err = attach_size(memfd, &s);
	if (err)
		return err;
	layout(s, &want);
	err = ringset_map(rs, memfd, want.total_size);
	if (err)
		return err;
	/* One copy of the header, compared whole: we use our own layout
	 * (want) from here on, never the shared one. */
	memcpy(&got, rs->map, sizeof(got));
	err = memcmp(&got, &want, sizeof(want)) ? -TE_EMALFORMED : 0;
	if (!err)
		err = ringset_bind(rs, &want, module_side);
	if (err)
		te_ring_close(rs);
	return err;
}

/* ---- producer -------------------------------------------------------------- */

static void rec_put(struct te_ring *r, uint32_t off, uint32_t len, uint32_t flags)
{
	struct te_wire_rec h = { .len = len, .flags = flags };

	memcpy(r->data + off, &h, sizeof(h));
}

/* Slow path of reserve: reload the consumer index. A value out of range
 * breaks the ring for good (seen is set so that it always looks full). */
static bool ring_room(struct te_ring *r, uint32_t need)
{
	uint32_t cons;

	if (r->broken)
		return false;
	/* Acquire: pairs with the consumer's release store of its index; its
	 * reads of the bytes we are about to overwrite have completed. */
	cons = __atomic_load_n(r->cons_p, __ATOMIC_ACQUIRE);
	if (r->local - cons > r->size || cons % TE_WIRE_ALIGN) {
		r->broken = true;
		r->seen = r->local - r->size;
		return false;
	}
	r->seen = cons;
	return r->size - (r->local - cons) >= need;
}

void *te_ring_reserve(struct te_ring *r, uint32_t len)
{
	uint32_t off = r->local & r->mask;
	uint32_t to_end = r->size - off;
	uint32_t need, pad;

	if (len - 1u >= r->max_payload)  /* 0 or too long */
		return NULL;
	need = TE_WIRE_REC_SIZE(len);
	pad = need > to_end ? to_end : 0;
	if (r->size - (r->local - r->seen) < pad + need && !ring_room(r, pad + need))
		return NULL;
	if (pad) {
		/* Not published until the commit that follows. */
		rec_put(r, off, to_end - REC_HDR, TE_WIRE_REC_PAD);
		r->local += pad;
		off = 0;
	}
	r->pend_off = off;
	r->pend_len = len;
	return r->data + off + REC_HDR;
}

void te_ring_commit_len(struct te_ring *r, uint32_t len)
{
	if (len > r->pend_len)
		len = r->pend_len;
	r->pend_len = 0;
	if (!len)
		return;
	rec_put(r, r->pend_off, len, 0);
	r->local += TE_WIRE_REC_SIZE(len);
	/* Release: the PAD, the record header and the payload written before
	 * this store are visible to a consumer that loads this index with
	 * acquire (ring_fill). */
	__atomic_store_n(r->prod_p, r->local, __ATOMIC_RELEASE);
}

void te_ring_commit(struct te_ring *r)
{
	te_ring_commit_len(r, r->pend_len);
}

bool te_ring_needs_wakeup(struct te_ring *r)
{
	/* Full barrier (StoreLoad): the producer index stored by the commit
	 * must be globally visible before need_wakeup is loaded. Mirror of the
	 * barrier in te_ring_prepare_wait (Dekker): without both, our load may
	 * pass our store in the store buffer while the consumer's load passes
	 * its flag store; we read 0 and do not signal, it reads the old index
	 * and sleeps with a record waiting (lost wakeup). */
	full_barrier();
	/* Relaxed: only the value matters; the barrier above orders it. */
	if (!__atomic_load_n(r->wake_p, __ATOMIC_RELAXED))
		return false;
	/* Relaxed: if this clear overwrites a flag the consumer set again
	 * meanwhile, the eventfd write our caller now makes still wakes it,
	 * and it sets the flag again before its next sleep. */
	__atomic_store_n(r->wake_p, 0, __ATOMIC_RELAXED);
	return true;
}

/* ---- consumer -------------------------------------------------------------- */

/* Slow path: load the producer index once and check it against ours.
 * 1 = records waiting, 0 = empty, -TE_EMALFORMED. */
static int ring_fill(struct te_ring *r)
{
	/* Acquire: pairs with the producer's release store in commit; every
	 * record byte below this index is visible to the reads that follow. */
	uint32_t prod = __atomic_load_n(r->prod_p, __ATOMIC_ACQUIRE);
	uint32_t avail = prod - r->local;

	if (avail > r->size || avail % TE_WIRE_ALIGN)
		return -TE_EMALFORMED;
	r->seen = prod;
	return avail != 0;
}

/* Load a record header from the mapping, each field exactly once. */
static void rec_get(const struct te_ring *r, uint32_t off, uint32_t *len,
		    uint32_t *flags)
{
	const struct te_wire_rec *h = (const struct te_wire_rec *)(r->data + off);

	/* Relaxed: single loads the compiler may not repeat or tear; ordering
	 * against the producer comes from the acquire in ring_fill. */
	*len = __atomic_load_n(&h->len, __ATOMIC_RELAXED);
	*flags = __atomic_load_n(&h->flags, __ATOMIC_RELAXED);
}

static void ring_advance(struct te_ring *r, uint32_t bytes)
{
	r->local += bytes;
	/* Release: our reads of the bytes just consumed complete before the
	 * producer can see them as free (pairs with the acquire in ring_room). */
	__atomic_store_n(r->cons_p, r->local, __ATOMIC_RELEASE);
}

/* Skip a PAD at off. Allowed only past offset 0, filling exactly the rest
 * of the data area, and entirely below the producer index. */
static int ring_skip_pad(struct te_ring *r, uint32_t off, uint32_t len,
			 uint32_t avail)
{
	uint32_t to_end = r->size - off;

	if (off == 0 || len != to_end - REC_HDR || avail < to_end)
		return -TE_EMALFORMED;
	ring_advance(r, to_end);
	return 0;
}

/* Find and check the next data record. 1 with *poff (its payload's offset
 * in the data area) and *plen, 0 = empty, -TE_EMALFORMED. Loops at most
 * twice: after a PAD comes offset 0, where a PAD is an error. */
static int ring_next(struct te_ring *r, uint32_t *poff, uint32_t *plen)
{
	uint32_t avail, off, len, flags;
	int got;

	for (;;) {
		if (r->seen == r->local && (got = ring_fill(r)) <= 0)
			return got;
		avail = r->seen - r->local;
		off = r->local & r->mask;  /* 8-aligned, so a header fits */
		rec_get(r, off, &len, &flags);
		if (flags == 0)
			break;
		if (flags != TE_WIRE_REC_PAD || ring_skip_pad(r, off, len, avail))
			return -TE_EMALFORMED;
	}
	if (len - 1u >= r->max_payload)  /* 0 or longer than the ring allows */
		return -TE_EMALFORMED;
	if (TE_WIRE_REC_SIZE(len) > r->size - off || TE_WIRE_REC_SIZE(len) > avail)
		return -TE_EMALFORMED;   /* crosses the end of the area or prod */
	*poff = off + REC_HDR;
	*plen = len;
	return 1;
}

int te_ring_read_copy(struct te_ring *r, void *buf, uint32_t cap, uint32_t *len)
{
	uint32_t off, n;
	int got = ring_next(r, &off, &n);

	if (got <= 0)
		return got;
	*len = n;
	if (n > cap)
		return -TE_ENOSPACE;
	/* The one read of the payload: a producer writing meanwhile can only
	 * garble our private copy, which the caller validates. */
	memcpy(buf, r->data + off, n);
	ring_advance(r, TE_WIRE_REC_SIZE(n));
	return 1;
}

int te_ring_peek(struct te_ring *r, const void **p, uint32_t *len)
{
	uint32_t off, n;
	int got = ring_next(r, &off, &n);

	if (got <= 0)
		return got;
	*p = r->data + off;
	*len = n;
	r->pend_len = TE_WIRE_REC_SIZE(n);
	return 1;
}

void te_ring_release(struct te_ring *r)
{
	if (r->pend_len)
		ring_advance(r, r->pend_len);
	r->pend_len = 0;
}

bool te_ring_prepare_wait(struct te_ring *r)
{
	uint32_t prod;

	if (r->seen != r->local)
		return false;
	/* Relaxed: the barrier below orders it. */
	__atomic_store_n(r->wake_p, 1, __ATOMIC_RELAXED);
	/* Full barrier (StoreLoad): the flag store must be globally visible
	 * before the producer index is loaded again. Mirror of the barrier in
	 * te_ring_needs_wakeup; together they guarantee that either we see the
	 * new index here or the producer sees the flag (see there). */
	full_barrier();
	/* Relaxed: only compared; reading records goes through ring_fill's
	 * acquire load. */
	prod = __atomic_load_n(r->prod_p, __ATOMIC_RELAXED);
	if (prod == r->local)
		return true;
	/* Relaxed: awake after all; spare the producer an eventfd write. */
	__atomic_store_n(r->wake_p, 0, __ATOMIC_RELAXED);
	return false;
}

int te_ring_unread(struct te_ring *r, int (*fn)(void *arg, const void *rec, uint32_t len),
		   void *arg)
{
	/* The dead consumer's index, loaded once and checked like any other;
	 * from there to our own index the records are read as a consumer
	 * would, on a private copy of the ring, with every check (the consumer
	 * may have scribbled on the data area too). */
	uint32_t cons = __atomic_load_n(r->cons_p, __ATOMIC_ACQUIRE);
	struct te_ring t = *r;
	uint32_t off, len, scratch;
	int n = 0, got;

	if (r->local - cons > r->size || cons % TE_WIRE_ALIGN)
		return -TE_EMALFORMED;
	t.cons_p = &scratch;  /* skipping a PAD stores it: not to the ring */
	t.local = cons;
	t.seen = r->local;
	while (t.local != r->local) {
		got = ring_next(&t, &off, &len);
		if (got < 0)
			return got;
		if (got == 0)
			break;
		if (fn(arg, t.data + off, len) == 0)
			n++;
		t.local += TE_WIRE_REC_SIZE(len);
	}
	return n;
}
