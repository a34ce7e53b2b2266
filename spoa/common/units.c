/* Rate and duration parsing; see units.h. */
#include "units.h"

#include <ctype.h>
#include <string.h>

/* Reads a run of decimal digits into *out (bounded by max). Returns the
 * number of characters consumed, 0 when there is no digit or on overflow. */
static size_t read_uint(const char *s, int64_t max, int64_t *out)
{
	int64_t v = 0;
	size_t i = 0;

	while (isdigit((unsigned char)s[i])) {
		int d = s[i] - '0';
		if (v > (max - d) / 10)
			return 0;
		v = v * 10 + d;
		i++;
	}
	*out = v;
	return i;
}

struct unit {
	const char *name;
	int64_t mul;
};

/* A number of at most max followed by exactly one of the n units; *out =
 * number * multiplier (at most max too). Returns 0 or -1. */
static int parse_with_unit(const char *s, int64_t max, const struct unit *units, size_t n,
                           int64_t *out)
{
	int64_t v;
	size_t len, i;

	if (!s)
		return -1;
	len = read_uint(s, max, &v);
	if (len == 0 || s[len] == '\0')
		return -1;
	for (i = 0; i < n; i++) {
		if (strcmp(s + len, units[i].name) == 0) {
			if (v > max / units[i].mul)
				return -1;
			*out = v * units[i].mul;
			return 0;
		}
	}
	return -1;
}

int dur_parse_ms(const char *s, int64_t *ms)
{
	static const struct unit units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 },
		{ "h", 3600000 }, { "d", 86400000 },
	};

	return parse_with_unit(s, DUR_MS_MAX, units, sizeof(units) / sizeof(units[0]), ms);
}

int size_parse_bytes(const char *s, int64_t *bytes)
{
	static const struct unit units[] = {
		{ "B", 1 }, { "KB", 1LL << 10 }, { "KiB", 1LL << 10 }, { "MB", 1LL << 20 },
		{ "MiB", 1LL << 20 }, { "GB", 1LL << 30 }, { "GiB", 1LL << 30 },
	};

	return parse_with_unit(s, SIZE_BYTES_MAX, units, sizeof(units) / sizeof(units[0]), bytes);
}

int rate_parse(const char *s, long *limit, long *period_s)
{
	static const struct { const char *name; long secs; } units[] = {
		{ "second", 1 }, { "seconds", 1 }, { "sec", 1 }, { "s", 1 },
		{ "minute", 60 }, { "minutes", 60 }, { "min", 60 }, { "m", 60 },
		{ "hour", 3600 }, { "hours", 3600 }, { "h", 3600 },
		{ "day", 86400 }, { "days", 86400 }, { "d", 86400 },
	};
	int64_t v, ms;
	size_t n, i;
	const char *unit;

	if (!s)
		return -1;
	n = read_uint(s, RATE_LIMIT_MAX, &v);
	if (n == 0 || v < 1 || s[n] != '/')
		return -1;
	unit = s + n + 1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(unit, units[i].name) == 0) {
			*limit = (long)v;
			*period_s = units[i].secs;
			return 0;
		}
	}
	/* "5/30s": a duration window, which must be whole seconds. */
	if (dur_parse_ms(unit, &ms) < 0 || ms < 1000 || ms % 1000 != 0 ||
	    ms / 1000 > RATE_PERIOD_MAX)
		return -1;
	*limit = (long)v;
	*period_s = (long)(ms / 1000);
	return 0;
}
