/*
 * gateway.trusted_proxies, end to end with a generated configuration, the
 * agent and a real Redis: behind a trusted proxy the per-IP limit counts the
 * client named by X-Forwarded-For; from anyone else the header is ignored,
 * so a client cannot escape its limit by inventing addresses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static struct h_stack S;
static struct h_proc *haproxy;

static void start(const char *name, const char *trusted)
{
	char *out = NULL;
	const char *gw, *reg, *dir;

	h_stack_init(&S, name);
	gw = h_write(&S, "gateway.yaml",
	             "gateway:\n"
	             "  port: %d\n"
	             "  bind: 127.0.0.1\n"
	             "  trusted_proxies: [%s]\n"
	             "  routes:\n"
	             "    - path: /public/**\n"
	             "      service: echo\n"
	             "      auth_required: false\n"
	             "  rate_limiting: {per_ip: 2/minute}\n"
	             "  auth: {mode: none}\n"
	             "  authz: {mode: none}\n"
	             "  agent: {address: 127.0.0.1:%d, threads: 1}\n"
	             "  redis: {address: 127.0.0.1:%d}\n"
	             "  admin: {stats: 127.0.0.1:%d, metrics: 127.0.0.1:%d}\n",
	             S.http_port, trusted, S.agent_port, S.redis_port, S.stats_port,
	             S.metrics_port);
	reg = h_write(&S, "registry.yaml",
	              "services:\n"
	              "  echo: {servers: [\"127.0.0.1:%d\"], health: false}\n", S.echo_port);
	dir = S.dir;
	assert_int_equal(h_run(&out, "%s -g %s -r %s -o %s --run-dir %s 2>&1", h_bin("spogate-gen"),
	                       gw, reg, dir, dir), 0);
	free(out);
	h_start_redis(&S);
	h_start_echo(&S, "echo", S.echo_port);
	{
		static char agent_json[600];

		snprintf(agent_json, sizeof(agent_json), "%s/agent.json", dir);
		h_start_agent(&S, agent_json, NULL);
	}
}

static void start_all(const char *name, const char *trusted)
{
	char path[600];

	start(name, trusted);
	snprintf(path, sizeof(path), "%s/haproxy.cfg", S.dir);
	haproxy = h_start_haproxy(&S, path);
}

static int teardown(void **state)
{
	(void)state;
	h_stack_stop(&S);
	return 0;
}

static long get_from(const char *xff)
{
	char hdr[256];
	struct h_resp r;
	long st;

	snprintf(hdr, sizeof(hdr), "X-Forwarded-For: %s", xff);
	assert_int_equal(h_get(&r, &S, "/public/x", (const char *const[]){ hdr, NULL }), 0);
	st = r.status;
	h_resp_free(&r);
	return st;
}

static int redis_has(const char *key)
{
	char *out = NULL;
	int yes;

	h_run(&out, "redis-cli -p %d exists '%s'", S.redis_port, key);
	yes = out && strtol(out, NULL, 10) == 1;
	free(out);
	return yes;
}

static void test_trusted_proxy_names_the_client(void **state)
{
	(void)state;
	start_all("client_ip_trusted", "127.0.0.1");
	assert_int_equal(get_from("203.0.113.7"), 200);
	/* the proxy appends: the last entry is the one it vouches for */
	assert_int_equal(get_from("198.18.0.1, 203.0.113.7"), 200);
	assert_int_equal(get_from("203.0.113.7"), 429);
	/* another client behind the same proxy has its own quota */
	assert_int_equal(get_from("198.51.100.9"), 200);
	assert_true(redis_has("spogate:rl:ip:203.0.113.7:2/60"));
	assert_true(redis_has("spogate:rl:ip:198.51.100.9:2/60"));
	assert_false(redis_has("spogate:rl:ip:127.0.0.1:2/60"));
	/* the proxy's forwarding headers reach the backend, the peer appended */
	{
		struct h_resp r;

		assert_int_equal(h_get(&r, &S, "/public/x",
		                       (const char *const[]){ "X-Forwarded-For: 198.51.100.9",
		                                              "X-Real-IP: 198.51.100.9", NULL }), 0);
		assert_non_null(strstr(r.body, "\"x-forwarded-for\":\"198.51.100.9\""));
		assert_non_null(strstr(r.body, "\"x-forwarded-for\":\"127.0.0.1\""));
		assert_non_null(strstr(r.body, "\"x-real-ip\":\"198.51.100.9\""));
		h_resp_free(&r);
	}
	/* the access log names the client, and the proxy beside it */
	assert_int_equal(h_wait_log(haproxy, "\"client\":\"203.0.113.7\",\"peer\":\"127.0.0.1\"",
	                            3000), 0);
}

static void test_untrusted_peer_cannot_choose_its_address(void **state)
{
	(void)state;
	start_all("client_ip_untrusted", "10.0.0.0/8");
	/* the backend never sees the address the client invented */
	{
		struct h_resp r;

		assert_int_equal(h_get(&r, &S, "/public/x",
		                       (const char *const[]){ "X-Forwarded-For: 203.0.113.1", NULL }), 0);
		assert_int_equal(r.status, 200);
		assert_null(strstr(r.body, "203.0.113.1"));
		assert_non_null(strstr(r.body, "\"x-forwarded-for\":\"127.0.0.1\""));
		h_resp_free(&r);
	}
	assert_int_equal(get_from("203.0.113.2"), 200);
	assert_int_equal(get_from("203.0.113.3"), 429);
	assert_true(redis_has("spogate:rl:ip:127.0.0.1:2/60"));
	assert_false(redis_has("spogate:rl:ip:203.0.113.1:2/60"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_trusted_proxy_names_the_client, teardown),
		cmocka_unit_test_teardown(test_untrusted_peer_cannot_choose_its_address, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
