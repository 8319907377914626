/*
 * A bounded YAML reader (internal): libyaml's event API builds a small tree of
 * mappings, sequences and scalars, each with its 1-based line and column.
 * Everything that could make a hostile document expensive or ambiguous is
 * refused with exactly one diagnostic, and parsing stops at the first one:
 * size, nesting depth, node count, scalar length, NUL, anchors and aliases,
 * several documents, duplicate or non-scalar keys, non-standard tags.
 *
 * Nodes do not store their JSON Pointer: it is computed on demand from the
 * parent links (kmpkg_yamltree_path), so memory stays linear in the input.
 */
#ifndef KMPKG_YAMLTREE_H
#define KMPKG_YAMLTREE_H

#include <stdbool.h>
#include <stddef.h>

#include "kmpkg/buf.h"
#include "kmpkg/diag.h"

enum kmpkg_yamltree_type { KMPKG_YT_SCALAR, KMPKG_YT_MAP, KMPKG_YT_SEQ };

/* How a scalar resolves under the YAML 1.2 core schema (an explicit standard
 * tag wins; quoted and block scalars are strings). */
enum kmpkg_yamltree_kind { KMPKG_YT_STR, KMPKG_YT_INT, KMPKG_YT_FLOAT, KMPKG_YT_BOOL, KMPKG_YT_NULL };

struct kmpkg_yamltree_node {
	enum kmpkg_yamltree_type type;
	enum kmpkg_yamltree_kind kind; /* scalars only */
	int line, column;              /* 1-based, from libyaml's start mark */
	struct kmpkg_yamltree_node *parent;
	size_t index;                  /* position in the parent (sequence index or pair index) */
	bool is_key;                   /* a mapping key (then index is its pair's index) */
	char *str;                     /* scalar value, NUL-terminated, no NUL inside */
	size_t len;
	/* Sequences: items[0..n). Mappings: keys[i] (scalars) -> items[i]. */
	struct kmpkg_yamltree_node **keys;
	struct kmpkg_yamltree_node **items;
	size_t n, cap;
	/* Mappings: open-addressing index of keys (key index + 1, 0 = free),
	 * so duplicate detection stays linear on 5,000-key mappings. */
	size_t *slots;
	size_t nslots;
};

struct kmpkg_yamltree_limits {
	size_t max_bytes;  /* KMPKG_MANIFEST_MAX_BYTES */
	size_t max_depth;  /* KMPKG_MANIFEST_MAX_DEPTH */
	size_t max_scalar; /* KMPKG_MANIFEST_MAX_SCALAR */
	size_t max_nodes;  /* KMPKG_YAMLTREE_MAX_NODES */
};

#define KMPKG_YAMLTREE_MAX_NODES 10000

struct kmpkg_yamltree {
	struct kmpkg_yamltree_node *root; /* NULL for an empty stream */
	size_t nnodes;
};

/*
 * Parses data[0..len). `doc_prefix` names the document kind in the codes of
 * whole-document findings ("MANIFEST" gives MANIFEST_TOO_LARGE); the reader's
 * own findings are YAML_*. limits may be NULL for the defaults. Returns 0 with
 * *out set (its root NULL when the stream holds no document), KMPKG_EUSAGE
 * after adding one error diagnostic (*out NULL), or KMPKG_EGENERIC when out of
 * memory (error set).
 */
int kmpkg_yamltree_parse(struct kmpkg_yamltree **out, const char *file, const char *data, size_t len,
			 const char *doc_prefix, const struct kmpkg_yamltree_limits *limits,
			 struct kmpkg_diags *d);
/* The finding for a document over the size limit, without reading it. */
int kmpkg_yamltree_too_large(const char *file, const char *doc_prefix, size_t size, size_t max,
			     struct kmpkg_diags *d);
/* Reads a file of at most max bytes: *out (NUL-terminated) and *len, or only
 * *total (the file's size) when it is larger. Returns 0, KMPKG_ENOTFOUND or
 * KMPKG_ERESOURCE (error set). */
int kmpkg_yamltree_read_file(char **out, size_t *len, size_t *total, const char *path, size_t max);
void kmpkg_yamltree_free(struct kmpkg_yamltree *t);

/* The value of key `key` in mapping `map`, or NULL (also when map is not a mapping). */
struct kmpkg_yamltree_node *kmpkg_yamltree_get(const struct kmpkg_yamltree_node *map, const char *key);

/* Appends the JSON Pointer of node to b ("" for the root; a key's pointer is
 * its value's). Returns 0 or KMPKG_EGENERIC. */
int kmpkg_yamltree_path(struct kmpkg_buf *b, const struct kmpkg_yamltree_node *node);

/* Follows a JSON Pointer from root; returns the deepest node reached and sets
 * *exact when the whole pointer was found. */
const struct kmpkg_yamltree_node *kmpkg_yamltree_find(const struct kmpkg_yamltree_node *root,
						      const char *pointer, bool *exact);

/* "mapping", "sequence", "string", "integer", "float", "boolean", "null". */
const char *kmpkg_yamltree_describe(const struct kmpkg_yamltree_node *node);

#endif
