/* Module logs (logring.h): a byte ring of line records, crash records and
 * optional rotated log files.
 *
 * Ring layout. r->buf holds records back to back, oldest at r->head, the
 * next one written at r->tail. A record is a struct rec_hdr followed by
 * hdr.len text bytes, and is always contiguous: when it does not fit
 * between the tail and the end of the buffer, the rest of the buffer
 * becomes padding and the record starts at offset 0. Padding is marked by
 * a header with seq 0, or is implicit when fewer than REC_HDR bytes remain.
 * So te_logline.text can point straight into the ring.
 *
 * r->used counts record and padding bytes between head and tail. When
 * used is 0, head = tail = 0. When used > 0, head points at a record (never
 * at padding): eviction skips padding as soon as head reaches it. Seqs of
 * the held records run from first_seq to next_seq - 1 without gaps.
 *
 * Every stored text is at most TE_LOG_LINE_MAX bytes (lines are cut) and
 * at most cap - REC_HDR (a ring smaller than a header plus a maximal line
 * cuts further), so a record always fits in an empty ring. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/fs.h"
#include "core/log.h"
#include "logring.h"

struct rec_hdr {
	uint64_t time_ms;
	uint64_t seq;       /* 0: padding up to the end of the buffer */
	uint32_t len;
	int8_t stream;
	int8_t level;
};

#define REC_HDR sizeof(struct rec_hdr)
/* A formatted line: time, stream, level, every text byte escaped, '\n'. */
#define FMT_MAX (64 + 4 * TE_LOG_LINE_MAX)

/* ---- ring records ------------------------------------------------------- */

static void hdr_read(const struct te_logring *r, size_t off, struct rec_hdr *h)
{
	memcpy(h, r->buf + off, REC_HDR);
}

static void rec_line(const struct rec_hdr *h, const char *text,
		     struct te_logline *l)
{
	*l = (struct te_logline){ .time_ms = h->time_ms, .seq = h->seq,
				  .stream = h->stream, .level = h->level,
				  .text = text, .len = h->len };
}

static bool is_pad(const struct te_logring *r, size_t off)
{
	struct rec_hdr h;

	if (r->cap - off < REC_HDR)
		return true;
	hdr_read(r, off, &h);
	return h.seq == 0;
}

/* Drop the oldest record (used > 0). */
static void ring_evict(struct te_logring *r)
{
	struct rec_hdr h;

	hdr_read(r, r->head, &h);
	r->head += REC_HDR + h.len;
	r->used -= REC_HDR + h.len;
	r->first_seq++;
	r->dropped++;
	if (r->used > 0 && is_pad(r, r->head)) {
		r->used -= r->cap - r->head;
		r->head = 0;
	}
	if (r->used == 0)
		r->head = r->tail = 0;
}

/* Where a record of size bytes can go without evicting, if anywhere. */
static bool ring_room(const struct te_logring *r, size_t size, size_t *at)
{
	if (r->used == 0) {
		*at = 0;
		return true;
	}
	if (r->tail > r->head) {
		/* Free: [tail, cap) and [0, head). */
		*at = r->cap - r->tail >= size ? r->tail : 0;
		return *at == r->tail || r->head >= size;
	}
	/* Wrapped (or full when tail == head): free is [tail, head). */
	*at = r->tail;
	return r->head - r->tail >= size;
}

static void ring_append(struct te_logring *r, const struct rec_hdr *h,
			const char *text)
{
	size_t size = REC_HDR + h->len, at;

	while (!ring_room(r, size, &at))
		ring_evict(r);
	if (at != r->tail) {
		if (r->cap - r->tail >= REC_HDR) {
			struct rec_hdr pad = { .seq = 0 };

			memcpy(r->buf + r->tail, &pad, REC_HDR);
		}
		r->used += r->cap - r->tail;
	}
	memcpy(r->buf + at, h, REC_HDR);
	memcpy(r->buf + at + REC_HDR, text, h->len);
	r->tail = at + size;
	r->used += size;
	r->next_seq++;
}

/* Walks the held records oldest first. */
struct rec_iter {
	size_t off, left;
};

static void iter_init(const struct te_logring *r, struct rec_iter *it)
{
	it->off = r->head;
	it->left = r->used;
}

static bool iter_next(const struct te_logring *r, struct rec_iter *it,
		      struct te_logline *l)
{
	struct rec_hdr h;

	if (it->left > 0 && is_pad(r, it->off)) {
		it->left -= r->cap - it->off;
		it->off = 0;
	}
	if (it->left < REC_HDR)
		return false;
	hdr_read(r, it->off, &h);
	if (REC_HDR + h.len > it->left)
		return false;
	rec_line(&h, r->buf + it->off + REC_HDR, l);
	it->off += REC_HDR + h.len;
	it->left -= REC_HDR + h.len;
	return true;
}

/* ---- public ring calls -------------------------------------------------- */

int te_logring_init(struct te_logring *r, size_t cap)
{
	memset(r, 0, sizeof(*r));
	r->persist_fd = -1;
	if (cap < 4096)
		return -EINVAL;
	r->buf = malloc(cap);
	if (!r->buf)
		return -ENOMEM;
	r->cap = cap;
	r->next_seq = r->first_seq = 1;
	return 0;
}

void te_logring_free(struct te_logring *r)
{
	free(r->buf);
	r->buf = NULL;
	r->cap = r->used = r->head = r->tail = 0;
	if (r->persist_fd >= 0)
		close(r->persist_fd);
	r->persist_fd = -1;
	r->persist_path[0] = '\0';
}

void te_logring_iter_init(const struct te_logring *r, struct te_logring_iter *it)
{
	struct rec_iter ri;

	iter_init(r, &ri);
	it->off = ri.off;
	it->left = ri.left;
}

bool te_logring_iter_next(const struct te_logring *r, struct te_logring_iter *it,
			  struct te_logline *out)
{
	struct rec_iter ri = { it->off, it->left };
	bool ok = iter_next(r, &ri, out);

	it->off = ri.off;
	it->left = ri.left;
	return ok;
}

unsigned te_logring_count(const struct te_logring *r)
{
	return (unsigned)(r->next_seq - r->first_seq);
}

/* Cost: a walk from the oldest record, O(lines held) — a few hundred for a
 * 64 KiB ring, so `logs -f` calling this once per new line stays cheap. */
bool te_logring_get(const struct te_logring *r, uint64_t from_seq,
		    struct te_logline *out)
{
	struct rec_iter it;
	uint64_t skip;

	if (from_seq < r->first_seq)
		from_seq = r->first_seq;
	if (from_seq >= r->next_seq)
		return false;
	iter_init(r, &it);
	for (skip = from_seq - r->first_seq;; skip--) {
		if (!iter_next(r, &it, out))
			return false;
		if (skip == 0)
			return true;
	}
}

/* ---- formatting --------------------------------------------------------- */

struct sbuf {
	char *p;
	size_t cap, len;   /* cap >= 1; len <= cap - 1 */
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	size_t room = b->cap - 1 - b->len;

	if (n > room)
		n = room;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void sb_puts(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

static bool is_ctl(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* Control characters (but tab) as \xNN: one stored line, one output line. */
static void sb_escaped(struct sbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0, run;

	while (i < n) {
		for (run = i; run < n && !is_ctl((unsigned char)s[run]); run++)
			;
		sb_put(b, s + i, run - i);
		if (run == n)
			break;
		char esc[4] = { '\\', 'x', hex[(unsigned char)s[run] >> 4],
				hex[s[run] & 0xf] };
		sb_put(b, esc, sizeof(esc));
		i = run + 1;
	}
}

size_t te_logline_format(const struct te_logline *l, char *buf, size_t cap)
{
	struct sbuf b = { buf, cap, 0 };
	char ts[48];

	if (cap == 0)
		return 0;
	te_time_iso(l->time_ms, false, ts, sizeof(ts));
	sb_puts(&b, ts);
	sb_puts(&b, l->stream == 2 ? " stderr " : " stdout ");
	if (l->level >= 0 && l->level <= 7) {
		char lv[5] = { '<', (char)('0' + l->level), '>', ' ', '\0' };

		sb_puts(&b, lv);
	}
	sb_escaped(&b, l->text, l->len);
	sb_put(&b, "\n", 1);
	buf[b.len] = '\0';
	return b.len;
}

/* ---- persistence -------------------------------------------------------- */

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int persist_open(struct te_logring *r, bool trunc)
{
	struct stat st;

	r->persist_fd = open(r->persist_path, O_WRONLY | O_APPEND | O_CREAT |
			     O_CLOEXEC | (trunc ? O_TRUNC : 0), 0600);
	if (r->persist_fd < 0)
		return -errno;
	r->persist_size = fstat(r->persist_fd, &st) == 0 ? (size_t)st.st_size : 0;
	return 0;
}

/* <path>.<n-2> -> <path>.<n-1>, ..., <path> -> <path>.1; with one file,
 * <path> starts over. A failed rename only loses an old file. */
static void persist_rotate(struct te_logring *r)
{
	char from[sizeof(r->persist_path) + 16], to[sizeof(from)];
	unsigned i;

	close(r->persist_fd);
	r->persist_fd = -1;
	for (i = r->persist_files - 1; i > 0; i--) {
		snprintf(from, sizeof(from), i > 1 ? "%s.%u" : "%s",
			 r->persist_path, i - 1);
		snprintf(to, sizeof(to), "%s.%u", r->persist_path, i);
		rename(from, to);
	}
	persist_open(r, r->persist_files < 2);
}

/* Write errors are ignored (the RAM ring still has the line); a file that
 * could not be reopened after rotation is retried at the next line. */
static void persist_line(struct te_logring *r, const struct te_logline *l)
{
	char buf[FMT_MAX];
	size_t n;

	if (!r->persist_path[0])
		return;
	n = te_logline_format(l, buf, sizeof(buf));
	if (r->persist_fd >= 0 && r->persist_max_bytes && r->persist_size > 0 &&
	    r->persist_size + n > r->persist_max_bytes)
		persist_rotate(r);
	if (r->persist_fd < 0 && persist_open(r, false) < 0)
		return;
	if (write_all(r->persist_fd, buf, n) == 0)
		r->persist_size += n;
}

int te_logring_persist(struct te_logring *r, const char *path,
		       size_t max_bytes, unsigned files)
{
	int err;

	if (strlen(path) >= sizeof(r->persist_path))
		return -ENAMETOOLONG;
	if (r->persist_fd >= 0)
		close(r->persist_fd);
	snprintf(r->persist_path, sizeof(r->persist_path), "%s", path);
	r->persist_max_bytes = max_bytes;
	r->persist_files = files ? files : 1;
	err = persist_open(r, false);
	if (err)
		r->persist_path[0] = '\0';
	return err;
}

/* ---- feeding lines ------------------------------------------------------ */

static void line_store(struct te_logring *r, int stream, const char *text,
		       size_t len, uint64_t now_ms)
{
	struct rec_hdr h = { .time_ms = now_ms, .seq = r->next_seq,
			     .stream = (int8_t)stream, .level = -1 };
	struct te_logline l;

	if (len > 0 && text[len - 1] == '\r')
		len--;
	if (len >= 3 && text[0] == '<' && text[1] >= '0' && text[1] <= '7' &&
	    text[2] == '>') {
		h.level = (int8_t)(text[1] - '0');
		text += 3;
		len -= 3;
	}
	if (len > r->cap - REC_HDR)
		len = r->cap - REC_HDR;
	h.len = (uint32_t)len;
	ring_append(r, &h, text);
	rec_line(&h, text, &l);
	persist_line(r, &l);
}

/* Add n bytes of stream's current line; eol: the line ends after them.
 * The partial buffer is stored as a cut piece only once it is full and
 * more bytes of the same line arrive, so a line of exactly
 * TE_LOG_LINE_MAX bytes stays one line. Returns the lines stored. */
static unsigned line_add(struct te_logring *r, int stream, const char *data,
			 size_t n, bool eol, uint64_t now_ms)
{
	char *p = r->partial[stream - 1];
	size_t *plen = &r->partial_len[stream - 1], take;
	unsigned lines = 0;

	while (n > 0) {
		if (*plen == TE_LOG_LINE_MAX) {
			line_store(r, stream, p, *plen, now_ms);
			*plen = 0;
			lines++;
		}
		if (*plen == 0 && eol && n <= TE_LOG_LINE_MAX) {
			line_store(r, stream, data, n, now_ms);
			return lines + 1;
		}
		take = TE_LOG_LINE_MAX - *plen < n ? TE_LOG_LINE_MAX - *plen : n;
		memcpy(p + *plen, data, take);
		*plen += take;
		data += take;
		n -= take;
	}
	if (eol) {
		line_store(r, stream, p, *plen, now_ms);
		*plen = 0;
		lines++;
	}
	return lines;
}

unsigned te_logring_feed(struct te_logring *r, int stream, const char *data,
			 size_t n, uint64_t now_ms)
{
	unsigned lines = 0;

	if (stream != 1 && stream != 2)
		return 0;
	while (n > 0) {
		const char *nl = memchr(data, '\n', n);
		size_t seg = nl ? (size_t)(nl - data) : n;

		lines += line_add(r, stream, data, seg, nl != NULL, now_ms);
		seg += nl != NULL;
		data += seg;
		n -= seg;
	}
	return lines;
}

void te_logring_flush(struct te_logring *r, uint64_t now_ms)
{
	int s;

	for (s = 1; s <= 2; s++) {
		if (r->partial_len[s - 1] == 0)
			continue;
		line_store(r, s, r->partial[s - 1], r->partial_len[s - 1], now_ms);
		r->partial_len[s - 1] = 0;
	}
}

/* ---- crash records ------------------------------------------------------ */

static const char *signal_name(int sig)
{
#define SIG(s) { s, #s }
	static const struct { int sig; const char *name; } names[] = {
		SIG(SIGHUP), SIG(SIGINT), SIG(SIGQUIT), SIG(SIGILL), SIG(SIGTRAP),
		SIG(SIGABRT), SIG(SIGBUS), SIG(SIGFPE), SIG(SIGKILL), SIG(SIGUSR1),
		SIG(SIGSEGV), SIG(SIGUSR2), SIG(SIGPIPE), SIG(SIGALRM), SIG(SIGTERM),
		SIG(SIGXCPU), SIG(SIGXFSZ), SIG(SIGSYS),
	};
#undef SIG

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].sig == sig)
			return names[i].name;
	return NULL;
}

static void status_text(int ws, char *buf, size_t cap)
{
	const char *name;

	if (WIFEXITED(ws)) {
		snprintf(buf, cap, "exited %d", WEXITSTATUS(ws));
	} else if (WIFSIGNALED(ws)) {
		name = signal_name(WTERMSIG(ws));
		snprintf(buf, cap, name ? "killed by signal %d (%s)" :
			 "killed by signal %d", WTERMSIG(ws), name);
	} else {
		snprintf(buf, cap, "wait status 0x%x", (unsigned)ws);
	}
}

/* Leave it at the first of the newest lines whose formatted size stays
 * within TE_CRASH_TAIL (at least the newest line). */
static void tail_start(const struct te_logring *r, struct rec_iter *it,
		       char *fmt)
{
	struct te_logline l;
	size_t total = 0;
	unsigned n = 0;

	iter_init(r, it);
	while (iter_next(r, it, &l)) {
		total += te_logline_format(&l, fmt, FMT_MAX);
		n++;
	}
	iter_init(r, it);
	for (; total > TE_CRASH_TAIL && n > 1; n--) {
		if (!iter_next(r, it, &l))
			break;
		total -= te_logline_format(&l, fmt, FMT_MAX);
	}
}

static int crash_write(const struct te_logring *r, int fd, const char *module,
		       int ws, const char *reason, uint64_t now_ms)
{
	char fmt[FMT_MAX], ts[48], status[64];
	struct rec_iter it;
	struct te_logline l;
	int n, err;

	te_time_iso(now_ms, false, ts, sizeof(ts));
	status_text(ws, status, sizeof(status));
	n = snprintf(fmt, sizeof(fmt), "module: %s\ntime: %s\nstatus: %s\n",
		     module, ts, status);
	if (reason)
		n += snprintf(fmt + n, sizeof(fmt) - n, "reason: %.1024s\n", reason);
	if (r->dropped)
		n += snprintf(fmt + n, sizeof(fmt) - n,
			      "dropped: %llu lines before this record\n",
			      (unsigned long long)r->dropped);
	n += snprintf(fmt + n, sizeof(fmt) - n, "\n");
	/* module fits in a path and reason is capped: n < sizeof(fmt). */
	err = write_all(fd, fmt, (size_t)n);
	tail_start(r, &it, fmt);
	while (!err && iter_next(r, &it, &l))
		err = write_all(fd, fmt, te_logline_format(&l, fmt, sizeof(fmt)));
	return err;
}

static void dir_sync(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* "<module>-<digit>...": module "a" must not claim "ab-...". */
static bool crash_name_match(const char *name, const char *module, size_t mlen)
{
	size_t n = strlen(name);

	return strncmp(name, module, mlen) == 0 && name[mlen] == '-' &&
	       name[mlen + 1] >= '0' && name[mlen + 1] <= '9' && n > 6 &&
	       strcmp(name + n - 6, ".crash") == 0;
}

/* Counts module's records; oldest gets the lexically (= time) smallest. */
static unsigned crash_scan(const char *dir, const char *module, char *oldest,
			   size_t cap)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t mlen = strlen(module);
	unsigned n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		if (!crash_name_match(e->d_name, module, mlen))
			continue;
		if (n++ == 0 || strcmp(e->d_name, oldest) < 0)
			snprintf(oldest, cap, "%s", e->d_name);
	}
	closedir(d);
	return n;
}

static void crash_prune(const char *dir, const char *module)
{
	char oldest[NAME_MAX + 1], path[PATH_MAX + NAME_MAX + 2];

	while (crash_scan(dir, module, oldest, sizeof(oldest)) > TE_CRASH_KEEP) {
		snprintf(path, sizeof(path), "%s/%s", dir, oldest);
		if (unlink(path) < 0)
			return;
	}
}

int te_logring_crash_record(const struct te_logring *r, const char *dir,
			    const char *module, int wait_status,
			    const char *reason, uint64_t now_ms, char *path,
			    size_t cap)
{
	char tmp[PATH_MAX], final[PATH_MAX], stamp[48];
	int fd, err, n;

	if (!module[0] || module[0] == '.' || strchr(module, '/'))
		return -EINVAL;
	err = te_mkdir_p(dir, 0700, 0700);
	if (err)
		return err;
	te_time_iso(now_ms, true, stamp, sizeof(stamp));
	n = snprintf(final, sizeof(final), "%s/%s-%s.crash", dir, module, stamp);
	if (n < 0 || (size_t)n >= sizeof(final) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, module) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	err = crash_write(r, fd, module, wait_status, reason, now_ms);
	if (!err && fsync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && rename(tmp, final) < 0)
		err = -errno;
	if (err) {
		unlink(tmp);
		return err;
	}
	dir_sync(dir);
	crash_prune(dir, module);
	if (path && cap)
		snprintf(path, cap, "%s", final);
	return 0;
}
