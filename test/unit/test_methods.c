/* The $edgeAgent built-in methods (agent/methods.h): the since/until
 * parser, request validation, GetModuleLogs' filters and its 128 KiB cap,
 * and the task registry. Modules are fake: a supervisor whose modules have
 * only a name and a log ring (nothing runs). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/methods.h"
#include "agent/supervisor.h"
#include "core/config.h"
#include "core/err.h"
#include "core/json.h"
#include "tap.h"

#define NOW 1700000000000ULL /* 2023-11-14T22:13:20Z */

static struct te_config cfg;
static struct te_supervisor sv;
static struct te_agent ag;

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct te_mod *mod_add(const char *name, size_t ring)
{
	struct te_mod *md = calloc(1, sizeof(*md));

	snprintf(md->name, sizeof(md->name), "%s", name);
	te_logring_init(&md->log, ring);
	md->want_running = true;
	sv.mods = realloc(sv.mods, (sv.nmods + 1) * sizeof(*sv.mods));
	sv.mods[sv.nmods++] = md;
	return md;
}

static void mods_free(void)
{
	for (unsigned i = 0; i < sv.nmods; i++) {
		te_logring_free(&sv.mods[i]->log);
		free(sv.mods[i]);
	}
	free(sv.mods);
	sv.mods = NULL;
	sv.nmods = 0;
}

/* Call a method; the body stays in *body (static, NUL-terminated). */
static unsigned call(const char *method, const char *payload, const char **body)
{
	static char *last;
	size_t len;
	unsigned st;
	char *out;

	free(last);
	last = NULL;
	st = te_agent_method(&ag, method, payload, payload ? strlen(payload) : 0, &out, &len);
	if (out) {
		last = malloc(len + 1);
		memcpy(last, out, len);
		last[len] = '\0';
		free(out);
	}
	*body = last ? last : "(none)";
	return st;
}

/* ---- since / until ---- */

static void test_time(void)
{
	static const struct { const char *s; uint64_t ms; } good[] = {
		{ "1 day", NOW - 86400000 },
		{ "1d", NOW - 86400000 },
		{ "2 hours 30 minutes", NOW - 9000000 },
		{ "2h30m", NOW - 9000000 },
		{ "90 m", NOW - 5400000 },
		{ "  90 m  ", NOW - 5400000 },
		{ "1 week 1 second", NOW - 604801000 },
		{ "45 secs", NOW - 45000 },
		{ "1700000000", 1700000000000ULL },
		{ "0", 0 },
		{ "2023-11-14T22:13:20Z", 1700000000000ULL },
		{ "2023-11-14t22:13:20z", 1700000000000ULL },
		{ "2023-11-14 22:13:20Z", 1700000000000ULL },
		{ "2023-11-14T23:13:20.25+01:00", 1700000000250ULL },
		{ "2023-11-14T20:13:20.123456-02:00", 1700000000123ULL },
		{ "2024-02-29T00:00:00Z", 1709164800000ULL },
		{ "1970-01-01T00:00:00Z", 0 },
		{ "1969-12-31T23:59:59Z", 0 },
		{ "20000 days", 0 },
	};
	static const char *const bad[] = {
		"", " ", "yesterday", "1 fortnight", "90 x", "m", "1.5h", "-5",
		"2023-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2023-11-14T24:00:00Z",
		"2023-11-14T22:13:20", "2023-11-14T22:13:20+0100", "2023-11-14T22:13:20.Z",
		"2023-11-14", "12345678901234", "1 day ago", "d1", "1 Day", "1000000 weeks",
	};
	uint64_t ms;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ms = 1;
		TAP_OK(te_agent_parse_time(good[i].s, NOW, &ms) == 0 && ms == good[i].ms,
		       "time \"%s\" = %llu (got %llu)", good[i].s,
		       (unsigned long long)good[i].ms, (unsigned long long)ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		TAP_EQ_INT(te_agent_parse_time(bad[i], NOW, &ms), -TE_EINVALID,
			   "time \"%s\" refused", bad[i]);
	}
}

/* ---- validation ---- */

static void expect(const char *method, const char *payload, unsigned status,
		   const char *needle)
{
	const char *body;
	unsigned st = call(method, payload, &body);

	TAP_OK(st == status && strstr(body, needle),
	       "%s %s -> %u with \"%s\" (got %u %s)", method, payload ? payload : "(none)",
	       status, needle, st, body);
}

static void test_validation(void)
{
	const char *body;

	TAP_EQ_INT(call("ping", NULL, &body), 200, "ping: 200");
	TAP_EQ_STR(body, "(none)", "ping: no payload");
	TAP_EQ_INT(call("PING", "{}", &body), 200, "method names without case; ping ignores {}");
	expect("Reboot", "{}", 400, "Command 'Reboot' not found");
	expect("Reboot", "{}", 400, "ping, RestartModule, GetModuleLogs, GetTaskStatus");

	expect("RestartModule", NULL, 400, "needs a payload");
	expect("RestartModule", "null", 400, "needs a payload");
	expect("RestartModule", "[1]", 400, "must be a JSON object");
	expect("RestartModule", "{\"schemaVersion\":\"1.0\",", 400, "payload:1:");
	expect("RestartModule", "{\"id\":\"a\"}", 400, "schemaVersion: missing");
	expect("RestartModule", "{\"schemaVersion\":1.0,\"id\":\"a\"}", 400,
	       "schemaVersion must be a string");
	expect("RestartModule", "{\"schemaVersion\":\"2.0\",\"id\":\"a\"}", 400,
	       "schemaVersion: expected \\\"1.0\\\"");
	expect("RestartModule", "{\"schemaVersion\":\"1\",\"id\":\"a\"}", 400, "schemaVersion");
	expect("RestartModule", "{\"schemaVersion\":\"1.0\"}", 400, "id: missing");
	expect("RestartModule", "{\"schemaVersion\":\"1.0\",\"id\":7}", 400, "id must be a string");
	expect("RestartModule", "{\"schemaVersion\":\"1.0\",\"id\":\"\"}", 400, "id must not be empty");
	expect("RestartModule", "{\"schemaVersion\":\"1.0\",\"id\":\"nobody\"}", 500,
	       "Module nobody not found in the current environment");
	sv.mods[0]->want_running = false;
	expect("RestartModule", "{\"schemaVersion\":\"1.1\",\"id\":\"alpha\"}", 500,
	       "cannot be restarted since it is not running");
	sv.mods[0]->want_running = true;

	expect("GetModuleLogs", "{\"schemaVersion\":\"1.0\",\"items\":[],\"encoding\":\"gzip\"}", 400,
	       "encoding: gzip is not supported");
	expect("GetModuleLogs", "{\"schemaVersion\":\"1.0\",\"items\":[],\"encoding\":\"zip\"}", 400,
	       "encoding must be");
	expect("GetModuleLogs", "{\"schemaVersion\":\"1.0\",\"items\":[],\"contentType\":\"xml\"}", 400,
	       "contentType must be");
	expect("GetModuleLogs", "{\"schemaVersion\":\"1.0\"}", 400, "items: missing");
	expect("GetModuleLogs", "{\"schemaVersion\":\"1.0\",\"items\":{}}", 400, "items must be an array");
	expect("GetModuleLogs", "{\"schemaVersion\":\"1.0\",\"items\":[3]}", 400, "items[0] must be an object");
	expect("GetModuleLogs", "{\"schemaVersion\":\"1.0\",\"items\":[{}]}", 400, "items[0].id: missing");
	expect("GetModuleLogs", "{\"schemaVersion\":\"1.0\",\"items\":[{\"id\":\"a\"},{\"id\":\"(\"}]}", 400,
	       "items[1].id: ");
	expect("GetModuleLogs", "{\"schemaVersion\":\"1.0\",\"items\":[{\"id\":\"a\",\"filter\":[]}]}", 400,
	       "items[0].filter must be an object");
	expect("GetModuleLogs", "{\"schemaVersion\":\"1.0\",\"items\":[{\"id\":\"a\",\"filter\":{\"tail\":-1}}]}",
	       400, "items[0].filter.tail must be an integer");
	expect("GetModuleLogs", "{\"schemaVersion\":\"1.0\",\"items\":[{\"id\":\"a\",\"filter\":{\"loglevel\":8}}]}",
	       400, "items[0].filter.loglevel must be an integer from 0 to 7");
	expect("GetModuleLogs", "{\"schemaVersion\":\"1.0\",\"items\":[{\"id\":\"a\",\"filter\":{\"since\":\"yesterday\"}}]}",
	       400, "items[0].filter.since: expected unix seconds");
	expect("GetModuleLogs", "{\"schemaVersion\":\"1.0\",\"items\":[{\"id\":\"a\",\"filter\":{\"until\":true}}]}",
	       400, "items[0].filter.until: expected");
	expect("GetModuleLogs", "{\"schemaVersion\":\"1.0\",\"items\":[{\"id\":\"a\",\"filter\":{\"regex\":\"[\"}}]}",
	       400, "items[0].filter.regex: ");
	/* Compile bombs are refused before regcomp allocates for them. */
	expect("GetModuleLogs", "{\"schemaVersion\":\"1.0\",\"items\":[{\"id\":\"a\",\"filter\":"
	       "{\"regex\":\"((a{100}){100}){100}\"}}]}", 400,
	       "items[0].filter.regex: the expression's repetitions expand past 1024");
	expect("GetModuleLogs", "{\"schemaVersion\":\"1.0\",\"items\":[{\"id\":\"^t++++++++++++++"
	       "+++++++++++++++++++++++++++++++++++++++++++++\"}]}", 400, "items[0].id: the expression's");
	expect("GetModuleLogs", "{\"schemaVersion\":\"1.0\",\"items\":[{\"id\":\"(a{16}){16}|[0-9]{1,3}"
	       "(\\\\.[0-9]{1,3}){3}|[[:alpha:]{}]+\"}]}", 200, "[");
	/* Keys without case and unknown keys ignored, as Newtonsoft reads them. */
	expect("GetModuleLogs", "{\"SchemaVersion\":\"1.0\",\"sasUrl\":\"x\",\"Items\":[{\"ID\":\"zzz\","
	       "\"Filter\":{\"Tail\":\"5\"}}]}", 200, "[]");

	expect("GetTaskStatus", "{\"schemaVersion\":\"1.0\"}", 400, "correlationId: missing");
	expect("GetTaskStatus", "{\"schemaVersion\":\"1.0\",\"correlationId\":\"nope\"}", 200,
	       "{\"status\":\"Unknown\",\"message\":\"\",\"correlationId\":\"nope\"}");
}

/* ---- GetModuleLogs ---- */

/* The answer parsed: payload of module name, or NULL; droppedLines too. */
static char *payload_of(const char *body, const char *name, int64_t *dropped)
{
	static struct te_json_doc doc;
	struct te_diag diag = { 0 };
	char id[80], *p = NULL;
	int t;

	*dropped = 0;
	te_json_free(&doc);
	if (te_json_parse(&doc, "answer", body, strlen(body), NULL, &diag) < 0 ||
	    doc.tok[0].type != TE_JSON_ARRAY)
		return NULL;
	TE_JSON_FOREACH_ELEM(&doc, 0, e) {
		t = te_json_get(&doc, e, "id");
		if (t < 0 || te_json_str(&doc, (unsigned)t, id, sizeof(id), NULL) < 0 || strcmp(id, name))
			continue;
		t = te_json_get(&doc, e, "droppedLines");
		if (t >= 0)
			te_json_int(&doc, (unsigned)t, dropped);
		t = te_json_get(&doc, e, "payload");
		if (t >= 0)
			p = te_json_strdup(&doc, (unsigned)t, NULL);
	}
	return p;
}

static unsigned count_of(const char *hay, const char *needle)
{
	unsigned n = 0;

	for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void feed(struct te_mod *md, int stream, const char *line, uint64_t t)
{
	te_logring_feed(&md->log, stream, line, strlen(line), t);
}

static char *logs(const char *items, const char *ctype, const char *name, int64_t *dropped)
{
	char req[1024];
	const char *body;
	unsigned st;

	snprintf(req, sizeof(req), "{\"schemaVersion\":\"1.0\",\"items\":%s,\"encoding\":\"none\","
		 "\"contentType\":\"%s\"}", items, ctype);
	st = call("GetModuleLogs", req, &body);
	if (st != 200) {
		printf("# GetModuleLogs %s: %u %s\n", items, st, body);
		return NULL;
	}
	return payload_of(body, name, dropped);
}

static void test_logs(void)
{
	uint64_t now = wall_ms(), old = now - 3 * 3600 * 1000;
	struct te_mod *a = sv.mods[0], *b = sv.mods[1];
	int64_t dropped;
	char *p, *q;

	feed(a, 1, "alpha old info\n", old);
	feed(a, 1, "<4>alpha warning\n", now - 60000);
	feed(a, 2, "alpha stderr plain\n", now - 50000);
	feed(a, 1, "<7>alpha debug\n", now - 40000);
	feed(a, 1, "alpha new info\n", now - 30000);
	feed(b, 1, "alpine one\n", now - 20000);
	feed(b, 1, "alpine two\n", now - 10000);
	feed(sv.mods[2], 1, "beta line\n", now);

	p = logs("[{\"id\":\"^ALP\"}]", "text", "alpha", &dropped);
	q = logs("[{\"id\":\"^ALP\"}]", "text", "alpine", &dropped);
	TAP_OK(p && count_of(p, "\n") == 5 && strstr(p, "alpha old info") &&
	       strstr(p, " stdout <4> alpha warning\n"), "id regex without case selects alpha");
	TAP_OK(q && strstr(q, "alpine one") && strstr(q, "alpine two"), "and alpine");
	free(p), free(q);
	p = logs("[{\"id\":\"^alp\"}]", "text", "beta", &dropped);
	TAP_OK(p == NULL, "not beta");
	p = logs("[{\"id\":\"pha\"}]", "text", "alpha", &dropped);
	TAP_OK(p != NULL, "the id regex matches anywhere in the name");
	free(p);
	p = logs("[{\"id\":\"all\"}]", "text", "beta", &dropped);
	TAP_OK(p && strstr(p, "beta line"), "id all: every module");
	free(p);

	p = logs("[{\"id\":\"alpha\",\"filter\":{\"tail\":2}}]", "text", "alpha", &dropped);
	TAP_OK(p && count_of(p, "\n") == 2 && strstr(p, "alpha debug") && strstr(p, "alpha new info"),
	       "tail 2: the last two lines");
	free(p);
	p = logs("[{\"id\":\"alpha\",\"filter\":{\"loglevel\":4}}]", "text", "alpha", &dropped);
	TAP_OK(p && count_of(p, "\n") == 2 && strstr(p, "alpha warning") && strstr(p, "stderr plain"),
	       "loglevel 4: the <4> line and the stderr line (level 3)");
	free(p);
	p = logs("[{\"id\":\"alpha\",\"filter\":{\"regex\":\"in[f]o$\"}}]", "text", "alpha", &dropped);
	TAP_OK(p && count_of(p, "\n") == 2, "regex on the text");
	free(p);
	p = logs("[{\"id\":\"alpha\",\"filter\":{\"since\":\"1 hour\",\"regex\":\"info\"}}]", "text",
		 "alpha", &dropped);
	TAP_OK(p && count_of(p, "\n") == 1 && strstr(p, "alpha new info"), "since 1 hour");
	free(p);
	p = logs("[{\"id\":\"alpha\",\"filter\":{\"until\":\"2 hours\"}}]", "text", "alpha", &dropped);
	TAP_OK(p && count_of(p, "\n") == 1 && strstr(p, "alpha old info"), "until 2 hours ago");
	free(p);
	p = logs("[{\"id\":\"alpha\",\"filter\":{\"tail\":0}},{\"id\":\"alpha\"}]", "text", "alpha",
		 &dropped);
	TAP_OK(p && !p[0], "the first item that selects a module gives its filter");
	free(p);

	p = logs("[{\"id\":\"alpha\",\"filter\":{\"tail\":2,\"loglevel\":3}}]", "json", "alpha", &dropped);
	TAP_OK(p && p[0] == '[' && strstr(p, "\"iothub\":") &&
	       strstr(p, "\"device\":\"unit-device\"") && strstr(p, "\"id\":\"alpha\"") &&
	       strstr(p, "\"stream\":\"stderr\"") && strstr(p, "\"loglevel\":3") &&
	       strstr(p, "\"text\":\"alpha stderr plain\"") && strstr(p, "\"timestamp\":\"20"),
	       "contentType json: a JSON array string of ModuleLogMessage objects");
	free(p);

	cfg.upstream.protocol = TE_UP_AZURE;
	snprintf(cfg.upstream.connection_string, sizeof(cfg.upstream.connection_string),
		 "HostName=myhub.azure-devices.net;DeviceId=unit-device;SharedAccessKey=AAAA");
	p = logs("[{\"id\":\"beta\"}]", "json", "beta", &dropped);
	TAP_OK(p && strstr(p, "\"iothub\":\"myhub.azure-devices.net\""),
	       "json: iothub is the connection string's HostName");
	free(p);
	cfg.upstream.protocol = TE_UP_NONE;
}

/* Many lines in two modules: the answer stays within 128 KiB and keeps
 * the newest lines of both. */
static void test_cap(void)
{
	struct te_mod *a = mod_add("big-a", 1 << 20), *b = mod_add("big-b", 1 << 20);
	uint64_t t0 = wall_ms() - 100000;
	char line[300], first_a[32], last_a[32], last_b[32];
	const char *body;
	int64_t da, db;
	char *pa, *pb;
	unsigned i;

	for (i = 0; i < 2000; i++) {
		/* Quotes and a backslash: each costs two bytes escaped. */
		snprintf(line, sizeof(line), "line %05u \"quoted\" \\ %0200d\n", i, 0);
		feed(i % 2 ? b : a, 1, line, t0 + i);
	}
	snprintf(first_a, sizeof(first_a), "line %05u ", 0);
	snprintf(last_a, sizeof(last_a), "line %05u ", 1998);
	snprintf(last_b, sizeof(last_b), "line %05u ", 1999);
	TAP_EQ_INT(call("GetModuleLogs", "{\"schemaVersion\":\"1.0\",\"items\":[{\"id\":\"^big\"}]}", &body),
		   200, "GetModuleLogs of 800 KB of lines: 200");
	TAP_OK(strlen(body) <= TE_AGENT_RESPONSE_MAX && strlen(body) > TE_AGENT_RESPONSE_MAX - 1024,
	       "the answer is within 128 KiB and nearly fills it (%zu bytes)", strlen(body));
	pa = payload_of(body, "big-a", &da);
	pb = payload_of(body, "big-b", &db);
	TAP_OK(pa && pb && strstr(pa, last_a) && strstr(pb, last_b) && !strstr(pa, first_a),
	       "the newest lines of both modules are kept, the oldest dropped");
	TAP_OK(da > 0 && db > 0 && da + db + count_of(pa, "\n") + count_of(pb, "\n") == 2000,
	       "droppedLines counts what was left out (%lld + %lld)", (long long)da, (long long)db);
	TAP_OK(abs((int)da - (int)db) <= 1, "the cut is by time across modules (%lld vs %lld)",
	       (long long)da, (long long)db);
	free(pa), free(pb);

	TAP_EQ_INT(call("GetModuleLogs", "{\"schemaVersion\":\"1.0\",\"items\":[{\"id\":\"^big\"}],"
			"\"contentType\":\"json\"}", &body), 200, "json: 200");
	TAP_OK(strlen(body) <= TE_AGENT_RESPONSE_MAX, "json: within 128 KiB (%zu)", strlen(body));
	pb = payload_of(body, "big-b", &db);
	TAP_OK(pb && strstr(pb, last_b) && db > 0, "json: newest kept, dropped counted");
	free(pb);
}

/* ---- tasks ---- */

static bool uuid_v4_shape(const char *id)
{
	if (!id || strlen(id) != 36 || id[14] != '4' || !strchr("89ab", id[19]))
		return false;
	for (int i = 0; i < 36; i++)
		if ((i == 8 || i == 13 || i == 18 || i == 23) ? id[i] != '-' : !strchr("0123456789abcdef", id[i]))
			return false;
	return true;
}

static void task_status(const char *id, const char *expect_json)
{
	char req[128];
	const char *body;

	snprintf(req, sizeof(req), "{\"schemaVersion\":\"1.0\",\"correlationId\":\"%s\"}", id);
	call("GetTaskStatus", req, &body);
	TAP_EQ_STR(body, expect_json, "GetTaskStatus %s", id);
}

static void test_tasks(void)
{
	struct te_agent_tasks *t = &ag.tasks;
	char ids[TE_AGENT_TASKS][TE_TASK_ID_LEN + 1], want[320];
	const char *id;

	id = te_agent_task_begin(t, "deployment 1");
	TAP_OK(uuid_v4_shape(id), "a correlation id is a UUID v4: %s", id ? id : "(null)");
	snprintf(ids[0], sizeof(ids[0]), "%s", id);
	snprintf(want, sizeof(want), "{\"status\":\"Running\",\"message\":\"\",\"correlationId\":\"%s\"}", ids[0]);
	task_status(ids[0], want);
	TAP_EQ_INT(te_agent_task_end(t, ids[0], false, "image not found"), 0, "end: failed");
	snprintf(want, sizeof(want), "{\"status\":\"Failed\",\"message\":\"Task deployment 1 failed "
		 "because of error image not found\",\"correlationId\":\"%s\"}", ids[0]);
	task_status(ids[0], want);
	TAP_EQ_INT(te_agent_task_end(t, ids[0], true, NULL), -EALREADY, "a task ends once");
	TAP_EQ_INT(te_agent_task_end(t, "not-an-id", true, NULL), -ENOENT, "unknown id: -ENOENT");

	for (unsigned i = 1; i < TE_AGENT_TASKS; i++) {
		id = te_agent_task_begin(t, "work");
		snprintf(ids[i], sizeof(ids[i]), "%s", id ? id : "");
	}
	TAP_OK(strcmp(ids[1], ids[2]) && strcmp(ids[0], ids[1]), "ids differ");
	TAP_EQ_INT(te_agent_task_end(t, ids[5], true, NULL), 0, "task 5 completed");
	TAP_EQ_INT(te_agent_task_cancel(t, ids[2]), 0, "task 2 cancelled");
	snprintf(want, sizeof(want), "{\"status\":\"Completed\",\"message\":\"\",\"correlationId\":\"%s\"}", ids[5]);
	task_status(ids[5], want);
	snprintf(want, sizeof(want), "{\"status\":\"Cancelled\",\"message\":\"\",\"correlationId\":\"%s\"}", ids[2]);
	task_status(ids[2], want);

	/* Full: the next ones take the slots of the tasks that finished first:
	 * 0 (failed), then 5, then 2; then none is left. */
	TAP_OK(te_agent_task_begin(t, "w") != NULL, "a new task when the table is full");
	TAP_OK(!te_agent_task_find(t, ids[0]) && te_agent_task_find(t, ids[5]), "it took task 0's slot");
	TAP_OK(te_agent_task_begin(t, "w") != NULL && !te_agent_task_find(t, ids[5]) &&
	       te_agent_task_find(t, ids[2]), "then task 5's");
	TAP_OK(te_agent_task_begin(t, "w") != NULL && !te_agent_task_find(t, ids[2]), "then task 2's");
	TAP_OK(te_agent_task_begin(t, "w") == NULL, "all running: no slot (NULL)");
	TAP_OK(te_agent_task_find(t, ids[31]) && te_agent_task_find(t, ids[31])->status == TE_TASK_RUNNING,
	       "running tasks are never dropped");
	snprintf(want, sizeof(want), "{\"status\":\"Unknown\",\"message\":\"\",\"correlationId\":\"%s\"}", ids[0]);
	task_status(ids[0], want);
}

int main(void)
{
	te_config_defaults(&cfg);
	snprintf(cfg.device_id, sizeof(cfg.device_id), "unit-device");
	sv.cfg = &cfg;
	te_agent_init(&ag, &sv);
	mod_add("alpha", 65536);
	mod_add("alpine", 65536);
	mod_add("beta", 65536);

	test_time();
	test_validation();
	test_logs();
	test_cap();
	test_tasks();
	mods_free();
	return tap_done();
}
