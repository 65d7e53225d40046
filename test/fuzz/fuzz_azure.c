/* Fuzz target for the upstream protocol strings (upstream/azure.c), mode
 * "azure"; corpus in test/fuzz/corpus/azure/.
 *
 * The first byte picks a function, (byte - '0') % 5 (so "0".."4" in the
 * seeds), and the rest of the bytes are its input:
 *   0  te_azure_parse_topic: a parsed topic holds C strings within their
 *      arrays, the fields its kind has (status 100..599 on a twin
 *      response), a rid, version and method name that come from the topic,
 *      and a rid that te_azure_twin_get_topic and te_azure_method_res_topic
 *      accept;
 *   1  te_gen_parse_topic for device "dev1": the same, and the topic is
 *      exactly the one its grammar writes from the parsed fields, which
 *      te_gen_topic accepts;
 *   2  te_url_decode, te_url_encode, te_url_decode: the same bytes again,
 *      the encoding in RFC 3986 form, errors at a '%' or a NUL;
 *   3  te_azure_cs_parse on the rest as a C string: a parsed string feeds
 *      the SAS and CONNECT builders; an error message never depends on the
 *      SharedAccessKey's value, so never quotes it;
 *   4  te_topic_expand with the rest as the template: the result has no
 *      wildcard or brace, fits the builders' convention, and values that
 *      hold '/' are refused exactly when the template has a placeholder.
 * abort() on a broken invariant; validity itself is never asserted. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "upstream/azure.h"

#include "fuzz.h"

#define DEV "dev1"
#define AZ_METHOD_PREFIX "$iothub/methods/POST/"

/* s is a C string inside its cap bytes. */
static void cstr_within(const char *s, size_t cap)
{
	if (!memchr(s, 0, cap))
		abort();
}

static bool has(const char *t, size_t n, const char *s)
{
	return memmem(t, n, s, strlen(s)) != NULL;
}

/* A copy of d[0..n) with a NUL after it: malloc'd so ASan sees its end. */
static char *cstr_dup(const uint8_t *d, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		abort();
	memcpy(s, d, n);
	s[n] = 0;
	return s;
}

/* --- 0: Azure IoT Hub topics --- */

/* The method name is the topic's level after the prefix, decoded. */
static void az_check_method(const char *t, size_t n, const char *method)
{
	const char *name = t + strlen(AZ_METHOD_PREFIX);
	const char *slash = memchr(name, '/', n - strlen(AZ_METHOD_PREFIX));
	char dec[TE_AZURE_METHOD_MAX + 1];
	size_t len;

	if (!slash || te_url_decode(name, (size_t)(slash - name), dec, sizeof(dec), &len, NULL) ||
	    len == 0 || len != strlen(method) || strcmp(dec, method))
		abort();
}

/* The kind's fields, and each of them found in the topic. */
static void az_check_kind(const char *t, size_t n, const struct te_azure_in *in)
{
	char v[40];

	if (in->has_version) {
		snprintf(v, sizeof(v), "$version=%llu", (unsigned long long)in->version);
		if (!has(t, n, v))
			abort();
	}
	switch (in->kind) {
	case TE_AZ_TWIN_RES:
		snprintf(v, sizeof(v), "$iothub/twin/res/%u/?", in->status);
		if (in->status < 100 || in->status > 599 || !in->rid[0] || in->method[0] ||
		    n < strlen(v) || memcmp(t, v, strlen(v)))
			abort();
		break;
	case TE_AZ_TWIN_DESIRED:
		if (!in->has_version || in->rid[0] || in->method[0])
			abort();
		break;
	case TE_AZ_METHOD:
		if (!in->rid[0] || in->has_version)
			abort();
		az_check_method(t, n, in->method);
		break;
	default:
		abort();
	}
}

static void fuzz_az_topic(const char *t, size_t n)
{
	struct te_azure_in in;
	char out[256], rid[TE_AZURE_RID_MAX + 8];
	size_t len;

	if (te_azure_parse_topic(t, n, &in) < 0)
		return;
	cstr_within(in.rid, sizeof(in.rid));
	cstr_within(in.method, sizeof(in.method));
	az_check_kind(t, n, &in);
	if (in.kind == TE_AZ_TWIN_DESIRED)
		return;
	snprintf(rid, sizeof(rid), "$rid=%s", in.rid);
	if (!has(t, n, rid))
		abort(); /* a rid that is not the topic's */
	if (te_azure_twin_get_topic(in.rid, out, sizeof(out), &len) || len != strlen(out) ||
	    te_azure_method_res_topic(in.kind == TE_AZ_TWIN_RES ? in.status : 200, in.rid,
				      out, sizeof(out), &len) || len != strlen(out))
		abort(); /* a parsed rid the builders refuse */
}

/* --- 1: generic MQTT topics --- */

static bool same(const char *t, size_t n, const char *s)
{
	return strlen(s) == n && !memcmp(t, s, n);
}

/* t is the topic the grammar writes for in (a twin response's status
 * may be left out when it is 200). */
static bool gen_rebuilds(const char *t, size_t n, const struct te_gen_in *in)
{
	static char want[512];
	const char *base = "tinyedge/" DEV "/";

	switch (in->kind) {
	case TE_GEN_IN_TWIN_RES:
		snprintf(want, sizeof(want), "%s%s/twin/res/%s", base, in->module, in->rid);
		if (in->status == 200 && same(t, n, want))
			return true;
		snprintf(want, sizeof(want), "%s%s/twin/res/%s/%u", base, in->module,
			 in->rid, in->status);
		return in->status >= 100 && in->status <= 599 && !in->method[0] &&
		       same(t, n, want);
	case TE_GEN_IN_DESIRED:
		snprintf(want, sizeof(want), "%s%s/twin/desired", base, in->module);
		return !in->rid[0] && !in->method[0] && same(t, n, want);
	case TE_GEN_IN_METHOD:
		snprintf(want, sizeof(want), "%s%s/methods/%s/%s", base, in->module,
			 in->method, in->rid);
		return same(t, n, want);
	default:
		return false;
	}
}

static void fuzz_gen_topic(const char *t, size_t n)
{
	struct te_gen_in in;
	char out[512];
	size_t len;
	int r = 0;

	if (te_gen_parse_topic(t, n, DEV, &in) < 0)
		return;
	cstr_within(in.module, sizeof(in.module));
	cstr_within(in.rid, sizeof(in.rid));
	cstr_within(in.method, sizeof(in.method));
	if (!gen_rebuilds(t, n, &in))
		abort(); /* accepted something outside the three forms */
	if (in.kind == TE_GEN_IN_METHOD)
		r = te_gen_topic(TE_GEN_METHOD_RES, DEV, in.module, in.rid, 200, out,
				 sizeof(out), &len);
	else if (in.kind == TE_GEN_IN_TWIN_RES)
		r = te_gen_topic(TE_GEN_TWIN_GET, DEV, in.module, in.rid, 0, out,
				 sizeof(out), &len);
	else if (te_gen_topic(TE_GEN_SUB_DESIRED, DEV, in.module, NULL, 0, out,
			      sizeof(out), &len) || !same(t, n, out))
		abort(); /* the desired topic is the subscription's */
	if (r || len != strlen(out))
		abort(); /* refused what it parsed */
}

/* --- 2: URL encoding --- */

static bool hexup(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static bool unreserved(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || (c && strchr("-._~", c));
}

/* e[0..n) is RFC 3986 form: unreserved bytes and %XX of the others. */
static void check_encoded(const char *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (e[i] == '%' && i + 2 < n && hexup(e[i + 1]) && hexup(e[i + 2]))
			i += 2;
		else if (!unreserved(e[i]))
			abort();
	}
}

/* Encode s[0..n): the form, the length, and -TE_ENOSPACE one byte short.
 * The result is malloc'd; *len its length. */
static char *encode(const char *s, size_t n, size_t *len)
{
	char *e = malloc(3 * n + 1), *short_buf;
	size_t l2;

	if (!e || te_url_encode(s, n, e, 3 * n + 1, len) || *len != strlen(e) || *len < n)
		abort();
	check_encoded(e, *len);
	short_buf = malloc(*len ? *len : 1); /* ASan guards byte *len */
	if (!short_buf || te_url_encode(s, n, short_buf, *len, &l2) != -TE_ENOSPACE ||
	    l2 != *len || (*len && short_buf[*len - 1]))
		abort();
	free(short_buf);
	return e;
}

static void fuzz_url(const char *s, size_t n)
{
	char *dec = malloc(n + 1), *enc, *again;
	size_t dlen, elen, alen, bad = n;
	int r = dec ? te_url_decode(s, n, dec, n + 1, &dlen, &bad) : -1;

	if (r) {
		if (r != -TE_EMALFORMED || bad >= n || (s[bad] != '%' && s[bad]))
			abort(); /* the error is not at a '%' or a NUL */
		free(dec);
		return;
	}
	if (dlen > n || dlen != strlen(dec))
		abort();
	enc = encode(dec, dlen, &elen);
	again = malloc(dlen + 1);
	if (te_url_decode(enc, elen, again, dlen + 1, &alen, NULL) || alen != dlen ||
	    memcmp(again, dec, dlen))
		abort(); /* decode(encode(x)) != x */
	free(again);
	free(enc);
	free(dec);
}

/* --- 3: connection strings --- */

/* The first SharedAccessKey part's value in cs: *n bytes, or NULL. */
static char *cs_key(char *cs, size_t *n)
{
	static const char k[] = "SharedAccessKey=";

	for (char *p = cs;; p++) {
		if (!strncmp(p, k, sizeof(k) - 1)) {
			*n = strcspn(p + sizeof(k) - 1, ";");
			return p + sizeof(k) - 1;
		}
		if (!(p = strchr(p, ';')))
			return NULL;
	}
}

/* Another key of the same validity: each base64 digit's value with bit 5
 * flipped (the bits that padding checks stay), other bytes as they are. */
static void cs_other_key(char *k, size_t n)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	for (size_t i = 0; i < n; i++) {
		const char *d = k[i] ? strchr(b64, k[i]) : NULL;

		if (d)
			k[i] = b64[(d - b64) ^ 0x20];
	}
}

/* A parsed string is one the builders take. */
static void cs_check_ok(const struct te_azure_cs *c)
{
	static char out[1024], sas[4096];
	size_t len;

	if (c->x509 != !c->key[0] || strncmp(c->host, c->hub, strlen(c->hub)) ||
	    !c->hub[0] || (c->host[strlen(c->hub)] && c->host[strlen(c->hub)] != '.'))
		abort();
	if (te_azure_resource(c->host, c->device, c->module, out, sizeof(out), &len) ||
	    te_azure_username(c->host, c->device, c->module, out, sizeof(out), &len) ||
	    te_azure_client_id(c->device, c->module, out, sizeof(out), &len))
		abort();
	if (c->x509)
		return;
	te_azure_resource(c->host, c->device, c->module, out, sizeof(out), &len);
	if (te_azure_sas(c->key, out, 1700000000, c->key_name, sas, sizeof(sas)))
		abort(); /* a parsed key or key name the SAS builder refuses */
}

/* The message for cs with another key of the same validity must be the
 * same: a message that quoted the key (the strstr check, for keys of 8
 * bytes or more) or any part of it would differ. The strstr check alone
 * would take fixed text ("DeviceId") or another part for a leak. */
static void cs_check_err(char *cs, const char *err)
{
	static struct te_azure_cs c;
	char err2[256], *key = NULL, *k;
	size_t n = 0;

	if (!err[0] || !(k = cs_key(cs, &n)))
		return;
	key = cstr_dup((const uint8_t *)k, n);
	cs_other_key(k, n);
	if (te_azure_cs_parse(cs, &c, err2, sizeof(err2)) != -TE_EINVALID)
		abort(); /* the key's bytes decided validity */
	if (n >= 8 && strstr(err, key) && !strstr(err2, key))
		abort(); /* the message quotes SharedAccessKey */
	if (strcmp(err, err2))
		abort(); /* the message depends on SharedAccessKey */
	free(key);
}

static void fuzz_cs(const uint8_t *d, size_t n)
{
	static struct te_azure_cs c;
	char *cs = cstr_dup(d, n), err[256] = "";
	int r = te_azure_cs_parse(cs, &c, err, sizeof(err));

	if (r == 0)
		cs_check_ok(&c);
	else if (r != -TE_EINVALID || !err[0])
		abort(); /* an error without a message */
	else
		cs_check_err(cs, err);
	free(cs);
}

/* --- 4: topic templates --- */

static void fuzz_template(const uint8_t *d, size_t n)
{
	char *t = cstr_dup(d, n), *out = malloc(n + 1), err[256] = "";
	size_t len, l2, tl = strlen(t);
	int r = te_topic_expand(t, DEV, "filter", "alerts", out, n + 1, &len, err,
				sizeof(err));

	/* values are shorter than their placeholders: the result fits n + 1 */
	if (r) {
		if (r != -TE_EINVALID || !err[0])
			abort();
		goto done;
	}
	if (len != strlen(out) || len > tl || strpbrk(out, "+#{}"))
		abort();
	if (len && (te_topic_expand(t, DEV, "filter", "alerts", out, len, &l2, NULL, 0) !=
		    -TE_ENOSPACE || l2 != len || out[len - 1]))
		abort(); /* the builders' -TE_ENOSPACE convention */
	r = te_topic_expand(t, "a/b", "a/b", "a/b", out, n + 1, &l2, err, sizeof(err));
	if ((r == 0) != !strchr(t, '{'))
		abort(); /* a '/' in a value went through, or was refused for nothing */
done:
	free(out);
	free(t);
}

void te_fuzz_azure(const uint8_t *data, size_t n)
{
	const char *rest = (const char *)data + 1;

	if (n == 0)
		return;
	switch ((unsigned char)(data[0] - '0') % 5) {
	case 0:
		fuzz_az_topic(rest, n - 1);
		break;
	case 1:
		fuzz_gen_topic(rest, n - 1);
		break;
	case 2:
		fuzz_url(rest, n - 1);
		break;
	case 3:
		fuzz_cs(data + 1, n - 1);
		break;
	default:
		fuzz_template(data + 1, n - 1);
		break;
	}
}
