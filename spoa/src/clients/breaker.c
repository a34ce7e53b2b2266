/*
 * Circuit breaker (see breaker.h).
 */
#include "breaker.h"

#include <string.h>

void breaker_init(struct breaker *b, int threshold, double open_s)
{
	memset(b, 0, sizeof(*b));
	b->state = BREAKER_CLOSED;
	b->threshold = threshold > 0 ? threshold : 1;
	b->open_s = open_s;
}

int breaker_admit(struct breaker *b, double now)
{
	switch (b->state) {
	case BREAKER_CLOSED:
		return 1;
	case BREAKER_OPEN:
		if (now < b->open_until)
			return 0;
		b->state = BREAKER_HALF_OPEN;
		b->probe_inflight = 0;
		/* fall through */
	case BREAKER_HALF_OPEN:
		if (b->probe_inflight)
			return 0;
		b->probe_inflight = 1;
		return 1;
	}
	return 0;
}

void breaker_success(struct breaker *b)
{
	b->state = BREAKER_CLOSED;
	b->failures = 0;
	b->probe_inflight = 0;
}

int breaker_failure(struct breaker *b, double now)
{
	if (b->state == BREAKER_OPEN)
		return 0;               /* a late failure of a call sent before */
	if (b->state == BREAKER_CLOSED && ++b->failures < b->threshold)
		return 0;
	b->state = BREAKER_OPEN;
	b->open_until = now + b->open_s;
	b->probe_inflight = 0;
	b->failures = 0;
	b->opened++;
	return 1;
}

void breaker_reconnected(struct breaker *b)
{
	if (b->state == BREAKER_OPEN) {
		b->state = BREAKER_HALF_OPEN;
		b->probe_inflight = 0;
	}
}
