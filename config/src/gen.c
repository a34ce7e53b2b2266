/* The generator's pipeline: load both inputs (reporting every problem),
 * link them, render the three outputs; and the atomic file writer. */
#include "gen.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int gen_run(const struct gen_opts *o, int check_only, struct gen_diags *d,
	    struct gen_output *out)
{
	struct gen_gateway g;
	struct gen_registry r;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	/* Both files are always loaded, so that one run reports the problems
	 * of both; linking needs both to be sound. */
	if (gen_gateway_load(&g, o, d) < 0)
		rc = -1;
	if (gen_registry_load(&r, o, d) < 0)
		rc = -1;
	/* Linking also runs when a file had errors but parsed, so that a
	 * missing service is reported in the same run. */
	if (g.root && r.root && gen_link(&g, &r, d) < 0)
		rc = -1;
	if (rc == 0 && !check_only) {
		gen_emit_haproxy(&g, &r, o, &out->haproxy);
		gen_emit_spoe(&g, &r, &out->spoe);
		gen_emit_agent(&g, &r, &out->agent);
		if (out->haproxy.err || out->spoe.err || out->agent.err) {
			gen_diag_add(d, GEN_SEV_ERROR, o->gateway_file, 0, 0,
				     "out of memory while rendering the outputs");
			gen_output_free(out);
			rc = -1;
		}
	}
	gen_gateway_free(&g);
	gen_registry_free(&r);
	return rc;
}

void gen_output_free(struct gen_output *out)
{
	dynbuf_free(&out->haproxy);
	dynbuf_free(&out->spoe);
	dynbuf_free(&out->agent);
}

/* Writes b to dir/name through a temporary file renamed over it, with
 * permissions mode (before the umask). */
static int write_one(const char *dir, const char *name, const struct dynbuf *b, mode_t mode,
		     char *err, size_t errlen)
{
	char path[4096], tmp[4200];
	size_t off = 0;
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	while (off < b->len) {
		ssize_t n = write(fd, b->p + off, b->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
			close(fd);
			unlink(tmp);
			return -1;
		}
		off += (size_t)n;
	}
	/* Readers (HAProxy reloads, CI diffs) see the old or the new file,
	 * never a half-written one. */
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

int gen_seed_server_state(const char *run_dir, char *err, size_t errlen)
{
	char path[4096];
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/server-state", run_dir) >= sizeof(path)) {
		snprintf(err, errlen, "%s: path too long", run_dir);
		return -1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		if (errno == EEXIST)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (write(fd, "1\n", 2) != 2 || close(fd) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(path);
		return -1;
	}
	return 0;
}

int gen_write_files(const char *dir, const struct gen_output *out, char *err, size_t errlen)
{
	/* agent.json may hold the Redis password: only its owner (the user
	 * that runs the agent) reads it, whether or not it holds one today. */
	char edir[4096], name[32];
	size_t i;

	if (write_one(dir, "haproxy.cfg", &out->haproxy, 0644, err, errlen) < 0 ||
	    write_one(dir, "spoe.conf", &out->spoe, 0644, err, errlen) < 0 ||
	    write_one(dir, "agent.json", &out->agent, 0600, err, errlen) < 0)
		return -1;
	if ((size_t)snprintf(edir, sizeof(edir), "%s/errors", dir) >= sizeof(edir) ||
	    (mkdir(edir, 0755) < 0 && errno != EEXIST)) {
		snprintf(err, errlen, "%s: %s", edir, strerror(errno));
		return -1;
	}
	for (i = 0; i < gen_nerror_pages; i++) {
		struct dynbuf b = { 0 };
		int rc;

		gen_error_page_render(&gen_error_pages[i], &b);
		snprintf(name, sizeof(name), "%d.http", gen_error_pages[i].code);
		rc = b.err ? -1 : write_one(edir, name, &b, 0644, err, errlen);
		if (b.err)
			snprintf(err, errlen, "out of memory");
		dynbuf_free(&b);
		if (rc < 0)
			return -1;
	}
	return 0;
}
