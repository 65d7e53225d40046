/* Client verbs that talk to a running daemon: list, stats, logs, start,
 * stop, restart, queue, metrics, twin, images, ... (protocol in server.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "core/err.h"
#include "core/json.h"
#include "images/imgcodec.h"

/* Connect to the daemon of the state dir; prints why not. fd or -1. */
static int ctl_connect(const struct te_cli *cli)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	const char *dir = te_cli_state_dir(cli);
	int fd;

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/control.sock", dir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
		return fd;
	if (errno == EACCES)
		fprintf(stderr, "tinyedge %s: %s: permission denied (root, the daemon's user and "
			"the group control.adminGroup names may use it)\n", cli->verb, addr.sun_path);
	else
		fprintf(stderr, "tinyedge %s: no daemon running with state dir %s (%s: %s)\n",
			cli->verb, dir, addr.sun_path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static int send_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

#define ANSWER_MAX (64u << 20)

/* Read the whole answer (up to ANSWER_MAX) into a malloc'd NUL-terminated
 * buffer; NULL (reported) if it is longer. */
static char *recv_all(int fd, size_t *len)
{
	size_t cap = 65536;
	char *buf = malloc(cap), *p;
	ssize_t n;

	*len = 0;
	while (buf && (n = recv(fd, buf + *len, cap - *len - 1, 0)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		*len += (size_t)n;
		if (*len + 1 < cap)
			continue;
		if (cap >= ANSWER_MAX || !(p = realloc(buf, cap * 2))) {
			/* Never print a truncated answer as if it were whole. */
			fprintf(stderr, "tinyedge: the daemon's answer is over %u MiB%s\n",
				ANSWER_MAX >> 20, cap >= ANSWER_MAX ? " (use --limit)" : ": out of memory");
			free(buf);
			return NULL;
		}
		buf = p;
		cap *= 2;
	}
	if (buf)
		buf[*len] = '\0';
	return buf;
}

/* An {"error":..., "code":N} answer: print it, return N; else -1. */
int te_ctl_answer_error(const struct te_cli *cli, const char *buf, size_t len)
{
	struct te_diag diag = { 0 };
	struct te_json_doc doc;
	char msg[512];
	int64_t code = 1;
	int e, c;

	if (len == 0 || buf[0] != '{' ||
	    te_json_parse(&doc, "answer", buf, strcspn(buf, "\n"), NULL, &diag) < 0)
		return -1;
	e = te_json_get(&doc, 0, "error");
	c = te_json_get(&doc, 0, "code");
	if (e >= 0 && te_json_str(&doc, (unsigned)e, msg, sizeof(msg), NULL) >= 0) {
		if (c >= 0)
			te_json_int(&doc, (unsigned)c, &code);
		fprintf(stderr, "tinyedge %s: %s\n", cli->verb, msg);
		te_json_free(&doc);
		return code == TE_EXIT_USAGE ? TE_EXIT_USAGE : TE_EXIT_FAIL;
	}
	te_json_free(&doc);
	return -1;
}

/* Send one request, return the whole answer (NULL on failure, reported). */
char *te_ctl_call(const struct te_cli *cli, const char *req, size_t *len)
{
	int fd = ctl_connect(cli);
	char *buf;

	if (fd < 0)
		return NULL;
	if (send_all(fd, req, strlen(req)) < 0) {
		int e = errno;

		/* A refused client gets one error line before the hang-up. */
		buf = recv_all(fd, len);
		if (buf && *len) {
			close(fd);
			return buf;
		}
		free(buf);
		fprintf(stderr, "tinyedge %s: cannot send to the daemon: %s\n", cli->verb, strerror(e));
		close(fd);
		return NULL;
	}
	buf = recv_all(fd, len);
	close(fd);
	return buf;
}


/* --- list --- */

static void field_text(const struct te_json_doc *d, unsigned obj, const char *key,
		       char *buf, size_t cap)
{
	int t = te_json_get(d, obj, key);
	int64_t v;

	snprintf(buf, cap, "-");
	if (t < 0)
		return;
	if (d->tok[t].type == TE_JSON_STRING)
		te_json_str(d, (unsigned)t, buf, cap, NULL);
	else if (te_json_int(d, (unsigned)t, &v) == 0)
		snprintf(buf, cap, "%lld", (long long)v);
}

static void print_module_row(const struct te_json_doc *d, unsigned m)
{
	char name[80], st[32], pid[16], rc[16], up[24], code[16], sig[16], mem[24];
	char out[24], in[24];
	int64_t v;
	int t;

	field_text(d, m, "name", name, sizeof(name));
	field_text(d, m, "runtimeStatus", st, sizeof(st));
	field_text(d, m, "pid", pid, sizeof(pid));
	field_text(d, m, "restartCount", rc, sizeof(rc));
	field_text(d, m, "uptimeSecs", up, sizeof(up));
	field_text(d, m, "exitCode", code, sizeof(code));
	field_text(d, m, "signal", sig, sizeof(sig));
	field_text(d, m, "messagesOut", out, sizeof(out));
	field_text(d, m, "messagesIn", in, sizeof(in));
	t = te_json_get(d, m, "memoryBytes");
	if (t >= 0 && te_json_int(d, (unsigned)t, &v) == 0)
		snprintf(mem, sizeof(mem), "%lld KiB", (long long)(v / 1024));
	else
		snprintf(mem, sizeof(mem), "-");
	if (!strcmp(pid, "0"))
		snprintf(pid, sizeof(pid), "-");
	if (strcmp(sig, "-"))
		snprintf(code, sizeof(code), "sig %s", sig);
	printf("%-20s %-10s %-8s %-8s %-8s %-10s %-10s %-10s %s\n", name, st, pid, rc,
	       strcmp(pid, "-") ? up : "-", code, out, in, mem);
}

static int print_list(const char *buf, size_t len)
{
	struct te_diag diag = { 0 };
	struct te_json_limits lim = { 16u << 20, 1u << 20, 8 };
	struct te_json_doc doc;
	int mods;

	if (te_json_parse(&doc, "answer", buf, len, &lim, &diag) < 0 ||
	    (mods = te_json_get(&doc, 0, "modules")) < 0 ||
	    doc.tok[mods].type != TE_JSON_ARRAY) {
		fprintf(stderr, "tinyedge list: malformed answer from the daemon\n");
		te_json_free(&doc);
		return TE_EXIT_FAIL;
	}
	printf("%-20s %-10s %-8s %-8s %-8s %-10s %-10s %-10s %s\n", "NAME", "STATUS", "PID",
	       "RESTARTS", "UPTIME", "LAST-EXIT", "MSGS-OUT", "MSGS-IN", "MEMORY");
	TE_JSON_FOREACH_ELEM(&doc, (unsigned)mods, m)
		print_module_row(&doc, m);
	te_json_free(&doc);
	return TE_EXIT_OK;
}

/* The list answer, printed by print (or as is with --json): list, stats. */
static int list_view(int argc, char **argv, int (*print)(const char *buf, size_t len))
{
	struct te_cli cli;
	size_t len;
	char *buf;
	int rc;

	if (te_cli_parse(&cli, argc, argv, TE_OPT_JSON) < 0)
		return TE_EXIT_USAGE;
	if (cli.help)
		return te_help(argv[0]);
	if (cli.argc)
		return te_cli_usage_error(&cli, "unexpected argument '%s'", cli.argv[0]);
	buf = te_ctl_call(&cli, "{\"cmd\":\"list\"}\n", &len);
	if (!buf)
		return TE_EXIT_FAIL;
	if ((rc = te_ctl_answer_error(&cli, buf, len)) < 0) {
		if (cli.json)
			fwrite(buf, 1, len, stdout), rc = TE_EXIT_OK;
		else
			rc = print(buf, len);
	}
	free(buf);
	return rc;
}

int te_cmd_list(int argc, char **argv)
{
	return list_view(argc, argv, print_list);
}

/* --- stats --- */

static void print_row(const struct te_json_doc *d, unsigned obj, const char *const *keys,
		      unsigned n)
{
	char v[80];

	for (unsigned i = 0; i < n; i++) {
		field_text(d, obj, keys[i], v, sizeof(v));
		printf(i ? " %-12s" : "%-20s", v);
	}
	printf("\n");
}

static int print_stats(const char *buf, size_t len)
{
	static const char *const mod_keys[] = { "name", "messagesOut", "messagesIn",
		"messagesSpilled", "spillBytes", "messagesDropped", "blockedCount" };
	static const char *const route_keys[] = { "name", "overflow", "matched", "delivered",
		"droppedNoModule", "droppedFull", "droppedOldest" };
	struct te_diag diag = { 0 };
	struct te_json_limits lim = { 16u << 20, 1u << 20, 8 };
	struct te_json_doc doc;
	int mods, routes, up;
	int64_t n = 0;

	if (te_json_parse(&doc, "answer", buf, len, &lim, &diag) < 0 ||
	    (mods = te_json_get(&doc, 0, "modules")) < 0 || doc.tok[mods].type != TE_JSON_ARRAY) {
		fprintf(stderr, "tinyedge stats: malformed answer from the daemon\n");
		te_json_free(&doc);
		return TE_EXIT_FAIL;
	}
	printf("%-20s %-12s %-12s %-12s %-12s %-12s %s\n", "MODULE", "MSGS-OUT", "MSGS-IN",
	       "SPILLED", "QUEUE-BYTES", "DROPPED", "BLOCKED");
	TE_JSON_FOREACH_ELEM(&doc, (unsigned)mods, m)
		print_row(&doc, m, mod_keys, 7);
	routes = te_json_get(&doc, 0, "routes");
	if (routes >= 0 && doc.tok[routes].type == TE_JSON_ARRAY) {
		printf("\n%-20s %-12s %-12s %-12s %-12s %-12s %s\n", "ROUTE", "OVERFLOW",
		       "MATCHED", "DELIVERED", "NO-MODULE", "FULL", "OLDEST");
		TE_JSON_FOREACH_ELEM(&doc, (unsigned)routes, r)
			print_row(&doc, r, route_keys, 7);
	}
	up = te_json_get(&doc, 0, "upstreamMessages");
	if (up >= 0 && te_json_int(&doc, (unsigned)up, &n) == 0)
		printf("\n$upstream: %lld messages\n", (long long)n);
	te_json_free(&doc);
	return TE_EXIT_OK;
}

int te_cmd_stats(int argc, char **argv)
{
	return list_view(argc, argv, print_stats);
}

/* --- queue --- */

static int64_t num(const struct te_json_doc *d, int obj, const char *key)
{
	int t = obj >= 0 ? te_json_get(d, (unsigned)obj, key) : -1;
	int64_t v = 0;

	if (t >= 0)
		te_json_int(d, (unsigned)t, &v);
	return v;
}

static int print_queue(const char *buf, size_t len)
{
	struct te_diag diag = { 0 };
	struct te_json_doc doc;
	char text[300], ep[160];
	int st, up, qs, e;

	if (te_json_parse(&doc, "answer", buf, len, NULL, &diag) < 0 ||
	    (st = te_json_get(&doc, 0, "store")) < 0 || (up = te_json_get(&doc, 0, "upstream")) < 0 ||
	    (qs = te_json_get(&doc, 0, "queues")) < 0) {
		fprintf(stderr, "tinyedge queue: malformed answer from the daemon\n");
		te_json_free(&doc);
		return TE_EXIT_FAIL;
	}
	e = te_json_get(&doc, (unsigned)st, "error");
	if (e >= 0 && te_json_str(&doc, (unsigned)e, text, sizeof(text), NULL) >= 0) {
		printf("store: NOT AVAILABLE: %s\n", text);
	} else {
		printf("store: %lld messages, %lld bytes; file %lld of %lld bytes (quota %lld)\n",
		       (long long)num(&doc, st, "messages"), (long long)num(&doc, st, "bytes"),
		       (long long)num(&doc, st, "fileBytes"), (long long)num(&doc, st, "mapBytes"),
		       (long long)num(&doc, st, "capBytes"));
		printf("store: written %lld bytes (%lld per hour), %lld commits, %lld expired, %lld evicted\n",
		       (long long)num(&doc, st, "storeBytesWritten"),
		       (long long)num(&doc, st, "storeBytesWrittenPerHour"),
		       (long long)num(&doc, st, "commits"), (long long)num(&doc, st, "expired"),
		       (long long)num(&doc, st, "evicted"));
		e = te_json_get(&doc, (unsigned)st, "lastError");
		if (e >= 0 && te_json_str(&doc, (unsigned)e, text, sizeof(text), NULL) >= 0)
			printf("store: last error: %s\n", text);
	}
	printf("$upstream: %lld accepted, %lld committed, %lld failed, %lld dropped\n\n",
	       (long long)num(&doc, up, "accepted"), (long long)num(&doc, up, "committed"),
	       (long long)num(&doc, up, "failed"), (long long)num(&doc, up, "dropped"));
	printf("%-20s %-4s %-10s %-12s %-10s %-10s %-10s %s\n", "ENDPOINT", "PRIO", "MESSAGES",
	       "BYTES", "OLDEST-S", "DELIVERED", "EXPIRED", "EVICTED");
	TE_JSON_FOREACH_ELEM(&doc, (unsigned)qs, q) {
		field_text(&doc, q, "endpoint", ep, sizeof(ep));
		printf("%-20s %-4lld %-10lld %-12lld %-10lld %-10lld %-10lld %lld\n", ep,
		       (long long)num(&doc, (int)q, "priority"), (long long)num(&doc, (int)q, "messages"),
		       (long long)num(&doc, (int)q, "bytes"), (long long)num(&doc, (int)q, "oldestAgeSecs"),
		       (long long)num(&doc, (int)q, "delivered"), (long long)num(&doc, (int)q, "expired"),
		       (long long)num(&doc, (int)q, "evicted"));
	}
	te_json_free(&doc);
	return TE_EXIT_OK;
}

int te_cmd_queue(int argc, char **argv)
{
	struct te_cli cli;
	char req[512];
	struct te_jw w;
	const char *action = "stats";
	long limit = 100;
	char *buf, *end;
	size_t len;
	int rc;

	if (te_cli_parse(&cli, argc, argv, TE_OPT_JSON | TE_OPT_QUEUE) < 0)
		return TE_EXIT_USAGE;
	if (cli.help)
		return te_help(argv[0]);
	if (cli.argc) {
		action = cli.argv[0];
		if ((strcmp(action, "purge") && strcmp(action, "peek")) || cli.argc != 2)
			return te_cli_usage_error(&cli, "expected 'queue', 'queue purge ENDPOINT' or "
						  "'queue peek ENDPOINT'");
	}
	if (cli.limit) {
		errno = 0;
		limit = strtol(cli.limit, &end, 10);
		if (errno || *end || end == cli.limit || limit < 1 || limit > 1000000)
			return te_cli_usage_error(&cli, "--limit '%s': 1 to 1000000", cli.limit);
	}
	te_jw_init(&w, req, sizeof(req) - 2);
	te_jw_obj_open(&w);
	te_jw_kstr(&w, "cmd", "queue");
	te_jw_kstr(&w, "action", action);
	if (cli.argc == 2)
		te_jw_kstr(&w, "endpoint", cli.argv[1]);
	te_jw_kint(&w, "limit", limit);
	te_jw_obj_close(&w);
	if (te_jw_finish(&w) < 0)
		return te_cli_usage_error(&cli, "endpoint name too long");
	memcpy(req + w.len, "\n", 2);
	buf = te_ctl_call(&cli, req, &len);
	if (!buf)
		return TE_EXIT_FAIL;
	rc = te_ctl_answer_error(&cli, buf, len);
	if (rc < 0 && (cli.json || cli.argc))
		fwrite(buf, 1, len, stdout), rc = TE_EXIT_OK;
	else if (rc < 0)
		rc = print_queue(buf, len);
	free(buf);
	return rc;
}

/* --- metrics --- */

int te_cmd_metrics(int argc, char **argv)
{
	struct te_cli cli;
	size_t len;
	char *buf;
	int rc;

	if (te_cli_parse(&cli, argc, argv, 0) < 0)
		return TE_EXIT_USAGE;
	if (cli.help)
		return te_help(argv[0]);
	if (cli.argc)
		return te_cli_usage_error(&cli, "unexpected argument '%s'", cli.argv[0]);
	buf = te_ctl_call(&cli, "{\"cmd\":\"metrics\"}\n", &len);
	if (!buf)
		return TE_EXIT_FAIL;
	/* Prometheus text starts with '#': only an error answer is JSON. */
	rc = te_ctl_answer_error(&cli, buf, len);
	if (rc < 0)
		rc = fwrite(buf, 1, len, stdout) == len ? TE_EXIT_OK : TE_EXIT_FAIL;
	free(buf);
	return rc;
}

/* --- twin --- */

/* The request: {"cmd":"twin","module":NAME[,"desired":PATCH]} and a
 * newline, malloc'd; NULL (reported) when out of memory or too long. */
static char *twin_request(const struct te_cli *cli)
{
	size_t cap = 512 + (cli->desired ? 6 * strlen(cli->desired) : 0);
	char *req = malloc(cap);
	struct te_jw w;

	if (!req) {
		fprintf(stderr, "tinyedge %s: out of memory\n", cli->verb);
		return NULL;
	}
	te_jw_init(&w, req, cap - 2);
	te_jw_obj_open(&w);
	te_jw_kstr(&w, "cmd", "twin");
	te_jw_kstr(&w, "module", cli->argv[0]);
	if (cli->desired)
		te_jw_kstr(&w, "desired", cli->desired);
	te_jw_obj_close(&w);
	if (te_jw_finish(&w) < 0) {
		te_cli_usage_error(cli, "module name too long");
		free(req);
		return NULL;
	}
	memcpy(req + w.len, "\n", 2);
	return req;
}

int te_cmd_twin(int argc, char **argv)
{
	struct te_cli cli;
	size_t len;
	char *buf, *req;
	int rc;

	if (te_cli_parse(&cli, argc, argv, TE_OPT_TWIN) < 0)
		return TE_EXIT_USAGE;
	if (cli.help)
		return te_help(argv[0]);
	if (cli.argc != 1)
		return te_cli_usage_error(&cli, "expected one module NAME");
	if (cli.desired && !cli.desired[0])
		return te_cli_usage_error(&cli, "--desired needs a JSON object, e.g. '{\"a\":1}'");
	req = twin_request(&cli);
	if (!req)
		return TE_EXIT_USAGE;
	buf = te_ctl_call(&cli, req, &len);
	free(req);
	if (!buf)
		return TE_EXIT_FAIL;
	rc = te_ctl_answer_error(&cli, buf, len);
	if (rc < 0) {
		fwrite(buf, 1, len, stdout);
		rc = TE_EXIT_OK;
	}
	free(buf);
	return rc;
}

/* --- call --- */

/* Print the answer's payload; exit 0 for a 2xx status, else 1. */
static int print_call(const struct te_cli *cli, const char *buf, size_t len)
{
	struct te_diag diag = { 0 };
	struct te_json_doc doc;
	int64_t status = 0;
	int st, pl;

	if (te_json_parse(&doc, "answer", buf, strcspn(buf, "\n"), NULL, &diag) < 0 ||
	    (st = te_json_get(&doc, 0, "status")) < 0 ||
	    te_json_int(&doc, (unsigned)st, &status) < 0 ||
	    (pl = te_json_get(&doc, 0, "payload")) < 0) {
		fprintf(stderr, "tinyedge %s: malformed answer from the daemon\n", cli->verb);
		if (doc.tok)
			te_json_free(&doc);
		return TE_EXIT_FAIL;
	}
	/* A string token's span is inside its quotes. */
	if (doc.tok[pl].type == TE_JSON_STRING)
		printf("%.*s\n", (int)(doc.tok[pl].end - doc.tok[pl].start + 2),
		       doc.text + doc.tok[pl].start - 1);
	else
		printf("%.*s\n", (int)(doc.tok[pl].end - doc.tok[pl].start),
		       doc.text + doc.tok[pl].start);
	te_json_free(&doc);
	if (status >= 200 && status < 300)
		return TE_EXIT_OK;
	fprintf(stderr, "tinyedge %s: %s answered status %lld\n", cli->verb, cli->argv[0],
		(long long)status);
	return TE_EXIT_FAIL;
}

int te_cmd_call(int argc, char **argv)
{
	struct te_diag diag = { 0 };
	struct te_json_doc doc;
	struct te_cli cli;
	const char *payload = "null";
	long secs = 30;
	char *req, *buf, *end;
	size_t len, cap;
	struct te_jw w;
	int rc;

	if (te_cli_parse(&cli, argc, argv, TE_OPT_CALL) < 0)
		return TE_EXIT_USAGE;
	if (cli.help)
		return te_help(argv[0]);
	if (cli.argc < 2 || cli.argc > 3)
		return te_cli_usage_error(&cli, "expected a module NAME, a METHOD and an optional JSON PAYLOAD");
	if (cli.timeout) {
		errno = 0;
		secs = strtol(cli.timeout, &end, 10);
		if (errno || *end || end == cli.timeout || secs < 1 || secs > 3600)
			return te_cli_usage_error(&cli, "--timeout '%s': 1 to 3600 seconds", cli.timeout);
	}
	if (cli.argc == 3) {
		payload = cli.argv[2];
		if (te_json_parse(&doc, "PAYLOAD", payload, strlen(payload), NULL, &diag) < 0)
			return te_cli_usage_error(&cli, "PAYLOAD is not valid JSON: %s", payload);
		te_json_free(&doc);
	}
	cap = strlen(payload) + 6 * (strlen(cli.argv[0]) + strlen(cli.argv[1])) + 128;
	req = malloc(cap);
	if (!req)
		return TE_EXIT_FAIL;
	te_jw_init(&w, req, cap);
	te_jw_obj_open(&w);
	te_jw_kstr(&w, "cmd", "call");
	te_jw_kstr(&w, "module", cli.argv[0]);
	te_jw_kstr(&w, "method", cli.argv[1]);
	te_jw_kint(&w, "timeoutSecs", secs);
	te_jw_key(&w, "payload");
	te_jw_raw(&w, payload, strlen(payload));
	te_jw_obj_close(&w);
	if (te_jw_finish(&w) < 0 || w.len + 2 > cap) {
		free(req);
		return te_cli_usage_error(&cli, "request too large");
	}
	memcpy(req + w.len, "\n", 2);
	buf = te_ctl_call(&cli, req, &len);
	free(req);
	if (!buf)
		return TE_EXIT_FAIL;
	rc = te_ctl_answer_error(&cli, buf, len);
	if (rc < 0)
		rc = print_call(&cli, buf, len);
	free(buf);
	return rc;
}

/* --- start, stop, restart --- */

/* Parse a verb that takes one module NAME. 0, or the exit code to return
 * (help printed, or a usage error reported). */
static int parse_module_verb(struct te_cli *cli, int argc, char **argv,
			     unsigned opts)
{
	if (te_cli_parse(cli, argc, argv, opts) < 0)
		return TE_EXIT_USAGE;
	if (cli->help) {
		te_help(argv[0]);
		return -1;
	}
	if (cli->argc != 1)
		return te_cli_usage_error(cli, "expected one module NAME");
	if (strlen(cli->argv[0]) > TE_MODULE_NAME_MAX || strpbrk(cli->argv[0], "\"\\"))
		return te_cli_usage_error(cli, "invalid module name '%s'", cli->argv[0]);
	return 0;
}

static int one_module_verb(int argc, char **argv)
{
	struct te_cli cli;
	char req[256];
	size_t len;
	char *buf;
	int rc;

	if ((rc = parse_module_verb(&cli, argc, argv, 0)) != 0)
		return rc < 0 ? TE_EXIT_OK : rc;
	snprintf(req, sizeof(req), "{\"cmd\":\"%s\",\"module\":\"%s\"}\n", argv[0], cli.argv[0]);
	buf = te_ctl_call(&cli, req, &len);
	if (!buf)
		return TE_EXIT_FAIL;
	rc = te_ctl_answer_error(&cli, buf, len);
	free(buf);
	return rc < 0 ? TE_EXIT_OK : rc;
}

int te_cmd_start(int argc, char **argv) { return one_module_verb(argc, argv); }
int te_cmd_stop(int argc, char **argv) { return one_module_verb(argc, argv); }
int te_cmd_restart(int argc, char **argv) { return one_module_verb(argc, argv); }

/* --- logs --- */

/* "90", "90s", "10m", "2h", "1d" -> milliseconds; -1 if invalid. */
static int64_t parse_duration(const char *s)
{
	static const struct { char unit; int64_t ms; } units[] = {
		{ 's', 1000 }, { 'm', 60000 }, { 'h', 3600000 }, { 'd', 86400000 },
	};
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || v < 0 || v > 100LL * 365 * 86400)
		return -1;
	if (*end == '\0')
		return v * 1000;
	for (unsigned i = 0; i < 4; i++)
		if (end[0] == units[i].unit && end[1] == '\0')
			return v * units[i].ms;
	return -1;
}

static int logs_request(const struct te_cli *cli, char *req, size_t cap)
{
	long long tail = -1;
	int64_t since = 0, d;
	struct timespec now;
	char *end;

	if (cli->tail) {
		errno = 0;
		tail = strtoll(cli->tail, &end, 10);
		if (errno || *end || end == cli->tail || tail < 0)
			return te_cli_usage_error(cli, "--tail: expected a number of lines, got '%s'", cli->tail);
	}
	if (cli->since) {
		if ((d = parse_duration(cli->since)) < 0)
			return te_cli_usage_error(cli, "--since: expected a duration like 90s, 10m, 2h or 1d, got '%s'", cli->since);
		clock_gettime(CLOCK_REALTIME, &now);
		since = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - d;
	}
	snprintf(req, cap, "{\"cmd\":\"logs\",\"module\":\"%s\",\"tail\":%lld,\"sinceMs\":%lld,\"follow\":%s}\n",
		 cli->argv[0], tail, (long long)since, cli->follow ? "true" : "false");
	return 0;
}

/* Stream the answer to stdout as it comes (logs -f runs until killed). */
static int logs_stream(const struct te_cli *cli, int fd)
{
	char buf[65536];
	bool first = true;
	ssize_t n;
	int rc;

	while ((n = recv(fd, buf, sizeof(buf) - 1, 0)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return TE_EXIT_FAIL;
		buf[n] = '\0';
		if (first && (rc = te_ctl_answer_error(cli, buf, (size_t)n)) >= 0)
			return rc;
		first = false;
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n || fflush(stdout))
			return TE_EXIT_FAIL;
	}
	return TE_EXIT_OK;
}

int te_cmd_logs(int argc, char **argv)
{
	struct te_cli cli;
	char req[512];
	int fd, rc;

	if ((rc = parse_module_verb(&cli, argc, argv, TE_OPT_LOGS)) != 0)
		return rc < 0 ? TE_EXIT_OK : rc;
	if ((rc = logs_request(&cli, req, sizeof(req))) != 0)
		return rc;
	if ((fd = ctl_connect(&cli)) < 0)
		return TE_EXIT_FAIL;
	rc = send_all(fd, req, strlen(req)) < 0 ? TE_EXIT_FAIL : logs_stream(&cli, fd);
	close(fd);
	return rc;
}

/* --- images --- */

static void print_image_row(const struct te_json_doc *d, unsigned im, time_t now)
{
	char sha[80], url[1100], when[32];
	time_t t = (time_t)num(d, (int)im, "lastUsed");
	struct tm tm;

	field_text(d, im, "sha256", sha, sizeof(sha));
	field_text(d, im, "url", url, sizeof(url));
	if (gmtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	else
		snprintf(when, sizeof(when), "-");
	printf("%-12.12s %12lld %4lld %-20s %6llds %s\n", sha, (long long)num(d, (int)im, "size"),
	       (long long)num(d, (int)im, "refs"), when, (long long)(now - t), url);
}

static int print_images(const char *buf, size_t len)
{
	struct te_diag diag = { 0 };
	struct te_json_doc doc;
	time_t now = time(NULL);
	int ims;

	if (te_json_parse(&doc, "answer", buf, len, NULL, &diag) < 0 ||
	    (ims = te_json_get(&doc, 0, "images")) < 0) {
		fprintf(stderr, "tinyedge images: malformed answer from the daemon\n");
		te_json_free(&doc);
		return TE_EXIT_FAIL;
	}
	printf("%-12s %12s %4s %-20s %7s %s\n", "SHA256", "SIZE", "REFS", "LAST-USED", "AGE", "URL");
	TE_JSON_FOREACH_ELEM(&doc, (unsigned)ims, im)
		print_image_row(&doc, im, now);
	printf("cache: %lld of %lld bytes\n", (long long)num(&doc, 0, "bytes"),
	       (long long)num(&doc, 0, "quotaBytes"));
	te_json_free(&doc);
	return TE_EXIT_OK;
}

static int print_pulled(const char *buf, size_t len)
{
	struct te_diag diag = { 0 };
	struct te_json_doc doc;
	char path[4200];
	int p;

	if (te_json_parse(&doc, "answer", buf, len, NULL, &diag) < 0 ||
	    (p = te_json_get(&doc, 0, "path")) < 0 ||
	    te_json_str(&doc, (unsigned)p, path, sizeof(path), NULL) < 0) {
		fprintf(stderr, "tinyedge images: malformed answer from the daemon\n");
		te_json_free(&doc);
		return TE_EXIT_FAIL;
	}
	printf("%s\n", path);
	te_json_free(&doc);
	return TE_EXIT_OK;
}

static int print_removed(const char *buf, size_t len)
{
	struct te_diag diag = { 0 };
	struct te_json_doc doc;
	char sha[80], url[1100];
	unsigned n = 0;
	int rm;

	if (te_json_parse(&doc, "answer", buf, len, NULL, &diag) < 0 ||
	    (rm = te_json_get(&doc, 0, "removed")) < 0) {
		fprintf(stderr, "tinyedge images: malformed answer from the daemon\n");
		te_json_free(&doc);
		return TE_EXIT_FAIL;
	}
	TE_JSON_FOREACH_ELEM(&doc, (unsigned)rm, im) {
		field_text(&doc, im, "sha256", sha, sizeof(sha));
		field_text(&doc, im, "url", url, sizeof(url));
		printf("removed %s %lld bytes %s\n", sha, (long long)num(&doc, (int)im, "size"), url);
		n++;
	}
	printf("%u image%s removed\n", n, n == 1 ? "" : "s");
	te_json_free(&doc);
	return TE_EXIT_OK;
}

int te_cmd_images(int argc, char **argv)
{
	struct te_cli cli;
	struct te_image_ref ref;
	char req[TE_URL_MAX + 1024], err[256];
	const char *action = "list";
	struct te_jw w;
	char *buf;
	size_t len;
	int rc;

	if (te_cli_parse(&cli, argc, argv, TE_OPT_JSON) < 0)
		return TE_EXIT_USAGE;
	if (cli.help)
		return te_help(argv[0]);
	if (cli.argc) {
		action = cli.argv[0];
		if (!((!strcmp(action, "pull") && cli.argc == 2) || (!strcmp(action, "gc") && cli.argc == 1)))
			return te_cli_usage_error(&cli, "expected 'images', 'images pull URL' or 'images gc'");
	}
	if (!strcmp(action, "pull") && te_image_ref_parse(cli.argv[1], &ref, err, sizeof(err)) < 0)
		return te_cli_usage_error(&cli, "%s", err);
	te_jw_init(&w, req, sizeof(req) - 2);
	te_jw_obj_open(&w);
	te_jw_kstr(&w, "cmd", "images");
	te_jw_kstr(&w, "action", action);
	if (cli.argc == 2)
		te_jw_kstr(&w, "url", cli.argv[1]);
	te_jw_obj_close(&w);
	if (te_jw_finish(&w) < 0)
		return te_cli_usage_error(&cli, "URL too long");
	memcpy(req + w.len, "\n", 2);
	buf = te_ctl_call(&cli, req, &len);
	if (!buf)
		return TE_EXIT_FAIL;
	rc = te_ctl_answer_error(&cli, buf, len);
	if (rc < 0 && cli.json)
		rc = fwrite(buf, 1, len, stdout) == len ? TE_EXIT_OK : TE_EXIT_FAIL;
	else if (rc < 0 && !strcmp(action, "pull"))
		rc = print_pulled(buf, len);
	else if (rc < 0 && !strcmp(action, "gc"))
		rc = print_removed(buf, len);
	else if (rc < 0)
		rc = print_images(buf, len);
	free(buf);
	return rc;
}
