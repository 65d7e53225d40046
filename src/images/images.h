/* The image cache: module images downloaded from URLs, verified, and kept
 * content-addressed under <stateDir>/images (docs/images.md, "Download
 * and cache").
 *
 *   <stateDir>/images/sha256/<hex>   the images (0644; directories 0700)
 *   <stateDir>/images/meta/<hex>     the source URL; its mtime is the
 *                                    image's "last used" time (so GC after
 *                                    a restart still honours the grace)
 *   <stateDir>/images/tmp/<hex>.part downloads in progress (0600), kept
 *                                    after a cut so the next pull resumes
 *
 * Threads. Everything here runs on the loop's thread except the downloads:
 * each pull runs te_fetch_run (imgfetch.h) on its own worker thread, which
 * verifies the sha256, fsyncs and renames the file into sha256/, then wakes
 * the loop through an eventfd. Callbacks always run on the loop's thread,
 * never inside te_images_pull itself.
 *
 * Memory. Every table is sized at te_images_open: TE_IMAGES_MAX images,
 * TE_IMAGES_PULLS pulls in flight, TE_IMAGES_WAITERS waiters each.
 *
 * Reference counts are in memory: the supervisor refs an image while a
 * module uses it. An image with no refs is collectable gcGraceSecs after
 * its last use; when the cache is over cacheBytes, unreferenced images
 * are removed least recently used first even within the grace. A
 * referenced image is never removed. */
#ifndef TE_IMAGES_H
#define TE_IMAGES_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/json.h"
#include "core/loop.h"
#include "imgcodec.h"
#include "imgfetch.h"

#define TE_IMAGES_MAX 256
#define TE_IMAGES_PULLS 8
#define TE_IMAGES_WAITERS 8
#define TE_IMAGES_URL_MAX 1024     /* the source URL kept for `images` */
#define TE_IMAGES_GC_EVERY_MS (3600u * 1000)

/* status of a pull (done's status): 0, or the codes of te_fetch_run and
 * -TE_EINVALID for a signature refused, -EBUSY when every slot is taken. */
typedef void (*te_images_done_fn)(void *ctx, int status, const char *path, const char *err);

struct te_image {
	bool used;
	char sha256[TE_SHA256_HEX + 1];
	uint64_t size;
	int64_t last_used;            /* wall-clock seconds */
	unsigned refs;
	char *url;                    /* the source URL (heap), or NULL */
};

struct te_images;

struct te_images_waiter {
	te_images_done_fn done;
	void *ctx;
	unsigned id;
};

struct te_images_job {
	bool used;
	bool threaded;                /* a worker runs (else: an immediate answer) */
	struct te_images *c;
	pthread_t thread;
	atomic_int cancel;
	atomic_bool finished;
	int status;                   /* set by the worker before finished */
	char path[PATH_MAX];          /* the image in the cache on success */
	char url[TE_IMAGES_URL_MAX];
	struct te_fetch fetch;
	struct te_images_waiter w[TE_IMAGES_WAITERS];
	unsigned nw;
};

struct te_images {
	struct te_loop *loop;
	struct te_event ev;           /* workers -> loop */
	struct te_timer gc_timer;
	char dir[PATH_MAX];           /* <stateDir>/images */
	uint64_t cache_bytes, max_image_bytes;
	unsigned grace_secs, timeout_secs;
	char ca_file[PATH_MAX];       /* "" = the system bundle */
	int64_t time_floor;
	struct te_imgkey keys[TE_IMAGES_KEYS_MAX];
	unsigned nkeys;
	int64_t (*now)(void);         /* wall-clock seconds; tests replace it */
	struct te_image img[TE_IMAGES_MAX];
	struct te_images_job *jobs;   /* TE_IMAGES_PULLS, allocated at open */
	unsigned next_id;
	uint64_t pulled, failed, removed;
	bool open;
};

/* Create the directories, load the trusted keys, index what the cache
 * holds (and remove files that are not images), start the GC timer. The
 * CA file is cfg->images.caFile, else cfg->upstream.caFile, else the
 * system bundle. 0, or a negative code with a message in err. */
int te_images_open(struct te_images *c, struct te_loop *loop, const struct te_config *cfg,
		   char *err, size_t cap);

/* Cancel the pulls (their callbacks do not run), wait for the workers. */
void te_images_close(struct te_images *c);

/* Pull ref (parsed from url_text, kept for listings) into the cache and
 * call done(ctx, status, path, err) on the loop's thread: status 0 with the
 * image's path in the cache, else a negative code and a one-line err.
 * Already cached: done with 0 on the next loop turn. The signature is
 * checked first: sig= needs images.trustedKeys, and with keys configured
 * a signature is required. Concurrent pulls of one sha256 share one
 * download. Returns the pull's id (> 0, for te_images_cancel) or -EBUSY
 * when TE_IMAGES_PULLS different images are being pulled already. */
int te_images_pull(struct te_images *c, const struct te_image_ref *ref, const char *url_text,
		   te_images_done_fn done, void *ctx);

/* Forget pull id: its callback will not run. The last waiter of a
 * download cancelling stops the download (its part is kept to resume). */
void te_images_cancel(struct te_images *c, unsigned id);

/* imagePullPolicy never: the path of a cached image. 0 or -ENOENT. */
int te_images_lookup(struct te_images *c, const char *sha256, char *path, size_t cap);

/* A module starts / stops using a cached image. Both mark it used now.
 * 0 or -ENOENT (not cached). */
int te_images_ref(struct te_images *c, const char *sha256);
int te_images_unref(struct te_images *c, const char *sha256);

/* Collect now: the images removed are passed to each (may be NULL) before
 * they are forgotten. Also removes stale parts (older than the grace and
 * not being downloaded). Returns how many images were removed. */
unsigned te_images_gc(struct te_images *c, void (*each)(void *ctx, const struct te_image *im),
		      void *ctx);

/* The decision alone, for tests: remove[i] for img[0..n) at time now.
 * Unused slots and referenced images are never marked. */
void te_images_gc_plan(const struct te_image *img, unsigned n, int64_t now, unsigned grace_secs,
		       uint64_t quota, bool *remove);

/* {"images":[{"sha256","size","refs","lastUsed","url"}...],"bytes":N,
 *  "quotaBytes":N,"pulling":[{"sha256","url"}...]} */
void te_images_json(const struct te_images *c, struct te_jw *w);

#endif
