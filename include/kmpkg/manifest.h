/*
 * Manifests (SPEC §6) and host profiles (SPEC §8), read with libyaml's event
 * API into a bounded tree, then into typed fields. Limits: input <= 64 KiB,
 * nesting <= 32, no anchors or aliases, one document, no duplicate keys,
 * scalars <= 4 KiB and without NUL. Every problem is a diagnostic with the
 * file, the line and column of libyaml's mark and a JSON Pointer field.
 * Unknown fields are warnings.
 */
#ifndef KMPKG_MANIFEST_H
#define KMPKG_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kmpkg/diag.h"

#define KMPKG_MANIFEST_MAX_BYTES (64 * 1024)
#define KMPKG_MANIFEST_MAX_DEPTH 32
#define KMPKG_MANIFEST_MAX_SCALAR 4096
#define KMPKG_MANIFEST_MAX_MIRRORS 16

struct kmpkg_strlist {
	char **v;
	size_t n;
};

struct kmpkg_dependency {
	char *name;
	char *range;
};

struct kmpkg_manifest {
	char *file;          /* as given to the loader */
	char *api_version;   /* "kmpkg/v1" */
	char *name;
	char *version;
	char *description;   /* may be NULL */
	char *host;          /* range, may be NULL (any host) */
	char *api;           /* range, may be NULL */
	char *tier;          /* may be NULL (lowest tier) */
	struct kmpkg_strlist requires;    /* capabilities.requires */
	struct kmpkg_strlist provides;    /* capabilities.provides */
	struct kmpkg_strlist permissions;
	struct kmpkg_dependency *deps;    /* in document order */
	size_t ndeps;
	char *entrypoint;    /* may be NULL */
	struct kmpkg_strlist health_command; /* argv; n == 0 when no health check */
	uint32_t health_timeout_ms;          /* default 5000 */
	bool has_artifact;
	struct {
		char *url;
		char *sha256;  /* 64 lowercase hex */
		uint64_t size;
		char *signature; /* may be NULL */
		/* Extension of SPEC §6: http(s) or file URLs tried in order
		 * after url; at most KMPKG_MANIFEST_MAX_MIRRORS. */
		struct kmpkg_strlist mirrors;
	} artifact;
	struct kmpkg_posmap *pos; /* positions of every node, for diagnostics */
};

struct kmpkg_host {
	char *file;
	char *host;                       /* e.g. "km" */
	char *version;                    /* SemVer */
	struct kmpkg_strlist api;         /* API contract versions provided */
	char *tier;
	struct kmpkg_strlist tiers;       /* lowest first */
	struct kmpkg_strlist capabilities;
	struct kmpkg_strlist permissions_allowed;
	struct kmpkg_posmap *pos;
};

/* Loaders: 0 when the document has no error-severity finding (warnings may
 * have been added to diags), KMPKG_EUSAGE when it has (each in diags; *out is
 * NULL), KMPKG_ENOTFOUND / KMPKG_ERESOURCE when the file cannot be read (error
 * set, no diagnostic). `file` is the name used in diagnostics. */
int kmpkg_manifest_load_file(struct kmpkg_manifest **out, const char *path, struct kmpkg_diags *diags);
int kmpkg_manifest_load_buf(struct kmpkg_manifest **out, const char *file, const char *data,
			    size_t len, struct kmpkg_diags *diags);
void kmpkg_manifest_free(struct kmpkg_manifest *m);

int kmpkg_host_load_file(struct kmpkg_host **out, const char *path, struct kmpkg_diags *diags);
int kmpkg_host_load_buf(struct kmpkg_host **out, const char *file, const char *data, size_t len,
			struct kmpkg_diags *diags);
void kmpkg_host_free(struct kmpkg_host *h);

/* Line and column (1-based) of the node at a JSON Pointer such as
 * "/dependencies/json-helpers" or "/capabilities/requires/0"; for a missing
 * node, the position of its nearest existing parent. Returns true if the
 * pointer itself exists. */
bool kmpkg_posmap_find(const struct kmpkg_posmap *p, const char *pointer, int *line, int *column);

/* Plugin names: [a-z0-9][a-z0-9-]{0,62}. */
bool kmpkg_manifest_name_valid(const char *name);

/* Frees the strings of a list and empties it. */
void kmpkg_strlist_release(struct kmpkg_strlist *l);
/* True when the list holds s. */
bool kmpkg_strlist_contains(const struct kmpkg_strlist *l, const char *s);

#endif
