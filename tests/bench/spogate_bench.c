/*
 * spogate-bench: a SPOP load generator that talks to the agent directly,
 * the way HAProxy does, to measure the agent apart from HAProxy.
 *
 *   spogate-bench --target 127.0.0.1:12345 [--connections N] [--depth D]
 *                 [--duration SECONDS] [--warmup SECONDS]
 *                 [--mix public:P,missing:M,token:T] [--token STR]...
 *                 [--tokens-file FILE] [--perm PERM] [--rl-user POLICY]
 *                 [--rl-ip POLICY] [--agent-pid PID] [--json]
 *
 * Each connection does the HELLO handshake, then keeps D NOTIFY frames in
 * flight (pipelining) and sends a new one for every ACK. Latency is from
 * write to ACK, in a 1 µs histogram. With --agent-pid the agent's CPU time
 * (from /proc) over the measured interval is divided by the decisions.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "addr.h"
#include "spop.h"
#include "version.h"

#define HIST_US     200000     /* 1 µs buckets up to 200 ms */
#define MAX_TOKENS  100000
#define RBUF        (256 * 1024)

enum kind { K_PUBLIC = 0, K_MISSING = 1, K_TOKEN = 2 };

struct bconn {
	ev_io rio;
	ev_io wio;
	int fd;
	int ready;
	uint64_t next_sid;
	unsigned inflight;
	double *sent_at;           /* by stream id modulo depth*4 */
	size_t rlen;
	uint8_t rbuf[RBUF];
	uint8_t *wbuf;
	size_t wlen, woff, wcap;
};

static struct {
	struct sockaddr_in addr;
	int connections, depth;
	double duration, warmup;
	int mix[3];
	char **tokens;
	int ntokens;
	unsigned token_i;
	const char *perm, *rl_user, *rl_ip;
	int agent_pid, json;
	uint32_t max_frame;
	unsigned rng;
} opt = { .connections = 4, .depth = 1, .duration = 5, .warmup = 1,
          .mix = { 0, 0, 100 }, .perm = "", .rl_user = "", .rl_ip = "",
          .max_frame = 16380, .rng = 12345 };

static struct {
	int measuring;
	uint64_t done, errors, by_status[5];
	uint64_t hist[HIST_US + 1];
	double t_start, t_end;
	double cpu_start;
} st;

static struct ev_loop *loop;
static ev_timer phase_w;
static struct bconn *conns;

static double now(void)
{
	return ev_time();
}

static double agent_cpu_seconds(void)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, stt = 0;
	FILE *f;
	int i;

	if (!opt.agent_pid)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", opt.agent_pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return 0;
	}
	fclose(f);
	/* fields after the ")" of comm: state is field 3; utime 14, stime 15 */
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	p += 2;
	for (i = 3; i < 14 && p; i++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p)
		return 0;
	ut = strtoul(p, &p, 10);
	stt = strtoul(p, NULL, 10);
	return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

static int wput(struct bconn *c, const uint8_t *p, size_t n)
{
	if (n > c->wcap - c->wlen) {
		size_t cap = c->wcap ? c->wcap * 2 : 65536;
		uint8_t *nb;

		while (cap - c->wlen < n)
			cap *= 2;
		nb = realloc(c->wbuf, cap);
		if (!nb)
			return -1;
		c->wbuf = nb;
		c->wcap = cap;
	}
	memcpy(c->wbuf + c->wlen, p, n);
	c->wlen += n;
	return 0;
}

static void flush(struct bconn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN) {
				ev_io_start(loop, &c->wio);
				return;
			}
			if (errno == EINTR)
				continue;
			fprintf(stderr, "spogate-bench: send: %s\n", strerror(errno));
			exit(1);
		}
		c->woff += (size_t)n;
	}
	c->woff = c->wlen = 0;
	ev_io_stop(loop, &c->wio);
}

static enum kind pick_kind(void)
{
	unsigned r = rand_r(&opt.rng) % 100;

	if ((int)r < opt.mix[0])
		return K_PUBLIC;
	if ((int)r < opt.mix[0] + opt.mix[1])
		return K_MISSING;
	return K_TOKEN;
}

static void send_notify(struct bconn *c)
{
	uint8_t buf[16384];
	struct spop_wr w;
	struct spop_data d;
	uint8_t ip[4] = { 10, 1, 2, 3 };
	enum kind k = pick_kind();
	uint64_t sid = c->next_sid++;
	long n;

	spop_wr_init(&w, buf, sizeof(buf));
	spop_wr_frame_begin(&w, SPOP_FRM_NOTIFY, SPOP_FLAG_FIN, sid, 1);
	spop_wr_str(&w, "gw-check", 8);
	spop_wr_u8(&w, 9);
	d = spop_cstr(k == K_PUBLIC ? "public" : "private");
	spop_wr_kv(&w, "route", &d);
	d = spop_int32(k != K_PUBLIC);
	spop_wr_kv(&w, "auth", &d);
	d = spop_cstr(k == K_PUBLIC ? "" : opt.perm);
	spop_wr_kv(&w, "perm", &d);
	if (k == K_TOKEN && opt.ntokens) {
		char hdr[8300];
		int hl = snprintf(hdr, sizeof(hdr), "Bearer %s",
		                  opt.tokens[opt.token_i++ % (unsigned)opt.ntokens]);

		d = spop_strn(hdr, hl < (int)sizeof(hdr) ? (size_t)hl : sizeof(hdr) - 1);
		spop_wr_kv(&w, "token", &d);
	} else {
		d = spop_null();
		spop_wr_kv(&w, "token", &d);
	}
	d.type = SPOP_DATA_IPV4;
	ip[3] = (uint8_t)(sid & 0xff);
	memcpy(d.u.ipv4, ip, 4);
	spop_wr_kv(&w, "ip", &d);
	d = spop_cstr("GET");
	spop_wr_kv(&w, "method", &d);
	d = spop_cstr("/api/v1/users/42");
	spop_wr_kv(&w, "path", &d);
	d = spop_cstr(opt.rl_user);
	spop_wr_kv(&w, "rl_user", &d);
	d = spop_cstr(opt.rl_ip);
	spop_wr_kv(&w, "rl_ip", &d);
	n = spop_wr_frame_end(&w);
	if (n < 0 || (uint32_t)(n - 4) > opt.max_frame) {
		fprintf(stderr, "spogate-bench: NOTIFY does not fit the frame size\n");
		exit(1);
	}
	c->sent_at[sid % ((uint64_t)opt.depth * 4)] = now();
	c->inflight++;
	wput(c, buf, (size_t)n);
}

static void on_frame(struct bconn *c, const uint8_t *p, size_t len)
{
	struct spop_frame f;
	struct spop_rd rd;
	struct spop_str name;
	struct spop_data val;
	uint8_t act, scope;
	int status = -1;

	if (spop_frame_decode(p, len, &f) != 0) {
		fprintf(stderr, "spogate-bench: bad frame\n");
		exit(1);
	}
	if (f.type == SPOP_FRM_AGENT_HELLO) {
		struct spop_str n2;
		struct spop_data v2;

		spop_rd_init(&rd, f.payload, f.payload_len);
		while (spop_kv_next(&rd, &n2, &v2) == 1)
			if (n2.len == 14 && memcmp(n2.ptr, "max-frame-size", 14) == 0)
				opt.max_frame = v2.u.uint32;
		c->ready = 1;
		while (c->inflight < (unsigned)opt.depth)
			send_notify(c);
		return;
	}
	if (f.type == SPOP_FRM_AGENT_DISCONNECT) {
		struct spop_disconnect d;

		spop_disconnect_decode(f.payload, f.payload_len, &d);
		fprintf(stderr, "spogate-bench: agent disconnected: status %u %.*s\n", d.status,
		        (int)d.message.len, d.message.ptr);
		exit(1);
	}
	if (f.type != SPOP_FRM_ACK)
		return;
	spop_rd_init(&rd, f.payload, f.payload_len);
	while (spop_action_next(&rd, &act, &scope, &name, &val) == 1)
		if (name.len == 6 && memcmp(name.ptr, "status", 6) == 0 && val.type == SPOP_DATA_INT32)
			status = val.u.sint32;
	c->inflight--;
	if (st.measuring) {
		double lat = now() - c->sent_at[f.stream_id % ((uint64_t)opt.depth * 4)];
		long us = (long)(lat * 1e6);

		st.hist[us < 0 ? 0 : us > HIST_US ? HIST_US : us]++;
		st.done++;
		switch (status) {
		case 0:   st.by_status[0]++; break;
		case 401: st.by_status[1]++; break;
		case 403: st.by_status[2]++; break;
		case 429: st.by_status[3]++; break;
		default:  st.by_status[4]++; break;
		}
	}
	send_notify(c);
}

static void on_read(struct ev_loop *l, ev_io *w, int revents)
{
	struct bconn *c = w->data;
	ssize_t n;
	size_t off = 0;

	(void)l;
	(void)revents;
	n = recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, 0);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		fprintf(stderr, "spogate-bench: connection closed by the agent\n");
		exit(1);
	}
	c->rlen += (size_t)n;
	while (c->rlen - off >= 4) {
		uint32_t fl = spop_frame_len(c->rbuf + off);

		if (fl > sizeof(c->rbuf) - 4) {
			fprintf(stderr, "spogate-bench: frame too big\n");
			exit(1);
		}
		if (c->rlen - off < 4 + (size_t)fl)
			break;
		on_frame(c, c->rbuf + off + 4, fl);
		off += 4 + fl;
	}
	memmove(c->rbuf, c->rbuf + off, c->rlen - off);
	c->rlen -= off;
	flush(c);
}

static void on_write(struct ev_loop *l, ev_io *w, int revents)
{
	(void)l;
	(void)revents;
	flush(w->data);
}

static double pct(double p)
{
	uint64_t want = (uint64_t)((double)st.done * p), acc = 0;
	long i;

	for (i = 0; i <= HIST_US; i++) {
		acc += st.hist[i];
		if (acc > want)
			return (double)i;
	}
	return (double)HIST_US;
}

static void report(void)
{
	double secs = st.t_end - st.t_start;
	double cpu = agent_cpu_seconds() - st.cpu_start;
	double rate = secs > 0 ? (double)st.done / secs : 0;
	double cpu_us = st.done && opt.agent_pid ? cpu * 1e6 / (double)st.done : -1;

	if (opt.json) {
		printf("{\"connections\":%d,\"depth\":%d,\"seconds\":%.3f,\"decisions\":%lu,"
		       "\"decisions_per_s\":%.0f,\"p50_us\":%.0f,\"p99_us\":%.0f,\"p999_us\":%.0f,"
		       "\"agent_cpu_us_per_decision\":%.2f,\"allow\":%lu,\"s401\":%lu,"
		       "\"s403\":%lu,\"s429\":%lu,\"other\":%lu}\n",
		       opt.connections, opt.depth, secs, (unsigned long)st.done, rate, pct(.5),
		       pct(.99), pct(.999), cpu_us, (unsigned long)st.by_status[0],
		       (unsigned long)st.by_status[1], (unsigned long)st.by_status[2],
		       (unsigned long)st.by_status[3], (unsigned long)st.by_status[4]);
	} else {
		printf("connections %d depth %d: %.0f decisions/s, p50 %.0f us, p99 %.0f us, "
		       "p999 %.0f us", opt.connections, opt.depth, rate, pct(.5), pct(.99), pct(.999));
		if (cpu_us >= 0)
			printf(", agent CPU %.2f us/decision", cpu_us);
		printf(" (allow %lu, 401 %lu, 403 %lu, 429 %lu, other %lu)\n",
		       (unsigned long)st.by_status[0], (unsigned long)st.by_status[1],
		       (unsigned long)st.by_status[2], (unsigned long)st.by_status[3],
		       (unsigned long)st.by_status[4]);
	}
}

static void on_phase(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)revents;
	if (!st.measuring) {
		st.measuring = 1;
		st.t_start = now();
		st.cpu_start = agent_cpu_seconds();
		ev_timer_set(t, opt.duration, 0.);
		ev_timer_start(l, t);
		return;
	}
	st.t_end = now();
	report();
	ev_break(l, EVBREAK_ALL);
}

static void start_conn(struct bconn *c)
{
	uint8_t buf[256];
	int one = 1;
	long n;

	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&opt.addr, sizeof(opt.addr)) < 0) {
		fprintf(stderr, "spogate-bench: connect: %s\n", strerror(errno));
		exit(1);
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0)
		exit(1);
	c->sent_at = calloc((size_t)opt.depth * 4, sizeof(double));
	ev_io_init(&c->rio, on_read, c->fd, EV_READ);
	ev_io_init(&c->wio, on_write, c->fd, EV_WRITE);
	c->rio.data = c->wio.data = c;
	ev_io_start(loop, &c->rio);
	n = spop_haproxy_hello(buf, sizeof(buf), SPOP_FLAG_FIN, "2.0", 16380, "pipelining,async",
	                       0, "spogate-bench");
	wput(c, buf, (size_t)n);
	flush(c);
}

static int load_tokens(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[16384];

	if (!f) {
		fprintf(stderr, "spogate-bench: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) && opt.ntokens < MAX_TOKENS) {
		size_t n = strcspn(line, "\r\n");

		line[n] = '\0';
		if (n == 0)
			continue;
		opt.tokens[opt.ntokens++] = strdup(line);
	}
	fclose(f);
	return 0;
}

static int parse_mix(const char *s)
{
	int total = 0;

	opt.mix[0] = opt.mix[1] = opt.mix[2] = 0;
	while (*s) {
		const char *colon = strchr(s, ':'), *comma;
		char *end;
		long v;

		if (!colon)
			return -1;
		v = strtol(colon + 1, &end, 10);
		if (end == colon + 1 || v < 0 || v > 100 || (*end && *end != ','))
			return -1;
		comma = end;
		if (colon - s == 6 && strncmp(s, "public", 6) == 0)
			opt.mix[0] = (int)v;
		else if (colon - s == 7 && strncmp(s, "missing", 7) == 0)
			opt.mix[1] = (int)v;
		else if (colon - s == 5 && strncmp(s, "token", 5) == 0)
			opt.mix[2] = (int)v;
		else
			return -1;
		total += (int)v;
		s = *comma ? comma + 1 : comma;
	}
	return total == 100 ? 0 : -1;
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: spogate-bench --target host:port [--connections N] [--depth D]\n"
	        "         [--duration S] [--warmup S] [--mix public:P,missing:M,token:T]\n"
	        "         [--token T]... [--tokens-file F] [--perm P] [--rl-user POLICY]\n"
	        "         [--rl-ip POLICY] [--agent-pid PID] [--json]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "target", required_argument, NULL, 'a' },
		{ "connections", required_argument, NULL, 'c' },
		{ "depth", required_argument, NULL, 'd' },
		{ "duration", required_argument, NULL, 'D' },
		{ "warmup", required_argument, NULL, 'W' },
		{ "mix", required_argument, NULL, 'm' },
		{ "token", required_argument, NULL, 't' },
		{ "tokens-file", required_argument, NULL, 'f' },
		{ "perm", required_argument, NULL, 'p' },
		{ "rl-user", required_argument, NULL, 'u' },
		{ "rl-ip", required_argument, NULL, 'i' },
		{ "agent-pid", required_argument, NULL, 'P' },
		{ "json", no_argument, NULL, 'j' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	char host[256];
	int port = 0, o, i;

	opt.tokens = calloc(MAX_TOKENS, sizeof(char *));
	while ((o = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (o) {
		case 'a':
			if (addr_split(optarg, host, sizeof(host), &port) < 0 ||
			    inet_pton(AF_INET, host, &opt.addr.sin_addr) != 1)
				usage();
			opt.addr.sin_family = AF_INET;
			opt.addr.sin_port = htons((uint16_t)port);
			break;
		case 'V': version_print(stdout, "spogate-bench"); return 0;
		case 'c': opt.connections = (int)strtol(optarg, NULL, 10); break;
		case 'd': opt.depth = (int)strtol(optarg, NULL, 10); break;
		case 'D': opt.duration = strtod(optarg, NULL); break;
		case 'W': opt.warmup = strtod(optarg, NULL); break;
		case 'm': if (parse_mix(optarg) < 0) usage(); break;
		case 't':
			if (opt.ntokens < MAX_TOKENS)
				opt.tokens[opt.ntokens++] = strdup(optarg);
			break;
		case 'f': if (load_tokens(optarg) < 0) return 1; break;
		case 'p': opt.perm = optarg; break;
		case 'u': opt.rl_user = optarg; break;
		case 'i': opt.rl_ip = optarg; break;
		case 'P': opt.agent_pid = (int)strtol(optarg, NULL, 10); break;
		case 'j': opt.json = 1; break;
		default: usage();
		}
	}
	if (!port || opt.connections < 1 || opt.connections > 1000 || opt.depth < 1 ||
	    opt.depth > 1024 || opt.duration <= 0 || opt.warmup < 0)
		usage();
	if (opt.mix[2] > 0 && opt.ntokens == 0)
		opt.tokens[opt.ntokens++] = strdup("bench.token.value");
	signal(SIGPIPE, SIG_IGN);
	loop = ev_default_loop(0);
	conns = calloc((size_t)opt.connections, sizeof(*conns));
	for (i = 0; i < opt.connections; i++)
		start_conn(&conns[i]);
	ev_timer_init(&phase_w, on_phase, opt.warmup > 0 ? opt.warmup : 0.001, 0.);
	ev_timer_start(loop, &phase_w);
	ev_run(loop, 0);
	return 0;
}
