/* Unit tests for src/core/fs.c's te_read_file: whole files, NUL-terminated
 * (callers parse them as C strings: valgrind found strtoll reading the
 * uninitialised spare byte), the size cap, what is not a regular file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "fs.h"
#include "tap.h"

static void write_text(const char *path, const char *text, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (f) {
		fwrite(text, 1, n, f);
		fclose(f);
	}
}

int main(void)
{
	char dir[] = "/tmp/te-fs-XXXXXX", path[64];
	char *buf = (char *)1;
	size_t len = 99;

	TAP_OK(mkdtemp(dir) != NULL, "temp dir");
	snprintf(path, sizeof(path), "%s/f", dir);

	write_text(path, "1700000000", 10);
	TAP_EQ_INT(te_read_file(path, 32, &buf, &len), 0, "a small file reads");
	TAP_EQ_INT((long)len, 10L, "its length");
	TAP_OK(buf && buf[len] == '\0', "NUL-terminated");
	TAP_OK(buf && strtoll(buf, NULL, 10) == 1700000000LL, "parses as a C string");
	free(buf);

	write_text(path, "", 0);
	TAP_EQ_INT(te_read_file(path, 32, &buf, &len), 0, "an empty file reads");
	TAP_OK(buf && len == 0 && buf[0] == '\0', "as an empty string");
	free(buf);

	write_text(path, "0123456789012345678901234567890123", 34);
	TAP_EQ_INT(te_read_file(path, 32, &buf, &len), -TE_ELIMIT, "over max: refused");
	TAP_OK(buf == NULL, "nothing returned");
	write_text(path, "01234567890123456789012345678901", 32);
	TAP_EQ_INT(te_read_file(path, 32, &buf, &len), 0, "exactly max reads");
	TAP_OK(buf && len == 32 && buf[32] == '\0', "and is terminated");
	free(buf);

	TAP_EQ_INT(te_read_file(dir, 32, &buf, &len), -EISDIR, "a directory: -EISDIR");
	TAP_EQ_INT(te_read_file("/dev/null", 32, &buf, &len), -EINVAL, "a device: -EINVAL");
	TAP_EQ_INT(te_read_file("/nonexistent/x", 32, &buf, &len), -ENOENT, "missing: -ENOENT");

	unlink(path);
	rmdir(dir);
	return tap_done();
}
