/*
 * Worker threads: each binds its own SO_REUSEPORT listener, runs one libev
 * loop over the connections it accepted, and drains them on stop. What code
 * on that loop reaches of its worker (the loop, the counters, the job queue,
 * the stages' per-worker state) is in worker_ctx.h.
 */
#ifndef SPOGATE_WORKER_H
#define SPOGATE_WORKER_H

#include "worker_ctx.h"

struct agent;

/* Creates the listener and the loop, and starts every stage's per-worker
 * state. Returns 0 or -1 (logged). */
int worker_init(struct worker *w, struct agent *a, int id);

/* Starts the thread running the loop. */
int worker_start(struct worker *w);

/* Asks the worker to stop accepting, finish its in-flight decisions, say
 * DISCONNECT to HAProxy and leave its loop. Safe from any thread. */
void worker_stop(struct worker *w);

void worker_join(struct worker *w);

/* Closes the connections, stops the stages' per-worker state and frees the
 * loop. After worker_join() and worker_run_jobs(). */
void worker_destroy(struct worker *w);

#endif
