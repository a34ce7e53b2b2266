/* Rates ("100/minute") and durations ("500ms"), as written in the gateway
 * YAML. Shared by the generator (which validates and converts them) and the
 * agent (which may read them from its own config). Pure functions, no I/O. */
#ifndef SPOGATE_UNITS_H
#define SPOGATE_UNITS_H

#include <stdint.h>

/* Largest values accepted, so that later arithmetic never overflows. */
#define RATE_LIMIT_MAX   1000000000L     /* requests per period */
#define RATE_PERIOD_MAX  (366L * 86400L) /* one year, in seconds */
#define DUR_MS_MAX       (366LL * 86400LL * 1000LL)
#define SIZE_BYTES_MAX   (1LL << 40)             /* 1 TiB */

/* Parses "N/unit" where unit is second|minute|hour|day (also s|m|h|d, and
 * plurals), or "N/<duration>" such as "5/30s". Whitespace is not allowed.
 * On success stores the limit (>= 1) and the period in whole seconds (>= 1)
 * and returns 0; returns -1 on any malformed or out-of-range input. */
int rate_parse(const char *s, long *limit, long *period_s);

/* Parses a duration: a non-negative integer followed by ms|s|m|h|d
 * ("500ms", "30s", "2m"). A bare integer is refused: the unit is required
 * so that "30" can never be misread as seconds vs milliseconds. Stores
 * milliseconds and returns 0, or returns -1. */
int dur_parse_ms(const char *s, int64_t *ms);

/* Parses a size: a non-negative integer followed by B, KB, MB or GB (also
 * KiB, MiB, GiB; all binary: 1 MB = 1 MiB = 1048576 bytes), such as "32MB".
 * The unit is required. Stores bytes and returns 0, or returns -1. */
int size_parse_bytes(const char *s, int64_t *bytes);

#endif
