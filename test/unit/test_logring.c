#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "agent/logring.h"
#include "core/err.h"
#include "tap.h"

/* Record header size in logring.c (struct rec_hdr); only used for bounds. */
#define REC_HDR 24
#define T0 1764000000123ULL /* 2025-11-24T16:00:00.123Z */

static struct te_logring r;

static size_t feeds(int stream, const char *s)
{
	return te_logring_feed(&r, stream, s, strlen(s), T0);
}

/* Text of line seq as a string, or "(none)". */
static const char *text_of(uint64_t seq)
{
	static char buf[TE_LOG_LINE_MAX + 1];
	struct te_logline l;

	if (!te_logring_get(&r, seq, &l) || l.seq != seq)
		return "(none)";
	memcpy(buf, l.text, l.len);
	buf[l.len] = '\0';
	return buf;
}

static void test_split(void)
{
	struct te_logline l;

	te_logring_init(&r, 4096);
	TAP_EQ_INT(feeds(1, "hel"), 0, "no line before its newline");
	TAP_EQ_INT(feeds(1, "lo\nwor"), 1, "one line completed");
	TAP_EQ_INT(feeds(1, "ld\n"), 1, "second line completed");
	TAP_EQ_STR(text_of(1), "hello", "line split over feeds joined");
	TAP_EQ_STR(text_of(2), "world", "second line joined");
	TAP_OK(te_logring_get(&r, 0, &l) && l.seq == 1 && l.stream == 1 && l.level == -1 &&
	       l.time_ms == T0, "get(0) is the oldest, stdout, no level");

	feeds(1, "out-");
	feeds(2, "err-");
	feeds(1, "a\n");
	feeds(2, "b\n");
	TAP_EQ_STR(text_of(3), "out-a", "stdout partial independent of stderr");
	TAP_EQ_STR(text_of(4), "err-b", "stderr partial independent of stdout");
	TAP_OK(te_logring_get(&r, 4, &l) && l.stream == 2, "stderr line has stream 2");

	feeds(1, "crlf\r\n");
	TAP_EQ_STR(text_of(5), "crlf", "\\r\\n stripped");
	feeds(1, "split\r");
	feeds(1, "\n");
	TAP_EQ_STR(text_of(6), "split", "\\r then \\n in the next feed stripped");
	TAP_EQ_INT(feeds(1, "\n"), 1, "empty line counted");
	TAP_OK(te_logring_get(&r, 7, &l) && l.seq == 7 && l.len == 0, "empty line stored");

	feeds(2, "<3>boom\n");
	TAP_OK(te_logring_get(&r, 8, &l) && l.level == 3, "<3> gives level 3");
	TAP_EQ_STR(text_of(8), "boom", "level prefix removed");
	feeds(1, "<8>x\n<a>x\n<3x\n<7>\n");
	TAP_OK(te_logring_get(&r, 9, &l) && l.level == -1, "<8> not a level");
	TAP_EQ_STR(text_of(9), "<8>x", "<8> kept in text");
	TAP_EQ_STR(text_of(10), "<a>x", "<a> kept in text");
	TAP_EQ_STR(text_of(11), "<3x", "<3 without > kept");
	TAP_OK(te_logring_get(&r, 12, &l) && l.level == 7 && l.len == 0, "<7> alone: level 7, empty");
	TAP_EQ_INT(feeds(1, "a\x01" "b\tc\nd\ne"), 2, "feed returns the lines stored");
	TAP_EQ_STR(text_of(13), "a\x01" "b\tc", "control characters kept in the ring");
	TAP_EQ_INT(feeds(3, "bad\n"), 0, "stream 3 ignored");
	TAP_EQ_INT(te_logring_count(&r), 14, "count");
	te_logring_free(&r);
}

/* Every held line in order: seqs contiguous from first_seq. */
static int check_contiguous(void)
{
	struct te_logline l;
	uint64_t want = r.first_seq, from = 0;

	while (te_logring_get(&r, from, &l)) {
		if (l.seq != want)
			return 0;
		from = ++want;
	}
	return want == r.next_seq;
}

static void test_evict(void)
{
	char line[64];
	int bad_newest = 0, bad_contig = 0, bad_count = 0;
	struct te_logline l;

	te_logring_init(&r, 4096);
	for (unsigned i = 1; i <= 2000; i++) {
		snprintf(line, sizeof(line), "line %05u %.*s\n", i, (int)(i % 37), "abcdefghijklmnopqrstuvwxyz0123456789x");
		feeds(i % 2 + 1, line);
		line[strlen(line) - 1] = '\0';
		bad_newest += strcmp(text_of(i), line) != 0;
		bad_contig += !check_contiguous();
		bad_count += te_logring_count(&r) != r.next_seq - r.first_seq ||
			     r.dropped != r.first_seq - 1;
	}
	TAP_EQ_INT(bad_newest, 0, "newest line always retrievable");
	TAP_EQ_INT(bad_contig, 0, "seqs contiguous from first_seq to next_seq");
	TAP_EQ_INT(bad_count, 0, "count and dropped consistent");
	TAP_OK(r.dropped > 1800, "old lines evicted (%llu)", (unsigned long long)r.dropped);
	TAP_EQ_STR(text_of(1), "(none)", "line 1 evicted");
	TAP_OK(te_logring_get(&r, 1, &l) && l.seq == r.first_seq,
	       "get(evicted) resumes at the oldest held");
	TAP_OK(!te_logring_get(&r, r.next_seq, &l), "get(next_seq) finds nothing");
	te_logring_free(&r);
}

static uint64_t rng = 88172645463325252ULL;

static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

#define MODEL_N 6000
#define MODEL_LEN 300
static char model[MODEL_N + 1][MODEL_LEN + 1];

/* Held lines equal the newest lines of the model; nothing evicted that a
 * ring of this size must hold (padding wastes at most one record). */
static int model_ok(uint64_t newest)
{
	size_t held = 0;
	uint64_t s;

	if (r.next_seq != newest + 1)
		return 0;
	for (s = r.first_seq; s <= newest; s++) {
		if (strcmp(text_of(s), model[s]) != 0)
			return 0;
		held += REC_HDR + strlen(model[s]);
	}
	if (held > r.cap)
		return 0;
	if (r.first_seq > 1 &&
	    held + REC_HDR + strlen(model[r.first_seq - 1]) <= r.cap - 2 * (REC_HDR + MODEL_LEN))
		return 0;
	return 1;
}

/* te_logring_iter visits first_seq .. next_seq - 1, texts as the model. */
static int iter_ok(void)
{
	struct te_logring_iter it;
	struct te_logline l;
	uint64_t want = r.first_seq;

	te_logring_iter_init(&r, &it);
	while (te_logring_iter_next(&r, &it, &l)) {
		if (l.seq != want || l.len != strlen(model[want]) ||
		    memcmp(l.text, model[want], l.len))
			return 0;
		want++;
	}
	return want == r.next_seq;
}

static void test_model(void)
{
	char buf[MODEL_LEN + 2];
	struct te_logline l;
	uint64_t follow = 0;
	int bad = 0, bad_follow = 0, bad_iter = 0, wrapped = 0;
	size_t prev_tail = 0;

	te_logring_init(&r, 4096 + 123);
	for (unsigned i = 1; i <= MODEL_N; i++) {
		unsigned len = rnd(8) == 0 ? rnd(MODEL_LEN + 1) : rnd(60);

		for (unsigned k = 0; k < len; k++)
			model[i][k] = (char)('a' + rnd(26));
		model[i][len] = '\0';
		memcpy(buf, model[i], len);
		buf[len] = '\n';
		te_logring_feed(&r, 1, buf, len + 1, T0 + i);
		bad += !model_ok(i);
		wrapped += r.tail < prev_tail;
		prev_tail = r.tail;
		if (rnd(20) != 0)
			continue;
		/* A follower (logs -f) that reads now and then. */
		uint64_t want = follow + 1 < r.first_seq ? r.first_seq : follow + 1;
		while (te_logring_get(&r, follow + 1, &l)) {
			bad_follow += l.seq != want++;
			follow = l.seq;
		}
		bad_follow += follow != r.next_seq - 1;
		bad_iter += !iter_ok();
	}
	TAP_EQ_INT(bad, 0, "random lines: ring holds exactly the newest lines that fit");
	TAP_EQ_INT(bad_follow, 0, "follower sees every held line once, in order");
	TAP_EQ_INT(bad_iter, 0, "the iterator walks exactly the held lines, oldest first");
	TAP_OK(wrapped > 50, "wrap-around exercised (%d times)", wrapped);
	te_logring_free(&r);
}

static void test_long(void)
{
	static char big[10001];
	struct te_logline l;

	te_logring_init(&r, 64 * 1024);
	memset(big, 'x', 10000);
	big[10000] = '\n';
	TAP_EQ_INT(te_logring_feed(&r, 1, big, 10001, T0), 3, "10000-byte line cut in 3 pieces");
	TAP_OK(te_logring_get(&r, 1, &l) && l.len == TE_LOG_LINE_MAX, "piece 1 full");
	TAP_OK(te_logring_get(&r, 2, &l) && l.len == TE_LOG_LINE_MAX, "piece 2 full");
	TAP_OK(te_logring_get(&r, 3, &l) && l.len == 10000 - 2 * TE_LOG_LINE_MAX, "piece 3 the rest");
	TAP_EQ_INT(te_logring_feed(&r, 1, big + 10000 - TE_LOG_LINE_MAX, TE_LOG_LINE_MAX + 1, T0), 1,
		   "exactly TE_LOG_LINE_MAX bytes: one line");
	TAP_EQ_INT(te_logring_feed(&r, 2, big, TE_LOG_LINE_MAX, T0), 0, "full partial waits");
	TAP_EQ_INT(feeds(2, "\n"), 1, "its newline makes one line");
	TAP_OK(te_logring_get(&r, 5, &l) && l.len == TE_LOG_LINE_MAX && l.stream == 2,
	       "full partial stored whole");
	feeds(2, "x");
	TAP_OK(te_logring_get(&r, 5, &l) && l.seq == 5 && te_logring_count(&r) == 5,
	       "no empty piece after a full line");
	te_logring_free(&r);

	te_logring_init(&r, 4096);
	TAP_EQ_INT(te_logring_feed(&r, 1, big + 10000 - TE_LOG_LINE_MAX,
				   TE_LOG_LINE_MAX + 1, T0), 1, "max line in a 4096 ring");
	TAP_OK(te_logring_get(&r, 1, &l) && l.len < TE_LOG_LINE_MAX && l.len > 4000 &&
	       l.text[0] == 'x' && l.text[l.len - 1] == 'x', "cut to fit the ring (%u)", l.len);
	feeds(1, "small\n");
	TAP_EQ_STR(text_of(2), "small", "next line evicts it");
	TAP_OK(te_logring_count(&r) == 1 && r.dropped == 1, "one held, one dropped");
	te_logring_free(&r);

	/* Each line evicts the previous one and empties the ring mid-buffer. */
	te_logring_init(&r, 4096);
	te_logring_feed(&r, 1, big + 10000 - 2000, 2001, T0);
	te_logring_feed(&r, 1, big + 10000 - 2500, 2501, T0);
	TAP_OK(te_logring_count(&r) == 1 && te_logring_get(&r, 0, &l) && l.seq == 2 &&
	       l.len == 2500, "line bigger than the free space empties the ring");
	te_logring_feed(&r, 1, big + 10000 - 3000, 3001, T0);
	TAP_OK(te_logring_count(&r) == 1 && te_logring_get(&r, 0, &l) && l.seq == 3 &&
	       l.len == 3000 && r.used <= r.cap, "and again");
	te_logring_free(&r);
	TAP_EQ_INT(te_logring_init(&r, 100), -EINVAL, "ring below 4096 refused");
	te_logring_free(&r);
}

static void test_flush(void)
{
	te_logring_init(&r, 4096);
	feeds(1, "done\nno newline");
	feeds(2, "err tail\r");
	TAP_EQ_INT(te_logring_count(&r), 1, "partials not stored yet");
	te_logring_flush(&r, T0);
	TAP_EQ_INT(te_logring_count(&r), 3, "flush stores both partials");
	TAP_EQ_STR(text_of(2), "no newline", "stdout partial");
	TAP_EQ_STR(text_of(3), "err tail", "stderr partial");
	te_logring_flush(&r, T0);
	TAP_EQ_INT(te_logring_count(&r), 3, "second flush stores nothing");
	feeds(1, "fresh\n");
	TAP_EQ_STR(text_of(4), "fresh", "partial emptied by flush");
	te_logring_free(&r);
}

static void test_format(void)
{
	struct te_logline l = { .time_ms = T0, .seq = 1, .stream = 1, .level = 6,
				.text = "hello", .len = 5 };
	char buf[128];

	TAP_EQ_INT(te_logline_format(&l, buf, sizeof(buf)), 42, "format length");
	TAP_EQ_STR(buf, "2025-11-24T16:00:00.123Z stdout <6> hello\n", "format with level");
	l = (struct te_logline){ .time_ms = 5, .stream = 2, .level = -1,
				 .text = "a\x01" "b\tc\x7f\x1b", .len = 7 };
	te_logline_format(&l, buf, sizeof(buf));
	TAP_EQ_STR(buf, "1970-01-01T00:00:00.005Z stderr a\\x01b\tc\\x7f\\x1b\n",
		   "stderr, no level, control characters escaped, tab kept");
	TAP_EQ_INT(te_logline_format(&l, buf, 10), 9, "truncated to cap-1");
	TAP_EQ_STR(buf, "1970-01-0", "truncated and NUL-terminated");
}

static size_t slurp(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? 0 : read(fd, buf, cap - 1);

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? (size_t)n : 0;
}

static unsigned count_prefix(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;

	while (d && (e = readdir(d)))
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	if (d)
		closedir(d);
	return n;
}

static int exists(const char *dir, const char *name)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return stat(p, &st) == 0;
}

static char buf[256 * 1024];

static void test_crash(const char *base)
{
	char dir[256], path[512], want[512], line[64];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/x/y/crash", base);
	te_logring_init(&r, 64 * 1024);
	for (unsigned i = 0; i < 1000; i++) {
		snprintf(line, sizeof(line), "line %04u the quick brown fox\n", i);
		feeds(1 + i % 2, line);
	}
	TAP_EQ_INT(te_logring_crash_record(&r, dir, "sensor", 3 << 8, "out of memory",
					   T0, path, sizeof(path)), 0, "crash record written");
	snprintf(want, sizeof(want), "%s/sensor-20251124T160000123Z.crash", dir);
	TAP_EQ_STR(path, want, "crash record name: module-UTC.crash");
	size_t n = slurp(path, buf, sizeof(buf));
	TAP_OK(strncmp(buf, "module: sensor\ntime: 2025-11-24T16:00:00.123Z\n"
		       "status: exited 3\nreason: out of memory\n\n", 82) == 0,
	       "header lines, exit code, reason");
	const char *body = strstr(buf, "\n\n") + 2;
	TAP_OK(strstr(body, "stderr line 0999 the quick brown fox\n") != NULL, "tail has the last line");
	TAP_OK(strstr(body, "line 0000 ") == NULL && strstr(body, "line 0500 ") == NULL,
	       "tail does not have the first lines");
	size_t blen = n - (size_t)(body - buf);
	TAP_OK(blen <= TE_CRASH_TAIL && blen > TE_CRASH_TAIL - 100, "tail about 16 KiB (%zu)", blen);
	TAP_OK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "record mode 0600");
	TAP_OK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700, "dir created 0700");
	TAP_OK(!exists(dir, ".sensor.tmp"), "temp file renamed");
	te_logring_free(&r);

	te_logring_init(&r, 4096);
	for (unsigned i = 0; i < 300; i++)
		feeds(1, "some output line\n");
	TAP_EQ_INT(te_logring_crash_record(&r, dir, "k", 9, NULL, T0, NULL, 0), 0, "SIGKILL record");
	snprintf(want, sizeof(want), "%s/k-20251124T160000123Z.crash", dir);
	slurp(want, buf, sizeof(buf));
	snprintf(line, sizeof(line), "dropped: %llu lines before this record\n\n",
		 (unsigned long long)r.dropped);
	TAP_OK(strstr(buf, "status: killed by signal 9 (SIGKILL)\n") != NULL, "signal status text");
	TAP_OK(strstr(buf, "reason:") == NULL, "no reason line without reason");
	TAP_OK(r.dropped > 0 && strstr(buf, line) != NULL, "dropped count line");
	te_logring_crash_record(&r, dir, "u", 40, NULL, T0, NULL, 0);
	snprintf(want, sizeof(want), "%s/u-20251124T160000123Z.crash", dir);
	slurp(want, buf, sizeof(buf));
	TAP_OK(strstr(buf, "status: killed by signal 40\n") != NULL, "unnamed signal");
	TAP_EQ_INT(te_logring_crash_record(&r, dir, "../evil", 9, NULL, T0, NULL, 0), -EINVAL,
		   "module name with / refused");

	for (unsigned i = 0; i < 3; i++)
		te_logring_crash_record(&r, dir, "ab", 1 << 8, NULL, T0 + i * 1000, NULL, 0);
	for (unsigned i = 0; i < 12; i++)
		te_logring_crash_record(&r, dir, "a", 1 << 8, NULL, T0 + i * 1000, NULL, 0);
	TAP_EQ_INT(count_prefix(dir, "a-"), TE_CRASH_KEEP, "only TE_CRASH_KEEP records kept");
	TAP_EQ_INT(count_prefix(dir, "ab-"), 3, "module a does not prune module ab");
	TAP_OK(!exists(dir, "a-20251124T160000123Z.crash") &&
	       !exists(dir, "a-20251124T160001123Z.crash"), "the two oldest deleted");
	TAP_OK(exists(dir, "a-20251124T160002123Z.crash") &&
	       exists(dir, "a-20251124T160011123Z.crash"), "the newest kept");
	te_logring_free(&r);
}

static void test_persist(const char *base)
{
	char path[256], p1[280], line[64];
	struct stat st;
	int too_big = 0;

	snprintf(path, sizeof(path), "%s/p.log", base);
	te_logring_init(&r, 4096);
	TAP_EQ_INT(te_logring_persist(&r, "/nonexistent/dir/p.log", 1000, 3), -ENOENT,
		   "persist to a missing dir fails");
	TAP_EQ_INT(te_logring_persist(&r, path, 1000, 3), 0, "persist");
	for (unsigned i = 0; i < 200; i++) {
		snprintf(line, sizeof(line), "persisted %04u\n", i);
		feeds(1, line);
		too_big += stat(path, &st) == 0 && st.st_size > 1000;
	}
	TAP_EQ_INT(too_big, 0, "file never above max_bytes");
	snprintf(p1, sizeof(p1), "%s.1", path);
	TAP_OK(stat(p1, &st) == 0 && st.st_size > 900 && (st.st_mode & 0777) == 0600,
	       "rotated into path.1");
	TAP_OK(exists(base, "p.log.2") && !exists(base, "p.log.3"), "files bounded: path.1, path.2");
	slurp(path, buf, sizeof(buf));
	size_t n = strlen(buf);
	TAP_OK(n > 0 && strcmp(buf + n - 15, "persisted 0199\n") == 0, "newest line at the end");
	unsigned first;
	TAP_OK(sscanf(buf, "%*s stdout persisted %u", &first) == 1, "first line parsed");
	slurp(p1, buf, sizeof(buf));
	snprintf(line, sizeof(line), "persisted %04u\n", first - 1);
	n = strlen(buf);
	TAP_OK(n > 15 && strcmp(buf + n - 15, line) == 0, "path.1 ends right before path starts");

	snprintf(path, sizeof(path), "%s/one.log", base);
	te_logring_persist(&r, path, 500, 1);
	for (unsigned i = 0; i < 100; i++)
		feeds(2, "one file only\n");
	TAP_OK(stat(path, &st) == 0 && st.st_size <= 500 && st.st_size > 0 &&
	       !exists(base, "one.log.1"), "one file: starts over");
	te_logring_free(&r);
	TAP_EQ_INT(r.persist_fd, -1, "free closes the file");
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

int main(void)
{
	char base[] = "/tmp/test_logring.XXXXXX";

	if (!mkdtemp(base))
		return 2;
	test_split();
	test_evict();
	test_model();
	test_long();
	test_flush();
	test_format();
	test_crash(base);
	test_persist(base);
	nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
