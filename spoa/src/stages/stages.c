/*
 * The stage table. Order matters: identity first, so authorization and
 * per-user limits know the user; a stage skips itself when an earlier one
 * denied. Adding a stage is adding its file, which defines a struct
 * stage_ops NAME_stage, and one STAGE(NAME) line here.
 */
#include "stages.h"

#define STAGE_TABLE(STAGE) \
	STAGE(delay)           \
	STAGE(authn)           \
	STAGE(authz)           \
	STAGE(ratelimit)       \
	/* end of the table */

#define STAGE_DECLARE(name) extern const struct stage_ops name##_stage;
#define STAGE_ENTRY(name) &name##_stage,

STAGE_TABLE(STAGE_DECLARE)

const struct stage_ops *const stage_table[] = {
	STAGE_TABLE(STAGE_ENTRY)
};

const size_t stage_table_len = sizeof(stage_table) / sizeof(stage_table[0]);
