#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "err.h"
#include "fs.h"

int te_mkdir_p(const char *path, mode_t parent_mode, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0)
		return -EINVAL;
	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, parent_mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int read_fd(int fd, size_t max, char **buf, size_t *len)
{
	struct stat st;
	size_t cap, n = 0;
	char *b = NULL, *nb;
	ssize_t k = 0;
	int r;

	if (fstat(fd, &st))
		return -errno;
	if (!S_ISREG(st.st_mode))
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	if ((uintmax_t)st.st_size > max)
		return -TE_ELIMIT;
	cap = (size_t)st.st_size + 1; /* room to notice growth */
	while (n <= max) {
		if (!b || n == cap) {
			cap = !b ? cap : cap <= max / 2 ? cap * 2 : max + 1;
			if (!(nb = realloc(b, cap))) {
				free(b);
				return -ENOMEM;
			}
			b = nb;
		}
		k = read(fd, b + n, cap - n);
		if (k == 0 || (k < 0 && errno != EINTR))
			break;
		n += k > 0 ? (size_t)k : 0;
	}
	r = k < 0 ? -errno : n > max ? -TE_ELIMIT : 0;
	if (r) {
		free(b);
		b = NULL;
	} else {
		b[n] = '\0';  /* n < cap here: callers may parse it as a string */
	}
	*buf = b;
	*len = n;
	return r;
}

int te_read_file(const char *path, size_t max, char **buf, size_t *len)
{
	int fd, r;

	*buf = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	r = read_fd(fd, max, buf, len);
	close(fd);
	return r;
}

int te_send_pending(int fd, const char *buf, size_t len, size_t *off)
{
	while (*off < len) {
		ssize_t n = send(fd, buf + *off, len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		*off += (size_t)n;
	}
	return 1;
}
