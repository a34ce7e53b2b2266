/*
 * The ADR's request flow, end to end, on the `make run` stack
 * (tests/run-stack.sh on free ports): each step of the sequence diagram is
 * proved from the outside.
 *
 *   rate-limit check        Redis holds spogate:rl:* keys; RateLimit-* headers
 *   JWT validation          auth.mode service: refsvc's ValidateToken counter
 *   route permission        refsvc's CheckPermission counter; 403 for bob
 *   service discovery       HAProxy's `show servers state`: addresses from DNS
 *   forward with identity   the echo backend sees X-User-ID, transformed path
 *   response                CORS and rate-limit headers
 *
 * The same walk with auth.mode jwt and authz.mode claims makes no gRPC call.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"
#include "harness_sf.h"

static struct h_stack S;
static char run_dir[600];
static int p_gw, p_tls, p_stats, p_agent, p_metrics, p_redis, p_dns, p_refsvc, p_admin;

/* The users route (per user 5/10s, per IP 1000/60s) after one request:
 * both policies, as structured fields a client library can read
 * (draft-ietf-httpapi-ratelimit-headers-09/10), and the numbers of the
 * most restrictive one in RateLimit. */
static void check_structured_ratelimit(const struct h_resp *r)
{
	struct h_sf_item it[H_SF_MAX_ITEMS];
	char pol[256], rl[256];

	/* h_header's answer lives until its next call: copy each. */
	assert_non_null(h_header(r, "RateLimit-Policy"));
	snprintf(pol, sizeof(pol), "%s", h_header(r, "RateLimit-Policy"));
	assert_non_null(h_header(r, "RateLimit"));
	snprintf(rl, sizeof(rl), "%s", h_header(r, "RateLimit"));
	if (h_sf_list(pol, it, H_SF_MAX_ITEMS) != 2)
		fail_msg("RateLimit-Policy: %s: not a list of two items", pol);
	assert_int_equal(it[0].v.type, H_SF_STRING);
	assert_string_equal(it[0].v.text, "user");
	assert_int_equal(h_sf_param_int(&it[0], "q"), 5);
	assert_int_equal(h_sf_param_int(&it[0], "w"), 10);
	assert_int_equal(it[1].v.type, H_SF_STRING);
	assert_string_equal(it[1].v.text, "ip");
	assert_int_equal(h_sf_param_int(&it[1], "q"), 1000);
	assert_int_equal(h_sf_param_int(&it[1], "w"), 60);
	if (h_sf_list(rl, it, H_SF_MAX_ITEMS) != 1)
		fail_msg("RateLimit: %s: not a list of one item", rl);
	assert_int_equal(it[0].v.type, H_SF_STRING);
	assert_string_equal(it[0].v.text, "user");
	assert_true(h_sf_param_int(&it[0], "r") >= 0 && h_sf_param_int(&it[0], "r") <= 4);
	assert_true(h_sf_param_int(&it[0], "t") >= 1 && h_sf_param_int(&it[0], "t") <= 10);
	/* the older forms are still there */
	assert_int_equal(strtol(h_header(r, "RateLimit-Limit"), NULL, 10), 5);
	assert_int_equal(strtol(h_header(r, "X-RateLimit-Limit"), NULL, 10), 5);
}

static void start_stack(const char *test, const char *gateway)
{
	enum { NENV = 14 };
	char env[NENV][128];
	char *argv[NENV + 4];
	struct h_proc *p;
	int i;

	h_stack_init(&S, test);
	p_gw = S.http_port;
	p_stats = S.stats_port;
	p_agent = S.agent_port;
	p_metrics = S.metrics_port;
	p_redis = S.redis_port;
	p_dns = S.dns_port;
	p_refsvc = S.refsvc_port;
	p_admin = S.refsvc_admin_port;
	snprintf(run_dir, sizeof(run_dir), "%s/run", S.dir);
	snprintf(env[0], sizeof(env[0]), "SPOGATE_PORT_GATEWAY=%d", p_gw);
	snprintf(env[1], sizeof(env[1]), "SPOGATE_PORT_STATS=%d", p_stats);
	snprintf(env[2], sizeof(env[2]), "SPOGATE_PORT_AGENT=%d", p_agent);
	snprintf(env[3], sizeof(env[3]), "SPOGATE_PORT_METRICS=%d", p_metrics);
	snprintf(env[4], sizeof(env[4]), "SPOGATE_PORT_REDIS=%d", p_redis);
	snprintf(env[5], sizeof(env[5]), "SPOGATE_PORT_DNS=%d", p_dns);
	snprintf(env[6], sizeof(env[6]), "SPOGATE_PORT_REFSVC=%d", p_refsvc);
	snprintf(env[7], sizeof(env[7]), "SPOGATE_PORT_REFSVC_ADMIN=%d", p_admin);
	snprintf(env[8], sizeof(env[8]), "SPOGATE_PORT_IDENTITY=%d", h_free_port());
	snprintf(env[9], sizeof(env[9]), "SPOGATE_PORT_BLOG1=%d", h_free_port());
	snprintf(env[10], sizeof(env[10]), "SPOGATE_PORT_BLOG2=%d", h_free_port());
	snprintf(env[11], sizeof(env[11]), "SPOGATE_PORT_AUTH_BACKEND=%d", h_free_port());
	snprintf(env[12], sizeof(env[12]), "SPOGATE_GATEWAY=%s", gateway);
	p_tls = h_free_port();
	snprintf(env[13], sizeof(env[13]), "SPOGATE_PORT_TLS=%d", p_tls);
	argv[0] = (char *)"/usr/bin/env";
	for (i = 0; i < NENV; i++)
		argv[1 + i] = env[i];
	argv[NENV + 1] = (char *)"bash";
	argv[NENV + 2] = (char *)"tests/run-stack.sh";
	argv[NENV + 3] = NULL;
	if (setenv("SPOGATE_RUN_DIR", run_dir, 1) < 0)
		fail_msg("setenv");
	p = h_spawn(&S, "run-stack", argv);
	assert_int_equal(h_wait_log(p, "spogate is up.", 30000), 0);
}

static int teardown(void **state)
{
	(void)state;
	h_stack_stop(&S);
	return 0;
}

static char *mint(const char *sub, const char *perms)
{
	char *out = NULL;
	int rc = h_run(&out, "%s mint --sub %s --roles reader --key %s/keys/rsa1.pem --kid rsa1 "
	               "--alg RS256 --ttl 1h --permissions %s 2>&1",
	               h_bin("spogate-refsvc"), sub, run_dir, perms);

	assert_int_equal(rc, 0);
	out[strcspn(out, "\r\n")] = '\0';
	assert_true(strlen(out) > 20);
	return out;
}

static json_t *refsvc_calls(void)
{
	struct h_resp r;
	char url[128];
	json_t *j;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/calls", p_admin);
	assert_int_equal(h_http(&r, NULL, url, NULL, NULL), 0);
	assert_int_equal(r.status, 200);
	j = json_loads(r.body, 0, NULL);
	assert_non_null(j);
	h_resp_free(&r);
	return j;
}

static long long calls(const char *name)
{
	json_t *j = refsvc_calls();
	long long v = json_integer_value(json_object_get(j, name));

	json_decref(j);
	return v;
}

static char *stats_cmd(const char *cmd)
{
	struct sockaddr_un sa;
	char *out = calloc(1, 65536);
	size_t len = 0;
	ssize_t n;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/haproxy.sock", run_dir) >=
	    (int)sizeof(sa.sun_path) || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return out;
	}
	if (write(fd, cmd, strlen(cmd)) > 0 && write(fd, "\n", 1) > 0)
		while (len < 65535 && (n = read(fd, out + len, 65535 - len)) > 0)
			len += (size_t)n;
	close(fd);
	return out;
}

static void walk_the_flow(int service_mode)
{
	char *alice = mint("alice", "user.read,user.write,blog.post.read");
	char *bob = mint("bob", "blog.post.read");
	char auth_a[4096], auth_b[4096], url[256];
	const char *hdrs_a[] = { auth_a, "Origin: http://localhost:3000", "Cookie: secret=1",
	                         "X-User-ID: mallory", NULL };
	long long v0 = 0, c0 = 0;
	struct h_resp r;
	char *state, *keys = NULL;
	int i, got429 = 0, ok;

	snprintf(auth_a, sizeof(auth_a), "Authorization: Bearer %s", alice);
	snprintf(auth_b, sizeof(auth_b), "Authorization: Bearer %s", bob);
	if (service_mode) {
		v0 = calls("validate");
		c0 = calls("check");
	}
	/* make run serves HTTPS with HTTP/2 too, with the local CA it made
	 * (the tour's curl --cacert). */
	{
		char *out = NULL;
		h_run(&out, "curl -sS -i --http2 --cacert %s/certs/ca.pem -H '%s' "
		      "https://localhost:%d/api/v1/blog/1 2>&1", run_dir, auth_b, p_tls);
		if (!out || !strstr(out, "HTTP/2 200"))
			fail_msg("HTTPS through make run: %s", out ? out : "");
		free(out);
	}

	/* backends are discovered through DNS: wait until HAProxy has them */
	ok = 0;
	for (i = 0; i < 100 && !ok; i++) {
		assert_int_equal(h_get(&r, &S, "/api/v1/users/42", hdrs_a), 0);
		ok = r.status == 200;
		if (!ok) {
			h_resp_free(&r);
			usleep(100000);
		}
	}
	assert_true(ok);
	/* forwarded with identity, transformed, to identity-service */
	assert_non_null(strstr(r.body, "\"service\":\"identity-service\""));
	assert_non_null(strstr(r.body, "\"x-user-id\":\"alice\""));
	assert_null(strstr(r.body, "mallory"));
	assert_non_null(strstr(r.body, "\"path\":\"/users/42\""));
	assert_non_null(strstr(r.body, "\"x-api-version\":\"v1\""));
	assert_null(strstr(r.body, "secret=1"));
	/* response: CORS and rate-limit headers, response transformation */
	assert_non_null(h_header(&r, "Access-Control-Allow-Origin"));
	assert_string_equal(h_header(&r, "Access-Control-Allow-Origin"), "http://localhost:3000");
	assert_non_null(h_header(&r, "RateLimit-Limit"));
	assert_non_null(h_header(&r, "RateLimit-Remaining"));
	assert_string_equal(h_header(&r, "Cache-Control"), "no-store");
	check_structured_ratelimit(&r);
	h_resp_free(&r);
	/* a public route lists only the policy that applies there: per IP */
	assert_int_equal(h_get(&r, &S, "/api/v1/auth/login", hdrs_a), 0);
	{
		struct h_sf_item it[H_SF_MAX_ITEMS];

		assert_non_null(h_header(&r, "RateLimit-Policy"));
		assert_int_equal(h_sf_list(h_header(&r, "RateLimit-Policy"), it, H_SF_MAX_ITEMS), 1);
		assert_string_equal(it[0].v.text, "ip");
		assert_int_equal(h_sf_param_int(&it[0], "q"), 1000);
		assert_int_equal(h_sf_list(h_header(&r, "RateLimit"), it, H_SF_MAX_ITEMS), 1);
		assert_string_equal(it[0].v.text, "ip");
	}
	h_resp_free(&r);

	/* the rate-limit state is in Redis */
	assert_int_equal(h_run(&keys, "redis-cli -p %d --scan --pattern 'spogate:rl:*'", p_redis), 0);
	assert_non_null(strstr(keys, "spogate:rl:"));
	free(keys);

	/* JWT validation and permission checks went through gRPC, or not */
	if (service_mode) {
		assert_true(calls("validate") > v0);
		assert_true(calls("check") > c0);
		/* and the agent measured them */
		assert_true(h_metric(p_metrics,
		                     "spogate_grpc_call_seconds_count{service=\"auth\"}") >= 1);
		assert_true(h_metric(p_metrics,
		                     "spogate_grpc_call_seconds_count{service=\"authz\"}") >= 1);
		assert_true(h_metric(p_metrics,
		                     "spogate_grpc_calls_total{service=\"auth\",result=\"ok\"}") >= 1);
		/* the Authz Service itself was found through DNS */
		{
			char *log = NULL;

			assert_int_equal(h_run(&log, "cat '%s/logs/dnsmasq.log'", run_dir), 0);
			assert_non_null(strstr(log, "query[A] authz.service.consul"));
			free(log);
		}
		{
			char *problem = h_metrics_problem(p_metrics);

			if (problem)
				fail_msg("agent /metrics: %s", problem);
		}
	} else {
		json_t *j = refsvc_calls();

		assert_int_equal(json_integer_value(json_object_get(j, "validate")), 0);
		assert_int_equal(json_integer_value(json_object_get(j, "check")), 0);
		json_decref(j);
	}

	/* observability: HAProxy's stats page and Prometheus exporter on the
	 * admin frontend, with the gateway's own traffic in them */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", p_stats);
	assert_int_equal(h_http(&r, NULL, url, NULL, NULL), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "haproxy_frontend_http_requests_total{proxy=\"gateway\"}"));
	assert_non_null(strstr(r.body, "haproxy_backend_active_servers{proxy=\"svc_identity-service\"}"));
	h_resp_free(&r);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", p_stats);
	assert_int_equal(h_http(&r, NULL, url, NULL, NULL), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "Statistics Report"));
	h_resp_free(&r);

	/* discovery: HAProxy's servers of identity-service came from DNS */
	state = stats_cmd("show servers state svc_identity-service");
	assert_true(strstr(state, "127.0.0.2") != NULL || strstr(state, "127.0.0.3") != NULL);
	free(state);

	/* no token: 401 before any backend */
	assert_int_equal(h_get(&r, &S, "/api/v1/users/42", NULL), 0);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(r.body, "token_missing"));
	h_resp_free(&r);

	/* bob may read the blog but not users */
	assert_int_equal(h_get(&r, &S, "/api/v1/users/42",
	                       (const char *const[]){ auth_b, NULL }), 0);
	assert_int_equal(r.status, 403);
	assert_non_null(strstr(r.body, "permission_denied"));
	h_resp_free(&r);
	assert_int_equal(h_get(&r, &S, "/api/v1/blog/posts/1",
	                       (const char *const[]){ auth_b, NULL }), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"service\":\"blog-service\""));
	h_resp_free(&r);

	/* CORS preflight is answered by HAProxy */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/users/42", p_gw);
	assert_int_equal(h_http(&r, "OPTIONS", url,
	                        (const char *const[]){ "Origin: http://localhost:3000",
	                                               "Access-Control-Request-Method: POST", NULL },
	                        NULL), 0);
	assert_int_equal(r.status, 204);
	assert_non_null(h_header(&r, "Access-Control-Allow-Methods"));
	h_resp_free(&r);

	/* the per-user limit of the users route (5/10s) */
	for (i = 0; i < 8 && !got429; i++) {
		assert_int_equal(h_get(&r, &S, "/api/v1/users/42", hdrs_a), 0);
		if (r.status == 429) {
			got429 = 1;
			assert_non_null(strstr(r.body, "rate_limited_user"));
			assert_non_null(h_header(&r, "Retry-After"));
		}
		h_resp_free(&r);
	}
	assert_true(got429);
	free(alice);
	free(bob);
}

/* The README's reload: spogate-gen --reload with HAProxy's master pid
 * reloads the generated configuration without stopping the gateway. */
static void reload_haproxy_and_still_serve(void)
{
	char path[700], name[64], auth[4096];
	char *bob = mint("bob", "blog.post.read");
	struct h_resp r;
	int pid = 0, p, ok = 0, i;
	FILE *f;

	snprintf(path, sizeof(path), "%s/pids", run_dir);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fscanf(f, "%d %63s", &p, name) == 2)
		if (strcmp(name, "haproxy") == 0)
			pid = p;
	fclose(f);
	assert_true(pid > 0);
	{
		char *out = NULL;

		if (h_reload_haproxy(pid, run_dir, &out) != 0)
			fail_msg("spogate-gen --reload: %s", out ? out : "");
		free(out);
	}
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bob);
	for (i = 0; i < 50 && !ok; i++) {
		usleep(100000);
		assert_int_equal(h_get(&r, &S, "/api/v1/blog/posts/2",
		                       (const char *const[]){ auth, NULL }), 0);
		ok = r.status == 200 && i > 5;   /* keep serving well after the reload */
		h_resp_free(&r);
	}
	assert_true(ok);
	assert_int_equal(kill(pid, 0), 0);
	/* the master did reload: a second "Loading success." after "Reloading" */
	{
		char *log = NULL, *p2;

		snprintf(path, sizeof(path), "%s/logs/haproxy.log", run_dir);
		assert_int_equal(h_run(&log, "cat '%s'", path), 0);
		p2 = strstr(log, "Reloading HAProxy");
		assert_non_null(p2);
		assert_non_null(strstr(p2, "Loading success."));
		free(log);
	}
	free(bob);
}

/* Stops run-stack.sh as Ctrl-C would and checks that every process it
 * started (its pids file) is gone. */
static void stop_and_check_nothing_left(void)
{
	char path[700], name[64];
	struct h_proc *p = &S.procs[0];
	FILE *f;
	int pid, n = 0;

	snprintf(path, sizeof(path), "%s/pids", run_dir);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(h_stop(p, 15000), 0);
	while (fscanf(f, "%d %63s", &pid, name) == 2) {
		n++;
		if (kill(pid, 0) == 0)
			fail_msg("%s (pid %d) still runs after make run stopped", name, pid);
	}
	fclose(f);
	assert_true(n >= 9);
}

static void test_adr_flow_with_auth_and_authz_services(void **state)
{
	(void)state;
	start_stack("e2e-service", "config/examples/local.yaml");
	walk_the_flow(1);
	reload_haproxy_and_still_serve();
	stop_and_check_nothing_left();
}

static void test_adr_flow_with_local_jwt_and_claims(void **state)
{
	(void)state;
	start_stack("e2e-jwt", "config/examples/local-jwt.yaml");
	walk_the_flow(0);
	stop_and_check_nothing_left();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_adr_flow_with_auth_and_authz_services, teardown),
		cmocka_unit_test_teardown(test_adr_flow_with_local_jwt_and_claims, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
