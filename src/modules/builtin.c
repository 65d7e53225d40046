/* Built-in sample modules (`tinyedge module NAME`), busybox-style.
 *
 *   sim-sensor  prints a simulated temperature/humidity reading as one JSON
 *               line every INTERVAL_MS (default 1000) milliseconds
 *   filter      copies JSON lines from stdin whose "temperature" is above
 *               THRESHOLD (default 25) to stdout
 *
 * Both exit 0 on SIGTERM. The message rings arrive with the hub; until then
 * their input and output are stdin and stdout. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control/commands.h"
#include "core/err.h"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	stop = 1;
}

static void handle_term(void)
{
	struct sigaction sa = { .sa_handler = on_term };

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

static long env_long(const char *name, long dflt, long min, long max)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (!s || !*s)
		return dflt;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max) {
		fprintf(stderr, "%s=%s: expected an integer from %ld to %ld; using %ld\n",
			name, s, min, max, dflt);
		return dflt;
	}
	return v;
}

static int sim_sensor(void)
{
	long interval = env_long("INTERVAL_MS", 1000, 1, 3600000);
	struct timespec ts = { interval / 1000, (interval % 1000) * 1000000 };
	unsigned long n = 0;

	handle_term();
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (!stop) {
		double t = 21.0 + 6.0 * sin((double)n / 20.0) + (double)(rand() % 100) / 100.0;
		double h = 40.0 + 10.0 * cos((double)n / 30.0);

		printf("{\"temperature\":%.2f,\"humidity\":%.1f,\"seq\":%lu}\n", t, h, n++);
		nanosleep(&ts, NULL);
	}
	return 0;
}

static int filter(void)
{
	long threshold = env_long("THRESHOLD", 25, -273, 10000);
	char line[4096];
	const char *p;

	handle_term();
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (!stop && fgets(line, sizeof(line), stdin)) {
		p = strstr(line, "\"temperature\":");
		if (p && strtod(p + 14, NULL) > (double)threshold)
			fputs(line, stdout);
	}
	fprintf(stderr, "filter: input closed; waiting for SIGTERM\n");
	while (!stop)
		pause();
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(void);
	const char *what;
} modules[] = {
	{ "sim-sensor", sim_sensor, "simulated temperature/humidity readings, one JSON line every INTERVAL_MS" },
	{ "filter", filter, "passes readings whose temperature is above THRESHOLD" },
};

int te_cmd_module(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "LIST") || !strcmp(argv[1], "list")) {
		for (unsigned i = 0; i < sizeof(modules) / sizeof(modules[0]); i++)
			printf("%-12s %s\n", modules[i].name, modules[i].what);
		return TE_EXIT_OK;
	}
	if (!strcmp(argv[1], "--help"))
		return te_help(argv[0]);
	for (unsigned i = 0; i < sizeof(modules) / sizeof(modules[0]); i++)
		if (!strcmp(argv[1], modules[i].name))
			return modules[i].fn();
	fprintf(stderr, "tinyedge module: no built-in module '%s' (see 'tinyedge module list')\n", argv[1]);
	return TE_EXIT_USAGE;
}
