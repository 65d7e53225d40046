#include <stdio.h>

#include "diag.h"

void te_diag_format(char *buf, unsigned long cap, const char *file,
		    unsigned line, unsigned col, const char *msg)
{
	if (file && line)
		snprintf(buf, cap, "%s:%u:%u: %s", file, line, col, msg);
	else if (file)
		snprintf(buf, cap, "%s: %s", file, msg);
	else
		snprintf(buf, cap, "%s", msg);
}

static void diag_stderr(struct te_diag *d, const char *file, unsigned line,
			unsigned col, const char *msg)
{
	char buf[1024];

	(void)d;
	te_diag_format(buf, sizeof(buf), file, line, col, msg);
	fprintf(stderr, "%s\n", buf);
}

void te_diag_init_stderr(struct te_diag *d)
{
	d->emit = diag_stderr;
	d->ctx = NULL;
	d->errors = 0;
}

void te_diag_vreport(struct te_diag *d, const char *file, unsigned line,
		     unsigned col, const char *fmt, va_list ap)
{
	char msg[480];

	d->errors++;
	if (!d->emit)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	d->emit(d, file, line, col, msg);
}

void te_diag_report(struct te_diag *d, const char *file, unsigned line,
		    unsigned col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	te_diag_vreport(d, file, line, col, fmt, ap);
	va_end(ap);
}
