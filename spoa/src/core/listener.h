/*
 * The SPOP listening sockets: one SO_REUSEPORT TCP socket per worker, or
 * one unix stream socket that every worker accepts from.
 */
#ifndef SPOGATE_LISTENER_H
#define SPOGATE_LISTENER_H

#include <sys/types.h>

#include "addr.h"

struct listener_unix {
	int fd;                        /* -1 once closed */
	dev_t dev;                     /* the socket file bind() made, to */
	ino_t ino;                     /* remove it only while it is ours */
	char path[ADDR_UNIX_MAX + 1];
};

/* A listening TCP socket on host:port (numeric), non-blocking, with
 * SO_REUSEPORT so that each worker can have its own. Returns the fd, or -1
 * after logging why. */
int listener_tcp(const char *host, int port);

/* Binds a listening unix stream socket at path, mode 0660 (HAProxy's group
 * may connect). A socket file left there (by an agent that crashed, or one
 * still running that this one takes over from) is replaced; any other file
 * is refused. Returns 0, or -1 after logging why. */
int listener_unix_open(struct listener_unix *u, const char *path);

/* A non-blocking descriptor of u's socket for one worker's accept loop. */
int listener_unix_dup(const struct listener_unix *u);

/* Closes u's own descriptor (the workers' copies keep accepting). */
void listener_unix_close(struct listener_unix *u);

/* Removes the socket file if it is still the one u bound (a newer agent
 * may have replaced it). */
void listener_unix_remove(struct listener_unix *u);

#endif
