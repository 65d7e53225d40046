/* Private to the route language: route.c (FROM/WHERE/INTO, sources, sinks),
 * route_parse.c (lexer, condition compiler), route_eval.c (evaluator,
 * built-ins, $body scanner).
 *
 * A condition compiles to postfix code for a stack machine. Types are
 * checked at compile time as edgeHub does (Microsoft.Azure.Devices.Routing.Core
 * ConditionVisitor): every expression has a static type, and a value of a
 * static type may still be undefined at run time. $body values have the
 * dynamic type RT_DYN (edgeHub's QueryValue), which matches any other type
 * but undefined. */
#ifndef TE_ROUTE_INT_H
#define TE_ROUTE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route.h"

#define RT_SCRATCH 4096u  /* string results of one evaluation (per route) */
#define RT_NEST_MAX 64    /* nesting of ( ), unary operators and calls */
#define RT_ARGS_MAX 64    /* arguments of one call */
#define RT_JSON_DEPTH 128 /* deeper $body documents are undefined */
#define RT_NUM_MAX 128    /* longer number texts (body, as_number) are undefined */

/* Static types, and the run-time tags of values (RT_UNDEF..RT_STR). */
enum rt_type { RT_UNDEF, RT_NULL, RT_BOOL, RT_NUM, RT_STR, RT_DYN };

struct rt_val {
	uint8_t t;       /* RT_UNDEF .. RT_STR */
	bool b;
	uint32_t n;      /* string length */
	double num;      /* always finite: NaN and infinities are undefined */
	const char *p;   /* string bytes (program pool, message, body or scratch) */
};

enum rt_op {
	OP_UNDEF, OP_NULL, OP_BOOL, OP_NUM, OP_STR, /* constants */
	OP_PROP,   /* application property pool[off, len] (case-insensitive) */
	OP_SYS,    /* $name: app property pool[off, len] ("$name") if present,
		    * else system property fn (RT_SYS_NONE: undefined) */
	OP_SYSE,   /* {$name}: system property fn only */
	OP_BODY,   /* $body.path; with RT_F_APP_FIRST an app property named
		    * pool[off, len] ("$body.path") wins, as in edgeHub */
	OP_NEG, OP_NOT, OP_NOTQ,
	OP_MUL, OP_DIV, OP_MOD, OP_ADD, OP_SUB, OP_CAT,
	OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE,
	OP_AND, OP_OR, OP_ANDQ, OP_ORQ, OP_COALESCE,
	OP_CALL,   /* builtin fn over the top argc values */
	OP_N
};

#define RT_SYS_NONE 0xff
#define RT_F_APP_FIRST 1u  /* OP_BODY */
#define RT_F_UNDEF_ARG 1u  /* OP_CALL is_bool: undefined argument -> undefined */

struct rt_insn {
	uint8_t op;
	uint8_t fn;          /* OP_CALL: enum rt_fn; OP_SYS*: enum te_sysprop */
	uint8_t flags;
	uint8_t b;           /* OP_BOOL */
	uint16_t argc;       /* OP_CALL */
	uint32_t off, len;   /* pool bytes: literal, property name, "$name" */
	uint32_t seg, nseg;  /* OP_BODY: path segments */
	double num;          /* OP_NUM */
};

/* One $body path step: object key pool[off, len], then array index
 * (-1: none). */
struct rt_seg {
	uint32_t off, len;
	int32_t index;
};

/* One allocation: this header, then code, segs, stack, pool, scratch. The
 * stack and scratch are the only parts evaluation writes. */
struct te_route_prog {
	const struct rt_insn *code;
	const struct rt_seg *segs;
	const char *pool;
	struct rt_val *stack;   /* maxdepth entries: the deepest the code goes */
	char *scratch;          /* RT_SCRATCH bytes */
	uint32_t ncode;
	uint8_t type;           /* static type of the whole condition */
};

enum rt_fn {
	RT_FN_ABS, RT_FN_EXP, RT_FN_POWER, RT_FN_SQUARE, RT_FN_CEILING,
	RT_FN_FLOOR, RT_FN_SIGN, RT_FN_SQRT, RT_FN_AS_NUMBER, RT_FN_IS_BOOL,
	RT_FN_IS_DEFINED, RT_FN_IS_NULL, RT_FN_IS_NUMBER, RT_FN_IS_STRING,
	RT_FN_CONCAT, RT_FN_LENGTH, RT_FN_LOWER, RT_FN_UPPER, RT_FN_SUBSTRING,
	RT_FN_INDEX_OF, RT_FN_STARTS_WITH, RT_FN_ENDS_WITH, RT_FN_CONTAINS,
	RT_FN_N
};

/* ---- lexer (route_parse.c), shared with route.c ---- */

enum rt_tok {
	T_EOF, T_NUM, T_STR, T_ID, T_SYS, T_LP, T_RP, T_COMMA, T_LB, T_RB,
	T_PLUS, T_MINUS, T_STAR, T_SLASH, T_PCT, T_CAT, T_COAL,
	T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE,
	T_AND, T_OR, T_NOT, T_TRUE, T_FALSE, T_NULL, T_UNDEFINED,
	T_SELECT, T_FROM, T_WHERE, T_INTO,
};

struct rt_token {
	int kind;
	const char *p;   /* text in the route (strings: with their quotes) */
	uint32_t n;
	unsigned col;    /* 1-based byte column */
	double num;      /* T_NUM */
};

/* Compiler state. Errors: the first one wins; functions return -1 after
 * one and the caller returns rc. */
struct rt_cc {
	const char *text, *p;   /* route text; lexer position */
	struct rt_token tok;    /* current token */
	char *err;
	size_t cap;
	unsigned *colp;
	int rc;                 /* 0, -TE_EINVALID or -ENOMEM */
	unsigned nest;
	struct rt_insn *code;
	uint32_t ncode, capcode;
	struct rt_seg *segs;
	uint32_t nsegs, capsegs;
	char *pool;
	uint32_t npool, cappool;
	uint32_t depth, maxdepth; /* simulated value stack */
	uint8_t type;             /* static type of the condition */
};

void rt_cc_init(struct rt_cc *c, const char *text, char *err, size_t cap,
		unsigned *col);
void rt_cc_fini(struct rt_cc *c);
int rt_fail(struct rt_cc *c, unsigned col, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int rt_next(struct rt_cc *c);
/* Decode the string token t (escapes resolved) into out (t.n bytes suffice);
 * returns the length. */
uint32_t rt_unquote(const struct rt_token *t, char *out);
/* Parse a condition at the current token; stops at the first token that
 * cannot continue it. */
int rt_condition(struct rt_cc *c);
/* Move the compiled condition into one allocation. */
int rt_prog_build(struct rt_cc *c, struct te_route_prog **out);

/* ---- text helpers (route.c) ---- */

int rt_lower(int ch);  /* ASCII only */
bool rt_ieq(const char *a, uint32_t an, const char *b, uint32_t bn);
bool rt_hex4(const char *p);  /* four hex digits at p */
/* Decode "uXXXX" (p at 'u', four hex digits checked by the caller) and a
 * following "\uXXXX" low surrogate; writes UTF-8 (at most 4 bytes) to out
 * and returns its length; *next is set past what was consumed. Lone
 * surrogates become U+FFFD. */
unsigned rt_unicode(const char *p, const char *end, char *out,
		    const char **next);
int rt_hexval(int ch);

#endif
