/* Unit tests for src/images/imgref.c, imghttp.c, imgkey.c: image URLs and
 * their fragment, redirect resolution, the HTTP response head (Content-
 * Length, chunked, Content-Range, Location, limits), chunked decoding in
 * place, the GET request, DER public keys, and ECDSA signatures made by
 * openssl(1) at test time. */
#include <bearssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "images/imgcodec.h"
#include "tap.h"

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_refs(void)
{
	struct te_image_ref r;
	char err[256];

	TAP_OK(te_image_ref_parse("https://example.com/a/b.sqfs#sha256=" SHA, &r, err, sizeof(err)) == 0 &&
	       r.url.scheme == TE_URL_HTTPS && r.url.port == 443 && !strcmp(r.url.host, "example.com") &&
	       !strcmp(r.url.path, "/a/b.sqfs") && !strcmp(r.sha256, SHA) && r.siglen == 0,
	       "https URL with sha256");
	TAP_OK(te_image_ref_parse("HTTP://h:8080/x?y=1#sha256=0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
				  &r, err, sizeof(err)) == 0 &&
	       r.url.scheme == TE_URL_HTTP && r.url.port == 8080 && !strcmp(r.url.path, "/x?y=1") &&
	       !strcmp(r.sha256, SHA), "http URL with port and query; hex lower-cased");
	TAP_OK(te_image_ref_parse("https://[::1]:8443/i#sha256=" SHA, &r, err, sizeof(err)) == 0 &&
	       !strcmp(r.url.host, "::1") && r.url.port == 8443, "IPv6 host");
	TAP_OK(te_image_ref_parse("file:///var/img.sqfs#sha256=" SHA, &r, err, sizeof(err)) == 0 &&
	       r.url.scheme == TE_URL_FILE && !strcmp(r.url.path, "/var/img.sqfs"), "file URL");
	TAP_OK(te_image_ref_parse("https://h/i#sha256=" SHA "&sig=MEUCIQDkAAA", &r, err, sizeof(err)) == 0 &&
	       r.siglen == 8, "sig= without padding");
	TAP_OK(te_image_ref_parse("https://h/i#sig=-_-_-_-_-_8&sha256=" SHA, &r, err, sizeof(err)) == 0 &&
	       r.siglen == 8 && r.sig[0] == 0xfb, "URL-safe sig= first");
	TAP_OK(!te_image_ref_is_url("/usr/bin/x") && !te_image_ref_is_url("img.sqfs") &&
	       te_image_ref_is_url("https://h/x"), "a path is not a URL");

	static const struct {
		const char *url, *msg;
	} bad[] = {
		{ "https://h/i", "#sha256=<64 hex digits> is required" },
		{ "https://h/i#sha256=abc", "64 hex digits" },
		{ "https://h/i#sha256=" SHA "&sha256=" SHA, "given twice" },
		{ "https://h/i#sha256=" SHA "&x=1", "unknown fragment key" },
		{ "https://h/i#sha256=" SHA "&", "trailing '&'" },
		{ "https://h/i#sha256", "key=value" },
		{ "https://h/i#sha256=" SHA "&sig=!!!!", "not valid base64" },
		{ "ftp://h/i#sha256=" SHA, "scheme" },
		{ "https://#sha256=" SHA, "host is empty" },
		{ "https://h:0/i#sha256=" SHA, "port out of range" },
		{ "https://h:65536/i#sha256=" SHA, "port out of range" },
		{ "https://h:12a/i#sha256=" SHA, "bad port" },
		{ "https://h i/x#sha256=" SHA, "invalid character in the host" },
		{ "https://h/a b#sha256=" SHA, "invalid character in the path" },
		{ "https://[::1/x#sha256=" SHA, "unclosed '['" },
		{ "file://rel/x#sha256=" SHA, "absolute path" },
		{ "file:///x?y#sha256=" SHA, "no query" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = te_image_ref_parse(bad[i].url, &r, err, sizeof(err));

		TAP_OK(rc == -TE_EINVALID && strstr(err, bad[i].msg), "refused: %s (%s)", bad[i].url, err);
	}
}

static void test_resolve(void)
{
	struct te_url base, out;
	char err[256], s[TE_URL_MAX + 1];

	te_url_parse("https://h:8443/a/b/c.sqfs?q=1", strlen("https://h:8443/a/b/c.sqfs?q=1"), &base,
		     err, sizeof(err));
	static const struct {
		const char *loc, *want;
	} ok[] = {
		{ "https://other/x", "https://other/x" },
		{ "//cdn:9/y#frag", "https://cdn:9/y" },
		{ "/abs?z", "https://h:8443/abs?z" },
		{ "d.sqfs", "https://h:8443/a/b/d.sqfs" },
		{ "../e/f", "https://h:8443/a/e/f" },
		{ "./g?x=1", "https://h:8443/a/b/g?x=1" },
		{ "../../../../top", "https://h:8443/top" },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int r = te_url_resolve(&base, ok[i].loc, &out, err, sizeof(err));

		if (r == 0)
			te_url_format(&out, s, sizeof(s));
		TAP_OK(r == 0 && !strcmp(s, ok[i].want), "Location %s -> %s (%s)", ok[i].loc, ok[i].want,
		       r ? err : s);
	}
	TAP_OK(te_url_resolve(&base, "http://h/x", &out, err, sizeof(err)) == -TE_EINVALID &&
	       strstr(err, "https:// to http:// refused"), "https -> http refused");
	TAP_OK(te_url_resolve(&base, "file:///etc/passwd", &out, err, sizeof(err)) == -TE_EINVALID,
	       "file:// Location refused");
	TAP_OK(te_url_resolve(&base, "", &out, err, sizeof(err)) == -TE_EINVALID, "empty Location");
	te_url_parse("http://h/a", 10, &base, err, sizeof(err));
	TAP_OK(te_url_resolve(&base, "https://h/b", &out, err, sizeof(err)) == 0 &&
	       out.scheme == TE_URL_HTTPS, "http -> https followed");
}

static int head(const char *s, struct te_http_resp *r)
{
	size_t n;
	int rc = te_http_parse_head(s, strlen(s), r, &n);

	return rc < 0 ? rc : (int)n;
}

static void test_head(void)
{
	struct te_http_resp r;
	const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX: y\r\n\r\nBODY";
	static char big[TE_HTTP_HEAD_MAX + 100];

	TAP_EQ_INT(head(h, &r), strlen(h) - 4, "head length");
	TAP_OK(r.status == 200 && r.content_length == 1234 && !r.chunked && !r.has_range, "200 fields");
	TAP_OK(head("HTTP/1.1 206 Partial\nContent-Range: bytes 100-199/200\ncontent-length: 100\n\n", &r) > 0 &&
	       r.status == 206 && r.has_range && r.range_start == 100 && r.range_end == 199 &&
	       r.range_total == 200, "206 with Content-Range, LF line ends");
	TAP_OK(head("HTTP/1.1 206 x\r\nContent-Range: bytes 5-9/*\r\n\r\n", &r) > 0 && r.range_total == -1,
	       "Content-Range total *");
	TAP_OK(head("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nContent-Length: 5\r\n\r\n", &r) > 0 &&
	       r.chunked, "chunked");
	TAP_OK(head("HTTP/1.1 302 Found\r\nLocation:  /next  \r\n\r\n", &r) > 0 && r.status == 302 &&
	       !strcmp(r.location, "/next"), "Location trimmed");
	TAP_OK(head("HTTP/1.0 404\r\n\r\n", &r) > 0 && r.status == 404 && r.content_length == -1,
	       "status without reason");
	TAP_EQ_INT(head("HTTP/1.1 200 OK\r\nContent-Length: 12", &r), -TE_ENEEDMORE, "incomplete");
	TAP_EQ_INT(head("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", &r),
		   -TE_EMALFORMED, "conflicting Content-Length");
	TAP_EQ_INT(head("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", &r), -TE_EMALFORMED, "negative length");
	TAP_EQ_INT(head("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", &r),
		   -TE_EMALFORMED, "huge length");
	TAP_EQ_INT(head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", &r), -TE_EMALFORMED, "gzip");
	TAP_EQ_INT(head("HTTP/1.1 206 x\r\nContent-Range: bytes 9-5/20\r\n\r\n", &r), -TE_EMALFORMED,
		   "range end before start");
	TAP_EQ_INT(head("HTTP/1.1 206 x\r\nContent-Range: bytes 0-20/20\r\n\r\n", &r), -TE_EMALFORMED,
		   "range past total");
	TAP_EQ_INT(head("HTTP/1.1 200 OK\r\n folded\r\n\r\n", &r), -TE_EMALFORMED, "obs-fold");
	TAP_EQ_INT(head("HTTP/2 200\r\n\r\n", &r), -TE_EMALFORMED, "not HTTP/1.x");
	TAP_EQ_INT(head("HTTP/1.1 20x OK\r\n\r\n", &r), -TE_EMALFORMED, "bad status");
	TAP_EQ_INT(head("HTTP/1.1 200 OK\r\nA\x01: b\r\n\r\n", &r), -TE_EMALFORMED, "control byte");
	memset(big, 'a', sizeof(big) - 1);
	memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
	TAP_EQ_INT(head(big, &r), -TE_ELIMIT, "a head over 16 KiB without its end");
	for (size_t i = 100; i + 4 < sizeof(big); i += 100)
		memcpy(big + i, "\r\nY:", 4);
	TAP_EQ_INT(head(big, &r), -TE_ELIMIT, "many lines over 16 KiB");
}

static void test_chunked(void)
{
	const char *in = "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\nextra";
	uint8_t buf[128];
	struct te_chunked c = { 0 };
	size_t n, total = 0, len = strlen(in);
	int r = 0;

	/* Byte by byte: every state boundary crossed. */
	memcpy(buf, in, len);
	for (size_t i = 0; i < len && r == 0; i++) {
		uint8_t one = buf[i];

		r = te_chunked_decode(&c, &one, 1, &n);
		if (n)
			buf[total++] = one;
	}
	TAP_OK(r == 1 && total == 12 && !memcmp(buf, "hello, world", 12), "chunked byte by byte");
	memset(&c, 0, sizeof(c));
	memcpy(buf, in, len);
	r = te_chunked_decode(&c, buf, len, &n);
	TAP_OK(r == 1 && n == 12 && !memcmp(buf, "hello, world", 12), "chunked in one go, in place");
	memset(&c, 0, sizeof(c));
	memcpy(buf, "A\nabcdefghij\n0\n\n", 17);
	TAP_OK(te_chunked_decode(&c, buf, 17, &n) == 1 && n == 10, "bare LF line ends");
	static const char *const bad[] = { "zz\r\n", "5\r\nhelloXX", "\r\n",
					   "1000000000000000\r\n", "5\rX" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&c, 0, sizeof(c));
		memcpy(buf, bad[i], strlen(bad[i]));
		TAP_EQ_INT(te_chunked_decode(&c, buf, strlen(bad[i]), &n), -TE_EMALFORMED,
			   "malformed chunked #%zu", i);
	}
	memset(&c, 0, sizeof(c));
	memset(buf, ' ', sizeof(buf));
	buf[0] = '1';
	buf[1] = ';';
	r = 0;
	for (int i = 0; i < 100 && r == 0; i++)
		r = te_chunked_decode(&c, i ? buf + 2 : buf, i ? 100 : 102, &n);
	TAP_EQ_INT(r, -TE_EMALFORMED, "an endless chunk extension is refused");
}

static void test_request(void)
{
	struct te_url u;
	char buf[1024], err[128];

	te_url_parse("https://h:8443/a?b", 18, &u, err, sizeof(err));
	TAP_OK(te_http_request(&u, 0, "1.2", buf, sizeof(buf)) > 0 &&
	       strstr(buf, "GET /a?b HTTP/1.1\r\nHost: h:8443\r\nUser-Agent: tinyedge/1.2\r\n") &&
	       strstr(buf, "Connection: close\r\n\r\n") && !strstr(buf, "Range"), "request");
	te_url_parse("https://[::1]/x", 15, &u, err, sizeof(err));
	TAP_OK(te_http_request(&u, 12345, "1", buf, sizeof(buf)) > 0 && strstr(buf, "Host: [::1]\r\n") &&
	       strstr(buf, "Range: bytes=12345-\r\n"), "request with Range, IPv6 Host, default port");
	TAP_EQ_INT(te_http_request(&u, 0, "1", buf, 20), -TE_ENOSPACE, "request buffer too small");
}

/* A P-256 SubjectPublicKeyInfo, as openssl writes it. */
static const uint8_t spki_hdr[] = {
	0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
	0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
};

static void test_der(void)
{
	uint8_t der[91];
	struct te_imgkey k;

	memcpy(der, spki_hdr, sizeof(spki_hdr));
	memset(der + sizeof(spki_hdr), 0x11, 64);
	TAP_OK(te_imgkey_from_der(der, sizeof(der), &k) == 0 && k.q[0] == 4 && k.q[64] == 0x11,
	       "P-256 SPKI");
	for (size_t n = 0; n < sizeof(der); n++)
		TAP_OK(te_imgkey_from_der(der, n, &k) < 0, "truncated at %zu refused", n);
	der[1] = 0x5a;
	TAP_EQ_INT(te_imgkey_from_der(der, sizeof(der), &k), -TE_EMALFORMED, "outer length past the end");
	der[1] = 0x59;
	der[22] = 0x22; /* secp384r1's last arc */
	TAP_EQ_INT(te_imgkey_from_der(der, sizeof(der), &k), -TE_EINVALID, "another curve");
	der[22] = 0x07;
	der[12] = 0x05;
	TAP_EQ_INT(te_imgkey_from_der(der, sizeof(der), &k), -TE_EINVALID, "another algorithm");
	der[12] = 0x01;
	der[26] = 0x02;
	TAP_EQ_INT(te_imgkey_from_der(der, sizeof(der), &k), -TE_EINVALID, "compressed point marker");
	der[26] = 0x04;
	der[1] = 0x81; /* long form for a short length: not DER */
	TAP_OK(te_imgkey_from_der(der, sizeof(der), &k) < 0, "non-minimal length refused");
}

static int sh(const char *cmd)
{
	int r = system(cmd);

	return r == 0 ? 0 : -1;
}

static size_t slurp(const char *path, uint8_t *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t n = f ? fread(buf, 1, cap, f) : 0;

	if (f)
		fclose(f);
	return n;
}

static void test_signature(void)
{
	char dir[] = "/tmp/te-imgsig-XXXXXX", cmd[1024], path[256], err[256];
	struct te_imgkey keys[2];
	uint8_t sig[128], data[100], hash[32];
	br_sha256_context sc;
	size_t siglen;

	if (!mkdtemp(dir)) {
		TAP_OK(0, "mkdtemp");
		return;
	}
	snprintf(cmd, sizeof(cmd),
		 "cd %s 2>/dev/null && exec 2>/dev/null && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out k.pem && "
		 "openssl pkey -in k.pem -pubout -out k.pub && "
		 "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out o.pem && "
		 "openssl pkey -in o.pem -pubout -out o.pub && "
		 "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out r.pem && "
		 "openssl pkey -in r.pem -pubout -out r.pub && "
		 "head -c 100 /dev/zero | tr '\\0' 'x' > img && "
		 "openssl dgst -sha256 -sign k.pem -out img.sig img", dir);
	TAP_OK(sh(cmd) == 0, "openssl made keys and a signature");
	memset(data, 'x', sizeof(data));
	br_sha256_init(&sc);
	br_sha256_update(&sc, data, sizeof(data));
	br_sha256_out(&sc, hash);
	snprintf(path, sizeof(path), "%s/img.sig", dir);
	siglen = slurp(path, sig, sizeof(sig));
	snprintf(path, sizeof(path), "%s/k.pub", dir);
	TAP_OK(te_imgkey_load(path, &keys[0], err, sizeof(err)) == 0, "load k.pub (%s)", err);
	snprintf(path, sizeof(path), "%s/o.pub", dir);
	TAP_OK(te_imgkey_load(path, &keys[1], err, sizeof(err)) == 0, "load o.pub");
	TAP_OK(te_imgsig_verify(hash, sig, siglen, keys, 2), "signature verifies under the second key tried");
	TAP_OK(te_imgsig_verify(hash, sig, siglen, &keys[0], 1), "signature verifies under its key");
	TAP_OK(!te_imgsig_verify(hash, sig, siglen, &keys[1], 1), "not under another key");
	hash[0] ^= 1;
	TAP_OK(!te_imgsig_verify(hash, sig, siglen, keys, 2), "not for another hash");
	hash[0] ^= 1;
	TAP_OK(!te_imgsig_verify(hash, sig, siglen - 1, keys, 2), "not truncated");
	snprintf(path, sizeof(path), "%s/r.pub", dir);
	TAP_OK(te_imgkey_load(path, &keys[1], err, sizeof(err)) == -TE_EINVALID &&
	       strstr(err, "not an EC P-256"), "an RSA key is refused: %s", err);
	snprintf(path, sizeof(path), "%s/k.pem", dir);
	TAP_OK(te_imgkey_load(path, &keys[1], err, sizeof(err)) == -TE_EINVALID &&
	       strstr(err, "no PEM \"PUBLIC KEY\""), "a private key file is refused: %s", err);
	snprintf(path, sizeof(path), "%s/missing", dir);
	TAP_OK(te_imgkey_load(path, &keys[1], err, sizeof(err)) < 0 && strstr(err, "missing"),
	       "a missing file: %s", err);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	sh(cmd);
}

int main(void)
{
	test_refs();
	test_resolve();
	test_head();
	test_chunked();
	test_request();
	test_der();
	test_signature();
	return tap_done();
}
