/* Metrics: the daemon's figures in the Prometheus text exposition format,
 * version 0.0.4 (`tinyedge metrics`, and GET /metrics when the config has
 * a "metrics" object). docs/metrics.md lists every family.
 *
 * The writer (te_prom_*) is a codec: it formats families and samples into
 * a caller buffer (fixed, or malloc'd and doubled as needed) and does no
 * I/O. A family is written as "# HELP", "# TYPE", then its samples, so
 * the samples of a family are always together and after its TYPE line;
 * the renderer writes each family once. Label values are escaped (\\, \",
 * \n), HELP text too (\\, \n). Errors are sticky: the first one
 * (-TE_ENOSPACE for a full fixed buffer, -ENOMEM, -EINVAL for a metric or
 * label name outside [a-zA-Z_:][a-zA-Z0-9_:]*) stops all output and
 * te_prom_finish returns it.
 *
 * The HTTP endpoint (metrics_http.c) runs on the daemon's loop: at most
 * TE_MHTTP_CLIENTS connections, a request head of at most
 * TE_MHTTP_REQ_MAX bytes read within TE_MHTTP_TIMEOUT_MS, one response,
 * then close (HTTP/1.0 style). It never blocks: writes that do not fit
 * the socket wait for EPOLLOUT, and a client that stalls is dropped at
 * its deadline. */
#ifndef TE_METRICS_H
#define TE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/loop.h"

#define TE_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum te_prom_type { TE_PROM_COUNTER, TE_PROM_GAUGE };

struct te_prom_label {
	const char *name;
	const char *value;      /* any UTF-8; escaped on output */
};

struct te_prom {
	char *buf;              /* always NUL-terminated at len */
	size_t len, cap;
	bool grow;              /* buf is malloc'd: it doubles when full */
	int err;                /* the first error, sticky; 0 = none */
	const char *family;     /* the family samples are written for */
};

/* Write into buf[0..cap) (cap >= 1); nothing is allocated. */
void te_prom_init(struct te_prom *p, char *buf, size_t cap);
/* Write into a malloc'd buffer that grows (initial bytes at first);
 * te_prom_free releases it. */
void te_prom_init_alloc(struct te_prom *p, size_t initial);
void te_prom_free(struct te_prom *p);
/* 0, or the first error. */
int te_prom_finish(const struct te_prom *p);

/* Start a family: its HELP and TYPE lines. name must stay valid until the
 * next te_prom_family (a string literal). */
void te_prom_family(struct te_prom *p, const char *name, enum te_prom_type type,
		    const char *help);
/* One sample of the current family with n labels (l may be NULL if n is
 * 0): an integer; v / 10^decimals written exactly with that many digits
 * after the point (seconds from milliseconds: decimals 3); a double
 * (shortest round-trip form; NaN, +Inf, -Inf as Prometheus spells them). */
void te_prom_u64(struct te_prom *p, const struct te_prom_label *l, unsigned n, uint64_t v);
void te_prom_fixed(struct te_prom *p, const struct te_prom_label *l, unsigned n, uint64_t v,
		   unsigned decimals);
void te_prom_f64(struct te_prom *p, const struct te_prom_label *l, unsigned n, double v);

/* Where the daemon's figures come from (owned by the daemon). */
struct te_supervisor;
struct te_upstream;
struct te_metrics_src {
	struct te_supervisor *sv;       /* modules; sv->router (may be NULL): ports,
					 * routes, the store */
	const struct te_upstream *ups;  /* uplink sessions, the device's first */
	const unsigned *nups;           /* their number, as it changes (NULL: none) */
	const char *device_id;
	uint64_t start_ms;              /* te_now_ms() at daemon start */
};

/* Every family (docs/metrics.md) into p. 0 or p's error. */
int te_metrics_render(const struct te_metrics_src *src, struct te_prom *p);

/* --- the HTTP endpoint (metrics_http.c) --- */

#define TE_MHTTP_CLIENTS 8
#define TE_MHTTP_REQ_MAX 8192     /* request line and headers */
#define TE_MHTTP_TIMEOUT_MS 5000  /* to send the request; then to take the answer */

struct te_metrics;

struct te_mhttp_client {
	struct te_io io;
	struct te_metrics *m;
	bool used;
	char *req;                /* TE_MHTTP_REQ_MAX bytes, malloc'd at accept */
	size_t reqlen;
	int overlong;             /* the head is over the limit: 414 or 431 */
	char *out;                /* the response, once there is one */
	size_t outlen, outoff;
	uint64_t deadline;        /* te_now_ms(): closed when it passes */
};

struct te_metrics {
	struct te_metrics_src src;
	struct te_loop *loop;
	struct te_io listen;      /* fd -1: no HTTP endpoint */
	bool paused;              /* every slot taken: listen is not watched */
	struct te_timer timer;    /* the earliest client deadline */
	struct te_mhttp_client clients[TE_MHTTP_CLIENTS];
};

/* Keep src (start_ms is set to now) and, when cfg->metrics.port is set,
 * listen on cfg->metrics.address:port. A socket that cannot be bound is
 * logged; the figures stay available through the control socket. 0 or
 * -errno. te_metrics_free is safe after either. */
int te_metrics_init(struct te_metrics *m, struct te_loop *loop, const struct te_config *cfg,
		    const struct te_metrics_src *src);
void te_metrics_free(struct te_metrics *m);

#endif
