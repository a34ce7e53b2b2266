/*
 * Identities: claim extraction and the reference-counted result (see
 * identity.h).
 */
#include "identity.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Roles and permissions are all kept: the token or the answer bounds them
 * (max_token_bytes, RPC_MAX_RESPONSE); a list past this many entries (a
 * few bytes each) cannot come from either and makes the result fail. */
#define LIST_MAX_BYTES  (64 * 1024 * sizeof(size_t))

static struct identity denials[GW_R_MAX];

/* Before main(), so the workers only ever read the shared refusals. */
__attribute__((constructor)) static void denials_init(void)
{
	int i;

	for (i = 0; i < GW_R_MAX; i++) {
		denials[i].is_static = 1;
		denials[i].status = 401;
		denials[i].reason = (enum gw_reason)i;
	}
}

void identity_unref(void *p)
{
	struct identity *r = p;

	if (!r || r->is_static || __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	free(r);
}

struct identity *identity_ref(struct identity *r)
{
	if (!r->is_static)
		__atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
	return r;
}

struct identity *identity_deny(int status, enum gw_reason reason)
{
	if (status != 401 || (unsigned)reason >= GW_R_MAX)
		reason = GW_R_TOKEN_INVALID;
	return &denials[reason];
}

size_t identity_size(const void *p)
{
	const struct identity *r = p;

	return r->is_static ? 0 : r->bytes;
}

/* Appends a NUL-terminated copy of s to the identity arena and returns its
 * offset: offsets, not pointers, until the arena is finished, because the
 * buffer moves while it grows. */
static size_t sb_add(struct dynbuf *b, const char *s, size_t n)
{
	size_t off = b->len;

	dynbuf_add(b, s, n);
	dynbuf_add(b, "", 1);
	return b->err ? 0 : off;
}

/* Identity under construction. */
struct rbuild {
	struct dynbuf sb;
	size_t user;                   /* offset, or SIZE_MAX */
	size_t var_off[GW_MAX_VARS];
	size_t var_len[GW_MAX_VARS];
	const char *var_name[GW_MAX_VARS];
	unsigned nvars;
	struct dynbuf roles, perms;    /* size_t offsets into sb */
	int bad;                       /* a value that must never be forwarded */
};

static int value_ok(const char *s, size_t n)
{
	size_t i;

	if (n > GW_VAR_MAX_VALUE)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static void rb_var(struct rbuild *rb, const char *name, const char *s, size_t n)
{
	if (!value_ok(s, n) || rb->nvars >= GW_MAX_VARS) {
		rb->bad = 1;
		return;
	}
	rb->var_name[rb->nvars] = name;
	rb->var_off[rb->nvars] = sb_add(&rb->sb, s, n);
	rb->var_len[rb->nvars] = n;
	rb->nvars++;
}

static void rb_init(struct rbuild *rb)
{
	memset(rb, 0, sizeof(*rb));
	rb->user = SIZE_MAX;
	rb->roles.limit = LIST_MAX_BYTES;
	rb->perms.limit = LIST_MAX_BYTES;
}

static void rb_list(struct rbuild *rb, struct dynbuf *list, const char *s, size_t len)
{
	size_t off;

	if (len == 0)
		return;
	off = sb_add(&rb->sb, s, len);
	dynbuf_add(list, (const char *)&off, sizeof(off));
}

static void rb_user(struct rbuild *rb, const char *s, size_t n)
{
	rb->user = sb_add(&rb->sb, s, n);
	rb_var(rb, "user_id", s, n);
}

/* Entry i of an offset list, as a pointer into the finished arena. */
static const char *rb_entry(const struct rbuild *rb, const struct dynbuf *list, size_t i)
{
	size_t off;

	memcpy(&off, list->p + i * sizeof(off), sizeof(off));
	return rb->sb.p + off;
}

/* Splits a space-separated scope into entries. */
static void rb_scope(struct rbuild *rb, const char *s)
{
	const char *p = s, *e;

	while (*p) {
		while (*p == ' ')
			p++;
		e = p;
		while (*e && *e != ' ')
			e++;
		rb_list(rb, &rb->perms, p, (size_t)(e - p));
		p = e;
	}
}

/* Consumes rb: the result owns the arena, the lists are freed. */
static struct identity *rb_finish(struct rbuild *rb)
{
	size_t nroles = rb->roles.len / sizeof(size_t), nperms = rb->perms.len / sizeof(size_t);
	struct identity *r = NULL;
	size_t i, size;

	if (rb->bad) {
		r = identity_deny(401, GW_R_TOKEN_INVALID);
		goto out_free;
	}
	if (rb->sb.err || rb->roles.err || rb->perms.err)
		goto out_free;
	if (rb->user == SIZE_MAX) {
		r = identity_deny(401, GW_R_TOKEN_INVALID);
		goto out_free;
	}
	/* The arena is copied at its exact size: dynbuf grows by doubling
	 * from 1 KB, which cost every cached token a kilobyte. */
	size = sizeof(*r) + (nroles + nperms) * sizeof(r->strs[0]) +
	       rb->nvars * sizeof(struct gw_var);
	r = malloc(size + rb->sb.len);
	if (!r)
		goto out_free;
	memset(r, 0, sizeof(*r));
	r->refs = 1;
	r->bytes = size + rb->sb.len + 16;     /* + malloc's header */
	r->vars = (struct gw_var *)(r->strs + nroles + nperms);
	r->buf = (char *)r + size;
	memcpy(r->buf, rb->sb.p, rb->sb.len);
	r->id.user_id = r->buf + rb->user;
	for (i = 0; i < rb->nvars; i++) {
		r->vars[i].name = rb->var_name[i];
		r->vars[i].value = r->buf + rb->var_off[i];
		r->vars[i].len = rb->var_len[i];
	}
	r->nvars = rb->nvars;
	for (i = 0; i < nroles; i++)
		r->strs[i] = r->buf + (rb_entry(rb, &rb->roles, i) - rb->sb.p);
	for (i = 0; i < nperms; i++)
		r->strs[nroles + i] = r->buf + (rb_entry(rb, &rb->perms, i) - rb->sb.p);
	r->id.roles = r->strs;
	r->id.nroles = nroles;
	r->id.perms = r->strs + nroles;
	r->id.nperms = nperms;
 out_free:
	free(rb->sb.p);
	dynbuf_free(&rb->roles);
	dynbuf_free(&rb->perms);
	return r;
}

/* The joined string, malloc'd, or NULL when building it failed. */
static char *strb_take(struct dynbuf *b)
{
	if (b->err) {
		dynbuf_free(b);
		return NULL;
	}
	return b->p ? b->p : strdup("");
}

/* Text form of a claim value: strings as they are, arrays joined with
 * commas, anything else as compact JSON. Returns a malloc'd string. */
static char *claim_text(json_t *v)
{
	struct dynbuf b = { .limit = 64 * 1024 };
	json_t *e;
	size_t i;
	char *s;

	if (json_is_string(v))
		return strndup(json_string_value(v), json_string_length(v));
	if (!json_is_array(v))
		return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	json_array_foreach(v, i, e) {
		if (i)
			dynbuf_add(&b, ",", 1);
		if (json_is_string(e)) {
			dynbuf_add(&b, json_string_value(e), json_string_length(e));
			continue;
		}
		s = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!s)
			b.err = 1;
		else
			dynbuf_add(&b, s, strlen(s));
		free(s);
	}
	return strb_take(&b);
}

static void rb_string_list(struct rbuild *rb, struct dynbuf *list, json_t *v)
{
	json_t *e;
	size_t i;

	if (json_is_string(v)) {
		rb_list(rb, list, json_string_value(v), json_string_length(v));
		return;
	}
	json_array_foreach(v, i, e)
		if (json_is_string(e))
			rb_list(rb, list, json_string_value(e), json_string_length(e));
}

/* The identity of verified JWT claims. NULL on no memory. */
struct identity *identity_from_claims(json_t *claims, const struct claim_map *map,
                                      size_t nmap)
{
	struct rbuild rb;
	json_t *sub = json_object_get(claims, "sub"), *v;
	size_t i;

	rb_init(&rb);
	if (json_is_string(sub) && json_string_length(sub) > 0) {
		rb_user(&rb, json_string_value(sub), json_string_length(sub));
	}
	for (i = 0; i < nmap; i++) {
		char *s;

		if (strcmp(map[i].claim, "sub") == 0)
			continue;
		v = json_object_get(claims, map[i].claim);
		if (!v || json_is_null(v))
			continue;
		s = claim_text(v);
		if (!s) {
			rb.sb.err = 1;
			break;
		}
		rb_var(&rb, map[i].var, s, strlen(s));
		free(s);
	}
	rb_string_list(&rb, &rb.roles, json_object_get(claims, "roles"));
	rb_string_list(&rb, &rb.perms, json_object_get(claims, "permissions"));
	v = json_object_get(claims, "scope");
	if (json_is_string(v))
		rb_scope(&rb, json_string_value(v));
	return rb_finish(&rb);
}

static char *join(char *const *items, size_t n)
{
	struct dynbuf b = { .limit = 64 * 1024 };
	size_t i;

	for (i = 0; i < n; i++) {
		if (i)
			dynbuf_add(&b, ",", 1);
		dynbuf_add(&b, items[i], strlen(items[i]));
	}
	return strb_take(&b);
}

static enum gw_reason reason_parse(const char *s)
{
	int i;

	for (i = GW_R_TOKEN_MISSING; i < GW_R_MAX; i++)
		if (strcmp(s, gw_reason_str((enum gw_reason)i)) == 0)
			return (enum gw_reason)i;
	return GW_R_TOKEN_INVALID;
}

struct identity *identity_from_response(const Spogate__Auth__V1__ValidateTokenResponse *m,
                                        const struct claim_map *map, size_t nmap)
{
	struct rbuild rb;
	enum gw_reason reason;
	size_t i, j;

	if (!m->valid) {
		reason = reason_parse(m->reason);
		/* The service may only deny authentication, with a 401 reason. */
		if (reason > GW_R_AUDIENCE_MISMATCH)
			reason = GW_R_TOKEN_INVALID;
		return identity_deny(401, reason);
	}
	rb_init(&rb);
	if (m->user_id && *m->user_id) {
		rb_user(&rb, m->user_id, strlen(m->user_id));
	}
	for (i = 0; i < nmap; i++) {
		const char *c = map[i].claim;
		char *s = NULL;

		if (strcmp(c, "sub") == 0)
			continue;
		if (strcmp(c, "email") == 0 && m->email && *m->email) {
			s = strdup(m->email);
		} else if (strcmp(c, "roles") == 0 && m->n_roles) {
			s = join(m->roles, m->n_roles);
		} else if (strcmp(c, "permissions") == 0 && m->n_permissions) {
			s = join(m->permissions, m->n_permissions);
		} else {
			for (j = 0; j < m->n_claims; j++)
				if (strcmp(m->claims[j]->key, c) == 0) {
					s = strdup(m->claims[j]->value);
					break;
				}
			if (j == m->n_claims)
				continue;
		}
		if (!s) {
			if (strcmp(c, "email") && strcmp(c, "roles") && strcmp(c, "permissions"))
				rb.sb.err = 1;
			continue;
		}
		rb_var(&rb, map[i].var, s, strlen(s));
		free(s);
	}
	for (i = 0; i < m->n_roles; i++)
		rb_list(&rb, &rb.roles, m->roles[i], strlen(m->roles[i]));
	for (i = 0; i < m->n_permissions; i++)
		rb_list(&rb, &rb.perms, m->permissions[i], strlen(m->permissions[i]));
	return rb_finish(&rb);
}

int identity_response_check(const uint8_t *resp, size_t len, const struct claim_map *map,
                            size_t nmap)
{
	Spogate__Auth__V1__ValidateTokenResponse *m;
	struct identity *r;
	size_t i;
	int st;

	m = spogate__auth__v1__validate_token_response__unpack(NULL, len, resp);
	if (!m)
		return -1;
	r = identity_from_response(m, map, nmap);
	spogate__auth__v1__validate_token_response__free_unpacked(m, NULL);
	if (!r)
		return -1;
	st = r->status;
	if (st == 0) {
		if (!r->id.user_id || !*r->id.user_id || r->nvars == 0 || r->nvars > GW_MAX_VARS)
			abort();
		for (i = 0; i < r->nvars; i++)
			if (!value_ok(r->vars[i].value, r->vars[i].len) ||
			    strlen(r->vars[i].value) != r->vars[i].len)
				abort();
		for (i = 0; i < r->id.nroles + r->id.nperms; i++)
			if (!r->strs[i] || !*r->strs[i])
				abort();
	} else if (st != 401 || r->reason > GW_R_AUDIENCE_MISMATCH) {
		abort();
	}
	identity_unref(r);
	return st;
}
