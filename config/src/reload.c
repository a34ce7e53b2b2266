/* spogate-gen --reload: one HAProxy reload at a time, finished before the
 * next one starts.
 *
 * Why not just "kill -USR2": from 3.1 the master blocks reload signals
 * while a new worker loads and acts on a pending one in the very loop pass
 * that handles the worker's READY, before it acknowledges that READY. The
 * worker waits up to 2 s for the acknowledgement before it serves; the
 * next worker asks it for the listening sockets, gives up after 1 s and
 * binds new ones; when the stuck worker is stopped, the connections queued
 * on its socket are reset. So a reload requested while the previous one is
 * still loading stalls new connections for 1-2 s and resets some (seen on
 * 3.2.26; 2.6 and 3.0 are not affected). This command takes a lock in the
 * run directory, saves the server state, signals the master and returns
 * only once a new worker answers on the stats socket, i.e. has left its
 * startup: a reload never reaches the master while another one loads.
 * Before it signals, it also waits until the master catches SIGUSR2 and
 * does not block it: 2.6 ignores a SIGUSR2 that comes while its master is
 * still starting, 3.1+ holds it until the loading worker is ready. */
#include "gen.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "dynbuf.h"

/* Answers of the stats socket we read: "show info" is ~2 KB, the server
 * state grows with the servers (a few hundred bytes each). */
#define RELOAD_ANSWER_MAX (16u * 1024u * 1024u)

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends one command to the stats socket at path and reads the answer until
 * HAProxy closes the connection (non-interactive mode). Returns 0 with the
 * answer in out (the caller frees it with dynbuf_free), or -1 with a
 * message in err. */
static int stats_cmd(const char *path, const char *cmd, struct dynbuf *out, char *err,
		     size_t errlen)
{
	struct sockaddr_un sa;
	struct timeval tv = { .tv_sec = 2 };
	char buf[8192];
	size_t len = strlen(cmd);
	ssize_t n;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: socket path too long", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    write(fd, cmd, len) != (ssize_t)len || write(fd, "\n", 1) != 1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	memset(out, 0, sizeof(*out));
	out->limit = RELOAD_ANSWER_MAX;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		dynbuf_add(out, buf, (size_t)n);
	if (n < 0 || out->err) {
		snprintf(err, errlen, "%s: %s: %s", path, cmd,
			 n < 0 ? strerror(errno) : "answer too large");
		close(fd);
		dynbuf_free(out);
		return -1;
	}
	close(fd);
	return 0;
}

long gen_reload_info_pid(const char *info, size_t len)
{
	const char *p = info, *end = info + len;

	/* One "Name: value" per line; the line is "Pid: <decimal>". */
	while (p && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;

		if (le - p > 5 && memcmp(p, "Pid: ", 5) == 0) {
			long pid = 0;

			for (p += 5; p < le && *p >= '0' && *p <= '9'; p++) {
				if (pid > 99999999)
					return -1;
				pid = pid * 10 + (*p - '0');
			}
			return (p == le || *p == '\r') && pid > 0 ? pid : -1;
		}
		p = nl ? nl + 1 : NULL;
	}
	return -1;
}

/* Pid of the worker that answers "show info" on the stats socket, or -1
 * (message in err) when none answers. */
static long worker_pid(const char *sock, char *err, size_t errlen)
{
	struct dynbuf b;
	long pid;

	if (stats_cmd(sock, "show info", &b, err, errlen) < 0)
		return -1;
	pid = gen_reload_info_pid(b.p ? b.p : "", b.len);
	if (pid < 0)
		snprintf(err, errlen, "%s: show info: no Pid in the answer", sock);
	dynbuf_free(&b);
	return pid;
}

/* Whether the master with this pid acts on a SIGUSR2 now: caught, neither
 * blocked nor ignored (Linux /proc/PID/status masks). Returns 1 or 0, or -1
 * (message in err) when there is no such process or it is not HAProxy. */
static int master_takes_sigusr2(long pid, char *err, size_t errlen)
{
	unsigned long long blk = ~0ULL, ign = ~0ULL, cgt = 0, bit = 1ULL << (SIGUSR2 - 1);
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	f = fopen(path, "re");
	if (!f) {
		snprintf(err, errlen, "master pid %ld: %s", pid, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Name:", 5) == 0 && !strstr(line, "haproxy")) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(err, errlen, "pid %ld is not HAProxy (%s)", pid, line);
			fclose(f);
			return -1;
		} else if (strncmp(line, "SigBlk:", 7) == 0)
			blk = strtoull(line + 7, NULL, 16);
		else if (strncmp(line, "SigIgn:", 7) == 0)
			ign = strtoull(line + 7, NULL, 16);
		else if (strncmp(line, "SigCgt:", 7) == 0)
			cgt = strtoull(line + 7, NULL, 16);
	}
	fclose(f);
	return (cgt & bit) && !(blk & bit) && !(ign & bit);
}

/* "show servers state" into run_dir/server-state, replaced atomically, so
 * that the new worker starts with the servers the old one resolved. */
static int save_server_state(const char *sock, const char *run_dir, char *err, size_t errlen)
{
	char path[4096], tmp[4200];
	struct dynbuf b;
	int fd, rc = -1;

	if ((size_t)snprintf(path, sizeof(path), "%s/server-state", run_dir) >= sizeof(path)) {
		snprintf(err, errlen, "%s: path too long", run_dir);
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (stats_cmd(sock, "show servers state", &b, err, errlen) < 0)
		return -1;
	/* The dump starts with its format version, "1"; anything else is an
	 * error message and would make the new worker ignore the file. */
	if (b.len < 2 || memcmp(b.p, "1\n", 2) != 0) {
		snprintf(err, errlen, "%s: show servers state: %.200s", sock, b.p ? b.p : "(nothing)");
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, b.p, b.len) != (ssize_t)b.len || close(fd) < 0 ||
	    rename(tmp, path) < 0) {
		snprintf(err, errlen, "%s: %s", fd < 0 ? tmp : path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	dynbuf_free(&b);
	return rc;
}

int gen_reload(const struct gen_reload_opts *o, FILE *log, char *err, size_t errlen)
{
	char sock[4096], lock[4096];
	long old, pid = -1, deadline;
	int lfd, ready, rc = -1;

	if ((o->socket ? (size_t)snprintf(sock, sizeof(sock), "%s", o->socket) :
	     (size_t)snprintf(sock, sizeof(sock), "%s/haproxy.sock", o->run_dir)) >= sizeof(sock) ||
	    (size_t)snprintf(lock, sizeof(lock), "%s/reload.lock", o->run_dir) >= sizeof(lock)) {
		snprintf(err, errlen, "%s: path too long", o->run_dir);
		return -1;
	}
	lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0 || flock(lfd, LOCK_EX) < 0) {
		snprintf(err, errlen, "%s: %s", lock, strerror(errno));
		goto out;
	}
	/* Under the lock no other reload runs, so the worker answering now is
	 * the current one, done with its own startup. */
	deadline = now_ms() + o->timeout_ms;
	for (;;) {
		old = -1;
		ready = master_takes_sigusr2(o->master_pid, err, errlen);
		if (ready < 0)
			goto out;
		if (ready && (old = worker_pid(sock, err, errlen)) > 0)
			break;
		if (now_ms() >= deadline) {
			if (!ready)
				snprintf(err, errlen, "master pid %ld does not take SIGUSR2 after %d ms",
					 o->master_pid, o->timeout_ms);
			goto out;       /* else err says why no worker answered */
		}
		usleep(20000);
	}
	if (save_server_state(sock, o->run_dir, err, errlen) < 0)
		goto out;
	if (kill((pid_t)o->master_pid, SIGUSR2) < 0) {
		snprintf(err, errlen, "master pid %ld: %s", o->master_pid, strerror(errno));
		goto out;
	}
	/* The old worker stops answering once the new one is ready; a worker
	 * answers only from its event loop, i.e. after its startup. */
	deadline = now_ms() + o->timeout_ms;
	while (now_ms() < deadline) {
		pid = worker_pid(sock, err, errlen);
		if (pid > 0 && pid != old)
			break;
		usleep(20000);
	}
	if (pid == old) {
		snprintf(err, errlen, "no new worker after %d ms (worker %ld still answers): the "
			 "new configuration may have failed to load, see HAProxy's log",
			 o->timeout_ms, old);
		goto out;
	}
	if (pid < 0)
		goto out;       /* err says why no worker answered */
	if (log)
		fprintf(log, "spogate-gen: reloaded: worker %ld replaced by %ld\n", old, pid);
	rc = 0;
out:
	if (lfd >= 0)
		close(lfd);
	return rc;
}
