/* tinyedge module SDK: the C library a module process links to exchange
 * messages with the tinyedge daemon, read its module twin, report
 * properties and serve direct methods.
 *
 * ---- The process contract -------------------------------------------------
 *
 * The daemon starts each module with:
 *
 *   TINYEDGE_IPC_FD=N     N is an inherited memfd holding the two message
 *                         rings (the format is tinyedge/wire.h); N + 1 is an
 *                         eventfd the module writes to wake the daemon, N + 2
 *                         one the daemon writes to wake the module. N is 3.
 *   IOTEDGE_MODULEID      the module's name.
 *   TINYEDGE_NOTIFY_FD    optional: an fd to write a newline to as a
 *                         heartbeat (te_module_heartbeat).
 *
 * ---- Use --------------------------------------------------------------------
 *
 *   te_module *m;
 *   int err = te_module_open(&m);
 *   te_module_on_input(m, on_input, ctx);      messages
 *   te_module_on_twin(m, on_twin, ctx);        the twin, then desired patches
 *   te_module_on_method(m, on_method, ctx);    direct methods (optional)
 *   for (;;) {
 *           err = te_module_dispatch(m, 1000);  (or poll te_module_fd)
 *           ...te_module_send(m, "out1", &msg)...
 *           ...te_module_twin_report(m, "{\"state\":\"ok\"}")...
 *   }
 *   te_module_close(m);
 *
 * Errors. Every int-returning call returns 0 (or a count) on success and a
 * negative errno value on failure; the codes each call may return are
 * listed with it.
 *
 * Allocation. te_module_open allocates everything the handle ever needs;
 * sending, reporting and dispatching never allocate and make no syscall
 * other than the eventfd write or poll/read the wakeup protocol needs.
 *
 * Threads. A te_module is used by one thread at a time, with one
 * exception: one thread may send (te_module_send, te_module_twin_report,
 * te_module_twin_get) while another dispatches, provided each of the two
 * is confined to one thread at a time. They use separate scratch space;
 * the out ring, which dispatch also writes method results to, is taken
 * without waiting: a send that finds dispatch writing a result returns
 * -EAGAIN, as for a full ring, and dispatch then keeps its result for
 * later (see te_module_dispatch).
 *
 * Strings. All strings passed in are NUL-terminated UTF-8. Message bodies
 * are bytes. */
#ifndef TINYEDGE_MODULE_H
#define TINYEDGE_MODULE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An open connection to the daemon. Opaque. */
typedef struct te_module te_module;

/* An application property: key must be non-empty, value may be empty; both
 * non-NULL. At most TE_MODULE_PROPS_MAX per message. */
struct te_property {
	const char *key;
	const char *value;
};

#define TE_MODULE_PROPS_MAX 64            /* application properties */
#define TE_MODULE_BODY_MAX (256 * 1024)   /* bytes of body */
#define TE_MODULE_STR_MAX 4096            /* bytes of any one string */
#define TE_MODULE_TWIN_MAX (32 * 1024)    /* bytes of a reported patch */
#define TE_MODULE_METHOD_MAX (128 * 1024) /* bytes of a method payload or response */

/* A message. On send every pointer is the caller's and is only read during
 * the call; NULL strings are absent properties. On receive (te_input_fn)
 * every pointer is the SDK's and valid only until the callback returns:
 * copy what you keep. */
struct te_message {
	const void *body;               /* body_len bytes; NULL only if body_len is 0 */
	size_t body_len;                /* <= TE_MODULE_BODY_MAX */
	const char *content_type;       /* NULL = absent */
	const char *content_encoding;   /* NULL = absent */
	const char *message_id;         /* NULL = absent */
	const char *correlation_id;     /* NULL = absent */
	const struct te_property *props;  /* nprops entries */
	size_t nprops;                  /* <= TE_MODULE_PROPS_MAX */
	const char *input;              /* receive only: the input name (NULL if
					 * the daemon gave none); ignored on send */
};

/* Connect to the daemon described by the environment (see above): map the
 * memfd TINYEDGE_IPC_FD names and validate it (seals, size, header,
 * indices), check the two eventfds after it, and read IOTEDGE_MODULEID and
 * TINYEDGE_NOTIFY_FD. The three inherited fds are marked close-on-exec so
 * they do not leak into programs the module runs; they are never closed
 * by the SDK.
 *
 * out: receives the handle, to be freed with te_module_close; unchanged on
 *      failure.
 * Returns 0, or
 *   -ENOENT  TINYEDGE_IPC_FD is not set (not started by tinyedge);
 *   -EINVAL  TINYEDGE_IPC_FD is not a number, one of the three fds is not
 *            open, or the memfd is not a valid, sealed ring mapping;
 *   -ENOMEM  out of memory (handle, scratch space, method response buffer
 *            or mapping). */
int te_module_open(te_module **out);

/* Unmap the rings and free the handle. The inherited fds stay open. m may
 * be NULL. Must not be called from a callback. */
void te_module_close(te_module *m);

/* The module's name from IOTEDGE_MODULEID, or "" if it was not set. Valid
 * until te_module_close. */
const char *te_module_name(const te_module *m);

/* Send msg on the named output: encode it straight into the out ring and,
 * if the daemon is asleep waiting for records, wake it. msg->input is
 * ignored. Safe to call from any callback.
 *
 * output: non-empty, at most TE_MODULE_STR_MAX bytes; carried as the
 *         outputName system property.
 * Returns 0 (the message is in the ring: the daemon owns it now), or
 *   -EAGAIN    the out ring has no room for it now (or dispatch is writing
 *              a method result into it on another thread); retry later
 *              (the daemon frees space as it reads; there is no fd to poll
 *              for it);
 *   -EMSGSIZE  over a limit above, or larger than the ring can ever hold
 *              (a record is at most half the ring);
 *   -EINVAL    m, output or msg NULL, output empty, a property with a NULL
 *              or empty key or a NULL value, body NULL with body_len > 0;
 *   -EPROTO    the daemon's consumer index is corrupt: the connection is
 *              unusable. */
int te_module_send(te_module *m, const char *output, const struct te_message *msg);

/* Called once per input message by te_module_dispatch. msg and everything
 * it points to are valid only until the callback returns; strings are
 * NUL-terminated copies, body points into the ring (zero copy, not
 * NUL-terminated). The callback may call te_module_send,
 * te_module_twin_report, te_module_twin_get and te_module_heartbeat, but
 * not te_module_dispatch or te_module_close. */
typedef void (*te_input_fn)(te_module *m, const struct te_message *msg, void *arg);

/* Set (or with fn NULL, clear) the input callback; arg is passed to it.
 * Without one, te_module_dispatch drops the messages it takes from the
 * ring and counts them (te_module_dropped). */
void te_module_on_input(te_module *m, te_input_fn fn, void *arg);

/* Messages dropped so far because no input callback was set. */
uint64_t te_module_dropped(const te_module *m);

/* ---- Module twin ---------------------------------------------------------------
 *
 * The daemon keeps the module's twin: desired properties (set by the cloud,
 * the deployment manifest or `tinyedge twin NAME --desired`) and reported
 * properties (set by the module), two JSON objects, each with an integer
 * "$version" (the format is in tinyedge/wire.h). The daemon sends the whole
 * twin ahead of any message each time it starts the module, so a module
 * that sets its twin callback before its first te_module_dispatch gets its
 * configuration first; desired-property changes then arrive as patches. */

#define TE_TWIN_FULL 1            /* the whole twin */
#define TE_TWIN_DESIRED_PATCH 2   /* a desired-properties patch */

/* Called by te_module_dispatch for each twin record, in ring order.
 *
 * what: TE_TWIN_FULL: json is {"desired":{...},"reported":{...}}; it
 *       replaces whatever the module knew of its twin (sent at start and
 *       in answer to te_module_twin_get).
 *       TE_TWIN_DESIRED_PATCH: json is an object with the desired
 *       properties that changed and the new "$version", to be applied as a
 *       JSON merge patch (RFC 7396: null deletes a property, an object
 *       merges recursively, anything else replaces). Patches come in
 *       version order, each newer than the last full twin.
 * json: a NUL-terminated copy of len bytes of JSON text, valid only until
 *       the callback returns.
 * The callback may call te_module_send, te_module_twin_report,
 * te_module_twin_get and te_module_heartbeat, but not te_module_dispatch or
 * te_module_close. Without a callback, twin records are consumed and
 * ignored. */
typedef void (*te_twin_fn)(te_module *m, int what, const char *json,
			   size_t len, void *arg);

/* Set (or with fn NULL, clear) the twin callback; arg is passed to it. */
void te_module_on_twin(te_module *m, te_twin_fn fn, void *arg);

/* Ask the daemon for the whole twin; it arrives later through the twin
 * callback (TE_TWIN_FULL), at a te_module_dispatch. Rarely needed: the
 * daemon sends it unasked at start and every change after it.
 * Returns 0, or
 *   -EINVAL  m NULL;
 *   -EAGAIN  the out ring has no room now (or dispatch is writing a method
 *            result into it on another thread); retry later;
 *   -EPROTO  the daemon's consumer index is corrupt. */
int te_module_twin_get(te_module *m);

/* Report properties: send patch_json, a JSON object in merge-patch form
 * ({"temperature":{"max":30},"obsolete":null}), to be merged into the
 * twin's reported properties. The daemon applies it at once and answers
 * with an acknowledgement (te_module_on_ack) carrying the id returned
 * here. Property names follow Azure's rules (no '$', '.', space or control
 * characters; at most 1 KiB) and the reported document stays within
 * TE_MODULE_TWIN_MAX bytes and 10 levels; the daemon checks all of it and
 * acknowledges a patch that breaks a rule with 400 or 413.
 *
 * patch_json: NUL-terminated, at most TE_MODULE_TWIN_MAX bytes, only read
 *      during the call. The SDK checks only its shape (first and last
 *      non-blank characters '{' and '}').
 * Returns the request id (> 0; ids count up from 1 and wrap after
 * INT_MAX; te_module_twin_get uses ids from the same sequence), or
 *   -EINVAL    m or patch_json NULL, or not shaped as an object;
 *   -EMSGSIZE  over TE_MODULE_TWIN_MAX bytes, or over what the ring can
 *              ever hold;
 *   -EAGAIN    as for te_module_twin_get;
 *   -EPROTO    as for te_module_twin_get. */
int te_module_twin_report(te_module *m, const char *patch_json);

/* Called by te_module_dispatch for each acknowledgement of a reported
 * patch, in the order the patches were sent.
 *
 * id:     te_module_twin_report's return value for the patch.
 * status: 200 applied; 400 refused (not an object, a property name Azure
 *         refuses, deeper than 10 levels); 413 the reported properties
 *         would exceed TE_MODULE_TWIN_MAX bytes.
 * text:   the daemon's reason, NUL-terminated ("" if none), valid only
 *         until the callback returns.
 * May call what the twin callback may. Without a callback,
 * acknowledgements are consumed and ignored. */
typedef void (*te_ack_fn)(te_module *m, int id, int status, const char *text,
			  void *arg);

/* Set (or with fn NULL, clear) the acknowledgement callback. */
void te_module_on_ack(te_module *m, te_ack_fn fn, void *arg);

/* ---- Direct methods ------------------------------------------------------------ */

/* Called by te_module_dispatch for each direct method call, in ring order;
 * the SDK sends its result to the caller when the handler returns.
 *
 * method:   the method's name, NUL-terminated.
 * payload:  a NUL-terminated copy of len bytes of JSON text; len 0 (and
 *           payload "") when the call has no payload (JSON null).
 * resp:     the SDK's buffer for the response payload, resp_cap bytes
 *           (TE_MODULE_METHOD_MAX, or less when the rings are too small to
 *           carry that much). Write JSON text there (the daemon validates
 *           it) and set *resp_len, which starts at 0 (no payload: null).
 * Returns the status for the caller: 200 for success, anything else by
 * the handler's convention (Azure's: 404 unknown method, 400 bad payload,
 * 500 failure). A *resp_len over resp_cap is answered with 500 instead.
 * method and payload are valid only until the handler returns. May call
 * what the twin callback may. */
typedef int (*te_method_fn)(te_module *m, const char *method,
			    const char *payload, size_t len, char *resp,
			    size_t resp_cap, size_t *resp_len, void *arg);

/* Set (or with fn NULL, clear) the method handler. Without one, the SDK
 * answers every call itself with status 501 and the payload
 * {"message":"no method handler"}. */
void te_module_on_method(te_module *m, te_method_fn fn, void *arg);

/* ---- Dispatch ------------------------------------------------------------------ */

/* An fd to poll for POLLIN: readable when records may be available (it is
 * the from-daemon eventfd). It is armed only by te_module_dispatch, which
 * returns with the in ring empty and the daemon asked to signal the fd, or
 * with the fd left readable (a method result waiting: see there), so the
 * loop is: call te_module_dispatch(m, 0), poll the fd, repeat. Dispatch
 * first: records written before the module started (the twin always is)
 * signal nothing. Do not read the fd yourself. */
int te_module_fd(const te_module *m);

/* Take every pending record from the in ring and hand it to its callback,
 * in ring order: messages (dropped without an input callback), twin
 * records, acknowledgements, method calls (answered when the handler
 * returns). If none was pending and timeout_ms is not 0, wait up to
 * timeout_ms milliseconds (negative: forever) for records, then handle
 * what arrived. On return the daemon is asked to signal te_module_fd for
 * the next record.
 *
 * Method results and a full out ring. When a result cannot be written
 * (the out ring is full, or another thread is sending), the SDK keeps it
 * and writes it at the start of every later call until it goes out. Calls
 * are answered one at a time: while a result waits, dispatch handles
 * records up to the next method call and stops there, waits at most 1 ms
 * instead of timeout_ms, and leaves te_module_fd readable so that a poll
 * loop comes back at once. The daemon frees the out ring as it reads it,
 * so this lasts as long as it is behind. te_module_close drops a result
 * still waiting.
 *
 * Returns the number of records taken from the in ring (0 on timeout), or
 *   -EINVAL  no callback of any kind set (nothing is consumed);
 *   -EBUSY   called from within a callback;
 *   -EINTR   a signal interrupted the wait;
 *   -EPROTO  the in ring or a record in it is corrupt, or the daemon's
 *            consumer index of the out ring is: the connection is unusable
 *            (records handled before it are not counted). */
int te_module_dispatch(te_module *m, int timeout_ms);

/* Tell the daemon the module is alive: write "\n" to TINYEDGE_NOTIFY_FD.
 * Returns 0 (also when TINYEDGE_NOTIFY_FD is not set), or -errno from
 * write(2): -EBADF, -EAGAIN (a non-blocking fd that is full), -EPIPE (the
 * daemon's end is closed; only if SIGPIPE is ignored or handled, as a
 * pipe raises it first). */
int te_module_heartbeat(te_module *m);

#ifdef __cplusplus
}
#endif

#endif
