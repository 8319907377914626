/*
 * Sources (SPEC §1 `source ...`, §6, §7): git repositories holding a plugin
 * index, fetched with libgit2 into bare clones <root>/kmpkg/sources/<name>.git
 * and read from the object database only (never a working tree checkout).
 *
 *     kmpkg-source.yaml                 apiVersion: kmpkg/v1, name, description,
 *                                       optional expires (RFC 3339 or YYYY-MM-DD)
 *     plugins/<name>/<version>.yaml     index manifests, one per version
 *     artifacts/...                     optional: packages kept in the repository
 *
 * This module owns the git side only. Which commit of a source is trusted is
 * the caller's state (the engine keeps it in LMDB with the source's URL, ref
 * and token variable name): every function that looks at history takes commit
 * ids as 40-digit lowercase hex strings. The flow of `source add` / `update`:
 *
 *     kmpkg_source_open(&src, root, name, true);
 *     kmpkg_source_update(&res, src, url, &opts, trusted_or_NULL);  fetch + checks
 *     kmpkg_source_index_diff(&diff, src, trusted_or_NULL, res.commit);
 *     ... the engine applies the diff to its index cache, commits LMDB ...
 *     kmpkg_source_trust(src, res.commit);     only after the caller committed
 *     kmpkg_source_close(src);
 *
 * Trust (TUF's fast-forward, rollback and freeze attacks): an update is
 * accepted only when the fetched commit descends from the last trusted one
 * (or equals it), and only when kmpkg-source.yaml in the fetched commit parses
 * and its `expires` has not passed. A refused update moves nothing the caller
 * trusts: the fetched objects may stay in the bare repository (under
 * refs/kmpkg/fetched), but refs/kmpkg/trusted is written only by
 * kmpkg_source_trust. To re-trust a source whose history was rewritten, the
 * operator removes and adds it again (`kmpkg source remove NAME` then
 * `kmpkg source add NAME URL`): that is the next step E_SOURCE_FORCE_PUSHED
 * names, so re-trusting is always a deliberate act and needs no extra flag.
 *
 * Transports: file:// URLs and plain local paths (made absolute), git://,
 * http://, https:// (certificate checks always on, the system CA store) and
 * ssh:// or scp-like user@host:path (credentials from ssh-agent; the host key
 * must match ~/.ssh/known_hosts or /etc/ssh/ssh_known_hosts). An https token
 * is read at fetch time from the environment variable whose NAME the caller
 * passes; neither the token nor a password is ever stored (URLs with a
 * password in them are refused).
 *
 * Nothing here prints. Long fetches report through a progress callback; the
 * CLI draws it on a TTY only. Mutating calls (open with create, fetch, update,
 * trust, delete) expect the caller to hold the root's lock.
 *
 * Error codes (class in brackets = exit status):
 *   E_SOURCE_NAME_INVALID [2]    source name is not [a-z0-9][a-z0-9-]{0,62}
 *   E_SOURCE_URL_INVALID [2]     unsupported scheme, password in the URL, bad ref
 *   E_SOURCE_NOT_FOUND [9]       no bare repository for that name (open without create)
 *   E_SOURCE_REF_NOT_FOUND [9]   the remote has no such branch or tag, or no HEAD
 *   E_SOURCE_FETCH [1]           network, transport, authentication, certificate
 *   E_SOURCE_CANCELLED [1]       the progress callback asked to stop
 *   E_SOURCE_FORCE_PUSHED [4]    fetched commit does not descend from the trusted one
 *   E_SOURCE_EXPIRED [4]         kmpkg-source.yaml's expires has passed
 *   E_SOURCE_MANIFEST [4]        kmpkg-source.yaml missing, too large or invalid
 *   E_SOURCE_PATH_INVALID [4]    a path in the repository that may not be read (.., /x)
 *   E_SOURCE_PATH_NOT_FOUND [9]  no blob at that path in that commit
 *   E_SOURCE_BLOB_TOO_LARGE [4]  a blob over the caller's bound
 *   E_SOURCE_COMMIT_INVALID [2]  not a 40-hex commit id, or not a commit here
 *   E_SOURCE_GIT [1]             other libgit2 failure (message from libgit2)
 *   and E_DISK_FULL / E_IO / E_PERMISSION [10] from the file system.
 */
#ifndef KMPKG_SOURCE_H
#define KMPKG_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kmpkg/buf.h"

#define KMPKG_SOURCE_OID_HEX 40                 /* SHA-1 object ids */
#define KMPKG_SOURCE_META_MAX_BYTES (64 * 1024) /* kmpkg-source.yaml bound */
#define KMPKG_SOURCE_INDEX_MAX_BYTES (64 * 1024) /* larger index files are skipped */

struct kmpkg_source; /* an open bare repository; not thread-safe */

/* Transfer progress, a copy of libgit2's indexer counters. */
struct kmpkg_source_progress {
	unsigned int total_objects;
	unsigned int received_objects;
	unsigned int indexed_objects;
	unsigned int local_objects;
	unsigned int total_deltas;
	unsigned int indexed_deltas;
	size_t received_bytes;
};

/* Called during fetches; return non-zero to cancel (E_SOURCE_CANCELLED). */
typedef int (*kmpkg_source_progress_fn)(const struct kmpkg_source_progress *p, void *payload);

struct kmpkg_source_fetch_opts {
	/* NULL: the remote's HEAD (its default branch). Otherwise a branch or tag
	 * name ("main", "v1.2") or a full ref ("refs/heads/main", "refs/tags/v1");
	 * a branch wins over a tag of the same name. */
	const char *ref;
	/* NULL or the NAME of an environment variable holding an https token
	 * (sent as the password, user from the URL or "x-access-token"). */
	const char *token_env;
	kmpkg_source_progress_fn progress; /* may be NULL */
	void *progress_payload;
	/* Time used for the expires check, Unix seconds; 0 means now. */
	int64_t now;
};

/* Fields of kmpkg-source.yaml. Strings are owned by the struct. */
struct kmpkg_source_meta {
	char *api_version;  /* "kmpkg/v1" */
	char *name;         /* the publisher's name; need not equal the local name */
	char *description;
	bool has_expires;
	int64_t expires;    /* Unix seconds (a bare date means 00:00:00Z that day) */
};

struct kmpkg_source_update_result {
	char commit[KMPKG_SOURCE_OID_HEX + 1]; /* the fetched, checked commit */
	bool changed;                          /* differs from the trusted commit */
	struct kmpkg_source_meta meta;
};

/* One index file plugins/<name>/<version>.yaml. */
struct kmpkg_source_entry {
	char *path;     /* "plugins/hello/1.0.0.yaml" */
	char *name;     /* "hello" */
	char *version;  /* "1.0.0" (exactly as in the file name) */
	char blob[KMPKG_SOURCE_OID_HEX + 1];
	uint64_t size;
};

/* Something under plugins/ that is not a valid index file; the caller warns. */
struct kmpkg_source_skip {
	char *path;
	char *reason;   /* one line, e.g. "plugin name 'Bad_Name' is not [a-z0-9][a-z0-9-]{0,62}" */
};

struct kmpkg_source_index {
	struct kmpkg_source_entry *entries; /* sorted by path */
	size_t n;
	struct kmpkg_source_skip *skipped;
	size_t nskipped;
};

enum kmpkg_source_change_kind {
	KMPKG_SOURCE_ADDED,
	KMPKG_SOURCE_MODIFIED,
	KMPKG_SOURCE_DELETED,
};

struct kmpkg_source_change {
	enum kmpkg_source_change_kind kind;
	/* ADDED, MODIFIED: the new file. DELETED: the old file. */
	struct kmpkg_source_entry entry;
	/* MODIFIED: the old blob id; empty otherwise. */
	char old_blob[KMPKG_SOURCE_OID_HEX + 1];
};

struct kmpkg_source_diff {
	struct kmpkg_source_change *changes; /* sorted by path */
	size_t n;
	struct kmpkg_source_skip *skipped;   /* invalid paths added or modified */
	size_t nskipped;
};

/* [a-z0-9][a-z0-9-]{0,62}: the rule for source names and plugin names. */
bool kmpkg_source_name_valid(const char *name);

/* <root>/kmpkg/sources/<name>.git, malloc'd, or NULL (out of memory). */
char *kmpkg_source_path(const char *root, const char *name);

/* Opens the bare repository of source `name`; with create, makes it (and
 * <root>/kmpkg/sources/) on first use. Errors: E_SOURCE_NAME_INVALID,
 * E_SOURCE_NOT_FOUND, E_SOURCE_GIT, file system errors. */
int kmpkg_source_open(struct kmpkg_source **out, const char *root, const char *name, bool create);
void kmpkg_source_close(struct kmpkg_source *src);

/* Removes the bare repository of source `name` (no error when absent). */
int kmpkg_source_delete(const char *root, const char *name);

/* Points remote "origin" at url (creating or changing it), fetches the ref
 * named in opts (no tags, no other refs) to refs/kmpkg/fetched and returns the
 * commit it names (tags peeled) in out. No trust checks: see update. */
int kmpkg_source_fetch(char out[KMPKG_SOURCE_OID_HEX + 1], struct kmpkg_source *src, const char *url,
		       const struct kmpkg_source_fetch_opts *opts);

/* Fetch, then kmpkg_source_check against `trusted` (NULL on first add).
 * After a refusal (E_SOURCE_FORCE_PUSHED, E_SOURCE_EXPIRED, ...) out->commit
 * still names the refused commit, for messages. Release out with
 * kmpkg_source_update_result_release (also after an error). */
int kmpkg_source_update(struct kmpkg_source_update_result *out, struct kmpkg_source *src, const char *url,
			const struct kmpkg_source_fetch_opts *opts, const char *trusted);

/* The trust checks alone, on objects already in the repository: `commit`
 * equals or descends from `trusted` (skipped when trusted is NULL), its
 * kmpkg-source.yaml is valid and not expired at `now` (0: now). On success
 * *out holds the metadata (release it with kmpkg_source_meta_release).
 * Errors: E_SOURCE_FORCE_PUSHED, E_SOURCE_EXPIRED, E_SOURCE_MANIFEST,
 * E_SOURCE_COMMIT_INVALID. */
int kmpkg_source_check(struct kmpkg_source_meta *out, struct kmpkg_source *src, const char *trusted,
		       const char *commit, int64_t now);

/* Records `commit` as refs/kmpkg/trusted in the bare repository; call after
 * the caller's own state names it. kmpkg_source_trusted reads it back
 * (E_SOURCE_NOT_FOUND when never trusted). */
int kmpkg_source_trust(struct kmpkg_source *src, const char *commit);
int kmpkg_source_trusted(char out[KMPKG_SOURCE_OID_HEX + 1], struct kmpkg_source *src);

/* Every plugins/<name>/<version>.yaml of commit, and what was skipped.
 * Release with kmpkg_source_index_release. */
int kmpkg_source_index_list(struct kmpkg_source_index *out, struct kmpkg_source *src, const char *commit);
void kmpkg_source_index_release(struct kmpkg_source_index *idx);

/* Index files added, modified and deleted under plugins/ between two
 * commits (old NULL: everything is added). No rename detection: a rename is
 * a deletion and an addition; a valid file that becomes invalid (a symlink,
 * over 64 KiB) is deleted and skipped. E_SOURCE_COMMIT_INVALID when a commit
 * is not in the repository (e.g. the bare clone was lost): rebuild from
 * kmpkg_source_index_list instead. Release with kmpkg_source_diff_release. */
int kmpkg_source_index_diff(struct kmpkg_source_diff *out, struct kmpkg_source *src, const char *old_commit,
			    const char *new_commit);
void kmpkg_source_diff_release(struct kmpkg_source_diff *d);

/* The bytes of the blob at `path` in commit's tree (e.g. an artifact kept in
 * the repository, "artifacts/hello-1.0.0.kmpkg"), appended to out, at most
 * max bytes (E_SOURCE_BLOB_TOO_LARGE, nothing appended, when larger). The
 * path is relative, '/'-separated, without '.', '..' or empty components;
 * symlinks and submodules are not followed (E_SOURCE_PATH_NOT_FOUND). */
int kmpkg_source_read_blob(struct kmpkg_buf *out, struct kmpkg_source *src, const char *commit,
			   const char *path, size_t max);
/* The same by blob id (e.g. kmpkg_source_entry.blob). */
int kmpkg_source_read_blob_id(struct kmpkg_buf *out, struct kmpkg_source *src, const char *blob, size_t max);

void kmpkg_source_meta_release(struct kmpkg_source_meta *m);
void kmpkg_source_update_result_release(struct kmpkg_source_update_result *r);

/* Parses an RFC 3339 timestamp ("2026-01-31T12:00:00Z", "...+02:00",
 * fractional seconds ignored) or a date ("2026-01-31" = 00:00:00Z) into Unix
 * seconds. Returns 0, or KMPKG_EUSAGE when malformed (no error set). */
int kmpkg_source_parse_time(int64_t *out, const char *s);

#ifdef KMPKG_TESTING
/* The known_hosts matcher used for ssh host keys: 1 when a line of file
 * names host:port with this key (plain, wildcard or hashed |1| patterns), -1
 * when that key is @revoked for it, 0 otherwise. For tests only. */
int kmpkg_source__known_hosts_check(const char *file, const char *host, int port, const unsigned char *key,
				    size_t klen);
#endif

#endif
