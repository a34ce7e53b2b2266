/*
 * Rate-limit stage: GCRA in Redis (one EVALSHA per decision, both the
 * per-user and the per-IP policy in the same script call), one hiredis
 * async connection per worker on the worker's libev loop.
 *
 * Design and measurements: docs/ratelimit.md.
 */
#ifndef SPOGATE_RATELIMIT_H
#define SPOGATE_RATELIMIT_H

#include <stddef.h>

#include "config.h"
#include "decision.h"

struct worker;

/* Validates the "redis" and "rate_limiting" sections, for --check and for
 * start-up. Returns 0, or -1 with a message in err. */
int rl_config_check(const struct agent_config *cfg, char *err, size_t errlen);

/* Creates w->rl and starts connecting to Redis on w->loop when rate
 * limiting is enabled (w->rl stays NULL otherwise). Call from the thread
 * that owns the loop before it runs, or from the loop itself. Returns 0 or
 * -1 (logged). */
int rl_worker_init(struct worker *w);

/* Closes the connection, resumes (and so frees) decisions still waiting on
 * Redis and frees w->rl. Call before the loop is destroyed, after the
 * connections are closed. */
void rl_worker_destroy(struct worker *w);

/* The stage: skips itself when rate limiting is off or a previous stage
 * denied; otherwise answers from the local over-limit cache, or asks Redis
 * and returns STAGE_PENDING. */
enum stage_rc rl_stage(struct decision *d);

#endif
