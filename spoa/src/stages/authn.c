/*
 * Authentication stage: the mode, the claim mapping and the flow. What it
 * builds on is apart: the identity and claim extraction (identity.c), the
 * token cache (tokcache.c), the key sets (jwt/jwt_keys.c) with the
 * verifier (jwt/jwt_verify.c), and the Auth Service client
 * (clients/authsvc.c).
 *
 * Hot path (cache hit): one SHA-256 of the token, one lookup in the
 * worker's own cache, a copy of the identity vars into the verdict. No
 * lock, no allocation.
 */
#include "authn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "authsvc.h"
#include "config.h"
#include "decision.h"
#include "grpc.h"
#include "identity.h"
#include "jwks_fetch.h"
#include "jwt_keys.h"
#include "log.h"
#include "metrics.h"
#include "tokcache.h"
#include "worker_ctx.h"

enum authn_mode {
	AUTHN_NONE    = 0,
	AUTHN_JWT     = 1,
	AUTHN_SERVICE = 2,
};

#define MAX_AUDIENCES   16
#define MAX_PEM_KEYS    32

/* Configuration. Written by the main thread before the workers start. */
static struct {
	enum authn_mode mode;
	struct jwt_policy pol;
	const char *auds[MAX_AUDIENCES];
	const char *jwks_file;
	struct jwks_fetch_cfg remote;  /* jwks_uri or oidc_issuer set: keys over HTTPS */
	struct jwks_fetcher *fetcher;
	struct jwt_pem_file pems[MAX_PEM_KEYS];
	size_t npems;
	struct claim_map claims[GW_MAX_VARS];
	size_t nclaims;
	double cache_ttl;
	double neg_ttl;
	long cache_size;
	long long cache_max_bytes;     /* every worker's token cache together */
	size_t cache_bytes;            /* what they hold (atomic, cache.c) */
	int timeout_ms;
	const char *target;
	struct rpc_tls tls;
	struct agent *agent;
} A;

/* A decision whose token named a kid the key set lacks, waiting for the
 * early JWKS fetch it asked for (or its deadline). */
struct kid_wait {
	struct decision *d;
	uint8_t key[CACHE_KEY_LEN];    /* its pending cache entry */
	double deadline;
	struct kid_wait *next;
};

struct authn_worker {
	struct worker *w;
	struct tokcache *tc;
	struct jwt_keys_view keys;     /* this worker's hold on the key set, NULL: none yet */
	/* Every wait lasts timeout_ms, so arrival order is deadline order. */
	struct kid_wait *waits, **waits_tail;
	ev_timer wait_w;
};

static struct {
	uint64_t hits, misses, coalesced, verified, rejected, rpc_unavailable;
	uint64_t reloads, reload_errors, no_keys, kid_waits;
} stats;

static void count(uint64_t *p)
{
	__atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
}

/* ---- configuration ---- */

/* The token caches of all workers together stay within this by default:
 * 100,000 verified tokens take about 30 MB (docs/agent-json.md). */
#define AUTHN_DEF_CACHE_BYTES (32LL * 1024 * 1024)

/* Variable names derived from claim names, kept until the next configure
 * (verdicts point to them). */
static char *derived_vars[GW_MAX_VARS];
static size_t nderived;

static int parse_claims(json_t *arr, char *err, size_t errlen)
{
	static const char *const known[] = { "claim", "var", "header", NULL };
	static const char *const reserved[] = {
		"status", "reason", "user_id", "rl_limit", "rl_remaining", "rl_reset", "rl_policy",
		"retry_after", "error", "ptime", NULL
	};
	json_t *e;
	size_t i, k;

	A.claims[0].claim = "sub";
	A.claims[0].var = "user_id";
	A.nclaims = 1;
	if (!arr) {
		while (nderived)
			free(derived_vars[--nderived]);
		return 0;
	}
	if (!json_is_array(arr)) {
		snprintf(err, errlen, "\"auth.claims\" must be an array");
		return -1;
	}
	json_array_foreach(arr, i, e) {
		const char *claim = NULL, *var = NULL, *hdr = NULL;
		const char *p;

		if (!json_is_object(e) || config_check_keys(e, "auth.claims[]", known, err, errlen) < 0 ||
		    config_get_str(e, "auth.claims[]", "claim", &claim, err, errlen) < 0 ||
		    config_get_str(e, "auth.claims[]", "var", &var, err, errlen) < 0 ||
		    config_get_str(e, "auth.claims[]", "header", &hdr, err, errlen) < 0) {
			if (!json_is_object(e))
				snprintf(err, errlen, "\"auth.claims[%zu]\" must be an object", i);
			return -1;
		}
		if (!claim || !*claim) {
			snprintf(err, errlen, "\"auth.claims[%zu].claim\" is required", i);
			return -1;
		}
		if (strcmp(claim, "sub") == 0)
			continue;                        /* always user_id */
		if (!var) {
			/* docs/agent-json.md: the claim's name, lower-cased, with
			 * anything outside [a-z0-9_] turned into '_'. Kept until the
			 * next configure (verdicts point to var names). */
			char *v, *q;

			if (nderived >= GW_MAX_VARS) {
				snprintf(err, errlen, "\"auth.claims\": at most %d entries", GW_MAX_VARS - 4);
				return -1;
			}
			v = strdup(claim);
			if (!v) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			derived_vars[nderived++] = v;
			for (q = v; *q; q++) {
				if (*q >= 'A' && *q <= 'Z')
					*q = (char)(*q - 'A' + 'a');
				else if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9')))
					*q = '_';
			}
			var = v;
		}
		for (p = var; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
				break;
		if (*p || !*var) {
			snprintf(err, errlen, "\"auth.claims[%zu].var\": \"%s\" is not [a-z0-9_]+", i, var);
			return -1;
		}
		for (k = 0; reserved[k]; k++)
			if (strcmp(var, reserved[k]) == 0) {
				snprintf(err, errlen, "\"auth.claims[%zu].var\": \"%s\" is reserved", i, var);
				return -1;
			}
		if (A.nclaims >= GW_MAX_VARS - 4) {
			snprintf(err, errlen, "\"auth.claims\": at most %d entries", GW_MAX_VARS - 4);
			return -1;
		}
		A.claims[A.nclaims].claim = claim;
		A.claims[A.nclaims].var = var;
		A.nclaims++;
	}
	return 0;
}

static int parse_str_list(json_t *v, const char *name, const char **out, size_t max,
                          size_t *n, char *err, size_t errlen)
{
	json_t *e;
	size_t i;

	*n = 0;
	if (!v)
		return 0;
	if (json_is_string(v)) {
		out[(*n)++] = json_string_value(v);
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) > max) {
		snprintf(err, errlen, "\"%s\" must be a string or an array of at most %zu strings",
		         name, max);
		return -1;
	}
	json_array_foreach(v, i, e) {
		if (!json_is_string(e)) {
			snprintf(err, errlen, "\"%s[%zu]\" must be a string", name, i);
			return -1;
		}
		out[(*n)++] = json_string_value(e);
	}
	return 0;
}

/* auth.jwks_uri / auth.oidc_issuer and their knobs. A.remote.refresh > 0
 * afterwards means keys come from the provider. Returns 0 or -1. */
static int parse_remote(json_t *s, char *err, size_t errlen)
{
	const char *uri = NULL, *iss = NULL, *ca = NULL;
	long long n;

	memset(&A.remote, 0, sizeof(A.remote));
	if (config_get_str(s, "auth", "jwks_uri", &uri, err, errlen) < 0 ||
	    config_get_str(s, "auth", "oidc_issuer", &iss, err, errlen) < 0 ||
	    config_get_str(s, "auth", "jwks_ca_file", &ca, err, errlen) < 0)
		return -1;
	if (uri && iss) {
		snprintf(err, errlen, "\"auth.jwks_uri\" and \"auth.oidc_issuer\" exclude each other");
		return -1;
	}
	if ((uri && strncmp(uri, "https://", 8) != 0) || (iss && strncmp(iss, "https://", 8) != 0)) {
		snprintf(err, errlen, "\"auth.%s\" must be an https:// URL", uri ? "jwks_uri" : "oidc_issuer");
		return -1;
	}
	n = 300000;
	if (config_get_int(s, "auth", "jwks_refresh_ms", 1000, 86400000, &n, err, errlen) < 0)
		return -1;
	A.remote.refresh = (double)n / 1000;
	n = 5000;
	if (config_get_int(s, "auth", "jwks_timeout_ms", 100, 60000, &n, err, errlen) < 0)
		return -1;
	A.remote.timeout_ms = (long)n;
	if (!uri && !iss) {
		A.remote.refresh = 0;
		return 0;
	}
	A.remote.jwks_uri = uri;
	A.remote.oidc_issuer = iss;
	A.remote.ca_file = ca;
	A.remote.min_refresh = 60;
	A.remote.max_refresh = 86400;
	A.remote.kick_interval = 10;
	return 0;
}

static int authn_configure(const struct agent_config *cfg, char *err, size_t errlen)
{
	static const char *const known[] = {
		"mode", "issuer", "audiences", "jwks_file", "pem_keys", "algorithms",
		"leeway_ms", "max_token_bytes", "service_target", "timeout_ms", "cache_ttl_ms",
		"negative_cache_ttl_ms", "cache_size", "claims", "require_exp", "jwks_uri",
		"oidc_issuer", "jwks_ca_file", "jwks_refresh_ms", "jwks_timeout_ms", "grpc_tls",
		"cache_max_bytes", NULL
	};
	json_t *s = cfg->auth, *v, *e;
	const char *mode = "none", *algs[JWT_NALGS * 2];
	long long n;
	size_t i, nalgs;
	int a;

	/* Strings borrowed from a previous configure (--check, the fuzzer)
	 * must not outlive that config. */
	A.pol.issuer = NULL;
	A.jwks_file = NULL;
	A.target = NULL;
	A.mode = AUTHN_NONE;
	A.pol.algs = JWT_ALG_BIT(JWT_RS256) | JWT_ALG_BIT(JWT_ES256);
	A.pol.leeway = 30;
	A.pol.max_len = JWT_DEF_MAX_TOKEN;
	/* Absent from an older agent.json: keep accepting what it accepted;
	 * the generator writes true unless the YAML says otherwise. */
	A.pol.require_exp = 0;
	A.cache_ttl = 60;
	A.neg_ttl = 5;
	A.cache_size = 100000;
	A.cache_max_bytes = AUTHN_DEF_CACHE_BYTES;
	A.timeout_ms = 200;
	A.nclaims = 0;
	if (parse_claims(NULL, err, errlen) < 0)
		return -1;
	if (!s)
		return 0;
	if (config_check_keys(s, "auth", known, err, errlen) < 0 ||
	    config_get_str(s, "auth", "mode", &mode, err, errlen) < 0 ||
	    config_get_str(s, "auth", "issuer", &A.pol.issuer, err, errlen) < 0 ||
	    config_get_str(s, "auth", "jwks_file", &A.jwks_file, err, errlen) < 0 ||
	    parse_remote(s, err, errlen) < 0 ||
	    config_get_str(s, "auth", "service_target", &A.target, err, errlen) < 0 ||
	    rpc_tls_parse(s, "auth", &A.tls, err, errlen) < 0)
		return -1;
	if (parse_str_list(json_object_get(s, "audiences"), "auth.audiences", A.auds,
	                   MAX_AUDIENCES, &A.pol.naud, err, errlen) < 0)
		return -1;
	A.pol.audiences = A.auds;
	if (json_object_get(s, "algorithms")) {
		if (parse_str_list(json_object_get(s, "algorithms"), "auth.algorithms", algs,
		                   JWT_NALGS * 2, &nalgs, err, errlen) < 0)
			return -1;
		A.pol.algs = 0;
		for (i = 0; i < nalgs; i++) {
			a = jwt_alg_parse(algs[i]);
			if (a < 0) {
				snprintf(err, errlen, "\"auth.algorithms\": \"%s\" is not one of HS256, "
				         "HS384, HS512, RS256, RS384, RS512, ES256, ES384, ES512, PS256, "
				         "PS384, PS512, EdDSA, Ed25519, Ed448", algs[i]);
				return -1;
			}
			/* EdDSA admits Ed25519 and Ed448 too (jwt_alg_allows). */
			A.pol.algs |= jwt_alg_allows((enum jwt_sig_alg)a);
		}
		if (!A.pol.algs) {
			snprintf(err, errlen, "\"auth.algorithms\" is empty");
			return -1;
		}
	}
	n = 30000;
	if (config_get_int(s, "auth", "leeway_ms", 0, 3600000, &n, err, errlen) < 0)
		return -1;
	A.pol.leeway = n / 1000;
	n = JWT_DEF_MAX_TOKEN;
	if (config_get_int(s, "auth", "max_token_bytes", 64, 65536, &n, err, errlen) < 0)
		return -1;
	A.pol.max_len = (size_t)n;
	if (config_get_bool(s, "auth", "require_exp", &A.pol.require_exp, err, errlen) < 0)
		return -1;
	n = 200;
	if (config_get_int(s, "auth", "timeout_ms", 1, 60000, &n, err, errlen) < 0)
		return -1;
	A.timeout_ms = (int)n;
	n = 60000;
	if (config_get_int(s, "auth", "cache_ttl_ms", 0, 86400000, &n, err, errlen) < 0)
		return -1;
	A.cache_ttl = (double)n / 1000;
	n = 5000;
	if (config_get_int(s, "auth", "negative_cache_ttl_ms", 0, 3600000, &n, err, errlen) < 0)
		return -1;
	A.neg_ttl = (double)n / 1000;
	n = 100000;
	if (config_get_int(s, "auth", "cache_size", 1, 10000000, &n, err, errlen) < 0)
		return -1;
	A.cache_size = (long)n;
	if (config_get_int(s, "auth", "cache_max_bytes", 0, 1LL << 40, &A.cache_max_bytes,
	                   err, errlen) < 0)
		return -1;
	if (parse_claims(json_object_get(s, "claims"), err, errlen) < 0)
		return -1;
	v = json_object_get(s, "pem_keys");
	A.npems = 0;
	if (v) {
		static const char *const pknown[] = { "kid", "alg", "file", NULL };

		if (!json_is_array(v) || json_array_size(v) > MAX_PEM_KEYS) {
			snprintf(err, errlen, "\"auth.pem_keys\" must be an array of at most %d keys",
			         MAX_PEM_KEYS);
			return -1;
		}
		json_array_foreach(v, i, e) {
			struct jwt_pem_file *pk = &A.pems[A.npems];

			memset(pk, 0, sizeof(*pk));
			if (!json_is_object(e)) {
				snprintf(err, errlen, "\"auth.pem_keys[%zu]\" must be an object", i);
				return -1;
			}
			if (config_check_keys(e, "auth.pem_keys[]", pknown, err, errlen) < 0 ||
			    config_get_str(e, "auth.pem_keys[]", "kid", &pk->kid, err, errlen) < 0 ||
			    config_get_str(e, "auth.pem_keys[]", "alg", &pk->alg, err, errlen) < 0 ||
			    config_get_str(e, "auth.pem_keys[]", "file", &pk->file, err, errlen) < 0)
				return -1;
			if (!pk->file) {
				snprintf(err, errlen, "\"auth.pem_keys[%zu].file\" is required", i);
				return -1;
			}
			A.npems++;
		}
	}

	if (strcmp(mode, "none") == 0) {
		A.mode = AUTHN_NONE;
	} else if (strcmp(mode, "jwt") == 0) {
		A.mode = AUTHN_JWT;
		if (!A.jwks_file && !A.npems && !A.remote.refresh) {
			snprintf(err, errlen, "auth.mode jwt needs \"jwks_file\", \"pem_keys\", "
			         "\"jwks_uri\" or \"oidc_issuer\"");
			return -1;
		}
		/* With remote keys the files are only the start-up fallback; with
		 * none, there is no key until the first fetch. */
		if (jwt_keys_load(A.jwks_file, A.pems, A.npems, err, errlen) < 0)
			return -1;
		/* Tokens of a discovered provider carry its issuer, unless
		 * auth.issuer says otherwise. */
		if (A.remote.oidc_issuer && !A.pol.issuer)
			A.pol.issuer = A.remote.oidc_issuer;
	} else if (strcmp(mode, "service") == 0) {
		A.mode = AUTHN_SERVICE;
		if (!A.target || !*A.target) {
			snprintf(err, errlen, "auth.mode service needs \"service_target\"");
			return -1;
		}
	} else {
		snprintf(err, errlen, "\"auth.mode\": \"%s\" is not none, jwt or service", mode);
		return -1;
	}
	return 0;
}

/* ---- metrics ---- */

static void authn_metrics(struct agent *a, struct dynbuf *b)
{
	static const char *const names[] = {
		"hits", "misses", "coalesced", "verified", "rejected", "rpc_unavailable",
		"reloads", "reload_errors", "no_keys", "kid_waits",
	};
	const uint64_t *vals[] = {
		&stats.hits, &stats.misses, &stats.coalesced, &stats.verified, &stats.rejected,
		&stats.rpc_unavailable, &stats.reloads, &stats.reload_errors, &stats.no_keys,
		&stats.kid_waits,
	};
	uint64_t entries = 0, bytes = 0, e, by;
	char labels[64];
	size_t i;
	int w;

	if (A.mode == AUTHN_NONE)
		return;
	for (w = 0; w < a->nworkers; w++) {
		const struct authn_worker *aw = worker_stage_ctx(&a->workers[w], &authn_stage);

		if (aw) {
			tokcache_size(aw->tc, &e, &by);
			entries += e;
			bytes += by;
		}
	}
	metrics_gauge(b, "spogate_auth_cache_entries", "Tokens cached by all workers.",
	              (double)entries);
	metrics_gauge(b, "spogate_auth_cache_bytes",
	              "What the cached tokens cost, against auth.cache_max_bytes.", (double)bytes);
	metrics_family(b, "spogate_auth_events_total", METRICS_COUNTER,
	               "Authentication cache and verification events.");
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(labels, sizeof(labels), "event=\"%s\"", names[i]);
		metrics_sample(b, "spogate_auth_events_total", labels,
		               __atomic_load_n(vals[i], __ATOMIC_RELAXED));
	}
	if (A.fetcher)
		jwks_fetcher_render(A.fetcher, b);
}

/* ---- life cycle ---- */

static void apply(struct decision *d, struct identity *r);
static void on_validated(const uint8_t *key, const Spogate__Auth__V1__ValidateTokenResponse *m);
static void on_wait_timer(struct ev_loop *loop, ev_timer *t, int revents);
static void on_jwks(void *arg, struct jwt_keyset *ks);

/* The fetcher posts to the workers, so it goes before the first of them
 * (stop_worker runs after the jobs posted to it): idempotent. */
static void stop_fetcher(void)
{
	if (A.fetcher) {
		jwks_fetcher_stop(A.fetcher);
		A.fetcher = NULL;
	}
}

static int authn_worker_start(struct worker *w, void **wctx)
{
	struct authn_worker *aw;

	if (A.mode == AUTHN_NONE)
		return 0;
	aw = calloc(1, sizeof(*aw));
	if (!aw || !(aw->tc = tokcache_new(w, (size_t)A.cache_size, apply))) {
		free(aw);
		log_error("authn: out of memory");
		return -1;
	}
	tokcache_set_budget(aw->tc, (size_t)A.cache_max_bytes, &A.cache_bytes);
	aw->w = w;
	aw->waits_tail = &aw->waits;
	ev_timer_init(&aw->wait_w, on_wait_timer, 0., 0.);
	aw->wait_w.data = aw;
	*wctx = aw;
	return 0;
}

static void authn_worker_stop(struct worker *w, void *wctx)
{
	struct authn_worker *aw = wctx;

	stop_fetcher();
	if (w->loop && ev_is_active(&aw->wait_w))
		ev_timer_stop(w->loop, &aw->wait_w);
	/* The drain answered every decision; what is left is only the wait
	 * records of decisions freed with their connection. */
	while (aw->waits) {
		struct kid_wait *kw = aw->waits;

		aw->waits = kw->next;
		free(kw);
	}
	tokcache_free(aw->tc);
	jwt_keys_view_drop(&aw->keys);
	free(aw);
}

static int authn_start(struct agent *a)
{
	A.agent = a;
	if (A.mode == AUTHN_NONE)
		return 0;
	if (A.mode == AUTHN_SERVICE) {
		if (authsvc_start(A.target, A.timeout_ms, &A.tls, on_validated) < 0)
			return -1;
	} else if (A.remote.refresh > 0) {
		char err[256];

		A.fetcher = jwks_fetcher_start(&A.remote, on_jwks, NULL, err, sizeof(err));
		if (!A.fetcher) {
			log_error("authn: %s", err);
			return -1;
		}
		log_info("authn: local JWT verification, keys from %s every %.0f s (%zu at start)",
		         A.remote.jwks_uri ? A.remote.jwks_uri : A.remote.oidc_issuer,
		         A.remote.refresh, jwt_keys_size());
	} else {
		log_info("authn: local JWT verification with %zu keys", jwt_keys_size());
	}
	rpc_metrics_register();
	return 0;
}

static void authn_stop(struct agent *a)
{
	(void)a;
	stop_fetcher();
	authsvc_stop();
	jwt_keys_clear();
}

static int authn_reload(void)
{
	char err[512];

	if (A.mode != AUTHN_JWT)
		return 0;
	/* Remote keys: a signal asks the provider again; the files were only
	 * the start-up fallback. */
	if (A.fetcher) {
		jwks_fetcher_refresh(A.fetcher);
		log_info("authn: SIGHUP: fetching the JWKS again");
		return 0;
	}
	if (jwt_keys_reload(err, sizeof(err)) < 0) {
		count(&stats.reload_errors);
		log_error("authn: reload failed, keeping the current keys: %s", err);
		return -1;
	}
	count(&stats.reloads);
	log_info("authn: reloaded %zu keys", jwt_keys_size());
	return 0;
}

/* ---- the stage ---- */

static void apply(struct decision *d, struct identity *r)
{
	unsigned i;

	if (!r) {
		gw_verdict_deny(&d->v, 503, GW_R_AUTH_UNAVAILABLE);
		return;
	}
	if (r->status) {
		gw_verdict_deny(&d->v, r->status, r->reason);
		return;
	}
	for (i = 0; i < r->nvars; i++)
		if (gw_verdict_add_var(&d->v, r->vars[i].name, r->vars[i].value, r->vars[i].len) < 0) {
			gw_verdict_deny(&d->v, 401, GW_R_TOKEN_INVALID);
			return;
		}
	decision_set_ctx(d, &authn_stage, identity_ref(r));
}

const struct authn_identity *authn_identity(const struct decision *d)
{
	const struct identity *r = decision_ctx(d, &authn_stage);

	return r && r->status == 0 ? &r->id : NULL;
}

static enum gw_reason jwt_reason(enum jwt_status st)
{
	switch (st) {
	case JWT_E_EXPIRED:       return GW_R_TOKEN_EXPIRED;
	case JWT_E_NOT_YET_VALID: return GW_R_TOKEN_NOT_YET_VALID;
	case JWT_E_ISSUER:        return GW_R_ISSUER_MISMATCH;
	case JWT_E_AUDIENCE:      return GW_R_AUDIENCE_MISMATCH;
	default:                  return GW_R_TOKEN_INVALID;
	}
}

/* Verifies locally. Returns the identity (one reference) and its expiry;
 * *stp (may be NULL) gets the verifier's status. */
static struct identity *verify_local(struct authn_worker *aw, const char *tok, size_t len,
                                     double now, double *expires, enum jwt_status *stp)
{
	json_t *claims = NULL, *exp;
	enum jwt_status st;
	struct identity *r;

	st = jwt_verify_token(aw->keys.keys, &A.pol, tok, len, (int64_t)now, &claims);
	if (stp)
		*stp = st;
	if (st != JWT_OK) {
		count(&stats.rejected);
		log_debug("authn: token refused: %s", jwt_status_str(st));
		/* A token becomes valid with time: do not remember that one. */
		*expires = st == JWT_E_NOT_YET_VALID ? 0 : now + A.neg_ttl;
		return identity_deny(401, jwt_reason(st));
	}
	count(&stats.verified);
	r = identity_from_claims(claims, A.claims, A.nclaims);
	*expires = now + A.cache_ttl;
	exp = json_object_get(claims, "exp");
	if (json_is_number(exp) && json_number_value(exp) + (double)A.pol.leeway < *expires)
		*expires = json_number_value(exp) + (double)A.pol.leeway;
	json_decref(claims);
	return r;
}

/* ---- unknown kid: wait for the early JWKS fetch ---- */

/* Decides a waiting decision with the keys the worker has now, fills its
 * cache entry (waking the identical requests queued behind it) and
 * resumes it. */
static void kid_wait_finish(struct authn_worker *aw, struct kid_wait *kw)
{
	struct decision *d = kw->d;
	double now = ev_now(aw->w->loop), expires = 0;
	struct identity *r;

	if (jwt_keys_sync(&aw->keys))
		tokcache_clear(aw->tc);
	if (aw->keys.keys) {
		r = verify_local(aw, d->token.ptr, d->token.len, now, &expires, NULL);
	} else {
		r = NULL;
		count(&stats.no_keys);
	}
	apply(d, r);
	tokcache_fill(aw->tc, kw->key, r, expires, now, NULL);
	free(kw);
	decision_resume(d);
}

static void arm_wait_timer(struct authn_worker *aw)
{
	double now = ev_now(aw->w->loop);

	if (ev_is_active(&aw->wait_w))
		ev_timer_stop(aw->w->loop, &aw->wait_w);
	if (!aw->waits)
		return;
	ev_timer_set(&aw->wait_w, aw->waits->deadline > now ? aw->waits->deadline - now : 0., 0.);
	ev_timer_start(aw->w->loop, &aw->wait_w);
}

/* Takes the waits off aw (all of them, or those past their deadline) and
 * decides them. */
static void kid_waits_run(struct authn_worker *aw, int all)
{
	double now = ev_now(aw->w->loop);
	struct kid_wait *kw;

	while ((kw = aw->waits) && (all || kw->deadline <= now)) {
		aw->waits = kw->next;
		if (!aw->waits)
			aw->waits_tail = &aw->waits;
		kid_wait_finish(aw, kw);
	}
	if (aw->w->loop)
		arm_wait_timer(aw);
}

static void on_wait_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	kid_waits_run(t->data, 0);
}

/* Worker job: a fetch ended (new keys or not); every wait is answered. */
static void on_fetch_done(void *arg)
{
	kid_waits_run(arg, 1);
}

/* Fetcher thread: every attempt ends here. */
static void on_jwks(void *arg, struct jwt_keyset *ks)
{
	int i;

	(void)arg;
	if (ks)
		jwt_keys_set(ks);
	for (i = 0; i < A.agent->nworkers; i++) {
		struct authn_worker *aw = worker_stage_ctx(&A.agent->workers[i], &authn_stage);

		/* Without memory that worker's waits end at their deadline. */
		if (aw)
			worker_post(aw->w, on_fetch_done, aw);
	}
}

/* Parks d (its cache entry key pending) until the early fetch it asked for
 * ends or timeout_ms passes. Returns 0, or -1 when it cannot wait. */
static int kid_wait_start(struct authn_worker *aw, struct decision *d, const uint8_t *key)
{
	struct kid_wait *kw;

	if (!jwks_fetcher_kick(A.fetcher) || !(kw = calloc(1, sizeof(*kw))))
		return -1;
	kw->d = d;
	memcpy(kw->key, key, CACHE_KEY_LEN);
	kw->deadline = ev_now(aw->w->loop) + A.timeout_ms / 1000.0;
	*aw->waits_tail = kw;
	aw->waits_tail = &kw->next;
	if (!ev_is_active(&aw->wait_w))
		arm_wait_timer(aw);
	count(&stats.kid_waits);
	return 0;
}

/* The Auth Service's answer (NULL: unavailable), on the completion-queue
 * thread: one answer, every worker learns it (a later identical request on
 * another worker is then a hit too). */
static void on_validated(const uint8_t *key, const Spogate__Auth__V1__ValidateTokenResponse *m)
{
	struct identity *r = NULL;
	double now = (double)time(NULL), expires = 0;
	int i;

	if (m) {
		r = identity_from_response(m, A.claims, A.nclaims);
		if (r && r->status == 0) {
			expires = now + A.cache_ttl;
			if (m->expires_at > 0 && (double)m->expires_at < expires)
				expires = (double)m->expires_at;
		} else if (r) {
			expires = now + A.neg_ttl;
		}
	} else {
		count(&stats.rpc_unavailable);
	}
	for (i = 0; i < A.agent->nworkers; i++) {
		struct authn_worker *aw = worker_stage_ctx(&A.agent->workers[i], &authn_stage);

		tokcache_post(aw->tc, key, r, expires);
	}
	identity_unref(r);
}

static enum stage_rc authn_run(struct decision *d, void *wctx)
{
	struct authn_worker *aw = wctx;
	uint8_t key[CACHE_KEY_LEN];
	struct identity *r, *v;
	double now, expires;
	enum cache_rc rc;

	if (!d->req.auth)
		return STAGE_NEXT;
	if (d->token.len == 0) {
		gw_verdict_deny(&d->v, 401, GW_R_TOKEN_MISSING);
		return STAGE_NEXT;
	}
	if (A.mode == AUTHN_NONE || !aw)
		return STAGE_NEXT;
	if (d->token.len > A.pol.max_len) {
		count(&stats.rejected);
		gw_verdict_deny(&d->v, 401, GW_R_TOKEN_INVALID);
		return STAGE_NEXT;
	}
	if (A.mode == AUTHN_JWT) {
		/* The worker's cache holds results of the old keys: they go too. */
		if (jwt_keys_sync(&aw->keys))
			tokcache_clear(aw->tc);
		if (!aw->keys.keys) {
			/* Remote keys not fetched yet: nothing can be verified. */
			count(&stats.no_keys);
			gw_verdict_deny(&d->v, 503, GW_R_AUTH_UNAVAILABLE);
			return STAGE_NEXT;
		}
	}
	tokcache_key(d->token.ptr, d->token.len, key);
	now = ev_now(d->w->loop);
	rc = tokcache_lookup(aw->tc, key, now, d, &v);
	switch (rc) {
	case CACHE_HIT:
		count(&stats.hits);
		apply(d, v);
		return STAGE_NEXT;
	case CACHE_PENDING:
		count(&stats.coalesced);
		return STAGE_PENDING;
	case CACHE_MISS:
	case CACHE_ERROR:
		break;
	}
	count(&stats.misses);
	if (A.mode == AUTHN_JWT) {
		enum jwt_status st;

		r = verify_local(aw, d->token.ptr, d->token.len, now, &expires, &st);
		/* A kid the set lacks may be a key the provider just added. */
		if (st == JWT_E_KID && A.fetcher && rc == CACHE_MISS &&
		    kid_wait_start(aw, d, key) == 0) {
			log_debug("authn: unknown kid, waiting for the JWKS fetch");
			identity_unref(r);
			return STAGE_PENDING;
		}
		apply(d, r);
		if (rc == CACHE_MISS)
			tokcache_fill(aw->tc, key, r, expires, now, NULL);
		else
			identity_unref(r);
		return STAGE_NEXT;
	}
	/* Service mode: this decision waits on its own pending entry with the
	 * others, so one wake path serves them all. */
	if (rc == CACHE_MISS && tokcache_lookup(aw->tc, key, now, d, &v) == CACHE_PENDING) {
		if (authsvc_validate(key, d->token.ptr, d->token.len, &d->req) == 0)
			return STAGE_PENDING;
		/* Breaker open or no memory: everyone waiting gets 503 now. d
		 * was woken with the others: it is the running stage, not a
		 * pending one, and goes on by returning. */
		count(&stats.rpc_unavailable);
		tokcache_fill(aw->tc, key, NULL, 0, now, d);
		return STAGE_NEXT;
	}
	count(&stats.rpc_unavailable);
	gw_verdict_deny(&d->v, 503, GW_R_AUTH_UNAVAILABLE);
	return STAGE_NEXT;
}

const struct stage_ops authn_stage = {
	.name         = "authn",
	.configure    = authn_configure,
	.start_worker = authn_worker_start,
	.start        = authn_start,
	.run          = authn_run,
	.release      = identity_unref,
	.reload       = authn_reload,
	.metrics      = authn_metrics,
	.stop_worker  = authn_worker_stop,
	.stop         = authn_stop,
};
