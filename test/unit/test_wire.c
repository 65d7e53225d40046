/* Unit tests for the control records of src/hub/wire.c (te_ctlrec_encode,
 * te_ctlrec_decode, te_wire_kind): twins and direct methods. Message records
 * are tested with the rings, in test_ring.c. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "hub/wire.h"
#include "tap.h"

#define HDR TE_WIRE_CTL_HDR

static uint8_t buf[HDR + TE_WIRE_STR_MAX + TE_WIRE_METHOD_MAX + 16];
static char big[TE_WIRE_METHOD_MAX + 16];

static struct te_ctlrec ctl(unsigned kind, uint32_t id, uint32_t status,
			 const char *name, const void *body, uint32_t bodylen)
{
	return (struct te_ctlrec){
		.kind = kind, .id = id, .status = status,
		.name = { name, name ? (uint32_t)strlen(name) : 0 },
		.body = body, .bodylen = bodylen,
	};
}

static bool ctl_eq(const struct te_ctlrec *a, const struct te_ctlrec *b)
{
	return a->kind == b->kind && a->id == b->id && a->status == b->status &&
	       a->name.n == b->name.n && a->bodylen == b->bodylen &&
	       (!a->name.n || !memcmp(a->name.p, b->name.p, a->name.n)) &&
	       (!a->bodylen || !memcmp(a->body, b->body, a->bodylen));
}

/* Encode, decode, compare, re-encode: 0 or the first error. */
static int roundtrip(const struct te_ctlrec *c, size_t *len)
{
	static uint8_t again[sizeof(buf)];
	struct te_ctlrec d;
	size_t n2;
	int err = te_ctlrec_encode(c, buf, sizeof(buf), len);

	if (err)
		return err;
	err = te_ctlrec_decode(buf, *len, &d);
	if (err)
		return err;
	if (!ctl_eq(c, &d) || d.name.p != (const char *)buf + HDR ||
	    (const uint8_t *)d.body != buf + HDR + d.name.n)
		return -1;
	if (te_ctlrec_encode(&d, again, sizeof(again), &n2) || n2 != *len ||
	    memcmp(again, buf, n2))
		return -2;
	return 0;
}

static void test_roundtrip(void)
{
	static const char twin[] = "{\"desired\":{\"$version\":1},\"reported\":{\"$version\":1}}";
	struct te_ctlrec c;
	size_t len = 0;

	c = ctl(TE_WIRE_KIND_TWIN, 0, 0, NULL, twin, sizeof(twin) - 1);
	TAP_EQ_INT(roundtrip(&c, &len), 0, "TWIN pushed (id 0)");
	TAP_EQ_INT(len, HDR + sizeof(twin) - 1, "...header + body");
	c.id = 9;
	TAP_EQ_INT(roundtrip(&c, &len), 0, "TWIN answering request 9");
	c = ctl(TE_WIRE_KIND_DESIRED, 0, 0, NULL, "{\"a\":1,\"$version\":2}", 20);
	TAP_EQ_INT(roundtrip(&c, &len), 0, "DESIRED");
	c = ctl(TE_WIRE_KIND_REPORTED, 3, 0, NULL, "{}", 2);
	TAP_EQ_INT(roundtrip(&c, &len), 0, "REPORTED");
	c = ctl(TE_WIRE_KIND_ACK, 3, 200, NULL, NULL, 0);
	TAP_EQ_INT(roundtrip(&c, &len), 0, "ACK without text");
	c = ctl(TE_WIRE_KIND_ACK, 4, 400, NULL, "bad key", 7);
	TAP_EQ_INT(roundtrip(&c, &len), 0, "ACK with text");
	c = ctl(TE_WIRE_KIND_TWIN_GET, UINT32_MAX, 0, NULL, NULL, 0);
	TAP_EQ_INT(roundtrip(&c, &len), 0, "TWIN_GET, id 2^32 - 1");
	TAP_EQ_INT(len, HDR, "...is the bare header");
	c = ctl(TE_WIRE_KIND_METHOD, 1, 0, "reboot", "{\"delay\":5}", 11);
	TAP_EQ_INT(roundtrip(&c, &len), 0, "METHOD");
	c = ctl(TE_WIRE_KIND_METHOD, 1, 0, "ping", NULL, 0);
	TAP_EQ_INT(roundtrip(&c, &len), 0, "METHOD without payload");
	c = ctl(TE_WIRE_KIND_METHOD_RESULT, 1, (uint32_t)-1, NULL, NULL, 0);
	TAP_EQ_INT(roundtrip(&c, &len), 0, "METHOD_RESULT, status -1, no payload");

	c = ctl(TE_WIRE_KIND_METHOD, 0x04030201, 0, "ab", "{}", 2);
	te_ctlrec_encode(&c, buf, sizeof(buf), &len);
	{
		static const uint8_t want[] = { 7, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0,
						2, 0, 0, 0, 2, 0, 0, 0, 'a', 'b', '{', '}' };

		TAP_OK(len == sizeof(want) && !memcmp(buf, want, len),
		       "little-endian bytes as documented");
	}
	c = ctl(TE_WIRE_KIND_METHOD_RESULT, 5, 501, NULL, "x", 1);
	te_ctlrec_encode(&c, buf, sizeof(buf), &len);
	{
		static const uint8_t want[] = { 8, 0, 0, 0, 5, 0, 0, 0, 0xf5, 1, 0, 0,
						0, 0, 0, 0, 1, 0, 0, 0, 'x' };

		TAP_OK(len == sizeof(want) && !memcmp(buf, want, len), "status in bytes 8..11");
	}
	TAP_EQ_INT(te_wire_kind(buf, len), TE_WIRE_KIND_METHOD_RESULT, "te_wire_kind: byte 0");
	TAP_EQ_INT(te_wire_kind("\x01", 1), TE_WIRE_KIND_MSG, "te_wire_kind: a message");
	TAP_EQ_INT(te_wire_kind(buf, 0), -TE_EMALFORMED, "te_wire_kind: nothing");
}

/* Every kind at its body limit, and one byte over. */
static void test_limits(void)
{
	static const struct {
		unsigned kind;
		uint32_t id, max;
		const char *name;
	} k[] = {
		{ TE_WIRE_KIND_TWIN, 0, TE_WIRE_TWIN_FULL_MAX, NULL },
		{ TE_WIRE_KIND_DESIRED, 0, TE_WIRE_TWIN_MAX, NULL },
		{ TE_WIRE_KIND_REPORTED, 1, TE_WIRE_TWIN_MAX, NULL },
		{ TE_WIRE_KIND_ACK, 1, TE_WIRE_STR_MAX, NULL },
		{ TE_WIRE_KIND_TWIN_GET, 1, 0, NULL },
		{ TE_WIRE_KIND_METHOD, 1, TE_WIRE_METHOD_MAX, "m" },
		{ TE_WIRE_KIND_METHOD_RESULT, 1, TE_WIRE_METHOD_MAX, NULL },
	};
	struct te_ctlrec c;
	size_t len;

	memset(big, '7', sizeof(big));
	for (unsigned i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
		/* A body where none belongs breaks a field rule, not a limit. */
		int over = k[i].max ? -TE_ELIMIT : -TE_EINVALID;

		c = ctl(k[i].kind, k[i].id, 0, k[i].name, big, k[i].max);
		TAP_EQ_INT(roundtrip(&c, &len), 0, "kind %u: a %u-byte body", k[i].kind, k[i].max);
		c.bodylen++;
		TAP_EQ_INT(te_ctlrec_encode(&c, buf, sizeof(buf), &len), over,
			   "kind %u: encode refuses %u bytes", k[i].kind, k[i].max + 1);
		buf[16] = (uint8_t)(k[i].max + 1);
		buf[17] = (uint8_t)((k[i].max + 1) >> 8);
		buf[18] = (uint8_t)((k[i].max + 1) >> 16);
		TAP_EQ_INT(te_ctlrec_decode(buf, len + 1, &c),
			   k[i].max ? -TE_ELIMIT : -TE_EMALFORMED,
			   "kind %u: decode refuses %u bytes", k[i].kind, k[i].max + 1);
	}
	memset(big, 'n', TE_WIRE_STR_MAX + 1);
	big[TE_WIRE_STR_MAX] = '\0';
	c = ctl(TE_WIRE_KIND_METHOD, 1, 0, big, NULL, 0);
	TAP_EQ_INT(roundtrip(&c, &len), 0, "a 4096-byte method name");
	big[TE_WIRE_STR_MAX] = 'n';
	big[TE_WIRE_STR_MAX + 1] = '\0';
	c = ctl(TE_WIRE_KIND_METHOD, 1, 0, big, NULL, 0);
	TAP_EQ_INT(te_ctlrec_encode(&c, buf, sizeof(buf), &len), -TE_ELIMIT, "a 4097-byte method name");
	c = ctl(TE_WIRE_KIND_REPORTED, 1, 0, NULL, "{}", 2);
	TAP_EQ_INT(te_ctlrec_encode(&c, buf, HDR + 1, &len), -TE_ENOSPACE, "encode: cap one short");
	TAP_EQ_INT(len, HDR + 2, "...reports the size needed");
	TAP_EQ_INT(te_ctlrec_encode(&c, NULL, 0, &len), -TE_ENOSPACE, "encode: cap 0 sizes it");
}

static void test_encode_invalid(void)
{
	struct te_ctlrec c;
	size_t len;

#define BAD(kind, id, status, name, body, n, what)                              \
	do {                                                                    \
		c = ctl(kind, id, status, name, body, n);                       \
		TAP_EQ_INT(te_ctlrec_encode(&c, buf, sizeof(buf), &len), -TE_EINVALID, \
			   "encode refuses %s", what);                          \
	} while (0)
	BAD(0, 1, 0, NULL, NULL, 0, "kind 0");
	BAD(TE_WIRE_KIND_MSG, 1, 0, NULL, NULL, 0, "kind 1 (a message)");
	BAD(9, 1, 0, NULL, NULL, 0, "kind 9");
	BAD(TE_WIRE_KIND_TWIN, 0, 0, NULL, NULL, 0, "TWIN without a body");
	BAD(TE_WIRE_KIND_TWIN, 0, 1, NULL, "{}", 2, "TWIN with a status");
	BAD(TE_WIRE_KIND_DESIRED, 1, 0, NULL, "{}", 2, "DESIRED with an id");
	BAD(TE_WIRE_KIND_DESIRED, 0, 0, "n", "{}", 2, "DESIRED with a name");
	BAD(TE_WIRE_KIND_REPORTED, 0, 0, NULL, "{}", 2, "REPORTED without an id");
	BAD(TE_WIRE_KIND_REPORTED, 1, 0, NULL, NULL, 0, "REPORTED without a body");
	BAD(TE_WIRE_KIND_ACK, 0, 200, NULL, NULL, 0, "ACK without an id");
	BAD(TE_WIRE_KIND_TWIN_GET, 0, 0, NULL, NULL, 0, "TWIN_GET without an id");
	BAD(TE_WIRE_KIND_TWIN_GET, 1, 200, NULL, NULL, 0, "TWIN_GET with a status");
	BAD(TE_WIRE_KIND_METHOD, 1, 0, NULL, "{}", 2, "METHOD without a name");
	BAD(TE_WIRE_KIND_METHOD, 0, 0, "m", NULL, 0, "METHOD without an id");
	BAD(TE_WIRE_KIND_METHOD, 1, 200, "m", NULL, 0, "METHOD with a status");
	BAD(TE_WIRE_KIND_METHOD_RESULT, 0, 200, NULL, NULL, 0, "METHOD_RESULT without an id");
	BAD(TE_WIRE_KIND_METHOD_RESULT, 1, 200, "m", NULL, 0, "METHOD_RESULT with a name");
	BAD(TE_WIRE_KIND_REPORTED, 1, 0, NULL, NULL, 2, "a NULL body with a length");
#undef BAD
	c = ctl(TE_WIRE_KIND_METHOD, 1, 0, "m", NULL, 0);
	c.name = (struct te_str){ "a\0b", 3 };
	TAP_EQ_INT(te_ctlrec_encode(&c, buf, sizeof(buf), &len), -TE_EINVALID,
		   "encode refuses a NUL in the name");
	c.name = (struct te_str){ NULL, 3 };
	TAP_EQ_INT(te_ctlrec_encode(&c, buf, sizeof(buf), &len), -TE_EINVALID,
		   "encode refuses a NULL name with a length");
}

/* Decode hand-made bytes. */
static int dec(const uint8_t *b, size_t n)
{
	struct te_ctlrec c;

	return te_ctlrec_decode(b, n, &c);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void test_decode_malformed(void)
{
	/* METHOD 1 "ab" with payload "{}". */
	static const uint8_t ok[] = { 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
				      2, 0, 0, 0, 2, 0, 0, 0, 'a', 'b', '{', '}' };
	uint8_t b[sizeof(ok) + 1];

#define TRY(edit, want, name) do { memcpy(b, ok, sizeof(ok)); edit; \
	TAP_EQ_INT(dec(b, sizeof(ok)), want, "decode: " name); } while (0)
	TRY((void)0, 0, "the reference record");
	TRY(b[0] = 0, -TE_EMALFORMED, "kind 0");
	TRY(b[0] = 1, -TE_EMALFORMED, "kind 1 (a message)");
	TRY(b[0] = 9, -TE_EMALFORMED, "kind 9");
	TRY(b[0] = 0xff, -TE_EMALFORMED, "kind 255");
	TRY(b[1] = 1, -TE_EMALFORMED, "reserved byte 1 set");
	TRY(b[2] = 0x80, -TE_EMALFORMED, "reserved byte 2 set");
	TRY(b[3] = 1, -TE_EMALFORMED, "reserved byte 3 set");
	TRY(put32(b + 4, 0), -TE_EMALFORMED, "METHOD id 0");
	TRY(put32(b + 8, 200), -TE_EMALFORMED, "METHOD with a status");
	TRY(put32(b + 12, 0), -TE_EMALFORMED, "name length short (body too long)");
	TRY(put32(b + 12, 3), -TE_EMALFORMED, "name length long (body too short)");
	TRY(put32(b + 12, 5), -TE_EMALFORMED, "name and body past the end");
	TRY(put32(b + 16, 1), -TE_EMALFORMED, "body length short (bytes left over)");
	TRY(put32(b + 16, 3), -TE_EMALFORMED, "body length past the end");
	TRY(put32(b + 12, TE_WIRE_STR_MAX + 1), -TE_ELIMIT, "name length over 4096");
	TRY(put32(b + 12, UINT32_MAX), -TE_ELIMIT, "name length 2^32 - 1");
	TRY(put32(b + 12, UINT32_MAX - 1), -TE_ELIMIT, "name length that would wrap the sum");
	TRY(put32(b + 16, TE_WIRE_METHOD_MAX + 1), -TE_ELIMIT, "body length over 128 KiB");
	TRY(put32(b + 16, UINT32_MAX), -TE_ELIMIT, "body length 2^32 - 1");
	TRY(b[20] = 0, -TE_EMALFORMED, "a NUL in the name");
	TRY((b[0] = TE_WIRE_KIND_ACK, put32(b + 8, 200)), -TE_EMALFORMED, "an ACK with a name");
	TRY((b[0] = TE_WIRE_KIND_DESIRED, put32(b + 12, 0), put32(b + 16, 4), put32(b + 4, 0)),
	    0, "a DESIRED, for contrast");
	TRY((b[0] = TE_WIRE_KIND_DESIRED, put32(b + 12, 0), put32(b + 16, 4)),
	    -TE_EMALFORMED, "a DESIRED with an id");
	TRY((b[0] = TE_WIRE_KIND_TWIN_GET, put32(b + 12, 0), put32(b + 16, 4)),
	    -TE_EMALFORMED, "a TWIN_GET with a body");
	TRY((b[0] = TE_WIRE_KIND_TWIN_GET, put32(b + 12, 0), put32(b + 16, UINT32_MAX)),
	    -TE_EMALFORMED, "a TWIN_GET with a body length of 2^32 - 1");
#undef TRY
	memcpy(b, ok, sizeof(ok));
	b[sizeof(ok)] = 0;
	TAP_EQ_INT(dec(b, sizeof(ok) + 1), -TE_EMALFORMED, "decode: a trailing byte");
	TAP_EQ_INT(dec(b, sizeof(ok) - 1), -TE_EMALFORMED, "decode: one byte short");
	TAP_EQ_INT(dec(b, 0), -TE_EMALFORMED, "decode: nothing");
	TAP_EQ_INT(dec(b, HDR - 1), -TE_EMALFORMED, "decode: shorter than the header");
	{
		static const uint8_t twin_empty[] = { 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
						      0, 0, 0, 0, 0, 0, 0, 0 };
		static const uint8_t get[] = { 6, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
					       0, 0, 0, 0, 0, 0, 0, 0 };

		TAP_EQ_INT(dec(twin_empty, sizeof(twin_empty)), -TE_EMALFORMED,
			   "decode: a TWIN without a body");
		TAP_EQ_INT(dec(get, sizeof(get)), 0, "decode: a bare TWIN_GET");
	}
}

/* Every strict prefix of valid encodings is rejected; every byte change
 * either fails or decodes to a view inside the buffer that re-encodes to
 * the same bytes. Buffers are exact-size heap copies, so ASan sees any
 * read past them. */
static void test_mutations(void)
{
	static uint8_t enc[256], again[256];
	const struct te_ctlrec cs[] = {
		ctl(TE_WIRE_KIND_METHOD, 77, 0, "restart", "{\"id\":\"x\"}", 10),
		ctl(TE_WIRE_KIND_ACK, 5, 413, NULL, "too large", 9),
		ctl(TE_WIRE_KIND_TWIN_GET, 6, 0, NULL, NULL, 0),
	};
	unsigned bad_prefix = 0, bad_flip = 0, decoded = 0;
	struct te_ctlrec d;
	size_t n, n2;

	for (unsigned i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
		te_ctlrec_encode(&cs[i], enc, sizeof(enc), &n);
		for (size_t k = 0; k < n; k++) {
			uint8_t *b = malloc(k ? k : 1);

			memcpy(b, enc, k);
			bad_prefix += te_ctlrec_decode(b, k, &d) == 0;
			free(b);
		}
		for (size_t k = 0; k < n; k++) {
			for (unsigned v = 1; v < 256; v += (v < 8 ? 1 : 37)) {
				uint8_t *b = malloc(n);

				memcpy(b, enc, n);
				b[k] ^= (uint8_t)v;
				if (te_ctlrec_decode(b, n, &d) == 0) {
					decoded++;
					if (te_ctlrec_encode(&d, again, sizeof(again), &n2) ||
					    n2 != n || memcmp(again, b, n))
						bad_flip++;
				}
				free(b);
			}
		}
	}
	TAP_EQ_INT(bad_prefix, 0, "every strict prefix rejected");
	TAP_EQ_INT(bad_flip, 0, "byte changes: %u still decode, each re-encodes identically",
		   decoded);
}

int main(void)
{
	test_roundtrip();
	test_limits();
	test_encode_invalid();
	test_decode_malformed();
	test_mutations();
	return tap_done();
}
