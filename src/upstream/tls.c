/* The TLS client session: BearSSL's engine pumped over a non-blocking
 * socket. The engine never touches the socket; this file moves its record
 * bytes with send/recv and turns its state into EPOLLIN/EPOLLOUT. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "core/err.h"
#include "upstream/tls_int.h"

#define DAYS_0000_TO_1970 719528u /* br_x509_minimal_set_time counts from 0000-01-01 */
/* BearSSL's default accepts 1017-bit RSA; NIST retired RSA-1024 in 2013.
 * (EC keys are P-256, P-384 or P-521: BearSSL knows no smaller curve.) */
#define RSA_MIN_BYTES 256

/* ---- messages ----------------------------------------------------------- */

static const char *const br_reasons[] = {
	[BR_ERR_BAD_PARAM] = "bad parameter",
	[BR_ERR_BAD_STATE] = "bad engine state",
	[BR_ERR_UNSUPPORTED_VERSION] = "server does not support TLS 1.2",
	[BR_ERR_BAD_VERSION] = "server sent an unexpected protocol version",
	[BR_ERR_BAD_LENGTH] = "record with a bad length",
	[BR_ERR_TOO_LARGE] = "record too large",
	[BR_ERR_BAD_MAC] = "record with a bad MAC",
	[BR_ERR_NO_RANDOM] = "no entropy source",
	[BR_ERR_UNKNOWN_TYPE] = "record of an unknown type",
	[BR_ERR_UNEXPECTED] = "unexpected message from the server",
	[BR_ERR_BAD_CCS] = "bad ChangeCipherSpec",
	[BR_ERR_BAD_ALERT] = "bad alert message",
	[BR_ERR_BAD_HANDSHAKE] = "bad handshake message",
	[BR_ERR_OVERSIZED_ID] = "oversized session id",
	[BR_ERR_BAD_CIPHER_SUITE] = "server chose a cipher suite we do not offer",
	[BR_ERR_BAD_COMPRESSION] = "server chose compression",
	[BR_ERR_BAD_FRAGLEN] = "bad fragment length",
	[BR_ERR_BAD_SECRENEG] = "bad secure renegotiation",
	[BR_ERR_EXTRA_EXTENSION] = "server sent an extension we did not ask for",
	[BR_ERR_BAD_SNI] = "bad server name indication",
	[BR_ERR_BAD_HELLO_DONE] = "bad ServerHelloDone",
	[BR_ERR_LIMIT_EXCEEDED] = "handshake limit exceeded",
	[BR_ERR_BAD_FINISHED] = "bad Finished message",
	[BR_ERR_RESUME_MISMATCH] = "session resumption mismatch",
	[BR_ERR_INVALID_ALGORITHM] = "server used an algorithm we did not offer",
	[BR_ERR_BAD_SIGNATURE] = "bad server key exchange signature",
	[BR_ERR_WRONG_KEY_USAGE] = "server key not allowed for this cipher suite",
	[BR_ERR_NO_CLIENT_AUTH] = "client authentication failed",
	[BR_ERR_IO] = "I/O error",
	[BR_ERR_X509_INVALID_VALUE] = "certificate: invalid value",
	[BR_ERR_X509_TRUNCATED] = "certificate: truncated",
	[BR_ERR_X509_EMPTY_CHAIN] = "server sent no certificate",
	[BR_ERR_X509_INNER_TRUNC] = "certificate: inner element truncated",
	[BR_ERR_X509_BAD_TAG_CLASS] = "certificate: bad DER tag class",
	[BR_ERR_X509_BAD_TAG_VALUE] = "certificate: bad DER tag",
	[BR_ERR_X509_INDEFINITE_LENGTH] = "certificate: indefinite length",
	[BR_ERR_X509_EXTRA_ELEMENT] = "certificate: extra element",
	[BR_ERR_X509_UNEXPECTED] = "certificate: unexpected element",
	[BR_ERR_X509_NOT_CONSTRUCTED] = "certificate: bad DER",
	[BR_ERR_X509_NOT_PRIMITIVE] = "certificate: bad DER",
	[BR_ERR_X509_PARTIAL_BYTE] = "certificate: bad BIT STRING",
	[BR_ERR_X509_BAD_BOOLEAN] = "certificate: bad BOOLEAN",
	[BR_ERR_X509_OVERFLOW] = "certificate: value out of range",
	[BR_ERR_X509_BAD_DN] = "certificate: bad distinguished name",
	[BR_ERR_X509_BAD_TIME] = "certificate: bad time",
	[BR_ERR_X509_UNSUPPORTED] = "certificate: unsupported feature or key",
	[BR_ERR_X509_LIMIT_EXCEEDED] = "certificate: too large",
	[BR_ERR_X509_WRONG_KEY_TYPE] = "certificate: wrong key type",
	[BR_ERR_X509_BAD_SIGNATURE] = "certificate: bad signature",
	[BR_ERR_X509_TIME_UNKNOWN] = "certificate: validation time unknown",
	[BR_ERR_X509_EXPIRED] = "certificate expired or not yet valid",
	[BR_ERR_X509_DN_MISMATCH] = "certificate chain: issuer and subject do not match",
	[BR_ERR_X509_BAD_SERVER_NAME] = "certificate does not match the server name",
	[BR_ERR_X509_CRITICAL_EXTENSION] = "certificate: unsupported critical extension",
	[BR_ERR_X509_NOT_CA] = "certificate chain: issuer is not a CA",
	[BR_ERR_X509_FORBIDDEN_KEY_USAGE] = "certificate: key usage forbids this use",
	[BR_ERR_X509_WEAK_PUBLIC_KEY] = "certificate: RSA key shorter than 2048 bits",
	[BR_ERR_X509_NOT_TRUSTED] = "certificate not signed by a trusted CA",
};

static const char *const alert_names[] = {
	[0] = "close_notify", [10] = "unexpected_message", [20] = "bad_record_mac",
	[22] = "record_overflow", [40] = "handshake_failure", [42] = "bad_certificate",
	[43] = "unsupported_certificate", [44] = "certificate_revoked",
	[45] = "certificate_expired", [46] = "certificate_unknown",
	[47] = "illegal_parameter", [48] = "unknown_ca", [49] = "access_denied",
	[50] = "decode_error", [51] = "decrypt_error", [70] = "protocol_version",
	[71] = "insufficient_security", [80] = "internal_error",
	[86] = "inappropriate_fallback", [90] = "user_canceled",
	[100] = "no_renegotiation", [109] = "missing_extension",
	[110] = "unsupported_extension", [112] = "unrecognized_name",
	[116] = "certificate_required", [120] = "no_application_protocol",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const char *tls_br_reason(int e)
{
	if (e >= 0 && (size_t)e < NELEM(br_reasons) && br_reasons[e])
		return br_reasons[e];
	return NULL;
}

static const char *alert_name(int a)
{
	return (size_t)a < NELEM(alert_names) && alert_names[a] ? alert_names[a] : "unknown";
}

/* Which validity bound failed is not said by BearSSL; the time it
 * validated at, and whether that was the floor, tell the reader. */
static void tls_describe_time(struct te_tls *t)
{
	time_t at = (time_t)t->vtime;
	struct tm tm;
	char when[32] = "?";

	if (gmtime_r(&at, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	snprintf(t->msg, sizeof(t->msg), "certificate expired or not yet valid at %s (%s)", when,
		 t->floored ? "the floor: the clock is behind it" : "the clock");
}

/* t->msg for BearSSL error e. */
static void tls_describe(struct te_tls *t, int e)
{
	const int recv = BR_ERR_RECV_FATAL_ALERT, send = BR_ERR_SEND_FATAL_ALERT;

	if (e == BR_ERR_X509_BAD_SERVER_NAME)
		snprintf(t->msg, sizeof(t->msg), "certificate does not match %s", t->server_name);
	else if (e == BR_ERR_X509_EXPIRED)
		tls_describe_time(t);
	else if (e >= recv && e < recv + 256)
		snprintf(t->msg, sizeof(t->msg), "server sent alert %s (%d)%s",
			 alert_name(e - recv), e - recv,
			 t->key_type == 0 && (e - recv == 40 || e - recv == 116) ?
			 "; does it require a client certificate?" : "");
	else if (e >= send && e < send + 256)
		snprintf(t->msg, sizeof(t->msg), "sent alert %s (%d)", alert_name(e - send),
			 e - send);
	else if (tls_br_reason(e))
		snprintf(t->msg, sizeof(t->msg), "%s", tls_br_reason(e));
	else
		snprintf(t->msg, sizeof(t->msg), "TLS error (BearSSL code %d)", e);
}

/* ---- setup ------------------------------------------------------------- */

/* TLS 1.2, ECDHE with AEAD ciphers only, RSA or ECDSA server keys, SHA-2
 * signatures: a subset of br_ssl_client_init_full (see tls.h). */
static void tls_profile(struct te_tls *t)
{
	static const uint16_t suites[] = {
		BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	};
	static const br_hash_class *const hashes[] = {
		[br_sha224_ID] = &br_sha224_vtable, [br_sha256_ID] = &br_sha256_vtable,
		[br_sha384_ID] = &br_sha384_vtable, [br_sha512_ID] = &br_sha512_vtable,
	};
	br_ssl_engine_context *eng = &t->cc.eng;
	br_x509_minimal_context *xc = &t->xc;

	br_ssl_client_zero(&t->cc);
	br_ssl_engine_set_versions(eng, BR_TLS12, BR_TLS12);
	br_x509_minimal_init(xc, &br_sha256_vtable, t->anchors, t->n_anchors);
	br_x509_minimal_set_minrsa(xc, RSA_MIN_BYTES);
	br_ssl_engine_set_suites(eng, suites, NELEM(suites));
	br_ssl_engine_set_default_rsavrfy(eng);
	br_ssl_engine_set_default_ecdsa(eng);
	br_x509_minimal_set_rsa(xc, br_ssl_engine_get_rsavrfy(eng));
	br_x509_minimal_set_ecdsa(xc, br_ssl_engine_get_ec(eng), br_ssl_engine_get_ecdsa(eng));
	for (int id = br_sha224_ID; id <= br_sha512_ID; id++) {
		br_ssl_engine_set_hash(eng, id, hashes[id]);
		br_x509_minimal_set_hash(xc, id, hashes[id]);
	}
	br_ssl_engine_set_x509(eng, &xc->vtable);
	br_ssl_engine_set_prf_sha256(eng, &br_tls12_sha256_prf);
	br_ssl_engine_set_prf_sha384(eng, &br_tls12_sha384_prf);
	br_ssl_engine_set_default_aes_gcm(eng);
	br_ssl_engine_set_default_chapol(eng);
	br_ssl_engine_set_buffer(eng, t->iobuf, sizeof(t->iobuf), 1);
	if (t->key_type == BR_KEYTYPE_RSA)
		br_ssl_client_set_single_rsa(&t->cc, t->chain, t->chain_len,
					     br_skey_decoder_get_rsa(&t->key),
					     br_rsa_pkcs1_sign_get_default());
	else if (t->key_type == BR_KEYTYPE_EC)
		br_ssl_client_set_single_ec(&t->cc, t->chain, t->chain_len,
					    br_skey_decoder_get_ec(&t->key), BR_KEYTYPE_SIGN, 0,
					    br_ec_get_default(), br_ecdsa_sign_asn1_get_default());
}

int te_tls_new(struct te_tls **out, const struct te_tls_config *c, char *err, size_t errlen)
{
	size_t nlen = c->server_name ? strlen(c->server_name) : 0;
	struct te_tls *t;
	int r;

	*out = NULL;
	if (nlen == 0 || nlen > TE_TLS_NAME_MAX) {
		snprintf(err, errlen, nlen ? "server name is longer than %d bytes" :
			 "server name is required", TE_TLS_NAME_MAX);
		return -EINVAL;
	}
	if (!(t = calloc(1, sizeof(*t)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->fd = -1;
	t->time_floor = c->time_floor;
	memcpy(t->server_name, c->server_name, nlen + 1);
	if ((r = tls_load_anchors(t, c->ca_file, err, errlen)) ||
	    (r = tls_load_client(t, c->cert_file, c->key_file, err, errlen))) {
		te_tls_free(t);
		return r;
	}
	tls_profile(t);
	*out = t;
	return 0;
}

void te_tls_free(struct te_tls *t)
{
	if (!t)
		return;
	free(t->anchors);
	free(t->chain);
	explicit_bzero(t, sizeof(*t)); /* the private key and session keys */
	free(t);
}

/* Validation at max(now, floor), as days and seconds since 0000-01-01. */
static void tls_set_time(struct te_tls *t)
{
	int64_t now = time(NULL);

	t->floored = now < t->time_floor;
	if (t->floored)
		now = t->time_floor;
	if (now < 0)
		now = 0;
	t->vtime = now;
	br_x509_minimal_set_time(&t->xc, DAYS_0000_TO_1970 + (uint32_t)(now / 86400),
				 (uint32_t)(now % 86400));
}

int te_tls_start(struct te_tls *t, int fd)
{
	tls_set_time(t);
	t->fd = fd;
	t->fail = 0;
	t->ready = false;
	t->msg[0] = '\0';
	if (!br_ssl_client_reset(&t->cc, t->server_name, 0)) {
		tls_describe(t, br_ssl_engine_last_error(&t->cc.eng));
		return t->fail = -TE_ETLS;
	}
	return 0;
}

/* ---- socket I/O --------------------------------------------------------- */

static int tls_usable(const struct te_tls *t)
{
	return t->fd < 0 ? -ENOTCONN : t->fail;
}

static int tls_io_fail(struct te_tls *t, const char *op, int err)
{
	snprintf(t->msg, sizeof(t->msg), "%s: %s", op, strerror(-err));
	return t->fail = err;
}

/* The engine stopped: 0 after a clean close_notify exchange, else
 * -TE_ETLS with the reason in t->msg. */
static int tls_closed(struct te_tls *t)
{
	int e = br_ssl_engine_last_error(&t->cc.eng);

	if (e == BR_ERR_OK)
		return 0;
	tls_describe(t, e);
	return t->fail = -TE_ETLS;
}

/* A server that refuses the handshake (a client certificate it does not
 * like) sends an alert and closes, and our next send fails with a reset
 * before the engine has read the alert: read it from the socket
 * ourselves. Before ChangeCipherSpec an alert record is plaintext:
 * type 21, version, length 2, level, description. */
static bool peer_alert(struct te_tls *t)
{
	unsigned char rec[7];
	ssize_t k = recv(t->fd, rec, sizeof(rec), MSG_DONTWAIT);

	if (k != (ssize_t)sizeof(rec) || rec[0] != 21 || rec[3] != 0 || rec[4] != 2)
		return false;
	tls_describe(t, BR_ERR_RECV_FATAL_ALERT + rec[6]);
	t->fail = -TE_ETLS;
	return true;
}

/* One send of pending record bytes: 0 (progress), -EAGAIN or an error. */
static int tls_send(struct te_tls *t)
{
	size_t len;
	unsigned char *p = br_ssl_engine_sendrec_buf(&t->cc.eng, &len);
	ssize_t k;
	int err;

	do
		k = send(t->fd, p, len, MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	if (k >= 0) {
		br_ssl_engine_sendrec_ack(&t->cc.eng, (size_t)k);
		return 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return -EAGAIN;
	err = errno;
	if (!t->ready && peer_alert(t))
		return t->fail;
	return tls_io_fail(t, "send", err == EPIPE ? -ECONNRESET : -err);
}

/* One recv into the engine: 0 (progress), -EAGAIN or an error. */
static int tls_recv(struct te_tls *t)
{
	size_t len;
	unsigned char *p = br_ssl_engine_recvrec_buf(&t->cc.eng, &len);
	ssize_t k;

	do
		k = recv(t->fd, p, len, 0);
	while (k < 0 && errno == EINTR);
	if (k > 0) {
		br_ssl_engine_recvrec_ack(&t->cc.eng, (size_t)k);
		return 0;
	}
	if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return -EAGAIN;
	if (k < 0)
		return tls_io_fail(t, "recv", -errno);
	snprintf(t->msg, sizeof(t->msg), te_tls_ready(t) ?
		 "connection closed by the server without close_notify" :
		 "connection closed by the server during the handshake");
	return t->fail = -ECONNRESET;
}

/* The engine's state; the session is ready once it takes or gives
 * application data (a record on its way out hides SENDAPP for a while,
 * hence a flag rather than asking the engine each time). */
static unsigned tls_state(struct te_tls *t)
{
	unsigned st = br_ssl_engine_current_state(&t->cc.eng);

	if (st & (BR_SSL_SENDAPP | BR_SSL_RECVAPP))
		t->ready = true;
	return st;
}

/* Sends buffered records: 0 when none is left, -EAGAIN when the socket is
 * full, -EPIPE after a clean close, or the session's error. */
static int tls_push(struct te_tls *t)
{
	for (;;) {
		unsigned st = tls_state(t);
		int r;

		if (st & BR_SSL_CLOSED)
			return (r = tls_closed(t)) ? r : -EPIPE;
		if (!(st & BR_SSL_SENDREC))
			return 0;
		if ((r = tls_send(t)))
			return r;
	}
}

ssize_t te_tls_read(struct te_tls *t, void *buf, size_t n)
{
	int r;

	if ((r = tls_usable(t)))
		return r;
	for (;;) {
		unsigned st = tls_state(t);
		unsigned char *p;
		size_t len;

		if (st & BR_SSL_CLOSED)
			return tls_closed(t);
		if (st & BR_SSL_RECVAPP) {
			p = br_ssl_engine_recvapp_buf(&t->cc.eng, &len);
			len = len < n ? len : n;
			memcpy(buf, p, len);
			br_ssl_engine_recvapp_ack(&t->cc.eng, len);
			return (ssize_t)len;
		}
		/* Handshake messages and alerts go out before more comes in
		 * (the handshake is half-duplex); a full socket only stops
		 * us if there is nothing to receive. */
		if (st & BR_SSL_SENDREC) {
			r = tls_send(t);
			if (r == 0)
				continue;
			if (r != -EAGAIN || !(st & BR_SSL_RECVREC))
				return r;
		}
		if (!(st & BR_SSL_RECVREC))
			return -EAGAIN;
		if ((r = tls_recv(t)))
			return r;
	}
}

ssize_t te_tls_write(struct te_tls *t, const void *buf, size_t n)
{
	unsigned char *p;
	size_t len;
	int r;

	if ((r = tls_usable(t)))
		return r;
	if (n == 0)
		return 0;
	if (!(p = br_ssl_engine_sendapp_buf(&t->cc.eng, &len))) {
		if ((r = tls_push(t)) && r != -EAGAIN)
			return r;
		if (!(p = br_ssl_engine_sendapp_buf(&t->cc.eng, &len)))
			return -EAGAIN;
	}
	len = len < n ? len : n;
	memcpy(p, buf, len);
	br_ssl_engine_sendapp_ack(&t->cc.eng, len);
	if ((r = tls_push(t)) && r != -EAGAIN)
		return r;
	return (ssize_t)len;
}

int te_tls_flush(struct te_tls *t)
{
	int r;

	if ((r = tls_usable(t)))
		return r;
	br_ssl_engine_flush(&t->cc.eng, 0);
	return tls_push(t);
}

uint32_t te_tls_events(const struct te_tls *t)
{
	unsigned st;
	uint32_t ev = 0;

	if (tls_usable(t))
		return 0;
	st = br_ssl_engine_current_state(&t->cc.eng);
	if (st & BR_SSL_CLOSED)
		return 0;
	if (st & BR_SSL_SENDREC)
		ev |= EPOLLOUT;
	if (st & BR_SSL_RECVREC)
		ev |= EPOLLIN;
	return ev;
}

bool te_tls_ready(const struct te_tls *t)
{
	return !tls_usable(t) && t->ready &&
	       !(br_ssl_engine_current_state(&t->cc.eng) & BR_SSL_CLOSED);
}

const char *te_tls_error(const struct te_tls *t)
{
	return t->msg;
}

bool te_tls_time_floored(const struct te_tls *t)
{
	return t->floored;
}

void te_tls_close(struct te_tls *t)
{
	if (t->fd < 0)
		return;
	if (!t->fail) {
		br_ssl_engine_close(&t->cc.eng);
		tls_push(t); /* as far as the socket takes it now */
	}
	t->fd = -1;
	t->ready = false;
}
