/*
 * Authentication, local JWT mode, end to end: a real HAProxy 2.6, the
 * agent with auth.mode jwt, and the echo backend that shows which identity
 * headers arrived. Tokens come from spogate-refsvc mint (libjwt).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "harness.h"
#include "jwt_verify.h"
#include "test_auth_util.h"

static struct h_stack S;
static struct h_proc *agent;

static void write_jwks(const char *tags)
{
	char dest[600];

	snprintf(dest, sizeof(dest), "%s/keys/jwks.json", S.dir);
	t_merge_jwks(&S, tags, dest);
}

static int setup(void **state)
{
	const char *cfg;

	(void)state;
	h_stack_init(&S, "auth_jwt");
	h_set_var(&S, "PROCESSING", "1s");
	t_keygen(&S, "1");
	t_keygen(&S, "2");
	write_jwks("1");
	h_start_echo(&S, "echo", S.echo_port);
	cfg = h_write(&S, "agent.json",
	              "{\"log_level\":\"info\",\"threads\":2,"
	              "\"auth\":{\"mode\":\"jwt\",\"issuer\":\"%s\",\"audiences\":[\"%s\"],"
	              "\"jwks_file\":\"%s/keys/jwks.json\","
	              "\"algorithms\":[\"HS256\",\"RS256\",\"ES256\"],\"leeway_ms\":5000,"
	              "\"require_exp\":true,\"claims\":[{\"claim\":\"sub\",\"var\":\"user_id\"},"
	              "{\"claim\":\"roles\",\"var\":\"roles\",\"header\":\"X-User-Roles\"},"
	              "{\"claim\":\"email\",\"var\":\"email\"}]}}",
	              T_ISS, T_AUD, S.dir);
	agent = t_start_agent_haproxy(&S, cfg);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	h_stack_stop(&S);
	return 0;
}

static void expect_identity(const char *tok, const char *user)
{
	struct h_resp r;
	char want[128];

	assert_int_equal(t_get(&r, &S, "/private/me", tok), 0);
	if (r.status != 200)
		fprintf(stderr, "# got %ld %s\n", r.status, r.body ? r.body : "");
	assert_int_equal(r.status, 200);
	snprintf(want, sizeof(want), "\"%s\"", user);
	assert_non_null(strcasestr(r.body, "\"x-user-id\""));
	assert_non_null(strstr(r.body, want));
	assert_non_null(strcasestr(r.body, "\"x-user-roles\":\"admin,dev\""));
	snprintf(want, sizeof(want), "\"%s@example.com\"", user);
	assert_non_null(strstr(r.body, want));
	h_resp_free(&r);
}

static void test_valid_hs256_rs256_es256_reach_backend_with_identity(void **state)
{
	char *t;

	(void)state;
	t = t_token(&S, "HS256", "hs1.key", "hs1", "alice");
	expect_identity(t, "alice");
	free(t);
	t = t_token(&S, "RS256", "rsa1.pem", "rsa1", "bob");
	expect_identity(t, "bob");
	expect_identity(t, "bob");           /* and again from the cache */
	free(t);
	t = t_token(&S, "ES256", "ec1.pem", "ec1", "carol");
	expect_identity(t, "carol");
	free(t);
}

static void test_client_supplied_identity_header_is_replaced(void **state)
{
	char *t = t_token(&S, "RS256", "rsa1.pem", "rsa1", "alice"), hdr[4096];
	struct h_resp r;

	(void)state;
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", t);
	assert_int_equal(h_get(&r, &S, "/private/x",
	                       (const char *const[]){ hdr, "X-User-ID: mallory", NULL }), 0);
	assert_int_equal(r.status, 200);
	assert_null(strstr(r.body, "mallory"));
	h_resp_free(&r);
	free(t);
}

static void test_expired_token_is_401_token_expired(void **state)
{
	char *t = t_mint(&S, "--sub alice --alg RS256 --key rsa1.pem --kid rsa1 --iss %s --aud %s "
	                     "--exp -120", T_ISS, T_AUD);

	(void)state;
	t_expect(&S, "/private/x", t, 401, "token_expired");
	t_expect(&S, "/private/x", t, 401, "token_expired");   /* negative cache */
	free(t);
}

static void test_token_without_exp_is_401_when_exp_is_required(void **state)
{
	char *t = t_mint(&S, "--sub alice --alg RS256 --key rsa1.pem --kid rsa1 --iss %s --aud %s "
	                     "--exp none", T_ISS, T_AUD);

	(void)state;
	t_expect(&S, "/private/x", t, 401, "token_invalid");
	free(t);
}

static void test_nbf_in_the_future_is_401_token_not_yet_valid(void **state)
{
	char *t = t_mint(&S, "--sub alice --alg ES256 --key ec1.pem --kid ec1 --iss %s --aud %s "
	                     "--nbf +600", T_ISS, T_AUD);

	(void)state;
	t_expect(&S, "/private/x", t, 401, "token_not_yet_valid");
	free(t);
}

static void test_wrong_issuer_or_audience_is_401_with_its_reason(void **state)
{
	char *t = t_mint(&S, "--sub alice --alg RS256 --key rsa1.pem --kid rsa1 "
	                     "--iss https://evil.test --aud %s", T_AUD);

	(void)state;
	t_expect(&S, "/private/x", t, 401, "issuer_mismatch");
	free(t);
	t = t_mint(&S, "--sub alice --alg RS256 --key rsa1.pem --kid rsa1 --iss %s --aud web",
	           T_ISS);
	t_expect(&S, "/private/x", t, 401, "audience_mismatch");
	free(t);
}

static void test_unknown_kid_and_alg_none_are_401_token_invalid(void **state)
{
	char *t = t_mint(&S, "--sub alice --alg RS256 --key rsa1.pem --kid nope --iss %s --aud %s",
	                 T_ISS, T_AUD);

	(void)state;
	t_expect(&S, "/private/x", t, 401, "token_invalid");
	free(t);
	t = t_mint(&S, "--sub alice --alg none --kid rsa1 --iss %s --aud %s", T_ISS, T_AUD);
	t_expect(&S, "/private/x", t, 401, "token_invalid");
	free(t);
}

static void test_rs256_token_resigned_hs256_with_public_key_is_refused(void **state)
{
	/* HMAC keyed with the RSA public key's PEM text, kid of the RSA key:
	 * libjwt 1.10.2 alone would accept this (DESIGN.md). */
	char *t = t_mint(&S, "--sub admin --alg HS256 --key rsa1.pub.pem --kid rsa1 --iss %s "
	                     "--aud %s", T_ISS, T_AUD);

	(void)state;
	t_expect(&S, "/private/x", t, 401, "token_invalid");
	free(t);
	t = t_mint(&S, "--sub admin --alg HS256 --key rsa1.pub.pem --iss %s --aud %s", T_ISS, T_AUD);
	t_expect(&S, "/private/x", t, 401, "token_invalid");
	free(t);
}

static void test_malformed_tokens_are_401_token_invalid(void **state)
{
	char *good = t_token(&S, "HS256", "hs1.key", "hs1", "alice"), buf[4096];
	char *dot = strrchr(good, '.');

	(void)state;
	snprintf(buf, sizeof(buf), "%s", good);
	buf[5] = '*';                                  /* bad base64 */
	t_expect(&S, "/private/x", buf, 401, "token_invalid");
	snprintf(buf, sizeof(buf), "%.*s", (int)(dot - good), good);   /* two segments */
	t_expect(&S, "/private/x", buf, 401, "token_invalid");
	t_expect(&S, "/private/x", "a.b.c", 401, "token_invalid");
	t_expect(&S, "/private/x", "....", 401, "token_invalid");
	free(good);
}

static void test_non_json_payload_is_401_token_invalid(void **state)
{
	char hdr[128], pl[128], sig[128], tok[512], *secret = NULL;
	unsigned char mac[64];
	unsigned maclen;
	const char *h = "{\"alg\":\"HS256\",\"kid\":\"hs1\"}", *p = "this is not json";

	(void)state;
	assert_int_equal(h_run(&secret, "cat %s/keys/hs1.key", S.dir), 0);
	jwt_b64url_encode(hdr, (const unsigned char *)h, strlen(h));
	jwt_b64url_encode(pl, (const unsigned char *)p, strlen(p));
	snprintf(tok, sizeof(tok), "%s.%s", hdr, pl);
	HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)tok, strlen(tok), mac,
	     &maclen);
	jwt_b64url_encode(sig, mac, maclen);
	snprintf(tok, sizeof(tok), "%s.%s.%s", hdr, pl, sig);
	t_expect(&S, "/private/x", tok, 401, "token_invalid");
	free(secret);
}

static void test_subject_with_crlf_is_401_and_never_forwarded(void **state)
{
	char *t = t_mint(&S, "--sub x --claim 'sub=alice\\r\\nX-Admin: 1' --alg RS256 --key rsa1.pem "
	                     "--kid rsa1 --iss %s --aud %s", T_ISS, T_AUD);
	struct h_resp r;

	(void)state;
	t_expect(&S, "/private/x", t, 401, "token_invalid");
	free(t);
	/* a claim over 1 KiB is refused the same way */
	{
		char big[1500];

		memset(big, 'r', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		t = t_mint(&S, "--sub alice --roles %s --alg RS256 --key rsa1.pem --kid rsa1 "
		               "--iss %s --aud %s", big, T_ISS, T_AUD);
		t_expect(&S, "/private/x", t, 401, "token_invalid");
		free(t);
	}
	/* the agent is still there */
	assert_true(h_alive(agent));
	assert_int_equal(h_get(&r, &S, "/public/x", NULL), 0);
	assert_int_equal(r.status, 200);
	h_resp_free(&r);
}

static void test_oversized_tokens_are_refused_without_harm(void **state)
{
	size_t n = 9 * 1024, big = 64 * 1024;
	char *t = malloc(big + 1);
	struct h_resp r;

	(void)state;
	/* Over max_token_bytes (8 KiB) but within HAProxy's buffer: the agent
	 * answers token_invalid. */
	memset(t, 'A', n);
	t[100] = '.';
	t[200] = '.';
	t[n] = '\0';
	t_expect(&S, "/private/x", t, 401, "token_invalid");
	/* 64 KiB: HAProxy refuses the request head itself or the agent
	 * answers 401; never a 2xx, never a crash. What HAProxy sends for a
	 * head over its buffer depends on the version: 400 on 2.6 and 3.0,
	 * 431 on 3.2.x, 414 on 3.2.0 (a bug fixed in later 3.2 releases). */
	memset(t, 'A', big);
	t[100] = '.';
	t[200] = '.';
	t[big] = '\0';
	assert_int_equal(t_get(&r, &S, "/private/x", t), 0);
	fprintf(stderr, "# 64 KiB token: HTTP %ld\n", r.status);
	assert_true(r.status == 400 || r.status == 401 || r.status == 414 || r.status == 431);
	h_resp_free(&r);
	assert_true(h_alive(agent));
	free(t);
}

struct load {
	char url[128];
	char hdr[4096];
	int n;
	long *statuses;
	int errors;
	int done;
};

static void *load_main(void *arg)
{
	struct load *l = arg;

	l->errors = h_http_many(l->url, (const char *const[]){ l->hdr, NULL }, l->n, 8,
	                        l->statuses, NULL);
	__atomic_store_n(&l->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_key_rotation_by_sighup_under_load_loses_no_request(void **state)
{
	char *t1 = t_token(&S, "RS256", "rsa1.pem", "rsa1", "alice");
	char *t2 = t_token(&S, "ES256", "ec2.pem", "ec2", "dave");
	struct load l;
	pthread_t th;
	int i, bad = 0, reloads = 0;
	double t0;

	(void)state;
	t_expect(&S, "/private/x", t2, 401, "token_invalid");   /* ec2 unknown yet */
	memset(&l, 0, sizeof(l));
	snprintf(l.url, sizeof(l.url), "http://127.0.0.1:%d/private/load", S.http_port);
	snprintf(l.hdr, sizeof(l.hdr), "Authorization: Bearer %s", t1);
	l.n = 20000;
	l.statuses = calloc((size_t)l.n, sizeof(long));
	t0 = h_now_ms();
	assert_int_equal(pthread_create(&th, NULL, load_main, &l), 0);
	/* Both key sets, then reload for as long as requests flow. */
	write_jwks("12");
	while (!__atomic_load_n(&l.done, __ATOMIC_ACQUIRE)) {
		assert_int_equal(h_signal(agent, SIGHUP), 0);
		reloads++;
		usleep(10000);
	}
	pthread_join(th, NULL);
	for (i = 0; i < l.n; i++)
		if (l.statuses[i] != 200)
			bad++;
	fprintf(stderr, "# rotation: %d requests in %.0f ms, %d reloads, %d not 200, %d transport errors\n",
	        l.n, h_now_ms() - t0, reloads, bad, l.errors);
	assert_true(reloads >= 5);
	assert_int_equal(l.errors, 0);
	assert_int_equal(bad, 0);
	assert_true(h_metric(S.metrics_port, "spogate_auth_events_total{event=\"reloads\"}") >= 1);
	expect_identity(t2, "dave");
	/* Retire key set 1: its tokens stop working, even the cached one. */
	write_jwks("2");
	assert_int_equal(h_signal(agent, SIGHUP), 0);
	usleep(300000);
	t_expect(&S, "/private/x", t1, 401, "token_invalid");
	expect_identity(t2, "dave");
	/* A broken key file keeps the current keys. */
	assert_int_equal(h_run(NULL, "echo '{broken' > %s/keys/jwks.json", S.dir), 0);
	assert_int_equal(h_signal(agent, SIGHUP), 0);
	usleep(300000);
	expect_identity(t2, "dave");
	assert_true(h_alive(agent));
	free(l.statuses);
	free(t1);
	free(t2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_hs256_rs256_es256_reach_backend_with_identity),
		cmocka_unit_test(test_client_supplied_identity_header_is_replaced),
		cmocka_unit_test(test_expired_token_is_401_token_expired),
		cmocka_unit_test(test_token_without_exp_is_401_when_exp_is_required),
		cmocka_unit_test(test_nbf_in_the_future_is_401_token_not_yet_valid),
		cmocka_unit_test(test_wrong_issuer_or_audience_is_401_with_its_reason),
		cmocka_unit_test(test_unknown_kid_and_alg_none_are_401_token_invalid),
		cmocka_unit_test(test_rs256_token_resigned_hs256_with_public_key_is_refused),
		cmocka_unit_test(test_malformed_tokens_are_401_token_invalid),
		cmocka_unit_test(test_non_json_payload_is_401_token_invalid),
		cmocka_unit_test(test_subject_with_crlf_is_401_and_never_forwarded),
		cmocka_unit_test(test_oversized_tokens_are_refused_without_harm),
		cmocka_unit_test(test_key_rotation_by_sighup_under_load_loses_no_request),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
