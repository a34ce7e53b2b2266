/*
 * A worker thread: one libev loop, one SO_REUSEPORT listener, the
 * connections it accepted and the decisions they started. Nothing here is
 * shared with other workers except the job queue, which other threads (the
 * gRPC completion thread, the main thread) use to hand work to this loop.
 */
#ifndef SPOGATE_WORKER_H
#define SPOGATE_WORKER_H

#include <pthread.h>
#include <stdint.h>

#include <ev.h>

#include "gwmsg.h"

struct agent;
struct conn;
struct authn_worker;
struct authz_worker;
struct rl_worker;

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
	uint64_t disconnects[SPOP_ST_RES + 2];  /* by status; last slot = other */
	uint64_t decisions[5];         /* allow, 401, 403, 429, 503 */
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
	pthread_mutex_t jobs_lock;
	struct worker_job *jobs;
	struct worker_job **jobs_tail;
	struct conn *conns;
	unsigned nconns;
	struct conn *dirty;            /* conns with output to flush before sleeping */
	int stopping;
	unsigned rand_state;
	struct worker_stats st;
	/* per-worker state of the decision stages, owned by their modules */
	struct authn_worker *authn;
	struct authz_worker *authz;
	struct rl_worker *rl;
};

/* Creates the listener and the loop. Returns 0 or -1 (logged). */
int worker_init(struct worker *w, struct agent *a, int id);

/* Starts the thread running the loop. */
int worker_start(struct worker *w);

/* Hands fn(arg) to w's loop thread. Safe from any thread. Returns 0 or -1
 * (out of memory: fn is not called). */
int worker_post(struct worker *w, void (*fn)(void *arg), void *arg);

/* Asks the worker to stop accepting, finish its in-flight decisions, say
 * DISCONNECT to HAProxy and leave its loop. Safe from any thread. */
void worker_stop(struct worker *w);

void worker_join(struct worker *w);

/* Runs the jobs posted to a worker whose loop no longer runs (answers of
 * calls that completed during shutdown), so what they carry is freed. Only
 * after worker_join() and before the stages' state goes. */
void worker_run_jobs(struct worker *w);
void worker_destroy(struct worker *w);

/* Records a decision's latency and outcome. */
void worker_count_decision(struct worker *w, const struct gw_verdict *v, double seconds);

#endif
