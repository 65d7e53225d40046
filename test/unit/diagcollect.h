/* A te_diag sink for tests: remembers every message as "line:col: msg". */
#ifndef TE_DIAGCOLLECT_H
#define TE_DIAGCOLLECT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/diag.h"

struct collect {
	struct te_diag diag;
	char text[16384]; /* all messages, one per line */
	size_t len;
};

static void collect_emit(struct te_diag *d, const char *file, unsigned line,
			 unsigned col, const char *msg)
{
	struct collect *c = (struct collect *)d;
	int n = snprintf(c->text + c->len, sizeof(c->text) - c->len, "%u:%u: %s\n",
			 line, col, msg);

	if (n > 0 && c->len + (size_t)n < sizeof(c->text))
		c->len += (size_t)n;
}

static inline void collect_init(struct collect *c)
{
	memset(c, 0, sizeof(*c));
	c->diag.emit = collect_emit;
}

static inline int collect_has(const struct collect *c, const char *needle)
{
	return strstr(c->text, needle) != NULL;
}

/* Write text to a fresh temporary file; returns its path (static buffer). */
static inline const char *tmpfile_with(const char *text)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/te-unit-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		perror("tmpfile_with");
		exit(2);
	}
	close(fd);
	return path;
}

#endif
