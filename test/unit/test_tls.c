/* Unit tests for the TLS client (src/upstream/tls.c) against an independent
 * peer: test/pki.sh makes the certificates, `openssl s_server -rev` (echoes
 * each line reversed; "CLOSE" makes it send close_notify) runs as a child
 * process per case, and te_tls is driven with poll() over a non-blocking
 * socket, the way the daemon's loop will drive it. Skipped when openssl is
 * missing. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/err.h"
#include "upstream/tls.h"
#include "upstream/tls_int.h"
#include "tap.h"

#define YEAR 31556952
#define STEP_MS 100
#define DEADLINE_S 10

static char base[] = "/tmp/test_tls.XXXXXX";
static char pki[PATH_MAX];

static const char *path_of(const char *dir, const char *name)
{
	static char path[6][PATH_MAX + 64];
	static unsigned n;
	char *p = path[n++ % 6];

	snprintf(p, sizeof(path[0]), "%s/%s", dir, name);
	return p;
}

static const char *pki_file(const char *name)
{
	return path_of(pki, name);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* Writes (mode "w") or appends ("a") the file src, then text, to path. */
static void cat_files(const char *path, const char *mode, const char *src, const char *text)
{
	char buf[8192];
	FILE *in = fopen(src, "r"), *out = fopen(path, mode);
	size_t n;

	while (in && out && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, n, out);
	if (out) {
		fputs(text, out);
		fclose(out);
	}
	if (in)
		fclose(in);
}

/* test/pki.sh, looked for from the working directory, then upwards from
 * this program (build/test/test_tls). */
static int find_pki_script(char *out, size_t cap)
{
	char exe[PATH_MAX];
	ssize_t n;

	if (access("test/pki.sh", X_OK) == 0)
		return snprintf(out, cap, "test/pki.sh") < 0 ? -1 : 0;
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) < 0)
		return -1;
	exe[n] = '\0';
	for (char *slash; (slash = strrchr(exe, '/')) && slash != exe;) {
		*slash = '\0';
		snprintf(out, cap, "%s/test/pki.sh", exe);
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -1;
}

static int run_wait(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int make_pki(void)
{
	char script[PATH_MAX];
	pid_t pid;

	if (find_pki_script(script, sizeof(script)))
		return -1;
	snprintf(pki, sizeof(pki), "%s/pki", base);
	if ((pid = fork()) == 0) {
		execl("/bin/sh", "sh", script, pki, (char *)NULL);
		_exit(127);
	}
	return pid < 0 ? -1 : run_wait(pid);
}

static bool have_openssl(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(null, 2);
		execlp("openssl", "openssl", "version", (char *)NULL);
		_exit(127);
	}
	return pid > 0 && run_wait(pid) == 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the peer: openssl s_server ---------------------------------------- */

struct server {
	pid_t pid;
	int port;
	int out; /* its stdout, kept open so it never writes to a closed pipe */
};

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* Waits for "ACCEPT" on the server's stdout: it listens. */
static bool server_listening(int out)
{
	char buf[4096];
	size_t n = 0;
	uint64_t end = now_ms() + DEADLINE_S * 1000;
	struct pollfd p = { .fd = out, .events = POLLIN };
	ssize_t k;

	while (now_ms() < end && n < sizeof(buf) - 1) {
		if (poll(&p, 1, STEP_MS) <= 0)
			continue;
		if ((k = read(out, buf + n, sizeof(buf) - 1 - n)) <= 0)
			return false;
		n += (size_t)k;
		buf[n] = '\0';
		if (strstr(buf, "ACCEPT"))
			return true;
	}
	return false;
}

static void server_exec(const struct server *s, int out, const char *cert, bool verify)
{
	char accept[32], key[PATH_MAX];
	int log = open(path_of(base, "s_server.log"), O_WRONLY | O_CREAT | O_APPEND, 0600);

	snprintf(accept, sizeof(accept), "127.0.0.1:%d", s->port);
	snprintf(key, sizeof(key), "%.*s.key", (int)(strlen(cert) - 4), cert);
	dup2(out, 1);
	dup2(log, 2);
	execlp("openssl", "openssl", "s_server", "-accept", accept, "-cert", cert, "-key", key,
	       "-CAfile", pki_file("ca.pem"), "-tls1_2", "-rev", "-naccept", "1",
	       verify ? "-Verify" : (char *)NULL, "1", (char *)NULL);
	_exit(127);
}

/* s_server with cert NAME.pem (and NAME.key); verify: a client certificate
 * is required. */
static int server_start(struct server *s, const char *name, bool verify)
{
	char cert[PATH_MAX];

	snprintf(cert, sizeof(cert), "%s", pki_file(name));
	for (int attempt = 0; attempt < 5; attempt++) { /* the port may be taken meanwhile */
		int p[2];

		if ((s->port = free_port()) < 0 || pipe2(p, O_CLOEXEC))
			return -1;
		if ((s->pid = fork()) == 0)
			server_exec(s, p[1], cert, verify);
		close(p[1]);
		s->out = p[0];
		if (s->pid > 0 && server_listening(s->out))
			return 0;
		kill(s->pid, SIGKILL);
		run_wait(s->pid);
		close(s->out);
	}
	return -1;
}

static void server_stop(struct server *s)
{
	if (s->pid <= 0)
		return;
	kill(s->pid, SIGTERM);
	run_wait(s->pid);
	close(s->out);
	s->pid = 0;
}

static int connect_to(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), err = 0;
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(err);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) && errno != EINPROGRESS)
		goto fail;
	if (poll(&p, 1, DEADLINE_S * 1000) != 1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) || err)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

/* ---- driving the session ----------------------------------------------- */

static void wait_events(struct te_tls *t, int fd, uint32_t extra)
{
	struct pollfd p = { .fd = fd, .events = (short)(te_tls_events(t) | extra) };

	poll(&p, 1, STEP_MS);
}

/* Until the handshake is done: 0, or the failure. */
static int handshake(struct te_tls *t, int fd)
{
	uint64_t end = now_ms() + DEADLINE_S * 1000;
	char c;

	while (now_ms() < end) {
		ssize_t r = te_tls_flush(t);

		if (r == 0 || r == -EAGAIN)
			r = te_tls_read(t, &c, 1);
		if (r >= 0)
			return r == 0 ? -EPIPE : -EPROTO; /* the server does not speak first */
		if (r != -EAGAIN)
			return (int)r;
		if (te_tls_ready(t))
			return 0;
		wait_events(t, fd, 0);
	}
	return -ETIMEDOUT;
}

/* Sends out[0..len) and reads until want bytes came back: 0 or the error
 * (-EPIPE for a clean close before that). */
static int exchange(struct te_tls *t, int fd, const char *out, size_t len, char *in, size_t want)
{
	uint64_t end = now_ms() + DEADLINE_S * 1000;
	size_t sent = 0, got = 0;

	while (got < want && now_ms() < end) {
		ssize_t k = sent < len ? te_tls_write(t, out + sent, len - sent) : -EAGAIN;

		if (k > 0)
			sent += (size_t)k;
		else if (k != -EAGAIN)
			return (int)k;
		if ((k = te_tls_flush(t)) && k != -EAGAIN)
			return (int)k;
		k = te_tls_read(t, in + got, want - got);
		if (k > 0)
			got += (size_t)k;
		else if (k == 0)
			return -EPIPE;
		else if (k != -EAGAIN)
			return (int)k;
		else
			wait_events(t, fd, 0);
	}
	return got == want ? 0 : -ETIMEDOUT;
}

/* One line each way: "hello LABEL\n" comes back reversed. */
static bool echo_ok(struct te_tls *t, int fd, const char *label)
{
	char out[128], in[128], want[128];
	size_t n = (size_t)snprintf(out, sizeof(out), "hello %s\n", label);
	int r;

	for (size_t i = 0; i + 1 < n; i++)
		want[i] = out[n - 2 - i];
	want[n - 1] = '\n';
	r = exchange(t, fd, out, n, in, n);
	if (r)
		printf("# exchange: %s; %s\n", te_strerror(r), te_tls_error(t));
	return r == 0 && memcmp(in, want, n) == 0;
}

struct session {
	struct server srv;
	int fd;
	int rc; /* the handshake's */
};

/* Starts s_server with cert NAME and runs a handshake with t. */
static void session_open(struct session *s, struct te_tls *t, const char *name, bool verify)
{
	s->fd = -1;
	s->rc = -1;
	if (server_start(&s->srv, name, verify)) {
		printf("# s_server %s did not start (see %s/s_server.log)\n", name, base);
		return;
	}
	if ((s->fd = connect_to(s->srv.port)) < 0 || (s->rc = te_tls_start(t, s->fd)))
		return;
	s->rc = handshake(t, s->fd);
	if (s->rc)
		printf("# handshake with %s: %s; %s\n", name, te_strerror(s->rc), te_tls_error(t));
}

static void session_close(struct session *s, struct te_tls *t)
{
	te_tls_close(t);
	if (s->fd >= 0)
		close(s->fd);
	server_stop(&s->srv);
}

static struct te_tls *tls_new(const char *ca, const char *cert, const char *key, int64_t floor)
{
	struct te_tls_config c = { .ca_file = ca, .cert_file = cert, .key_file = key,
				   .server_name = "localhost", .time_floor = floor };
	char err[TE_TLS_ERR_MAX];
	struct te_tls *t = NULL;
	int r = te_tls_new(&t, &c, err, sizeof(err));

	if (r)
		printf("# te_tls_new: %s\n", err);
	return t;
}

/* A handshake with server NAME that must fail with -TE_ETLS and a message
 * containing want. */
static void refused(const char *what, const char *name, int64_t floor, const char *want)
{
	struct te_tls *t = tls_new(pki_file("ca.pem"), NULL, NULL, floor);
	struct session s;

	if (!t) {
		TAP_OK(0, "%s: client", what);
		return;
	}
	session_open(&s, t, name, false);
	TAP_EQ_INT(s.rc, -TE_ETLS, "%s: refused", what);
	TAP_OK(strstr(te_tls_error(t), want) != NULL, "%s: \"%s\"", what, te_tls_error(t));
	TAP_EQ_INT(te_tls_read(t, (char[1]){ 0 }, 1), -TE_ETLS, "%s: the error sticks", what);
	TAP_EQ_INT(te_tls_events(t), 0, "%s: no events after the failure", what);
	session_close(&s, t);
	te_tls_free(t);
}

/* ---- cases ---------------------------------------------------------------- */

static void test_good(void)
{
	struct te_tls *t = tls_new(pki_file("ca.pem"), NULL, NULL, 0);
	struct session s;
	char big[16384], in[16384], line[65];
	char c;

	TAP_OK(t != NULL, "good: te_tls_new with the test CA");
	if (!t)
		return;
	TAP_EQ_INT(t->n_anchors, 1, "good: one trust anchor");
	TAP_EQ_INT(te_tls_read(t, &c, 1), -ENOTCONN, "good: read before start");
	TAP_EQ_INT(te_tls_events(t), 0, "good: no events before start");
	TAP_OK(!te_tls_ready(t), "good: not ready before start");

	session_open(&s, t, "server.pem", false);
	TAP_EQ_INT(s.rc, 0, "good: handshake with an ECDSA server");
	TAP_OK(te_tls_ready(t), "good: ready");
	TAP_OK(!te_tls_time_floored(t), "good: clock not floored");
	TAP_EQ_STR(te_tls_error(t), "", "good: no error text");
	TAP_OK(echo_ok(t, s.fd, "tls"), "good: one line round trip");

	/* 16 KiB in 256 lines: several records each way, partial writes. */
	for (size_t i = 0; i < sizeof(big); i += 64) {
		snprintf(line, sizeof(line), "%062zu", i);
		memcpy(big + i, line, 63);
		big[i + 63] = '\n';
	}
	TAP_EQ_INT(exchange(t, s.fd, big, sizeof(big), in, sizeof(in)), 0, "good: 16 KiB round trip");
	TAP_OK(in[0] == big[62] && in[62] == big[0] && in[63] == '\n', "good: 16 KiB reversed");

	/* "CLOSE": s_server answers and sends close_notify. */
	TAP_EQ_INT(exchange(t, s.fd, "CLOSE\n", 6, in, sizeof(in)), -EPIPE,
		   "good: the server's close_notify ends the exchange");
	TAP_EQ_INT(te_tls_read(t, &c, 1), 0, "good: read after close_notify returns 0");
	TAP_EQ_INT(te_tls_write(t, "x", 1), -EPIPE, "good: write after close_notify is -EPIPE");
	TAP_OK(!te_tls_ready(t), "good: not ready once closed");
	session_close(&s, t);
	TAP_EQ_INT(te_tls_read(t, &c, 1), -ENOTCONN, "good: read after te_tls_close");

	/* The same client again (a reconnect), to an RSA server. */
	session_open(&s, t, "server-rsa.pem", false);
	TAP_EQ_INT(s.rc, 0, "reconnect: handshake with an RSA server");
	TAP_OK(echo_ok(t, s.fd, "again"), "reconnect: round trip");
	session_close(&s, t);
	te_tls_free(t);
}

static void test_refused(void)
{
	refused("expired", "expired.pem", 0, "certificate expired or not yet valid");
	refused("wrong name", "wrongname.pem", 0, "certificate does not match localhost");
	refused("second CA, same name", "other.pem", 0, "certificate not signed by a trusted CA");
	/* The floor beyond the server certificate's notAfter (10 years). */
	refused("floor past notAfter", "server.pem", time(NULL) + 20 * (int64_t)YEAR,
		"certificate expired or not yet valid");
}

static void test_time_floor(void)
{
	struct te_tls *t = tls_new(pki_file("ca.pem"), NULL, NULL, time(NULL) + 20 * (int64_t)YEAR);
	struct session s;

	if (!t)
		return;
	session_open(&s, t, "server.pem", false);
	TAP_OK(te_tls_time_floored(t), "floor past notAfter: te_tls_time_floored");
	session_close(&s, t);
	te_tls_free(t);

	/* A floor ahead of the clock but inside the validity: floored, valid. */
	t = tls_new(pki_file("ca.pem"), NULL, NULL, time(NULL) + 30 * 86400);
	if (!t)
		return;
	session_open(&s, t, "server.pem", false);
	TAP_EQ_INT(s.rc, 0, "floor within validity: handshake");
	TAP_OK(te_tls_time_floored(t), "floor within validity: floored");
	session_close(&s, t);
	te_tls_free(t);

	t = tls_new(pki_file("ca.pem"), NULL, NULL, time(NULL) - 86400);
	if (!t)
		return;
	session_open(&s, t, "server.pem", false);
	TAP_EQ_INT(s.rc, 0, "floor behind the clock: handshake");
	TAP_OK(!te_tls_time_floored(t), "floor behind the clock: not floored");
	session_close(&s, t);
	te_tls_free(t);
}

static void client_cert(const char *what, const char *cert, const char *key)
{
	struct te_tls *t = tls_new(pki_file("ca.pem"), cert ? pki_file(cert) : NULL,
				   key ? pki_file(key) : NULL, 0);
	struct session s;

	TAP_OK(t != NULL, "%s: te_tls_new", what);
	if (!t)
		return;
	session_open(&s, t, "server.pem", true);
	if (cert) {
		TAP_EQ_INT(s.rc, 0, "%s: handshake", what);
		TAP_OK(echo_ok(t, s.fd, what), "%s: round trip", what);
	} else {
		/* The refusal comes with the server's Finished or after it,
		 * depending on timing: handshake or the first exchange. */
		int r = s.rc ? s.rc : echo_ok(t, s.fd, what) ? 0 : -1;

		TAP_OK(r != 0, "%s: refused", what);
		TAP_OK(te_tls_error(t)[0] != '\0', "%s: reported: \"%s\"", what, te_tls_error(t));
	}
	session_close(&s, t);
	te_tls_free(t);
}

static void test_client_cert(void)
{
	client_cert("client EC key (SEC1)", "client.pem", "client.key");
	client_cert("client RSA key (PKCS#8)", "client-rsa.pem", "client-rsa.key");
	client_cert("no client certificate", NULL, NULL);
}

/* te_tls_new's error for a config; the message must contain want. */
static void new_fails(const char *what, const struct te_tls_config *c, int code, const char *want)
{
	char err[TE_TLS_ERR_MAX] = "";
	struct te_tls *t = (struct te_tls *)1;
	int r = te_tls_new(&t, c, err, sizeof(err));

	TAP_EQ_INT(r, code, "%s: te_tls_new fails", what);
	TAP_OK(t == NULL, "%s: no client", what);
	TAP_OK(strstr(err, want) != NULL, "%s: \"%s\"", what, err);
}

static void test_new_errors(void)
{
	char missing[PATH_MAX + 64], garbage[PATH_MAX + 64], badpem[PATH_MAX + 64],
		enc[PATH_MAX + 64], nokey[PATH_MAX + 64], msg[PATH_MAX + 200];
	struct te_tls_config c = { .server_name = "localhost" };

	snprintf(missing, sizeof(missing), "%s", path_of(base, "missing.pem"));
	snprintf(garbage, sizeof(garbage), "%s", path_of(base, "garbage.pem"));
	snprintf(badpem, sizeof(badpem), "%s", path_of(base, "bad.pem"));
	snprintf(enc, sizeof(enc), "%s", path_of(base, "enc.key"));
	snprintf(nokey, sizeof(nokey), "%s", path_of(base, "nokey.key"));
	write_file(garbage, "this is not a certificate\n\x01\x02\x03\n");
	write_file(badpem, "-----BEGIN CERTIFICATE-----\nMIIB!!notbase64\n-----END CERTIFICATE-----\n");
	write_file(enc, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n");
	write_file(nokey, "nothing here\n");

	c.ca_file = missing;
	snprintf(msg, sizeof(msg), "%s: No such file or directory", missing);
	new_fails("ca_file missing", &c, -ENOENT, msg);
	c.ca_file = garbage;
	snprintf(msg, sizeof(msg), "%s: no certificate found", garbage);
	new_fails("ca_file garbage", &c, -TE_EINVALID, msg);
	c.ca_file = badpem;
	snprintf(msg, sizeof(msg), "%s: ", badpem);
	new_fails("ca_file broken PEM", &c, -TE_EMALFORMED, msg);
	c.ca_file = base;
	new_fails("ca_file a directory", &c, -EISDIR, "Is a directory");
	snprintf(badpem, sizeof(badpem), "%s", path_of(base, "bad2.pem"));
	cat_files(badpem, "w", pki_file("ca.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
	c.ca_file = badpem;
	snprintf(msg, sizeof(msg), "%s: certificate 2: ", badpem);
	new_fails("ca_file with an undecodable certificate", &c, -TE_EMALFORMED, msg);

	/* Weak trust anchors: refused by name in a CA file (the system
	 * bundle skips them), also after a good one. */
	snprintf(msg, sizeof(msg), "%s: certificate 1: RSA key of 1024 bits (at least 2048)",
		 pki_file("weakca.pem"));
	c.ca_file = pki_file("weakca.pem");
	new_fails("ca_file with an RSA 1024 CA", &c, -TE_EINVALID, msg);
	c.ca_file = pki_file("p224ca.pem");
	new_fails("ca_file with a P-224 CA", &c, -TE_EMALFORMED, "certificate 1: unsupported");
	cat_files(badpem, "w", pki_file("ca.pem"), "");
	cat_files(badpem, "a", pki_file("weakca.pem"), "");
	c.ca_file = badpem;
	snprintf(msg, sizeof(msg), "%s: certificate 2: RSA key of 1024 bits", badpem);
	new_fails("ca_file with a weak CA after a good one", &c, -TE_EINVALID, msg);

	c.ca_file = pki_file("ca.pem");
	c.server_name = NULL;
	new_fails("server name NULL", &c, -EINVAL, "server name is required");
	c.server_name = "";
	new_fails("server name empty", &c, -EINVAL, "server name is required");
	c.server_name = "localhost";

	c.cert_file = pki_file("client.pem");
	new_fails("cert without key", &c, -EINVAL, "both a certificate and a key");
	c.key_file = pki_file("client-rsa.key");
	snprintf(msg, sizeof(msg), "client-rsa.key: does not match %s", pki_file("client.pem"));
	new_fails("key of another certificate", &c, -TE_EINVALID, msg);
	c.key_file = pki_file("server.key"); /* the same key type, another key */
	new_fails("EC key of another certificate", &c, -TE_EINVALID, "does not match");
	c.key_file = enc;
	new_fails("encrypted key", &c, -TE_EINVALID, "encrypted keys are not supported");
	c.key_file = nokey;
	new_fails("no key in the file", &c, -TE_EINVALID, "no private key found");
	c.cert_file = garbage;
	c.key_file = pki_file("client.key");
	new_fails("client cert garbage", &c, -TE_EINVALID, "no certificate found");
}

/* Two CAs with the same name in one bundle, text around them: both are
 * anchors, and each verifies what it signed. */
static void test_bundle(void)
{
	char bundle[PATH_MAX + 64];
	struct te_tls *t;
	struct session s;

	snprintf(bundle, sizeof(bundle), "%s", path_of(base, "bundle.pem"));
	cat_files(bundle, "w", pki_file("ca.pem"), "# the second CA, with the same name\r\n\n");
	cat_files(bundle, "a", pki_file("ca2.pem"), "");
	if (!(t = tls_new(bundle, NULL, NULL, 0))) {
		TAP_OK(0, "bundle: te_tls_new");
		return;
	}
	TAP_EQ_INT(t->n_anchors, 2, "bundle: two trust anchors");
	session_open(&s, t, "other.pem", false);
	TAP_EQ_INT(s.rc, 0, "bundle: the second CA's server");
	session_close(&s, t);
	session_open(&s, t, "server.pem", false);
	TAP_EQ_INT(s.rc, 0, "bundle: the first CA's server");
	session_close(&s, t);
	te_tls_free(t);
}

static void test_system_bundle(void)
{
	struct te_tls_config c = { .server_name = "localhost" };
	char err[TE_TLS_ERR_MAX];
	struct te_tls *t = NULL;
	struct session s;

	if (access(TE_TLS_SYSTEM_CA1, R_OK) && access(TE_TLS_SYSTEM_CA2, R_OK)) {
		printf("ok %u - # SKIP no system CA bundle\n", ++tap_n);
		return;
	}
	TAP_EQ_INT(te_tls_new(&t, &c, err, sizeof(err)), 0, "system bundle loads");
	if (!t) {
		printf("# %s\n", err);
		return;
	}
	TAP_OK(t->n_anchors > 50, "system bundle: %zu trust anchors", t->n_anchors);
	session_open(&s, t, "server.pem", false);
	TAP_EQ_INT(s.rc, -TE_ETLS, "system bundle: the test CA is not trusted");
	TAP_OK(strstr(te_tls_error(t), "not signed by a trusted CA") != NULL, "system bundle: \"%s\"",
	       te_tls_error(t));
	session_close(&s, t);
	te_tls_free(t);
}

/* A TCP peer that accepts and closes: no TLS at all. */
static void test_peer_closes(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), fd, afd = -1;
	struct te_tls *t = tls_new(pki_file("ca.pem"), NULL, NULL, 0);

	if (!t || lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&a, &len)) {
		TAP_OK(0, "peer closes: setup");
		goto out;
	}
	fd = connect_to(ntohs(a.sin_port));
	afd = accept(lfd, NULL, NULL);
	shutdown(afd, SHUT_WR); /* EOF for the client; its sends still land */
	TAP_EQ_INT(te_tls_start(t, fd), 0, "peer closes: start");
	TAP_EQ_INT(handshake(t, fd), -ECONNRESET, "peer closes: -ECONNRESET");
	TAP_EQ_STR(te_tls_error(t), "connection closed by the server during the handshake",
		   "peer closes: message");
	te_tls_close(t);
	close(fd);
	close(afd);
out:
	if (lfd >= 0)
		close(lfd);
	te_tls_free(t);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	return remove(p);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0); /* no duplicated output after fork */
	signal(SIGPIPE, SIG_IGN);         /* te_tls uses MSG_NOSIGNAL; the pipes do not */
	alarm(240);
	if (!have_openssl()) {
		printf("1..0 # SKIP openssl not found\n");
		return 0;
	}
	if (!mkdtemp(base))
		return 2;
	if (make_pki() != 0) {
		TAP_OK(0, "test/pki.sh");
	} else {
		TAP_OK(make_pki() == 0 && access(pki_file("ca.pem"), R_OK) == 0,
		       "test/pki.sh (run twice: idempotent)");
		test_new_errors();
		test_good();
		test_refused();
		test_time_floor();
		test_client_cert();
		test_bundle();
		test_system_bundle();
		test_peer_closes();
	}
	nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
