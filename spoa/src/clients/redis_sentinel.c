/*
 * Redis Sentinel, the pure part (see redis_sentinel.h).
 */
#include "redis_sentinel.h"

#include <stdio.h>
#include <string.h>

#include "redis_cluster_map.h"

/* "host" and "port" as separate strings into one "host:port" check. */
static int host_port(const char *h, size_t hl, const char *p, size_t pl, char *host,
                     size_t hostlen, int *port)
{
	char buf[RCLUSTER_HOST_MAX + 8];

	if (hl == 0 || hl + 1 + pl >= sizeof(buf))
		return -1;
	memcpy(buf, h, hl);
	buf[hl] = ':';
	memcpy(buf + hl + 1, p, pl);
	return rcluster_parse_hostport(buf, hl + 1 + pl, host, hostlen, port);
}

int rsentinel_parse_master(const redisReply *r, char *host, size_t hostlen, int *port)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
		return -1;
	return host_port(r->element[0]->str, r->element[0]->len, r->element[1]->str,
	                 r->element[1]->len, host, hostlen, port);
}

int rsentinel_parse_switch(const char *s, size_t len, const char *name, char *host,
                           size_t hostlen, int *port)
{
	const char *f[5];
	size_t fl[5], i = 0;
	int n = 0;

	while (n < 5) {
		while (i < len && s[i] == ' ')
			i++;
		if (i == len)
			break;
		f[n] = s + i;
		while (i < len && s[i] != ' ')
			i++;
		fl[n] = (size_t)(s + i - f[n]);
		n++;
	}
	while (i < len && s[i] == ' ')
		i++;
	if (n != 5 || i != len)
		return -1;
	if (host_port(f[3], fl[3], f[4], fl[4], host, hostlen, port) < 0)
		return -1;
	return fl[0] == strlen(name) && memcmp(f[0], name, fl[0]) == 0;
}
