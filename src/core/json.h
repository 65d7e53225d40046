/* JSON: a validating reader on top of jsmn, and a writer into caller buffers.
 *
 * Reader. te_json_parse() tokenizes with jsmn and then validates what jsmn
 * does not (it accepts {"a" "b"}, [1,], {}{}, [01], raw control characters,
 * lone surrogates, and stops at a NUL): after it returns 0 the document is
 * strict RFC 8259 JSON with no duplicate object keys, within the limits, and
 * every token can be trusted. Size and depth are capped *before* jsmn runs
 * (jsmn is quadratic in nesting depth).
 *
 * Tokens form a flat array in document order; tok[0] is the root. A
 * container's children follow it; tok[i].next is the index just past i's
 * whole subtree, so siblings are walked in O(1) each:
 *
 *   TE_JSON_FOREACH_MEMBER(doc, obj, k, v) { key token k, value token v }
 *   TE_JSON_FOREACH_ELEM(doc, arr, e)      { element token e }
 *
 * Policy tables (as libubox's blobmsg_policy) read an object in one call:
 * every key is checked against the table (unknown keys are an error), each
 * value's type against the field's mask, required fields must be present;
 * every problem goes to a struct te_diag as "file:line:col: message".
 *
 * Writer. struct te_jw writes compact JSON into a caller buffer with correct
 * escaping; errors (overflow, misuse) are sticky and reported by
 * te_jw_finish(). No allocation.
 */
#ifndef TE_JSON_H
#define TE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"

/* Token types are bits so a policy can accept several (object or string). */
enum te_json_type {
	TE_JSON_NULL = 1u << 0,
	TE_JSON_BOOL = 1u << 1,
	TE_JSON_NUMBER = 1u << 2,
	TE_JSON_STRING = 1u << 3,
	TE_JSON_OBJECT = 1u << 4,
	TE_JSON_ARRAY = 1u << 5,
};

struct te_json_tok {
	uint8_t type;   /* one enum te_json_type bit */
	uint32_t start; /* byte offset; for strings, just inside the quotes */
	uint32_t end;   /* byte offset one past the end (before closing quote) */
	uint32_t size;  /* object: member count; array: element count; else 0 */
	uint32_t next;  /* index of the first token after this subtree */
};

struct te_json_limits {
	size_t max_bytes;    /* input size cap */
	unsigned max_tokens; /* token count cap */
	unsigned max_depth;  /* nesting cap: a scalar root is depth 0, [] is 1 */
};

/* 1 MiB, 65536 tokens, depth 32. */
extern const struct te_json_limits te_json_default_limits;

struct te_json_doc {
	const char *name;        /* for messages ("manifest.json"); not owned */
	const char *text;        /* the input; owned only if te_json_load_file */
	size_t len;
	struct te_json_tok *tok; /* ntok tokens */
	unsigned ntok;
	bool own_tok;            /* tok was malloc'd by te_json_parse */
	char *owned;             /* text buffer owned by the doc, or NULL */
};

/* Parse and validate text[0..len) (need not be NUL-terminated; an embedded
 * NUL byte is an error). name is used in messages and must outlive doc.
 * On error reports exactly one problem to diag with its line and column and
 * returns -TE_EMALFORMED, -TE_ELIMIT, or -ENOMEM; doc is then empty (safe to
 * te_json_free). text must outlive doc. lim NULL = defaults. */
int te_json_parse(struct te_json_doc *doc, const char *name, const char *text,
		  size_t len, const struct te_json_limits *lim,
		  struct te_diag *diag);

/* The same without allocating: the tokens go to the caller's array
 * tok[0..ntok), which doc->tok then points to (it must outlive doc, and is
 * not freed by te_json_free). A document of more than ntok tokens is
 * refused like one over lim->max_tokens ("more than N tokens", -TE_ELIMIT,
 * N the smaller of the two). Never -ENOMEM. tok's content is undefined
 * after an error. */
int te_json_parse_buf(struct te_json_doc *doc, const char *name,
		      const char *text, size_t len,
		      const struct te_json_limits *lim, struct te_json_tok *tok,
		      unsigned ntok, struct te_diag *diag);

/* Read path (at most lim->max_bytes) and parse it; the doc owns the buffer.
 * A read error is reported to diag as "path: strerror" and returned as
 * -errno. name defaults to path when NULL. */
int te_json_load_file(struct te_json_doc *doc, const char *path,
		      const char *name, const struct te_json_limits *lim,
		      struct te_diag *diag);

/* Release what the doc owns (tokens from te_json_parse, text from
 * te_json_load_file); doc becomes empty. Idempotent. */
void te_json_free(struct te_json_doc *doc);

/* 1-based line and column (in bytes) of a byte offset. */
void te_json_pos(const struct te_json_doc *doc, size_t off, unsigned *line,
		 unsigned *col);

/* Report a problem at token t (its opening quote for strings). */
void te_json_error(const struct te_json_doc *doc, struct te_diag *diag,
		   unsigned t, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* How many bytes of s[0..n) to quote in a message (at most 64, not
 * splitting a UTF-8 sequence): "%.*s" of a key's text. */
int te_json_show_len(const char *s, size_t n);

/* "string", "number", ... for one type bit; "a string or an object" style
 * text for a mask, written to buf. */
const char *te_json_type_name(unsigned type);
void te_json_types_text(unsigned mask, char *buf, size_t cap);

/* Value of a string token, unescaped, NUL-terminated in buf.
 * -TE_ENOSPACE if it does not fit (buf then holds a truncated prefix),
 * -TE_EINVALID if it contains \u0000 (cannot be a C string),
 * -TE_EMALFORMED if t is not a string. *len (may be NULL) gets the length. */
int te_json_str(const struct te_json_doc *doc, unsigned t, char *buf,
		size_t cap, size_t *len);

/* The same as bytes: \u0000 is allowed (a NUL byte), nothing is appended.
 * -TE_ENOSPACE if it does not fit in cap (buf then holds a prefix),
 * -TE_EMALFORMED if t is not a string. *len (may be NULL) gets the full
 * length. */
int te_json_bytes(const struct te_json_doc *doc, unsigned t, char *buf,
		  size_t cap, size_t *len);

/* Same into a fresh malloc'd string (caller frees); NULL on error with
 * *err set as above (-ENOMEM when out of memory). */
char *te_json_strdup(const struct te_json_doc *doc, unsigned t, int *err);

/* Does string token t (unescaped) equal s? False for non-strings. */
bool te_json_streq(const struct te_json_doc *doc, unsigned t, const char *s);

/* Is s[0..n) valid UTF-8 (no overlong forms, surrogates or code points
 * past U+10FFFF)? NUL bytes are valid. */
bool te_json_utf8_valid(const void *s, size_t n);
/* Compare string tokens ta of a and tb of b (the documents may differ)
 * byte by byte, unescaped: < 0, 0 or > 0 as strcmp. Both must be strings
 * (keys are). */
int te_json_tok_strcmp(const struct te_json_doc *a, unsigned ta,
		       const struct te_json_doc *b, unsigned tb);

/* Integer value: a number token with no fraction or exponent, in range.
 * -TE_EMALFORMED if not an integer number, -ERANGE if out of int64 range. */
int te_json_int(const struct te_json_doc *doc, unsigned t, int64_t *out);

/* Number value as a double (any JSON number). -TE_EMALFORMED if not a number. */
int te_json_double(const struct te_json_doc *doc, unsigned t, double *out);

/* Boolean value. -TE_EMALFORMED if t is not true/false. */
int te_json_bool(const struct te_json_doc *doc, unsigned t, bool *out);

/* Value token of member key in object obj, or -1 (also if obj is not an
 * object). */
int te_json_get(const struct te_json_doc *doc, unsigned obj, const char *key);

#define TE_JSON_FOREACH_MEMBER(doc, obj, k, v)                                   \
	for (unsigned _n = 0, k = (obj) + 1, v = (obj) + 2;                      \
	     _n < (doc)->tok[obj].size;                                          \
	     _n++, k = (doc)->tok[v].next, v = k + 1)

#define TE_JSON_FOREACH_ELEM(doc, arr, e)                                        \
	for (unsigned _n = 0, e = (arr) + 1; _n < (doc)->tok[arr].size;          \
	     _n++, e = (doc)->tok[e].next)

/* Policy tables. */
enum { TE_JSON_REQUIRED = 1u << 0 };

struct te_json_policy {
	const char *name;
	unsigned types; /* mask of enum te_json_type; 0 = any */
	unsigned flags; /* TE_JSON_REQUIRED */
};

/* Check object token obj against pol[0..n): tb[i] gets the value token of
 * pol[i].name or -1 when absent. Reports, each at its position:
 *   - obj not an object:   "<what> must be an object"
 *   - an unknown key:      "unknown key \"foo\" in <what>"
 *   - a wrong value type:  "<what>.<name> must be a string" (or "a string
 *                          or an object" for masks)
 *   - a missing required:  "<what>: missing required key \"name\""
 * what names the object for humans ("modules.sensor"); it may be "" for the
 * root, in which case messages read "unknown key \"foo\"" and "name must
 * be a string". A field with a wrong type gets tb[i] = -1.
 * Returns the number of problems reported (0 = all good). */
unsigned te_json_read_object(const struct te_json_doc *doc, unsigned obj,
			     const char *what,
			     const struct te_json_policy *pol, unsigned n,
			     int *tb, struct te_diag *diag);

/* Writer. */
struct te_jw {
	char *buf;
	size_t cap;
	size_t len;       /* bytes written so far (excluding the NUL) */
	int err;          /* sticky: 0, -TE_ENOSPACE, or -TE_EINVALID (misuse) */
	unsigned depth;
	uint64_t comma;   /* bit d: container at depth d has an element */
	uint64_t is_obj;  /* bit d: container at depth d is an object */
	bool after_key;   /* a key was written, its value is due */
};

void te_jw_init(struct te_jw *w, char *buf, size_t cap);
void te_jw_obj_open(struct te_jw *w);
void te_jw_obj_close(struct te_jw *w);
void te_jw_arr_open(struct te_jw *w);
void te_jw_arr_close(struct te_jw *w);
void te_jw_key(struct te_jw *w, const char *key);
void te_jw_keyn(struct te_jw *w, const char *key, size_t n);
/* A key that is already a valid JSON string, quotes included (a string
 * token's span from its opening quote), copied verbatim. */
void te_jw_key_raw(struct te_jw *w, const char *json, size_t n);
/* Strings are escaped (", \, control characters); bytes that are not valid
 * UTF-8 are written as U+FFFD so the output is always valid JSON. */
void te_jw_str(struct te_jw *w, const char *s);
void te_jw_strn(struct te_jw *w, const char *s, size_t n);
void te_jw_int(struct te_jw *w, int64_t v);
void te_jw_uint(struct te_jw *w, uint64_t v);
void te_jw_double(struct te_jw *w, double v); /* non-finite -> null */
void te_jw_bool(struct te_jw *w, bool v);
void te_jw_null(struct te_jw *w);
/* A string holding the base64 (RFC 4648, padded) of data[0..n). */
void te_jw_base64(struct te_jw *w, const void *data, size_t n);
/* Convenience: key + value. */
void te_jw_kstr(struct te_jw *w, const char *key, const char *s);
void te_jw_kint(struct te_jw *w, const char *key, int64_t v);
void te_jw_kbool(struct te_jw *w, const char *key, bool v);
/* Copy a JSON value that is already valid (e.g. a token's span) verbatim. */
void te_jw_raw(struct te_jw *w, const char *json, size_t n);
/* NUL-terminate; returns w->err, or -TE_EINVALID if containers are open.
 * On success buf holds len bytes + NUL. */
int te_jw_finish(struct te_jw *w);

#endif
