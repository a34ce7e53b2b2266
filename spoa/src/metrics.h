/*
 * Prometheus /metrics and /healthz on metrics_listen (main loop).
 * Modules add their own series with metrics_register().
 */
#ifndef SPOGATE_METRICS_H
#define SPOGATE_METRICS_H

#include <stddef.h>

#include "dynbuf.h"

#define METRICS_MAX_BYTES (1024 * 1024)

struct agent;


struct metrics_source {
	void (*render)(struct agent *a, struct dynbuf *b);
	struct metrics_source *next;
};

/* Adds a source; call before metrics_start(). src must outlive the agent. */
void metrics_register(struct metrics_source *src);

int metrics_start(struct agent *a);
void metrics_stop(struct agent *a);

#endif
