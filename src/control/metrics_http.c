/* GET /metrics over HTTP on the daemon's loop (metrics.h).
 *
 * One exchange per connection: read the request head (request line and
 * headers, up to the blank line) into a fixed buffer, answer, close. The
 * request line is all that is looked at. The answer is built whole before
 * the first byte goes out, then written as the socket takes it (EPOLLOUT);
 * a client that does not send its request or take its answer within
 * TE_MHTTP_TIMEOUT_MS is closed. When every slot is taken the listening
 * socket is not watched: further connections wait in its backlog. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "core/fs.h"
#include "core/log.h"
#include "metrics.h"

#define MHTTP_BACKLOG 16

static void set_timer(struct te_metrics *m)
{
	uint64_t first = UINT64_MAX;

	for (unsigned i = 0; i < TE_MHTTP_CLIENTS; i++)
		if (m->clients[i].used && m->clients[i].deadline < first)
			first = m->clients[i].deadline;
	if (first == UINT64_MAX)
		te_timer_cancel(m->loop, &m->timer);
	else
		te_timer_set_at(m->loop, &m->timer, first);
}

static void client_close(struct te_mhttp_client *c)
{
	struct te_metrics *m = c->m;

	te_io_del(m->loop, &c->io);
	close(c->io.fd);
	free(c->req);
	free(c->out);
	memset(c, 0, sizeof(*c));
	if (m->paused && te_io_add(m->loop, &m->listen, EPOLLIN) == 0)
		m->paused = false;
}

/* --- the answer --- */

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	default: return "Internal Server Error";
	}
}

/* Status line, headers and body (a copy; NULL body: only its length, for
 * HEAD) into c->out. 0 or -ENOMEM. */
static int respond(struct te_mhttp_client *c, int status, const char *type, const char *body,
		   size_t len, bool head)
{
	char hdr[256];
	int n = snprintf(hdr, sizeof(hdr),
			 "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
			 "Connection: close\r\n\r\n", status, reason_phrase(status), type, len,
			 status == 405 ? "Allow: GET, HEAD\r\n" : "");

	c->outlen = (size_t)n + (head ? 0 : len);
	c->out = malloc(c->outlen);
	if (!c->out)
		return -ENOMEM;
	memcpy(c->out, hdr, (size_t)n);
	if (!head)
		memcpy(c->out + n, body, len);
	return 0;
}

static int respond_text(struct te_mhttp_client *c, int status, bool head)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%d %s\n", status, reason_phrase(status));

	return respond(c, status, "text/plain; charset=utf-8", body, (size_t)n, head);
}

static int respond_metrics(struct te_mhttp_client *c, bool head)
{
	struct te_prom p;
	int r;

	te_prom_init_alloc(&p, 16384);
	r = te_metrics_render(&c->m->src, &p);
	if (r == 0)
		r = respond(c, 200, TE_PROM_CONTENT_TYPE, p.buf, p.len, head);
	else
		te_warn("metrics", "rendering: %s", te_strerror(r));
	te_prom_free(&p);
	return r < 0 ? respond_text(c, 500, head) : 0;
}

/* "METHOD SP TARGET SP HTTP/1.x": the status to answer with; *head for
 * HEAD. Only /metrics (with any query) exists. */
static int request_status(const char *line, size_t n, bool *head)
{
	const char *sp1 = memchr(line, ' ', n), *sp2, *end = line + n;
	size_t plen;

	*head = false;
	if (!sp1 || !(sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1))) ||
	    sp1 == line || sp2 == sp1 + 1 || end - sp2 - 1 != 8 ||
	    memcmp(sp2 + 1, "HTTP/1.", 7) || sp2[8] < '0' || sp2[8] > '9')
		return 400;
	*head = sp1 - line == 4 && !memcmp(line, "HEAD", 4);
	plen = strcspn(sp1 + 1, "? ");
	if (plen != 8 || memcmp(sp1 + 1, "/metrics", 8))
		return 404;
	if (!*head && !(sp1 - line == 3 && !memcmp(line, "GET", 3)))
		return 405;
	return 200;
}

/* Write what the socket takes; close when all is sent or on error. */
static void client_flush(struct te_mhttp_client *c)
{
	if (te_send_pending(c->io.fd, c->out, c->outlen, &c->outoff) == 0 &&
	    (c->io.events == EPOLLOUT || te_io_mod(c->m->loop, &c->io, EPOLLOUT) == 0))
		return;
	client_close(c);
}

/* The request head is complete (or over the limit: status 414/431). */
static void client_answer(struct te_mhttp_client *c, int status)
{
	size_t line = strcspn(c->req, "\r\n");
	bool head = false;
	int r;

	if (!status)
		status = request_status(c->req, line, &head);
	r = status == 200 ? respond_metrics(c, head) : respond_text(c, status, head);
	if (r < 0) {
		client_close(c);
		return;
	}
	c->deadline = te_now_ms() + TE_MHTTP_TIMEOUT_MS;
	set_timer(c->m);
	client_flush(c);
}

/* The end of the head: an empty line (CRLF CRLF, or bare LFs). */
static bool head_complete(const char *s)
{
	return strstr(s, "\r\n\r\n") || strstr(s, "\n\n");
}

static void client_read(struct te_mhttp_client *c)
{
	ssize_t n = recv(c->io.fd, c->req + c->reqlen, TE_MHTTP_REQ_MAX - 1 - c->reqlen,
			 MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {  /* closed or reset before a whole request */
		client_close(c);
		return;
	}
	c->reqlen += (size_t)n;
	c->req[c->reqlen] = '\0';
	if (memchr(c->req, '\0', c->reqlen)) {
		client_answer(c, 400);
		return;
	}
	if (head_complete(c->req)) {
		client_answer(c, c->overlong);
		return;
	}
	if (c->reqlen < TE_MHTTP_REQ_MAX - 1)
		return;
	/* Too long: read on to the end of the head (keeping the last three
	 * bytes, which may start the blank line) so that the answer is not
	 * lost to a reset of unread input; the deadline bounds this. */
	if (!c->overlong)
		c->overlong = memchr(c->req, '\n', c->reqlen) ? 431 : 414;
	memmove(c->req, c->req + c->reqlen - 3, 4);
	c->reqlen = 3;
}

static void on_client(struct te_loop *l, struct te_io *io, uint32_t ev)
{
	struct te_mhttp_client *c = (struct te_mhttp_client *)io;

	if (c->out) {  /* answering: input is no longer read */
		if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			client_flush(c);
		return;
	}
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
		client_read(c);
}

static void on_timer(struct te_loop *l, struct te_timer *t)
{
	struct te_metrics *m = (struct te_metrics *)((char *)t - offsetof(struct te_metrics, timer));
	uint64_t now = te_now_ms();

	for (unsigned i = 0; i < TE_MHTTP_CLIENTS; i++)
		if (m->clients[i].used && m->clients[i].deadline <= now)
			client_close(&m->clients[i]);
	set_timer(m);
}

static struct te_mhttp_client *free_slot(struct te_metrics *m)
{
	for (unsigned i = 0; i < TE_MHTTP_CLIENTS; i++)
		if (!m->clients[i].used)
			return &m->clients[i];
	return NULL;
}

static void on_accept(struct te_loop *l, struct te_io *io, uint32_t ev)
{
	struct te_metrics *m = (struct te_metrics *)((char *)io - offsetof(struct te_metrics, listen));
	struct te_mhttp_client *c;
	int fd;

	while ((c = free_slot(m))) {
		fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			break;  /* EAGAIN; or a connection gone before we took it */
		c->req = malloc(TE_MHTTP_REQ_MAX);
		c->io = (struct te_io){ .fd = fd, .cb = on_client };
		if (!c->req || te_io_add(l, &c->io, EPOLLIN) < 0) {
			free(c->req);
			c->req = NULL;
			close(fd);
			continue;
		}
		c->req[0] = '\0';
		c->m = m;
		c->used = true;
		c->deadline = te_now_ms() + TE_MHTTP_TIMEOUT_MS;
	}
	if (!c) {
		te_io_del(l, io);
		m->paused = true;
	}
	set_timer(m);
}

static int listen_on(struct te_metrics *m, const char *address, unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, fd, r;

	if (inet_pton(AF_INET, address, &sa.sin_addr) != 1)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A restart must not wait for the last run's TIME_WAIT connections. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, MHTTP_BACKLOG) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	m->listen = (struct te_io){ .fd = fd, .cb = on_accept };
	r = te_io_add(m->loop, &m->listen, EPOLLIN);
	if (r < 0) {
		close(fd);
		m->listen.fd = -1;
	}
	return r;
}

int te_metrics_init(struct te_metrics *m, struct te_loop *loop, const struct te_config *cfg,
		    const struct te_metrics_src *src)
{
	int r;

	memset(m, 0, sizeof(*m));
	m->src = *src;
	m->src.start_ms = te_now_ms();
	m->loop = loop;
	m->listen.fd = -1;
	m->timer.cb = on_timer;
	if (!cfg->metrics.port)
		return 0;
	r = listen_on(m, cfg->metrics.address, cfg->metrics.port);
	if (r < 0)
		te_error("metrics", "http://%s:%u/metrics: %s; metrics only through `tinyedge "
			 "metrics`", cfg->metrics.address, cfg->metrics.port, te_strerror(r));
	else
		te_info("metrics", "serving http://%s:%u/metrics", cfg->metrics.address,
			cfg->metrics.port);
	return r;
}

void te_metrics_free(struct te_metrics *m)
{
	if (!m->loop)
		return;
	for (unsigned i = 0; i < TE_MHTTP_CLIENTS; i++)
		if (m->clients[i].used)
			client_close(&m->clients[i]);
	te_timer_cancel(m->loop, &m->timer);
	if (m->listen.fd >= 0) {
		if (!m->paused)
			te_io_del(m->loop, &m->listen);
		close(m->listen.fd);
	}
	m->listen.fd = -1;
	m->loop = NULL;
}
