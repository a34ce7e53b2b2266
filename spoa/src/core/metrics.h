/*
 * Prometheus /metrics and /healthz on metrics_listen (main loop).
 * Stages add their series through their metrics hook (stage.h); other
 * modules (the gRPC client) with metrics_register().
 */
#ifndef SPOGATE_METRICS_H
#define SPOGATE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "dynbuf.h"

#define METRICS_MAX_BYTES (1024 * 1024)

struct agent;


struct metrics_source {
	void (*render)(struct agent *a, struct dynbuf *b);
	struct metrics_source *next;
};

/* Writes the samples of one histogram (the caller writes HELP and TYPE
 * once per family): cumulative <name>_bucket lines for the n bounds (in
 * seconds) and +Inf, then _sum and _count. counts[] are per bucket, not
 * cumulative. labels is "" or a label list without braces, such as
 * service="auth". */
void metrics_histogram(struct dynbuf *b, const char *name, const char *labels,
                       const double *bounds_s, const uint64_t *counts, int n,
                       uint64_t count, double sum_s);

/* Adds a source; call before metrics_start(). src must outlive the agent. */
void metrics_register(struct metrics_source *src);

int metrics_start(struct agent *a);
void metrics_stop(struct agent *a);

#endif
