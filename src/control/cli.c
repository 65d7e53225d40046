#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/err.h"
#include "hub/router.h"

int te_cli_usage_error(const struct te_cli *cli, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tinyedge %s: ", cli->verb);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'tinyedge %s --help'.\n", cli->verb);
	return TE_EXIT_USAGE;
}

enum { O_STATE = 256, O_LOG, O_MODULE, O_ROUTE, O_UPSTREAM, O_JSON, O_HELP,
       O_TAIL, O_SINCE, O_TIMEOUT, O_LIMIT, O_DESIRED, O_SYSLOG };

static const struct option cli_options[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "manifest", required_argument, NULL, 'm' },
	{ "state-dir", required_argument, NULL, O_STATE },
	{ "log-level", required_argument, NULL, O_LOG },
	{ "syslog", no_argument, NULL, O_SYSLOG },
	{ "module", required_argument, NULL, O_MODULE },
	{ "route", required_argument, NULL, O_ROUTE },
	{ "upstream", required_argument, NULL, O_UPSTREAM },
	{ "json", no_argument, NULL, O_JSON },
	{ "help", no_argument, NULL, O_HELP },
	{ "follow", no_argument, NULL, 'f' },
	{ "tail", required_argument, NULL, O_TAIL },
	{ "since", required_argument, NULL, O_SINCE },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "limit", required_argument, NULL, O_LIMIT },
	{ "desired", required_argument, NULL, O_DESIRED },
	{ NULL, 0, NULL, 0 },
};

static unsigned option_set(int c)
{
	switch (c) {
	case 'c': case 'm': return TE_OPT_FILES;
	case O_MODULE: case O_ROUTE: case O_UPSTREAM: return TE_OPT_RUN;
	case O_LOG: case O_SYSLOG: return TE_OPT_LOG;
	case O_JSON: return TE_OPT_JSON;
	case 'f': case O_TAIL: case O_SINCE: return TE_OPT_LOGS;
	case O_TIMEOUT: return TE_OPT_CALL;
	case O_LIMIT: return TE_OPT_QUEUE;
	case O_DESIRED: return TE_OPT_TWIN;
	default: return 0;
	}
}

static int cli_push(struct te_cli *cli, const char **v, unsigned *n,
		    const char *flag, const char *arg)
{
	if (*n == TE_CLI_MAX_FLAGS) {
		te_cli_usage_error(cli, "at most %d %s flags", TE_CLI_MAX_FLAGS, flag);
		return -TE_EUSAGE;
	}
	v[(*n)++] = arg;
	return 0;
}

static int cli_option(struct te_cli *cli, int c, const char *arg)
{
	switch (c) {
	case 'c': cli->config_path = arg; break;
	case 'm': cli->manifest_path = arg; break;
	case O_STATE: cli->state_dir = arg; break;
	case O_LOG: cli->log_level = arg; break;
	case O_SYSLOG: cli->syslog = true; break;
	case O_UPSTREAM: cli->upstream = arg; break;
	case O_JSON: cli->json = true; break;
	case O_HELP: cli->help = true; break;
	case 'f': cli->follow = true; break;
	case O_TAIL: cli->tail = arg; break;
	case O_SINCE: cli->since = arg; break;
	case O_TIMEOUT: cli->timeout = arg; break;
	case O_LIMIT: cli->limit = arg; break;
	case O_DESIRED: cli->desired = arg; break;
	case O_MODULE: return cli_push(cli, cli->modules, &cli->nmodules, "--module", arg);
	case O_ROUTE: return cli_push(cli, cli->routes, &cli->nroutes, "--route", arg);
	}
	return 0;
}

int te_cli_parse(struct te_cli *cli, int argc, char **argv, unsigned opts)
{
	const char *env = getenv("TINYEDGE_STATE_DIR");
	int c, idx;

	memset(cli, 0, sizeof(*cli));
	cli->verb = argv[0];
	if (env && *env)
		cli->state_dir = env;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:m:f", cli_options, &idx)) != -1) {
		if (c == '?') {
			te_cli_usage_error(cli, "unknown option '%s'", argv[optind - 1]);
			return -TE_EUSAGE;
		}
		if (option_set(c) && !(option_set(c) & opts)) {
			if (c < 128)
				te_cli_usage_error(cli, "unknown option '-%c'", c);
			else
				te_cli_usage_error(cli, "unknown option '--%s'", cli_options[idx].name);
			return -TE_EUSAGE;
		}
		if (c == ':') {
			/* A short option's name is in optopt; a long one's is the
			 * last word read. */
			if (optopt > 0 && optopt < 128)
				te_cli_usage_error(cli, "option '-%c' needs a value", optopt);
			else
				te_cli_usage_error(cli, "option '%s' needs a value", argv[optind - 1]);
			return -TE_EUSAGE;
		}
		if (cli_option(cli, c, optarg) < 0)
			return -TE_EUSAGE;
	}
	cli->argc = argc - optind;
	cli->argv = argv + optind;
	if (cli->state_dir && cli->state_dir[0] != '/') {
		te_cli_usage_error(cli, "--state-dir must be an absolute path, got '%s'", cli->state_dir);
		return -TE_EUSAGE;
	}
	return 0;
}

/* A file named on the command line must exist; a default one may not. */
static const char *pick_file(const char *given, const char *dflt)
{
	if (given)
		return given;
	return access(dflt, F_OK) == 0 ? dflt : NULL;
}

static int cli_apply_flags(const struct te_cli *cli, struct te_config *cfg,
			   struct te_manifest *m, struct te_diag *diag)
{
	char err[300];
	int bad = 0;

	if (cli->state_dir)
		snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s", cli->state_dir);
	if (cli->log_level && te_log_level_parse(cli->log_level, &cfg->log_level) < 0) {
		te_diag_report(diag, NULL, 0, 0, "--log-level: expected error, warn, info or debug, got '%s'", cli->log_level);
		bad++;
	}
	if (cli->syslog)
		cfg->logs.syslog = true;
	if (cli->upstream &&
	    te_config_parse_upstream_url(cfg, cli->upstream, err, sizeof(err)) < 0) {
		te_diag_report(diag, NULL, 0, 0, "%s", err);
		bad++;
	}
	for (unsigned i = 0; i < cli->nmodules; i++)
		bad += te_manifest_add_module_flag(m, cli->modules[i], diag) < 0;
	for (unsigned i = 0; i < cli->nroutes; i++)
		bad += te_manifest_add_route_flag(m, cli->routes[i], diag) < 0;
	return bad ? -TE_EINVALID : 0;
}

int te_cli_load(const struct te_cli *cli, struct te_config *cfg,
		struct te_manifest *m, struct te_diag *diag,
		const char **config_used, const char **manifest_used)
{
	const char *cpath = pick_file(cli->config_path, TE_DEFAULT_CONFIG);
	const char *mpath = cli->manifest_path;
	int rc = 0, r;

	te_config_defaults(cfg);
	te_manifest_init(m);
	if (!mpath && cli->nmodules == 0)
		mpath = pick_file(NULL, TE_DEFAULT_MANIFEST);
	if (cpath && (r = te_config_load(cfg, cpath, diag)) < 0)
		rc = r;
	if (mpath && (r = te_manifest_load(m, mpath, diag)) < 0)
		rc = rc ? rc : r;
	if ((r = cli_apply_flags(cli, cfg, m, diag)) < 0)
		rc = rc ? rc : r;
	if (rc == 0 && te_routes_check(m, diag))
		rc = -TE_EINVALID;
	*config_used = cpath;
	*manifest_used = mpath;
	return rc;
}

const char *te_cli_state_dir(const struct te_cli *cli)
{
	static struct te_config cfg;
	struct te_diag quiet = { 0 }; /* counts only */

	if (cli->state_dir)
		return cli->state_dir;
	te_config_defaults(&cfg);
	if (access(TE_DEFAULT_CONFIG, R_OK) == 0)
		te_config_load(&cfg, TE_DEFAULT_CONFIG, &quiet);
	return cfg.state_dir;
}
