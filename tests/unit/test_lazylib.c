/* lazylib: libgit2, libarchive and libcrypto are loaded on first use, not at
 * start-up.
 *
 * In this process (which, like kmpkg, does not link libarchive) libarchive must
 * be absent until the first archive_* call. libgit2 and libcrypto cannot be
 * checked here: libcriterion itself needs libgit2, which brings libssh2 and
 * libcrypto, so for those the CLI cases below run kmpkg under LD_DEBUG=files,
 * which lists every library the dynamic loader opens. */
#include <archive.h>
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <git2.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kmpkg/buf.h"

static int loaded(const char *soname)
{
	void *h = dlopen(soname, RTLD_NOW | RTLD_NOLOAD);

	if (!h)
		return 0;
	dlclose(h);
	return 1;
}

/* Also in /proc/self/maps, as a second witness to dlopen(RTLD_NOLOAD). */
static int mapped(const char *name)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[1024];
	int hit = 0;

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, name))
			hit = 1;
	fclose(f);
	return hit;
}

Test(lazylib, libarchive_loaded_on_first_call)
{
	struct archive *a;

	cr_assert_eq(loaded("libarchive.so.13"), 0, "libarchive is loaded before any archive_* call");
	cr_assert_eq(mapped("libarchive.so"), 0);
	a = archive_read_new();
	cr_assert_not_null(a);
	cr_assert_eq(loaded("libarchive.so.13"), 1);
	cr_assert_eq(mapped("libarchive.so"), 1);
	cr_assert_eq(archive_read_support_format_tar(a), ARCHIVE_OK);
	cr_assert_eq(archive_read_free(a), ARCHIVE_OK);
}

/* Arguments and results go through the shims unchanged. */
Test(lazylib, libgit2_forwards)
{
	const char *hex = "0123456789abcdef0123456789abcdef01234567";
	char back[GIT_OID_HEXSZ + 1];
	git_oid a, b;

	cr_assert_geq(git_libgit2_init(), 1);
	cr_assert_eq(git_oid_fromstr(&a, hex), 0);
	cr_assert_eq(git_oid_fromstr(&b, hex), 0);
	cr_assert_eq(git_oid_equal(&a, &b), 1);
	cr_assert_eq(git_oid_tostr(back, sizeof(back), &a), back);
	cr_assert_str_eq(back, hex);
	cr_assert_lt(git_oid_fromstr(&b, "not hex"), 0);
	cr_assert_not_null(git_error_last());
	cr_assert_geq(git_libgit2_shutdown(), 0);
}

/* The libcrypto shims, including the ones header macros expand to
 * (BIO_get_mem_data -> BIO_ctrl, OPENSSL_free -> CRYPTO_free). */
Test(lazylib, libcrypto_forwards)
{
	const char *abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	const char *fox = "The quick brown fox jumps over the lazy dog";
	unsigned char md[EVP_MAX_MD_SIZE], raw[32], b64[64], back[64], *der = NULL;
	char text[2 * EVP_MAX_MD_SIZE + 1], *mem = NULL;
	unsigned int len = 0;
	EVP_MD_CTX *ctx;
	EVP_PKEY *pk;
	BIO *bio;
	long n;

	cr_assert_eq(EVP_Digest("abc", 3, md, &len, EVP_sha256(), NULL), 1);
	cr_assert_eq(len, 32);
	kmpkg_hex(text, md, len);
	cr_assert_str_eq(text, abc);
	cr_assert_eq(SHA256((const unsigned char *)"abc", 3, md), md);
	kmpkg_hex(text, md, 32);
	cr_assert_str_eq(text, abc);
	ctx = EVP_MD_CTX_new();
	cr_assert_not_null(ctx);
	cr_assert_eq(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
	cr_assert_eq(EVP_DigestUpdate(ctx, "ab", 2), 1);
	cr_assert_eq(EVP_DigestUpdate(ctx, "c", 1), 1);
	cr_assert_eq(EVP_DigestFinal_ex(ctx, md, &len), 1);
	EVP_MD_CTX_free(ctx);
	kmpkg_hex(text, md, len);
	cr_assert_str_eq(text, abc);
	cr_assert_not_null(HMAC(EVP_sha1(), "key", 3, (const unsigned char *)fox, strlen(fox), md, &len));
	kmpkg_hex(text, md, len);
	cr_assert_str_eq(text, "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9");
	cr_assert_eq(EVP_EncodeBlock(b64, (const unsigned char *)"kmpkg", 5), 8);
	cr_assert_str_eq((char *)b64, "a21wa2c=");
	cr_assert_eq(EVP_DecodeBlock(back, b64, 8), 6); /* padding decodes to a zero byte */
	cr_assert_eq(memcmp(back, "kmpkg", 5), 0);

	memset(raw, 7, sizeof(raw));
	pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, sizeof(raw));
	cr_assert_not_null(pk);
	cr_assert_eq(EVP_PKEY_get_base_id(pk), EVP_PKEY_ED25519);
	cr_assert_eq(i2d_PUBKEY(pk, &der), 44);
	cr_assert_eq(memcmp(der + 12, raw, sizeof(raw)), 0);
	OPENSSL_free(der);
	bio = BIO_new(BIO_s_mem());
	cr_assert_not_null(bio);
	cr_assert_eq(PEM_write_bio_PUBKEY(bio, pk), 1);
	n = BIO_get_mem_data(bio, &mem);
	cr_assert_gt(n, 0);
	cr_assert_eq(strncmp(mem, "-----BEGIN PUBLIC KEY-----\n", 27), 0);
	cr_assert_eq(BIO_free(bio), 1);
	EVP_PKEY_free(pk);
	ERR_clear_error();
}

static void *first_calls(void *arg)
{
	struct archive *a = archive_write_new();

	(void)arg;
	if (!a)
		return NULL;
	archive_write_free(a);
	return (void *)1;
}

/* Many threads making their first call at once all get the real function. */
Test(lazylib, concurrent_first_calls)
{
	pthread_t t[8];
	void *r;
	int i;

	for (i = 0; i < 8; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, first_calls, NULL), 0);
	for (i = 0; i < 8; i++) {
		cr_assert_eq(pthread_join(t[i], &r), 0);
		cr_assert_not_null(r);
	}
}

struct run {
	int status;
	char *err;
};

/* Runs KMPKG_BIN with args from the source tree, env "NAME=value" entries
 * added (after ASAN_OPTIONS=detect_leaks=1, so they may override it); stderr kept (LD_DEBUG writes there), stdout discarded. */
static struct run kmpkg(const char *const *env, const char *const *args)
{
	const char *bin = getenv("KMPKG_BIN"), *top = getenv("KMPKG_SRCDIR");
	char err[] = "/tmp/kmpkg-lazy-err-XXXXXX";
	const char *argv[16];
	struct run r = { -1, NULL };
	FILE *f;
	long n;
	pid_t pid;
	int fd, i, st;

	cr_assert_not_null(bin);
	fd = mkstemp(err);
	cr_assert_geq(fd, 0);
	argv[0] = bin;
	for (i = 0; args[i] && i < 14; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(fd, 2);
		if (top && chdir(top) != 0)
			_exit(127);
		setenv("ASAN_OPTIONS", "detect_leaks=1", 1);
		for (i = 0; env[i]; i++)
			putenv((char *)env[i]);
		unsetenv("KMPKG_ROOT");
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	r.status = WEXITSTATUS(st);
	close(fd);
	f = fopen(err, "r");
	cr_assert_not_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	r.err = calloc(1, (size_t)n + 1);
	cr_assert_not_null(r.err);
	cr_assert_eq(fread(r.err, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	unlink(err);
	return r;
}

/* LD_DEBUG=files logs "file=libfoo.so.N [0];  needed by ..." or "...dynamically
 * loaded by ..." for every library opened. */
static const char *const ld_debug[] = { "LD_DEBUG=files", NULL };

static const char *const all_lazy[] = { "libgit2", "libarchive", "libcrypto", NULL };

/* kmpkg ARGS under LD_DEBUG=files exits 0, the loader logs `want` and opens
 * none of `absent`. */
static void expect_libraries(const char *const *args, const char *want, const char *const *absent)
{
	struct run r = kmpkg(ld_debug, args);
	size_t i;

	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_not_null(strstr(r.err, want), "%s not loaded", want);
	for (i = 0; absent[i]; i++)
		cr_assert_null(strstr(r.err, absent[i]), "%s loaded", absent[i]);
	free(r.err);
}

static void remove_tree(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

Test(lazylib, version_loads_no_lazy_library)
{
	const char *args[] = { "--version", NULL };

	expect_libraries(args, "file=libjansson.so.4", all_lazy);
}

Test(lazylib, list_loads_no_lazy_library)
{
	char root[] = "/tmp/kmpkg-lazy-root-XXXXXX";
	const char *args[] = { "--root", root, "list", NULL };

	cr_assert_not_null(mkdtemp(root));
	expect_libraries(args, "file=libjansson.so.4", all_lazy);
	remove_tree(root);
}

Test(lazylib, pack_loads_libarchive_only)
{
	char dir[] = "/tmp/kmpkg-lazy-pack-XXXXXX", out[64];
	const char *args[] = { "pack", "fixtures/plugins/hello-1.0.0", "-o", out, NULL };
	const char *const absent[] = { "libgit2", NULL };

	cr_assert_not_null(mkdtemp(dir));
	snprintf(out, sizeof(out), "%s/hello.kmpkg", dir);
	expect_libraries(args, "file=libarchive.so.13 [0];  dynamically loaded", absent);
	cr_assert_eq(access(out, F_OK), 0);
	remove_tree(dir);
}

Test(lazylib, changed_since_loads_libgit2)
{
	const char *args[] = { "preflight", "--host", "fixtures/host.yaml", "--changed-since", "HEAD",
			       "fixtures/manifests/valid-minimal.yaml", NULL };
	struct run r = kmpkg(ld_debug, args);

	cr_assert_not_null(strstr(r.err, "file=libgit2.so.1.5 [0];  dynamically loaded"));
	free(r.err);
}

/* A library that cannot be loaded, or lacks a function: one clear line, exit 1. */
Test(lazylib, missing_library_is_a_clean_fatal_error)
{
	char dir[] = "/tmp/kmpkg-lazy-lib-XXXXXX", lib[64], env[96], out[64];
	const char *args[] = { "pack", "fixtures/plugins/hello-1.0.0", "-o", out, NULL };
	/* exit(1) mid-command leaves allocations behind on purpose. */
	const char *envv[] = { env, "ASAN_OPTIONS=detect_leaks=0", NULL };
	struct run r;
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(lib, sizeof(lib), "%s/libarchive.so.13", dir);
	snprintf(out, sizeof(out), "%s/hello.kmpkg", dir);
	snprintf(env, sizeof(env), "LD_LIBRARY_PATH=%s", dir);
	f = fopen(lib, "w");
	cr_assert_not_null(f);
	fputs("not an ELF file\n", f);
	fclose(f);
	r = kmpkg(envv, args);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "kmpkg: error[E_LIBRARY]: cannot load libarchive.so.13: "), "%s", r.err);
	cr_assert_not_null(strstr(r.err, "next step: install the Debian package libarchive13"));
	free(r.err);

	/* A real shared object without libarchive's functions. */
	unlink(lib);
	cr_assert_eq(symlink("/usr/lib/x86_64-linux-gnu/libyaml-0.so.2", lib), 0);
	r = kmpkg(envv, args);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "kmpkg: error[E_LIBRARY]: cannot load libarchive.so.13: "), "%s", r.err);
	cr_assert_not_null(strstr(r.err, "undefined symbol: archive_"), "%s", r.err);
	free(r.err);
	unlink(lib);
	/* Nothing left behind: no output, no temporary file. */
	cr_assert_eq(rmdir(dir), 0, "kmpkg pack left files in %s", dir);
}

Test(lazylib, key_add_loads_libcrypto_only)
{
	char root[] = "/tmp/kmpkg-lazy-root-XXXXXX";
	const char *args[] = { "--root", root, "key", "add", "fixtures/fuzz/minisign/key.pub", NULL };
	const char *const absent[] = { "libgit2", "libarchive", NULL };

	cr_assert_not_null(mkdtemp(root));
	expect_libraries(args, "file=libcrypto.so.3 [0];  dynamically loaded", absent);
	remove_tree(root);
}

Test(lazylib, missing_libcrypto_is_a_clean_fatal_error)
{
	char dir[] = "/tmp/kmpkg-lazy-ssl-XXXXXX", lib[64], root[64], env[96];
	const char *args[] = { "--root", root, "key", "add", "fixtures/fuzz/minisign/key.pub", NULL };
	const char *envv[] = { env, "ASAN_OPTIONS=detect_leaks=0", NULL };
	struct run r;
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(lib, sizeof(lib), "%s/libcrypto.so.3", dir);
	snprintf(root, sizeof(root), "%s/root", dir);
	snprintf(env, sizeof(env), "LD_LIBRARY_PATH=%s", dir);
	cr_assert_eq(mkdir(root, 0700), 0);
	f = fopen(lib, "w");
	cr_assert_not_null(f);
	fputs("not an ELF file\n", f);
	fclose(f);
	r = kmpkg(envv, args);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "kmpkg: error[E_LIBRARY]: cannot load libcrypto.so.3: "), "%s", r.err);
	cr_assert_not_null(strstr(r.err, "next step: install the Debian package libssl3"), "%s", r.err);
	free(r.err);

	unlink(lib);
	cr_assert_eq(symlink("/usr/lib/x86_64-linux-gnu/libyaml-0.so.2", lib), 0);
	r = kmpkg(envv, args);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "undefined symbol: "), "%s", r.err);
	free(r.err);
	unlink(lib);
	/* The key is checked before anything is written. */
	cr_assert_eq(rmdir(root), 0, "kmpkg key add left files in %s", root);
	remove_tree(dir);
}
