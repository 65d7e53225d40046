#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/manifest.h"
#include "core/err.h"
#include "diagcollect.h"
#include "tap.h"

static struct te_manifest man;
static struct collect col;

static int load(const char *text)
{
	const char *path = tmpfile_with(text);
	int r;

	collect_init(&col);
	r = te_manifest_load(&man, path, &col.diag);
	unlink(path);
	return r;
}

/* A manifest with one module "m" whose fields are F (JSON members). */
#define MOD(F) "{\"modulesContent\": {\"$edgeAgent\": {\"properties.desired\": {\"modules\": {\"m\": {" F "}}}}}}"
#define NATIVE "\"type\": \"native\", "
#define IMG "\"settings\": {\"image\": \"/bin/true\"}"
#define CO(X) "\"type\": \"native\", \"settings\": {\"image\": \"/bin/true\", \"createOptions\": " X "}"
#define HUB(R) "{\"modulesContent\": {\"$edgeAgent\": {\"properties.desired\": {}}, \"$edgeHub\": {\"properties.desired\": " R "}}}"

static const char sample[] =
	"{\"modulesContent\": {\n"
	" \"$edgeAgent\": {\"properties.desired\": {\"schemaVersion\": \"1.1\",\n"
	"  \"runtime\": {\"type\": \"native\", \"settings\": {}},\n"
	"  \"systemModules\": {\"edgeAgent\": {}},\n"
	"  \"modules\": {\n"
	"   \"sensor\": {\"type\": \"native\", \"status\": \"running\", \"restartPolicy\": \"on-failure\",\n"
	"     \"startupOrder\": 3, \"version\": \"1.0\",\n"
	"     \"env\": {\"A\": {\"value\": \"x y\"}, \"N\": {\"value\": 5}},\n"
	"     \"settings\": {\"image\": \"/usr/bin/sensor\", \"createOptions\": {\n"
	"       \"args\": [\"--fast\", \"-v\"], \"workdir\": \"/data\", \"user\": \"nobody\", \"group\": 100,\n"
	"       \"namespaces\": [\"pid\", \"mount\", \"net\"], \"rootfs\": \"/srv/rootfs\",\n"
	"       \"mounts\": [\"/data:/data:ro\", {\"source\": \"/var/x\", \"target\": \"/x\"}],\n"
	"       \"devices\": [\"/dev/ttyUSB0:rw\", \"/dev/i2c-1:/dev/i2c\"],\n"
	"       \"capabilities\": [\"CAP_NET_BIND_SERVICE\", \"net_raw\"],\n"
	"       \"limits\": {\"memoryBytes\": 16777216, \"pids\": 32, \"cpuPercent\": 50, \"nofile\": 256},\n"
	"       \"stopTimeoutSecs\": 3, \"watchdogSecs\": 30, \"io\": \"stdio\", \"ringBytes\": 65536}}},\n"
	"   \"split\": {\"type\": \"native\", \"settings\": {\"image\": \"/bin/split\",\n"
	"     \"createOptions\": \"{\\\"args\\\": [\\\"a\", \"createOptions01\": \"b\\\"]}\"}}\n"
	"  }}},\n"
	" \"$edgeHub\": {\"properties.desired\": {\"schemaVersion\": \"1.1\", \"routes\": {\n"
	"   \"r1\": \"FROM /messages/* INTO $upstream\",\n"
	"   \"r2\": {\"route\": \"FROM /messages/modules/sensor/* INTO $upstream\", \"priority\": 2, \"timeToLiveSecs\": 60}},\n"
	"   \"storeAndForwardConfiguration\": {\"timeToLiveSecs\": 100}}},\n"
	" \"sensor\": {\"properties.desired\": {\"threshold\": 3}}\n"
	"}}\n";

static void test_sample(void)
{
	const struct te_module_spec *s, *sp;

	TAP_EQ_INT(load(sample), 0, "full manifest loads");
	TAP_EQ_STR(col.text, "", "no problems");
	TAP_EQ_INT(man.nmodules, 2, "two modules");
	s = te_manifest_find(&man, "sensor");
	sp = te_manifest_find(&man, "split");
	TAP_OK(s && sp, "both found by name");
	if (!s || !sp)
		return;
	TAP_EQ_INT(s->restart, TE_RESTART_ON_FAILURE, "restartPolicy");
	TAP_EQ_INT(s->startup_order, 3, "startupOrder");
	TAP_EQ_INT(s->nenv, 2, "two env entries");
	TAP_EQ_STR(s->env[0], "A=x y", "string env value");
	TAP_EQ_STR(s->env[1], "N=5", "number env value as text");
	TAP_EQ_STR(s->image, "/usr/bin/sensor", "image");
	TAP_EQ_INT(s->nargs, 2, "args");
	TAP_EQ_STR(s->args[1], "-v", "second arg");
	TAP_EQ_STR(s->workdir, "/data", "workdir");
	TAP_EQ_STR(s->user, "nobody", "user by name");
	TAP_EQ_STR(s->group, "100", "group by number");
	TAP_EQ_INT(s->namespaces, TE_NS_PID | TE_NS_MOUNT | TE_NS_NET, "namespaces");
	TAP_EQ_INT(s->nmounts, 2, "mounts");
	TAP_OK(s->mounts[0].read_only && !s->mounts[1].read_only, "mount modes");
	TAP_EQ_STR(s->mounts[1].target, "/x", "object mount target");
	TAP_EQ_INT(s->ndevices, 2, "devices");
	TAP_EQ_STR(s->devices[0].permissions, "rw", "device permissions");
	TAP_EQ_STR(s->devices[0].target, "/dev/ttyUSB0", "device target defaults to path");
	TAP_EQ_STR(s->devices[1].target, "/dev/i2c", "device target");
	TAP_EQ_INT(s->capabilities, (1ull << 10) | (1ull << 13), "capabilities");
	TAP_EQ_INT(s->limits.memory_bytes, 16777216, "memoryBytes");
	TAP_EQ_INT(s->limits.cpu_percent, 50, "cpuPercent");
	TAP_EQ_INT(s->stop_timeout_secs, 3, "stopTimeoutSecs");
	TAP_EQ_INT(s->io, TE_IO_STDIO, "io stdio");
	TAP_EQ_INT(s->ring_bytes, 65536, "ringBytes");
	TAP_EQ_STR(s->desired_json, "{\"threshold\": 3}", "twin desired kept verbatim");
	TAP_EQ_INT(sp->nargs, 1, "split createOptions concatenated");
	TAP_EQ_STR(sp->nargs ? sp->args[0] : "", "ab", "split string joined");
	TAP_EQ_INT(sp->restart, TE_RESTART_ALWAYS, "default restartPolicy always");
	TAP_EQ_INT(sp->status, TE_STATUS_RUNNING, "default status running");
	TAP_EQ_INT(sp->startup_order, TE_STARTUP_ORDER_UNSET, "startupOrder unset");
	TAP_EQ_INT(sp->namespaces, TE_NS_DEFAULT, "default namespaces");
	TAP_EQ_INT(sp->capabilities, 0, "no capabilities by default");
	TAP_EQ_INT(sp->stop_timeout_secs, 10, "default stop timeout");
	TAP_EQ_INT(man.nroutes, 2, "routes");
	TAP_EQ_STR(man.routes[1].name, "r2", "route name");
	TAP_EQ_INT(man.routes[1].priority, 2, "route priority");
	TAP_EQ_INT(man.routes[1].ttl_secs, 60, "route TTL");
	TAP_OK(man.routes[0].ttl_secs == TE_TTL_UNSET, "route TTL unset");
	TAP_EQ_INT(man.ttl_secs, 100, "store TTL");
	TAP_EQ_INT(s->line, 6, "module position line");
	TAP_EQ_INT(s->col, 4, "module position column");
	te_manifest_free(&man);
}

/* Every field's error message. */
static const struct {
	const char *text;
	const char *message;
} bad[] = {
	{ "[]", "a deployment manifest must be a JSON object" },
	{ "{}", "missing required key \"modulesContent\"" },
	{ "{\"modulesContent\": {}}", "modulesContent: missing required key \"$edgeAgent\"" },
	{ "{\"modulesContent\": {\"$edgeAgent\": {}}}", "$edgeAgent: missing required key \"properties.desired\"" },
	{ "{\"modulesContent\": {\"$edgeAgent\": {\"properties.desired\": {\"runtime\": {\"type\": \"docker\"}}}}}", "$edgeAgent.runtime.type: only \"native\" is supported" },
	{ "{\"modulesContent\": {\"$edgeAgent\": {\"properties.desired\": {\"modules\": {\"-x\": {}}}}}}", "module name \"-x\"" },
	{ "{\"modulesContent\": {\"$edgeAgent\": {\"properties.desired\": {\"extra\": 1}}}}", "unknown key \"extra\" in $edgeAgent.properties.desired" },
	{ MOD(IMG), "modules.m: missing required key \"type\"" },
	{ MOD("\"type\": \"native\""), "modules.m: missing required key \"settings\"" },
	{ MOD("\"type\": \"docker\", " IMG), "modules.m.type: only \"native\" modules are supported" },
	{ MOD(NATIVE "\"status\": \"paused\", " IMG), "modules.m.status must be one of running, stopped" },
	{ MOD(NATIVE "\"restartPolicy\": \"sometimes\", " IMG), "modules.m.restartPolicy must be one of never, on-failure, on-unhealthy, always" },
	{ MOD(NATIVE "\"startupOrder\": -1, " IMG), "modules.m.startupOrder must be an integer from 0 to 4294967294" },
	{ MOD(NATIVE "\"startupOrder\": \"1\", " IMG), "modules.m.startupOrder must be a number" },
	{ MOD(NATIVE "\"env\": {\"A\": \"x\"}, " IMG), "modules.m.env.A must be an object" },
	{ MOD(NATIVE "\"env\": {\"A\": {}}, " IMG), "modules.m.env.A: missing required key \"value\"" },
	{ MOD(NATIVE "\"env\": {\"A=B\": {\"value\": \"1\"}}, " IMG), "modules.m.env.A=B: environment names" },
	{ MOD(NATIVE "\"env\": {\"IOTEDGE_MODULEID\": {\"value\": \"1\"}}, " IMG), "set by tinyedge" },
	{ MOD(NATIVE "\"settings\": {}"), "modules.m.settings: missing required key \"image\"" },
	{ MOD(NATIVE "\"settings\": {\"image\": \"bin/x\"}"), "modules.m.settings.image must be an absolute path" },
	{ MOD(NATIVE "\"settings\": {\"image\": \"/x\", \"env\": 1}"), "unknown key \"env\" in modules.m.settings" },
	{ MOD(NATIVE "\"settings\": {\"image\": \"/x\", \"createOptions\": 5}"), "createOptions must be a string or an object" },
	{ MOD(NATIVE "\"settings\": {\"image\": \"/x\", \"createOptions02\": \"{}\"}"), "parts must be consecutive" },
	{ MOD(CO("\"{\\\"args\\\": }\"")), "1:10: expected a value after ':'" },
	{ MOD(CO("\"[1]\"")), "createOptions must hold a JSON object" },
	{ MOD(CO("{\"HostConfig\": {}}")), "unknown key \"HostConfig\" in modules.m.settings.createOptions" },
	{ MOD(CO("{\"args\": \"-v\"}")), "createOptions.args must be an array" },
	{ MOD(CO("{\"args\": [1]}")), "createOptions.args[0] must be a string" },
	{ MOD(CO("{\"workdir\": \"tmp\"}")), "workdir must be an absolute path" },
	{ MOD(CO("{\"user\": \"a:b\"}")), "user must be a user or group name or a numeric id" },
	{ MOD(CO("{\"user\": -1}")), "createOptions.user must be an integer from 0" },
	{ MOD(CO("{\"namespaces\": [\"pid\", \"time\"]}")), "namespaces[] must be one of pid, mount, uts, ipc, net, user" },
	{ MOD(CO("{\"namespaces\": [\"pid\", \"pid\"]}")), "namespaces lists \"pid\" twice" },
	{ MOD(CO("{\"namespaces\": [\"pid\"], \"rootfs\": \"/r\"}")), "rootfs and mounts need the \"mount\" namespace" },
	{ MOD(CO("{\"mounts\": [\"/a\"]}")), "mounts[0] must be \"/host/path:/module/path[:ro|rw]\"" },
	{ MOD(CO("{\"mounts\": [\"/a:/b:rx\"]}")), "mounts[0] must be" },
	{ MOD(CO("{\"mounts\": [{\"source\": \"/a\"}]}")), "mounts[0]: missing required key \"target\"" },
	{ MOD(CO("{\"mounts\": [{\"source\": \"a\", \"target\": \"/b\"}]}")), "mount source must be an absolute path" },
	{ MOD(CO("{\"devices\": [\"ttyUSB0\"]}")), "devices[0] must be \"/dev/host[:/dev/module][:rwm]\"" },
	{ MOD(CO("{\"devices\": [\"/dev/x:rwx\"]}")), "devices[0] must be" },
	{ MOD(CO("{\"capabilities\": [\"CAP_FLY\"]}")), "not a Linux capability name" },
	{ MOD(CO("{\"limits\": {\"memoryBytes\": 100}}")), "limits.memoryBytes must be an integer from 1048576" },
	{ MOD(CO("{\"limits\": {\"pids\": 0}}")), "limits.pids must be an integer from 1 to 4194304" },
	{ MOD(CO("{\"limits\": {\"cpuPercent\": 0}}")), "limits.cpuPercent must be an integer from 1" },
	{ MOD(CO("{\"limits\": {\"nofile\": 2}}")), "limits.nofile must be an integer from 8" },
	{ MOD(CO("{\"limits\": {\"swap\": 2}}")), "unknown key \"swap\" in modules.m.settings.createOptions.limits" },
	{ MOD(CO("{\"stopTimeoutSecs\": 7200}")), "stopTimeoutSecs must be an integer from 0 to 3600" },
	{ MOD(CO("{\"watchdogSecs\": -5}")), "watchdogSecs must be an integer from 0 to 86400" },
	{ MOD(CO("{\"io\": \"pipe\"}")), "createOptions.io must be one of ring, stdio" },
	{ MOD(CO("{\"ringBytes\": 5000}")), "ringBytes must be a power of two" },
	{ MOD(CO("{\"ringBytes\": 1024}")), "ringBytes must be an integer from 4096" },
	{ HUB("{\"routes\": {\"r\": 5}}"), "routes.r must be a string or an object" },
	{ HUB("{\"routes\": {\"r\": \"\"}}"), "routes.r must be 1 to 4096 bytes long" },
	{ HUB("{\"routes\": {\"r\": {\"priority\": 1}}}"), "routes.r: missing required key \"route\"" },
	{ HUB("{\"routes\": {\"r\": {\"route\": \"x\", \"priority\": 10}}}"), "routes.r.priority must be an integer from 0 to 9" },
	{ HUB("{\"routes\": {\"r\": {\"route\": \"x\", \"ttl\": 1}}}"), "unknown key \"ttl\" in routes.r" },
	{ HUB("{\"storeAndForwardConfiguration\": {\"timeToLiveSecs\": \"1\"}}"), "storeAndForwardConfiguration.timeToLiveSecs must be a number" },
	{ "{\"modulesContent\": {\"$edgeAgent\": {\"properties.desired\": {}}, \"ghost\": {\"properties.desired\": {}}}}", "no module named \"ghost\"" },
	{ "{\"modulesContent\": {\"$edgeAgent\": {\"properties.desired\": {}}, \"$edgeHub\": []}}", "$edgeHub must be an object" },
};

static void test_bad(void)
{
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = load(bad[i].text);

		TAP_OK(r == -TE_EINVALID && collect_has(&col, bad[i].message),
		       "rejects with: %s", bad[i].message);
		if (!collect_has(&col, bad[i].message))
			printf("#   input: %s\n#   got: %s", bad[i].text, col.text);
		TAP_EQ_INT(man.nmodules + man.nroutes, 0, "nothing kept after an error");
	}
}

static void test_positions(void)
{
	load("{\"modulesContent\": {\n"
	     "  \"$edgeAgent\": {\"properties.desired\": {\"modules\": {\n"
	     "    \"a\": {\"type\": \"native\", \"status\": 1,\n"
	     "          \"settings\": {\"image\": \"/x\"}, \"oops\": 2}\n"
	     "}}}}}\n");
	TAP_OK(collect_has(&col, "3:39: modules.a.status must be a string"), "type error at 3:39");
	TAP_OK(collect_has(&col, "4:40: unknown key \"oops\" in modules.a"), "unknown key at 4:40");
	TAP_EQ_INT(col.diag.errors, 2, "both reported");
}

static void test_flags(void)
{
	struct te_manifest m;

	te_manifest_init(&m);
	collect_init(&col);
	TAP_EQ_INT(te_manifest_add_module_flag(&m, "s=/bin/sleep:10:x", &col.diag), 0, "--module with args");
	TAP_EQ_INT(te_manifest_add_module_flag(&m, "t=/bin/true", &col.diag), 0, "--module without args");
	TAP_EQ_INT(te_manifest_add_module_flag(&m, "s=/bin/cat", &col.diag), 0, "same name replaces");
	TAP_EQ_INT(m.nmodules, 2, "two modules");
	TAP_EQ_STR(m.modules[0].image, "/bin/cat", "replaced image");
	TAP_EQ_INT(m.modules[0].nargs, 0, "replaced args");
	TAP_EQ_INT(te_manifest_add_module_flag(&m, "u=/bin/sleep:10:x", &col.diag), 0, "another");
	TAP_EQ_INT(m.modules[2].nargs, 2, "args split at ':'");
	TAP_EQ_STR(m.modules[2].args[1], "x", "second arg");
	TAP_EQ_INT(te_manifest_add_module_flag(&m, "nope", &col.diag), -TE_EINVALID, "no '='");
	TAP_OK(collect_has(&col, "--module 'nope': expected NAME=PATH[:ARG...]"), "names the flag");
	TAP_EQ_INT(te_manifest_add_route_flag(&m, "FROM /messages/* INTO $upstream", &col.diag), 0, "--route");
	TAP_EQ_INT(m.nroutes, 1, "one route");
	TAP_EQ_STR(m.routes[0].name, "flag1", "route named after its flag");
	TAP_EQ_INT(te_manifest_add_route_flag(&m, "", &col.diag), -TE_EINVALID, "empty route");
	te_manifest_free(&m);
}

static void test_capability_names(void)
{
	TAP_EQ_INT(te_capability_from_name("CAP_SYS_ADMIN"), 21, "CAP_SYS_ADMIN");
	TAP_EQ_INT(te_capability_from_name("sys_admin"), 21, "sys_admin");
	TAP_EQ_INT(te_capability_from_name("CHECKPOINT_RESTORE"), 40, "last capability");
	TAP_EQ_INT(te_capability_from_name("CAP_"), -1, "CAP_ alone");
	TAP_EQ_STR(te_capability_name(12), "NET_ADMIN", "name of 12");
}

int main(void)
{
	test_sample();
	test_bad();
	test_positions();
	test_flags();
	test_capability_names();
	return tap_done();
}
