/*
 * The key set local JWT verification uses: built from the configured
 * files (a JWKS file, PEM files), swapped whole on a reload, taken by each
 * worker when it changed. A set is immutable and reference counted
 * (jwt_verify.h), so a worker keeps verifying with the set it holds while
 * a reload builds the next one; a failed reload keeps the current set.
 */
#ifndef SPOGATE_JWT_KEYS_H
#define SPOGATE_JWT_KEYS_H

#include <stddef.h>

#include "jwt_verify.h"

/* One entry of auth.pem_keys. */
struct jwt_pem_file {
	const char *kid;               /* NULL: none */
	const char *alg;               /* NULL: from the key */
	const char *file;
};

/* Reads the files (jwks_file may be NULL; the strings must outlive the
 * process's use of keys) into the current set; with no file at all the set
 * is empty until jwt_keys_set() (keys fetched from a provider). Main
 * thread. Returns 0, or -1 with a message in err (and the current set
 * unchanged). */
int jwt_keys_load(const char *jwks_file, const struct jwt_pem_file *pems, size_t npems,
                  char *err, size_t errlen);

/* Reads the same files again and swaps the set in (nothing without files).
 * Returns 0, or -1 with a message in err: the current set stays. */
int jwt_keys_reload(char *err, size_t errlen);

/* Replaces the current set with ks (takes its reference). From any thread. */
void jwt_keys_set(struct jwt_keyset *ks);

/* Keys in the current set. */
size_t jwt_keys_size(void);

/* Drops the current set, once nothing verifies any more. */
void jwt_keys_clear(void);

/* A worker's hold on a set: the set and the generation it was taken at. */
struct jwt_keys_view {
	struct jwt_keyset *keys;
	unsigned gen;
};

/* Takes the current set into v when it changed since v took one. Returns
 * 1 when it did (what v's holder derived from the old keys is stale), 0
 * otherwise. Lock-free when nothing changed. */
int jwt_keys_sync(struct jwt_keys_view *v);

void jwt_keys_view_drop(struct jwt_keys_view *v);

#endif
