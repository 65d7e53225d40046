/* Unit tests for src/core/base64.c: RFC 4648 test vectors, strict
 * decoding (every byte string has exactly one accepted encoding), buffer
 * bounds, decoding in place. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "err.h"
#include "tap.h"

/* RFC 4648 section 10. */
static const struct {
	const char *plain, *enc;
} vectors[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

static void test_vectors(void)
{
	char out[32];
	size_t n;

	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const char *p = vectors[i].plain, *e = vectors[i].enc;

		memset(out, 'Z', sizeof(out));
		TAP_OK(te_base64_encode(p, strlen(p), out, sizeof(out), &n) == 0 &&
		       n == strlen(e) && !memcmp(out, e, n) && out[n] == 'Z',
		       "encode \"%s\" = \"%s\"", p, e);
		TAP_EQ_INT(te_base64_len(strlen(p)), strlen(e), "length of \"%s\"", p);
		memset(out, 'Z', sizeof(out));
		TAP_OK(te_base64_decode(e, strlen(e), out, sizeof(out), &n, NULL) == 0 &&
		       n == strlen(p) && !memcmp(out, p, n) && out[n] == 'Z',
		       "decode \"%s\" = \"%s\"", e, p);
	}
}

/* The input with unprintable bytes as \xNN, for test names. */
static const char *show(const char *s, size_t n)
{
	static char buf[128];
	size_t w = 0;

	for (size_t i = 0; i < n && w < sizeof(buf) - 5; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '#')
			buf[w++] = (char)c;
		else
			w += (size_t)snprintf(buf + w, 5, "\\x%02x", c);
	}
	buf[w] = 0;
	return buf;
}

/* in[0..len) is rejected with err, the first bad character at at. */
static void bad_n(const char *in, size_t len, int err, size_t at)
{
	unsigned char out[64];
	size_t n = 0, where = 999;
	int r = te_base64_decode(in, len, out, sizeof(out), &n, &where);

	TAP_OK(r == err && where == at, "reject \"%s\" at %zu", show(in, len), at);
	if (r != err || where != at)
		printf("#   got %d at %zu\n", r, where);
}

static void bad(const char *in, int err, size_t at)
{
	bad_n(in, strlen(in), err, at);
}

static void test_strict(void)
{
	bad("Zg=", -TE_ENEEDMORE, 3);
	bad("Zm9", -TE_ENEEDMORE, 3);
	bad("Z", -TE_ENEEDMORE, 1);
	bad("Zm9vY", -TE_ENEEDMORE, 5);
	bad("Zh==", -TE_EMALFORMED, 1);      /* bits after the 8 kept */
	bad("Zm9=", -TE_EMALFORMED, 2);      /* bits after the 16 kept */
	bad("Zh=", -TE_EMALFORMED, 1);       /* non-zero bits come first */
	bad("Zm9v\n", -TE_EMALFORMED, 4);
	bad("Zm9v\r\n", -TE_EMALFORMED, 4);
	bad("Zm 9v", -TE_EMALFORMED, 2);
	bad(" Zm9v", -TE_EMALFORMED, 0);
	bad("Z===", -TE_EMALFORMED, 1);
	bad("=", -TE_EMALFORMED, 0);
	bad("====", -TE_EMALFORMED, 0);
	bad("Zg==Zg==", -TE_EMALFORMED, 4);  /* nothing after the padding */
	bad("Zm8=A", -TE_EMALFORMED, 4);
	bad("Zg==\n", -TE_EMALFORMED, 4);
	bad("Zg=A", -TE_EMALFORMED, 3);
	bad("Zg===", -TE_EMALFORMED, 4);
	bad("Zm9v-_8=", -TE_EMALFORMED, 4);  /* the URL-safe alphabet */
	bad("Zm9v\x80", -TE_EMALFORMED, 4);
	bad_n("Zm\0v", 4, -TE_EMALFORMED, 2);
}

/* Exhaustive over the padded final groups: a group is accepted exactly
 * when it is the encoding of what it decodes to. */
static void test_canonical(void)
{
	static const char a[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned ok2 = 0, ok3 = 0, wrong = 0;
	char g[4], back[4];
	unsigned char out[3];
	size_t n;

	for (int i = 0; i < 64 * 64; i++) {
		memcpy(g, (char[]){ a[i / 64], a[i % 64], '=', '=' }, 4);
		if (te_base64_decode(g, 4, out, 3, &n, NULL) == 0) {
			ok2++;
			te_base64_encode(out, n, back, 4, NULL);
			wrong += n != 1 || memcmp(back, g, 4);
		}
	}
	for (int i = 0; i < 64 * 64 * 64; i++) {
		memcpy(g, (char[]){ a[i / 4096], a[i / 64 % 64], a[i % 64], '=' }, 4);
		if (te_base64_decode(g, 4, out, 3, &n, NULL) == 0) {
			ok3++;
			te_base64_encode(out, n, back, 4, NULL);
			wrong += n != 2 || memcmp(back, g, 4);
		}
	}
	TAP_EQ_INT(ok2, 256, "xx== accepted for exactly the 256 one-byte values");
	TAP_EQ_INT(ok3, 65536, "xxx= accepted for exactly the 65536 two-byte values");
	TAP_EQ_INT(wrong, 0, "and each re-encodes to itself");
}

static void test_round_trip(void)
{
	static unsigned char in[1027], out[1027];
	static char enc[1400];
	size_t n, m;
	unsigned bad = 0;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 7 + (i >> 8));
	for (size_t len = 0; len <= sizeof(in); len++) {
		if (te_base64_encode(in, len, enc, sizeof(enc), &n) ||
		    te_base64_decode(enc, n, out, sizeof(out), &m, NULL) ||
		    m != len || memcmp(in, out, len))
			bad++;
	}
	TAP_EQ_INT(bad, 0, "round trip of every length 0..1027");
	for (unsigned c = 0; c < 256; c++)
		in[c] = (unsigned char)c;
	TAP_OK(!te_base64_encode(in, 256, enc, sizeof(enc), &n) &&
	       !te_base64_decode(enc, n, enc, n, &m, NULL) && m == 256 &&
	       !memcmp(enc, in, 256), "every byte value, decoded in place");
}

static void test_bounds(void)
{
	char out[16];
	size_t n = 77, at = 0;

	memset(out, 'Z', sizeof(out));
	TAP_EQ_INT(te_base64_encode("foobar", 6, out, 7, &n), -TE_ENOSPACE,
		   "encode: cap one short");
	TAP_OK(out[0] == 'Z' && n == 77, "encode: nothing written");
	TAP_EQ_INT(te_base64_encode("foobar", 6, out, 8, NULL), 0,
		   "encode: exact cap, no outlen");
	TAP_EQ_INT(te_base64_decode("Zm9vYmFy", 8, out, 5, &n, &at), -TE_ENOSPACE,
		   "decode: cap one short");
	TAP_EQ_INT(at, 4, "decode: the group that did not fit");
	TAP_EQ_INT(te_base64_decode("Zm9vYg==", 8, out, 3, &n, &at), -TE_ENOSPACE,
		   "decode: no room for the padded group");
	TAP_EQ_INT(at, 4, "decode: at the padded group");
	TAP_EQ_INT(te_base64_decode("Zm9vYg==", 8, out, 4, &n, NULL), 0,
		   "decode: padded group in exactly its room");
	TAP_EQ_INT(te_base64_decode("", 0, NULL, 0, &n, NULL), 0, "decode: empty");
	TAP_EQ_INT(n, 0, "decode: empty is 0 bytes");
}

static void test_hexval(void)
{
	int bad = 0;

	for (int c = -128; c < 256; c++) {
		int want = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			   c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

		bad += te_hexval(c) != want;
	}
	TAP_EQ_INT(bad, 0, "te_hexval: 0-9, a-f, A-F and -1 for anything else");
}

int main(void)
{
	test_hexval();
	test_vectors();
	test_strict();
	test_canonical();
	test_round_trip();
	test_bounds();
	return tap_done();
}
