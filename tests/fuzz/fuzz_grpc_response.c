/*
 * libFuzzer target: what the Auth and Authz Services answer. The bytes
 * are a protobuf message as it leaves gRPC's receive buffer: protobuf-c
 * unpacks it as a ValidateTokenResponse and the agent turns it into an
 * identity (claim mapping, roles, permissions, reason codes; invariants
 * checked by identity_response_check), and as a CheckPermissionResponse read
 * into a cache verdict whose TTL may only shrink.
 */
#include <stdint.h>
#include <stdlib.h>

#include "authz.h"
#include "identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A claim mapping that uses every source of a ValidateTokenResponse. */
static const struct claim_map map[] = {
	{ "sub", "user_id" }, { "email", "email" }, { "roles", "roles" },
	{ "permissions", "perms" }, { "tenant", "tenant" }, { "org-id", "org_id" },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int allowed = 0;
	double ttl = -1;

	identity_response_check(data, size, map, sizeof(map) / sizeof(map[0]));
	if (authz_response_parse(data, size, 30.0, &allowed, &ttl) == 1 &&
	    (ttl <= 0 || ttl > 30.0 || (allowed != 0 && allowed != 1)))
		abort();
	return 0;
}
