/*
 * A small TTL cache keyed by 32-byte digests (SHA-256 of a token, of a
 * user and a permission), one per worker thread so the hot path takes no
 * lock. Bounded: past its capacity the least recently used entry goes, and
 * every insert frees the expired entries of two buckets, so expired results
 * are reclaimed as the cache turns over, not only when the LRU ends.
 *
 * In-flight coalescing: the first lookup of a missing key creates a
 * pending entry and tells the caller to fetch; later lookups of the same
 * key queue behind it, and cache_fill() wakes them all with the one result.
 *
 * Values are opaque; the cache owns one reference and drops it with the
 * free_value hook given to cache_new().
 */
#ifndef SPOGATE_CACHE_H
#define SPOGATE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define CACHE_KEY_LEN 32

enum cache_rc {
	CACHE_HIT     = 0,   /* *value holds the cached value (borrowed) */
	CACHE_MISS    = 1,   /* a pending entry now exists: fetch, then cache_fill() */
	CACHE_PENDING = 2,   /* a fetch is in flight; arg will be woken by cache_fill() */
	CACHE_ERROR   = -1,  /* out of memory: fetch without coalescing */
};

struct cache_stats {
	uint64_t hits;
	uint64_t misses;
	uint64_t coalesced;
	uint64_t evictions;
	uint64_t expired;              /* expired entries freed by the sweep */
	uint64_t bytes;                /* what the entries and values cost */
	uint64_t entries;
};

struct cache;

/* Called by cache_fill() for each waiter, with the value (borrowed, may be
 * NULL when the fetch failed) and the ctx passed to cache_fill(). */
typedef void (*cache_wake_fn)(void *arg, void *value, void *ctx);

/* A cache of at most cap settled entries. NULL on no memory. */
struct cache *cache_new(size_t cap, void (*free_value)(void *value));

/* Also bounds the cache by bytes: each entry costs its struct plus
 * value_size(value) (the value's own allocations), and once the caches
 * sharing *total (updated atomically: one cache per worker, one budget)
 * hold more than max_bytes, this one drops its least recently used
 * entries. total NULL = this cache alone; max_bytes 0 = no byte bound. */
void cache_set_budget(struct cache *c, size_t max_bytes, size_t *total,
                      size_t (*value_size)(const void *));

/* Wakes nobody: call only when no waiter is left (worker teardown). */
void cache_free(struct cache *c);

/* Looks key up at time now (seconds, any monotonic clock the caller keeps
 * consistent with the expiries it passes). On CACHE_PENDING, waiter_arg is
 * queued; it must stay valid until woken. */
enum cache_rc cache_lookup(struct cache *c, const uint8_t key[CACHE_KEY_LEN], double now,
                           void *waiter_arg, void **value);

/* Settles key with value until expires (the cache takes the reference;
 * value NULL or expires <= now caches nothing), then wakes every waiter of
 * the key with value. Works with or without a pending entry. */
void cache_fill(struct cache *c, const uint8_t key[CACHE_KEY_LEN], void *value,
                double expires, double now, cache_wake_fn wake, void *ctx);

/* Drops every settled entry (pending ones keep their waiters). */
void cache_clear(struct cache *c);

void cache_get_stats(const struct cache *c, struct cache_stats *st);

#endif
