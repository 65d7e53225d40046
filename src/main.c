/* tinyedge: one binary, busybox-style verbs. */
#include <stdio.h>
#include <string.h>

#include "control/cli.h"
#include "control/commands.h"
#include "core/err.h"
#include "version.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *synopsis;
	const char *help;
};

static int cmd_help(int argc, char **argv);

static const struct command commands[] = {
	{ "run", te_cmd_run,
	  "run [-c CONFIG] [-m MANIFEST] [--state-dir DIR] [--log-level LEVEL] [--syslog]\n"
	  "    [--module NAME=PATH[:ARG...]]... [--route ROUTE]... [--upstream URL]",
	  "Run the daemon in the foreground: load the config and the deployment\n"
	  "manifest, start the modules and keep them as the manifest asks until\n"
	  "SIGTERM or SIGINT (modules stop in reverse startup order; a second\n"
	  "signal kills them at once). SIGHUP, or a change of the deployment\n"
	  "file, reloads: only added, removed or changed modules are touched;\n"
	  "an invalid reload is logged and changes nothing.\n"
	  "\n"
	  "  -c, --config FILE      device config (default /etc/tinyedge/config.json,\n"
	  "                         used when present)\n"
	  "  -m, --manifest FILE    deployment manifest (default\n"
	  "                         /etc/tinyedge/deployment.json, used when present\n"
	  "                         and no --module is given)\n"
	  "  --state-dir DIR        state directory (default: config stateDir, else\n"
	  "                         $TINYEDGE_STATE_DIR, else /var/lib/tinyedge)\n"
	  "  --log-level LEVEL      error, warn, info or debug\n"
	  "  --syslog               log to syslog (daemon facility) instead of\n"
	  "                         stderr, load problems included (init scripts)\n"
	  "  --module NAME=PATH[:ARG...]  add a module (repeatable)\n"
	  "  --route ROUTE          add a route (repeatable)\n"
	  "  --upstream URL         none, mqtt://HOST[:PORT] (plain TCP) or\n"
	  "                         mqtts://HOST[:PORT] (TLS): a generic MQTT broker;\n"
	  "                         $upstream messages wait in the store until it\n"
	  "                         acknowledges them (docs/upstream.md)\n"
	  "\n"
	  "Flags override the config file. Exit status: 0 after a clean stop,\n"
	  "1 on a runtime failure, 2 on invalid input." },
	{ "check", te_cmd_check,
	  "check [-c CONFIG] [-m MANIFEST] [--json] [run's --module/--route/--upstream]",
	  "Validate the config, the deployment manifest and the host (images,\n"
	  "rootfs, mounts, devices, state dir). Every problem is printed as\n"
	  "FILE:LINE:COLUMN: MESSAGE on stderr; exit 2 if there is any, else a\n"
	  "summary on stdout and exit 0. --json prints one JSON document on stdout\n"
	  "({\"ok\", \"problems\": [{file, line, column, message}], ...})." },
	{ "list", te_cmd_list, "list [--json] [--state-dir DIR]",
	  "Show the daemon's modules: status, pid, restarts, uptime, last exit,\n"
	  "memory. --json prints {\"modules\": [{\"name\", \"status\", \"runtimeStatus\",\n"
	  "\"pid\", \"restartCount\", \"exitCode\", \"lastStartTimeUtc\",\n"
	  "\"lastExitTimeUtc\", \"memoryBytes\", \"seccompDenied\", ...}]} (Azure's\n"
	  "reported names; seccompDenied: syscalls its seccomp profile denied).\n"
	  "runtimeStatus is running, stopped, failed, backoff or unhealthy." },
	{ "stats", te_cmd_stats, "stats [--json] [--state-dir DIR]",
	  "Show message counters: per module sent, received, spilled (messages\n"
	  "that had to wait; and the bytes waiting in memory now), dropped and\n"
	  "times its sending was blocked; per route its\n"
	  "overflow policy, matched, delivered and drops by reason (no such\n"
	  "module, full, oldest evicted); messages to $upstream. --json prints the\n"
	  "same document as list --json." },
	{ "logs", te_cmd_logs, "logs NAME [-f] [--tail N] [--since DURATION]",
	  "Print a module's output from the daemon's RAM ring, one line each:\n"
	  "time, stream, optional <N> syslog level, text.\n"
	  "\n"
	  "  -f, --follow       keep printing new lines until interrupted\n"
	  "  --tail N           only the last N lines\n"
	  "  --since DURATION   only lines newer than 90s, 10m, 2h, 1d" },
	{ "start", te_cmd_start, "start NAME",
	  "Start a stopped or failed module now. Until the next reload of the\n"
	  "deployment, this overrides the manifest's status." },
	{ "stop", te_cmd_stop, "stop NAME",
	  "Stop a module: SIGTERM, then SIGKILL to its whole cgroup after\n"
	  "stopTimeoutSecs. It stays stopped until started or the deployment is\n"
	  "reloaded." },
	{ "restart", te_cmd_restart, "restart NAME",
	  "Stop a module (as stop) and start it again; the backoff is reset." },
	{ "route", te_cmd_route,
	  "route test ROUTE [--prop K=V]... [--sys K=V]... [--body FILE|-] [--text STRING]",
	  "Compile a route (the edgeHub route language) and evaluate its condition\n"
	  "against one message: prints true, false or undefined (exit 0), or the\n"
	  "compile error with its column (exit 2). A route fires only on true.\n"
	  "\n"
	  "  --prop K=V    an application property (values are strings:\n"
	  "                compare numbers with as_number(K))\n"
	  "  --sys K=V     a system property: messageId, correlationId, contentType,\n"
	  "                contentEncoding, creationTimeUtc, connectionDeviceId,\n"
	  "                connectionModuleId, outputName, inputName, userId\n"
	  "  --body FILE   the body ('-': stdin); $body.a.b reads it when contentType\n"
	  "                is application/json and contentEncoding utf-8\n"
	  "  --text STRING the body from the command line" },
	{ "send", te_cmd_send,
	  "send NAME INPUT [--prop K=V]... [--sys K=V]... [--body FILE|-] [--text STRING]",
	  "Hand one message to the running daemon, for module NAME's input INPUT\n"
	  "(as a message from a device: routes are not involved). It is queued\n"
	  "when the module is busy or restarting, as a spill route would.\n"
	  "\n"
	  "  --prop K=V        an application property (up to 64)\n"
	  "  --sys K=V         a system property (messageId, correlationId,\n"
	  "                    contentType, contentEncoding, creationTimeUtc, ...)\n"
	  "  --body FILE       the body from a file ('-': stdin), up to 256 KiB\n"
	  "  --text STRING     the body from the command line" },
	{ "call", te_cmd_call, "call NAME METHOD [PAYLOAD] [--timeout SECS]",
	  "Invoke a direct method on a running module (its SDK method handler)\n"
	  "and print the JSON payload it answers. PAYLOAD is JSON (default null).\n"
	  "Exit 0 for a 2xx status, 1 for any other (the status is printed on\n"
	  "stderr) or when it does not answer within --timeout (default 30 s).\n"
	  "\n"
	  "NAME '$edgeAgent' calls the agent's built-in methods, as Azure IoT\n"
	  "Edge's edgeAgent (docs/methods.md), answered at once:\n"
	  "  ping\n"
	  "  RestartModule  '{\"schemaVersion\":\"1.0\",\"id\":\"MODULE\"}'\n"
	  "  GetModuleLogs  '{\"schemaVersion\":\"1.0\",\"items\":[{\"id\":\"REGEX\",\n"
	  "                  \"filter\":{\"tail\":N,\"since\":\"2 hours\",\"until\":T,\n"
	  "                  \"loglevel\":0-7,\"regex\":\"RE\"}}],\"contentType\":\"text\"|\"json\"}'\n"
	  "                 (the answer is at most 128 KiB: the newest lines are kept)\n"
	  "  GetTaskStatus  '{\"schemaVersion\":\"1.0\",\"correlationId\":\"ID\"}'" },
	{ "queue", te_cmd_queue, "queue [--json] | queue purge ENDPOINT | queue peek ENDPOINT [--limit N]",
	  "The offline store: its file, quota, bytes written (for flash budgets),\n"
	  "and per endpoint ($upstream) and priority the messages, bytes, oldest\n"
	  "age, delivered, expired and evicted counts. When the store could not\n"
	  "be opened, why. 'purge ENDPOINT' deletes an endpoint's messages; 'peek\n"
	  "ENDPOINT' prints them in delivery order as JSON without removing them\n"
	  "(--limit, default 100)." },
	{ "metrics", te_cmd_metrics, "metrics [--state-dir DIR]",
	  "Print the daemon's figures in the Prometheus text format (0.0.4):\n"
	  "per module messages in and out, drops, restarts, status, memory and\n"
	  "CPU time; per route matched, delivered and drops by reason; the store's\n"
	  "queues, size and bytes written; per uplink session online state and\n"
	  "time, connects, failures, published and acknowledged messages; the\n"
	  "daemon's memory, CPU time, uptime and version. The config's\n"
	  "\"metrics\": {\"port\": 9600, \"address\": \"127.0.0.1\"} also serves them\n"
	  "at http://ADDRESS:PORT/metrics. docs/metrics.md lists every metric." },
	{ "images", te_cmd_images, "images [--json] | images pull URL | images gc",
	  "The image cache (docs/images.md): per image its sha256, size, how many\n"
	  "modules use it, when it was last used and where it came from.\n"
	  "'pull URL' downloads https://HOST/PATH#sha256=HEX[&sig=BASE64] (or\n"
	  "http://, file:///PATH) into the cache through the daemon and prints the\n"
	  "cached file's path (exit 1 when the download or a check fails, 2 for a\n"
	  "bad URL). 'gc' removes unused images now (past images.gcGraceSecs, or\n"
	  "least recently used first while over images.cacheBytes) and prints them." },
	{ "twin", te_cmd_twin, "twin NAME [--desired PATCH]",
	  "Print a module's twin as the daemon holds it:\n"
	  "{\"desired\": {..., \"$version\": N}, \"reported\": {..., \"$version\": M}}.\n"
	  "Desired properties come from the deployment ({NAME}[\"properties.desired\"]),\n"
	  "the cloud and --desired; reported ones from the module. Twins are kept\n"
	  "in the store across restarts (docs/twins.md).\n"
	  "\n"
	  "  --desired PATCH   merge PATCH (a JSON object: objects merge, null\n"
	  "                    deletes, anything else replaces) into the desired\n"
	  "                    properties first; the running module gets it at\n"
	  "                    once, as a new desired $version. Exit 2 for a patch\n"
	  "                    that is not valid (the message says why)." },
	{ "module", te_cmd_module, "module list|NAME",
	  "Run a built-in module (sim-sensor, filter, echo, counter, sink) in the\n"
	  "foreground, as a deployment's module does with image /usr/bin/tinyedge\n"
	  "and args [\"module\", NAME, ...]. Under the daemon they use the message\n"
	  "rings; run by hand, stdin and stdout. 'tinyedge module list' says what\n"
	  "each does." },
	{ "version", te_cmd_version, "version",
	  "Print the version, git commit, build flags and dependency versions." },
	{ "help", cmd_help, "help [COMMAND]", "Show help for a command." },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *find_command(const char *name)
{
	for (unsigned i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* What `version` says the binary is for. */
#if defined(__GLIBC__)
#define TE_LIBC "glibc"
#elif defined(__UCLIBC__)
#define TE_LIBC "uclibc"
#else
#define TE_LIBC "musl"
#endif
#if defined(__x86_64__)
#define TE_ARCH "x86_64"
#elif defined(__i386__)
#define TE_ARCH "i386"
#elif defined(__aarch64__)
#define TE_ARCH "aarch64"
#elif defined(__arm__)
#define TE_ARCH "arm"
#elif defined(__mips__) && defined(__MIPSEL__)
#define TE_ARCH "mipsel"
#elif defined(__mips__)
#define TE_ARCH "mips"
#elif defined(__riscv) && __riscv_xlen == 64
#define TE_ARCH "riscv64"
#elif defined(__powerpc__)
#define TE_ARCH "powerpc"
#else
#define TE_ARCH "unknown-arch"
#endif

static void usage(FILE *f)
{
	fprintf(f, "usage: tinyedge COMMAND [OPTIONS]\n\n"
		   "An IoT edge runtime in one static binary: supervised modules in Linux\n"
		   "namespaces, message routes between them, an offline store, module\n"
		   "twins and an MQTT/TLS uplink to Azure IoT Hub or any MQTT broker.\n"
		   "Documentation: README.md and docs/ in the source tree.\n\ncommands:\n");
	for (unsigned i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  tinyedge %s\n", commands[i].synopsis);
	fprintf(f, "\nEvery command takes --help and --state-dir DIR.\n"
		   "Exit status: 0 ok, 1 runtime failure, 2 usage or invalid input.\n");
}

int te_help(const char *verb)
{
	const struct command *c = find_command(verb);

	if (!c) {
		usage(stdout);
		return TE_EXIT_OK;
	}
	printf("usage: tinyedge %s\n\n%s\n", c->synopsis, c->help);
	return TE_EXIT_OK;
}

static int cmd_help(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "--help"))
		return te_help(argv[0]);
	if (argc > 2 || (argc == 2 && !find_command(argv[1]))) {
		fprintf(stderr, "tinyedge help: unknown command '%s'\n", argv[1]);
		return TE_EXIT_USAGE;
	}
	return te_help(argc == 2 ? argv[1] : "");
}

int te_cmd_version(int argc, char **argv)
{
	struct te_cli cli;

	if (te_cli_parse(&cli, argc, argv, 0) < 0)
		return TE_EXIT_USAGE;
	if (cli.help)
		return te_help(argv[0]);
	if (cli.argc)
		return te_cli_usage_error(&cli, "unexpected argument '%s'", cli.argv[0]);
	printf("tinyedge %s\n"
	       "commit: %s\n"
	       "build: %s %s, static, %s, %s\n"
	       "dependencies: lmdb %s, bearssl %s, jsmn %s\n",
	       TE_VERSION, TE_GIT_COMMIT, TE_BUILD_CC, TE_BUILD_CFLAGS, TE_LIBC, TE_ARCH,
	       TE_DEP_LMDB, TE_DEP_BEARSSL, TE_DEP_JSMN);
	return TE_EXIT_OK;
}

int main(int argc, char **argv)
{
	const struct command *c;

	if (argc < 2) {
		usage(stderr);
		return TE_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return TE_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version"))
		return te_cmd_version(1, (char *[]){ "version", NULL });
	c = find_command(argv[1]);
	if (!c) {
		fprintf(stderr, "tinyedge: unknown command '%s'\nTry 'tinyedge --help'.\n", argv[1]);
		return TE_EXIT_USAGE;
	}
	return c->fn(argc - 1, argv + 1);
}
