/* settings.createOptions: the tinyedge keys (docs/manifest.md). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/jvalue.h"
#include "manifest_int.h"
#include "seccomp.h"

/* Linux capability numbers (linux/capability.h), index = number. */
static const char *const cap_names[] = {
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL",
	"SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE",
	"NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
	"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
	"SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
	"SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
	"BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
};
#define NCAPS (sizeof(cap_names) / sizeof(cap_names[0]))

int te_capability_from_name(const char *name)
{
	if (strncasecmp(name, "CAP_", 4) == 0)
		name += 4;
	for (unsigned i = 0; i < NCAPS; i++)
		if (strcasecmp(name, cap_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *te_capability_name(unsigned cap)
{
	return cap < NCAPS ? cap_names[cap] : "?";
}

static const char *const ns_names[] = { "pid", "mount", "uts", "ipc", "net",
					"user" };
static const char *const io_names[] = { "ring", "stdio" };

/* --- small readers --- */

static void co_int(struct mf_ctx *x, int t, const char *what, const char *key,
		   int64_t min, int64_t max, int64_t *out)
{
	char name[200];

	if (t < 0)
		return;
	snprintf(name, sizeof(name), "%s.%s", what, key);
	if (te_jv_int(x->doc, (unsigned)t, name, min, max, out, x->diag) < 0)
		x->bad++;
}

static const char **co_strings(struct mf_ctx *x, unsigned arr, const char *what,
			       unsigned *n)
{
	const char **v = mf_alloc(x, (x->doc->tok[arr].size + 1) * sizeof(*v));
	char name[200];

	*n = 0;
	if (!v)
		return NULL;
	TE_JSON_FOREACH_ELEM(x->doc, arr, e) {
		snprintf(name, sizeof(name), "%s[%u]", what, *n);
		if (x->doc->tok[e].type != TE_JSON_STRING) {
			mf_error(x, e, "%s must be a string", name);
			continue;
		}
		v[(*n)++] = mf_str(x, e);
	}
	return v;
}

/* user/group: a name or a numeric id, as a string or a number. */
static const char *co_ident(struct mf_ctx *x, unsigned t, const char *what)
{
	const char *s;
	int64_t id;

	if (x->doc->tok[t].type == TE_JSON_NUMBER) {
		if (te_jv_int(x->doc, t, what, 0, 4294967294LL, &id, x->diag) < 0) {
			x->bad++;
			return NULL;
		}
		s = mf_alloc(x, 24);
		if (s)
			snprintf((char *)s, 24, "%" PRId64, id);
		return s;
	}
	s = mf_str_checked(x, t, what, 32);
	if (s && strpbrk(s, ":/ \t"))
		mf_error(x, t, "%s must be a user or group name or a numeric id", what);
	return s;
}

/* --- namespaces, capabilities --- */

static void co_namespaces(struct mf_ctx *x, struct te_module_spec *ms,
			  unsigned arr, const char *what)
{
	ms->namespaces = 0;
	TE_JSON_FOREACH_ELEM(x->doc, arr, e) {
		unsigned i;

		if (te_jv_enum(x->doc, e, "namespaces[]", ns_names, 6, &i, x->diag) < 0) {
			x->bad++;
		} else if (ms->namespaces & (1u << i)) {
			mf_error(x, e, "%s.namespaces lists \"%s\" twice", what, ns_names[i]);
		} else {
			ms->namespaces |= 1u << i;
		}
	}
}

static void co_capabilities(struct mf_ctx *x, struct te_module_spec *ms,
			    unsigned arr, const char *what)
{
	char name[64];
	int cap;

	TE_JSON_FOREACH_ELEM(x->doc, arr, e) {
		if (x->doc->tok[e].type != TE_JSON_STRING ||
		    te_json_str(x->doc, e, name, sizeof(name), NULL) < 0 ||
		    (cap = te_capability_from_name(name)) < 0) {
			mf_error(x, e, "%s.capabilities: not a Linux capability name (e.g. \"CAP_NET_BIND_SERVICE\")", what);
			continue;
		}
		ms->capabilities |= 1ull << cap;
	}
}

/* --- mounts and devices --- */

/* "SRC:DST[:ro|rw]" */
static void co_mount_string(struct mf_ctx *x, struct te_mount *mt, unsigned t,
			    const char *what)
{
	char *s = (char *)mf_str(x, t), *dst, *mode;

	if (!s)
		return;
	dst = strchr(s, ':');
	mode = dst ? strchr(dst + 1, ':') : NULL;
	if (dst)
		*dst++ = '\0';
	if (mode)
		*mode++ = '\0';
	if (!dst || s[0] != '/' || dst[0] != '/' ||
	    (mode && strcmp(mode, "ro") && strcmp(mode, "rw"))) {
		mf_error(x, t, "%s must be \"/host/path:/module/path[:ro|rw]\"", what);
		return;
	}
	mt->source = s;
	mt->target = dst;
	mt->read_only = mode && !strcmp(mode, "ro");
}

static const struct te_json_policy mount_policy[] = {
	{ "source", TE_JSON_STRING, TE_JSON_REQUIRED },
	{ "target", TE_JSON_STRING, TE_JSON_REQUIRED },
	{ "readOnly", TE_JSON_BOOL, 0 },
};

static void co_mounts(struct mf_ctx *x, struct te_module_spec *ms, unsigned arr,
		      const char *what)
{
	char name[200];
	int tb[3];

	ms->mounts = mf_alloc(x, (x->doc->tok[arr].size + 1) * sizeof(*ms->mounts));
	if (!ms->mounts)
		return;
	TE_JSON_FOREACH_ELEM(x->doc, arr, e) {
		struct te_mount *mt = &ms->mounts[ms->nmounts];

		snprintf(name, sizeof(name), "%s.mounts[%u]", what, _n);
		if (x->doc->tok[e].type == TE_JSON_STRING) {
			co_mount_string(x, mt, e, name);
		} else if (x->doc->tok[e].type == TE_JSON_OBJECT) {
			x->bad += te_json_read_object(x->doc, e, name, mount_policy,
						      3, tb, x->diag);
			if (tb[0] >= 0)
				mt->source = mf_path(x, (unsigned)tb[0], "mount source");
			if (tb[1] >= 0)
				mt->target = mf_path(x, (unsigned)tb[1], "mount target");
			if (tb[2] >= 0)
				te_json_bool(x->doc, (unsigned)tb[2], &mt->read_only);
		} else {
			mf_error(x, e, "%s must be a string or an object", name);
		}
		if (mt->source && mt->target)
			ms->nmounts++;
	}
}

/* "/dev/x[:/dev/y][:rwm]" */
static void co_device_string(struct mf_ctx *x, struct te_device *d, unsigned t,
			     const char *what)
{
	char *s = (char *)mf_str(x, t), *p, *q;

	if (!s)
		return;
	d->path = s;
	d->permissions = "rwm";
	if ((p = strchr(s, ':'))) {
		*p++ = '\0';
		if ((q = strchr(p, ':'))) {
			*q++ = '\0';
			d->permissions = q;
		} else if (p[0] != '/') {
			d->permissions = p;
			p = NULL;
		}
		d->target = p;
	}
	if (s[0] != '/' || (d->target && d->target[0] != '/') ||
	    !d->permissions[0] || strspn(d->permissions, "rwm") != strlen(d->permissions)) {
		mf_error(x, t, "%s must be \"/dev/host[:/dev/module][:rwm]\"", what);
		d->path = NULL;
	}
	if (!d->target)
		d->target = d->path;
}

static void co_devices(struct mf_ctx *x, struct te_module_spec *ms, unsigned arr,
		       const char *what)
{
	char name[200];

	ms->devices = mf_alloc(x, (x->doc->tok[arr].size + 1) * sizeof(*ms->devices));
	if (!ms->devices)
		return;
	TE_JSON_FOREACH_ELEM(x->doc, arr, e) {
		struct te_device *d = &ms->devices[ms->ndevices];

		snprintf(name, sizeof(name), "%s.devices[%u]", what, _n);
		if (x->doc->tok[e].type != TE_JSON_STRING) {
			mf_error(x, e, "%s must be a string", name);
			continue;
		}
		co_device_string(x, d, e, name);
		if (d->path)
			ms->ndevices++;
	}
}

/* --- limits --- */

static const struct te_json_policy limits_policy[] = {
	{ "memoryBytes", TE_JSON_NUMBER, 0 },
	{ "pids", TE_JSON_NUMBER, 0 },
	{ "cpuPercent", TE_JSON_NUMBER, 0 },
	{ "nofile", TE_JSON_NUMBER, 0 },
};

static void co_limits(struct mf_ctx *x, struct te_module_spec *ms, unsigned obj,
		      const char *what)
{
	struct te_limits *l = &ms->limits;
	char name[200];
	int tb[4];

	snprintf(name, sizeof(name), "%s.limits", what);
	x->bad += te_json_read_object(x->doc, obj, name, limits_policy, 4, tb, x->diag);
	co_int(x, tb[0], name, "memoryBytes", 1 << 20, INT64_MAX, &l->memory_bytes);
	co_int(x, tb[1], name, "pids", 1, 4194304, &l->pids);
	co_int(x, tb[2], name, "cpuPercent", 1, 102400, &l->cpu_percent);
	co_int(x, tb[3], name, "nofile", 8, 1048576, &l->nofile);
}

/* --- seccomp --- */

#define CO_SECCOMP_EXTRA_MAX 128

/* A list of syscall names allowed on top of the default profile. */
static void co_seccomp_list(struct mf_ctx *x, struct te_module_spec *ms,
			    unsigned arr, const char *what)
{
	const char *s;
	char name[220];

	if (x->doc->tok[arr].size > CO_SECCOMP_EXTRA_MAX) {
		mf_error(x, arr, "%s lists more than %d syscalls", what,
			 CO_SECCOMP_EXTRA_MAX);
		return;
	}
	ms->seccomp_extra = mf_alloc(x, (x->doc->tok[arr].size + 1) * sizeof(char *));
	if (!ms->seccomp_extra)
		return;
	TE_JSON_FOREACH_ELEM(x->doc, arr, e) {
		snprintf(name, sizeof(name), "%s[%u]", what, _n);
		if (!(s = mf_str_checked(x, e, name, 64)))
			continue;
		if (te_syscall_nr(s) < 0)
			mf_error(x, e, "%s: \"%s\" is not a syscall of this architecture", name, s);
		else
			ms->seccomp_extra[ms->nseccomp_extra++] = s;
	}
}

/* seccomp: "default" | "unconfined" | ["name", ...]; seccompAction:
 * "errno" (default) | "kill". */
static void co_seccomp(struct mf_ctx *x, struct te_module_spec *ms, int t,
		       int ta, const char *what)
{
	static const char *const modes[] = { "default", "unconfined" };
	static const char *const actions[] = { "errno", "kill" };
	char name[200];
	unsigned e;

	snprintf(name, sizeof(name), "%s.seccomp", what);
	if (t >= 0 && x->doc->tok[t].type == TE_JSON_ARRAY)
		co_seccomp_list(x, ms, (unsigned)t, name);
	else if (t >= 0 && te_jv_enum(x->doc, (unsigned)t, name, modes, 2, &e, x->diag) == 0)
		ms->seccomp_unconfined = e == 1;
	else if (t >= 0)
		x->bad++;
	if (ta < 0)
		return;
	snprintf(name, sizeof(name), "%s.seccompAction", what);
	if (te_jv_enum(x->doc, (unsigned)ta, name, actions, 2, &e, x->diag) < 0)
		x->bad++;
	else
		ms->seccomp_kill = e == 1;
	if (ms->seccomp_unconfined)
		mf_error(x, (unsigned)ta, "%s applies to a seccomp profile, not to \"unconfined\"", name);
}

/* --- the object --- */

static const struct te_json_policy co_policy[] = {
	{ "args", TE_JSON_ARRAY, 0 },
	{ "workdir", TE_JSON_STRING, 0 },
	{ "user", TE_JSON_STRING | TE_JSON_NUMBER, 0 },
	{ "group", TE_JSON_STRING | TE_JSON_NUMBER, 0 },
	{ "namespaces", TE_JSON_ARRAY, 0 },
	{ "rootfs", TE_JSON_STRING, 0 },
	{ "mounts", TE_JSON_ARRAY, 0 },
	{ "devices", TE_JSON_ARRAY, 0 },
	{ "capabilities", TE_JSON_ARRAY, 0 },
	{ "limits", TE_JSON_OBJECT, 0 },
	{ "stopTimeoutSecs", TE_JSON_NUMBER, 0 },
	{ "watchdogSecs", TE_JSON_NUMBER, 0 },
	{ "io", TE_JSON_STRING, 0 },
	{ "ringBytes", TE_JSON_NUMBER, 0 },
	{ "writable", TE_JSON_BOOL | TE_JSON_STRING, 0 },
	{ "writableBytes", TE_JSON_NUMBER, 0 },
	{ "seccomp", TE_JSON_STRING | TE_JSON_ARRAY, 0 },
	{ "seccompAction", TE_JSON_STRING, 0 },
};
enum { CO_ARGS, CO_WORKDIR, CO_USER, CO_GROUP, CO_NS, CO_ROOTFS, CO_MOUNTS,
       CO_DEVICES, CO_CAPS, CO_LIMITS, CO_STOP, CO_WATCHDOG, CO_IO, CO_RING,
       CO_WRITABLE, CO_WRITABLE_BYTES, CO_SECCOMP, CO_SECCOMP_ACTION, CO_N };

/* writable: false | true (= "tmpfs") | "tmpfs" | "volume" */
static void co_writable(struct mf_ctx *x, struct te_module_spec *ms,
			const int *tb, const char *what)
{
	static const char *const names[] = { "tmpfs", "volume" };
	char name[200];
	bool on = false;
	int64_t v = TE_WRITABLE_BYTES_DEFAULT;
	unsigned e;

	snprintf(name, sizeof(name), "%s.writable", what);
	if (tb[CO_WRITABLE] >= 0 && x->doc->tok[tb[CO_WRITABLE]].type == TE_JSON_BOOL) {
		te_json_bool(x->doc, (unsigned)tb[CO_WRITABLE], &on);
		ms->writable = on ? TE_WRITABLE_TMPFS : TE_WRITABLE_NONE;
	} else if (tb[CO_WRITABLE] >= 0 &&
		   te_jv_enum(x->doc, (unsigned)tb[CO_WRITABLE], name, names, 2, &e, x->diag) == 0) {
		ms->writable = e ? TE_WRITABLE_VOLUME : TE_WRITABLE_TMPFS;
	} else if (tb[CO_WRITABLE] >= 0) {
		x->bad++;
	}
	co_int(x, tb[CO_WRITABLE_BYTES], what, "writableBytes", 64 << 10,
	       INT64_C(1) << 40, &v);
	ms->writable_bytes = (uint64_t)v;
	if (tb[CO_WRITABLE_BYTES] >= 0 && ms->writable != TE_WRITABLE_TMPFS)
		mf_error(x, (unsigned)tb[CO_WRITABLE_BYTES], "%s.writableBytes applies to writable \"tmpfs\" (or true) only", what);
}

static void co_scalars(struct mf_ctx *x, struct te_module_spec *ms,
		       const int *tb, const char *what)
{
	char name[200];
	int64_t v;
	unsigned io;

	if (tb[CO_WORKDIR] >= 0)
		ms->workdir = mf_path(x, (unsigned)tb[CO_WORKDIR], "workdir");
	if (tb[CO_ROOTFS] >= 0)
		ms->rootfs = mf_path(x, (unsigned)tb[CO_ROOTFS], "rootfs");
	snprintf(name, sizeof(name), "%s.user", what);
	if (tb[CO_USER] >= 0)
		ms->user = co_ident(x, (unsigned)tb[CO_USER], name);
	snprintf(name, sizeof(name), "%s.group", what);
	if (tb[CO_GROUP] >= 0)
		ms->group = co_ident(x, (unsigned)tb[CO_GROUP], name);
	v = ms->stop_timeout_secs;
	co_int(x, tb[CO_STOP], what, "stopTimeoutSecs", 0, 3600, &v);
	ms->stop_timeout_secs = (unsigned)v;
	v = ms->watchdog_secs;
	co_int(x, tb[CO_WATCHDOG], what, "watchdogSecs", 0, 86400, &v);
	ms->watchdog_secs = (unsigned)v;
	snprintf(name, sizeof(name), "%s.io", what);
	if (tb[CO_IO] >= 0 &&
	    te_jv_enum(x->doc, (unsigned)tb[CO_IO], name, io_names, 2, &io, x->diag) == 0)
		ms->io = io;
	else if (tb[CO_IO] >= 0)
		x->bad++;
	v = ms->ring_bytes;
	co_int(x, tb[CO_RING], what, "ringBytes", 4096, 16 << 20, &v);
	if (v & (v - 1))
		mf_error(x, (unsigned)tb[CO_RING], "%s.ringBytes must be a power of two", what);
	ms->ring_bytes = (uint32_t)v;
}

void mf_create_options(struct mf_ctx *x, struct te_module_spec *ms,
		       unsigned obj, const char *what)
{
	char name[200];
	int tb[CO_N];

	x->bad += te_json_read_object(x->doc, obj, what, co_policy, CO_N, tb, x->diag);
	if (tb[CO_ARGS] >= 0) {
		snprintf(name, sizeof(name), "%s.args", what);
		ms->args = co_strings(x, (unsigned)tb[CO_ARGS], name, &ms->nargs);
	}
	if (tb[CO_NS] >= 0)
		co_namespaces(x, ms, (unsigned)tb[CO_NS], what);
	if (tb[CO_MOUNTS] >= 0)
		co_mounts(x, ms, (unsigned)tb[CO_MOUNTS], what);
	if (tb[CO_DEVICES] >= 0)
		co_devices(x, ms, (unsigned)tb[CO_DEVICES], what);
	if (tb[CO_CAPS] >= 0)
		co_capabilities(x, ms, (unsigned)tb[CO_CAPS], what);
	if (tb[CO_LIMITS] >= 0)
		co_limits(x, ms, (unsigned)tb[CO_LIMITS], what);
	co_scalars(x, ms, tb, what);
	co_writable(x, ms, tb, what);
	co_seccomp(x, ms, tb[CO_SECCOMP], tb[CO_SECCOMP_ACTION], what);
	if ((ms->rootfs || ms->nmounts) && !(ms->namespaces & TE_NS_MOUNT))
		mf_error(x, obj, "%s: rootfs and mounts need the \"mount\" namespace", what);
}

void mf_create_options_string(struct mf_ctx *x, struct te_module_spec *ms,
			      const unsigned *toks, unsigned n, const char *what)
{
	const struct te_json_doc *outer = x->doc;
	struct te_json_doc inner;
	size_t len = 0, cap = 1;
	char *text, *name;
	unsigned line, col;

	for (unsigned i = 0; i < n; i++)
		cap += outer->tok[toks[i]].end - outer->tok[toks[i]].start;
	text = mf_alloc(x, cap);
	name = mf_alloc(x, strlen(outer->name) + strlen(what) + 40);
	if (!text || !name)
		return;
	for (unsigned i = 0; i < n; i++) {
		size_t got = 0;

		if (te_json_str(outer, toks[i], text + len, cap - len, &got) < 0) {
			mf_error(x, toks[i], "%s must not contain \\u0000", what);
			return;
		}
		len += got;
	}
	te_json_pos(outer, outer->tok[toks[0]].start, &line, &col);
	sprintf(name, "%s:%u:%u: %s", outer->name, line, col, what);
	if (te_json_parse(&inner, name, text, len, NULL, x->diag) < 0) {
		x->bad++;
		return;
	}
	if (inner.tok[0].type != TE_JSON_OBJECT) {
		te_json_error(&inner, x->diag, 0, "createOptions must hold a JSON object");
		x->bad++;
	} else {
		x->doc = &inner;
		mf_create_options(x, ms, 0, "createOptions");
		x->doc = outer;
	}
	te_json_free(&inner);
}
