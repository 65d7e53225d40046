/* Small filesystem helpers. */
#ifndef TE_FS_H
#define TE_FS_H

#include <sys/types.h>

/* mkdir -p: missing parents get parent_mode, the last component mode.
 * Existing directories are left as they are. 0 or -errno. */
int te_mkdir_p(const char *path, mode_t parent_mode, mode_t mode);

#endif
