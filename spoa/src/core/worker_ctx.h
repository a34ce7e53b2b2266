/*
 * The context of one worker thread, as the code running on its loop sees
 * it: the loop, the counters, the job queue other threads post to, and the
 * stages' per-worker state. Nothing here is shared with other workers
 * except the job queue, which other threads (the gRPC completion thread,
 * the main thread) use to hand work to this loop. The thread itself, its
 * listener and its drain are worker.h's.
 */
#ifndef SPOGATE_WORKER_CTX_H
#define SPOGATE_WORKER_CTX_H

#include <pthread.h>
#include <stdint.h>

#include <ev.h>

#include "gwmsg.h"
#include "stage.h"

struct agent;
struct conn;

#define WORKER_LAT_BUCKETS 14

/* Counters are written by the owning thread only and read by the metrics
 * scrape with relaxed atomic loads. */
struct worker_stats {
	uint64_t conns_accepted;
	uint64_t conns_open;
	uint64_t hellos;
	uint64_t healthchecks;
	uint64_t frames_in;
	uint64_t notify;
	uint64_t acks;
	uint64_t pipelined;            /* NOTIFY arriving while another is in flight */
	uint64_t out_of_order;         /* ACK sent before an older in-flight one */
	uint64_t max_inflight;         /* largest in-flight count seen on one conn */
	uint64_t timeouts[2];          /* closed for no HELLO in time, for idleness */
	uint64_t drains;               /* HAPROXY-DISCONNECTs that waited for ACKs */
	uint64_t accept_paused;        /* times accepting stopped for lack of fds */
	uint64_t disconnects[SPOP_ST_RES + 2];  /* by status; last slot = other */
	uint64_t decisions[2][GW_R_MAX];   /* [allowed 0, denied 1][reason] */
	uint64_t reasons[GW_R_MAX];
	uint64_t lat_count;
	uint64_t lat_sum_us;
	uint64_t lat_bucket[WORKER_LAT_BUCKETS];
};

extern const double worker_lat_bounds_us[WORKER_LAT_BUCKETS];

struct worker_job {
	void (*fn)(void *arg);
	void *arg;
	struct worker_job *next;
};

struct worker {
	struct agent *agent;
	int id;
	pthread_t thread;
	struct ev_loop *loop;
	int listen_fd;
	ev_io accept_w;
	ev_async wake_w;
	ev_prepare flush_w;
	ev_timer drain_w;
	ev_timer accept_retry_w;       /* accepting paused: out of fds */
	ev_tstamp accept_warned;       /* last "out of fds" warning */
	pthread_mutex_t jobs_lock;
	struct worker_job *jobs;
	struct worker_job **jobs_tail;
	struct conn *conns;
	unsigned nconns;
	struct conn *dirty;            /* conns with output to flush before sleeping */
	int stopping;
	unsigned rand_state;
	struct worker_stats st;
	/* per-worker state of each stage, by its slot in the stage table */
	void *stage_ctx[STAGE_MAX];
};

/* Hands fn(arg) to w's loop thread. Safe from any thread. Returns 0 or -1
 * (out of memory: fn is not called). */
int worker_post(struct worker *w, void (*fn)(void *arg), void *arg);

/* Runs the jobs posted to w, on its loop thread; or, once the loop no
 * longer runs (answers of calls that completed during shutdown), from the
 * main thread after worker_join() and before the stages' state goes, so
 * what they carry is freed. */
void worker_run_jobs(struct worker *w);

/* Records a decision's latency and outcome. */
void worker_count_decision(struct worker *w, const struct gw_verdict *v, double seconds);

/* The per-worker state of stage st on w (NULL when it keeps none). */
void *worker_stage_ctx(const struct worker *w, const struct stage_ops *st);

#endif
