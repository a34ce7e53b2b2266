/*
 * Prometheus text exposition on metrics_listen: GET /metrics and /healthz.
 * Runs on the main loop; worker counters are read with relaxed atomic
 * loads, so a scrape never stops a worker.
 */
#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "metrics_http.h"
#include "stage.h"
#include "version.h"
#include "worker_ctx.h"

#define REQ_MAX 4096

struct mclient {
	ev_io io;
	ev_timer timeout;
	size_t len;
	char buf[REQ_MAX];
};

static int listen_fd = -1;
static ev_io accept_w;
static struct agent *the_agent;
static struct metrics_source *sources;

void metrics_register(struct metrics_source *src)
{
	src->next = sources;
	sources = src;
}

static uint64_t ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static const char *const type_names[] = {
	[METRICS_COUNTER]   = "counter",
	[METRICS_GAUGE]     = "gauge",
	[METRICS_HISTOGRAM] = "histogram",
};

void metrics_family(struct dynbuf *b, const char *name, enum metrics_type type,
                    const char *help)
{
	dynbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type_names[type]);
}

void metrics_sample(struct dynbuf *b, const char *name, const char *labels, uint64_t v)
{
	if (*labels)
		dynbuf_printf(b, "%s{%s} %llu\n", name, labels, (unsigned long long)v);
	else
		dynbuf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

void metrics_sample_f(struct dynbuf *b, const char *name, const char *labels, double v)
{
	if (*labels)
		dynbuf_printf(b, "%s{%s} %.17g\n", name, labels, v);
	else
		dynbuf_printf(b, "%s %.17g\n", name, v);
}

void metrics_counter(struct dynbuf *b, const char *name, const char *help, uint64_t v)
{
	metrics_family(b, name, METRICS_COUNTER, help);
	metrics_sample(b, name, "", v);
}

void metrics_gauge(struct dynbuf *b, const char *name, const char *help, double v)
{
	metrics_family(b, name, METRICS_GAUGE, help);
	metrics_sample_f(b, name, "", v);
}

void metrics_histogram(struct dynbuf *b, const char *name, const char *labels,
                       const double *bounds_s, const uint64_t *counts, int n,
                       uint64_t count, double sum_s)
{
	const char *sep = *labels ? "," : "";
	uint64_t cum = 0;
	int i;

	for (i = 0; i < n; i++) {
		cum += counts[i];
		dynbuf_printf(b, "%s_bucket{%s%sle=\"%g\"} %lu\n", name, labels, sep, bounds_s[i],
		              (unsigned long)cum);
	}
	dynbuf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %lu\n", name, labels, sep,
	              (unsigned long)count);
	if (*labels) {
		dynbuf_printf(b, "%s_sum{%s} %.6f\n%s_count{%s} %lu\n", name, labels, sum_s, name,
		              labels, (unsigned long)count);
	} else {
		dynbuf_printf(b, "%s_sum %.6f\n%s_count %lu\n", name, sum_s, name,
		              (unsigned long)count);
	}
}

/* Sums one counter, given by its offset in worker_stats, over the workers. */
static uint64_t sum_at(const struct agent *a, size_t off)
{
	uint64_t s = 0;
	int i;

	for (i = 0; i < a->nworkers; i++)
		s += ld((const uint64_t *)((const char *)&a->workers[i].st + off));
	return s;
}

#define SUM(field) sum_at(a, offsetof(struct worker_stats, field))

/* The process metrics every Prometheus client library exports, from
 * getrusage(), getrlimit() and /proc (a few small reads per scrape). */
static void render_process(struct dynbuf *b)
{
	struct rusage ru;
	struct rlimit rl;
	struct dirent *de;
	unsigned long pages = 0, rss = 0;
	double cpu = 0;
	long fds = 0;
	FILE *f;
	DIR *dir;

	if (getrusage(RUSAGE_SELF, &ru) == 0)
		cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
		      ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
	metrics_family(b, "process_cpu_seconds_total", METRICS_COUNTER,
	               "Total user and system CPU time spent in seconds.");
	metrics_sample_f(b, "process_cpu_seconds_total", "", cpu);
	f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%lu %lu", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	metrics_gauge(b, "process_resident_memory_bytes", "Resident memory size in bytes.",
	              (double)rss * (double)sysconf(_SC_PAGESIZE));
	dir = opendir("/proc/self/fd");
	if (dir) {
		while ((de = readdir(dir)))
			if (de->d_name[0] != '.')
				fds++;
		closedir(dir);
		fds--;                     /* the directory's own */
	}
	metrics_gauge(b, "process_open_fds", "Number of open file descriptors.",
	              (double)(fds > 0 ? fds : 0));
	metrics_gauge(b, "process_max_fds", "Maximum number of open file descriptors.",
	              getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ?
	              (double)rl.rlim_cur : -1);
}

static void render(struct agent *a, struct dynbuf *b)
{
	struct metrics_source *src;
	char labels[96];
	int i, o;

	metrics_family(b, "spogate_build_info", METRICS_GAUGE,
	               "The agent's version and the oldest HAProxy it supports; always 1.");
	metrics_sample(b, "spogate_build_info",
	               "version=\"" SPOGATE_VERSION "\",haproxy_min=\"" SPOGATE_HAPROXY_MIN "\"", 1);
	render_process(b);
	metrics_counter(b, "spogate_connections_total", "SPOP connections accepted.",
	                SUM(conns_accepted));
	metrics_gauge(b, "spogate_connections_open", "SPOP connections open.",
	              (double)SUM(conns_open));
	metrics_counter(b, "spogate_hellos_total", "HAPROXY-HELLO handshakes answered.",
	                SUM(hellos));
	metrics_counter(b, "spogate_healthchecks_total", "HAPROXY-HELLO health checks answered.",
	                SUM(healthchecks));
	metrics_counter(b, "spogate_frames_total", "SPOP frames received.", SUM(frames_in));
	metrics_counter(b, "spogate_notify_total", "NOTIFY frames received.", SUM(notify));
	metrics_counter(b, "spogate_acks_total", "ACK frames sent.", SUM(acks));
	metrics_counter(b, "spogate_pipelined_total",
	                "NOTIFY frames received while another decision of the same connection was in flight.",
	                SUM(pipelined));
	metrics_counter(b, "spogate_out_of_order_total",
	                "ACKs sent before an older decision of the same connection completed.",
	                SUM(out_of_order));
	{
		uint64_t m = 0;

		for (i = 0; i < a->nworkers; i++)
			if (ld(&a->workers[i].st.max_inflight) > m)
				m = ld(&a->workers[i].st.max_inflight);
		metrics_gauge(b, "spogate_max_inflight",
		              "Most decisions seen in flight at once on one connection.", (double)m);
	}
	metrics_family(b, "spogate_connections_timed_out_total", METRICS_COUNTER,
	               "SPOP connections closed for no HELLO in time (handshake) or for idleness (idle).");
	metrics_sample(b, "spogate_connections_timed_out_total", "phase=\"handshake\"",
	               SUM(timeouts[0]));
	metrics_sample(b, "spogate_connections_timed_out_total", "phase=\"idle\"",
	               SUM(timeouts[1]));
	metrics_counter(b, "spogate_disconnect_drains_total",
	                "HAProxy DISCONNECTs answered only after the decisions in flight were ACKed.",
	                SUM(drains));
	metrics_counter(b, "spogate_accept_paused_total",
	                "Times a worker stopped accepting for a while because it ran out of file descriptors.",
	                SUM(accept_paused));
	metrics_family(b, "spogate_disconnects_total", METRICS_COUNTER,
	               "AGENT-DISCONNECT frames sent, by SPOP status (99: other).");
	for (i = 0; i <= SPOP_ST_RES + 1; i++) {
		uint64_t s = SUM(disconnects[i]);

		snprintf(labels, sizeof(labels), "status=\"%d\"", i <= SPOP_ST_RES ? i : 99);
		if (s)
			metrics_sample(b, "spogate_disconnects_total", labels, s);
	}
	/* Every reason a verdict can carry, allowed (reason "none") or denied. */
	metrics_family(b, "spogate_decisions_total", METRICS_COUNTER,
	               "Decisions by outcome (allow, deny) and reason (none when allowed).");
	for (o = 0; o < 2; o++)
		for (i = 0; i < GW_R_MAX; i++) {
			uint64_t s = SUM(decisions[o][i]);

			if ((o == 0) != (i == GW_R_NONE) && s == 0)
				continue;
			snprintf(labels, sizeof(labels), "outcome=\"%s\",reason=\"%s\"",
			         o ? "deny" : "allow", i ? gw_reason_str((enum gw_reason)i) : "none");
			metrics_sample(b, "spogate_decisions_total", labels, s);
		}
	metrics_family(b, "spogate_denials_total", METRICS_COUNTER,
	               "Denied decisions by reason (the deny side of spogate_decisions_total).");
	for (i = 1; i < GW_R_MAX; i++) {
		snprintf(labels, sizeof(labels), "reason=\"%s\"", gw_reason_str((enum gw_reason)i));
		metrics_sample(b, "spogate_denials_total", labels, SUM(reasons[i]));
	}
	metrics_family(b, "spogate_decision_seconds", METRICS_HISTOGRAM, "Time from NOTIFY to ACK.");
	{
		uint64_t counts[WORKER_LAT_BUCKETS];
		double bounds[WORKER_LAT_BUCKETS];

		for (i = 0; i < WORKER_LAT_BUCKETS; i++) {
			counts[i] = SUM(lat_bucket[i]);
			bounds[i] = worker_lat_bounds_us[i] / 1e6;
		}
		metrics_histogram(b, "spogate_decision_seconds", "", bounds, counts,
		                  WORKER_LAT_BUCKETS, SUM(lat_count), (double)SUM(lat_sum_us) / 1e6);
	}
	stages_metrics(a, b);
	for (src = sources; src; src = src->next)
		src->render(a, b);
}

static void client_close(struct ev_loop *loop, struct mclient *c)
{
	ev_io_stop(loop, &c->io);
	ev_timer_stop(loop, &c->timeout);
	close(c->io.fd);
	free(c);
}

static void respond(int fd, const char *status, const char *ctype, const char *body, size_t len)
{
	char hdr[256];
	int n = snprintf(hdr, sizeof(hdr), "HTTP/1.1 %s\r\nContent-Type: %s\r\n"
	                 "Content-Length: %zu\r\nConnection: close\r\n\r\n", status, ctype, len);
	size_t off = 0;

	/* Blocking send on a scrape socket: bodies are small and local. */
	if (send(fd, hdr, (size_t)n, MSG_NOSIGNAL) < 0)
		return;
	while (off < len) {
		ssize_t w = send(fd, body + off, len - off, MSG_NOSIGNAL);

		if (w <= 0) {
			if (w < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			return;
		}
		off += (size_t)w;
	}
}

static void on_client(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mclient *c = w->data;
	enum metrics_req rq;
	ssize_t n;

	(void)revents;
	n = recv(w->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		client_close(loop, c);
		return;
	}
	c->len += (size_t)n;
	rq = metrics_http_parse(c->buf, c->len, sizeof(c->buf));
	if (rq == METRICS_REQ_INCOMPLETE)
		return;
	if (rq == METRICS_REQ_TOO_LARGE) {
		client_close(loop, c);
		return;
	}
	if (rq == METRICS_REQ_METRICS) {
		struct dynbuf b = { .limit = METRICS_MAX_BYTES };

		render(the_agent, &b);
		if (b.err)
			respond(w->fd, "500 Internal Server Error", "text/plain", "error\n", 6);
		else
			respond(w->fd, "200 OK", "text/plain; version=0.0.4", b.p ? b.p : "", b.len);
		dynbuf_free(&b);
	} else if (rq == METRICS_REQ_HEALTHZ) {
		respond(w->fd, "200 OK", "text/plain", "ok\n", 3);
	} else {
		respond(w->fd, "404 Not Found", "text/plain", "not found\n", 10);
	}
	client_close(loop, c);
}

static void on_client_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	client_close(loop, t->data);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mclient *c;
	int fd;

	(void)revents;
	fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	ev_io_init(&c->io, on_client, fd, EV_READ);
	c->io.data = c;
	ev_timer_init(&c->timeout, on_client_timeout, 5., 0.);
	c->timeout.data = c;
	ev_io_start(loop, &c->io);
	ev_timer_start(loop, &c->timeout);
}

int metrics_start(struct agent *a)
{
	struct addrinfo hints, *res;
	char port[16];
	int one = 1;

	if (a->cfg.metrics_port == 0)
		return 0;
	the_agent = a;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", a->cfg.metrics_port);
	if (getaddrinfo(a->cfg.metrics_host, port, &hints, &res) != 0) {
		log_error("metrics_listen %s:%d: not a numeric address", a->cfg.metrics_host,
		          a->cfg.metrics_port);
		return -1;
	}
	listen_fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listen_fd < 0 ||
	    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(listen_fd, res->ai_addr, res->ai_addrlen) < 0 || listen(listen_fd, 64) < 0) {
		log_error("metrics_listen %s:%d: %s", a->cfg.metrics_host, a->cfg.metrics_port,
		          strerror(errno));
		if (listen_fd >= 0)
			close(listen_fd);
		listen_fd = -1;
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	ev_io_init(&accept_w, on_accept, listen_fd, EV_READ);
	ev_io_start(a->main_loop, &accept_w);
	return 0;
}

void metrics_stop(struct agent *a)
{
	if (listen_fd < 0)
		return;
	ev_io_stop(a->main_loop, &accept_w);
	close(listen_fd);
	listen_fd = -1;
}
