/* The route language (route.h): a conformance table of conditions against
 * one fixed message, then sources, sinks, compile errors and the $body
 * scanner's edges. Expected values follow edgeHub's Routing.Core sources
 * and tests (see route_eval.c for the semantics). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "hub/route.h"
#include "tap.h"

#define T TE_TRUE
#define F TE_FALSE
#define U TE_UNDEFINED
#define E (-1) /* compile error */

/* The conditions go between "FROM /messages/<*> WHERE " (<*>: the star;
 * 23 bytes) and " INTO $upstream": table columns are within the condition
 * (1-based) and become route columns + PREFIX. */
#define PREFIX 23
#define BODY "{\"a\":{\"b\":5,\"s\":\"x\\\"y\",\"arr\":[1,2]},\"t\":21.5,\"ok\":true,\"n\":null}"
#define UNI "h\xc3\xa9llo\xf0\x9f\x98\x80" /* héllo😀: 7 UTF-16 units */

static const struct te_prop props[] = {
	{ { "temp", 4 }, { "32.5", 4 } },
	{ { "name", 4 }, { "sensor-1", 8 } },
	{ { "flag", 4 }, { "true", 4 } },
	{ { "unit", 4 }, { "C", 1 } },
	{ { "empty", 5 }, { "", 0 } },
	{ { "big", 3 }, { "1,000", 5 } },
	{ { "sp", 2 }, { " 7 ", 3 } },
	{ { "uni", 3 }, { UNI, sizeof(UNI) - 1 } },
};

#define S(s) { s, sizeof(s) - 1 }

static struct te_msg msg_make(enum te_msg_origin o, const char *module,
			      const char *output)
{
	struct te_msg m;

	memset(&m, 0, sizeof(m));
	m.origin = o;
	m.sys[TE_SYS_MESSAGE_ID] = (struct te_str)S("m1");
	m.sys[TE_SYS_CONTENT_TYPE] = (struct te_str)S("application/json");
	m.sys[TE_SYS_CONTENT_ENCODING] = (struct te_str)S("utf-8");
	m.sys[TE_SYS_CONNECTION_DEVICE_ID] = (struct te_str)S("dev1");
	if (module)
		m.sys[TE_SYS_CONNECTION_MODULE_ID] =
			(struct te_str){ module, (uint32_t)strlen(module) };
	if (output)
		m.sys[TE_SYS_OUTPUT_NAME] =
			(struct te_str){ output, (uint32_t)strlen(output) };
	m.props = props;
	m.nprops = sizeof(props) / sizeof(props[0]);
	m.body = BODY;
	m.bodylen = sizeof(BODY) - 1;
	return m;
}

#define V(c, w) { c, w, 0, NULL }
#define ERR(c, col, m) { c, E, col, m }

static const struct {
	const char *cond;
	int want;
	unsigned col;     /* E: column within the condition */
	const char *msg;  /* E: part of the message */
} cases[] = {
	/* literals and a condition's own type */
	V("true", T), V("false", F), V("undefined", U),
	V("null", F),                 /* edgeHub: Null converts to false */
	V("3", U), V("'a string'", U), V("\"dq\"", U),
	V("True", U),                 /* literals are lower case: a property */
	V("NOT true", F), V("not false", T), V("NOT null", T),
	V("NOT NOT true", T),

	/* three-valued logic */
	V("true AND true", T), V("true AND false", F), V("false AND true", F),
	V("false AND false", F), V("true AND undefined", U),
	V("undefined AND true", U), V("false AND undefined", F),
	V("undefined AND false", F), V("undefined AND undefined", U),
	V("true OR false", T), V("false OR false", F), V("undefined OR true", T),
	V("true OR undefined", T), V("false OR undefined", U),
	V("undefined OR false", U), V("undefined OR undefined", U),
	V("NOT (missing = 'x')", U),
	V("missing = 'x' OR true", T), V("missing = 'x' AND false", F),
	ERR("NOT undefined", 1, "NOT needs a boolean"),
	V("null AND true", F), V("(null AND true) = null", T),
	V("null OR true", T), V("null OR false", F), V("(null OR null) = null", T),
	V("true aNd false", F), V("false Or true", T), V("nOt false", T),

	/* precedence and associativity (Condition.g4) */
	V("1 + 2 * 3 = 7", T), V("(1 + 2) * 3 = 9", T), V("10 - 4 - 3 = 3", T),
	V("2 * 3 % 4 = 2", T), V("-2 * 3 = -6", T), V("- 2 + 5 = 3", T),
	V("true OR false AND false", T), V("false AND false OR true", T),
	V("true = 1 < 2", T),        /* comparison binds tighter than = */
	ERR("NOT 1 = 2", 1, "NOT needs a boolean"), /* (NOT 1) = 2 */
	V("NOT (1 = 2)", T),
	V("'a' || 'b' = 'ab'", T), V("1 + 1 = 2 AND 2 * 2 = 4", T),
	V("true OR false ?? false", T),

	/* coalesce: the lowest precedence, operands of one type */
	ERR("missing ?? 'x' = 'x'", 9, "?? needs operands of one type"),
	V("(missing ?? 'x') = 'x'", T), V("(name ?? 'x') = 'sensor-1'", T),
	V("(missing ?? missing2 ?? 'z') = 'z'", T), V("undefined ?? undefined", U),
	V("(as_number(name) ?? 12.5) = 12.5", T),
	V("(as_number(temp) ?? 1) = 32.5", T), V("(3 % 0 ?? 7) = 7", T),
	ERR("(name ?? 5)", 7, "??"), ERR("(undefined ?? 1)", 12, "??"),

	/* comparisons */
	V("3 = 3", T), V("3 != 4", T), V("3 <> 3", F), V("'a' < 'b'", T),
	V("'b' <= 'a'", F), V("'abc' > 'ab'", T), V("2 >= 2", T),
	V("false < true", T), V("null = null", T), V("null <> null", F),
	V("undefined = undefined", U), V("undefined < undefined", U),
	ERR("'5' = 5", 5, "cannot compare a string with a number"),
	ERR("true = 1", 6, "compare"), ERR("null = 0", 6, "compare"),
	ERR("temp > 30", 6, "cannot compare"), /* properties are strings */
	ERR("undefined = 1", 11, "compare"),
	ERR("flag = true", 6, "a string with a boolean"),

	/* $body: dynamic values compare across types as edgeHub's QueryValue */
	V("$body.t = 21.5", T), V("$body.t > 21", T), V("$body.a.b = 5", T),
	V("$body.a.b + 1 = 6", T), V("-$body.t = -21.5", T),
	V("$body.t = '21.5'", F), V("$body.t <> '21.5'", T),
	V("$body.t != name", T), V("$body.t < 'a'", T), V("$body.ok < 1", T),
	V("$body.n = null", T), V("$body.n <> null", F),
	V("$body.missing = null", T),   /* a missing member is null */
	V("$body.missing <> 'x'", T), V("$body.a = null", U), /* object */
	V("$body.a.arr = null", U),    /* array */
	V("$body.a.s = 'x\"y'", T), V("$body.a.s = 'x\\\"y'", T),
	V("$body.a.s || '!' = 'x\"y!'", T),
	V("$body.a.arr[1] = 2", T), V("$body.a.arr[0] < $body.a.arr[1]", T),
	V("$body.a.arr[2] = null", T), V("$body.a.b.c = null", T),
	V("$body.t[0] = null", T),
	V("$body.ok", T), V("NOT $body.ok", F), V("$body.ok AND true", T),
	V("$body.n AND true", U), V("$body.missing OR true", U),
	V("NOT $body.n", U), V("$body.n", U),
	V("$BODY.t = 21.5", T), V("{$body.t} = 21.5", T),
	V("is_defined($body.missing)", T), V("is_null($body.n)", T),
	V("is_number($body.t)", T), V("is_string($body.a.s)", T),
	V("is_bool($body.ok)", T), V("is_bool($body.t)", F),
	V("$body", U),                 /* not a query: system property "body" */
	ERR("$body.a..b = 1", 1, "invalid $body path"),
	ERR("$body.a[x] = 1", 1, "invalid $body path"),
	ERR("$body.a[] = 1", 1, "invalid $body path"),
	V("$body.t = 'a' AND $body.a.b", U), /* QueryValue AND: both booleans */

	/* properties: names case-insensitive, values strings */
	V("name = 'sensor-1'", T), V("NAME = 'sensor-1'", T),
	V("name = 'Sensor-1'", F), V("missing = 'x'", U), V("empty = ''", T),
	V("is_defined(missing)", F), V("is_defined(name)", T),
	V("flag = 'true'", T), V("alert-level = 'x'", U), /* one name */
	V("a.b = 'x'", U), V("x*2 = 'x'", U), V("1st = 'x'", U), /* names too */
	V("name>='sensor'", T),

	/* system properties: $name, {$name}, names case-insensitive */
	V("$connectionModuleId = 'sensor'", T),
	V("$CONNECTIONMODULEID = 'sensor'", T),
	V("{$connectionModuleId} = 'sensor'", T),
	V("{ $outputName } = 'out1'", T), V("$messageId = 'm1'", T),
	V("$correlationId = 'x'", U), V("is_defined($inputName)", F),
	V("$nosuch = 'x'", U), V("$contentType = 'application/json'", T),
	V("$connectionDeviceId <> 'dev2'", T),
	ERR("{name} = 'x'", 2, "expected $name after '{'"),
	ERR("{$messageId = 'm1'", 13, "expected '}'"),

	/* strings: ' or ", backslash escapes; doubled quotes are not escapes */
	V("\"sensor-1\" = name", T), V("'it\\'s' = \"it's\"", T),
	V("\"say \\\"hi\\\"\" = 'say \"hi\"'", T),
	V("'a\\\\b' = 'a' || '\\\\' || 'b'", T), V("'\\u0041' = 'A'", T),
	V("'\\u00e9' = '\xc3\xa9'", T), V("'\\ud83d\\ude00' = '\xf0\x9f\x98\x80'", T),
	ERR("'it''s' = 'x'", 5, "expected INTO"),
	ERR("name = 'abc", 8, "unterminated string"),
	ERR("name = \"abc", 8, "unterminated string"),
	ERR("'a\\qb' = 'x'", 3, "invalid escape"),

	/* math functions */
	V("abs(-3) = 3", T), V("exp(0) = 1", T), V("power(2, 10) = 1024", T),
	V("square(3) = 9", T), V("ceiling(2.1) = 3", T), V("ceiling(-2.1) = -2", T),
	V("floor(-2.1) = -3", T), V("sign(-5) = -1", T), V("sign(0) = 0", T),
	V("sqrt(16) = 4", T), V("sqrt(-4) = 2", U), V("is_defined(sqrt(-1))", F),
	ERR("abs('x')", 5, "argument 1 of abs must be a number"),
	ERR("abs()", 1, "abs takes 1 argument"), ERR("abs(1, 2)", 1, "takes 1"),
	ERR("power(2)", 1, "power takes 2 arguments"),
	ERR("power(2, null)", 10, "argument 2 of power"),
	ERR("abs(undefined)", 5, "must be a number, not undefined"),

	/* type functions */
	V("as_number(temp) > 30", T), V("as_number(temp) = 32.5", T),
	V("as_number(name) = 1", U), V("as_number('1e3') = 1000", T),
	V("as_number(big) = 1000", T), V("as_number(sp) = 7", T),
	V("as_number(' 0x10 ') = 16", U), V("as_number(5) = 5", T),
	V("as_number(missing) = 1", U), V("as_number('-.5') = -0.5", T),
	ERR("as_number(true)", 11, "a string or a number"),
	V("is_bool(true)", T), V("is_bool(flag)", F), V("is_bool(missing)", F),
	V("is_bool(undefined)", F), V("is_bool(missing = 'x')", U),
	V("is_defined(undefined)", F), V("is_defined(null)", T),
	V("is_null(null)", T), V("is_null(name)", F), V("is_null(missing)", F),
	V("is_number(1.5)", T), V("is_number(temp)", F), V("is_number(1 / 0)", F),
	V("is_string(name)", T), V("is_string(missing)", F), V("is_string(1)", F),
	ERR("is_string()", 1, "is_string takes 1 argument"),

	/* string functions (lengths and indexes in UTF-16 units, as .NET) */
	V("concat('a', 'b', 'c') = 'abc'", T),
	V("concat(name, '/', unit) = 'sensor-1/C'", T),
	V("is_defined(concat('a', missing))", F),
	ERR("concat('a')", 1, "concat takes at least 2 arguments"),
	ERR("concat('a', 1)", 13, "argument 2 of concat must be a string"),
	V("length('hello') = 5", T), V("length('') = 0", T), V("length(uni) = 7", T),
	ERR("length(5)", 8, "argument 1 of length"),
	V("lower('HeLLo') = 'hello'", T), V("upper(name) = 'SENSOR-1'", T),
	V("substring('hello', 1) = 'ello'", T), V("substring('hello', 1, 3) = 'ell'", T),
	V("substring('hello', 5) = ''", T), V("substring('hello', 6) = ''", U),
	V("substring('hello', -1) = 'x'", U), V("substring('abc', 3, 0) = ''", U),
	V("substring('abc', 1, 0) = ''", T), V("substring('abc', 1, 3) = 'bc'", U),
	V("substring(uni, 5) = '\xf0\x9f\x98\x80'", T), V("substring(uni, 6) = ''", U),
	ERR("substring('abc')", 1, "takes 2 or 3 arguments"),
	ERR("substring('abc', 'a')", 18, "argument 2 of substring must be a number"),
	V("index_of('abcdef', 'cd') = 2", T), V("index_of('abc', 'x') = -1", T),
	V("index_of(uni, 'o') = 4", T), V("index_of('abc', '') = 0", T),
	V("starts_with(name, 'sen')", T), V("starts_with(name, 'x')", F),
	V("ends_with(name, '-1')", T), V("ends_with('a', 'abc')", F),
	V("contains(name, 'sor')", T), V("contains(name, 'xyz')", F),
	V("contains(missing, 'a')", U),
	ERR("contains('abc', 1)", 17, "argument 2 of contains"),
	V("ABS(-1) = 1", T), V("Is_Defined(name)", T), /* any case */
	ERR("as_numbr(temp) > 30", 1, "unknown function 'as_numbr'"),
	V("'a' || 'b' || 'c' = 'abc'", T), V("name || missing", U),
	V("upper(name) || lower(unit) || '!' = 'SENSOR-1c!'", T),
	V("concat(upper(unit), lower(name), upper(unit)) = 'Csensor-1C'", T),
	V("(upper(unit) || 'x') || (lower(unit) || 'y') = 'Cxcy'", T),
	V("is_defined(name || missing)", F),

	/* arithmetic */
	V("7 / 2 = 3.5", T), V("7 % 4 = 3", T), V("-7 % 4 = -3", T),
	V("1 / 0 = 1", U), V("is_defined(1 % 0)", F), V("0x10 = 16", T),
	V("1.5e2 = 150", T), V(".5 = 0.5", T), V("2*3 = 6", T),
	ERR("'a' * 2", 5, "operator * needs numbers"),
	ERR("-'x'", 1, "operator - needs a number"),
	ERR("'a' AND true", 5, "operator AND needs booleans"),
	ERR("true or 5", 6, "needs booleans"), ERR("NOT 5", 1, "NOT"),
	ERR("'a' + 'b'", 5, "operator + needs numbers"),
	ERR("1 || 'a'", 3, "operator || needs strings"),
	ERR("name || 1", 6, "|| needs strings"),

	/* syntax */
	ERR("(1 = 1", 8, "expected ')'"), ERR("1 = 1)", 6, "unexpected ')'"),
	ERR("1 =", 5, "expected an expression"),
	ERR("1 = = 2", 5, "unexpected '='"), ERR("1 == 1", 3, "use = to compare"),
	ERR("a & b", 3, "unexpected character '&'"), ERR("1 2", 3, "expected INTO"),
	ERR("name = 'x' AND", 16, "expected an expression"),
	V("/* note */ true", T), ERR("true /* open", 6, "unterminated comment"),
	ERR("# = 1", 1, "unexpected character '#'"),
	ERR("$ = 1", 1, "expected a name after '$'"),
	ERR("1e999 = 1", 1, "number out of range"),
	ERR("abs(1 2)", 7, "expected ',' or ')'"),
};

static void test_conformance(void)
{
	struct te_msg m = msg_make(TE_ORIGIN_MODULE, "sensor", "out1");
	char text[512], err[256];
	struct te_route r;
	unsigned col;
	int rc, got;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "FROM /messages/* WHERE %s INTO $upstream",
			 cases[i].cond);
		rc = te_route_compile(text, &r, err, sizeof(err), &col);
		got = rc ? E : (int)te_route_eval(&r, &m);
		if (cases[i].want != E) {
			TAP_OK(rc == 0 && got == cases[i].want, "%s -> %d", cases[i].cond,
			       cases[i].want);
			if (rc || got != cases[i].want)
				printf("#   got %d (rc %d: %s at %u)\n", got, rc, err, col);
		} else {
			bool colok = !cases[i].col || col == PREFIX + cases[i].col;
			bool msgok = !cases[i].msg || strstr(err, cases[i].msg);

			TAP_OK(rc == -TE_EINVALID && colok && msgok,
			       "%s -> error at %u", cases[i].cond, cases[i].col);
			if (rc != -TE_EINVALID || !colok || !msgok)
				printf("#   got rc %d \"%s\" at %u (rel %d)\n", rc, err, col,
				       (int)col - PREFIX);
		}
		te_route_free(&r);
	}
	printf("# %zu conformance cases\n", sizeof(cases) / sizeof(cases[0]));
}

/* te_route_eval must not allocate. Under ASan its allocator hooks count
 * every malloc while all the conformance routes (compiled first) run
 * against a message with a JSON body and one without. */
extern int __sanitizer_install_malloc_and_free_hooks(
	void (*)(const volatile void *, size_t), void (*)(const volatile void *))
	__attribute__((weak));
static volatile unsigned long allocs;
static volatile bool counting;

static void count_malloc(const volatile void *p, size_t n)
{
	if (counting)
		allocs++;
}

static void count_free(const volatile void *p)
{
}

static void test_no_alloc(void)
{
	size_t nc = sizeof(cases) / sizeof(cases[0]), k = 0;
	struct te_route *rs = calloc(nc, sizeof(*rs));
	struct te_msg m = msg_make(TE_ORIGIN_MODULE, "sensor", "out1");
	struct te_msg plain = msg_make(TE_ORIGIN_DEVICE, NULL, NULL);
	char text[512];

	if (!__sanitizer_install_malloc_and_free_hooks || !rs ||
	    !__sanitizer_install_malloc_and_free_hooks(count_malloc, count_free)) {
		TAP_OK(1, "evaluation allocates nothing # SKIP no allocator hooks");
		free(rs);
		return;
	}
	plain.sys[TE_SYS_CONTENT_TYPE] = (struct te_str)S("text/plain");
	for (size_t i = 0; i < nc; i++) {
		snprintf(text, sizeof(text), "FROM /messages/* WHERE %s INTO $upstream",
			 cases[i].cond);
		if (cases[i].want != E && !te_route_compile(text, &rs[k], NULL, 0, NULL))
			k++;
	}
	counting = true;
	for (size_t i = 0; i < k; i++) {
		te_route_eval(&rs[i], &m);
		te_route_eval(&rs[i], &plain);
	}
	counting = false;
	TAP_EQ_INT(allocs, 0, "evaluating %zu routes twice allocated nothing", k);
	TAP_OK(k > 200, "and that was most of the table (%zu)", k);
	for (size_t i = 0; i < k; i++)
		te_route_free(&rs[i]);
	free(rs);
}

/* ---- $body gating and the scanner's edges ------------------------------- */

static enum te_tri eval_body(const char *cond, const char *ctype,
			     const char *cenc, const char *body)
{
	struct te_msg m = msg_make(TE_ORIGIN_DEVICE, NULL, NULL);
	char text[512];
	struct te_route r;
	enum te_tri t;

	m.sys[TE_SYS_CONTENT_TYPE] = (struct te_str){ ctype, ctype ? (uint32_t)strlen(ctype) : 0 };
	m.sys[TE_SYS_CONTENT_ENCODING] = (struct te_str){ cenc, cenc ? (uint32_t)strlen(cenc) : 0 };
	m.body = body;
	m.bodylen = body ? (uint32_t)strlen(body) : 0;
	snprintf(text, sizeof(text), "FROM /messages/* WHERE %s INTO $upstream", cond);
	if (te_route_compile(text, &r, NULL, 0, NULL))
		return E;
	t = te_route_eval(&r, &m);
	te_route_free(&r);
	return t;
}

static void test_body(void)
{
	static char deep[600];
	size_t n = 0;

	TAP_EQ_INT(eval_body("$body.t = 21.5", "application/json", "utf-8", BODY), T,
		   "body query with json/utf-8");
	TAP_EQ_INT(eval_body("$body.t = 21.5", "Application/JSON", "UTF-8", BODY), T,
		   "content type and encoding compare case-insensitively");
	TAP_EQ_INT(eval_body("$body.t = 21.5", "text/plain", "utf-8", BODY), U,
		   "wrong content type: undefined");
	TAP_EQ_INT(eval_body("is_defined($body.t)", "text/plain", "utf-8", BODY), F,
		   "wrong content type: not defined");
	TAP_EQ_INT(eval_body("$body.t = 21.5", "application/json", "utf-16", BODY), U,
		   "utf-16 is not supported: undefined");
	TAP_EQ_INT(eval_body("$body.t = 21.5", NULL, "utf-8", BODY), U,
		   "no content type: undefined");
	TAP_EQ_INT(eval_body("$body.t = 21.5", "application/json", NULL, BODY), U,
		   "no content encoding: undefined");
	TAP_EQ_INT(eval_body("$body.t = 21.5", "application/json; charset=utf-8",
			     "utf-8", BODY), U, "content type must be exact");
	TAP_EQ_INT(eval_body("$body.t = 1", "application/json", "utf-8", "{\"t\":1,"), U,
		   "truncated JSON: undefined");
	TAP_EQ_INT(eval_body("$body.t = 1", "application/json", "utf-8", "{\"t\":01}"), U,
		   "leading zero: undefined");
	TAP_EQ_INT(eval_body("$body.t = 1", "application/json", "utf-8", "{\"t\":1} x"), U,
		   "trailing garbage: undefined");
	TAP_EQ_INT(eval_body("$body.t = 1", "application/json", "utf-8", "{\"t\":1}\n"), T,
		   "trailing white space is fine");
	TAP_EQ_INT(eval_body("$body.t = 1", "application/json", "utf-8", "[{\"t\":1}]"), U,
		   "root array: undefined (edgeHub parses a JObject)");
	TAP_EQ_INT(eval_body("$body.t = 1", "application/json", "utf-8", NULL), U,
		   "no body: undefined");
	TAP_EQ_INT(eval_body("$body.t = 'a\tb'", "application/json", "utf-8",
			     "{\"t\":\"a\tb\"}"), U, "raw control character: invalid JSON");
	TAP_EQ_INT(eval_body("$body.t = 'a\tb'", "application/json", "utf-8",
			     "{\"t\":\"a\\tb\"}"), T, "\\t escape decoded");
	TAP_EQ_INT(eval_body("$body.d = 2", "application/json", "utf-8",
			     "{\"d\":1,\"d\":2}"), T, "duplicate keys: the last wins");
	TAP_EQ_INT(eval_body("$body.k\xc3\xa9 = 1", "application/json", "utf-8",
			     "{\"k\\u00e9\":1}"), T, "escaped key matches");
	TAP_EQ_INT(eval_body("$body.x = '\xf0\x9f\x98\x80'", "application/json", "utf-8",
			     "{\"x\":\"\\ud83d\\ude00\"}"), T, "surrogate pair decoded");
	TAP_EQ_INT(eval_body("$body.x = 1", "application/json", "utf-8",
			     "{\"a\":{\"x\":2},\"x\":1}"), T, "nested key is not a top key");
	TAP_EQ_INT(eval_body("$body.a.b = 'z'", "application/json", "utf-8",
			     "{\"a\":[{\"b\":\"}\"}],\"a\":{\"b\":\"z\"}}"), T,
		   "skipping a value with brackets inside strings");
	TAP_EQ_INT(eval_body("$body.v = -1.5e2", "application/json", "utf-8",
			     "{\"v\":-1.5e2}"), T, "number with exponent");
	TAP_EQ_INT(eval_body("$body.v = false", "application/json", "utf-8",
			     "{\"v\":false}"), T, "false value");
	TAP_EQ_INT(eval_body("$body.a[1].b = 2", "application/json", "utf-8",
			     "{\"a\":[{\"b\":1},{\"b\":2}]}"), T, "index then member");
	n += (size_t)snprintf(deep, sizeof(deep), "{\"d\":");
	for (int i = 0; i < 200; i++)
		deep[n++] = '[';
	for (int i = 0; i < 200; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	deep[n] = 0;
	TAP_EQ_INT(eval_body("$body.d = null", "application/json", "utf-8", deep), U,
		   "nesting deeper than the limit: undefined");
	TAP_EQ_INT(eval_body("$body.e = null", "application/json", "utf-8",
			     "{\"d\":[[[[]]]]}"), T, "modest nesting is fine");
}

/* An application property spelled like $name or $body.x wins (edgeHub). */
static void test_app_first(void)
{
	static const struct te_prop shadow[] = {
		{ S("$messageId"), S("app") }, { S("$body.t"), S("100") },
	};
	struct te_msg m = msg_make(TE_ORIGIN_DEVICE, NULL, NULL);
	static const struct {
		const char *cond;
		int want;
	} c[] = {
		{ "$messageId = 'app'", T }, { "{$messageId} = 'm1'", T },
		{ "$body.t = '100'", T }, { "{$body.t} = 21.5", T },
		{ "as_number($body.t) = 100", T },
	};
	char text[256];
	struct te_route r;

	m.props = shadow;
	m.nprops = 2;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		snprintf(text, sizeof(text), "FROM /messages/* WHERE %s INTO $upstream",
			 c[i].cond);
		TAP_OK(te_route_compile(text, &r, NULL, 0, NULL) == 0 &&
		       (int)te_route_eval(&r, &m) == c[i].want, "app first: %s", c[i].cond);
		te_route_free(&r);
	}
}

/* Results that do not fit the scratch area are undefined, and the area is
 * reused by the next evaluation. */
static void test_scratch(void)
{
	static char big[3001];
	struct te_prop p[] = { { S("long"), { big, 3000 } } };
	struct te_msg m = msg_make(TE_ORIGIN_DEVICE, NULL, NULL);
	struct te_route r, r2;

	memset(big, 'x', 3000);
	m.props = p;
	m.nprops = 1;
	TAP_EQ_INT(te_route_compile("FROM /messages/* WHERE length(long || 'y') = 3001 "
				    "INTO $upstream", &r, NULL, 0, NULL), 0, "compile");
	TAP_EQ_INT(te_route_eval(&r, &m), T, "3001 bytes fit");
	TAP_EQ_INT(te_route_eval(&r, &m), T, "again: the scratch area is reused");
	te_route_free(&r);
	TAP_EQ_INT(te_route_compile("FROM /messages/* WHERE length(long || long) = 6000 "
				    "INTO $upstream", &r2, NULL, 0, NULL), 0, "compile");
	TAP_EQ_INT(te_route_eval(&r2, &m), U, "6000 bytes do not fit: undefined");
	te_route_free(&r2);
	TAP_EQ_INT(te_route_compile("FROM /messages/* WHERE upper(long) || lower(long) "
				    "= upper(long) INTO $upstream", &r2, NULL, 0, NULL),
		   0, "compile");
	TAP_EQ_INT(te_route_eval(&r2, &m), U, "scratch exhausted across calls: undefined");
	te_route_free(&r2);
}

static void test_nesting(void)
{
	char text[2200], cond[2048];
	struct te_route r;
	size_t n;

	for (int depth = 64; depth <= 65; depth++) {
		n = 0;
		for (int i = 0; i < depth; i++)
			cond[n++] = '(';
		n += (size_t)sprintf(cond + n, "true");
		for (int i = 0; i < depth; i++)
			cond[n++] = ')';
		cond[n] = 0;
		snprintf(text, sizeof(text), "FROM /messages/* WHERE %s INTO $upstream", cond);
		if (depth == 64) {
			TAP_OK(te_route_compile(text, &r, NULL, 0, NULL) == 0 &&
			       te_route_eval(&r, NULL) == T, "64 levels of ( ) compile");
		} else {
			char err[128];

			TAP_OK(te_route_compile(text, &r, err, sizeof(err), NULL) ==
			       -TE_EINVALID && strstr(err, "nested too deeply"),
			       "65 levels are too deep: %s", err);
		}
		te_route_free(&r);
	}
	n = 0;
	for (int i = 0; i < 100; i++)
		n += (size_t)sprintf(cond + n, "NOT ");
	sprintf(cond + n, "true");
	snprintf(text, sizeof(text), "FROM /messages/* WHERE %s INTO $upstream", cond);
	TAP_EQ_INT(te_route_compile(text, &r, NULL, 0, NULL), -TE_EINVALID,
		   "100 NOTs are too deep");
	n = 0;
	for (int i = 0; i < 200; i++)
		n += (size_t)sprintf(cond + n, "true AND ");
	sprintf(cond + n, "false");
	snprintf(text, sizeof(text), "FROM /messages/* WHERE %s INTO $upstream", cond);
	TAP_OK(te_route_compile(text, &r, NULL, 0, NULL) == 0 &&
	       te_route_eval(&r, NULL) == F, "a long flat chain is not nesting");
	te_route_free(&r);
}

/* ---- route forms: sources and sinks ------------------------------------ */

static const struct {
	const char *text;
	enum te_route_source src;
	const char *module, *output;
	enum te_route_sink sink;
	const char *smod, *sin;
	bool cond;
} forms[] = {
	{ "FROM /messages/* INTO $upstream", TE_RSRC_ALL, "", "", TE_RSINK_UPSTREAM, "", "", false },
	{ "SELECT * FROM /messages/* WHERE true INTO $upstream", TE_RSRC_ALL, "", "",
	  TE_RSINK_UPSTREAM, "", "", true },
	{ "select * from /messages/* where true into $UPSTREAM", TE_RSRC_ALL, "", "",
	  TE_RSINK_UPSTREAM, "", "", true },
	{ "  FROM\t/messages\nINTO   $upstream  ", TE_RSRC_ALL, "", "", TE_RSINK_UPSTREAM, "", "", false },
	{ "FROM /messages/ INTO $upstream", TE_RSRC_ALL, "", "", TE_RSINK_UPSTREAM, "", "", false },
	{ "FROM /messages/modules/sensor/* INTO $upstream", TE_RSRC_MODULE, "sensor", "",
	  TE_RSINK_UPSTREAM, "", "", false },
	{ "FROM /messages/modules/sensor INTO $upstream", TE_RSRC_MODULE, "sensor", "",
	  TE_RSINK_UPSTREAM, "", "", false },
	{ "FROM /messages/modules/sensor/outputs/* INTO $upstream", TE_RSRC_MODULE,
	  "sensor", "", TE_RSINK_UPSTREAM, "", "", false },
	{ "FROM /messages/modules/sensor/outputs INTO $upstream", TE_RSRC_MODULE,
	  "sensor", "", TE_RSINK_UPSTREAM, "", "", false },
	{ "FROM /MESSAGES/Modules/sensor/OUTPUTS/temp INTO $upstream", TE_RSRC_MODULE_OUTPUT,
	  "sensor", "temp", TE_RSINK_UPSTREAM, "", "", false },
	{ "FROM /twinChangeNotifications INTO $upstream", TE_RSRC_TWIN_CHANGES, "", "",
	  TE_RSINK_UPSTREAM, "", "", false },
	{ "FROM /TWINCHANGENOTIFICATIONS/* INTO $upstream", TE_RSRC_TWIN_CHANGES, "", "",
	  TE_RSINK_UPSTREAM, "", "", false },
	{ "FROM /messages/* INTO BrokeredEndpoint(\"/modules/filter/inputs/in1\")",
	  TE_RSRC_ALL, "", "", TE_RSINK_MODULE, "filter", "in1", false },
	{ "FROM /messages/* INTO brokeredendpoint('/modules/filter/inputs/in1')",
	  TE_RSRC_ALL, "", "", TE_RSINK_MODULE, "filter", "in1", false },
	{ "FROM /messages/* INTO BrokeredEndpoint(\"modules/filter/inputs/in1/\")",
	  TE_RSRC_ALL, "", "", TE_RSINK_MODULE, "filter", "in1", false },
	{ "FROM /messages/* INTO BrokeredEndpoint ( \" /modules/f-1/inputs/in.2 \" )",
	  TE_RSRC_ALL, "", "", TE_RSINK_MODULE, "f-1", "in.2", false },
	{ "FROM /messages/modules/a/outputs/o WHERE $body.x > 1 INTO "
	  "BrokeredEndpoint(\"/modules/b/inputs/i\")", TE_RSRC_MODULE_OUTPUT, "a", "o",
	  TE_RSINK_MODULE, "b", "i", true },
};

static void test_forms(void)
{
	char err[256];
	struct te_route r;
	unsigned col;

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		int rc = te_route_compile(forms[i].text, &r, err, sizeof(err), &col);

		TAP_OK(rc == 0 && r.source == forms[i].src &&
		       !strcmp(r.src_module, forms[i].module) &&
		       !strcmp(r.src_output, forms[i].output) && r.sink == forms[i].sink &&
		       !strcmp(r.sink_module, forms[i].smod) &&
		       !strcmp(r.sink_input, forms[i].sin) &&
		       r.has_condition == forms[i].cond &&
		       (r.prog != NULL) == forms[i].cond, "form: %s", forms[i].text);
		if (rc)
			printf("#   %s at %u\n", err, col);
		te_route_free(&r);
	}
}

static const struct {
	const char *text;
	unsigned col;
	const char *msg;
} bad[] = {
	{ "", 1, "empty route" }, { "   ", 1, "empty route" },
	{ "FROM", 5, "expected a source path after FROM" },
	{ "SELECT FROM /messages/* INTO $upstream", 8, "expected '*' after SELECT" },
	{ "/messages/* INTO $upstream", 1, "expected FROM" },
	{ "INTO $upstream", 1, "expected FROM" },
	{ "FROM /messages/* $upstream", 18, "expected WHERE or INTO" },
	{ "FROM /messages/* WHERE true", 28, "expected INTO" },
	{ "FROM /messages/* WHERE true INTO", 33, "expected a sink after INTO" },
	{ "FROM /messages/* WHERE INTO $upstream", 24, "expected a condition after WHERE" },
	{ "FROM /messages/* INTO $downstream", 23, "unknown sink '$downstream'" },
	{ "FROM /messages/* INTO Foo(\"/modules/a/inputs/b\")", 23, "unknown sink 'Foo'" },
	{ "FROM /messages/* INTO BrokeredEndpoint(\"/modules/a/outputs/b\")", 40,
	  "bad endpoint address" },
	{ "FROM /messages/* INTO BrokeredEndpoint(\"/modules/a/inputs\")", 40,
	  "bad endpoint address" },
	{ "FROM /messages/* INTO BrokeredEndpoint(\"/modules//inputs/b\")", 40,
	  "bad endpoint address" },
	{ "FROM /messages/* INTO BrokeredEndpoint(\"/modules/a/inputs/b\"", 61, "expected ')'" },
	{ "FROM /messages/* INTO BrokeredEndpoint(/modules/a/inputs/b)", 40,
	  "expected a quoted address" },
	{ "FROM /messages/* INTO BrokeredEndpoint \"/modules/a/inputs/b\"", 40,
	  "expected '(' after BrokeredEndpoint" },
	{ "FROM /messages/* INTO $upstream extra", 33, "unexpected 'extra' after the sink" },
	{ "FROM /messages/* WHERE (true)) INTO $upstream", 30, "unexpected ')'" },
	{ "FROM /foo/* INTO $upstream", 6, "bad source '/foo/*'" },
	{ "FROM messages/* INTO $upstream", 6, "bad source" },
	{ "FROM /messages/modules/* INTO $upstream", 6, "every module" },
	{ "FROM /messages/modules INTO $upstream", 6, "every module" },
	{ "FROM /messages/modules//outputs/x INTO $upstream", 6, "bad source" },
	{ "FROM /messages/modules/m/outputs/a/b INTO $upstream", 6, "bad source" },
	{ "FROM /messages/modules/m/inputs/x INTO $upstream", 6, "bad source" },
	{ "FROM /messages/modules/m/*/x INTO $upstream", 6, "bad source" },
	{ "FROM /messages/modules/m{x}/* INTO $upstream", 6, "bad module name" },
	{ "FROM /messages/modules/m/outputs/o* INTO $upstream", 6, "bad output name" },
	{ "FROM /messages/*WHERE true INTO $upstream", 6, "bad source" },
	{ "FROM /messages/modules/0123456789012345678901234567890123456789012345678901234567890123/* "
	  "INTO $upstream", 6, "module name" },
	{ "FROM /messages/* INTO BrokeredEndpoint(\"/modules/a/inputs/b\") "
	  "INTO $upstream", 63, "after the sink" },
};

static void test_errors(void)
{
	char err[256];
	struct te_route r;
	unsigned col;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = te_route_compile(bad[i].text, &r, err, sizeof(err), &col);

		TAP_OK(rc == -TE_EINVALID && col == bad[i].col && strstr(err, bad[i].msg) &&
		       r.prog == NULL, "error: \"%s\" at %u", bad[i].text, bad[i].col);
		if (rc != -TE_EINVALID || col != bad[i].col || !strstr(err, bad[i].msg))
			printf("#   got rc %d \"%s\" at %u\n", rc, err, col);
		te_route_free(&r);
	}
	TAP_EQ_INT(te_route_compile("FROM", &r, NULL, 0, NULL), -TE_EINVALID,
		   "no err buffer and no column: still an error");
	strcpy(err, "stale");
	col = 99;
	TAP_OK(te_route_compile("FROM /messages/* INTO $upstream", &r, err, sizeof(err),
				&col) == 0 && !err[0] && col == 0,
	       "success clears err and col");
	te_route_free(&r);
	te_route_free(&r); /* twice is harmless */
	TAP_OK(r.prog == NULL, "free leaves no program");
	TAP_EQ_INT(te_route_compile("FROM /messages/* WHERE 'abcdefghij' = 'x' INTO $upstream",
				    &r, err, 8, &col), 0, "a tiny err buffer is fine on success");
	te_route_free(&r);
	TAP_OK(te_route_compile("FROM /messages/* WHERE unknown_fn(1) INTO $upstream",
				&r, err, 8, &col) == -TE_EINVALID && strlen(err) == 7,
	       "messages are truncated to cap");
}

/* ---- sources against origins ------------------------------------------- */

static void test_source_matches(void)
{
	static const struct {
		const char *route;
		bool sensor_out1, sensor_out2, other_out1, device, twin, sensor_upper;
	} m[] = {
		{ "FROM /messages/* INTO $upstream", true, true, true, true, false, true },
		{ "FROM /messages/modules/sensor/* INTO $upstream", true, true, false, false,
		  false, true },
		{ "FROM /messages/modules/sensor/outputs/out1 INTO $upstream", true, false,
		  false, false, false, true },
		{ "FROM /messages/modules/SENSOR/outputs/OUT1 INTO $upstream", true, false,
		  false, false, false, true },
		{ "FROM /twinChangeNotifications INTO $upstream", false, false, false, false,
		  true, false },
	};
	struct te_msg s1 = msg_make(TE_ORIGIN_MODULE, "sensor", "out1");
	struct te_msg s2 = msg_make(TE_ORIGIN_MODULE, "sensor", "out2");
	struct te_msg o1 = msg_make(TE_ORIGIN_MODULE, "other", "out1");
	struct te_msg dev = msg_make(TE_ORIGIN_DEVICE, NULL, NULL);
	struct te_msg twin = msg_make(TE_ORIGIN_TWIN_CHANGE, NULL, NULL);
	struct te_msg up = msg_make(TE_ORIGIN_MODULE, "Sensor", "Out1");
	struct te_msg devmod = msg_make(TE_ORIGIN_DEVICE, "sensor", "out1");
	struct te_route r;

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		if (te_route_compile(m[i].route, &r, NULL, 0, NULL)) {
			TAP_OK(0, "compile %s", m[i].route);
			continue;
		}
		TAP_EQ_INT(te_route_source_matches(&r, &s1), m[i].sensor_out1,
			   "%s vs sensor/out1", m[i].route);
		TAP_EQ_INT(te_route_source_matches(&r, &s2), m[i].sensor_out2,
			   "%s vs sensor/out2", m[i].route);
		TAP_EQ_INT(te_route_source_matches(&r, &o1), m[i].other_out1,
			   "%s vs other/out1", m[i].route);
		TAP_EQ_INT(te_route_source_matches(&r, &dev), m[i].device,
			   "%s vs a device message", m[i].route);
		TAP_EQ_INT(te_route_source_matches(&r, &twin), m[i].twin,
			   "%s vs a twin change", m[i].route);
		TAP_EQ_INT(te_route_source_matches(&r, &up), m[i].sensor_upper,
			   "%s vs Sensor/Out1 (case-insensitive, as edgeHub)", m[i].route);
		if (r.source == TE_RSRC_MODULE)
			TAP_EQ_INT(te_route_source_matches(&r, &devmod), 0,
				   "%s vs a device message naming the module", m[i].route);
		te_route_free(&r);
	}
}

static void test_sysprop_names(void)
{
	bool ok = true;

	for (int i = 0; i < TE_SYS_N; i++) {
		const char *n = te_sysprop_name((enum te_sysprop)i);

		ok = ok && te_sysprop_from_name(n, (uint32_t)strlen(n)) == i;
	}
	TAP_OK(ok, "every system property name maps back");
	TAP_EQ_STR(te_sysprop_name(TE_SYS_CONNECTION_MODULE_ID), "connectionModuleId",
		   "connectionModuleId");
	TAP_EQ_INT(te_sysprop_from_name("CONTENTTYPE", 11), TE_SYS_CONTENT_TYPE,
		   "names are case-insensitive");
	TAP_EQ_INT(te_sysprop_from_name("contentTyp", 10), -1, "a prefix is not a name");
	TAP_EQ_INT(te_sysprop_from_name("contentTypeX", 12), -1, "nor a longer one");
	TAP_EQ_INT(te_sysprop_from_name("body", 4), -1, "body is not a system property");
	TAP_EQ_STR(te_sysprop_name(TE_SYS_N), "?", "out of range: never NULL");
}

static void test_no_condition(void)
{
	struct te_route r;

	TAP_OK(te_route_compile("FROM /messages/* INTO $upstream", &r, NULL, 0, NULL) == 0 &&
	       te_route_eval(&r, NULL) == T, "no WHERE: always true");
	te_route_free(&r);
}

int main(void)
{
	test_conformance();
	test_no_alloc();
	test_body();
	test_app_first();
	test_scratch();
	test_nesting();
	test_forms();
	test_errors();
	test_source_matches();
	test_sysprop_names();
	test_no_condition();
	return tap_done();
}
