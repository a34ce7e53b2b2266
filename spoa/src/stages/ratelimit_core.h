/*
 * Rate limiting, the pure part: configuration, policy strings, Redis key
 * names, the per-worker "over limit until T" cache and the choice of the
 * most restrictive result. No I/O and no event loop, so every rule here is
 * unit-tested (tests/unit/test_ratelimit.c); the stage lives in
 * ratelimit.c, the Redis connection in clients/redis.c.
 *
 * Times are in seconds as doubles (the loop's ev_now()), passed in by the
 * caller.
 */
#ifndef SPOGATE_RATELIMIT_CORE_H
#define SPOGATE_RATELIMIT_CORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define RL_MAX_POLICY_LEN  32      /* "limit/period" as HAProxy sends it */
#define RL_MAX_LIMIT       1000000000LL
#define RL_MAX_PERIOD      31622400LL   /* 366 days, in seconds */
#define RL_KEY_MAX         1200     /* prefix + a 1024-byte user id + policy */
#define RL_CACHE_KEY_MAX   128      /* longer keys are never cached locally */

enum rl_on_error {
	RL_ON_ERROR_ALLOW = 0,
	RL_ON_ERROR_DENY  = 1,
};

enum rl_mode {
	RL_MODE_EXACT = 0,             /* one script call per decision (coalesced) */
	RL_MODE_LEASE = 1,             /* slices of budget, admitted locally */
};

#define RL_MAX_CLUSTER_SEEDS 16

/* redis + rate_limiting sections of agent.json (docs/agent-json.md). */
struct rl_config {
	int enabled;
	enum rl_mode mode;
	int ncluster;                  /* redis.cluster seeds; 0 = one Redis */
	char cluster_host[RL_MAX_CLUSTER_SEEDS][64];   /* numeric after resolve */
	int cluster_port[RL_MAX_CLUSTER_SEEDS];
	char sentinel_master[128];     /* redis.sentinel.master; "" = no Sentinel */
	int nsentinels;
	char sentinel_host[RL_MAX_CLUSTER_SEEDS][64];  /* numeric after resolve */
	int sentinel_port[RL_MAX_CLUSTER_SEEDS];
	char sentinel_username[256];   /* AUTH to the sentinels; "" = none */
	char sentinel_password[256];   /* "" = no AUTH to the sentinels */
	enum rl_on_error on_error;
	int shadow;
	int ipv6_prefix;               /* 1..128 */
	int cache_entries;             /* local over-limit cache slots, 0 = off */
	int breaker_failures;          /* consecutive failures that open it */
	double breaker_open_s;         /* open time before a probe */
	char redis_host[256];          /* numeric after rl_config_resolve() */
	int redis_port;
	double redis_timeout_s;
	char redis_username[256];
	char redis_password[256];
	int redis_db;
};

/* Fills c with the defaults and reads the "redis" and "rate_limiting"
 * objects (either may be NULL). No DNS here, so --check works where Redis
 * does not resolve (CI). Returns 0, or -1 with a message in err. */
int rl_config_parse(json_t *redis, json_t *rate_limiting, struct rl_config *c,
                    char *err, size_t errlen);

/* Replaces a host name in c->redis_host by its numeric address. Blocking:
 * call once at start-up on the main thread, never on a worker loop (hiredis
 * would otherwise resolve on every reconnect, inside the loop). Returns 0,
 * or -1 with a message in err. */
int rl_config_resolve(struct rl_config *c, char *err, size_t errlen);

enum rl_kind {
	RL_USER = 0,
	RL_IP   = 1,
};

struct rl_policy {
	int64_t limit;                 /* requests ... */
	int64_t period;                /* ... per this many seconds */
};

/* Parses "limit/period" (decimal digits only, limit 1..RL_MAX_LIMIT, period
 * 1..RL_MAX_PERIOD). Returns 1 with p set, 0 for an empty string (no
 * policy), -1 when malformed. */
int rl_policy_parse(const char *s, size_t len, struct rl_policy *p);

/* Writes the client's rate-limit subject: the IPv4 address, or the IPv6
 * address masked to prefix bits as "2001:db8:1:2::/64" (the full address
 * when prefix is 128). IPv4-mapped IPv6 addresses count as IPv4. Returns
 * the length, or -1 when family is not 4 or 6 or out is too small. */
int rl_ip_subject(int family, const uint8_t ip[16], int prefix, char *out, size_t outlen);

/* Builds "spogate:rl:<u|ip>:<id>:<limit>/<period>" into out. The policy
 * comes last and holds no ':', so two (id, policy) pairs never share a key.
 * Returns the length, or -1 when it does not fit (nothing is truncated). */
int rl_key_build(char *out, size_t outlen, enum rl_kind kind, const char *id,
                 size_t idlen, const struct rl_policy *p);

/* What Redis (or the local cache) said about one key. */
struct rl_key_result {
	int64_t remaining;             /* requests left now */
	int64_t reset_ms;              /* until the full quota is back */
	int64_t retry_ms;              /* > 0 only for a key that denied */
};

/* Fills out (a verdict's rl numbers) from n key results and policies:
 * allowed or not, and the most restrictive policy (the denying one with the
 * longest wait; else the one with the fewest remaining, then the latest
 * reset). Returns the index of the chosen key. Seconds are rounded up;
 * retry_after is at least 1 on a denial. */
struct rl_outcome {
	int allowed;
	int index;
	int64_t limit;
	int64_t remaining;
	int64_t reset_s;
	int64_t retry_after_s;
};
void rl_outcome_pick(int allowed, const struct rl_policy *pol,
                     const struct rl_key_result *res, int n, struct rl_outcome *out);

/* FNV-1a of a key, for the local tables. */
uint32_t rl_key_hash(const char *key, size_t len);

/* The local over-limit cache: key -> "denied until". Fixed size, set
 * associative, no allocation after creation; an entry is evicted by a newer
 * one in its set or by expiry. Only denials are cached, and a denial leaves
 * the Redis state untouched, so skipping Redis until the retry time gives
 * exactly the answer Redis would have given. */
struct rl_cache_entry {
	double until;                  /* denied while now < until */
	double reset_at;
	int64_t limit;
	uint32_t hash;
	uint8_t keylen;
	char key[RL_CACHE_KEY_MAX];
};

struct rl_cache {
	struct rl_cache_entry *e;
	unsigned nsets;                /* power of two; RL_CACHE_WAYS entries each */
};

#define RL_CACHE_WAYS 4

/* entries is rounded up to a power of two (at least RL_CACHE_WAYS); 0
 * leaves the cache disabled. Returns 0 or -1 (no memory). */
int rl_cache_init(struct rl_cache *c, unsigned entries);
void rl_cache_free(struct rl_cache *c);

/* Remembers that key is denied until `until` (full quota back at
 * reset_at). Keys longer than RL_CACHE_KEY_MAX are not cached. */
void rl_cache_put(struct rl_cache *c, const char *key, size_t len, double until,
                  double reset_at, int64_t limit, double now);

/* Returns the live entry for key, or NULL. */
const struct rl_cache_entry *rl_cache_get(const struct rl_cache *c, const char *key,
                                          size_t len, double now);

#endif
