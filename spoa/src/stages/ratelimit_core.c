/*
 * Rate limiting, the pure part (see ratelimit_core.h).
 */
#include "ratelimit_core.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "addr.h"
#include "config.h"
#include "secret.h"

#define DEF_REDIS_PORT 6379

static int copy_str(char *dst, size_t cap, const char *src, const char *what,
                    char *err, size_t errlen)
{
	size_t n = strlen(src);

	if (n >= cap) {
		snprintf(err, errlen, "\"%s\" is longer than %zu bytes", what, cap - 1);
		return -1;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

/* Resolves host (at most outlen - 1 bytes) to its numeric form in out. */
static int resolve(const char *host, char *out, size_t outlen, const char *what, char *err,
                   size_t errlen)
{
	struct addrinfo hints, *res;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "\"%s\": cannot resolve \"%s\": %s", what, host,
		         gai_strerror(rc));
		return -1;
	}
	rc = getnameinfo(res->ai_addr, res->ai_addrlen, out, (socklen_t)outlen, NULL, 0,
	                 NI_NUMERICHOST);
	freeaddrinfo(res);
	if (rc != 0) {
		snprintf(err, errlen, "\"%s\": \"%s\": %s", what, host, gai_strerror(rc));
		return -1;
	}
	return 0;
}

int rl_config_resolve(struct rl_config *c, char *err, size_t errlen)
{
	char out[sizeof(c->redis_host)];
	int i;

	if (resolve(c->redis_host, out, sizeof(out), "redis.address", err, errlen) < 0)
		return -1;
	memcpy(c->redis_host, out, sizeof(out));
	for (i = 0; i < c->ncluster; i++) {
		if (resolve(c->cluster_host[i], out, sizeof(c->cluster_host[i]), "redis.cluster",
		            err, errlen) < 0)
			return -1;
		memcpy(c->cluster_host[i], out, sizeof(c->cluster_host[i]));
	}
	for (i = 0; i < c->nsentinels; i++) {
		if (resolve(c->sentinel_host[i], out, sizeof(c->sentinel_host[i]),
		            "redis.sentinel.addresses", err, errlen) < 0)
			return -1;
		memcpy(c->sentinel_host[i], out, sizeof(c->sentinel_host[i]));
	}
	return 0;
}

/* A list of 1..RL_MAX_CLUSTER_SEEDS "host:port" (what names it, for
 * errors). Returns the count, or -1. */
static int parse_addrs(json_t *a, const char *what, char (*host)[64], int *port, char *err,
                       size_t errlen)
{
	size_t i;

	if (!json_is_array(a) || json_array_size(a) == 0 ||
	    json_array_size(a) > RL_MAX_CLUSTER_SEEDS) {
		snprintf(err, errlen, "\"%s\": expected a list of 1 to %d \"host:port\"", what,
		         RL_MAX_CLUSTER_SEEDS);
		return -1;
	}
	for (i = 0; i < json_array_size(a); i++) {
		const char *s = json_string_value(json_array_get(a, i));

		if (!s || addr_split(s, host[i], sizeof(host[i]), &port[i]) < 0) {
			snprintf(err, errlen, "\"%s\"[%zu]: not host:port", what, i);
			return -1;
		}
	}
	return (int)i;
}

/* redis.cluster: ["host:port", ...], the seeds of a Redis Cluster. */
static int parse_cluster(json_t *a, struct rl_config *c, char *err, size_t errlen)
{
	if (!a)
		return 0;
	c->ncluster = parse_addrs(a, "redis.cluster", c->cluster_host, c->cluster_port, err, errlen);
	return c->ncluster < 0 ? -1 : 0;
}

/* obj's "username", and its "password" ("${NAME}" from the environment)
 * or "password_file" (read once here, at start), for redis (the data
 * nodes) and redis.sentinel (the sentinels). */
static int parse_credentials(json_t *o, const char *obj, char *user, size_t ulen, char *pw,
                             size_t plen, char *err, size_t errlen)
{
	const char *u = NULL, *p = NULL, *pf = NULL;
	char what_u[64], what_p[64];

	snprintf(what_u, sizeof(what_u), "%s.username", obj);
	snprintf(what_p, sizeof(what_p), "%s.password", obj);
	if (config_get_str(o, obj, "username", &u, err, errlen) < 0 ||
	    (u && copy_str(user, ulen, u, what_u, err, errlen) < 0) ||
	    config_get_str(o, obj, "password", &p, err, errlen) < 0 ||
	    config_get_str(o, obj, "password_file", &pf, err, errlen) < 0 ||
	    secret_resolve(p, pf, what_p, pw, plen, err, errlen) < 0)
		return -1;
	if (user[0] && !pw[0]) {
		snprintf(err, errlen, "\"%s\" needs \"%s\"", what_u, what_p);
		return -1;
	}
	return 0;
}

/* redis.sentinel: {"master": NAME, "addresses": ["host:port", ...],
 * "username": USER, "password": PW | "${NAME}", "password_file": PATH}.
 * The credentials are the sentinels' own (requirepass or an ACL user in
 * sentinel.conf), not the data nodes'. */
static int parse_sentinel(json_t *o, struct rl_config *c, char *err, size_t errlen)
{
	static const char *const known[] = {
		"master", "addresses", "username", "password", "password_file", NULL
	};
	const char *name = NULL;

	if (!o)
		return 0;
	if (config_check_keys(o, "redis.sentinel", known, err, errlen) < 0 ||
	    config_get_str(o, "redis.sentinel", "master", &name, err, errlen) < 0)
		return -1;
	if (!name || !name[0] || copy_str(c->sentinel_master, sizeof(c->sentinel_master), name,
	                                  "redis.sentinel.master", err, errlen) < 0) {
		if (!name || !name[0])
			snprintf(err, errlen, "\"redis.sentinel.master\": the master's name is needed");
		return -1;
	}
	c->nsentinels = parse_addrs(json_object_get(o, "addresses"), "redis.sentinel.addresses",
	                            c->sentinel_host, c->sentinel_port, err, errlen);
	if (c->nsentinels < 0)
		return -1;
	if (parse_credentials(o, "redis.sentinel", c->sentinel_username,
	                      sizeof(c->sentinel_username), c->sentinel_password,
	                      sizeof(c->sentinel_password), err, errlen) < 0)
		return -1;
	if (c->ncluster) {
		snprintf(err, errlen, "\"redis.sentinel\" and \"redis.cluster\" exclude each other");
		return -1;
	}
	return 0;
}

static int parse_redis(json_t *r, struct rl_config *c, char *err, size_t errlen)
{
	static const char *const known[] = {
		"address", "timeout_ms", "username", "password", "password_file", "db", "cluster",
		"sentinel", NULL
	};
	const char *s = NULL;
	char host[256];
	long long n;

	if (!r)
		return 0;
	if (config_check_keys(r, "redis", known, err, errlen) < 0 ||
	    parse_cluster(json_object_get(r, "cluster"), c, err, errlen) < 0 ||
	    parse_sentinel(json_object_get(r, "sentinel"), c, err, errlen) < 0)
		return -1;
	if (config_get_str(r, "redis", "address", &s, err, errlen) < 0)
		return -1;
	if (s) {
		if (addr_split(s, host, sizeof(host), &c->redis_port) < 0) {
			snprintf(err, errlen, "\"redis.address\": \"%s\" is not host:port", s);
			return -1;
		}
		if (copy_str(c->redis_host, sizeof(c->redis_host), host, "redis.address",
		             err, errlen) < 0)
			return -1;
	}
	n = 50;
	if (config_get_int(r, "redis", "timeout_ms", 1, 60000, &n, err, errlen) < 0)
		return -1;
	c->redis_timeout_s = (double)n / 1000.0;
	if (parse_credentials(r, "redis", c->redis_username, sizeof(c->redis_username),
	                      c->redis_password, sizeof(c->redis_password), err, errlen) < 0)
		return -1;
	n = 0;
	if (config_get_int(r, "redis", "db", 0, 65535, &n, err, errlen) < 0)
		return -1;
	c->redis_db = (int)n;
	return 0;
}

static int parse_rl(json_t *r, struct rl_config *c, char *err, size_t errlen)
{
	static const char *const known[] = {
		"enabled", "on_redis_error", "shadow", "ipv6_prefix", "local_cache_entries",
		"breaker_failures", "breaker_open_ms", "mode", NULL
	};
	const char *s = NULL;
	long long n;

	if (!r)
		return 0;
	if (config_check_keys(r, "rate_limiting", known, err, errlen) < 0 ||
	    config_get_bool(r, "rate_limiting", "enabled", &c->enabled, err, errlen) < 0 ||
	    config_get_bool(r, "rate_limiting", "shadow", &c->shadow, err, errlen) < 0 ||
	    config_get_str(r, "rate_limiting", "on_redis_error", &s, err, errlen) < 0)
		return -1;
	if (s) {
		if (strcmp(s, "allow") == 0) {
			c->on_error = RL_ON_ERROR_ALLOW;
		} else if (strcmp(s, "deny") == 0) {
			c->on_error = RL_ON_ERROR_DENY;
		} else {
			snprintf(err, errlen, "\"rate_limiting.on_redis_error\": \"%s\" is not allow or deny", s);
			return -1;
		}
	}
	s = NULL;
	if (config_get_str(r, "rate_limiting", "mode", &s, err, errlen) < 0)
		return -1;
	if (s && strcmp(s, "lease") == 0) {
		c->mode = RL_MODE_LEASE;
	} else if (s && strcmp(s, "exact") != 0) {
		snprintf(err, errlen, "\"rate_limiting.mode\": \"%s\" is not exact or lease", s);
		return -1;
	}
	n = c->ipv6_prefix;
	if (config_get_int(r, "rate_limiting", "ipv6_prefix", 1, 128, &n, err, errlen) < 0)
		return -1;
	c->ipv6_prefix = (int)n;
	n = c->cache_entries;
	if (config_get_int(r, "rate_limiting", "local_cache_entries", 0, 1 << 20, &n,
	                   err, errlen) < 0)
		return -1;
	c->cache_entries = (int)n;
	n = c->breaker_failures;
	if (config_get_int(r, "rate_limiting", "breaker_failures", 1, 1000, &n, err, errlen) < 0)
		return -1;
	c->breaker_failures = (int)n;
	n = (long long)(c->breaker_open_s * 1000);
	if (config_get_int(r, "rate_limiting", "breaker_open_ms", 1, 60000, &n, err, errlen) < 0)
		return -1;
	c->breaker_open_s = (double)n / 1000.0;
	return 0;
}

int rl_config_parse(json_t *redis, json_t *rate_limiting, struct rl_config *c,
                    char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	c->on_error = RL_ON_ERROR_ALLOW;
	c->ipv6_prefix = 64;
	c->cache_entries = 4096;
	c->breaker_failures = 5;
	c->breaker_open_s = 0.2;
	snprintf(c->redis_host, sizeof(c->redis_host), "127.0.0.1");
	c->redis_port = DEF_REDIS_PORT;
	c->redis_timeout_s = 0.05;
	if (parse_redis(redis, c, err, errlen) < 0 || parse_rl(rate_limiting, c, err, errlen) < 0)
		return -1;
	return 0;
}

/* Reads a run of decimal digits as a number in 1..max. Returns the digits
 * consumed, or -1. */
static int digits(const char *s, size_t len, int64_t max, int64_t *out)
{
	int64_t v = 0;
	size_t i;

	for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		v = v * 10 + (s[i] - '0');
		if (v > max)
			return -1;
	}
	if (i == 0 || v < 1)
		return -1;
	*out = v;
	return (int)i;
}

int rl_policy_parse(const char *s, size_t len, struct rl_policy *p)
{
	int n, m;

	if (len == 0)
		return 0;
	if (len > RL_MAX_POLICY_LEN)
		return -1;
	n = digits(s, len, RL_MAX_LIMIT, &p->limit);
	if (n < 0 || (size_t)n >= len || s[n] != '/')
		return -1;
	m = digits(s + n + 1, len - (size_t)n - 1, RL_MAX_PERIOD, &p->period);
	if (m < 0 || (size_t)(n + 1 + m) != len)
		return -1;
	return 1;
}

int rl_ip_subject(int family, const uint8_t ip[16], int prefix, char *out, size_t outlen)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	uint8_t a[16];
	char buf[INET6_ADDRSTRLEN];
	int i, n;

	if (family == 6 && memcmp(ip, mapped, sizeof(mapped)) == 0) {
		family = 4;
		ip += 12;
	}
	if (family == 4) {
		if (!inet_ntop(AF_INET, ip, buf, sizeof(buf)))
			return -1;
		n = snprintf(out, outlen, "%s", buf);
	} else if (family == 6) {
		if (prefix < 1 || prefix > 128)
			return -1;
		memcpy(a, ip, 16);
		for (i = 0; i < 16; i++) {
			int keep = prefix - i * 8;

			if (keep >= 8)
				continue;
			a[i] &= keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
		}
		if (!inet_ntop(AF_INET6, a, buf, sizeof(buf)))
			return -1;
		if (prefix == 128)
			n = snprintf(out, outlen, "%s", buf);
		else
			n = snprintf(out, outlen, "%s/%d", buf, prefix);
	} else {
		return -1;
	}
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	return n;
}

int rl_key_build(char *out, size_t outlen, enum rl_kind kind, const char *id,
                 size_t idlen, const struct rl_policy *p)
{
	int n;

	if (idlen > (size_t)RL_KEY_MAX)
		return -1;
	n = snprintf(out, outlen, "spogate:rl:%s:%.*s:%lld/%lld", kind == RL_USER ? "u" : "ip",
	             (int)idlen, id, (long long)p->limit, (long long)p->period);
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	return n;
}

static int64_t ms_to_s_up(int64_t ms)
{
	return ms <= 0 ? 0 : (ms + 999) / 1000;
}

void rl_outcome_pick(int allowed, const struct rl_policy *pol,
                     const struct rl_key_result *res, int n, struct rl_outcome *out)
{
	int i, best = 0;

	for (i = 1; i < n; i++) {
		const struct rl_key_result *a = &res[i], *b = &res[best];

		if (!allowed) {
			if (a->retry_ms > b->retry_ms)
				best = i;
		} else if (a->remaining < b->remaining ||
		           (a->remaining == b->remaining && a->reset_ms > b->reset_ms)) {
			best = i;
		}
	}
	out->allowed = allowed;
	out->index = best;
	out->limit = pol[best].limit;
	out->remaining = res[best].remaining < 0 ? 0 : res[best].remaining;
	out->reset_s = ms_to_s_up(res[best].reset_ms);
	out->retry_after_s = 0;
	if (!allowed) {
		out->remaining = 0;
		out->retry_after_s = ms_to_s_up(res[best].retry_ms);
		if (out->retry_after_s < 1)
			out->retry_after_s = 1;
	}
}

/* FNV-1a: short keys, no adversary gain from collisions (a collision only
 * evicts an entry, entries are compared in full). */
uint32_t rl_key_hash(const char *k, size_t len)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (uint8_t)k[i];
		h *= 16777619u;
	}
	return h;
}

int rl_cache_init(struct rl_cache *c, unsigned entries)
{
	unsigned sets = 1;

	c->e = NULL;
	c->nsets = 0;
	if (entries == 0)
		return 0;
	while (sets * RL_CACHE_WAYS < entries)
		sets <<= 1;
	c->e = calloc((size_t)sets * RL_CACHE_WAYS, sizeof(*c->e));
	if (!c->e)
		return -1;
	c->nsets = sets;
	return 0;
}

void rl_cache_free(struct rl_cache *c)
{
	free(c->e);
	c->e = NULL;
	c->nsets = 0;
}

static struct rl_cache_entry *set_of(const struct rl_cache *c, uint32_t h)
{
	return &c->e[(size_t)(h & (c->nsets - 1)) * RL_CACHE_WAYS];
}

static int entry_is(const struct rl_cache_entry *e, uint32_t h, const char *key, size_t len)
{
	return e->hash == h && e->keylen == len && memcmp(e->key, key, len) == 0;
}

void rl_cache_put(struct rl_cache *c, const char *key, size_t len, double until,
                  double reset_at, int64_t limit, double now)
{
	struct rl_cache_entry *s, *victim = NULL;
	uint32_t h;
	int i;

	if (!c->nsets || len > RL_CACHE_KEY_MAX || until <= now)
		return;
	h = rl_key_hash(key, len);
	s = set_of(c, h);
	for (i = 0; i < RL_CACHE_WAYS && !victim; i++)
		if (entry_is(&s[i], h, key, len))
			victim = &s[i];       /* same key: refresh in place */
	for (i = 0; i < RL_CACHE_WAYS && !victim; i++)
		if (s[i].until <= now)
			victim = &s[i];
	if (!victim) {
		/* Every way is live: drop the one that expires first. */
		victim = &s[0];
		for (i = 1; i < RL_CACHE_WAYS; i++)
			if (s[i].until < victim->until)
				victim = &s[i];
	}
	victim->until = until;
	victim->reset_at = reset_at;
	victim->limit = limit;
	victim->hash = h;
	victim->keylen = (uint8_t)len;
	memcpy(victim->key, key, len);
}

const struct rl_cache_entry *rl_cache_get(const struct rl_cache *c, const char *key,
                                          size_t len, double now)
{
	const struct rl_cache_entry *s;
	uint32_t h;
	int i;

	if (!c->nsets || len > RL_CACHE_KEY_MAX)
		return NULL;
	h = rl_key_hash(key, len);
	s = set_of(c, h);
	for (i = 0; i < RL_CACHE_WAYS; i++)
		if (s[i].until > now && entry_is(&s[i], h, key, len))
			return &s[i];
	return NULL;
}
