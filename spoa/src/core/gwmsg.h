/*
 * The gw-check message of the SPOE contract (DESIGN.md): the request
 * HAProxy sends and the verdict the agent answers with. Pure functions over
 * the codec; no I/O.
 */
#ifndef SPOGATE_GWMSG_H
#define SPOGATE_GWMSG_H

#include <stddef.h>
#include <stdint.h>

#include "spop.h"

#define GW_MSG_NAME        "gw-check"
#define GW_MAX_VARS        16
#define GW_VAR_ARENA       8192
#define GW_VAR_MAX_VALUE   1024    /* longer identity values are refused */

/* Arguments of gw-check. Strings point into the NOTIFY frame, which the
 * decision owns; an argument HAProxy sent as NULL (sample absent) is left
 * empty, never an error. */
struct gw_request {
	struct spop_str route;
	struct spop_str perm;
	struct spop_str token;     /* the raw Authorization header value */
	struct spop_str method;
	struct spop_str path;
	struct spop_str rl_user;
	struct spop_str rl_ip;
	/* Request id and W3C trace context (for the Auth/Authz calls), and the
	 * verified client certificate under mTLS; empty when absent. */
	struct spop_str req_id;
	struct spop_str traceparent;
	struct spop_str tracestate;
	struct spop_str client_subject;
	struct spop_str client_fp;
	int auth;
	int ip_family;             /* 0 (absent), 4 or 6 */
	uint8_t ip[16];
};

enum gw_reason {
	GW_R_NONE                  = 0,
	GW_R_TOKEN_MISSING         = 1,
	GW_R_TOKEN_INVALID         = 2,
	GW_R_TOKEN_EXPIRED         = 3,
	GW_R_TOKEN_NOT_YET_VALID   = 4,
	GW_R_ISSUER_MISMATCH       = 5,
	GW_R_AUDIENCE_MISMATCH     = 6,
	GW_R_PERMISSION_DENIED     = 7,
	GW_R_RATE_LIMITED_USER     = 8,
	GW_R_RATE_LIMITED_IP       = 9,
	GW_R_AUTH_UNAVAILABLE      = 10,
	GW_R_AUTHZ_UNAVAILABLE     = 11,
	GW_R_RATELIMIT_UNAVAILABLE = 12,
	GW_R_MAX
};

struct gw_var {
	const char *name;          /* static or config-owned, outlives the verdict */
	const char *value;         /* in the verdict's arena */
	size_t len;
};

struct gw_verdict {
	int status;                /* 0 = allow; 401, 403, 429, 503 */
	enum gw_reason reason;
	int has_rl;
	int64_t rl_limit;
	int64_t rl_remaining;
	int64_t rl_reset;
	const char *rl_policy;     /* static: the policy the numbers are for ("user", "ip") */
	int64_t retry_after;       /* sent only with 429 */
	unsigned nvars;
	struct gw_var vars[GW_MAX_VARS];
	size_t arena_used;
	char arena[GW_VAR_ARENA];
};

/* Parses a NOTIFY payload. Returns 1 when a gw-check message was found and
 * parsed into req, 0 when the frame holds no gw-check (it is then answered
 * with an empty ACK), -1 when the payload is malformed. */
int gw_request_parse(const uint8_t *payload, size_t len, struct gw_request *req);

/* Extracts the token of a "Bearer <token>" header value (scheme matched
 * case-insensitively, surrounding blanks ignored). Returns 0 with tok set,
 * or -1 when there is no bearer token. */
int gw_bearer_token(struct spop_str hdr, struct spop_str *tok);

const char *gw_reason_str(enum gw_reason r);

void gw_verdict_init(struct gw_verdict *v);

/* Sets status and reason in one go; the first denial wins. */
void gw_verdict_deny(struct gw_verdict *v, int status, enum gw_reason reason);

/* Copies an identity value into the verdict. Returns 0, or -1 when the value
 * holds a control character, exceeds GW_VAR_MAX_VALUE, or does not fit: the
 * caller answers 401 token_invalid, so such a value is never forwarded. */
int gw_verdict_add_var(struct gw_verdict *v, const char *name,
                       const char *value, size_t len);

/* Encodes the ACK for stream/frame ids. Returns its size on the wire or -1
 * when it does not fit in cap. */
long gw_ack_encode(uint8_t *buf, size_t cap, uint64_t stream_id,
                   uint64_t frame_id, const struct gw_verdict *v);

#endif
