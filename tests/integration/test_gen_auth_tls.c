/*
 * The agent's gRPC channel to the Auth Service over TLS (registry
 * grpc_tls), end to end: the reference service serves TLS and requires a
 * client certificate; the agent verifies it against ca_file and the
 * server_name, presents its own certificate, and sends the request id and
 * trace context as metadata. A handshake that fails (a server certificate
 * of another CA, no client certificate) is auth_unavailable, with a log
 * line that says why.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "test_auth_util.h"

static struct h_stack S;
static struct h_proc *agent, *refsvc;

static void make_certs(void)
{
	h_certs(&S,
		"mkca sca; mkca aca; mkca rogue\n"
		"leaf auth sca auth.internal DNS:auth.internal\n"
		"leaf agent aca spogate-agent DNS:spogate-agent\n");
}

/* grpc_tls is the registry's value for the Auth Service. */
static void start(const char *name, const char *grpc_tls)
{
	char *out = NULL, args[4096], path[600];
	const char *gw, *reg;

	h_stack_init(&S, name);
	t_keygen(&S, "1");
	make_certs();
	snprintf(args, sizeof(args), "--jwks %s/keys/jwks1.json --issuer %s --audience %s "
		 "--tls-cert %s/auth.crt --tls-key %s/auth.key --client-ca %s/aca.pem",
		 S.dir, T_ISS, T_AUD, S.dir, S.dir, S.dir);
	refsvc = t_start_refsvc(&S, args);
	h_start_echo(&S, "echo", S.echo_port);
	gw = h_write(&S, "gateway.yaml",
		"gateway:\n"
		"  port: %d\n"
		"  bind: 127.0.0.1\n"
		"  trusted_proxies: [127.0.0.1]\n"
		"  routes:\n"
		"    - {path: /private/**, service: echo}\n"
		"    - {path: /spogate.auth.v1.AuthService/**, service: grpcback, auth_required: false}\n"
		"  auth: {mode: service, service: auth}\n"
		"  authz: {mode: none}\n"
		"  agent: {address: 127.0.0.1:%d, threads: 1, log_level: debug}\n"
		"  admin: {stats: 127.0.0.1:%d, metrics: 127.0.0.1:%d}\n",
		S.http_port, S.agent_port, S.stats_port, S.metrics_port);
	reg = h_write(&S, "registry.yaml",
		"services:\n"
		"  echo: {servers: [\"127.0.0.1:%d\"], health: false}\n"
		"  auth: {grpc: \"127.0.0.1:%d\", grpc_tls: %s}\n"
		"  grpcback:\n"
		"    servers: [\"127.0.0.1:%d\"]\n"
		"    protocol: grpc\n"
		"    health: false\n"
		"    tls: {ca_file: sca.pem, sni: auth.internal, cert_file: agent.pem}\n",
		S.echo_port, S.refsvc_port, grpc_tls, S.refsvc_port);
	if (h_run(&out, "%s -g %s -r %s -o %s --run-dir %s 2>&1", h_bin("spogate-gen"), gw, reg,
		  S.dir, S.dir) != 0)
		fail_msg("spogate-gen: %s", out ? out : "");
	free(out);
	snprintf(path, sizeof(path), "%s/agent.json", S.dir);
	agent = h_start_agent(&S, path, NULL);
	snprintf(path, sizeof(path), "%s/haproxy.cfg", S.dir);
	h_start_haproxy(&S, path);
}

static int teardown(void **state)
{
	(void)state;
	h_stack_stop(&S);
	return 0;
}

static void get_with(struct h_resp *r, const char *tok, const char *rid, const char *tp)
{
	char auth[2048], h1[256], h2[256];
	const char *hdrs[4] = { auth, h1, h2, NULL };

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	snprintf(h1, sizeof(h1), "X-Request-ID: %s", rid);
	snprintf(h2, sizeof(h2), "traceparent: %s", tp);
	assert_int_equal(h_get(r, &S, "/private/x", hdrs), 0);
}

static void test_auth_service_over_mtls_with_trace_metadata(void **state)
{
	static const char tp[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
	char *t;
	struct h_resp r;
	char want[256];

	(void)state;
	start("auth_tls_ok", "{ca_file: sca.pem, cert_file: agent.crt, key_file: agent.key, "
	      "server_name: auth.internal}");
	assert_int_equal(h_wait_log(agent, "Auth Service at ipv4:", 3000), 0);
	assert_int_equal(h_wait_log(agent, "over TLS", 1000), 0);
	t = t_token(&S, "RS256", "rsa1.pem", "rsa1", "alice");
	get_with(&r, t, "rid-42", tp);
	if (r.status != 200)
		fail_msg("want 200, got %ld %s", r.status, r.body ? r.body : "");
	assert_non_null(strcasestr(r.body, "\"x-user-id\":\"alice\""));
	h_resp_free(&r);
	/* The Auth Service saw the gateway's request id and trace context. */
	snprintf(want, sizeof(want), "x-request-id=rid-42 traceparent=%s", tp);
	assert_int_equal(h_wait_log(refsvc, want, 3000), 0);
	/* and so does the agent's decision line */
	assert_int_equal(h_wait_log(agent, "status=0 reason= request_id=rid-42", 3000), 0);
	free(t);
}

static void expect_unavailable(const char *why)
{
	char *t = t_token(&S, "RS256", "rsa1.pem", "rsa1", "alice");
	struct h_resp r;

	get_with(&r, t, "rid-1", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
	if (r.status != 503 || !strstr(r.body, "\"reason\":\"auth_unavailable\""))
		fail_msg("want 503 auth_unavailable, got %ld %s", r.status, r.body ? r.body : "");
	h_resp_free(&r);
	/* The agent says which service failed and gRPC's reason. */
	if (h_wait_log(agent, "rpc auth: ipv4:", 3000) < 0 || h_wait_log(agent, why, 1000) < 0)
		fail_msg("the agent's log does not say why (%s); see %s", why, agent->log);
	free(t);
}

static void test_server_certificate_of_another_ca_is_auth_unavailable(void **state)
{
	(void)state;
	start("auth_tls_rogue_ca", "{ca_file: rogue.pem, cert_file: agent.crt, key_file: agent.key, "
	      "server_name: auth.internal}");
	expect_unavailable("andshake");
}

static void test_missing_client_certificate_is_auth_unavailable(void **state)
{
	(void)state;
	start("auth_tls_no_client_cert", "{ca_file: sca.pem, server_name: auth.internal}");
	expect_unavailable("unavailable (status 14)");
}

/* The same service as a gRPC backend of HAProxy: HTTP/2 over TLS (ALPN
 * h2), the server verified against sca.pem and auth.internal, HAProxy's
 * client certificate accepted by the service's client CA. */
static void test_grpc_backend_over_tls_with_a_client_certificate(void **state)
{
	char *out = NULL;

	(void)state;
	start("grpc_backend_tls", "{ca_file: sca.pem, cert_file: agent.crt, key_file: agent.key, "
	      "server_name: auth.internal}");
	/* one gRPC frame: uncompressed, length 3, ValidateTokenRequest{token: "x"} */
	h_run(NULL, "printf '\\000\\000\\000\\000\\003\\012\\001x' > '%s/req.bin'", S.dir);
	h_run(&out, "curl -sS -i --http2-prior-knowledge -H 'content-type: application/grpc' "
	      "-H 'te: trailers' --data-binary @'%s/req.bin' -o /dev/null -D - "
	      "http://127.0.0.1:%d/spogate.auth.v1.AuthService/ValidateToken 2>&1", S.dir,
	      S.http_port);
	if (!out || !strstr(out, "HTTP/2 200") || !strcasestr(out, "content-type: application/grpc"))
		fail_msg("want a gRPC answer from the TLS backend, got:\n%s", out ? out : "");
	free(out);
	assert_int_equal(h_wait_log(refsvc, "call /spogate.auth.v1.AuthService/ValidateToken", 3000), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_auth_service_over_mtls_with_trace_metadata, teardown),
		cmocka_unit_test_teardown(test_server_certificate_of_another_ca_is_auth_unavailable,
		                          teardown),
		cmocka_unit_test_teardown(test_missing_client_certificate_is_auth_unavailable, teardown),
		cmocka_unit_test_teardown(test_grpc_backend_over_tls_with_a_client_certificate,
		                          teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
