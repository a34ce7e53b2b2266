/*
 * Rate-limit stage (see ratelimit.h): the policy. Per decision it builds the
 * keys of the user and IP policies, answers from the local over-limit cache
 * when a key is known to be denied, and otherwise sends one script call for
 * both keys through the worker's Redis client (clients/redis.c), which owns
 * the connection, its reconnects, the circuit breaker and the timeouts.
 */
#include "ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "agent.h"
#include "decision.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit_core.h"
#include "redis.h"
#include "worker_ctx.h"

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

/* Written by the owning worker, read by the metrics scrape (relaxed). */
struct rl_stats {
	uint64_t checks;            /* decisions the stage looked at with a policy */
	uint64_t fail_fast;         /* no wait: down or breaker open */
	uint64_t cache_hits;
	uint64_t denied_user;
	uint64_t denied_ip;
	uint64_t shadow_denied;
	uint64_t error_allowed;
	uint64_t error_denied;
	uint64_t bad_policy;
};

struct rl_worker {
	struct worker *w;
	struct rl_config cfg;
	struct redis_client *redis;
	double skip_warned;         /* loop time of the last "limits skipped" warning */
	uint64_t skip_logged;       /* error_allowed at that warning */
	struct rl_cache cache;
	struct rl_stats st;
};

/* One decision's script call, from the send until the answer (or its
 * absence) came back or the decision went away (call_abandon). */
struct rl_call {
	struct rl_worker *rw;
	struct decision *d;
	struct redis_call *call;
	double t_start;             /* loop time when the decision asked */
	int n;
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

/* Sets the verdict from an outcome: 429 unless shadow mode, headers always. */
static void apply_outcome(struct rl_worker *rw, struct decision *d,
                          const struct rl_outcome *o, enum rl_kind kind)
{
	struct gw_verdict *v = &d->v;

	v->has_rl = 1;
	v->rl_limit = o->limit;
	v->rl_remaining = o->remaining;
	v->rl_reset = o->reset_s;
	v->rl_policy = kind == RL_USER ? "user" : "ip";
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

#define SKIP_WARN_S 10.0     /* at most one "limits skipped" warning this often */

/* Redis could not answer in time: on_redis_error decides; no headers.
 * Failing open is documented, but operators must see that limits were
 * skipped: spogate_ratelimit_redis_unavailable_total{action="allow"} and
 * a warning at most every SKIP_WARN_S seconds per worker. */
static void apply_error(struct rl_worker *rw, struct decision *d)
{
	double now = ev_now(rw->w->loop);

	if (rw->cfg.on_error == RL_ON_ERROR_DENY && !rw->cfg.shadow) {
		add(&rw->st.error_denied, 1);
		gw_verdict_deny(&d->v, 503, GW_R_RATELIMIT_UNAVAILABLE);
		return;
	}
	add(&rw->st.error_allowed, 1);
	if (rw->skip_warned == 0 || now - rw->skip_warned >= SKIP_WARN_S) {
		log_warn("worker %d: Redis did not answer in time: rate limits skipped "
		         "(on_redis_error allow) for %lu requests since the last warning",
		         rw->w->id, (unsigned long)(rw->st.error_allowed - rw->skip_logged));
		rw->skip_warned = now;
		rw->skip_logged = rw->st.error_allowed;
	}
}

/* decision_free() hook: the decision goes away before its answer came
 * back. The call stays with the client, which frees it. */
static void call_abandon(void *data)
{
	struct rl_call *c = data;

	redis_call_cancel(c->call);
	free(c);
}

/* Detaches the decision from its call and lets the pipeline go on. */
static void resume(struct decision *d)
{
	decision_set_ctx(d, &ratelimit_stage, NULL);
	decision_resume(d);
}

int rl_script_reply_parse(const redisReply *r, int n, int *allowed, struct rl_key_result *res)
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

/* The client's answer to one call: reply NULL when there is none (timeout,
 * connection lost). Returns -1 when the reply is not the script's. */
static int on_answer(void *arg, const redisReply *reply)
{
	struct rl_call *c = arg;
	struct rl_worker *rw = c->rw;
	struct decision *d = c->d;
	struct rl_key_result res[MAX_KEYS];
	struct rl_outcome o;
	double now = ev_now(rw->w->loop);
	int allowed, i;

	if (!reply || rl_script_reply_parse(reply, c->n, &allowed, res) < 0) {
		free(c);
		apply_error(rw, d);
		resume(d);
		return -1;
	}
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
	return 0;
}

/* Hands c to the client: KEYS are the policies' keys, ARGV their limit and
 * period. Returns 0, or -1 when it could not be sent. */
static int send_call(struct rl_call *c)
{
	const char *argv[3 * MAX_KEYS];
	size_t argl[3 * MAX_KEYS];
	char nbuf[MAX_KEYS][2][24];
	int i, argc = 0;

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
	c->call = redis_script_call(c->rw->redis, c->n, argc, argv, argl, on_answer, c);
	return c->call ? 0 : -1;
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

static enum stage_rc rl_run(struct decision *d, void *wctx)
{
	struct rl_worker *rw = wctx;
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
	c->d = d;
	c->n = 0;
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
	if (!redis_client_admit(rw->redis, now)) {
		add(&rw->st.fail_fast, 1);
		free(c);
		apply_error(rw, d);
		return STAGE_NEXT;
	}
	c->t_start = now;
	if (send_call(c) < 0) {
		free(c);
		apply_error(rw, d);
		return STAGE_NEXT;
	}
	decision_set_ctx(d, &ratelimit_stage, c);
	return STAGE_PENDING;
}

static int rl_enabled;             /* some worker rate limits: render metrics */

static int rl_configure(const struct agent_config *cfg, char *err, size_t errlen)
{
	struct rl_config c;

	return rl_config_parse(cfg->redis, cfg->rate_limiting, &c, err, errlen);
}

/* Connects to Redis on w->loop when rate limiting is enabled (*wctx stays
 * NULL otherwise). From the main thread before the loop runs. */
static int rl_worker_start(struct worker *w, void **wctx)
{
	struct rl_worker *rw;
	struct redis_opts ro;
	char err[512];

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
	memset(&ro, 0, sizeof(ro));
	ro.host = rw->cfg.redis_host;
	ro.port = rw->cfg.redis_port;
	ro.username = rw->cfg.redis_username;
	ro.password = rw->cfg.redis_password;
	ro.db = rw->cfg.redis_db;
	ro.timeout_s = rw->cfg.redis_timeout_s;
	ro.breaker_failures = rw->cfg.breaker_failures;
	ro.breaker_open_s = rw->cfg.breaker_open_s;
	ro.script = gcra_lua;
	ro.what = "the rate-limit script";
	rw->redis = redis_client_new(w, &ro);
	if (!rw->redis) {
		rl_cache_free(&rw->cache);
		free(rw);
		return -1;
	}
	*wctx = rw;
	rl_enabled = 1;
	return 0;
}

/* Closes the connection, resumes (and so frees) decisions still waiting on
 * Redis and frees rw. After the worker's connections are closed. */
static void rl_worker_stop(struct worker *w, void *wctx)
{
	struct rl_worker *rw = wctx;

	(void)w;
	redis_client_free(rw->redis);
	rl_cache_free(&rw->cache);
	free(rw);
}

#define SUMRL(field) sum_at(a, 0, offsetof(struct rl_stats, field))
#define SUMREDIS(field) sum_at(a, 1, offsetof(struct redis_stats, field))

/* Sums one counter over the workers: of the stage's stats, or of its Redis
 * client's (redis), given by its offset. */
static uint64_t sum_at(const struct agent *a, int redis, size_t off)
{
	const struct rl_worker *rw;
	const char *base;
	uint64_t s = 0;
	int i;

	for (i = 0; i < a->nworkers; i++) {
		rw = worker_stage_ctx(&a->workers[i], &ratelimit_stage);
		if (!rw)
			continue;
		base = redis ? (const char *)redis_client_stats(rw->redis) : (const char *)&rw->st;
		s += ld((const uint64_t *)(base + off));
	}
	return s;
}

static void rl_metrics(struct agent *a, struct dynbuf *b)
{
	uint64_t states[3] = { 0, 0, 0 };
	enum redis_state st;
	int i, nrw = 0, open = 0;

	if (!rl_enabled)
		return;
	metrics_counter(b, "spogate_ratelimit_checks_total", "Decisions checked against a rate-limit policy.",
	        SUMRL(checks));
	metrics_counter(b, "spogate_ratelimit_redis_calls_total", "Rate-limit script calls sent to Redis.",
	        SUMREDIS(calls));
	metrics_counter(b, "spogate_ratelimit_redis_keys_total", "Keys evaluated by those calls.",
	        SUMREDIS(keys));
	metrics_counter(b, "spogate_ratelimit_redis_noscript_total", "Calls resent with EVAL after NOSCRIPT.",
	        SUMREDIS(noscript));
	metrics_counter(b, "spogate_ratelimit_redis_errors_total", "Error replies and calls lost with a connection.",
	        SUMREDIS(errors));
	metrics_counter(b, "spogate_ratelimit_redis_timeouts_total", "Calls that exceeded redis.timeout_ms.",
	        SUMREDIS(timeouts));
	metrics_counter(b, "spogate_ratelimit_redis_late_replies_total", "Replies that came after their timeout.",
	        SUMREDIS(late_replies));
	metrics_counter(b, "spogate_ratelimit_fail_fast_total", "Decisions that did not wait: Redis down or breaker open.",
	        SUMRL(fail_fast));
	metrics_counter(b, "spogate_ratelimit_cache_hits_total", "Denials answered by the local over-limit cache.",
	        SUMRL(cache_hits));
	metrics_counter(b, "spogate_ratelimit_shadow_denied_total", "Requests shadow mode would have denied.",
	        SUMRL(shadow_denied));
	metrics_counter(b, "spogate_ratelimit_bad_policy_total", "Policies ignored as malformed.",
	        SUMRL(bad_policy));
	metrics_counter(b, "spogate_ratelimit_redis_connects_total", "Redis connections established.",
	        SUMREDIS(connects));
	metrics_counter(b, "spogate_ratelimit_redis_disconnects_total", "Redis connections lost, dropped or refused.",
	        SUMREDIS(disconnects));
	metrics_family(b, "spogate_ratelimit_denied_total", METRICS_COUNTER,
	               "Requests denied with 429.");
	metrics_sample(b, "spogate_ratelimit_denied_total", "policy=\"user\"", SUMRL(denied_user));
	metrics_sample(b, "spogate_ratelimit_denied_total", "policy=\"ip\"", SUMRL(denied_ip));
	metrics_family(b, "spogate_ratelimit_redis_unavailable_total", METRICS_COUNTER,
	               "Decisions made per on_redis_error.");
	metrics_sample(b, "spogate_ratelimit_redis_unavailable_total", "action=\"allow\"",
	               SUMRL(error_allowed));
	metrics_sample(b, "spogate_ratelimit_redis_unavailable_total", "action=\"deny\"",
	               SUMRL(error_denied));
	for (i = 0; i < a->nworkers; i++) {
		const struct rl_worker *rw = worker_stage_ctx(&a->workers[i], &ratelimit_stage);

		if (!rw)
			continue;
		nrw++;
		st = redis_client_state(rw->redis);
		if ((unsigned)st < 3)
			states[st]++;
		open += redis_client_breaker_open(rw->redis);
	}
	/* One number to alert on: 1 only while every worker has its Redis
	 * connection; the states say how many workers are where. */
	metrics_gauge(b, "spogate_ratelimit_redis_up",
	              "1 when every worker's Redis connection is up, else 0.",
	              nrw > 0 && states[REDIS_UP] == (uint64_t)nrw ? 1 : 0);
	metrics_family(b, "spogate_ratelimit_redis_connections", METRICS_GAUGE,
	               "Workers by the state of their Redis connection.");
	metrics_sample(b, "spogate_ratelimit_redis_connections", "state=\"down\"",
	               states[REDIS_DOWN]);
	metrics_sample(b, "spogate_ratelimit_redis_connections", "state=\"connecting\"",
	               states[REDIS_CONNECTING]);
	metrics_sample(b, "spogate_ratelimit_redis_connections", "state=\"up\"", states[REDIS_UP]);
	metrics_gauge(b, "spogate_ratelimit_breaker_open",
	              "Workers whose circuit breaker is not closed.", open);
	metrics_family(b, "spogate_ratelimit_redis_seconds", METRICS_HISTOGRAM,
	               "Round trip of a rate-limit script call.");
	{
		uint64_t counts[REDIS_LAT_BUCKETS];
		double bounds[REDIS_LAT_BUCKETS];

		for (i = 0; i < REDIS_LAT_BUCKETS; i++) {
			counts[i] = SUMREDIS(lat_bucket[i]);
			bounds[i] = worker_lat_bounds_us[i] / 1e6;
		}
		metrics_histogram(b, "spogate_ratelimit_redis_seconds", "", bounds, counts,
		                  REDIS_LAT_BUCKETS, SUMREDIS(lat_count), (double)SUMREDIS(lat_sum_us) / 1e6);
	}
}

const struct stage_ops ratelimit_stage = {
	.name         = "ratelimit",
	.configure    = rl_configure,
	.start_worker = rl_worker_start,
	.run          = rl_run,
	.release      = call_abandon,
	.metrics      = rl_metrics,
	.stop_worker  = rl_worker_stop,
};
