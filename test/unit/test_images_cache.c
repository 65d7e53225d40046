/* Unit tests for src/images/images.c: GC decisions (grace, quota LRU,
 * refs) with an injected clock, and the API on a real loop: pulls of
 * file:// images, shared downloads, cancellation, refs, lookup, and the
 * index surviving a close and reopen. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"
#include "core/loop.h"
#include "images/images.h"
#include "tap.h"

static int64_t fake_now = 1800000000;

static int64_t clock_fake(void)
{
	return fake_now;
}

static void test_plan(void)
{
	struct te_image img[5] = { 0 };
	bool rm[5];

	for (int i = 0; i < 4; i++) {
		img[i].used = true;
		img[i].size = 100;
		img[i].last_used = 1000 + i;
	}
	img[1].refs = 1;
	/* slot 4 unused */
	te_images_gc_plan(img, 5, 1000 + 50, 100, 1000, rm);
	TAP_OK(!rm[0] && !rm[1] && !rm[2] && !rm[3] && !rm[4], "within the grace and the quota: nothing");
	te_images_gc_plan(img, 5, 1002 + 100, 100, 1000, rm);
	TAP_OK(rm[0] && !rm[1] && rm[2] && !rm[3] && !rm[4],
	       "past the grace: unreferenced ones go, the referenced one stays");
	te_images_gc_plan(img, 5, 1000 + 10, 100, 350, rm);
	TAP_OK(rm[0] && !rm[1] && !rm[2] && !rm[3], "over quota: the least recently used goes first");
	te_images_gc_plan(img, 5, 1000 + 10, 100, 250, rm);
	TAP_OK(rm[0] && !rm[1] && rm[2] && !rm[3], "then the next, until under the quota");
	te_images_gc_plan(img, 5, 1000 + 10, 100, 0, rm);
	TAP_OK(rm[0] && !rm[1] && rm[2] && rm[3], "quota 0: every unreferenced one, never a referenced one");
	img[1].refs = 0;
	img[1].last_used = 0;
	te_images_gc_plan(img, 5, 1000 + 10, 100, 350, rm);
	TAP_OK(rm[1] && !rm[0] && !rm[2] && !rm[3], "unreferenced again: LRU by last use");
}

struct result {
	int calls, status;
	char path[PATH_MAX], err[TE_FETCH_ERR_MAX];
};

static void on_done(void *ctx, int status, const char *path, const char *err)
{
	struct result *r = ctx;

	r->calls++;
	r->status = status;
	snprintf(r->path, sizeof(r->path), "%s", path ? path : "");
	snprintf(r->err, sizeof(r->err), "%s", err);
}

static void turn_until(struct te_loop *l, const int *calls, int want)
{
	for (int i = 0; i < 500 && *calls < want; i++)
		te_loop_turn(l, 10);
}

static void write_image(const char *path, size_t n, char fill)
{
	FILE *f = fopen(path, "wb");

	for (size_t i = 0; f && i < n; i++)
		fputc(fill + (int)(i % 7), f);
	if (f)
		fclose(f);
}

/* sha256 of a file with openssl's dgst, into hex. */
static int sha_of(const char *path, char hex[65])
{
	char cmd[512];
	FILE *p;
	int ok;

	snprintf(cmd, sizeof(cmd), "sha256sum %s", path);
	p = popen(cmd, "r");
	ok = p && fscanf(p, "%64s", hex) == 1;
	if (p)
		pclose(p);
	return ok ? 0 : -1;
}

static void ref_for(const char *dir, const char *name, struct te_image_ref *ref, char *url, size_t cap)
{
	char path[512], hex[65] = "", err[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	sha_of(path, hex);
	snprintf(url, cap, "file://%s#sha256=%s", path, hex);
	te_image_ref_parse(url, ref, err, sizeof(err));
}

static void test_api(void)
{
	char dir[] = "/tmp/te-imgcache-XXXXXX", path[512], url[1024], err[512], got[PATH_MAX];
	struct te_image_ref a, b, bad;
	struct te_config cfg;
	struct te_images c;
	struct te_loop loop;
	struct result ra = { 0 }, ra2 = { 0 }, rb = { 0 }, rbad = { 0 }, rc = { 0 };
	int id1, id2, id3;
	struct stat st;

	if (!mkdtemp(dir) || te_loop_init(&loop) < 0) {
		TAP_OK(0, "setup");
		return;
	}
	te_config_defaults(&cfg);
	snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s/state", dir);
	cfg.images.gc_grace_secs = 100;
	cfg.images.cache_bytes = 1 << 20;
	snprintf(path, sizeof(path), "%s/a.img", dir);
	write_image(path, 300000, 'a');
	snprintf(path, sizeof(path), "%s/b.img", dir);
	write_image(path, 200000, 'b');
	ref_for(dir, "a.img", &a, url, sizeof(url));
	ref_for(dir, "b.img", &b, url, sizeof(url));
	bad = a;
	memcpy(bad.sha256, b.sha256, sizeof(bad.sha256));
	bad.sha256[0] = bad.sha256[0] == '0' ? '1' : '0';

	TAP_OK(te_images_open(&c, &loop, &cfg, err, sizeof(err)) == 0, "open (%s)", err);
	c.now = clock_fake;
	TAP_EQ_INT(te_images_lookup(&c, a.sha256, got, sizeof(got)), -ENOENT, "lookup before a pull");
	TAP_EQ_INT(te_images_ref(&c, a.sha256), -ENOENT, "ref of an image not cached");
	id1 = te_images_pull(&c, &a, "file-a", on_done, &ra);
	id2 = te_images_pull(&c, &a, "file-a", on_done, &ra2);
	id3 = te_images_pull(&c, &bad, "file-bad", on_done, &rbad);
	TAP_OK(id1 > 0 && id2 > 0 && id3 > 0 && id1 != id2, "pull ids");
	TAP_EQ_INT(ra.calls + ra2.calls, 0, "never called back from inside te_images_pull");
	turn_until(&loop, &rbad.calls, 1);
	turn_until(&loop, &ra2.calls, 1);
	TAP_OK(ra.calls == 1 && ra.status == 0 && ra2.calls == 1 && ra2.status == 0 &&
	       !strcmp(ra.path, ra2.path), "two pulls of one image: both answered with one path");
	TAP_EQ_INT(c.pulled, 1, "one download for both");
	TAP_OK(stat(ra.path, &st) == 0 && st.st_size == 300000 && (st.st_mode & 0777) == 0644,
	       "the cached file, 0644");
	TAP_OK(rbad.calls == 1 && rbad.status == -TE_EINVALID && strstr(rbad.err, "sha256 mismatch"),
	       "a wrong sha256: %s", rbad.err);
	TAP_OK(te_images_lookup(&c, a.sha256, got, sizeof(got)) == 0 && !strcmp(got, ra.path), "lookup");

	/* Cached: answered on the next turn, no download. */
	te_images_pull(&c, &a, "file-a", on_done, &rc);
	TAP_EQ_INT(rc.calls, 0, "cached: not called back at once");
	turn_until(&loop, &rc.calls, 1);
	TAP_OK(rc.calls == 1 && rc.status == 0 && c.pulled == 1, "cached: answered without a download");

	/* Cancelled: the callback never runs. */
	rb = (struct result){ 0 };
	id1 = te_images_pull(&c, &b, "file-b", on_done, &rb);
	te_images_cancel(&c, (unsigned)id1);
	for (int i = 0; i < 50; i++)
		te_loop_turn(&loop, 10);
	TAP_EQ_INT(rb.calls, 0, "a cancelled pull is not called back");
	id1 = te_images_pull(&c, &b, "file-b", on_done, &rb);
	turn_until(&loop, &rb.calls, 1);
	TAP_OK(rb.calls == 1 && rb.status == 0, "pulled b");

	/* GC: a is referenced, b is not. */
	TAP_EQ_INT(te_images_ref(&c, a.sha256), 0, "ref a");
	fake_now += 1000;
	TAP_EQ_INT(te_images_gc(&c, NULL, NULL), 1, "past the grace: one removed");
	TAP_OK(te_images_lookup(&c, b.sha256, got, sizeof(got)) == -ENOENT, "b is gone");
	TAP_OK(te_images_lookup(&c, a.sha256, got, sizeof(got)) == 0, "a, referenced, stays");
	TAP_EQ_INT(te_images_unref(&c, a.sha256), 0, "unref a");
	fake_now += 50;
	TAP_EQ_INT(te_images_gc(&c, NULL, NULL), 0, "within the grace after the last use: kept");

	/* The index and last use survive a reopen. */
	te_images_close(&c);
	TAP_OK(te_images_open(&c, &loop, &cfg, err, sizeof(err)) == 0, "reopen");
	c.now = clock_fake;
	TAP_OK(te_images_lookup(&c, a.sha256, got, sizeof(got)) == 0, "a is indexed again");
	TAP_EQ_INT(te_images_gc(&c, NULL, NULL), 0, "the grace still counts from the last use");
	fake_now += 60;
	TAP_EQ_INT(te_images_gc(&c, NULL, NULL), 1, "then it goes");
	te_images_close(&c);
	te_loop_close(&loop);
	snprintf(url, sizeof(url), "rm -rf %s", dir);
	TAP_OK(system(url) == 0, "cleanup");
}

static int load_config(const char *text, struct te_config *cfg, char *msg, size_t cap)
{
	char path[] = "/tmp/te-imgcfg-XXXXXX";
	struct te_diag diag = { 0 };
	int fd = mkstemp(path), r;
	FILE *f = fdopen(fd, "w");

	fputs(text, f);
	fclose(f);
	te_config_defaults(cfg);
	r = te_config_load(cfg, path, &diag);
	unlink(path);
	snprintf(msg, cap, "%u problems", diag.errors);
	return r;
}

static void test_config(void)
{
	struct te_config cfg;
	char msg[64];

	te_config_defaults(&cfg);
	TAP_OK(cfg.images.cache_bytes == 512ull << 20 && cfg.images.max_image_bytes == 256ull << 20 &&
	       cfg.images.gc_grace_secs == 86400 && cfg.images.timeout_secs == 600 &&
	       cfg.images.nkeys == 0 && !cfg.images.ca_file[0], "images defaults");
	TAP_OK(load_config("{\"images\": {\"cacheBytes\": 2097152, \"gcGraceSecs\": 5, "
			   "\"maxImageBytes\": 1048576, \"timeoutSecs\": 7, "
			   "\"trustedKeys\": [\"/k1.pem\", \"/k2.pem\"], \"caFile\": \"/ca.pem\"}}",
			   &cfg, msg, sizeof(msg)) == 0 &&
	       cfg.images.cache_bytes == 2097152 && cfg.images.gc_grace_secs == 5 &&
	       cfg.images.max_image_bytes == 1048576 && cfg.images.timeout_secs == 7 &&
	       cfg.images.nkeys == 2 && !strcmp(cfg.images.trusted_keys[1], "/k2.pem") &&
	       !strcmp(cfg.images.ca_file, "/ca.pem"), "images keys loaded");
	TAP_EQ_INT(load_config("{\"images\": {\"cacheByte\": 1}}", &cfg, msg, sizeof(msg)),
		   -TE_EINVALID, "unknown images key refused");
	TAP_EQ_INT(load_config("{\"images\": {\"maxImageBytes\": 1000}}", &cfg, msg, sizeof(msg)),
		   -TE_EINVALID, "maxImageBytes under 1 MiB refused");
	TAP_EQ_INT(load_config("{\"images\": {\"trustedKeys\": [1]}}", &cfg, msg, sizeof(msg)),
		   -TE_EINVALID, "a trusted key must be a path");
	TAP_EQ_INT(load_config("{\"images\": {\"trustedKeys\": [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"]}}",
			       &cfg, msg, sizeof(msg)), -TE_EINVALID, "at most 8 trusted keys");
}

int main(void)
{
	test_config();
	test_plan();
	test_api();
	return tap_done();
}
