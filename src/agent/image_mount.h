/* Module images that become the module's root (docs/images.md): a
 * directory tree or a squashfs file.
 *
 * The daemon mounts a squashfs image itself (never the child): a free loop
 * device attached read-only with autoclear, squashfs mounted read-only,
 * nosuid, nodev at <stateDir>/images/mnt/<dev>-<ino> of the image file.
 * One mount per image file, counted: every module that uses it holds one
 * reference from its spawn to its exit; the last release unmounts it
 * (MNT_DETACH; the loop device goes with the last user, autoclear).
 *
 * te_image_acquire() returns a copy of the module's spec for the sandbox:
 * rootfs = the image tree, image = args[0], args = args[1..], and, with
 * createOptions.writable, the overlayfs options the child mounts on the
 * tree before pivot_root (upper and work on a tmpfs of the child's mount
 * namespace, or in <stateDir>/volumes/<name>/, kept).
 *
 * One table per process, grown on the first image module: a daemon that
 * runs only executables never touches it. Not thread-safe (the daemon's
 * loop thread only). */
#ifndef TE_IMAGE_MOUNT_H
#define TE_IMAGE_MOUNT_H

#include <limits.h>
#include <stddef.h>

#include "manifest.h"

/* What path is: a directory, a squashfs file (magic "hsqs" at offset 0,
 * whatever its name) or anything else (TE_IMAGE_EXEC). 0, or -errno when
 * it cannot be read (stat/open). */
int te_image_kind_of(const char *path, enum te_image_kind *kind);

/* Check a squashfs file's superblock (version 4.0, block size, compressor,
 * tables within the file). 0, or -TE_EINVALID with the reason in err;
 * -errno when the file cannot be read. */
int te_image_check_squashfs(const char *path, char *err, size_t cap);

/* Check an image tree (a directory image, or a mounted squashfs) for ms:
 * args[0] is given, absolute and an executable file inside root; without
 * writable, root has the mount points the sandbox needs (/dev, /tmp, and
 * /proc with a pid namespace). 0, or -TE_EINVALID with err. */
int te_image_check_tree(const char *root, const struct te_module_spec *ms,
			char *err, size_t cap);

/* Start: remember the state dir and unmount whatever a killed daemon
 * left under <stateDir>/images/mnt/. Cheap when there is nothing. */
void te_images_init(const char *state_dir);

/* What te_image_acquire() fills: the sandbox's spec and its strings. */
struct te_image_run {
	struct te_module_spec spec;
	char root[PATH_MAX];
	char overlay[3 * PATH_MAX + 40];
	char scratch[PATH_MAX];
	char scratch_opts[48];
};

/* Take a reference on ms's image for owner (a module; one image per
 * owner) and fill run. 0, or -errno / -TE_EINVALID with err naming the
 * cause ("no free loop device", "not a valid squashfs image ..."). */
int te_image_acquire(const void *owner, const struct te_module_spec *ms,
		     struct te_image_run *run, char *err, size_t cap);

/* Drop owner's reference, if it holds one; the last one unmounts. */
void te_image_release(const void *owner);

/* Unmount everything (daemon stop). */
void te_images_shutdown(void);

/* Mounts held now (tests). */
unsigned te_images_mounted(void);

#endif
