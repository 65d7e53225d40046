/* A non-blocking TLS 1.2 client over a connected socket, with BearSSL.
 *
 * Profile. TLS 1.2 only; ECDHE key exchange only (forward secrecy), with
 * AES-128-GCM, AES-256-GCM or ChaCha20-Poly1305; RSA or ECDSA (P-256,
 * P-384, P-521) server certificates; certificate signatures with SHA-224 ..
 * SHA-512 (no MD5, no SHA-1). This covers Azure IoT Hub and any current
 * MQTT broker, and keeps CBC, static RSA/ECDH and 3DES out of the binary.
 * Every session is a full handshake (no resumption): the server
 * certificate is validated on every connect.
 *
 * Validation. The server certificate chain must lead to a trust anchor of
 * the CA bundle, must be valid at the validation time, and must name
 * server_name in a subjectAltName dNSName entry or its CN (BearSSL checks
 * both; wildcards match one label). BearSSL matches DNS names only: a server reached by IP address
 * still needs a name here. There is no revocation checking. The validation
 * time is max(now, time_floor), set explicitly on every te_tls_start:
 * time checks are never disabled; a device clock that is behind (an
 * RTC-less boot in 1970) is replaced by the floor, and te_tls_time_floored
 * says so.
 *
 * Memory. te_tls_new allocates everything (the engine and its 33 KiB
 * full-duplex buffer, the trust anchors, the client chain and key);
 * nothing else allocates. te_tls_free releases it.
 *
 * Driving it from an event loop (one socket, the caller owns the fd):
 *
 *	te_tls_start(t, fd);                  connected, O_NONBLOCK
 *	on any event on fd:
 *		te_tls_flush(t);              sends handshake / pending records
 *		while ((n = te_tls_read(t, buf, cap)) > 0) consume(buf, n);
 *		n == 0: closed cleanly; n < 0 && n != -EAGAIN: failed
 *	arm epoll with te_tls_events(t)       EPOLLIN and/or EPOLLOUT
 *
 * te_tls_read also sends what the handshake needs, so reading alone
 * completes a handshake; te_tls_ready() turns true once it is done.
 * Writes are buffered in the engine (several small writes make one record)
 * until te_tls_flush, or until the engine's record buffer is full.
 *
 * Errors are 0 or negative: -errno from the socket (-ECONNRESET also for
 * a peer that closes the TCP connection without close_notify), or
 * -TE_ETLS for a TLS failure (certificate refused, alert, protocol error),
 * with a human message from te_tls_error(). After an error the session is
 * dead: every call returns the same error until te_tls_start or
 * te_tls_close. */
#ifndef TE_TLS_H
#define TE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TE_TLS_ERR_MAX 256  /* te_tls_new's err: enough for any message */
#define TE_TLS_NAME_MAX 253 /* server_name bytes (a DNS name) */

/* The system bundles tried in order when ca_file is NULL. */
#define TE_TLS_SYSTEM_CA1 "/etc/ssl/certs/ca-certificates.crt"
#define TE_TLS_SYSTEM_CA2 "/etc/ssl/cert.pem"

struct te_tls;

struct te_tls_config {
	/* PEM bundle of trust anchors (every CERTIFICATE object; other objects
	 * are ignored). NULL: the system bundle, TE_TLS_SYSTEM_CA1 then
	 * TE_TLS_SYSTEM_CA2, where certificates BearSSL cannot decode are
	 * skipped. In a file given here every certificate must decode. */
	const char *ca_file;
	/* Client certificate chain (PEM, leaf first) and its private key (PEM:
	 * RSA or EC, PKCS#1 / SEC1 or unencrypted PKCS#8). Both or neither. */
	const char *cert_file;
	const char *key_file;
	/* Required, never NULL or empty: the name checked against the server
	 * certificate, and sent as SNI. Copied. */
	const char *server_name;
	/* Seconds since the epoch: validate certificates at max(now,
	 * time_floor). 0: no floor. Use the build time or the last known good
	 * time. */
	int64_t time_floor;
};

/* Loads and checks the files of c once and allocates the whole client.
 * On failure returns a negative code and writes one line to err (errlen
 * bytes, TE_TLS_ERR_MAX is enough) naming the file and the problem:
 * "/etc/x/ca.pem: no certificate found", "key.pem: does not match
 * cert.pem", "server name is required". Codes: -EINVAL (config), -errno
 * (a file cannot be read), -TE_ELIMIT (a file over 4 MiB), -TE_EMALFORMED
 * (broken PEM, or a certificate or key that does not decode),
 * -TE_EINVALID (no certificate or key in the file, an encrypted key, a key
 * that does not match the certificate), -ENOMEM. c and its strings are not
 * kept. */
int te_tls_new(struct te_tls **out, const struct te_tls_config *c, char *err, size_t errlen);

/* Frees t and wipes the private key. Does not touch the socket. NULL is
 * accepted. */
void te_tls_free(struct te_tls *t);

/* Starts a new session (full handshake) on fd: a connected, non-blocking
 * socket owned by the caller, who closes it. Resets whatever session t had,
 * so one t serves every reconnect. Sets the validation time. 0 or -TE_ETLS
 * (the engine refused the reset; te_tls_error says why). */
int te_tls_start(struct te_tls *t, int fd);

/* Reads up to n (> 0) bytes of application data: > 0 bytes read; 0 when
 * the server closed the session cleanly (close_notify); -EAGAIN when
 * nothing is available yet (wait for te_tls_events); -ECONNRESET, other
 * -errno or -TE_ETLS on failure. Drives the handshake: before te_tls_ready
 * it returns -EAGAIN or the handshake's failure. -ENOTCONN before
 * te_tls_start or after te_tls_close. */
ssize_t te_tls_read(struct te_tls *t, void *buf, size_t n);

/* Copies up to n bytes into the engine's output record: returns how many
 * it took (> 0; 0 only for n == 0), or -EAGAIN when the engine takes none
 * now (handshake not done, or the socket is not taking the previous
 * records), or the session's error (-EPIPE once closed). Records that are
 * complete are sent if the socket takes them; call te_tls_flush to send
 * the rest. */
ssize_t te_tls_write(struct te_tls *t, const void *buf, size_t n);

/* Closes the current record and sends every buffered record (and, during
 * the handshake, handshake records): 0 when all are sent, -EAGAIN when the
 * socket is full (wait for EPOLLOUT and call again), or the session's
 * error. */
int te_tls_flush(struct te_tls *t);

/* EPOLLIN and/or EPOLLOUT: what the engine waits for now. 0 when the
 * session is not started, failed or closed. */
uint32_t te_tls_events(const struct te_tls *t);

/* The handshake is done and the session is open. */
bool te_tls_ready(const struct te_tls *t);

/* One line for the last failure of the session ("certificate expired or
 * not yet valid", "certificate does not match NAME", "certificate not
 * signed by a trusted CA", "server sent alert handshake_failure (40)",
 * "recv: Connection reset by peer"), or "" when there was none. Valid
 * until the next call on t. */
const char *te_tls_error(const struct te_tls *t);

/* The last te_tls_start found the clock behind time_floor and validates at
 * the floor (the caller logs it). */
bool te_tls_time_floored(const struct te_tls *t);

/* Best effort: queues close_notify, sends what the socket takes without
 * waiting, and stops the session (calls return -ENOTCONN until the next
 * te_tls_start). Does not close fd. */
void te_tls_close(struct te_tls *t);

#endif
