/* Logging: one line per event, "tinyedge[pid]: LEVEL subsystem: message",
 * written with a single write(2) to stderr (procd and sysvinit capture it)
 * and, when enabled, to syslog. Control characters in messages are escaped
 * so that one event is always one line. */
#ifndef TE_LOG_H
#define TE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum te_log_level { TE_LOG_ERROR, TE_LOG_WARN, TE_LOG_INFO, TE_LOG_DEBUG };

void te_log_set_level(enum te_log_level level);
enum te_log_level te_log_get_level(void);
/* "error", "warn", "info", "debug" -> level; -TE_EINVALID otherwise. */
int te_log_level_parse(const char *s, enum te_log_level *out);
const char *te_log_level_name(enum te_log_level level);
/* Also send every line to syslog (daemon facility). */
void te_log_set_syslog(bool on);
/* Where lines go (default 2; -1: nowhere but syslog); tests point it at a
 * pipe. */
void te_log_set_fd(int fd);

/* Wall-clock ms since the epoch as "2026-11-24T12:00:00.123Z", or
 * "20261124T120000123Z" when compact (sortable file names). */
void te_time_iso(uint64_t ms, bool compact, char *buf, size_t cap);

void te_log(enum te_log_level level, const char *subsys, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define te_error(sub, ...) te_log(TE_LOG_ERROR, sub, __VA_ARGS__)
#define te_warn(sub, ...) te_log(TE_LOG_WARN, sub, __VA_ARGS__)
#define te_info(sub, ...) te_log(TE_LOG_INFO, sub, __VA_ARGS__)
#define te_debug(sub, ...) te_log(TE_LOG_DEBUG, sub, __VA_ARGS__)

#endif
