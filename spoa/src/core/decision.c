/*
 * The decision pipeline: a fixed list of stages over one decision.
 */
#include "decision.h"

#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "authn.h"
#include "authz.h"
#include "conn.h"
#include "log.h"
#include "ratelimit.h"
#include "worker.h"

static enum stage_rc stage_debug_delay(struct decision *d);

typedef enum stage_rc (*stage_fn)(struct decision *d);

/* Order matters: identity first, so authorization and per-user limits know
 * the user. A stage skips itself when a previous one denied. */
static const stage_fn stages[] = {
	stage_debug_delay,
	authn_stage,
	authz_stage,
	rl_stage,
};
#define NSTAGES (sizeof(stages) / sizeof(stages[0]))

struct decision *decision_new(struct worker *w, struct conn *c, const uint8_t *payload,
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
		log_debug("decision route=%.*s method=%.*s path=%.*s status=%d reason=%s",
		          (int)d->req.route.len, d->req.route.ptr,
		          (int)d->req.method.len, d->req.method.ptr,
		          (int)d->req.path.len, d->req.path.ptr,
		          d->v.status, gw_reason_str(d->v.reason));
	}
	conn_decision_done(d);
}

void decision_run(struct decision *d)
{
	while (d->stage < NSTAGES) {
		if (!d->conn) {
			/* HAProxy is gone: nobody waits for the rest. */
			decision_free(d);
			return;
		}
		if (!d->has_msg) {
			d->stage = NSTAGES;
			break;
		}
		if (stages[d->stage](d) == STAGE_PENDING)
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
	if (d->authn_free)
		d->authn_free(d->authn_data);
	if (d->rl_free)
		d->rl_free(d->rl_data);
	if (ev_is_active(&d->delay_w))
		ev_timer_stop(d->w->loop, &d->delay_w);
	free(d);
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

static void on_delay(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct decision *d = t->data;

	(void)loop;
	(void)revents;
	decision_resume(d);
}

/* debug.delay_ms: hold each decision for 1..delay_ms, with jitter so that
 * completions come out of arrival order. A test aid for the asynchronous
 * path; off (0) in every generated configuration. */
static enum stage_rc stage_debug_delay(struct decision *d)
{
	int ms = d->w->agent->cfg.debug_delay_ms;
	double delay;

	if (ms <= 0)
		return STAGE_NEXT;
	delay = (1 + rand_r(&d->w->rand_state) % ms) / 1000.0;
	ev_timer_init(&d->delay_w, on_delay, delay, 0.);
	d->delay_w.data = d;
	ev_timer_start(d->w->loop, &d->delay_w);
	return STAGE_PENDING;
}
