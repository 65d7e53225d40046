/* The control socket: <state-dir>/control.sock, mode 0600, peers checked
 * with SO_PEERCRED (root or the daemon's own uid only; with
 * control.adminGroup also that group's members, the socket then 0660 and
 * the state dir 0710 with that group). At most TE_CTL_CLIENTS at once; a
 * request line of at most TE_CTL_REQ_MAX bytes must arrive within
 * TE_CTL_REQ_SECS, and a client that reads none of its answer for
 * TE_CTL_STALL_SECS is dropped (docs/security.md).
 *
 * Protocol: the client sends one JSON object on one line; the daemon
 * answers and closes (or, for a followed log, keeps writing lines):
 *   {"cmd":"list"}                         -> {"modules":[...]}
 *   {"cmd":"logs","module":M,"tail":N,"sinceMs":T,"follow":B}
 *                                          -> formatted log lines
 *   {"cmd":"start"|"stop"|"restart","module":M} -> {"ok":true}
 *   {"cmd":"twin","module":M[,"desired":PATCH]} -> the twin (PATCH: the
 *                                          JSON text of a local desired
 *                                          patch, applied first)
 *   {"cmd":"call","module":M,"method":X,"payload":P,"timeoutSecs":N}
 *                                          -> {"status":S,"payload":...}
 *     (module "$edgeAgent": the agent's built-in methods, answered at once)
 *   {"cmd":"metrics"}                      -> Prometheus text (metrics.h)
 *   {"cmd":"images"[,"action":"list"]}     -> te_images_json (images.h)
 *   {"cmd":"images","action":"pull","url":U} -> {"ok":true,"path":P} once
 *                                          the image is in the cache
 *   {"cmd":"images","action":"gc"}         -> {"removed":[{sha256,size,url}]}
 * Errors: {"error":"message","code":2} (2 = invalid request or no such
 * module, 1 = runtime failure). */
#ifndef TE_SERVER_H
#define TE_SERVER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/supervisor.h"
#include "core/loop.h"

#define TE_CTL_CLIENTS 16
/* A request is one JSON line; `send` carries a whole message record in
 * base64 (up to about 1.1 MiB), the others fit in a few hundred bytes.
 * The buffer grows only as a request needs it. */
#define TE_CTL_REQ_MAX (2u << 20)
#define TE_CTL_REQ_SECS 10
#define TE_CTL_STALL_SECS 30

struct te_metrics_src;

struct te_ctl_client {
	struct te_io io;
	struct te_ctl *ctl;
	bool used;
	char *req;              /* the request line so far (malloc'd, grows) */
	size_t reqlen, reqcap;
	bool overlong;          /* discarding a request that did not fit */
	char *out;              /* pending response bytes (malloc'd) */
	size_t outlen, outoff;
	bool follow;            /* logs -f: keep streaming */
	char module[TE_MODULE_NAME_MAX + 1];
	uint64_t next_seq;
	uint64_t deadline_ms;   /* te_now_ms(): the request must be in by then */
	uint64_t out_ms;        /* the answer last moved (or was queued) */
	bool answered;
	uint32_t call_id;       /* waiting for this direct method's result */
	uint64_t call_deadline; /* te_now_ms() */
	unsigned call_secs;
	unsigned img_pull;      /* waiting for this image pull (images.h) */
};

struct te_agent;
struct te_images;

struct te_ctl {
	struct te_loop *loop;
	struct te_supervisor *sv;
	struct te_agent *agent;      /* $edgeAgent methods; NULL: none */
	struct te_io listen;
	struct te_timer follow_timer;
	struct te_timer call_timer;  /* direct method calls time out */
	struct te_timer reap_timer;  /* slow and stalled clients are dropped */
	bool admin;                  /* admin_gid may connect too */
	gid_t admin_gid;
	uint64_t refused_log_ms;     /* refusals are logged once per 10 s */
	uint64_t refused;            /* clients refused: busy or not allowed */
	uint32_t next_call_id;
	const struct te_metrics_src *metrics;  /* for "metrics"; set by the daemon */
	struct te_images *images;    /* for "images"; NULL: not available */
	struct te_ctl_client clients[TE_CTL_CLIENTS];
	char path[PATH_MAX];
};

/* Bind and listen at <state_dir>/control.sock (a stale file is replaced:
 * the caller holds the state dir's lock). 0 or -errno. */
int te_ctl_open(struct te_ctl *ctl, struct te_loop *loop,
		struct te_supervisor *sv, const char *state_dir);
void te_ctl_close(struct te_ctl *ctl);

/* Answer one request line (without its newline) into c->out, as a client's
 * read does; for the "request" fuzz target. */
void te_ctl_request(struct te_ctl_client *c, const char *line, size_t len);

/* Let members of group gid use the socket too (admin false: only root and
 * the daemon's user): sets the socket's and the state dir's group and mode.
 * Called after te_ctl_open and on every reload. */
void te_ctl_set_admin(struct te_ctl *ctl, bool admin, gid_t gid);

/* A module answered direct method call id: reply to the client that made
 * it, if it is still waiting (late answers are dropped). */
void te_ctl_method_result(struct te_ctl *ctl, const char *module, uint32_t id,
			  uint32_t status, const void *body, uint32_t len);

/* Write the list document for sv into buf (for the server and tests).
 * 0 or -TE_ENOSPACE. */
int te_ctl_list_json(struct te_supervisor *sv, char *buf, size_t cap,
		     size_t *len);

#endif
