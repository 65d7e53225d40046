/* Module twins in the daemon (twin.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/json.h"
#include "core/json_patch.h"
#include "tinyedge/wire.h"
#include "twin.h"

/* One past the largest document, for the merge's output buffer. */
#define DOC_CAP (TE_WIRE_TWIN_MAX + 1)

/* Is text[0..n) a JSON object with no "$version" at its root? 0, or -errno
 * with err set. */
static int patch_object(const char *text, size_t n, bool version_ok, char *err, size_t errlen)
{
	struct te_diag diag = { 0 };
	struct te_json_doc doc;
	int r = te_json_parse(&doc, "patch", text, n, NULL, &diag);

	if (r < 0) {
		snprintf(err, errlen, "not valid JSON");
		return r;
	}
	if (doc.tok[0].type != TE_JSON_OBJECT) {
		snprintf(err, errlen, "a patch must be a JSON object");
		r = -TE_EMALFORMED;
	} else if (!version_ok && te_json_get(&doc, 0, "$version") >= 0) {
		snprintf(err, errlen, "$version is set by the daemon, not in a patch");
		r = -TE_EINVALID;
	}
	te_json_free(&doc);
	return r;
}

/* base, then patch, then {"$version":version}, into a new malloc'd doc. */
static int build(const char *base, size_t blen, const char *patch, size_t plen,
		 int64_t version, char **out, size_t *outlen, char *err, size_t errlen)
{
	char *a = malloc(DOC_CAP), *b = malloc(DOC_CAP), ver[40];
	size_t alen = 0, blen2 = 0;
	int r = a && b ? 0 : -ENOMEM;

	if (!r)
		r = te_json_merge_patch(base, blen, patch, plen, a, DOC_CAP, &alen, err, errlen);
	if (!r) {
		snprintf(ver, sizeof(ver), "{\"$version\":%lld}", (long long)version);
		r = te_json_merge_patch(a, alen, ver, strlen(ver), b, DOC_CAP, &blen2, err, errlen);
	}
	free(a);
	if (r < 0) {
		free(b);
		return r;
	}
	*out = b;
	*outlen = blen2;
	return 0;
}

int te_twin_init(struct te_twin *t, const char *desired, size_t n)
{
	char err[200];
	int r;

	memset(t, 0, sizeof(*t));
	t->dver = t->rver = 1;
	if (!desired) {
		desired = "{}";
		n = 2;
	}
	r = patch_object(desired, n, false, err, sizeof(err));
	if (!r)
		r = build("{}", 2, desired, n, 1, &t->desired, &t->dlen, err, sizeof(err));
	if (!r)
		r = build("{}", 2, "{}", 2, 1, &t->reported, &t->rlen, err, sizeof(err));
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
	struct te_twin nt;
	char *same;
	size_t slen;
	char err[200];
	int r = te_twin_init(&nt, desired, n);

	if (r < 0)
		return r;
	/* The new properties at the current version: equal means unchanged. */
	r = build(nt.desired, nt.dlen, "{}", 2, t->dver, &same, &slen, err, sizeof(err));
	if (r < 0) {
		te_twin_free(&nt);
		return r;
	}
	if (slen == t->dlen && !memcmp(same, t->desired, slen)) {
		free(same);
		te_twin_free(&nt);
		return 0;
	}
	free(same);
	r = build(nt.desired, nt.dlen, "{}", 2, t->dver + 1, &same, &slen, err, sizeof(err));
	te_twin_free(&nt);
	if (r < 0)
		return r;
	free(t->desired);
	t->desired = same;
	t->dlen = slen;
	t->dver++;
	return 1;
}

unsigned te_twin_report(struct te_twin *t, const void *patch, size_t n, char *err,
			size_t errlen)
{
	char *doc;
	size_t len;
	int r = patch_object(patch, n, false, err, errlen);

	if (!r)
		r = build(t->reported, t->rlen, patch, n, t->rver + 1, &doc, &len, err, errlen);
	if (r == -TE_ENOSPACE || r == -TE_ELIMIT) {
		snprintf(err, errlen, "the reported properties would be over %u bytes",
			 TE_WIRE_TWIN_MAX);
		return TE_WIRE_STATUS_TOO_LARGE;
	}
	if (r < 0)
		return r == -ENOMEM ? TE_WIRE_STATUS_ERROR : TE_WIRE_STATUS_BAD_REQUEST;
	free(t->reported);
	t->reported = doc;
	t->rlen = len;
	t->rver++;
	return TE_WIRE_STATUS_OK;
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
