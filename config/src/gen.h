/* spogate-gen's library entry points: load both inputs, validate, and
 * render haproxy.cfg, spoe.conf and agent.json into memory. main.c only
 * parses the command line and writes files. */
#ifndef GEN_GEN_H
#define GEN_GEN_H

#include "dynbuf.h"
#include "diag.h"
#include "model.h"

struct gen_output {
	struct dynbuf haproxy, spoe, agent;
};

/* HAProxy's own error responses, as JSON: written to errors/<code>.http
 * beside haproxy.cfg, which names them with errorfile (HAProxy 3.x also
 * uses them for requests its HTTP/1 parser refuses; http-error would not
 * be). */
struct gen_error_page {
	int code;
	const char *reason;     /* status line text */
	const char *error;      /* the "error" member of the body */
	int min_haproxy;        /* 0, or the oldest HAProxy (major*10+minor)
	                         * whose errorfile takes this code */
};
extern const struct gen_error_page gen_error_pages[];
extern const size_t gen_nerror_pages;

/* The full HTTP response of page p, appended to b. */
void gen_error_page_render(const struct gen_error_page *p, struct dynbuf *b);

/* Loads, validates and (unless check_only) renders. Returns 0 when no
 * error was reported (warnings are allowed), -1 otherwise; every problem is
 * in d. out is filled only on success and freed with gen_output_free(). */
int gen_run(const struct gen_opts *o, int check_only, struct gen_diags *d,
	    struct gen_output *out);
void gen_output_free(struct gen_output *out);

/* Writes the three files, and errors/<code>.http, into dir (which must
 * exist) atomically, each via a temporary file and rename(). Returns 0, or
 * -1 with a message in err. */
int gen_write_files(const char *dir, const struct gen_output *out, char *err, size_t errlen);

/* Creates run_dir/server-state holding only the format version when there
 * is none, so that HAProxy's first start reads an empty state instead of
 * warning; a state dumped before a reload is never touched. Returns 0, or
 * -1 with a message in err. */
int gen_seed_server_state(const char *run_dir, char *err, size_t errlen);

/* spogate-gen --reload (reload.c): under run_dir/reload.lock, saves
 * "show servers state" into run_dir/server-state, sends SIGUSR2 to the
 * master and waits, up to timeout_ms, until a worker other than the one
 * that answered before answers "show info" on the stats socket (socket,
 * or run_dir/haproxy.sock). Returns 0, or -1 with a message in err. */
struct gen_reload_opts {
	long master_pid;
	const char *run_dir;
	const char *socket;
	int timeout_ms;
};
int gen_reload(const struct gen_reload_opts *o, FILE *log, char *err, size_t errlen);

/* The "Pid: N" line of a "show info" answer of len bytes: N, or -1. */
long gen_reload_info_pid(const char *info, size_t len);

/* Renderers; each appends to b. */
void gen_emit_haproxy(const struct gen_gateway *g, const struct gen_registry *r,
		      const struct gen_opts *o, struct dynbuf *b);
void gen_emit_spoe(const struct gen_gateway *g, const struct gen_registry *r, struct dynbuf *b);
int gen_emit_agent(const struct gen_gateway *g, const struct gen_registry *r, struct dynbuf *b);

/* "500ms" style rendering of a duration for haproxy.cfg. */
void gen_fmt_dur(char *out, size_t n, int64_t ms);

#endif
