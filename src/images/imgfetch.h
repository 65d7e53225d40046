/* One image download, run to the end on the calling thread (the cache
 * runs it on a worker thread; it blocks in poll, never on the loop).
 *
 * https:// and http:// (HTTP/1.1 GET, redirects <= TE_FETCH_REDIRECTS,
 * https -> http refused, 200 / 206 with Range resume, Content-Length or
 * chunked or until close), and file://. The body goes to part_path (0600,
 * created if missing); a part already there is re-hashed and resumed with
 * "Range: bytes=N-". Within one run a connection cut after some progress
 * is retried (TE_FETCH_TRIES attempts), resuming. On success the part
 * holds exactly the image whose sha256 is ref.sha256, fsync'd. On failure
 * err says why; the part is kept when a later run may resume it (a cut),
 * deleted otherwise (sha256 mismatch, over the size cap). */
#ifndef TE_IMGFETCH_H
#define TE_IMGFETCH_H

#include <stdatomic.h>
#include <stdint.h>

#include "imgcodec.h"

#define TE_FETCH_REDIRECTS 5
#define TE_FETCH_TRIES 3
#define TE_FETCH_ERR_MAX 512

struct te_fetch {
	/* in */
	struct te_image_ref ref;
	char part_path[4096];
	const char *ca_file;        /* NULL: the system bundle */
	int64_t time_floor;         /* certificate validation floor (tls.h) */
	uint64_t max_bytes;         /* the image's size cap */
	unsigned timeout_secs;      /* the whole run */
	unsigned idle_secs;         /* no byte from the server for this long */
	const char *version;        /* User-Agent: tinyedge/VERSION */
	atomic_int *cancel;         /* set to non-zero to stop (may be NULL) */
	/* out */
	uint64_t size;              /* the image's bytes on success */
	uint64_t net_bytes;         /* body bytes received from the network */
	unsigned requests;          /* HTTP requests made */
	char err[TE_FETCH_ERR_MAX];
};

/* 0, or a negative code with f->err: -ECANCELED, -ETIMEDOUT, -TE_ETLS,
 * -TE_ELIMIT (size cap, too many redirects), -TE_EINVALID (sha256 mismatch,
 * HTTP status, refused redirect), -TE_EMALFORMED (the server's answer),
 * -errno (network, files). */
int te_fetch_run(struct te_fetch *f);

#endif
