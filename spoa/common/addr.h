/*
 * "host:port" addresses, shared by the agent and the generator.
 */
#ifndef SPOGATE_ADDR_H
#define SPOGATE_ADDR_H

#include <stddef.h>

/* Splits "host:port" or "[v6addr]:port" into host (without brackets) and a
 * port in 1..65535. Returns 0, or -1 with nothing promised in host. */
int addr_split(const char *s, char *host, size_t hostlen, int *port);

#endif
