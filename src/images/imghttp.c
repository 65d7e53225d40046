/* HTTP/1.1 for the image downloader (imgcodec.h): the GET request, the
 * response head, chunked transfer-encoding. Pure functions over caller
 * buffers; every length the peer sends is checked before use. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "imgcodec.h"

int te_http_request(const struct te_url *u, uint64_t from, const char *version,
		    char *buf, size_t cap)
{
	bool v6 = strchr(u->host, ':') != NULL;
	bool dflt = u->port == (u->scheme == TE_URL_HTTPS ? 443u : 80u);
	char port[8] = "", range[48] = "";
	int n;

	if (!dflt)
		snprintf(port, sizeof(port), ":%u", u->port);
	if (from)
		snprintf(range, sizeof(range), "Range: bytes=%llu-\r\n", (unsigned long long)from);
	n = snprintf(buf, cap,
		     "GET %s HTTP/1.1\r\nHost: %s%s%s%s\r\nUser-Agent: tinyedge/%s\r\n"
		     "Accept: */*\r\nAccept-Encoding: identity\r\n%sConnection: close\r\n\r\n",
		     u->path, v6 ? "[" : "", u->host, v6 ? "]" : "", port, version, range);
	return n < 0 || (size_t)n >= cap ? -TE_ENOSPACE : n;
}

/* Decimal digits only, at most 18 (no overflow). */
static int parse_u64(const char *s, size_t n, uint64_t *v)
{
	*v = 0;
	if (n == 0 || n > 18)
		return -TE_EMALFORMED;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -TE_EMALFORMED;
		*v = *v * 10 + (uint64_t)(s[i] - '0');
	}
	return 0;
}

/* "bytes S-E/T", or "bytes S-E/" and a star. */
static int parse_range(const char *v, size_t n, struct te_http_resp *r)
{
	const char *dash, *slash;
	uint64_t total;

	if (n < 6 || strncasecmp(v, "bytes ", 6))
		return -TE_EMALFORMED;
	v += 6, n -= 6;
	dash = memchr(v, '-', n);
	slash = memchr(v, '/', n);
	if (!dash || !slash || slash < dash ||
	    parse_u64(v, (size_t)(dash - v), &r->range_start) ||
	    parse_u64(dash + 1, (size_t)(slash - dash - 1), &r->range_end) ||
	    r->range_end < r->range_start)
		return -TE_EMALFORMED;
	if ((size_t)(v + n - slash - 1) == 1 && slash[1] == '*') {
		r->range_total = -1;
	} else {
		if (parse_u64(slash + 1, (size_t)(v + n - slash - 1), &total) || total <= r->range_end)
			return -TE_EMALFORMED;
		r->range_total = (int64_t)total;
	}
	r->has_range = true;
	return 0;
}

static bool name_is(const char *name, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

static int parse_header(const char *line, size_t n, struct te_http_resp *r)
{
	const char *colon = memchr(line, ':', n), *v;
	size_t nl, vl;
	uint64_t len;

	if (!colon || colon == line || line[0] == ' ' || line[0] == '\t')
		return -TE_EMALFORMED; /* obs-fold and nameless lines are refused */
	nl = (size_t)(colon - line);
	for (size_t i = 0; i < nl; i++)
		if (line[i] <= 0x20 || line[i] >= 0x7f)
			return -TE_EMALFORMED;
	v = colon + 1;
	vl = n - nl - 1;
	while (vl && (*v == ' ' || *v == '\t'))
		v++, vl--;
	while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
	if (name_is(line, nl, "Content-Length")) {
		if (parse_u64(v, vl, &len) || (r->content_length >= 0 && (uint64_t)r->content_length != len))
			return -TE_EMALFORMED;
		r->content_length = (int64_t)len;
	} else if (name_is(line, nl, "Transfer-Encoding")) {
		if (vl != 7 || strncasecmp(v, "chunked", 7))
			return -TE_EMALFORMED; /* gzip & co: we asked for identity */
		r->chunked = true;
	} else if (name_is(line, nl, "Content-Range")) {
		return parse_range(v, vl, r);
	} else if (name_is(line, nl, "Location")) {
		if (vl == 0 || vl > TE_URL_MAX)
			return -TE_EMALFORMED;
		memcpy(r->location, v, vl);
		r->location[vl] = '\0';
	}
	return 0;
}

static int parse_status(const char *line, size_t n, struct te_http_resp *r)
{
	if (n < 12 || strncmp(line, "HTTP/1.", 7) || (line[7] != '0' && line[7] != '1') ||
	    line[8] != ' ' || line[9] < '1' || line[9] > '5' || line[10] < '0' || line[10] > '9' ||
	    line[11] < '0' || line[11] > '9' || (n > 12 && line[12] != ' '))
		return -TE_EMALFORMED;
	r->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	return 0;
}

int te_http_parse_head(const char *buf, size_t n, struct te_http_resp *r, size_t *head_len)
{
	size_t off = 0, lines = 0;


	memset(r, 0, sizeof(*r));
	r->content_length = -1;
	r->range_total = -1;
	for (;;) {
		const char *nl = memchr(buf + off, '\n', n - off);
		size_t len;
		int e;

		if (!nl) {
			if (n - off > TE_HTTP_LINE_MAX || n >= TE_HTTP_HEAD_MAX)
				return -TE_ELIMIT;
			return -TE_ENEEDMORE;
		}
		len = (size_t)(nl - (buf + off));
		if (len > TE_HTTP_LINE_MAX || off + len + 1 > TE_HTTP_HEAD_MAX)
			return -TE_ELIMIT;
		if (len && buf[off + len - 1] == '\r')
			len--;
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)buf[off + i] < 0x20 && buf[off + i] != '\t')
				return -TE_EMALFORMED;
		if (lines == 0)
			e = parse_status(buf + off, len, r);
		else if (len == 0)
			return *head_len = (size_t)(nl - buf) + 1, 0;
		else
			e = parse_header(buf + off, len, r);
		if (e < 0)
			return e;
		lines++;
		off = (size_t)(nl - buf) + 1;
	}
}

enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER,
       CH_TRAILER_LF, CH_DONE };

#define CH_LINE_MAX 4096

/* One byte of a size line or the CRLF after data. 0, 1 (done) or error. */
static int chunk_ctl(struct te_chunked *c, uint8_t b)
{
	if (++c->linelen > CH_LINE_MAX)
		return -TE_EMALFORMED;
	switch (c->state) {
	case CH_SIZE:
		if ((b >= '0' && b <= '9') || ((b | 0x20) >= 'a' && (b | 0x20) <= 'f')) {
			if (++c->digits > 15)
				return -TE_EMALFORMED;
			c->left = c->left * 16 + (uint64_t)(b <= '9' ? b - '0' : (b | 0x20) - 'a' + 10);
			return 0;
		}
		if (!c->digits)
			return -TE_EMALFORMED;
		if (b == ';' || b == ' ' || b == '\t')
			c->state = CH_EXT;
		else if (b == '\r')
			c->state = CH_SIZE_LF;
		else if (b == '\n')
			goto size_done;
		else
			return -TE_EMALFORMED;
		return 0;
	case CH_EXT:
		if (b == '\r')
			c->state = CH_SIZE_LF;
		else if (b == '\n')
			goto size_done;
		return 0;
	case CH_SIZE_LF:
		if (b != '\n')
			return -TE_EMALFORMED;
		goto size_done;
	case CH_DATA_CR:
		if (b == '\r') {
			c->state = CH_DATA_LF;
			return 0;
		}
		/* a bare LF */
		__attribute__((fallthrough));
	case CH_DATA_LF:
		if (b != '\n')
			return -TE_EMALFORMED;
		c->state = CH_SIZE, c->left = 0, c->digits = 0, c->linelen = 0;
		return 0;
	case CH_TRAILER:
		if (b == '\r') {
			c->state = CH_TRAILER_LF;
		} else if (b == '\n') {
			if (c->linelen == 1)
				return c->state = CH_DONE, 1;
			c->linelen = 0;
		}
		return 0;
	case CH_TRAILER_LF:
		if (b != '\n')
			return -TE_EMALFORMED;
		if (c->linelen == 2)
			return c->state = CH_DONE, 1;
		c->state = CH_TRAILER, c->linelen = 0;
		return 0;
	}
	return -TE_EMALFORMED;
size_done:
	c->linelen = 0;
	c->state = c->left ? CH_DATA : CH_TRAILER;
	return 0;
}

int te_chunked_decode(struct te_chunked *c, uint8_t *buf, size_t n, size_t *out)
{
	size_t i = 0, w = 0;
	int r;

	*out = 0;
	if (c->state == CH_DONE)
		return 1;
	while (i < n) {
		if (c->state == CH_DATA) {
			size_t k = n - i < c->left ? n - i : (size_t)c->left;

			memmove(buf + w, buf + i, k);
			w += k, i += k;
			c->left -= k;
			if (!c->left)
				c->state = CH_DATA_CR, c->linelen = 0;
			continue;
		}
		r = chunk_ctl(c, buf[i++]);
		if (r) {
			*out = w;
			return r;
		}
	}
	*out = w;
	return 0;
}
