/*
 * "host:port" and "unix:/path" addresses, shared by the agent and the
 * generator.
 */
#ifndef SPOGATE_ADDR_H
#define SPOGATE_ADDR_H

#include <stddef.h>

/* Splits "host:port" or "[v6addr]:port" into host (without brackets) and a
 * port in 1..65535. Returns 0, or -1 with nothing promised in host. */
int addr_split(const char *s, char *host, size_t hostlen, int *port);

/* The longest unix socket path, without its NUL (sun_path is 108 bytes);
 * ADDR_UNIX_MAX_STR is the same number for messages. */
#define ADDR_UNIX_MAX 107
#define ADDR_UNIX_MAX_STR "107"

/* "unix:/absolute/path" (a unix stream socket): returns 1 and copies the
 * path into path (pathlen > ADDR_UNIX_MAX), 0 when s has no "unix:" prefix,
 * -1 when it has one but the path is empty, relative or longer than
 * ADDR_UNIX_MAX. */
int addr_unix(const char *s, char *path, size_t pathlen);

#endif
