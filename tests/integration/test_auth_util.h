/*
 * Helpers shared by the authentication and authorization integration
 * tests: keys and tokens from spogate-refsvc, the refsvc process and its
 * call counters. Header-only (static) so each test binary stays one file.
 */
#ifndef SPOGATE_TEST_AUTH_UTIL_H
#define SPOGATE_TEST_AUTH_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* Every test binary uses a different subset of the helpers. */
#define T_HELPER static __attribute__((unused))

#define T_ISS "https://auth.test"
#define T_AUD "api"

/* Writes key set <tag> into <dir>/keys (rsa<tag>.pem, ec<tag>.pem,
 * hs<tag>.key, jwks<tag>.json). */
T_HELPER void t_keygen(struct h_stack *s, const char *tag)
{
	if (h_run(NULL, "%s keygen --dir %s/keys --tag %s >/dev/null", h_bin("spogate-refsvc"),
	          s->dir, tag) != 0)
		fail_msg("keygen failed");
}

/* Writes the union of key sets <dir>/keys/jwks<tag>.json (one character
 * per tag) to dest, atomically (rename), so no reader sees half a file. */
T_HELPER void t_merge_jwks(struct h_stack *s, const char *tags, const char *dest)
{
	char cmd[2048];
	size_t n = 0;
	const char *t;

	n += (size_t)snprintf(cmd + n, sizeof(cmd) - n,
	                      "cd %s/keys && python3 -c 'import json,sys; print(json.dumps("
	                      "{\"keys\":sum((json.load(open(f))[\"keys\"] for f in sys.argv[1:]),[])}))'",
	                      s->dir);
	for (t = tags; *t; t++)
		n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, " jwks%c.json", *t);
	snprintf(cmd + n, sizeof(cmd) - n, " > %s.tmp && mv %s.tmp %s", dest, dest, dest);
	if (h_run(NULL, "%s", cmd) != 0)
		fail_msg("cannot merge key sets %s", tags);
}

/* A token from `spogate-refsvc mint <args>` (args is appended to the
 * command line as is, so quote with care). Returns a malloc'd string. */
T_HELPER char *t_mint(struct h_stack *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
T_HELPER char *t_mint(struct h_stack *s, const char *fmt, ...)
{
	char args[2048], *out = NULL;
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	if (h_run(&out, "cd %s/keys && %s mint %s", s->dir, h_bin("spogate-refsvc"), args) != 0) {
		fprintf(stderr, "mint %s: %s\n", args, out ? out : "");
		fail_msg("mint failed");
	}
	n = strlen(out);
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
	return out;
}

/* A standard valid token for key <kid> signed with alg from file. */
T_HELPER char *t_token(struct h_stack *s, const char *alg, const char *keyfile, const char *kid,
                     const char *sub)
{
	return t_mint(s, "--sub %s --roles admin,dev --claim email=%s@example.com --alg %s "
	                 "--key %s --kid %s --iss %s --aud %s --ttl 1h",
	              sub, sub, alg, keyfile, kid, T_ISS, T_AUD);
}

/* GET path with "Authorization: Bearer tok". */
T_HELPER int t_get(struct h_resp *r, struct h_stack *s, const char *path, const char *tok)
{
	char *hdr = malloc(strlen(tok) + 32);
	int rc;

	snprintf(hdr, strlen(tok) + 32, "Authorization: Bearer %s", tok);
	rc = h_get(r, s, path, (const char *const[]){ hdr, NULL });
	free(hdr);
	return rc;
}

/* Asserts a 401/403/503 JSON denial with reason. */
T_HELPER void t_expect(struct h_stack *s, const char *path, const char *tok, long status,
                     const char *reason)
{
	struct h_resp r;
	char want[128];

	assert_int_equal(t_get(&r, s, path, tok), 0);
	if (r.status != status)
		fprintf(stderr, "# %s: got %ld %s, want %ld %s\n", path, r.status,
		        r.body ? r.body : "", status, reason ? reason : "");
	assert_int_equal(r.status, status);
	if (reason) {
		snprintf(want, sizeof(want), "\"reason\":\"%s\"", reason);
		assert_non_null(r.body);
		if (!strstr(r.body, want))
			fprintf(stderr, "# body: %s\n", r.body);
		assert_non_null(strstr(r.body, want));
	}
	h_resp_free(&r);
}

/* The agent with agent.json cfg, then HAProxy with the auth test config
 * (tests/integration/conf/auth*.in; the stack's PROCESSING var is set).
 * Returns the agent. */
T_HELPER struct h_proc *t_start_agent_haproxy(struct h_stack *s, const char *cfg)
{
	struct h_proc *a = h_start_agent(s, cfg, NULL);

	h_render(s, "tests/integration/conf/auth-spoe.conf.in", "auth-spoe.conf");
	h_start_haproxy(s, h_render(s, "tests/integration/conf/auth.cfg.in", "haproxy.cfg"));
	return a;
}

/* Starts the reference service on s->refsvc_port / refsvc_admin_port. */
T_HELPER struct h_proc *t_start_refsvc(struct h_stack *s, const char *extra)
{
	static char cmd[4096];
	char listen[64], admin[64];
	char *argv[40];
	char *p;
	int n = 0;

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", s->refsvc_port);
	snprintf(admin, sizeof(admin), "127.0.0.1:%d", s->refsvc_admin_port);
	snprintf(cmd, sizeof(cmd), "%s", extra ? extra : "");
	argv[n++] = (char *)h_bin("spogate-refsvc");
	argv[n++] = (char *)"serve";
	argv[n++] = (char *)"--listen";
	argv[n++] = listen;
	argv[n++] = (char *)"--admin";
	argv[n++] = admin;
	/* extra is split on single spaces; no argument here contains one. */
	for (p = cmd; *p && n < 38;) {
		argv[n++] = p;
		p += strcspn(p, " ");
		if (*p)
			*p++ = '\0';
	}
	argv[n] = NULL;
	{
		struct h_proc *pr = h_spawn(s, "refsvc", argv);

		if (h_wait_port(s->refsvc_port, 5000) < 0 || h_wait_port(s->refsvc_admin_port, 5000) < 0)
			fail_msg("refsvc did not listen");
		return pr;
	}
}

/* One counter of the reference service ("validate" or "check"). */
T_HELPER long t_calls(struct h_stack *s, const char *which)
{
	struct h_resp r;
	char url[128], key[64], *p;
	long v = -1;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/calls", s->refsvc_admin_port);
	if (h_http(&r, NULL, url, NULL, NULL) != 0)
		return -1;
	snprintf(key, sizeof(key), "\"%s\":", which);
	p = r.body ? strstr(r.body, key) : NULL;
	if (p)
		v = strtol(p + strlen(key), NULL, 10);
	h_resp_free(&r);
	return v;
}

T_HELPER void t_refsvc_admin(struct h_stack *s, const char *what)
{
	struct h_resp r;
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s", s->refsvc_admin_port, what);
	assert_int_equal(h_http(&r, NULL, url, NULL, NULL), 0);
	h_resp_free(&r);
}

#endif
