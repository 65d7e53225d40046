/* Fuzz target for module twins (hub/twin.h), called from
 * test/fuzz/targets.c as mode "twin"; corpus in test/fuzz/corpus/twin/.
 *
 * The input is used two ways. As a stored twin (te_twin_decode, what the
 * store hands back — a damaged file is hostile input): when it decodes,
 * encoding it again gives the same bytes. As a change: a local desired
 * patch, a cloud patch, a full cloud document and a reported patch, each
 * applied to a twin: an applied change keeps every document within the
 * limits, the versions going up and the twin's stored form decodable; a
 * refused one leaves the twin as it was. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/json_patch.h"
#include "fuzz.h"
#include "hub/twin.h"

static uint8_t blob[TE_TWIN_BLOB_MAX], blob2[TE_TWIN_BLOB_MAX];

/* The twin's documents are objects within the limits, with its versions. */
static void check(const struct te_twin *t)
{
	static const struct te_json_limits lim = { TE_WIRE_TWIN_MAX, TE_WIRE_TWIN_MAX,
						   TE_JSON_PATCH_DEPTH };
	struct te_diag diag = { 0 };
	struct te_json_doc d;
	struct te_twin u;
	size_t len;

	if (te_json_parse(&d, "desired", t->desired, t->dlen, &lim, &diag) ||
	    d.tok[0].type != TE_JSON_OBJECT)
		abort();
	te_json_free(&d);
	if (te_twin_encode(t, blob, sizeof(blob), &len) || te_twin_decode(&u, blob, len))
		abort();  /* an applied change that cannot be stored and read back */
	if (u.dver != t->dver || u.rver != t->rver || u.cloud_ver != t->cloud_ver)
		abort();
	te_twin_free(&u);
}

static void decode(const uint8_t *data, size_t n)
{
	struct te_twin t;
	size_t len;

	if (te_twin_decode(&t, data, n))
		return;
	if (te_twin_encode(&t, blob2, sizeof(blob2), &len) || len != n || memcmp(blob2, data, n))
		abort();  /* one encoding per twin */
	te_twin_free(&t);
}

/* One change; the twin moves only on 200 and only upwards. */
static void change(struct te_twin *t, const char *json, size_t n, int how)
{
	static char rec[TE_WIRE_TWIN_MAX + 1], err[300];
	int64_t dver = t->dver, rver = t->rver;
	size_t dlen = t->dlen, len;
	unsigned st;

	if (how == 3)
		st = te_twin_report(t, json, n, err, sizeof(err));
	else
		st = te_twin_patch_desired(t, json, n, how > 0, dver + 3, how == 2, rec,
					   sizeof(rec), &len, err, sizeof(err));
	if (st != 200 && st != 204 && st != 400 && st != 413)
		abort();
	if (st != 200) {
		if (t->dver != dver || t->rver != rver || t->dlen != dlen || !err[0])
			abort();  /* refused, yet changed, or without a reason */
		return;
	}
	if (how == 3 ? t->rver != rver + 1 : t->dver <= dver)
		abort();
	if (how < 3 && how != 2 && len > TE_WIRE_TWIN_MAX)
		abort();
	check(t);
}

void te_fuzz_twin(const uint8_t *data, size_t n)
{
	struct te_twin t;

	decode(data, n);
	if (te_twin_init(&t, "{\"a\":{\"b\":1},\"c\":[1,2]}", 23))
		abort();
	for (int how = 0; how < 4; how++)
		change(&t, (const char *)data, n, how);
	te_twin_free(&t);
}
