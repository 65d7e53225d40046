/* The image cache (images.h): the index, pulls on worker threads, refs,
 * GC. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/fs.h"
#include "core/log.h"
#include "images.h"
#include "version.h"

static int64_t wall_now(void)
{
	return (int64_t)time(NULL);
}

static void img_path(const struct te_images *c, const char *sub, const char *sha, const char *ext,
		     char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s/%s%s", c->dir, sub, sha, ext);
}

static bool is_sha_name(const char *s)
{
	if (strlen(s) != TE_SHA256_HEX)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static struct te_image *img_find(struct te_images *c, const char *sha)
{
	for (unsigned i = 0; i < TE_IMAGES_MAX; i++)
		if (c->img[i].used && !strcmp(c->img[i].sha256, sha))
			return &c->img[i];
	return NULL;
}

/* The meta file: the URL, and "last used" as its mtime. Best effort. */
static void meta_write(struct te_images *c, const struct te_image *im, bool url_too)
{
	char path[PATH_MAX + 80];
	struct timespec ts[2] = { { im->last_used, 0 }, { im->last_used, 0 } };
	int fd;

	img_path(c, "meta", im->sha256, "", path, sizeof(path));
	if (url_too) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0) {
			if (im->url && write(fd, im->url, strlen(im->url)) < 0)
				te_warn("images", "%s: %s", path, strerror(errno));
			close(fd);
		}
	}
	utimensat(AT_FDCWD, path, ts, 0);
}

static void meta_read(struct te_images *c, struct te_image *im, int64_t fallback)
{
	char path[PATH_MAX + 80];
	struct stat st;
	ssize_t n;
	int fd;

	img_path(c, "meta", im->sha256, "", path, sizeof(path));
	im->last_used = fallback;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0)
		im->last_used = st.st_mtim.tv_sec;
	{
		char url[TE_IMAGES_URL_MAX];

		n = read(fd, url, sizeof(url) - 1);
		url[n > 0 ? n : 0] = '\0';
		free(im->url);
		im->url = n > 0 ? strdup(url) : NULL;
	}
	close(fd);
}

/* An entry no longer in the cache. */
static void img_forget(struct te_image *im)
{
	free(im->url);
	im->url = NULL;
	im->used = false;
}

static struct te_image *img_add(struct te_images *c, const char *sha)
{
	for (unsigned i = 0; i < TE_IMAGES_MAX; i++) {
		struct te_image *im = &c->img[i];

		if (!im->used) {
			memset(im, 0, sizeof(*im));
			im->used = true;
			snprintf(im->sha256, sizeof(im->sha256), "%s", sha);
			return im;
		}
	}
	return NULL;
}

/* Index sha256/ at start; anything there that is not an image goes. */
static void index_scan(struct te_images *c)
{
	char dir[PATH_MAX + 16], path[PATH_MAX + 96];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/sha256", c->dir);
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		struct te_image *im;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (!is_sha_name(de->d_name) || lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
			te_warn("images", "%s: not a cached image, removed", path);
			unlink(path);
			continue;
		}
		if (!(im = img_add(c, de->d_name))) {
			te_warn("images", "more than %d cached images: %s not indexed", TE_IMAGES_MAX, path);
			continue;
		}
		im->size = (uint64_t)st.st_size;
		meta_read(c, im, st.st_mtim.tv_sec);
	}
	if (d)
		closedir(d);
}

static void on_gc_timer(struct te_loop *l, struct te_timer *t)
{
	struct te_images *c = (struct te_images *)((char *)t - offsetof(struct te_images, gc_timer));

	te_images_gc(c, NULL, NULL);
	te_timer_set(l, t, TE_IMAGES_GC_EVERY_MS);
}

static void on_event(struct te_loop *l, struct te_event *ev, uint64_t count);

static int64_t good_time(const char *state_dir)
{
	char path[PATH_MAX + 32], *buf = NULL;
	size_t len;
	long long v = 0;

	snprintf(path, sizeof(path), "%s/last-good-time", state_dir);
	if (te_read_file(path, 32, &buf, &len) == 0)
		v = strtoll(buf, NULL, 10);
	free(buf);
	return v > (long long)TE_BUILD_EPOCH ? (int64_t)v : (int64_t)TE_BUILD_EPOCH;
}

static int open_dirs(struct te_images *c, char *err, size_t cap)
{
	static const char *const subs[] = { "sha256", "meta", "tmp" };
	char path[PATH_MAX + 16];
	int r;

	for (unsigned i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", c->dir, subs[i]);
		if ((r = te_mkdir_p(path, 0700, 0700)) < 0) {
			snprintf(err, cap, "%s: %s", path, te_strerror(r));
			return r;
		}
	}
	return 0;
}

int te_images_open(struct te_images *c, struct te_loop *loop, const struct te_config *cfg,
		   char *err, size_t cap)
{
	const char *ca = cfg->images.ca_file[0] ? cfg->images.ca_file : cfg->upstream.ca_file;
	int r;

	memset(c, 0, sizeof(*c));
	c->loop = loop;
	c->now = wall_now;
	c->cache_bytes = cfg->images.cache_bytes;
	c->max_image_bytes = cfg->images.max_image_bytes;
	c->grace_secs = cfg->images.gc_grace_secs;
	c->timeout_secs = cfg->images.timeout_secs;
	c->time_floor = good_time(cfg->state_dir);
	snprintf(c->ca_file, sizeof(c->ca_file), "%s", ca);
	if (snprintf(c->dir, sizeof(c->dir), "%s/images", cfg->state_dir) >= (int)sizeof(c->dir) - 80) {
		snprintf(err, cap, "state dir path too long");
		return -ENAMETOOLONG;
	}
	for (unsigned i = 0; i < cfg->images.nkeys; i++)
		if ((r = te_imgkey_load(cfg->images.trusted_keys[i], &c->keys[c->nkeys++], err, cap)) < 0)
			return r;
	if ((r = open_dirs(c, err, cap)) < 0)
		return r;
	/* Mapped rather than calloc'd: its ~100 KiB stay unresident (zero
	 * pages) until pulls use them. */
	c->jobs = mmap(NULL, TE_IMAGES_PULLS * sizeof(*c->jobs), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->jobs == MAP_FAILED) {
		c->jobs = NULL;
		snprintf(err, cap, "out of memory");
		return -ENOMEM;
	}
	c->ev.cb = on_event;
	if ((r = te_event_open(loop, &c->ev)) < 0) {
		munmap(c->jobs, TE_IMAGES_PULLS * sizeof(*c->jobs));
		c->jobs = NULL;
		snprintf(err, cap, "eventfd: %s", te_strerror(r));
		return r;
	}
	index_scan(c);
	c->gc_timer.cb = on_gc_timer;
	te_timer_set(loop, &c->gc_timer, TE_IMAGES_GC_EVERY_MS);
	c->open = true;
	return 0;
}

void te_images_close(struct te_images *c)
{
	if (!c->open)
		return;
	for (unsigned i = 0; i < TE_IMAGES_PULLS; i++) {
		struct te_images_job *j = &c->jobs[i];

		if (j->used && j->threaded) {
			atomic_store(&j->cancel, 1);
			pthread_join(j->thread, NULL);
		}
	}
	te_timer_cancel(c->loop, &c->gc_timer);
	te_event_close(c->loop, &c->ev);
	for (unsigned i = 0; i < TE_IMAGES_MAX; i++)
		if (c->img[i].used)
			img_forget(&c->img[i]);
	munmap(c->jobs, TE_IMAGES_PULLS * sizeof(*c->jobs));
	c->jobs = NULL;
	c->open = false;
}

/* --- pulls --- */

/* The worker: download, then move the verified file into the cache. */
static void *job_main(void *arg)
{
	struct te_images_job *j = arg;
	struct te_images *c = j->c;
	char dir[PATH_MAX + 16];
	int r = te_fetch_run(&j->fetch), dfd;

	img_path(c, "sha256", j->fetch.ref.sha256, "", j->path, sizeof(j->path));
	if (r == 0 && (chmod(j->fetch.part_path, 0644) < 0 || rename(j->fetch.part_path, j->path) < 0)) {
		r = -errno;
		snprintf(j->fetch.err, sizeof(j->fetch.err), "%s: %s", j->path, strerror(errno));
	}
	if (r == 0) {
		snprintf(dir, sizeof(dir), "%s/sha256", c->dir);
		if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	j->status = r;
	atomic_store(&j->finished, true);
	te_event_signal(&c->ev);
	return NULL;
}

static void job_finish(struct te_images *c, struct te_images_job *j)
{
	struct te_images_waiter w[TE_IMAGES_WAITERS];
	unsigned nw = j->nw;
	int status = j->status;
	char err[TE_FETCH_ERR_MAX], path[PATH_MAX];
	struct te_image *im;

	if (j->threaded)
		pthread_join(j->thread, NULL);
	if (j->threaded && j->status == 0) {
		im = img_find(c, j->fetch.ref.sha256);
		if (!im && !(im = img_add(c, j->fetch.ref.sha256)))
			te_warn("images", "index full: %s not indexed", j->fetch.ref.sha256);
		if (im) {
			im->size = j->fetch.size;
			im->last_used = c->now();
			free(im->url);
			im->url = strdup(j->url);
			meta_write(c, im, true);
		}
		c->pulled++;
		te_info("images", "pulled %s (%llu bytes, %llu transferred, %u requests)", j->url,
			(unsigned long long)j->fetch.size, (unsigned long long)j->fetch.net_bytes,
			j->fetch.requests);
	} else if (status) {
		c->failed++;
		te_warn("images", "pull of %s failed: %s", j->url, j->fetch.err);
	} else if ((im = img_find(c, j->fetch.ref.sha256))) {
		im->last_used = c->now(); /* already cached */
		meta_write(c, im, false);
	}
	snprintf(err, sizeof(err), "%s", status ? j->fetch.err : "");
	snprintf(path, sizeof(path), "%s", j->path);
	memcpy(w, j->w, sizeof(w));
	j->used = false; /* before the callbacks, which may pull again */
	for (unsigned i = 0; i < nw; i++)
		w[i].done(w[i].ctx, status, status ? NULL : path, err);
	if (j->threaded && status == 0)
		te_images_gc(c, NULL, NULL);
}

static void on_event(struct te_loop *l, struct te_event *ev, uint64_t count)
{
	struct te_images *c = (struct te_images *)((char *)ev - offsetof(struct te_images, ev));

	for (unsigned i = 0; i < TE_IMAGES_PULLS; i++) {
		struct te_images_job *j = &c->jobs[i];

		if (j->used && atomic_load(&j->finished))
			job_finish(c, j);
	}
}

static struct te_images_job *job_slot(struct te_images *c)
{
	for (unsigned i = 0; i < TE_IMAGES_PULLS; i++)
		if (!c->jobs[i].used)
			return &c->jobs[i];
	return NULL;
}

static int job_wait(struct te_images *c, struct te_images_job *j, te_images_done_fn done, void *ctx)
{
	if (j->nw == TE_IMAGES_WAITERS)
		return -EBUSY;
	if (++c->next_id == 0 || c->next_id > INT32_MAX)
		c->next_id = 1;
	j->w[j->nw++] = (struct te_images_waiter){ done, ctx, c->next_id };
	return (int)c->next_id;
}

/* An answer without a download, delivered on the next loop turn. */
static int job_immediate(struct te_images *c, const struct te_image_ref *ref, const char *url,
			 int status, const char *err, te_images_done_fn done, void *ctx)
{
	struct te_images_job *j = job_slot(c);

	if (!j)
		return -EBUSY;
	memset(j, 0, sizeof(*j));
	j->used = true;
	j->c = c;
	j->status = status;
	snprintf(j->url, sizeof(j->url), "%s", url);
	snprintf(j->fetch.err, sizeof(j->fetch.err), "%s", err);
	img_path(c, "sha256", ref->sha256, "", j->path, sizeof(j->path));
	atomic_store(&j->finished, true);
	te_event_signal(&c->ev);
	return job_wait(c, j, done, ctx);
}

/* The signature rules: 0, or a message in err. */
static int sig_check(const struct te_images *c, const struct te_image_ref *ref, char *err,
		     size_t cap)
{
	uint8_t hash[32];

	if (!ref->siglen && !c->nkeys)
		return 0;
	if (!ref->siglen) {
		snprintf(err, cap, "signature required: images.trustedKeys is set and the URL has no #sig=");
		return -TE_EINVALID;
	}
	if (!c->nkeys) {
		snprintf(err, cap, "the URL has a sig= but images.trustedKeys is empty: cannot verify it");
		return -TE_EINVALID;
	}
	for (unsigned i = 0; i < 32; i++) {
		unsigned hi = (unsigned)ref->sha256[2 * i], lo = (unsigned)ref->sha256[2 * i + 1];

		hash[i] = (uint8_t)(((hi <= '9' ? hi - '0' : hi - 'a' + 10) << 4) |
				    (lo <= '9' ? lo - '0' : lo - 'a' + 10));
	}
	if (!te_imgsig_verify(hash, ref->sig, ref->siglen, c->keys, c->nkeys)) {
		snprintf(err, cap, "signature check failed: no trusted key verifies sha256 %s", ref->sha256);
		return -TE_EINVALID;
	}
	return 0;
}

static int job_start(struct te_images *c, const struct te_image_ref *ref, const char *url,
		     te_images_done_fn done, void *ctx)
{
	struct te_images_job *j = job_slot(c);
	int r;

	if (!j)
		return -EBUSY;
	memset(j, 0, sizeof(*j));
	j->c = c;
	snprintf(j->url, sizeof(j->url), "%s", url);
	j->fetch.ref = *ref;
	img_path(c, "tmp", ref->sha256, ".part", j->fetch.part_path, sizeof(j->fetch.part_path));
	j->fetch.ca_file = c->ca_file[0] ? c->ca_file : NULL;
	j->fetch.time_floor = c->time_floor;
	j->fetch.max_bytes = c->max_image_bytes;
	j->fetch.timeout_secs = c->timeout_secs;
	j->fetch.idle_secs = c->timeout_secs < 60 ? c->timeout_secs : 60;
	j->fetch.version = TE_VERSION;
	j->fetch.cancel = &j->cancel;
	if ((r = pthread_create(&j->thread, NULL, job_main, j)) != 0)
		return -r;
	j->used = true;
	j->threaded = true;
	return job_wait(c, j, done, ctx);
}

int te_images_pull(struct te_images *c, const struct te_image_ref *ref, const char *url_text,
		   te_images_done_fn done, void *ctx)
{
	char err[TE_FETCH_ERR_MAX], path[PATH_MAX];
	int r = sig_check(c, ref, err, sizeof(err));

	if (r < 0)
		return job_immediate(c, ref, url_text, r, err, done, ctx);
	if (te_images_lookup(c, ref->sha256, path, sizeof(path)) == 0)
		return job_immediate(c, ref, url_text, 0, "", done, ctx);
	for (unsigned i = 0; i < TE_IMAGES_PULLS; i++) {
		struct te_images_job *j = &c->jobs[i];

		/* One download per sha256 (one part file): a cancelled one is
		 * taken back (if it saw the cancel already, this waiter gets
		 * -ECANCELED); a finished one answers this waiter too. */
		if (j->used && j->threaded && !strcmp(j->fetch.ref.sha256, ref->sha256)) {
			atomic_store(&j->cancel, 0);
			return job_wait(c, j, done, ctx);
		}
	}
	return job_start(c, ref, url_text, done, ctx);
}

void te_images_cancel(struct te_images *c, unsigned id)
{
	for (unsigned i = 0; i < TE_IMAGES_PULLS; i++) {
		struct te_images_job *j = &c->jobs[i];

		for (unsigned k = 0; j->used && k < j->nw; k++) {
			if (j->w[k].id != id)
				continue;
			j->w[k] = j->w[--j->nw];
			if (!j->nw && j->threaded)
				atomic_store(&j->cancel, 1);
			return;
		}
	}
}

/* --- the cache --- */

int te_images_lookup(struct te_images *c, const char *sha256, char *path, size_t cap)
{
	struct te_image *im = img_find(c, sha256);
	struct stat st;

	if (!im)
		return -ENOENT;
	img_path(c, "sha256", sha256, "", path, cap);
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
		te_warn("images", "%s vanished from the cache", path);
		if (!im->refs)
			img_forget(im);
		return -ENOENT;
	}
	return 0;
}

static int touch(struct te_images *c, const char *sha256, int delta)
{
	struct te_image *im = img_find(c, sha256);

	if (!im)
		return -ENOENT;
	if (delta > 0)
		im->refs++;
	else if (delta < 0 && im->refs)
		im->refs--;
	im->last_used = c->now();
	meta_write(c, im, false);
	return 0;
}

int te_images_ref(struct te_images *c, const char *sha256)
{
	return touch(c, sha256, 1);
}

int te_images_unref(struct te_images *c, const char *sha256)
{
	return touch(c, sha256, -1);
}

void te_images_gc_plan(const struct te_image *img, unsigned n, int64_t now, unsigned grace_secs,
		       uint64_t quota, bool *remove)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < n; i++) {
		remove[i] = img[i].used && !img[i].refs && now - img[i].last_used >= (int64_t)grace_secs;
		if (img[i].used && !remove[i])
			total += img[i].size;
	}
	/* Over quota: the least recently used unreferenced ones go, one by
	 * one (n is small: quadratic is fine). */
	while (total > quota) {
		int lru = -1;

		for (unsigned i = 0; i < n; i++)
			if (img[i].used && !img[i].refs && !remove[i] &&
			    (lru < 0 || img[i].last_used < img[lru].last_used))
				lru = (int)i;
		if (lru < 0)
			break; /* what is left is referenced */
		remove[lru] = true;
		total -= img[lru].size;
	}
}

static bool pulling(const struct te_images *c, const char *sha)
{
	for (unsigned i = 0; i < TE_IMAGES_PULLS; i++)
		if (c->jobs[i].used && c->jobs[i].threaded && !strcmp(c->jobs[i].fetch.ref.sha256, sha))
			return true;
	return false;
}

/* Parts nobody resumed within the grace. */
static void gc_parts(struct te_images *c)
{
	char dir[PATH_MAX + 16], path[PATH_MAX + 96], sha[TE_SHA256_HEX + 1];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/tmp", c->dir);
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(sha, sizeof(sha), "%s", de->d_name);
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (pulling(c, sha) || lstat(path, &st) < 0 ||
		    c->now() - st.st_mtim.tv_sec < (int64_t)c->grace_secs)
			continue;
		unlink(path);
	}
	if (d)
		closedir(d);
}

unsigned te_images_gc(struct te_images *c, void (*each)(void *ctx, const struct te_image *im),
		      void *ctx)
{
	bool remove[TE_IMAGES_MAX];
	char path[PATH_MAX + 96];
	unsigned n = 0;

	te_images_gc_plan(c->img, TE_IMAGES_MAX, c->now(), c->grace_secs, c->cache_bytes, remove);
	for (unsigned i = 0; i < TE_IMAGES_MAX; i++) {
		struct te_image *im = &c->img[i];

		if (!remove[i])
			continue;
		img_path(c, "sha256", im->sha256, "", path, sizeof(path));
		if (unlink(path) < 0 && errno != ENOENT) {
			te_warn("images", "cannot remove %s: %s", path, strerror(errno));
			continue;
		}
		img_path(c, "meta", im->sha256, "", path, sizeof(path));
		unlink(path);
		te_info("images", "removed %s (%llu bytes, unused for %lld s)", im->sha256,
			(unsigned long long)im->size, (long long)(c->now() - im->last_used));
		if (each)
			each(ctx, im);
		img_forget(im);
		n++;
	}
	c->removed += n;
	gc_parts(c);
	return n;
}

void te_images_json(const struct te_images *c, struct te_jw *w)
{
	uint64_t bytes = 0;

	te_jw_obj_open(w);
	te_jw_key(w, "images");
	te_jw_arr_open(w);
	for (unsigned i = 0; i < TE_IMAGES_MAX; i++) {
		const struct te_image *im = &c->img[i];

		if (!im->used)
			continue;
		bytes += im->size;
		te_jw_obj_open(w);
		te_jw_kstr(w, "sha256", im->sha256);
		te_jw_key(w, "size");
		te_jw_uint(w, im->size);
		te_jw_kint(w, "refs", im->refs);
		te_jw_kint(w, "lastUsed", im->last_used);
		te_jw_kstr(w, "url", im->url ? im->url : "");
		te_jw_obj_close(w);
	}
	te_jw_arr_close(w);
	te_jw_key(w, "bytes");
	te_jw_uint(w, bytes);
	te_jw_key(w, "quotaBytes");
	te_jw_uint(w, c->cache_bytes);
	te_jw_key(w, "pulling");
	te_jw_arr_open(w);
	for (unsigned i = 0; i < TE_IMAGES_PULLS; i++) {
		if (!c->jobs[i].used || !c->jobs[i].threaded)
			continue;
		te_jw_obj_open(w);
		te_jw_kstr(w, "sha256", c->jobs[i].fetch.ref.sha256);
		te_jw_kstr(w, "url", c->jobs[i].url);
		te_jw_obj_close(w);
	}
	te_jw_arr_close(w);
	te_jw_obj_close(w);
}
