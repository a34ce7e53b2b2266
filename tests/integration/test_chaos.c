/*
 * Chaos under load, bounded and on loopback: the generated gateway
 * (auth.mode service, per-user and per-IP limits in Redis, fail-open on
 * Redis errors, agent.on_error deny) serves a steady stream of requests
 * while, one after another,
 *
 *   redis      SIGSTOP for 3 s, SIGCONT; then SIGKILL and a restart
 *   agent      SIGKILL and a restart
 *   agent      50 SIGHUPs
 *   haproxy    10 reloads, 700 ms apart (spogate-gen --reload, the README's)
 *   refsvc     (the Auth Service) stopped, then restarted
 *
 * Every response is checked against the verdict the README documents for
 * its phase, no request may take longer than the configured timeouts
 * allow, and the SIGHUP and reload phases must not fail a single request.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "harness.h"
#include "test_auth_util.h"

/* agent.timeout 500ms + redis.timeout 50ms + a connect to a dead agent:
 * a request taking longer than this is hung, not slow. */
#define HUNG_MS    2500.0
#define NTOKENS    4
#define NCLIENTS   2

enum phase {
	PH_WARMUP = 0, PH_REDIS_STOP, PH_REDIS_KILL, PH_AGENT_KILL, PH_SIGHUP, PH_RELOAD,
	PH_AUTH_DOWN, PH_AUTH_BACK, PH_N
};

static const char *const phase_names[PH_N] = {
	"warmup", "redis SIGSTOP 3 s", "redis SIGKILL + restart", "agent SIGKILL + restart",
	"50 agent SIGHUPs", "10 HAProxy reloads", "Auth Service down", "Auth Service back",
};

struct tally {
	long ok, s503_gw, s503_auth, other, transport, hung;
	double max_ms;
	long first_other_status;
	int first_transport_rc;        /* CURLcode of the first transport error */
	char first_other_body[160];
};

static struct h_stack S;
static struct h_proc *haproxy, *agent, *redis, *refsvc;
static char *tokens[NTOKENS];
static char agent_cfg[1024], haproxy_cfg[1024];
static volatile int cur_phase, stop_load;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct tally T[PH_N];

static size_t sink(char *p, size_t sz, size_t n, void *arg)
{
	struct h_resp *r = arg;
	size_t len = sz * n, keep = r->body ? strlen(r->body) : 0;

	if (keep < 150) {
		size_t take = len < 150 - keep ? len : 150 - keep;
		char *b = realloc(r->body, keep + take + 1);

		if (b) {
			memcpy(b + keep, p, take);
			b[keep + take] = '\0';
			r->body = b;
		}
	}
	return len;
}

static void *load(void *arg)
{
	long id = (long)arg, i = 0;
	char url[128], hdr[NTOKENS][2048];
	CURL *c = curl_easy_init();
	int k;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/x", S.http_port);
	for (k = 0; k < NTOKENS; k++)
		snprintf(hdr[k], sizeof(hdr[k]), "Authorization: Bearer %s", tokens[k]);
	while (!stop_load) {
		struct curl_slist *h = curl_slist_append(NULL, hdr[(id + i++) % NTOKENS]);
		struct h_resp r = { 0 };
		double t0 = h_now_ms(), ms;
		int ph;
		CURLcode rc;
		long st = 0;

		curl_easy_reset(c);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
		/* A new connection each time: a keep-alive connection to an old
		 * HAProxy worker may be closed under a request by design. */
		curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
		rc = curl_easy_perform(c);
		ms = h_now_ms() - t0;
		/* Counted in the phase it ended in: whatever broke it happened
		 * by then. */
		ph = cur_phase;
		if (rc == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
		pthread_mutex_lock(&lock);
		if (ms > T[ph].max_ms)
			T[ph].max_ms = ms;
		if (ms > HUNG_MS)
			T[ph].hung++;
		if (rc != CURLE_OK) {
			if (T[ph].transport++ == 0)
				T[ph].first_transport_rc = (int)rc;
		} else if (st == 200)
			T[ph].ok++;
		else if (st == 503 && r.body && strstr(r.body, "gateway_unavailable"))
			T[ph].s503_gw++;
		else if (st == 503 && r.body && strstr(r.body, "auth_unavailable"))
			T[ph].s503_auth++;
		else if (T[ph].other++ == 0) {
			T[ph].first_other_status = st;
			snprintf(T[ph].first_other_body, sizeof(T[ph].first_other_body), "%s",
			         r.body ? r.body : "");
		}
		pthread_mutex_unlock(&lock);
		free(r.body);
		curl_slist_free_all(h);
	}
	curl_easy_cleanup(c);
	return NULL;
}

static void sleep_ms(int ms)
{
	usleep((useconds_t)ms * 1000);
}

static struct h_proc *start_agent(void)
{
	return h_start_agent(&S, agent_cfg, NULL);
}

static struct h_proc *start_refsvc(void)
{
	static char args[1024];

	snprintf(args, sizeof(args), "--jwks %s/keys/jwks1.json", S.dir);
	return t_start_refsvc(&S, args);
}

/* Waits until a request with token 0 is answered 200, up to ms. */
static int wait_ok(int ms)
{
	double end = h_now_ms() + ms;
	char hdr[2100];

	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", tokens[0]);
	while (h_now_ms() < end) {
		struct h_resp r;
		int st = h_get(&r, &S, "/api/x", (const char *const[]){ hdr, NULL }) == 0 ?
		         (int)r.status : 0;

		if (st)
			h_resp_free(&r);
		if (st == 200)
			return 0;
		sleep_ms(100);
	}
	return -1;
}

/* Waits until HAProxy's stats show the agent server UP, up to ms. */
static int wait_agent_up(int ms)
{
	double end = h_now_ms() + ms;
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/;csv", S.stats_port);
	while (h_now_ms() < end) {
		struct h_resp r;

		if (h_http(&r, NULL, url, NULL, NULL) == 0) {
			/* the status column of the line, not "UP 1/3" (going down) */
			const char *l = r.body ? strstr(r.body, "\nspogate-agents,agent1,") : NULL;
			const char *st = l ? strstr(l, ",UP,") : NULL;
			const char *nl = l ? strchr(l + 1, '\n') : NULL;
			int up = st && (!nl || st < nl);

			h_resp_free(&r);
			if (up)
				return 0;
		}
		sleep_ms(100);
	}
	return -1;
}

static int setup(void **state)
{
	const char *gw, *reg;
	char *out = NULL;
	int i;

	(void)state;
	h_stack_init(&S, "chaos");
	t_keygen(&S, "1");
	for (i = 0; i < NTOKENS; i++) {
		char sub[16];

		snprintf(sub, sizeof(sub), "user%d", i);
		tokens[i] = t_mint(&S, "--sub %s --alg RS256 --key rsa1.pem --kid rsa1 --ttl 1h", sub);
	}
	gw = h_write(&S, "gateway.yaml",
	             "gateway:\n"
	             "  port: %d\n"
	             "  bind: 127.0.0.1\n"
	             "  routes:\n"
	             "    - {path: /api/**, service: app, auth_required: true}\n"
	             "  rate_limiting: {enabled: true, per_user: 1000000/minute,\n"
	             "                  per_ip: 1000000/minute, on_redis_error: allow}\n"
	             "  auth: {mode: service, service: auth-service, cache_ttl: 1s,\n"
	             "         negative_cache_ttl: 1s}\n"
	             "  agent: {address: 127.0.0.1:%d, threads: 2, timeout: 500ms, on_error: deny}\n"
	             "  redis: {address: 127.0.0.1:%d, timeout: 50ms}\n"
	             "  admin: {stats: 127.0.0.1:%d, metrics: 127.0.0.1:%d}\n",
	             S.http_port, S.agent_port, S.redis_port, S.stats_port, S.metrics_port);
	reg = h_write(&S, "registry.yaml",
	              "services:\n"
	              "  app: {servers: [\"127.0.0.1:%d\"], health: false}\n"
	              "  auth-service: {grpc: \"127.0.0.1:%d\"}\n",
	              S.echo_port, S.refsvc_port);
	if (h_run(&out, "%s -g %s -r %s -o %s --run-dir %s 2>&1", h_bin("spogate-gen"), gw, reg,
	          S.dir, S.dir) != 0) {
		fprintf(stderr, "spogate-gen: %s\n", out ? out : "");
		fail_msg("spogate-gen refused the chaos gateway");
	}
	free(out);
	snprintf(agent_cfg, sizeof(agent_cfg), "%s/agent.json", S.dir);
	snprintf(haproxy_cfg, sizeof(haproxy_cfg), "%s/haproxy.cfg", S.dir);
	h_start_echo(&S, "echo", S.echo_port);
	redis = h_start_redis(&S);
	refsvc = start_refsvc();
	agent = start_agent();
	haproxy = h_spawn(&S, "haproxy", (char *const[]){
		(char *)(getenv("SPOGATE_HAPROXY") ? getenv("SPOGATE_HAPROXY") : "/usr/sbin/haproxy"),
		(char *)"-W", (char *)"-db", (char *)"-f", haproxy_cfg, NULL });
	if (h_wait_port(S.http_port, 10000) < 0)
		fail_msg("haproxy did not listen");
	if (wait_ok(10000) < 0)
		fail_msg("the chaos stack never answered 200");
	return 0;
}

static int teardown(void **state)
{
	int i;

	(void)state;
	h_stack_stop(&S);
	for (i = 0; i < NTOKENS; i++)
		free(tokens[i]);
	return 0;
}

static void phase(enum phase p)
{
	cur_phase = p;
}

static void print_tally(void)
{
	int p;

	for (p = 0; p < PH_N; p++)
		printf("# %-26s %6ld ok %5ld 503-gateway %5ld 503-auth %4ld other %4ld transport "
		       "%3ld hung  max %.0f ms\n", phase_names[p], T[p].ok, T[p].s503_gw,
		       T[p].s503_auth, T[p].other, T[p].transport, T[p].hung, T[p].max_ms);
}

static void test_chaos_keeps_documented_verdicts_and_loses_nothing_on_reload(void **state)
{
	pthread_t th[NCLIENTS];
	long i;
	int p;

	(void)state;
	for (i = 0; i < NCLIENTS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, load, (void *)i), 0);
	sleep_ms(1000);

	/* Redis frozen: every call times out at 50 ms and limits fail open. */
	phase(PH_REDIS_STOP);
	assert_int_equal(h_signal(redis, SIGSTOP), 0);
	sleep_ms(3000);
	assert_int_equal(h_signal(redis, SIGCONT), 0);
	/* Skipped limits are visible: a counter and a rate-limited warning. */
	assert_true(h_metric(S.metrics_port,
	                     "spogate_ratelimit_redis_unavailable_total{action=\"allow\"}") > 0);
	assert_int_equal(h_wait_log(agent, "rate limits skipped", 2000), 0);
	sleep_ms(500);

	phase(PH_REDIS_KILL);
	assert_int_equal(h_signal(redis, SIGKILL), 0);
	h_stop(redis, 2000);
	sleep_ms(1000);
	redis = h_start_redis(&S);
	sleep_ms(1000);

	/* No agent: HAProxy answers 503 gateway_unavailable (on_error deny). */
	phase(PH_AGENT_KILL);
	assert_int_equal(h_signal(agent, SIGKILL), 0);
	h_stop(agent, 2000);
	sleep_ms(1000);
	agent = start_agent();
	assert_int_equal(wait_ok(10000), 0);
	/* The death's fallout ends inside this phase: HAProxy sees the agent
	 * UP again, and every request that began while it was gone (none
	 * outlives HUNG_MS) has ended before the SIGHUPs are counted. */
	assert_int_equal(wait_agent_up(10000), 0);
	sleep_ms((int)HUNG_MS);

	phase(PH_SIGHUP);
	for (i = 0; i < 50; i++) {
		assert_int_equal(h_signal(agent, SIGHUP), 0);
		sleep_ms(60);
	}
	sleep_ms(300);

	phase(PH_RELOAD);
	for (i = 0; i < 10; i++) {
		char *out = NULL;

		if (h_reload_haproxy(haproxy->pid, S.dir, &out) != 0)
			fail_msg("spogate-gen --reload: %s", out ? out : "");
		free(out);
		sleep_ms(700);
	}
	sleep_ms(500);

	/* Auth Service down: cached tokens (1 s) pass, then 503 auth_unavailable. */
	phase(PH_AUTH_DOWN);
	assert_int_equal(h_stop(refsvc, 5000), 0);
	sleep_ms(2500);
	refsvc = start_refsvc();
	phase(PH_AUTH_BACK);
	assert_int_equal(wait_ok(15000), 0);
	sleep_ms(500);

	stop_load = 1;
	for (i = 0; i < NCLIENTS; i++)
		pthread_join(th[i], NULL);
	print_tally();
	for (p = 0; p < PH_N; p++) {
		if (T[p].other)
			printf("# %s: first unexpected answer %ld %s\n", phase_names[p],
			       T[p].first_other_status, T[p].first_other_body);
		if (T[p].transport)
			printf("# %s: first transport error: %s\n", phase_names[p],
			       curl_easy_strerror((CURLcode)T[p].first_transport_rc));
		assert_int_equal(T[p].hung, 0);
		assert_int_equal(T[p].other, 0);
		assert_true(T[p].ok + T[p].s503_gw + T[p].s503_auth + T[p].transport > 0);
	}
	/* Limits fail open, so Redis trouble must not fail requests. Known
	 * gap (see /work/notes/harden.md): now and then one decision of a
	 * frozen Redis outlives HAProxy's 500 ms processing timeout instead of
	 * failing open at 50 ms; tolerated up to 1 %, never more. */
	for (p = PH_REDIS_STOP; p <= PH_REDIS_KILL; p++) {
		assert_int_equal(T[p].transport, 0);
		assert_true(T[p].s503_gw * 100 <= T[p].ok + T[p].s503_gw);
	}
	/* The agent's death is visible, as documented, and only as that. */
	assert_true(T[PH_AGENT_KILL].s503_gw > 0);
	assert_int_equal(T[PH_AGENT_KILL].transport, 0);
	/* SIGHUPs and reloads: not one failed request. */
	assert_int_equal(T[PH_SIGHUP].s503_gw + T[PH_SIGHUP].s503_auth + T[PH_SIGHUP].transport, 0);
	assert_int_equal(T[PH_RELOAD].s503_gw + T[PH_RELOAD].s503_auth, 0);
	assert_true(T[PH_RELOAD].ok > 0);
	/* Not a connection lost on any version: each reload is asked for once
	 * the previous one is done (see config/src/reload.c for why 3.1+ lost
	 * some when SIGUSR2 came while a worker still loaded). */
	assert_int_equal(T[PH_RELOAD].transport, 0);
	assert_int_equal(T[PH_AUTH_DOWN].transport, 0);
	/* The Auth Service outage shows once the 1 s cache runs out. */
	assert_true(T[PH_AUTH_DOWN].s503_auth > 0);
	assert_int_equal(T[PH_AUTH_DOWN].s503_gw, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chaos_keeps_documented_verdicts_and_loses_nothing_on_reload),
	};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, setup, teardown);
}
