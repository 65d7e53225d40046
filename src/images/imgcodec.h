/* Pure codecs of the image downloader: image references (URL + fragment),
 * the HTTP/1.1 response head, chunked transfer-encoding, the GET request,
 * and EC P-256 public keys / signatures. Caller buffers, no I/O (except
 * te_imgkey_load, which reads one PEM file), no clock, no allocation:
 * each is unit-tested and fuzzed (TE_FUZZ=http).
 *
 * Errors: 0 or negative (core/err.h). Messages go to the caller's err
 * buffer (cap bytes) and name what is wrong. */
#ifndef TE_IMGCODEC_H
#define TE_IMGCODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TE_URL_HOST_MAX 255    /* bytes of a host (a DNS name or [IPv6]) */
#define TE_URL_PATH_MAX 2048   /* bytes of path + query */
#define TE_URL_MAX (TE_URL_HOST_MAX + TE_URL_PATH_MAX + 32)
#define TE_SHA256_HEX 64
#define TE_IMGSIG_MAX 80       /* a DER ECDSA P-256 signature is at most 72 */
#define TE_HTTP_HEAD_MAX 16384 /* a response head larger than this is refused */
#define TE_HTTP_LINE_MAX 8192  /* one header line */

enum te_url_scheme { TE_URL_HTTPS, TE_URL_HTTP, TE_URL_FILE };

struct te_url {
	enum te_url_scheme scheme;
	char host[TE_URL_HOST_MAX + 1]; /* "" for file://; IPv6 without [] */
	unsigned port;                  /* 443 / 80 by default; 0 for file */
	char path[TE_URL_PATH_MAX + 1]; /* starts with '/'; query included */
};

/* settings.image when it is a URL. */
struct te_image_ref {
	struct te_url url;
	char sha256[TE_SHA256_HEX + 1];  /* lower-case hex */
	uint8_t sig[TE_IMGSIG_MAX];      /* DER or raw r||s; siglen 0 = none */
	size_t siglen;
};

/* Is s a URL of a scheme we download (https://, http://, file://)?
 * Anything else is a path, for the caller to handle. */
bool te_image_ref_is_url(const char *s);

/* Parse "https://host[:port]/path#sha256=HEX[&sig=BASE64]" (also http://
 * and file:///abs/path). sha256 is required for every scheme (the cache is
 * content-addressed); sig is standard or URL-safe base64, padding
 * optional. -TE_EINVALID with a message. */
int te_image_ref_parse(const char *s, struct te_image_ref *r, char *err, size_t cap);

/* Parse a URL without fragment (n bytes of s). -TE_EINVALID. */
int te_url_parse(const char *s, size_t n, struct te_url *u, char *err, size_t cap);

/* Resolve a redirect's Location against base into out: absolute
 * (http(s)://...), scheme-relative (//host/...), absolute path or relative
 * path; a fragment is dropped. file:// is refused, and so is https -> http
 * (a downgrade). -TE_EINVALID with a message. */
int te_url_resolve(const struct te_url *base, const char *loc, struct te_url *out,
		   char *err, size_t cap);

/* "https://host[:port]/path" into buf. -TE_ENOSPACE. */
int te_url_format(const struct te_url *u, char *buf, size_t cap);

/* The GET request for u: Host, User-Agent tinyedge/VERSION, Connection:
 * close, and "Range: bytes=FROM-" when from > 0. Bytes written, or
 * -TE_ENOSPACE. */
int te_http_request(const struct te_url *u, uint64_t from, const char *version,
		    char *buf, size_t cap);

struct te_http_resp {
	int status;               /* 100..599 */
	int64_t content_length;   /* -1: none */
	bool chunked;             /* Transfer-Encoding: chunked (wins over length) */
	bool has_range;           /* a Content-Range: bytes S-E/T header */
	uint64_t range_start, range_end;
	int64_t range_total;      /* -1 for '*' */
	char location[TE_URL_MAX + 1];
};

/* Parse the response head at the start of buf[0..n). 0 with *head_len =
 * bytes of the head (through the empty line); -TE_ENEEDMORE (no end of head
 * yet, n < TE_HTTP_HEAD_MAX); -TE_ELIMIT (no end of head within
 * TE_HTTP_HEAD_MAX bytes, or a line over TE_HTTP_LINE_MAX);
 * -TE_EMALFORMED (status line, a header, Content-Length, Content-Range or
 * a transfer coding other than chunked). Lines end in CRLF or LF. */
int te_http_parse_head(const char *buf, size_t n, struct te_http_resp *r, size_t *head_len);

/* Chunked transfer-encoding, decoded in place. */
struct te_chunked {
	int state;
	uint64_t left;     /* bytes left in the current chunk */
	unsigned linelen;  /* bytes of the current size or trailer line */
	unsigned digits;
};

/* Decode buf[0..n): the data bytes are moved to buf[0..*out). Returns 0
 * (feed more), 1 (the last chunk and the trailers are done; bytes after
 * them are ignored) or -TE_EMALFORMED (bad size line, a size over 2^60,
 * missing CRLF after data, a line over 4 KiB). */
int te_chunked_decode(struct te_chunked *c, uint8_t *buf, size_t n, size_t *out);

/* An EC P-256 public key as an uncompressed point (0x04 || X || Y). */
struct te_imgkey {
	uint8_t q[65];
};

/* Parse a DER SubjectPublicKeyInfo: id-ecPublicKey with the prime256v1
 * curve and a BIT STRING holding the 65-byte uncompressed point.
 * -TE_EMALFORMED (not DER, wrong lengths) or -TE_EINVALID (another
 * algorithm or curve, a compressed point). */
int te_imgkey_from_der(const uint8_t *der, size_t n, struct te_imgkey *k);

/* Load the first "PUBLIC KEY" object of a PEM file. -errno, -TE_ELIMIT
 * (over 64 KiB) or the codes above, with a message naming the file. */
int te_imgkey_load(const char *path, struct te_imgkey *k, char *err, size_t cap);

/* Does sig (DER, or raw r||s of 64 bytes) verify for sha256 digest
 * hash[32] under any of keys[0..n)? */
bool te_imgsig_verify(const uint8_t hash[32], const uint8_t *sig, size_t siglen,
		      const struct te_imgkey *keys, unsigned n);

/* hex (64 lower-case characters, NUL-terminated) of a digest. */
void te_sha256_hex(const uint8_t hash[32], char hex[TE_SHA256_HEX + 1]);

#endif
