/* Message and control records (the encoding is in
 * include/tinyedge/wire.h): a pure codec over caller buffers, no I/O, no
 * allocation.
 *
 * The decoders validate every count, length and offset against len before
 * using it and fill a view whose strings, properties and body point into
 * buf (buf must outlive the view). The daemon runs them on its private
 * copy of a record (te_ring_read_copy), never on the ring itself. Encoding
 * is canonical: decode then encode gives back the same bytes. */
#ifndef TE_HUB_WIRE_H
#define TE_HUB_WIRE_H

#include <stddef.h>

#include "msg.h"
#include "tinyedge/wire.h"

/* Encode m into buf. 0 with *len = bytes written; -TE_ENOSPACE if cap is
 * too small (*len = bytes needed; nothing useful written); -TE_ELIMIT if
 * m exceeds TE_MSG_BODY_MAX, TE_MSG_PROPS_MAX or TE_WIRE_STR_MAX;
 * -TE_EINVALID for an unknown origin, an empty property name or a string
 * with NULL p and n > 0. An absent system property is .p == NULL. */
int te_msg_encode(const struct te_msg *m, void *buf, size_t cap, size_t *len);

/* Decode len bytes. props receives the application properties (maxprops
 * entries available; out->props points at it). 0, -TE_EMALFORMED (not the
 * grammar: truncated, trailing bytes, unknown kind, origin or sysmask bit,
 * non-zero reserved field, empty property name), -TE_ELIMIT (over a limit),
 * -TE_ENOSPACE (more properties than maxprops). An absent system property
 * decodes as .p == NULL, .n == 0; present strings are never NULL. */
int te_msg_decode(const void *buf, size_t len, struct te_msg *out,
		  struct te_prop *props, unsigned maxprops);

/* The kind of a record payload (its first byte: TE_WIRE_KIND_*, not
 * checked further), or -TE_EMALFORMED if len is 0. */
int te_wire_kind(const void *payload, size_t len);

/* A control record (twins and direct methods). Which fields each kind uses
 * is in tinyedge/wire.h; the others are 0 (name and body empty). */
struct te_ctlrec {
	unsigned kind;        /* TE_WIRE_KIND_TWIN .. TE_WIRE_KIND_METHOD_RESULT */
	uint32_t id;
	uint32_t status;
	struct te_str name;   /* METHOD's name */
	const void *body;     /* bodylen bytes; NULL only if bodylen is 0 */
	uint32_t bodylen;
};

/* Encode c into buf. 0 with *len = bytes written; -TE_ENOSPACE if cap is
 * too small (*len = bytes needed); -TE_ELIMIT if the name is over
 * TE_WIRE_STR_MAX or the body over its kind's limit; -TE_EINVALID for an
 * unknown kind, a field the kind requires missing (id 0, empty name or
 * body) or one it does not use set (id, status, name or body), a NUL byte
 * in the name, or NULL with a length. */
int te_ctlrec_encode(const struct te_ctlrec *c, void *buf, size_t cap, size_t *len);

/* Decode len bytes. 0, -TE_EMALFORMED (not the grammar: truncated,
 * trailing bytes, not a control kind, reserved bytes set, a field broken
 * as te_ctlrec_encode's -TE_EINVALID says) or -TE_ELIMIT (as te_ctlrec_encode's).
 * name and body point into buf, even when empty. */
int te_ctlrec_decode(const void *buf, size_t len, struct te_ctlrec *out);

#endif
