/* Fuzz target for the JSON lines of stdio modules (hub/stdio_line.c), mode
 * "stdio"; corpus in test/fuzz/corpus/stdio/.
 *
 * The bytes are one line from a module. A line that decodes must give a
 * message within every limit whose strings lie in the scratch (the JSON
 * content type defaults aside), without NUL bytes but in the body; it must
 * encode (for an input named as the output) into te_stdio_line_size
 * bytes as exactly one line; and that line, renamed from input to output
 * as an echoing module does, must decode to the same message and encode
 * to the same bytes again — unless escaping made it longer than a module
 * may write. A target never asserts validity, only survival and these
 * invariants (abort() on a broken one). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "hub/stdio_line.h"

#include "fuzz.h"

static struct te_stdio_scratch sc1, sc2;

static void str_ok(struct te_str s, const struct te_stdio_scratch *sc,
		   bool nul_ok)
{
	if (!s.p && !s.n)
		return;
	if (!s.p || s.p < sc->buf || s.n >= sizeof(sc->buf) ||
	    s.p - sc->buf > (ptrdiff_t)(sizeof(sc->buf) - s.n - 1) || s.p[s.n])
		abort(); /* outside the scratch, or not NUL-terminated */
	if (!nul_ok && memchr(s.p, 0, s.n))
		abort();
}

static void check_view(const struct te_msg *m, const struct te_stdio_scratch *sc)
{
	if (m->origin != TE_ORIGIN_MODULE || m->nprops > TE_MSG_PROPS_MAX ||
	    m->bodylen > TE_MSG_BODY_MAX || m->sys[TE_SYS_OUTPUT_NAME].n == 0 ||
	    m->sys[TE_SYS_INPUT_NAME].p || (m->nprops && m->props != sc->props))
		abort();
	for (int i = 0; i < TE_SYS_N; i++) {
		if (m->sys[i].n > TE_WIRE_STR_MAX)
			abort();
		if ((i == TE_SYS_CONTENT_TYPE && m->sys[i].n == 16 &&
		     !memcmp(m->sys[i].p, "application/json", 16)) ||
		    (i == TE_SYS_CONTENT_ENCODING && m->sys[i].n == 5 &&
		     !memcmp(m->sys[i].p, "utf-8", 5)))
			continue; /* a default: static storage */
		str_ok(m->sys[i], sc, false);
	}
	for (uint32_t i = 0; i < m->nprops; i++) {
		if (!m->props[i].key.n || m->props[i].key.n > TE_WIRE_STR_MAX ||
		    m->props[i].val.n > TE_WIRE_STR_MAX)
			abort();
		str_ok(m->props[i].key, sc, false);
		str_ok(m->props[i].val, sc, false);
	}
	str_ok((struct te_str){ m->body, m->bodylen }, sc, true);
}

/* Encode m (as delivered to input "its output name") into a buffer of
 * exactly its bound, so that ASan sees any write past it. */
static char *encode(struct te_msg *m, size_t *len)
{
	size_t size;
	char *buf;

	m->sys[TE_SYS_INPUT_NAME] = m->sys[TE_SYS_OUTPUT_NAME];
	m->sys[TE_SYS_OUTPUT_NAME] = (struct te_str){ NULL, 0 };
	if (te_stdio_line_size(m, &size) || !(buf = malloc(size)))
		abort();
	if (te_stdio_line_encode(m, buf, size, len) || *len + 1 > size ||
	    buf[*len - 1] != '\n' || buf[*len] || memchr(buf, '\n', *len - 1) ||
	    memcmp(buf, "{\"input\":\"", 10))
		abort();
	m->sys[TE_SYS_OUTPUT_NAME] = m->sys[TE_SYS_INPUT_NAME];
	m->sys[TE_SYS_INPUT_NAME] = (struct te_str){ NULL, 0 };
	return buf;
}

void te_fuzz_stdio(const uint8_t *data, size_t n)
{
	struct te_msg m, m2;
	char err[256], *line, *back, *again;
	size_t len, len2;
	int r;

	r = te_stdio_line_decode((const char *)data, n, &sc1, &m, err, sizeof(err));
	if (r) {
		if ((r != -TE_EMALFORMED && r != -TE_ELIMIT) || !err[0] ||
		    m.bodylen || m.nprops)
			abort(); /* an error has a code, a message, no message */
		return;
	}
	check_view(&m, &sc1);
	line = encode(&m, &len);
	if (len <= TE_STDIO_LINE_MAX) {
		/* {"input":... -> {"output":..., without the '\n' */
		if (!(back = malloc(len)))
			abort();
		memcpy(back, "{\"output\":", 10);
		memcpy(back + 10, line + 9, len - 10);
		if (te_stdio_line_decode(back, len, &sc2, &m2, err, sizeof(err)))
			abort(); /* an encoded line does not decode */
		check_view(&m2, &sc2);
		if (!te_fuzz_msg_same(&m, &m2))
			abort();
		again = encode(&m2, &len2);
		if (len2 != len || memcmp(again, line, len))
			abort(); /* not canonical */
		free(again);
		free(back);
	}
	free(line);
}
