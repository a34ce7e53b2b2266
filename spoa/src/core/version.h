/*
 * What spogate_build_info reports: the agent's version and the oldest
 * HAProxy it is tested with (Makefile HAPROXY_VERSION, README).
 */
#ifndef SPOGATE_VERSION_H
#define SPOGATE_VERSION_H

#ifndef SPOGATE_VERSION
#define SPOGATE_VERSION "0.2.0-dev"
#endif

#define SPOGATE_HAPROXY_MIN "2.6"

#endif
