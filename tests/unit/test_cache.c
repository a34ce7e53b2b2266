/*
 * Unit tests of the per-worker TTL cache: expiry, LRU bound, coalescing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache.h"

static int freed;
static int woken[16];
static void *woken_value[16];
static int woken_int[16];   /* copied: the value may be gone after the wake */

static void free_value(void *v)
{
	freed++;
	free(v);
}

static void wake(void *arg, void *value, void *ctx)
{
	int i = (int)(intptr_t)arg;

	(void)ctx;
	woken[i]++;
	woken_value[i] = value;
	woken_int[i] = value ? *(int *)value : -1;
}

static void key_of(uint8_t *k, unsigned n)
{
	memset(k, 0, CACHE_KEY_LEN);
	/* Spread over buckets and share buckets: both paths get exercised. */
	k[0] = (uint8_t)(n % 3);
	k[31] = (uint8_t)n;
	k[30] = (uint8_t)(n >> 8);
}

static int *val(int x)
{
	int *p = malloc(sizeof(*p));

	*p = x;
	return p;
}

static void reset(void)
{
	freed = 0;
	memset(woken, 0, sizeof(woken));
	memset(woken_value, 0, sizeof(woken_value));
}

static void test_miss_fill_hit_then_expire(void **state)
{
	struct cache *c = cache_new(8, free_value);
	uint8_t k[CACHE_KEY_LEN];
	void *v;

	(void)state;
	reset();
	key_of(k, 1);
	assert_int_equal(cache_lookup(c, k, 100, NULL, &v), CACHE_MISS);
	cache_fill(c, k, val(7), 110, 100, wake, NULL);
	assert_int_equal(cache_lookup(c, k, 109.9, NULL, &v), CACHE_HIT);
	assert_int_equal(*(int *)v, 7);
	/* expired: a miss again, and the old value is released */
	assert_int_equal(cache_lookup(c, k, 110, NULL, &v), CACHE_MISS);
	assert_int_equal(freed, 1);
	cache_fill(c, k, NULL, 0, 110, wake, NULL);
	assert_int_equal(cache_lookup(c, k, 111, NULL, &v), CACHE_MISS);
	cache_free(c);
}

static void test_concurrent_lookups_coalesce_into_one_fetch(void **state)
{
	struct cache *c = cache_new(8, free_value);
	uint8_t k[CACHE_KEY_LEN];
	struct cache_stats st;
	void *v;
	int i;

	(void)state;
	reset();
	key_of(k, 2);
	assert_int_equal(cache_lookup(c, k, 0, (void *)0, &v), CACHE_MISS);
	for (i = 1; i < 10; i++)
		assert_int_equal(cache_lookup(c, k, 0, (void *)(intptr_t)i, &v), CACHE_PENDING);
	cache_fill(c, k, val(42), 5, 0, wake, NULL);
	for (i = 1; i < 10; i++) {
		assert_int_equal(woken[i], 1);
		assert_int_equal(*(int *)woken_value[i], 42);
	}
	assert_int_equal(woken[0], 0);   /* the fetcher is not a waiter */
	cache_get_stats(c, &st);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.coalesced, 9);
	cache_free(c);
}

static void test_failed_fetch_wakes_waiters_with_null_and_caches_nothing(void **state)
{
	struct cache *c = cache_new(8, free_value);
	uint8_t k[CACHE_KEY_LEN];
	void *v;

	(void)state;
	reset();
	key_of(k, 3);
	assert_int_equal(cache_lookup(c, k, 0, NULL, &v), CACHE_MISS);
	assert_int_equal(cache_lookup(c, k, 0, (void *)1, &v), CACHE_PENDING);
	cache_fill(c, k, NULL, 0, 0, wake, NULL);
	assert_int_equal(woken[1], 1);
	assert_null(woken_value[1]);
	assert_int_equal(cache_lookup(c, k, 0, NULL, &v), CACHE_MISS);
	/* a value that expires at once still reaches the waiters, then goes */
	assert_int_equal(cache_lookup(c, k, 0, (void *)2, &v), CACHE_PENDING);
	cache_fill(c, k, val(5), 0, 0, wake, NULL);
	assert_int_equal(woken_int[2], 5);
	assert_int_equal(freed, 1);
	cache_free(c);
}

static void test_size_is_bounded_and_lru_goes_first(void **state)
{
	struct cache *c = cache_new(4, free_value);
	uint8_t k[CACHE_KEY_LEN];
	struct cache_stats st;
	void *v;
	unsigned i;

	(void)state;
	reset();
	for (i = 0; i < 4; i++) {
		key_of(k, i);
		cache_fill(c, k, val((int)i), 100, 0, NULL, NULL);
	}
	key_of(k, 0);
	assert_int_equal(cache_lookup(c, k, 1, NULL, &v), CACHE_HIT);   /* 0 is now recent */
	for (i = 4; i < 100; i++) {
		key_of(k, i);
		cache_fill(c, k, val((int)i), 100, 0, NULL, NULL);
		key_of(k, 0);
		assert_int_equal(cache_lookup(c, k, 1, NULL, &v), CACHE_HIT);
	}
	cache_get_stats(c, &st);
	assert_true(st.entries <= 4);
	assert_int_equal(freed, 96);
	key_of(k, 1);
	assert_int_equal(cache_lookup(c, k, 1, NULL, &v), CACHE_MISS);
	cache_free(c);
}

/* Expired entries used to stay until the LRU end reached them: a cache
 * of 100,000 expired results held them all. Inserts now sweep them. */
static void test_expired_entries_are_reclaimed_by_later_inserts(void **state)
{
	enum { N = 1000 };
	struct cache *c = cache_new(100000, free_value);
	struct cache_stats st;
	uint8_t k[CACHE_KEY_LEN];
	unsigned i;

	(void)state;
	reset();
	for (i = 0; i < N; i++) {
		key_of(k, i);
		cache_fill(c, k, val((int)i), 10.0, 0.0, NULL, NULL);
	}
	cache_get_stats(c, &st);
	assert_int_equal(st.entries, N);
	/* Later, all expired: fresh inserts (as many as the table has
	 * buckets, at most) take the expired ones with them. */
	for (i = 0; i < 70000; i++) {
		memset(k, 0xee, sizeof(k));
		k[0] = (uint8_t)i;
		k[1] = (uint8_t)(i >> 8);
		k[2] = (uint8_t)(i >> 16);
		cache_fill(c, k, val(-1), 1000.0, 20.0, NULL, NULL);
	}
	cache_get_stats(c, &st);
	assert_int_equal(st.expired, N);
	assert_int_equal(st.entries, 70000);
	assert_int_equal(st.evictions, 0);
	cache_free(c);
}

static size_t int_size(const void *v)
{
	(void)v;
	return 1000;
}

/* Two caches sharing one byte budget stay under it together, whichever
 * of them grows. */
static void test_byte_budget_is_shared_and_kept(void **state)
{
	struct cache *a = cache_new(100000, free_value), *b = cache_new(100000, free_value);
	struct cache_stats sa, sb;
	size_t total = 0;
	uint8_t k[CACHE_KEY_LEN];
	unsigned i;

	(void)state;
	reset();
	cache_set_budget(a, 200 * 1024, &total, int_size);
	cache_set_budget(b, 200 * 1024, &total, int_size);
	for (i = 0; i < 500; i++) {
		key_of(k, i);
		cache_fill(i % 4 ? a : b, k, val((int)i), 100.0, 0.0, NULL, NULL);
	}
	cache_get_stats(a, &sa);
	cache_get_stats(b, &sb);
	assert_true(total <= 200 * 1024);
	assert_int_equal(total, sa.bytes + sb.bytes);
	assert_true(sa.evictions + sb.evictions > 0);
	assert_true(sa.entries + sb.entries >= 150);
	cache_clear(a);
	cache_clear(b);
	assert_int_equal(total, 0);
	cache_free(a);
	cache_free(b);
}

static void test_pending_entries_survive_eviction_and_clear(void **state)
{
	struct cache *c = cache_new(2, free_value);
	uint8_t k[CACHE_KEY_LEN], p[CACHE_KEY_LEN];
	void *v;
	unsigned i;

	(void)state;
	reset();
	key_of(p, 500);
	assert_int_equal(cache_lookup(c, p, 0, NULL, &v), CACHE_MISS);
	assert_int_equal(cache_lookup(c, p, 0, (void *)3, &v), CACHE_PENDING);
	for (i = 0; i < 10; i++) {
		key_of(k, i);
		cache_fill(c, k, val(1), 100, 0, NULL, NULL);
	}
	cache_clear(c);
	assert_int_equal(cache_lookup(c, p, 0, (void *)4, &v), CACHE_PENDING);
	cache_fill(c, p, val(9), 100, 0, wake, NULL);
	assert_int_equal(woken[3], 1);
	assert_int_equal(woken[4], 1);
	assert_int_equal(cache_lookup(c, p, 1, NULL, &v), CACHE_HIT);
	cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_miss_fill_hit_then_expire),
		cmocka_unit_test(test_concurrent_lookups_coalesce_into_one_fetch),
		cmocka_unit_test(test_failed_fetch_wakes_waiters_with_null_and_caches_nothing),
		cmocka_unit_test(test_size_is_bounded_and_lru_goes_first),
		cmocka_unit_test(test_expired_entries_are_reclaimed_by_later_inserts),
		cmocka_unit_test(test_byte_budget_is_shared_and_kept),
		cmocka_unit_test(test_pending_entries_survive_eviction_and_clear),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
