/* Evaluating a compiled route condition (route_int.h): one pass over
 * postfix code with a value stack and a string scratch area that the
 * program owns and sized at compile time. Nothing here allocates or
 * recurses; a route must not be evaluated by two threads at once.
 *
 * Semantics, as edgeHub's Microsoft.Azure.Devices.Routing.Core (query/):
 *  - application properties: case-insensitive names, string values;
 *    $name: an application property spelled "$name" wins over the system
 *    property; {$name} is the system property only;
 *  - $body.a.b[i]: only when contentType is application/json and
 *    contentEncoding utf-8 (case-insensitive), and the body is one valid
 *    JSON object (strict RFC 8259, at most RT_JSON_DEPTH deep; duplicate
 *    keys: the last wins). A path that does not exist is null (edgeHub's
 *    JsonMessageQueryValueProvider); an object or array is undefined;
 *  - numbers are doubles; NaN, infinities and x / 0 are undefined;
 *  - comparisons: undefined if either side is; two values of different
 *    types (only possible with a $body value) compare by type as edgeHub's
 *    QueryValue: = false, != true, ordered boolean < number < string < null;
 *    strings compare by bytes (ordinal);
 *  - AND OR NOT: three-valued (undefined AND false = false, undefined OR
 *    true = true); a null operand follows edgeHub's Null: NOT null = true,
 *    null AND x = null, null OR x = x. With a $body operand (the *Q ops)
 *    both sides must be booleans, else undefined;
 *  - the route fires on true only; a static null result is false.
 *  - string results (||, concat, lower, upper, escaped $body strings) live
 *    in the route's RT_SCRATCH bytes for one evaluation; a result that does
 *    not fit is undefined. length, substring and index_of count UTF-16
 *    units, as .NET; lower and upper map ASCII letters only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "route_int.h"

struct rt_ctx {
	const struct te_route_prog *pg;
	const struct te_msg *m;
	uint32_t used;          /* scratch bytes in use */
	char *top;              /* the last string placed in scratch */
	int body;               /* BODY_UNKNOWN until the first $body */
	const char *json, *jend;
};

enum { BODY_UNKNOWN, BODY_OK, BODY_BAD };

/* ---- values ------------------------------------------------------------- */

static void v_undef(struct rt_val *v)
{
	v->t = RT_UNDEF;
}

static void v_bool(struct rt_val *v, bool b)
{
	v->t = RT_BOOL;
	v->b = b;
}

static void v_num(struct rt_val *v, double d)
{
	v->t = isfinite(d) ? RT_NUM : RT_UNDEF;
	v->num = d;
}

static void v_str(struct rt_val *v, const char *p, uint32_t n)
{
	v->t = RT_STR;
	v->p = p ? p : "";
	v->n = p ? n : 0;
}

/* n bytes of scratch for this evaluation, or NULL when full. */
static char *scratch(struct rt_ctx *x, uint32_t n)
{
	char *p;

	if (n > RT_SCRATCH - x->used)
		return NULL;
	p = x->pg->scratch + x->used;
	x->used += n;
	x->top = p;
	return p;
}

/* ---- $body: a strict JSON check, then a walk over the checked text ------ */

static const char *json_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* End of the string at p (its quote); NULL if malformed. */
static const char *json_string_end(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch == '"')
			return p + 1;
		if (ch < 0x20)
			return NULL;
		if (ch != '\\')
			continue;
		if (++p == end)
			return NULL;
		if (*p == 'u') {
			if (end - p < 5 || !rt_hex4(p + 1))
				return NULL;
			p += 4;
		} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
			return NULL;
		}
	}
	return NULL;
}

static const char *json_digits(const char *p, const char *end)
{
	while (p < end && *p >= '0' && *p <= '9')
		p++;
	return p;
}

static const char *json_number_end(const char *p, const char *end)
{
	const char *q;

	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (p < end && *p >= '1' && *p <= '9')
		p = json_digits(p, end);
	else
		return NULL;
	if (p < end && *p == '.') {
		if ((q = json_digits(p + 1, end)) == p + 1)
			return NULL;
		p = q;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if ((q = json_digits(p, end)) == p)
			return NULL;
		p = q;
	}
	return p;
}

static const char *json_word_end(const char *p, const char *end,
				 const char *w)
{
	size_t n = strlen(w);

	return (size_t)(end - p) >= n && !memcmp(p, w, n) ? p + n : NULL;
}

static const char *json_scalar_end(const char *p, const char *end)
{
	switch (*p) {
	case '"':
		return json_string_end(p, end);
	case 't':
		return json_word_end(p, end, "true");
	case 'f':
		return json_word_end(p, end, "false");
	case 'n':
		return json_word_end(p, end, "null");
	default:
		return json_number_end(p, end);
	}
}

enum { J_VALUE, J_VALUE_OR_CLOSE, J_KEY, J_KEY_OR_CLOSE, J_AFTER };

struct json_check {
	char open[RT_JSON_DEPTH]; /* '{' or '[' per open container */
	unsigned depth;
	int state;
};

/* One step of the check at p (not white space, not the end); returns
 * where to go on, or NULL if the text is not JSON. */
static const char *json_step(struct json_check *j, const char *p,
			     const char *end)
{
	switch (j->state) {
	case J_VALUE_OR_CLOSE:
	case J_KEY_OR_CLOSE:
		if (*p == (j->state == J_KEY_OR_CLOSE ? '}' : ']')) {
			j->depth--;
			j->state = J_AFTER;
			return p + 1;
		}
		j->state = j->state == J_KEY_OR_CLOSE ? J_KEY : J_VALUE;
		return p;
	case J_VALUE:
		if (*p != '{' && *p != '[') {
			j->state = J_AFTER;
			return json_scalar_end(p, end);
		}
		if (j->depth == RT_JSON_DEPTH)
			return NULL;
		j->open[j->depth++] = *p;
		j->state = *p == '{' ? J_KEY_OR_CLOSE : J_VALUE_OR_CLOSE;
		return p + 1;
	case J_KEY:
		if (*p != '"' || !(p = json_string_end(p, end)))
			return NULL;
		p = json_ws(p, end);
		j->state = J_VALUE;
		return p < end && *p == ':' ? p + 1 : NULL;
	default: /* J_AFTER, inside a container */
		if (*p == ',') {
			j->state = j->open[j->depth - 1] == '{' ? J_KEY : J_VALUE;
			return p + 1;
		}
		if (*p != (j->open[j->depth - 1] == '{' ? '}' : ']'))
			return NULL;
		j->depth--;
		return p + 1;
	}
}

/* Is [p, end) exactly one JSON object (and white space)? */
static bool json_object_valid(const char *p, const char *end)
{
	struct json_check j = { .state = J_VALUE };

	p = json_ws(p, end);
	if (p == end || *p != '{')
		return false;
	for (;;) {
		p = json_ws(p, end);
		if (j.state == J_AFTER && j.depth == 0)
			return p == end;
		if (p == end || !(p = json_step(&j, p, end)))
			return false;
	}
}

/* Walking checked JSON: p is at a value, key or separator. */
static const char *skip_string(const char *p, const char *end)
{
	for (p++; p < end && *p != '"'; p++)
		if (*p == '\\')
			p++;
	return p < end ? p + 1 : end;
}

static const char *skip_value(const char *p, const char *end)
{
	unsigned depth = 0;

	if (*p == '"')
		return skip_string(p, end);
	if (*p != '{' && *p != '[') {
		while (p < end && !strchr(",}] \t\r\n", *p))
			p++;
		return p;
	}
	do {
		if (*p == '"') {
			p = skip_string(p, end);
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']')
			depth--;
		p++;
	} while (p < end && depth);
	return p;
}

/* Decode the escape at p (at the backslash) into out; returns its length. */
static unsigned json_escape(const char *p, const char *end, char *out,
			    const char **next)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *f;

	if (p[1] == 'u')
		return rt_unicode(p + 1, end, out, next);
	f = strchr(from, p[1]);
	*out = f && p[1] ? to[f - from] : p[1];
	*next = p + 2;
	return 1;
}

/* Is the JSON string at p (its quote) equal to key, escapes resolved? */
static bool json_key_eq(const char *p, const char *end, const char *key,
			uint32_t n)
{
	char buf[4];
	uint32_t i = 0;
	unsigned k;

	for (p++; p < end && *p != '"';) {
		if (*p == '\\') {
			k = json_escape(p, end, buf, &p);
			if (n - i < k || memcmp(key + i, buf, k))
				return false;
			i += k;
		} else {
			if (i == n || key[i] != *p)
				return false;
			i++;
			p++;
		}
	}
	return i == n;
}

/* The value of the last member named key in the object at p, or NULL. */
static const char *json_member(const char *p, const char *end,
			       const char *key, uint32_t n)
{
	const char *found = NULL;
	bool eq;

	for (p = json_ws(p + 1, end); p < end && *p == '"';) {
		eq = json_key_eq(p, end, key, n);
		p = json_ws(skip_string(p, end), end);
		p = json_ws(p + 1, end); /* past ':' */
		if (eq)
			found = p;
		p = json_ws(skip_value(p, end), end);
		if (p < end && *p == ',')
			p = json_ws(p + 1, end);
	}
	return found;
}

/* Element idx of the array at p, or NULL. */
static const char *json_element(const char *p, const char *end, int32_t idx)
{
	p = json_ws(p + 1, end);
	if (p == end || *p == ']')
		return NULL;
	for (; idx > 0; idx--) {
		p = json_ws(skip_value(p, end), end);
		if (p == end || *p != ',')
			return NULL;
		p = json_ws(p + 1, end);
	}
	return p;
}

static void json_string(struct rt_ctx *x, const char *p, const char *end,
			struct rt_val *v)
{
	const char *e = skip_string(p, end) - 1, *s;
	uint32_t raw = (uint32_t)(e - p - 1), n = 0;
	char *out;

	if (!memchr(p + 1, '\\', raw)) {
		v_str(v, p + 1, raw); /* no escapes: the body's own bytes */
		return;
	}
	if (!(out = scratch(x, raw))) { /* decoding never grows a string */
		v_undef(v);
		return;
	}
	for (s = p + 1; s < e;) {
		if (*s == '\\')
			n += json_escape(s, e, out + n, &s);
		else
			out[n++] = *s++;
	}
	x->used -= raw - n;
	v_str(v, out, n);
}

static void json_number(const char *p, const char *end, struct rt_val *v)
{
	const char *e = json_number_end(p, end);
	char buf[RT_NUM_MAX], *stop;

	v_undef(v);
	if (!e || e - p >= (ptrdiff_t)sizeof(buf))
		return;
	memcpy(buf, p, (size_t)(e - p));
	buf[e - p] = 0;
	v_num(v, strtod(buf, &stop));
	if (stop != buf + (e - p))
		v_undef(v);
}

static void json_value(struct rt_ctx *x, const char *p, struct rt_val *v)
{
	switch (*p) {
	case '"':
		json_string(x, p, x->jend, v);
		break;
	case '{':
	case '[':
		v_undef(v);
		break;
	case 't':
	case 'f':
		v_bool(v, *p == 't');
		break;
	case 'n':
		v->t = RT_NULL;
		break;
	default:
		json_number(p, x->jend, v);
	}
}

static bool body_ok(struct rt_ctx *x)
{
	const struct te_msg *m = x->m;
	const struct te_str *ct = &m->sys[TE_SYS_CONTENT_TYPE];
	const struct te_str *ce = &m->sys[TE_SYS_CONTENT_ENCODING];

	if (!ct->p || !ce->p || !m->body ||
	    !rt_ieq(ct->p, ct->n, "application/json", 16) ||
	    !rt_ieq(ce->p, ce->n, "utf-8", 5))
		return false;
	x->json = m->body;
	x->jend = x->json + m->bodylen;
	return json_object_valid(x->json, x->jend);
}

/* $body query: a missing member or index is null, as in edgeHub. */
static void body_get(struct rt_ctx *x, const struct rt_insn *in,
		     struct rt_val *v)
{
	const char *p;

	if (x->body == BODY_UNKNOWN)
		x->body = body_ok(x) ? BODY_OK : BODY_BAD;
	if (x->body == BODY_BAD) {
		v_undef(v);
		return;
	}
	p = json_ws(x->json, x->jend);
	for (uint32_t i = 0; i < in->nseg; i++) {
		const struct rt_seg *s = &x->pg->segs[in->seg + i];

		if (*p != '{')
			p = NULL;
		else
			p = json_member(p, x->jend, x->pg->pool + s->off, s->len);
		if (p && s->index >= 0)
			p = *p == '[' ? json_element(p, x->jend, s->index) : NULL;
		if (!p) {
			v->t = RT_NULL;
			return;
		}
	}
	json_value(x, p, v);
}

/* ---- loads -------------------------------------------------------------- */

static const struct te_prop *prop_find(const struct te_msg *m, const char *k,
				       uint32_t n)
{
	for (uint32_t i = 0; i < m->nprops; i++)
		if (m->props[i].key.p &&
		    rt_ieq(m->props[i].key.p, m->props[i].key.n, k, n))
			return &m->props[i];
	return NULL;
}

/* An application property; a present key without a value is "". */
static bool prop_get(struct rt_ctx *x, const struct rt_insn *in,
		     struct rt_val *v)
{
	const struct te_prop *pr = prop_find(x->m, x->pg->pool + in->off, in->len);

	if (!pr)
		return false;
	v_str(v, pr->val.p, pr->val.n);
	return true;
}

static void sys_get(struct rt_ctx *x, const struct rt_insn *in,
		    struct rt_val *v)
{
	const struct te_str *s;

	if (in->op == OP_SYS && prop_get(x, in, v))
		return;
	if (in->fn >= TE_SYS_N || !(s = &x->m->sys[in->fn])->p) {
		v_undef(v);
		return;
	}
	v_str(v, s->p, s->n);
}

static void load(struct rt_ctx *x, const struct rt_insn *in, struct rt_val *v)
{
	switch (in->op) {
	case OP_UNDEF:
		v_undef(v);
		break;
	case OP_NULL:
		v->t = RT_NULL;
		break;
	case OP_BOOL:
		v_bool(v, in->b);
		break;
	case OP_NUM:
		v_num(v, in->num);
		break;
	case OP_STR:
		v_str(v, x->pg->pool + in->off, in->len);
		break;
	case OP_PROP:
		if (!prop_get(x, in, v))
			v_undef(v);
		break;
	case OP_BODY:
		if (!(in->flags & RT_F_APP_FIRST) || !prop_get(x, in, v))
			body_get(x, in, v);
		break;
	default:
		sys_get(x, in, v);
	}
}

/* ---- operators ---------------------------------------------------------- */

static void unary(uint8_t op, struct rt_val *a)
{
	if (op == OP_NEG)
		a->t == RT_NUM ? v_num(a, -a->num) : v_undef(a);
	else if (a->t == RT_BOOL)
		a->b = !a->b;
	else if (a->t == RT_NULL && op == OP_NOT)
		v_bool(a, true);
	else
		v_undef(a);
}

static void arith(uint8_t op, struct rt_val *a, const struct rt_val *b)
{
	double l = a->num, r = b->num;

	if (a->t != RT_NUM || b->t != RT_NUM || (op == OP_DIV && r == 0)) {
		v_undef(a);
		return;
	}
	switch (op) {
	case OP_MUL:
		v_num(a, l * r);
		break;
	case OP_DIV:
		v_num(a, l / r);
		break;
	case OP_MOD:
		v_num(a, fmod(l, r));
		break;
	case OP_ADD:
		v_num(a, l + r);
		break;
	default:
		v_num(a, l - r);
	}
}

/* Concatenate n string values into a[0] (undefined unless all strings).
 * A left side that is the last string in scratch is extended in place
 * (a || b || c copies each part once). */
static void concat(struct rt_ctx *x, struct rt_val *a, const struct rt_val *more,
		   unsigned n)
{
	uint64_t total = a->n;
	char *out;
	bool tail;

	for (unsigned i = 0; i < n; i++) {
		if (more[i].t != RT_STR)
			a->t = RT_UNDEF;
		total += more[i].n;
	}
	if (a->t != RT_STR || total > RT_SCRATCH) {
		v_undef(a);
		return;
	}
	tail = x->top && a->p == x->top &&
	       a->p + a->n == x->pg->scratch + x->used;
	if (!(out = scratch(x, (uint32_t)total - (tail ? a->n : 0)))) {
		v_undef(a);
		return;
	}
	if (tail)
		out = x->top - a->n; /* scratch() moved top past a */
	else if (a->n)
		memcpy(out, a->p, a->n);
	x->top = out;
	total = a->n;
	for (unsigned i = 0; i < n; i++) {
		if (more[i].n)
			memcpy(out + total, more[i].p, more[i].n);
		total += more[i].n;
	}
	v_str(a, out, (uint32_t)total);
}

static int type_rank(uint8_t t)
{
	return t == RT_BOOL ? 1 : t == RT_NUM ? 2 : t == RT_STR ? 3 : 4;
}

/* -1, 0, 1, or 2 when either side is undefined. */
static int compare3(const struct rt_val *a, const struct rt_val *b)
{
	uint32_t n = a->n < b->n ? a->n : b->n;
	int r;

	if (a->t == RT_UNDEF || b->t == RT_UNDEF)
		return 2;
	if (a->t != b->t)
		return type_rank(a->t) < type_rank(b->t) ? -1 : 1;
	switch (a->t) {
	case RT_NUM:
		return (a->num > b->num) - (a->num < b->num);
	case RT_BOOL:
		return (int)a->b - (int)b->b;
	case RT_STR:
		if (n && (r = memcmp(a->p, b->p, n)))
			return r < 0 ? -1 : 1;
		return (a->n > b->n) - (a->n < b->n);
	default:
		return 0; /* null = null */
	}
}

static void compare(uint8_t op, struct rt_val *a, const struct rt_val *b)
{
	int r = compare3(a, b);

	if (r == 2) {
		v_undef(a);
		return;
	}
	switch (op) {
	case OP_LT:
		v_bool(a, r < 0);
		break;
	case OP_LE:
		v_bool(a, r <= 0);
		break;
	case OP_GT:
		v_bool(a, r > 0);
		break;
	case OP_GE:
		v_bool(a, r >= 0);
		break;
	case OP_EQ:
		v_bool(a, r == 0);
		break;
	default:
		v_bool(a, r != 0);
	}
}

/* 0, 1, or 2 for anything but a boolean. */
static int tri(const struct rt_val *v)
{
	return v->t == RT_BOOL ? v->b : 2;
}

static void logic(uint8_t op, struct rt_val *a, const struct rt_val *b)
{
	int l = tri(a), r = tri(b);

	if (op == OP_ANDQ || op == OP_ORQ) {
		if (l == 2 || r == 2)
			v_undef(a);
		else
			v_bool(a, op == OP_ANDQ ? l && r : l || r);
	} else if (op == OP_AND && (a->t == RT_NULL || b->t == RT_NULL)) {
		a->t = RT_NULL;
	} else if (op == OP_OR && (a->t == RT_NULL || b->t == RT_NULL)) {
		if (a->t == RT_NULL && b->t == RT_NULL)
			return; /* null OR null = null */
		l = a->t == RT_NULL ? r : l;
		if (l == 2)
			v_undef(a);
		else
			v_bool(a, l);
	} else if (op == OP_AND) {
		l == 0 || r == 0 ? v_bool(a, false) :
		l == 1 && r == 1 ? v_bool(a, true) : v_undef(a);
	} else {
		l == 1 || r == 1 ? v_bool(a, true) :
		l == 0 && r == 0 ? v_bool(a, false) : v_undef(a);
	}
}

static void binary(struct rt_ctx *x, uint8_t op, struct rt_val *a,
		   const struct rt_val *b)
{
	if (op <= OP_SUB)
		arith(op, a, b);
	else if (op == OP_CAT)
		concat(x, a, b, 1);
	else if (op <= OP_NE)
		compare(op, a, b);
	else if (op == OP_COALESCE)
		*a = a->t == RT_UNDEF ? *b : *a;
	else
		logic(op, a, b);
}

/* ---- built-in functions ------------------------------------------------- */

static void fn_math(uint8_t fn, struct rt_val *a)
{
	double v = a[0].num;

	if (a[0].t != RT_NUM || (fn == RT_FN_POWER && a[1].t != RT_NUM)) {
		v_undef(a);
		return;
	}
	switch (fn) {
	case RT_FN_ABS:
		v_num(a, fabs(v));
		break;
	case RT_FN_EXP:
		v_num(a, exp(v));
		break;
	case RT_FN_POWER:
		v_num(a, pow(v, a[1].num));
		break;
	case RT_FN_SQUARE:
		v_num(a, v * v);
		break;
	case RT_FN_CEILING:
		v_num(a, ceil(v));
		break;
	case RT_FN_FLOOR:
		v_num(a, floor(v));
		break;
	case RT_FN_SIGN:
		v_num(a, (v > 0) - (v < 0));
		break;
	default:
		v_num(a, v >= 0 ? sqrt(v) : NAN);
	}
}

static bool num_space(int ch)
{
	return ch == ' ' || (ch >= '\t' && ch <= '\r');
}

/* as_number's parse: .NET double.TryParse(NumberStyles.Any, invariant) for
 * the forms that occur: white space around, a leading sign, ',' group
 * separators in the integer part, a decimal point, an exponent. (.NET also
 * takes currency symbols, parentheses and trailing signs; those are
 * undefined here.) */
static bool parse_number(const char *s, uint32_t n, double *out)
{
	char buf[RT_NUM_MAX], *end;
	uint32_t i = 0, k = 0, digits = 0;

	while (n && num_space((unsigned char)s[n - 1]))
		n--;
	while (i < n && num_space((unsigned char)s[i]))
		i++;
	if (n - i >= sizeof(buf))
		return false;
	if (i < n && (s[i] == '+' || s[i] == '-'))
		buf[k++] = s[i++];
	for (; i < n && ((s[i] >= '0' && s[i] <= '9') || (s[i] == ',' && digits)); i++)
		if (s[i] != ',')
			buf[k++] = s[i], digits++;
	if (i < n && s[i] == '.')
		for (buf[k++] = s[i++]; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			buf[k++] = s[i], digits++;
	if (!digits)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		buf[k++] = s[i++];
		if (i < n && (s[i] == '+' || s[i] == '-'))
			buf[k++] = s[i++];
		if (i == n || s[i] < '0' || s[i] > '9')
			return false;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			buf[k++] = s[i++];
	}
	buf[k] = 0;
	*out = strtod(buf, &end);
	return i == n && end == buf + k;
}

static void fn_types(const struct rt_insn *in, struct rt_val *a)
{
	uint8_t t = a->t;
	double d;

	switch (in->fn) {
	case RT_FN_AS_NUMBER:
		if (t == RT_STR && parse_number(a->p, a->n, &d))
			v_num(a, d);
		else if (t != RT_NUM)
			v_undef(a);
		break;
	case RT_FN_IS_BOOL:
		if (t == RT_UNDEF && (in->flags & RT_F_UNDEF_ARG))
			break;
		v_bool(a, t == RT_BOOL);
		break;
	case RT_FN_IS_DEFINED:
		v_bool(a, t != RT_UNDEF);
		break;
	case RT_FN_IS_NULL:
		v_bool(a, t == RT_NULL);
		break;
	case RT_FN_IS_NUMBER:
		v_bool(a, t == RT_NUM);
		break;
	default:
		v_bool(a, t == RT_STR);
	}
}

/* UTF-16 units of the UTF-8 sequence at p[*off] (2 for 4-byte ones, 1 for
 * a stray byte), moving *off past it. */
static unsigned u16_step(const char *p, uint32_t n, uint32_t *off)
{
	unsigned char ch = (unsigned char)p[(*off)++];

	if (ch >= 0xc0)
		while (*off < n && ((unsigned char)p[*off] & 0xc0) == 0x80)
			(*off)++;
	return ch >= 0xf0 ? 2 : 1;
}

static uint32_t u16_len(const char *p, uint32_t n)
{
	uint32_t off = 0, units = 0;

	while (off < n)
		units += u16_step(p, n, &off);
	return units;
}

/* Byte offset units UTF-16 units after byte offset off; UINT32_MAX past
 * the end or inside a surrogate pair. */
static uint32_t u16_skip(const char *p, uint32_t n, uint32_t off,
			 uint32_t units)
{
	unsigned w;

	while (units) {
		if (off >= n || (w = u16_step(p, n, &off)) > units)
			return UINT32_MAX;
		units -= w;
	}
	return off;
}

/* substring(s, start[, length]) with edgeHub's bounds: start <= length
 * of s (start < length of s with a count), count <= what is left. */
static void fn_substring(struct rt_val *a, unsigned argc)
{
	double start = a[1].num, len = argc == 3 ? a[2].num : 0;
	uint32_t units, b, e;

	if (a[0].t != RT_STR || a[1].t != RT_NUM ||
	    (argc == 3 && a[2].t != RT_NUM)) {
		v_undef(a);
		return;
	}
	units = u16_len(a[0].p, a[0].n);
	if (argc == 2 ? !(start >= 0 && start <= units) :
	    !(start >= 0 && start < units && len >= 0 && len <= units - start)) {
		v_undef(a);
		return;
	}
	b = u16_skip(a[0].p, a[0].n, 0, (uint32_t)start);
	e = argc == 2 || b == UINT32_MAX ? a[0].n :
	    u16_skip(a[0].p, a[0].n, b, (uint32_t)len);
	if (b == UINT32_MAX || e == UINT32_MAX)
		v_undef(a);
	else
		v_str(a, a[0].p + b, e - b);
}

static void fn_case(struct rt_ctx *x, bool upper, struct rt_val *a)
{
	char *out;

	if (a->t != RT_STR || !(out = scratch(x, a->n))) {
		v_undef(a);
		return;
	}
	for (uint32_t i = 0; i < a->n; i++) {
		int ch = (unsigned char)a->p[i];

		if (upper && ch >= 'a' && ch <= 'z')
			ch -= 32;
		else if (!upper)
			ch = rt_lower(ch);
		out[i] = (char)ch;
	}
	a->p = out;
}

/* index_of, starts_with, ends_with, contains: ordinal, as edgeHub. */
static void fn_search(uint8_t fn, struct rt_val *a)
{
	const struct rt_val *s = &a[0], *t = &a[1];
	const char *f;

	if (s->t != RT_STR || t->t != RT_STR) {
		v_undef(a);
		return;
	}
	f = !t->n ? s->p : t->n > s->n ? NULL : memmem(s->p, s->n, t->p, t->n);
	switch (fn) {
	case RT_FN_INDEX_OF:
		v_num(a, f ? (double)u16_len(s->p, (uint32_t)(f - s->p)) : -1);
		break;
	case RT_FN_STARTS_WITH:
		v_bool(a, t->n <= s->n && !memcmp(s->p, t->p, t->n));
		break;
	case RT_FN_ENDS_WITH:
		v_bool(a, t->n <= s->n && !memcmp(s->p + s->n - t->n, t->p, t->n));
		break;
	default:
		v_bool(a, f != NULL);
	}
}

static void call(struct rt_ctx *x, const struct rt_insn *in, struct rt_val *a)
{
	switch (in->fn) {
	case RT_FN_AS_NUMBER:
	case RT_FN_IS_BOOL:
	case RT_FN_IS_DEFINED:
	case RT_FN_IS_NULL:
	case RT_FN_IS_NUMBER:
	case RT_FN_IS_STRING:
		fn_types(in, a);
		break;
	case RT_FN_CONCAT:
		concat(x, a, a + 1, in->argc - 1u);
		break;
	case RT_FN_LENGTH:
		a->t == RT_STR ? v_num(a, u16_len(a->p, a->n)) : v_undef(a);
		break;
	case RT_FN_LOWER:
	case RT_FN_UPPER:
		fn_case(x, in->fn == RT_FN_UPPER, a);
		break;
	case RT_FN_SUBSTRING:
		fn_substring(a, in->argc);
		break;
	case RT_FN_INDEX_OF:
	case RT_FN_STARTS_WITH:
	case RT_FN_ENDS_WITH:
	case RT_FN_CONTAINS:
		fn_search(in->fn, a);
		break;
	default:
		fn_math(in->fn, a);
	}
}

/* ---- the machine -------------------------------------------------------- */

static struct rt_val *step(struct rt_ctx *x, const struct rt_insn *in,
			   struct rt_val *sp)
{
	if (in->op <= OP_BODY) {
		load(x, in, sp);
		return sp + 1;
	}
	if (in->op <= OP_NOTQ) {
		unary(in->op, sp - 1);
		return sp;
	}
	if (in->op == OP_CALL) {
		sp -= in->argc;
		call(x, in, sp);
		return sp + 1;
	}
	binary(x, in->op, sp - 2, sp - 1);
	return sp - 1;
}

enum te_tri te_route_eval(const struct te_route *r, const struct te_msg *m)
{
	const struct te_route_prog *pg = r->prog;
	struct rt_ctx x = { .pg = pg, .m = m };
	struct rt_val *sp;

	if (!r->has_condition || !pg)
		return TE_TRUE;
	sp = pg->stack;
	for (uint32_t i = 0; i < pg->ncode; i++)
		sp = step(&x, &pg->code[i], sp);
	sp = pg->stack;
	if (sp->t == RT_BOOL)
		return sp->b ? TE_TRUE : TE_FALSE;
	/* edgeHub converts the condition to Bool: a static null is false, a
	 * $body null (a QueryValue) undefined, anything else undefined */
	return sp->t == RT_NULL && pg->type != RT_DYN ? TE_FALSE : TE_UNDEFINED;
}
