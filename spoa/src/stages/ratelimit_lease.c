/*
 * Lease mode, the pure part (see ratelimit_lease.h).
 */
#include "ratelimit_lease.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int rl_leases_init(struct rl_leases *l, unsigned entries)
{
	unsigned sets = 1;

	while (sets * RL_LEASE_WAYS < entries)
		sets <<= 1;
	l->e = calloc((size_t)sets * RL_LEASE_WAYS, sizeof(*l->e));
	if (!l->e)
		return -1;
	l->nsets = sets;
	return 0;
}

void rl_leases_free(struct rl_leases *l)
{
	free(l->e);
	l->e = NULL;
	l->nsets = 0;
}

struct rl_lease *rl_lease_get(struct rl_leases *l, const char *key, size_t len, double now)
{
	struct rl_lease *s, *victim;
	uint32_t h;
	int i;

	if (!l->nsets || len == 0 || len > RL_CACHE_KEY_MAX)
		return NULL;
	h = rl_key_hash(key, len);
	s = &l->e[(size_t)(h & (l->nsets - 1)) * RL_LEASE_WAYS];
	for (i = 0; i < RL_LEASE_WAYS; i++)
		if (s[i].keylen == len && s[i].hash == h && memcmp(s[i].key, key, len) == 0)
			return &s[i];
	/* A free way, else the one idle the longest; one with a slice
	 * request in flight is kept (its reply would find nothing). */
	victim = NULL;
	for (i = 0; i < RL_LEASE_WAYS; i++) {
		if (s[i].inflight)
			continue;
		if (!victim || s[i].keylen == 0 || (victim->keylen && s[i].last < victim->last))
			victim = &s[i];
	}
	if (!victim)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	victim->hash = h;
	victim->keylen = (uint8_t)len;
	memcpy(victim->key, key, len);
	victim->last = now;
	return victim;
}

void rl_lease_seen(struct rl_lease *e, double now)
{
	double dt = now - e->last;

	if (dt < 0)
		dt = 0;
	e->rate = e->rate * exp(-dt / RL_LEASE_RATE_TAU) + 1.0 / RL_LEASE_RATE_TAU;
	e->last = now;
}

int rl_lease_take(struct rl_lease *e, double now)
{
	if (e->tokens <= 0 || now >= e->expires)
		return 0;
	e->tokens--;
	return 1;
}

void rl_lease_size(const struct rl_lease *e, const struct rl_policy *p, int64_t *want,
                   int64_t *life_us)
{
	int64_t cap = p->limit / 8, w;

	if (cap > RL_LEASE_MAX)
		cap = RL_LEASE_MAX;
	w = (int64_t)ceil(e->rate * RL_LEASE_LIFE_MAX);
	if (w > cap)
		w = cap;
	if (w < 2) {
		*want = 1;
		*life_us = 0;
		return;
	}
	*want = w;
	/* Twice the time this worker needs to spend the slice at its rate:
	 * the debt, life / T, stays small where the key is busy. */
	*life_us = (int64_t)fmin(fmin(RL_LEASE_LIFE_MAX * 1e6, (double)p->period * 1e6 / 8),
	                         2e6 * (double)w / e->rate);
	if (*life_us < 1)
		*life_us = 1;
}

void rl_lease_granted(struct rl_lease *e, int64_t g, int64_t life_us, double t_ask,
                      int64_t remaining, double reset_at)
{
	e->remaining = remaining;
	e->reset_at = reset_at;
	if (g <= 1 || life_us <= 0)
		return;
	/* A new slice replaces what is left of the old one: those tokens are
	 * stranded (under-admission), never added up. */
	e->tokens = (int32_t)(g - 1);
	e->expires = t_ask + (double)life_us / 1e6;
}
