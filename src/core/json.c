/* JSON reader (jsmn plus the validation jsmn lacks); see json.h. The writer
 * is in json_write.c.
 *
 * te_json_parse runs in stages, each trusting only what the previous ones
 * proved: a linear pre-scan (NUL bytes, nesting depth, where the root value
 * ends), jsmn over the root's extent (tokens), a walk over the tokens that
 * checks every byte between them and the content of every scalar, and a
 * duplicate-key pass. Each stage reports at most one problem and stops.
 *
 * One token array serves both jsmn and the document: jsmn fills it with
 * its own tokens, and the walk rewrites each slot in place, in order, as a
 * struct te_json_tok (same size). The array is the caller's
 * (te_json_parse_buf) or allocated once its size is known (te_json_parse);
 * nothing else is allocated. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fs.h"
#include "json.h"
#include "json_int.h"

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include "jsmn.h"

const struct te_json_limits te_json_default_limits = {
	.max_bytes = 1u << 20,
	.max_tokens = 65536,
	.max_depth = 32,
};

#define NOPOS SIZE_MAX          /* no position: the message names the file only */
#define NONE UINT32_MAX         /* no container */
#define OPEN UINT32_MAX         /* end of a container jsmn never closed */
#define MAX_LEN (INT_MAX - 1)   /* jsmn keeps offsets in int */
#define SHOW_MAX 64             /* bytes of a key quoted in a message */

_Static_assert(sizeof(jsmntok_t) == sizeof(struct te_json_tok) &&
	       _Alignof(jsmntok_t) == _Alignof(struct te_json_tok),
	       "a jsmn token is rewritten in place as a te_json_tok");

/* ---- UTF-8 and escapes ---- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one
 * (overlong forms, UTF-16 surrogates and code points past U+10FFFF are
 * invalid). */
unsigned te_json_utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0], k, i, lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c < 0xc2 || c > 0xf4)
		return 0;
	k = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < k || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < k; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return k;
}

static unsigned utf8_put(uint32_t cp, char *out)
{
	static const unsigned char lead[] = { 0, 0, 0xc0, 0xe0, 0xf0 };
	unsigned n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;

	for (unsigned i = n - 1; i > 0; i--, cp >>= 6)
		out[i] = (char)(0x80 | (cp & 0x3f));
	out[0] = (char)(lead[n] | cp);
	return n;
}

static bool hex4(const unsigned char *s, uint32_t *cp)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++) {
		unsigned c = s[i];

		if (c >= '0' && c <= '9')
			v = v << 4 | (c - '0');
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			v = v << 4 | ((c | 0x20) - 'a' + 10);
		else
			return false;
	}
	*cp = v;
	return true;
}

static bool is_high(uint32_t cp) { return cp >= 0xd800 && cp < 0xdc00; }
static bool is_low(uint32_t cp) { return cp >= 0xdc00 && cp < 0xe000; }

/* Decode one character of a validated string body at s[*i] into out and
 * advance *i past it; returns its UTF-8 length. Raw UTF-8 sequences are
 * kept whole so callers never split a character. */
unsigned te_json_str_unit(const unsigned char *s, size_t *i, char *out)
{
	static const char esc[] = "b\bf\fn\nr\rt\t";
	unsigned c = s[*i], k;
	const char *e;
	uint32_t cp, lo;

	if (c != '\\') {
		k = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
		memcpy(out, s + *i, k);
		*i += k;
		return k;
	}
	c = s[*i + 1];
	*i += 2;
	if (c != 'u') {
		e = strchr(esc, (int)c); /* c is one of " \ / b f n r t */
		out[0] = e ? e[1] : (char)c;
		return 1;
	}
	hex4(s + *i, &cp);
	*i += 4;
	if (is_high(cp)) {
		hex4(s + *i + 2, &lo);
		*i += 6;
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	return utf8_put(cp, out);
}

void te_json_ustr_init(struct te_json_ustr *u, const struct te_json_doc *doc, unsigned t)
{
	u->s = (const unsigned char *)doc->text;
	u->i = doc->tok[t].start;
	u->end = doc->tok[t].end;
	u->n = u->k = 0;
}

int te_json_ustr_get(struct te_json_ustr *u)
{
	if (u->k == u->n) {
		if (u->i >= u->end)
			return -1;
		u->n = te_json_str_unit(u->s, &u->i, u->b);
		u->k = 0;
	}
	return (unsigned char)u->b[u->k++];
}

/* How many bytes of s[0..n) to quote in a message: at most SHOW_MAX, not
 * splitting a UTF-8 sequence. */
int te_json_show_len(const char *s, size_t n)
{
	size_t m = n;

	if (m > SHOW_MAX) {
		m = SHOW_MAX;
		while (m > 0 && ((unsigned char)s[m] & 0xc0) == 0x80)
			m--;
	}
	return (int)m;
}

/* ---- reader: reporting ---- */

struct parse {
	struct te_json_doc *doc;
	struct te_diag *diag;
	const struct te_json_limits *lim;
	const unsigned char *s;
	size_t end; /* the root value ends here; jsmn and the walk see [0, end) */
	struct te_json_tok *tok; /* the caller's token array, if fixed */
	unsigned ntok;
	bool fixed;              /* else the array is allocated */
};

static int perr(struct parse *P, size_t off, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int perr(struct parse *P, size_t off, int err, const char *fmt, ...)
{
	unsigned line = 0, col = 0;
	va_list ap;

	if (!P->diag)
		return err;
	if (off != NOPOS)
		te_json_pos(P->doc, off, &line, &col);
	va_start(ap, fmt);
	te_diag_vreport(P->diag, P->doc->name, line, col, fmt, ap);
	va_end(ap);
	return err;
}

#define BAD(P, off, ...) perr(P, off, -TE_EMALFORMED, __VA_ARGS__)

static int nomem(struct parse *P)
{
	return perr(P, NOPOS, -ENOMEM, "out of memory");
}

/* The token cap: the limit, or the caller's array if smaller. */
static unsigned max_tokens(const struct parse *P)
{
	return P->fixed && P->ntok < P->lim->max_tokens ? P->ntok :
	       P->lim->max_tokens;
}

static int too_many(struct parse *P, size_t off)
{
	return perr(P, off, -TE_ELIMIT, "more than %u tokens", max_tokens(P));
}

/* The token array for n tokens (n <= max_tokens), as jsmn fills it; the
 * doc holds it from here on, so the caller's cleanup frees it on error. */
static jsmntok_t *tok_array(struct parse *P, unsigned n)
{
	struct te_json_doc *doc = P->doc;

	if (P->fixed) {
		doc->tok = P->tok;
	} else {
		doc->tok = calloc(n ? n : 1, sizeof(*doc->tok));
		if (!doc->tok)
			return NULL;
		doc->own_tok = true;
	}
	return (jsmntok_t *)(void *)doc->tok;
}

static int eof(struct parse *P)
{
	return BAD(P, P->end, "unexpected end of input");
}

/* A byte that cannot start anything where it stands. */
static int bad_char(struct parse *P, size_t p)
{
	unsigned c = P->s[p];

	if (strchr(",:[]{}\"", (int)c) && c)
		return BAD(P, p, "unexpected '%c'", c);
	if (c > 0x20 && c < 0x7f)
		return BAD(P, p, "invalid character '%c'", c);
	return BAD(P, p, "invalid character 0x%02X", c);
}

/* ---- reader: lexical checks ---- */

static bool is_ws(unsigned c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const unsigned char *s, size_t p, size_t lim)
{
	while (p < lim && is_ws(s[p]))
		p++;
	return p;
}

/* Where jsmn (strict) ends a primitive. */
static size_t prim_run(const unsigned char *s, size_t p, size_t lim)
{
	while (p < lim && !is_ws(s[p]) && s[p] != ',' && s[p] != ']' &&
	       s[p] != '}')
		p++;
	return p;
}

/* Closing quote of the string whose body starts at p, or lim. */
static size_t str_skip(const unsigned char *s, size_t p, size_t lim)
{
	for (; p < lim; p++) {
		if (s[p] == '\\')
			p++;
		else if (s[p] == '"')
			return p;
	}
	return lim;
}

/* Check the escape at s[p] == '\\'; *next gets the byte after it, or lim
 * when the input ends inside it (the caller reports the open string). */
static int esc_check(struct parse *P, size_t p, size_t lim, size_t *next)
{
	const unsigned char *s = P->s;
	uint32_t cp, lo;

	*next = lim;
	if (p + 1 >= lim)
		return 0;
	if (strchr("\"\\/bfnrt", s[p + 1]) && s[p + 1]) {
		*next = p + 2;
		return 0;
	}
	if (s[p + 1] != 'u') {
		if (s[p + 1] > 0x20 && s[p + 1] < 0x7f)
			return BAD(P, p, "invalid escape \\%c in string", s[p + 1]);
		return BAD(P, p, "invalid escape in string");
	}
	if (p + 6 > lim)
		return 0;
	if (!hex4(s + p + 2, &cp))
		return BAD(P, p, "invalid \\u escape in string");
	if (is_high(cp) && p + 12 <= lim && s[p + 6] == '\\' &&
	    s[p + 7] == 'u' && hex4(s + p + 8, &lo) && is_low(lo)) {
		*next = p + 12;
		return 0;
	}
	if (is_high(cp) || is_low(cp))
		return BAD(P, p, "lone surrogate \\u%.4s", (const char *)s + p + 2);
	*next = p + 6;
	return 0;
}

/* Validate a string body from p up to its closing quote, whose offset goes
 * to *quote (lim if the input ends first). */
static int str_scan(struct parse *P, size_t p, size_t lim, size_t *quote)
{
	const unsigned char *s = P->s;
	unsigned k;
	int r;

	while (p < lim && s[p] != '"') {
		if (s[p] < 0x20)
			return BAD(P, p, "control character U+%04X in string",
				   s[p]);
		if (s[p] == '\\') {
			if ((r = esc_check(P, p, lim, &p)))
				return r;
			continue;
		}
		k = te_json_utf8_len(s + p, lim - p);
		if (!k)
			return BAD(P, p, "invalid UTF-8 in string");
		p += k;
	}
	*quote = p;
	return 0;
}

/* A jsmn failure at an opening quote: find the precise problem. */
static int str_fail(struct parse *P, size_t p)
{
	size_t q;
	int r = str_scan(P, p + 1, P->end, &q);

	if (r)
		return r;
	if (q >= P->end)
		return BAD(P, p, "unterminated string");
	return BAD(P, p, "invalid string");
}

static size_t digits(const char *s, size_t i, size_t n)
{
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++;
	return i;
}

/* RFC 8259: -? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)? */
static bool num_ok(const char *s, size_t n)
{
	size_t i = s[0] == '-', j;

	if (i < n && s[i] == '0')
		i++;
	else if (i < n && s[i] >= '1' && s[i] <= '9')
		i = digits(s, i, n);
	else
		return false;
	if (i < n && s[i] == '.') {
		j = digits(s, i + 1, n);
		if (j == i + 1)
			return false;
		i = j;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		j = digits(s, i, n);
		if (j == i)
			return false;
		i = j;
	}
	return i == n;
}

/* Type of the primitive s[p..q) (q > p), or a reported error. */
static int prim_check(struct parse *P, size_t p, size_t q)
{
	const char *s = (const char *)P->s + p;
	size_t n = q - p;
	unsigned c = (unsigned char)s[0];

	if (c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'))
		return num_ok(s, n) ? TE_JSON_NUMBER : BAD(P, p, "invalid number");
	if ((c | 0x20) < 'a' || (c | 0x20) > 'z')
		return bad_char(P, p);
	if ((n == 4 && !memcmp(s, "true", 4)) ||
	    (n == 5 && !memcmp(s, "false", 5)))
		return TE_JSON_BOOL;
	if (n == 4 && !memcmp(s, "null", 4))
		return TE_JSON_NULL;
	return BAD(P, p, "invalid literal");
}

/* Find where the root value ends, rejecting nesting deeper than the limit
 * before jsmn (quadratic in depth) sees it. Brackets are only counted here;
 * the walk checks that they match. */
static int prescan(struct parse *P, size_t r)
{
	const unsigned char *s = P->s;
	size_t n = P->doc->len, p;
	unsigned depth = 0;

	P->end = n;
	if (s[r] == '"') {
		p = str_skip(s, r + 1, n);
		P->end = p < n ? p + 1 : n;
		return 0;
	}
	if (s[r] != '[' && s[r] != '{') {
		P->end = prim_run(s, r, n);
		return 0;
	}
	for (p = r; p < n; p++) {
		if (s[p] == '"') {
			p = str_skip(s, p + 1, n);
		} else if (s[p] == '[' || s[p] == '{') {
			if (++depth > P->lim->max_depth)
				return perr(P, p, -TE_ELIMIT,
					    "nesting deeper than %u levels",
					    P->lim->max_depth);
		} else if ((s[p] == ']' || s[p] == '}') && --depth == 0) {
			P->end = p + 1;
			break;
		}
	}
	return 0;
}

/* ---- reader: jsmn ---- */

/* What jsmn_fail needs of jsmn's state, saved before the walk rewrites
 * jsmn's tokens in place. */
struct jfail {
	int r;          /* jsmn's error */
	size_t pos;     /* where jsmn stopped */
	bool in_obj;    /* its current container is an object */
	bool member;    /* its current container is a key with its value */
};

static struct jfail jfail_save(int r, const jsmn_parser *jp,
			       const jsmntok_t *jt)
{
	int sup = jp->toksuper;
	struct jfail f = { .r = r, .pos = jp->pos };

	if (sup >= 0) {
		f.in_obj = jt[sup].type == JSMN_OBJECT;
		f.member = jt[sup].type == JSMN_STRING && jt[sup].size;
	}
	return f;
}

/* Would strict jsmn refuse a primitive or container here (it checks this
 * before looking at the value)? */
static bool key_due(const struct jfail *f)
{
	return f->in_obj || f->member;
}

/* jsmn rejected a value where an object key was due. */
static int key_fail(struct parse *P, size_t p, const struct jfail *f)
{
	size_t q = p;

	if (f->member)
		return BAD(P, p, "expected ',' or '}' after object member");
	while (q > 0 && is_ws(P->s[q - 1]))
		q--;
	if (q > 0 && P->s[q - 1] == '"')
		return BAD(P, p, "expected ':' after object key");
	return BAD(P, p, "object key must be a string");
}

/* Turn a jsmn error into one precise message. jsmn leaves pos at the
 * offending byte, or at the opening quote / first byte of a string or
 * primitive it rejected, or at the end of input. */
static int jsmn_fail(struct parse *P, const struct jfail *f)
{
	size_t p = f->pos;
	int r = f->r;
	unsigned c;
	int t;

	if (r == JSMN_ERROR_NOMEM)
		return too_many(P, p);
	if (p >= P->end)
		return eof(P);
	c = P->s[p];
	if (c == '"')
		return str_fail(P, p);
	if (r == JSMN_ERROR_INVAL && strchr("{[-0123456789tfn", (int)c) &&
	    c && key_due(f))
		return key_fail(P, p, f);
	if (c == '-' || c == '+' || c == '.' || ((c | 0x20) >= 'a' &&
	    (c | 0x20) <= 'z') || (c >= '0' && c <= '9')) {
		t = prim_check(P, p, prim_run(P->s, p, P->end));
		if (t < 0)
			return t;
		if (r == JSMN_ERROR_PART)
			return eof(P);
	}
	return bad_char(P, p);
}

/* ---- reader: structure ---- */

/* What may stand between two items: blanks and at most one separator. */
enum gap { G_ROOT, G_ARR_FIRST, G_ARR_NEXT, G_OBJ_FIRST, G_OBJ_COLON,
	   G_OBJ_NEXT };

static const struct gap_rule {
	char sep;       /* required before the next item (0: none allowed) */
	bool close_ok;  /* the container may close here without sep */
	const char *missing, *after_sep;
} gap_rules[] = {
	[G_ROOT] = { 0, false, "expected a value", NULL },
	[G_ARR_FIRST] = { 0, true, "expected a value or ']'", NULL },
	[G_ARR_NEXT] = { ',', true, "expected ',' or ']' after array element",
			 "expected a value after ','" },
	[G_OBJ_FIRST] = { 0, true, "expected a string key or '}'", NULL },
	[G_OBJ_COLON] = { ':', false, "expected ':' after object key",
			  "expected a value after ':'" },
	[G_OBJ_NEXT] = { ',', true, "expected ',' or '}' after object member",
			 "expected a string key after ','" },
};

/* Check s[a..b), which precedes an item, or the closing bracket at b. */
static int gap_check(struct parse *P, size_t a, size_t b, enum gap st,
		     bool closing)
{
	const struct gap_rule *g = &gap_rules[st];
	size_t p = skip_ws(P->s, a, b);

	if (!g->sep)
		return p < b ? BAD(P, p, "%s", g->missing) : 0;
	if (p == b && closing && g->close_ok)
		return 0;
	if (p == b || P->s[p] != g->sep)
		return BAD(P, p, "%s", g->missing);
	p = skip_ws(P->s, p + 1, b);
	if (p < b || closing)
		return BAD(P, p, "%s", g->after_sep);
	return 0;
}

/* While a container is open its size counts child tokens (keys and values)
 * and its next holds the parent's index. */
struct walk {
	struct parse *P;
	const jsmntok_t *jt;
	struct te_json_tok *t;
	uint32_t c;     /* innermost open container, or NONE */
	size_t pos;     /* just past the last item or opening bracket */
	bool partial;   /* tokens before a jsmn error: some never close */
};

static enum gap gap_state(const struct walk *W)
{
	const struct te_json_tok *c;

	if (W->c == NONE)
		return G_ROOT;
	c = &W->t[W->c];
	if (c->type == TE_JSON_ARRAY)
		return c->size ? G_ARR_NEXT : G_ARR_FIRST;
	if (!c->size)
		return G_OBJ_FIRST;
	return c->size & 1 ? G_OBJ_COLON : G_OBJ_NEXT;
}

static int walk_close(struct walk *W, uint32_t next)
{
	struct te_json_tok *t = &W->t[W->c];
	int r = gap_check(W->P, W->pos, t->end - 1, gap_state(W), true);

	if (r)
		return r;
	W->c = t->next;
	t->next = next;
	if (t->type == TE_JSON_OBJECT)
		t->size /= 2;
	W->pos = t->end;
	return 0;
}

/* Validate token j's own bytes and record it over jsmn's token k (a copy
 * of slot j). */
static int walk_fill(struct walk *W, uint32_t j, const jsmntok_t *k, size_t a)
{
	struct te_json_tok *t = &W->t[j];
	const unsigned char *s = W->P->s;
	size_t q;
	int r;

	*t = (struct te_json_tok){ .start = (uint32_t)k->start,
				   .end = (uint32_t)k->end, .next = j + 1 };
	if (k->type == JSMN_STRING) {
		t->type = TE_JSON_STRING;
		if ((r = str_scan(W->P, t->start, t->end, &q)))
			return r;
		W->pos = t->end + 1;
		return q == t->end && s[q] == '"' ? 0 :
		       BAD(W->P, a, "invalid string");
	}
	if (k->type == JSMN_PRIMITIVE) {
		r = prim_check(W->P, t->start, t->end);
		t->type = r > 0 ? (uint8_t)r : 0;
		W->pos = t->end;
		return r < 0 ? r : 0;
	}
	t->type = k->type == JSMN_OBJECT ? TE_JSON_OBJECT : TE_JSON_ARRAY;
	if (k->end == -1 && W->partial)
		t->end = OPEN;
	else if (k->end < k->start + 2 ||
	    s[k->end - 1] != (k->type == JSMN_OBJECT ? '}' : ']'))
		return BAD(W->P, a, "invalid structure");
	t->next = W->c;
	W->c = j;
	W->pos = t->start + 1;
	return 0;
}

static int walk_token(struct walk *W, uint32_t j)
{
	jsmntok_t kj, *k = &kj;
	size_t a, b;
	uint32_t parent;
	enum gap st;
	int r;

	memcpy(k, &W->jt[j], sizeof(*k)); /* the slot is about to be rewritten */
	a = (size_t)k->start - (k->type == JSMN_STRING);
	b = (size_t)k->end + (k->type == JSMN_STRING);
	if (k->start < 0 || (k->end < k->start && k->end != -1))
		return BAD(W->P, W->pos, "invalid structure");
	while (W->c != NONE && (size_t)k->start >= W->t[W->c].end)
		if ((r = walk_close(W, j)))
			return r;
	if (W->c == NONE && j > 0)
		return BAD(W->P, a, "trailing garbage after the document");
	st = gap_state(W);
	if ((r = gap_check(W->P, W->pos, a, st, false)))
		return r;
	if ((st == G_OBJ_FIRST || st == G_OBJ_NEXT) && k->type != JSMN_STRING)
		return BAD(W->P, a, "object key must be a string");
	parent = W->c;
	if (parent != NONE) {
		if (k->end >= 0 && b >= W->t[parent].end)
			return BAD(W->P, a, "invalid structure");
		W->t[parent].size++;
	}
	return walk_fill(W, j, k, a);
}

/* Check jsmn's tokens in doc->tok[0..n) and rewrite them as the doc's.
 * When partial, they are what jsmn made before failing: containers it
 * closed are checked, the rest not. */
static int walk(struct parse *P, unsigned n, bool partial)
{
	struct walk W = { .P = P, .c = NONE, .partial = partial };
	size_t p;
	int r;

	W.t = P->doc->tok;
	W.jt = (const jsmntok_t *)(const void *)W.t;
	P->doc->ntok = n;
	for (uint32_t j = 0; j < n; j++)
		if ((r = walk_token(&W, j)))
			return r;
	while (W.c != NONE && W.t[W.c].end != OPEN)
		if ((r = walk_close(&W, n)))
			return r;
	if (partial)
		return 0;
	p = skip_ws(P->s, W.pos, P->end);
	if (p < P->end)
		return BAD(P, p, "trailing garbage after the document");
	return 0;
}

/* A counting pass first; when it fails or finds too many tokens, a bounded
 * pass collects the tokens before the problem and the walk checks them, so
 * that the first problem in the document is the one reported. */
static int tokenize(struct parse *P, unsigned *n)
{
	unsigned max = max_tokens(P), cap;
	struct jfail f;
	jsmntok_t *jt;
	jsmn_parser jp;
	int count, r, e;

	jsmn_init(&jp);
	count = jsmn_parse(&jp, (const char *)P->s, P->end, NULL, 0);
	cap = count < 0 || (unsigned)count > max ? max : (unsigned)count;
	if (cap > P->end) /* each token starts at a byte of its own */
		cap = (unsigned)P->end;
	if (!(jt = tok_array(P, cap)))
		return nomem(P);
	jsmn_init(&jp);
	r = jsmn_parse(&jp, (const char *)P->s, P->end, jt, cap);
	if (r >= 0 && count >= 0 && (unsigned)count <= max) {
		*n = (unsigned)r;
		return 0;
	}
	cap = jp.toknext;
	if (cap && jt[cap - 1].start < 0) /* allocated, then refused */
		cap--;
	r = r < 0 ? r : JSMN_ERROR_INVAL; /* not reached: both passes agree */
	f = jfail_save(r, &jp, jt);
	e = walk(P, cap, true);
	return e ? e : jsmn_fail(P, &f);
}

/* ---- reader: duplicate keys (te_json_dup_key in json_keys.c) ---- */

static int obj_dups(struct parse *P, uint32_t o)
{
	const struct te_json_doc *doc = P->doc;
	uint32_t d = te_json_dup_key(P->doc, o);
	const struct te_json_tok *t;
	int n;

	if (d == NONE)
		return 0;
	t = &doc->tok[d];
	n = te_json_show_len(doc->text + t->start, t->end - t->start);
	return BAD(P, t->start - 1, "duplicate key \"%.*s%s\"", n,
		   doc->text + t->start, n < (int)(t->end - t->start) ? "..." : "");
}

static int dup_check(struct parse *P)
{
	const struct te_json_doc *doc = P->doc;
	int r;

	for (uint32_t i = 0; i < doc->ntok; i++)
		if (doc->tok[i].type == TE_JSON_OBJECT && doc->tok[i].size > 1 &&
		    (r = obj_dups(P, i)))
			return r;
	return 0;
}

/* ---- reader: entry points ---- */

/* A root that is neither container nor string: one token, no jsmn (strict
 * jsmn wants a delimiter after a primitive and so rejects "1"). */
static int root_prim(struct parse *P, size_t r, unsigned *n)
{
	jsmntok_t *jt;

	if (P->end == r)
		return bad_char(P, r);
	if (max_tokens(P) < 1)
		return too_many(P, r);
	if (!(jt = tok_array(P, 1)))
		return nomem(P);
	*jt = (jsmntok_t){ .type = JSMN_PRIMITIVE, .start = (int)r,
			   .end = (int)P->end, .parent = -1 };
	*n = 1;
	return 0;
}

static int parse_run(struct parse *P)
{
	const struct te_json_doc *doc = P->doc;
	const unsigned char *z;
	unsigned n = 0;
	size_t r;
	int e;

	if (doc->len > P->lim->max_bytes || doc->len > MAX_LEN)
		return perr(P, NOPOS, -TE_ELIMIT,
			    "input is %zu bytes, more than the %zu limit",
			    doc->len, P->lim->max_bytes < MAX_LEN ?
			    P->lim->max_bytes : (size_t)MAX_LEN);
	z = doc->len ? memchr(P->s, 0, doc->len) : NULL;
	if (z)
		return BAD(P, (size_t)(z - P->s), "NUL byte in input");
	r = skip_ws(P->s, 0, doc->len);
	if (r == doc->len)
		return BAD(P, r, "empty document");
	if ((e = prescan(P, r)))
		return e;
	e = P->s[r] == '{' || P->s[r] == '[' || P->s[r] == '"' ?
	    tokenize(P, &n) : root_prim(P, r, &n);
	if (e)
		return e;
	e = walk(P, n, false);
	if (!e)
		e = dup_check(P);
	if (!e && P->end < doc->len &&
	    (r = skip_ws(P->s, P->end, doc->len)) < doc->len)
		e = BAD(P, r, "trailing garbage after the document");
	return e;
}

/* Both entry points: P says where the tokens go. */
static int parse_doc(struct parse *P, const char *name, const char *text,
		     size_t len)
{
	struct te_json_doc *doc = P->doc;
	int r;

	*doc = (struct te_json_doc){ .name = name, .text = text, .len = len };
	r = parse_run(P);
	if (r)
		te_json_free(doc);
	return r;
}

int te_json_parse(struct te_json_doc *doc, const char *name, const char *text,
		  size_t len, const struct te_json_limits *lim,
		  struct te_diag *diag)
{
	struct parse P = {
		.doc = doc,
		.diag = diag,
		.lim = lim ? lim : &te_json_default_limits,
		.s = (const unsigned char *)text,
	};

	return parse_doc(&P, name, text, len);
}

int te_json_parse_buf(struct te_json_doc *doc, const char *name,
		      const char *text, size_t len,
		      const struct te_json_limits *lim, struct te_json_tok *tok,
		      unsigned ntok, struct te_diag *diag)
{
	struct parse P = {
		.doc = doc,
		.diag = diag,
		.lim = lim ? lim : &te_json_default_limits,
		.s = (const unsigned char *)text,
		.tok = tok,
		.ntok = tok ? ntok : 0,
		.fixed = true,
	};

	return parse_doc(&P, name, text, len);
}

int te_json_load_file(struct te_json_doc *doc, const char *path,
		      const char *name, const struct te_json_limits *lim,
		      struct te_diag *diag)
{
	size_t max, len = 0;
	char *buf = NULL;
	int r;

	*doc = (struct te_json_doc){ 0 };
	lim = lim ? lim : &te_json_default_limits;
	max = lim->max_bytes < MAX_LEN ? lim->max_bytes : MAX_LEN;
	r = te_read_file(path, max, &buf, &len);
	if (r && diag) {
		if (r == -TE_ELIMIT)
			te_diag_report(diag, name ? name : path, 0, 0,
				       "input is larger than the %zu byte limit",
				       max);
		else
			te_diag_report(diag, path, 0, 0, "%s", r == -EINVAL ?
				       "not a regular file" : strerror(-r));
	}
	if (r)
		return r;
	r = te_json_parse(doc, name ? name : path, buf, len, lim, diag);
	if (r)
		free(buf);
	else
		doc->owned = buf;
	return r;
}

void te_json_free(struct te_json_doc *doc)
{
	if (doc->own_tok)
		free(doc->tok);
	free(doc->owned);
	*doc = (struct te_json_doc){ 0 };
}

/* ---- reader: accessors ---- */

void te_json_pos(const struct te_json_doc *doc, size_t off, unsigned *line,
		 unsigned *col)
{
	const char *s = doc->text, *nl;
	size_t bol = 0;
	unsigned n = 1;

	if (off > doc->len)
		off = doc->len;
	while (off && (nl = memchr(s + bol, '\n', off - bol))) {
		bol = (size_t)(nl - s) + 1;
		n++;
	}
	*line = n;
	*col = (unsigned)(off - bol + 1);
}

void te_json_error(const struct te_json_doc *doc, struct te_diag *diag,
		   unsigned t, const char *fmt, ...)
{
	unsigned line = 0, col = 0;
	va_list ap;

	if (!diag)
		return;
	if (t < doc->ntok) {
		const struct te_json_tok *k = &doc->tok[t];

		te_json_pos(doc, k->start - (k->type == TE_JSON_STRING), &line,
			    &col);
	}
	va_start(ap, fmt);
	te_diag_vreport(diag, doc->name, line, col, fmt, ap);
	va_end(ap);
}
