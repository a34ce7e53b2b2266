/*
 * Integration test harness: real processes on free loopback ports, stopped
 * by PID; real HTTP through libcurl. Every test binary links harness.c.
 *
 * Typical use inside a cmocka test:
 *
 *     struct h_stack s;
 *     h_stack_init(&s, "test_foundation");     // temp dir, free ports
 *     h_start_echo(&s, "echo1", &s.echo_port);
 *     h_start_agent(&s, NULL);                 // agent.json path or NULL
 *     h_render(&s, "tests/integration/conf/foundation.cfg.in", "haproxy.cfg");
 *     h_start_haproxy(&s, "haproxy.cfg");
 *     struct h_resp r;
 *     h_get(&r, &s, "/private/x", NULL);
 *     assert_int_equal(r.status, 401);
 *     h_resp_free(&r);
 *     h_stack_stop(&s);                        // stops every process by PID
 *
 * Logs of every process go to $BUILD/test-logs/<test>/<name>.log and are
 * kept for post-mortems. Binaries come from $BUILD/bin (default build/bin).
 */
#ifndef SPOGATE_HARNESS_H
#define SPOGATE_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

#define H_MAX_PROCS 16
#define H_MAX_VARS  64

struct h_proc {
	pid_t pid;                     /* 0 when not running */
	char name[64];
	char log[512];
};

/* A set of processes and the template variables that describe them. */
struct h_stack {
	char test[64];
	char dir[512];                 /* per-test temp dir, removed by stop */
	char logdir[512];
	int http_port;                 /* HAProxy frontend */
	int agent_port;
	int metrics_port;              /* agent metrics */
	int echo_port;
	int stats_port;                /* HAProxy admin/stats */
	int redis_port;
	int dns_port;
	int refsvc_port;               /* gRPC */
	int refsvc_admin_port;
	struct h_proc procs[H_MAX_PROCS];
	int nprocs;
	char *var_names[H_MAX_VARS];   /* @NAME@ -> value for h_render() */
	char *var_values[H_MAX_VARS];
	int nvars;
};

/* Returns a port that was free on 127.0.0.1 a moment ago (bind to port 0).
 * Ports handed out in one process never repeat. */
int h_free_port(void);

/* Path of a built binary: $BUILD/bin/<name>. Static buffer per call slot. */
const char *h_bin(const char *name);

/* Creates the temp and log dirs and picks free ports for every field above;
 * sets template vars DIR, HTTP_PORT, AGENT_PORT, METRICS_PORT, ECHO_PORT,
 * STATS_PORT, REDIS_PORT, DNS_PORT, REFSVC_PORT, REFSVC_ADMIN_PORT, ROOT
 * (the repository root) and BIN. */
void h_stack_init(struct h_stack *s, const char *test);

/* Sets or replaces a template variable. */
void h_set_var(struct h_stack *s, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Renders template src (path relative to the repo root) into dst (relative
 * to s->dir, or absolute) replacing every @NAME@. Aborts the test on an
 * unknown variable. Returns the absolute output path (static buffer). */
const char *h_render(struct h_stack *s, const char *src, const char *dst);

/* Writes a file in s->dir (or an absolute path). Returns its absolute path
 * (static buffer). */
const char *h_write(struct h_stack *s, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Starts argv (argv[0] is a path) with stdout+stderr to the log. Returns the
 * slot. Aborts the test if it cannot start. */
struct h_proc *h_spawn(struct h_stack *s, const char *name, char *const argv[]);

/* Waits until 127.0.0.1:port accepts a connection. 0 or -1 on timeout. */
int h_wait_port(int port, int timeout_ms);

/* Waits until the log of p contains needle. 0 or -1 on timeout. */
int h_wait_log(const struct h_proc *p, const char *needle, int timeout_ms);

/* SIGTERM, then SIGKILL after timeout_ms; reaps. Returns the exit status
 * (as from waitpid) or -1. By PID only, never by name. */
int h_stop(struct h_proc *p, int timeout_ms);

/* Sends sig to p. */
int h_signal(struct h_proc *p, int sig);

/* True while p runs. */
int h_alive(struct h_proc *p);

/* Stops every process of the stack (reverse start order) and removes the
 * temp dir unless H_KEEP=1 is in the environment. */
void h_stack_stop(struct h_stack *s);

/* Ready-made starters; each waits until its process listens. */
struct h_proc *h_start_echo(struct h_stack *s, const char *name, int port);
struct h_proc *h_start_agent(struct h_stack *s, const char *config_path,
                             const char *const *extra_args);
struct h_proc *h_start_haproxy(struct h_stack *s, const char *cfg_path);
struct h_proc *h_start_redis(struct h_stack *s);
/* dnsmasq in the foreground with conf_path (which names its port);
 * waits until it says it started. */
struct h_proc *h_start_dnsmasq(struct h_stack *s, const char *conf_path);
/* Another HAProxy (a TLS backend, say), waited for on port. */
struct h_proc *h_start_haproxy_as(struct h_stack *s, const char *name, const char *cfg_path,
                                  int port);
/* The HAProxy the suite runs: $SPOGATE_HAPROXY or Debian's. */
const char *h_haproxy_bin(void);
/* Reloads the HAProxy whose master is pid the README's way (spogate-gen
 * --reload with run_dir) and returns its exit status; what it printed is
 * in *out when out is not NULL (caller frees). */
int h_reload_haproxy(pid_t pid, const char *run_dir, char **out);
/* redis-server, or $SPOGATE_REDIS_SERVER (a Valkey, say) */
const char *h_redis_server_bin(void);

/* The version of the HAProxy under test as major * 10 + minor (2.6 -> 26,
 * 3.2 -> 32), or -1 when `haproxy -v` cannot be read. */
int h_haproxy_version(void);

/* HTTP. */
struct h_resp {
	long status;
	char *body;
	size_t body_len;
	char *headers;                 /* raw header block of the final response */
	double seconds;                /* total time */
	int curl_error;                /* CURLcode, 0 when the request completed */
};

/* method NULL = GET; headers is a NULL-terminated list of "Name: value";
 * body may be NULL. Returns 0 when a response arrived. */
int h_http(struct h_resp *r, const char *method, const char *url,
           const char *const *headers, const char *body);

/* GET http://127.0.0.1:<s->http_port><path>. */
int h_get(struct h_resp *r, struct h_stack *s, const char *path,
          const char *const *headers);

/* Value of a response header (case-insensitive name), copied into a
 * static buffer, or NULL. */
const char *h_header(const struct h_resp *r, const char *name);

void h_resp_free(struct h_resp *r);

/* Runs n requests to url with up to parallel in flight (curl multi, each
 * handle keeps its connection). statuses[i] receives each status (0 on a
 * transport error); bodies[i], when bodies is not NULL, receives a malloc'd
 * body the caller frees. Returns the number of transport errors. */
int h_http_many(const char *url, const char *const *headers, int n, int parallel,
                long *statuses, char **bodies);

/* Fetches http://127.0.0.1:port/metrics and returns the value of the first
 * line starting with series (exact name including labels), or -1. */
double h_metric(int port, const char *series);

/* Checks the exposition at http://127.0.0.1:port/metrics with
 * h_prom_check(). Returns NULL when well formed, else a malloc'd
 * description. */
char *h_metrics_problem(int port);

/* Checks text against the Prometheus text format 0.0.4, strictly, and
 * against what the agent promises beyond it: every family has # HELP and
 * # TYPE before its samples, counters end in _total (harness_prom.c).
 * Returns NULL when it holds, else a malloc'd "line N: why". */
char *h_prom_check(const char *text);

/* Makes certificates in s->dir with the openssl CLI: script runs there
 * with two shell functions, "mkca NAME" (NAME.pem, NAME.key: a CA) and
 * "leaf NAME CA CN SANS" (NAME.crt, NAME.key, and NAME.pem with both,
 * signed by CA; SANS such as 'DNS:a.test,DNS:b.test'). Aborts on failure. */
void h_certs(struct h_stack *s, const char *script);

/* Runs a command line through /bin/sh, returns its exit status; its output
 * goes into *out (malloc'd) when out is not NULL. */
int h_run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Monotonic milliseconds. */
double h_now_ms(void);

#endif
