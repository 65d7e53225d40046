/* Device configuration: /etc/tinyedge/config.json (or -c FILE).
 *
 * Keys are camelCase; unknown keys are an error. Every problem is reported
 * to a struct te_diag with file:line:col. Strings are bounded and copied
 * into the struct, so a loaded config owns no memory. See docs/config.md. */
#ifndef TE_CONFIG_H
#define TE_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "diag.h"
#include "log.h"

#define TE_DEFAULT_CONFIG "/etc/tinyedge/config.json"
#define TE_DEFAULT_STATE_DIR "/var/lib/tinyedge"
#define TE_ID_MAX 128   /* Azure IoT Hub's limit for device and module ids */
#define TE_HOST_MAX 256
#define TE_SECRET_MAX 1024
#define TE_IMAGES_KEYS_MAX 8    /* images.trustedKeys */
#define TE_KEY_PATH_MAX 256     /* bytes of each, with the NUL */

enum te_upstream_protocol { TE_UP_NONE, TE_UP_MQTT, TE_UP_AZURE };

#define TE_UP_IDENTITIES_MAX 16

/* A module with its own IoT Hub identity: its own connection. */
struct te_module_identity {
	char module[TE_ID_MAX + 1];
	char connection_string[TE_SECRET_MAX];
};

struct te_upstream_config {
	enum te_upstream_protocol protocol;
	char connection_string[TE_SECRET_MAX];
	char host[TE_HOST_MAX];
	unsigned port;            /* 0 = default: 8883 with TLS, 1883 without */
	bool tls;
	char ca_file[PATH_MAX];
	char cert_file[PATH_MAX];
	char key_file[PATH_MAX];
	char username[TE_SECRET_MAX];
	char password[TE_SECRET_MAX];
	unsigned keepalive_secs;
	char topic[TE_HOST_MAX];  /* generic mqtt: telemetry topic template */
	unsigned inflight;        /* unacknowledged QoS 1 publishes (16) */
	unsigned reconnect_min_ms; /* reconnect backoff: first step (1000) */
	unsigned reconnect_max_ms; /* and the cap it doubles to (60000) */
	char client_id[TE_HOST_MAX]; /* generic mqtt: "" = the device id */
	struct te_module_identity ids[TE_UP_IDENTITIES_MAX]; /* Azure */
	unsigned nids;
};

struct te_config {
	char device_id[TE_ID_MAX + 1];
	char hostname[TE_HOST_MAX];
	char state_dir[PATH_MAX];
	enum te_log_level log_level;
	struct te_upstream_config upstream;
	struct {
		char path[PATH_MAX];     /* "" = <stateDir>/store */
		uint64_t max_bytes;      /* 0 = auto: min(64 MiB, 50% free) */
		int64_t ttl_secs;        /* default for messages; <= 0 = keep */
	} store;
	struct {
		unsigned initial_ms, max_ms, reset_after_secs;
	} backoff;
	struct {
		unsigned port;           /* HTTP /metrics; 0 = none */
		char address[16];        /* an IPv4 literal (127.0.0.1) */
	} metrics;
	struct {
		unsigned ring_bytes;     /* per-module in-memory log ring */
		bool persist;
		bool syslog;
	} logs;
	struct {
		bool rollback_on_failure; /* crash-looping deployment -> last good */
		unsigned probation_secs;  /* how long new modules must hold (60) */
		uint64_t memory_budget;   /* admission; 0 = the device's RAM */
	} deployment;
	struct {                      /* the control socket (docs/security.md) */
		char admin_group[64];     /* "" = root and the daemon's user only */
		gid_t admin_gid;          /* admin_group resolved at load */
	} control;
	struct {                      /* the image cache (docs/images.md) */
		uint64_t cache_bytes;     /* quota (512 MiB) */
		uint64_t max_image_bytes; /* one image (256 MiB) */
		unsigned gc_grace_secs;   /* unused this long: collectable (86400) */
		unsigned timeout_secs;    /* one download (600) */
		char ca_file[PATH_MAX];   /* "" = upstream.caFile, else the system's */
		/* PEM EC P-256 public keys; short paths: 8 x PATH_MAX would add
		 * 32 KiB to every copy of the config. */
		char trusted_keys[TE_IMAGES_KEYS_MAX][TE_KEY_PATH_MAX];
		unsigned nkeys;
	} images;
};

/* Fill c with defaults (device id and hostname from uname). */
void te_config_defaults(struct te_config *c);

/* Load path over the defaults. Reports every problem to diag; returns 0,
 * -TE_EINVALID (problems reported), or -errno when the file cannot be read
 * (reported too). */
int te_config_load(struct te_config *c, const char *path, struct te_diag *diag);

/* Warn (log, never refuse) when the config loaded from path holds an inline
 * secret (connectionString, password) and the file is readable by group or
 * others. 1 when it warned, else 0. */
int te_config_warn_mode(const struct te_config *c, const char *path);

/* Parse an --upstream URL (none, mqtt://host[:port], mqtts://host[:port])
 * into c->upstream. -TE_EINVALID with a message in err (cap bytes). */
int te_config_parse_upstream_url(struct te_config *c, const char *url,
				 char *err, unsigned long cap);

/* Is s a valid device or module id (Azure's character set, 1..128 bytes)? */
bool te_config_valid_id(const char *s);

const char *te_upstream_protocol_name(enum te_upstream_protocol p);

#endif
