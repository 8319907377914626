/*
 * The state database: an LMDB environment at <root>/kmpkg/state with default
 * (fully synchronous) flags, so every commit is durable when it returns.
 * Values are compact JSON documents (jansson) for debuggability, except in
 * catalog and listing (below).
 *
 *   meta        "schema" -> 1, "next_gen" -> N, "active" -> N, "known_good" -> N
 *   txns        correlation id -> {id, op, targets, changes, state, phase, outcome, ...}
 *   journal     id ++ be32(seq) -> {phase, event, time, duration_ms, outcome, code, message, output}
 *   installed   name -> {name, version, entry, sha256, files, constraint, installed_by, ...}
 *   store       store entry -> the same record as installed, for every entry a generation uses
 *   files       store entry -> [{path, type, mode, size, sha256|target}]: the entry's
 *               file list (what `verify` checks), kept apart so that reading a store
 *               record (rollback, dependency checks) parses a few hundred bytes, not
 *               ~150 per file. Roots from before it hold the list in the store record.
 *   generations be32(N) -> {plugins: {name: entry}, txn, created, healthy}
 *   lock        "holder" -> {pid, id, op, phase, since}
 *   sources     source name -> {name, url, ref, token_env, keys, trusted, added, updated, ...}
 *   index       name \0 version \0 source -> an index manifest's summary (src/index.c)
 *   catalog     plugin name -> version \0 description \0 versions \0 source \0
 *               [source \0 ...]: the newest version, its description (empty
 *               when none), how many versions the index holds, the sources
 *               that have it; what search scans, read without parsing
 *               (kmpkg_state_catalog_*). Roots synced by an earlier kmpkg
 *               hold JSON {name, version, description, sources, versions}
 *               there until the plugin's next sync; search reads both.
 *   listing     name -> version \0 entry \0 constraint \0 description \0 (an
 *               absent field is empty): the installed set in brief, written
 *               with every installed record, so that `list` reads it without
 *               parsing anything (kmpkg_state_listing_*). Not JSON: a JSON
 *               record per plugin costs `list` ~2 ms of jansson at 1,000.
 *
 * Databases added after a root was created (sources, index, catalog, listing, files) are
 * created by the next writable open; a read-only open treats them as empty.
 *
 * Lifetime: every json_t handed out is a fresh copy parsed from the LMDB
 * value, owned by the caller (json_decref), valid after the transaction ends.
 */
#ifndef KMPKG_STATE_H
#define KMPKG_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kmpkg_db {
	KMPKG_DB_META,
	KMPKG_DB_TXNS,
	KMPKG_DB_JOURNAL,
	KMPKG_DB_INSTALLED,
	KMPKG_DB_STORE,
	KMPKG_DB_GENERATIONS,
	KMPKG_DB_LOCK,
	KMPKG_DB_SOURCES,
	KMPKG_DB_INDEX,
	KMPKG_DB_CATALOG,
	KMPKG_DB_LISTING,
	KMPKG_DB_FILES,
	KMPKG_DB_COUNT
};

#define KMPKG_STATE_SCHEMA 1

struct kmpkg_state;
struct kmpkg_state_txn;

/* Opens <root>/kmpkg/state. Writable: creates the directory, the named
 * databases and the meta schema record. Read-only: KMPKG_ENOTFOUND when there
 * is no state yet (a fresh root). Runs mdb_reader_check after opening. */
int kmpkg_state_open(struct kmpkg_state **out, const char *root, bool writable);
void kmpkg_state_free(struct kmpkg_state *s);

int kmpkg_state_begin(struct kmpkg_state_txn **out, struct kmpkg_state *s, bool write);
/* Commits (durably) and frees t; on failure t is aborted and freed. */
int kmpkg_state_commit(struct kmpkg_state_txn *t);
void kmpkg_state_abort(struct kmpkg_state_txn *t);

/* *out = parsed copy of the value; KMPKG_ENOTFOUND (no error message set)
 * when the key is absent. */
int kmpkg_state_get(json_t **out, struct kmpkg_state_txn *t, enum kmpkg_db db, const void *key,
		    size_t klen);
int kmpkg_state_put(struct kmpkg_state_txn *t, enum kmpkg_db db, const void *key, size_t klen,
		    const json_t *val);
/* Absent keys are not an error. */
int kmpkg_state_del(struct kmpkg_state_txn *t, enum kmpkg_db db, const void *key, size_t klen);

/* Calls fn for every record (keys in LMDB order, or reversed) whose key starts
 * with `prefix` (NULL/0: all). fn returns 0 to go on, 1 to stop, <0 error. The
 * key is borrowed for the call; val is owned by fn. */
typedef int (*kmpkg_state_fn)(void *ctx, const void *key, size_t klen, json_t *val);
int kmpkg_state_foreach(struct kmpkg_state_txn *t, enum kmpkg_db db, const void *prefix, size_t plen,
			bool reverse, kmpkg_state_fn fn, void *ctx);

/* The same over the raw bytes, for scans that must not parse every record
 * (search, source removal): key and val are borrowed from LMDB for the call
 * only. fn returns 0 to go on, 1 to stop, <0 error. */
typedef int (*kmpkg_state_raw_fn)(void *ctx, const void *key, size_t klen, const void *val, size_t vlen);
int kmpkg_state_foreach_raw(struct kmpkg_state_txn *t, enum kmpkg_db db, const void *prefix, size_t plen,
			    kmpkg_state_raw_fn fn, void *ctx);

/* Number of records in db (0 when the db does not exist yet). */
int kmpkg_state_count(size_t *out, struct kmpkg_state_txn *t, enum kmpkg_db db);

/* String-keyed conveniences. */
int kmpkg_state_gets(json_t **out, struct kmpkg_state_txn *t, enum kmpkg_db db, const char *key);
int kmpkg_state_puts(struct kmpkg_state_txn *t, enum kmpkg_db db, const char *key, const json_t *val);
int kmpkg_state_dels(struct kmpkg_state_txn *t, enum kmpkg_db db, const char *key);

/* meta integers ("next_gen", "active", "known_good"); *out = dflt when absent. */
int kmpkg_state_meta_get(int64_t *out, struct kmpkg_state_txn *t, const char *key, int64_t dflt);
int kmpkg_state_meta_set(struct kmpkg_state_txn *t, const char *key, int64_t v);

/* Generation records by number (big-endian keys keep them in order). */
void kmpkg_state_gen_key(unsigned char out[4], uint32_t n);
uint32_t kmpkg_state_gen_from_key(const void *key);
int kmpkg_state_gen_get(json_t **out, struct kmpkg_state_txn *t, uint32_t n);
int kmpkg_state_gen_put(struct kmpkg_state_txn *t, uint32_t n, const json_t *val);

/* The listing db. put: any field may be NULL (stored empty). parse: the
 * fields point into val (borrowed from LMDB: valid during the transaction,
 * or the foreach_raw call), an empty field is NULL; KMPKG_EGENERIC with
 * E_STATE_CORRUPT when val is not a listing record (a root written by an
 * earlier kmpkg holds JSON there: read the installed db instead). */
struct kmpkg_listing {
	const char *version, *entry, *constraint, *description;
};
int kmpkg_state_listing_put(struct kmpkg_state_txn *t, const char *name, const struct kmpkg_listing *l);
int kmpkg_state_listing_parse(struct kmpkg_listing *out, const void *val, size_t vlen);

/* The catalog db (the same conventions as listing). put: description may be
 * NULL; sources are nsources strings. parse: sources points at the first of
 * nsources NUL-terminated names stored one after another; E_STATE_CORRUPT
 * when val is not a catalog record (JSON from an earlier kmpkg). */
struct kmpkg_catalog {
	const char *version, *description;
	long versions;
	const char *sources;
	size_t nsources;
};
int kmpkg_state_catalog_put(struct kmpkg_state_txn *t, const char *name, const char *version,
			    const char *description, long versions, const char *const *sources, size_t nsources);
int kmpkg_state_catalog_parse(struct kmpkg_catalog *out, const void *val, size_t vlen);

/* Journal events of a transaction, in order: key id ++ be32(seq). */
int kmpkg_state_journal_put(struct kmpkg_state_txn *t, const char *id, uint32_t seq, const json_t *val);

#endif
