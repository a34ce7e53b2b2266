/* The generator's model of its two inputs, the gateway YAML and the
 * registry data, after validation. Strings point into the gy trees, which
 * live as long as the model (gen_gateway_free/gen_registry_free drop both). */
#ifndef GEN_MODEL_H
#define GEN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "diag.h"
#include "gy.h"

/* HTTP methods as bits, in the canonical order used for output. */
enum gen_method {
	GEN_M_GET = 1 << 0,
	GEN_M_HEAD = 1 << 1,
	GEN_M_POST = 1 << 2,
	GEN_M_PUT = 1 << 3,
	GEN_M_PATCH = 1 << 4,
	GEN_M_DELETE = 1 << 5,
	GEN_M_OPTIONS = 1 << 6,
	GEN_M_TRACE = 1 << 7,
	GEN_M_CONNECT = 1 << 8,
};
#define GEN_M_COUNT 9
#define GEN_M_ALL ((1u << GEN_M_COUNT) - 1)

extern const char *const gen_method_names[GEN_M_COUNT + 1];

/* A rate policy; limit == 0 means none. */
struct gen_rate {
	long limit, period;
	const struct gy_node *at;
};

struct gen_hdr {
	const char *name, *value;
	const struct gy_node *at;
};

struct gen_hdr_ops {
	struct gen_hdr *set;
	size_t nset;
	const char **remove;
	size_t nremove;
};

struct gen_perm {
	unsigned method;   /* one GEN_M_* bit */
	const char *perm;
	const struct gy_node *at;
};

struct gen_route {
	const struct gy_node *at;
	size_t index;               /* position in the YAML list */
	const char *name;
	const char *path;
	const struct gy_node *path_at;
	const char *service;
	const struct gy_node *service_at;
	int auth_required;
	const char *permission;     /* for methods without a per-method entry */
	struct gen_perm *perms;
	size_t nperms;
	unsigned methods;           /* GEN_M_* set; 0 = all */
	const struct gy_node *methods_at;
	const char *strip_prefix;
	const struct gy_node *strip_at;
	struct gen_hdr_ops req, resp;
	int rl_disabled;
	struct gen_rate rl_user, rl_ip;
	int64_t timeout_ms;         /* 0 = the backend's default */
	/* Host routing: lower-cased names; "*.example.com" is one label. */
	char **hosts;               /* owned, lower-cased */
	size_t nhosts;
	const struct gy_node *hosts_at;
	int host_exact, host_wild;  /* has exact / wildcard entries */

	/* Derived by the validator. */
	int glob_ok;
	int exact;                  /* no wildcard at all */
	size_t lit_len;             /* literal prefix length (before a wildcard) */
	size_t nwild;
	int id;                     /* 1-based, in matching order */
	struct gen_rate eff_user, eff_ip;
	int needs_agent;
};

enum gen_auth_mode {
	GEN_AUTH_NONE = 0,
	GEN_AUTH_JWT = 1,
	GEN_AUTH_SERVICE = 2,
};

enum gen_authz_mode {
	GEN_AUTHZ_NONE = 0,
	GEN_AUTHZ_CLAIMS = 1,
	GEN_AUTHZ_SERVICE = 2,
};

struct gen_claim {
	const char *claim;
	char var[64];
	const char *header;
	const struct gy_node *at;
};

struct gen_pem_key {
	const char *kid, *alg;
	char *file;                 /* resolved, owned */
};

/* Rate-limit header sets (gateway.rate_limiting.headers). */
#define GEN_RLH_RATELIMIT  1u   /* RateLimit-Policy + RateLimit (IETF draft 09/10) */
#define GEN_RLH_LEGACY     2u   /* RateLimit-Limit/-Remaining/-Reset (older drafts) */
#define GEN_RLH_X          4u   /* X-RateLimit-Limit/-Remaining/-Reset */
#define GEN_RLH_ALL        7u

struct gen_strs {
	const char **v;
	size_t n;
	const struct gy_node *at;
};

struct gen_user {
	char *name;                 /* owned */
	char *hash;                 /* owned: crypt(3) hash */
	const struct gy_node *at;
};

struct gen_gateway {
	struct gy_node *root;
	const char *file;

	long port;
	const char *bind;
	long nbthread, maxconn;
	int64_t t_connect, t_client, t_server, t_http_request, t_keep_alive, t_queue, t_check;
	const char *log_target;     /* "stdout" or an address/path for syslog */
	const char *log_facility;
	struct gen_strs trusted_proxies;    /* empty: the client is src */

	struct gen_route *routes;
	size_t nroutes;
	struct gen_route **order;   /* routes in matching order */

	struct {
		int present, enabled;
		struct gen_rate per_user, per_ip;
		int redis_error_allow;
		int shadow;
		long ipv6_prefix;
		unsigned headers;       /* GEN_RLH_* sets sent on responses */
		int lease;              /* mode: lease (else exact) */
	} rl;

	struct {
		int present;
		const struct gy_node *at;
		struct gen_strs origins, methods, headers, exposed;
		int any_origin;
		int credentials;
		const struct gy_node *credentials_at;
		long max_age;
	} cors;

	struct {
		int present;
		const struct gy_node *at;
		enum gen_auth_mode mode;
		const char *issuer;
		struct gen_strs audiences, algorithms;
		char *jwks_file;        /* resolved, owned */
		const struct gy_node *jwks_at;
		const char *jwks_uri;   /* keys over HTTPS, or found through */
		const char *oidc_issuer;        /* OIDC discovery */
		char *jwks_ca_file;     /* resolved, owned */
		int64_t jwks_refresh_ms;
		struct gen_pem_key *pem_keys;
		size_t npem_keys;
		int64_t leeway_ms, timeout_ms, cache_ttl_ms, neg_cache_ttl_ms;
		long max_token_bytes;
		int require_exp;        /* tokens without exp are refused */
		long cache_size;        /* entries per worker */
		int64_t cache_bytes;    /* every worker's token cache together */
		const char *service;
		const struct gy_node *service_at;
		struct gen_claim *claims;
		size_t nclaims;
	} auth;

	struct {
		int present;
		const struct gy_node *at;
		enum gen_authz_mode mode;
		const char *service;
		const struct gy_node *service_at;
		int64_t cache_ttl_ms, timeout_ms;
		int on_error_allow;
	} authz;

	struct {
		const char *address;    /* the first agent: agent.json's listen */
		struct gen_strs more;   /* every agent when address is a list */
		long threads;           /* 0 = agent default (cores) */
		int64_t timeout_ms;
		int on_error_allow;
		long max_frame_size;
		const char *log_level;
	} agent;

	struct {
		int present;
		const char *address, *username, *password;
		char *password_file;    /* resolved, owned; the agent reads it */
		int64_t timeout_ms;
		long db;
		struct gen_strs cluster;    /* seeds of a Redis Cluster; empty: one Redis */
		const char *sentinel_master;    /* Redis Sentinel: the master's name */
		struct gen_strs sentinels;      /* ... and the sentinels' addresses */
		const char *sentinel_username, *sentinel_password;  /* AUTH to them */
		char *sentinel_password_file;   /* resolved, owned; the agent reads it */
	} redis;

	struct {
		const char *stats, *metrics, *socket;
		struct gen_user *users;     /* basic auth for stats and /metrics */
		size_t nusers;
	} admin;

	/* TLS termination (gateway.tls); absent: cleartext only. */
	struct {
		int present;
		const struct gy_node *at;
		long port;
		char **certs;               /* resolved, owned */
		size_t ncerts;
		const char *min_version;
		const char *ciphers, *ciphersuites;
		struct gen_strs alpn;       /* empty: h2,http/1.1 */
		int redirect_http;
		long redirect_code;
		int64_t hsts_ms;            /* 0 = no HSTS */
		int hsts_subdomains;
		char *client_ca;            /* resolved, owned; NULL = no mTLS */
	} tls;
};


enum gen_svc_kind {
	GEN_SVC_NONE = 0,     /* gRPC only: no HTTP backend */
	GEN_SVC_DNS = 1,      /* A/AAAA name + port */
	GEN_SVC_SRV = 2,      /* SRV record */
	GEN_SVC_STATIC = 3,   /* servers: [host:port, ...] */
};

struct gen_health {
	int enabled;
	const char *path;
	int64_t interval_ms, timeout_ms;
	long rise, fall, expect_status;
};

struct gen_service {
	const char *name;
	const struct gy_node *at;
	enum gen_svc_kind kind;
	const char *dns;
	long port;
	char *srv;                /* owned (built for Consul names) */
	const char **servers;
	size_t nservers;
	char *grpc;               /* gRPC target string, owned */
	long instances;
	const char *balance;
	struct gen_health health;
	int h2;                   /* protocol: grpc|h2 -> proto h2 */
	int grpc_backend;         /* protocol: grpc */
	struct {
		int present, verify_none;
		char *ca_file, *cert_file;   /* resolved, owned */
		const char *sni;
	} tls;                    /* HTTP servers over TLS */
	struct {
		int present;
		char *ca_file, *cert_file, *key_file;   /* resolved, owned */
		const char *server_name;
	} grpc_tls;               /* the agent's channel (auth/authz services) */
	long retries, error_limit;
	int used;                 /* referenced by a route */
};

struct gen_registry {
	struct gy_node *root;
	const char *file;
	int consul;
	struct gen_service *services;   /* sorted by name */
	size_t nservices;
	const char **nameservers;
	size_t nnameservers;
	char *consul_ns;                /* owned, for a Consul export */
	int64_t hold_valid_ms, hold_obsolete_ms, resolve_ms, retry_ms;
	long resolve_retries, payload_size;
};

/* Options that do not come from the YAML files. */
struct gen_opts {
	const char *gateway_file, *registry_file;
	const char *base_dir;       /* relative paths in the YAML; default: its dir */
	const char *haproxy_dir;    /* where spoe.conf will be at runtime */
	const char *run_dir;        /* stats socket and server-state directory */
	const char *consul_dns;     /* nameserver for a Consul export */
	int haproxy_version;        /* oldest HAProxy to run on, major*10+minor
	                             * (0: GEN_HAPROXY_OLDEST) */
};

/* The oldest HAProxy spogate supports: what the output runs on by default. */
#define GEN_HAPROXY_OLDEST 26

/* Type-checked access to gy trees, reporting to ctx.d. */
struct gen_ctx {
	struct gen_diags *d;
	const char *file;
};

void gen_err(struct gen_ctx *c, const struct gy_node *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void gen_warn(struct gen_ctx *c, const struct gy_node *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Each getter returns 1 when the key is present and valid (and stores the
 * value), 0 when absent (out untouched), -1 when present but invalid
 * (reported). what names the enclosing section in messages. */
int gen_expect_map(struct gen_ctx *c, const struct gy_node *n, const char *what);
void gen_check_keys(struct gen_ctx *c, const struct gy_node *m, const char *what,
		    const char *const *allowed);
int gen_get_str(struct gen_ctx *c, const struct gy_node *m, const char *key, const char **out);
int gen_get_bool(struct gen_ctx *c, const struct gy_node *m, const char *key, int *out);
int gen_get_int(struct gen_ctx *c, const struct gy_node *m, const char *key,
		long min, long max, long *out);
int gen_get_dur(struct gen_ctx *c, const struct gy_node *m, const char *key,
		int64_t min_ms, int64_t *out);
int gen_get_rate(struct gen_ctx *c, const struct gy_node *m, const char *key, struct gen_rate *out);
int gen_get_enum(struct gen_ctx *c, const struct gy_node *m, const char *key,
		 const char *const *values, int *out);
/* A list of strings (a single string is refused: lists are explicit). The
 * array is allocated (caller frees .v); the strings are the tree's. */
int gen_get_strs(struct gen_ctx *c, const struct gy_node *m, const char *key, struct gen_strs *out);
int gen_scalar_str(struct gen_ctx *c, const struct gy_node *n, const char *what, const char **out);

/* "127.0.0.1:8080", "[::1]:80", "host:port": checks the form and the port. */
int gen_valid_hostport(const char *s);
/* An agent address: host:port, or "unix:/absolute/path" (at most
 * ADDR_UNIX_MAX bytes, of letters, digits and "/._+-@" only, since the path
 * goes into haproxy.cfg as it is). */
int gen_valid_agent_addr(const char *s);
/* Parses an HTTP method name (case-sensitive); returns its bit or 0. */
unsigned gen_method_bit(const char *s);

/* Loads and validates; return 0 when no error was reported. The structure
 * is filled as far as possible even on error, and must be freed. */
int gen_gateway_load(struct gen_gateway *g, const struct gen_opts *o, struct gen_diags *d);
void gen_gateway_free(struct gen_gateway *g);
int gen_registry_load(struct gen_registry *r, const struct gen_opts *o, struct gen_diags *d);
void gen_registry_free(struct gen_registry *r);

/* Checks what needs both inputs (route -> service, auth/authz services),
 * marks used services and derives per-route values. */
int gen_link(struct gen_gateway *g, struct gen_registry *r, struct gen_diags *d);

const struct gen_service *gen_registry_find(const struct gen_registry *r, const char *name);

/* Makes path absolute against base. Returns an allocated string or NULL. */
char *gen_resolve_path(const char *base, const char *path);
/* The directory relative paths of file are taken from: override when
 * given (--base-dir), else file's own directory, made absolute. */
void gen_base_dir(const char *file, const char *override, char *out, size_t n);

/* Glob helpers, exposed for the tests. */
int gen_glob_check(const char *path, size_t *err_off, const char **why);
int gen_glob_covers(const char *a, const char *b);

#endif
