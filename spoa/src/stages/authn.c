/*
 * Authentication stage.
 *
 * Hot path (cache hit): one SHA-256 of the token, one lookup in the
 * worker's own cache, a copy of the identity vars into the verdict. No
 * lock, no allocation.
 *
 * A verified result (struct result) is immutable and reference counted: the
 * cache holds one reference, every decision that uses it holds one, and in
 * service mode the completion-queue thread builds it once and hands it to
 * every worker.
 */
#include "authn.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

#include "agent.h"
#include "auth.pb-c.h"
#include "cache.h"
#include "config.h"
#include "grpc.h"
#include "jwt_verify.h"
#include "log.h"
#include "metrics.h"
#include "worker_ctx.h"

enum authn_mode {
	AUTHN_NONE    = 0,
	AUTHN_JWT     = 1,
	AUTHN_SERVICE = 2,
};

#define MAX_AUDIENCES   16
#define MAX_PEM_KEYS    32
/* Roles and permissions are all kept: the token or the answer bounds them
 * (max_token_bytes, RPC_MAX_RESPONSE); a list past this many entries (a
 * few bytes each) cannot come from either and makes the result fail. */
#define LIST_MAX_BYTES  (64 * 1024 * sizeof(size_t))
#define VALIDATE_METHOD "/spogate.auth.v1.AuthService/ValidateToken"

struct claim_map {
	const char *claim;
	const char *var;               /* SPOE var name without prefix */
};

struct pem_key {
	const char *kid;
	const char *alg;
	const char *file;
};

/* Configuration and shared state. Written by the main thread before the
 * workers start (and, for the keyset, under keys_lock). */
static struct {
	enum authn_mode mode;
	struct jwt_policy pol;
	const char *auds[MAX_AUDIENCES];
	const char *jwks_file;
	struct pem_key pems[MAX_PEM_KEYS];
	size_t npems;
	struct claim_map claims[GW_MAX_VARS];
	size_t nclaims;
	double cache_ttl;
	double neg_ttl;
	long cache_size;
	int timeout_ms;
	const char *target;
	struct rpc_channel *ch;
	struct agent *agent;
	pthread_mutex_t keys_lock;
	struct jwt_keyset *keys;
	unsigned keys_gen;             /* bumped on every reload */
} A = { .keys_lock = PTHREAD_MUTEX_INITIALIZER };

struct authn_worker {
	struct worker *w;
	struct cache *cache;
	struct jwt_keyset *keys;       /* this worker's reference */
	unsigned keys_gen;
};

struct result {
	int refs;
	int status;                    /* 0 = authenticated */
	enum gw_reason reason;
	struct authn_identity id;
	unsigned nvars;
	struct gw_var vars[GW_MAX_VARS];
	char *buf;                     /* every string of the result */
	const char *strs[];            /* id.roles then id.perms, into buf */
};

static struct {
	uint64_t hits, misses, coalesced, verified, rejected, rpc_unavailable;
	uint64_t reloads, reload_errors;
} stats;

static void count(uint64_t *p)
{
	__atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
}

/* ---- results ---- */

static void result_unref(void *p)
{
	struct result *r = p;

	if (!r || __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	free(r->buf);
	free(r);
}

static struct result *result_ref(struct result *r)
{
	__atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
	return r;
}

static struct result *result_deny(int status, enum gw_reason reason)
{
	struct result *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->refs = 1;
	r->status = status;
	r->reason = reason;
	return r;
}

/* Appends a NUL-terminated copy of s to the identity arena and returns its
 * offset: offsets, not pointers, until the arena is finished, because the
 * buffer moves while it grows. */
static size_t sb_add(struct dynbuf *b, const char *s, size_t n)
{
	size_t off = b->len;

	dynbuf_add(b, s, n);
	dynbuf_add(b, "", 1);
	return b->err ? 0 : off;
}

/* Identity under construction. */
struct rbuild {
	struct dynbuf sb;
	size_t user;                   /* offset, or SIZE_MAX */
	size_t var_off[GW_MAX_VARS];
	size_t var_len[GW_MAX_VARS];
	const char *var_name[GW_MAX_VARS];
	unsigned nvars;
	struct dynbuf roles, perms;    /* size_t offsets into sb */
	int bad;                       /* a value that must never be forwarded */
};

static int value_ok(const char *s, size_t n)
{
	size_t i;

	if (n > GW_VAR_MAX_VALUE)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static void rb_var(struct rbuild *rb, const char *name, const char *s, size_t n)
{
	if (!value_ok(s, n) || rb->nvars >= GW_MAX_VARS) {
		rb->bad = 1;
		return;
	}
	rb->var_name[rb->nvars] = name;
	rb->var_off[rb->nvars] = sb_add(&rb->sb, s, n);
	rb->var_len[rb->nvars] = n;
	rb->nvars++;
}

static void rb_init(struct rbuild *rb)
{
	memset(rb, 0, sizeof(*rb));
	rb->user = SIZE_MAX;
	rb->roles.limit = LIST_MAX_BYTES;
	rb->perms.limit = LIST_MAX_BYTES;
}

static void rb_list(struct rbuild *rb, struct dynbuf *list, const char *s, size_t len)
{
	size_t off;

	if (len == 0)
		return;
	off = sb_add(&rb->sb, s, len);
	dynbuf_add(list, (const char *)&off, sizeof(off));
}

/* Entry i of an offset list, as a pointer into the finished arena. */
static const char *rb_entry(const struct rbuild *rb, const struct dynbuf *list, size_t i)
{
	size_t off;

	memcpy(&off, list->p + i * sizeof(off), sizeof(off));
	return rb->sb.p + off;
}

/* Splits a space-separated scope into entries. */
static void rb_scope(struct rbuild *rb, const char *s)
{
	const char *p = s, *e;

	while (*p) {
		while (*p == ' ')
			p++;
		e = p;
		while (*e && *e != ' ')
			e++;
		rb_list(rb, &rb->perms, p, (size_t)(e - p));
		p = e;
	}
}

/* Consumes rb: the result owns the arena, the lists are freed. */
static struct result *rb_finish(struct rbuild *rb)
{
	size_t nroles = rb->roles.len / sizeof(size_t), nperms = rb->perms.len / sizeof(size_t);
	struct result *r = NULL;
	size_t i;

	if (rb->bad) {
		r = result_deny(401, GW_R_TOKEN_INVALID);
		goto out_free;
	}
	if (rb->sb.err || rb->roles.err || rb->perms.err)
		goto out_free;
	if (rb->user == SIZE_MAX) {
		r = result_deny(401, GW_R_TOKEN_INVALID);
		goto out_free;
	}
	r = calloc(1, sizeof(*r) + (nroles + nperms) * sizeof(r->strs[0]));
	if (!r)
		goto out_free;
	r->refs = 1;
	r->buf = rb->sb.p;
	r->id.user_id = r->buf + rb->user;
	for (i = 0; i < rb->nvars; i++) {
		r->vars[i].name = rb->var_name[i];
		r->vars[i].value = r->buf + rb->var_off[i];
		r->vars[i].len = rb->var_len[i];
	}
	r->nvars = rb->nvars;
	for (i = 0; i < nroles; i++)
		r->strs[i] = rb_entry(rb, &rb->roles, i);
	for (i = 0; i < nperms; i++)
		r->strs[nroles + i] = rb_entry(rb, &rb->perms, i);
	r->id.roles = r->strs;
	r->id.nroles = nroles;
	r->id.perms = r->strs + nroles;
	r->id.nperms = nperms;
	rb->sb.p = NULL;
 out_free:
	free(rb->sb.p);
	dynbuf_free(&rb->roles);
	dynbuf_free(&rb->perms);
	return r;
}

/* The joined string, malloc'd, or NULL when building it failed. */
static char *strb_take(struct dynbuf *b)
{
	if (b->err) {
		dynbuf_free(b);
		return NULL;
	}
	return b->p ? b->p : strdup("");
}

/* Text form of a claim value: strings as they are, arrays joined with
 * commas, anything else as compact JSON. Returns a malloc'd string. */
static char *claim_text(json_t *v)
{
	struct dynbuf b = { .limit = 64 * 1024 };
	json_t *e;
	size_t i;
	char *s;

	if (json_is_string(v))
		return strndup(json_string_value(v), json_string_length(v));
	if (!json_is_array(v))
		return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	json_array_foreach(v, i, e) {
		if (i)
			dynbuf_add(&b, ",", 1);
		if (json_is_string(e)) {
			dynbuf_add(&b, json_string_value(e), json_string_length(e));
			continue;
		}
		s = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!s)
			b.err = 1;
		else
			dynbuf_add(&b, s, strlen(s));
		free(s);
	}
	return strb_take(&b);
}

static void rb_string_list(struct rbuild *rb, struct dynbuf *list, json_t *v)
{
	json_t *e;
	size_t i;

	if (json_is_string(v)) {
		rb_list(rb, list, json_string_value(v), json_string_length(v));
		return;
	}
	json_array_foreach(v, i, e)
		if (json_is_string(e))
			rb_list(rb, list, json_string_value(e), json_string_length(e));
}

/* The identity of verified JWT claims. NULL on no memory. */
static struct result *result_from_claims(json_t *claims)
{
	struct rbuild rb;
	json_t *sub = json_object_get(claims, "sub"), *v;
	size_t i;

	rb_init(&rb);
	if (json_is_string(sub) && json_string_length(sub) > 0) {
		rb.user = sb_add(&rb.sb, json_string_value(sub), json_string_length(sub));
		rb_var(&rb, "user_id", json_string_value(sub), json_string_length(sub));
	}
	for (i = 0; i < A.nclaims; i++) {
		char *s;

		if (strcmp(A.claims[i].claim, "sub") == 0)
			continue;
		v = json_object_get(claims, A.claims[i].claim);
		if (!v || json_is_null(v))
			continue;
		s = claim_text(v);
		if (!s) {
			rb.sb.err = 1;
			break;
		}
		rb_var(&rb, A.claims[i].var, s, strlen(s));
		free(s);
	}
	rb_string_list(&rb, &rb.roles, json_object_get(claims, "roles"));
	rb_string_list(&rb, &rb.perms, json_object_get(claims, "permissions"));
	v = json_object_get(claims, "scope");
	if (json_is_string(v))
		rb_scope(&rb, json_string_value(v));
	return rb_finish(&rb);
}

static char *join(char **items, size_t n)
{
	struct dynbuf b = { .limit = 64 * 1024 };
	size_t i;

	for (i = 0; i < n; i++) {
		if (i)
			dynbuf_add(&b, ",", 1);
		dynbuf_add(&b, items[i], strlen(items[i]));
	}
	return strb_take(&b);
}

static enum gw_reason reason_parse(const char *s)
{
	int i;

	for (i = GW_R_TOKEN_MISSING; i < GW_R_MAX; i++)
		if (strcmp(s, gw_reason_str((enum gw_reason)i)) == 0)
			return (enum gw_reason)i;
	return GW_R_TOKEN_INVALID;
}

/* The identity from an Auth Service answer. */
static struct result *result_from_response(const Spogate__Auth__V1__ValidateTokenResponse *m)
{
	struct rbuild rb;
	enum gw_reason reason;
	size_t i, j;

	if (!m->valid) {
		reason = reason_parse(m->reason);
		/* The service may only deny authentication, with a 401 reason. */
		if (reason > GW_R_AUDIENCE_MISMATCH)
			reason = GW_R_TOKEN_INVALID;
		return result_deny(401, reason);
	}
	rb_init(&rb);
	if (m->user_id && *m->user_id) {
		rb.user = sb_add(&rb.sb, m->user_id, strlen(m->user_id));
		rb_var(&rb, "user_id", m->user_id, strlen(m->user_id));
	}
	for (i = 0; i < A.nclaims; i++) {
		const char *c = A.claims[i].claim;
		char *s = NULL;

		if (strcmp(c, "sub") == 0)
			continue;
		if (strcmp(c, "email") == 0 && m->email && *m->email) {
			s = strdup(m->email);
		} else if (strcmp(c, "roles") == 0 && m->n_roles) {
			s = join(m->roles, m->n_roles);
		} else if (strcmp(c, "permissions") == 0 && m->n_permissions) {
			s = join(m->permissions, m->n_permissions);
		} else {
			for (j = 0; j < m->n_claims; j++)
				if (strcmp(m->claims[j]->key, c) == 0) {
					s = strdup(m->claims[j]->value);
					break;
				}
			if (j == m->n_claims)
				continue;
		}
		if (!s) {
			if (strcmp(c, "email") && strcmp(c, "roles") && strcmp(c, "permissions"))
				rb.sb.err = 1;
			continue;
		}
		rb_var(&rb, A.claims[i].var, s, strlen(s));
		free(s);
	}
	for (i = 0; i < m->n_roles; i++)
		rb_list(&rb, &rb.roles, m->roles[i], strlen(m->roles[i]));
	for (i = 0; i < m->n_permissions; i++)
		rb_list(&rb, &rb.perms, m->permissions[i], strlen(m->permissions[i]));
	return rb_finish(&rb);
}

/* ---- configuration ---- */

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
	if (!arr)
		return 0;
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
			 * anything outside [a-z0-9_] turned into '_'. Kept for the
			 * life of the process (verdicts point to var names). */
			char *v = strdup(claim), *q;

			if (!v) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
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

/* Builds a keyset from the configured files. NULL with err set. */
static struct jwt_keyset *load_keys(char *err, size_t errlen)
{
	struct jwt_keyset *ks = jwt_keyset_new();
	size_t i;

	if (!ks) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (A.jwks_file && jwt_keyset_add_jwks_file(ks, A.jwks_file, err, errlen) < 0)
		goto fail;
	for (i = 0; i < A.npems; i++)
		if (jwt_keyset_add_pem_file(ks, A.pems[i].kid, A.pems[i].alg, A.pems[i].file,
		                            err, errlen) < 0)
			goto fail;
	if (jwt_keyset_size(ks) == 0) {
		snprintf(err, errlen, "auth.mode jwt: no usable key in %s%s",
		         A.jwks_file ? A.jwks_file : "", A.npems ? " and pem_keys" : "");
		goto fail;
	}
	return ks;
 fail:
	jwt_keyset_unref(ks);
	return NULL;
}

static int authn_configure(const struct agent_config *cfg, char *err, size_t errlen)
{
	static const char *const known[] = {
		"mode", "issuer", "audiences", "jwks_file", "pem_keys", "algorithms",
		"leeway_ms", "max_token_bytes", "service_target", "timeout_ms", "cache_ttl_ms",
		"negative_cache_ttl_ms", "cache_size", "claims", "require_exp", NULL
	};
	json_t *s = cfg->auth, *v, *e;
	const char *mode = "none", *algs[JWT_NALGS * 2];
	long long n;
	size_t i, nalgs;
	int a;

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
	    config_get_str(s, "auth", "service_target", &A.target, err, errlen) < 0)
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
				         "HS384, HS512, RS256, RS384, RS512, ES256, ES384, ES512", algs[i]);
				return -1;
			}
			A.pol.algs |= JWT_ALG_BIT(a);
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
			struct pem_key *pk = &A.pems[A.npems];

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
		struct jwt_keyset *ks;

		A.mode = AUTHN_JWT;
		if (!A.jwks_file && !A.npems) {
			snprintf(err, errlen, "auth.mode jwt needs \"jwks_file\" or \"pem_keys\"");
			return -1;
		}
		ks = load_keys(err, errlen);
		if (!ks)
			return -1;
		jwt_keyset_unref(A.keys);
		A.keys = ks;
		A.keys_gen++;
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
		"reloads", "reload_errors",
	};
	const uint64_t *vals[] = {
		&stats.hits, &stats.misses, &stats.coalesced, &stats.verified, &stats.rejected,
		&stats.rpc_unavailable, &stats.reloads, &stats.reload_errors,
	};
	size_t i;

	(void)a;
	if (A.mode == AUTHN_NONE)
		return;
	dynbuf_printf(b, "# HELP spogate_auth_events_total Authentication cache and verification events.\n"
	               "# TYPE spogate_auth_events_total counter\n");
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		dynbuf_printf(b, "spogate_auth_events_total{event=\"%s\"} %lu\n", names[i],
			      (unsigned long)__atomic_load_n(vals[i], __ATOMIC_RELAXED));
}

/* ---- life cycle ---- */

static int authn_worker_start(struct worker *w, void **wctx)
{
	struct authn_worker *aw;

	if (A.mode == AUTHN_NONE)
		return 0;
	aw = calloc(1, sizeof(*aw));
	if (!aw || !(aw->cache = cache_new((size_t)A.cache_size, result_unref))) {
		free(aw);
		log_error("authn: out of memory");
		return -1;
	}
	aw->w = w;
	*wctx = aw;
	return 0;
}

static void authn_worker_stop(struct worker *w, void *wctx)
{
	struct authn_worker *aw = wctx;

	(void)w;
	cache_free(aw->cache);
	jwt_keyset_unref(aw->keys);
	free(aw);
}

static int authn_start(struct agent *a)
{
	A.agent = a;
	if (A.mode == AUTHN_NONE)
		return 0;
	if (A.mode == AUTHN_SERVICE) {
		if (rpc_start() < 0)
			return -1;
		A.ch = rpc_channel_new(A.target, "auth", A.timeout_ms);
		if (!A.ch) {
			log_error("authn: cannot create a gRPC channel to %s", A.target);
			return -1;
		}
		log_info("authn: Auth Service at %s, deadline %d ms", A.target, A.timeout_ms);
	} else {
		log_info("authn: local JWT verification with %zu keys",
		         jwt_keyset_size(A.keys));
	}
	rpc_metrics_register();
	return 0;
}

static void authn_stop(struct agent *a)
{
	(void)a;
	if (A.ch) {
		rpc_channel_free(A.ch);
		A.ch = NULL;
	}
	jwt_keyset_unref(A.keys);
	A.keys = NULL;
}

static int authn_reload(void)
{
	struct jwt_keyset *ks, *old;
	char err[512];

	if (A.mode != AUTHN_JWT)
		return 0;
	ks = load_keys(err, sizeof(err));
	if (!ks) {
		count(&stats.reload_errors);
		log_error("authn: reload failed, keeping the current keys: %s", err);
		return -1;
	}
	pthread_mutex_lock(&A.keys_lock);
	old = A.keys;
	A.keys = ks;
	__atomic_add_fetch(&A.keys_gen, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&A.keys_lock);
	jwt_keyset_unref(old);
	count(&stats.reloads);
	log_info("authn: reloaded %zu keys", jwt_keyset_size(ks));
	return 0;
}

/* ---- the stage ---- */

static void apply(struct decision *d, struct result *r)
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
	decision_set_ctx(d, &authn_stage, result_ref(r));
}

const struct authn_identity *authn_identity(const struct decision *d)
{
	const struct result *r = decision_ctx(d, &authn_stage);

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

/* Picks up a keyset swapped in by a reload; the worker's cache holds
 * results of the old keys, so it goes too. */
static void sync_keys(struct authn_worker *aw)
{
	unsigned gen = __atomic_load_n(&A.keys_gen, __ATOMIC_ACQUIRE);

	if (aw->keys && gen == aw->keys_gen)
		return;
	pthread_mutex_lock(&A.keys_lock);
	jwt_keyset_unref(aw->keys);
	aw->keys = A.keys;
	jwt_keyset_ref(aw->keys);
	aw->keys_gen = A.keys_gen;
	pthread_mutex_unlock(&A.keys_lock);
	cache_clear(aw->cache);
}

/* Verifies locally. Returns the result (one reference) and its expiry. */
static struct result *verify_local(struct authn_worker *aw, const char *tok, size_t len,
                                   double now, double *expires)
{
	json_t *claims = NULL, *exp;
	enum jwt_status st;
	struct result *r;

	st = jwt_verify_token(aw->keys, &A.pol, tok, len, (int64_t)now, &claims);
	if (st != JWT_OK) {
		count(&stats.rejected);
		log_debug("authn: token refused: %s", jwt_status_str(st));
		/* A token becomes valid with time: do not remember that one. */
		*expires = st == JWT_E_NOT_YET_VALID ? 0 : now + A.neg_ttl;
		return result_deny(401, jwt_reason(st));
	}
	count(&stats.verified);
	r = result_from_claims(claims);
	*expires = now + A.cache_ttl;
	exp = json_object_get(claims, "exp");
	if (json_is_number(exp) && json_number_value(exp) + (double)A.pol.leeway < *expires)
		*expires = json_number_value(exp) + (double)A.pol.leeway;
	json_decref(claims);
	return r;
}

/* cache_fill() wake hook: applies the result to a waiting decision and
 * queues it; it resumes only once the cache is consistent again. */
static void on_wake(void *arg, void *value, void *ctx)
{
	struct decision *d = arg;

	apply(d, value);
	decision_batch_add(ctx, d);
}

/* A service answer travelling from the completion-queue thread to one
 * worker. */
struct fill_job {
	struct authn_worker *aw;
	uint8_t key[CACHE_KEY_LEN];
	struct result *r;              /* one reference, NULL = unavailable */
	double expires;
};

static void fill_on_worker(void *arg)
{
	struct fill_job *j = arg;
	struct decision_batch rl = { .n = 0 };
	double now = ev_now(j->aw->w->loop);

	/* The cache takes the job's reference when it keeps the result. */
	if (j->r)
		result_ref(j->r);
	cache_fill(j->aw->cache, j->key, j->r, j->expires, now, on_wake, &rl);
	result_unref(j->r);
	free(j);
	decision_batch_resume(&rl, NULL);
}

/* Runs on the completion-queue thread: one answer, every worker learns it
 * (a later identical request on another worker is then a hit too). */
static void on_validate_done(void *arg, int status, const uint8_t *resp, size_t len)
{
	uint8_t *key = arg;
	Spogate__Auth__V1__ValidateTokenResponse *m = NULL;
	struct result *r = NULL;
	double now = (double)time(NULL), expires = 0;
	int i;

	if (status == RPC_OK)
		m = spogate__auth__v1__validate_token_response__unpack(NULL, len, resp);
	if (m) {
		r = result_from_response(m);
		if (r && r->status == 0) {
			expires = now + A.cache_ttl;
			if (m->expires_at > 0 && (double)m->expires_at < expires)
				expires = (double)m->expires_at;
		} else if (r) {
			expires = now + A.neg_ttl;
		}
		spogate__auth__v1__validate_token_response__free_unpacked(m, NULL);
	} else {
		count(&stats.rpc_unavailable);
		if (status == RPC_OK)
			log_warn("authn: malformed ValidateTokenResponse (%zu bytes)", len);
	}
	for (i = 0; i < A.agent->nworkers; i++) {
		struct authn_worker *aw = worker_stage_ctx(&A.agent->workers[i], &authn_stage);
		struct fill_job *j = malloc(sizeof(*j));

		/* Without memory that worker's waiters stay until HAProxy's
		 * processing timeout answers for them (fail closed). */
		if (!j)
			continue;
		j->aw = aw;
		memcpy(j->key, key, CACHE_KEY_LEN);
		j->r = r ? result_ref(r) : NULL;
		j->expires = expires;
		if (worker_post(aw->w, fill_on_worker, j) < 0) {
			result_unref(j->r);
			free(j);
		}
	}
	result_unref(r);
	free(key);
}

static int start_validate(const uint8_t *key, const char *tok, size_t len)
{
	Spogate__Auth__V1__ValidateTokenRequest req = SPOGATE__AUTH__V1__VALIDATE_TOKEN_REQUEST__INIT;
	uint8_t *buf, *k;
	char *t;
	size_t n;
	int rc = -1;

	t = strndup(tok, len);
	k = malloc(CACHE_KEY_LEN);
	if (!t || !k)
		goto out;
	memcpy(k, key, CACHE_KEY_LEN);
	req.token = t;
	n = spogate__auth__v1__validate_token_request__get_packed_size(&req);
	buf = malloc(n ? n : 1);
	if (!buf)
		goto out;
	spogate__auth__v1__validate_token_request__pack(&req, buf);
	rc = rpc_call(A.ch, VALIDATE_METHOD, key, buf, n, on_validate_done, k);
	free(buf);
	if (rc == 0)
		k = NULL;
 out:
	free(t);
	free(k);
	return rc;
}

static enum stage_rc authn_run(struct decision *d, void *wctx)
{
	struct authn_worker *aw = wctx;
	uint8_t key[CACHE_KEY_LEN];
	struct result *r;
	void *v;
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
	if (A.mode == AUTHN_JWT)
		sync_keys(aw);
	SHA256((const unsigned char *)d->token.ptr, d->token.len, key);
	now = ev_now(d->w->loop);
	rc = cache_lookup(aw->cache, key, now, d, &v);
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
		struct decision_batch rl = { .n = 0 };

		r = verify_local(aw, d->token.ptr, d->token.len, now, &expires);
		apply(d, r);
		if (rc == CACHE_MISS)
			cache_fill(aw->cache, key, r, expires, now, on_wake, &rl);
		else
			result_unref(r);
		decision_batch_resume(&rl, NULL);
		return STAGE_NEXT;
	}
	/* Service mode: this decision waits on its own pending entry with the
	 * others, so one wake path serves them all. */
	if (rc == CACHE_MISS && cache_lookup(aw->cache, key, now, d, &v) == CACHE_PENDING) {
		if (start_validate(key, d->token.ptr, d->token.len) == 0)
			return STAGE_PENDING;
		/* Breaker open or no memory: everyone waiting gets 503 now. */
		{
			struct decision_batch rl = { .n = 0 };

			count(&stats.rpc_unavailable);
			cache_fill(aw->cache, key, NULL, 0, now, on_wake, &rl);
			/* d was woken with the others: take it back out, it is
			 * the running stage, not a pending one. */
			decision_batch_resume(&rl, d);
		}
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
	.release      = result_unref,
	.reload       = authn_reload,
	.metrics      = authn_metrics,
	.stop_worker  = authn_worker_stop,
	.stop         = authn_stop,
};
