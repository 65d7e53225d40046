/* Rings (hub/ring.c) and message records (hub/wire.c).
 *
 * Corrupt-ring cases play the hostile module: they write the shared indices
 * and record headers directly, then check that the daemon's consumer says
 * -TE_EMALFORMED without touching the caller's buffer. To make an
 * out-of-bounds read fault (ASan cannot see into a shared mapping), the
 * area after the ring under test is made inaccessible: the "in" data area
 * (mprotect) after "out", and a PROT_NONE page mapped after the mapping for
 * "in". */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/err.h"
#include "hub/ring.h"
#include "hub/wire.h"
#include "tap.h"

#define RSZ 4096u  /* the smallest ring */

/* ---- helpers ------------------------------------------------------------- */

static uint32_t hash32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

/* Record number i of a test stream: its length (1..max) and its bytes. */
static uint32_t rec_len(uint32_t i, uint32_t max)
{
	uint32_t h = hash32(i);

	if (h % 16 == 0)
		return 1 + h / 16 % max;  /* now and then anything up to max */
	return 1 + h / 16 % (max < 200 ? max : 200);
}

static uint8_t rec_byte(uint32_t i, uint32_t j)
{
	return (uint8_t)(i * 131 + j * 7 + 1);
}

static void rec_fill(uint8_t *p, uint32_t i, uint32_t len)
{
	for (uint32_t j = 0; j < len; j++)
		p[j] = rec_byte(i, j);
}

static bool rec_check(const uint8_t *p, uint32_t i, uint32_t len, uint32_t max)
{
	if (len != rec_len(i, max))
		return false;
	for (uint32_t j = 0; j < len; j++)
		if (p[j] != rec_byte(i, j))
			return false;
	return true;
}

static bool send_rec(struct te_ring *r, uint32_t i, uint32_t max)
{
	uint32_t len = rec_len(i, max);
	uint8_t *p = te_ring_reserve(r, len);

	if (!p)
		return false;
	rec_fill(p, i, len);
	te_ring_commit(r);
	return true;
}

static struct te_wire_ctrl *ctrl_of(struct te_ringset *rs, bool out)
{
	return (struct te_wire_ctrl *)((uint8_t *)rs->map +
				       (out ? TE_WIRE_OUT_CTRL : TE_WIRE_IN_CTRL));
}

/* A sealed memfd of len bytes holding data (NULL: zeros). */
static int sealed_memfd(const void *data, size_t len, unsigned seals)
{
	int fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0 || ftruncate(fd, (off_t)len) < 0)
		abort();
	if (data && pwrite(fd, data, len, 0) != (ssize_t)len)
		abort();
	if (seals && fcntl(fd, F_ADD_SEALS, seals) < 0)
		abort();
	return fd;
}

/* ---- create, attach, seals ----------------------------------------------- */

static void test_create(void)
{
	struct te_ringset rs;
	struct te_wire_hdr h;
	int fd = -1, seals;

	TAP_EQ_INT(te_ring_create(RSZ + 1, &rs, &fd), -EINVAL, "create: size not a power of two");
	TAP_EQ_INT(te_ring_create(RSZ / 2, &rs, &fd), -EINVAL, "create: size below the minimum");
	TAP_EQ_INT(te_ring_create((size_t)TE_WIRE_RING_MAX * 2, &rs, &fd), -EINVAL,
		   "create: size above the maximum");
	TAP_EQ_INT(te_ring_create(RSZ, &rs, &fd), 0, "create: 4 KiB each way");
	TAP_EQ_INT(rs.maplen, TE_WIRE_HDR_SIZE + 2 * RSZ, "create: mapping size");
	memcpy(&h, rs.map, sizeof(h));
	TAP_OK(h.magic == TE_WIRE_MAGIC && h.version == TE_WIRE_VERSION &&
	       h.total_size == rs.maplen && h.out.data_off == TE_WIRE_HDR_SIZE &&
	       h.in.data_off == TE_WIRE_HDR_SIZE + RSZ && h.in.ctrl_off == TE_WIRE_IN_CTRL,
	       "create: header follows the fixed layout");
	TAP_EQ_INT(te_ring_max_payload(&rs.out), RSZ / 2 - 8, "max payload is size/2 - 8");
	TAP_OK(fcntl(fd, F_GETFD) & FD_CLOEXEC, "create: memfd is close-on-exec");
	seals = fcntl(fd, F_GET_SEALS);
	TAP_OK(seals >= 0 && (seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) ==
	       (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), "seals: shrink, grow, seal");
	TAP_OK(!(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)), "seals: still writable");
	errno = 0;
	TAP_OK(ftruncate(fd, 4096) < 0 && errno == EPERM, "seals: shrinking fails with EPERM");
	errno = 0;
	TAP_OK(ftruncate(fd, 1 << 20) < 0 && errno == EPERM, "seals: growing fails with EPERM");
	TAP_OK(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) < 0, "seals: no more seals can be added");
	te_ring_close(&rs);
	close(fd);
}

/* Copy a valid ringset's bytes into a new memfd after edit() changes them. */
static int attach_edited(void (*edit)(uint8_t *img), size_t len_delta, unsigned seals)
{
	struct te_ringset rs, rs2;
	int fd, fd2, err;
	uint8_t *img;
	size_t len;

	if (te_ring_create(RSZ, &rs, &fd))
		abort();
	len = rs.maplen + len_delta;
	img = calloc(1, len);
	memcpy(img, rs.map, len < rs.maplen ? len : rs.maplen);
	if (edit)
		edit(img);
	fd2 = sealed_memfd(img, len, seals);
	err = te_ring_attach(fd2, true, &rs2);
	if (!err)
		te_ring_close(&rs2);
	free(img);
	close(fd2);
	te_ring_close(&rs);
	close(fd);
	return err;
}

static void edit_magic(uint8_t *img) { img[0] ^= 1; }
static void edit_version(uint8_t *img) { ((struct te_wire_hdr *)img)->version = 2; }
static void edit_size(uint8_t *img) { ((struct te_wire_hdr *)img)->in.data_size = 2 * RSZ; }
static void edit_off(uint8_t *img) { ((struct te_wire_hdr *)img)->in.data_off = TE_WIRE_HDR_SIZE; }
static void edit_reserved(uint8_t *img) { ((struct te_wire_hdr *)img)->reserved = 1; }

static void edit_prod_ahead(uint8_t *img)
{
	((struct te_wire_ctrl *)(img + TE_WIRE_OUT_CTRL))->producer = RSZ + 8;
}

static void edit_cons_unaligned(uint8_t *img)
{
	struct te_wire_ctrl *c = (struct te_wire_ctrl *)(img + TE_WIRE_IN_CTRL);

	c->producer = 12;
	c->consumer = 4;
}

static void test_attach_rejects(void)
{
	const unsigned all = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
	int fd;

	TAP_EQ_INT(attach_edited(NULL, 0, all), 0, "attach: a faithful copy is accepted");
	TAP_EQ_INT(attach_edited(NULL, 0, 0), -EPERM, "attach: memfd without seals");
	TAP_EQ_INT(attach_edited(NULL, 0, F_SEAL_SHRINK), -EPERM, "attach: memfd without GROW seal");
	TAP_EQ_INT(attach_edited(NULL, 0, F_SEAL_GROW), -EPERM, "attach: memfd without SHRINK seal");
	TAP_EQ_INT(attach_edited(NULL, 0, F_SEAL_SHRINK | F_SEAL_GROW), -EPERM,
		   "attach: memfd without SEAL seal (its seals could still change)");
	TAP_EQ_INT(attach_edited(NULL, 4096, all), -TE_EMALFORMED, "attach: size not header + 2 * 2^n");
	TAP_EQ_INT(attach_edited(NULL, 8, all), -TE_EMALFORMED, "attach: size off by 8");
	TAP_EQ_INT(attach_edited(NULL, -(ssize_t)RSZ, all), -TE_EMALFORMED, "attach: too small");
	TAP_EQ_INT(attach_edited(edit_magic, 0, all), -TE_EMALFORMED, "attach: bad magic");
	TAP_EQ_INT(attach_edited(edit_version, 0, all), -TE_EMALFORMED, "attach: bad version");
	TAP_EQ_INT(attach_edited(edit_size, 0, all), -TE_EMALFORMED, "attach: header size disagrees with fstat");
	TAP_EQ_INT(attach_edited(edit_off, 0, all), -TE_EMALFORMED, "attach: header offset not the layout");
	TAP_EQ_INT(attach_edited(edit_reserved, 0, all), -TE_EMALFORMED, "attach: reserved field set");
	TAP_EQ_INT(attach_edited(edit_prod_ahead, 0, all), -TE_EMALFORMED, "attach: producer index > size ahead");
	TAP_EQ_INT(attach_edited(edit_cons_unaligned, 0, all), -TE_EMALFORMED, "attach: unaligned indices");

	/* A memfd created without MFD_ALLOW_SEALING reports F_SEAL_SEAL only. */
	fd = memfd_create("plain", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, TE_WIRE_HDR_SIZE + 2 * RSZ) < 0)
		abort();
	{
		struct te_ringset rs;

		TAP_EQ_INT(te_ring_attach(fd, true, &rs), -EPERM, "attach: unsealable memfd");
		close(fd);
		fd = open("/dev/null", O_RDWR);
		TAP_EQ_INT(te_ring_attach(fd, true, &rs), -EPERM, "attach: not a memfd");
		close(fd);
		TAP_EQ_INT(te_ring_attach(-1, true, &rs), -EBADF, "attach: bad fd");
	}
}

/* The module's side, hostile: whatever fd it holds to its memfd (the
 * inherited one, or one reopened read-write through /proc/self/fd, which
 * the kernel allows), it can neither resize the file nor change its seals;
 * and what it can write (the whole mapping) never breaks the daemon's
 * reads and writes of its own state. */
static void test_hostile_module(void)
{
	struct te_ringset rs, mod;
	char path[64], buf[64];
	uint32_t len;
	int fd, rw;
	off_t size;

	if (te_ring_create(RSZ, &rs, &fd))
		abort();
	size = (off_t)rs.maplen;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rw = open(path, O_RDWR);
	TAP_OK(rw >= 0, "hostile: /proc/self/fd/N reopens the memfd read-write (seals must hold)");
	errno = 0;
	TAP_OK(ftruncate(rw, size / 2) < 0 && errno == EPERM, "hostile: ftruncate smaller: EPERM");
	errno = 0;
	TAP_OK(ftruncate(rw, size * 2) < 0 && errno == EPERM, "hostile: ftruncate larger: EPERM");
	errno = 0;
	TAP_OK(fallocate(rw, 0, size, 4096) < 0 && errno == EPERM, "hostile: fallocate past the end: EPERM");
	errno = 0;
	TAP_OK(pwrite(rw, "x", 1, size) < 0 && errno == EPERM, "hostile: write past the end: EPERM");
	errno = 0;
	TAP_OK(fcntl(rw, F_ADD_SEALS, F_SEAL_WRITE) < 0 && errno == EPERM,
	       "hostile: adding F_SEAL_WRITE: EPERM");
	errno = 0;
	TAP_OK(fcntl(rw, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) < 0 && errno == EPERM,
	       "hostile: adding F_SEAL_FUTURE_WRITE (would stop the daemon's stores): EPERM");
	TAP_EQ_INT(fcntl(rw, F_GET_SEALS), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL,
		   "hostile: the seals are unchanged");
	TAP_EQ_INT(lseek(rw, 0, SEEK_END), size, "hostile: the size is unchanged");

	/* Scribble on everything the daemon owns: the header, its index of
	 * out (consumer) and of in (producer). It never reads them back. */
	if (te_ring_attach(rw, true, &mod))
		abort();
	memset(mod.map, 0xff, sizeof(struct te_wire_hdr));
	ctrl_of(&mod, true)->consumer = 0xdeadbee8u;
	ctrl_of(&mod, false)->producer = 0xdeadbee8u;
	memcpy(te_ring_reserve(&mod.out, 5), "hello", 5);
	te_ring_commit(&mod.out);
	TAP_OK(te_ring_read_copy(&rs.out, buf, sizeof(buf), &len) == 1 && len == 5 &&
	       !memcmp(buf, "hello", 5), "hostile: the daemon reads on from its own indices");
	TAP_OK(te_ring_reserve(&rs.in, 8) != NULL && !te_ring_broken(&rs.in),
	       "hostile: and writes on");
	te_ring_commit(&rs.in);
	te_ring_close(&mod);
	close(rw);
	te_ring_close(&rs);
	close(fd);
}

/* ---- records in one process ----------------------------------------------- */

static struct te_ringset D, M;  /* the daemon's and the module's views */
static int D_fd = -1;

/* Daemon creates, module attaches. With start != 0, every index starts at
 * start (both re-attach), as if after a long run. */
static void pair_open(uint32_t size, uint32_t start)
{
	if (te_ring_create(size, &D, &D_fd))
		abort();
	if (start) {
		for (int o = 0; o < 2; o++) {
			ctrl_of(&D, o)->producer = start;
			ctrl_of(&D, o)->consumer = start;
		}
		te_ring_close(&D);
		if (te_ring_attach(D_fd, false, &D))
			abort();
	}
	if (te_ring_attach(D_fd, true, &M))
		abort();
}

static void pair_close(void)
{
	te_ring_close(&M);
	te_ring_close(&D);
	close(D_fd);
	D_fd = -1;
}

static void test_roundtrip(void)
{
	uint8_t buf[64];
	const void *p;
	uint32_t len = 0;
	char *w;

	pair_open(RSZ, 0);
	TAP_OK(te_ringset_tx(&M) == &M.out && te_ringset_rx(&M) == &M.in &&
	       te_ringset_tx(&D) == &D.in && te_ringset_rx(&D) == &D.out, "tx/rx per side");
	TAP_EQ_INT(te_ring_read_copy(&D.out, buf, sizeof(buf), &len), 0, "empty ring reads 0");
	w = te_ring_reserve(&M.out, 5);
	TAP_OK(w != NULL, "module reserves 5 bytes");
	memcpy(w, "hello", 5);
	TAP_EQ_INT(te_ring_read_copy(&D.out, buf, sizeof(buf), &len), 0,
		   "reserved but not committed is invisible");
	te_ring_commit(&M.out);
	TAP_EQ_INT(ctrl_of(&D, true)->producer, 16, "commit published 8 + 8 bytes");
	TAP_EQ_INT(te_ring_read_copy(&D.out, buf, sizeof(buf), &len), 1, "daemon reads the record");
	TAP_OK(len == 5 && memcmp(buf, "hello", 5) == 0, "payload intact");
	TAP_EQ_INT(ctrl_of(&D, true)->consumer, 16, "consumer index released");
	TAP_EQ_INT(te_ring_read_copy(&D.out, buf, sizeof(buf), &len), 0, "then empty");

	w = te_ring_reserve(&D.in, 3);
	memcpy(w, "abc", 3);
	te_ring_commit(&D.in);
	TAP_EQ_INT(te_ring_peek(&M.in, &p, &len), 1, "module peeks the daemon's record");
	TAP_OK(len == 3 && memcmp(p, "abc", 3) == 0, "peeked payload intact");
	TAP_EQ_INT(te_ring_peek(&M.in, &p, &len), 1, "peek again: same record until release");
	TAP_EQ_INT(ctrl_of(&D, false)->consumer, 0, "nothing released yet");
	te_ring_release(&M.in);
	TAP_EQ_INT(ctrl_of(&D, false)->consumer, 16, "release frees it");
	TAP_EQ_INT(te_ring_peek(&M.in, &p, &len), 0, "then empty");
	te_ring_release(&M.in);
	TAP_EQ_INT(ctrl_of(&D, false)->consumer, 16, "release without a peek does nothing");

	/* A record longer than the caller's buffer stays in the ring. */
	w = te_ring_reserve(&M.out, 40);
	memset(w, 'x', 40);
	te_ring_commit(&M.out);
	TAP_EQ_INT(te_ring_read_copy(&D.out, buf, 10, &len), -TE_ENOSPACE, "cap too small: ENOSPACE");
	TAP_EQ_INT(len, 40, "ENOSPACE reports the length");
	TAP_EQ_INT(te_ring_read_copy(&D.out, buf, sizeof(buf), &len), 1, "then readable with room");

	/* Shrinking and abandoning a reservation. */
	w = te_ring_reserve(&M.out, 100);
	memcpy(w, "short", 5);
	te_ring_commit_len(&M.out, 5);
	TAP_OK(te_ring_read_copy(&D.out, buf, sizeof(buf), &len) == 1 && len == 5 &&
	       memcmp(buf, "short", 5) == 0, "commit_len shrinks the record");
	te_ring_reserve(&M.out, 8);
	te_ring_commit_len(&M.out, 0);
	te_ring_commit(&M.out);
	TAP_EQ_INT(te_ring_read_copy(&D.out, buf, sizeof(buf), &len), 0, "commit_len(0) abandons");
	te_ring_commit(&M.out);
	TAP_EQ_INT(te_ring_read_copy(&D.out, buf, sizeof(buf), &len), 0, "commit with nothing reserved");
	pair_close();
}

static void test_full_empty(void)
{
	uint8_t buf[RSZ];
	uint32_t len, n = 0, max = RSZ / 2 - 8;
	bool ok = true;

	pair_open(RSZ, 0);
	TAP_OK(te_ring_reserve(&M.out, 0) == NULL, "reserve 0 bytes: NULL");
	TAP_OK(te_ring_reserve(&M.out, max + 1) == NULL, "reserve over max payload: NULL");
	while (te_ring_reserve(&M.out, 56)) {
		te_ring_commit(&M.out);
		n++;
	}
	TAP_EQ_INT(n, RSZ / 64, "a full ring holds size / 64 records of 56 bytes");
	TAP_EQ_INT(ctrl_of(&M, true)->producer - ctrl_of(&M, true)->consumer, RSZ,
		   "full: producer - consumer == size");
	TAP_OK(te_ring_reserve(&M.out, 1) == NULL, "full: even 1 byte does not fit");
	TAP_EQ_INT(te_ring_read_copy(&D.out, buf, sizeof(buf), &len), 1, "consume one");
	TAP_OK(te_ring_reserve(&M.out, 56) != NULL, "then one fits again");
	te_ring_commit(&M.out);
	TAP_OK(te_ring_reserve(&M.out, 56) == NULL, "and the ring is full again");
	while (te_ring_read_copy(&D.out, buf, sizeof(buf), &len) == 1)
		n--;
	TAP_EQ_INT(n, 0, "every record read back");
	TAP_EQ_INT(te_ring_read_copy(&D.out, buf, sizeof(buf), &len), 0, "empty after draining");

	/* A maximal record fits in an empty ring wherever the index stands. */
	for (uint32_t at = 0; at < 2 * RSZ && ok; at += 8) {
		uint8_t *p;

		D.out.local = D.out.seen = M.out.local = M.out.seen = at;
		ctrl_of(&D, true)->producer = ctrl_of(&D, true)->consumer = at;
		p = te_ring_reserve(&M.out, max);
		ok = p != NULL;
		if (ok) {
			rec_fill(p, at, max);
			te_ring_commit(&M.out);
			ok = te_ring_read_copy(&D.out, buf, sizeof(buf), &len) == 1 &&
			     len == max && buf[max - 1] == rec_byte(at, max - 1);
		}
	}
	TAP_OK(ok, "a max-size record fits an empty ring at every offset");
	pair_close();
}

/* The PAD case by hand: 16 bytes left before the end, a 64-byte record. */
static void test_pad(void)
{
	uint8_t buf[128];
	struct te_wire_rec h;
	uint32_t len, at = 3 * RSZ - 16;
	uint8_t *p;

	pair_open(RSZ, at);
	p = te_ring_reserve(&M.out, 64);
	TAP_OK(p == (uint8_t *)M.out.data + 8, "record placed at offset 0 after a PAD");
	memset(p, 'p', 64);
	te_ring_commit(&M.out);
	memcpy(&h, M.out.data + RSZ - 16, sizeof(h));
	TAP_OK(h.flags == TE_WIRE_REC_PAD && h.len == 8, "PAD fills the last 16 bytes");
	TAP_EQ_INT(ctrl_of(&M, true)->producer, at + 16 + 72, "producer index counts the PAD");
	TAP_EQ_INT(te_ring_read_copy(&D.out, buf, sizeof(buf), &len), 1, "consumer skips the PAD");
	TAP_OK(len == 64 && buf[0] == 'p' && buf[63] == 'p', "record after the PAD intact");
	TAP_EQ_INT(ctrl_of(&M, true)->consumer, at + 16 + 72, "consumer index past both");
	pair_close();
}

/* Random batches of random sizes, many times around the ring, verifying
 * every byte; start near 2^32 to cross the index wraparound too. */
static void wrap_run(uint32_t start, const char *what)
{
	static uint8_t buf[RSZ];
	uint32_t sent = 0, got = 0, len, max = RSZ / 2 - 8, wraps = 0, last = 0;
	bool ok = true;

	pair_open(RSZ, start);
	for (uint32_t round = 0; round < 20000 && ok; round++) {
		uint32_t nsend = hash32(round) % 12, nread = hash32(~round) % 12;

		while (nsend-- && send_rec(&M.out, sent, max))
			sent++;
		while (nread-- && ok) {
			int r = te_ring_read_copy(&D.out, buf, sizeof(buf), &len);

			if (r == 0)
				break;
			ok = r == 1 && rec_check(buf, got, len, max);
			got++;
			wraps += (D.out.local & D.out.mask) < last;
			last = D.out.local & D.out.mask;
		}
	}
	while (ok && te_ring_read_copy(&D.out, buf, sizeof(buf), &len) == 1)
		ok = rec_check(buf, got++, len, max);
	TAP_OK(ok && got == sent, "%s: %u records of 1..%u bytes in order", what, sent, max);
	TAP_OK(wraps > 500, "%s: around the ring %u times (PAD records)", what, wraps);
	TAP_OK(!te_ring_broken(&M.out), "%s: producer never saw a bad index", what);
	pair_close();
}

static void test_wrap(void)
{
	wrap_run(0, "wraparound");
	wrap_run(0xfffff000u, "index wrap at 2^32");
}

/* ---- need_wakeup ---------------------------------------------------------- */

static void test_wakeup(void)
{
	uint8_t buf[128];
	uint32_t len, *flag;

	pair_open(RSZ, 0);
	flag = &ctrl_of(&D, true)->need_wakeup;
	TAP_OK(!te_ring_needs_wakeup(&M.out), "no wakeup wanted at start");
	TAP_OK(te_ring_prepare_wait(&D.out), "empty: consumer may sleep");
	TAP_EQ_INT(*flag, 1, "need_wakeup set");
	send_rec(&M.out, 0, 100);
	TAP_OK(te_ring_needs_wakeup(&M.out), "producer sees need_wakeup after commit");
	TAP_EQ_INT(*flag, 0, "producer cleared it");
	send_rec(&M.out, 1, 100);
	TAP_OK(!te_ring_needs_wakeup(&M.out), "one wakeup per sleep");
	TAP_OK(!te_ring_prepare_wait(&D.out), "records waiting: do not sleep");
	TAP_EQ_INT(*flag, 0, "flag left clear when not sleeping");

	/* The race: the producer commits between the consumer's last empty
	 * read and its flag store. The re-check after the barrier sees it. */
	while (te_ring_read_copy(&D.out, buf, sizeof(buf), &len) == 1)
		;
	send_rec(&M.out, 2, 100);
	TAP_OK(!te_ring_needs_wakeup(&M.out), "commit before the flag: no wakeup sent");
	TAP_OK(!te_ring_prepare_wait(&D.out), "...and the consumer's re-check does not sleep");
	TAP_EQ_INT(te_ring_read_copy(&D.out, buf, sizeof(buf), &len), 1, "the record is read");
	pair_close();
}

/* ---- across fork ---------------------------------------------------------- */

#define FORK_N 200000u

static bool wait_fd(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, 10000) != 1)
		return false;
	return read(fd, &v, sizeof(v)) == sizeof(v);
}

static void kick(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) != sizeof(one))
		abort();
}

/* The module: wait for "go" on in, then send FORK_N records on out. */
static int child_main(int memfd, int efd_out, int efd_in)
{
	struct te_ringset rs;
	const void *p;
	uint32_t len, max;
	int got;

	if (te_ring_attach(memfd, true, &rs))
		return 10;
	max = te_ring_max_payload(&rs.out);
	while ((got = te_ring_peek(&rs.in, &p, &len)) == 0)
		if (te_ring_prepare_wait(&rs.in) && !wait_fd(efd_in))
			return 11;
	if (got != 1 || len != 2 || memcmp(p, "go", 2))
		return 12;
	te_ring_release(&rs.in);
	for (uint32_t i = 0; i < FORK_N; i++) {
		while (!send_rec(&rs.out, i, max))
			sched_yield();
		if (te_ring_needs_wakeup(&rs.out))
			kick(efd_out);
	}
	te_ring_close(&rs);
	return 0;
}

static void test_fork(void)
{
	static uint8_t buf[RSZ * 4];
	struct te_ringset rs;
	uint32_t len, got = 0, sleeps = 0, max;
	int fd, efd_out, efd_in, status = -1, r = 0;
	bool ok = true;
	pid_t pid;
	char *w;

	if (te_ring_create(RSZ * 4, &rs, &fd))
		abort();
	efd_out = eventfd(0, EFD_CLOEXEC);
	efd_in = eventfd(0, EFD_CLOEXEC);
	max = te_ring_max_payload(&rs.out);
	pid = fork();
	if (pid == 0)
		_exit(child_main(fd, efd_out, efd_in));
	w = te_ring_reserve(&rs.in, 2);
	memcpy(w, "go", 2);
	te_ring_commit(&rs.in);
	if (te_ring_needs_wakeup(&rs.in))
		kick(efd_in);
	while (ok && got < FORK_N) {
		r = te_ring_read_copy(&rs.out, buf, sizeof(buf), &len);
		if (r == 1)
			ok = rec_check(buf, got++, len, max);
		else if (r == 0 && te_ring_prepare_wait(&rs.out))
			ok = wait_fd(efd_out) && ++sleeps;
		else
			ok = r == 0;
	}
	TAP_OK(ok && got == FORK_N, "fork: %u records from the child, in order (last rc %d)", got, r);
	TAP_OK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "fork: child attached via the inherited fd and exited 0 (status %d)", status);
	TAP_OK(sleeps > 0, "fork: consumer slept and was woken %u times", sleeps);
	TAP_EQ_INT(te_ring_read_copy(&rs.out, buf, sizeof(buf), &len), 0, "fork: ring empty at the end");
	te_ring_close(&rs);
	close(fd);
	close(efd_out);
	close(efd_in);
}

/* ---- corrupt rings -------------------------------------------------------- */

struct corrupt {
	const char *name;
	uint32_t at;       /* both indices start here */
	uint32_t prod;     /* the producer index the module writes, relative to at */
	uint32_t off;      /* where it writes a record header, relative to at */
	uint32_t len, flags;
};

#define BIG 0x1000000u

static const struct corrupt corrupt_cases[] = {
	{ "producer index behind consumer", 64, -8u, 0, 8, 0 },
	{ "producer index far behind", 64, -RSZ, 0, 8, 0 },
	{ "producer index > size ahead", 0, RSZ + 8, 0, 8, 0 },
	{ "producer index 2^31 ahead", 0, 0x80000000u, 0, 8, 0 },
	{ "producer index not aligned", 0, 20, 0, 8, 0 },
	{ "record length 0", 0, 16, 0, 0, 0 },
	{ "record length larger than the ring", 0, RSZ, 0, RSZ, 0 },
	{ "record length max payload + 1", 0, RSZ, 0, RSZ / 2 - 7, 0 },
	{ "record length 2^32 - 1", 0, RSZ, 0, 0xffffffffu, 0 },
	{ "record length 2^32 - 7 (padding overflow)", 0, RSZ, 0, 0xfffffff9u, 0 },
	{ "record length crossing prod", 0, 64, 0, 57, 0 },
	{ "record length crossing prod by far", 0, 64, 0, 200, 0 },
	{ "record crossing the end of the data area", RSZ - 64, RSZ, 0, 100, 0 },
	{ "record crossing the end by one byte", RSZ - 64, 128, 0, 57, 0 },
	{ "PAD at offset 0", 0, 128, 0, RSZ - 8, TE_WIRE_REC_PAD },
	{ "PAD at offset 0, short", 0, 128, 0, 8, TE_WIRE_REC_PAD },
	{ "PAD at offset 0 filling a full ring", 0, RSZ, 0, RSZ - 8, TE_WIRE_REC_PAD },
	{ "PAD not reaching the end", RSZ - 64, 128, 0, 48, TE_WIRE_REC_PAD },
	{ "PAD past the end", RSZ - 64, 128, 0, 64, TE_WIRE_REC_PAD },
	{ "PAD length not aligned", RSZ - 64, 128, 0, 53, TE_WIRE_REC_PAD },
	{ "PAD crossing prod", RSZ - 64, 32, 0, 56, TE_WIRE_REC_PAD },
	{ "PAD then PAD at offset 0", RSZ - 64, 128, 64, RSZ - 8, TE_WIRE_REC_PAD },
	{ "PAD then length 0", RSZ - 64, 128, 64, 0, 0 },
	{ "PAD then record crossing prod", RSZ - 64, 128, 64, 100, 0 },
	{ "garbage flags 2", 0, 64, 0, 8, 2 },
	{ "garbage flags 0x80000000", 0, 64, 0, 8, 0x80000000u },
	{ "garbage flags PAD|2", RSZ - 64, 128, 0, 56, TE_WIRE_REC_PAD | 2 },
	{ "garbage flags all ones", 0, 64, 0, 8, 0xffffffffu },
};

/* The hostile writes of case c on ring r (seen from the module's side). */
static void corrupt_apply(struct te_ring *r, const struct corrupt *c)
{
	struct te_wire_rec h = { .len = c->len, .flags = c->flags };

	if (c->off == 64) {  /* a valid PAD first (c->at is 64 before the end) */
		struct te_wire_rec pad = { .len = 56, .flags = TE_WIRE_REC_PAD };

		memcpy(r->data + ((c->at) & r->mask), &pad, sizeof(pad));
	}
	memcpy(r->data + ((c->at + c->off) & r->mask), &h, sizeof(h));
	__atomic_store_n(r->prod_p, c->at + c->prod, __ATOMIC_RELEASE);
}

/* Run case c against the daemon's consumer on out (in's data area made
 * inaccessible) or the module's on in (a guard page after the mapping). */
static bool corrupt_run(const struct corrupt *c, bool on_out)
{
	struct te_ring *cons = on_out ? &D.out : &M.in, *prod = on_out ? &M.out : &D.in;
	uint32_t start = c->at ? 2 * RSZ + c->at : 0, cap = RSZ / 2 - 8, len = 12345;
	uint32_t cons_want = start + (c->off == 64 ? 64 : 0);  /* only a valid PAD is consumed */
	uint8_t *buf = malloc(cap), *canary = malloc(cap);
	const void *p = NULL;
	void *guard = MAP_FAILED;
	int r1, r2;
	bool ok;

	pair_open(RSZ, start);
	memset(buf, 0xa5, cap);
	memcpy(canary, buf, cap);
	if (on_out)
		mprotect((uint8_t *)D.map + TE_WIRE_HDR_SIZE + RSZ, RSZ, PROT_NONE);
	else
		guard = mmap((uint8_t *)M.map + M.maplen, 4096, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	corrupt_apply(prod, &(struct corrupt){ .at = start,
		.prod = c->prod, .off = c->off, .len = c->len, .flags = c->flags });
	if (on_out) {
		r1 = te_ring_read_copy(cons, buf, cap, &len);
		r2 = te_ring_read_copy(cons, buf, cap, &len);
		ok = r1 == -TE_EMALFORMED && r2 == -TE_EMALFORMED && len == 12345 &&
		     memcmp(buf, canary, cap) == 0 && *cons->cons_p == cons_want;
		mprotect((uint8_t *)D.map + TE_WIRE_HDR_SIZE + RSZ, RSZ, PROT_READ | PROT_WRITE);
	} else {
		r1 = te_ring_peek(cons, &p, &len);
		r2 = te_ring_peek(cons, &p, &len);
		ok = r1 == -TE_EMALFORMED && r2 == -TE_EMALFORMED && p == NULL && len == 12345 &&
		     *cons->cons_p == cons_want;
		if (guard != MAP_FAILED)
			munmap(guard, 4096);
	}
	if (!ok)
		printf("#   %s: rc %d then %d, len %u, consumer +%u\n", c->name, r1, r2,
		       len, *cons->cons_p - start);
	pair_close();
	free(buf);
	free(canary);
	return ok;
}

static void test_corrupt(void)
{
	for (unsigned i = 0; i < sizeof(corrupt_cases) / sizeof(corrupt_cases[0]); i++) {
		const struct corrupt *c = &corrupt_cases[i];

		TAP_OK(corrupt_run(c, true), "read_copy: %s: -TE_EMALFORMED, nothing copied or consumed",
		       c->name);
		TAP_OK(corrupt_run(c, false), "peek: %s: -TE_EMALFORMED, nothing consumed", c->name);
	}
}

/* The control case of corrupt_run: the same setup with a valid record. */
static void test_corrupt_control(void)
{
	uint8_t buf[64];
	uint32_t len;

	pair_open(RSZ, 2 * RSZ + RSZ - 64);
	corrupt_apply(&M.out, &(struct corrupt){ .at = 3 * RSZ - 64, .prod = 136, .off = 64,
		      .len = 57, .flags = 0 });
	TAP_EQ_INT(te_ring_read_copy(&D.out, buf, sizeof(buf), &len), 1,
		   "hand-made PAD then a 57-byte record is valid");
	TAP_EQ_INT(len, 57, "...and reads back 57 bytes");
	pair_close();
}

/* The daemon as producer on in, with a hostile consumer index. */
static void test_corrupt_consumer(void)
{
	pair_open(RSZ, 0);
	while (te_ring_reserve(&D.in, 100))
		te_ring_commit(&D.in);
	ctrl_of(&D, false)->consumer = D.in.local + 8;  /* ahead of prod */
	TAP_OK(te_ring_reserve(&D.in, 100) == NULL && te_ring_broken(&D.in),
	       "producer: consumer index ahead of producer breaks the ring");
	ctrl_of(&D, false)->consumer = D.in.local;
	TAP_OK(te_ring_reserve(&D.in, 8) == NULL, "producer: a broken ring stays broken");
	pair_close();

	pair_open(RSZ, 0);
	while (te_ring_reserve(&D.in, 100))
		te_ring_commit(&D.in);
	ctrl_of(&D, false)->consumer = 4;
	TAP_OK(te_ring_reserve(&D.in, 100) == NULL && te_ring_broken(&D.in),
	       "producer: unaligned consumer index breaks the ring");
	pair_close();

	pair_open(RSZ, 0);
	while (te_ring_reserve(&D.in, 100))
		te_ring_commit(&D.in);
	ctrl_of(&D, false)->consumer = D.in.local - RSZ - 8;
	TAP_OK(te_ring_reserve(&D.in, 100) == NULL && te_ring_broken(&D.in),
	       "producer: consumer index > size behind breaks the ring");
	pair_close();
}

/* ---- message records ------------------------------------------------------ */

static struct te_prop big_props[TE_MSG_PROPS_MAX];
static char keys[TE_MSG_PROPS_MAX][8];

static void msg_full(struct te_msg *m, const void *body, uint32_t bodylen)
{
	static const char *sys[TE_SYS_N] = { "id-1", "corr", "application/json", "utf-8",
		"2025-01-01T00:00:00Z", "dev", "sensor", "out1", "in1", "" };

	memset(m, 0, sizeof(*m));
	m->origin = TE_ORIGIN_MODULE;
	for (int i = 0; i < TE_SYS_N; i++)
		m->sys[i] = (struct te_str){ sys[i], (uint32_t)strlen(sys[i]) };
	for (unsigned i = 0; i < TE_MSG_PROPS_MAX; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%u", i);
		big_props[i].key = (struct te_str){ keys[i], (uint32_t)strlen(keys[i]) };
		big_props[i].val = (struct te_str){ "v", i % 3 ? 1 : 0 };
	}
	m->props = big_props;
	m->nprops = TE_MSG_PROPS_MAX;
	m->body = body;
	m->bodylen = bodylen;
}

static bool str_eq(struct te_str a, struct te_str b)
{
	if (!a.p || !b.p)
		return !a.p && !b.p && !a.n && !b.n;
	return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

static bool msg_eq(const struct te_msg *a, const struct te_msg *b)
{
	if (a->origin != b->origin || a->nprops != b->nprops || a->bodylen != b->bodylen)
		return false;
	if (a->bodylen && memcmp(a->body, b->body, a->bodylen))
		return false;
	for (int i = 0; i < TE_SYS_N; i++)
		if (!str_eq(a->sys[i], b->sys[i]))
			return false;
	for (uint32_t i = 0; i < a->nprops; i++)
		if (!str_eq(a->props[i].key, b->props[i].key) ||
		    !(a->props[i].val.n == b->props[i].val.n &&
		      !memcmp(a->props[i].val.p ? a->props[i].val.p : "", b->props[i].val.p, a->props[i].val.n)))
			return false;
	return true;
}

static void test_msg_roundtrip(void)
{
	static uint8_t buf[TE_MSG_BODY_MAX + 65536], body[TE_MSG_BODY_MAX];
	struct te_prop props[TE_MSG_PROPS_MAX];
	struct te_msg m, d;
	size_t len = 0, len2 = 0;
	uint8_t again[1024];

	msg_full(&m, "{\"t\":21.5}", 10);
	TAP_EQ_INT(te_msg_encode(&m, buf, sizeof(buf), &len), 0, "encode: full message");
	TAP_EQ_INT(te_msg_decode(buf, len, &d, props, TE_MSG_PROPS_MAX), 0, "decode it");
	TAP_OK(msg_eq(&m, &d), "decode gives back every field");
	TAP_OK(d.props == props && (const uint8_t *)d.body == buf + len - 10,
	       "view points into the buffer, body last");
	TAP_OK(d.sys[TE_SYS_USER_ID].p && d.sys[TE_SYS_USER_ID].n == 0, "present empty string stays present");
	TAP_OK(te_msg_encode(&d, again, sizeof(again), &len2) == 0 && len2 == len &&
	       !memcmp(again, buf, len), "re-encoding gives the same bytes");

	memset(&m, 0, sizeof(m));
	m.origin = TE_ORIGIN_TWIN_CHANGE;
	TAP_OK(te_msg_encode(&m, buf, sizeof(buf), &len) == 0 && len == TE_WIRE_MSG_HDR,
	       "empty message is the 12-byte header");
	TAP_OK(te_msg_decode(buf, len, &d, props, 0) == 0 && d.origin == TE_ORIGIN_TWIN_CHANGE &&
	       d.nprops == 0 && d.bodylen == 0 && !d.sys[0].p, "empty message decodes (maxprops 0)");
	{
		static const uint8_t want[] = { 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };

		TAP_OK(!memcmp(buf, want, sizeof(want)), "header bytes as documented");
	}
	m.origin = TE_ORIGIN_DEVICE;
	m.sys[TE_SYS_CONTENT_TYPE] = (struct te_str){ "ab", 2 };
	m.body = "xyz";
	m.bodylen = 3;
	te_msg_encode(&m, buf, sizeof(buf), &len);
	{
		static const uint8_t want[] = { 1, 1, 4, 0, 0, 0, 0, 0, 3, 0, 0, 0,
						2, 0, 'a', 'b', 'x', 'y', 'z' };

		TAP_OK(len == sizeof(want) && !memcmp(buf, want, sizeof(want)),
		       "little-endian bytes as documented");
	}

	memset(body, 0x5a, sizeof(body));
	msg_full(&m, body, TE_MSG_BODY_MAX);
	TAP_EQ_INT(te_msg_encode(&m, buf, sizeof(buf), &len), 0, "encode: 256 KiB body, 64 props");
	TAP_OK(te_msg_decode(buf, len, &d, props, TE_MSG_PROPS_MAX) == 0 && msg_eq(&m, &d),
	       "decode: 256 KiB body, 64 props");
	TAP_EQ_INT(te_msg_encode(&m, buf, len - 1, &len2), -TE_ENOSPACE, "encode: cap one short");
	TAP_EQ_INT(len2, len, "ENOSPACE reports the size needed");
	TAP_EQ_INT(te_msg_decode(buf, len, &d, props, 63), -TE_ENOSPACE, "decode: more props than maxprops");
}

static void test_msg_limits(void)
{
	static char big[TE_WIRE_STR_MAX + 1];
	struct te_prop props[TE_MSG_PROPS_MAX + 1], p1 = { { "k", 1 }, { "v", 1 } };
	struct te_msg m;
	uint8_t buf[16384];
	size_t len;

	memset(big, 'b', sizeof(big));
	memset(&m, 0, sizeof(m));
	m.body = big;
	m.bodylen = TE_MSG_BODY_MAX + 1;
	TAP_EQ_INT(te_msg_encode(&m, buf, sizeof(buf), &len), -TE_ELIMIT, "encode: body over 256 KiB");
	m.bodylen = 0;
	for (int i = 0; i <= TE_MSG_PROPS_MAX; i++)
		props[i] = p1;
	m.props = props;
	m.nprops = TE_MSG_PROPS_MAX + 1;
	TAP_EQ_INT(te_msg_encode(&m, buf, sizeof(buf), &len), -TE_ELIMIT, "encode: 65 properties");
	m.nprops = 1;
	props[0].val = (struct te_str){ big, TE_WIRE_STR_MAX + 1 };
	TAP_EQ_INT(te_msg_encode(&m, buf, sizeof(buf), &len), -TE_ELIMIT, "encode: 4097-byte value");
	props[0].val = (struct te_str){ big, TE_WIRE_STR_MAX };
	TAP_EQ_INT(te_msg_encode(&m, buf, sizeof(buf), &len), 0, "encode: 4096-byte value");
	props[0].key = (struct te_str){ NULL, 0 };
	TAP_EQ_INT(te_msg_encode(&m, buf, sizeof(buf), &len), -TE_EINVALID, "encode: empty name");
	props[0].key = (struct te_str){ NULL, 3 };
	TAP_EQ_INT(te_msg_encode(&m, buf, sizeof(buf), &len), -TE_EINVALID, "encode: NULL with length");
	props[0] = p1;
	m.sys[0] = (struct te_str){ big, TE_WIRE_STR_MAX + 1 };
	TAP_EQ_INT(te_msg_encode(&m, buf, sizeof(buf), &len), -TE_ELIMIT, "encode: 4097-byte system property");
	m.sys[0] = (struct te_str){ NULL, 0 };
	m.origin = (enum te_msg_origin)3;
	TAP_EQ_INT(te_msg_encode(&m, buf, sizeof(buf), &len), -TE_EINVALID, "encode: unknown origin");
	m.origin = TE_ORIGIN_MODULE;
	TAP_EQ_INT(te_msg_encode(&m, buf, 0, &len), -TE_ENOSPACE, "encode: cap 0");
}

/* Decode hand-made bytes. */
static int dec(const uint8_t *b, size_t n)
{
	struct te_prop props[TE_MSG_PROPS_MAX];
	struct te_msg m;

	return te_msg_decode(b, n, &m, props, TE_MSG_PROPS_MAX);
}

static void test_msg_malformed(void)
{
	static uint8_t big[TE_WIRE_MSG_HDR + 2 + TE_WIRE_STR_MAX + 1];
	uint8_t ok[] = { 1, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 'i', 1, 0, 'k', 1, 0, 'v', 'B' };
	uint8_t b[sizeof(ok) + 1];

#define TRY(edit, want, name) do { memcpy(b, ok, sizeof(ok)); edit; \
	TAP_EQ_INT(dec(b, sizeof(ok)), want, "decode: " name); } while (0)
	TRY((void)0, 0, "the reference message");
	TRY(b[0] = 2, -TE_EMALFORMED, "unknown kind");
	TRY(b[0] = 0, -TE_EMALFORMED, "kind 0");
	TRY(b[1] = 3, -TE_EMALFORMED, "unknown origin");
	TRY(b[3] = 4, -TE_EMALFORMED, "sysmask bit 10");
	TRY(b[3] = 0x80, -TE_EMALFORMED, "sysmask bit 15");
	TRY(b[6] = 1, -TE_EMALFORMED, "reserved field set");
	TRY(b[4] = 65, -TE_ELIMIT, "65 properties");
	TRY(b[5] = 1, -TE_ELIMIT, "257 properties");
	TRY(b[4] = 2, -TE_EMALFORMED, "property count beyond the strings");
	TRY(b[4] = 0, -TE_EMALFORMED, "property count short (bytes left over)");
	TRY((b[10] = 4, b[11] = 0), -TE_ELIMIT, "body length over 256 KiB");
	TRY(b[8] = 2, -TE_EMALFORMED, "body length eats the strings");
	TRY(b[8] = 0, -TE_EMALFORMED, "body length short (bytes left over)");
	TRY(b[11] = 0xff, -TE_ELIMIT, "body length 2^32 - x");
	TRY(b[19] = 0x10, -TE_ELIMIT, "string length over 4096");
	TRY(b[12] = 0xff, -TE_EMALFORMED, "string length past the end");
	TRY(b[2] = 0, -TE_EMALFORMED, "sysmask short (bytes left over)");
	TRY(b[2] = 3, -TE_EMALFORMED, "sysmask names a string that is not there");
#undef TRY
	memcpy(b, ok, sizeof(ok));
	b[sizeof(ok)] = 0;
	TAP_EQ_INT(dec(b, sizeof(ok) + 1), -TE_EMALFORMED, "decode: trailing byte");
	TAP_EQ_INT(dec(b, 0), -TE_EMALFORMED, "decode: empty buffer");
	TAP_EQ_INT(dec(b, 11), -TE_EMALFORMED, "decode: shorter than the header");
	{
		static const uint8_t noname[] = { 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
						  0, 0, 1, 0, 'v' };
		static const uint8_t named[] = { 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
						 1, 0, 'k', 0, 0 };

		TAP_EQ_INT(dec(noname, sizeof(noname)), -TE_EMALFORMED, "decode: empty property name");
		TAP_EQ_INT(dec(named, sizeof(named)), 0, "decode: empty property value is fine");
	}

	/* A 4097-byte system property, sized right: over the limit. */
	big[0] = 1;
	big[2] = 1;
	big[12] = (TE_WIRE_STR_MAX + 1) & 0xff;
	big[13] = (TE_WIRE_STR_MAX + 1) >> 8;
	TAP_EQ_INT(dec(big, sizeof(big)), -TE_ELIMIT, "decode: 4097-byte system property");
	big[12] = TE_WIRE_STR_MAX & 0xff;
	big[13] = TE_WIRE_STR_MAX >> 8;
	TAP_EQ_INT(dec(big, sizeof(big) - 1), 0, "decode: 4096-byte system property");
}

/* Every strict prefix of a valid encoding is rejected; every one-byte
 * change either fails or decodes to a view inside the buffer that
 * re-encodes to the same bytes. Buffers are exact-size heap copies, so
 * ASan sees any read past them. */
static void test_msg_mutations(void)
{
	static uint8_t enc[8192], again[8192];
	struct te_prop props[TE_MSG_PROPS_MAX];
	struct te_msg m, d;
	size_t n, n2;
	unsigned bad_prefix = 0, bad_flip = 0, decoded = 0;

	msg_full(&m, "body bytes", 10);
	m.nprops = 5;
	m.sys[TE_SYS_CORRELATION_ID] = (struct te_str){ NULL, 0 };
	te_msg_encode(&m, enc, sizeof(enc), &n);
	for (size_t k = 0; k < n; k++) {
		uint8_t *b = malloc(k ? k : 1);

		memcpy(b, enc, k);
		bad_prefix += te_msg_decode(b, k, &d, props, TE_MSG_PROPS_MAX) == 0;
		free(b);
	}
	TAP_EQ_INT(bad_prefix, 0, "all %zu strict prefixes rejected", n);
	for (size_t k = 0; k < n; k++) {
		for (unsigned v = 0; v < 256; v += (v < 8 ? 1 : 37)) {
			uint8_t *b = malloc(n);

			memcpy(b, enc, n);
			b[k] ^= (uint8_t)(v ? v : 0xff);
			if (te_msg_decode(b, n, &d, props, TE_MSG_PROPS_MAX) == 0) {
				decoded++;
				if (te_msg_encode(&d, again, sizeof(again), &n2) || n2 != n ||
				    memcmp(again, b, n))
					bad_flip++;
			}
			free(b);
		}
	}
	TAP_EQ_INT(bad_flip, 0, "byte changes: %u still decode, each re-encodes identically", decoded);
}

/* A message through the ring: encoded in place, read out, decoded. */
static void test_msg_ring(void)
{
	static uint8_t buf[RSZ];
	struct te_prop props[TE_MSG_PROPS_MAX];
	struct te_msg m, d;
	uint32_t len;
	size_t n;
	void *w;

	pair_open(RSZ, 0);
	msg_full(&m, "21.5", 4);
	m.nprops = 3;
	w = te_ring_reserve(&M.out, te_ring_max_payload(&M.out));
	TAP_EQ_INT(te_msg_encode(&m, w, te_ring_max_payload(&M.out), &n), 0, "encode into the ring");
	te_ring_commit_len(&M.out, (uint32_t)n);
	TAP_OK(te_ring_read_copy(&D.out, buf, sizeof(buf), &len) == 1 && len == n &&
	       te_msg_decode(buf, len, &d, props, TE_MSG_PROPS_MAX) == 0 && msg_eq(&m, &d),
	       "read out and decoded: same message");
	pair_close();
}

/* te_ring_unread: what a dead consumer left, in order, ring unchanged. */
struct unread_log {
	uint32_t n, lens[64];
	bool bytes_ok;
	uint32_t first;
};

static int unread_cb(void *arg, const void *rec, uint32_t len)
{
	struct unread_log *u = arg;
	uint32_t i = u->first + u->n;
	const uint8_t *p = rec;

	for (uint32_t j = 0; j < len; j++)
		if (p[j] != rec_byte(i, j))
			u->bytes_ok = false;
	u->lens[u->n++ % 64] = len;
	return 0;
}

static void test_unread(void)
{
	struct unread_log u = { .bytes_ok = true, .first = 2 };
	const void *view;
	uint32_t len, cons;
	bool lens_ok = true;

	/* Start near the end of the area so the records wrap (a PAD). */
	pair_open(RSZ, 3 * RSZ - 256);
	for (uint32_t i = 0; i < 6; i++) {
		uint8_t *p = te_ring_reserve(&D.in, 100 + i);

		rec_fill(p, i, 100 + i);
		te_ring_commit(&D.in);
	}
	for (int i = 0; i < 2; i++) {
		TAP_EQ_INT(te_ring_peek(&M.in, &view, &len), 1, "module reads record %d", i);
		te_ring_release(&M.in);
	}
	cons = ctrl_of(&D, false)->consumer;
	TAP_EQ_INT(te_ring_unread(&D.in, unread_cb, &u), 4, "4 records left unread");
	for (uint32_t i = 0; i < 4; i++)
		lens_ok &= u.lens[i] == 102 + i;
	TAP_OK(lens_ok && u.bytes_ok, "in order, bytes intact, across the wrap");
	TAP_EQ_INT(ctrl_of(&D, false)->consumer, cons, "the ring is not changed");
	u.n = 0;
	TAP_EQ_INT(te_ring_unread(&D.in, unread_cb, &u), 4, "a second pass sees the same");

	/* The dead module scribbled: a consumer index out of range, then a
	 * record length running past the producer index. */
	ctrl_of(&D, false)->consumer = cons - 8;
	TAP_EQ_INT(te_ring_unread(&D.in, unread_cb, &u), -TE_EMALFORMED,
		   "consumer index behind what it had read: EMALFORMED");
	ctrl_of(&D, false)->consumer = cons + 4;
	TAP_EQ_INT(te_ring_unread(&D.in, unread_cb, &u), -TE_EMALFORMED,
		   "consumer index not aligned: EMALFORMED");
	ctrl_of(&D, false)->consumer = cons;
	while (te_ring_peek(&M.in, &view, &len) == 1)
		te_ring_release(&M.in);
	u.n = 0;
	TAP_EQ_INT(te_ring_unread(&D.in, unread_cb, &u), 0, "all read: nothing unread");
	{
		uint8_t *p = te_ring_reserve(&D.in, 40);
		struct te_wire_rec h = { .len = 4000, .flags = 0 };

		rec_fill(p, 0, 40);
		te_ring_commit(&D.in);
		memcpy((uint8_t *)p - 8, &h, sizeof(h));
	}
	TAP_EQ_INT(te_ring_unread(&D.in, unread_cb, &u), -TE_EMALFORMED,
		   "a scribbled record length: EMALFORMED");
	pair_close();
}

int main(void)
{
	test_create();
	test_attach_rejects();
	test_hostile_module();
	test_roundtrip();
	test_full_empty();
	test_pad();
	test_wrap();
	test_wakeup();
	test_fork();
	test_corrupt();
	test_corrupt_control();
	test_corrupt_consumer();
	test_msg_roundtrip();
	test_msg_limits();
	test_msg_malformed();
	test_msg_mutations();
	test_msg_ring();
	test_unread();
	return tap_done();
}
