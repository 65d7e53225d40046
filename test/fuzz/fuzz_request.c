/* The control socket's request lines (src/control/server.c): parsed and
 * dispatched against a daemon with no modules, no store and no image cache,
 * so every command runs its checks and answers without touching processes.
 * Whatever the line, the answer must be one or more whole lines. */
#include <stdlib.h>
#include <string.h>

#include "control/server.h"
#include "fuzz.h"

void te_fuzz_request(const uint8_t *data, size_t n)
{
	static struct te_supervisor sv;
	static struct te_ctl ctl = { .sv = &sv };
	struct te_ctl_client c = { .ctl = &ctl, .used = true, .io.fd = -1 };

	/* a line ends at its newline: the server never passes one on */
	if (memchr(data, '\n', n))
		return;
	te_ctl_request(&c, (const char *)data, n);
	if (!c.out || c.outlen == 0 || c.out[c.outlen - 1] != '\n')
		abort();  /* every request is answered, with whole lines */
	free(c.out);
}
