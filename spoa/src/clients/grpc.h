/*
 * Unary gRPC calls on the grpc core C API, for the worker loops.
 *
 * Calls start on any thread and never block it; one completion-queue
 * thread collects every result and runs the caller's callback there. The
 * callback must not touch loop state: it hands the result to the owning
 * loop with worker_post().
 *
 * Each channel has a per-call deadline and a circuit breaker: after
 * RPC_BREAKER_FAILS consecutive UNAVAILABLE or DEADLINE_EXCEEDED results it
 * refuses calls at once for RPC_BREAKER_OPEN_MS, then lets one probe
 * through; a probe that succeeds closes it again. Calls that carry the same
 * key while one is in flight on the channel join it, so a burst of
 * identical questions from every worker costs one RPC.
 *
 * The prefix is rpc_ because grpc_ belongs to the library.
 */
#ifndef SPOGATE_RPC_H
#define SPOGATE_RPC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define RPC_KEY_LEN         32
#define RPC_BREAKER_FAILS   3
#define RPC_BREAKER_OPEN_MS 1000
#define RPC_MAX_RESPONSE    (64 * 1024)
#define RPC_LAT_BUCKETS     10

/* gRPC status codes used by callers (values of grpc_status_code). */
#define RPC_OK                 0
#define RPC_DEADLINE_EXCEEDED  4
#define RPC_UNAVAILABLE        14

struct rpc_channel;

/* TLS for a channel (agent.json's auth/authz "grpc_tls"); enabled = 0 is
 * an insecure channel. Files are PEM; the strings are the config's. */
struct rpc_tls {
	int enabled;
	const char *ca_file;           /* NULL: gRPC's default roots */
	const char *cert_file, *key_file;   /* both for mTLS, or neither */
	const char *server_name;       /* checked in the certificate, else the target's host */
};

/* ASCII metadata sent with a call (request id, trace context). Values
 * with a byte outside 0x20..0x7e are not sent: gRPC would refuse the
 * whole call. */
#define RPC_MAX_META 4
struct rpc_meta {
	size_t n;
	struct {
		const char *key;       /* lower case, static */
		const char *val;
		size_t len;
	} kv[RPC_MAX_META];
};

/* Runs on the completion-queue thread. resp is valid only during the call
 * (NULL unless status is RPC_OK). */
typedef void (*rpc_done_fn)(void *arg, int status, const uint8_t *resp, size_t len);

/* Starts gRPC and the completion-queue thread. Returns 0 or -1 (logged).
 * Idempotent; rpc_stop() undoes it once every channel is freed. */
int rpc_start(void);
/* Waits for every call in flight to complete (callbacks run) and stops the
 * completion-queue thread; no call may start afterwards. */
void rpc_drain(void);
void rpc_stop(void);

/* A channel to a gRPC target ("ipv4:127.0.0.1:9081", "dns:///host:port").
 * name labels logs and metrics ("auth", "authz"); tls may be NULL
 * (insecure). NULL on error (logged, e.g. an unreadable PEM file). */
struct rpc_channel *rpc_channel_new(const char *target, const char *name, int timeout_ms,
                                    const struct rpc_tls *tls);

/* Reads obj's "grpc_tls" object ({ca_file, cert_file, key_file,
 * server_name}) into tls; absent leaves it disabled. Returns 0, or -1 with
 * err set. sect names the section in messages. */
int rpc_tls_parse(json_t *obj, const char *sect, struct rpc_tls *tls, char *err, size_t errlen);
void rpc_channel_free(struct rpc_channel *ch);

/* Starts method with the serialized request. key, when not NULL, lets an
 * identical in-flight call be joined instead of started. Returns 0 (cb
 * will be called exactly once), or -1 when the breaker is open or the call
 * cannot start (cb is not called; answer "unavailable" at once). meta
 * (may be NULL) goes with the call; a joined call carries the first
 * caller's. */
int rpc_call(struct rpc_channel *ch, const char *method, const uint8_t *key,
             const struct rpc_meta *meta, const uint8_t *req, size_t len,
             rpc_done_fn cb, void *arg);

struct rpc_stats {
	uint64_t calls;                /* RPCs started */
	uint64_t joined;               /* calls that joined one in flight */
	uint64_t ok;
	uint64_t failed;               /* any non-OK status */
	uint64_t refused;              /* breaker open */
	int open;                      /* breaker state now */
};

void rpc_channel_stats(struct rpc_channel *ch, struct rpc_stats *st);
const char *rpc_channel_name(const struct rpc_channel *ch);

/* Adds the gRPC series (calls by result, breaker state, latency histogram
 * of every channel) to /metrics. Idempotent; call before metrics_start(). */
void rpc_metrics_register(void);

#endif
