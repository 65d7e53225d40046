/* The image gate: deployments wait for their URL images (imagegate.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/log.h"
#include "image_mount.h"
#include "imagegate.h"

#define BACKOFF_FIRST_S 30
#define BACKOFF_MAX_S 3600

void te_gate_init(struct te_imagegate *g, struct te_loop *loop, struct te_images *images)
{
	memset(g, 0, sizeof(*g));
	g->loop = loop;
	g->images = images;
	g->backoff_s = BACKOFF_FIRST_S;
}

/* One URL module: its cached file, or *missing. 0 or < 0 with err. */
static int resolve(struct te_imagegate *g, struct te_manifest *m, struct te_module_spec *ms,
		   bool *missing, char *err, size_t cap)
{
	char path[PATH_MAX];
	enum te_image_kind k;
	const char *why = NULL;
	int r;

	if (!g->images) {
		snprintf(err, cap, "module %s: image %s: the image cache is not available (see the log)",
			 ms->name, ms->image_url);
		return -ENOENT;
	}
	if (te_images_lookup(g->images, ms->image_sha256, path, sizeof(path)) < 0) {
		if (!ms->pull_never) {
			*missing = true;
			return 0;
		}
		snprintf(err, cap, "module %s: image %s is not in the cache and its imagePullPolicy is never",
			 ms->name, ms->image_url);
		return -ENOENT;
	}
	if ((r = te_image_kind_of(path, &k)) < 0) {
		snprintf(err, cap, "module %s: image %s: %s", ms->name, path, te_strerror(r));
		return r;
	}
	if (k == TE_IMAGE_EXEC && ms->writable != TE_WRITABLE_NONE)
		why = "is an executable; a writable layer needs a directory or squashfs image";
	else if (k != TE_IMAGE_EXEC && ms->rootfs)
		why = "is a root filesystem: createOptions.rootfs cannot go with it";
	else if (k != TE_IMAGE_EXEC && !(ms->namespaces & TE_NS_MOUNT))
		why = "is a root filesystem: it needs the \"mount\" namespace";
	/* The cache keeps files 0644; an executable image is run as it is. */
	else if (k == TE_IMAGE_EXEC && chmod(path, 0755) < 0)
		why = strerror(errno);
	if (why) {
		snprintf(err, cap, "module %s: image %s %s", ms->name, ms->image_url, why);
		return -TE_EINVALID;
	}
	if (!(ms->image = te_arena_strdup(&m->arena, path))) {
		snprintf(err, cap, "out of memory");
		return -ENOMEM;
	}
	ms->image_kind = k;
	return 0;
}

/* Every URL module of m: 0 when all are resolved, else the number
 * missing (> 0), or < 0 with err. */
static int resolve_all(struct te_imagegate *g, struct te_manifest *m, char *err, size_t cap)
{
	int missing = 0;

	for (unsigned i = 0; i < m->nmodules; i++) {
		struct te_module_spec *ms = &m->modules[i];
		bool miss = false;
		int r;

		if (!ms->image_url)
			continue;
		if ((r = resolve(g, m, ms, &miss, err, cap)) < 0)
			return r;
		missing += miss;
	}
	return missing;
}

static void cancel_pulls(struct te_imagegate *g)
{
	for (unsigned i = 0; i < g->npulls; i++)
		if (g->pulls[i].id)
			te_images_cancel(g->images, g->pulls[i].id);
	g->npulls = g->left = 0;
}

static void drop_pending(struct te_imagegate *g)
{
	cancel_pulls(g);
	te_timer_cancel(g->loop, &g->retry);
	if (g->pending) {
		te_manifest_free(g->pending);
		free(g->pending);
		g->pending = NULL;
	}
}

static void round_done(struct te_imagegate *g)
{
	struct te_manifest *m = g->pending;
	char err[sizeof(g->err)];
	int r;

	g->npulls = 0;
	if (g->err[0]) {
		te_timer_set(g->loop, &g->retry, g->backoff_s * 1000ull);
		te_warn("images", "deployment waits: %s (trying again in %u s)", g->err,
			g->backoff_s);
		snprintf(err, sizeof(err), "%s", g->err);
		g->backoff_s = g->backoff_s * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : g->backoff_s * 2;
		g->failed(g, g->tag, err);
		return;
	}
	r = resolve_all(g, m, err, sizeof(err));
	if (r > 0)  /* collected meanwhile: unlikely, not impossible */
		snprintf(err, sizeof(err), "an image left the cache before it was used");
	g->pending = NULL;
	g->backoff_s = BACKOFF_FIRST_S;
	if (r) {
		te_manifest_free(m);
		free(m);
		g->failed(g, g->tag, err);
		return;
	}
	te_info("images", "every image is here: applying the deployment");
	g->ready(g, m, g->tag);
}

static void on_pulled(void *ctx, int status, const char *path, const char *err)
{
	struct te_gate_pull *p = ctx;
	struct te_imagegate *g = p->g;

	p->id = 0;
	if (status < 0 && !g->err[0])
		snprintf(g->err, sizeof(g->err), "module %s: image %s: %s",
			 g->pending->modules[p->module].name, g->pending->modules[p->module].image_url,
			 err && err[0] ? err : te_strerror(status));
	if (--g->left == 0)
		round_done(g);
}

/* Pull what the pending manifest misses. 0 (started) or < 0 with err. */
static int start_pulls(struct te_imagegate *g, char *err, size_t cap)
{
	struct te_manifest *m = g->pending;
	struct te_image_ref *ref = malloc(sizeof(*ref));
	char path[PATH_MAX];
	int r = 0;

	if (!ref) {
		snprintf(err, cap, "out of memory");
		return -ENOMEM;
	}
	g->err[0] = '\0';
	g->npulls = g->left = 0;
	for (unsigned i = 0; i < m->nmodules && r >= 0; i++) {
		struct te_module_spec *ms = &m->modules[i];
		struct te_gate_pull *p = &g->pulls[g->npulls];

		if (!ms->image_url ||
		    te_images_lookup(g->images, ms->image_sha256, path, sizeof(path)) == 0)
			continue;
		if (g->npulls == TE_GATE_PULLS_MAX) {
			snprintf(err, cap, "more than %d images to pull in one deployment",
				 TE_GATE_PULLS_MAX);
			r = -TE_ELIMIT;
		} else if (te_image_ref_parse(ms->image_url, ref, err, cap) < 0) {
			r = -TE_EINVALID;
		} else {
			*p = (struct te_gate_pull){ .g = g, .module = i };
			/* counted first: an immediate answer comes on a later turn,
			 * but keep left right whatever happens */
			g->left++;
			g->npulls++;
			r = te_images_pull(g->images, ref, ms->image_url, on_pulled, p);
			if (r < 0) {
				g->left--;
				g->npulls--;
				snprintf(err, cap, "module %s: image %s: cannot start the download: %s",
					 ms->name, ms->image_url, te_strerror(r));
			} else {
				p->id = (unsigned)r;
				te_info("images", "module %s: pulling %s", ms->name, ms->image_url);
			}
		}
	}
	free(ref);
	if (r < 0) {
		cancel_pulls(g);
		return r;
	}
	return 0;
}

static void on_retry(struct te_loop *loop, struct te_timer *t)
{
	struct te_imagegate *g = (struct te_imagegate *)((char *)t -
							 offsetof(struct te_imagegate, retry));
	char err[sizeof(g->err)];

	if (!g->pending)
		return;
	if (start_pulls(g, err, sizeof(err)) < 0) {
		snprintf(g->err, sizeof(g->err), "%s", err);
		round_done(g);
	} else if (g->left == 0) {
		round_done(g);  /* everything arrived some other way */
	}
}

int te_gate_prepare(struct te_imagegate *g, struct te_manifest *m, int tag, char *err,
		    size_t cap)
{
	int r;

	drop_pending(g);
	g->backoff_s = BACKOFF_FIRST_S;
	r = resolve_all(g, m, err, cap);
	if (r <= 0)
		return r;
	g->pending = m;
	g->tag = tag;
	g->retry.cb = on_retry;
	if ((r = start_pulls(g, err, cap)) < 0) {
		g->pending = NULL;
		return r;
	}
	return 1;
}

bool te_gate_waiting(const struct te_imagegate *g, int *tag)
{
	if (g->pending && tag)
		*tag = g->tag;
	return g->pending != NULL;
}

static void refs_drop(struct te_imagegate *g, struct te_gate_refs *r)
{
	for (unsigned i = 0; g->images && i < r->n; i++)
		te_images_unref(g->images, r->sha[i]);
	free(r->sha);
	*r = (struct te_gate_refs){ 0 };
}

void te_gate_applied(struct te_imagegate *g, const struct te_manifest *m)
{
	struct te_gate_refs now = { 0 };

	if (!g->images)
		return;
	now.sha = calloc(m->nmodules ? m->nmodules : 1, sizeof(*now.sha));
	for (unsigned i = 0; now.sha && i < m->nmodules; i++) {
		if (!m->modules[i].image_url)
			continue;
		memcpy(now.sha[now.n], m->modules[i].image_sha256, sizeof(now.sha[0]));
		te_images_ref(g->images, now.sha[now.n++]);
	}
	refs_drop(g, &g->held[1]);
	g->held[1] = g->held[0];
	g->held[0] = now;
}

void te_gate_free(struct te_imagegate *g)
{
	if (g->images)
		drop_pending(g);
	refs_drop(g, &g->held[0]);
	refs_drop(g, &g->held[1]);
}
