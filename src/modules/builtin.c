/* Built-in sample modules (`tinyedge module NAME`), busybox-style. Under
 * the daemon they talk through the SDK (include/tinyedge/module.h); run by
 * hand (no TINYEDGE_IPC_FD) they use stdout and stdin instead.
 *
 *   sim-sensor  Azure's SimulatedTemperatureSensor: machine and ambient
 *               readings as JSON to output "temperature" every INTERVAL_MS
 *               (1000); MESSAGE_COUNT (0 = no end) messages
 *   filter      forwards input messages whose machine temperature is above
 *               the twin's desired TemperatureThreshold (else THRESHOLD,
 *               25) to "output1", with MessageType=Alert; reports the
 *               threshold in force
 *   echo        forwards every input message to "output1" unchanged
 *   counter     [--count N] [--rate PER_S] [--size BYTES]: messages with
 *               property seq and body {"seq":N,"ns":T,...} to "output1"
 *   sink        [--delay-us N]: counts input messages, checks seq order and
 *               gaps (from the first seq it got), reports counts, rate and
 *               latency once a second and at exit; sleeps N us per message
 *
 * All exit 0 on SIGTERM, and answer the direct method "ping" with their
 * name and the call's payload. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control/commands.h"
#include "core/err.h"
#include "core/json.h"
#include "core/loop.h"
#include "tinyedge/module.h"

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
	signal(SIGPIPE, SIG_IGN);
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

/* Every built-in module answers the direct method "ping". */
static int on_method(te_module *m, const char *method, const char *payload, size_t len,
		     char *resp, size_t cap, size_t *resp_len, void *arg)
{
	int n;

	if (strcmp(method, "ping")) {
		n = snprintf(resp, cap, "{\"message\":\"no method named %s\"}",
			     strpbrk(method, "\"\\") || strlen(method) > 100 ? "so" : method);
		*resp_len = n > 0 && (size_t)n < cap ? (size_t)n : 0;
		return 404;
	}
	n = snprintf(resp, cap, "{\"module\":\"%s\",\"payload\":%s}", te_module_name(m),
		     len ? payload : "null");
	*resp_len = n > 0 && (size_t)n < cap ? (size_t)n : 0;
	return 200;
}

/* The SDK under the daemon; NULL when run by hand. Exits on a broken setup. */
static te_module *sdk_open(const char *who)
{
	te_module *m = NULL;
	int r;

	if (!getenv("TINYEDGE_IPC_FD"))
		return NULL;
	r = te_module_open(&m);
	if (r < 0) {
		fprintf(stderr, "%s: cannot open the module's rings: %s\n", who, strerror(-r));
		exit(1);
	}
	te_module_on_method(m, on_method, NULL);
	return m;
}

/* Send, waiting while the ring is full (the router drains it). */
static int send_wait(te_module *m, const char *output, const struct te_message *msg)
{
	int r;

	while ((r = te_module_send(m, output, msg)) == -EAGAIN && !stop)
		usleep(50);
	return r;
}

/* Forward one message (or print it when run by hand). */
static void emit(te_module *m, const char *output, const struct te_message *msg)
{
	int r;

	if (!m) {
		printf("%.*s\n", (int)msg->body_len, (const char *)msg->body);
		return;
	}
	r = send_wait(m, output, msg);
	if (r < 0 && r != -EAGAIN)
		fprintf(stderr, "send to %s: %s\n", output, strerror(-r));
}

/* Run the input loop until SIGTERM (stdin lines when run by hand). */
static int serve(te_module *m, te_input_fn fn, void *arg)
{
	char line[65536];

	if (!m) {
		while (!stop && fgets(line, sizeof(line), stdin)) {
			struct te_message msg = { .body = line, .body_len = strcspn(line, "\n") };

			fn(NULL, &msg, arg);
		}
		return 0;
	}
	te_module_on_input(m, fn, arg);
	while (!stop) {
		int r = te_module_dispatch(m, 1000);

		if (r < 0 && r != -EINTR) {
			fprintf(stderr, "dispatch: %s\n", strerror(-r));
			return 1;
		}
	}
	te_module_close(m);
	return 0;
}

/* --- sim-sensor --- */

static int sim_sensor(int argc, char **argv)
{
	long interval = env_long("INTERVAL_MS", 1000, 1, 3600000);
	long count = env_long("MESSAGE_COUNT", 0, 0, LONG_MAX);
	struct timespec ts = { interval / 1000, (interval % 1000) * 1000000 };
	te_module *m = sdk_open("sim-sensor");
	char body[256];
	long n;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (n = 0; !stop && (count == 0 || n < count); n++) {
		double t = 21.0 + 6.0 * sin((double)n / 20.0) + (double)(rand() % 100) / 100.0;
		struct te_message msg = { .body = body, .content_type = "application/json",
					  .content_encoding = "utf-8" };

		msg.body_len = (size_t)snprintf(body, sizeof(body),
			"{\"machine\":{\"temperature\":%.2f,\"pressure\":%.2f},"
			"\"ambient\":{\"temperature\":%.2f,\"humidity\":%d},\"seq\":%ld}",
			t, 1.0 + t / 10.0, 20.5 + (double)(rand() % 10) / 10.0, 24 + rand() % 4, n);
		emit(m, "temperature", &msg);
		nanosleep(&ts, NULL);
	}
	if (m)
		fprintf(stderr, "sim-sensor: sent %ld messages\n", n);
	while (!stop && count) /* done: wait to be stopped, as Azure's sensor */
		pause();
	te_module_close(m);
	return 0;
}

/* --- filter, echo --- */

static double machine_temperature(const struct te_message *msg)
{
	const char *b = msg->body, *p;
	char tmp[4096];
	size_t n = msg->body_len < sizeof(tmp) - 1 ? msg->body_len : sizeof(tmp) - 1;

	memcpy(tmp, b, n);
	tmp[n] = '\0';
	p = strstr(tmp, "\"temperature\":");
	return p ? strtod(p + 14, NULL) : NAN;
}

static void filter_input(te_module *m, const struct te_message *msg, void *arg)
{
	static const struct te_property alert = { "MessageType", "Alert" };
	double threshold = *(const double *)arg;
	struct te_message out = *msg;

	if (!(machine_temperature(msg) > threshold))
		return;
	out.props = &alert;
	out.nprops = 1;
	emit(m, "output1", &out);
}

/* desired.TemperatureThreshold (the name Azure's filter sample uses), if
 * the twin has a number there. */
static bool twin_threshold(const char *json, size_t len, int what, double *out)
{
	struct te_diag diag = { 0 };
	struct te_json_doc doc;
	int d = 0, t;
	bool ok = false;

	if (te_json_parse(&doc, "twin", json, len, NULL, &diag) < 0)
		return false;
	if (what == TE_TWIN_FULL)
		d = te_json_get(&doc, 0, "desired");
	t = d >= 0 ? te_json_get(&doc, (unsigned)d, "TemperatureThreshold") : -1;
	if (t >= 0 && doc.tok[t].type == TE_JSON_NUMBER) {
		*out = strtod(doc.text + doc.tok[t].start, NULL);
		ok = true;
	}
	te_json_free(&doc);
	return ok;
}

/* Apply the twin's threshold and report the one in force. */
static void filter_twin(te_module *m, int what, const char *json, size_t len, void *arg)
{
	double *threshold = arg;
	char patch[64];

	if (!twin_threshold(json, len, what, threshold))
		return;
	printf("filter: threshold %g from the twin%s\n", *threshold,
	       what == TE_TWIN_DESIRED_PATCH ? " (a desired patch)" : "");
	snprintf(patch, sizeof(patch), "{\"TemperatureThreshold\":%.17g}", *threshold);
	te_module_twin_report(m, patch);
}

static int filter(int argc, char **argv)
{
	static double threshold;
	te_module *m = sdk_open("filter");

	threshold = (double)env_long("THRESHOLD", 25, -273, 100000);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (m)
		te_module_on_twin(m, filter_twin, &threshold);
	return serve(m, filter_input, &threshold);
}

static void echo_input(te_module *m, const struct te_message *msg, void *arg)
{
	emit(m, "output1", msg);
}

static int echo(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	return serve(sdk_open("echo"), echo_input, NULL);
}

/* --- counter, sink --- */

static long arg_long(int argc, char **argv, const char *flag, long dflt)
{
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], flag))
			return strtol(argv[i + 1], NULL, 10);
	return dflt;
}

/* Decimal digits of v at p (no NUL); returns how many. */
static size_t put_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0, i;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	for (i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

/* A decimal number at *p, advancing it; false if there is none. */
static bool get_u64(const char **p, const char *end, uint64_t *v)
{
	const char *s = *p;

	*v = 0;
	while (s < end && *s >= '0' && *s <= '9')
		*v = *v * 10 + (uint64_t)(*s++ - '0');
	if (s == *p)
		return false;
	*p = s;
	return true;
}

static int counter(int argc, char **argv)
{
	long count = arg_long(argc, argv, "--count", 0);
	long rate = arg_long(argc, argv, "--rate", 0);
	long size = arg_long(argc, argv, "--size", 64);
	te_module *m = sdk_open("counter");
	char seq[24], body[TE_MODULE_BODY_MAX];
	struct te_property prop = { "seq", seq };
	uint64_t start = te_now_ns();
	long n;

	if (size < 32 || size > (long)sizeof(body))
		size = 64;
	memset(body, ' ', (size_t)size);
	for (n = 0; !stop && (count == 0 || n < count); n++) {
		struct te_message msg = { .body = body, .body_len = (size_t)size,
					  .props = &prop, .nprops = 1 };
		/* By hand: snprintf cost more than the router per message. */
		size_t k = put_u64(seq, (uint64_t)n);

		seq[k] = '\0';
		memcpy(body, "{\"seq\":", 7);
		memcpy(body + 7, seq, k);
		memcpy(body + 7 + k, ",\"ns\":", 6);
		k += 13;
		k += put_u64(body + k, te_now_ns());
		body[k] = '}';
		emit(m, "output1", &msg);
		while (rate && !stop && (double)(te_now_ns() - start) * (double)rate / 1e9 < (double)n)
			usleep(100);
	}
	fprintf(stderr, "counter: sent %ld messages\n", n);
	while (!stop)
		pause();
	te_module_close(m);
	return 0;
}

#define LAT_BUCKETS 10000  /* 1 us each; the last one holds everything slower */

struct sink_state {
	long received, gaps, reordered, next, first;
	long delay_us;
	uint64_t lat_sum_ns, lat_max_ns, since;
	long since_count;
	uint32_t lat_us[LAT_BUCKETS];
	long lat_n;
};

/* Latency percentile p (0..100) in us, from the 1 us histogram. */
static double sink_pct(const struct sink_state *s, double p)
{
	long want = (long)((double)s->lat_n * p / 100.0 + 0.999), seen = 0;

	for (int i = 0; i < LAT_BUCKETS && s->lat_n; i++) {
		seen += s->lat_us[i];
		if (seen >= want && seen > 0)
			return (double)i + 0.5;
	}
	return 0.0;
}

static void sink_report(struct sink_state *s, const char *when)
{
	double secs = (double)(te_now_ns() - s->since) / 1e9;

	printf("sink: %s received %ld gaps %ld reordered %ld first %ld rate %.0f msg/s latency_avg_us %.1f latency_max_us %.1f latency_p50_us %.1f latency_p99_us %.1f\n",
	       when, s->received, s->gaps, s->reordered, s->first,
	       secs > 0 ? (double)s->since_count / secs : 0.0,
	       s->received ? (double)s->lat_sum_ns / (double)s->received / 1e3 : 0.0,
	       (double)s->lat_max_ns / 1e3, sink_pct(s, 50), sink_pct(s, 99));
	s->since = te_now_ns();
	s->since_count = 0;
}

static void sink_input(te_module *m, const struct te_message *msg, void *arg)
{
	struct sink_state *s = arg;
	const char *b = msg->body, *end = b + msg->body_len, *q = b + 7;
	long seq = -1;
	uint64_t ns = 0, lat, v;

	/* {"seq":N,"ns":T...}, parsed by hand (sscanf cost more than routing). */
	if (msg->body_len >= 16 && !memcmp(b, "{\"seq\":", 7) && get_u64(&q, end, &v) &&
	    end - q > 6 && !memcmp(q, ",\"ns\":", 6) && (seq = (long)v, q += 6, get_u64(&q, end, &ns))) {
		if (s->first < 0)  /* gaps count from the first one this instance got */
			s->first = s->next = seq;
		if (seq > s->next)
			s->gaps += seq - s->next;
		else if (seq < s->next)
			s->reordered++;
		s->next = seq + 1;
		lat = te_now_ns() - ns;
		s->lat_sum_ns += lat;
		if (lat > s->lat_max_ns)
			s->lat_max_ns = lat;
		s->lat_us[lat / 1000 < LAT_BUCKETS ? lat / 1000 : LAT_BUCKETS - 1]++;
		s->lat_n++;
	}
	s->received++;
	s->since_count++;
	if (s->delay_us)
		usleep((useconds_t)s->delay_us);
	if (te_now_ns() - s->since > 1000000000u)
		sink_report(s, "so far");
}

static int sink(int argc, char **argv)
{
	static struct sink_state s;
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	s.since = te_now_ns();
	s.first = -1;
	s.delay_us = arg_long(argc, argv, "--delay-us", 0);
	r = serve(sdk_open("sink"), sink_input, &s);
	sink_report(&s, "final");
	return r;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *what;
} modules[] = {
	{ "sim-sensor", sim_sensor, "machine/ambient temperature JSON every INTERVAL_MS to output temperature" },
	{ "filter", filter, "forwards messages whose machine temperature is above the twin's TemperatureThreshold (or THRESHOLD)" },
	{ "echo", echo, "forwards every input message to output1" },
	{ "counter", counter, "numbered messages (seq) to output1: [--count N] [--rate PER_S] [--size BYTES]" },
	{ "sink", sink, "counts input messages, checks seq order and gaps, reports rate and latency: [--delay-us N] per message" },
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
	for (unsigned i = 0; i < sizeof(modules) / sizeof(modules[0]); i++) {
		if (!strcmp(argv[1], modules[i].name)) {
			handle_term();
			return modules[i].fn(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "tinyedge module: no built-in module '%s' (see 'tinyedge module list')\n", argv[1]);
	return TE_EXIT_USAGE;
}
