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

enum metrics_type {
	METRICS_COUNTER   = 0,
	METRICS_GAUGE     = 1,
	METRICS_HISTOGRAM = 2,
};

/* Starts a family: its # HELP and # TYPE lines. Every family is written
 * through this, once, right before its samples (a strict parser and the
 * test tests/integration/test_metrics.c hold the exposition to it). help is
 * one line of text without a backslash. */
void metrics_family(struct dynbuf *b, const char *name, enum metrics_type type,
                    const char *help);

/* One sample: name{labels} value. labels is "" or a label list without
 * braces, such as service="auth"; counters are integers, gauges may not. */
void metrics_sample(struct dynbuf *b, const char *name, const char *labels, uint64_t v);
void metrics_sample_f(struct dynbuf *b, const char *name, const char *labels, double v);

/* A family of one unlabelled sample. */
void metrics_counter(struct dynbuf *b, const char *name, const char *help, uint64_t v);
void metrics_gauge(struct dynbuf *b, const char *name, const char *help, double v);

/* Writes the samples of one histogram (after metrics_family(), once per
 * family, however many label sets follow): cumulative <name>_bucket lines for the n bounds (in
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
