/* Shared-memory SPSC rings between the daemon and a module (the format is
 * include/tinyedge/wire.h; read it first).
 *
 * One memfd per module holds two rings: "out" (module -> daemon) and "in"
 * (daemon -> module). The daemon creates it (te_ring_create) and hands the
 * fd to the module, which maps it too (te_ring_attach). Each process then
 * produces on one ring and consumes the other (te_ringset_tx / _rx).
 *
 * Trust. The daemon treats every byte of the mapping as hostile: its
 * consumer (te_ring_read_copy) reads each shared index and record header
 * once, validates it, copies the payload out once, and reports a corrupt
 * ring as -TE_EMALFORMED (the daemon then kills the module); its producer
 * validates the consumer index it reads and marks the ring broken
 * (te_ring_broken) rather than trust it. The module may use the zero-copy
 * consumer (te_ring_peek / te_ring_release), which trusts the daemon but
 * still never reads outside the ring.
 *
 * What a module can do to its memfd. The seals (SHRINK, GROW, SEAL; both
 * sides check them before they use the size) hold for every fd to the
 * file, including one reopened through /proc/self/fd/N: it cannot resize
 * it (ftruncate, fallocate, write past the end: EPERM) nor add or remove a
 * seal. It does map the whole file writable, by design: it owns one index
 * of each ring and writes the out data area. It can therefore scribble on
 * the header, on the daemon's own indices and on the in data area, and
 * that only hurts the module: the daemon never reads back what it owns
 * (its indices live in private memory, its layout is its own copy, not the
 * header), loads each module-owned index once and validates it, and reads
 * the in area only to hand a dead instance's unread records to the next
 * instance of the same module, validated again (te_ring_unread). One memfd
 * per module: no other module's ring is mapped in it or passed to it.
 *
 * Costs. No syscall and no allocation on the record paths. Each side keeps
 * its own index privately and caches the peer's, re-reading the shared one
 * only when the cache says full (producer) or empty (consumer).
 *
 * A struct te_ring is used by one thread at a time. */
#ifndef TE_RING_H
#define TE_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tinyedge/wire.h"

struct te_ring {
	uint32_t *prod_p;      /* shared control fields (wire.h te_wire_ctrl) */
	uint32_t *cons_p;
	uint32_t *wake_p;
	uint8_t *data;         /* shared data area, size bytes */
	uint32_t size;         /* power of two */
	uint32_t mask;         /* size - 1 */
	uint32_t max_payload;  /* size / 2 - TE_WIRE_REC_HDR */
	uint32_t local;        /* our own index; the shared copy is never read back */
	uint32_t seen;         /* the peer's index as last loaded and validated */
	uint32_t pend_off;     /* producer: offset of the reserved record */
	uint32_t pend_len;     /* producer: its length; consumer: bytes of the peeked record */
	bool broken;           /* producer: the consumer index was out of range */
};

struct te_ringset {
	void *map;
	size_t maplen;
	bool module_side;      /* module: produce on out, consume in */
	struct te_ring out;    /* module -> daemon */
	struct te_ring in;     /* daemon -> module */
};

/* Create a ringset with two rings of bytes_each_way bytes each (a power of
 * two, TE_WIRE_RING_MIN..TE_WIRE_RING_MAX): a memfd (close-on-exec; the
 * caller passes it to the module) sealed against shrinking, growing and
 * seal changes, the seals read back, mapped on the daemon's side. On
 * success *memfd is the caller's to close. 0, -EINVAL (size), -EPERM (the
 * seals did not hold), -errno. */
int te_ring_create(size_t bytes_each_way, struct te_ringset *rs, int *memfd);

/* Map an existing ringset memfd. module_side picks which ring this process
 * produces on. The size comes from fstat; the header must match the fixed
 * layout for that size, the memfd must be sealed against shrinking,
 * growing and seal changes, and the indices must be consistent. The fd
 * stays the caller's. 0, -TE_EMALFORMED (bad header, size or indices), -EPERM (seals missing),
 * -errno. */
int te_ring_attach(int memfd, bool module_side, struct te_ringset *rs);

/* Unmap (the memfd is not closed). Safe on a zeroed ringset. */
void te_ring_close(struct te_ringset *rs);

static inline struct te_ring *te_ringset_tx(struct te_ringset *rs)
{
	return rs->module_side ? &rs->out : &rs->in;
}

static inline struct te_ring *te_ringset_rx(struct te_ringset *rs)
{
	return rs->module_side ? &rs->in : &rs->out;
}

/* Largest payload a record of this ring can carry. */
static inline uint32_t te_ring_max_payload(const struct te_ring *r)
{
	return r->max_payload;
}

/* ---- producer -------------------------------------------------------------
 * p = te_ring_reserve(r, len); write len bytes at p; te_ring_commit(r);
 * then if te_ring_needs_wakeup(r), write the consumer's eventfd (after a
 * batch of commits is enough). A reservation not yet committed is
 * abandoned by the next reserve. */

/* Room for a len-byte payload, or NULL: len is 0 or over the maximum, the
 * ring is full for now, or the ring is broken. */
void *te_ring_reserve(struct te_ring *r, uint32_t len);

/* Publish the reserved record (a release store of the producer index). */
void te_ring_commit(struct te_ring *r);

/* Publish it with a shorter payload: 1 <= len <= the reserved length (for
 * encoding straight into the ring). len 0 abandons the reservation. */
void te_ring_commit_len(struct te_ring *r, uint32_t len);

/* After commits: true if the consumer asked to be woken; the flag is then
 * cleared and the caller must write the consumer's eventfd. */
bool te_ring_needs_wakeup(struct te_ring *r);

/* True once the consumer index was found out of range: every later reserve
 * fails. For the daemon, a reason to kill the module. */
static inline bool te_ring_broken(const struct te_ring *r)
{
	return r->broken;
}

/* ---- consumer ------------------------------------------------------------- */

/* For an untrusted producer: copy the next record's payload into buf.
 * 1 = a record (*len bytes), 0 = empty, -TE_EMALFORMED = the ring is
 * corrupt (nothing copied; the ring is unusable), -TE_ENOSPACE = the
 * record is longer than cap (*len = its length; it stays in the ring). */
int te_ring_read_copy(struct te_ring *r, void *buf, uint32_t cap, uint32_t *len);

/* For a trusted producer, zero copy: *p points at the next record's
 * payload in the ring, valid until te_ring_release. The same validation as
 * te_ring_read_copy (but fields are not copied before use), same returns. */
int te_ring_peek(struct te_ring *r, const void **p, uint32_t *len);

/* Free the record returned by the last successful te_ring_peek. */
void te_ring_release(struct te_ring *r);

/* About to block on the eventfd: asks the producer for a wakeup, then looks
 * at the ring once more. true = still empty, the caller may sleep; false =
 * records arrived (or the ring is corrupt): read on instead. */
bool te_ring_prepare_wait(struct te_ring *r);

/* For a producer whose consumer is gone (a module that exited): call fn
 * once per record it had not consumed, oldest first, with a view of the
 * payload valid during the call (checked like te_ring_read_copy; the ring
 * is not changed). Returns how many calls returned 0, or -TE_EMALFORMED
 * (the consumer index or a record is corrupt; records before it were
 * passed to fn). */
int te_ring_unread(struct te_ring *r, int (*fn)(void *arg, const void *rec, uint32_t len),
		   void *arg);

#endif
