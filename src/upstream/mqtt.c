/* MQTT 3.1.1 codec; see mqtt.h. Section and [MQTT-x.y.z-n] references are
 * to the OASIS MQTT 3.1.1 standard. */
#include <string.h>

#include "err.h"
#include "upstream/mqtt.h"

/* CONNECT flag bits (3.1.2.3). */
#define CF_RESERVED 0x01
#define CF_CLEAN 0x02
#define CF_WILL 0x04
#define CF_WILL_QOS 0x18
#define CF_WILL_RETAIN 0x20
#define CF_PASSWORD 0x40
#define CF_USERNAME 0x80

/* ---- strings ---- */

/* Length of the UTF-8 sequence at s (n >= 1 bytes available), 1-4, or 0
 * if it is not well-formed (overlong, surrogate, above U+10FFFF,
 * truncated) or is U+0000, which MQTT forbids in strings. */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
	uint32_t c;
	size_t len;

	if (s[0] < 0x80)
		return s[0] ? 1 : 0;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, c = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		len = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, c = s[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return len;
}

/* A protocol string: a view that may exist, fits a length prefix, UTF-8. */
static bool str_ok(struct te_mqtt_str s)
{
	const uint8_t *p = (const uint8_t *)s.p;
	size_t k;

	if ((!s.p && s.n) || s.n > TE_MQTT_STR_MAX)
		return false;
	for (size_t i = 0; i < s.n; i += k)
		if (!(k = utf8_seq(p + i, s.n - i)))
			return false;
	return true;
}

int te_mqtt_check_topic(struct te_mqtt_str t)
{
	if (!t.n || !str_ok(t) || memchr(t.p, '+', t.n) || memchr(t.p, '#', t.n))
		return -TE_EINVALID;
	return 0;
}

/* '+' must be a whole level, '#' the whole last level (4.7.1). */
int te_mqtt_check_filter(struct te_mqtt_str f)
{
	if (!f.n || !str_ok(f))
		return -TE_EINVALID;
	for (size_t i = 0; i < f.n; i++) {
		bool starts = i == 0 || f.p[i - 1] == '/';
		bool last = i + 1 == f.n;

		if (f.p[i] == '+' && !(starts && (last || f.p[i + 1] == '/')))
			return -TE_EINVALID;
		if (f.p[i] == '#' && !(starts && last))
			return -TE_EINVALID;
	}
	return 0;
}

/* ---- topic matching ---- */

static size_t level_end(struct te_mqtt_str s, size_t i)
{
	while (i < s.n && s.p[i] != '/')
		i++;
	return i;
}

static bool is_level(struct te_mqtt_str s, size_t i, size_t end, char c)
{
	return end - i == 1 && s.p[i] == c;
}

/* Level by level. A topic "a/" has two levels, "a" and "": tdone marks
 * that the topic's last level was consumed, so that only a '#' level may
 * follow in the filter ("a/#" matches "a", 4.7.1.2). */
bool te_mqtt_topic_match(struct te_mqtt_str filter, struct te_mqtt_str topic)
{
	size_t fi = 0, ti = 0, fe, te;
	bool tdone = false;

	if (te_mqtt_check_filter(filter) || te_mqtt_check_topic(topic))
		return false;
	if (topic.p[0] == '$' && (filter.p[0] == '+' || filter.p[0] == '#'))
		return false; /* 4.7.2: $SYS and the like */
	for (;;) {
		fe = level_end(filter, fi);
		if (is_level(filter, fi, fe, '#'))
			return true;
		if (tdone)
			return false;
		te = level_end(topic, ti);
		if (!is_level(filter, fi, fe, '+') &&
		    (fe - fi != te - ti || memcmp(filter.p + fi, topic.p + ti, te - ti)))
			return false;
		if (fe == filter.n)
			return te == topic.n;
		fi = fe + 1;
		if (te == topic.n)
			tdone = true;
		else
			ti = te + 1;
	}
}

/* ---- encoding ---- */

static size_t rl_size(size_t rl)
{
	return rl < 128 ? 1 : rl < 16384 ? 2 : rl < 2097152 ? 3 : 4;
}

/* The room check every encoder makes once its arguments are valid: the
 * packet is the first byte, the remaining length field and rl bytes. */
static int fit(size_t rl, size_t cap, size_t *len)
{
	size_t total;

	if (rl > TE_MQTT_RL_MAX)
		return -TE_ELIMIT;
	total = 1 + rl_size(rl) + rl;
	if (len)
		*len = total;
	return total > cap ? -TE_ENOSPACE : 0;
}

static uint8_t *put_header(uint8_t *p, uint8_t first, size_t rl)
{
	*p++ = first;
	do {
		uint8_t b = rl & 0x7f;

		rl >>= 7;
		*p++ = b | (rl ? 0x80 : 0);
	} while (rl);
	return p;
}

static uint8_t *put_u16(uint8_t *p, unsigned v)
{
	*p++ = (uint8_t)(v >> 8);
	*p++ = (uint8_t)v;
	return p;
}

/* A length-prefixed field; s may be NULL when n is 0. */
static uint8_t *put_field(uint8_t *p, const void *s, size_t n)
{
	p = put_u16(p, (unsigned)n);
	if (n)
		memcpy(p, s, n);
	return p + n;
}

/* Whether the optional field is present, and if so valid; a NULL view
 * with a length is neither. */
static int optional(struct te_mqtt_str s, bool *present)
{
	*present = s.p != NULL;
	if (!s.p)
		return s.n ? -TE_EINVALID : 0;
	return s.n > TE_MQTT_STR_MAX ? -TE_EINVALID : 0;
}

int te_mqtt_enc_connect(uint8_t *buf, size_t cap, const struct te_mqtt_connect *c,
			size_t *len)
{
	struct te_mqtt_str pw = { (const char *)c->password, c->password_len };
	size_t rl = 10 + 2 + c->client_id.n;
	uint8_t flags = c->clean_session ? CF_CLEAN : 0;
	bool user, pass;
	uint8_t *p;
	int r;

	if (!str_ok(c->client_id) || (!c->client_id.n && !c->clean_session) ||
	    c->keepalive > 0xffff || optional(c->username, &user) ||
	    optional(pw, &pass) || (user && !str_ok(c->username)) || (pass && !user))
		return -TE_EINVALID;
	if (user)
		flags |= CF_USERNAME, rl += 2 + c->username.n;
	if (pass)
		flags |= CF_PASSWORD, rl += 2 + pw.n;
	if ((r = fit(rl, cap, len)))
		return r;
	p = put_header(buf, TE_MQTT_CONNECT << 4, rl);
	p = put_field(p, "MQTT", 4);
	*p++ = 4; /* protocol level: 3.1.1 */
	*p++ = flags;
	p = put_u16(p, c->keepalive);
	p = put_field(p, c->client_id.p, c->client_id.n);
	if (user)
		p = put_field(p, c->username.p, c->username.n);
	if (pass)
		put_field(p, pw.p, pw.n);
	return 0;
}

int te_mqtt_enc_publish(uint8_t *buf, size_t cap, const struct te_mqtt_publish *m,
			size_t *len)
{
	size_t rl;
	uint8_t *p;
	int r;

	if (te_mqtt_check_topic(m->topic) || m->qos > 1 ||
	    (m->qos ? !m->id : m->id || m->dup) || (!m->payload && m->payload_len))
		return -TE_EINVALID;
	if (m->payload_len > TE_MQTT_RL_MAX)
		return -TE_ELIMIT; /* before the sum below can wrap */
	rl = 2 + m->topic.n + (m->qos ? 2 : 0) + m->payload_len;
	if ((r = fit(rl, cap, len)))
		return r;
	p = put_header(buf, (uint8_t)(TE_MQTT_PUBLISH << 4 | m->dup << 3 | m->qos << 1 |
				      m->retain), rl);
	p = put_field(p, m->topic.p, m->topic.n);
	if (m->qos)
		p = put_u16(p, m->id);
	if (m->payload_len)
		memcpy(p, m->payload, m->payload_len);
	return 0;
}

/* The packets that are a first byte and a packet identifier. */
static int enc_id(uint8_t *buf, size_t cap, uint8_t first, uint16_t id, size_t *len)
{
	int r;

	if (!id)
		return -TE_EINVALID;
	if ((r = fit(2, cap, len)))
		return r;
	put_u16(put_header(buf, first, 2), id);
	return 0;
}

/* The packets that are only a first byte. */
static int enc_bare(uint8_t *buf, size_t cap, uint8_t first, size_t *len)
{
	int r;

	if ((r = fit(0, cap, len)))
		return r;
	put_header(buf, first, 0);
	return 0;
}

int te_mqtt_enc_puback(uint8_t *buf, size_t cap, uint16_t id, size_t *len)
{
	return enc_id(buf, cap, TE_MQTT_PUBACK << 4, id, len);
}

int te_mqtt_enc_unsuback(uint8_t *buf, size_t cap, uint16_t id, size_t *len)
{
	return enc_id(buf, cap, TE_MQTT_UNSUBACK << 4, id, len);
}

int te_mqtt_enc_pingreq(uint8_t *buf, size_t cap, size_t *len)
{
	return enc_bare(buf, cap, TE_MQTT_PINGREQ << 4, len);
}

int te_mqtt_enc_pingresp(uint8_t *buf, size_t cap, size_t *len)
{
	return enc_bare(buf, cap, TE_MQTT_PINGRESP << 4, len);
}

int te_mqtt_enc_disconnect(uint8_t *buf, size_t cap, size_t *len)
{
	return enc_bare(buf, cap, TE_MQTT_DISCONNECT << 4, len);
}

/* Add a SUBSCRIBE or UNSUBSCRIBE entry (filter and extra bytes) to *rl,
 * which stops growing past the limit so that the sum cannot wrap. */
static int add_filter(struct te_mqtt_str f, size_t extra, size_t *rl)
{
	if (te_mqtt_check_filter(f))
		return -TE_EINVALID;
	if (*rl <= TE_MQTT_RL_MAX)
		*rl += 2 + f.n + extra;
	return 0;
}

int te_mqtt_enc_subscribe(uint8_t *buf, size_t cap, uint16_t id,
			  const struct te_mqtt_sub *subs, size_t n, size_t *len)
{
	size_t rl = 2;
	uint8_t *p;
	int r;

	if (!id || !n || !subs)
		return -TE_EINVALID;
	for (size_t i = 0; i < n; i++)
		if (subs[i].qos > 1 || add_filter(subs[i].filter, 1, &rl))
			return -TE_EINVALID;
	if ((r = fit(rl, cap, len)))
		return r;
	p = put_u16(put_header(buf, TE_MQTT_SUBSCRIBE << 4 | 0x2, rl), id);
	for (size_t i = 0; i < n; i++) {
		p = put_field(p, subs[i].filter.p, subs[i].filter.n);
		*p++ = subs[i].qos;
	}
	return 0;
}

int te_mqtt_enc_unsubscribe(uint8_t *buf, size_t cap, uint16_t id,
			    const struct te_mqtt_str *filters, size_t n, size_t *len)
{
	size_t rl = 2;
	uint8_t *p;
	int r;

	if (!id || !n || !filters)
		return -TE_EINVALID;
	for (size_t i = 0; i < n; i++)
		if (add_filter(filters[i], 0, &rl))
			return -TE_EINVALID;
	if ((r = fit(rl, cap, len)))
		return r;
	p = put_u16(put_header(buf, TE_MQTT_UNSUBSCRIBE << 4 | 0x2, rl), id);
	for (size_t i = 0; i < n; i++)
		p = put_field(p, filters[i].p, filters[i].n);
	return 0;
}

int te_mqtt_enc_connack(uint8_t *buf, size_t cap, bool session_present, uint8_t rc,
			size_t *len)
{
	uint8_t *p;
	int r;

	if (rc > TE_MQTT_CONNACK_NOT_AUTHORIZED || (session_present && rc))
		return -TE_EINVALID;
	if ((r = fit(2, cap, len)))
		return r;
	p = put_header(buf, TE_MQTT_CONNACK << 4, 2);
	p[0] = session_present;
	p[1] = rc;
	return 0;
}

static bool suback_rc_ok(uint8_t rc)
{
	return rc <= 2 || rc == TE_MQTT_SUBACK_FAILURE;
}

int te_mqtt_enc_suback(uint8_t *buf, size_t cap, uint16_t id, const uint8_t *rcs,
		       size_t n, size_t *len)
{
	uint8_t *p;
	int r;

	if (!id || !n || !rcs)
		return -TE_EINVALID;
	for (size_t i = 0; i < n; i++)
		if (!suback_rc_ok(rcs[i]))
			return -TE_EINVALID;
	if (n > TE_MQTT_RL_MAX)
		return -TE_ELIMIT;
	if ((r = fit(2 + n, cap, len)))
		return r;
	p = put_u16(put_header(buf, TE_MQTT_SUBACK << 4, 2 + n), id);
	memcpy(p, rcs, n);
	return 0;
}

/* ---- decoding ---- */

/* What the fixed header must say for each type (table 2.2 and each
 * packet's section): the low nibble, and the remaining length, exact or
 * at least. PUBLISH's nibble is its own flags; its minimum is checked
 * with its QoS. A type with no rule is reserved. */
static const struct rule {
	bool valid;
	uint8_t flags;
	uint8_t rl;
	bool exact;
} rules[16] = {
	/* "MQTT", level, flags, keepalive, client id length */
	[TE_MQTT_CONNECT] = { true, 0x0, 12, false },
	[TE_MQTT_CONNACK] = { true, 0x0, 2, true },
	[TE_MQTT_PUBLISH] = { true, 0x0, 3, false },
	[TE_MQTT_PUBACK] = { true, 0x0, 2, true },
	[TE_MQTT_PUBREC] = { true, 0x0, 2, true },
	[TE_MQTT_PUBREL] = { true, 0x2, 2, true },
	[TE_MQTT_PUBCOMP] = { true, 0x0, 2, true },
	/* id, one filter of one byte and its QoS */
	[TE_MQTT_SUBSCRIBE] = { true, 0x2, 6, false },
	[TE_MQTT_SUBACK] = { true, 0x0, 3, false },
	[TE_MQTT_UNSUBSCRIBE] = { true, 0x2, 5, false },
	[TE_MQTT_UNSUBACK] = { true, 0x0, 2, true },
	[TE_MQTT_PINGREQ] = { true, 0x0, 0, true },
	[TE_MQTT_PINGRESP] = { true, 0x0, 0, true },
	[TE_MQTT_DISCONNECT] = { true, 0x0, 0, true },
};

/* The first byte: a known type with its flags (3.3.1: PUBLISH QoS 3 is
 * malformed, and DUP must be 0 for QoS 0). */
static int check_first(struct te_mqtt_pkt *o)
{
	const struct rule *ru = &rules[o->type];

	if (!ru->valid)
		return -TE_EMALFORMED;
	if (o->type != TE_MQTT_PUBLISH)
		return o->flags == ru->flags ? 0 : -TE_EMALFORMED;
	o->pub.qos = o->flags >> 1 & 3;
	o->pub.dup = o->flags & 0x8;
	o->pub.retain = o->flags & 0x1;
	if (o->pub.qos == 3 || (o->pub.dup && !o->pub.qos))
		return -TE_EMALFORMED;
	return 0;
}

/* The remaining length at buf[1..n) (2.2.3): 0 with *rl and *hl (fixed
 * header bytes); TE_MQTT_NEED_MORE with *rl + *hl = the least the whole
 * packet can be (a continued field's last byte is not 0, so k bytes with
 * the continuation bit mean at least 128^k); -TE_EMALFORMED for a fifth
 * byte or a last byte 0 after others (not the fewest bytes). */
static int read_rl(const uint8_t *buf, size_t n, size_t *rl, size_t *hl)
{
	size_t v = 0;

	for (unsigned i = 0; i < 4; i++) {
		uint8_t b;

		if (1 + i >= n) {
			*rl = i ? v + ((size_t)1 << 7 * i) : 0;
			*hl = 2 + i;
			return TE_MQTT_NEED_MORE;
		}
		b = buf[1 + i];
		v |= (size_t)(b & 0x7f) << 7 * i;
		if (!(b & 0x80)) {
			if (i && !b)
				return -TE_EMALFORMED;
			*rl = v;
			*hl = 2 + i;
			return 0;
		}
	}
	return -TE_EMALFORMED;
}

/* A cursor over a complete packet's body. Every read checks the bytes
 * left, so that a field running past the packet is malformed, not read. */
struct rd {
	const uint8_t *p;
	size_t n;
};

static bool rd_u8(struct rd *r, uint8_t *v)
{
	if (r->n < 1)
		return false;
	*v = *r->p++;
	r->n--;
	return true;
}

static bool rd_u16(struct rd *r, uint16_t *v)
{
	if (r->n < 2)
		return false;
	*v = (uint16_t)(r->p[0] << 8 | r->p[1]);
	r->p += 2;
	r->n -= 2;
	return true;
}

/* A packet identifier: never 0 [MQTT-2.3.1-1]. */
static bool rd_id(struct rd *r, uint16_t *id)
{
	return rd_u16(r, id) && *id;
}

/* A length-prefixed field; *p points into the packet even when empty. */
static bool rd_field(struct rd *r, const uint8_t **p, size_t *n)
{
	uint16_t len;

	if (!rd_u16(r, &len) || len > r->n)
		return false;
	*p = r->p;
	*n = len;
	r->p += len;
	r->n -= len;
	return true;
}

static bool rd_str(struct rd *r, struct te_mqtt_str *s)
{
	const uint8_t *p;

	if (!rd_field(r, &p, &s->n))
		return false;
	s->p = (const char *)p;
	return str_ok(*s);
}

static int dec_will(struct te_mqtt_pkt *o, struct rd *r, uint8_t fl)
{
	o->will.present = true;
	o->will.qos = (fl & CF_WILL_QOS) >> 3;
	o->will.retain = fl & CF_WILL_RETAIN;
	if (!rd_str(r, &o->will.topic) || te_mqtt_check_topic(o->will.topic) ||
	    !rd_field(r, &o->will.msg, &o->will.msg_len))
		return -TE_EMALFORMED;
	return 0;
}

/* 3.1: the flags' rules are [MQTT-3.1.2-3, 11, 13, 14, 15, 22]. */
static int dec_connect(struct te_mqtt_pkt *o, struct rd *r)
{
	struct te_mqtt_connect *c = &o->connect;
	struct te_mqtt_str name;
	uint16_t ka;
	uint8_t fl;

	if (!rd_str(r, &name) || name.n != 4 || memcmp(name.p, "MQTT", 4) ||
	    !rd_u8(r, &o->level) || !rd_u8(r, &fl) || !rd_u16(r, &ka))
		return -TE_EMALFORMED;
	if ((fl & CF_RESERVED) || (fl & CF_WILL_QOS) == CF_WILL_QOS ||
	    (!(fl & CF_WILL) && (fl & (CF_WILL_QOS | CF_WILL_RETAIN))) ||
	    ((fl & CF_PASSWORD) && !(fl & CF_USERNAME)))
		return -TE_EMALFORMED;
	c->keepalive = ka;
	c->clean_session = fl & CF_CLEAN;
	if (!rd_str(r, &c->client_id) || ((fl & CF_WILL) && dec_will(o, r, fl)))
		return -TE_EMALFORMED;
	if ((fl & CF_USERNAME) && !rd_str(r, &c->username))
		return -TE_EMALFORMED;
	if ((fl & CF_PASSWORD) && !rd_field(r, &c->password, &c->password_len))
		return -TE_EMALFORMED;
	return r->n ? -TE_EMALFORMED : 0;
}

/* 3.3: the flags were read with the first byte; the payload is the rest. */
static int dec_publish(struct te_mqtt_pkt *o, struct rd *r)
{
	struct te_mqtt_publish *m = &o->pub;

	if (!rd_str(r, &m->topic) || te_mqtt_check_topic(m->topic) ||
	    (m->qos && !rd_id(r, &m->id)))
		return -TE_EMALFORMED;
	o->id = m->id;
	m->payload = r->p;
	m->payload_len = r->n;
	return 0;
}

/* 3.2: only bit 0 of the flags; no session without acceptance. */
static int dec_connack(struct te_mqtt_pkt *o, struct rd *r)
{
	uint8_t fl, rc;

	if (!rd_u8(r, &fl) || !rd_u8(r, &rc) || fl > 1 ||
	    rc > TE_MQTT_CONNACK_NOT_AUTHORIZED || (fl && rc))
		return -TE_EMALFORMED;
	o->connack.session_present = fl;
	o->connack.rc = rc;
	return 0;
}

static int dec_suback(struct te_mqtt_pkt *o, struct rd *r)
{
	if (!rd_id(r, &o->id))
		return -TE_EMALFORMED;
	for (size_t i = 0; i < r->n; i++)
		if (!suback_rc_ok(r->p[i]))
			return -TE_EMALFORMED;
	o->suback.rc = r->p;
	o->suback.n = r->n;
	return 0;
}

/* 3.8 and 3.10: at least one entry (the minimum remaining length makes
 * the loop run once); a requested QoS byte has 6 reserved bits
 * [MQTT-3.8.3-4] and is not 3. */
static int dec_filters(struct te_mqtt_pkt *o, struct rd *r, bool with_qos)
{
	struct te_mqtt_str f;
	uint8_t qos;

	if (!rd_id(r, &o->id))
		return -TE_EMALFORMED;
	o->filters.p = r->p;
	o->filters.n = r->n;
	while (r->n) {
		if (!rd_str(r, &f) || te_mqtt_check_filter(f) ||
		    (with_qos && (!rd_u8(r, &qos) || qos > 2)))
			return -TE_EMALFORMED;
		o->filters.count++;
	}
	return o->filters.count ? 0 : -TE_EMALFORMED;
}

/* The body of a complete packet whose remaining length suits its type. */
static int dec_body(struct te_mqtt_pkt *o, const uint8_t *body, size_t rl)
{
	struct rd r = { body, rl };

	switch (o->type) {
	case TE_MQTT_CONNECT:
		return dec_connect(o, &r);
	case TE_MQTT_CONNACK:
		return dec_connack(o, &r);
	case TE_MQTT_PUBLISH:
		return dec_publish(o, &r);
	case TE_MQTT_PUBACK:
	case TE_MQTT_PUBREC:
	case TE_MQTT_PUBREL:
	case TE_MQTT_PUBCOMP:
	case TE_MQTT_UNSUBACK:
		return rd_id(&r, &o->id) ? 0 : -TE_EMALFORMED;
	case TE_MQTT_SUBSCRIBE:
		return dec_filters(o, &r, true);
	case TE_MQTT_SUBACK:
		return dec_suback(o, &r);
	case TE_MQTT_UNSUBSCRIBE:
		return dec_filters(o, &r, false);
	default: /* PINGREQ, PINGRESP, DISCONNECT: nothing after the header */
		return 0;
	}
}

/* The remaining length the type allows (PUBLISH: topic length, a topic of
 * at least one byte, and the packet id with QoS > 0). */
static bool rl_suits(const struct te_mqtt_pkt *o, size_t rl)
{
	const struct rule *ru = &rules[o->type];
	size_t min = ru->rl + (o->type == TE_MQTT_PUBLISH && o->pub.qos ? 2 : 0);

	return ru->exact ? rl == min : rl >= min;
}

static int decode(const uint8_t *buf, size_t n, size_t max_packet,
		  struct te_mqtt_pkt *out)
{
	size_t rl, hl;
	int r;

	if (!n)
		return TE_MQTT_NEED_MORE;
	out->type = buf[0] >> 4;
	out->flags = buf[0] & 0x0f;
	if ((r = check_first(out)) < 0 || (r = read_rl(buf, n, &rl, &hl)) < 0)
		return r;
	if (r == 0 && !rl_suits(out, rl))
		return -TE_EMALFORMED;
	/* hl <= 5 and rl <= TE_MQTT_RL_MAX: no overflow */
	if (hl + rl > max_packet)
		return -TE_ELIMIT;
	if (r == TE_MQTT_NEED_MORE)
		return r;
	out->len = hl + rl;
	if (n < out->len)
		return TE_MQTT_NEED_MORE;
	return dec_body(out, buf + hl, rl);
}

int te_mqtt_decode(const uint8_t *buf, size_t n, size_t max_packet,
		   struct te_mqtt_pkt *out)
{
	int r;

	memset(out, 0, sizeof(*out));
	r = decode(buf, n, max_packet, out);
	if (r < 0)
		out->len = 0;
	return r;
}

bool te_mqtt_next_filter(const struct te_mqtt_pkt *pkt, size_t *pos,
			 struct te_mqtt_sub *sub)
{
	bool qos = pkt->type == TE_MQTT_SUBSCRIBE;
	struct rd r;
	const uint8_t *p;

	if ((pkt->type != TE_MQTT_SUBSCRIBE && pkt->type != TE_MQTT_UNSUBSCRIBE) ||
	    *pos >= pkt->filters.n)
		return false;
	/* The decoder validated the entries; the reads stay bounded anyway. */
	r = (struct rd){ pkt->filters.p + *pos, pkt->filters.n - *pos };
	sub->qos = 0;
	if (!rd_field(&r, &p, &sub->filter.n) || (qos && !rd_u8(&r, &sub->qos)))
		return false;
	sub->filter.p = (const char *)p;
	*pos = pkt->filters.n - r.n;
	return true;
}

/* ---- names ---- */

const char *te_mqtt_connack_str(unsigned rc)
{
	static const char *const names[] = {
		[TE_MQTT_CONNACK_ACCEPTED] = "accepted",
		[TE_MQTT_CONNACK_BAD_VERSION] = "unacceptable protocol version",
		[TE_MQTT_CONNACK_ID_REJECTED] = "identifier rejected",
		[TE_MQTT_CONNACK_UNAVAILABLE] = "server unavailable",
		[TE_MQTT_CONNACK_BAD_AUTH] = "bad user name or password",
		[TE_MQTT_CONNACK_NOT_AUTHORIZED] = "not authorized",
	};

	return rc < sizeof(names) / sizeof(names[0]) ? names[rc] : "reserved return code";
}

const char *te_mqtt_type_str(unsigned type)
{
	static const char *const names[] = {
		[TE_MQTT_CONNECT] = "CONNECT",	   [TE_MQTT_CONNACK] = "CONNACK",
		[TE_MQTT_PUBLISH] = "PUBLISH",	   [TE_MQTT_PUBACK] = "PUBACK",
		[TE_MQTT_PUBREC] = "PUBREC",	   [TE_MQTT_PUBREL] = "PUBREL",
		[TE_MQTT_PUBCOMP] = "PUBCOMP",	   [TE_MQTT_SUBSCRIBE] = "SUBSCRIBE",
		[TE_MQTT_SUBACK] = "SUBACK",	   [TE_MQTT_UNSUBSCRIBE] = "UNSUBSCRIBE",
		[TE_MQTT_UNSUBACK] = "UNSUBACK",   [TE_MQTT_PINGREQ] = "PINGREQ",
		[TE_MQTT_PINGRESP] = "PINGRESP",   [TE_MQTT_DISCONNECT] = "DISCONNECT",
	};

	if (type >= sizeof(names) / sizeof(names[0]) || !names[type])
		return "reserved";
	return names[type];
}
