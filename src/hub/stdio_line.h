/* JSON lines for stdio modules: a pure codec over caller buffers, no I/O,
 * no allocation. The format is in docs/modules.md ("stdio modules").
 *
 * A stdio module gets one JSON object per line on its stdin for each
 * message delivered to it, and writes one JSON object per line on its
 * stdout for each message it sends:
 *
 *   in:  {"input":"in1","messageId":"m1",...,"properties":{"k":"v"},"body":"..."}
 *   out: {"output":"out1","properties":{"k":"v"},"body":"..."}
 *
 * Decoding turns a module's line into a struct te_msg (the view the router
 * takes from a ring record, outputName set); encoding writes a delivered
 * message as a line. Decoding an encoded line whose "input" key is renamed
 * "output" gives back the same message (properties, system properties,
 * body bytes). */
#ifndef TE_HUB_STDIO_LINE_H
#define TE_HUB_STDIO_LINE_H

#include <stddef.h>

#include "core/json.h"
#include "msg.h"
#include "tinyedge/wire.h"

/* Longest line a module may write, not counting its '\n': room for a
 * message at every limit at once (256 KiB body as base64, 64 properties of
 * 4 KiB names and values, every system property) in plain text. Longer
 * lines are refused (-TE_ELIMIT). Lines written to a module have no such
 * limit (TE_STDIO_OUT_MAX): a module that echoes a line full of \u00XX
 * escapes can exceed it. */
#define TE_STDIO_LINE_MAX (1u << 20)

/* JSON tokens in one line (each key, value and element is one): about
 * 65,000, so a body given as a JSON value has at most about 65,000 tokens;
 * a larger one can be sent as a string. */
#define TE_STDIO_LINE_TOKENS 65536u

/* Longest line te_stdio_line_encode writes for any message within the
 * te_msg limits, '\n' and NUL included (every byte of every string escaped
 * as \u00XX): about 4.7 MiB. te_stdio_line_size gives a bound for one
 * message. */
#define TE_STDIO_OUT_MAX (6u * (TE_MSG_BODY_MAX + \
	(7u + 2u * TE_MSG_PROPS_MAX) * TE_WIRE_STR_MAX) + 4096u)

/* Working memory for decoding one line (about 2.3 MiB): the decoded message
 * points into it. Allocate it once (static or at start) and reuse it: each
 * decode overwrites the previous message. */
struct te_stdio_scratch {
	struct te_json_tok tok[TE_STDIO_LINE_TOKENS];
	struct te_prop props[TE_MSG_PROPS_MAX];
	char buf[TE_STDIO_LINE_MAX];  /* unescaped strings and the body */
};

/* Decode line[0..len), a module's line without its '\n' (one '\r' before
 * it is ignored). On success *out is a message from a module
 * (origin TE_ORIGIN_MODULE) whose strings, properties and body point into
 * sc only (line may be reused at once) and stay valid until the next
 * decode with sc:
 *   sys[TE_SYS_OUTPUT_NAME]      "output" (required, 1..4096 bytes)
 *   sys[messageId, correlationId, contentType, contentEncoding,
 *       creationTimeUtc, connectionModuleId]   when given (0..4096 bytes)
 *   props                        "properties", in line order
 *   body, bodylen                "body" or "bodyBase64"; absent: 0 bytes
 * Every string is also NUL-terminated in sc (.n does not count the NUL);
 * none but the body contains a NUL byte. connectionModuleId is decoded as
 * given: the caller sets the module's real name over it, as for rings.
 * Returns 0, -TE_EMALFORMED (not JSON, not an object, an unknown key, a
 * wrong type, an empty output or property name, \u0000 outside the body,
 * invalid base64, body and bodyBase64 together, a raw '\n') or -TE_ELIMIT
 * (over a limit: line length, tokens, nesting, string lengths, 64
 * properties, 256 KiB of body). On error err (errcap bytes, may be 0)
 * gets one NUL-terminated message such as
 * "column 17: properties.temp must be a string" (column: 1-based byte
 * offset in the line), and *out is zeroed. */
int te_stdio_line_decode(const char *line, size_t len,
			 struct te_stdio_scratch *sc, struct te_msg *out,
			 char *err, size_t errcap);

/* Check m for encoding and bound its line's size: *size bytes always hold
 * the line, its '\n' and a NUL (at most TE_STDIO_OUT_MAX). -TE_EINVALID if
 * the input name (sys[TE_SYS_INPUT_NAME]) is absent or empty, a property
 * name is empty, or a string or the body has NULL p with n > 0;
 * -TE_ELIMIT if m exceeds TE_MSG_BODY_MAX, TE_MSG_PROPS_MAX or
 * TE_WIRE_STR_MAX. */
int te_stdio_line_size(const struct te_msg *m, size_t *size);

/* Write m as one line for a module's stdin into buf: the JSON object, then
 * '\n', then a NUL; *len = bytes up to and including the '\n'. Keys in
 * this order, each only when present: input (sys[TE_SYS_INPUT_NAME]),
 * messageId, correlationId, contentType, contentEncoding, creationTimeUtc,
 * connectionModuleId, properties (when nprops > 0), and always one of
 * body (a JSON string: the body is valid UTF-8 without NUL bytes, or
 * empty) or bodyBase64. outputName and other system properties are not
 * written. Strings that are not valid UTF-8 (system properties,
 * properties) get U+FFFD for each bad byte. Errors as te_stdio_line_size,
 * and -TE_ENOSPACE when cap is too small (buf then holds nothing useful;
 * te_stdio_line_size gives a cap that is always enough). */
int te_stdio_line_encode(const struct te_msg *m, char *buf, size_t cap,
			 size_t *len);

#endif
