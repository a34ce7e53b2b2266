/* gy: a small YAML document tree built from libyaml's event parser, with
 * the line and column of every node, for the generator's diagnostics.
 * (Prefix gy_, because libyaml owns yaml_.) */
#ifndef GEN_GY_H
#define GEN_GY_H

#include <stddef.h>

#include "diag.h"

/* Input bounds: a gateway YAML is a few KB; these stop abuse early with a
 * clear message instead of a slow run or a stack overflow. */
#define GY_MAX_BYTES  (1024u * 1024u)   /* 1 MiB */
#define GY_MAX_DEPTH  32
#define GY_MAX_NODES  200000u
#define GY_MAX_SCALAR (64u * 1024u)

enum gy_kind {
	GY_SCALAR = 1,
	GY_SEQ = 2,
	GY_MAP = 3,
};

struct gy_node {
	enum gy_kind kind;
	int line, col;          /* 1-based, where the node starts */
	char *str;              /* scalar text, NUL-terminated (owned) */
	size_t len;
	int plain;              /* unquoted scalar: may be null/bool/number */
	struct gy_node **kids;  /* sequence items; map: key0, val0, key1, ... */
	size_t n;               /* number of entries in kids */
};

/* Parses buf (len bytes) as one YAML document. file is only used in
 * diagnostics and must outlive d. On success returns 0 and stores the root
 * (never NULL) in *root, which the caller frees with gy_free(). On failure
 * reports every problem found to d and returns -1 (*root = NULL). */
int gy_parse(const char *file, const char *buf, size_t len,
	     struct gen_diags *d, struct gy_node **root);

/* Reads the file at path (bounded by GY_MAX_BYTES) and parses it. A read
 * error is reported with the file name and no position. */
int gy_load_file(const char *path, struct gen_diags *d, struct gy_node **root);

void gy_free(struct gy_node *n);

/* Number of key/value pairs of a map, key and value of pair i. */
static inline size_t gy_map_size(const struct gy_node *m) { return m->n / 2; }
static inline const struct gy_node *gy_map_key(const struct gy_node *m, size_t i) { return m->kids[2 * i]; }
static inline const struct gy_node *gy_map_val(const struct gy_node *m, size_t i) { return m->kids[2 * i + 1]; }

/* Value of key in map m (NULL when m is not a map or has no such key). */
const struct gy_node *gy_get(const struct gy_node *m, const char *key);

/* A plain scalar spelling null: "", "~", "null". */
int gy_is_null(const struct gy_node *n);

/* Human name of a node's type for messages: "a string", "a list", ... */
const char *gy_kind_name(const struct gy_node *n);

#endif
