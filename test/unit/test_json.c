/* Unit tests for src/core/json.c: the validating reader, accessors, policy
 * tables and the writer. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "json.h"
#include "tap.h"

/* A diag sink that keeps every report. */
#define SINK_MAX 16
struct sink {
	struct te_diag d;
	unsigned n;
	char msg[SINK_MAX][480];
	char file[SINK_MAX][128];
	unsigned line[SINK_MAX], col[SINK_MAX];
};

static struct sink S;

static void sink_emit(struct te_diag *d, const char *file, unsigned line,
		      unsigned col, const char *msg)
{
	struct sink *s = d->ctx;
	unsigned i = s->n < SINK_MAX ? s->n : SINK_MAX - 1;

	snprintf(s->msg[i], sizeof(s->msg[i]), "%s", msg);
	snprintf(s->file[i], sizeof(s->file[i]), "%s", file ? file : "");
	s->line[i] = line;
	s->col[i] = col;
	s->n++;
}

static struct te_diag *sink_reset(void)
{
	memset(&S, 0, sizeof(S));
	S.d.emit = sink_emit;
	S.d.ctx = &S;
	return &S.d;
}

/* The last report. */
static const char *last_msg(void) { return S.n ? S.msg[(S.n - 1) % SINK_MAX] : ""; }
static unsigned last_line(void) { return S.n ? S.line[(S.n - 1) % SINK_MAX] : 0; }
static unsigned last_col(void) { return S.n ? S.col[(S.n - 1) % SINK_MAX] : 0; }

/* A test name with unprintable bytes written as \xNN. */
static const char *show(const char *s)
{
	static char buf[256];
	size_t n = 0;

	for (; *s && n < sizeof(buf) - 8; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x20 && c < 0x7f && c != '#')
			buf[n++] = (char)c;
		else
			n += (size_t)snprintf(buf + n, 8, "\\x%02x", c);
	}
	buf[n] = 0;
	return buf;
}

static const struct te_json_limits big_limits = {
	.max_bytes = 8u << 20, .max_tokens = 1u << 20, .max_depth = 32,
};

static int parse_lim(struct te_json_doc *doc, const char *text, size_t len,
		     const struct te_json_limits *lim)
{
	return te_json_parse(doc, "t.json", text, len, lim, sink_reset());
}

static int parse(struct te_json_doc *doc, const char *text)
{
	return parse_lim(doc, text, strlen(text), NULL);
}

/* The caller's token array for te_json_parse_buf: as many tokens as any
 * limit used here allows. */
static struct te_json_tok toks[1u << 20];

static int parse_buf(struct te_json_doc *doc, const char *text, size_t len,
		     const struct te_json_limits *lim)
{
	return te_json_parse_buf(doc, "t.json", text, len, lim, toks,
				 sizeof(toks) / sizeof(toks[0]), sink_reset());
}

/* Accepted by both entry points, with the same tokens. */
static void ok_doc(const char *text, const char *name)
{
	struct te_json_doc doc, doc2;
	int r = parse(&doc, text), r2;
	bool same;

	TAP_OK(r == 0 && S.n == 0 && doc.ntok > 0, "accept %s", show(name));
	if (r || S.n)
		printf("#   got %d: %u:%u %s\n", r, last_line(), last_col(),
		       last_msg());
	r2 = parse_buf(&doc2, text, strlen(text), NULL);
	same = r2 == r && doc2.ntok == doc.ntok && !doc2.own_tok &&
	       (r || (doc2.tok == toks &&
		      !memcmp(doc.tok, toks, doc.ntok * sizeof(*toks))));
	if (!same)
		TAP_OK(same, "te_json_parse_buf agrees on %s", show(name));
	te_json_free(&doc2); /* must not free toks: ASan would say so */
	te_json_free(&doc);
}

/* Rejected with exactly one report, at line:col, saying msg. */
static void bad_lim(const char *text, size_t len,
		    const struct te_json_limits *lim, int err, unsigned line,
		    unsigned col, const char *msg, const char *name)
{
	struct te_json_doc doc;
	int r = parse_lim(&doc, text, len, lim);
	bool ok = r == err && S.n == 1 && last_line() == line &&
		  last_col() == col && !strcmp(last_msg(), msg) &&
		  !strcmp(S.file[0], "t.json") && !doc.tok && !doc.ntok;

	TAP_OK(ok, "reject %s", show(name));
	if (!ok)
		printf("#   got %d (%s), %u reports, %u:%u \"%s\"\n"
		       "#   want %d, %u:%u \"%s\"\n", r, te_strerror(r), S.n,
		       last_line(), last_col(), last_msg(), err, line, col, msg);
	te_json_free(&doc);
	/* the same report without allocation (quiet unless it differs) */
	r = parse_buf(&doc, text, len, lim);
	if (r != err || S.n != 1 || last_line() != line || last_col() != col ||
	    strcmp(last_msg(), msg) || doc.tok || doc.ntok)
		TAP_OK(0, "te_json_parse_buf rejects %s the same way", show(name));
	te_json_free(&doc);
}

static void bad(const char *text, unsigned line, unsigned col,
		const char *msg)
{
	bad_lim(text, strlen(text), NULL, -TE_EMALFORMED, line, col, msg, text);
}

static void test_valid(void)
{
	static const char *const docs[] = {
		"0", "-0", "1", "-1.5e+3", "2E-7", "0.25", "123456789012345678901234567890",
		"true", "false", "null", "\"\"", "\"x\"", " \t\r\n1 \n", "{}", "[]",
		"[[]]", "{\"a\":{}}", "[1,\"a\",true,false,null,{},[]]",
		" { \"a\" : [ 1 , 2 ] , \"b\" : { } } ",
		"[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00\"]",
		"\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"",
		"[\"\x7f\"]", "{\"a\":1,\"A\":2,\"a \":3}",
	};

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		ok_doc(docs[i], docs[i]);
}

static void test_tokens(void)
{
	const char *text = "{\"a\":[1,2,{\"b\":null}],\"c\":\"d\",\"e\":{},\"f\":true}";
	static const uint8_t types[] = {
		TE_JSON_OBJECT, TE_JSON_STRING, TE_JSON_ARRAY, TE_JSON_NUMBER,
		TE_JSON_NUMBER, TE_JSON_OBJECT, TE_JSON_STRING, TE_JSON_NULL,
		TE_JSON_STRING, TE_JSON_STRING, TE_JSON_STRING, TE_JSON_OBJECT,
		TE_JSON_STRING, TE_JSON_BOOL,
	};
	static const uint32_t next[] = { 14, 2, 8, 4, 5, 8, 7, 8, 9, 10, 11, 12, 13, 14 };
	static const uint32_t size[] = { 4, 0, 3, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0 };
	struct te_json_doc doc;
	unsigned keys[8], vals[8], nk = 0, elems[8], ne = 0;
	bool tys = true, nx = true, sz = true;

	TAP_EQ_INT(parse(&doc, text), 0, "token doc parses");
	TAP_EQ_INT(doc.ntok, 14, "token count");
	for (unsigned i = 0; i < 14 && i < doc.ntok; i++) {
		tys &= doc.tok[i].type == types[i];
		nx &= doc.tok[i].next == next[i];
		sz &= doc.tok[i].size == size[i];
	}
	TAP_OK(tys, "token types");
	TAP_OK(nx, "token next indices");
	TAP_OK(sz, "token sizes");
	TAP_OK(doc.tok[0].start == 0 && doc.tok[0].end == strlen(text),
	       "root spans the document");
	TAP_OK(doc.tok[1].start == 2 && doc.tok[1].end == 3,
	       "string span is inside the quotes");
	TAP_OK(doc.tok[2].start == 5 && doc.tok[2].end == 21,
	       "array span includes its brackets");
	TAP_OK(doc.tok[3].start == 6 && doc.tok[3].end == 7, "number span");
	TE_JSON_FOREACH_MEMBER(&doc, 0, k, v) {
		keys[nk] = k;
		vals[nk++] = v;
	}
	TAP_OK(nk == 4 && keys[0] == 1 && keys[1] == 8 && keys[2] == 10 &&
	       keys[3] == 12 && vals[0] == 2 && vals[1] == 9 && vals[2] == 11 &&
	       vals[3] == 13, "FOREACH_MEMBER visits a, c, e, f");
	TE_JSON_FOREACH_ELEM(&doc, 2, e)
		elems[ne++] = e;
	TAP_OK(ne == 3 && elems[0] == 3 && elems[1] == 4 && elems[2] == 5,
	       "FOREACH_ELEM visits 1, 2, {}");
	ne = 0;
	TE_JSON_FOREACH_ELEM(&doc, 11, e)
		ne++;
	TAP_EQ_INT(ne, 0, "FOREACH over an empty object");
	te_json_free(&doc);
	te_json_free(&doc);
	TAP_OK(!doc.tok && !doc.ntok, "te_json_free is idempotent");

	TAP_EQ_INT(parse(&doc, "  42 "), 0, "scalar root");
	TAP_OK(doc.ntok == 1 && doc.tok[0].type == TE_JSON_NUMBER &&
	       doc.tok[0].start == 2 && doc.tok[0].end == 4 &&
	       doc.tok[0].next == 1, "scalar root token");
	te_json_free(&doc);
}

static void test_structure_errors(void)
{
	bad("{\"a\" \"b\"}", 1, 6, "expected ':' after object key");
	bad("{\"a\"}", 1, 5, "expected ':' after object key");
	bad("{\"a\" 1}", 1, 6, "expected ':' after object key");
	bad("{\"a\":}", 1, 6, "expected a value after ':'");
	bad("{\"a\"::1}", 1, 6, "expected a value after ':'");
	bad("[1,]", 1, 4, "expected a value after ','");
	bad("[1,,2]", 1, 4, "expected a value after ','");
	bad("[,1]", 1, 2, "expected a value or ']'");
	bad("[,]", 1, 2, "expected a value or ']'");
	bad("{,}", 1, 2, "expected a string key or '}'");
	bad("{\"a\":1,}", 1, 8, "expected a string key after ','");
	bad("[1 2]", 1, 4, "expected ',' or ']' after array element");
	bad("[1:2]", 1, 2, "invalid number");
	bad("[\"a\":1]", 1, 5, "expected ',' or ']' after array element");
	bad("{\"a\":1 \"b\":2}", 1, 8, "expected ',' or '}' after object member");
	bad("{\"a\":1 2}", 1, 8, "expected ',' or '}' after object member");
	bad("{\"a\":[] {}}", 1, 9, "expected ',' or '}' after object member");
	bad("{\"a\":\"b\":\"c\"}", 1, 9, "expected ',' or '}' after object member");
	bad("{1:2}", 1, 2, "object key must be a string");
	bad("{\"a\":1,2:3}", 1, 8, "object key must be a string");
	bad("{[]:1}", 1, 2, "object key must be a string");
	bad("{}{}", 1, 3, "trailing garbage after the document");
	bad("1 2", 1, 3, "trailing garbage after the document");
	bad("[1]]", 1, 4, "trailing garbage after the document");
	bad("\"a\" x", 1, 5, "trailing garbage after the document");
	bad("[] ,", 1, 4, "trailing garbage after the document");
	bad("true,", 1, 5, "trailing garbage after the document");
	bad("[tru, nulll, True]", 1, 2, "invalid literal");
	bad("[01, .5]", 1, 2, "invalid number");
	bad("[1 2, @]", 1, 4, "expected ',' or ']' after array element");
	bad("[[1,], @]", 1, 5, "expected a value after ','");
	bad("{\"a\":1,\"a\":2, 3:4}", 1, 15, "object key must be a string");
	bad("[\"\\q\", \"\\x\"]", 1, 3, "invalid escape \\q in string");
	bad("[1}", 1, 3, "unexpected '}'");
	bad("{]", 1, 2, "unexpected ']'");
	bad("{@}", 1, 2, "invalid character '@'");
	bad("{\"a\":1 @}", 1, 8, "invalid character '@'");
	bad("{\"a\":1 [2]}", 1, 8, "expected ',' or '}' after object member");
	bad("{\"a\":1,{}}", 1, 8, "object key must be a string");
	bad("{\"a\":1 true}", 1, 8, "expected ',' or '}' after object member");
	bad("{\"a\":1]", 1, 7, "unexpected ']'");
	bad("]", 1, 1, "unexpected ']'");
	bad(",1", 1, 1, "unexpected ','");
	bad("[1", 1, 3, "unexpected end of input");
	bad("{\"a\":", 1, 6, "unexpected end of input");
	bad("{\"a\":[1,2", 1, 10, "unexpected end of input");
	bad("", 1, 1, "empty document");
	bad("  \n ", 2, 2, "empty document");
	bad("[@]", 1, 2, "invalid character '@'");
	bad("\xef\xbb\xbf{}", 1, 1, "invalid character 0xEF");
	bad("[1,\x01]", 1, 4, "invalid character 0x01");
	bad("{\n  \"a\": 1,\n  \"b\": tru\n}", 3, 8, "invalid literal");
	bad("{\n\t\"a\": 1\n\t\"b\": 2\n}", 3, 2,
	    "expected ',' or '}' after object member");
	bad_lim("[1,\0]", 5, NULL, -TE_EMALFORMED, 1, 4, "NUL byte in input",
		"embedded NUL");
	bad_lim("\"a\0\"", 4, NULL, -TE_EMALFORMED, 1, 3, "NUL byte in input",
		"NUL inside a string");
}

static void test_string_errors(void)
{
	bad("[\"abc", 1, 2, "unterminated string");
	bad("\"abc", 1, 1, "unterminated string");
	bad("[\"a\\", 1, 2, "unterminated string");
	bad("[\"a\\qb\"]", 1, 4, "invalid escape \\q in string");
	bad("[\"\\x41\"]", 1, 3, "invalid escape \\x in string");
	bad("[\"\\'\"]", 1, 3, "invalid escape \\' in string");
	bad("[\"a\nb\"]", 1, 4, "control character U+000A in string");
	bad("\"\t\"", 1, 2, "control character U+0009 in string");
	bad("[\"\x1f\"]", 1, 3, "control character U+001F in string");
	bad("[\"\\u12G4\"]", 1, 3, "invalid \\u escape in string");
	bad("[\"\\u12\"]", 1, 3, "invalid \\u escape in string");
	bad("[\"\\ud800\"]", 1, 3, "lone surrogate \\ud800");
	bad("[\"\\uDC00\"]", 1, 3, "lone surrogate \\uDC00");
	bad("[\"x\\ud800\\u0041\"]", 1, 4, "lone surrogate \\ud800");
	bad("[\"\\ud800\\ud800\"]", 1, 3, "lone surrogate \\ud800");
	bad("[\"\\udc00\\ud800\"]", 1, 3, "lone surrogate \\udc00");
	bad("[\"\\ud83d\\ude00\\ude00\"]", 1, 15, "lone surrogate \\ude00");
	bad("[\"\xff\"]", 1, 3, "invalid UTF-8 in string");
	bad("[\"ab\x80\"]", 1, 5, "invalid UTF-8 in string");
	bad("[\"\xc0\xaf\"]", 1, 3, "invalid UTF-8 in string");
	bad("[\"\xc1\xbf\"]", 1, 3, "invalid UTF-8 in string");
	bad("[\"\xe0\x80\xaf\"]", 1, 3, "invalid UTF-8 in string");
	bad("[\"\xf0\x80\x80\xaf\"]", 1, 3, "invalid UTF-8 in string");
	bad("[\"\xed\xa0\x80\"]", 1, 3, "invalid UTF-8 in string");
	bad("[\"\xf4\x90\x80\x80\"]", 1, 3, "invalid UTF-8 in string");
	bad("[\"\xf5\x80\x80\x80\"]", 1, 3, "invalid UTF-8 in string");
	bad("[\"\xe2\x82\"]", 1, 3, "invalid UTF-8 in string");
	bad("{\"k\xe2\x82\":1}", 1, 4, "invalid UTF-8 in string");
	bad("{\"a\\q\":1}", 1, 4, "invalid escape \\q in string");
}

static void test_scalar_errors(void)
{
	static const char *const nums[] = {
		"[01]", "[-]", "[1.]", "[.5]", "[+1]", "[1e]", "[0x1]", "[1.e5]",
		"[-01]", "[1e+]", "[--1]", "[1.5.2]", "[1e5e5]", "[00]", "[-.5]",
		"[1ee2]", "[Infinity]", "[1f]",
	};
	static const char *const lits[] = {
		"[tru]", "[truex]", "[nul]", "[nulll]", "[True]", "[NaN]",
		"[fals]", "[falsee]", "[t]", "[undefined]", "[n\"x\"]",
	};

	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		bad(nums[i], 1, 2, strcmp(nums[i], "[Infinity]") ?
		    "invalid number" : "invalid literal");
	for (size_t i = 0; i < sizeof(lits) / sizeof(lits[0]); i++)
		bad(lits[i], 1, 2, "invalid literal");
	bad("01", 1, 1, "invalid number");
	bad(" -", 1, 2, "invalid number");
	bad("1.", 1, 1, "invalid number");
	bad("tru", 1, 1, "invalid literal");
	bad("x", 1, 1, "invalid literal");
	bad("[1\"x\"]", 1, 2, "invalid number");
	bad("{\"a\":1:2}", 1, 6, "invalid number");
	bad("{\"a\":-}", 1, 6, "invalid number");
	bad("[1\xc3\xa9]", 1, 2, "invalid number");
}

static void test_limits(void)
{
	struct te_json_limits lim = te_json_default_limits;
	struct te_json_doc doc;
	char deep[80], *huge;
	size_t n = 40000;

	TAP_OK(lim.max_bytes == 1u << 20 && lim.max_tokens == 65536 &&
	       lim.max_depth == 32, "default limits");
	memset(deep, '[', 32);
	memset(deep + 32, ']', 32);
	TAP_EQ_INT(parse_lim(&doc, deep, 64, NULL), 0, "depth 32 accepted");
	te_json_free(&doc);
	memset(deep, '[', 33);
	memset(deep + 33, ']', 33);
	bad_lim(deep, 66, NULL, -TE_ELIMIT, 1, 33,
		"nesting deeper than 32 levels", "depth 33");
	huge = malloc(n);
	memset(huge, '[', n);
	bad_lim(huge, n, NULL, -TE_ELIMIT, 1, 33,
		"nesting deeper than 32 levels", "40000 unclosed '['");
	for (size_t i = 0; i < n; i += 2) {
		huge[i] = '{';
		huge[i + 1] = '[';
	}
	bad_lim(huge, n, NULL, -TE_ELIMIT, 1, 33,
		"nesting deeper than 32 levels", "40000 mixed '{['");
	free(huge);
	TAP_OK(!parse_lim(&doc, "\"[[[[\"", 6,
			  &(struct te_json_limits){ 100, 100, 0 }) && !S.n,
	       "brackets in strings do not count");
	te_json_free(&doc);
	bad_lim("[\"]]]\",[[2]]]", 13, &(struct te_json_limits){ 100, 100, 2 },
		-TE_ELIMIT, 1, 9, "nesting deeper than 2 levels",
		"depth counted past a string");
	lim.max_depth = 0;
	bad_lim("[]", 2, &lim, -TE_ELIMIT, 1, 1, "nesting deeper than 0 levels",
		"depth 0 refuses []");
	TAP_EQ_INT(parse_lim(&doc, "7", 1, &lim), 0, "depth 0 allows a scalar");
	te_json_free(&doc);

	lim = te_json_default_limits;
	lim.max_bytes = 10;
	bad_lim("[1,2,3,4,5]", 11, &lim, -TE_ELIMIT, 0, 0,
		"input is 11 bytes, more than the 10 limit", "size cap");
	TAP_EQ_INT(parse_lim(&doc, "[1,2,3,45]", 10, &lim), 0,
		   "size at the cap accepted");
	te_json_free(&doc);

	lim = te_json_default_limits;
	lim.max_tokens = 3;
	TAP_EQ_INT(parse_lim(&doc, "[1,2]", 5, &lim), 0, "3 tokens accepted");
	te_json_free(&doc);
	bad_lim("[1,2,3]", 7, &lim, -TE_ELIMIT, 1, 6, "more than 3 tokens",
		"token cap (position of the 4th token)");
	bad_lim("[1,2,\"x\"]", 9, &lim, -TE_ELIMIT, 1, 6, "more than 3 tokens",
		"token cap at a string");
	bad_lim("[1,2,[]]", 8, &lim, -TE_ELIMIT, 1, 6, "more than 3 tokens",
		"token cap at a bracket");
	lim.max_tokens = UINT_MAX;
	bad_lim("[1,\"\\q\"]", 8, &lim, -TE_EMALFORMED, 1, 5,
		"invalid escape \\q in string", "huge token cap, syntax error");
	lim.max_tokens = 0;
	bad_lim("1", 1, &lim, -TE_ELIMIT, 1, 1, "more than 0 tokens",
		"token cap 0, scalar root");
}

/* {"k0":0,"k1":1,...} with n members, optionally repeating key "k<dup>"
 * as the last member. */
static char *big_object(unsigned n, int dup, size_t *len)
{
	char *s = malloc((size_t)n * 24 + 64), *p = s;

	*p++ = '{';
	for (unsigned i = 0; i < n; i++)
		p += sprintf(p, "%s\"k%u\":%u", i ? "," : "", i, i);
	if (dup >= 0)
		p += sprintf(p, ",\"k%d\":0", dup);
	*p++ = '}';
	*len = (size_t)(p - s);
	return s;
}

static void test_duplicates(void)
{
	struct te_json_doc doc;
	size_t len;
	char *s, want[64];

	bad("{\"a\":1,\"a\":2}", 1, 8, "duplicate key \"a\"");
	bad("{\"a\":1,\"b\":2,\"a\":3}", 1, 14, "duplicate key \"a\"");
	bad("{\"a\":1,\"\\u0061\":2}", 1, 8, "duplicate key \"\\u0061\"");
	bad("{\"\xc3\xa9\":1,\"\\u00e9\":2}", 1, 9, "duplicate key \"\\u00e9\"");
	bad("{\"\\/\":1,\"/\":2}", 1, 9, "duplicate key \"/\"");
	bad("[{\"x\":{\"a\":1,\"a\":1}}]", 1, 14, "duplicate key \"a\"");
	bad("{\"\":1,\"\":2}", 1, 7, "duplicate key \"\"");
	ok_doc("{\"a\":{\"a\":1},\"b\":{\"a\":2},\"c\":[{\"a\":1},{\"a\":1}]}",
	       "same key in different objects");
	ok_doc("{\"a\":1,\"a\\u0000\":2,\"ab\":3}", "keys differing after NUL");

	s = big_object(20, 3, &len);
	snprintf(want, sizeof(want), "duplicate key \"k3\"");
	bad_lim(s, len, &big_limits, -TE_EMALFORMED, 1, (unsigned)len - 6, want,
		"duplicate in a 21-member object (sorted path)");
	free(s);
	s = big_object(60000, -1, &len);
	TAP_EQ_INT(parse_lim(&doc, s, len, &big_limits), 0,
		   "60000-member object parses");
	TAP_EQ_INT(doc.ntok ? doc.tok[0].size : 0, 60000, "... with 60000 members");
	TAP_EQ_INT(te_json_get(&doc, 0, "k59999"), 120000, "te_json_get finds the last");
	te_json_free(&doc);
	free(s);
	s = big_object(60000, 12345, &len);
	bad_lim(s, len, &big_limits, -TE_EMALFORMED, 1, (unsigned)len - 10,
		"duplicate key \"k12345\"", "duplicate in a 60001-member object");
	free(s);
	bad("{\"b\":1,\"a\":1,\"c\":1,\"d\":1,\"e\":1,\"f\":1,\"g\":1,\"h\":1,"
	    "\"i\":1,\"b\":2,\"a\":2}", 1, 56, "duplicate key \"b\"");
}

/* te_json_parse_buf: the caller's array, its size as a token cap. */
static void test_parse_buf(void)
{
	static struct te_json_tok few[4];
	const char *text = "{\"a\":[1,2]}";
	struct te_json_limits lim = te_json_default_limits;
	struct te_json_doc doc;
	int r;

	r = te_json_parse_buf(&doc, "t.json", text, strlen(text), NULL, few, 4,
			      sink_reset());
	TAP_OK(r == -TE_ELIMIT && S.n == 1 && !strcmp(last_msg(), "more than 4 tokens"),
	       "parse_buf: 5 tokens in an array of 4: \"%s\"", last_msg());
	TAP_OK(!doc.tok && !doc.ntok, "parse_buf: doc empty after an error");
	text = "{\"a\":[1]}";
	r = te_json_parse_buf(&doc, "t.json", text, strlen(text), NULL, few, 4,
			      sink_reset());
	TAP_OK(r == 0 && doc.tok == few && doc.ntok == 4 && !doc.own_tok,
	       "parse_buf: exactly 4 tokens in an array of 4");
	TAP_OK(doc.tok[0].type == TE_JSON_OBJECT && doc.tok[0].size == 1 &&
	       doc.tok[0].next == 4 && doc.tok[2].type == TE_JSON_ARRAY &&
	       doc.tok[3].type == TE_JSON_NUMBER, "parse_buf: the tokens");
	te_json_free(&doc);
	TAP_OK(!doc.tok && few[0].type == TE_JSON_OBJECT,
	       "te_json_free leaves the caller's array alone");
	lim.max_tokens = 2;
	r = te_json_parse_buf(&doc, "t.json", text, strlen(text), &lim, few, 4,
			      sink_reset());
	TAP_OK(r == -TE_ELIMIT && !strcmp(last_msg(), "more than 2 tokens"),
	       "parse_buf: the smaller cap wins (limit)");
	r = te_json_parse_buf(&doc, "t.json", "1", 1, NULL, NULL, 0, sink_reset());
	TAP_OK(r == -TE_ELIMIT && !strcmp(last_msg(), "more than 0 tokens"),
	       "parse_buf: no array at all");
	r = te_json_parse_buf(&doc, "t.json", "7", 1, NULL, few, 1, sink_reset());
	TAP_OK(r == 0 && doc.ntok == 1 && few[0].type == TE_JSON_NUMBER,
	       "parse_buf: scalar root in one token");
	te_json_free(&doc);
}

static void test_strings(void)
{
	const char *text = "[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\", "
			   "\"\\u00e9\\u20AC\\ud83d\\ude00\", \"x\\u0000y\", "
			   "\"h\xc3\xa9llo\", \"\", 5, \"\xe2\x82\xac\xe2\x82\xac\"]";
	struct te_json_doc doc;
	char buf[64], *d;
	size_t len = 99;
	int err = 1;

	TAP_EQ_INT(parse(&doc, text), 0, "string doc parses");
	TAP_EQ_INT(te_json_str(&doc, 1, buf, sizeof(buf), &len), 0, "short escapes");
	TAP_OK(len == 12 && !memcmp(buf, "a\"b\\c/d\b\f\n\r\t", 13),
	       "short escapes decode");
	TAP_EQ_INT(te_json_str(&doc, 2, buf, sizeof(buf), &len), 0, "\\u escapes");
	TAP_EQ_STR(buf, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
		   "\\u00e9 \\u20AC and a surrogate pair decode to UTF-8");
	TAP_EQ_INT(len, 9, "decoded length");
	TAP_EQ_INT(te_json_str(&doc, 3, buf, sizeof(buf), NULL), -TE_EINVALID,
		   "\\u0000 is refused");
	TAP_EQ_INT(te_json_str(&doc, 4, buf, sizeof(buf), NULL), 0, "raw UTF-8");
	TAP_EQ_STR(buf, "h\xc3\xa9llo", "raw UTF-8 is kept");
	TAP_EQ_INT(te_json_str(&doc, 4, buf, 4, &len), -TE_ENOSPACE, "too small");
	TAP_EQ_STR(buf, "h\xc3\xa9", "truncated prefix");
	TAP_EQ_INT(len, 6, "needed length reported on overflow");
	TAP_EQ_INT(te_json_str(&doc, 4, buf, 3, NULL), -TE_ENOSPACE, "too small 2");
	TAP_EQ_STR(buf, "h", "a character is never split");
	TAP_EQ_INT(te_json_str(&doc, 5, buf, 1, &len), 0, "empty string fits in 1");
	TAP_OK(buf[0] == 0 && len == 0, "empty string value");
	TAP_EQ_INT(te_json_str(&doc, 6, buf, sizeof(buf), NULL), -TE_EMALFORMED,
		   "a number is not a string");
	TAP_EQ_INT(te_json_str(&doc, 99, buf, sizeof(buf), NULL), -TE_EMALFORMED,
		   "out-of-range token");
	d = te_json_strdup(&doc, 2, &err);
	TAP_OK(d && !err && !strcmp(d, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"),
	       "strdup");
	free(d);
	d = te_json_strdup(&doc, 5, &err);
	TAP_OK(d && !err && !*d, "strdup of \"\"");
	free(d);
	TAP_OK(!te_json_strdup(&doc, 3, &err) && err == -TE_EINVALID,
	       "strdup refuses \\u0000");
	TAP_OK(!te_json_strdup(&doc, 6, &err) && err == -TE_EMALFORMED,
	       "strdup of a number");
	TAP_OK(te_json_streq(&doc, 2, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"),
	       "streq unescapes");
	TAP_OK(!te_json_streq(&doc, 2, "\xc3\xa9"), "streq: prefix is not equal");
	TAP_OK(!te_json_streq(&doc, 4, "h\xc3\xa9llo!"), "streq: longer is not equal");
	TAP_OK(!te_json_streq(&doc, 3, "x"), "streq: \\u0000 does not end the string");
	TAP_OK(te_json_streq(&doc, 5, ""), "streq of empty");
	TAP_OK(!te_json_streq(&doc, 6, "5"), "streq of a number is false");
	TAP_OK(te_json_streq(&doc, 7, "\xe2\x82\xac\xe2\x82\xac"), "streq raw UTF-8");
	memset(buf, 'Z', sizeof(buf));
	TAP_EQ_INT(te_json_bytes(&doc, 3, buf, sizeof(buf), &len), 0,
		   "bytes: \\u0000 is a byte");
	TAP_OK(len == 3 && !memcmp(buf, "x\0yZ", 4), "bytes: x NUL y, nothing appended");
	TAP_EQ_INT(te_json_bytes(&doc, 4, buf, 6, &len), 0, "bytes: exactly fits");
	TAP_OK(len == 6 && !memcmp(buf, "h\xc3\xa9llo", 6), "bytes: content");
	TAP_EQ_INT(te_json_bytes(&doc, 4, buf, 5, &len), -TE_ENOSPACE,
		   "bytes: one short");
	TAP_EQ_INT(len, 6, "bytes: needed length on overflow");
	TAP_EQ_INT(te_json_bytes(&doc, 5, NULL, 0, &len), 0, "bytes: empty in 0");
	TAP_EQ_INT(te_json_bytes(&doc, 6, buf, sizeof(buf), NULL), -TE_EMALFORMED,
		   "bytes: a number is not a string");
	te_json_free(&doc);
	TAP_OK(te_json_utf8_valid("", 0) && te_json_utf8_valid("a\0b", 3) &&
	       te_json_utf8_valid("\xf0\x9f\x98\x80\xc3\xa9", 6),
	       "utf8_valid: empty, NUL, 4- and 2-byte sequences");
	TAP_OK(!te_json_utf8_valid("\xc3", 1) && !te_json_utf8_valid("\xc0\x80", 2) &&
	       !te_json_utf8_valid("\xed\xa0\x80", 3) &&
	       !te_json_utf8_valid("a\xff", 2) && !te_json_utf8_valid("\xf4\x90\x80\x80", 4),
	       "utf8_valid: truncated, overlong, surrogate, 0xff, past U+10FFFF");
}

static void test_numbers(void)
{
	const char *text = "[9223372036854775807, -9223372036854775808, "
			   "9223372036854775808, -9223372036854775809, 1.0, 1e3, "
			   "0, -0, \"1\", 1.5, -2e-3, 1e999, true, false, null, "
			   "123456789012345678901234567890123456789012345678901234567890123456789e-60]";
	struct te_json_doc doc;
	int64_t v = 0;
	double d = 0;
	bool b = false;

	TAP_EQ_INT(parse(&doc, text), 0, "number doc parses");
	TAP_OK(!te_json_int(&doc, 1, &v) && v == INT64_MAX, "INT64_MAX");
	TAP_OK(!te_json_int(&doc, 2, &v) && v == INT64_MIN, "INT64_MIN");
	TAP_EQ_INT(te_json_int(&doc, 3, &v), -ERANGE, "INT64_MAX + 1");
	TAP_EQ_INT(te_json_int(&doc, 4, &v), -ERANGE, "INT64_MIN - 1");
	TAP_EQ_INT(te_json_int(&doc, 5, &v), -TE_EMALFORMED, "1.0 is not an integer");
	TAP_EQ_INT(te_json_int(&doc, 6, &v), -TE_EMALFORMED, "1e3 is not an integer");
	TAP_OK(!te_json_int(&doc, 7, &v) && v == 0, "0");
	TAP_OK(!te_json_int(&doc, 8, &v) && v == 0, "-0");
	TAP_EQ_INT(te_json_int(&doc, 9, &v), -TE_EMALFORMED, "a string is not a number");
	TAP_OK(!te_json_double(&doc, 10, &d) && d == 1.5, "double 1.5");
	TAP_OK(!te_json_double(&doc, 11, &d) && d == -2e-3, "double -2e-3");
	TAP_OK(!te_json_double(&doc, 12, &d) && isinf(d), "1e999 overflows to inf");
	TAP_OK(!te_json_double(&doc, 1, &d) && d == 9223372036854775807.0,
	       "double of an integer");
	TAP_EQ_INT(te_json_double(&doc, 9, &d), -TE_EMALFORMED, "double of a string");
	TAP_OK(!te_json_double(&doc, 16, &d) && fabs(d - 123456789.01234568) < 1e-6,
	       "double of a 73-byte number");
	TAP_OK(!te_json_bool(&doc, 13, &b) && b, "true");
	TAP_OK(!te_json_bool(&doc, 14, &b) && !b, "false");
	TAP_EQ_INT(te_json_bool(&doc, 15, &b), -TE_EMALFORMED, "null is not a bool");
	TAP_EQ_INT(te_json_bool(&doc, 7, &b), -TE_EMALFORMED, "0 is not a bool");
	TAP_EQ_INT(doc.tok[15].type, TE_JSON_NULL, "null token type");
	te_json_free(&doc);
}

static void test_lookup(void)
{
	struct te_json_doc doc;
	char buf[64];
	unsigned line, col;

	TAP_EQ_INT(parse(&doc, "{\"a\":1,\n \"b\":[true],\"c\\u0041\":\"x\"}"), 0,
		   "lookup doc parses");
	TAP_EQ_INT(te_json_get(&doc, 0, "a"), 2, "get a");
	TAP_EQ_INT(te_json_get(&doc, 0, "b"), 4, "get b");
	TAP_EQ_INT(te_json_get(&doc, 0, "cA"), 7, "get an escaped key");
	TAP_EQ_INT(te_json_get(&doc, 0, "c"), -1, "get a missing key");
	TAP_EQ_INT(te_json_get(&doc, 4, "a"), -1, "get on an array");
	TAP_EQ_INT(te_json_get(&doc, 100, "a"), -1, "get on a bad token");
	TAP_EQ_STR(te_json_type_name(TE_JSON_NULL), "null", "type name null");
	TAP_EQ_STR(te_json_type_name(TE_JSON_BOOL), "boolean", "type name boolean");
	TAP_EQ_STR(te_json_type_name(TE_JSON_NUMBER), "number", "type name number");
	TAP_EQ_STR(te_json_type_name(TE_JSON_STRING), "string", "type name string");
	TAP_EQ_STR(te_json_type_name(TE_JSON_OBJECT), "object", "type name object");
	TAP_EQ_STR(te_json_type_name(TE_JSON_ARRAY), "array", "type name array");
	te_json_types_text(TE_JSON_STRING | TE_JSON_OBJECT, buf, sizeof(buf));
	TAP_EQ_STR(buf, "a string or an object", "types text, two");
	te_json_types_text(TE_JSON_NUMBER, buf, sizeof(buf));
	TAP_EQ_STR(buf, "a number", "types text, one");
	te_json_types_text(TE_JSON_ARRAY, buf, sizeof(buf));
	TAP_EQ_STR(buf, "an array", "types text, an array");
	te_json_types_text(TE_JSON_NULL | TE_JSON_BOOL | TE_JSON_ARRAY, buf,
			   sizeof(buf));
	TAP_EQ_STR(buf, "null, a boolean or an array", "types text, three");
	te_json_types_text(TE_JSON_STRING | TE_JSON_OBJECT, buf, 8);
	TAP_EQ_STR(buf, "a strin", "types text truncates safely");
	te_json_pos(&doc, 0, &line, &col);
	TAP_OK(line == 1 && col == 1, "pos of offset 0");
	te_json_pos(&doc, 9, &line, &col);
	TAP_OK(line == 2 && col == 2, "pos after a newline");
	te_json_pos(&doc, 1000, &line, &col);
	TAP_OK(line == 2 && col == 27, "pos past the end is clamped");
	sink_reset();
	te_json_error(&doc, &S.d, 3, "bad %s", "key");
	TAP_OK(S.n == 1 && S.line[0] == 2 && S.col[0] == 2 &&
	       !strcmp(S.msg[0], "bad key") && !strcmp(S.file[0], "t.json"),
	       "te_json_error at a string's opening quote");
	sink_reset();
	te_json_error(&doc, &S.d, 5, "x");
	TAP_OK(S.line[0] == 2 && S.col[0] == 7, "te_json_error at a scalar");
	te_json_free(&doc);
}

static const struct te_json_policy pol[] = {
	{ "deviceId", TE_JSON_STRING, TE_JSON_REQUIRED },
	{ "port", TE_JSON_NUMBER, 0 },
	{ "opts", TE_JSON_OBJECT | TE_JSON_STRING, 0 },
	{ "type", TE_JSON_STRING, TE_JSON_REQUIRED },
	{ "any", 0, 0 },
};
#define NPOL (sizeof(pol) / sizeof(pol[0]))

static void test_policy(void)
{
	struct te_json_doc doc;
	int tb[NPOL];
	unsigned n;

	TAP_EQ_INT(parse(&doc, "{\"deviceId\":\"d1\",\"type\":\"t\",\"opts\":{},"
			       "\"any\":[1]}"), 0, "policy doc 1");
	n = te_json_read_object(&doc, 0, "", pol, NPOL, tb, sink_reset());
	TAP_OK(n == 0 && S.n == 0, "a conforming object has no problems");
	TAP_OK(tb[0] == 2 && tb[1] == -1 && tb[2] == 6 && tb[3] == 4 && tb[4] == 8,
	       "tb holds value tokens, -1 when absent");
	te_json_free(&doc);

	TAP_EQ_INT(parse(&doc, "{\"deviceId\": 5,\n \"foo\": 1, \"port\": 80,"
			       " \"opts\": [1]}"), 0, "policy doc 2");
	n = te_json_read_object(&doc, 0, "", pol, NPOL, tb, sink_reset());
	TAP_EQ_INT(n, 4, "four problems counted");
	TAP_EQ_INT(S.n, 4, "four problems reported");
	TAP_EQ_STR(S.msg[0], "deviceId must be a string", "wrong type, root");
	TAP_OK(S.line[0] == 1 && S.col[0] == 14, "wrong type at the value");
	TAP_EQ_STR(S.msg[1], "unknown key \"foo\"", "unknown key, root");
	TAP_OK(S.line[1] == 2 && S.col[1] == 2, "unknown key at its quote");
	TAP_EQ_STR(S.msg[2], "opts must be a string or an object", "mask text");
	TAP_EQ_STR(S.msg[3], "missing required key \"type\"", "missing, root");
	TAP_OK(S.line[3] == 1 && S.col[3] == 1, "missing at the opening brace");
	TAP_OK(tb[0] == -1 && tb[1] == 6 && tb[2] == -1 && tb[3] == -1,
	       "wrong types give -1");
	n = te_json_read_object(&doc, 0, "modules.sensor", pol, NPOL, tb,
				sink_reset());
	TAP_EQ_INT(n, 4, "four problems with a name");
	TAP_EQ_STR(S.msg[0], "modules.sensor.deviceId must be a string",
		   "wrong type, named");
	TAP_EQ_STR(S.msg[1], "unknown key \"foo\" in modules.sensor",
		   "unknown key, named");
	TAP_EQ_STR(S.msg[3], "modules.sensor: missing required key \"type\"",
		   "missing, named");
	n = te_json_read_object(&doc, 2, "modules.sensor", pol, NPOL, tb,
				sink_reset());
	TAP_OK(n == 1 && !strcmp(S.msg[0], "modules.sensor must be an object") &&
	       S.col[0] == 14, "not an object");
	te_json_free(&doc);

	TAP_EQ_INT(parse(&doc, "[]"), 0, "policy doc 3");
	n = te_json_read_object(&doc, 0, "", pol, NPOL, tb, sink_reset());
	TAP_OK(n == 1 && !strcmp(S.msg[0], "the document must be an object"),
	       "root not an object");
	te_json_free(&doc);
	TAP_EQ_INT(parse(&doc, "{}"), 0, "policy doc 4");
	n = te_json_read_object(&doc, 0, "x", pol, NPOL, tb, sink_reset());
	TAP_OK(n == 2 && !strcmp(S.msg[0], "x: missing required key \"deviceId\"") &&
	       !strcmp(S.msg[1], "x: missing required key \"type\""),
	       "every missing key reported");
	te_json_free(&doc);
}

static void test_load_file(void)
{
	char path[] = "/tmp/test_json_XXXXXX";
	struct te_json_limits lim = te_json_default_limits;
	struct te_json_doc doc;
	int fd = mkstemp(path), r;

	TAP_OK(fd >= 0 && write(fd, "{\"a\": [1, 2]}\n", 14) == 14, "temp file");
	close(fd);
	r = te_json_load_file(&doc, path, "cfg.json", NULL, sink_reset());
	TAP_OK(r == 0 && doc.owned && doc.ntok == 5 && !strcmp(doc.name, "cfg.json"),
	       "load a file");
	TAP_EQ_INT(te_json_get(&doc, 0, "a"), 2, "loaded doc is usable");
	te_json_free(&doc);
	TAP_OK(!doc.owned && !doc.tok, "free releases the buffer");
	lim.max_bytes = 13;
	r = te_json_load_file(&doc, path, NULL, &lim, sink_reset());
	TAP_OK(r == -TE_ELIMIT && S.n == 1 && S.line[0] == 0 &&
	       !strcmp(S.file[0], path) &&
	       !strcmp(S.msg[0], "input is larger than the 13 byte limit"),
	       "file over the size cap");
	fd = open(path, O_WRONLY | O_TRUNC);
	TAP_OK(fd >= 0 && write(fd, "[1,\n2,]", 7) == 7, "rewrite temp file");
	close(fd);
	r = te_json_load_file(&doc, path, "x.json", NULL, sink_reset());
	TAP_OK(r == -TE_EMALFORMED && S.n == 1 && S.line[0] == 2 &&
	       S.col[0] == 3 && !strcmp(S.file[0], "x.json") && !doc.owned,
	       "parse error in a file names it");
	unlink(path);
	r = te_json_load_file(&doc, path, NULL, NULL, sink_reset());
	TAP_OK(r == -ENOENT && S.n == 1 && !strcmp(S.file[0], path) &&
	       !strcmp(S.msg[0], strerror(ENOENT)) && S.line[0] == 0,
	       "missing file: path: strerror");
	r = te_json_load_file(&doc, "/tmp", NULL, NULL, sink_reset());
	TAP_OK(r == -EISDIR && S.n == 1, "a directory is refused");
	lim.max_bytes = 10;
	r = te_json_load_file(&doc, "/proc/self/stat", NULL, &lim, sink_reset());
	TAP_OK(r == -TE_ELIMIT && S.n == 1,
	       "a file larger than its st_size is still capped");
	r = te_json_load_file(&doc, "/proc/self/stat", NULL, NULL, sink_reset());
	TAP_OK(r == -TE_EMALFORMED && S.n == 1 &&
	       !strcmp(S.msg[0], "trailing garbage after the document"),
	       "a file with st_size 0 is read to its end");
	r = te_json_load_file(&doc, "/dev/null", NULL, NULL, sink_reset());
	TAP_OK(r == -EINVAL && S.n == 1 && !strcmp(S.msg[0], "not a regular file"),
	       "a device is refused");
}

static int jw_run(char *buf, size_t cap, void (*fn)(struct te_jw *))
{
	struct te_jw w;

	te_jw_init(&w, buf, cap);
	fn(&w);
	return te_jw_finish(&w);
}

static void jw_doc(struct te_jw *w)
{
	te_jw_obj_open(w);
	te_jw_kstr(w, "name", "a\"b\\c\b\f\n\r\t\x01\x1f\x7f/\xc3\xa9");
	te_jw_kint(w, "min", INT64_MIN);
	te_jw_kbool(w, "on", true);
	te_jw_key(w, "list");
	te_jw_arr_open(w);
	te_jw_uint(w, UINT64_MAX);
	te_jw_double(w, 0.1);
	te_jw_double(w, NAN);
	te_jw_double(w, -INFINITY);
	te_jw_null(w);
	te_jw_bool(w, false);
	te_jw_arr_open(w);
	te_jw_arr_close(w);
	te_jw_obj_open(w);
	te_jw_obj_close(w);
	te_jw_raw(w, "{\"r\":1}", 7);
	te_jw_str(w, NULL);
	te_jw_arr_close(w);
	te_jw_key(w, "");
	te_jw_strn(w, "x\0y", 3);
	te_jw_obj_close(w);
}

static const char jw_expect[] =
	"{\"name\":\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f/\xc3\xa9\","
	"\"min\":-9223372036854775808,\"on\":true,\"list\":[18446744073709551615,"
	"0.10000000000000001,null,null,null,false,[],{},{\"r\":1},null],"
	"\"\":\"x\\u0000y\"}";

static void jw_bad_utf8(struct te_jw *w)
{
	te_jw_str(w, "a\xff" "b\xc3" "c\xed\xa0\x80" "d\xc0\xaf\xf0\x9f\x98\x80");
}

static void jw_key_in_array(struct te_jw *w)
{
	te_jw_arr_open(w);
	te_jw_key(w, "k");
	te_jw_arr_close(w);
}

static void jw_value_without_key(struct te_jw *w)
{
	te_jw_obj_open(w);
	te_jw_int(w, 1);
	te_jw_obj_close(w);
}

static void jw_key_at_root(struct te_jw *w) { te_jw_key(w, "k"); }

static void jw_two_roots(struct te_jw *w)
{
	te_jw_int(w, 1);
	te_jw_int(w, 2);
}

static void jw_mismatch(struct te_jw *w)
{
	te_jw_obj_open(w);
	te_jw_arr_close(w);
}

static void jw_dangling_key(struct te_jw *w)
{
	te_jw_obj_open(w);
	te_jw_key(w, "k");
	te_jw_obj_close(w);
}

static void jw_two_keys(struct te_jw *w)
{
	te_jw_obj_open(w);
	te_jw_key(w, "k");
	te_jw_key(w, "l");
}

static void jw_unclosed(struct te_jw *w) { te_jw_arr_open(w); }
static void jw_extra_close(struct te_jw *w) { te_jw_arr_close(w); }

static void jw_deep(struct te_jw *w)
{
	for (int i = 0; i < 64; i++)
		te_jw_arr_open(w);
	for (int i = 0; i < 64; i++)
		te_jw_arr_close(w);
}

static void jw_too_deep(struct te_jw *w)
{
	for (int i = 0; i < 65; i++)
		te_jw_arr_open(w);
}

static void jw_overflow_then_misuse(struct te_jw *w)
{
	te_jw_str(w, "0123456789");
	te_jw_key(w, "k");
}

static void test_writer(void)
{
	char buf[512], small[16];
	struct te_jw w;
	int r;

	r = jw_run(buf, sizeof(buf), jw_doc);
	TAP_EQ_INT(r, 0, "writer document");
	TAP_EQ_STR(buf, jw_expect, "writer output and escaping");
	TAP_EQ_INT(jw_run(buf, sizeof(buf), jw_bad_utf8), 0, "bad UTF-8 string");
	TAP_EQ_STR(buf, "\"a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd"
		   "\xef\xbf\xbd" "d\xef\xbf\xbd\xef\xbf\xbd\xf0\x9f\x98\x80\"",
		   "invalid bytes become U+FFFD");
	TAP_EQ_INT(jw_run(buf, sizeof(buf), jw_key_in_array), -TE_EINVALID,
		   "key inside an array");
	TAP_EQ_INT(jw_run(buf, sizeof(buf), jw_value_without_key), -TE_EINVALID,
		   "object value without a key");
	TAP_EQ_INT(jw_run(buf, sizeof(buf), jw_key_at_root), -TE_EINVALID,
		   "key at the root");
	TAP_EQ_INT(jw_run(buf, sizeof(buf), jw_two_roots), -TE_EINVALID,
		   "two root values");
	TAP_EQ_INT(jw_run(buf, sizeof(buf), jw_mismatch), -TE_EINVALID,
		   "'{' closed as an array");
	TAP_EQ_INT(jw_run(buf, sizeof(buf), jw_dangling_key), -TE_EINVALID,
		   "object closed after a key");
	TAP_EQ_INT(jw_run(buf, sizeof(buf), jw_two_keys), -TE_EINVALID,
		   "two keys in a row");
	TAP_EQ_INT(jw_run(buf, sizeof(buf), jw_unclosed), -TE_EINVALID,
		   "finish with an open container");
	TAP_EQ_INT(jw_run(buf, sizeof(buf), jw_extra_close), -TE_EINVALID,
		   "close with nothing open");
	TAP_EQ_INT(jw_run(buf, sizeof(buf), jw_deep), 0, "depth 64");
	TAP_EQ_INT(strlen(buf), 128, "depth 64 output");
	TAP_EQ_INT(jw_run(buf, sizeof(buf), jw_too_deep), -TE_EINVALID, "depth 65");

	memset(small, 'Z', sizeof(small));
	te_jw_init(&w, small, 12);
	jw_overflow_then_misuse(&w);
	TAP_EQ_INT(te_jw_finish(&w), -TE_ENOSPACE, "overflow is sticky over misuse");
	TAP_OK(w.len < 12 && small[w.len] == 0 && small[12] == 'Z' &&
	       small[15] == 'Z', "never writes past cap");
	te_jw_init(&w, small, 12);
	te_jw_str(&w, "012345678");
	TAP_EQ_INT(te_jw_finish(&w), 0, "exactly fills cap with the NUL");
	TAP_OK(w.len == 11 && !strcmp(small, "\"012345678\""), "full buffer content");
	memset(small, 'Z', sizeof(small));
	te_jw_init(&w, small, 4);
	te_jw_str(&w, "\n");
	TAP_EQ_INT(te_jw_finish(&w), -TE_ENOSPACE, "escape does not fit");
	TAP_OK(small[4] == 'Z', "escape overflow stays in bounds");
	te_jw_init(&w, NULL, 0);
	TAP_EQ_INT(te_jw_finish(&w), -TE_ENOSPACE, "cap 0 cannot hold the NUL");
	te_jw_init(&w, buf, sizeof(buf));
	te_jw_obj_open(&w);
	te_jw_keyn(&w, "a\"bc", 2);
	te_jw_base64(&w, "foob", 4);
	te_jw_keyn(&w, "", 0);
	te_jw_base64(&w, "", 0);
	te_jw_obj_close(&w);
	TAP_EQ_INT(te_jw_finish(&w), 0, "keyn and base64");
	TAP_EQ_STR(buf, "{\"a\\\"\":\"Zm9vYg==\",\"\":\"\"}", "keyn and base64 text");
	memset(small, 'Z', sizeof(small));
	te_jw_init(&w, small, 10);
	te_jw_base64(&w, "foobar", 6); /* "Zm9vYmFy" + quotes + NUL = 11 */
	TAP_EQ_INT(te_jw_finish(&w), -TE_ENOSPACE, "base64 does not fit");
	TAP_OK(w.len == 0 && small[0] == 0 && small[10] == 'Z', "base64: all or nothing");
	te_jw_init(&w, small, 11);
	te_jw_base64(&w, "foobar", 6);
	TAP_EQ_INT(te_jw_finish(&w), 0, "base64 exactly fits");
	TAP_EQ_STR(small, "\"Zm9vYmFy\"", "base64 exact text");
}

static void test_round_trip(void)
{
	struct te_json_doc doc;
	char buf[512], out[128];
	struct te_jw w;
	int64_t v;
	int r;

	r = jw_run(buf, sizeof(buf), jw_doc);
	TAP_EQ_INT(r, 0, "round trip: write");
	TAP_EQ_INT(parse(&doc, buf), 0, "round trip: the output parses");
	r = te_json_get(&doc, 0, "name");
	TAP_OK(r > 0 && !te_json_str(&doc, (unsigned)r, out, sizeof(out), NULL) &&
	       !strcmp(out, "a\"b\\c\b\f\n\r\t\x01\x1f\x7f/\xc3\xa9"),
	       "round trip: escaped string");
	r = te_json_get(&doc, 0, "min");
	TAP_OK(r > 0 && !te_json_int(&doc, (unsigned)r, &v) && v == INT64_MIN,
	       "round trip: INT64_MIN");
	r = te_json_get(&doc, 0, "list");
	TAP_OK(r > 0 && doc.tok[r].size == 10, "round trip: list size");
	TE_JSON_FOREACH_ELEM(&doc, (unsigned)r, e) {
		double d;

		if (e == (unsigned)r + 2)
			TAP_OK(!te_json_double(&doc, e, &d) && d == 0.1,
			       "round trip: %%.17g restores 0.1");
	}
	te_json_free(&doc);
	te_jw_init(&w, buf, sizeof(buf));
	te_jw_str(&w, "\xff\xfe");
	TAP_EQ_INT(te_jw_finish(&w), 0, "write invalid UTF-8");
	TAP_EQ_INT(parse(&doc, buf), 0, "... and it reads back as valid JSON");
	te_json_free(&doc);
}

int main(void)
{
	test_valid();
	test_tokens();
	test_structure_errors();
	test_string_errors();
	test_scalar_errors();
	test_limits();
	test_duplicates();
	test_parse_buf();
	test_strings();
	test_numbers();
	test_lookup();
	test_policy();
	test_load_file();
	test_writer();
	test_round_trip();
	return tap_done();
}
