/* Module twins in the daemon (twin.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/json.h"
#include "core/json_patch.h"
#include "twin.h"

/* One past the largest document, for the merge's output buffer. */
#define DOC_CAP (TE_WIRE_TWIN_MAX + 1)

#define ST_OK TE_WIRE_STATUS_OK
#define ST_NO_CHANGE 204u
#define ST_BAD TE_WIRE_STATUS_BAD_REQUEST
#define ST_TOO_LARGE TE_WIRE_STATUS_TOO_LARGE
#define ST_ERROR TE_WIRE_STATUS_ERROR

uint64_t te_twin_hash(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

/* ---- checking patches ------------------------------------------------------- */

static const struct te_json_limits twin_limits = {
	.max_bytes = TE_WIRE_TWIN_MAX,
	.max_tokens = TE_WIRE_TWIN_MAX,  /* never reached: a token takes a byte */
	.max_depth = TE_JSON_PATCH_DEPTH,
};

struct errbuf {
	char *buf;
	size_t cap;
};

static void err_emit(struct te_diag *d, const char *file, unsigned line, unsigned col,
		     const char *msg)
{
	const struct errbuf *e = d->ctx;

	if (e->cap)
		te_diag_format(e->buf, e->cap, file, line, col, msg);
}

static void say(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Is text[0..n) a JSON object within the twin limits, without a root
 * "$version" unless version_ok? The names are checked by the merge. 0, or
 * a status with err set. */
static unsigned patch_check(const char *text, size_t n, bool version_ok, char *err,
			    size_t errlen)
{
	struct errbuf eb = { err, errlen };
	struct te_diag diag = { .emit = err_emit, .ctx = &eb };
	struct te_json_doc doc;
	unsigned st = 0;
	int r;

	if (n > TE_WIRE_TWIN_MAX) {
		say(err, errlen, "the patch is %zu bytes, over %u", n, TE_WIRE_TWIN_MAX);
		return ST_TOO_LARGE;
	}
	r = te_json_parse(&doc, "patch", text, n, &twin_limits, &diag);
	if (r < 0)
		return r == -ENOMEM ? ST_ERROR : ST_BAD;
	if (doc.tok[0].type != TE_JSON_OBJECT) {
		say(err, errlen, "a patch must be a JSON object");
		st = ST_BAD;
	} else if (!version_ok && te_json_get(&doc, 0, "$version") >= 0) {
		say(err, errlen, "$version is set by the daemon, not in a patch");
		st = ST_BAD;
	}
	te_json_free(&doc);
	return st;
}

/* A merge error as a status; what names the document for the message. */
static unsigned merge_status(int r, const char *what, char *err, size_t errlen)
{
	if (r == -TE_ENOSPACE) {
		say(err, errlen, "the %s properties would be over %u bytes", what,
		    TE_WIRE_TWIN_MAX);
		return ST_TOO_LARGE;
	}
	return r == -ENOMEM ? ST_ERROR : ST_BAD;
}

/* ---- building documents ----------------------------------------------------- */

/* base merged with patch into a new malloc'd document. */
static int merged(const char *base, size_t blen, const char *patch, size_t plen,
		  char **out, size_t *outlen, char *err, size_t errlen)
{
	char *b = malloc(DOC_CAP);
	int r;

	if (!b)
		return -ENOMEM;
	r = te_json_merge_patch(base, blen, patch, plen, b, DOC_CAP, outlen, err, errlen);
	if (r < 0) {
		free(b);
		return r;
	}
	*out = b;
	return 0;
}

/* doc with "$version": version as its last member, into a new malloc'd
 * document. Keeping it last makes two documents with the same members in
 * the same order byte-equal, whatever their versions' history. */
static int versioned(const char *doc, size_t n, int64_t version, char **out, size_t *outlen,
		     char *err, size_t errlen)
{
	static const char strip[] = "{\"$version\":null}";
	char ver[40], *a;
	size_t alen;
	int r = merged(doc, n, strip, sizeof(strip) - 1, &a, &alen, err, errlen);

	if (r < 0)
		return r;
	snprintf(ver, sizeof(ver), "{\"$version\":%lld}", (long long)version);
	r = merged(a, alen, ver, strlen(ver), out, outlen, err, errlen);
	free(a);
	return r;
}

/* base, then patch, then {"$version":version}. */
static int build(const char *base, size_t blen, const char *patch, size_t plen,
		 int64_t version, char **out, size_t *outlen, char *err, size_t errlen)
{
	char *a;
	size_t alen;
	int r = merged(base, blen, patch, plen, &a, &alen, err, errlen);

	if (r < 0)
		return r;
	r = versioned(a, alen, version, out, outlen, err, errlen);
	free(a);
	return r;
}

static bool same(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && !memcmp(a, b, alen);
}

/* The deployment's desired properties, checked and compact, with their
 * hash. 0 or -errno as te_twin_init. */
static int deployment_desired(const char *desired, size_t n, char **out, size_t *outlen,
			      uint64_t *hash)
{
	char err[200];
	unsigned st;
	int r;

	if (!desired) {
		desired = "{}";
		n = 2;
	}
	st = patch_check(desired, n, false, err, sizeof(err));
	if (st)
		return st == ST_TOO_LARGE ? -TE_ELIMIT : st == ST_ERROR ? -ENOMEM : -TE_EMALFORMED;
	r = merged("{}", 2, desired, n, out, outlen, err, sizeof(err));
	if (r == -TE_ENOSPACE)
		return -TE_ELIMIT;
	if (r == 0)
		*hash = te_twin_hash(*out, *outlen);
	return r;
}

/* ---- the twin ----------------------------------------------------------------- */

int te_twin_init(struct te_twin *t, const char *desired, size_t n)
{
	char err[200], *d = NULL;
	size_t dl;
	int r;

	memset(t, 0, sizeof(*t));
	t->dver = t->rver = 1;
	r = deployment_desired(desired, n, &d, &dl, &t->mhash);
	if (!r)
		r = versioned(d, dl, 1, &t->desired, &t->dlen, err, sizeof(err));
	if (!r)
		r = versioned("{}", 2, 1, &t->reported, &t->rlen, err, sizeof(err));
	free(d);
	if (r < 0) {
		te_twin_free(t);
		return r == -TE_ENOSPACE ? -TE_ELIMIT : r;
	}
	return 0;
}

void te_twin_free(struct te_twin *t)
{
	free(t->desired);
	free(t->reported);
	memset(t, 0, sizeof(*t));
}

int te_twin_set_desired(struct te_twin *t, const char *desired, size_t n)
{
	char err[200], *d, *nd = NULL;
	size_t dl, nl;
	uint64_t h;
	int r = deployment_desired(desired, n, &d, &dl, &h);

	if (r < 0)
		return r;
	if (h == t->mhash) {
		free(d);
		return 0;
	}
	/* The new properties at the current version: equal means unchanged. */
	r = versioned(d, dl, t->dver, &nd, &nl, err, sizeof(err));
	if (r == 0 && same(nd, nl, t->desired, t->dlen)) {
		t->mhash = h;
		free(nd);
		free(d);
		return 0;
	}
	free(nd);
	if (r == 0)
		r = versioned(d, dl, t->dver + 1, &nd, &nl, err, sizeof(err));
	free(d);
	if (r < 0)
		return r == -TE_ENOSPACE ? -TE_ELIMIT : r;
	free(t->desired);
	t->desired = nd;
	t->dlen = nl;
	t->dver++;
	t->mhash = h;
	return 1;
}

/* The DESIRED record for an applied patch: the patch with "$version", or
 * nothing (*outlen 0: send the whole twin) when it does not fit. */
static void change_record(const char *patch, size_t n, int64_t version, char *out,
			  size_t cap, size_t *outlen)
{
	char *rec;
	size_t len;

	*outlen = 0;
	if (!out || versioned(patch, n, version, &rec, &len, NULL, 0) < 0)
		return;
	if (len < cap) {
		memcpy(out, rec, len);
		*outlen = len;
	}
	free(rec);
}

/* 204 if doc (at version v) is t's desired properties at version v — a
 * local change that changes nothing is no new version — else 0, or an
 * error status. */
static unsigned unchanged(const struct te_twin *t, const char *doc, size_t len, int64_t v,
			  char *err, size_t errlen)
{
	char *old;
	size_t olen;
	bool eq;
	int r = versioned(t->desired, t->dlen, v, &old, &olen, err, errlen);

	if (r < 0)
		return merge_status(r, "desired", err, errlen);
	eq = same(old, olen, doc, len);
	free(old);
	if (!eq)
		return 0;
	say(err, errlen, "no change");
	return ST_NO_CHANGE;
}

unsigned te_twin_patch_desired(struct te_twin *t, const char *json, size_t n, bool cloud,
			       int64_t version, bool full, char *out, size_t cap,
			       size_t *outlen, char *err, size_t errlen)
{
	int64_t nv = t->dver + 1;
	char *doc;
	size_t len;
	unsigned st;
	int r;

	*outlen = 0;
	say(err, errlen, "%s", "");
	if (cloud && version < 1) {
		say(err, errlen, "the cloud's $version %lld is not positive", (long long)version);
		return ST_BAD;
	}
	if (cloud && version <= t->cloud_ver) {
		say(err, errlen, "stale: version %lld, the twin has %lld", (long long)version,
		    (long long)t->cloud_ver);
		return ST_NO_CHANGE;
	}
	if ((st = patch_check(json, n, cloud, err, errlen)))
		return st;
	if (cloud && version > nv)
		nv = version;
	r = build(full ? "{}" : t->desired, full ? 2 : t->dlen, json, n, nv, &doc, &len, err,
		  errlen);
	if (r < 0)
		return merge_status(r, "desired", err, errlen);
	if (!cloud && (st = unchanged(t, doc, len, nv, err, errlen))) {
		free(doc);
		return st;
	}
	if (!full)
		change_record(json, n, nv, out, cap, outlen);
	free(t->desired);
	t->desired = doc;
	t->dlen = len;
	t->dver = nv;
	if (cloud)
		t->cloud_ver = version;
	return ST_OK;
}

unsigned te_twin_report(struct te_twin *t, const void *patch, size_t n, char *err,
			size_t errlen)
{
	char *doc;
	size_t len;
	unsigned st = patch_check(patch, n, false, err, errlen);
	int r;

	if (st)
		return st;
	r = build(t->reported, t->rlen, patch, n, t->rver + 1, &doc, &len, err, errlen);
	if (r < 0)
		return merge_status(r, "reported", err, errlen);
	free(t->reported);
	t->reported = doc;
	t->rlen = len;
	t->rver++;
	return ST_OK;
}

int te_twin_full(const struct te_twin *t, char *buf, size_t cap, size_t *len)
{
	int n = snprintf(buf, cap, "{\"desired\":%.*s,\"reported\":%.*s}", (int)t->dlen,
			 t->desired, (int)t->rlen, t->reported);

	if (n < 0 || (size_t)n >= cap)
		return -TE_ENOSPACE;
	*len = (size_t)n;
	return 0;
}

/* ---- the stored form ------------------------------------------------------------
 *
 * Little-endian:
 *    0  4  "TWIN"
 *    4  4  format (1)
 *    8  8  dver          16  8  rver
 *   24  8  cloud_ver     32  8  mhash
 *   40  4  dlen          44  4  rlen
 *   48     desired (dlen bytes), reported (rlen bytes)
 *  end-8 8  te_twin_hash of everything before it */

#define BLOB_MAGIC "TWIN"
#define BLOB_FORMAT 1u

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

int te_twin_encode(const struct te_twin *t, void *buf, size_t cap, size_t *len)
{
	uint8_t *b = buf;
	size_t n = TE_TWIN_BLOB_HDR + t->dlen + t->rlen + 8;

	if (!t->desired || !t->reported)
		return -EINVAL;
	if (n > cap)
		return -TE_ENOSPACE;
	memcpy(b, BLOB_MAGIC, 4);
	put_le(b + 4, BLOB_FORMAT, 4);
	put_le(b + 8, (uint64_t)t->dver, 8);
	put_le(b + 16, (uint64_t)t->rver, 8);
	put_le(b + 24, (uint64_t)t->cloud_ver, 8);
	put_le(b + 32, t->mhash, 8);
	put_le(b + 40, t->dlen, 4);
	put_le(b + 44, t->rlen, 4);
	memcpy(b + TE_TWIN_BLOB_HDR, t->desired, t->dlen);
	memcpy(b + TE_TWIN_BLOB_HDR + t->dlen, t->reported, t->rlen);
	put_le(b + n - 8, te_twin_hash(b, n - 8), 8);
	*len = n;
	return 0;
}

/* doc[0..n) is a twin document (an object within the limits) whose
 * "$version" is version. */
static bool doc_ok(const char *text, size_t n, int64_t version)
{
	struct te_diag diag = { 0 };
	struct te_json_doc doc;
	int64_t v = 0;
	int t;
	bool ok;

	if (te_json_parse(&doc, "twin", text, n, &twin_limits, &diag) < 0)
		return false;
	t = te_json_get(&doc, 0, "$version");
	ok = doc.tok[0].type == TE_JSON_OBJECT && t >= 0 &&
	     te_json_int(&doc, (unsigned)t, &v) == 0 && v == version;
	te_json_free(&doc);
	return ok;
}

int te_twin_decode(struct te_twin *t, const void *buf, size_t n)
{
	const uint8_t *b = buf;
	uint64_t dl, rl;

	memset(t, 0, sizeof(*t));
	if (n < TE_TWIN_BLOB_HDR + 8 || memcmp(b, BLOB_MAGIC, 4) ||
	    get_le(b + 4, 4) != BLOB_FORMAT || get_le(b + n - 8, 8) != te_twin_hash(b, n - 8))
		return -TE_EMALFORMED;
	t->dver = (int64_t)get_le(b + 8, 8);
	t->rver = (int64_t)get_le(b + 16, 8);
	t->cloud_ver = (int64_t)get_le(b + 24, 8);
	t->mhash = get_le(b + 32, 8);
	dl = get_le(b + 40, 4);
	rl = get_le(b + 44, 4);
	if (dl > TE_WIRE_TWIN_MAX || rl > TE_WIRE_TWIN_MAX ||
	    TE_TWIN_BLOB_HDR + dl + rl + 8 != n || t->dver < 1 || t->rver < 1 ||
	    t->cloud_ver < 0 || !doc_ok((const char *)b + TE_TWIN_BLOB_HDR, dl, t->dver) ||
	    !doc_ok((const char *)b + TE_TWIN_BLOB_HDR + dl, rl, t->rver)) {
		memset(t, 0, sizeof(*t));
		return -TE_EMALFORMED;
	}
	t->desired = malloc(dl + 1);
	t->reported = malloc(rl + 1);
	if (!t->desired || !t->reported) {
		te_twin_free(t);
		return -ENOMEM;
	}
	memcpy(t->desired, b + TE_TWIN_BLOB_HDR, dl);
	memcpy(t->reported, b + TE_TWIN_BLOB_HDR + dl, rl);
	t->dlen = dl;
	t->rlen = rl;
	return 0;
}
