/*
 * libFuzzer target: the rate-limit script's replies. The input is RESP
 * bytes, read by hiredis' own reader as the agent reads them off the wire;
 * every complete reply goes to rl_script_reply_parse() for one, two and
 * three keys, and what it accepts through the policy pick the stage makes
 * (rl_outcome_pick), which must stay in range. (fuzz_redis_cluster covers
 * the cluster replies.)
 *
 * hiredis 0.14 allocates what an array header announces before a byte of
 * it arrives ("*1000000000" is 8 GB of calloc): Redis is a trusted peer, so
 * inputs announcing more than MAX_ELEMENTS elements are skipped rather than
 * reported (see /work/notes/harden.md).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "ratelimit.h"
#include "ratelimit_core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ELEMENTS 100000

/* 1 when some '*' in the input is followed by a count above MAX_ELEMENTS. */
static int announces_huge_array(const uint8_t *p, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		unsigned long long v = 0;

		if (p[i] != '*')
			continue;
		for (j = i + 1; j < n && p[j] >= '0' && p[j] <= '9' && v <= MAX_ELEMENTS; j++)
			v = v * 10 + (p[j] - '0');
		if (v > MAX_ELEMENTS)
			return 1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	redisReader *rd = redisReaderCreate();
	void *reply = NULL;
	int replies = 0;

	if (announces_huge_array(data, size) || !rd) {
		if (rd)
			redisReaderFree(rd);
		return 0;
	}
	/* The reader's own bounds, as a connection has them. */
	rd->maxbuf = 64 * 1024;
	if (redisReaderFeed(rd, (const char *)data, size) != REDIS_OK)
		goto out;
	while (replies++ < 64 && redisReaderGetReply(rd, &reply) == REDIS_OK && reply) {
		struct rl_key_result res[3];
		struct rl_policy pol[3];
		struct rl_outcome o;
		int n, allowed, i;

		for (n = 1; n <= 3; n++) {
			memset(res, 0, sizeof(res));
			for (i = 0; i < n; i++) {
				pol[i].limit = 10 + i;
				pol[i].period = 60;
			}
			if (rl_script_reply_parse(reply, n, pol, &allowed, res) < 0)
				continue;
			if (allowed != 0 && allowed != 1)
				abort();
			rl_outcome_pick(allowed, pol, res, n, &o);
			if (o.index < 0 || o.index >= n || o.allowed != allowed ||
			    (!allowed && o.retry_after_s < 1))
				abort();
		}
		freeReplyObject(reply);
		reply = NULL;
	}
out:
	redisReaderFree(rd);
	return 0;
}
