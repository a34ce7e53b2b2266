/* Diagnostics of the generator: every problem found in the inputs is kept
 * with its file, line and column, so that one run reports all of them. */
#ifndef GEN_DIAG_H
#define GEN_DIAG_H

#include <stddef.h>
#include <stdio.h>

enum gen_sev {
	GEN_SEV_ERROR = 1,
	GEN_SEV_WARNING = 2,
};

struct gen_diag {
	const char *file;   /* not owned: the caller keeps file names alive */
	int line, col;      /* 1-based; 0 when the problem has no position */
	enum gen_sev sev;
	char *msg;          /* owned */
	size_t seq;         /* insertion order, the last sort key */
};

struct gen_diags {
	struct gen_diag *v;
	size_t n, cap;
	size_t errors, warnings;
	int oom;            /* a diagnostic was lost to an allocation failure */
};

void gen_diags_init(struct gen_diags *d);
void gen_diags_free(struct gen_diags *d);

/* Records one diagnostic; the message is formatted like printf. */
void gen_diag_add(struct gen_diags *d, enum gen_sev sev, const char *file,
		  int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* Sorts by file (in order of first appearance), line, column, then insertion
 * order, and prints "FILE:LINE:COL: error: message" lines to out. */
void gen_diags_print(struct gen_diags *d, FILE *out);

/* Returns the edit distance between a and b, capped at 100. */
int gen_edit_distance(const char *a, const char *b);

/* Returns the candidate closest to word (NULL when none is close enough to
 * be a plausible typo). candidates is NULL-terminated. */
const char *gen_did_you_mean(const char *word, const char *const *candidates);

#endif
