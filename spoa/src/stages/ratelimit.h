/*
 * Rate-limit stage: GCRA in Redis (one EVALSHA per decision, both the
 * per-user and the per-IP policy in the same script call), sent through
 * the worker's Redis client (clients/redis.h).
 *
 * Design and measurements: docs/ratelimit.md.
 */
#ifndef SPOGATE_RATELIMIT_H
#define SPOGATE_RATELIMIT_H

#include <stddef.h>

#include "stage.h"

/* Configure checks the "redis" and "rate_limiting" sections; each worker
 * then keeps its own parsed copy and its own Redis connection. The stage
 * skips itself when rate limiting is off or a previous stage denied;
 * otherwise it answers from the local over-limit cache, or asks Redis and
 * goes pending. */
extern const struct stage_ops ratelimit_stage;

#endif
