/*
 * Rate-limit stage and its Redis connection (see ratelimit.h).
 *
 * Per worker: one hiredis async context on the worker's loop. Commands are
 * pipelined by hiredis (each decision appends one EVALSHA; replies come
 * back in order). Every call carries its own timer: when it fires the
 * decision goes on per on_redis_error and the call is orphaned, so the late
 * reply (or the NULL reply of a dropped connection) only frees it.
 *
 * Failure handling, so that an outage never makes a request wait:
 *   - no connection (down, waiting to reconnect): fail fast;
 *   - the circuit breaker opens after breaker_failures consecutive
 *     failures and drops the connection; while open, fail fast; after
 *     breaker_open_ms one probe decision may wait for Redis;
 *   - reconnects back off from 25 ms to 500 ms, so a restarted Redis is
 *     used again within about half a second.
 */
#include "ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>
#include <openssl/sha.h>

#include "agent.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit_core.h"
#include "worker.h"

#define RECONNECT_MIN_S   0.025
#define RECONNECT_MAX_S   0.5
#define MAX_PENDING       65536   /* calls hiredis holds; beyond, fail fast */
#define MAX_KEYS          2

/*
 * GCRA over 1..n keys, all or nothing: the request is admitted only when
 * every key admits it, and only then is any state written, so a denied
 * request never spends quota of the other policy. The state of a key is
 * its theoretical arrival time (TAT, microseconds of Redis TIME); it
 * expires when the TAT passes, at most one period later.
 *
 * ARGV[2i-1], ARGV[2i] = limit and period (seconds) of KEYS[i]. The
 * emission interval is period/limit and the burst tolerance period minus
 * one interval: a full quota is usable at once, then it refills smoothly,
 * with no window boundary to burst across. The interval is at least 1 µs
 * (a TAT near 1.7e15 µs has no finer resolution in a double), so one key
 * admits at most a million requests per second whatever its policy.
 *
 * Returns {allowed, remaining_1, reset_ms_1, retry_ms_1, ...}.
 */
static const char gcra_lua[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
	"local n = #KEYS\n"
	"local tat, inc, per = {}, {}, {}\n"
	"local ok = 1\n"
	"for i = 1, n do\n"
	"  per[i] = tonumber(ARGV[2 * i]) * 1000000\n"
	"  inc[i] = math.max(per[i] / tonumber(ARGV[2 * i - 1]), 1)\n"
	"  local v = tonumber(redis.call('GET', KEYS[i]))\n"
	"  if v == nil or v < now then v = now end\n"
	"  tat[i] = v\n"
	"  if v + inc[i] - now > per[i] then ok = 0 end\n"
	"end\n"
	"local out = {ok}\n"
	"for i = 1, n do\n"
	"  local v = tat[i]\n"
	"  local retry = 0\n"
	"  if ok == 1 then\n"
	"    v = v + inc[i]\n"
	"    redis.call('SET', KEYS[i], string.format('%d', v), 'PX', math.max(math.ceil((v - now) / 1000), 1))\n"
	"  elseif v + inc[i] - now > per[i] then\n"
	"    retry = v + inc[i] - per[i] - now\n"
	"  end\n"
	"  local rem = math.floor((per[i] - (v - now)) / inc[i])\n"
	"  if rem < 0 then rem = 0 end\n"
	"  out[#out + 1] = rem\n"
	"  out[#out + 1] = math.ceil((v - now) / 1000)\n"
	"  out[#out + 1] = math.ceil(retry / 1000)\n"
	"end\n"
	"return out\n";

enum redis_state {
	REDIS_DOWN       = 0,   /* waiting for the reconnect timer */
	REDIS_CONNECTING = 1,   /* commands queue in hiredis until connected */
	REDIS_UP         = 2,
};

#define RL_LAT_BUCKETS WORKER_LAT_BUCKETS

/* Written by the owning worker, read by the metrics scrape (relaxed). */
struct rl_stats {
	uint64_t checks;            /* decisions the stage looked at with a policy */
	uint64_t calls;             /* script calls sent */
	uint64_t keys;              /* keys evaluated by Redis */
	uint64_t noscript;          /* NOSCRIPT answered by a resend with EVAL */
	uint64_t errors;            /* error replies, dropped connections */
	uint64_t timeouts;
	uint64_t late_replies;      /* replies after their timeout */
	uint64_t fail_fast;         /* no wait: down or breaker open */
	uint64_t cache_hits;
	uint64_t denied_user;
	uint64_t denied_ip;
	uint64_t shadow_denied;
	uint64_t error_allowed;
	uint64_t error_denied;
	uint64_t connects;
	uint64_t disconnects;
	uint64_t bad_policy;
	uint64_t lat_count;
	uint64_t lat_sum_us;
	uint64_t lat_bucket[RL_LAT_BUCKETS];
};

struct rl_worker {
	struct worker *w;
	struct rl_config cfg;
	redisAsyncContext *ac;
	enum redis_state state;
	ev_timer reconnect_w;
	double backoff;
	int logged_down;            /* one log line per outage */
	unsigned pending;           /* calls hiredis still holds */
	struct rl_breaker br;
	struct rl_cache cache;
	char sha[2 * SHA_DIGEST_LENGTH + 1];
	struct rl_stats st;
};

/* One script call. Owned by hiredis from the send until its callback ran
 * (a reply, or NULL when the context goes away); d is NULL once the
 * decision went on without it (timeout) or was freed. */
struct rl_call {
	struct rl_worker *rw;
	struct decision *d;
	ev_timer timeout_w;
	double t_start;             /* loop time when the decision asked */
	double t_sent;              /* wall time of the send, for latency */
	int n;
	int resent;                 /* NOSCRIPT: already resent with EVAL */
	enum rl_kind kind[MAX_KEYS];
	struct rl_policy pol[MAX_KEYS];
	size_t keylen[MAX_KEYS];
	char key[MAX_KEYS][RL_KEY_MAX];
};

static void add(uint64_t *p, uint64_t v)
{
	__atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

static uint64_t ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void schedule_reconnect(struct rl_worker *rw);

/* Forgets ac when it is the current context (it is being freed by
 * hiredis or by us) and plans a reconnect. Idempotent. */
static void mark_down(struct rl_worker *rw, const redisAsyncContext *ac)
{
	if (rw->ac != ac || !ac)
		return;
	rw->ac = NULL;
	rw->state = REDIS_DOWN;
	add(&rw->st.disconnects, 1);
	schedule_reconnect(rw);
}

/* Drops the connection now: hiredis runs every pending callback with a
 * NULL reply (deferred until the current callback returns when called
 * from one). */
static void redis_drop(struct rl_worker *rw)
{
	redisAsyncContext *ac = rw->ac;

	if (!ac)
		return;
	mark_down(rw, ac);
	redisAsyncFree(ac);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct rl_worker *rw = ac->data;

	if (status != REDIS_OK) {
		if (!rw->logged_down)
			log_warn("worker %d: redis %s:%d: connect: %s", rw->w->id,
			         rw->cfg.redis_host, rw->cfg.redis_port, ac->errstr);
		rw->logged_down = 1;
		mark_down(rw, ac);
		return;
	}
	if (rw->ac != ac)
		return;
	rw->state = REDIS_UP;
	add(&rw->st.connects, 1);
	rl_breaker_reconnected(&rw->br);
	if (rw->logged_down)
		log_info("worker %d: redis %s:%d: connected", rw->w->id, rw->cfg.redis_host,
		         rw->cfg.redis_port);
	rw->logged_down = 0;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rl_worker *rw = ac->data;

	if (rw->ac == ac) {
		if (!rw->logged_down)
			log_warn("worker %d: redis %s:%d: connection lost: %s", rw->w->id,
			         rw->cfg.redis_host, rw->cfg.redis_port,
			         status == REDIS_OK ? "closed" : ac->errstr);
		rw->logged_down = 1;
	}
	mark_down(rw, ac);
}

/* Replies to AUTH, SELECT and SCRIPT LOAD. A refused AUTH or SELECT makes
 * the connection useless: drop it and retry with backoff. */
static void on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct rl_worker *rw = ac->data;
	redisReply *reply = r;
	const char *what = privdata;

	if (!reply) {
		mark_down(rw, ac);
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		if (!rw->logged_down)
			log_error("worker %d: redis %s: %s", rw->w->id, what, reply->str);
		rw->logged_down = 1;
		if (rw->ac == ac)
			redis_drop(rw);
	}
}

static void redis_connect(struct rl_worker *rw)
{
	const struct rl_config *c = &rw->cfg;
	redisAsyncContext *ac;
	char db[16];

	ac = redisAsyncConnect(c->redis_host, c->redis_port);
	if (!ac) {
		schedule_reconnect(rw);
		return;
	}
	if (ac->err) {
		if (!rw->logged_down)
			log_warn("worker %d: redis %s:%d: %s", rw->w->id, c->redis_host,
			         c->redis_port, ac->errstr);
		rw->logged_down = 1;
		redisAsyncFree(ac);
		schedule_reconnect(rw);
		return;
	}
	ac->data = rw;
	if (redisLibevAttach(rw->w->loop, ac) != REDIS_OK) {
		redisAsyncFree(ac);
		schedule_reconnect(rw);
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	rw->ac = ac;
	rw->state = REDIS_CONNECTING;
	/* Pipelined ahead of any decision's command: hiredis sends in order. */
	if (c->redis_password[0]) {
		if (c->redis_username[0])
			redisAsyncCommand(ac, on_setup_reply, (void *)"AUTH", "AUTH %s %s",
			                  c->redis_username, c->redis_password);
		else
			redisAsyncCommand(ac, on_setup_reply, (void *)"AUTH", "AUTH %s",
			                  c->redis_password);
	}
	if (c->redis_db) {
		snprintf(db, sizeof(db), "%d", c->redis_db);
		redisAsyncCommand(ac, on_setup_reply, (void *)"SELECT", "SELECT %s", db);
	}
	/* A restarted Redis has an empty script cache; loading the script now
	 * saves every decision the NOSCRIPT round trip. */
	redisAsyncCommand(ac, on_setup_reply, (void *)"SCRIPT LOAD", "SCRIPT LOAD %s", gcra_lua);
}

static void on_reconnect(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct rl_worker *rw = t->data;

	(void)loop;
	(void)revents;
	if (!rw->ac)
		redis_connect(rw);
}

static void schedule_reconnect(struct rl_worker *rw)
{
	double jitter;

	if (ev_is_active(&rw->reconnect_w))
		return;
	rw->backoff = rw->backoff <= 0 ? RECONNECT_MIN_S : rw->backoff * 2;
	if (rw->backoff > RECONNECT_MAX_S)
		rw->backoff = RECONNECT_MAX_S;
	/* +-20 % so that many workers and gateways do not reconnect in step. */
	jitter = 0.8 + 0.4 * (double)(rand_r(&rw->w->rand_state) % 1000) / 1000.0;
	ev_timer_set(&rw->reconnect_w, rw->backoff * jitter, 0.);
	ev_timer_start(rw->w->loop, &rw->reconnect_w);
}

/* Sets the verdict from an outcome: 429 unless shadow mode, headers always. */
static void apply_outcome(struct rl_worker *rw, struct decision *d,
                          const struct rl_outcome *o, enum rl_kind kind)
{
	struct gw_verdict *v = &d->v;

	v->has_rl = 1;
	v->rl_limit = o->limit;
	v->rl_remaining = o->remaining;
	v->rl_reset = o->reset_s;
	if (o->allowed)
		return;
	if (rw->cfg.shadow) {
		add(&rw->st.shadow_denied, 1);
		log_debug("rate limit (shadow): would deny %s, retry after %llds",
		          kind == RL_USER ? "user" : "ip", (long long)o->retry_after_s);
		return;
	}
	add(kind == RL_USER ? &rw->st.denied_user : &rw->st.denied_ip, 1);
	gw_verdict_deny(v, 429, kind == RL_USER ? GW_R_RATE_LIMITED_USER : GW_R_RATE_LIMITED_IP);
	v->retry_after = o->retry_after_s;
}

/* Redis could not answer in time: on_redis_error decides; no headers. */
static void apply_error(struct rl_worker *rw, struct decision *d)
{
	if (rw->cfg.on_error == RL_ON_ERROR_DENY && !rw->cfg.shadow) {
		add(&rw->st.error_denied, 1);
		gw_verdict_deny(&d->v, 503, GW_R_RATELIMIT_UNAVAILABLE);
	} else {
		add(&rw->st.error_allowed, 1);
	}
}

static void count_latency(struct rl_worker *rw, double seconds)
{
	uint64_t us = seconds > 0 ? (uint64_t)(seconds * 1e6) : 0;
	int i;

	add(&rw->st.lat_count, 1);
	add(&rw->st.lat_sum_us, us);
	for (i = 0; i < RL_LAT_BUCKETS; i++)
		if ((double)us <= worker_lat_bounds_us[i]) {
			add(&rw->st.lat_bucket[i], 1);
			break;
		}
}

/* decision_free() hook: the decision goes away before its call came back.
 * The call stays with hiredis and is freed by its callback. */
static void call_abandon(void *data)
{
	struct rl_call *c = data;

	if (ev_is_active(&c->timeout_w))
		ev_timer_stop(c->rw->w->loop, &c->timeout_w);
	c->d = NULL;
}

/* Detaches the decision from its call and lets the pipeline go on. */
static void resume(struct decision *d)
{
	d->rl_data = NULL;
	d->rl_free = NULL;
	decision_resume(d);
}

static int send_call(struct rl_call *c, int with_source);

static int parse_reply(const redisReply *r, int n, int *allowed, struct rl_key_result *res)
{
	int i;

	if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)(1 + 3 * n))
		return -1;
	for (i = 0; i < 1 + 3 * n; i++)
		if (r->element[i]->type != REDIS_REPLY_INTEGER)
			return -1;
	*allowed = r->element[0]->integer == 1;
	for (i = 0; i < n; i++) {
		res[i].remaining = r->element[1 + 3 * i]->integer;
		res[i].reset_ms = r->element[2 + 3 * i]->integer;
		res[i].retry_ms = r->element[3 + 3 * i]->integer;
	}
	return 0;
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct rl_call *c = privdata;
	struct rl_worker *rw = c->rw;
	struct decision *d = c->d;
	redisReply *reply = r;
	struct rl_key_result res[MAX_KEYS];
	struct rl_outcome o;
	double now = ev_now(rw->w->loop);
	int allowed, i;

	if (!reply) {
		/* The context is going away; its other callbacks follow. */
		mark_down(rw, ac);
	} else if (reply->type == REDIS_REPLY_ERROR &&
	           strncmp(reply->str, "NOSCRIPT", 8) == 0 && !c->resent) {
		/* Script cache flushed (SCRIPT FLUSH, a failover): EVAL both runs
		 * and caches it; the call keeps its timer and its decision. */
		add(&rw->st.noscript, 1);
		c->resent = 1;
		if (send_call(c, 1) == 0)
			return;
		reply = NULL;
	}
	rw->pending--;
	if (!d) {
		if (reply)
			add(&rw->st.late_replies, 1);
		free(c);
		return;
	}
	ev_timer_stop(rw->w->loop, &c->timeout_w);
	count_latency(rw, ev_time() - c->t_sent);
	if (!reply || parse_reply(reply, c->n, &allowed, res) < 0) {
		if (reply && !rw->logged_down)
			log_warn("worker %d: redis: unexpected reply to the rate-limit script%s%s",
			         rw->w->id, reply->type == REDIS_REPLY_ERROR ? ": " : "",
			         reply->type == REDIS_REPLY_ERROR ? reply->str : "");
		add(&rw->st.errors, 1);
		free(c);
		apply_error(rw, d);
		if (rl_breaker_failure(&rw->br, now) && reply)
			redis_drop(rw);
		resume(d);
		return;
	}
	rl_breaker_success(&rw->br);
	/* Only an answer proves Redis well: a frozen one still accepts TCP. */
	rw->backoff = 0;
	rl_outcome_pick(allowed, c->pol, res, c->n, &o);
	if (!allowed) {
		/* Remember each denying key until Redis would admit it again,
		 * counted from when the decision asked (never later than Redis). */
		for (i = 0; i < c->n; i++)
			if (res[i].retry_ms > 0)
				rl_cache_put(&rw->cache, c->key[i], c->keylen[i],
				             c->t_start + (double)res[i].retry_ms / 1000.0,
				             c->t_start + (double)res[i].reset_ms / 1000.0,
				             c->pol[i].limit, now);
	}
	apply_outcome(rw, d, &o, c->kind[o.index]);
	free(c);
	resume(d);
}

static void on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct rl_call *c = t->data;
	struct rl_worker *rw = c->rw;
	struct decision *d = c->d;

	(void)revents;
	/* From here the call belongs to hiredis alone: the reply, or the NULL
	 * of a dropped connection, frees it. Do not touch c after this. */
	c->d = NULL;
	add(&rw->st.timeouts, 1);
	apply_error(rw, d);
	if (rl_breaker_failure(&rw->br, ev_now(loop)))
		redis_drop(rw);
	resume(d);
}

/* Appends the script call to the pipeline. Returns 0, or -1 when hiredis
 * refused it (the context is closing): the caller still owns c. */
static int send_call(struct rl_call *c, int with_source)
{
	struct rl_worker *rw = c->rw;
	const char *argv[3 + 3 * MAX_KEYS];
	size_t argl[3 + 3 * MAX_KEYS];
	char nbuf[MAX_KEYS][2][24];
	char nkeys[4];
	int argc = 0, i;

	if (!rw->ac)
		return -1;
	snprintf(nkeys, sizeof(nkeys), "%d", c->n);
	argv[argc] = with_source ? "EVAL" : "EVALSHA";
	argl[argc] = strlen(argv[argc]);
	argc++;
	argv[argc] = with_source ? gcra_lua : rw->sha;
	argl[argc] = strlen(argv[argc]);
	argc++;
	argv[argc] = nkeys;
	argl[argc] = strlen(nkeys);
	argc++;
	for (i = 0; i < c->n; i++) {
		argv[argc] = c->key[i];
		argl[argc++] = c->keylen[i];
	}
	for (i = 0; i < c->n; i++) {
		snprintf(nbuf[i][0], sizeof(nbuf[i][0]), "%lld", (long long)c->pol[i].limit);
		snprintf(nbuf[i][1], sizeof(nbuf[i][1]), "%lld", (long long)c->pol[i].period);
		argv[argc] = nbuf[i][0];
		argl[argc] = strlen(nbuf[i][0]);
		argc++;
		argv[argc] = nbuf[i][1];
		argl[argc] = strlen(nbuf[i][1]);
		argc++;
	}
	if (redisAsyncCommandArgv(rw->ac, on_reply, c, argc, argv, argl) != REDIS_OK)
		return -1;
	add(&rw->st.calls, 1);
	add(&rw->st.keys, (uint64_t)c->n);
	if (!with_source)
		rw->pending++;
	return 0;
}

/* The authenticated user: the user_id var the authentication stage set. */
static int find_user(const struct decision *d, const char **id, size_t *len)
{
	unsigned i;

	for (i = 0; i < d->v.nvars; i++)
		if (strcmp(d->v.vars[i].name, "user_id") == 0 && d->v.vars[i].len > 0) {
			*id = d->v.vars[i].value;
			*len = d->v.vars[i].len;
			return 1;
		}
	return 0;
}

/* Adds one policy's key to c. Returns 0, or -1 when the policy is
 * malformed or the key does not fit (counted, the policy is skipped). */
static int add_key(struct rl_worker *rw, struct rl_call *c, enum rl_kind kind,
                   struct spop_str pol, const char *id, size_t idlen)
{
	struct rl_policy p;
	int r, n = -1;

	r = rl_policy_parse(pol.ptr, pol.len, &p);
	if (r == 0)
		return 0;
	if (r > 0)
		n = rl_key_build(c->key[c->n], sizeof(c->key[c->n]), kind, id, idlen, &p);
	if (r < 0 || n < 0) {
		if (ld(&rw->st.bad_policy) == 0)
			log_warn("worker %d: rate limit: ignoring %s policy \"%.*s\"", rw->w->id,
			         r < 0 ? "malformed" : "oversized", (int)(pol.len > 64 ? 64 : pol.len),
			         pol.ptr);
		add(&rw->st.bad_policy, 1);
		return -1;
	}
	c->kind[c->n] = kind;
	c->pol[c->n] = p;
	c->keylen[c->n] = (size_t)n;
	c->n++;
	return 0;
}

/* Answers from the local over-limit cache when one of the keys is known to
 * be denied. Returns 1 when it did. */
static int answer_from_cache(struct rl_worker *rw, struct decision *d,
                             const struct rl_call *c, double now)
{
	const struct rl_cache_entry *e, *best = NULL;
	struct rl_outcome o;
	int i, bi = 0;

	for (i = 0; i < c->n; i++) {
		e = rl_cache_get(&rw->cache, c->key[i], c->keylen[i], now);
		if (e && (!best || e->until > best->until)) {
			best = e;
			bi = i;
		}
	}
	if (!best)
		return 0;
	add(&rw->st.cache_hits, 1);
	memset(&o, 0, sizeof(o));
	o.allowed = 0;
	o.index = bi;
	o.limit = best->limit;
	o.remaining = 0;
	o.reset_s = (int64_t)(best->reset_at - now + 0.999);
	o.retry_after_s = (int64_t)(best->until - now + 0.999);
	if (o.retry_after_s < 1)
		o.retry_after_s = 1;
	if (o.reset_s < o.retry_after_s)
		o.reset_s = o.retry_after_s;
	apply_outcome(rw, d, &o, c->kind[bi]);
	return 1;
}

enum stage_rc rl_stage(struct decision *d)
{
	struct rl_worker *rw = d->w->rl;
	struct rl_call *c;
	char subject[64];
	const char *uid;
	size_t ulen;
	double now;
	int n;

	if (!rw || d->v.status != 0)
		return STAGE_NEXT;
	if (d->req.rl_user.len == 0 && d->req.rl_ip.len == 0)
		return STAGE_NEXT;
	c = malloc(sizeof(*c));
	if (!c) {
		apply_error(rw, d);
		return STAGE_NEXT;
	}
	c->rw = rw;
	c->d = NULL;
	c->n = 0;
	c->resent = 0;
	if (d->req.rl_user.len && find_user(d, &uid, &ulen))
		add_key(rw, c, RL_USER, d->req.rl_user, uid, ulen);
	if (d->req.rl_ip.len && d->req.ip_family) {
		n = rl_ip_subject(d->req.ip_family, d->req.ip, rw->cfg.ipv6_prefix, subject,
		                  sizeof(subject));
		if (n > 0)
			add_key(rw, c, RL_IP, d->req.rl_ip, subject, (size_t)n);
	}
	if (c->n == 0) {
		free(c);
		return STAGE_NEXT;
	}
	add(&rw->st.checks, 1);
	now = ev_now(d->w->loop);
	if (answer_from_cache(rw, d, c, now)) {
		free(c);
		return STAGE_NEXT;
	}
	/* Never queue behind a dead or drowning Redis. */
	if (rw->state == REDIS_DOWN || rw->pending >= MAX_PENDING ||
	    !rl_breaker_admit(&rw->br, now)) {
		add(&rw->st.fail_fast, 1);
		free(c);
		apply_error(rw, d);
		return STAGE_NEXT;
	}
	c->t_start = now;
	c->t_sent = ev_time();
	if (send_call(c, 0) < 0) {
		add(&rw->st.errors, 1);
		free(c);
		apply_error(rw, d);
		if (rl_breaker_failure(&rw->br, now))
			redis_drop(rw);
		return STAGE_NEXT;
	}
	c->d = d;
	ev_timer_init(&c->timeout_w, on_timeout, rw->cfg.redis_timeout_s, 0.);
	c->timeout_w.data = c;
	ev_timer_start(d->w->loop, &c->timeout_w);
	d->rl_data = c;
	d->rl_free = call_abandon;
	return STAGE_PENDING;
}

static void render(struct agent *a, struct dynbuf *b);
static struct metrics_source rl_metrics = { render, NULL };

int rl_config_check(const struct agent_config *cfg, char *err, size_t errlen)
{
	struct rl_config c;

	return rl_config_parse(cfg->redis, cfg->rate_limiting, &c, err, errlen);
}

int rl_worker_init(struct worker *w)
{
	static int registered;
	struct rl_worker *rw;
	unsigned char md[SHA_DIGEST_LENGTH];
	char err[512];
	int i;

	w->rl = NULL;
	rw = calloc(1, sizeof(*rw));
	if (!rw) {
		log_error("worker %d: out of memory", w->id);
		return -1;
	}
	if (rl_config_parse(w->agent->cfg.redis, w->agent->cfg.rate_limiting, &rw->cfg,
	                    err, sizeof(err)) < 0) {
		log_error("%s", err);
		free(rw);
		return -1;
	}
	if (!rw->cfg.enabled) {
		free(rw);
		return 0;
	}
	if (rl_config_resolve(&rw->cfg, err, sizeof(err)) < 0) {
		log_error("%s", err);
		free(rw);
		return -1;
	}
	if (rl_cache_init(&rw->cache, (unsigned)rw->cfg.cache_entries) < 0) {
		log_error("worker %d: out of memory", w->id);
		free(rw);
		return -1;
	}
	rw->w = w;
	rl_breaker_init(&rw->br, rw->cfg.breaker_failures, rw->cfg.breaker_open_s);
	SHA1((const unsigned char *)gcra_lua, strlen(gcra_lua), md);
	for (i = 0; i < SHA_DIGEST_LENGTH; i++)
		snprintf(rw->sha + 2 * i, 3, "%02x", md[i]);
	ev_timer_init(&rw->reconnect_w, on_reconnect, 0., 0.);
	rw->reconnect_w.data = rw;
	w->rl = rw;
	if (!registered) {
		registered = 1;
		metrics_register(&rl_metrics);
	}
	redis_connect(rw);
	return 0;
}

void rl_worker_destroy(struct worker *w)
{
	struct rl_worker *rw = w->rl;

	if (!rw)
		return;
	if (ev_is_active(&rw->reconnect_w))
		ev_timer_stop(w->loop, &rw->reconnect_w);
	if (rw->ac) {
		redisAsyncContext *ac = rw->ac;

		rw->ac = NULL;      /* no reconnect from the callbacks below */
		redisAsyncFree(ac);
	}
	if (ev_is_active(&rw->reconnect_w))
		ev_timer_stop(w->loop, &rw->reconnect_w);
	rl_cache_free(&rw->cache);
	free(rw);
	w->rl = NULL;
}

#define SUMRL(field) sum_rl(a, offsetof(struct rl_stats, field))

static uint64_t sum_rl(const struct agent *a, size_t off)
{
	uint64_t s = 0;
	int i;

	for (i = 0; i < a->nworkers; i++)
		if (a->workers[i].rl)
			s += ld((const uint64_t *)((const char *)&a->workers[i].rl->st + off));
	return s;
}

static void counter(struct dynbuf *b, const char *name, const char *help, uint64_t v)
{
	dynbuf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %lu\n", name, help, name, name,
		      (unsigned long)v);
}

static void render(struct agent *a, struct dynbuf *b)
{
	int i, up = 0, open = 0;

	counter(b, "spogate_ratelimit_checks_total", "Decisions checked against a rate-limit policy.",
	        SUMRL(checks));
	counter(b, "spogate_ratelimit_redis_calls_total", "Rate-limit script calls sent to Redis.",
	        SUMRL(calls));
	counter(b, "spogate_ratelimit_redis_keys_total", "Keys evaluated by those calls.",
	        SUMRL(keys));
	counter(b, "spogate_ratelimit_redis_noscript_total", "Calls resent with EVAL after NOSCRIPT.",
	        SUMRL(noscript));
	counter(b, "spogate_ratelimit_redis_errors_total", "Error replies and calls lost with a connection.",
	        SUMRL(errors));
	counter(b, "spogate_ratelimit_redis_timeouts_total", "Calls that exceeded redis.timeout_ms.",
	        SUMRL(timeouts));
	counter(b, "spogate_ratelimit_redis_late_replies_total", "Replies that came after their timeout.",
	        SUMRL(late_replies));
	counter(b, "spogate_ratelimit_fail_fast_total", "Decisions that did not wait: Redis down or breaker open.",
	        SUMRL(fail_fast));
	counter(b, "spogate_ratelimit_cache_hits_total", "Denials answered by the local over-limit cache.",
	        SUMRL(cache_hits));
	counter(b, "spogate_ratelimit_shadow_denied_total", "Requests shadow mode would have denied.",
	        SUMRL(shadow_denied));
	counter(b, "spogate_ratelimit_bad_policy_total", "Policies ignored as malformed.",
	        SUMRL(bad_policy));
	counter(b, "spogate_ratelimit_redis_connects_total", "Redis connections established.",
	        SUMRL(connects));
	counter(b, "spogate_ratelimit_redis_disconnects_total", "Redis connections lost, dropped or refused.",
	        SUMRL(disconnects));
	dynbuf_printf(b, "# HELP spogate_ratelimit_denied_total Requests denied with 429.\n"
	               "# TYPE spogate_ratelimit_denied_total counter\n"
	               "spogate_ratelimit_denied_total{policy=\"user\"} %lu\n"
	               "spogate_ratelimit_denied_total{policy=\"ip\"} %lu\n",
		      (unsigned long)SUMRL(denied_user), (unsigned long)SUMRL(denied_ip));
	dynbuf_printf(b, "# HELP spogate_ratelimit_redis_unavailable_total Decisions made per on_redis_error.\n"
	               "# TYPE spogate_ratelimit_redis_unavailable_total counter\n"
	               "spogate_ratelimit_redis_unavailable_total{action=\"allow\"} %lu\n"
	               "spogate_ratelimit_redis_unavailable_total{action=\"deny\"} %lu\n",
		      (unsigned long)SUMRL(error_allowed), (unsigned long)SUMRL(error_denied));
	for (i = 0; i < a->nworkers; i++) {
		const struct rl_worker *rw = a->workers[i].rl;

		if (!rw)
			continue;
		up += __atomic_load_n(&rw->state, __ATOMIC_RELAXED) == REDIS_UP;
		open += __atomic_load_n(&rw->br.state, __ATOMIC_RELAXED) != RL_BREAKER_CLOSED;
	}
	dynbuf_printf(b, "# HELP spogate_ratelimit_redis_up Workers with a live Redis connection.\n"
	               "# TYPE spogate_ratelimit_redis_up gauge\nspogate_ratelimit_redis_up %d\n", up);
	dynbuf_printf(b, "# HELP spogate_ratelimit_breaker_open Workers whose circuit breaker is not closed.\n"
	               "# TYPE spogate_ratelimit_breaker_open gauge\nspogate_ratelimit_breaker_open %d\n",
		      open);
	dynbuf_printf(b, "# HELP spogate_ratelimit_redis_seconds Round trip of a rate-limit script call.\n"
	               "# TYPE spogate_ratelimit_redis_seconds histogram\n");
	{
		uint64_t counts[RL_LAT_BUCKETS];
		double bounds[RL_LAT_BUCKETS];

		for (i = 0; i < RL_LAT_BUCKETS; i++) {
			counts[i] = SUMRL(lat_bucket[i]);
			bounds[i] = worker_lat_bounds_us[i] / 1e6;
		}
		metrics_histogram(b, "spogate_ratelimit_redis_seconds", "", bounds, counts,
		                  RL_LAT_BUCKETS, SUMRL(lat_count), (double)SUMRL(lat_sum_us) / 1e6);
	}
}
