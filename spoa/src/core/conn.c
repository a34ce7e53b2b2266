/*
 * SPOP connection state machine.
 *
 *   HELLO ──HAPROXY-HELLO ok──► READY ──NOTIFY──► decisions ──► ACKs
 *     │                          │  └──HAPROXY-DISCONNECT──► DRAINING ──last ACK──┐
 *     └── anything wrong ────────┴──► CLOSING (AGENT-DISCONNECT, flush, close) ◄─┘
 *
 * One timer per connection bounds every state: the HELLO must arrive within
 * handshake_timeout_ms, a READY connection with nothing in flight is closed
 * after idle_timeout_ms, DRAINING and CLOSING after a few seconds, so a
 * peer that stalls can never hold a connection (and its fd) for long.
 *
 * Frames are read into one buffer of 4 + max-frame-size bytes; a frame
 * announcing more than the negotiated size is refused (status 3) before a
 * byte of it is buffered. ACKs are appended to an output buffer and written
 * once per loop iteration (ev_prepare), so a burst of pipelined decisions
 * costs one write().
 */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "decision.h"
#include "log.h"
#include "spop.h"
#include "worker_ctx.h"

static void conn_close(struct conn *c);
static void conn_disconnect(struct conn *c, uint32_t status);
static void conn_update_read(struct conn *c);

/* (Re)arms the connection's single deadline, secs from now. */
static void arm(struct conn *c, double secs)
{
	ev_timer_stop(c->w->loop, &c->tmo);
	ev_timer_set(&c->tmo, secs, 0.);
	ev_timer_start(c->w->loop, &c->tmo);
}

static void mark_dirty(struct conn *c)
{
	if (c->is_dirty)
		return;
	c->is_dirty = 1;
	c->dirty_next = c->w->dirty;
	c->w->dirty = c;
}

/* Appends n bytes to the output. Returns 0, or -1 when the connection would
 * hold more than CONN_WBUF_MAX unsent bytes (HAProxy stopped reading). */
static int out_append(struct conn *c, const uint8_t *p, size_t n)
{
	if (c->woff > 0 && c->woff == c->wlen)
		c->woff = c->wlen = 0;
	if (n > c->wcap - c->wlen) {
		size_t need = c->wlen - c->woff + n, cap = c->wcap ? c->wcap : 4096;
		uint8_t *nb;

		if (need > CONN_WBUF_MAX)
			return -1;
		if (c->woff) {
			memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
			c->wlen -= c->woff;
			c->woff = 0;
		}
		while (cap < need)
			cap *= 2;
		if (cap > c->wcap) {
			nb = realloc(c->wbuf, cap);
			if (!nb)
				return -1;
			c->wbuf = nb;
			c->wcap = cap;
		}
	}
	memcpy(c->wbuf + c->wlen, p, n);
	c->wlen += n;
	mark_dirty(c);
	return 0;
}

/* Writes what the socket takes. Returns 0, or -1 when the connection was
 * closed (error, or everything flushed after a DISCONNECT). */
static int conn_flush(struct conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!ev_is_active(&c->wio))
					ev_io_start(c->w->loop, &c->wio);
				return 0;
			}
			log_debug("conn %d: write: %s", c->fd, strerror(errno));
			conn_close(c);
			return -1;
		}
		c->woff += (size_t)n;
	}
	c->woff = c->wlen = 0;
	if (ev_is_active(&c->wio))
		ev_io_stop(c->w->loop, &c->wio);
	if (c->close_after_flush) {
		conn_close(c);
		return -1;
	}
	conn_update_read(c);
	return 0;
}

void conn_flush_dirty(struct worker *w)
{
	struct conn *c;

	while ((c = w->dirty)) {
		w->dirty = c->dirty_next;
		c->is_dirty = 0;
		c->dirty_next = NULL;
		conn_flush(c);
	}
}

/* Reading pauses while too much is in flight or unsent, so a fast HAProxy
 * cannot grow our memory without bound; it resumes as ACKs drain. */
static void conn_update_read(struct conn *c)
{
	int want = (c->state == CONN_HELLO || c->state == CONN_READY) &&
	           c->ninflight < CONN_MAX_INFLIGHT &&
	           c->wlen - c->woff < CONN_WBUF_SOFT;

	if (want && !ev_is_active(&c->rio))
		ev_io_start(c->w->loop, &c->rio);
	else if (!want && ev_is_active(&c->rio))
		ev_io_stop(c->w->loop, &c->rio);
	c->read_paused = !want;
}

static void conn_disconnect(struct conn *c, uint32_t status)
{
	uint8_t buf[256];
	long n;

	if (c->state == CONN_CLOSING)
		return;
	if (status != SPOP_ST_NORMAL)
		log_info("conn %d: DISCONNECT status %u (%s)", c->fd, status, spop_status_str(status));
	c->w->st.disconnects[status <= SPOP_ST_RES ? status : SPOP_ST_RES + 1]++;
	n = spop_agent_disconnect(buf, sizeof(buf), status, spop_status_str(status));
	c->state = CONN_CLOSING;
	c->close_after_flush = 1;
	conn_update_read(c);
	arm(c, CONN_CLOSE_TIMEOUT);
	/* Never close here: callers may still hold c. The flush before the
	 * loop sleeps writes the frame (if it fit) and closes. */
	if (n < 0 || out_append(c, buf, (size_t)n) < 0)
		c->woff = c->wlen = 0;
	mark_dirty(c);
}

static int handle_hello(struct conn *c, const struct spop_frame *f)
{
	struct agent_config *cfg = &c->w->agent->cfg;
	struct spop_hello h;
	uint8_t buf[256];
	long n;

	if (f->type != SPOP_FRM_HAPROXY_HELLO)
		return SPOP_ST_INVALID;
	if (!(f->flags & SPOP_FLAG_FIN))
		return SPOP_ST_FRAG_NOT_SUPP;
	if (spop_hello_decode(f->payload, f->payload_len, &h) != 0)
		return SPOP_ST_INVALID;
	if (!h.has_versions)
		return SPOP_ST_NO_VSN;
	if (!h.has_max_frame_size)
		return SPOP_ST_NO_FRAME_SIZE;
	if (!h.has_capabilities)
		return SPOP_ST_NO_CAP;
	if (!spop_list_has(h.versions, SPOP_VERSION))
		return SPOP_ST_BAD_VSN;
	if (h.max_frame_size < SPOP_MIN_FRAME_SIZE)
		return SPOP_ST_BAD_FRAME_SIZE;
	c->max_frame = h.max_frame_size < cfg->max_frame_size ?
	               h.max_frame_size : cfg->max_frame_size;
	n = spop_agent_hello(buf, sizeof(buf), c->max_frame, spop_caps_answer(h.capabilities));
	if (n < 0 || out_append(c, buf, (size_t)n) < 0)
		return SPOP_ST_RES;
	c->w->st.hellos++;
	if (h.healthcheck) {
		/* HAProxy closes after the check; we may close first, no DISCONNECT. */
		c->w->st.healthchecks++;
		c->state = CONN_CLOSING;
		c->close_after_flush = 1;
		conn_update_read(c);
		arm(c, CONN_CLOSE_TIMEOUT);
		return 0;
	}
	c->state = CONN_READY;
	arm(c, cfg->idle_timeout_ms / 1000.);
	return 0;
}

static int handle_notify(struct conn *c, const struct spop_frame *f)
{
	struct decision *d;
	int status = 0;

	if (!(f->flags & SPOP_FLAG_FIN))
		return SPOP_ST_FRAG_NOT_SUPP;
	if (f->flags & SPOP_FLAG_ABORT)
		return 0;   /* an aborted message: nothing to answer */
	if (f->frame_id == 0 && f->stream_id == 0)
		return SPOP_ST_INVALID;
	d = decision_new(c->w, c, conn_decision_done, f->payload, f->payload_len, f->stream_id,
	                 f->frame_id, &status);
	if (!d)
		return status;
	c->w->st.notify++;
	if (c->ninflight > 0)
		c->w->st.pipelined++;
	d->seq = c->next_seq++;
	d->prev = c->inflight_tail;
	d->next = NULL;
	if (c->inflight_tail)
		c->inflight_tail->next = d;
	else
		c->inflight = d;
	c->inflight_tail = d;
	c->ninflight++;
	if (c->ninflight > c->w->st.max_inflight)
		c->w->st.max_inflight = c->ninflight;
	decision_run(d);
	return 0;
}

/* Returns 0 to go on, or -1 when the frame ended the connection's reading. */
static int handle_frame(struct conn *c, const uint8_t *buf, size_t len)
{
	struct spop_frame f;
	int status;

	c->w->st.frames_in++;
	if (spop_frame_decode(buf, len, &f) != 0) {
		conn_disconnect(c, SPOP_ST_INVALID);
		return -1;
	}
	if (c->state == CONN_HELLO) {
		status = handle_hello(c, &f);
	} else {
		switch (f.type) {
		case SPOP_FRM_NOTIFY:
			status = handle_notify(c, &f);
			break;
		case SPOP_FRM_HAPROXY_DISCONNECT:
			/* HAProxy waits for our DISCONNECT, then we close; the
			 * decisions it already sent are answered first, so a
			 * reload (old process stopping) loses none of them. */
			if (c->ninflight == 0) {
				conn_disconnect(c, SPOP_ST_NORMAL);
				return -1;
			}
			c->state = CONN_DRAINING;
			c->w->st.drains++;
			conn_update_read(c);
			arm(c, CONN_DRAIN_TIMEOUT);
			return -1;
		case SPOP_FRM_UNSET:
			/* a fragment continuation: we never negotiated fragmentation */
			status = SPOP_ST_FRAG_NOT_SUPP;
			break;
		default:
			status = SPOP_ST_INVALID;
		}
	}
	if (status != 0) {
		conn_disconnect(c, (uint32_t)status);
		return -1;
	}
	return c->state == CONN_CLOSING ? -1 : 0;
}

/* Consumes every complete frame in the read buffer. */
static void process_input(struct conn *c)
{
	size_t off = 0;

	while ((c->state == CONN_HELLO || c->state == CONN_READY) &&
	       c->rlen - off >= SPOP_LEN_BYTES) {
		uint32_t flen = spop_frame_len(c->rbuf + off);

		if (flen > c->max_frame) {
			conn_disconnect(c, SPOP_ST_TOO_BIG);
			return;
		}
		if (c->rlen - off < SPOP_LEN_BYTES + (size_t)flen)
			break;
		if (handle_frame(c, c->rbuf + off + SPOP_LEN_BYTES, flen) < 0)
			return;
		off += SPOP_LEN_BYTES + flen;
	}
	if (off) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
}

static void on_read(struct ev_loop *loop, ev_io *wio, int revents)
{
	struct conn *c = wio->data;
	ssize_t n;

	(void)loop;
	(void)revents;
	for (;;) {
		size_t room = c->rcap - c->rlen;

		if (room == 0) {
			/* cannot happen: rcap holds the largest acceptable frame */
			conn_disconnect(c, SPOP_ST_TOO_BIG);
			return;
		}
		n = read(c->fd, c->rbuf + c->rlen, room);
		if (n > 0) {
			c->last_active = ev_now(c->w->loop);
			c->rlen += (size_t)n;
			process_input(c);
			if (c->state == CONN_CLOSING || c->state == CONN_DRAINING || c->read_paused)
				return;
			if ((size_t)n < room)
				return;   /* drained the socket; saves an EAGAIN read */
			continue;
		}
		if (n == 0) {
			conn_close(c);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			log_debug("conn %d: read: %s", c->fd, strerror(errno));
			conn_close(c);
		}
		return;
	}
}

static void on_write(struct ev_loop *loop, ev_io *wio, int revents)
{
	(void)loop;
	(void)revents;
	conn_flush(wio->data);
}

/* The connection's deadline passed. Returns after c may have been freed. */
static void on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct conn *c = t->data;
	double idle = c->w->agent->cfg.idle_timeout_ms / 1000., quiet;

	(void)revents;
	switch (c->state) {
	case CONN_HELLO:
		/* Half a HELLO, or none: not worth a DISCONNECT. */
		c->w->st.timeouts[0]++;
		log_debug("conn %d: no HELLO within %d ms, closing", c->fd,
		          c->w->agent->cfg.handshake_timeout_ms);
		conn_close(c);
		return;
	case CONN_READY:
		quiet = ev_now(loop) - c->last_active;
		if (c->w->stopping && c->ninflight == 0 && quiet >= CONN_STOP_QUIET) {
			conn_disconnect(c, SPOP_ST_NORMAL);
			return;
		}
		if (c->w->stopping)
			idle = CONN_STOP_QUIET;
		if (c->ninflight > 0 || quiet < idle) {
			arm(c, c->ninflight > 0 ? idle : idle - quiet);
			return;
		}
		c->w->st.timeouts[1]++;
		log_debug("conn %d: idle for %.0f s, closing", c->fd, quiet);
		conn_disconnect(c, SPOP_ST_TIMEOUT);
		return;
	case CONN_DRAINING:
		log_warn("conn %d: %u decisions still in flight %.0f s after HAProxy's "
		         "DISCONNECT, closing", c->fd, c->ninflight, CONN_DRAIN_TIMEOUT);
		conn_disconnect(c, SPOP_ST_NORMAL);
		return;
	case CONN_CLOSING:
		conn_close(c);
		return;
	}
}

void conn_accept(struct worker *w, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c)
		c->rbuf = malloc(SPOP_LEN_BYTES + (size_t)w->agent->cfg.max_frame_size);
	if (!c || !c->rbuf) {
		log_error("conn: out of memory");
		if (c)
			free(c);
		close(fd);
		return;
	}
	c->w = w;
	c->fd = fd;
	c->state = CONN_HELLO;
	c->max_frame = w->agent->cfg.max_frame_size;
	c->rcap = SPOP_LEN_BYTES + (size_t)c->max_frame;
	ev_io_init(&c->rio, on_read, fd, EV_READ);
	ev_io_init(&c->wio, on_write, fd, EV_WRITE);
	ev_timer_init(&c->tmo, on_timeout, w->agent->cfg.handshake_timeout_ms / 1000., 0.);
	c->rio.data = c;
	c->wio.data = c;
	c->tmo.data = c;
	c->last_active = ev_now(w->loop);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	w->st.conns_accepted++;
	w->st.conns_open++;
	ev_io_start(w->loop, &c->rio);
	ev_timer_start(w->loop, &c->tmo);
}

static void conn_close(struct conn *c)
{
	struct worker *w = c->w;
	struct decision *d;
	struct conn **pp;

	ev_io_stop(w->loop, &c->rio);
	ev_io_stop(w->loop, &c->wio);
	ev_timer_stop(w->loop, &c->tmo);
	close(c->fd);
	/* Decisions still waiting on Redis or gRPC free themselves on resume. */
	for (d = c->inflight; d; d = d->next)
		d->conn = NULL;
	if (c->is_dirty) {
		for (pp = &w->dirty; *pp; pp = &(*pp)->dirty_next)
			if (*pp == c) {
				*pp = c->dirty_next;
				break;
			}
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	w->st.conns_open--;
	free(c->rbuf);
	free(c->wbuf);
	free(c);
	if (w->stopping && w->nconns == 0)
		ev_break(w->loop, EVBREAK_ONE);
}

void conn_decision_done(struct decision *d)
{
	struct conn *c = d->conn;
	uint8_t buf[SPOP_MAX_FRAME_SIZE + SPOP_LEN_BYTES];
	long n;

	if (!c) {
		decision_free(d);
		return;
	}
	if (d->prev)
		d->prev->next = d->next;
	else
		c->inflight = d->next;
	if (d->next)
		d->next->prev = d->prev;
	else
		c->inflight_tail = d->prev;
	c->ninflight--;
	if (c->inflight && c->inflight->seq < d->seq)
		c->w->st.out_of_order++;

	n = gw_ack_encode(buf, SPOP_LEN_BYTES + (size_t)c->max_frame, d->stream_id,
	                  d->frame_id, &d->v);
	if (n < 0) {
		/* Too many identity vars for the negotiated frame: refuse rather
		 * than forward a truncated identity. */
		gw_verdict_init(&d->v);
		gw_verdict_deny(&d->v, 401, GW_R_TOKEN_INVALID);
		n = gw_ack_encode(buf, SPOP_LEN_BYTES + (size_t)c->max_frame,
		                  d->stream_id, d->frame_id, &d->v);
	}
	decision_free(d);
	if (n < 0 || out_append(c, buf, (size_t)n) < 0) {
		conn_disconnect(c, SPOP_ST_RES);
		return;
	}
	c->w->st.acks++;
	if (c->state == CONN_DRAINING && c->ninflight == 0)
		conn_disconnect(c, SPOP_ST_NORMAL);
	else if (c->w->stopping && c->ninflight == 0)
		arm(c, CONN_STOP_QUIET);
	else if (c->read_paused)
		conn_update_read(c);
}

void conn_shutdown_all(struct worker *w, int force)
{
	struct conn *c, *next;

	for (c = w->conns; c; c = next) {
		next = c->next;
		if (force)
			conn_close(c);
		else if (c->state == CONN_READY)
			arm(c, CONN_STOP_QUIET);   /* on_timeout says DISCONNECT once quiet */
		else if (c->ninflight == 0 && c->state != CONN_CLOSING)
			conn_disconnect(c, SPOP_ST_NORMAL);
	}
	conn_flush_dirty(w);
}
