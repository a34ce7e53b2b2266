/*
 * The decision pipeline. A NOTIFY becomes a decision; stages run in order
 * (debug delay, authentication, authorization, rate limiting) and each
 * either finishes at once or goes asynchronous and later calls
 * decision_resume() from the owning worker's loop thread. When the last
 * stage is done the verdict goes back to the connection as an ACK, so ACKs
 * leave in completion order and many decisions can be in flight per
 * connection.
 *
 * Ownership: the decision owns a copy of the NOTIFY payload (the request's
 * strings point into it). If the connection closes first, d->conn becomes
 * NULL and the decision frees itself when its pending stage resumes.
 */
#ifndef SPOGATE_DECISION_H
#define SPOGATE_DECISION_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "gwmsg.h"

struct worker;
struct conn;

enum stage_rc {
	STAGE_NEXT    = 0,   /* done, go on (v may now hold a denial) */
	STAGE_PENDING = 1,   /* the stage will call decision_resume() later */
};

struct decision {
	struct worker *w;
	struct conn *conn;             /* NULL once the connection is gone */
	struct decision *prev, *next;  /* the connection's in-flight list */
	uint64_t stream_id;
	uint64_t frame_id;
	uint64_t seq;                  /* arrival order on the connection */
	unsigned stage;
	int has_msg;                   /* 0: no gw-check, empty ACK */
	ev_tstamp t_start;
	struct gw_request req;
	struct spop_str token;         /* bearer token, empty when none */
	struct gw_verdict v;
	ev_timer delay_w;              /* debug.delay_ms */
	/* Stage state. A stage that stores something here frees it in its
	 * *_free hook, which decision_free() calls. */
	void *authn_data;
	void (*authn_free)(void *data);
	void *rl_data;
	void (*rl_free)(void *data);
	size_t payload_len;
	uint8_t payload[];
};

/* Copies payload and parses it. Returns the decision, or NULL with *status
 * set to the SPOP status for the DISCONNECT (malformed payload or no memory). */
struct decision *decision_new(struct worker *w, struct conn *c, const uint8_t *payload,
                              size_t len, uint64_t stream_id, uint64_t frame_id,
                              int *status);

/* Runs the stages from the current one on. */
void decision_run(struct decision *d);

/* Called by a stage that returned STAGE_PENDING, on the worker's loop thread. */
void decision_resume(struct decision *d);

void decision_free(struct decision *d);

/* Decisions to resume together once a cache is consistent again: a cache
 * fill wakes every decision waiting on the key, and resuming one inside the
 * fill could re-enter the cache. Starts zeroed ({ .n = 0 }); chunks past the
 * first are allocated, so the batch can hold any number of waiters. */
struct decision_batch {
	struct decision *ds[64];
	size_t n;
	struct decision_batch *more;
};

/* Queues d; if memory runs out d is resumed at once rather than lost. */
void decision_batch_add(struct decision_batch *b, struct decision *d);

/* Resumes every queued decision but skip (the caller's own, which goes on
 * synchronously), and frees the extra chunks. */
void decision_batch_resume(struct decision_batch *b, struct decision *skip);

#endif
