/*
 * Rate-limit stage (see ratelimit.h): the policy. Per decision it builds the
 * keys of the user and IP policies, answers from the local over-limit cache
 * when a key is known to be denied, and otherwise sends one script call for
 * both keys through the worker's Redis client (clients/redis.c), which owns
 * the connection, its reconnects, the circuit breaker and the timeouts.
 */
#include "ratelimit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <hiredis/hiredis.h>

#include "agent.h"
#include "decision.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit_core.h"
#include "ratelimit_lease.h"
#include "breaker.h"
#include "redis.h"
#include "redis_cluster.h"
#include "worker_ctx.h"

#define MAX_KEYS          2
#define BATCH_MAX         48      /* decisions per call: 48 * (2 + 1 + 8) args fit REDIS_MAX_ARGS */

/*
 * GCRA over many decisions at once ("subjects"), each all or nothing over
 * its keys: a subject is admitted only when every one of its keys admits
 * it, and only then is any of its state written, so a denied request never
 * spends quota of its other policy. Subjects are decided in order, and a
 * key shared by two subjects (one IP, two users) sees the first one's
 * spend. The state of a key is its theoretical arrival time (TAT, in
 * microseconds of Redis TIME); it expires when the TAT passes, at most one
 * period later (plus a lease's life).
 *
 * ARGV, per subject: m (its number of keys, the next m of KEYS), then per
 * key: limit, period (seconds), want (tokens), life (microseconds). The
 * emission interval T is period/limit (at least 1 us: a TAT near 1.7e15 us
 * has no finer resolution in a double) and the burst tolerance period - T.
 * want = 1, life = 0 is one request (exact mode). A lease asks for up to
 * want tokens with a debt of life (ratelimit_lease.h): g tokens are
 * granted when TAT + g*T + life - now <= period; a single token never
 * carries a debt.
 *
 * Returns, per subject: ok, then per key: granted tokens (0 when the
 * subject is denied), d = TAT - now in us (after the spend when admitted,
 * before it otherwise), and the TAT itself (rounded down).
 *
 * One TIME, one MGET and one SET per distinct admitted key, for the whole
 * batch: the old script ran TIME, GET x2 and SET x2 per decision.
 *
 * ARGV[1] = "r" is a refund (Redis Cluster, docs/ratelimit.md): KEYS[1]'s
 * spend of ARGV[3] us is undone when its TAT is still ARGV[2], the one
 * that spend wrote (nobody spent since); otherwise nothing changes.
 */
static const char gcra_lua[] =
	"if ARGV[1] == 'r' then\n"
	"  local x = tonumber(redis.call('GET', KEYS[1]))\n"
	"  if not x or math.floor(x) ~= tonumber(ARGV[2]) then return 0 end\n"
	"  local t = redis.call('TIME')\n"
	"  local now = t[1] * 1000000 + t[2]\n"
	"  local y = x - ARGV[3]\n"
	"  if y <= now then redis.call('DEL', KEYS[1])\n"
	"  else redis.call('SET', KEYS[1], y, 'PX', math.ceil((y - now) / 1000)) end\n"
	"  return 1\n"
	"end\n"
	"local t = redis.call('TIME')\n"
	"local now = t[1] * 1000000 + t[2]\n"
	"local v = redis.call('MGET', unpack(KEYS))\n"
	"local tat, dirty, out = {}, {}, {}\n"
	"local a, k = 1, 0\n"
	"while a <= #ARGV do\n"
	"  local m = tonumber(ARGV[a])\n"
	"  local ok, base, nt = 1, #out, {}\n"
	"  for j = 1, m do\n"
	"    local i, b = k + j, a + 4 * (j - 1)\n"
	"    local x = tat[KEYS[i]] or tonumber(v[i]) or now\n"
	"    if x < now then x = now end\n"
	"    local p = ARGV[b + 2] * 1000000\n"
	"    local inc = math.max(p / ARGV[b + 1], 1)\n"
	"    local life = tonumber(ARGV[b + 4])\n"
	"    local g = math.min(math.floor((p - (x - now) - life) / inc), tonumber(ARGV[b + 3]))\n"
	"    if g >= 2 then\n"
	"      nt[j] = x + g * inc + life\n"
	"    elseif x + inc - now <= p then\n"
	"      g, nt[j] = 1, x + inc\n"
	"    else\n"
	"      g, nt[j], ok = 0, x, 0\n"
	"    end\n"
	"    out[base + 3 * j - 1] = g\n"
	"    out[base + 3 * j] = x\n"
	"  end\n"
	"  out[base + 1] = ok\n"
	"  for j = 1, m do\n"
	"    local x = out[base + 3 * j]\n"
	"    if ok == 1 then\n"
	"      x = nt[j]\n"
	"      tat[KEYS[k + j]] = x\n"
	"      dirty[KEYS[k + j]] = true\n"
	"    else\n"
	"      out[base + 3 * j - 1] = 0\n"
	"    end\n"
	"    out[base + 3 * j] = x - now\n"
	"    out[base + 3 * j + 1] = math.floor(x)\n"
	"  end\n"
	"  a = a + 1 + 4 * m\n"
	"  k = k + m\n"
	"end\n"
	"for key in pairs(dirty) do\n"
	"  redis.call('SET', key, tat[key], 'PX', math.ceil((tat[key] - now) / 1000))\n"
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
	uint64_t lease_hits;        /* decisions admitted from local slices only */
	uint64_t lease_tokens;      /* tokens granted in slices (beyond the first) */
	uint64_t batches;           /* script calls carrying decisions */
	uint64_t batched;           /* decisions in those calls */
	uint64_t refunds;           /* cluster: spends undone for a denied decision */
	uint64_t refunds_skipped;   /* cluster: not undone, the key was spent since */
};

struct rl_batch;

struct rl_worker {
	struct worker *w;
	struct rl_config cfg;
	struct redis_client *redis;    /* one Redis, or NULL with: */
	struct rcluster *cluster;      /* redis.cluster */
	struct breaker br;             /* the cluster's (redis.c has its own) */
	double skip_warned;         /* loop time of the last "limits skipped" warning */
	uint64_t skip_logged;       /* error_allowed at that warning */
	struct rl_cache cache;
	struct rl_leases leases;       /* lease mode only */
	struct rl_batch *open;         /* decisions waiting for the flush */
	ev_prepare flush_w;            /* sends open before the loop sleeps */
	struct rl_stats st;
};

/* One decision's share of a script call. Owned by its batch from the
 * queueing until the batch's answer; d is NULL once the decision went
 * away (req_abandon). */
struct rl_req {
	struct rl_worker *rw;
	struct decision *d;
	double t_start;             /* loop time when the decision asked */
	int n;                      /* keys of the decision */
	int m;                      /* of those, the ones in the call */
	enum rl_kind kind[MAX_KEYS];
	struct rl_policy pol[MAX_KEYS];
	int in_call[MAX_KEYS];      /* 0: a local lease token was taken instead */
	int64_t want[MAX_KEYS];
	int64_t life[MAX_KEYS];
	struct rl_lease *lease[MAX_KEYS];
	/* cluster: one call per key, answered in any order */
	int outstanding;
	int failed;
	int pok[MAX_KEYS];
	int64_t pg[MAX_KEYS], pd[MAX_KEYS], ptat[MAX_KEYS];
	size_t keylen[MAX_KEYS];
	char key[MAX_KEYS][RL_KEY_MAX];
};

/* One key's call of a cluster request. */
struct rl_part {
	struct rl_req *q;
	int i;
};

/* One script call for up to BATCH_MAX decisions, all sent in one loop
 * iteration. */
struct rl_batch {
	struct rl_worker *rw;
	struct redis_call *call;
	int n;
	struct rl_req *req[BATCH_MAX];
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

/* release hook: the decision goes away before its answer came back. Its
 * request stays with the batch, which frees it. */
static void req_abandon(void *data)
{
	struct rl_req *q = data;

	q->d = NULL;
}

/* Detaches the decision from its request and lets the pipeline go on. */
static void resume(struct decision *d)
{
	decision_set_ctx(d, &ratelimit_stage, NULL);
	decision_resume(d);
}

/* The lease of q's key i, when it is still that key's (a lease without a
 * request in flight may have been evicted and reused since). */
static struct rl_lease *lease_of(const struct rl_req *q, int i)
{
	struct rl_lease *e = q->lease[i];

	if (!e || e->keylen != q->keylen[i] || memcmp(e->key, q->key[i], q->keylen[i]) != 0)
		return NULL;
	return e;
}

/* The decision will not be admitted: local tokens it took go back to
 * their slices, slice requests are no longer in flight. */
static void req_unwind(struct rl_req *q, double now)
{
	struct rl_lease *e;
	int i;

	for (i = 0; i < q->n; i++) {
		e = lease_of(q, i);
		if (!e)
			continue;
		if (!q->in_call[i] && now < e->expires)
			e->tokens++;
		if (q->in_call[i] && q->want[i] > 1 && e->inflight > 0)
			e->inflight--;
	}
}

/* One key's figures from the script's: d = TAT - now (us), extra = tokens
 * this worker holds beyond Redis's count. */
static void key_result(const struct rl_policy *p, int64_t d_us, int ok, int64_t extra,
                       struct rl_key_result *r)
{
	double per = (double)p->period * 1e6, inc = per / (double)p->limit;
	double rem;

	if (inc < 1)
		inc = 1;
	rem = floor((per - (double)d_us) / inc);
	r->remaining = (rem < 0 ? 0 : (int64_t)rem) + extra;
	r->reset_ms = (int64_t)ceil((double)d_us / 1000.0);
	r->retry_ms = 0;
	if (!ok && (double)d_us + inc > per)
		r->retry_ms = (int64_t)ceil(((double)d_us + inc - per) / 1000.0);
}

int rl_script_reply_parse(const redisReply *r, int n, const struct rl_policy *pol, int *allowed,
                          struct rl_key_result *res)
{
	int i;

	if (n < 1 || r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)(1 + 3 * n))
		return -1;
	for (i = 0; i < 1 + 3 * n; i++)
		if (r->element[i]->type != REDIS_REPLY_INTEGER)
			return -1;
	if (r->element[0]->integer != 0 && r->element[0]->integer != 1)
		return -1;
	*allowed = r->element[0]->integer == 1;
	for (i = 0; i < n; i++) {
		int64_t g = r->element[1 + 3 * i]->integer, d = r->element[2 + 3 * i]->integer;

		if (g < 0 || d < 0 || d > RL_MAX_PERIOD * (int64_t)2000000)
			return -1;
		key_result(&pol[i], d, *allowed, *allowed && g > 1 ? g - 1 : 0, &res[i]);
	}
	return 0;
}

/* A key answered by a local slice token. */
static void lease_result(const struct rl_lease *e, double now, struct rl_key_result *r)
{
	r->remaining = e->remaining + e->tokens;
	r->reset_ms = (int64_t)ceil((e->reset_at - now) * 1000.0);
	if (r->reset_ms < 0)
		r->reset_ms = 0;
	r->retry_ms = 0;
}

/* Sets q's verdict from the key results (the caller resumes it). */
static void req_finish(struct rl_req *q, int allowed, const struct rl_key_result *res,
                       double now)
{
	struct rl_worker *rw = q->rw;
	struct rl_outcome o;
	int i;

	if (!q->d)
		return;
	rl_outcome_pick(allowed, q->pol, res, q->n, &o);
	if (!allowed) {
		/* Remember each denying key until Redis would admit it again,
		 * counted from when the decision asked (never later than Redis). */
		for (i = 0; i < q->n; i++)
			if (res[i].retry_ms > 0)
				rl_cache_put(&rw->cache, q->key[i], q->keylen[i],
				             q->t_start + (double)res[i].retry_ms / 1000.0,
				             q->t_start + (double)res[i].reset_ms / 1000.0,
				             q->pol[i].limit, now);
	}
	apply_outcome(rw, q->d, &o, q->kind[o.index]);
}

/* q's answer: ok, and per key in the call (in key order) the granted
 * tokens g and d = TAT - now (us). */
static void req_apply(struct rl_req *q, int ok, const int64_t *gs, const int64_t *ds, double now)
{
	struct rl_key_result res[MAX_KEYS];
	struct rl_lease *e;
	int i, j = 0;
	int64_t g, d;

	for (i = 0; i < q->n; i++) {
		e = lease_of(q, i);
		if (!q->in_call[i]) {
			lease_result(e ? e : q->lease[i], now, &res[i]);
			continue;
		}
		g = gs[j];
		d = ds[j];
		j++;
		if (e && q->want[i] > 1 && e->inflight > 0)
			e->inflight--;
		if (e && ok && g >= 1) {
			rl_lease_granted(e, g, q->life[i], q->t_start, 0,
			                 q->t_start + (double)d / 1e6);
			if (g > 1)
				add(&q->rw->st.lease_tokens, (uint64_t)(g - 1));
		}
		key_result(&q->pol[i], d, ok, ok && g > 1 ? g - 1 : 0, &res[i]);
		if (e && ok)
			e->remaining = res[i].remaining - (g > 1 ? g - 1 : 0);
	}
	if (!ok)
		req_unwind(q, now);
	req_finish(q, ok, res, now);
	if (q->d)
		resume(q->d);
}

/* q's part of a batch's answer: el[0] ok, then 3 integers per key in the
 * call. */
static void req_answer(struct rl_req *q, redisReply *const *el, double now)
{
	int64_t gs[MAX_KEYS], ds[MAX_KEYS];
	int j;

	for (j = 0; j < q->m; j++) {
		gs[j] = el[1 + 3 * j]->integer;
		ds[j] = el[2 + 3 * j]->integer;
	}
	req_apply(q, el[0]->integer == 1, gs, ds, now);
}

/* A request whose answer will not come: unwind, then on_redis_error. */
static void req_error(struct rl_req *q, double now)
{
	req_unwind(q, now);
	if (!q->d)
		return;
	apply_error(q->rw, q->d);
	resume(q->d);
}

/* The client's answer to one batch: reply NULL when there is none
 * (timeout, connection lost). Returns -1 when the reply is not the
 * script's (every decision then goes per on_redis_error). */
static int on_batch_answer(void *arg, const redisReply *reply)
{
	struct rl_batch *b = arg;
	double now = ev_now(b->rw->w->loop);
	size_t need = 0, i, off = 0;
	int bad = !reply || reply->type != REDIS_REPLY_ARRAY;

	for (i = 0; i < (size_t)b->n; i++)
		need += 1 + 3 * (size_t)b->req[i]->m;
	if (!bad && reply->elements != need)
		bad = 1;
	for (i = 0; !bad && i < need; i++)
		if (reply->element[i]->type != REDIS_REPLY_INTEGER)
			bad = 1;
	for (i = 0; i < (size_t)b->n; i++) {
		if (bad) {
			req_error(b->req[i], now);
		} else {
			req_answer(b->req[i], reply->element + off, now);
			off += 1 + 3 * (size_t)b->req[i]->m;
		}
		free(b->req[i]);
	}
	free(b);
	return bad ? -1 : 0;
}

/* Sends the open batch as one script call: KEYS are every request's keys
 * in the call, ARGV per request m, then limit, period, want, life per
 * key. Requests whose decision went away meanwhile are dropped. */
static void flush(struct rl_worker *rw)
{
	struct rl_batch *b = rw->open;
	const char *argv[REDIS_MAX_ARGS];
	size_t argl[REDIS_MAX_ARGS];
	char num[BATCH_MAX * (1 + 4 * MAX_KEYS)][24];
	double now = ev_now(rw->w->loop);
	int i, j, k, nk = 0, argc, nn = 0, live = 0;

	rw->open = NULL;
	if (ev_is_active(&rw->flush_w))
		ev_prepare_stop(rw->w->loop, &rw->flush_w);
	if (!b)
		return;
	for (i = 0; i < b->n; i++) {
		if (!b->req[i]->d) {
			req_unwind(b->req[i], now);
			free(b->req[i]);
			continue;
		}
		b->req[live++] = b->req[i];
	}
	b->n = live;
	for (i = 0; i < b->n; i++)
		for (j = 0; j < b->req[i]->n; j++)
			if (b->req[i]->in_call[j]) {
				argv[nk] = b->req[i]->key[j];
				argl[nk++] = b->req[i]->keylen[j];
			}
	argc = nk;
	for (i = 0; i < b->n; i++) {
		const struct rl_req *q = b->req[i];

		snprintf(num[nn], sizeof(num[nn]), "%d", q->m);
		argv[argc++] = num[nn++];
		for (j = 0; j < q->n; j++) {
			const int64_t v[4] = { q->pol[j].limit, q->pol[j].period, q->want[j],
			                       q->life[j] };

			if (!q->in_call[j])
				continue;
			for (k = 0; k < 4; k++) {
				snprintf(num[nn], sizeof(num[nn]), "%lld", (long long)v[k]);
				argv[argc++] = num[nn++];
			}
		}
	}
	for (i = nk; i < argc; i++)
		argl[i] = strlen(argv[i]);
	b->call = b->n ? redis_script_call(rw->redis, nk, argc, argv, argl, on_batch_answer, b)
	               : NULL;
	if (!b->call) {
		for (i = 0; i < b->n; i++) {
			req_error(b->req[i], now);
			free(b->req[i]);
		}
		free(b);
		return;
	}
	add(&rw->st.batches, 1);
	add(&rw->st.batched, (uint64_t)b->n);
}

/* Every decision that became ready in this loop iteration rides on one
 * script call, sent just before the loop waits again. */
static void on_flush(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void)loop;
	(void)revents;
	flush(w->data);
}

/*
 * Redis Cluster: a decision's keys usually live on different masters, and
 * a script may only touch keys of one slot. So each key gets its own call,
 * an atomic "spend if it conforms" (the same script, one subject, one
 * key), sent to the key's master at once. The decision is admitted when
 * every key admitted; when one denied (or failed), the keys that did
 * admit are refunded: the refund undoes the spend only when the key's TAT
 * is still the one that spend wrote, i.e. nobody spent it since, which
 * makes the undo exact. When somebody did, the spend stays: one request
 * of under-admission on that key, never an over-admission. Each key on
 * its own never admits what GCRA would not, and a decision is admitted
 * only with every key's spend, so concurrency anywhere (many gateways,
 * many decisions on one IP) cannot over-admit. docs/ratelimit.md.
 */
static int on_refund(void *arg, const redisReply *reply)
{
	struct rl_worker *rw = arg;

	if (reply && reply->type == REDIS_REPLY_INTEGER)
		add(reply->integer == 1 ? &rw->st.refunds : &rw->st.refunds_skipped, 1);
	return 0;
}

/* Undoes key i's spend (g tokens, its lease's debt) when still possible. */
static void refund(struct rl_req *q, int i, int j)
{
	struct rl_worker *rw = q->rw;
	double per = (double)q->pol[i].period * 1e6, inc = per / (double)q->pol[i].limit;
	char tat[24], amount[24];
	const char *argv[4];
	size_t argl[4];
	int k;

	if (inc < 1)
		inc = 1;
	snprintf(tat, sizeof(tat), "%lld", (long long)q->ptat[j]);
	snprintf(amount, sizeof(amount), "%.3f",
	         (double)q->pg[j] * inc + (q->pg[j] >= 2 ? (double)q->life[i] : 0.0));
	argv[0] = q->key[i];
	argv[1] = "r";
	argv[2] = tat;
	argv[3] = amount;
	for (k = 0; k < 4; k++)
		argl[k] = k ? strlen(argv[k]) : q->keylen[i];
	rcluster_script_call(rw->cluster, 1, 4, argv, argl, rw->cfg.redis_timeout_s, on_refund, rw);
}

/* Every key of q answered (or failed): admit, or deny and refund. */
static void cluster_finish(struct rl_req *q, double now)
{
	int i, j, ok = !q->failed;
	int64_t ds[MAX_KEYS];
	double per, inc;

	for (j = 0; j < q->m && ok; j++)
		ok = q->pok[j];
	if (!ok) {
		for (i = 0, j = 0; i < q->n; i++) {
			if (!q->in_call[i])
				continue;
			if (q->pok[j] && q->pg[j] >= 1) {
				refund(q, i, j);
				/* report the key as it is without this decision */
				per = (double)q->pol[i].period * 1e6;
				inc = per / (double)q->pol[i].limit;
				q->pd[j] -= (int64_t)((double)q->pg[j] * (inc < 1 ? 1 : inc));
				q->pg[j] = 0;
			}
			j++;
		}
	}
	for (j = 0; j < q->m; j++)
		ds[j] = q->pd[j];
	if (q->failed)
		req_error(q, now);
	else
		req_apply(q, ok, q->pg, ds, now);
	free(q);
}

/* One key's answer: {ok, g, d, tat}. */
static int on_part(void *arg, const redisReply *reply)
{
	struct rl_part *p = arg;
	struct rl_req *q = p->q;
	struct rl_worker *rw = q->rw;
	double now = ev_now(rw->w->loop);
	int j = p->i, k, bad;

	bad = !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 4;
	for (k = 0; !bad && k < 4; k++)
		bad = reply->element[k]->type != REDIS_REPLY_INTEGER;
	if (bad) {
		q->failed = 1;
		if (breaker_failure(&rw->br, now))
			log_warn("worker %d: redis cluster: breaker open", rw->w->id);
	} else {
		q->pok[j] = reply->element[0]->integer == 1;
		q->pg[j] = reply->element[1]->integer;
		q->pd[j] = reply->element[2]->integer;
		q->ptat[j] = reply->element[3]->integer;
		breaker_success(&rw->br);
	}
	free(p);
	if (--q->outstanding == 0)
		cluster_finish(q, now);
	return bad ? -1 : 0;
}

/* Sends one call per key of q in the call. Returns 0 (q now belongs to
 * its calls), or -1 when none could be sent (q is still the caller's). */
static int cluster_send(struct rl_worker *rw, struct rl_req *q)
{
	char num[5][24];
	const char *argv[6];
	size_t argl[6];
	struct rl_part *p;
	int i, j = 0, k;

	q->outstanding = 1;         /* held until every call is sent */
	q->failed = 0;
	for (i = 0; i < q->n; i++) {
		const int64_t v[4] = { q->pol[i].limit, q->pol[i].period, q->want[i], q->life[i] };

		if (!q->in_call[i])
			continue;
		q->pok[j] = 0;
		q->pg[j] = q->pd[j] = q->ptat[j] = 0;
		argv[0] = q->key[i];
		argl[0] = q->keylen[i];
		argv[1] = "1";
		for (k = 0; k < 4; k++) {
			snprintf(num[k], sizeof(num[k]), "%lld", (long long)v[k]);
			argv[2 + k] = num[k];
		}
		for (k = 1; k < 6; k++)
			argl[k] = strlen(argv[k]);
		p = malloc(sizeof(*p));
		if (p) {
			p->q = q;
			p->i = j;
		}
		if (p && rcluster_script_call(rw->cluster, 1, 6, argv, argl, rw->cfg.redis_timeout_s,
		                              on_part, p)) {
			q->outstanding++;
		} else {
			free(p);
			q->failed = 1;
		}
		j++;
	}
	if (q->outstanding == 1) {
		q->outstanding = 0;
		return -1;      /* nothing sent */
	}
	/* Replies never come back inside the send, so at least one call is
	 * still out: the last one to answer finishes q. */
	q->outstanding--;
	return 0;
}

/* Adds q to the open batch (flushing a full one first). Returns 0, or -1
 * when out of memory. */
static int enqueue(struct rl_worker *rw, struct rl_req *q)
{
	struct rl_batch *b = rw->open;

	if (b && b->n == BATCH_MAX) {
		flush(rw);
		b = NULL;
	}
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return -1;
		b->rw = rw;
		rw->open = b;
		ev_prepare_start(rw->w->loop, &rw->flush_w);
	}
	b->req[b->n++] = q;
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

/* Adds one policy's key to q. Returns 0, or -1 when the policy is
 * malformed or the key does not fit (counted, the policy is skipped). */
static int add_key(struct rl_worker *rw, struct rl_req *q, enum rl_kind kind,
                   struct spop_str pol, const char *id, size_t idlen)
{
	struct rl_policy p;
	int r, n = -1;

	r = rl_policy_parse(pol.ptr, pol.len, &p);
	if (r == 0)
		return 0;
	if (r > 0)
		n = rl_key_build(q->key[q->n], sizeof(q->key[q->n]), kind, id, idlen, &p);
	if (r < 0 || n < 0) {
		if (ld(&rw->st.bad_policy) == 0)
			log_warn("worker %d: rate limit: ignoring %s policy \"%.*s\"", rw->w->id,
			         r < 0 ? "malformed" : "oversized", (int)(pol.len > 64 ? 64 : pol.len),
			         pol.ptr);
		add(&rw->st.bad_policy, 1);
		return -1;
	}
	q->kind[q->n] = kind;
	q->pol[q->n] = p;
	q->keylen[q->n] = (size_t)n;
	q->in_call[q->n] = 1;
	q->want[q->n] = 1;
	q->life[q->n] = 0;
	q->lease[q->n] = NULL;
	q->n++;
	return 0;
}

/* Answers from the local over-limit cache when one of the keys is known to
 * be denied. Returns 1 when it did. */
static int answer_from_cache(struct rl_worker *rw, struct decision *d,
                             const struct rl_req *q, double now)
{
	const struct rl_cache_entry *e, *best = NULL;
	struct rl_outcome o;
	int i, bi = 0;

	for (i = 0; i < q->n; i++) {
		e = rl_cache_get(&rw->cache, q->key[i], q->keylen[i], now);
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
	apply_outcome(rw, d, &o, q->kind[bi]);
	return 1;
}

/* Lease mode: takes a local token for each key whose slice has one, and
 * sizes the slice to ask for the others. Returns the keys left for the
 * script call. */
static int lease_plan(struct rl_worker *rw, struct rl_req *q, double now)
{
	struct rl_lease *e;
	int i, m = 0;

	for (i = 0; i < q->n; i++) {
		e = rl_lease_get(&rw->leases, q->key[i], q->keylen[i], now);
		q->lease[i] = e;
		if (!e) {
			m++;
			continue;
		}
		rl_lease_seen(e, now);
		if (rl_lease_take(e, now)) {
			q->in_call[i] = 0;
			continue;
		}
		m++;
		if (e->inflight)
			continue;       /* one slice request at a time: this one is exact */
		rl_lease_size(e, &q->pol[i], &q->want[i], &q->life[i]);
		if (q->want[i] > 1)
			e->inflight++;
	}
	return m;
}

static enum stage_rc rl_run(struct decision *d, void *wctx)
{
	struct rl_worker *rw = wctx;
	struct rl_key_result res[MAX_KEYS];
	struct rl_req *q;
	char subject[64];
	const char *uid;
	size_t ulen;
	double now;
	int n, i;

	if (!rw || d->v.status != 0)
		return STAGE_NEXT;
	if (d->req.rl_user.len == 0 && d->req.rl_ip.len == 0)
		return STAGE_NEXT;
	q = malloc(sizeof(*q));
	if (!q) {
		apply_error(rw, d);
		return STAGE_NEXT;
	}
	q->rw = rw;
	q->d = d;
	q->n = 0;
	if (d->req.rl_user.len && find_user(d, &uid, &ulen))
		add_key(rw, q, RL_USER, d->req.rl_user, uid, ulen);
	if (d->req.rl_ip.len && d->req.ip_family) {
		n = rl_ip_subject(d->req.ip_family, d->req.ip, rw->cfg.ipv6_prefix, subject,
		                  sizeof(subject));
		if (n > 0)
			add_key(rw, q, RL_IP, d->req.rl_ip, subject, (size_t)n);
	}
	if (q->n == 0) {
		free(q);
		return STAGE_NEXT;
	}
	add(&rw->st.checks, 1);
	now = ev_now(d->w->loop);
	if (answer_from_cache(rw, d, q, now)) {
		free(q);
		return STAGE_NEXT;
	}
	q->t_start = now;
	q->m = rw->cfg.mode == RL_MODE_LEASE ? lease_plan(rw, q, now) : q->n;
	if (q->m == 0) {
		/* Every key had a local token: admitted without Redis. */
		for (i = 0; i < q->n; i++)
			lease_result(q->lease[i], now, &res[i]);
		add(&rw->st.lease_hits, 1);
		req_finish(q, 1, res, now);
		free(q);
		return STAGE_NEXT;
	}
	if (rw->cluster ? !rcluster_ready(rw->cluster) || !breaker_admit(&rw->br, now)
	                : !redis_client_admit(rw->redis, now)) {
		req_unwind(q, now);
		add(&rw->st.fail_fast, 1);
		free(q);
		apply_error(rw, d);
		return STAGE_NEXT;
	}
	decision_set_ctx(d, &ratelimit_stage, q);
	if (rw->cluster ? cluster_send(rw, q) < 0 : enqueue(rw, q) < 0) {
		decision_set_ctx(d, &ratelimit_stage, NULL);
		req_unwind(q, now);
		free(q);
		apply_error(rw, d);
		return STAGE_NEXT;
	}
	return STAGE_PENDING;
}

static int rl_enabled;             /* some worker rate limits: render metrics */
/* What was logged about each sentinel's AUTH, shared by the workers. */
static struct redis_sentinel_log rl_sentinel_log[RL_MAX_CLUSTER_SEEDS];

static int rl_configure(const struct agent_config *cfg, char *err, size_t errlen)
{
	struct rl_config c;

	return rl_config_parse(cfg->redis, cfg->rate_limiting, &c, err, errlen);
}

/* Every new cluster node connection: AUTH first when configured. */
static void cluster_setup(redisAsyncContext *ac, void *arg)
{
	const struct rl_config *c = arg;

	if (!c->redis_password[0])
		return;
	if (c->redis_username[0])
		redisAsyncCommand(ac, NULL, NULL, "AUTH %s %s", c->redis_username, c->redis_password);
	else
		redisAsyncCommand(ac, NULL, NULL, "AUTH %s", c->redis_password);
}

static struct rcluster *cluster_start(struct rl_worker *rw)
{
	char seeds[RL_MAX_CLUSTER_SEEDS][80];
	const char *sp[RL_MAX_CLUSTER_SEEDS];
	struct rcluster *rc;
	int i;

	for (i = 0; i < rw->cfg.ncluster; i++) {
		snprintf(seeds[i], sizeof(seeds[i]), "%s:%d", rw->cfg.cluster_host[i],
		         rw->cfg.cluster_port[i]);
		sp[i] = seeds[i];
	}
	rc = rcluster_new(rw->w->loop, sp, rw->cfg.ncluster, cluster_setup, &rw->cfg);
	if (rc)
		rcluster_set_script(rc, gcra_lua);
	breaker_init(&rw->br, rw->cfg.breaker_failures, rw->cfg.breaker_open_s);
	return rc;
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
	if (rw->cfg.mode == RL_MODE_LEASE &&
	    rl_leases_init(&rw->leases, (unsigned)(rw->cfg.cache_entries ? rw->cfg.cache_entries
	                                                                  : 4096)) < 0) {
		log_error("worker %d: out of memory", w->id);
		rl_cache_free(&rw->cache);
		free(rw);
		return -1;
	}
	rw->w = w;
	ev_prepare_init(&rw->flush_w, on_flush);
	rw->flush_w.data = rw;
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
	if (rw->cfg.sentinel_master[0]) {
		ro.sentinel_master = rw->cfg.sentinel_master;
		ro.nsentinels = rw->cfg.nsentinels;
		ro.sentinel_host = (const char (*)[64])rw->cfg.sentinel_host;
		ro.sentinel_port = rw->cfg.sentinel_port;
		ro.sentinel_username = rw->cfg.sentinel_username;
		ro.sentinel_password = rw->cfg.sentinel_password;
		ro.sentinel_log = rl_sentinel_log;
	}
	if (rw->cfg.ncluster) {
		rw->cluster = cluster_start(rw);
		if (!rw->cluster)
			log_error("worker %d: redis cluster: no usable seed", w->id);
	} else {
		rw->redis = redis_client_new(w, &ro);
	}
	if (!rw->redis && !rw->cluster) {
		rl_leases_free(&rw->leases);
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
	/* The connections are closed, so every queued request is abandoned:
	 * flushing drops them all. */
	flush(rw);
	if (rw->cluster)
		rcluster_free(rw->cluster);
	else
		redis_client_free(rw->redis);
	rl_leases_free(&rw->leases);
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
		if (redis && !rw->redis)
			continue;       /* cluster mode: rl_metrics_cluster() */
		base = redis ? (const char *)redis_client_stats(rw->redis) : (const char *)&rw->st;
		s += ld((const uint64_t *)(base + off));
	}
	return s;
}

/* The cluster clients' counters (read without locks: relaxed, a scrape
 * may see a counter a little behind). */
static void rl_metrics_cluster(struct agent *a, struct dynbuf *b)
{
	uint64_t v[7] = { 0 };
	int i, any = 0;

	for (i = 0; i < a->nworkers; i++) {
		const struct rl_worker *rw = worker_stage_ctx(&a->workers[i], &ratelimit_stage);
		const struct rcluster_stats *st;
		const struct rcluster_call_stats *cs;

		if (!rw || !rw->cluster)
			continue;
		any = 1;
		st = rcluster_stats(rw->cluster);
		cs = rcluster_call_stats(rw->cluster);
		v[0] += ld(&cs->calls);
		v[1] += ld(&cs->timeouts);
		v[2] += ld(&cs->errors);
		v[3] += ld(&st->moved);
		v[4] += ld(&st->ask);
		v[5] += ld(&st->refreshes);
		v[6] += ld(&cs->noscript);
	}
	if (!any)
		return;
	metrics_counter(b, "spogate_ratelimit_cluster_calls_total", "Cluster: script calls sent.", v[0]);
	metrics_counter(b, "spogate_ratelimit_cluster_timeouts_total", "Cluster: calls past redis.timeout_ms.", v[1]);
	metrics_counter(b, "spogate_ratelimit_cluster_errors_total", "Cluster: calls lost or answered with an error.",
	        v[2]);
	metrics_counter(b, "spogate_ratelimit_cluster_moved_total", "Cluster: MOVED redirects followed.", v[3]);
	metrics_counter(b, "spogate_ratelimit_cluster_ask_total", "Cluster: ASK redirects followed.", v[4]);
	metrics_counter(b, "spogate_ratelimit_cluster_refreshes_total", "Cluster: slot maps loaded.", v[5]);
	metrics_counter(b, "spogate_ratelimit_cluster_noscript_total", "Cluster: calls resent with EVAL.", v[6]);
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
	metrics_counter(b, "spogate_ratelimit_batches_total", "Script calls that carried decisions.",
	        SUMRL(batches));
	metrics_counter(b, "spogate_ratelimit_batched_total", "Decisions those calls carried.",
	        SUMRL(batched));
	metrics_counter(b, "spogate_ratelimit_lease_hits_total", "Decisions admitted from local slices alone.",
	        SUMRL(lease_hits));
	metrics_counter(b, "spogate_ratelimit_lease_tokens_total", "Tokens granted in slices beyond the asking decision's.",
	        SUMRL(lease_tokens));
	metrics_counter(b, "spogate_ratelimit_cluster_refunds_total", "Cluster: spends undone for a denied decision.",
	        SUMRL(refunds));
	metrics_counter(b, "spogate_ratelimit_cluster_refunds_skipped_total",
	        "Cluster: spends left in place, the key was spent since (under-admission).",
	        SUMRL(refunds_skipped));
	rl_metrics_cluster(a, b);
	metrics_counter(b, "spogate_ratelimit_sentinel_queries_total", "Master addresses learnt from Sentinel.",
	        SUMREDIS(sentinel_queries));
	metrics_counter(b, "spogate_ratelimit_sentinel_switches_total", "Sentinel +switch-master followed.",
	        SUMREDIS(sentinel_switches));
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
		if (rw->cluster) {
			states[rcluster_ready(rw->cluster) ? REDIS_UP : REDIS_DOWN]++;
			open += __atomic_load_n(&rw->br.state, __ATOMIC_RELAXED) != BREAKER_CLOSED;
			continue;
		}
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
	.release      = req_abandon,
	.metrics      = rl_metrics,
	.stop_worker  = rl_worker_stop,
};
