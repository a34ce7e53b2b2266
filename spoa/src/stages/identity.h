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
#include <stdint.h>

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

/* One allocation of exactly its size: the struct, the list pointers, the
 * vars, then every string. Refusals are shared, immutable and never freed
 * (one per reason), so a refused token costs its cache entry only. */
struct identity {
	int refs;
	int status;                    /* 0 = authenticated */
	enum gw_reason reason;
	int is_static;                 /* a shared refusal */
	size_t bytes;                  /* what it costs, for the cache budget */
	struct authn_identity id;
	unsigned nvars;
	struct gw_var *vars;           /* nvars, after strs */
	char *buf;                     /* every string, after vars */
	const char *strs[];            /* id.roles then id.perms, into buf */
};

struct identity *identity_ref(struct identity *r);

/* Drops a reference (r may be NULL); the last frees r. A void * so that it
 * serves as the cache's and the decision slot's free hook. */
void identity_unref(void *r);

/* The shared refusal of reason. Every refusal here is a 401 (the verifier
 * and the Auth Service only refuse authentication); status is checked. */
struct identity *identity_deny(int status, enum gw_reason reason);

/* What r costs in memory (0 for a shared refusal): the cache's budget hook. */
size_t identity_size(const void *r);

/* For the tests and the fuzzer (tests/fuzz/fuzz_grpc_response.c): unpacks
 * an Auth Service answer of len bytes and builds its identity with map;
 * -1 when it does not unpack (or no memory), else the identity's status.
 * A built identity that breaks what a verdict must hold (a user, no
 * control characters, a 401 reason) aborts. Nothing is kept. */
int identity_response_check(const uint8_t *resp, size_t len, const struct claim_map *map,
                            size_t nmap);

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
