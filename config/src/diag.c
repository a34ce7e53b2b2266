/* Diagnostics; see diag.h. */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void gen_diags_init(struct gen_diags *d)
{
	memset(d, 0, sizeof(*d));
}

void gen_diags_free(struct gen_diags *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		free(d->v[i].msg);
	free(d->v);
	memset(d, 0, sizeof(*d));
}

void gen_diag_add(struct gen_diags *d, enum gen_sev sev, const char *file,
		  int line, int col, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;

	if (sev == GEN_SEV_ERROR)
		d->errors++;
	else
		d->warnings++;
	if (d->n == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 16;
		struct gen_diag *nv = realloc(d->v, ncap * sizeof(*nv));
		if (!nv) {
			d->oom = 1;
			return;
		}
		d->v = nv;
		d->cap = ncap;
	}
	va_start(ap, fmt);
	/* Messages quote user input, which is bounded by the loader; a longer
	 * message is cut, never overflowed. */
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	d->v[d->n].msg = strdup(tmp);
	if (!d->v[d->n].msg) {
		d->oom = 1;
		return;
	}
	d->v[d->n].file = file;
	d->v[d->n].line = line;
	d->v[d->n].col = col;
	d->v[d->n].sev = sev;
	d->v[d->n].seq = d->n;
	d->n++;
}

/* File order for sorting: rank of the file's first appearance. Kept in a
 * file-scope table only during gen_diags_print's qsort. */
static const char *sort_files[64];
static size_t sort_nfiles;

static size_t file_rank(const char *f)
{
	size_t i;

	for (i = 0; i < sort_nfiles; i++)
		if (sort_files[i] == f || (f && sort_files[i] && strcmp(sort_files[i], f) == 0))
			return i;
	return sort_nfiles;
}

static int diag_cmp(const void *pa, const void *pb)
{
	const struct gen_diag *a = pa, *b = pb;
	size_t fa = file_rank(a->file), fb = file_rank(b->file);

	if (fa != fb)
		return fa < fb ? -1 : 1;
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	if (a->col != b->col)
		return a->col < b->col ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

void gen_diags_print(struct gen_diags *d, FILE *out)
{
	size_t i;

	sort_nfiles = 0;
	for (i = 0; i < d->n && sort_nfiles < 64; i++)
		if (file_rank(d->v[i].file) == sort_nfiles)
			sort_files[sort_nfiles++] = d->v[i].file;
	if (d->n > 1)
		qsort(d->v, d->n, sizeof(*d->v), diag_cmp);
	for (i = 0; i < d->n; i++) {
		const struct gen_diag *g = &d->v[i];
		const char *sev = g->sev == GEN_SEV_ERROR ? "error" : "warning";
		if (g->line > 0)
			fprintf(out, "%s:%d:%d: %s: %s\n", g->file ? g->file : "-",
				g->line, g->col, sev, g->msg);
		else
			fprintf(out, "%s: %s: %s\n", g->file ? g->file : "-", sev, g->msg);
	}
	if (d->oom)
		fprintf(out, "spogate-gen: error: out of memory, some problems were not reported\n");
}

int gen_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	int row[65];

	if (la > 64 || lb > 64)
		return 100;
	for (j = 0; j <= lb; j++)
		row[j] = (int)j;
	for (i = 1; i <= la; i++) {
		int prev = row[0];
		row[0] = (int)i;
		for (j = 1; j <= lb; j++) {
			int cur = row[j];
			int cost = a[i - 1] == b[j - 1] ? 0 : 1;
			int best = prev + cost;
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = cur;
		}
	}
	return row[lb] > 100 ? 100 : row[lb];
}

const char *gen_did_you_mean(const char *word, const char *const *candidates)
{
	const char *best = NULL;
	int best_d = 100;
	size_t wl = strlen(word);
	int limit;

	/* A third of the word, at least 1 and at most 3 edits, plus a case-only
	 * difference: "get" -> "GET", "alowed_origins" -> "allowed_origins". */
	limit = (int)(wl / 3);
	if (limit < 1)
		limit = 1;
	if (limit > 3)
		limit = 3;
	for (; *candidates; candidates++) {
		int d;
		if (strcasecmp(word, *candidates) == 0)
			return *candidates;
		d = gen_edit_distance(word, *candidates);
		if (d <= limit && d < best_d) {
			best = *candidates;
			best_d = d;
		}
	}
	return best;
}
