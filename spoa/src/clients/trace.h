/*
 * The request id and W3C trace context of a decision, as gRPC metadata
 * for the calls the stages make to the Auth and Authz Services, so that
 * their logs and traces join the gateway's.
 */
#ifndef SPOGATE_TRACE_H
#define SPOGATE_TRACE_H

#include "grpc.h"
#include "gwmsg.h"

/* Fills m with x-request-id, traceparent and tracestate from req (empty
 * ones are left out). m points into req's strings: use it before the
 * decision is freed (rpc_call copies it). */
void trace_meta(const struct gw_request *req, struct rpc_meta *m);

#endif
