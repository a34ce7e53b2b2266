/*
 * Authorization end to end: HAProxy, the agent (local JWT + authz.mode
 * service), spogate-refsvc as the Authz Service with a JSON policy, and
 * then the agent again with authz.mode claims and no service at all.
 *
 * Routes (conf/auth.cfg.in): /perm/<permission>/... asks for <permission>;
 * /blog/ asks for blog.read on GET and blog.delete on DELETE.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
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

static const char policy[] =
	"{\"users\":{\"alice\":[\"admin\"],\"bob\":[\"reader\"],\"carol\":[\"editor\"]},"
	" \"roles\":{\"admin\":[\"*\"],\"reader\":[\"blog.read\",\"user.read\"],"
	"            \"editor\":[\"blog.*\"]}}";

static void begin_stack(const char *name)
{
	h_stack_init(&S, name);
	h_set_var(&S, "PROCESSING", "1s");
	t_keygen(&S, "1");
	h_start_echo(&S, "echo", S.echo_port);
}

static void finish_stack(const char *authz)
{
	const char *cfg;

	cfg = h_write(&S, "agent.json",
	              "{\"log_level\":\"info\",\"threads\":2,"
	              "\"auth\":{\"mode\":\"jwt\",\"issuer\":\"%s\",\"audiences\":[\"%s\"],"
	              "\"jwks_file\":\"%s/keys/jwks1.json\",\"algorithms\":[\"RS256\"]},"
	              "\"authz\":%s}",
	              T_ISS, T_AUD, S.dir, authz);
	agent = h_start_agent(&S, cfg, NULL);
	h_render(&S, "tests/integration/conf/auth-spoe.conf.in", "auth-spoe.conf");
	h_start_haproxy(&S, h_render(&S, "tests/integration/conf/auth.cfg.in", "haproxy.cfg"));
}

static int setup_service(void **state)
{
	char authz[256];

	(void)state;
	begin_stack("authz");
	snprintf(refsvc_args, sizeof(refsvc_args), "--policy %s",
	         h_write(&S, "policy.json", "%s", policy));
	refsvc = t_start_refsvc(&S, refsvc_args);
	/* timeout_ms well above the 100 ms delay of the coalescing test: at
	 * 200 ms a loaded machine let that one RPC miss its deadline and all
	 * 200 requests answered 503; still below HAProxy's 1 s processing. */
	snprintf(authz, sizeof(authz),
	         "{\"mode\":\"service\",\"service_target\":\"ipv4:127.0.0.1:%d\","
	         "\"timeout_ms\":600,\"cache_ttl_ms\":1500}", S.refsvc_port);
	finish_stack(authz);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	h_stack_stop(&S);
	return 0;
}

/* A token for user with optional extra mint arguments (no roles: the
 * policy file decides). */
static char *tok(const char *user, const char *extra)
{
	return t_mint(&S, "--sub %s --alg RS256 --key rsa1.pem --kid rsa1 --iss %s --aud %s %s",
	              user, T_ISS, T_AUD, extra ? extra : "");
}

static long req(const char *method, const char *path, const char *t, char **body)
{
	struct h_resp r;
	char url[256], hdr[4096];
	long st;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", S.http_port, path);
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", t);
	assert_int_equal(h_http(&r, method, url, (const char *const[]){ hdr, NULL }, NULL), 0);
	st = r.status;
	if (body)
		*body = strdup(r.body ? r.body : "");
	h_resp_free(&r);
	return st;
}

static void test_allowed_is_200_and_denied_is_403_json(void **state)
{
	char *bob = tok("bob", NULL), *body = NULL;

	(void)state;
	assert_int_equal(req(NULL, "/perm/user.read/x", bob, NULL), 200);
	assert_int_equal(req(NULL, "/perm/user.write/x", bob, &body), 403);
	assert_string_equal(body, "{\"error\":\"forbidden\",\"reason\":\"permission_denied\"}");
	free(body);
	free(bob);
}

static void test_per_method_permissions(void **state)
{
	char *bob = tok("bob", NULL), *carol = tok("carol", NULL);

	(void)state;
	assert_int_equal(req("GET", "/blog/1", bob, NULL), 200);
	assert_int_equal(req("DELETE", "/blog/1", bob, NULL), 403);
	/* editor has blog.* */
	assert_int_equal(req("DELETE", "/blog/1", carol, NULL), 200);
	assert_int_equal(req("GET", "/perm/user.read/1", carol, NULL), 403);
	free(bob);
	free(carol);
}

static void test_roles_from_the_token_are_sent_to_the_service(void **state)
{
	char *dave = tok("dave", "--roles reader");

	(void)state;
	assert_int_equal(req(NULL, "/perm/user.read/x", dave, NULL), 200);
	assert_int_equal(req(NULL, "/perm/user.write/x", dave, NULL), 403);
	free(dave);
}

static void test_200_concurrent_requests_make_one_rpc(void **state)
{
	char *alice = tok("alice", NULL), hdr[4096], url[128];
	long st[200], before;
	int i;

	(void)state;
	t_refsvc_admin(&S, "delay?ms=100");
	before = t_calls(&S, "check");
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", alice);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/perm/report.export/x", S.http_port);
	assert_int_equal(h_http_many(url, (const char *const[]){ hdr, NULL }, 200, 50, st, NULL), 0);
	t_refsvc_admin(&S, "delay?ms=0");
	for (i = 0; i < 200; i++)
		assert_int_equal(st[i], 200);
	assert_int_equal(t_calls(&S, "check") - before, 1);
	free(alice);
}

static void test_cache_expires_after_its_ttl(void **state)
{
	char *carol = tok("carol", NULL);   /* a (user, permission) not seen yet */
	long before;

	(void)state;
	before = t_calls(&S, "check");
	assert_int_equal(req(NULL, "/perm/blog.ttl/x", carol, NULL), 200);
	assert_int_equal(req(NULL, "/perm/blog.ttl/x", carol, NULL), 200);
	assert_int_equal(req(NULL, "/perm/blog.ttl/x", carol, NULL), 200);
	assert_int_equal(t_calls(&S, "check") - before, 1);
	usleep(1700000);                 /* cache_ttl_ms is 1500 */
	assert_int_equal(req(NULL, "/perm/blog.ttl/x", carol, NULL), 200);
	assert_int_equal(t_calls(&S, "check") - before, 2);
	free(carol);
}

static void test_service_down_is_503_and_recovers(void **state)
{
	char *carol = tok("carol", NULL), *body = NULL, path[64];
	struct h_resp r;
	char hdr[4096];
	double end;
	int ok = 0, i;

	(void)state;
	assert_true(h_stop(refsvc, 3000) >= 0);
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", carol);
	for (i = 0; i < 5; i++) {
		snprintf(path, sizeof(path), "/perm/down.%d/x", i);
		assert_int_equal(h_get(&r, &S, path, (const char *const[]){ hdr, NULL }), 0);
		assert_int_equal(r.status, 503);
		assert_non_null(strstr(r.body, "\"reason\":\"authz_unavailable\""));
		assert_true(r.seconds < 0.45);
		h_resp_free(&r);
	}
	refsvc = t_start_refsvc(&S, refsvc_args);
	end = h_now_ms() + 5000;
	while (!ok && h_now_ms() < end) {
		ok = req(NULL, "/perm/blog.write/back", carol, &body) == 200;
		free(body);
		body = NULL;
		if (!ok)
			usleep(200000);
	}
	assert_true(ok);
	free(carol);
}

/* ---- claims mode: a second stack, no service anywhere ---- */

static int setup_claims(void **state)
{
	(void)state;
	begin_stack("authz_claims");
	finish_stack("{\"mode\":\"claims\"}");
	return 0;
}

static void test_claims_mode_allows_and_denies_without_rpc(void **state)
{
	char *t = tok("erin", "--permissions blog.read,report.* --scope 'user.read user.write'");
	char *none = tok("frank", NULL);

	(void)state;
	assert_int_equal(req("GET", "/blog/1", t, NULL), 200);
	assert_int_equal(req("DELETE", "/blog/1", t, NULL), 403);
	assert_int_equal(req(NULL, "/perm/user.write/x", t, NULL), 200);
	assert_int_equal(req(NULL, "/perm/report.export/x", t, NULL), 200);
	assert_int_equal(req(NULL, "/perm/admin/x", t, NULL), 403);
	assert_int_equal(req(NULL, "/perm/user.read/x", none, NULL), 403);
	/* no permission on the route: authentication alone decides */
	assert_int_equal(req(NULL, "/private/x", none, NULL), 200);
	assert_true(h_metric(S.metrics_port,
	                     "spogate_authz_events_total{event=\"denied\"}") >= 3);
	assert_true(h_metric(S.metrics_port,
	                     "spogate_grpc_calls_total{service=\"authz\",result=\"started\"}") < 0);
	free(t);
	free(none);
}

/* Identities used to keep 64 roles and 64 permissions and drop the rest
 * silently: the 65th permission answered 403. */
static void test_permissions_past_the_64th_are_kept(void **state)
{
	char perms[2048], scope[2048], *t;
	size_t n = 0, m = 0;
	int i;

	(void)state;
	for (i = 0; i < 100; i++) {
		n += (size_t)snprintf(perms + n, sizeof(perms) - n, "%sp.%d", i ? "," : "", i);
		m += (size_t)snprintf(scope + m, sizeof(scope) - m, "%ss.%d", i ? " " : "", i);
	}
	{
		char extra[4200];

		snprintf(extra, sizeof(extra), "--permissions %s --scope '%s'", perms, scope);
		t = tok("gina", extra);
	}
	assert_int_equal(req(NULL, "/perm/p.0/x", t, NULL), 200);
	assert_int_equal(req(NULL, "/perm/p.63/x", t, NULL), 200);
	assert_int_equal(req(NULL, "/perm/p.64/x", t, NULL), 200);
	assert_int_equal(req(NULL, "/perm/p.99/x", t, NULL), 200);
	assert_int_equal(req(NULL, "/perm/s.99/x", t, NULL), 200);
	assert_int_equal(req(NULL, "/perm/p.100/x", t, NULL), 403);
	free(t);
}

/* ---- on_error allow: a dead service lets requests through, counted ---- */

static int setup_on_error_allow(void **state)
{
	char authz[256];

	(void)state;
	begin_stack("authz_on_error");
	/* Nothing listens on the refsvc port in this stack. */
	snprintf(authz, sizeof(authz),
	         "{\"mode\":\"service\",\"service_target\":\"ipv4:127.0.0.1:%d\","
	         "\"on_error\":\"allow\"}", S.refsvc_port);
	finish_stack(authz);
	return 0;
}

static void test_on_error_allow_lets_requests_through_and_says_so(void **state)
{
	char *bob = tok("bob", NULL);
	int i;

	(void)state;
	for (i = 0; i < 5; i++)
		assert_int_equal(req(NULL, "/perm/user.write/x", bob, NULL), 200);
	assert_true(h_metric(S.metrics_port,
	                     "spogate_authz_events_total{event=\"allowed_on_error\"}") >= 5);
	assert_int_equal(h_wait_log(agent, "ALLOWING", 2000), 0);
	free(bob);
}

int main(void)
{
	const struct CMUnitTest service[] = {
		cmocka_unit_test(test_allowed_is_200_and_denied_is_403_json),
		cmocka_unit_test(test_per_method_permissions),
		cmocka_unit_test(test_roles_from_the_token_are_sent_to_the_service),
		cmocka_unit_test(test_200_concurrent_requests_make_one_rpc),
		cmocka_unit_test(test_cache_expires_after_its_ttl),
		cmocka_unit_test(test_service_down_is_503_and_recovers),
	};
	const struct CMUnitTest claims[] = {
		cmocka_unit_test(test_claims_mode_allows_and_denies_without_rpc),
		cmocka_unit_test(test_permissions_past_the_64th_are_kept),
	};
	const struct CMUnitTest on_error[] = {
		cmocka_unit_test(test_on_error_allow_lets_requests_through_and_says_so),
	};
	int rc;

	rc = cmocka_run_group_tests_name("authz_service", service, setup_service, teardown);
	rc += cmocka_run_group_tests_name("authz_claims", claims, setup_claims, teardown);
	rc += cmocka_run_group_tests_name("authz_on_error", on_error, setup_on_error_allow,
	                                  teardown);
	return rc;
}
