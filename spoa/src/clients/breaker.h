/*
 * A circuit breaker in front of a backend (Redis): after threshold
 * consecutive failures it opens and nobody waits for the backend until
 * open_s has passed; then one probe call decides. Pure state: the caller
 * passes the time (seconds, any monotonic clock) and owns the connection.
 * Unit-tested in tests/unit/test_ratelimit.c.
 *
 * Closed: calls go through and consecutive failures are counted. Open: no
 * call at all until open_until. Half-open: exactly one probe call; its
 * success closes, its failure re-opens.
 */
#ifndef SPOGATE_BREAKER_H
#define SPOGATE_BREAKER_H

#include <stdint.h>

enum breaker_state {
	BREAKER_CLOSED    = 0,
	BREAKER_OPEN      = 1,
	BREAKER_HALF_OPEN = 2,
};

struct breaker {
	enum breaker_state state;
	int failures;
	int threshold;
	int probe_inflight;
	double open_s;
	double open_until;
	uint64_t opened;               /* times it opened, for metrics */
};

void breaker_init(struct breaker *b, int threshold, double open_s);

/* Returns 1 when a call may go to the backend now (a half-open breaker then
 * counts it as its probe), 0 when the caller must not wait for it. */
int breaker_admit(struct breaker *b, double now);

/* Reports the outcome of an admitted call. Returns 1 when this failure
 * opened the breaker (the caller drops its connection), else 0. */
void breaker_success(struct breaker *b);
int breaker_failure(struct breaker *b, double now);

/* A fresh connection is worth a probe right away. */
void breaker_reconnected(struct breaker *b);

#endif
