/*
 * gRPC client: one shared completion queue drained by one thread. A unary
 * call is a single batch of six operations (as in gRPC's own
 * test/core/end2end tests): send initial metadata, send the message,
 * close from the client, receive initial metadata, the message, the status.
 */
#include "grpc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "config.h"
#include "log.h"
#include "metrics.h"

#define INFLIGHT_BUCKETS 256

struct listener {
	rpc_done_fn cb;
	void *arg;
	struct listener *next;
};

struct call {
	struct rpc_channel *ch;
	double t_start;
	grpc_call *call;
	int has_key;
	uint8_t key[RPC_KEY_LEN];
	struct listener *listeners;
	struct call *hnext;
	grpc_metadata_array md_initial;
	grpc_metadata_array md_trailing;
	grpc_byte_buffer *req_bb;
	grpc_byte_buffer *resp_bb;
	grpc_status_code status;
	grpc_slice details;
	grpc_metadata md_send[RPC_MAX_META];
	size_t nmd_send;
};

struct rpc_channel {
	grpc_channel *channel;
	char name[32];
	char target[256];
	int timeout_ms;
	pthread_mutex_t lock;          /* inflight table and breaker */
	struct call *inflight[INFLIGHT_BUCKETS];
	int fails;                     /* consecutive transport failures */
	double open_until;             /* breaker open while now < open_until */
	int probing;                   /* half-open: one probe in flight */
	int warned;
	struct rpc_stats st;
	uint64_t lat_bucket[RPC_LAT_BUCKETS];   /* not cumulative */
	uint64_t lat_count;
	uint64_t lat_sum_us;
	int registered;
	int state;                     /* grpc_connectivity_state last logged, -1 none */
};

/* Channels that /metrics renders, in creation order (one per service). */
#define RPC_MAX_CHANNELS 8
static struct rpc_channel *channels[RPC_MAX_CHANNELS];
static pthread_mutex_t channels_lock = PTHREAD_MUTEX_INITIALIZER;

static const double lat_bounds_s[RPC_LAT_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
};

static grpc_completion_queue *cq;
static pthread_t cq_thread;
static int started;
static int draining;

/* The channel-state watcher: a thread that looks at every channel's state
 * and logs each change, so a target that does not resolve or connect is
 * said at start and whenever it recovers or fails again. Polling, not
 * grpc_channel_watch_connectivity_state(): a pending watch would hold the
 * completion queue's shutdown until its deadline. */
#define WATCH_INTERVAL_MS 200
static pthread_t watch_thread;
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watch_cond = PTHREAD_COND_INITIALIZER;
static int watch_stop, watching;

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void stat_add(uint64_t *p)
{
	__atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
}

static size_t bucket(const uint8_t *key)
{
	return key[0] ^ key[7];
}

static void call_destroy(struct call *c)
{
	size_t i;

	for (i = 0; i < c->nmd_send; i++)
		grpc_slice_unref(c->md_send[i].value);
	grpc_metadata_array_destroy(&c->md_initial);
	grpc_metadata_array_destroy(&c->md_trailing);
	if (c->req_bb)
		grpc_byte_buffer_destroy(c->req_bb);
	if (c->resp_bb)
		grpc_byte_buffer_destroy(c->resp_bb);
	grpc_slice_unref(c->details);
	if (c->call)
		grpc_call_unref(c->call);
	free(c);
}

/* Updates the breaker with a finished call's status; why is gRPC's
 * detail text (a refused TLS handshake says so there). Called with the
 * lock. */
static void breaker_record(struct rpc_channel *ch, int status, int was_probe, const char *why)
{
	int transport = status == GRPC_STATUS_UNAVAILABLE ||
	                status == GRPC_STATUS_DEADLINE_EXCEEDED;

	if (was_probe)
		ch->probing = 0;
	if (!transport) {
		if (ch->open_until > 0 || ch->fails >= RPC_BREAKER_FAILS)
			log_info("rpc %s: %s answers again, circuit closed", ch->name, ch->target);
		ch->fails = 0;
		ch->open_until = 0;
		ch->warned = 0;
		return;
	}
	/* The first failure of a run says why, once: "connection refused",
	 * "Ssl handshake failed: ... CERTIFICATE_VERIFY_FAILED", ... */
	if (ch->fails == 0 && !ch->warned)
		log_warn("rpc %s: %s unavailable (status %d): %s", ch->name, ch->target, status, why);
	ch->fails++;
	if (ch->fails >= RPC_BREAKER_FAILS) {
		ch->open_until = mono_now() + RPC_BREAKER_OPEN_MS / 1000.0;
		if (!ch->warned)
			log_warn("rpc %s: %s failing (status %d), circuit open", ch->name,
			         ch->target, status);
		ch->warned = 1;
	}
}

static void complete(struct call *c)
{
	struct rpc_channel *ch = c->ch;
	struct listener *l, *ls;
	grpc_byte_buffer_reader rd;
	grpc_slice s = grpc_empty_slice();
	const uint8_t *resp = NULL;
	size_t len = 0;
	int status = (int)c->status, probe;
	char *why = grpc_slice_to_c_string(c->details);

	if (status == GRPC_STATUS_OK) {
		if (c->resp_bb && grpc_byte_buffer_reader_init(&rd, c->resp_bb)) {
			s = grpc_byte_buffer_reader_readall(&rd);
			grpc_byte_buffer_reader_destroy(&rd);
			resp = GRPC_SLICE_START_PTR(s);
			len = GRPC_SLICE_LENGTH(s);
		} else if (!c->resp_bb) {
			/* OK without a message: a broken server. */
			status = GRPC_STATUS_INTERNAL;
		}
	}
	pthread_mutex_lock(&ch->lock);
	if (c->has_key) {
		struct call **pp = &ch->inflight[bucket(c->key)];

		while (*pp && *pp != c)
			pp = &(*pp)->hnext;
		if (*pp)
			*pp = c->hnext;
	}
	ls = c->listeners;
	c->listeners = NULL;
	probe = ch->probing && ch->open_until > 0;
	breaker_record(ch, status, probe, why);
	pthread_mutex_unlock(&ch->lock);
	stat_add(status == GRPC_STATUS_OK ? &ch->st.ok : &ch->st.failed);
	{
		double secs = mono_now() - c->t_start;
		int i;

		for (i = 0; i < RPC_LAT_BUCKETS && secs > lat_bounds_s[i]; i++)
			;
		if (i < RPC_LAT_BUCKETS)
			stat_add(&ch->lat_bucket[i]);
		stat_add(&ch->lat_count);
		__atomic_fetch_add(&ch->lat_sum_us, (uint64_t)(secs * 1e6), __ATOMIC_RELAXED);
	}
	if (status != GRPC_STATUS_OK)
		log_debug("rpc %s: status %d: %s", ch->name, status, why);
	gpr_free(why);
	while ((l = ls)) {
		ls = l->next;
		l->cb(l->arg, status, status == GRPC_STATUS_OK ? resp : NULL, len);
		free(l);
	}
	grpc_slice_unref(s);
	call_destroy(c);
}

static void *cq_main(void *arg)
{
	(void)arg;
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME),
		                                           NULL);

		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type == GRPC_OP_COMPLETE) {
			struct call *c = ev.tag;

			/* A batch that failed as a whole still has a status for us. */
			if (!ev.success)
				c->status = GRPC_STATUS_UNAVAILABLE;
			complete(c);
		}
	}
	return NULL;
}

static const char *state_name(int st)
{
	switch (st) {
	case GRPC_CHANNEL_IDLE:              return "IDLE";
	case GRPC_CHANNEL_CONNECTING:        return "CONNECTING";
	case GRPC_CHANNEL_READY:             return "READY";
	case GRPC_CHANNEL_TRANSIENT_FAILURE: return "TRANSIENT_FAILURE";
	case GRPC_CHANNEL_SHUTDOWN:          return "SHUTDOWN";
	}
	return "start";
}

/* Logs a change of ch's state. Called with channels_lock held, which keeps
 * ch from being freed meanwhile. */
static void watch_channel(struct rpc_channel *ch)
{
	int st = (int)grpc_channel_check_connectivity_state(ch->channel, 0);

	if (st == ch->state)
		return;
	if (st == GRPC_CHANNEL_TRANSIENT_FAILURE)
		log_warn("rpc: %s: %s is unreachable (%s after %s): the name does not resolve or "
		         "nothing accepts the connection; calls answer 503 until it recovers",
		         ch->name, ch->target, state_name(st), state_name(ch->state));
	else
		log_info("rpc: %s: channel to %s is %s (was %s)", ch->name, ch->target,
		         state_name(st), state_name(ch->state));
	ch->state = st;
}

static void *watch_main(void *arg)
{
	struct timespec ts;

	(void)arg;
	pthread_mutex_lock(&watch_lock);
	while (!watch_stop) {
		pthread_mutex_unlock(&watch_lock);
		pthread_mutex_lock(&channels_lock);
		for (int i = 0; i < RPC_MAX_CHANNELS; i++)
			if (channels[i])
				watch_channel(channels[i]);
		pthread_mutex_unlock(&channels_lock);
		pthread_mutex_lock(&watch_lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += WATCH_INTERVAL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!watch_stop)
			pthread_cond_timedwait(&watch_cond, &watch_lock, &ts);
	}
	pthread_mutex_unlock(&watch_lock);
	return NULL;
}

static void watch_end(void)
{
	if (!watching)
		return;
	pthread_mutex_lock(&watch_lock);
	watch_stop = 1;
	pthread_cond_signal(&watch_cond);
	pthread_mutex_unlock(&watch_lock);
	pthread_join(watch_thread, NULL);
	watching = 0;
}

int rpc_start(void)
{
	if (started)
		return 0;
	grpc_init();
	cq = grpc_completion_queue_create_for_next(NULL);
	if (!cq) {
		log_error("rpc: cannot create a completion queue");
		return -1;
	}
	if (pthread_create(&cq_thread, NULL, cq_main, NULL) != 0) {
		log_error("rpc: cannot start the completion-queue thread");
		grpc_completion_queue_destroy(cq);
		return -1;
	}
	started = 1;
	watch_stop = 0;
	if (pthread_create(&watch_thread, NULL, watch_main, NULL) == 0)
		watching = 1;
	else
		log_warn("rpc: no channel-state watcher: changes of a channel's state are not logged");
	return 0;
}

void rpc_drain(void)
{
	if (!started || draining)
		return;
	watch_end();
	draining = 1;
	grpc_completion_queue_shutdown(cq);
	pthread_join(cq_thread, NULL);
}

void rpc_stop(void)
{
	if (!started)
		return;
	rpc_drain();
	grpc_completion_queue_destroy(cq);
	draining = 0;
	cq = NULL;
	grpc_shutdown();
	started = 0;
}

/* ", names resolved by ADDR" for a dns://ADDR/ target, else "". */
static const char *dns_authority_note(const char *target)
{
	static __thread char note[128];
	const char *end;

	if (strncmp(target, "dns://", 6) != 0 || target[6] == '/' ||
	    !(end = strchr(target + 6, '/')))
		return "";
	snprintf(note, sizeof(note), ", names resolved by %.*s", (int)(end - target - 6), target + 6);
	return note;
}

/* Reads a whole PEM file (at most 1 MiB). Returns a malloc'd string or
 * NULL (logged). */
static char *read_pem(const char *name, const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (!f) {
		log_error("rpc %s: cannot read %s", name, path);
		return NULL;
	}
	for (;;) {
		size_t r;
		if (n + 4096 + 1 > cap) {
			char *nb;
			cap = cap ? cap * 2 : 8192;
			if (cap > (1u << 20) || !(nb = realloc(buf, cap))) {
				log_error("rpc %s: %s is too large", name, path);
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* TLS channel credentials from tls (files read now), or NULL (logged). */
static grpc_channel_credentials *tls_creds(const char *name, const struct rpc_tls *tls)
{
	grpc_ssl_pem_key_cert_pair kp;
	grpc_channel_credentials *creds = NULL;
	char *ca = NULL, *cert = NULL, *key = NULL;

	if (tls->ca_file && !(ca = read_pem(name, tls->ca_file)))
		goto out;
	if (tls->cert_file && (!(cert = read_pem(name, tls->cert_file)) ||
	                       !(key = read_pem(name, tls->key_file))))
		goto out;
	kp.private_key = key;
	kp.cert_chain = cert;
	creds = grpc_ssl_credentials_create(ca, cert ? &kp : NULL, NULL, NULL);
	if (!creds)
		log_error("rpc %s: cannot create TLS credentials", name);
 out:
	free(ca);
	free(cert);
	free(key);
	return creds;
}

int rpc_tls_parse(json_t *obj, const char *sect, struct rpc_tls *tls, char *err, size_t errlen)
{
	static const char *const known[] = { "ca_file", "cert_file", "key_file", "server_name", NULL };
	json_t *t = obj ? json_object_get(obj, "grpc_tls") : NULL;
	char where[64];

	memset(tls, 0, sizeof(*tls));
	if (!t)
		return 0;
	snprintf(where, sizeof(where), "%s.grpc_tls", sect);
	if (!json_is_object(t)) {
		snprintf(err, errlen, "%s: expected an object", where);
		return -1;
	}
	if (config_check_keys(t, where, known, err, errlen) < 0 ||
	    config_get_str(t, where, "ca_file", &tls->ca_file, err, errlen) < 0 ||
	    config_get_str(t, where, "cert_file", &tls->cert_file, err, errlen) < 0 ||
	    config_get_str(t, where, "key_file", &tls->key_file, err, errlen) < 0 ||
	    config_get_str(t, where, "server_name", &tls->server_name, err, errlen) < 0)
		return -1;
	if (!tls->cert_file != !tls->key_file) {
		snprintf(err, errlen, "%s: cert_file and key_file go together", where);
		return -1;
	}
	tls->enabled = 1;
	return 0;
}

struct rpc_channel *rpc_channel_new(const char *target, const char *name, int timeout_ms,
                                    const struct rpc_tls *tls)
{
	struct rpc_channel *ch = calloc(1, sizeof(*ch));
	grpc_channel_credentials *creds;
	grpc_arg args[7];
	grpc_channel_args cargs;

	if (!ch)
		return NULL;
	snprintf(ch->name, sizeof(ch->name), "%s", name);
	snprintf(ch->target, sizeof(ch->target), "%s", target);
	ch->timeout_ms = timeout_ms;
	ch->state = -1;
	pthread_mutex_init(&ch->lock, NULL);
	/* A restarted service must be found again within a second, not after
	 * gRPC's default two-minute backoff ceiling. */
	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
	args[0].value.integer = 100;
	args[1].type = GRPC_ARG_INTEGER;
	args[1].key = (char *)GRPC_ARG_MIN_RECONNECT_BACKOFF_MS;
	args[1].value.integer = 100;
	args[2].type = GRPC_ARG_INTEGER;
	args[2].key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
	args[2].value.integer = 1000;
	args[3].type = GRPC_ARG_INTEGER;
	args[3].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[3].value.integer = RPC_MAX_RESPONSE;
	/* The deadline is short and the breaker decides: no hidden retries. */
	args[4].type = GRPC_ARG_INTEGER;
	args[4].key = (char *)GRPC_ARG_ENABLE_RETRIES;
	args[4].value.integer = 0;
	/* A name that did not resolve (a service not registered yet) is asked
	 * again within a second, not after the default 30 s. */
	args[5].type = GRPC_ARG_INTEGER;
	args[5].key = (char *)GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS;
	args[5].value.integer = 1000;
	cargs.num_args = 6;
	cargs.args = args;
	if (tls && tls->enabled) {
		if (tls->server_name) {
			args[6].type = GRPC_ARG_STRING;
			args[6].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
			args[6].value.string = (char *)tls->server_name;
			cargs.num_args = 7;
		}
		creds = tls_creds(name, tls);
	} else {
		creds = grpc_insecure_credentials_create();
	}
	ch->channel = creds ? grpc_channel_create(target, creds, &cargs) : NULL;
	if (creds)
		grpc_channel_credentials_release(creds);
	if (!ch->channel) {
		pthread_mutex_destroy(&ch->lock);
		free(ch);
		return NULL;
	}
	/* Resolve and connect now, so a target that cannot be reached is
	 * logged at start, not at the first request. */
	grpc_channel_check_connectivity_state(ch->channel, 1);
	log_info("rpc: %s: channel to %s%s", name, target, dns_authority_note(target));
	pthread_mutex_lock(&channels_lock);
	for (int i = 0; i < RPC_MAX_CHANNELS; i++)
		if (!channels[i]) {
			channels[i] = ch;
			ch->registered = 1;
			break;
		}
	pthread_mutex_unlock(&channels_lock);
	return ch;
}

void rpc_channel_free(struct rpc_channel *ch)
{
	if (!ch)
		return;
	pthread_mutex_lock(&channels_lock);
	for (int i = 0; i < RPC_MAX_CHANNELS; i++)
		if (channels[i] == ch)
			channels[i] = NULL;
	pthread_mutex_unlock(&channels_lock);
	grpc_channel_destroy(ch->channel);
	pthread_mutex_destroy(&ch->lock);
	free(ch);
}

/* Returns 1 when the breaker lets a new call through. Called with the lock. */
static int breaker_allows(struct rpc_channel *ch)
{
	if (ch->open_until <= 0)
		return 1;
	if (mono_now() < ch->open_until || ch->probing)
		return 0;
	ch->probing = 1;
	return 1;
}

/* Copies the sendable entries of meta into c. */
static void set_meta(struct call *c, const struct rpc_meta *meta)
{
	size_t i, j;

	for (i = 0; meta && i < meta->n && i < RPC_MAX_META; i++) {
		const char *v = meta->kv[i].val;
		size_t n = meta->kv[i].len;

		if (!n)
			continue;
		for (j = 0; j < n; j++)
			if ((unsigned char)v[j] < 0x20 || (unsigned char)v[j] > 0x7e)
				break;
		if (j < n)
			continue;
		c->md_send[c->nmd_send].key = grpc_slice_from_static_string(meta->kv[i].key);
		c->md_send[c->nmd_send].value = grpc_slice_from_copied_buffer(v, n);
		c->nmd_send++;
	}
}

int rpc_call(struct rpc_channel *ch, const char *method, const uint8_t *key,
             const struct rpc_meta *meta, const uint8_t *req, size_t len,
             rpc_done_fn cb, void *arg)
{
	struct listener *l = malloc(sizeof(*l));
	struct call *c = NULL, *e;
	grpc_slice slice, msl;
	grpc_op ops[6];
	gpr_timespec deadline;
	grpc_call_error err;

	if (!l)
		return -1;
	l->cb = cb;
	l->arg = arg;
	l->next = NULL;
	pthread_mutex_lock(&ch->lock);
	if (key) {
		for (e = ch->inflight[bucket(key)]; e; e = e->hnext)
			if (memcmp(e->key, key, RPC_KEY_LEN) == 0) {
				l->next = e->listeners;
				e->listeners = l;
				pthread_mutex_unlock(&ch->lock);
				stat_add(&ch->st.joined);
				return 0;
			}
	}
	if (!breaker_allows(ch)) {
		pthread_mutex_unlock(&ch->lock);
		free(l);
		stat_add(&ch->st.refused);
		return -1;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto fail_locked;
	c->ch = ch;
	c->t_start = mono_now();
	c->listeners = l;
	c->details = grpc_empty_slice();
	grpc_metadata_array_init(&c->md_initial);
	grpc_metadata_array_init(&c->md_trailing);
	deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
	                        gpr_time_from_millis(ch->timeout_ms, GPR_TIMESPAN));
	msl = grpc_slice_from_static_string(method);
	c->call = grpc_channel_create_call(ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
	                                   msl, NULL, deadline, NULL);
	if (!c->call)
		goto fail_locked;
	slice = grpc_slice_from_copied_buffer((const char *)req, len);
	c->req_bb = grpc_raw_byte_buffer_create(&slice, 1);
	grpc_slice_unref(slice);

	set_meta(c, meta);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = c->nmd_send;
	ops[0].data.send_initial_metadata.metadata = c->md_send;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = c->req_bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->md_initial;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &c->resp_bb;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &c->md_trailing;
	ops[5].data.recv_status_on_client.status = &c->status;
	ops[5].data.recv_status_on_client.status_details = &c->details;
	if (key) {
		c->has_key = 1;
		memcpy(c->key, key, RPC_KEY_LEN);
		c->hnext = ch->inflight[bucket(key)];
		ch->inflight[bucket(key)] = c;
	}
	/* Started under the lock so a joiner never sees a call that fails to
	 * start; the completion takes the lock too, after this returns. */
	err = grpc_call_start_batch(c->call, ops, 6, c, NULL);
	if (err != GRPC_CALL_OK) {
		if (key)
			ch->inflight[bucket(key)] = c->hnext;
		log_error("rpc %s: grpc_call_start_batch: %d", ch->name, (int)err);
		goto fail_locked;
	}
	pthread_mutex_unlock(&ch->lock);
	stat_add(&ch->st.calls);
	return 0;

 fail_locked:
	if (ch->probing && ch->open_until > 0)
		ch->probing = 0;
	pthread_mutex_unlock(&ch->lock);
	if (c) {
		c->listeners = NULL;
		call_destroy(c);
	}
	free(l);
	return -1;
}

void rpc_channel_stats(struct rpc_channel *ch, struct rpc_stats *st)
{
	st->calls = __atomic_load_n(&ch->st.calls, __ATOMIC_RELAXED);
	st->joined = __atomic_load_n(&ch->st.joined, __ATOMIC_RELAXED);
	st->ok = __atomic_load_n(&ch->st.ok, __ATOMIC_RELAXED);
	st->failed = __atomic_load_n(&ch->st.failed, __ATOMIC_RELAXED);
	st->refused = __atomic_load_n(&ch->st.refused, __ATOMIC_RELAXED);
	pthread_mutex_lock(&ch->lock);
	st->open = ch->open_until > 0 && mono_now() < ch->open_until;
	pthread_mutex_unlock(&ch->lock);
}

const char *rpc_channel_name(const struct rpc_channel *ch)
{
	return ch->name;
}

/* Every channel's series, one metric family at a time as the exposition
 * format wants, whichever modules own the channels. */
static void render(struct agent *a, struct dynbuf *b)
{
	static const char *const results[] = { "started", "joined", "ok", "failed", "refused" };
	struct rpc_channel *chs[RPC_MAX_CHANNELS];
	struct rpc_stats st[RPC_MAX_CHANNELS];
	char labels[96];
	int i, j, n = 0;

	(void)a;
	pthread_mutex_lock(&channels_lock);
	for (i = 0; i < RPC_MAX_CHANNELS; i++)
		if (channels[i])
			chs[n++] = channels[i];
	for (i = 0; i < n; i++)
		rpc_channel_stats(chs[i], &st[i]);
	if (n == 0) {
		pthread_mutex_unlock(&channels_lock);
		return;
	}
	metrics_family(b, "spogate_grpc_calls_total", METRICS_COUNTER,
	               "gRPC calls by service and result.");
	for (i = 0; i < n; i++) {
		uint64_t v[5] = { st[i].calls, st[i].joined, st[i].ok, st[i].failed, st[i].refused };

		for (j = 0; j < 5; j++) {
			snprintf(labels, sizeof(labels), "service=\"%s\",result=\"%s\"", chs[i]->name,
			         results[j]);
			metrics_sample(b, "spogate_grpc_calls_total", labels, v[j]);
		}
	}
	metrics_family(b, "spogate_grpc_circuit_open", METRICS_GAUGE,
	               "1 while the circuit breaker of a service's channel is open.");
	for (i = 0; i < n; i++) {
		snprintf(labels, sizeof(labels), "service=\"%s\"", chs[i]->name);
		metrics_sample(b, "spogate_grpc_circuit_open", labels, (uint64_t)st[i].open);
	}
	metrics_family(b, "spogate_grpc_call_seconds", METRICS_HISTOGRAM,
	               "gRPC call latency, deadline included.");
	for (i = 0; i < n; i++) {
		uint64_t counts[RPC_LAT_BUCKETS];

		for (j = 0; j < RPC_LAT_BUCKETS; j++)
			counts[j] = __atomic_load_n(&chs[i]->lat_bucket[j], __ATOMIC_RELAXED);
		snprintf(labels, sizeof(labels), "service=\"%s\"", chs[i]->name);
		metrics_histogram(b, "spogate_grpc_call_seconds", labels, lat_bounds_s, counts,
		                  RPC_LAT_BUCKETS,
		                  __atomic_load_n(&chs[i]->lat_count, __ATOMIC_RELAXED),
		                  (double)__atomic_load_n(&chs[i]->lat_sum_us, __ATOMIC_RELAXED) / 1e6);
	}
	pthread_mutex_unlock(&channels_lock);
}

static struct metrics_source rpc_metrics = { render, NULL };

void rpc_metrics_register(void)
{
	static int done;

	if (!done) {
		metrics_register(&rpc_metrics);
		done = 1;
	}
}
