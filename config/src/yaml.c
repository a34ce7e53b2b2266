/* YAML loading with positions; see gy.h. */
#include "gy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

struct loader {
	const char *file;
	struct gen_diags *d;
	struct gy_node *stack[GY_MAX_DEPTH + 1];
	int depth;
	size_t nodes;
	struct gy_node *root;
	int failed;
};

void gy_free(struct gy_node *n)
{
	size_t i;

	if (!n)
		return;
	for (i = 0; i < n->n; i++)
		gy_free(n->kids[i]);
	free(n->kids);
	free(n->str);
	free(n);
}

const struct gy_node *gy_get(const struct gy_node *m, const char *key)
{
	size_t i;

	if (!m || m->kind != GY_MAP)
		return NULL;
	for (i = 0; i < gy_map_size(m); i++)
		if (strcmp(gy_map_key(m, i)->str, key) == 0)
			return gy_map_val(m, i);
	return NULL;
}

int gy_is_null(const struct gy_node *n)
{
	return n && n->kind == GY_SCALAR && n->plain &&
	       (n->len == 0 || strcmp(n->str, "~") == 0 ||
		strcasecmp(n->str, "null") == 0);
}

const char *gy_kind_name(const struct gy_node *n)
{
	if (!n)
		return "nothing";
	if (n->kind == GY_SEQ)
		return "a list";
	if (n->kind == GY_MAP)
		return "a mapping";
	if (gy_is_null(n))
		return "null";
	return "a scalar";
}

/* Returns the 1-based line and column of byte off in buf, counting UTF-8
 * characters for the column the way libyaml does. */
static void pos_of(const char *buf, size_t off, int *line, int *col)
{
	size_t i;

	*line = 1;
	*col = 1;
	for (i = 0; i < off; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c == '\n') {
			(*line)++;
			*col = 1;
		} else if ((c & 0xC0) != 0x80) {
			(*col)++;
		}
	}
}

/* Finds the first byte that is not well-formed UTF-8 (overlongs, surrogates
 * and code points above U+10FFFF included); returns its offset or len. */
static size_t utf8_bad_offset(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n, k;
		unsigned long cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			n = 1;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return i;
		}
		if (len - i <= n)
			return i;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return i;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return i;
		i += n + 1;
	}
	return len;
}

static void lerr(struct loader *l, int line, int col, const char *msg, const char *arg)
{
	gen_diag_add(l->d, GEN_SEV_ERROR, l->file, line, col, msg, arg);
	l->failed = 1;
}

static int attach(struct loader *l, struct gy_node *n)
{
	struct gy_node *parent;
	struct gy_node **nk;

	if (l->depth == 0) {
		if (l->root) {
			gy_free(n);
			return -1;
		}
		l->root = n;
		return 0;
	}
	parent = l->stack[l->depth - 1];
	if (parent->kind == GY_MAP && (parent->n % 2) == 0 && n->kind != GY_SCALAR) {
		lerr(l, n->line, n->col, "%s", "mapping keys must be plain strings");
		gy_free(n);
		return -1;
	}
	nk = realloc(parent->kids, (parent->n + 1) * sizeof(*nk));
	if (!nk) {
		gy_free(n);
		return -1;
	}
	parent->kids = nk;
	parent->kids[parent->n++] = n;
	return 0;
}

static struct gy_node *new_node(struct loader *l, enum gy_kind kind, const yaml_mark_t *m)
{
	struct gy_node *n;

	if (++l->nodes > GY_MAX_NODES) {
		if (l->nodes == GY_MAX_NODES + 1)
			lerr(l, (int)m->line + 1, (int)m->column + 1,
			     "document has too many nodes (limit %s)", "200000");
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->kind = kind;
	n->line = (int)m->line + 1;
	n->col = (int)m->column + 1;
	return n;
}

struct key_ref {
	const struct gy_node *k;
};

static int key_cmp(const void *a, const void *b)
{
	const struct key_ref *x = a, *y = b;
	int c = strcmp(x->k->str, y->k->str);

	if (c)
		return c;
	/* Keep document order among equal keys so the first one is named. */
	if (x->k->line != y->k->line)
		return x->k->line < y->k->line ? -1 : 1;
	return (x->k->col > y->k->col) - (x->k->col < y->k->col);
}

/* Reports each repeated key of a finished mapping (O(n log n)). */
static void check_dup_keys(struct loader *l, const struct gy_node *m)
{
	size_t np = gy_map_size(m), i;
	struct key_ref *r;

	if (np < 2)
		return;
	r = calloc(np, sizeof(*r));
	if (!r)
		return;
	for (i = 0; i < np; i++)
		r[i].k = gy_map_key(m, i);
	qsort(r, np, sizeof(*r), key_cmp);
	for (i = 1; i < np; i++) {
		if (strcmp(r[i].k->str, r[i - 1].k->str) == 0) {
			size_t j = i - 1;
			while (j > 0 && strcmp(r[j - 1].k->str, r[i].k->str) == 0)
				j--;
			gen_diag_add(l->d, GEN_SEV_ERROR, l->file, r[i].k->line, r[i].k->col,
				     "duplicate key '%.200s' (first defined at line %d)",
				     r[i].k->str, r[j].k->line);
			l->failed = 1;
		}
	}
	free(r);
}

/* Handles one parser event; returns -1 to stop parsing. */
static int on_event(struct loader *l, yaml_event_t *ev, int *docs)
{
	struct gy_node *n;
	const yaml_mark_t *m = &ev->start_mark;

	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++*docs > 1) {
			lerr(l, (int)m->line + 1, (int)m->column + 1, "%s",
			     "only one YAML document is allowed per file");
			return -1;
		}
		return 0;
	case YAML_ALIAS_EVENT:
		/* Aliases would share nodes and allow "billion laughs" blowups;
		 * a gateway config never needs them. */
		lerr(l, (int)m->line + 1, (int)m->column + 1,
		     "YAML aliases ('*%.100s') are not supported", (const char *)ev->data.alias.anchor);
		n = new_node(l, GY_SCALAR, m);
		if (!n)
			return -1;
		n->str = strdup("");
		n->plain = 1;
		if (!n->str) {
			gy_free(n);
			return -1;
		}
		return attach(l, n);
	case YAML_SCALAR_EVENT:
		if (ev->data.scalar.length > GY_MAX_SCALAR) {
			lerr(l, (int)m->line + 1, (int)m->column + 1,
			     "value is too long (limit %s bytes)", "65536");
			return -1;
		}
		n = new_node(l, GY_SCALAR, m);
		if (!n)
			return -1;
		n->str = malloc(ev->data.scalar.length + 1);
		if (!n->str) {
			gy_free(n);
			return -1;
		}
		memcpy(n->str, ev->data.scalar.value, ev->data.scalar.length);
		n->str[ev->data.scalar.length] = '\0';
		n->len = ev->data.scalar.length;
		/* An embedded NUL ("\0" escape) would silently cut the value. */
		if (strlen(n->str) != n->len)
			lerr(l, n->line, n->col, "%s", "value contains a NUL character");
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		return attach(l, n);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (l->depth >= GY_MAX_DEPTH) {
			lerr(l, (int)m->line + 1, (int)m->column + 1,
			     "document is nested too deeply (limit %s levels)", "32");
			return -1;
		}
		n = new_node(l, ev->type == YAML_SEQUENCE_START_EVENT ? GY_SEQ : GY_MAP, m);
		if (!n || attach(l, n) < 0)
			return -1;
		l->stack[l->depth++] = n;
		return 0;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		if (l->depth > 0) {
			n = l->stack[--l->depth];
			if (n->kind == GY_MAP)
				check_dup_keys(l, n);
		}
		return 0;
	default:
		return 0;
	}
}

int gy_parse(const char *file, const char *buf, size_t len,
	     struct gen_diags *d, struct gy_node **root)
{
	struct loader l;
	yaml_parser_t p;
	yaml_event_t ev;
	size_t bad;
	int line, col, docs = 0, done = 0;

	*root = NULL;
	memset(&l, 0, sizeof(l));
	l.file = file;
	l.d = d;
	if (len > GY_MAX_BYTES) {
		gen_diag_add(d, GEN_SEV_ERROR, file, 1, 1,
			     "file is too large (%zu bytes, limit %u bytes)", len, GY_MAX_BYTES);
		return -1;
	}
	bad = utf8_bad_offset((const unsigned char *)buf, len);
	if (bad < len) {
		pos_of(buf, bad, &line, &col);
		gen_diag_add(d, GEN_SEV_ERROR, file, line, col,
			     "invalid UTF-8 byte 0x%02x (the file must be UTF-8 text)",
			     (unsigned char)buf[bad]);
		return -1;
	}
	if (!yaml_parser_initialize(&p)) {
		gen_diag_add(d, GEN_SEV_ERROR, file, 0, 0, "out of memory");
		return -1;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	yaml_parser_set_encoding(&p, YAML_UTF8_ENCODING);
	while (!done) {
		if (!yaml_parser_parse(&p, &ev)) {
			const char *ctx = p.context ? p.context : "";
			gen_diag_add(d, GEN_SEV_ERROR, file, (int)p.problem_mark.line + 1,
				     (int)p.problem_mark.column + 1, "YAML syntax error: %s%s%s",
				     p.problem ? p.problem : "unknown problem",
				     *ctx ? " " : "", ctx);
			l.failed = 1;
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		if (on_event(&l, &ev, &docs) < 0) {
			if (!l.failed)
				gen_diag_add(d, GEN_SEV_ERROR, file, 0, 0, "out of memory");
			l.failed = 1;
			done = 1;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	if (!l.failed && !l.root) {
		gen_diag_add(d, GEN_SEV_ERROR, file, 1, 1, "file is empty");
		l.failed = 1;
	}
	if (l.failed) {
		gy_free(l.root);
		return -1;
	}
	*root = l.root;
	return 0;
}

int gy_load_file(const char *path, struct gen_diags *d, struct gy_node **root)
{
	FILE *f;
	char *buf;
	size_t n;
	int rc;

	*root = NULL;
	f = fopen(path, "rb");
	if (!f) {
		gen_diag_add(d, GEN_SEV_ERROR, path, 0, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	/* Read one byte past the limit to tell "too large" from "exactly max". */
	buf = malloc(GY_MAX_BYTES + 1);
	if (!buf) {
		fclose(f);
		gen_diag_add(d, GEN_SEV_ERROR, path, 0, 0, "out of memory");
		return -1;
	}
	n = fread(buf, 1, GY_MAX_BYTES + 1, f);
	if (ferror(f)) {
		gen_diag_add(d, GEN_SEV_ERROR, path, 0, 0, "read error: %s", strerror(errno));
		free(buf);
		fclose(f);
		return -1;
	}
	if (n > GY_MAX_BYTES) {
		long size;
		if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > 0)
			gen_diag_add(d, GEN_SEV_ERROR, path, 1, 1,
				     "file is too large (%ld bytes, limit %u bytes)", size, GY_MAX_BYTES);
		else
			gen_diag_add(d, GEN_SEV_ERROR, path, 1, 1,
				     "file is too large (limit %u bytes)", GY_MAX_BYTES);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	rc = gy_parse(path, buf, n, d, root);
	free(buf);
	return rc;
}
