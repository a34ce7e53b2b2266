/*
 * Rate limiting end to end: a real redis-server, a real HAProxy 2.6 with the
 * SPOE contract (conf/rl.cfg.in) and the real agent. Every test starts its
 * own stack on free loopback ports and stops it by PID.
 *
 * Per-user identity comes from real tokens: the agent verifies HS256 JWTs
 * locally (auth.mode jwt) with keys made by spogate-refsvc keygen, and
 * auth_for() mints one per user with spogate-refsvc mint.
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
#include <curl/curl.h>

#include "harness.h"
#include "redis_cluster_map.h"

/* redis.timeout_ms. Tests that need Redis's answer wait for it: a first
 * call on a busy machine (connect, NOSCRIPT, SCRIPT LOAD) can take more
 * than 50 ms, and a timeout there fails open and drops the RateLimit
 * headers. Tests that make Redis fail use the default 50 ms. */
#define TIMEOUT_MS 2000
#define FAULT_TIMEOUT_MS 50
/* What a request may take beyond FAULT_TIMEOUT_MS when Redis fails: far
 * below the SPOE processing timeout (2 s, so nothing waited for it), and
 * wide enough for a saturated shared machine's scheduling delays. */
#define FAULT_SLACK_MS 700
#define UNAVAILABLE_ALLOW "spogate_ratelimit_redis_unavailable_total{action=\"allow\"}"

static struct h_stack S;
static struct h_proc *redis;

/* The Authorization header that makes a request come from user. */
static char keydir[] = "/tmp/spogate-rl-keys-XXXXXX";

/* Keys shared by every stack of this file, made once. */
static const char *keys(void)
{
	static int made;

	if (!made) {
		if (!mkdtemp(keydir))
			fail_msg("mkdtemp");
		assert_int_equal(h_run(NULL, "%s keygen --dir %s >/dev/null 2>&1",
		                       h_bin("spogate-refsvc"), keydir), 0);
		made = 1;
	}
	return keydir;
}

/* "Authorization: Bearer <HS256 token with sub = user>", minted once per
 * user and remembered. */
static const char *auth_for(const char *user, char *buf, size_t len)
{
	static char *users[64], *tokens[64];
	static int n;
	char *out = NULL;
	int i;

	for (i = 0; i < n; i++)
		if (strcmp(users[i], user) == 0)
			break;
	if (i == n) {
		assert_true(n < 64);
		assert_int_equal(h_run(&out, "%s mint --sub '%s' --key %s/hs1.key --kid hs1 "
		                       "--alg HS256 --ttl 1h", h_bin("spogate-refsvc"), user,
		                       keys()), 0);
		out[strcspn(out, "\r\n")] = '\0';
		users[n] = strdup(user);
		tokens[n++] = out;
	}
	if (snprintf(buf, len, "Authorization: Bearer %s", tokens[i]) >= (int)len)
		fail_msg("auth_for: buffer of %zu bytes too small for the token", len);
	return buf;
}

struct opts {
	const char *rl_user;          /* global per-user policy */
	const char *rl_ip;            /* global per-IP policy */
	const char *rl_override;      /* /override/'s per-user policy */
	const char *rl_extra;         /* more rate_limiting members, JSON */
	const char *redis_extra;      /* more redis members, JSON */
	int threads;
	int timeout_ms;               /* redis.timeout_ms; 0 = TIMEOUT_MS */
};

static void start_pair(struct h_stack *s, const struct opts *o)
{
	const char *json, *cfg;

	h_set_var(s, "PROCESSING", "2s");
	h_set_var(s, "RL_USER", "%s", o->rl_user ? o->rl_user : "");
	h_set_var(s, "RL_IP", "%s", o->rl_ip ? o->rl_ip : "");
	h_set_var(s, "RL_USER_OVERRIDE", "%s", o->rl_override ? o->rl_override : "");
	h_start_echo(s, "echo", s->echo_port);
	json = h_write(s, "agent.json",
	               "{\"threads\": %d, \"log_level\": \"info\",\n"
	               " \"auth\": {\"mode\": \"jwt\", \"jwks_file\": \"%s/jwks1.json\",\n"
	               "           \"algorithms\": [\"HS256\"]},\n"
	               " \"redis\": {\"address\": \"127.0.0.1:%d\", \"timeout_ms\": %d%s%s},\n"
	               " \"rate_limiting\": {\"enabled\": true%s%s}}\n",
	               o->threads ? o->threads : 2, keys(), s->redis_port,
	               o->timeout_ms ? o->timeout_ms : TIMEOUT_MS,
	               o->redis_extra ? ", " : "", o->redis_extra ? o->redis_extra : "",
	               o->rl_extra ? ", " : "", o->rl_extra ? o->rl_extra : "");
	h_start_agent(s, json, NULL);
	h_render(s, "tests/integration/conf/rl-spoe.conf.in", "spoe.conf");
	cfg = h_render(s, "tests/integration/conf/rl.cfg.in", "haproxy.cfg");
	h_start_haproxy(s, cfg);
}

static void start(const char *name, const struct opts *o)
{
	h_stack_init(&S, name);
	redis = h_start_redis(&S);
	start_pair(&S, o);
}

/* The second gateway of the two-gateway test, stopped by teardown even
 * when an assertion ends the test early. */
static struct h_stack s2;

static int teardown(void **state)
{
	(void)state;
	h_stack_stop(&s2);
	h_stack_stop(&S);
	return 0;
}

static void url_of(const struct h_stack *s, const char *path, char *buf, size_t len)
{
	snprintf(buf, len, "http://127.0.0.1:%d%s", s->http_port, path);
}

/* GET path as user (NULL: no token) from client ip (NULL: 127.0.0.1). */
static long get_as(struct h_resp *r, const char *path, const char *user, const char *ip)
{
	char a[1024], x[128];
	const char *hdr[3] = { NULL, NULL, NULL };
	int n = 0;

	if (user)
		hdr[n++] = auth_for(user, a, sizeof(a));
	if (ip) {
		snprintf(x, sizeof(x), "X-Test-Client-IP: %s", ip);
		hdr[n++] = x;
	}
	assert_int_equal(h_get(r, &S, path, hdr), 0);
	return r->status;
}

static long status_as(const char *path, const char *user, const char *ip)
{
	struct h_resp r;
	long st = get_as(&r, path, user, ip);

	h_resp_free(&r);
	return st;
}

static long hdr_long(const struct h_resp *r, const char *name)
{
	const char *v = h_header(r, name);
	char *end;
	long n;

	if (!v)
		return -1;
	n = strtol(v, &end, 10);
	return end == v ? -1 : n;
}

/* INFO commandstats: calls of one command ("evalsha"), 0 when never run. */
static long redis_calls(int port, const char *cmd)
{
	char *out = NULL, needle[64], *p;
	long n = 0;

	h_run(&out, "redis-cli -p %d info commandstats", port);
	snprintf(needle, sizeof(needle), "cmdstat_%s:calls=", cmd);
	if (out && (p = strstr(out, needle)))
		n = strtol(p + strlen(needle), NULL, 10);
	free(out);
	return n;
}

static double redis_usec_per_call(int port, const char *cmd)
{
	char *out = NULL, needle[64], *p;
	double v = -1;

	h_run(&out, "redis-cli -p %d info commandstats", port);
	snprintf(needle, sizeof(needle), "cmdstat_%s:", cmd);
	if (out && (p = strstr(out, needle)) && (p = strstr(p, "usec_per_call=")))
		v = strtod(p + 14, NULL);
	free(out);
	return v;
}

static void count(const long *st, int n, int *ok, int *limited, int *other)
{
	int i;

	*ok = *limited = *other = 0;
	for (i = 0; i < n; i++) {
		if (st[i] == 200)
			(*ok)++;
		else if (st[i] == 429)
			(*limited)++;
		else
			(*other)++;
	}
}

static void test_exactly_20_of_60_concurrent_requests_from_one_user(void **state)
{
	struct opts o = { .rl_user = "20/10", .rl_ip = "100000/10" };
	char url[128], a[1024];
	long st[60];
	char *bodies[60];
	int ok, limited, other, i;

	(void)state;
	start("rl_exact", &o);
	url_of(&S, "/private/x", url, sizeof(url));
	assert_int_equal(h_http_many(url, (const char *const[]){ auth_for("alice", a, sizeof(a)), NULL },
	                             60, 60, st, bodies), 0);
	count(st, 60, &ok, &limited, &other);
	assert_int_equal(other, 0);
	assert_int_equal(ok, 20);
	assert_int_equal(limited, 40);
	for (i = 0; i < 60; i++) {
		if (st[i] == 429)
			assert_string_equal(bodies[i],
			                    "{\"error\":\"rate_limited\",\"reason\":\"rate_limited_user\"}");
		free(bodies[i]);
	}
	/* another user is not affected */
	assert_int_equal(status_as("/private/x", "bob", NULL), 200);
}

struct many_args {
	const char *url;
	const char *hdr;
	int n;
	long st[64];
};

static void *many_thread(void *arg)
{
	struct many_args *m = arg;

	h_http_many(m->url, (const char *const[]){ m->hdr, NULL }, m->n, m->n, m->st, NULL);
	return NULL;
}

static void test_two_gateways_sharing_redis_admit_exactly_20(void **state)
{
	struct opts o = { .rl_user = "20/10", .rl_ip = "100000/10" };
	struct many_args m1, m2;
	pthread_t t1, t2;
	char u1[128], u2[128], a[1024];
	int ok1, ok2, lim1, lim2, other1, other2;
	struct h_resp r;

	(void)state;
	start("rl_two_a", &o);
	h_stack_init(&s2, "rl_two_b");
	s2.redis_port = S.redis_port;
	h_set_var(&s2, "REDIS_PORT", "%d", S.redis_port);
	start_pair(&s2, &o);
	/* both gateways answer before the race starts */
	assert_int_equal(h_get(&r, &s2, "/public/warm", NULL), 0);
	assert_int_equal(r.status, 200);
	h_resp_free(&r);
	url_of(&S, "/private/x", u1, sizeof(u1));
	url_of(&s2, "/private/x", u2, sizeof(u2));
	m1.url = u1;
	m2.url = u2;
	m1.hdr = m2.hdr = auth_for("carol", a, sizeof(a));
	m1.n = m2.n = 30;
	assert_int_equal(pthread_create(&t1, NULL, many_thread, &m1), 0);
	assert_int_equal(pthread_create(&t2, NULL, many_thread, &m2), 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	count(m1.st, 30, &ok1, &lim1, &other1);
	count(m2.st, 30, &ok2, &lim2, &other2);
	print_message("# gateway A admitted %d, gateway B admitted %d\n", ok1, ok2);
	assert_int_equal(other1 + other2, 0);
	assert_int_equal(ok1 + ok2, 20);
	assert_int_equal(lim1 + lim2, 40);
}

struct hammer {
	const char *path;
	const char *user;
	double t_end;
	double t0;
	int n;
	int cap;
	double *admitted;            /* ms since t0 of each 200 */
	int nadmitted;
	int other;
	double max_ms;
	int with_rl_header;
};

static void *hammer_thread(void *arg)
{
	struct hammer *h = arg;
	struct h_resp r;
	char a[1024];
	const char *hdr[2] = { NULL, NULL };

	if (h->user)
		hdr[0] = auth_for(h->user, a, sizeof(a));
	while (h_now_ms() < h->t_end) {
		double t = h_now_ms();

		if (h_get(&r, &S, h->path, hdr) < 0) {
			h->other++;
			h_resp_free(&r);
			continue;
		}
		t = h_now_ms() - t;
		if (t > h->max_ms)
			h->max_ms = t;
		h->n++;
		if (r.status == 200) {
			if (h->nadmitted < h->cap)
				h->admitted[h->nadmitted++] = h_now_ms() - h->t0;
		} else if (r.status != 429) {
			h->other++;
		}
		if (strstr(r.headers, "ratelimit-limit:") || strstr(r.headers, "RateLimit-Limit:"))
			h->with_rl_header++;
		h_resp_free(&r);
	}
	return NULL;
}

/* Runs nthreads hammer threads for ms, then merges what they saw into *out
 * (admitted times sorted). */
static void hammer_run(struct hammer *out, const char *path, const char *user,
                       int nthreads, double ms, void (*during)(void))
{
	struct hammer h[8];
	pthread_t t[8];
	double t0 = h_now_ms();
	int i, j, k;

	memset(out, 0, sizeof(*out));
	out->cap = 100000;
	out->admitted = calloc((size_t)out->cap, sizeof(double));
	for (i = 0; i < nthreads; i++) {
		memset(&h[i], 0, sizeof(h[i]));
		h[i].path = path;
		h[i].user = user;
		h[i].t0 = t0;
		h[i].t_end = t0 + ms;
		h[i].cap = out->cap;
		h[i].admitted = calloc((size_t)h[i].cap, sizeof(double));
		assert_int_equal(pthread_create(&t[i], NULL, hammer_thread, &h[i]), 0);
	}
	if (during)
		during();
	for (i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		out->n += h[i].n;
		out->other += h[i].other;
		out->with_rl_header += h[i].with_rl_header;
		if (h[i].max_ms > out->max_ms)
			out->max_ms = h[i].max_ms;
		for (j = 0; j < h[i].nadmitted && out->nadmitted < out->cap; j++) {
			/* insertion into the sorted merge */
			double v = h[i].admitted[j];

			for (k = out->nadmitted; k > 0 && out->admitted[k - 1] > v; k--)
				out->admitted[k] = out->admitted[k - 1];
			out->admitted[k] = v;
			out->nadmitted++;
		}
		free(h[i].admitted);
	}
}

/* Most admissions in any window of w ms. */
static int max_in_window(const struct hammer *h, double w)
{
	int i, j = 0, best = 0;

	for (i = 0; i < h->nadmitted; i++) {
		while (h->admitted[i] - h->admitted[j] > w)
			j++;
		if (i - j + 1 > best)
			best = i - j + 1;
	}
	return best;
}

/* A fixed-window limiter admits 2L around a window boundary (L at the end
 * of one window, L at the start of the next). GCRA with a burst of L
 * refills smoothly: L at once, then one every period/L, wherever the
 * boundaries fall. Hammer across two whole periods and check both. */
static void test_no_boundary_burst_over_two_adjacent_periods(void **state)
{
	enum { L = 10 };
	const double P = 2000, T = P / L;
	struct opts o = { .rl_user = "10/2", .rl_ip = "1000000/10" };
	struct hammer h;
	double run = 2 * P + 200;
	int w_short, w_period;

	(void)state;
	start("rl_boundary", &o);
	hammer_run(&h, "/private/x", "dave", 4, run, NULL);
	w_short = max_in_window(&h, 100);
	w_period = max_in_window(&h, P - 50);
	print_message("# %d requests, %d admitted; max %d in 100 ms, %d in one period\n",
	              h.n, h.nadmitted, w_short, w_period);
	assert_int_equal(h.other, 0);
	/* never 2L in a short span */
	assert_true(w_short <= L + 1);
	/* in any one period: the limit plus the burst tolerance (L - 1) */
	assert_true(w_period <= 2 * L - 1);
	/* over the run: L at once plus one per emission interval, no more
	 * (and no less: the quota does come back) */
	assert_true(h.nadmitted <= L + (int)(run / T) + 1);
	assert_true(h.nadmitted >= L + (int)(run / T) - 3);
	free(h.admitted);
}

static void test_per_ip_and_per_user_are_independent(void **state)
{
	struct opts o = { .rl_user = "3/60", .rl_ip = "5/60" };
	struct h_resp r;

	(void)state;
	start("rl_independent", &o);
	/* erin uses up her own quota; the 4th is hers to blame */
	assert_int_equal(status_as("/private/x", "erin", "10.0.0.1"), 200);
	assert_int_equal(status_as("/private/x", "erin", "10.0.0.1"), 200);
	assert_int_equal(status_as("/private/x", "erin", "10.0.0.1"), 200);
	assert_int_equal(get_as(&r, "/private/x", "erin", "10.0.0.1"), 429);
	assert_non_null(strstr(r.body, "rate_limited_user"));
	h_resp_free(&r);
	/* frank on the same IP: that denial spent no IP quota (3 of 5 used) */
	assert_int_equal(status_as("/private/x", "frank", "10.0.0.1"), 200);
	assert_int_equal(status_as("/private/x", "frank", "10.0.0.1"), 200);
	assert_int_equal(get_as(&r, "/private/x", "frank", "10.0.0.1"), 429);
	assert_non_null(strstr(r.body, "rate_limited_ip"));
	assert_int_equal(hdr_long(&r, "RateLimit-Limit"), 5);
	h_resp_free(&r);
	/* frank elsewhere is only bound by his own limit */
	assert_int_equal(status_as("/private/x", "frank", "10.0.0.2"), 200);
	assert_int_equal(get_as(&r, "/private/x", "frank", "10.0.0.2"), 429);
	assert_non_null(strstr(r.body, "rate_limited_user"));
	assert_int_equal(hdr_long(&r, "RateLimit-Limit"), 3);
	h_resp_free(&r);
	/* IPv6 clients are limited per /64 */
	assert_int_equal(status_as("/public/x", NULL, "2001:db8:1:2::1"), 200);
	assert_int_equal(status_as("/public/x", NULL, "2001:db8:1:2::2"), 200);
	assert_int_equal(status_as("/public/x", NULL, "2001:db8:1:2:ffff::3"), 200);
	assert_int_equal(status_as("/public/x", NULL, "2001:db8:1:2::4"), 200);
	assert_int_equal(status_as("/public/x", NULL, "2001:db8:1:2::5"), 200);
	assert_int_equal(get_as(&r, "/public/x", NULL, "2001:db8:1:2::6"), 429);
	assert_non_null(strstr(r.body, "rate_limited_ip"));
	h_resp_free(&r);
	assert_int_equal(status_as("/public/x", NULL, "2001:db8:1:3::1"), 200);
}

static void test_route_override_wins_and_headers_follow_it(void **state)
{
	struct opts o = { .rl_user = "100/60", .rl_ip = "1000/60", .rl_override = "2/60" };
	struct h_resp r;

	(void)state;
	start("rl_override", &o);
	assert_int_equal(get_as(&r, "/override/x", "gina", NULL), 200);
	assert_int_equal(hdr_long(&r, "RateLimit-Limit"), 2);
	assert_int_equal(hdr_long(&r, "RateLimit-Remaining"), 1);
	assert_int_equal(hdr_long(&r, "X-RateLimit-Limit"), 2);
	assert_int_equal(hdr_long(&r, "X-RateLimit-Remaining"), 1);
	assert_true(hdr_long(&r, "RateLimit-Reset") >= 1 && hdr_long(&r, "RateLimit-Reset") <= 60);
	assert_string_equal(h_header(&r, "RateLimit-Policy"), "2;w=60, 1000;w=60");
	assert_null(h_header(&r, "Retry-After"));
	h_resp_free(&r);
	assert_int_equal(status_as("/override/x", "gina", NULL), 200);
	assert_int_equal(get_as(&r, "/override/x", "gina", NULL), 429);
	assert_string_equal(r.body, "{\"error\":\"rate_limited\",\"reason\":\"rate_limited_user\"}");
	assert_int_equal(hdr_long(&r, "RateLimit-Limit"), 2);
	assert_int_equal(hdr_long(&r, "RateLimit-Remaining"), 0);
	assert_int_equal(hdr_long(&r, "X-RateLimit-Remaining"), 0);
	/* one request per 30 s comes back */
	assert_true(hdr_long(&r, "Retry-After") >= 29 && hdr_long(&r, "Retry-After") <= 30);
	assert_true(hdr_long(&r, "RateLimit-Reset") >= 59 && hdr_long(&r, "RateLimit-Reset") <= 60);
	h_resp_free(&r);
	/* the global policy still governs the other routes */
	assert_int_equal(get_as(&r, "/private/x", "gina", NULL), 200);
	assert_int_equal(hdr_long(&r, "RateLimit-Limit"), 100);
	assert_int_equal(hdr_long(&r, "RateLimit-Remaining"), 99);
	h_resp_free(&r);
}

static void test_unauthenticated_traffic_is_limited_per_ip_only(void **state)
{
	struct opts o = { .rl_user = "1/60", .rl_ip = "4/60" };
	struct h_resp r;
	int i;

	(void)state;
	start("rl_unauth", &o);
	/* a public route: a token is no identity, the per-user policy is not
	 * applied, the per-IP one is */
	for (i = 0; i < 4; i++) {
		assert_int_equal(get_as(&r, "/public/x", "henry", "192.0.2.10"), 200);
		assert_int_equal(hdr_long(&r, "RateLimit-Limit"), 4);
		h_resp_free(&r);
	}
	assert_int_equal(get_as(&r, "/public/x", NULL, "192.0.2.10"), 429);
	assert_non_null(strstr(r.body, "rate_limited_ip"));
	h_resp_free(&r);
	/* no key of a user was ever written */
	{
		char *out = NULL;

		h_run(&out, "redis-cli -p %d --scan --pattern 'spogate:rl:u:*'", S.redis_port);
		assert_string_equal(out, "");
		free(out);
	}
}

static void test_shadow_mode_passes_everything_and_reports(void **state)
{
	struct opts o = { .rl_user = "2/60", .rl_ip = "1000/60",
	                  .rl_extra = "\"shadow\": true" };
	struct h_resp r;
	int i;

	(void)state;
	start("rl_shadow", &o);
	for (i = 0; i < 6; i++) {
		assert_int_equal(get_as(&r, "/private/x", "ivan", NULL), 200);
		assert_int_equal(hdr_long(&r, "RateLimit-Limit"), 2);
		assert_int_equal(hdr_long(&r, "RateLimit-Remaining"), i < 2 ? 1 - i : 0);
		h_resp_free(&r);
	}
	assert_true(h_metric(S.metrics_port, "spogate_ratelimit_shadow_denied_total") >= 4);
	assert_true(h_metric(S.metrics_port, "spogate_ratelimit_denied_total{policy=\"user\"}") == 0);
}

static void test_over_limit_cache_spares_redis(void **state)
{
	struct opts o = { .rl_user = "2/60", .rl_ip = "100000/60", .threads = 2 };
	int i, limited = 0;
	long calls;

	(void)state;
	start("rl_cache", &o);
	h_run(NULL, "redis-cli -p %d config resetstat >/dev/null", S.redis_port);
	for (i = 0; i < 102; i++)
		limited += status_as("/private/x", "judy", NULL) == 429;
	calls = redis_calls(S.redis_port, "evalsha");
	print_message("# 102 requests, %d denied, %ld script calls\n", limited, calls);
	assert_int_equal(limited, 100);
	/* 2 admitted + at most one denial per worker learnt from Redis */
	assert_true(calls >= 3 && calls <= 2 + 2);
	assert_true(h_metric(S.metrics_port, "spogate_ratelimit_cache_hits_total") >= 98);
}

/* Measures the cost this design is about: one script call per decision,
 * whatever the number of policies, and its Redis CPU. */
static void test_both_policies_ride_one_coalesced_script_call(void **state)
{
	enum { N = 2000 };
	struct opts o = { .rl_user = "1000000/60", .rl_ip = "1000000/60" };
	char url[128], a[1024];
	long *st = calloc(N, sizeof(*st));
	int ok, limited, other;
	long calls, gets;
	double usec, t0, secs;

	(void)state;
	start("rl_cost", &o);
	url_of(&S, "/private/x", url, sizeof(url));
	h_run(NULL, "redis-cli -p %d config resetstat >/dev/null", S.redis_port);
	t0 = h_now_ms();
	assert_int_equal(h_http_many(url, (const char *const[]){ auth_for("kate", a, sizeof(a)), NULL },
	                             N, 32, st, NULL), 0);
	secs = (h_now_ms() - t0) / 1000.0;
	count(st, N, &ok, &limited, &other);
	assert_int_equal(ok, N);
	calls = redis_calls(S.redis_port, "evalsha");
	gets = redis_calls(S.redis_port, "mget");
	usec = redis_usec_per_call(S.redis_port, "evalsha");
	print_message("# %d decisions with both policies in %.2f s (%.0f/s through HAProxy): "
	              "%ld EVALSHA (%.1f decisions each), %ld MGET inside; %.2f us of Redis "
	              "per decision\n", N, secs, N / secs, calls, (double)N / (double)calls, gets,
	              usec * (double)calls / N);
	/* Decisions ready in one loop iteration share a call; each call reads
	 * its keys with one MGET; both keys of a decision are in the same
	 * call, never two calls for one decision. */
	assert_true(calls >= 1 && calls <= N);
	assert_int_equal(gets, calls);
	/* every decision Redis was asked about (all, but on a loaded machine
	 * those let through after redis.timeout_ms) carried both its keys */
	assert_int_equal(h_metric(S.metrics_port, "spogate_ratelimit_redis_keys_total"),
	                 2 * h_metric(S.metrics_port, "spogate_ratelimit_batched_total"));
	assert_true(h_metric(S.metrics_port, "spogate_ratelimit_batched_total") +
	            h_metric(S.metrics_port, UNAVAILABLE_ALLOW) >= N);
	assert_true(h_metric(S.metrics_port, "spogate_ratelimit_redis_errors_total") == 0);
	free(st);
}

/* The same load in lease mode: one user and one IP, both far from their
 * limits, so most decisions are answered by local slices. Counts the Redis
 * calls per decision beside exact mode's. */
static void test_lease_mode_spares_redis_calls(void **state)
{
	enum { N = 2000 };
	struct opts o = { .rl_user = "1000000/60", .rl_ip = "1000000/60",
	                  .rl_extra = "\"mode\": \"lease\"" };
	char url[128], a[1024];
	long *st = calloc(N, sizeof(*st));
	int ok, limited, other;
	long calls;
	double usec, hits;

	(void)state;
	start("rl_lease_cost", &o);
	url_of(&S, "/private/x", url, sizeof(url));
	h_run(NULL, "redis-cli -p %d config resetstat >/dev/null", S.redis_port);
	assert_int_equal(h_http_many(url, (const char *const[]){ auth_for("kate", a, sizeof(a)), NULL },
	                             N, 32, st, NULL), 0);
	count(st, N, &ok, &limited, &other);
	assert_int_equal(ok, N);
	calls = redis_calls(S.redis_port, "evalsha");
	usec = redis_usec_per_call(S.redis_port, "evalsha");
	hits = h_metric(S.metrics_port, "spogate_ratelimit_lease_hits_total");
	print_message("# lease mode: %d decisions, %ld EVALSHA (%.3f calls per decision), %.0f "
	              "answered by local slices alone, %.0f tokens granted in slices; %.2f us of "
	              "Redis per decision\n", N, calls, (double)calls / N, hits,
	              h_metric(S.metrics_port, "spogate_ratelimit_lease_tokens_total"),
	              usec * (double)calls / N);
	assert_true(calls < N / 2);
	assert_true(hits > 0);
	free(st);
}

/* ---- many users, lease mode ---- */

/* N tokens for subjects <prefix>0..<prefix>N-1, "Authorization: Bearer ..."
 * lines, minted in one run of spogate-refsvc. The caller frees out[i]. */
static void mint_many(const char *prefix, int n, char **out)
{
	char *text = NULL, *line, *nl;
	int i = 0;

	assert_int_equal(h_run(&text, "%s mint --sub '%s' --count %d --key %s/hs1.key --kid hs1 "
	                       "--alg HS256 --ttl 1h", h_bin("spogate-refsvc"), prefix, n, keys()), 0);
	for (line = text; line && *line && i < n; line = nl ? nl + 1 : NULL) {
		size_t len;

		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		len = strlen(line) + 32;
		out[i] = malloc(len);
		snprintf(out[i++], len, "Authorization: Bearer %s", line);
	}
	free(text);
	assert_int_equal(i, n);
}

struct users_run {
	const char *url;
	char **auth;                 /* one header per user */
	int from, to;                /* the users this thread asks for */
	int *admitted;               /* per user, shared (atomic adds) */
	int *decided;                /* per user, 200 or 429 (NULL: not counted) */
	long long t_end;             /* > 0: walk the users again until then (ms) */
	int other;
};

static size_t discard(char *p, size_t sz, size_t n, void *u)
{
	(void)p;
	(void)u;
	return sz * n;
}

/* One request per user in [from, to), on one kept-alive connection. */
static void *users_thread(void *arg)
{
	struct users_run *u = arg;
	CURL *c = curl_easy_init();
	int i;

	curl_easy_setopt(c, CURLOPT_URL, u->url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	for (i = u->from; i < u->to; i++) {
		struct curl_slist *hl = curl_slist_append(NULL, u->auth[i]);
		long status = 0;

		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
		if (curl_easy_perform(c) == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (status == 200)
			__atomic_fetch_add(&u->admitted[i], 1, __ATOMIC_RELAXED);
		else if (status != 429)
			u->other++;
		if ((status == 200 || status == 429) && u->decided)
			__atomic_fetch_add(&u->decided[i], 1, __ATOMIC_RELAXED);
		curl_slist_free_all(hl);
		if (i + 1 == u->to && __atomic_load_n(&u->t_end, __ATOMIC_RELAXED) > 0 &&
		    h_now_ms() < __atomic_load_n(&u->t_end, __ATOMIC_RELAXED))
			i = u->from - 1;
	}
	curl_easy_cleanup(c);
	return NULL;
}

/* 10,000 distinct users, a policy of 1 per minute, two requests each at
 * the same time (two threads walk the same users): exactly one of each
 * pair is admitted, for every user, on keys spread over the whole
 * keyspace and decisions coalesced many to a script call. */
static void test_exactness_holds_at_10000_distinct_users(void **state)
{
	enum { USERS = 10000, PAIRS = 3 };
	struct opts o = { .rl_user = "1/60", .rl_ip = "1000000/60",
	                  .rl_extra = "\"on_redis_error\": \"deny\"" };
	struct users_run run[2 * PAIRS];
	pthread_t t[2 * PAIRS];
	char url[128], **auth = calloc(USERS, sizeof(char *));
	int *admitted = calloc(USERS, sizeof(int));
	int i, other = 0, wrong = 0, total = 0, over = 0;
	double t0;

	(void)state;
	mint_many("u", USERS, auth);
	start("rl_10k", &o);
	url_of(&S, "/private/x", url, sizeof(url));
	t0 = h_now_ms();
	for (i = 0; i < 2 * PAIRS; i++) {
		run[i].url = url;
		run[i].auth = auth;
		run[i].from = USERS * (i / 2) / PAIRS;
		run[i].to = USERS * (i / 2 + 1) / PAIRS;
		run[i].admitted = admitted;
		run[i].decided = NULL;
		run[i].t_end = 0;
		run[i].other = 0;
		assert_int_equal(pthread_create(&t[i], NULL, users_thread, &run[i]), 0);
	}
	for (i = 0; i < 2 * PAIRS; i++) {
		pthread_join(t[i], NULL);
		other += run[i].other;
	}
	for (i = 0; i < USERS; i++) {
		total += admitted[i];
		over += admitted[i] > 1;
		wrong += admitted[i] != 1;
		free(auth[i]);
	}
	print_message("# %d users x 2 requests in %.1f s: %d admitted, %d users over, %d not "
	              "exactly 1, %d undecided (503 past redis.timeout_ms on a loaded machine); "
	              "%.1f decisions per script call\n", USERS, (h_now_ms() - t0) / 1000.0, total,
	              over, wrong, other,
	              h_metric(S.metrics_port, "spogate_ratelimit_batched_total") /
	              h_metric(S.metrics_port, "spogate_ratelimit_batches_total"));
	/* Never two for one user. A decision Redis could not make in time is
	 * a 503 (on_redis_error: deny) and may leave its user with none. */
	assert_int_equal(over, 0);
	assert_true(wrong <= other);
	assert_true(other <= USERS / 100);
	free(auth);
	free(admitted);
}

/* Lease mode, two gateways, one user at 40 per minute (no refill to speak
 * of during the test): never more than 40 admitted, whatever the
 * interleaving; and the shortfall within the documented bound. Then the
 * other direction: gateway A takes slices and goes quiet, gateway B asks
 * for everything: B still gets all but what A admitted, its unused
 * slices and their debt. */
static void test_lease_two_gateways_never_over_admit(void **state)
{
	struct opts o = { .rl_user = "40/60", .rl_ip = "1000000/60",
	                  .rl_extra = "\"mode\": \"lease\", \"on_redis_error\": \"deny\"" };
	static struct h_stack s2;
	struct many_args m1, m2;
	pthread_t t1, t2;
	char u1[128], u2[128], a[1024];
	int ok1, ok2, lim1, lim2, other1, other2, i, ok_a = 0;
	double checks, calls;
	struct h_resp r;

	(void)state;
	start("rl_lease_a", &o);
	h_stack_init(&s2, "rl_lease_b");
	s2.redis_port = S.redis_port;
	h_set_var(&s2, "REDIS_PORT", "%d", S.redis_port);
	start_pair(&s2, &o);
	assert_int_equal(h_get(&r, &s2, "/public/warm", NULL), 0);
	h_resp_free(&r);
	url_of(&S, "/private/x", u1, sizeof(u1));
	url_of(&s2, "/private/x", u2, sizeof(u2));

	/* both at once: 2 x 60 for 40 */
	m1.url = u1;
	m2.url = u2;
	m1.hdr = m2.hdr = auth_for("lena", a, sizeof(a));
	m1.n = m2.n = 60;
	assert_int_equal(pthread_create(&t1, NULL, many_thread, &m1), 0);
	assert_int_equal(pthread_create(&t2, NULL, many_thread, &m2), 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	count(m1.st, 60, &ok1, &lim1, &other1);
	count(m2.st, 60, &ok2, &lim2, &other2);
	checks = h_metric(S.metrics_port, "spogate_ratelimit_checks_total") +
	         h_metric(s2.metrics_port, "spogate_ratelimit_checks_total");
	calls = h_metric(S.metrics_port, "spogate_ratelimit_batched_total") +
	        h_metric(s2.metrics_port, "spogate_ratelimit_batched_total");
	print_message("# lease, concurrent: A admitted %d, B admitted %d of 40; %.0f decisions, "
	              "%.0f went to Redis (%.2f Redis decisions per decision), %.0f + %.0f let "
	              "through on Redis errors\n", ok1, ok2, checks, calls, calls / checks,
	              h_metric(S.metrics_port, UNAVAILABLE_ALLOW),
	              h_metric(s2.metrics_port, UNAVAILABLE_ALLOW));
	/* a Redis failure lets requests through (on_redis_error: allow): that
	 * is not an admission by the limiter, and must not have happened */
	assert_int_equal(h_metric(S.metrics_port, UNAVAILABLE_ALLOW), 0);
	assert_int_equal(h_metric(s2.metrics_port, UNAVAILABLE_ALLOW), 0);
	assert_true(ok1 + ok2 <= 40);
	/* per worker holding a slice (2 gateways x 2 workers), less than two
	 * slices of at most 40 / 8 = 5 tokens; a decision Redis could not make
	 * in time (503) may have spent a token */
	assert_true(ok1 + ok2 + other1 + other2 >= 40 - 4 * (2 * 5 - 1));

	/* the other direction, on a fresh user: A admits a few one by one
	 * (its slices grow with its rate), then B asks for everything */
	auth_for("mona", a, sizeof(a));
	for (i = 0; i < 15; i++)
		ok_a += status_as("/private/x", "mona", NULL) == 200;
	m2.hdr = a;
	m2.n = 60;
	many_thread(&m2);
	count(m2.st, 60, &ok2, &lim2, &other2);
	h_stack_stop(&s2);
	print_message("# lease, A then B: A admitted %d, then B %d of the %d left\n", ok_a, ok2,
	              40 - ok_a);
	assert_true(ok_a <= 15);
	assert_true(ok_a + ok2 <= 40);
	/* what A holds unused: at most one slice per A worker, plus debts */
	assert_true(ok_a + ok2 + other2 >= 40 - 2 * (2 * 5 - 1) - (15 - ok_a));
}

/* ---- Redis Cluster ---- */

#define NODES 6
static struct h_proc *node[NODES];
static int node_port[NODES];

/* Six redis-server --cluster-enabled yes, made into three masters with a
 * replica each by redis-cli --cluster create, on free loopback ports (the
 * bus on its own free port: cluster-port). Returns the redis_extra JSON
 * naming every node as a seed. */
static const char *start_cluster(struct h_stack *s)
{
	static char extra[512];
	char port[16], bus[16], conf[700], *out = NULL;
	size_t n;
	int i;

	for (i = 0; i < NODES; i++) {
		char *argv[] = { (char *)h_redis_server_bin(), (char *)"--port", port,
		                 (char *)"--cluster-port", bus, (char *)"--bind", (char *)"127.0.0.1",
		                 (char *)"--cluster-enabled", (char *)"yes",
		                 (char *)"--cluster-config-file", conf,
		                 (char *)"--cluster-node-timeout", (char *)"2000",
		                 (char *)"--save", (char *)"", (char *)"--appendonly", (char *)"no",
		                 (char *)"--daemonize", (char *)"no", (char *)"--dir", s->dir, NULL };
		char name[16];

		node_port[i] = h_free_port();
		snprintf(port, sizeof(port), "%d", node_port[i]);
		snprintf(bus, sizeof(bus), "%d", h_free_port());
		snprintf(conf, sizeof(conf), "%s/nodes-%d.conf", s->dir, node_port[i]);
		snprintf(name, sizeof(name), "node%d", i);
		node[i] = h_spawn(s, name, argv);
		assert_int_equal(h_wait_port(node_port[i], 5000), 0);
	}
	assert_int_equal(h_run(&out, "redis-cli --cluster create 127.0.0.1:%d 127.0.0.1:%d "
	                       "127.0.0.1:%d 127.0.0.1:%d 127.0.0.1:%d 127.0.0.1:%d "
	                       "--cluster-replicas 1 --cluster-yes 2>&1",
	                       node_port[0], node_port[1], node_port[2], node_port[3],
	                       node_port[4], node_port[5]), 0);
	free(out);
	/* wait until every node agrees the cluster is up */
	for (i = 0; i < 100; i++) {
		int ok = 1, k;

		for (k = 0; k < NODES && ok; k++) {
			out = NULL;
			h_run(&out, "redis-cli -p %d cluster info", node_port[k]);
			ok = out && strstr(out, "cluster_state:ok");
			free(out);
		}
		if (ok)
			break;
		usleep(100000);
	}
	assert_true(i < 100);
	n = (size_t)snprintf(extra, sizeof(extra), "\"cluster\": [");
	for (i = 0; i < NODES; i++)
		n += (size_t)snprintf(extra + n, sizeof(extra) - n, "%s\"127.0.0.1:%d\"", i ? ", " : "",
		                      node_port[i]);
	snprintf(extra + n, sizeof(extra) - n, "]");
	s->redis_port = node_port[0];
	return extra;
}

/* Which of redis-cli's three masters (0-5460, 5461-10922, 10923-16383)
 * holds key. */
static int master_of(const char *key)
{
	unsigned slot = rcluster_key_slot(key, strlen(key));

	return slot <= 5460 ? 0 : slot <= 10922 ? 1 : 2;
}

/* A user (u<n>) and a client address whose keys for policies pu and pi
 * live on different masters. */
static void pick_split(const char *pu, const char *pi, int from, char *user, size_t ul,
                       char *ip, size_t il)
{
	char ku[128], ki[128];
	int n;

	for (n = from;; n++) {
		snprintf(user, ul, "u%d", n);
		snprintf(ip, il, "10.9.%d.%d", n / 250, n % 250 + 1);
		snprintf(ku, sizeof(ku), "spogate:rl:u:%s:%s", user, pu);
		snprintf(ki, sizeof(ki), "spogate:rl:ip:%s:%s", ip, pi);
		if (master_of(ku) != master_of(ki))
			return;
	}
}

/* Until every worker has its Redis (or its full slot map). */
static void wait_cluster_ready(int metrics_port)
{
	int i;

	for (i = 0; i < 100 && h_metric(metrics_port, "spogate_ratelimit_redis_up") != 1; i++)
		usleep(50000);
	assert_true(i < 100);
}

struct split_args {
	const char *url;
	const char *hdr[3];
	int n;
	long st[64];
};

static void *split_thread(void *arg)
{
	struct split_args *m = arg;

	h_http_many(m->url, m->hdr, m->n, m->n, m->st, NULL);
	return NULL;
}

/* Two gateways on a 3-master cluster, one user whose per-user key and
 * per-IP key live on different masters: of 60 concurrent requests
 * against 20 per 10 s, exactly 20 are admitted. Then the IP's own limit
 * (3) denies a second user from that IP: the user keys it spent first
 * are refunded, so that user can still use its whole quota elsewhere. */
static void test_cluster_two_gateways_admit_exactly_20(void **state)
{
	struct opts o = { .rl_user = "20/10", .rl_ip = "100000/10" };
	static struct h_stack s2;
	struct split_args m1, m2;
	pthread_t t1, t2;
	char u1[128], u2[128], a[1024], user[32], ip[32], x[64];
	int ok1, ok2, lim1, lim2, other1, other2;

	(void)state;
	h_stack_init(&S, "rl_cluster_a");
	o.redis_extra = start_cluster(&S);
	start_pair(&S, &o);
	h_stack_init(&s2, "rl_cluster_b");
	s2.redis_port = S.redis_port;
	start_pair(&s2, &o);
	wait_cluster_ready(S.metrics_port);
	wait_cluster_ready(s2.metrics_port);
	pick_split("20/10", "100000/10", 0, user, sizeof(user), ip, sizeof(ip));
	url_of(&S, "/private/x", u1, sizeof(u1));
	url_of(&s2, "/private/x", u2, sizeof(u2));
	snprintf(x, sizeof(x), "X-Test-Client-IP: %s", ip);
	m1.url = u1;
	m2.url = u2;
	m1.hdr[0] = m2.hdr[0] = auth_for(user, a, sizeof(a));
	m1.hdr[1] = m2.hdr[1] = x;
	m1.hdr[2] = m2.hdr[2] = NULL;
	m1.n = m2.n = 30;
	assert_int_equal(pthread_create(&t1, NULL, split_thread, &m1), 0);
	assert_int_equal(pthread_create(&t2, NULL, split_thread, &m2), 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	count(m1.st, 30, &ok1, &lim1, &other1);
	count(m2.st, 30, &ok2, &lim2, &other2);
	snprintf(u1, sizeof(u1), "spogate:rl:u:%s:20/10", user);
	snprintf(u2, sizeof(u2), "spogate:rl:ip:%s:100000/10", ip);
	print_message("# cluster: %s (master %d) from %s (master %d): gateway A admitted %d, B %d; "
	              "%.0f MOVED, %.0f slot maps\n", user, master_of(u1), ip, master_of(u2), ok1, ok2,
	              h_metric(S.metrics_port, "spogate_ratelimit_cluster_moved_total"),
	              h_metric(S.metrics_port, "spogate_ratelimit_cluster_refreshes_total"));
	assert_int_equal(h_metric(S.metrics_port, UNAVAILABLE_ALLOW), 0);
	assert_int_equal(h_metric(s2.metrics_port, UNAVAILABLE_ALLOW), 0);
	assert_int_equal(other1 + other2, 0);
	assert_int_equal(ok1 + ok2, 20);
	assert_int_equal(lim1 + lim2, 40);
	h_stack_stop(&s2);
}

/* The failover tests' load: THREADS threads walk USERS users (auth[i])
 * until `switched` says the failover is over, then for one more second.
 * Counts per user what was admitted and decided; returns the 503s. */
struct failover_load {
	const char *url;
	char **auth;
	int users;
	int limit;
	int admitted[64], decided[64];
	int over, under, sent, other;
};

static void failover_run(struct failover_load *l, double (*trigger)(void *), void *arg)
{
	enum { THREADS = 6 };
	struct users_run run[THREADS];
	pthread_t t[THREADS];
	int i;

	memset(l->admitted, 0, sizeof(l->admitted));
	memset(l->decided, 0, sizeof(l->decided));
	for (i = 0; i < THREADS; i++) {
		run[i].url = l->url;
		run[i].auth = l->auth;
		run[i].from = l->users * i / THREADS;
		run[i].to = l->users * (i + 1) / THREADS;
		run[i].admitted = l->admitted;
		run[i].decided = l->decided;
		run[i].t_end = (long long)h_now_ms() + 20000;
		run[i].other = 0;
		assert_int_equal(pthread_create(&t[i], NULL, users_thread, &run[i]), 0);
	}
	usleep(300000);
	trigger(arg);
	for (i = 0; i < THREADS; i++)
		__atomic_store_n(&run[i].t_end, (long long)h_now_ms() + 1000, __ATOMIC_RELAXED);
	l->over = l->under = l->sent = l->other = 0;
	for (i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		l->other += run[i].other;
	}
	for (i = 0; i < l->users; i++) {
		l->over += l->admitted[i] > l->limit ? l->admitted[i] - l->limit : 0;
		if (l->decided[i] >= l->limit && l->admitted[i] < l->limit)
			l->under += l->limit - l->admitted[i];
		l->sent += l->decided[i];
	}
}

/* Users spread over all three masters, 100 per day each, requests from
 * 6 threads while a replica takes over its master (CLUSTER FAILOVER)
 * after 0.3 s, and for 1 s after it did; on_redis_error: deny, so a
 * request the cluster could not decide is a 503, never a silent
 * admission. Over-admissions (more than 100 for a user) must be 0;
 * under-admissions (fewer than 100 for a user that had at least 100
 * decided requests) are reported. */
static int fo_replica;

/* CLUSTER FAILOVER on the replica, then wait until it is a master.
 * Returns the milliseconds that took. */
static double cluster_failover(void *arg)
{
	double t0 = h_now_ms();
	char *out;
	int i;

	(void)arg;
	assert_int_equal(h_run(NULL, "redis-cli -p %d cluster failover >/dev/null",
	                       node_port[fo_replica]), 0);
	for (i = 0; i < 100; i++) {
		out = NULL;
		h_run(&out, "redis-cli -p %d role", node_port[fo_replica]);
		if (out && strncmp(out, "master", 6) == 0) {
			free(out);
			break;
		}
		free(out);
		usleep(100000);
	}
	return h_now_ms() - t0;
}

static void test_cluster_failover_during_load(void **state)
{
	struct opts o = { .rl_user = "100/86400", .rl_ip = "1000000/60",
	                  .rl_extra = "\"on_redis_error\": \"deny\"" };
	struct failover_load l = { .users = 48, .limit = 100 };
	char url[128], *auth[48], *out = NULL, *line;
	int i;

	(void)state;
	h_stack_init(&S, "rl_cluster_fo");
	o.redis_extra = start_cluster(&S);
	start_pair(&S, &o);
	wait_cluster_ready(S.metrics_port);
	mint_many("f", l.users, auth);
	fo_replica = -1;
	/* Node 0 learns the replicas' roles by gossip after --cluster create
	 * returns, so a loaded machine can show every node as a master for a
	 * while: ask again until one replica appears (10 s at most). */
	for (i = 0; i < 100 && fo_replica < 0; i++) {
		if (i > 0)
			usleep(100000);
		assert_int_equal(h_run(&out, "redis-cli -p %d cluster nodes", node_port[0]), 0);
		/* a replica's line: "<id> 127.0.0.1:<port>@<bus> slave <master id> ..." */
		for (line = out; line && *line && fo_replica < 0;
		     line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
			size_t len = strcspn(line, "\n");
			int k;

			for (k = 0; k < NODES; k++) {
				char needle[32], *at;

				snprintf(needle, sizeof(needle), ":%d@", node_port[k]);
				at = strstr(line, needle);
				if (at && at < line + len && strstr(line, "slave") &&
				    strstr(line, "slave") < line + len)
					fo_replica = k;
			}
		}
		free(out);
		out = NULL;
	}
	assert_true(fo_replica >= 0);
	url_of(&S, "/private/x", url, sizeof(url));
	l.url = url;
	l.auth = auth;
	failover_run(&l, cluster_failover, NULL);
	for (i = 0; i < l.users; i++)
		free(auth[i]);
	print_message("# cluster failover under load: %d users, %d decided requests, %d "
	              "undecided (503); %d over-admitted, %d under-admitted; %.0f MOVED, %.0f slot "
	              "maps, %.0f timeouts, %.0f refunds\n", l.users, l.sent, l.other, l.over,
	              l.under, h_metric(S.metrics_port, "spogate_ratelimit_cluster_moved_total"),
	              h_metric(S.metrics_port, "spogate_ratelimit_cluster_refreshes_total"),
	              h_metric(S.metrics_port, "spogate_ratelimit_cluster_timeouts_total"),
	              h_metric(S.metrics_port, "spogate_ratelimit_cluster_refunds_total"));
	assert_int_equal(l.over, 0);
	assert_true(l.sent > 0);
}

/* ---- Redis Sentinel ---- */

/* A master, its replica and one sentinel (quorum 1, down after 500 ms);
 * the agent finds the master through Sentinel. Users at 100 per day ask
 * from 6 threads; the master is killed (SIGKILL) after 0.3 s; Sentinel
 * promotes the replica and the agent follows (+switch-master, or asking
 * Sentinel again on the lost connection) without blocking its loop.
 * on_redis_error: deny, so what could not be decided is a 503.
 * Over-admissions can happen here, unlike the cluster's manual failover:
 * replication is asynchronous, and the writes the dead master had not yet
 * sent are lost. They are reported, with the under-admissions. */
static struct h_proc *sen_master;
static double sen_switch_ms;

/* Kills the master, then waits until the agent has followed Sentinel to
 * the new one. */
static double kill_master(void *arg)
{
	double t0 = h_now_ms();
	int i;

	(void)arg;
	h_signal(sen_master, SIGKILL);
	h_stop(sen_master, 1000);
	sen_switch_ms = -1;
	for (i = 0; i < 150; i++) {
		if (h_metric(S.metrics_port, "spogate_ratelimit_sentinel_switches_total") > 0 &&
		    h_metric(S.metrics_port, "spogate_ratelimit_redis_up") == 1) {
			sen_switch_ms = h_now_ms() - t0;
			break;
		}
		usleep(100000);
	}
	return sen_switch_ms;
}

/* Starts the master (S.redis_port), with a replica when replica_port is
 * not NULL (waits until it has synced), and n sentinels monitoring it
 * (quorum 1, down after 500 ms): sentinel i with conf_extra[i] (NULL or
 * "": nothing) appended to its sentinel.conf, its port in sport[i]. */
static void start_sentinel_setup(int *replica_port, int n, const char *const *conf_extra,
                                 int *sport)
{
	char conf[700], name[32], rport[16], master[16], *out = NULL;
	int i, k, rp;
	FILE *f;

	sen_master = h_start_redis(&S);
	snprintf(master, sizeof(master), "%d", S.redis_port);
	if (replica_port) {
		rp = *replica_port = h_free_port();
		snprintf(rport, sizeof(rport), "%d", rp);
		{
			char *argv[] = { (char *)h_redis_server_bin(), (char *)"--port", rport,
			                 (char *)"--bind", (char *)"127.0.0.1", (char *)"--save",
			                 (char *)"", (char *)"--appendonly", (char *)"no",
			                 (char *)"--replicaof", (char *)"127.0.0.1", master,
			                 (char *)"--dir", S.dir, NULL };

			h_spawn(&S, "replica", argv);
			assert_int_equal(h_wait_port(rp, 5000), 0);
		}
	}
	for (k = 0; k < n; k++) {
		sport[k] = h_free_port();
		snprintf(conf, sizeof(conf), "%s/sentinel%d.conf", S.dir, k);
		f = fopen(conf, "w");
		assert_non_null(f);
		fprintf(f, "port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor gw 127.0.0.1 %d 1\n"
		        "sentinel down-after-milliseconds gw 500\nsentinel failover-timeout gw 3000\n"
		        "%s\n", sport[k], S.dir, S.redis_port,
		        conf_extra && conf_extra[k] ? conf_extra[k] : "");
		fclose(f);
		snprintf(name, sizeof(name), k ? "sentinel%d" : "sentinel", k);
		{
			/* = redis-sentinel conf, and works for a Valkey server too */
			char *argv[] = { (char *)h_redis_server_bin(), conf, (char *)"--sentinel",
			                 NULL };

			h_spawn(&S, name, argv);
			assert_int_equal(h_wait_port(sport[k], 5000), 0);
		}
	}
	if (!replica_port)
		return;
	/* the replica has synced before the load starts */
	for (i = 0; i < 100; i++) {
		out = NULL;
		h_run(&out, "redis-cli -p %d info replication", rp);
		if (out && strstr(out, "master_link_status:up")) {
			free(out);
			break;
		}
		free(out);
		usleep(100000);
	}
	assert_true(i < 100);
}

/* Kills the master under load and checks that the agent followed; the
 * sentinel object (JSON members after "addresses") in sen_extra. */
static void sentinel_failover_run(const char *name, const char *sentinel_conf,
                                  const char *sen_extra)
{
	struct opts o = { .rl_user = "100/86400", .rl_ip = "1000000/60",
	                  .rl_extra = "\"on_redis_error\": \"deny\"" };
	struct failover_load l = { .users = 48, .limit = 100 };
	const char *extra_conf[1] = { sentinel_conf };
	char url[128], *auth[48], extra[512];
	int i, sport, rp;

	h_stack_init(&S, name);
	start_sentinel_setup(&rp, 1, extra_conf, &sport);
	snprintf(extra, sizeof(extra), "\"sentinel\": {\"master\": \"gw\", \"addresses\": "
	         "[\"127.0.0.1:%d\"]%s}", sport, sen_extra ? sen_extra : "");
	o.redis_extra = extra;
	start_pair(&S, &o);
	wait_cluster_ready(S.metrics_port);
	mint_many("s", l.users, auth);
	url_of(&S, "/private/x", url, sizeof(url));
	l.url = url;
	l.auth = auth;
	failover_run(&l, kill_master, NULL);
	for (i = 0; i < l.users; i++)
		free(auth[i]);
	print_message("# sentinel%s, master killed under load: %d users, %d decided requests, %d "
	              "undecided (503); %d over-admitted, %d under-admitted; the agent followed "
	              "the switch %.0f ms after the kill (%.0f +switch-master, %.0f Sentinel "
	              "answers)\n", sentinel_conf ? " with AUTH" : "", l.users, l.sent, l.other,
	              l.over, l.under, sen_switch_ms,
	              h_metric(S.metrics_port, "spogate_ratelimit_sentinel_switches_total"),
	              h_metric(S.metrics_port, "spogate_ratelimit_sentinel_queries_total"));
	assert_true(sen_switch_ms >= 0);
	assert_true(l.sent > 0);
}

static void test_sentinel_master_killed_during_load(void **state)
{
	(void)state;
	sentinel_failover_run("rl_sentinel", NULL, NULL);
}

/* ---- Sentinels that want a password (requirepass in sentinel.conf) ---- */

#define SEN_PW   "sen-Pw-4f1c9e"       /* what the sentinels require */
#define SEN_BAD  "wrong-Pw-77d0a2"     /* what a misconfigured gateway sends */

static const struct h_proc *agent_proc(void)
{
	int i;

	for (i = 0; i < S.nprocs; i++)
		if (strcmp(S.procs[i].name, "agent") == 0)
			return &S.procs[i];
	fail_msg("no agent in the stack");
	return NULL;
}

/* How many lines of the agent's log contain needle. */
static int agent_log_count(const char *needle)
{
	char line[4096];
	int n = 0;
	FILE *f = fopen(agent_proc()->log, "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			n++;
	fclose(f);
	return n;
}

/* Connections sentinel port has received (it answers INFO to user, NULL:
 * the default user, with pw). */
static long sentinel_connections(int port, const char *user, const char *pw)
{
	char *out = NULL, *p;
	long n = -1;

	h_run(&out, "redis-cli -p %d --user '%s' --pass '%s' --no-auth-warning info stats", port,
	      user ? user : "default", pw);
	if (out && (p = strstr(out, "total_connections_received:")))
		n = strtol(p + strlen("total_connections_received:"), NULL, 10);
	free(out);
	return n;
}

/* Waits until the agent has come back to the sentinel many times (each
 * retry a new connection), so that a log line per retry would show. */
static void wait_sentinel_retries(int port, const char *user, const char *pw, long n)
{
	int i;

	for (i = 0; i < 200 && sentinel_connections(port, user, pw) < n; i++)
		usleep(100000);
	assert_true(i < 200);
}

/* An ACL user of the sentinel allowed only what the agent sends (the
 * default user off), its password from the agent's environment (${NAME}):
 * the master is found, limits hold, and a SIGKILLed master is followed
 * (the +switch-master that the test waits for only reaches an
 * authenticated subscription). The password is never logged. */
static void test_sentinel_with_password_follows_a_killed_master(void **state)
{
	(void)state;
	setenv("SPOGATE_TEST_SENTINEL_PW", SEN_PW, 1);
	sentinel_failover_run("rl_sentinel_auth",
	                      "user default off\nuser gw-sentinel on >" SEN_PW " -@all +auth "
	                      "+sentinel|get-master-addr-by-name +subscribe &*",
	                      ", \"username\": \"gw-sentinel\", "
	                      "\"password\": \"${SPOGATE_TEST_SENTINEL_PW}\"");
	unsetenv("SPOGATE_TEST_SENTINEL_PW");
	assert_int_equal(agent_log_count(SEN_PW), 0);
	assert_int_equal(agent_log_count("refused AUTH"), 0);
}

/* A stack named name on sentinels started by start_sentinel_setup() (no
 * replica), the agent given their addresses and sen_members (JSON
 * members after "addresses", NULL: none) in redis.sentinel. */
static void start_on_sentinels(const char *name, struct opts *o, int n, const char *const *conf,
                               int *sport, const char *sen_members)
{
	char extra[512];
	int used, k;

	h_stack_init(&S, name);
	start_sentinel_setup(NULL, n, conf, sport);
	used = snprintf(extra, sizeof(extra), "\"sentinel\": {\"master\": \"gw\", \"addresses\": [");
	for (k = 0; k < n; k++)
		used += snprintf(extra + used, sizeof(extra) - (size_t)used, "%s\"127.0.0.1:%d\"",
		                 k ? ", " : "", sport[k]);
	snprintf(extra + used, sizeof(extra) - (size_t)used, "]%s%s}", sen_members ? ", " : "",
	         sen_members ? sen_members : "");
	o->redis_extra = extra;
	start_pair(&S, o);
}

/* /override/ at 2/60: the limit is enforced through the master found. */
static void expect_two_of_three(const char *user)
{
	wait_cluster_ready(S.metrics_port);
	assert_int_equal(status_as("/override/x", user, NULL), 200);
	assert_int_equal(status_as("/override/x", user, NULL), 200);
	assert_int_equal(status_as("/override/x", user, NULL), 429);
}

/* Two sentinels; the first refuses the password (it wants another one):
 * it is logged once, by name, and the second one is used; limits hold. */
static void test_sentinel_refusing_auth_is_skipped_for_the_next(void **state)
{
	struct opts o = { .rl_user = "100/60", .rl_ip = "1000/60", .rl_override = "2/60" };
	const char *conf[2] = { "requirepass other-" SEN_PW, "requirepass " SEN_PW };
	char needle[128];
	int sport[2];

	(void)state;
	start_on_sentinels("rl_sentinel_auth_next", &o, 2, conf, sport,
	                   "\"password\": \"" SEN_PW "\"");
	expect_two_of_three("ivy");
	snprintf(needle, sizeof(needle), "sentinel 127.0.0.1:%d refused AUTH", sport[0]);
	assert_int_equal(agent_log_count(needle), 1);
	snprintf(needle, sizeof(needle), "sentinel 127.0.0.1:%d refused AUTH", sport[1]);
	assert_int_equal(agent_log_count(needle), 0);
	assert_int_equal(agent_log_count(SEN_PW), 0);
}

/* An ACL user that may ask for the master but not subscribe: the master
 * is found (limits hold), the missing permission logged once by name. */
static void test_sentinel_user_without_subscribe_is_named(void **state)
{
	struct opts o = { .rl_user = "100/60", .rl_ip = "1000/60", .rl_override = "2/60" };
	const char *conf[1] = { "user default off\nuser gw-sentinel on >" SEN_PW " -@all +auth "
	                        "+sentinel|get-master-addr-by-name +info" };
	char needle[128];
	int sport;

	(void)state;
	start_on_sentinels("rl_sentinel_auth_noperm", &o, 1, conf, &sport,
	                   "\"username\": \"gw-sentinel\", \"password\": \"" SEN_PW "\"");
	expect_two_of_three("vera");
	snprintf(needle, sizeof(needle), "sentinel 127.0.0.1:%d: user \"gw-sentinel\" may not "
	         "subscribe to +switch-master (NOPERM", sport);
	assert_int_equal(h_wait_log(agent_proc(), needle, 10000), 0);
	wait_sentinel_retries(sport, "gw-sentinel", SEN_PW, 8);
	assert_int_equal(agent_log_count(needle), 1);
	assert_int_equal(agent_log_count(SEN_PW), 0);
}

/* A sentinel without a password answers our AUTH with an error: one
 * warning, and the sentinel is used all the same. */
static void test_sentinel_without_a_password_ignores_ours(void **state)
{
	struct opts o = { .rl_user = "100/60", .rl_ip = "1000/60", .rl_override = "2/60" };
	char needle[128];
	int sport;

	(void)state;
	start_on_sentinels("rl_sentinel_auth_unused", &o, 1, NULL, &sport,
	                   "\"password\": \"" SEN_PW "\"");
	expect_two_of_three("uma");
	snprintf(needle, sizeof(needle), "sentinel 127.0.0.1:%d has no password set", sport);
	assert_int_equal(agent_log_count(needle), 1);
	assert_int_equal(agent_log_count(SEN_PW), 0);
}

/* A wrong password: the sentinel is unusable, the master stays unknown and
 * the rate-limit stage fails as on any Redis outage (deny: 503), fast.
 * One log line however often the agent retries; the password is not in
 * it. */
static void test_sentinel_wrong_password_is_one_error_and_503(void **state)
{
	struct opts o = { .rl_user = "100/60", .rl_ip = "1000/60",
	                  .rl_extra = "\"on_redis_error\": \"deny\"",
	                  .timeout_ms = FAULT_TIMEOUT_MS, .threads = 2 };
	const char *conf[1] = { "requirepass " SEN_PW };
	char needle[128];
	struct h_resp r;
	double t0;
	int sport, i;

	(void)state;
	start_on_sentinels("rl_sentinel_auth_wrong", &o, 1, conf, &sport,
	                   "\"username\": \"default\", \"password\": \"" SEN_BAD "\"");
	snprintf(needle, sizeof(needle), "sentinel 127.0.0.1:%d refused AUTH as user \"default\"",
	         sport);
	assert_int_equal(h_wait_log(agent_proc(), needle, 10000), 0);
	wait_sentinel_retries(sport, NULL, SEN_PW, 12);
	for (i = 0; i < 5; i++) {
		t0 = h_now_ms();
		assert_int_equal(get_as(&r, "/private/x", "olga", NULL), 503);
		assert_string_equal(r.body, "{\"error\":\"service_unavailable\","
		                    "\"reason\":\"ratelimit_unavailable\"}");
		assert_true(h_now_ms() - t0 < FAULT_TIMEOUT_MS + FAULT_SLACK_MS);
		h_resp_free(&r);
	}
	assert_true(h_metric(S.metrics_port, "spogate_ratelimit_redis_up") == 0);
	assert_true(h_metric(S.metrics_port, "spogate_ratelimit_sentinel_queries_total") == 0);
	assert_int_equal(agent_log_count(needle), 1);
	assert_int_equal(agent_log_count("WRONGPASS"), 1);
	assert_int_equal(agent_log_count("does not name master"), 0);
	assert_int_equal(agent_log_count(SEN_BAD), 0);
	assert_int_equal(agent_log_count(SEN_PW), 0);
}

/* No password set for a sentinel that wants one: NOAUTH, named as such,
 * once; with on_redis_error allow requests pass (counted as allowed on
 * an unavailable Redis). */
static void test_sentinel_missing_password_is_one_error_and_allow(void **state)
{
	struct opts o = { .rl_user = "100/60", .rl_ip = "1000/60",
	                  .timeout_ms = FAULT_TIMEOUT_MS };
	const char *conf[1] = { "requirepass " SEN_PW };
	char needle[128];
	int sport, i;

	(void)state;
	start_on_sentinels("rl_sentinel_auth_missing", &o, 1, conf, &sport, NULL);
	snprintf(needle, sizeof(needle), "sentinel 127.0.0.1:%d requires authentication", sport);
	assert_int_equal(h_wait_log(agent_proc(), needle, 10000), 0);
	wait_sentinel_retries(sport, NULL, SEN_PW, 12);
	for (i = 0; i < 5; i++)
		assert_int_equal(status_as("/private/x", "pia", NULL), 200);
	assert_true(h_metric(S.metrics_port, UNAVAILABLE_ALLOW) >= 5);
	assert_true(h_metric(S.metrics_port, "spogate_ratelimit_redis_up") == 0);
	assert_int_equal(agent_log_count(needle), 1);
	assert_int_equal(agent_log_count("redis.sentinel.password is not set"), 1);
	assert_int_equal(agent_log_count("does not name master"), 0);
}

static void kill_redis(void)
{
	h_signal(redis, SIGKILL);
	h_stop(redis, 1000);
}

static void outage_during(void)
{
	usleep(700000);
	kill_redis();
}

static void test_redis_killed_under_load_with_allow_never_waits(void **state)
{
	struct opts o = { .rl_user = "1000000/60", .rl_ip = "1000000/60",
	                  .timeout_ms = FAULT_TIMEOUT_MS };
	struct hammer h;
	struct h_resp r;
	double t0, resumed = -1;

	(void)state;
	start("rl_outage_allow", &o);
	hammer_run(&h, "/private/x", "liam", 6, 2500, outage_during);
	print_message("# %d requests around the outage, max latency %.1f ms (timeout %d ms)\n",
	              h.n, h.max_ms, FAULT_TIMEOUT_MS);
	free(h.admitted);
	assert_int_equal(h.other, 0);
	assert_int_equal(h.nadmitted, h.n);
	assert_true(h.max_ms < FAULT_TIMEOUT_MS + FAULT_SLACK_MS);
	assert_true(h_metric(S.metrics_port, "spogate_ratelimit_redis_unavailable_total{action=\"allow\"}") > 0);
	/* Redis comes back empty (no keys, no script): limiting resumes by
	 * itself, within a second */
	redis = h_start_redis(&S);
	t0 = h_now_ms();
	while (h_now_ms() - t0 < 3000) {
		assert_int_equal(get_as(&r, "/private/x", "liam", NULL), 200);
		if (h_header(&r, "RateLimit-Limit")) {
			resumed = h_now_ms() - t0;
			h_resp_free(&r);
			break;
		}
		h_resp_free(&r);
		usleep(10000);
	}
	print_message("# limiting resumed %.0f ms after the restart\n", resumed);
	assert_true(resumed >= 0 && resumed < 1000);
}

static void test_frozen_redis_costs_at_most_the_timeout(void **state)
{
	struct opts o = { .rl_user = "1000000/60", .rl_ip = "1000000/60",
	                  .timeout_ms = FAULT_TIMEOUT_MS };
	struct hammer h;
	double t0, resumed = -1;
	struct h_resp r;

	(void)state;
	start("rl_frozen", &o);
	assert_int_equal(status_as("/private/x", "mia", NULL), 200);
	/* SIGSTOP: the connection stays up, replies never come */
	h_signal(redis, SIGSTOP);
	hammer_run(&h, "/private/x", "mia", 6, 1500, NULL);
	h_signal(redis, SIGCONT);
	print_message("# %d requests against a frozen Redis, max latency %.1f ms\n", h.n, h.max_ms);
	free(h.admitted);
	assert_int_equal(h.other, 0);
	assert_int_equal(h.nadmitted, h.n);
	assert_true(h.max_ms < FAULT_TIMEOUT_MS + FAULT_SLACK_MS);
	/* the breaker kept most decisions from waiting at all */
	assert_true(h_metric(S.metrics_port, "spogate_ratelimit_fail_fast_total") > h.n / 2);
	t0 = h_now_ms();
	while (h_now_ms() - t0 < 3000) {
		assert_int_equal(get_as(&r, "/private/x", "mia", NULL), 200);
		if (h_header(&r, "RateLimit-Limit")) {
			resumed = h_now_ms() - t0;
			h_resp_free(&r);
			break;
		}
		h_resp_free(&r);
		usleep(10000);
	}
	assert_true(resumed >= 0 && resumed < 1000);
}

static void test_redis_down_with_deny_is_503(void **state)
{
	struct opts o = { .rl_user = "100/60", .rl_ip = "1000/60",
	                  .rl_extra = "\"on_redis_error\": \"deny\"",
	                  .timeout_ms = FAULT_TIMEOUT_MS };
	struct h_resp r;
	double t0;
	int i;

	(void)state;
	start("rl_outage_deny", &o);
	assert_int_equal(status_as("/private/x", "noah", NULL), 200);
	kill_redis();
	for (i = 0; i < 10; i++) {
		t0 = h_now_ms();
		assert_int_equal(get_as(&r, "/private/x", "noah", NULL), 503);
		assert_string_equal(r.body,
		                    "{\"error\":\"service_unavailable\",\"reason\":\"ratelimit_unavailable\"}");
		assert_true(h_now_ms() - t0 < FAULT_TIMEOUT_MS + FAULT_SLACK_MS);
		h_resp_free(&r);
	}
	/* anonymous traffic too: its per-IP policy needs Redis as well */
	assert_int_equal(status_as("/public/x", NULL, NULL), 503);
	redis = h_start_redis(&S);
	usleep(700000);
	assert_int_equal(status_as("/private/x", "noah", NULL), 200);
}

static void test_script_cache_flush_is_transparent(void **state)
{
	struct opts o = { .rl_user = "3/60", .rl_ip = "1000/60" };
	int i;

	(void)state;
	start("rl_noscript", &o);
	assert_int_equal(status_as("/private/x", "olga", NULL), 200);
	h_run(NULL, "redis-cli -p %d script flush >/dev/null", S.redis_port);
	assert_int_equal(status_as("/private/x", "olga", NULL), 200);
	assert_int_equal(status_as("/private/x", "olga", NULL), 200);
	for (i = 0; i < 3; i++)
		assert_int_equal(status_as("/private/x", "olga", NULL), 429);
	assert_true(h_metric(S.metrics_port, "spogate_ratelimit_redis_noscript_total") >= 1);
	assert_true(h_metric(S.metrics_port, "spogate_ratelimit_redis_errors_total") == 0);
}

/* A policy at the parser's limits still runs the script without error. */
static void test_extreme_policies_are_evaluated(void **state)
{
	struct opts o = { .rl_user = "1/31622400", .rl_ip = "1000000000/1" };
	struct h_resp r;

	(void)state;
	start("rl_extreme", &o);
	assert_int_equal(get_as(&r, "/public/x", NULL, NULL), 200);
	assert_int_equal(hdr_long(&r, "RateLimit-Limit"), 1000000000);
	h_resp_free(&r);
	assert_int_equal(get_as(&r, "/private/x", "quinn", NULL), 200);
	assert_int_equal(hdr_long(&r, "RateLimit-Limit"), 1);
	assert_int_equal(hdr_long(&r, "RateLimit-Reset"), 31622400);
	h_resp_free(&r);
	assert_int_equal(get_as(&r, "/private/x", "quinn", NULL), 429);
	assert_int_equal(hdr_long(&r, "Retry-After"), 31622400);
	h_resp_free(&r);
	assert_true(h_metric(S.metrics_port, "spogate_ratelimit_redis_errors_total") == 0);
}

static void test_redis_acl_user_password_and_db(void **state)
{
	struct opts o = { .rl_user = "5/60", .rl_ip = "1000/60",
	                  .redis_extra = "\"username\": \"gw\", \"password\": \"s3cret\", \"db\": 3" };
	char port[16];
	char *argv[] = { (char *)h_redis_server_bin(), (char *)"--port", port,
	                 (char *)"--bind", (char *)"127.0.0.1", (char *)"--save", (char *)"",
	                 (char *)"--appendonly", (char *)"no", (char *)"--daemonize", (char *)"no",
	                 /* each word its own argument: redis quotes ones with spaces */
	                 (char *)"--user", (char *)"default", (char *)"off",
	                 (char *)"--user", (char *)"gw", (char *)"on", (char *)">s3cret",
	                 (char *)"~spogate:*", (char *)"+@all",
	                 NULL };
	char *out = NULL;
	struct h_resp r;

	(void)state;
	h_stack_init(&S, "rl_auth");
	snprintf(port, sizeof(port), "%d", S.redis_port);
	redis = h_spawn(&S, "redis", argv);
	assert_int_equal(h_wait_port(S.redis_port, 5000), 0);
	start_pair(&S, &o);
	assert_int_equal(get_as(&r, "/private/x", "pete", NULL), 200);
	assert_int_equal(hdr_long(&r, "RateLimit-Limit"), 5);
	h_resp_free(&r);
	h_run(&out, "redis-cli -p %d --user gw --pass s3cret -n 3 --no-auth-warning exists "
	      "spogate:rl:u:pete:5/60", S.redis_port);
	assert_non_null(out);
	assert_int_equal(strtol(out, NULL, 10), 1);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_exactly_20_of_60_concurrent_requests_from_one_user, teardown),
		cmocka_unit_test_teardown(test_two_gateways_sharing_redis_admit_exactly_20, teardown),
		cmocka_unit_test_teardown(test_no_boundary_burst_over_two_adjacent_periods, teardown),
		cmocka_unit_test_teardown(test_per_ip_and_per_user_are_independent, teardown),
		cmocka_unit_test_teardown(test_route_override_wins_and_headers_follow_it, teardown),
		cmocka_unit_test_teardown(test_unauthenticated_traffic_is_limited_per_ip_only, teardown),
		cmocka_unit_test_teardown(test_shadow_mode_passes_everything_and_reports, teardown),
		cmocka_unit_test_teardown(test_over_limit_cache_spares_redis, teardown),
		cmocka_unit_test_teardown(test_both_policies_ride_one_coalesced_script_call, teardown),
		cmocka_unit_test_teardown(test_lease_mode_spares_redis_calls, teardown),
		cmocka_unit_test_teardown(test_exactness_holds_at_10000_distinct_users, teardown),
		cmocka_unit_test_teardown(test_lease_two_gateways_never_over_admit, teardown),
		cmocka_unit_test_teardown(test_cluster_two_gateways_admit_exactly_20, teardown),
		cmocka_unit_test_teardown(test_cluster_failover_during_load, teardown),
		cmocka_unit_test_teardown(test_sentinel_master_killed_during_load, teardown),
		cmocka_unit_test_teardown(test_sentinel_with_password_follows_a_killed_master, teardown),
		cmocka_unit_test_teardown(test_sentinel_refusing_auth_is_skipped_for_the_next, teardown),
		cmocka_unit_test_teardown(test_sentinel_without_a_password_ignores_ours, teardown),
		cmocka_unit_test_teardown(test_sentinel_user_without_subscribe_is_named, teardown),
		cmocka_unit_test_teardown(test_sentinel_wrong_password_is_one_error_and_503, teardown),
		cmocka_unit_test_teardown(test_sentinel_missing_password_is_one_error_and_allow, teardown),
		cmocka_unit_test_teardown(test_redis_killed_under_load_with_allow_never_waits, teardown),
		cmocka_unit_test_teardown(test_frozen_redis_costs_at_most_the_timeout, teardown),
		cmocka_unit_test_teardown(test_redis_down_with_deny_is_503, teardown),
		cmocka_unit_test_teardown(test_script_cache_flush_is_transparent, teardown),
		cmocka_unit_test_teardown(test_extreme_policies_are_evaluated, teardown),
		cmocka_unit_test_teardown(test_redis_acl_user_password_and_db, teardown),
	};

	int rc;

	/* before any thread: curl's global init is not thread-safe */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* RL_TESTS=pattern runs only the matching tests (while developing). */
	if (getenv("RL_TESTS"))
		cmocka_set_test_filter(getenv("RL_TESTS"));
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	if (strcmp(keydir + strlen(keydir) - 6, "XXXXXX") != 0)
		h_run(NULL, "rm -rf %s", keydir);
	return rc;
}
