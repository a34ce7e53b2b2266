/* Renders agent.json (docs/agent-json.md): what the agent needs from the
 * gateway YAML, with registry names resolved to gRPC targets. Every key is
 * written, defaults included, so the file says exactly what runs. */
#include "gen.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static json_t *strs(const struct gen_strs *s, const char *const *dflt)
{
	json_t *a = json_array();
	size_t i;

	if (s->v && s->n) {
		for (i = 0; i < s->n; i++)
			json_array_append_new(a, json_string(s->v[i]));
	} else {
		for (; dflt && *dflt; dflt++)
			json_array_append_new(a, json_string(*dflt));
	}
	return a;
}

static const char *grpc_of(const struct gen_registry *r, const char *name)
{
	const struct gen_service *s = gen_registry_find(r, name);

	return s && s->grpc ? s->grpc : "";
}

/* The service's grpc_tls for the agent's channel, or NULL. */
static json_t *grpc_tls_of(const struct gen_registry *r, const char *name)
{
	const struct gen_service *s = gen_registry_find(r, name);
	json_t *t;

	if (!s || !s->grpc_tls.present)
		return NULL;
	t = json_object();
	if (s->grpc_tls.ca_file)
		json_object_set_new(t, "ca_file", json_string(s->grpc_tls.ca_file));
	if (s->grpc_tls.cert_file)
		json_object_set_new(t, "cert_file", json_string(s->grpc_tls.cert_file));
	if (s->grpc_tls.key_file)
		json_object_set_new(t, "key_file", json_string(s->grpc_tls.key_file));
	if (s->grpc_tls.server_name)
		json_object_set_new(t, "server_name", json_string(s->grpc_tls.server_name));
	return t;
}

static int uses(const struct gen_gateway *g, int perm)
{
	size_t i;

	for (i = 0; i < g->nroutes; i++) {
		const struct gen_route *rt = &g->routes[i];
		if (perm ? (rt->permission || rt->nperms) : rt->auth_required)
			return 1;
	}
	return 0;
}

int gen_emit_agent(const struct gen_gateway *g, const struct gen_registry *r, struct dynbuf *b)
{
	static const char *const default_algs[] = { "RS256", "ES256", NULL };
	static const char *const mode_auth[] = { "none", "jwt", "service" };
	static const char *const mode_authz[] = { "none", "claims", "service" };
	json_t *root = json_object(), *auth = json_object(), *authz = json_object();
	json_t *redis = json_object(), *rl = json_object(), *claims = json_array();
	int any_rl = 0;
	size_t i;
	char *text;

	json_object_set_new(root, "listen", json_string(g->agent.address));
	if (g->agent.threads)
		json_object_set_new(root, "threads", json_integer(g->agent.threads));
	json_object_set_new(root, "max_frame_size",
			    json_integer(g->agent.max_frame_size ? g->agent.max_frame_size : 16380));
	json_object_set_new(root, "log_level", json_string(g->agent.log_level ? g->agent.log_level : "info"));
	if (g->admin.metrics)
		json_object_set_new(root, "metrics_listen", json_string(g->admin.metrics));

	/* With no route requiring auth, the agent need not check tokens. */
	json_object_set_new(auth, "mode", json_string(uses(g, 0) ? mode_auth[g->auth.mode] : "none"));
	if (g->auth.issuer)
		json_object_set_new(auth, "issuer", json_string(g->auth.issuer));
	if (g->auth.audiences.n)
		json_object_set_new(auth, "audiences", strs(&g->auth.audiences, NULL));
	if (g->auth.jwks_file)
		json_object_set_new(auth, "jwks_file", json_string(g->auth.jwks_file));
	if (g->auth.jwks_uri || g->auth.oidc_issuer) {
		json_object_set_new(auth, g->auth.jwks_uri ? "jwks_uri" : "oidc_issuer",
		                    json_string(g->auth.jwks_uri ? g->auth.jwks_uri : g->auth.oidc_issuer));
		if (g->auth.jwks_ca_file)
			json_object_set_new(auth, "jwks_ca_file", json_string(g->auth.jwks_ca_file));
		json_object_set_new(auth, "jwks_refresh_ms", json_integer(g->auth.jwks_refresh_ms));
	}
	if (g->auth.npem_keys) {
		json_t *pk = json_array();
		for (i = 0; i < g->auth.npem_keys; i++) {
			json_t *k = json_object();
			if (g->auth.pem_keys[i].kid)
				json_object_set_new(k, "kid", json_string(g->auth.pem_keys[i].kid));
			if (g->auth.pem_keys[i].alg)
				json_object_set_new(k, "alg", json_string(g->auth.pem_keys[i].alg));
			json_object_set_new(k, "file", json_string(g->auth.pem_keys[i].file));
			json_array_append_new(pk, k);
		}
		json_object_set_new(auth, "pem_keys", pk);
	}
	json_object_set_new(auth, "algorithms", strs(&g->auth.algorithms, default_algs));
	json_object_set_new(auth, "leeway_ms", json_integer(g->auth.leeway_ms));
	json_object_set_new(auth, "max_token_bytes", json_integer(g->auth.max_token_bytes));
	json_object_set_new(auth, "require_exp", json_boolean(g->auth.require_exp));
	if (g->auth.mode == GEN_AUTH_SERVICE && uses(g, 0)) {
		json_t *t = grpc_tls_of(r, g->auth.service);
		json_object_set_new(auth, "service_target", json_string(grpc_of(r, g->auth.service)));
		if (t)
			json_object_set_new(auth, "grpc_tls", t);
	}
	json_object_set_new(auth, "timeout_ms", json_integer(g->auth.timeout_ms));
	json_object_set_new(auth, "cache_ttl_ms", json_integer(g->auth.cache_ttl_ms));
	json_object_set_new(auth, "negative_cache_ttl_ms", json_integer(g->auth.neg_cache_ttl_ms));
	json_object_set_new(auth, "cache_size", json_integer(g->auth.cache_size));
	json_object_set_new(auth, "cache_max_bytes", json_integer(g->auth.cache_bytes));
	for (i = 0; i < g->auth.nclaims; i++) {
		json_t *c = json_object();
		json_object_set_new(c, "claim", json_string(g->auth.claims[i].claim));
		json_object_set_new(c, "var", json_string(g->auth.claims[i].var));
		json_object_set_new(c, "header", json_string(g->auth.claims[i].header));
		json_array_append_new(claims, c);
	}
	json_object_set_new(auth, "claims", claims);
	json_object_set_new(root, "auth", auth);

	json_object_set_new(authz, "mode", json_string(uses(g, 1) ? mode_authz[g->authz.mode] : "none"));
	if (g->authz.mode == GEN_AUTHZ_SERVICE && uses(g, 1)) {
		json_t *t = grpc_tls_of(r, g->authz.service);
		json_object_set_new(authz, "service_target", json_string(grpc_of(r, g->authz.service)));
		if (t)
			json_object_set_new(authz, "grpc_tls", t);
	}
	json_object_set_new(authz, "timeout_ms", json_integer(g->authz.timeout_ms));
	json_object_set_new(authz, "cache_ttl_ms", json_integer(g->authz.cache_ttl_ms));
	json_object_set_new(authz, "on_error", json_string(g->authz.on_error_allow ? "allow" : "deny"));
	json_object_set_new(root, "authz", authz);

	json_object_set_new(redis, "address", json_string(g->redis.address));
	json_object_set_new(redis, "timeout_ms", json_integer(g->redis.timeout_ms));
	json_object_set_new(redis, "username", json_string(g->redis.username ? g->redis.username : ""));
	json_object_set_new(redis, "password", json_string(g->redis.password ? g->redis.password : ""));
	if (g->redis.password_file)
		json_object_set_new(redis, "password_file", json_string(g->redis.password_file));
	json_object_set_new(redis, "db", json_integer(g->redis.db));
	if (g->redis.cluster.n) {
		json_t *seeds = json_array();

		for (i = 0; i < g->redis.cluster.n; i++)
			json_array_append_new(seeds, json_string(g->redis.cluster.v[i]));
		json_object_set_new(redis, "cluster", seeds);
	}
	if (g->redis.sentinel_master && g->redis.sentinels.n) {
		json_t *sen = json_object(), *addrs = json_array();

		for (i = 0; i < g->redis.sentinels.n; i++)
			json_array_append_new(addrs, json_string(g->redis.sentinels.v[i]));
		json_object_set_new(sen, "master", json_string(g->redis.sentinel_master));
		json_object_set_new(sen, "addresses", addrs);
		/* Only when set, so that agent.json without them stays as before. */
		if (g->redis.sentinel_username && g->redis.sentinel_username[0])
			json_object_set_new(sen, "username", json_string(g->redis.sentinel_username));
		if (g->redis.sentinel_password && g->redis.sentinel_password[0])
			json_object_set_new(sen, "password", json_string(g->redis.sentinel_password));
		if (g->redis.sentinel_password_file)
			json_object_set_new(sen, "password_file",
					    json_string(g->redis.sentinel_password_file));
		json_object_set_new(redis, "sentinel", sen);
	}
	json_object_set_new(root, "redis", redis);

	for (i = 0; i < g->nroutes; i++)
		if (g->routes[i].eff_user.limit || g->routes[i].eff_ip.limit)
			any_rl = 1;
	json_object_set_new(rl, "enabled", json_boolean(g->rl.enabled && any_rl));
	json_object_set_new(rl, "on_redis_error", json_string(g->rl.redis_error_allow ? "allow" : "deny"));
	json_object_set_new(rl, "shadow", json_boolean(g->rl.shadow));
	json_object_set_new(rl, "ipv6_prefix", json_integer(g->rl.ipv6_prefix));
	if (g->rl.lease)
		json_object_set_new(rl, "mode", json_string("lease"));
	json_object_set_new(root, "rate_limiting", rl);

	text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!text) {
		b->err = 1;
		return -1;
	}
	dynbuf_puts(b, text);
	dynbuf_puts(b, "\n");
	free(text);
	return b->err ? -1 : 0;
}
