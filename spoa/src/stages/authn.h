/*
 * Authentication stage: who is calling. Sets v.status/reason on failure and
 * the identity vars (user_id, mapped claims) on success.
 *
 * auth.mode (docs/agent-json.md):
 *   none     only token_missing is checked
 *   jwt      local verification (jwt/jwt_verify.c) with the configured
 *            key set (jwt/jwt_keys.c)
 *   service  AuthService.ValidateToken over gRPC (clients/authsvc.c)
 * Identities (identity.c) are cached per worker by SHA-256 of the token
 * (tokcache.c); a miss in service mode coalesces with identical requests
 * of every worker.
 *
 * Keys are loaded at configure time and re-read on SIGHUP (the reload
 * hook); on a failed reload the old keys stay.
 */
#ifndef SPOGATE_AUTHN_H
#define SPOGATE_AUTHN_H

#include <stddef.h>

#include "decision.h"

/* What authorization needs to know about the caller; owned by the
 * decision (the stage's slot) until it is freed. */
struct authn_identity {
	const char *user_id;
	const char *const *roles;      /* nroles strings */
	size_t nroles;
	const char *const *perms;      /* permissions and scope entries */
	size_t nperms;
};

extern const struct stage_ops authn_stage;

/* The identity of an authenticated decision, or NULL. */
const struct authn_identity *authn_identity(const struct decision *d);

#endif
