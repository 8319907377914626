/*
 * The transaction engine (SPEC §3, §4): install, update, remove, rollback and
 * gc as durable five-phase transactions over generations, with health checks,
 * automatic rollback to the known-good generation, quarantine of failed
 * versions and crash recovery. See the design notes at the top of src/txn.c.
 *
 * Each operation returns 0 or a KMPKG_E* class with the error set, and a
 * summary document through *out (also on most failures; may be NULL):
 *   {"id", "op", "outcome": "committed"|"rolled-back"|"aborted"|"planned",
 *    "generation", "returned_to", "reason", "dry_run",
 *    "changes": [{"name", "from", "to"}], ...}
 */
#ifndef KMPKG_TXN_H
#define KMPKG_TXN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct kmpkg_state;

struct kmpkg_lock;

struct kmpkg_txn_opts {
	const char *root;
	const char *correlation_id;   /* NULL: a fresh UUIDv7 */
	int wait_secs;                /* for the root lock */
	bool dry_run;                 /* plan only: no lock, nothing written */
	bool force;                   /* remove: even if dependents break */
	bool allow_unsigned;          /* recorded */
	bool reinstall;               /* install: extract the packages again and replace their
				       * store entries (repairs one modified on disk) */
	char **allow_permissions;     /* --allow-permission: granted to the plugins of an
				       * install/update that declare them (recorded in the
				       * transaction and the installed set) */
	size_t n_allow_permissions;
	const char *host_file;        /* install/update preflight: NULL = <root>/kmpkg/host.yaml */
	const char *signature;        /* detached signature for one local package */
	struct kmpkg_lock *lock;      /* NULL: the engine takes the root lock; else the caller
				       * already holds it (kept, not released) */
	/* Called after each phase start is committed (NULL: nobody listens),
	 * with the transaction record as it stands; the CLI shows it on a TTY. */
	void (*on_phase)(void *ctx, const char *phase, const json_t *rec);
	void *on_phase_ctx;
};

/* The five phases, in order; index + 1 is the "phase n/5" shown by status. */
extern const char *const kmpkg_txn_phases[5];
int kmpkg_txn_phase_index(const char *phase); /* 1..5, 0 if not a phase */

/* One package to install or update, for callers that resolved it (from a
 * source index): the file and what it must turn out to be. */
struct kmpkg_txn_target {
	const char *path;           /* the .kmpkg file (local, or fetched into a temp file) */
	const char *expect_name;    /* NULL: whatever the manifest says; else mismatch => exit 4 */
	const char *expect_version; /* NULL, or must equal the manifest's version */
	const char *expect_sha256;  /* NULL, or must equal the archive's digest (E_DIGEST_MISMATCH) */
	const char *constraint;     /* NULL, or the range remembered for the plugin (install NAME@RANGE) */
	const char *source;         /* NULL, or the source the target was resolved from ... */
	const char *source_commit;  /* ... and its index commit; both recorded in the txn's "resolved" */
	/* Optional, with path NULL: makes the package available (a download
	 * into the cache) inside the transaction's download phase, so that a
	 * failed download is an aborted transaction with its code in the
	 * history. Sets *path to a malloc'd path the engine frees. A dry run
	 * calls it before planning. */
	int (*fetch)(char **path, void *ctx);
	void *fetch_ctx;
};

int kmpkg_txn_install_targets(json_t **out, const struct kmpkg_txn_opts *o, const struct kmpkg_txn_target *t,
			      size_t n, bool update);

/* paths: local .kmpkg files. install replaces any installed version; update
 * requires the plugin to be installed at an older version. */
int kmpkg_txn_install(json_t **out, const struct kmpkg_txn_opts *o, char *const *paths, size_t n);
int kmpkg_txn_update(json_t **out, const struct kmpkg_txn_opts *o, char *const *paths, size_t n);
int kmpkg_txn_remove(json_t **out, const struct kmpkg_txn_opts *o, char *const *names, size_t n);
/* name NULL: back to the last known-good generation before the current one
 * (or generation `to`). name set: that plugin back to its previous good
 * version (or version `to`). */
int kmpkg_txn_rollback(json_t **out, const struct kmpkg_txn_opts *o, const char *name, const char *to);
/* Deletes generations beyond the `keep` newest (never the active or the
 * known-good one), store entries and cache files no kept generation uses,
 * and the quarantine. */
int kmpkg_txn_gc(json_t **out, const struct kmpkg_txn_opts *o, int keep);

/* Takes the lock, finishes any interrupted transaction, releases the lock. */
int kmpkg_txn_recover(const char *root, int wait_secs);
/* For read-only commands: whether st (open read-only) shows an interrupted
 * transaction, or kmpkg/tmp holds leftovers of one. */
bool kmpkg_txn_needs_recovery(const char *root, struct kmpkg_state *st);
/* Then, with no state of the caller's open (LMDB allows one environment
 * per file per process): the recovery of kmpkg_txn_recover, only when the
 * lock is free; never waits, never fails. */
void kmpkg_txn_recover_if_idle(const char *root);

#endif
