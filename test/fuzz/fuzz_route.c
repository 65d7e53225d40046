/* Fuzz target for the route language (route.h), to be called from
 * test/fuzz/targets.c as mode "route"; corpus in test/fuzz/corpus/route/.
 *
 * The input is used twice: as route text (compiled; when it compiles,
 * evaluated against a message with a JSON body and against messages
 * without one), and as the JSON body of a message that a few fixed $body
 * routes evaluate, since bodies are what devices send. Nothing is asserted
 * about validity, only that the code survives and keeps its invariants:
 * results in {false, true, undefined}, the same result twice, errors with
 * a message and a column inside the text. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "fuzz.h"
#include "hub/route.h"

#define JSON_BODY "{\"a\":{\"b\":5,\"s\":\"x\\\"y\\u00e9\"," \
	"\"arr\":[1,[2],{\"c\":\"d\"}]},\"t\":21.5,\"ok\":true,\"n\":null," \
	"\"e\":\"\",\"k\\u00e9\":-1e3}"

static const struct te_prop props[] = {
	{ { "temp", 4 }, { "32.5", 4 } },
	{ { "name", 4 }, { "sensor-1", 8 } },
	{ { "flag", 4 }, { "true", 4 } },
	{ { "empty", 5 }, { "", 0 } },
	{ { "$messageId", 10 }, { "app", 3 } },
	{ { "uni", 3 }, { "h\xc3\xa9llo\xf0\x9f\x98\x80", 10 } },
};

static struct te_msg message(enum te_msg_origin o, const char *body,
			     size_t n, bool json)
{
	struct te_msg m;

	memset(&m, 0, sizeof(m));
	m.origin = o;
	m.sys[TE_SYS_MESSAGE_ID] = (struct te_str){ "m1", 2 };
	m.sys[TE_SYS_CONNECTION_MODULE_ID] = (struct te_str){ "sensor", 6 };
	m.sys[TE_SYS_OUTPUT_NAME] = (struct te_str){ "out1", 4 };
	if (json) {
		m.sys[TE_SYS_CONTENT_TYPE] = (struct te_str){ "application/json", 16 };
		m.sys[TE_SYS_CONTENT_ENCODING] = (struct te_str){ "utf-8", 5 };
	}
	m.props = props;
	m.nprops = sizeof(props) / sizeof(props[0]);
	m.body = body;
	m.bodylen = (uint32_t)n;
	return m;
}

static void check(const struct te_route *r, const struct te_msg *m)
{
	enum te_tri t = te_route_eval(r, m);

	if ((unsigned)t > TE_UNDEFINED || te_route_eval(r, m) != t)
		abort();
	(void)te_route_source_matches(r, m);
}

static void fuzz_text(const uint8_t *data, size_t n)
{
	struct te_msg with = message(TE_ORIGIN_MODULE, JSON_BODY,
				     sizeof(JSON_BODY) - 1, true);
	struct te_msg plain = message(TE_ORIGIN_DEVICE, "not json", 8, false);
	struct te_msg twin = message(TE_ORIGIN_TWIN_CHANGE, NULL, 0, true);
	char *text = malloc(n + 1), err[128];
	struct te_route r;
	unsigned col;
	int rc;

	if (!text)
		return;
	memcpy(text, data, n);
	text[n] = 0;
	rc = te_route_compile(text, &r, err, sizeof(err), &col);
	if (rc == 0) {
		if (r.has_condition != (r.prog != NULL))
			abort();
		check(&r, &with);
		check(&r, &plain);
		check(&r, &twin);
	} else if (rc == -TE_EINVALID) {
		if (!err[0] || col < 1 || col > strlen(text) + 1 || r.prog)
			abort();
	} else if (rc != -ENOMEM) {
		abort();
	}
	te_route_free(&r);
	free(text);
}

static const char *const body_routes[] = {
	"FROM /messages/* WHERE $body.a.b = 5 OR $body.t > 1 INTO $upstream",
	"FROM /messages/* WHERE $body.a.arr[2].c = 'd' AND $body.ok INTO $upstream",
	"FROM /messages/* WHERE length($body.a.s || $body.e) > 2 INTO $upstream",
	"FROM /messages/* WHERE is_null($body.n) OR $body.k\xc3\xa9 < 0 INTO $upstream",
	"FROM /messages/* WHERE $body.x[0] = 1 OR {$body.a} = null INTO $upstream",
};

/* The input as the JSON body of fixed $body routes. */
static void fuzz_body(const uint8_t *data, size_t n)
{
	static struct te_route routes[sizeof(body_routes) / sizeof(body_routes[0])];
	static bool ready;
	struct te_msg m = message(TE_ORIGIN_MODULE, (const char *)data, n, true);

	if (!ready) {
		for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
			if (te_route_compile(body_routes[i], &routes[i], NULL, 0, NULL))
				abort();
		ready = true;
	}
	if (n > UINT32_MAX)
		return;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		check(&routes[i], &m);
}

void te_fuzz_route(const uint8_t *data, size_t n)
{
	fuzz_text(data, n);
	fuzz_body(data, n);
}
