/* Unit tests for src/upstream/azure.c: the SAS known-answer test from
 * issue 6 and a second vector computed with Python's hmac (independent of
 * BearSSL), connection strings (every error), URL coding, the telemetry
 * property bag, every topic parser with valid and hostile input, generic
 * mode templates and topics. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tap.h"
#include "upstream/azure.h"

#define KEY "+XLy+MVZ+aTeOnVzN2kLeB16O+kSxmz6g3rS6fAf6rw="

static void test_sas(void)
{
	char out[512];

	TAP_EQ_INT(te_azure_sas(KEY, "iot-hub-for-test.azure-devices.net/devices/iot-device-for-test",
				1471940363, NULL, out, sizeof(out)), 0, "SAS: known answer");
	TAP_EQ_STR(out, "SharedAccessSignature sr=iot-hub-for-test.azure-devices.net%2Fdevices"
		   "%2Fiot-device-for-test&sig=SIumZ1ACqqPJZ2okHDlW9MSYKykEpqsQY3z6FMOICd4%3D"
		   "&se=1471940363", "SAS: the token");
	TAP_EQ_INT(te_azure_sas(KEY, "myhub.azure-devices.net/devices/dev1/modules/filter",
				1700000000, "iothubowner", out, sizeof(out)), 0, "SAS: module, skn");
	TAP_EQ_STR(out, "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1"
		   "%2Fmodules%2Ffilter&sig=7kRFQAx1FtzJngyf02FBJvvuP7g8IQ%2B7LPoIx%2BHmFSY%3D"
		   "&se=1700000000&skn=iothubowner", "SAS: module token with skn");
	TAP_EQ_INT(te_azure_sas(KEY, "h/devices/d", 1, "", out, sizeof(out)), 0,
		   "SAS: empty key name is no skn");
	TAP_OK(!strstr(out, "skn"), "SAS: no skn");
	TAP_EQ_INT(te_azure_sas("a2V5=", "h/devices/d", 1, NULL, out, sizeof(out)),
		   -TE_EINVALID, "SAS: key not base64");
	TAP_EQ_INT(te_azure_sas("", "h/devices/d", 1, NULL, out, sizeof(out)),
		   -TE_EINVALID, "SAS: empty key");
	TAP_EQ_INT(te_azure_sas(KEY, "h/devices/d", 1, "a b", out, sizeof(out)),
		   -TE_EINVALID, "SAS: bad key name");
	TAP_EQ_INT(te_azure_sas(KEY, "h/devices/d", 1, NULL, out, 40), -TE_ENOSPACE,
		   "SAS: small buffer");
	TAP_EQ_INT(strlen(out), 39, "SAS: small buffer holds a terminated prefix");
}

static void test_identity(void)
{
	char out[256];
	size_t n;

	TAP_EQ_INT(te_azure_client_id("dev1", NULL, out, sizeof(out), &n), 0, "client id");
	TAP_EQ_STR(out, "dev1", "client id: device");
	te_azure_client_id("dev1", "filter", out, sizeof(out), &n);
	TAP_EQ_STR(out, "dev1/filter", "client id: module");
	TAP_EQ_INT(n, 11, "client id: length");
	TAP_EQ_INT(te_azure_username("myhub.azure-devices.net", "dev1", "", out, sizeof(out), &n),
		   0, "username");
	TAP_EQ_STR(out, "myhub.azure-devices.net/dev1/?api-version=2021-04-12", "username: device");
	te_azure_username("myhub.azure-devices.net", "dev1", "filter", out, sizeof(out), &n);
	TAP_EQ_STR(out, "myhub.azure-devices.net/dev1/filter/?api-version=2021-04-12",
		   "username: module");
	TAP_EQ_INT(te_azure_username("my hub", "dev1", NULL, out, sizeof(out), &n),
		   -TE_EINVALID, "username: bad host");
	TAP_EQ_INT(te_azure_client_id("dev/1", NULL, out, sizeof(out), &n), -TE_EINVALID,
		   "client id: bad device");
	TAP_EQ_INT(te_azure_client_id("dev1", "a#", out, sizeof(out), &n), -TE_EINVALID,
		   "client id: bad module");
	TAP_EQ_INT(te_azure_client_id("dev1", "filter", out, 11, &n), -TE_ENOSPACE,
		   "client id: one byte short");
	TAP_EQ_INT(n, 11, "client id: the length needed");
	te_azure_resource("h.net", "d", "m", out, sizeof(out), &n);
	TAP_EQ_STR(out, "h.net/devices/d/modules/m", "resource: module");
	te_azure_resource("h.net", "d", NULL, out, sizeof(out), &n);
	TAP_EQ_STR(out, "h.net/devices/d", "resource: device");
}

/* --- connection strings --- */

static void test_cs_good(void)
{
	struct te_azure_cs cs;
	char err[160] = "";

	TAP_EQ_INT(te_azure_cs_parse("HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=" KEY,
				     &cs, err, sizeof(err)), 0, "cs: minimal");
	TAP_EQ_STR(cs.host, "myhub.azure-devices.net", "cs: host");
	TAP_EQ_STR(cs.hub, "myhub", "cs: hub name");
	TAP_EQ_STR(cs.device, "dev1", "cs: device");
	TAP_EQ_STR(cs.key, KEY, "cs: key kept in base64, '=' in it");
	TAP_OK(!cs.module[0] && !cs.gateway[0] && !cs.key_name[0] && !cs.x509, "cs: no extras");
	TAP_EQ_INT(te_azure_cs_parse("GatewayHostName=gw.local;ModuleId=filter;DeviceId=dev1;"
				     "SharedAccessKeyName=owner;HostName=hub;SharedAccessKey=a2V5",
				     &cs, err, sizeof(err)), 0, "cs: everything, any order");
	TAP_OK(!strcmp(cs.module, "filter") && !strcmp(cs.gateway, "gw.local") &&
	       !strcmp(cs.key_name, "owner") && !strcmp(cs.hub, "hub"), "cs: extras");
	TAP_EQ_INT(te_azure_cs_parse("HostName=h.net;DeviceId=d;x509=true", &cs, err, sizeof(err)),
		   0, "cs: x509");
	TAP_OK(cs.x509 && !cs.key[0], "cs: x509 set, no key");
	TAP_EQ_INT(te_azure_cs_parse("HostName=h.net;DeviceId=d;SharedAccessKey=a2V5;", &cs, err,
				     sizeof(err)), 0, "cs: trailing ';'");
}

static const struct {
	const char *cs, *msg;
} cs_bad[] = {
	{ "", "needs HostName and DeviceId" },
	{ "HostName=h", "needs HostName and DeviceId" },
	{ "DeviceId=d;SharedAccessKey=a2V5", "needs HostName and DeviceId" },
	{ "HostName=h;DeviceId=d", "needs SharedAccessKey" },
	{ "HostName=h;Bogus=1", "unknown part Bogus" },
	{ "hostname=h;DeviceId=d;SharedAccessKey=a2V5", "unknown part hostname" },
	{ "HostName=h;DeviceId=d;SharedAccessKey=a2V5;;", "part  has no '='" },
	{ "HostName", "part HostName has no '='" },
	{ "HostName=h;HostName=g;DeviceId=d;SharedAccessKey=a2V5", "HostName appears twice" },
	{ "HostName=h;DeviceId=;SharedAccessKey=a2V5", "DeviceId is empty" },
	{ "HostName=;DeviceId=d;SharedAccessKey=a2V5", "HostName is empty" },
	{ "HostName=h;DeviceId=d;SharedAccessKey=", "SharedAccessKey is empty" },
	{ "HostName=h;DeviceId=d;SharedAccessKey=c2VjcmV0;SharedAccessKey=c2VjcmV0",
	  "SharedAccessKey appears twice" },
	{ "HostName=h;DeviceId=d;SharedAccessKey=c2VjcmV0!", "SharedAccessKey is not valid base64" },
	{ "HostName=h;DeviceId=d;SharedAccessKey=c2VjcmV", "SharedAccessKey is not valid base64" },
	{ "HostName=h;DeviceId=d;SharedAccessKey=====", "SharedAccessKey is not valid base64" },
	{ "HostName=h..net;DeviceId=d;SharedAccessKey=a2V5", "HostName must be a DNS name" },
	{ "HostName=h/x;DeviceId=d;SharedAccessKey=a2V5", "HostName must be a DNS name" },
	{ "HostName=h.;DeviceId=d;SharedAccessKey=a2V5", "HostName must be a DNS name" },
	{ "HostName=h;DeviceId=a b;SharedAccessKey=a2V5", "DeviceId is not a valid id" },
	{ "HostName=h;DeviceId=d;ModuleId=m/x;SharedAccessKey=a2V5", "ModuleId is not a valid id" },
	{ "HostName=h;DeviceId=d;ModuleId=;SharedAccessKey=a2V5", "ModuleId is empty" },
	{ "HostName=h;DeviceId=d;SharedAccessKeyName=a b;SharedAccessKey=a2V5",
	  "SharedAccessKeyName is not a valid id" },
	{ "HostName=h;DeviceId=d;GatewayHostName=g_w;SharedAccessKey=a2V5",
	  "GatewayHostName must be a DNS name" },
	{ "HostName=h;DeviceId=d;x509=yes", "x509 must be true" },
	{ "HostName=h;DeviceId=d;x509=true;SharedAccessKey=a2V5",
	  "SharedAccessKey and x509 exclude each other" },
};

static void test_cs_bad(void)
{
	struct te_azure_cs cs;
	char err[160];

	for (size_t i = 0; i < sizeof(cs_bad) / sizeof(cs_bad[0]); i++) {
		int r;

		strcpy(err, "(none)");
		r = te_azure_cs_parse(cs_bad[i].cs, &cs, err, sizeof(err));
		TAP_OK(r == -TE_EINVALID && strstr(err, cs_bad[i].msg), "cs \"%s\" -> %s",
		       cs_bad[i].cs, cs_bad[i].msg);
		if (!strstr(err, cs_bad[i].msg))
			printf("#   got %d: %s\n", r, err);
		TAP_OK(!strstr(err, "c2VjcmV0"), "cs: the key's value is not in the message");
	}
}

static void test_cs_long(void)
{
	static char cs[4096], err[160];
	struct te_azure_cs out;
	int n = snprintf(cs, sizeof(cs), "HostName=h;DeviceId=d;SharedAccessKey=");

	memset(cs + n, 'A', TE_SECRET_MAX);
	TAP_EQ_INT(te_azure_cs_parse(cs, &out, err, sizeof(err)), -TE_EINVALID, "cs: key too long");
	TAP_OK(strstr(err, "SharedAccessKey is too long") != NULL, "cs: says so: %s", err);
	n = snprintf(cs, sizeof(cs), "HostName=h;SharedAccessKey=a2V5;DeviceId=");
	memset(cs + n, 'd', TE_ID_MAX + 1);
	cs[n + TE_ID_MAX + 1] = 0;
	TAP_EQ_INT(te_azure_cs_parse(cs, &out, err, sizeof(err)), -TE_EINVALID, "cs: id too long");
	TAP_OK(strstr(err, "DeviceId is too long") != NULL, "cs: says so: %s", err);
	TAP_EQ_INT(te_azure_cs_parse("x", &out, NULL, 0), -TE_EINVALID, "cs: no room for a message");
}

/* --- URL coding --- */

static void test_url(void)
{
	char out[128];
	size_t n, bad;

	te_url_encode("AZaz09-._~", 10, out, sizeof(out), &n);
	TAP_EQ_STR(out, "AZaz09-._~", "encode: unreserved stay");
	te_url_encode("a b/c?d=e&f+g%h$", 16, out, sizeof(out), &n);
	TAP_EQ_STR(out, "a%20b%2Fc%3Fd%3De%26f%2Bg%25h%24", "encode: reserved, upper-case hex");
	te_url_encode("\x00\xff\xc3\xa9", 4, out, sizeof(out), &n);
	TAP_EQ_STR(out, "%00%FF%C3%A9", "encode: NUL and high bytes");
	TAP_EQ_INT(n, 12, "encode: length");
	TAP_EQ_INT(te_url_encode("/", 1, out, 3, &n), -TE_ENOSPACE, "encode: no room for NUL");
	TAP_EQ_INT(n, 3, "encode: length needed");
	TAP_EQ_INT(te_url_decode("a%20b%2fc%2F+%7e", 16, out, sizeof(out), &n, NULL), 0, "decode");
	TAP_EQ_STR(out, "a b/c/+~", "decode: either case, '+' is a plus");
	TAP_EQ_INT(te_url_decode("%C3%A9", 6, out, sizeof(out), &n, NULL), 0, "decode: UTF-8");
	TAP_EQ_INT(n, 2, "decode: two bytes");

	static const struct {
		const char *in;
		size_t at;
	} bad_in[] = { { "%", 0 }, { "a%2", 1 }, { "%G0", 0 }, { "%0g", 0 },
		       { "ab%00", 2 }, { "%%41", 0 }, { "x% 1", 1 } };
	for (size_t i = 0; i < sizeof(bad_in) / sizeof(bad_in[0]); i++) {
		bad = 99;
		TAP_EQ_INT(te_url_decode(bad_in[i].in, strlen(bad_in[i].in), out, sizeof(out),
					 &n, &bad), -TE_EMALFORMED, "decode \"%s\" refused", bad_in[i].in);
		TAP_EQ_INT(bad, bad_in[i].at, "decode \"%s\": at %zu", bad_in[i].in, bad_in[i].at);
	}
	TAP_EQ_INT(te_url_decode("a\0b", 3, out, sizeof(out), &n, &bad), -TE_EMALFORMED,
		   "decode: raw NUL refused");
	TAP_EQ_INT(te_url_decode("%41%42", 6, out, 2, &n, NULL), -TE_ENOSPACE, "decode: small");
	TAP_EQ_INT(n, 2, "decode: length needed");
}

/* --- telemetry --- */

#define S(x) { x, sizeof(x) - 1 }

static void test_telemetry(void)
{
	static const struct te_prop props[] = {
		{ S("temp unit"), S("°C") },
		{ S("$.mid"), S("fake") },
		{ S("a&b=c"), S("x/y?z#") },
		{ S("empty"), { NULL, 0 } },
	};
	static const struct te_prop tags[] = {
		{ S(TE_AZURE_TAG_MODULE), S("filter") },
		{ S(TE_AZURE_TAG_OUTPUT), S("alerts") },
	};
	struct te_msg m = { 0 };
	char out[512];
	size_t n;

	m.sys[TE_SYS_MESSAGE_ID] = (struct te_str)S("id 1");
	m.sys[TE_SYS_CORRELATION_ID] = (struct te_str)S("c&d");
	m.sys[TE_SYS_CREATION_TIME_UTC] = (struct te_str)S("2024-01-02T03:04:05Z");
	m.sys[TE_SYS_CONTENT_TYPE] = (struct te_str)S("application/json");
	m.sys[TE_SYS_CONTENT_ENCODING] = (struct te_str)S("utf-8");
	m.sys[TE_SYS_CONNECTION_MODULE_ID] = (struct te_str)S("ignored");
	m.sys[TE_SYS_OUTPUT_NAME] = (struct te_str)S("ignored");
	m.props = props;
	m.nprops = 4;
	static const char want[] = "devices/dev1/messages/events/$.mid=id%201&$.cid=c%26d"
		"&$.ctime=2024-01-02T03%3A04%3A05Z&$.ct=application%2Fjson&$.ce=utf-8"
		"&temp%20unit=%C2%B0C&%24.mid=fake&a%26b%3Dc=x%2Fy%3Fz%23&empty="
		"&connectionModuleId=filter&outputName=alerts";

	TAP_EQ_INT(te_azure_telemetry_topic("dev1", NULL, &m, tags, 2, out, sizeof(out), &n), 0,
		   "telemetry: every property");
	TAP_EQ_STR(out, want, "telemetry: the bag");
	TAP_EQ_INT(n, strlen(want), "telemetry: length");

	struct te_msg bare = { 0 };
	te_azure_telemetry_topic("dev1", "filter", &bare, NULL, 5, out, sizeof(out), &n);
	TAP_EQ_STR(out, "devices/dev1/modules/filter/messages/events/", "telemetry: module, no bag");
	bare.props = tags + 1;
	bare.nprops = 1;
	te_azure_telemetry_topic("dev1", "", &bare, NULL, 0, out, sizeof(out), &n);
	TAP_EQ_STR(out, "devices/dev1/messages/events/outputName=alerts",
		   "telemetry: application property first, no '&'");
	m.props = props;
	TAP_EQ_INT(te_azure_telemetry_topic("dev1", NULL, &m, tags, 2, out, 100, &n),
		   -TE_ENOSPACE, "telemetry: small buffer");
	TAP_EQ_INT(n, strlen(want), "telemetry: the size needed");
	TAP_EQ_INT(strlen(out), 99, "telemetry: terminated prefix");

	static const struct te_prop nokey[] = { { { "", 0 }, S("v") } };
	bare.props = nokey;
	TAP_EQ_INT(te_azure_telemetry_topic("dev1", NULL, &bare, NULL, 0, out, sizeof(out), &n),
		   -TE_EINVALID, "telemetry: empty key");
	TAP_EQ_INT(te_azure_telemetry_topic("d+1", NULL, &m, NULL, 0, out, sizeof(out), &n),
		   -TE_EINVALID, "telemetry: bad device id");
}

/* --- Azure topics --- */

static int parse(const char *t, struct te_azure_in *in)
{
	return te_azure_parse_topic(t, strlen(t), in);
}

static void test_azure_parse_good(void)
{
	struct te_azure_in in;

	TAP_EQ_INT(parse("$iothub/twin/res/200/?$rid=1", &in), 0, "twin res 200");
	TAP_OK(in.kind == TE_AZ_TWIN_RES && in.status == 200 && !strcmp(in.rid, "1") &&
	       !in.has_version, "twin res 200: fields");
	TAP_EQ_INT(parse("$iothub/twin/res/204/?$rid=abc-7&$version=18446744073709551615", &in), 0,
		   "twin res 204 with version");
	TAP_OK(in.status == 204 && !strcmp(in.rid, "abc-7") && in.has_version &&
	       in.version == UINT64_MAX, "twin res 204: fields");
	TAP_EQ_INT(parse("$iothub/twin/res/429/?$version=0&$rid=9&x-ms=a%20b", &in), 0,
		   "twin res: any order, unknown key ignored");
	TAP_OK(in.status == 429 && in.version == 0 && !strcmp(in.rid, "9"), "twin res 429");
	TAP_EQ_INT(parse("$iothub/twin/PATCH/properties/desired/?$version=42", &in), 0, "desired");
	TAP_OK(in.kind == TE_AZ_TWIN_DESIRED && in.has_version && in.version == 42 && !in.rid[0],
	       "desired: version");
	TAP_EQ_INT(parse("$iothub/methods/POST/reboot%20now/?$rid=ab", &in), 0, "method");
	TAP_OK(in.kind == TE_AZ_METHOD && !strcmp(in.method, "reboot now") &&
	       !strcmp(in.rid, "ab"), "method: name decoded, rid");
}

static const char *const az_bad[] = {
	"",
	"$iothub/twin/res/",
	"$iothub/twin/res/200",
	"$iothub/twin/res/200/",
	"$iothub/twin/res/200/?",
	"$iothub/twin/res/200/?$rid=",
	"$iothub/twin/res/200/?$version=1",                /* no rid */
	"$iothub/twin/res/abc/?$rid=1",                    /* status not numeric */
	"$iothub/twin/res/20/?$rid=1",
	"$iothub/twin/res/2000/?$rid=1",
	"$iothub/twin/res/099/?$rid=1",
	"$iothub/twin/res/600/?$rid=1",
	"$iothub/twin/res/-20/?$rid=1",
	"$iothub/twin/res/200?$rid=1",
	"$iothub/twin/res/200/x?$rid=1",
	"$iothub/twin/res/200/?$rid=1&$rid=2",             /* twice */
	"$iothub/twin/res/200/?$rid=1&",
	"$iothub/twin/res/200/?$rid=1&&x=1",
	"$iothub/twin/res/200/?&$rid=1",
	"$iothub/twin/res/200/?$rid=1&x",
	"$iothub/twin/res/200/?$rid=1&=x",
	"$iothub/twin/res/200/?$rid=1&x=%zz",             /* percent error */
	"$iothub/twin/res/200/?$rid=1&x=%2",
	"$iothub/twin/res/200/?$rid=1&x=%00",
	"$iothub/twin/res/200/?$rid=a%20b",               /* rid: unreserved only */
	"$iothub/twin/res/200/?$rid=a/b",
	"$iothub/twin/res/204/?$rid=1&$version=",
	"$iothub/twin/res/204/?$rid=1&$version=-1",
	"$iothub/twin/res/204/?$rid=1&$version=+1",
	"$iothub/twin/res/204/?$rid=1&$version=01",
	"$iothub/twin/res/204/?$rid=1&$version=1x",
	"$iothub/twin/res/204/?$rid=1&$version=18446744073709551616",   /* overflow */
	"$iothub/twin/res/204/?$rid=1&$version=99999999999999999999",
	"$iothub/twin/res/204/?$rid=1&$version=1&$version=2",
	"$iothub/twin/PATCH/properties/desired/?",
	"$iothub/twin/PATCH/properties/desired/?$rid=1",
	"$iothub/twin/PATCH/properties/desired/",
	"$iothub/twin/PATCH/properties/desired/?$version=x",
	"$iothub/twin/PATCH/properties/reported/?$version=1",
	"$iothub/methods/POST/",
	"$iothub/methods/POST//?$rid=1",
	"$iothub/methods/POST/m",
	"$iothub/methods/POST/m/?",
	"$iothub/methods/POST/m/?$version=1",
	"$iothub/methods/POST/m/x/?$rid=1",
	"$iothub/methods/POST/m%/?$rid=1",
	"$iothub/methods/POST/m%2/?$rid=1",
	"$iothub/methods/POST/m%00/?$rid=1",
	"$iothub/methods/res/200/?$rid=1",
	"$iothub/twin/GET/?$rid=1",
	"devices/d/messages/devicebound/x=1",
	"$IOTHUB/twin/res/200/?$rid=1",
};

static void test_azure_parse_bad(void)
{
	struct te_azure_in in;
	char t[600];
	int n;

	for (size_t i = 0; i < sizeof(az_bad) / sizeof(az_bad[0]); i++)
		TAP_EQ_INT(parse(az_bad[i], &in), -TE_EMALFORMED, "refuse \"%s\"", az_bad[i]);
	TAP_EQ_INT(te_azure_parse_topic("$iothub/twin/res/200/?$rid=1\0x", 30, &in),
		   -TE_EMALFORMED, "refuse: NUL inside the topic");
	TAP_EQ_INT(te_azure_parse_topic("$iothub/twin/res/200/?$rid=12", 28, &in), 0,
		   "length, not NUL, ends the topic");
	TAP_EQ_STR(in.rid, "1", "so the rid is \"1\"");

	n = snprintf(t, sizeof(t), "$iothub/twin/res/200/?$rid=");
	memset(t + n, 'r', TE_AZURE_RID_MAX + 1);
	t[n + TE_AZURE_RID_MAX + 1] = 0;
	TAP_EQ_INT(parse(t, &in), -TE_EMALFORMED, "refuse: overlong rid");
	t[n + TE_AZURE_RID_MAX] = 0;
	TAP_EQ_INT(parse(t, &in), 0, "accept: rid of the maximum length");

	n = snprintf(t, sizeof(t), "$iothub/methods/POST/");
	for (int i = 0; i < TE_AZURE_METHOD_MAX + 1; i++)
		n += snprintf(t + n, sizeof(t) - (size_t)n, "%%41");
	snprintf(t + n, sizeof(t) - (size_t)n, "/?$rid=1");
	TAP_EQ_INT(parse(t, &in), -TE_EMALFORMED, "refuse: method name too long once decoded");
	n = snprintf(t, sizeof(t), "$iothub/methods/POST/");
	memset(t + n, 'm', TE_AZURE_METHOD_MAX);
	snprintf(t + n + TE_AZURE_METHOD_MAX, sizeof(t) - (size_t)n - TE_AZURE_METHOD_MAX,
		 "/?$rid=1");
	TAP_EQ_INT(parse(t, &in), 0, "accept: method name of the maximum length");
}

/* Every prefix of valid topics (truncation by a hostile broker) parses
 * or fails cleanly; under ASan this is the crash check. */
static void test_azure_prefixes(void)
{
	static const char *const good[] = {
		"$iothub/twin/res/204/?$rid=abc&$version=77",
		"$iothub/twin/PATCH/properties/desired/?$version=5",
		"$iothub/methods/POST/do%2Fit/?$rid=3",
	};
	struct te_azure_in in;
	unsigned crashes = 0, ok = 0;

	for (size_t g = 0; g < 3; g++) {
		size_t len = strlen(good[g]);

		for (size_t n = 0; n <= len; n++) {
			char *copy = malloc(n ? n : 1);

			memcpy(copy, good[g], n);
			int r = te_azure_parse_topic(copy, n, &in);

			ok += r == 0;
			crashes += r != 0 && r != -TE_EMALFORMED;
			free(copy);
		}
	}
	TAP_EQ_INT(crashes, 0, "prefixes: only 0 or -TE_EMALFORMED");
	/* rid "abc" "ab" "a", version "7" "77"; version "5"; rid "3" */
	TAP_EQ_INT(ok, 7, "prefixes: the whole topics and their valid prefixes");
}

static void test_azure_build(void)
{
	char out[128];
	size_t n;

	TAP_EQ_INT(te_azure_twin_get_topic("7", out, sizeof(out), &n), 0, "twin get");
	TAP_EQ_STR(out, "$iothub/twin/GET/?$rid=7", "twin get topic");
	te_azure_twin_reported_topic("r-8", out, sizeof(out), &n);
	TAP_EQ_STR(out, "$iothub/twin/PATCH/properties/reported/?$rid=r-8", "reported topic");
	te_azure_method_res_topic(200, "ab", out, sizeof(out), &n);
	TAP_EQ_STR(out, "$iothub/methods/res/200/?$rid=ab", "method response topic");
	TAP_EQ_INT(te_azure_method_res_topic(1000, "ab", out, sizeof(out), &n), -TE_EINVALID,
		   "method response: status out of range");
	TAP_EQ_INT(te_azure_twin_get_topic("", out, sizeof(out), &n), -TE_EINVALID, "empty rid");
	TAP_EQ_INT(te_azure_twin_get_topic("a&b", out, sizeof(out), &n), -TE_EINVALID,
		   "rid with '&'");
	TAP_EQ_INT(te_azure_twin_get_topic(NULL, out, sizeof(out), &n), -TE_EINVALID, "no rid");
	TAP_EQ_INT(te_azure_twin_get_topic("7", out, 24, &n), -TE_ENOSPACE, "twin get: small");
	TAP_EQ_INT(n, 24, "twin get: needs 24 + 1");
	TAP_EQ_STR(te_azure_subscriptions[0], "$iothub/twin/res/#", "subscription 1");
	TAP_EQ_STR(te_azure_subscriptions[1], "$iothub/twin/PATCH/properties/desired/#",
		   "subscription 2");
	TAP_EQ_STR(te_azure_subscriptions[2], "$iothub/methods/POST/#", "subscription 3");

	/* What we build, we parse back (the hub answers with our rid). */
	struct te_azure_in in;
	char res[160];

	te_azure_twin_get_topic("Zz9-._~", out, sizeof(out), &n);
	snprintf(res, sizeof(res), "$iothub/twin/res/200/?$rid=%s", strchr(out, '=') + 1);
	TAP_EQ_INT(parse(res, &in), 0, "every unreserved character in a rid");
	TAP_EQ_STR(in.rid, "Zz9-._~", "and the rid comes back as sent");
}

/* --- generic mode --- */

static void test_template(void)
{
	char out[128], err[128];
	size_t n;

	TAP_EQ_INT(te_topic_expand(TE_TOPIC_DEFAULT, "dev1", "filter", "alerts", out, sizeof(out),
				   &n, err, sizeof(err)), 0, "template: default");
	TAP_EQ_STR(out, "tinyedge/dev1/filter/alerts", "template: expanded");
	te_topic_expand("fleet/{output}/x{device}y", "d", "m", "o", out, sizeof(out), &n, err,
			sizeof(err));
	TAP_EQ_STR(out, "fleet/o/xdy", "template: any order, inside a level, unused ones");
	TAP_EQ_INT(te_topic_expand(TE_TOPIC_DEFAULT, "dev1", "filter", "alerts", out, 27, &n, err,
				   sizeof(err)), -TE_ENOSPACE, "template: small buffer");
	TAP_EQ_INT(n, 27, "template: the length needed");

	static const struct {
		const char *tmpl, *dev, *mod, *outp, *msg;
	} bad[] = {
		{ "t/{modul}/x", "d", "m", "o", "column 3: unknown placeholder {modul}" },
		{ "t/{}/x", "d", "m", "o", "column 3: unknown placeholder {}" },
		{ "t/{Device}", "d", "m", "o", "column 3: unknown placeholder {Device}" },
		{ "t/{device", "d", "m", "o", "column 3: '{' is not closed" },
		{ "t/device}", "d", "m", "o", "column 9: '}' closes nothing" },
		{ "t/+/{device}", "d", "m", "o", "column 3: '+' is a wildcard" },
		{ "t/#", "d", "m", "o", "column 3: '#' is a wildcard" },
		{ "", "d", "m", "o", "the topic template is empty" },
		{ TE_TOPIC_DEFAULT, "a/b", "m", "o", "{device} \"a/b\" must not contain '/'" },
		{ TE_TOPIC_DEFAULT, "d", "m+", "o", "{module} \"m+\" must not contain '+'" },
		{ TE_TOPIC_DEFAULT, "d", "m", "#", "{output} \"#\" must not contain '#'" },
		{ TE_TOPIC_DEFAULT, "d", "", "o", "{module} is empty" },
		{ TE_TOPIC_DEFAULT, "d", NULL, "o", "{module} is empty" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r;

		strcpy(err, "(none)");
		r = te_topic_expand(bad[i].tmpl, bad[i].dev, bad[i].mod, bad[i].outp, out,
				    sizeof(out), &n, err, sizeof(err));
		TAP_OK(r == -TE_EINVALID && strstr(err, bad[i].msg), "template \"%s\" -> %s",
		       bad[i].tmpl, bad[i].msg);
		if (!strstr(err, bad[i].msg))
			printf("#   got %d: %s\n", r, err);
	}
	TAP_EQ_INT(te_topic_expand("{output}", "d", "m", "o", out, sizeof(out), &n, NULL, 0), 0,
		   "template: err may be NULL with 0");
}

static void test_gen_build(void)
{
	static const struct {
		enum te_gen_out k;
		const char *rid;
		unsigned status;
		const char *want;
	} v[] = {
		{ TE_GEN_TWIN_GET, "1", 0, "tinyedge/dev1/filter/twin/get/1" },
		{ TE_GEN_TWIN_REPORTED, "2", 0, "tinyedge/dev1/filter/twin/reported/2" },
		{ TE_GEN_METHOD_RES, "3", 404, "tinyedge/dev1/filter/methods/res/3/404" },
		{ TE_GEN_SUB_TWIN_RES, NULL, 0, "tinyedge/dev1/filter/twin/res/#" },
		{ TE_GEN_SUB_DESIRED, NULL, 0, "tinyedge/dev1/filter/twin/desired" },
		{ TE_GEN_SUB_METHODS, NULL, 0, "tinyedge/dev1/filter/methods/+/+" },
	};
	char out[128];
	size_t n;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		TAP_EQ_INT(te_gen_topic(v[i].k, "dev1", "filter", v[i].rid, v[i].status, out,
					sizeof(out), &n), 0, "generic: %s", v[i].want);
		TAP_EQ_STR(out, v[i].want, "generic: topic %zu", i);
	}
	TAP_EQ_INT(te_gen_topic(TE_GEN_TWIN_GET, "dev1", "filter", "a/b", 0, out, sizeof(out), &n),
		   -TE_EINVALID, "generic: bad rid");
	TAP_EQ_INT(te_gen_topic(TE_GEN_TWIN_GET, "dev1", "filter", NULL, 0, out, sizeof(out), &n),
		   -TE_EINVALID, "generic: no rid");
	TAP_EQ_INT(te_gen_topic(TE_GEN_METHOD_RES, "dev1", "filter", "1", 99, out, sizeof(out), &n),
		   -TE_EINVALID, "generic: bad status");
	TAP_EQ_INT(te_gen_topic(TE_GEN_SUB_DESIRED, "dev/1", "filter", NULL, 0, out, sizeof(out),
				&n), -TE_EINVALID, "generic: bad device");
	TAP_EQ_INT(te_gen_topic(TE_GEN_SUB_DESIRED, "dev1", "#", NULL, 0, out, sizeof(out), &n),
		   -TE_EINVALID, "generic: bad module");
	TAP_EQ_INT(te_gen_topic((enum te_gen_out)99, "dev1", "m", NULL, 0, out, sizeof(out), &n),
		   -TE_EINVALID, "generic: unknown kind");
}

static int gparse(const char *t, struct te_gen_in *in)
{
	return te_gen_parse_topic(t, strlen(t), "dev1", in);
}

static void test_gen_parse(void)
{
	static const char *const bad[] = {
		"", "tinyedge/", "tinyedge/dev1", "tinyedge/dev1/", "tinyedge/dev2/m/twin/desired",
		"tinyedge/dev10/m/twin/desired", "tinyedge/dev1//twin/desired",
		"tinyedge/dev1/m+/twin/desired", "tinyedge/dev1/m/twin/desired/",
		"tinyedge/dev1/m/twin/desiredx", "tinyedge/dev1/m/twin/desiredmethods/x/1",
		"tinyedge/dev1/m/twin/res/",
		"tinyedge/dev1/m/twin/res/a b", "tinyedge/dev1/m/twin/res/1/",
		"tinyedge/dev1/m/twin/res/1/20", "tinyedge/dev1/m/twin/res/1/abc",
		"tinyedge/dev1/m/twin/res/1/200/x", "tinyedge/dev1/m/methods/",
		"tinyedge/dev1/m/methods/x", "tinyedge/dev1/m/methods/x/",
		"tinyedge/dev1/m/methods//1", "tinyedge/dev1/m/methods/res/1/200",
		"tinyedge/dev1/m/methods/a#/1", "tinyedge/dev1/m/twin/get/1",
		"tinyedge/dev1/m/twin/reported/1", "other/dev1/m/twin/desired",
	};
	struct te_gen_in in;

	TAP_EQ_INT(gparse("tinyedge/dev1/filter/twin/res/5", &in), 0, "generic: twin res");
	TAP_OK(in.kind == TE_GEN_IN_TWIN_RES && in.status == 200 && !strcmp(in.rid, "5") &&
	       !strcmp(in.module, "filter"), "generic: twin res, status 200 by default");
	TAP_EQ_INT(gparse("tinyedge/dev1/filter/twin/res/5/404", &in), 0, "generic: with status");
	TAP_EQ_INT(in.status, 404, "generic: status 404");
	TAP_EQ_INT(gparse("tinyedge/dev1/$edge/twin/desired", &in), 0, "generic: desired");
	TAP_OK(in.kind == TE_GEN_IN_DESIRED && !strcmp(in.module, "$edge"), "generic: desired kind");
	TAP_EQ_INT(gparse("tinyedge/dev1/filter/methods/res/9", &in), 0,
		   "generic: a method named res");
	TAP_OK(in.kind == TE_GEN_IN_METHOD && !strcmp(in.method, "res") && !strcmp(in.rid, "9"),
	       "generic: method name and rid");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TAP_EQ_INT(gparse(bad[i], &in), -TE_EMALFORMED, "generic: refuse \"%s\"", bad[i]);
	TAP_EQ_INT(te_gen_parse_topic("tinyedge/dev1/m/twin/desired", 28, "", &in),
		   -TE_EMALFORMED, "generic: empty device");
	TAP_EQ_INT(te_gen_parse_topic("tinyedge/dev1/m\0/twin/desired", 29, "dev1", &in),
		   -TE_EMALFORMED, "generic: NUL in the module");
}

int main(void)
{
	test_sas();
	test_identity();
	test_cs_good();
	test_cs_bad();
	test_cs_long();
	test_url();
	test_telemetry();
	test_azure_parse_good();
	test_azure_parse_bad();
	test_azure_prefixes();
	test_azure_build();
	test_template();
	test_gen_build();
	test_gen_parse();
	return tap_done();
}
