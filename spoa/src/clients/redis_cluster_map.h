/*
 * Redis Cluster, the pure part: CRC16 key slots with hash tags, the slot
 * map from a CLUSTER SLOTS or CLUSTER SHARDS reply, MOVED / ASK errors. No
 * I/O and no event loop: unit-tested (tests/unit/test_redis_cluster.c) and
 * fuzzed (tests/fuzz/fuzz_redis_cluster.c). The client that uses it is
 * redis_cluster.c.
 */
#ifndef SPOGATE_REDIS_CLUSTER_MAP_H
#define SPOGATE_REDIS_CLUSTER_MAP_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#define RCLUSTER_SLOTS      16384
#define RCLUSTER_MAX_NODES  128
#define RCLUSTER_HOST_MAX   64
#define RCLUSTER_NO_NODE    0xffff

/* The hash slot of a key: CRC16 (XMODEM) of the key, or of the part
 * between the first '{' and the next '}' when that part is not empty, mod
 * 16384 (the Redis Cluster specification). */
unsigned rcluster_key_slot(const char *key, size_t len);

struct rcluster_node {
	char host[RCLUSTER_HOST_MAX];
	int port;
};

/* Which master serves each slot. slot[s] indexes node[], or is
 * RCLUSTER_NO_NODE when no master covers s. */
struct rcluster_map {
	uint16_t slot[RCLUSTER_SLOTS];
	struct rcluster_node node[RCLUSTER_MAX_NODES];
	int nnodes;
	int covered;                  /* slots with a master */
};

void rcluster_map_clear(struct rcluster_map *m);

/* Returns the index of host:port in m, adding it when absent; -1 when m is
 * full or the host does not fit. */
int rcluster_map_node(struct rcluster_map *m, const char *host, size_t hostlen, int port);

/* Fills m from a CLUSTER SLOTS reply: an array of
 * [start, end, [ip, port, ...], replicas...]; only the first node (the
 * master) of each range is kept. An empty ip (or "?") means the node that
 * answered: asked_host is used. Returns the number of covered slots (> 0),
 * or -1 when the reply is malformed (m is then cleared). */
int rcluster_map_from_slots(const redisReply *r, const char *asked_host,
                            struct rcluster_map *m);

/* Same from a CLUSTER SHARDS reply (Redis 7): an array of shards, each a
 * flat [key, value, ...] array with "slots" (pairs of start, end) and
 * "nodes" (flat maps with "ip" or "endpoint", "port", "role", "health");
 * the node with role "master" and health other than "fail" serves the
 * shard's slots. */
int rcluster_map_from_shards(const redisReply *r, const char *asked_host,
                             struct rcluster_map *m);

enum rcluster_redirect_kind {
	RCLUSTER_NOT_REDIRECT = 0,
	RCLUSTER_MOVED        = 1,
	RCLUSTER_ASK          = 2,
};

struct rcluster_redirect {
	enum rcluster_redirect_kind kind;
	unsigned slot;
	char host[RCLUSTER_HOST_MAX];
	int port;
};

/* Parses "host:port" of len bytes (the port after the last ':', 1..65535;
 * the host printable, no space, shorter than hostmax). Returns 0 or -1. */
int rcluster_parse_hostport(const char *s, size_t len, char *host, size_t hostmax, int *port);

/* Parses "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>" (the
 * host may be an IPv6 address: the port follows the last ':'; an empty
 * host means the node that answered). Returns the kind; out is filled only
 * for a redirect. Anything else, malformed redirects included, is
 * RCLUSTER_NOT_REDIRECT. */
enum rcluster_redirect_kind rcluster_parse_redirect(const char *s, size_t len,
                                                    struct rcluster_redirect *out);

#endif
