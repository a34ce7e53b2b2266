/*
 * Debug delay stage (debug.delay_ms): holds each decision for 1..delay_ms,
 * with jitter so that completions come out of arrival order. A test aid for
 * the asynchronous path; off (0) in every generated configuration.
 */
#include <stdlib.h>

#include "config.h"
#include "decision.h"
#include "worker_ctx.h"

extern const struct stage_ops delay_stage;

struct delay {
	ev_timer t;
	struct ev_loop *loop;
	struct decision *d;
};

static int delay_ms;

static int delay_configure(const struct agent_config *cfg, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	delay_ms = cfg->debug_delay_ms;
	return 0;
}

static void on_delay(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct delay *dl = t->data;
	struct decision *d = dl->d;

	(void)loop;
	(void)revents;
	decision_set_ctx(d, &delay_stage, NULL);
	free(dl);
	decision_resume(d);
}

static enum stage_rc delay_run(struct decision *d, void *wctx)
{
	struct delay *dl;
	double delay;

	(void)wctx;
	if (delay_ms <= 0 || !(dl = malloc(sizeof(*dl))))
		return STAGE_NEXT;
	delay = (1 + rand_r(&d->w->rand_state) % delay_ms) / 1000.0;
	dl->loop = d->w->loop;
	dl->d = d;
	ev_timer_init(&dl->t, on_delay, delay, 0.);
	dl->t.data = dl;
	ev_timer_start(dl->loop, &dl->t);
	decision_set_ctx(d, &delay_stage, dl);
	return STAGE_PENDING;
}

/* The decision goes while it waits (worker teardown). */
static void delay_release(void *dctx)
{
	struct delay *dl = dctx;

	ev_timer_stop(dl->loop, &dl->t);
	free(dl);
}

const struct stage_ops delay_stage = {
	.name      = "debug_delay",
	.configure = delay_configure,
	.run       = delay_run,
	.release   = delay_release,
};
