/*
 * The stage interface. A decision runs through an ordered table of stages
 * (stages/stages.c); each stage declares its name and hooks in a struct
 * stage_ops, the way HAProxy's filters fill a struct flt_ops, and the core
 * calls the hooks without naming any stage. main() hands the table to the
 * core with stages_install().
 *
 * Hooks, every one but run optional, in the order they are called:
 *   configure     main thread: reads and checks the stage's part of
 *                 agent.json, at start-up and for --check
 *   start_worker  main thread, once per worker, after its loop exists and
 *                 before it runs: creates the per-worker state (*wctx)
 *   start         main thread, once every worker exists, before any runs
 *   run           worker loop, per decision: returns STAGE_NEXT, or
 *                 STAGE_PENDING and later calls decision_resume() on the
 *                 same loop; skips itself when an earlier stage denied
 *   release       frees the per-decision state a stage left in its slot
 *                 (decision_set_ctx()), when the decision is freed
 *   reload        main thread, on SIGHUP
 *   metrics       main loop, per /metrics scrape (see metrics.h)
 *   stop_worker   per worker, after its connections closed and the jobs
 *                 posted to it ran: frees wctx (only called when non-NULL)
 *   stop          main thread, once every worker is gone
 */
#ifndef SPOGATE_STAGE_H
#define SPOGATE_STAGE_H

#include <stddef.h>

#define STAGE_MAX 16

struct agent;
struct agent_config;
struct decision;
struct dynbuf;
struct worker;

enum stage_rc {
	STAGE_NEXT    = 0,   /* done, go on (v may now hold a denial) */
	STAGE_PENDING = 1,   /* the stage will call decision_resume() later */
};

struct stage_ops {
	const char *name;
	int (*configure)(const struct agent_config *cfg, char *err, size_t errlen);
	int (*start_worker)(struct worker *w, void **wctx);
	int (*start)(struct agent *a);
	enum stage_rc (*run)(struct decision *d, void *wctx);
	void (*release)(void *dctx);
	int (*reload)(void);
	void (*metrics)(struct agent *a, struct dynbuf *b);
	void (*stop_worker)(struct worker *w, void *wctx);
	void (*stop)(struct agent *a);
};

/* Installs the ordered table (it must outlive the agent). Returns 0, or -1
 * when it holds more than STAGE_MAX stages. */
int stages_install(const struct stage_ops *const *table, size_t n);

size_t stages_count(void);
const struct stage_ops *stages_at(size_t i);

/* The slot of st in the table, or -1 when it is not installed. */
int stages_index(const struct stage_ops *st);

/* Each of these calls one hook of every stage, in table order (the stops
 * in reverse order). The int ones stop at the first failure and
 * return -1 (configure with a message in err), otherwise 0. wctx is the
 * worker's array of STAGE_MAX per-worker slots. */
int stages_configure(const struct agent_config *cfg, char *err, size_t errlen);
int stages_worker_start(struct worker *w, void **wctx);
int stages_start(struct agent *a);
void stages_reload(void);
void stages_metrics(struct agent *a, struct dynbuf *b);
void stages_worker_stop(struct worker *w, void **wctx);
void stages_stop(struct agent *a);

#endif
