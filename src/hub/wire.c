/* Message and control records (wire.h; the format is
 * include/tinyedge/wire.h).
 *
 * Decoding a message reserves the body at the end of the buffer first (its
 * length is in the fixed header), so the strings are parsed inside a region
 * that is already known to lie within the buffer, and must fill it exactly.
 * A control record's two lengths are added up in 64 bits, so the sum cannot
 * wrap whatever they hold. Every multi-byte field is read
 * with explicit little-endian byte loads: no alignment or host byte order
 * assumed. */
#include <string.h>

#include "core/err.h"
#include "wire.h"

#define HDR TE_WIRE_MSG_HDR

_Static_assert(TE_SYS_N == TE_WIRE_SYS_N, "system property count");
_Static_assert(TE_SYS_MESSAGE_ID == TE_WIRE_SYS_MESSAGE_ID &&
	       TE_SYS_CORRELATION_ID == TE_WIRE_SYS_CORRELATION_ID &&
	       TE_SYS_CONTENT_TYPE == TE_WIRE_SYS_CONTENT_TYPE &&
	       TE_SYS_CONTENT_ENCODING == TE_WIRE_SYS_CONTENT_ENCODING &&
	       TE_SYS_CREATION_TIME_UTC == TE_WIRE_SYS_CREATION_TIME_UTC &&
	       TE_SYS_CONNECTION_DEVICE_ID == TE_WIRE_SYS_CONNECTION_DEVICE_ID &&
	       TE_SYS_CONNECTION_MODULE_ID == TE_WIRE_SYS_CONNECTION_MODULE_ID &&
	       TE_SYS_OUTPUT_NAME == TE_WIRE_SYS_OUTPUT_NAME &&
	       TE_SYS_INPUT_NAME == TE_WIRE_SYS_INPUT_NAME &&
	       TE_SYS_USER_ID == TE_WIRE_SYS_USER_ID, "system property bits");
_Static_assert(TE_ORIGIN_MODULE == TE_WIRE_ORIGIN_MODULE &&
	       TE_ORIGIN_DEVICE == TE_WIRE_ORIGIN_DEVICE &&
	       TE_ORIGIN_TWIN_CHANGE == TE_WIRE_ORIGIN_TWIN_CHANGE, "origins");
_Static_assert(TE_MSG_BODY_MAX == TE_WIRE_BODY_MAX &&
	       TE_MSG_PROPS_MAX == TE_WIRE_PROPS_MAX, "limits");
_Static_assert(TE_WIRE_STR_MAX <= 0xffff && TE_WIRE_PROPS_MAX <= 0xffff,
	       "lengths fit their fields");
_Static_assert(sizeof(struct te_wire_msg) == HDR, "message header size");
_Static_assert(sizeof(struct te_wire_ctl) == TE_WIRE_CTL_HDR, "control header size");

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v);
	put16(p + 2, v >> 16);
}

/* ---- encode --------------------------------------------------------------- */

/* Add a string's encoded size; a name must not be empty. */
static int str_size(const struct te_str *s, bool name, size_t *size)
{
	if (s->n > TE_WIRE_STR_MAX)
		return -TE_ELIMIT;
	if ((!s->p && s->n) || (name && !s->n))
		return -TE_EINVALID;
	*size += 2 + (size_t)s->n;
	return 0;
}

/* Check m against the limits and compute its encoded size. */
static int msg_size(const struct te_msg *m, size_t *size, uint32_t *sysmask)
{
	int err = 0;

	if ((unsigned)m->origin > TE_ORIGIN_TWIN_CHANGE)
		return -TE_EINVALID;
	if (m->bodylen > TE_MSG_BODY_MAX || m->nprops > TE_MSG_PROPS_MAX)
		return -TE_ELIMIT;
	if ((m->bodylen && !m->body) || (m->nprops && !m->props))
		return -TE_EINVALID;
	*size = HDR + (size_t)m->bodylen;
	*sysmask = 0;
	for (unsigned i = 0; i < TE_SYS_N && !err; i++) {
		if (!m->sys[i].p && !m->sys[i].n)
			continue;  /* absent */
		*sysmask |= 1u << i;
		err = str_size(&m->sys[i], false, size);
	}
	for (uint32_t i = 0; i < m->nprops && !err; i++) {
		err = str_size(&m->props[i].key, true, size);
		if (!err)
			err = str_size(&m->props[i].val, false, size);
	}
	return err;
}

static uint8_t *put_str(uint8_t *p, const struct te_str *s)
{
	put16(p, s->n);
	if (s->n)
		memcpy(p + 2, s->p, s->n);
	return p + 2 + s->n;
}

int te_msg_encode(const struct te_msg *m, void *buf, size_t cap, size_t *len)
{
	uint8_t *p = buf;
	uint32_t sysmask;
	size_t size;
	int err = msg_size(m, &size, &sysmask);

	if (err)
		return err;
	*len = size;
	if (size > cap)
		return -TE_ENOSPACE;
	p[0] = TE_WIRE_KIND_MSG;
	p[1] = (uint8_t)m->origin;
	put16(p + 2, sysmask);
	put16(p + 4, m->nprops);
	put16(p + 6, 0);
	put32(p + 8, m->bodylen);
	p += HDR;
	for (unsigned i = 0; i < TE_SYS_N; i++)
		if (sysmask & 1u << i)
			p = put_str(p, &m->sys[i]);
	for (uint32_t i = 0; i < m->nprops; i++) {
		p = put_str(p, &m->props[i].key);
		p = put_str(p, &m->props[i].val);
	}
	if (m->bodylen)
		memcpy(p, m->body, m->bodylen);
	return 0;
}

/* ---- decode --------------------------------------------------------------- */

/* The part of the buffer not yet parsed. */
struct cursor {
	const uint8_t *p;
	size_t left;
};

static int take_str(struct cursor *c, struct te_str *s)
{
	uint32_t n;

	if (c->left < 2)
		return -TE_EMALFORMED;
	n = get16(c->p);
	if (n > TE_WIRE_STR_MAX)
		return -TE_ELIMIT;
	if (c->left - 2 < n)
		return -TE_EMALFORMED;
	s->p = (const char *)c->p + 2;
	s->n = n;
	c->p += 2 + n;
	c->left -= 2 + n;
	return 0;
}

/* The fixed header: everything but the strings. */
static int take_hdr(const uint8_t *b, size_t len, struct te_msg *out,
		    uint32_t *sysmask, unsigned maxprops)
{
	uint32_t bodylen = get32(b + 8);

	*sysmask = get16(b + 2);
	out->nprops = get16(b + 4);
	if (b[0] != TE_WIRE_KIND_MSG || b[1] > TE_ORIGIN_TWIN_CHANGE ||
	    *sysmask >> TE_SYS_N || get16(b + 6))
		return -TE_EMALFORMED;
	out->origin = (enum te_msg_origin)b[1];
	if (bodylen > TE_MSG_BODY_MAX || out->nprops > TE_MSG_PROPS_MAX)
		return -TE_ELIMIT;
	if (out->nprops > maxprops)
		return -TE_ENOSPACE;
	if (len - HDR < bodylen)
		return -TE_EMALFORMED;
	out->body = b + len - bodylen;
	out->bodylen = bodylen;
	return 0;
}

static int take_props(struct cursor *c, struct te_prop *props, uint32_t n)
{
	int err = 0;

	for (uint32_t i = 0; i < n && !err; i++) {
		err = take_str(c, &props[i].key);
		if (!err && !props[i].key.n)
			err = -TE_EMALFORMED;
		if (!err)
			err = take_str(c, &props[i].val);
	}
	return err;
}

int te_msg_decode(const void *buf, size_t len, struct te_msg *out,
		  struct te_prop *props, unsigned maxprops)
{
	const uint8_t *b = buf;
	struct cursor c;
	uint32_t sysmask;
	int err;

	memset(out, 0, sizeof(*out));
	if (len < HDR)
		return -TE_EMALFORMED;
	err = take_hdr(b, len, out, &sysmask, maxprops);
	if (err)
		return err;
	c.p = b + HDR;
	c.left = len - HDR - out->bodylen;  /* the strings, up to the body */
	for (unsigned i = 0; i < TE_SYS_N && !err; i++)
		if (sysmask & 1u << i)
			err = take_str(&c, &out->sys[i]);
	if (!err)
		err = take_props(&c, props, out->nprops);
	if (!err && c.left)
		err = -TE_EMALFORMED;  /* bytes between the strings and the body */
	out->props = props;
	return err;
}

/* ---- control records ------------------------------------------------------- */

#define CTL_HDR TE_WIRE_CTL_HDR

enum { ID_ZERO, ID_ANY, ID_SET };

/* The fields each control kind uses (the table in tinyedge/wire.h). */
static const struct ctl_rule {
	uint8_t id;          /* ID_*: what id may be */
	bool status;         /* status may be non-zero */
	bool name;           /* a name is required (else none) */
	bool body;           /* a body is required (else optional) */
	uint32_t body_max;
} ctl_rules[] = {
	[TE_WIRE_KIND_TWIN] = { ID_ANY, false, false, true, TE_WIRE_TWIN_FULL_MAX },
	[TE_WIRE_KIND_DESIRED] = { ID_ZERO, false, false, true, TE_WIRE_TWIN_MAX },
	[TE_WIRE_KIND_REPORTED] = { ID_SET, false, false, true, TE_WIRE_TWIN_MAX },
	[TE_WIRE_KIND_ACK] = { ID_SET, true, false, false, TE_WIRE_STR_MAX },
	[TE_WIRE_KIND_TWIN_GET] = { ID_SET, false, false, false, 0 },
	[TE_WIRE_KIND_METHOD] = { ID_SET, false, true, false, TE_WIRE_METHOD_MAX },
	[TE_WIRE_KIND_METHOD_RESULT] = { ID_SET, true, false, false, TE_WIRE_METHOD_MAX },
};

static const struct ctl_rule *ctl_rule(unsigned kind)
{
	if (kind < TE_WIRE_KIND_TWIN || kind > TE_WIRE_KIND_METHOD_RESULT)
		return NULL;
	return &ctl_rules[kind];
}

int te_wire_kind(const void *payload, size_t len)
{
	return len ? *(const uint8_t *)payload : -TE_EMALFORMED;
}

/* The lengths within the limits: any name, and the body of a kind that
 * has one (a body where none belongs is a field rule). r is c's rule. */
static int ctl_limits(const struct te_ctlrec *c, const struct ctl_rule *r)
{
	if (c->name.n > TE_WIRE_STR_MAX || (r->body_max && c->bodylen > r->body_max))
		return -TE_ELIMIT;
	return 0;
}

/* The kind's field rules, on pointers that cover the lengths. */
static int ctl_fields(const struct te_ctlrec *c, const struct ctl_rule *r)
{
	if ((r->id == ID_ZERO && c->id) || (r->id == ID_SET && !c->id) ||
	    (!r->status && c->status) || !r->name != !c->name.n ||
	    (r->body && !c->bodylen) || (!r->body_max && c->bodylen))
		return -TE_EINVALID;
	if (c->name.n && memchr(c->name.p, 0, c->name.n))
		return -TE_EINVALID;
	return 0;
}

int te_ctlrec_encode(const struct te_ctlrec *c, void *buf, size_t cap, size_t *len)
{
	const struct ctl_rule *r = ctl_rule(c->kind);
	uint8_t *p = buf;
	int err;

	if (!r)
		return -TE_EINVALID;
	err = ctl_limits(c, r);
	if (err)
		return err;
	if ((!c->name.p && c->name.n) || (!c->body && c->bodylen))
		return -TE_EINVALID;
	err = ctl_fields(c, r);
	if (err)
		return err;
	*len = CTL_HDR + (size_t)c->name.n + c->bodylen;
	if (*len > cap)
		return -TE_ENOSPACE;
	p[0] = (uint8_t)c->kind;
	p[1] = p[2] = p[3] = 0;
	put32(p + 4, c->id);
	put32(p + 8, c->status);
	put32(p + 12, c->name.n);
	put32(p + 16, c->bodylen);
	if (c->name.n)
		memcpy(p + CTL_HDR, c->name.p, c->name.n);
	if (c->bodylen)
		memcpy(p + CTL_HDR + c->name.n, c->body, c->bodylen);
	return 0;
}

int te_ctlrec_decode(const void *buf, size_t len, struct te_ctlrec *out)
{
	const uint8_t *b = buf;
	const struct ctl_rule *r;
	int err;

	memset(out, 0, sizeof(*out));
	if (len < CTL_HDR || !(r = ctl_rule(b[0])) || b[1] || b[2] || b[3])
		return -TE_EMALFORMED;
	out->kind = b[0];
	out->id = get32(b + 4);
	out->status = get32(b + 8);
	out->name.n = get32(b + 12);
	out->bodylen = get32(b + 16);
	err = ctl_limits(out, r);
	if (err)
		return err;
	if (len - CTL_HDR != (uint64_t)out->name.n + out->bodylen)
		return -TE_EMALFORMED;  /* 64 bits: no wrap where size_t has 32 */
	out->name.p = (const char *)b + CTL_HDR;
	out->body = b + CTL_HDR + out->name.n;
	return ctl_fields(out, r) ? -TE_EMALFORMED : 0;
}
