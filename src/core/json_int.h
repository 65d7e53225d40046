/* Private to the src/core/json*.c files. */
#ifndef TE_JSON_INT_H
#define TE_JSON_INT_H

#include <stddef.h>
#include <stdint.h>

#include "json.h"

/* Length of the valid UTF-8 sequence at s (n bytes available), 1-4, or 0
 * if it is not valid UTF-8 (overlong, surrogate, > U+10FFFF, truncated). */
unsigned te_json_utf8_len(const unsigned char *s, size_t n);

/* Decode one character of a validated string body at s[*i] into out (4
 * bytes) and advance *i past it; returns its UTF-8 length. */
unsigned te_json_str_unit(const unsigned char *s, size_t *i, char *out);

/* Byte-at-a-time view of an unescaped string token. */
struct te_json_ustr {
	const unsigned char *s;
	size_t i, end;
	char b[4];
	unsigned n, k;
};

void te_json_ustr_init(struct te_json_ustr *u, const struct te_json_doc *doc,
		       unsigned t);
/* Next byte of the unescaped string, or -1 at its end. */
int te_json_ustr_get(struct te_json_ustr *u);

/* The first key (in document order) of object obj that repeats an
 * earlier key, or UINT32_MAX. Uses the key tokens' size fields as scratch
 * and leaves them as they were (0): no allocation. */
uint32_t te_json_dup_key(struct te_json_doc *doc, uint32_t obj);

#endif
