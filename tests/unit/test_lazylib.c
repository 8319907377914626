/* lazylib: libgit2 and libarchive are loaded on first use, not at start-up.
 *
 * In this process (which, like kmpkg, does not link libarchive) libarchive must
 * be absent until the first archive_* call. libgit2 cannot be checked here:
 * libcriterion itself needs it, so for libgit2 the CLI cases below run kmpkg
 * under LD_DEBUG=files, which lists every library the dynamic loader opens. */
#include <archive.h>
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <git2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

Test(lazylib, version_loads_neither_library)
{
	const char *args[] = { "--version", NULL };
	struct run r = kmpkg(ld_debug, args);

	cr_assert_eq(r.status, 0);
	cr_assert_not_null(strstr(r.err, "file=libjansson.so.4"), "LD_DEBUG=files logged nothing");
	cr_assert_null(strstr(r.err, "libgit2"));
	cr_assert_null(strstr(r.err, "libarchive"));
	free(r.err);
}

Test(lazylib, list_loads_neither_library)
{
	char root[] = "/tmp/kmpkg-lazy-root-XXXXXX", cmd[64];
	const char *args[] = { "--root", root, "list", NULL };
	struct run r;

	cr_assert_not_null(mkdtemp(root));
	r = kmpkg(ld_debug, args);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "file=libjansson.so.4"));
	cr_assert_null(strstr(r.err, "libgit2"));
	cr_assert_null(strstr(r.err, "libarchive"));
	free(r.err);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	cr_assert_eq(system(cmd), 0);
}

Test(lazylib, pack_loads_libarchive_only)
{
	char dir[] = "/tmp/kmpkg-lazy-pack-XXXXXX", out[64];
	const char *args[] = { "pack", "fixtures/plugins/hello-1.0.0", "-o", out, NULL };
	struct run r;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(out, sizeof(out), "%s/hello.kmpkg", dir);
	r = kmpkg(ld_debug, args);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "file=libarchive.so.13 [0];  dynamically loaded"));
	cr_assert_null(strstr(r.err, "libgit2"));
	cr_assert_eq(access(out, F_OK), 0);
	free(r.err);
	unlink(out);
	rmdir(dir);
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
