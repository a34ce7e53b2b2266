/*
 * The authentication stage's token cache: one per worker, identities
 * (identity.h) keyed by SHA-256 of the token, so the hot path takes no lock
 * and a cache hit costs one hash and one lookup. A miss coalesces: later
 * lookups of the same token queue behind the first (cache.h), and filling
 * the key applies the identity to every one of them and resumes them, once
 * the cache is consistent again. An answer that arrives on another thread
 * (the Auth Service's) is posted to each worker's loop.
 */
#ifndef SPOGATE_TOKCACHE_H
#define SPOGATE_TOKCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "identity.h"

struct decision;
struct worker;
struct tokcache;

/* What a waiting decision gets when its key is filled: r may be NULL
 * (unavailable). */
typedef void (*tokcache_apply_fn)(struct decision *d, struct identity *r);

/* A cache of at most cap identities on w's loop. NULL on no memory. */
struct tokcache *tokcache_new(struct worker *w, size_t cap, tokcache_apply_fn apply);
void tokcache_free(struct tokcache *tc);

void tokcache_key(const char *tok, size_t len, uint8_t key[CACHE_KEY_LEN]);

/* As cache_lookup(): on CACHE_HIT *r is borrowed; on CACHE_PENDING d waits. */
enum cache_rc tokcache_lookup(struct tokcache *tc, const uint8_t key[CACHE_KEY_LEN],
                              double now, struct decision *d, struct identity **r);

/* Settles key with r until expires (the cache takes r's reference; r NULL
 * caches nothing), applies r to every decision waiting on key and resumes
 * them, all but skip (the caller's own, which goes on by itself). On the
 * worker's loop. */
void tokcache_fill(struct tokcache *tc, const uint8_t key[CACHE_KEY_LEN], struct identity *r,
                   double expires, double now, struct decision *skip);

/* tokcache_fill() from any thread, on tc's loop: takes a reference to r
 * (may be NULL). Without memory that worker's waiters stay until HAProxy's
 * processing timeout answers for them (fail closed). */
void tokcache_post(struct tokcache *tc, const uint8_t key[CACHE_KEY_LEN], struct identity *r,
                   double expires);

/* Bounds the caches of every worker together: once the bytes in *total
 * (shared, atomic) pass max_bytes, this one drops its least recently used
 * identities (cache_set_budget(); identity_size() is the cost). */
void tokcache_set_budget(struct tokcache *tc, size_t max_bytes, size_t *total);

/* The cache's entries and bytes as its loop last published them, for the
 * metrics scrape on the main thread. */
void tokcache_size(const struct tokcache *tc, uint64_t *entries, uint64_t *bytes);

/* Forgets every settled identity (the keys changed). */
void tokcache_clear(struct tokcache *tc);

#endif
