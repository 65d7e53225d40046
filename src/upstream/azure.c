/* Azure IoT Hub and generic MQTT protocol strings; see azure.h. */
#include <stdio.h>
#include <string.h>

#include <bearssl.h>

#include "core/base64.h"
#include "core/err.h"
#include "upstream/azure.h"

/* Largest decoded SharedAccessKey: the base64 text fits TE_SECRET_MAX. */
#define KEY_BYTES (TE_SECRET_MAX / 4 * 3)

/* --- an output buffer that counts what did not fit --- */

struct wbuf {
	char *p;
	size_t cap, n;  /* n: length of the whole result so far, even past cap */
};

static void w_mem(struct wbuf *w, const char *s, size_t n)
{
	if (w->n < w->cap) {
		size_t room = w->cap - w->n;

		memcpy(w->p + w->n, s, n < room ? n : room);
	}
	w->n += n;
}

static void w_str(struct wbuf *w, const char *s)
{
	w_mem(w, s, strlen(s));
}

static void w_u64(struct wbuf *w, uint64_t v)
{
	char d[20];
	size_t i = sizeof(d);

	do
		d[--i] = (char)('0' + v % 10);
	while (v /= 10);
	w_mem(w, d + i, sizeof(d) - i);
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

/* c as RFC 3986 encodes it into e; returns 1 or 3 characters. */
static size_t enc_byte(unsigned char c, char e[3])
{
	static const char hex[] = "0123456789ABCDEF";

	if (unreserved(c)) {
		e[0] = (char)c;
		return 1;
	}
	e[0] = '%';
	e[1] = hex[c >> 4];
	e[2] = hex[c & 15];
	return 3;
}

static void w_enc(struct wbuf *w, const char *s, size_t n)
{
	char e[3];

	for (size_t i = 0; i < n; i++)
		w_mem(w, e, enc_byte((unsigned char)s[i], e));
}

/* NUL-terminate; the builders' return convention (azure.h). */
static int w_end(struct wbuf *w, size_t *len)
{
	*len = w->n;
	if (w->n >= w->cap) {
		if (w->cap)
			w->p[w->cap - 1] = 0;
		return -TE_ENOSPACE;
	}
	w->p[w->n] = 0;
	return 0;
}

/* --- URL encoding --- */

int te_url_encode(const char *s, size_t n, char *out, size_t cap, size_t *len)
{
	struct wbuf w = { out, cap, 0 };

	w_enc(&w, s, n);
	return w_end(&w, len);
}

int te_url_decode(const char *s, size_t n, char *out, size_t cap, size_t *len,
		  size_t *bad)
{
	struct wbuf w = { out, cap, 0 };

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			int hi = n - i >= 3 ? te_hexval((unsigned char)s[i + 1]) : -1;
			int lo = hi >= 0 ? te_hexval((unsigned char)s[i + 2]) : -1;

			c = lo >= 0 ? hi << 4 | lo : 0;
			if (c == 0) {
				if (bad)
					*bad = i;
				return -TE_EMALFORMED;
			}
			i += 2;
		} else if (c == 0) {
			if (bad)
				*bad = i;
			return -TE_EMALFORMED;
		}
		w_mem(&w, &(char){ (char)c }, 1);
	}
	return w_end(&w, len);
}

/* --- connection strings --- */

enum { CS_HOST, CS_DEVICE, CS_MODULE, CS_KEY, CS_KEYNAME, CS_GATEWAY, CS_X509, CS_N };

static const char *const cs_keys[CS_N] = { "HostName", "DeviceId", "ModuleId",
	"SharedAccessKey", "SharedAccessKeyName", "GatewayHostName", "x509" };

/* A DNS name: labels of letters, digits and '-', joined by dots. */
static bool valid_host(const char *s)
{
	size_t label = 0, n = 0;

	for (; s[n]; n++) {
		unsigned char c = (unsigned char)s[n];

		if (c == '.' && label)
			label = 0;
		else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '-')
			label++;
		else
			return false;
	}
	return n > 0 && n <= 253 && label > 0;
}

/* Decode a SharedAccessKey (strict base64, 1..KEY_BYTES bytes). */
static int key_decode(const char *b64, uint8_t key[KEY_BYTES], size_t *n)
{
	size_t len = strlen(b64);

	if (len == 0 || len > TE_SECRET_MAX - 1 ||
	    te_base64_decode(b64, len, key, KEY_BYTES, n, NULL) < 0 || *n == 0)
		return -TE_EINVALID;
	return 0;
}

static void wipe(void *p, size_t n)
{
	explicit_bzero(p, n);
}

/* Where key k's value goes in c, and its room. */
static char *cs_field(struct te_azure_cs *c, unsigned k, char *x509, size_t *cap)
{
	switch (k) {
	case CS_HOST: *cap = sizeof(c->host); return c->host;
	case CS_DEVICE: *cap = sizeof(c->device); return c->device;
	case CS_MODULE: *cap = sizeof(c->module); return c->module;
	case CS_KEY: *cap = sizeof(c->key); return c->key;
	case CS_KEYNAME: *cap = sizeof(c->key_name); return c->key_name;
	case CS_GATEWAY: *cap = sizeof(c->gateway); return c->gateway;
	default: *cap = 8; return x509;
	}
}

/* Copy one "Key=value" part p[0..len) into c; have[] marks keys seen. */
static int cs_part(struct te_azure_cs *c, const char *p, size_t len,
		   bool have[CS_N], char *x509, char *err, size_t errcap)
{
	const char *eq = memchr(p, '=', len);
	size_t klen = eq ? (size_t)(eq - p) : len, vlen, cap;
	unsigned k;
	char *dst;

	if (!eq) {
		snprintf(err, errcap, "part %.*s has no '='", (int)(len > 40 ? 40 : len), p);
		return -TE_EINVALID;
	}
	for (k = 0; k < CS_N; k++)
		if (strlen(cs_keys[k]) == klen && !memcmp(p, cs_keys[k], klen))
			break;
	if (k == CS_N) {
		snprintf(err, errcap, "unknown part %.*s", (int)(klen > 40 ? 40 : klen), p);
		return -TE_EINVALID;
	}
	vlen = len - klen - 1;
	dst = cs_field(c, k, x509, &cap);
	if (have[k] || vlen == 0 || vlen >= cap) {
		snprintf(err, errcap, "%s %s", cs_keys[k],
			 have[k] ? "appears twice" : vlen ? "is too long" : "is empty");
		return -TE_EINVALID;
	}
	memcpy(dst, eq + 1, vlen);
	dst[vlen] = 0;
	have[k] = true;
	return 0;
}

/* Cross-key rules, once every part is in. */
static int cs_rules(struct te_azure_cs *c, const bool have[CS_N],
		    const char *x509, char *err, size_t errcap)
{
	uint8_t key[KEY_BYTES];
	size_t n;
	const char *bad = NULL;

	if (!have[CS_HOST] || !have[CS_DEVICE])
		bad = "needs HostName and DeviceId";
	else if (!valid_host(c->host))
		bad = "HostName must be a DNS name";
	else if (!te_config_valid_id(c->device))
		bad = "DeviceId is not a valid id";
	else if (have[CS_MODULE] && !te_config_valid_id(c->module))
		bad = "ModuleId is not a valid id";
	else if (have[CS_KEYNAME] && !te_config_valid_id(c->key_name))
		bad = "SharedAccessKeyName is not a valid id";
	else if (have[CS_GATEWAY] && !valid_host(c->gateway))
		bad = "GatewayHostName must be a DNS name";
	else if (have[CS_X509] && strcmp(x509, "true"))
		bad = "x509 must be true";
	else if (have[CS_KEY] && have[CS_X509])
		bad = "SharedAccessKey and x509 exclude each other";
	else if (!have[CS_KEY] && !have[CS_X509])
		bad = "needs SharedAccessKey (or x509=true with certFile and keyFile)";
	else if (have[CS_KEY] && key_decode(c->key, key, &n) < 0)
		bad = "SharedAccessKey is not valid base64";
	wipe(key, sizeof(key));
	if (bad) {
		snprintf(err, errcap, "%s", bad);
		return -TE_EINVALID;
	}
	return 0;
}

int te_azure_cs_parse(const char *cs, struct te_azure_cs *out, char *err,
		      size_t errcap)
{
	bool have[CS_N] = { false };
	char x509[8] = "";
	const char *p = cs;
	int r;

	memset(out, 0, sizeof(*out));
	while (*p) {
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		r = cs_part(out, p, len, have, x509, err, errcap);
		if (r < 0)
			return r;
		p += len + (end != NULL);
	}
	r = cs_rules(out, have, x509, err, errcap);
	if (r < 0)
		return r;
	out->x509 = have[CS_X509];
	snprintf(out->hub, sizeof(out->hub), "%.*s",
		 (int)strcspn(out->host, "."), out->host);
	return 0;
}

/* --- SAS tokens --- */

static void hmac_enc(br_hmac_context *h, const char *s)
{
	char e[3];

	for (; *s; s++)
		br_hmac_update(h, e, enc_byte((unsigned char)*s, e));
}

int te_azure_sas(const char *key_b64, const char *resource_uri,
		 uint64_t expiry, const char *key_name, char *out, size_t cap)
{
	uint8_t key[KEY_BYTES], mac[32];
	br_hmac_key_context kc;
	br_hmac_context hc;
	char se[21], sig[45];
	struct wbuf w = { out, cap, 0 };
	size_t klen, selen, siglen, len;
	bool skn = key_name && *key_name;

	if ((skn && !te_config_valid_id(key_name)) ||
	    key_decode(key_b64, key, &klen) < 0) {
		wipe(key, sizeof(key));
		return -TE_EINVALID;
	}
	selen = (size_t)snprintf(se, sizeof(se), "%llu", (unsigned long long)expiry);
	br_hmac_key_init(&kc, &br_sha256_vtable, key, klen);
	br_hmac_init(&hc, &kc, 0);
	hmac_enc(&hc, resource_uri);
	br_hmac_update(&hc, "\n", 1);
	br_hmac_update(&hc, se, selen);
	br_hmac_out(&hc, mac);
	wipe(key, sizeof(key));
	wipe(&kc, sizeof(kc));
	wipe(&hc, sizeof(hc));
	te_base64_encode(mac, sizeof(mac), sig, sizeof(sig), &siglen);

	w_str(&w, "SharedAccessSignature sr=");
	w_enc(&w, resource_uri, strlen(resource_uri));
	w_str(&w, "&sig=");
	w_enc(&w, sig, siglen);
	w_str(&w, "&se=");
	w_mem(&w, se, selen);
	if (skn) {
		w_str(&w, "&skn=");
		w_str(&w, key_name);
	}
	return w_end(&w, &len);
}

static bool valid_module(const char *module)
{
	return !module || !*module || te_config_valid_id(module);
}

int te_azure_resource(const char *host, const char *device, const char *module,
		      char *out, size_t cap, size_t *len)
{
	struct wbuf w = { out, cap, 0 };

	if (!valid_host(host) || !te_config_valid_id(device) || !valid_module(module))
		return -TE_EINVALID;
	w_str(&w, host);
	w_str(&w, "/devices/");
	w_str(&w, device);
	if (module && *module) {
		w_str(&w, "/modules/");
		w_str(&w, module);
	}
	return w_end(&w, len);
}

/* --- CONNECT identity --- */

int te_azure_client_id(const char *device, const char *module, char *out,
		       size_t cap, size_t *len)
{
	struct wbuf w = { out, cap, 0 };

	if (!te_config_valid_id(device) || !valid_module(module))
		return -TE_EINVALID;
	w_str(&w, device);
	if (module && *module) {
		w_str(&w, "/");
		w_str(&w, module);
	}
	return w_end(&w, len);
}

int te_azure_username(const char *host, const char *device, const char *module,
		      char *out, size_t cap, size_t *len)
{
	struct wbuf w = { out, cap, 0 };

	if (!valid_host(host) || !te_config_valid_id(device) || !valid_module(module))
		return -TE_EINVALID;
	w_str(&w, host);
	w_str(&w, "/");
	w_str(&w, device);
	if (module && *module) {
		w_str(&w, "/");
		w_str(&w, module);
	}
	w_str(&w, "/?api-version=" TE_AZURE_API_VERSION);
	return w_end(&w, len);
}

/* --- telemetry --- */

static const struct {
	enum te_sysprop p;
	const char *wire;
} bag_sys[] = {
	{ TE_SYS_MESSAGE_ID, "$.mid" },
	{ TE_SYS_CORRELATION_ID, "$.cid" },
	{ TE_SYS_CREATION_TIME_UTC, "$.ctime" },
	{ TE_SYS_CONTENT_TYPE, "$.ct" },
	{ TE_SYS_CONTENT_ENCODING, "$.ce" },
};

/* Append application properties p[0..n) to the bag; *first: no '&' yet. */
static int bag_props(struct wbuf *w, const struct te_prop *p, unsigned n,
		     bool *first)
{
	for (unsigned i = 0; i < n; i++) {
		if (!p[i].key.p || !p[i].key.n)
			return -TE_EINVALID;
		if (!*first)
			w_str(w, "&");
		*first = false;
		w_enc(w, p[i].key.p, p[i].key.n);
		w_str(w, "=");
		if (p[i].val.p)
			w_enc(w, p[i].val.p, p[i].val.n);
	}
	return 0;
}

int te_azure_telemetry_topic(const char *device, const char *module,
			     const struct te_msg *m, const struct te_prop *extra,
			     unsigned nextra, char *out, size_t cap, size_t *len)
{
	struct wbuf w = { out, cap, 0 };
	bool first = true;

	if (!te_config_valid_id(device) || !valid_module(module))
		return -TE_EINVALID;
	w_str(&w, "devices/");
	w_str(&w, device);
	if (module && *module) {
		w_str(&w, "/modules/");
		w_str(&w, module);
	}
	w_str(&w, "/messages/events/");
	for (size_t i = 0; i < sizeof(bag_sys) / sizeof(bag_sys[0]); i++) {
		const struct te_str *v = &m->sys[bag_sys[i].p];

		if (!v->p || !v->n)
			continue;
		if (!first)
			w_str(&w, "&");
		first = false;
		w_str(&w, bag_sys[i].wire);
		w_str(&w, "=");
		w_enc(&w, v->p, v->n);
	}
	if (bag_props(&w, m->props, m->nprops, &first) < 0 ||
	    bag_props(&w, extra, extra ? nextra : 0, &first) < 0)
		return -TE_EINVALID;
	return w_end(&w, len);
}

/* --- twins and direct methods: builders --- */

const char *const te_azure_subscriptions[TE_AZURE_NSUBS] = {
	"$iothub/twin/res/#",
	"$iothub/twin/PATCH/properties/desired/#",
	"$iothub/methods/POST/#",
};

static bool valid_rid_n(const char *s, size_t n)
{
	if (n == 0 || n > TE_AZURE_RID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!unreserved((unsigned char)s[i]))
			return false;
	return true;
}

static bool valid_rid(const char *rid)
{
	return rid && valid_rid_n(rid, strnlen(rid, TE_AZURE_RID_MAX + 1));
}

/* prefix + rid + suffix, rid checked. */
static int rid_topic(const char *prefix, const char *rid, char *out,
		     size_t cap, size_t *len)
{
	struct wbuf w = { out, cap, 0 };

	if (!valid_rid(rid))
		return -TE_EINVALID;
	w_str(&w, prefix);
	w_str(&w, rid);
	return w_end(&w, len);
}

int te_azure_twin_get_topic(const char *rid, char *out, size_t cap, size_t *len)
{
	return rid_topic("$iothub/twin/GET/?$rid=", rid, out, cap, len);
}

int te_azure_twin_reported_topic(const char *rid, char *out, size_t cap,
				 size_t *len)
{
	return rid_topic("$iothub/twin/PATCH/properties/reported/?$rid=", rid,
			 out, cap, len);
}

int te_azure_method_res_topic(unsigned status, const char *rid, char *out,
			      size_t cap, size_t *len)
{
	char prefix[40];

	if (status < 100 || status > 999)
		return -TE_EINVALID;
	snprintf(prefix, sizeof(prefix), "$iothub/methods/res/%u/?$rid=", status);
	return rid_topic(prefix, rid, out, cap, len);
}

/* --- parsing: a cursor over the rest of a topic --- */

struct cur {
	const char *p;
	size_t n;
};

/* Consume the literal lit if the input starts with it. */
static bool eat(struct cur *c, const char *lit)
{
	size_t l = strlen(lit);

	if (c->n < l || memcmp(c->p, lit, l))
		return false;
	c->p += l;
	c->n -= l;
	return true;
}

/* Take the input up to the next '/' (or the end) as *seg; the '/' stays. */
static void take_level(struct cur *c, struct cur *seg)
{
	const char *slash = memchr(c->p, '/', c->n);
	size_t l = slash ? (size_t)(slash - c->p) : c->n;

	seg->p = c->p;
	seg->n = l;
	c->p += l;
	c->n -= l;
}

/* Three digits, 100..599. */
static bool parse_status(struct cur s, unsigned *status)
{
	if (s.n != 3 || s.p[0] < '1' || s.p[0] > '5' || s.p[1] < '0' ||
	    s.p[1] > '9' || s.p[2] < '0' || s.p[2] > '9')
		return false;
	*status = (unsigned)((s.p[0] - '0') * 100 + (s.p[1] - '0') * 10 + s.p[2] - '0');
	return true;
}

/* Decimal uint64: digits only, no leading zero, no overflow. */
static bool parse_u64(struct cur s, uint64_t *v)
{
	uint64_t x = 0;

	if (s.n == 0 || s.n > 20 || (s.p[0] == '0' && s.n > 1))
		return false;
	for (size_t i = 0; i < s.n; i++) {
		unsigned d = (unsigned char)s.p[i] - '0';

		if (d > 9 || x > (UINT64_MAX - d) / 10)
			return false;
		x = x * 10 + d;
	}
	*v = x;
	return true;
}

static void copy_cur(char *dst, struct cur s)
{
	memcpy(dst, s.p, s.n);
	dst[s.n] = 0;
}

/* The query "k=v&k=v" of an IoT Hub topic: $rid and $version into in,
 * have_rid set; other keys checked for shape and ignored. */
static int parse_query(struct cur q, struct te_azure_in *in, bool *have_rid)
{
	size_t dummy;

	*have_rid = false;
	in->has_version = false;
	while (q.n) {
		const char *amp = memchr(q.p, '&', q.n);
		size_t l = amp ? (size_t)(amp - q.p) : q.n;
		const char *eq = memchr(q.p, '=', l);
		struct cur k, v;

		if (!eq || eq == q.p || (amp && l + 1 == q.n))
			return -TE_EMALFORMED;
		k = (struct cur){ q.p, (size_t)(eq - q.p) };
		v = (struct cur){ eq + 1, l - k.n - 1 };
		if (k.n == 4 && !memcmp(k.p, "$rid", 4)) {
			if (*have_rid || !valid_rid_n(v.p, v.n))
				return -TE_EMALFORMED;
			copy_cur(in->rid, v);
			*have_rid = true;
		} else if (k.n == 8 && !memcmp(k.p, "$version", 8)) {
			if (in->has_version || !parse_u64(v, &in->version))
				return -TE_EMALFORMED;
			in->has_version = true;
		} else if (te_url_decode(k.p, k.n, NULL, 0, &dummy, NULL) == -TE_EMALFORMED ||
			   te_url_decode(v.p, v.n, NULL, 0, &dummy, NULL) == -TE_EMALFORMED) {
			return -TE_EMALFORMED;
		}
		q.p += l + (amp != NULL);
		q.n -= l + (amp != NULL);
	}
	return 0;
}

static int parse_twin_res(struct cur c, struct te_azure_in *in)
{
	struct cur st;
	bool rid;

	take_level(&c, &st);
	if (!parse_status(st, &in->status) || !eat(&c, "/?") ||
	    parse_query(c, in, &rid) < 0 || !rid)
		return -TE_EMALFORMED;
	in->kind = TE_AZ_TWIN_RES;
	return 0;
}

static int parse_desired(struct cur c, struct te_azure_in *in)
{
	bool rid;

	if (parse_query(c, in, &rid) < 0 || !in->has_version)
		return -TE_EMALFORMED;
	in->rid[0] = 0;
	in->kind = TE_AZ_TWIN_DESIRED;
	return 0;
}

static int parse_method(struct cur c, struct te_azure_in *in)
{
	struct cur name;
	size_t n;
	bool rid;

	take_level(&c, &name);
	if (!name.n ||
	    te_url_decode(name.p, name.n, in->method, sizeof(in->method), &n, NULL) < 0 ||
	    !n || !eat(&c, "/?") || parse_query(c, in, &rid) < 0 || !rid)
		return -TE_EMALFORMED;
	in->has_version = false;
	in->kind = TE_AZ_METHOD;
	return 0;
}

int te_azure_parse_topic(const char *topic, size_t n, struct te_azure_in *in)
{
	struct cur c = { topic, n };

	memset(in, 0, sizeof(*in));
	if (eat(&c, "$iothub/twin/res/"))
		return parse_twin_res(c, in);
	if (eat(&c, "$iothub/twin/PATCH/properties/desired/?"))
		return parse_desired(c, in);
	if (eat(&c, "$iothub/methods/POST/"))
		return parse_method(c, in);
	return -TE_EMALFORMED;
}

/* --- generic MQTT mode --- */

/* One topic level's value: non-empty, no '+', '#', '/'. */
static bool level_ok(const char *v, char *bad)
{
	const char *x;

	if (!v || !*v)
		return false;
	x = strpbrk(v, "+#/");
	*bad = x ? *x : 0;
	return !x;
}

static int value_check(const char *name, const char *v, char *err, size_t errcap)
{
	char bad = 0;

	if (level_ok(v, &bad))
		return 0;
	if (!bad)
		snprintf(err, errcap, "{%s} is empty", name);
	else
		snprintf(err, errcap, "{%s} \"%.*s\" must not contain '%c'", name,
			 TE_ID_MAX, v, bad);
	return -TE_EINVALID;
}

int te_topic_expand(const char *tmpl, const char *device, const char *module,
		    const char *output, char *out, size_t cap, size_t *len,
		    char *err, size_t errcap)
{
	static const char *const names[] = { "device", "module", "output" };
	const char *vals[] = { device, module, output };
	struct wbuf w = { out, cap, 0 };

	if (!*tmpl) {
		snprintf(err, errcap, "the topic template is empty");
		return -TE_EINVALID;
	}
	for (size_t i = 0; tmpl[i]; i++) {
		const char *close = tmpl[i] == '{' ? strchr(tmpl + i, '}') : NULL;
		size_t k, l = close ? (size_t)(close - tmpl - i - 1) : 0;

		if (tmpl[i] == '+' || tmpl[i] == '#' || tmpl[i] == '}' ||
		    (tmpl[i] == '{' && !close)) {
			snprintf(err, errcap, "column %zu: '%c' %s", i + 1, tmpl[i],
				 tmpl[i] == '{' ? "is not closed" :
				 tmpl[i] == '}' ? "closes nothing" :
				 "is a wildcard, not allowed in a topic to publish to");
			return -TE_EINVALID;
		}
		if (tmpl[i] != '{') {
			w_mem(&w, tmpl + i, 1);
			continue;
		}
		for (k = 0; k < 3; k++)
			if (strlen(names[k]) == l && !memcmp(tmpl + i + 1, names[k], l))
				break;
		if (k == 3) {
			snprintf(err, errcap, "column %zu: unknown placeholder {%.*s}",
				 i + 1, (int)(l > 40 ? 40 : l), tmpl + i + 1);
			return -TE_EINVALID;
		}
		if (value_check(names[k], vals[k], err, errcap) < 0)
			return -TE_EINVALID;
		w_str(&w, vals[k]);
		i += l + 1;
	}
	return w_end(&w, len);
}

int te_gen_topic(enum te_gen_out k, const char *device, const char *module,
		 const char *rid, unsigned status, char *out, size_t cap,
		 size_t *len)
{
	static const char *const tail[] = {
		[TE_GEN_TWIN_GET] = "/twin/get/", [TE_GEN_TWIN_REPORTED] = "/twin/reported/",
		[TE_GEN_METHOD_RES] = "/methods/res/", [TE_GEN_SUB_TWIN_RES] = "/twin/res/#",
		[TE_GEN_SUB_DESIRED] = "/twin/desired", [TE_GEN_SUB_METHODS] = "/methods/+/+",
	};
	struct wbuf w = { out, cap, 0 };
	bool with_rid = k <= TE_GEN_METHOD_RES;
	char bad;

	if ((unsigned)k > TE_GEN_SUB_METHODS || !level_ok(device, &bad) ||
	    !level_ok(module, &bad) || (with_rid && !valid_rid(rid)) ||
	    (k == TE_GEN_METHOD_RES && (status < 100 || status > 999)))
		return -TE_EINVALID;
	w_str(&w, "tinyedge/");
	w_str(&w, device);
	w_str(&w, "/");
	w_str(&w, module);
	w_str(&w, tail[k]);
	if (with_rid)
		w_str(&w, rid);
	if (k == TE_GEN_METHOD_RES) {
		w_str(&w, "/");
		w_u64(&w, status);
	}
	return w_end(&w, len);
}

/* A raw topic level: 1..max bytes, no NUL, '+' or '#'. */
static bool raw_level_ok(struct cur s, size_t max)
{
	if (!s.n || s.n > max)
		return false;
	for (size_t i = 0; i < s.n; i++)
		if (!s.p[i] || s.p[i] == '+' || s.p[i] == '#')
			return false;
	return true;
}

/* ".../twin/res/{rid}[/{status}]" after "twin/res/". */
static int gen_twin_res(struct cur c, struct te_gen_in *in)
{
	struct cur rid, st;

	take_level(&c, &rid);
	if (!valid_rid_n(rid.p, rid.n))
		return -TE_EMALFORMED;
	copy_cur(in->rid, rid);
	in->status = 200;
	if (eat(&c, "/")) {
		take_level(&c, &st);
		if (!parse_status(st, &in->status))
			return -TE_EMALFORMED;
	}
	if (c.n)
		return -TE_EMALFORMED;
	in->kind = TE_GEN_IN_TWIN_RES;
	return 0;
}

/* ".../methods/{name}/{rid}" after "methods/". */
static int gen_method(struct cur c, struct te_gen_in *in)
{
	struct cur name, rid;

	take_level(&c, &name);
	if (!raw_level_ok(name, TE_AZURE_METHOD_MAX) || !eat(&c, "/"))
		return -TE_EMALFORMED;
	take_level(&c, &rid);
	if (c.n || !valid_rid_n(rid.p, rid.n))
		return -TE_EMALFORMED;
	copy_cur(in->method, name);
	copy_cur(in->rid, rid);
	in->kind = TE_GEN_IN_METHOD;
	return 0;
}

int te_gen_parse_topic(const char *topic, size_t n, const char *device,
		       struct te_gen_in *in)
{
	struct cur c = { topic, n }, mod;

	memset(in, 0, sizeof(*in));
	if (!*device || !eat(&c, "tinyedge/") || !eat(&c, device) || !eat(&c, "/"))
		return -TE_EMALFORMED;
	take_level(&c, &mod);
	if (!raw_level_ok(mod, TE_ID_MAX) || !eat(&c, "/"))
		return -TE_EMALFORMED;
	copy_cur(in->module, mod);
	if (eat(&c, "twin/res/"))
		return gen_twin_res(c, in);
	if (eat(&c, "twin/desired")) {
		/* nothing may follow (eat() has moved past it either way) */
		if (c.n)
			return -TE_EMALFORMED;
		in->kind = TE_GEN_IN_DESIRED;
		return 0;
	}
	if (eat(&c, "methods/"))
		return gen_method(c, in);
	return -TE_EMALFORMED;
}
