/* Command-line plumbing shared by the verbs: one option parser, and the
 * one way config + manifest + flags become a validated runtime setup. */
#ifndef TE_CLI_H
#define TE_CLI_H

#include <stdbool.h>

#include "agent/manifest.h"
#include "core/config.h"
#include "core/diag.h"

#define TE_CLI_MAX_FLAGS 64

struct te_cli {
	const char *verb;
	const char *config_path;   /* -c; NULL = default if present */
	const char *manifest_path; /* -m; NULL = default if present */
	const char *state_dir;     /* --state-dir / TINYEDGE_STATE_DIR */
	const char *log_level;
	bool syslog;               /* run --syslog */
	const char *upstream;
	const char *modules[TE_CLI_MAX_FLAGS];
	unsigned nmodules;
	const char *routes[TE_CLI_MAX_FLAGS];
	unsigned nroutes;
	bool json;
	bool help;
	bool follow;               /* logs -f */
	const char *tail;          /* logs --tail N */
	const char *since;         /* logs --since DURATION */
	const char *timeout;       /* call --timeout SECS */
	const char *limit;         /* queue peek --limit N */
	const char *desired;       /* twin --desired PATCH */
	int argc;                  /* positional arguments left */
	char **argv;
};

/* Option sets a verb accepts. */
enum {
	TE_OPT_FILES = 1u << 0,    /* -c, -m */
	TE_OPT_RUN = 1u << 1,      /* --module, --route, --upstream */
	TE_OPT_JSON = 1u << 2,     /* --json */
	TE_OPT_LOG = 1u << 3,      /* --log-level, --syslog */
	TE_OPT_LOGS = 1u << 4,     /* -f, --tail, --since */
	TE_OPT_CALL = 1u << 5,     /* --timeout */
	TE_OPT_QUEUE = 1u << 6,    /* --limit */
	TE_OPT_TWIN = 1u << 7,     /* --desired */
};

/* Parse argv (argv[0] is the verb). Prints "tinyedge VERB: ..." and returns
 * -TE_EUSAGE on a bad option. --state-dir and --help are always accepted. */
int te_cli_parse(struct te_cli *cli, int argc, char **argv, unsigned opts);

/* Report a usage error: "tinyedge VERB: msg" + a hint to --help. Returns
 * TE_EXIT_USAGE. */
int te_cli_usage_error(const struct te_cli *cli, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Config, then manifest, then flags, in that order of precedence (flags
 * win). Every problem goes to diag. Files that were not named and do not
 * exist are skipped (defaults, no modules). *config_used / *manifest_used
 * get the files actually read (or NULL). 0, -TE_EINVALID, or -errno. */
int te_cli_load(const struct te_cli *cli, struct te_config *cfg,
		struct te_manifest *m, struct te_diag *diag,
		const char **config_used, const char **manifest_used);

/* The state dir a client verb talks to: --state-dir, $TINYEDGE_STATE_DIR,
 * the default config's stateDir, else /var/lib/tinyedge. */
const char *te_cli_state_dir(const struct te_cli *cli);

/* Send one request line to the daemon of cli's state dir and return its
 * whole answer (malloc'd, NUL-terminated; *len bytes), or NULL when it
 * cannot be reached (reported on stderr). */
char *te_ctl_call(const struct te_cli *cli, const char *req, size_t *len);

/* An {"error":..., "code":N} answer: print it and return the exit code;
 * -1 for any other answer. */
int te_ctl_answer_error(const struct te_cli *cli, const char *buf, size_t len);

#endif
