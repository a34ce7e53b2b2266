#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define BACKLOG 1024

int listener_tcp(const char *host, int port)
{
	struct addrinfo hints, *res, *ai;
	char portstr[16];
	int fd = -1, one = 1, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		log_error("listen %s:%d: %s (a numeric address is required)", host, port,
		          gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
		    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0 &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, BACKLOG) == 0)
			break;
		log_error("listen %s:%d: %s", host, port, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* 1 when something accepts connections at sun's path. */
static int someone_listens(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

	if (fd < 0)
		return 0;
	ok = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return ok;
}

int listener_unix_open(struct listener_unix *u, const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t old;
	size_t n = strlen(path);
	int rc;

	u->fd = -1;
	if (n > ADDR_UNIX_MAX) {
		log_error("listen unix:%s: the path is longer than %d bytes", path, ADDR_UNIX_MAX);
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, n + 1);
	memcpy(u->path, path, n + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_error("listen unix:%s: the path exists and is not a socket", path);
			return -1;
		}
		if (someone_listens(&sun))
			log_info("listen unix:%s: taking over from the agent listening there "
			         "(it keeps the connections it has)", path);
		if (unlink(path) < 0 && errno != ENOENT) {
			log_error("listen unix:%s: cannot remove the old socket: %s", path,
			          strerror(errno));
			return -1;
		}
	}
	u->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		log_error("listen unix:%s: socket: %s", path, strerror(errno));
		return -1;
	}
	/* 0660 from the start: no moment where others may connect. */
	old = umask(0117);
	rc = bind(u->fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0 || listen(u->fd, BACKLOG) < 0 || stat(path, &st) < 0) {
		log_error("listen unix:%s: %s", path, strerror(errno));
		close(u->fd);
		u->fd = -1;
		return -1;
	}
	u->dev = st.st_dev;
	u->ino = st.st_ino;
	return 0;
}

int listener_unix_dup(const struct listener_unix *u)
{
	int fd = fcntl(u->fd, F_DUPFD_CLOEXEC, 3);

	if (fd < 0)
		log_error("listen unix:%s: %s", u->path, strerror(errno));
	return fd;
}

void listener_unix_close(struct listener_unix *u)
{
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
}

void listener_unix_remove(struct listener_unix *u)
{
	struct stat st;

	listener_unix_close(u);
	if (!u->path[0])
		return;
	if (lstat(u->path, &st) == 0 && st.st_dev == u->dev && st.st_ino == u->ino)
		unlink(u->path);
	u->path[0] = '\0';
}
