/* Unit tests for src/hub/twin.c: the deployment's desired properties,
 * local and cloud desired changes and their versions, reported patches,
 * limits, and the stored form (round trip, damage refused). */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "hub/twin.h"
#include "tap.h"

static char out[TE_WIRE_TWIN_MAX + 1], err[300];
static size_t outlen;

static unsigned local(struct te_twin *t, const char *patch)
{
	return te_twin_patch_desired(t, patch, strlen(patch), false, 0, false, out,
				     sizeof(out), &outlen, err, sizeof(err));
}

static unsigned cloud(struct te_twin *t, const char *doc, int64_t version, bool full)
{
	return te_twin_patch_desired(t, doc, strlen(doc), true, version, full, out,
				     sizeof(out), &outlen, err, sizeof(err));
}

static unsigned report(struct te_twin *t, const char *patch)
{
	return te_twin_report(t, patch, strlen(patch), err, sizeof(err));
}

static bool desired_is(const struct te_twin *t, const char *want)
{
	bool ok = t->dlen == strlen(want) && !memcmp(t->desired, want, t->dlen);

	if (!ok)
		printf("#   desired %.*s\n#   wanted  %s\n", (int)t->dlen, t->desired, want);
	return ok;
}

static bool out_is(const char *want)
{
	bool ok = outlen == strlen(want) && !memcmp(out, want, outlen);

	if (!ok)
		printf("#   record %.*s\n#   wanted %s\n", (int)outlen, out, want);
	return ok;
}

/* n levels of objects: {"k":{"k":...{}...}}. */
static const char *nested(unsigned n)
{
	static char b[512];
	size_t len = 0;

	for (unsigned i = 1; i < n; i++)
		len += (size_t)sprintf(b + len, "{\"k\":");
	len += (size_t)sprintf(b + len, "{}");
	for (unsigned i = 1; i < n; i++)
		b[len++] = '}';
	b[len] = '\0';
	return b;
}

/* A patch of exactly n bytes: {"s":"xxxx..."}. */
static const char *sized(size_t n)
{
	static char b[TE_WIRE_TWIN_MAX + 64];

	memset(b, 'x', n);
	memcpy(b, "{\"s\":\"", 6);
	b[n - 2] = '"';
	b[n - 1] = '}';
	b[n] = '\0';
	return b;
}

static void test_init(void)
{
	struct te_twin t;

	TAP_EQ_INT(te_twin_init(&t, "{ \"a\" : 1, \"n\": null }", 22), 0, "init from the deployment");
	TAP_OK(desired_is(&t, "{\"a\":1,\"$version\":1}"), "desired compact at version 1, nulls dropped");
	TAP_OK(t.rlen == 14 && !memcmp(t.reported, "{\"$version\":1}", 14), "reported {} at version 1");
	TAP_OK(t.dver == 1 && t.rver == 1 && t.cloud_ver == 0, "versions 1, 1, no cloud version");
	TAP_OK(t.mhash == te_twin_hash("{\"a\":1}", 7), "the hash is of the compact deployment JSON");
	te_twin_free(&t);
	TAP_EQ_INT(te_twin_init(&t, NULL, 0), 0, "init without desired properties");
	TAP_OK(desired_is(&t, "{\"$version\":1}"), "...desired {}");
	te_twin_free(&t);
	TAP_EQ_INT(te_twin_init(&t, "[1]", 3), -TE_EMALFORMED, "an array is refused");
	TAP_EQ_INT(te_twin_init(&t, "{\"$version\":3}", 14), -TE_EMALFORMED, "a $version is refused");
	TAP_EQ_INT(te_twin_init(&t, "{\"a.b\":1}", 9), -TE_EINVALID, "a name with '.' is refused");
	TAP_EQ_INT(te_twin_init(&t, nested(11), strlen(nested(11))), -TE_EMALFORMED,
		   "11 levels are refused");
	TAP_OK(t.desired == NULL, "...and leave the twin empty");
}

static void test_deployment_changes(void)
{
	struct te_twin t;

	te_twin_init(&t, "{\"a\":1}", 7);
	TAP_EQ_INT(te_twin_set_desired(&t, "{\"a\" :1}", 8), 0, "the same deployment (spacing aside): no change");
	TAP_EQ_INT(t.dver, 1, "...version kept");
	TAP_EQ_INT(local(&t, "{\"b\":2}"), 200, "a local patch");
	TAP_EQ_INT(te_twin_set_desired(&t, "{\"a\":1}", 7), 0, "the same deployment again");
	TAP_OK(desired_is(&t, "{\"a\":1,\"b\":2,\"$version\":2}"), "...keeps the local patch");
	TAP_EQ_INT(te_twin_set_desired(&t, "{\"a\":5}", 7), 1, "a changed deployment");
	TAP_OK(desired_is(&t, "{\"a\":5,\"$version\":3}"), "...replaces the desired properties, version + 1");
	TAP_OK(t.mhash == te_twin_hash("{\"a\":5}", 7), "...and its hash is kept");
	TAP_EQ_INT(te_twin_set_desired(&t, "{\"a\":", 5), -TE_EMALFORMED, "an invalid one");
	TAP_OK(desired_is(&t, "{\"a\":5,\"$version\":3}"), "...changes nothing");
	local(&t, "{\"a\":null}");
	local(&t, "{\"a\":6}");
	TAP_EQ_INT(te_twin_set_desired(&t, "{\"a\":6}", 7), 0,
		   "a new deployment equal to what the twin has: no new version");
	TAP_OK(t.dver == 5 && t.mhash == te_twin_hash("{\"a\":6}", 7), "...but its hash is taken");
	te_twin_free(&t);
}

static void test_local_patches(void)
{
	struct te_twin t;

	te_twin_init(&t, "{\"a\":{\"x\":1,\"y\":2},\"arr\":[1,2,3],\"s\":\"v\"}", 41);
	TAP_EQ_INT(local(&t, "{\"a\":{\"y\":null,\"z\":3},\"arr\":[9],\"s\":{\"o\":1},\"new\":true}"), 200,
		   "a local patch: 200");
	TAP_OK(desired_is(&t, "{\"a\":{\"x\":1,\"z\":3},\"arr\":[9],\"s\":{\"o\":1},\"new\":true,\"$version\":2}"),
	       "nested merge, null deletes, arrays replaced whole, scalar replaced by object");
	TAP_OK(out_is("{\"a\":{\"y\":null,\"z\":3},\"arr\":[9],\"s\":{\"o\":1},\"new\":true,\"$version\":2}"),
	       "the module's record: the patch with the new $version (nulls kept)");
	TAP_EQ_INT(local(&t, "{\"s\":7}"), 200, "object replaced by a scalar");
	TAP_OK(desired_is(&t, "{\"a\":{\"x\":1,\"z\":3},\"arr\":[9],\"s\":7,\"new\":true,\"$version\":3}"), "...so");
	TAP_EQ_INT(local(&t, "{\"s\":7,\"gone\":null}"), 204, "a patch that changes nothing: 204");
	TAP_OK(t.dver == 3 && strstr(err, "no change"), "...no new version (%s)", err);
	TAP_EQ_INT(local(&t, "{\"$version\":9}"), 400, "a local $version: 400");
	TAP_OK(strstr(err, "$version") != NULL, "...%s", err);
	TAP_EQ_INT(local(&t, "{\"$x\":1}"), 400, "a $ name: 400");
	TAP_OK(strstr(err, "contains '$'") != NULL, "...%s", err);
	TAP_EQ_INT(local(&t, "[1]"), 400, "not an object: 400");
	TAP_EQ_INT(local(&t, "{\"a\":"), 400, "not JSON: 400");
	TAP_OK(strncmp(err, "patch:1:", 8) == 0, "...says where: %s", err);
	TAP_EQ_INT(local(&t, nested(10)), 200, "10 levels: 200");
	TAP_EQ_INT(local(&t, nested(11)), 400, "11 levels: 400");
	TAP_OK(strstr(err, "deeper than 10") != NULL, "...%s", err);
	TAP_EQ_INT(local(&t, sized(TE_WIRE_TWIN_MAX + 1)), 413, "a patch of 32 KiB + 1: 413");
	TAP_EQ_INT(t.dver, 4, "refusals leave the version alone");
	te_twin_free(&t);

	te_twin_init(&t, NULL, 0);
	/* {"s":"x..."} + ,"$version":2 -> 13 more bytes than the patch. */
	TAP_EQ_INT(local(&t, sized(TE_WIRE_TWIN_MAX - 13)), 200, "a desired document of exactly 32 KiB");
	TAP_EQ_INT(t.dlen, TE_WIRE_TWIN_MAX, "...is %u bytes", TE_WIRE_TWIN_MAX);
	TAP_EQ_INT(outlen, TE_WIRE_TWIN_MAX, "...and its record fits");
	te_twin_free(&t);
	te_twin_init(&t, NULL, 0);
	TAP_EQ_INT(local(&t, sized(TE_WIRE_TWIN_MAX - 12)), 413, "one byte more: 413");
	TAP_OK(strstr(err, "over 32768") != NULL, "...%s", err);
	TAP_OK(t.dver == 1 && desired_is(&t, "{\"$version\":1}"), "...twin unchanged");
	te_twin_free(&t);
}

static void test_cloud(void)
{
	struct te_twin t;
	int64_t last;
	unsigned bad = 0;

	te_twin_init(&t, "{\"a\":1,\"b\":2}", 13);
	TAP_EQ_INT(cloud(&t, "{\"b\":3,\"$version\":5}", 5, false), 200, "a cloud patch at version 5");
	TAP_OK(desired_is(&t, "{\"a\":1,\"b\":3,\"$version\":5}"), "...merges; dver = the cloud's 5");
	TAP_OK(t.cloud_ver == 5 && out_is("{\"b\":3,\"$version\":5}"), "...cloud_ver 5, record with version 5");
	TAP_EQ_INT(cloud(&t, "{\"b\":4}", 5, false), 204, "the same version again: stale, 204");
	TAP_OK(strstr(err, "stale") != NULL, "...%s", err);
	TAP_EQ_INT(cloud(&t, "{\"b\":4}", 3, false), 204, "an older version: 204");
	TAP_OK(desired_is(&t, "{\"a\":1,\"b\":3,\"$version\":5}"), "...ignored");
	TAP_EQ_INT(cloud(&t, "{\"b\":4}", 0, false), 400, "version 0: 400");
	local(&t, "{\"c\":1}");
	local(&t, "{\"c\":2}");
	TAP_EQ_INT(t.dver, 7, "two local patches: 7");
	TAP_EQ_INT(cloud(&t, "{\"d\":1}", 6, false), 200, "a cloud version 6 (newer than its 5)");
	TAP_OK(t.dver == 8 && t.cloud_ver == 6, "...dver = max(dver + 1, 6) = 8 (got %lld)", (long long)t.dver);
	TAP_EQ_INT(cloud(&t, "{\"full\":true,\"$version\":20}", 20, true), 200, "a full cloud document");
	TAP_OK(desired_is(&t, "{\"full\":true,\"$version\":20}"), "...replaces everything (cloud wins)");
	TAP_EQ_INT(outlen, 0, "...the module gets the whole twin");
	TAP_EQ_INT(cloud(&t, "{\"full\":false}", 20, true), 204, "the same full document (reconnect): stale");
	TAP_EQ_INT(cloud(&t, "{\"x\":{\"$bad\":1}}", 21, false), 400, "a bad name from the cloud: 400");
	TAP_EQ_INT(t.cloud_ver, 20, "...cloud_ver unchanged");
	TAP_EQ_INT(cloud(&t, nested(11), 21, true), 400, "11 levels from the cloud: 400");

	/* dver never goes down, whatever the mix. */
	last = t.dver;
	for (int i = 0; i < 200; i++) {
		char p[64];

		snprintf(p, sizeof(p), "{\"k%d\":%d}", i % 7, i);
		if (i % 3 == 0)
			cloud(&t, p, 20 + (i * 37) % 150, i % 2);
		else
			local(&t, p);
		bad += t.dver < last;
		last = t.dver;
	}
	TAP_EQ_INT(bad, 0, "dver is monotonic over 200 mixed changes (ends at %lld)", (long long)last);
	te_twin_free(&t);
}

static void test_report(void)
{
	struct te_twin t;
	static char big[TE_WIRE_TWIN_MAX + 64];

	te_twin_init(&t, NULL, 0);
	TAP_EQ_INT(report(&t, "{\"fw\":\"1.0\",\"t\":{\"a\":1}}"), 200, "a reported patch");
	TAP_EQ_INT(report(&t, "{\"t\":{\"a\":null,\"b\":2}}"), 200, "another");
	TAP_OK(t.rver == 3 && t.rlen == strlen("{\"fw\":\"1.0\",\"t\":{\"b\":2},\"$version\":3}") &&
	       !memcmp(t.reported, "{\"fw\":\"1.0\",\"t\":{\"b\":2},\"$version\":3}", t.rlen),
	       "merged, version 3");
	TAP_EQ_INT(report(&t, nested(11)), 400, "11 levels: 400, not 413");
	TAP_EQ_INT(report(&t, "{\"$version\":1}"), 400, "$version: 400");
	TAP_EQ_INT(report(&t, sized(TE_WIRE_TWIN_MAX + 1)), 413, "a patch over 32 KiB: 413");
	snprintf(big, sizeof(big), "%s", sized(TE_WIRE_TWIN_MAX - 20));
	TAP_EQ_INT(report(&t, big), 413, "a result over 32 KiB: 413");
	TAP_OK(strstr(err, "reported properties would be over") != NULL, "...%s", err);
	TAP_EQ_INT(t.rver, 3, "refusals leave it alone");
	te_twin_free(&t);
}

static void test_stored_form(void)
{
	static uint8_t blob[TE_TWIN_BLOB_MAX], copy[TE_TWIN_BLOB_MAX];
	struct te_twin t, u;
	size_t len = 0;
	unsigned flips = 0;
	uint64_t h;

	te_twin_init(&t, "{\"a\":1}", 7);
	local(&t, "{\"b\":\"caf\\u00e9\"}");
	cloud(&t, "{\"c\":3}", 9, false);
	report(&t, "{\"r\":[1,2]}");
	TAP_EQ_INT(te_twin_encode(&t, blob, sizeof(blob), &len), 0, "encode");
	TAP_EQ_INT(len, TE_TWIN_BLOB_HDR + t.dlen + t.rlen + 8, "...header + documents + checksum");
	TAP_EQ_INT(te_twin_encode(&t, blob, len - 1, &len), -TE_ENOSPACE, "...a buffer one byte short");
	te_twin_encode(&t, blob, sizeof(blob), &len);
	TAP_EQ_INT(te_twin_decode(&u, blob, len), 0, "decode");
	TAP_OK(u.dver == t.dver && u.rver == t.rver && u.cloud_ver == 9 && u.mhash == t.mhash &&
	       u.dlen == t.dlen && !memcmp(u.desired, t.desired, t.dlen) && u.rlen == t.rlen &&
	       !memcmp(u.reported, t.reported, t.rlen), "round trip: versions, hash, documents");
	te_twin_free(&u);

	for (size_t i = 0; i < len; i++) {
		memcpy(copy, blob, len);
		copy[i] ^= 0x20;
		flips += te_twin_decode(&u, copy, len) == -TE_EMALFORMED;
	}
	TAP_EQ_INT(flips, len, "every one-byte change is refused");
	TAP_EQ_INT(te_twin_decode(&u, blob, len - 1), -TE_EMALFORMED, "a truncated blob is refused");
	TAP_EQ_INT(te_twin_decode(&u, blob, 3), -TE_EMALFORMED, "a tiny one too");
	TAP_OK(u.desired == NULL, "...leaving the twin empty");

	/* Damage behind a valid checksum: the checks inside still hold. */
	memcpy(copy, blob, len);
	copy[8] = (uint8_t)(t.dver + 1);  /* dver no longer the document's $version */
	h = te_twin_hash(copy, len - 8);
	memcpy(copy + len - 8, &h, 8);    /* little-endian host */
	TAP_EQ_INT(te_twin_decode(&u, copy, len), -TE_EMALFORMED, "a dver that disagrees with $version");
	memcpy(copy, blob, len);
	copy[4] = 2;
	h = te_twin_hash(copy, len - 8);
	memcpy(copy + len - 8, &h, 8);
	TAP_EQ_INT(te_twin_decode(&u, copy, len), -TE_EMALFORMED, "an unknown format version");
	memcpy(copy, blob, len);
	copy[TE_TWIN_BLOB_HDR] = '[';
	h = te_twin_hash(copy, len - 8);
	memcpy(copy + len - 8, &h, 8);
	TAP_EQ_INT(te_twin_decode(&u, copy, len), -TE_EMALFORMED, "a desired document that is not JSON");
	te_twin_free(&t);
}

static void test_full(void)
{
	struct te_twin t;
	char buf[100];
	size_t len;

	te_twin_init(&t, "{\"a\":1}", 7);
	TAP_EQ_INT(te_twin_full(&t, buf, sizeof(buf), &len), 0, "the whole twin");
	TAP_EQ_STR(buf, "{\"desired\":{\"a\":1,\"$version\":1},\"reported\":{\"$version\":1}}", "...its shape");
	TAP_EQ_INT(te_twin_full(&t, buf, len, &len), -TE_ENOSPACE, "...a buffer one byte short");
	te_twin_free(&t);
}

int main(void)
{
	test_init();
	test_deployment_changes();
	test_local_patches();
	test_cloud();
	test_report();
	test_stored_form();
	test_full();
	return tap_done();
}
