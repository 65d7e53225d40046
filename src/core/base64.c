/* Base64 (RFC 4648); see base64.h. */
#include <stdint.h>

#include "base64.h"
#include "err.h"

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t te_base64_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

int te_base64_encode(const void *in, size_t n, char *out, size_t cap,
		     size_t *outlen)
{
	const unsigned char *s = in;
	size_t len = te_base64_len(n), i, o = 0;
	uint32_t v;

	if (len > cap)
		return -TE_ENOSPACE;
	for (i = 0; i + 3 <= n; i += 3, o += 4) {
		v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		out[o] = alphabet[v >> 18];
		out[o + 1] = alphabet[v >> 12 & 63];
		out[o + 2] = alphabet[v >> 6 & 63];
		out[o + 3] = alphabet[v & 63];
	}
	if (i < n) {
		v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
		out[o] = alphabet[v >> 18];
		out[o + 1] = alphabet[v >> 12 & 63];
		out[o + 2] = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
		out[o + 3] = '=';
	}
	if (outlen)
		*outlen = len;
	return 0;
}

/* Value of an alphabet character, or -1. */
static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

static int fail(size_t *bad, size_t at, int err)
{
	if (bad)
		*bad = at;
	return err;
}

/* The padding that starts at s[i] (group position k = 2 or 3), after the
 * group's data in v (k characters). Returns the bytes it leaves, or an
 * error. */
static int pad_check(const unsigned char *s, size_t i, size_t n, unsigned k,
		     uint32_t v, size_t *bad)
{
	/* xx== keeps 8 of 12 bits, xxx= 16 of 18: the rest must be 0 */
	if (v & (k == 2 ? 0xf : 0x3))
		return fail(bad, i - 1, -TE_EMALFORMED);
	if (k == 2) {
		if (i + 1 == n)
			return fail(bad, n, -TE_ENEEDMORE);
		if (s[i + 1] != '=')
			return fail(bad, i + 1, -TE_EMALFORMED);
		i++;
	}
	if (i + 1 < n)
		return fail(bad, i + 1, -TE_EMALFORMED);
	return (int)k - 1;
}

/* Each group's bytes are written only after its four characters are read,
 * and 3 bytes per 4 characters never overtake the reading: in place works. */
int te_base64_decode(const char *in, size_t n, void *out, size_t cap,
		     size_t *outlen, size_t *bad)
{
	const unsigned char *s = (const unsigned char *)in;
	unsigned char *o = out;
	size_t i, w = 0;
	uint32_t v = 0;
	int x;

	for (i = 0; i < n; i++) {
		unsigned k = i & 3;

		if (s[i] == '=' && k >= 2) {
			if ((x = pad_check(s, i, n, k, v, bad)) < 0)
				return x;
			if ((size_t)x > cap - w)
				return fail(bad, i - k, -TE_ENOSPACE);
			o[w] = (unsigned char)(v >> (k == 2 ? 4 : 10));
			if (x == 2)
				o[w + 1] = (unsigned char)(v >> 2);
			w += (size_t)x;
			break;
		}
		if ((x = b64_val(s[i])) < 0)
			return fail(bad, i, -TE_EMALFORMED);
		v = v << 6 | (uint32_t)x;
		if (k < 3)
			continue;
		if (cap - w < 3)
			return fail(bad, i - 3, -TE_ENOSPACE);
		o[w] = (unsigned char)(v >> 16);
		o[w + 1] = (unsigned char)(v >> 8);
		o[w + 2] = (unsigned char)v;
		w += 3;
		v = 0;
	}
	if (i == n && n % 4)
		return fail(bad, n, -TE_ENEEDMORE);
	if (outlen)
		*outlen = w;
	return 0;
}

int te_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}
