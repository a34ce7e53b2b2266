/*
 * SPOP codec: HAProxy's varint vectors, every type round-tripped, frames
 * built and parsed, and every truncation of valid frames refused cleanly.
 * Truncated inputs are copied into exactly-sized heap buffers so ASan
 * catches any read past the end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gwmsg.h"
#include "spop.h"

static size_t unhex(const char *hex, uint8_t *out)
{
	size_t n = 0;

	while (hex[0] && hex[1]) {
		char b[3] = { hex[0], hex[1], 0 };

		out[n++] = (uint8_t)strtoul(b, NULL, 16);
		hex += 2;
	}
	return n;
}

static void check_vector(uint64_t v, const char *hex)
{
	uint8_t want[16], got[16];
	size_t wn = unhex(hex, want);
	uint64_t back;
	int n;

	n = spop_varint_encode(v, got, sizeof(got));
	assert_int_equal(n, (int)wn);
	assert_memory_equal(got, want, wn);
	assert_int_equal(spop_varint_decode(want, wn, &back), (int)wn);
	assert_true(back == v);
}

static void test_varint_haproxy_vectors(void **state)
{
	(void)state;
	check_vector(0, "00");
	check_vector(239, "ef");
	check_vector(240, "f000");
	check_vector(2287, "ff7f");
	check_vector(2288, "f08000");
	check_vector(16380, "fcf006");
	check_vector(16384, "f0f106");
	check_vector(264431, "ffff7f");
	check_vector(264432, "f0808000");
	check_vector(UINT32_MAX, "fff0fefe7e");
}

static void test_varint_max_is_10_bytes(void **state)
{
	uint8_t buf[16];
	uint64_t back;
	int n;

	(void)state;
	n = spop_varint_encode(UINT64_MAX, buf, sizeof(buf));
	assert_int_equal(n, 10);
	assert_int_equal(spop_varint_decode(buf, (size_t)n, &back), 10);
	assert_true(back == UINT64_MAX);
	/* no room: refused, never a partial write reported as success */
	assert_int_equal(spop_varint_encode(UINT64_MAX, buf, 9), -1);
}

static void test_varint_every_width_round_trips(void **state)
{
	uint8_t buf[16];
	uint64_t v, back;
	int shift, n;

	(void)state;
	for (shift = 0; shift < 64; shift++) {
		uint64_t cands[3] = { (uint64_t)1 << shift, ((uint64_t)1 << shift) - 1,
		                      ((uint64_t)1 << shift) + 1 };
		int k;

		for (k = 0; k < 3; k++) {
			v = cands[k];
			n = spop_varint_encode(v, buf, sizeof(buf));
			assert_true(n > 0);
			assert_int_equal(spop_varint_decode(buf, (size_t)n, &back), n);
			assert_true(back == v);
			/* every truncation is refused */
			while (--n > 0) {
				uint8_t *t = malloc((size_t)n);

				memcpy(t, buf, (size_t)n);
				assert_int_equal(spop_varint_decode(t, (size_t)n, &back), -1);
				free(t);
			}
		}
	}
}

static void test_varint_overlong_and_overflow_refused(void **state)
{
	uint8_t eleven[11];
	uint8_t over[10];
	uint64_t v;

	(void)state;
	memset(eleven, 0xff, sizeof(eleven));
	assert_int_equal(spop_varint_decode(eleven, sizeof(eleven), &v), -1);
	/* 2^64-1 is ff ff .. with a final small byte; a larger final byte
	 * would overflow 64 bits */
	assert_int_equal(spop_varint_encode(UINT64_MAX, over, sizeof(over)), 10);
	over[9] = 0x7f;
	assert_int_equal(spop_varint_decode(over, sizeof(over), &v), -1);
	assert_int_equal(spop_varint_decode(over, 0, &v), -1);
}

static void round_trip(struct spop_data d)
{
	uint8_t buf[64];
	struct spop_wr w;
	struct spop_rd rd;
	struct spop_data back;
	size_t cut;

	spop_wr_init(&w, buf, sizeof(buf));
	spop_wr_data(&w, &d);
	assert_false(w.err);
	spop_rd_init(&rd, buf, w.len);
	assert_int_equal(spop_rd_data(&rd, &back), 0);
	assert_true(rd.p == rd.end);
	assert_int_equal(back.type, d.type);
	switch (d.type) {
	case SPOP_DATA_NULL: break;
	case SPOP_DATA_BOOL: assert_int_equal(back.u.boolean, d.u.boolean); break;
	case SPOP_DATA_INT32: assert_int_equal(back.u.sint32, d.u.sint32); break;
	case SPOP_DATA_UINT32: assert_int_equal(back.u.uint32, d.u.uint32); break;
	case SPOP_DATA_INT64: assert_true(back.u.sint64 == d.u.sint64); break;
	case SPOP_DATA_UINT64: assert_true(back.u.uint64 == d.u.uint64); break;
	case SPOP_DATA_IPV4: assert_memory_equal(back.u.ipv4, d.u.ipv4, 4); break;
	case SPOP_DATA_IPV6: assert_memory_equal(back.u.ipv6, d.u.ipv6, 16); break;
	case SPOP_DATA_STR:
	case SPOP_DATA_BIN:
		assert_int_equal(back.u.str.len, d.u.str.len);
		assert_memory_equal(back.u.str.ptr, d.u.str.ptr, d.u.str.len);
		break;
	}
	for (cut = 0; cut < w.len; cut++) {
		uint8_t *t = malloc(cut ? cut : 1);

		memcpy(t, buf, cut);
		spop_rd_init(&rd, t, cut);
		assert_int_equal(spop_rd_data(&rd, &back), -1);
		assert_true(rd.p == t);    /* a failed read does not advance */
		free(t);
	}
}

static void test_every_type_round_trips(void **state)
{
	struct spop_data d;

	(void)state;
	round_trip(spop_null());
	round_trip(spop_bool(1));
	round_trip(spop_bool(0));
	round_trip(spop_int32(-1));
	round_trip(spop_int32(INT32_MIN));
	round_trip(spop_int32(INT32_MAX));
	round_trip(spop_uint32(UINT32_MAX));
	round_trip(spop_int64(INT64_MIN));
	round_trip(spop_int64(-42));
	round_trip(spop_uint64(UINT64_MAX));
	d.type = SPOP_DATA_IPV4;
	memcpy(d.u.ipv4, "\x7f\x00\x00\x01", 4);
	round_trip(d);
	d.type = SPOP_DATA_IPV6;
	memcpy(d.u.ipv6, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
	round_trip(d);
	round_trip(spop_cstr(""));
	round_trip(spop_cstr("Bearer eyJhbGciOi"));
	d = spop_strn("\0\x01\xff", 3);
	d.type = SPOP_DATA_BIN;
	round_trip(d);
}

static void test_bool_flag_in_high_nibble(void **state)
{
	uint8_t t = SPOP_DATA_BOOL | SPOP_DATA_FL_TRUE, f = SPOP_DATA_BOOL;
	struct spop_rd rd;
	struct spop_data d;

	(void)state;
	spop_rd_init(&rd, &t, 1);
	assert_int_equal(spop_rd_data(&rd, &d), 0);
	assert_int_equal(d.type, SPOP_DATA_BOOL);
	assert_true(d.u.boolean);
	spop_rd_init(&rd, &f, 1);
	assert_int_equal(spop_rd_data(&rd, &d), 0);
	assert_false(d.u.boolean);
}

static void test_unknown_type_refused(void **state)
{
	uint8_t b[] = { 0x0a, 0x00 };
	struct spop_rd rd;
	struct spop_data d;

	(void)state;
	spop_rd_init(&rd, b, sizeof(b));
	assert_int_equal(spop_rd_data(&rd, &d), -1);
}

static void test_string_longer_than_buffer_refused(void **state)
{
	uint8_t b[] = { SPOP_DATA_STR, 0x05, 'a', 'b' };
	struct spop_rd rd;
	struct spop_data d;

	(void)state;
	spop_rd_init(&rd, b, sizeof(b));
	assert_int_equal(spop_rd_data(&rd, &d), -1);
}

/* A HAPROXY-HELLO as HAProxy 2.6 sends it, engine-id last. */
static long build_hello(uint8_t *buf, size_t cap, const char *vsn, int max_frame,
                        const char *caps, int healthcheck, uint32_t flags)
{
	return spop_haproxy_hello(buf, cap, flags, vsn, max_frame, caps, healthcheck, "engine-1");
}

static long build_notify(uint8_t *buf, size_t cap)
{
	struct spop_wr w;
	struct spop_data d;
	uint8_t ip[4] = { 10, 0, 0, 7 };

	spop_wr_init(&w, buf, cap);
	spop_wr_frame_begin(&w, SPOP_FRM_NOTIFY, SPOP_FLAG_FIN, 1234, 7);
	spop_wr_str(&w, "gw-check", 8);
	spop_wr_u8(&w, 9);
	d = spop_cstr("users");
	spop_wr_kv(&w, "route", &d);
	d = spop_int32(1);
	spop_wr_kv(&w, "auth", &d);
	d = spop_cstr("user.read");
	spop_wr_kv(&w, "perm", &d);
	d = spop_null();                       /* no Authorization header */
	spop_wr_kv(&w, "token", &d);
	d.type = SPOP_DATA_IPV4;
	memcpy(d.u.ipv4, ip, 4);
	spop_wr_kv(&w, "ip", &d);
	d = spop_cstr("GET");
	spop_wr_kv(&w, "method", &d);
	d = spop_cstr("/api/v1/users/42");
	spop_wr_kv(&w, "path", &d);
	d = spop_cstr("100/60");
	spop_wr_kv(&w, "rl_user", &d);
	d = spop_cstr("");
	spop_wr_kv(&w, "rl_ip", &d);
	return spop_wr_frame_end(&w);
}

static void test_hello_frame_parses(void **state)
{
	uint8_t buf[512];
	struct spop_frame f;
	struct spop_hello h;
	long n;

	(void)state;
	n = build_hello(buf, sizeof(buf), "2.0", 16380, "pipelining,async", 0, SPOP_FLAG_FIN);
	assert_true(n > 0);
	assert_int_equal(spop_frame_len(buf), (uint32_t)(n - 4));
	assert_int_equal(spop_frame_decode(buf + 4, (size_t)n - 4, &f), 0);
	assert_int_equal(f.type, SPOP_FRM_HAPROXY_HELLO);
	assert_int_equal(f.flags, SPOP_FLAG_FIN);
	assert_int_equal(spop_hello_decode(f.payload, f.payload_len, &h), 0);
	assert_true(h.has_versions && h.has_max_frame_size && h.has_capabilities);
	assert_int_equal(h.max_frame_size, 16380);
	assert_false(h.healthcheck);
	assert_true(spop_list_has(h.capabilities, "pipelining"));
	assert_true(spop_list_has(h.capabilities, "async"));
	assert_false(spop_list_has(h.capabilities, "fragmentation"));
	assert_true(spop_list_has(h.versions, "2.0"));
}

static void test_list_has_ignores_spaces(void **state)
{
	struct spop_str l = { " 2.0 , 1.5", 10 };

	(void)state;
	assert_true(spop_list_has(l, "2.0"));
	assert_true(spop_list_has(l, "1.5"));
	assert_false(spop_list_has(l, "2"));
}

static void test_caps_answer_is_what_haproxy_offered(void **state)
{
	struct spop_str both = { "pipelining,async", 16 }, v31 = { "pipelining", 10 },
	                check = { "", 0 }, odd = { " async , fragmentation", 22 };

	(void)state;
	assert_string_equal(spop_caps_answer(both), "pipelining,async");
	assert_string_equal(spop_caps_answer(v31), "pipelining");   /* 3.1+ */
	assert_string_equal(spop_caps_answer(check), "");           /* health check */
	assert_string_equal(spop_caps_answer(odd), "async");        /* never fragmentation */
}

static void test_notify_parses_into_gw_request(void **state)
{
	uint8_t buf[512];
	struct spop_frame f;
	struct gw_request req;
	long n;

	(void)state;
	n = build_notify(buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(spop_frame_decode(buf + 4, (size_t)n - 4, &f), 0);
	assert_int_equal(f.type, SPOP_FRM_NOTIFY);
	assert_true(f.stream_id == 1234 && f.frame_id == 7);
	assert_int_equal(gw_request_parse(f.payload, f.payload_len, &req), 1);
	assert_int_equal(req.route.len, 5);
	assert_memory_equal(req.route.ptr, "users", 5);
	assert_int_equal(req.auth, 1);
	assert_int_equal(req.token.len, 0);        /* NULL means absent */
	assert_int_equal(req.ip_family, 4);
	assert_memory_equal(req.ip, "\x0a\x00\x00\x07", 4);
	assert_int_equal(req.rl_user.len, 6);
	assert_int_equal(req.rl_ip.len, 0);
}

/* Every prefix of a valid frame is refused without reading past it. */
static void test_every_truncation_of_frames_refused(void **state)
{
	uint8_t buf[512];
	long lens[2];
	uint8_t frames[2][512];
	int k;

	(void)state;
	lens[0] = build_hello(frames[0], sizeof(frames[0]), "2.0", 16380, "pipelining", 1,
	                      SPOP_FLAG_FIN);
	lens[1] = build_notify(frames[1], sizeof(frames[1]));
	(void)buf;
	for (k = 0; k < 2; k++) {
		size_t full = (size_t)lens[k] - 4, cut;

		for (cut = 0; cut < full; cut++) {
			uint8_t *t = malloc(cut ? cut : 1);
			struct spop_frame f;
			struct spop_hello h;
			struct gw_request req;
			int ok;

			memcpy(t, frames[k] + 4, cut);
			if (spop_frame_decode(t, cut, &f) != 0) {
				free(t);
				continue;   /* metadata truncated: refused */
			}
			if (k == 0) {
				/* a cut KV list either fails or loses mandatory items */
				ok = spop_hello_decode(f.payload, f.payload_len, &h) == 0 &&
				     h.has_versions && h.has_max_frame_size && h.has_capabilities &&
				     h.healthcheck;
				/* only a cut right before the optional engine-id
				 * item (20 bytes) leaves a complete HELLO */
				if (ok)
					assert_int_equal(cut, full - 20);
			} else {
				/* an empty payload is a NOTIFY with no message (empty
				 * ACK); any other cut is malformed */
				assert_int_equal(gw_request_parse(f.payload, f.payload_len, &req),
				                 f.payload_len == 0 ? 0 : -1);
			}
			free(t);
		}
	}
}

static void test_ack_encodes_set_vars(void **state)
{
	uint8_t buf[1024];
	struct gw_verdict v;
	struct spop_frame f;
	struct spop_rd rd;
	struct spop_str name;
	struct spop_data val;
	uint8_t act, scope;
	int seen_status = 0, seen_reason = 0, seen_user = 0;
	long n;

	(void)state;
	gw_verdict_init(&v);
	assert_int_equal(gw_verdict_add_var(&v, "user_id", "alice", 5), 0);
	n = gw_ack_encode(buf, sizeof(buf), 99, 3, &v);
	assert_true(n > 0);
	assert_int_equal(spop_frame_decode(buf + 4, (size_t)n - 4, &f), 0);
	assert_int_equal(f.type, SPOP_FRM_ACK);
	assert_true(f.stream_id == 99 && f.frame_id == 3);
	spop_rd_init(&rd, f.payload, f.payload_len);
	while (spop_action_next(&rd, &act, &scope, &name, &val) == 1) {
		assert_int_equal(act, SPOP_ACT_SET_VAR);
		assert_int_equal(scope, SPOP_SCOPE_TXN);
		if (name.len == 6 && memcmp(name.ptr, "status", 6) == 0) {
			assert_int_equal(val.type, SPOP_DATA_INT32);
			assert_int_equal(val.u.sint32, 0);
			seen_status = 1;
		} else if (name.len == 6 && memcmp(name.ptr, "reason", 6) == 0) {
			seen_reason = 1;
		} else if (name.len == 7 && memcmp(name.ptr, "user_id", 7) == 0) {
			assert_memory_equal(val.u.str.ptr, "alice", 5);
			seen_user = 1;
		}
	}
	assert_true(seen_status && seen_user && !seen_reason);

	/* a denial carries the reason and no identity */
	gw_verdict_deny(&v, 401, GW_R_TOKEN_EXPIRED);
	n = gw_ack_encode(buf, sizeof(buf), 1, 1, &v);
	assert_true(n > 0);
	assert_non_null(memmem(buf, (size_t)n, "token_expired", 13));
	assert_null(memmem(buf, (size_t)n, "alice", 5));
	/* too small a frame: refused, not truncated */
	assert_int_equal(gw_ack_encode(buf, 20, 1, 1, &v), -1);
}

static void test_identity_values_with_control_chars_refused(void **state)
{
	struct gw_verdict v;
	char big[GW_VAR_MAX_VALUE + 1];

	(void)state;
	gw_verdict_init(&v);
	assert_int_equal(gw_verdict_add_var(&v, "user_id", "al\r\nice", 7), -1);
	assert_int_equal(gw_verdict_add_var(&v, "user_id", "a\0b", 3), -1);
	memset(big, 'a', sizeof(big));
	assert_int_equal(gw_verdict_add_var(&v, "user_id", big, sizeof(big)), -1);
	assert_int_equal(gw_verdict_add_var(&v, "user_id", big, GW_VAR_MAX_VALUE), 0);
}

static void test_bearer_token_extraction(void **state)
{
	struct spop_str tok;
	struct spop_str h1 = { "Bearer abc", 10 }, h2 = { "bearer   x.y.z  ", 16 };
	struct spop_str h3 = { "Basic abc", 9 }, h4 = { "Bearer ", 7 }, h5 = { "Bearerabc", 9 };

	(void)state;
	assert_int_equal(gw_bearer_token(h1, &tok), 0);
	assert_int_equal(tok.len, 3);
	assert_int_equal(gw_bearer_token(h2, &tok), 0);
	assert_int_equal(tok.len, 5);
	assert_memory_equal(tok.ptr, "x.y.z", 5);
	assert_int_equal(gw_bearer_token(h3, &tok), -1);
	assert_int_equal(gw_bearer_token(h4, &tok), -1);
	assert_int_equal(gw_bearer_token(h5, &tok), -1);
}

static void test_disconnect_round_trips(void **state)
{
	uint8_t buf[256];
	struct spop_frame f;
	struct spop_disconnect d;
	long n;

	(void)state;
	n = spop_agent_disconnect(buf, sizeof(buf), SPOP_ST_FRAG_NOT_SUPP,
	                          spop_status_str(SPOP_ST_FRAG_NOT_SUPP));
	assert_true(n > 0);
	assert_int_equal(spop_frame_decode(buf + 4, (size_t)n - 4, &f), 0);
	assert_int_equal(f.type, SPOP_FRM_AGENT_DISCONNECT);
	assert_int_equal(spop_disconnect_decode(f.payload, f.payload_len, &d), 0);
	assert_int_equal(d.status, 10);
	assert_true(d.message.len > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_varint_haproxy_vectors),
		cmocka_unit_test(test_varint_max_is_10_bytes),
		cmocka_unit_test(test_varint_every_width_round_trips),
		cmocka_unit_test(test_varint_overlong_and_overflow_refused),
		cmocka_unit_test(test_every_type_round_trips),
		cmocka_unit_test(test_bool_flag_in_high_nibble),
		cmocka_unit_test(test_unknown_type_refused),
		cmocka_unit_test(test_string_longer_than_buffer_refused),
		cmocka_unit_test(test_hello_frame_parses),
		cmocka_unit_test(test_list_has_ignores_spaces),
		cmocka_unit_test(test_caps_answer_is_what_haproxy_offered),
		cmocka_unit_test(test_notify_parses_into_gw_request),
		cmocka_unit_test(test_every_truncation_of_frames_refused),
		cmocka_unit_test(test_ack_encodes_set_vars),
		cmocka_unit_test(test_identity_values_with_control_chars_refused),
		cmocka_unit_test(test_bearer_token_extraction),
		cmocka_unit_test(test_disconnect_round_trips),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
