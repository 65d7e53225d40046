/* Private to manifest.c and createopts.c: the parse context and helpers. */
#ifndef TE_MANIFEST_INT_H
#define TE_MANIFEST_INT_H

#include "core/json.h"
#include "manifest.h"

struct mf_ctx {
	struct te_manifest *m;
	const struct te_json_doc *doc;
	struct te_diag *diag;
	unsigned bad;   /* problems reported */
	bool oom;
};

/* Unescaped copy of string token t in the arena; NULL (and x->oom) when out
 * of memory. t must be a string token. */
const char *mf_str(struct mf_ctx *x, unsigned t);
/* A non-empty string no longer than max; reports "<what> ..." otherwise. */
const char *mf_str_checked(struct mf_ctx *x, unsigned t, const char *what,
			   size_t max);
/* An absolute path string (starts with '/'), at most PATH_MAX-1 bytes. */
const char *mf_path(struct mf_ctx *x, unsigned t, const char *what);
void *mf_alloc(struct mf_ctx *x, size_t n);
void mf_error(struct mf_ctx *x, unsigned t, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* settings.createOptions (object token, or the concatenated string form
 * already parsed into its own document). */
void mf_create_options(struct mf_ctx *x, struct te_module_spec *ms,
		       unsigned obj, const char *what);
/* Concatenate and parse the string form: toks[0..n) are the
 * createOptions, createOptions01, ... string tokens in order. */
void mf_create_options_string(struct mf_ctx *x, struct te_module_spec *ms,
			      const unsigned *toks, unsigned n,
			      const char *what);

#endif
