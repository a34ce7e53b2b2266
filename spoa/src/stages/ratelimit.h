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

#include <hiredis/hiredis.h>

#include "ratelimit_core.h"
#include "stage.h"

/* Configure checks the "redis" and "rate_limiting" sections; each worker
 * then keeps its own parsed copy and its own Redis connection. The stage
 * skips itself when rate limiting is off or a previous stage denied;
 * otherwise it answers from the local over-limit cache, or asks Redis and
 * goes pending. */
extern const struct stage_ops ratelimit_stage;

/* Reads the GCRA script's reply for one subject of n keys with policies
 * pol: an array of 1 + 3n integers {ok, granted_1, d_1, tat_1, ...} (d =
 * TAT - now in us). Returns 0 with *allowed and res[0..n) set, or -1 when
 * the reply is anything else (the decision then follows on_redis_error).
 * The reply stays the caller's. */
int rl_script_reply_parse(const redisReply *r, int n, const struct rl_policy *pol, int *allowed,
                          struct rl_key_result *res);

#endif
