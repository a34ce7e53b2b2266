/*
 * Lease mode, the pure part (rate_limiting.mode: lease; docs/ratelimit.md
 * "Lease mode"). A worker takes a slice of a key's GCRA budget from Redis
 * in one call and admits locally until the slice is spent or expires.
 *
 * Why it never over-admits: Redis grants g tokens at time s only when the
 * key's bucket holds g tokens plus a debt of life/T (T = period/limit,
 * life = the slice's lifetime), and writes TAT = max(TAT, s) + g*T + life.
 * During [s, s + life] the bucket refills exactly life/T, which only pays
 * the debt back, so nobody (other gateways, other workers) can take the
 * refill the slice's unused tokens stand on. A bucket in which each slice
 * token is taken at the instant it is really used therefore always holds
 * at least what Redis says it holds: every admission, local or not, is one
 * a single exact GCRA would have made. A slice of one token is used at
 * once by the decision that asked and carries no debt (exact mode is the
 * special case: always one token).
 *
 * What it costs: under-admission, never more than, per key and per worker
 * holding a slice, the slice's unused tokens plus its debt, and only until
 * the spent tokens refill (at most one period). Sizing keeps slices small
 * where that matters:
 *   want = ceil(rate * RL_LEASE_LIFE_MAX), clamped to 1..min(RL_LEASE_MAX,
 *          limit / 8): a slice covers at most RL_LEASE_LIFE_MAX of this
 *          worker's recent rate for the key, and never more than 1/8 of
 *          the burst;
 *   life = min(RL_LEASE_LIFE_MAX, 2 * want / rate, period / 8): twice the
 *          time the worker needs to spend the slice at its rate; the debt
 *          (life / T tokens) is at most 1/8 of the burst, and Redis grants
 *          a slice only where the bucket holds it and the debt, so near
 *          the limit slices shrink to single tokens (exact mode).
 * No I/O, no loop: unit-tested in tests/unit/test_ratelimit_lease.c.
 */
#ifndef SPOGATE_RATELIMIT_LEASE_H
#define SPOGATE_RATELIMIT_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "ratelimit_core.h"

#define RL_LEASE_MAX        32      /* tokens per slice at most */
#define RL_LEASE_LIFE_MAX   0.25    /* seconds a slice lives at most */
#define RL_LEASE_WAYS       4
#define RL_LEASE_RATE_TAU   1.0     /* seconds: the rate estimate's memory */

struct rl_lease {
	double expires;                /* tokens usable while now < expires */
	double last;                   /* last decision seen, for the rate */
	double rate;                   /* decisions per second on this worker */
	int32_t tokens;                /* left in the slice */
	int32_t inflight;              /* a slice request is on its way */
	int64_t remaining;             /* Redis' remaining after the grant */
	double reset_at;               /* full quota back (for headers) */
	uint32_t hash;
	uint8_t keylen;                /* 0: free */
	char key[RL_CACHE_KEY_MAX];
};

struct rl_leases {
	struct rl_lease *e;
	unsigned nsets;                /* power of two; RL_LEASE_WAYS each */
};

/* entries rounded up to a power of two (at least RL_LEASE_WAYS). Returns 0
 * or -1 (no memory). */
int rl_leases_init(struct rl_leases *l, unsigned entries);
void rl_leases_free(struct rl_leases *l);

/* The lease of key, created (evicting the least recently used way of its
 * set) when absent. NULL when the key is longer than RL_CACHE_KEY_MAX: such
 * keys always go to Redis. An evicted lease's tokens are dropped (counted
 * as under-admission, never as admission). */
struct rl_lease *rl_lease_get(struct rl_leases *l, const char *key, size_t len, double now);

/* Counts one decision for key in the rate estimate (an exponentially
 * decaying count over RL_LEASE_RATE_TAU). */
void rl_lease_seen(struct rl_lease *e, double now);

/* Takes a local token: 1 when the live slice had one, else 0. */
int rl_lease_take(struct rl_lease *e, double now);

/* The slice to ask for: tokens (>= 1) and the lifetime in microseconds
 * (0 for a single token), per the sizing rule above. */
void rl_lease_size(const struct rl_lease *e, const struct rl_policy *p, int64_t *want,
                   int64_t *life_us);

/* Redis granted g tokens (g >= 1; one is the asking decision's) for a
 * slice of life_us asked at t_ask (loop time before the send, so the slice
 * ends no later than Redis thinks). */
void rl_lease_granted(struct rl_lease *e, int64_t g, int64_t life_us, double t_ask,
                      int64_t remaining, double reset_at);

#endif
