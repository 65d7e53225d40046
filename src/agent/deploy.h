/* Deployments from the cloud (docs/deployments.md).
 *
 * Azure IoT Hub: the $edgeAgent module twin's desired properties (modules,
 * runtime) and, when the $edgeHub identity is configured, the $edgeHub
 * twin's (routes, storeAndForwardConfiguration); without it the routes
 * come from the local deployment file. Generic MQTT: a retained message
 * holding a whole manifest. Either way the document is validated like a
 * local manifest, checked against the device's memory budget (admission),
 * and applied by difference (te_sv_apply): an invalid one changes nothing.
 * The outcome is reported as $edgeAgent's lastDesiredStatus with Azure's
 * codes:
 *
 *   200 applied; 400 invalid (or over the memory budget); 412 unsupported
 *   schemaVersion; 417 no deployment in the desired properties; 500 it
 *   could not be applied, or it was rolled back.
 *
 * The last good deployment is kept in <stateDir>/deployment.good.json and
 * is what the daemon runs at boot when an upstream is configured, with no
 * network needed. With rollbackOnFailure, a deployment becomes the last
 * good one only after its new and changed modules ran probationSecs
 * without crash-looping (3 restarts, or failed); otherwise the last good
 * one is applied again and the status says why. */
#ifndef TE_DEPLOY_H
#define TE_DEPLOY_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/loop.h"
#include "manifest.h"

struct te_supervisor;

/* What the admission check counts for the runtime itself. */
#define TE_DEPLOY_RUNTIME_BYTES (4u << 20)
#define TE_DEPLOY_CRASH_LOOP 3      /* restarts on probation that make a crash loop */
#define TE_DEPLOY_WATCH_MAX 64

enum te_deploy_doc { TE_DEPLOY_AGENT, TE_DEPLOY_HUB, TE_DEPLOY_MANIFEST };

struct te_deployer {
	struct te_loop *loop;
	const struct te_config *cfg;
	struct te_supervisor *sv;
	/* Apply m (taking it) as a reload does: routes, then modules. 0, 1
	 * when it waits for its images (te_deploy_applied says how it ended),
	 * or -errno with err set (nothing was changed). */
	int (*apply)(struct te_deployer *dp, struct te_manifest *m, char *err, size_t errlen);
	/* $edgeAgent's reported properties changed: a merge patch to send. */
	void (*report)(struct te_deployer *dp, const char *patch, size_t n);
	void *ctx;
	char good_path[PATH_MAX];
	char local_path[PATH_MAX];  /* the local deployment file, "" = none */
	/* The cloud's documents as last received (desired, "$" keys kept). */
	char *doc[3];
	size_t doclen[3];
	int64_t docver[3];
	char applied_hash[17];      /* of the last document set tried */
	bool cloud_active;          /* a cloud deployment runs */
	int64_t desired_version;    /* lastDesiredVersion */
	unsigned status;            /* lastDesiredStatus.code, 0 = none yet */
	char desc[512];
	/* Probation (rollbackOnFailure). */
	struct te_timer probe;
	uint64_t probe_end;
	char *pending;              /* the deployment on probation */
	size_t pending_len;
	char *waiting;              /* the deployment waiting for its images */
	size_t waiting_len;
	struct { char name[TE_MODULE_NAME_MAX + 1]; unsigned restarts; } watch[TE_DEPLOY_WATCH_MAX];
	unsigned nwatch;
	/* $edgeAgent reported: sent when it changes, at most every second. */
	struct te_timer tick;
	uint64_t report_hash;
	char *reported_mods;        /* names in the last report, NUL-separated */
	size_t reported_mods_len;
	uint64_t start_wall_ms;
};

/* A deployment that waited for its images (apply returned 1): r 0 applied
 * now, 1 an image could not be pulled (err; still waiting, the running
 * modules unchanged), < 0 it cannot be applied (err). */
void te_deploy_applied(struct te_deployer *dp, int r, const char *err);

void te_deploy_init(struct te_deployer *dp, struct te_loop *loop, const struct te_config *cfg,
		    struct te_supervisor *sv, const char *local_path);
/* Start reporting (the uplinks are set up). */
void te_deploy_start(struct te_deployer *dp);
void te_deploy_free(struct te_deployer *dp);

/* At boot with an upstream configured: the last good cloud deployment, if
 * there is one, into *m (0; 1 = none; -errno with a log line). */
int te_deploy_load_good(struct te_deployer *dp, struct te_manifest *m);

/* The cloud sent a document: full (a twin GET) or a merge patch, at
 * version. The deployment is (re)built and applied when it changed. */
void te_deploy_cloud(struct te_deployer *dp, enum te_deploy_doc kind, const char *json,
		     size_t n, int64_t version, bool full);

/* Admission: the memory m declares (module limits + rings + the runtime)
 * against the budget (config deployment.memoryBudgetBytes, else the
 * device's RAM). 0, or -TE_ELIMIT with err saying by how much. */
int te_deploy_admit(const struct te_manifest *m, const struct te_config *cfg, char *err,
		    size_t errlen);

/* $edgeAgent's reported properties, whole, into a malloc'd string. */
int te_deploy_reported(struct te_deployer *dp, char **out, size_t *len);

#endif
