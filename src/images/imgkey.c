/* EC P-256 public keys (DER SubjectPublicKeyInfo in PEM) and ECDSA
 * signature checks over an image's sha256, with BearSSL (imgcodec.h).
 * BearSSL decodes no bare public keys, so the small DER is parsed here,
 * every length checked against what is left. */
#include <bearssl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/fs.h"
#include "imgcodec.h"

struct der {
	const uint8_t *p;
	size_t n;
};

/* Take one TLV of tag from d into v. DER lengths: short form or one/two
 * length bytes, minimal; nothing indefinite. */
static int der_take(struct der *d, uint8_t tag, struct der *v)
{
	size_t len, hdr = 2;

	if (d->n < 2 || d->p[0] != tag)
		return -TE_EMALFORMED;
	len = d->p[1];
	if (len == 0x81) {
		if (d->n < 3 || d->p[2] < 0x80)
			return -TE_EMALFORMED;
		len = d->p[2], hdr = 3;
	} else if (len == 0x82) {
		if (d->n < 4 || d->p[2] == 0)
			return -TE_EMALFORMED;
		len = (size_t)d->p[2] << 8 | d->p[3], hdr = 4;
		if (len < 0x100)
			return -TE_EMALFORMED;
	} else if (len >= 0x80) {
		return -TE_EMALFORMED;
	}
	if (len > d->n - hdr)
		return -TE_EMALFORMED;
	v->p = d->p + hdr;
	v->n = len;
	d->p += hdr + len;
	d->n -= hdr + len;
	return 0;
}

static bool der_is(const struct der *v, const uint8_t *want, size_t n)
{
	return v->n == n && memcmp(v->p, want, n) == 0;
}

int te_imgkey_from_der(const uint8_t *der, size_t n, struct te_imgkey *k)
{
	static const uint8_t ec_pub[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
	static const uint8_t p256[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
	struct der all = { der, n }, spki, alg, oid, curve, bits;

	if (der_take(&all, 0x30, &spki) || all.n != 0 ||
	    der_take(&spki, 0x30, &alg) || der_take(&alg, 0x06, &oid))
		return -TE_EMALFORMED;
	if (!der_is(&oid, ec_pub, sizeof(ec_pub)))
		return -TE_EINVALID; /* RSA, Ed25519, ... */
	if (der_take(&alg, 0x06, &curve) || alg.n != 0)
		return -TE_EMALFORMED;
	if (!der_is(&curve, p256, sizeof(p256)))
		return -TE_EINVALID;
	if (der_take(&spki, 0x03, &bits) || spki.n != 0)
		return -TE_EMALFORMED;
	if (bits.n != 66 || bits.p[0] != 0)
		return bits.n == 34 ? -TE_EINVALID : -TE_EMALFORMED; /* 34: compressed */
	if (bits.p[1] != 0x04)
		return -TE_EINVALID;
	memcpy(k->q, bits.p + 1, 65);
	return 0;
}

struct pem_key {
	uint8_t *der;
	size_t len, cap;
	bool overflow;
};

static void pem_append(void *ctx, const void *data, size_t len)
{
	struct pem_key *s = ctx;

	if (len > s->cap - s->len) {
		s->overflow = true;
		return;
	}
	memcpy(s->der + s->len, data, len);
	s->len += len;
}

/* The first "PUBLIC KEY" object of text into s. 0, -ENOENT (none),
 * -TE_EMALFORMED. */
static int pem_public_key(const char *text, size_t len, struct pem_key *s)
{
	br_pem_decoder_context pc;
	bool want = false, final_nl = true;

	br_pem_decoder_init(&pc);
	while (len > 0) {
		size_t k = br_pem_decoder_push(&pc, text, len);

		text += k, len -= k;
		switch (br_pem_decoder_event(&pc)) {
		case BR_PEM_BEGIN_OBJ:
			want = !strcmp(br_pem_decoder_name(&pc), "PUBLIC KEY");
			s->len = 0;
			br_pem_decoder_setdest(&pc, want ? pem_append : NULL, s);
			break;
		case BR_PEM_END_OBJ:
			if (want)
				return s->overflow ? -TE_EMALFORMED : 0;
			break;
		case BR_PEM_ERROR:
			return -TE_EMALFORMED;
		}
		if (len == 0 && final_nl) {
			text = "\n", len = 1, final_nl = false;
		}
	}
	return -ENOENT;
}

int te_imgkey_load(const char *path, struct te_imgkey *k, char *err, size_t cap)
{
	uint8_t der[512];
	struct pem_key s = { .der = der, .cap = sizeof(der) };
	char *text = NULL;
	size_t len;
	int r = te_read_file(path, 65536, &text, &len);

	if (r < 0) {
		snprintf(err, cap, "%s: %s", path, te_strerror(r));
		return r;
	}
	r = pem_public_key(text, len, &s);
	free(text);
	if (r == -ENOENT) {
		snprintf(err, cap, "%s: no PEM \"PUBLIC KEY\" found", path);
		return -TE_EINVALID;
	}
	if (r == 0)
		r = te_imgkey_from_der(der, s.len, k);
	if (r == -TE_EINVALID)
		snprintf(err, cap, "%s: not an EC P-256 public key (uncompressed)", path);
	else if (r < 0)
		snprintf(err, cap, "%s: malformed public key", path);
	return r;
}

bool te_imgsig_verify(const uint8_t hash[32], const uint8_t *sig, size_t siglen,
		      const struct te_imgkey *keys, unsigned n)
{
	const br_ec_impl *ec = br_ec_get_default();

	for (unsigned i = 0; i < n; i++) {
		br_ec_public_key pk = { BR_EC_secp256r1, (unsigned char *)keys[i].q, 65 };
		uint32_t ok;

		if (siglen == 64)
			ok = br_ecdsa_i31_vrfy_raw(ec, hash, 32, &pk, sig, siglen);
		else
			ok = br_ecdsa_i31_vrfy_asn1(ec, hash, 32, &pk, sig, siglen);
		if (ok)
			return true;
	}
	return false;
}

void te_sha256_hex(const uint8_t hash[32], char hex[TE_SHA256_HEX + 1])
{
	for (unsigned i = 0; i < 32; i++) {
		hex[2 * i] = "0123456789abcdef"[hash[i] >> 4];
		hex[2 * i + 1] = "0123456789abcdef"[hash[i] & 15];
	}
	hex[TE_SHA256_HEX] = '\0';
}
