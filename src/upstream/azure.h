/* Protocol strings for the upstream (docs/upstream.md): Azure IoT Hub's MQTT
 * device/module protocol, and the topics of generic MQTT mode.
 *
 * Pure functions over caller buffers, after azure-sdk-for-c: no I/O, no
 * allocation, no clock (the caller supplies expiry times). Everything that
 * comes from the broker is hostile: parsers check every byte and return
 * -TE_EMALFORMED for anything outside the grammar below, never crash.
 *
 * Builders share one convention: out receives a NUL-terminated string and
 * *len (never NULL) its length without the NUL. When cap is too small they
 * return -TE_ENOSPACE with *len = the length needed (cap must be *len + 1);
 * out then holds an unspecified, NUL-terminated prefix (if cap > 0). */
#ifndef TE_AZURE_H
#define TE_AZURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "hub/msg.h"

#define TE_AZURE_API_VERSION "2021-04-12"
#define TE_AZURE_RID_MAX 64      /* request ids: $rid and generic {rid} */
#define TE_AZURE_METHOD_MAX 128  /* direct method names, decoded */

/* --- connection strings ---------------------------------------------------
 *
 *   HostName=h;DeviceId=d;SharedAccessKey=k[;ModuleId=m]
 *   [;SharedAccessKeyName=n][;GatewayHostName=g]
 * or, for X.509 authentication (certificate files in the config):
 *   HostName=h;DeviceId=d[;ModuleId=m][;GatewayHostName=g];x509=true
 *
 * Keys are case-sensitive, each at most once, values non-empty; the split
 * is at the first '=' (base64 keys end in '='). HostName and
 * GatewayHostName are DNS names; DeviceId and ModuleId obey
 * te_config_valid_id(); SharedAccessKey must be strict base64 of 1 to
 * TE_SECRET_MAX / 4 * 3 bytes. Exactly one of SharedAccessKey and
 * x509=true. */
struct te_azure_cs {
	char host[TE_HOST_MAX];         /* HostName: the IoT hub's host */
	char hub[TE_HOST_MAX];          /* host up to its first dot */
	char device[TE_ID_MAX + 1];
	char module[TE_ID_MAX + 1];     /* "" = a device identity */
	char key[TE_SECRET_MAX];        /* base64 as given; "" with x509 */
	char key_name[TE_ID_MAX + 1];   /* SharedAccessKeyName or "" */
	char gateway[TE_HOST_MAX];      /* GatewayHostName or "" */
	bool x509;
};

/* Parse cs into *out. 0, or -TE_EINVALID with a message in err (errcap
 * bytes, may be 0) that names the offending key but never quotes the
 * value of SharedAccessKey: it is a secret. *out is unspecified after an
 * error (it may hold the key: wipe it if that matters). */
int te_azure_cs_parse(const char *cs, struct te_azure_cs *out, char *err,
		      size_t errcap);

/* --- URL encoding (RFC 3986) ----------------------------------------------
 *
 * Encoding keeps the unreserved characters A-Z a-z 0-9 - . _ ~ and writes
 * every other byte as %XX, upper-case hex (what IoT Hub's SAS signature is
 * computed over: the known-answer test fails with %2f). */
int te_url_encode(const char *s, size_t n, char *out, size_t cap, size_t *len);

/* Decode s[0..n): %XX with two hex digits of either case; other bytes
 * stand for themselves ('+' is a plus). Strict: a '%' without two hex
 * digits after it, or a NUL byte raw or as %00, is -TE_EMALFORMED with
 * *bad (may be NULL) = its offset in s; so the result is a C string.
 * -TE_ENOSPACE as for builders (*len = decoded length). */
int te_url_decode(const char *s, size_t n, char *out, size_t cap, size_t *len,
		  size_t *bad);

/* --- SAS tokens -------------------------------------------------------------
 *
 * out = "SharedAccessSignature sr={enc(resource)}&sig={enc(sig)}&se={expiry}"
 *       + "&skn={key_name}" when key_name is not NULL or "",
 * sig = base64(HMAC-SHA256(base64decode(key_b64), enc(resource) "\n" expiry)),
 * enc = te_url_encode. The resource is used as given (IoT Hub's host names
 * are lower-case already; azure-sdk-for-c does not fold case either).
 * The decoded key is wiped from the stack before returning.
 * 0, -TE_EINVALID (key_b64 not strict base64, or empty, or longer than
 * TE_SECRET_MAX; key_name not a valid id), or -TE_ENOSPACE when cap is
 * too small (TE_SECRET_MAX holds any token for a host and ids made of
 * letters, digits and "-._"; every other id character takes three). */
int te_azure_sas(const char *key_b64, const char *resource_uri,
		 uint64_t expiry, const char *key_name, char *out, size_t cap);

/* The resource a device or module token is for, without encoding:
 * "{host}/devices/{device}" or "{host}/devices/{device}/modules/{module}"
 * (module NULL or "" for a device). Always the IoT hub's HostName, even
 * when connecting through a GatewayHostName. */
int te_azure_resource(const char *host, const char *device, const char *module,
		      char *out, size_t cap, size_t *len);

/* --- CONNECT identity -------------------------------------------------------
 *
 * Client id: "{device}" or "{device}/{module}".
 * Username: "{host}/{device}[/{module}]/?api-version=2021-04-12", host
 * the full HostName ("myhub.azure-devices.net"), as IoT Hub's MQTT guide
 * and azure-sdk-for-c write it. Ids are copied as they are (IoT Hub's id
 * character set needs no encoding here). */
int te_azure_client_id(const char *device, const char *module, char *out,
		       size_t cap, size_t *len);
int te_azure_username(const char *host, const char *device, const char *module,
		      char *out, size_t cap, size_t *len);

/* --- telemetry --------------------------------------------------------------
 *
 * "devices/{d}/messages/events/{bag}" or, for a module identity,
 * "devices/{d}/modules/{m}/messages/events/{bag}". The property bag is
 * "k=v" pairs joined by '&', in this order:
 *   $.mid  messageId        $.cid  correlationId     $.ctime creationTimeUtc
 *   $.ct   contentType      $.ce   contentEncoding
 * (the wire names of Microsoft's device SDKs; absent or empty properties
 * are left out), then m's application properties, then extra[0..nextra)
 * (may be NULL). Every key and value is te_url_encode'd ("$.ct=application
 * %2Fjson"); so an application key "$.mid" goes as "%24.mid" and cannot
 * pose as a system property. An application property with an empty key is
 * -TE_EINVALID; an absent value goes as "k=".
 *
 * connectionDeviceId and connectionModuleId are not sent: IoT Hub stamps
 * them from the authenticated identity (iothub-connection-device-id /
 * -module-id) and ignores a device's claim. A module without its own
 * identity that sends over the device's connection is named through extra
 * application properties instead: the daemon passes
 * TE_AZURE_TAG_MODULE = {module} and TE_AZURE_TAG_OUTPUT = {output}, the
 * names of edgeHub's system properties, so a cloud route can say
 * `connectionModuleId = 'filter' AND outputName = 'alerts'` (application
 * properties are referenced without '$'). */
#define TE_AZURE_TAG_MODULE "connectionModuleId"
#define TE_AZURE_TAG_OUTPUT "outputName"

int te_azure_telemetry_topic(const char *device, const char *module,
			     const struct te_msg *m, const struct te_prop *extra,
			     unsigned nextra, char *out, size_t cap, size_t *len);

/* --- twins and direct methods -----------------------------------------------
 *
 * Subscribe to these three after every CONNACK. */
#define TE_AZURE_NSUBS 3
extern const char *const te_azure_subscriptions[TE_AZURE_NSUBS];

/* What IoT Hub sends, parsed. Strings are copies, NUL-terminated. */
enum te_azure_in_kind {
	TE_AZ_TWIN_RES,      /* $iothub/twin/res/{status}/?$rid={rid}[&$version={v}] */
	TE_AZ_TWIN_DESIRED,  /* $iothub/twin/PATCH/properties/desired/?$version={v} */
	TE_AZ_METHOD,        /* $iothub/methods/POST/{name}/?$rid={rid} */
};

struct te_azure_in {
	enum te_azure_in_kind kind;
	unsigned status;                        /* TWIN_RES: 100..599 */
	bool has_version;
	uint64_t version;                       /* $version, when has_version */
	char rid[TE_AZURE_RID_MAX + 1];         /* TWIN_RES, METHOD */
	char method[TE_AZURE_METHOD_MAX + 1];   /* METHOD: URL-decoded */
};

/* Parse topic[0..n) (not NUL-terminated) into *in.
 * Grammar: the three forms above; {status} three digits 100..599; {v} a
 * decimal uint64 without sign or leading zeros; {rid} 1..TE_AZURE_RID_MAX
 * unreserved characters (what te_azure_*_topic accept, so a response
 * carries back the rid as sent); {name} a non-empty path segment,
 * URL-decoded to 1..TE_AZURE_METHOD_MAX bytes. The query is "k=v" pairs
 * joined by '&': $rid required where shown, $version required on a
 * desired patch and optional on a twin response, a known key twice is
 * malformed, other well-formed keys are ignored (IoT Hub may add some).
 * 0 or -TE_EMALFORMED (including a topic that is none of the three). */
int te_azure_parse_topic(const char *topic, size_t n, struct te_azure_in *in);

/* Device-to-hub requests. rid: 1..TE_AZURE_RID_MAX unreserved characters
 * (else -TE_EINVALID).
 *   twin_get:      $iothub/twin/GET/?$rid={rid}          (empty payload)
 *   twin_reported: $iothub/twin/PATCH/properties/reported/?$rid={rid}
 *   method_res:    $iothub/methods/res/{status}/?$rid={rid}
 *                  (status 100..999, else -TE_EINVALID) */
int te_azure_twin_get_topic(const char *rid, char *out, size_t cap, size_t *len);
int te_azure_twin_reported_topic(const char *rid, char *out, size_t cap,
				 size_t *len);
int te_azure_method_res_topic(unsigned status, const char *rid, char *out,
			      size_t cap, size_t *len);

/* --- generic MQTT mode ------------------------------------------------------
 *
 * Telemetry goes to a topic template with placeholders {device}, {module}
 * and {output}; the default: */
#define TE_TOPIC_DEFAULT "tinyedge/{device}/{module}/{output}"

/* Expand tmpl. A value (NULL counts as empty) must be non-empty and free
 * of '+', '#' and '/' (each is one topic level); the template must have
 * no '+' or '#', and '{' only to open a known placeholder, '}' only to
 * close one. -TE_EINVALID with a message in err (errcap bytes, may be 0):
 * "column 10: unknown placeholder {modul}" (columns from 1) or
 * "{module} \"a/b\" must not contain '/'". Also checks a template at
 * config load, with placeholder values such as "x". */
int te_topic_expand(const char *tmpl, const char *device, const char *module,
		    const char *output, char *out, size_t cap, size_t *len,
		    char *err, size_t errcap);

/* Twins and methods in generic mode live under "tinyedge/{device}/{module}"
 * ({module} is the module's name; the daemon's own twin uses the module
 * name the caller chooses for it). Payloads are JSON as on IoT Hub.
 *
 *  device -> broker
 *   .../twin/get/{rid}               request the full twin (empty payload)
 *   .../twin/reported/{rid}          a reported-properties patch
 *   .../methods/res/{rid}/{status}   a method's response
 *  broker -> device
 *   .../twin/res/{rid}[/{status}]    answer to get (the twin) or reported
 *                                    (empty); status 200 when left out
 *   .../twin/desired                 a desired patch with its "$version"
 *                                    inside, as IoT Hub sends it
 *   .../methods/{name}/{rid}         invoke method {name}: the payload is
 *                                    the request
 *
 * rid as for Azure; method names are used raw (no URL encoding in this
 * mode): 1..TE_AZURE_METHOD_MAX bytes without '+', '#', '/' or NUL. */
enum te_gen_out {
	TE_GEN_TWIN_GET,       /* rid */
	TE_GEN_TWIN_REPORTED,  /* rid */
	TE_GEN_METHOD_RES,     /* rid, status 100..999 */
	TE_GEN_SUB_TWIN_RES,   /* subscriptions: .../twin/res/# */
	TE_GEN_SUB_DESIRED,    /* .../twin/desired */
	TE_GEN_SUB_METHODS,    /* .../methods/+/+ */
};

/* Build a topic of kind k (rid NULL and status 0 where unused).
 * -TE_EINVALID for a bad device, module (as for te_topic_expand), rid or
 * status. */
int te_gen_topic(enum te_gen_out k, const char *device, const char *module,
		 const char *rid, unsigned status, char *out, size_t cap,
		 size_t *len);

enum te_gen_in_kind { TE_GEN_IN_TWIN_RES, TE_GEN_IN_DESIRED, TE_GEN_IN_METHOD };

struct te_gen_in {
	enum te_gen_in_kind kind;
	unsigned status;                       /* TWIN_RES */
	char module[TE_ID_MAX + 1];
	char rid[TE_AZURE_RID_MAX + 1];        /* TWIN_RES, METHOD */
	char method[TE_AZURE_METHOD_MAX + 1];  /* METHOD */
};

/* Parse topic[0..n), which must start with "tinyedge/{device}/", into
 * *in. 0 or -TE_EMALFORMED (another device, a module level that is empty,
 * longer than TE_ID_MAX or holds '+', '#' or NUL, anything outside the
 * three inbound forms). */
int te_gen_parse_topic(const char *topic, size_t n, const char *device,
		       struct te_gen_in *in);

#endif
