/*
 * The request side of the /metrics listener: a pure function over the bytes
 * received so far, no I/O, so it can be fuzzed on its own (tests/fuzz/
 * fuzz_metrics_http.c). Only what a scraper sends is understood: a GET of
 * /metrics (with or without a query) or /healthz; the rest is not found.
 */
#ifndef SPOGATE_METRICS_HTTP_H
#define SPOGATE_METRICS_HTTP_H

#include <stddef.h>

enum metrics_req {
	METRICS_REQ_INCOMPLETE = 0,   /* wait for more bytes */
	METRICS_REQ_METRICS    = 1,
	METRICS_REQ_HEALTHZ    = 2,
	METRICS_REQ_NOT_FOUND  = 3,
	METRICS_REQ_TOO_LARGE  = 4,   /* cap bytes and no end of headers: close */
};

/* Classifies buf[0..len), the bytes of one request received so far on a
 * connection whose buffer holds cap bytes. buf may hold any bytes, NULs
 * included; it is not modified and need not be NUL-terminated. */
enum metrics_req metrics_http_parse(const char *buf, size_t len, size_t cap);

#endif
