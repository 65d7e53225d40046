/* JSON merge patch with the twin rules; see json_patch.h.
 *
 * Both texts are parsed (and so validated) first; the merge then walks the
 * two token trees together and writes the result straight into the
 * caller's buffer with the JSON writer, which makes it compact. Recursion
 * follows the nesting, which the parser has bounded. */
#include <stdbool.h>

#include "err.h"
#include "json.h"
#include "json_int.h"
#include "json_patch.h"

static const struct te_json_limits patch_limits = {
	.max_bytes = TE_JSON_PATCH_INPUT_MAX,
	.max_tokens = TE_JSON_PATCH_INPUT_MAX,  /* never reached: a token takes a byte */
	.max_depth = TE_JSON_PATCH_DEPTH,
};

struct patch {
	const struct te_json_doc *d;  /* the document */
	const struct te_json_doc *p;  /* the patch */
	unsigned flags;               /* TE_JSON_PATCH_* */
	struct te_jw w;
};

/* ---- the one problem, as a line in the caller's buffer ---------------------- */

struct errbuf {
	char *buf;
	size_t cap;
};

static void err_emit(struct te_diag *d, const char *file, unsigned line,
		     unsigned col, const char *msg)
{
	const struct errbuf *e = d->ctx;

	if (e->cap)
		te_diag_format(e->buf, e->cap, file, line, col, msg);
}

/* ---- property names ---------------------------------------------------------- */

/* What is wrong with key token k as a twin property name, or NULL. The
 * unescaped bytes are valid UTF-8, so 0xc2 is always a lead byte, and C1
 * controls are exactly 0xc2 0x80..0x9f. */
static const char *key_problem(const struct te_json_doc *p, unsigned k)
{
	struct te_json_ustr u;
	size_t n = 0;
	int c, prev = -1;

	te_json_ustr_init(&u, p, k);
	while ((c = te_json_ustr_get(&u)) >= 0) {
		if (++n > TE_JSON_PATCH_KEY_MAX)
			return "is longer than 1024 bytes";
		if (c == '$' || c == '.')
			return c == '$' ? "contains '$'" : "contains '.'";
		if (c == ' ')
			return "contains a space";
		if (c < 0x20 || (prev == 0xc2 && c <= 0x9f))
			return "contains a control character";
		prev = c;
	}
	return NULL;
}

/* Every property name of the patch, at every level (objects inside arrays
 * too: they become part of the twin). 0 or -TE_EINVALID, reported. */
static int patch_keys(const struct te_json_doc *p, struct te_diag *diag)
{
	const char *why;

	for (unsigned t = 0; t < p->ntok; t++) {
		if (p->tok[t].type != TE_JSON_OBJECT)
			continue;
		TE_JSON_FOREACH_MEMBER(p, t, k, v) {
			const char *s = p->text + p->tok[k].start;
			size_t n = p->tok[k].end - p->tok[k].start;

			if (t == 0 && te_json_streq(p, k, "$version"))
				continue;
			why = key_problem(p, k);
			if (why) {
				te_json_error(p, diag, k, "property name \"%.*s\" %s",
					      te_json_show_len(s, n), s, why);
				return -TE_EINVALID;
			}
		}
	}
	return 0;
}

/* ---- merging ----------------------------------------------------------------- */

/* Token t's text: a string with its quotes. */
static const char *tok_text(const struct te_json_doc *d, unsigned t, size_t *n)
{
	const struct te_json_tok *k = &d->tok[t];
	unsigned q = k->type == TE_JSON_STRING;

	*n = k->end - k->start + 2 * q;
	return d->text + k->start - q;
}

static void key_copy(struct te_jw *w, const struct te_json_doc *d, unsigned k)
{
	size_t n;
	const char *s = tok_text(d, k, &n);

	te_jw_key_raw(w, s, n);
}

/* Value t of d, as it is (null members included), compacted. */
static void value_copy(struct te_jw *w, const struct te_json_doc *d, unsigned t)
{
	const char *s;
	size_t n;

	switch (d->tok[t].type) {
	case TE_JSON_OBJECT:
		te_jw_obj_open(w);
		TE_JSON_FOREACH_MEMBER(d, t, k, v) {
			key_copy(w, d, k);
			value_copy(w, d, v);
		}
		te_jw_obj_close(w);
		break;
	case TE_JSON_ARRAY:
		te_jw_arr_open(w);
		TE_JSON_FOREACH_ELEM(d, t, e)
			value_copy(w, d, e);
		te_jw_arr_close(w);
		break;
	default:
		s = tok_text(d, t, &n);
		te_jw_raw(w, s, n);
	}
}

/* The value of the member of object obj (in d) named as key token k of
 * kd, or -1. */
static int member(const struct te_json_doc *d, unsigned obj,
		  const struct te_json_doc *kd, unsigned k)
{
	TE_JSON_FOREACH_MEMBER(d, obj, dk, dv)
		if (te_json_tok_strcmp(d, dk, kd, k) == 0)
			return (int)dv;
	return -1;
}

static bool is(const struct te_json_doc *d, int t, unsigned type)
{
	return t >= 0 && d->tok[t].type == type;
}

/* RFC 7396 MergePatch(target, patch): t is the document's value (-1 when
 * it has none), p the patch's. */
static void merge(struct patch *x, int t, unsigned p)
{
	const struct te_json_doc *D = x->d, *P = x->p;
	bool tobj = is(D, t, TE_JSON_OBJECT);

	if (P->tok[p].type != TE_JSON_OBJECT) {
		value_copy(&x->w, P, p);
		return;
	}
	te_jw_obj_open(&x->w);
	if (tobj) {
		TE_JSON_FOREACH_MEMBER(D, (unsigned)t, k, v) {
			int pv = member(P, p, D, k);

			if (is(P, pv, TE_JSON_NULL) && !(x->flags & TE_JSON_PATCH_COMPOSE))
				continue;  /* deleted */
			key_copy(&x->w, D, k);
			if (pv < 0)
				value_copy(&x->w, D, v);
			else
				merge(x, (int)v, (unsigned)pv);
		}
	}
	TE_JSON_FOREACH_MEMBER(P, p, k, v) {
		if ((P->tok[v].type == TE_JSON_NULL && !(x->flags & TE_JSON_PATCH_COMPOSE)) ||
		    (tobj && member(D, (unsigned)t, P, k) >= 0))
			continue;  /* nothing to delete, or merged above */
		key_copy(&x->w, P, k);
		if (x->flags & TE_JSON_PATCH_COMPOSE)
			value_copy(&x->w, P, v);  /* its nulls are deletions to keep */
		else
			merge(x, -1, v);
	}
	te_jw_obj_close(&x->w);
}

int te_json_merge_patch(const char *doc, size_t dlen, const char *patch,
			size_t plen, char *out, size_t cap, size_t *outlen,
			char *err, size_t errlen)
{
	return te_json_merge_patch_ex(doc, dlen, patch, plen, 0, out, cap, outlen, err,
				      errlen);
}

int te_json_merge_patch_ex(const char *doc, size_t dlen, const char *patch,
			   size_t plen, unsigned flags, char *out, size_t cap,
			   size_t *outlen, char *err, size_t errlen)
{
	struct errbuf eb = { err, errlen };
	struct te_diag diag = { .emit = err_emit, .ctx = &eb };
	struct te_json_doc d = { 0 }, p = { 0 };
	struct patch x = { .d = &d, .p = &p, .flags = flags };
	int r;

	if (errlen)
		err[0] = '\0';
	r = te_json_parse(&d, "doc", doc, dlen, &patch_limits, &diag);
	if (!r)
		r = te_json_parse(&p, "patch", patch, plen, &patch_limits, &diag);
	if (!r && !(flags & TE_JSON_PATCH_ANY_NAMES))
		r = patch_keys(&p, &diag);
	if (!r) {
		te_jw_init(&x.w, out, cap);
		merge(&x, 0, 0);
		r = te_jw_finish(&x.w);
		if (!r)
			*outlen = x.w.len;
		else if (r == -TE_ENOSPACE)
			te_diag_report(&diag, NULL, 0, 0, "the result is over %zu bytes",
				       cap ? cap - 1 : 0);
	}
	te_json_free(&d);
	te_json_free(&p);
	return r;
}
