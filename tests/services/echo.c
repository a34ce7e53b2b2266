/*
 * spogate-echo: the backend of tests, benchmarks and `make run`.
 *
 *   spogate-echo --listen 127.0.0.1:PORT [--name NAME]
 *
 * HTTP/1.1 with keep-alive and pipelining on one libev loop. Every request
 * is answered 200 with a JSON echo of what the backend received:
 *   {"service":NAME,"method":..,"path":..,"headers":{"name":"value",...}}
 * so tests can see exactly which headers the gateway forwarded. GET /health
 * answers "ok". A request header X-Echo-Status: NNN sets the status code
 * (for health-check and circuit-breaker tests).
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "addr.h"
#include "version.h"

#define RBUF_MAX (64 * 1024)
#define WBUF_MAX (1024 * 1024)
#define MAX_HEADERS 64

struct client {
	ev_io rio;
	ev_io wio;
	int fd;
	size_t rlen;
	char rbuf[RBUF_MAX];
	char *wbuf;
	size_t wlen;
	size_t woff;
	size_t wcap;
};

static const char *service_name = "echo";
static unsigned long served;

static int wappend(struct client *c, const char *p, size_t n)
{
	if (n > c->wcap - c->wlen) {
		size_t cap = c->wcap ? c->wcap : 4096;
		char *nb;

		while (cap - c->wlen < n)
			cap *= 2;
		if (cap > WBUF_MAX || !(nb = realloc(c->wbuf, cap)))
			return -1;
		c->wbuf = nb;
		c->wcap = cap;
	}
	memcpy(c->wbuf + c->wlen, p, n);
	c->wlen += n;
	return 0;
}

/* Appends s as a JSON string body (without quotes). */
static int jappend(struct client *c, const char *s, size_t n)
{
	char esc[8];
	size_t i, start = 0;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		if (wappend(c, s + start, i - start) < 0)
			return -1;
		snprintf(esc, sizeof(esc), "\\u%04x", ch);
		if (wappend(c, esc, 6) < 0)
			return -1;
		start = i + 1;
	}
	return wappend(c, s + start, n - start);
}

static void client_close(struct ev_loop *loop, struct client *c)
{
	ev_io_stop(loop, &c->rio);
	ev_io_stop(loop, &c->wio);
	close(c->fd);
	free(c->wbuf);
	free(c);
}

struct hdr {
	const char *name, *value;
	size_t nlen, vlen;
};

/* Parses one request at the head of rbuf. Returns its total length, 0 when
 * incomplete, -1 when malformed. */
static long handle_one(struct client *c)
{
	char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
	char *p, *line_end, *sp1, *sp2;
	struct hdr h[MAX_HEADERS];
	size_t nh = 0, i, body = 0, total;
	int status = 200, close_after = 0;
	char head[256], *out;
	int n;

	if (!end)
		return c->rlen >= sizeof(c->rbuf) ? -1 : 0;
	line_end = memmem(c->rbuf, (size_t)(end - c->rbuf) + 2, "\r\n", 2);
	sp1 = memchr(c->rbuf, ' ', (size_t)(line_end - c->rbuf));
	if (!sp1)
		return -1;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1));
	if (!sp2)
		return -1;
	for (p = line_end + 2; p < end + 2 && nh < MAX_HEADERS; ) {
		char *le = memmem(p, (size_t)(end + 2 - p), "\r\n", 2), *colon;

		if (!le || le == p)
			break;
		colon = memchr(p, ':', (size_t)(le - p));
		if (colon) {
			h[nh].name = p;
			h[nh].nlen = (size_t)(colon - p);
			colon++;
			while (colon < le && (*colon == ' ' || *colon == '\t'))
				colon++;
			h[nh].value = colon;
			h[nh].vlen = (size_t)(le - colon);
			if (h[nh].nlen == 14 && strncasecmp(p, "content-length", 14) == 0)
				body = strtoul(colon, NULL, 10);
			else if (h[nh].nlen == 13 && strncasecmp(p, "x-echo-status", 13) == 0) {
				long st = strtol(colon, NULL, 10);

				status = st >= 100 && st <= 599 ? (int)st : 200;
			} else if (h[nh].nlen == 10 && strncasecmp(p, "connection", 10) == 0 &&
			         h[nh].vlen >= 5 && strncasecmp(colon, "close", 5) == 0)
				close_after = 1;
			nh++;
		}
		p = le + 2;
	}
	total = (size_t)(end + 4 - c->rbuf) + body;
	if (total > sizeof(c->rbuf))
		return -1;
	if (c->rlen < total)
		return 0;

	served++;
	if ((size_t)(sp2 - sp1 - 1) == 7 && strncmp(sp1 + 1, "/health", 7) == 0) {
		static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
		                         "Content-Type: text/plain\r\n\r\nok\n";

		if (wappend(c, ok, sizeof(ok) - 1) < 0)
			return -1;
		return (long)total;
	}
	/* Body first into the tail, then the head in front of it. */
	{
		size_t mark = c->wlen;
		size_t blen;

		if (wappend(c, "{\"service\":\"", 12) < 0 ||
		    jappend(c, service_name, strlen(service_name)) < 0 ||
		    wappend(c, "\",\"method\":\"", 12) < 0 ||
		    jappend(c, c->rbuf, (size_t)(sp1 - c->rbuf)) < 0 ||
		    wappend(c, "\",\"path\":\"", 10) < 0 ||
		    jappend(c, sp1 + 1, (size_t)(sp2 - sp1 - 1)) < 0 ||
		    wappend(c, "\",\"headers\":{", 13) < 0)
			return -1;
		for (i = 0; i < nh; i++) {
			if ((i && wappend(c, ",", 1) < 0) || wappend(c, "\"", 1) < 0)
				return -1;
			/* lower-case names so tests need not care about case */
			{
				char name[256];
				size_t k, nl = h[i].nlen < sizeof(name) ? h[i].nlen : sizeof(name);

				for (k = 0; k < nl; k++)
					name[k] = (char)((h[i].name[k] >= 'A' && h[i].name[k] <= 'Z') ?
					                 h[i].name[k] + 32 : h[i].name[k]);
				if (jappend(c, name, nl) < 0)
					return -1;
			}
			if (wappend(c, "\":\"", 3) < 0 || jappend(c, h[i].value, h[i].vlen) < 0 ||
			    wappend(c, "\"", 1) < 0)
				return -1;
		}
		if (wappend(c, "}}\n", 3) < 0)
			return -1;
		blen = c->wlen - mark;
		n = snprintf(head, sizeof(head), "HTTP/1.1 %d Echo\r\nContent-Type: application/json\r\n"
		             "Content-Length: %zu\r\nX-Echo-Service: %s\r\n%s\r\n", status, blen,
		             service_name, close_after ? "Connection: close\r\n" : "");
		if (wappend(c, head, (size_t)n) < 0)
			return -1;
		/* rotate head before body */
		out = c->wbuf + mark;
		{
			char *tmp = malloc(blen);

			if (!tmp)
				return -1;
			memcpy(tmp, out, blen);
			memmove(out, out + blen, (size_t)n);
			memcpy(out + n, tmp, blen);
			free(tmp);
		}
	}
	return close_after ? -2 - (long)total : (long)total;
}

static void flush(struct ev_loop *loop, struct client *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				ev_io_start(loop, &c->wio);
				return;
			}
			client_close(loop, c);
			return;
		}
		c->woff += (size_t)n;
	}
	c->woff = c->wlen = 0;
	ev_io_stop(loop, &c->wio);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)revents;
	flush(loop, w->data);
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = w->data;
	ssize_t n;
	long used;
	int close_after = 0;

	(void)revents;
	n = recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, 0);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		client_close(loop, c);
		return;
	}
	c->rlen += (size_t)n;
	while (c->rlen > 0) {
		used = handle_one(c);
		if (used == 0)
			break;
		if (used == -1) {
			client_close(loop, c);
			return;
		}
		if (used < -1) {
			used = -2 - used;
			close_after = 1;
		}
		memmove(c->rbuf, c->rbuf + used, c->rlen - (size_t)used);
		c->rlen -= (size_t)used;
		if (close_after)
			break;
	}
	flush(loop, c);
	if (close_after)
		client_close(loop, c);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c;
	int fd, one = 1;

	(void)revents;
	while ((fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->fd = fd;
		ev_io_init(&c->rio, on_read, fd, EV_READ);
		ev_io_init(&c->wio, on_write, fd, EV_WRITE);
		c->rio.data = c->wio.data = c;
		ev_io_start(loop, &c->rio);
	}
}

static void on_term(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "name", required_argument, NULL, 'n' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct addrinfo hints, *res;
	struct ev_loop *loop = ev_default_loop(0);
	const char *listen_addr = "127.0.0.1:8081";
	char host[256], port[16];
	ev_io accept_w;
	ev_signal term_w, int_w;
	int opt, fd, one = 1, p;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'V') {
			version_print(stdout, "spogate-echo");
			return 0;
		} else if (opt == 'l')
			listen_addr = optarg;
		else if (opt == 'n')
			service_name = optarg;
		else
			return 2;
	}
	if (addr_split(listen_addr, host, sizeof(host), &p) < 0) {
		fprintf(stderr, "spogate-echo: bad --listen %s\n", listen_addr);
		return 2;
	}
	snprintf(port, sizeof(port), "%d", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return 1;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
		fprintf(stderr, "spogate-echo: listen %s: %s\n", listen_addr, strerror(errno));
		return 1;
	}
	freeaddrinfo(res);
	signal(SIGPIPE, SIG_IGN);
	ev_io_init(&accept_w, on_accept, fd, EV_READ);
	ev_io_start(loop, &accept_w);
	ev_signal_init(&term_w, on_term, SIGTERM);
	ev_signal_init(&int_w, on_term, SIGINT);
	ev_signal_start(loop, &term_w);
	ev_signal_start(loop, &int_w);
	fprintf(stderr, "spogate-echo %s listening on %s\n", service_name, listen_addr);
	ev_run(loop, 0);
	fprintf(stderr, "spogate-echo %s: served %lu requests\n", service_name, served);
	return 0;
}
