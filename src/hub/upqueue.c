/* The $upstream queue: messages routed to $upstream go to the offline
 * store (store/store.h) as wire records, at their route's priority and
 * TTL, and wait there for the uplink.
 *
 * A put only copies into the store's pending buffer; the store's writer
 * commits in groups and tells us through its eventfd. When the pending
 * buffer is full (the disk is slower than the producers), the message is
 * held by the module port it came from and that port is not read until it
 * is stored: the module's out-ring fills and its sends wait. Other modules,
 * and module-to-module traffic, go on. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "router.h"
#include "store/store.h"
#include "wire.h"

#define STORE_TICK_MS 5000  /* expiry, reader check, clock record */

static int64_t ttl_of(const struct te_router *rt, int64_t ttl_secs)
{
	return ttl_secs == TE_TTL_UNSET ? rt->ttl_default : ttl_secs;
}

static void count_put(struct te_router *rt, struct te_port *dest, uint64_t seq)
{
	if (!dest) {
		rt->upstream_msgs++;
		return;
	}
	if (!dest->stored)
		te_store_cursor_init(&dest->cur, dest->store_ep);
	dest->stored++;
	dest->last_put_seq = seq;
}

/* Retry what ports hold; a port whose message is stored is read again. */
static void retry_held(struct te_router *rt)
{
	for (unsigned i = 0; i < rt->nports; i++) {
		struct te_port *p = rt->ports[i];
		uint64_t seq;
		int r;

		if (!p->held)
			continue;
		r = te_store_put(rt->store, p->held_ep, p->held_prio, p->held_ttl, p->held,
				 p->held_len, &seq);
		if (r == -EAGAIN)
			return;  /* still full: the next commit wakes us again */
		if (r < 0) {
			if (!p->held_dest)
				rt->upstream_dropped++;
			te_warn("hub", "module %s: a held message lost: %s", p->name, te_strerror(r));
		} else {
			count_put(rt, p->held_dest, seq);
		}
		free(p->held);
		p->held = NULL;
		p->held_dest = NULL;
		if (p->open)
			te_timer_set(rt->loop, &p->again, 0);
	}
}

int te_router_identity(struct te_router *rt, const char *module, uint32_t ep)
{
	if (rt->nidents == sizeof(rt->idents) / sizeof(rt->idents[0]))
		return -ENOSPC;
	snprintf(rt->idents[rt->nidents].module, sizeof(rt->idents[0].module), "%s", module);
	rt->idents[rt->nidents++].ep = ep;
	return 0;
}

bool te_router_identity_of(const struct te_router *rt, const char *module)
{
	for (unsigned i = 0; i < rt->nidents; i++)
		if (!strcmp(rt->idents[i].module, module))
			return true;
	return false;
}

/* The $upstream queue for a message from src (NULL: the device's). */
static uint32_t up_ep_for(const struct te_router *rt, const struct te_port *src)
{
	for (unsigned i = 0; src && i < rt->nidents; i++)
		if (!strcmp(rt->idents[i].module, src->name))
			return rt->idents[i].ep;
	return rt->up_ep;
}

bool te_port_store_hold(struct te_router *rt, struct te_port *src, struct te_port *p,
			unsigned prio, int64_t ttl_secs, const void *rec, size_t len)
{
	if (!src || src->held || !(src->held = malloc(len)))
		return false;
	memcpy(src->held, rec, len);
	src->held_len = (uint32_t)len;
	src->held_prio = prio;
	src->held_ttl = ttl_of(rt, ttl_secs);
	src->held_ep = p ? p->store_ep : up_ep_for(rt, src);
	src->held_dest = p;
	return true;
}

static void on_commit(void *ctx, const struct te_store_done *d)
{
	struct te_router *rt = ctx;
	uint64_t n = d->last_seq - d->first_seq + 1;

	if (!d->err) {
		rt->upstream_committed += n;
		return;
	}
	rt->upstream_failed += n;
	te_warn("hub", "store: %llu messages not stored: %s", (unsigned long long)n,
		te_strerror(d->err));
}

static void on_store(struct te_loop *l, struct te_io *io, uint32_t ev)
{
	struct te_router *rt = (struct te_router *)((char *)io - offsetof(struct te_router, store_io));

	te_store_process(rt->store);
	retry_held(rt);
	if (rt->on_upstream)
		rt->on_upstream(rt);
	/* Newly committed spills become readable: on_flush moves them. */
	for (unsigned i = 0; i < rt->nports; i++)
		if (rt->ports[i]->stored && rt->ports[i]->running && !rt->retry.active)
			te_timer_set(l, &rt->retry, 1);
}

static void on_tick(struct te_loop *l, struct te_timer *t)
{
	struct te_router *rt = (struct te_router *)((char *)t - offsetof(struct te_router, store_tick));
	int stale = 0;

	if (te_store_maintain(rt->store, &stale) == 0 && stale)
		te_info("hub", "store: cleared %d stale readers", stale);
	te_timer_set(l, t, STORE_TICK_MS);
}

int te_router_attach_store(struct te_router *rt, struct te_store *s)
{
	int r = te_store_endpoint(s, "$upstream", &rt->up_ep);

	if (r < 0)
		return r;
	rt->store_io = (struct te_io){ .fd = te_store_fd(s), .cb = on_store };
	r = te_io_add(rt->loop, &rt->store_io, EPOLLIN);
	if (r < 0)
		return r;
	rt->store = s;
	rt->store_since_ms = te_now_ms();
	rt->store_tick.cb = on_tick;
	te_timer_set(rt->loop, &rt->store_tick, STORE_TICK_MS);
	return 0;
}

/* The store's on_commit, for the daemon's te_store_opts. */
void te_router_store_opts(struct te_router *rt, struct te_store_opts *o)
{
	o->on_commit = on_commit;
	o->ctx = rt;
}

void te_router_detach_store(struct te_router *rt)
{
	if (!rt->store)
		return;
	te_io_del(rt->loop, &rt->store_io);
	te_timer_cancel(rt->loop, &rt->store_tick);
	rt->store = NULL;
}

bool te_upstream_put(struct te_router *rt, struct te_port *src, unsigned prio,
		     int64_t ttl_secs, const struct te_msg *m)
{
	int64_t ttl = ttl_of(rt, ttl_secs);
	size_t len;
	int r;

	if (!rt->store || te_msg_encode(m, rt->tx, TE_RECORD_CAP, &len) < 0) {
		rt->upstream_dropped++;
		return false;
	}
	r = te_store_put(rt->store, up_ep_for(rt, src), prio, ttl, rt->tx, len, NULL);
	if (r == 0) {
		rt->upstream_msgs++;
		return true;
	}
	if (r == -EAGAIN && te_port_store_hold(rt, src, NULL, prio, ttl, rt->tx, len))
		return true;
	rt->upstream_dropped++;
	return false;
}

/* --- the module spill tier --- */

struct ep_count {
	uint32_t ep;
	uint64_t msgs;
};

static int ep_msgs(void *ctx, const struct te_store_qstat *q)
{
	struct ep_count *c = ctx;

	if (q->ep == c->ep)
		c->msgs += q->msgs;
	return 0;
}

static uint64_t ep_count(struct te_router *rt, uint32_t ep)
{
	struct ep_count c = { .ep = ep };

	te_store_foreach_queue(rt->store, ep_msgs, &c);
	return c.msgs;
}

void te_port_store_attach(struct te_router *rt, struct te_port *p)
{
	char name[TE_MODULE_NAME_MAX + 16];
	uint64_t main_msgs;

	if (!rt->store || p->has_ep)
		return;
	snprintf(name, sizeof(name), "/modules/%s/head", p->name);
	if (te_store_endpoint(rt->store, name, &p->head_ep) < 0)
		return;  /* the endpoint table is full: memory only */
	snprintf(name, sizeof(name), "/modules/%s", p->name);
	if (te_store_endpoint(rt->store, name, &p->store_ep) < 0)
		return;
	p->has_ep = true;
	/* A previous run's, delivered before anything new. */
	p->head_left = ep_count(rt, p->head_ep);
	main_msgs = ep_count(rt, p->store_ep);
	p->stored = p->head_left + main_msgs;
	te_store_cursor_init(&p->cur_head, p->head_ep);
	te_store_cursor_init(&p->cur, p->store_ep);
	if (p->stored)
		te_info("hub", "module %s: %llu messages waiting in the store", p->name,
			(unsigned long long)p->stored);
}

int te_port_store_put(struct te_router *rt, struct te_port *p, unsigned prio,
		      int64_t ttl_secs, const void *rec, size_t len)
{
	uint64_t seq;
	int r;

	if (!rt->store || !p->has_ep)
		return -ENOTCONN;
	r = te_store_put(rt->store, p->store_ep, prio, ttl_of(rt, ttl_secs), rec, len, &seq);
	if (r == 0)
		count_put(rt, p, seq);
	return r;
}

int te_port_store_peek(struct te_router *rt, struct te_port *p, uint32_t *len)
{
	struct te_store_cursor *c;
	struct te_store_item it;
	int r;

	if (!rt->store || !p->stored)
		return 0;
	p->peek_head = p->head_left > 0;
	c = p->peek_head ? &p->cur_head : &p->cur;
	p->cur_prev = *c;
	r = te_store_next(rt->store, c, &it, rt->rx, TE_RECORD_CAP);
	if (r == -ENOENT && p->peek_head) {
		/* Expired or evicted: the head is done. */
		p->stored -= p->stored < p->head_left ? p->stored : p->head_left;
		p->head_left = 0;
		return te_port_store_peek(rt, p, len);
	}
	if (r == -ENOENT) {
		/* Nothing readable: the rest is not committed yet, or it expired
		 * or was evicted (then the count is stale: start over). */
		if (te_store_committed(rt->store) >= p->last_put_seq)
			p->stored = 0;
		return 0;
	}
	if (r < 0) {
		te_warn("hub", "module %s: stored messages unreadable: %s", p->name, te_strerror(r));
		p->stored = p->head_left = 0;
		return 0;
	}
	p->peek_prio = it.prio;
	p->peek_seq = it.seq;
	*len = it.len;
	return 1;
}

void te_port_store_done(struct te_router *rt, struct te_port *p, bool delivered)
{
	if (!delivered) {
		*(p->peek_head ? &p->cur_head : &p->cur) = p->cur_prev;
		return;
	}
	if (te_store_ack(rt->store, p->peek_head ? p->head_ep : p->store_ep, p->peek_prio,
			 p->peek_seq) < 0)
		te_warn("hub", "module %s: cannot acknowledge a stored message: it may come again",
			p->name);
	if (p->peek_head && p->head_left)
		p->head_left--;
	if (p->stored)
		p->stored--;
}

/* At shutdown: what waits in memory for modules goes to the store, so a
 * restart of the daemon loses none of it. It is older than what the store
 * holds for the module already, so it goes to the module's head endpoint,
 * read first at the next start: the order is kept. (The head is empty
 * now: while anything is stored, new messages skip the memory tier.)
 * Blocking is fine here: the modules are stopped. */
void te_router_persist_spills(struct te_router *rt)
{
	uint64_t saved = 0, lost = 0;

	if (!rt->store)
		return;
	for (unsigned i = 0; i < rt->nports; i++) {
		struct te_port *p = rt->ports[i];
		uint32_t len;
		int r;

		/* In front of what is in the store already: the head endpoint. */
		while (p->has_ep && p->spill.used) {
			len = te_spill_peek(p, rt->rx);
			r = te_store_put(rt->store, p->head_ep, TE_ROUTE_PRIORITY_DEFAULT,
					 rt->ttl_default, rt->rx, len, NULL);
			if (r == -EAGAIN) {
				te_store_sync(rt->store);
				continue;
			}
			if (r < 0)
				lost++;
			else
				saved++;
			te_spill_drop(p);
		}
	}
	if (saved || lost)
		te_info("hub", "stopping: %llu queued messages saved to the store%s%llu lost",
			(unsigned long long)saved, lost ? ", " : "", (unsigned long long)lost);
}

/* --- `tinyedge queue` --- */

static void kint(struct te_jw *w, const char *k, uint64_t v)
{
	te_jw_kint(w, k, v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

static int queue_row(void *ctx, const struct te_store_qstat *q)
{
	struct te_jw *w = ctx;

	te_jw_obj_open(w);
	te_jw_kstr(w, "endpoint", q->endpoint);
	te_jw_kint(w, "priority", q->prio);
	kint(w, "messages", q->msgs);
	kint(w, "bytes", q->bytes);
	kint(w, "oldestAgeSecs", q->oldest_age_ms / 1000);
	kint(w, "delivered", q->delivered);
	kint(w, "expired", q->expired);
	kint(w, "evicted", q->evicted);
	kint(w, "purged", q->purged);
	kint(w, "failed", q->failed);
	te_jw_obj_close(w);
	return 0;
}

int te_queue_json(struct te_router *rt, struct te_jw *w)
{
	struct te_store_stats st;
	uint64_t secs = (te_now_ms() - rt->store_since_ms) / 1000;

	te_jw_obj_open(w);
	te_jw_key(w, "store");
	te_jw_obj_open(w);
	te_jw_kbool(w, "ok", rt->store != NULL);
	if (!rt->store) {
		te_jw_kstr(w, "error", rt->store_error);
	} else if (te_store_stats(rt->store, &st) == 0) {
		kint(w, "messages", st.msgs);
		kint(w, "bytes", st.bytes);
		kint(w, "fileBytes", st.file_bytes);
		kint(w, "mapBytes", st.map_bytes);
		kint(w, "maxBytes", st.max_bytes);
		kint(w, "capBytes", st.cap_bytes);
		kint(w, "usedBytes", st.used_bytes);
		kint(w, "pendingBytes", st.pending_bytes);
		kint(w, "expired", st.expired);
		kint(w, "evicted", st.evicted);
		kint(w, "purged", st.purged);
		kint(w, "failed", st.failed);
		kint(w, "delivered", st.delivered);
		kint(w, "commits", st.commits);
		kint(w, "commitErrors", st.commit_errors);
		kint(w, "staleReaders", st.stale_readers);
		kint(w, "storeBytesWritten", st.bytes_written);
		/* Flash budget: record bytes committed per hour since open,
		 * averaged over at least an hour (no wild first-second rates). */
		kint(w, "storeBytesWrittenPerHour", st.bytes_written * 3600 / (secs > 3600 ? secs : 3600));
		if (st.last_err)
			te_jw_kstr(w, "lastError", st.last_error);
	}
	te_jw_obj_close(w);
	te_jw_key(w, "upstream");
	te_jw_obj_open(w);
	kint(w, "accepted", rt->upstream_msgs);
	kint(w, "committed", rt->upstream_committed);
	kint(w, "failed", rt->upstream_failed);
	kint(w, "dropped", rt->upstream_dropped);
	te_jw_obj_close(w);
	te_jw_key(w, "queues");
	te_jw_arr_open(w);
	if (rt->store)
		te_store_foreach_queue(rt->store, queue_row, w);
	te_jw_arr_close(w);
	te_jw_obj_close(w);
	return te_jw_finish(w);
}

struct ep_find {
	const char *name;
	uint32_t ep;
	bool found;
};

static int ep_match(void *ctx, const struct te_store_qstat *q)
{
	struct ep_find *f = ctx;

	if (strcmp(q->endpoint, f->name))
		return 0;
	f->ep = q->ep;
	f->found = true;
	return 1;
}

/* An endpoint the store knows (never creates one from a typo). */
static int ep_lookup(struct te_router *rt, const char *name, uint32_t *ep)
{
	struct ep_find f = { .name = name };

	if (!rt->store)
		return -ENOTCONN;
	if (!strcmp(name, "$upstream")) {
		*ep = rt->up_ep;
		return 0;
	}
	te_store_foreach_queue(rt->store, ep_match, &f);
	*ep = f.ep;
	return f.found ? 0 : -ENOENT;
}

int te_queue_purge(struct te_router *rt, const char *endpoint)
{
	uint32_t ep;
	int r = ep_lookup(rt, endpoint, &ep);

	return r < 0 ? r : te_store_purge(rt->store, ep);
}

int te_queue_peek_begin(struct te_router *rt, const char *endpoint,
			struct te_store_cursor *c)
{
	uint32_t ep;
	int r = ep_lookup(rt, endpoint, &ep);

	if (r == 0)
		te_store_cursor_init(c, ep);
	return r;
}

/* One record as JSON: seq, priority, age, then the message. */
static int peek_json(const struct te_store_item *it, const struct te_msg *m, char *out,
		     size_t cap, size_t *len)
{
	struct te_jw w;

	te_jw_init(&w, out, cap);
	te_jw_obj_open(&w);
	kint(&w, "seq", it->seq);
	te_jw_kint(&w, "priority", it->prio);
	kint(&w, "ageMs", it->age_ms);
	for (int i = 0; i < TE_SYS_N; i++) {
		if (!m->sys[i].p)
			continue;
		te_jw_key(&w, te_sysprop_name((enum te_sysprop)i));
		te_jw_strn(&w, m->sys[i].p, m->sys[i].n);
	}
	te_jw_key(&w, "properties");
	te_jw_obj_open(&w);
	for (uint32_t i = 0; i < m->nprops; i++) {
		te_jw_keyn(&w, m->props[i].key.p, m->props[i].key.n);
		te_jw_strn(&w, m->props[i].val.p, m->props[i].val.n);
	}
	te_jw_obj_close(&w);
	if (te_json_utf8_valid(m->body, m->bodylen) && !memchr(m->body, '\0', m->bodylen)) {
		te_jw_key(&w, "body");
		te_jw_strn(&w, m->body, m->bodylen);
	} else {
		te_jw_key(&w, "bodyBase64");
		te_jw_base64(&w, m->body, m->bodylen);
	}
	te_jw_obj_close(&w);
	*len = w.len;
	return te_jw_finish(&w);
}

int te_queue_peek_next(struct te_router *rt, struct te_store_cursor *c, char **json,
		       size_t *len)
{
	struct te_prop props[TE_WIRE_PROPS_MAX];
	struct te_store_item it;
	struct te_msg m;
	size_t cap;
	int r = te_store_next(rt->store, c, &it, rt->rx, TE_RECORD_CAP);

	*json = NULL;
	if (r < 0)
		return r;
	if (te_msg_decode(rt->rx, it.len, &m, props, TE_WIRE_PROPS_MAX) < 0)
		return -TE_EMALFORMED;
	cap = 6 * (size_t)it.len + 4096;
	*json = malloc(cap);
	if (!*json)
		return -ENOMEM;
	r = peek_json(&it, &m, *json, cap, len);
	if (r < 0) {
		free(*json);
		*json = NULL;
	}
	return r;
}
