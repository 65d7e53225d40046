/* Fuzz target for the MQTT 3.1.1 decoder (upstream/mqtt.c), mode "mqtt";
 * corpus in test/fuzz/corpus/mqtt/.
 *
 * The bytes are a stream from a peer, decoded packet after packet with a
 * small max_packet, as the session does. Each result is one the header
 * names; an error leaves len 0; NEED_MORE names a size past the bytes
 * and within max_packet. A decoded packet must: fit the bytes and
 * max_packet; decode the same from exactly its own bytes (it consumes
 * out->len, whatever follows) and be NEED_MORE at every shorter prefix
 * and ELIMIT under a max_packet one smaller; have every view inside its
 * bytes; and re-encode to exactly its bytes (the decoder accepts one
 * encoding per packet) unless it is something this client never sends
 * (QoS 2, a will, another protocol level, PUBREC/PUBREL/PUBCOMP). A target
 * never asserts validity, only survival and these invariants (abort() on
 * a broken one). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "upstream/mqtt.h"

#include "fuzz.h"

#define MAX_PACKET 512

static void inside(const uint8_t *pkt, size_t len, const void *p, size_t n)
{
	const uint8_t *q = p;

	if (!q) {
		if (n)
			abort();
		return;
	}
	if (q < pkt || n > len || (size_t)(q - pkt) > len - n)
		abort(); /* a view outside the packet */
}

static void views_inside(const struct te_mqtt_pkt *p, const uint8_t *b)
{
	inside(b, p->len, p->pub.topic.p, p->pub.topic.n);
	inside(b, p->len, p->pub.payload, p->pub.payload_len);
	inside(b, p->len, p->suback.rc, p->suback.n);
	inside(b, p->len, p->filters.p, p->filters.n);
	inside(b, p->len, p->connect.client_id.p, p->connect.client_id.n);
	inside(b, p->len, p->connect.username.p, p->connect.username.n);
	inside(b, p->len, p->connect.password, p->connect.password_len);
	inside(b, p->len, p->will.topic.p, p->will.topic.n);
	inside(b, p->len, p->will.msg, p->will.msg_len);
}

/* A SUBSCRIBE's or UNSUBSCRIBE's entries, each valid; *qos2 if one asks
 * for QoS 2 (which the encoder refuses). */
static size_t entries(const struct te_mqtt_pkt *p, struct te_mqtt_sub *subs,
		      struct te_mqtt_str *filters, bool *qos2)
{
	size_t pos = 0, n = 0;

	*qos2 = false;
	while (n < MAX_PACKET && te_mqtt_next_filter(p, &pos, &subs[n])) {
		if (te_mqtt_check_filter(subs[n].filter) || subs[n].qos > 2)
			abort();
		*qos2 |= subs[n].qos == 2;
		filters[n] = subs[n].filter;
		n++;
	}
	if (n != p->filters.count || pos != p->filters.n)
		abort(); /* the iterator and the decoder disagree */
	return n;
}

/* Encode what p says with the encoder for its type: 0 or the encoder's
 * error; 1 if this client has no encoder for it. */
static int reencode(const struct te_mqtt_pkt *p, uint8_t *out, size_t cap, size_t *len)
{
	static struct te_mqtt_sub subs[MAX_PACKET];
	static struct te_mqtt_str filters[MAX_PACKET];
	bool qos2;
	size_t n;

	switch (p->type) {
	case TE_MQTT_CONNECT:
		if (p->will.present || p->level != 4 ||
		    (!p->connect.client_id.n && !p->connect.clean_session))
			return 1;
		return te_mqtt_enc_connect(out, cap, &p->connect, len);
	case TE_MQTT_CONNACK:
		return te_mqtt_enc_connack(out, cap, p->connack.session_present, p->connack.rc, len);
	case TE_MQTT_PUBLISH:
		return p->pub.qos == 2 ? 1 : te_mqtt_enc_publish(out, cap, &p->pub, len);
	case TE_MQTT_PUBACK:
		return te_mqtt_enc_puback(out, cap, p->id, len);
	case TE_MQTT_SUBSCRIBE:
		n = entries(p, subs, filters, &qos2);
		return qos2 ? 1 : te_mqtt_enc_subscribe(out, cap, p->id, subs, n, len);
	case TE_MQTT_SUBACK:
		return te_mqtt_enc_suback(out, cap, p->id, p->suback.rc, p->suback.n, len);
	case TE_MQTT_UNSUBSCRIBE:
		n = entries(p, subs, filters, &qos2);
		return te_mqtt_enc_unsubscribe(out, cap, p->id, filters, n, len);
	case TE_MQTT_UNSUBACK:
		return te_mqtt_enc_unsuback(out, cap, p->id, len);
	case TE_MQTT_PINGREQ:
		return te_mqtt_enc_pingreq(out, cap, len);
	case TE_MQTT_PINGRESP:
		return te_mqtt_enc_pingresp(out, cap, len);
	case TE_MQTT_DISCONNECT:
		return te_mqtt_enc_disconnect(out, cap, len);
	default: /* PUBREC, PUBREL, PUBCOMP: QoS 2, never sent */
		return 1;
	}
}

/* A PUBLISH topic is a valid name that matches itself as a filter, and
 * '#' unless it starts with '$'. */
static void check_topic(const struct te_mqtt_pkt *p)
{
	struct te_mqtt_str t = p->pub.topic;

	if (p->type != TE_MQTT_PUBLISH)
		return;
	if (te_mqtt_check_topic(t) || !te_mqtt_topic_match(t, t) ||
	    te_mqtt_topic_match(TE_MQTT_S("#"), t) != (t.p[0] != '$'))
		abort();
}

static void check_packet(const uint8_t *b, size_t n, const struct te_mqtt_pkt *p)
{
	static uint8_t out[MAX_PACKET + 1];
	struct te_mqtt_pkt q;
	size_t len = 0;
	int r;

	if (p->len < 2 || p->len > n || p->len > MAX_PACKET || p->type != b[0] >> 4)
		abort();
	views_inside(p, b);
	if (te_mqtt_decode(b, p->len, MAX_PACKET, &q) || q.len != p->len || q.type != p->type ||
	    q.id != p->id || q.pub.payload_len != p->pub.payload_len ||
	    q.filters.count != p->filters.count || q.suback.n != p->suback.n)
		abort(); /* depends on the bytes after it */
	for (size_t k = 0; k < p->len; k++)
		if (te_mqtt_decode(b, k, MAX_PACKET, &q) != TE_MQTT_NEED_MORE ||
		    (q.len && q.len != p->len))
			abort(); /* a prefix of a valid packet */
	if (te_mqtt_decode(b, p->len, p->len - 1, &q) != -TE_ELIMIT || q.len)
		abort();
	check_topic(p);
	r = reencode(p, out, sizeof(out), &len);
	if (r == 1)
		return;
	if (r || len != p->len || memcmp(out, b, len))
		abort(); /* not canonical, or the encoder refuses what decodes */
}

void te_fuzz_mqtt(const uint8_t *data, size_t n)
{
	struct te_mqtt_pkt p;
	size_t off = 0;
	int r;

	while (off < n) {
		r = te_mqtt_decode(data + off, n - off, MAX_PACKET, &p);
		if (r == TE_MQTT_NEED_MORE) {
			if (p.len && (p.len <= n - off || p.len > MAX_PACKET))
				abort();
			return;
		}
		if (r) {
			if ((r != -TE_EMALFORMED && r != -TE_ELIMIT) || p.len)
				abort();
			return;
		}
		check_packet(data + off, n - off, &p);
		off += p.len;
	}
}
