/* The route language's lexer and condition compiler (route_int.h).
 *
 * Lexing follows edgeHub's GrammarLexer.g4 where real routes depend on it:
 * AND OR NOT SELECT FROM WHERE INTO are case-insensitive; true false null
 * undefined are lower case only (True is a property name); strings take
 * ' or " with the escapes \" \' \\ \uXXXX and nothing else (no doubled
 * quotes); an identifier runs over every character but white space and
 * ()<>@,;:\"/[]?={}, so a-b and x*2 are property names, as in edgeHub; a
 * $name runs the same way but may hold [ ] ($body.a[0]); C comments are
 * skipped. Unlike ANTLR's longest match, a quote always starts a
 * string and an operator character never starts an identifier, so 2*3 and
 * 'a'||'b' are expressions here where edgeHub sees one odd property name.
 *
 * Precedence (edgeHub's Condition.g4, highest first): unary - and NOT;
 * * / %; + - ||; < <= > >=; = != <>; AND; OR; ??. All binary operators are
 * left-associative. NOT binds tighter than comparisons: NOT a = b is
 * (NOT a) = b, so NOT on a property is a type error; write NOT (a = b). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "route_int.h"

#define TM(t) (1u << (t))
#define M_NUM (TM(RT_NUM) | TM(RT_DYN))
#define M_STR (TM(RT_STR) | TM(RT_DYN))
#define M_ASNUM (TM(RT_STR) | TM(RT_NUM) | TM(RT_DYN))
#define M_ANY (TM(RT_UNDEF) | TM(RT_NULL) | TM(RT_BOOL) | TM(RT_NUM) | \
	       TM(RT_STR) | TM(RT_DYN))
#define M_LOGIC (TM(RT_UNDEF) | TM(RT_NULL) | TM(RT_BOOL) | TM(RT_DYN))
#define M_NOT (TM(RT_NULL) | TM(RT_BOOL) | TM(RT_DYN))
#define SHOW(t) (int)((t)->n > 40 ? 40 : (t)->n), (t)->p

static const char *const type_names[] = {
	[RT_UNDEF] = "undefined", [RT_NULL] = "null", [RT_BOOL] = "a boolean",
	[RT_NUM] = "a number", [RT_STR] = "a string", [RT_DYN] = "a $body value",
};

/* ---- errors and the growing program ------------------------------------ */

void rt_cc_init(struct rt_cc *c, const char *text, char *err, size_t cap,
		unsigned *col)
{
	memset(c, 0, sizeof(*c));
	c->text = c->p = text;
	c->err = err;
	c->cap = cap;
	c->colp = col;
	if (err && cap)
		err[0] = 0;
	if (col)
		*col = 0;
}

void rt_cc_fini(struct rt_cc *c)
{
	free(c->code);
	free(c->segs);
	free(c->pool);
}

int rt_fail(struct rt_cc *c, unsigned col, const char *fmt, ...)
{
	va_list ap;

	if (c->rc)
		return -1;
	c->rc = -TE_EINVALID;
	if (c->err && c->cap) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->cap, fmt, ap);
		va_end(ap);
	}
	if (c->colp)
		*c->colp = col;
	return -1;
}

static int oom(struct rt_cc *c)
{
	if (!c->rc) {
		c->rc = -ENOMEM;
		if (c->err && c->cap)
			snprintf(c->err, c->cap, "out of memory");
	}
	return -1;
}

/* Make room for one more element of size sz in *arr (capacity *capn). */
static int grow(struct rt_cc *c, void **arr, uint32_t n, uint32_t *capn,
		size_t sz, uint32_t more)
{
	uint32_t cap = *capn ? *capn : 16;
	void *p;

	if (n + (uint64_t)more <= *capn)
		return 0;
	while (cap < n + (uint64_t)more)
		cap = cap > UINT32_MAX / 2 ? UINT32_MAX : cap * 2;
	if (cap < n + (uint64_t)more || !(p = realloc(*arr, (size_t)cap * sz)))
		return oom(c);
	*arr = p;
	*capn = cap;
	return 0;
}

/* Append an instruction that changes the value stack depth by push. The
 * pointer is valid until the next emit. */
static struct rt_insn *emit(struct rt_cc *c, int op, int push)
{
	struct rt_insn *in;

	if (grow(c, (void **)&c->code, c->ncode, &c->capcode, sizeof(*in), 1))
		return NULL;
	in = &c->code[c->ncode++];
	memset(in, 0, sizeof(*in));
	in->op = (uint8_t)op;
	c->depth += (uint32_t)push;
	if (c->depth > c->maxdepth)
		c->maxdepth = c->depth;
	return in;
}

/* Reserve n pool bytes; returns the offset or -1. */
static int64_t pool_reserve(struct rt_cc *c, uint32_t n)
{
	uint32_t off = c->npool;

	if (grow(c, (void **)&c->pool, c->npool, &c->cappool, 1, n))
		return -1;
	c->npool += n;
	return off;
}

static int64_t pool_add(struct rt_cc *c, const char *s, uint32_t n)
{
	int64_t off = pool_reserve(c, n);

	if (off >= 0 && n)
		memcpy(c->pool + off, s, n);
	return off;
}

/* ---- lexer ------------------------------------------------------------- */

static bool is_space(int ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static bool is_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

/* Does ch end an identifier (sys: a $name)? edgeHub's ID_CHARS and
 * QUERY_PATH_CHARS exclusions, plus control characters. */
static bool ends_name(unsigned char ch, bool sys)
{
	if (ch < 0x20 || ch == 0x7f || is_space(ch))
		return true;
	if (!sys && (ch == '[' || ch == ']'))
		return true;
	return strchr("()<>@,;:\\\"/?={}", ch) != NULL;
}

static bool starts_id(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       ch == '_' || ch >= 0x80;
}

static unsigned col_at(const struct rt_cc *c, const char *p)
{
	return (unsigned)(p - c->text) + 1;
}

static int skip_space(struct rt_cc *c)
{
	const char *e;

	for (;;) {
		while (is_space(*c->p))
			c->p++;
		if (c->p[0] != '/' || c->p[1] != '*')
			return 0;
		if (!(e = strstr(c->p + 2, "*/")))
			return rt_fail(c, col_at(c, c->p), "unterminated comment");
		c->p = e + 2;
	}
}

static const struct {
	const char *text;
	int kind;
	bool any_case;
} keywords[] = {
	{ "AND", T_AND, true }, { "OR", T_OR, true }, { "NOT", T_NOT, true },
	{ "SELECT", T_SELECT, true }, { "FROM", T_FROM, true },
	{ "WHERE", T_WHERE, true }, { "INTO", T_INTO, true },
	{ "true", T_TRUE, false }, { "false", T_FALSE, false },
	{ "null", T_NULL, false }, { "undefined", T_UNDEFINED, false },
};

static int keyword(const char *p, uint32_t n)
{
	for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
		const char *k = keywords[i].text;

		if (strlen(k) != n)
			continue;
		if (keywords[i].any_case ? rt_ieq(p, n, k, n) : !memcmp(p, k, n))
			return keywords[i].kind;
	}
	return T_ID;
}

static int lex_name(struct rt_cc *c, bool sys)
{
	const char *s = c->p + sys;

	while (!ends_name((unsigned char)*s, sys))
		s++;
	if (sys && s == c->p + 1)
		return rt_fail(c, c->tok.col, "expected a name after '$'");
	c->tok.n = (uint32_t)(s - c->p);
	c->tok.kind = sys ? T_SYS : keyword(c->p, c->tok.n);
	c->p = s;
	return 0;
}

static const char *scan_digits(const char *s)
{
	while (is_digit(*s))
		s++;
	return s;
}

/* INT, or [0-9]* '.' [0-9]+ EXP?, or INT EXP (GrammarLexer.g4). */
static const char *scan_decimal(const char *s)
{
	const char *e;

	s = scan_digits(s);
	if (s[0] == '.' && is_digit(s[1]))
		s = scan_digits(s + 1);
	if (s[0] == 'e' || s[0] == 'E') {
		e = s + 1 + (s[1] == '+' || s[1] == '-');
		if (is_digit(*e))
			s = scan_digits(e);
	}
	return s;
}

static int number_value(struct rt_cc *c, const char *s, const char *e)
{
	char buf[RT_NUM_MAX], *end;
	uint64_t v = 0;

	if (s[1] == 'x' || s[1] == 'X') {
		if (e - s > 18)
			return rt_fail(c, c->tok.col, "number out of range");
		for (s += 2; s < e; s++)
			v = v << 4 | (uint64_t)rt_hexval(*s);
		c->tok.num = (double)(int64_t)v; /* .NET's long.Parse(hex) */
		return 0;
	}
	if (e - s >= (ptrdiff_t)sizeof(buf))
		return rt_fail(c, c->tok.col, "number too long");
	memcpy(buf, s, (size_t)(e - s));
	buf[e - s] = 0;
	c->tok.num = strtod(buf, &end);
	if (end != buf + (e - s)) /* a locale without '.' */
		return rt_fail(c, c->tok.col, "malformed number");
	if (!isfinite(c->tok.num))
		return rt_fail(c, c->tok.col, "number out of range");
	return 0;
}

/* A number, or an identifier that starts with digits (1st, 5.x), which
 * edgeHub's longest match also lexes as a name. */
static int lex_number(struct rt_cc *c)
{
	const char *s = c->p, *e;
	unsigned char next;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && rt_hexval(s[2]) >= 0)
		for (e = s + 2; rt_hexval(*e) >= 0; e++)
			;
	else
		e = scan_decimal(s);
	next = (unsigned char)*e;
	if (starts_id(next) || is_digit(next) || next == '.' || next == '$')
		return lex_name(c, false);
	c->tok.kind = T_NUM;
	c->tok.n = (uint32_t)(e - s);
	c->p = e;
	return number_value(c, s, e);
}

static int lex_string(struct rt_cc *c)
{
	char q = *c->p;
	const char *s = c->p + 1;

	while (*s != q) {
		if (!*s)
			return rt_fail(c, c->tok.col, "unterminated string");
		if (*s != '\\') {
			s++;
		} else if (s[1] && strchr("\"'\\", s[1])) {
			s += 2;
		} else if (s[1] == 'u' && rt_hex4(s + 2)) {
			s += 6;
		} else {
			return rt_fail(c, col_at(c, s), "invalid escape in string "
				       "(use \\\" \\' \\\\ or \\uXXXX)");
		}
	}
	c->tok.kind = T_STR;
	c->tok.n = (uint32_t)(s + 1 - c->p);
	c->p = s + 1;
	return 0;
}

uint32_t rt_unquote(const struct rt_token *t, char *out)
{
	const char *s = t->p + 1, *e = t->p + t->n - 1;
	uint32_t n = 0;

	while (s < e) {
		if (*s != '\\')
			out[n++] = *s++;
		else if (s[1] == 'u')
			n += rt_unicode(s + 1, e, out + n, &s);
		else
			out[n++] = s[1], s += 2;
	}
	return n;
}

static const struct {
	char text[3];
	int kind;
} puncts[] = {
	{ "||", T_CAT }, { "??", T_COAL }, { "!=", T_NE }, { "<>", T_NE },
	{ "<=", T_LE }, { ">=", T_GE }, { "(", T_LP }, { ")", T_RP },
	{ ",", T_COMMA }, { "{", T_LB }, { "}", T_RB }, { "+", T_PLUS },
	{ "-", T_MINUS }, { "*", T_STAR }, { "/", T_SLASH }, { "%", T_PCT },
	{ "=", T_EQ }, { "<", T_LT }, { ">", T_GT },
};

static int lex_punct(struct rt_cc *c)
{
	unsigned char ch = (unsigned char)*c->p;

	if (c->p[0] == '=' && c->p[1] == '=')
		return rt_fail(c, c->tok.col, "use = to compare, not ==");
	for (size_t i = 0; i < sizeof(puncts) / sizeof(puncts[0]); i++) {
		size_t n = strlen(puncts[i].text);

		if (!strncmp(c->p, puncts[i].text, n)) {
			c->tok.kind = puncts[i].kind;
			c->tok.n = (uint32_t)n;
			c->p += n;
			return 0;
		}
	}
	if (ch > 0x20 && ch < 0x7f)
		return rt_fail(c, c->tok.col, "unexpected character '%c'", ch);
	return rt_fail(c, c->tok.col, "unexpected byte 0x%02x", ch);
}

int rt_next(struct rt_cc *c)
{
	unsigned char ch;

	if (c->rc || skip_space(c) < 0)
		return -1;
	ch = (unsigned char)*c->p;
	c->tok.p = c->p;
	c->tok.col = col_at(c, c->p);
	c->tok.n = 0;
	if (!ch) {
		c->tok.kind = T_EOF;
		return 0;
	}
	if (starts_id(ch))
		return lex_name(c, false);
	if (ch == '$')
		return lex_name(c, true);
	if (is_digit(ch) || (ch == '.' && is_digit(c->p[1])))
		return lex_number(c);
	if (ch == '\'' || ch == '"')
		return lex_string(c);
	return lex_punct(c);
}

/* ---- built-in functions (names case-insensitive, as edgeHub's) ---------- */

struct builtin {
	const char *name;
	uint8_t min, max, ret;
	uint8_t args[3];  /* type masks; the last repeats (concat) */
	const char *arity;
};

#define MATH1(id, nm) [id] = { nm, 1, 1, RT_NUM, { M_NUM }, "1 argument" }
#define IS1(id, nm) [id] = { nm, 1, 1, RT_BOOL, { M_ANY }, "1 argument" }
#define STR2(id, nm, r) [id] = { nm, 2, 2, r, { M_STR, M_STR }, "2 arguments" }

static const struct builtin builtins[RT_FN_N] = {
	MATH1(RT_FN_ABS, "abs"), MATH1(RT_FN_EXP, "exp"),
	[RT_FN_POWER] = { "power", 2, 2, RT_NUM, { M_NUM, M_NUM }, "2 arguments" },
	MATH1(RT_FN_SQUARE, "square"), MATH1(RT_FN_CEILING, "ceiling"),
	MATH1(RT_FN_FLOOR, "floor"), MATH1(RT_FN_SIGN, "sign"),
	MATH1(RT_FN_SQRT, "sqrt"),
	[RT_FN_AS_NUMBER] = { "as_number", 1, 1, RT_NUM, { M_ASNUM }, "1 argument" },
	IS1(RT_FN_IS_BOOL, "is_bool"), IS1(RT_FN_IS_DEFINED, "is_defined"),
	IS1(RT_FN_IS_NULL, "is_null"), IS1(RT_FN_IS_NUMBER, "is_number"),
	IS1(RT_FN_IS_STRING, "is_string"),
	[RT_FN_CONCAT] = { "concat", 2, RT_ARGS_MAX, RT_STR,
			   { M_STR, M_STR, M_STR }, "at least 2 arguments" },
	[RT_FN_LENGTH] = { "length", 1, 1, RT_NUM, { M_STR }, "1 argument" },
	[RT_FN_LOWER] = { "lower", 1, 1, RT_STR, { M_STR }, "1 argument" },
	[RT_FN_UPPER] = { "upper", 1, 1, RT_STR, { M_STR }, "1 argument" },
	[RT_FN_SUBSTRING] = { "substring", 2, 3, RT_STR,
			      { M_STR, M_NUM, M_NUM }, "2 or 3 arguments" },
	STR2(RT_FN_INDEX_OF, "index_of", RT_NUM),
	STR2(RT_FN_STARTS_WITH, "starts_with", RT_BOOL),
	STR2(RT_FN_ENDS_WITH, "ends_with", RT_BOOL),
	STR2(RT_FN_CONTAINS, "contains", RT_BOOL),
};

static int builtin_find(const char *p, uint32_t n)
{
	for (int i = 0; i < RT_FN_N; i++)
		if (rt_ieq(p, n, builtins[i].name, (uint32_t)strlen(builtins[i].name)))
			return i;
	return -1;
}

static const char *mask_name(unsigned mask)
{
	if (mask == M_NUM)
		return "a number";
	if (mask == M_STR)
		return "a string";
	return "a string or a number";
}

/* ---- expressions -------------------------------------------------------- */

static int parse_expr(struct rt_cc *c, int minprec);

static int enter(struct rt_cc *c)
{
	if (++c->nest > RT_NEST_MAX)
		return rt_fail(c, c->tok.col, "expression nested too deeply");
	return 0;
}

static bool compatible(int a, int b)
{
	return a == b || (a == RT_DYN && b != RT_UNDEF) ||
	       (b == RT_DYN && a != RT_UNDEF);
}

static int advance(struct rt_cc *c, int type)
{
	return rt_next(c) < 0 ? -1 : type;
}

/* Emit a load of pool bytes s, n (a name, "$name" or $body query). */
static struct rt_insn *emit_load(struct rt_cc *c, int op, const char *s,
				 uint32_t n)
{
	int64_t off = pool_add(c, s, n);
	struct rt_insn *in;

	if (off < 0 || !(in = emit(c, op, 1)))
		return NULL;
	in->off = (uint32_t)off;
	in->len = n;
	return in;
}

static int literal(struct rt_cc *c, int op, int type)
{
	struct rt_insn *in = emit(c, op, 1);

	if (!in)
		return -1;
	in->b = c->tok.kind == T_TRUE;
	in->num = c->tok.num;
	return advance(c, type);
}

static int load_string(struct rt_cc *c)
{
	int64_t off = pool_reserve(c, c->tok.n);
	struct rt_insn *in;
	uint32_t n;

	if (off < 0)
		return -1;
	n = rt_unquote(&c->tok, c->pool + off);
	c->npool = (uint32_t)off + n;
	if (!(in = emit(c, OP_STR, 1)))
		return -1;
	in->off = (uint32_t)off;
	in->len = n;
	return advance(c, RT_STR);
}

/* "[" INT "]" at s; returns the index and moves *sp past it, or -1. */
static int64_t path_index(const char **sp, const char *e)
{
	const char *s = *sp + 1;
	int64_t idx = 0;

	if (s == e || !is_digit(*s))
		return -1;
	for (; s < e && is_digit(*s); s++)
		if ((idx = idx * 10 + (*s - '0')) > INT32_MAX)
			return -1;
	if (s == e || *s != ']')
		return -1;
	*sp = s + 1;
	return idx;
}

/* The steps of $body.a.b[2] (JsonPath.g4: name ('[' INT ']')? by '.'). */
static int body_path(struct rt_cc *c, const struct rt_token *t)
{
	const char *s = t->p + 6, *e = t->p + t->n, *k;
	int64_t idx, off;
	uint32_t n;

	for (;;) {
		for (k = s; s < e && *s != '.' && *s != '[' && *s != ']'; s++)
			;
		n = (uint32_t)(s - k);
		idx = -1;
		if (!n || (s < e && *s == '[' && (idx = path_index(&s, e)) < 0))
			break;
		if ((off = pool_add(c, k, n)) < 0 ||
		    grow(c, (void **)&c->segs, c->nsegs, &c->capsegs,
			 sizeof(*c->segs), 1))
			return -1;
		c->segs[c->nsegs++] = (struct rt_seg){ (uint32_t)off, n,
						       (int32_t)idx };
		if (s == e)
			return 0;
		if (*s++ != '.')
			break;
	}
	return rt_fail(c, t->col, "invalid $body path '%.*s'", SHOW(t));
}

static int load_body(struct rt_cc *c, bool escaped)
{
	struct rt_token t = c->tok;
	uint32_t seg = c->nsegs;
	struct rt_insn *in;

	if (body_path(c, &t) < 0 || !(in = emit_load(c, OP_BODY, t.p, t.n)))
		return -1;
	in->seg = seg;
	in->nseg = c->nsegs - seg;
	/* edgeHub: an app property spelled like the query wins, unless the
	 * query is escaped {$body.x} or indexes an array. */
	if (!escaped && !memchr(t.p, '[', t.n))
		in->flags = RT_F_APP_FIRST;
	return advance(c, RT_DYN);
}

/* $name or, escaped, {$name}: a system property, or a $body query. */
static int load_sys(struct rt_cc *c, bool escaped)
{
	const char *name = c->tok.p + 1;
	uint32_t n = c->tok.n - 1;
	struct rt_insn *in;
	int fn;

	if (n > 5 && rt_ieq(name, 5, "body.", 5))
		return load_body(c, escaped);
	if (memchr(name, '[', n) || memchr(name, ']', n))
		return literal(c, OP_UNDEF, RT_UNDEF);
	fn = te_sysprop_from_name(name, n);
	if (!(in = emit_load(c, escaped ? OP_SYSE : OP_SYS, c->tok.p, c->tok.n)))
		return -1;
	in->fn = fn < 0 ? RT_SYS_NONE : (uint8_t)fn;
	return advance(c, RT_STR);
}

static int parse_braced(struct rt_cc *c)
{
	int t;

	if (rt_next(c) < 0)
		return -1;
	if (c->tok.kind != T_SYS)
		return rt_fail(c, c->tok.col, "expected $name after '{'");
	if ((t = load_sys(c, true)) < 0)
		return -1;
	if (c->tok.kind != T_RB)
		return rt_fail(c, c->tok.col, "expected '}'");
	return advance(c, t);
}

static int parse_nested(struct rt_cc *c)
{
	int t;

	if (enter(c) < 0 || rt_next(c) < 0 || (t = parse_expr(c, 1)) < 0)
		return -1;
	if (c->tok.kind != T_RP)
		return rt_fail(c, c->tok.col, "expected ')'");
	c->nest--;
	return advance(c, t);
}

static int check_args(struct rt_cc *c, const struct builtin *f,
		      const struct rt_token *name, unsigned argc,
		      const uint8_t *types, const unsigned *cols)
{
	if (argc < f->min || argc > f->max)
		return rt_fail(c, name->col, "function %s takes %s", f->name,
			       f->arity);
	for (unsigned i = 0; i < argc; i++) {
		unsigned mask = f->args[i < 2 ? i : 2];

		if (!(TM(types[i]) & mask))
			return rt_fail(c, cols[i], "argument %u of %s must be "
				       "%s, not %s", i + 1, f->name,
				       mask_name(mask), type_names[types[i]]);
	}
	return 0;
}

/* name '(' [expr {',' expr}] ')', at the '(' */
static int parse_call(struct rt_cc *c, const struct rt_token *name)
{
	int fn = builtin_find(name->p, name->n), t;
	uint8_t types[RT_ARGS_MAX];
	unsigned cols[RT_ARGS_MAX], argc = 0;
	struct rt_insn *in;

	if (fn < 0)
		return rt_fail(c, name->col, "unknown function '%.*s'", SHOW(name));
	if (enter(c) < 0 || rt_next(c) < 0)
		return -1;
	while (c->tok.kind != T_RP) {
		if (argc == RT_ARGS_MAX)
			return rt_fail(c, c->tok.col, "too many arguments");
		cols[argc] = c->tok.col;
		if ((t = parse_expr(c, 1)) < 0)
			return -1;
		types[argc++] = (uint8_t)t;
		if (c->tok.kind != T_COMMA)
			break;
		if (rt_next(c) < 0)
			return -1;
	}
	if (c->tok.kind != T_RP)
		return rt_fail(c, c->tok.col, "expected ',' or ')' in %s( )",
			       builtins[fn].name);
	c->nest--;
	if (check_args(c, &builtins[fn], name, argc, types, cols) < 0 ||
	    !(in = emit(c, OP_CALL, 1 - (int)argc)))
		return -1;
	in->fn = (uint8_t)fn;
	in->argc = (uint16_t)argc;
	if (fn == RT_FN_IS_BOOL && (types[0] == RT_BOOL || types[0] == RT_DYN))
		in->flags = RT_F_UNDEF_ARG;
	return advance(c, builtins[fn].ret);
}

static int parse_name(struct rt_cc *c)
{
	struct rt_token name = c->tok;

	if (rt_next(c) < 0)
		return -1;
	if (c->tok.kind == T_LP)
		return parse_call(c, &name);
	return emit_load(c, OP_PROP, name.p, name.n) ? RT_STR : -1;
}

static int parse_primary(struct rt_cc *c)
{
	const struct rt_token *t = &c->tok;

	switch (t->kind) {
	case T_NUM:
		return literal(c, OP_NUM, RT_NUM);
	case T_STR:
		return load_string(c);
	case T_TRUE:
	case T_FALSE:
		return literal(c, OP_BOOL, RT_BOOL);
	case T_NULL:
		return literal(c, OP_NULL, RT_NULL);
	case T_UNDEFINED:
		return literal(c, OP_UNDEF, RT_UNDEF);
	case T_ID:
		return parse_name(c);
	case T_SYS:
		return load_sys(c, false);
	case T_LB:
		return parse_braced(c);
	case T_LP:
		return parse_nested(c);
	case T_RP:
		return rt_fail(c, t->col, "unexpected ')'");
	case T_EOF:
	case T_INTO:
		return rt_fail(c, t->col, "expected an expression");
	default:
		return rt_fail(c, t->col, "unexpected '%.*s'", SHOW(t));
	}
}

static int parse_unary(struct rt_cc *c)
{
	struct rt_token op = c->tok;
	struct rt_insn *in;
	int t;

	if (op.kind != T_MINUS && op.kind != T_NOT)
		return parse_primary(c);
	if (enter(c) < 0 || rt_next(c) < 0 || (t = parse_unary(c)) < 0)
		return -1;
	c->nest--;
	if (op.kind == T_MINUS && !(TM(t) & M_NUM))
		return rt_fail(c, op.col, "operator - needs a number, not %s",
			       type_names[t]);
	if (op.kind == T_NOT && !(TM(t) & M_NOT))
		return rt_fail(c, op.col, "operator NOT needs a boolean, not %s",
			       type_names[t]);
	if (!(in = emit(c, op.kind == T_MINUS ? OP_NEG :
			t == RT_DYN ? OP_NOTQ : OP_NOT, 0)))
		return -1;
	return op.kind == T_MINUS ? t : RT_BOOL;
}

struct binop {
	int tok;
	uint8_t prec, op;
};

static const struct binop binops[] = {
	{ T_COAL, 1, OP_COALESCE }, { T_OR, 2, OP_OR }, { T_AND, 3, OP_AND },
	{ T_EQ, 4, OP_EQ }, { T_NE, 4, OP_NE }, { T_LT, 5, OP_LT },
	{ T_LE, 5, OP_LE }, { T_GT, 5, OP_GT }, { T_GE, 5, OP_GE },
	{ T_PLUS, 6, OP_ADD }, { T_MINUS, 6, OP_SUB }, { T_CAT, 6, OP_CAT },
	{ T_STAR, 7, OP_MUL }, { T_SLASH, 7, OP_DIV }, { T_PCT, 7, OP_MOD },
};

static const struct binop *binop_of(int tok)
{
	for (size_t i = 0; i < sizeof(binops) / sizeof(binops[0]); i++)
		if (binops[i].tok == tok)
			return &binops[i];
	return NULL;
}

/* AND, OR: booleans, null or undefined; with a $body operand edgeHub's
 * QueryValue rules apply (both must be booleans at run time). */
static int logic_type(struct rt_cc *c, uint8_t *op, int l, int r,
		      const struct rt_token *t)
{
	if (!(TM(l) & M_LOGIC) || !(TM(r) & M_LOGIC))
		return rt_fail(c, t->col, "operator %.*s needs booleans, not %s",
			       SHOW(t), type_names[TM(l) & M_LOGIC ? r : l]);
	if (l == RT_DYN || r == RT_DYN) {
		*op = *op == OP_AND ? OP_ANDQ : OP_ORQ;
		return RT_BOOL;
	}
	if (*op == OP_AND)
		return l == RT_NULL || r == RT_NULL ? RT_NULL : RT_BOOL;
	return l == RT_NULL && r == RT_NULL ? RT_NULL : RT_BOOL;
}

/* Type of l op r, or -1 with the error at the operator. */
static int binary_type(struct rt_cc *c, uint8_t *op, int l, int r,
		       const struct rt_token *t)
{
	bool dyn = l == RT_DYN || r == RT_DYN;

	switch (*op) {
	case OP_AND:
	case OP_OR:
		return logic_type(c, op, l, r, t);
	case OP_CAT:
		if ((TM(l) & M_STR) && (TM(r) & M_STR))
			return RT_STR;
		return rt_fail(c, t->col, "operator || needs strings, not %s",
			       type_names[TM(l) & M_STR ? r : l]);
	case OP_COALESCE:
		if (!compatible(l, r))
			return rt_fail(c, t->col, "operator ?? needs operands "
				       "of one type, not %s and %s",
				       type_names[l], type_names[r]);
		return dyn ? RT_DYN : l == RT_UNDEF ? r : l;
	case OP_LT: case OP_LE: case OP_GT: case OP_GE: case OP_EQ: case OP_NE:
		if (!compatible(l, r))
			return rt_fail(c, t->col, "operator %.*s cannot "
				       "compare %s with %s", SHOW(t),
				       type_names[l], type_names[r]);
		return RT_BOOL;
	default:
		if ((TM(l) & M_NUM) && (TM(r) & M_NUM))
			return dyn ? RT_DYN : RT_NUM;
		return rt_fail(c, t->col, "operator %.*s needs numbers, not %s",
			       SHOW(t), type_names[TM(l) & M_NUM ? r : l]);
	}
}

/* Precedence climbing; minprec 1 parses a whole expression. */
static int parse_expr(struct rt_cc *c, int minprec)
{
	const struct binop *b;
	struct rt_token t;
	struct rt_insn *in;
	uint8_t op;
	int l, r;

	if ((l = parse_unary(c)) < 0)
		return -1;
	while ((b = binop_of(c->tok.kind)) && b->prec >= minprec) {
		t = c->tok;
		op = b->op;
		if (rt_next(c) < 0 || (r = parse_expr(c, b->prec + 1)) < 0 ||
		    (l = binary_type(c, &op, l, r, &t)) < 0 ||
		    !(in = emit(c, op, -1)))
			return -1;
	}
	return l;
}

int rt_condition(struct rt_cc *c)
{
	int t = parse_expr(c, 1);

	if (t < 0)
		return -1;
	c->type = (uint8_t)t;
	return 0;
}

/* ---- the program -------------------------------------------------------- */

#define ALIGN8(x) (((x) + 7) & ~(size_t)7)

int rt_prog_build(struct rt_cc *c, struct te_route_prog **out)
{
	size_t code = ALIGN8(sizeof(struct te_route_prog));
	size_t segs = code + (size_t)c->ncode * sizeof(struct rt_insn);
	size_t stack = ALIGN8(segs + (size_t)c->nsegs * sizeof(struct rt_seg));
	size_t pool = stack + (size_t)c->maxdepth * sizeof(struct rt_val);
	size_t scratch = pool + c->npool, total = scratch + RT_SCRATCH;
	struct te_route_prog *pg;
	char *b;

	if (c->depth != 1) /* the compiler's invariant: one value left */
		return rt_fail(c, 0, "internal error: stack depth %u", c->depth);
	if (!(b = calloc(1, total)))
		return oom(c);
	pg = (struct te_route_prog *)b;
	memcpy(b + code, c->code, (size_t)c->ncode * sizeof(struct rt_insn));
	if (c->nsegs)
		memcpy(b + segs, c->segs, (size_t)c->nsegs * sizeof(struct rt_seg));
	if (c->npool)
		memcpy(b + pool, c->pool, c->npool);
	pg->code = (const struct rt_insn *)(b + code);
	pg->segs = (const struct rt_seg *)(b + segs);
	pg->stack = (struct rt_val *)(b + stack);
	pg->pool = b + pool;
	pg->scratch = b + scratch;
	pg->ncode = c->ncode;
	pg->type = c->type;
	*out = pg;
	return 0;
}
