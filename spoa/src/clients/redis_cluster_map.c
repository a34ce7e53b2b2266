/*
 * Redis Cluster, the pure part (see redis_cluster_map.h).
 */
#include "redis_cluster_map.h"

#include <string.h>

static uint16_t crc16(const unsigned char *p, size_t len)
{
	uint16_t crc = 0;
	size_t i;
	int b;

	for (i = 0; i < len; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
	}
	return crc;
}

unsigned rcluster_key_slot(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len), *close;

	if (open) {
		close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
		if (close && close > open + 1)
			return crc16((const unsigned char *)open + 1, (size_t)(close - open - 1)) &
			       (RCLUSTER_SLOTS - 1);
	}
	return crc16((const unsigned char *)key, len) & (RCLUSTER_SLOTS - 1);
}

void rcluster_map_clear(struct rcluster_map *m)
{
	/* RCLUSTER_NO_NODE is all ones in every byte */
	memset(m->slot, 0xff, sizeof(m->slot));
	m->nnodes = 0;
	m->covered = 0;
}

int rcluster_map_node(struct rcluster_map *m, const char *host, size_t hostlen, int port)
{
	int i;

	if (hostlen == 0 || hostlen >= RCLUSTER_HOST_MAX || port <= 0 || port > 65535 ||
	    memchr(host, '\0', hostlen))
		return -1;
	for (i = 0; i < m->nnodes; i++)
		if (m->node[i].port == port && strlen(m->node[i].host) == hostlen &&
		    memcmp(m->node[i].host, host, hostlen) == 0)
			return i;
	if (m->nnodes == RCLUSTER_MAX_NODES)
		return -1;
	memcpy(m->node[i].host, host, hostlen);
	m->node[i].host[hostlen] = '\0';
	m->node[i].port = port;
	return m->nnodes++;
}

/* Assigns [start, end] to node idx. Returns 0, or -1 for a bad range. */
static int map_assign(struct rcluster_map *m, long long start, long long end, int idx)
{
	long long s;

	if (start < 0 || end >= RCLUSTER_SLOTS || start > end)
		return -1;
	for (s = start; s <= end; s++) {
		if (m->slot[s] == RCLUSTER_NO_NODE)
			m->covered++;
		m->slot[s] = (uint16_t)idx;
	}
	return 0;
}

/* What a map parser returns: the covered slots, or -1 (m cleared) when
 * the reply was malformed or covers nothing. */
static int map_result(struct rcluster_map *m, int rc)
{
	if (rc < 0 || m->covered == 0) {
		rcluster_map_clear(m);
		return -1;
	}
	return m->covered;
}

/* A node's host: the reported one, or the asked one when it is empty or
 * "?" (the node does not know its own address). */
static void node_host(const redisReply *h, const char *asked_host, const char **host,
                      size_t *len)
{
	if (h->len == 0 || (h->len == 1 && h->str[0] == '?')) {
		*host = asked_host;
		*len = strlen(asked_host);
	} else {
		*host = h->str;
		*len = h->len;
	}
}

static int is_text(const redisReply *r)
{
	return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

int rcluster_map_from_slots(const redisReply *r, const char *asked_host,
                            struct rcluster_map *m)
{
	const redisReply *e, *n;
	const char *host;
	size_t i, hlen;
	int idx;

	rcluster_map_clear(m);
	if (r->type != REDIS_REPLY_ARRAY)
		goto bad;
	for (i = 0; i < r->elements; i++) {
		e = r->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[0]->type != REDIS_REPLY_INTEGER ||
		    e->element[1]->type != REDIS_REPLY_INTEGER)
			goto bad;
		n = e->element[2];
		if (n->type != REDIS_REPLY_ARRAY || n->elements < 2 || !is_text(n->element[0]) ||
		    n->element[1]->type != REDIS_REPLY_INTEGER)
			goto bad;
		node_host(n->element[0], asked_host, &host, &hlen);
		if (n->element[1]->integer <= 0 || n->element[1]->integer > 65535)
			goto bad;
		idx = rcluster_map_node(m, host, hlen, (int)n->element[1]->integer);
		if (idx < 0 || map_assign(m, e->element[0]->integer, e->element[1]->integer, idx) < 0)
			goto bad;
	}
	return map_result(m, 0);
bad:
	return map_result(m, -1);
}

/* The value of key in a flat [key, value, ...] array, or NULL. */
static const redisReply *field(const redisReply *r, const char *key)
{
	size_t i, klen = strlen(key);

	if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
		return NULL;
	for (i = 0; i + 1 < r->elements; i += 2)
		if (is_text(r->element[i]) && r->element[i]->len == klen &&
		    memcmp(r->element[i]->str, key, klen) == 0)
			return r->element[i + 1];
	return NULL;
}

static int text_is(const redisReply *r, const char *s)
{
	return r && is_text(r) && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

int rcluster_map_from_shards(const redisReply *r, const char *asked_host,
                             struct rcluster_map *m)
{
	const redisReply *sh, *slots, *nodes, *nd, *h, *port;
	const char *host;
	size_t i, j, hlen;
	int idx;

	rcluster_map_clear(m);
	if (r->type != REDIS_REPLY_ARRAY)
		goto bad;
	for (i = 0; i < r->elements; i++) {
		sh = r->element[i];
		slots = field(sh, "slots");
		nodes = field(sh, "nodes");
		if (!slots || !nodes || slots->type != REDIS_REPLY_ARRAY || slots->elements % 2 ||
		    nodes->type != REDIS_REPLY_ARRAY)
			goto bad;
		if (slots->elements == 0)
			continue;           /* a shard with no slots (being added) */
		idx = -1;
		for (j = 0; j < nodes->elements && idx < 0; j++) {
			nd = nodes->element[j];
			if (!text_is(field(nd, "role"), "master") || text_is(field(nd, "health"), "fail"))
				continue;
			h = field(nd, "ip");
			if (!h || !is_text(h))
				h = field(nd, "endpoint");
			port = field(nd, "port");
			if (!h || !is_text(h) || !port || port->type != REDIS_REPLY_INTEGER ||
			    port->integer <= 0 || port->integer > 65535)
				goto bad;
			node_host(h, asked_host, &host, &hlen);
			idx = rcluster_map_node(m, host, hlen, (int)port->integer);
			if (idx < 0)
				goto bad;
		}
		if (idx < 0)
			continue;           /* no healthy master: its slots stay unknown */
		for (j = 0; j < slots->elements; j += 2)
			if (slots->element[j]->type != REDIS_REPLY_INTEGER ||
			    slots->element[j + 1]->type != REDIS_REPLY_INTEGER ||
			    map_assign(m, slots->element[j]->integer, slots->element[j + 1]->integer,
			               idx) < 0)
				goto bad;
	}
	return map_result(m, 0);
bad:
	return map_result(m, -1);
}

int rcluster_parse_hostport(const char *s, size_t len, char *host, size_t hostmax, int *port)
{
	const char *colon = NULL;
	size_t i, hlen;
	long p = 0;

	for (i = 0; i < len; i++)
		if (s[i] == ':')
			colon = s + i;
	if (!colon)
		return -1;
	hlen = (size_t)(colon - s);
	if (hlen >= hostmax || colon + 1 == s + len || s + len - colon - 1 > 5)
		return -1;
	for (i = (size_t)(colon + 1 - s); i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		p = p * 10 + (s[i] - '0');
	}
	if (p <= 0 || p > 65535)
		return -1;
	for (i = 0; i < hlen; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return -1;      /* no space, control or NUL in a host */
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	*port = (int)p;
	return 0;
}

enum rcluster_redirect_kind rcluster_parse_redirect(const char *s, size_t len,
                                                    struct rcluster_redirect *out)
{
	enum rcluster_redirect_kind kind;
	struct rcluster_redirect r;
	size_t i, skip;
	unsigned slot = 0;

	if (len > 6 && memcmp(s, "MOVED ", 6) == 0) {
		kind = RCLUSTER_MOVED;
		skip = 6;
	} else if (len > 4 && memcmp(s, "ASK ", 4) == 0) {
		kind = RCLUSTER_ASK;
		skip = 4;
	} else {
		return RCLUSTER_NOT_REDIRECT;
	}
	for (i = skip; i < len && s[i] >= '0' && s[i] <= '9' && i - skip < 5; i++)
		slot = slot * 10 + (unsigned)(s[i] - '0');
	if (i == skip || i >= len || s[i] != ' ' || slot >= RCLUSTER_SLOTS)
		return RCLUSTER_NOT_REDIRECT;
	i++;
	if (rcluster_parse_hostport(s + i, len - i, r.host, sizeof(r.host), &r.port) < 0)
		return RCLUSTER_NOT_REDIRECT;
	r.kind = kind;
	r.slot = slot;
	*out = r;
	return kind;
}

