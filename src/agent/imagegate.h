/* The image gate: a deployment waits here until every image its modules
 * name by URL is in the image cache (src/images/images.h); the modules
 * that run keep running meanwhile: download, then swap (docs/images.md).
 *
 * te_gate_prepare() resolves each URL module of a manifest to its cached
 * file (spec->image becomes the file, spec->image_kind what it is). When
 * something is missing it starts the pulls and keeps the manifest; once
 * they have all succeeded, ready() gets it. A failed pull calls failed()
 * and tries again later (30 s doubling to an hour) while the deployment is
 * still the one wanted; a newer te_gate_prepare() replaces it.
 *
 * The gate also holds the cache references (te_images_ref) of the running
 * deployment and of the one before it (what a rollback returns to), so the
 * cache's GC never removes them. */
#ifndef TE_IMAGEGATE_H
#define TE_IMAGEGATE_H

#include "core/loop.h"
#include "images/images.h"
#include "manifest.h"

#define TE_GATE_PULLS_MAX 32

struct te_imagegate;

/* The manifest is the callee's from here on. */
typedef void (*te_gate_ready_fn)(struct te_imagegate *g, struct te_manifest *m, int tag);
/* The manifest stays with the gate, for the retry. */
typedef void (*te_gate_failed_fn)(struct te_imagegate *g, int tag, const char *err);

struct te_gate_pull {
	struct te_imagegate *g;
	unsigned module;            /* index in the pending manifest */
	unsigned id;                /* te_images_pull's */
};

struct te_gate_refs {
	char (*sha)[65];
	unsigned n;
};

struct te_imagegate {
	struct te_images *images;   /* NULL: no cache (a URL image fails) */
	struct te_loop *loop;
	te_gate_ready_fn ready;
	te_gate_failed_fn failed;
	void *ctx;
	struct te_manifest *pending;
	int tag;
	struct te_gate_pull pulls[TE_GATE_PULLS_MAX];
	unsigned npulls, left;
	char err[512];              /* the first failure of this round */
	struct te_timer retry;
	unsigned backoff_s;
	struct te_gate_refs held[2]; /* [0] running, [1] the one before */
};

void te_gate_init(struct te_imagegate *g, struct te_loop *loop, struct te_images *images);

/* 0: m is ready now (nothing to pull); 1: pulls started, ready() or
 * failed() follow and the gate owns m; < 0: m cannot run (an image not
 * cached with imagePullPolicy never, no image cache, an image of the wrong
 * kind for its createOptions), err says why and m stays the caller's. A
 * pending deployment is dropped first (its pulls cancelled). */
int te_gate_prepare(struct te_imagegate *g, struct te_manifest *m, int tag, char *err,
		    size_t cap);

/* Is a deployment waiting for images? Its tag in *tag. */
bool te_gate_waiting(const struct te_imagegate *g, int *tag);

/* m runs now: reference its images, keep the previous deployment's. */
void te_gate_applied(struct te_imagegate *g, const struct te_manifest *m);

void te_gate_free(struct te_imagegate *g);

#endif
