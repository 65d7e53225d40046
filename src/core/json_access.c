/* JSON accessors and policy tables over a validated document; see json.h. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "json.h"
#include "json_int.h"

static const char *const type_names[] = {
	"null", "boolean", "number", "string", "object", "array",
};
static const char *const type_texts[] = {
	"null", "a boolean", "a number", "a string", "an object", "an array",
};

const char *te_json_type_name(unsigned type)
{
	for (unsigned i = 0; i < 6; i++)
		if (type == 1u << i)
			return type_names[i];
	return "value";
}

void te_json_types_text(unsigned mask, char *buf, size_t cap)
{
	unsigned left = (unsigned)__builtin_popcount(mask & 63);
	size_t n = 0;

	if (!cap)
		return;
	buf[0] = 0;
	if (!left) {
		snprintf(buf, cap, "any value");
		return;
	}
	for (unsigned i = 0; i < 6 && n < cap; i++) {
		if (!(mask & 1u << i))
			continue;
		left--;
		n += (size_t)snprintf(buf + n, cap - n, "%s%s", type_texts[i],
				      left > 1 ? ", " : left ? " or " : "");
	}
}

static bool is_type(const struct te_json_doc *doc, unsigned t, unsigned type)
{
	return t < doc->ntok && doc->tok[t].type == type;
}

/* Unescape string token t into buf[0..cap): all of it, or the prefix that
 * fits. \u0000 is a byte when nul_ok, else it stops the copy with
 * -TE_EINVALID. *w gets the bytes written, *n the length (up to the NUL
 * when refused). */
static int str_copy(const struct te_json_doc *doc, unsigned t, char *buf,
		    size_t cap, bool nul_ok, size_t *w, size_t *n)
{
	const unsigned char *s = (const unsigned char *)doc->text;
	char u[4];
	int r = 0;

	*w = *n = 0;
	if (!is_type(doc, t, TE_JSON_STRING))
		return -TE_EMALFORMED;
	for (size_t i = doc->tok[t].start; i < doc->tok[t].end;) {
		unsigned k = te_json_str_unit(s, &i, u);

		if (k == 1 && !u[0] && !nul_ok)
			return -TE_EINVALID;
		if (!r && k <= cap - *w) {
			memcpy(buf + *w, u, k);
			*w += k;
		} else {
			r = -TE_ENOSPACE;
		}
		*n += k;
	}
	return r;
}

int te_json_str(const struct te_json_doc *doc, unsigned t, char *buf,
		size_t cap, size_t *len)
{
	size_t w, n;
	int r = str_copy(doc, t, buf, cap ? cap - 1 : 0, false, &w, &n);

	if (cap)
		buf[w] = 0;
	if (len)
		*len = r == -TE_EINVALID ? w : n;
	return r;
}

int te_json_bytes(const struct te_json_doc *doc, unsigned t, char *buf,
		  size_t cap, size_t *len)
{
	size_t w, n;
	int r = str_copy(doc, t, buf, cap, true, &w, &n);

	if (len)
		*len = n;
	return r;
}

char *te_json_strdup(const struct te_json_doc *doc, unsigned t, int *err)
{
	size_t n;
	char *s;
	int r = te_json_str(doc, t, NULL, 0, &n);

	if (r == -TE_ENOSPACE || (!r && !n)) {
		s = malloc(n + 1);
		r = s ? te_json_str(doc, t, s, n + 1, NULL) : -ENOMEM;
		if (!r) {
			if (err)
				*err = 0;
			return s;
		}
		free(s);
	}
	if (err)
		*err = r;
	return NULL;
}

bool te_json_streq(const struct te_json_doc *doc, unsigned t, const char *s)
{
	struct te_json_ustr u;
	int c;

	if (!is_type(doc, t, TE_JSON_STRING))
		return false;
	te_json_ustr_init(&u, doc, t);
	for (;; s++) {
		c = te_json_ustr_get(&u);
		if (c < 0)
			return !*s;
		if (!*s || c != (unsigned char)*s)
			return false;
	}
}

bool te_json_utf8_valid(const void *s, size_t n)
{
	const unsigned char *p = s;
	unsigned k;

	for (size_t i = 0; i < n; i += k)
		if (!(k = te_json_utf8_len(p + i, n - i)))
			return false;
	return true;
}

int te_json_tok_strcmp(const struct te_json_doc *a, unsigned ta,
		       const struct te_json_doc *b, unsigned tb)
{
	struct te_json_ustr ua, ub;
	int ca, cb;

	te_json_ustr_init(&ua, a, ta);
	te_json_ustr_init(&ub, b, tb);
	do {
		ca = te_json_ustr_get(&ua);
		cb = te_json_ustr_get(&ub);
	} while (ca == cb && ca >= 0);
	return ca - cb;
}

int te_json_int(const struct te_json_doc *doc, unsigned t, int64_t *out)
{
	const char *s, *e;
	uint64_t v = 0, lim;
	bool neg;

	if (!is_type(doc, t, TE_JSON_NUMBER))
		return -TE_EMALFORMED;
	s = doc->text + doc->tok[t].start;
	e = doc->text + doc->tok[t].end;
	neg = *s == '-';
	s += neg;
	for (const char *p = s; p < e; p++)
		if (*p < '0' || *p > '9')
			return -TE_EMALFORMED;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; s < e; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (lim - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (!neg)
		*out = (int64_t)v;
	else
		*out = v > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)v;
	return 0;
}

int te_json_double(const struct te_json_doc *doc, unsigned t, double *out)
{
	char small[64], *b = small, *end;
	size_t n;

	if (!is_type(doc, t, TE_JSON_NUMBER))
		return -TE_EMALFORMED;
	n = doc->tok[t].end - doc->tok[t].start;
	if (n >= sizeof(small) && !(b = malloc(n + 1)))
		return -ENOMEM;
	memcpy(b, doc->text + doc->tok[t].start, n);
	b[n] = 0;
	*out = strtod(b, &end);
	n = (size_t)(end - b) == n ? 0 : 1; /* a non-"." locale stops early */
	if (b != small)
		free(b);
	return n ? -TE_EMALFORMED : 0;
}

int te_json_bool(const struct te_json_doc *doc, unsigned t, bool *out)
{
	if (!is_type(doc, t, TE_JSON_BOOL))
		return -TE_EMALFORMED;
	*out = doc->text[doc->tok[t].start] == 't';
	return 0;
}

int te_json_get(const struct te_json_doc *doc, unsigned obj, const char *key)
{
	if (!is_type(doc, obj, TE_JSON_OBJECT))
		return -1;
	TE_JSON_FOREACH_MEMBER(doc, obj, k, v)
		if (te_json_streq(doc, k, key))
			return (int)v;
	return -1;
}

/* ---- policy tables ---- */

/* Check one member; tb[i] = -2 marks "present with the wrong type" until
 * the caller's missing-key pass. Returns the problems reported. */
static unsigned member_check(const struct te_json_doc *doc, unsigned k,
			     unsigned v, const char *what,
			     const struct te_json_policy *pol, unsigned n,
			     int *tb, struct te_diag *diag)
{
	const struct te_json_tok *kt = &doc->tok[k];
	char types[96];
	unsigned i;

	for (i = 0; i < n && !te_json_streq(doc, k, pol[i].name); i++)
		;
	if (i == n) {
		int m = te_json_show_len(doc->text + kt->start, kt->end - kt->start);

		te_json_error(doc, diag, k, "unknown key \"%.*s%s\"%s%s", m,
			      doc->text + kt->start,
			      m < (int)(kt->end - kt->start) ? "..." : "",
			      *what ? " in " : "", what);
		return 1;
	}
	if (pol[i].types && !(pol[i].types & doc->tok[v].type)) {
		te_json_types_text(pol[i].types, types, sizeof(types));
		te_json_error(doc, diag, v, "%s%s%s must be %s", what,
			      *what ? "." : "", pol[i].name, types);
		tb[i] = -2;
		return 1;
	}
	tb[i] = (int)v;
	return 0;
}

unsigned te_json_read_object(const struct te_json_doc *doc, unsigned obj,
			     const char *what,
			     const struct te_json_policy *pol, unsigned n,
			     int *tb, struct te_diag *diag)
{
	unsigned bad = 0;

	if (!what)
		what = "";
	for (unsigned i = 0; i < n; i++)
		tb[i] = -1;
	if (!is_type(doc, obj, TE_JSON_OBJECT)) {
		te_json_error(doc, diag, obj, "%s must be an object",
			      *what ? what : "the document");
		return 1;
	}
	TE_JSON_FOREACH_MEMBER(doc, obj, k, v)
		bad += member_check(doc, k, v, what, pol, n, tb, diag);
	for (unsigned i = 0; i < n; i++) {
		if (tb[i] == -2) {
			tb[i] = -1;
		} else if (tb[i] == -1 && (pol[i].flags & TE_JSON_REQUIRED)) {
			te_json_error(doc, diag, obj,
				      "%s%smissing required key \"%s\"", what,
				      *what ? ": " : "", pol[i].name);
			bad++;
		}
	}
	return bad;
}
