/*
 * The caller's identity as the authentication stage hands it on: the
 * status (0, or the 401 of a refusal), the SPOE vars to set, and the user,
 * roles and permissions authorization reads. Built from verified JWT
 * claims or from an Auth Service answer, immutable once built and reference counted: the token cache
 * holds one reference, every decision that uses it holds one, and the
 * gRPC completion thread hands one to every worker.
 */
#ifndef SPOGATE_IDENTITY_H
#define SPOGATE_IDENTITY_H

#include <stddef.h>

#include <jansson.h>

#include "auth.pb-c.h"
#include "authn.h"
#include "dynbuf.h"
#include "gwmsg.h"

/* One entry of auth.claims: a claim and the SPOE var it goes to. */
struct claim_map {
	const char *claim;
	const char *var;               /* SPOE var name without prefix */
};

struct identity {
	int refs;
	int status;                    /* 0 = authenticated */
	enum gw_reason reason;
	struct authn_identity id;
	unsigned nvars;
	struct gw_var vars[GW_MAX_VARS];
	char *buf;                     /* every string of the identity */
	const char *strs[];            /* id.roles then id.perms, into buf */
};

struct identity *identity_ref(struct identity *r);

/* Drops a reference (r may be NULL); the last frees r. A void * so that it
 * serves as the cache's and the decision slot's free hook. */
void identity_unref(void *r);

/* A refusal with that status and reason. NULL on no memory. */
struct identity *identity_deny(int status, enum gw_reason reason);

/* The identity of verified JWT claims: "sub" is the user, the mapped
 * claims become vars, "roles", "permissions" and "scope" the lists. NULL on
 * no memory. */
struct identity *identity_from_claims(json_t *claims, const struct claim_map *map,
                                      size_t nmap);

/* The identity of an Auth Service answer: a refusal with its 401 reason,
 * or the user, the mapped claims and the lists. NULL on no memory. */
struct identity *identity_from_response(const Spogate__Auth__V1__ValidateTokenResponse *m,
                                        const struct claim_map *map, size_t nmap);

#endif
