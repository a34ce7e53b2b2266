/*
 * The decision pipeline. A NOTIFY becomes a decision; the stages of the
 * stage table (stage.h) run in order and each either finishes at once or
 * goes asynchronous and later calls decision_resume() from the owning
 * worker's loop thread. When the last stage is done the decision goes back
 * to its owner (the connection, through the done hook) to become an ACK, so
 * ACKs leave in completion order and many decisions can be in flight per
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
#include "stage.h"

struct worker;
struct conn;

struct decision {
	struct worker *w;
	struct conn *conn;             /* NULL once the connection is gone */
	void (*done)(struct decision *d);  /* the owner's: sends the ACK, frees d */
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
	/* Per-decision state of each stage, by its slot in the stage table;
	 * decision_free() hands what is left to the stage's release hook. */
	void *stage_ctx[STAGE_MAX];
	size_t payload_len;
	uint8_t payload[];
};

/* Copies payload and parses it. done is called with the decision once the
 * last stage is done, unless the connection went first (then d frees
 * itself). Returns the decision, or NULL with *status set to the SPOP
 * status for the DISCONNECT (malformed payload or no memory). */
struct decision *decision_new(struct worker *w, struct conn *c,
                              void (*done)(struct decision *d), const uint8_t *payload,
                              size_t len, uint64_t stream_id, uint64_t frame_id,
                              int *status);

/* Runs the stages from the current one on. */
void decision_run(struct decision *d);

/* Called by a stage that returned STAGE_PENDING, on the worker's loop thread. */
void decision_resume(struct decision *d);

void decision_free(struct decision *d);

/* The per-decision state stage st keeps in d (NULL when none), and setting
 * it: st's release hook frees what is still set when d goes. */
void *decision_ctx(const struct decision *d, const struct stage_ops *st);
void decision_set_ctx(struct decision *d, const struct stage_ops *st, void *ctx);

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
