/* Unit tests for src/hub/stdio_line.c: the JSON lines of stdio modules.
 * Valid lines with every key and every kind of body, every error with its
 * column, the limits, encoding (exact text, buffer bounds, worst-case
 * size) and round trips: a line a module would echo back decodes to the
 * message that was encoded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "hub/stdio_line.h"
#include "tap.h"

static struct te_stdio_scratch sc;
static char errbuf[512];

/* Lines and bodies built by the tests. */
static char big[TE_STDIO_LINE_MAX + 64];
static char enc[TE_STDIO_OUT_MAX];

static int decode(const char *line, size_t len, struct te_msg *m)
{
	return te_stdio_line_decode(line, len, &sc, m, errbuf, sizeof(errbuf));
}

/* Test names with unprintable bytes as \xNN, cut at 100 bytes. */
static const char *show(const char *s)
{
	static char buf[160];
	size_t n = 0;

	for (; *s && n < 100; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x20 && c < 0x7f && c != '#')
			buf[n++] = (char)c;
		else
			n += (size_t)snprintf(buf + n, 8, "\\x%02x", c);
	}
	buf[n] = 0;
	return buf;
}

static bool str_is(struct te_str s, const char *want)
{
	return s.p && s.n == strlen(want) && !memcmp(s.p, want, s.n);
}

static bool in_scratch(const void *p, size_t n)
{
	const char *q = p;

	return q >= sc.buf && q + n < sc.buf + sizeof(sc.buf) && !q[n];
}

/* Every string of m lies in the scratch, NUL-terminated. */
static bool all_in_scratch(const struct te_msg *m)
{
	for (int i = 0; i < TE_SYS_N; i++)
		if (m->sys[i].p && !in_scratch(m->sys[i].p, m->sys[i].n) &&
		    i != TE_SYS_CONTENT_TYPE && i != TE_SYS_CONTENT_ENCODING)
			return false;
	for (uint32_t i = 0; i < m->nprops; i++)
		if (!in_scratch(m->props[i].key.p, m->props[i].key.n) ||
		    !in_scratch(m->props[i].val.p, m->props[i].val.n))
			return false;
	return !m->bodylen || in_scratch(m->body, m->bodylen);
}

/* Rejected with err at the column where at first occurs in line (or at
 * column col when at is NULL), saying msg. */
static void bad_at(const char *line, size_t len, int err, const char *at,
		   unsigned col, const char *msg, const char *name)
{
	struct te_msg m;
	char want[600], nm[200];
	int r;

	snprintf(nm, sizeof(nm), "%s", name); /* show()'s buffer is reused */
	if (at)
		col = (unsigned)(strstr(line, at) - line) + 1;
	snprintf(want, sizeof(want), "column %u: %s", col, msg);
	memset(&m, 0x5a, sizeof(m));
	r = decode(line, len, &m);
	TAP_OK(r == err && !strcmp(errbuf, want) && !m.bodylen && !m.nprops &&
	       !m.sys[TE_SYS_OUTPUT_NAME].p, "reject %s: %s", nm, want);
	if (r != err || strcmp(errbuf, want))
		printf("#   got %d \"%s\"\n", r, errbuf);
}

static void bad(const char *line, int err, const char *at, const char *msg)
{
	bad_at(line, strlen(line), err, at, 0, msg, show(line));
}

/* ---- valid lines ------------------------------------------------------------- */

static void test_every_key(void)
{
	static const char line[] =
		"{\"output\":\"out1\",\"messageId\":\"m1\",\"correlationId\":\"c1\","
		"\"contentType\":\"text/plain\",\"contentEncoding\":\"utf-8\","
		"\"creationTimeUtc\":\"2024-05-01T12:00:00Z\","
		"\"connectionModuleId\":\"mod\",\"properties\":{\"temp\":\"21.5\","
		"\"k\\u00e9\":\"a\\n\\\"b\\\"\",\"empty\":\"\"},"
		"\"body\":\"hello \\\"w\\\" \\u00e9\\ud83d\\ude00\"}";
	struct te_msg m;

	memcpy(big, line, sizeof(line));
	TAP_EQ_INT(decode(big, strlen(line), &m), 0, "every key: decodes");
	TAP_EQ_STR(errbuf, "", "every key: no message");
	TAP_OK(m.origin == TE_ORIGIN_MODULE, "origin module");
	TAP_OK(str_is(m.sys[TE_SYS_OUTPUT_NAME], "out1"), "output -> outputName");
	TAP_OK(str_is(m.sys[TE_SYS_MESSAGE_ID], "m1") &&
	       str_is(m.sys[TE_SYS_CORRELATION_ID], "c1") &&
	       str_is(m.sys[TE_SYS_CONTENT_TYPE], "text/plain") &&
	       str_is(m.sys[TE_SYS_CONTENT_ENCODING], "utf-8") &&
	       str_is(m.sys[TE_SYS_CREATION_TIME_UTC], "2024-05-01T12:00:00Z") &&
	       str_is(m.sys[TE_SYS_CONNECTION_MODULE_ID], "mod"),
	       "system properties");
	TAP_OK(!m.sys[TE_SYS_INPUT_NAME].p && !m.sys[TE_SYS_USER_ID].p &&
	       !m.sys[TE_SYS_CONNECTION_DEVICE_ID].p, "the others absent");
	TAP_EQ_INT(m.nprops, 3, "three properties");
	TAP_OK(m.nprops == 3 && str_is(m.props[0].key, "temp") &&
	       str_is(m.props[0].val, "21.5") &&
	       str_is(m.props[1].key, "k\xc3\xa9") &&
	       str_is(m.props[1].val, "a\n\"b\"") &&
	       str_is(m.props[2].key, "empty") && str_is(m.props[2].val, ""),
	       "properties in line order, unescaped");
	TAP_OK(m.bodylen == 16 &&
	       !memcmp(m.body, "hello \"w\" \xc3\xa9\xf0\x9f\x98\x80", 16),
	       "string body unescaped");
	TAP_OK(all_in_scratch(&m), "everything in the scratch, NUL-terminated");
	memset(big, 0, sizeof(line));
	TAP_OK(str_is(m.sys[TE_SYS_OUTPUT_NAME], "out1") &&
	       str_is(m.props[0].val, "21.5") && m.bodylen == 16 &&
	       !memcmp(m.body, "hello", 5), "the message does not point into the line");
}

static void test_bodies(void)
{
	struct te_msg m;
	const char *l;

	l = "{\"output\":\"o\",\"body\":{ \"a\" : [1, 2.5e3, {\"b\":null}], \"s\":\"\\u00e9\" } }";
	TAP_EQ_INT(decode(l, strlen(l), &m), 0, "object body");
	TAP_OK(m.bodylen == 46 && !memcmp(m.body,
	       "{ \"a\" : [1, 2.5e3, {\"b\":null}], \"s\":\"\\u00e9\" }", 46),
	       "object body: its exact JSON text");
	TAP_OK(str_is(m.sys[TE_SYS_CONTENT_TYPE], "application/json") &&
	       str_is(m.sys[TE_SYS_CONTENT_ENCODING], "utf-8"),
	       "object body: JSON content type and encoding by default");
	l = "{\"output\":\"o\",\"body\":[1,2],\"contentType\":\"application/vnd.x+json\","
	    "\"contentEncoding\":\"\"}";
	TAP_EQ_INT(decode(l, strlen(l), &m), 0, "array body with a content type");
	TAP_OK(m.bodylen == 5 && !memcmp(m.body, "[1,2]", 5) &&
	       str_is(m.sys[TE_SYS_CONTENT_TYPE], "application/vnd.x+json") &&
	       str_is(m.sys[TE_SYS_CONTENT_ENCODING], ""),
	       "given content type and encoding are kept (even empty)");
	static const char *const scalars[] = { "-1.5e-3", "true", "false", "null", "0" };
	for (unsigned i = 0; i < 5; i++) {
		char line[80];

		snprintf(line, sizeof(line), "{\"body\":%s,\"output\":\"o\"}", scalars[i]);
		TAP_OK(decode(line, strlen(line), &m) == 0 &&
		       m.bodylen == strlen(scalars[i]) &&
		       !memcmp(m.body, scalars[i], m.bodylen) &&
		       str_is(m.sys[TE_SYS_CONTENT_TYPE], "application/json"),
		       "scalar body %s", scalars[i]);
	}
	l = "{\"output\":\"o\",\"bodyBase64\":\"AAEC/w==\"}";
	TAP_OK(decode(l, strlen(l), &m) == 0 && m.bodylen == 4 &&
	       !memcmp(m.body, "\0\1\2\xff", 4) && !m.sys[TE_SYS_CONTENT_TYPE].p,
	       "base64 body");
	l = "{\"output\":\"o\",\"bodyBase64\":\"AAEC\\/w==\"}";
	TAP_OK(decode(l, strlen(l), &m) == 0 && m.bodylen == 4 &&
	       !memcmp(m.body, "\0\1\2\xff", 4), "base64 body with an escaped /");
	l = "{\"output\":\"o\",\"bodyBase64\":\"\"}";
	TAP_OK(decode(l, strlen(l), &m) == 0 && m.bodylen == 0, "empty base64 body");
	l = "{\"output\":\"o\",\"body\":\"a\\u0000b\\u0000\"}";
	TAP_OK(decode(l, strlen(l), &m) == 0 && m.bodylen == 4 &&
	       !memcmp(m.body, "a\0b\0", 4), "\\u0000 in a body string is a NUL byte");
	l = "{\"output\":\"o\",\"body\":\"\"}";
	TAP_OK(decode(l, strlen(l), &m) == 0 && m.bodylen == 0, "empty body string");
	l = "{\"output\":\"o\"}";
	TAP_OK(decode(l, strlen(l), &m) == 0 && m.bodylen == 0 && !m.nprops,
	       "no body, no properties");
	l = "{\"output\":\"o\",\"properties\":{}}";
	TAP_OK(decode(l, strlen(l), &m) == 0 && !m.nprops, "empty properties");
	l = "{\"output\":\"o\",\"messageId\":\"\"}";
	TAP_OK(decode(l, strlen(l), &m) == 0 && m.sys[TE_SYS_MESSAGE_ID].p &&
	       !m.sys[TE_SYS_MESSAGE_ID].n, "empty messageId is present");
	l = " \t{ \"output\" : \"o\" } \t";
	TAP_OK(decode(l, strlen(l), &m) == 0, "blanks around and inside");
	l = "{\"output\":\"o\"}\r";
	TAP_OK(decode(l, strlen(l), &m) == 0, "a CR before the line feed");
}

/* ---- errors -------------------------------------------------------------------- */

static void test_errors(void)
{
	const int M = -TE_EMALFORMED;

	bad("", M, "", "empty document");
	bad("\r", M, "", "empty document");
	bad("{\"output\":\"o\",}", M, "}", "expected a string key after ','");
	bad("{\"output\":\"o\"} x", M, "x", "trailing garbage after the document");
	bad("{\"output\":\"o\" \"body\":1}", M, "\"body", "expected ',' or '}' after object member");
	bad("{\"output\":'o'}", M, "'", "invalid character '''");
	bad("[1]", M, "[", "a line must be a JSON object, not an array");
	bad("\"x\"", M, "\"", "a line must be a JSON object, not a string");
	bad("{}", M, "{", "missing required key \"output\"");
	bad("{\"body\":\"x\"}", M, "{", "missing required key \"output\"");
	bad("{\"output\":1}", M, "1", "output must be a string");
	bad("{\"output\":\"\"}", M, "\"\"", "output must not be empty");
	bad("{\"output\":\"o\",\"outptu\":\"x\"}", M, "\"outptu", "unknown key \"outptu\"");
	bad("{\"output\":\"o\",\"input\":\"x\"}", M, "\"input", "unknown key \"input\"");
	bad("{\"output\":\"o\",\"outputName\":\"x\"}", M, "\"outputName",
	    "unknown key \"outputName\"");
	bad("{\"output\":\"o\",\"output\":\"p\"}", M, "\"output\":\"p",
	    "duplicate key \"output\"");
	bad("{\"output\":\"o\",\"properties\":[]}", M, "[", "properties must be an object");
	bad("{\"output\":\"o\",\"properties\":{\"temp\":21.5}}", M, "21",
	    "properties.temp must be a string");
	bad("{\"output\":\"o\",\"properties\":{\"a\":\"1\",\"b\":{}}}", M, "{}",
	    "properties.b must be a string");
	bad("{\"output\":\"o\",\"properties\":{\"\":\"x\"}}", M, "\"\"",
	    "properties: a name must not be empty");
	bad("{\"output\":\"o\",\"properties\":{\"k\":\"a\\u0000b\"}}", M, "\"a",
	    "properties.k: \\u0000 is not allowed");
	bad("{\"output\":\"o\",\"properties\":{\"a\\u0000\":\"x\"}}", M, "\"a",
	    "property name \"a\\u0000\": \\u0000 is not allowed");
	bad("{\"output\":\"o\",\"messageId\":\"a\\u0000\"}", M, "\"a",
	    "messageId: \\u0000 is not allowed");
	bad("{\"output\":\"\\u0000\"}", M, "\"\\", "output: \\u0000 is not allowed");
	bad("{\"output\":\"o\",\"messageId\":null}", M, "null", "messageId must be a string");
	bad("{\"output\":\"o\",\"creationTimeUtc\":5}", M, "5",
	    "creationTimeUtc must be a string");
	bad("{\"output\":\"o\",\"body\":\"x\",\"bodyBase64\":\"eA==\"}", M, "\"eA",
	    "body and bodyBase64 exclude each other");
	bad("{\"output\":\"o\",\"bodyBase64\":\"eA==\",\"body\":{}}", M, "{}",
	    "body and bodyBase64 exclude each other");
	bad("{\"output\":\"o\",\"bodyBase64\":1}", M, "1", "bodyBase64 must be a string");
	bad("{\"output\":\"o\",\"bodyBase64\":\"eA=\"}", M, "\"}",
	    "bodyBase64: length is not a multiple of 4");
	bad("{\"output\":\"o\",\"bodyBase64\":\"eA!=\"}", M, "!", "bodyBase64: invalid base64");
	bad("{\"output\":\"o\",\"bodyBase64\":\"eB==\"}", M, "B==", "bodyBase64: invalid base64");
	bad("{\"output\":\"o\",\"bodyBase64\":\"eA== \"}", M, " \"", "bodyBase64: invalid base64");
	bad("{\"output\":\"o\",\"bodyBase64\":\"\\u0065A!=\"}", M, "\"\\",
	    "bodyBase64: invalid base64");
	bad("{\"output\":\"o\",\"body\":\"\x01\"}", M, "\x01", "control character U+0001 in string");
	bad("{\"output\":\"o\",\"body\":\"\xff\"}", M, "\xff", "invalid UTF-8 in string");
	bad("{\"output\":\"o\",\"body\":\"\\ud800\"}", M, "\\", "lone surrogate \\ud800");
	bad_at("{\"output\":\n\"o\"}", 16, M, "\n", 0, "line feed inside the line",
	       "a line feed inside");
	bad_at("{\"output\":\"o\"}\n", 15, M, "\n", 0, "line feed inside the line",
	       "the line feed itself");
	bad_at("{\"output\":\"o\0\"}", 15, M, NULL, 13, "NUL byte in input",
	       "a NUL byte");
}

/* ---- limits -------------------------------------------------------------------- */

/* {"output":"o","properties":{"p0":"v",...}} with n properties. */
static size_t props_line(char *buf, unsigned n)
{
	size_t w = (size_t)sprintf(buf, "{\"output\":\"o\",\"properties\":{");

	for (unsigned i = 0; i < n; i++)
		w += (size_t)sprintf(buf + w, "%s\"p%u\":\"v%u\"", i ? "," : "", i, i);
	w += (size_t)sprintf(buf + w, "}}");
	return w;
}

/* {"output":"o",PRE + n times c + POST} */
static size_t fill_line(const char *pre, char c, size_t n, const char *post)
{
	size_t w = (size_t)sprintf(big, "{\"output\":\"o\",%s", pre);

	memset(big + w, c, n);
	w += n;
	w += (size_t)sprintf(big + w, "%s}", post);
	return w;
}

static void test_limits(void)
{
	static const char dots[] = "...";
	struct te_msg m;
	char want[200], k[80];
	size_t n;

	n = props_line(big, 64);
	TAP_OK(decode(big, n, &m) == 0 && m.nprops == 64 &&
	       str_is(m.props[63].key, "p63") && str_is(m.props[63].val, "v63"),
	       "64 properties");
	n = props_line(big, 65);
	bad_at(big, n, -TE_ELIMIT, "{\"p0", 0, "properties: more than 64", "65 properties");

	n = fill_line("\"properties\":{\"", 'k', 4096, "\":\"v\"}");
	TAP_OK(decode(big, n, &m) == 0 && m.props[0].key.n == 4096, "4096-byte name");
	n = fill_line("\"properties\":{\"", 'k', 4097, "\":\"v\"}");
	memset(k, 'k', 64);
	snprintf(want, sizeof(want), "property name \"%.64s%s\" is 4097 bytes, more than 4096",
		 k, dots);
	bad_at(big, n, -TE_ELIMIT, "\"kk", 0, want, "4097-byte property name");
	n = fill_line("\"properties\":{\"k\":\"", 'v', 4096, "\"}");
	TAP_OK(decode(big, n, &m) == 0 && m.props[0].val.n == 4096, "4096-byte value");
	n = fill_line("\"properties\":{\"k\":\"", 'v', 4097, "\"}");
	bad_at(big, n, -TE_ELIMIT, "\"vv", 0, "properties.k is 4097 bytes, more than 4096",
	       "4097-byte property value");
	n = fill_line("\"properties\":{\"k\":\"", 'v', 4095, "\\u00e9\"}");
	bad_at(big, n, -TE_ELIMIT, "\"vv", 0, "properties.k is 4097 bytes, more than 4096",
	       "a value over the limit once unescaped");
	n = fill_line("\"messageId\":\"", 'm', 4097, "\"");
	bad_at(big, n, -TE_ELIMIT, "\"mm", 0, "messageId is 4097 bytes, more than 4096",
	       "4097-byte messageId");
	n = (size_t)sprintf(big, "{\"output\":\"");
	memset(big + n, 'o', 4097);
	n += 4097;
	n += (size_t)sprintf(big + n, "\"}");
	bad_at(big, n, -TE_ELIMIT, "\"oo", 0, "output is 4097 bytes, more than 4096",
	       "4097-byte output");
	big[11 + 4096] = '"';
	big[12 + 4096] = '}';
	TAP_OK(decode(big, 13 + 4096, &m) == 0 && m.sys[TE_SYS_OUTPUT_NAME].n == 4096,
	       "4096-byte output");

	n = fill_line("\"body\":\"", 'b', TE_MSG_BODY_MAX, "\"");
	TAP_OK(decode(big, n, &m) == 0 && m.bodylen == TE_MSG_BODY_MAX &&
	       all_in_scratch(&m), "256 KiB body");
	n = fill_line("\"body\":\"", 'b', TE_MSG_BODY_MAX + 1, "\"");
	bad_at(big, n, -TE_ELIMIT, "\"bb", 0, "body is 262145 bytes, more than 262144",
	       "body over 256 KiB");
	n = fill_line("\"body\":[\"", 'b', TE_MSG_BODY_MAX - 4, "\"]");
	TAP_OK(decode(big, n, &m) == 0 && m.bodylen == TE_MSG_BODY_MAX,
	       "256 KiB JSON body");
	n = fill_line("\"body\":[\"", 'b', TE_MSG_BODY_MAX - 3, "\"]");
	bad_at(big, n, -TE_ELIMIT, "[", 0, "body is 262145 bytes, more than 262144",
	       "JSON body over 256 KiB");
	n = fill_line("\"bodyBase64\":\"", 'A', TE_MSG_BODY_MAX / 3 * 4, "\"");
	TAP_OK(decode(big, n, &m) == 0 && m.bodylen == TE_MSG_BODY_MAX / 3 * 3,
	       "base64 body up to the limit");
	n = fill_line("\"bodyBase64\":\"", 'A', TE_MSG_BODY_MAX / 3 * 4 + 8, "\"");
	bad_at(big, n, -TE_ELIMIT, "\"AA", 0,
	       "bodyBase64 decodes to 262149 bytes, more than 262144", "base64 body over 256 KiB");

	n = fill_line("\"messageId\":\"x\"", ' ', TE_STDIO_LINE_MAX - 30, "");
	TAP_OK(n == TE_STDIO_LINE_MAX && decode(big, n, &m) == 0,
	       "a line of TE_STDIO_LINE_MAX bytes");
	big[n - 1] = ' ';
	big[n] = '}';
	snprintf(want, sizeof(want), "line longer than %u bytes", TE_STDIO_LINE_MAX);
	bad_at(big, n + 1, -TE_ELIMIT, NULL, TE_STDIO_LINE_MAX + 1, want,
	       "a line one byte longer");
	big[n - 1] = '}';
	big[n] = '\r';
	TAP_OK(decode(big, n + 1, &m) == 0, "... but a CR after it is not counted");

	n = fill_line("\"body\":[", '[', 33, "");
	memset(big + n - 1, ']', 33);
	big[n + 32] = ']';
	big[n + 33] = '}';
	/* '{' is level 1, body's '[' 2: the 31st '[' after it is the 33rd */
	bad_at(big, n + 34, -TE_ELIMIT, NULL, 22 + 30 + 1, "nesting deeper than 32 levels",
	       "a JSON body nested too deep");
	n = (size_t)sprintf(big, "{\"output\":\"o\",\"body\":[");
	for (unsigned i = 0; i < TE_STDIO_LINE_TOKENS; i++)
		n += (size_t)sprintf(big + n, "%s0", i ? "," : "");
	n += (size_t)sprintf(big + n, "]}");
	snprintf(want, sizeof(want), "more than %u tokens", TE_STDIO_LINE_TOKENS);
	/* 5 tokens before the array's elements: the one after 65531 zeros */
	bad_at(big, n, -TE_ELIMIT, NULL, 22 + 2 * (TE_STDIO_LINE_TOKENS - 5) + 1, want,
	       "too many tokens");
	n = (size_t)sprintf(big, "{\"output\":\"o\",\"body\":[");
	for (unsigned i = 0; i < TE_STDIO_LINE_TOKENS - 5; i++)
		n += (size_t)sprintf(big + n, "%s0", i ? "," : "");
	n += (size_t)sprintf(big + n, "]}");
	TAP_OK(decode(big, n, &m) == 0, "exactly TE_STDIO_LINE_TOKENS tokens");
}

/* ---- encoding ------------------------------------------------------------------ */

static struct te_msg msg_in(const char *input, const char *body, size_t n,
			    const struct te_prop *props, uint32_t nprops)
{
	struct te_msg m;

	memset(&m, 0, sizeof(m));
	m.sys[TE_SYS_INPUT_NAME] = (struct te_str){ input, (uint32_t)strlen(input) };
	m.body = body;
	m.bodylen = (uint32_t)n;
	m.props = props;
	m.nprops = nprops;
	return m;
}

static void enc_is(const struct te_msg *m, const char *want, const char *name)
{
	size_t len = 0, size = 0;
	int r = te_stdio_line_encode(m, enc, sizeof(enc), &len);

	TAP_OK(r == 0 && len == strlen(want) && !strcmp(enc, want),
	       "encode %s", name);
	if (r || strcmp(enc, want))
		printf("#   got %d \"%s\"\n#   want \"%s\"\n", r, show(enc), show(want));
	TAP_OK(te_stdio_line_size(m, &size) == 0 && size >= len + 1 &&
	       size <= TE_STDIO_OUT_MAX, "size bound for %s (%zu >= %zu)", name,
	       size, len + 1);
}

static void test_encode(void)
{
	static const struct te_prop props[] = {
		{ { "temp", 4 }, { "21.5", 4 } },
		{ { "q\"\n", 3 }, { "\xc3\xa9\x7f", 3 } },
		{ { "bad", 3 }, { "a\xff", 2 } },
	};
	struct te_msg m = msg_in("in1", "hi", 2, NULL, 0);

	enc_is(&m, "{\"input\":\"in1\",\"body\":\"hi\"}\n", "minimal");
	m.sys[TE_SYS_MESSAGE_ID] = (struct te_str){ "m1", 2 };
	m.sys[TE_SYS_CORRELATION_ID] = (struct te_str){ "", 0 };
	m.sys[TE_SYS_CONTENT_TYPE] = (struct te_str){ "text/plain", 10 };
	m.sys[TE_SYS_CONTENT_ENCODING] = (struct te_str){ "utf-8", 5 };
	m.sys[TE_SYS_CREATION_TIME_UTC] = (struct te_str){ "2024-05-01T12:00:00Z", 20 };
	m.sys[TE_SYS_CONNECTION_MODULE_ID] = (struct te_str){ "sensor", 6 };
	m.sys[TE_SYS_OUTPUT_NAME] = (struct te_str){ "out9", 4 };
	m.sys[TE_SYS_USER_ID] = (struct te_str){ "u", 1 };
	m.props = props;
	m.nprops = 3;
	enc_is(&m, "{\"input\":\"in1\",\"messageId\":\"m1\",\"correlationId\":\"\","
	       "\"contentType\":\"text/plain\",\"contentEncoding\":\"utf-8\","
	       "\"creationTimeUtc\":\"2024-05-01T12:00:00Z\","
	       "\"connectionModuleId\":\"sensor\",\"properties\":{\"temp\":\"21.5\","
	       "\"q\\\"\\n\":\"\xc3\xa9\\u007f\",\"bad\":\"a\xef\xbf\xbd\"},"
	       "\"body\":\"hi\"}\n", "every field (outputName, userId left out)");
	m = msg_in("in1", NULL, 0, NULL, 0);
	enc_is(&m, "{\"input\":\"in1\",\"body\":\"\"}\n", "empty body");
	m = msg_in("in1", "\0\1\2\xff", 4, NULL, 0);
	enc_is(&m, "{\"input\":\"in1\",\"bodyBase64\":\"AAEC/w==\"}\n", "binary body");
	m = msg_in("in1", "a\0b", 3, NULL, 0);
	enc_is(&m, "{\"input\":\"in1\",\"bodyBase64\":\"YQBi\"}\n", "body with a NUL");
	m = msg_in("in1", "\xc3", 1, NULL, 0);
	enc_is(&m, "{\"input\":\"in1\",\"bodyBase64\":\"ww==\"}\n", "truncated UTF-8 body");
	m = msg_in("in1", "{\"a\":\"\\n\"}\t\x7f", 12, NULL, 0);
	enc_is(&m, "{\"input\":\"in1\",\"body\":\"{\\\"a\\\":\\\"\\\\n\\\"}\\t\\u007f\"}\n",
	       "text body escaped");
}

static void test_encode_errors(void)
{
	static struct te_prop many[TE_MSG_PROPS_MAX + 1];
	static const struct te_prop empty_key[] = { { { "", 0 }, { "v", 1 } } };
	static const struct te_prop null_val[] = { { { "k", 1 }, { NULL, 3 } } };
	static char s4097[4097];
	struct te_msg m = msg_in("in1", "x", 1, NULL, 0);
	size_t len, size, cap;
	char small[64];

	for (unsigned i = 0; i <= TE_MSG_PROPS_MAX; i++)
		many[i] = (struct te_prop){ { "k", 1 }, { "v", 1 } };
	TAP_EQ_INT(te_stdio_line_encode(&m, small, sizeof(small), &len), 0,
		   "encode into a small buffer");
	TAP_EQ_INT(len, 27, "... 27 bytes with the line feed");
	for (cap = 0; cap <= 27; cap++) {
		memset(small, 'Z', sizeof(small));
		if (te_stdio_line_encode(&m, small, cap, &len) != -TE_ENOSPACE ||
		    small[cap] != 'Z')
			break;
	}
	TAP_EQ_INT(cap, 28, "every cap 0..27 is too small, nothing written past it");
	TAP_EQ_INT(te_stdio_line_encode(&m, small, 28, &len), 0,
		   "cap 28 (line + NUL) is enough");
	TAP_OK(small[27] == 0 && small[26] == '\n', "NUL after the line feed");
	m.sys[TE_SYS_INPUT_NAME] = (struct te_str){ NULL, 0 };
	TAP_EQ_INT(te_stdio_line_encode(&m, enc, sizeof(enc), &len), -TE_EINVALID,
		   "no input name");
	m.sys[TE_SYS_INPUT_NAME] = (struct te_str){ "", 0 };
	TAP_EQ_INT(te_stdio_line_size(&m, &size), -TE_EINVALID, "empty input name");
	m = msg_in("in1", "x", 1, empty_key, 1);
	TAP_EQ_INT(te_stdio_line_encode(&m, enc, sizeof(enc), &len), -TE_EINVALID,
		   "empty property name");
	m = msg_in("in1", "x", 1, null_val, 1);
	TAP_EQ_INT(te_stdio_line_encode(&m, enc, sizeof(enc), &len), -TE_EINVALID,
		   "NULL value with a length");
	m = msg_in("in1", NULL, 5, NULL, 0);
	TAP_EQ_INT(te_stdio_line_encode(&m, enc, sizeof(enc), &len), -TE_EINVALID,
		   "NULL body with a length");
	m = msg_in("in1", "x", 1, NULL, 3);
	TAP_EQ_INT(te_stdio_line_encode(&m, enc, sizeof(enc), &len), -TE_EINVALID,
		   "NULL properties with a count");
	m = msg_in("in1", "x", 1, many, TE_MSG_PROPS_MAX + 1);
	TAP_EQ_INT(te_stdio_line_encode(&m, enc, sizeof(enc), &len), -TE_ELIMIT,
		   "65 properties");
	m = msg_in("in1", big, TE_MSG_BODY_MAX + 1, NULL, 0);
	TAP_EQ_INT(te_stdio_line_encode(&m, enc, sizeof(enc), &len), -TE_ELIMIT,
		   "body over 256 KiB");
	memset(s4097, 'a', sizeof(s4097));
	m = msg_in("in1", "x", 1, NULL, 0);
	m.sys[TE_SYS_CONTENT_TYPE] = (struct te_str){ s4097, 4097 };
	TAP_EQ_INT(te_stdio_line_encode(&m, enc, sizeof(enc), &len), -TE_ELIMIT,
		   "4097-byte content type");
	m.sys[TE_SYS_CONTENT_TYPE] = (struct te_str){ NULL, 0 };
	m.sys[TE_SYS_INPUT_NAME] = (struct te_str){ s4097, 4097 };
	TAP_EQ_INT(te_stdio_line_encode(&m, enc, sizeof(enc), &len), -TE_ELIMIT,
		   "4097-byte input name");
}

/* The worst message: every limit reached, every byte escaped as \u00XX. */
static void test_worst_case(void)
{
	static struct te_prop props[TE_MSG_PROPS_MAX];
	static char ctl[TE_MSG_BODY_MAX];
	struct te_msg m;
	size_t size, len;

	memset(ctl, 1, sizeof(ctl));
	for (unsigned i = 0; i < TE_MSG_PROPS_MAX; i++)
		props[i] = (struct te_prop){ { ctl, TE_WIRE_STR_MAX }, { ctl, TE_WIRE_STR_MAX } };
	m = msg_in("x", ctl, TE_MSG_BODY_MAX, props, TE_MSG_PROPS_MAX);
	m.sys[TE_SYS_INPUT_NAME] = (struct te_str){ ctl, TE_WIRE_STR_MAX };
	for (int i = TE_SYS_MESSAGE_ID; i <= TE_SYS_CONNECTION_MODULE_ID; i++)
		m.sys[i] = (struct te_str){ ctl, TE_WIRE_STR_MAX };
	TAP_EQ_INT(te_stdio_line_size(&m, &size), 0, "worst case: size");
	TAP_OK(size <= TE_STDIO_OUT_MAX, "worst case: %zu <= TE_STDIO_OUT_MAX %u",
	       size, TE_STDIO_OUT_MAX);
	TAP_EQ_INT(te_stdio_line_encode(&m, enc, size, &len), 0,
		   "worst case: encodes into its size");
	TAP_OK(len + 1 <= size && size - len - 1 < 16,
	       "worst case: the bound is tight (%zu for %zu)", size, len + 1);
}

/* ---- round trips --------------------------------------------------------------- */

static bool same_str(struct te_str a, struct te_str b)
{
	return !a.p == !b.p && a.n == b.n && (!a.n || !memcmp(a.p, b.p, a.n));
}

/* Messages equal but for output vs input name. */
static bool same_msg(const struct te_msg *a, const struct te_msg *b)
{
	if (a->nprops != b->nprops || a->bodylen != b->bodylen ||
	    (a->bodylen && memcmp(a->body, b->body, a->bodylen)))
		return false;
	for (int i = 0; i < TE_SYS_N; i++)
		if (i != TE_SYS_OUTPUT_NAME && i != TE_SYS_INPUT_NAME &&
		    !same_str(a->sys[i], b->sys[i]))
			return false;
	for (uint32_t i = 0; i < a->nprops; i++)
		if (!same_str(a->props[i].key, b->props[i].key) ||
		    !same_str(a->props[i].val, b->props[i].val))
			return false;
	return true;
}

/* decode(line) = m; encode m for input "in1"; the line renamed to output
 * (as an echoing module would) decodes to m again and re-encodes to the
 * same bytes. */
static void round_trip(const char *line, const char *name)
{
	static char line2[TE_STDIO_OUT_MAX + 1], enc2[TE_STDIO_OUT_MAX];
	static struct te_prop props[TE_MSG_PROPS_MAX];
	static char keep[TE_STDIO_LINE_MAX];
	struct te_msg m, m2;
	size_t len, len2;
	bool ok;

	if (decode(line, strlen(line), &m)) {
		TAP_OK(0, "round trip %s: decode: %s", name, errbuf);
		return;
	}
	/* keep m: the next decode reuses the scratch */
	memcpy(keep, sc.buf, sizeof(keep));
	memcpy(props, sc.props, sizeof(props));
	for (int i = 0; i < TE_SYS_N; i++)
		if (m.sys[i].p >= sc.buf && m.sys[i].p < sc.buf + sizeof(sc.buf))
			m.sys[i].p = keep + (m.sys[i].p - sc.buf);
	for (uint32_t i = 0; i < m.nprops; i++) {
		props[i].key.p = keep + (props[i].key.p - sc.buf);
		props[i].val.p = keep + (props[i].val.p - sc.buf);
	}
	m.props = props;
	if (m.body)
		m.body = keep + ((const char *)m.body - sc.buf);
	m.sys[TE_SYS_INPUT_NAME] = (struct te_str){ "in1", 3 };
	ok = te_stdio_line_encode(&m, enc, sizeof(enc), &len) == 0 &&
	     !strncmp(enc, "{\"input\":\"in1\"", 14) && enc[len - 1] == '\n' &&
	     !memchr(enc, '\n', len - 1);
	if (ok) {
		len2 = (size_t)sprintf(line2, "{\"output\":\"in1\"%s", enc + 14);
		ok = decode(line2, len2 - 1, &m2) == 0 && same_msg(&m, &m2) &&
		     str_is(m2.sys[TE_SYS_OUTPUT_NAME], "in1");
		m2.sys[TE_SYS_INPUT_NAME] = (struct te_str){ "in1", 3 };
		ok = ok && te_stdio_line_encode(&m2, enc2, sizeof(enc2), &len2) == 0 &&
		     len2 == len && !memcmp(enc, enc2, len);
	}
	TAP_OK(ok, "round trip %s", name);
	if (!ok)
		printf("#   encoded \"%s\"\n#   %s\n", show(enc), errbuf);
}

static void test_round_trips(void)
{
	size_t n;

	round_trip("{\"output\":\"out1\",\"messageId\":\"m1\",\"correlationId\":\"\","
		   "\"contentType\":\"text/plain\",\"contentEncoding\":\"utf-8\","
		   "\"creationTimeUtc\":\"2024-05-01T12:00:00Z\","
		   "\"connectionModuleId\":\"mod\",\"properties\":{\"temp\":\"21.5\","
		   "\"k\\u00e9\\ud83d\\ude00\":\"a\\n\\\"b\\\"\\u001f\\u007f\",\"e\":\"\"},"
		   "\"body\":\"hello \\\"w\\\" \\u00e9\\t\"}", "every key");
	round_trip("{\"output\":\"o\",\"body\":{ \"a\" : [1, {\"b\":null}], \"s\":\"\\u00e9\\\\\" }}",
		   "JSON body (becomes a string with its content type)");
	round_trip("{\"output\":\"o\",\"body\":42}", "number body");
	round_trip("{\"output\":\"o\",\"bodyBase64\":\"AAEC/w==\"}", "binary body");
	round_trip("{\"output\":\"o\",\"bodyBase64\":\"aGVsbG8=\"}", "base64 of text (becomes body)");
	round_trip("{\"output\":\"o\",\"body\":\"a\\u0000b\"}", "NUL in body (becomes base64)");
	round_trip("{\"output\":\"o\",\"body\":\"\x7f\\/\"}", "DEL and an escaped slash");
	round_trip("{\"output\":\"o\"}", "no body");
	round_trip("{\"output\":\"o\",\"properties\":{}}", "empty properties");
	n = props_line(big, 64);
	big[n] = 0;
	round_trip(big, "64 properties");
	n = fill_line("\"body\":\"", '\x7f', TE_STDIO_LINE_MAX / 6 - 64, "\"");
	big[n] = 0;
	round_trip(big, "a body of DEL, 6 times longer encoded");
	n = fill_line("\"bodyBase64\":\"", '/', TE_MSG_BODY_MAX / 3 * 4, "\"");
	big[n] = 0;
	round_trip(big, "large binary body");
}

int main(void)
{
	test_every_key();
	test_bodies();
	test_errors();
	test_limits();
	test_encode();
	test_encode_errors();
	test_worst_case();
	test_round_trips();
	return tap_done();
}
