/* Message records (the encoding is in include/tinyedge/wire.h): a pure
 * codec over caller buffers, no I/O, no allocation.
 *
 * te_msg_decode validates every count, length and offset against len
 * before using it and fills a view whose strings, properties and body
 * point into buf (buf must outlive the view). The daemon runs it on its
 * private copy of a record (te_ring_read_copy), never on the ring itself.
 * Encoding is canonical: decode then encode gives back the same bytes. */
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

#endif
