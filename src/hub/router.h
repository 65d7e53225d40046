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
#include "twin.h"

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
	struct te_twin twin;    /* ring modules: desired and reported properties */
	uint64_t twin_reports, methods;
	struct te_port *blocked_on;  /* a block route's target is backlogged */
	uint64_t msgs_out, msgs_in, dropped, spilled, blocked;
};

struct te_rroute {
	struct te_route r;
	const char *name;
	unsigned priority;
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
	uint64_t upstream_msgs;    /* counted until the store lands */
	/* A module corrupted its ring (its port is closed already). */
	void (*on_corrupt)(struct te_router *rt, struct te_port *p);
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

/* Validate routes without a router (for `check` and reloads). */
unsigned te_routes_check(const struct te_manifest *m, struct te_diag *diag);

/* The port of a module (created on first use). NULL on ENOMEM. */
struct te_port *te_router_port(struct te_router *rt, const char *name,
			       uint32_t ring_bytes);
/* Fresh rings for a new instance of the module; fds[3] = memfd, up, down
 * (the child inherits them; the router keeps its own ends). 0 or -errno. */
int te_port_open(struct te_port *p, int fds[3]);
/* The module's desired properties from the deployment (a JSON object,
 * NULL = none). A change raises the desired version; a running module is
 * sent its new twin. 0, or -errno (te_twin_init's; the twin is unchanged). */
int te_port_set_desired(struct te_port *p, const char *json);

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
