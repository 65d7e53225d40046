/* Fuzz target for the $edgeAgent methods' requests (agent/methods.c,
 * methods_logs.c), mode "methods"; corpus in test/fuzz/corpus/methods/.
 *
 * The first byte picks the method (ping, RestartModule, GetModuleLogs,
 * GetTaskStatus), the rest is the request payload as the cloud sends it;
 * the payload is also given to the since/until parser as a string. The
 * modules are fake (a name and a log ring, never running: a RestartModule
 * that finds one is refused before the supervisor is asked). Invariants:
 * a status of 200, 400 or 500; a body within TE_AGENT_RESPONSE_MAX that is
 * valid JSON; an error body for every error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/methods.h"
#include "agent/supervisor.h"
#include "core/config.h"
#include "core/json.h"

#include "fuzz.h"

static struct te_config cfg;
static struct te_supervisor sv;
static struct te_mod mods[2], *modp[2] = { &mods[0], &mods[1] };
static struct te_agent ag;

static void setup(void)
{
	static const char *const lines = "<3>boot failed\nplain line\n<7>debug \"q\" \\ \x01\xff\n";

	if (sv.cfg)
		return;
	te_config_defaults(&cfg);
	sv.cfg = &cfg;
	sv.mods = modp;
	sv.nmods = 2;
	for (unsigned i = 0; i < 2; i++) {
		snprintf(mods[i].name, sizeof(mods[i].name), i ? "edgeHub" : "tempSensor");
		te_logring_init(&mods[i].log, 8192);
		for (unsigned k = 0; k < 40; k++)
			te_logring_feed(&mods[i].log, 1 + (k & 1), lines, strlen(lines),
					1700000000000ULL + k * 1000);
	}
	te_agent_init(&ag, &sv);
}

void te_fuzz_methods(const uint8_t *data, size_t n)
{
	static const char *const names[] = { "ping", "RestartModule", "GetModuleLogs",
					     "GetTaskStatus" };
	struct te_diag diag = { 0 };
	struct te_json_doc doc;
	char str[256];
	uint64_t ms;
	size_t len;
	unsigned st;
	char *out;

	setup();
	if (n == 0)
		return;
	len = n - 1 < sizeof(str) - 1 ? n - 1 : sizeof(str) - 1;
	memcpy(str, data + 1, len);
	str[len] = '\0';
	te_agent_parse_time(str, 1700000000000ULL, &ms);
	st = te_agent_method(&ag, names[data[0] & 3], (const char *)data + 1, n - 1, &out, &len);
	if (st != 200 && st != 400 && st != 500)
		abort();
	if (!out) {
		if (st == 400)
			abort(); /* a refusal always says why */
		return;
	}
	if (len > TE_AGENT_RESPONSE_MAX ||
	    te_json_parse(&doc, "answer", out, len, NULL, &diag) < 0)
		abort();
	te_json_free(&doc);
	free(out);
}
