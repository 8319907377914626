/* lazylib: libgit2, libarchive and libcrypto, loaded with dlopen on first use.
 *
 * kmpkg does not link libgit2, libarchive or libcrypto. The dependency chains
 * of the first two (libxml2 -> ICU -> libstdc++, krb5/GSSAPI, libssh2,
 * mbedtls, pcre2, nettle...) cost about 4 ms per process to map and relocate,
 * and libcrypto alone about 1.4 ms (4.7 MB mapped, its relocations and
 * constructors): every `list`, `status`, `rollback` or `--version` would pay
 * that although only install/update/pack (archives), preflight
 * --changed/source (git) and hashing or signature checks (libcrypto) touch
 * them. src/fetch.c does the same for libcurl.
 *
 * Each function below has the name and the exact prototype of the library
 * function it stands for: <git2.h>, <archive.h>, <archive_entry.h> and the
 * <openssl/...> headers are included, so the compiler checks every signature
 * against the real header, and the callers (archive.c, pack.c, changed.c,
 * source.c, sig.c, verify.c...) are unchanged. Header macros resolve to the
 * functions here (OPENSSL_free to CRYPTO_free, BIO_get_mem_data to BIO_ctrl).
 * The first call of a function opens its library once (pthread_once), looks
 * the real symbol up with dlsym, keeps it in a per-function slot (atomic, so
 * concurrent first calls are safe: they store the same address) and forwards.
 *
 * A library that cannot be loaded, or lacks a symbol, is a fatal error: the
 * usual "kmpkg: error[E_LIBRARY]: ..." line and its next step on stderr (text
 * even under --json), then exit(1). The callers cannot be told through the library
 * APIs (git_tree_entry_id, archive_entry_set_perm, EVP_sha256 or
 * EVP_MD_CTX_free have no usable error return), and going on would mean
 * calling a null pointer; the library is a declared dependency of the package,
 * so this only happens on a broken install, where the clear message and next
 * step are the useful outcome.
 *
 * Every git_*, archive_* or OpenSSL function referenced in src/ or tests/unit/
 * (the test binaries do not link the libraries either) must be defined here:
 * scripts/check-lazy (run by scripts/check-docs) compares the objects'
 * undefined symbols with this list. Variadic functions (archive_set_error,
 * ERR_add_error_data) cannot be forwarded and are not used. The fuzz build
 * (scripts/fuzz) links the libraries directly and leaves this file out.
 *
 * Other libraries load libcrypto as their own dependency: libcurl (through
 * libssl, dlopened by src/fetch.c) and, in the Criterion binaries, libssh2
 * under libgit2 under libcriterion, so there libcrypto is mapped from the
 * start. The loader keeps one instance per soname, so our dlopen returns that
 * same instance, and dlsym on our handle finds libcrypto's own definitions.
 * The shims here are not in the executable's dynamic symbol table (no linked
 * library references them; scripts/check-lazy checks kmpkg), so those
 * libraries, and libcrypto's own internal calls, always bind to the real
 * functions, never to a shim that would re-enter the loading. libgit2 is the
 * exception in the Criterion binaries: libcriterion's own
 * git_libgit2_init/shutdown calls do bind to the shims here (the executable
 * exports them because libcriterion references them), which forward to the
 * same library: harmless. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>
#include <git2.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "kmpkg/lazylib.h"

struct lazylib {
	const char *soname;
	const char *package; /* the Debian package that ships it */
	pthread_once_t once;
	void *handle;
	char error[512];
};

static void open_git(void);
static void open_ar(void);
static void open_crypto(void);

static struct lazylib git = { "libgit2.so.1.5", "libgit2-1.5", PTHREAD_ONCE_INIT, NULL, "" };
static struct lazylib ar = { "libarchive.so.13", "libarchive13", PTHREAD_ONCE_INIT, NULL, "" };
static struct lazylib crypto = { "libcrypto.so.3", "libssl3", PTHREAD_ONCE_INIT, NULL, "" };

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

static void open_ar(void)
{
	lib_open(&ar);
}

static void *preload_main(void *arg)
{
	(void)arg;
	pthread_once(&crypto.once, open_crypto);
	pthread_once(&ar.once, open_ar);
	return NULL;
}

void kmpkg_lazylib_preload_install(void)
{
	pthread_attr_t attr;
	pthread_t t;

	if (pthread_attr_init(&attr) != 0)
		return;
	if (pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0)
		pthread_create(&t, &attr, preload_main, NULL);
	pthread_attr_destroy(&attr);
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

/* libarchive */
LAZY(ar, __LA_MODE_T, archive_entry_filetype, (struct archive_entry *e), (e))
LAZY_VOID(ar, archive_entry_free, (struct archive_entry *e), (e))
LAZY(ar, const char *, archive_entry_hardlink, (struct archive_entry *e), (e))
LAZY(ar, __LA_MODE_T, archive_entry_mode, (struct archive_entry *e), (e))
LAZY(ar, struct archive_entry *, archive_entry_new, (void), ())
LAZY(ar, const char *, archive_entry_pathname, (struct archive_entry *e), (e))
LAZY_VOID(ar, archive_entry_set_filetype, (struct archive_entry *e, unsigned int v), (e, v))
LAZY_VOID(ar, archive_entry_set_gid, (struct archive_entry *e, la_int64_t v), (e, v))
LAZY_VOID(ar, archive_entry_set_gname, (struct archive_entry *e, const char *v), (e, v))
LAZY_VOID(ar, archive_entry_set_mtime, (struct archive_entry *e, time_t sec, long nsec), (e, sec, nsec))
LAZY_VOID(ar, archive_entry_set_pathname, (struct archive_entry *e, const char *v), (e, v))
LAZY_VOID(ar, archive_entry_set_perm, (struct archive_entry *e, __LA_MODE_T v), (e, v))
LAZY_VOID(ar, archive_entry_set_size, (struct archive_entry *e, la_int64_t v), (e, v))
LAZY_VOID(ar, archive_entry_set_symlink, (struct archive_entry *e, const char *v), (e, v))
LAZY_VOID(ar, archive_entry_set_uid, (struct archive_entry *e, la_int64_t v), (e, v))
LAZY_VOID(ar, archive_entry_set_uname, (struct archive_entry *e, const char *v), (e, v))
LAZY(ar, la_int64_t, archive_entry_size, (struct archive_entry *e), (e))
LAZY(ar, int, archive_entry_size_is_set, (struct archive_entry *e), (e))
LAZY(ar, const char *, archive_entry_symlink, (struct archive_entry *e), (e))
LAZY(ar, const char *, archive_error_string, (struct archive *a), (a))
LAZY(ar, la_ssize_t, archive_read_data, (struct archive *a, void *buf, size_t len), (a, buf, len))
LAZY(ar, int, archive_read_free, (struct archive *a), (a))
LAZY(ar, struct archive *, archive_read_new, (void), ())
LAZY(ar, int, archive_read_next_header, (struct archive *a, struct archive_entry **out), (a, out))
LAZY(ar, int, archive_read_open2,
     (struct archive *a, void *client_data, archive_open_callback *open_cb, archive_read_callback *read_cb,
      archive_skip_callback *skip_cb, archive_close_callback *close_cb),
     (a, client_data, open_cb, read_cb, skip_cb, close_cb))
LAZY(ar, int, archive_read_open_fd, (struct archive *a, int fd, size_t block_size), (a, fd, block_size))
LAZY(ar, int, archive_read_support_filter_all, (struct archive *a), (a))
LAZY(ar, int, archive_read_support_format_tar, (struct archive *a), (a))
LAZY(ar, int, archive_read_support_format_zip, (struct archive *a), (a))
LAZY(ar, int, archive_write_add_filter_gzip, (struct archive *a), (a))
LAZY(ar, int, archive_write_close, (struct archive *a), (a))
LAZY(ar, la_ssize_t, archive_write_data, (struct archive *a, const void *buf, size_t len), (a, buf, len))
LAZY(ar, int, archive_write_free, (struct archive *a), (a))
LAZY(ar, int, archive_write_header, (struct archive *a, struct archive_entry *e), (a, e))
LAZY(ar, struct archive *, archive_write_new, (void), ())
LAZY(ar, int, archive_write_open2,
     (struct archive *a, void *data, archive_open_callback *opener, archive_write_callback *writer,
      archive_close_callback *closer, archive_free_callback *freer),
     (a, data, opener, writer, closer, freer))
LAZY(ar, int, archive_write_set_bytes_in_last_block, (struct archive *a, int bytes), (a, bytes))
LAZY(ar, int, archive_write_set_format_pax_restricted, (struct archive *a), (a))
LAZY(ar, int, archive_write_set_options, (struct archive *a, const char *opts), (a, opts))

/* libarchive, used only by tests/unit (which link this file, not the library) */
LAZY_VOID(ar, archive_entry_set_hardlink, (struct archive_entry *e, const char *v), (e, v))
LAZY_VOID(ar, archive_entry_set_rdev, (struct archive_entry *e, dev_t v), (e, v))
LAZY(ar, int, archive_write_add_filter_xz, (struct archive *a), (a))
LAZY(ar, int, archive_write_add_filter_zstd, (struct archive *a), (a))
LAZY(ar, int, archive_write_open_filename, (struct archive *a, const char *file), (a, file))
LAZY(ar, int, archive_write_set_format_zip, (struct archive *a), (a))

/* libcrypto (OpenSSL 3). OPENSSL_free(p) is CRYPTO_free(p, __FILE__, __LINE__),
 * BIO_get_mem_data(b, pp) is BIO_ctrl(b, BIO_CTRL_INFO, 0, pp). */
LAZY(crypto, long, BIO_ctrl, (BIO *bp, int cmd, long larg, void *parg), (bp, cmd, larg, parg))
LAZY(crypto, int, BIO_free, (BIO *a), (a))
LAZY(crypto, BIO *, BIO_new, (const BIO_METHOD *type), (type))
LAZY(crypto, BIO *, BIO_new_mem_buf, (const void *buf, int len), (buf, len))
LAZY(crypto, const BIO_METHOD *, BIO_s_mem, (void), ())
LAZY_VOID(crypto, CRYPTO_free, (void *ptr, const char *file, int line), (ptr, file, line))
LAZY_VOID(crypto, ERR_clear_error, (void), ())
LAZY(crypto, int, EVP_DecodeBlock, (unsigned char *t, const unsigned char *f, int n), (t, f, n))
LAZY(crypto, int, EVP_Digest,
     (const void *data, size_t count, unsigned char *md, unsigned int *size, const EVP_MD *type,
      ENGINE *impl),
     (data, count, md, size, type, impl))
LAZY(crypto, int, EVP_DigestFinal_ex, (EVP_MD_CTX *ctx, unsigned char *md, unsigned int *s), (ctx, md, s))
LAZY(crypto, int, EVP_DigestInit_ex, (EVP_MD_CTX *ctx, const EVP_MD *type, ENGINE *impl), (ctx, type, impl))
LAZY(crypto, int, EVP_DigestUpdate, (EVP_MD_CTX *ctx, const void *d, size_t cnt), (ctx, d, cnt))
LAZY(crypto, int, EVP_DigestVerify,
     (EVP_MD_CTX *ctx, const unsigned char *sigret, size_t siglen, const unsigned char *tbs, size_t tbslen),
     (ctx, sigret, siglen, tbs, tbslen))
LAZY(crypto, int, EVP_DigestVerifyFinal, (EVP_MD_CTX *ctx, const unsigned char *sig, size_t siglen),
     (ctx, sig, siglen))
LAZY(crypto, int, EVP_DigestVerifyInit,
     (EVP_MD_CTX *ctx, EVP_PKEY_CTX **pctx, const EVP_MD *type, ENGINE *e, EVP_PKEY *pkey),
     (ctx, pctx, type, e, pkey))
LAZY(crypto, int, EVP_DigestVerifyUpdate, (EVP_MD_CTX *ctx, const void *data, size_t dsize),
     (ctx, data, dsize))
LAZY(crypto, int, EVP_EncodeBlock, (unsigned char *t, const unsigned char *f, int n), (t, f, n))
LAZY_VOID(crypto, EVP_MD_CTX_free, (EVP_MD_CTX *ctx), (ctx))
LAZY(crypto, EVP_MD_CTX *, EVP_MD_CTX_new, (void), ())
LAZY_VOID(crypto, EVP_PKEY_free, (EVP_PKEY *pkey), (pkey))
LAZY(crypto, int, EVP_PKEY_get_base_id, (const EVP_PKEY *pkey), (pkey))
LAZY(crypto, int, EVP_PKEY_get_bits, (const EVP_PKEY *pkey), (pkey))
LAZY(crypto, int, EVP_PKEY_get_group_name,
     (const EVP_PKEY *pkey, char *name, size_t name_sz, size_t *gname_len),
     (pkey, name, name_sz, gname_len))
LAZY(crypto, EVP_PKEY *, EVP_PKEY_new_raw_public_key,
     (int type, ENGINE *e, const unsigned char *pub, size_t len),
     (type, e, pub, len))
LAZY(crypto, const EVP_MD *, EVP_blake2b512, (void), ())
LAZY(crypto, const EVP_MD *, EVP_sha1, (void), ())
LAZY(crypto, const EVP_MD *, EVP_sha256, (void), ())
LAZY(crypto, unsigned char *, HMAC,
     (const EVP_MD *evp_md, const void *key, int key_len, const unsigned char *data, size_t data_len,
      unsigned char *md, unsigned int *md_len),
     (evp_md, key, key_len, data, data_len, md, md_len))
LAZY(crypto, EVP_PKEY *, PEM_read_bio_PUBKEY, (BIO *out, EVP_PKEY **x, pem_password_cb *cb, void *u),
     (out, x, cb, u))
LAZY(crypto, int, PEM_write_bio_PUBKEY, (BIO *out, const EVP_PKEY *x), (out, x))
LAZY(crypto, unsigned char *, SHA256, (const unsigned char *d, size_t n, unsigned char *md), (d, n, md))
LAZY(crypto, int, SHA256_Final, (unsigned char *md, SHA256_CTX *c), (md, c))
LAZY(crypto, int, SHA256_Init, (SHA256_CTX *c), (c))
LAZY(crypto, int, SHA256_Update, (SHA256_CTX *c, const void *data, size_t len), (c, data, len))
LAZY(crypto, int, i2d_PUBKEY, (const EVP_PKEY *a, unsigned char **out), (a, out))

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

/* libcrypto's opener also fills the slots of the digest calls an install
 * makes first (the download's SHA-256), inside the pthread_once that every
 * libcrypto call waits on. Looking a symbol up takes the loader's lock, which
 * a dlopen holds for the whole load: with the preload thread already loading
 * libarchive's chain, a first digest call resolved on the main thread waited
 * ~5 ms for it. Only symbols are looked up here: a call into OpenSSL from the
 * preload thread would leave it thread-local state (error queue) that a
 * process exiting meanwhile reports as leaked, and measured no faster. */
static void open_crypto(void)
{
	static const struct {
		void **slot;
		const char *name;
	} first[] = {
		{ &slot_SHA256_Init, "SHA256_Init" },
		{ &slot_SHA256_Update, "SHA256_Update" },
		{ &slot_SHA256_Final, "SHA256_Final" },
	};
	size_t i;

	lib_open(&crypto);
	for (i = 0; crypto.handle && i < sizeof(first) / sizeof(first[0]); i++) {
		void *p = dlsym(crypto.handle, first[i].name);

		if (p) /* else the call itself reports it */
			__atomic_store_n(first[i].slot, p, __ATOMIC_RELEASE);
	}
}
