/*
 * Authentication through the gRPC Auth Service, end to end: HAProxy, the
 * agent with auth.mode service, and spogate-refsvc as the Auth Service.
 * The service's call counter proves caching and coalescing; stopping it
 * proves the deadline and the circuit breaker.
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

#include "harness.h"
#include "test_auth_util.h"

static struct h_stack S;
static struct h_proc *agent, *refsvc;
static char refsvc_args[1024];

static int setup(void **state)
{
	const char *cfg;

	(void)state;
	h_stack_init(&S, "auth_service");
	h_set_var(&S, "PROCESSING", "1s");
	t_keygen(&S, "1");
	snprintf(refsvc_args, sizeof(refsvc_args), "--jwks %s/keys/jwks1.json --issuer %s "
	         "--audience %s", S.dir, T_ISS, T_AUD);
	refsvc = t_start_refsvc(&S, refsvc_args);
	h_start_echo(&S, "echo", S.echo_port);
	cfg = h_write(&S, "agent.json",
	              "{\"log_level\":\"info\",\"threads\":2,"
	              "\"auth\":{\"mode\":\"service\",\"service_target\":\"ipv4:127.0.0.1:%d\","
	              "\"timeout_ms\":200,\"cache_ttl_ms\":60000,\"negative_cache_ttl_ms\":5000,"
	              "\"claims\":[{\"claim\":\"sub\"},{\"claim\":\"roles\",\"var\":\"roles\"},"
	              "{\"claim\":\"email\",\"var\":\"email\"}]}}",
	              S.refsvc_port);
	agent = t_start_agent_haproxy(&S, cfg);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	h_stack_stop(&S);
	return 0;
}

static void test_valid_tokens_reach_backend_with_identity(void **state)
{
	static const char *const algs[][3] = {
		{ "HS256", "hs1.key", "hs1" }, { "RS256", "rsa1.pem", "rsa1" },
		{ "ES256", "ec1.pem", "ec1" },
	};
	struct h_resp r;
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++) {
		char *t = t_token(&S, algs[i][0], algs[i][1], algs[i][2], "alice");

		assert_int_equal(t_get(&r, &S, "/private/me", t), 0);
		if (r.status != 200)
			fprintf(stderr, "# %s: %ld %s\n", algs[i][0], r.status, r.body);
		assert_int_equal(r.status, 200);
		assert_non_null(strcasestr(r.body, "\"x-user-id\":\"alice\""));
		assert_non_null(strcasestr(r.body, "\"x-user-roles\":\"admin,dev\""));
		assert_non_null(strcasestr(r.body, "\"x-user-email\":\"alice@example.com\""));
		h_resp_free(&r);
		free(t);
	}
}

static void test_second_identical_request_does_not_reach_the_service(void **state)
{
	char *t = t_token(&S, "RS256", "rsa1.pem", "rsa1", "bob");
	long before;
	int i;

	(void)state;
	before = t_calls(&S, "validate");
	for (i = 0; i < 5; i++) {
		struct h_resp r;

		assert_int_equal(t_get(&r, &S, "/private/x", t), 0);
		assert_int_equal(r.status, 200);
		h_resp_free(&r);
	}
	assert_int_equal(t_calls(&S, "validate") - before, 1);
	free(t);
}

static void test_service_refusals_keep_their_reason_and_are_cached_briefly(void **state)
{
	char *t = t_mint(&S, "--sub alice --alg RS256 --key rsa1.pem --kid rsa1 --iss %s --aud %s "
	                     "--exp -120", T_ISS, T_AUD);
	long before;

	(void)state;
	before = t_calls(&S, "validate");
	t_expect(&S, "/private/x", t, 401, "token_expired");
	t_expect(&S, "/private/x", t, 401, "token_expired");
	t_expect(&S, "/private/x", t, 401, "token_expired");
	assert_int_equal(t_calls(&S, "validate") - before, 1);
	free(t);
	t = t_mint(&S, "--sub alice --alg RS256 --key rsa1.pem --kid rsa1 --iss https://evil "
	               "--aud %s", T_AUD);
	t_expect(&S, "/private/x", t, 401, "issuer_mismatch");
	free(t);
	t = t_mint(&S, "--sub alice --alg HS256 --key rsa1.pub.pem --kid rsa1 --iss %s --aud %s",
	           T_ISS, T_AUD);
	t_expect(&S, "/private/x", t, 401, "token_invalid");
	free(t);
	/* An identity the service vouches for but that cannot be a header. */
	t = t_mint(&S, "--sub x --claim 'sub=eve\\r\\nX-Admin: 1' --alg RS256 --key rsa1.pem "
	               "--kid rsa1 --iss %s --aud %s", T_ISS, T_AUD);
	t_expect(&S, "/private/x", t, 401, "token_invalid");
	free(t);
}

static void test_concurrent_identical_requests_make_one_rpc(void **state)
{
	char *t = t_token(&S, "ES256", "ec1.pem", "ec1", "carol"), hdr[4096], url[128];
	long st[200], before;
	int i;

	(void)state;
	/* Slow answers keep the first call in flight while the rest arrive. */
	t_refsvc_admin(&S, "delay?ms=100");
	before = t_calls(&S, "validate");
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", t);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/private/burst", S.http_port);
	assert_int_equal(h_http_many(url, (const char *const[]){ hdr, NULL }, 200, 50, st, NULL), 0);
	t_refsvc_admin(&S, "delay?ms=0");
	for (i = 0; i < 200; i++)
		assert_int_equal(st[i], 200);
	assert_int_equal(t_calls(&S, "validate") - before, 1);
	free(t);
}

static void test_slow_service_is_503_within_the_deadline(void **state)
{
	char *t = t_token(&S, "RS256", "rsa1.pem", "rsa1", "slow");
	struct h_resp r;

	(void)state;
	t_refsvc_admin(&S, "delay?ms=600");
	assert_int_equal(t_get(&r, &S, "/private/x", t), 0);
	t_refsvc_admin(&S, "delay?ms=0");
	fprintf(stderr, "# slow service: %ld in %.0f ms\n", r.status, r.seconds * 1000);
	assert_int_equal(r.status, 503);
	assert_non_null(strstr(r.body, "\"reason\":\"auth_unavailable\""));
	assert_true(r.seconds < 0.45);
	h_resp_free(&r);
	/* Not cached: once the service is fast again the token works. */
	usleep(700000);                  /* the late answer drains */
	assert_int_equal(t_get(&r, &S, "/private/x", t), 0);
	assert_int_equal(r.status, 200);
	h_resp_free(&r);
	free(t);
}

static void test_service_down_is_503_at_once_and_recovers(void **state)
{
	char tok_name[32];
	struct h_resp r;
	double worst = 0, end;
	int i, ok = 0;

	(void)state;
	assert_true(h_stop(refsvc, 3000) >= 0);
	for (i = 0; i < 10; i++) {
		char *t;

		snprintf(tok_name, sizeof(tok_name), "down%d", i);
		t = t_token(&S, "HS256", "hs1.key", "hs1", tok_name);
		assert_int_equal(t_get(&r, &S, "/private/x", t), 0);
		assert_int_equal(r.status, 503);
		assert_non_null(strstr(r.body, "\"reason\":\"auth_unavailable\""));
		if (r.seconds > worst)
			worst = r.seconds;
		h_resp_free(&r);
		free(t);
	}
	fprintf(stderr, "# service down: slowest 503 in %.0f ms\n", worst * 1000);
	assert_true(worst < 0.25);
	assert_true(h_metric(S.metrics_port,
	                     "spogate_grpc_calls_total{service=\"auth\",result=\"refused\"}") > 0);
	/* Back on the same port: recovered within a few seconds. */
	refsvc = t_start_refsvc(&S, refsvc_args);
	end = h_now_ms() + 5000;
	while (h_now_ms() < end && !ok) {
		char *t = t_token(&S, "HS256", "hs1.key", "hs1", "back");

		assert_int_equal(t_get(&r, &S, "/private/x", t), 0);
		ok = r.status == 200;
		h_resp_free(&r);
		free(t);
		if (!ok)
			usleep(200000);
	}
	assert_true(ok);
	assert_true(h_alive(agent));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_tokens_reach_backend_with_identity),
		cmocka_unit_test(test_second_identical_request_does_not_reach_the_service),
		cmocka_unit_test(test_service_refusals_keep_their_reason_and_are_cached_briefly),
		cmocka_unit_test(test_concurrent_identical_requests_make_one_rpc),
		cmocka_unit_test(test_slow_service_is_503_within_the_deadline),
		cmocka_unit_test(test_service_down_is_503_at_once_and_recovers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
