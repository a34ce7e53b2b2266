/*
 * The production edge, end to end through the real HAProxy with a
 * generated configuration and certificates made here with the openssl
 * CLI: HTTPS with HTTP/2, the redirect of plain HTTP, HSTS, SNI with two
 * certificates, mTLS accepted and refused, backends over verified TLS
 * (and refused when their certificate comes from another CA), Host
 * routing, request ids and W3C traceparent, wildcard CORS origins and
 * the admin frontend behind basic auth. curl is the client: it speaks
 * HTTP/2 and TLS with client certificates as users' tools do.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static struct h_stack S;
static struct h_proc *haproxy;
static int tls_port, back_port, rogue_port;
static const char *htpasswd;       /* admin.htpasswd's content, when set */

/* Makes the CAs and certificates of the test in S.dir: ca (the gateway's
 * server certificates api and other), bca (a backend's), rogue (another
 * CA, same names), cca (clients: alice). */
static void make_certs(void)
{
	h_certs(&S,
		"mkca ca; mkca bca; mkca rogue; mkca cca\n"
		"leaf api ca api.example.test 'DNS:api.example.test,DNS:*.example.test,DNS:localhost'\n"
		"leaf other ca other.test DNS:other.test\n"
		"leaf backend bca backend.internal DNS:backend.internal\n"
		"leaf rogueback rogue backend.internal DNS:backend.internal\n"
		"leaf alice cca alice DNS:alice.clients.test\n"
		"leaf mallory rogue alice DNS:alice.clients.test\n"
		"openssl x509 -in alice.crt -outform der | sha256sum | cut -c1-64 | tr a-f A-F > alice.fp\n");
}

/* A second HAProxy: two TLS servers in front of the echo backend, one
 * with a certificate of the backend CA, one of the rogue CA. */
static void start_tls_backends(void)
{
	const char *cfg = h_write(&S, "backends.cfg",
		"global\n    log stdout format raw local0\n"
		"defaults\n    mode http\n    log global\n    timeout connect 1s\n"
		"    timeout client 10s\n    timeout server 10s\n"
		"frontend good\n    bind 127.0.0.1:%d ssl crt %s/backend.pem alpn http/1.1\n"
		"    http-request return status 200 content-type text/plain string ok if { path /health }\n"
		"    http-request set-header X-Backend-Sni \"%%[ssl_fc_sni]\"\n"
		"    default_backend echo\n"
		"frontend rogue\n    bind 127.0.0.1:%d ssl crt %s/rogueback.pem alpn http/1.1\n"
		"    http-request return status 200 content-type text/plain string ok if { path /health }\n"
		"    default_backend echo\n"
		"backend echo\n    server e 127.0.0.1:%d\n",
		back_port, S.dir, rogue_port, S.dir, S.echo_port);

	h_start_haproxy_as(&S, "tls-backends", cfg, back_port);
}

/* Generates the gateway from tls_yaml (more gateway.tls keys), extra
 * (more gateway keys) and admin_extra (more gateway.admin keys) and
 * starts everything. */
static void start(const char *name, const char *tls_yaml, const char *extra,
		  const char *admin_extra)
{
	char *out = NULL, path[600];
	const char *gw, *reg;

	h_stack_init(&S, name);
	tls_port = h_free_port();
	back_port = h_free_port();
	rogue_port = h_free_port();
	make_certs();
	if (htpasswd)
		h_write(&S, "admin.htpasswd", "# ops users\n%s\n", htpasswd);
	gw = h_write(&S, "gateway.yaml",
		"gateway:\n"
		"  port: %d\n"
		"  bind: 127.0.0.1\n"
		"  tls: {port: %d, certificates: [api.pem, other.pem]%s}\n"
		"%s"
		"  routes:\n"
		"    - {path: /echo/**, service: echo, auth_required: false}\n"
		"    - {path: /secure/**, service: tlsback, auth_required: false}\n"
		"    - {path: /rogue/**, service: rogueback, auth_required: false}\n"
		"    - {path: /h/**, service: echo, auth_required: false, hosts: [api.example.test],\n"
		"       response_headers: {set: {X-Route: exact}}}\n"
		"    - {path: /h/**, service: echo, auth_required: false, hosts: [\"*.Example.test\"],\n"
		"       response_headers: {set: {X-Route: wild}}}\n"
		"    - {path: /h/deep/**, service: echo, auth_required: false, hosts: [\"*.example.test\"],\n"
		"       response_headers: {set: {X-Route: wild-deep}}}\n"
		"    - {path: /h/**, service: echo, auth_required: false,\n"
		"       response_headers: {set: {X-Route: any}}}\n"
		"  cors: {allowed_origins: [\"https://*.example.test\"], allowed_methods: [GET, POST]}\n"
		"  auth: {mode: none}\n"
		"  authz: {mode: none}\n"
		"  admin: {stats: 127.0.0.1:%d%s}\n",
		S.http_port, tls_port, tls_yaml, extra, S.stats_port, admin_extra);
	reg = h_write(&S, "registry.yaml",
		"services:\n"
		"  echo: {servers: [\"127.0.0.1:%d\"], health: false}\n"
		"  tlsback:\n"
		"    servers: [\"127.0.0.1:%d\"]\n"
		"    health: {path: /health, interval: 300ms, rise: 1, fall: 3}\n"
		"    tls: {ca_file: bca.pem, sni: backend.internal}\n"
		"  rogueback:\n"
		"    servers: [\"127.0.0.1:%d\"]\n"
		"    health: {path: /health, interval: 300ms, rise: 1, fall: 1}\n"
		"    tls: {ca_file: bca.pem, sni: backend.internal}\n",
		S.echo_port, back_port, rogue_port);
	if (h_run(&out, "%s -g %s -r %s -o %s --run-dir %s 2>&1", h_bin("spogate-gen"), gw, reg,
		  S.dir, S.dir) != 0)
		fail_msg("spogate-gen failed: %s", out ? out : "");
	free(out);
	h_start_echo(&S, "echo", S.echo_port);
	start_tls_backends();
	snprintf(path, sizeof(path), "%s/haproxy.cfg", S.dir);
	haproxy = h_start_haproxy(&S, path);
	h_wait_port(tls_port, 5000);
}

static int teardown(void **state)
{
	(void)state;
	h_stack_stop(&S);
	return 0;
}

/* Runs curl (silent, headers included) with args; returns its output,
 * malloc'd, and its exit status in *rc when rc is not NULL. */
static char *curl(int *rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *curl(int *rc, const char *fmt, ...)
{
	char args[2048];
	char *out = NULL;
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	st = h_run(&out, "cd '%s' && curl -sS -i --max-time 10 %s 2>&1", S.dir, args);
	if (rc)
		*rc = st;
	return out ? out : strdup("");
}

/* curl of https://<host>:<tls port><path>, the name resolving to
 * 127.0.0.1 and verified against the test CA. */
static char *https(const char *host, const char *path, const char *more)
{
	int rc;
	char *out = curl(&rc, "--cacert ca.pem --resolve %s:%d:127.0.0.1 %s 'https://%s:%d%s'",
			 host, tls_port, more, host, tls_port, path);

	if (rc != 0)
		fail_msg("curl https://%s%s failed: %s", host, path, out);
	return out;
}

#define assert_has(hay, needle) \
	do { if (!strcasestr((hay), (needle))) fail_msg("'%s' not in:\n%s", (needle), (hay)); } while (0)
#define assert_lacks(hay, needle) \
	do { if (strcasestr((hay), (needle))) fail_msg("'%s' unexpectedly in:\n%s", (needle), (hay)); } while (0)

/* Copies the value of header name (case-insensitive) from curl output. */
static const char *hdr(const char *out, const char *name)
{
	static char v[512];
	char pat[128];
	const char *p;
	size_t n;

	snprintf(pat, sizeof(pat), "\n%s: ", name);
	p = strcasestr(out, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	n = strcspn(p, "\r\n");
	snprintf(v, sizeof(v), "%.*s", (int)n, p);
	return v;
}

static void test_https_speaks_http2_with_hsts(void **state)
{
	char *out;

	(void)state;
	start("tls_front", ", hsts: 365d", "", "");
	out = https("api.example.test", "/echo/x", "--http2");
	assert_has(out, "HTTP/2 200");
	assert_has(out, "strict-transport-security: max-age=31536000");
	assert_has(out, "\"x-forwarded-proto\":\"https\"");
	free(out);
	out = https("api.example.test", "/echo/x", "--http1.1");
	assert_has(out, "HTTP/1.1 200");
	free(out);
}

static void test_sni_picks_the_certificate(void **state)
{
	char *out;

	(void)state;
	start("tls_sni", "", "", "");
	/* curl checks the name: each succeeds only with its own certificate. */
	out = https("other.test", "/echo/x", "");
	assert_has(out, " 200");
	free(out);
	out = https("api.example.test", "/echo/x", "");
	assert_has(out, " 200");
	free(out);
}

static void test_plain_http_is_redirected_without_hsts(void **state)
{
	char *out, want[256];

	(void)state;
	start("tls_redirect", ", hsts: 1d", "  trusted_proxies: [127.0.0.1]\n", "");
	out = curl(NULL, "-H 'Host: Api.Example.test:%d' 'http://127.0.0.1:%d/echo/x?a=1'",
		   S.http_port, S.http_port);
	assert_has(out, "HTTP/1.1 308");
	snprintf(want, sizeof(want), "https://api.example.test:%d/echo/x?a=1", tls_port);
	assert_string_equal(hdr(out, "location"), want);
	assert_lacks(out, "strict-transport-security");
	free(out);
	/* A trusted proxy that terminated TLS itself is not redirected. */
	out = curl(NULL, "-H 'X-Forwarded-Proto: https' http://127.0.0.1:%d/echo/x", S.http_port);
	assert_has(out, "HTTP/1.1 200");
	assert_has(out, "\"x-forwarded-proto\":\"https\"");
	free(out);
}

static void test_backend_tls_is_verified(void **state)
{
	char *out;
	int i;

	(void)state;
	start("tls_backend", "", "", "");
	/* A loaded machine can fail one early check: give it a few tries. */
	for (i = 0;; i++) {
		out = https("api.example.test", "/secure/x", "");
		if (strstr(out, " 200") || i == 20)
			break;
		free(out);
		usleep(200 * 1000);
	}
	assert_has(out, " 200");
	/* The backend saw the SNI name it is verified against. */
	assert_has(out, "\"x-backend-sni\":\"backend.internal\"");
	free(out);
}

static void test_backend_with_another_ca_is_never_used(void **state)
{
	char *out;
	int i;

	(void)state;
	start("tls_backend_rogue", "", "", "");
	for (i = 0; i < 3; i++) {
		out = https("api.example.test", "/rogue/x", "");
		assert_has(out, " 503");
		assert_has(out, "{\"error\":\"service_unavailable\"");
		assert_lacks(out, "x-echo");
		free(out);
	}
	/* Its health checks fail on the handshake, so it goes down. */
	assert_int_equal(h_wait_log(haproxy, "svc_rogueback/srv1 is DOWN", 5000), 0);
}

static void test_host_routing_precedence(void **state)
{
	static const char *const cases[][3] = {
		{ "api.example.test", "/h/x", "exact" },
		{ "API.Example.TEST:443", "/h/x", "exact" },
		/* exact host before the more specific wildcard path */
		{ "api.example.test", "/h/deep/x", "exact" },
		{ "a.example.test", "/h/x", "wild" },
		{ "a.example.test", "/h/deep/x", "wild-deep" },
		/* the wildcard is one label */
		{ "a.b.example.test", "/h/x", "any" },
		{ "elsewhere.org", "/h/x", "any" },
	};
	size_t i;

	(void)state;
	start("tls_hosts", "", "", "");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char more[128];
		char *out;
		snprintf(more, sizeof(more), "--http1.1 -H 'Host: %s'", cases[i][0]);
		out = https("api.example.test", cases[i][1], more);
		if (!hdr(out, "x-route") || strcmp(hdr(out, "x-route"), cases[i][2]) != 0)
			fail_msg("Host %s %s: want route %s, got:\n%s", cases[i][0], cases[i][1],
				 cases[i][2], out);
		free(out);
	}
	/* HTTP/2 carries the host as :authority. */
	{
		char *out = https("a.example.test", "/h/x", "--http2");
		assert_has(out, "HTTP/2 200");
		assert_string_equal(hdr(out, "x-route"), "wild");
		free(out);
	}
}

static void test_request_id_and_traceparent(void **state)
{
	static const char tp[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
	char *out, id[64], want[256];
	const char *v;

	(void)state;
	start("tls_reqid", "", "", "");
	/* Generated when absent; the backend, the client and the log agree. */
	out = https("api.example.test", "/echo/x", "");
	v = hdr(out, "x-request-id");
	assert_non_null(v);
	assert_int_equal(strlen(v), 36);
	snprintf(id, sizeof(id), "%s", v);
	snprintf(want, sizeof(want), "\"x-request-id\":\"%s\"", id);
	assert_has(out, want);
	assert_has(out, "\"traceparent\":\"00-");
	assert_lacks(out, "tracestate");
	snprintf(want, sizeof(want), "\"request_id\":\"%s\",\"traceparent\":\"00-", id);
	assert_int_equal(h_wait_log(haproxy, want, 3000), 0);
	free(out);

	/* A valid traceparent is kept, with its tracestate. */
	snprintf(want, sizeof(want), "-H 'traceparent: %s' -H 'tracestate: k=v,x=y'", tp);
	out = https("api.example.test", "/echo/x", want);
	snprintf(want, sizeof(want), "\"traceparent\":\"%s\"", tp);
	assert_has(out, want);
	assert_has(out, "\"tracestate\":\"k=v,x=y\"");
	free(out);
	snprintf(want, sizeof(want), "\"traceparent\":\"%s\"", tp);
	assert_int_equal(h_wait_log(haproxy, want, 3000), 0);

	/* An invalid one (zero trace id, or upper case) is replaced, and its
	 * tracestate dropped. */
	out = https("api.example.test", "/echo/x",
		    "-H 'traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01' "
		    "-H 'tracestate: k=v'");
	assert_lacks(out, "\"traceparent\":\"00-0000");
	assert_has(out, "\"traceparent\":\"00-");
	assert_lacks(out, "tracestate");
	free(out);
	out = https("api.example.test", "/echo/x",
		    "-H 'traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01'");
	assert_lacks(out, "4BF92F");
	assert_has(out, "\"traceparent\":\"00-");
	free(out);

	/* Without trusted proxies a client's X-Request-ID is not kept. */
	out = https("api.example.test", "/echo/x", "-H 'X-Request-ID: mine'");
	assert_lacks(out, "\"x-request-id\":\"mine\"");
	free(out);

	/* The gateway's own answers carry it too. */
	out = https("api.example.test", "/nowhere", "");
	assert_has(out, " 404");
	snprintf(want, sizeof(want), "{\"error\":\"not_found\",\"request_id\":\"%s\"}",
		 hdr(out, "x-request-id"));
	assert_has(out, want);
	free(out);
}

static void test_cors_wildcard_origin(void **state)
{
	char *out;

	(void)state;
	start("tls_cors", "", "", "");
	out = https("api.example.test", "/echo/x", "-H 'Origin: https://app.example.test'");
	assert_string_equal(hdr(out, "access-control-allow-origin"), "https://app.example.test");
	assert_string_equal(hdr(out, "vary"), "Origin");
	free(out);
	/* one label only, and the scheme is part of the origin */
	out = https("api.example.test", "/echo/x", "-H 'Origin: https://a.b.example.test'");
	assert_null(hdr(out, "access-control-allow-origin"));
	free(out);
	out = https("api.example.test", "/echo/x", "-H 'Origin: http://app.example.test'");
	assert_null(hdr(out, "access-control-allow-origin"));
	free(out);
	/* A preflight to a routed path is answered; to an unrouted one, 404. */
	out = https("api.example.test", "/echo/x", "-X OPTIONS -H 'Origin: https://app.example.test' "
		    "-H 'Access-Control-Request-Method: POST'");
	assert_has(out, " 204");
	assert_string_equal(hdr(out, "vary"),
			    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
	assert_string_equal(hdr(out, "access-control-allow-methods"), "GET, POST");
	free(out);
	out = https("api.example.test", "/nowhere", "-X OPTIONS -H 'Origin: https://app.example.test' "
		    "-H 'Access-Control-Request-Method: POST'");
	assert_has(out, " 404");
	assert_has(out, "{\"error\":\"not_found\"");
	free(out);
}

static void test_admin_needs_basic_auth(void **state)
{
	char extra[512], line[256], *hash = NULL, *hash2 = NULL, *out;

	(void)state;
	assert_int_equal(h_run(&hash, "openssl passwd -6 -salt testsalt s3cret"), 0);
	hash[strcspn(hash, "\n")] = '\0';
	assert_int_equal(h_run(&hash2, "openssl passwd -5 -salt othersalt devpw"), 0);
	hash2[strcspn(hash2, "\n")] = '\0';
	snprintf(extra, sizeof(extra), ", users: {ops: \"%s\"}, password_file: admin.htpasswd", hash);
	snprintf(line, sizeof(line), "dev:%s", hash2);
	htpasswd = line;
	free(hash);
	free(hash2);
	start("tls_admin", "", "", extra);
	htpasswd = NULL;
	h_wait_port(S.stats_port, 3000);
	out = curl(NULL, "http://127.0.0.1:%d/", S.stats_port);
	assert_has(out, " 401");
	assert_has(out, "www-authenticate: Basic realm=\"spogate-admin\"");
	free(out);
	out = curl(NULL, "-u ops:wrong http://127.0.0.1:%d/metrics", S.stats_port);
	assert_has(out, " 401");
	free(out);
	out = curl(NULL, "-u ops:s3cret http://127.0.0.1:%d/metrics", S.stats_port);
	assert_has(out, " 200");
	assert_has(out, "haproxy_process_");
	free(out);
	/* a user of the password file */
	out = curl(NULL, "-u dev:devpw http://127.0.0.1:%d/metrics", S.stats_port);
	assert_has(out, " 200");
	free(out);
	out = curl(NULL, "-u ops:s3cret 'http://127.0.0.1:%d/;csv'", S.stats_port);
	assert_has(out, " 200");
	assert_has(out, "svc_echo");
	free(out);
}

static void test_mtls_accepts_the_clients_ca_only(void **state)
{
	char *out, *fp = NULL, want[256];
	int rc;

	(void)state;
	start("tls_mtls", ", client_ca: cca.pem, redirect_http: false",
	      "  trusted_proxies: [127.0.0.1]\n", "");
	out = https("api.example.test", "/echo/x",
		    "--cert alice.crt --key alice.key -H 'X-Client-Subject: forged'");
	assert_has(out, " 200");
	assert_has(out, "\"x-client-subject\":\"/CN=alice\"");
	assert_has(out, "\"x-client-issuer\":\"/CN=cca test CA\"");
	assert_lacks(out, "forged");
	assert_int_equal(h_run(&fp, "cat '%s/alice.fp'", S.dir), 0);
	fp[strcspn(fp, "\n")] = '\0';
	snprintf(want, sizeof(want), "\"x-client-fingerprint\":\"%s\"", fp);
	assert_has(out, want);
	free(fp);
	free(out);

	/* No certificate, or one of another CA: the handshake is refused. */
	out = curl(&rc, "--cacert ca.pem --resolve api.example.test:%d:127.0.0.1 "
		   "https://api.example.test:%d/echo/x", tls_port, tls_port);
	assert_int_not_equal(rc, 0);
	assert_lacks(out, "HTTP/");
	free(out);
	out = curl(&rc, "--cacert ca.pem --cert mallory.crt --key mallory.key "
		   "--resolve api.example.test:%d:127.0.0.1 https://api.example.test:%d/echo/x",
		   tls_port, tls_port);
	assert_int_not_equal(rc, 0);
	assert_lacks(out, "HTTP/");
	free(out);

	/* Plain HTTP (no redirect here): forged X-Client-* never pass, and
	 * a trusted proxy's X-Request-ID is kept. */
	out = curl(NULL, "-H 'X-Client-Subject: forged' -H 'X-Client-Fingerprint: AA' "
		   "-H 'X-Request-ID: from-proxy-1' http://127.0.0.1:%d/echo/x", S.http_port);
	assert_has(out, " 200");
	assert_lacks(out, "forged");
	assert_lacks(out, "x-client-");
	assert_has(out, "\"x-request-id\":\"from-proxy-1\"");
	assert_string_equal(hdr(out, "x-request-id"), "from-proxy-1");
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_https_speaks_http2_with_hsts, teardown),
		cmocka_unit_test_teardown(test_sni_picks_the_certificate, teardown),
		cmocka_unit_test_teardown(test_plain_http_is_redirected_without_hsts, teardown),
		cmocka_unit_test_teardown(test_backend_tls_is_verified, teardown),
		cmocka_unit_test_teardown(test_backend_with_another_ca_is_never_used, teardown),
		cmocka_unit_test_teardown(test_host_routing_precedence, teardown),
		cmocka_unit_test_teardown(test_request_id_and_traceparent, teardown),
		cmocka_unit_test_teardown(test_cors_wildcard_origin, teardown),
		cmocka_unit_test_teardown(test_admin_needs_basic_auth, teardown),
		cmocka_unit_test_teardown(test_mtls_accepts_the_clients_ca_only, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
