/*
 * Worker threads. On TCP each binds its own SO_REUSEPORT socket so the
 * kernel spreads HAProxy's connections across loops with no shared accept
 * queue and no lock on the hot path; on a unix socket all accept from one
 * (connections are few and long-lived, so the shared queue costs nothing).
 */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "conn.h"
#include "listener.h"
#include "log.h"
#include "stage.h"

#define DRAIN_TIMEOUT 10.0   /* seconds a stopping worker waits for decisions */
#define ACCEPT_RETRY  0.25   /* seconds accepting pauses when out of fds */
#define ACCEPT_WARN   60.0   /* at most one "out of fds" warning this often */

static void on_accept_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	(void)revents;
	if (!w->stopping && w->listen_fd >= 0)
		ev_io_start(loop, &w->accept_w);
}

/* Out of fds (or of kernel memory): the pending connection stays in the
 * backlog and the listener stays readable, so accepting again at once
 * would spin. Stop the watcher, retry on a timer, warn once a minute. */
static void accept_pause(struct worker *w, int err)
{
	ev_tstamp now = ev_now(w->loop);

	ev_io_stop(w->loop, &w->accept_w);
	ev_timer_stop(w->loop, &w->accept_retry_w);
	ev_timer_set(&w->accept_retry_w, ACCEPT_RETRY, 0.);
	ev_timer_start(w->loop, &w->accept_retry_w);
	w->st.accept_paused++;
	if (w->accept_warned == 0 || now - w->accept_warned >= ACCEPT_WARN) {
		log_warn("worker %d: accept: %s with %u connections open; pausing accepts "
		         "(%lu pauses so far, next warning in %.0f s at the earliest)", w->id,
		         strerror(err), w->nconns, (unsigned long)w->st.accept_paused, ACCEPT_WARN);
		w->accept_warned = now;
	}
}

static void on_accept(struct ev_loop *loop, ev_io *wio, int revents)
{
	struct worker *w = wio->data;
	int fd, one = 1;

	(void)loop;
	(void)revents;
	for (;;) {
		fd = accept4(w->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				accept_pause(w, errno);
			else if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("worker %d: accept: %s", w->id, strerror(errno));
			return;
		}
		if (!w->agent->cfg.listen_unix[0])
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		conn_accept(w, fd);
	}
}

static void on_prepare(struct ev_loop *loop, ev_prepare *p, int revents)
{
	(void)loop;
	(void)revents;
	conn_flush_dirty(p->data);
}

static void on_drain_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	(void)revents;
	log_warn("worker %d: drain timeout, closing %u connections", w->id, w->nconns);
	conn_shutdown_all(w, 1);
	ev_break(loop, EVBREAK_ONE);
}

static void do_stop(void *arg)
{
	struct worker *w = arg;

	if (w->stopping)
		return;
	w->stopping = 1;
	ev_io_stop(w->loop, &w->accept_w);
	ev_timer_stop(w->loop, &w->accept_retry_w);
	close(w->listen_fd);
	w->listen_fd = -1;
	conn_shutdown_all(w, 0);
	if (w->nconns == 0) {
		ev_break(w->loop, EVBREAK_ONE);
		return;
	}
	ev_timer_init(&w->drain_w, on_drain_timeout, DRAIN_TIMEOUT, 0.);
	w->drain_w.data = w;
	ev_timer_start(w->loop, &w->drain_w);
}

static void on_wake(struct ev_loop *loop, ev_async *a, int revents)
{
	(void)loop;
	(void)revents;
	worker_run_jobs(a->data);
}

int worker_init(struct worker *w, struct agent *a, int id)
{
	memset(w, 0, sizeof(*w));
	w->agent = a;
	w->id = id;
	w->rand_state = (unsigned)time(NULL) ^ (unsigned)(id * 2654435761u);
	w->jobs_tail = &w->jobs;
	pthread_mutex_init(&w->jobs_lock, NULL);
	if (a->cfg.listen_unix[0])
		w->listen_fd = listener_unix_dup(&a->unix_listener);
	else
		w->listen_fd = listener_tcp(a->cfg.listen_host, a->cfg.listen_port);
	if (w->listen_fd < 0)
		return -1;
	/* Signals belong to the main loop; workers never see them. */
	w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!w->loop) {
		close(w->listen_fd);
		return -1;
	}
	ev_io_init(&w->accept_w, on_accept, w->listen_fd, EV_READ);
	w->accept_w.data = w;
	ev_io_start(w->loop, &w->accept_w);
	ev_timer_init(&w->accept_retry_w, on_accept_retry, ACCEPT_RETRY, 0.);
	w->accept_retry_w.data = w;
	ev_async_init(&w->wake_w, on_wake);
	w->wake_w.data = w;
	ev_async_start(w->loop, &w->wake_w);
	ev_prepare_init(&w->flush_w, on_prepare);
	w->flush_w.data = w;
	ev_prepare_start(w->loop, &w->flush_w);
	return stages_worker_start(w, w->stage_ctx);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	ev_run(w->loop, 0);
	/* Run jobs posted while stopping (late gRPC completions) then leave. */
	worker_run_jobs(w);
	return NULL;
}

int worker_start(struct worker *w)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_error("worker %d: pthread_create: %s", w->id, strerror(rc));
		return -1;
	}
	return 0;
}

void worker_stop(struct worker *w)
{
	if (worker_post(w, do_stop, w) < 0)
		log_error("worker %d: cannot post stop", w->id);
}

void worker_join(struct worker *w)
{
	pthread_join(w->thread, NULL);
}

void worker_destroy(struct worker *w)
{
	struct worker_job *j;

	conn_shutdown_all(w, 1);
	stages_worker_stop(w, w->stage_ctx);
	while ((j = w->jobs)) {
		w->jobs = j->next;
		free(j);
	}
	if (w->listen_fd >= 0)
		close(w->listen_fd);
	if (w->loop)
		ev_loop_destroy(w->loop);
	w->loop = NULL;
	pthread_mutex_destroy(&w->jobs_lock);
}
