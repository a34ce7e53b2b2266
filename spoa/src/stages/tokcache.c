/*
 * The token cache (see tokcache.h).
 */
#include "tokcache.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "decision.h"
#include "worker_ctx.h"

struct tokcache {
	struct worker *w;
	struct cache *cache;
	tokcache_apply_fn apply;
	uint64_t entries, bytes;       /* published after each fill (atomic) */
};

struct wake_ctx {
	struct tokcache *tc;
	struct decision_batch batch;
};

struct tokcache *tokcache_new(struct worker *w, size_t cap, tokcache_apply_fn apply)
{
	struct tokcache *tc = calloc(1, sizeof(*tc));

	if (!tc || !(tc->cache = cache_new(cap, identity_unref))) {
		free(tc);
		return NULL;
	}
	tc->w = w;
	tc->apply = apply;
	return tc;
}

void tokcache_free(struct tokcache *tc)
{
	if (!tc)
		return;
	cache_free(tc->cache);
	free(tc);
}

void tokcache_key(const char *tok, size_t len, uint8_t key[CACHE_KEY_LEN])
{
	SHA256((const unsigned char *)tok, len, key);
}

enum cache_rc tokcache_lookup(struct tokcache *tc, const uint8_t key[CACHE_KEY_LEN],
                              double now, struct decision *d, struct identity **r)
{
	void *v = NULL;
	enum cache_rc rc = cache_lookup(tc->cache, key, now, d, &v);

	*r = v;
	return rc;
}

/* cache_fill() wake hook: applies the identity to a waiting decision and
 * queues it; it resumes only once the cache is consistent again. */
static void on_wake(void *arg, void *value, void *ctx)
{
	struct wake_ctx *wc = ctx;
	struct decision *d = arg;

	wc->tc->apply(d, value);
	decision_batch_add(&wc->batch, d);
}

void tokcache_fill(struct tokcache *tc, const uint8_t key[CACHE_KEY_LEN], struct identity *r,
                   double expires, double now, struct decision *skip)
{
	struct wake_ctx wc = { .tc = tc, .batch = { .n = 0 } };
	struct cache_stats st;

	cache_fill(tc->cache, key, r, expires, now, on_wake, &wc);
	cache_get_stats(tc->cache, &st);
	__atomic_store_n(&tc->entries, st.entries, __ATOMIC_RELAXED);
	__atomic_store_n(&tc->bytes, st.bytes, __ATOMIC_RELAXED);
	decision_batch_resume(&wc.batch, skip);
}

void tokcache_set_budget(struct tokcache *tc, size_t max_bytes, size_t *total)
{
	cache_set_budget(tc->cache, max_bytes, total, identity_size);
}

void tokcache_size(const struct tokcache *tc, uint64_t *entries, uint64_t *bytes)
{
	*entries = __atomic_load_n(&tc->entries, __ATOMIC_RELAXED);
	*bytes = __atomic_load_n(&tc->bytes, __ATOMIC_RELAXED);
}

/* An answer travelling from another thread to one worker. */
struct fill_job {
	struct tokcache *tc;
	uint8_t key[CACHE_KEY_LEN];
	struct identity *r;            /* one reference, NULL = unavailable */
	double expires;
};

static void fill_on_worker(void *arg)
{
	struct fill_job *j = arg;

	/* The cache takes a reference of its own when it keeps the identity. */
	if (j->r)
		identity_ref(j->r);
	tokcache_fill(j->tc, j->key, j->r, j->expires, ev_now(j->tc->w->loop), NULL);
	identity_unref(j->r);
	free(j);
}

void tokcache_post(struct tokcache *tc, const uint8_t key[CACHE_KEY_LEN], struct identity *r,
                   double expires)
{
	struct fill_job *j = malloc(sizeof(*j));

	if (!j)
		return;
	j->tc = tc;
	memcpy(j->key, key, CACHE_KEY_LEN);
	j->r = r ? identity_ref(r) : NULL;
	j->expires = expires;
	if (worker_post(tc->w, fill_on_worker, j) < 0) {
		identity_unref(j->r);
		free(j);
	}
}

void tokcache_clear(struct tokcache *tc)
{
	cache_clear(tc->cache);
}
