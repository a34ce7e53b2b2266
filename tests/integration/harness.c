/*
 * Integration test harness (see harness.h). Processes are started with
 * fork/exec into their own process group and stopped by PID; nothing here
 * looks processes up by name.
 *
 * Nothing outlives the test binary: every child dies with it
 * (PR_SET_PDEATHSIG), every process group still registered is killed at
 * exit and on SIGTERM/SIGINT/SIGHUP/SIGQUIT (tests/run.sh's timeout), and
 * a stopped process's whole group goes with it (HAProxy's worker, say).
 */
#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>
#include <curl/curl.h>

static int used_ports[4096];
static int nused;

/* Process groups (= leader pids) started by h_spawn and not stopped yet,
 * read by the signal handler. */
#define H_MAX_LIVE 256
static volatile pid_t live[H_MAX_LIVE];

static void live_add(pid_t pid)
{
	int i;

	for (i = 0; i < H_MAX_LIVE; i++)
		if (live[i] == 0) {
			live[i] = pid;
			return;
		}
}

static void live_del(pid_t pid)
{
	int i;

	for (i = 0; i < H_MAX_LIVE; i++)
		if (live[i] == pid)
			live[i] = 0;
}

/* Async-signal-safe: SIGKILL to every group still registered. */
static void kill_live(void)
{
	int i;

	for (i = 0; i < H_MAX_LIVE; i++)
		if (live[i] > 0)
			kill(-live[i], SIGKILL);
}

static void on_fatal_signal(int sig)
{
	kill_live();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Once per binary: reap every stack at exit (a failed assertion that
 * skipped a teardown included) and on the signals that end a test. */
static void install_reaper(void)
{
	static int done;
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT };
	struct sigaction sa;
	size_t i;

	if (done)
		return;
	done = 1;
	atexit(kill_live);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fatal_signal;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fail_msg("harness: %s", msg);
}

double h_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int h_free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd, port, i, tries;

	for (tries = 0; tries < 100; tries++) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			return -1;
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
			close(fd);
			return -1;
		}
		close(fd);
		port = ntohs(sa.sin_port);
		/* UDP too: dnsmasq needs both on its port. */
		fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (fd >= 0) {
			int ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

			close(fd);
			if (!ok)
				continue;
		}
		for (i = 0; i < nused; i++)
			if (used_ports[i] == port)
				break;
		if (i < nused)
			continue;
		if (nused < (int)(sizeof(used_ports) / sizeof(used_ports[0])))
			used_ports[nused++] = port;
		return port;
	}
	return -1;
}

static const char *build_dir(void)
{
	const char *b = getenv("BUILD");

	return b && *b ? b : "build";
}

const char *h_bin(const char *name)
{
	static char bufs[8][PATH_MAX];
	static int slot;
	char *b = bufs[slot++ % 8];
	char cwd[PATH_MAX];

	if (!getcwd(cwd, sizeof(cwd)))
		cwd[0] = '\0';
	if (build_dir()[0] == '/')
		snprintf(b, PATH_MAX, "%s/bin/%s", build_dir(), name);
	else
		snprintf(b, PATH_MAX, "%s/%s/bin/%s", cwd, build_dir(), name);
	return b;
}

void h_set_var(struct h_stack *s, const char *name, const char *fmt, ...)
{
	char val[4096];
	va_list ap;
	int i;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	for (i = 0; i < s->nvars; i++)
		if (strcmp(s->var_names[i], name) == 0) {
			free(s->var_values[i]);
			s->var_values[i] = strdup(val);
			return;
		}
	if (s->nvars == H_MAX_VARS)
		die("too many template variables");
	s->var_names[s->nvars] = strdup(name);
	s->var_values[s->nvars] = strdup(val);
	s->nvars++;
}

static void mkdir_p(const char *path)
{
	char tmp[PATH_MAX];
	char *p;

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, 0755);
			*p = '/';
		}
	mkdir(tmp, 0755);
}

void h_stack_init(struct h_stack *s, const char *test)
{
	char cwd[PATH_MAX];
	char tmpl[] = "/tmp/spogate-test-XXXXXX";

	memset(s, 0, sizeof(*s));
	signal(SIGPIPE, SIG_IGN);
	install_reaper();
	snprintf(s->test, sizeof(s->test), "%s", test);
	if (!mkdtemp(tmpl))
		die("mkdtemp: %s", strerror(errno));
	snprintf(s->dir, sizeof(s->dir), "%s", tmpl);
	if (!getcwd(cwd, sizeof(cwd)))
		die("getcwd");
	if ((build_dir()[0] == '/' ?
	     snprintf(s->logdir, sizeof(s->logdir), "%s/test-logs/%s", build_dir(), test) :
	     snprintf(s->logdir, sizeof(s->logdir), "%s/%s/test-logs/%s", cwd, build_dir(), test))
	    >= (int)sizeof(s->logdir))
		die("log dir path too long");
	mkdir_p(s->logdir);
	/* logs of an earlier run would satisfy h_wait_log() too early */
	h_run(NULL, "rm -f '%s'/*.log", s->logdir);
	s->http_port = h_free_port();
	s->agent_port = h_free_port();
	s->metrics_port = h_free_port();
	s->echo_port = h_free_port();
	s->stats_port = h_free_port();
	s->redis_port = h_free_port();
	s->dns_port = h_free_port();
	s->refsvc_port = h_free_port();
	s->refsvc_admin_port = h_free_port();
	h_set_var(s, "DIR", "%s", s->dir);
	h_set_var(s, "ROOT", "%s", cwd);
	h_set_var(s, "BIN", "%s", h_bin(""));
	h_set_var(s, "HTTP_PORT", "%d", s->http_port);
	h_set_var(s, "AGENT_PORT", "%d", s->agent_port);
	h_set_var(s, "METRICS_PORT", "%d", s->metrics_port);
	h_set_var(s, "ECHO_PORT", "%d", s->echo_port);
	h_set_var(s, "STATS_PORT", "%d", s->stats_port);
	h_set_var(s, "REDIS_PORT", "%d", s->redis_port);
	h_set_var(s, "DNS_PORT", "%d", s->dns_port);
	h_set_var(s, "REFSVC_PORT", "%d", s->refsvc_port);
	h_set_var(s, "REFSVC_ADMIN_PORT", "%d", s->refsvc_admin_port);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf) {
		buf[n] = '\0';
		if (len)
			*len = (size_t)n;
	}
	return buf;
}

static const char *abs_in(struct h_stack *s, const char *name)
{
	static char bufs[4][PATH_MAX];
	static int slot;
	char *b = bufs[slot++ % 4];

	if (name[0] == '/')
		snprintf(b, PATH_MAX, "%s", name);
	else
		snprintf(b, PATH_MAX, "%s/%s", s->dir, name);
	return b;
}

const char *h_render(struct h_stack *s, const char *src, const char *dst)
{
	size_t len, i, o = 0, cap;
	char *in = slurp(src, &len), *out;
	const char *path = abs_in(s, dst);
	FILE *f;

	if (!in)
		die("cannot read template %s", src);
	cap = len * 2 + 4096;
	out = malloc(cap);
	for (i = 0; i < len; ) {
		if (in[i] == '@') {
			size_t j = i + 1;
			int k;

			while (j < len && (isupper((unsigned char)in[j]) || isdigit((unsigned char)in[j]) ||
			                   in[j] == '_'))
				j++;
			if (j < len && in[j] == '@' && j > i + 1) {
				for (k = 0; k < s->nvars; k++)
					if (strlen(s->var_names[k]) == j - i - 1 &&
					    memcmp(s->var_names[k], in + i + 1, j - i - 1) == 0)
						break;
				if (k == s->nvars)
					die("%s: unknown template variable %.*s", src, (int)(j - i - 1), in + i + 1);
				{
					size_t vl = strlen(s->var_values[k]);

					while (o + vl + 1 > cap)
						out = realloc(out, cap *= 2);
					memcpy(out + o, s->var_values[k], vl);
					o += vl;
				}
				i = j + 1;
				continue;
			}
		}
		if (o + 2 > cap)
			out = realloc(out, cap *= 2);
		out[o++] = in[i++];
	}
	f = fopen(path, "wb");
	if (!f || fwrite(out, 1, o, f) != o)
		die("cannot write %s", path);
	fclose(f);
	free(in);
	free(out);
	return path;
}

const char *h_write(struct h_stack *s, const char *name, const char *fmt, ...)
{
	const char *path = abs_in(s, name);
	va_list ap;
	FILE *f = fopen(path, "wb");

	if (!f)
		die("cannot write %s", path);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
	return path;
}

struct h_proc *h_spawn(struct h_stack *s, const char *name, char *const argv[])
{
	struct h_proc *p;
	pid_t pid, parent = getpid();
	int fd;

	install_reaper();
	if (s->nprocs == H_MAX_PROCS)
		die("too many processes");
	p = &s->procs[s->nprocs++];
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	if (snprintf(p->log, sizeof(p->log), "%s/%s.log", s->logdir, name) >= (int)sizeof(p->log))
		die("log path too long");
	fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0)
		die("open %s: %s", p->log, strerror(errno));
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		setpgid(0, 0);
		/* Dies with the test, even by SIGKILL; the test may already be
		 * gone by the time this line runs. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fd);
	/* The group exists before the parent goes on (no race with kill). */
	setpgid(pid, pid);
	p->pid = pid;
	live_add(pid);
	return p;
}

int h_wait_port(int port, int timeout_ms)
{
	double end = h_now_ms() + timeout_ms;
	struct sockaddr_in sa;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	while (h_now_ms() < end) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		int ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

		close(fd);
		if (ok)
			return 0;
		usleep(20000);
	}
	return -1;
}

int h_wait_log(const struct h_proc *p, const char *needle, int timeout_ms)
{
	double end = h_now_ms() + timeout_ms;

	while (h_now_ms() < end) {
		char *log = slurp(p->log, NULL);
		int found = log && strstr(log, needle);

		free(log);
		if (found)
			return 0;
		usleep(20000);
	}
	return -1;
}

/* Reaps p once it has exited; before that, while p is a zombie its pid
 * cannot be reused, so what is left of its group (children it forked) is
 * killed without risk of hitting another process. */
static int reap(struct h_proc *p, int *st)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid != p->pid)
		return 0;
	kill(-p->pid, SIGKILL);
	waitpid(p->pid, st, 0);
	live_del(p->pid);
	p->pid = 0;
	return 1;
}

int h_alive(struct h_proc *p)
{
	int st;

	if (p->pid <= 0)
		return 0;
	return !reap(p, &st);
}

int h_signal(struct h_proc *p, int sig)
{
	return p->pid > 0 ? kill(p->pid, sig) : -1;
}

int h_stop(struct h_proc *p, int timeout_ms)
{
	double end;
	int st;

	if (p->pid <= 0)
		return -1;
	kill(p->pid, SIGTERM);
	end = h_now_ms() + timeout_ms;
	while (h_now_ms() < end) {
		if (reap(p, &st))
			return st;
		usleep(10000);
	}
	kill(-p->pid, SIGKILL);
	waitpid(p->pid, &st, 0);
	live_del(p->pid);
	p->pid = 0;
	return -1;
}

void h_stack_stop(struct h_stack *s)
{
	const char *keep = getenv("H_KEEP");
	int i;

	for (i = s->nprocs - 1; i >= 0; i--)
		if (s->procs[i].pid > 0)
			h_stop(&s->procs[i], 5000);
	s->nprocs = 0;
	if (!(keep && strcmp(keep, "1") == 0) && s->dir[0] &&
	    strncmp(s->dir, "/tmp/spogate-test-", 18) == 0) {
		char *argv[] = { (char *)"/bin/rm", (char *)"-rf", s->dir, NULL };
		pid_t pid = fork();

		if (pid == 0) {
			execv(argv[0], argv);
			_exit(127);
		}
		if (pid > 0)
			waitpid(pid, NULL, 0);
	}
	for (i = 0; i < s->nvars; i++) {
		free(s->var_names[i]);
		free(s->var_values[i]);
	}
	s->nvars = 0;
}

struct h_proc *h_start_echo(struct h_stack *s, const char *name, int port)
{
	char listen[64];
	char *argv[] = { (char *)h_bin("spogate-echo"), (char *)"--listen", listen,
	                 (char *)"--name", (char *)name, NULL };
	struct h_proc *p;

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	p = h_spawn(s, name, argv);
	if (h_wait_port(port, 5000) < 0)
		die("%s did not listen on %d", name, port);
	return p;
}

struct h_proc *h_start_agent(struct h_stack *s, const char *config_path,
                             const char *const *extra_args)
{
	char listen[64], metrics[64];
	char *argv[32];
	int n = 0, i;
	struct h_proc *p;

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", s->agent_port);
	snprintf(metrics, sizeof(metrics), "127.0.0.1:%d", s->metrics_port);
	argv[n++] = (char *)h_bin("spogate-agent");
	if (config_path) {
		argv[n++] = (char *)"-c";
		argv[n++] = (char *)config_path;
	}
	argv[n++] = (char *)"--listen";
	argv[n++] = listen;
	argv[n++] = (char *)"--metrics";
	argv[n++] = metrics;
	for (i = 0; extra_args && extra_args[i] && n < 30; i++)
		argv[n++] = (char *)extra_args[i];
	argv[n] = NULL;
	p = h_spawn(s, "agent", argv);
	if (h_wait_port(s->agent_port, 5000) < 0 || h_wait_port(s->metrics_port, 5000) < 0)
		die("agent did not listen on %d", s->agent_port);
	return p;
}

void h_certs(struct h_stack *s, const char *script)
{
	char *out = NULL;

	if (h_run(&out,
		"set -e; cd '%s'\n"
		"mkca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		"-keyout $1.key -out $1.pem -days 2 -subj \"/CN=$1 test CA\" 2>/dev/null; }\n"
		"leaf() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		"-keyout $1.key -out $1.csr -subj \"/CN=$3\" 2>/dev/null;"
		" printf 'subjectAltName=%%s\\nbasicConstraints=CA:FALSE\\n' \"$4\" > $1.ext;"
		" openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -CAcreateserial -out $1.crt "
		"-days 2 -extfile $1.ext 2>/dev/null; cat $1.crt $1.key > $1.pem; }\n"
		"%s", s->dir, script) != 0)
		die("making certificates failed: %s", out ? out : "");
	free(out);
}

const char *h_haproxy_bin(void)
{
	/* SPOGATE_HAPROXY runs the suite against another HAProxy build. */
	return getenv("SPOGATE_HAPROXY") ? getenv("SPOGATE_HAPROXY") : "/usr/sbin/haproxy";
}

const char *h_redis_server_bin(void)
{
	/* SPOGATE_REDIS_SERVER runs the suite against another server, such as
	 * Valkey (make test-valkey). */
	const char *v = getenv("SPOGATE_REDIS_SERVER");

	return v && *v ? v : "/usr/bin/redis-server";
}

int h_haproxy_version(void)
{
	char *out = NULL, *p;
	long major = 0, minor = 0;

	if (h_run(&out, "%s -v", h_haproxy_bin()) != 0) {
		free(out);
		return -1;
	}
	p = strstr(out, "version ");
	if (p) {
		major = strtol(p + 8, &p, 10);
		if (*p == '.')
			minor = strtol(p + 1, NULL, 10);
	}
	free(out);
	return major >= 2 ? (int)(major * 10 + minor) : -1;
}

struct h_proc *h_start_haproxy_as(struct h_stack *s, const char *name, const char *cfg_path,
                                  int port)
{
	char *argv[] = { (char *)h_haproxy_bin(), (char *)"-f", (char *)cfg_path,
	                 (char *)"-db", NULL };
	struct h_proc *p = h_spawn(s, name, argv);

	if (h_wait_port(port, 5000) < 0)
		die("%s did not listen on %d (see %s)", name, port, p->log);
	return p;
}

int h_reload_haproxy(pid_t pid, const char *run_dir, char **out)
{
	return h_run(out, "%s --reload %ld --run-dir %s 2>&1", h_bin("spogate-gen"), (long)pid,
	             run_dir);
}

struct h_proc *h_start_haproxy(struct h_stack *s, const char *cfg_path)
{
	return h_start_haproxy_as(s, "haproxy", cfg_path, s->http_port);
}

struct h_proc *h_start_redis(struct h_stack *s)
{
	char port[16];
	char *argv[] = { (char *)h_redis_server_bin(), (char *)"--port", port,
	                 (char *)"--bind", (char *)"127.0.0.1", (char *)"--save", (char *)"",
	                 (char *)"--appendonly", (char *)"no", (char *)"--daemonize", (char *)"no",
	                 (char *)"--dir", s->dir, NULL };
	struct h_proc *p;

	snprintf(port, sizeof(port), "%d", s->redis_port);
	p = h_spawn(s, "redis", argv);
	if (h_wait_port(s->redis_port, 5000) < 0)
		die("redis did not listen on %d", s->redis_port);
	return p;
}

struct h_proc *h_start_dnsmasq(struct h_stack *s, const char *conf_path)
{
	char arg[600];
	char *argv[] = { (char *)"/usr/sbin/dnsmasq", (char *)"--keep-in-foreground", arg,
	                 (char *)"--pid-file", (char *)"--log-facility=-", (char *)"--user=root",
	                 NULL };
	struct h_proc *p;

	snprintf(arg, sizeof(arg), "--conf-file=%s", conf_path);
	p = h_spawn(s, "dnsmasq", argv);
	if (h_wait_log(p, "started", 5000) < 0)
		die("dnsmasq did not start (%s)", conf_path);
	return p;
}

/* HTTP */

struct growbuf {
	char *p;
	size_t len;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct growbuf *b = ud;
	size_t n = size * nmemb;
	char *np = realloc(b->p, b->len + n + 1);

	if (!np)
		return 0;
	b->p = np;
	memcpy(b->p + b->len, ptr, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

/* Keeps only the last response's headers (after 1xx or redirects). */
static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct growbuf *b = ud;
	size_t n = size * nmemb;

	if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0)
		b->len = 0;
	return on_data(ptr, size, nmemb, ud);
}

static struct curl_slist *mk_headers(const char *const *headers)
{
	struct curl_slist *l = NULL;
	int i;

	for (i = 0; headers && headers[i]; i++)
		l = curl_slist_append(l, headers[i]);
	return l;
}

static void init_curl(void)
{
	static int done;

	if (!done) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		done = 1;
	}
}

int h_http(struct h_resp *r, const char *method, const char *url,
           const char *const *headers, const char *body)
{
	struct growbuf b = { 0 }, h = { 0 };
	struct curl_slist *hl = mk_headers(headers);
	CURL *c;
	CURLcode rc;

	init_curl();
	memset(r, 0, sizeof(*r));
	c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
	if (hl)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	if (method && strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (method)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	rc = curl_easy_perform(c);
	r->curl_error = (int)rc;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r->seconds);
	r->body = b.p ? b.p : strdup("");
	r->body_len = b.len;
	r->headers = h.p ? h.p : strdup("");
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	return rc == CURLE_OK ? 0 : -1;
}

int h_get(struct h_resp *r, struct h_stack *s, const char *path, const char *const *headers)
{
	char url[2048];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->http_port, path);
	return h_http(r, NULL, url, headers, NULL);
}

const char *h_header(const struct h_resp *r, const char *name)
{
	static char val[4096];
	size_t nl = strlen(name);
	const char *p = r->headers;

	while (p && *p) {
		const char *eol = strstr(p, "\r\n");
		size_t ll = eol ? (size_t)(eol - p) : strlen(p);

		if (ll > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
			const char *v = p + nl + 1;
			size_t vl;

			while (*v == ' ' || *v == '\t')
				v++;
			vl = (size_t)(p + ll - v);
			if (vl >= sizeof(val))
				vl = sizeof(val) - 1;
			memcpy(val, v, vl);
			val[vl] = '\0';
			return val;
		}
		if (!eol)
			break;
		p = eol + 2;
	}
	return NULL;
}

void h_resp_free(struct h_resp *r)
{
	free(r->body);
	free(r->headers);
	r->body = r->headers = NULL;
}

int h_http_many(const char *url, const char *const *headers, int n, int parallel,
                long *statuses, char **bodies)
{
	struct curl_slist *hl = mk_headers(headers);
	CURLM *m;
	CURL **handles;
	struct growbuf *bufs;
	int *slot_req, started = 0, running = 0, errors = 0, i;

	init_curl();
	m = curl_multi_init();
	handles = calloc((size_t)parallel, sizeof(*handles));
	slot_req = calloc((size_t)parallel, sizeof(*slot_req));
	bufs = calloc((size_t)n, sizeof(*bufs));
	for (i = 0; i < parallel; i++) {
		handles[i] = curl_easy_init();
		curl_easy_setopt(handles[i], CURLOPT_NOPROXY, "*");
		curl_easy_setopt(handles[i], CURLOPT_TIMEOUT_MS, 20000L);
		curl_easy_setopt(handles[i], CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(handles[i], CURLOPT_PRIVATE, (void *)(long)i);
		if (hl)
			curl_easy_setopt(handles[i], CURLOPT_HTTPHEADER, hl);
	}
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)parallel);
	for (i = 0; i < parallel && started < n; i++, started++) {
		slot_req[i] = started;
		curl_easy_setopt(handles[i], CURLOPT_URL, url);
		curl_easy_setopt(handles[i], CURLOPT_WRITEDATA, &bufs[started]);
		curl_multi_add_handle(m, handles[i]);
	}
	do {
		CURLMsg *msg;
		int left;

		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left))) {
			long st = 0, slot = 0;
			void *priv;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
			slot = (long)priv;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &st);
			if (msg->data.result != CURLE_OK) {
				st = 0;
				errors++;
			}
			statuses[slot_req[slot]] = st;
			curl_multi_remove_handle(m, msg->easy_handle);
			if (started < n) {
				slot_req[slot] = started;
				curl_easy_setopt(msg->easy_handle, CURLOPT_WRITEDATA, &bufs[started]);
				curl_multi_add_handle(m, msg->easy_handle);
				started++;
				running++;
			}
		}
		if (running)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	} while (running);
	for (i = 0; i < n; i++) {
		if (bodies)
			bodies[i] = bufs[i].p ? bufs[i].p : strdup("");
		else
			free(bufs[i].p);
	}
	for (i = 0; i < parallel; i++)
		curl_easy_cleanup(handles[i]);
	curl_multi_cleanup(m);
	curl_slist_free_all(hl);
	free(handles);
	free(slot_req);
	free(bufs);
	return errors;
}

double h_metric(int port, const char *series)
{
	struct h_resp r;
	char url[128];
	size_t sl = strlen(series);
	const char *p;
	double v = -1;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	if (h_http(&r, NULL, url, NULL, NULL) < 0 || r.status != 200) {
		h_resp_free(&r);
		return -1;
	}
	for (p = r.body; p && *p; ) {
		if (strncmp(p, series, sl) == 0 && p[sl] == ' ') {
			v = strtod(p + sl + 1, NULL);
			break;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	h_resp_free(&r);
	return v;
}

int h_run(char **out, const char *fmt, ...)
{
	char cmd[8192];
	struct growbuf b = { 0 };
	char chunk[4096];
	va_list ap;
	FILE *f;
	size_t n;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		on_data(chunk, 1, n, &b);
	st = pclose(f);
	if (out)
		*out = b.p ? b.p : strdup("");
	else
		free(b.p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *h_metrics_problem(int port)
{
	struct h_resp r;
	char url[128], *problem;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	if (h_http(&r, NULL, url, NULL, NULL) < 0 || r.status != 200) {
		h_resp_free(&r);
		return strdup("no /metrics");
	}
	problem = h_prom_check(r.body ? r.body : "");
	h_resp_free(&r);
	return problem;
}
