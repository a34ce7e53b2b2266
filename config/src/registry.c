/* Registry data: where services live. Three forms are accepted: the YAML
 * of DESIGN.md, the same as JSON, and a Consul catalog export
 * (/v1/catalog/services: {"name": ["tag", ...], ...}). */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const top_keys[] = { "resolvers", "services", "defaults", NULL };
static const char *const resolver_keys[] = {
	"nameservers", "hold_valid", "hold_obsolete", "resolve_interval", "retry_interval",
	"resolve_retries", "accepted_payload_size", NULL,
};
static const char *const svc_keys[] = {
	"dns", "port", "srv", "servers", "grpc", "instances", "balance", "health",
	"protocol", "retries", "error_limit", "tls", "grpc_tls", NULL,
};
static const char *const tls_keys[] = { "ca_file", "sni", "verify", "cert_file", "key_file", NULL };
static const char *const grpc_tls_keys[] = { "ca_file", "cert_file", "key_file", "server_name", NULL };
static const char *const verify_modes[] = { "required", "none", NULL };
static const char *const default_keys[] = {
	"balance", "health", "instances", "retries", "error_limit", "protocol", NULL,
};
static const char *const health_keys[] = {
	"enabled", "path", "interval", "timeout", "rise", "fall", "expect_status", NULL,
};
static const char *const balances[] = {
	"roundrobin", "static-rr", "leastconn", "first", "source", "random", "uri", NULL,
};
static const char *const protocols[] = { "http", "h2", "grpc", NULL };

#define CONSUL_DEFAULT_NS "127.0.0.1:8600"

/* Service defaults that a service may override field by field. */
struct svc_defaults {
	const char *balance;
	struct gen_health health;
	long instances, retries, error_limit;
	int h2, grpc_backend;
};

static int valid_name(const char *s)
{
	if (!*s || strlen(s) > 100)
		return 0;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *s))
			return 0;
	return 1;
}

static int valid_dns_name(const char *s)
{
	if (!*s || strlen(s) > 253 || *s == '.' || *s == '-')
		return 0;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *s))
			return 0;
	return 1;
}

/* Turns a registry "grpc:" value into a gRPC target string:
 * "127.0.0.1:9081" -> "ipv4:127.0.0.1:9081", "[::1]:9" -> "ipv6:[::1]:9",
 * "host:port" -> "dns:///host:port"; values with a scheme are kept.
 * Returns an allocated string, or NULL when the value is not a target. */
static char *grpc_target(const char *v)
{
	static const char *const schemes[] = { "dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", NULL };
	const char *const *s;
	const char *colon, *p;
	int dotted = 1;
	size_t n;
	char *out;

	for (s = schemes; *s; s++)
		if (strncmp(v, *s, strlen(*s)) == 0)
			return strlen(v) > strlen(*s) ? strdup(v) : NULL;
	if (!gen_valid_hostport(v))
		return NULL;
	n = strlen(v) + 16;
	out = malloc(n);
	if (!out)
		return NULL;
	if (v[0] == '[') {
		snprintf(out, n, "ipv6:%s", v);
		return out;
	}
	colon = strrchr(v, ':');
	for (p = v; p < colon; p++)
		if (!strchr("0123456789.", *p))
			dotted = 0;
	snprintf(out, n, dotted ? "ipv4:%s" : "dns:///%s", v);
	return out;
}

static void load_health(struct gen_ctx *c, const struct gy_node *h, struct gen_health *out)
{
	int en = 1;

	if (!h || gy_is_null(h))
		return;
	if (h->kind == GY_SCALAR) {
		/* "health: false" turns checks off, "health: true" keeps defaults. */
		if (strcasecmp(h->str, "false") == 0)
			out->enabled = 0;
		else if (strcasecmp(h->str, "true") != 0)
			gen_err(c, h, "health: expected a mapping, true or false, got '%.100s'", h->str);
		return;
	}
	if (gen_expect_map(c, h, "health") < 0)
		return;
	gen_check_keys(c, h, "health", health_keys);
	if (gen_get_bool(c, h, "enabled", &en) > 0)
		out->enabled = en;
	if (gen_get_str(c, h, "path", &out->path) > 0) {
		size_t off;
		const char *why;
		if (gen_glob_check(out->path, &off, &why) < 0 || strchr(out->path, '*'))
			gen_err(c, gy_get(h, "path"), "path: '%.100s' is not a literal URL path", out->path);
	}
	gen_get_dur(c, h, "interval", 100, &out->interval_ms);
	gen_get_dur(c, h, "timeout", 1, &out->timeout_ms);
	gen_get_int(c, h, "rise", 1, 100, &out->rise);
	gen_get_int(c, h, "fall", 1, 100, &out->fall);
	gen_get_int(c, h, "expect_status", 100, 599, &out->expect_status);
}

static void load_defaults(struct gen_ctx *c, const struct gy_node *m, struct svc_defaults *df)
{
	int e;

	memset(df, 0, sizeof(*df));
	df->balance = "roundrobin";
	df->health.enabled = 1;
	df->health.path = "/health";
	df->health.interval_ms = 2000;
	df->health.rise = 2;
	df->health.fall = 3;
	df->health.expect_status = 200;
	df->instances = 10;
	df->retries = 2;
	df->error_limit = 10;
	if (!m || gy_is_null(m) || gen_expect_map(c, m, "defaults") < 0)
		return;
	gen_check_keys(c, m, "defaults", default_keys);
	if (gen_get_enum(c, m, "balance", balances, &e) > 0)
		df->balance = balances[e];
	load_health(c, gy_get(m, "health"), &df->health);
	gen_get_int(c, m, "instances", 1, 1000, &df->instances);
	gen_get_int(c, m, "retries", 0, 10, &df->retries);
	gen_get_int(c, m, "error_limit", 0, 1000, &df->error_limit);
	if (gen_get_enum(c, m, "protocol", protocols, &e) > 0) {
		df->h2 = e != 0;
		df->grpc_backend = e == 2;
	}
}

/* A path that goes into haproxy.cfg or agent.json, resolved against the
 * registry's directory; NULL (reported) when HAProxy could not read it. */
static char *tls_path(struct gen_ctx *c, const struct gy_node *m, const char *key, const char *base)
{
	const char *v = NULL;

	if (gen_get_str(c, m, key, &v) <= 0)
		return NULL;
	if (strpbrk(v, " \t\"'#\\")) {
		gen_err(c, gy_get(m, key), "%s: '%.200s' has a space or quote", key, v);
		return NULL;
	}
	return gen_resolve_path(base, v);
}

/* tls: {ca_file, sni, verify, cert_file, key_file}: the servers are
 * reached over TLS, verified unless verify: none says otherwise. HAProxy
 * 2.6 takes the client key from the certificate file or from
 * "<cert_file>.key" beside it, so key_file must be one of those. */
static void load_backend_tls(struct gen_ctx *c, const struct gy_node *m, struct gen_service *s,
			     const char *base)
{
	char *key;
	int e;

	if (!m || gy_is_null(m))
		return;
	if (m->kind == GY_SCALAR && strcasecmp(m->str, "false") == 0)
		return;
	s->tls.present = 1;
	if (m->kind == GY_SCALAR && strcasecmp(m->str, "true") == 0)
		return;
	if (gen_expect_map(c, m, "tls") < 0)
		return;
	gen_check_keys(c, m, "tls", tls_keys);
	s->tls.ca_file = tls_path(c, m, "ca_file", base);
	if (gen_get_str(c, m, "sni", &s->tls.sni) > 0 && !valid_dns_name(s->tls.sni))
		gen_err(c, gy_get(m, "sni"), "sni: '%.100s' is not a host name", s->tls.sni);
	if (gen_get_enum(c, m, "verify", verify_modes, &e) > 0)
		s->tls.verify_none = e == 1;
	if (s->tls.verify_none && s->tls.ca_file)
		gen_warn(c, gy_get(m, "ca_file"), "tls: ca_file is not used with verify: none");
	s->tls.cert_file = tls_path(c, m, "cert_file", base);
	key = tls_path(c, m, "key_file", base);
	if (key && !s->tls.cert_file) {
		gen_err(c, gy_get(m, "key_file"), "tls: key_file needs cert_file");
	} else if (key && strcmp(key, s->tls.cert_file) != 0) {
		size_t n = strlen(s->tls.cert_file);
		if (strncmp(key, s->tls.cert_file, n) != 0 || strcmp(key + n, ".key") != 0)
			gen_err(c, gy_get(m, "key_file"), "tls: key_file must be cert_file itself "
				"(certificate and key in one PEM) or '<cert_file>.key', where HAProxy "
				"looks for it");
	}
	free(key);
}

/* grpc_tls: {ca_file, cert_file, key_file, server_name} for the agent's
 * channel to this service (Auth or Authz). */
static void load_grpc_tls(struct gen_ctx *c, const struct gy_node *m, struct gen_service *s,
			  const char *base)
{
	if (!m || gy_is_null(m))
		return;
	if (gen_expect_map(c, m, "grpc_tls") < 0)
		return;
	s->grpc_tls.present = 1;
	gen_check_keys(c, m, "grpc_tls", grpc_tls_keys);
	s->grpc_tls.ca_file = tls_path(c, m, "ca_file", base);
	s->grpc_tls.cert_file = tls_path(c, m, "cert_file", base);
	s->grpc_tls.key_file = tls_path(c, m, "key_file", base);
	if (!s->grpc_tls.cert_file != !s->grpc_tls.key_file)
		gen_err(c, m, "grpc_tls: cert_file and key_file go together (client certificate)");
	if (gen_get_str(c, m, "server_name", &s->grpc_tls.server_name) > 0 &&
	    !valid_dns_name(s->grpc_tls.server_name))
		gen_err(c, gy_get(m, "server_name"), "server_name: '%.100s' is not a host name",
			s->grpc_tls.server_name);
}

static void load_service(struct gen_ctx *c, const struct gy_node *k, const struct gy_node *m,
			 const struct svc_defaults *df, struct gen_service *s, const char *base)
{
	char what[160];
	const char *grpc = NULL, *srv = NULL;
	struct gen_strs servers = { 0 };
	int kinds = 0, e;
	size_t i;

	s->name = k->str;
	s->at = k;
	s->balance = df->balance;
	s->health = df->health;
	s->instances = df->instances;
	s->retries = df->retries;
	s->error_limit = df->error_limit;
	s->h2 = df->h2;
	s->grpc_backend = df->grpc_backend;
	snprintf(what, sizeof(what), "services.%.100s", k->str);
	if (!valid_name(k->str))
		gen_err(c, k, "service name '%.100s' has a character outside [A-Za-z0-9._-]", k->str);
	if (gen_expect_map(c, m, what) < 0)
		return;
	gen_check_keys(c, m, what, svc_keys);

	if (gen_get_str(c, m, "dns", &s->dns) > 0) {
		kinds++;
		s->kind = GEN_SVC_DNS;
		if (!valid_dns_name(s->dns))
			gen_err(c, gy_get(m, "dns"), "dns: '%.100s' is not a host name", s->dns);
	}
	if (gen_get_str(c, m, "srv", &srv) > 0) {
		kinds++;
		s->kind = GEN_SVC_SRV;
		s->srv = strdup(srv);
		if (srv[0] != '_' || !valid_dns_name(srv))
			gen_err(c, gy_get(m, "srv"), "srv: '%.100s' is not an SRV name (expected "
				"_service._proto.domain)", srv);
	}
	if (gen_get_strs(c, m, "servers", &servers) > 0) {
		kinds++;
		s->kind = GEN_SVC_STATIC;
		s->servers = servers.v;
		s->nservers = servers.n;
		servers.v = NULL;
		if (s->nservers == 0)
			gen_err(c, gy_get(m, "servers"), "servers: the list is empty");
		for (i = 0; i < s->nservers; i++)
			if (!gen_valid_hostport(s->servers[i]))
				gen_err(c, gy_get(m, "servers")->kids[i], "servers: '%.100s' is not "
					"host:port", s->servers[i]);
	}
	free(servers.v);
	if (kinds > 1)
		gen_err(c, k, "%s: use only one of dns, srv and servers", what);
	if (gen_get_int(c, m, "port", 1, 65535, &s->port) > 0 && s->kind != GEN_SVC_DNS)
		gen_err(c, gy_get(m, "port"), "port: only used with dns: (srv: records and "
			"servers: entries carry their own ports)");
	if (s->kind == GEN_SVC_DNS && !s->port)
		gen_err(c, gy_get(m, "dns"), "%s: dns: needs a port", what);
	if (gen_get_str(c, m, "grpc", &grpc) > 0) {
		s->grpc = grpc_target(grpc);
		if (!s->grpc)
			gen_err(c, gy_get(m, "grpc"), "grpc: '%.100s' is not a gRPC target (expected "
				"host:port or a target such as dns:///name:port)", grpc);
	}
	if (!kinds && !grpc)
		gen_err(c, k, "%s: needs dns, srv, servers or grpc", what);
	gen_get_int(c, m, "instances", 1, 1000, &s->instances);
	if (gen_get_enum(c, m, "balance", balances, &e) > 0)
		s->balance = balances[e];
	load_health(c, gy_get(m, "health"), &s->health);
	if (gen_get_enum(c, m, "protocol", protocols, &e) > 0) {
		s->h2 = e != 0;
		s->grpc_backend = e == 2;
	}
	gen_get_int(c, m, "retries", 0, 10, &s->retries);
	load_backend_tls(c, gy_get(m, "tls"), s, base);
	load_grpc_tls(c, gy_get(m, "grpc_tls"), s, base);
	if (s->grpc_tls.present && !s->grpc)
		gen_err(c, gy_get(m, "grpc_tls"), "grpc_tls: the service has no grpc: target");
	gen_get_int(c, m, "error_limit", 0, 1000, &s->error_limit);
}

static int svc_cmp(const void *a, const void *b)
{
	return strcmp(((const struct gen_service *)a)->name, ((const struct gen_service *)b)->name);
}

/* A Consul export is a mapping whose values are all lists of tags. */
static int looks_like_consul(const struct gy_node *root)
{
	size_t i;

	if (root->kind != GY_MAP || gy_map_size(root) == 0 || gy_get(root, "services") ||
	    gy_get(root, "resolvers") || gy_get(root, "defaults"))
		return 0;
	for (i = 0; i < gy_map_size(root); i++)
		if (gy_map_val(root, i)->kind != GY_SEQ)
			return 0;
	return 1;
}

static void load_consul(struct gen_ctx *c, struct gen_registry *r, const struct gen_opts *o,
			const struct svc_defaults *df)
{
	size_t i, j, n = gy_map_size(r->root);

	r->consul = 1;
	r->consul_ns = strdup(o->consul_dns ? o->consul_dns : CONSUL_DEFAULT_NS);
	if (r->consul_ns) {
		r->nameservers = calloc(2, sizeof(*r->nameservers));
		if (r->nameservers) {
			r->nameservers[0] = r->consul_ns;
			r->nnameservers = 1;
		}
	}
	r->services = calloc(n + 1, sizeof(*r->services));
	if (!r->services)
		return;
	for (i = 0; i < n; i++) {
		const struct gy_node *k = gy_map_key(r->root, i), *tags = gy_map_val(r->root, i);
		struct gen_service *s = &r->services[r->nservices];
		size_t len = k->len + 32;

		if (!valid_dns_name(k->str) || strchr(k->str, '.') || strchr(k->str, '_')) {
			gen_err(c, k, "Consul service '%.100s' is not a DNS label", k->str);
			continue;
		}
		s->name = k->str;
		s->at = k;
		s->kind = GEN_SVC_SRV;
		s->srv = malloc(len);
		if (s->srv)
			snprintf(s->srv, len, "_%s._tcp.service.consul", k->str);
		s->balance = df->balance;
		s->health = df->health;
		s->instances = df->instances;
		s->retries = df->retries;
		s->error_limit = df->error_limit;
		/* Tags may name a gRPC port ("grpc-port=9081") for the agent's
		 * Auth/Authz clients. The name is Consul's, so it resolves through
		 * Consul's DNS (--consul-dns), in gRPC's authority form:
		 * dns://<consul-dns>/<name>.service.consul:<port>; dns:/// would
		 * ask the system resolver, which knows no .consul. */
		for (j = 0; j < tags->n; j++) {
			const struct gy_node *t = tags->kids[j];
			char *end;
			long port;
			if (t->kind != GY_SCALAR || strncmp(t->str, "grpc-port=", 10) != 0)
				continue;
			port = strtol(t->str + 10, &end, 10);
			if (*end || port < 1 || port > 65535 || t->str[10] < '0' || t->str[10] > '9') {
				gen_err(c, t, "tag '%.100s': grpc-port needs a port number", t->str);
				continue;
			}
			free(s->grpc);
			len = k->len + 64 + (r->consul_ns ? strlen(r->consul_ns) : 0);
			s->grpc = malloc(len);
			if (s->grpc)
				snprintf(s->grpc, len, "dns://%s/%s.service.consul:%ld",
				         r->consul_ns ? r->consul_ns : "", k->str, port);
		}
		r->nservices++;
	}
}

int gen_registry_load(struct gen_registry *r, const struct gen_opts *o, struct gen_diags *d)
{
	struct gen_ctx cx = { d, o->registry_file }, *c = &cx;
	const struct gy_node *m, *svcs;
	struct svc_defaults df;
	size_t errs = d->errors, i;
	char base[4096];

	memset(r, 0, sizeof(*r));
	r->file = o->registry_file;
	r->hold_valid_ms = 10000;
	r->hold_obsolete_ms = 30000;
	r->resolve_ms = 1000;
	r->retry_ms = 1000;
	r->resolve_retries = 3;
	r->payload_size = 8192;
	if (gy_load_file(o->registry_file, d, &r->root) < 0)
		return -1;
	gen_base_dir(o->registry_file, o->base_dir, base, sizeof(base));
	if (gen_expect_map(c, r->root, "the registry file") < 0)
		return -1;
	if (looks_like_consul(r->root)) {
		load_defaults(c, NULL, &df);
		load_consul(c, r, o, &df);
	} else {
		gen_check_keys(c, r->root, "the registry", top_keys);
		load_defaults(c, gy_get(r->root, "defaults"), &df);
		m = gy_get(r->root, "resolvers");
		if (m && !gy_is_null(m) && gen_expect_map(c, m, "resolvers") == 0) {
			struct gen_strs ns = { 0 };
			gen_check_keys(c, m, "resolvers", resolver_keys);
			if (gen_get_strs(c, m, "nameservers", &ns) > 0) {
				for (i = 0; i < ns.n; i++)
					if (!gen_valid_hostport(ns.v[i]))
						gen_err(c, ns.at->kids[i], "nameservers: '%.100s' is not "
							"ip:port", ns.v[i]);
				r->nameservers = ns.v;
				r->nnameservers = ns.n;
			} else {
				free(ns.v);
			}
			gen_get_dur(c, m, "hold_valid", 1000, &r->hold_valid_ms);
			gen_get_dur(c, m, "hold_obsolete", 0, &r->hold_obsolete_ms);
			gen_get_dur(c, m, "resolve_interval", 100, &r->resolve_ms);
			gen_get_dur(c, m, "retry_interval", 100, &r->retry_ms);
			gen_get_int(c, m, "resolve_retries", 1, 100, &r->resolve_retries);
			gen_get_int(c, m, "accepted_payload_size", 512, 8192, &r->payload_size);
		}
		svcs = gy_get(r->root, "services");
		if (!svcs || gy_is_null(svcs)) {
			gen_err(c, r->root, "registry: missing required key 'services'");
		} else if (gen_expect_map(c, svcs, "services") == 0) {
			r->services = calloc(gy_map_size(svcs) + 1, sizeof(*r->services));
			if (!r->services)
				return -1;
			for (i = 0; i < gy_map_size(svcs); i++)
				load_service(c, gy_map_key(svcs, i), gy_map_val(svcs, i), &df,
					     &r->services[r->nservices++], base);
		}
	}
	if (r->nservices > 1)
		qsort(r->services, r->nservices, sizeof(*r->services), svc_cmp);
	return d->errors > errs ? -1 : 0;
}

const struct gen_service *gen_registry_find(const struct gen_registry *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nservices; i++)
		if (strcmp(r->services[i].name, name) == 0)
			return &r->services[i];
	return NULL;
}

void gen_registry_free(struct gen_registry *r)
{
	size_t i;

	for (i = 0; i < r->nservices; i++) {
		free(r->services[i].srv);
		free(r->services[i].grpc);
		free(r->services[i].servers);
		free(r->services[i].tls.ca_file);
		free(r->services[i].tls.cert_file);
		free(r->services[i].grpc_tls.ca_file);
		free(r->services[i].grpc_tls.cert_file);
		free(r->services[i].grpc_tls.key_file);
	}
	free(r->services);
	free(r->nameservers);
	free(r->consul_ns);
	gy_free(r->root);
	memset(r, 0, sizeof(*r));
}
