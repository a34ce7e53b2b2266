/*
 * Authorization stage: may this caller do this? Runs after authentication,
 * only for requests whose route (or method) names a permission (the perm
 * argument) and that are still allowed.
 *
 * authz.mode (docs/agent-json.md):
 *   none     perm is ignored
 *   claims   the permission must be in the token's permissions or scope
 *   service  AuthzService.CheckPermission over gRPC, cached per worker by
 *            (user, permission), identical misses coalesced into one RPC
 * Denied is 403 permission_denied; a service failure is 503
 * authz_unavailable, or lets the request through with authz.on_error allow
 * (logged as a warning, counted).
 *
 */
#ifndef SPOGATE_AUTHZ_H
#define SPOGATE_AUTHZ_H

#include <stddef.h>
#include <stdint.h>

#include "decision.h"

extern const struct stage_ops authz_stage;

/* "*" grants everything, "blog.*" everything under "blog.", any other
 * grant only itself. Returns 1 when grant covers perm. */
int authz_grant_matches(const char *grant, const char *perm, size_t permlen);

/* Reads an Authz Service answer (a CheckPermissionResponse of len bytes):
 * returns 1 with *allowed and *ttl (cache_ttl, or the service's shorter
 * cache_ttl_seconds) set, or 0 when it does not unpack. */
int authz_response_parse(const uint8_t *resp, size_t len, double cache_ttl, int *allowed,
                         double *ttl);

#endif
