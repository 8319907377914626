/* lazylib: libgit2, loaded with dlopen on first use.
 *
 * kmpkg does not link libgit2. Its dependency chain (libssh2, mbedtls,
 * krb5/GSSAPI, http-parser, pcre2...) costs about 3.5 ms per process to map and
 * relocate, and only the commands that read git sources (source add/sync,
 * preflight --changed-since) call it; every other command would pay for it at
 * start-up. src/fetch.c does the same for libcurl. libarchive and libcrypto
 * are linked statically instead (build.zig, static_libs).
 *
 * Each function below has the name and the exact prototype of the libgit2
 * function it stands for: <git2.h> is included, so the compiler checks every
 * signature against the real header, and the callers (changed.c, source.c...)
 * are unchanged. The first call of a function opens the library once
 * (pthread_once), looks the real symbol up with dlsym, keeps it in a
 * per-function slot (atomic, so concurrent first calls are safe: they store
 * the same address) and forwards.
 *
 * A library that cannot be loaded, or lacks a symbol, is a fatal error: the
 * usual "kmpkg: error[E_LIBRARY]: ..." line and its next step on stderr (text
 * even under --json), then exit(1). The callers cannot be told through the
 * library API (git_tree_entry_id has no error return), and going on would mean
 * calling a null pointer; the library is a declared dependency of the package,
 * so this only happens on a broken install, where the clear message and next
 * step are the useful outcome.
 *
 * Every git_* function referenced in src/ or tests/unit/ must be defined here:
 * scripts/check-lazy (run by scripts/check-docs) compares the objects'
 * undefined symbols with this list. Variadic functions cannot be forwarded and
 * are not used. The fuzz build (scripts/fuzz) links the libraries directly and
 * leaves this file out.
 *
 * The shims are not in the executable's dynamic symbol table (no linked
 * library references them; scripts/check-lazy checks kmpkg), so libgit2's own
 * internal calls always bind to the real functions, never to a shim that
 * would re-enter the loading. The Criterion binaries are the exception:
 * libcriterion itself links libgit2, and its git_libgit2_init/shutdown calls
 * bind to the shims here (the executable exports them because libcriterion
 * references them), which forward to the same library: harmless. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <git2.h>

struct lazylib {
	const char *soname;
	const char *package; /* the Debian package that ships it */
	pthread_once_t once;
	void *handle;
	char error[512];
};

static struct lazylib git = { "libgit2.so.1.5", "libgit2-1.5", PTHREAD_ONCE_INIT, NULL, "" };

static void lib_open(struct lazylib *l)
{
	const char *e;

	l->handle = dlopen(l->soname, RTLD_NOW | RTLD_LOCAL);
	if (!l->handle) {
		e = dlerror();
		snprintf(l->error, sizeof(l->error), "%s", e ? e : "dlopen failed");
	}
}

static void open_git(void)
{
	lib_open(&git);
}

static _Noreturn void lib_fatal(const struct lazylib *l, const char *why)
{
	fflush(stdout);
	fprintf(stderr, "kmpkg: error[E_LIBRARY]: cannot load %s: %s\n  next step: install the Debian package %s\n",
		l->soname, why, l->package);
	exit(1);
}

/* The address of `name` in l, resolved on the first call and kept in *slot. */
static void *lib_sym(struct lazylib *l, void (*opener)(void), void **slot, const char *name)
{
	void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	const char *e;

	if (p)
		return p;
	pthread_once(&l->once, opener);
	if (!l->handle)
		lib_fatal(l, l->error);
	dlerror();
	p = dlsym(l->handle, name);
	if (!p) {
		char why[640];

		e = dlerror();
		snprintf(why, sizeof(why), "%s", e ? e : name);
		lib_fatal(l, why);
	}
	__atomic_store_n(slot, p, __ATOMIC_RELEASE);
	return p;
}

/* LAZY(lib, return type, name, (parameters), (arguments)); LAZY_VOID for
 * functions returning void. A function pointer is filled with memcpy: ISO C
 * has no conversion from void * to a function pointer. */
#define LAZY_FN(lib, ret, name, params)                            \
	ret(*fn) params;                                           \
	void *p_ = lib_sym(&lib, open_##lib, &slot_##name, #name); \
	memcpy(&fn, &p_, sizeof(fn))

#define LAZY(lib, ret, name, params, args)       \
	static void *slot_##name;                \
	ret name params                          \
	{                                        \
		LAZY_FN(lib, ret, name, params); \
		return fn args;                  \
	}

#define LAZY_VOID(lib, name, params, args)        \
	static void *slot_##name;                 \
	void name params                          \
	{                                         \
		LAZY_FN(lib, void, name, params); \
		fn args;                          \
	}

/* libgit2 */
LAZY_VOID(git, git_blob_free, (git_blob *blob), (blob))
LAZY(git, int, git_blob_lookup, (git_blob **blob, git_repository *repo, const git_oid *id), (blob, repo, id))
LAZY(git, const void *, git_blob_rawcontent, (const git_blob *blob), (blob))
LAZY(git, git_object_size_t, git_blob_rawsize, (const git_blob *blob), (blob))
LAZY_VOID(git, git_buf_dispose, (git_buf *buffer), (buffer))
LAZY_VOID(git, git_commit_free, (git_commit *commit), (commit))
LAZY(git, const git_oid *, git_commit_id, (const git_commit *commit), (commit))
LAZY(git, int, git_commit_lookup, (git_commit **commit, git_repository *repo, const git_oid *id),
     (commit, repo, id))
LAZY(git, int, git_commit_tree, (git_tree **tree_out, const git_commit *commit), (tree_out, commit))
LAZY_VOID(git, git_config_free, (git_config *cfg), (cfg))
LAZY(git, int, git_config_get_string_buf, (git_buf *out, const git_config *cfg, const char *name),
     (out, cfg, name))
LAZY(git, int, git_credential_ssh_key_from_agent, (git_credential **out, const char *username),
     (out, username))
LAZY(git, int, git_credential_username_new, (git_credential **out, const char *username), (out, username))
LAZY(git, int, git_credential_userpass_plaintext_new,
     (git_credential **out, const char *username, const char *password),
     (out, username, password))
LAZY_VOID(git, git_diff_free, (git_diff *diff), (diff))
LAZY(git, const git_diff_delta *, git_diff_get_delta, (const git_diff *diff, size_t idx), (diff, idx))
LAZY(git, size_t, git_diff_num_deltas, (const git_diff *diff), (diff))
LAZY(git, int, git_diff_options_init, (git_diff_options *opts, unsigned int version), (opts, version))
LAZY(git, int, git_diff_tree_to_tree,
     (git_diff **diff, git_repository *repo, git_tree *old_tree, git_tree *new_tree,
      const git_diff_options *opts),
     (diff, repo, old_tree, new_tree, opts))
LAZY(git, int, git_diff_tree_to_workdir_with_index,
     (git_diff **diff, git_repository *repo, git_tree *old_tree, const git_diff_options *opts),
     (diff, repo, old_tree, opts))
LAZY(git, const git_error *, git_error_last, (void), ())
LAZY(git, int, git_fetch_options_init, (git_fetch_options *opts, unsigned int version), (opts, version))
LAZY(git, int, git_graph_descendant_of,
     (git_repository *repo, const git_oid *commit, const git_oid *ancestor),
     (repo, commit, ancestor))
LAZY(git, int, git_libgit2_init, (void), ())
LAZY(git, int, git_libgit2_shutdown, (void), ())
LAZY(git, int, git_merge_base, (git_oid *out, git_repository *repo, const git_oid *one, const git_oid *two),
     (out, repo, one, two))
LAZY_VOID(git, git_object_free, (git_object *object), (object))
LAZY(git, const git_oid *, git_object_id, (const git_object *obj), (obj))
LAZY(git, int, git_object_lookup,
     (git_object **object, git_repository *repo, const git_oid *id, git_object_t type),
     (object, repo, id, type))
LAZY(git, int, git_object_peel, (git_object **peeled, const git_object *object, git_object_t target_type),
     (peeled, object, target_type))
LAZY_VOID(git, git_odb_free, (git_odb *db), (db))
LAZY(git, int, git_odb_read_header, (size_t *len_out, git_object_t *type_out, git_odb *db, const git_oid *id),
     (len_out, type_out, db, id))
LAZY(git, int, git_oid_equal, (const git_oid *a, const git_oid *b), (a, b))
LAZY(git, int, git_oid_fromstr, (git_oid *out, const char *str), (out, str))
LAZY(git, char *, git_oid_tostr, (char *out, size_t n, const git_oid *id), (out, n, id))
LAZY(git, int, git_reference_create,
     (git_reference **out, git_repository *repo, const char *name, const git_oid *id, int force,
      const char *log_message),
     (out, repo, name, id, force, log_message))
LAZY_VOID(git, git_reference_free, (git_reference *ref), (ref))
LAZY(git, int, git_reference_name_is_valid, (int *valid, const char *refname), (valid, refname))
LAZY(git, int, git_reference_name_to_id, (git_oid *out, git_repository *repo, const char *name),
     (out, repo, name))
LAZY(git, int, git_remote_connect_ext,
     (git_remote *remote, git_direction direction, const git_remote_connect_options *opts),
     (remote, direction, opts))
LAZY(git, int, git_remote_connect_options_init, (git_remote_connect_options *opts, unsigned int version),
     (opts, version))
LAZY(git, int, git_remote_create_options_init, (git_remote_create_options *opts, unsigned int version),
     (opts, version))
LAZY(git, int, git_remote_create_with_opts,
     (git_remote **out, const char *url, const git_remote_create_options *opts),
     (out, url, opts))
LAZY(git, int, git_remote_disconnect, (git_remote *remote), (remote))
LAZY(git, int, git_remote_download,
     (git_remote *remote, const git_strarray *refspecs, const git_fetch_options *opts),
     (remote, refspecs, opts))
LAZY_VOID(git, git_remote_free, (git_remote *remote), (remote))
LAZY(git, int, git_remote_ls, (const git_remote_head ***out, size_t *size, git_remote *remote),
     (out, size, remote))
LAZY(git, int, git_remote_set_url, (git_repository *repo, const char *remote, const char *url),
     (repo, remote, url))
LAZY(git, int, git_repository_config, (git_config **out, git_repository *repo), (out, repo))
LAZY_VOID(git, git_repository_free, (git_repository *repo), (repo))
LAZY(git, int, git_repository_init, (git_repository **out, const char *path, unsigned is_bare),
     (out, path, is_bare))
LAZY(git, int, git_repository_odb, (git_odb **out, git_repository *repo), (out, repo))
LAZY(git, int, git_repository_open_bare, (git_repository **out, const char *bare_path), (out, bare_path))
LAZY(git, int, git_repository_open_ext,
     (git_repository **out, const char *path, unsigned int flags, const char *ceiling_dirs),
     (out, path, flags, ceiling_dirs))
LAZY(git, const char *, git_repository_workdir, (const git_repository *repo), (repo))
LAZY(git, int, git_revparse_single, (git_object **out, git_repository *repo, const char *spec),
     (out, repo, spec))
LAZY(git, const git_tree_entry *, git_tree_entry_byindex, (const git_tree *tree, size_t idx), (tree, idx))
LAZY(git, const git_tree_entry *, git_tree_entry_byname, (const git_tree *tree, const char *filename),
     (tree, filename))
LAZY(git, int, git_tree_entry_bypath, (git_tree_entry **out, const git_tree *root, const char *path),
     (out, root, path))
LAZY(git, git_filemode_t, git_tree_entry_filemode, (const git_tree_entry *entry), (entry))
LAZY_VOID(git, git_tree_entry_free, (git_tree_entry *entry), (entry))
LAZY(git, const git_oid *, git_tree_entry_id, (const git_tree_entry *entry), (entry))
LAZY(git, const char *, git_tree_entry_name, (const git_tree_entry *entry), (entry))
LAZY(git, git_object_t, git_tree_entry_type, (const git_tree_entry *entry), (entry))
LAZY(git, size_t, git_tree_entrycount, (const git_tree *tree), (tree))
LAZY_VOID(git, git_tree_free, (git_tree *tree), (tree))
LAZY(git, int, git_tree_lookup, (git_tree **out, git_repository *repo, const git_oid *id), (out, repo, id))
