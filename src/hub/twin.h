/* A module's twin as the daemon keeps it: desired and reported properties,
 * each a JSON object with its own "$version" (Azure's shape).
 *
 * Desired properties come from the deployment ({module}["properties.
 * desired"]); the module sends reported patches (tinyedge/wire.h
 * TE_WIRE_KIND_REPORTED), merged with Azure's rules (core/json_patch.h)
 * and acknowledged at once. Each document is at most TE_WIRE_TWIN_MAX
 * bytes of compact JSON, "$version" included.
 *
 * Held in memory for now: the store (LMDB) and the cloud sync come with
 * their issues. Not for the message path: updates allocate. */
#ifndef TE_TWIN_H
#define TE_TWIN_H

#include <stddef.h>
#include <stdint.h>

struct te_twin {
	char *desired;    /* compact JSON object, "$version" included */
	char *reported;
	size_t dlen, rlen;
	int64_t dver, rver;
};

/* Start from desired[0..n) (a JSON object from the manifest; NULL = {})
 * at version 1, reported {} at version 1. 0, -TE_EMALFORMED (not an
 * object), -TE_ELIMIT (over TE_WIRE_TWIN_MAX), -ENOMEM. */
int te_twin_init(struct te_twin *t, const char *desired, size_t n);
void te_twin_free(struct te_twin *t);

/* Replace the desired properties (a new deployment): the version goes up
 * by one if they changed. 1 = changed, 0 = the same, or -errno as
 * te_twin_init (the twin is then unchanged). */
int te_twin_set_desired(struct te_twin *t, const char *desired, size_t n);

/* Merge a reported patch from the module. Returns the status for its ACK:
 * 200 (merged; the version goes up by one), 400 (not a JSON object, a
 * "$version" or a name IoT Hub refuses; err says why) or 413 (the result
 * would be over TE_WIRE_TWIN_MAX). */
unsigned te_twin_report(struct te_twin *t, const void *patch, size_t n,
			char *err, size_t errlen);

/* {"desired":{...},"reported":{...}} into buf. 0 with *len, or
 * -TE_ENOSPACE. */
int te_twin_full(const struct te_twin *t, char *buf, size_t cap, size_t *len);

#endif
