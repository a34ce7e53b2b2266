/*
 * An asynchronous Redis client for one worker loop: one hiredis connection
 * on the worker's libev loop, commands pipelined in order (replies come
 * back in order), one Lua script loaded on every connect and called with
 * EVALSHA (resent once with EVAL after NOSCRIPT), every call with its own
 * timeout.
 *
 * Failure handling, so that an outage never makes a caller wait:
 *   - no connection (down, waiting to reconnect): redis_client_admit()
 *     says no, the caller fails fast;
 *   - the circuit breaker (breaker.h) opens after breaker_failures
 *     consecutive failures and drops the connection; while open, admit
 *     says no; after breaker_open_s one probe call may wait for Redis;
 *   - reconnects back off from 25 ms to 500 ms with jitter, so a restarted
 *     Redis is used again within about half a second.
 *
 * Everything here runs on the worker's loop thread, but for the stats and
 * the state, which the metrics scrape reads with relaxed atomic loads.
 */
#ifndef SPOGATE_REDIS_H
#define SPOGATE_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "worker_ctx.h"

#define REDIS_LAT_BUCKETS WORKER_LAT_BUCKETS   /* bounds: worker_lat_bounds_us */
#define REDIS_MAX_ARGS    640   /* KEYS + ARGV of one script call */
#define REDIS_MAX_SENTINELS 16

struct redisReply;
struct redis_client;
struct redis_call;

/* What was last logged about one sentinel (redis.c reads and writes it
 * with atomics: the workers share it). Zero-initialised. */
struct redis_sentinel_log {
	int auth;                      /* what it said to our AUTH */
	int denied;                    /* ACL refusals: bit 0 the query, 1 SUBSCRIBE */
};

/* The strings must outlive the client. */
struct redis_opts {
	const char *host;              /* numeric: resolving blocks */
	int port;
	const char *username;          /* "" = none */
	const char *password;          /* "" = no AUTH */
	int db;                        /* 0 = no SELECT */
	double timeout_s;              /* per call */
	int breaker_failures;
	double breaker_open_s;
	const char *script;            /* the Lua source of every call */
	/* Sentinel: when sentinel_master is set, host/port are not used; the
	 * master's address is asked of the sentinels in turn before every
	 * connect, and a +switch-master for it drops the connection. */
	const char *sentinel_master;
	int nsentinels;
	const char (*sentinel_host)[64];
	const int *sentinel_port;
	/* AUTH sent first on every connection to a sentinel (the queries and
	 * the subscription) when sentinel_password is not "". */
	const char *sentinel_username; /* "" or NULL = none */
	const char *sentinel_password; /* "" or NULL = no AUTH */
	/* nsentinels slots, shared by the clients of one process (NULL: this
	 * client's own): what was last logged about each sentinel's AUTH, so
	 * that a refusal is logged once per sentinel per change, not per try
	 * and per worker. */
	struct redis_sentinel_log *sentinel_log;
	const char *what;              /* the script, for logs: "the rate-limit script" */
};

enum redis_state {
	REDIS_DOWN       = 0,   /* waiting for the reconnect timer */
	REDIS_CONNECTING = 1,   /* commands queue in hiredis until connected */
	REDIS_UP         = 2,
};

struct redis_stats {
	uint64_t calls;                /* script calls sent (resends included) */
	uint64_t keys;                 /* keys those calls carried */
	uint64_t noscript;             /* NOSCRIPT answered by a resend with EVAL */
	uint64_t errors;               /* unusable replies, calls lost with a connection */
	uint64_t timeouts;
	uint64_t late_replies;         /* replies after their timeout or cancel */
	uint64_t connects;
	uint64_t disconnects;
	uint64_t sentinel_queries;     /* master addresses asked of Sentinel */
	uint64_t sentinel_switches;    /* +switch-master followed */
	uint64_t lat_count;
	uint64_t lat_sum_us;
	uint64_t lat_bucket[REDIS_LAT_BUCKETS];
};

/* Called once per call on the loop: reply is Redis's answer (an error reply
 * too), or NULL when there is none (timeout, connection lost). The reply
 * is hiredis's, valid during the call only. Returns 0 when the reply was a
 * usable answer, -1 when not (a failure for the breaker). */
typedef int (*redis_reply_fn)(void *arg, const struct redisReply *reply);

/* Starts connecting on w's loop. From the loop's thread, or before the
 * loop runs. NULL on no memory (logged). */
struct redis_client *redis_client_new(struct worker *w, const struct redis_opts *o);

/* Closes the connection: every call still waiting gets its callback with a
 * NULL reply first. Before the loop is destroyed. */
void redis_client_free(struct redis_client *rc);

/* Returns 1 when a call now would be sent and waited for: connected or
 * connecting, not too many pending, the breaker admits (a half-open one
 * counts this as its probe). 0 when the caller must not wait for Redis. */
int redis_client_admit(struct redis_client *rc, double now);

/* Calls the script with argv[0..nkeys) as KEYS and the rest as ARGV (argc
 * in all; the strings are copied). cb(arg, ...) follows once, unless the
 * call is cancelled. Returns the call, or NULL when it could not be sent
 * (counted as a failure; cb is not called). */
struct redis_call *redis_script_call(struct redis_client *rc, int nkeys, int argc,
                                     const char *const *argv, const size_t *argl,
                                     redis_reply_fn cb, void *arg);

/* The caller no longer wants the answer: cb will not be called. */
void redis_call_cancel(struct redis_call *c);

const struct redis_stats *redis_client_stats(const struct redis_client *rc);
enum redis_state redis_client_state(const struct redis_client *rc);

/* 1 when the circuit breaker is not closed. */
int redis_client_breaker_open(const struct redis_client *rc);

#endif
