/*
 * Reloads lose nothing. The generated gateway (an authenticated route
 * through the agent, HS256 tokens verified locally; the backend found
 * through DNS SRV records served by a real dnsmasq) serves a steady load
 * while HAProxy is reloaded ten times the way the README says, with
 * spogate-gen --reload: it saves the server state through the stats socket
 * ("show servers state" into the server-state file), sends SIGUSR2 to the
 * master and waits for the new worker. Not one request may fail. A last
 * reload with the DNS server stopped shows that the new
 * worker took the servers' addresses from the state file: without it they
 * would start as (none) and every request would be a 503.
 *
 * Reloads asked for in a burst lose nothing either: two clients open a new
 * connection for every request while ten reloads are asked for 50 ms
 * apart, i.e. each while the previous one still loads, the way a
 * deployment tool that applies several changes in a row would. Sent as
 * raw SIGUSR2s, such a burst lost requests on HAProxy 3.2 (see
 * config/src/reload.c); spogate-gen --reload runs them one after another.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "harness.h"

#define RELOADS  10
#define NCLIENTS 2

static struct h_stack S;
static struct h_proc *haproxy, *dns;
static int echo_port[2];
static char auth_hdr[2048];

struct load {
	volatile int stop;
	long ok, failed, transport;
	long first_bad_status;
};

/* A client that opens a new connection for every request. */
struct fresh {
	volatile int *stop;
	long ok, bad, transport;
	int first_rc;
	long first_status;
	double max_ms;
};

static size_t discard(char *p, size_t sz, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return sz * n;
}

static void *fresh_main(void *arg)
{
	struct fresh *t = arg;
	struct curl_slist *h = curl_slist_append(NULL, auth_hdr);
	CURL *c = curl_easy_init();
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/x", S.http_port);
	while (!*t->stop) {
		double t0 = h_now_ms();
		long st = 0;
		CURLcode rc;

		curl_easy_reset(c);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
		curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
		rc = curl_easy_perform(c);
		if (h_now_ms() - t0 > t->max_ms)
			t->max_ms = h_now_ms() - t0;
		if (rc != CURLE_OK) {
			if (t->transport++ == 0)
				t->first_rc = (int)rc;
			continue;
		}
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
		if (st == 200)
			t->ok++;
		else if (t->bad++ == 0)
			t->first_status = st;
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return NULL;
}

static void start_dns(void)
{
	char arg[700];
	const char *path = h_write(&S, "dnsmasq.conf",
	                           "port=%d\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\n"
	                           "no-hosts\n"
	                           "srv-host=_echo._tcp.svc.test,echo1.svc.test,%d,0,10\n"
	                           "srv-host=_echo._tcp.svc.test,echo2.svc.test,%d,0,10\n"
	                           "host-record=echo1.svc.test,127.0.0.1\n"
	                           "host-record=echo2.svc.test,127.0.0.1\n",
	                           S.dns_port, echo_port[0], echo_port[1]);
	char *argv[] = { (char *)"/usr/sbin/dnsmasq", (char *)"--keep-in-foreground", arg,
	                 (char *)"--pid-file", (char *)"--log-facility=-", (char *)"--user=root",
	                 NULL };

	snprintf(arg, sizeof(arg), "--conf-file=%s", path);
	dns = h_spawn(&S, "dnsmasq", argv);
	assert_int_equal(h_wait_log(dns, "started", 5000), 0);
}

/* A reload the README's way; returns spogate-gen's exit status, and says
 * why it failed. Several may run at once: they take turns. */
static long reload_rc(void)
{
	char *out = NULL;
	long rc = h_reload_haproxy(haproxy->pid, S.dir, &out);

	if (rc != 0)
		print_message("# spogate-gen --reload: exit %ld: %s", rc, out ? out : "");
	free(out);
	return rc;
}

static void reload(void)
{
	assert_int_equal(reload_rc(), 0);
}

static void *burst_reload(void *arg)
{
	(void)arg;
	return (void *)reload_rc();
}

static void *load_main(void *arg)
{
	struct load *l = arg;
	char url[128];
	long st[64];
	int i, errs;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/x", S.http_port);
	while (!l->stop) {
		errs = h_http_many(url, (const char *const[]){ auth_hdr, NULL }, 64, 4, st, NULL);
		for (i = 0; i < 64; i++) {
			if (st[i] == 200) {
				l->ok++;
			} else {
				l->failed++;
				if (!l->first_bad_status)
					l->first_bad_status = st[i] ? st[i] : -1;
			}
		}
		l->transport += errs;
	}
	return NULL;
}

static void start(const char *name)
{
	char *out = NULL, json[700], cfg[700];
	const char *gw, *reg;
	int i;

	h_stack_init(&S, name);
	assert_int_equal(h_run(NULL, "%s keygen --dir %s/keys >/dev/null 2>&1",
	                       h_bin("spogate-refsvc"), S.dir), 0);
	assert_int_equal(h_run(&out, "%s mint --sub alice --key %s/keys/hs1.key --kid hs1 "
	                       "--alg HS256 --ttl 1h", h_bin("spogate-refsvc"), S.dir), 0);
	out[strcspn(out, "\r\n")] = '\0';
	snprintf(auth_hdr, sizeof(auth_hdr), "Authorization: Bearer %s", out);
	free(out);
	for (i = 0; i < 2; i++) {
		char name[16];

		echo_port[i] = h_free_port();
		snprintf(name, sizeof(name), "echo%d", i + 1);
		h_start_echo(&S, name, echo_port[i]);
	}
	start_dns();
	gw = h_write(&S, "gateway.yaml",
	             "gateway:\n"
	             "  port: %d\n"
	             "  bind: 127.0.0.1\n"
	             "  nbthread: 1\n"
	             "  routes:\n"
	             "    - {path: /api/**, service: echo}\n"
	             "  auth: {mode: jwt, jwks_file: %s/keys/jwks1.json, algorithms: [HS256]}\n"
	             "  authz: {mode: none}\n"
	             "  agent: {address: 127.0.0.1:%d, threads: 1}\n"
	             "  admin: {stats: 127.0.0.1:%d, metrics: 127.0.0.1:%d}\n",
	             S.http_port, S.dir, S.agent_port, S.stats_port, S.metrics_port);
	reg = h_write(&S, "registry.yaml",
	              "resolvers: {nameservers: [127.0.0.1:%d], hold_valid: 1s}\n"
	              "services:\n"
	              "  echo: {srv: _echo._tcp.svc.test, instances: 3,\n"
	              "         health: {path: /health, interval: 500ms, rise: 1, fall: 2}}\n",
	              S.dns_port);
	if (h_run(&out, "%s -g %s -r %s -o %s 2>&1", h_bin("spogate-gen"), gw, reg, S.dir) != 0)
		fail_msg("spogate-gen: %s", out);
	free(out);
	snprintf(json, sizeof(json), "%s/agent.json", S.dir);
	h_start_agent(&S, json, NULL);
	snprintf(cfg, sizeof(cfg), "%s/haproxy.cfg", S.dir);
	haproxy = h_start_haproxy(&S, cfg);
}

static int teardown(void **state)
{
	(void)state;
	h_stack_stop(&S);
	return 0;
}

/* Waits until requests through the DNS-discovered servers succeed. */
static void wait_served(void)
{
	struct h_resp r;
	int i;

	for (i = 0; i < 100; i++) {
		int ok = h_get(&r, &S, "/api/x", (const char *const[]){ auth_hdr, NULL }) == 0 &&
		         r.status == 200;

		h_resp_free(&r);
		if (ok)
			return;
		usleep(50000);
	}
	fail_msg("the gateway never served /api/x");
}

static void test_ten_reloads_under_load_lose_no_request(void **state)
{
	struct load l;
	pthread_t th;
	int i;

	(void)state;
	start("reload_load");
	wait_served();
	memset(&l, 0, sizeof(l));
	assert_int_equal(pthread_create(&th, NULL, load_main, &l), 0);
	usleep(300000);
	for (i = 0; i < RELOADS; i++) {
		reload();
		usleep(300000);     /* let the old worker drain under load */
	}
	l.stop = 1;
	pthread_join(th, NULL);
	print_message("# %d reloads under load: %ld requests, %ld failed (first: %ld), "
	              "%ld transport errors\n", RELOADS, l.ok + l.failed, l.failed,
	              l.first_bad_status, l.transport);
	assert_true(l.ok > 0);
	assert_int_equal(l.failed, 0);
	assert_int_equal(l.transport, 0);
}

static void test_a_reload_keeps_dns_servers_without_dns(void **state)
{
	struct h_resp r;
	int i, ok = 0;

	(void)state;
	start("reload_no_dns");
	wait_served();
	/* the DNS server goes away; the state saved by reload() is all the
	 * new worker has (resolution fails only after 3 retries of 1 s) */
	h_stop(dns, 5000);
	reload();
	for (i = 0; i < 10; i++) {
		ok += h_get(&r, &S, "/api/x", (const char *const[]){ auth_hdr, NULL }) == 0 &&
		      r.status == 200;
		h_resp_free(&r);
	}
	print_message("# right after a reload without DNS: %d of 10 requests served\n", ok);
	assert_int_equal(ok, 10);
}

static void test_reloads_asked_while_one_loads_lose_no_fresh_connection(void **state)
{
	static struct fresh T[NCLIENTS];
	volatile int stop = 0;
	pthread_t cl[NCLIENTS], rl[RELOADS];
	long failed_reloads = 0, ok = 0, bad = 0, transport = 0, first_status = 0;
	int i, first_rc = 0;
	double max_ms = 0;

	(void)state;
	start("reload_burst");
	wait_served();
	for (i = 0; i < NCLIENTS; i++) {
		T[i].stop = &stop;
		assert_int_equal(pthread_create(&cl[i], NULL, fresh_main, &T[i]), 0);
	}
	usleep(500000);
	for (i = 0; i < RELOADS; i++) {
		assert_int_equal(pthread_create(&rl[i], NULL, burst_reload, NULL), 0);
		usleep(50000);
	}
	for (i = 0; i < RELOADS; i++) {
		void *rc;

		pthread_join(rl[i], &rc);
		failed_reloads += rc != NULL;
	}
	usleep(1500000);
	stop = 1;
	for (i = 0; i < NCLIENTS; i++) {
		pthread_join(cl[i], NULL);
		ok += T[i].ok;
		bad += T[i].bad;
		transport += T[i].transport;
		max_ms = T[i].max_ms > max_ms ? T[i].max_ms : max_ms;
		first_rc = first_rc ? first_rc : T[i].first_rc;
		first_status = first_status ? first_status : T[i].first_status;
	}
	print_message("# %d reloads asked 50 ms apart: %ld failed; %ld ok, %ld other status "
	              "(first %ld), %ld transport (first: %s), slowest %.0f ms\n",
	              RELOADS, failed_reloads, ok, bad, first_status, transport,
	              first_rc ? curl_easy_strerror((CURLcode)first_rc) : "-", max_ms);
	assert_int_equal(failed_reloads, 0);
	assert_true(ok > 0);
	assert_int_equal(bad, 0);
	assert_int_equal(transport, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_ten_reloads_under_load_lose_no_request, teardown),
		cmocka_unit_test_teardown(test_a_reload_keeps_dns_servers_without_dns, teardown),
		cmocka_unit_test_teardown(test_reloads_asked_while_one_loads_lose_no_fresh_connection,
		                          teardown),
	};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
