/* tinyedge module SDK: the C library a module process links to exchange
 * messages with the tinyedge daemon.
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
 *   te_module_on_input(m, on_input, ctx);
 *   for (;;) {
 *           err = te_module_dispatch(m, 1000);  (or poll te_module_fd)
 *           ...te_module_send(m, "out1", &msg)...
 *   }
 *   te_module_close(m);
 *
 * Errors. Every int-returning call returns 0 (or a count) on success and a
 * negative errno value on failure; the codes each call may return are
 * listed with it.
 *
 * Allocation. te_module_open allocates everything the handle ever needs;
 * sending and dispatching never allocate and make no syscall other than
 * the eventfd write or poll/read the wakeup protocol needs.
 *
 * Threads. A te_module is used by one thread at a time. Sending and
 * dispatching use separate rings and separate scratch space, so one thread
 * may send while another dispatches, provided each call kind is confined
 * to one thread at a time.
 *
 * Strings. All strings passed in are NUL-terminated UTF-8. Message bodies
 * are bytes. */
#ifndef TINYEDGE_MODULE_H
#define TINYEDGE_MODULE_H

#include <stddef.h>

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
 *   -ENOMEM  out of memory (handle, scratch space or mapping). */
int te_module_open(te_module **out);

/* Unmap the rings and free the handle. The inherited fds stay open. m may
 * be NULL. Must not be called from an input callback. */
void te_module_close(te_module *m);

/* The module's name from IOTEDGE_MODULEID, or "" if it was not set. Valid
 * until te_module_close. */
const char *te_module_name(const te_module *m);

/* Send msg on the named output: encode it straight into the out ring and,
 * if the daemon is asleep waiting for records, wake it. msg->input is
 * ignored. Safe to call from an input callback.
 *
 * output: non-empty, at most TE_MODULE_STR_MAX bytes; carried as the
 *         outputName system property.
 * Returns 0 (the message is in the ring: the daemon owns it now), or
 *   -EAGAIN    the out ring has no room for it now; retry later (the daemon
 *              frees space as it reads; there is no fd to poll for it);
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
 * NUL-terminated). The callback may call te_module_send and
 * te_module_heartbeat, but not te_module_dispatch or te_module_close. */
typedef void (*te_input_fn)(te_module *m, const struct te_message *msg, void *arg);

/* Set (or with fn NULL, clear) the input callback; arg is passed to it. */
void te_module_on_input(te_module *m, te_input_fn fn, void *arg);

/* An fd to poll for POLLIN: readable when input may be available (it is
 * the from-daemon eventfd). It is armed only by te_module_dispatch, which
 * always returns with the in ring empty and the daemon asked to signal the
 * fd, so the loop is: poll the fd, call te_module_dispatch(m, 0), repeat.
 * Do not read it yourself. */
int te_module_fd(const te_module *m);

/* Deliver every pending input message to the callback, in order. If none
 * was pending and timeout_ms is not 0, wait up to timeout_ms milliseconds
 * (negative: forever) for input, then deliver what arrived. On return the
 * daemon is asked to signal te_module_fd for the next input.
 *
 * Returns the number of messages delivered (0 on timeout), or
 *   -EINVAL  no callback set (nothing is consumed);
 *   -EBUSY   called from within the callback;
 *   -EINTR   a signal interrupted the wait;
 *   -EPROTO  the in ring or a message in it is corrupt: the connection is
 *            unusable (messages delivered before it are not counted). */
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
