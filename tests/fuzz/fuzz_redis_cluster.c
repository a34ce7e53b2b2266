/*
 * libFuzzer target: what a Redis Cluster node says about the cluster. The
 * input is RESP bytes, read by hiredis' own reader as the agent reads them
 * off the wire; every reply is given to the CLUSTER SLOTS and CLUSTER
 * SHARDS parsers, an error or status reply to the MOVED / ASK parser, and
 * the raw bytes to the redirect parser too; Sentinel's master address
 * reply and +switch-master message parsers get the same. Whatever is accepted must be a
 * consistent map: every covered slot names a node, ports in range.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redis_cluster_map.h"
#include "redis_sentinel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rcluster_map map;

static void check_map(int covered)
{
	int s, n = 0;

	if (covered < 0) {
		if (map.covered != 0)
			abort();
		return;
	}
	for (s = 0; s < RCLUSTER_SLOTS; s++) {
		if (map.slot[s] == RCLUSTER_NO_NODE)
			continue;
		if (map.slot[s] >= map.nnodes)
			abort();
		n++;
	}
	if (n != covered || covered == 0)
		abort();
	for (s = 0; s < map.nnodes; s++)
		if (map.node[s].port <= 0 || map.node[s].port > 65535 ||
		    strlen(map.node[s].host) >= RCLUSTER_HOST_MAX || map.node[s].host[0] == '\0')
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rcluster_redirect rd;
	redisReader *r = redisReaderCreate();
	void *reply = NULL;
	int replies = 0;

	char host[64];
	int port;

	rcluster_parse_redirect((const char *)data, size, &rd);
	if (rsentinel_parse_switch((const char *)data, size, "gw", host, sizeof(host), &port) == 1 &&
	    (port <= 0 || port > 65535))
		abort();
	if (!r)
		return 0;
	if (redisReaderFeed(r, (const char *)data, size) != REDIS_OK)
		goto out;
	while (replies++ < 8 && redisReaderGetReply(r, &reply) == REDIS_OK && reply) {
		const redisReply *rep = reply;

		check_map(rcluster_map_from_slots(rep, "10.0.0.1", &map));
		check_map(rcluster_map_from_shards(rep, "10.0.0.1", &map));
		if (rsentinel_parse_master(rep, host, sizeof(host), &port) == 0 &&
		    (port <= 0 || port > 65535))
			abort();
		if (rep->type == REDIS_REPLY_ERROR || rep->type == REDIS_REPLY_STATUS)
			if (rcluster_parse_redirect(rep->str, rep->len, &rd) != RCLUSTER_NOT_REDIRECT &&
			    (rd.slot >= RCLUSTER_SLOTS || rd.port <= 0 || rd.port > 65535))
				abort();
		freeReplyObject(reply);
		reply = NULL;
	}
out:
	redisReaderFree(r);
	return 0;
}
