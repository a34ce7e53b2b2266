/*
 * The JWKS fetcher: keys from the identity provider over HTTPS, on a thread
 * of its own (libcurl's blocking API), never on a loop thread.
 *
 * It reads jwks_uri, or first <oidc_issuer>/.well-known/openid-configuration
 * to find it (OpenID Connect Discovery 1.0, whose "issuer" must equal the
 * configured one), every `refresh` seconds, or after the provider's
 * Cache-Control max-age clamped to [min_refresh, max_refresh]. A worker that
 * meets an unknown kid asks for an early fetch with jwks_fetcher_kick(); at
 * most one such fetch starts per `kick_interval` whatever the traffic.
 *
 * Refreshes are conditional GETs (RFC 9110 13.1): If-None-Match with the
 * strong ETag and If-Modified-Since with the Last-Modified of the response
 * the current keys (or jwks_uri) came from. A 304 Not Modified keeps them
 * and is a successful refresh like a 200 (the retry back-off and the age
 * start again). An operator's refresh (SIGHUP) asks unconditionally.
 *
 * Every attempt ends in on_result() on the fetcher thread: with a new key
 * set (the callee takes its reference) or NULL when the attempt failed or
 * the set was not modified, in which case the caller keeps the set it has.
 * A failed attempt is retried after 1, 2, 4 ... up to 30 seconds (never
 * later than `refresh`).
 */
#ifndef SPOGATE_JWKS_FETCH_H
#define SPOGATE_JWKS_FETCH_H

#include <stddef.h>

#include "dynbuf.h"

struct jwt_keyset;

#define JWKS_MAX_BYTES (1024 * 1024)
#define JWKS_URI_MAX   2048
#define JWKS_ETAG_MAX  256             /* a longer ETag is not kept */
#define JWKS_DATE_MAX  64              /* the same for Last-Modified */

/* Strings are borrowed and must outlive the fetcher. */
struct jwks_fetch_cfg {
	const char *jwks_uri;          /* or NULL with oidc_issuer */
	const char *oidc_issuer;
	const char *ca_file;           /* NULL: the system's CAs */
	double refresh;                /* seconds */
	double min_refresh, max_refresh;
	double kick_interval;          /* seconds between early fetches */
	long timeout_ms;               /* one HTTP request, connect included */
};

/* How one attempt ended; the label of spogate_jwks_fetches_total. */
enum jwks_outcome {
	JWKS_OK           = 0,
	JWKS_E_NETWORK    = 1,         /* connect, TLS, timeout */
	JWKS_E_HTTP       = 2,         /* a status other than 200 */
	JWKS_E_TYPE       = 3,         /* not a JSON content type */
	JWKS_E_JSON       = 4,         /* broken JSON or too large */
	JWKS_E_KEYS       = 5,         /* no usable key, or refused key material */
	JWKS_E_DISCOVERY  = 6,         /* the discovery document was unusable */
	JWKS_NOT_MODIFIED = 7,         /* 304 to a conditional GET: the keys stay */
	JWKS_NOUTCOMES    = 8
};

typedef void (*jwks_result_fn)(void *arg, struct jwt_keyset *ks);

struct jwks_fetcher;

/* Starts the thread; the first attempt begins at once. Returns the fetcher
 * or NULL with err set. */
struct jwks_fetcher *jwks_fetcher_start(const struct jwks_fetch_cfg *cfg, jwks_result_fn fn,
                                        void *arg, char *err, size_t errlen);

/* Asks for an early fetch (a token named a kid the set lacks). Safe from
 * any thread, never blocks on the network. Returns 1 when a fetch is under
 * way or about to start (its end will call on_result), 0 when one ran less
 * than kick_interval ago and nothing new will come soon. */
int jwks_fetcher_kick(struct jwks_fetcher *f);

/* Asks for a full fetch (discovery included) as soon as the thread is
 * free, whatever the kick rate limit: an operator's SIGHUP. */
void jwks_fetcher_refresh(struct jwks_fetcher *f);

/* Stops the thread (an attempt in flight is aborted) and frees f. */
void jwks_fetcher_stop(struct jwks_fetcher *f);

/* Prometheus series of the fetcher: fetches by outcome, keys held, age
 * and time of the last success. */
void jwks_fetcher_render(struct jwks_fetcher *f, struct dynbuf *b);

/* ---- pure helpers, exposed for the tests and the fuzz target ---- */

/* The max-age of a Cache-Control header value in seconds, or -1 when it
 * has none (or no-store / no-cache, which ask for no reuse). */
long jwks_cache_max_age(const char *value, size_t len);

/* 1 when a Content-Type header value is JSON (application/json,
 * application/jwk-set+json or any application/...+json). */
int jwks_content_type_ok(const char *value, size_t len);

/* Reads an OpenID provider configuration document: its "issuer" must be
 * issuer exactly, its "jwks_uri" an https URL, which is copied to uri.
 * Returns 0 or -1 with err set. */
int jwks_discovery_parse(const char *body, size_t len, const char *issuer, char *uri,
                         size_t urilen, char *err, size_t errlen);

/* 1 when an ETag header value is one to send back in If-None-Match: a
 * strong entity-tag ("..." of visible ASCII but '"', RFC 9110 8.8.3) of
 * at most JWKS_ETAG_MAX bytes. Weak tags (W/"...") promise only what the
 * server deems an equivalent representation; they are not kept. */
int jwks_etag_ok(const char *value, size_t len);

/* 1 when a Last-Modified header value is one to send back in
 * If-Modified-Since: an HTTP-date of at most JWKS_DATE_MAX bytes, not
 * later than date (the response's Date, or the clock when it had none;
 * RFC 9110 8.8.2.1 forbids a later one, and it would answer 304 to every
 * change made before it). */
int jwks_last_modified_ok(const char *value, size_t len, long long date);

/* Parses a JWKS document body into a new key set (one reference, or NULL
 * with err set and *outcome the reason). */
struct jwt_keyset *jwks_parse(const char *body, size_t len, enum jwks_outcome *outcome,
                              char *err, size_t errlen);

#endif
