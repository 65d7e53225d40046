/* tinyedge route test ROUTE [--prop K=V]... [--sys K=V]... [--body FILE]
 *
 * Compile a route and evaluate its condition against one message, so users
 * can debug routes on a laptop: prints true, false or undefined (exit 0),
 * or the compile error with its column (exit 2). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "core/err.h"
#include "hub/route.h"

struct route_test {
	struct te_prop props[TE_MSG_PROPS_MAX];
	struct te_msg msg;
	char *body;
};

static int usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "tinyedge route: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'tinyedge route --help'.\n");
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
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	t->body = malloc(cap);
	if (fd < 0 || !t->body) {
		fprintf(stderr, "tinyedge route: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return TE_EXIT_USAGE;
	}
	while ((r = read(fd, t->body + n, cap - n)) > 0)
		n += (size_t)r;
	close(fd);
	if (n > TE_MSG_BODY_MAX) {
		fprintf(stderr, "tinyedge route: %s: larger than the %u byte message limit\n",
			path, TE_MSG_BODY_MAX);
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
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_message(struct route_test *t, int argc, char **argv)
{
	int c, rc = 0;

	optind = 1;
	opterr = 0;
	while (rc == 0 && (c = getopt_long(argc, argv, ":", route_options, NULL)) != -1) {
		struct te_prop *p = &t->props[t->msg.nprops];

		if (c == 'h')
			return te_help("route"), -1;
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
	rc = parse_message(&t, argc, argv);
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

int te_cmd_route(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "test"))
		return route_test(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "--help"))
		return te_help(argv[0]);
	return usage("expected 'route test ROUTE ...'%s", "");
}
