/* Typed, position-aware access to the YAML trees, and small validators
 * shared by the gateway and registry loaders. */
#include "model.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "units.h"

const char *const gen_method_names[GEN_M_COUNT + 1] = {
	"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", NULL,
};

static void vreport(struct gen_ctx *c, enum gen_sev sev, const struct gy_node *at,
		    const char *fmt, va_list ap)
{
	char msg[900];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	gen_diag_add(c->d, sev, c->file, at ? at->line : 0, at ? at->col : 0, "%s", msg);
}

void gen_err(struct gen_ctx *c, const struct gy_node *at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(c, GEN_SEV_ERROR, at, fmt, ap);
	va_end(ap);
}

void gen_warn(struct gen_ctx *c, const struct gy_node *at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(c, GEN_SEV_WARNING, at, fmt, ap);
	va_end(ap);
}

int gen_expect_map(struct gen_ctx *c, const struct gy_node *n, const char *what)
{
	if (n && n->kind == GY_MAP)
		return 0;
	gen_err(c, n, "%s: expected a mapping, got %s", what, gy_kind_name(n));
	return -1;
}

void gen_check_keys(struct gen_ctx *c, const struct gy_node *m, const char *what,
		    const char *const *allowed)
{
	size_t i;

	if (!m || m->kind != GY_MAP)
		return;
	for (i = 0; i < gy_map_size(m); i++) {
		const struct gy_node *k = gy_map_key(m, i);
		const char *const *a;
		const char *hint;
		int found = 0;

		for (a = allowed; *a; a++)
			if (strcmp(*a, k->str) == 0)
				found = 1;
		if (found)
			continue;
		hint = gen_did_you_mean(k->str, allowed);
		if (hint)
			gen_err(c, k, "unknown key '%.100s' in %s (did you mean '%s'?)", k->str, what, hint);
		else
			gen_err(c, k, "unknown key '%.100s' in %s", k->str, what);
	}
}

/* Looks key up in m; null values count as absent (the default applies). */
static const struct gy_node *lookup(const struct gy_node *m, const char *key)
{
	const struct gy_node *v = gy_get(m, key);

	return gy_is_null(v) ? NULL : v;
}

int gen_scalar_str(struct gen_ctx *c, const struct gy_node *n, const char *what, const char **out)
{
	if (n->kind != GY_SCALAR) {
		gen_err(c, n, "%s: expected a string, got %s", what, gy_kind_name(n));
		return -1;
	}
	if (n->len == 0) {
		gen_err(c, n, "%s: must not be empty", what);
		return -1;
	}
	*out = n->str;
	return 1;
}

int gen_get_str(struct gen_ctx *c, const struct gy_node *m, const char *key, const char **out)
{
	const struct gy_node *v = lookup(m, key);

	if (!v)
		return 0;
	return gen_scalar_str(c, v, key, out);
}

int gen_get_bool(struct gen_ctx *c, const struct gy_node *m, const char *key, int *out)
{
	const struct gy_node *v = lookup(m, key);

	if (!v)
		return 0;
	if (v->kind == GY_SCALAR && strcasecmp(v->str, "true") == 0) {
		*out = 1;
		return 1;
	}
	if (v->kind == GY_SCALAR && strcasecmp(v->str, "false") == 0) {
		*out = 0;
		return 1;
	}
	if (v->kind == GY_SCALAR)
		gen_err(c, v, "%s: expected true or false, got '%.100s'", key, v->str);
	else
		gen_err(c, v, "%s: expected true or false, got %s", key, gy_kind_name(v));
	return -1;
}

int gen_get_int(struct gen_ctx *c, const struct gy_node *m, const char *key,
		long min, long max, long *out)
{
	const struct gy_node *v = lookup(m, key);
	char *end;
	long x;

	if (!v)
		return 0;
	if (v->kind != GY_SCALAR) {
		gen_err(c, v, "%s: expected an integer, got %s", key, gy_kind_name(v));
		return -1;
	}
	errno = 0;
	x = strtol(v->str, &end, 10);
	if (v->len == 0 || *end != '\0' || errno != 0 || v->str[0] == ' ' || v->str[0] == '+') {
		gen_err(c, v, "%s: expected an integer, got '%.100s'", key, v->str);
		return -1;
	}
	if (x < min || x > max) {
		gen_err(c, v, "%s: %ld is out of range (%ld..%ld)", key, x, min, max);
		return -1;
	}
	*out = x;
	return 1;
}

int gen_get_dur(struct gen_ctx *c, const struct gy_node *m, const char *key,
		int64_t min_ms, int64_t *out)
{
	const struct gy_node *v = lookup(m, key);
	int64_t ms;

	if (!v)
		return 0;
	if (v->kind != GY_SCALAR) {
		gen_err(c, v, "%s: expected a duration such as 500ms, 30s or 2m, got %s",
			key, gy_kind_name(v));
		return -1;
	}
	if (dur_parse_ms(v->str, &ms) < 0) {
		gen_err(c, v, "%s: invalid duration '%.100s' (expected a number with a unit: "
			"ms, s, m, h or d, e.g. 500ms, 30s, 2m)", key, v->str);
		return -1;
	}
	if (ms < min_ms) {
		gen_err(c, v, "%s: duration '%.100s' is too short (minimum %lldms)", key,
			v->str, (long long)min_ms);
		return -1;
	}
	*out = ms;
	return 1;
}

int gen_get_rate(struct gen_ctx *c, const struct gy_node *m, const char *key, struct gen_rate *out)
{
	const struct gy_node *v = lookup(m, key);

	if (!v)
		return 0;
	if (v->kind != GY_SCALAR) {
		gen_err(c, v, "%s: expected a rate such as 100/minute, got %s", key, gy_kind_name(v));
		return -1;
	}
	if (rate_parse(v->str, &out->limit, &out->period) < 0) {
		gen_err(c, v, "%s: invalid rate '%.100s' (expected N/second, N/minute, N/hour, "
			"N/day or N/<duration> such as 5/30s, with N >= 1)", key, v->str);
		return -1;
	}
	out->at = v;
	return 1;
}

int gen_get_enum(struct gen_ctx *c, const struct gy_node *m, const char *key,
		 const char *const *values, int *out)
{
	const struct gy_node *v = lookup(m, key);
	char list[256];
	size_t used = 0;
	const char *hint;
	int i;

	if (!v)
		return 0;
	if (v->kind == GY_SCALAR) {
		for (i = 0; values[i]; i++) {
			if (strcmp(values[i], v->str) == 0) {
				*out = i;
				return 1;
			}
		}
	}
	list[0] = '\0';
	for (i = 0; values[i] && used < sizeof(list); i++) {
		int n = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", values[i]);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	if (v->kind != GY_SCALAR) {
		gen_err(c, v, "%s: expected one of %s, got %s", key, list, gy_kind_name(v));
		return -1;
	}
	hint = gen_did_you_mean(v->str, values);
	if (hint)
		gen_err(c, v, "%s: invalid value '%.100s' (expected one of %s; did you mean '%s'?)",
			key, v->str, list, hint);
	else
		gen_err(c, v, "%s: invalid value '%.100s' (expected one of %s)", key, v->str, list);
	return -1;
}

int gen_get_strs(struct gen_ctx *c, const struct gy_node *m, const char *key, struct gen_strs *out)
{
	const struct gy_node *v = lookup(m, key);
	size_t i;
	int bad = 0;

	if (!v)
		return 0;
	if (v->kind != GY_SEQ) {
		gen_err(c, v, "%s: expected a list, got %s", key, gy_kind_name(v));
		return -1;
	}
	out->at = v;
	out->n = 0;
	out->v = calloc(v->n + 1, sizeof(*out->v));
	if (!out->v)
		return -1;
	for (i = 0; i < v->n; i++) {
		const char *s;
		if (gen_scalar_str(c, v->kids[i], key, &s) < 0)
			bad = 1;
		else
			out->v[out->n++] = s;
	}
	return bad ? -1 : 1;
}

unsigned gen_method_bit(const char *s)
{
	int i;

	for (i = 0; i < GEN_M_COUNT; i++)
		if (strcmp(s, gen_method_names[i]) == 0)
			return 1u << i;
	return 0;
}

int gen_valid_agent_addr(const char *s)
{
	char path[ADDR_UNIX_MAX + 1];
	int rc = addr_unix(s, path, sizeof(path));

	if (rc == 0)
		return gen_valid_hostport(s);
	return rc > 0 && strspn(path, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                        "0123456789/._+-@") == strlen(path);
}

int gen_valid_hostport(const char *s)
{
	const char *colon, *p;
	char *end;
	long port;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb == s + 1 || rb[1] != ':')
			return 0;
		for (p = s + 1; p < rb; p++)
			if (!strchr("0123456789abcdefABCDEF:.", *p))
				return 0;
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || colon == s)
			return 0;
		for (p = s; p < colon; p++)
			if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_*", *p))
				return 0;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno || port < 1 || port > 65535)
		return 0;
	return 1;
}

/* Path globs: "/" segments; a segment is literal, "*" (exactly one
 * segment) or "**" (any suffix, only last). Literal characters are those
 * of RFC 3986 pchar, minus the ones HAProxy's config syntax would need to
 * escape ('(' ')' ',' ';' '&' '\'' '"' '#' and spaces). */
int gen_glob_check(const char *path, size_t *err_off, const char **why)
{
	static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				 "0123456789-._~!$+=:@%";
	const char *p, *seg;

	*err_off = 0;
	if (path[0] != '/') {
		*why = "must start with '/'";
		return -1;
	}
	for (seg = path + 1;; seg = p + 1) {
		size_t len;
		p = strchr(seg, '/');
		len = p ? (size_t)(p - seg) : strlen(seg);
		if (len == 0 && p) {
			*err_off = (size_t)(seg - path);
			*why = "has an empty segment ('//')";
			return -1;
		}
		if (len == 2 && seg[0] == '*' && seg[1] == '*') {
			if (p) {
				*err_off = (size_t)(seg - path);
				*why = "'**' must be the last segment";
				return -1;
			}
		} else if (!(len == 1 && seg[0] == '*')) {
			size_t i;
			for (i = 0; i < len; i++) {
				if (seg[i] == '*') {
					*err_off = (size_t)(seg - path) + i;
					*why = "'*' must be a whole segment ('/*/' or a final '/**')";
					return -1;
				}
				if (!strchr(ok, seg[i])) {
					*err_off = (size_t)(seg - path) + i;
					*why = "has a character that is not allowed in a path glob";
					return -1;
				}
			}
		}
		if (!p)
			break;
	}
	return 0;
}

/* Returns 1 when every path that glob b matches is also matched by glob a.
 * Both are valid globs. */
int gen_glob_covers(const char *a, const char *b)
{
	for (;;) {
		const char *ea, *eb;
		size_t la, lb;
		int wa, wb;

		a++;    /* skip '/' */
		b++;
		ea = strchr(a, '/');
		eb = strchr(b, '/');
		la = ea ? (size_t)(ea - a) : strlen(a);
		lb = eb ? (size_t)(eb - b) : strlen(b);
		if (la == 2 && a[0] == '*' && a[1] == '*')
			return 1;       /* "**" covers any rest, even another "**" */
		wa = la == 1 && a[0] == '*';
		wb = lb == 1 && b[0] == '*';
		if (lb == 2 && b[0] == '*' && b[1] == '*')
			return 0;       /* b matches arbitrarily deep, a does not */
		if (!wa && (wb || la != lb || memcmp(a, b, la) != 0))
			return 0;
		if (!ea || !eb) {
			if (!ea && !eb)
				return 1;
			/* One glob ends before the other. Only a trailing
			 * double star in a can cover b ending here, since
			 * "/x" followed by double star also matches "/x". */
			if (!eb && ea && strcmp(ea, "/**") == 0)
				return 1;
			return 0;
		}
		a = ea;
		b = eb;
	}
}

char *gen_resolve_path(const char *base, const char *path)
{
	size_t n;
	char *out;

	if (path[0] == '/' || !base || !*base)
		return strdup(path);
	n = strlen(base) + strlen(path) + 2;
	out = malloc(n);
	if (!out)
		return NULL;
	if (strcmp(base, "/") == 0)
		snprintf(out, n, "/%s", path);
	else
		snprintf(out, n, "%s/%s", base, path);
	return out;
}

void gen_base_dir(const char *file, const char *override, char *out, size_t n)
{
	char tmp[PATH_MAX], real[PATH_MAX];
	char *slash;

	if (override) {
		snprintf(out, n, "%s", override);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s", file);
	slash = strrchr(tmp, '/');
	if (slash)
		*(slash == tmp ? slash + 1 : slash) = '\0';
	else
		snprintf(tmp, sizeof(tmp), ".");
	if (realpath(tmp, real))
		snprintf(out, n, "%s", real);
	else
		snprintf(out, n, "%s", tmp);
}
