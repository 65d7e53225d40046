#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"
#include "diagcollect.h"
#include "tap.h"

static struct te_config cfg;
static struct collect col;

static int load(const char *text)
{
	const char *path = tmpfile_with(text);
	int r;

	te_config_defaults(&cfg);
	collect_init(&col);
	r = te_config_load(&cfg, path, &col.diag);
	unlink(path);
	return r;
}

static void test_defaults(void)
{
	TAP_EQ_INT(load("{}"), 0, "empty object is a valid config");
	TAP_EQ_STR(cfg.state_dir, "/var/lib/tinyedge", "default state dir");
	TAP_EQ_INT(cfg.upstream.protocol, TE_UP_NONE, "default upstream none");
	TAP_EQ_INT(cfg.store.ttl_secs, 7200, "default TTL 7200 s");
	TAP_EQ_INT(cfg.log_level, TE_LOG_INFO, "default log level info");
	TAP_OK(te_config_valid_id(cfg.device_id), "default device id is valid: %s", cfg.device_id);
	TAP_EQ_INT(cfg.metrics.port, 0, "no metrics endpoint by default");
}

static void test_metrics(void)
{
	TAP_EQ_INT(load("{\"metrics\": {\"port\": 9600}}"), 0, "metrics with a port");
	TAP_EQ_INT(cfg.metrics.port, 9600, "metrics.port");
	TAP_EQ_STR(cfg.metrics.address, "127.0.0.1", "metrics.address defaults to loopback");
	TAP_EQ_INT(load("{\"metrics\": {\"port\": 1, \"address\": \"0.0.0.0\"}}"), 0,
		   "an explicit address");
	TAP_EQ_STR(cfg.metrics.address, "0.0.0.0", "metrics.address");
}

static void test_full(void)
{
	int r = load("{\"deviceId\": \"gw-1\", \"stateDir\": \"/tmp/x\", \"logLevel\": \"debug\","
		     "\"upstream\": {\"protocol\": \"mqtt\", \"host\": \"broker\", \"port\": 8883,"
		     " \"tls\": true, \"caFile\": \"/etc/ca.pem\", \"keepAliveSecs\": 60},"
		     "\"storeAndForward\": {\"path\": \"/data/store\", \"maxBytes\": 16777216, \"timeToLiveSecs\": -1},"
		     "\"restartBackoff\": {\"initialMs\": 500, \"maxMs\": 1000, \"resetAfterSecs\": 30},"
		     "\"logs\": {\"ringBytes\": 8192, \"persist\": true, \"syslog\": false}}");

	TAP_EQ_INT(r, 0, "full config loads");
	TAP_EQ_STR(col.text, "", "no problems reported");
	TAP_EQ_STR(cfg.device_id, "gw-1", "deviceId");
	TAP_EQ_INT(cfg.log_level, TE_LOG_DEBUG, "logLevel");
	TAP_EQ_STR(cfg.upstream.host, "broker", "upstream.host");
	TAP_EQ_INT(cfg.upstream.port, 8883, "upstream.port");
	TAP_EQ_INT(cfg.upstream.keepalive_secs, 60, "keepAliveSecs");
	TAP_EQ_INT(cfg.store.max_bytes, 16777216, "maxBytes");
	TAP_EQ_INT(cfg.store.ttl_secs, -1, "negative TTL kept (= keep until quota)");
	TAP_EQ_INT(cfg.backoff.initial_ms, 500, "initialMs");
	TAP_OK(cfg.logs.persist, "logs.persist");
}

static const struct {
	const char *text;
	const char *message;
} bad_cases[] = {
	{ "[]", "1:1: the config must be a JSON object" },
	{ "{\"deviceid\": \"x\"}", "1:2: unknown key \"deviceid\"" },
	{ "{\"deviceId\": 5}", "1:14: deviceId must be a string" },
	{ "{\"deviceId\": \"a b\"}", "deviceId may hold only letters" },
	{ "{\"deviceId\": \"\"}", "deviceId must not be empty" },
	{ "{\"stateDir\": \"rel\"}", "stateDir must be an absolute path" },
	{ "{\"logLevel\": \"trace\"}", "logLevel must be one of error, warn, info, debug" },
	{ "{\"upstream\": {}}", "upstream: missing required key \"protocol\"" },
	{ "{\"upstream\": {\"protocol\": \"amqp\"}}", "upstream.protocol must be one of none, mqtt, azure-iot-hub" },
	{ "{\"upstream\": {\"protocol\": \"mqtt\"}}", "protocol mqtt needs \"host\"" },
	{ "{\"upstream\": {\"protocol\": \"mqtt\", \"host\": \"h\", \"port\": 70000}}", "upstream.port must be an integer from 1 to 65535" },
	{ "{\"upstream\": {\"protocol\": \"mqtt\", \"host\": \"h\", \"tls\": 1}}", "upstream.tls must be a boolean" },
	{ "{\"upstream\": {\"protocol\": \"mqtt\", \"host\": \"h\", \"certFile\": \"/c\"}}", "certFile and keyFile go together" },
	{ "{\"upstream\": {\"protocol\": \"azure-iot-hub\"}}", "needs \"connectionString\"" },
	{ "{\"upstream\": {\"protocol\": \"azure-iot-hub\", \"connectionString\": \"HostName=h\"}}", "needs HostName and DeviceId" },
	{ "{\"upstream\": {\"protocol\": \"azure-iot-hub\", \"connectionString\": \"HostName=h;DeviceId=d\"}}", "needs SharedAccessKey" },
	{ "{\"upstream\": {\"protocol\": \"azure-iot-hub\", \"connectionString\": \"HostName=h;Bogus=1\"}}", "unknown part Bogus" },
	{ "{\"deviceId\": \"x\", \"upstream\": {\"protocol\": \"azure-iot-hub\", \"connectionString\": \"HostName=h;DeviceId=d;SharedAccessKey=a2V5\"}}", "deviceId \"x\" differs from the connection string's DeviceId \"d\"" },
	{ "{\"upstream\": {\"protocol\": \"mqtt\", \"host\": \"h\", \"connectionString\": \"x\"}}", "only for protocol azure-iot-hub" },
	{ "{\"storeAndForward\": {\"maxBytes\": 10}}", "storeAndForward.maxBytes must be an integer from 1048576" },
	{ "{\"restartBackoff\": {\"initialMs\": 5000, \"maxMs\": 100}}", "maxMs (100) is less than initialMs (5000)" },
	{ "{\"logs\": {\"ringBytes\": 1.5}}", "logs.ringBytes must be an integer" },
	{ "{\"logs\": {\"color\": true}}", "unknown key \"color\" in logs" },
	{ "{\"metrics\": {\"port\": 0}}", "metrics.port must be an integer from 1 to 65535" },
	{ "{\"metrics\": {\"port\": 65536}}", "metrics.port must be an integer from 1 to 65535" },
	{ "{\"metrics\": {\"port\": \"9600\"}}", "metrics.port must be a number" },
	{ "{\"metrics\": {}}", "metrics: missing required key \"port\"" },
	{ "{\"metrics\": {\"port\": 9600, \"address\": \"localhost\"}}", "metrics.address must be an IPv4 address such as 127.0.0.1, not \"localhost\"" },
	{ "{\"metrics\": {\"port\": 9600, \"address\": \"::1\"}}", "metrics.address must be an IPv4 address" },
	{ "{\"metrics\": {\"port\": 9600, \"address\": \"127.0.0.256\"}}", "metrics.address must be an IPv4 address" },
	{ "{\"metrics\": {\"port\": 9600, \"path\": \"/m\"}}", "unknown key \"path\" in metrics" },
	{ "{\"metrics\": true}", "metrics must be an object" },
};

static void test_bad(void)
{
	for (unsigned i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		int r = load(bad_cases[i].text);

		TAP_OK(r == -TE_EINVALID && collect_has(&col, bad_cases[i].message),
		       "%s -> %s", bad_cases[i].text, bad_cases[i].message);
		if (!collect_has(&col, bad_cases[i].message))
			printf("#   got: %s", col.text);
	}
}

static void test_many_problems_reported(void)
{
	load("{\n \"logLevel\": 1,\n \"stateDir\": \"x\",\n \"nope\": 0\n}");
	TAP_EQ_INT(col.diag.errors, 3, "three problems, three reports");
	TAP_OK(collect_has(&col, "2:14: logLevel must be a string"), "first at 2:14");
	TAP_OK(collect_has(&col, "4:2: unknown key \"nope\""), "third at 4:2");
}

static void test_azure_sets_device_id(void)
{
	int r = load("{\"upstream\": {\"protocol\": \"azure-iot-hub\", \"connectionString\":"
		     " \"HostName=hub.azure-devices.net;DeviceId=dev1;SharedAccessKey=a2V5\"}}");

	TAP_EQ_INT(r, 0, "azure connection string accepted");
	TAP_EQ_STR(cfg.device_id, "dev1", "device id taken from the connection string");
}

static void test_missing_file(void)
{
	te_config_defaults(&cfg);
	collect_init(&col);
	TAP_OK(te_config_load(&cfg, "/nonexistent/config.json", &col.diag) < 0, "missing file fails");
	TAP_OK(collect_has(&col, "No such file or directory"), "and says why: %s", col.text);
}

static void test_upstream_url(void)
{
	char err[200];

	te_config_defaults(&cfg);
	TAP_EQ_INT(te_config_parse_upstream_url(&cfg, "mqtt://broker:1884", err, sizeof(err)), 0, "mqtt URL");
	TAP_EQ_STR(cfg.upstream.host, "broker", "host");
	TAP_EQ_INT(cfg.upstream.port, 1884, "port");
	TAP_OK(!cfg.upstream.tls, "mqtt:// is plain TCP");
	TAP_EQ_INT(te_config_parse_upstream_url(&cfg, "mqtts://[::1]:8883", err, sizeof(err)), 0, "IPv6 URL");
	TAP_EQ_STR(cfg.upstream.host, "::1", "IPv6 host");
	TAP_OK(cfg.upstream.tls, "mqtts:// is TLS");
	TAP_EQ_INT(te_config_parse_upstream_url(&cfg, "mqtts://h", err, sizeof(err)), 0, "no port");
	TAP_EQ_INT(cfg.upstream.port, 0, "port 0 = protocol default");
	TAP_EQ_INT(te_config_parse_upstream_url(&cfg, "none", err, sizeof(err)), 0, "none");
	TAP_EQ_INT(cfg.upstream.protocol, TE_UP_NONE, "none disables upstream");
	const char *bad[] = { "http://h", "mqtt://", "mqtt://h:0", "mqtt://h:65536", "mqtt://h:",
			      "mqtt://h:12x", "mqtt://[::1", "mqtt://h/path" };
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TAP_EQ_INT(te_config_parse_upstream_url(&cfg, bad[i], err, sizeof(err)),
			   -TE_EINVALID, "rejects %s", bad[i]);
}

int main(void)
{
	test_defaults();
	test_full();
	test_metrics();
	test_bad();
	test_many_problems_reported();
	test_azure_sets_device_id();
	test_missing_file();
	test_upstream_url();
	return tap_done();
}
