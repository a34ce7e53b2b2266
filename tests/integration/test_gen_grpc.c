/*
 * gRPC through the gateway, end to end: a registry service with
 * protocol: grpc is reached over HTTP/2, and the gateway's own denials of
 * gRPC requests are gRPC answers (HTTP 200, grpc-status, grpc-message).
 * The reference service is both the Auth Service the agent asks and the
 * gRPC backend the client calls (its AuthService.ValidateToken); the
 * client is grpc core over TLS to the gateway, ALPN h2.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "auth.pb-c.h"
#include "harness.h"
#include "test_auth_util.h"

static struct h_stack S;
static int tls_port;
static grpc_channel *channel;
static struct h_proc *agent;

struct g_result {
	grpc_status_code status;
	char message[256];
	int got_response;
	int valid;
	char user[64];
};

/* One unary ValidateToken call (method path given, so that routes can be
 * told apart) with token in the message and, when bearer is set, an
 * authorization metadata entry for the gateway. */
static void g_call(struct g_result *res, const char *method, const char *bearer,
		   const char *token)
{
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
					     gpr_time_from_millis(5000, GPR_TIMESPAN));
	grpc_slice mslice = grpc_slice_from_copied_string(method);
	grpc_call *call = grpc_channel_create_call(channel, NULL, 0, cq, mslice, NULL, deadline, NULL);
	Spogate__Auth__V1__ValidateTokenRequest req = SPOGATE__AUTH__V1__VALIDATE_TOKEN_REQUEST__INIT;
	grpc_metadata md[1];
	grpc_metadata_array init_md, trail_md;
	grpc_byte_buffer *send, *recv = NULL;
	grpc_slice details, payload;
	grpc_op ops[6];
	uint8_t buf[4096];
	char auth[4096];
	size_t n;

	memset(res, 0, sizeof(*res));
	memset(ops, 0, sizeof(ops));
	memset(md, 0, sizeof(md));
	req.token = (char *)token;
	n = spogate__auth__v1__validate_token_request__pack(&req, buf);
	payload = grpc_slice_from_copied_buffer((const char *)buf, n);
	send = grpc_raw_byte_buffer_create(&payload, 1);
	grpc_slice_unref(payload);
	grpc_metadata_array_init(&init_md);
	grpc_metadata_array_init(&trail_md);
	if (bearer) {
		snprintf(auth, sizeof(auth), "Bearer %s", bearer);
		md[0].key = grpc_slice_from_static_string("authorization");
		md[0].value = grpc_slice_from_copied_string(auth);
	}
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = bearer ? 1 : 0;
	ops[0].data.send_initial_metadata.metadata = md;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
	ops[5].data.recv_status_on_client.status = &res->status;
	ops[5].data.recv_status_on_client.status_details = &details;
	assert_int_equal(grpc_call_start_batch(call, ops, 6, (void *)1, NULL), GRPC_CALL_OK);
	grpc_completion_queue_pluck(cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);

	{
		char *d = grpc_slice_to_c_string(details);
		snprintf(res->message, sizeof(res->message), "%s", d);
		gpr_free(d);
	}
	if (recv) {
		grpc_byte_buffer_reader rd;
		if (grpc_byte_buffer_reader_init(&rd, recv)) {
			grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
			Spogate__Auth__V1__ValidateTokenResponse *r =
				spogate__auth__v1__validate_token_response__unpack(
					NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
			if (r) {
				res->got_response = 1;
				res->valid = r->valid;
				snprintf(res->user, sizeof(res->user), "%s", r->user_id ? r->user_id : "");
				spogate__auth__v1__validate_token_response__free_unpacked(r, NULL);
			}
			grpc_slice_unref(all);
			grpc_byte_buffer_reader_destroy(&rd);
		}
		grpc_byte_buffer_destroy(recv);
	}
	if (bearer)
		grpc_slice_unref(md[0].value);
	grpc_slice_unref(details);
	grpc_slice_unref(mslice);
	grpc_byte_buffer_destroy(send);
	grpc_metadata_array_destroy(&init_md);
	grpc_metadata_array_destroy(&trail_md);
	grpc_call_unref(call);
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
}

static char *read_all(const char *path)
{
	char *out = NULL;

	if (h_run(&out, "cat '%s'", path) != 0)
		fail_msg("cannot read %s", path);
	return out;
}

static int setup(void **state)
{
	char *out = NULL, args[2048], path[700], *ca;
	const char *gw, *reg;
	grpc_channel_credentials *creds;
	grpc_arg arg;
	grpc_channel_args cargs;

	(void)state;
	h_stack_init(&S, "gen_grpc");
	tls_port = h_free_port();
	t_keygen(&S, "1");
	if (h_run(&out, "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
		  "-nodes -keyout gw.key -out gw.crt -days 2 -subj /CN=grpc.example.test "
		  "-addext subjectAltName=DNS:grpc.example.test 2>&1 && cat gw.crt gw.key > gw.pem",
		  S.dir) != 0)
		fail_msg("openssl: %s", out ? out : "");
	free(out);
	out = NULL;
	h_write(&S, "policy.json", "{\"users\": {\"alice\": [\"reader\"]},"
		"\"roles\": {\"reader\": [\"grpc.read\"]}, \"cache_ttl_seconds\": 30}");
	snprintf(args, sizeof(args), "--jwks %s/keys/jwks1.json --issuer %s --audience %s "
		 "--policy %s/policy.json", S.dir, T_ISS, T_AUD, S.dir);
	t_start_refsvc(&S, args);
	gw = h_write(&S, "gateway.yaml",
		"gateway:\n"
		"  port: %d\n"
		"  bind: 127.0.0.1\n"
		"  tls: {port: %d, certificates: [gw.pem]}\n"
		"  routes:\n"
		"    - {path: /spogate.auth.v1.AuthService/**, service: refsvc, auth_required: true}\n"
		"    - {path: /admin.v1.Admin/**, service: refsvc, permission: grpc.admin}\n"
		"    - {path: /limited.v1.Limited/**, service: refsvc, auth_required: false,\n"
		"       rate_limit: {per_ip: 1/minute}}\n"
		"  rate_limiting: {enabled: true}\n"
		"  redis: {address: 127.0.0.1:%d}\n"
		"  auth: {mode: service, service: refsvc}\n"
		"  authz: {mode: service, service: refsvc}\n"
		"  agent: {address: 127.0.0.1:%d, threads: 1}\n"
		"  admin: {stats: 127.0.0.1:%d, metrics: 127.0.0.1:%d}\n",
		S.http_port, tls_port, S.redis_port, S.agent_port, S.stats_port, S.metrics_port);
	reg = h_write(&S, "registry.yaml",
		"services:\n"
		"  refsvc: {servers: [\"127.0.0.1:%d\"], grpc: \"127.0.0.1:%d\", protocol: grpc,\n"
		"           health: false}\n", S.refsvc_port, S.refsvc_port);
	if (h_run(&out, "%s -g %s -r %s -o %s --run-dir %s 2>&1", h_bin("spogate-gen"), gw, reg,
		  S.dir, S.dir) != 0)
		fail_msg("spogate-gen: %s", out ? out : "");
	free(out);
	snprintf(path, sizeof(path), "%s/agent.json", S.dir);
	h_start_redis(&S);
	agent = h_start_agent(&S, path, NULL);
	snprintf(path, sizeof(path), "%s/haproxy.cfg", S.dir);
	h_start_haproxy(&S, path);
	h_wait_port(tls_port, 5000);

	grpc_init();
	snprintf(path, sizeof(path), "%s/gw.crt", S.dir);
	ca = read_all(path);
	creds = grpc_ssl_credentials_create(ca, NULL, NULL, NULL);
	free(ca);
	arg.type = GRPC_ARG_STRING;
	arg.key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
	arg.value.string = (char *)"grpc.example.test";
	cargs.num_args = 1;
	cargs.args = &arg;
	snprintf(path, sizeof(path), "ipv4:127.0.0.1:%d", tls_port);
	channel = grpc_channel_create(path, creds, &cargs);
	grpc_channel_credentials_release(creds);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	grpc_channel_destroy(channel);
	grpc_shutdown();
	h_stack_stop(&S);
	return 0;
}

static void test_grpc_backend_is_reached_over_h2_with_a_token(void **state)
{
	char *t = t_token(&S, "RS256", "rsa1.pem", "rsa1", "alice");
	struct g_result r;

	(void)state;
	g_call(&r, "/spogate.auth.v1.AuthService/ValidateToken", t, t);
	if (r.status != GRPC_STATUS_OK)
		fail_msg("status %d: %s", r.status, r.message);
	assert_true(r.got_response);
	assert_true(r.valid);
	assert_string_equal(r.user, "alice");
	free(t);
}

static void test_denials_are_grpc_statuses(void **state)
{
	char *t = t_token(&S, "RS256", "rsa1.pem", "rsa1", "alice");
	struct g_result r;

	(void)state;
	/* no token: UNAUTHENTICATED with the reason */
	g_call(&r, "/spogate.auth.v1.AuthService/ValidateToken", NULL, "x");
	assert_int_equal(r.status, GRPC_STATUS_UNAUTHENTICATED);
	assert_string_equal(r.message, "token_missing");
	assert_false(r.got_response);
	/* a bad token */
	g_call(&r, "/spogate.auth.v1.AuthService/ValidateToken", "not-a-jwt", "x");
	assert_int_equal(r.status, GRPC_STATUS_UNAUTHENTICATED);
	/* a permission alice lacks: PERMISSION_DENIED */
	g_call(&r, "/admin.v1.Admin/Shutdown", t, "x");
	assert_int_equal(r.status, GRPC_STATUS_PERMISSION_DENIED);
	assert_string_equal(r.message, "permission_denied");
	/* no route: UNIMPLEMENTED */
	g_call(&r, "/nothing.v1.Nope/Call", t, "x");
	assert_int_equal(r.status, GRPC_STATUS_UNIMPLEMENTED);
	assert_string_equal(r.message, "not_found");
	/* over the per-IP limit: RESOURCE_EXHAUSTED */
	g_call(&r, "/limited.v1.Limited/Call", NULL, "x");
	assert_int_equal(r.status, GRPC_STATUS_UNIMPLEMENTED);   /* passed; refsvc has no such method */
	g_call(&r, "/limited.v1.Limited/Call", NULL, "x");
	assert_int_equal(r.status, GRPC_STATUS_RESOURCE_EXHAUSTED);
	assert_string_equal(r.message, "rate_limited_ip");
	free(t);
}

static void test_plain_http_denials_stay_json(void **state)
{
	struct h_resp r;
	char url[128];

	(void)state;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/spogate.auth.v1.AuthService/ValidateToken",
		 S.http_port);
	/* redirect_http is on: the plain port redirects; over HTTPS with curl
	 * the same denial is JSON because the request is not gRPC */
	assert_int_equal(h_http(&r, "POST", url, NULL, "{}"), 0);
	assert_int_equal(r.status, 308);
	h_resp_free(&r);
	{
		char *out = NULL;
		/* HTTP/1.1: an HTTP/2 answer sent before the request body is read
		 * ends the stream with RST_STREAM, which curl reports as an error. */
		h_run(&out, "curl -sS -i --http1.1 --cacert '%s/gw.crt' "
		      "--resolve grpc.example.test:%d:127.0.0.1 -X POST -d '{}' "
		      "https://grpc.example.test:%d/spogate.auth.v1.AuthService/ValidateToken 2>&1",
		      S.dir, tls_port, tls_port);
		assert_non_null(out);
		if (!strstr(out, " 401") || !strstr(out, "{\"error\":\"unauthorized\",\"reason\":\"token_missing\""))
			fail_msg("want a JSON 401, got:\n%s", out);
		free(out);
	}
}

/* Last: the agent gone, the gateway fails closed with UNAVAILABLE. */
static void test_agent_down_is_unavailable(void **state)
{
	char *t = t_token(&S, "RS256", "rsa1.pem", "rsa1", "alice");
	struct g_result r;

	(void)state;
	h_stop(agent, 3000);
	g_call(&r, "/spogate.auth.v1.AuthService/ValidateToken", t, t);
	assert_int_equal(r.status, GRPC_STATUS_UNAVAILABLE);
	assert_string_equal(r.message, "gateway_unavailable");
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grpc_backend_is_reached_over_h2_with_a_token),
		cmocka_unit_test(test_denials_are_grpc_statuses),
		cmocka_unit_test(test_plain_http_denials_stay_json),
		cmocka_unit_test(test_agent_down_is_unavailable),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
