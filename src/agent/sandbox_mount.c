/* The mount steps of a module's plan (sandbox_int.h): the parent lists
 * them, the child runs them in its new mount namespace.
 *
 * With a rootfs everything is mounted under it, then pivot_root makes it
 * "/". Without one (the host view) the module sees the host's tree with
 * its own /proc, /tmp and /dev on top. Either way /dev is a tmpfs with
 * host nodes bound onto empty files: device nodes made by mknod in a
 * tmpfs would not work inside a user namespace, binds do.
 *
 * A directory or squashfs image (image_kind != EXEC) arrives as a rootfs
 * (image_mount.h). Without a writable layer its tree is bound read-only,
 * so every mount point must already be in it; with one, an overlayfs is
 * mounted over the tree first (upper and work on a tmpfs of this mount
 * namespace, or in the module's volume) and mount points are made in the
 * overlay. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>

#include "sandbox_int.h"

/* The minimal /dev: bound one by one from the host. */
static const char *const sb_dev_nodes[] = {
	"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
	"/dev/tty",
};
#define SB_NNODES (sizeof(sb_dev_nodes) / sizeof(sb_dev_nodes[0]))

/* ---- child ------------------------------------------------------------- */

/* "/proc/self/fd/<fd>" without snprintf. */
static void fd_path(char buf[32], int fd)
{
	static const char pre[] = "/proc/self/fd/";
	char digits[12];
	int n = 0;

	memcpy(buf, pre, sizeof(pre) - 1);
	buf += sizeof(pre) - 1;
	do
		digits[n++] = (char)('0' + fd % 10);
	while ((fd /= 10) > 0);
	while (n > 0)
		*buf++ = digits[--n];
	*buf = '\0';
}

/* mkdir -p of path's parent directories, walking path in place. */
static int make_parents(char *path)
{
	char *q;
	int r = 0;

	for (q = path + 1; *q && !r; q++) {
		if (*q != '/')
			continue;
		*q = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			r = -errno;
		*q = '/';
	}
	return r;
}

/* The mount point: a directory, or an empty file for a non-directory. */
static int make_target(char *path, bool dir)
{
	int fd, r = make_parents(path);

	if (r < 0)
		return r;
	if (dir)
		return mkdir(path, 0755) < 0 && errno != EEXIST ? -errno : 0;
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
	if (fd < 0)
		return errno == EISDIR ? 0 : -errno;
	close(fd);
	return 0;
}

/* A file system mount (proc, tmpfs), a propagation change, or a bind of a
 * path that stays visible (the rootfs onto itself). */
static int step_mount(struct sb_plan *p, struct sb_step *s)
{
	int r;

	if (s->make != SB_MAKE_NONE && (r = make_target(s->path, true)) < 0)
		return r;
	if (mount(s->src, s->path, s->fstype, s->flags, s->data) < 0)
		return -errno;
	return 0;
}

static int step_open_src(struct sb_plan *p, struct sb_step *s)
{
	struct sb_src *src = &p->src[s->isrc];
	struct stat st;

	src->fd = open(src->path, O_PATH | O_CLOEXEC);
	if (src->fd < 0 || fstat(src->fd, &st) < 0)
		return -errno;
	src->dir = S_ISDIR(st.st_mode);
	return 0;
}

static int step_bind(struct sb_plan *p, struct sb_step *s)
{
	const struct sb_src *src = &p->src[s->isrc];
	char from[32];
	int r;

	if (s->make != SB_MAKE_NONE && (r = make_target(s->path, src->dir)) < 0)
		return r;
	fd_path(from, src->fd);
	if (mount(from, s->path, NULL, s->flags, NULL) < 0)
		return -errno;
	return 0;
}

/* A bind mount is made read-only by a remount, which must repeat the
 * flags locked on it (nosuid, nodev, ... of the source in a user ns). */
static int step_remount_ro(struct sb_plan *p, struct sb_step *s)
{
	const unsigned long keep = MS_NOSUID | MS_NODEV | MS_NOEXEC |
		MS_NOATIME | MS_NODIRATIME | MS_RELATIME;
	struct statfs sf;

	if (statfs(s->path, &sf) < 0)
		return -errno;
	if (mount(NULL, s->path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY |
		  ((unsigned long)sf.f_flags & keep), NULL) < 0)
		return -errno;
	return 0;
}

/* A directory of the writable layer's tmpfs (upper, work): mode 0755
 * whatever the umask, as the upper dir's mode is the module's "/". */
static int step_mkdir(struct sb_plan *p, struct sb_step *s)
{
	if (mkdir(s->path, 0755) < 0 && errno != EEXIST)
		return -errno;
	return chmod(s->path, 0755) < 0 ? -errno : 0;
}

/* pivot_root(".", ".") stacks the old root on the new one at "/"; the
 * detach then leaves only the new root (no directory needed for it). */
static int step_pivot(struct sb_plan *p, struct sb_step *s)
{
	if (chdir(s->detail) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
	    umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		return -errno;
	return 0;
}

/* ---- parent ------------------------------------------------------------ */

size_t sb_mount_pool_bytes(const struct te_module_spec *sp)
{
	size_t root = (sp->rootfs ? strlen(sp->rootfs) : 0) + 1, n;
	unsigned i;

	n = (5 + SB_NNODES) * (root + 16);  /* "/", rootfs, proc, tmp, dev */
	for (i = 0; i < sp->ndevices; i++)
		n += root + strlen(sp->devices[i].target ? sp->devices[i].target
				   : sp->devices[i].path);
	for (i = 0; i < sp->nmounts; i++)
		n += root + strlen(sp->mounts[i].target);
	n += root + strlen(sp->image); /* the image, see plan_binds */
	if (sp->scratch)   /* the tmpfs and its upper and work dirs */
		n += 3 * (strlen(sp->scratch) + 8);
	return n;
}

unsigned sb_mount_max_srcs(const struct te_module_spec *sp)
{
	return (unsigned)SB_NNODES + sp->ndevices + sp->nmounts + 1;
}

/* An open and a bind per source, a remount per mount, and the rest. */
unsigned sb_mount_max_steps(const struct te_module_spec *sp)
{
	return 12 + 2 * sb_mount_max_srcs(sp) + sp->nmounts + 1;
}

/* Bind src (opened in the child before any mount) onto prefix + target.
 * may_create: the target may be made (under a rootfs, or inside a tmpfs
 * of ours); otherwise it must exist. */
static int plan_bind(struct sb_plan *p, const char *src, const char *prefix,
		     const char *target, bool may_create, bool ro)
{
	char *path = sb_plan_path(p, prefix, target);
	struct sb_step *s;
	int i = (int)p->nsrc++;

	if (!path)
		return -ENAMETOOLONG;
	p->src[i] = (struct sb_src){ .path = src, .fd = -1 };
	/* its open step goes first: see plan_open_sources */
	s = sb_plan_add(p, "bind", step_bind, path);
	s->path = path;
	s->isrc = i;
	s->flags = MS_BIND | MS_REC;
	s->make = may_create ? SB_MAKE_LIKE_SRC : SB_MAKE_NONE;
	if (ro) {
		s = sb_plan_add(p, "remount read-only", step_remount_ro, path);
		s->path = path;
	}
	return 0;
}

/* A file system (proc, tmpfs), a propagation change or a bind of a path
 * that stays visible; NULL if the path is too long. */
static struct sb_step *plan_fs(struct sb_plan *p, const char *name,
			       const char *prefix, const char *target,
			       const char *fstype, unsigned long flags,
			       const char *data)
{
	char *path = sb_plan_path(p, prefix, target);
	struct sb_step *s;

	if (!path)
		return NULL;
	s = sb_plan_add(p, name, step_mount, path);
	s->path = path;
	s->src = fstype;
	s->fstype = fstype;
	s->flags = flags;
	s->data = data;
	/* the host's /proc, /tmp, /dev exist; a rootfs may lack them */
	s->make = p->spec->rootfs ? SB_MAKE_DIR : SB_MAKE_NONE;
	return s;
}

/* May mount points be made under the root? On the host view no (the
 * host's tree), under a rootfs yes, in a read-only image no. */
static bool root_makes(const struct te_module_spec *sp)
{
	return sp->rootfs && (sp->image_kind == TE_IMAGE_EXEC || sp->overlay);
}

static bool path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* The binds of /dev nodes, devices and mounts, in that order. */
static int plan_binds(struct sb_plan *p, const char *root)
{
	const struct te_module_spec *sp = p->spec;
	bool rootfs = root_makes(sp);
	unsigned i;
	int r = 0;

	for (i = 0; i < SB_NNODES && !r; i++)
		r = plan_bind(p, sb_dev_nodes[i], root, sb_dev_nodes[i], true,
			      false);
	for (i = 0; i < sp->ndevices && !r; i++) {
		const struct te_device *d = &sp->devices[i];
		const char *t = d->target ? d->target : d->path;

		r = plan_bind(p, d->path, root, t,
			      rootfs || path_under(t, "/dev"), false);
	}
	for (i = 0; i < sp->nmounts && !r; i++) {
		const struct te_mount *m = &sp->mounts[i];

		r = plan_bind(p, m->source, root, m->target, rootfs ||
			      path_under(m->target, "/tmp") ||
			      path_under(m->target, "/dev"), m->read_only);
	}
	/* The module's own image stays visible where the module gets a fresh
	 * tmpfs of its own (an image in a build tree under /tmp, say). */
	if (!r && !sp->rootfs && (path_under(sp->image, "/tmp") || path_under(sp->image, "/dev")))
		r = plan_bind(p, sp->image, root, sp->image, true, true);
	return r;
}

/* Open every bind source before the first mount can cover it. The open
 * steps are inserted ahead of the mounts they serve. */
static void plan_open_sources(struct sb_plan *p, unsigned at)
{
	unsigned n = p->nsrc, i;
	struct sb_step *s;

	if (p->nstep + n > p->maxstep)
		abort();
	memmove(&p->step[at + n], &p->step[at],
		(p->nstep - at) * sizeof(*s));
	p->nstep += n;
	for (i = 0; i < n; i++) {
		s = &p->step[at + i];
		memset(s, 0, sizeof(*s));
		s->name = "open";
		s->fn = step_open_src;
		s->detail = p->src[i].path;
		s->isrc = (int)i;
	}
}

/* The writable layer of an image: the tmpfs for upper and work (unless
 * they are a volume), then the overlay over the image's tree. */
static int plan_overlay(struct sb_plan *p, const char *root)
{
	const struct te_module_spec *sp = p->spec;
	static const char *const dirs[] = { "/upper", "/work" };
	struct sb_step *s;

	if (sp->scratch) {
		s = plan_fs(p, "mount tmpfs (writable layer)", "", sp->scratch,
			    "tmpfs", MS_NOSUID | MS_NODEV, sp->scratch_opts);
		if (!s)
			return -ENAMETOOLONG;
		s->make = SB_MAKE_NONE;
		for (unsigned i = 0; i < 2; i++) {
			char *path = sb_plan_path(p, sp->scratch, dirs[i]);

			if (!path)
				return -ENAMETOOLONG;
			s = sb_plan_add(p, "make writable layer", step_mkdir, path);
			s->path = path;
		}
	}
	s = plan_fs(p, "mount overlay", root, "", "overlay",
		    MS_NOSUID | MS_NODEV, sp->overlay);
	if (!s)
		return -ENAMETOOLONG;
	s->make = SB_MAKE_NONE;
	return 0;
}

/* The new root: a mount point of its own (pivot_root needs one): the
 * rootfs bound onto itself (read-only for an image), or the overlay. */
static int plan_root(struct sb_plan *p, const char *root)
{
	const struct te_module_spec *sp = p->spec;
	struct sb_step *s;
	char *path;

	if (sp->overlay)
		return plan_overlay(p, root);
	s = plan_fs(p, "bind rootfs", root, "", NULL, MS_BIND | MS_REC, NULL);
	if (!s)
		return -ENAMETOOLONG;
	s->src = sp->rootfs;
	s->make = SB_MAKE_NONE;
	path = s->path;
	if (sp->image_kind != TE_IMAGE_EXEC) {
		s = sb_plan_add(p, "remount image read-only", step_remount_ro, path);
		s->path = path;
	}
	return 0;
}

int sb_plan_mounts(struct sb_plan *p)
{
	const struct te_module_spec *sp = p->spec;
	const char *root = sp->rootfs ? sp->rootfs : "";
	struct sb_step *s;
	unsigned at;
	int r;

	s = plan_fs(p, "make / private", "", "/", NULL, MS_REC | MS_PRIVATE,
		    NULL);
	if (!s)
		return -ENAMETOOLONG;
	s->make = SB_MAKE_NONE;
	at = p->nstep;
	if (sp->rootfs && (r = plan_root(p, root)) < 0)
		return r;
	if ((sp->namespaces & TE_NS_PID) &&
	    !plan_fs(p, "mount proc", root, "/proc", "proc",
		     MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
		return -ENAMETOOLONG;
	if (!plan_fs(p, "mount tmpfs", root, "/tmp", "tmpfs",
		     MS_NOSUID | MS_NODEV, "mode=1777") ||
	    !plan_fs(p, "mount tmpfs", root, "/dev", "tmpfs",
		     MS_NOSUID | MS_NOEXEC, "mode=0755"))
		return -ENAMETOOLONG;
	if ((r = plan_binds(p, root)) < 0)
		return r;
	plan_open_sources(p, at);
	if (sp->rootfs)
		sb_plan_add(p, "pivot_root", step_pivot, sp->rootfs);
	return 0;
}


