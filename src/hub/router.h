/* The router: moves messages between modules' rings by the deployment's
 * routes (edgeHub's job, in memory).
 *
 * Each module has a port: one memfd with its two rings (wire.h) and two
 * eventfds, handed to the module at spawn as fds 3 (memfd), 4 (module ->
 * daemon wakeup) and 5 (daemon -> module wakeup). When a module's out-ring
 * has records, the router copies each out once (the ring is hostile
 * memory: every index and length is validated; a module that corrupts its
 * ring is reported through on_corrupt and loses its port), decodes it,
 * evaluates the routes whose source matches, and writes it once into each
 * matching target's in-ring — at most once per endpoint, with the best
 * priority among the routes that matched. Wakeups to modules are batched
 * once per loop turn.
 *
 * Overflow: a message for a module whose in-ring is full, or that is
 * restarting, waits in that module's bounded in-memory spill queue and is
 * delivered in order when there is room (the spill policy, until the store
 * backs it with LMDB). A message for a module that is not deployed, or past
 * the spill bound, is dropped and counted. Not yet: the drop-oldest,
 * drop-newest and block policies, and $upstream beyond counting. */
#ifndef TE_ROUTER_H
#define TE_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/manifest.h"
#include "core/diag.h"
#include "core/loop.h"
#include "ring.h"
#include "route.h"
#include "store/store.h"
#include "twin.h"

/* rt->rx and rt->tx: larger than any valid record (a message at every
 * wire.h limit is about 810 KiB); a longer record is a corrupt ring. */
#define TE_RECORD_CAP (1u << 20)
#define TE_ROUTER_BATCH 1024          /* records drained per port per turn */
#define TE_SPILL_BYTES (4u << 20)     /* in-memory spill per target module */

/* Messages for a module whose in-ring is full (or that is restarting),
 * in order: [u32 length][record] entries in a byte ring. Until the store
 * lands this is the spill policy's queue; past its bound messages are
 * dropped and counted. Allocated on first use. */
struct te_spill {
	uint8_t *buf;
	uint32_t head, used;
};

struct te_router;
struct te_stdio_scratch;
struct te_store;
struct te_upstream;

struct te_port {
	struct te_router *rt;
	char name[TE_MODULE_NAME_MAX + 1];
	uint32_t ring_bytes;
	struct te_ringset rs;
	int memfd;
	struct te_io up;        /* eventfd: module -> daemon */
	int down_fd;            /* eventfd: daemon -> module */
	struct te_timer again;  /* more records than one batch */
	bool open;              /* rings exist */
	bool running;           /* the module exec'd: deliver to it */
	bool wake;              /* a delivery since the last wakeup check */
	struct te_spill spill;
	/* stdio modules ("io": "stdio"): JSON lines instead of rings. */
	bool stdio;
	struct te_io sin;       /* the module's stdin (write end) */
	struct te_io sout;      /* the module's stdout (read end) */
	char *lbuf;             /* stdout bytes not yet routed */
	uint32_t lhave, lcap;
	bool ldiscard;          /* dropping the rest of an over-long line */
	char *obuf;             /* the input line being written */
	size_t olen, ooff, ocap;
	uint64_t malformed;     /* stdout lines that were not messages */
	struct te_twin twin;    /* desired and reported properties */
	bool twin_dirty;        /* changed since last written to the store */
	uint64_t twin_reports, methods;
	struct te_port *blocked_on;  /* a block route's target is backlogged */
	/* A message for $upstream the store could not take yet (its pending
	 * buffer was full): the port is not read until it is stored. */
	uint8_t *held;
	uint32_t held_len;
	unsigned held_prio;
	int64_t held_ttl;
	uint32_t held_ep;            /* $upstream, or a module's spill endpoint */
	struct te_port *held_dest;   /* that module (NULL for $upstream) */
	/* Past the in-memory queue, spilled messages go to the store (its
	 * endpoint "/modules/NAME"): stored of them are there (committed or
	 * not), read back in the store's order when the queue has drained. */
	bool has_ep;
	uint32_t store_ep;
	uint64_t stored, last_put_seq;
	struct te_store_cursor cur, cur_prev;
	/* What the in-memory tier held at the last shutdown, in front of the
	 * rest: its own endpoint "/modules/NAME/head", read first. */
	uint32_t head_ep;
	uint64_t head_left;
	struct te_store_cursor cur_head;
	bool peek_head;
	unsigned peek_prio;
	uint64_t peek_seq;
	uint64_t msgs_out, msgs_in, dropped, spilled, blocked;
};

struct te_rroute {
	struct te_route r;
	const char *name;
	unsigned priority;
	int64_t ttl_secs;      /* TE_TTL_UNSET: the deployment's or the config's */
	enum te_overflow overflow;
	struct te_port *port;  /* the sink module's port, looked up once */
	uint64_t matched, delivered;
	/* Drops by reason: no such module, full (drop-newest, or a queue at
	 * its bound), evicted from the queue by drop-oldest. */
	uint64_t dropped_absent, dropped_full, dropped_oldest;
};

struct te_router {
	struct te_loop *loop;
	struct te_hook flush;      /* batched wakeups, once per turn */
	struct te_timer retry;     /* spilled messages wait for room */
	struct te_rroute *routes;
	unsigned nroutes;
	struct te_port **ports;    /* sized at init to the deployment */
	unsigned nports, cap;
	uint8_t *rx;               /* one record copied out of a ring */
	uint8_t *tx;               /* one record being encoded */
	struct te_stdio_scratch *stdio_sc;  /* decoding a stdio line; on first use */
	uint64_t upstream_msgs;    /* accepted for $upstream (queued in the store) */
	/* The offline store ($upstream queue); NULL when it could not be
	 * opened (store_error says why): $upstream messages are then counted
	 * and dropped, module-to-module traffic goes on. */
	struct te_store *store;
	uint32_t up_ep;
	struct te_io store_io;
	struct te_timer store_tick;  /* expiry, reader check, clock record */
	char store_error[256];
	uint64_t store_since_ms;     /* opened (te_now_ms) */
	int64_t ttl_config;          /* storeAndForward.timeToLiveSecs */
	int64_t ttl_default;         /* the deployment's, else ttl_config */
	uint64_t upstream_committed, upstream_failed, upstream_dropped;
	bool twins_dirty;            /* a port's twin waits to be stored */
	/* A module corrupted its ring (its port is closed already). */
	void (*on_corrupt)(struct te_router *rt, struct te_port *p);
	/* A module's reported patch was merged: the cloud should have it. */
	void (*on_reported)(struct te_router *rt, struct te_port *p, const void *patch,
			    uint32_t len);
	/* The store committed: the uplink may have more to send. */
	void (*on_upstream)(struct te_router *rt);
	struct te_upstream *uplink;  /* for list; NULL when there is none */
	/* Modules with their own cloud identity: their $upstream messages go
	 * to their own store queue. */
	struct {
		char module[TE_MODULE_NAME_MAX + 1];
		uint32_t ep;
	} idents[16];
	unsigned nidents;
	/* A module answered direct method call id (te_port_call). */
	void (*on_method_result)(struct te_router *rt, struct te_port *p, uint32_t id,
				 uint32_t status, const void *body, uint32_t len);
	void *ctx;
};

int te_router_init(struct te_router *rt, struct te_loop *loop);
void te_router_free(struct te_router *rt);

/* Compile the manifest's routes (all of them, or none: on error every
 * problem is reported at the route's position and the old set stays). */
int te_router_set_routes(struct te_router *rt, const struct te_manifest *m,
			 struct te_diag *diag);

/* Inject a message into a module's input (`tinyedge send`), queued as the
 * spill policy would. 0, -ENOENT (no such module), -ENOSPC (its queue is
 * full: dropped), -EMSGSIZE. */
int te_router_send(struct te_router *rt, const char *module, const char *input,
		   const struct te_msg *m);

/* Use s (opened by the caller, who closes it after te_router_free) for
 * $upstream. 0 or -errno. */
int te_router_attach_store(struct te_router *rt, struct te_store *s);
/* Before te_store_close: stop using it. */
void te_router_detach_store(struct te_router *rt);
/* Point o's commit callback at the router (before te_store_open). */
struct te_store_opts;
void te_router_store_opts(struct te_router *rt, struct te_store_opts *o);

/* The module spill tier in the store (upqueue.c, for router.c): put a
 * record for p (0 or -errno); read the next one into rt->rx (1 with *len,
 * 0 none yet), then say whether it was delivered (acknowledged) or not
 * (it is read again next time). */
int te_port_store_put(struct te_router *rt, struct te_port *p, unsigned prio,
		      int64_t ttl_secs, const void *rec, size_t len);
/* The store's buffer is full: src keeps the record for p's endpoint and is
 * not read until it is stored. true = held. */
bool te_port_store_hold(struct te_router *rt, struct te_port *src, struct te_port *p,
			unsigned prio, int64_t ttl_secs, const void *rec, size_t len);
int te_port_store_peek(struct te_router *rt, struct te_port *p, uint32_t *len);
void te_port_store_done(struct te_router *rt, struct te_port *p, bool delivered);
/* The oldest record of p's in-memory queue into buf (its length), and
 * dropping it; the queue must not be empty. */
uint32_t te_spill_peek(struct te_port *p, void *buf);
void te_spill_drop(struct te_port *p);
/* At shutdown, after the modules stopped: move every in-memory queue into
 * the store (waits for the store's writer when its buffer is full). */
void te_router_persist_spills(struct te_router *rt);
/* Find p's endpoint and what a previous run left there. */
void te_port_store_attach(struct te_router *rt, struct te_port *p);

/* Messages for $upstream from module go to store endpoint ep (its own
 * connection drains it). 0 or -ENOSPC. */
int te_router_identity(struct te_router *rt, const char *module, uint32_t ep);
/* Has module its own identity (te_router_identity)? */
bool te_router_identity_of(const struct te_router *rt, const char *module);

/* Queue a message for $upstream at priority prio with ttl_secs
 * (TE_TTL_UNSET: the default; <= 0: until the quota evicts it). src (may be NULL) is the module it came from: when the store
 * cannot take it now, src holds it and is not read until it is stored.
 * true = accepted, false = dropped (no store, or no src to hold it). */
bool te_upstream_put(struct te_router *rt, struct te_port *src, unsigned prio,
		     int64_t ttl_secs, const struct te_msg *m);

/* `tinyedge queue`: the store's and the queues' figures as one JSON
 * object (te_jw_finish's result). */
struct te_jw;
struct te_store_cursor;
int te_queue_json(struct te_router *rt, struct te_jw *w);
/* Delete every record of an endpoint the store knows. 0, -ENOENT (no such
 * endpoint), -ENOTCONN (no store), or te_store_purge's error. */
int te_queue_purge(struct te_router *rt, const char *endpoint);
/* Read an endpoint's records in delivery order, without removing them:
 * begin (0, -ENOENT, -ENOTCONN), then next until -ENOENT; each gives one
 * JSON object in a malloc'd *json (the caller frees it). */
int te_queue_peek_begin(struct te_router *rt, const char *endpoint,
			struct te_store_cursor *c);
int te_queue_peek_next(struct te_router *rt, struct te_store_cursor *c, char **json,
		       size_t *len);

/* Validate routes without a router (for `check` and reloads). */
unsigned te_routes_check(const struct te_manifest *m, struct te_diag *diag);

/* The port of a module (created on first use). NULL on ENOMEM. */
struct te_port *te_router_port(struct te_router *rt, const char *name,
			       uint32_t ring_bytes);
/* Fresh rings for a new instance of the module; fds[3] = memfd, up, down
 * (the child inherits them; the router keeps its own ends). 0 or -errno. */
int te_port_open(struct te_port *p, int fds[3]);
/* The module's desired properties from the deployment (a JSON object,
 * NULL = none). The first call makes the port's twin: the one stored at
 * "twin/NAME" if there is one (kept as it is when the deployment's desired
 * JSON hashes as when it was last applied; else the deployment's desired
 * properties replace its own, as a new version), else a new one. Later
 * calls (reloads) change the twin only when the deployment's desired
 * properties changed (te_twin_set_desired); a running module is then sent
 * its new twin. 0, or -errno (te_twin_init's; the twin is unchanged). */
int te_port_set_desired(struct te_port *p, const char *json);
/* A cloud deployment, whose module twins come from the cloud: the stored
 * twin as it is (or an empty one); the deployment does not change it. */
int te_port_twin_keep(struct te_port *p);

/* Twins in the store (twinstore.c, for router.c): make p's twin from the
 * stored one and the deployment's desired json[0..n) (0 or te_twin_init's
 * error); mark it changed; write it if changed (0, or -EAGAIN / -ENOMEM:
 * still changed; wait: wait for the store's writer rather than -EAGAIN);
 * write every changed twin (once per loop turn, and at the end). */
int te_port_twin_load(struct te_port *p, const char *json, size_t n);
void te_port_twin_dirty(struct te_port *p);
int te_port_twin_store(struct te_port *p, bool wait);
void te_router_twins_store(struct te_router *rt, bool wait);

/* A desired-properties change for module's twin. cloud: version is the
 * cloud's $version (stale ones are ignored); else a local patch.
 * full: json is the whole desired document (replaces), else a merge
 * patch. Returns 200 (applied), 204 (stale or no change: ignored),
 * 400 (invalid; err says why), 404 (no such module), 413 (too large).
 * An applied change goes to the running module (a DESIRED record with the
 * patch, or its whole twin for a full document), to the
 * /twinChangeNotifications route source, and to the store. */
unsigned te_router_twin_desired(struct te_router *rt, const char *module,
				const char *json, size_t n, bool cloud,
				int64_t version, bool full, char *err, size_t errlen);

/* Call direct method name with payload[0..len) (JSON) on the module: the
 * answer comes to rt->on_method_result with the same id. 0, -ENOTCONN
 * (no instance: stopped, failed, backing off), -EOPNOTSUPP (a stdio module), -EMSGSIZE (over
 * TE_WIRE_METHOD_MAX or the module's ring), -ENOSPC (its queue is full). */
int te_port_call(struct te_port *p, uint32_t id, const char *name, const void *payload,
		 uint32_t len);

/* A stdio module's pipes (the write end of its stdin, the read end of its
 * stdout), owned by the port from now on. 0 or -errno (both closed). */
int te_port_open_stdio(struct te_port *p, int in_fd, int out_fd);
/* The module exec'd / exited (its remaining output is routed first). */
void te_port_running(struct te_port *p);
void te_port_stopped(struct te_port *p);
void te_port_free(struct te_port *p);

#endif
