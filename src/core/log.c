#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

#define LOG_LINE_MAX 1024

static enum te_log_level log_level = TE_LOG_INFO;
static bool log_syslog;
static int log_fd = 2;

static const char *const level_names[] = { "error", "warn", "info", "debug" };
static const char *const level_tags[] = { "ERROR", "WARN", "INFO", "DEBUG" };
static const int level_prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

void te_log_set_level(enum te_log_level level) { log_level = level; }
enum te_log_level te_log_get_level(void) { return log_level; }
void te_log_set_fd(int fd) { log_fd = fd; }

const char *te_log_level_name(enum te_log_level level)
{
	return level <= TE_LOG_DEBUG ? level_names[level] : "?";
}

int te_log_level_parse(const char *s, enum te_log_level *out)
{
	for (unsigned i = 0; i <= TE_LOG_DEBUG; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return -TE_EINVALID;
}

void te_log_set_syslog(bool on)
{
	if (on && !log_syslog)
		openlog("tinyedge", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	else if (!on && log_syslog)
		closelog();
	log_syslog = on;
}

/* Escape control characters in place-copy so one event stays one line. */
static size_t log_sanitize(char *dst, size_t cap, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (; *src && n + 4 < cap; src++) {
		unsigned char c = (unsigned char)*src;

		if (c >= 0x20 && c != 0x7f) {
			dst[n++] = (char)c;
		} else if (c == '\n') {
			dst[n++] = '\\';
			dst[n++] = 'n';
		} else {
			dst[n++] = '\\';
			dst[n++] = 'x';
			dst[n++] = hex[c >> 4];
			dst[n++] = hex[c & 15];
		}
	}
	dst[n] = '\0';
	return n;
}

static void log_write(const char *buf, size_t len)
{
	if (log_fd < 0)
		return;
	while (len > 0) {
		ssize_t w = write(log_fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		buf += w;
		len -= (size_t)w;
	}
}

void te_time_iso(uint64_t ms, bool compact, char *buf, size_t cap)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm))
		memset(&tm, 0, sizeof(tm));
	snprintf(buf, cap, compact ? "%04d%02d%02dT%02d%02d%02d%03uZ" :
		 "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned)(ms % 1000));
}

void te_log(enum te_log_level level, const char *subsys, const char *fmt, ...)
{
	char raw[LOG_LINE_MAX], msg[LOG_LINE_MAX], line[LOG_LINE_MAX + 128];
	int saved = errno;
	va_list ap;
	int n;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	log_sanitize(msg, sizeof(msg), raw);
	n = snprintf(line, sizeof(line), "tinyedge[%d]: %s %s: %s\n",
		     (int)getpid(), level_tags[level], subsys, msg);
	if (n >= (int)sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	log_write(line, (size_t)n);
	if (log_syslog)
		syslog(level_prio[level], "%s: %s", subsys, msg);
	errno = saved;
}
