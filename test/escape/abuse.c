/* The resource abuser (test/e2e/test_abuse.py builds it static and runs it
 * as a module with createOptions.limits): it exhausts one resource, prints
 * one JSON line saying how far it got and why it stopped, then sleeps
 * holding what it took (the memory hog never stops: the OOM killer does).
 *
 *   abuse fork|mem|fd|spin|disk [DIR]
 *
 * {"case":"fork","count":N,"errno":E}   forks until fork fails
 * {"case":"fd","count":N,"errno":E}     opens /dev/null until open fails
 * {"case":"disk","bytes":N,"errno":E}   writes DIR/fill until write fails
 * {"case":"spin"}                       then two processes spin forever
 * {"case":"mem","mib":N}                every 4 MiB touched, until killed */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void on_term(int sig)
{
	(void)sig;
	kill(0, SIGKILL);  /* the children too (same process group) */
	_exit(0);
}

static void hold(void)
{
	for (;;)
		pause();
}

static void do_fork(void)
{
	long n = 0;
	pid_t pid;

	for (;;) {
		pid = fork();
		if (pid == 0)
			hold();
		if (pid < 0)
			break;
		n++;
	}
	printf("{\"case\":\"fork\",\"count\":%ld,\"errno\":%d}\n", n, errno);
}

static void do_fd(void)
{
	long n = 0;

	while (open("/dev/null", O_RDONLY) >= 0)
		n++;
	printf("{\"case\":\"fd\",\"count\":%ld,\"errno\":%d}\n", n, errno);
}

static void do_disk(const char *dir)
{
	static char buf[64 * 1024];
	char path[512];
	long long total = 0;
	ssize_t w;
	int fd, e = 0;

	memset(buf, 'x', sizeof(buf));
	snprintf(path, sizeof(path), "%s/fill", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		printf("{\"case\":\"disk\",\"bytes\":0,\"errno\":%d}\n", errno);
		return;
	}
	for (;;) {
		w = write(fd, buf, sizeof(buf));
		if (w <= 0) {
			e = w < 0 ? errno : ENOSPC;
			break;
		}
		total += w;
	}
	if (fsync(fd) < 0 && !e)
		e = errno;
	printf("{\"case\":\"disk\",\"bytes\":%lld,\"errno\":%d}\n", total, e);
}

static void do_spin(void)
{
	printf("{\"case\":\"spin\"}\n");
	fflush(stdout);
	fork();
	for (volatile unsigned long i = 0;; i++)
		;
}

static void do_mem(void)
{
	const size_t chunk = 1 << 20;
	size_t mib = 0;
	char *p;

	for (;;) {
		p = malloc(chunk);
		if (!p) {
			printf("{\"case\":\"mem\",\"mib\":%zu,\"malloc\":\"failed\"}\n", mib);
			fflush(stdout);
			hold();
		}
		memset(p, 0xa5, chunk);
		if (++mib % 4 == 0) {
			printf("{\"case\":\"mem\",\"mib\":%zu}\n", mib);
			fflush(stdout);
		}
	}
}

int main(int argc, char **argv)
{
	signal(SIGTERM, on_term);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		return 2;
	if (!strcmp(argv[1], "fork"))
		do_fork();
	else if (!strcmp(argv[1], "fd"))
		do_fd();
	else if (!strcmp(argv[1], "disk"))
		do_disk(argc > 2 ? argv[2] : "/data");
	else if (!strcmp(argv[1], "spin"))
		do_spin();
	else if (!strcmp(argv[1], "mem"))
		do_mem();
	else
		return 2;
	fflush(stdout);
	hold();
}
