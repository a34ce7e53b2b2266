/* Checks that need both inputs: every route's service is in the registry
 * and has HTTP servers, the Auth/Authz services have gRPC targets. */
#include "model.h"

#include <stdlib.h>
#include <string.h>

/* Suggests the closest registry name for a typo'd service. */
static const char *closest_service(const struct gen_registry *r, const char *name)
{
	const char **names = calloc(r->nservices + 1, sizeof(*names));
	const char *hint;
	size_t i;

	if (!names)
		return NULL;
	for (i = 0; i < r->nservices; i++)
		names[i] = r->services[i].name;
	hint = gen_did_you_mean(name, names);
	free(names);
	return hint;
}

static void need_grpc(struct gen_ctx *c, const struct gen_registry *r, const char *name,
		      const struct gy_node *at, const char *role)
{
	const struct gen_service *s = gen_registry_find(r, name);
	const char *hint;

	if (!s) {
		hint = closest_service(r, name);
		gen_err(c, at, "%s: service '%.100s' is not in the registry (%s)%s%s%s", role, name,
			r->file, hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
	} else if (!s->grpc) {
		gen_err(c, at, "%s: registry service '%.100s' has no grpc: target", role, name);
	}
}

int gen_link(struct gen_gateway *g, struct gen_registry *r, struct gen_diags *d)
{
	struct gen_ctx cx = { d, g->file }, *c = &cx;
	size_t errs = d->errors, i;
	int any_auth = 0, any_perm = 0;
	const struct gy_node *first_auth = NULL, *first_perm = NULL;

	for (i = 0; i < g->nroutes; i++) {
		struct gen_route *rt = &g->routes[i];
		struct gen_service *s;
		if (rt->auth_required && !any_auth) {
			any_auth = 1;
			first_auth = rt->at;
		}
		if ((rt->permission || rt->nperms) && !any_perm) {
			any_perm = 1;
			first_perm = gy_get(rt->at, "permission");
			if (!first_perm)
				first_perm = gy_get(rt->at, "permissions");
		}
		if (!rt->service)
			continue;
		s = (struct gen_service *)gen_registry_find(r, rt->service);
		if (!s) {
			const char *hint = closest_service(r, rt->service);
			gen_err(c, rt->service_at, "service '%.100s' is not in the registry (%s)%s%s%s",
				rt->service, r->file, hint ? "; did you mean '" : "",
				hint ? hint : "", hint ? "'?" : "");
			continue;
		}
		if (s->kind == GEN_SVC_NONE) {
			gen_err(c, rt->service_at, "service '%.100s' has no HTTP servers in the "
				"registry (it needs dns, srv or servers)", rt->service);
			continue;
		}
		s->used = 1;
	}

	if (any_auth) {
		if (g->auth.mode == GEN_AUTH_SERVICE)
			need_grpc(c, r, g->auth.service,
				  g->auth.service_at ? g->auth.service_at :
				  g->auth.present ? g->auth.at : first_auth,
				  g->auth.present ? "auth" : "auth (no auth: section, so the Auth "
				  "Service is used)");
		else if (g->auth.mode == GEN_AUTH_NONE)
			gen_warn(c, g->auth.at, "auth: mode none only checks that a token is present; "
				 "routes with auth_required accept any token");
	}
	if (any_perm) {
		if (g->auth.mode == GEN_AUTH_NONE)
			gen_err(c, first_perm, "permissions need authenticated users, but auth.mode is none");
		if (g->authz.mode == GEN_AUTHZ_SERVICE)
			need_grpc(c, r, g->authz.service,
				  g->authz.service_at ? g->authz.service_at :
				  g->authz.present ? g->authz.at : first_perm,
				  g->authz.present ? "authz" : "authz (no authz: section, so the Authz "
				  "Service is used)");
		else if (g->authz.mode == GEN_AUTHZ_NONE)
			gen_err(c, first_perm, "routes have permissions, but authz.mode is none");
	}
	return d->errors > errs ? -1 : 0;
}
