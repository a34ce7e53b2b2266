/*
 * spogate-gen end to end: a config generated from YAML runs in a real
 * HAProxy 2.6 whose backends are discovered through a real dnsmasq on a
 * loopback port (SRV records for "echo", an A record for "single").
 * Only public routes (auth_required: false, no rate limits), so no agent
 * is involved: what is tested is HAProxy's side of the generated config.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gen.h"
#include "harness.h"

static struct h_stack S;
static struct h_proc *dns, *haproxy, *echo[3];
static int echo_port[3];
static pid_t haproxy_pid;

static const char *const origin_ok = "Origin: https://app.example.com";
static const char *const origin_bad = "Origin: https://evil.example.net";

/* (Re)starts dnsmasq with SRV records for the first n echo backends. */
static void start_dns(int n)
{
	char conf[2048];
	size_t used;
	int i;
	const char *path;

	used = (size_t)snprintf(conf, sizeof(conf),
				"port=%d\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\n"
				"no-hosts\nhost-record=single.svc.test,127.0.0.1\n", S.dns_port);
	for (i = 0; i < n; i++)
		used += (size_t)snprintf(conf + used, sizeof(conf) - used,
					 /* weight 10: HAProxy takes server weights from SRV
					  * records, and dnsmasq's default weight 0 would
					  * leave the servers without traffic. */
					 "srv-host=_echo._tcp.svc.test,echo%d.svc.test,%d,0,10\n"
					 "host-record=echo%d.svc.test,127.0.0.1\n",
					 i + 1, echo_port[i], i + 1);
	path = h_write(&S, "dnsmasq.conf", "%s", conf);
	dns = h_start_dnsmasq(&S, path);
}

static void generate(void)
{
	struct gen_opts o = { 0 };
	struct gen_diags d;
	struct gen_output out;
	char err[256];
	const char *gw, *reg;

	gw = h_write(&S, "gateway.yaml",
		"gateway:\n"
		"  port: %d\n"
		"  bind: 127.0.0.1\n"
		"  nbthread: 1\n"
		"  routes:\n"
		"    - path: /echo/**\n"
		"      service: echo\n"
		"      auth_required: false\n"
		"      methods: [GET, POST]\n"
		"      strip_prefix: /echo\n"
		"      request_headers: {set: {X-Api-Version: v1}, remove: [Cookie]}\n"
		"      response_headers: {set: {Cache-Control: no-store}, remove: [X-Echo-Service]}\n"
		"    - path: /single/*\n"
		"      service: single\n"
		"      auth_required: false\n"
		"  cors:\n"
		"    allowed_origins: [\"https://app.example.com\"]\n"
		"    allowed_methods: [GET, POST]\n"
		"    allowed_headers: [Authorization, Content-Type]\n"
		"    exposed_headers: [X-Request-Id]\n"
		"    allow_credentials: true\n"
		"    max_age: 600\n"
		"  admin: {stats: 127.0.0.1:%d}\n",
		S.http_port, S.stats_port);
	reg = h_write(&S, "registry.yaml",
		"resolvers:\n"
		"  nameservers: [127.0.0.1:%d]\n"
		"  hold_valid: 1s\n"
		"  resolve_interval: 500ms\n"
		"  retry_interval: 500ms\n"
		"services:\n"
		"  echo: {srv: _echo._tcp.svc.test, instances: 5,\n"
		"         health: {path: /health, interval: 300ms, rise: 1, fall: 1}}\n"
		"  single: {dns: single.svc.test, port: %d, instances: 2}\n",
		S.dns_port, S.echo_port);
	o.gateway_file = gw;
	o.registry_file = reg;
	o.haproxy_dir = S.dir;
	o.run_dir = S.dir;
	gen_diags_init(&d);
	if (gen_run(&o, 0, &d, &out) != 0) {
		gen_diags_print(&d, stderr);
		fail_msg("spogate-gen refused the test's YAML");
	}
	gen_diags_free(&d);
	assert_int_equal(gen_write_files(S.dir, &out, err, sizeof(err)), 0);
	assert_int_equal(gen_seed_server_state(S.dir, err, sizeof(err)), 0);
	gen_output_free(&out);
}

static int setup(void **state)
{
	char cfg[600];
	int i;

	(void)state;
	h_stack_init(&S, "test_gen_dns");
	for (i = 0; i < 3; i++)
		echo_port[i] = h_free_port();
	for (i = 0; i < 2; i++) {
		char name[16];
		snprintf(name, sizeof(name), "echo%d", i + 1);
		echo[i] = h_start_echo(&S, name, echo_port[i]);
	}
	h_start_echo(&S, "single", S.echo_port);
	start_dns(2);
	generate();
	snprintf(cfg, sizeof(cfg), "%s/haproxy.cfg", S.dir);
	haproxy = h_start_haproxy(&S, cfg);
	haproxy_pid = haproxy->pid;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	h_stack_stop(&S);
	return 0;
}

/* Sends n GETs to path and counts answers per echo service name. */
static void spread(const char *path, int n, int counts[3], int *others, int *errors)
{
	int i, k;

	memset(counts, 0, 3 * sizeof(int));
	*others = *errors = 0;
	for (i = 0; i < n; i++) {
		struct h_resp r;
		int found = 0;
		if (h_get(&r, &S, path, NULL) != 0 || r.status != 200) {
			(*errors)++;
			h_resp_free(&r);
			continue;
		}
		for (k = 0; k < 3; k++) {
			char needle[64];
			snprintf(needle, sizeof(needle), "\"service\":\"echo%d\"", k + 1);
			if (r.body && strstr(r.body, needle)) {
				counts[k]++;
				found = 1;
			}
		}
		if (!found)
			(*others)++;
		h_resp_free(&r);
	}
}

/* Polls until every backend in want (bitmask of echo1..3) answers, or
 * timeout_ms passes. Returns the last counts. */
static int wait_spread(unsigned want, int timeout_ms, int counts[3])
{
	double end = h_now_ms() + timeout_ms;
	int others, errors;

	for (;;) {
		unsigned seen = 0;
		int k;
		spread("/echo/x", 12, counts, &others, &errors);
		for (k = 0; k < 3; k++)
			if (counts[k])
				seen |= 1u << k;
		if ((seen & want) == want && errors == 0)
			return 0;
		if (h_now_ms() > end)
			return -1;
		usleep(200 * 1000);
	}
}

static void test_two_dns_backends_are_discovered_and_balanced(void **state)
{
	int counts[3], others, errors;

	(void)state;
	assert_int_equal(wait_spread(0x3, 15000, counts), 0);
	spread("/echo/x", 40, counts, &others, &errors);
	assert_int_equal(errors, 0);
	assert_int_equal(others, 0);
	assert_int_equal(counts[2], 0);
	/* roundrobin over two healthy servers: an even split. */
	assert_true(counts[0] >= 15 && counts[1] >= 15);
}

static void test_a_record_service_is_reached(void **state)
{
	struct h_resp r;
	double end = h_now_ms() + 10000;

	(void)state;
	for (;;) {
		assert_int_equal(h_get(&r, &S, "/single/x", NULL), 0);
		if (r.status == 200 || h_now_ms() > end)
			break;
		h_resp_free(&r);
		usleep(200 * 1000);
	}
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"service\":\"single\""));
	h_resp_free(&r);
}

static void test_third_backend_added_to_dns_gets_traffic_without_reload(void **state)
{
	int counts[3];

	(void)state;
	echo[2] = h_start_echo(&S, "echo3", echo_port[2]);
	/* dnsmasq reads srv-host only at start: restart it on the same port.
	 * HAProxy keeps running and re-resolves on its own. */
	h_stop(dns, 3000);
	start_dns(3);
	assert_int_equal(wait_spread(0x7, 20000, counts), 0);
	assert_true(h_alive(haproxy));
	assert_int_equal(haproxy->pid, haproxy_pid);
}

static void test_stopped_backend_is_taken_out_by_health_checks(void **state)
{
	int counts[3], others, errors;

	(void)state;
	h_stop(echo[1], 3000);
	/* fall 1 at a 300ms interval: well within two seconds. */
	usleep(2000 * 1000);
	spread("/echo/x", 30, counts, &others, &errors);
	assert_int_equal(errors, 0);
	assert_int_equal(counts[1], 0);
	assert_true(counts[0] > 0);
}

static void test_cors_preflight_from_allowed_origin_is_answered(void **state)
{
	const char *const hdrs[] = { origin_ok, "Access-Control-Request-Method: POST",
				     "Access-Control-Request-Headers: content-type", NULL };
	char url[128];
	struct h_resp r;

	(void)state;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo/x", S.http_port);
	assert_int_equal(h_http(&r, "OPTIONS", url, hdrs, NULL), 0);
	assert_int_equal(r.status, 204);
	assert_string_equal(h_header(&r, "Access-Control-Allow-Origin"), "https://app.example.com");
	assert_string_equal(h_header(&r, "Access-Control-Allow-Methods"), "GET, POST");
	assert_string_equal(h_header(&r, "Access-Control-Allow-Headers"), "Authorization, Content-Type");
	assert_string_equal(h_header(&r, "Access-Control-Allow-Credentials"), "true");
	assert_string_equal(h_header(&r, "Access-Control-Max-Age"), "600");
	assert_string_equal(h_header(&r, "Vary"),
			    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
	/* Answered by the gateway: the echo backend never saw it. */
	assert_null(h_header(&r, "X-Echo-Service"));
	h_resp_free(&r);
}

static void test_cors_preflight_from_other_origin_gets_no_cors_headers(void **state)
{
	const char *const hdrs[] = { origin_bad, "Access-Control-Request-Method: POST", NULL };
	char url[128];
	struct h_resp r;

	(void)state;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo/x", S.http_port);
	assert_int_equal(h_http(&r, "OPTIONS", url, hdrs, NULL), 0);
	assert_int_equal(r.status, 204);
	assert_null(h_header(&r, "Access-Control-Allow-Origin"));
	assert_null(h_header(&r, "Access-Control-Allow-Methods"));
	assert_null(h_header(&r, "Access-Control-Allow-Credentials"));
	h_resp_free(&r);
}

static void test_cors_actual_requests_by_origin(void **state)
{
	const char *const ok[] = { origin_ok, NULL };
	const char *const bad[] = { origin_bad, NULL };
	struct h_resp r;

	(void)state;
	assert_int_equal(h_get(&r, &S, "/echo/x", ok), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(h_header(&r, "Access-Control-Allow-Origin"), "https://app.example.com");
	assert_string_equal(h_header(&r, "Access-Control-Allow-Credentials"), "true");
	assert_string_equal(h_header(&r, "Access-Control-Expose-Headers"), "X-Request-Id");
	assert_string_equal(h_header(&r, "Vary"), "Origin");
	h_resp_free(&r);

	assert_int_equal(h_get(&r, &S, "/echo/x", bad), 0);
	assert_int_equal(r.status, 200);
	assert_null(h_header(&r, "Access-Control-Allow-Origin"));
	assert_null(h_header(&r, "Access-Control-Allow-Credentials"));
	h_resp_free(&r);

	/* The gateway's own answers carry CORS headers too. */
	assert_int_equal(h_get(&r, &S, "/nowhere", ok), 0);
	assert_int_equal(r.status, 404);
	assert_string_equal(h_header(&r, "Access-Control-Allow-Origin"), "https://app.example.com");
	h_resp_free(&r);
}

static void test_strip_prefix_and_header_transforms(void **state)
{
	const char *const hdrs[] = { "Cookie: session=secret", NULL };
	struct h_resp r;

	(void)state;
	assert_int_equal(h_get(&r, &S, "/echo/hello/world?q=1", hdrs), 0);
	assert_int_equal(r.status, 200);
	/* Seen by the backend. */
	assert_non_null(strstr(r.body, "\"path\":\"/hello/world?q=1\""));
	assert_non_null(strstr(r.body, "\"x-api-version\":\"v1\""));
	assert_null(strstr(r.body, "\"cookie\""));
	/* Seen by the client. */
	assert_string_equal(h_header(&r, "Cache-Control"), "no-store");
	assert_null(h_header(&r, "X-Echo-Service"));
	h_resp_free(&r);

	/* The bare prefix becomes "/". */
	assert_int_equal(h_get(&r, &S, "/echo", NULL), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"path\":\"/\""));
	h_resp_free(&r);
}

static void test_spoofed_identity_headers_never_reach_a_backend(void **state)
{
	const char *const hdrs[] = { "X-User-ID: admin", "x-user-roles: root",
				     "X-USER-EMAIL: a@b.c", "X-Gateway-Route: x", NULL };
	struct h_resp r;

	(void)state;
	assert_int_equal(h_get(&r, &S, "/echo/x", hdrs), 0);
	assert_int_equal(r.status, 200);
	assert_null(strstr(r.body, "x-user-"));
	assert_null(strstr(r.body, "x-gateway-"));
	assert_null(strstr(r.body, "admin"));
	h_resp_free(&r);
}

/* The gateway's own answer: want, then the request id the client was
 * given in X-Request-ID. */
static void assert_json_answer(const struct h_resp *r, const char *want)
{
	char full[512];
	const char *id = h_header(r, "X-Request-ID");

	assert_non_null(id);
	snprintf(full, sizeof(full), "%s,\"request_id\":\"%s\"}", want, id);
	assert_string_equal(r->body, full);
}

static void test_unknown_path_is_a_json_404(void **state)
{
	struct h_resp r;

	(void)state;
	assert_int_equal(h_get(&r, &S, "/api/nothing/here", NULL), 0);
	assert_int_equal(r.status, 404);
	assert_json_answer(&r, "{\"error\":\"not_found\"");
	assert_string_equal(h_header(&r, "Content-Type"), "application/json");
	h_resp_free(&r);
	/* "*" is exactly one segment. */
	assert_int_equal(h_get(&r, &S, "/single/a/b", NULL), 0);
	assert_int_equal(r.status, 404);
	h_resp_free(&r);
}

static void test_method_not_allowed_is_405(void **state)
{
	char url[128];
	struct h_resp r;

	(void)state;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo/x", S.http_port);
	assert_int_equal(h_http(&r, "DELETE", url, NULL, NULL), 0);
	assert_int_equal(r.status, 405);
	assert_json_answer(&r, "{\"error\":\"method_not_allowed\"");
	assert_string_equal(h_header(&r, "Allow"), "GET, POST");
	h_resp_free(&r);
}

int main(void)
{
	/* Order matters for the discovery tests: two, then three, then one
	 * stopped; the others do not care how many backends are up. */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_dns_backends_are_discovered_and_balanced),
		cmocka_unit_test(test_a_record_service_is_reached),
		cmocka_unit_test(test_third_backend_added_to_dns_gets_traffic_without_reload),
		cmocka_unit_test(test_stopped_backend_is_taken_out_by_health_checks),
		cmocka_unit_test(test_cors_preflight_from_allowed_origin_is_answered),
		cmocka_unit_test(test_cors_preflight_from_other_origin_gets_no_cors_headers),
		cmocka_unit_test(test_cors_actual_requests_by_origin),
		cmocka_unit_test(test_strip_prefix_and_header_transforms),
		cmocka_unit_test(test_spoofed_identity_headers_never_reach_a_backend),
		cmocka_unit_test(test_unknown_path_is_a_json_404),
		cmocka_unit_test(test_method_not_allowed_is_405),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
