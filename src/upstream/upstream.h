/* The uplink: one MQTT 3.1.1 session (over TLS with BearSSL unless the
 * config says tls: false) that drains the store's $upstream queue to an
 * Azure IoT Hub or any MQTT broker, on the daemon's event loop.
 *
 * States: idle -> resolving (getaddrinfo on a helper thread, with a
 * timeout) -> connecting (non-blocking connect, with a timeout) -> tls
 * (handshake) -> mqtt (CONNECT sent, waiting for CONNACK) -> online
 * (subscriptions sent, publishing) -> on any failure: backoff (1 s doubling
 * to 60 s, with jitter) -> resolving again.
 *
 * Online, up to cfg->inflight QoS 1 PUBLISHes are outstanding; each is fed
 * from the store (te_store_next, best priority first, then order) and
 * acknowledged in the store when its PUBACK arrives. A reconnect resends
 * from the oldest unacknowledged record: at least once, in order per
 * priority. A message over IoT Hub's 256 KiB limit is dead-lettered
 * (counted, logged, removed), never left to block the queue. */
#ifndef TE_UPSTREAM_H
#define TE_UPSTREAM_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "azure.h"
#include "core/config.h"
#include "core/loop.h"
#include "store/store.h"

struct te_router;
struct te_tls;

enum te_up_state {
	TE_UPS_IDLE, TE_UPS_RESOLVING, TE_UPS_CONNECTING, TE_UPS_TLS, TE_UPS_MQTT,
	TE_UPS_ONLINE, TE_UPS_BACKOFF,
};

#define TE_UP_INFLIGHT_MAX 1024
#define TE_UP_CALLS_MAX 16          /* cloud method calls waiting for modules */
#define TE_UP_CALL_BIT 0x80000000u  /* te_port_call ids of cloud calls */

/* What the daemon does with the cloud's deployments and built-in methods
 * (set before the first connect; NULL: ignored / 404). */
#define TE_AGENT_ID "$edgeAgent"  /* the identity of deployments and built-in methods */

struct te_up_hooks {
	/* The $edgeAgent (kind 0) or $edgeHub (1) twin's desired properties,
	 * whole or a merge patch, or (2) a generic-mode deployment message. */
	void (*deployment)(void *ctx, int kind, const char *json, size_t n, int64_t version,
			   bool full);
	/* A built-in $edgeAgent method: its status; *out malloc'd (or NULL). */
	unsigned (*agent_method)(void *ctx, const char *method, const char *payload, size_t n,
				 char **out, size_t *outlen);
	void *ctx;
};

struct te_up_inflight {
	uint16_t pid;       /* 0: free */
	unsigned prio;
	uint64_t seq;
};

struct te_upstream {
	struct te_loop *loop;
	const struct te_upstream_config *cfg;
	const char *device_id;
	const struct te_module_identity *id;  /* NULL: the device's connection */
	uint32_t ep;               /* its store queue: $upstream or $upstream/MODULE */
	struct te_azure_cs cs;     /* Azure: the parsed connection string */
	struct te_router *rt;
	const struct te_up_hooks *hooks;
	enum te_up_state state;
	/* Identity (Azure: from the connection string). */
	char host[TE_HOST_MAX];
	unsigned port;
	char client_id[TE_HOST_MAX], username[2 * TE_HOST_MAX];
	char module_id[TE_HOST_MAX];
	char *password;            /* SAS token or the configured password */
	uint64_t sas_expiry;       /* seconds since the epoch; 0 = no SAS */
	int64_t floor;             /* clock floor: build time or last good time */
	char good_time_path[PATH_MAX];
	uint64_t good_time_written;
	/* Connection. */
	struct te_io io;
	struct te_timer timer;     /* connect timeout, backoff, keepalive */
	struct te_tls *tls;        /* NULL: plain TCP */
	struct te_event resolved;  /* the resolver thread is done */
	pthread_t resolver;
	bool resolver_running;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int resolve_err;
	uint8_t *rbuf, *wbuf;
	size_t rlen, wlen, woff, bufcap;
	/* Session. */
	struct te_store_cursor cur;
	struct te_up_inflight *inflight;
	unsigned ninflight;
	uint16_t next_pid;
	uint32_t next_rid;
	unsigned backoff_ms;
	bool clock_wait;          /* no credentials until the clock passes the floor */
	uint64_t last_rx_ms, last_tx_ms, online_since_ms;
	uint64_t tls_start_ns;
	double tls_ms;             /* the last TLS handshake */
	uint64_t desired_version;  /* newest desired $version seen */
	/* Reported properties not yet sent (offline): one merged patch, keyed
	 * by module on the device's connection ({"MODULE": patch, ...}). */
	char *reported;
	size_t reported_len;
	struct {
		uint32_t id;           /* 0: free */
		uint64_t deadline;
		char rid[TE_AZURE_RID_MAX + 1];
		char module[TE_ID_MAX + 1];  /* generic mode: where to answer */
	} calls[TE_UP_CALLS_MAX];
	unsigned ncalls;
	uint32_t next_call;
	/* Counters and state for list/queue. */
	uint64_t published, acked, dead_lettered, connects, failures;
	uint64_t since_ms;         /* te_upstream_init (te_now_ms) */
	uint64_t online_ms;        /* online stretches that ended */
	char last_error[256];
};

/* Set up (nothing is started when the protocol is none). id NULL: the
 * device's connection (queue $upstream); else a module's own identity
 * (Azure; queue "$upstream/MODULE", which the router fills with that
 * module's messages). 0 or -errno; err says what is wrong with the
 * configuration (a certificate file, the connection string). */
int te_upstream_init(struct te_upstream *u, struct te_loop *loop,
		     const struct te_config *cfg, struct te_router *rt,
		     const struct te_module_identity *id, char *err, size_t errlen);
void te_upstream_free(struct te_upstream *u);

/* The store committed more $upstream messages: publish what the window
 * allows. */
void te_upstream_kick(struct te_upstream *u);

const char *te_upstream_state_name(enum te_up_state s);

struct te_jw;
/* The session's state and counters as a JSON object. */
void te_upstream_json(const struct te_upstream *u, struct te_jw *w);

/* Module's reported patch (merged locally): send it to the cloud now, or
 * merged with what waits, after the next CONNACK. */
void te_upstream_report(struct te_upstream *u, const char *module, const void *patch,
			uint32_t len);

/* Modules were added: fetch the twin again so that their desired
 * properties in it reach them (Azure; not the $edgeAgent/$edgeHub ones). */
void te_upstream_twin_refresh(struct te_upstream *u);

/* A module answered a cloud direct method (ids with TE_UP_CALL_BIT). */
void te_upstream_method_result(struct te_upstream *u, uint32_t id, uint32_t status,
			       const void *body, uint32_t n);

#endif
