/*
 * /metrics read as Prometheus reads it: the whole exposition of an agent
 * with authentication and rate limiting on passes a strict parser
 * (harness_prom.c), and the families a user alerts on mean what their
 * HELP says: spogate_ratelimit_redis_up is 0 or 1 with the state apart,
 * decisions carry outcome and reason, build and process metrics exist.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "harness.h"

static struct h_stack S;
static struct h_proc *redis;
static char keydir[] = "/tmp/spogate-metrics-keys-XXXXXX";
static char token[4096];

/* The value of the sample that starts with series (name and labels, as
 * written) in text, or -1. */
static double value_of(const char *text, const char *series)
{
	size_t sl = strlen(series);
	const char *p;

	for (p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, series, sl) == 0 && p[sl] == ' ')
			return strtod(p + sl + 1, NULL);
	return -1;
}

static char *scrape(void)
{
	struct h_resp r;
	char url[128], *body;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", S.metrics_port);
	assert_int_equal(h_http(&r, NULL, url, NULL, NULL), 0);
	assert_int_equal(r.status, 200);
	body = strdup(r.body ? r.body : "");
	h_resp_free(&r);
	return body;
}

/* Scrapes until series has value want, for at most 3 s (a worker's Redis
 * connection comes and goes on its own loop). Returns the last scrape. */
static char *scrape_until(const char *series, double want)
{
	char *body = NULL;
	int i;

	for (i = 0; i < 60; i++) {
		free(body);
		body = scrape();
		if (value_of(body, series) == want)
			break;
		usleep(50000);
	}
	return body;
}

static void start(void)
{
	const char *json, *cfg;
	char *out = NULL;

	if (!mkdtemp(keydir))
		fail_msg("mkdtemp");
	assert_int_equal(h_run(NULL, "%s keygen --dir %s >/dev/null 2>&1",
	                       h_bin("spogate-refsvc"), keydir), 0);
	assert_int_equal(h_run(&out, "%s mint --sub alice --key %s/hs1.key --kid hs1 --alg HS256 "
	                       "--ttl 1h", h_bin("spogate-refsvc"), keydir), 0);
	out[strcspn(out, "\r\n")] = '\0';
	snprintf(token, sizeof(token), "Authorization: Bearer %s", out);
	free(out);
	h_stack_init(&S, "metrics");
	redis = h_start_redis(&S);
	h_set_var(&S, "PROCESSING", "2s");
	h_set_var(&S, "RL_USER", "1/60");
	h_set_var(&S, "RL_IP", "1000/60");
	h_set_var(&S, "RL_USER_OVERRIDE", "%s", "");
	h_start_echo(&S, "echo", S.echo_port);
	json = h_write(&S, "agent.json",
	               "{\"threads\": 2, \"log_level\": \"info\",\n"
	               " \"auth\": {\"mode\": \"jwt\", \"jwks_file\": \"%s/jwks1.json\",\n"
	               "           \"algorithms\": [\"HS256\"]},\n"
	               " \"redis\": {\"address\": \"127.0.0.1:%d\", \"timeout_ms\": 500},\n"
	               " \"rate_limiting\": {\"enabled\": true}}\n", keydir, S.redis_port);
	h_start_agent(&S, json, NULL);
	h_render(&S, "tests/integration/conf/rl-spoe.conf.in", "spoe.conf");
	cfg = h_render(&S, "tests/integration/conf/rl.cfg.in", "haproxy.cfg");
	h_start_haproxy(&S, cfg);
}

static int teardown(void **state)
{
	(void)state;
	h_stack_stop(&S);
	if (strcmp(keydir + strlen(keydir) - 6, "XXXXXX") != 0)
		h_run(NULL, "rm -rf %s", keydir);
	return 0;
}

static void expect_refused(const char *text, const char *why)
{
	char *p = h_prom_check(text);

	if (!p)
		fail_msg("the checker took %s:\n%s", why, text);
	free(p);
}

/* The checker itself: it takes a well-formed exposition and refuses each
 * fault on its own. */
static void test_the_checker_refuses_what_prometheus_would(void **state)
{
	static const char *const good =
		"# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\\\\\\n\"} 3\n"
		"# HELP g G.\n# TYPE g gauge\ng -1.5e3\n"
		"# HELP h H.\n# TYPE h histogram\n"
		"h_bucket{s=\"a\",le=\"0.1\"} 1\nh_bucket{s=\"a\",le=\"+Inf\"} 2\n"
		"h_sum{s=\"a\"} 0.3\nh_count{s=\"a\"} 2\n"
		"h_bucket{s=\"b\",le=\"+Inf\"} 0\nh_sum{s=\"b\"} 0\nh_count{s=\"b\"} 0\n"
		"# HELP e_total Empty.\n# TYPE e_total counter\n";
	char *p;

	(void)state;
	p = h_prom_check(good);
	if (p)
		fail_msg("the checker refused a good exposition: %s", p);
	expect_refused("# TYPE a_total counter\na_total 1\n", "no HELP");
	expect_refused("# HELP a_total A.\na_total 1\n", "no TYPE");
	expect_refused("a_total 1\n", "an untyped sample");
	expect_refused("# HELP a A.\n# TYPE a counter\na 1\n", "a counter without _total");
	expect_refused("# HELP a_total A.\n# TYPE a_total counter\na_total -1\n",
	               "a negative counter");
	expect_refused("# HELP g G.\n# TYPE g gauge\ng 1x\n", "a bad value");
	expect_refused("# HELP g G.\n# TYPE g gauge\ng{a=\"1\",a=\"2\"} 1\n", "a label twice");
	expect_refused("# HELP g G.\n# TYPE g gauge\ng{a=\"\\t\"} 1\n", "a bad escape");
	expect_refused("# HELP g G.\n# TYPE g gauge\ng{1a=\"x\"} 1\n", "a bad label name");
	expect_refused("# HELP g G.\n# TYPE g gauge\ng{a=\"x\"} 1\ng{a=\"x\"} 2\n",
	               "a series twice");
	expect_refused("# HELP g G.\n# TYPE g gauge\ng 1\n# HELP f F.\n# TYPE f gauge\nf 1\n"
	               "# HELP g G.\n# TYPE g gauge\n", "a family twice");
	expect_refused("# HELP g G.\n# TYPE g gauge\ng 1", "no final newline");
	expect_refused("# HELP g G.\n# TYPE g gauge\n\ng 1\n", "an empty line");
	expect_refused("# HELP g G.\n# TYPE g gauge\n# other\ng 1\n", "another comment");
	expect_refused("# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
	               "h_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n", "buckets going down");
	expect_refused("# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 0\n"
	               "h_count 2\n", "no +Inf bucket");
	expect_refused("# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0\n"
	               "h_count 3\n", "a _count other than +Inf");
	expect_refused("# HELP g G.\n# TYPE g gauge\ng 1\n# HELP g G.\n", "HELP after samples");
}

static void test_the_whole_exposition_is_strict_prometheus(void **state)
{
	struct h_resp r;
	char url[128], *body, *p;

	(void)state;
	start();
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/private/x", S.http_port);
	body = scrape_until("spogate_ratelimit_redis_up", 1);
	free(body);
	/* allowed, then over the 1/60 policy, then without a token */
	assert_int_equal(h_http(&r, NULL, url, (const char *const[]){ token, NULL }, NULL), 0);
	assert_int_equal(r.status, 200);
	h_resp_free(&r);
	assert_int_equal(h_http(&r, NULL, url, (const char *const[]){ token, NULL }, NULL), 0);
	assert_int_equal(r.status, 429);
	h_resp_free(&r);
	assert_int_equal(h_http(&r, NULL, url, NULL, NULL), 0);
	assert_int_equal(r.status, 401);
	h_resp_free(&r);

	body = scrape();
	p = h_prom_check(body);
	if (p)
		fail_msg("/metrics is not strict Prometheus: %s\n%s", p, body);
	assert_true(value_of(body, "spogate_decisions_total{outcome=\"allow\",reason=\"none\"}") >= 1);
	assert_true(value_of(body, "spogate_decisions_total{outcome=\"deny\",reason=\"rate_limited_user\"}") >= 1);
	assert_true(value_of(body, "spogate_decisions_total{outcome=\"deny\",reason=\"token_missing\"}") >= 1);
	assert_null(strstr(body, "verdict="));
	assert_non_null(strstr(body, "spogate_build_info{version=\""));
	assert_non_null(strstr(body, "\",haproxy_min=\"2.6\"} 1\n"));
	assert_true(value_of(body, "process_cpu_seconds_total") >= 0);
	assert_true(value_of(body, "process_resident_memory_bytes") > 0);
	assert_true(value_of(body, "process_open_fds") > 0);
	assert_true(value_of(body, "process_max_fds") >= value_of(body, "process_open_fds"));
	/* two workers, both connected: 1, not 2 */
	assert_true(value_of(body, "spogate_ratelimit_redis_up") == 1);
	assert_true(value_of(body, "spogate_ratelimit_redis_connections{state=\"up\"}") == 2);
	free(body);

	/* Redis gone: 0, and the states say where the workers are. */
	h_signal(redis, SIGKILL);
	h_stop(redis, 1000);
	body = scrape_until("spogate_ratelimit_redis_up", 0);
	p = h_prom_check(body);
	if (p)
		fail_msg("/metrics is not strict Prometheus: %s\n%s", p, body);
	assert_true(value_of(body, "spogate_ratelimit_redis_up") == 0);
	assert_true(value_of(body, "spogate_ratelimit_redis_connections{state=\"up\"}") < 2);
	assert_true(value_of(body, "spogate_ratelimit_redis_connections{state=\"down\"}") +
	            value_of(body, "spogate_ratelimit_redis_connections{state=\"connecting\"}") +
	            value_of(body, "spogate_ratelimit_redis_connections{state=\"up\"}") == 2);
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_checker_refuses_what_prometheus_would),
		cmocka_unit_test_teardown(test_the_whole_exposition_is_strict_prometheus, teardown),
	};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
