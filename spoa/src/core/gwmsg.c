/*
 * gw-check: NOTIFY arguments in, set-var actions out.
 */
#include "gwmsg.h"

#include <string.h>
#include <strings.h>

static const char *const reason_names[GW_R_MAX] = {
	[GW_R_NONE]                  = "",
	[GW_R_TOKEN_MISSING]         = "token_missing",
	[GW_R_TOKEN_INVALID]         = "token_invalid",
	[GW_R_TOKEN_EXPIRED]         = "token_expired",
	[GW_R_TOKEN_NOT_YET_VALID]   = "token_not_yet_valid",
	[GW_R_ISSUER_MISMATCH]       = "issuer_mismatch",
	[GW_R_AUDIENCE_MISMATCH]     = "audience_mismatch",
	[GW_R_PERMISSION_DENIED]     = "permission_denied",
	[GW_R_RATE_LIMITED_USER]     = "rate_limited_user",
	[GW_R_RATE_LIMITED_IP]       = "rate_limited_ip",
	[GW_R_AUTH_UNAVAILABLE]      = "auth_unavailable",
	[GW_R_AUTHZ_UNAVAILABLE]     = "authz_unavailable",
	[GW_R_RATELIMIT_UNAVAILABLE] = "ratelimit_unavailable",
};

const char *gw_reason_str(enum gw_reason r)
{
	if ((unsigned)r >= GW_R_MAX)
		return "unknown";
	return reason_names[r];
}

static int name_is(struct spop_str s, const char *lit)
{
	size_t n = strlen(lit);

	return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

/* Strings may come as STR or BIN; NULL means the sample was absent. */
static int take_str(const struct spop_data *d, struct spop_str *out)
{
	if (d->type == SPOP_DATA_STR || d->type == SPOP_DATA_BIN) {
		*out = d->u.str;
		return 0;
	}
	if (d->type == SPOP_DATA_NULL) {
		out->ptr = "";
		out->len = 0;
		return 0;
	}
	return -1;
}

static int take_bool(const struct spop_data *d, int *out)
{
	switch (d->type) {
	case SPOP_DATA_NULL:   *out = 0; return 0;
	case SPOP_DATA_BOOL:   *out = d->u.boolean; return 0;
	case SPOP_DATA_INT32:  *out = d->u.sint32 != 0; return 0;
	case SPOP_DATA_UINT32: *out = d->u.uint32 != 0; return 0;
	case SPOP_DATA_INT64:  *out = d->u.sint64 != 0; return 0;
	case SPOP_DATA_UINT64: *out = d->u.uint64 != 0; return 0;
	case SPOP_DATA_STR:
		*out = d->u.str.len == 1 && d->u.str.ptr[0] == '1';
		return 0;
	default:
		return -1;
	}
}

static int take_ip(const struct spop_data *d, struct gw_request *req)
{
	if (d->type == SPOP_DATA_IPV4) {
		req->ip_family = 4;
		memcpy(req->ip, d->u.ipv4, 4);
		return 0;
	}
	if (d->type == SPOP_DATA_IPV6) {
		req->ip_family = 6;
		memcpy(req->ip, d->u.ipv6, 16);
		return 0;
	}
	if (d->type == SPOP_DATA_NULL) {
		req->ip_family = 0;
		return 0;
	}
	return -1;
}

static int parse_args(struct spop_rd *rd, unsigned nargs, struct gw_request *req)
{
	struct spop_str name;
	struct spop_data val;
	unsigned i;
	int rc = 0;

	for (i = 0; i < nargs; i++) {
		if (spop_kv_next(rd, &name, &val) != 1)
			return -1;
		if (name_is(name, "route"))
			rc = take_str(&val, &req->route);
		else if (name_is(name, "auth"))
			rc = take_bool(&val, &req->auth);
		else if (name_is(name, "perm"))
			rc = take_str(&val, &req->perm);
		else if (name_is(name, "token"))
			rc = take_str(&val, &req->token);
		else if (name_is(name, "ip"))
			rc = take_ip(&val, req);
		else if (name_is(name, "method"))
			rc = take_str(&val, &req->method);
		else if (name_is(name, "path"))
			rc = take_str(&val, &req->path);
		else if (name_is(name, "rl_user"))
			rc = take_str(&val, &req->rl_user);
		else if (name_is(name, "rl_ip"))
			rc = take_str(&val, &req->rl_ip);
		else if (name_is(name, "req_id"))
			rc = take_str(&val, &req->req_id);
		else if (name_is(name, "traceparent"))
			rc = take_str(&val, &req->traceparent);
		else if (name_is(name, "tracestate"))
			rc = take_str(&val, &req->tracestate);
		else if (name_is(name, "client_subject"))
			rc = take_str(&val, &req->client_subject);
		else if (name_is(name, "client_fp"))
			rc = take_str(&val, &req->client_fp);
		/* unknown arguments are ignored: newer generators may add some */
		if (rc < 0)
			return -1;
	}
	return 0;
}

static void skip_args(struct spop_rd *rd, unsigned nargs, int *bad)
{
	struct spop_str name;
	struct spop_data val;
	unsigned i;

	for (i = 0; i < nargs && !*bad; i++)
		if (spop_kv_next(rd, &name, &val) != 1)
			*bad = 1;
}

int gw_request_parse(const uint8_t *payload, size_t len, struct gw_request *req)
{
	static const struct spop_str empty = { "", 0 };
	struct spop_rd rd;
	struct spop_str name;
	unsigned nargs;
	int r, found = 0, bad = 0;

	memset(req, 0, sizeof(*req));
	req->route = req->perm = req->token = req->method = empty;
	req->path = req->rl_user = req->rl_ip = empty;
	req->req_id = req->traceparent = req->tracestate = empty;
	req->client_subject = req->client_fp = empty;

	spop_rd_init(&rd, payload, len);
	while ((r = spop_msg_next(&rd, &name, &nargs)) == 1) {
		if (!found && name_is(name, GW_MSG_NAME)) {
			if (parse_args(&rd, nargs, req) < 0)
				return -1;
			found = 1;
		} else {
			skip_args(&rd, nargs, &bad);
			if (bad)
				return -1;
		}
	}
	if (r < 0)
		return -1;
	return found;
}

int gw_bearer_token(struct spop_str hdr, struct spop_str *tok)
{
	const char *p = hdr.ptr, *end = hdr.ptr + hdr.len;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (end - p < 7 || strncasecmp(p, "bearer", 6) != 0 ||
	    (p[6] != ' ' && p[6] != '\t'))
		return -1;
	p += 7;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (p == end)
		return -1;
	tok->ptr = p;
	tok->len = (size_t)(end - p);
	return 0;
}

void gw_verdict_init(struct gw_verdict *v)
{
	v->status = 0;
	v->reason = GW_R_NONE;
	v->has_rl = 0;
	v->rl_limit = v->rl_remaining = v->rl_reset = v->retry_after = 0;
	v->rl_policy = NULL;
	v->nvars = 0;
	v->arena_used = 0;
}

void gw_verdict_deny(struct gw_verdict *v, int status, enum gw_reason reason)
{
	if (v->status != 0)
		return;
	v->status = status;
	v->reason = reason;
}

int gw_verdict_add_var(struct gw_verdict *v, const char *name,
                       const char *value, size_t len)
{
	size_t i;

	if (len > GW_VAR_MAX_VALUE || v->nvars >= GW_MAX_VARS ||
	    len > sizeof(v->arena) - v->arena_used)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];

		/* CR, LF, NUL and friends would split or end a header. */
		if (c < 0x20 || c == 0x7f)
			return -1;
	}
	memcpy(v->arena + v->arena_used, value, len);
	v->vars[v->nvars].name = name;
	v->vars[v->nvars].value = v->arena + v->arena_used;
	v->vars[v->nvars].len = len;
	v->nvars++;
	v->arena_used += len;
	return 0;
}

long gw_ack_encode(uint8_t *buf, size_t cap, uint64_t stream_id,
                   uint64_t frame_id, const struct gw_verdict *v)
{
	struct spop_wr w;
	struct spop_data d;
	unsigned i;

	spop_wr_init(&w, buf, cap);
	spop_wr_frame_begin(&w, SPOP_FRM_ACK, SPOP_FLAG_FIN, stream_id, frame_id);
	d = spop_int32(v->status);
	spop_wr_set_var(&w, SPOP_SCOPE_TXN, "status", &d);
	if (v->reason != GW_R_NONE) {
		d = spop_cstr(gw_reason_str(v->reason));
		spop_wr_set_var(&w, SPOP_SCOPE_TXN, "reason", &d);
	}
	/* Identity goes out only with an allow: a denied request has none. */
	for (i = 0; i < v->nvars && v->status == 0; i++) {
		d = spop_strn(v->vars[i].value, v->vars[i].len);
		spop_wr_set_var(&w, SPOP_SCOPE_TXN, v->vars[i].name, &d);
	}
	if (v->has_rl) {
		d = spop_int64(v->rl_limit);
		spop_wr_set_var(&w, SPOP_SCOPE_TXN, "rl_limit", &d);
		d = spop_int64(v->rl_remaining);
		spop_wr_set_var(&w, SPOP_SCOPE_TXN, "rl_remaining", &d);
		d = spop_int64(v->rl_reset);
		spop_wr_set_var(&w, SPOP_SCOPE_TXN, "rl_reset", &d);
		if (v->rl_policy) {
			d = spop_cstr(v->rl_policy);
			spop_wr_set_var(&w, SPOP_SCOPE_TXN, "rl_policy", &d);
		}
		if (v->status == 429) {
			d = spop_int64(v->retry_after);
			spop_wr_set_var(&w, SPOP_SCOPE_TXN, "retry_after", &d);
		}
	}
	return spop_wr_frame_end(&w);
}
