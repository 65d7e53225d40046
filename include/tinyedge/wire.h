/* tinyedge wire format, version 1: the shared-memory rings between a module
 * and the tinyedge daemon, and the records they carry: messages, and the
 * control records of module twins and direct methods.
 *
 * This header is for module authors in any language. It holds plain C99
 * structs and constants only; a foreign implementation needs nothing else
 * but atomic 32-bit loads and stores with acquire/release ordering and a
 * full memory barrier (C11 <stdatomic.h>, Rust AtomicU32, Go sync/atomic,
 * Java VarHandle...). The C SDK (tinyedge/module.h) implements all of it.
 *
 * ---- The mapping ---------------------------------------------------------
 *
 * Each module gets one memfd (how it and the wakeup eventfds are passed is
 * part of the module environment, TINYEDGE_IPC_FD), sealed against
 * shrinking and growing (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL; check
 * them with F_GET_SEALS before trusting the size), to be mapped whole with
 * mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), where size
 * comes from fstat(). With S the size of one ring's data area (a power of
 * two, TE_WIRE_RING_MIN <= S <= TE_WIRE_RING_MAX):
 *
 *   offset                        size      what
 *   0                             128       struct te_wire_hdr
 *   TE_WIRE_OUT_CTRL   (1024)     384       struct te_wire_ctrl of "out"
 *   TE_WIRE_IN_CTRL    (2048)     384       struct te_wire_ctrl of "in"
 *   TE_WIRE_HDR_SIZE   (4096)     S         data area of "out"
 *   TE_WIRE_HDR_SIZE + S          S         data area of "in"
 *   total: TE_WIRE_HDR_SIZE + 2 * S = fstat's st_size
 *
 * "out" carries records from the module to the daemon, "in" from the daemon
 * to the module. Each ring has exactly one producer and one consumer. The
 * header's offsets and sizes always equal the fixed layout above (version 1
 * has no other); check them against st_size and reject a mismatch.
 * Everything in the mapping (header, indices, record headers) is in the
 * host's byte order: both peers run on the same host.
 *
 * ---- Indices ---------------------------------------------------------------
 *
 * A ring's producer and consumer indices are free-running uint32_t byte
 * counts: they only grow and wrap around at 2^32. The byte at index i is
 * data[i & (S - 1)]. Both are always multiples of TE_WIRE_ALIGN (8), and
 * 0 <= producer - consumer <= S in uint32_t arithmetic: the bytes from the
 * consumer index up to the producer index are unread records, the rest of
 * the data area is free. Each index is written only by its owner (producer
 * or consumer); the owner keeps its own copy in private memory and never
 * reads its index back from the mapping.
 *
 * ---- Records ---------------------------------------------------------------
 *
 * A record is a struct te_wire_rec header, then len payload bytes, then
 * zero to seven bytes of padding so that the next record starts at a
 * multiple of 8 (its size is TE_WIRE_REC_SIZE(len)). A record never wraps
 * around the end of the data area: when it does not fit in the bytes left
 * before the end, the producer first writes a PAD record filling exactly
 * those bytes (flags = TE_WIRE_REC_PAD, len = bytes left - 8, content
 * unspecified), then the record at offset 0. A PAD never starts at offset 0.
 * A data record has flags = 0 and 1 <= len <= S / 2 - 8 (so any record fits
 * in an empty ring wherever the indices stand). Any other flags value is an
 * error. Every record, PAD included, lies entirely below the producer index
 * and before the end of the data area. The daemon kills a module whose out
 * ring breaks any of these rules, or whose producer index is not a multiple
 * of 8, is behind the consumer index or more than S ahead of it.
 *
 * ---- Memory ordering (what a foreign implementation must do) ---------------
 *
 * Producer, to send a record of len bytes:
 *   1. Compute the space needed: TE_WIRE_REC_SIZE(len), plus the bytes left
 *      to the end of the data area if the record does not fit before it.
 *   2. If producer - consumer_seen + needed > S, reload the consumer index
 *      with an ACQUIRE load (so the consumer is done reading the bytes we
 *      are about to overwrite); if there is still no room, try later.
 *   3. Write the PAD (if any), the record header, the payload with plain
 *      stores.
 *   4. Store producer + bytes used with a RELEASE store: it publishes the
 *      record bytes written before it. Several records may be written
 *      before one release store (batching).
 *   5. Wakeup: execute a FULL barrier (seq_cst fence; StoreLoad ordering),
 *      then load need_wakeup. If it is non-zero, store 0 to it and write 1
 *      (a uint64_t) to the peer's eventfd.
 *
 * Consumer:
 *   1. Load the producer index with an ACQUIRE load (it makes the record
 *      bytes visible). It may be cached and reloaded only when the cached
 *      value says the ring is empty.
 *   2. Read each record header once, check it, read the payload, then store
 *      the new consumer index with a RELEASE store (our reads of the bytes
 *      happen before the producer may reuse them). A PAD is skipped the
 *      same way.
 *   3. To sleep when the ring is empty: store 1 to need_wakeup, execute a
 *      FULL barrier, load the producer index again. If it moved, store 0 to
 *      need_wakeup and go on reading; otherwise block on the eventfd (read
 *      it to reset it), then read the ring again.
 *
 * The two full barriers close the lost-wakeup race: the producer stores its
 * index then loads the flag, the consumer stores the flag then loads the
 * index (Dekker's pattern). Without the barriers both loads could be
 * satisfied before the other side's store is visible (store buffers): the
 * producer sees need_wakeup = 0 and does not signal, the consumer sees the
 * old index and sleeps with a record waiting. With them, at least one side
 * sees the other's store. The producer clears the flag before signalling so
 * one sleep costs at most one eventfd write; a clear that races with the
 * consumer setting the flag again is harmless, because the eventfd write
 * that follows it wakes the consumer, which sets the flag again before it
 * next sleeps.
 *
 * ---- Message records ---------------------------------------------------------
 *
 * The payload of a data record is a message, encoded in LITTLE-ENDIAN
 * (unlike the ring itself, so that it can be stored and moved as is):
 *
 *   struct te_wire_msg (12 bytes)
 *   for each system property i set in sysmask, in increasing i:
 *       uint16 len, len bytes                          (len <= TE_WIRE_STR_MAX)
 *   nprops times:
 *       uint16 klen, klen bytes (the name, klen >= 1)  (klen <= TE_WIRE_STR_MAX)
 *       uint16 vlen, vlen bytes (the value)            (vlen <= TE_WIRE_STR_MAX)
 *   bodylen bytes of body                              (bodylen <= TE_WIRE_BODY_MAX)
 *
 * and the payload ends exactly there. Strings are bytes (UTF-8 expected),
 * without a terminating NUL. No field is optional and there is no other
 * encoding of a given message: decoding then encoding gives the same bytes.
 * Records over the ring's limit (S / 2 - 8 bytes) cannot be sent: size the
 * rings for the largest message (a full 256 KiB body needs S >= 1 MiB; a
 * message at every limit at once, about 810 KiB, needs 2 MiB).
 *
 * ---- Record kinds ------------------------------------------------------------
 *
 * The first payload byte of every data record is its kind: 1
 * (TE_WIRE_KIND_MSG) is a message as above; 2 to 8 are control records
 * (module twins and direct methods, below); any other value is an error.
 * Both kinds of record share a ring and keep their order in it.
 *
 * ---- Control records ---------------------------------------------------------
 *
 * A control record's payload is, again in LITTLE-ENDIAN:
 *
 *   struct te_wire_ctl (20 bytes)
 *   namelen bytes of name
 *   bodylen bytes of body
 *
 * and the payload ends exactly there: len = 20 + namelen + bodylen. The
 * three reserved bytes are 0. Which fields a kind uses, and their limits:
 *
 *   kind               from     id         status  name        body
 *   2  TWIN            daemon   request/0  0       empty       1..TWIN_FULL_MAX
 *   3  DESIRED         daemon   0          0       empty       1..TWIN_MAX
 *   4  REPORTED        module   non-zero   0       empty       1..TWIN_MAX
 *   5  ACK             daemon   non-zero   any     empty       0..STR_MAX
 *   6  TWIN_GET        module   non-zero   0       empty       empty
 *   7  METHOD          daemon   non-zero   0       1..STR_MAX  0..METHOD_MAX
 *   8  METHOD_RESULT   module   non-zero   any     empty       0..METHOD_MAX
 *
 * A field a kind does not use is 0 (or empty); a method name contains no
 * NUL byte. As for messages, there is exactly one encoding of a record:
 * decoding then encoding gives the same bytes. A record that breaks these
 * rules, or comes from the wrong side, is a protocol error: the daemon
 * treats it as a corrupt ring (it kills the module), the C SDK reports
 * -EPROTO. Bodies are UTF-8 JSON text (ACK: plain text) without a
 * terminating NUL; the daemon sends compact JSON and validates all JSON it
 * receives.
 *
 * Module twin. A twin has two JSON objects: desired (written by the cloud
 * or `tinyedge twin NAME --desired`) and reported (written by the module),
 * each with an integer "$version" member that grows with every change.
 * Each is at most TE_WIRE_TWIN_MAX bytes as compact JSON, "$version"
 * included, and at most 10 levels deep.
 *   - TWIN: the whole twin, body {"desired":{...},"reported":{...}}. The
 *     daemon writes one with id 0 as the first record of the in ring every
 *     time it starts the module, before any message; and one carrying the
 *     request's id in answer to each TWIN_GET. It replaces all the module
 *     knew of its twin.
 *   - DESIRED: a desired-properties patch, an object with the members that
 *     changed and the new "$version", in JSON merge-patch form (RFC 7396: a
 *     null member was deleted, an object merges recursively, any other
 *     value replaces). The daemon sends each change once, in version order,
 *     and none older than the last TWIN it sent.
 *   - REPORTED: a reported-properties patch (a JSON object in merge-patch
 *     form; the daemon assigns "$version"). id is chosen by the module,
 *     non-zero; the daemon applies the patch at once and answers with an
 *     ACK with the same id and status 200 (applied), 400 (not a JSON
 *     object, deeper than 10 levels, or a key Azure refuses: "$version",
 *     a key with '$', '.', a space or a control character, or one over
 *     1 KiB) or 413 (the reported document would exceed TE_WIRE_TWIN_MAX);
 *     body empty, or a one-line reason. REPORTEDs are acknowledged in
 *     order.
 *   - TWIN_GET: ask for the whole twin; answered by a TWIN with its id.
 *
 * Direct methods. The daemon delivers a call as METHOD: id (chosen by the
 * daemon, non-zero), name = the method name, body = the JSON payload
 * (empty means null). The module answers each call with exactly one
 * METHOD_RESULT: the call's id, the status (a signed 32-bit value in two's
 * complement, as Azure's; 200 for success, 404 no such method, 500 the
 * method failed, 501 no method handler) and the JSON payload (empty means
 * null). Results may come in any order relative to the module's other
 * records. The daemon may give up waiting (the call's timeout); a late
 * result is then discarded. A payload at TE_WIRE_METHOD_MAX needs
 * S >= 512 KiB; with smaller rings a record is limited to S / 2 - 8 bytes
 * as any other (the daemon refuses a larger call with 413). */
#ifndef TINYEDGE_WIRE_H
#define TINYEDGE_WIRE_H

#include <stdint.h>

#define TE_WIRE_MAGIC 0x31574554u      /* "TEW1" in little-endian memory */
#define TE_WIRE_VERSION 1u
#define TE_WIRE_HDR_SIZE 4096u         /* header page: header and both control blocks */
#define TE_WIRE_LINE 128u              /* control fields are this far apart */
#define TE_WIRE_OUT_CTRL 1024u         /* offset of out's struct te_wire_ctrl */
#define TE_WIRE_IN_CTRL 2048u          /* offset of in's struct te_wire_ctrl */
#define TE_WIRE_RING_MIN 4096u         /* smallest data area, bytes */
#define TE_WIRE_RING_MAX (1u << 30)    /* largest data area, bytes */
#define TE_WIRE_ALIGN 8u               /* records start at multiples of this */

/* One ring's place in the mapping (offsets from the start of the mapping). */
struct te_wire_ring_desc {
	uint32_t ctrl_off;   /* TE_WIRE_OUT_CTRL or TE_WIRE_IN_CTRL */
	uint32_t data_off;   /* TE_WIRE_HDR_SIZE, or TE_WIRE_HDR_SIZE + S for "in" */
	uint32_t data_size;  /* S */
	uint32_t reserved;   /* 0 */
};

/* At offset 0. Written once by the daemon before the module starts. */
struct te_wire_hdr {
	uint32_t magic;                 /* TE_WIRE_MAGIC */
	uint32_t version;               /* TE_WIRE_VERSION */
	uint32_t hdr_size;              /* TE_WIRE_HDR_SIZE */
	uint32_t line;                  /* TE_WIRE_LINE */
	uint64_t total_size;            /* TE_WIRE_HDR_SIZE + 2 * S: st_size */
	uint64_t reserved;              /* 0 */
	struct te_wire_ring_desc out;   /* module -> daemon */
	struct te_wire_ring_desc in;    /* daemon -> module */
};

/* A ring's control block: three fields on separate cache lines, so the
 * producer's and the consumer's stores do not share a line. 128 bytes
 * covers CPUs with 128-byte lines and adjacent-line prefetching. */
struct te_wire_ctrl {
	uint32_t producer;      /* written by the producer (release) only */
	uint8_t pad0[TE_WIRE_LINE - 4];
	uint32_t consumer;      /* written by the consumer (release) only */
	uint8_t pad1[TE_WIRE_LINE - 4];
	uint32_t need_wakeup;   /* set to 1 by the consumer, cleared by the producer */
	uint8_t pad2[TE_WIRE_LINE - 4];
};

/* Record framing. */
#define TE_WIRE_REC_PAD 1u     /* flags: padding up to the end of the data area */

struct te_wire_rec {
	uint32_t len;    /* payload bytes, not counting this header or the padding */
	uint32_t flags;  /* 0 (data) or TE_WIRE_REC_PAD */
};

#define TE_WIRE_REC_HDR 8u
/* Bytes a record of len payload bytes takes in the data area. */
#define TE_WIRE_REC_SIZE(len) \
	(TE_WIRE_REC_HDR + (((uint32_t)(len) + 7u) & ~(uint32_t)7u))

/* Message records. */
#define TE_WIRE_KIND_MSG 1u            /* te_wire_msg.kind: a message */
#define TE_WIRE_BODY_MAX (256u * 1024) /* bytes of body */
#define TE_WIRE_PROPS_MAX 64u          /* application properties */
#define TE_WIRE_STR_MAX 4096u          /* bytes of any one property name or value */

/* te_wire_msg.origin */
#define TE_WIRE_ORIGIN_MODULE 0u       /* sent by a module on one of its outputs */
#define TE_WIRE_ORIGIN_DEVICE 1u       /* a leaf device or `tinyedge send` */
#define TE_WIRE_ORIGIN_TWIN_CHANGE 2u  /* a twin change notification */

/* System properties: bit i of te_wire_msg.sysmask. */
#define TE_WIRE_SYS_MESSAGE_ID 0
#define TE_WIRE_SYS_CORRELATION_ID 1
#define TE_WIRE_SYS_CONTENT_TYPE 2
#define TE_WIRE_SYS_CONTENT_ENCODING 3
#define TE_WIRE_SYS_CREATION_TIME_UTC 4
#define TE_WIRE_SYS_CONNECTION_DEVICE_ID 5
#define TE_WIRE_SYS_CONNECTION_MODULE_ID 6
#define TE_WIRE_SYS_OUTPUT_NAME 7
#define TE_WIRE_SYS_INPUT_NAME 8
#define TE_WIRE_SYS_USER_ID 9
#define TE_WIRE_SYS_N 10               /* higher sysmask bits must be 0 */

/* The start of a message payload; every field little-endian. */
struct te_wire_msg {
	uint8_t kind;       /* TE_WIRE_KIND_MSG */
	uint8_t origin;     /* TE_WIRE_ORIGIN_* */
	uint16_t sysmask;   /* bit i set: system property i follows */
	uint16_t nprops;    /* <= TE_WIRE_PROPS_MAX */
	uint16_t reserved;  /* 0 */
	uint32_t bodylen;   /* <= TE_WIRE_BODY_MAX */
};

#define TE_WIRE_MSG_HDR 12u

/* Control records (te_wire_ctl.kind). */
#define TE_WIRE_KIND_TWIN 2u           /* daemon -> module: the whole twin */
#define TE_WIRE_KIND_DESIRED 3u        /* daemon -> module: desired patch */
#define TE_WIRE_KIND_REPORTED 4u       /* module -> daemon: reported patch */
#define TE_WIRE_KIND_ACK 5u            /* daemon -> module: REPORTED's outcome */
#define TE_WIRE_KIND_TWIN_GET 6u       /* module -> daemon: send me a TWIN */
#define TE_WIRE_KIND_METHOD 7u         /* daemon -> module: a direct method call */
#define TE_WIRE_KIND_METHOD_RESULT 8u  /* module -> daemon: its answer */

#define TE_WIRE_TWIN_MAX (32u * 1024)  /* bytes of desired, reported or a patch */
#define TE_WIRE_TWIN_FULL_MAX (2 * TE_WIRE_TWIN_MAX + 64)  /* bytes of a TWIN body */
#define TE_WIRE_METHOD_MAX (128u * 1024)  /* bytes of a method payload or result */

/* te_wire_ctl.status of ACK and METHOD_RESULT (HTTP's meanings). */
#define TE_WIRE_STATUS_OK 200u
#define TE_WIRE_STATUS_BAD_REQUEST 400u
#define TE_WIRE_STATUS_NOT_FOUND 404u
#define TE_WIRE_STATUS_TOO_LARGE 413u
#define TE_WIRE_STATUS_ERROR 500u
#define TE_WIRE_STATUS_NOT_IMPLEMENTED 501u

/* The start of a control payload; every field little-endian. */
struct te_wire_ctl {
	uint8_t kind;         /* TE_WIRE_KIND_TWIN .. TE_WIRE_KIND_METHOD_RESULT */
	uint8_t reserved[3];  /* 0 */
	uint32_t id;          /* request id (see the table above) */
	uint32_t status;      /* ACK and METHOD_RESULT; else 0 */
	uint32_t namelen;     /* METHOD: 1..TE_WIRE_STR_MAX; else 0 */
	uint32_t bodylen;     /* per kind, see the table above */
};

#define TE_WIRE_CTL_HDR 20u

#endif
