/* Rate ("100/minute"), duration ("500ms") and address ("host:port",
 * "unix:/path") parsing, shared by the generator and the agent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "addr.h"
#include "units.h"

static void test_rates_in_every_unit_parse(void **state)
{
	static const struct { const char *s; long limit, period; } ok[] = {
		{ "100/minute", 100, 60 }, { "10/second", 10, 1 }, { "5/30s", 5, 30 },
		{ "1000/hour", 1000, 3600 }, { "7/day", 7, 86400 }, { "3/2m", 3, 120 },
		{ "1/s", 1, 1 }, { "2/minutes", 2, 60 }, { "1000000000/d", 1000000000, 86400 },
	};
	size_t i;
	long l, p;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		l = p = -1;
		assert_int_equal(rate_parse(ok[i].s, &l, &p), 0);
		assert_int_equal(l, ok[i].limit);
		assert_int_equal(p, ok[i].period);
	}
}

static void test_bad_rates_are_refused(void **state)
{
	static const char *const bad[] = {
		"", "100", "/minute", "0/minute", "-1/minute", "100/", "100/week", "100/ minute",
		" 100/minute", "100/minute ", "100/500ms", "100/1500ms", "1e3/minute", "100//minute",
		"99999999999999999999/minute", "1000000001/second", "10/0s", "10/400d",
	};
	size_t i;
	long l, p;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(rate_parse(bad[i], &l, &p), -1);
	assert_int_equal(rate_parse(NULL, &l, &p), -1);
}

static void test_durations_convert_to_ms(void **state)
{
	static const struct { const char *s; int64_t ms; } ok[] = {
		{ "500ms", 500 }, { "30s", 30000 }, { "2m", 120000 }, { "1h", 3600000 },
		{ "1d", 86400000 }, { "0s", 0 }, { "0ms", 0 },
	};
	size_t i;
	int64_t ms;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(dur_parse_ms(ok[i].s, &ms), 0);
		assert_int_equal(ms, ok[i].ms);
	}
}

static void test_bad_durations_are_refused(void **state)
{
	static const char *const bad[] = {
		"", "30", "s", "30 s", "-1s", "1.5s", "30sec", "30S", "2w", "99999999999999999999ms",
		"400d", "ms30",
	};
	size_t i;
	int64_t ms;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(dur_parse_ms(bad[i], &ms), -1);
	assert_int_equal(dur_parse_ms(NULL, &ms), -1);
}

static void test_sizes_parse_in_binary_units_and_refuse_the_rest(void **state)
{
	static const char *const bad[] = {
		"", "32", "MB", "-1MB", "1.5MB", "32 MB", "32mb", "32TB", "2000GB", "99999999999999999999B",
	};
	int64_t b;
	size_t i;

	(void)state;
	assert_int_equal(size_parse_bytes("32MB", &b), 0);
	assert_int_equal(b, 32LL << 20);
	assert_int_equal(size_parse_bytes("512KiB", &b), 0);
	assert_int_equal(b, 512LL << 10);
	assert_int_equal(size_parse_bytes("1GB", &b), 0);
	assert_int_equal(b, 1LL << 30);
	assert_int_equal(size_parse_bytes("0B", &b), 0);
	assert_int_equal(b, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(size_parse_bytes(bad[i], &b), -1);
}

static void test_unix_addresses_need_an_absolute_path_that_fits(void **state)
{
	char path[ADDR_UNIX_MAX + 1], host[64], longp[ADDR_UNIX_MAX + 7];
	int port;

	(void)state;
	assert_int_equal(addr_unix("unix:/run/spogate/agent.sock", path, sizeof(path)), 1);
	assert_string_equal(path, "/run/spogate/agent.sock");
	assert_int_equal(addr_unix("127.0.0.1:12345", path, sizeof(path)), 0);
	assert_int_equal(addr_unix("unix:relative.sock", path, sizeof(path)), -1);
	assert_int_equal(addr_unix("unix:", path, sizeof(path)), -1);
	/* 107 bytes of path fit sun_path with its NUL, 108 do not */
	memcpy(longp, "unix:/", 6);
	memset(longp + 6, 'a', ADDR_UNIX_MAX - 1);
	longp[6 + ADDR_UNIX_MAX - 1] = '\0';
	assert_int_equal(addr_unix(longp, path, sizeof(path)), 1);
	assert_int_equal(strlen(path), ADDR_UNIX_MAX);
	longp[6 + ADDR_UNIX_MAX - 1] = 'a';
	longp[6 + ADDR_UNIX_MAX] = '\0';
	assert_int_equal(addr_unix(longp, path, sizeof(path)), -1);
	/* and a unix address is not a host:port */
	assert_int_equal(addr_split("unix:/run/a.sock", host, sizeof(host), &port), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rates_in_every_unit_parse),
		cmocka_unit_test(test_bad_rates_are_refused),
		cmocka_unit_test(test_durations_convert_to_ms),
		cmocka_unit_test(test_bad_durations_are_refused),
		cmocka_unit_test(test_sizes_parse_in_binary_units_and_refuse_the_rest),
		cmocka_unit_test(test_unix_addresses_need_an_absolute_path_that_fits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
