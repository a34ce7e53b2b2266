/*
 * The decision pipeline: the stage table over one decision.
 */
#include "decision.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "worker_ctx.h"

struct decision *decision_new(struct worker *w, struct conn *c,
                              void (*done)(struct decision *d), const uint8_t *payload,
                              size_t len, uint64_t stream_id, uint64_t frame_id,
                              int *status)
{
	struct decision *d = malloc(sizeof(*d) + len);
	int r;

	if (!d) {
		*status = SPOP_ST_RES;
		return NULL;
	}
	memset(d, 0, sizeof(*d));
	memcpy(d->payload, payload, len);
	d->payload_len = len;
	r = gw_request_parse(d->payload, len, &d->req);
	if (r < 0) {
		free(d);
		*status = SPOP_ST_INVALID;
		return NULL;
	}
	d->has_msg = r;
	d->w = w;
	d->conn = c;
	d->done = done;
	d->stream_id = stream_id;
	d->frame_id = frame_id;
	d->t_start = ev_now(w->loop);
	d->token.ptr = "";
	if (gw_bearer_token(d->req.token, &d->token) < 0)
		d->token.len = 0;
	gw_verdict_init(&d->v);
	return d;
}

static void finish(struct decision *d)
{
	struct worker *w = d->w;

	if (d->has_msg) {
		worker_count_decision(w, &d->v, ev_time() - d->t_start);
		/* The request id joins this line to HAProxy's access log. */
		log_debug("decision route=%.*s method=%.*s path=%.*s status=%d reason=%s "
		          "request_id=%.*s",
		          (int)d->req.route.len, d->req.route.ptr,
		          (int)d->req.method.len, d->req.method.ptr,
		          (int)d->req.path.len, d->req.path.ptr,
		          d->v.status, gw_reason_str(d->v.reason),
		          (int)d->req.req_id.len, d->req.req_id.ptr);
	}
	d->done(d);
}

void decision_run(struct decision *d)
{
	size_t n = stages_count();

	while (d->stage < n) {
		if (!d->conn) {
			/* HAProxy is gone: nobody waits for the rest. */
			decision_free(d);
			return;
		}
		if (!d->has_msg) {
			d->stage = (unsigned)n;
			break;
		}
		if (stages_at(d->stage)->run(d, d->w->stage_ctx[d->stage]) == STAGE_PENDING)
			return;
		d->stage++;
	}
	finish(d);
}

void decision_resume(struct decision *d)
{
	d->stage++;
	decision_run(d);
}

void decision_free(struct decision *d)
{
	size_t i, n = stages_count();

	for (i = 0; i < n; i++)
		if (d->stage_ctx[i] && stages_at(i)->release)
			stages_at(i)->release(d->stage_ctx[i]);
	free(d);
}

void *decision_ctx(const struct decision *d, const struct stage_ops *st)
{
	int i = stages_index(st);

	return i < 0 ? NULL : d->stage_ctx[i];
}

void decision_set_ctx(struct decision *d, const struct stage_ops *st, void *ctx)
{
	int i = stages_index(st);

	if (i >= 0)
		d->stage_ctx[i] = ctx;
}

void decision_batch_add(struct decision_batch *b, struct decision *d)
{
	while (b->n == sizeof(b->ds) / sizeof(b->ds[0])) {
		if (!b->more && !(b->more = calloc(1, sizeof(*b->more)))) {
			decision_resume(d);
			return;
		}
		b = b->more;
	}
	b->ds[b->n++] = d;
}

void decision_batch_resume(struct decision_batch *b, struct decision *skip)
{
	struct decision_batch *next;
	size_t i;
	int first = 1;

	while (b) {
		for (i = 0; i < b->n; i++)
			if (b->ds[i] != skip)
				decision_resume(b->ds[i]);
		next = b->more;
		if (!first)
			free(b);
		first = 0;
		b = next;
	}
}
