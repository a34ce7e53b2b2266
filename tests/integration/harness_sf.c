/*
 * Structured-field List parser for the tests (see harness_sf.h), after
 * the parsing algorithms of RFC 8941 section 4.2.
 */
#include "harness_sf.h"

#include <ctype.h>
#include <string.h>

static void ows(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

/* sf-key: lcalpha / "*" then lcalpha / DIGIT / "_" / "-" / "." / "*". */
static int key(const char **p, char *out)
{
	size_t n = 0;

	if (!(islower((unsigned char)**p) || **p == '*'))
		return -1;
	while (islower((unsigned char)**p) || isdigit((unsigned char)**p) ||
	       strchr("_-.*", **p)) {
		if (**p == '\0' || n + 1 >= H_SF_MAX_TEXT)
			return -1;
		out[n++] = *(*p)++;
	}
	out[n] = '\0';
	return 0;
}

static int bare_item(const char **p, struct h_sf_value *v)
{
	const char *s = *p;
	size_t n = 0;
	long long x = 0;
	int neg = 0, digits = 0;

	memset(v, 0, sizeof(*v));
	if (*s == '"') {
		v->type = H_SF_STRING;
		for (s++; *s != '"'; s++) {
			if (*s == '\\') {
				s++;
				if (*s != '"' && *s != '\\')
					return -1;
			} else if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) {
				return -1;      /* also the end of the input */
			}
			if (n + 1 >= H_SF_MAX_TEXT)
				return -1;
			v->text[n++] = *s;
		}
		*p = s + 1;
		return 0;
	}
	if (*s == '?') {
		if (s[1] != '0' && s[1] != '1')
			return -1;
		v->type = H_SF_BOOLEAN;
		v->integer = s[1] == '1';
		*p = s + 2;
		return 0;
	}
	if (*s == '-' || isdigit((unsigned char)*s)) {
		if (*s == '-') {
			neg = 1;
			s++;
		}
		while (isdigit((unsigned char)*s)) {
			if (++digits > 15)
				return -1;
			x = x * 10 + (*s++ - '0');
		}
		if (!digits || *s == '.')
			return -1;      /* decimals are not used by these fields */
		v->type = H_SF_INTEGER;
		v->integer = neg ? -x : x;
		*p = s;
		return 0;
	}
	if (isalpha((unsigned char)*s) || *s == '*') {
		v->type = H_SF_TOKEN;
		while (*s && (isalnum((unsigned char)*s) || strchr("!#$%&'*+-.^_`|~:/", *s))) {
			if (n + 1 >= H_SF_MAX_TEXT)
				return -1;
			v->text[n++] = *s++;
		}
		*p = s;
		return 0;
	}
	return -1;
}

static int params(const char **p, struct h_sf_item *it)
{
	it->nparams = 0;
	while (**p == ';') {
		int i = it->nparams;

		(*p)++;
		ows(p);
		if (i == H_SF_MAX_PARAMS || key(p, it->key[i]) < 0)
			return -1;
		if (**p == '=') {
			(*p)++;
			if (bare_item(p, &it->param[i]) < 0)
				return -1;
		} else {
			it->param[i].type = H_SF_BOOLEAN;
			it->param[i].integer = 1;
		}
		it->nparams++;
	}
	return 0;
}

int h_sf_list(const char *s, struct h_sf_item *out, int max)
{
	int n = 0;

	while (*s == ' ')
		s++;
	if (*s == '\0')
		return 0;
	for (;;) {
		if (n == max || bare_item(&s, &out[n].v) < 0 || params(&s, &out[n]) < 0)
			return -1;
		n++;
		ows(&s);
		if (*s == '\0')
			return n;
		if (*s++ != ',')
			return -1;
		ows(&s);
		if (*s == '\0')
			return -1;      /* a trailing comma */
	}
}

long long h_sf_param_int(const struct h_sf_item *it, const char *k)
{
	int i;

	for (i = 0; i < it->nparams; i++)
		if (strcmp(it->key[i], k) == 0)
			return it->param[i].type == H_SF_INTEGER ? it->param[i].integer : -1;
	return -1;
}
