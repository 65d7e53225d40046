/* Deployments: manifests from text, the admission check. */
#include <stdlib.h>
#include <string.h>

#include "agent/deploy.h"
#include "core/err.h"
#include "tap.h"

#define MOD(name, mem, status)                                                   \
	"\"" name "\":{\"type\":\"native\",\"status\":\"" status "\",\"settings\":"  \
	"{\"image\":\"/bin/true\",\"createOptions\":{\"ringBytes\":65536,"          \
	"\"limits\":{\"memoryBytes\":" mem "}}}}"

static int parse(struct te_manifest *m, const char *modules)
{
	static char text[4096];
	struct te_diag quiet = { 0 };

	snprintf(text, sizeof(text),
		 "{\"$version\":7,\"modulesContent\":{\"$edgeAgent\":{\"properties.desired\":"
		 "{\"schemaVersion\":\"1.1\",\"modules\":{%s}}}}}", modules);
	return te_manifest_parse(m, "test", text, strlen(text), &quiet);
}

static void test_parse(void)
{
	struct te_manifest m;
	struct te_diag quiet = { 0 };
	static const char bad[] = "{\"modulesContent\":{\"$edgeAgent\":{\"properties.desired\":"
				  "{\"modules\":{\"a\":{\"type\":\"docker\"}}}}}}";

	TAP_EQ_INT(parse(&m, MOD("a", "1048576", "running")), 0, "a manifest from text");
	TAP_EQ_INT(m.nmodules, 1, "one module");
	TAP_EQ_INT(m.version, 7, "$version kept");
	TAP_EQ_STR(m.path, "test", "named for messages");
	te_manifest_free(&m);
	TAP_EQ_INT(te_manifest_parse(&m, "t", bad, sizeof(bad) - 1, &quiet), -TE_EINVALID,
		   "docker refused");
	TAP_OK(quiet.errors > 0, "and reported");
	TAP_EQ_INT(te_manifest_parse(&m, "t", "{\"modulesContent\":", 18, &quiet), -TE_EINVALID,
		   "truncated JSON refused");
}

static void test_admit(void)
{
	struct te_config cfg;
	struct te_manifest m;
	char err[400];

	te_config_defaults(&cfg);
	cfg.deployment.memory_budget = 64u << 20;
	/* 2 x 16 MiB + rings 4 x 64 KiB + 4 MiB runtime = 36.25 MiB */
	parse(&m, MOD("a", "16777216", "running") "," MOD("b", "16777216", "running"));
	TAP_EQ_INT(te_deploy_admit(&m, &cfg, err, sizeof(err)), 0, "under the budget");
	te_manifest_free(&m);
	parse(&m, MOD("a", "33554432", "running") "," MOD("b", "33554432", "running"));
	TAP_EQ_INT(te_deploy_admit(&m, &cfg, err, sizeof(err)), -TE_ELIMIT, "over the budget");
	TAP_OK(strstr(err, "71565312") && strstr(err, "67108864"), "figures named: %s", err);
	te_manifest_free(&m);
	parse(&m, MOD("a", "33554432", "running") "," MOD("b", "33554432", "stopped"));
	TAP_EQ_INT(te_deploy_admit(&m, &cfg, err, sizeof(err)), 0, "stopped modules not counted");
	te_manifest_free(&m);
	cfg.deployment.memory_budget = 0;  /* the device's RAM */
	parse(&m, MOD("a", "1048576", "running"));
	TAP_EQ_INT(te_deploy_admit(&m, &cfg, err, sizeof(err)), 0, "default budget: the RAM");
	te_manifest_free(&m);
}

int main(void)
{
	test_parse();
	test_admit();
	return tap_done();
}
