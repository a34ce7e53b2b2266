/*
 * The Auth Service found the way a Consul catalog export says: spogate-gen
 * turns its grpc-port tag into a gRPC target that resolves through
 * Consul's DNS (--consul-dns), dnsmasq standing in for Consul here. The
 * agent logs the target as unreachable while the name does not resolve,
 * and the channel's recovery once it does; requests answer 503 and then
 * 200 through a real HAProxy.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"
#include "test_auth_util.h"

static struct h_stack S;
static struct h_proc *agent, *dns;
static char target[256];

static void start_dns(void)
{
	const char *conf, *hosts;

	hosts = h_write(&S, "consul.hosts", "# nothing registered yet\n");
	conf = h_write(&S, "dnsmasq.conf",
	               "port=%d\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\n"
	               "addn-hosts=%s\nlocal=/consul/\n", S.dns_port, hosts);
	dns = h_start_dnsmasq(&S, conf);
}

/* Runs spogate-gen on a Consul export and returns the Auth Service target
 * it gave the agent. */
static void generate(void)
{
	json_error_t jerr;
	json_t *aj;
	char *out = NULL, path[600];

	h_write(&S, "gateway.yaml",
	        "gateway:\n"
	        "  port: %d\n"
	        "  bind: 127.0.0.1\n"
	        "  routes:\n"
	        "    - {path: /private/**, service: echo, auth_required: true}\n"
	        "  auth: {mode: service, service: auth-service}\n"
	        "  agent: {address: 127.0.0.1:%d}\n",
	        S.http_port, S.agent_port);
	h_write(&S, "consul.json", "{\"consul\":[],\"echo\":[],"
	        "\"auth-service\":[\"grpc-port=%d\",\"v1\"]}", S.refsvc_port);
	if (h_run(&out, "%s -g %s/gateway.yaml -r %s/consul.json -o %s/gen --run-dir %s/gen "
	          "--consul-dns 127.0.0.1:%d 2>&1", h_bin("spogate-gen"), S.dir, S.dir, S.dir,
	          S.dir, S.dns_port) != 0)
		fail_msg("spogate-gen: %s", out ? out : "");
	free(out);
	snprintf(path, sizeof(path), "%s/gen/agent.json", S.dir);
	aj = json_load_file(path, 0, &jerr);
	assert_non_null(aj);
	snprintf(target, sizeof(target), "%s",
	         json_string_value(json_object_get(json_object_get(aj, "auth"), "service_target")));
	json_decref(aj);
}

static int setup(void **state)
{
	char args[1024];
	const char *cfg;

	(void)state;
	h_stack_init(&S, "consul_grpc");
	h_set_var(&S, "PROCESSING", "1s");
	t_keygen(&S, "1");
	snprintf(args, sizeof(args), "--jwks %s/keys/jwks1.json --issuer %s --audience %s",
	         S.dir, T_ISS, T_AUD);
	t_start_refsvc(&S, args);
	h_start_echo(&S, "echo", S.echo_port);
	start_dns();
	generate();
	/* The test's own HAProxy config; the agent gets the generated target. */
	cfg = h_write(&S, "agent.json",
	              "{\"log_level\":\"info\",\"threads\":1,"
	              "\"auth\":{\"mode\":\"service\",\"service_target\":\"%s\",\"timeout_ms\":300}}",
	              target);
	agent = t_start_agent_haproxy(&S, cfg);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	h_stack_stop(&S);
	return 0;
}

static void test_consul_export_targets_resolve_through_consul_dns(void **state)
{
	char want[256];

	(void)state;
	snprintf(want, sizeof(want), "dns://127.0.0.1:%d/auth-service.service.consul:%d",
	         S.dns_port, S.refsvc_port);
	assert_string_equal(target, want);
}

static void test_unresolvable_target_is_logged_and_answers_503(void **state)
{
	char *t = t_token(&S, "RS256", "rsa1.pem", "rsa1", "alice");

	(void)state;
	assert_int_equal(h_wait_log(agent, "is unreachable", 10000), 0);
	assert_int_equal(h_wait_log(agent, "names resolved by 127.0.0.1", 1000), 0);
	t_expect(&S, "/private/x", t, 503, "auth_unavailable");
	free(t);
}

static void test_once_consul_knows_the_name_requests_pass(void **state)
{
	char *t = t_token(&S, "RS256", "rsa1.pem", "rsa1", "alice");
	double t0 = h_now_ms();
	struct h_resp r;

	(void)state;
	h_write(&S, "consul.hosts", "127.0.0.1 auth-service.service.consul\n");
	assert_int_equal(h_signal(dns, SIGHUP), 0);
	for (;;) {
		assert_int_equal(t_get(&r, &S, "/private/x", t), 0);
		if (r.status == 200 || h_now_ms() - t0 > 20000)
			break;
		h_resp_free(&r);
		usleep(200000);
	}
	if (r.status != 200)
		fprintf(stderr, "# still %ld %s\n", r.status, r.body ? r.body : "");
	assert_int_equal(r.status, 200);
	h_resp_free(&r);
	/* The recovery is logged as a change of the channel's state. */
	assert_int_equal(h_wait_log(agent, "is READY", 5000), 0);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_consul_export_targets_resolve_through_consul_dns),
		cmocka_unit_test(test_unresolvable_target_is_logged_and_answers_503),
		cmocka_unit_test(test_once_consul_knows_the_name_requests_pass),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
