/*
 * Authorization stage. The service path mirrors authn.c: a per-worker
 * cache of answers keyed by SHA-256(user \0 permission), a pending entry
 * that queues identical misses, one RPC (joined across workers by grpc.c)
 * whose answer the completion-queue thread hands to every worker.
 */
#include "authz.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

#include "agent.h"
#include "authn.h"
#include "authz.pb-c.h"
#include "cache.h"
#include "config.h"
#include "grpc.h"
#include "log.h"
#include "metrics.h"
#include "trace.h"
#include "worker_ctx.h"

enum authz_mode {
	AUTHZ_NONE    = 0,
	AUTHZ_CLAIMS  = 1,
	AUTHZ_SERVICE = 2,
};

#define CHECK_METHOD "/spogate.authz.v1.AuthzService/CheckPermission"
#define PERM_MAX     256

static struct {
	enum authz_mode mode;
	const char *target;
	struct rpc_tls tls;
	int timeout_ms;
	double cache_ttl;
	long cache_size;
	int on_error_allow;
	struct rpc_channel *ch;
	struct agent *agent;
} Z;

struct authz_worker {
	struct worker *w;
	struct cache *cache;
};

/* A cached answer. Each worker owns its copies, so no reference count. */
struct answer {
	int allowed;
};

static struct {
	uint64_t allowed, denied, hits, misses, coalesced, unavailable, allowed_on_error;
} stats;

static time_t last_loud;           /* on_error allow: one warning per second */

static void count(uint64_t *p)
{
	__atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
}

int authz_grant_matches(const char *grant, const char *perm, size_t permlen)
{
	size_t n = strlen(grant);

	if (n == 1 && grant[0] == '*')
		return 1;
	if (n >= 2 && grant[n - 1] == '*' && grant[n - 2] == '.')
		return permlen >= n - 1 && memcmp(grant, perm, n - 1) == 0;
	return n == permlen && memcmp(grant, perm, n) == 0;
}

static int authz_configure(const struct agent_config *cfg, char *err, size_t errlen)
{
	static const char *const known[] = {
		"mode", "service_target", "timeout_ms", "cache_ttl_ms", "cache_size", "on_error",
		"grpc_tls", NULL
	};
	json_t *s = cfg->authz;
	const char *mode = "none", *on_error = "deny";
	long long n;

	memset(&Z, 0, sizeof(Z));
	Z.timeout_ms = 200;
	Z.cache_ttl = 30;
	Z.cache_size = 100000;
	if (!s)
		return 0;
	if (config_check_keys(s, "authz", known, err, errlen) < 0 ||
	    config_get_str(s, "authz", "mode", &mode, err, errlen) < 0 ||
	    config_get_str(s, "authz", "service_target", &Z.target, err, errlen) < 0 ||
	    config_get_str(s, "authz", "on_error", &on_error, err, errlen) < 0 ||
	    rpc_tls_parse(s, "authz", &Z.tls, err, errlen) < 0)
		return -1;
	n = 200;
	if (config_get_int(s, "authz", "timeout_ms", 1, 60000, &n, err, errlen) < 0)
		return -1;
	Z.timeout_ms = (int)n;
	n = 30000;
	if (config_get_int(s, "authz", "cache_ttl_ms", 0, 86400000, &n, err, errlen) < 0)
		return -1;
	Z.cache_ttl = (double)n / 1000;
	n = 100000;
	if (config_get_int(s, "authz", "cache_size", 1, 10000000, &n, err, errlen) < 0)
		return -1;
	Z.cache_size = (long)n;
	if (strcmp(on_error, "deny") == 0) {
		Z.on_error_allow = 0;
	} else if (strcmp(on_error, "allow") == 0) {
		Z.on_error_allow = 1;
	} else {
		snprintf(err, errlen, "\"authz.on_error\": \"%s\" is not deny or allow", on_error);
		return -1;
	}
	if (strcmp(mode, "none") == 0) {
		Z.mode = AUTHZ_NONE;
	} else if (strcmp(mode, "claims") == 0) {
		Z.mode = AUTHZ_CLAIMS;
	} else if (strcmp(mode, "service") == 0) {
		Z.mode = AUTHZ_SERVICE;
		if (!Z.target || !*Z.target) {
			snprintf(err, errlen, "authz.mode service needs \"service_target\"");
			return -1;
		}
	} else {
		snprintf(err, errlen, "\"authz.mode\": \"%s\" is not none, claims or service", mode);
		return -1;
	}
	return 0;
}

static void authz_metrics(struct agent *a, struct dynbuf *b)
{
	(void)a;
	if (Z.mode == AUTHZ_NONE)
		return;
	metrics_family(b, "spogate_authz_events_total", METRICS_COUNTER,
	               "Authorization outcomes and cache events.");
#define EV(name) metrics_sample(b, "spogate_authz_events_total", "event=\"" #name "\"", \
		__atomic_load_n(&stats.name, __ATOMIC_RELAXED))
	EV(allowed);
	EV(denied);
	EV(hits);
	EV(misses);
	EV(coalesced);
	EV(unavailable);
	EV(allowed_on_error);
#undef EV
}

static int authz_worker_start(struct worker *w, void **wctx)
{
	struct authz_worker *zw;

	if (Z.mode != AUTHZ_SERVICE)
		return 0;
	zw = calloc(1, sizeof(*zw));
	if (!zw || !(zw->cache = cache_new((size_t)Z.cache_size, free))) {
		free(zw);
		log_error("authz: out of memory");
		return -1;
	}
	zw->w = w;
	*wctx = zw;
	return 0;
}

static void authz_worker_stop(struct worker *w, void *wctx)
{
	struct authz_worker *zw = wctx;

	(void)w;
	cache_free(zw->cache);
	free(zw);
}

static int authz_start(struct agent *a)
{
	Z.agent = a;
	if (Z.mode == AUTHZ_NONE)
		return 0;
	rpc_metrics_register();
	if (Z.mode != AUTHZ_SERVICE)
		return 0;
	if (rpc_start() < 0)
		return -1;
	Z.ch = rpc_channel_new(Z.target, "authz", Z.timeout_ms, &Z.tls);
	if (!Z.ch) {
		log_error("authz: cannot create a gRPC channel to %s", Z.target);
		return -1;
	}
	log_info("authz: Authz Service at %s%s, deadline %d ms, on_error %s", Z.target,
	         Z.tls.enabled ? " over TLS" : "", Z.timeout_ms, Z.on_error_allow ? "allow" : "deny");
	return 0;
}

static void authz_stop(struct agent *a)
{
	(void)a;
	rpc_channel_free(Z.ch);
	Z.ch = NULL;
}

/* Sets the verdict for an answer: allowed, denied, or NULL (unavailable). */
static void apply(struct decision *d, const struct answer *ans)
{
	time_t now;

	if (ans && ans->allowed) {
		count(&stats.allowed);
		return;
	}
	if (ans) {
		count(&stats.denied);
		gw_verdict_deny(&d->v, 403, GW_R_PERMISSION_DENIED);
		return;
	}
	count(&stats.unavailable);
	if (!Z.on_error_allow) {
		gw_verdict_deny(&d->v, 503, GW_R_AUTHZ_UNAVAILABLE);
		return;
	}
	count(&stats.allowed_on_error);
	now = time(NULL);
	if (now != __atomic_load_n(&last_loud, __ATOMIC_RELAXED)) {
		__atomic_store_n(&last_loud, now, __ATOMIC_RELAXED);
		log_warn("authz: Authz Service unavailable, ALLOWING %.*s %.*s for permission "
		         "%.*s (authz.on_error allow; %lu such requests so far)",
		         (int)d->req.method.len, d->req.method.ptr, (int)d->req.path.len,
		         d->req.path.ptr, (int)d->req.perm.len, d->req.perm.ptr,
		         (unsigned long)__atomic_load_n(&stats.allowed_on_error, __ATOMIC_RELAXED));
	}
}

/* Wake hook: apply now, resume once the cache is consistent (see authn.c). */
static void on_wake(void *arg, void *value, void *ctx)
{
	struct decision *d = arg;

	apply(d, value);
	decision_batch_add(ctx, d);
}

struct fill_job {
	struct authz_worker *zw;
	uint8_t key[CACHE_KEY_LEN];
	int known;                     /* 0: unavailable */
	int allowed;
	double ttl;
};

static void fill_on_worker(void *arg)
{
	struct fill_job *j = arg;
	struct decision_batch rl = { .n = 0 };
	struct answer *ans = NULL;
	double now = ev_now(j->zw->w->loop);

	if (j->known && (ans = malloc(sizeof(*ans))))
		ans->allowed = j->allowed;
	/* Allocation failure: the waiters get "unavailable", fail closed. */
	cache_fill(j->zw->cache, j->key, ans, now + j->ttl, now, on_wake, &rl);
	free(j);
	decision_batch_resume(&rl, NULL);
}

/* Completion-queue thread: hand the answer to every worker. */
int authz_response_parse(const uint8_t *resp, size_t len, double cache_ttl, int *allowed,
                         double *ttl)
{
	Spogate__Authz__V1__CheckPermissionResponse *m;

	m = spogate__authz__v1__check_permission_response__unpack(NULL, len, resp);
	if (!m)
		return 0;
	*allowed = m->allowed;
	*ttl = cache_ttl;
	/* The service may shorten our cache, never lengthen it. */
	if (m->cache_ttl_seconds > 0 && m->cache_ttl_seconds < *ttl)
		*ttl = m->cache_ttl_seconds;
	spogate__authz__v1__check_permission_response__free_unpacked(m, NULL);
	return 1;
}

static void on_check_done(void *arg, int status, const uint8_t *resp, size_t len)
{
	uint8_t *key = arg;
	int known = 0, allowed = 0, i;
	double ttl = 0;

	if (status == RPC_OK)
		known = authz_response_parse(resp, len, Z.cache_ttl, &allowed, &ttl);
	if (!known && status == RPC_OK) {
		log_warn("authz: malformed CheckPermissionResponse (%zu bytes)", len);
	}
	for (i = 0; i < Z.agent->nworkers; i++) {
		struct fill_job *j = malloc(sizeof(*j));

		if (!j)
			continue;   /* that worker's waiters meet HAProxy's timeout */
		j->zw = worker_stage_ctx(&Z.agent->workers[i], &authz_stage);
		memcpy(j->key, key, CACHE_KEY_LEN);
		j->known = known;
		j->allowed = allowed;
		j->ttl = ttl;
		if (worker_post(j->zw->w, fill_on_worker, j) < 0)
			free(j);
	}
	free(key);
}

static int start_check(struct decision *d, const struct authn_identity *id,
                       const uint8_t *key)
{
	Spogate__Authz__V1__CheckPermissionRequest req =
		SPOGATE__AUTHZ__V1__CHECK_PERMISSION_REQUEST__INIT;
	Spogate__Authz__V1__CheckPermissionRequest__ContextEntry ctx[4], *ctxp[4];
	char perm[PERM_MAX + 1], method[32], path[2048], route[256], ip[INET6_ADDRSTRLEN];
	static const char *const names[4] = { "method", "path", "route", "ip" };
	char *vals[4] = { method, path, route, ip };
	uint8_t *buf = NULL, *k = NULL;
	struct rpc_meta meta;
	size_t n, i;
	int rc = -1;

	snprintf(perm, sizeof(perm), "%.*s", (int)d->req.perm.len, d->req.perm.ptr);
	snprintf(method, sizeof(method), "%.*s", (int)d->req.method.len, d->req.method.ptr);
	snprintf(path, sizeof(path), "%.*s", (int)d->req.path.len, d->req.path.ptr);
	snprintf(route, sizeof(route), "%.*s", (int)d->req.route.len, d->req.route.ptr);
	ip[0] = '\0';
	if (d->req.ip_family == 4 || d->req.ip_family == 6)
		inet_ntop(d->req.ip_family == 4 ? AF_INET : AF_INET6, d->req.ip, ip, sizeof(ip));
	for (i = 0; i < 4; i++) {
		spogate__authz__v1__check_permission_request__context_entry__init(&ctx[i]);
		ctx[i].key = (char *)names[i];
		ctx[i].value = vals[i];
		ctxp[i] = &ctx[i];
	}
	req.user_id = (char *)id->user_id;
	req.permission = perm;
	req.roles = (char **)id->roles;
	req.n_roles = id->nroles;
	req.context = ctxp;
	req.n_context = 4;
	n = spogate__authz__v1__check_permission_request__get_packed_size(&req);
	buf = malloc(n ? n : 1);
	k = malloc(CACHE_KEY_LEN);
	if (!buf || !k)
		goto out;
	spogate__authz__v1__check_permission_request__pack(&req, buf);
	memcpy(k, key, CACHE_KEY_LEN);
	trace_meta(&d->req, &meta);
	rc = rpc_call(Z.ch, CHECK_METHOD, key, &meta, buf, n, on_check_done, k);
	if (rc == 0)
		k = NULL;
 out:
	free(buf);
	free(k);
	return rc;
}

static enum stage_rc check_claims(struct decision *d, const struct authn_identity *id)
{
	size_t i;

	for (i = 0; i < id->nperms; i++)
		if (authz_grant_matches(id->perms[i], d->req.perm.ptr, d->req.perm.len)) {
			count(&stats.allowed);
			return STAGE_NEXT;
		}
	count(&stats.denied);
	gw_verdict_deny(&d->v, 403, GW_R_PERMISSION_DENIED);
	return STAGE_NEXT;
}

static enum stage_rc authz_run(struct decision *d, void *wctx)
{
	const struct authn_identity *id;
	struct authz_worker *zw = wctx;
	uint8_t key[CACHE_KEY_LEN];
	unsigned char kbuf[GW_VAR_MAX_VALUE + 1 + PERM_MAX];
	size_t ulen;
	enum cache_rc rc;
	double now;
	void *v;

	if (Z.mode == AUTHZ_NONE || d->v.status != 0 || d->req.perm.len == 0)
		return STAGE_NEXT;
	id = authn_identity(d);
	if (!id || d->req.perm.len > PERM_MAX) {
		/* A permission with nobody to grant it to: fail closed. */
		count(&stats.denied);
		gw_verdict_deny(&d->v, 403, GW_R_PERMISSION_DENIED);
		return STAGE_NEXT;
	}
	if (Z.mode == AUTHZ_CLAIMS)
		return check_claims(d, id);
	if (!zw)
		return STAGE_NEXT;

	/* user \0 permission: the NUL keeps ("a", "b.c") apart from ("a\0b", ".c"). */
	ulen = strlen(id->user_id);
	if (ulen > GW_VAR_MAX_VALUE)
		ulen = GW_VAR_MAX_VALUE;      /* cannot happen: longer ids are refused */
	memcpy(kbuf, id->user_id, ulen);
	kbuf[ulen] = '\0';
	memcpy(kbuf + ulen + 1, d->req.perm.ptr, d->req.perm.len);
	SHA256(kbuf, ulen + 1 + d->req.perm.len, key);
	now = ev_now(d->w->loop);
	rc = cache_lookup(zw->cache, key, now, d, &v);
	if (rc == CACHE_HIT) {
		count(&stats.hits);
		apply(d, v);
		return STAGE_NEXT;
	}
	if (rc == CACHE_PENDING) {
		count(&stats.coalesced);
		return STAGE_PENDING;
	}
	count(&stats.misses);
	if (rc == CACHE_MISS && cache_lookup(zw->cache, key, now, d, &v) == CACHE_PENDING) {
		struct decision_batch rl = { .n = 0 };

		if (start_check(d, id, key) == 0)
			return STAGE_PENDING;
		/* Breaker open: everyone queued on this key is answered now;
		 * d itself is the running stage and goes on by returning. */
		cache_fill(zw->cache, key, NULL, 0, now, on_wake, &rl);
		decision_batch_resume(&rl, d);
		return STAGE_NEXT;
	}
	apply(d, NULL);
	return STAGE_NEXT;
}

const struct stage_ops authz_stage = {
	.name         = "authz",
	.configure    = authz_configure,
	.start_worker = authz_worker_start,
	.start        = authz_start,
	.run          = authz_run,
	.metrics      = authz_metrics,
	.stop_worker  = authz_worker_stop,
	.stop         = authz_stop,
};
