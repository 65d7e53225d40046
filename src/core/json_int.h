/* Private to the JSON code (json*.c). */
#ifndef TE_JSON_INT_H
#define TE_JSON_INT_H

#include <stddef.h>

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

/* How many bytes of s[0..n) to quote in a message (at most 64, not
 * splitting a UTF-8 sequence). */
int te_json_show_len(const char *s, size_t n);

#endif
