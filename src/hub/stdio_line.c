/* JSON lines for stdio modules (stdio_line.h).
 *
 * Decoding parses the line into the scratch's token array (the validating
 * reader: strict JSON, no duplicate keys), checks the root object against
 * one policy table (unknown keys, types, the required output), then copies
 * each field, unescaped, into the scratch buffer. An unescaped string is
 * never longer than its JSON text, base64 decodes to fewer bytes than it
 * has, and fields do not overlap in the line, so everything copied (with a
 * NUL after each string) fits in a buffer as long as the line: the buffer
 * cannot overflow and is not checked for room per field.
 *
 * Encoding is the JSON writer into the caller's buffer. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/base64.h"
#include "core/err.h"
#include "stdio_line.h"

/* The system properties a line may carry besides input/output, in the
 * order the encoder writes them. */
static const enum te_sysprop line_sys[] = {
	TE_SYS_MESSAGE_ID,
	TE_SYS_CORRELATION_ID,
	TE_SYS_CONTENT_TYPE,
	TE_SYS_CONTENT_ENCODING,
	TE_SYS_CREATION_TIME_UTC,
	TE_SYS_CONNECTION_MODULE_ID,
};
#define NSYS (sizeof(line_sys) / sizeof(line_sys[0]))

/* The keys of a module's line: one policy table, tb[] indexed by these. */
enum { F_OUTPUT, F_PROPS, F_BODY, F_BODY64, F_SYS, F_N = F_SYS + NSYS };

static const struct te_json_limits line_limits = {
	.max_bytes = TE_STDIO_LINE_MAX,
	.max_tokens = TE_STDIO_LINE_TOKENS,
	.max_depth = 32, /* as te_json_default_limits */
};

static const char json_type[] = "application/json";
static const char json_encoding[] = "utf-8";

_Static_assert(sizeof(((struct te_stdio_scratch *)0)->buf) >= TE_STDIO_LINE_MAX,
	       "the buffer holds what a line unescapes to");

/* ---- decode ----------------------------------------------------------------- */

struct dec {
	struct te_diag diag;       /* keeps the first report in err */
	struct te_json_doc doc;
	struct te_stdio_scratch *sc;
	size_t used;               /* bytes of sc->buf taken */
	char *err;
	size_t errcap;
};

/* The line has no '\n', so the column is the only position. */
static void dec_emit(struct te_diag *d, const char *file, unsigned line,
		     unsigned col, const char *msg)
{
	struct dec *D = d->ctx;

	(void)file;
	(void)line;
	if (d->errors > 1 || !D->errcap)
		return;
	if (col)
		snprintf(D->err, D->errcap, "column %u: %s", col, msg);
	else
		snprintf(D->err, D->errcap, "%s", msg);
}

/* Report a problem at byte offset off of the line; returns err. */
static int fail_at(struct dec *D, size_t off, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail_at(struct dec *D, size_t off, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	te_diag_vreport(&D->diag, NULL, 1, (unsigned)off + 1, fmt, ap);
	va_end(ap);
	return err;
}

/* A token's position: a string's opening quote. */
static size_t tok_off(const struct te_json_doc *doc, unsigned t)
{
	return doc->tok[t].start - (doc->tok[t].type == TE_JSON_STRING);
}

#define FAIL(D, t, err, ...) fail_at(D, tok_off(&(D)->doc, t), err, __VA_ARGS__)

static char *room(struct dec *D)
{
	return D->sc->buf + D->used;
}

/* Copy string token t into the scratch, NUL-terminated, at most max bytes
 * and no NUL byte; what names it in messages. */
static int take_str(struct dec *D, unsigned t, const char *what, uint32_t max,
		    struct te_str *s)
{
	size_t n;
	int r = te_json_str(&D->doc, t, room(D), sizeof(D->sc->buf) - D->used,
			    &n);

	if (r == -TE_EINVALID)
		return FAIL(D, t, -TE_EMALFORMED, "%s: \\u0000 is not allowed",
			    what);
	if (r) /* not reached: see the top of the file */
		return FAIL(D, t, -TE_ELIMIT, "%s: line buffer full", what);
	if (n > max)
		return FAIL(D, t, -TE_ELIMIT, "%s is %zu bytes, more than %u",
			    what, n, max);
	*s = (struct te_str){ room(D), (uint32_t)n };
	D->used += n + 1;
	return 0;
}

/* pre KEY post, the key as it is written in the line (at most 64 bytes). */
static void key_what(const struct te_json_doc *doc, unsigned k,
		     const char *pre, const char *post, char *buf, size_t cap)
{
	const struct te_json_tok *t = &doc->tok[k];
	int n = te_json_show_len(doc->text + t->start, t->end - t->start);

	snprintf(buf, cap, "%s%.*s%s%s", pre, n, doc->text + t->start,
		 n < (int)(t->end - t->start) ? "..." : "", post);
}

static int take_props(struct dec *D, unsigned obj, struct te_msg *m)
{
	const struct te_json_doc *doc = &D->doc;
	struct te_prop *p = D->sc->props;
	char what[96], name[96];
	int r;

	if (doc->tok[obj].size > TE_MSG_PROPS_MAX)
		return FAIL(D, obj, -TE_ELIMIT, "properties: more than %u",
			    TE_MSG_PROPS_MAX);
	TE_JSON_FOREACH_MEMBER(doc, obj, k, v) {
		key_what(doc, k, "properties.", "", what, sizeof(what));
		key_what(doc, k, "property name \"", "\"", name, sizeof(name));
		if (doc->tok[k].start == doc->tok[k].end)
			return FAIL(D, k, -TE_EMALFORMED,
				    "properties: a name must not be empty");
		if (doc->tok[v].type != TE_JSON_STRING)
			return FAIL(D, v, -TE_EMALFORMED, "%s must be a string",
				    what);
		if ((r = take_str(D, k, name, TE_WIRE_STR_MAX, &p->key)) ||
		    (r = take_str(D, v, what, TE_WIRE_STR_MAX, &p->val)))
			return r;
		p++;
	}
	m->props = D->sc->props;
	m->nprops = doc->tok[obj].size;
	return 0;
}

static int set_body(struct dec *D, unsigned t, const char *what, size_t n,
		    struct te_msg *m)
{
	if (n > TE_MSG_BODY_MAX)
		return FAIL(D, t, -TE_ELIMIT, "%s %zu bytes, more than %u",
			    what, n, TE_MSG_BODY_MAX);
	m->body = room(D);
	m->bodylen = (uint32_t)n;
	room(D)[n] = 0;
	D->used += n + 1;
	return 0;
}

/* "body": a string is the body's bytes (\u0000 allowed). */
static int body_string(struct dec *D, unsigned t, struct te_msg *m)
{
	size_t n;

	if (te_json_bytes(&D->doc, t, room(D), sizeof(D->sc->buf) - D->used - 1,
			  &n))
		return FAIL(D, t, -TE_ELIMIT, "body: line buffer full");
	return set_body(D, t, "body is", n, m);
}

/* "body": any other JSON value is the body as its JSON text; the content
 * type and encoding say so unless the line gives them. */
static int body_json(struct dec *D, unsigned t, struct te_msg *m)
{
	const struct te_json_tok *k = &D->doc.tok[t];
	size_t n = k->end - k->start;
	struct te_str *ct = &m->sys[TE_SYS_CONTENT_TYPE];
	struct te_str *ce = &m->sys[TE_SYS_CONTENT_ENCODING];

	memcpy(room(D), D->doc.text + k->start, n);
	if (!ct->p)
		*ct = (struct te_str){ json_type, sizeof(json_type) - 1 };
	if (!ce->p)
		*ce = (struct te_str){ json_encoding, sizeof(json_encoding) - 1 };
	return set_body(D, t, "body is", n, m);
}

/* "bodyBase64": unescaped, then decoded in place. Offsets into the
 * unescaped text are columns too when the string has no escapes. */
static int body_base64(struct dec *D, unsigned t, struct te_msg *m)
{
	const struct te_json_tok *k = &D->doc.tok[t];
	size_t n, len, bad, off;
	int r;

	if (te_json_bytes(&D->doc, t, room(D), sizeof(D->sc->buf) - D->used - 1,
			  &n))
		return FAIL(D, t, -TE_ELIMIT, "bodyBase64: line buffer full");
	r = te_base64_decode(room(D), n, room(D), n, &len, &bad);
	off = n == k->end - k->start ? k->start + bad : tok_off(&D->doc, t);
	if (r == -TE_ENEEDMORE)
		return fail_at(D, off, -TE_EMALFORMED,
			       "bodyBase64: length is not a multiple of 4");
	if (r)
		return fail_at(D, off, -TE_EMALFORMED,
			       "bodyBase64: invalid base64");
	return set_body(D, t, "bodyBase64 decodes to", len, m);
}

static int take_body(struct dec *D, const int *tb, struct te_msg *m)
{
	int b = tb[F_BODY], b64 = tb[F_BODY64];

	if (b >= 0 && b64 >= 0)
		return FAIL(D, (unsigned)(b > b64 ? b : b64), -TE_EMALFORMED,
			    "body and bodyBase64 exclude each other");
	if (b64 >= 0)
		return body_base64(D, (unsigned)b64, m);
	if (b < 0)
		return 0;
	if (D->doc.tok[b].type == TE_JSON_STRING)
		return body_string(D, (unsigned)b, m);
	return body_json(D, (unsigned)b, m);
}

static void line_policy(struct te_json_policy *pol)
{
	pol[F_OUTPUT] = (struct te_json_policy){ "output", TE_JSON_STRING,
						 TE_JSON_REQUIRED };
	pol[F_PROPS] = (struct te_json_policy){ "properties", TE_JSON_OBJECT, 0 };
	pol[F_BODY] = (struct te_json_policy){ "body", 0, 0 };
	pol[F_BODY64] = (struct te_json_policy){ "bodyBase64", TE_JSON_STRING, 0 };
	for (unsigned i = 0; i < NSYS; i++)
		pol[F_SYS + i] = (struct te_json_policy){
			te_sysprop_name(line_sys[i]), TE_JSON_STRING, 0 };
}

/* The fields of a line that passed its policy table. System properties
 * come before the body, whose defaults depend on them. */
static int take_fields(struct dec *D, const int *tb, struct te_msg *m)
{
	struct te_str *out = &m->sys[TE_SYS_OUTPUT_NAME];
	int r;

	if ((r = take_str(D, (unsigned)tb[F_OUTPUT], "output", TE_WIRE_STR_MAX,
			  out)))
		return r;
	if (!out->n)
		return FAIL(D, (unsigned)tb[F_OUTPUT], -TE_EMALFORMED,
			    "output must not be empty");
	for (unsigned i = 0; i < NSYS; i++)
		if (tb[F_SYS + i] >= 0 &&
		    (r = take_str(D, (unsigned)tb[F_SYS + i],
				  te_sysprop_name(line_sys[i]), TE_WIRE_STR_MAX,
				  &m->sys[line_sys[i]])))
			return r;
	if (tb[F_PROPS] >= 0 && (r = take_props(D, (unsigned)tb[F_PROPS], m)))
		return r;
	return take_body(D, tb, m);
}

/* Parse and check the shape: a JSON object with known keys. */
static int line_parse(struct dec *D, const char *line, size_t len, int *tb)
{
	struct te_json_policy pol[F_N];
	const char *nl = len ? memchr(line, '\n', len) : NULL;
	char what[32];
	int r;

	if (len > TE_STDIO_LINE_MAX)
		return fail_at(D, TE_STDIO_LINE_MAX, -TE_ELIMIT,
			       "line longer than %u bytes", TE_STDIO_LINE_MAX);
	if (nl)
		return fail_at(D, (size_t)(nl - line), -TE_EMALFORMED,
			       "line feed inside the line");
	r = te_json_parse_buf(&D->doc, "line", line, len, &line_limits,
			      D->sc->tok, TE_STDIO_LINE_TOKENS, &D->diag);
	if (r)
		return r;
	if (D->doc.tok[0].type != TE_JSON_OBJECT) {
		te_json_types_text(D->doc.tok[0].type, what, sizeof(what));
		return FAIL(D, 0, -TE_EMALFORMED,
			    "a line must be a JSON object, not %s", what);
	}
	line_policy(pol);
	if (te_json_read_object(&D->doc, 0, "", pol, F_N, tb, &D->diag))
		return -TE_EMALFORMED;
	return 0;
}

int te_stdio_line_decode(const char *line, size_t len,
			 struct te_stdio_scratch *sc, struct te_msg *out,
			 char *err, size_t errcap)
{
	struct dec D = { .diag = { .emit = dec_emit }, .sc = sc, .err = err,
			 .errcap = errcap };
	int tb[F_N], r;

	D.diag.ctx = &D;
	memset(out, 0, sizeof(*out));
	if (errcap)
		err[0] = 0;
	if (len && line[len - 1] == '\r')
		len--;
	r = line_parse(&D, line, len, tb);
	if (!r) {
		out->origin = TE_ORIGIN_MODULE;
		r = take_fields(&D, tb, out);
	}
	if (r)
		memset(out, 0, sizeof(*out));
	te_json_free(&D.doc);
	return r;
}

/* ---- encode ----------------------------------------------------------------- */

/* Bytes of a JSON string of n bytes at worst: quotes, each byte \u00XX. */
static size_t str_worst(size_t n)
{
	return 2 + 6 * n;
}

static int str_check(const struct te_str *s)
{
	if (s->n > TE_WIRE_STR_MAX)
		return -TE_ELIMIT;
	return !s->p && s->n ? -TE_EINVALID : 0;
}

static int props_size(const struct te_msg *m, size_t *size)
{
	int r;

	if (m->nprops > TE_MSG_PROPS_MAX)
		return -TE_ELIMIT;
	if (m->nprops && !m->props)
		return -TE_EINVALID;
	if (m->nprops)
		*size += 16; /* ,"properties":{} */
	for (uint32_t i = 0; i < m->nprops; i++) {
		const struct te_prop *p = &m->props[i];

		if ((r = str_check(&p->key)) || (r = str_check(&p->val)))
			return r;
		if (!p->key.n)
			return -TE_EINVALID;
		*size += 2 + str_worst(p->key.n) + str_worst(p->val.n);
	}
	return 0;
}

int te_stdio_line_size(const struct te_msg *m, size_t *size)
{
	const struct te_str *in = &m->sys[TE_SYS_INPUT_NAME];
	size_t z = 4 + 8 + str_worst(in->n), b64; /* {} \n NUL "input": */
	int r;

	if ((r = str_check(in)))
		return r;
	if (!in->n)
		return -TE_EINVALID;
	for (unsigned i = 0; i < NSYS; i++) {
		const struct te_str *s = &m->sys[line_sys[i]];

		if ((r = str_check(s)))
			return r;
		if (s->p) /* ,"name": */
			z += 4 + strlen(te_sysprop_name(line_sys[i])) +
			     str_worst(s->n);
	}
	if ((r = props_size(m, &z)))
		return r;
	if (m->bodylen > TE_MSG_BODY_MAX)
		return -TE_ELIMIT;
	if (m->bodylen && !m->body)
		return -TE_EINVALID;
	b64 = te_base64_len(m->bodylen) + 2;
	z += 14 + (b64 > str_worst(m->bodylen) ? b64 : str_worst(m->bodylen));
	*size = z;
	return 0;
}

static void put_str(struct te_jw *w, const char *key, const struct te_str *s)
{
	if (!s->p)
		return;
	te_jw_key(w, key);
	te_jw_strn(w, s->p, s->n);
}

/* A string when the body is text JSON can carry as is, else base64. */
static void put_body(struct te_jw *w, const struct te_msg *m)
{
	if (!m->bodylen) {
		te_jw_kstr(w, "body", "");
	} else if (!memchr(m->body, 0, m->bodylen) &&
		   te_json_utf8_valid(m->body, m->bodylen)) {
		te_jw_key(w, "body");
		te_jw_strn(w, m->body, m->bodylen);
	} else {
		te_jw_key(w, "bodyBase64");
		te_jw_base64(w, m->body, m->bodylen);
	}
}

int te_stdio_line_encode(const struct te_msg *m, char *buf, size_t cap,
			 size_t *len)
{
	struct te_jw w;
	size_t need;
	int r = te_stdio_line_size(m, &need);

	if (r)
		return r;
	te_jw_init(&w, buf, cap);
	te_jw_obj_open(&w);
	put_str(&w, "input", &m->sys[TE_SYS_INPUT_NAME]);
	for (unsigned i = 0; i < NSYS; i++)
		put_str(&w, te_sysprop_name(line_sys[i]), &m->sys[line_sys[i]]);
	if (m->nprops) {
		te_jw_key(&w, "properties");
		te_jw_obj_open(&w);
		for (uint32_t i = 0; i < m->nprops; i++) {
			te_jw_keyn(&w, m->props[i].key.p, m->props[i].key.n);
			te_jw_strn(&w, m->props[i].val.p ? m->props[i].val.p : "",
				   m->props[i].val.n);
		}
		te_jw_obj_close(&w);
	}
	put_body(&w, m);
	te_jw_obj_close(&w);
	if ((r = te_jw_finish(&w)))
		return r;
	if (cap - w.len < 2)
		return -TE_ENOSPACE;
	buf[w.len] = '\n';
	buf[w.len + 1] = 0;
	*len = w.len + 1;
	return 0;
}
