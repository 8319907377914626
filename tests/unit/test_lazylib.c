/* lazylib: libgit2 is loaded on first use, not at start-up; kmpkg's other
 * libraries, libarchive and libcrypto among them, are linked into it
 * (build.zig, static_libs), so kmpkg opens no shared object of theirs at all.
 *
 * This process cannot show either: libcriterion itself needs libgit2 (which
 * brings libssh2 and libcrypto), and the Criterion binaries link libarchive and
 * libcrypto shared. So the CLI cases below run kmpkg under LD_DEBUG=files,
 * which lists every library the dynamic loader opens, or with broken copies of
 * the libraries first on LD_LIBRARY_PATH. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <git2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

static void *first_calls(void *arg)
{
	const char *hex = "89abcdef0123456789abcdef0123456789abcdef";
	git_oid a, b;

	(void)arg;
	if (git_oid_fromstr(&a, hex) != 0 || git_oid_fromstr(&b, hex) != 0)
		return NULL;
	return git_oid_equal(&a, &b) == 1 ? (void *)1 : NULL;
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

/* Not opened: libgit2 until a source is read; libarchive, libcrypto and what
 * their shared builds bring (libxml2, ICU) never. */
static const char *const not_opened[] = { "libgit2", "libarchive", "libcrypto", "libxml2", "libicu", NULL };

/* kmpkg ARGS under LD_DEBUG=files (and lib_path, an LD_LIBRARY_PATH=
 * setting, unless NULL) exits 0, the loader logs `want` and opens none of
 * `absent`. */
static void expect_libraries(const char *lib_path, const char *const *args, const char *want,
			     const char *const *absent)
{
	const char *env[] = { ld_debug[0], lib_path, NULL };
	struct run r = kmpkg(env, args);
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

	expect_libraries(NULL, args, "file=libc.so.6", not_opened);
}

Test(lazylib, list_loads_no_lazy_library)
{
	char root[] = "/tmp/kmpkg-lazy-root-XXXXXX";
	const char *args[] = { "--root", root, "list", NULL };

	cr_assert_not_null(mkdtemp(root));
	expect_libraries(NULL, args, "file=libc.so.6", not_opened);
	remove_tree(root);
}

Test(lazylib, changed_since_loads_libgit2)
{
	const char *args[] = { "preflight", "--host", "fixtures/host.yaml", "--changed-since", "HEAD",
			       "fixtures/manifests/valid-minimal.yaml", NULL };
	struct run r = kmpkg(ld_debug, args);

	cr_assert_not_null(strstr(r.err, "file=libgit2.so.1.5 [0];  dynamically loaded"));
	free(r.err);
}

/* Writes "not an ELF file" as DIR/SONAME, a library the loader cannot open. */
static void broken_library(const char *dir, const char *soname)
{
	char lib[128];
	FILE *f;

	snprintf(lib, sizeof(lib), "%s/%s", dir, soname);
	f = fopen(lib, "w");
	cr_assert_not_null(f);
	fputs("not an ELF file\n", f);
	fclose(f);
}

/* A library that cannot be loaded, or lacks a function: one clear line, exit 1. */
Test(lazylib, missing_library_is_a_clean_fatal_error)
{
	char dir[] = "/tmp/kmpkg-lazy-lib-XXXXXX", lib[64], env[96];
	const char *args[] = { "preflight", "--host", "fixtures/host.yaml", "--changed-since", "HEAD",
			       "fixtures/manifests/valid-minimal.yaml", NULL };
	/* exit(1) mid-command leaves allocations behind on purpose. */
	const char *envv[] = { env, "ASAN_OPTIONS=detect_leaks=0", NULL };
	struct run r;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(lib, sizeof(lib), "%s/libgit2.so.1.5", dir);
	snprintf(env, sizeof(env), "LD_LIBRARY_PATH=%s", dir);
	broken_library(dir, "libgit2.so.1.5");
	r = kmpkg(envv, args);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "kmpkg: error[E_LIBRARY]: cannot load libgit2.so.1.5: "), "%s", r.err);
	cr_assert_not_null(strstr(r.err, "next step: install the Debian package libgit2-1.5"), "%s", r.err);
	free(r.err);

	/* A real shared object without libgit2's functions. */
	unlink(lib);
	cr_assert_eq(symlink("/usr/lib/x86_64-linux-gnu/libyaml-0.so.2", lib), 0);
	r = kmpkg(envv, args);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "kmpkg: error[E_LIBRARY]: cannot load libgit2.so.1.5: "), "%s", r.err);
	cr_assert_not_null(strstr(r.err, "undefined symbol: git_"), "%s", r.err);
	free(r.err);
	unlink(lib);
	cr_assert_eq(rmdir(dir), 0);
}

/* pack and key add (libarchive, libcrypto) open no library of theirs, and
 * broken libarchive and libcrypto first on the library path change nothing:
 * kmpkg carries its own. */
Test(lazylib, archive_and_crypto_are_linked_in)
{
	char dir[] = "/tmp/kmpkg-lazy-ssl-XXXXXX", root[64], out[64], lib_path[96];
	const char *pack[] = { "pack", "fixtures/plugins/hello-1.0.0", "-o", out, NULL };
	const char *key[] = { "--root", root, "key", "add", "fixtures/fuzz/minisign/key.pub", NULL };

	cr_assert_not_null(mkdtemp(dir));
	snprintf(root, sizeof(root), "%s/root", dir);
	snprintf(out, sizeof(out), "%s/hello.kmpkg", dir);
	snprintf(lib_path, sizeof(lib_path), "LD_LIBRARY_PATH=%s", dir);
	cr_assert_eq(mkdir(root, 0700), 0);
	broken_library(dir, "libarchive.so.13");
	broken_library(dir, "libcrypto.so.3");
	expect_libraries(lib_path, pack, "file=libc.so.6", not_opened);
	cr_assert_eq(access(out, F_OK), 0);
	expect_libraries(lib_path, key, "file=libc.so.6", not_opened);
	remove_tree(dir);
}
