/* Module logs: a per-module RAM ring of lines, and crash records.
 *
 * Each module's stdout and stderr are read by the daemon (non-blocking
 * pipes) and fed here. Lines are split on '\n'; a line longer than
 * TE_LOG_LINE_MAX is cut into pieces. Each stored line carries its time
 * (wall clock, ms since the epoch), its stream (1 = stdout, 2 = stderr) and
 * its syslog level when the line starts with "<N>" (N = 0..7, Azure's
 * recommended module log format; the prefix is removed), else -1. The ring
 * holds whole lines; when full, the oldest lines are dropped (counted).
 * Memory is allocated once, at te_logring_init; appends never allocate.
 * No flash writes, unless te_logring_persist is configured.
 *
 * Crash records: when a module dies, te_logring_crash_record writes
 * <dir>/<module>-<UTC time>.crash with the exit status and the last 16 KiB
 * of its output, keeping the newest TE_CRASH_KEEP records per module — a
 * flight recorder that survives reboots. */
#ifndef TE_LOGRING_H
#define TE_LOGRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TE_LOG_LINE_MAX 4096
#define TE_CRASH_TAIL (16 * 1024)
#define TE_CRASH_KEEP 10

struct te_logline {
	uint64_t time_ms;  /* wall clock at receipt */
	uint64_t seq;      /* 1, 2, ... per ring, never reused */
	int8_t stream;     /* 1 stdout, 2 stderr */
	int8_t level;      /* 0..7 from a "<N>" prefix, or -1 */
	const char *text;  /* not NUL-terminated inside the ring: use len */
	uint32_t len;
};

struct te_logring {
	char *buf;          /* cap bytes, power of two not required */
	size_t cap;
	size_t head, tail;  /* byte offsets of the oldest / next record */
	size_t used;
	uint64_t next_seq;  /* seq of the next line appended */
	uint64_t first_seq; /* seq of the oldest line still held */
	uint64_t dropped;   /* lines evicted to make room */
	/* Partial line per stream, waiting for its '\n'. */
	char partial[2][TE_LOG_LINE_MAX];
	size_t partial_len[2];
	/* Optional persistence: rotated files <path>, <path>.1, ... */
	char persist_path[4096];
	size_t persist_max_bytes;
	unsigned persist_files;
	int persist_fd;
	size_t persist_size;
};

/* Allocate a ring of cap bytes (>= 4096). -ENOMEM. */
int te_logring_init(struct te_logring *r, size_t cap);
void te_logring_free(struct te_logring *r);

/* Also append every line to path, rotating at max_bytes into
 * path.1 .. path.<files-1>. 0 or -errno (cannot open). */
int te_logring_persist(struct te_logring *r, const char *path,
		       size_t max_bytes, unsigned files);

/* Feed bytes read from stream 1 or 2; complete lines are stored, a partial
 * line waits for the rest (or is flushed by te_logring_flush). Returns the
 * number of lines stored. */
unsigned te_logring_feed(struct te_logring *r, int stream, const char *data,
			 size_t n, uint64_t now_ms);

/* Store any partial lines (the module exited without a final '\n'). */
void te_logring_flush(struct te_logring *r, uint64_t now_ms);

/* Iterate: the first line with seq >= from_seq (0 = oldest held). Returns
 * false when there is none. For following (logs -f): remember the last
 * seq + 1 and call again later. Lines may be evicted between calls; the
 * iteration then resumes at the oldest line still held. */
bool te_logring_get(const struct te_logring *r, uint64_t from_seq,
		    struct te_logline *out);

/* Walk the held lines oldest first, without the O(lines) seek of
 * te_logring_get per line. The cursor is valid only until the next feed or
 * flush (an append may evict the line it points at): walk within one turn
 * of the event loop. */
struct te_logring_iter {
	size_t off, left;
};

void te_logring_iter_init(const struct te_logring *r, struct te_logring_iter *it);
bool te_logring_iter_next(const struct te_logring *r, struct te_logring_iter *it,
			  struct te_logline *out);

/* Number of lines held. */
unsigned te_logring_count(const struct te_logring *r);

/* Format one line as "2026-11-24T12:00:00.123Z stdout <6> text\n" (level
 * part only when level >= 0) into buf; returns the length (truncated to
 * cap-1, always NUL-terminated). */
size_t te_logline_format(const struct te_logline *l, char *buf, size_t cap);

/* Write a crash record for module into dir (created 0700 if missing):
 * header lines "module: NAME", "time: ISO-8601 UTC", "status: exited 3" or
 * "status: killed by signal 9 (SIGKILL)" plus reason (may be NULL, e.g.
 * "out of memory"), a blank line, then the formatted lines of the last
 * TE_CRASH_TAIL bytes of output. Written to a temp file, fsync'd, renamed.
 * Older records of that module beyond TE_CRASH_KEEP are deleted. On success
 * path (may be NULL) gets the file's path. 0 or -errno. */
int te_logring_crash_record(const struct te_logring *r, const char *dir,
			    const char *module, int wait_status,
			    const char *reason, uint64_t now_ms, char *path,
			    size_t cap);

#endif
