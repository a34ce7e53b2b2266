/*
 * The Auth Service client: AuthService.ValidateToken over gRPC (grpc.h),
 * one channel for the process. Identical tokens in flight are joined into
 * one call by grpc.c (the key); the answer comes back on the gRPC
 * completion-queue thread.
 */
#ifndef SPOGATE_AUTHSVC_H
#define SPOGATE_AUTHSVC_H

#include <stddef.h>
#include <stdint.h>

#include "auth.pb-c.h"
#include "grpc.h"
#include "gwmsg.h"

/* Called once per call on the completion-queue thread with the key the
 * call was made with and the decoded answer, or NULL when there is none
 * (transport error, deadline, malformed answer: logged). m is freed after
 * the call returns. */
typedef void (*authsvc_done_fn)(const uint8_t *key,
                                const Spogate__Auth__V1__ValidateTokenResponse *m);

/* Opens the channel to target with a per-call deadline, over TLS when tls
 * (may be NULL) is enabled. Main thread, before the workers run. Returns 0
 * or -1 (logged). */
int authsvc_start(const char *target, int timeout_ms, const struct rpc_tls *tls,
                  authsvc_done_fn done);

void authsvc_stop(void);

/* Asks about the token tok (len bytes) of request gr (its trace context
 * goes along as metadata); key (32 bytes, copied) joins identical calls
 * and comes back to done. Returns 0, or -1 when no call was made (breaker
 * open, no memory): done is not called. */
int authsvc_validate(const uint8_t *key, const char *tok, size_t len,
                     const struct gw_request *gr);

#endif
