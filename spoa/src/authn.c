/*
 * Authentication stage.
 *
 * A route that requires authentication and a request without a bearer
 * token is 401 token_missing. Token verification (local JWT, Auth Service)
 * plugs in here.
 */
#include "authn.h"

enum stage_rc authn_stage(struct decision *d)
{
	if (!d->req.auth)
		return STAGE_NEXT;
	if (d->token.len == 0) {
		gw_verdict_deny(&d->v, 401, GW_R_TOKEN_MISSING);
		return STAGE_NEXT;
	}
	return STAGE_NEXT;
}
