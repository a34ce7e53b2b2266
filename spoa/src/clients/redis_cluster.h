/*
 * Redis Cluster client: slot-aware routing on top of hiredis async (Debian
 * 12's hiredis 0.14 has no cluster support, so this is the small part we
 * write ourselves; the parsing is redis_cluster_map.c).
 *
 * One hiredis async connection per master per worker, on the worker's
 * libev loop, created when a command first needs that master. MOVED is
 * followed (and refreshes the map), ASK is followed with ASKING, a lost
 * connection refreshes the map. Nothing blocks.
 *
 * Callbacks keep hiredis' contract: a command's callback runs exactly once,
 * with the final reply (freed by the client after the callback returns), or
 * with NULL when the command was lost (connection gone, no master known for
 * its slot, too many redirects, client destroyed).
 */
#ifndef SPOGATE_REDIS_CLUSTER_H
#define SPOGATE_REDIS_CLUSTER_H

#include <hiredis/async.h>

#include "redis_cluster_map.h"

struct ev_loop;
struct rcluster;

typedef void rcluster_cb(redisReply *reply, void *priv);

/* Called for every new node connection before any command goes on it
 * (AUTH, SCRIPT LOAD...: commands appended here are sent first). */
typedef void rcluster_setup_cb(redisAsyncContext *ac, void *arg);

struct rcluster_stats {
	uint64_t moved;
	uint64_t ask;
	uint64_t refreshes;
	uint64_t connects;
	uint64_t disconnects;
};

/* seeds: "host:port" strings (numeric hosts: nothing here resolves names).
 * Starts the first slot-map refresh on loop. Returns NULL when out of
 * memory or no seed parses. */
struct rcluster *rcluster_new(struct ev_loop *loop, const char *const *seeds, int nseeds,
                              rcluster_setup_cb *setup, void *setup_arg);

/* Fails every pending command (callbacks with NULL), closes every
 * connection and frees rc. */
void rcluster_free(struct rcluster *rc);

/* 1 once a slot map is known and covers every slot, else 0. */
int rcluster_ready(const struct rcluster *rc);

/* Sends a command to the master of slot. argv/argl are copied. Returns 0
 * (cb will run exactly once), or -1 when it could not be queued at all (no
 * master known, the master's connection is down and backing off, out of
 * memory): cb is then never called. */
int rcluster_send(struct rcluster *rc, unsigned slot, rcluster_cb *cb, void *priv,
                  int argc, const char **argv, const size_t *argl);

/* Asks for a slot-map refresh now (rate-limited; a refresh in flight
 * counts). */
void rcluster_refresh(struct rcluster *rc);

const struct rcluster_stats *rcluster_stats(const struct rcluster *rc);

#endif
