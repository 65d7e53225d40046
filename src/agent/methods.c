/* The agent's built-in direct methods (methods.h): the method table, the
 * request readers, ping, RestartModule, GetTaskStatus, the task registry
 * and the since/until time parser. GetModuleLogs is in methods_logs.c. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/random.h>

#include "core/err.h"
#include "core/log.h"
#include "methods_int.h"
#include "supervisor.h"

/* ---- answers ------------------------------------------------------------ */

int te_mreq_bad(struct te_mreq *q, const char *fmt, ...)
{
	va_list ap;

	if (q->msg[0])
		return -1;
	va_start(ap, fmt);
	vsnprintf(q->msg, sizeof(q->msg), fmt, ap);
	va_end(ap);
	return -1;
}

/* {"message": msg} into *q->out; 500 with no body when out of memory. */
unsigned te_mreq_error(struct te_mreq *q, unsigned status)
{
	size_t cap = 6 * strlen(q->msg) + 32;
	char *buf = malloc(cap);
	struct te_jw w;

	if (!buf)
		return 500;
	te_jw_init(&w, buf, cap);
	te_jw_obj_open(&w);
	te_jw_kstr(&w, "message", q->msg);
	te_jw_obj_close(&w);
	te_jw_finish(&w); /* cap covers the worst escaping */
	*q->out = buf;
	*q->outlen = w.len;
	return status;
}

uint64_t te_mreq_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- request readers ---------------------------------------------------- */

int te_mreq_member(const struct te_json_doc *d, unsigned obj, const char *key)
{
	size_t n = strlen(key);

	if (d->tok[obj].type != TE_JSON_OBJECT)
		return -1;
	TE_JSON_FOREACH_MEMBER(d, obj, k, v) {
		const struct te_json_tok *t = &d->tok[k];

		if (t->end - t->start == n && !strncasecmp(d->text + t->start, key, n))
			return (int)v;
	}
	return -1;
}

int te_mreq_str(struct te_mreq *q, unsigned obj, const char *path,
		const char *key, char *buf, size_t cap, bool required)
{
	int t = te_mreq_member(q->doc, obj, key);
	int r;

	if (t < 0 && required)
		return te_mreq_bad(q, "%s%s: missing", path, key);
	if (t < 0)
		return 0;
	if (q->doc->tok[t].type != TE_JSON_STRING)
		return te_mreq_bad(q, "%s%s must be a string", path, key);
	r = te_json_str(q->doc, (unsigned)t, buf, cap, NULL);
	if (r == -TE_ENOSPACE)
		return te_mreq_bad(q, "%s%s must be at most %zu bytes", path, key, cap - 1);
	if (r < 0)
		return te_mreq_bad(q, "%s%s must not contain \\u0000", path, key);
	return 1;
}

static int digits_value(const char *s, int64_t max, int64_t *v)
{
	int64_t x = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || x > (max - (*s - '0')) / 10)
			return -1;
		x = x * 10 + (*s - '0');
	}
	*v = x;
	return 0;
}

int te_mreq_uint(struct te_mreq *q, unsigned obj, const char *path,
		 const char *key, int64_t max, int64_t *v)
{
	int t = te_mreq_member(q->doc, obj, key);
	char buf[24];

	if (t < 0)
		return 0;
	if (q->doc->tok[t].type == TE_JSON_STRING &&
	    te_json_str(q->doc, (unsigned)t, buf, sizeof(buf), NULL) == 0 &&
	    digits_value(buf, max, v) == 0)
		return 1;
	if (q->doc->tok[t].type == TE_JSON_NUMBER &&
	    te_json_int(q->doc, (unsigned)t, v) == 0 && *v >= 0 && *v <= max)
		return 1;
	return te_mreq_bad(q, "%s%s must be an integer from 0 to %lld", path, key,
			   (long long)max);
}

/* "1.0", "1.1", "1.0.0": System.Version's 2 to 4 parts, major 1. */
static bool schema_ok(const char *s)
{
	unsigned parts = 0;

	if (strncmp(s, "1.", 2))
		return false;
	for (s += 2; *s; parts++) {
		if (!isdigit((unsigned char)*s))
			return false;
		while (isdigit((unsigned char)*s))
			s++;
		if (*s == '.' && s[1])
			s++;
		else if (*s)
			return false;
	}
	return parts >= 1 && parts <= 3;
}

int te_mreq_root(struct te_mreq *q)
{
	char v[32];
	int r;

	if (!q->doc)
		return te_mreq_bad(q, "the request needs a payload: {\"schemaVersion\": \"1.0\", ...}");
	if (q->doc->tok[0].type != TE_JSON_OBJECT)
		return te_mreq_bad(q, "the payload must be a JSON object");
	r = te_mreq_str(q, 0, "", "schemaVersion", v, sizeof(v), true);
	if (r < 0)
		return r;
	if (!schema_ok(v))
		return te_mreq_bad(q, "schemaVersion: expected \"1.0\" (major version 1), got \"%s\"", v);
	return 0;
}

/* ---- ping, RestartModule ------------------------------------------------ */

static unsigned m_ping(struct te_mreq *q)
{
	return 200;
}

/* As edgeAgent: 500 when the module is not in the deployment or is not
 * meant to run (a restart would override its stopped status). A module
 * that failed or waits in backoff is restarted now. */
static unsigned m_restart(struct te_mreq *q)
{
	struct te_supervisor *sv = q->ag->sv;
	char id[TE_MODULE_NAME_MAX + 1];
	struct te_mod *md;
	int r;

	if (te_mreq_root(q) < 0 || te_mreq_str(q, 0, "", "id", id, sizeof(id), true) < 0)
		return te_mreq_error(q, 400);
	if (!id[0]) {
		te_mreq_bad(q, "id must not be empty");
		return te_mreq_error(q, 400);
	}
	md = te_sv_find(sv, id);
	if (!md) {
		te_mreq_bad(q, "Module %s not found in the current environment", id);
		return te_mreq_error(q, 500);
	}
	if (!md->want_running) {
		te_mreq_bad(q, "Module %s cannot be restarted since it is not running", id);
		return te_mreq_error(q, 500);
	}
	te_info("agent", "RestartModule: restarting %s", id);
	r = te_sv_restart(sv, id);
	if (r < 0) {
		te_mreq_bad(q, "Module %s: %s", id, te_strerror(r));
		return te_mreq_error(q, 500);
	}
	return 200;
}

/* ---- GetTaskStatus ------------------------------------------------------ */

static const char *const task_status_names[] = {
	"NotStarted", "Running", "Completed", "Failed", "Cancelled", "Unknown",
};

const char *te_task_status_name(enum te_task_status s)
{
	return (unsigned)s <= TE_TASK_UNKNOWN ? task_status_names[s] : "Unknown";
}

/* As edgeAgent: an unknown id is status Unknown (200), not an error. */
static unsigned m_task_status(struct te_mreq *q)
{
	const struct te_agent_task *t;
	char id[128], msg[320] = "";
	size_t cap = 6 * (sizeof(id) + sizeof(msg)) + 96;
	struct te_jw w;

	if (te_mreq_root(q) < 0 ||
	    te_mreq_str(q, 0, "", "correlationId", id, sizeof(id), true) < 0)
		return te_mreq_error(q, 400);
	t = te_agent_task_find(&q->ag->tasks, id);
	if (t && t->status == TE_TASK_FAILED)
		snprintf(msg, sizeof(msg), t->message[0] ? "Task %s failed because of error %s"
			 : "Task %s failed with no error", t->what, t->message);
	if (!(*q->out = malloc(cap)))
		return 500;
	te_jw_init(&w, *q->out, cap);
	te_jw_obj_open(&w);
	te_jw_kstr(&w, "status", te_task_status_name(t ? t->status : TE_TASK_UNKNOWN));
	te_jw_kstr(&w, "message", msg);
	te_jw_kstr(&w, "correlationId", id);
	te_jw_obj_close(&w);
	te_jw_finish(&w);
	*q->outlen = w.len;
	return 200;
}

/* ---- the method table --------------------------------------------------- */

/* ping ignores its payload, as edgeAgent's does. */
static const struct {
	const char *name;
	unsigned (*fn)(struct te_mreq *q);
	bool reads_payload;
} methods[] = {
	{ "ping", m_ping, false },
	{ "RestartModule", m_restart, true },
	{ "GetModuleLogs", te_method_get_logs, true },
	{ "GetTaskStatus", m_task_status, true },
};
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

/* The first JSON problem, as "payload:LINE:COL: message". */
static void diag_first(struct te_diag *d, const char *file, unsigned line,
		       unsigned col, const char *msg)
{
	te_mreq_bad(d->ctx, "payload:%u:%u: %s", line, col, msg);
}

static bool no_payload(const char *p, size_t n)
{
	while (n && isspace((unsigned char)*p))
		p++, n--;
	while (n && isspace((unsigned char)p[n - 1]))
		n--;
	return n == 0 || (n == 4 && !memcmp(p, "null", 4));
}

static unsigned unknown_method(struct te_mreq *q, const char *method)
{
	char list[128] = "";

	for (unsigned i = 0; i < NMETHODS; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			 i ? ", " : "", methods[i].name);
	te_mreq_bad(q, "Command '%.64s' not found. The supported commands are - %s",
		    method, list);
	return te_mreq_error(q, 400);
}

unsigned te_agent_method(struct te_agent *ag, const char *method,
			 const char *payload, size_t n, char **out,
			 size_t *outlen)
{
	static const struct te_json_limits lim = { TE_AGENT_REQUEST_MAX, 4096, 8 };
	struct te_mreq q = { .ag = ag, .out = out, .outlen = outlen };
	struct te_diag diag = { .emit = diag_first, .ctx = &q };
	struct te_json_doc doc = { 0 };
	unsigned i, status;

	*out = NULL;
	*outlen = 0;
	for (i = 0; i < NMETHODS && strcasecmp(method, methods[i].name); i++)
		;
	if (i == NMETHODS)
		return unknown_method(&q, method);
	if (methods[i].reads_payload && !no_payload(payload, n)) {
		if (te_json_parse(&doc, "payload", payload, n, &lim, &diag) < 0)
			return te_mreq_error(&q, 400);
		q.doc = &doc;
	}
	status = methods[i].fn(&q);
	te_json_free(&doc);
	if (status != 200 && q.msg[0])
		te_info("agent", "%s: %u %s", methods[i].name, status, q.msg);
	return status;
}

void te_agent_init(struct te_agent *ag, struct te_supervisor *sv)
{
	memset(ag, 0, sizeof(*ag));
	ag->sv = sv;
}

/* ---- the task registry -------------------------------------------------- */

/* A random (version 4) UUID, lower case. */
static int uuid_v4(char out[TE_TASK_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	char *p = out;

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -EIO;
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	for (unsigned i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[b[i] >> 4];
		*p++ = hex[b[i] & 15];
	}
	*p = '\0';
	return 0;
}

/* A free slot, else the task that finished first; NULL if all run. */
static struct te_agent_task *task_slot(struct te_agent_tasks *t)
{
	struct te_agent_task *old = NULL;

	for (unsigned i = 0; i < TE_AGENT_TASKS; i++) {
		struct te_agent_task *k = &t->t[i];

		if (!k->id[0])
			return k;
		if (k->done_seq && (!old || k->done_seq < old->done_seq))
			old = k;
	}
	return old;
}

const char *te_agent_task_begin(struct te_agent_tasks *t, const char *what)
{
	struct te_agent_task *k = task_slot(t);
	char id[TE_TASK_ID_LEN + 1];

	if (!k || uuid_v4(id) < 0)
		return NULL;
	memset(k, 0, sizeof(*k));
	memcpy(k->id, id, sizeof(id));
	snprintf(k->what, sizeof(k->what), "%s", what ? what : "");
	k->status = TE_TASK_RUNNING;
	return k->id;
}

const struct te_agent_task *te_agent_task_find(const struct te_agent_tasks *t,
					       const char *id)
{
	for (unsigned i = 0; i < TE_AGENT_TASKS; i++)
		if (t->t[i].id[0] && !strcasecmp(t->t[i].id, id))
			return &t->t[i];
	return NULL;
}

static int task_finish(struct te_agent_tasks *t, const char *id,
		       enum te_task_status s, const char *message)
{
	struct te_agent_task *k = (struct te_agent_task *)te_agent_task_find(t, id);

	if (!k)
		return -ENOENT;
	if (k->done_seq)
		return -EALREADY;
	k->status = s;
	k->done_seq = ++t->next_done;
	snprintf(k->message, sizeof(k->message), "%s", message ? message : "");
	return 0;
}

int te_agent_task_end(struct te_agent_tasks *t, const char *id, bool ok,
		      const char *message)
{
	return task_finish(t, id, ok ? TE_TASK_COMPLETED : TE_TASK_FAILED, message);
}

int te_agent_task_cancel(struct te_agent_tasks *t, const char *id)
{
	return task_finish(t, id, TE_TASK_CANCELLED, NULL);
}

/* ---- since / until ------------------------------------------------------ */

#define TIME_MAX_SECS 253402300799LL      /* 9999-12-31T23:59:59Z */
#define DURATION_MAX_SECS (100LL * 366 * 86400)

/* Digits s[0..n) as a number; -1 if any is not a digit. */
static int64_t fixed_digits(const char *s, size_t n)
{
	int64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar:
 * count years from March so that the leap day ends a year. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	int64_t era, yoe, doy;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

static int days_in_month(int64_t y, int64_t m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

/* "YYYY-MM-DDTHH:MM:SS[.fff...](Z|+HH:MM|-HH:MM)" -> ms (signed). */
static int parse_rfc3339(const char *s, size_t n, int64_t *ms)
{
	int64_t y, mo, d, h, mi, sec, frac = 0, off = 0, scale = 100;
	size_t i = 19;

	if (n < 20 || s[4] != '-' || s[7] != '-' || !strchr("Tt ", s[10]) ||
	    s[13] != ':' || s[16] != ':')
		return -1;
	y = fixed_digits(s, 4), mo = fixed_digits(s + 5, 2), d = fixed_digits(s + 8, 2);
	h = fixed_digits(s + 11, 2), mi = fixed_digits(s + 14, 2), sec = fixed_digits(s + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
	    h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60)
		return -1;
	if (s[i] == '.') {
		if (++i == n || !isdigit((unsigned char)s[i]))
			return -1;
		for (; i < n && isdigit((unsigned char)s[i]); i++, scale /= 10)
			frac += (s[i] - '0') * scale;
	}
	if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z')) {
		off = 0;
	} else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
		int64_t oh = fixed_digits(s + i + 1, 2), om = fixed_digits(s + i + 4, 2);

		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return -1;
		off = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
	} else {
		return -1;
	}
	*ms = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) - off) * 1000 + frac;
	return 0;
}

static const struct {
	const char *name;
	int64_t secs;
} duration_units[] = {
	{ "s", 1 }, { "sec", 1 }, { "secs", 1 }, { "second", 1 }, { "seconds", 1 },
	{ "m", 60 }, { "min", 60 }, { "mins", 60 }, { "minute", 60 }, { "minutes", 60 },
	{ "h", 3600 }, { "hr", 3600 }, { "hrs", 3600 }, { "hour", 3600 }, { "hours", 3600 },
	{ "d", 86400 }, { "day", 86400 }, { "days", 86400 },
	{ "w", 604800 }, { "week", 604800 }, { "weeks", 604800 },
};

static int64_t unit_secs(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++)
		if (strlen(duration_units[i].name) == n && !memcmp(duration_units[i].name, s, n))
			return duration_units[i].secs;
	return -1;
}

/* "1 day", "2 hours 30 minutes", "90 m", "1d2h": number-unit pairs, the
 * spaces optional (humantime's grammar, which Azure's since/until use). */
static int parse_duration(const char *s, size_t n, int64_t *secs)
{
	size_t i = 0, u;
	int64_t total = 0, v, us;

	while (i < n) {
		for (u = i, v = 0; i < n && isdigit((unsigned char)s[i]); i++) {
			v = v * 10 + (s[i] - '0');
			if (v > DURATION_MAX_SECS)
				return -1;
		}
		if (i == u)
			return -1;
		while (i < n && s[i] == ' ')
			i++;
		for (u = i; i < n && isalpha((unsigned char)s[i]); i++)
			;
		if ((us = unit_secs(s + u, i - u)) < 0)
			return -1;
		total += v * us;
		if (total > DURATION_MAX_SECS)
			return -1;
		while (i < n && s[i] == ' ')
			i++;
	}
	*secs = total;
	return 0;
}

int te_agent_parse_time(const char *s, uint64_t now_ms, uint64_t *ms)
{
	size_t n = strlen(s);
	int64_t v;

	while (n && *s == ' ')
		s++, n--;
	while (n && s[n - 1] == ' ')
		n--;
	if (n == 0)
		return -TE_EINVALID;
	if (n <= 12 && (v = fixed_digits(s, n)) >= 0) {
		if (v > TIME_MAX_SECS)
			return -TE_EINVALID;
		*ms = (uint64_t)v * 1000;
		return 0;
	}
	if (parse_rfc3339(s, n, &v) == 0) {
		*ms = v > 0 ? (uint64_t)v : 0;
		return 0;
	}
	if (parse_duration(s, n, &v) == 0) {
		*ms = (uint64_t)v * 1000 < now_ms ? now_ms - (uint64_t)v * 1000 : 0;
		return 0;
	}
	return -TE_EINVALID;
}
