/* Unit tests for src/control/metrics.c (the Prometheus text writer and the
 * daemon's figures) and src/control/metrics_http.c (GET /metrics on a
 * loop). Every rendered document is checked by a strict parser of the
 * 0.0.4 text format. Waits are bounded by loop turns; an alarm() turns a
 * hang into a failure. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/supervisor.h"
#include "control/metrics.h"
#include "core/err.h"
#include "hub/router.h"
#include "store/store.h"
#include "tap.h"
#include "upstream/upstream.h"

/* ---- a strict parser of the text format --------------------------------- */

#define FAMILIES_MAX 128
#define LABELS_MAX 8

struct sample {
	char name[128];
	char lname[LABELS_MAX][64];
	char lval[LABELS_MAX][256];   /* unescaped */
	unsigned nl;
	double value;
};

struct parsed {
	char fam[FAMILIES_MAX][128];  /* in order of their TYPE lines */
	char type[FAMILIES_MAX][16];
	unsigned nfam;
	unsigned samples;
	char error[256];              /* "" = the document is valid */
};

static bool name_char(char c, bool first, bool label)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (c == ':' && !label) || (!first && c >= '0' && c <= '9');
}

/* A name at *s into out; advances *s. */
static bool parse_name(const char **s, char *out, size_t cap, bool label)
{
	size_t n = 0;

	if (!name_char(**s, true, label))
		return false;
	while (name_char(**s, n == 0, label) && n + 1 < cap)
		out[n++] = *(*s)++;
	out[n] = '\0';
	return true;
}

/* "..." with \\, \" and \n escapes (nothing else) into out. */
static bool parse_quoted(const char **s, char *out, size_t cap)
{
	size_t n = 0;

	if (*(*s)++ != '"')
		return false;
	while (**s && **s != '"' && **s != '\n') {
		char c = *(*s)++;

		if (c == '\\') {
			c = *(*s)++;
			if (c == 'n')
				c = '\n';
			else if (c != '\\' && c != '"')
				return false;
		}
		if (n + 1 < cap)
			out[n++] = c;
	}
	out[n] = '\0';
	return *(*s)++ == '"';
}

static bool parse_value(const char *s, double *v)
{
	char *end;

	if (!strcmp(s, "NaN") || !strcmp(s, "+Inf") || !strcmp(s, "-Inf")) {
		*v = s[0] == 'N' ? NAN : s[0] == '+' ? INFINITY : -INFINITY;
		return true;
	}
	if (!*s || !strchr("+-0123456789", *s))
		return false;
	*v = strtod(s, &end);
	return *end == '\0';
}

static bool parse_sample(const char *line, struct sample *sm)
{
	const char *s = line;

	memset(sm, 0, sizeof(*sm));
	if (!parse_name(&s, sm->name, sizeof(sm->name), false))
		return false;
	if (*s == '{') {
		s++;
		while (*s != '}') {
			if (sm->nl == LABELS_MAX ||
			    !parse_name(&s, sm->lname[sm->nl], sizeof(sm->lname[0]), true) ||
			    *s++ != '=' || !parse_quoted(&s, sm->lval[sm->nl], sizeof(sm->lval[0])))
				return false;
			sm->nl++;
			if (*s == ',')
				s++;
			else if (*s != '}')
				return false;
		}
		s++;
	}
	return *s++ == ' ' && parse_value(s, &sm->value);
}

static int fam_index(const struct parsed *p, const char *name)
{
	for (unsigned i = 0; i < p->nfam; i++)
		if (!strcmp(p->fam[i], name))
			return (int)i;
	return -1;
}

/* One line; false (with p->error) when it breaks a rule. cur is the
 * family whose TYPE came last, help the name of the last HELP line. */
static bool check_line(struct parsed *p, const char *line, char *help, char *cur)
{
	struct sample sm;
	char name[128], type[16];
	const char *s;

	if (!strncmp(line, "# HELP ", 7)) {
		s = line + 7;
		if (!parse_name(&s, help, 128, false) || *s != ' ')
			return snprintf(p->error, sizeof(p->error), "bad HELP: %s", line), false;
		return true;
	}
	if (!strncmp(line, "# TYPE ", 7)) {
		s = line + 7;
		if (!parse_name(&s, name, sizeof(name), false) || *s++ != ' ' ||
		    sscanf(s, "%15s", type) != 1 || (strcmp(type, "counter") && strcmp(type, "gauge")))
			return snprintf(p->error, sizeof(p->error), "bad TYPE: %s", line), false;
		if (strcmp(name, help))
			return snprintf(p->error, sizeof(p->error), "TYPE %s without its HELP", name), false;
		if (fam_index(p, name) >= 0)
			return snprintf(p->error, sizeof(p->error), "second TYPE for %s", name), false;
		if (p->nfam == FAMILIES_MAX)
			return snprintf(p->error, sizeof(p->error), "too many families"), false;
		strcpy(p->fam[p->nfam], name);
		strcpy(p->type[p->nfam++], type);
		strcpy(cur, name);
		return true;
	}
	if (line[0] == '#')
		return snprintf(p->error, sizeof(p->error), "unknown comment: %s", line), false;
	if (!parse_sample(line, &sm))
		return snprintf(p->error, sizeof(p->error), "malformed sample: %s", line), false;
	if (strcmp(sm.name, cur))
		return snprintf(p->error, sizeof(p->error), "sample %s outside its family (%s)",
				sm.name, cur), false;
	p->samples++;
	return true;
}

static void parse_doc(struct parsed *p, const char *doc)
{
	char line[4096], help[128] = "", cur[128] = "";
	const char *s = doc, *nl;

	memset(p, 0, sizeof(*p));
	if (*doc && doc[strlen(doc) - 1] != '\n')
		snprintf(p->error, sizeof(p->error), "no final newline");
	for (; *s && !p->error[0]; s = nl + 1) {
		nl = strchr(s, '\n');
		if (!nl || (size_t)(nl - s) >= sizeof(line)) {
			snprintf(p->error, sizeof(p->error), "line too long or unterminated");
			break;
		}
		memcpy(line, s, (size_t)(nl - s));
		line[nl - s] = '\0';
		check_line(p, line, help, cur);
	}
}

/* The value of the sample name{label=value}, or NAN. */
static double sample_value(const char *doc, const char *name, const char *label,
			   const char *value)
{
	const char *s = doc, *nl;
	struct sample sm;
	char line[4096];

	for (; *s; s = nl + 1) {
		nl = strchr(s, '\n');
		if (!nl || (size_t)(nl - s) >= sizeof(line))
			break;
		memcpy(line, s, (size_t)(nl - s));
		line[nl - s] = '\0';
		if (line[0] == '#' || !parse_sample(line, &sm) || strcmp(sm.name, name))
			continue;
		if (!label)
			return sm.value;
		for (unsigned i = 0; i < sm.nl; i++)
			if (!strcmp(sm.lname[i], label) && !strcmp(sm.lval[i], value))
				return sm.value;
	}
	return NAN;
}

/* ---- the writer --------------------------------------------------------- */

static void test_escaping(void)
{
	char buf[1024];
	struct te_prom p;
	struct sample sm;
	char *line;
	const char *nasty = "a\\b\"c\nd";
	const struct te_prom_label l[] = { { "route", nasty }, { "plain", "x y,z=}" } };

	te_prom_init(&p, buf, sizeof(buf));
	te_prom_family(&p, "t_escape_total", TE_PROM_COUNTER, "help with \\ and\nnewline \"quoted\"");
	te_prom_u64(&p, l, 2, 7);
	TAP_EQ_INT(te_prom_finish(&p), 0, "escaping: no error");
	TAP_EQ_STR(buf,
		   "# HELP t_escape_total help with \\\\ and\\nnewline \"quoted\"\n"
		   "# TYPE t_escape_total counter\n"
		   "t_escape_total{route=\"a\\\\b\\\"c\\nd\",plain=\"x y,z=}\"} 7\n",
		   "label values escape \\ \" and newline; HELP escapes \\ and newline");
	line = strstr(buf, "counter\n") + 8;
	line[strcspn(line, "\n")] = '\0';
	TAP_OK(parse_sample(line, &sm) &&
	       !strcmp(sm.lval[0], nasty) && !strcmp(sm.lval[1], "x y,z=}"),
	       "a parser gets the original values back");
}

static void test_numbers(void)
{
	char buf[2048];
	struct te_prom p;
	const struct te_prom_label l[] = { { "k", "v" } };

	te_prom_init(&p, buf, sizeof(buf));
	te_prom_family(&p, "t_big_total", TE_PROM_COUNTER, "big");
	te_prom_u64(&p, NULL, 0, UINT64_MAX);
	te_prom_u64(&p, l, 1, 0);
	te_prom_family(&p, "t_fixed_seconds", TE_PROM_GAUGE, "fixed");
	te_prom_fixed(&p, NULL, 0, 1234567, 3);
	te_prom_fixed(&p, NULL, 0, 5, 6);
	te_prom_fixed(&p, NULL, 0, 42, 0);
	te_prom_fixed(&p, NULL, 0, UINT64_MAX, 3);
	te_prom_family(&p, "t_float", TE_PROM_GAUGE, "float");
	te_prom_f64(&p, NULL, 0, 0.1);
	te_prom_f64(&p, NULL, 0, -2.5e-300);
	te_prom_f64(&p, NULL, 0, 1.0 / 3.0);
	te_prom_f64(&p, NULL, 0, NAN);
	te_prom_f64(&p, NULL, 0, INFINITY);
	te_prom_f64(&p, NULL, 0, -INFINITY);
	TAP_EQ_INT(te_prom_finish(&p), 0, "numbers: no error");
	TAP_OK(strstr(buf, "\nt_big_total 18446744073709551615\n") != NULL,
	       "a counter at UINT64_MAX is written whole");
	TAP_OK(strstr(buf, "\nt_big_total{k=\"v\"} 0\n") != NULL, "zero");
	TAP_OK(strstr(buf, "\nt_fixed_seconds 1234.567\n") != NULL, "ms as seconds");
	TAP_OK(strstr(buf, "\nt_fixed_seconds 0.000005\n") != NULL, "us as seconds, leading zeros");
	TAP_OK(strstr(buf, "\nt_fixed_seconds 42\n") != NULL, "no decimals: an integer");
	TAP_OK(strstr(buf, "\nt_fixed_seconds 18446744073709551.615\n") != NULL,
	       "fixed point at UINT64_MAX");
	TAP_OK(strstr(buf, "\nt_float 0.1\n") != NULL, "0.1 in its shortest form");
	TAP_OK(strstr(buf, "\nt_float -2.5e-300\n") != NULL, "exponent form");
	TAP_OK(strstr(buf, "\nt_float 0.33333333333333331\n") != NULL, "1/3 reads back exactly");
	TAP_OK(strstr(buf, "\nt_float NaN\nt_float +Inf\nt_float -Inf\n") != NULL,
	       "NaN, +Inf, -Inf");
	TAP_EQ_INT(strtod("0.33333333333333331", NULL) == 1.0 / 3.0, 1, "(round trip)");
}

static void test_errors(void)
{
	char buf[256];
	struct te_prom p;
	const struct te_prom_label bad[] = { { "bad-label", "v" } };

	te_prom_init(&p, buf, sizeof(buf));
	te_prom_u64(&p, NULL, 0, 1);
	TAP_EQ_INT(te_prom_finish(&p), -EINVAL, "a sample before any family");
	te_prom_init(&p, buf, sizeof(buf));
	te_prom_family(&p, "9starts_with_digit", TE_PROM_GAUGE, "x");
	TAP_EQ_INT(te_prom_finish(&p), -EINVAL, "an invalid metric name");
	te_prom_init(&p, buf, sizeof(buf));
	te_prom_family(&p, "ok_name", TE_PROM_GAUGE, "x");
	te_prom_u64(&p, bad, 1, 1);
	TAP_EQ_INT(te_prom_finish(&p), -EINVAL, "an invalid label name");
	te_prom_init(&p, buf, sizeof(buf));
	te_prom_family(&p, "ns:ok_name", TE_PROM_GAUGE, "colons are fine in metric names");
	TAP_EQ_INT(te_prom_finish(&p), 0, "a name with a colon");
}

static void fill(struct te_prom *p, unsigned n)
{
	char v[32];

	te_prom_family(p, "t_fill", TE_PROM_GAUGE, "fill");
	for (unsigned i = 0; i < n; i++) {
		const struct te_prom_label l[] = { { "i", v } };

		snprintf(v, sizeof(v), "%u", i);
		te_prom_u64(p, l, 1, i);
	}
}

static void test_growth(void)
{
	struct te_prom p, q;
	char small[100];
	struct parsed ps;

	te_prom_init_alloc(&p, 1);
	fill(&p, 5000);
	TAP_EQ_INT(te_prom_finish(&p), 0, "a growable buffer takes 5000 samples");
	TAP_OK(p.cap > p.len && p.buf[p.len] == '\0' && strlen(p.buf) == p.len,
	       "NUL-terminated at len (%zu of %zu)", p.len, p.cap);
	parse_doc(&ps, p.buf);
	TAP_EQ_STR(ps.error, "", "it parses");
	TAP_EQ_INT(ps.samples, 5000, "every sample is there");
	TAP_OK(strstr(p.buf, "\nt_fill{i=\"4999\"} 4999\n") != NULL, "the last one whole");
	te_prom_free(&p);
	TAP_OK(p.buf == NULL, "free");

	te_prom_init(&q, small, sizeof(small));
	fill(&q, 50);
	TAP_EQ_INT(te_prom_finish(&q), -TE_ENOSPACE, "a fixed buffer that is too small");
	TAP_OK(q.len < sizeof(small) && strlen(small) == q.len, "it never writes past its end");
	te_prom_free(&q);  /* not ours: nothing is freed */
	TAP_OK(small[0] == '#', "the caller's buffer is left alone by free");
}

/* ---- the daemon's figures ----------------------------------------------- */

struct fake {
	struct te_supervisor sv;
	struct te_mod mods[2], *modp[2];
	struct te_port ports[2];
	struct te_router rt;
	struct te_rroute routes[2];
	struct te_upstream ups[2];
	struct te_upstream_config ucfg;
	struct te_module_identity id;
	unsigned nups;
	struct te_metrics_src src;
};

static void fake_init(struct fake *f)
{
	uint64_t now = te_now_ms();

	memset(f, 0, sizeof(*f));
	for (unsigned i = 0; i < 2; i++) {
		f->modp[i] = &f->mods[i];
		f->mods[i].port = &f->ports[i];
	}
	snprintf(f->mods[0].name, sizeof(f->mods[0].name), "sensor");
	snprintf(f->mods[1].name, sizeof(f->mods[1].name), "sink");
	f->mods[0].state = TE_MOD_RUNNING;
	f->mods[0].pid = 12345;
	f->mods[0].start_mono_ms = now - 2000;
	f->mods[1].state = TE_MOD_BACKOFF;
	f->mods[1].restart_count = 3;
	f->ports[0].msgs_out = 1000;
	f->ports[1].msgs_in = 990;
	f->ports[1].dropped = 10;
	f->ports[1].spill.used = 4096;
	f->routes[0] = (struct te_rroute){ .name = "s2k", .matched = 1000, .delivered = 990,
					   .dropped_full = 10 };
	f->routes[1] = (struct te_rroute){ .name = "we\"ird\\name\n", .matched = 1 };
	f->rt.routes = f->routes;
	f->rt.nroutes = 2;
	f->rt.upstream_msgs = 77;
	f->rt.upstream_dropped = 2;
	f->sv.mods = f->modp;
	f->sv.nmods = 2;
	f->sv.router = &f->rt;
	f->ups[0] = (struct te_upstream){ .cfg = &f->ucfg, .state = TE_UPS_ONLINE,
					  .since_ms = now - 5000, .online_ms = 1000,
					  .online_since_ms = now - 1500, .connects = 2,
					  .failures = 1, .published = 80, .acked = 75 };
	snprintf(f->id.module, sizeof(f->id.module), "sink");
	f->ups[1] = (struct te_upstream){ .cfg = &f->ucfg, .id = &f->id, .state = TE_UPS_BACKOFF,
					  .since_ms = now - 5000, .acked = 5 };
	f->nups = 2;
	f->src = (struct te_metrics_src){ .sv = &f->sv, .ups = f->ups, .nups = &f->nups,
					  .device_id = "dev1", .start_ms = now - 60000 };
}

static bool near(double v, double want)
{
	return fabs(v - want) < 0.5;
}

static void test_render(void)
{
	static struct fake f;
	struct te_prom p;
	struct parsed ps;
	int r;

	fake_init(&f);
	te_prom_init_alloc(&p, 256);
	r = te_metrics_render(&f.src, &p);
	TAP_EQ_INT(r, 0, "render");
	parse_doc(&ps, p.buf);
	TAP_EQ_STR(ps.error, "", "the document follows the format (HELP, TYPE, then samples)");
	TAP_OK(ps.nfam > 30 && ps.samples > 60, "%u families, %u samples", ps.nfam, ps.samples);
	TAP_OK(fam_index(&ps, "edgehub_messages_received_total") >= 0 &&
	       !strcmp(ps.type[fam_index(&ps, "edgehub_messages_received_total")], "counter"),
	       "edgehub_messages_received_total is a counter");
	for (unsigned i = 0; i < ps.nfam; i++) {
		size_t n = strlen(ps.fam[i]);
		bool total = n > 6 && !strcmp(ps.fam[i] + n - 6, "_total");

		if (total != !strcmp(ps.type[i], "counter"))
			TAP_OK(0, "%s: counters and only counters end in _total", ps.fam[i]);
	}
	TAP_OK(sample_value(p.buf, "tinyedge_build_info", NULL, NULL) == 1, "build info");
	TAP_OK(near(sample_value(p.buf, "tinyedge_uptime_seconds", NULL, NULL), 60), "uptime");
	TAP_OK(sample_value(p.buf, "edgehub_messages_received_total", "id", "dev1/sensor") == 1000,
	       "messages from a module, Azure's id");
	TAP_OK(sample_value(p.buf, "edgehub_messages_sent_total", "to", "dev1/sink") == 990,
	       "messages into a module");
	TAP_OK(sample_value(p.buf, "edgehub_messages_sent_total", "to", "upstream") == 80,
	       "messages to the cloud: acknowledged, all sessions");
	TAP_OK(strstr(p.buf, "tinyedge_module_status{module=\"sink\",status=\"backoff\"} 1\n") &&
	       strstr(p.buf, "tinyedge_module_status{module=\"sink\",status=\"running\"} 0\n") &&
	       strstr(p.buf, "tinyedge_module_status{module=\"sensor\",status=\"running\"} 1\n"),
	       "status as a state set");
	TAP_OK(sample_value(p.buf, "tinyedge_module_restarts_total", "module", "sink") == 3,
	       "restarts");
	TAP_OK(near(sample_value(p.buf, "tinyedge_module_uptime_seconds", "module", "sensor"), 2) &&
	       sample_value(p.buf, "tinyedge_module_uptime_seconds", "module", "sink") == 0,
	       "module uptime (0 without an instance)");
	TAP_OK(sample_value(p.buf, "tinyedge_module_spill_bytes", "module", "sink") == 4096,
	       "spill bytes");
	TAP_OK(strstr(p.buf, "tinyedge_route_messages_dropped_total{route=\"s2k\",reason=\"full\"} 10\n")
	       != NULL, "route drops by reason");
	TAP_OK(strstr(p.buf, "tinyedge_route_messages_matched_total{route=\"we\\\"ird\\\\name\\n\"} 1\n")
	       != NULL, "a route name is escaped");
	TAP_OK(sample_value(p.buf, "tinyedge_upstream_queue_dropped_total", "reason", "not_stored")
	       == 2, "$upstream drops");
	TAP_OK(sample_value(p.buf, "tinyedge_store_up", NULL, NULL) == 0 &&
	       fam_index(&ps, "tinyedge_store_bytes") < 0 &&
	       fam_index(&ps, "edgehub_queue_length") < 0, "no store: up 0, no store figures");
	TAP_OK(sample_value(p.buf, "tinyedge_upstream_connected", "id", "dev1") == 1 &&
	       sample_value(p.buf, "tinyedge_upstream_connected", "id", "dev1/sink") == 0,
	       "sessions: the device's and a module's");
	TAP_OK(near(sample_value(p.buf, "tinyedge_upstream_connected_seconds_total", "id", "dev1"),
		    2.5) &&
	       near(sample_value(p.buf, "tinyedge_upstream_offline_seconds_total", "id", "dev1"), 2.5),
	       "online and offline time: ended stretches plus the current one");
	TAP_OK(near(sample_value(p.buf, "tinyedge_upstream_offline_seconds_total", "id",
				 "dev1/sink"), 5), "never online: all offline");
	TAP_OK(isnan(sample_value(p.buf, "edgeAgent_used_memory_bytes", NULL, NULL)),
	       "no cgroups: no memory samples");
	te_prom_free(&p);

	/* Without a router or sessions: still a valid document. */
	f.sv.router = NULL;
	f.nups = 0;
	te_prom_init_alloc(&p, 64);
	TAP_EQ_INT(te_metrics_render(&f.src, &p), 0, "render without router or uplink");
	parse_doc(&ps, p.buf);
	TAP_EQ_STR(ps.error, "", "still valid");
	TAP_OK(fam_index(&ps, "tinyedge_upstream_connected") < 0 &&
	       fam_index(&ps, "tinyedge_route_messages_matched_total") < 0,
	       "no session or route families");
	te_prom_free(&p);
}

/* With a real store: its totals and one sample per queue (endpoint,
 * priority), the endpoint's name escaped. */
static void test_render_store(void)
{
	static struct fake f;
	char dir[] = "/tmp/test_metrics_XXXXXX", err[TE_STORE_ERR_MAX], cmd[64];
	struct te_store_opts o;
	struct te_store *st = NULL;
	struct te_prom p;
	struct parsed ps;
	uint32_t up, odd;
	int r = -1;

	fake_init(&f);
	TAP_OK(mkdtemp(dir) != NULL, "temp dir");
	te_store_opts_init(&o);
	o.path = dir;
	o.max_bytes = 8u << 20;
	TAP_EQ_INT(te_store_open(&st, &o, err, sizeof(err)), 0, "store: %s", err);
	if (!st)
		return;
	TAP_OK(te_store_endpoint(st, "$upstream", &up) == 0 &&
	       te_store_endpoint(st, "/modules/we\"ird", &odd) == 0, "endpoints");
	for (int i = 0; i < 5; i++)
		r = te_store_put(st, up, 3, 60, "0123456789", 10, NULL);
	r |= te_store_put(st, odd, 0, 60, "abc", 3, NULL);
	TAP_EQ_INT(r, 0, "puts");
	TAP_EQ_INT(te_store_sync(st), 0, "committed");
	f.rt.store = st;
	f.rt.store_since_ms = te_now_ms();
	te_prom_init_alloc(&p, 1024);
	TAP_EQ_INT(te_metrics_render(&f.src, &p), 0, "render with a store");
	parse_doc(&ps, p.buf);
	TAP_EQ_STR(ps.error, "", "valid");
	TAP_OK(fam_index(&ps, "edgehub_queue_length") >= 0 &&
	       !strcmp(ps.type[fam_index(&ps, "edgehub_queue_length")], "gauge"),
	       "edgehub_queue_length is a gauge");
	TAP_OK(strstr(p.buf, "\nedgehub_queue_length{endpoint=\"$upstream\",priority=\"3\"} 5\n") &&
	       strstr(p.buf, "\nedgehub_queue_length{endpoint=\"/modules/we\\\"ird\",priority=\"0\"} 1\n"),
	       "queue lengths per endpoint and priority");
	TAP_OK(strstr(p.buf, "\ntinyedge_queue_bytes{endpoint=\"$upstream\",priority=\"3\"} 50\n") != NULL,
	       "queue bytes");
	TAP_OK(strstr(p.buf, "\ntinyedge_queue_messages_dropped_total{endpoint=\"$upstream\","
			     "priority=\"3\",reason=\"expired\"} 0\n") != NULL, "drops by reason");
	TAP_OK(sample_value(p.buf, "tinyedge_store_up", NULL, NULL) == 1 &&
	       sample_value(p.buf, "tinyedge_store_messages", NULL, NULL) == 6 &&
	       sample_value(p.buf, "tinyedge_store_bytes_written_total", NULL, NULL) == 53,
	       "store totals");
	te_prom_free(&p);
	te_store_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	TAP_EQ_INT(system(cmd), 0, "cleanup");
}

/* ---- the HTTP endpoint -------------------------------------------------- */

static struct te_loop loop;
static struct te_metrics m;
static unsigned short port;

static int connect_to(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Turn the loop until fd has the whole answer (EOF); the answer, or NULL
 * when it was reset. *reset says which. */
static char *answer(int fd, bool *reset)
{
	static char buf[1 << 20];
	size_t len = 0;
	ssize_t n;

	*reset = false;
	for (int i = 0; i < 400; i++) {
		te_loop_turn(&loop, 25);
		while ((n = recv(fd, buf + len, sizeof(buf) - 1 - len, MSG_DONTWAIT)) > 0)
			len += (size_t)n;
		if (n == 0)
			break;
		if (n < 0 && errno != EAGAIN) {
			*reset = true;
			break;
		}
	}
	buf[len] = '\0';
	close(fd);
	return buf;
}

static char *request(const char *req, size_t len, bool *reset)
{
	int fd = connect_to();

	if (fd < 0 || send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len) {
		*reset = true;
		if (fd >= 0)
			close(fd);
		return (char *)"";
	}
	return answer(fd, reset);
}

#define REQ(lit) request(lit, sizeof(lit) - 1, &reset)

static unsigned short free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	close(fd);
	return ntohs(sa.sin_port);
}

static void test_http_answers(void)
{
	static char big[TE_MHTTP_REQ_MAX + 1024];
	struct parsed ps;
	bool reset;
	char *a, *body;
	int n;

	a = REQ("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
	TAP_OK(!reset && !strncmp(a, "HTTP/1.0 200 OK\r\n", 17), "GET /metrics: 200");
	TAP_OK(strstr(a, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != NULL,
	       "the format's content type");
	body = strstr(a, "\r\n\r\n");
	TAP_OK(body && sscanf(strstr(a, "Content-Length: ") + 16, "%d", &n) == 1 &&
	       (size_t)n == strlen(body + 4), "Content-Length is the body's");
	parse_doc(&ps, body ? body + 4 : "");
	TAP_EQ_STR(ps.error, "", "the body parses");
	TAP_OK(ps.samples > 10, "with samples (%u)", ps.samples);

	a = REQ("HEAD /metrics?x=1 HTTP/1.0\n\n");
	TAP_OK(!strncmp(a, "HTTP/1.0 200 OK\r\n", 17) && strstr(a, "\r\n\r\n")[4] == '\0',
	       "HEAD (bare LFs, a query): headers only");
	a = REQ("GET /other HTTP/1.0\r\n\r\n");
	TAP_OK(!strncmp(a, "HTTP/1.0 404 ", 13), "another path: 404");
	a = REQ("GET /metricsx HTTP/1.0\r\n\r\n");
	TAP_OK(!strncmp(a, "HTTP/1.0 404 ", 13), "a longer path: 404");
	a = REQ("POST /metrics HTTP/1.0\r\n\r\n");
	TAP_OK(!strncmp(a, "HTTP/1.0 405 ", 13) && strstr(a, "\r\nAllow: GET, HEAD\r\n"),
	       "POST: 405 with Allow");
	a = REQ("GET /metrics\r\n\r\n");
	TAP_OK(!strncmp(a, "HTTP/1.0 400 ", 13), "no version: 400");
	a = REQ("GET  /metrics HTTP/1.0\r\n\r\n");
	TAP_OK(!strncmp(a, "HTTP/1.0 400 ", 13), "two spaces: 400");
	a = REQ("GET /metrics HTTP/2.0\r\n\r\n");
	TAP_OK(!strncmp(a, "HTTP/1.0 400 ", 13), "HTTP/2.0: 400");
	a = REQ("GET /me\0trics HTTP/1.0\r\n\r\n");
	TAP_OK(!strncmp(a, "HTTP/1.0 400 ", 13), "a NUL byte: 400");

	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	memcpy(big + sizeof(big) - 13, " HTTP/1.0\r\n\r\n", 13);
	a = request(big, sizeof(big), &reset);
	TAP_OK(!reset && !strncmp(a, "HTTP/1.0 414 ", 13), "a request line over 8 KiB: 414");
	TAP_OK(strstr(a, "# TYPE") == NULL, "and no metrics");
	/* Its CR LF CR LF across the buffer's end (8191 bytes): found anyway. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	memcpy(big + TE_MHTTP_REQ_MAX - 2 - 9, " HTTP/1.0\r\n\r\n", 13);
	a = request(big, TE_MHTTP_REQ_MAX + 2, &reset);
	TAP_OK(!reset && !strncmp(a, "HTTP/1.0 414 ", 13), "its blank line across the limit: 414");
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /metrics HTTP/1.0\r\nX: ", 26);
	memcpy(big + TE_MHTTP_REQ_MAX - 3, "\r\n\r\n", 4);
	a = request(big, TE_MHTTP_REQ_MAX + 1, &reset);
	TAP_OK(!reset && !strncmp(a, "HTTP/1.0 431 ", 13), "headers over 8 KiB: 431");
}

/* Every slot held by clients that send nothing: the next one waits in the
 * backlog until their deadline closes them, then is served. */
static void test_http_slow_clients(void)
{
	int idle[TE_MHTTP_CLIENTS], fd, closed = 0;
	bool reset;
	char *a, c;

	for (unsigned i = 0; i < TE_MHTTP_CLIENTS; i++)
		idle[i] = connect_to();
	for (int i = 0; i < 10; i++)
		te_loop_turn(&loop, 10);
	TAP_OK(m.paused, "all %d slots taken: not accepting", TE_MHTTP_CLIENTS);
	fd = connect_to();
	TAP_OK(fd >= 0 && send(fd, "GET /metrics HTTP/1.0\r\n\r\n", 25, MSG_NOSIGNAL) == 25,
	       "one more connects (backlog) and sends its request");
	a = answer(fd, &reset);  /* turns the loop past the idle clients' deadline */
	TAP_OK(!strncmp(a, "HTTP/1.0 200 OK\r\n", 17), "it is answered once a slot frees");
	/* Accepted a few ms apart, their deadlines are too: turn until the last. */
	for (int t = 0; t < 100 && closed < TE_MHTTP_CLIENTS; t++) {
		te_loop_turn(&loop, 25);
		for (unsigned i = 0; i < TE_MHTTP_CLIENTS; i++) {
			if (idle[i] >= 0 && recv(idle[i], &c, 1, MSG_DONTWAIT) == 0) {
				close(idle[i]);
				idle[i] = -1;
				closed++;
			}
		}
	}
	for (unsigned i = 0; i < TE_MHTTP_CLIENTS; i++)
		if (idle[i] >= 0)
			close(idle[i]);
	TAP_EQ_INT(closed, TE_MHTTP_CLIENTS, "the silent clients were closed at their deadline");
	TAP_OK(!m.paused, "accepting again");
}

static void test_http(void)
{
	static struct fake f;
	struct te_config cfg;

	fake_init(&f);
	te_config_defaults(&cfg);
	TAP_EQ_INT(te_loop_init(&loop), 0, "loop");
	TAP_EQ_INT(te_metrics_init(&m, &loop, &cfg, &f.src), 0, "no port: nothing listens");
	TAP_EQ_INT(m.listen.fd, -1, "no socket");
	te_metrics_free(&m);
	port = free_port();
	cfg.metrics.port = port;
	TAP_EQ_INT(te_metrics_init(&m, &loop, &cfg, &f.src), 0, "listen on 127.0.0.1:%u", port);
	test_http_answers();
	test_http_slow_clients();
	te_metrics_free(&m);
	TAP_OK(connect_to() < 0, "closed after free");
	TAP_OK(te_metrics_init(&m, &loop, &cfg, &f.src) == 0, "the port can be bound again at once");
	te_metrics_free(&m);
	te_loop_close(&loop);
}

int main(void)
{
	alarm(60);
	test_escaping();
	test_numbers();
	test_errors();
	test_growth();
	test_render();
	test_render_store();
	test_http();
	return tap_done();
}
