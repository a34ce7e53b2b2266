/*
 * Redis Cluster client (see redis_cluster.h).
 *
 * The slot map is replaced whole by a refresh (CLUSTER SLOTS on any live
 * connection, else on the seeds in turn); a MOVED patches the one slot at
 * once, so the commands behind it go straight to the new master, and asks
 * for a refresh. Connections are kept by address, not by map index, so a
 * refresh that reorders the masters keeps every live connection. A node
 * whose connection failed is not dialled again before its backoff (25 ms
 * doubling to 500 ms): commands for it fail at once instead of queueing.
 */
#include "redis_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libev.h>
#include <openssl/sha.h>

#define MAX_REDIRECTS     5
#define MAX_SEEDS         16
#define BACKOFF_MIN_S     0.025
#define BACKOFF_MAX_S     0.5
#define REFRESH_MIN_S     0.05      /* between two refreshes */

struct rcl_conn {
	struct rcluster *rc;
	redisAsyncContext *ac;
	char host[RCLUSTER_HOST_MAX];
	int port;
	int connected;
	double retry_at;              /* no new connection before this */
	double backoff;
};

/* One command in flight. argv points into the same allocation. */
struct rcl_req {
	struct rcluster *rc;
	rcluster_cb *cb;
	void *priv;
	unsigned slot;
	int redirects;
	int argc;
	const char **argv;
	size_t *argl;
};

/* CLUSTER SLOTS in flight: which connection asked (for an empty ip). */
struct rcl_refresh {
	struct rcluster *rc;
	char host[RCLUSTER_HOST_MAX];
};

struct rcluster {
	struct ev_loop *loop;
	struct rcluster_map *map, *spare;
	int ready;
	struct rcl_conn *conn[RCLUSTER_MAX_NODES + MAX_SEEDS];
	int nconn;
	struct rcluster_node seed[MAX_SEEDS];
	int nseeds;
	int next_seed;
	rcluster_setup_cb *setup;
	void *setup_arg;
	int refreshing;
	double last_refresh;
	ev_timer refresh_w;
	int destroying;
	struct rcluster_stats st;
	const char *script;
	char sha[2 * SHA_DIGEST_LENGTH + 1];
	struct rcluster_call_stats cst;
};

static void refresh_later(struct rcluster *rc, double after);

static struct rcl_conn *conn_find(struct rcluster *rc, const char *host, int port)
{
	struct rcl_conn *c;
	int i;

	for (i = 0; i < rc->nconn; i++)
		if (rc->conn[i]->port == port && strcmp(rc->conn[i]->host, host) == 0)
			return rc->conn[i];
	if (rc->nconn == (int)(sizeof(rc->conn) / sizeof(rc->conn[0])) ||
	    strlen(host) >= sizeof(c->host))
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->rc = rc;
	snprintf(c->host, sizeof(c->host), "%s", host);
	c->port = port;
	rc->conn[rc->nconn++] = c;
	return c;
}

/* The node failed us: do not dial it again before the backoff, and learn
 * where its slots went. */
static void conn_backoff(struct rcl_conn *c)
{
	struct rcluster *rc = c->rc;

	c->backoff = c->backoff <= 0 ? BACKOFF_MIN_S : c->backoff * 2;
	if (c->backoff > BACKOFF_MAX_S)
		c->backoff = BACKOFF_MAX_S;
	c->retry_at = ev_now(rc->loop) + c->backoff;
	if (!rc->destroying)
		refresh_later(rc, 0);
}

/* The connection's context went away (hiredis frees it). Idempotent. */
static void conn_lost(struct rcl_conn *c, const redisAsyncContext *ac)
{
	if (c->ac != ac || !ac)
		return;
	c->ac = NULL;
	if (c->connected)
		c->rc->st.disconnects++;
	c->connected = 0;
	conn_backoff(c);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct rcl_conn *c = ac->data;

	if (status != REDIS_OK) {
		conn_lost(c, ac);
		return;
	}
	if (c->ac != ac)
		return;
	c->connected = 1;
	c->backoff = 0;
	c->rc->st.connects++;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	(void)status;
	conn_lost(ac->data, ac);
}

/* The connection's context, dialling when there is none and the backoff
 * allows; NULL when the node cannot be used now. */
static redisAsyncContext *conn_ctx(struct rcl_conn *c)
{
	struct rcluster *rc = c->rc;
	redisAsyncContext *ac;

	if (c->ac)
		return c->ac;
	if (rc->destroying || ev_now(rc->loop) < c->retry_at)
		return NULL;
	ac = redisAsyncConnect(c->host, c->port);
	if (!ac)
		return NULL;
	if (ac->err || redisLibevAttach(rc->loop, ac) != REDIS_OK) {
		redisAsyncFree(ac);
		conn_backoff(c);
		return NULL;
	}
	ac->data = c;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	c->ac = ac;
	if (rc->setup)
		rc->setup(ac, rc->setup_arg);
	/* A node met for the first time (or restarted) gets the script
	 * before any call, which saves each the NOSCRIPT round trip. */
	if (rc->script)
		redisAsyncCommand(ac, NULL, NULL, "SCRIPT LOAD %s", rc->script);
	return ac;
}

static void req_done(struct rcl_req *q, redisReply *reply)
{
	q->cb(reply, q->priv);
	free(q);
}

static void on_req_reply(redisAsyncContext *ac, void *r, void *privdata);
static int req_abandoned(const struct rcl_req *q);

/* Sends q to host:port (after ASKING when asking). Returns 0, or -1 when
 * that node cannot take it now (q is still the caller's). */
static int req_dispatch(struct rcl_req *q, const char *host, int port, int asking)
{
	struct rcl_conn *c = conn_find(q->rc, host, port);
	redisAsyncContext *ac = c ? conn_ctx(c) : NULL;

	if (!ac)
		return -1;
	if (asking && redisAsyncCommand(ac, NULL, NULL, "ASKING") != REDIS_OK)
		return -1;
	if (redisAsyncCommandArgv(ac, on_req_reply, q, q->argc, q->argv, q->argl) != REDIS_OK)
		return -1;
	return 0;
}

static void on_req_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct rcl_req *q = privdata;
	struct rcluster *rc = q->rc;
	struct rcl_conn *from = ac->data;
	redisReply *reply = r;
	struct rcluster_redirect rd;
	enum rcluster_redirect_kind k;
	int idx;

	if (!reply) {
		conn_lost(from, ac);
		req_done(q, NULL);
		return;
	}
	if (reply->type != REDIS_REPLY_ERROR || rc->destroying) {
		req_done(q, reply);
		return;
	}
	k = rcluster_parse_redirect(reply->str, reply->len, &rd);
	if (k == RCLUSTER_NOT_REDIRECT) {
		req_done(q, reply);
		return;
	}
	if (rd.host[0] == '\0')
		snprintf(rd.host, sizeof(rd.host), "%s", from->host);
	if (req_abandoned(q)) {
		/* Its caller gave up (a timeout while a failover paused the old
		 * master): following the redirect now would spend for nobody. */
		if (k == RCLUSTER_MOVED)
			refresh_later(rc, 0);
		req_done(q, reply);
		return;
	}
	if (++q->redirects > MAX_REDIRECTS) {
		req_done(q, NULL);
		return;
	}
	if (k == RCLUSTER_MOVED) {
		/* The slot has a new owner for good: later commands go there
		 * at once, and the rest of the map is refreshed behind them. */
		rc->st.moved++;
		idx = rcluster_map_node(rc->map, rd.host, strlen(rd.host), rd.port);
		if (idx >= 0) {
			if (rc->map->slot[rd.slot] == RCLUSTER_NO_NODE)
				rc->map->covered++;
			rc->map->slot[rd.slot] = (uint16_t)idx;
		}
		refresh_later(rc, 0);
	} else {
		rc->st.ask++;       /* a migration in progress: this command only */
	}
	if (req_dispatch(q, rd.host, rd.port, k == RCLUSTER_ASK) < 0)
		req_done(q, NULL);
}

int rcluster_send(struct rcluster *rc, unsigned slot, rcluster_cb *cb, void *priv,
                  int argc, const char **argv, const size_t *argl)
{
	const struct rcluster_node *n;
	struct rcl_req *q;
	size_t need, off;
	char *p;
	int i;

	if (rc->destroying || slot >= RCLUSTER_SLOTS || argc <= 0 ||
	    rc->map->slot[slot] == RCLUSTER_NO_NODE)
		return -1;
	n = &rc->map->node[rc->map->slot[slot]];
	need = sizeof(*q) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
	for (i = 0; i < argc; i++)
		need += argl[i] + 1;
	q = malloc(need);
	if (!q)
		return -1;
	q->rc = rc;
	q->cb = cb;
	q->priv = priv;
	q->slot = slot;
	q->redirects = 0;
	q->argc = argc;
	q->argv = (const char **)(q + 1);
	q->argl = (size_t *)(q->argv + argc);
	p = (char *)(q->argl + argc);
	for (i = 0, off = 0; i < argc; i++) {
		memcpy(p + off, argv[i], argl[i]);
		p[off + argl[i]] = '\0';
		q->argv[i] = p + off;
		q->argl[i] = argl[i];
		off += argl[i] + 1;
	}
	if (req_dispatch(q, n->host, n->port, 0) < 0) {
		free(q);
		return -1;
	}
	return 0;
}

static void on_slots(redisAsyncContext *ac, void *r, void *privdata)
{
	struct rcl_refresh *f = privdata;
	struct rcluster *rc = f->rc;
	redisReply *reply = r;
	struct rcluster_map *m;

	rc->refreshing = 0;
	rc->last_refresh = ev_now(rc->loop);
	if (!reply)
		conn_lost(ac->data, ac);
	if (rc->destroying) {
		free(f);
		return;
	}
	if (reply && rcluster_map_from_slots(reply, f->host, rc->spare) > 0) {
		m = rc->map;
		rc->map = rc->spare;
		rc->spare = m;
		rc->ready = rc->map->covered == RCLUSTER_SLOTS;
		rc->st.refreshes++;
		/* Dial every master now, so the first command for one does not
		 * wait for a connect (and a SCRIPT LOAD) inside its timeout. */
		{
			int i;

			for (i = 0; i < rc->map->nnodes; i++) {
				struct rcl_conn *c = conn_find(rc, rc->map->node[i].host,
				                               rc->map->node[i].port);

				if (c)
					conn_ctx(c);
			}
		}
		/* A partial map (a failover under way) is used, and asked again. */
		if (!rc->ready)
			refresh_later(rc, 0.1);
	} else {
		refresh_later(rc, REFRESH_MIN_S);
	}
	free(f);
}

/* Sends CLUSTER SLOTS to a live connection, else to the next seed. */
static void refresh_now(struct rcluster *rc)
{
	struct rcl_refresh *f;
	struct rcl_conn *c = NULL;
	redisAsyncContext *ac = NULL;
	int i;

	if (rc->refreshing || rc->destroying)
		return;
	for (i = 0; i < rc->nconn && !ac; i++)
		if (rc->conn[i]->connected) {
			c = rc->conn[i];
			ac = c->ac;
		}
	for (i = 0; i < rc->nseeds && !ac; i++) {
		const struct rcluster_node *s = &rc->seed[rc->next_seed];

		rc->next_seed = (rc->next_seed + 1) % rc->nseeds;
		c = conn_find(rc, s->host, s->port);
		ac = c ? conn_ctx(c) : NULL;
	}
	f = ac ? malloc(sizeof(*f)) : NULL;
	if (!f) {
		refresh_later(rc, BACKOFF_MIN_S);
		return;
	}
	f->rc = rc;
	snprintf(f->host, sizeof(f->host), "%s", c->host);
	if (redisAsyncCommand(ac, on_slots, f, "CLUSTER SLOTS") != REDIS_OK) {
		free(f);
		refresh_later(rc, BACKOFF_MIN_S);
		return;
	}
	rc->refreshing = 1;
}

static void on_refresh_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	refresh_now(t->data);
}

/* Refreshes after `after` seconds, and never sooner than REFRESH_MIN_S
 * after the last one, so a burst of MOVED costs one CLUSTER SLOTS. */
static void refresh_later(struct rcluster *rc, double after)
{
	double at = ev_now(rc->loop) + after, earliest = rc->last_refresh + REFRESH_MIN_S;

	if (rc->refreshing || rc->destroying || ev_is_active(&rc->refresh_w))
		return;
	if (at < earliest)
		at = earliest;
	ev_timer_set(&rc->refresh_w, at - ev_now(rc->loop) > 0 ? at - ev_now(rc->loop) : 0., 0.);
	ev_timer_start(rc->loop, &rc->refresh_w);
}

void rcluster_refresh(struct rcluster *rc)
{
	refresh_later(rc, 0);
}

struct rcluster *rcluster_new(struct ev_loop *loop, const char *const *seeds, int nseeds,
                              rcluster_setup_cb *setup, void *setup_arg)
{
	struct rcluster *rc;
	int i;

	rc = calloc(1, sizeof(*rc));
	if (!rc)
		return NULL;
	rc->map = malloc(sizeof(*rc->map));
	rc->spare = malloc(sizeof(*rc->spare));
	if (!rc->map || !rc->spare)
		goto fail;
	rcluster_map_clear(rc->map);
	for (i = 0; i < nseeds && rc->nseeds < MAX_SEEDS; i++)
		if (rcluster_parse_hostport(seeds[i], strlen(seeds[i]), rc->seed[rc->nseeds].host,
		                   sizeof(rc->seed[0].host), &rc->seed[rc->nseeds].port) == 0)
			rc->nseeds++;
	if (rc->nseeds == 0)
		goto fail;
	rc->loop = loop;
	rc->setup = setup;
	rc->setup_arg = setup_arg;
	rc->last_refresh = -1;
	ev_timer_init(&rc->refresh_w, on_refresh_timer, 0., 0.);
	rc->refresh_w.data = rc;
	refresh_now(rc);
	return rc;
fail:
	free(rc->map);
	free(rc->spare);
	free(rc);
	return NULL;
}

void rcluster_free(struct rcluster *rc)
{
	redisAsyncContext *ac;
	int i;

	if (!rc)
		return;
	rc->destroying = 1;
	if (ev_is_active(&rc->refresh_w))
		ev_timer_stop(rc->loop, &rc->refresh_w);
	for (i = 0; i < rc->nconn; i++) {
		ac = rc->conn[i]->ac;
		if (ac) {
			redisAsyncFree(ac);     /* pending callbacks run with NULL */
			rc->conn[i]->ac = NULL;
		}
	}
	for (i = 0; i < rc->nconn; i++)
		free(rc->conn[i]);
	free(rc->map);
	free(rc->spare);
	free(rc);
}

int rcluster_ready(const struct rcluster *rc)
{
	return rc->ready;
}

const struct rcluster_stats *rcluster_stats(const struct rcluster *rc)
{
	return &rc->st;
}

/* ------------------------------------------------------------------ */
/* Script calls */

struct rcluster_call {
	struct rcluster *rc;
	rcluster_reply_fn cb;       /* NULL once nobody waits */
	void *arg;
	ev_timer timeout_w;
	int resent;
	unsigned slot;
	int nkeys;
	int argc;                   /* of the script: KEYS then ARGV */
	const char **argv;          /* 3 + argc: EVALSHA sha nkeys ..., in data */
	size_t *argl;
	char nk[16];
};

void rcluster_set_script(struct rcluster *rc, const char *script)
{
	unsigned char md[SHA_DIGEST_LENGTH];
	int i;

	rc->script = script;
	SHA1((const unsigned char *)script, strlen(script), md);
	for (i = 0; i < SHA_DIGEST_LENGTH; i++)
		snprintf(rc->sha + 2 * i, 3, "%02x", md[i]);
}

const struct rcluster_call_stats *rcluster_call_stats(const struct rcluster *rc)
{
	return &rc->cst;
}

static int call_send(struct rcluster_call *c);

/* The cluster's final reply to one send (exactly once per send). */
static void on_call_reply(redisReply *reply, void *priv)
{
	struct rcluster_call *c = priv;
	struct rcluster *rc = c->rc;
	rcluster_reply_fn cb = c->cb;

	if (reply && reply->type == REDIS_REPLY_ERROR && !c->resent &&
	    strncmp(reply->str, "NOSCRIPT", 8) == 0) {
		/* That master has no script (a failover, a flush): EVAL runs and
		 * caches it, within the same timeout. */
		rc->cst.noscript++;
		c->resent = 1;
		c->argv[0] = "EVAL";
		c->argl[0] = 4;
		c->argv[1] = rc->script;
		c->argl[1] = strlen(rc->script);
		if (call_send(c) == 0)
			return;
		reply = NULL;
	}
	if (!cb) {
		if (reply)
			rc->cst.late_replies++;
		free(c);
		return;
	}
	ev_timer_stop(rc->loop, &c->timeout_w);
	{
		void *arg = c->arg;

		free(c);
		if (cb(arg, reply) < 0 || !reply)
			rc->cst.errors++;
	}
}

static int call_send(struct rcluster_call *c)
{
	if (rcluster_send(c->rc, c->slot, on_call_reply, c, 3 + c->argc, c->argv, c->argl) < 0)
		return -1;
	c->rc->cst.calls++;
	return 0;
}

/* The caller stops waiting; the reply (or the NULL of a lost
 * connection) frees c later. */
static void on_call_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct rcluster_call *c = t->data;
	rcluster_reply_fn cb = c->cb;
	void *arg = c->arg;

	(void)loop;
	(void)revents;
	c->cb = NULL;
	c->arg = NULL;
	c->rc->cst.timeouts++;
	cb(arg, NULL);
}

struct rcluster_call *rcluster_script_call(struct rcluster *rc, int nkeys, int argc,
                                           const char *const *argv, const size_t *argl,
                                           double timeout_s, rcluster_reply_fn cb, void *arg)
{
	struct rcluster_call *c;
	size_t bytes = 0;
	char *p;
	int i;

	if (!rc->script || nkeys < 1 || nkeys > argc)
		return NULL;
	for (i = 0; i < argc; i++)
		bytes += argl[i];
	c = malloc(sizeof(*c) + (size_t)(3 + argc) * (sizeof(char *) + sizeof(size_t)) + bytes);
	if (!c)
		return NULL;
	c->rc = rc;
	c->cb = cb;
	c->arg = arg;
	c->resent = 0;
	c->nkeys = nkeys;
	c->argc = argc;
	c->slot = rcluster_key_slot(argv[0], argl[0]);
	c->argv = (const char **)(c + 1);
	c->argl = (size_t *)(c->argv + 3 + argc);
	p = (char *)(c->argl + 3 + argc);
	snprintf(c->nk, sizeof(c->nk), "%d", nkeys);
	c->argv[0] = "EVALSHA";
	c->argl[0] = 7;
	c->argv[1] = rc->sha;
	c->argl[1] = strlen(rc->sha);
	c->argv[2] = c->nk;
	c->argl[2] = strlen(c->nk);
	for (i = 0; i < argc; i++) {
		memcpy(p, argv[i], argl[i]);
		c->argv[3 + i] = p;
		c->argl[3 + i] = argl[i];
		p += argl[i];
	}
	if (call_send(c) < 0) {
		free(c);
		return NULL;
	}
	ev_timer_init(&c->timeout_w, on_call_timeout, timeout_s, 0.);
	c->timeout_w.data = c;
	ev_timer_start(rc->loop, &c->timeout_w);
	return c;
}

void rcluster_call_cancel(struct rcluster_call *c)
{
	if (ev_is_active(&c->timeout_w))
		ev_timer_stop(c->rc->loop, &c->timeout_w);
	c->cb = NULL;
	c->arg = NULL;
}

/* A script call whose caller no longer waits (timed out, cancelled). */
static int req_abandoned(const struct rcl_req *q)
{
	return q->cb == on_call_reply && ((const struct rcluster_call *)q->priv)->cb == NULL;
}
