/* The gateway YAML: schema, defaults and the checks that need only this
 * file. Cross-file checks (services) are in link.c. */
#include "model.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>

#include "addr.h"
#include "units.h"

static const char *const top_keys[] = { "gateway", NULL };
static const char *const gw_keys[] = {
	"port", "bind", "routes", "rate_limiting", "cors", "auth", "authz", "agent",
	"redis", "admin", "nbthread", "maxconn", "timeouts", "log", "trusted_proxies", "tls", NULL,
};
static const char *const route_keys[] = {
	"name", "path", "service", "auth_required", "permission", "permissions", "methods",
	"strip_prefix", "request_headers", "response_headers", "rate_limit", "timeout", "hosts", NULL,
};
static const char *const hdr_keys[] = { "set", "remove", NULL };
static const char *const route_rl_keys[] = { "enabled", "per_user", "per_ip", NULL };
static const char *const rl_keys[] = {
	"enabled", "per_user", "per_ip", "on_redis_error", "shadow", "ipv6_prefix", "headers",
	"mode", NULL,
};
/* gateway.rate_limiting.headers, in GEN_RLH_* bit order. */
static const char *const rl_header_sets[] = { "ratelimit", "ratelimit_legacy", "x_ratelimit", NULL };
static const char *const cors_keys[] = {
	"allowed_origins", "allowed_methods", "allowed_headers", "exposed_headers",
	"allow_credentials", "max_age", NULL,
};
static const char *const auth_keys[] = {
	"mode", "issuer", "audiences", "jwks_file", "pem_keys", "algorithms", "leeway",
	"service", "timeout", "cache_ttl", "negative_cache_ttl", "max_token_bytes",
	"claims_to_headers", "require_exp", "cache_size", "cache_memory", "jwks_uri",
	"oidc_issuer", "jwks_ca_file", "jwks_refresh", NULL,
};
static const char *const pem_keys[] = { "kid", "alg", "file", NULL };
static const char *const authz_keys[] = { "mode", "service", "cache_ttl", "timeout", "on_error", NULL };
static const char *const agent_keys[] = {
	"address", "threads", "timeout", "on_error", "max_frame_size", "log_level", NULL,
};
static const char *const redis_keys[] = {
	"address", "timeout", "username", "password", "password_file", "db", "cluster", "sentinel",
	NULL,
};
static const char *const sentinel_keys[] = {
	"master", "addresses", "username", "password", "password_file", NULL,
};
static const char *const rl_modes[] = { "exact", "lease", NULL };
static const char *const admin_keys[] = {
	"stats", "metrics", "socket", "users", "password_file", NULL,
};
static const char *const tls_keys[] = {
	"port", "certificates", "min_version", "ciphers", "ciphersuites", "alpn",
	"redirect_http", "redirect_code", "hsts", "hsts_include_subdomains", "client_ca", NULL,
};
static const char *const tls_versions[] = { "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3", NULL };
static const char *const alpn_protos[] = { "h2", "http/1.1", NULL };
static const char *const timeout_keys[] = {
	"connect", "client", "server", "http_request", "http_keep_alive", "queue", "check", NULL,
};
static const char *const log_keys[] = { "target", "facility", NULL };

static const char *const allow_deny[] = { "allow", "deny", NULL };
static const char *const auth_modes[] = { "none", "jwt", "service", NULL };
static const char *const authz_modes[] = { "none", "claims", "service", NULL };
static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const jwt_algs[] = {
	"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
	"PS256", "PS384", "PS512", "EdDSA", "Ed25519", "Ed448", NULL,
};
/* Variables of the SPOE contract; a claim cannot take one of these names. */
static const char *const reserved_vars[] = {
	"status", "reason", "user_id", "rl_limit", "rl_remaining", "rl_reset", "rl_policy",
	"retry_after", "error", "ptime", NULL,
};

/* An HTTP header name: RFC 9110 token characters. */
static int valid_header_name(const char *s)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
				    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

	if (!*s || strlen(s) > 128)
		return 0;
	for (; *s; s++)
		if (!strchr(tchar, *s))
			return 0;
	return 1;
}

/* A header value we can write into haproxy.cfg: visible ASCII and spaces
 * (UTF-8 is allowed too); no control characters. */
static int valid_header_value(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static int check_header_list(struct gen_ctx *c, const struct gy_node *list, const char *what)
{
	size_t i;
	int bad = 0;

	for (i = 0; list && i < list->n; i++) {
		const struct gy_node *h = list->kids[i];
		if (h->kind == GY_SCALAR && !valid_header_name(h->str)) {
			gen_err(c, h, "%s: '%.100s' is not a valid header name", what, h->str);
			bad = 1;
		}
	}
	return bad ? -1 : 0;
}

static void load_hdr_ops(struct gen_ctx *c, const struct gy_node *m, const char *what,
			 struct gen_hdr_ops *ops)
{
	const struct gy_node *set;
	struct gen_strs rm = { 0 };
	char sub[96];
	size_t i;

	if (!m || gy_is_null(m))
		return;
	if (gen_expect_map(c, m, what) < 0)
		return;
	gen_check_keys(c, m, what, hdr_keys);
	set = gy_get(m, "set");
	if (set && !gy_is_null(set)) {
		snprintf(sub, sizeof(sub), "%s.set", what);
		if (gen_expect_map(c, set, sub) == 0) {
			ops->set = calloc(gy_map_size(set) + 1, sizeof(*ops->set));
			for (i = 0; ops->set && i < gy_map_size(set); i++) {
				const struct gy_node *k = gy_map_key(set, i), *v = gy_map_val(set, i);
				if (!valid_header_name(k->str)) {
					gen_err(c, k, "%s: '%.100s' is not a valid header name", sub, k->str);
					continue;
				}
				if (v->kind != GY_SCALAR || gy_is_null(v)) {
					gen_err(c, v, "%s.%.100s: expected a string, got %s", sub, k->str,
						gy_kind_name(v));
					continue;
				}
				if (!valid_header_value(v->str)) {
					gen_err(c, v, "%s.%.100s: header value has a control character",
						sub, k->str);
					continue;
				}
				ops->set[ops->nset].name = k->str;
				ops->set[ops->nset].value = v->str;
				ops->set[ops->nset].at = k;
				ops->nset++;
			}
		}
	}
	if (gen_get_strs(c, m, "remove", &rm) > 0 && check_header_list(c, rm.at, "remove") == 0) {
		ops->remove = rm.v;
		ops->nremove = rm.n;
	} else {
		free(rm.v);
	}
}

static unsigned load_methods(struct gen_ctx *c, const struct gen_strs *s)
{
	unsigned mask = 0;
	size_t i;

	for (i = 0; i < s->n; i++) {
		unsigned bit = gen_method_bit(s->v[i]);
		const struct gy_node *at = s->at->kids[i];
		if (!bit) {
			const char *hint = gen_did_you_mean(s->v[i], gen_method_names);
			if (hint)
				gen_err(c, at, "unknown HTTP method '%.100s' (did you mean '%s'?)",
					s->v[i], hint);
			else
				gen_err(c, at, "unknown HTTP method '%.100s'", s->v[i]);
			continue;
		}
		if (mask & bit)
			gen_warn(c, at, "HTTP method '%s' is listed twice", s->v[i]);
		mask |= bit;
	}
	return mask;
}

/* Permission names go into haproxy.cfg as str() arguments. */
static int valid_perm(const char *s)
{
	if (!*s || strlen(s) > 200)
		return 0;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/*@~+=-", *s))
			return 0;
	return 1;
}

/* A host name for Host routing: DNS labels of [a-z0-9-] (compared
 * lower-cased), optionally "*." first for exactly one label. */
static int valid_route_host(const char *s, const char **why)
{
	const char *p = s, *label = s;

	if (strncmp(s, "*.", 2) == 0)
		p = label = s + 2;
	if (!*p || strlen(s) > 253) {
		*why = "is not a host name";
		return 0;
	}
	for (; *p; p++) {
		if (*p == ':') {
			*why = "has a port; the request's port is ignored, list the name only";
			return 0;
		}
		if (*p == '*') {
			*why = "has a '*' that is not the first label (\"*.example.com\" is one label)";
			return 0;
		}
		if (*p == '.') {
			if (p == label) {
				*why = "has an empty label";
				return 0;
			}
			label = p + 1;
			continue;
		}
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", *p)) {
			*why = "has a character that is not allowed in a host name";
			return 0;
		}
	}
	if (p == label) {
		*why = "ends with '.'";
		return 0;
	}
	return 1;
}

static void load_hosts(struct gen_ctx *c, const struct gy_node *m, struct gen_route *r)
{
	struct gen_strs hs = { 0 };
	size_t i, j;

	if (gen_get_strs(c, m, "hosts", &hs) <= 0) {
		free(hs.v);
		return;
	}
	r->hosts_at = hs.at;
	if (hs.n == 0)
		gen_err(c, hs.at, "hosts: the list is empty (omit it to match any host)");
	r->hosts = calloc(hs.n + 1, sizeof(*r->hosts));
	for (i = 0; r->hosts && i < hs.n; i++) {
		const char *why;
		char *h, *p;

		if (!valid_route_host(hs.v[i], &why)) {
			gen_err(c, hs.at->kids[i], "hosts: '%.100s' %s", hs.v[i], why);
			continue;
		}
		h = strdup(hs.v[i]);
		if (!h)
			break;
		for (p = h; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		for (j = 0; j < r->nhosts; j++)
			if (strcmp(r->hosts[j], h) == 0)
				gen_warn(c, hs.at->kids[i], "hosts: '%.100s' is listed twice", hs.v[i]);
		if (h[0] == '*')
			r->host_wild = 1;
		else
			r->host_exact = 1;
		r->hosts[r->nhosts++] = h;
	}
	free(hs.v);
}

static void load_route(struct gen_ctx *c, const struct gy_node *m, struct gen_route *r)
{
	char what[64];
	const struct gy_node *v;
	struct gen_strs ms = { 0 };

	snprintf(what, sizeof(what), "gateway.routes[%zu]", r->index);
	r->at = m;
	r->auth_required = 1;
	if (gen_expect_map(c, m, what) < 0)
		return;
	gen_check_keys(c, m, what, route_keys);

	if (gen_get_str(c, m, "path", &r->path) == 0)
		gen_err(c, m, "%s: missing required key 'path'", what);
	r->path_at = gy_get(m, "path");
	if (r->path) {
		size_t off;
		const char *why;
		if (gen_glob_check(r->path, &off, &why) < 0) {
			/* Point at the offending character when the scalar is plain
			 * and on one line, so the column is exact. */
			int col = r->path_at->col + (r->path_at->plain ? (int)off : 0);
			gen_diag_add(c->d, GEN_SEV_ERROR, c->file, r->path_at->line, col,
				     "invalid path glob '%.200s': %s", r->path, why);
		} else {
			r->glob_ok = 1;
		}
	}
	if (gen_get_str(c, m, "service", &r->service) == 0)
		gen_err(c, m, "%s: missing required key 'service'", what);
	r->service_at = gy_get(m, "service");

	if (gen_get_str(c, m, "name", &r->name) > 0) {
		const char *p;
		for (p = r->name; *p; p++) {
			if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/*@~+=-", *p)) {
				gen_err(c, gy_get(m, "name"), "name: '%.100s' has a character outside "
					"[A-Za-z0-9._:/*@~+=-]", r->name);
				break;
			}
		}
	}
	if (!r->name)
		r->name = r->path;

	gen_get_bool(c, m, "auth_required", &r->auth_required);
	if (gen_get_str(c, m, "permission", &r->permission) > 0 && !valid_perm(r->permission)) {
		gen_err(c, gy_get(m, "permission"), "permission: '%.100s' has a character outside "
			"[A-Za-z0-9._:/*@~+=-]", r->permission);
		r->permission = NULL;
	}

	if (gen_get_strs(c, m, "methods", &ms) > 0) {
		r->methods = load_methods(c, &ms);
		r->methods_at = ms.at;
		if (ms.n == 0)
			gen_err(c, ms.at, "methods: the list is empty (omit it to allow every method)");
	}
	free(ms.v);

	v = gy_get(m, "permissions");
	if (v && !gy_is_null(v) && gen_expect_map(c, v, "permissions") == 0) {
		size_t i;
		r->perms = calloc(gy_map_size(v) + 1, sizeof(*r->perms));
		for (i = 0; r->perms && i < gy_map_size(v); i++) {
			const struct gy_node *k = gy_map_key(v, i), *pv = gy_map_val(v, i);
			unsigned bit = gen_method_bit(k->str);
			if (!bit) {
				const char *hint = gen_did_you_mean(k->str, gen_method_names);
				if (hint)
					gen_err(c, k, "permissions: unknown HTTP method '%.100s' (did you mean '%s'?)",
						k->str, hint);
				else
					gen_err(c, k, "permissions: unknown HTTP method '%.100s'", k->str);
				continue;
			}
			if (r->methods && !(r->methods & bit)) {
				gen_err(c, k, "permissions: method %s is not in this route's methods "
					"(it would always get 405)", k->str);
				continue;
			}
			if (pv->kind != GY_SCALAR || pv->len == 0 || gy_is_null(pv)) {
				gen_err(c, pv, "permissions.%s: expected a permission string, got %s",
					k->str, gy_kind_name(pv));
				continue;
			}
			if (!valid_perm(pv->str)) {
				gen_err(c, pv, "permissions.%s: '%.100s' has a character outside "
					"[A-Za-z0-9._:/*@~+=-]", k->str, pv->str);
				continue;
			}
			r->perms[r->nperms].method = bit;
			r->perms[r->nperms].perm = pv->str;
			r->perms[r->nperms].at = k;
			r->nperms++;
		}
	}
	if ((r->permission || r->nperms) && !r->auth_required) {
		v = gy_get(m, "permission");
		if (!v || gy_is_null(v))
			v = gy_get(m, "permissions");
		gen_err(c, v, "%s: a permission needs an authenticated user; set auth_required: true",
			what);
	}

	if (gen_get_str(c, m, "strip_prefix", &r->strip_prefix) > 0) {
		size_t n = strlen(r->strip_prefix), off;
		const char *why;
		r->strip_at = gy_get(m, "strip_prefix");
		if (gen_glob_check(r->strip_prefix, &off, &why) < 0 || strchr(r->strip_prefix, '*') ||
		    (n > 1 && r->strip_prefix[n - 1] == '/') || n < 2) {
			gen_err(c, r->strip_at, "strip_prefix: '%.100s' must be a literal path such "
				"as /api/v1 (no wildcard, no trailing '/')", r->strip_prefix);
			r->strip_prefix = NULL;
		} else if (r->path && (strncmp(r->path, r->strip_prefix, n) != 0 ||
				       (r->path[n] != '/' && r->path[n] != '\0'))) {
			gen_err(c, r->strip_at, "strip_prefix: '%.100s' is not a prefix of the route "
				"path '%.100s'", r->strip_prefix, r->path);
			r->strip_prefix = NULL;
		}
	}

	load_hdr_ops(c, gy_get(m, "request_headers"), "request_headers", &r->req);
	load_hdr_ops(c, gy_get(m, "response_headers"), "response_headers", &r->resp);

	v = gy_get(m, "rate_limit");
	if (v && !gy_is_null(v) && gen_expect_map(c, v, "rate_limit") == 0) {
		int en = 1;
		gen_check_keys(c, v, "rate_limit", route_rl_keys);
		gen_get_bool(c, v, "enabled", &en);
		r->rl_disabled = !en;
		gen_get_rate(c, v, "per_user", &r->rl_user);
		gen_get_rate(c, v, "per_ip", &r->rl_ip);
	}
	gen_get_dur(c, m, "timeout", 1, &r->timeout_ms);
	load_hosts(c, m, r);
}

/* Kind of the glob segment at *p (just after a '/'): 0 literal, 1 '*',
 * 2 a final double star; advances *p to the next '/' or the end. */
static int seg_kind(const char **p)
{
	const char *s = *p, *e = strchr(s, '/');
	size_t n = e ? (size_t)(e - s) : strlen(s);

	*p = s + n;
	if (n == 1 && s[0] == '*')
		return 1;
	if (n == 2 && s[0] == '*' && s[1] == '*')
		return 2;
	return 0;
}

/* Orders routes for matching: exact paths first, then the longer literal
 * prefix, then, at the first segment where they differ, a literal before
 * '*' before a final double star, then fewer wildcards; input order breaks
 * ties. */
static int route_cmp(const void *pa, const void *pb)
{
	const struct gen_route *a = *(const struct gen_route *const *)pa;
	const struct gen_route *b = *(const struct gen_route *const *)pb;
	const char *x = a->path, *y = b->path;

	if (a->exact != b->exact)
		return a->exact ? -1 : 1;
	if (a->lit_len != b->lit_len)
		return a->lit_len > b->lit_len ? -1 : 1;
	while (*x == '/' && *y == '/') {
		int kx, ky;
		x++;
		y++;
		kx = seg_kind(&x);
		ky = seg_kind(&y);
		if (kx != ky)
			return kx < ky ? -1 : 1;
	}
	if (a->nwild != b->nwild)
		return a->nwild < b->nwild ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

/* Whether two routes can see the same request's host: both match any
 * host, or both list one same name (*shared names it). Routes of
 * different host classes never compete: exact, wildcard and no hosts
 * are tried in that order. */
static int hosts_overlap(const struct gen_route *a, const struct gen_route *b, const char **shared)
{
	size_t i, j;

	*shared = NULL;
	if (!a->nhosts || !b->nhosts)
		return !a->nhosts && !b->nhosts;
	for (i = 0; i < a->nhosts; i++)
		for (j = 0; j < b->nhosts; j++)
			if (strcmp(a->hosts[i], b->hosts[j]) == 0) {
				*shared = a->hosts[i];
				return 1;
			}
	return 0;
}

static void order_routes(struct gen_ctx *c, struct gen_gateway *g)
{
	size_t i, j, n = 0;

	g->order = calloc(g->nroutes + 1, sizeof(*g->order));
	if (!g->order)
		return;
	for (i = 0; i < g->nroutes; i++) {
		struct gen_route *r = &g->routes[i];
		const char *star;
		if (!r->path || !r->glob_ok)
			continue;
		star = strchr(r->path, '*');
		r->exact = star == NULL;
		r->lit_len = star ? (size_t)(star - r->path) : strlen(r->path);
		for (star = r->path; (star = strchr(star, '*')); star += (star[1] == '*') ? 2 : 1)
			r->nwild++;
		g->order[n++] = r;
	}
	qsort(g->order, n, sizeof(*g->order), route_cmp);
	for (i = 0; i < n; i++)
		g->order[i]->id = (int)i + 1;

	/* Duplicates are errors. A route that an earlier one in the file fully
	 * covers would be dead in a first-match gateway (Envoy, most
	 * frameworks); here the more specific one wins, which is worth saying
	 * because the file reads otherwise. */
	for (i = 0; i < g->nroutes; i++) {
		struct gen_route *r = &g->routes[i];
		if (!r->glob_ok)
			continue;
		for (j = 0; j < i; j++) {
			struct gen_route *e = &g->routes[j];
			const char *host = NULL;
			if (!e->glob_ok || !hosts_overlap(e, r, &host))
				continue;
			if (strcmp(e->path, r->path) == 0 && host) {
				gen_err(c, r->hosts_at, "duplicate route: host '%.100s' with path '%.200s' "
					"is already routed at line %d", host, r->path, e->path_at->line);
				break;
			}
			if (strcmp(e->path, r->path) == 0) {
				gen_err(c, r->path_at, "duplicate route: path '%.200s' is already "
					"routed at line %d", r->path, e->path_at->line);
				break;
			}
			if (gen_glob_covers(e->path, r->path)) {
				gen_warn(c, r->path_at, "route '%.200s' is shadowed by the earlier route "
					 "'%.200s' (line %d) in file order; spogate matches the most "
					 "specific route first, so this one still gets its paths",
					 r->path, e->path, e->path_at->line);
				break;
			}
		}
	}
	for (i = 0; i < g->nroutes; i++)
		for (j = i + 1; j < g->nroutes; j++)
			if (g->routes[i].name && g->routes[j].name && g->routes[i].path &&
			    g->routes[i].name != g->routes[i].path &&
			    strcmp(g->routes[i].name, g->routes[j].name) == 0)
				gen_err(c, gy_get(g->routes[j].at, "name"),
					"duplicate route name '%.100s' (first at line %d)",
					g->routes[j].name, g->routes[i].at->line);
}

static void load_claims(struct gen_ctx *c, struct gen_gateway *g, const struct gy_node *m)
{
	size_t i, j, n = m ? gy_map_size(m) : 0;
	int have_sub = 0;

	g->auth.claims = calloc(n + 2, sizeof(*g->auth.claims));
	if (!g->auth.claims)
		return;
	for (i = 0; i < n; i++) {
		const struct gy_node *k = gy_map_key(m, i), *v = gy_map_val(m, i);
		struct gen_claim *cl = &g->auth.claims[g->auth.nclaims];
		const char *p;
		size_t o = 0;
		int bad = 0;

		if (v->kind != GY_SCALAR || gy_is_null(v) || !valid_header_name(v->str)) {
			gen_err(c, v, "claims_to_headers.%.100s: expected a header name", k->str);
			continue;
		}
		if (strcmp(k->str, "sub") == 0) {
			snprintf(cl->var, sizeof(cl->var), "user_id");
			have_sub = 1;
		} else {
			if (k->len == 0 || k->len >= sizeof(cl->var)) {
				gen_err(c, k, "claims_to_headers: claim name must be 1..63 characters");
				continue;
			}
			/* The agent's rule: every character outside [a-z0-9_] becomes '_'. */
			for (p = k->str; *p; p++)
				cl->var[o++] = ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
						*p == '_') ? *p : '_';
			cl->var[o] = '\0';
			for (j = 0; reserved_vars[j]; j++) {
				if (strcmp(cl->var, reserved_vars[j]) == 0) {
					gen_err(c, k, "claims_to_headers: claim '%.100s' would use the "
						"variable txn.gw.%s, which the SPOE contract reserves",
						k->str, cl->var);
					bad = 1;
				}
			}
		}
		for (j = 0; !bad && j < g->auth.nclaims; j++) {
			if (strcmp(g->auth.claims[j].var, cl->var) == 0) {
				gen_err(c, k, "claims_to_headers: claim '%.100s' maps to the same variable "
					"(txn.gw.%s) as claim '%.100s'", k->str, cl->var,
					g->auth.claims[j].claim);
				bad = 1;
			} else if (strcasecmp(g->auth.claims[j].header, v->str) == 0) {
				gen_err(c, v, "claims_to_headers: header %.100s is already used by claim '%.100s'",
					v->str, g->auth.claims[j].claim);
				bad = 1;
			}
		}
		if (bad)
			continue;
		cl->claim = k->str;
		cl->header = v->str;
		cl->at = k;
		g->auth.nclaims++;
	}
	if (!have_sub) {
		/* The subject is always forwarded, as X-User-ID unless that header
		 * already carries another claim; it goes first in the list. */
		for (j = 0; j < g->auth.nclaims; j++)
			if (strcasecmp(g->auth.claims[j].header, "X-User-ID") == 0)
				return;
		memmove(&g->auth.claims[1], &g->auth.claims[0],
			g->auth.nclaims * sizeof(*g->auth.claims));
		memset(&g->auth.claims[0], 0, sizeof(g->auth.claims[0]));
		g->auth.claims[0].claim = "sub";
		snprintf(g->auth.claims[0].var, sizeof(g->auth.claims[0].var), "user_id");
		g->auth.claims[0].header = "X-User-ID";
		g->auth.nclaims++;
	}
}

/* auth.jwks_uri / auth.oidc_issuer: keys from the identity provider. */
static void load_remote_keys(struct gen_ctx *c, struct gen_gateway *g, const struct gy_node *m,
                             const char *base)
{
	static const char *const url_keys[] = { "jwks_uri", "oidc_issuer" };
	const char *ca = NULL, *url;
	size_t i;

	gen_get_str(c, m, "jwks_uri", &g->auth.jwks_uri);
	gen_get_str(c, m, "oidc_issuer", &g->auth.oidc_issuer);
	for (i = 0; i < 2; i++) {
		url = i ? g->auth.oidc_issuer : g->auth.jwks_uri;
		if (url && (strncmp(url, "https://", 8) != 0 || !url[8] || strpbrk(url, " \"'\\")))
			gen_err(c, gy_get(m, url_keys[i]), "%s: '%.100s' is not an https:// URL",
			        url_keys[i], url);
	}
	if (g->auth.jwks_uri && g->auth.oidc_issuer)
		gen_err(c, gy_get(m, "oidc_issuer"), "auth: give jwks_uri or oidc_issuer, not both "
		        "(discovery finds the jwks_uri)");
	if (gen_get_str(c, m, "jwks_ca_file", &ca) > 0)
		g->auth.jwks_ca_file = gen_resolve_path(base, ca);
	gen_get_dur(c, m, "jwks_refresh", 1000, &g->auth.jwks_refresh_ms);
	if (g->auth.jwks_refresh_ms > 86400000)
		gen_err(c, gy_get(m, "jwks_refresh"), "jwks_refresh: at most 24h");
	if ((ca || gy_get(m, "jwks_refresh")) && !g->auth.jwks_uri && !g->auth.oidc_issuer)
		gen_err(c, gy_get(m, ca ? "jwks_ca_file" : "jwks_refresh"),
		        "auth: %s needs jwks_uri or oidc_issuer", ca ? "jwks_ca_file" : "jwks_refresh");
}

static void load_auth(struct gen_ctx *c, struct gen_gateway *g, const struct gy_node *m,
		      const char *base)
{
	int mode = GEN_AUTH_SERVICE;
	const char *jwks = NULL;
	const struct gy_node *v;
	size_t i;

	g->auth.mode = GEN_AUTH_SERVICE;
	g->auth.service = "auth-service";
	g->auth.leeway_ms = 30000;
	g->auth.timeout_ms = 200;
	g->auth.cache_ttl_ms = 60000;
	g->auth.neg_cache_ttl_ms = 5000;
	g->auth.max_token_bytes = 8192;
	g->auth.require_exp = 1;
	g->auth.cache_size = 100000;
	g->auth.jwks_refresh_ms = 300000;
	g->auth.cache_bytes = 32LL << 20;
	if (!m || gy_is_null(m)) {
		load_claims(c, g, NULL);
		return;
	}
	if (gen_expect_map(c, m, "gateway.auth") < 0) {
		load_claims(c, g, NULL);
		return;
	}
	g->auth.present = 1;
	g->auth.at = m;
	gen_check_keys(c, m, "gateway.auth", auth_keys);
	if (gen_get_enum(c, m, "mode", auth_modes, &mode) > 0)
		g->auth.mode = (enum gen_auth_mode)mode;
	gen_get_str(c, m, "issuer", &g->auth.issuer);
	gen_get_strs(c, m, "audiences", &g->auth.audiences);
	if (gen_get_strs(c, m, "algorithms", &g->auth.algorithms) > 0) {
		for (i = 0; i < g->auth.algorithms.n; i++) {
			const char *a = g->auth.algorithms.v[i];
			int ok = 0, j;
			for (j = 0; jwt_algs[j]; j++)
				ok |= strcmp(a, jwt_algs[j]) == 0;
			if (!ok) {
				const char *hint = gen_did_you_mean(a, jwt_algs);
				gen_err(c, g->auth.algorithms.at->kids[i],
					"algorithms: '%.50s' is not supported (%s%s%s)", a,
					strcasecmp(a, "none") == 0 ? "unsigned tokens are always refused" :
					hint ? "did you mean '" : "expected HS256/384/512, RS256/384/512, ES256/384/512, "
					"PS256/384/512, EdDSA, Ed25519 or Ed448",
					hint && strcasecmp(a, "none") ? hint : "",
					hint && strcasecmp(a, "none") ? "'?" : "");
			}
		}
	}
	if (gen_get_str(c, m, "jwks_file", &jwks) > 0) {
		g->auth.jwks_file = gen_resolve_path(base, jwks);
		g->auth.jwks_at = gy_get(m, "jwks_file");
	}
	v = gy_get(m, "pem_keys");
	if (v && !gy_is_null(v)) {
		if (v->kind != GY_SEQ) {
			gen_err(c, v, "pem_keys: expected a list, got %s", gy_kind_name(v));
		} else {
			g->auth.pem_keys = calloc(v->n + 1, sizeof(*g->auth.pem_keys));
			for (i = 0; g->auth.pem_keys && i < v->n; i++) {
				const struct gy_node *k = v->kids[i];
				struct gen_pem_key *pk = &g->auth.pem_keys[g->auth.npem_keys];
				const char *file = NULL;
				int alg = 0;
				if (gen_expect_map(c, k, "pem_keys[]") < 0)
					continue;
				gen_check_keys(c, k, "pem_keys[]", pem_keys);
				gen_get_str(c, k, "kid", &pk->kid);
				if (gen_get_enum(c, k, "alg", jwt_algs, &alg) > 0)
					pk->alg = jwt_algs[alg];
				if (gen_get_str(c, k, "file", &file) <= 0) {
					gen_err(c, k, "pem_keys[]: missing required key 'file'");
					continue;
				}
				pk->file = gen_resolve_path(base, file);
				g->auth.npem_keys++;
			}
		}
	}
	gen_get_dur(c, m, "leeway", 0, &g->auth.leeway_ms);
	gen_get_dur(c, m, "timeout", 1, &g->auth.timeout_ms);
	gen_get_dur(c, m, "cache_ttl", 0, &g->auth.cache_ttl_ms);
	gen_get_dur(c, m, "negative_cache_ttl", 0, &g->auth.neg_cache_ttl_ms);
	gen_get_int(c, m, "max_token_bytes", 256, 65536, &g->auth.max_token_bytes);
	gen_get_bool(c, m, "require_exp", &g->auth.require_exp);
	gen_get_int(c, m, "cache_size", 1, 10000000, &g->auth.cache_size);
	v = gy_get(m, "cache_memory");
	if (v && (v->kind != GY_SCALAR || size_parse_bytes(v->str, &g->auth.cache_bytes) < 0))
		gen_err(c, v, "cache_memory: expected a size such as 32MB or 512KB (B, KB, MB, GB), "
			"got '%.100s'", v->kind == GY_SCALAR ? v->str : gy_kind_name(v));
	if (gen_get_str(c, m, "service", &g->auth.service) > 0)
		g->auth.service_at = gy_get(m, "service");
	load_remote_keys(c, g, m, base);
	if (g->auth.mode == GEN_AUTH_JWT && !g->auth.jwks_file && !g->auth.npem_keys &&
	    !g->auth.jwks_uri && !g->auth.oidc_issuer)
		gen_err(c, gy_get(m, "mode"),
		        "auth: mode jwt needs jwks_file, pem_keys, jwks_uri or oidc_issuer");
	v = gy_get(m, "claims_to_headers");
	if (v && !gy_is_null(v) && gen_expect_map(c, v, "claims_to_headers") < 0)
		v = NULL;
	load_claims(c, g, gy_is_null(v) ? NULL : v);
}

static void load_cors(struct gen_ctx *c, struct gen_gateway *g, const struct gy_node *m)
{
	size_t i;
	int star = 0;

	g->cors.max_age = 600;
	if (!m || gy_is_null(m) || gen_expect_map(c, m, "gateway.cors") < 0)
		return;
	g->cors.present = 1;
	g->cors.at = m;
	gen_check_keys(c, m, "gateway.cors", cors_keys);
	if (gen_get_strs(c, m, "allowed_origins", &g->cors.origins) > 0) {
		for (i = 0; i < g->cors.origins.n; i++) {
			const char *o = g->cors.origins.v[i], *host;
			const struct gy_node *at = g->cors.origins.at->kids[i];
			if (strcmp(o, "*") == 0) {
				star = 1;
				continue;
			}
			host = strncmp(o, "https://", 8) == 0 ? o + 8 :
			       strncmp(o, "http://", 7) == 0 ? o + 7 : NULL;
			/* One wildcard label: a host of the form "*.example.com". */
			if (host && strncmp(host, "*.", 2) == 0 && host[2] && host[2] != '.')
				host += 2;
			if (!host || !*host || strpbrk(host, "/?#*\"' \\") || strlen(o) > 200)
				gen_err(c, at, "allowed_origins: '%.100s' is not an origin (expected \"*\", "
					"scheme://host[:port] or scheme://*.domain, without path or "
					"trailing '/')", o);
		}
		if (star && g->cors.origins.n > 1)
			gen_warn(c, g->cors.origins.at, "allowed_origins: \"*\" allows every origin; "
				 "the other entries are redundant");
		if (g->cors.origins.n == 0)
			gen_warn(c, g->cors.origins.at, "allowed_origins: the list is empty, so no "
				 "cross-origin request is allowed");
	}
	g->cors.any_origin = star;
	if (gen_get_strs(c, m, "allowed_methods", &g->cors.methods) > 0) {
		for (i = 0; i < g->cors.methods.n; i++) {
			if (!gen_method_bit(g->cors.methods.v[i])) {
				const char *hint = gen_did_you_mean(g->cors.methods.v[i], gen_method_names);
				gen_err(c, g->cors.methods.at->kids[i],
					"allowed_methods: unknown HTTP method '%.100s'%s%s%s",
					g->cors.methods.v[i], hint ? " (did you mean '" : "",
					hint ? hint : "", hint ? "'?)" : "");
			}
		}
	}
	if (gen_get_strs(c, m, "allowed_headers", &g->cors.headers) > 0)
		check_header_list(c, g->cors.headers.at, "allowed_headers");
	if (gen_get_strs(c, m, "exposed_headers", &g->cors.exposed) > 0)
		check_header_list(c, g->cors.exposed.at, "exposed_headers");
	if (gen_get_bool(c, m, "allow_credentials", &g->cors.credentials) > 0)
		g->cors.credentials_at = gy_get(m, "allow_credentials");
	gen_get_int(c, m, "max_age", 0, 86400 * 7, &g->cors.max_age);
	if (star && g->cors.credentials)
		gen_err(c, g->cors.credentials_at, "cors: allow_credentials: true cannot be used "
			"with allowed_origins \"*\" (line %d); list the allowed origins instead",
			g->cors.origins.at->line);
}

/* headers: [ratelimit, ratelimit_legacy, x_ratelimit] (the default: all);
 * an empty list sends none. */
static void load_rl_headers(struct gen_ctx *c, struct gen_gateway *g, const struct gy_node *m)
{
	struct gen_strs hs = { 0 };
	size_t i;
	int k;

	if (gen_get_strs(c, m, "headers", &hs) <= 0) {
		free(hs.v);
		return;
	}
	g->rl.headers = 0;
	for (i = 0; i < hs.n; i++) {
		for (k = 0; rl_header_sets[k] && strcmp(rl_header_sets[k], hs.v[i]) != 0; k++)
			;
		if (!rl_header_sets[k]) {
			const char *hint = gen_did_you_mean(hs.v[i], rl_header_sets);

			gen_err(c, hs.at->kids[i], "headers: unknown header set '%.100s'%s%s%s (known: "
				"ratelimit, ratelimit_legacy, x_ratelimit)", hs.v[i],
				hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
			continue;
		}
		g->rl.headers |= 1u << k;
	}
	free(hs.v);
}

/* redis.sentinel: {master: NAME, addresses: [host:port, ...], username,
 * password | password_file} (the credentials are checked with the base
 * directory in load_redis_secrets()). */
static void load_sentinel(struct gen_ctx *c, struct gen_gateway *g, const struct gy_node *m)
{
	size_t i;

	if (!m || gy_is_null(m) || gen_expect_map(c, m, "gateway.redis.sentinel") < 0)
		return;
	gen_check_keys(c, m, "gateway.redis.sentinel", sentinel_keys);
	gen_get_str(c, m, "username", &g->redis.sentinel_username);
	gen_get_str(c, m, "password", &g->redis.sentinel_password);
	if (gen_get_str(c, m, "master", &g->redis.sentinel_master) <= 0 ||
	    !g->redis.sentinel_master[0])
		gen_err(c, m, "sentinel: master (the name Sentinel monitors) is required");
	if (gen_get_strs(c, m, "addresses", &g->redis.sentinels) <= 0 || g->redis.sentinels.n == 0 ||
	    g->redis.sentinels.n > 16) {
		gen_err(c, m, "sentinel: addresses: expected 1 to 16 sentinel addresses");
		return;
	}
	for (i = 0; i < g->redis.sentinels.n; i++)
		if (!gen_valid_hostport(g->redis.sentinels.v[i]))
			gen_err(c, g->redis.sentinels.at->kids[i], "sentinel: '%.100s' is not an address "
				"(expected host:port, IPv6 as [::1]:port)", g->redis.sentinels.v[i]);
	if (g->redis.cluster.n)
		gen_err(c, m, "sentinel: not with cluster (a cluster fails over by itself)");
}

static void load_rl(struct gen_ctx *c, struct gen_gateway *g, const struct gy_node *m)
{
	int onerr = 0, mode = 0;

	g->rl.redis_error_allow = 1;
	g->rl.ipv6_prefix = 64;
	g->rl.headers = GEN_RLH_ALL;
	if (!m || gy_is_null(m) || gen_expect_map(c, m, "gateway.rate_limiting") < 0)
		return;
	g->rl.present = 1;
	g->rl.enabled = 1;
	gen_check_keys(c, m, "gateway.rate_limiting", rl_keys);
	gen_get_bool(c, m, "enabled", &g->rl.enabled);
	gen_get_rate(c, m, "per_user", &g->rl.per_user);
	gen_get_rate(c, m, "per_ip", &g->rl.per_ip);
	if (gen_get_enum(c, m, "on_redis_error", allow_deny, &onerr) > 0)
		g->rl.redis_error_allow = onerr == 0;
	if (gen_get_enum(c, m, "mode", rl_modes, &mode) > 0)
		g->rl.lease = mode == 1;
	gen_get_bool(c, m, "shadow", &g->rl.shadow);
	gen_get_int(c, m, "ipv6_prefix", 1, 128, &g->rl.ipv6_prefix);
	load_rl_headers(c, g, m);
}

static void check_addr(struct gen_ctx *c, const struct gy_node *m, const char *key, const char *v)
{
	if (v && !gen_valid_hostport(v))
		gen_err(c, gy_get(m, key), "%s: '%.100s' is not an address (expected host:port, "
			"IPv6 as [::1]:port)", key, v);
}

/* "10.0.0.0/8", "192.0.2.1", "2001:db8::/32", "::1": an address with an
 * optional prefix length in range for its family. */
static int valid_cidr(const char *s)
{
	unsigned char addr[16];
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	int v6, max;
	char *end;
	long bits;

	if (hl == 0 || hl >= sizeof(host))
		return 0;
	memcpy(host, s, hl);
	host[hl] = '\0';
	v6 = strchr(host, ':') != NULL;
	if (inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 1)
		return 0;
	if (!slash)
		return 1;
	max = v6 ? 128 : 32;
	bits = strtol(slash + 1, &end, 10);
	return end != slash + 1 && !*end && bits >= 0 && bits <= max;
}

/* trusted_proxies: who may tell the client address in X-Forwarded-For. */
static void load_trusted_proxies(struct gen_ctx *c, struct gen_gateway *g,
                                 const struct gy_node *gw)
{
	size_t i;

	if (gen_get_strs(c, gw, "trusted_proxies", &g->trusted_proxies) <= 0)
		return;
	for (i = 0; i < g->trusted_proxies.n; i++)
		if (!valid_cidr(g->trusted_proxies.v[i]))
			gen_err(c, g->trusted_proxies.at->kids[i], "trusted_proxies: '%.100s' is not "
				"an IPv4 or IPv6 address or network (such as 10.0.0.0/8)",
				g->trusted_proxies.v[i]);
}

/* A crypt(3) hash HAProxy's "user ... password" accepts: "$id$...", with
 * no character the config would need to quote. */
static int valid_crypt_hash(const char *s)
{
	if (s[0] != '$' || strlen(s) < 4 || strlen(s) > 300)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == '\'' || *s == '"' || *s == '\\' || *s == 0x7f)
			return 0;
	return 1;
}

static int valid_user_name(const char *s)
{
	if (!*s || strlen(s) > 64)
		return 0;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *s))
			return 0;
	return 1;
}

static void add_admin_user(struct gen_ctx *c, struct gen_gateway *g, const struct gy_node *at,
			   const char *name, const char *hash, size_t cap)
{
	struct gen_user *u;
	size_t i;

	if (!valid_user_name(name)) {
		gen_err(c, at, "users: '%.64s' is not a user name ([A-Za-z0-9._-])", name);
		return;
	}
	if (strncmp(hash, "$apr1$", 6) == 0) {
		gen_err(c, at, "users.%.64s: Apache's $apr1$ (htpasswd's default MD5) is not a "
			"crypt(3) hash HAProxy can check; use htpasswd -B or openssl passwd -6", name);
		return;
	}
	if (!valid_crypt_hash(hash)) {
		gen_err(c, at, "users.%.64s: expected a crypt(3) hash such as the output of "
			"'openssl passwd -6' ($6$...), not a clear-text password", name);
		return;
	}
	for (i = 0; i < g->admin.nusers; i++)
		if (strcmp(g->admin.users[i].name, name) == 0) {
			gen_err(c, at, "users: '%.64s' is defined twice", name);
			return;
		}
	if (g->admin.nusers >= cap)
		return;
	u = &g->admin.users[g->admin.nusers];
	u->hash = strdup(hash);
	u->name = strdup(name);
	if (!u->hash || !u->name) {
		free(u->hash);
		free(u->name);
		return;
	}
	u->at = at;
	g->admin.nusers++;
}

/* admin.users (name: hash) and admin.password_file (htpasswd lines of
 * name:hash, read now: HAProxy cannot read such a file itself). */
static void load_admin_users(struct gen_ctx *c, struct gen_gateway *g, const struct gy_node *m,
			     const char *base)
{
	const struct gy_node *users = gy_get(m, "users");
	const char *pf = NULL;
	size_t cap = 0, i;
	char *path = NULL, line[512];
	FILE *f = NULL;

	if (users && !gy_is_null(users) && gen_expect_map(c, users, "admin.users") == 0)
		cap += gy_map_size(users);
	else
		users = NULL;
	if (gen_get_str(c, m, "password_file", &pf) > 0) {
		path = gen_resolve_path(base, pf);
		f = path ? fopen(path, "r") : NULL;
		if (!f)
			gen_err(c, gy_get(m, "password_file"), "password_file: cannot read '%.200s'",
				path ? path : pf);
		else
			cap += 1000;
	}
	if (!cap)
		goto out;
	g->admin.users = calloc(cap, sizeof(*g->admin.users));
	if (!g->admin.users)
		goto out;
	for (i = 0; users && i < gy_map_size(users); i++) {
		const struct gy_node *k = gy_map_key(users, i), *v = gy_map_val(users, i);
		if (v->kind != GY_SCALAR || gy_is_null(v)) {
			gen_err(c, v, "users.%.64s: expected a password hash, got %s", k->str,
				gy_kind_name(v));
			continue;
		}
		add_admin_user(c, g, k, k->str, v->str, cap);
	}
	while (f && fgets(line, sizeof(line), f)) {
		char *colon, *end = line + strcspn(line, "\r\n");
		*end = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		colon = strchr(line, ':');
		if (!colon) {
			gen_err(c, gy_get(m, "password_file"), "password_file: '%.200s': a line is not "
				"name:hash", path);
			break;
		}
		*colon = '\0';
		add_admin_user(c, g, gy_get(m, "password_file"), line, colon + 1, cap);
	}
out:
	if (f)
		fclose(f);
	free(path);
}

/* Mozilla's "intermediate" profile: forward-secret AEAD suites only. */
#define TLS_DEFAULT_CIPHERS "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_DEFAULT_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

/* OpenSSL cipher lists go on the bind line as one word. */
static int valid_cipher_list(const char *s)
{
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:+!@=", *s))
			return 0;
	return 1;
}

/* A file path for haproxy.cfg: no space or quote (HAProxy words). */
static int valid_cfg_path(const char *s)
{
	return *s && !strpbrk(s, " \t\"'#\\");
}

static void load_tls(struct gen_ctx *c, struct gen_gateway *g, const struct gy_node *m,
		     const char *base)
{
	struct gen_strs certs = { 0 };
	const char *ca = NULL;
	size_t i;
	int e;

	g->tls.port = 8443;
	g->tls.min_version = "TLSv1.2";
	g->tls.ciphers = TLS_DEFAULT_CIPHERS;
	g->tls.ciphersuites = TLS_DEFAULT_SUITES;
	g->tls.redirect_http = 1;
	g->tls.redirect_code = 308;
	if (!m || gy_is_null(m) || gen_expect_map(c, m, "gateway.tls") < 0)
		return;
	g->tls.present = 1;
	g->tls.at = m;
	gen_check_keys(c, m, "gateway.tls", tls_keys);
	gen_get_int(c, m, "port", 1, 65535, &g->tls.port);
	if (g->tls.port == g->port)
		gen_err(c, gy_get(m, "port") ? gy_get(m, "port") : m, "tls: port %ld is also the "
			"plain HTTP port (gateway.port)", g->tls.port);
	if (gen_get_strs(c, m, "certificates", &certs) > 0 && certs.n) {
		g->tls.certs = calloc(certs.n, sizeof(*g->tls.certs));
		for (i = 0; g->tls.certs && i < certs.n; i++) {
			if (!valid_cfg_path(certs.v[i])) {
				gen_err(c, certs.at->kids[i], "certificates: '%.200s' has a space or "
					"quote", certs.v[i]);
				continue;
			}
			g->tls.certs[g->tls.ncerts++] = gen_resolve_path(base, certs.v[i]);
		}
	} else if (!gy_get(m, "certificates") || certs.at) {
		gen_err(c, certs.at ? certs.at : m, "tls: certificates: needs at least one PEM file "
			"(certificate chain and key) or a directory of them");
	}
	free(certs.v);
	if (gen_get_enum(c, m, "min_version", tls_versions, &e) > 0)
		g->tls.min_version = tls_versions[e];
	if (gen_get_str(c, m, "ciphers", &g->tls.ciphers) > 0 && !valid_cipher_list(g->tls.ciphers))
		gen_err(c, gy_get(m, "ciphers"), "ciphers: '%.200s' is not an OpenSSL cipher list",
			g->tls.ciphers);
	if (gen_get_str(c, m, "ciphersuites", &g->tls.ciphersuites) > 0 &&
	    !valid_cipher_list(g->tls.ciphersuites))
		gen_err(c, gy_get(m, "ciphersuites"), "ciphersuites: '%.200s' is not an OpenSSL "
			"TLSv1.3 suite list", g->tls.ciphersuites);
	if (gen_get_strs(c, m, "alpn", &g->tls.alpn) > 0) {
		if (g->tls.alpn.n == 0)
			gen_err(c, g->tls.alpn.at, "alpn: the list is empty (omit it for h2, http/1.1)");
		for (i = 0; i < g->tls.alpn.n; i++) {
			int found = 0;
			const char *const *a;
			for (a = alpn_protos; *a; a++)
				if (strcmp(*a, g->tls.alpn.v[i]) == 0)
					found = 1;
			if (!found)
				gen_err(c, g->tls.alpn.at->kids[i], "alpn: '%.100s' is not h2 or http/1.1",
					g->tls.alpn.v[i]);
		}
	}
	gen_get_bool(c, m, "redirect_http", &g->tls.redirect_http);
	if (gen_get_int(c, m, "redirect_code", 301, 308, &g->tls.redirect_code) > 0 &&
	    g->tls.redirect_code != 301 && g->tls.redirect_code != 302 &&
	    g->tls.redirect_code != 307 && g->tls.redirect_code != 308)
		gen_err(c, gy_get(m, "redirect_code"), "redirect_code: expected 301, 302, 307 or 308");
	gen_get_dur(c, m, "hsts", 1000, &g->tls.hsts_ms);
	gen_get_bool(c, m, "hsts_include_subdomains", &g->tls.hsts_subdomains);
	if (gen_get_str(c, m, "client_ca", &ca) > 0) {
		if (!valid_cfg_path(ca))
			gen_err(c, gy_get(m, "client_ca"), "client_ca: '%.200s' has a space or quote", ca);
		else
			g->tls.client_ca = gen_resolve_path(base, ca);
	}
}

#define AGENT_ADDR_FORMS "host:port, IPv6 as [::1]:port, or unix:/absolute/path of " \
	"letters, digits and /._+-@ in at most " ADDR_UNIX_MAX_STR " bytes"

static void load_misc(struct gen_ctx *c, struct gen_gateway *g, const struct gy_node *gw,
		      const char *base)
{
	const struct gy_node *m;
	int e = 0;

	g->agent.address = "127.0.0.1:12345";
	g->agent.timeout_ms = 500;
	m = gy_get(gw, "agent");
	if (m && !gy_is_null(m) && gen_expect_map(c, m, "gateway.agent") == 0) {
		gen_check_keys(c, m, "gateway.agent", agent_keys);
		/* One agent, or several that HAProxy balances and fails over
		 * between: each runs the same agent.json, the first on its
		 * "listen", the others with --listen. */
		if (gy_get(m, "address") && gy_get(m, "address")->kind == GY_SEQ) {
			size_t i;

			if (gen_get_strs(c, m, "address", &g->agent.more) > 0) {
				if (g->agent.more.n == 0)
					gen_err(c, g->agent.more.at, "address: the list is empty");
				for (i = 0; i < g->agent.more.n; i++)
					if (!gen_valid_agent_addr(g->agent.more.v[i]))
						gen_err(c, g->agent.more.at->kids[i], "address: '%.100s' "
							"is not an address (expected " AGENT_ADDR_FORMS ")",
							g->agent.more.v[i]);
				if (g->agent.more.n)
					g->agent.address = g->agent.more.v[0];
			}
		} else {
			if (gen_get_str(c, m, "address", &g->agent.address) > 0 &&
			    !gen_valid_agent_addr(g->agent.address))
				gen_err(c, gy_get(m, "address"), "address: '%.100s' is not an address "
					"(expected " AGENT_ADDR_FORMS ")", g->agent.address);
		}
		gen_get_int(c, m, "threads", 1, 256, &g->agent.threads);
		gen_get_dur(c, m, "timeout", 1, &g->agent.timeout_ms);
		if (gen_get_enum(c, m, "on_error", allow_deny, &e) > 0)
			g->agent.on_error_allow = e == 0;
		gen_get_int(c, m, "max_frame_size", 256, 65535, &g->agent.max_frame_size);
		if (gen_get_enum(c, m, "log_level", log_levels, &e) > 0)
			g->agent.log_level = log_levels[e];
	}

	g->redis.address = "127.0.0.1:6379";
	g->redis.timeout_ms = 50;
	m = gy_get(gw, "redis");
	if (m && !gy_is_null(m) && gen_expect_map(c, m, "gateway.redis") == 0) {
		g->redis.present = 1;
		gen_check_keys(c, m, "gateway.redis", redis_keys);
		if (gen_get_str(c, m, "address", &g->redis.address) > 0)
			check_addr(c, m, "address", g->redis.address);
		gen_get_dur(c, m, "timeout", 1, &g->redis.timeout_ms);
		gen_get_str(c, m, "username", &g->redis.username);
		gen_get_str(c, m, "password", &g->redis.password);
		gen_get_int(c, m, "db", 0, 1000000, &g->redis.db);
		if (gen_get_strs(c, m, "cluster", &g->redis.cluster) > 0) {
			size_t i;

			if (g->redis.cluster.n == 0 || g->redis.cluster.n > 16)
				gen_err(c, g->redis.cluster.at, "cluster: expected 1 to 16 seed addresses");
			for (i = 0; i < g->redis.cluster.n; i++)
				if (!gen_valid_hostport(g->redis.cluster.v[i]))
					gen_err(c, g->redis.cluster.at->kids[i], "cluster: '%.100s' is not an "
						"address (expected host:port, IPv6 as [::1]:port)",
						g->redis.cluster.v[i]);
			if (g->redis.db)
				gen_err(c, gy_get(m, "db"), "db: Redis Cluster has database 0 only");
		}
		load_sentinel(c, g, gy_get(m, "sentinel"));
	}

	g->admin.stats = "127.0.0.1:8404";
	m = gy_get(gw, "admin");
	if (m && !gy_is_null(m) && gen_expect_map(c, m, "gateway.admin") == 0) {
		gen_check_keys(c, m, "gateway.admin", admin_keys);
		if (gen_get_str(c, m, "stats", &g->admin.stats) > 0)
			check_addr(c, m, "stats", g->admin.stats);
		if (gen_get_str(c, m, "metrics", &g->admin.metrics) > 0)
			check_addr(c, m, "metrics", g->admin.metrics);
		if (gen_get_str(c, m, "socket", &g->admin.socket) > 0 && g->admin.socket[0] != '/')
			gen_err(c, gy_get(m, "socket"), "socket: must be an absolute path");
		load_admin_users(c, g, m, base);
	}

	g->t_connect = 5000;
	g->t_client = 30000;
	g->t_server = 30000;
	g->t_http_request = 10000;
	g->t_keep_alive = 10000;
	g->t_queue = 5000;
	g->t_check = 2000;
	m = gy_get(gw, "timeouts");
	if (m && !gy_is_null(m) && gen_expect_map(c, m, "gateway.timeouts") == 0) {
		gen_check_keys(c, m, "gateway.timeouts", timeout_keys);
		gen_get_dur(c, m, "connect", 1, &g->t_connect);
		gen_get_dur(c, m, "client", 1, &g->t_client);
		gen_get_dur(c, m, "server", 1, &g->t_server);
		gen_get_dur(c, m, "http_request", 1, &g->t_http_request);
		gen_get_dur(c, m, "http_keep_alive", 1, &g->t_keep_alive);
		gen_get_dur(c, m, "queue", 1, &g->t_queue);
		gen_get_dur(c, m, "check", 1, &g->t_check);
	}

	g->log_target = "stdout";
	g->log_facility = "local0";
	m = gy_get(gw, "log");
	if (m && !gy_is_null(m) && gen_expect_map(c, m, "gateway.log") == 0) {
		const char *p;
		gen_check_keys(c, m, "gateway.log", log_keys);
		if (gen_get_str(c, m, "target", &g->log_target) > 0)
			for (p = g->log_target; *p; p++)
				if (strchr(" \t\"'#\\", *p)) {
					gen_err(c, gy_get(m, "target"), "target: '%.100s' has a space or quote",
						g->log_target);
					break;
				}
		if (gen_get_str(c, m, "facility", &g->log_facility) > 0) {
			static const char *const fac[] = {
				"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
				"uucp", "cron", "auth2", "ftp", "ntp", "audit", "alert", "cron2",
				"local0", "local1", "local2", "local3", "local4", "local5", "local6",
				"local7", NULL,
			};
			int f;
			if (gen_get_enum(c, m, "facility", fac, &f) > 0)
				g->log_facility = fac[f];
		}
	}
}

/* password_file in map m (read by the agent when it starts, so the secret
 * never enters agent.json; resolved against base into *file_out, owned by
 * the caller), and the ${NAME} form of the password pw (taken from the
 * agent's environment). Only the form is checked here. what prefixes the
 * messages ("" or "sentinel: "). */
static void load_secret(struct gen_ctx *c, const struct gy_node *m, const char *what,
			const char *pw, char **file_out, const char *base)
{
	const char *file = NULL;

	if (!m || m->kind != GY_MAP)
		return;
	if (gen_get_str(c, m, "password_file", &file) > 0) {
		if (pw)
			gen_err(c, gy_get(m, "password_file"),
				"%spassword_file: give either password or password_file, not both",
				what);
		*file_out = gen_resolve_path(base, file);
	}
	if (pw && pw[0] == '$' && pw[1] == '{') {
		size_t i, n = strlen(pw);
		int ok = n > 3 && pw[n - 1] == '}' && !(pw[2] >= '0' && pw[2] <= '9');

		for (i = 2; ok && i + 1 < n; i++)
			ok = pw[i] == '_' || (pw[i] >= 'A' && pw[i] <= 'Z') ||
			     (pw[i] >= 'a' && pw[i] <= 'z') || (pw[i] >= '0' && pw[i] <= '9');
		if (!ok)
			gen_err(c, gy_get(m, "password"), "%spassword: '${...}' must name an "
				"environment variable ([A-Za-z_][A-Za-z0-9_]*)", what);
	}
}

/* redis.password and redis.sentinel.password: see load_secret(). */
static void load_redis_secrets(struct gen_ctx *c, struct gen_gateway *g, const struct gy_node *m,
			       const char *base)
{
	const struct gy_node *sen;

	if (!m || m->kind != GY_MAP)
		return;
	load_secret(c, m, "", g->redis.password, &g->redis.password_file, base);
	sen = gy_get(m, "sentinel");
	if (!sen || sen->kind != GY_MAP)
		return;
	load_secret(c, sen, "sentinel: ", g->redis.sentinel_password, &g->redis.sentinel_password_file, base);
	if (g->redis.sentinel_username && g->redis.sentinel_username[0] &&
	    !(g->redis.sentinel_password && g->redis.sentinel_password[0]) &&
	    !g->redis.sentinel_password_file)
		gen_err(c, gy_get(sen, "username"), "sentinel: username: needs password or "
			"password_file");
}

int gen_gateway_load(struct gen_gateway *g, const struct gen_opts *o, struct gen_diags *d)
{
	struct gen_ctx cx = { d, o->gateway_file }, *c = &cx;
	const struct gy_node *gw, *routes;
	char base[PATH_MAX];
	size_t errs = d->errors, i;
	int authz_mode = GEN_AUTHZ_SERVICE;

	memset(g, 0, sizeof(*g));
	g->file = o->gateway_file;
	g->port = 8080;
	g->bind = "0.0.0.0";
	g->nbthread = 2;
	if (gy_load_file(o->gateway_file, d, &g->root) < 0)
		return -1;

	/* Relative paths are relative to the gateway file's directory. */
	gen_base_dir(o->gateway_file, o->base_dir, base, sizeof(base));

	if (gen_expect_map(c, g->root, "the gateway file") < 0)
		return -1;
	gen_check_keys(c, g->root, "the top level", top_keys);
	gw = gy_get(g->root, "gateway");
	if (!gw) {
		gen_err(c, g->root, "missing the top-level key 'gateway'");
		return -1;
	}
	if (gen_expect_map(c, gw, "gateway") < 0)
		return -1;
	gen_check_keys(c, gw, "gateway", gw_keys);
	gen_get_int(c, gw, "port", 1, 65535, &g->port);
	if (gen_get_str(c, gw, "bind", &g->bind) > 0) {
		char tmp[128];
		snprintf(tmp, sizeof(tmp), "%s:1", g->bind);
		if (strlen(g->bind) > 100 || !gen_valid_hostport(tmp))
			gen_err(c, gy_get(gw, "bind"), "bind: '%.100s' is not an address "
				"(IPv6 goes in brackets: [::])", g->bind);
	}
	gen_get_int(c, gw, "nbthread", 1, 256, &g->nbthread);
	gen_get_int(c, gw, "maxconn", 1, 10000000, &g->maxconn);

	routes = gy_get(gw, "routes");
	if (!routes || gy_is_null(routes)) {
		gen_err(c, gw, "gateway: missing required key 'routes'");
	} else if (routes->kind != GY_SEQ) {
		gen_err(c, routes, "routes: expected a list, got %s", gy_kind_name(routes));
	} else {
		if (routes->n == 0)
			gen_err(c, routes, "routes: the list is empty");
		g->routes = calloc(routes->n + 1, sizeof(*g->routes));
		if (!g->routes)
			return -1;
		g->nroutes = routes->n;
		for (i = 0; i < routes->n; i++) {
			g->routes[i].index = i;
			load_route(c, routes->kids[i], &g->routes[i]);
		}
		order_routes(c, g);
	}

	load_rl(c, g, gy_get(gw, "rate_limiting"));
	load_cors(c, g, gy_get(gw, "cors"));
	load_auth(c, g, gy_get(gw, "auth"), base);

	g->authz.mode = GEN_AUTHZ_SERVICE;
	g->authz.service = "authz-service";
	g->authz.cache_ttl_ms = 30000;
	g->authz.timeout_ms = 200;
	{
		const struct gy_node *m = gy_get(gw, "authz");
		int e = 1;
		if (m && !gy_is_null(m) && gen_expect_map(c, m, "gateway.authz") == 0) {
			g->authz.present = 1;
			g->authz.at = m;
			gen_check_keys(c, m, "gateway.authz", authz_keys);
			if (gen_get_enum(c, m, "mode", authz_modes, &authz_mode) > 0)
				g->authz.mode = (enum gen_authz_mode)authz_mode;
			if (gen_get_str(c, m, "service", &g->authz.service) > 0)
				g->authz.service_at = gy_get(m, "service");
			gen_get_dur(c, m, "cache_ttl", 0, &g->authz.cache_ttl_ms);
			gen_get_dur(c, m, "timeout", 1, &g->authz.timeout_ms);
			if (gen_get_enum(c, m, "on_error", allow_deny, &e) > 0)
				g->authz.on_error_allow = e == 0;
		}
	}
	load_misc(c, g, gw, base);
	load_redis_secrets(c, g, gy_get(gw, "redis"), base);
	load_tls(c, g, gy_get(gw, "tls"), base);
	load_trusted_proxies(c, g, gw);

	/* Effective per-route values. */
	for (i = 0; i < g->nroutes; i++) {
		struct gen_route *r = &g->routes[i];
		if (g->rl.enabled && !r->rl_disabled) {
			r->eff_user = r->rl_user.limit ? r->rl_user : g->rl.per_user;
			r->eff_ip = r->rl_ip.limit ? r->rl_ip : g->rl.per_ip;
			/* A public route has no authenticated user, so a per-user
			 * policy never applies there: neither sent nor advertised. */
			if (!r->auth_required) {
				if (r->rl_user.limit)
					gen_warn(c, gy_get(gy_get(r->at, "rate_limit"), "per_user"),
						 "per_user: ignored, because the route is public "
						 "(auth_required: false) and has no user to count");
				memset(&r->eff_user, 0, sizeof(r->eff_user));
			}
		} else if (g->rl.present && !g->rl.enabled && (r->rl_user.limit || r->rl_ip.limit)) {
			gen_warn(c, gy_get(r->at, "rate_limit"), "rate_limit: ignored, because "
				 "gateway.rate_limiting.enabled is false");
		}
		r->needs_agent = r->auth_required || r->eff_user.limit || r->eff_ip.limit;
	}
	return d->errors > errs ? -1 : 0;
}

void gen_gateway_free(struct gen_gateway *g)
{
	size_t i;

	for (i = 0; i < g->nroutes; i++) {
		size_t j;
		for (j = 0; j < g->routes[i].nhosts; j++)
			free(g->routes[i].hosts[j]);
		free(g->routes[i].hosts);
		free(g->routes[i].perms);
		free(g->routes[i].req.set);
		free(g->routes[i].req.remove);
		free(g->routes[i].resp.set);
		free(g->routes[i].resp.remove);
	}
	free(g->routes);
	free(g->order);
	free(g->trusted_proxies.v);
	free(g->redis.cluster.v);
	free(g->redis.sentinels.v);
	free(g->agent.more.v);
	free(g->cors.origins.v);
	free(g->cors.methods.v);
	free(g->cors.headers.v);
	free(g->cors.exposed.v);
	free(g->auth.audiences.v);
	free(g->auth.algorithms.v);
	free(g->auth.jwks_file);
	free(g->redis.password_file);
	free(g->redis.sentinel_password_file);
	free(g->auth.jwks_ca_file);
	for (i = 0; i < g->auth.npem_keys; i++)
		free(g->auth.pem_keys[i].file);
	free(g->auth.pem_keys);
	free(g->auth.claims);
	for (i = 0; i < g->admin.nusers; i++) {
		free(g->admin.users[i].name);
		free(g->admin.users[i].hash);
	}
	free(g->admin.users);
	for (i = 0; i < g->tls.ncerts; i++)
		free(g->tls.certs[i]);
	free(g->tls.certs);
	free(g->tls.alpn.v);
	free(g->tls.client_ca);
	gy_free(g->root);
	memset(g, 0, sizeof(*g));
}
