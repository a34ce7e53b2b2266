#include "addr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int addr_split(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon, *hb, *he;
	char *end;
	long p;

	if (s[0] == '[') {
		he = strchr(s, ']');
		if (!he || he[1] != ':')
			return -1;
		hb = s + 1;
		colon = he + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -1;
		hb = s;
		he = colon;
	}
	if (he == hb || (size_t)(he - hb) >= hostlen)
		return -1;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || p < 1 || p > 65535)
		return -1;
	memcpy(host, hb, (size_t)(he - hb));
	host[he - hb] = '\0';
	*port = (int)p;
	return 0;
}

int addr_unix(const char *s, char *path, size_t pathlen)
{
	size_t n;

	if (strncmp(s, "unix:", 5) != 0)
		return 0;
	s += 5;
	n = strlen(s);
	if (s[0] != '/' || n > ADDR_UNIX_MAX || n >= pathlen)
		return -1;
	memcpy(path, s, n + 1);
	return 1;
}
