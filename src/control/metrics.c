/* Metrics in the Prometheus text format (metrics.h): the writer, and the
 * daemon's figures rendered with it. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "agent/supervisor.h"
#include "core/err.h"
#include "hub/router.h"
#include "store/store.h"
#include "upstream/upstream.h"
#include "metrics.h"
#include "version.h"

/* --- the writer --- */

void te_prom_init(struct te_prom *p, char *buf, size_t cap)
{
	memset(p, 0, sizeof(*p));
	p->buf = buf;
	p->cap = cap;
	if (cap)
		buf[0] = '\0';
	else
		p->err = -TE_ENOSPACE;
}

void te_prom_init_alloc(struct te_prom *p, size_t initial)
{
	memset(p, 0, sizeof(*p));
	p->grow = true;
	p->cap = initial > 64 ? initial : 64;
	p->buf = malloc(p->cap);
	if (p->buf)
		p->buf[0] = '\0';
	else
		p->err = -ENOMEM;
}

void te_prom_free(struct te_prom *p)
{
	if (p->grow)
		free(p->buf);
	p->buf = NULL;
	p->len = p->cap = 0;
}

int te_prom_finish(const struct te_prom *p)
{
	return p->err;
}

/* Room for n more bytes and the NUL. false (with p->err) when there is none. */
static bool room(struct te_prom *p, size_t n)
{
	size_t cap = p->cap;
	char *b;

	if (p->err)
		return false;
	if (p->len + n < p->cap)
		return true;
	if (!p->grow) {
		p->err = -TE_ENOSPACE;
		return false;
	}
	while (p->len + n >= cap)
		cap *= 2;
	b = realloc(p->buf, cap);
	if (!b) {
		p->err = -ENOMEM;
		return false;
	}
	p->buf = b;
	p->cap = cap;
	return true;
}

static void put(struct te_prom *p, const char *s, size_t n)
{
	if (!room(p, n))
		return;
	memcpy(p->buf + p->len, s, n);
	p->len += n;
	p->buf[p->len] = '\0';
}

static void puts_(struct te_prom *p, const char *s)
{
	put(p, s, strlen(s));
}

/* s with \ and newline escaped (and " in label values). */
static void put_escaped(struct te_prom *p, const char *s, bool quote)
{
	const char *run = s;

	for (; *s; s++) {
		const char *esc = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" :
				  *s == '"' && quote ? "\\\"" : NULL;

		if (!esc)
			continue;
		put(p, run, (size_t)(s - run));
		put(p, esc, 2);
		run = s + 1;
	}
	put(p, run, (size_t)(s - run));
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* (label names: no ':'). */
static bool valid_name(const char *s, bool label)
{
	if (!*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || (*s == ':' && !label)))
			return false;
	return true;
}

void te_prom_family(struct te_prom *p, const char *name, enum te_prom_type type,
		    const char *help)
{
	if (!valid_name(name, false)) {
		p->err = p->err ? p->err : -EINVAL;
		return;
	}
	p->family = name;
	puts_(p, "# HELP ");
	puts_(p, name);
	put(p, " ", 1);
	put_escaped(p, help, false);
	puts_(p, "\n# TYPE ");
	puts_(p, name);
	puts_(p, type == TE_PROM_COUNTER ? " counter\n" : " gauge\n");
}

/* The sample's name and labels, up to the space before the value. */
static void sample_head(struct te_prom *p, const struct te_prom_label *l, unsigned n)
{
	if (!p->family) {
		p->err = p->err ? p->err : -EINVAL;
		return;
	}
	puts_(p, p->family);
	for (unsigned i = 0; i < n; i++) {
		if (!valid_name(l[i].name, true)) {
			p->err = p->err ? p->err : -EINVAL;
			return;
		}
		put(p, i ? "," : "{", 1);
		puts_(p, l[i].name);
		put(p, "=\"", 2);
		put_escaped(p, l[i].value, true);
		put(p, "\"", 1);
	}
	put(p, n ? "} " : " ", n ? 2 : 1);
}

void te_prom_u64(struct te_prom *p, const struct te_prom_label *l, unsigned n, uint64_t v)
{
	char num[24];

	sample_head(p, l, n);
	put(p, num, (size_t)snprintf(num, sizeof(num), "%llu\n", (unsigned long long)v));
}

void te_prom_fixed(struct te_prom *p, const struct te_prom_label *l, unsigned n, uint64_t v,
		   unsigned decimals)
{
	uint64_t scale = 1;
	char num[48];

	if (decimals > 19)
		decimals = 19;
	for (unsigned i = 0; i < decimals; i++)
		scale *= 10;
	sample_head(p, l, n);
	if (decimals)
		put(p, num, (size_t)snprintf(num, sizeof(num), "%llu.%0*llu\n",
					     (unsigned long long)(v / scale), (int)decimals,
					     (unsigned long long)(v % scale)));
	else
		put(p, num, (size_t)snprintf(num, sizeof(num), "%llu\n", (unsigned long long)v));
}

void te_prom_f64(struct te_prom *p, const struct te_prom_label *l, unsigned n, double v)
{
	char num[40];
	int len;

	sample_head(p, l, n);
	if (isnan(v)) {
		puts_(p, "NaN\n");
		return;
	}
	if (isinf(v)) {
		puts_(p, v > 0 ? "+Inf\n" : "-Inf\n");
		return;
	}
	/* The shortest of %.15g and %.17g that reads back as v. */
	len = snprintf(num, sizeof(num), "%.15g", v);
	if (strtod(num, NULL) != v)
		len = snprintf(num, sizeof(num), "%.17g", v);
	put(p, num, (size_t)len);
	put(p, "\n", 1);
}

/* --- the daemon's figures --- */

#define L1(a, b) ((const struct te_prom_label[]){ { a, b } }), 1
#define L2(a, b, c, d) ((const struct te_prom_label[]){ { a, b }, { c, d } }), 2

struct render {
	const struct te_metrics_src *src;
	struct te_supervisor *sv;
	struct te_router *rt;          /* NULL: no router */
	struct te_prom *p;
	uint64_t now;
	char id[TE_ID_MAX + TE_MODULE_NAME_MAX + 2];  /* scratch: "DEVICE/MODULE" */
};

static const char *azure_id(struct render *r, const char *module)
{
	snprintf(r->id, sizeof(r->id), "%s/%s", r->src->device_id, module);
	return r->id;
}

/* Resident pages of this process (/proc/self/statm). */
static uint64_t own_rss(void)
{
	unsigned long long size = 0, res = 0;
	long page = sysconf(_SC_PAGESIZE);
	FILE *f = fopen("/proc/self/statm", "re");

	if (!f)
		return 0;
	if (fscanf(f, "%llu %llu", &size, &res) != 2)
		res = 0;
	fclose(f);
	return res * (uint64_t)(page > 0 ? page : 4096);
}

static void render_daemon(struct render *r)
{
	struct te_prom *p = r->p;
	struct rusage ru;
	uint64_t cpu_us = 0;

	te_prom_family(p, "tinyedge_build_info", TE_PROM_GAUGE,
		       "Always 1; the labels say which tinyedge is running.");
	te_prom_u64(p, L2("version", TE_VERSION, "commit", TE_GIT_COMMIT), 1);
	te_prom_family(p, "tinyedge_uptime_seconds", TE_PROM_GAUGE,
		       "Seconds since the daemon started.");
	te_prom_fixed(p, NULL, 0, r->now - r->src->start_ms, 3);
	te_prom_family(p, "process_resident_memory_bytes", TE_PROM_GAUGE,
		       "Resident memory of the daemon process.");
	te_prom_u64(p, NULL, 0, own_rss());
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		cpu_us = (uint64_t)ru.ru_utime.tv_sec * 1000000 + (uint64_t)ru.ru_utime.tv_usec +
			 (uint64_t)ru.ru_stime.tv_sec * 1000000 + (uint64_t)ru.ru_stime.tv_usec;
	te_prom_family(p, "process_cpu_seconds_total", TE_PROM_COUNTER,
		       "CPU time (user and system) the daemon process used.");
	te_prom_fixed(p, NULL, 0, cpu_us, 6);
}

/* --- modules --- */

static const char *const mod_statuses[] = { "running", "stopped", "failed", "backoff",
					    "unhealthy" };

/* CPU microseconds of every instance so far; false when not measured. */
static bool mod_cpu(struct te_supervisor *sv, const struct te_mod *md, uint64_t *usec)
{
	uint64_t cur = 0;

	if (!sv->have_cgroups || !sv->cgroups.root[TE_CG_CPUACCT][0])
		return false;
	if (md->pid && te_cgroup_cpu_usec(&sv->cgroups, &md->cg, &cur) < 0)
		return false;
	*usec = md->cpu_usec_past + cur;
	return true;
}

static void render_mod_state(struct render *r)
{
	struct te_supervisor *sv = r->sv;
	struct te_prom *p = r->p;
	uint64_t v;

	te_prom_family(p, "tinyedge_module_status", TE_PROM_GAUGE,
		       "1 for the module's runtime status (running, stopped, failed, backoff, "
		       "unhealthy), 0 for the others.");
	for (unsigned i = 0; i < sv->nmods; i++)
		for (unsigned s = 0; s < sizeof(mod_statuses) / sizeof(mod_statuses[0]); s++)
			te_prom_u64(p, L2("module", sv->mods[i]->name, "status", mod_statuses[s]),
				    !strcmp(te_mod_status(sv->mods[i]), mod_statuses[s]));
	te_prom_family(p, "tinyedge_module_restarts_total", TE_PROM_COUNTER,
		       "Times the module was restarted (by its restart policy or a restart "
		       "request).");
	for (unsigned i = 0; i < sv->nmods; i++)
		te_prom_u64(p, L1("module", sv->mods[i]->name), sv->mods[i]->restart_count);
	te_prom_family(p, "tinyedge_module_seccomp_denied_total", TE_PROM_COUNTER,
		       "Syscalls the module's seccomp profile denied, all its instances "
		       "(a kill-action profile: its SIGSYS exits).");
	for (unsigned i = 0; i < sv->nmods; i++)
		te_prom_u64(p, L1("module", sv->mods[i]->name), sv->mods[i]->sc.denied);
	te_prom_family(p, "tinyedge_module_uptime_seconds", TE_PROM_GAUGE,
		       "Seconds since the module's current instance started; 0 when it has none.");
	for (unsigned i = 0; i < sv->nmods; i++) {
		const struct te_mod *md = sv->mods[i];

		v = md->pid && md->start_mono_ms ? r->now - md->start_mono_ms : 0;
		te_prom_fixed(p, L1("module", md->name), v, 3);
	}
	te_prom_family(p, "edgeAgent_used_memory_bytes", TE_PROM_GAUGE,
		       "Memory the module's processes use (its cgroup's); running modules only.");
	for (unsigned i = 0; i < sv->nmods; i++)
		if (sv->mods[i]->pid && sv->have_cgroups &&
		    te_cgroup_memory(&sv->cgroups, &sv->mods[i]->cg, &v) == 0)
			te_prom_u64(p, L1("module_name", sv->mods[i]->name), v);
	te_prom_family(p, "tinyedge_module_cpu_seconds_total", TE_PROM_COUNTER,
		       "CPU time the module's processes used, all its instances (its cgroup's).");
	for (unsigned i = 0; i < sv->nmods; i++)
		if (mod_cpu(sv, sv->mods[i], &v))
			te_prom_fixed(p, L1("module", sv->mods[i]->name), v, 6);
}

/* A per-port counter family; field reads the figure. */
static void port_family(struct render *r, const char *name, enum te_prom_type type,
			const char *help, const char *label, bool azure,
			uint64_t (*field)(const struct te_port *p))
{
	struct te_supervisor *sv = r->sv;

	te_prom_family(r->p, name, type, help);
	for (unsigned i = 0; i < sv->nmods; i++) {
		const struct te_mod *md = sv->mods[i];

		if (md->port)
			te_prom_u64(r->p, L1(label, azure ? azure_id(r, md->name) : md->name),
				    field(md->port));
	}
}

static uint64_t f_out(const struct te_port *p) { return p->msgs_out; }
static uint64_t f_dropped(const struct te_port *p) { return p->dropped; }
static uint64_t f_spilled(const struct te_port *p) { return p->spilled; }
static uint64_t f_spill_bytes(const struct te_port *p) { return p->spill.used; }
static uint64_t f_blocked(const struct te_port *p) { return p->blocked; }
static uint64_t f_reports(const struct te_port *p) { return p->twin_reports; }
static uint64_t f_methods(const struct te_port *p) { return p->methods; }

static void render_mod_messages(struct render *r)
{
	struct te_supervisor *sv = r->sv;
	uint64_t acked = 0;
	unsigned nups = r->src->nups ? *r->src->nups : 0;

	port_family(r, "edgehub_messages_received_total", TE_PROM_COUNTER,
		    "Messages the hub received from the module (id: DEVICE/MODULE).", "id", true,
		    f_out);
	te_prom_family(r->p, "edgehub_messages_sent_total", TE_PROM_COUNTER,
		       "Messages the hub delivered: into a module's input (to: DEVICE/MODULE), or "
		       "to the cloud and acknowledged (to: upstream).");
	for (unsigned i = 0; i < sv->nmods; i++)
		if (sv->mods[i]->port)
			te_prom_u64(r->p, L1("to", azure_id(r, sv->mods[i]->name)),
				    sv->mods[i]->port->msgs_in);
	for (unsigned i = 0; i < nups; i++)
		acked += r->src->ups[i].acked;
	if (nups)
		te_prom_u64(r->p, L1("to", "upstream"), acked);
	port_family(r, "tinyedge_module_messages_dropped_total", TE_PROM_COUNTER,
		    "Messages for the module that were dropped (overflow policies, a full queue).",
		    "module", false, f_dropped);
	port_family(r, "tinyedge_module_messages_spilled_total", TE_PROM_COUNTER,
		    "Messages for the module that had to wait in its queue (its input was full "
		    "or it was not running).", "module", false, f_spilled);
	port_family(r, "tinyedge_module_spill_bytes", TE_PROM_GAUGE,
		    "Bytes waiting in the module's in-memory queue.", "module", false,
		    f_spill_bytes);
	port_family(r, "tinyedge_module_blocked_total", TE_PROM_COUNTER,
		    "Times the module's sending was paused by a block route's backlog.", "module",
		    false, f_blocked);
	port_family(r, "edgehub_reported_properties_total", TE_PROM_COUNTER,
		    "Reported property patches from the module (id: DEVICE/MODULE).", "id", true,
		    f_reports);
	port_family(r, "edgehub_direct_methods_total", TE_PROM_COUNTER,
		    "Direct method calls sent to the module (to: DEVICE/MODULE).", "to", true,
		    f_methods);
}

/* --- routes and the $upstream queue --- */

static void render_routes(struct render *r)
{
	struct te_router *rt = r->rt;
	struct te_prom *p = r->p;
	static const char *const reasons[] = { "no_module", "full", "oldest" };

	te_prom_family(p, "tinyedge_route_messages_matched_total", TE_PROM_COUNTER,
		       "Messages the route's source and condition selected.");
	for (unsigned i = 0; i < rt->nroutes; i++)
		te_prom_u64(p, L1("route", rt->routes[i].name), rt->routes[i].matched);
	te_prom_family(p, "tinyedge_route_messages_delivered_total", TE_PROM_COUNTER,
		       "Messages the route handed to its sink (a module's input or queue, or "
		       "$upstream).");
	for (unsigned i = 0; i < rt->nroutes; i++)
		te_prom_u64(p, L1("route", rt->routes[i].name), rt->routes[i].delivered);
	te_prom_family(p, "tinyedge_route_messages_dropped_total", TE_PROM_COUNTER,
		       "Messages the route dropped: no such module, full (drop-newest or a queue "
		       "at its bound), oldest (evicted by drop-oldest).");
	for (unsigned i = 0; i < rt->nroutes; i++) {
		const struct te_rroute *rr = &rt->routes[i];
		const uint64_t v[] = { rr->dropped_absent, rr->dropped_full, rr->dropped_oldest };

		for (unsigned k = 0; k < 3; k++)
			te_prom_u64(p, L2("route", rr->name, "reason", reasons[k]), v[k]);
	}
	te_prom_family(p, "tinyedge_upstream_queue_accepted_total", TE_PROM_COUNTER,
		       "Messages for $upstream taken into the store.");
	te_prom_u64(p, NULL, 0, rt->upstream_msgs);
	te_prom_family(p, "tinyedge_upstream_queue_dropped_total", TE_PROM_COUNTER,
		       "Messages for $upstream lost before the cloud: not_stored (no store, or it "
		       "could not take them), commit_failed (the store's write failed).");
	te_prom_u64(p, L1("reason", "not_stored"), rt->upstream_dropped);
	te_prom_u64(p, L1("reason", "commit_failed"), rt->upstream_failed);
}

/* --- the store --- */

struct qrows {
	struct te_store_qstat *q;
	unsigned n, cap;
};

static int collect_queue(void *ctx, const struct te_store_qstat *q)
{
	struct qrows *rows = ctx;
	struct te_store_qstat *b;

	if (rows->n == rows->cap) {
		b = realloc(rows->q, (rows->cap ? rows->cap * 2 : 16) * sizeof(*b));
		if (!b)
			return -ENOMEM;
		rows->q = b;
		rows->cap = rows->cap ? rows->cap * 2 : 16;
	}
	rows->q[rows->n++] = *q;
	return 0;
}

/* The store's figures that are one field of te_store_stats each. */
static const struct store_family {
	const char *name, *help;
	enum te_prom_type type;
	size_t off;
} store_families[] = {
#define SF(n, t, f, h) { "tinyedge_store_" n, h, TE_PROM_##t, offsetof(struct te_store_stats, f) }
	SF("messages", GAUGE, msgs, "Messages in the store."),
	SF("bytes", GAUGE, bytes, "Record bytes in the store."),
	SF("file_bytes", GAUGE, file_bytes, "Size of the store's data file on disk."),
	SF("used_bytes", GAUGE, used_bytes, "Store pages in use (at the last commit)."),
	SF("max_bytes", GAUGE, max_bytes,
	   "The store's byte quota (storeAndForward.maxBytes or the default)."),
	SF("bytes_written_total", COUNTER, bytes_written,
	   "Record bytes committed to the store (flash wear)."),
	SF("commits_total", COUNTER, commits, "Write transactions (group commits) of the store."),
	SF("commit_errors_total", COUNTER, commit_errors, "Store commits that failed."),
#undef SF
};

static void render_store_totals(struct render *r, struct te_store *s)
{
	struct te_prom *p = r->p;
	struct te_store_stats st;
	uint64_t secs = (r->now - r->rt->store_since_ms) / 1000;

	te_prom_family(p, "tinyedge_store_up", TE_PROM_GAUGE,
		       "1 when the offline store is open, 0 when the daemon runs without it.");
	te_prom_u64(p, NULL, 0, s != NULL);
	if (!s || te_store_stats(s, &st) < 0)
		return;
	for (size_t i = 0; i < sizeof(store_families) / sizeof(store_families[0]); i++) {
		const struct store_family *f = &store_families[i];
		uint64_t v;

		memcpy(&v, (const char *)&st + f->off, sizeof(v));
		te_prom_family(p, f->name, f->type, f->help);
		te_prom_u64(p, NULL, 0, v);
	}
	te_prom_family(p, "tinyedge_store_bytes_written_per_hour", TE_PROM_GAUGE,
		       "Record bytes committed per hour since the store was opened, averaged "
		       "over at least an hour.");
	te_prom_u64(p, NULL, 0, st.bytes_written * 3600 / (secs > 3600 ? secs : 3600));
}

static void render_queues(struct render *r, const struct qrows *rows)
{
	static const char *const reasons[] = { "expired", "evicted", "purged", "failed" };
	struct te_prom *p = r->p;
	char prio[TE_STORE_PRIOS][4];

	for (unsigned i = 0; i < TE_STORE_PRIOS; i++)
		snprintf(prio[i], sizeof(prio[i]), "%u", i);
#define QL(q) L2("endpoint", (q)->endpoint, "priority", prio[(q)->prio % TE_STORE_PRIOS])
	te_prom_family(p, "edgehub_queue_length", TE_PROM_GAUGE,
		       "Messages waiting in a store queue (endpoint, priority).");
	for (unsigned i = 0; i < rows->n; i++)
		te_prom_u64(p, QL(&rows->q[i]), rows->q[i].msgs);
	te_prom_family(p, "tinyedge_queue_bytes", TE_PROM_GAUGE,
		       "Record bytes waiting in a store queue.");
	for (unsigned i = 0; i < rows->n; i++)
		te_prom_u64(p, QL(&rows->q[i]), rows->q[i].bytes);
	te_prom_family(p, "tinyedge_queue_oldest_age_seconds", TE_PROM_GAUGE,
		       "Age of the oldest message in a store queue; 0 when it is empty.");
	for (unsigned i = 0; i < rows->n; i++)
		te_prom_fixed(p, QL(&rows->q[i]), rows->q[i].oldest_age_ms, 3);
	te_prom_family(p, "tinyedge_queue_messages_delivered_total", TE_PROM_COUNTER,
		       "Messages of a store queue delivered and acknowledged.");
	for (unsigned i = 0; i < rows->n; i++)
		te_prom_u64(p, QL(&rows->q[i]), rows->q[i].delivered);
#undef QL
	te_prom_family(p, "tinyedge_queue_messages_dropped_total", TE_PROM_COUNTER,
		       "Messages of a store queue removed undelivered: expired (TTL), evicted "
		       "(quota), purged, failed (their commit failed).");
	for (unsigned i = 0; i < rows->n; i++) {
		const struct te_store_qstat *q = &rows->q[i];
		const uint64_t v[] = { q->expired, q->evicted, q->purged, q->failed };

		for (unsigned k = 0; k < 4; k++) {
			const struct te_prom_label l[] = {
				{ "endpoint", q->endpoint },
				{ "priority", prio[q->prio % TE_STORE_PRIOS] },
				{ "reason", reasons[k] },
			};

			te_prom_u64(p, l, 3, v[k]);
		}
	}
}

static void render_store(struct render *r)
{
	struct te_store *s = r->rt->store;
	struct qrows rows = { 0 };

	render_store_totals(r, s);
	if (!s)
		return;
	if (te_store_foreach_queue(s, collect_queue, &rows) == -ENOMEM)
		r->p->err = r->p->err ? r->p->err : -ENOMEM;
	render_queues(r, &rows);
	free(rows.q);
}

/* --- uplink sessions --- */

static const char *session_id(struct render *r, const struct te_upstream *u)
{
	return u->id ? azure_id(r, u->id->module) : r->src->device_id;
}

static uint64_t online_ms(const struct te_upstream *u, uint64_t now)
{
	return u->online_ms + (u->state == TE_UPS_ONLINE ? now - u->online_since_ms : 0);
}

static uint64_t up_connected(const struct te_upstream *u, uint64_t now)
{
	return u->state == TE_UPS_ONLINE;
}

static uint64_t up_online(const struct te_upstream *u, uint64_t now)
{
	return online_ms(u, now);
}

static uint64_t up_offline(const struct te_upstream *u, uint64_t now)
{
	uint64_t all = now - u->since_ms, on = online_ms(u, now);

	return all > on ? all - on : 0;
}

static uint64_t up_connects(const struct te_upstream *u, uint64_t now) { return u->connects; }
static uint64_t up_failures(const struct te_upstream *u, uint64_t now) { return u->failures; }
static uint64_t up_published(const struct te_upstream *u, uint64_t now) { return u->published; }
static uint64_t up_acked(const struct te_upstream *u, uint64_t now) { return u->acked; }
static uint64_t up_dead(const struct te_upstream *u, uint64_t now) { return u->dead_lettered; }
static uint64_t up_inflight(const struct te_upstream *u, uint64_t now) { return u->ninflight; }

static const struct {
	const char *name, *help;
	enum te_prom_type type;
	unsigned decimals;  /* 3: the figure is in ms, written in seconds */
	uint64_t (*field)(const struct te_upstream *u, uint64_t now);
} up_families[] = {
	{ "tinyedge_upstream_connected", "1 while the session is online (MQTT connected).",
	  TE_PROM_GAUGE, 0, up_connected },
	{ "tinyedge_upstream_connected_seconds_total", "Seconds the session was online.",
	  TE_PROM_COUNTER, 3, up_online },
	{ "tinyedge_upstream_offline_seconds_total",
	  "Seconds the session was not online (connecting, backing off).", TE_PROM_COUNTER, 3,
	  up_offline },
	{ "tinyedge_upstream_connects_total", "Connections that reached online (CONNACK).",
	  TE_PROM_COUNTER, 0, up_connects },
	{ "tinyedge_upstream_failures_total",
	  "Connection attempts that failed and connections that broke.", TE_PROM_COUNTER, 0,
	  up_failures },
	{ "tinyedge_upstream_messages_published_total", "Messages published (QoS 1).",
	  TE_PROM_COUNTER, 0, up_published },
	{ "tinyedge_upstream_messages_acknowledged_total",
	  "Published messages the cloud acknowledged (then deleted from the store).",
	  TE_PROM_COUNTER, 0, up_acked },
	{ "tinyedge_upstream_messages_dead_lettered_total",
	  "Messages removed unsent: over the cloud's limits, or unreadable.",
	  TE_PROM_COUNTER, 0, up_dead },
	{ "tinyedge_upstream_inflight", "Messages published and not yet acknowledged.",
	  TE_PROM_GAUGE, 0, up_inflight },
};

static void render_sessions(struct render *r)
{
	unsigned nups = r->src->nups ? *r->src->nups : 0;

	if (!nups)
		return;
	for (unsigned f = 0; f < sizeof(up_families) / sizeof(up_families[0]); f++) {
		te_prom_family(r->p, up_families[f].name, up_families[f].type, up_families[f].help);
		for (unsigned i = 0; i < nups; i++) {
			const struct te_upstream *u = &r->src->ups[i];

			te_prom_fixed(r->p, L1("id", session_id(r, u)), up_families[f].field(u, r->now),
				      up_families[f].decimals);
		}
	}
}

int te_metrics_render(const struct te_metrics_src *src, struct te_prom *p)
{
	struct render r = { .src = src, .sv = src->sv, .rt = src->sv->router, .p = p,
			    .now = te_now_ms() };

	render_daemon(&r);
	render_mod_state(&r);
	render_mod_messages(&r);
	if (r.rt) {
		render_routes(&r);
		render_store(&r);
	}
	render_sessions(&r);
	return te_prom_finish(p);
}
