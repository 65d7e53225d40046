/* JSON merge patch (RFC 7396) with the rules of Azure IoT module twins.
 *
 * A patch is applied to a document as RFC 7396 says: when the patch is an
 * object, the document becomes an object (if it was not one) and each
 * member of the patch is merged into it recursively, a null member deleting
 * the document's member of that name; any other patch (an array, a string,
 * null...) replaces the document whole. Arrays are values: they are never
 * merged element by element.
 *
 * Twin rules on top, so that what is accepted locally is accepted by IoT
 * Hub when it is synced:
 *   - nesting: the document and the patch are at most TE_JSON_PATCH_DEPTH
 *     levels deep (a scalar is 0, {} is 1), so the result is too;
 *   - property names in the patch, at every level: at most
 *     TE_JSON_PATCH_KEY_MAX bytes (UTF-8, unescaped), and none of '$', '.',
 *     a space, or a C0 or C1 control character (U+0000-U+001F,
 *     U+0080-U+009F). One exception: "$version" as a member of the patch's
 *     root object, merged as any other member (so a desired patch carries
 *     its version into the document; whoever applies reported patches, whose
 *     versions the daemon assigns, refuses it before calling this). The
 *     document's own names are not checked: it holds "$version" and may
 *     hold other metadata.
 *
 * The result is compact JSON. Members keep the document's order, new ones
 * follow in the patch's order; strings and numbers are copied as written
 * (escapes are kept, not normalized).
 *
 * Memory. Not for the message path: both inputs are tokenized
 * (te_json_parse allocates their tokens, at most a few bytes per input
 * byte, freed before returning); inputs are capped at
 * TE_JSON_PATCH_INPUT_MAX bytes each, which also bounds the time (member
 * lookups are linear, so merging two objects is quadratic in their member
 * counts). The result is written to the caller's buffer. */
#ifndef TE_JSON_PATCH_H
#define TE_JSON_PATCH_H

#include <stddef.h>

#define TE_JSON_PATCH_DEPTH 10              /* nesting levels, as Azure twins */
#define TE_JSON_PATCH_KEY_MAX 1024          /* bytes of a property name, as Azure */
#define TE_JSON_PATCH_INPUT_MAX (64u * 1024)  /* bytes of the document or the patch */

/* Apply patch[0..plen) to doc[0..dlen) (neither need be NUL-terminated;
 * both must be JSON texts, of any type). The result and a NUL go to
 * out[0..cap): on success *outlen is its length (< cap). err receives a
 * one-line reason on failure ("patch:1:9: property name \"a.b\" contains
 * '.'"), always NUL-terminated when errlen > 0; err may be NULL if errlen
 * is 0.
 *
 * Returns 0, or
 *   -TE_EMALFORMED  doc or patch is not valid JSON (RFC 8259, no duplicate
 *                   keys);
 *   -TE_ELIMIT      doc or patch is deeper than TE_JSON_PATCH_DEPTH or
 *                   longer than TE_JSON_PATCH_INPUT_MAX;
 *   -TE_EINVALID    a property name in the patch breaks the rules above;
 *   -TE_ENOSPACE    the result does not fit in cap - 1 bytes (out then
 *                   holds an unspecified prefix);
 *   -ENOMEM         out of memory. */
int te_json_merge_patch(const char *doc, size_t dlen, const char *patch,
			size_t plen, char *out, size_t cap, size_t *outlen,
			char *err, size_t errlen);

/* The same with flags:
 *   TE_JSON_PATCH_COMPOSE    doc is itself a patch not yet applied (say,
 *                            one waiting to be sent): the patch's null
 *                            members are kept as nulls rather than dropped,
 *                            so the result deletes what either would.
 *                            (One case is not exact: a non-object member in
 *                            doc (null included) followed by an object in
 *                            the patch becomes that object, which merges
 *                            into the target's old value rather than
 *                            replacing it: merge patch cannot say both.)
 *   TE_JSON_PATCH_ANY_NAMES  property names are not checked (the patch's
 *                            names were checked where it came from; the
 *                            caller wraps it under a name of its own). */
#define TE_JSON_PATCH_COMPOSE 1u
#define TE_JSON_PATCH_ANY_NAMES 2u
int te_json_merge_patch_ex(const char *doc, size_t dlen, const char *patch,
			   size_t plen, unsigned flags, char *out, size_t cap,
			   size_t *outlen, char *err, size_t errlen);

#endif
