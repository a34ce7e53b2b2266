/*
 * Rate limiting, pure part: policy strings, subjects and keys, IPv6
 * prefixes, the outcome choice, the over-limit cache and the breaker.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "breaker.h"
#include "ratelimit_core.h"

static int parse(const char *s, struct rl_policy *p)
{
	return rl_policy_parse(s, strlen(s), p);
}

static void test_policy_limit_slash_period_parses(void **state)
{
	struct rl_policy p;

	(void)state;
	assert_int_equal(parse("100/60", &p), 1);
	assert_int_equal(p.limit, 100);
	assert_int_equal(p.period, 60);
	assert_int_equal(parse("1/1", &p), 1);
	assert_int_equal(parse("1000000000/31622400", &p), 1);
	assert_int_equal(p.limit, 1000000000);
}

static void test_empty_policy_means_none(void **state)
{
	struct rl_policy p;

	(void)state;
	assert_int_equal(parse("", &p), 0);
}

static void test_malformed_policies_are_refused(void **state)
{
	static const char *const bad[] = {
		"100", "/60", "100/", "0/60", "100/0", "-1/60", "100/-60", "+1/60",
		"100/60/2", "100 /60", "100/60 ", "1e3/60", "abc", "100/minute",
		"1000000001/60", "1/31622401", "99999999999999999999/1",
		"00000000000000000000000000000001/1",
	};
	struct rl_policy p;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i], &p) != -1)
			fail_msg("\"%s\" was accepted", bad[i]);
	}
	/* length is what counts, not a NUL: "100/60" cut to "100/6" */
	assert_int_equal(rl_policy_parse("100/60", 5, &p), 1);
	assert_int_equal(p.period, 6);
}

static void test_keys_name_kind_subject_and_policy(void **state)
{
	struct rl_policy p = { 20, 10 };
	char k[RL_KEY_MAX];
	int n;

	(void)state;
	n = rl_key_build(k, sizeof(k), RL_USER, "alice", 5, &p);
	assert_string_equal(k, "spogate:rl:u:alice:20/10");
	assert_int_equal(n, (int)strlen(k));
	rl_key_build(k, sizeof(k), RL_IP, "10.0.0.1", 8, &p);
	assert_string_equal(k, "spogate:rl:ip:10.0.0.1:20/10");
	/* the id is taken by length, not to a NUL */
	rl_key_build(k, sizeof(k), RL_USER, "bobby", 3, &p);
	assert_string_equal(k, "spogate:rl:u:bob:20/10");
}

static void test_key_that_does_not_fit_is_refused_not_truncated(void **state)
{
	struct rl_policy p = { 20, 10 };
	char small[24];
	char id[2000];

	(void)state;
	memset(id, 'a', sizeof(id));
	assert_int_equal(rl_key_build(small, sizeof(small), RL_USER, "alice", 5, &p), -1);
	assert_int_equal(rl_key_build(small, sizeof(small), RL_USER, "", 0, &p), 19);
	{
		char big[RL_KEY_MAX];

		assert_int_equal(rl_key_build(big, sizeof(big), RL_USER, id, sizeof(id), &p), -1);
		assert_true(rl_key_build(big, sizeof(big), RL_USER, id, 1024, &p) > 1024);
	}
}

static void ip6(const char *s, uint8_t out[16])
{
	assert_int_equal(inet_pton(AF_INET6, s, out), 1);
}

static void test_ipv4_subject_is_the_address(void **state)
{
	uint8_t ip[16] = { 192, 0, 2, 7 };
	char out[64];

	(void)state;
	assert_int_equal(rl_ip_subject(4, ip, 64, out, sizeof(out)), 9);
	assert_string_equal(out, "192.0.2.7");
}

static void test_ipv6_subject_is_the_64_prefix(void **state)
{
	uint8_t a[16], b[16];
	char sa[64], sb[64];

	(void)state;
	ip6("2001:db8:1:2:aaaa:bbbb:cccc:dddd", a);
	ip6("2001:db8:1:2::1", b);
	rl_ip_subject(6, a, 64, sa, sizeof(sa));
	rl_ip_subject(6, b, 64, sb, sizeof(sb));
	assert_string_equal(sa, "2001:db8:1:2::/64");
	assert_string_equal(sa, sb);
	/* the next /64 is another client */
	ip6("2001:db8:1:3::1", b);
	rl_ip_subject(6, b, 64, sb, sizeof(sb));
	assert_string_equal(sb, "2001:db8:1:3::/64");
}

static void test_ipv6_prefix_is_configurable(void **state)
{
	uint8_t a[16];
	char s[64];

	(void)state;
	ip6("2001:db8:1:2:aaaa:bbbb:cccc:dddd", a);
	rl_ip_subject(6, a, 48, s, sizeof(s));
	assert_string_equal(s, "2001:db8:1::/48");
	rl_ip_subject(6, a, 56, s, sizeof(s));
	assert_string_equal(s, "2001:db8:1::/56");
	rl_ip_subject(6, a, 60, s, sizeof(s));
	assert_string_equal(s, "2001:db8:1::/60");
	ip6("2001:db8:1:ff:aaaa::", a);
	rl_ip_subject(6, a, 60, s, sizeof(s));
	assert_string_equal(s, "2001:db8:1:f0::/60");
	rl_ip_subject(6, a, 128, s, sizeof(s));
	assert_string_equal(s, "2001:db8:1:ff:aaaa::");
	rl_ip_subject(6, a, 1, s, sizeof(s));
	assert_string_equal(s, "::/1");
	assert_int_equal(rl_ip_subject(6, a, 0, s, sizeof(s)), -1);
	assert_int_equal(rl_ip_subject(6, a, 129, s, sizeof(s)), -1);
}

static void test_ipv4_mapped_ipv6_counts_as_ipv4(void **state)
{
	uint8_t a[16];
	char s[64];

	(void)state;
	ip6("::ffff:198.51.100.4", a);
	rl_ip_subject(6, a, 64, s, sizeof(s));
	assert_string_equal(s, "198.51.100.4");
}

static void test_ip_subject_bounds(void **state)
{
	uint8_t a[16];
	char s[8];

	(void)state;
	ip6("2001:db8::1", a);
	assert_int_equal(rl_ip_subject(6, a, 64, s, sizeof(s)), -1);
	assert_int_equal(rl_ip_subject(0, a, 64, s, sizeof(s)), -1);
}

static void test_denial_reports_the_longest_wait(void **state)
{
	struct rl_policy pol[2] = { { 20, 10 }, { 100, 60 } };
	struct rl_key_result res[2] = { { 0, 10000, 500 }, { 0, 60000, 1200 } };
	struct rl_outcome o;

	(void)state;
	rl_outcome_pick(0, pol, res, 2, &o);
	assert_false(o.allowed);
	assert_int_equal(o.index, 1);
	assert_int_equal(o.limit, 100);
	assert_int_equal(o.remaining, 0);
	assert_int_equal(o.retry_after_s, 2);    /* 1.2 s rounded up */
	assert_int_equal(o.reset_s, 60);
	/* a denial never says "retry in 0 s" */
	res[0].retry_ms = 1;
	res[1].retry_ms = 0;
	rl_outcome_pick(0, pol, res, 2, &o);
	assert_int_equal(o.index, 0);
	assert_int_equal(o.retry_after_s, 1);
}

static void test_allow_reports_the_fewest_remaining(void **state)
{
	struct rl_policy pol[2] = { { 20, 10 }, { 1000, 60 } };
	struct rl_key_result res[2] = { { 19, 500, 0 }, { 5, 59000, 0 } };
	struct rl_outcome o;

	(void)state;
	rl_outcome_pick(1, pol, res, 2, &o);
	assert_true(o.allowed);
	assert_int_equal(o.index, 1);
	assert_int_equal(o.limit, 1000);
	assert_int_equal(o.remaining, 5);
	assert_int_equal(o.reset_s, 59);
	assert_int_equal(o.retry_after_s, 0);
	/* equal remaining: the later reset is the more restrictive */
	res[1].remaining = 19;
	res[1].reset_ms = 200;
	rl_outcome_pick(1, pol, res, 2, &o);
	assert_int_equal(o.index, 0);
	rl_outcome_pick(1, pol, res, 1, &o);
	assert_int_equal(o.index, 0);
}

static void test_cache_denies_until_t_then_forgets(void **state)
{
	struct rl_cache c;
	const struct rl_cache_entry *e;
	const char *k = "spogate:rl:u:alice:20/10";

	(void)state;
	assert_int_equal(rl_cache_init(&c, 64), 0);
	assert_null(rl_cache_get(&c, k, strlen(k), 100.0));
	rl_cache_put(&c, k, strlen(k), 101.5, 110.0, 20, 100.0);
	e = rl_cache_get(&c, k, strlen(k), 100.0);
	assert_non_null(e);
	assert_int_equal(e->limit, 20);
	assert_true(e->until == 101.5);
	assert_non_null(rl_cache_get(&c, k, strlen(k), 101.49));
	assert_null(rl_cache_get(&c, k, strlen(k), 101.5));
	/* another key, a prefix of it, is not denied */
	assert_null(rl_cache_get(&c, k, strlen(k) - 1, 100.0));
	assert_null(rl_cache_get(&c, "spogate:rl:u:bob:20/10", 22, 100.0));
	/* an entry already in the past is not stored */
	rl_cache_put(&c, "spogate:rl:u:carol:20/10", 24, 99.0, 110.0, 20, 100.0);
	assert_null(rl_cache_get(&c, "spogate:rl:u:carol:20/10", 24, 98.0));
	rl_cache_free(&c);
}

static void test_cache_refreshes_a_key_in_place(void **state)
{
	struct rl_cache c;
	const char *k = "spogate:rl:ip:10.0.0.1:5/1";
	int i, live = 0;

	(void)state;
	assert_int_equal(rl_cache_init(&c, 4), 0);
	assert_int_equal(c.nsets, 1);
	rl_cache_put(&c, k, strlen(k), 101.0, 101.0, 5, 100.0);
	rl_cache_put(&c, k, strlen(k), 102.0, 102.0, 5, 100.0);
	for (i = 0; i < RL_CACHE_WAYS; i++)
		live += c.e[i].until > 100.0;
	assert_int_equal(live, 1);
	assert_true(rl_cache_get(&c, k, strlen(k), 100.0)->until == 102.0);
	rl_cache_free(&c);
}

static void test_cache_is_bounded_and_evicts_the_soonest(void **state)
{
	struct rl_cache c;
	char k[64];
	int i, n, hits = 0;

	(void)state;
	assert_int_equal(rl_cache_init(&c, 4), 0);
	for (i = 0; i < 10; i++) {
		n = snprintf(k, sizeof(k), "spogate:rl:u:user%d:1/60", i);
		rl_cache_put(&c, k, (size_t)n, 200.0 + i, 260.0, 1, 100.0);
	}
	for (i = 0; i < 10; i++) {
		n = snprintf(k, sizeof(k), "spogate:rl:u:user%d:1/60", i);
		hits += rl_cache_get(&c, k, (size_t)n, 100.0) != NULL;
	}
	assert_int_equal(hits, RL_CACHE_WAYS);
	/* the survivors are the ones denied longest */
	n = snprintf(k, sizeof(k), "spogate:rl:u:user9:1/60");
	assert_non_null(rl_cache_get(&c, k, (size_t)n, 100.0));
	rl_cache_free(&c);
}

static void test_cache_skips_long_keys_and_can_be_off(void **state)
{
	struct rl_cache c;
	char k[RL_CACHE_KEY_MAX + 1];

	(void)state;
	memset(k, 'x', sizeof(k));
	assert_int_equal(rl_cache_init(&c, 16), 0);
	rl_cache_put(&c, k, sizeof(k), 200.0, 200.0, 1, 100.0);
	assert_null(rl_cache_get(&c, k, sizeof(k), 100.0));
	rl_cache_put(&c, k, RL_CACHE_KEY_MAX, 200.0, 200.0, 1, 100.0);
	assert_non_null(rl_cache_get(&c, k, RL_CACHE_KEY_MAX, 100.0));
	rl_cache_free(&c);
	assert_int_equal(rl_cache_init(&c, 0), 0);
	rl_cache_put(&c, "a", 1, 200.0, 200.0, 1, 100.0);
	assert_null(rl_cache_get(&c, "a", 1, 100.0));
	rl_cache_free(&c);
}

static void test_breaker_opens_after_n_consecutive_failures(void **state)
{
	struct breaker b;

	(void)state;
	breaker_init(&b, 3, 0.2);
	assert_true(breaker_admit(&b, 0.0));
	assert_int_equal(breaker_failure(&b, 0.0), 0);
	assert_int_equal(breaker_failure(&b, 0.0), 0);
	breaker_success(&b);              /* resets the count */
	assert_int_equal(breaker_failure(&b, 0.0), 0);
	assert_int_equal(breaker_failure(&b, 0.0), 0);
	assert_int_equal(breaker_failure(&b, 1.0), 1);
	assert_int_equal(b.state, BREAKER_OPEN);
	assert_int_equal(b.opened, 1);
	/* open: nobody waits for Redis */
	assert_false(breaker_admit(&b, 1.0));
	assert_false(breaker_admit(&b, 1.19));
	/* late failures of calls sent before do not extend it */
	assert_int_equal(breaker_failure(&b, 1.1), 0);
	assert_true(b.open_until == 1.2);
}

static void test_breaker_half_open_lets_one_probe_through(void **state)
{
	struct breaker b;

	(void)state;
	breaker_init(&b, 1, 0.2);
	assert_int_equal(breaker_failure(&b, 0.0), 1);
	assert_true(breaker_admit(&b, 0.25));     /* the probe */
	assert_int_equal(b.state, BREAKER_HALF_OPEN);
	assert_false(breaker_admit(&b, 0.25));    /* everyone else fails fast */
	assert_false(breaker_admit(&b, 0.30));
	/* the probe fails: open again, from now */
	assert_int_equal(breaker_failure(&b, 0.3), 1);
	assert_false(breaker_admit(&b, 0.45));
	assert_true(breaker_admit(&b, 0.5));
	/* the probe succeeds: closed, everyone goes */
	breaker_success(&b);
	assert_int_equal(b.state, BREAKER_CLOSED);
	assert_true(breaker_admit(&b, 0.5));
	assert_true(breaker_admit(&b, 0.5));
	assert_int_equal(b.opened, 2);
}

static void test_breaker_probes_at_once_after_a_reconnect(void **state)
{
	struct breaker b;

	(void)state;
	breaker_init(&b, 1, 10.0);
	breaker_failure(&b, 0.0);
	assert_false(breaker_admit(&b, 0.1));
	breaker_reconnected(&b);
	assert_true(breaker_admit(&b, 0.1));
	assert_false(breaker_admit(&b, 0.1));
	/* a reconnect does not reopen a closed breaker's gate */
	breaker_init(&b, 1, 10.0);
	breaker_reconnected(&b);
	assert_int_equal(b.state, BREAKER_CLOSED);
}

static json_t *js(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);

	assert_non_null(j);
	return j;
}

static void test_config_defaults(void **state)
{
	struct rl_config c;
	char err[256];

	(void)state;
	assert_int_equal(rl_config_parse(NULL, NULL, &c, err, sizeof(err)), 0);
	assert_false(c.enabled);
	assert_int_equal(c.on_error, RL_ON_ERROR_ALLOW);
	assert_false(c.shadow);
	assert_int_equal(c.ipv6_prefix, 64);
	assert_string_equal(c.redis_host, "127.0.0.1");
	assert_int_equal(c.redis_port, 6379);
	assert_true(c.redis_timeout_s == 0.05);
	assert_int_equal(c.redis_db, 0);
	assert_true(c.cache_entries > 0);
}

static void test_config_reads_every_key(void **state)
{
	struct rl_config c;
	char err[256];
	json_t *r = js("{\"address\":\"localhost:6380\",\"timeout_ms\":20,\"username\":\"gw\","
	               "\"password\":\"s3cret\",\"db\":3}");
	json_t *l = js("{\"enabled\":true,\"on_redis_error\":\"deny\",\"shadow\":true,"
	               "\"ipv6_prefix\":56,\"local_cache_entries\":0,\"breaker_failures\":2,"
	               "\"breaker_open_ms\":100}");

	(void)state;
	assert_int_equal(rl_config_parse(r, l, &c, err, sizeof(err)), 0);
	assert_true(c.enabled);
	assert_int_equal(c.on_error, RL_ON_ERROR_DENY);
	assert_true(c.shadow);
	assert_int_equal(c.ipv6_prefix, 56);
	assert_int_equal(c.cache_entries, 0);
	assert_int_equal(c.breaker_failures, 2);
	assert_true(c.breaker_open_s == 0.1);
	/* no DNS while parsing; resolved once, at start-up */
	assert_string_equal(c.redis_host, "localhost");
	assert_int_equal(rl_config_resolve(&c, err, sizeof(err)), 0);
	assert_true(strcmp(c.redis_host, "127.0.0.1") == 0 || strcmp(c.redis_host, "::1") == 0);
	assert_int_equal(c.redis_port, 6380);
	assert_true(c.redis_timeout_s == 0.02);
	assert_string_equal(c.redis_username, "gw");
	assert_string_equal(c.redis_password, "s3cret");
	assert_int_equal(c.redis_db, 3);
	json_decref(r);
	json_decref(l);
}

static void expect_refused(const char *redis, const char *rl, const char *needle)
{
	struct rl_config c;
	char err[256] = "";
	json_t *r = redis ? js(redis) : NULL, *l = rl ? js(rl) : NULL;

	assert_int_equal(rl_config_parse(r, l, &c, err, sizeof(err)), -1);
	if (!strstr(err, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
	json_decref(r);
	json_decref(l);
}

static void test_unresolvable_redis_host_is_an_error_at_start(void **state)
{
	struct rl_config c;
	char err[256] = "";
	json_t *r = js("{\"address\":\"no-such-host.invalid:6379\"}");

	(void)state;
	assert_int_equal(rl_config_parse(r, NULL, &c, err, sizeof(err)), 0);
	assert_int_equal(rl_config_resolve(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot resolve"));
	json_decref(r);
}

static void test_config_refuses_bad_values(void **state)
{
	(void)state;
	expect_refused(NULL, "{\"on_redis_error\":\"maybe\"}", "on_redis_error");
	expect_refused(NULL, "{\"enabeld\":true}", "rate_limiting.enabeld");
	expect_refused(NULL, "{\"ipv6_prefix\":0}", "ipv6_prefix");
	expect_refused(NULL, "{\"ipv6_prefix\":129}", "ipv6_prefix");
	expect_refused(NULL, "{\"shadow\":\"yes\"}", "shadow");
	expect_refused("{\"address\":\"6379\"}", NULL, "redis.address");
	expect_refused("{\"timeout_ms\":0}", NULL, "timeout_ms");
	expect_refused("{\"db\":-1}", NULL, "db");
	expect_refused("{\"username\":\"gw\"}", NULL, "password");
	expect_refused("{\"pasword\":\"x\"}", NULL, "redis.pasword");
}

/* redis.sentinel's own credentials: literal, ${NAME} and password_file,
 * apart from the data nodes' redis.username/password. */
static void test_config_reads_sentinel_credentials(void **state)
{
	struct rl_config c;
	char err[256], file[] = "/tmp/spogate-sen-pw-XXXXXX", js_text[512];
	json_t *r;
	int fd;

	(void)state;
	r = js("{\"password\":\"data\",\"sentinel\":{\"master\":\"gw\",\"addresses\":"
	       "[\"127.0.0.1:26379\"],\"username\":\"sen\",\"password\":\"s3n\"}}");
	assert_int_equal(rl_config_parse(r, NULL, &c, err, sizeof(err)), 0);
	assert_string_equal(c.sentinel_username, "sen");
	assert_string_equal(c.sentinel_password, "s3n");
	assert_string_equal(c.redis_password, "data");
	json_decref(r);

	setenv("SPOGATE_TEST_SENTINEL_PW", "from-env", 1);
	r = js("{\"sentinel\":{\"master\":\"gw\",\"addresses\":[\"127.0.0.1:26379\"],"
	       "\"password\":\"${SPOGATE_TEST_SENTINEL_PW}\"}}");
	assert_int_equal(rl_config_parse(r, NULL, &c, err, sizeof(err)), 0);
	assert_string_equal(c.sentinel_password, "from-env");
	assert_string_equal(c.sentinel_username, "");
	assert_string_equal(c.redis_password, "");
	json_decref(r);
	unsetenv("SPOGATE_TEST_SENTINEL_PW");

	fd = mkstemp(file);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "from-file\n", 10), 10);
	close(fd);
	snprintf(js_text, sizeof(js_text), "{\"sentinel\":{\"master\":\"gw\",\"addresses\":"
	         "[\"127.0.0.1:26379\"],\"password_file\":\"%s\"}}", file);
	r = js(js_text);
	assert_int_equal(rl_config_parse(r, NULL, &c, err, sizeof(err)), 0);
	assert_string_equal(c.sentinel_password, "from-file");
	json_decref(r);
	unlink(file);

	/* none given: no AUTH */
	r = js("{\"sentinel\":{\"master\":\"gw\",\"addresses\":[\"127.0.0.1:26379\"]}}");
	assert_int_equal(rl_config_parse(r, NULL, &c, err, sizeof(err)), 0);
	assert_string_equal(c.sentinel_password, "");
	json_decref(r);
}

/* The errors name the key and never show the secret. */
static void test_config_refuses_bad_sentinel_credentials(void **state)
{
	struct rl_config c;
	char err[256] = "";
	json_t *r;

	(void)state;
#define SEN "{\"sentinel\":{\"master\":\"gw\",\"addresses\":[\"127.0.0.1:26379\"],"
	expect_refused(SEN "\"pasword\":\"x\"}}", NULL, "redis.sentinel.pasword");
	expect_refused(SEN "\"password\":7}}", NULL, "password");
	expect_refused(SEN "\"username\":true,\"password\":\"x\"}}", NULL, "username");
	expect_refused(SEN "\"username\":\"gw\"}}", NULL, "\"redis.sentinel.username\" needs");
	expect_refused(SEN "\"password\":\"x\",\"password_file\":\"/nonexistent\"}}", NULL,
	               "redis.sentinel.password");
	expect_refused(SEN "\"password_file\":\"/nonexistent/spogate\"}}", NULL,
	               "redis.sentinel.password_file");
	unsetenv("SPOGATE_TEST_UNSET_PW");
	r = js(SEN "\"password\":\"${SPOGATE_TEST_UNSET_PW}\"}}");
	assert_int_equal(rl_config_parse(r, NULL, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "SPOGATE_TEST_UNSET_PW"));
	json_decref(r);
	r = js(SEN "\"password\":\"hunter2-secret\",\"password_file\":\"/x\"}}");
	assert_int_equal(rl_config_parse(r, NULL, &c, err, sizeof(err)), -1);
	assert_null(strstr(err, "hunter2-secret"));
	json_decref(r);
#undef SEN
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_limit_slash_period_parses),
		cmocka_unit_test(test_empty_policy_means_none),
		cmocka_unit_test(test_malformed_policies_are_refused),
		cmocka_unit_test(test_keys_name_kind_subject_and_policy),
		cmocka_unit_test(test_key_that_does_not_fit_is_refused_not_truncated),
		cmocka_unit_test(test_ipv4_subject_is_the_address),
		cmocka_unit_test(test_ipv6_subject_is_the_64_prefix),
		cmocka_unit_test(test_ipv6_prefix_is_configurable),
		cmocka_unit_test(test_ipv4_mapped_ipv6_counts_as_ipv4),
		cmocka_unit_test(test_ip_subject_bounds),
		cmocka_unit_test(test_denial_reports_the_longest_wait),
		cmocka_unit_test(test_allow_reports_the_fewest_remaining),
		cmocka_unit_test(test_cache_denies_until_t_then_forgets),
		cmocka_unit_test(test_cache_refreshes_a_key_in_place),
		cmocka_unit_test(test_cache_is_bounded_and_evicts_the_soonest),
		cmocka_unit_test(test_cache_skips_long_keys_and_can_be_off),
		cmocka_unit_test(test_breaker_opens_after_n_consecutive_failures),
		cmocka_unit_test(test_breaker_half_open_lets_one_probe_through),
		cmocka_unit_test(test_breaker_probes_at_once_after_a_reconnect),
		cmocka_unit_test(test_config_defaults),
		cmocka_unit_test(test_config_reads_every_key),
		cmocka_unit_test(test_config_refuses_bad_values),
		cmocka_unit_test(test_config_reads_sentinel_credentials),
		cmocka_unit_test(test_config_refuses_bad_sentinel_credentials),
		cmocka_unit_test(test_unresolvable_redis_host_is_an_error_at_start),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
