/* A module's twin as the daemon keeps it: desired and reported properties,
 * each a JSON object with its own "$version" (Azure's shape). docs/twins.md
 * has the whole story; in short:
 *
 * Shape and limits. Each document is compact JSON of at most
 * TE_WIRE_TWIN_MAX bytes, "$version" included, at most
 * TE_JSON_PATCH_DEPTH (10) levels deep. Patches follow Azure's merge rules
 * (core/json_patch.h): objects merge recursively, null deletes a member,
 * any other value replaces; property names follow IoT Hub's rules.
 *
 * Sources. The deployment ({module}["properties.desired"]) gives the
 * desired properties a twin starts from (te_twin_init) and replaces them
 * when it changes (te_twin_set_desired; a change is recognised by the hash
 * of the deployment's desired JSON, so a reload of the same deployment
 * keeps local and cloud patches); local patches (`tinyedge twin NAME
 * --desired`) and the cloud's patches and full documents go through
 * te_twin_patch_desired; the module's reported patches through
 * te_twin_report.
 *
 * Versions. dver and rver only go up: +1 per change. cloud_ver is the
 * newest cloud "$version" applied: the cloud's patches and documents at or
 * below it are stale and ignored; a newer one sets dver to max(dver + 1,
 * its version), so a module that only sees cloud changes sees the hub's
 * numbers.
 *
 * Persistence. te_twin_encode / te_twin_decode: a small versioned header
 * (the versions and the deployment hash), both documents, a checksum.
 *
 * Not for the message path: updates allocate. */
#ifndef TE_TWIN_H
#define TE_TWIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tinyedge/wire.h"

struct te_twin {
	char *desired;      /* compact JSON object, "$version" included */
	char *reported;
	size_t dlen, rlen;
	int64_t dver, rver; /* their "$version"s, >= 1 */
	int64_t cloud_ver;  /* newest cloud desired "$version" applied; 0: none */
	uint64_t mhash;     /* te_twin_hash of the deployment's desired, compact */
};

/* The encoded twin: header, desired, reported, checksum. */
#define TE_TWIN_BLOB_HDR 48u
#define TE_TWIN_BLOB_MAX (TE_TWIN_BLOB_HDR + 2 * TE_WIRE_TWIN_MAX + 8)

/* FNV-1a 64 of p[0..n). */
uint64_t te_twin_hash(const void *p, size_t n);

/* Start from the deployment's desired[0..n) (a JSON object; NULL = {}) at
 * version 1, reported {} at version 1, no cloud version. 0,
 * -TE_EMALFORMED (not a JSON object, deeper than 10 levels, or with a
 * "$version"), -TE_EINVALID (a name IoT Hub refuses), -TE_ELIMIT (over
 * TE_WIRE_TWIN_MAX), -ENOMEM. t is zeroed on failure (te_twin_free is
 * safe). */
int te_twin_init(struct te_twin *t, const char *desired, size_t n);
void te_twin_free(struct te_twin *t);

/* The deployment's desired properties, again (a reload, or a start with
 * a stored twin). If their hash equals t->mhash nothing changes (patches
 * made since are kept); else they replace the desired properties, whose
 * version goes up by one if they differ. 1 = desired changed, 0 = not
 * (t->mhash may still have changed: persist when it did), or -errno as
 * te_twin_init (t unchanged). */
int te_twin_set_desired(struct te_twin *t, const char *desired, size_t n);

/* A desired-properties change from the cloud (cloud: version is its
 * "$version") or a local one (version ignored). full: json[0..n) is the
 * whole desired document, which replaces the current one; else a merge
 * patch. Returns
 *   200  applied: dver is the new version; out[0..*outlen) is what the
 *        module should get as a DESIRED record (the patch with the new
 *        "$version"), or *outlen is 0 when it should get the whole twin
 *        (a full document, or a patch that would not fit cap or
 *        TE_WIRE_TWIN_MAX with its version);
 *   204  ignored: a cloud version at or below cloud_ver (stale), or a local
 *        patch that changes nothing; err says which;
 *   400  not a JSON object, deeper than 10 levels, a "$version" in a local
 *        patch, a name IoT Hub refuses, or a cloud version below 1;
 *   413  the patch, or the desired document it makes, over TE_WIRE_TWIN_MAX;
 *   500  out of memory.
 * err gets a one-line reason for anything but 200. t is unchanged unless
 * 200. */
unsigned te_twin_patch_desired(struct te_twin *t, const char *json, size_t n, bool cloud,
			       int64_t version, bool full, char *out, size_t cap,
			       size_t *outlen, char *err, size_t errlen);

/* Merge a reported patch from the module. Returns the status for its ACK:
 * 200 (merged; the version goes up by one), 400 (not a JSON object,
 * deeper than 10 levels, a "$version" or a name IoT Hub refuses; err says
 * why), 413 (the patch or the result over TE_WIRE_TWIN_MAX) or 500. */
unsigned te_twin_report(struct te_twin *t, const void *patch, size_t n,
			char *err, size_t errlen);

/* {"desired":{...},"reported":{...}} into buf. 0 with *len, or
 * -TE_ENOSPACE. */
int te_twin_full(const struct te_twin *t, char *buf, size_t cap, size_t *len);

/* The twin for the store into buf[0..cap) (TE_TWIN_BLOB_MAX always
 * fits). 0 with *len, -TE_ENOSPACE, or -EINVAL (an empty twin). */
int te_twin_encode(const struct te_twin *t, void *buf, size_t cap, size_t *len);

/* A twin back from te_twin_encode's bytes, checked whole: format, lengths,
 * checksum, both documents JSON objects within the limits whose
 * "$version"s are the header's. 0, -TE_EMALFORMED (t zeroed) or -ENOMEM. */
int te_twin_decode(struct te_twin *t, const void *buf, size_t n);

#endif
