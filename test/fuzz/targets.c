/* Fuzz targets, one binary with modes (as crun's):
 * TE_FUZZ=json|config|manifest|patch|record|ctl|ring|route|stdio|mqtt|azure|twin|
 * methods|http|request.
 *
 * Built two ways: with clang -fsanitize=fuzzer for `make fuzz`, and with
 * test/fuzz/replay.c as a plain ASan+UBSan program that `make test` runs
 * over every kept corpus file (test/fuzz/corpus/MODE/). A target never
 * asserts validity, only that the code survives and holds its invariants. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent/manifest.h"
#include "core/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/json_patch.h"
#include "fuzz.h"

/* A valid document's tokens must read back and re-serialize as valid JSON. */
static void fuzz_json(const uint8_t *data, size_t n)
{
	struct te_diag diag = { 0 };
	struct te_json_doc doc, again;
	static char buf[1 << 16], out[1 << 17];
	struct te_jw w;
	double d;

	if (te_json_parse(&doc, "fuzz", (const char *)data, n, NULL, &diag) < 0)
		return;
	te_jw_init(&w, out, sizeof(out));
	te_jw_arr_open(&w);
	for (unsigned t = 0; t < doc.ntok; t++) {
		if (doc.tok[t].next <= t || doc.tok[t].next > doc.ntok)
			abort(); /* subtree indices must move forward */
		if (doc.tok[t].type == TE_JSON_STRING &&
		    te_json_str(&doc, t, buf, sizeof(buf), NULL) == 0)
			te_jw_str(&w, buf);
		if (doc.tok[t].type == TE_JSON_NUMBER && te_json_double(&doc, t, &d) < 0)
			abort();
	}
	te_jw_arr_close(&w);
	if (te_jw_finish(&w) == 0) {
		if (te_json_parse(&again, "again", out, w.len, NULL, &diag) < 0)
			abort(); /* the writer produced invalid JSON */
		te_json_free(&again);
	}
	te_json_free(&doc);
}

/* The loaders take a path: hand them a memfd. */
static int with_memfd(const uint8_t *data, size_t n, char *path, size_t cap)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);

	if (fd < 0 || write(fd, data, n) != (ssize_t)n) {
		perror("memfd");
		exit(2);
	}
	snprintf(path, cap, "/proc/self/fd/%d", fd);
	return fd;
}

static void fuzz_config(const uint8_t *data, size_t n)
{
	struct te_diag diag = { 0 };
	static struct te_config cfg;
	char path[64];
	int fd = with_memfd(data, n, path, sizeof(path));

	te_config_defaults(&cfg);
	if (te_config_load(&cfg, path, &diag) == 0 && diag.errors)
		abort(); /* success with problems reported */
	close(fd);
}

static void fuzz_manifest(const uint8_t *data, size_t n)
{
	struct te_diag diag = { 0 };
	struct te_manifest m;
	char path[64];
	int fd = with_memfd(data, n, path, sizeof(path));
	int r = te_manifest_load(&m, path, &diag);

	if ((r == 0) != (diag.errors == 0))
		abort(); /* rc and reports must agree */
	for (unsigned i = 0; r == 0 && i < m.nmodules; i++)
		if (!m.modules[i].name || !m.modules[i].image || m.modules[i].image[0] != '/')
			abort(); /* a loaded module is complete */
	te_manifest_free(&m);
	close(fd);
}

/* The bytes are a document, a NUL, a patch (no NUL: the patch alone, over
 * {}). A merged result must be valid JSON within the depth limit, and
 * merging the same patch again must change nothing (RFC 7396 merges are
 * idempotent). */
static void fuzz_patch(const uint8_t *data, size_t n)
{
	static char out[1 << 17], again[1 << 17];
	const char *doc = "{}", *patch = (const char *)data;
	const uint8_t *nul = memchr(data, 0, n);
	size_t dlen = 2, plen = n, len, len2;
	struct te_json_limits lim = te_json_default_limits;
	struct te_diag diag = { 0 };
	struct te_json_doc res;
	int r;

	if (nul) {
		doc = (const char *)data;
		dlen = (size_t)(nul - data);
		patch = (const char *)nul + 1;
		plen = n - dlen - 1;
	}
	r = te_json_merge_patch(doc, dlen, patch, plen, out, sizeof(out), &len, NULL, 0);
	if (r && r != -TE_EMALFORMED && r != -TE_ELIMIT && r != -TE_EINVALID &&
	    r != -TE_ENOSPACE)
		abort();
	if (r)
		return;
	lim.max_depth = TE_JSON_PATCH_DEPTH;
	if (len != strlen(out) || te_json_parse(&res, "result", out, len, &lim, &diag))
		abort();  /* not JSON, or deeper than its inputs */
	te_json_free(&res);
	r = te_json_merge_patch(out, len, patch, plen, again, sizeof(again), &len2, NULL, 0);
	if (r == -TE_ENOSPACE || r == -TE_ELIMIT)
		return;  /* the result outgrew an input limit */
	if (r || len2 != len || memcmp(again, out, len))
		abort();  /* not idempotent */
}

static const struct {
	const char *name;
	void (*fn)(const uint8_t *data, size_t n);
} modes[] = {
	{ "json", fuzz_json },
	{ "config", fuzz_config },
	{ "manifest", fuzz_manifest },
	{ "patch", fuzz_patch },
	{ "record", te_fuzz_record },
	{ "ctl", te_fuzz_ctl },
	{ "ring", te_fuzz_ring },
	{ "route", te_fuzz_route },
	{ "stdio", te_fuzz_stdio },
	{ "mqtt", te_fuzz_mqtt },
	{ "azure", te_fuzz_azure },
	{ "twin", te_fuzz_twin },
	{ "methods", te_fuzz_methods },
	{ "http", te_fuzz_http },
	{ "request", te_fuzz_request },
};
static void (*target)(const uint8_t *, size_t) = fuzz_json;

int te_fuzz_set_mode(const char *name)
{
	for (unsigned i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (strcmp(modes[i].name, name) == 0) {
			target = modes[i].fn;
			return 0;
		}
	}
	return -1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *mode = getenv("TE_FUZZ");

	if (mode && te_fuzz_set_mode(mode) < 0) {
		fprintf(stderr, "TE_FUZZ=%s: expected json, config, manifest, patch, record, ctl, ring, route, stdio, mqtt, azure, twin, methods, http or request\n", mode);
		exit(2);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
	target(data, n);
	return 0;
}
