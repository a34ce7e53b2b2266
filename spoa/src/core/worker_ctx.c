/*
 * A worker's job queue, counters and stage slots (see worker_ctx.h).
 */
#include "worker_ctx.h"

#include <stdlib.h>

const double worker_lat_bounds_us[WORKER_LAT_BUCKETS] = {
	25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
	250000, 1000000,
};

void worker_run_jobs(struct worker *w)
{
	struct worker_job *jobs, *j;

	pthread_mutex_lock(&w->jobs_lock);
	jobs = w->jobs;
	w->jobs = NULL;
	w->jobs_tail = &w->jobs;
	pthread_mutex_unlock(&w->jobs_lock);
	while ((j = jobs)) {
		jobs = j->next;
		j->fn(j->arg);
		free(j);
	}
}

int worker_post(struct worker *w, void (*fn)(void *arg), void *arg)
{
	struct worker_job *j = malloc(sizeof(*j));

	if (!j)
		return -1;
	j->fn = fn;
	j->arg = arg;
	j->next = NULL;
	pthread_mutex_lock(&w->jobs_lock);
	*w->jobs_tail = j;
	w->jobs_tail = &j->next;
	pthread_mutex_unlock(&w->jobs_lock);
	ev_async_send(w->loop, &w->wake_w);
	return 0;
}

void *worker_stage_ctx(const struct worker *w, const struct stage_ops *st)
{
	int i = stages_index(st);

	return i < 0 ? NULL : w->stage_ctx[i];
}

static void add(uint64_t *p, uint64_t v)
{
	__atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

void worker_count_decision(struct worker *w, const struct gw_verdict *v, double seconds)
{
	uint64_t us = seconds > 0 ? (uint64_t)(seconds * 1e6) : 0;
	unsigned reason = (unsigned)v->reason < GW_R_MAX ? (unsigned)v->reason : GW_R_NONE;
	int i;

	add(&w->st.decisions[v->status != 0][reason], 1);
	if ((unsigned)v->reason < GW_R_MAX)
		add(&w->st.reasons[v->reason], 1);
	add(&w->st.lat_count, 1);
	add(&w->st.lat_sum_us, us);
	for (i = 0; i < WORKER_LAT_BUCKETS; i++)
		if ((double)us <= worker_lat_bounds_us[i]) {
			add(&w->st.lat_bucket[i], 1);
			break;
		}
}
