#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "tap.h"

static int pipefd[2];

/* Everything written to the log since the last call. */
static const char *drain(void)
{
	static char buf[8192];
	ssize_t n = read(pipefd[0], buf, sizeof(buf) - 1);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

int main(void)
{
	char want[256];
	enum te_log_level l;

	if (pipe2(pipefd, O_NONBLOCK) < 0)
		return 2;
	te_log_set_fd(pipefd[1]);

	te_log_set_level(TE_LOG_INFO);
	te_info("agent", "module %s started", "sensor");
	snprintf(want, sizeof(want), "tinyedge[%d]: INFO agent: module sensor started\n", (int)getpid());
	TAP_EQ_STR(drain(), want, "line format: tinyedge[pid]: LEVEL subsystem: message");

	te_debug("agent", "hidden");
	TAP_EQ_STR(drain(), "", "debug suppressed at info level");
	te_error("hub", "x");
	TAP_OK(strstr(drain(), " ERROR hub: x\n") != NULL, "error passes at info level");

	te_log_set_level(TE_LOG_DEBUG);
	te_debug("agent", "now visible");
	TAP_OK(strstr(drain(), " DEBUG agent: now visible\n") != NULL, "debug shown at debug level");

	te_warn("agent", "two\nlines\tand\x01");
	TAP_OK(strstr(drain(), "WARN agent: two\\nlines\\x09and\\x01\n") != NULL,
	       "control characters escaped: one event, one line");

	char big[3000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	te_info("agent", "%s", big);
	const char *out = drain();
	TAP_OK(strlen(out) < 1200 && out[strlen(out) - 1] == '\n' && !strchr(out, '\n')[1],
	       "a long message is truncated to one line");

	TAP_EQ_INT(te_log_level_parse("warn", &l), 0, "parse warn");
	TAP_EQ_INT(l, TE_LOG_WARN, "warn level");
	TAP_EQ_INT(te_log_level_parse("WARN", &l), -TE_EINVALID, "levels are lower case");
	TAP_EQ_STR(te_log_level_name(TE_LOG_DEBUG), "debug", "level name");
	TAP_EQ_STR(te_strerror(-TE_ELIMIT), "limit exceeded", "te_strerror of our range");
	TAP_EQ_STR(te_strerror(-2), "No such file or directory", "te_strerror of -errno");
	return tap_done();
}
