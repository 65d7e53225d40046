/* faultfs: a FUSE passthrough filesystem that loses what a power cut loses.
 *
 *   faultfs BACKING MOUNTPOINT [LOGFILE]
 *
 * Every file write is kept in memory, as 4 KiB dirty pages per file (the
 * page cache of this filesystem), and reaches BACKING only when the file is
 * fsync'ed or fdatasync'ed (an O_SYNC/O_DSYNC write is one: the kernel sends
 * FUSE_FSYNC after it, and a write on such a handle is flushed too), or at
 * a clean unmount. Metadata operations (create, mkdir, unlink, rename,
 * truncate, chmod) go to BACKING at once: what is modelled is lost *data*.
 *
 * The control file MOUNTPOINT/.faultfs:
 *   read            one JSON line of counters
 *   write "cut [drop|some|torn] [SEED]"
 *                   the power cut: drop (default) discards every unsynced
 *                   page; some writes each one back with probability 1/2
 *                   (the kernel may have written any subset back before the
 *                   power went: unsynced writes land in any order); torn is
 *                   some, with half of the written pages cut short at a
 *                   random 512-byte sector boundary (a sector is the unit a
 *                   disk writes atomically). From then on every data
 *                   operation fails with EIO, as on a dead machine; unmount
 *                   and mount again to "boot".
 * On exit it prints the counters (to LOGFILE when given, else stderr).
 *
 * Runs single-threaded (-s): no locking. Shared writable mmap works (no
 * direct_io): the kernel writes such pages back with FUSE_WRITE, which
 * lands here like any write. Test tool only: never part of the binary. */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define PG 4096
#define SECTOR 512
#define MAXFILES 256
#define CTL "/.faultfs"

struct dpage {
	uint64_t idx;
	unsigned char *data;       /* NULL: empty slot */
};

/* One backing file with unsynced data. */
struct fstate {
	dev_t dev;
	ino_t ino;
	int fd;                    /* O_RDWR on the backing file */
	off_t size;                /* logical size, with unsynced writes */
	size_t n, cap;             /* dirty pages, table slots (power of 2) */
	struct dpage *tab;
	uint64_t writes;           /* write calls since the last flush */
};

static struct {
	char backing[PATH_MAX];
	struct fstate files[MAXFILES];
	int nfiles;
	int dead;                  /* after a cut */
	FILE *log;
	uint64_t writes, write_bytes, fsyncs, flushed_pages;
	uint64_t cuts, cut_files, cut_writes, cut_dropped, cut_applied, cut_torn;
	uint64_t cut_dropped_bytes;
} g;

static void bpath(char *out, const char *path)
{
	snprintf(out, PATH_MAX, "%s%s", g.backing, path);
}

/* ---- dirty page table ------------------------------------------------- */

static struct dpage *page_find(struct fstate *f, uint64_t idx)
{
	size_t m, i;

	if (!f->cap)
		return NULL;
	m = f->cap - 1;
	for (i = (idx * 0x9E3779B97F4A7C15ull) & m; f->tab[i].data; i = (i + 1) & m)
		if (f->tab[i].idx == idx)
			return &f->tab[i];
	return &f->tab[i];         /* the empty slot it would go in */
}

static int table_grow(struct fstate *f)
{
	struct dpage *old = f->tab;
	size_t oldcap = f->cap, i;

	f->cap = f->cap ? f->cap * 2 : 64;
	if (!(f->tab = calloc(f->cap, sizeof(*f->tab))))
		return -ENOMEM;
	for (i = 0; i < oldcap; i++)
		if (old[i].data)
			*page_find(f, old[i].idx) = old[i];
	free(old);
	return 0;
}

static void table_clear(struct fstate *f)
{
	for (size_t i = 0; i < f->cap; i++)
		free(f->tab[i].data);
	free(f->tab);
	f->tab = NULL;
	f->n = f->cap = 0;
	f->writes = 0;
}

/* Bytes of page idx that lie inside the logical size. */
static size_t page_len(const struct fstate *f, uint64_t idx)
{
	off_t start = (off_t)(idx * PG);

	if (f->size <= start)
		return 0;
	return f->size - start >= PG ? PG : (size_t)(f->size - start);
}

/* The dirty page idx, made from the backing file when not yet dirty. */
static unsigned char *page_get(struct fstate *f, uint64_t idx)
{
	struct dpage *p;
	ssize_t r;

	if ((2 * (f->n + 1) > f->cap) && table_grow(f))
		return NULL;
	p = page_find(f, idx);
	if (p->data)
		return p->data;
	if (!(p->data = calloc(1, PG)))
		return NULL;
	r = pread(f->fd, p->data, PG, (off_t)(idx * PG));
	(void)r;                   /* short or failed: zeros, as past EOF */
	p->idx = idx;
	f->n++;
	return p->data;
}

/* ---- file states ------------------------------------------------------- */

static struct fstate *state_by_ino(dev_t dev, ino_t ino)
{
	for (int i = 0; i < g.nfiles; i++)
		if (g.files[i].dev == dev && g.files[i].ino == ino)
			return &g.files[i];
	return NULL;
}

static struct fstate *state_of(int fd)
{
	struct stat st;
	struct fstate *f;
	char p[64];

	if (fstat(fd, &st) || !S_ISREG(st.st_mode))
		return NULL;
	if ((f = state_by_ino(st.st_dev, st.st_ino)))
		return f;
	if (g.nfiles == MAXFILES)
		return NULL;
	f = &g.files[g.nfiles];
	memset(f, 0, sizeof(*f));
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	if ((f->fd = open(p, O_RDWR | O_CLOEXEC)) < 0)
		return NULL;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->size = st.st_size;
	g.nfiles++;
	return f;
}

static void state_forget(struct fstate *f)
{
	table_clear(f);
	close(f->fd);
	*f = g.files[--g.nfiles];
}

/* Write the dirty pages (first len bytes each: len_of) and sync. */
static int flush(struct fstate *f)
{
	for (size_t i = 0; i < f->cap; i++) {
		struct dpage *p = &f->tab[i];
		size_t len = p->data ? page_len(f, p->idx) : 0;

		if (len && pwrite(f->fd, p->data, len, (off_t)(p->idx * PG)) != (ssize_t)len)
			return -EIO;
		g.flushed_pages += len != 0;
	}
	table_clear(f);
	if (ftruncate(f->fd, f->size) || fdatasync(f->fd))
		return -errno;
	return 0;
}

/* ---- the power cut ----------------------------------------------------- */

static void cut_file(struct fstate *f, const char *mode, unsigned *seed)
{
	int some = strcmp(mode, "drop") != 0, torn = !strcmp(mode, "torn");

	g.cut_files += f->n != 0;
	g.cut_writes += f->writes;
	for (size_t i = 0; i < f->cap; i++) {
		struct dpage *p = &f->tab[i];
		size_t len = p->data ? page_len(f, p->idx) : 0;

		if (!len)
			continue;
		if (!some || rand_r(seed) % 2) {
			g.cut_dropped++;
			g.cut_dropped_bytes += len;
			continue;
		}
		if (torn && rand_r(seed) % 2 && len > SECTOR) {
			len = SECTOR * (1 + (size_t)rand_r(seed) % ((len - 1) / SECTOR));
			g.cut_torn++;
		}
		if (pwrite(f->fd, p->data, len, (off_t)(p->idx * PG)) == (ssize_t)len)
			g.cut_applied++;
	}
	fdatasync(f->fd);
	table_clear(f);
}

static int cut(const char *cmd)
{
	char mode[16] = "drop";
	unsigned seed = 1;

	if (strncmp(cmd, "cut", 3))
		return -EINVAL;
	sscanf(cmd, "cut %15s %u", mode, &seed);  /* both optional */
	if (strcmp(mode, "drop") && strcmp(mode, "some") && strcmp(mode, "torn"))
		return -EINVAL;
	while (g.nfiles) {
		cut_file(&g.files[0], mode, &seed);
		state_forget(&g.files[0]);
	}
	g.cuts++;
	g.dead = 1;
	return 0;
}

static int stats(char *buf, size_t cap)
{
	uint64_t dirty = 0;

	for (int i = 0; i < g.nfiles; i++)
		dirty += g.files[i].n;
	return snprintf(buf, cap,
		"{\"writes\":%" PRIu64 ",\"writeBytes\":%" PRIu64 ",\"fsyncs\":%" PRIu64
		",\"flushedPages\":%" PRIu64 ",\"dirtyPages\":%" PRIu64 ",\"dead\":%d"
		",\"cuts\":%" PRIu64 ",\"cutFiles\":%" PRIu64 ",\"cutWrites\":%" PRIu64
		",\"cutDroppedPages\":%" PRIu64 ",\"cutDroppedBytes\":%" PRIu64
		",\"cutAppliedPages\":%" PRIu64 ",\"cutTornPages\":%" PRIu64 "}\n",
		g.writes, g.write_bytes, g.fsyncs, g.flushed_pages, dirty, g.dead, g.cuts,
		g.cut_files, g.cut_writes, g.cut_dropped, g.cut_dropped_bytes, g.cut_applied,
		g.cut_torn);
}

/* ---- operations -------------------------------------------------------- */

#define ALIVE() do { if (g.dead) return -EIO; } while (0)

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	char p[PATH_MAX];
	struct fstate *f;

	if (!strcmp(path, CTL)) {
		memset(st, 0, sizeof(*st));
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		return 0;
	}
	bpath(p, path);
	if (lstat(p, st))
		return -errno;
	if (S_ISREG(st->st_mode) && (f = state_by_ino(st->st_dev, st->st_ino)))
		st->st_size = f->size;
	return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags fl)
{
	char p[PATH_MAX];
	struct dirent *e;
	DIR *d;

	bpath(p, path);
	if (!(d = opendir(p)))
		return -errno;
	while ((e = readdir(d)))
		fill(buf, e->d_name, NULL, 0, 0);
	closedir(d);
	return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	char p[PATH_MAX];
	int fd;

	if (!strcmp(path, CTL)) {
		fi->direct_io = 1;     /* size 0, yet read: skip the page cache */
		fi->fh = (uint64_t)-1;
		return 0;
	}
	ALIVE();
	bpath(p, path);
	/* The kernel does O_TRUNC with a setattr; O_APPEND is not used here. */
	if ((fd = open(p, (fi->flags & O_ACCMODE) == O_WRONLY ? O_RDWR :
		       fi->flags & O_ACCMODE)) < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	if (!state_of(fd)) {
		struct stat st;

		if (!fstat(fd, &st) && S_ISREG(st.st_mode)) {
			close(fd);
			return -ENOMEM;
		}
	}
	return 0;
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	char p[PATH_MAX];
	int fd;

	ALIVE();
	bpath(p, path);
	if ((fd = open(p, O_CREAT | O_RDWR | (fi->flags & O_EXCL), mode)) < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	if (!state_of(fd)) {
		close(fd);
		return -ENOMEM;
	}
	return 0;
}

static int fs_read(const char *path, char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	struct fstate *f;
	size_t done;
	ssize_t r;

	if (fi->fh == (uint64_t)-1) {
		char s[1024];
		int n = stats(s, sizeof(s));

		if (off >= n)
			return 0;
		n = (int)((size_t)(n - off) < size ? (size_t)(n - off) : size);
		memcpy(buf, s + off, (size_t)n);
		return n;
	}
	ALIVE();
	if (!(f = state_of((int)fi->fh)))
		return -EIO;
	if (off >= f->size)
		return 0;
	if ((off_t)size > f->size - off)
		size = (size_t)(f->size - off);
	r = pread((int)fi->fh, buf, size, off);
	if (r < 0)
		return -errno;
	memset(buf + r, 0, size - (size_t)r);
	/* Overlay the dirty pages. */
	for (done = 0; done < size;) {
		uint64_t idx = (uint64_t)(off + (off_t)done) / PG;
		size_t in = (size_t)((off + (off_t)done) % PG);
		size_t n = PG - in < size - done ? PG - in : size - done;
		struct dpage *p = page_find(f, idx);

		if (p && p->data)
			memcpy(buf + done, p->data + in, n);
		done += n;
	}
	return (int)size;
}

static int fs_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fstate *f;
	size_t done;

	if (fi->fh == (uint64_t)-1) {
		char cmd[64];

		snprintf(cmd, sizeof(cmd), "%.*s", (int)(size < 63 ? size : 63), buf);
		return cut(cmd) ? -EINVAL : (int)size;
	}
	ALIVE();
	if (!(f = state_of((int)fi->fh)))
		return -EIO;
	for (done = 0; done < size;) {
		uint64_t idx = (uint64_t)(off + (off_t)done) / PG;
		size_t in = (size_t)((off + (off_t)done) % PG);
		size_t n = PG - in < size - done ? PG - in : size - done;
		unsigned char *d = page_get(f, idx);

		if (!d)
			return -ENOMEM;
		memcpy(d + in, buf + done, n);
		done += n;
	}
	if (off + (off_t)size > f->size)
		f->size = off + (off_t)size;
	f->writes++;
	g.writes++;
	g.write_bytes += size;
	if (fi->flags & (O_SYNC | O_DSYNC)) {
		int r = flush(f);

		if (r)
			return r;
	}
	return (int)size;
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct fstate *f;

	if (fi->fh == (uint64_t)-1)
		return 0;
	ALIVE();
	g.fsyncs++;
	if (!(f = state_of((int)fi->fh)))
		return fsync((int)fi->fh) ? -errno : 0;
	return flush(f);
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	if (fi->fh != (uint64_t)-1)
		close((int)fi->fh);
	return 0;
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	char p[PATH_MAX];
	struct fstate *f;
	int fd;

	if (!strcmp(path, CTL))
		return 0;
	ALIVE();
	bpath(p, path);
	if ((fd = fi ? dup((int)fi->fh) : open(p, O_RDWR)) < 0)
		return -errno;
	f = state_of(fd);
	if (ftruncate(fd, size)) {
		int e = errno;

		close(fd);
		return -e;
	}
	close(fd);
	if (f) {
		/* Dirty data past the new end is gone; the end page is cut. */
		for (size_t i = 0; i < f->cap; i++) {
			struct dpage *d = &f->tab[i];
			off_t start = (off_t)(d->idx * PG);

			if (d->data && start < size && size < start + PG)
				memset(d->data + (size - start), 0, (size_t)(start + PG - size));
		}
		f->size = size;
	}
	return 0;
}

static int fs_unlink(const char *path)
{
	char p[PATH_MAX];
	struct stat st;
	struct fstate *f;

	ALIVE();
	bpath(p, path);
	if (!lstat(p, &st) && st.st_nlink == 1 && (f = state_by_ino(st.st_dev, st.st_ino)))
		state_forget(f);
	return unlink(p) ? -errno : 0;
}

static int fs_mkdir(const char *path, mode_t mode)
{
	char p[PATH_MAX];

	ALIVE();
	bpath(p, path);
	return mkdir(p, mode) ? -errno : 0;
}

static int fs_rmdir(const char *path)
{
	char p[PATH_MAX];

	ALIVE();
	bpath(p, path);
	return rmdir(p) ? -errno : 0;
}

static int fs_rename(const char *from, const char *to, unsigned int flags)
{
	char a[PATH_MAX], b[PATH_MAX];

	ALIVE();
	if (flags)
		return -EINVAL;
	bpath(a, from);
	bpath(b, to);
	return rename(a, b) ? -errno : 0;
}

static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	char p[PATH_MAX];

	ALIVE();
	bpath(p, path);
	return chmod(p, mode) ? -errno : 0;
}

static int fs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	char p[PATH_MAX];

	ALIVE();
	bpath(p, path);
	return lchown(p, uid, gid) ? -errno : 0;
}

static int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	char p[PATH_MAX];

	bpath(p, path);
	return utimensat(AT_FDCWD, p, tv, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

static int fs_statfs(const char *path, struct statvfs *sv)
{
	return statvfs(g.backing, sv) ? -errno : 0;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/* Every write must come here: no kernel write-back cache. Attributes
	 * are not cached, so sizes come from the logical size. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	cfg->attr_timeout = 0;
	cfg->entry_timeout = 0;
	cfg->negative_timeout = 0;
	return NULL;
}

/* A clean unmount writes everything back, as an orderly shutdown does. */
static void fs_destroy(void *data)
{
	char s[1024];

	while (g.nfiles) {
		if (!g.dead)
			flush(&g.files[0]);
		state_forget(&g.files[0]);
	}
	stats(s, sizeof(s));
	fputs(s, g.log ? g.log : stderr);
	if (g.log)
		fclose(g.log);
}

static const struct fuse_operations ops = {
	.init = fs_init, .destroy = fs_destroy,
	.getattr = fs_getattr, .readdir = fs_readdir,
	.open = fs_open, .create = fs_create, .read = fs_read, .write = fs_write,
	.fsync = fs_fsync, .release = fs_release, .truncate = fs_truncate,
	.unlink = fs_unlink, .mkdir = fs_mkdir, .rmdir = fs_rmdir, .rename = fs_rename,
	.chmod = fs_chmod, .chown = fs_chown, .utimens = fs_utimens, .statfs = fs_statfs,
};

int main(int argc, char **argv)
{
	char *fargv[] = { argv[0], argc > 2 ? argv[2] : NULL, "-f", "-s", NULL };

	if (argc < 3 || argc > 4 || !realpath(argv[1], g.backing)) {
		fprintf(stderr, "usage: faultfs BACKING MOUNTPOINT [LOGFILE]\n");
		return 2;
	}
	if (argc == 4 && !(g.log = fopen(argv[3], "a"))) {
		perror(argv[3]);
		return 2;
	}
	umask(0);
	return fuse_main(4, fargv, &ops, NULL);
}
