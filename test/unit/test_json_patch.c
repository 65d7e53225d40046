/* Unit tests for src/core/json_patch.c: RFC 7396 merge patch (every
 * example of the RFC's appendix A and section 3) and the twin rules:
 * depth, property names, sizes, errors. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "json_patch.h"
#include "tap.h"

static char out[70000], err[256];

/* Merge; 0 or the error. The result is in out. */
static int mp(const char *doc, const char *patch)
{
	size_t n = 0;
	int r;

	memset(out, 0, sizeof(out));
	r = te_json_merge_patch(doc, strlen(doc), patch, strlen(patch), out,
				sizeof(out), &n, err, sizeof(err));
	if (!r && n != strlen(out))
		return -9999;  /* *outlen disagrees with the text */
	return r;
}

#define MERGE(doc, patch, want)                                                 \
	do {                                                                    \
		int _r = mp(doc, patch);                                        \
		TAP_OK(_r == 0 && strcmp(out, want) == 0, "%s + %s = %s", doc,  \
		       patch, want);                                            \
		if (_r || strcmp(out, want))                                    \
			printf("#   got %d \"%s\" (%s)\n", _r, out, err);       \
	} while (0)

/* RFC 7396 appendix A, every row. */
static void test_rfc_appendix(void)
{
	MERGE("{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
	MERGE("{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}");
	MERGE("{\"a\":\"b\"}", "{\"a\":null}", "{}");
	MERGE("{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}");
	MERGE("{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
	MERGE("{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}");
	MERGE("{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}",
	      "{\"a\":{\"b\":\"d\"}}");
	MERGE("{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}");
	MERGE("[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]");
	MERGE("{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]");
	MERGE("{\"a\":\"foo\"}", "null", "null");
	MERGE("{\"a\":\"foo\"}", "\"bar\"", "\"bar\"");
	MERGE("{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}");
	MERGE("[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}");
	MERGE("{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}");
}

/* RFC 7396 section 3, the worked example (pretty-printed in, compact out). */
static void test_rfc_example(void)
{
	static const char doc[] =
		"{\n  \"title\": \"Goodbye!\",\n  \"author\" : {\n    \"givenName\" : \"John\",\n"
		"    \"familyName\" : \"Doe\"\n  },\n  \"tags\":[ \"example\", \"sample\" ],\n"
		"  \"content\": \"This will be unchanged\"\n}";
	static const char patch[] =
		"{\n  \"title\": \"Hello!\",\n  \"phoneNumber\": \"+01-123-456-7890\",\n"
		"  \"author\": {\n    \"familyName\": null\n  },\n  \"tags\": [ \"example\" ]\n}";

	TAP_EQ_INT(mp(doc, patch), 0, "RFC 7396 section 3: merged");
	TAP_EQ_STR(out, "{\"title\":\"Hello!\",\"author\":{\"givenName\":\"John\"},"
		   "\"tags\":[\"example\"],\"content\":\"This will be unchanged\","
		   "\"phoneNumber\":\"+01-123-456-7890\"}",
		   "RFC 7396 section 3: the result, compact");
}

static void test_twin_shapes(void)
{
	MERGE("{\"threshold\":25,\"$version\":1}", "{\"threshold\":30,\"$version\":2}",
	      "{\"threshold\":30,\"$version\":2}");
	MERGE("{\"$version\":4,\"$metadata\":{\"x\":1}}", "{\"a\":1}",
	      "{\"$version\":4,\"$metadata\":{\"x\":1},\"a\":1}");
	MERGE("{ \"a\" : { \"keep\" : null , \"n\" : [ 1 , { \"x\" : null } ] } }", "{}",
	      "{\"a\":{\"keep\":null,\"n\":[1,{\"x\":null}]}}");
	MERGE("{\"a\":1}", "{\"b\":{\"c\":[1,{\"d\":null}],\"e\":{\"f\":null,\"g\":true}}}",
	      "{\"a\":1,\"b\":{\"c\":[1,{\"d\":null}],\"e\":{\"g\":true}}}");
	MERGE("{\"s\":\"caf\\u00e9 \\\"q\\\"\"}", "{\"t\":\"\\n\",\"n\":-1.5e+3}",
	      "{\"s\":\"caf\\u00e9 \\\"q\\\"\",\"t\":\"\\n\",\"n\":-1.5e+3}");
	MERGE("{\"\\u0061\":1}", "{\"a\":2}", "{\"\\u0061\":2}");
	MERGE("{\"a\":1}", "{\"\\u0061\":null}", "{}");
	MERGE("{\"a\":{\"b\":1}}", "{\"a\":{\"b\":null}}", "{\"a\":{}}");
	MERGE("{\"x\":1}", "{\"x\":{}}", "{\"x\":{}}");
	MERGE("{\"x\":{\"y\":1}}", "{\"x\":{}}", "{\"x\":{\"y\":1}}");
	MERGE("{\"x\":1}", "{}", "{\"x\":1}");
	MERGE("{\"\":1}", "{\"\":2}", "{\"\":2}");
}

/* The twin rules, one row each: what a desired or reported patch does. */
static void test_twin_rules(void)
{
	static const struct {
		const char *what, *doc, *patch, *want;
	} rows[] = {
		{ "nested objects merge", "{\"a\":{\"b\":{\"c\":1,\"d\":2}}}",
		  "{\"a\":{\"b\":{\"c\":3}}}", "{\"a\":{\"b\":{\"c\":3,\"d\":2}}}" },
		{ "null deletes, at any level", "{\"a\":1,\"b\":{\"c\":1,\"d\":2}}",
		  "{\"a\":null,\"b\":{\"d\":null}}", "{\"b\":{\"c\":1}}" },
		{ "null for a missing key: nothing", "{\"a\":1}", "{\"z\":null}", "{\"a\":1}" },
		{ "an object replaced by a scalar", "{\"a\":{\"b\":1}}", "{\"a\":5}", "{\"a\":5}" },
		{ "a scalar replaced by an object", "{\"a\":5}", "{\"a\":{\"b\":1}}",
		  "{\"a\":{\"b\":1}}" },
		{ "a scalar replaced by an object, nulls dropped", "{\"a\":5}",
		  "{\"a\":{\"b\":1,\"c\":null}}", "{\"a\":{\"b\":1}}" },
		{ "arrays are replaced whole", "{\"a\":[1,2,3]}", "{\"a\":[4]}", "{\"a\":[4]}" },
		{ "an array replaced by an object", "{\"a\":[1]}", "{\"a\":{\"b\":2}}",
		  "{\"a\":{\"b\":2}}" },
		{ "an object replaced by an array", "{\"a\":{\"b\":2}}", "{\"a\":[]}",
		  "{\"a\":[]}" },
		{ "strings, numbers, booleans replace", "{\"s\":\"x\",\"n\":1,\"b\":true}",
		  "{\"s\":2,\"n\":\"y\",\"b\":false}", "{\"s\":2,\"n\":\"y\",\"b\":false}" },
		{ "members keep their order, new ones follow", "{\"b\":1,\"a\":2}",
		  "{\"c\":3,\"a\":4}", "{\"b\":1,\"a\":4,\"c\":3}" },
	};

	for (unsigned i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int r = mp(rows[i].doc, rows[i].patch);

		TAP_OK(r == 0 && strcmp(out, rows[i].want) == 0, "twin rule: %s", rows[i].what);
		if (r || strcmp(out, rows[i].want))
			printf("#   got %d \"%s\" (%s)\n", r, out, err);
	}
}

/* n levels of objects: {"k":{"k":...{}...}}. */
static const char *nested(unsigned n, const char *inner)
{
	static char buf[2][512];
	static int which;
	char *b = buf[which ^= 1];
	size_t len = 0;

	for (unsigned i = 1; i < n; i++)
		len += (size_t)sprintf(b + len, "{\"k\":");
	len += (size_t)sprintf(b + len, "%s", inner);
	for (unsigned i = 1; i < n; i++)
		b[len++] = '}';
	b[len] = '\0';
	return b;
}

static void test_depth(void)
{
	char want[512];

	snprintf(want, sizeof(want), "%s", nested(10, "{\"v\":1}"));
	MERGE("{}", nested(10, "{\"v\":1}"), want);
	TAP_EQ_INT(mp("{}", nested(11, "{}")), -TE_ELIMIT, "a patch 11 levels deep");
	TAP_OK(strstr(err, "patch:1:") && strstr(err, "deeper than 10"), "...says where: %s", err);
	TAP_EQ_INT(mp(nested(11, "{}"), "{}"), -TE_ELIMIT, "a document 11 levels deep");
	TAP_OK(strncmp(err, "doc:1:", 6) == 0, "...names the document: %s", err);
	TAP_EQ_INT(mp("{}", nested(10, "[[1]]")), -TE_ELIMIT, "arrays count as levels");
	TAP_EQ_INT(mp(nested(10, "{}"), nested(10, "{}")), 0, "10 levels merged into 10");
	TAP_EQ_INT(mp("{}", "[[[[[[[[[[1]]]]]]]]]]"), 0, "10 nested arrays replace");
}

#define BAD_KEY(patch, what)                                                    \
	do {                                                                    \
		TAP_EQ_INT(mp("{\"a\":1}", patch), -TE_EINVALID, "name refused: %s", what); \
		TAP_OK(strncmp(err, "patch:1:", 8) == 0, "...%s", err);         \
	} while (0)

static void test_names(void)
{
	static char longkey[1200], patch[1300];

	BAD_KEY("{\"$foo\":1}", "starts with $");
	BAD_KEY("{\"a$\":1}", "contains $");
	BAD_KEY("{\"a.b\":1}", "contains .");
	BAD_KEY("{\"a b\":1}", "contains a space");
	BAD_KEY("{\"a\\u0001\":1}", "contains U+0001");
	BAD_KEY("{\"a\\u0000\":1}", "contains U+0000");
	BAD_KEY("{\"\\u0085\":1}", "contains U+0085 (C1)");
	BAD_KEY("{\"a\\tb\":1}", "contains a tab");
	BAD_KEY("{\"ok\":{\"$version\":1}}", "$version below the root");
	BAD_KEY("{\"ok\":[{\"x.y\":1}]}", "inside an array");
	BAD_KEY("{\"gone\":{\"a.b\":null}}", "even in a deletion");
	BAD_KEY("{\"$metadata\":{}}", "$metadata at the root");
	TAP_OK(strstr(err, "property name \"$metadata\" contains '$'") != NULL,
	       "the message names the property and the rule: %s", err);
	MERGE("{\"a\":1}", "{\"$version\":7}", "{\"a\":1,\"$version\":7}");
	MERGE("{\"a\":1}", "{\"\\u00a0\\u00bf\\u0100\":1}",
	      "{\"a\":1,\"\\u00a0\\u00bf\\u0100\":1}");
	MERGE("{\"a\":1}", "{\"x\":\"a.b $c\"}", "{\"a\":1,\"x\":\"a.b $c\"}");

	memset(longkey, 'k', 1024);
	snprintf(patch, sizeof(patch), "{\"%s\":1}", longkey);
	TAP_EQ_INT(mp("{}", patch), 0, "a 1024-byte name");
	longkey[1024] = 'k';
	snprintf(patch, sizeof(patch), "{\"%s\":1}", longkey);
	TAP_EQ_INT(mp("{}", patch), -TE_EINVALID, "a 1025-byte name");
	TAP_EQ_INT(mp("{\"a.b\":1,\"$x\":2}", "{\"c\":3}"), 0,
		   "the document's own names are not checked");
}

static void test_errors(void)
{
	static char big[TE_JSON_PATCH_INPUT_MAX + 16];
	char small[8];
	size_t n = 12345;
	int r;

	TAP_EQ_INT(mp("{", "{}"), -TE_EMALFORMED, "document not JSON");
	TAP_OK(strncmp(err, "doc:1:", 6) == 0, "...%s", err);
	TAP_EQ_INT(mp("{}", "{\"a\":1,}"), -TE_EMALFORMED, "patch not JSON");
	TAP_EQ_INT(mp("{}", "{\"a\":1,\"a\":2}"), -TE_EMALFORMED, "patch with a duplicate key");
	TAP_EQ_INT(mp("{}", ""), -TE_EMALFORMED, "empty patch");
	TAP_EQ_INT(mp("", "{}"), -TE_EMALFORMED, "empty document");

	r = te_json_merge_patch("{}", 2, "{\"a\":12}", 8, small, sizeof(small),
				&n, err, sizeof(err));
	TAP_EQ_INT(r, -TE_ENOSPACE, "an 8-byte result, cap 8");
	TAP_EQ_INT(n, 12345, "...outlen untouched");
	TAP_EQ_STR(err, "the result is over 7 bytes", "...says so");
	r = te_json_merge_patch("{}", 2, "{\"a\":1}", 7, small, sizeof(small),
				&n, NULL, 0);
	TAP_OK(r == 0 && n == 7 && strcmp(small, "{\"a\":1}") == 0,
	       "a 7-byte result fits cap 8 (err NULL)");
	TAP_EQ_INT(te_json_merge_patch("{}", 2, "{}", 2, small, 0, &n, NULL, 0),
		   -TE_ENOSPACE, "cap 0");

	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[TE_JSON_PATCH_INPUT_MAX - 1] = '}';
	TAP_EQ_INT(te_json_merge_patch(big, TE_JSON_PATCH_INPUT_MAX, "{}", 2, out,
				       sizeof(out), &n, err, sizeof(err)),
		   0, "a document of TE_JSON_PATCH_INPUT_MAX bytes");
	big[TE_JSON_PATCH_INPUT_MAX] = '}';
	big[TE_JSON_PATCH_INPUT_MAX - 1] = ' ';
	TAP_EQ_INT(te_json_merge_patch("{}", 2, big, TE_JSON_PATCH_INPUT_MAX + 1, out,
				       sizeof(out), &n, err, sizeof(err)),
		   -TE_ELIMIT, "a patch one byte longer");
	TAP_OK(strstr(err, "patch") != NULL, "...%s", err);
	TAP_EQ_INT(te_json_merge_patch("{}", 2, "{\"a\":1}x", 7, out, sizeof(out), &n,
				       err, sizeof(err)),
		   0, "inputs need not be NUL-terminated");
	TAP_EQ_STR(out, "{\"a\":1}", "...and only plen bytes are read");
}

/* A twin section at the 32 KiB wire limit merges into a buffer of that size. */
static void test_size(void)
{
	static char doc[40000], want[40000];
	char patch[64];
	size_t len = 0, n = 0;
	int r;

	len += (size_t)sprintf(doc, "{\"$version\":1");
	for (int i = 0; len < 32700; i++)
		len += (size_t)sprintf(doc + len, ",\"p%05d\":%d", i, i);
	doc[len++] = '}';
	doc[len] = '\0';
	snprintf(patch, sizeof(patch), "{\"$version\":2,\"p00000\":null}");
	r = te_json_merge_patch(doc, len, patch, strlen(patch), out, 32 * 1024 + 1,
				&n, err, sizeof(err));
	memcpy(want, doc, len + 1);
	want[12] = '2';
	memmove(want + 13, want + 13 + strlen(",\"p00000\":0"), len - 12);
	TAP_EQ_INT(r, 0, "a %zu-byte document merged", len);
	TAP_OK(n == strlen(want) && strcmp(out, want) == 0, "...version bumped, one member gone");
	r = te_json_merge_patch(doc, len, patch, strlen(patch), out, n, &n, err, sizeof(err));
	TAP_EQ_INT(r, -TE_ENOSPACE, "...and refused with a buffer one byte short");
}

/* apply(out of buf) <- te_json_merge_patch_ex; 0 or the error. */
static int mpx(const char *doc, const char *patch, unsigned flags, char *buf, size_t cap)
{
	size_t n = 0;

	return te_json_merge_patch_ex(doc, strlen(doc), patch, strlen(patch), flags, buf, cap,
				      &n, err, sizeof(err));
}

/* Two patches composed into one do to a document what the two do one after
 * the other (but for the case json_patch.h names: a non-object, then an
 * object): nulls are kept, names are not checked with ANY_NAMES. */
static void test_compose(void)
{
	static const char *const docs[] = {
		"{}", "{\"a\":1,\"b\":{\"c\":2,\"d\":3},\"e\":[1]}", "[1]",
		"{\"b\":{\"c\":{\"x\":1}},\"f\":\"s\"}",
	};
	static const char *const pairs[][2] = {
		{ "{\"a\":null}", "{\"b\":{\"c\":5}}" },
		{ "{\"b\":{\"d\":null}}", "{\"b\":{\"c\":null,\"n\":1}}" },
		{ "{\"a\":7}", "{\"a\":null}" },
		{ "{\"b\":{\"c\":{\"y\":2}}}", "{\"b\":{\"c\":{\"x\":null}}}" },
		{ "{\"e\":null,\"g\":{\"h\":null}}", "{\"f\":[null]}" },
		{ "{\"b\":{\"q\":5}}", "{\"b\":{\"c\":1,\"q\":null}}" },
	};
	static char one[4096], two[4096], comp[4096], via[4096];

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		for (size_t j = 0; j < sizeof(pairs) / sizeof(pairs[0]); j++) {
			int r = mpx(docs[i], pairs[j][0], 0, one, sizeof(one));

			r = r ? r : mpx(one, pairs[j][1], 0, two, sizeof(two));
			r = r ? r : mpx(pairs[j][0], pairs[j][1], TE_JSON_PATCH_COMPOSE, comp,
					sizeof(comp));
			r = r ? r : mpx(docs[i], comp, 0, via, sizeof(via));
			TAP_OK(r == 0 && strcmp(two, via) == 0, "%s then %s on %s = %s composed",
			       pairs[j][0], pairs[j][1], docs[i], comp);
			if (r || strcmp(two, via))
				printf("#   got %d \"%s\" vs \"%s\" (%s)\n", r, two, via, err);
		}
	}
	TAP_EQ_INT(mpx("{\"a\":1}", "{\"a\":null,\"b\":{\"c\":null}}", TE_JSON_PATCH_COMPOSE,
		       comp, sizeof(comp)), 0, "compose keeps the nulls");
	TAP_EQ_STR(comp, "{\"a\":null,\"b\":{\"c\":null}}", "...as nulls");
	TAP_EQ_INT(mpx("{}", "{\"$edgeAgent\":{\"x\":1}}", 0, comp, sizeof(comp)), -TE_EINVALID,
		   "a '$' name is refused by default");
	TAP_EQ_INT(mpx("{\"m\":{\"y\":null}}", "{\"$edgeAgent\":{\"x\":1}}",
		       TE_JSON_PATCH_ANY_NAMES | TE_JSON_PATCH_COMPOSE, comp, sizeof(comp)), 0,
		   "...and taken with ANY_NAMES");
	TAP_EQ_STR(comp, "{\"m\":{\"y\":null},\"$edgeAgent\":{\"x\":1}}", "...nulls kept");
}

int main(void)
{
	test_compose();
	test_rfc_appendix();
	test_rfc_example();
	test_twin_shapes();
	test_twin_rules();
	test_depth();
	test_names();
	test_errors();
	test_size();
	return tap_done();
}
