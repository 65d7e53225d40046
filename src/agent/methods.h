/* The agent's built-in direct methods: what Azure IoT Edge's edgeAgent
 * answers as module $edgeAgent, with the same request and response shapes
 * (docs/methods.md):
 *
 *   ping           200, no payload
 *   RestartModule  {"schemaVersion":"1.0","id":M}: 200, no payload
 *   GetModuleLogs  {"schemaVersion":"1.0","items":[{"id":REGEX,"filter":{...}}],
 *                   "encoding":"none","contentType":"text"|"json"}
 *                  -> [{"id":M,"payload":"..."}], at most 128 KiB in all
 *   GetTaskStatus  {"schemaVersion":"1.0","correlationId":ID}
 *                  -> {"status":...,"message":...,"correlationId":ID}
 *
 * Method names compare without case and request keys too, as edgeAgent's
 * (Newtonsoft) reader does; unknown request keys are ignored (an
 * UploadModuleLogs body with its sasUrl is a valid GetModuleLogs body).
 * Errors are {"message": "..."}: 400 for a request that is not valid (the
 * message names the field) or an unknown method, 500 for one that cannot
 * be carried out (RestartModule of a module that is not in the deployment
 * or is stopped), as edgeAgent does.
 *
 * The task registry holds long-running work that GetTaskStatus reports on:
 * a fixed table of TE_AGENT_TASKS; a new task takes a free slot, else the
 * one that finished first. Everything runs on the loop thread. */
#ifndef TE_METHODS_H
#define TE_METHODS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct te_supervisor;

/* The response limit of an IoT Hub direct method, for the whole body. */
#define TE_AGENT_RESPONSE_MAX (128u * 1024)
/* Request bodies over this are refused (IoT Hub's limit too). */
#define TE_AGENT_REQUEST_MAX (128u * 1024)

#define TE_AGENT_TASKS 32
#define TE_TASK_ID_LEN 36 /* a UUID: 8-4-4-4-12 hex digits */

/* Azure's BackgroundTaskRunStatus words; Unknown is only an answer. */
enum te_task_status {
	TE_TASK_NOT_STARTED,
	TE_TASK_RUNNING,
	TE_TASK_COMPLETED,
	TE_TASK_FAILED,
	TE_TASK_CANCELLED,
	TE_TASK_UNKNOWN,
};

struct te_agent_task {
	char id[TE_TASK_ID_LEN + 1];  /* "" = free slot */
	char what[64];
	char message[192];
	enum te_task_status status;
	uint64_t done_seq;            /* order of finishing; 0 while running */
};

struct te_agent_tasks {
	struct te_agent_task t[TE_AGENT_TASKS];
	uint64_t next_done;
};

/* What the methods need. sv->cfg gives the device id and hub name. */
struct te_agent {
	struct te_supervisor *sv;
	struct te_agent_tasks tasks;
};

void te_agent_init(struct te_agent *ag, struct te_supervisor *sv);

/* A built-in $edgeAgent method. Returns the status (200, 400, 500); *out
 * is a malloc'd JSON response body (NULL for none: ping, RestartModule),
 * *outlen its length, never over TE_AGENT_RESPONSE_MAX. payload[0..n) is
 * the request's JSON (n = 0 or "null": no payload). Out of memory: 500
 * with *out NULL. */
unsigned te_agent_method(struct te_agent *ag, const char *method,
			 const char *payload, size_t n, char **out,
			 size_t *outlen);

/* Register long-running work, status Running. what names it in a failure
 * message ("deployment 7"). Returns its correlation id, a random UUID v4
 * (a pointer into the table: copy it to keep it), or NULL when every slot
 * holds a running task or the kernel gives no random bytes. */
const char *te_agent_task_begin(struct te_agent_tasks *t, const char *what);

/* The task finished: Completed, or Failed with message (may be NULL).
 * -ENOENT for an unknown (or already dropped) id, -EALREADY when it has
 * already finished. */
int te_agent_task_end(struct te_agent_tasks *t, const char *id, bool ok,
		      const char *message);
int te_agent_task_cancel(struct te_agent_tasks *t, const char *id);

/* The task with that id, or NULL. */
const struct te_agent_task *te_agent_task_find(const struct te_agent_tasks *t,
					       const char *id);
/* "NotStarted", "Running", "Completed", "Failed", "Cancelled", "Unknown". */
const char *te_task_status_name(enum te_task_status s);

/* GetModuleLogs' since/until: unix seconds ("1700000000"), RFC 3339
 * ("2023-11-14T22:13:20Z", "...20.5+01:00") or a duration before now_ms
 * ("1 day", "2 hours 30 minutes", "90 m", "1d"; units s, m, h, d, w and
 * their long forms). *ms gets the time in ms since the epoch (a time
 * before the epoch is 0). -TE_EINVALID when s is none of them. */
int te_agent_parse_time(const char *s, uint64_t now_ms, uint64_t *ms);

#endif
