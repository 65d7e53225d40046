/* Typed field readers over a validated JSON document: each converts one
 * token, checks it against bounds, and on failure reports a message that
 * names the field ("upstream.port must be an integer from 1 to 65535") at
 * the token's line and column. All return 0 or -TE_EINVALID (reported). */
#ifndef TE_JVALUE_H
#define TE_JVALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"

/* A string that fits cap bytes with its NUL (and is not empty unless
 * allow_empty). */
int te_jv_str(const struct te_json_doc *doc, unsigned t, const char *what,
	      char *buf, size_t cap, bool allow_empty, struct te_diag *diag);
/* An integer within [min, max]. */
int te_jv_int(const struct te_json_doc *doc, unsigned t, const char *what,
	      int64_t min, int64_t max, int64_t *out, struct te_diag *diag);
int te_jv_bool(const struct te_json_doc *doc, unsigned t, const char *what,
	       bool *out, struct te_diag *diag);
/* A string equal to one of names[0..n); *out gets its index. */
int te_jv_enum(const struct te_json_doc *doc, unsigned t, const char *what,
	       const char *const *names, unsigned n, unsigned *out,
	       struct te_diag *diag);

#endif
