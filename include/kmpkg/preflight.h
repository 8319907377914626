/*
 * Preflight (SPEC §9): the compatibility gate run by `kmpkg preflight` in CI
 * and before every install or update. A run has a check set (the manifests
 * given), a host profile and optionally the installed set; each manifest is
 * checked first against the schema (the loader's findings), then against the
 * host (ranges, tier, capabilities, permissions) and the other manifests
 * (capabilities provided, dependencies). Every finding is a diagnostic with a
 * stable code; man/kmpkg-preflight.1 is the catalogue.
 */
#ifndef KMPKG_PREFLIGHT_H
#define KMPKG_PREFLIGHT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "kmpkg/diag.h"
#include "kmpkg/manifest.h"

struct kmpkg_state_txn;

/* What one run checks against. Every pointer is borrowed for the call. */
struct kmpkg_preflight_ctx {
	const struct kmpkg_host *host;           /* NULL: schema and dependency checks only */
	struct kmpkg_manifest *const *given;     /* the check set; NULL entries are skipped */
	size_t ngiven;
	struct kmpkg_manifest *const *installed; /* the installed set, or NULL */
	size_t ninstalled;
	bool skip_dependencies;                  /* leave dependencies to the resolver */
	/*
	 * Set by the engine (install/update), zero for `kmpkg preflight`. With
	 * grant_command set, permissions are checked even when host is NULL
	 * (least privilege: without a profile nothing is pre-allowed); one in
	 * `granted` (earlier grants on the root, --allow-permission) passes as if
	 * the host allowed it; one neither allowed nor granted is the finding
	 * PERMISSION_NOT_GRANTED, whose next step is the command
	 * "<grant_command> --allow-permission P... <grant_args>" naming every
	 * permission of the manifest still missing.
	 */
	const struct kmpkg_strlist *granted;     /* may be NULL */
	const char *grant_command;               /* e.g. "kmpkg install"; NULL: preflight mode */
	const char *grant_args;                  /* e.g. the command's targets; may be NULL */
	/*
	 * The sources' index cache, or NULL (not consulted): an object name ->
	 * [summaries, newest first] as kmpkg_index_versions returns them, for
	 * the names kmpkg_preflight_index_load collected. A dependency nothing
	 * in the check or installed set satisfies passes when an indexed version
	 * satisfies it and passes the host checks; a manifest failing a host,
	 * api, tier or capability check gets as next step the newest indexed
	 * version of its plugin that passes ("kmpkg install NAME@VERSION").
	 */
	const json_t *index;
};

/*
 * The index cache's versions of every plugin the manifests name (their own
 * names and their dependencies; NULL entries are skipped), for ctx->index:
 * *out is a new object name -> [summaries, newest first] ([] when the
 * sources offer none). Read-only; t may be any transaction on the state.
 */
int kmpkg_preflight_index_load(json_t **out, struct kmpkg_state_txn *t, struct kmpkg_manifest *const *v, size_t n);

/*
 * Loads a manifest for preflight from a kmpkg.yaml, a source index file (the
 * same format with `artifact:`) or a `.kmpkg` package (its embedded
 * kmpkg.yaml; diagnostics then name "PKG(kmpkg.yaml)"). Schema findings go
 * to d. Returns 0 (*out set), KMPKG_EPREFLIGHT when the manifest has schema
 * errors (*out NULL, findings in d), or the reader's error (KMPKG_ENOTFOUND,
 * KMPKG_ERESOURCE, KMPKG_EVERIFY for a package without a manifest, ...).
 */
int kmpkg_preflight_load(struct kmpkg_manifest **out, const char *path, struct kmpkg_diags *d);

/* True when the host profile (may be NULL) allows permission p or ctx grants it. */
bool kmpkg_preflight_permission_ok(const struct kmpkg_preflight_ctx *ctx, const char *p);

/* True when path names a package rather than YAML (".kmpkg" or archive magic). */
bool kmpkg_preflight_is_package(const char *path);

/*
 * Checks one loaded manifest (usually one of ctx->given) against the host and
 * the sets in ctx and appends its findings to d. Returns 0 when no
 * error-severity finding was added, KMPKG_EPREFLIGHT when one was,
 * KMPKG_EGENERIC when out of memory.
 */
int kmpkg_preflight_check_manifest(const struct kmpkg_preflight_ctx *ctx, const struct kmpkg_manifest *m,
				   struct kmpkg_diags *d);

/*
 * Loads the manifest at path and checks it alone against host (which may be
 * NULL: schema checks only); its dependencies are not checked (no set). Returns 0 when no error-severity finding was
 * added (warnings may have been), KMPKG_EPREFLIGHT when one was, or the
 * loader's error (KMPKG_ENOTFOUND, KMPKG_ERESOURCE, KMPKG_EGENERIC).
 */
int kmpkg_preflight_check_file(const char *path, const struct kmpkg_host *host, struct kmpkg_diags *d);

/*
 * The installed set as the host sees it: every <root>/plugins/<dir>/kmpkg.yaml
 * that loads without error (broken ones are skipped). *out is a malloc'd
 * array of *n manifests, never NULL on success (free with
 * kmpkg_preflight_manifests_free); an absent plugins directory is an empty set.
 */
int kmpkg_preflight_load_installed(struct kmpkg_manifest ***out, size_t *n, const char *root);
void kmpkg_preflight_manifests_free(struct kmpkg_manifest **v, size_t n);

/*
 * The permission a capability implies (see kmpkg-preflight(1)), or NULL:
 * http.* and net.* -> network, filesystem.write -> filesystem_write,
 * other filesystem.* -> filesystem_read, secrets.* -> secrets.
 */
const char *kmpkg_preflight_implied_permission(const char *capability);

/* One line describing a diagnostic code and one saying how to fix it, for
 * SARIF rules; generic text for codes not in the catalogue. */
void kmpkg_preflight_code_help(const char *code, const char **summary, const char **help);

#endif
