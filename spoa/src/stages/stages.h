/*
 * The stage table: the stages a decision runs through, in order. main()
 * installs it with stages_install() (stage.h).
 */
#ifndef SPOGATE_STAGES_H
#define SPOGATE_STAGES_H

#include <stddef.h>

#include "stage.h"

extern const struct stage_ops *const stage_table[];
extern const size_t stage_table_len;

#endif
