/* Commands that take one message from flags ([--prop K=V]... [--sys K=V]...
 * [--body FILE | --text STRING]):
 *
 * tinyedge route test ROUTE ...: compile a route and evaluate its condition
 * against the message, so users can debug routes on a laptop: prints true,
 * false or undefined (exit 0), or the compile error with its column
 * (exit 2).
 *
 * tinyedge send NAME INPUT ...: hand the message to a running daemon, into
 * module NAME's input INPUT (as a message from a device). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "core/base64.h"
#include "core/err.h"
#include "core/json.h"
#include "hub/route.h"
#include "hub/wire.h"

struct route_test {
	struct te_prop props[TE_MSG_PROPS_MAX];
	struct te_msg msg;
	char *body;
};

static const char *verb = "route";

static int usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "tinyedge %s: ", verb);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'tinyedge %s --help'.\n", verb);
	return TE_EXIT_USAGE;
}

/* "K=V" -> key and value views into arg. */
static int split_kv(const char *arg, struct te_str *k, struct te_str *v)
{
	const char *eq = strchr(arg, '=');

	if (!eq || eq == arg)
		return -1;
	*k = (struct te_str){ arg, (uint32_t)(eq - arg) };
	*v = (struct te_str){ eq + 1, (uint32_t)strlen(eq + 1) };
	return 0;
}

static int add_sys(struct te_msg *m, const char *arg)
{
	struct te_str k, v;
	int p;

	if (split_kv(arg, &k, &v) < 0)
		return usage("--sys '%s': expected NAME=VALUE", arg);
	if (k.p[0] == '$') {
		k.p++;
		k.n--;
	}
	p = te_sysprop_from_name(k.p, k.n);
	if (p < 0)
		return usage("--sys '%s': not a system property (messageId, correlationId, "
			     "contentType, contentEncoding, creationTimeUtc, connectionDeviceId, "
			     "connectionModuleId, outputName, inputName, userId)", arg);
	m->sys[p] = v;
	return 0;
}

static int read_body(struct route_test *t, const char *path)
{
	size_t cap = TE_MSG_BODY_MAX + 1, n = 0;
	ssize_t r;
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : dup(0);

	free(t->body);
	t->body = malloc(cap);
	if (fd < 0 || !t->body) {
		fprintf(stderr, "tinyedge %s: %s: %s\n", verb, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return TE_EXIT_USAGE;
	}
	while ((r = read(fd, t->body + n, cap - n)) > 0)
		n += (size_t)r;
	close(fd);
	if (n > TE_MSG_BODY_MAX) {
		fprintf(stderr, "tinyedge %s: %s: larger than the %u byte message limit\n",
			verb, path, TE_MSG_BODY_MAX);
		return TE_EXIT_USAGE;
	}
	t->msg.body = t->body;
	t->msg.bodylen = (uint32_t)n;
	return 0;
}

static const struct option route_options[] = {
	{ "prop", required_argument, NULL, 'p' },
	{ "sys", required_argument, NULL, 's' },
	{ "body", required_argument, NULL, 'b' },
	{ "text", required_argument, NULL, 't' },
	{ "state-dir", required_argument, NULL, 'd' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_message(struct route_test *t, int argc, char **argv,
			 const char **state_dir)
{
	int c, rc = 0;

	optind = 1;
	opterr = 0;
	while (rc == 0 && (c = getopt_long(argc, argv, ":", route_options, NULL)) != -1) {
		struct te_prop *p = &t->props[t->msg.nprops];

		if (c == 'h')
			return te_help(verb), -1;
		if ((c == 'd' && !state_dir) || (c == 't' && strlen(optarg) > TE_MSG_BODY_MAX))
			return usage(c == 'd' ? "unknown option '%s'" : "%s: larger than the message limit",
				     argv[optind - 1]);
		if (c == '?' || c == ':')
			return usage(c == '?' ? "unknown option '%s'" : "option '%s' needs a value",
				     argv[optind - 1]);
		if (c == 'p' && t->msg.nprops == TE_MSG_PROPS_MAX)
			return usage("at most 64 --prop flags%s", "");
		if (c == 'p' && split_kv(optarg, &p->key, &p->val) < 0)
			return usage("--prop '%s': expected NAME=VALUE", optarg);
		if (c == 'p')
			t->msg.nprops++;
		else if (c == 's')
			rc = add_sys(&t->msg, optarg);
		else if (c == 'b')
			rc = read_body(t, optarg);
		else if (c == 't')
			t->msg.body = optarg, t->msg.bodylen = (uint32_t)strlen(optarg);
		else if (c == 'd')
			*state_dir = optarg;
	}
	return rc;
}

static int route_test(int argc, char **argv)
{
	static const char *const words[] = { "false", "true", "undefined" };
	static struct route_test t;
	struct te_route r;
	char err[256];
	unsigned col = 0;
	int rc;

	t.msg.origin = TE_ORIGIN_MODULE;
	t.msg.props = t.props;
	rc = parse_message(&t, argc, argv, NULL);
	if (rc)
		return rc < 0 ? TE_EXIT_OK : rc;
	if (optind != argc - 1)
		return usage("route test takes one ROUTE argument (quote it)%s", "");
	if (te_route_compile(argv[optind], &r, err, sizeof(err), &col) < 0) {
		fprintf(stderr, "%s\n%*s^\ntinyedge route: column %u: %s\n", argv[optind],
			(int)(col ? col - 1 : 0), "", col, err);
		free(t.body);
		return TE_EXIT_USAGE;
	}
	printf("%s\n", words[te_route_eval(&r, &t.msg)]);
	te_route_free(&r);
	free(t.body);
	return TE_EXIT_OK;
}

/* The request: {"cmd":"send","module":..,"input":..,"record":BASE64}. */
static char *send_request(const char *module, const char *input, const struct te_msg *m)
{
	static uint8_t rec[1u << 20];
	size_t len, b64;
	char *req = NULL, *enc;
	struct te_jw w;

	if (te_msg_encode(m, rec, sizeof(rec), &len) < 0)
		return NULL;
	b64 = te_base64_len(len);
	enc = malloc(b64 + 1);
	if (enc && te_base64_encode(rec, len, enc, b64, NULL) == 0) {
		enc[b64] = '\0';
		req = malloc(b64 + 2 * TE_WIRE_STR_MAX * 6 + 128);
	}
	if (req) {
		te_jw_init(&w, req, b64 + 2 * TE_WIRE_STR_MAX * 6 + 128);
		te_jw_obj_open(&w);
		te_jw_kstr(&w, "cmd", "send");
		te_jw_kstr(&w, "module", module);
		te_jw_kstr(&w, "input", input);
		te_jw_kstr(&w, "record", enc);
		te_jw_obj_close(&w);
		if (te_jw_finish(&w) < 0 || w.len + 2 > b64 + 2 * TE_WIRE_STR_MAX * 6 + 128) {
			free(req);
			req = NULL;
		} else {
			memcpy(req + w.len, "\n", 2);
		}
	}
	free(enc);
	return req;
}

int te_cmd_send(int argc, char **argv)
{
	static struct route_test t;
	struct te_cli cli = { .verb = "send" };
	size_t len;
	char *req, *buf;
	int rc;

	verb = "send";
	t.msg.origin = TE_ORIGIN_DEVICE;
	t.msg.props = t.props;
	rc = parse_message(&t, argc, argv, &cli.state_dir);
	if (rc)
		return rc < 0 ? TE_EXIT_OK : rc;
	if (optind != argc - 2)
		return usage("expected a module NAME and an INPUT name%s", "");
	if (!argv[optind + 1][0] || strlen(argv[optind + 1]) > TE_WIRE_STR_MAX)
		return usage("INPUT '%s': 1 to 4096 bytes", argv[optind + 1]);
	req = send_request(argv[optind], argv[optind + 1], &t.msg);
	if (!req)
		return usage("the message is over a limit%s", "");
	buf = te_ctl_call(&cli, req, &len);
	free(req);
	free(t.body);
	if (!buf)
		return TE_EXIT_FAIL;
	rc = te_ctl_answer_error(&cli, buf, len);
	free(buf);
	return rc < 0 ? TE_EXIT_OK : rc;
}

int te_cmd_route(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "test"))
		return route_test(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "--help"))
		return te_help(argv[0]);
	return usage("expected 'route test ROUTE ...'%s", "");
}
