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

/* ---- Lua script calls, with redis.c's contract (timeouts, NOSCRIPT) ---- */

struct rcluster_call;

/* reply is the script's answer (an error reply too), or NULL when there is
 * none (timeout, connection lost, no master). Valid during the call only.
 * Returns 0 when the reply was usable, -1 when not (counted). */
typedef int (*rcluster_reply_fn)(void *arg, const redisReply *reply);

/* The script every call runs (loaded with SCRIPT LOAD on each new node
 * connection, called with EVALSHA, resent once with EVAL on NOSCRIPT).
 * script must outlive rc. Call once, before the first call. */
void rcluster_set_script(struct rcluster *rc, const char *script);

/* Calls the script on the master of argv[0]'s slot, with argv[0..nkeys)
 * as KEYS (all in one slot) and the rest as ARGV. cb follows once within
 * timeout_s, unless cancelled. Returns the call, or NULL when it could not
 * be sent (cb is not called). */
struct rcluster_call *rcluster_script_call(struct rcluster *rc, int nkeys, int argc,
                                           const char *const *argv, const size_t *argl,
                                           double timeout_s, rcluster_reply_fn cb, void *arg);

/* The caller no longer wants the answer: cb will not be called. */
void rcluster_call_cancel(struct rcluster_call *c);

/* Script calls sent, timed out, lost. */
struct rcluster_call_stats {
	uint64_t calls;
	uint64_t noscript;
	uint64_t timeouts;
	uint64_t errors;
	uint64_t late_replies;
};
const struct rcluster_call_stats *rcluster_call_stats(const struct rcluster *rc);

#endif
