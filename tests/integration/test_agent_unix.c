/*
 * The agent on a unix socket (agent.address: unix:/path): HAProxy's SPOE
 * backend reaches it as `server agent1 unix@/path`, decisions flow as over
 * TCP, a new agent takes the socket over from a running one without a lost
 * request, one that crashed leaves a socket file the next one replaces, a
 * graceful stop removes the file only while it is still its own, and paths
 * that are no socket or no absolute path are refused at start.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static struct h_stack S;
static struct h_proc *agent;
static char sock[600], agent_json[600], listen_arg[640];
static const char *const bearer[] = { "Authorization: Bearer any-token", NULL };

static int setup(void **state)
{
	char *out = NULL, path[600];
	const char *gw, *reg;

	(void)state;
	h_stack_init(&S, "agent_unix");
	snprintf(sock, sizeof(sock), "%s/agent.sock", S.dir);
	snprintf(listen_arg, sizeof(listen_arg), "unix:%s", sock);
	gw = h_write(&S, "gateway.yaml",
	             "gateway:\n"
	             "  port: %d\n"
	             "  bind: 127.0.0.1\n"
	             "  routes:\n"
	             "    - path: /p/**\n"
	             "      service: echo\n"
	             "      auth_required: true\n"
	             "  auth: {mode: none}\n"
	             "  authz: {mode: none}\n"
	             "  agent: {address: \"unix:%s\", threads: 2}\n"
	             "  admin: {stats: 127.0.0.1:%d, metrics: 127.0.0.1:%d}\n",
	             S.http_port, sock, S.stats_port, S.metrics_port);
	reg = h_write(&S, "registry.yaml",
	              "services:\n  echo: {servers: [\"127.0.0.1:%d\"], health: false}\n",
	              S.echo_port);
	assert_int_equal(h_run(&out, "%s -q -g %s -r %s -o %s --run-dir %s 2>&1",
	                       h_bin("spogate-gen"), gw, reg, S.dir, S.dir), 0);
	free(out);
	snprintf(path, sizeof(path), "%s/haproxy.cfg", S.dir);
	assert_int_equal(h_run(&out, "grep -c 'server agent1 unix@%s check' %s", sock, path), 0);
	free(out);
	snprintf(agent_json, sizeof(agent_json), "%s/agent.json", S.dir);
	h_start_echo(&S, "echo", S.echo_port);
	{
		char *argv[] = { (char *)h_bin("spogate-agent"), (char *)"-c", agent_json, NULL };

		agent = h_spawn(&S, "agent", argv);
	}
	assert_int_equal(h_wait_log(agent, "listening on unix:", 5000), 0);
	h_start_haproxy(&S, path);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	h_stack_stop(&S);
	return 0;
}

/* Another agent on the same socket path, its metrics on port (0: none). */
static struct h_proc *start_agent(const char *name, int metrics_port)
{
	char metrics[64];
	char *argv[] = { (char *)h_bin("spogate-agent"), (char *)"-c", agent_json,
	                 (char *)"--metrics", metrics, NULL };
	struct h_proc *p;

	snprintf(metrics, sizeof(metrics), "127.0.0.1:%d", metrics_port);
	p = h_spawn(&S, name, argv);
	assert_int_equal(h_wait_log(p, "listening on unix:", 5000), 0);
	return p;
}

/* n requests (with a token when token): how many got want, and how many
 * got 503 (no agent answered). */
static int count(int n, int token, long want, int *errors_503)
{
	char url[128];
	long *st = calloc((size_t)n, sizeof(*st));
	int i, ok = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/p/x", S.http_port);
	h_http_many(url, token ? bearer : NULL, n, 32, st, NULL);
	*errors_503 = 0;
	for (i = 0; i < n; i++) {
		ok += st[i] == want;
		*errors_503 += st[i] == 503;
	}
	free(st);
	return ok;
}

static ino_t sock_inode(void)
{
	struct stat st;

	if (lstat(sock, &st) < 0)
		return 0;
	assert_true(S_ISSOCK(st.st_mode));
	return st.st_ino;
}

static void test_bad_listen_paths_are_refused(void **state)
{
	char *out = NULL, file[600], longp[300];
	const char *agentbin = h_bin("spogate-agent");
	int rc;

	(void)state;
	rc = h_run(&out, "timeout 10 %s --listen unix:relative.sock 2>&1", agentbin);
	assert_int_equal(rc, 2);
	assert_non_null(strstr(out, "unix:/absolute/path"));
	free(out);

	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	longp[0] = '/';
	rc = h_run(&out, "timeout 10 %s --listen unix:%s 2>&1", agentbin, longp);
	assert_int_equal(rc, 2);
	free(out);

	/* a file that is not a socket stays as it was */
	snprintf(file, sizeof(file), "%s", h_write(&S, "not-a-socket", "keep me\n"));
	rc = h_run(&out, "timeout 10 %s --listen unix:%s 2>&1", agentbin, file);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "exists and is not a socket"));
	free(out);
	assert_int_equal(h_run(&out, "grep -c 'keep me' %s", file), 0);
	free(out);

	rc = h_run(&out, "timeout 10 %s --listen unix:%s/no/such/dir/a.sock 2>&1", agentbin, S.dir);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "No such file or directory"));
	free(out);
}

static void test_decisions_flow_over_the_unix_socket(void **state)
{
	struct h_resp r;
	struct stat st;
	int e, i;

	(void)state;
	assert_int_equal(lstat(sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0660);
	for (i = 0; i < 100 && h_metric(S.metrics_port, "spogate_healthchecks_total") < 1; i++)
		usleep(100000);
	assert_true(h_metric(S.metrics_port, "spogate_healthchecks_total") >= 1);

	assert_int_equal(count(400, 0, 401, &e), 400);
	assert_int_equal(count(400, 1, 200, &e), 400);
	assert_true(h_metric(S.metrics_port, "spogate_notify_total") >= 800);

	assert_int_equal(h_get(&r, &S, "/p/x", NULL), 0);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(r.body, "token_missing"));
	h_resp_free(&r);
}

/* A rolling restart: the new agent binds the path while the old one still
 * serves; the old one then drains on SIGTERM and leaves the new socket. */
static void test_a_new_agent_takes_over_without_a_lost_request(void **state)
{
	int metrics2 = h_free_port(), e, i;
	struct h_proc *next;
	ino_t before = sock_inode(), after;

	(void)state;
	next = start_agent("agent-next", metrics2);
	assert_int_equal(h_wait_log(next, "taking over from the agent listening there", 1000), 0);
	after = sock_inode();
	assert_true(after != 0 && after != before);
	assert_int_equal(h_stop(agent, 10000), 0);     /* drained, exit 0 */
	agent = next;
	assert_int_equal(sock_inode(), after);          /* the new one's file stays */
	assert_int_equal(count(400, 0, 401, &e), 400);
	assert_int_equal(e, 0);
	for (i = 0; i < 50 && h_metric(metrics2, "spogate_notify_total") < 400; i++)
		usleep(100000);
	assert_true(h_metric(metrics2, "spogate_notify_total") >= 400);
}

static void test_a_crashed_agent_leaves_a_socket_the_next_replaces(void **state)
{
	int e, ok;

	(void)state;
	assert_int_equal(h_signal(agent, SIGKILL), 0);
	h_stop(agent, 1000);                            /* reap */
	assert_true(sock_inode() != 0);                 /* left behind */
	agent = start_agent("agent-after-crash", h_free_port());
	usleep(2500000);                                /* HAProxy's check sees it UP */
	ok = count(200, 1, 200, &e);
	assert_int_equal(ok, 200);
}

static void test_a_graceful_stop_removes_the_socket_file(void **state)
{
	(void)state;
	assert_int_equal(h_stop(agent, 10000), 0);
	assert_int_equal(sock_inode(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_listen_paths_are_refused),
		cmocka_unit_test(test_decisions_flow_over_the_unix_socket),
		cmocka_unit_test(test_a_new_agent_takes_over_without_a_lost_request),
		cmocka_unit_test(test_a_crashed_agent_leaves_a_socket_the_next_replaces),
		cmocka_unit_test(test_a_graceful_stop_removes_the_socket_file),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
