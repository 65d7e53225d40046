/* A module for test/e2e/test_images_run.py, built static at test time: it
 * reports what it sees of its root as one JSON line on stdout, then
 * sleeps (or exits with "once").
 *
 *   probe [once] [PATH-THAT-MUST-BE-ABSENT]...
 *
 * {"root":[...],"status":bool,"absent":bool,"tmp":errno,"root_write":errno,
 *  "data_before":bool,"data":errno}
 * errno 0 = the write worked. /data/mark is looked for, then written. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* pid 1 of its namespace: SIGTERM needs a handler to stop it */
static void on_term(int sig)
{
	(void)sig;
	_exit(0);
}

static int write_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		return errno;
	if (write(fd, "x\n", 2) != 2) {
		close(fd);
		return EIO;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	int once = argc > 1 && !strcmp(argv[1], "once"), absent = 1, i;
	DIR *d = opendir("/");
	struct dirent *e;
	const char *sep = "";

	printf("{\"root\":[");
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		printf("%s\"%s\"", sep, e->d_name);
		sep = ",";
	}
	if (d)
		closedir(d);
	for (i = 1 + once; i < argc; i++)
		if (access(argv[i], F_OK) == 0)
			absent = 0;
	printf("],\"status\":%s,\"absent\":%s,\"tmp\":%d,\"root_write\":%d,",
	       access("/proc/self/status", R_OK) == 0 ? "true" : "false",
	       absent ? "true" : "false", write_file("/tmp/probe"),
	       write_file("/probe-root"));
	printf("\"data_before\":%s,",
	       access("/data/mark", F_OK) == 0 ? "true" : "false");
	printf("\"data\":%d}\n", write_file("/data/mark"));
	fflush(stdout);
	if (once)
		return 0;
	signal(SIGTERM, on_term);
	for (;;)
		pause();
}
