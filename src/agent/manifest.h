/* Deployment manifest: the Azure IoT Edge shape, parsed into validated
 * structs (docs/manifest.md).
 *
 *   modulesContent.$edgeAgent["properties.desired"].modules.{name}
 *   modulesContent.$edgeHub["properties.desired"].routes / storeAndForwardConfiguration
 *   modulesContent.{name}["properties.desired"]            (module twins)
 *
 * Everything a manifest holds lives in its arena and is freed with it.
 * After te_manifest_load() returns 0 every field is within its documented
 * range; later code trusts the struct. */
#ifndef TE_MANIFEST_H
#define TE_MANIFEST_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/diag.h"

#define TE_DEFAULT_MANIFEST "/etc/tinyedge/deployment.json"
#define TE_MODULE_NAME_MAX 63     /* a module name is also its hostname */
#define TE_STARTUP_ORDER_UNSET UINT32_MAX
#define TE_RING_BYTES_DEFAULT (256u * 1024)
#define TE_ROUTE_PRIORITY_DEFAULT 0
#define TE_TTL_DEFAULT 7200
#define TE_TTL_UNSET INT64_MIN  /* a route without timeToLiveSecs */

enum te_restart_policy { TE_RESTART_NEVER, TE_RESTART_ON_FAILURE,
			 TE_RESTART_ON_UNHEALTHY, TE_RESTART_ALWAYS };
enum te_module_status { TE_STATUS_RUNNING, TE_STATUS_STOPPED };
enum te_module_io { TE_IO_RING, TE_IO_STDIO };

/* What settings.image is, decided at load from the file itself
 * (docs/images.md). A missing image loads as TE_IMAGE_EXEC. */
enum te_image_kind {
	TE_IMAGE_EXEC,      /* an executable: exec'd as is (or inside rootfs) */
	TE_IMAGE_DIR,       /* a directory tree that becomes "/" */
	TE_IMAGE_SQUASHFS,  /* a squashfs file ("hsqs"), mounted, becomes "/" */
};

/* createOptions.writable: a writable layer over a directory or squashfs
 * image (overlayfs). */
enum te_writable {
	TE_WRITABLE_NONE,    /* read-only root */
	TE_WRITABLE_TMPFS,   /* upper layer on a tmpfs: gone at exit */
	TE_WRITABLE_VOLUME,  /* upper layer in <stateDir>/volumes/<name> */
};
#define TE_WRITABLE_BYTES_DEFAULT (16u << 20)

/* What a route does with a message its target module cannot take now (its
 * input ring is full, or it is not running). */
enum te_overflow {
	TE_OVERFLOW_SPILL,        /* queue it, in order (default) */
	TE_OVERFLOW_DROP_OLDEST,  /* queue it; when the queue is full, drop the oldest */
	TE_OVERFLOW_DROP_NEWEST,  /* drop it */
	TE_OVERFLOW_BLOCK,        /* queue it and stop reading the sender until it drains */
};

/* Namespace bits (namespaces key). */
enum {
	TE_NS_PID = 1u << 0,
	TE_NS_MOUNT = 1u << 1,
	TE_NS_UTS = 1u << 2,
	TE_NS_IPC = 1u << 3,
	TE_NS_NET = 1u << 4,
	TE_NS_USER = 1u << 5,
	TE_NS_DEFAULT = TE_NS_PID | TE_NS_MOUNT | TE_NS_UTS | TE_NS_IPC,
};

struct te_mount {
	const char *source; /* host path */
	const char *target; /* path inside the module */
	bool read_only;
};

struct te_device {
	const char *path;        /* host device node */
	const char *target;      /* path inside the module (= path by default) */
	const char *permissions; /* subset of "rwm", default "rwm" */
};

struct te_limits {
	int64_t memory_bytes; /* -1 = unset */
	int64_t pids;
	int64_t cpu_percent;  /* of one CPU: 50 = half a core, 200 = two */
	int64_t nofile;
};

struct te_module_spec {
	const char *name;
	const char *image;        /* settings.image: a path (for a URL: the URL,
				   * then the cached file once resolved) */
	/* settings.image as a URL (https://, http://, file:// with
	 * #sha256=; docs/images.md), else NULL. The daemon resolves it to the
	 * cached file (te_gate_prepare) before the module can start. */
	const char *image_url;
	char image_sha256[65];    /* of image_url */
	bool pull_never;          /* imagePullPolicy "never": cached or failed */
	enum te_image_kind image_kind;
	/* A directory or squashfs image: the program is args[0], an absolute
	 * path inside the image, and argv = args (argv[0] = args[0]). */
	enum te_writable writable;
	uint64_t writable_bytes;  /* size of the tmpfs layer */
	enum te_module_status status;
	enum te_restart_policy restart;
	uint32_t startup_order;   /* TE_STARTUP_ORDER_UNSET = last */
	const char **env;         /* "NAME=value", nenv entries */
	unsigned nenv;
	const char **args;        /* argv[1..]; nargs entries */
	unsigned nargs;
	const char *workdir;      /* NULL = "/" */
	const char *user;         /* NULL = the unprivileged default */
	const char *group;
	unsigned namespaces;      /* TE_NS_* */
	const char *rootfs;       /* NULL = host view */
	struct te_mount *mounts;
	unsigned nmounts;
	struct te_device *devices;
	unsigned ndevices;
	uint64_t capabilities;    /* bit n = capability n */
	struct te_limits limits;
	/* createOptions.seccomp / seccompAction (seccomp.h): no filter at
	 * all; the kill action (default: EPERM, counted); syscall names
	 * allowed on top of the default profile (checked at load). */
	bool seccomp_unconfined;
	bool seccomp_kill;
	const char **seccomp_extra;
	unsigned nseccomp_extra;
	unsigned stop_timeout_secs;
	unsigned watchdog_secs;   /* 0 = none */
	enum te_module_io io;
	uint32_t ring_bytes;      /* each direction */
	const char *desired_json; /* {name}["properties.desired"] or NULL */
	/* Where the module is defined, for messages at run time. */
	unsigned line, col;
	/* Set only on the copy of the spec that te_image_acquire() hands to
	 * the sandbox (image_kind != EXEC): rootfs is then the image's tree,
	 * image its program and args the rest of argv. NULL in a manifest. */
	const char *overlay;      /* overlayfs options, NULL = read-only root */
	const char *scratch;      /* host dir the tmpfs layer is mounted on */
	const char *scratch_opts; /* that tmpfs's options ("size=...") */
};

struct te_route_spec {
	const char *name;
	const char *route;        /* route language text (compiled by the hub) */
	unsigned priority;        /* 0 (highest) .. 9 */
	int64_t ttl_secs;         /* TE_TTL_UNSET: the deployment's default */
	enum te_overflow overflow;
	unsigned line, col;
};

struct te_manifest {
	struct te_arena arena;
	const char *path;         /* NULL when built from flags only */
	struct te_module_spec *modules;
	unsigned nmodules;
	struct te_route_spec *routes;
	unsigned nroutes;
	int64_t ttl_secs;         /* storeAndForwardConfiguration.timeToLiveSecs */
	bool has_ttl;             /* ttl_secs was given in the manifest */
	int64_t version;          /* "$version" (cloud deployments), else 0 */
	/* From the cloud: module twins' desired properties come from their
	 * own twins, not from this document (a module without
	 * properties.desired keeps its twin). */
	bool cloud;
};

/* An empty manifest (no modules, no routes). */
void te_manifest_init(struct te_manifest *m);

/* Load and validate path. Reports every problem found to diag; returns 0,
 * -TE_EINVALID (problems reported) or -errno (cannot read; reported). On
 * error m is left empty but initialised. */
int te_manifest_load(struct te_manifest *m, const char *path,
		     struct te_diag *diag);

/* The same from text[0..n) (a cloud deployment); name is used in
 * messages. */
int te_manifest_parse(struct te_manifest *m, const char *name, const char *text,
		      size_t n, struct te_diag *diag);

/* One-off runs: --module NAME=PATH[:ARG...] and --route ROUTE, appended to
 * m (a module of the same name as a manifest module replaces it). Errors
 * name the flag. 0 or -TE_EINVALID (reported) / -ENOMEM. */
int te_manifest_add_module_flag(struct te_manifest *m, const char *arg,
				struct te_diag *diag);
int te_manifest_add_route_flag(struct te_manifest *m, const char *arg,
			       struct te_diag *diag);

/* Look a module up by name; NULL if absent. */
const struct te_module_spec *te_manifest_find(const struct te_manifest *m,
					      const char *name);

/* Host checks (for `tinyedge check`): every running module's image exists
 * and is executable, rootfs/mount sources/devices exist. Reports problems
 * at the module's position; returns how many. */
unsigned te_manifest_check_host(const struct te_manifest *m,
				struct te_diag *diag);

void te_manifest_free(struct te_manifest *m);

const char *te_restart_policy_name(enum te_restart_policy p);
const char *te_overflow_name(enum te_overflow o);
const char *te_module_status_name(enum te_module_status s);
/* Capability name ("CAP_NET_ADMIN" or "NET_ADMIN", any case) -> number,
 * or -1. */
int te_capability_from_name(const char *name);
const char *te_capability_name(unsigned cap);

#endif
