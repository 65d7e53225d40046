/* GetModuleLogs (methods.h, docs/methods.md).
 *
 * A request item selects modules by id, a POSIX extended regular
 * expression matched anywhere in the name without case (edgeAgent uses
 * .NET's Regex.IsMatch with IgnoreCase; "all" is every module); a module
 * takes the filter of the first item that selects it. The filter keeps the
 * lines of the module's log ring within since..until whose level is at
 * most loglevel and whose text matches regex (case-sensitive), then the
 * last tail of those.
 *
 * A line's level is its "<N>" prefix, else 6 (info) for stdout and 3
 * (error) for stderr.
 *
 * The 128 KiB cap. Each kept line's cost is the bytes its fragment takes
 * inside the JSON response (escaped); the cost of a module's object
 * without lines is counted as if droppedLines were present and maximal.
 * While the sum is over the budget, the oldest kept line of all modules is
 * dropped, so the newest lines stay; a module that lost lines says how
 * many in "droppedLines". Should the built response still not fit (the
 * costs are exact, so this is a safety net), the budget shrinks by an
 * eighth and the selection is made again.
 *
 * Ring lines are read in place: everything happens within one call on the
 * loop thread, and nothing feeds the rings meanwhile. */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "methods_int.h"
#include "supervisor.h"
#include "upstream/azure.h"

#define ITEMS_MAX 32
#define REGEX_MAX 1024
/* A line's fragment: te_logline_format's output, or a JSON object whose
 * text is escaped at most 6 bytes per byte plus the names. */
#define FRAG_CAP (6 * TE_LOG_LINE_MAX + 6 * (TE_HOST_MAX + TE_ID_MAX + TE_MODULE_NAME_MAX) + 256)

struct log_item {
	char id[TE_MODULE_NAME_MAX * 4 + 1];
	bool all;              /* id "all" */
	bool has_id_re, has_text_re;
	regex_t id_re, text_re;
	int64_t tail;          /* -1: every line */
	int64_t loglevel;      /* -1: any */
	uint64_t since_ms, until_ms;
};

struct log_req {
	struct log_item *items;
	unsigned n;
	bool json;
};

struct sel_line {
	struct te_logline l;
	size_t cost;
};

/* One module's lines: [tail_first, n) pass the filter, [first, n) fit. */
struct log_sel {
	const struct te_mod *md;
	struct sel_line *lines;
	size_t n, tail_first, first;
	size_t overhead;
};

struct log_ctx {
	bool json;
	const char *device;
	char hub[TE_HOST_MAX];
	char *frag;           /* FRAG_CAP */
	char *text;           /* TE_LOG_LINE_MAX + 1: a line for regexec */
	char *payload;        /* TE_AGENT_RESPONSE_MAX: one module's payload */
};

/* The IoT hub's host name, as modules see it in IOTEDGE_IOTHUBHOSTNAME
 * but taken from the connection string for Azure. */
static void hub_name(const struct te_config *cfg, char *buf, size_t cap)
{
	struct te_azure_cs cs;

	if (cfg->upstream.protocol == TE_UP_AZURE &&
	    te_azure_cs_parse(cfg->upstream.connection_string, &cs, NULL, 0) == 0)
		snprintf(buf, cap, "%s", cs.host);
	else
		snprintf(buf, cap, "%s", cfg->upstream.host[0] ? cfg->upstream.host : cfg->hostname);
	explicit_bzero(&cs, sizeof(cs)); /* it holds the key */
}

/* ---- the request -------------------------------------------------------- */

/* Where bracket expression p ("[...]") ends: at its ']', or at the last
 * byte when it does not (regcomp then reports it). */
static const char *bracket_end(const char *p)
{
	const char *q = p + 1, *e;

	q += *q == '^';
	q += *q == ']';
	for (; *q && *q != ']'; q++) {
		if (*q == '[' && q[1] && strchr(":.=", q[1])) {
			char close[3] = { q[1], ']', '\0' };

			if (!(e = strstr(q + 2, close)))
				break;
			q = e + 1;
		}
	}
	return *q ? q : q - 1;
}

/* "{n}", "{n,}", "{n,m}" at p: the most copies it makes, and its end; 0
 * when it is not a bound (a literal '{' to regcomp). */
static unsigned long bound_copies(const char *p, const char **end)
{
	char *q;
	unsigned long n = strtoul(p + 1, &q, 10), m = n;

	if (q == p + 1 || (*q != '}' && *q != ','))
		return 0;
	if (*q == ',') {
		m = q[1] == '}' ? n + 1 : strtoul(q + 1, &q, 10);
		q += q[0] == ',' && q[1] == '}';
	}
	if (*q != '}')
		return 0;
	*end = q;
	return m > n ? m : n ? n : 1;
}

#define REGEX_SIZE_MAX 1024UL

/* An upper bound of the pattern's size once repetitions are expanded:
 * regcomp copies a repeated subexpression (TRE for bounds, glibc for '+'
 * too), so repetitions of repetitions multiply: ((a{100}){100}){100} asks
 * for a million copies and hundreds of MiB. Saturates past the limit. */
static unsigned long regex_size(const char *p)
{
	unsigned long sum[16] = { 0 }, last = 0, f, total = 0;
	unsigned d = 0;
	const char *end;

	for (; *p && sum[d] <= REGEX_SIZE_MAX && last <= REGEX_SIZE_MAX; p++) {
		f = 0; /* copies of the last atom; 0: p is an atom */
		switch (*p) {
		case '(':
			if (++d == 16)
				return REGEX_SIZE_MAX + 1;
			sum[d] = last = 0;
			continue;
		case ')':
			if (!d)
				break; /* unmatched: regcomp decides */
			last = sum[d] ? sum[d] : 1;
			sum[--d] += last;
			continue;
		case '|':
			last = 0;
			continue;
		case '*': case '?':
			continue;
		case '+':
			f = 2;
			break;
		case '{':
			if ((f = bound_copies(p, &end)))
				p = end;
			f = f > REGEX_SIZE_MAX ? REGEX_SIZE_MAX + 1 : f;
			break;
		case '[':
			p = bracket_end(p);
			break;
		case '\\':
			p += p[1] != '\0';
			break;
		}
		if (f) {
			sum[d] += last * (f - 1);
			last *= f;
		} else {
			sum[d]++;
			last = 1;
		}
	}
	for (unsigned i = 0; i <= d; i++)
		total += sum[i];
	return *p ? REGEX_SIZE_MAX + 1 : total;
}

static int regex_compile(struct te_mreq *q, regex_t *re, const char *src,
			 int flags, const char *path, const char *key)
{
	char err[160];
	int r;

	if (regex_size(src) > REGEX_SIZE_MAX)
		return te_mreq_bad(q, "%s%s: the expression's repetitions expand past %lu",
				   path, key, REGEX_SIZE_MAX);
	r = regcomp(re, src, REG_EXTENDED | REG_NOSUB | flags);
	if (r == 0)
		return 0;
	regerror(r, re, err, sizeof(err));
	return te_mreq_bad(q, "%s%s: %s (a POSIX extended regular expression)", path, key, err);
}

/* since / until: unix seconds as a number, or a string for
 * te_agent_parse_time. 0 absent, 1 read, -1 invalid. */
static int time_read(struct te_mreq *q, unsigned obj, const char *path,
		     const char *key, uint64_t now, uint64_t *ms)
{
	int t = te_mreq_member(q->doc, obj, key);
	char buf[80];
	int64_t v;

	if (t < 0)
		return 0;
	if (q->doc->tok[t].type == TE_JSON_NUMBER && te_json_int(q->doc, (unsigned)t, &v) == 0 &&
	    v >= 0 && v <= 253402300799LL) {
		*ms = (uint64_t)v * 1000;
		return 1;
	}
	if (q->doc->tok[t].type == TE_JSON_STRING &&
	    te_json_str(q->doc, (unsigned)t, buf, sizeof(buf), NULL) == 0 &&
	    te_agent_parse_time(buf, now, ms) == 0)
		return 1;
	return te_mreq_bad(q, "%s%s: expected unix seconds, an RFC 3339 time or a duration "
			   "such as \"90 m\" or \"2 hours 30 minutes\"", path, key);
}

static int filter_read(struct te_mreq *q, unsigned f, const char *path,
		       struct log_item *it, uint64_t now)
{
	char re[REGEX_MAX + 1];
	int r;

	if (q->doc->tok[f].type != TE_JSON_OBJECT)
		return te_mreq_bad(q, "%.*s must be an object", (int)strlen(path) - 1, path);
	if (te_mreq_uint(q, f, path, "tail", INT32_MAX, &it->tail) < 0 ||
	    te_mreq_uint(q, f, path, "loglevel", 7, &it->loglevel) < 0 ||
	    time_read(q, f, path, "since", now, &it->since_ms) < 0 ||
	    time_read(q, f, path, "until", now, &it->until_ms) < 0 ||
	    (r = te_mreq_str(q, f, path, "regex", re, sizeof(re), false)) < 0)
		return -1;
	if (r == 1 && regex_compile(q, &it->text_re, re, 0, path, "regex") < 0)
		return -1;
	it->has_text_re = r == 1;
	return 0;
}

static int item_read(struct te_mreq *q, unsigned tok, unsigned i,
		     struct log_item *it, uint64_t now)
{
	char path[48], fpath[64];
	int f;

	it->tail = it->loglevel = -1;
	it->until_ms = UINT64_MAX;
	snprintf(path, sizeof(path), "items[%u].", i);
	snprintf(fpath, sizeof(fpath), "items[%u].filter.", i);
	if (q->doc->tok[tok].type != TE_JSON_OBJECT)
		return te_mreq_bad(q, "items[%u] must be an object", i);
	if (te_mreq_str(q, tok, path, "id", it->id, sizeof(it->id), true) < 0)
		return -1;
	it->all = !strcasecmp(it->id, "all");
	if (!it->all && regex_compile(q, &it->id_re, it->id, REG_ICASE, path, "id") < 0)
		return -1;
	it->has_id_re = !it->all;
	f = te_mreq_member(q->doc, tok, "filter");
	return f < 0 ? 0 : filter_read(q, (unsigned)f, fpath, it, now);
}

/* A string member that must be one of two words (without case); *second
 * gets whether it is the second. */
static int choice_read(struct te_mreq *q, const char *key, const char *a,
		       const char *b, bool *second)
{
	char v[16];
	int r = te_mreq_str(q, 0, "", key, v, sizeof(v), false);

	if (r < 0)
		return r;
	*second = r == 1 && !strcasecmp(v, b);
	if (r == 1 && strcasecmp(v, a) && !*second)
		return te_mreq_bad(q, "%s must be \"%s\" or \"%s\"", key, a, b);
	return 0;
}

static int req_read(struct te_mreq *q, struct log_req *rq)
{
	int items = te_mreq_member(q->doc, 0, "items");
	uint64_t now = te_mreq_now_ms();
	bool gzip;

	if (choice_read(q, "encoding", "none", "gzip", &gzip) < 0 ||
	    choice_read(q, "contentType", "text", "json", &rq->json) < 0)
		return -1;
	if (gzip)
		return te_mreq_bad(q, "encoding: gzip is not supported by tinyedge; use \"none\"");
	if (items < 0)
		return te_mreq_bad(q, "items: missing (an array of {\"id\": REGEX, \"filter\": {...}})");
	if (q->doc->tok[items].type != TE_JSON_ARRAY)
		return te_mreq_bad(q, "items must be an array");
	if (q->doc->tok[items].size > ITEMS_MAX)
		return te_mreq_bad(q, "items: at most %d", ITEMS_MAX);
	rq->items = calloc(q->doc->tok[items].size + 1, sizeof(*rq->items));
	if (!rq->items)
		return te_mreq_bad(q, "out of memory");
	TE_JSON_FOREACH_ELEM(q->doc, (unsigned)items, e) {
		if (item_read(q, e, rq->n, &rq->items[rq->n], now) < 0) {
			rq->n++; /* its regexes are freed with the rest */
			return -1;
		}
		rq->n++;
	}
	return 0;
}

static void req_free(struct log_req *rq)
{
	for (unsigned i = 0; i < rq->n; i++) {
		if (rq->items[i].has_id_re)
			regfree(&rq->items[i].id_re);
		if (rq->items[i].has_text_re)
			regfree(&rq->items[i].text_re);
	}
	free(rq->items);
}

/* ---- selecting lines ---------------------------------------------------- */

static int line_level(const struct te_logline *l)
{
	return l->level >= 0 ? l->level : l->stream == 2 ? 3 : 6;
}

static bool line_match(const struct log_ctx *x, const struct log_item *it,
		       const struct te_logline *l)
{
	if (l->time_ms < it->since_ms || l->time_ms > it->until_ms)
		return false;
	if (it->loglevel >= 0 && line_level(l) > it->loglevel)
		return false;
	if (!it->has_text_re)
		return true;
	memcpy(x->text, l->text, l->len);
	x->text[l->len] = '\0';
	return regexec(&it->text_re, x->text, 0, NULL, 0) == 0;
}

static const struct log_item *item_for(const struct log_req *rq, const char *name)
{
	for (unsigned i = 0; i < rq->n; i++)
		if (rq->items[i].all || regexec(&rq->items[i].id_re, name, 0, NULL, 0) == 0)
			return &rq->items[i];
	return NULL;
}

/* Bytes s[0..n) take inside a JSON string as te_jw writes it. */
static size_t esc_len(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t len = 0, i = 0, k;

	while (i < n) {
		if (s[i] >= 0x80) {
			k = s[i] >= 0xf0 ? 4 : s[i] >= 0xe0 ? 3 : s[i] >= 0xc0 ? 2 : 1;
			if (k > 1 && k <= n - i && te_json_utf8_valid(s + i, k)) {
				len += k, i += k;
				continue;
			}
			len += 3; /* U+FFFD */
		} else if (s[i] == '"' || s[i] == '\\' || (s[i] && strchr("\b\f\n\r\t", s[i]))) {
			len += 2;
		} else {
			len += s[i] < 0x20 || s[i] == 0x7f ? 6 : 1;
		}
		i++;
	}
	return len;
}

/* The line as it goes into a payload: a formatted text line, or an object
 * in edgeAgent's ModuleLogMessage shape. */
static size_t frag(const struct log_ctx *x, const struct te_mod *md,
		   const struct te_logline *l)
{
	char ts[48];
	struct te_jw w;

	if (!x->json)
		return te_logline_format(l, x->frag, FRAG_CAP);
	te_time_iso(l->time_ms, false, ts, sizeof(ts));
	te_jw_init(&w, x->frag, FRAG_CAP);
	te_jw_obj_open(&w);
	te_jw_kstr(&w, "iothub", x->hub);
	te_jw_kstr(&w, "device", x->device);
	te_jw_kstr(&w, "id", md->name);
	te_jw_kstr(&w, "stream", l->stream == 2 ? "stderr" : "stdout");
	te_jw_kint(&w, "loglevel", line_level(l));
	te_jw_key(&w, "text");
	te_jw_strn(&w, l->text, l->len);
	te_jw_kstr(&w, "timestamp", ts);
	te_jw_obj_close(&w);
	return te_jw_finish(&w) == 0 ? w.len : 0; /* FRAG_CAP holds any line */
}

/* The module's lines that pass the filter, the last tail of them with
 * their costs; its object's cost without lines. */
static int select_lines(const struct log_ctx *x, const struct log_item *it,
			struct log_sel *s)
{
	const struct te_logring *r = &s->md->log;
	struct te_logring_iter ri;
	struct te_logline l;

	s->lines = malloc((te_logring_count(r) + 1) * sizeof(*s->lines));
	if (!s->lines)
		return -ENOMEM;
	te_logring_iter_init(r, &ri);
	while (te_logring_iter_next(r, &ri, &l))
		if (line_match(x, it, &l))
			s->lines[s->n++].l = l;
	if (it->tail >= 0 && s->n > (uint64_t)it->tail)
		s->tail_first = s->n - (uint64_t)it->tail;
	for (size_t i = s->tail_first; i < s->n; i++)
		s->lines[i].cost = esc_len(x->frag, frag(x, s->md, &s->lines[i].l)) + x->json;
	s->overhead = sizeof("{\"id\":\"\",\"payload\":\"\",\"droppedLines\":18446744073709551615},") +
		      esc_len(s->md->name, strlen(s->md->name)) + 2 * x->json;
	return 0;
}

/* Keep the newest lines of all modules within budget bytes. */
static void apply_budget(struct log_sel *sel, unsigned n, size_t budget)
{
	size_t total = 2; /* [] */
	struct log_sel *old;

	for (unsigned i = 0; i < n; i++) {
		sel[i].first = sel[i].tail_first;
		total += sel[i].overhead;
		for (size_t k = sel[i].first; k < sel[i].n; k++)
			total += sel[i].lines[k].cost;
	}
	while (total > budget) {
		old = NULL;
		for (unsigned i = 0; i < n; i++)
			if (sel[i].first < sel[i].n &&
			    (!old || sel[i].lines[sel[i].first].l.time_ms <
				     old->lines[old->first].l.time_ms))
				old = &sel[i];
		if (!old)
			return;
		total -= old->lines[old->first++].cost;
	}
}

/* ---- the response ------------------------------------------------------- */

/* A module's payload text into x->payload; -TE_ENOSPACE if over. */
static int payload_build(const struct log_ctx *x, const struct log_sel *s,
			 size_t *len)
{
	size_t n = 0, f;

	if (x->json)
		x->payload[n++] = '[';
	for (size_t i = s->first; i < s->n; i++) {
		f = frag(x, s->md, &s->lines[i].l);
		if (n + f + 2 > TE_AGENT_RESPONSE_MAX)
			return -TE_ENOSPACE;
		if (x->json && i > s->first)
			x->payload[n++] = ',';
		memcpy(x->payload + n, x->frag, f);
		n += f;
	}
	if (x->json)
		x->payload[n++] = ']';
	*len = n;
	return 0;
}

static int response_build(const struct log_ctx *x, const struct log_sel *sel,
			  unsigned n, char *out, size_t *len)
{
	struct te_jw w;
	size_t plen;
	int r;

	te_jw_init(&w, out, TE_AGENT_RESPONSE_MAX + 1);
	te_jw_arr_open(&w);
	for (unsigned i = 0; i < n; i++) {
		if ((r = payload_build(x, &sel[i], &plen)) < 0)
			return r;
		te_jw_obj_open(&w);
		te_jw_kstr(&w, "id", sel[i].md->name);
		te_jw_key(&w, "payload");
		te_jw_strn(&w, x->payload, plen);
		if (sel[i].first > sel[i].tail_first)
			te_jw_kint(&w, "droppedLines", (int64_t)(sel[i].first - sel[i].tail_first));
		te_jw_obj_close(&w);
	}
	te_jw_arr_close(&w);
	r = te_jw_finish(&w);
	*len = w.len;
	return r;
}

static int logs_answer(struct te_mreq *q, const struct log_req *rq,
		       struct log_ctx *x, struct log_sel *sel, char *out)
{
	struct te_supervisor *sv = q->ag->sv;
	const struct log_item *it;
	size_t budget = TE_AGENT_RESPONSE_MAX, len;
	unsigned n = 0;
	int r;

	for (unsigned i = 0; i < sv->nmods; i++) {
		if (!(it = item_for(rq, sv->mods[i]->name)))
			continue;
		sel[n].md = sv->mods[i];
		if ((r = select_lines(x, it, &sel[n++])) < 0)
			return r;
	}
	do {
		apply_budget(sel, n, budget);
		r = response_build(x, sel, n, out, &len);
		budget -= budget / 8;
	} while (r == -TE_ENOSPACE && budget > 1024);
	if (r == 0) {
		*q->out = out;
		*q->outlen = len;
	}
	return r;
}

unsigned te_method_get_logs(struct te_mreq *q)
{
	struct te_supervisor *sv = q->ag->sv;
	struct log_req rq = { 0 };
	struct log_ctx x = { 0 };
	struct log_sel *sel = NULL;
	char *out = NULL;
	unsigned status = 400;
	int r = -ENOMEM;

	if (te_mreq_root(q) < 0 || req_read(q, &rq) < 0)
		goto done;
	status = 500;
	x.json = rq.json;
	x.device = sv->cfg->device_id;
	hub_name(sv->cfg, x.hub, sizeof(x.hub));
	x.frag = malloc(FRAG_CAP);
	x.text = malloc(TE_LOG_LINE_MAX + 1);
	x.payload = malloc(TE_AGENT_RESPONSE_MAX);
	out = malloc(TE_AGENT_RESPONSE_MAX + 1);
	sel = calloc(sv->nmods + 1, sizeof(*sel));
	if (x.frag && x.text && x.payload && out && sel)
		r = logs_answer(q, &rq, &x, sel, out);
	if (r == 0)
		status = 200, out = NULL;
	else
		te_mreq_bad(q, "GetModuleLogs: %s", te_strerror(r));
done:
	for (unsigned i = 0; sel && i < sv->nmods; i++)
		free(sel[i].lines);
	free(sel);
	free(out);
	free(x.frag);
	free(x.text);
	free(x.payload);
	req_free(&rq);
	return status == 200 ? 200 : te_mreq_error(q, status);
}
