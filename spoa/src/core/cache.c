/*
 * Per-worker TTL cache: a chained hash table of digests with an LRU list.
 * Keys are already uniform (SHA-256), so their first bytes are the hash.
 */
#include "cache.h"

#include <stdlib.h>
#include <string.h>

struct waiter {
	struct waiter *next;
	void *arg;
};

struct entry {
	uint8_t key[CACHE_KEY_LEN];
	double expires;
	void *value;                   /* NULL while pending */
	int pending;
	struct waiter *waiters;
	struct waiter **wtail;
	struct entry *hnext;
	struct entry *lprev, *lnext;   /* LRU: head = most recent */
	size_t cost;                   /* bytes counted against the budget */
};

/* What an entry costs besides its value: the struct and malloc's header. */
#define ENTRY_COST (sizeof(struct entry) + 16)

struct cache {
	size_t cap;
	size_t n;
	size_t mask;
	struct entry **buckets;
	struct entry lru;              /* sentinel */
	size_t sweep_at;               /* next bucket the sweep looks at */
	size_t max_bytes;              /* 0 = no byte budget */
	size_t bytes;                  /* this cache's entries */
	size_t *total;                 /* all caches sharing the budget */
	size_t (*value_size)(const void *);
	void (*free_value)(void *);
	struct cache_stats st;
};

static size_t slot(const struct cache *c, const uint8_t *key)
{
	uint64_t h;

	memcpy(&h, key, sizeof(h));
	return (size_t)h & c->mask;
}

struct cache *cache_new(size_t cap, void (*free_value)(void *value))
{
	struct cache *c = calloc(1, sizeof(*c));
	size_t nb = 16;

	if (!c)
		return NULL;
	while (nb < cap && nb < ((size_t)1 << 30))
		nb <<= 1;
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	c->mask = nb - 1;
	c->cap = cap ? cap : 1;
	c->free_value = free_value;
	c->lru.lnext = c->lru.lprev = &c->lru;
	return c;
}

/* Sets e's value and what the entry now costs. */
/* Adds delta (two's complement for a decrease) to the byte counts. */
static void count_bytes(struct cache *c, size_t delta)
{
	c->bytes += delta;
	if (c->total)
		__atomic_add_fetch(c->total, delta, __ATOMIC_RELAXED);
}

static void entry_set(struct cache *c, struct entry *e, void *value)
{
	size_t cost = ENTRY_COST + (value && c->value_size ? c->value_size(value) : 0);

	count_bytes(c, cost - e->cost);
	e->value = value;
	e->cost = cost;
}

void cache_set_budget(struct cache *c, size_t max_bytes, size_t *total,
                      size_t (*value_size)(const void *))
{
	c->max_bytes = max_bytes;
	c->total = total;
	c->value_size = value_size;
}

static void lru_unlink(struct entry *e)
{
	e->lprev->lnext = e->lnext;
	e->lnext->lprev = e->lprev;
}

static void lru_push(struct cache *c, struct entry *e)
{
	e->lnext = c->lru.lnext;
	e->lprev = &c->lru;
	c->lru.lnext->lprev = e;
	c->lru.lnext = e;
}

static void entry_remove(struct cache *c, struct entry *e)
{
	struct entry **pp = &c->buckets[slot(c, e->key)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(e);
	if (e->value && c->free_value)
		c->free_value(e->value);
	count_bytes(c, 0 - e->cost);
	free(e);
	c->n--;
}

static struct entry *find(struct cache *c, const uint8_t *key)
{
	struct entry *e;

	for (e = c->buckets[slot(c, key)]; e; e = e->hnext)
		if (memcmp(e->key, key, CACHE_KEY_LEN) == 0)
			return e;
	return NULL;
}

static int over(const struct cache *c)
{
	size_t used = c->total ? __atomic_load_n(c->total, __ATOMIC_RELAXED) : c->bytes;

	return c->n > c->cap || (c->max_bytes && used > c->max_bytes);
}

/* Evicts settled entries from the LRU end until the cache fits its entry
 * count and its byte budget. Pending entries are skipped: their waiters
 * need them. */
static void shrink(struct cache *c)
{
	struct entry *e = c->lru.lprev, *prev;

	while (over(c) && e != &c->lru) {
		prev = e->lprev;
		if (!e->pending) {
			entry_remove(c, e);
			c->st.evictions++;
		}
		e = prev;
	}
}

/* Frees settled entries that expired, SWEEP_BUCKETS buckets per call from
 * where the last call stopped: called on every insert, so the table is
 * swept once every capacity / SWEEP_BUCKETS inserts and expired results
 * never sit in memory until the LRU reaches them. */
#define SWEEP_BUCKETS 2

static void sweep(struct cache *c, double now)
{
	struct entry *e, *next;
	int i;

	for (i = 0; i < SWEEP_BUCKETS; i++) {
		for (e = c->buckets[c->sweep_at & c->mask]; e; e = next) {
			next = e->hnext;
			if (!e->pending && e->expires <= now) {
				entry_remove(c, e);
				c->st.expired++;
			}
		}
		c->sweep_at++;
	}
}

void cache_free(struct cache *c)
{
	struct entry *e, *next;
	struct waiter *w;

	if (!c)
		return;
	for (e = c->lru.lnext; e != &c->lru; e = next) {
		next = e->lnext;
		while ((w = e->waiters)) {
			e->waiters = w->next;
			free(w);
		}
		if (e->value && c->free_value)
			c->free_value(e->value);
		free(e);
	}
	free(c->buckets);
	free(c);
}

enum cache_rc cache_lookup(struct cache *c, const uint8_t key[CACHE_KEY_LEN], double now,
                           void *waiter_arg, void **value)
{
	struct entry *e = find(c, key);
	struct waiter *w;

	*value = NULL;
	if (e && e->pending) {
		w = malloc(sizeof(*w));
		if (!w)
			return CACHE_ERROR;
		w->arg = waiter_arg;
		w->next = NULL;
		*e->wtail = w;
		e->wtail = &w->next;
		c->st.coalesced++;
		return CACHE_PENDING;
	}
	if (e && e->expires > now) {
		if (c->lru.lnext != e) {
			lru_unlink(e);
			lru_push(c, e);
		}
		c->st.hits++;
		*value = e->value;
		return CACHE_HIT;
	}
	c->st.misses++;
	if (e) {
		/* Expired: reuse the entry as the pending one. */
		if (c->free_value)
			c->free_value(e->value);
		entry_set(c, e, NULL);
	} else {
		sweep(c, now);
		e = calloc(1, sizeof(*e));
		if (!e)
			return CACHE_ERROR;
		memcpy(e->key, key, CACHE_KEY_LEN);
		e->hnext = c->buckets[slot(c, key)];
		c->buckets[slot(c, key)] = e;
		lru_push(c, e);
		c->n++;
		entry_set(c, e, NULL);
	}
	e->pending = 1;
	e->waiters = NULL;
	e->wtail = &e->waiters;
	shrink(c);
	return CACHE_MISS;
}

void cache_fill(struct cache *c, const uint8_t key[CACHE_KEY_LEN], void *value,
                double expires, double now, cache_wake_fn wake, void *ctx)
{
	struct entry *e = find(c, key);
	struct waiter *waiters = NULL, *w;
	int keep = value && expires > now;

	if (e) {
		if (e->pending) {
			waiters = e->waiters;
			e->waiters = NULL;
			e->pending = 0;
		}
		if (!keep) {
			entry_remove(c, e);
			e = NULL;
		}
	} else if (keep) {
		sweep(c, now);
		e = calloc(1, sizeof(*e));
		if (e) {
			memcpy(e->key, key, CACHE_KEY_LEN);
			e->hnext = c->buckets[slot(c, key)];
			c->buckets[slot(c, key)] = e;
			lru_push(c, e);
			c->n++;
			entry_set(c, e, NULL);
		}
	}
	if (e) {
		if (e->value && e->value != value && c->free_value)
			c->free_value(e->value);
		entry_set(c, e, value);
		e->expires = expires;
		if (c->lru.lnext != e) {
			lru_unlink(e);
			lru_push(c, e);
		}
	}
	/* Wake before dropping an uncached value, so waiters may keep it. */
	while ((w = waiters)) {
		waiters = w->next;
		if (wake)
			wake(w->arg, value, ctx);
		free(w);
	}
	if (!e && value && c->free_value)
		c->free_value(value);
	shrink(c);
}

void cache_clear(struct cache *c)
{
	struct entry *e, *next;

	for (e = c->lru.lnext; e != &c->lru; e = next) {
		next = e->lnext;
		if (!e->pending)
			entry_remove(c, e);
	}
}

void cache_get_stats(const struct cache *c, struct cache_stats *st)
{
	*st = c->st;
	st->entries = c->n;
	st->bytes = c->bytes;
}
