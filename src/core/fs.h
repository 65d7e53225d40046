/* Small filesystem helpers. */
#ifndef TE_FS_H
#define TE_FS_H

#include <stddef.h>
#include <sys/types.h>

/* mkdir -p: missing parents get parent_mode, the last component mode.
 * Existing directories are left as they are. 0 or -errno. */
int te_mkdir_p(const char *path, mode_t parent_mode, mode_t mode);

/* Reads the regular file path whole into *buf (malloc'd, the caller frees;
 * one spare byte past *len, a NUL: text can be parsed as a string), refusing more than max bytes, also when it
 * grows while being read. 0, -errno (-EISDIR, -EINVAL for not a regular
 * file), -TE_ELIMIT or -ENOMEM; *buf is NULL on failure. */
int te_read_file(const char *path, size_t max, char **buf, size_t *len);

/* Send buf[*off..len) on a non-blocking socket as far as it goes (no
 * SIGPIPE), advancing *off: 1 all sent, 0 it would block (wait for
 * EPOLLOUT), -errno on an error. */
int te_send_pending(int fd, const char *buf, size_t len, size_t *off);

#endif
