/*
 * Authentication stage: who is calling. Sets v.status/reason on failure and
 * the identity vars (user_id, mapped claims) on success.
 */
#ifndef SPOGATE_AUTHN_H
#define SPOGATE_AUTHN_H

#include "decision.h"

enum stage_rc authn_stage(struct decision *d);

#endif
