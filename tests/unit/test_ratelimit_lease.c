/*
 * Lease mode, pure part: the slice-sizing rule, local tokens and expiry,
 * the table, and the guarantee itself, checked on a model: several
 * gateways with leases against one GCRA key (the script's arithmetic, in
 * C), random arrivals; every admission must be one a single exact GCRA,
 * fed the real admission times, would also have made, and the shortfall
 * must stay within the documented bound.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "ratelimit_lease.h"

static void test_slice_size_follows_the_rate_and_caps(void **state)
{
	struct rl_lease e;
	struct rl_policy p = { 1000, 60 };
	int64_t want, life;

	(void)state;
	memset(&e, 0, sizeof(e));
	/* a quiet key: one token, no debt (exact) */
	e.rate = 1;
	rl_lease_size(&e, &p, &want, &life);
	assert_int_equal(want, 1);
	assert_int_equal(life, 0);
	/* 40/s: 10 tokens, life = min(250 ms, 2 * 10 / 40 s, 60 s / 8) */
	e.rate = 40;
	rl_lease_size(&e, &p, &want, &life);
	assert_int_equal(want, 10);
	assert_int_equal(life, 250000);
	/* a fast key: at most RL_LEASE_MAX */
	e.rate = 100000;
	rl_lease_size(&e, &p, &want, &life);
	assert_int_equal(want, RL_LEASE_MAX);
	/* never more than 1/8 of the burst */
	p.limit = 40;
	rl_lease_size(&e, &p, &want, &life);
	assert_int_equal(want, 5);
	/* a small limit is always exact */
	p.limit = 15;
	rl_lease_size(&e, &p, &want, &life);
	assert_int_equal(want, 1);
	/* a high-rate limit: the slice lives twice the time to spend it */
	p.limit = 1000000;
	p.period = 1;
	rl_lease_size(&e, &p, &want, &life);
	assert_int_equal(want, RL_LEASE_MAX);
	assert_int_equal(life, 640);            /* 2 * 32 / 100000 s */
	/* a short period: the debt stays under 1/8 of the burst */
	p.limit = 800;
	p.period = 1;
	e.rate = 100;
	rl_lease_size(&e, &p, &want, &life);
	assert_int_equal(want, 25);
	assert_int_equal(life, 125000);
}

static void test_tokens_are_taken_until_spent_or_expired(void **state)
{
	struct rl_lease e;

	(void)state;
	memset(&e, 0, sizeof(e));
	assert_int_equal(rl_lease_take(&e, 1.0), 0);
	rl_lease_granted(&e, 4, 100000, 1.0, 10, 2.0);
	assert_int_equal(e.tokens, 3);          /* one was the asking decision's */
	assert_int_equal(rl_lease_take(&e, 1.05), 1);
	assert_int_equal(rl_lease_take(&e, 1.05), 1);
	assert_int_equal(rl_lease_take(&e, 1.05), 1);
	assert_int_equal(rl_lease_take(&e, 1.05), 0);
	rl_lease_granted(&e, 4, 100000, 2.0, 10, 3.0);
	assert_int_equal(rl_lease_take(&e, 2.0999), 1);
	assert_int_equal(rl_lease_take(&e, 2.1), 0);     /* expired */
	/* a single token leaves the slice alone */
	rl_lease_granted(&e, 1, 0, 3.0, 10, 4.0);
	assert_int_equal(rl_lease_take(&e, 3.0), 0);
}

static void test_rate_estimate_decays(void **state)
{
	struct rl_lease e;
	int i;

	(void)state;
	memset(&e, 0, sizeof(e));
	for (i = 0; i < 1000; i++)
		rl_lease_seen(&e, i * 0.01);    /* 100/s for 10 s */
	assert_true(e.rate > 95 && e.rate < 105);
	rl_lease_seen(&e, 20.0);                /* 10 s of silence */
	assert_true(e.rate < 1.1);
}

static void test_table_finds_evicts_and_skips_long_keys(void **state)
{
	struct rl_leases l;
	struct rl_lease *a, *b;
	char key[RL_CACHE_KEY_MAX + 2];
	int i;

	(void)state;
	assert_int_equal(rl_leases_init(&l, 4), 0);     /* one set of 4 ways */
	a = rl_lease_get(&l, "a", 1, 1.0);
	assert_non_null(a);
	a->tokens = 7;
	assert_ptr_equal(rl_lease_get(&l, "a", 1, 2.0), a);
	a->last = 5.0;
	for (i = 0; i < 3; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		b = rl_lease_get(&l, key, strlen(key), 3.0);
		assert_non_null(b);
		b->last = 3.0 + i;
	}
	/* full: the one idle the longest (k0) goes, not a */
	b = rl_lease_get(&l, "new", 3, 6.0);
	assert_non_null(b);
	assert_int_equal(rl_lease_get(&l, "a", 1, 6.0)->tokens, 7);
	/* in-flight ways are kept; all in flight: no lease */
	for (i = 0; i < RL_LEASE_WAYS; i++)
		l.e[i].inflight = 1;
	assert_null(rl_lease_get(&l, "other", 5, 7.0));
	memset(key, 'x', sizeof(key));
	assert_null(rl_lease_get(&l, key, RL_CACHE_KEY_MAX + 1, 7.0));
	rl_leases_free(&l);
}

/* ---- the model ---- */

/* One GCRA key as the script keeps it (microseconds). */
struct model_key {
	double tat;
};

/* The script's grant for one key: up to want tokens, a debt of life. */
static int64_t model_grant(struct model_key *k, double now, const struct rl_policy *p,
                           int64_t want, int64_t life)
{
	double per = (double)p->period * 1e6, inc = per / (double)p->limit;
	double x = k->tat < now ? now : k->tat;
	int64_t g = (int64_t)floor((per - (x - now) - (double)life) / inc);

	if (g > want)
		g = want;
	if (g >= 2) {
		k->tat = x + (double)g * inc + (double)life;
		return g;
	}
	if (x + inc - now <= per) {
		k->tat = x + inc;
		return 1;
	}
	return 0;
}

/* Exact GCRA over the real admission times: the reference. */
static int reference_admits(struct model_key *k, double now, const struct rl_policy *p)
{
	double per = (double)p->period * 1e6, inc = per / (double)p->limit;
	double x = k->tat < now ? now : k->tat;

	if (x + inc - now > per + 1e-6)
		return 0;
	k->tat = x + inc;
	return 1;
}

static unsigned rnd(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return (*s >> 16) & 0x7fff;
}

/* G gateways, bursts of arrivals on each; lease admissions are replayed in
 * time order into an exact GCRA that must admit every one. */
static void run_model(const struct rl_policy *p, int gateways, double seconds, unsigned seed,
                      double *admitted_out, double *exact_out)
{
	struct model_key redis = { 0 }, ref = { 0 }, alone = { 0 };
	struct rl_lease gw[8];
	double now = 1e6, end = now + seconds * 1e6, admitted = 0, exact = 0;
	int i;

	memset(gw, 0, sizeof(gw));
	while (now < end) {
		i = (int)(rnd(&seed) % (unsigned)gateways);
		/* arrivals: mostly dense, with idle gaps */
		now += (rnd(&seed) % 10 == 0) ? (double)(rnd(&seed) % 2000000) : (double)(rnd(&seed) % 3000);
		rl_lease_seen(&gw[i], now / 1e6);
		/* what one exact gateway would have admitted on the same arrivals */
		exact += reference_admits(&alone, now, p);
		if (rl_lease_take(&gw[i], now / 1e6)) {
			admitted++;
			if (!reference_admits(&ref, now, p))
				fail_msg("over-admission at t=%.0f us (local token)", now);
			continue;
		}
		{
			int64_t want, life, g;

			rl_lease_size(&gw[i], p, &want, &life);
			g = model_grant(&redis, now, p, want, life);
			if (g == 0)
				continue;
			rl_lease_granted(&gw[i], g, life, now / 1e6, 0, 0);
			admitted++;
			if (!reference_admits(&ref, now, p))
				fail_msg("over-admission at t=%.0f us (granted %lld)", now, (long long)g);
		}
	}
	*admitted_out = admitted;
	*exact_out = exact;
}

static void test_leases_never_over_admit_across_gateways(void **state)
{
	static const struct rl_policy pols[] = { { 100, 1 }, { 20, 10 }, { 1000, 60 }, { 50, 1 } };
	size_t i;
	unsigned seed;

	(void)state;
	for (i = 0; i < sizeof(pols) / sizeof(pols[0]); i++)
		for (seed = 1; seed <= 5; seed++) {
			double a, e;

			run_model(&pols[i], 1 + (int)(seed % 4), 120, seed, &a, &e);
			assert_true(a > 0);
		}
}

/* The adversarial case: gateway A takes a slice from a full bucket and
 * holds it to just before it ends, while the bucket refills to full on
 * Redis; then gateway B takes the whole burst and A spends its slice. An
 * exact GCRA fed the real times had its bucket full (its refill was lost
 * at the cap) while A's tokens were unspent: without the slice's debt, A's
 * late tokens would land on top of B's burst. */
static void test_a_slice_held_to_its_end_does_not_over_admit(void **state)
{
	struct rl_policy p = { 100, 1 };       /* T = 10 ms */
	struct model_key redis = { 0 }, ref = { 0 };
	struct rl_lease a;
	double now = 1e6, end;
	int64_t want, life, g;
	int n;

	(void)state;
	memset(&a, 0, sizeof(a));
	a.rate = 1000;
	rl_lease_size(&a, &p, &want, &life);
	assert_int_equal(want, 12);             /* min(ceil(1000 * 0.25), 100 / 8) */
	g = model_grant(&redis, now, &p, want, life);
	assert_int_equal(g, 12);
	rl_lease_granted(&a, g, life, now / 1e6, 0, 0);
	assert_true(reference_admits(&ref, now, &p));
	end = now + (double)life - 1;
	/* B takes everything Redis gives, one at a time, just before A's end */
	for (n = 0; model_grant(&redis, end, &p, 1, 0) == 1; n++)
		if (!reference_admits(&ref, end, &p))
			fail_msg("B's request %d over-admits", n + 1);
	assert_true(n >= 80);
	/* A spends its slice at the last moment */
	for (n = 0; rl_lease_take(&a, end / 1e6); n++)
		if (!reference_admits(&ref, end, &p))
			fail_msg("A's token %d over-admits at the end of its slice", n + 1);
	assert_int_equal(n, 11);
}

/* The shortfall against one exact gateway stays within the bound of
 * docs/ratelimit.md: per gateway holding a slice, fewer than two slices'
 * worth per lease lifetime at the very worst; here, on steady overload,
 * a few percent. */
static void test_lease_shortfall_is_bounded(void **state)
{
	struct rl_policy p = { 100, 1 };
	double a, e;

	(void)state;
	run_model(&p, 2, 300, 7, &a, &e);
	assert_true(a <= e);
	if (a < e * 0.9)
		fail_msg("lease admitted %.0f, exact %.0f: more than 10 %% short", a, e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slice_size_follows_the_rate_and_caps),
		cmocka_unit_test(test_tokens_are_taken_until_spent_or_expired),
		cmocka_unit_test(test_rate_estimate_decays),
		cmocka_unit_test(test_table_finds_evicts_and_skips_long_keys),
		cmocka_unit_test(test_leases_never_over_admit_across_gateways),
		cmocka_unit_test(test_a_slice_held_to_its_end_does_not_over_admit),
		cmocka_unit_test(test_lease_shortfall_is_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
