/* Renders haproxy.cfg. The request flow follows DESIGN.md: strip identity
 * headers, answer CORS preflights, match the route, ask the agent, deny or
 * set identity headers, transform, and pick the backend. Every decision
 * keys on txn.rid, the matched route's number, so that ACLs are evaluated
 * once per request. */
#include "gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FE "gateway"

void gen_fmt_dur(char *out, size_t n, int64_t ms)
{
	if (ms % 86400000 == 0 && ms >= 86400000)
		snprintf(out, n, "%lldd", (long long)(ms / 86400000));
	else if (ms % 3600000 == 0 && ms >= 3600000)
		snprintf(out, n, "%lldh", (long long)(ms / 3600000));
	else if (ms % 60000 == 0 && ms >= 60000)
		snprintf(out, n, "%lldm", (long long)(ms / 60000));
	else if (ms % 1000 == 0 && ms >= 1000)
		snprintf(out, n, "%llds", (long long)(ms / 1000));
	else
		snprintf(out, n, "%lldms", (long long)ms);
}

static const char *dur(char *tmp, size_t n, int64_t ms)
{
	gen_fmt_dur(tmp, n, ms);
	return tmp;
}

/* Writes s as a double-quoted HAProxy word that is also a log-format
 * string: '"', '\\' and '$' are escaped for the config parser, '%' is
 * doubled for the log-format parser. */
static void put_lf_quoted(struct dynbuf *b, const char *s)
{
	dynbuf_puts(b, "\"");
	for (; *s; s++) {
		if (*s == '"' || *s == '\\' || *s == '$') {
			char e[2] = { '\\', *s };
			dynbuf_add(b, e, 2);
		} else if (*s == '%') {
			dynbuf_puts(b, "%%");
		} else {
			dynbuf_add(b, s, 1);
		}
	}
	dynbuf_puts(b, "\"");
}

/* Writes a literal for a path pattern of a regex: characters that are
 * special in PCRE go in a bracket class, which needs no backslash (the
 * config parser would eat it). */
static void put_regex_literal(struct dynbuf *b, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strchr(".+$^()[]{}|?\\", s[i])) {
			char e[3] = { '[', s[i], ']' };
			dynbuf_add(b, e, 3);
		} else {
			dynbuf_add(b, &s[i], 1);
		}
	}
}

/* Writes a regex that matches header name s however a client spells it:
 * letters in either case, and '-' or '_' for each '-' (CGI frameworks read
 * X_User_ID and X-User-ID both as HTTP_X_USER_ID). prefix: s is a prefix
 * (it ends with '-'); otherwise the whole name. */
static void put_name_regex(struct dynbuf *b, const char *s, int prefix)
{
	dynbuf_puts(b, "'^");
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '-' || ch == '_') {
			dynbuf_puts(b, "[-_]");
		} else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') {
			char e[4] = { '[', (char)(ch & ~0x20), (char)(ch | 0x20), ']' };
			dynbuf_add(b, e, 4);
		} else {
			put_regex_literal(b, s, 1);
		}
	}
	dynbuf_puts(b, prefix ? "'" : "$'");
}

/* Writes "{ var(txn.rid) -m int 1 2 }" for the routes in ids. */
static void put_rid_cond(struct dynbuf *b, const int *ids, size_t n)
{
	size_t i;

	dynbuf_puts(b, "{ var(txn.rid) -m int");
	for (i = 0; i < n; i++)
		dynbuf_printf(b, " %d", ids[i]);
	dynbuf_puts(b, " }");
}

static void put_methods(struct dynbuf *b, unsigned mask, const char *sep)
{
	int i, first = 1;

	for (i = 0; i < GEN_M_COUNT; i++) {
		if (mask & (1u << i)) {
			dynbuf_printf(b, "%s%s", first ? "" : sep, gen_method_names[i]);
			first = 0;
		}
	}
}

/* The ACL lines that match route r's path glob. */
static void put_route_acl(struct dynbuf *b, const struct gen_route *r)
{
	const char *p = r->path;
	size_t n = strlen(p);
	int tail = n >= 3 && strcmp(p + n - 3, "/**") == 0;
	size_t body = tail ? n - 3 : n;

	if (strcmp(p, "/**") == 0) {
		dynbuf_printf(b, "    acl route_%d path_beg /\n", r->id);
		return;
	}
	if (!memchr(p, '*', body)) {
		/* Literal, or a literal prefix followed by a final double star. */
		dynbuf_printf(b, "    acl route_%d path '%.*s'\n", r->id, (int)body, p);
		if (tail)
			dynbuf_printf(b, "    acl route_%d path_beg '%.*s/'\n", r->id, (int)body, p);
		return;
	}
	dynbuf_printf(b, "    acl route_%d path_reg '^", r->id);
	while (body > 0) {
		const char *star = memchr(p, '*', body);
		size_t lit = star ? (size_t)(star - p) : body;
		put_regex_literal(b, p, lit);
		if (!star)
			break;
		dynbuf_puts(b, "[^/]+");
		body -= lit + 1;
		p = star + 1;
	}
	dynbuf_printf(b, "%s$'\n", tail ? "(/.*)?" : "");
}

/* 414 and 431 (an over-long URI or header block, answered by 3.2's
 * HTTP/1 parser) take an errorfile from 3.1 on; 2.6 and 3.0 refuse the
 * line, so it sits in an ".if version_atleast(3.1)" block unless
 * --haproxy-version says the output runs on 3.1+ only. */
const struct gen_error_page gen_error_pages[] = {
	{ 400, "Bad Request", "bad_request", 0 },
	{ 408, "Request Timeout", "request_timeout", 0 },
	{ 413, "Payload Too Large", "payload_too_large", 0 },
	{ 414, "URI Too Long", "uri_too_long", 31 },
	{ 431, "Request Header Fields Too Large", "request_header_fields_too_large", 31 },
	{ 500, "Internal Server Error", "internal_error", 0 },
	{ 502, "Bad Gateway", "bad_gateway", 0 },
	{ 503, "Service Unavailable", "service_unavailable", 0 },
	{ 504, "Gateway Timeout", "gateway_timeout", 0 },
};
const size_t gen_nerror_pages = sizeof(gen_error_pages) / sizeof(gen_error_pages[0]);

void gen_error_page_render(const struct gen_error_page *p, struct dynbuf *b)
{
	char body[96];
	int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}", p->error);

	dynbuf_printf(b, "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
		      "cache-control: no-cache\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s",
		      p->code, p->reason, n, body);
}

static void emit_global(const struct gen_gateway *g, const struct gen_opts *o, struct dynbuf *b)
{
	char t[32];
	size_t i;
	const char *run_dir = o->run_dir ? o->run_dir : "/run/spogate";

	dynbuf_puts(b, "global\n    master-worker\n"
		    "    # normalize-uri (the frontend's dot-segment defence) is experimental in 2.6.\n"
		    "    expose-experimental-directives\n");
	if (g->admin.socket)
		dynbuf_printf(b, "    stats socket %s mode 600 level admin expose-fd listeners\n",
			      g->admin.socket);
	else
		dynbuf_printf(b, "    stats socket %s/haproxy.sock mode 600 level admin expose-fd listeners\n",
			      run_dir);
	dynbuf_puts(b, "    stats timeout 30s\n");
	/* Written through the stats socket before a reload ("show servers
	 * state"), so that DNS-discovered servers keep their addresses and
	 * states in the new worker instead of starting as (none). */
	dynbuf_printf(b, "    server-state-file %s/server-state\n", run_dir);
	dynbuf_printf(b, "    nbthread %ld\n", g->nbthread);
	/* Without maxconn HAProxy sizes itself from the file-descriptor limit,
	 * which is what works everywhere (containers often cap it). */
	if (g->maxconn)
		dynbuf_printf(b, "    maxconn %ld\n", g->maxconn);
	if (strcmp(g->log_target, "stdout") == 0 || strcmp(g->log_target, "stderr") == 0)
		dynbuf_printf(b, "    log %s format raw %s\n", g->log_target, g->log_facility);
	else
		dynbuf_printf(b, "    log %s %s\n", g->log_target, g->log_facility);

	/* idle-close-on-response: on a reload the old worker answers the next
	 * request of an idle keep-alive connection (with "connection: close")
	 * instead of closing it under a client that may be sending one. */
	dynbuf_puts(b, "\ndefaults\n    mode http\n    log global\n    option dontlognull\n"
		    "    option idle-close-on-response\n"
		    "    load-server-state-from-file global\n");
	dynbuf_printf(b, "    timeout connect %s\n", dur(t, sizeof(t), g->t_connect));
	dynbuf_printf(b, "    timeout client %s\n", dur(t, sizeof(t), g->t_client));
	dynbuf_printf(b, "    timeout server %s\n", dur(t, sizeof(t), g->t_server));
	dynbuf_printf(b, "    timeout http-request %s\n", dur(t, sizeof(t), g->t_http_request));
	dynbuf_printf(b, "    timeout http-keep-alive %s\n", dur(t, sizeof(t), g->t_keep_alive));
	dynbuf_printf(b, "    timeout queue %s\n", dur(t, sizeof(t), g->t_queue));
	dynbuf_printf(b, "    timeout check %s\n", dur(t, sizeof(t), g->t_check));
	/* HAProxy's own errors as JSON, like the gateway's; a page that only
	 * newer versions know goes in a block that older ones skip, so the
	 * default output runs everywhere and each version gets all it can. */
	for (i = 0; i < gen_nerror_pages; i++) {
		const struct gen_error_page *e = &gen_error_pages[i];
		int guard = e->min_haproxy > (o->haproxy_version ? o->haproxy_version
		                                                 : GEN_HAPROXY_OLDEST);

		if (guard)
			dynbuf_printf(b, ".if version_atleast(%d.%d)\n", e->min_haproxy / 10,
				      e->min_haproxy % 10);
		dynbuf_printf(b, "    errorfile %d %s/errors/%d.http\n", e->code,
			      o->haproxy_dir ? o->haproxy_dir : ".", e->code);
		if (guard)
			dynbuf_puts(b, ".endif\n");
	}
}

static int any_agent(const struct gen_gateway *g)
{
	size_t i;

	for (i = 0; i < g->nroutes; i++)
		if (g->routes[i].needs_agent && g->routes[i].id)
			return 1;
	return 0;
}

/* Collects the ids of routes for which pred(route, arg) holds. */
static size_t collect(const struct gen_gateway *g, int *ids,
		      int (*pred)(const struct gen_route *, const void *), const void *arg)
{
	size_t i, n = 0;

	for (i = 0; i < g->nroutes; i++)
		if (g->order[i] && pred(g->order[i], arg))
			ids[n++] = g->order[i]->id;
	return n;
}

static int p_agent(const struct gen_route *r, const void *arg)
{
	(void)arg;
	return r->needs_agent;
}

static int p_service(const struct gen_route *r, const void *arg)
{
	return strcmp(r->service, (const char *)arg) == 0;
}

/* Whether some used backend speaks gRPC: then the gateway's own denials
 * on gRPC requests are gRPC answers. */
static int any_grpc(const struct gen_registry *r)
{
	size_t i;

	for (i = 0; i < r->nservices; i++)
		if (r->services[i].used && r->services[i].grpc_backend)
			return 1;
	return 0;
}

/* One of the gateway's own answers: a JSON body carrying the request id
 * (and the agent's reason when reason is set), and before it, when grpc
 * is set, the same denial as a gRPC Trailers-Only answer (HTTP 200,
 * grpc-status, grpc-message) for requests of content-type
 * application/grpc. hdrs is appended to the JSON answer ("" for none);
 * cond is the rule's condition without "if". */
static void put_answer(struct dynbuf *b, int grpc, int status, const char *error, int reason,
		       int grpc_code, const char *hdrs, const char *cond)
{
	if (grpc)
		dynbuf_printf(b, "    http-request return status 200 hdr grpc-status %d "
			      "hdr grpc-message \"%s\" if is_grpc %s\n", grpc_code,
			      reason ? "%[var(txn.gw.reason)]" : error, cond);
	dynbuf_printf(b, "    http-request return status %d content-type application/json lf-string "
		      "'{\"error\":\"%s\"%s,\"request_id\":\"%%[var(txn.req_id),json(utf8s)]\"}'%s%s if %s\n",
		      status, error, reason ? ",\"reason\":\"%[var(txn.gw.reason),json(utf8s)]\"" : "",
		      *hdrs ? " " : "", hdrs, cond);
}

/* Writes a regex (for -m reg) matching one label in place of a leading
 * "*": pre, then [a-z0-9_-]+ for the label, then the literal rest. */
static void put_wild_regex(struct dynbuf *b, const char *pre, const char *rest)
{
	dynbuf_puts(b, " '^");
	put_regex_literal(b, pre, strlen(pre));
	dynbuf_puts(b, "[a-z0-9_-]+");
	put_regex_literal(b, rest, strlen(rest));
	dynbuf_puts(b, "$'");
}

/* CORS, first half, before routing: which origin is allowed. Exact
 * origins compare as strings; a wildcard origin (https: then *.example.com) allows one label. */
static void emit_cors(const struct gen_gateway *g, struct dynbuf *b)
{
	size_t i, nexact = 0;

	if (!g->cors.present)
		return;
	dynbuf_puts(b, "\n    # CORS: the allowed origin, before routing (404s carry CORS headers too).\n");
	for (i = 0; i < g->cors.origins.n; i++)
		if (!strchr(g->cors.origins.v[i], '*'))
			nexact++;
	if (g->cors.any_origin) {
		dynbuf_puts(b, "    acl cors_origin req.hdr(origin) -m found\n");
	} else if (g->cors.origins.n) {
		if (nexact) {
			dynbuf_puts(b, "    acl cors_origin req.fhdr(origin) -m str");
			for (i = 0; i < g->cors.origins.n; i++)
				if (!strchr(g->cors.origins.v[i], '*'))
					dynbuf_printf(b, " %s", g->cors.origins.v[i]);
			dynbuf_puts(b, "\n");
		}
		if (nexact < g->cors.origins.n) {
			dynbuf_puts(b, "    acl cors_origin req.fhdr(origin) -m reg");
			for (i = 0; i < g->cors.origins.n; i++) {
				const char *o = g->cors.origins.v[i], *star = strchr(o, '*');
				char pre[16];
				if (!star)
					continue;
				snprintf(pre, sizeof(pre), "%.*s", (int)(star - o), o);
				put_wild_regex(b, pre, star + 1);
			}
			dynbuf_puts(b, "\n");
		}
	} else {
		dynbuf_puts(b, "    acl cors_origin always_false\n");
	}
	dynbuf_puts(b, "    acl cors_preflight method OPTIONS\n"
		    "    acl cors_preflight_acrm req.hdr(access-control-request-method) -m found\n"
		    "    acl cors_has_origin req.hdr(origin) -m found\n"
		    "    http-request set-var(txn.cors_origin) req.fhdr(origin) if cors_origin\n");
}

/* CORS, second half, once the route is known: preflights to a routed path
 * are answered here, before any auth, and never forwarded. */
static void emit_cors_preflight(const struct gen_gateway *g, struct dynbuf *b)
{
	size_t i;

	if (!g->cors.present)
		return;
	dynbuf_puts(b, "\n    # CORS preflights to routed paths are answered here, before any auth.\n"
		    "    http-request set-var(txn.cors_pf) bool(1) if cors_preflight cors_preflight_acrm "
		    "cors_has_origin\n");
	dynbuf_puts(b, "    http-request return status 204 hdr Access-Control-Allow-Methods \"");
	if (g->cors.methods.n) {
		for (i = 0; i < g->cors.methods.n; i++)
			dynbuf_printf(b, "%s%s", i ? ", " : "", g->cors.methods.v[i]);
	} else {
		put_methods(b, GEN_M_GET | GEN_M_HEAD | GEN_M_POST | GEN_M_PUT | GEN_M_PATCH |
			    GEN_M_DELETE | GEN_M_OPTIONS, ", ");
	}
	dynbuf_puts(b, "\"");
	if (g->cors.headers.n) {
		dynbuf_puts(b, " hdr Access-Control-Allow-Headers \"");
		for (i = 0; i < g->cors.headers.n; i++)
			dynbuf_printf(b, "%s%s", i ? ", " : "", g->cors.headers.v[i]);
		dynbuf_puts(b, "\"");
	} else {
		/* No list: allow what the browser asks for, as Kong does. */
		dynbuf_puts(b, " hdr Access-Control-Allow-Headers \"%[req.fhdr(access-control-request-headers)]\"");
	}
	dynbuf_printf(b, " hdr Access-Control-Max-Age %ld"
		      " hdr Vary \"Origin, Access-Control-Request-Method, Access-Control-Request-Headers\""
		      " if { var(txn.cors_pf) -m found } cors_origin\n", g->cors.max_age);
	dynbuf_puts(b, "    # A preflight from an origin not allowed gets no CORS header.\n"
		    "    http-request return status 204 hdr Vary \"Origin, Access-Control-Request-Method, "
		    "Access-Control-Request-Headers\" if { var(txn.cors_pf) -m found }\n");
}

static void emit_cors_response(const struct gen_gateway *g, struct dynbuf *b)
{
	size_t i;

	if (!g->cors.present)
		return;
	dynbuf_puts(b, "\n    # CORS headers on every response, including the gateway's own.\n");
	if (g->cors.any_origin)
		dynbuf_puts(b, "    http-after-response set-header Access-Control-Allow-Origin \"*\" if { var(txn.cors_origin) -m found }\n");
	else
		dynbuf_puts(b, "    http-after-response set-header Access-Control-Allow-Origin \"%[var(txn.cors_origin)]\" if { var(txn.cors_origin) -m found }\n");
	if (g->cors.credentials)
		dynbuf_puts(b, "    http-after-response set-header Access-Control-Allow-Credentials true if { var(txn.cors_origin) -m found }\n");
	if (g->cors.exposed.n) {
		dynbuf_puts(b, "    http-after-response set-header Access-Control-Expose-Headers \"");
		for (i = 0; i < g->cors.exposed.n; i++)
			dynbuf_printf(b, "%s%s", i ? ", " : "", g->cors.exposed.v[i]);
		dynbuf_puts(b, "\" if { var(txn.cors_origin) -m found }\n");
	}
	if (!g->cors.any_origin)
		dynbuf_puts(b, "    http-after-response add-header Vary Origin unless { var(txn.cors_pf) -m found }\n");
}

static void emit_hdr_ops(struct dynbuf *b, const char *rule, const struct gen_hdr_ops *ops, int id)
{
	size_t i;

	for (i = 0; i < ops->nremove; i++)
		dynbuf_printf(b, "    %s del-header %s if { var(txn.rid) -m int %d }\n", rule,
			      ops->remove[i], id);
	for (i = 0; i < ops->nset; i++) {
		dynbuf_printf(b, "    %s set-header %s ", rule, ops->set[i].name);
		put_lf_quoted(b, ops->set[i].value);
		dynbuf_printf(b, " if { var(txn.rid) -m int %d }\n", id);
	}
}

static void rate_str(char *out, size_t n, const struct gen_rate *r)
{
	if (r->limit)
		snprintf(out, n, "%ld/%ld", r->limit, r->period);
	else
		out[0] = '\0';
}

/* The route's policies for RateLimit-Policy, only those that apply (a
 * public route has no per-user policy): structured,
 * '"user";q=100;w=60, "ip";q=1000;w=60' (IETF draft 09/10), or the older
 * drafts' '100;w=60, 1000;w=60'. Empty when the route has none. */
static void policy_str(char *out, size_t n, const struct gen_route *r, int structured)
{
	const struct gen_rate *p[2] = { &r->eff_user, &r->eff_ip };
	static const char *const name[2] = { "user", "ip" };
	size_t len = 0;
	int i;

	out[0] = '\0';
	for (i = 0; i < 2 && len < n; i++) {
		if (!p[i]->limit)
			continue;
		if (structured)
			len += (size_t)snprintf(out + len, n - len, "%s\"%s\";q=%ld;w=%ld",
						len ? ", " : "", name[i], p[i]->limit, p[i]->period);
		else
			len += (size_t)snprintf(out + len, n - len, "%s%ld;w=%ld", len ? ", " : "",
						p[i]->limit, p[i]->period);
	}
}

/* The rate-limit headers the YAML chose, on every response that carries a
 * verdict's rate-limit numbers (429s included). ids is scratch space for
 * n route ids. */
static void emit_rl_headers(const struct gen_gateway *g, struct dynbuf *b, int *ids, size_t n)
{
	static const char *const trio[][2] = {
		{ "Limit", "rl_limit" }, { "Remaining", "rl_remaining" }, { "Reset", "rl_reset" },
	};
	int structured = (g->rl.headers & GEN_RLH_RATELIMIT) != 0;
	size_t i, j;

	if (!g->rl.headers)
		return;
	dynbuf_puts(b, "\n    # Rate-limit headers (rate_limiting.headers), also on 429s.\n");
	if (structured)
		dynbuf_puts(b, "    http-after-response set-header RateLimit "
			    "'\"%[var(txn.gw.rl_policy)]\";r=%[var(txn.gw.rl_remaining)];"
			    "t=%[var(txn.gw.rl_reset)]' if { var(txn.gw.rl_policy) -m found }\n");
	for (j = 0; j < 2; j++) {
		if (!(g->rl.headers & (j ? GEN_RLH_X : GEN_RLH_LEGACY)))
			continue;
		for (i = 0; i < 3; i++)
			dynbuf_printf(b, "    http-after-response set-header %sRateLimit-%s "
				      "\"%%[var(txn.gw.%s)]\" if { var(txn.gw.rl_limit) -m found }\n",
				      j ? "X-" : "", trio[i][0], trio[i][1]);
	}
	if (!(g->rl.headers & (GEN_RLH_RATELIMIT | GEN_RLH_LEGACY)))
		return;
	for (i = 0; i < n; i++) {
		char pol[160];
		size_t k = 0;

		policy_str(pol, sizeof(pol), g->order[i], structured);
		if (!pol[0])
			continue;
		/* Routes with the same policies share one rule, emitted at the
		 * first of them. */
		for (j = 0; j < n; j++) {
			char other[160];

			policy_str(other, sizeof(other), g->order[j], structured);
			if (strcmp(other, pol) != 0)
				continue;
			if (j < i)
				break;
			ids[k++] = g->order[j]->id;
		}
		if (k == 0)
			continue;
		dynbuf_printf(b, "    http-after-response set-header RateLimit-Policy '%s' "
			      "if { var(txn.gw.rl_limit) -m found } ", pol);
		put_rid_cond(b, ids, k);
		dynbuf_puts(b, "\n");
	}
}

/* The TLS bind: certificates (several: HAProxy picks by SNI, the first
 * is the default), ALPN, protocol floor, ciphers, optional mTLS. */
static void emit_tls_bind(const struct gen_gateway *g, struct dynbuf *b)
{
	size_t i;

	if (strchr(g->bind, ':') && g->bind[0] != '[')
		dynbuf_printf(b, "    bind [%s]:%ld ssl", g->bind, g->tls.port);
	else
		dynbuf_printf(b, "    bind %s:%ld ssl", g->bind, g->tls.port);
	for (i = 0; i < g->tls.ncerts; i++)
		dynbuf_printf(b, " crt %s", g->tls.certs[i]);
	dynbuf_puts(b, " alpn ");
	if (g->tls.alpn.n) {
		for (i = 0; i < g->tls.alpn.n; i++)
			dynbuf_printf(b, "%s%s", i ? "," : "", g->tls.alpn.v[i]);
	} else {
		dynbuf_puts(b, "h2,http/1.1");
	}
	dynbuf_printf(b, " ssl-min-ver %s ciphers %s ciphersuites %s", g->tls.min_version,
		      g->tls.ciphers, g->tls.ciphersuites);
	if (g->tls.client_ca)
		dynbuf_printf(b, " ca-file %s verify required", g->tls.client_ca);
	dynbuf_puts(b, "\n");
}

/* X-Request-ID (a trusted proxy's, when it is a plain token, else a new
 * UUID) and the W3C trace context: a valid traceparent is kept, anything
 * else is replaced by a new one, and tracestate only travels with the
 * traceparent it belongs to. */
static void emit_request_id(const struct gen_gateway *g, struct dynbuf *b)
{
	dynbuf_puts(b, g->trusted_proxies.n ?
		    "\n    # Request id: a trusted proxy's when it is a plain token, else a new one.\n" :
		    "\n    # Request id: a new one for every request (no trusted proxy sets it).\n");
	if (g->trusted_proxies.n)
		dynbuf_puts(b, "    acl req_id_ok req.fhdr(x-request-id) -m reg '^[A-Za-z0-9._:-]{1,128}$'\n"
			    "    http-request set-var(txn.req_id) req.fhdr(x-request-id) "
			    "if from_trusted_proxy req_id_ok\n");
	dynbuf_puts(b, "    http-request set-var(txn.req_id) uuid(4) unless { var(txn.req_id) -m found }\n"
		    "    http-request set-header X-Request-ID \"%[var(txn.req_id)]\"\n"
		    "    # W3C trace context: one well-formed traceparent with non-zero ids is kept.\n"
		    "    acl tp_one req.hdr_cnt(traceparent) -m int 1\n"
		    "    acl tp_form req.hdr(traceparent) -m reg '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$' "
		    "'^(0[1-9a-f]|[1-9a-e][0-9a-f])-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$'\n"
		    "    acl tp_zero req.hdr(traceparent) -m reg '^..-0{32}-' '^..-[0-9a-f]{32}-0{16}-'\n"
		    "    http-request set-var(txn.traceparent) req.hdr(traceparent) if tp_one tp_form !tp_zero\n"
		    "    http-request del-header tracestate unless { var(txn.traceparent) -m found }\n"
		    "    http-request set-header traceparent \"00-%[uuid(4),regsub(-,,g)]-"
		    "%[uuid(4),regsub(-,,g),bytes(0,16)]-01\" unless { var(txn.traceparent) -m found }\n"
		    "    http-request set-var(txn.traceparent) req.hdr(traceparent) "
		    "unless { var(txn.traceparent) -m found }\n");
}

/* With TLS: the scheme for the backends and the redirect of plain HTTP.
 * A trusted proxy that terminated TLS itself says so with
 * X-Forwarded-Proto: https; its plain requests are neither relabelled nor
 * redirected (that would loop). */
static void emit_tls_request(const struct gen_gateway *g, struct dynbuf *b)
{
	const char *fwd = g->trusted_proxies.n ? " || from_trusted_proxy fwd_https" : "";
	char port[16] = "";

	dynbuf_puts(b, "\n    # TLS: the scheme for the backends; plain HTTP is redirected.\n");
	if (g->trusted_proxies.n)
		dynbuf_puts(b, "    acl fwd_https req.hdr(x-forwarded-proto) -m str -i https\n");
	dynbuf_printf(b, "    http-request set-header X-Forwarded-Proto https if { ssl_fc }\n"
		      "    http-request set-header X-Forwarded-Proto http unless { ssl_fc }%s\n", fwd);
	if (!g->tls.redirect_http)
		return;
	if (g->tls.port != 443)
		snprintf(port, sizeof(port), ":%ld", g->tls.port);
	dynbuf_printf(b, "    http-request redirect location "
		      "'https://%%[req.hdr(host),regsub(:[0-9]+$,),lower]%s%%[pathq]' code %ld "
		      "unless { ssl_fc }%s\n", port, g->tls.redirect_code, fwd);
}

/* Route matching. Routes with exact hosts are tried first, then routes
 * with wildcard hosts, then routes for any host; in each pass the most
 * specific path first (g->order). The request's port is ignored and
 * names compare lower-cased. */
static void emit_routes(const struct gen_gateway *g, struct dynbuf *b, size_t n)
{
	size_t i, j;
	int pass, hosts = 0;

	for (i = 0; i < n; i++)
		hosts |= g->order[i]->nhosts > 0;
	dynbuf_puts(b, "\n    # Routes, most specific first; the first match sets txn.rid.\n");
	if (hosts)
		dynbuf_puts(b, "    http-request set-var(txn.host) req.hdr(host),regsub(:[0-9]+$,),lower\n");
	for (i = 0; i < n; i++) {
		const struct gen_route *r = g->order[i];
		dynbuf_printf(b, "    # route %d: %s -> %s (line %d)\n", r->id, r->path, r->service,
			      r->path_at->line);
		put_route_acl(b, r);
		if (r->host_exact) {
			dynbuf_printf(b, "    acl hostx_%d var(txn.host) -m str", r->id);
			for (j = 0; j < r->nhosts; j++)
				if (r->hosts[j][0] != '*')
					dynbuf_printf(b, " %s", r->hosts[j]);
			dynbuf_puts(b, "\n");
		}
		if (r->host_wild) {
			dynbuf_printf(b, "    acl hostw_%d var(txn.host) -m reg", r->id);
			for (j = 0; j < r->nhosts; j++)
				if (r->hosts[j][0] == '*')
					put_wild_regex(b, "", r->hosts[j] + 1);
			dynbuf_puts(b, "\n");
		}
	}
	for (pass = 0; pass < 3; pass++) {
		for (i = 0; i < n; i++) {
			const struct gen_route *r = g->order[i];
			const char *host = "";
			char acl[32];
			if (pass == 0 && r->host_exact)
				host = "hostx_";
			else if (pass == 1 && r->host_wild)
				host = "hostw_";
			else if (!(pass == 2 && !r->hosts_at))
				continue;
			if (*host)
				snprintf(acl, sizeof(acl), " %s%d", host, r->id);
			else
				acl[0] = '\0';
			dynbuf_printf(b, "    http-request set-var(txn.rid) int(%d) if !{ var(txn.rid) -m found }"
				      "%s route_%d\n", r->id, acl, r->id);
		}
	}
}

static void emit_frontend(const struct gen_gateway *g, const struct gen_registry *r,
			  const struct gen_opts *o, struct dynbuf *b)
{
	size_t i, j, n = 0;
	int *ids = calloc(g->nroutes + 1, sizeof(*ids));
	int agent = any_agent(g), grpc = any_grpc(r);
	char bind[160];

	if (!ids) {
		b->err = 1;
		return;
	}
	for (i = 0; i < g->nroutes; i++)
		if (g->order[i])
			n++;

	if (strchr(g->bind, ':') && g->bind[0] != '[')
		snprintf(bind, sizeof(bind), "[%s]:%ld", g->bind, g->port);
	else
		snprintf(bind, sizeof(bind), "%s:%ld", g->bind, g->port);
	dynbuf_printf(b, "\nfrontend " FE "\n    bind %s\n", bind);
	if (g->tls.present)
		emit_tls_bind(g, b);
	dynbuf_puts(b, "    option forwardfor\n");
	/* One JSON object per line: ISO 8601 time (UTC) and the accept time in
	 * epoch seconds, strings through json() and quoted by %{+Q} (which
	 * writes "" where a plain %[] writes -), numbers always numbers. The
	 * URI is the one received, before normalization and rewrites. */
	dynbuf_puts(b, "    log-format '{\"time\":\"%[date,utime(%Y-%m-%dT%H:%M:%SZ)]\",\"ts\":%Ts.%ms,");
	/* Behind trusted proxies the client is the address they named; the
	 * peer (the proxy) is logged beside it. */
	dynbuf_puts(b, g->trusted_proxies.n ?
		    "\"client\":%{+Q}[var(txn.client_ip)],\"peer\":\"%ci\",\"method\":\"%HM\"," :
		    "\"client\":\"%ci\",\"method\":\"%HM\",");
	dynbuf_puts(b, "\"uri\":%{+Q}[capture.req.uri,json(utf8s)],\"route\":%{+Q}[var(txn.route),json(utf8s)],"
		    "\"backend\":\"%b\",\"server\":\"%s\",\"status\":%ST,"
		    "\"request_id\":%{+Q}[var(txn.req_id),json(utf8s)],"
		    "\"traceparent\":%{+Q}[var(txn.traceparent),json(utf8s)],"
		    "\"user\":%{+Q}[var(txn.gw.user_id),json(utf8s)],"
		    "\"reason\":%{+Q}[var(txn.gw.reason),json(utf8s)],"
		    "\"spoe_ms\":%[var(txn.gw.ptime,-1)],\"spoe_error\":%[var(txn.gw.error,0)],"
		    "\"total_ms\":%Ta,\"bytes\":%B,\"termination\":\"%ts\"}'\n");
	/* Requests HAProxy's parser refused (400, 408) have no transaction:
	 * the same keys, with what is known. */
	dynbuf_puts(b, "    error-log-format '{\"time\":\"%[date,utime(%Y-%m-%dT%H:%M:%SZ)]\",\"ts\":%Ts.%ms,");
	dynbuf_puts(b, g->trusted_proxies.n ? "\"client\":\"%ci\",\"peer\":\"%ci\"," : "\"client\":\"%ci\",");
	dynbuf_puts(b, "\"method\":\"\",\"uri\":\"\",\"route\":\"\",\"backend\":\"%b\",\"server\":\"%s\","
		    "\"status\":%ST,\"user\":\"\",\"reason\":\"\",\"spoe_ms\":-1,\"spoe_error\":0,"
		    "\"total_ms\":%Ta,\"bytes\":%B,\"termination\":\"%ts\"}'\n");
	if (agent)
		dynbuf_printf(b, "    filter spoe engine spogate config %s/spoe.conf\n",
			      o->haproxy_dir ? o->haproxy_dir : ".");

	/* Trusted proxies first: the request id below may come from them. */
	if (g->trusted_proxies.n) {
		dynbuf_puts(b, "\n    acl from_trusted_proxy src");
		for (i = 0; i < g->trusted_proxies.n; i++)
			dynbuf_printf(b, " %s", g->trusted_proxies.v[i]);
		dynbuf_puts(b, "\n");
	}
	/* Before any answer of the gateway's, so that every one carries it. */
	emit_request_id(g, b);

	/* Routing, the agent and the backend must see the same path: resolve
	 * what several spellings can say (%61 for a, %2e for a dot, //, /./)
	 * and refuse what is left of "..", which a backend would resolve into
	 * another route. Backslashes and encoded slashes count as separators,
	 * as some backends treat them so. */
	dynbuf_puts(b, "\n    # One spelling per path, before routing; dot-dot segments are refused.\n"
		    "    http-request normalize-uri percent-decode-unreserved strict\n"
		    "    http-request normalize-uri percent-to-uppercase strict\n"
		    "    http-request normalize-uri path-merge-slashes\n"
		    "    http-request normalize-uri path-strip-dot\n"
		    "    http-request return status 400 content-type application/json lf-string "
		    "'{\"error\":\"bad_request\",\"reason\":\"dot_segment\","
		    "\"request_id\":\"%[var(txn.req_id),json(utf8s)]\"}' "
		    "if { path -m reg '(^|/|%2F|%5C)[.][.]($|/|;|%2F|%5C)' }\n");
	/* The agent verifies one credential; a second header or a list would
	 * reach the backend beside it. Bearer tokens hold no comma. */
	dynbuf_puts(b, "    # One Authorization value: the backend gets exactly the credential the agent checks.\n"
		    "    http-request return status 400 content-type application/json lf-string "
		    "'{\"error\":\"bad_request\",\"reason\":\"multiple_authorization\","
		    "\"request_id\":\"%[var(txn.req_id),json(utf8s)]\"}' "
		    "if { req.fhdr_cnt(authorization) gt 1 } || "
		    "{ req.fhdr(authorization) -m reg -i '^[[:blank:]]*bearer[[:blank:]].*,' }\n");

	dynbuf_puts(b, "\n    # Identity headers come only from the gateway: drop client-supplied ones,\n"
		    "    # however spelled ('_' for '-', any case).\n"
		    "    http-request del-header ");
	put_name_regex(b, "X-User-", 1);
	dynbuf_puts(b, " -m reg\n    http-request del-header ");
	put_name_regex(b, "X-Gateway-", 1);
	dynbuf_puts(b, " -m reg\n");
	dynbuf_puts(b, "    http-request del-header ");
	put_name_regex(b, "X-Client-", 1);
	dynbuf_puts(b, " -m reg\n");
	for (i = 0; i < g->auth.nclaims; i++) {
		const char *h = g->auth.claims[i].header;
		if (strncasecmp(h, "X-User-", 7) != 0 && strncasecmp(h, "X-Gateway-", 10) != 0) {
			dynbuf_puts(b, "    http-request del-header ");
			put_name_regex(b, h, 0);
			dynbuf_puts(b, " -m reg\n");
		}
	}

	/* Who the client is: the peer, or, behind trusted proxies, the last
	 * X-Forwarded-For entry, which the proxy appended. Anyone else's
	 * forwarding headers are dropped, so that backends see only the
	 * address option forwardfor adds; a trusted proxy's are kept and
	 * the peer is appended to them. */
	dynbuf_puts(b, "\n    # Client address: forwarding headers only from trusted proxies.\n");
	{
		static const char *const fwd[] = { "X-Forwarded-For", "X-Real-IP", "Forwarded", NULL };
		const char *const *f;

		for (f = fwd; *f; f++) {
			dynbuf_puts(b, "    http-request del-header ");
			put_name_regex(b, *f, 0);
			dynbuf_puts(b, g->trusted_proxies.n ? " -m reg unless from_trusted_proxy\n" : " -m reg\n");
		}
	}
	if (g->trusted_proxies.n)
		dynbuf_puts(b, "    http-request set-var(txn.client_ip) req.hdr_ip(x-forwarded-for,-1) "
			    "if from_trusted_proxy { req.hdr(x-forwarded-for) -m found }\n"
			    "    http-request set-var(txn.client_ip) src unless { var(txn.client_ip) -m found }\n");

	if (g->tls.present)
		emit_tls_request(g, b);
	if (grpc)
		dynbuf_puts(b, "    acl is_grpc req.hdr(content-type) -m beg application/grpc\n"
			    "    http-request set-var(txn.grpc) bool(1) if is_grpc\n");
	emit_cors(g, b);
	emit_routes(g, b, n);
	put_answer(b, grpc, 404, "not_found", 0, 12, "", "!{ var(txn.rid) -m found }");
	emit_cors_preflight(g, b);

	dynbuf_puts(b, "\n    # Per-route settings: name, methods, auth, permission, rate-limit policies.\n");
	for (i = 0; i < n; i++) {
		const struct gen_route *r = g->order[i];
		char ru[48], ri[48];
		int id = r->id;

		dynbuf_printf(b, "    http-request set-var(txn.route) str(%s) if { var(txn.rid) -m int %d }\n",
			      r->name, id);
		if (r->methods) {
			struct dynbuf h = { 0 }, cond = { 0 };
			dynbuf_puts(&h, "hdr Allow \"");
			put_methods(&h, r->methods, ", ");
			dynbuf_puts(&h, "\"");
			dynbuf_printf(&cond, "{ var(txn.rid) -m int %d } !{ method ", id);
			put_methods(&cond, r->methods, " ");
			dynbuf_puts(&cond, " }");
			if (h.err || cond.err)
				b->err = 1;
			else
				put_answer(b, grpc, 405, "method_not_allowed", 0, 12, h.p, cond.p);
			dynbuf_free(&h);
			dynbuf_free(&cond);
		}
		if (!r->needs_agent)
			continue;
		dynbuf_printf(b, "    http-request set-var(txn.auth) int(%d) if { var(txn.rid) -m int %d }\n",
			      r->auth_required, id);
		for (j = 0; j < r->nperms; j++) {
			dynbuf_printf(b, "    http-request set-var(txn.perm) str(%s) if { var(txn.rid) -m int %d } { method ",
				      r->perms[j].perm, id);
			put_methods(b, r->perms[j].method, "");
			dynbuf_puts(b, " }\n");
		}
		if (r->permission)
			dynbuf_printf(b, "    http-request set-var(txn.perm) str(%s) if { var(txn.rid) -m int %d } "
				      "!{ var(txn.perm) -m found }\n", r->permission, id);
		rate_str(ru, sizeof(ru), &r->eff_user);
		rate_str(ri, sizeof(ri), &r->eff_ip);
		dynbuf_printf(b, "    http-request set-var(txn.rl_user) str(\"%s\") if { var(txn.rid) -m int %d }\n",
			      ru, id);
		dynbuf_printf(b, "    http-request set-var(txn.rl_ip) str(\"%s\") if { var(txn.rid) -m int %d }\n",
			      ri, id);
	}

	if (agent) {
		size_t k = collect(g, ids, p_agent, NULL);
		dynbuf_puts(b, "\n    # Ask the agent (authentication, authorization, rate limits).\n");
		dynbuf_puts(b, "    http-request send-spoe-group spogate gw if ");
		put_rid_cond(b, ids, k);
		dynbuf_puts(b, "\n");
		if (!g->agent.on_error_allow)
			put_answer(b, grpc, 503, "gateway_unavailable", 0, 14, "",
				   "{ var(txn.gw.error) -m found }");
		else
			dynbuf_puts(b, "    # agent.on_error: allow -- requests pass when the agent fails.\n");
		put_answer(b, grpc, 401, "unauthorized", 1, 16,
			   "hdr WWW-Authenticate 'Bearer realm=\"spogate\"'",
			   "{ var(txn.gw.status) -m int 401 } { var(txn.gw.reason) -m str token_missing }");
		put_answer(b, grpc, 401, "unauthorized", 1, 16,
			   "hdr WWW-Authenticate 'Bearer realm=\"spogate\", error=\"invalid_token\"'",
			   "{ var(txn.gw.status) -m int 401 }");
		put_answer(b, grpc, 403, "forbidden", 1, 7, "", "{ var(txn.gw.status) -m int 403 }");
		put_answer(b, grpc, 429, "rate_limited", 1, 8,
			   "hdr Retry-After \"%[var(txn.gw.retry_after)]\"",
			   "{ var(txn.gw.status) -m int 429 }");
		dynbuf_puts(b, "    # Any other non-zero status fails closed.\n");
		put_answer(b, grpc, 503, "service_unavailable", 1, 14, "",
			   "{ var(txn.gw.status) -m int gt 0 }");
	}

	dynbuf_puts(b, "\n    # Request transformations.\n");
	for (i = 0; i < n; i++) {
		const struct gen_route *r = g->order[i];
		emit_hdr_ops(b, "http-request", &r->req, r->id);
		if (r->strip_prefix) {
			dynbuf_puts(b, "    http-request replace-path '^");
			put_regex_literal(b, r->strip_prefix, strlen(r->strip_prefix));
			dynbuf_printf(b, "$' / if { var(txn.rid) -m int %d }\n", r->id);
			dynbuf_puts(b, "    http-request replace-path '^");
			put_regex_literal(b, r->strip_prefix, strlen(r->strip_prefix));
			dynbuf_printf(b, "(/.*)$' '\\1' if { var(txn.rid) -m int %d }\n", r->id);
		}
	}

	if (agent) {
		dynbuf_puts(b, "\n    # Identity headers from the agent's verdict (set after the transformations,\n"
			    "    # so that no route setting can override them).\n");
		for (i = 0; i < g->auth.nclaims; i++)
			dynbuf_printf(b, "    http-request set-header %s \"%%[var(txn.gw.%s)]\" if { var(txn.gw.%s) -m found }\n",
				      g->auth.claims[i].header, g->auth.claims[i].var, g->auth.claims[i].var);
	}

	if (g->tls.client_ca)
		dynbuf_puts(b, "\n    # The verified client certificate, for the backend (clients' own X-Client-*\n"
			    "    # headers were dropped above).\n"
			    "    http-request set-header X-Client-Subject \"%[ssl_c_s_dn]\" if { ssl_c_used }\n"
			    "    http-request set-header X-Client-Issuer \"%[ssl_c_i_dn]\" if { ssl_c_used }\n"
			    "    http-request set-header X-Client-Fingerprint \"%[ssl_c_der,sha2(256),hex]\" "
			    "if { ssl_c_used }\n"
			    "    http-request set-header X-Client-Serial \"%[ssl_c_serial,hex]\" if { ssl_c_used }\n");

	dynbuf_puts(b, "\n    # Response transformations.\n");
	for (i = 0; i < n; i++)
		emit_hdr_ops(b, "http-response", &g->order[i]->resp, g->order[i]->id);

	if (agent) {
		emit_rl_headers(g, b, ids, n);
	}
	emit_cors_response(g, b);
	dynbuf_puts(b, "\n    # The request id goes back to the client, on every answer.\n"
		    "    http-after-response set-header X-Request-ID \"%[var(txn.req_id)]\" "
		    "if { var(txn.req_id) -m found }\n");
	if (grpc)
		dynbuf_puts(b, "    http-after-response set-header content-type application/grpc if { var(txn.grpc) -m found } "
			    "{ res.hdr(grpc-status) -m found } !{ res.hdr(content-type) -m found }\n");
	if (g->tls.present && g->tls.hsts_ms) {
		dynbuf_printf(b, "    http-after-response set-header Strict-Transport-Security "
			      "\"max-age=%lld%s\" if { ssl_fc }\n", (long long)(g->tls.hsts_ms / 1000),
			      g->tls.hsts_subdomains ? "; includeSubDomains" : "");
	}

	/* One use_backend per service, in service-name order. */
	dynbuf_puts(b, "\n");
	for (i = 0; i < r->nservices; i++) {
		size_t k;
		if (!r->services[i].used)
			continue;
		k = collect(g, ids, p_service, r->services[i].name);
		dynbuf_printf(b, "    use_backend svc_%s if ", r->services[i].name);
		put_rid_cond(b, ids, k);
		dynbuf_puts(b, "\n");
	}
	free(ids);
}

/* TLS to a backend's servers, health checks included: verified against
 * ca_file (the system's CAs without one) and the SNI name, which is the
 * DNS name for dns: services unless sni says otherwise. A server whose
 * certificate does not match fails its checks and its requests, so it
 * is never used unverified. */
static void put_server_tls(struct dynbuf *b, const struct gen_service *s)
{
	const char *sni = s->tls.sni ? s->tls.sni : s->kind == GEN_SVC_DNS ? s->dns : NULL;

	dynbuf_puts(b, " ssl");
	if (s->tls.verify_none)
		dynbuf_puts(b, " verify none");
	else
		dynbuf_printf(b, " verify required ca-file %s", s->tls.ca_file ? s->tls.ca_file : "@system-ca");
	if (sni)
		dynbuf_printf(b, " sni str(%s) check-sni %s", sni, sni);
	if (s->tls.cert_file)
		dynbuf_printf(b, " crt %s", s->tls.cert_file);
	dynbuf_puts(b, s->h2 ? " alpn h2" : " alpn http/1.1");
}

static void emit_backends(const struct gen_gateway *g, const struct gen_registry *r, struct dynbuf *b)
{
	size_t i, j;
	char t[32];

	for (i = 0; i < r->nservices; i++) {
		const struct gen_service *s = &r->services[i];
		const struct gen_health *h = &s->health;
		int observe = h->enabled && s->error_limit > 0;

		if (!s->used)
			continue;
		dynbuf_printf(b, "\nbackend svc_%s\n    balance %s\n", s->name, s->balance);
		if (h->enabled && !s->h2) {
			dynbuf_printf(b, "    option httpchk\n    http-check send meth GET uri %s\n"
				      "    http-check expect status %ld\n", h->path, h->expect_status);
		}
		if (h->enabled && h->timeout_ms)
			dynbuf_printf(b, "    timeout check %s\n", dur(t, sizeof(t), h->timeout_ms));
		dynbuf_printf(b, "    retries %ld\n", s->retries);
		if (s->retries > 0) {
			dynbuf_puts(b, "    retry-on conn-failure empty-response response-timeout\n"
				    "    option redispatch\n"
				    "    # Only idempotent requests are retried after they were sent.\n"
				    "    http-request disable-l7-retry unless METH_GET || METH_HEAD || "
				    "METH_OPTIONS || { method PUT DELETE }\n");
		}
		for (j = 0; j < g->nroutes; j++) {
			const struct gen_route *rt = &g->routes[j];
			if (rt->id && rt->timeout_ms && strcmp(rt->service, s->name) == 0)
				dynbuf_printf(b, "    http-request set-timeout server %s if { var(txn.rid) -m int %d }\n",
					      dur(t, sizeof(t), rt->timeout_ms), rt->id);
		}
		dynbuf_puts(b, "    default-server");
		if (h->enabled) {
			dynbuf_printf(b, " check inter %s", dur(t, sizeof(t), h->interval_ms));
			dynbuf_printf(b, " fall %ld rise %ld", h->fall, h->rise);
		}
		if (observe)
			dynbuf_printf(b, " observe layer7 error-limit %ld on-error mark-down", s->error_limit);
		if (s->tls.present)
			put_server_tls(b, s);
		else if (s->h2)
			dynbuf_puts(b, " proto h2");
		dynbuf_puts(b, "\n");
		switch (s->kind) {
		case GEN_SVC_DNS:
			dynbuf_printf(b, "    server-template srv %ld %s:%ld resolvers dns resolve-prefer ipv4 init-addr last,none\n",
				      s->instances, s->dns, s->port);
			break;
		case GEN_SVC_SRV:
			dynbuf_printf(b, "    server-template srv %ld %s resolvers dns init-addr last,none\n",
				      s->instances, s->srv);
			break;
		case GEN_SVC_STATIC:
			for (j = 0; j < s->nservers; j++)
				dynbuf_printf(b, "    server srv%zu %s\n", j + 1, s->servers[j]);
			break;
		default:
			break;
		}
	}
}

static void emit_resolvers(const struct gen_registry *r, struct dynbuf *b)
{
	size_t i;
	int need = 0;
	char t[32];

	for (i = 0; i < r->nservices; i++)
		if (r->services[i].used && (r->services[i].kind == GEN_SVC_DNS ||
					    r->services[i].kind == GEN_SVC_SRV))
			need = 1;
	if (!need)
		return;
	dynbuf_puts(b, "\nresolvers dns\n");
	if (r->nnameservers == 0)
		dynbuf_puts(b, "    parse-resolv-conf\n");
	for (i = 0; i < r->nnameservers; i++)
		dynbuf_printf(b, "    nameserver ns%zu %s\n", i + 1, r->nameservers[i]);
	dynbuf_printf(b, "    accepted_payload_size %ld\n    resolve_retries %ld\n",
		      r->payload_size, r->resolve_retries);
	dynbuf_printf(b, "    timeout resolve %s\n", dur(t, sizeof(t), r->resolve_ms));
	dynbuf_printf(b, "    timeout retry %s\n", dur(t, sizeof(t), r->retry_ms));
	dynbuf_printf(b, "    hold valid %s\n", dur(t, sizeof(t), r->hold_valid_ms));
	dynbuf_printf(b, "    hold obsolete %s\n", dur(t, sizeof(t), r->hold_obsolete_ms));
}

void gen_emit_haproxy(const struct gen_gateway *g, const struct gen_registry *r,
		      const struct gen_opts *o, struct dynbuf *b)
{
	const char *gf = strrchr(g->file, '/'), *rf = strrchr(r->file, '/');

	dynbuf_printf(b, "# Generated by spogate-gen from %s and %s. Do not edit: change the\n"
		      "# YAML and run spogate-gen again.\n\n",
		      gf ? gf + 1 : g->file, rf ? rf + 1 : r->file);
	emit_global(g, o, b);
	emit_frontend(g, r, o, b);
	emit_backends(g, r, b);
	emit_resolvers(r, b);
	if (any_agent(g)) {
		size_t k, nagents = g->agent.more.n ? g->agent.more.n : 1;

		/* A request whose agent is gone goes to another one at once:
		 * HAProxy 3.1+ ties each SPOE stream to the server round-robin
		 * picked and, without redispatch, retries that dead server after
		 * min(1s, timeout connect), past timeout processing. */
		dynbuf_puts(b, "\nbackend spogate-agents\n    mode tcp\n    balance roundrobin\n"
			    "    timeout connect 1s\n    timeout server 3m\n    option spop-check\n"
			    "    retries 3\n    option redispatch 1\n");
		for (k = 0; k < nagents; k++) {
			const char *a = g->agent.more.n ? g->agent.more.v[k] : g->agent.address;
			int unix_path = strncmp(a, "unix:", 5) == 0;

			/* HAProxy spells a unix socket unix@/path */
			dynbuf_printf(b, "    server agent%zu %s%s check inter 2s fastinter 250ms\n",
				      k + 1, unix_path ? "unix@" : "", unix_path ? a + 5 : a);
		}
	}
	if (g->admin.stats && g->admin.nusers) {
		size_t k;
		dynbuf_puts(b, "\nuserlist admins\n");
		for (k = 0; k < g->admin.nusers; k++)
			dynbuf_printf(b, "    user %s password '%s'\n", g->admin.users[k].name,
				      g->admin.users[k].hash);
	}
	if (g->admin.stats) {
		dynbuf_printf(b, "\nfrontend admin\n    bind %s\n    no log\n", g->admin.stats);
		if (g->admin.nusers)
			dynbuf_puts(b, "    http-request auth realm spogate-admin unless { http_auth(admins) }\n");
		dynbuf_printf(b, "    http-request use-service prometheus-exporter if { path /metrics }\n"
			      "    stats enable\n    stats uri /\n    stats refresh 10s\n");
	}
}
