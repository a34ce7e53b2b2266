/*
 * Request classification for the /metrics listener (see metrics_http.h).
 */
#include "metrics_http.h"

#include <string.h>

static int starts(const char *buf, size_t len, const char *s)
{
	size_t n = strlen(s);

	return len >= n && memcmp(buf, s, n) == 0;
}

enum metrics_req metrics_http_parse(const char *buf, size_t len, size_t cap)
{
	/* Headers end at a blank line; a bare-LF client is tolerated. */
	if (!memmem(buf, len, "\r\n\r\n", 4) && !memmem(buf, len, "\n\n", 2))
		return len >= cap ? METRICS_REQ_TOO_LARGE : METRICS_REQ_INCOMPLETE;
	if (starts(buf, len, "GET /metrics ") || starts(buf, len, "GET /metrics?"))
		return METRICS_REQ_METRICS;
	if (starts(buf, len, "GET /healthz ") || starts(buf, len, "GET /healthz?"))
		return METRICS_REQ_HEALTHZ;
	return METRICS_REQ_NOT_FOUND;
}
