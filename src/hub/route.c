/* Routes (route.h): [SELECT *] FROM <source> [WHERE <condition>] INTO <sink>,
 * as edgeHub's Route.g4, RouteFactory, CustomMessageSource and
 * EndpointFactory. The condition compiler is route_parse.c, the evaluator
 * route_eval.c.
 *
 * Sources are matched as edgeHub matches them (BaseMessageSource: a prefix
 * of the message's source path, case-insensitive), so module and output
 * names compare case-insensitively. /messages/<*> (<*>: the star, which a
 * C comment cannot hold after a slash) is every device and module message,
 * not twin changes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "route_int.h"

/* ---- text helpers shared by the compiler and the evaluator -------------- */

int rt_lower(int ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
}

bool rt_ieq(const char *a, uint32_t an, const char *b, uint32_t bn)
{
	if (an != bn)
		return false;
	for (uint32_t i = 0; i < an; i++)
		if (rt_lower((unsigned char)a[i]) != rt_lower((unsigned char)b[i]))
			return false;
	return true;
}

int rt_hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = rt_lower(ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

bool rt_hex4(const char *p)
{
	return rt_hexval(p[0]) >= 0 && rt_hexval(p[1]) >= 0 &&
	       rt_hexval(p[2]) >= 0 && rt_hexval(p[3]) >= 0;
}

static uint32_t hex4_value(const char *p)
{
	return (uint32_t)(rt_hexval(p[0]) << 12 | rt_hexval(p[1]) << 8 |
			  rt_hexval(p[2]) << 4 | rt_hexval(p[3]));
}

static unsigned utf8_put(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

unsigned rt_unicode(const char *p, const char *end, char *out,
		    const char **next)
{
	uint32_t cp = hex4_value(p + 1), lo;
	const char *q = p + 5;

	if (cp >= 0xd800 && cp < 0xdc00 && end - q >= 6 && q[0] == '\\' &&
	    q[1] == 'u' && rt_hex4(q + 2)) {
		lo = hex4_value(q + 2);
		if (lo >= 0xdc00 && lo < 0xe000) {
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			q += 6;
		}
	}
	*next = q;
	return utf8_put(cp >= 0xd800 && cp < 0xe000 ? 0xfffd : cp, out);
}

#define SEGS_MAX 6

struct seg {
	const char *p;
	uint32_t n;
};

static bool seg_is(const struct seg *s, const char *lit)
{
	return rt_ieq(s->p, s->n, lit, (uint32_t)strlen(lit));
}

/* A module, output or input name: not "*", no character edgeHub's
 * lexer would end a name on, fits cap - 1 bytes. */
static int take_name(struct rt_cc *c, const struct seg *s, char *out,
		     size_t cap, unsigned col, const char *what)
{
	for (uint32_t i = 0; i < s->n; i++) {
		unsigned char ch = (unsigned char)s->p[i];

		if (ch <= 0x20 || ch == 0x7f || strchr("()<>@,;:\\\"[]?={}*'", ch))
			return rt_fail(c, col, "bad %s name '%.*s'", what,
				       (int)s->n, s->p);
	}
	if (!s->n || s->n >= cap)
		return rt_fail(c, col, "%s name '%.*s' must be 1 to %zu bytes",
			       what, (int)s->n, s->p, cap - 1);
	memcpy(out, s->p, s->n);
	out[s->n] = 0;
	return 0;
}

/* Split "/a/b/c" (one trailing '/' allowed) into its segments. */
static int split_path(const char *p, const char *e, struct seg *segs)
{
	int n = 0;

	if (e - p > 1 && e[-1] == '/')
		e--;
	if (p == e || *p != '/')
		return -1;
	while (p < e) {
		const char *s = ++p;

		while (p < e && *p != '/')
			p++;
		if (p == s || n == SEGS_MAX)
			return -1;
		segs[n++] = (struct seg){ s, (uint32_t)(p - s) };
	}
	return n;
}

static bool is_star(const struct seg *s, int i, int n)
{
	return i >= n || (s[i].n == 1 && s[i].p[0] == '*');
}

/* /messages/modules/{m}[/<*> | /outputs[/<*> | /{o}]] */
static int module_source(struct rt_cc *c, struct te_route *r,
			 const struct seg *s, int n, unsigned col)
{
	if (n == 2 || (n == 3 && is_star(s, 2, n)))
		return rt_fail(c, col, "source /messages/modules/* (every module) "
			       "is not supported; use FROM /messages/* WHERE "
			       "is_defined($connectionModuleId)");
	if (n > 5 || (n >= 4 && !is_star(s, 3, n) && !seg_is(&s[3], "outputs")) ||
	    (n == 5 && is_star(s, 3, n)))
		return -2;
	if (take_name(c, &s[2], r->src_module, sizeof(r->src_module), col,
		      "module") < 0)
		return -1;
	r->source = TE_RSRC_MODULE;
	if (n == 5 && !is_star(s, 4, n)) {
		r->source = TE_RSRC_MODULE_OUTPUT;
		return take_name(c, &s[4], r->src_output, sizeof(r->src_output),
				 col, "output");
	}
	return 0;
}

/* Classify the path's segments; -2 for a path of no known shape. */
static int classify_source(struct rt_cc *c, struct te_route *r,
			   const struct seg *s, int n, unsigned col)
{
	if (n >= 1 && n <= 2 && seg_is(&s[0], "messages") && is_star(s, 1, n))
		r->source = TE_RSRC_ALL;
	else if (n >= 2 && seg_is(&s[0], "messages") && seg_is(&s[1], "modules"))
		return module_source(c, r, s, n, col);
	else if (n >= 1 && n <= 2 && seg_is(&s[0], "twinChangeNotifications") &&
		 is_star(s, 1, n))
		r->source = TE_RSRC_TWIN_CHANGES;
	else
		return -2;
	return 0;
}

/* The path after FROM: one run of non-blank characters. */
static int parse_source(struct rt_cc *c, struct te_route *r)
{
	const char *p = c->p, *e;
	struct seg s[SEGS_MAX];
	unsigned col;
	int rc;

	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	col = (unsigned)(p - c->text) + 1;
	for (e = p; *e && !strchr(" \t\r\n", *e); e++)
		;
	if (e == p)
		return rt_fail(c, col, "expected a source path after FROM");
	rc = classify_source(c, r, s, split_path(p, e, s), col);
	if (rc == -2)
		return rt_fail(c, col, "bad source '%.*s' (expected /messages/*, "
			       "/messages/modules/{m}/*, /messages/modules/{m}"
			       "/outputs/{o} or /twinChangeNotifications)",
			       (int)(e - p > 60 ? 60 : e - p), p);
	if (rc < 0)
		return -1;
	c->p = e;
	return rt_next(c);
}

/* BrokeredEndpoint("/modules/{m}/inputs/{i}"), as EndpointFactory: the
 * address is trimmed and may lack the leading or trailing '/'. */
static int endpoint_address(struct rt_cc *c, struct te_route *r,
			    const struct rt_token *t)
{
	char buf[512], *p = buf + 1, *e;
	struct seg s[SEGS_MAX];
	int n;

	if (t->n >= sizeof(buf))
		return rt_fail(c, t->col, "endpoint address too long");
	e = p + rt_unquote(t, p); /* buf[0]: room for a leading '/' */
	while (p < e && strchr(" \t\r\n", *p))
		p++;
	while (e > p && strchr(" \t\r\n", e[-1]))
		e--;
	if (p < e && *p != '/')
		*--p = '/';
	n = split_path(p, e, s);
	if (n != 4 || !seg_is(&s[0], "modules") || !seg_is(&s[2], "inputs"))
		return rt_fail(c, t->col, "bad endpoint address '%.*s' (expected "
			       "/modules/{m}/inputs/{i})",
			       (int)(e - p > 60 ? 60 : e - p), p);
	r->sink = TE_RSINK_MODULE;
	if (take_name(c, &s[1], r->sink_module, sizeof(r->sink_module),
		      t->col, "module") < 0)
		return -1;
	return take_name(c, &s[3], r->sink_input, sizeof(r->sink_input),
			 t->col, "input");
}

static int expect(struct rt_cc *c, int kind, const char *what)
{
	if (c->tok.kind != kind)
		return rt_fail(c, c->tok.col, "expected %s", what);
	return rt_next(c);
}

static int parse_sink(struct rt_cc *c, struct te_route *r)
{
	struct rt_token t = c->tok;

	if (t.kind == T_SYS && rt_ieq(t.p, t.n, "$upstream", 9)) {
		r->sink = TE_RSINK_UPSTREAM;
		return rt_next(c);
	}
	if (t.kind == T_EOF)
		return rt_fail(c, t.col, "expected a sink after INTO");
	if (t.kind != T_ID || !rt_ieq(t.p, t.n, "BrokeredEndpoint", 16))
		return rt_fail(c, t.col, "unknown sink '%.*s' (expected $upstream "
			       "or BrokeredEndpoint(\"/modules/{m}/inputs/{i}\"))",
			       (int)(t.n > 40 ? 40 : t.n), t.p);
	if (rt_next(c) < 0 || expect(c, T_LP, "'(' after BrokeredEndpoint") < 0)
		return -1;
	t = c->tok;
	if (t.kind != T_STR)
		return rt_fail(c, t.col, "expected a quoted address in "
			       "BrokeredEndpoint( )");
	if (endpoint_address(c, r, &t) < 0 || rt_next(c) < 0)
		return -1;
	return expect(c, T_RP, "')'");
}

static int parse_where(struct rt_cc *c, struct te_route *r)
{
	if (rt_next(c) < 0)
		return -1;
	if (c->tok.kind == T_INTO || c->tok.kind == T_EOF)
		return rt_fail(c, c->tok.col, "expected a condition after WHERE");
	if (rt_condition(c) < 0)
		return -1;
	r->has_condition = true;
	if (c->tok.kind == T_RP)
		return rt_fail(c, c->tok.col, "unexpected ')'");
	return 0;
}

static int parse_route(struct rt_cc *c, struct te_route *r)
{
	if (rt_next(c) < 0)
		return -1;
	if (c->tok.kind == T_EOF)
		return rt_fail(c, 1, "empty route");
	if (c->tok.kind == T_SELECT &&
	    (rt_next(c) < 0 || expect(c, T_STAR, "'*' after SELECT") < 0))
		return -1;
	if (c->tok.kind != T_FROM)
		return rt_fail(c, c->tok.col, "expected FROM");
	if (parse_source(c, r) < 0)
		return -1;
	if (c->tok.kind == T_WHERE && parse_where(c, r) < 0)
		return -1;
	if (c->tok.kind != T_INTO)
		return rt_fail(c, c->tok.col, r->has_condition ? "expected INTO" :
			       "expected WHERE or INTO");
	if (rt_next(c) < 0 || parse_sink(c, r) < 0)
		return -1;
	if (c->tok.kind != T_EOF)
		return rt_fail(c, c->tok.col, "unexpected '%.*s' after the sink",
			       (int)(c->tok.n > 40 ? 40 : c->tok.n), c->tok.p);
	return 0;
}

int te_route_compile(const char *text, struct te_route *r, char *err,
		     size_t cap, unsigned *col)
{
	struct rt_cc c;
	int rc;

	memset(r, 0, sizeof(*r));
	rt_cc_init(&c, text, err, cap, col);
	if (parse_route(&c, r) == 0 && r->has_condition)
		rt_prog_build(&c, &r->prog);
	rc = c.rc;
	rt_cc_fini(&c);
	if (rc) {
		te_route_free(r);
		memset(r, 0, sizeof(*r));
	}
	return rc;
}

void te_route_free(struct te_route *r)
{
	free(r->prog);
	r->prog = NULL;
}

static bool str_ieq(const struct te_str *s, const char *z)
{
	return s->p && rt_ieq(s->p, s->n, z, (uint32_t)strlen(z));
}

bool te_route_source_matches(const struct te_route *r, const struct te_msg *m)
{
	switch (r->source) {
	case TE_RSRC_ALL:
		return m->origin == TE_ORIGIN_MODULE || m->origin == TE_ORIGIN_DEVICE;
	case TE_RSRC_TWIN_CHANGES:
		return m->origin == TE_ORIGIN_TWIN_CHANGE;
	case TE_RSRC_MODULE_OUTPUT:
		if (!str_ieq(&m->sys[TE_SYS_OUTPUT_NAME], r->src_output))
			return false;
		/* fall through */
	case TE_RSRC_MODULE:
		return m->origin == TE_ORIGIN_MODULE &&
		       str_ieq(&m->sys[TE_SYS_CONNECTION_MODULE_ID], r->src_module);
	}
	return false;
}
