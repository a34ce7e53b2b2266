/*
 * Authentication stage: who is calling. Sets v.status/reason on failure and
 * the identity vars (user_id, mapped claims) on success.
 *
 * auth.mode (docs/agent-json.md):
 *   none     only token_missing is checked
 *   jwt      local verification (jwt_verify.c) with the configured keys
 *   service  AuthService.ValidateToken over gRPC (grpc.c)
 * Results are cached per worker by SHA-256 of the token (cache.c); a miss
 * in service mode coalesces with identical requests of every worker.
 *
 * Life cycle, all from the main thread: authn_configure() at load (and for
 * --check), authn_start() once the workers exist and before they run,
 * authn_reload() on SIGHUP, authn_stop() after the workers are joined.
 */
#ifndef SPOGATE_AUTHN_H
#define SPOGATE_AUTHN_H

#include <stddef.h>

#include "decision.h"

struct agent;
struct agent_config;

/* What authorization needs to know about the caller; owned by the
 * decision (via d->authn_data) until it is freed. */
struct authn_identity {
	const char *user_id;
	const char *const *roles;      /* nroles strings */
	size_t nroles;
	const char *const *perms;      /* permissions and scope entries */
	size_t nperms;
};

/* Validates and keeps the auth section; loads the keys in jwt mode.
 * Returns 0 or -1 with a message in err. */
int authn_configure(const struct agent_config *cfg, char *err, size_t errlen);

/* Creates the per-worker state and the gRPC channel. Returns 0 or -1. */
int authn_start(struct agent *a);

/* Re-reads the key files; on error the old keys stay. Never drops a
 * connection or an in-flight decision. Returns 0 or -1 (logged). */
int authn_reload(void);

void authn_stop(struct agent *a);

enum stage_rc authn_stage(struct decision *d);

/* The identity of an authenticated decision, or NULL. */
const struct authn_identity *authn_identity(const struct decision *d);

#endif
