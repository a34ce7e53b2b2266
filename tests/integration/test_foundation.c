/*
 * Foundation, end to end: a real HAProxy 2.6 with the SPOE contract of
 * DESIGN.md (hand-written config), the real agent and an echo backend.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static struct h_stack S;
static struct h_proc *agent;

static void start_stack(const char *name, const char *processing, const char *agent_cfg)
{
	const char *cfg;

	h_stack_init(&S, name);
	h_set_var(&S, "PROCESSING", "%s", processing);
	h_start_echo(&S, "echo", S.echo_port);
	agent = h_start_agent(&S, agent_cfg ? h_write(&S, "agent.json", "%s", agent_cfg) : NULL,
	                      (const char *const[]){ "--threads", "2", NULL });
	h_render(&S, "tests/integration/conf/foundation-spoe.conf.in", "spoe.conf");
	cfg = h_render(&S, "tests/integration/conf/foundation.cfg.in", "haproxy.cfg");
	h_start_haproxy(&S, cfg);
}

static int setup(void **state)
{
	(void)state;
	start_stack("foundation", "1s", NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	h_stack_stop(&S);
	return 0;
}

/* Sends a command to HAProxy's stats socket and returns the answer. */
static char *stats_cmd(const char *cmd)
{
	struct sockaddr_un sa;
	char *out = calloc(1, 65536);
	size_t len = 0;
	ssize_t n;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/haproxy.sock", S.dir) >=
	    (int)sizeof(sa.sun_path) || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return out;
	}
	if (write(fd, cmd, strlen(cmd)) < 0 || write(fd, "\n", 1) < 0) {
		close(fd);
		return out;
	}
	while (len < 65535 && (n = read(fd, out + len, 65535 - len)) > 0)
		len += (size_t)n;
	close(fd);
	return out;
}

static int wait_agent_status(const char *want, int timeout_ms)
{
	double end = h_now_ms() + timeout_ms;

	while (h_now_ms() < end) {
		char *st = stats_cmd("show stat");
		char line[512];
		int found = 0;

		snprintf(line, sizeof(line), "spogate-agents,agent1,");
		{
			char *p = strstr(st, line);

			if (p) {
				char *eol = strchr(p, '\n');

				if (eol)
					*eol = '\0';
				found = strstr(p, want) != NULL;
			}
		}
		free(st);
		if (found)
			return 0;
		usleep(100000);
	}
	return -1;
}

static void test_auth_route_without_token_is_401_json(void **state)
{
	struct h_resp r;

	(void)state;
	assert_int_equal(h_get(&r, &S, "/private/x", NULL), 0);
	assert_int_equal(r.status, 401);
	assert_string_equal(r.body, "{\"error\":\"unauthorized\",\"reason\":\"token_missing\"}");
	assert_non_null(h_header(&r, "WWW-Authenticate"));
	assert_non_null(strstr(h_header(&r, "WWW-Authenticate"), "Bearer"));
	assert_string_equal(h_header(&r, "Content-Type"), "application/json");
	h_resp_free(&r);

	/* a non-bearer scheme is not a token either */
	assert_int_equal(h_get(&r, &S, "/private/x",
	                       (const char *const[]){ "Authorization: Basic YWxpY2U6cHc=", NULL }), 0);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(r.body, "token_missing"));
	h_resp_free(&r);
}

static void test_public_route_reaches_backend(void **state)
{
	struct h_resp r;

	(void)state;
	assert_int_equal(h_get(&r, &S, "/public/hello", NULL), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"service\":\"echo\""));
	assert_non_null(strstr(r.body, "\"path\":\"/public/hello\""));
	h_resp_free(&r);
}

static void test_bearer_token_passes_the_first_stage(void **state)
{
	struct h_resp r;

	(void)state;
	assert_int_equal(h_get(&r, &S, "/private/x",
	                       (const char *const[]){ "Authorization: Bearer abc.def.ghi", NULL }), 0);
	assert_int_equal(r.status, 200);
	h_resp_free(&r);
}

static void test_spoofed_user_id_never_reaches_backend(void **state)
{
	struct h_resp r;

	(void)state;
	assert_int_equal(h_get(&r, &S, "/public/x",
	                       (const char *const[]){ "X-User-ID: admin", NULL }), 0);
	assert_int_equal(r.status, 200);
	assert_null(strstr(r.body, "x-user-id"));
	assert_null(strstr(r.body, "admin"));
	h_resp_free(&r);
}

static void test_unknown_path_is_json_404(void **state)
{
	struct h_resp r;

	(void)state;
	assert_int_equal(h_get(&r, &S, "/nowhere", NULL), 0);
	assert_int_equal(r.status, 404);
	assert_string_equal(r.body, "{\"error\":\"not_found\"}");
	h_resp_free(&r);
}

static void test_spop_check_marks_agent_up(void **state)
{
	(void)state;
	assert_int_equal(wait_agent_status(",UP,", 5000), 0);
	/* the check HELLO carries healthcheck=true; the agent counted it */
	assert_true(h_metric(S.metrics_port, "spogate_healthchecks_total") >= 1);
}

static void test_agent_killed_fails_closed_then_recovers(void **state)
{
	char listen[64], metrics[64];
	char *argv[] = { (char *)h_bin("spogate-agent"), (char *)"--listen", listen,
	                 (char *)"--metrics", metrics, NULL };
	struct h_resp r;
	double t0;
	int i, ok = 0;

	(void)state;
	assert_int_equal(h_stop(agent, 5000), 0);      /* SIGTERM drains, exit 0 */
	for (i = 0; i < 5; i++) {
		t0 = h_now_ms();
		assert_int_equal(h_get(&r, &S, "/public/x", NULL), 0);
		assert_int_equal(r.status, 503);
		assert_string_equal(r.body, "{\"error\":\"gateway_unavailable\"}");
		/* fail closed within the processing timeout (1s) plus slack,
		 * never hanging on a dead agent */
		assert_true(h_now_ms() - t0 < 2500);
		h_resp_free(&r);
	}
	/* The access log's SPOE error for "agent down" is the one the README
	 * documents for this version: 2 (SPOE_CTX_ERR_RES) on 2.6 and 3.0,
	 * 257 (0x100 + SPOP error 1, I/O) on 3.1+ with its SPOP mux. */
	{
		char *out = NULL;
		int want = h_haproxy_version() >= 31 ? 257 : 2;

		usleep(200000);
		h_run(&out, "grep -c '\"status\":503,.*\"error\":\"%d\"' %s/haproxy.log", want, S.logdir);
		assert_non_null(out);
		if (strtol(out, NULL, 10) < 1)
			fail_msg("no 503 logged with error %d in %s/haproxy.log", want, S.logdir);
		free(out);
	}
	/* the agent comes back on the same port; HAProxy is not touched */
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", S.agent_port);
	snprintf(metrics, sizeof(metrics), "127.0.0.1:%d", S.metrics_port);
	agent = h_spawn(&S, "agent2", argv);
	assert_int_equal(h_wait_port(S.agent_port, 5000), 0);
	/* Recovered means steadily right answers: HAProxy 3.0 can still fail
	 * a request or two while its health check and applets catch up. */
	for (i = 0; i < 100 && ok < 5; i++) {
		int good;

		assert_int_equal(h_get(&r, &S, i % 2 ? "/private/x" : "/public/x", NULL), 0);
		good = r.status == (i % 2 ? 401 : 200);
		h_resp_free(&r);
		ok = good ? ok + 1 : 0;
		if (!good)
			usleep(100000);
	}
	assert_int_equal(ok, 5);
}

/* Many requests over many connections; every answer must be the right one.
 * The agent holds each decision 1..5 ms (debug.delay_ms) so decisions
 * overlap and complete out of order: the counters prove HAProxy pipelined
 * NOTIFY frames and the agent answered them asynchronously. */
static void test_2000_requests_all_answered_right(void **state)
{
	enum { N = 1000, PAR = 64 };
	char url[128];
	long *st = calloc(N, sizeof(*st));
	int i, errors;

	(void)state;
	h_stack_stop(&S);
	start_stack("foundation-load", "2s", "{\"debug\":{\"delay_ms\":5}}");

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/private/a", S.http_port);
	errors = h_http_many(url, NULL, N, PAR, st, NULL);
	assert_int_equal(errors, 0);
	for (i = 0; i < N; i++)
		assert_int_equal(st[i], 401);
	memset(st, 0, N * sizeof(*st));
	errors = h_http_many(url, (const char *const[]){ "Authorization: Bearer t", NULL },
	                     N, PAR, st, NULL);
	assert_int_equal(errors, 0);
	for (i = 0; i < N; i++)
		assert_int_equal(st[i], 200);
	free(st);

	assert_true(h_metric(S.metrics_port, "spogate_notify_total") >= 2 * N);
	assert_true(h_metric(S.metrics_port, "spogate_decisions_total{outcome=\"deny\",reason=\"token_missing\"}") >= N);
	assert_true(h_metric(S.metrics_port, "spogate_pipelined_total") > 0);
	assert_true(h_metric(S.metrics_port, "spogate_out_of_order_total") > 0);
	assert_true(h_metric(S.metrics_port, "spogate_max_inflight") > 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auth_route_without_token_is_401_json),
		cmocka_unit_test(test_public_route_reaches_backend),
		cmocka_unit_test(test_bearer_token_passes_the_first_stage),
		cmocka_unit_test(test_spoofed_user_id_never_reaches_backend),
		cmocka_unit_test(test_unknown_path_is_json_404),
		cmocka_unit_test(test_spop_check_marks_agent_up),
		cmocka_unit_test(test_agent_killed_fails_closed_then_recovers),
		cmocka_unit_test(test_2000_requests_all_answered_right),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
