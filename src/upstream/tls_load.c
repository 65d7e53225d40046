/* PEM files into what the BearSSL client needs: trust anchors (DN, public
 * key, CA flag) from a bundle, the client certificate chain and its private
 * key. Everything is decoded from a copy of the file read whole; what is
 * kept goes into exactly sized blocks (two passes over the same code: the
 * first one only counts). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/fs.h"
#include "upstream/tls_int.h"

#define PEM_FILE_MAX (4u << 20) /* the Debian bundle is ~220 KiB */
#define RSA_MODULUS_MAX 512     /* bytes: BearSSL's RSA keys go up to 4096 bits */

/* ---- PEM ---------------------------------------------------------------- */

/* Called for each PEM object with its label and DER bytes. */
typedef int (*pem_fn)(void *ctx, const char *label, const unsigned char *der, size_t len);

struct pem_sink {
	unsigned char *buf;
	size_t len, cap;
	bool overflow;
};

static void pem_append(void *ctx, const void *data, size_t len)
{
	struct pem_sink *s = ctx;

	if (len > s->cap - s->len) {
		s->overflow = true;
		return;
	}
	memcpy(s->buf + s->len, data, len);
	s->len += len;
}

/* Calls fn for every object of pem[0..len); text between objects is
 * ignored. scratch holds one decoded object: len bytes are always enough
 * (base64 is longer than what it encodes). 0, fn's error, or
 * -TE_EMALFORMED for broken PEM. */
static int pem_each(const char *pem, size_t len, unsigned char *scratch, pem_fn fn, void *ctx)
{
	br_pem_decoder_context pc;
	struct pem_sink sink = { .buf = scratch, .cap = len };
	char label[128];
	bool inobj = false, final_nl = true;
	int r;

	br_pem_decoder_init(&pc);
	while (len > 0) {
		size_t k = br_pem_decoder_push(&pc, pem, len);

		pem += k;
		len -= k;
		switch (br_pem_decoder_event(&pc)) {
		case BR_PEM_BEGIN_OBJ:
			snprintf(label, sizeof(label), "%s", br_pem_decoder_name(&pc));
			sink.len = 0;
			br_pem_decoder_setdest(&pc, pem_append, &sink);
			inobj = true;
			break;
		case BR_PEM_END_OBJ:
			if (!inobj)
				break;
			inobj = false;
			if (sink.overflow)
				return -TE_EMALFORMED;
			if ((r = fn(ctx, label, scratch, sink.len)))
				return r;
			break;
		case BR_PEM_ERROR:
			return -TE_EMALFORMED;
		}
		if (len == 0 && final_nl) { /* a file whose END line has no newline */
			pem = "\n";
			len = 1;
			final_nl = false;
		}
	}
	return inobj ? -TE_EMALFORMED : 0;
}

/* The reason without the session's "certificate: " prefix: the message
 * already names the certificate. */
static const char *cert_reason(int br_err)
{
	const char *s = tls_br_reason(br_err), *pre = "certificate: ";

	if (!s)
		return "cannot be decoded";
	return strncmp(s, pre, strlen(pre)) ? s : s + strlen(pre);
}

static bool label_is_cert(const char *label)
{
	return !strcmp(label, "CERTIFICATE") || !strcmp(label, "X509 CERTIFICATE");
}

/* A PEM file read whole, and a scratch buffer for one object. */
struct pem_file {
	char *text;
	size_t len;
	unsigned char *scratch;
};

static int pem_file_read(struct pem_file *f, const char *path, char *err, size_t errlen)
{
	int r = te_read_file(path, PEM_FILE_MAX, &f->text, &f->len);

	if (r == -TE_ELIMIT)
		snprintf(err, errlen, "%s: larger than %u MiB", path, PEM_FILE_MAX >> 20);
	else if (r)
		snprintf(err, errlen, "%s: %s", path,
			 r == -EINVAL ? "not a regular file" : te_strerror(r));
	if (r)
		return r;
	if (!(f->scratch = malloc(f->len + 1))) {
		free(f->text);
		f->text = NULL;
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	return 0;
}

/* Wipes (a file may hold a private key) and frees. */
static void pem_file_free(struct pem_file *f)
{
	if (f->text) {
		explicit_bzero(f->text, f->len);
		explicit_bzero(f->scratch, f->len + 1);
	}
	free(f->text);
	free(f->scratch);
	*f = (struct pem_file){ 0 };
}

/* ---- trust anchors ---------------------------------------------------- */

struct ta_build {
	br_x509_trust_anchor *tas; /* NULL: the counting pass */
	unsigned char *pool;
	size_t n, used;            /* anchors, pool bytes */
	size_t index, skipped;     /* certificates seen, skipped (lenient) */
	bool strict;
	int br_err;                /* why certificate index failed (strict) */
	char weak[64];             /* why certificate index's key is refused */
};

/* Appends p to the pool (counts only in the first pass); where it went. */
static unsigned char *ta_put(struct ta_build *b, const void *p, size_t len)
{
	unsigned char *d = b->pool ? b->pool + b->used : NULL;

	if (d)
		memcpy(d, p, len);
	b->used += len;
	return d;
}

static void ta_dn(void *ctx, const void *buf, size_t len)
{
	ta_put(ctx, buf, len);
}

static void ta_key(struct ta_build *b, br_x509_pkey *dst, const br_x509_pkey *pk)
{
	dst->key_type = pk->key_type;
	if (pk->key_type == BR_KEYTYPE_RSA) {
		dst->key.rsa.n = ta_put(b, pk->key.rsa.n, pk->key.rsa.nlen);
		dst->key.rsa.nlen = pk->key.rsa.nlen;
		dst->key.rsa.e = ta_put(b, pk->key.rsa.e, pk->key.rsa.elen);
		dst->key.rsa.elen = pk->key.rsa.elen;
	} else {
		dst->key.ec.curve = pk->key.ec.curve;
		dst->key.ec.q = ta_put(b, pk->key.ec.q, pk->key.ec.qlen);
		dst->key.ec.qlen = pk->key.ec.qlen;
	}
}

/* An anchor's RSA key must be as strong as what we ask of the server's
 * (br_x509_minimal_set_minrsa): 2048 bits or more; else why, in b->weak.
 * EC keys need no check here: BearSSL's decoder knows only P-256, P-384
 * and P-521 and fails on any other curve. */
static bool ta_weak(struct ta_build *b, const br_x509_pkey *pk)
{
	const unsigned char *n;
	size_t len, bits;

	if (pk->key_type != BR_KEYTYPE_RSA)
		return false;
	n = pk->key.rsa.n;
	len = pk->key.rsa.nlen;
	while (len && *n == 0)
		n++, len--;
	bits = len * 8;
	for (unsigned char top = len ? n[0] : 0x80; !(top & 0x80); top <<= 1)
		bits--;
	if (bits >= 2048)
		return false;
	snprintf(b->weak, sizeof(b->weak), "RSA key of %zu bits (at least 2048)", bits);
	return true;
}

static int ta_add(void *ctx, const char *label, const unsigned char *der, size_t len)
{
	struct ta_build *b = ctx;
	br_x509_decoder_context dc;
	br_x509_trust_anchor ta = { .flags = 0 };
	const br_x509_pkey *pk;
	size_t start = b->used;

	if (!label_is_cert(label))
		return 0;
	b->index++;
	br_x509_decoder_init(&dc, ta_dn, b);
	br_x509_decoder_push(&dc, der, len);
	if (!(pk = br_x509_decoder_get_pkey(&dc))) {
		b->used = start;
		b->br_err = br_x509_decoder_last_error(&dc);
		if (b->strict)
			return -TE_EMALFORMED;
		b->skipped++;
		return 0;
	}
	if (ta_weak(b, pk)) {
		b->used = start;
		if (b->strict)
			return -TE_EINVALID;
		b->skipped++;
		return 0;
	}
	ta.dn.data = b->pool ? b->pool + start : NULL;
	ta.dn.len = b->used - start;
	if (br_x509_decoder_isCA(&dc))
		ta.flags = BR_X509_TA_CA;
	ta_key(b, &ta.pkey, pk);
	if (b->tas)
		b->tas[b->n] = ta;
	b->n++;
	return 0;
}

/* path NULL: the system bundle; the first one that exists. */
static int ta_file(const char **path, char *err, size_t errlen)
{
	static const char *const sys[] = { TE_TLS_SYSTEM_CA1, TE_TLS_SYSTEM_CA2 };

	if (*path)
		return 0;
	for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++) {
		if (access(sys[i], F_OK) == 0) {
			*path = sys[i];
			return 0;
		}
	}
	snprintf(err, errlen, "no system CA bundle (%s, %s): give a CA file",
		 TE_TLS_SYSTEM_CA1, TE_TLS_SYSTEM_CA2);
	return -ENOENT;
}

int tls_load_anchors(struct te_tls *t, const char *path, char *err, size_t errlen)
{
	struct ta_build b = { .strict = path != NULL };
	struct pem_file f = { 0 };
	void *block;
	int r;

	if ((r = ta_file(&path, err, errlen)) || (r = pem_file_read(&f, path, err, errlen)))
		return r;
	r = pem_each(f.text, f.len, f.scratch, ta_add, &b);
	if (r == 0 && b.n == 0) {
		r = -TE_EINVALID;
		snprintf(err, errlen, b.skipped ? "%s: no usable certificate" :
			 "%s: no certificate found", path);
	} else if (r && b.weak[0]) {
		snprintf(err, errlen, "%s: certificate %zu: %s", path, b.index, b.weak);
	} else if (r && b.br_err) {
		snprintf(err, errlen, "%s: certificate %zu: %s (BearSSL code %d)", path,
			 b.index, cert_reason(b.br_err), b.br_err);
	} else if (r) {
		snprintf(err, errlen, "%s: invalid PEM", path);
	}
	if (r)
		goto out;
	block = malloc(b.n * sizeof(*b.tas) + b.used);
	if (!block) {
		snprintf(err, errlen, "%s: out of memory", path);
		r = -ENOMEM;
		goto out;
	}
	b = (struct ta_build){ .tas = block, .pool = (unsigned char *)block + b.n * sizeof(*b.tas),
			       .strict = b.strict };
	pem_each(f.text, f.len, f.scratch, ta_add, &b); /* same input: same result */
	t->anchors = block;
	t->n_anchors = b.n;
out:
	pem_file_free(&f);
	return r;
}

/* ---- client certificate and key ---------------------------------------- */

struct chain_build {
	br_x509_certificate *certs; /* NULL: the counting pass */
	unsigned char *pool;
	size_t n, used;
};

static int chain_add(void *ctx, const char *label, const unsigned char *der, size_t len)
{
	struct chain_build *b = ctx;

	if (!label_is_cert(label))
		return 0;
	if (b->certs) {
		memcpy(b->pool + b->used, der, len);
		b->certs[b->n] = (br_x509_certificate){ b->pool + b->used, len };
	}
	b->n++;
	b->used += len;
	return 0;
}

static int load_chain(struct te_tls *t, const char *path, char *err, size_t errlen)
{
	struct chain_build b = { 0 };
	struct pem_file f = { 0 };
	void *block;
	int r;

	if ((r = pem_file_read(&f, path, err, errlen)))
		return r;
	r = pem_each(f.text, f.len, f.scratch, chain_add, &b);
	if (r || b.n == 0) {
		snprintf(err, errlen, r ? "%s: invalid PEM" : "%s: no certificate found", path);
		r = r ? r : -TE_EINVALID;
		goto out;
	}
	if (!(block = malloc(b.n * sizeof(*b.certs) + b.used))) {
		snprintf(err, errlen, "%s: out of memory", path);
		r = -ENOMEM;
		goto out;
	}
	b = (struct chain_build){ .certs = block,
				  .pool = (unsigned char *)block + b.n * sizeof(*b.certs) };
	pem_each(f.text, f.len, f.scratch, chain_add, &b);
	t->chain = block;
	t->chain_len = b.n;
out:
	pem_file_free(&f);
	return r;
}

struct key_build {
	br_skey_decoder_context *dc;
	bool found, encrypted;
	int br_err;
};

static int key_add(void *ctx, const char *label, const unsigned char *der, size_t len)
{
	struct key_build *b = ctx;

	if (!strcmp(label, "ENCRYPTED PRIVATE KEY")) {
		b->encrypted = true;
		return -TE_EINVALID;
	}
	if (b->found || (strcmp(label, "PRIVATE KEY") && strcmp(label, "RSA PRIVATE KEY") &&
			 strcmp(label, "EC PRIVATE KEY")))
		return 0;
	br_skey_decoder_init(b->dc);
	br_skey_decoder_push(b->dc, der, len);
	if ((b->br_err = br_skey_decoder_last_error(b->dc)))
		return -TE_EMALFORMED;
	b->found = true;
	return 0;
}

static int load_key(struct te_tls *t, const char *path, char *err, size_t errlen)
{
	struct key_build b = { .dc = &t->key };
	struct pem_file f = { 0 };
	int r;

	if ((r = pem_file_read(&f, path, err, errlen)))
		return r;
	r = pem_each(f.text, f.len, f.scratch, key_add, &b);
	if (b.encrypted)
		snprintf(err, errlen, "%s: encrypted keys are not supported", path);
	else if (b.br_err)
		snprintf(err, errlen, "%s: %s", path, b.br_err == BR_ERR_X509_UNSUPPORTED ?
			 "unsupported key type" : "invalid private key");
	else if (r)
		snprintf(err, errlen, "%s: invalid PEM", path);
	else if (!b.found)
		snprintf(err, errlen, "%s: no private key found", path);
	if (!r && !b.found)
		r = -TE_EINVALID;
	if (!r)
		t->key_type = br_skey_decoder_key_type(&t->key);
	pem_file_free(&f);
	return r;
}

/* Big-endian unsigned integers equal, leading zeros aside. */
static bool uint_eq(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
	for (; alen && !*a; a++, alen--)
		;
	for (; blen && !*b; b++, blen--)
		;
	return alen == blen && !memcmp(a, b, alen);
}

/* The private key belongs to the leaf's public key. */
static bool key_matches(const br_skey_decoder_context *key, const br_x509_pkey *pk)
{
	unsigned char buf[BR_EC_KBUF_PUB_MAX_SIZE > RSA_MODULUS_MAX ?
			  BR_EC_KBUF_PUB_MAX_SIZE : RSA_MODULUS_MAX];
	int type = br_skey_decoder_key_type(key);
	size_t len;

	if (pk->key_type != type)
		return false;
	if (type == BR_KEYTYPE_RSA) {
		br_rsa_compute_modulus modulus = br_rsa_compute_modulus_get_default();
		const br_rsa_private_key *sk = br_skey_decoder_get_rsa(key);

		len = modulus(NULL, sk);
		if (len == 0 || len > sizeof(buf) || modulus(buf, sk) != len)
			return false;
		return uint_eq(buf, len, pk->key.rsa.n, pk->key.rsa.nlen);
	}
	br_ec_public_key pub;
	const br_ec_private_key *sk = br_skey_decoder_get_ec(key);

	len = br_ec_compute_pub(br_ec_get_default(), &pub, buf, sk);
	return len && sk->curve == pk->key.ec.curve && len == pk->key.ec.qlen &&
	       !memcmp(buf, pk->key.ec.q, len);
}

static int check_pair(struct te_tls *t, const char *cert_file, const char *key_file,
		      char *err, size_t errlen)
{
	br_x509_decoder_context dc;
	const br_x509_pkey *pk;

	br_x509_decoder_init(&dc, NULL, NULL);
	br_x509_decoder_push(&dc, t->chain[0].data, t->chain[0].data_len);
	if (!(pk = br_x509_decoder_get_pkey(&dc))) {
		snprintf(err, errlen, "%s: certificate 1: %s", cert_file,
			 cert_reason(br_x509_decoder_last_error(&dc)));
		return -TE_EMALFORMED;
	}
	if (!key_matches(&t->key, pk)) {
		snprintf(err, errlen, "%s: does not match %s", key_file, cert_file);
		return -TE_EINVALID;
	}
	return 0;
}

int tls_load_client(struct te_tls *t, const char *cert_file, const char *key_file,
		    char *err, size_t errlen)
{
	int r;

	if (!cert_file != !key_file) {
		snprintf(err, errlen, "a client certificate needs both a certificate and a key file");
		return -EINVAL;
	}
	if (!cert_file)
		return 0;
	if ((r = load_chain(t, cert_file, err, errlen)) || (r = load_key(t, key_file, err, errlen)))
		return r;
	return check_pair(t, cert_file, key_file, err, errlen);
}
