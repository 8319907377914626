/*
 * The index cache (SPEC §1 search/info/install NAME, §7): what the sources'
 * index manifests say, kept in the state database so that search, info and
 * resolution never walk git trees. Two databases (include/kmpkg/state.h):
 *
 *   index    name \0 version \0 source -> summary of plugins/<name>/<version>.yaml:
 *            {name, version, source, commit, path, blob, description, host,
 *             api, tier, requires, provides, permissions, deps: {name: range},
 *             artifact: {url, sha256, size, signature, mirrors (only when given)}}
 *   catalog  name -> {name, version (newest in any source), description (of
 *            that version), sources: [...]}, rewritten for every name a sync
 *            touches; `search` scans only this.
 *
 * The key puts the plugin name first so that every version of a plugin, in
 * every source, is one prefix scan ("hello\0"); removing a source scans the
 * keys alone (no value is parsed).
 *
 * A sync applies kmpkg_source_index_diff between the trusted commit and the
 * fetched one (the whole index on the first add) inside the caller's write
 * transaction; the caller commits it and only then trusts the commit.
 * Index files that fail the manifest schema, lack an artifact block, or whose
 * name/version differ from their path are skipped (reported as warnings).
 */
#ifndef KMPKG_INDEX_H
#define KMPKG_INDEX_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "kmpkg/manifest.h"
#include "kmpkg/source.h"
#include "kmpkg/state.h"

struct kmpkg_index_sync_result {
	size_t added, modified, deleted; /* index entries written or removed */
	json_t *warnings;                /* [{path, reason}] of skipped files (owned) */
};

/* Applies the index changes of `source` from old_commit (NULL: none cached,
 * so everything is added) to new_commit. When the diff cannot be computed
 * (the old commit is gone from the clone), the source's entries are dropped
 * and the whole index of new_commit is read instead. Release out with
 * kmpkg_index_sync_result_release (also after an error). */
int kmpkg_index_sync(struct kmpkg_index_sync_result *out, struct kmpkg_state_txn *t, struct kmpkg_source *src,
		     const char *source, const char *old_commit, const char *new_commit);
void kmpkg_index_sync_result_release(struct kmpkg_index_sync_result *r);

/* Deletes every entry of `source` and rewrites the catalog of the names it
 * had; *count (may be NULL) = entries removed. */
int kmpkg_index_remove_source(size_t *count, struct kmpkg_state_txn *t, const char *source);

/* Number of entries cached for `source` (a scan of the keys). */
int kmpkg_index_count(size_t *out, struct kmpkg_state_txn *t, const char *source);

/* Every cached version of `name` (summaries, newest first; for equal
 * versions, sources in key order). An empty array when there is none. */
int kmpkg_index_versions(json_t **out, struct kmpkg_state_txn *t, const char *name);

/* The summary of an index manifest (the JSON stored in the index database). */
json_t *kmpkg_index_summary(const struct kmpkg_manifest *m, const char *source, const char *commit,
			    const char *path, const char *blob);

/* A manifest rebuilt from a summary, for preflight checks (no positions).
 * Free with kmpkg_manifest_free. */
int kmpkg_index_manifest(struct kmpkg_manifest **out, const json_t *summary);

/* Search: fn is called for each plugin whose name or description contains
 * `term` (ASCII case folded), newest version each, in name order; an empty
 * term matches everything. The hit's strings are borrowed for the call
 * (description NULL when there is none; sources: nsources NUL-terminated
 * names one after another). fn returns 0 to go on, <0 to stop with that
 * error. Read from the catalog without parsing JSON. */
struct kmpkg_search_hit {
	const char *name, *version, *description;
	long versions;
	const char *sources;
	size_t nsources;
};
typedef int (*kmpkg_search_fn)(void *ctx, const struct kmpkg_search_hit *h);
int kmpkg_index_search(struct kmpkg_state_txn *t, const char *term, kmpkg_search_fn fn, void *ctx);

#endif
