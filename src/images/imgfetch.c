/* One image download on the calling thread (imgfetch.h). Blocking calls
 * all go through poll() with the run's deadline, the idle timeout and a
 * 200 ms slice to notice cancellation. */
#include <bearssl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "imgfetch.h"
#include "upstream/tls.h"

#define IO_BYTES 16384
#define SLICE_MS 200
#define CONNECT_MS 30000

enum { ATTEMPT_DONE = 0, ATTEMPT_REDIRECT = 1, ATTEMPT_AGAIN = 2 };

struct conn {
	int fd;
	struct te_tls *tls;        /* NULL: plain http */
	struct te_fetch *f;
	uint64_t deadline;         /* monotonic ms */
};

/* The run's state. */
struct run {
	struct te_fetch *f;
	int part;                  /* the .part file */
	uint64_t have;             /* bytes in it, hashed into sha */
	br_sha256_context sha;
	uint64_t deadline;
	struct te_url url;         /* the current location */
	bool progress;             /* this attempt received body bytes */
	uint8_t buf[TE_HTTP_HEAD_MAX + IO_BYTES];
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

__attribute__((format(printf, 3, 4)))
static int fail(struct te_fetch *f, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->err, sizeof(f->err), fmt, ap);
	va_end(ap);
	return code;
}

static bool cancelled(const struct te_fetch *f)
{
	return f->cancel && atomic_load(f->cancel);
}

/* Wait for events on c->fd: 0, -ETIMEDOUT (deadline or idle), -ECANCELED. */
static int conn_wait(struct conn *c, short events)
{
	uint64_t idle_end = mono_ms() + (uint64_t)c->f->idle_secs * 1000;

	for (;;) {
		struct pollfd p = { .fd = c->fd, .events = events };
		uint64_t now = mono_ms(), end = idle_end < c->deadline ? idle_end : c->deadline;
		int r;

		if (cancelled(c->f))
			return fail(c->f, -ECANCELED, "cancelled");
		if (now >= end)
			return now >= c->deadline
				       ? fail(c->f, -ETIMEDOUT, "timed out after %u s (images.timeoutSecs)",
					      c->f->timeout_secs)
				       : fail(c->f, -ETIMEDOUT, "no data from the server for %u s",
					      c->f->idle_secs);
		r = poll(&p, 1, end - now < SLICE_MS ? (int)(end - now) : SLICE_MS);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return fail(c->f, -errno, "poll: %s", strerror(errno));
	}
}

/* te_tls_write only sends: reading is what drives the handshake. */
static int tls_handshake(struct conn *c)
{
	uint8_t b;

	while (!te_tls_ready(c->tls)) {
		ssize_t n = te_tls_read(c->tls, &b, 1);
		int r;

		if (n == 0 || n > 0)
			return fail(c->f, -TE_EMALFORMED, "TLS: the server %s before the request",
				    n ? "sent data" : "closed");
		if (n != -EAGAIN)
			return fail(c->f, (int)n, "TLS: %s", te_tls_error(c->tls));
		r = te_tls_flush(c->tls);
		if (r < 0 && r != -EAGAIN)
			return fail(c->f, r, "TLS: %s", te_tls_error(c->tls));
		if (te_tls_ready(c->tls))
			break;
		if ((r = conn_wait(c, (short)te_tls_events(c->tls))) < 0)
			return r;
	}
	return 0;
}

static int conn_write(struct conn *c, const char *s, size_t n)
{
	int hs = c->tls ? tls_handshake(c) : 0;

	if (hs < 0)
		return hs;
	while (n) {
		ssize_t w = c->tls ? te_tls_write(c->tls, s, n) : send(c->fd, s, n, MSG_NOSIGNAL);
		int r;

		if (w > 0) {
			s += w, n -= (size_t)w;
			continue;
		}
		if (!c->tls && w < 0 && errno != EAGAIN && errno != EINTR)
			return fail(c->f, -errno, "send: %s", strerror(errno));
		if (c->tls && w != -EAGAIN)
			return fail(c->f, (int)w, "TLS: %s", te_tls_error(c->tls));
		if (c->tls && (r = te_tls_flush(c->tls)) < 0 && r != -EAGAIN)
			return fail(c->f, r, "TLS: %s", te_tls_error(c->tls));
		if ((r = conn_wait(c, c->tls ? (short)te_tls_events(c->tls) : POLLOUT)) < 0)
			return r;
	}
	while (c->tls) {
		int r = te_tls_flush(c->tls);

		if (r == 0)
			break;
		if (r != -EAGAIN)
			return fail(c->f, r, "TLS: %s", te_tls_error(c->tls));
		if ((r = conn_wait(c, (short)te_tls_events(c->tls))) < 0)
			return r;
	}
	return 0;
}

/* > 0 bytes, 0 at a clean end, -ECONNRESET for a cut, other errors with
 * f->err set. */
static ssize_t conn_read(struct conn *c, void *buf, size_t cap)
{
	for (;;) {
		ssize_t n;
		int r;

		if (c->tls) {
			n = te_tls_read(c->tls, buf, cap);
			if (n >= 0 || n == -ECONNRESET)
				return n;
			if (n != -EAGAIN)
				return fail(c->f, (int)n, "TLS: %s", te_tls_error(c->tls));
			r = te_tls_flush(c->tls);
			if (r < 0 && r != -EAGAIN)
				return fail(c->f, r, "TLS: %s", te_tls_error(c->tls));
			r = conn_wait(c, (short)te_tls_events(c->tls));
		} else {
			n = recv(c->fd, buf, cap, MSG_DONTWAIT);
			if (n >= 0)
				return n;
			if (errno == ECONNRESET)
				return -ECONNRESET;
			if (errno != EAGAIN && errno != EINTR)
				return fail(c->f, -errno, "recv: %s", strerror(errno));
			r = conn_wait(c, POLLIN);
		}
		if (r < 0)
			return r;
	}
}

static int connect_one(struct conn *c, const struct addrinfo *ai)
{
	uint64_t end = mono_ms() + CONNECT_MS;
	int fd, one = 1, soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (end > c->deadline)
		end = c->deadline;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		soerr = errno;
		close(fd);
		return -soerr;
	}
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		uint64_t now = mono_ms();
		int r;

		if (cancelled(c->f) || now >= end) {
			close(fd);
			return cancelled(c->f) ? -ECANCELED : -ETIMEDOUT;
		}
		r = poll(&p, 1, end - now < SLICE_MS ? (int)(end - now) : SLICE_MS);
		if (r > 0)
			break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
		close(fd);
		return soerr ? -soerr : -EIO;
	}
	return fd;
}

/* DNS (blocking: this is a worker thread), then each address in turn. */
static int conn_open(struct conn *c, const struct te_url *u)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	char port[8];
	int r = -EHOSTUNREACH, g;

	snprintf(port, sizeof(port), "%u", u->port);
	g = getaddrinfo(u->host, port, &hints, &res);
	if (g)
		return fail(c->f, -EHOSTUNREACH, "cannot resolve %s: %s", u->host, gai_strerror(g));
	for (struct addrinfo *ai = res; ai && r < 0 && r != -ECANCELED; ai = ai->ai_next)
		r = connect_one(c, ai);
	freeaddrinfo(res);
	if (r == -ECANCELED)
		return fail(c->f, r, "cancelled");
	if (r < 0)
		return fail(c->f, r, "connect to %s port %u: %s", u->host, u->port, te_strerror(r));
	c->fd = r;
	return 0;
}

static int tls_open(struct conn *c, const struct te_url *u)
{
	struct te_tls_config tc = {
		.ca_file = c->f->ca_file,
		.server_name = u->host,
		.time_floor = c->f->time_floor,
	};
	char err[TE_TLS_ERR_MAX];
	int r = te_tls_new(&c->tls, &tc, err, sizeof(err));

	if (r < 0)
		return fail(c->f, r, "TLS setup: %s", err);
	r = te_tls_start(c->tls, c->fd);
	if (r < 0)
		return fail(c->f, r, "TLS: %s", te_tls_error(c->tls));
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->tls) {
		te_tls_close(c->tls);
		te_tls_free(c->tls);
		c->tls = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w, n -= (size_t)w;
	}
	return 0;
}

static int part_reset(struct run *g)
{
	if (ftruncate(g->part, 0) < 0 || lseek(g->part, 0, SEEK_SET) < 0)
		return fail(g->f, -errno, "%s: %s", g->f->part_path, strerror(errno));
	br_sha256_init(&g->sha);
	g->have = 0;
	return 0;
}

/* Body bytes into the part and the hash, within the size cap. */
static int body_take(struct run *g, const uint8_t *p, size_t n)
{
	int r;

	if (g->have + n > g->f->max_bytes) {
		unlink(g->f->part_path);
		return fail(g->f, -TE_ELIMIT, "the image grows past images.maxImageBytes (%llu bytes): cut",
			    (unsigned long long)g->f->max_bytes);
	}
	if ((r = write_all(g->part, p, n)) < 0)
		return fail(g->f, r, "%s: %s", g->f->part_path, strerror(-r));
	br_sha256_update(&g->sha, p, n);
	g->have += n;
	g->f->net_bytes += n;
	if (n)
		g->progress = true;
	return 0;
}

/* Read the head into g->buf: its length in *head, all bytes in *got. */
static int read_head(struct run *g, struct conn *c, struct te_http_resp *resp, size_t *head,
		     size_t *got)
{
	int r;

	*got = 0;
	for (;;) {
		ssize_t n = conn_read(c, g->buf + *got, TE_HTTP_HEAD_MAX - *got);

		if (n == 0 || n == -ECONNRESET)
			return fail(g->f, -ECONNRESET, "%s closed the connection before answering",
				    g->url.host);
		if (n < 0)
			return (int)n;
		*got += (size_t)n;
		r = te_http_parse_head((const char *)g->buf, *got, resp, head);
		if (r == 0)
			return 0;
		if (r == -TE_ELIMIT)
			return fail(g->f, r, "%s: response head over %u bytes", g->url.host,
				    TE_HTTP_HEAD_MAX);
		if (r != -TE_ENEEDMORE)
			return fail(g->f, -TE_EMALFORMED, "%s: malformed HTTP response head",
				    g->url.host);
	}
}

/* Decide what a head means before any body byte is taken. */
static int judge_head(struct run *g, const struct te_http_resp *resp)
{
	struct te_fetch *f = g->f;
	int r;

	if (resp->status >= 300 && resp->status < 400 && resp->status != 304 &&
	    resp->status != 305 && resp->status != 306) {
		struct te_url next;

		if (!resp->location[0])
			return fail(f, -TE_EMALFORMED, "HTTP %d from %s without Location", resp->status,
				    g->url.host);
		if (te_url_resolve(&g->url, resp->location, &next, f->err, sizeof(f->err)) < 0)
			return -TE_EINVALID;
		g->url = next;
		return ATTEMPT_REDIRECT;
	}
	if (resp->status == 416 && g->have) {
		/* The part is no prefix the server knows: start over. */
		return (r = part_reset(g)) < 0 ? r : ATTEMPT_AGAIN;
	}
	if (resp->status != 200 && resp->status != 206)
		return fail(f, -TE_EINVALID, "HTTP status %d from %s", resp->status, g->url.host);
	if (resp->status == 200 && g->have && (r = part_reset(g)) < 0)
		return r; /* the server ignored Range: the whole image again */
	if (resp->status == 206 && (!resp->has_range || resp->range_start != g->have))
		return fail(f, -TE_EMALFORMED, "%s answered a Range request for bytes %llu- with %s",
			    g->url.host, (unsigned long long)g->have,
			    resp->has_range ? "another range" : "no Content-Range");
	if (!resp->chunked && resp->content_length >= 0 &&
	    g->have + (uint64_t)resp->content_length > f->max_bytes) {
		unlink(f->part_path);
		return fail(f, -TE_ELIMIT, "the image is %llu bytes, over images.maxImageBytes (%llu)",
			    (unsigned long long)(g->have + (uint64_t)resp->content_length),
			    (unsigned long long)f->max_bytes);
	}
	return ATTEMPT_DONE;
}

/* The body after the head: got - head bytes of it are in g->buf already. */
static int read_body(struct run *g, struct conn *c, const struct te_http_resp *resp,
		     size_t head, size_t got)
{
	struct te_chunked ch = { 0 };
	int64_t left = resp->chunked ? -1 : resp->content_length;
	uint8_t *p = g->buf + head;
	size_t n = got - head;
	int r;

	for (;;) {
		int done = 0;

		if (resp->chunked) {
			done = te_chunked_decode(&ch, p, n, &n);
			if (done < 0)
				return fail(g->f, -TE_EMALFORMED, "%s: malformed chunked body", g->url.host);
		} else if (left >= 0 && (uint64_t)left < n) {
			n = (size_t)left; /* bytes after the body are not ours */
		}
		if ((r = body_take(g, p, n)) < 0)
			return r;
		if (left >= 0)
			left -= (int64_t)n;
		if (done || left == 0)
			return ATTEMPT_DONE;
		p = g->buf;
		ssize_t k = conn_read(c, p, IO_BYTES);
		/* No length: the end is the close, with or without close_notify
		 * (the sha256 catches a truncation). */
		if ((k == 0 || k == -ECONNRESET) && left < 0 && !resp->chunked)
			return ATTEMPT_DONE;
		if (k == 0 || k == -ECONNRESET) {
			if (left > 0)
				return fail(g->f, -ECONNRESET, "%s closed the connection %lld bytes short "
					    "(%llu bytes in the part)", g->url.host, (long long)left,
					    (unsigned long long)g->have);
			return fail(g->f, -ECONNRESET, "%s closed the connection before the end of the "
				    "image (%llu bytes in the part)", g->url.host,
				    (unsigned long long)g->have);
		}
		if (k < 0)
			return (int)k;
		n = (size_t)k;
	}
}

static int attempt_http(struct run *g)
{
	struct conn c = { .fd = -1, .f = g->f, .deadline = g->deadline };
	struct te_http_resp resp;
	size_t head, got;
	char req[TE_URL_MAX + 512];
	int r, len;

	g->progress = false;
	len = te_http_request(&g->url, g->have, g->f->version, req, sizeof(req));
	if (len < 0)
		return fail(g->f, -TE_ELIMIT, "request too long");
	r = conn_open(&c, &g->url);
	if (r == 0 && g->url.scheme == TE_URL_HTTPS)
		r = tls_open(&c, &g->url);
	if (r == 0)
		r = conn_write(&c, req, (size_t)len);
	g->f->requests++;
	if (r == 0)
		r = read_head(g, &c, &resp, &head, &got);
	if (r == 0)
		r = judge_head(g, &resp);
	if (r == ATTEMPT_DONE)
		r = read_body(g, &c, &resp, head, got);
	conn_close(&c);
	return r;
}

static int copy_file(struct run *g)
{
	struct stat st;
	int fd = open(g->url.path, O_RDONLY | O_CLOEXEC), r = 0;
	ssize_t n;

	if (fd < 0)
		return fail(g->f, -errno, "%s: %s", g->url.path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(g->f, -EINVAL, "%s: not a regular file", g->url.path);
	}
	if ((uint64_t)st.st_size > g->f->max_bytes) {
		close(fd);
		return fail(g->f, -TE_ELIMIT, "the image is %llu bytes, over images.maxImageBytes (%llu)",
			    (unsigned long long)st.st_size, (unsigned long long)g->f->max_bytes);
	}
	r = part_reset(g);
	while (r == 0 && (n = read(fd, g->buf, IO_BYTES)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = fail(g->f, -errno, "%s: %s", g->url.path, strerror(errno));
		else if (cancelled(g->f))
			r = fail(g->f, -ECANCELED, "cancelled");
		else
			r = body_take(g, g->buf, (size_t)n);
	}
	close(fd);
	return r;
}

/* The part as it is: hash it to resume. */
static int part_open(struct run *g)
{
	struct te_fetch *f = g->f;
	ssize_t n;

	br_sha256_init(&g->sha);
	g->have = 0;
	g->part = open(f->part_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (g->part < 0)
		return fail(f, -errno, "%s: %s", f->part_path, strerror(errno));
	while ((n = read(g->part, g->buf, IO_BYTES)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail(f, -errno, "%s: %s", f->part_path, strerror(errno));
		br_sha256_update(&g->sha, g->buf, (size_t)n);
		g->have += (uint64_t)n;
	}
	if (g->have > f->max_bytes)
		return part_reset(g);
	return 0;
}

static int run_loop(struct run *g)
{
	unsigned redirects = 0, tries = 0;
	int r;

	for (;;) {
		if (g->url.scheme == TE_URL_FILE)
			return copy_file(g);
		if (mono_ms() >= g->deadline)
			return fail(g->f, -ETIMEDOUT, "timed out after %u s (images.timeoutSecs)",
				    g->f->timeout_secs);
		r = attempt_http(g);
		if (r == ATTEMPT_DONE)
			return 0;
		if (r == ATTEMPT_REDIRECT) {
			if (++redirects > TE_FETCH_REDIRECTS)
				return fail(g->f, -TE_ELIMIT, "too many redirects (more than %d)",
					    TE_FETCH_REDIRECTS);
			continue;
		}
		if (r == ATTEMPT_AGAIN || ((r == -ECONNRESET || r == -ETIMEDOUT) && g->progress)) {
			if (++tries < TE_FETCH_TRIES)
				continue;
		}
		return r;
	}
}

static int verify(struct run *g)
{
	struct te_fetch *f = g->f;
	uint8_t hash[32];
	char hex[TE_SHA256_HEX + 1];

	br_sha256_out(&g->sha, hash);
	te_sha256_hex(hash, hex);
	if (strcmp(hex, f->ref.sha256)) {
		unlink(f->part_path);
		return fail(f, -TE_EINVALID, "sha256 mismatch: expected %s, got %s", f->ref.sha256, hex);
	}
	if (fsync(g->part) < 0)
		return fail(f, -errno, "%s: fsync: %s", f->part_path, strerror(errno));
	f->size = g->have;
	return 0;
}

int te_fetch_run(struct te_fetch *f)
{
	struct run *g = malloc(sizeof(*g));
	int r;

	f->err[0] = '\0';
	if (!g)
		return fail(f, -ENOMEM, "out of memory");
	g->f = f;
	g->url = f->ref.url;
	g->deadline = mono_ms() + (uint64_t)f->timeout_secs * 1000;
	g->progress = false;
	r = part_open(g);
	if (r == 0)
		r = run_loop(g);
	if (r == 0)
		r = verify(g);
	if (g->part >= 0)
		close(g->part);
	free(g);
	return r;
}
