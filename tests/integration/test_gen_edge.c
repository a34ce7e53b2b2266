/*
 * The edge, as an attacker tries it: a generated configuration, the real
 * HAProxy, the real agent (HS256 tokens verified locally) and an echo
 * backend that shows what it received. Requests are written on raw
 * sockets, so that dot segments, duplicate headers and odd header
 * spellings reach HAProxy exactly as sent (curl would clean them up).
 *
 * Also the operator's side of the edge: the access log is JSON lines,
 * HAProxy's own errors are JSON, secrets are files only their owner reads
 * (and can come from a file or the environment), every binary answers
 * --version, and --check refuses a run directory that does not exist.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"

static struct h_stack S;
static struct h_proc *haproxy, *agent;
static char keydir[600];
static int blackhole_fd = -1, blackhole_port, dead_port;

#define SECRET "s3cr3t-redis-pw-8271"

static mode_t mode_of(const char *path);

/* A listening socket that never accepts: HAProxy connects, sends its
 * request and waits (the route's timeout gives 504). */
static int open_blackhole(int *port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		fail_msg("blackhole socket");
	*port = ntohs(sa.sin_port);
	return fd;
}

/* A new stack S with its HS256 keys in S.dir/keys. */
static void init(const char *name)
{
	h_stack_init(&S, name);
	snprintf(keydir, sizeof(keydir), "%s/keys", S.dir);
	assert_int_equal(h_run(NULL, "%s keygen --dir %s >/dev/null 2>&1", h_bin("spogate-refsvc"),
	                       keydir), 0);
	if (blackhole_fd < 0)
		blackhole_fd = open_blackhole(&blackhole_port);
	dead_port = h_free_port();
}

/* Writes the gateway YAML (extra: more gateway keys) and the registry,
 * runs spogate-gen into S.dir. */
static void generate(const char *extra)
{
	char *out = NULL;
	const char *gw, *reg;

	gw = h_write(&S, "gateway.yaml",
	             "gateway:\n"
	             "  port: %d\n"
	             "  bind: 127.0.0.1\n"
	             "  timeouts: {http_request: 1s}\n"
	             "  routes:\n"
	             "    - {path: /api/public/**, service: echo, auth_required: false}\n"
	             "    - {path: /api/admin/**, service: echo}\n"
	             "    - {path: /dead/**, service: dead, auth_required: false}\n"
	             "    - {path: /slow/**, service: slow, auth_required: false, timeout: 300ms}\n"
	             "  auth: {mode: jwt, jwks_file: %s/jwks1.json, algorithms: [HS256]}\n"
	             "  authz: {mode: none}\n"
	             "  agent: {address: 127.0.0.1:%d, threads: 1}\n"
	             "  admin: {stats: 127.0.0.1:%d, metrics: 127.0.0.1:%d}\n"
	             "%s",
	             S.http_port, keydir, S.agent_port, S.stats_port, S.metrics_port,
	             extra ? extra : "");
	reg = h_write(&S, "registry.yaml",
	              "services:\n"
	              "  echo: {servers: [\"127.0.0.1:%d\"], health: false}\n"
	              "  dead: {servers: [\"127.0.0.1:%d\"], health: false, retries: 0}\n"
	              "  slow: {servers: [\"127.0.0.1:%d\"], health: false, retries: 0}\n",
	              S.echo_port, dead_port, blackhole_port);
	if (h_run(&out, "%s -g %s -r %s -o %s 2>&1", h_bin("spogate-gen"), gw, reg, S.dir) != 0)
		fail_msg("spogate-gen: %s", out);
	free(out);
}

static void start_agent(void)
{
	char json[700];

	snprintf(json, sizeof(json), "%s/agent.json", S.dir);
	agent = h_start_agent(&S, json, NULL);
}

/* Generates and starts echo, the agent and HAProxy. */
static void run(const char *extra)
{
	char cfg[700];

	generate(extra);
	h_start_echo(&S, "echo", S.echo_port);
	start_agent();
	snprintf(cfg, sizeof(cfg), "%s/haproxy.cfg", S.dir);
	haproxy = h_start_haproxy(&S, cfg);
}

static void start(const char *name)
{
	init(name);
	run(NULL);
}

static int teardown(void **state)
{
	(void)state;
	h_stack_stop(&S);
	return 0;
}

/* Sends req as it is on a new connection to HAProxy and returns what came
 * back before the server closed or 5 s passed (malloc'd). */
static char *raw(const char *req)
{
	struct sockaddr_in sa;
	struct timeval tv = { 5, 0 };
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ssize_t n;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)S.http_port);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail_msg("connect to HAProxy");
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		fail_msg("write");
	while (len + 1 < cap && (n = read(fd, buf + len, cap - len - 1)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fd);
	return buf;
}

/* GET path with the extra header lines hdrs ("" or "Name: v\r\n..."),
 * Connection: close. Returns the status; *resp (optional) gets it all. */
static int get(const char *path, const char *hdrs, char **resp)
{
	char req[16384];
	char *r;
	int st = 0;

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: gw\r\n%sConnection: close\r\n\r\n",
	         path, hdrs);
	r = raw(req);
	if (strncmp(r, "HTTP/1.1 ", 9) == 0)
		st = atoi(r + 9);
	if (resp)
		*resp = r;
	else
		free(r);
	return st;
}

static const char *body_of(const char *resp)
{
	const char *b = strstr(resp, "\r\n\r\n");

	return b ? b + 4 : "";
}

static char *token(const char *sub, const char *alg)
{
	char *out = NULL;

	if (strcmp(alg, "none") == 0) {
		/* {"alg":"none"}.{"sub":"<sub>"} with an empty signature */
		assert_int_equal(h_run(&out, "printf '%%s.%%s.' $(printf '{\"alg\":\"none\",\"typ\":"
		                       "\"JWT\"}' | base64 -w0 | tr '+/' '-_' | tr -d =) $(printf "
		                       "'{\"sub\":\"%s\"}' | base64 -w0 | tr '+/' '-_' | tr -d =)", sub), 0);
		return out;
	}
	assert_int_equal(h_run(&out, "%s mint --sub %s --key %s/hs1.key --kid hs1 --alg HS256 "
	                       "--ttl 1h", h_bin("spogate-refsvc"), sub, keydir), 0);
	out[strcspn(out, "\r\n")] = '\0';
	return out;
}

static void expect(const char *path, const char *hdrs, int status, const char *in_body)
{
	char *r = NULL;
	int st = get(path, hdrs, &r);

	if (st != status || (in_body && !strstr(body_of(r), in_body)))
		fail_msg("GET %s: got %d %s, want %d with %s", path, st, body_of(r), status,
		         in_body ? in_body : "any body");
	free(r);
}

static void test_more_than_one_authorization_value_is_400(void **state)
{
	char *good, *forged, hdrs[8192], *r = NULL;

	(void)state;
	start("edge_authz_hdr");
	good = token("alice", "HS256");
	forged = token("mallory", "none");
	/* the verified token alone: 200, and the backend gets exactly it */
	snprintf(hdrs, sizeof(hdrs), "Authorization: Bearer %s\r\n", good);
	assert_int_equal(get("/api/admin/x", hdrs, &r), 200);
	assert_non_null(strstr(body_of(r), "\"x-user-id\":\"alice\""));
	free(r);
	/* a forged header before the valid one */
	snprintf(hdrs, sizeof(hdrs), "Authorization: Bearer %s\r\nAuthorization: Bearer %s\r\n",
	         forged, good);
	expect("/api/admin/x", hdrs, 400, "{\"error\":\"bad_request\",\"reason\":\"multiple_authorization\",\"request_id\":\"");
	/* ... and after it */
	snprintf(hdrs, sizeof(hdrs), "Authorization: Bearer %s\r\nAuthorization: Bearer %s\r\n",
	         good, forged);
	expect("/api/admin/x", hdrs, 400, "multiple_authorization");
	/* one header with a list */
	snprintf(hdrs, sizeof(hdrs), "Authorization: Bearer %s, Bearer %s\r\n", forged, good);
	expect("/api/admin/x", hdrs, 400, "multiple_authorization");
	/* a list behind another scheme: the agent checks the whole value */
	snprintf(hdrs, sizeof(hdrs), "Authorization: Basic bWFsbG9yeTp4, Bearer %s\r\n", good);
	expect("/api/admin/x", hdrs, 401, "\"error\":\"unauthorized\"");
	/* public routes too: the backend never sees two credentials */
	snprintf(hdrs, sizeof(hdrs), "Authorization: Bearer %s\r\nAuthorization: Bearer %s\r\n",
	         forged, good);
	expect("/api/public/x", hdrs, 400, "multiple_authorization");
	free(good);
	free(forged);
}

static void test_dot_segments_never_cross_routes(void **state)
{
	static const char *const attacks[] = {
		"/api/public/../admin/x", "/api/public/%2e%2e/admin/x", "/api/public/%2E%2E/admin/x",
		"/api/public/.%2e/admin/x", "/api/public//../admin/x", "/api/public/./../admin/x",
		"/api/public/..%2Fadmin/x", "/api/public/..%2fadmin/x", "/api/public/..;/admin/x",
		"/api/public/..%5Cadmin/x", "/api/public/x/../../admin/x", "/api/public/..",
		NULL,
	};
	const char *const *a;
	char *r = NULL;

	(void)state;
	start("edge_dots");
	for (a = attacks; *a; a++)
		expect(*a, "", 400, "{\"error\":\"bad_request\",\"reason\":\"dot_segment\",\"request_id\":\"");
	/* spellings that normalize to a plain path are routed as that path */
	expect("/api/%61dmin/x", "", 401, "token_missing");
	expect("/api//admin/x", "", 401, "token_missing");
	assert_int_equal(get("/api/public/./a//b/%7Euser", "", &r), 200);
	assert_non_null(strstr(body_of(r), "\"path\":\"/api/public/a/b/~user\""));
	free(r);
	/* a dot inside a segment is just a name */
	expect("/api/public/..x/v1.2", "", 200, "\"path\":\"/api/public/..x/v1.2\"");
	/* broken percent-encoding is refused before routing */
	expect("/api/public/%zz", "", 400, "{\"error\":\"bad_request\"}");
}

static void test_identity_headers_in_any_spelling_are_stripped(void **state)
{
	char *r = NULL;

	(void)state;
	start("edge_identity");
	assert_int_equal(get("/api/public/x",
	                     "X_User_ID: mallory1\r\nX-User_ID: mallory2\r\nx-uSeR-iD: mallory3\r\n"
	                     "X_USER_ROLES: mallory4\r\nX_Gateway_Route: mallory5\r\n"
	                     "x-gateway_anything: mallory6\r\nX-Userid: kept\r\n", &r), 200);
	if (strstr(r, "mallory"))
		fail_msg("an identity header reached the backend: %s", body_of(r));
	/* a header that only looks alike is not touched */
	assert_non_null(strstr(body_of(r), "\"x-userid\":\"kept\""));
	free(r);
}

static void test_forwarding_headers_from_clients_are_replaced(void **state)
{
	char *r = NULL;
	const char *b, *p;
	int n = 0;

	(void)state;
	start("edge_xff");
	assert_int_equal(get("/api/public/x",
	                     "X-Forwarded-For: 10.9.9.9\r\nX_Forwarded_For: 10.9.9.8\r\n"
	                     "X-Real-IP: 10.9.9.7\r\nForwarded: for=10.9.9.6\r\n", &r), 200);
	b = body_of(r);
	if (strstr(b, "10.9.9."))
		fail_msg("a forged forwarding header reached the backend: %s", b);
	for (p = b; (p = strstr(p, "\"x-forwarded-for\":\"127.0.0.1\"")); p++)
		n++;
	assert_int_equal(n, 1);
	free(r);
}

/* Every line HAProxy wrote to stdout is a JSON object (its own start-up
 * messages go to stderr as "[NOTICE] ..." and are skipped). */
static void check_log_is_json(const char *path, int *objects, int *errors_seen)
{
	FILE *f = fopen(path, "r");
	char line[16384];

	assert_non_null(f);
	*objects = 0;
	*errors_seen = 0;
	while (fgets(line, sizeof(line), f)) {
		json_error_t e;
		json_t *o, *v;
		const char *t;

		line[strcspn(line, "\n")] = '\0';
		if (!line[0] || strncmp(line, "[NOTICE]", 8) == 0 ||
		    strncmp(line, "[WARNING]", 9) == 0 || strncmp(line, "[ALERT]", 7) == 0)
			continue;
		o = json_loads(line, 0, &e);
		if (!o || !json_is_object(o))
			fail_msg("not a JSON object (%s): %s", e.text, line);
		t = json_string_value(json_object_get(o, "time"));
		/* 2026-12-01T21:36:09Z */
		if (!t || strlen(t) != 20 || t[4] != '-' || t[10] != 'T' || t[19] != 'Z')
			fail_msg("time is not ISO 8601 UTC: %s", line);
		if (!json_is_number(json_object_get(o, "ts")))
			fail_msg("ts is not a number: %s", line);
		static const char *const nums[] = { "status", "spoe_ms", "spoe_error", "total_ms",
		                                    "bytes", NULL };
		for (int i = 0; nums[i]; i++)
			if (!json_is_integer(json_object_get(o, nums[i])))
				fail_msg("%s is not an integer: %s", nums[i], line);
		static const char *const strs[] = { "client", "method", "uri", "route", "backend",
		                                    "server", "user", "reason", "termination", NULL };
		for (int i = 0; strs[i]; i++)
			if (!json_is_string(json_object_get(o, strs[i])))
				fail_msg("%s is not a string: %s", strs[i], line);
		v = json_object_get(o, "status");
		if (json_integer_value(v) == 400 || json_integer_value(v) == 408)
			(*errors_seen)++;
		(*objects)++;
		json_decref(o);
	}
	fclose(f);
}

static void test_access_log_is_json_lines(void **state)
{
	char *tok, hdrs[4096], *r;
	int objects, errors, i;

	(void)state;
	start("edge_log");
	tok = token("alice", "HS256");
	snprintf(hdrs, sizeof(hdrs), "Authorization: Bearer %s\r\n", tok);
	expect("/api/admin/x", hdrs, 200, NULL);                   /* the agent was asked */
	expect("/api/admin/x", "", 401, NULL);                     /* a denial */
	expect("/api/public/a]b\\c?q=%22x%22&r=]", "", 200, NULL);  /* ] " \ in the URI */
	expect("/nowhere", "", 404, NULL);
	expect("/api/public/../admin", "", 400, NULL);
	/* refused by HAProxy's parser: no transaction, error-log-format */
	r = raw("GARBAGE\r\n\r\n");
	free(r);
	free(tok);
	/* the log is written when each request ends */
	for (i = 0; i < 100; i++) {
		check_log_is_json(haproxy->log, &objects, &errors);
		if (objects >= 6 && errors >= 1)
			break;
		usleep(50000);
	}
	print_message("# %d JSON log lines, %d of them parser errors\n", objects, errors);
	assert_true(objects >= 6);
	assert_true(errors >= 1);
	assert_int_equal(h_wait_log(haproxy, "\"uri\":\"\\/api\\/public\\/a]b\\\\c?q=%22x%22&r=]\"", 100), 0);
	assert_int_equal(h_wait_log(haproxy, "\"user\":\"\",\"reason\":\"token_missing\"", 100), 0);
	assert_int_equal(h_wait_log(haproxy, "\"route\":\"\",\"backend\":\"gateway\"", 100), 0);
	assert_int_equal(h_wait_log(haproxy, "\"spoe_ms\":-1", 100), 0);
}

static void test_haproxy_errors_are_json(void **state)
{
	(void)state;
	start("edge_errors");
	/* nothing listens on the dead service's port */
	expect("/dead/x", "", 503, "{\"error\":\"service_unavailable\"}");
	/* the slow service accepts and never answers: the route's 300 ms */
	expect("/slow/x", "", 504, "{\"error\":\"gateway_timeout\"}");
	expect("/api/public/%zz", "", 400, "{\"error\":\"bad_request\"}");
	{
		char *r = raw("POST /api/public/x HTTP/1.1\r\nHost: gw\r\n"
		              "Content-Length: 99999999999999999999999\r\n\r\n"), *v = NULL;
		int major;

		/* A request HAProxy's HTTP/1 parser refuses: 3.2 answers with the
		 * errorfile; the muxes of 2.6 and 3.0 write their built-in HTML
		 * page whatever the configuration says (README). */
		assert_int_equal(h_run(&v, "%s -v | head -n1 | sed 's/^HAProxy version \\([0-9]*\\)[.]\\([0-9]*\\).*/\\1 \\2/'",
		                       h_haproxy_bin()), 0);
		major = atoi(v) * 100 + atoi(strchr(v, ' ') ? strchr(v, ' ') + 1 : "0");
		free(v);
		print_message("# HAProxy %d.%d, parser error: %.*s\n", major / 100, major % 100,
		              (int)strcspn(r, "\r"), r);
		assert_int_equal(strncmp(r, "HTTP/1.1 400", 12), 0);
		if (major >= 302)
			assert_string_equal(body_of(r), "{\"error\":\"bad_request\"}");
		else
			assert_non_null(strstr(body_of(r), "<html>"));
		free(r);

		/* A request head over HAProxy's 16 KiB buffer: 3.1+ answers 431
		 * (414 on 3.2.0) with the generated JSON errorfile, which the
		 * default output names in an ".if version_atleast(3.1)" block;
		 * 2.6 and 3.0 answer their HTML 400. */
		{
			size_t n = 20000;
			char *req = malloc(n + 128);

			snprintf(req, n + 128, "GET /api/public/x HTTP/1.1\r\nHost: gw\r\nX-Big: ");
			memset(req + strlen(req), 'a', n);
			req[strlen("GET /api/public/x HTTP/1.1\r\nHost: gw\r\nX-Big: ") + n] = '\0';
			strcat(req, "\r\n\r\n");
			r = raw(req);
			free(req);
			print_message("# HAProxy %d.%d, head over the buffer: %.*s\n", major / 100,
			              major % 100, (int)strcspn(r, "\r"), r);
			if (major >= 301) {
				assert_true(strncmp(r, "HTTP/1.1 431", 12) == 0 ||
				            strncmp(r, "HTTP/1.1 414", 12) == 0);
				assert_non_null(strstr(r, "application/json"));
				assert_true(strcmp(body_of(r), "{\"error\":\"request_header_fields_too_large\"}") == 0 ||
				            strcmp(body_of(r), "{\"error\":\"uri_too_long\"}") == 0);
			} else {
				assert_int_equal(strncmp(r, "HTTP/1.1 400", 12), 0);
			}
			free(r);
		}
	}
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		fail_msg("stat %s", path);
	return st.st_mode & 0777;
}

static char *slurp_file(const char *path)
{
	char *out = NULL;

	assert_int_equal(h_run(&out, "cat '%s'", path), 0);
	return out;
}

/* The public route answers 200 with its 100/minute limit: the agent
 * reached Redis (not 503 ratelimit_unavailable). */
static void expect_limited(void)
{
	char *r = NULL;

	assert_int_equal(get("/api/public/x", "", &r), 200);
	assert_non_null(strcasestr(r, "\r\nratelimit-limit: 100\r\n"));
	free(r);
}

/* The agent's log never holds the secret. */
static void expect_secret_not_logged(void)
{
	char *text = slurp_file(agent->log);

	assert_null(strstr(text, SECRET));
	free(text);
}

static void test_secrets_are_owner_only_and_indirect(void **state)
{
	static const char *const priv[] = { "rsa1.pem", "ec1.pem", "ed1.pem", "hs1.key", "jwks1.json",
	                                    NULL };
	static const char *const pub[] = { "rsa1.pub.pem", "ec1.pub.pem", "ed1.pub.pem", NULL };
	char path[800], port[16], extra[1024], *text, *r = NULL, *out = NULL;
	char *redis_argv[] = { (char *)h_redis_server_bin(), (char *)"--port", port,
	                       (char *)"--bind", (char *)"127.0.0.1", (char *)"--save", (char *)"",
	                       (char *)"--appendonly", (char *)"no", (char *)"--requirepass",
	                       (char *)SECRET, NULL };
	const char *pw;
	int i;

	(void)state;
	init("edge_secrets");
	/* keygen: private keys and the JWKS (it holds the HS secret) 0600 */
	for (i = 0; priv[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", keydir, priv[i]);
		if (mode_of(path) != 0600)
			fail_msg("%s is %03o, not 0600", path, mode_of(path));
	}
	for (i = 0; pub[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", keydir, pub[i]);
		assert_int_equal(mode_of(path), 0644);
	}
	snprintf(port, sizeof(port), "%d", S.redis_port);
	h_spawn(&S, "redis", redis_argv);
	assert_int_equal(h_wait_port(S.redis_port, 5000), 0);

	/* password_file: the agent reads it when it starts */
	pw = h_write(&S, "redis.pw", "%s\n", SECRET);
	snprintf(extra, sizeof(extra),
	         "  rate_limiting: {per_ip: 100/minute, on_redis_error: deny}\n"
	         "  redis: {address: 127.0.0.1:%d, password_file: %s, timeout: 2s}\n",
	         S.redis_port, pw);
	run(extra);
	snprintf(path, sizeof(path), "%s/agent.json", S.dir);
	assert_int_equal(mode_of(path), 0600);
	text = slurp_file(path);
	assert_null(strstr(text, SECRET));
	free(text);
	/* authenticated to Redis: limited, not 503 ratelimit_unavailable */
	expect_limited();

	/* ${NAME}: from the agent's environment */
	h_stop(agent, 5000);
	snprintf(extra, sizeof(extra),
	         "  rate_limiting: {per_ip: 100/minute, on_redis_error: deny}\n"
	         "  redis: {address: 127.0.0.1:%d, password: \"${SPOGATE_TEST_REDIS_PW}\", timeout: 2s}\n",
	         S.redis_port);
	generate(extra);
	text = slurp_file(path);
	assert_non_null(strstr(text, "\"password\": \"${SPOGATE_TEST_REDIS_PW}\""));
	free(text);
	/* unset: the agent refuses to start and says which variable */
	assert_int_equal(h_run(&out, "env -u SPOGATE_TEST_REDIS_PW %s -c %s --check 2>&1",
	                       h_bin("spogate-agent"), path), 1);
	assert_non_null(strstr(out, "SPOGATE_TEST_REDIS_PW is not set"));
	free(out);
	setenv("SPOGATE_TEST_REDIS_PW", SECRET, 1);
	start_agent();
	unsetenv("SPOGATE_TEST_REDIS_PW");
	for (i = 0; i < 50; i++) {
		int st = get("/api/public/x", "", &r);

		free(r);
		if (st == 200)
			break;
		usleep(100000);     /* HAProxy reconnects to the new agent */
	}
	expect_limited();
	expect_secret_not_logged();
}

/* redis.sentinel.password_file from the YAML to a sentinel with
 * requirepass: agent.json names the file, never the secret; the agent
 * reads it, finds the master through the sentinel (rate limits applied,
 * not 503 ratelimit_unavailable) and never logs it. */
static void test_sentinel_password_file_reaches_a_protected_sentinel(void **state)
{
	char path[800], extra[1024], *text;
	const char *pw, *conf;
	int sport;

	(void)state;
	init("edge_sentinel_secret");
	h_start_redis(&S);
	sport = h_free_port();
	conf = h_write(&S, "sentinel.conf", "port %d\nbind 127.0.0.1\ndir %s\n"
	               "sentinel monitor gw 127.0.0.1 %d 1\nrequirepass %s\n", sport, S.dir,
	               S.redis_port, SECRET);
	{
		char *argv[] = { (char *)h_redis_server_bin(), (char *)conf, (char *)"--sentinel",
		                 NULL };

		h_spawn(&S, "sentinel", argv);
		assert_int_equal(h_wait_port(sport, 5000), 0);
	}
	pw = h_write(&S, "sentinel.pw", "%s\n", SECRET);
	snprintf(extra, sizeof(extra),
	         "  rate_limiting: {per_ip: 100/minute, on_redis_error: deny}\n"
	         "  redis:\n    timeout: 2s\n    sentinel:\n      master: gw\n"
	         "      addresses: [127.0.0.1:%d]\n      password_file: %s\n", sport, pw);
	run(extra);
	snprintf(path, sizeof(path), "%s/agent.json", S.dir);
	assert_int_equal(mode_of(path), 0600);
	text = slurp_file(path);
	assert_null(strstr(text, SECRET));
	assert_non_null(strstr(text, "\"password_file\": \""));
	free(text);
	expect_limited();
	expect_secret_not_logged();
}

static void test_every_binary_answers_version(void **state)
{
	static const char *const bins[] = { "spogate-agent", "spogate-gen", "spogate-refsvc",
	                                    "spogate-echo", "spogate-bench", NULL };
	char *out = NULL;
	int i;

	(void)state;
	for (i = 0; bins[i]; i++) {
		assert_int_equal(h_run(&out, "%s --version", h_bin(bins[i])), 0);
		if (strncmp(out, bins[i], strlen(bins[i])) != 0 || !strstr(out, " 0."))
			fail_msg("%s --version: %s", bins[i], out);
		free(out);
	}
}

static void test_check_refuses_a_missing_run_dir(void **state)
{
	char *out = NULL;

	(void)state;
	init("edge_rundir");
	generate(NULL);
	/* --check: HAProxy could not bind its socket there */
	assert_int_equal(h_run(&out, "%s -g %s/gateway.yaml -r %s/registry.yaml --check "
	                       "--run-dir %s/missing 2>&1", h_bin("spogate-gen"), S.dir, S.dir, S.dir), 1);
	assert_non_null(strstr(out, "missing is not a directory"));
	free(out);
	assert_int_equal(h_run(&out, "%s -g %s/gateway.yaml -r %s/registry.yaml --check "
	                       "--run-dir %s 2>&1", h_bin("spogate-gen"), S.dir, S.dir, S.dir), 0);
	free(out);
	/* the default run directory is the output directory, which exists:
	 * the generated configuration starts (run() above used it) */
	assert_int_equal(h_run(&out, "grep -c '^    stats socket %s/haproxy.sock ' %s/haproxy.cfg",
	                       S.dir, S.dir), 0);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_more_than_one_authorization_value_is_400, teardown),
		cmocka_unit_test_teardown(test_dot_segments_never_cross_routes, teardown),
		cmocka_unit_test_teardown(test_identity_headers_in_any_spelling_are_stripped, teardown),
		cmocka_unit_test_teardown(test_forwarding_headers_from_clients_are_replaced, teardown),
		cmocka_unit_test_teardown(test_access_log_is_json_lines, teardown),
		cmocka_unit_test_teardown(test_haproxy_errors_are_json, teardown),
		cmocka_unit_test_teardown(test_secrets_are_owner_only_and_indirect, teardown),
		cmocka_unit_test_teardown(test_sentinel_password_file_reaches_a_protected_sentinel,
		                          teardown),
		cmocka_unit_test(test_every_binary_answers_version),
		cmocka_unit_test_teardown(test_check_refuses_a_missing_run_dir, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
