/*
 * Typed fields out of a yamltree (internal), shared by the manifest and the
 * host-profile loaders: each getter checks one field's type and reports at
 * most one diagnostic for it, coded <prefix>_TYPE, <prefix>_MISSING_FIELD,
 * <prefix>_INVALID_VALUE or <prefix>_UNKNOWN_FIELD (a warning).
 *
 * Conventions: a null value (`key:`, `key: ~`) counts as absent. A string
 * field takes any non-null scalar that is not a boolean, as written (so
 * `version: 1.2` is the string "1.2"); integers must be plain or !!int.
 */
#ifndef KMPKG_SCHEMA_H
#define KMPKG_SCHEMA_H

#include <stdbool.h>
#include <stdint.h>

#include "kmpkg/diag.h"
#include "kmpkg/manifest.h"
#include "yamltree.h"

/* Positions of a loaded document: the tree itself, kept for lookups. */
struct kmpkg_posmap {
	struct kmpkg_yamltree *tree;
};

struct kmpkg_schema {
	const char *file;
	const char *prefix;  /* "MANIFEST" or "HOST" */
	struct kmpkg_diags *d;
	size_t errors;       /* error-severity findings added */
	bool oom;
};

typedef const struct kmpkg_yamltree_node kmpkg_ynode;

/* Both loaders' last step: E_NOMEM if the checks ran out of memory,
 * KMPKG_EUSAGE if they reported an error, else *pos takes over *tree. */
int kmpkg_schema_close(struct kmpkg_posmap **pos, struct kmpkg_schema *s, struct kmpkg_yamltree **tree);

/* Both loaders' first step: the bounded reader, then "the root is a mapping"
 * (<prefix>_EMPTY for a null document, <prefix>_TYPE for another kind).
 * Returns 0 or the reader's error with one diagnostic added. */
int kmpkg_schema_open(struct kmpkg_yamltree **out, const char *file, const char *data, size_t len,
		      const char *prefix, struct kmpkg_diags *d);

/* Adds a finding coded <prefix>_<suffix> at node `at` (position) with field
 * pointer `field`, or at's own pointer when field is NULL. */
void kmpkg_schema_report(struct kmpkg_schema *s, enum kmpkg_severity sev, const char *suffix,
			 kmpkg_ynode *at, const char *field, const char *required, const char *actual,
			 const char *next_step, const char *fmt, ...) __attribute__((format(printf, 9, 10)));

/* The value at key, NULL when absent or null; reports MISSING_FIELD (at the
 * mapping) when required. */
kmpkg_ynode *kmpkg_schema_field(struct kmpkg_schema *s, kmpkg_ynode *map, const char *key, bool required);

/* Type checks of a present node; each reports TYPE and returns false. */
bool kmpkg_schema_is_string(struct kmpkg_schema *s, kmpkg_ynode *n);
bool kmpkg_schema_is_map(struct kmpkg_schema *s, kmpkg_ynode *n);

/* A string field: *out is a copy or NULL (absent or wrong type). */
void kmpkg_schema_string(struct kmpkg_schema *s, char **out, kmpkg_ynode *map, const char *key,
			 bool required);
/* A list of non-empty strings; *out stays empty when absent or wrong. Returns
 * the sequence node when present and well-typed. */
kmpkg_ynode *kmpkg_schema_strlist(struct kmpkg_schema *s, struct kmpkg_strlist *out, kmpkg_ynode *map,
				  const char *key, bool required);
/* An integer field within [min, max]; returns true when present and valid. */
bool kmpkg_schema_uint(struct kmpkg_schema *s, uint64_t *out, kmpkg_ynode *map, const char *key,
		       bool required, uint64_t min, uint64_t max);
/* Warns about every key of map not in the NULL-terminated list known. */
void kmpkg_schema_unknown(struct kmpkg_schema *s, kmpkg_ynode *map, const char *const *known);

/* SemVer 2.0.0 syntax only (no leading 'v'; numbers <= 2^53-1, length <= 256). */
bool kmpkg_schema_semver_valid(const char *v);
/* A relative path inside the package: not empty, no leading '/', no ".." component. */
bool kmpkg_schema_relpath_valid(const char *p);

#endif
