/*
 * Several agents behind one gateway (agent.address as a list): HAProxy
 * balances the SPOE traffic across them and keeps answering when one goes
 * away, gracefully (SIGTERM: it drains, no request fails) or not (SIGKILL:
 * at most the decisions it held fail, then all is well again).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static struct h_stack S;
static struct h_proc *agent1, *agent2;
static int agent2_port, metrics2_port;

static int setup(void **state)
{
	char *out = NULL, path[600], listen[64], metrics[64];
	const char *gw, *reg;

	(void)state;
	h_stack_init(&S, "agents_ha");
	agent2_port = h_free_port();
	metrics2_port = h_free_port();
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
	             "  agent: {address: [127.0.0.1:%d, 127.0.0.1:%d], threads: 1}\n"
	             "  admin: {stats: 127.0.0.1:%d}\n",
	             S.http_port, S.agent_port, agent2_port, S.stats_port);
	reg = h_write(&S, "registry.yaml",
	              "services:\n  echo: {servers: [\"127.0.0.1:%d\"], health: false}\n",
	              S.echo_port);
	assert_int_equal(h_run(&out, "%s -q -g %s -r %s -o %s --run-dir %s 2>&1",
	                       h_bin("spogate-gen"), gw, reg, S.dir, S.dir), 0);
	free(out);
	h_start_echo(&S, "echo", S.echo_port);
	snprintf(path, sizeof(path), "%s/agent.json", S.dir);
	agent1 = h_start_agent(&S, path, NULL);
	/* the second agent: the same agent.json, its own --listen */
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", agent2_port);
	snprintf(metrics, sizeof(metrics), "127.0.0.1:%d", metrics2_port);
	{
		char *argv[] = { (char *)h_bin("spogate-agent"), (char *)"-c", path,
		                 (char *)"--listen", listen, (char *)"--metrics", metrics, NULL };

		agent2 = h_spawn(&S, "agent2", argv);
	}
	assert_int_equal(h_wait_port(agent2_port, 5000), 0);
	snprintf(path, sizeof(path), "%s/haproxy.cfg", S.dir);
	h_start_haproxy(&S, path);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	h_stack_stop(&S);
	return 0;
}

/* n requests without a token: every right answer is 401 from an agent. */
static int count_401(int n, int *errors_503);

/* Waits until HAProxy's SPOE health check has reached both agents. */
static void wait_both_checked(void)
{
	int i;

	for (i = 0; i < 100; i++) {
		if (h_metric(S.metrics_port, "spogate_healthchecks_total") >= 1 &&
		    h_metric(metrics2_port, "spogate_healthchecks_total") >= 1)
			return;
		usleep(100000);
	}
	fail_msg("HAProxy never checked both agents");
}

static int count_401(int n, int *errors_503)
{
	char url[128];
	long *st = calloc((size_t)n, sizeof(*st));
	int i, ok = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/p/x", S.http_port);
	/* enough concurrency that HAProxy opens several SPOE connections */
	h_http_many(url, NULL, n, 32, st, NULL);
	*errors_503 = 0;
	for (i = 0; i < n; i++) {
		ok += st[i] == 401;
		*errors_503 += st[i] == 503;
	}
	free(st);
	return ok;
}

/* Both agents are servers of the SPOE backend and answer its checks; the
 * traffic goes to whichever SPOE connections HAProxy opened, so which agent
 * gets how much is HAProxy's choice. */
static void test_both_agents_serve_the_gateway(void **state)
{
	int e;

	(void)state;
	wait_both_checked();
	assert_int_equal(count_401(1000, &e), 1000);
	assert_true(h_metric(S.metrics_port, "spogate_notify_total") +
	            h_metric(metrics2_port, "spogate_notify_total") >= 1000);
}

static void test_graceful_stop_of_one_agent_loses_nothing(void **state)
{
	int e;

	(void)state;
	assert_int_equal(h_stop(agent2, 10000), 0);   /* SIGTERM: drain, exit 0 */
	assert_int_equal(count_401(400, &e), 400);
	assert_int_equal(e, 0);
}

static void test_crash_of_one_agent_costs_at_most_its_decisions(void **state)
{
	char listen[64], metrics[64];
	char *argv[] = { (char *)h_bin("spogate-agent"), (char *)"-c", NULL,
	                 (char *)"--listen", listen, (char *)"--metrics", metrics, NULL };
	char path[600];
	int e, ok;

	(void)state;
	/* agent2 back, then agent1 killed outright */
	snprintf(path, sizeof(path), "%s/agent.json", S.dir);
	argv[2] = path;
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", agent2_port);
	snprintf(metrics, sizeof(metrics), "127.0.0.1:%d", metrics2_port);
	agent2 = h_spawn(&S, "agent2b", argv);
	assert_int_equal(h_wait_port(agent2_port, 5000), 0);
	usleep(2500000);   /* HAProxy's check (inter 2s) sees it UP again */
	assert_int_equal(h_signal(agent1, SIGKILL), 0);
	ok = count_401(400, &e);
	/* What was in flight on the killed agent's connections fails; that
	 * is bounded by the requests in flight (32), not by the time HAProxy
	 * takes to mark the agent down. */
	if (e > 32)
		fail_msg("%d of 400 requests failed after one agent of two was killed", e);
	assert_int_equal(ok + e, 400);
	/* and then every answer is right again */
	assert_int_equal(count_401(200, &e), 200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_both_agents_serve_the_gateway),
		cmocka_unit_test(test_graceful_stop_of_one_agent_loses_nothing),
		cmocka_unit_test(test_crash_of_one_agent_costs_at_most_its_decisions),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
