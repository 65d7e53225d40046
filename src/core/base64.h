/* Base64 (RFC 4648 section 4: the standard alphabet, '=' padding) over
 * caller buffers: no allocation, no I/O.
 *
 * Decoding is strict, so that every byte string has exactly one accepted
 * encoding: the input is whole 4-character groups of the alphabet, '='
 * only as the last one or two characters, the unused bits before the
 * padding zero (RFC 4648 section 3.5), and nothing else (no whitespace, no
 * line breaks, no URL-safe alphabet). */
#ifndef TE_BASE64_H
#define TE_BASE64_H

#include <stddef.h>

/* Characters that n bytes encode to: 4 * ceil(n / 3). n must be below
 * SIZE_MAX / 4 * 3. */
size_t te_base64_len(size_t n);

/* Encode in[0..n) into out: te_base64_len(n) characters, no NUL. 0 with
 * *outlen (may be NULL) = characters written, or -TE_ENOSPACE if cap is
 * smaller (nothing written). */
int te_base64_encode(const void *in, size_t n, char *out, size_t cap,
		     size_t *outlen);

/* Decode in[0..n) into out; out may equal in (decoding in place).
 * 0 with *outlen (may be NULL) = bytes written (at most n / 4 * 3). Errors, with *bad
 * (may be NULL) = offset in in of the first character in error:
 *   -TE_EMALFORMED  a character outside the alphabet, '=' where it cannot
 *                   be, a character after the padding, or non-zero bits
 *                   before the padding (*bad: the character holding them);
 *   -TE_ENEEDMORE   n is not a multiple of 4 but what is there is a valid
 *                   beginning (*bad = n);
 *   -TE_ENOSPACE    cap is too small for the decoded bytes (*bad: the
 *                   group that did not fit).
 * On error out holds an unspecified prefix. */
int te_base64_decode(const char *in, size_t n, void *out, size_t cap,
		     size_t *outlen, size_t *bad);

/* The value of hex digit c (either case), or -1. */
int te_hexval(int c);

#endif
