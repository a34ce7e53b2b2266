/*
 * The agent's SPOP handling over a real socket, frame by frame: the cases
 * HAProxy never sends but a broken or hostile peer might. Each bad input
 * must end in an AGENT-DISCONNECT with the status of SPOE.txt section 3.5.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "gwmsg.h"
#include "harness.h"
#include "jwt_verify.h"
#include "spop.h"
#include "test_auth_util.h"

static struct h_stack S;
static struct h_proc *agent;

static int setup(void **state)
{
	(void)state;
	h_stack_init(&S, "spop-protocol");
	agent = h_start_agent(&S, h_write(&S, "agent.json",
	                      "{\"max_frame_size\": 16380, \"debug\": {\"delay_ms\": 20}}"),
	                      (const char *const[]){ "--threads", "2", NULL });
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	assert_true(h_alive(agent));     /* nothing above crashed it */
	/* drains and exits 0; under ASan a leak would make this fail */
	assert_int_equal(h_stop(agent, 15000), 0);
	h_stack_stop(&S);
	return 0;
}

static int dial(void)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)S.agent_port);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
	assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads exactly n bytes; returns 0, or -1 on EOF/timeout. */
static int read_n(int fd, uint8_t *p, size_t n, int timeout_ms)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		ssize_t r;

		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -1;
		r = read(fd, p + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* Reads one frame into buf; returns its length (without prefix) or -1. */
static long read_frame(int fd, uint8_t *buf, size_t cap, struct spop_frame *f)
{
	uint8_t len[4];
	uint32_t n;

	if (read_n(fd, len, 4, 3000) < 0)
		return -1;
	n = spop_frame_len(len);
	assert_true(n <= cap);
	if (read_n(fd, buf, n, 3000) < 0)
		return -1;
	assert_int_equal(spop_frame_decode(buf, n, f), 0);
	return n;
}

static int closed_by_peer(int fd)
{
	uint8_t b;
	struct pollfd pfd = { fd, POLLIN, 0 };

	if (poll(&pfd, 1, 3000) <= 0)
		return 0;
	return read(fd, &b, 1) == 0;
}

static long hello(uint8_t *buf, size_t cap, const char *vsn, long max_frame,
                  const char *caps, int healthcheck, uint32_t flags)
{
	return spop_haproxy_hello(buf, cap, flags, vsn, max_frame, caps, healthcheck, NULL);
}

static long notify(uint8_t *buf, size_t cap, uint32_t flags, uint64_t sid, uint64_t fid,
                   int auth, const char *token)
{
	struct spop_wr w;
	struct spop_data d;

	spop_wr_init(&w, buf, cap);
	spop_wr_frame_begin(&w, SPOP_FRM_NOTIFY, flags, sid, fid);
	spop_wr_str(&w, "gw-check", 8);
	spop_wr_u8(&w, 3);
	d = spop_cstr("r");
	spop_wr_kv(&w, "route", &d);
	d = spop_bool(auth);
	spop_wr_kv(&w, "auth", &d);
	d = token ? spop_cstr(token) : spop_null();
	spop_wr_kv(&w, "token", &d);
	return spop_wr_frame_end(&w);
}

/* Expects an AGENT-DISCONNECT with status, then the close. */
static void expect_disconnect(int fd, uint32_t status)
{
	uint8_t buf[1024];
	struct spop_frame f;
	struct spop_disconnect d;

	assert_true(read_frame(fd, buf, sizeof(buf), &f) > 0);
	assert_int_equal(f.type, SPOP_FRM_AGENT_DISCONNECT);
	assert_int_equal(spop_disconnect_decode(f.payload, f.payload_len, &d), 0);
	assert_int_equal(d.status, status);
	assert_true(d.message.len > 0);
	assert_true(closed_by_peer(fd));
}

/* Handshakes with HAProxy's max-frame-size; returns the agent's value. */
static uint32_t handshake(int fd, long max_frame)
{
	uint8_t buf[1024];
	struct spop_frame f;
	struct spop_rd rd;
	struct spop_str name;
	struct spop_data val;
	uint32_t mfs = 0;
	int has_version = 0, caps_ok = 0;
	long n = hello(buf, sizeof(buf), "2.0", max_frame, "pipelining,async", 0, SPOP_FLAG_FIN);

	send_all(fd, buf, (size_t)n);
	assert_true(read_frame(fd, buf, sizeof(buf), &f) > 0);
	assert_int_equal(f.type, SPOP_FRM_AGENT_HELLO);
	spop_rd_init(&rd, f.payload, f.payload_len);
	while (spop_kv_next(&rd, &name, &val) == 1) {
		if (name.len == 7 && memcmp(name.ptr, "version", 7) == 0)
			has_version = val.u.str.len == 3 && memcmp(val.u.str.ptr, "2.0", 3) == 0;
		else if (name.len == 14 && memcmp(name.ptr, "max-frame-size", 14) == 0)
			mfs = val.u.uint32;
		else if (name.len == 12 && memcmp(name.ptr, "capabilities", 12) == 0)
			caps_ok = spop_list_has(val.u.str, "pipelining") &&
			          spop_list_has(val.u.str, "async") &&
			          !spop_list_has(val.u.str, "fragmentation");
	}
	assert_true(has_version);
	assert_true(caps_ok);
	return mfs;
}

static void test_unsupported_version_is_status_8(void **state)
{
	uint8_t buf[512];
	int fd = dial();
	long n = hello(buf, sizeof(buf), "1.0", 16380, "pipelining", 0, SPOP_FLAG_FIN);

	(void)state;
	send_all(fd, buf, (size_t)n);
	expect_disconnect(fd, SPOP_ST_BAD_VSN);
	close(fd);
}

static void test_tiny_max_frame_size_is_status_9(void **state)
{
	uint8_t buf[512];
	int fd = dial();
	long n = hello(buf, sizeof(buf), "2.0", 100, "pipelining", 0, SPOP_FLAG_FIN);

	(void)state;
	send_all(fd, buf, (size_t)n);
	expect_disconnect(fd, SPOP_ST_BAD_FRAME_SIZE);
	close(fd);
}

static void test_missing_hello_items_have_their_status(void **state)
{
	uint8_t buf[512];
	int fd;
	long n;

	(void)state;
	fd = dial();
	n = hello(buf, sizeof(buf), NULL, 16380, "pipelining", 0, SPOP_FLAG_FIN);
	send_all(fd, buf, (size_t)n);
	expect_disconnect(fd, SPOP_ST_NO_VSN);
	close(fd);

	fd = dial();
	n = hello(buf, sizeof(buf), "2.0", -1, "pipelining", 0, SPOP_FLAG_FIN);
	send_all(fd, buf, (size_t)n);
	expect_disconnect(fd, SPOP_ST_NO_FRAME_SIZE);
	close(fd);

	fd = dial();
	n = hello(buf, sizeof(buf), "2.0", 16380, NULL, 0, SPOP_FLAG_FIN);
	send_all(fd, buf, (size_t)n);
	expect_disconnect(fd, SPOP_ST_NO_CAP);
	close(fd);
}

static void test_max_frame_size_is_the_minimum(void **state)
{
	int fd;

	(void)state;
	fd = dial();
	assert_int_equal(handshake(fd, 65535), 16380);
	close(fd);
	fd = dial();
	assert_int_equal(handshake(fd, 1000), 1000);
	close(fd);
}

static void test_fragmented_notify_is_status_10(void **state)
{
	uint8_t buf[512];
	int fd = dial();
	long n;

	(void)state;
	handshake(fd, 16380);
	n = notify(buf, sizeof(buf), 0 /* no FIN */, 1, 1, 1, NULL);
	send_all(fd, buf, (size_t)n);
	expect_disconnect(fd, SPOP_ST_FRAG_NOT_SUPP);
	close(fd);
}

static void test_unset_frame_is_status_10(void **state)
{
	uint8_t buf[64];
	struct spop_wr w;
	int fd = dial();
	long n;

	(void)state;
	handshake(fd, 16380);
	spop_wr_init(&w, buf, sizeof(buf));
	spop_wr_frame_begin(&w, SPOP_FRM_UNSET, SPOP_FLAG_FIN, 1, 1);
	spop_wr_u8(&w, 0);
	n = spop_wr_frame_end(&w);
	send_all(fd, buf, (size_t)n);
	expect_disconnect(fd, SPOP_ST_FRAG_NOT_SUPP);
	close(fd);
}

static void test_frame_above_negotiated_size_is_status_3(void **state)
{
	uint8_t len[4] = { 0, 0, 0x07, 0xd0 };   /* 2000 > 1000 */
	int fd = dial();

	(void)state;
	assert_int_equal(handshake(fd, 1000), 1000);
	send_all(fd, len, 4);
	expect_disconnect(fd, SPOP_ST_TOO_BIG);
	close(fd);

	/* before the handshake our own maximum applies */
	fd = dial();
	len[0] = 0x01;   /* 16.8 MB */
	send_all(fd, len, 4);
	expect_disconnect(fd, SPOP_ST_TOO_BIG);
	close(fd);
}

static void test_garbage_is_status_4(void **state)
{
	uint8_t junk[] = { 0, 0, 0, 3, 0x42, 0x00, 0x00 };
	uint8_t buf[512];
	int fd;
	long n;

	(void)state;
	fd = dial();
	send_all(fd, junk, sizeof(junk));
	expect_disconnect(fd, SPOP_ST_INVALID);
	close(fd);

	/* a NOTIFY whose KV list lies about its string length */
	fd = dial();
	handshake(fd, 16380);
	n = notify(buf, sizeof(buf), SPOP_FLAG_FIN, 1, 1, 1, "Bearer x");
	buf[n - 9] = 0x7f;   /* the token's length byte, now far too long */
	send_all(fd, buf, (size_t)n);
	expect_disconnect(fd, SPOP_ST_INVALID);
	close(fd);

	/* a second HELLO after the handshake */
	fd = dial();
	handshake(fd, 16380);
	n = hello(buf, sizeof(buf), "2.0", 16380, "pipelining", 0, SPOP_FLAG_FIN);
	send_all(fd, buf, (size_t)n);
	expect_disconnect(fd, SPOP_ST_INVALID);
	close(fd);
}

static void test_healthcheck_hello_is_answered_and_closed(void **state)
{
	uint8_t buf[512];
	struct spop_frame f;
	int fd = dial();
	long n = hello(buf, sizeof(buf), "2.0", 16380, "", 1, SPOP_FLAG_FIN);

	(void)state;
	send_all(fd, buf, (size_t)n);
	assert_true(read_frame(fd, buf, sizeof(buf), &f) > 0);
	assert_int_equal(f.type, SPOP_FRM_AGENT_HELLO);
	assert_true(closed_by_peer(fd));
	close(fd);
}

/* A HAPROXY-DISCONNECT with status 0. Returns its length. */
static long haproxy_disconnect(uint8_t *buf, size_t cap, const char *msg)
{
	struct spop_wr w;
	struct spop_data d;

	spop_wr_init(&w, buf, cap);
	spop_wr_frame_begin(&w, SPOP_FRM_HAPROXY_DISCONNECT, SPOP_FLAG_FIN, 0, 0);
	d = spop_uint32(0);
	spop_wr_kv(&w, "status-code", &d);
	d = spop_cstr(msg);
	spop_wr_kv(&w, "message", &d);
	return spop_wr_frame_end(&w);
}

static void test_haproxy_disconnect_is_answered(void **state)
{
	uint8_t buf[512];
	int fd = dial();
	long n;

	(void)state;
	handshake(fd, 16380);
	n = haproxy_disconnect(buf, sizeof(buf), "bye");
	send_all(fd, buf, (size_t)n);
	expect_disconnect(fd, SPOP_ST_NORMAL);
	close(fd);
}

/* 200 NOTIFYs in one write; every one answered once with its own ids and
 * the right verdict, in whatever order they complete. */
static void test_pipelined_notifies_all_acked(void **state)
{
	enum { N = 200 };
	static uint8_t out[N * 64];
	uint8_t buf[1024];
	int seen[N] = { 0 }, fd = dial(), i, in_order = 1;
	size_t off = 0;

	(void)state;
	handshake(fd, 16380);
	for (i = 0; i < N; i++) {
		long n = notify(out + off, sizeof(out) - off, SPOP_FLAG_FIN, 1000 + (uint64_t)i,
		                1, 1, i % 2 ? "Bearer t" : NULL);

		assert_true(n > 0);
		off += (size_t)n;
	}
	send_all(fd, out, off);
	for (i = 0; i < N; i++) {
		struct spop_frame f;
		struct spop_rd rd;
		struct spop_str name;
		struct spop_data val;
		uint8_t act, scope;
		int idx, status = -1;

		assert_true(read_frame(fd, buf, sizeof(buf), &f) > 0);
		assert_int_equal(f.type, SPOP_FRM_ACK);
		idx = (int)f.stream_id - 1000;
		assert_true(idx >= 0 && idx < N);
		assert_int_equal(seen[idx], 0);
		seen[idx] = 1;
		if (idx != i)
			in_order = 0;
		spop_rd_init(&rd, f.payload, f.payload_len);
		while (spop_action_next(&rd, &act, &scope, &name, &val) == 1)
			if (name.len == 6 && memcmp(name.ptr, "status", 6) == 0)
				status = val.u.sint32;
		assert_int_equal(status, idx % 2 ? 0 : 401);
	}
	/* the agent holds decisions 1..20 ms at random: completion order
	 * differs from arrival order */
	assert_false(in_order);
	close(fd);
}

/* Sends HAPROXY-HELLO offering caps; returns the capabilities the
 * AGENT-HELLO answered (into out, NUL-terminated). */
static void hello_answer_caps(int fd, const char *caps, int healthcheck, char *out, size_t cap)
{
	uint8_t buf[1024];
	struct spop_frame f;
	struct spop_rd rd;
	struct spop_str name;
	struct spop_data val;
	long n = hello(buf, sizeof(buf), "2.0", 16380, caps, healthcheck, SPOP_FLAG_FIN);

	out[0] = '\0';
	send_all(fd, buf, (size_t)n);
	assert_true(read_frame(fd, buf, sizeof(buf), &f) > 0);
	assert_int_equal(f.type, SPOP_FRM_AGENT_HELLO);
	spop_rd_init(&rd, f.payload, f.payload_len);
	while (spop_kv_next(&rd, &name, &val) == 1)
		if (name.len == 12 && memcmp(name.ptr, "capabilities", 12) == 0) {
			assert_true(val.u.str.len < cap);
			memcpy(out, val.u.str.ptr, val.u.str.len);
			out[val.u.str.len] = '\0';
		}
}

/* HAProxy 3.1+ offers "pipelining" alone (no async), a health check
 * nothing: the agent answers what was offered and nothing more. */
static void test_agent_answers_only_the_offered_capabilities(void **state)
{
	char caps[64];
	int fd;

	(void)state;
	fd = dial();
	hello_answer_caps(fd, "pipelining", 0, caps, sizeof(caps));
	assert_string_equal(caps, "pipelining");
	close(fd);
	fd = dial();
	hello_answer_caps(fd, "pipelining,async", 0, caps, sizeof(caps));
	assert_string_equal(caps, "pipelining,async");
	close(fd);
	fd = dial();
	hello_answer_caps(fd, "", 1, caps, sizeof(caps));
	assert_string_equal(caps, "");
	close(fd);
}

/* Closes fd with a TCP RST (SO_LINGER 0), as HAProxy 3.x's mux may do
 * instead of sending HAPROXY-DISCONNECT. */
static void reset(int fd)
{
	struct linger l = { 1, 0 };

	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)), 0);
	close(fd);
}

/* What HAProxy 3.1+'s SPOP mux sends: HELLO offering "pipelining" only,
 * then each NOTIFY on its own stream (stream-id an odd per-connection
 * counter 1, 3, 5, ..., frame-id always 1), at most 20 streams in flight
 * on a connection, each ACK matched strictly by (stream-id, frame-id);
 * and at the end a TCP RST with decisions in flight instead of a
 * HAPROXY-DISCONNECT. The agent must ACK every stream exactly once with
 * its own ids, in whatever order, and shrug off the reset. */
static void test_haproxy_31_mux_traffic_is_answered(void **state)
{
	enum { LIMIT = 20, ROUNDS = 5 };
	uint8_t out[LIMIT * 64], buf[1024];
	char caps[64];
	int fd = dial(), r, i;

	(void)state;
	hello_answer_caps(fd, "pipelining", 0, caps, sizeof(caps));
	assert_string_equal(caps, "pipelining");
	for (r = 0; r < ROUNDS; r++) {
		int acked[LIMIT] = { 0 };
		size_t off = 0;

		/* a full window of 20 streams; each new stream on the connection
		 * takes the next odd id */
		for (i = 0; i < LIMIT; i++) {
			uint64_t sid = (uint64_t)(2 * (r * LIMIT + i) + 1);
			long n = notify(out + off, sizeof(out) - off, SPOP_FLAG_FIN, sid, 1, 1,
			                i % 3 ? "Bearer t" : NULL);

			assert_true(n > 0);
			off += (size_t)n;
			/* the mux sends each stream's NOTIFY as it is made: several writes */
			if (i % 7 == 6) {
				send_all(fd, out, off);
				off = 0;
			}
		}
		send_all(fd, out, off);
		for (i = 0; i < LIMIT; i++) {
			struct spop_frame f;
			int idx;

			assert_true(read_frame(fd, buf, sizeof(buf), &f) > 0);
			assert_int_equal(f.type, SPOP_FRM_ACK);
			assert_true(f.flags & SPOP_FLAG_FIN);
			assert_int_equal(f.frame_id, 1);
			assert_true(f.stream_id % 2 == 1);
			idx = (int)((f.stream_id - 1) / 2) - r * LIMIT;
			assert_true(idx >= 0 && idx < LIMIT);
			assert_int_equal(acked[idx], 0);
			acked[idx] = 1;
		}
	}
	/* a last window, then a reset while the agent holds the decisions */
	{
		size_t off = 0;

		for (i = 0; i < LIMIT; i++) {
			long n = notify(out + off, sizeof(out) - off, SPOP_FLAG_FIN,
			                (uint64_t)(2 * (ROUNDS * LIMIT + i) + 1), 1, 1, "Bearer t");

			off += (size_t)n;
		}
		send_all(fd, out, off);
		reset(fd);
	}
	/* the agent is still there and serves the next connection */
	usleep(100000);
	assert_true(h_alive(agent));
	fd = dial();
	hello_answer_caps(fd, "pipelining", 0, caps, sizeof(caps));
	{
		struct spop_frame f;
		long n = notify(out, sizeof(out), SPOP_FLAG_FIN, 1, 1, 1, "Bearer t");

		send_all(fd, out, (size_t)n);
		assert_true(read_frame(fd, buf, sizeof(buf), &f) > 0);
		assert_int_equal(f.type, SPOP_FRM_ACK);
		assert_true(f.stream_id == 1 && f.frame_id == 1);
	}
	close(fd);
}

/* Closing with decisions in flight must neither crash nor wedge the agent. */
static void test_close_mid_decision_is_harmless(void **state)
{
	uint8_t out[64 * 64];
	size_t off = 0;
	int round, i;

	(void)state;
	for (round = 0; round < 20; round++) {
		int fd = dial();

		handshake(fd, 16380);
		for (i = 0, off = 0; i < 50; i++)
			off += (size_t)notify(out + off, sizeof(out) - off, SPOP_FLAG_FIN,
			                      (uint64_t)i + 1, 1, 1, NULL);
		send_all(fd, out, off);
		close(fd);
	}
	usleep(100000);
	assert_true(h_alive(agent));
	{
		int fd = dial();

		assert_int_equal(handshake(fd, 16380), 16380);
		close(fd);
	}
}

/* ---- limits: a second agent with short timeouts and few fds ---- */

static int setup_limits(void **state)
{
	static char listen[64], metrics[64];

	(void)state;
	h_stack_init(&S, "spop-limits");
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", S.agent_port);
	snprintf(metrics, sizeof(metrics), "127.0.0.1:%d", S.metrics_port);
	/* prlimit execs the agent, so the process is the agent itself. */
	agent = h_spawn(&S, "agent", (char *const[]){
		(char *)"/usr/bin/prlimit", (char *)"--nofile=96:96", (char *)h_bin("spogate-agent"),
		(char *)"-c", (char *)h_write(&S, "agent.json",
		"{\"handshake_timeout_ms\": 300, \"idle_timeout_ms\": 1000,"
		" \"debug\": {\"delay_ms\": 200}}"),
		(char *)"--listen", listen, (char *)"--metrics", metrics,
		(char *)"--threads", (char *)"1", NULL });
	if (h_wait_port(S.agent_port, 5000) < 0 || h_wait_port(S.metrics_port, 5000) < 0)
		return -1;
	return 0;
}

static int agent_fds(void)
{
	char path[64];
	char *out = NULL;
	int n;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)agent->pid);
	assert_int_equal(h_run(&out, "ls %s | wc -l", path), 0);
	n = (int)strtol(out, NULL, 10);
	free(out);
	return n;
}

/* utime + stime of the agent, in clock ticks. */
static long agent_cpu_ticks(void)
{
	char path[64], buf[1024], *p;
	long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)agent->pid);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	p = strrchr(buf, ')');
	assert_non_null(p);
	/* fields 14 and 15 (utime, stime); p points at the end of field 2 */
	assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld",
	                        &ut, &st), 2);
	return ut + st;
}

/* A half-sent HELLO used to hold its connection (and fd) forever. */
static void test_half_sent_hellos_are_closed_after_the_handshake_timeout(void **state)
{
	enum { N = 40 };
	uint8_t buf[512];
	int fds[N], i, before, during, after;
	long n = hello(buf, sizeof(buf), "2.0", 16380, "pipelining", 0, SPOP_FLAG_FIN);

	(void)state;
	before = agent_fds();
	for (i = 0; i < N; i++) {
		fds[i] = dial();
		send_all(fds[i], buf, (size_t)n / 2);
	}
	during = agent_fds();
	for (i = 0; i < N; i++) {
		assert_true(closed_by_peer(fds[i]));
		close(fds[i]);
	}
	after = agent_fds();
	printf("# agent fds: %d before, %d with %d half-sent HELLOs, %d after the "
	       "handshake timeout\n", before, during, N, after);
	/* during is only printed: on a loaded machine some connections may
	 * already have timed out by the time it is counted. */
	assert_true(after <= before);
	assert_true(h_metric(S.metrics_port,
	                     "spogate_connections_timed_out_total{phase=\"handshake\"}") >= N);
}

static void test_idle_connection_is_closed_with_status_2(void **state)
{
	int fd = dial();

	(void)state;
	handshake(fd, 16380);
	expect_disconnect(fd, SPOP_ST_TIMEOUT);
	close(fd);
	assert_true(h_metric(S.metrics_port,
	                     "spogate_connections_timed_out_total{phase=\"idle\"}") >= 1);
}

/* The agent used to answer HAPROXY-DISCONNECT at once and drop the ACKs
 * of the decisions in flight (requests lost on every HAProxy reload). */
static void test_haproxy_disconnect_answers_decisions_in_flight_first(void **state)
{
	uint8_t buf[1024], out[1024];
	struct spop_frame f;
	int fd = dial(), i;
	long n, m;

	(void)state;
	handshake(fd, 16380);
	/* Three decisions (each takes 200 ms here), then the DISCONNECT, in one write. */
	n = 0;
	for (i = 0; i < 3; i++)
		n += notify(out + n, sizeof(out) - (size_t)n, SPOP_FLAG_FIN, 7, (uint64_t)i + 1,
		            0, NULL);
	m = haproxy_disconnect(out + n, sizeof(out) - (size_t)n, "stopping");
	assert_true(m > 0);
	send_all(fd, out, (size_t)(n + m));
	for (i = 0; i < 3; i++) {
		assert_true(read_frame(fd, buf, sizeof(buf), &f) > 0);
		assert_int_equal(f.type, SPOP_FRM_ACK);
		assert_int_equal(f.stream_id, 7);
	}
	expect_disconnect(fd, SPOP_ST_NORMAL);
	close(fd);
}

/* Out of fds, the accept watcher used to spin (7.2 s of CPU in 8 s and
 * millions of log lines under prlimit --nofile=256 with 400 connections). */
static void test_out_of_fds_pauses_accepting_without_spinning(void **state)
{
	enum { N = 150 };
	int fds[N], i, warnings = 0;
	long t0, t1;
	char *out = NULL;

	(void)state;
	for (i = 0; i < N; i++)
		fds[i] = dial();       /* the backlog takes what the agent cannot */
	usleep(200 * 1000);
	t0 = agent_cpu_ticks();
	usleep(2000 * 1000);
	t1 = agent_cpu_ticks();
	assert_int_equal(h_run(&out, "grep -c 'pausing accepts' %s || true", agent->log), 0);
	warnings = (int)strtol(out, NULL, 10);
	free(out);
	printf("# out of fds with %d connections: %ld CPU ticks of %ld in 2 s, %d warnings\n",
	       N, t1 - t0, sysconf(_SC_CLK_TCK) * 2, warnings);
	assert_true(h_metric(S.metrics_port, "spogate_accept_paused_total") >= 1);
	assert_true(t1 - t0 < sysconf(_SC_CLK_TCK));      /* a spin takes all of it */
	assert_true(warnings >= 1 && warnings <= 2);
	for (i = 0; i < N; i++)
		close(fds[i]);
	/* Accepting resumes once fds are free again. */
	for (i = 0; i < 50; i++) {
		int fd = dial();
		uint8_t b[512];
		long n = hello(b, sizeof(b), "2.0", 16380, "pipelining,async", 0, SPOP_FLAG_FIN);
		struct spop_frame f;
		long r;

		send_all(fd, b, (size_t)n);
		r = read_frame(fd, b, sizeof(b), &f);
		close(fd);
		if (r > 0 && f.type == SPOP_FRM_AGENT_HELLO)
			return;
		usleep(100 * 1000);
	}
	fail_msg("the agent never accepted again");
}

/* ---- memory: 100,000 cached tokens ---- */

#define MEM_TOKENS 100000
#define MEM_RSS_MAX_KB (64 * 1024)

static char hs_secret[128];

static int setup_memory(void **state)
{
	char path[600], *out = NULL;

	(void)state;
	h_stack_init(&S, "spop-memory");
	t_keygen(&S, "1");
	snprintf(path, sizeof(path), "%s/keys/hs1.key", S.dir);
	if (h_run(&out, "cat %s", path) != 0)
		return -1;
	snprintf(hs_secret, sizeof(hs_secret), "%s", out);
	hs_secret[strcspn(hs_secret, "\r\n")] = '\0';
	free(out);
	agent = h_start_agent(&S, h_write(&S, "agent.json",
	                      "{\"threads\": 2, \"auth\": {\"mode\": \"jwt\", \"jwks_file\": "
	                      "\"%s/keys/jwks1.json\", \"algorithms\": [\"HS256\"], "
	                      "\"cache_ttl_ms\": 600000}}", S.dir), NULL);
	return 0;
}

/* An HS256 token for user i, signed here (minting 100,000 tokens through
 * spogate-refsvc would take minutes). */
static size_t mem_token(char *out, size_t cap, unsigned i)
{
	static const char hdr[] = "{\"alg\":\"HS256\",\"kid\":\"hs1\"}";
	char body[128];
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	size_t n;
	int blen = snprintf(body, sizeof(body), "{\"sub\":\"user%06u\",\"exp\":%ld,"
	                    "\"roles\":[\"reader\"]}", i, (long)time(NULL) + 3600);

	assert_true(cap > 512);
	n = jwt_b64url_encode(out, (const unsigned char *)hdr, sizeof(hdr) - 1);
	out[n++] = '.';
	n += jwt_b64url_encode(out + n, (const unsigned char *)body, (size_t)blen);
	HMAC(EVP_sha256(), hs_secret, (int)strlen(hs_secret), (unsigned char *)out, n, mac, &maclen);
	out[n++] = '.';
	n += jwt_b64url_encode(out + n, mac, maclen);
	return n;
}

static long agent_rss_kb(void)
{
	char *out = NULL;
	long kb;

	assert_int_equal(h_run(&out, "awk '/^VmRSS:/ {print $2}' /proc/%d/status",
	                       (int)agent->pid), 0);
	kb = strtol(out, NULL, 10);
	free(out);
	return kb;
}

static int agent_has_asan(void)
{
	char *out = NULL;
	int yes;

	h_run(&out, "grep -c libasan /proc/%d/maps || true", (int)agent->pid);
	yes = out && strtol(out, NULL, 10) > 0;
	free(out);
	return yes;
}

/* Sends count gw-checks with tokens from make(i), first..first+count, over
 * two pipelined connections, and reads every ACK. */
static void mem_send(unsigned first, unsigned count, int garbage)
{
	enum { BATCH = 100 };
	static uint8_t out[BATCH * 700];
	uint8_t buf[4096];
	struct spop_frame f;
	int fds[2] = { dial(), dial() };
	unsigned i, j;

	handshake(fds[0], 16380);
	handshake(fds[1], 16380);
	for (i = 0; i < count; i += BATCH) {
		int fd = fds[(i / BATCH) % 2];
		size_t off = 0;
		unsigned nb = count - i < BATCH ? count - i : BATCH;

		for (j = 0; j < nb; j++) {
			char tok[600], bearer[620];
			long n;

			if (garbage)
				snprintf(tok, sizeof(tok), "garbage.%08u.%08u", first + i + j, i * 7 + j);
			else
				mem_token(tok, sizeof(tok), first + i + j);
			snprintf(bearer, sizeof(bearer), "Bearer %s", tok);
			n = notify(out + off, sizeof(out) - off, SPOP_FLAG_FIN, 1, i + j + 1, 1, bearer);
			assert_true(n > 0);
			off += (size_t)n;
		}
		send_all(fd, out, off);
		for (j = 0; j < nb; j++)
			assert_true(read_frame(fd, buf, sizeof(buf), &f) > 0);
	}
	close(fds[0]);
	close(fds[1]);
}

/* 100,000 distinct valid tokens took the agent to 528 MB and 100,000
 * garbage tokens alone to 312 MB (about 1.5 KB per cached result). */
static void test_100k_cached_tokens_fit_in_64_mib(void **state)
{
	long base, valid, garbage;
	double entries, bytes;

	(void)state;

	base = agent_rss_kb();
	mem_send(0, MEM_TOKENS, 0);
	valid = agent_rss_kb();
	entries = h_metric(S.metrics_port, "spogate_auth_cache_entries");
	bytes = h_metric(S.metrics_port, "spogate_auth_cache_bytes");
	printf("# agent RSS: %ld KiB idle, %ld KiB with %.0f valid tokens cached (%.0f bytes "
	       "counted, %.0f per token)\n", base, valid, entries, bytes, bytes / entries);
	assert_true(entries >= MEM_TOKENS);
	mem_send(0, MEM_TOKENS, 1);
	garbage = agent_rss_kb();
	printf("# agent RSS: %ld KiB after %d garbage tokens more (%.0f cached now)\n", garbage,
	       MEM_TOKENS, h_metric(S.metrics_port, "spogate_auth_cache_entries"));
	assert_true(h_metric(S.metrics_port, "spogate_auth_events_total{event=\"verified\"}") >=
	            MEM_TOKENS);
	if (agent_has_asan()) {
		printf("# (ASan build: its shadow memory and quarantine make RSS meaningless)\n");
		return;
	}
	assert_true(valid <= MEM_RSS_MAX_KB);
	assert_true(garbage <= MEM_RSS_MAX_KB);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unsupported_version_is_status_8),
		cmocka_unit_test(test_tiny_max_frame_size_is_status_9),
		cmocka_unit_test(test_missing_hello_items_have_their_status),
		cmocka_unit_test(test_max_frame_size_is_the_minimum),
		cmocka_unit_test(test_fragmented_notify_is_status_10),
		cmocka_unit_test(test_unset_frame_is_status_10),
		cmocka_unit_test(test_frame_above_negotiated_size_is_status_3),
		cmocka_unit_test(test_garbage_is_status_4),
		cmocka_unit_test(test_healthcheck_hello_is_answered_and_closed),
		cmocka_unit_test(test_haproxy_disconnect_is_answered),
		cmocka_unit_test(test_pipelined_notifies_all_acked),
		cmocka_unit_test(test_agent_answers_only_the_offered_capabilities),
		cmocka_unit_test(test_haproxy_31_mux_traffic_is_answered),
		cmocka_unit_test(test_close_mid_decision_is_harmless),
	};

	const struct CMUnitTest limits[] = {
		cmocka_unit_test(test_half_sent_hellos_are_closed_after_the_handshake_timeout),
		cmocka_unit_test(test_idle_connection_is_closed_with_status_2),
		cmocka_unit_test(test_haproxy_disconnect_answers_decisions_in_flight_first),
		cmocka_unit_test(test_out_of_fds_pauses_accepting_without_spinning),
	};
	const struct CMUnitTest memory[] = {
		cmocka_unit_test(test_100k_cached_tokens_fit_in_64_mib),
	};
	int rc;

	rc = cmocka_run_group_tests_name("spop", tests, setup, teardown);
	rc += cmocka_run_group_tests_name("spop_limits", limits, setup_limits, teardown);
	rc += cmocka_run_group_tests_name("spop_memory", memory, setup_memory, teardown);
	return rc;
}
