/*
 * Redis client (see redis.h).
 *
 * A call is owned by hiredis from the send until its callback ran (a
 * reply, or NULL when the context goes away); cb is NULL once the caller
 * stopped waiting (timeout, cancel), and the late reply only frees it.
 */
#include "redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>
#include <openssl/sha.h>

#include "breaker.h"
#include "log.h"
#include "redis_sentinel.h"

#define RECONNECT_MIN_S   0.025
#define RECONNECT_MAX_S   0.5
#define MAX_PENDING       65536   /* calls hiredis holds; beyond, fail fast */

struct redis_client {
	struct worker *w;
	struct redis_opts o;
	redisAsyncContext *ac;
	enum redis_state state;
	ev_timer reconnect_w;
	double backoff;
	int logged_down;            /* one log line per outage */
	unsigned pending;           /* calls hiredis still holds */
	struct breaker br;
	char sha[2 * SHA_DIGEST_LENGTH + 1];
	struct redis_stats st;
	/* Sentinel (o.sentinel_master) */
	char host[64];              /* the master in use */
	int port;
	int have_master;            /* host/port are current: connect there */
	int sen_i;                  /* the sentinel asked next */
	redisAsyncContext *qac;     /* asking get-master-addr-by-name */
	int qac_i;                  /* ... of this sentinel */
	int qac_auth_failed;        /* ... which refused our AUTH (logged) */
	redisAsyncContext *sub;     /* subscribed to +switch-master */
	int sub_i;                  /* ... on this sentinel */
	struct redis_sentinel_log sen_log[REDIS_MAX_SENTINELS];   /* when not shared */
	ev_timer sub_w;             /* resubscribes after a loss */
};

struct redis_call {
	struct redis_client *rc;
	redis_reply_fn cb;          /* NULL once nobody waits */
	void *arg;
	ev_timer timeout_w;
	double t_sent;              /* wall time of the send, for latency */
	int resent;                 /* NOSCRIPT: already resent with EVAL */
	int nkeys;
	int argc;
	size_t *argl;               /* argc lengths, then the bytes, in data */
	char data[];
};

static void add(uint64_t *p, uint64_t v)
{
	__atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

static void schedule_reconnect(struct redis_client *rc);

/* Forgets ac when it is the current context (it is being freed by
 * hiredis or by us) and plans a reconnect. Idempotent. */
static void mark_down(struct redis_client *rc, const redisAsyncContext *ac)
{
	if (rc->ac != ac || !ac)
		return;
	rc->ac = NULL;
	rc->state = REDIS_DOWN;
	add(&rc->st.disconnects, 1);
	/* The master may have moved: ask Sentinel again before reconnecting. */
	if (rc->o.sentinel_master)
		rc->have_master = 0;
	schedule_reconnect(rc);
}

/* Drops the connection now: hiredis runs every pending callback with a
 * NULL reply (deferred until the current callback returns when called
 * from one). */
static void redis_drop(struct redis_client *rc)
{
	redisAsyncContext *ac = rc->ac;

	if (!ac)
		return;
	mark_down(rc, ac);
	redisAsyncFree(ac);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct redis_client *rc = ac->data;

	if (status != REDIS_OK) {
		if (!rc->logged_down)
			log_warn("worker %d: redis %s:%d: connect: %s", rc->w->id,
			         rc->host, rc->port, ac->errstr);
		rc->logged_down = 1;
		mark_down(rc, ac);
		return;
	}
	if (rc->ac != ac)
		return;
	rc->state = REDIS_UP;
	add(&rc->st.connects, 1);
	breaker_reconnected(&rc->br);
	if (rc->logged_down)
		log_info("worker %d: redis %s:%d: connected", rc->w->id, rc->host, rc->port);
	rc->logged_down = 0;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis_client *rc = ac->data;

	if (rc->ac == ac) {
		if (!rc->logged_down)
			log_warn("worker %d: redis %s:%d: connection lost: %s", rc->w->id,
			         rc->host, rc->port,
			         status == REDIS_OK ? "closed" : ac->errstr);
		rc->logged_down = 1;
	}
	mark_down(rc, ac);
}

/* AUTH [user] password on ac, with cb's reply; nothing when password is
 * "" (no authentication). */
static void send_auth(redisAsyncContext *ac, redisCallbackFn *cb, void *privdata,
                      const char *user, const char *password)
{
	if (!password[0])
		return;
	if (user[0])
		redisAsyncCommand(ac, cb, privdata, "AUTH %s %s", user, password);
	else
		redisAsyncCommand(ac, cb, privdata, "AUTH %s", password);
}

/* Replies to AUTH, SELECT and SCRIPT LOAD. A refused AUTH or SELECT makes
 * the connection useless: drop it and retry with backoff. */
static void on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_client *rc = ac->data;
	redisReply *reply = r;
	const char *what = privdata;

	if (!reply) {
		mark_down(rc, ac);
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		if (!rc->logged_down)
			log_error("worker %d: redis %s: %s", rc->w->id, what, reply->str);
		rc->logged_down = 1;
		if (rc->ac == ac)
			redis_drop(rc);
	}
}

static void sentinel_ask(struct redis_client *rc);

static void redis_connect(struct redis_client *rc)
{
	const struct redis_opts *o = &rc->o;
	redisAsyncContext *ac;
	char db[16];

	if (o->sentinel_master && !rc->have_master) {
		sentinel_ask(rc);
		return;
	}
	ac = redisAsyncConnect(rc->host, rc->port);
	if (!ac) {
		schedule_reconnect(rc);
		return;
	}
	if (ac->err) {
		if (!rc->logged_down)
			log_warn("worker %d: redis %s:%d: %s", rc->w->id, rc->host, rc->port,
			         ac->errstr);
		rc->logged_down = 1;
		redisAsyncFree(ac);
		schedule_reconnect(rc);
		return;
	}
	ac->data = rc;
	if (redisLibevAttach(rc->w->loop, ac) != REDIS_OK) {
		redisAsyncFree(ac);
		schedule_reconnect(rc);
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	rc->ac = ac;
	rc->state = REDIS_CONNECTING;
	/* Pipelined ahead of any caller's command: hiredis sends in order. */
	send_auth(ac, on_setup_reply, (void *)"AUTH", o->username, o->password);
	if (o->db) {
		snprintf(db, sizeof(db), "%d", o->db);
		redisAsyncCommand(ac, on_setup_reply, (void *)"SELECT", "SELECT %s", db);
	}
	/* A restarted Redis has an empty script cache; loading the script now
	 * saves every call the NOSCRIPT round trip. */
	redisAsyncCommand(ac, on_setup_reply, (void *)"SCRIPT LOAD", "SCRIPT LOAD %s", o->script);
}

/* ---- Sentinel ---- */

static const char *sentinel_name(const struct redis_client *rc)
{
	return rc->o.sentinel_master;
}

/* What a sentinel said to our credentials, as last logged. */
enum sen_auth {
	SEN_AUTH_UNKNOWN = 0,
	SEN_AUTH_OK      = 1,   /* AUTH accepted, or none needed and none sent */
	SEN_AUTH_REFUSED = 2,   /* WRONGPASS: the sentinel is unusable */
	SEN_AUTH_NEEDED  = 3,   /* NOAUTH: it wants a password, none is set */
	SEN_AUTH_UNUSED  = 4,   /* a password is set, the sentinel has none */
};

#define SEN_DENIED_QUERY 1      /* redis_sentinel_log.denied bits */
#define SEN_DENIED_SUB   2

static struct redis_sentinel_log *sentinel_log(struct redis_client *rc, int i)
{
	return rc->o.sentinel_log ? &rc->o.sentinel_log[i] : &rc->sen_log[i];
}

/* Records what sentinel i said (detail: its error text, which never holds
 * our password) and logs it when that changed since the last time any
 * client of the process logged it: one line per sentinel per change, not
 * one per retry and per worker. */
static void sentinel_auth_note(struct redis_client *rc, int i, enum sen_auth now,
                               const char *detail)
{
	int before = __atomic_exchange_n(&sentinel_log(rc, i)->auth, (int)now, __ATOMIC_RELAXED);
	const char *host = rc->o.sentinel_host[i];
	int port = rc->o.sentinel_port[i];
	const char *user = rc->o.sentinel_username;

	if (before == (int)now)
		return;
	switch (now) {
	case SEN_AUTH_REFUSED:
		log_error("worker %d: sentinel %s:%d refused AUTH%s%s%s (%.200s); not using it: "
		          "check redis.sentinel.password%s", rc->w->id, host, port,
		          user[0] ? " as user \"" : "", user[0] ? user : "", user[0] ? "\"" : "",
		          detail, user[0] ? " and redis.sentinel.username" : "");
		break;
	case SEN_AUTH_NEEDED:
		log_error("worker %d: sentinel %s:%d requires authentication (%.200s) and "
		          "redis.sentinel.password is not set; not using it", rc->w->id, host, port,
		          detail);
		break;
	case SEN_AUTH_UNUSED:
		log_warn("worker %d: sentinel %s:%d has no password set: redis.sentinel.password "
		         "is not needed for it (%.200s)", rc->w->id, host, port, detail);
		break;
	case SEN_AUTH_OK:
		if (before == SEN_AUTH_REFUSED || before == SEN_AUTH_NEEDED)
			log_info("worker %d: sentinel %s:%d: authenticated, using it again",
			         rc->w->id, host, port);
		break;
	case SEN_AUTH_UNKNOWN:
		break;
	}
}

/* Sentinel i's ACL refused (denied) or allowed (!denied) what bit names:
 * a refusal is logged when it is new, for any client of the process. */
static void sentinel_perm_note(struct redis_client *rc, int i, int bit, int denied,
                               const char *detail)
{
	struct redis_sentinel_log *l = sentinel_log(rc, i);
	const char *user = rc->o.sentinel_username;

	if (!denied) {
		__atomic_fetch_and(&l->denied, ~bit, __ATOMIC_RELAXED);
		return;
	}
	if (__atomic_fetch_or(&l->denied, bit, __ATOMIC_RELAXED) & bit)
		return;
	log_error("worker %d: sentinel %s:%d: user \"%s\" may not %s (%.200s); it needs "
	          "+sentinel|get-master-addr-by-name, +subscribe and the channel +switch-master",
	          rc->w->id, rc->o.sentinel_host[i], rc->o.sentinel_port[i],
	          user[0] ? user : "default",
	          bit == SEN_DENIED_SUB ? "subscribe to +switch-master" : "ask for the master",
	          detail);
}

/* An error of sentinel i about our credentials on what bit names: noted
 * (logged once) and 1; 0 for any other error. */
static int sentinel_auth_error(struct redis_client *rc, int i, int bit, const char *e)
{
	if (strncmp(e, "NOAUTH", 6) == 0)
		sentinel_auth_note(rc, i, SEN_AUTH_NEEDED, e);
	else if (strncmp(e, "NOPERM", 6) == 0)
		sentinel_perm_note(rc, i, bit, 1, e);
	else
		return 0;
	return 1;
}

/* The reply to the AUTH that opens every sentinel connection. Refused:
 * the connection is freed, so that its command (query or SUBSCRIBE) is
 * answered with NULL and the next sentinel is tried. A sentinel without
 * a password answers AUTH with an error too; then the connection is used
 * anyway (like a Redis replica whose masterauth is not needed). */
static void on_sentinel_auth(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_client *rc = ac->data;
	redisReply *reply = r;
	int i;

	(void)privdata;
	if (ac == rc->qac)
		i = rc->qac_i;
	else if (ac == rc->sub)
		i = rc->sub_i;
	else
		return;
	if (!reply)
		return;     /* gone: the command's callback follows with NULL */
	if (reply->type != REDIS_REPLY_ERROR) {
		sentinel_auth_note(rc, i, SEN_AUTH_OK, "");
		return;
	}
	if (strstr(reply->str, "without any password configured")) {
		sentinel_auth_note(rc, i, SEN_AUTH_UNUSED, reply->str);
		return;
	}
	sentinel_auth_note(rc, i, SEN_AUTH_REFUSED, reply->str);
	if (ac == rc->qac)
		rc->qac_auth_failed = 1;
	redisAsyncFree(ac);     /* deferred by hiredis until we return */
}

/* The answer to SENTINEL get-master-addr-by-name: connect there, or try
 * the next sentinel after the backoff. */
static void on_master_addr(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_client *rc = privdata;
	redisReply *reply = r;
	char host[64];
	int port;

	if (rc->qac != ac)
		return;
	rc->qac = NULL;
	if (reply)
		redisAsyncDisconnect(ac);   /* deferred by hiredis until we return */
	if (!reply || rsentinel_parse_master(reply, host, sizeof(host), &port) < 0) {
		/* An AUTH problem is logged on its own terms (a refused AUTH was
		 * already). */
		int auth_err = rc->qac_auth_failed ||
		               (reply && reply->type == REDIS_REPLY_ERROR &&
		                sentinel_auth_error(rc, rc->qac_i, SEN_DENIED_QUERY, reply->str));

		if (!rc->logged_down && !auth_err)
			log_warn("worker %d: sentinel %s:%d does not name master \"%s\"", rc->w->id,
			         rc->o.sentinel_host[rc->qac_i], rc->o.sentinel_port[rc->qac_i],
			         sentinel_name(rc));
		rc->logged_down = 1;
		rc->sen_i = (rc->qac_i + 1) % rc->o.nsentinels;
		schedule_reconnect(rc);
		return;
	}
	if (!rc->o.sentinel_password[0])
		sentinel_auth_note(rc, rc->qac_i, SEN_AUTH_OK, "");
	sentinel_perm_note(rc, rc->qac_i, SEN_DENIED_QUERY, 0, "");
	add(&rc->st.sentinel_queries, 1);
	if (strcmp(host, rc->host) != 0 || port != rc->port)
		log_info("worker %d: sentinel: master \"%s\" is %s:%d", rc->w->id,
		         sentinel_name(rc), host, port);
	snprintf(rc->host, sizeof(rc->host), "%s", host);
	rc->port = port;
	rc->have_master = 1;
	redis_connect(rc);
}

static void on_query_connect(const redisAsyncContext *ac, int status)
{
	struct redis_client *rc = ac->data;

	if (status == REDIS_OK || rc->qac != ac)
		return;
	/* hiredis frees ac and answers its command with NULL: on_master_addr
	 * moves on to the next sentinel. */
}

static void on_query_disconnect(const redisAsyncContext *ac, int status)
{
	(void)ac;
	(void)status;
}

/* A connection to the current sentinel (its index in *i) on the worker's
 * loop, or NULL (then the next sentinel is the current one). The caller
 * stores it in rc->qac or rc->sub, then sentinel_auth() pipelines AUTH
 * ahead of its command. */
static redisAsyncContext *sentinel_connect(struct redis_client *rc, int *i)
{
	redisAsyncContext *ac;

	*i = rc->sen_i;
	ac = redisAsyncConnect(rc->o.sentinel_host[*i], rc->o.sentinel_port[*i]);
	if (!ac || ac->err || redisLibevAttach(rc->w->loop, ac) != REDIS_OK) {
		if (ac)
			redisAsyncFree(ac);
		rc->sen_i = (*i + 1) % rc->o.nsentinels;
		return NULL;
	}
	ac->data = rc;
	redisAsyncSetConnectCallback(ac, on_query_connect);
	redisAsyncSetDisconnectCallback(ac, on_query_disconnect);
	return ac;
}

/* AUTH first on a new sentinel connection, when a password is set (hiredis
 * sends in order, and a sentinel answers in order). */
static void sentinel_auth(struct redis_client *rc, redisAsyncContext *ac)
{
	send_auth(ac, on_sentinel_auth, NULL, rc->o.sentinel_username, rc->o.sentinel_password);
}

/* Asks the next sentinel where the master is; the main connection is
 * made from the answer (never blocking the loop: both are async). */
static void sentinel_ask(struct redis_client *rc)
{
	redisAsyncContext *ac;

	if (rc->qac)
		return;
	ac = sentinel_connect(rc, &rc->qac_i);
	if (!ac) {
		schedule_reconnect(rc);
		return;
	}
	rc->qac = ac;
	rc->qac_auth_failed = 0;
	sentinel_auth(rc, ac);
	redisAsyncCommand(ac, on_master_addr, rc, "SENTINEL get-master-addr-by-name %s",
	                  sentinel_name(rc));
}

static void sub_start(struct redis_client *rc);

/* Every +switch-master message (and the SUBSCRIBE confirmation). */
static void on_switch(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_client *rc = privdata;
	redisReply *reply = r;
	char host[64];
	int port;

	if (!reply) {
		/* The subscription is gone: resubscribe, maybe elsewhere. A
		 * sentinel that wants a password answers SUBSCRIBE with NOAUTH,
		 * which hiredis turns into this disconnect. */
		if (rc->sub == ac) {
			rc->sub = NULL;
			if (ac->err)
				sentinel_auth_error(rc, rc->sub_i, SEN_DENIED_SUB, ac->errstr);
			rc->sen_i = (rc->sub_i + 1) % rc->o.nsentinels;
			if (!ev_is_active(&rc->sub_w) && rc->o.nsentinels > 0) {
				ev_timer_set(&rc->sub_w, RECONNECT_MAX_S, 0.);
				ev_timer_start(rc->w->loop, &rc->sub_w);
			}
		}
		return;
	}
	if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
	    reply->element[0]->type == REDIS_REPLY_STRING &&
	    strcmp(reply->element[0]->str, "subscribe") == 0) {
		sentinel_perm_note(rc, rc->sub_i, SEN_DENIED_SUB, 0, "");
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
	    reply->element[2]->type != REDIS_REPLY_STRING ||
	    rsentinel_parse_switch(reply->element[2]->str, reply->element[2]->len,
	                           sentinel_name(rc), host, sizeof(host), &port) != 1)
		return;
	add(&rc->st.sentinel_switches, 1);
	log_info("worker %d: sentinel: +switch-master \"%s\" to %s:%d", rc->w->id,
	         sentinel_name(rc), host, port);
	if (strcmp(host, rc->host) == 0 && port == rc->port && rc->ac)
		return;
	/* Move now: calls in flight on the old master fail (per
	 * on_redis_error), the next ones go to the new one. */
	redis_drop(rc);
	snprintf(rc->host, sizeof(rc->host), "%s", host);
	rc->port = port;
	rc->have_master = 1;
}

static void sub_start(struct redis_client *rc)
{
	redisAsyncContext *ac;

	if (rc->sub)
		return;
	ac = sentinel_connect(rc, &rc->sub_i);
	if (!ac) {
		ev_timer_set(&rc->sub_w, RECONNECT_MAX_S, 0.);
		ev_timer_start(rc->w->loop, &rc->sub_w);
		return;
	}
	rc->sub = ac;
	sentinel_auth(rc, ac);
	redisAsyncCommand(ac, on_switch, rc, "SUBSCRIBE +switch-master");
}

static void on_sub_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	sub_start(t->data);
}

static void on_reconnect(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct redis_client *rc = t->data;

	(void)loop;
	(void)revents;
	if (!rc->ac)
		redis_connect(rc);
}

static void schedule_reconnect(struct redis_client *rc)
{
	double jitter;

	if (ev_is_active(&rc->reconnect_w))
		return;
	rc->backoff = rc->backoff <= 0 ? RECONNECT_MIN_S : rc->backoff * 2;
	if (rc->backoff > RECONNECT_MAX_S)
		rc->backoff = RECONNECT_MAX_S;
	/* +-20 % so that many workers and gateways do not reconnect in step. */
	jitter = 0.8 + 0.4 * (double)(rand_r(&rc->w->rand_state) % 1000) / 1000.0;
	ev_timer_set(&rc->reconnect_w, rc->backoff * jitter, 0.);
	ev_timer_start(rc->w->loop, &rc->reconnect_w);
}

static void count_latency(struct redis_client *rc, double seconds)
{
	uint64_t us = seconds > 0 ? (uint64_t)(seconds * 1e6) : 0;
	int i;

	add(&rc->st.lat_count, 1);
	add(&rc->st.lat_sum_us, us);
	for (i = 0; i < REDIS_LAT_BUCKETS; i++)
		if ((double)us <= worker_lat_bounds_us[i]) {
			add(&rc->st.lat_bucket[i], 1);
			break;
		}
}

static int send_call(struct redis_call *c, int with_source);

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_call *c = privdata;
	struct redis_client *rc = c->rc;
	redisReply *reply = r;
	redis_reply_fn cb = c->cb;
	void *arg = c->arg;
	double now = ev_now(rc->w->loop);

	if (!reply) {
		/* The context is going away; its other callbacks follow. */
		mark_down(rc, ac);
	} else if (reply->type == REDIS_REPLY_ERROR &&
	           strncmp(reply->str, "NOSCRIPT", 8) == 0 && !c->resent) {
		/* Script cache flushed (SCRIPT FLUSH, a failover): EVAL both runs
		 * and caches it; the call keeps its timer and its caller. */
		add(&rc->st.noscript, 1);
		c->resent = 1;
		if (send_call(c, 1) == 0)
			return;
		reply = NULL;
	}
	rc->pending--;
	if (!cb) {
		if (reply)
			add(&rc->st.late_replies, 1);
		free(c);
		return;
	}
	ev_timer_stop(rc->w->loop, &c->timeout_w);
	count_latency(rc, ev_time() - c->t_sent);
	free(c);
	if (cb(arg, reply) < 0 || !reply) {
		if (reply && !rc->logged_down)
			log_warn("worker %d: redis: unexpected reply to %s%s%s", rc->w->id,
			         rc->o.what, reply->type == REDIS_REPLY_ERROR ? ": " : "",
			         reply->type == REDIS_REPLY_ERROR ? reply->str : "");
		add(&rc->st.errors, 1);
		if (breaker_failure(&rc->br, now) && reply)
			redis_drop(rc);
		return;
	}
	breaker_success(&rc->br);
	/* Only an answer proves Redis well: a frozen one still accepts TCP. */
	rc->backoff = 0;
}

static void on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct redis_call *c = t->data;
	struct redis_client *rc = c->rc;
	redis_reply_fn cb = c->cb;
	void *arg = c->arg;

	(void)revents;
	/* From here the call belongs to hiredis alone: the reply, or the NULL
	 * of a dropped connection, frees it. Do not touch c after this. */
	c->cb = NULL;
	c->arg = NULL;
	add(&rc->st.timeouts, 1);
	if (breaker_failure(&rc->br, ev_now(loop)))
		redis_drop(rc);
	cb(arg, NULL);
}

/* Appends the script call to the pipeline. Returns 0, or -1 when hiredis
 * refused it (the context is closing): the caller still owns c. */
static int send_call(struct redis_call *c, int with_source)
{
	struct redis_client *rc = c->rc;
	const char *argv[3 + REDIS_MAX_ARGS];
	size_t argl[3 + REDIS_MAX_ARGS];
	const char *p = (const char *)(c->argl + c->argc);
	char nkeys[16];
	int argc = 0, i;

	if (!rc->ac)
		return -1;
	snprintf(nkeys, sizeof(nkeys), "%d", c->nkeys);
	argv[argc] = with_source ? "EVAL" : "EVALSHA";
	argl[argc] = strlen(argv[argc]);
	argc++;
	argv[argc] = with_source ? rc->o.script : rc->sha;
	argl[argc] = strlen(argv[argc]);
	argc++;
	argv[argc] = nkeys;
	argl[argc] = strlen(nkeys);
	argc++;
	for (i = 0; i < c->argc; i++) {
		argv[argc] = p;
		argl[argc++] = c->argl[i];
		p += c->argl[i];
	}
	if (redisAsyncCommandArgv(rc->ac, on_reply, c, argc, argv, argl) != REDIS_OK)
		return -1;
	add(&rc->st.calls, 1);
	add(&rc->st.keys, (uint64_t)c->nkeys);
	if (!with_source)
		rc->pending++;
	return 0;
}

struct redis_call *redis_script_call(struct redis_client *rc, int nkeys, int argc,
                                     const char *const *argv, const size_t *argl,
                                     redis_reply_fn cb, void *arg)
{
	struct redis_call *c;
	size_t bytes = 0;
	char *p;
	int i;

	if (argc > REDIS_MAX_ARGS || nkeys > argc)
		return NULL;
	for (i = 0; i < argc; i++)
		bytes += argl[i];
	c = malloc(sizeof(*c) + (size_t)argc * sizeof(size_t) + bytes);
	if (!c)
		return NULL;
	c->rc = rc;
	c->cb = cb;
	c->arg = arg;
	c->resent = 0;
	c->nkeys = nkeys;
	c->argc = argc;
	c->argl = (size_t *)(void *)c->data;
	p = (char *)(c->argl + argc);
	for (i = 0; i < argc; i++) {
		c->argl[i] = argl[i];
		memcpy(p, argv[i], argl[i]);
		p += argl[i];
	}
	c->t_sent = ev_time();
	if (send_call(c, 0) < 0) {
		add(&rc->st.errors, 1);
		free(c);
		if (breaker_failure(&rc->br, ev_now(rc->w->loop)))
			redis_drop(rc);
		return NULL;
	}
	ev_timer_init(&c->timeout_w, on_timeout, rc->o.timeout_s, 0.);
	c->timeout_w.data = c;
	ev_timer_start(rc->w->loop, &c->timeout_w);
	return c;
}

void redis_call_cancel(struct redis_call *c)
{
	if (ev_is_active(&c->timeout_w))
		ev_timer_stop(c->rc->w->loop, &c->timeout_w);
	c->cb = NULL;
	c->arg = NULL;
}

int redis_client_admit(struct redis_client *rc, double now)
{
	/* Never queue behind a dead or drowning Redis. */
	return rc->state != REDIS_DOWN && rc->pending < MAX_PENDING &&
	       breaker_admit(&rc->br, now);
}

struct redis_client *redis_client_new(struct worker *w, const struct redis_opts *o)
{
	struct redis_client *rc = calloc(1, sizeof(*rc));
	unsigned char md[SHA_DIGEST_LENGTH];
	int i;

	if (!rc) {
		log_error("worker %d: out of memory", w->id);
		return NULL;
	}
	rc->w = w;
	rc->o = *o;
	breaker_init(&rc->br, o->breaker_failures, o->breaker_open_s);
	SHA1((const unsigned char *)o->script, strlen(o->script), md);
	for (i = 0; i < SHA_DIGEST_LENGTH; i++)
		snprintf(rc->sha + 2 * i, 3, "%02x", md[i]);
	ev_timer_init(&rc->reconnect_w, on_reconnect, 0., 0.);
	rc->reconnect_w.data = rc;
	ev_timer_init(&rc->sub_w, on_sub_timer, 0., 0.);
	rc->sub_w.data = rc;
	snprintf(rc->host, sizeof(rc->host), "%s", o->host ? o->host : "");
	rc->port = o->port;
	if (rc->o.nsentinels > REDIS_MAX_SENTINELS)
		rc->o.nsentinels = REDIS_MAX_SENTINELS;
	if (!rc->o.sentinel_username)
		rc->o.sentinel_username = "";
	if (!rc->o.sentinel_password)
		rc->o.sentinel_password = "";
	if (o->sentinel_master && o->nsentinels > 0)
		sub_start(rc);
	else
		rc->o.sentinel_master = NULL;
	redis_connect(rc);
	return rc;
}

void redis_client_free(struct redis_client *rc)
{
	if (!rc)
		return;
	if (ev_is_active(&rc->reconnect_w))
		ev_timer_stop(rc->w->loop, &rc->reconnect_w);
	if (ev_is_active(&rc->sub_w))
		ev_timer_stop(rc->w->loop, &rc->sub_w);
	rc->o.nsentinels = 0;
	if (rc->sub) {
		redisAsyncContext *ac = rc->sub;

		rc->sub = NULL;
		redisAsyncFree(ac);
	}
	if (rc->qac) {
		redisAsyncContext *ac = rc->qac;

		rc->qac = NULL;
		redisAsyncFree(ac);
	}
	if (rc->ac) {
		redisAsyncContext *ac = rc->ac;

		rc->ac = NULL;      /* no reconnect from the callbacks below */
		redisAsyncFree(ac);
	}
	if (ev_is_active(&rc->reconnect_w))
		ev_timer_stop(rc->w->loop, &rc->reconnect_w);
	free(rc);
}

const struct redis_stats *redis_client_stats(const struct redis_client *rc)
{
	return &rc->st;
}

enum redis_state redis_client_state(const struct redis_client *rc)
{
	return __atomic_load_n(&rc->state, __ATOMIC_RELAXED);
}

int redis_client_breaker_open(const struct redis_client *rc)
{
	return __atomic_load_n(&rc->br.state, __ATOMIC_RELAXED) != BREAKER_CLOSED;
}
