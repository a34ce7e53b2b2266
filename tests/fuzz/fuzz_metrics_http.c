/*
 * libFuzzer target: the /metrics listener's request parser, fed the way a
 * connection feeds it: the input arrives in pieces (each byte of a short
 * prefix says how long the next piece is), and the parser sees the
 * growing prefix each time, as on_client() does after every recv().
 * Once it has decided, more bytes must never change its mind.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP 4096   /* REQ_MAX of metrics.c */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum metrics_req rq = METRICS_REQ_INCOMPLETE, first = METRICS_REQ_INCOMPLETE;
	size_t nsplit, len = 0, i = 0;
	char *buf;

	if (size < 1)
		return 0;
	nsplit = data[0] & 7;
	if (size < 1 + nsplit)
		return 0;
	buf = malloc(CAP);
	if (!buf)
		return 0;
	data += 1 + nsplit;
	size -= 1 + nsplit;
	while (len < size && len < CAP) {
		size_t piece = i < nsplit ? (size_t)data[-(long)nsplit + (long)i] + 1 : size - len;

		i++;
		if (piece > size - len)
			piece = size - len;
		if (piece > CAP - len)
			piece = CAP - len;
		memcpy(buf + len, data + len, piece);
		len += piece;
		/* An exactly-sized copy, so a read past len is an ASan error. */
		{
			char *view = malloc(len);

			if (!view)
				break;
			memcpy(view, buf, len);
			rq = metrics_http_parse(view, len, CAP);
			free(view);
		}
		if (first != METRICS_REQ_INCOMPLETE && rq != first)
			abort();
		if (rq != METRICS_REQ_INCOMPLETE && first == METRICS_REQ_INCOMPLETE)
			first = rq;
		if (rq == METRICS_REQ_TOO_LARGE && len < CAP)
			abort();
	}
	if (len == CAP && rq == METRICS_REQ_INCOMPLETE)
		abort();
	free(buf);
	return 0;
}
