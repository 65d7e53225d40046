/* MQTT 3.1.1 (OASIS standard, 2014) packets: a pure codec over caller
 * buffers. No I/O, no allocation, no globals: the session pumps bytes in
 * and out and keeps its own state.
 *
 * Encoders write one whole packet into buf[0..cap). Each returns 0 with
 * *len = bytes written; -TE_ENOSPACE with *len = bytes the packet needs
 * (nothing useful written: call again with a buffer that big; buf may be
 * NULL when cap is 0); -TE_EINVALID for an argument the protocol (or this
 * client: no QoS 2, no will) does not allow, *len untouched; -TE_ELIMIT
 * if the packet would be over the protocol's 268435455-byte remaining
 * length. len may be NULL.
 *
 * The decoder reads one packet at the start of buf and fills a view whose
 * strings and byte fields point into buf (buf must outlive the view;
 * nothing is copied). It validates every length, flag and field before
 * filling the view, so callers trust the view and do not check again.
 *
 * Strings (struct te_mqtt_str) are not NUL-terminated: use .n. The
 * protocol's UTF-8 strings must be well-formed UTF-8 (no overlong forms,
 * no surrogates, nothing above U+10FFFF) without U+0000 [MQTT-1.5.3-1,2];
 * the other control characters and non-characters are allowed (3.1.1
 * only says SHOULD NOT). */
#ifndef TE_UPSTREAM_MQTT_H
#define TE_UPSTREAM_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* te_mqtt_decode's "feed me more bytes" result: positive, so that every
 * negative result is an error that ends the connection. */
#define TE_MQTT_NEED_MORE 1

#define TE_MQTT_RL_MAX 268435455u   /* remaining length: 4 bytes of 7 bits */
#define TE_MQTT_PACKET_MAX (1u + 4u + TE_MQTT_RL_MAX)  /* max_packet: no limit */
#define TE_MQTT_STR_MAX 65535u      /* a length-prefixed string or byte field */

/* Control packet types (the high nibble of the first byte); 0 and 15 are
 * reserved. PUBREC, PUBREL and PUBCOMP (QoS 2) are decoded so that the
 * session can name them, never produced. */
enum te_mqtt_type {
	TE_MQTT_CONNECT = 1,
	TE_MQTT_CONNACK,
	TE_MQTT_PUBLISH,
	TE_MQTT_PUBACK,
	TE_MQTT_PUBREC,
	TE_MQTT_PUBREL,
	TE_MQTT_PUBCOMP,
	TE_MQTT_SUBSCRIBE,
	TE_MQTT_SUBACK,
	TE_MQTT_UNSUBSCRIBE,
	TE_MQTT_UNSUBACK,
	TE_MQTT_PINGREQ,
	TE_MQTT_PINGRESP,
	TE_MQTT_DISCONNECT,
};

/* CONNACK return codes (3.2.2.3); 6-255 are reserved. */
enum te_mqtt_connack_rc {
	TE_MQTT_CONNACK_ACCEPTED = 0,
	TE_MQTT_CONNACK_BAD_VERSION,
	TE_MQTT_CONNACK_ID_REJECTED,
	TE_MQTT_CONNACK_UNAVAILABLE,
	TE_MQTT_CONNACK_BAD_AUTH,
	TE_MQTT_CONNACK_NOT_AUTHORIZED,
};

/* SUBACK return codes are the granted QoS 0-2 or this. */
#define TE_MQTT_SUBACK_FAILURE 0x80

/* A string or byte view: n bytes at p, not NUL-terminated. p may be NULL
 * only when n is 0; where a field is optional, p == NULL means absent. */
struct te_mqtt_str {
	const char *p;
	size_t n;
};

/* A string literal as a te_mqtt_str. */
#define TE_MQTT_S(lit) ((struct te_mqtt_str){ (lit), sizeof(lit) - 1 })

/* CONNECT without a will (the encoder's input; the decoder fills it too).
 *   client_id     0-65535 bytes of UTF-8; empty only with clean_session
 *                 [MQTT-3.1.3-7]. IoT Hub wants "{device}[/{module}]".
 *   username      optional (p NULL: absent), UTF-8.
 *   password      optional (NULL: absent), password_len bytes of any
 *                 value; needs a username [MQTT-3.1.2-22].
 *   keepalive     seconds, 0 (off) to 65535.
 *   clean_session discard any previous session on the broker. */
struct te_mqtt_connect {
	struct te_mqtt_str client_id;
	struct te_mqtt_str username;
	const uint8_t *password;
	size_t password_len;
	unsigned keepalive;
	bool clean_session;
};

/* A CONNECT's will (decoded only: this client sends none). */
struct te_mqtt_will {
	bool present;
	uint8_t qos;
	bool retain;
	struct te_mqtt_str topic;
	const uint8_t *msg;
	size_t msg_len;
};

/* PUBLISH (the encoder's input; the decoder fills it too).
 *   topic    a topic name: 1-65535 bytes of UTF-8 without '+' or '#'.
 *   payload  payload_len bytes (NULL only if 0); the rest of the packet.
 *   qos      0 or 1 to encode; the decoder also accepts 2.
 *   id       packet identifier: non-zero for QoS 1 and 2, 0 for QoS 0.
 *   dup      a resend of a QoS 1 or 2 message (never with QoS 0).
 *   retain   the broker keeps it for future subscribers. */
struct te_mqtt_publish {
	struct te_mqtt_str topic;
	const uint8_t *payload;
	size_t payload_len;
	uint16_t id;
	uint8_t qos;
	bool dup, retain;
};

/* One SUBSCRIBE entry: a topic filter ('+' as a whole level, '#' as the
 * whole last level) and the requested QoS (0 or 1 to encode; the decoder
 * also accepts 2). UNSUBSCRIBE entries have qos 0. */
struct te_mqtt_sub {
	struct te_mqtt_str filter;
	uint8_t qos;
};

/* A decoded packet. Fields that the type does not carry are 0 / NULL.
 *   type, flags   the first byte's high and low nibble.
 *   len           bytes of the whole packet: consume exactly these.
 *   id            packet identifier (PUBLISH QoS > 0, PUBACK, PUBREC,
 *                 PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE,
 *                 UNSUBACK); never 0 where the type has one.
 *   pub           PUBLISH (pub.id == id).
 *   connack       CONNACK: session_present only with rc 0.
 *   suback        SUBACK: n >= 1 return codes at rc, each 0, 1, 2 or 0x80.
 *   filters       SUBSCRIBE, UNSUBSCRIBE: count >= 1 entries, validated,
 *                 in the n payload bytes at p; read them with
 *                 te_mqtt_next_filter().
 *   connect, will, level   CONNECT. The protocol name is "MQTT" (anything
 *                 else is malformed); level is as sent: a broker answers
 *                 a level other than 4 with CONNACK rc 1. Likewise an
 *                 empty client id without clean_session decodes (rc 2 is
 *                 the broker's answer), and will.qos may be 2. */
struct te_mqtt_pkt {
	uint8_t type;
	uint8_t flags;
	size_t len;
	uint16_t id;
	struct te_mqtt_publish pub;
	struct {
		bool session_present;
		uint8_t rc;
	} connack;
	struct {
		const uint8_t *rc;
		size_t n;
	} suback;
	struct {
		const uint8_t *p;
		size_t n;
		size_t count;
	} filters;
	struct te_mqtt_connect connect;
	struct te_mqtt_will will;
	uint8_t level;
};

/* Client packets. */
int te_mqtt_enc_connect(uint8_t *buf, size_t cap, const struct te_mqtt_connect *c,
			size_t *len);
int te_mqtt_enc_publish(uint8_t *buf, size_t cap, const struct te_mqtt_publish *m,
			size_t *len);
/* PUBACK for a QoS 1 PUBLISH received with id (non-zero). */
int te_mqtt_enc_puback(uint8_t *buf, size_t cap, uint16_t id, size_t *len);
/* SUBSCRIBE to subs[0..n): n >= 1, id non-zero, each filter valid
 * (te_mqtt_check_filter) and qos 0 or 1. */
int te_mqtt_enc_subscribe(uint8_t *buf, size_t cap, uint16_t id,
			  const struct te_mqtt_sub *subs, size_t n, size_t *len);
/* UNSUBSCRIBE from filters[0..n): as te_mqtt_enc_subscribe. */
int te_mqtt_enc_unsubscribe(uint8_t *buf, size_t cap, uint16_t id,
			    const struct te_mqtt_str *filters, size_t n, size_t *len);
int te_mqtt_enc_pingreq(uint8_t *buf, size_t cap, size_t *len);
int te_mqtt_enc_disconnect(uint8_t *buf, size_t cap, size_t *len);

/* Broker packets, for tests and fake brokers. */
/* CONNACK: rc 0-5; session_present only with rc 0 [MQTT-3.2.2-4]. */
int te_mqtt_enc_connack(uint8_t *buf, size_t cap, bool session_present, uint8_t rc,
			size_t *len);
/* SUBACK with rcs[0..n): n >= 1, each 0, 1, 2 or 0x80; id non-zero. */
int te_mqtt_enc_suback(uint8_t *buf, size_t cap, uint16_t id, const uint8_t *rcs,
		       size_t n, size_t *len);
int te_mqtt_enc_unsuback(uint8_t *buf, size_t cap, uint16_t id, size_t *len);
int te_mqtt_enc_pingresp(uint8_t *buf, size_t cap, size_t *len);

/* Decode the packet at the start of buf[0..n) (bytes after it are the
 * next packet's, left alone). max_packet caps the whole packet (fixed
 * header included), so a read buffer of max_packet bytes holds any packet
 * accepted; TE_MQTT_PACKET_MAX means the protocol's own limit. Returns:
 *   0                  *out filled; consume out->len bytes.
 *   TE_MQTT_NEED_MORE  buf is a prefix of a packet that may still be
 *                      valid; out->len = the packet's total size once the
 *                      fixed header is complete, else 0.
 *   -TE_EMALFORMED     not MQTT 3.1.1: a reserved type (0, 15); first-byte
 *                      flags other than the type's (PUBLISH: QoS 3, or DUP
 *                      with QoS 0); a remaining length over 4 bytes or not
 *                      in its fewest bytes (3.1.1 gives one encoding per
 *                      value; MQTT 5 makes it normative, [MQTT-1.5.5-1],
 *                      and it keeps decode/encode canonical); a remaining
 *                      length wrong for the type (CONNACK not 2, ...); a
 *                      field running past the packet, or bytes left after
 *                      the last field; a bad string (UTF-8, U+0000); an
 *                      empty topic, or wildcards in a topic name, or
 *                      misplaced ones in a filter; a packet id 0; a
 *                      reserved flag or QoS 3; a CONNACK with flags other
 *                      than session-present, session-present with an
 *                      error, or rc > 5; a SUBACK rc not 0, 1, 2, 0x80; a
 *                      SUBSCRIBE or UNSUBSCRIBE without filters.
 *                      Decided as early as the bytes allow: a bad first
 *                      byte or length field fails before the body arrives.
 *   -TE_ELIMIT         the packet is bigger than max_packet, decided from
 *                      the length field alone (before its last byte when
 *                      the bytes so far already exceed it): the caller
 *                      never waits for or buffers what the peer claims.
 * On an error out->len is 0 and the rest of *out is unspecified. */
int te_mqtt_decode(const uint8_t *buf, size_t n, size_t max_packet,
		   struct te_mqtt_pkt *out);

/* Step through a decoded SUBSCRIBE's or UNSUBSCRIBE's entries: *pos starts
 * at 0; true with *sub filled (the filter points into the packet) while
 * an entry is left, then false. */
bool te_mqtt_next_filter(const struct te_mqtt_pkt *pkt, size_t *pos,
			 struct te_mqtt_sub *sub);

/* 0 if t is a valid topic name (1-65535 bytes of UTF-8 without U+0000,
 * '+' or '#'), else -TE_EINVALID. */
int te_mqtt_check_topic(struct te_mqtt_str t);

/* 0 if f is a valid topic filter (as a topic name, but '+' may be a whole
 * level and '#' the whole last level), else -TE_EINVALID. */
int te_mqtt_check_filter(struct te_mqtt_str f);

/* Whether topic name topic matches filter (3.1.1 section 4.7): '+' one
 * level (possibly empty), '#' the parent level and any below it; a topic
 * starting with '$' is not matched by a filter starting with a wildcard.
 * False if either is invalid. */
bool te_mqtt_topic_match(struct te_mqtt_str filter, struct te_mqtt_str topic);

/* "accepted", "unacceptable protocol version", ... for a CONNACK return
 * code; "reserved return code" past 5. Static storage, never NULL. */
const char *te_mqtt_connack_str(unsigned rc);

/* "CONNECT", "PUBLISH", ... for a packet type; "reserved" for 0, 15 and
 * anything else. Static storage, never NULL. */
const char *te_mqtt_type_str(unsigned type);

#endif
