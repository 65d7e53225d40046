/* Fuzz targets for the rings and records (hub/ring.c, hub/wire.c).
 *
 *   te_fuzz_record: the bytes are one message payload. A decodable record
 *     must be a view inside the bytes, re-encode to the very same bytes
 *     (the encoding is canonical) and decode again to the same view.
 *   te_fuzz_ctl: the same for one control record (twins, methods).
 *   te_fuzz_ring: the bytes are what a hostile module leaves in a small
 *     ringset (see ring_image below); the daemon's consumer, the module's
 *     zero-copy consumer and the daemon's producer then run over it. They
 *     must never crash or touch memory outside their ring: the other ring's
 *     data area is made inaccessible while one ring is exercised, and a
 *     PROT_NONE page follows each mapping when the address is free, so a
 *     stray access faults (ASan cannot see into a shared mapping).
 *
 * A target never asserts validity, only survival and invariants (abort()
 * on a broken one). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "core/err.h"
#include "hub/ring.h"
#include "hub/wire.h"

#include "fuzz.h"

/* ---- records -------------------------------------------------------------- */

static void check_in(const void *p, uint32_t len, const uint8_t *data, size_t n)
{
	const uint8_t *q = p;

	if (!q || q < data || len > n || q - data > (ptrdiff_t)(n - len))
		abort();  /* a view outside the decoded bytes */
}

static void check_view(const struct te_msg *m, const uint8_t *data, size_t n)
{
	if (m->nprops > TE_MSG_PROPS_MAX || m->bodylen > TE_MSG_BODY_MAX)
		abort();
	check_in(m->body, m->bodylen, data, n);
	for (int i = 0; i < TE_SYS_N; i++)
		if (m->sys[i].p || m->sys[i].n)
			check_in(m->sys[i].p, m->sys[i].n, data, n);
	for (uint32_t i = 0; i < m->nprops; i++) {
		check_in(m->props[i].key.p, m->props[i].key.n, data, n);
		check_in(m->props[i].val.p, m->props[i].val.n, data, n);
		if (!m->props[i].key.n)
			abort();
	}
}

bool te_fuzz_str_same(struct te_str a, struct te_str b)
{
	return a.n == b.n && (!a.n || memcmp(a.p, b.p, a.n) == 0) && !a.p == !b.p;
}

bool te_fuzz_msg_same(const struct te_msg *a, const struct te_msg *b)
{
	if (a->origin != b->origin || a->nprops != b->nprops || a->bodylen != b->bodylen ||
	    (a->bodylen && memcmp(a->body, b->body, a->bodylen)))
		return false;
	for (int i = 0; i < TE_SYS_N; i++)
		if (!te_fuzz_str_same(a->sys[i], b->sys[i]))
			return false;
	for (uint32_t i = 0; i < a->nprops; i++)
		if (!te_fuzz_str_same(a->props[i].key, b->props[i].key) ||
		    !te_fuzz_str_same(a->props[i].val, b->props[i].val))
			return false;
	return true;
}

void te_fuzz_record(const uint8_t *data, size_t n)
{
	static struct te_prop props[TE_MSG_PROPS_MAX], props2[TE_MSG_PROPS_MAX];
	struct te_msg m, m2;
	uint8_t *enc;
	size_t len = 0;

	if (te_msg_decode(data, n, &m, props, TE_MSG_PROPS_MAX) != 0)
		return;
	check_view(&m, data, n);
	enc = malloc(n);  /* exactly n: a longer encoding would overflow it */
	if (!enc)
		abort();
	if (te_msg_encode(&m, enc, n, &len) != 0 || len != n || memcmp(enc, data, n))
		abort();  /* not canonical */
	if (te_msg_decode(enc, n, &m2, props2, TE_MSG_PROPS_MAX) != 0 || !te_fuzz_msg_same(&m, &m2))
		abort();
	free(enc);
}

static bool ctl_same(const struct te_ctlrec *a, const struct te_ctlrec *b)
{
	return a->kind == b->kind && a->id == b->id && a->status == b->status &&
	       te_fuzz_str_same(a->name, b->name) && a->bodylen == b->bodylen &&
	       (!a->bodylen || memcmp(a->body, b->body, a->bodylen) == 0);
}

void te_fuzz_ctl(const uint8_t *data, size_t n)
{
	struct te_ctlrec c, c2;
	uint8_t *enc;
	size_t len = 0;

	if (te_ctlrec_decode(data, n, &c) != 0)
		return;
	if (te_wire_kind(data, n) != (int)c.kind || c.kind == TE_WIRE_KIND_MSG)
		abort();
	check_in(c.name.p, c.name.n, data, n);
	check_in(c.body, c.bodylen, data, n);
	enc = malloc(n);  /* exactly n: a longer encoding would overflow it */
	if (!enc)
		abort();
	if (te_ctlrec_encode(&c, enc, n, &len) != 0 || len != n || memcmp(enc, data, n))
		abort();  /* not canonical */
	if (te_ctlrec_decode(enc, n, &c2) != 0 || !ctl_same(&c, &c2))
		abort();
	free(enc);
}

/* ---- rings ---------------------------------------------------------------- */

#define FZ_RING 4096u
#define FZ_STEPS 64

/* The input, in order (missing bytes are zeros):
 *   u32 base          every private index starts here (rounded down to 8)
 *   u32 x 6           out producer, consumer, need_wakeup; the same for in;
 *                     the indices relative to base
 *   u8  cap_sel       the daemon's copy buffer: max payload, or small
 *   u8 x 16           lengths the daemon tries to send on in
 *   rest              the out data area, then the in data area */
struct ring_image {
	uint32_t base;
	uint32_t ctrl[6];
	uint8_t cap_sel;
	uint8_t sends[16];
};

static struct te_ringset fz_d, fz_m;        /* daemon's and module's views */
static struct te_ringset fz_d0, fz_m0;      /* their state just after setup */
static int fz_fd = -1;

static void guard_after(struct te_ringset *rs)
{
	mmap((uint8_t *)rs->map + rs->maplen, 4096, PROT_NONE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
}

static void fz_setup(void)
{
	if (te_ring_create(FZ_RING, &fz_d, &fz_fd) || te_ring_attach(fz_fd, true, &fz_m))
		abort();
	guard_after(&fz_d);
	guard_after(&fz_m);
	fz_d0 = fz_d;
	fz_m0 = fz_m;
}

static void set_ctrl(struct te_ring *r, const uint32_t *v, uint32_t base)
{
	*r->prod_p = base + v[0];
	*r->cons_p = base + v[1];
	*r->wake_p = v[2];
}

static void set_private(struct te_ring *r, uint32_t base)
{
	r->local = r->seen = base;
}

/* Lay the input over the mapping and reset both sides' private state. */
static void fz_load(const struct ring_image *im, const uint8_t *rest, size_t n)
{
	uint8_t *out = fz_d.out.data, *in = fz_d.in.data;  /* D's view of the areas */
	uint32_t base = im->base & ~7u;

	fz_d = fz_d0;
	fz_m = fz_m0;
	memset(out, 0, FZ_RING);
	memset(in, 0, FZ_RING);
	memcpy(out, rest, n < FZ_RING ? n : FZ_RING);
	if (n > FZ_RING)
		memcpy(in, rest + FZ_RING, n - FZ_RING < FZ_RING ? n - FZ_RING : FZ_RING);
	set_ctrl(&fz_d.out, im->ctrl, base);
	set_ctrl(&fz_d.in, im->ctrl + 3, base);
	set_private(&fz_d.out, base);
	set_private(&fz_d.in, base);
	set_private(&fz_m.in, base);
}

/* The daemon reads out as an untrusted consumer; in is out of reach. */
static void fz_daemon_reads(uint8_t cap_sel)
{
	uint32_t cap = cap_sel & 1 ? cap_sel >> 1 : te_ring_max_payload(&fz_d.out), len;
	uint8_t *copy = malloc(cap ? cap : 1);
	int r = 1;

	mprotect(fz_d.in.data, FZ_RING, PROT_NONE);
	for (int i = 0; i < FZ_STEPS && r == 1; i++) {
		r = te_ring_read_copy(&fz_d.out, copy, cap, &len);
		if (r == 1 && (len > cap || len > te_ring_max_payload(&fz_d.out) || !len))
			abort();
		if (r != 1 && r != 0 && r != -TE_EMALFORMED && r != -TE_ENOSPACE)
			abort();
		if (fz_d.out.seen - fz_d.out.local > FZ_RING)
			abort();  /* consumed past the producer index */
	}
	if (r == 0)
		te_ring_prepare_wait(&fz_d.out);
	mprotect(fz_d.in.data, FZ_RING, PROT_READ | PROT_WRITE);
	free(copy);
}

/* The module reads in with the zero-copy consumer; out is out of reach. */
static void fz_module_reads(void)
{
	const void *p;
	uint32_t len;
	int r = 1;

	mprotect(fz_m.out.data, FZ_RING, PROT_NONE);
	for (int i = 0; i < FZ_STEPS && r == 1; i++) {
		r = te_ring_peek(&fz_m.in, &p, &len);
		if (r == 1) {
			check_in(p, len, fz_m.in.data, FZ_RING);
			te_ring_release(&fz_m.in);
		}
	}
	mprotect(fz_m.out.data, FZ_RING, PROT_READ | PROT_WRITE);
}

/* The daemon sends on in, whatever the module did to its consumer index. */
static void fz_daemon_sends(const uint8_t *sends)
{
	mprotect(fz_d.out.data, FZ_RING, PROT_NONE);
	for (int i = 0; i < 16; i++) {
		uint32_t len = sends[i] * 9u;
		uint8_t *p = te_ring_reserve(&fz_d.in, len);

		if (!p)
			continue;
		check_in(p, len, fz_d.in.data, FZ_RING);
		memset(p, i, len);
		te_ring_commit(&fz_d.in);
		te_ring_needs_wakeup(&fz_d.in);
	}
	mprotect(fz_d.out.data, FZ_RING, PROT_READ | PROT_WRITE);
}

void te_fuzz_ring(const uint8_t *data, size_t n)
{
	struct ring_image im;
	size_t head = n < sizeof(im) ? n : sizeof(im);

	if (fz_fd < 0)
		fz_setup();
	memset(&im, 0, sizeof(im));
	memcpy(&im, data, head);
	fz_load(&im, data + head, n - head);
	fz_daemon_reads(im.cap_sel);
	fz_module_reads();
	fz_daemon_sends(im.sends);
}
