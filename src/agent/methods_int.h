/* Shared by methods.c and methods_logs.c: one method call and the request
 * field readers. A reader that finds a problem records it (the first one
 * wins) and returns -1; the handler then answers 400 with that message. */
#ifndef TE_METHODS_INT_H
#define TE_METHODS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/json.h"
#include "methods.h"

struct te_mreq {
	struct te_agent *ag;
	const struct te_json_doc *doc; /* the request; NULL: no payload */
	char **out;
	size_t *outlen;
	char msg[480];                 /* the first problem found */
};

int te_mreq_bad(struct te_mreq *q, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Answer status with {"message": q->msg}. */
unsigned te_mreq_error(struct te_mreq *q, unsigned status);

/* The payload is an object with a schemaVersion of major version 1. */
int te_mreq_root(struct te_mreq *q);

/* Value token of key in object obj, the key compared without case; -1. */
int te_mreq_member(const struct te_json_doc *d, unsigned obj, const char *key);

/* A string member into buf: 1 present, 0 absent (and not required), -1
 * invalid. path prefixes the key in messages ("items[0].filter."). */
int te_mreq_str(struct te_mreq *q, unsigned obj, const char *path,
		const char *key, char *buf, size_t cap, bool required);
/* A non-negative integer member up to max (a number, or a string of
 * digits as Newtonsoft reads it): 1, 0 or -1 as above. */
int te_mreq_uint(struct te_mreq *q, unsigned obj, const char *path,
		 const char *key, int64_t max, int64_t *v);

unsigned te_method_get_logs(struct te_mreq *q);

uint64_t te_mreq_now_ms(void);

#endif
