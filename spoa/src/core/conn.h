/*
 * One SPOP connection from HAProxy: handshake, frame reading, ACK writing.
 */
#ifndef SPOGATE_CONN_H
#define SPOGATE_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

struct worker;
struct decision;

#define CONN_MAX_INFLIGHT   4096          /* stop reading above this */
#define CONN_WBUF_SOFT      (256 * 1024)  /* stop reading above this */
#define CONN_WBUF_MAX       (4 * 1024 * 1024)

enum conn_state {
	CONN_HELLO    = 0,
	CONN_READY    = 1,
	CONN_CLOSING  = 2,
	CONN_DRAINING = 3,   /* HAProxy said DISCONNECT; ACKs in flight go first */
};

/* Seconds a connection may take to flush its DISCONNECT (a peer that stops
 * reading would hold it forever), and to finish its decisions in flight
 * after HAProxy's DISCONNECT (far beyond any `timeout processing`). */
#define CONN_CLOSE_TIMEOUT  5.0
#define CONN_DRAIN_TIMEOUT  5.0
/* A stopping agent says DISCONNECT on a connection only once HAProxy has
 * sent nothing on it for this long: HAProxy 3.1+ picks any connection of
 * its pool for each NOTIFY, and one sent as our DISCONNECT crosses it is
 * lost. By then the closed listener has failed HAProxy's checks. */
#define CONN_STOP_QUIET     0.2

struct conn {
	struct worker *w;
	int fd;
	enum conn_state state;
	ev_io rio;
	ev_io wio;
	ev_timer tmo;                  /* handshake, idle, drain or close deadline */
	ev_tstamp last_active;         /* last byte read */
	uint32_t max_frame;            /* ours until the handshake, then negotiated */
	uint8_t *rbuf;
	size_t rlen;
	size_t rcap;
	uint8_t *wbuf;
	size_t wlen;
	size_t woff;
	size_t wcap;
	struct decision *inflight;     /* oldest first */
	struct decision *inflight_tail;
	unsigned ninflight;
	uint64_t next_seq;
	int read_paused;
	int close_after_flush;
	int is_dirty;
	struct conn *dirty_next;
	struct conn *prev, *next;
};

/* Takes ownership of an accepted, non-blocking fd. */
void conn_accept(struct worker *w, int fd);

/* Sends d's ACK (if the connection still exists) and frees d. */
void conn_decision_done(struct decision *d);

/* Writes pending output of every dirty connection of w. */
void conn_flush_dirty(struct worker *w);

/* Graceful stop: each connection says DISCONNECT once it has no decision in
 * flight. With force, connections close at once. */
void conn_shutdown_all(struct worker *w, int force);

#endif
