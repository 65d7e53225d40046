/* Unit tests for src/upstream/mqtt.c. The expected packets are written out
 * byte by byte from the MQTT 3.1.1 standard (section numbers in comments),
 * never produced by the encoder under test: each encoder against its exact
 * bytes, the decoder over every type, NEED_MORE at every prefix, every
 * malformed case of issue 6 and PITFALLS.md, max_packet decided from the
 * header alone, the remaining-length boundaries and the topic matching
 * examples of section 4.7. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tap.h"
#include "upstream/mqtt.h"

/* A byte array literal and its size, as two arguments. */
#define BYTES(...) ((const uint8_t[]){ __VA_ARGS__ }), sizeof((const uint8_t[]){ __VA_ARGS__ })

static uint8_t out[512];
static size_t olen; /* the encoders' *len in same()'s calls */

/* An encoder's result against the expected packet; also checks that the
 * bytes after the packet were not touched. */
static void same(const char *what, int r, const uint8_t *exp, size_t n)
{
	size_t len = olen;
	bool ok = r == 0 && len == n && !memcmp(out, exp, n) && out[n] == 0xee;

	TAP_OK(ok, "encode %s", what);
	if (!ok) {
		printf("#   rc %d, len %zu (want %zu):", r, len, n);
		for (size_t i = 0; i < len && i < 64; i++)
			printf(" %02x", out[i]);
		printf("\n");
	}
}

static void clear(void)
{
	memset(out, 0xee, sizeof(out));
}

/* ---- encoders against the standard's bytes ---- */

static void test_enc_connect(void)
{
	struct te_mqtt_connect c = {
		.client_id = TE_MQTT_S("te"),
		.username = TE_MQTT_S("u"),
		.password = (const uint8_t *)"p",
		.password_len = 1,
		.keepalive = 60,
		.clean_session = true,
	};

	/* 3.1: "MQTT", level 4, flags user|password|clean, keepalive 60 */
	clear();
	same("CONNECT with user and password",
	     te_mqtt_enc_connect(out, sizeof(out), &c, &olen),
	     BYTES(0x10, 20, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xc2, 0, 60,
		   0, 2, 't', 'e', 0, 1, 'u', 0, 1, 'p'));
	c = (struct te_mqtt_connect){ .client_id = TE_MQTT_S("a"), .clean_session = true };
	clear();
	same("CONNECT minimal", te_mqtt_enc_connect(out, sizeof(out), &c, &olen),
	     BYTES(0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0, 1, 'a'));
	c = (struct te_mqtt_connect){ .client_id = TE_MQTT_S("dev"), .keepalive = 65535,
				      .username = TE_MQTT_S("") };
	clear();
	same("CONNECT persistent session, empty user name, keepalive 65535",
	     te_mqtt_enc_connect(out, sizeof(out), &c, &olen),
	     BYTES(0x10, 17, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x80, 0xff, 0xff,
		   0, 3, 'd', 'e', 'v', 0, 0));
	c = (struct te_mqtt_connect){ .client_id = TE_MQTT_S(""), .clean_session = true,
				      .username = TE_MQTT_S("x"),
				      .password = (const uint8_t *)"\0\xff", .password_len = 2 };
	clear();
	same("CONNECT empty client id, binary password",
	     te_mqtt_enc_connect(out, sizeof(out), &c, &olen),
	     BYTES(0x10, 19, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xc2, 0, 0,
		   0, 0, 0, 1, 'x', 0, 2, 0x00, 0xff));
}

static void test_enc_publish(void)
{
	struct te_mqtt_publish m = {
		.topic = TE_MQTT_S("a/b"),
		.payload = (const uint8_t *)"hi",
		.payload_len = 2,
	};

	clear();
	same("PUBLISH QoS 0", te_mqtt_enc_publish(out, sizeof(out), &m, &olen),
	     BYTES(0x30, 7, 0, 3, 'a', '/', 'b', 'h', 'i'));
	m.qos = 1, m.id = 10, m.dup = true, m.retain = true;
	clear();
	same("PUBLISH QoS 1 dup retain id 10", te_mqtt_enc_publish(out, sizeof(out), &m, &olen),
	      BYTES(0x3b, 9, 0, 3, 'a', '/', 'b', 0, 10, 'h', 'i'));
	m = (struct te_mqtt_publish){ .topic = TE_MQTT_S("t"), .qos = 1, .id = 0xfffe };
	clear();
	same("PUBLISH QoS 1 empty payload", te_mqtt_enc_publish(out, sizeof(out), &m, &olen),
	      BYTES(0x32, 5, 0, 1, 't', 0xff, 0xfe));
	m = (struct te_mqtt_publish){ .topic = TE_MQTT_S("\xc3\xa9t\xc3\xa9"), .retain = true };
	clear();
	same("PUBLISH UTF-8 topic, retain", te_mqtt_enc_publish(out, sizeof(out), &m, &olen),
	      BYTES(0x31, 7, 0, 5, 0xc3, 0xa9, 't', 0xc3, 0xa9));
}

static void test_enc_small(void)
{
	static const struct te_mqtt_sub subs[] = {
		{ TE_MQTT_S("a/+"), 1 },
		{ TE_MQTT_S("#"), 0 },
	};
	static const struct te_mqtt_str unsub[] = { TE_MQTT_S("a/+"), TE_MQTT_S("$SYS/#") };
	static const uint8_t rcs[] = { 0, 1, 2, 0x80 };

	clear();
	same("PUBACK", te_mqtt_enc_puback(out, sizeof(out), 0x1234, &olen),
	     BYTES(0x40, 2, 0x12, 0x34));
	clear();
	same("SUBSCRIBE", te_mqtt_enc_subscribe(out, sizeof(out), 1, subs, 2, &olen),
	     BYTES(0x82, 12, 0, 1, 0, 3, 'a', '/', '+', 1, 0, 1, '#', 0));
	clear();
	same("UNSUBSCRIBE", te_mqtt_enc_unsubscribe(out, sizeof(out), 0x0102, unsub, 2, &olen),
	      BYTES(0xa2, 15, 1, 2, 0, 3, 'a', '/', '+', 0, 6, '$', 'S', 'Y', 'S', '/', '#'));
	clear();
	same("PINGREQ", te_mqtt_enc_pingreq(out, sizeof(out), &olen), BYTES(0xc0, 0));
	clear();
	same("PINGRESP", te_mqtt_enc_pingresp(out, sizeof(out), &olen), BYTES(0xd0, 0));
	clear();
	same("DISCONNECT", te_mqtt_enc_disconnect(out, sizeof(out), &olen), BYTES(0xe0, 0));
	clear();
	same("CONNACK session present", te_mqtt_enc_connack(out, sizeof(out), true, 0, &olen),
	      BYTES(0x20, 2, 1, 0));
	clear();
	same("CONNACK not authorized", te_mqtt_enc_connack(out, sizeof(out), false, 5, &olen),
	      BYTES(0x20, 2, 0, 5));
	clear();
	same("SUBACK", te_mqtt_enc_suback(out, sizeof(out), 7, rcs, 4, &olen),
	     BYTES(0x90, 6, 0, 7, 0, 1, 2, 0x80));
	clear();
	same("UNSUBACK", te_mqtt_enc_unsuback(out, sizeof(out), 0xff00, &olen),
	     BYTES(0xb0, 2, 0xff, 0));
}

/* ---- encoder arguments ---- */

static void inval_publish(const char *what, struct te_mqtt_publish m)
{
	size_t len = 99;

	if (!m.topic.p && !m.topic.n)
		m.topic = TE_MQTT_S("t");
	TAP_OK(te_mqtt_enc_publish(out, sizeof(out), &m, &len) == -TE_EINVALID && len == 99,
	       "PUBLISH refuses %s", what);
}

static void test_enc_invalid(void)
{
	static char big[65536];
	struct te_mqtt_connect c = { .client_id = TE_MQTT_S("a"), .clean_session = true };
	struct te_mqtt_sub sub = { TE_MQTT_S("a/#"), 0 };
	struct te_mqtt_str f = TE_MQTT_S("a");
	uint8_t rc = 3;
	size_t len;

	memset(big, 'x', sizeof(big));
	inval_publish("an empty topic", (struct te_mqtt_publish){ .topic = { "", 0 } });
	inval_publish("a topic over 65535 bytes",
		      (struct te_mqtt_publish){ .topic = { big, 65536 } });
	inval_publish("a NULL topic with a length",
		      (struct te_mqtt_publish){ .topic = { NULL, 3 } });
	inval_publish("'+' in the topic", (struct te_mqtt_publish){ .topic = TE_MQTT_S("a/+") });
	inval_publish("'#' in the topic", (struct te_mqtt_publish){ .topic = TE_MQTT_S("#") });
	inval_publish("U+0000 in the topic", (struct te_mqtt_publish){ .topic = { "a\0b", 3 } });
	inval_publish("an overlong UTF-8 topic",
		      (struct te_mqtt_publish){ .topic = TE_MQTT_S("\xc0\xaf") });
	inval_publish("a surrogate in the topic",
		      (struct te_mqtt_publish){ .topic = TE_MQTT_S("\xed\xa0\x80") });
	inval_publish("a truncated UTF-8 topic",
		      (struct te_mqtt_publish){ .topic = TE_MQTT_S("a\xe2\x82") });
	inval_publish("a code point above U+10FFFF",
		      (struct te_mqtt_publish){ .topic = TE_MQTT_S("\xf4\x90\x80\x80") });
	inval_publish("QoS 2", (struct te_mqtt_publish){ .qos = 2, .id = 1 });
	inval_publish("QoS 1 with id 0", (struct te_mqtt_publish){ .qos = 1 });
	inval_publish("QoS 0 with an id", (struct te_mqtt_publish){ .id = 1 });
	inval_publish("DUP with QoS 0", (struct te_mqtt_publish){ .dup = true });
	inval_publish("a NULL payload with a length",
		      (struct te_mqtt_publish){ .payload_len = 1 });
	TAP_EQ_INT(te_mqtt_enc_publish(out, sizeof(out),
				       &(struct te_mqtt_publish){ .topic = { big, 65535 } }, &len),
		   -TE_ENOSPACE, "PUBLISH takes a 65535-byte topic (asks for room)");
	TAP_EQ_INT(len, 1 + 3 + 2 + 65535, "and says how much");

	c.keepalive = 65536;
	TAP_EQ_INT(te_mqtt_enc_connect(out, sizeof(out), &c, &len), -TE_EINVALID,
		   "CONNECT refuses keepalive 65536");
	c.keepalive = 0, c.clean_session = false, c.client_id = TE_MQTT_S("");
	TAP_EQ_INT(te_mqtt_enc_connect(out, sizeof(out), &c, &len), -TE_EINVALID,
		   "CONNECT refuses an empty client id without clean session");
	c.client_id = TE_MQTT_S("a"), c.password = (const uint8_t *)"p", c.password_len = 1;
	TAP_EQ_INT(te_mqtt_enc_connect(out, sizeof(out), &c, &len), -TE_EINVALID,
		   "CONNECT refuses a password without a user name");
	c.password = NULL, c.password_len = 0, c.username = TE_MQTT_S("\xff");
	TAP_EQ_INT(te_mqtt_enc_connect(out, sizeof(out), &c, &len), -TE_EINVALID,
		   "CONNECT refuses a user name that is not UTF-8");
	c.username = (struct te_mqtt_str){ NULL, 0 }, c.client_id = (struct te_mqtt_str){ "a\0", 2 };
	TAP_EQ_INT(te_mqtt_enc_connect(out, sizeof(out), &c, &len), -TE_EINVALID,
		   "CONNECT refuses U+0000 in the client id");

	TAP_EQ_INT(te_mqtt_enc_subscribe(out, sizeof(out), 0, &sub, 1, &len), -TE_EINVALID,
		   "SUBSCRIBE refuses id 0");
	TAP_EQ_INT(te_mqtt_enc_subscribe(out, sizeof(out), 1, &sub, 0, &len), -TE_EINVALID,
		   "SUBSCRIBE refuses no filters");
	sub.qos = 2;
	TAP_EQ_INT(te_mqtt_enc_subscribe(out, sizeof(out), 1, &sub, 1, &len), -TE_EINVALID,
		   "SUBSCRIBE refuses QoS 2");
	static const char *const badf[] = { "a/#/b", "a#", "a/b#", "a+", "+a/b", "a/++", "##", "" };
	for (unsigned i = 0; i < sizeof(badf) / sizeof(badf[0]); i++) {
		sub = (struct te_mqtt_sub){ { badf[i], strlen(badf[i]) }, 0 };
		TAP_EQ_INT(te_mqtt_enc_subscribe(out, sizeof(out), 1, &sub, 1, &len), -TE_EINVALID,
			   "SUBSCRIBE refuses filter \"%s\"", badf[i]);
	}
	TAP_EQ_INT(te_mqtt_enc_unsubscribe(out, sizeof(out), 0, &f, 1, &len), -TE_EINVALID,
		   "UNSUBSCRIBE refuses id 0");
	f = TE_MQTT_S("a/#b");
	TAP_EQ_INT(te_mqtt_enc_unsubscribe(out, sizeof(out), 1, &f, 1, &len), -TE_EINVALID,
		   "UNSUBSCRIBE refuses a misplaced '#'");
	TAP_EQ_INT(te_mqtt_enc_puback(out, sizeof(out), 0, &len), -TE_EINVALID,
		   "PUBACK refuses id 0");
	TAP_EQ_INT(te_mqtt_enc_unsuback(out, sizeof(out), 0, &len), -TE_EINVALID,
		   "UNSUBACK refuses id 0");
	TAP_EQ_INT(te_mqtt_enc_connack(out, sizeof(out), false, 6, &len), -TE_EINVALID,
		   "CONNACK refuses rc 6");
	TAP_EQ_INT(te_mqtt_enc_connack(out, sizeof(out), true, 1, &len), -TE_EINVALID,
		   "CONNACK refuses session present with an error");
	TAP_EQ_INT(te_mqtt_enc_suback(out, sizeof(out), 1, &rc, 1, &len), -TE_EINVALID,
		   "SUBACK refuses rc 3");
}

/* Each encoder with a buffer one byte short, and with none at all. */
static void test_enc_space(void)
{
	struct te_mqtt_publish m = { .topic = TE_MQTT_S("a/b"), .payload = (const uint8_t *)"hi",
				     .payload_len = 2 };
	struct te_mqtt_connect c = { .client_id = TE_MQTT_S("a"), .clean_session = true };
	size_t len = 0;

	clear();
	TAP_OK(te_mqtt_enc_publish(out, 8, &m, &len) == -TE_ENOSPACE && len == 9 &&
	       out[0] == 0xee, "PUBLISH one byte short: ENOSPACE, needs 9, nothing written");
	TAP_OK(te_mqtt_enc_publish(NULL, 0, &m, &len) == -TE_ENOSPACE && len == 9,
	       "PUBLISH size query with a NULL buffer");
	TAP_OK(te_mqtt_enc_publish(out, 9, &m, NULL) == 0, "PUBLISH exact room, no len");
	TAP_OK(te_mqtt_enc_connect(out, 14, &c, &len) == -TE_ENOSPACE && len == 15,
	       "CONNECT one byte short");
	TAP_OK(te_mqtt_enc_puback(out, 3, 1, &len) == -TE_ENOSPACE && len == 4,
	       "PUBACK one byte short");
	TAP_OK(te_mqtt_enc_pingreq(out, 1, &len) == -TE_ENOSPACE && len == 2,
	       "PINGREQ one byte short");
	TAP_OK(te_mqtt_enc_connack(out, 3, false, 0, &len) == -TE_ENOSPACE && len == 4,
	       "CONNACK one byte short");
	TAP_OK(te_mqtt_enc_suback(out, 4, 1, (const uint8_t[]){ 0 }, 1, &len) == -TE_ENOSPACE &&
	       len == 5, "SUBACK one byte short");
	TAP_OK(te_mqtt_enc_subscribe(out, 6, 1, &(struct te_mqtt_sub){ TE_MQTT_S("a"), 0 }, 1,
				     &len) == -TE_ENOSPACE && len == 8,
	       "SUBSCRIBE one byte short");
	TAP_OK(te_mqtt_enc_unsubscribe(out, 6, 1, &TE_MQTT_S("a"), 1, &len) == -TE_ENOSPACE &&
	       len == 7, "UNSUBSCRIBE one byte short");
}

/* ---- decoding ---- */

static int dec(const uint8_t *b, size_t n, struct te_mqtt_pkt *p)
{
	return te_mqtt_decode(b, n, TE_MQTT_PACKET_MAX, p);
}

static bool str_is(struct te_mqtt_str s, const char *want)
{
	return s.p && s.n == strlen(want) && !memcmp(s.p, want, s.n);
}

static void test_dec_connect(void)
{
	static const uint8_t b[] = { 0x10, 20, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xc2, 0, 60,
				     0, 2, 't', 'e', 0, 1, 'u', 0, 1, 'p', 0xc0 };
	static const uint8_t w[] = { 0x10, 24, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x34, 0, 5,
				     0, 1, 'c', 0, 3, 'l', '/', 'w', 0, 4, 'g', 'o', 'n', 'e' };
	static const uint8_t v3[] = { 0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 3, 0x00, 0, 0, 0, 0 };
	struct te_mqtt_pkt p;

	TAP_EQ_INT(dec(b, sizeof(b), &p), 0, "CONNECT decodes (a PINGREQ follows)");
	TAP_OK(p.type == TE_MQTT_CONNECT && p.len == 22 && p.level == 4 &&
	       str_is(p.connect.client_id, "te") && str_is(p.connect.username, "u") &&
	       p.connect.password == b + 21 && p.connect.password_len == 1 &&
	       p.connect.keepalive == 60 && p.connect.clean_session && !p.will.present,
	       "CONNECT fields");
	TAP_EQ_INT(dec(w, sizeof(w), &p), 0, "CONNECT with a will decodes");
	TAP_OK(p.will.present && p.will.qos == 2 && p.will.retain && str_is(p.will.topic, "l/w") &&
	       p.will.msg_len == 4 && !memcmp(p.will.msg, "gone", 4) && !p.connect.clean_session &&
	       !p.connect.username.p && !p.connect.password && p.connect.keepalive == 5,
	       "CONNECT will fields (QoS 2 will, retain)");
	TAP_EQ_INT(dec(v3, 14, &p), 0, "CONNECT level 3 decodes: the broker answers rc 1");
	TAP_OK(p.level == 3 && p.connect.client_id.n == 0 && p.connect.client_id.p,
	       "level 3, empty client id present");
}

static void test_dec_publish(void)
{
	static const uint8_t q0[] = { 0x30, 7, 0, 3, 'a', '/', 'b', 'h', 'i' };
	static const uint8_t q1[] = { 0x3b, 9, 0, 3, 'a', '/', 'b', 0, 10, 'h', 'i' };
	static const uint8_t q2[] = { 0x34, 5, 0, 1, 'x', 0x80, 0x01 };
	static const uint8_t empty[] = { 0x30, 3, 0, 1, 'x' };
	struct te_mqtt_pkt p;

	TAP_EQ_INT(dec(q0, sizeof(q0), &p), 0, "PUBLISH QoS 0 decodes");
	TAP_OK(p.type == TE_MQTT_PUBLISH && p.len == 9 && str_is(p.pub.topic, "a/b") &&
	       p.pub.payload == q0 + 7 && p.pub.payload_len == 2 && p.pub.qos == 0 &&
	       !p.pub.dup && !p.pub.retain && p.id == 0, "PUBLISH QoS 0 fields, views into buf");
	TAP_EQ_INT(dec(q1, sizeof(q1), &p), 0, "PUBLISH QoS 1 decodes");
	TAP_OK(p.pub.qos == 1 && p.pub.dup && p.pub.retain && p.pub.id == 10 && p.id == 10 &&
	       p.pub.payload_len == 2 && !memcmp(p.pub.payload, "hi", 2),
	       "PUBLISH QoS 1 fields");
	TAP_EQ_INT(dec(q2, sizeof(q2), &p), 0, "PUBLISH QoS 2 decodes (the session refuses it)");
	TAP_OK(p.pub.qos == 2 && p.id == 0x8001 && p.pub.payload_len == 0, "QoS 2 fields");
	TAP_EQ_INT(dec(empty, sizeof(empty), &p), 0, "PUBLISH with no payload decodes");
	TAP_OK(p.pub.payload == empty + 5 && p.pub.payload_len == 0, "empty payload at the end");
}

static void test_dec_small(void)
{
	static const struct {
		const char *name;
		uint8_t b[8];
		size_t n;
		uint8_t type;
		uint16_t id;
	} v[] = {
		{ "PUBACK", { 0x40, 2, 0x12, 0x34 }, 4, TE_MQTT_PUBACK, 0x1234 },
		{ "PUBREC", { 0x50, 2, 0, 7 }, 4, TE_MQTT_PUBREC, 7 },
		{ "PUBREL", { 0x62, 2, 0, 7 }, 4, TE_MQTT_PUBREL, 7 },
		{ "PUBCOMP", { 0x70, 2, 0, 7 }, 4, TE_MQTT_PUBCOMP, 7 },
		{ "UNSUBACK", { 0xb0, 2, 0xff, 0 }, 4, TE_MQTT_UNSUBACK, 0xff00 },
		{ "PINGREQ", { 0xc0, 0 }, 2, TE_MQTT_PINGREQ, 0 },
		{ "PINGRESP", { 0xd0, 0 }, 2, TE_MQTT_PINGRESP, 0 },
		{ "DISCONNECT", { 0xe0, 0 }, 2, TE_MQTT_DISCONNECT, 0 },
	};
	struct te_mqtt_pkt p;

	for (unsigned i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		int r = dec(v[i].b, sizeof(v[i].b), &p);

		TAP_OK(r == 0 && p.type == v[i].type && p.id == v[i].id && p.len == v[i].n,
		       "%s decodes (type, id, len)", v[i].name);
	}
}

static void test_dec_acks(void)
{
	static const uint8_t ca[] = { 0x20, 2, 1, 0 }, cn[] = { 0x20, 2, 0, 4 };
	static const uint8_t sa[] = { 0x90, 6, 0, 7, 0, 1, 2, 0x80 };
	struct te_mqtt_pkt p;

	TAP_OK(dec(ca, 4, &p) == 0 && p.type == TE_MQTT_CONNACK && p.connack.session_present &&
	       p.connack.rc == 0 && p.len == 4, "CONNACK session present, accepted");
	TAP_OK(dec(cn, 4, &p) == 0 && !p.connack.session_present && p.connack.rc == 4,
	       "CONNACK bad user name or password");
	TAP_EQ_STR(te_mqtt_connack_str(p.connack.rc), "bad user name or password",
		   "connack_str(4)");
	TAP_EQ_STR(te_mqtt_connack_str(0), "accepted", "connack_str(0)");
	TAP_EQ_STR(te_mqtt_connack_str(6), "reserved return code", "connack_str(6)");
	TAP_EQ_STR(te_mqtt_type_str(TE_MQTT_SUBACK), "SUBACK", "type_str(9)");
	TAP_EQ_STR(te_mqtt_type_str(15), "reserved", "type_str(15)");
	TAP_OK(dec(sa, sizeof(sa), &p) == 0 && p.type == TE_MQTT_SUBACK && p.id == 7 &&
	       p.suback.rc == sa + 4 && p.suback.n == 4, "SUBACK: id, four return codes");
}

static void test_dec_filters(void)
{
	static const uint8_t s[] = { 0x82, 12, 0, 1, 0, 3, 'a', '/', '+', 1, 0, 1, '#', 2 };
	static const uint8_t u[] = { 0xa2, 9, 0, 2, 0, 1, 'a', 0, 2, '$', 'x' };
	struct te_mqtt_pkt p;
	struct te_mqtt_sub e;
	size_t pos = 0;

	TAP_OK(dec(s, sizeof(s), &p) == 0 && p.type == TE_MQTT_SUBSCRIBE && p.id == 1 &&
	       p.filters.count == 2 && p.filters.p == s + 4 && p.filters.n == 10,
	       "SUBSCRIBE decodes: id 1, two filters");
	TAP_OK(te_mqtt_next_filter(&p, &pos, &e) && str_is(e.filter, "a/+") && e.qos == 1,
	       "SUBSCRIBE entry 1: a/+ QoS 1");
	TAP_OK(te_mqtt_next_filter(&p, &pos, &e) && str_is(e.filter, "#") && e.qos == 2,
	       "SUBSCRIBE entry 2: # QoS 2");
	TAP_OK(!te_mqtt_next_filter(&p, &pos, &e), "SUBSCRIBE: no third entry");
	pos = 0;
	TAP_OK(dec(u, sizeof(u), &p) == 0 && p.type == TE_MQTT_UNSUBSCRIBE && p.id == 2 &&
	       p.filters.count == 2, "UNSUBSCRIBE decodes: id 2, two filters");
	TAP_OK(te_mqtt_next_filter(&p, &pos, &e) && str_is(e.filter, "a") && e.qos == 0 &&
	       te_mqtt_next_filter(&p, &pos, &e) && str_is(e.filter, "$x") &&
	       !te_mqtt_next_filter(&p, &pos, &e), "UNSUBSCRIBE entries a, $x");
}

/* ---- NEED_MORE at every prefix ---- */

static void prefixes(const char *name, const uint8_t *b, size_t n, size_t hl)
{
	struct te_mqtt_pkt p;
	unsigned bad = 0;

	for (size_t k = 0; k < n; k++) {
		int r = te_mqtt_decode(b, k, n, &p);

		if (r != TE_MQTT_NEED_MORE || p.len != (k >= hl ? n : 0)) {
			printf("#   prefix %zu: rc %d len %zu\n", k, r, p.len);
			bad++;
		}
	}
	TAP_OK(!bad && te_mqtt_decode(b, n, n, &p) == 0 && p.len == n,
	       "%s: NEED_MORE at each of %zu prefixes, len known from byte %zu", name, n, hl);
}

static void test_need_more(void)
{
	static uint8_t big[2 + 2 + 128];

	prefixes("CONNECT", BYTES(0x10, 20, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xc2, 0, 60,
				  0, 2, 't', 'e', 0, 1, 'u', 0, 1, 'p'), 2);
	prefixes("PUBLISH QoS 1", BYTES(0x3b, 9, 0, 3, 'a', '/', 'b', 0, 10, 'h', 'i'), 2);
	prefixes("CONNACK", BYTES(0x20, 2, 0, 0), 2);
	prefixes("SUBACK", BYTES(0x90, 4, 0, 1, 1, 0x80), 2);
	prefixes("SUBSCRIBE", BYTES(0x82, 6, 0, 1, 0, 1, 'a', 1), 2);
	prefixes("PINGRESP", BYTES(0xd0, 0), 2);
	/* remaining length 128: a two-byte field */
	memcpy(big, (uint8_t[]){ 0x30, 0x80, 0x01, 0, 1, 't' }, 6);
	prefixes("PUBLISH, 2-byte remaining length", big, sizeof(big) - 1, 3);
}

/* ---- malformed ---- */

static void bad_n(const char *what, const uint8_t *b, size_t n, int err)
{
	struct te_mqtt_pkt p;
	int r = te_mqtt_decode(b, n, 4096, &p);

	TAP_OK(r == err && p.len == 0, "%s", what);
	if (r != err)
		printf("#   got %d, expected %d\n", r, err);
}

#define BAD(what, ...) bad_n(what, BYTES(__VA_ARGS__), -TE_EMALFORMED)

static void test_malformed_header(void)
{
	BAD("remaining length over 4 bytes", 0x30, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 1, 'a');
	BAD("remaining length over 4 bytes, known at its fifth byte", 0x30, 0x80, 0x80, 0x80, 0x80);
	BAD("remaining length 0 in two bytes", 0xc0, 0x80, 0x00);
	BAD("remaining length 3 in two bytes", 0x40, 0x83, 0x00, 0, 1);
	BAD("remaining length 128 in three bytes", 0x30, 0x80, 0x81, 0x00);
	BAD("reserved type 0", 0x00, 0x00);
	BAD("reserved type 0, known from one byte", 0x00);
	BAD("reserved type 15", 0xf0, 0x00);
	BAD("PUBACK with flags 1", 0x41, 2, 0, 1);
	BAD("CONNACK with first-byte flags", 0x21, 2, 0, 0);
	BAD("SUBSCRIBE without its 0010 flags, known from one byte", 0x80);
	BAD("UNSUBSCRIBE with flags 0000", 0xa0, 5, 0, 1, 0, 1, 'a');
	BAD("PUBREL without its 0010 flags", 0x60, 2, 0, 1);
	BAD("PINGREQ with flags", 0xc1, 0);
	BAD("PUBLISH QoS 3", 0x36, 5, 0, 1, 'a', 0, 1);
	BAD("PUBLISH DUP with QoS 0", 0x38, 3, 0, 1, 'a');
	BAD("truncated CONNACK (remaining length 1)", 0x20, 1, 0);
	BAD("CONNACK remaining length 3", 0x20, 3, 0, 0, 0);
	BAD("PUBACK with a trailing byte", 0x40, 3, 0, 1, 0);
	BAD("PINGRESP with a body", 0xd0, 1, 0);
	BAD("DISCONNECT with a body, known from the header", 0xe0, 1);
	BAD("PUBLISH too short for a topic", 0x30, 2, 0, 0);
	BAD("PUBLISH QoS 1 too short for its id", 0x32, 4, 0, 1, 'a', 0);
	BAD("SUBSCRIBE without filters", 0x82, 2, 0, 1);
	BAD("UNSUBSCRIBE without filters", 0xa2, 2, 0, 1);
	BAD("SUBACK without return codes", 0x90, 2, 0, 1);
}

static void test_malformed_body(void)
{
	BAD("topic length past the packet", 0x30, 5, 0, 16, 'a', 'b', 'c');
	BAD("topic length one past the packet", 0x30, 4, 0, 3, 'a', 'b');
	BAD("QoS 1 topic length over the id", 0x32, 5, 0, 2, 'a', 0, 1);
	BAD("empty topic", 0x30, 3, 0, 0, 'x');
	BAD("'+' in a PUBLISH topic", 0x30, 5, 0, 3, 'a', '/', '+');
	BAD("'#' in a PUBLISH topic", 0x30, 3, 0, 1, '#');
	BAD("U+0000 in a topic", 0x30, 4, 0, 2, 'a', 0);
	BAD("overlong UTF-8 in a topic", 0x30, 4, 0, 2, 0xc0, 0x80);
	BAD("a surrogate in a topic", 0x30, 5, 0, 3, 0xed, 0xa0, 0x80);
	BAD("a lone continuation byte in a topic", 0x30, 3, 0, 1, 0x80);
	BAD("PUBLISH QoS 1 with packet id 0", 0x32, 5, 0, 1, 'a', 0, 0);
	BAD("PUBACK with packet id 0", 0x40, 2, 0, 0);
	BAD("UNSUBACK with packet id 0", 0xb0, 2, 0, 0);
	BAD("SUBACK with packet id 0", 0x90, 3, 0, 0, 0);
	BAD("CONNACK with a reserved flag", 0x20, 2, 0x02, 0);
	BAD("CONNACK with flags 0x80", 0x20, 2, 0x80, 0);
	BAD("CONNACK session present with an error", 0x20, 2, 1, 5);
	BAD("CONNACK rc 6", 0x20, 2, 0, 6);
	BAD("SUBACK rc 3", 0x90, 4, 0, 1, 0, 3);
	BAD("SUBACK rc 0x81", 0x90, 3, 0, 1, 0x81);
	BAD("SUBSCRIBE QoS 3", 0x82, 6, 0, 1, 0, 1, 'a', 3);
	BAD("SUBSCRIBE reserved QoS bits", 0x82, 6, 0, 1, 0, 1, 'a', 4);
	BAD("SUBSCRIBE filter without its QoS", 0x82, 9, 0, 1, 0, 1, 'a', 0, 0, 1, 'b');
	BAD("SUBSCRIBE misplaced '#'", 0x82, 7, 0, 1, 0, 2, 'a', '#', 0);
	BAD("SUBSCRIBE misplaced '+'", 0x82, 7, 0, 1, 0, 2, '+', 'a', 0);
	BAD("SUBSCRIBE packet id 0", 0x82, 6, 0, 0, 0, 1, 'a', 0);
	BAD("UNSUBSCRIBE with a trailing byte", 0xa2, 6, 0, 1, 0, 1, 'a', 'x');
	BAD("UNSUBSCRIBE empty filter", 0xa2, 5, 0, 1, 0, 0, 'x');
}

/* CONNECT variants of the packet 10 0d 00 04 MQTT 04 02 00 00 00 01 'a'. */
static void test_malformed_connect(void)
{
	BAD("CONNECT protocol name MQIsdp", 0x10, 15, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3,
	    0x02, 0, 0, 0, 1, 'a');
	BAD("CONNECT protocol name mqtt", 0x10, 13, 0, 4, 'm', 'q', 't', 't', 4, 0x02, 0, 0, 0, 1, 'a');
	BAD("CONNECT reserved flag", 0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x03, 0, 0, 0, 1, 'a');
	BAD("CONNECT password without user name", 0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x42,
	    0, 0, 0, 1, 'a', 0, 1, 'p');
	BAD("CONNECT will QoS without will", 0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x0a, 0, 0, 0, 1, 'a');
	BAD("CONNECT will retain without will", 0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x22, 0, 0, 0, 1, 'a');
	BAD("CONNECT will QoS 3", 0x10, 18, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x1e, 0, 0, 0, 1, 'a',
	    0, 1, 't', 0, 0);
	BAD("CONNECT will topic with '#'", 0x10, 18, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x06, 0, 0, 0, 1, 'a',
	    0, 1, '#', 0, 0);
	BAD("CONNECT will without its message", 0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x06, 0, 0, 0, 1,
	    'a', 0, 1, 't');
	BAD("CONNECT trailing byte", 0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0, 1, 'a', 0);
	BAD("CONNECT client id past the packet", 0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0, 2, 'a');
	BAD("CONNECT user name flag without one", 0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x82, 0, 0, 0, 1, 'a');
	BAD("CONNECT client id not UTF-8", 0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0, 1, 0xfe);
	BAD("CONNECT remaining length under the minimum", 0x10, 11, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0);
}

/* ---- max_packet, from the header alone ---- */

static void limit(const char *what, const uint8_t *b, size_t n, size_t max, int want,
		  size_t wantlen)
{
	struct te_mqtt_pkt p;
	int r = te_mqtt_decode(b, n, max, &p);

	TAP_OK(r == want && p.len == wantlen, "%s", what);
	if (r != want || p.len != wantlen)
		printf("#   got %d len %zu\n", r, p.len);
}

static void test_limit(void)
{
	limit("a 16386-byte PUBLISH over max 100: ELIMIT from 3 bytes",
	      BYTES(0x30, 0xff, 0x7f), 100, -TE_ELIMIT, 0);
	limit("a 268435460-byte claim over max 4096: ELIMIT from the header",
	      BYTES(0x30, 0xff, 0xff, 0xff, 0x7f), 4096, -TE_ELIMIT, 0);
	limit("two continued bytes already over max 1000: ELIMIT mid-field",
	      BYTES(0x30, 0xff, 0xff), 1000, -TE_ELIMIT, 0);
	limit("one continued byte (>= 131 bytes) over max 130: ELIMIT", BYTES(0x30, 0x80), 130,
	      -TE_ELIMIT, 0);
	limit("one continued byte (>= 131 bytes) within max 131: NEED_MORE", BYTES(0x30, 0x80),
	      131, TE_MQTT_NEED_MORE, 0);
	limit("packet of exactly max_packet decodes",
	      BYTES(0x30, 7, 0, 3, 'a', '/', 'b', 'h', 'i'), 9, 0, 9);
	limit("packet one over max_packet: ELIMIT",
	      BYTES(0x30, 7, 0, 3, 'a', '/', 'b', 'h', 'i'), 8, -TE_ELIMIT, 0);
	limit("header only, within max: NEED_MORE with the size",
	      BYTES(0x30, 0xff, 0x7f), 20000, TE_MQTT_NEED_MORE, 16386);
	limit("largest claim, no limit: NEED_MORE with 268435460",
	      BYTES(0x30, 0xff, 0xff, 0xff, 0x7f), TE_MQTT_PACKET_MAX, TE_MQTT_NEED_MORE,
	      268435460);
}

/* ---- remaining length boundaries ---- */

/* A QoS 0 PUBLISH to "t" whose remaining length is rl: encode it, check
 * its header bytes against the standard's table (2.2.3), decode it back. */
static void boundary(size_t rl, const uint8_t *hdr, size_t hl)
{
	size_t total = hl + rl, len = 0;
	uint8_t *b = malloc(total + 1), *payload = calloc(1, rl);
	struct te_mqtt_publish m = { .topic = TE_MQTT_S("t"), .payload = payload,
				     .payload_len = rl - 3 };
	struct te_mqtt_pkt p;
	int r;

	if (!b || !payload)
		abort();
	memset(b, 0x5a, total + 1);
	r = te_mqtt_enc_publish(b, total, &m, &len);
	TAP_OK(r == 0 && len == total && !memcmp(b, hdr, hl) && b[total] == 0x5a,
	       "remaining length %zu: %zu-byte field, as the table", rl, hl - 1);
	TAP_EQ_INT(te_mqtt_enc_publish(b, total - 1, &m, &len), -TE_ENOSPACE,
		   "remaining length %zu: one byte short", rl);
	r = dec(b, total, &p);
	TAP_OK(r == 0 && p.len == total && p.pub.payload_len == rl - 3 &&
	       p.pub.payload == b + hl + 3, "remaining length %zu decodes", rl);
	TAP_OK(dec(b, total - 1, &p) == TE_MQTT_NEED_MORE && p.len == total,
	       "remaining length %zu, one byte missing: NEED_MORE", rl);
	free(payload);
	free(b);
}

static void test_boundaries(void)
{
	static const uint8_t dummy[1];
	struct te_mqtt_publish m = { .topic = TE_MQTT_S("t"), .payload = dummy };
	size_t len = 0;

	boundary(127, BYTES(0x30, 0x7f));
	boundary(128, BYTES(0x30, 0x80, 0x01));
	boundary(16383, BYTES(0x30, 0xff, 0x7f));
	boundary(16384, BYTES(0x30, 0x80, 0x80, 0x01));
	boundary(2097151, BYTES(0x30, 0xff, 0xff, 0x7f));
	boundary(2097152, BYTES(0x30, 0x80, 0x80, 0x80, 0x01));
	/* 268435455: the size query only (the bytes would be 256 MiB) */
	m.payload_len = TE_MQTT_RL_MAX - 3;
	TAP_OK(te_mqtt_enc_publish(NULL, 0, &m, &len) == -TE_ENOSPACE && len == 268435460,
	       "remaining length 268435455: 268435460 bytes needed");
	m.payload_len++;
	len = 7;
	TAP_OK(te_mqtt_enc_publish(NULL, 0, &m, &len) == -TE_ELIMIT && len == 7,
	       "remaining length 268435456: ELIMIT");
	m.payload_len = (size_t)-1;
	TAP_EQ_INT(te_mqtt_enc_publish(NULL, 0, &m, &len), -TE_ELIMIT,
		   "payload length SIZE_MAX: ELIMIT, no wrap");
}

/* ---- round trips ---- */

static void test_round_trip(void)
{
	static const uint8_t payload[300] = { 1, 2, 3 };
	struct te_mqtt_publish m = { .topic = TE_MQTT_S("devices/d/messages/events/$.ct=json"),
				     .payload = payload, .payload_len = sizeof(payload),
				     .qos = 1, .id = 65535, .retain = true };
	struct te_mqtt_connect c = { .client_id = TE_MQTT_S("d/m"),
				     .username = TE_MQTT_S("hub.azure-devices.net/d/m/?api-version=2021-04-12"),
				     .password = (const uint8_t *)"SharedAccessSignature sr=x",
				     .password_len = 26, .keepalive = 1177 };
	struct te_mqtt_sub subs[] = { { TE_MQTT_S("$iothub/twin/res/#"), 0 },
				      { TE_MQTT_S("$iothub/methods/POST/#"), 1 } };
	struct te_mqtt_pkt p;
	struct te_mqtt_sub e;
	size_t len, pos = 0;

	TAP_OK(te_mqtt_enc_publish(out, sizeof(out), &m, &len) == 0 && dec(out, len, &p) == 0 &&
	       p.len == len && p.pub.topic.n == m.topic.n &&
	       !memcmp(p.pub.topic.p, m.topic.p, m.topic.n) && p.pub.id == 65535 &&
	       p.pub.qos == 1 && p.pub.retain && !p.pub.dup && p.pub.payload_len == 300 &&
	       !memcmp(p.pub.payload, payload, 300), "PUBLISH round trip (2-byte length)");
	TAP_OK(te_mqtt_enc_connect(out, sizeof(out), &c, &len) == 0 && dec(out, len, &p) == 0 &&
	       p.len == len && str_is(p.connect.client_id, "d/m") &&
	       p.connect.username.n == c.username.n && p.connect.password_len == 26 &&
	       !memcmp(p.connect.password, c.password, 26) && p.connect.keepalive == 1177 &&
	       !p.connect.clean_session && p.level == 4, "CONNECT round trip");
	TAP_OK(te_mqtt_enc_subscribe(out, sizeof(out), 9, subs, 2, &len) == 0 &&
	       dec(out, len, &p) == 0 && p.id == 9 && p.filters.count == 2 &&
	       te_mqtt_next_filter(&p, &pos, &e) && str_is(e.filter, "$iothub/twin/res/#") &&
	       e.qos == 0 && te_mqtt_next_filter(&p, &pos, &e) &&
	       str_is(e.filter, "$iothub/methods/POST/#") && e.qos == 1,
	       "SUBSCRIBE round trip");
	TAP_OK(te_mqtt_enc_suback(out, sizeof(out), 9, (const uint8_t[]){ 0, 0x80 }, 2, &len) == 0 &&
	       dec(out, len, &p) == 0 && p.id == 9 && p.suback.n == 2 && p.suback.rc[1] == 0x80,
	       "SUBACK round trip");
	TAP_OK(te_mqtt_enc_connack(out, sizeof(out), false, 3, &len) == 0 &&
	       dec(out, len, &p) == 0 && p.connack.rc == 3 && !p.connack.session_present,
	       "CONNACK round trip");
	TAP_OK(te_mqtt_enc_unsubscribe(out, sizeof(out), 3, &subs[0].filter, 1, &len) == 0 &&
	       dec(out, len, &p) == 0 && p.id == 3 && p.filters.count == 1,
	       "UNSUBSCRIBE round trip");
}

/* ---- topics ---- */

static void test_topic_match(void)
{
	static const struct {
		const char *filter, *topic;
		bool match;
	} v[] = {
		/* 4.7.1.2 */
		{ "sport/tennis/player1/#", "sport/tennis/player1", true },
		{ "sport/tennis/player1/#", "sport/tennis/player1/ranking", true },
		{ "sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true },
		{ "sport/#", "sport", true },
		{ "#", "sport/tennis", true },
		{ "#", "/", true },
		{ "sport/tennis#", "sport/tennis", false },     /* invalid filter */
		{ "sport/tennis/#/ranking", "sport/tennis/x/ranking", false },
		/* 4.7.1.3 */
		{ "sport/tennis/+", "sport/tennis/player1", true },
		{ "sport/tennis/+", "sport/tennis/player2", true },
		{ "sport/tennis/+", "sport/tennis/player1/ranking", false },
		{ "sport/+", "sport", false },
		{ "sport/+", "sport/", true },
		{ "+/+", "/finance", true },
		{ "/+", "/finance", true },
		{ "+", "/finance", false },
		{ "+", "sport", true },
		{ "+/tennis/#", "sport/tennis/player1", true },
		{ "sport+", "sport", false },                   /* invalid filter */
		/* 4.7.2: topics beginning with $ */
		{ "#", "$SYS/broker", false },
		{ "+/monitor/Clients", "$SYS/monitor/Clients", false },
		{ "$SYS/#", "$SYS/monitor/Clients", true },
		{ "$SYS/monitor/+", "$SYS/monitor/Clients", true },
		{ "$iothub/twin/res/#", "$iothub/twin/res/200/?$rid=1", true },
		{ "$iothub/methods/POST/#", "$iothub/methods/POST/reboot/?$rid=5", true },
		{ "$iothub/methods/POST/#", "$iothub/twin/res/200/?$rid=1", false },
		/* 4.7.3: case-sensitive, empty levels are levels */
		{ "ACCOUNTS", "Accounts", false },
		{ "a/b", "a/b", true },
		{ "a/b", "a/b/", false },
		{ "a/b/", "a/b", false },
		{ "a/+/b", "a//b", true },
		{ "a/#", "a//b/", true },
		{ "a/b/c", "a/b", false },
		{ "a/b", "a/b/c", false },
		{ "a/bc", "a/b", false },
		{ "+/+/+", "a/b", false },
		{ "a/+", "a/+", false },                        /* invalid topic */
		{ "#", "", false },                             /* invalid topic */
	};

	for (unsigned i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct te_mqtt_str f = { v[i].filter, strlen(v[i].filter) };
		struct te_mqtt_str t = { v[i].topic, strlen(v[i].topic) };

		TAP_OK(te_mqtt_topic_match(f, t) == v[i].match, "\"%s\" %s \"%s\"", v[i].filter,
		       v[i].match ? "matches" : "does not match", v[i].topic);
	}
	TAP_EQ_INT(te_mqtt_check_filter(TE_MQTT_S("+/a/+/#")), 0, "filter +/a/+/# is valid");
	TAP_EQ_INT(te_mqtt_check_filter(TE_MQTT_S("/")), 0, "filter / is valid");
	TAP_EQ_INT(te_mqtt_check_topic(TE_MQTT_S("\xf0\x9f\x98\x80")), 0, "topic U+1F600 is valid");
	TAP_EQ_INT(te_mqtt_check_topic(TE_MQTT_S("a\x01\x7f")), 0,
		   "control characters are allowed (SHOULD NOT only)");
}

int main(void)
{
	test_enc_connect();
	test_enc_publish();
	test_enc_small();
	test_enc_invalid();
	test_enc_space();
	test_dec_connect();
	test_dec_publish();
	test_dec_small();
	test_dec_acks();
	test_dec_filters();
	test_need_more();
	test_malformed_header();
	test_malformed_body();
	test_malformed_connect();
	test_limit();
	test_boundaries();
	test_round_trip();
	test_topic_match();
	return tap_done();
}
