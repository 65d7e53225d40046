/* The router (see router.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "router.h"
#include "stdio_line.h"
#include "wire.h"

/* --- routes --- */

static int compile_one(const struct te_manifest *m, const struct te_route_spec *rs,
		       struct te_route *r, struct te_diag *diag)
{
	char err[256];
	unsigned col = 0;
	int rc = te_route_compile(rs->route, r, err, sizeof(err), &col);

	if (rc == -TE_EINVALID)
		te_diag_report(diag, m->path, rs->line, rs->col,
			       "routes.%s: %s (column %u of the route)", rs->name, err, col);
	else if (rc < 0)
		te_diag_report(diag, m->path, rs->line, rs->col, "routes.%s: %s",
			       rs->name, te_strerror(rc));
	return rc;
}

unsigned te_routes_check(const struct te_manifest *m, struct te_diag *diag)
{
	unsigned bad = 0;
	struct te_route r;

	for (unsigned i = 0; i < m->nroutes; i++) {
		if (compile_one(m, &m->routes[i], &r, diag) < 0)
			bad++;
		else
			te_route_free(&r);
	}
	return bad;
}

static void routes_free(struct te_rroute *v, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		te_route_free(&v[i].r);
		free((char *)v[i].name);
	}
	free(v);
}

int te_router_set_routes(struct te_router *rt, const struct te_manifest *m,
			 struct te_diag *diag)
{
	struct te_rroute *v = calloc(m->nroutes ? m->nroutes : 1, sizeof(*v));
	unsigned bad = 0, i;

	if (!v)
		return -ENOMEM;
	for (i = 0; i < m->nroutes; i++) {
		v[i].name = strdup(m->routes[i].name);
		v[i].priority = m->routes[i].priority;
		v[i].overflow = m->routes[i].overflow;
		v[i].ttl_secs = m->routes[i].ttl_secs;
		if (!v[i].name || compile_one(m, &m->routes[i], &v[i].r, diag) < 0)
			bad++;
	}
	if (bad) {
		routes_free(v, m->nroutes);
		return -TE_EINVALID;
	}
	/* A route kept by name across a reload keeps its counters. */
	for (i = 0; i < m->nroutes; i++) {
		for (unsigned j = 0; j < rt->nroutes; j++) {
			const struct te_rroute *o = &rt->routes[j];

			if (strcmp(o->name, v[i].name))
				continue;
			v[i].matched = o->matched;
			v[i].delivered = o->delivered;
			v[i].dropped_absent = o->dropped_absent;
			v[i].dropped_full = o->dropped_full;
			v[i].dropped_oldest = o->dropped_oldest;
		}
	}
	routes_free(rt->routes, rt->nroutes);
	rt->ttl_default = m->has_ttl ? m->ttl_secs : rt->ttl_config;
	rt->routes = v;
	rt->nroutes = m->nroutes;
	return 0;
}

/* --- spill queue --- */

static void spill_copy_in(struct te_spill *q, uint32_t off, const void *src, uint32_t n)
{
	uint32_t at = off % TE_SPILL_BYTES, first = n < TE_SPILL_BYTES - at ? n : TE_SPILL_BYTES - at;

	memcpy(q->buf + at, src, first);
	memcpy(q->buf, (const uint8_t *)src + first, n - first);
}

static void spill_copy_out(const struct te_spill *q, uint32_t off, void *dst, uint32_t n)
{
	uint32_t at = off % TE_SPILL_BYTES, first = n < TE_SPILL_BYTES - at ? n : TE_SPILL_BYTES - at;

	memcpy(dst, q->buf + at, first);
	memcpy((uint8_t *)dst + first, q->buf, n - first);
}

static int spill_push(struct te_spill *q, const void *rec, uint32_t len)
{
	if (!q->buf && !(q->buf = malloc(TE_SPILL_BYTES)))
		return -ENOMEM;
	if (TE_SPILL_BYTES - q->used < len + 4)
		return -ENOSPC;
	spill_copy_in(q, q->head + q->used, &len, 4);
	spill_copy_in(q, q->head + q->used + 4, rec, len);
	q->used += len + 4;
	return 0;
}

uint32_t te_spill_peek(struct te_port *p, void *buf)
{
	uint32_t len;

	spill_copy_out(&p->spill, p->spill.head, &len, 4);
	spill_copy_out(&p->spill, p->spill.head + 4, buf, len);
	return len;
}

/* Drop the oldest spilled record (drop-oldest policy). */
static void spill_pop(struct te_spill *q)
{
	uint32_t len;

	spill_copy_out(q, q->head, &len, 4);
	q->head = (q->head + len + 4) % TE_SPILL_BYTES;
	q->used -= len + 4;
}

void te_spill_drop(struct te_port *p)
{
	spill_pop(&p->spill);
}

static void stdio_flush(struct te_port *p);

/* Messages wait for the module, in memory or in the store. */
static bool queued(const struct te_port *p)
{
	return p->spill.used || p->stored;
}

/* The store tier of a ring module's queue, once memory is empty. */
static void store_flush(struct te_port *p)
{
	struct te_ring *r = te_ringset_tx(&p->rs);
	uint32_t len;
	void *slot;

	while (!p->spill.used && p->running && te_port_store_peek(p->rt, p, &len) == 1) {
		slot = te_ring_reserve(r, len);
		te_port_store_done(p->rt, p, slot != NULL);
		if (!slot)
			return;
		memcpy(slot, p->rt->rx, len);
		te_ring_commit(r);
		p->msgs_in++;
		p->wake = true;
	}
}

/* Move spilled records into the in-ring while it has room. */
static void spill_flush(struct te_port *p)
{
	struct te_spill *q = &p->spill;
	struct te_ring *r = te_ringset_tx(&p->rs);
	uint32_t len;
	void *slot;

	if (p->stdio) {
		stdio_flush(p);
		return;
	}
	while (q->used && p->running) {
		spill_copy_out(q, q->head, &len, 4);
		slot = te_ring_reserve(r, len);
		if (!slot)
			return;
		spill_copy_out(q, q->head + 4, slot, len);
		te_ring_commit(r);
		q->head = (q->head + len + 4) % TE_SPILL_BYTES;
		q->used -= len + 4;
		p->msgs_in++;
		p->wake = true;
	}
	store_flush(p);
}

/* --- delivery --- */

static void route_message(struct te_router *rt, struct te_port *src, struct te_msg *m);
static int stdio_put(struct te_port *p, const struct te_msg *m);


static struct te_port *port_find(struct te_router *rt, const char *name)
{
	for (unsigned i = 0; i < rt->nports; i++)
		if (strcmp(rt->ports[i]->name, name) == 0)
			return rt->ports[i];
	return NULL;
}

enum { DELIVERED, QUEUED, NO_MODULE, DROPPED_FULL, BAD };

/* The spill policy: memory first, then the store; once something is in
 * the store the rest follows it there (in order). When the store's buffer
 * is full, the sender holds the message (and is not read meanwhile).
 * rt->tx holds the record. */
static bool spill_to_store(struct te_router *rt, struct te_port *src, struct te_port *p,
			   unsigned prio, int64_t ttl, size_t len)
{
	int r;

	if (!p->stored && spill_push(&p->spill, rt->tx, (uint32_t)len) == 0)
		return true;
	r = te_port_store_put(rt, p, prio, ttl, rt->tx, len);
	return r == 0 || (r == -EAGAIN && te_port_store_hold(rt, src, p, prio, ttl, rt->tx, len));
}

/* Write the message, renamed to the target's input, into its in-ring, or
 * apply the overflow policy. src (NULL for injected messages) is the port
 * the message came from: the block policy stops reading it. */
static int deliver(struct te_router *rt, struct te_port *src, struct te_port *p,
		   const char *input, enum te_overflow policy, unsigned prio, int64_t ttl,
		   struct te_msg *m, uint64_t *evicted)
{
	struct te_msg out = *m;
	size_t len;
	void *slot;

	if (!p)
		return NO_MODULE;
	out.sys[TE_SYS_OUTPUT_NAME] = (struct te_str){ NULL, 0 };
	out.sys[TE_SYS_INPUT_NAME] = (struct te_str){ input, (uint32_t)strlen(input) };
	if (te_msg_encode(&out, rt->tx, TE_RECORD_CAP, &len) < 0)
		return BAD;
	/* In order: nothing may overtake what is already queued. */
	if (p->stdio && p->running && !queued(p) && !p->olen && stdio_put(p, &out) == 0) {
		p->msgs_in++;
		stdio_flush(p);
		return DELIVERED;
	}
	slot = p->running && !p->stdio && !queued(p) ?
	       te_ring_reserve(te_ringset_tx(&p->rs), (uint32_t)len) : NULL;
	if (slot) {
		memcpy(slot, rt->tx, len);
		te_ring_commit(te_ringset_tx(&p->rs));
		p->msgs_in++;
		p->wake = true;
		return DELIVERED;
	}
	if (policy == TE_OVERFLOW_DROP_NEWEST) {
		p->dropped++;
		return DROPPED_FULL;
	}
	while (policy == TE_OVERFLOW_DROP_OLDEST && p->spill.used &&
	       TE_SPILL_BYTES - p->spill.used < len + 4) {
		spill_pop(&p->spill);
		p->dropped++;
		(*evicted)++;
	}
	/* spill: memory first, then the store; once something is in the
	 * store, the rest follows it there (in order). */
	if (policy == TE_OVERFLOW_SPILL ? !spill_to_store(rt, src, p, prio, ttl, len) :
	    spill_push(&p->spill, rt->tx, (uint32_t)len) < 0) {
		p->dropped++;
		return DROPPED_FULL;
	}
	p->spilled++;
	if (policy == TE_OVERFLOW_BLOCK && src && src != p && !src->blocked_on) {
		src->blocked_on = p;
		src->blocked++;
	}
	if (!rt->retry.active)
		te_timer_set(rt->loop, &rt->retry, 1);
	return QUEUED;
}

int te_router_send(struct te_router *rt, const char *module, const char *input,
		   const struct te_msg *m)
{
	struct te_msg copy = *m;
	uint64_t evicted = 0;

	switch (deliver(rt, NULL, port_find(rt, module), input, TE_OVERFLOW_SPILL,
			TE_ROUTE_PRIORITY_DEFAULT, TE_TTL_UNSET, &copy, &evicted)) {
	case DELIVERED:
	case QUEUED:
		return 0;
	case NO_MODULE:
		return -ENOENT;
	case DROPPED_FULL:
		return -ENOSPC;
	default:
		return -EMSGSIZE;
	}
}

/* Routes are few: at most once per endpoint, the best priority wins. */
static bool seen_before(struct te_router *rt, unsigned i, const bool *hit)
{
	const struct te_route *a = &rt->routes[i].r;

	for (unsigned j = 0; j < rt->nroutes; j++) {
		const struct te_route *b = &rt->routes[j].r;

		if (j == i || !hit[j] || a->sink != b->sink)
			continue;
		if (a->sink == TE_RSINK_MODULE && (strcmp(a->sink_module, b->sink_module) ||
						   strcmp(a->sink_input, b->sink_input)))
			continue;
		if (rt->routes[j].priority < rt->routes[i].priority ||
		    (rt->routes[j].priority == rt->routes[i].priority && j < i))
			return true;
	}
	return false;
}

static void route_message(struct te_router *rt, struct te_port *src, struct te_msg *m)
{
	bool hit[rt->nroutes ? rt->nroutes : 1];

	for (unsigned i = 0; i < rt->nroutes; i++) {
		hit[i] = te_route_source_matches(&rt->routes[i].r, m) &&
			 te_route_eval(&rt->routes[i].r, m) == TE_TRUE;
		rt->routes[i].matched += hit[i];
	}
	for (unsigned i = 0; i < rt->nroutes; i++) {
		struct te_rroute *rr = &rt->routes[i];

		if (!hit[i] || seen_before(rt, i, hit))
			continue;
		if (rr->r.sink == TE_RSINK_UPSTREAM) {
			if (te_upstream_put(rt, src, rr->priority, rr->ttl_secs, m))
				rr->delivered++;
			else
				rr->dropped_full++;
			continue;
		}
		if (!rr->port)
			rr->port = port_find(rt, rr->r.sink_module);
		switch (deliver(rt, src, rr->port, rr->r.sink_input, rr->overflow, rr->priority,
				rr->ttl_secs, m, &rr->dropped_oldest)) {
		case DELIVERED:
		case QUEUED:
			rr->delivered++;
			break;
		case NO_MODULE:
			rr->dropped_absent++;
			break;
		case DROPPED_FULL:
			rr->dropped_full++;
			break;
		default:
			rr->dropped_full++;  /* over a limit after renaming: cannot happen */
			break;
		}
	}
}

static int port_ctl(struct te_port *p, uint32_t len);

/* One record from a module: it is the message's origin. */
static int route_record(struct te_router *rt, struct te_port *p, uint32_t len)
{
	struct te_prop props[TE_WIRE_PROPS_MAX];
	struct te_msg m;

	if (te_wire_kind(rt->rx, len) != TE_WIRE_KIND_MSG)
		return port_ctl(p, len);
	if (te_msg_decode(rt->rx, len, &m, props, TE_WIRE_PROPS_MAX) < 0)
		return -TE_EMALFORMED;
	m.origin = TE_ORIGIN_MODULE;
	m.sys[TE_SYS_CONNECTION_MODULE_ID] = (struct te_str){ p->name, (uint32_t)strlen(p->name) };
	m.sys[TE_SYS_INPUT_NAME] = (struct te_str){ NULL, 0 };
	p->msgs_out++;
	route_message(rt, p, &m);
	return 0;
}

/* --- stdio modules: JSON lines on the module's stdin and stdout --- */

/* Most of an input line the module may leave unread in its stdin pipe:
 * what a restart loses (a ring module's unread input is kept). */
#define STDIO_PIPE_BYTES 4096
/* Line buffers shrink back to this after a large message. */
#define STDIO_KEEP_BYTES 65536u

static void fd_close(struct te_loop *l, struct te_io *io);

/* Encode the message as the line being written to the module's stdin. */
static int stdio_put(struct te_port *p, const struct te_msg *m)
{
	size_t need, len;
	char *b;
	int r = te_stdio_line_size(m, &need);

	if (r < 0)
		return r;
	if (need > p->ocap) {
		if (!(b = realloc(p->obuf, need)))
			return -ENOMEM;
		p->obuf = b;
		p->ocap = need;
	}
	r = te_stdio_line_encode(m, p->obuf, p->ocap, &len);
	if (r < 0)
		return r;
	p->olen = len;
	p->ooff = 0;
	return 0;
}

/* Write the current line, then queued messages, until the pipe is full
 * (then wait for EPOLLOUT) or nothing is left. */
static void stdio_flush(struct te_port *p)
{
	struct te_prop props[TE_WIRE_PROPS_MAX];
	struct te_msg m;
	uint32_t len;
	ssize_t n;

	while (p->open && p->running && p->sin.fd >= 0) {
		if (!p->olen) {
			if (p->spill.used) {
				spill_copy_out(&p->spill, p->spill.head, &len, 4);
				spill_copy_out(&p->spill, p->spill.head + 4, p->rt->rx, len);
				spill_pop(&p->spill);
			} else if (te_port_store_peek(p->rt, p, &len) == 1) {
				te_port_store_done(p->rt, p, true);
			} else {
				break;
			}
			if (te_msg_decode(p->rt->rx, len, &m, props, TE_WIRE_PROPS_MAX) < 0 ||
			    stdio_put(p, &m) < 0) {
				p->dropped++;
				continue;
			}
			p->msgs_in++;
		}
		n = write(p->sin.fd, p->obuf + p->ooff, p->olen - p->ooff);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (!(p->sin.events & EPOLLOUT))
				te_io_mod(p->rt->loop, &p->sin, EPOLLOUT);
			return;
		}
		if (n < 0) {
			/* EPIPE: it closed its stdin; its exit follows. */
			te_warn("hub", "module %s: stdin: %s", p->name, strerror(errno));
			p->dropped++;
			p->olen = 0;
			fd_close(p->rt->loop, &p->sin);
			return;
		}
		p->ooff += (size_t)n;
		if (p->ooff == p->olen)
			p->olen = p->ooff = 0;
	}
	if (p->ocap > STDIO_KEEP_BYTES && !p->olen) {
		free(p->obuf);
		p->obuf = NULL;
		p->ocap = 0;
	}
	if (p->sin.fd >= 0 && (p->sin.events & EPOLLOUT))
		te_io_mod(p->rt->loop, &p->sin, 0);
}

static void on_stdin(struct te_loop *l, struct te_io *io, uint32_t ev)
{
	stdio_flush((struct te_port *)((char *)io - offsetof(struct te_port, sin)));
}

/* One line from the module: decode, route. A bad line is reported (the
 * first ten, then every thousandth) and counted, never fatal. */
static void stdio_line(struct te_port *p, const char *line, size_t len)
{
	struct te_router *rt = p->rt;
	char err[200];
	struct te_msg m;
	int r;

	if (!rt->stdio_sc && !(rt->stdio_sc = malloc(sizeof(*rt->stdio_sc)))) {
		p->malformed++;
		return;
	}
	r = te_stdio_line_decode(line, len, rt->stdio_sc, &m, err, sizeof(err));
	if (r < 0) {
		if (++p->malformed <= 10 || p->malformed % 1000 == 0)
			te_warn("hub", "module %s: stdout line %llu: %s (%llu bad lines so far)",
				p->name, (unsigned long long)(p->msgs_out + p->malformed), err,
				(unsigned long long)p->malformed);
		return;
	}
	m.origin = TE_ORIGIN_MODULE;
	m.sys[TE_SYS_CONNECTION_MODULE_ID] = (struct te_str){ p->name, (uint32_t)strlen(p->name) };
	m.sys[TE_SYS_INPUT_NAME] = (struct te_str){ NULL, 0 };
	p->msgs_out++;
	route_message(rt, p, &m);
}

/* Route the complete lines read so far; false when blocked. */
static bool stdio_lines(struct te_port *p)
{
	uint32_t at = 0;
	char *nl;

	while (!p->blocked_on && !p->held && (nl = memchr(p->lbuf + at, '\n', p->lhave - at))) {
		uint32_t len = (uint32_t)(nl - (p->lbuf + at));

		if (p->ldiscard) {
			p->ldiscard = false;  /* the end of an over-long line */
		} else {
			stdio_line(p, p->lbuf + at, len);
		}
		at += len + 1;
	}
	memmove(p->lbuf, p->lbuf + at, p->lhave - at);
	p->lhave -= at;
	return !p->blocked_on && !p->held;
}

/* Read the module's stdout and route its lines. While a block route's
 * target is backlogged, stop reading: the pipe fills and the module's
 * writes wait, which is the backpressure a script understands. */
static void stdio_drain(struct te_port *p)
{
	struct te_router *rt = p->rt;
	unsigned rounds = 0;
	ssize_t n;
	char *b;

	while (p->sout.fd >= 0 && stdio_lines(p)) {
		if (p->lhave == p->lcap) {
			if (p->lcap > TE_STDIO_LINE_MAX) {
				/* Over-long: drop it up to its '\n'. */
				if (!p->ldiscard && (++p->malformed <= 10 || p->malformed % 1000 == 0))
					te_warn("hub", "module %s: stdout line over %u bytes: dropped",
						p->name, TE_STDIO_LINE_MAX);
				p->ldiscard = true;
				p->lhave = 0;
			} else if ((b = realloc(p->lbuf, p->lcap ? p->lcap * 2 : 4096))) {
				p->lbuf = b;
				p->lcap = p->lcap ? p->lcap * 2 : 4096;
			} else {
				return;  /* ENOMEM: try again on the next event */
			}
		}
		if (++rounds > 64) {
			te_timer_set(rt->loop, &p->again, 0);  /* let others run */
			return;
		}
		n = read(p->sout.fd, p->lbuf + p->lhave, p->lcap - p->lhave);
		if (n > 0) {
			p->lhave += (uint32_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (!(p->sout.events & EPOLLIN))
				te_io_mod(rt->loop, &p->sout, EPOLLIN);
			return;
		}
		/* EOF: a last line without '\n' still counts. */
		if (p->lhave && !p->ldiscard)
			stdio_line(p, p->lbuf, p->lhave);
		p->lhave = 0;
		fd_close(rt->loop, &p->sout);
		return;
	}
	if ((p->blocked_on || p->held) && p->sout.fd >= 0 && (p->sout.events & EPOLLIN))
		te_io_mod(rt->loop, &p->sout, 0);
}

static void on_stdout(struct te_loop *l, struct te_io *io, uint32_t ev)
{
	stdio_drain((struct te_port *)((char *)io - offsetof(struct te_port, sout)));
}

static void port_close(struct te_port *p);

static void port_corrupt(struct te_port *p)
{
	struct te_router *rt = p->rt;

	te_error("hub", "module %s corrupted its ring: closing it", p->name);
	port_close(p);
	if (rt->on_corrupt)
		rt->on_corrupt(rt, p);
}

/* Route what the module wrote, a batch at a time. */
static void port_drain(struct te_port *p)
{
	struct te_router *rt = p->rt;
	struct te_ring *r = te_ringset_rx(&p->rs);
	unsigned n = 0;
	uint32_t len;
	int k;

	if (p->stdio) {
		stdio_drain(p);
		return;
	}
	while (p->open && !p->blocked_on && !p->held) {
		k = te_ring_read_copy(r, rt->rx, TE_RECORD_CAP, &len);
		if (k == 1 && route_record(rt, p, len) == 0) {
			if (p->blocked_on || p->held)
				return; /* read on when the target drained / the store took it */
			if (++n < TE_ROUTER_BATCH)
				continue;
			te_timer_set(rt->loop, &p->again, 0); /* let others run */
			return;
		}
		if (k == 0 && te_ring_prepare_wait(r))
			return; /* empty, and the module will wake us */
		if (k != 0) {
			port_corrupt(p);
			return;
		}
	}
}

static void on_up(struct te_loop *l, struct te_io *io, uint32_t ev)
{
	struct te_port *p = (struct te_port *)((char *)io - offsetof(struct te_port, up));
	uint64_t v;

	if (read(io->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		te_warn("hub", "module %s: eventfd: %s", p->name, strerror(errno));
	port_drain(p);
}

/* Spilled messages are waiting: look again soon (modules consuming do not
 * signal us). The flush itself runs in on_flush, every turn. */
static void on_retry(struct te_loop *l, struct te_timer *t)
{
	struct te_router *rt = (struct te_router *)((char *)t - offsetof(struct te_router, retry));

	for (unsigned i = 0; i < rt->nports; i++) {
		if (queued(rt->ports[i]) && rt->ports[i]->running && !rt->ports[i]->stdio) {
			te_timer_set(l, t, 1);
			return;
		}
	}
}

static void on_again(struct te_loop *l, struct te_timer *t)
{
	port_drain((struct te_port *)((char *)t - offsetof(struct te_port, again)));
}

/* Once per loop turn: wake the modules that asked for it. */
static void on_flush(struct te_loop *l, struct te_hook *h)
{
	struct te_router *rt = (struct te_router *)((char *)h - offsetof(struct te_router, flush));
	static const uint64_t one = 1;

	if (rt->twins_dirty)
		te_router_twins_store(rt, false);
	for (unsigned i = 0; i < rt->nports; i++) {
		struct te_port *p = rt->ports[i];

		if (queued(p))
			spill_flush(p);
		if (p->blocked_on && !queued(p->blocked_on)) {
			p->blocked_on = NULL;
			te_timer_set(l, &p->again, 0);
		}
		if (!p->wake || !p->open)
			continue;
		p->wake = false;
		if (te_ring_needs_wakeup(te_ringset_tx(&p->rs)) &&
		    write(p->down_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			te_warn("hub", "module %s: eventfd: %s", p->name, strerror(errno));
		if (te_ring_broken(te_ringset_tx(&p->rs)))
			port_corrupt(p);
	}
}

/* --- twins and direct methods (control records, tinyedge/wire.h) --- */

/* Queue a control record for the module, behind what is already queued
 * (first: straight into the ring, which a new instance has empty). */
static int port_send_ctl(struct te_port *p, const struct te_ctlrec *c, bool first)
{
	struct te_router *rt = p->rt;
	size_t len;
	void *slot;
	int r = te_ctlrec_encode(c, rt->tx, TE_RECORD_CAP, &len);

	if (r < 0)
		return r;
	slot = p->open && (first || !p->spill.used) ?
	       te_ring_reserve(te_ringset_tx(&p->rs), (uint32_t)len) : NULL;
	if (slot) {
		memcpy(slot, rt->tx, len);
		te_ring_commit(te_ringset_tx(&p->rs));
		p->wake = true;
		return 0;
	}
	if (len > te_ring_max_payload(te_ringset_tx(&p->rs)))
		return -EMSGSIZE;
	if (spill_push(&p->spill, rt->tx, (uint32_t)len) < 0)
		return -ENOSPC;
	if (!rt->retry.active)
		te_timer_set(rt->loop, &rt->retry, 1);
	return 0;
}

/* The whole twin: pushed when the module starts (id 0) or asked for. */
static int port_send_twin(struct te_port *p, uint32_t id, bool first)
{
	static char buf[TE_WIRE_TWIN_FULL_MAX];
	struct te_ctlrec c = { .kind = TE_WIRE_KIND_TWIN, .id = id, .body = buf };
	size_t len;
	int r = te_twin_full(&p->twin, buf, sizeof(buf), &len);

	if (r == 0) {
		c.bodylen = (uint32_t)len;
		r = port_send_ctl(p, &c, first);
	}
	if (r < 0)
		te_warn("hub", "module %s: cannot send its twin: %s", p->name, te_strerror(r));
	return r;
}

/* /twinChangeNotifications: a twin change as a message, in the shape of
 * IoT Hub's twin change notifications (body {"version": N, "properties":
 * {"reported"|"desired": PATCH}}). */
static void emit_twin_change(struct te_port *p, const char *section, int64_t version,
			     const void *patch, size_t n)
{
	static char body[TE_WIRE_TWIN_FULL_MAX + 128];
	static const char ct[] = "application/json", ce[] = "utf-8";
	struct te_prop props[3] = {
		{ { "iothub-message-schema", 21 }, { "twinChangeNotification", 22 } },
		{ { "opType", 6 }, { "updateTwin", 10 } },
		{ { "moduleId", 8 }, { p->name, (uint32_t)strlen(p->name) } },
	};
	struct te_msg m = { .origin = TE_ORIGIN_TWIN_CHANGE, .props = props, .nprops = 3 };
	int len = snprintf(body, sizeof(body), "{\"version\":%lld,\"properties\":{\"%s\":%.*s}}",
			   (long long)version, section, (int)n, (const char *)patch);

	if (len < 0 || (size_t)len >= sizeof(body))
		return;
	m.sys[TE_SYS_CONTENT_TYPE] = (struct te_str){ ct, sizeof(ct) - 1 };
	m.sys[TE_SYS_CONTENT_ENCODING] = (struct te_str){ ce, sizeof(ce) - 1 };
	m.sys[TE_SYS_CONNECTION_MODULE_ID] = (struct te_str){ p->name, (uint32_t)strlen(p->name) };
	m.body = body;
	m.bodylen = (uint32_t)len;
	route_message(p->rt, NULL, &m);
}

/* A control record from the module: only the kinds a module sends. */
static int port_ctl(struct te_port *p, uint32_t len)
{
	struct te_router *rt = p->rt;
	struct te_ctlrec c, ack = { .kind = TE_WIRE_KIND_ACK };
	char err[300];

	if (te_ctlrec_decode(rt->rx, len, &c) < 0)
		return -TE_EMALFORMED;
	switch (c.kind) {
	case TE_WIRE_KIND_REPORTED:
		err[0] = '\0';
		ack.id = c.id;
		ack.status = te_twin_report(&p->twin, c.body, c.bodylen, err, sizeof(err));
		ack.body = err;
		ack.bodylen = ack.status == TE_WIRE_STATUS_OK ? 0 : (uint32_t)strlen(err);
		p->twin_reports++;
		if (ack.status != TE_WIRE_STATUS_OK)
			te_warn("hub", "module %s: reported patch refused (%u): %s", p->name,
				ack.status, err);
		else
			emit_twin_change(p, "reported", p->twin.rver, c.body, c.bodylen);
		if (ack.status == TE_WIRE_STATUS_OK)
			te_port_twin_dirty(p);
		if (ack.status == TE_WIRE_STATUS_OK && rt->on_reported)
			rt->on_reported(rt, p, c.body, c.bodylen);
		if (port_send_ctl(p, &ack, false) < 0)
			te_warn("hub", "module %s: its input is full: ACK %u lost", p->name, c.id);
		return 0;
	case TE_WIRE_KIND_TWIN_GET:
		port_send_twin(p, c.id, false);
		return 0;
	case TE_WIRE_KIND_METHOD_RESULT:
		if (rt->on_method_result)
			rt->on_method_result(rt, p, c.id, c.status, c.body, c.bodylen);
		return 0;
	default:
		return -TE_EMALFORMED;  /* a kind only the daemon sends */
	}
}

int te_port_set_desired(struct te_port *p, const char *json)
{
	size_t n = json ? strlen(json) : 0;
	uint64_t mhash = p->twin.mhash;
	int r;

	if (!p->twin.desired)
		return te_port_twin_load(p, json, n);
	r = te_twin_set_desired(&p->twin, json, n);
	if (r >= 0 && p->twin.mhash != mhash)
		te_port_twin_dirty(p);
	if (r > 0)
		emit_twin_change(p, "desired", p->twin.dver, p->twin.desired, p->twin.dlen);
	if (r > 0 && p->open && !p->stdio)
		port_send_twin(p, 0, false);
	return r < 0 ? r : 0;
}

/* An applied desired change to the running module: the patch as a DESIRED
 * record, or (rec NULL) its whole twin. A module that is not running gets
 * its twin when it starts. */
static void port_send_desired(struct te_port *p, const char *rec, size_t len)
{
	struct te_ctlrec c = { .kind = TE_WIRE_KIND_DESIRED, .body = rec,
			       .bodylen = (uint32_t)len };
	int r;

	if (!p->open || p->stdio)
		return;
	if (!rec) {
		port_send_twin(p, 0, false);
		return;
	}
	r = port_send_ctl(p, &c, false);
	if (r < 0)
		te_warn("hub", "module %s: cannot send its desired patch: %s", p->name,
			te_strerror(r));
}

unsigned te_router_twin_desired(struct te_router *rt, const char *module,
				const char *json, size_t n, bool cloud,
				int64_t version, bool full, char *err, size_t errlen)
{
	static char rec[TE_WIRE_TWIN_MAX + 1];
	struct te_port *p = port_find(rt, module);
	size_t len = 0;
	unsigned st;

	if (!p || !p->twin.desired) {
		snprintf(err, errlen, "no module named '%s' with a twin", module);
		return TE_WIRE_STATUS_NOT_FOUND;
	}
	st = te_twin_patch_desired(&p->twin, json, n, cloud, version, full, rec, sizeof(rec),
				   &len, err, errlen);
	if (st != TE_WIRE_STATUS_OK)
		return st;
	te_port_twin_dirty(p);
	if (len)
		emit_twin_change(p, "desired", p->twin.dver, rec, len);
	else
		emit_twin_change(p, "desired", p->twin.dver, p->twin.desired, p->twin.dlen);
	port_send_desired(p, len ? rec : NULL, len);
	return st;
}

int te_port_call(struct te_port *p, uint32_t id, const char *name, const void *payload,
		 uint32_t len)
{
	struct te_ctlrec c = { .kind = TE_WIRE_KIND_METHOD, .id = id,
			       .name = { name, (uint32_t)strlen(name) },
			       .body = payload, .bodylen = len };

	if (p->stdio)
		return -EOPNOTSUPP;
	if (!p->open)  /* starting is fine: the call waits in its ring */
		return -ENOTCONN;
	if (len > TE_WIRE_METHOD_MAX)
		return -EMSGSIZE;
	p->methods++;
	return port_send_ctl(p, &c, false);
}

/* --- ports --- */

static void fd_close(struct te_loop *l, struct te_io *io)
{
	if (io->fd < 0)
		return;
	if (io->active)
		te_io_del(l, io);
	close(io->fd);
	io->fd = -1;
}

static void port_close(struct te_port *p)
{
	struct te_loop *l = p->rt->loop;

	if (!p->open)
		return;
	te_timer_cancel(l, &p->again);
	if (p->stdio) {
		fd_close(l, &p->sin);
		fd_close(l, &p->sout);
		if (p->olen)
			p->dropped++;  /* a line it never read whole */
		p->olen = p->ooff = 0;
		p->lhave = 0;
		p->ldiscard = false;
	} else {
		fd_close(l, &p->up);
		close(p->down_fd);
		close(p->memfd);
		te_ring_close(&p->rs);
	}
	p->open = false;
	p->running = false;
}

int te_port_open_stdio(struct te_port *p, int in_fd, int out_fd)
{
	int r;

	port_close(p);
	p->stdio = true;
	p->sin = (struct te_io){ .fd = in_fd, .cb = on_stdin };
	p->sout = (struct te_io){ .fd = out_fd, .cb = on_stdout };
	p->again.cb = on_again;
	p->open = true;
	/* Little in flight in the pipe: a restart loses at most that. */
	fcntl(in_fd, F_SETPIPE_SZ, STDIO_PIPE_BYTES);
	r = fcntl(in_fd, F_SETFL, O_NONBLOCK) < 0 || fcntl(out_fd, F_SETFL, O_NONBLOCK) < 0 ?
	    -errno : 0;
	if (!r)
		r = te_io_add(p->rt->loop, &p->sin, 0);
	if (!r)
		r = te_io_add(p->rt->loop, &p->sout, EPOLLIN);
	if (r)
		port_close(p);
	return r;
}

int te_port_open(struct te_port *p, int fds[3])
{
	int r;

	port_close(p);
	p->stdio = false;
	r = te_ring_create(p->ring_bytes, &p->rs, &p->memfd);
	if (r < 0)
		return r;
	p->up.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	p->down_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	p->up.cb = on_up;
	p->again.cb = on_again;
	p->open = true;
	if (p->up.fd < 0 || p->down_fd < 0 || (r = te_io_add(p->rt->loop, &p->up, EPOLLIN)) < 0) {
		r = r < 0 ? r : -errno;
		port_close(p);
		return r;
	}
	/* Empty and asking to be woken: the module's first send signals us. */
	te_ring_prepare_wait(te_ringset_rx(&p->rs));
	/* Its first record: the twin, before any message. */
	if (p->twin.desired)
		port_send_twin(p, 0, true);
	fds[0] = p->memfd;
	fds[1] = p->up.fd;
	fds[2] = p->down_fd;
	return 0;
}

void te_port_running(struct te_port *p)
{
	p->running = p->open;
	spill_flush(p); /* what waited for this instance */
}

/* The instance is gone: what it had not read from its in-ring goes back
 * in front of its queue, in order, for the next instance. Two passes over
 * the dead ring: one sizes what fits, one writes it. */
struct reclaim {
	struct te_spill *q;
	uint32_t room, need, at;
	bool write;
	uint64_t lost;
};

static int reclaim_one(void *arg, const void *rec, uint32_t len)
{
	struct reclaim *c = arg;
	struct te_prop props[TE_WIRE_PROPS_MAX];
	struct te_msg m;

	/* The module could scribble on its in-ring: only a valid message goes
	 * back to the next instance. */
	if (te_msg_decode(rec, len, &m, props, TE_WIRE_PROPS_MAX) < 0)
		return -1;
	if (!c->write) {
		if (c->need + len + 4 <= c->room)
			c->need += len + 4;
		else
			c->lost++;
		return 0;
	}
	if (c->at + len + 4 > c->need)
		return -1;
	spill_copy_in(c->q, c->q->head + c->at, &len, 4);
	spill_copy_in(c->q, c->q->head + c->at + 4, rec, len);
	c->at += len + 4;
	return 0;
}

static void port_reclaim(struct te_port *p)
{
	struct te_ring *r = te_ringset_tx(&p->rs);
	struct reclaim c = { .q = &p->spill, .room = TE_SPILL_BYTES - p->spill.used };
	int n = te_ring_unread(r, reclaim_one, &c);

	if (n > 0 && c.need && (p->spill.buf || (p->spill.buf = malloc(TE_SPILL_BYTES)))) {
		p->spill.head = (p->spill.head + TE_SPILL_BYTES - c.need) % TE_SPILL_BYTES;
		p->spill.used += c.need;
		c.write = true;
		te_ring_unread(r, reclaim_one, &c);
		p->msgs_in -= (uint64_t)n - c.lost; /* they will be counted again */
	}
	if (n < 0)
		te_warn("hub", "module %s: its input ring is corrupt; unread input lost", p->name);
	p->dropped += c.lost;
}

void te_port_stopped(struct te_port *p)
{
	if (p->open) {
		p->blocked_on = NULL; /* what it sent before it died still counts */
		port_drain(p);
		if (!p->stdio)
			port_reclaim(p);
	}
	port_close(p);
}

struct te_port *te_router_port(struct te_router *rt, const char *name,
			       uint32_t ring_bytes)
{
	struct te_port *p = port_find(rt, name), **v;

	if (p) {
		p->ring_bytes = ring_bytes;
		return p;
	}
	if (rt->nports == rt->cap) {
		v = realloc(rt->ports, (rt->cap * 2 + 4) * sizeof(*v));
		if (!v)
			return NULL;
		rt->ports = v;
		rt->cap = rt->cap * 2 + 4;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->rt = rt;
	p->ring_bytes = ring_bytes;
	p->up.fd = p->down_fd = p->memfd = p->sin.fd = p->sout.fd = -1;
	snprintf(p->name, sizeof(p->name), "%s", name);
	rt->ports[rt->nports++] = p;
	te_port_store_attach(rt, p);
	return p;
}

void te_port_free(struct te_port *p)
{
	struct te_router *rt = p->rt;

	port_close(p);
	te_port_twin_store(p, true);  /* the entry outlives the port */
	free(p->spill.buf);
	free(p->lbuf);
	free(p->obuf);
	te_twin_free(&p->twin);
	free(p->held);
	for (unsigned i = 0; i < rt->nroutes; i++)
		if (rt->routes[i].port == p)
			rt->routes[i].port = NULL;
	for (unsigned i = 0; i < rt->nports; i++)
		if (rt->ports[i]->held_dest == p)
			rt->ports[i]->held_dest = NULL;  /* stored for nobody now */
	for (unsigned i = 0; i < rt->nports; i++) {
		if (rt->ports[i]->blocked_on == p) {
			rt->ports[i]->blocked_on = NULL;
			te_timer_set(rt->loop, &rt->ports[i]->again, 0);
		}
	}
	for (unsigned i = 0; i < rt->nports; i++) {
		if (rt->ports[i] == p) {
			rt->ports[i] = rt->ports[--rt->nports];
			break;
		}
	}
	free(p);
}

int te_router_init(struct te_router *rt, struct te_loop *loop)
{
	memset(rt, 0, sizeof(*rt));
	rt->loop = loop;
	rt->rx = malloc(TE_RECORD_CAP);
	rt->tx = malloc(TE_RECORD_CAP);
	if (!rt->rx || !rt->tx) {
		te_router_free(rt);
		return -ENOMEM;
	}
	rt->flush.cb = on_flush;
	rt->retry.cb = on_retry;
	te_hook_add(loop, &rt->flush);
	return 0;
}

void te_router_free(struct te_router *rt)
{
	te_router_twins_store(rt, true);
	te_router_detach_store(rt);
	while (rt->nports)
		te_port_free(rt->ports[rt->nports - 1]);
	free(rt->ports);
	routes_free(rt->routes, rt->nroutes);
	if (rt->loop && rt->flush.active)
		te_hook_del(rt->loop, &rt->flush);
	if (rt->loop)
		te_timer_cancel(rt->loop, &rt->retry);
	free(rt->rx);
	free(rt->tx);
	free(rt->stdio_sc);
	memset(rt, 0, sizeof(*rt));
}
