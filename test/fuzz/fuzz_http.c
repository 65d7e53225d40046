/* Fuzz target for the image downloader's codecs (images/imgcodec.h), mode
 * "http"; corpus in test/fuzz/corpus/http/.
 *
 * The first byte picks the codec, the rest is its input:
 *   'u'  an image reference (URL + fragment): a parsed one formats back to a
 *        URL that parses to the same struct;
 *   'h'  an HTTP response head: a parsed head lies within the bytes and
 *        parses the same from exactly its own bytes;
 *   'c'  a chunked body: decoded in one go and byte by byte, the same
 *        result and the same data, never longer than the input;
 *   'r'  a redirect Location against a fixed https base: a result never
 *        leaves https;
 *   'k'  a DER public key.
 * Anything else: every codec in turn. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "images/imgcodec.h"

#include "fuzz.h"

#define IN_MAX 20000

static void fuzz_ref(const uint8_t *d, size_t n)
{
	static char s[IN_MAX + 1], url[TE_URL_MAX + 1];
	static struct te_image_ref r, again;
	char err[256];

	memcpy(s, d, n);
	s[n] = '\0';
	if (te_image_ref_parse(s, &r, err, sizeof(err)) < 0)
		return;
	if (strlen(r.sha256) != TE_SHA256_HEX || r.siglen > sizeof(r.sig) || r.url.path[0] != '/')
		abort();
	if (te_url_format(&r.url, url, sizeof(url)) < 0)
		return;
	if (te_url_parse(url, strlen(url), &again.url, err, sizeof(err)) < 0 ||
	    memcmp(&again.url, &r.url, sizeof(r.url)))
		abort(); /* format and parse disagree */
}

static void fuzz_head(const uint8_t *d, size_t n)
{
	static struct te_http_resp r, again;
	size_t len, len2;

	if (te_http_parse_head((const char *)d, n, &r, &len) < 0)
		return;
	if (len > n || len > TE_HTTP_HEAD_MAX || r.status < 100 || r.status > 599 ||
	    strlen(r.location) > TE_URL_MAX)
		abort();
	if (te_http_parse_head((const char *)d, len, &again, &len2) < 0 || len2 != len ||
	    memcmp(&r, &again, sizeof(r)))
		abort();
}

static void fuzz_chunked(const uint8_t *d, size_t n)
{
	static uint8_t a[IN_MAX], b[IN_MAX];
	struct te_chunked c1 = { 0 }, c2 = { 0 };
	size_t out, total = 0, k;
	int r1, r2 = 0;

	memcpy(a, d, n);
	r1 = te_chunked_decode(&c1, a, n, &out);
	if (out > n)
		abort();
	for (size_t i = 0; i < n && r2 == 0; i++) {
		uint8_t one = d[i];

		r2 = te_chunked_decode(&c2, &one, 1, &k);
		if (k > 1)
			abort();
		if (k)
			b[total++] = one;
	}
	if (r1 != r2 || (r1 >= 0 && (total != out || memcmp(a, b, out))))
		abort(); /* split points must not matter */
}

static void fuzz_resolve(const uint8_t *d, size_t n)
{
	static char loc[IN_MAX + 1];
	static struct te_url base, out;
	char err[256];

	te_url_parse("https://h:1/a/b?c", 17, &base, err, sizeof(err));
	memcpy(loc, d, n);
	loc[n] = '\0';
	if (te_url_resolve(&base, loc, &out, err, sizeof(err)) < 0)
		return;
	if (out.scheme != TE_URL_HTTPS || out.path[0] != '/' || !out.host[0])
		abort();
}

static void fuzz_key(const uint8_t *d, size_t n)
{
	struct te_imgkey k;

	if (te_imgkey_from_der(d, n, &k) == 0 && k.q[0] != 4)
		abort();
}

void te_fuzz_http(const uint8_t *data, size_t n)
{
	if (n == 0 || n > IN_MAX)
		return;
	switch (data[0]) {
	case 'u': fuzz_ref(data + 1, n - 1); break;
	case 'h': fuzz_head(data + 1, n - 1); break;
	case 'c': fuzz_chunked(data + 1, n - 1); break;
	case 'r': fuzz_resolve(data + 1, n - 1); break;
	case 'k': fuzz_key(data + 1, n - 1); break;
	default:
		fuzz_ref(data, n);
		fuzz_head(data, n);
		fuzz_chunked(data, n);
		fuzz_resolve(data, n);
		fuzz_key(data, n);
	}
}
