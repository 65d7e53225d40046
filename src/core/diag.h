/* Diagnostics: where input validation reports its findings.
 *
 * A validator reports every problem it finds (not just the first) through a
 * struct te_diag; the sink decides what to do with each: print
 * "file:line:col: message" (te_diag_stderr) or collect them (check --json). */
#ifndef TE_DIAG_H
#define TE_DIAG_H

#include <stdarg.h>

struct te_diag {
	/* Called once per problem; file may be NULL, line/col 0 when unknown.
	 * NULL: only count (a zeroed struct te_diag is a quiet sink). */
	void (*emit)(struct te_diag *d, const char *file, unsigned line,
		     unsigned col, const char *msg);
	void *ctx;
	unsigned errors; /* problems reported so far */
};

/* A sink that prints "file:line:col: msg" lines to stderr. */
void te_diag_init_stderr(struct te_diag *d);

/* Report one problem (message truncated at 480 bytes). */
void te_diag_report(struct te_diag *d, const char *file, unsigned line,
		    unsigned col, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void te_diag_vreport(struct te_diag *d, const char *file, unsigned line,
		     unsigned col, const char *fmt, va_list ap);

/* Format "file:line:col: msg" into buf (NUL-terminated, truncated to cap). */
void te_diag_format(char *buf, unsigned long cap, const char *file,
		    unsigned line, unsigned col, const char *msg);

#endif
