/*
 * Redis Sentinel, the pure part: what Sentinel says about a master. No I/O:
 * unit-tested (tests/unit/test_redis_cluster.c) and fuzzed
 * (tests/fuzz/fuzz_redis_cluster.c). The client that asks Sentinel is
 * redis.c (redis_opts.sentinel_*).
 */
#ifndef SPOGATE_REDIS_SENTINEL_H
#define SPOGATE_REDIS_SENTINEL_H

#include <stddef.h>

#include <hiredis/hiredis.h>

/* The master's address from a SENTINEL get-master-addr-by-name reply (an
 * array of two strings, ip and port). Returns 0, or -1 when the reply is
 * anything else (a nil: Sentinel does not know the name). */
int rsentinel_parse_master(const redisReply *r, char *host, size_t hostlen, int *port);

/* A +switch-master message, "<name> <old ip> <old port> <new ip> <new
 * port>" of len bytes: returns 1 with the new address when it is about
 * master name, 0 when it is about another master, -1 when malformed. */
int rsentinel_parse_switch(const char *s, size_t len, const char *name, char *host,
                           size_t hostlen, int *port);

#endif
