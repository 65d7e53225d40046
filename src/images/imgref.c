/* Image references and URLs (imgcodec.h): strict parsing, no allocation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/err.h"
#include "imgcodec.h"

static int fail(char *err, size_t cap, const char *msg, const char *detail)
{
	if (cap)
		snprintf(err, cap, "%s%s%s", msg, detail ? ": " : "", detail ? detail : "");
	return -TE_EINVALID;
}

static bool starts(const char *s, size_t n, const char *p)
{
	size_t k = strlen(p);

	return n >= k && strncasecmp(s, p, k) == 0;
}

bool te_image_ref_is_url(const char *s)
{
	size_t n = strlen(s);

	return starts(s, n, "https://") || starts(s, n, "http://") || starts(s, n, "file://");
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_';
}

/* A path or query byte: printable ASCII without space, '#' or '\'. */
static bool path_char(char c)
{
	return c > 0x20 && c < 0x7f && c != '#' && c != '\\';
}

/* host[:port] in s[0..n) for http(s). */
static int parse_authority(const char *s, size_t n, struct te_url *u, char *err, size_t cap)
{
	const char *colon = NULL, *h = s;
	size_t hl;

	if (n && s[0] == '[') {
		const char *rb = memchr(s, ']', n);

		if (!rb)
			return fail(err, cap, "image URL: unclosed '[' in the host", NULL);
		h = s + 1;
		hl = (size_t)(rb - h);
		for (size_t i = 0; i < hl; i++)
			if (!strchr("0123456789abcdefABCDEF:.", h[i]))
				return fail(err, cap, "image URL: bad IPv6 address in the host", NULL);
		if (rb + 1 < s + n) {
			if (rb[1] != ':')
				return fail(err, cap, "image URL: junk after ']'", NULL);
			colon = rb + 1;
		}
	} else {
		colon = memchr(s, ':', n);
		hl = colon ? (size_t)(colon - s) : n;
		for (size_t i = 0; i < hl; i++)
			if (!host_char(s[i]))
				return fail(err, cap, "image URL: invalid character in the host", NULL);
	}
	if (hl == 0 || hl > TE_URL_HOST_MAX)
		return fail(err, cap, "image URL: the host is empty or too long", NULL);
	memcpy(u->host, h, hl);
	u->host[hl] = '\0';
	if (colon) {
		unsigned long p = 0;
		size_t pl = (size_t)(s + n - colon - 1);

		if (pl == 0 || pl > 5)
			return fail(err, cap, "image URL: bad port", NULL);
		for (size_t i = 1; i <= pl; i++) {
			if (colon[i] < '0' || colon[i] > '9')
				return fail(err, cap, "image URL: bad port", NULL);
			p = p * 10 + (unsigned long)(colon[i] - '0');
		}
		if (p == 0 || p > 65535)
			return fail(err, cap, "image URL: port out of range 1..65535", NULL);
		u->port = (unsigned)p;
	}
	return 0;
}

static int parse_path(const char *s, size_t n, struct te_url *u, char *err, size_t cap)
{
	if (n == 0) {
		strcpy(u->path, "/");
		return 0;
	}
	if (s[0] != '/')
		return fail(err, cap, "image URL: the path must start with '/'", NULL);
	if (n > TE_URL_PATH_MAX)
		return fail(err, cap, "image URL: the path is too long", NULL);
	for (size_t i = 0; i < n; i++)
		if (!path_char(s[i]))
			return fail(err, cap, "image URL: invalid character in the path "
				    "(spaces and control characters must be %-encoded)", NULL);
	memcpy(u->path, s, n);
	u->path[n] = '\0';
	return 0;
}

int te_url_parse(const char *s, size_t n, struct te_url *u, char *err, size_t cap)
{
	const char *p, *slash;
	size_t rest;
	int r;

	memset(u, 0, sizeof(*u));
	if (memchr(s, '\0', n))
		return fail(err, cap, "image URL: NUL byte", NULL);
	if (starts(s, n, "https://")) {
		u->scheme = TE_URL_HTTPS, u->port = 443, p = s + 8;
	} else if (starts(s, n, "http://")) {
		u->scheme = TE_URL_HTTP, u->port = 80, p = s + 7;
	} else if (starts(s, n, "file://")) {
		u->scheme = TE_URL_FILE, p = s + 7;
		rest = n - 7;
		if (starts(p, rest, "localhost/"))
			p += 9, rest -= 9;
		if (rest == 0 || p[0] != '/')
			return fail(err, cap, "image URL: file:// needs an absolute path "
				    "(file:///dir/image.sqfs)", NULL);
		if (memchr(p, '?', rest))
			return fail(err, cap, "image URL: file:// takes no query", NULL);
		return parse_path(p, rest, u, err, cap);
	} else {
		return fail(err, cap, "image URL: the scheme must be https://, http:// or file://", NULL);
	}
	rest = (size_t)(s + n - p);
	slash = memchr(p, '/', rest);
	if (!slash)
		slash = memchr(p, '?', rest);
	r = parse_authority(p, slash ? (size_t)(slash - p) : rest, u, err, cap);
	if (r == 0 && slash && *slash == '?')
		return fail(err, cap, "image URL: a query needs a path ('/?...')", NULL);
	if (r == 0)
		r = parse_path(slash ? slash : "", slash ? (size_t)(s + n - slash) : 0, u, err, cap);
	return r;
}

static int parse_sha(const char *v, size_t n, struct te_image_ref *r, char *err, size_t cap)
{
	if (n != TE_SHA256_HEX)
		return fail(err, cap, "image URL: sha256= must be 64 hex digits", NULL);
	for (size_t i = 0; i < n; i++) {
		int h = te_hexval(v[i]);

		if (h < 0)
			return fail(err, cap, "image URL: sha256= must be 64 hex digits", NULL);
		r->sha256[i] = "0123456789abcdef"[h];
	}
	r->sha256[n] = '\0';
	return 0;
}

/* Standard or URL-safe alphabet, padding optional. */
static int parse_sig(const char *v, size_t n, struct te_image_ref *r, char *err, size_t cap)
{
	char b[128];
	size_t k = 0, len;

	if (n == 0 || n > 120)
		return fail(err, cap, "image URL: sig= must be base64 of a DER or raw ECDSA signature", NULL);
	for (size_t i = 0; i < n; i++)
		b[k++] = v[i] == '-' ? '+' : v[i] == '_' ? '/' : v[i];
	while (k % 4)
		b[k++] = '=';
	if (te_base64_decode(b, k, r->sig, sizeof(r->sig), &len, NULL) < 0 || len < 8)
		return fail(err, cap, "image URL: sig= is not valid base64 of a signature", NULL);
	r->siglen = len;
	return 0;
}

static int parse_fragment(const char *f, struct te_image_ref *r, char *err, size_t cap)
{
	bool have_sha = false, have_sig = false;

	while (*f) {
		size_t n = strcspn(f, "&"), kl;
		const char *eq = memchr(f, '=', n);
		int e;

		if (!eq)
			return fail(err, cap, "image URL: the fragment holds key=value pairs "
				    "(#sha256=HEX&sig=BASE64)", NULL);
		kl = (size_t)(eq - f);
		if (kl == 6 && !strncmp(f, "sha256", 6)) {
			if (have_sha)
				return fail(err, cap, "image URL: sha256= given twice", NULL);
			have_sha = true;
			e = parse_sha(eq + 1, n - kl - 1, r, err, cap);
		} else if (kl == 3 && !strncmp(f, "sig", 3)) {
			if (have_sig)
				return fail(err, cap, "image URL: sig= given twice", NULL);
			have_sig = true;
			e = parse_sig(eq + 1, n - kl - 1, r, err, cap);
		} else {
			return fail(err, cap, "image URL: unknown fragment key (expected sha256= or sig=)",
				    NULL);
		}
		if (e < 0)
			return e;
		f += n;
		if (*f == '&' && !*++f)
			return fail(err, cap, "image URL: trailing '&' in the fragment", NULL);
	}
	if (!have_sha)
		return fail(err, cap, "image URL: #sha256=<64 hex digits> is required", NULL);
	return 0;
}

int te_image_ref_parse(const char *s, struct te_image_ref *r, char *err, size_t cap)
{
	const char *hash = strchr(s, '#');
	int e;

	memset(r, 0, sizeof(*r));
	if (!te_image_ref_is_url(s))
		return fail(err, cap, "image URL: the scheme must be https://, http:// or file://", NULL);
	if (strlen(s) > TE_URL_MAX + 300)
		return fail(err, cap, "image URL: too long", NULL);
	if (!hash)
		return fail(err, cap, "image URL: #sha256=<64 hex digits> is required", NULL);
	e = te_url_parse(s, (size_t)(hash - s), &r->url, err, cap);
	if (e == 0)
		e = parse_fragment(hash + 1, r, err, cap);
	return e;
}

int te_url_format(const struct te_url *u, char *buf, size_t cap)
{
	static const char *const names[] = { "https", "http", "file" };
	bool v6 = strchr(u->host, ':') != NULL;
	bool dflt = u->scheme == TE_URL_FILE || u->port == (u->scheme == TE_URL_HTTPS ? 443u : 80u);
	char port[8] = "";
	int n;

	if (!dflt)
		snprintf(port, sizeof(port), ":%u", u->port);
	n = snprintf(buf, cap, "%s://%s%s%s%s%s", names[u->scheme], v6 ? "[" : "", u->host,
		     v6 ? "]" : "", port, u->path);
	return n < 0 || (size_t)n >= cap ? -TE_ENOSPACE : 0;
}

/* RFC 3986 5.2.4 on in[0..n) (a path without query): "." and ".."
 * segments go. out has room for n + 1 bytes. */
static size_t remove_dots(const char *in, size_t n, char *out)
{
	size_t w = 0, i = 0;

	while (i < n) {
		size_t seg = i + 1, end;

		while (seg < n && in[seg] != '/')
			seg++;
		end = seg; /* in[i] == '/', the segment is in[i+1..end) */
		if (end - i == 2 && in[i + 1] == '.') {
			if (end == n)
				out[w++] = '/';
		} else if (end - i == 3 && in[i + 1] == '.' && in[i + 2] == '.') {
			while (w > 0 && out[--w] != '/')
				;
			if (end == n)
				out[w++] = '/';
		} else {
			memcpy(out + w, in + i, end - i);
			w += end - i;
		}
		i = end;
	}
	if (w == 0)
		out[w++] = '/';
	return w;
}

/* A relative reference: replace the last segment of base's path (its
 * query dropped), then remove dot segments. */
static int resolve_relative(const struct te_url *base, const char *loc, size_t n,
			    struct te_url *out, char *err, size_t cap)
{
	char path[TE_URL_PATH_MAX + 1], clean[TE_URL_PATH_MAX + 2];
	size_t dir = strcspn(base->path, "?"), q, len;

	while (dir > 0 && base->path[dir - 1] != '/')
		dir--;
	if (dir + n > TE_URL_PATH_MAX)
		return fail(err, cap, "redirect: Location too long", NULL);
	memcpy(path, base->path, dir);
	memcpy(path + dir, loc, n);
	q = strcspn(loc, "?");
	q = dir + (q < n ? q : n);
	len = remove_dots(path, q, clean);
	memcpy(clean + len, path + q, dir + n - q);
	*out = *base;
	return parse_path(clean, len + dir + n - q, out, err, cap);
}

int te_url_resolve(const struct te_url *base, const char *loc, struct te_url *out,
		   char *err, size_t cap)
{
	size_t n = strcspn(loc, "#");
	char abs[TE_URL_MAX + 16];
	int r;

	if (n == 0)
		return fail(err, cap, "redirect: empty Location", NULL);
	if (starts(loc, n, "http://") || starts(loc, n, "https://")) {
		r = te_url_parse(loc, n, out, err, cap);
	} else if (starts(loc, n, "//")) {
		if (n + 8 > sizeof(abs))
			return fail(err, cap, "redirect: Location too long", NULL);
		snprintf(abs, sizeof(abs), "%s:%.*s", base->scheme == TE_URL_HTTPS ? "https" : "http",
			 (int)n, loc);
		r = te_url_parse(abs, strlen(abs), out, err, cap);
	} else if (strcspn(loc, ":/?") < n && loc[strcspn(loc, ":/?")] == ':') {
		return fail(err, cap, "redirect: only http:// and https:// locations are followed", loc);
	} else if (loc[0] == '/') {
		*out = *base;
		r = parse_path(loc, n, out, err, cap);
	} else {
		r = resolve_relative(base, loc, n, out, err, cap);
	}
	if (r == 0 && base->scheme == TE_URL_HTTPS && out->scheme != TE_URL_HTTPS)
		return fail(err, cap, "redirect from https:// to http:// refused", NULL);
	return r;
}
