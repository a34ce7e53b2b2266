/*
 * The JWKS fetcher thread. One blocking libcurl easy handle, reused so the
 * TLS session and connection to the provider survive between fetches; the
 * loop threads only ever touch the mutex-protected kick flag.
 */
#include "jwks_fetch.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "jwt_verify.h"
#include "log.h"
#include "metrics.h"

#define RETRY_MIN  1.0
#define RETRY_MAX  30.0
#define DISCOVERY_PATH "/.well-known/openid-configuration"

static const char *const outcome_names[JWKS_NOUTCOMES] = {
	"ok", "network", "http_status", "content_type", "invalid_json", "no_usable_key",
	"discovery", "not_modified",
};

/* The validators of the last response of url that was used, for the next
 * conditional GET of that url; an empty url means none (fetcher thread). */
struct validators {
	char url[JWKS_URI_MAX];
	char etag[JWKS_ETAG_MAX + 1];       /* "" = none */
	char lastmod[JWKS_DATE_MAX + 1];
	long max_age;                       /* that response's, updated by a 304's */
};

struct jwks_fetcher {
	struct jwks_fetch_cfg cfg;
	jwks_result_fn fn;
	void *arg;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop;                      /* under lock, also read by the progress hook */
	int kick;                      /* under lock: an early fetch is wanted */
	int forced;                    /* under lock: a full fetch now (SIGHUP) */
	int busy;                      /* under lock: an attempt is running */
	double last_kick_fetch;        /* under lock: monotonic start of the last early fetch */
	CURL *curl;
	char jwks_uri[JWKS_URI_MAX];   /* fetcher thread only */
	struct validators disco_val, jwks_val;   /* fetcher thread only */
	/* Read by the metrics scrape with relaxed atomic loads. */
	uint64_t outcomes[JWKS_NOUTCOMES];
	uint64_t kicks_started, kicks_limited;
	int64_t last_success;          /* unix seconds, 0 = never */
	uint64_t keys_held;
};

/* One HTTP response, bounded. A header value longer than its buffer is
 * cut, which makes a validator too long to be kept; one that comes twice
 * is counted, and not kept either. */
struct resp {
	struct dynbuf body;
	long status;
	char ctype[128];
	char cache[256];
	char etag[JWKS_ETAG_MAX + 2];
	char lastmod[JWKS_DATE_MAX + 2];
	char date[JWKS_DATE_MAX + 2];
	int netag, nlastmod;
};

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- pure helpers ---- */

long jwks_cache_max_age(const char *v, size_t len)
{
	size_t i = 0, j;
	long age = -1;

	while (i < len) {
		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		j = i;
		while (j < len && v[j] != ',')
			j++;
		/* One directive is v[i..j). */
		if (j - i >= 8 && strncasecmp(v + i, "no-store", 8) == 0)
			return -1;
		if (j - i >= 8 && strncasecmp(v + i, "no-cache", 8) == 0)
			return -1;
		if (j - i > 8 && strncasecmp(v + i, "max-age=", 8) == 0) {
			size_t k = i + 8;
			long n = 0;

			if (k < j && v[k] == '"')
				k++;
			if (k >= j || v[k] < '0' || v[k] > '9')
				return -1;
			for (; k < j && v[k] >= '0' && v[k] <= '9'; k++)
				n = n > 100000000L ? n : n * 10 + (v[k] - '0');
			age = n;
		}
		i = j;
	}
	return age;
}

int jwks_content_type_ok(const char *v, size_t len)
{
	size_t n = 0;

	while (n < len && v[n] != ';' && v[n] != ' ')
		n++;
	if (n == 16 && strncasecmp(v, "application/json", 16) == 0)
		return 1;
	/* application/jwk-set+json and any other structured JSON type. */
	return n > 17 && strncasecmp(v, "application/", 12) == 0 &&
	       strncasecmp(v + n - 5, "+json", 5) == 0;
}

int jwks_discovery_parse(const char *body, size_t len, const char *issuer, char *uri,
                         size_t urilen, char *err, size_t errlen)
{
	json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	const char *iss, *ju;
	int r = -1;

	if (!json_is_object(doc)) {
		snprintf(err, errlen, "the discovery document is not a JSON object");
		goto out;
	}
	iss = json_string_value(json_object_get(doc, "issuer"));
	ju = json_string_value(json_object_get(doc, "jwks_uri"));
	/* OpenID Connect Discovery 1.0 section 4.3: exactly the issuer asked. */
	if (!iss || strcmp(iss, issuer) != 0) {
		snprintf(err, errlen, "the discovery document names issuer \"%.200s\", not \"%.200s\"",
		         iss ? iss : "", issuer);
		goto out;
	}
	if (!ju || strncmp(ju, "https://", 8) != 0 || strlen(ju) >= urilen) {
		snprintf(err, errlen, "the discovery document has no usable https jwks_uri");
		goto out;
	}
	snprintf(uri, urilen, "%s", ju);
	r = 0;
 out:
	json_decref(doc);
	return r;
}

int jwks_etag_ok(const char *v, size_t len)
{
	size_t i;

	if (len < 2 || len > JWKS_ETAG_MAX || v[0] != '"' || v[len - 1] != '"')
		return 0;
	/* etagc = %x21 / %x23-7E (obs-text is not sent back). */
	for (i = 1; i < len - 1; i++)
		if (v[i] <= 0x20 || v[i] == '"' || v[i] >= 0x7f)
			return 0;
	return 1;
}

int jwks_last_modified_ok(const char *v, size_t len, long long date)
{
	char buf[JWKS_DATE_MAX + 1];
	time_t t;
	size_t i;

	if (len == 0 || len > JWKS_DATE_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (v[i] < 0x20 || v[i] >= 0x7f)
			return 0;
	memcpy(buf, v, len);
	buf[len] = '\0';
	t = curl_getdate(buf, NULL);
	return t >= 0 && (long long)t <= date;
}

struct jwt_keyset *jwks_parse(const char *body, size_t len, enum jwks_outcome *outcome,
                              char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	struct jwt_keyset *ks;
	int n;

	if (!doc) {
		*outcome = JWKS_E_JSON;
		snprintf(err, errlen, "broken JSON at %d:%d: %s", jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	ks = jwt_keyset_new();
	n = ks ? jwt_keyset_add_jwks(ks, doc, err, errlen) : -1;
	json_decref(doc);
	if (n <= 0) {
		*outcome = JWKS_E_KEYS;
		if (n == 0)
			snprintf(err, errlen, "no usable signing key");
		jwt_keyset_unref(ks);
		return NULL;
	}
	*outcome = JWKS_OK;
	return ks;
}

/* ---- HTTP ---- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;

	dynbuf_add(&r->body, p, size * n);
	/* Past the bound: abort the transfer rather than truncate. */
	return r->body.err ? 0 : size * n;
}

/* Copies the value of header line p[0..n) into out when it is name's.
 * Returns 1 when it was. */
static int header_value(const char *p, size_t n, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name), i;

	if (n <= nl || strncasecmp(p, name, nl) != 0 || p[nl] != ':')
		return 0;
	p += nl + 1;
	n -= nl + 1;
	while (n && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n && (p[n - 1] == '\r' || p[n - 1] == '\n' || p[n - 1] == ' '))
		n--;
	i = n < outlen - 1 ? n : outlen - 1;
	memcpy(out, p, i);
	out[i] = '\0';
	return 1;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t len = size * n;

	/* A redirect starts a new header block: keep the last response's. */
	if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
		r->ctype[0] = '\0';
		r->cache[0] = '\0';
		r->etag[0] = '\0';
		r->lastmod[0] = '\0';
		r->date[0] = '\0';
		r->netag = r->nlastmod = 0;
	}
	header_value(p, len, "content-type", r->ctype, sizeof(r->ctype));
	header_value(p, len, "cache-control", r->cache, sizeof(r->cache));
	header_value(p, len, "date", r->date, sizeof(r->date));
	r->netag += header_value(p, len, "etag", r->etag, sizeof(r->etag));
	r->nlastmod += header_value(p, len, "last-modified", r->lastmod, sizeof(r->lastmod));
	return len;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	struct jwks_fetcher *f = arg;

	(void)a;
	(void)b;
	(void)c;
	(void)d;
	return __atomic_load_n(&f->stop, __ATOMIC_RELAXED);
}

/* The If-None-Match / If-Modified-Since lines for a GET of url: v's when
 * they belong to url. Returns the list (curl_slist_free_all) or NULL. */
static struct curl_slist *conditional_headers(const struct validators *v, const char *url)
{
	struct curl_slist *h = NULL, *n;
	char line[32 + JWKS_ETAG_MAX];

	if (!v || !v->url[0] || strcmp(v->url, url) != 0)
		return NULL;
	if (v->etag[0]) {
		snprintf(line, sizeof(line), "If-None-Match: %s", v->etag);
		if (!(n = curl_slist_append(h, line)))
			goto fail;
		h = n;
	}
	if (v->lastmod[0]) {
		snprintf(line, sizeof(line), "If-Modified-Since: %s", v->lastmod);
		if (!(n = curl_slist_append(h, line)))
			goto fail;
		h = n;
	}
	return h;
 fail:
	/* Without memory the GET goes unconditional: a full download. */
	curl_slist_free_all(h);
	return NULL;
}

/* Remembers r's validators (when usable) as those of url for its next
 * GET, with max_age, the Cache-Control of r. */
static void validators_keep(struct validators *v, const char *url, const struct resp *r,
                            long max_age)
{
	long long date = time(NULL);
	time_t t;

	memset(v, 0, sizeof(*v));
	if (r->date[0] && (t = curl_getdate(r->date, NULL)) >= 0)
		date = t;
	/* The checks bound the lengths to what v holds. */
	if (r->netag == 1 && jwks_etag_ok(r->etag, strlen(r->etag)))
		memcpy(v->etag, r->etag, strlen(r->etag) + 1);
	if (r->nlastmod == 1 && jwks_last_modified_ok(r->lastmod, strlen(r->lastmod), date))
		memcpy(v->lastmod, r->lastmod, strlen(r->lastmod) + 1);
	if (v->etag[0] || v->lastmod[0])
		snprintf(v->url, sizeof(v->url), "%s", url);
	v->max_age = max_age;
}

/* GETs url into r, conditionally when v has validators for url. Returns
 * JWKS_OK, JWKS_NOT_MODIFIED (a 304 to a conditional GET, its validators
 * still v's) or the outcome of the failure, with err set. A 304 that
 * names another strong ETag than the one asked about is a failure, and v
 * is dropped so the retry downloads the whole document. r->body is the
 * caller's to free either way. */
static enum jwks_outcome http_get(struct jwks_fetcher *f, const char *url,
                                  struct validators *v, struct resp *r,
                                  char *err, size_t errlen)
{
	char cerr[CURL_ERROR_SIZE] = "";
	CURL *c = f->curl;
	struct curl_slist *cond = conditional_headers(v, url);
	long status = 0;
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	r->body.limit = JWKS_MAX_BYTES;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, cond);
	rc = curl_easy_perform(c);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(cond);
	if (rc != CURLE_OK) {
		if (rc == CURLE_WRITE_ERROR && r->body.err) {
			snprintf(err, errlen, "%s: larger than %d bytes", url, JWKS_MAX_BYTES);
			return JWKS_E_JSON;
		}
		snprintf(err, errlen, "%s: %s", url, cerr[0] ? cerr : curl_easy_strerror(rc));
		return JWKS_E_NETWORK;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	r->status = status;
	if (status == 304 && cond) {
		/* RFC 9111 4.3.4: a 304 naming another strong validator does not
		 * revalidate what we hold. */
		if (r->netag && jwks_etag_ok(r->etag, strlen(r->etag)) && v->etag[0] &&
		    strcmp(r->etag, v->etag) != 0) {
			snprintf(err, errlen, "%s: 304 Not Modified names ETag %.64s, not the %.64s "
			         "asked about; fetching it whole next time", url, r->etag, v->etag);
			memset(v, 0, sizeof(*v));
			return JWKS_E_HTTP;
		}
		return JWKS_NOT_MODIFIED;
	}
	if (status != 200) {
		snprintf(err, errlen, "%s: HTTP status %ld", url, status);
		return JWKS_E_HTTP;
	}
	if (!jwks_content_type_ok(r->ctype, strlen(r->ctype))) {
		snprintf(err, errlen, "%s: content type \"%s\" is not JSON", url, r->ctype);
		return JWKS_E_TYPE;
	}
	return JWKS_OK;
}

static int curl_setup(struct jwks_fetcher *f)
{
	CURL *c = curl_easy_init();

	if (!c)
		return -1;
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, f->cfg.timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, f->cfg.timeout_ms);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (f->cfg.ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, f->cfg.ca_file);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "spogate-agent");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, f);
	f->curl = c;
	return 0;
}

/* ---- one attempt ---- */

static void count(uint64_t *p)
{
	__atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
}

/* Finds jwks_uri through discovery (a conditional GET when conditional).
 * Returns JWKS_OK or a failure. */
static enum jwks_outcome discover(struct jwks_fetcher *f, int conditional, char *err,
                                  size_t errlen)
{
	char url[JWKS_URI_MAX], msg[512];
	size_t n = strlen(f->cfg.oidc_issuer);
	enum jwks_outcome o;
	struct resp r;

	/* An issuer with a trailing slash gets no second one (section 4.1). */
	snprintf(url, sizeof(url), "%.*s%s", (int)(n && f->cfg.oidc_issuer[n - 1] == '/' ? n - 1 : n),
	         f->cfg.oidc_issuer, DISCOVERY_PATH);
	o = http_get(f, url, conditional ? &f->disco_val : NULL, &r, err, errlen);
	if (o == JWKS_NOT_MODIFIED && f->jwks_uri[0]) {
		/* The document the jwks_uri came from is still the provider's. */
		o = JWKS_OK;
	} else if (o == JWKS_OK &&
	    jwks_discovery_parse(r.body.p ? r.body.p : "", r.body.len, f->cfg.oidc_issuer,
	                         f->jwks_uri, sizeof(f->jwks_uri), msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "%.256s: %.480s", url, msg);
		o = JWKS_E_DISCOVERY;
	} else if (o == JWKS_OK) {
		validators_keep(&f->disco_val, url, &r, -1);
	} else {
		o = o == JWKS_E_NETWORK ? JWKS_E_NETWORK : JWKS_E_DISCOVERY;
	}
	dynbuf_free(&r.body);
	return o;
}

/* Fetches and parses the key set, with conditional GETs when conditional.
 * Returns it (one reference) or NULL with *outcome and err set: a failure,
 * or JWKS_NOT_MODIFIED when the set in use is still the provider's.
 * *max_age is the provider's, or -1. */
static struct jwt_keyset *attempt(struct jwks_fetcher *f, int rediscover, int conditional,
                                  enum jwks_outcome *outcome, long *max_age,
                                  char *err, size_t errlen)
{
	struct jwt_keyset *ks = NULL;
	struct validators *v = &f->jwks_val;
	struct resp r;

	*max_age = -1;
	if (f->cfg.oidc_issuer && (rediscover || !f->jwks_uri[0])) {
		*outcome = discover(f, conditional, err, errlen);
		if (*outcome != JWKS_OK)
			return NULL;
	}
	*outcome = http_get(f, f->jwks_uri, conditional ? v : NULL, &r, err, errlen);
	if (*outcome == JWKS_OK) {
		char msg[512];

		ks = jwks_parse(r.body.p ? r.body.p : "", r.body.len, outcome, msg, sizeof(msg));
		if (!ks)
			snprintf(err, errlen, "%.256s: %.480s", f->jwks_uri, msg);
		*max_age = jwks_cache_max_age(r.cache, strlen(r.cache));
		/* Only a set in use is revalidated later. */
		if (ks)
			validators_keep(v, f->jwks_uri, &r, *max_age);
	} else if (*outcome == JWKS_NOT_MODIFIED) {
		/* RFC 9111 4.3.4: a 304's Cache-Control replaces the stored one. */
		if (r.cache[0])
			v->max_age = jwks_cache_max_age(r.cache, strlen(r.cache));
		*max_age = v->max_age;
	}
	dynbuf_free(&r.body);
	return ks;
}

/* When the next regular fetch is due after a success: the provider's
 * max-age within [min_refresh, max_refresh], else the configured refresh. */
static double next_interval(const struct jwks_fetcher *f, long max_age)
{
	double t = (double)max_age;

	if (max_age < 0)
		return f->cfg.refresh;
	if (t < f->cfg.min_refresh)
		t = f->cfg.min_refresh;
	if (t > f->cfg.max_refresh)
		t = f->cfg.max_refresh;
	return t;
}

static void *run(void *arg)
{
	struct jwks_fetcher *f = arg;
	double due = 0, retry = RETRY_MIN;
	int regular = 1, forced;

	pthread_mutex_lock(&f->lock);
	for (;;) {
		struct jwt_keyset *ks;
		enum jwks_outcome o;
		char err[768];
		long max_age;

		while (!f->stop && !f->kick && !f->forced && mono_now() < due) {
			double wait = due - mono_now();
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += (time_t)wait;
			ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&f->cond, &f->lock, &ts);
		}
		if (f->stop)
			break;
		regular = f->forced || !f->kick || mono_now() >= due;
		forced = f->forced;
		if (f->kick)
			f->last_kick_fetch = mono_now();
		f->kick = 0;
		f->forced = 0;
		f->busy = 1;
		pthread_mutex_unlock(&f->lock);

		/* Discovery runs with the regular refresh, not for every kid. An
		 * operator's SIGHUP downloads everything whatever the validators
		 * say (the way out of a provider whose ETag lies). */
		ks = attempt(f, regular, !forced, &o, &max_age, err, sizeof(err));
		count(&f->outcomes[o]);
		if (ks || o == JWKS_NOT_MODIFIED) {
			if (ks)
				__atomic_store_n(&f->keys_held, jwt_keyset_size(ks), __ATOMIC_RELAXED);
			__atomic_store_n(&f->last_success, (int64_t)time(NULL), __ATOMIC_RELAXED);
			if (ks)
				log_info("jwks: %zu keys from %s, next fetch in %.0f s",
				         jwt_keyset_size(ks), f->jwks_uri, next_interval(f, max_age));
			else
				log_info("jwks: %s not modified (304), keeping the %llu keys, next fetch "
				         "in %.0f s", f->jwks_uri,
				         (unsigned long long)__atomic_load_n(&f->keys_held,
				                                             __ATOMIC_RELAXED),
				         next_interval(f, max_age));
			retry = RETRY_MIN;
			due = mono_now() + next_interval(f, max_age);
		} else {
			double wait = retry < f->cfg.refresh ? retry : f->cfg.refresh;

			log_warn("jwks: fetch failed (%s), %s; retrying in %.0f s", outcome_names[o],
			         __atomic_load_n(&f->last_success, __ATOMIC_RELAXED) ?
			         "keeping the last good keys" : "no keys yet", wait);
			log_warn("jwks: %s", err);
			due = mono_now() + wait;
			retry = retry * 2 > RETRY_MAX ? RETRY_MAX : retry * 2;
		}
		f->fn(f->arg, ks);
		pthread_mutex_lock(&f->lock);
		f->busy = 0;
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

/* ---- life cycle ---- */

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct jwks_fetcher *jwks_fetcher_start(const struct jwks_fetch_cfg *cfg, jwks_result_fn fn,
                                        void *arg, char *err, size_t errlen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct jwks_fetcher *f;

	/* curl_global_init is not thread-safe before 7.84: once, here, from
	 * the main thread that starts the agent. */
	pthread_once(&once, curl_init_once);
	f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	f->cfg = *cfg;
	f->fn = fn;
	f->arg = arg;
	if (cfg->jwks_uri)
		snprintf(f->jwks_uri, sizeof(f->jwks_uri), "%s", cfg->jwks_uri);
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	f->last_kick_fetch = -1e9;
	if (curl_setup(f) < 0) {
		snprintf(err, errlen, "cannot create a libcurl handle");
		goto fail;
	}
	if (pthread_create(&f->thread, NULL, run, f) != 0) {
		snprintf(err, errlen, "cannot start the JWKS fetcher thread: %s", strerror(errno));
		goto fail;
	}
	return f;
 fail:
	curl_easy_cleanup(f->curl);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	free(f);
	return NULL;
}

int jwks_fetcher_kick(struct jwks_fetcher *f)
{
	int r = 1;

	pthread_mutex_lock(&f->lock);
	if (f->busy || f->kick) {
		/* The attempt under way or queued answers this kid too. */
	} else if (mono_now() - f->last_kick_fetch < f->cfg.kick_interval) {
		count(&f->kicks_limited);
		r = 0;
	} else {
		count(&f->kicks_started);
		f->kick = 1;
		pthread_cond_signal(&f->cond);
	}
	pthread_mutex_unlock(&f->lock);
	return r;
}

void jwks_fetcher_refresh(struct jwks_fetcher *f)
{
	pthread_mutex_lock(&f->lock);
	f->forced = 1;
	pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

void jwks_fetcher_stop(struct jwks_fetcher *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	__atomic_store_n(&f->stop, 1, __ATOMIC_RELAXED);
	pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	curl_easy_cleanup(f->curl);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

void jwks_fetcher_render(struct jwks_fetcher *f, struct dynbuf *b)
{
	int64_t last = __atomic_load_n(&f->last_success, __ATOMIC_RELAXED);
	char labels[64];
	int i;

	metrics_family(b, "spogate_jwks_fetches_total", METRICS_COUNTER,
	               "JWKS fetches from the identity provider, by outcome.");
	for (i = 0; i < JWKS_NOUTCOMES; i++) {
		snprintf(labels, sizeof(labels), "outcome=\"%s\"", outcome_names[i]);
		metrics_sample(b, "spogate_jwks_fetches_total", labels,
		               __atomic_load_n(&f->outcomes[i], __ATOMIC_RELAXED));
	}
	metrics_family(b, "spogate_jwks_early_fetches_total", METRICS_COUNTER,
	               "Early fetches asked for by an unknown kid: started, or refused by the rate limit.");
	metrics_sample(b, "spogate_jwks_early_fetches_total", "result=\"started\"",
	               __atomic_load_n(&f->kicks_started, __ATOMIC_RELAXED));
	metrics_sample(b, "spogate_jwks_early_fetches_total", "result=\"rate_limited\"",
	               __atomic_load_n(&f->kicks_limited, __ATOMIC_RELAXED));
	metrics_gauge(b, "spogate_jwks_keys", "Keys in the key set last fetched.",
	              (double)__atomic_load_n(&f->keys_held, __ATOMIC_RELAXED));
	metrics_gauge(b, "spogate_jwks_last_success_timestamp_seconds",
	              "When the key set was last fetched (0: never).", (double)last);
	metrics_gauge(b, "spogate_jwks_age_seconds", "Age of the key set in use (-1: none yet).",
	              last ? (double)(time(NULL) - last) : -1);
}
