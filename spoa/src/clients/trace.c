/* Trace context as gRPC metadata (trace.h). */
#include "trace.h"

static void add(struct rpc_meta *m, const char *key, struct spop_str v)
{
	if (!v.len || m->n >= RPC_MAX_META)
		return;
	m->kv[m->n].key = key;
	m->kv[m->n].val = v.ptr;
	m->kv[m->n].len = v.len;
	m->n++;
}

void trace_meta(const struct gw_request *req, struct rpc_meta *m)
{
	m->n = 0;
	add(m, "x-request-id", req->req_id);
	add(m, "traceparent", req->traceparent);
	add(m, "tracestate", req->tracestate);
}
