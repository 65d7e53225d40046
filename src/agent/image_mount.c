/* Directory and squashfs module images (image_mount.h, docs/images.md). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include "core/err.h"
#include "core/fs.h"
#include "core/log.h"
#include "image_mount.h"

/* ---- what an image is -------------------------------------------------- */

#define SQFS_MAGIC "hsqs"
#define SQFS_SB_BYTES 96

int te_image_kind_of(const char *path, enum te_image_kind *kind)
{
	char magic[4];
	struct stat st;
	ssize_t n;
	int fd;

	if (stat(path, &st) < 0)
		return -errno;
	*kind = TE_IMAGE_EXEC;
	if (S_ISDIR(st.st_mode)) {
		*kind = TE_IMAGE_DIR;
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return -errno;
	n = pread(fd, magic, sizeof(magic), 0);
	close(fd);
	if (n == (ssize_t)sizeof(magic) && !memcmp(magic, SQFS_MAGIC, 4))
		*kind = TE_IMAGE_SQUASHFS;
	return 0;
}

static uint32_t le16(const unsigned char *p) { return p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const unsigned char *p) { return le16(p) | le16(p + 2) << 16; }
static uint64_t le64(const unsigned char *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

/* The squashfs 4.0 superblock (96 bytes, little-endian): what the kernel
 * would refuse, said before it does, plus a truncated file. */
static const char *sqfs_problem(const unsigned char *sb, uint64_t size)
{
	uint32_t block = le32(sb + 12), comp = le16(sb + 20), blog = le16(sb + 22);
	uint64_t used = le64(sb + 40), inodes = le64(sb + 64), dirs = le64(sb + 72);

	if (memcmp(sb, SQFS_MAGIC, 4))
		return "no squashfs magic";
	if (le16(sb + 28) != 4 || le16(sb + 30) != 0)
		return "not squashfs version 4.0";
	if (block < 4096 || block > (1u << 20) || blog > 20 || (1u << blog) != block)
		return "bad block size";
	if (comp < 1 || comp > 6)
		return "unknown compressor";
	if (used < SQFS_SB_BYTES || used > size)
		return "truncated (bytes_used beyond the end of the file)";
	if (inodes >= used || dirs >= used || inodes > dirs)
		return "bad inode or directory table offset";
	return NULL;
}

int te_image_check_squashfs(const char *path, char *err, size_t cap)
{
	unsigned char sb[SQFS_SB_BYTES];
	const char *why;
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -errno;
	}
	n = pread(fd, sb, sizeof(sb), 0);
	close(fd);
	if (n < 0)
		return -errno;
	why = n < (ssize_t)sizeof(sb) ? "shorter than a superblock"
				      : sqfs_problem(sb, (uint64_t)st.st_size);
	if (!why)
		return 0;
	snprintf(err, cap, "bad squashfs superblock: %s", why);
	return -TE_EINVALID;
}

/* ---- an image tree ----------------------------------------------------- */

#ifndef RESOLVE_IN_ROOT
#define RESOLVE_IN_ROOT 0x10
#endif

struct img_open_how {
	uint64_t flags, mode, resolve;
};

/* stat path as seen with root as "/" (absolute symlinks stay inside). */
static int tree_stat(int rootfd, const char *path, struct stat *st)
{
	struct img_open_how how = { O_PATH | O_CLOEXEC, 0, RESOLVE_IN_ROOT };
	long fd = -1;
	int r = 0;

#ifdef SYS_openat2
	fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
#else
	errno = ENOSYS;
#endif
	if (fd < 0 && errno != ENOSYS)
		return -errno;
	if (fd < 0) { /* before Linux 5.6: follow symlinks on the host */
		while (*path == '/')
			path++;
		return fstatat(rootfd, *path ? path : ".", st, 0) < 0 ? -errno : 0;
	}
	if (fstat((int)fd, st) < 0)
		r = -errno;
	close((int)fd);
	return r;
}

static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == '/' || !path[n]);
}

/* A read-only root cannot get mount points: they must be there. */
static int tree_mount_points(int rootfd, const struct te_module_spec *ms,
			     char *err, size_t cap)
{
	const char *need[3] = { "/dev", "/tmp", "/proc" };
	unsigned n = ms->namespaces & TE_NS_PID ? 3 : 2, i;
	struct stat st;

	for (i = 0; i < n; i++) {
		if (tree_stat(rootfd, need[i], &st) == 0 && S_ISDIR(st.st_mode))
			continue;
		snprintf(err, cap, "a read-only image needs a %s directory (or set createOptions.writable)", need[i]);
		return -TE_EINVALID;
	}
	for (i = 0; i < ms->nmounts; i++) {
		const char *t = ms->mounts[i].target;

		if (under(t, "/tmp") || under(t, "/dev") || tree_stat(rootfd, t, &st) == 0)
			continue;
		snprintf(err, cap, "mount target %s is not in the read-only image (or set createOptions.writable)", t);
		return -TE_EINVALID;
	}
	return 0;
}

int te_image_check_tree(const char *root, const struct te_module_spec *ms,
			char *err, size_t cap)
{
	const char *prog = ms->nargs ? ms->args[0] : NULL;
	struct stat st;
	int rootfd, r;

	if (!prog || prog[0] != '/') {
		snprintf(err, cap, "createOptions.args[0] must be the absolute path of the program inside the image");
		return -TE_EINVALID;
	}
	if ((rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(err, cap, "%s: %s", root, strerror(errno));
		return -TE_EINVALID;
	}
	r = tree_stat(rootfd, prog, &st);
	if (r < 0) {
		snprintf(err, cap, "%s in the image: %s", prog, strerror(-r));
		r = -TE_EINVALID;
	} else if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111)) {
		snprintf(err, cap, "%s in the image is not an executable file", prog);
		r = -TE_EINVALID;
	} else if (ms->writable == TE_WRITABLE_NONE) {
		r = tree_mount_points(rootfd, ms, err, cap);
	}
	close(rootfd);
	return r;
}

/* ---- loop devices (musl has no <linux/loop.h>; the ABI is stable) ------ */

#define IMG_LOOP_SET_FD 0x4C00
#define IMG_LOOP_SET_STATUS64 0x4C04
#define IMG_LOOP_CONFIGURE 0x4C0A   /* Linux 5.8 */
#define IMG_LOOP_CTL_GET_FREE 0x4C82
#define IMG_LO_READ_ONLY 1u
#define IMG_LO_AUTOCLEAR 4u
#define IMG_LOOP_TRIES 8            /* another process may take "free" first */

struct img_loop_info64 {
	uint64_t device, inode, rdevice, offset, sizelimit;
	uint32_t number, encrypt_type, encrypt_key_size, flags;
	uint8_t file_name[64], crypt_name[64], encrypt_key[32];
	uint64_t init[2];
};

struct img_loop_config {
	uint32_t fd, block_size;
	struct img_loop_info64 info;
	uint64_t reserved[8];
};

/* Open /dev/loop<n>, making the node if this /dev has none. */
static int loop_open(int n, char *dev, size_t cap)
{
	int fd;

	snprintf(dev, cap, "/dev/loop%d", n);
	fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT &&
	    mknod(dev, S_IFBLK | 0600, makedev(7, (unsigned)n)) == 0)
		fd = open(dev, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Bind file to the loop device lfd: read-only, detached when its last user
 * (the mount) goes. LOOP_CONFIGURE does it in one call; older kernels
 * take LOOP_SET_FD (read-only from the fd's mode) + LOOP_SET_STATUS64. */
static int loop_bind(int lfd, int ffd, const char *file)
{
	struct img_loop_config c;

	memset(&c, 0, sizeof(c));
	c.fd = (uint32_t)ffd;
	c.info.flags = IMG_LO_READ_ONLY | IMG_LO_AUTOCLEAR;
	snprintf((char *)c.info.file_name, sizeof(c.info.file_name), "%s", file);
	if (ioctl(lfd, IMG_LOOP_CONFIGURE, &c) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOTTY)
		return -errno;
	if (ioctl(lfd, IMG_LOOP_SET_FD, ffd) < 0)
		return -errno;
	c.info.flags = IMG_LO_AUTOCLEAR;
	return ioctl(lfd, IMG_LOOP_SET_STATUS64, &c.info) < 0 ? -errno : 0;
}

/* A free loop device bound to file; its fd (the caller closes it once the
 * mount holds the device), or -errno with err. */
static int loop_attach(const char *file, char *dev, size_t devcap,
		       char *err, size_t cap)
{
	int ctl, ffd, lfd = -ENODEV, r = -EBUSY, n;

	if ((ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC)) < 0) {
		snprintf(err, cap, "no loop devices: /dev/loop-control: %s", strerror(errno));
		return -errno;
	}
	if ((ffd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		r = -errno;
		snprintf(err, cap, "%s: %s", file, strerror(-r));
		close(ctl);
		return r;
	}
	for (unsigned t = 0; t < IMG_LOOP_TRIES && r == -EBUSY; t++) {
		if ((n = ioctl(ctl, IMG_LOOP_CTL_GET_FREE)) < 0) {
			r = -errno;
			snprintf(err, cap, "no free loop device: %s", strerror(-r));
			break;
		}
		if ((lfd = loop_open(n, dev, devcap)) < 0) {
			r = lfd;
			snprintf(err, cap, "%s: %s", dev, strerror(-r));
			break;
		}
		if ((r = loop_bind(lfd, ffd, file)) < 0) {
			close(lfd);
			snprintf(err, cap, "attach %s to %s: %s", file, dev, strerror(-r));
		}
	}
	close(ffd);
	close(ctl);
	return r < 0 ? r : lfd;
}

/* ---- the table of mounts ----------------------------------------------- */

struct img_mount {
	dev_t dev;
	ino_t ino;
	unsigned refs;
};

struct img_holder {
	const void *owner;
	dev_t dev;
	ino_t ino;
};

static struct {
	char state_dir[PATH_MAX];
	struct img_mount *mnt;
	unsigned nmnt;
	struct img_holder *hold;
	unsigned nhold, cap;   /* cap: of both arrays (one holder per mount at least) */
} g;

static void mnt_dir(char *buf, size_t cap, dev_t dev, ino_t ino)
{
	snprintf(buf, cap, "%s/images/mnt/%llx-%llx", g.state_dir,
		 (unsigned long long)dev, (unsigned long long)ino);
}

static int grow(void)
{
	unsigned cap = g.cap ? 2 * g.cap : 4;
	struct img_mount *m = realloc(g.mnt, cap * sizeof(*m));
	struct img_holder *h;

	if (!m)
		return -ENOMEM;
	g.mnt = m;
	if (!(h = realloc(g.hold, cap * sizeof(*h))))
		return -ENOMEM;
	g.hold = h;
	g.cap = cap;
	return 0;
}

static void unmount_dir(const char *dir)
{
	while (umount2(dir, MNT_DETACH) == 0)
		;  /* stacked mounts, if any */
	rmdir(dir);
}

static void mnt_drop(unsigned i)
{
	char dir[PATH_MAX];

	mnt_dir(dir, sizeof(dir), g.mnt[i].dev, g.mnt[i].ino);
	unmount_dir(dir);
	te_info("agent", "image mount %s released", dir);
	g.mnt[i] = g.mnt[--g.nmnt];
}

static const char *mount_errstr(int e)
{
	switch (e) {
	case EINVAL: return "not a valid squashfs image";
	case ENODEV: return "this kernel has no squashfs support";
	default: return strerror(e);
	}
}

/* Mount file (dev, ino) at its directory. 0 or -errno with err. */
static int mnt_make(const char *file, dev_t dev, ino_t ino, char *err,
		    size_t cap)
{
	char dir[PATH_MAX], loopdev[32];
	int lfd, r;

	mnt_dir(dir, sizeof(dir), dev, ino);
	if ((r = te_mkdir_p(dir, 0700, 0700)) < 0) {
		snprintf(err, cap, "%s: %s", dir, strerror(-r));
		return r;
	}
	if ((r = te_image_check_squashfs(file, err, cap)) < 0) {
		if (r != -TE_EINVALID)
			snprintf(err, cap, "%s: %s", file, strerror(-r));
		rmdir(dir);
		return r;
	}
	if ((lfd = loop_attach(file, loopdev, sizeof(loopdev), err, cap)) < 0) {
		rmdir(dir);
		return lfd;
	}
	r = mount(loopdev, dir, "squashfs", MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
	if (r < 0) {
		r = -errno;
		snprintf(err, cap, "mount %s (%s): %s", file, loopdev, mount_errstr(-r));
		rmdir(dir);
	}
	close(lfd);  /* autoclear: the device now lives as long as the mount */
	return r;
}

/* Take a reference on the mount of file (st); fills root. */
static int mnt_get(const void *owner, const char *file, const struct stat *st,
		   char *root, size_t rcap, char *err, size_t cap)
{
	unsigned i;
	int r;

	if (g.nhold == g.cap && (r = grow()) < 0) {
		snprintf(err, cap, "out of memory");
		return r;
	}
	for (i = 0; i < g.nmnt; i++)
		if (g.mnt[i].dev == st->st_dev && g.mnt[i].ino == st->st_ino)
			break;
	if (i == g.nmnt) {
		if ((r = mnt_make(file, st->st_dev, st->st_ino, err, cap)) < 0)
			return r;
		g.mnt[g.nmnt++] = (struct img_mount){ st->st_dev, st->st_ino, 0 };
	}
	g.mnt[i].refs++;
	g.hold[g.nhold++] = (struct img_holder){ owner, st->st_dev, st->st_ino };
	mnt_dir(root, rcap, st->st_dev, st->st_ino);
	return 0;
}

void te_image_release(const void *owner)
{
	unsigned h, i;

	for (h = 0; h < g.nhold && g.hold[h].owner != owner; h++)
		;
	if (h == g.nhold)
		return;
	for (i = 0; i < g.nmnt; i++)
		if (g.mnt[i].dev == g.hold[h].dev && g.mnt[i].ino == g.hold[h].ino)
			break;
	g.hold[h] = g.hold[--g.nhold];
	if (i < g.nmnt && --g.mnt[i].refs == 0)
		mnt_drop(i);
}

unsigned te_images_mounted(void)
{
	return g.nmnt;
}

void te_images_shutdown(void)
{
	while (g.nmnt)
		mnt_drop(g.nmnt - 1);
	free(g.mnt);
	free(g.hold);
	g.mnt = NULL;
	g.hold = NULL;
	g.nhold = g.cap = 0;
}

void te_images_init(const char *state_dir)
{
	char dir[PATH_MAX], path[PATH_MAX + 256];
	struct dirent *e;
	DIR *d;

	snprintf(g.state_dir, sizeof(g.state_dir), "%s", state_dir);
	snprintf(dir, sizeof(dir), "%s/images/mnt", state_dir);
	if (!(d = opendir(dir)))
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unmount_dir(path);
		te_warn("agent", "image mount %s: left by a previous run, released", path);
	}
	closedir(d);
}

/* ---- the sandbox's spec ------------------------------------------------ */

/* overlayfs splits its options at ',' and lower layers at ':'. */
static bool overlay_safe(const char *path)
{
	return !strpbrk(path, ",:\\");
}

/* Upper and work directories: a tmpfs the child mounts on the scratch
 * dir, or the module's volume. */
static int run_writable(const struct te_module_spec *ms, struct te_image_run *run,
			char *err, size_t cap)
{
	char base[PATH_MAX], upper[PATH_MAX + 8], work[PATH_MAX + 8];
	int r;

	if (ms->writable == TE_WRITABLE_TMPFS) {
		snprintf(base, sizeof(base), "%s/images/scratch", g.state_dir);
		snprintf(run->scratch, sizeof(run->scratch), "%s", base);
		snprintf(run->scratch_opts, sizeof(run->scratch_opts),
			 "size=%llu,mode=0755", (unsigned long long)ms->writable_bytes);
		run->spec.scratch = run->scratch;
		run->spec.scratch_opts = run->scratch_opts;
		r = te_mkdir_p(base, 0700, 0700);
	} else {
		snprintf(base, sizeof(base), "%s/volumes/%s", g.state_dir, ms->name);
		snprintf(upper, sizeof(upper), "%s/upper", base);
		snprintf(work, sizeof(work), "%s/work", base);
		if ((r = te_mkdir_p(base, 0700, 0700)) == 0 &&
		    (r = te_mkdir_p(upper, 0700, 0755)) == 0 &&
		    (r = te_mkdir_p(work, 0700, 0700)) == 0 &&
		    chmod(upper, 0755) < 0)  /* "/" of the module, whatever the umask */
			r = -errno;
	}
	if (r < 0) {
		snprintf(err, cap, "writable layer %s: %s", base, strerror(-r));
		return r;
	}
	if (!overlay_safe(base) || !overlay_safe(run->root)) {
		snprintf(err, cap, "writable layer: %s or %s has ',', ':' or '\\' (overlayfs options)",
			 base, run->root);
		return -EINVAL;
	}
	snprintf(run->overlay, sizeof(run->overlay),
		 "lowerdir=%s,upperdir=%s/upper,workdir=%s/work", run->root, base, base);
	run->spec.overlay = run->overlay;
	return 0;
}

/* "image <path>: " ahead of err. */
static void err_prefix(char *err, size_t cap, const char *image)
{
	char why[256];

	snprintf(why, sizeof(why), "%s", err);
	snprintf(err, cap, "image %s: %s", image, why);
}

int te_image_acquire(const void *owner, const struct te_module_spec *ms,
		     struct te_image_run *run, char *err, size_t cap)
{
	struct stat st;
	int r;

	err[0] = '\0';
	memset(run, 0, sizeof(*run));
	if (stat(ms->image, &st) < 0) {
		r = -errno;
		snprintf(err, cap, "%s", strerror(-r));
	} else if (ms->image_kind == TE_IMAGE_SQUASHFS) {
		r = mnt_get(owner, ms->image, &st, run->root, sizeof(run->root), err, cap);
	} else {
		snprintf(run->root, sizeof(run->root), "%s", ms->image);
		r = 0;
	}
	if (r == 0)
		r = te_image_check_tree(run->root, ms, err, cap);
	run->spec = *ms;
	if (r == 0 && ms->writable != TE_WRITABLE_NONE)
		r = run_writable(ms, run, err, cap);
	if (r < 0) {
		err_prefix(err, cap, ms->image);
		te_image_release(owner);
		return r;
	}
	run->spec.rootfs = run->root;
	run->spec.image = ms->args[0];
	run->spec.args = ms->args + 1;
	run->spec.nargs = ms->nargs - 1;
	return 0;
}
