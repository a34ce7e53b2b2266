/*
 * A strict checker of the Prometheus text exposition format (0.0.4), for
 * the agent's /metrics. It refuses what Prometheus would refuse (bad names,
 * labels, escapes and values, duplicate series, a family's samples split
 * or typed twice, histograms whose buckets are not cumulative or lack
 * +Inf) and, beyond the format, what our exposition promises: every family
 * has # HELP and # TYPE before its samples, counters end in _total and are
 * never negative, no other comment, and each histogram series comes as its
 * buckets (le ascending), then _sum, then _count.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define PROM_MAX_SERIES 4096
#define PROM_NAME_MAX   256
#define PROM_LABELS_MAX 1024

struct family {
	char name[PROM_NAME_MAX];
	char type[16];                 /* "" until # TYPE */
	int help;
	int samples;
};

struct hist {
	char labels[PROM_LABELS_MAX];  /* the series' labels but le */
	int state;                     /* 0 between series, 1 buckets, 2 +Inf seen, 3 _sum seen */
	double le, count, inf;
};

struct checker {
	struct family cur;
	char (*closed)[PROM_NAME_MAX];
	int nclosed;
	char (*series)[PROM_NAME_MAX + PROM_LABELS_MAX];
	int nseries;
	struct hist h;
	int line;
	char *problem;
};

static int fail(struct checker *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (c->problem)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (asprintf(&c->problem, "line %d: %s", c->line, msg) < 0)
		c->problem = NULL;
	return -1;
}

static int name_ok(const char *s, size_t n, int label)
{
	size_t i;

	if (n == 0 || n >= PROM_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		int ch = (unsigned char)s[i];

		if (!(isalpha(ch) || ch == '_' || (!label && ch == ':') || (i > 0 && isdigit(ch))))
			return 0;
	}
	return !(label && n >= 2 && s[0] == '_' && s[1] == '_');
}

static int parse_value(const char *s, double *v)
{
	char *end;

	if (strcmp(s, "+Inf") == 0) {
		*v = INFINITY;
		return 0;
	}
	if (strcmp(s, "-Inf") == 0) {
		*v = -INFINITY;
		return 0;
	}
	if (strcmp(s, "NaN") == 0) {
		*v = NAN;
		return 0;
	}
	if (!*s || isspace((unsigned char)*s))
		return -1;
	*v = strtod(s, &end);
	return *end || !strpbrk(s, "0123456789") ? -1 : 0;
}

/* Closes the current family; a name seen before may not come back. */
static int family_start(struct checker *c, const char *name)
{
	int i;

	if (strcmp(c->cur.name, name) == 0)
		return 0;
	if (c->cur.name[0]) {
		if (!c->cur.help || !c->cur.type[0])
			return fail(c, "family %s lacks # %s", c->cur.name,
			            c->cur.help ? "TYPE" : "HELP");
		if (c->h.state != 0)
			return fail(c, "histogram %s ends inside a series", c->cur.name);
		snprintf(c->closed[c->nclosed++ % PROM_MAX_SERIES], PROM_NAME_MAX, "%s", c->cur.name);
	}
	for (i = 0; i < c->nclosed && i < PROM_MAX_SERIES; i++)
		if (strcmp(c->closed[i], name) == 0)
			return fail(c, "family %s comes twice", name);
	memset(&c->cur, 0, sizeof(c->cur));
	memset(&c->h, 0, sizeof(c->h));
	snprintf(c->cur.name, sizeof(c->cur.name), "%s", name);
	return 0;
}

static int comment(struct checker *c, const char *p)
{
	const char *name, *e;
	char nm[PROM_NAME_MAX];
	int help;

	if (strncmp(p, "# HELP ", 7) == 0)
		help = 1;
	else if (strncmp(p, "# TYPE ", 7) == 0)
		help = 0;
	else
		return fail(c, "a comment other than # HELP or # TYPE");
	name = p + 7;
	e = strchr(name, ' ');
	if (!e || !name_ok(name, (size_t)(e - name), 0))
		return fail(c, "bad metric name in %.*s", 12, p);
	snprintf(nm, sizeof(nm), "%.*s", (int)(e - name), name);
	if (family_start(c, nm) < 0)
		return -1;
	if (c->cur.samples)
		return fail(c, "# %s of %s after its samples", help ? "HELP" : "TYPE", nm);
	if (help) {
		if (c->cur.help++)
			return fail(c, "# HELP of %s twice", nm);
		if (!e[1] || strchr(e + 1, '\\'))
			return fail(c, "# HELP of %s is empty or escaped", nm);
		return 0;
	}
	if (c->cur.type[0])
		return fail(c, "# TYPE of %s twice", nm);
	if (strcmp(e + 1, "counter") && strcmp(e + 1, "gauge") && strcmp(e + 1, "histogram") &&
	    strcmp(e + 1, "summary") && strcmp(e + 1, "untyped"))
		return fail(c, "# TYPE of %s: unknown type %s", nm, e + 1);
	snprintf(c->cur.type, sizeof(c->cur.type), "%s", e + 1);
	if (strcmp(c->cur.type, "counter") == 0 &&
	    (strlen(nm) < 6 || strcmp(nm + strlen(nm) - 6, "_total") != 0))
		return fail(c, "counter %s does not end in _total", nm);
	return 0;
}

/* Reads {a="b",...} at *pp into the form "a=b\x01...", in their order;
 * le goes to le (*has_le set) and not into out. */
static int labels(struct checker *c, const char **pp, char *out, size_t cap, char *le,
                  size_t lecap, int *has_le)
{
	const char *p = *pp + 1;
	char names[32][PROM_NAME_MAX];
	int n = 0, i;
	size_t o = 0;

	*has_le = 0;
	out[0] = '\0';
	while (*p != '}') {
		const char *ns = p;
		char val[PROM_LABELS_MAX];
		size_t vn = 0, nl;

		while (*p && *p != '=')
			p++;
		nl = (size_t)(p - ns);
		if (*p != '=' || !name_ok(ns, nl, 1) || p[1] != '"')
			return fail(c, "bad label at %.20s", ns);
		if (n == 32)
			return fail(c, "too many labels");
		snprintf(names[n], PROM_NAME_MAX, "%.*s", (int)nl, ns);
		for (i = 0; i < n; i++)
			if (strcmp(names[i], names[n]) == 0)
				return fail(c, "label %s twice", names[n]);
		n++;
		for (p += 2; *p != '"'; p++) {
			if (!*p || *p == '\n')
				return fail(c, "unterminated label value");
			if (*p == '\\') {
				p++;
				if (*p != '\\' && *p != '"' && *p != 'n')
					return fail(c, "bad escape \\%c in a label value", *p ? *p : '0');
			}
			if (vn + 1 < sizeof(val))
				val[vn++] = *p;
		}
		val[vn] = '\0';
		p++;
		if (nl == 2 && strncmp(ns, "le", 2) == 0) {
			*has_le = 1;
			if (vn >= lecap)
				return fail(c, "le too long");
			memcpy(le, val, vn + 1);
		} else {
			o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, "%s=%s\x01", names[n - 1], val);
			if (o >= cap)
				return fail(c, "labels too long");
		}
		if (*p == ',')
			p++;
		else if (*p != '}')
			return fail(c, "expected , or } after a label");
	}
	*pp = p + 1;
	return 0;
}

static int sample(struct checker *c, const char *p)
{
	const char *s = p;
	char nm[PROM_NAME_MAX], lab[PROM_LABELS_MAX], le[64] = "", val[64];
	const char *suffix = "";
	double v, lev = 0;
	size_t n, fl = strlen(c->cur.name);
	int has_le = 0, i;

	while (*p && *p != '{' && *p != ' ')
		p++;
	n = (size_t)(p - s);
	if (!name_ok(s, n, 0))
		return fail(c, "bad metric name %.*s", (int)(n > 40 ? 40 : n), s);
	snprintf(nm, sizeof(nm), "%.*s", (int)n, s);
	lab[0] = '\0';
	if (*p == '{' && labels(c, &p, lab, sizeof(lab), le, sizeof(le), &has_le) < 0)
		return -1;
	if (*p != ' ')
		return fail(c, "no value after %s", nm);
	p++;
	n = strcspn(p, " ");
	if (n == 0 || n >= sizeof(val))
		return fail(c, "bad value of %s", nm);
	snprintf(val, sizeof(val), "%.*s", (int)n, p);
	if (parse_value(val, &v) < 0)
		return fail(c, "bad value %s of %s", val, nm);
	if (p[n] == ' ') {
		char *end;

		strtoll(p + n + 1, &end, 10);
		if (*end || end == p + n + 1)
			return fail(c, "bad timestamp of %s", nm);
	}
	/* The sample belongs to the family open now, or to none. */
	if (strcmp(c->cur.type, "histogram") == 0 && strncmp(nm, c->cur.name, fl) == 0)
		suffix = nm + fl;
	else if (strcmp(nm, c->cur.name) != 0)
		return fail(c, "sample %s outside a family with # HELP and # TYPE", nm);
	if (!c->cur.help || !c->cur.type[0])
		return fail(c, "sample of %s before its # HELP and # TYPE", nm);
	c->cur.samples++;
	if (strcmp(c->cur.type, "counter") == 0 && !(v >= 0))
		return fail(c, "counter %s is %s", nm, val);
	if (*suffix || strcmp(c->cur.type, "histogram") == 0) {
		struct hist *h = &c->h;

		if (strcmp(suffix, "_bucket") == 0) {
			if (!has_le || parse_value(le, &lev) < 0)
				return fail(c, "bucket of %s without a valid le", nm);
			if (h->state == 0) {
				h->state = 1;
				snprintf(h->labels, sizeof(h->labels), "%s", lab);
				h->count = 0;
				h->le = -INFINITY;
			} else if (h->state != 1 || strcmp(h->labels, lab) != 0) {
				return fail(c, "buckets of %s are not one run per series", nm);
			}
			if (!(lev > h->le) || v < h->count)
				return fail(c, "buckets of %s are not cumulative in le order", nm);
			h->le = lev;
			h->count = v;
			if (isinf(lev)) {
				h->state = 2;
				h->inf = v;
			}
		} else if (strcmp(suffix, "_sum") == 0) {
			if (h->state != 2 || strcmp(h->labels, lab) != 0 || has_le)
				return fail(c, "%s not right after its +Inf bucket", nm);
			h->state = 3;
		} else if (strcmp(suffix, "_count") == 0) {
			if (h->state != 3 || strcmp(h->labels, lab) != 0 || has_le)
				return fail(c, "%s not right after its _sum", nm);
			if (v != h->inf)
				return fail(c, "%s is %s, its +Inf bucket %g", nm, val, h->inf);
			h->state = 0;
		} else {
			return fail(c, "sample %s outside a family with # HELP and # TYPE", nm);
		}
	}
	if (has_le)
		snprintf(lab + strlen(lab), sizeof(lab) - strlen(lab), "le=%s\x01", le);
	if (c->nseries == PROM_MAX_SERIES)
		return fail(c, "more than %d series", PROM_MAX_SERIES);
	snprintf(c->series[c->nseries], sizeof(c->series[0]), "%s\x02%s", nm, lab);
	for (i = 0; i < c->nseries; i++)
		if (strcmp(c->series[i], c->series[c->nseries]) == 0)
			return fail(c, "series %.*s twice", (int)(p - s), s);
	c->nseries++;
	return 0;
}

char *h_prom_check(const char *text)
{
	struct checker c;
	const char *p = text;
	char *line = NULL;
	size_t cap = 0;

	memset(&c, 0, sizeof(c));
	c.closed = calloc(PROM_MAX_SERIES, sizeof(*c.closed));
	c.series = calloc(PROM_MAX_SERIES, sizeof(*c.series));
	if (!c.closed || !c.series)
		fail(&c, "out of memory");
	if (!*p)
		fail(&c, "empty exposition");
	while (*p && !c.problem) {
		const char *eol = strchr(p, '\n');
		size_t n;

		c.line++;
		if (!eol) {
			fail(&c, "the last line has no newline");
			break;
		}
		n = (size_t)(eol - p);
		if (n + 1 > cap) {
			cap = n + 1;
			free(line);
			line = malloc(cap);
			if (!line) {
				fail(&c, "out of memory");
				break;
			}
		}
		memcpy(line, p, n);
		line[n] = '\0';
		if (n == 0)
			fail(&c, "an empty line");
		else if (line[0] == '#')
			comment(&c, line);
		else
			sample(&c, line);
		p = eol + 1;
	}
	if (!c.problem)
		family_start(&c, "\x01end");
	free(line);
	free(c.closed);
	free(c.series);
	return c.problem;
}
