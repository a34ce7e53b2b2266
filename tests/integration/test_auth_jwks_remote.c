/*
 * Keys from the identity provider, end to end: a real HAProxy, the agent
 * with auth.jwks_uri or auth.oidc_issuer, and an HTTPS JWKS server of the
 * test's own (tests/services/jwks_server.py) with a CA made here by
 * openssl. The provider's behaviour is driven through files in its
 * directory; its request log shows how often the agent fetched.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "test_auth_util.h"

static struct h_stack S;
static struct h_proc *agent, *idp;
static int idp_port;
static char issuer[64];

/* A CA and a server certificate for 127.0.0.1, in <dir>/tls. */
static void make_ca(void)
{
	assert_int_equal(h_run(NULL,
	    "set -e; mkdir -p %s/tls && cd %s/tls; "
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	    "-keyout ca.key -out ca.pem -subj /CN=spogate-test-ca -days 1 "
	    "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign "
	    ">/dev/null 2>&1; "
	    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key "
	    "-out srv.csr -subj /CN=127.0.0.1 >/dev/null 2>&1; "
	    "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext.cnf; "
	    "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
	    "-out srv.pem -days 1 -extfile ext.cnf >/dev/null 2>&1",
	    S.dir, S.dir), 0);
}

/* Writes a provider file atomically (the server reads it per request). */
static void idp_file(const char *name, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void idp_file(const char *name, const char *fmt, ...)
{
	char path[1024], tmp[1100], buf[16384];
	va_list ap;
	FILE *f;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/idp/%s", S.dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	assert_non_null(f);
	fputs(buf, f);
	fclose(f);
	assert_int_equal(rename(tmp, path), 0);
}

static void idp_unlink(const char *name)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/idp/%s", S.dir, name);
	unlink(path);
}

/* The provider serves the union of key sets jwks<tag>.json. */
static void idp_keys(const char *tags)
{
	char dest[600];

	snprintf(dest, sizeof(dest), "%s/idp/jwks.json", S.dir);
	t_merge_jwks(&S, tags, dest);
}

static void idp_start(void)
{
	char port[16], dir[600], cert[600], key[600], root[600];
	char *argv[16];
	int n = 0;

	snprintf(port, sizeof(port), "%d", idp_port);
	snprintf(dir, sizeof(dir), "%s/idp", S.dir);
	snprintf(cert, sizeof(cert), "%s/tls/srv.pem", S.dir);
	snprintf(key, sizeof(key), "%s/tls/srv.key", S.dir);
	/* Tests run from the repository root (the harness's ROOT). */
	if (!getcwd(root, sizeof(root) - 40))
		fail_msg("getcwd");
	strcat(root, "/tests/services/jwks_server.py");
	argv[n++] = (char *)"/usr/bin/python3";
	argv[n++] = root;
	argv[n++] = (char *)"--port";
	argv[n++] = port;
	argv[n++] = (char *)"--cert";
	argv[n++] = cert;
	argv[n++] = (char *)"--key";
	argv[n++] = key;
	argv[n++] = (char *)"--dir";
	argv[n++] = dir;
	argv[n++] = (char *)"--issuer";
	argv[n++] = issuer;
	argv[n] = NULL;
	idp = h_spawn(&S, "idp", argv);
	if (h_wait_port(idp_port, 5000) < 0)
		fail_msg("the JWKS server did not listen");
}

/* How many times the provider served path. */
static int idp_hits(const char *path)
{
	char *out = NULL;
	int n;

	assert_int_equal(h_run(&out, "grep -cx '%s' %s/idp/requests.log || true", path, S.dir), 0);
	n = atoi(out);
	free(out);
	return n;
}

/* Waits until a metric series reaches at least want. */
static void wait_metric(const char *series, double want, int timeout_ms)
{
	double t0 = h_now_ms();

	while (h_metric(S.metrics_port, series) < want) {
		if (h_now_ms() - t0 > timeout_ms)
			fail_msg("%s stayed at %g, want >= %g", series,
			         h_metric(S.metrics_port, series), want);
		usleep(50000);
	}
}

/* s with @ISSUER@ and @DIR@ replaced, in a static buffer. */
static const char *subst(const char *s)
{
	static char out[2048];
	size_t o = 0;

	while (*s && o < sizeof(out) - 700) {
		if (strncmp(s, "@ISSUER@", 8) == 0) {
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%s", issuer);
			s += 8;
		} else if (strncmp(s, "@DIR@", 5) == 0) {
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%s", S.dir);
			s += 5;
		} else {
			out[o++] = *s++;
		}
	}
	out[o] = '\0';
	return out;
}

/* The agent.json spogate-gen makes of a gateway YAML that names the
 * provider by oidc_issuer (and its CA by jwks_ca_file, relative to the
 * YAML). Returns its path. */
static const char *generate(void)
{
	static char path[600];
	char *out = NULL, *aj = NULL;

	h_write(&S, "gateway.yaml",
	        "gateway:\n"
	        "  port: %d\n"
	        "  routes:\n"
	        "    - {path: /private/**, service: echo, auth_required: true}\n"
	        "  auth:\n"
	        "    mode: jwt\n"
	        "    oidc_issuer: %s\n"
	        "    jwks_ca_file: tls/ca.pem\n"
	        "    jwks_refresh: 5m\n"
	        "    audiences: [%s]\n"
	        "    algorithms: [RS256, ES256, EdDSA, PS256]\n"
	        "    timeout: 1500ms\n"
	        "  agent: {address: 127.0.0.1:%d, log_level: debug}\n",
	        S.http_port, issuer, T_AUD, S.agent_port);
	h_write(&S, "registry.yaml", "services:\n  echo: {servers: [\"127.0.0.1:%d\"]}\n",
	        S.echo_port);
	if (h_run(&out, "%s -g %s/gateway.yaml -r %s/registry.yaml -o %s/gen --run-dir %s/gen 2>&1",
	          h_bin("spogate-gen"), S.dir, S.dir, S.dir, S.dir) != 0)
		fail_msg("spogate-gen: %s", out ? out : "");
	free(out);
	snprintf(path, sizeof(path), "%s/gen/agent.json", S.dir);
	assert_int_equal(h_run(&aj, "cat %s", path), 0);
	assert_non_null(strstr(aj, "\"oidc_issuer\": \"https://127.0.0.1:"));
	assert_non_null(strstr(aj, "/tls/ca.pem\""));
	assert_non_null(strstr(aj, "\"jwks_refresh_ms\": 300000"));
	free(aj);
	return path;
}

/* The whole stack with the provider (running when provider_up) serving key
 * set 1; auth_extra are more members of the agent's "auth" section, with
 * @ISSUER@ and @DIR@ replaced, or NULL for the agent.json spogate-gen
 * makes (generate()). */
static void stack_up(const char *name, const char *auth_extra, int provider_up)
{
	const char *cfg;

	h_stack_init(&S, name);
	h_set_var(&S, "PROCESSING", "2s");
	idp_port = h_free_port();
	snprintf(issuer, sizeof(issuer), "https://127.0.0.1:%d", idp_port);
	t_keygen(&S, "1");
	t_keygen(&S, "2");
	make_ca();
	assert_int_equal(h_run(NULL, "mkdir -p %s/idp", S.dir), 0);
	idp_keys("1");
	if (provider_up)
		idp_start();
	h_start_echo(&S, "echo", S.echo_port);
	if (!auth_extra)
		cfg = generate();
	else
		cfg = h_write(&S, "agent.json",
		              "{\"log_level\":\"debug\",\"threads\":2,"
		              "\"auth\":{\"mode\":\"jwt\",\"audiences\":[\"%s\"],"
		              "\"jwks_ca_file\":\"%s/tls/ca.pem\",\"timeout_ms\":1500,"
		              "\"algorithms\":[\"RS256\",\"ES256\",\"EdDSA\",\"PS256\"],%s}}",
		              T_AUD, S.dir, subst(auth_extra));
	agent = t_start_agent_haproxy(&S, cfg);
}

static int teardown(void **state)
{
	(void)state;
	h_stack_stop(&S);
	return 0;
}

/* A token of the provider (iss = its issuer). */
static char *idp_token(const char *alg, const char *key, const char *kid, const char *sub)
{
	return t_mint(&S, "--sub %s --alg %s --key %s --kid %s --iss %s --aud %s --ttl 1h",
	              sub, alg, key, kid, issuer, T_AUD);
}

static void expect_token(const char *alg, const char *key, const char *kid, long status,
                         const char *reason)
{
	char *t = idp_token(alg, key, kid, "alice");

	t_expect(&S, "/private/x", t, status, reason);
	free(t);
}

/* ---- discovery: oidc_issuer, default refresh ---- */

static int setup_discovery(void **state)
{
	(void)state;
	stack_up("auth_jwks_discovery", NULL, 1);
	return 0;
}

static void test_discovery_finds_the_keys_and_rs256_es256_eddsa_ps256_pass(void **state)
{
	(void)state;
	wait_metric("spogate_jwks_fetches_total{outcome=\"ok\"}", 1, 10000);
	assert_true(idp_hits("/.well-known/openid-configuration") >= 1);
	assert_true(idp_hits("/jwks") >= 1);
	expect_token("RS256", "rsa1.pem", "rsa1", 200, NULL);
	expect_token("ES256", "ec1.pem", "ec1", 200, NULL);
	expect_token("EdDSA", "ed1.pem", "ed1", 200, NULL);
	expect_token("PS256", "rsa1.pem", "ps1", 200, NULL);
	/* RFC 9864's name for the same signature: the YAML allows EdDSA,
	 * which admits Ed25519; ed1 is labelled EdDSA at the provider. The
	 * fully-specified name never selects another key type. */
	expect_token("Ed25519", "ed1.pem", "ed1", 200, NULL);
	expect_token("Ed25519", "ed1.pem", "rsa1", 401, "token_invalid");
	/* The provider labels rsa1 RS256 and ps1 PS256: never crossed. */
	expect_token("PS256", "rsa1.pem", "rsa1", 401, "token_invalid");
	expect_token("RS256", "rsa1.pem", "ps1", 401, "token_invalid");
	assert_true(h_metric(S.metrics_port, "spogate_jwks_keys") >= 5);
}

static void test_iss_is_checked_against_the_discovered_issuer(void **state)
{
	char *t = t_token(&S, "RS256", "rsa1.pem", "rsa1", "alice");   /* iss https://auth.test */

	(void)state;
	t_expect(&S, "/private/x", t, 401, "issuer_mismatch");
	free(t);
}

static void test_new_key_at_the_provider_is_used_without_a_signal(void **state)
{
	int before = idp_hits("/jwks");
	char *t;
	struct h_resp r;

	(void)state;
	idp_keys("12");
	/* The provider's max-age sets the next regular fetch. */
	idp_file("cache", "public, max-age=7200");
	/* The first request with the new kid already passes: it waited for
	 * the early fetch its unknown kid asked for. */
	t = idp_token("EdDSA", "ed2.pem", "ed2", "bob");
	assert_int_equal(t_get(&r, &S, "/private/x", t), 0);
	if (r.status != 200)
		fprintf(stderr, "# %ld %s\n", r.status, r.body ? r.body : "");
	assert_int_equal(r.status, 200);
	h_resp_free(&r);
	free(t);
	assert_int_equal(idp_hits("/jwks"), before + 1);
	expect_token("RS256", "rsa2.pem", "rsa2", 200, NULL);
	expect_token("RS256", "rsa1.pem", "rsa1", 200, NULL);
	assert_int_equal(h_wait_log(agent, "next fetch in 7200 s", 2000), 0);
}

/* ---- unknown kids: jwks_uri, default refresh ---- */

static int setup_kids(void **state)
{
	(void)state;
	stack_up("auth_jwks_kids", "\"jwks_uri\":\"@ISSUER@/jwks\"", 1);
	return 0;
}

static void test_fifty_unknown_kids_cause_at_most_a_few_fetches(void **state)
{
	char *toks[50], *hdrs[50];
	long st[50];
	int before, i, n, after;
	char url[128];

	(void)state;
	wait_metric("spogate_jwks_fetches_total{outcome=\"ok\"}", 1, 10000);
	/* A max-age below a minute is raised to one. */
	idp_file("cache", "max-age=5");
	before = idp_hits("/jwks");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/private/x", S.http_port);
	for (i = 0; i < 50; i++) {
		char kid[32];

		snprintf(kid, sizeof(kid), "nope%d", i);
		toks[i] = idp_token("RS256", "rsa1.pem", kid, "mallory");
		hdrs[i] = malloc(strlen(toks[i]) + 32);
		snprintf(hdrs[i], strlen(toks[i]) + 32, "Authorization: Bearer %s", toks[i]);
	}
	/* One after the other, each with its own kid: the first asks for a
	 * fetch, the rest arrive during it or within the next 10 s. */
	for (i = 0; i < 50; i++) {
		assert_int_equal(h_http_many(url, (const char *const[]){ hdrs[i], NULL }, 1, 1,
		                             &st[i], NULL), 0);
		assert_int_equal(st[i], 401);
	}
	after = idp_hits("/jwks");
	n = after - before;
	fprintf(stderr, "# 50 unknown kids: %d fetches\n", n);
	assert_true(n >= 1 && n <= 2);
	assert_true(h_metric(S.metrics_port, "spogate_jwks_early_fetches_total{result=\"rate_limited\"}")
	            >= 40);
	for (i = 0; i < 50; i++) {
		free(toks[i]);
		free(hdrs[i]);
	}
	/* Known kids are untouched by all this. */
	expect_token("RS256", "rsa1.pem", "rsa1", 200, NULL);
	assert_int_equal(h_wait_log(agent, "next fetch in 60 s", 2000), 0);
}

/* ---- a failing provider: jwks_uri, refresh every second ---- */

static int setup_failing(void **state)
{
	(void)state;
	stack_up("auth_jwks_failing", "\"jwks_uri\":\"@ISSUER@/jwks\",\"jwks_refresh_ms\":1000", 1);
	return 0;
}

/* Makes the provider misbehave one way and checks the last good keys stay. */
static void misbehave(const char *outcome)
{
	char series[128];

	snprintf(series, sizeof(series), "spogate_jwks_fetches_total{outcome=\"%s\"}", outcome);
	wait_metric(series, h_metric(S.metrics_port, series) + 1, 15000);
	expect_token("RS256", "rsa1.pem", "rsa1", 200, NULL);
	expect_token("EdDSA", "ed1.pem", "ed1", 200, NULL);
}

static void test_provider_serving_garbage_keeps_the_last_good_keys(void **state)
{
	(void)state;
	wait_metric("spogate_jwks_fetches_total{outcome=\"ok\"}", 1, 10000);
	expect_token("RS256", "rsa1.pem", "rsa1", 200, NULL);
	idp_file("jwks.json", "{\"keys\":[{\"kty\":\"RSA\",");
	misbehave("invalid_json");
	idp_keys("1");
	idp_file("ctype", "text/html");
	misbehave("content_type");
	idp_unlink("ctype");
	idp_file("jwks.json", "{\"keys\":[{\"kty\":\"oct\",\"use\":\"enc\",\"k\":\"AAAA\"}]}");
	misbehave("no_usable_key");
	idp_keys("1");
	idp_file("status", "500");
	misbehave("http_status");
	idp_unlink("status");
	assert_int_equal(h_wait_log(agent, "keeping the last good keys", 1000), 0);
	assert_true(h_metric(S.metrics_port, "spogate_jwks_age_seconds") >= 1);
}

static void test_provider_down_keeps_the_last_good_keys_then_recovers(void **state)
{
	double ok;

	(void)state;
	wait_metric("spogate_jwks_fetches_total{outcome=\"ok\"}", 1, 10000);
	h_stop(idp, 2000);
	misbehave("network");
	misbehave("network");
	ok = h_metric(S.metrics_port, "spogate_jwks_fetches_total{outcome=\"ok\"}");
	idp_keys("2");
	idp_start();
	wait_metric("spogate_jwks_fetches_total{outcome=\"ok\"}", ok + 1, 40000);
	expect_token("RS256", "rsa2.pem", "rsa2", 200, NULL);
	expect_token("RS256", "rsa1.pem", "rsa1", 401, "token_invalid");
}

/* ---- conditional GET: oidc_issuer, refresh every second ---- */

static int setup_conditional(void **state)
{
	(void)state;
	stack_up("auth_jwks_conditional", "\"oidc_issuer\":\"@ISSUER@\",\"jwks_refresh_ms\":1000", 1);
	return 0;
}

/* Requests in the provider's conditional.log with this text. */
static int cond_hits(const char *text)
{
	char *out = NULL;
	int n;

	assert_int_equal(h_run(&out, "grep -cF -- '%s' %s/idp/conditional.log || true", text,
	                       S.dir), 0);
	n = atoi(out);
	free(out);
	return n;
}

#define NOT_MODIFIED "spogate_jwks_fetches_total{outcome=\"not_modified\"}"
#define FETCH_OK     "spogate_jwks_fetches_total{outcome=\"ok\"}"
#define HTTP_STATUS  "spogate_jwks_fetches_total{outcome=\"http_status\"}"

static void test_304_keeps_the_keys_and_counts_as_a_fresh_fetch(void **state)
{
	double ok, nm, last;
	int n200;

	(void)state;
	wait_metric(FETCH_OK, 1, 10000);
	/* The provider starts sending strong ETags (a hash of what it serves). */
	idp_file("etag", "auto");
	idp_file("discovery_etag", "auto");
	ok = h_metric(S.metrics_port, FETCH_OK);
	wait_metric(NOT_MODIFIED, 3, 15000);
	/* One 200 brought the ETag (two if one was on its way as the file
	 * was written), every refresh since is a 304. */
	assert_true(h_metric(S.metrics_port, FETCH_OK) <= ok + 2);
	assert_true(cond_hits("/jwks inm=\"") >= 3);
	assert_true(cond_hits("/.well-known/openid-configuration inm=\"") >= 3);
	assert_int_equal(h_wait_log(agent, "not modified (304), keeping the 5 keys, next fetch in 1 s",
	                            2000), 0);
	expect_token("RS256", "rsa1.pem", "rsa1", 200, NULL);
	expect_token("EdDSA", "ed1.pem", "ed1", 200, NULL);
	assert_int_equal((int)h_metric(S.metrics_port, "spogate_jwks_keys"), 5);
	/* A 304 is a successful refresh: the key set's age starts again
	 * while no 200 arrives. */
	ok = h_metric(S.metrics_port, FETCH_OK);
	nm = h_metric(S.metrics_port, NOT_MODIFIED);
	last = h_metric(S.metrics_port, "spogate_jwks_last_success_timestamp_seconds");
	wait_metric("spogate_jwks_last_success_timestamp_seconds", last + 2, 15000);
	assert_true(h_metric(S.metrics_port, NOT_MODIFIED) >= nm + 2);
	assert_true(h_metric(S.metrics_port, FETCH_OK) == ok);
	/* The provider rotates: a new set, so a new ETag and a 200. */
	n200 = cond_hits("/jwks inm=\"");
	idp_keys("2");
	wait_metric(FETCH_OK, ok + 1, 15000);
	expect_token("RS256", "rsa2.pem", "rsa2", 200, NULL);
	expect_token("RS256", "rsa1.pem", "rsa1", 401, "token_invalid");
	nm = h_metric(S.metrics_port, NOT_MODIFIED);
	wait_metric(NOT_MODIFIED, nm + 1, 15000);
	assert_true(cond_hits("/jwks inm=\"") > n200);
	expect_token("RS256", "rsa2.pem", "rsa2", 200, NULL);
}

static void test_last_modified_alone_is_used_and_weak_etags_are_not(void **state)
{
	double ok, nm;
	int before;

	(void)state;
	/* Last-Modified only: If-Modified-Since with it, then 304s. */
	idp_unlink("etag");
	idp_file("last_modified", "auto");
	nm = h_metric(S.metrics_port, NOT_MODIFIED);
	before = cond_hits("/jwks inm=- ims=");
	wait_metric(NOT_MODIFIED, nm + 2, 15000);
	assert_true(cond_hits("/jwks inm=- ims=") >= before + 2);
	assert_true(cond_hits(" GMT -> 304") >= 2);
	expect_token("RS256", "rsa2.pem", "rsa2", 200, NULL);
	/* A weak ETag, or a Last-Modified in the future, is not sent back:
	 * every refresh downloads the set. */
	idp_unlink("last_modified");
	idp_file("etag", "W/\"weak\"");
	idp_file("last_modified", "Fri, 01 Jan 2100 00:00:00 GMT");
	ok = h_metric(S.metrics_port, FETCH_OK);
	wait_metric(FETCH_OK, ok + 3, 15000);
	before = cond_hits("/jwks inm=- ims=- -> 200");
	nm = h_metric(S.metrics_port, NOT_MODIFIED);
	wait_metric(FETCH_OK, ok + 5, 15000);
	assert_true(cond_hits("/jwks inm=- ims=- -> 200") >= before + 2);
	assert_true(h_metric(S.metrics_port, NOT_MODIFIED) == nm);
	assert_int_equal(cond_hits("inm=W/"), 0);
	assert_int_equal(cond_hits("ims=Fri, 01 Jan 2100"), 0);
	idp_unlink("last_modified");
}

static void test_304_after_failures_recovers_and_a_lying_304_is_refused(void **state)
{
	double ok, nm, hs;
	int before;

	(void)state;
	idp_file("etag", "\"v1\"");
	nm = h_metric(S.metrics_port, NOT_MODIFIED);
	wait_metric(NOT_MODIFIED, nm + 1, 15000);
	/* Failures keep the validators: the first answer after them is a
	 * 304, which counts as a success; the keys are unchanged. */
	idp_file("status", "500");
	hs = h_metric(S.metrics_port, HTTP_STATUS);
	wait_metric(HTTP_STATUS, hs + 2, 15000);
	nm = h_metric(S.metrics_port, NOT_MODIFIED);
	idp_unlink("status");
	wait_metric(NOT_MODIFIED, nm + 1, 15000);
	expect_token("RS256", "rsa2.pem", "rsa2", 200, NULL);
	/* A 304 naming another ETag than the one asked about revalidates
	 * nothing: a failure, and the next GET asks unconditionally. */
	hs = h_metric(S.metrics_port, HTTP_STATUS);
	before = cond_hits("/jwks inm=- ims=- -> 304");
	/* status first: with etag "v9" alone, a 200 would bring v9 along. */
	idp_file("status", "304");
	idp_file("etag", "\"v9\"");
	wait_metric(HTTP_STATUS, hs + 2, 15000);
	assert_true(cond_hits("/jwks inm=\"v1\" ims=- -> 304") >= 1);
	assert_true(cond_hits("/jwks inm=- ims=- -> 304") > before);
	assert_int_equal(h_wait_log(agent, "names ETag \"v9\", not the \"v1\" asked about", 2000), 0);
	expect_token("RS256", "rsa2.pem", "rsa2", 200, NULL);
	ok = h_metric(S.metrics_port, FETCH_OK);
	idp_unlink("status");
	wait_metric(FETCH_OK, ok + 1, 15000);
	/* SIGHUP asks unconditionally even with validators in hand. */
	nm = h_metric(S.metrics_port, NOT_MODIFIED);
	wait_metric(NOT_MODIFIED, nm + 1, 15000);
	ok = h_metric(S.metrics_port, FETCH_OK);
	assert_int_equal(h_signal(agent, SIGHUP), 0);
	wait_metric(FETCH_OK, ok + 1, 15000);
	expect_token("RS256", "rsa2.pem", "rsa2", 200, NULL);
}

/* ---- start-up with the provider down ---- */

static int setup_startup_down(void **state)
{
	(void)state;
	stack_up("auth_jwks_startup", "\"jwks_uri\":\"@ISSUER@/jwks\"", 0);
	return 0;
}

static void test_startup_with_the_provider_down_is_503_then_200(void **state)
{
	(void)state;
	expect_token("RS256", "rsa1.pem", "rsa1", 503, "auth_unavailable");
	expect_token("EdDSA", "ed1.pem", "ed1", 503, "auth_unavailable");
	idp_start();
	wait_metric("spogate_jwks_fetches_total{outcome=\"ok\"}", 1, 20000);
	expect_token("RS256", "rsa1.pem", "rsa1", 200, NULL);
	expect_token("EdDSA", "ed1.pem", "ed1", 200, NULL);
}

static void test_sighup_fetches_the_keys_again(void **state)
{
	double ok = h_metric(S.metrics_port, "spogate_jwks_fetches_total{outcome=\"ok\"}");
	int before = idp_hits("/jwks");

	(void)state;
	idp_keys("2");
	assert_int_equal(h_signal(agent, SIGHUP), 0);
	wait_metric("spogate_jwks_fetches_total{outcome=\"ok\"}", ok + 1, 10000);
	assert_int_equal(idp_hits("/jwks"), before + 1);
	expect_token("RS256", "rsa2.pem", "rsa2", 200, NULL);
	expect_token("RS256", "rsa1.pem", "rsa1", 401, "token_invalid");
}

/* ---- start-up with the provider down, jwks_file as the fallback ---- */

static int setup_fallback(void **state)
{
	(void)state;
	stack_up("auth_jwks_fallback",
	         "\"jwks_uri\":\"@ISSUER@/jwks\",\"jwks_file\":\"@DIR@/keys/jwks1.json\"", 0);
	return 0;
}

static void test_jwks_file_serves_until_the_first_fetch(void **state)
{
	(void)state;
	expect_token("RS256", "rsa1.pem", "rsa1", 200, NULL);
	expect_token("RS256", "rsa2.pem", "rsa2", 401, "token_invalid");
	idp_keys("2");
	idp_start();
	wait_metric("spogate_jwks_fetches_total{outcome=\"ok\"}", 1, 20000);
	expect_token("RS256", "rsa2.pem", "rsa2", 200, NULL);
}

int main(void)
{
	const struct CMUnitTest discovery[] = {
		cmocka_unit_test(test_discovery_finds_the_keys_and_rs256_es256_eddsa_ps256_pass),
		cmocka_unit_test(test_iss_is_checked_against_the_discovered_issuer),
		cmocka_unit_test(test_new_key_at_the_provider_is_used_without_a_signal),
	};
	const struct CMUnitTest kids[] = {
		cmocka_unit_test(test_fifty_unknown_kids_cause_at_most_a_few_fetches),
	};
	const struct CMUnitTest failing[] = {
		cmocka_unit_test(test_provider_serving_garbage_keeps_the_last_good_keys),
		cmocka_unit_test(test_provider_down_keeps_the_last_good_keys_then_recovers),
	};
	const struct CMUnitTest conditional[] = {
		cmocka_unit_test(test_304_keeps_the_keys_and_counts_as_a_fresh_fetch),
		cmocka_unit_test(test_last_modified_alone_is_used_and_weak_etags_are_not),
		cmocka_unit_test(test_304_after_failures_recovers_and_a_lying_304_is_refused),
	};
	const struct CMUnitTest startup[] = {
		cmocka_unit_test(test_startup_with_the_provider_down_is_503_then_200),
		cmocka_unit_test(test_sighup_fetches_the_keys_again),
	};
	const struct CMUnitTest fallback[] = {
		cmocka_unit_test(test_jwks_file_serves_until_the_first_fetch),
	};
	int rc = 0;

	rc |= cmocka_run_group_tests_name("discovery", discovery, setup_discovery, teardown);
	rc |= cmocka_run_group_tests_name("unknown kids", kids, setup_kids, teardown);
	rc |= cmocka_run_group_tests_name("failing provider", failing, setup_failing, teardown);
	rc |= cmocka_run_group_tests_name("conditional GET", conditional, setup_conditional,
	                                  teardown);
	rc |= cmocka_run_group_tests_name("startup", startup, setup_startup_down, teardown);
	rc |= cmocka_run_group_tests_name("fallback", fallback, setup_fallback, teardown);
	return rc;
}
