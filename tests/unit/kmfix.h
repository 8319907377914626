/*
 * Fixtures shared by the engine's tests (test_engine.c, test_crash.c): temp
 * roots, .kmpkg packages built with the system tar, running the sanitized
 * kmpkg (KMPKG_BIN) with an optional KMPKG_FAULT, and the invariants every
 * state must satisfy after recovery.
 */
#ifndef KMFIX_H
#define KMFIX_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kmpkg/error.h"
#include "kmpkg/state.h"

struct kres {
	int status; /* exit status, or -signal when killed */
	char *out, *err;
};

static char *fx_tmpdir(void)
{
	char *d = strdup("/tmp/kmpkg-engine-XXXXXX");

	cr_assert_not_null(mkdtemp(d));
	return d;
}

static void fx_rmrf(const char *p)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "chmod -R u+w '%s' 2>/dev/null; rm -rf '%s'", p, p);
	cr_assert_eq(system(cmd), 0);
}

static char *fx_read_fd(int fd)
{
	off_t n = lseek(fd, 0, SEEK_END);
	char *s = calloc(1, (size_t)n + 1);

	lseek(fd, 0, SEEK_SET);
	cr_assert_eq(read(fd, s, (size_t)n), n);
	close(fd);
	return s;
}

/* kmpkg --root ROOT args... (NULL-terminated); fault sets KMPKG_FAULT. */
static struct kres fx_runv(const char *root, const char *fault, const char *const *args)
{
	const char *bin = getenv("KMPKG_BIN");
	const char *argv[40];
	struct kres r;
	int o, e, i, st, n = 0;
	pid_t pid;

	cr_assert_not_null(bin);
	argv[n++] = bin;
	if (root) {
		argv[n++] = "--root";
		argv[n++] = root;
	}
	for (i = 0; args[i] && n < 38; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	o = memfd_create("out", 0);
	e = memfd_create("err", 0);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		dup2(o, 1);
		dup2(e, 2);
		setenv("ASAN_OPTIONS", "detect_leaks=1", 1);
		unsetenv("KMPKG_ROOT");
		if (fault)
			setenv("KMPKG_FAULT", fault, 1);
		else
			unsetenv("KMPKG_FAULT");
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
	r.out = fx_read_fd(o);
	r.err = fx_read_fd(e);
	return r;
}

static struct kres fx_run(const char *root, const char *fault, ...)
{
	const char *args[32];
	va_list ap;
	int n = 0;

	va_start(ap, fault);
	while (n < 31 && (args[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	args[n] = NULL;
	return fx_runv(root, fault, args);
}

static void fx_free(struct kres *r)
{
	free(r->out);
	free(r->err);
}

/* Runs and expects `want`; returns nothing, frees the output. */
static void fx_ok(int want, const char *root, const char *fault, ...)
{
	const char *args[32];
	struct kres r;
	va_list ap;
	int n = 0;

	va_start(ap, fault);
	while (n < 31 && (args[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	args[n] = NULL;
	r = fx_runv(root, fault, args);
	cr_assert_eq(r.status, want, "kmpkg %s %s: status %d, want %d; stderr: %s", args[0],
		     args[1] ? args[1] : "", r.status, want, r.err);
	fx_free(&r);
}

enum { TOOL_OK = 0, TOOL_FAIL = 1, TOOL_SLOW = 2, TOOL_MISSING = -1, TOOL_NOEXEC = -2 };

/* Builds <dir>/<name>-<version>.kmpkg with kmpkg.yaml (plus extra_yaml) and
 * bin/tool as health check. Returns the malloc'd path. */
static char *fx_pkg(const char *dir, const char *name, const char *version, int tool, const char *extra_yaml)
{
	char src[512], path[600], cmd[1400];
	FILE *f;

	snprintf(src, sizeof(src), "%s/src-%s-%s", dir, name, version);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s/bin'", src, src);
	cr_assert_eq(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/kmpkg.yaml", src);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "apiVersion: kmpkg/v1\nname: %s\nversion: %s\ndescription: test plugin %s\n"
		   "health_check:\n  command: [bin/tool, --health]\n  timeout_ms: 5000\n%s",
		name, version, name, extra_yaml ? extra_yaml : "");
	fclose(f);
	if (tool != TOOL_MISSING) {
		snprintf(path, sizeof(path), "%s/bin/tool", src);
		f = fopen(path, "w");
		cr_assert_not_null(f);
		fprintf(f, "#!/bin/sh\necho \"%s %s health output\"\necho \"to stderr\" >&2\n%sexit %d\n", name,
			version, tool == TOOL_SLOW ? "sleep 3\n" : "", tool == TOOL_FAIL ? 1 : 0);
		fclose(f);
		cr_assert_eq(chmod(path, tool == TOOL_NOEXEC ? 0644 : 0755), 0);
	}
	snprintf(path, sizeof(path), "%s/%s-%s.kmpkg", dir, name, version);
	snprintf(cmd, sizeof(cmd), "tar czf '%s' -C '%s' .", path, src);
	cr_assert_eq(system(cmd), 0);
	return strdup(path);
}

static int fx_count(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static char *fx_path(const char *root, const char *rel)
{
	char *p = malloc(strlen(root) + strlen(rel) + 2);

	sprintf(p, "%s/%s", root, rel);
	return p;
}

static char *fx_readlink(const char *root, const char *rel)
{
	char *p = fx_path(root, rel), buf[512];
	ssize_t n = readlink(p, buf, sizeof(buf) - 1);

	free(p);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

static json_t *fx_get(const char *root, enum kmpkg_db db, const char *key)
{
	struct kmpkg_state *st = NULL;
	struct kmpkg_state_txn *t = NULL;
	json_t *v = NULL;

	cr_assert_eq(kmpkg_state_open(&st, root, false), 0);
	cr_assert_eq(kmpkg_state_begin(&t, st, false), 0);
	if (kmpkg_state_gets(&v, t, db, key) != 0)
		v = NULL;
	kmpkg_state_abort(t);
	kmpkg_state_free(st);
	return v;
}

static long long fx_meta(const char *root, const char *key)
{
	json_t *v = fx_get(root, KMPKG_DB_META, key);
	long long n = v ? json_integer_value(v) : -1;

	json_decref(v);
	return n;
}

static int fx_collect(void *ctx, const void *key, size_t klen, json_t *val)
{
	char *k = strndup(key, klen);

	json_object_set_new(ctx, k, val);
	free(k);
	return 0;
}

/* {key: value} of a whole database. */
static json_t *fx_all(const char *root, enum kmpkg_db db)
{
	struct kmpkg_state *st = NULL;
	struct kmpkg_state_txn *t = NULL;
	json_t *o = json_object();

	cr_assert_eq(kmpkg_state_open(&st, root, false), 0);
	cr_assert_eq(kmpkg_state_begin(&t, st, false), 0);
	cr_assert_eq(kmpkg_state_foreach(t, db, NULL, 0, false,
					 fx_collect, o), 0);
	kmpkg_state_abort(t);
	kmpkg_state_free(st);
	return o;
}

/* The invariants of a root at rest (after recovery): `plugins` names a
 * complete generation, that generation is meta.active == meta.known_good,
 * the installed DB equals its set, every store entry it uses is whole, no
 * staging is left, and no transaction is unfinished. */
static void fx_check_invariants(const char *root)
{
	char *link = fx_readlink(root, "plugins"), *gdir, *tmp;
	json_t *inst = fx_all(root, KMPKG_DB_INSTALLED), *txns = fx_all(root, KMPKG_DB_TXNS), *v;
	long long active = fx_meta(root, "active"), good = fx_meta(root, "known_good");
	const char *k;
	struct dirent *de;
	DIR *d;
	int n = 0;

	cr_assert_not_null(link, "plugins is not a symlink");
	cr_assert_eq(strncmp(link, "kmpkg/generations/", 18), 0, "plugins -> %s", link);
	cr_assert_eq(atoll(link + 18), active, "plugins -> %s but meta.active = %lld", link, active);
	cr_assert_eq(active, good, "active %lld != known_good %lld at rest", active, good);
	gdir = fx_path(root, link);
	d = opendir(gdir);
	cr_assert_not_null(d, "generation %s missing", gdir);
	while ((de = readdir(d)) != NULL) {
		char rel[600], *target, *yaml;
		json_t *rec;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		n++;
		snprintf(rel, sizeof(rel), "%s/%s", link, de->d_name);
		target = fx_readlink(root, rel);
		cr_assert_not_null(target);
		cr_assert_eq(strncmp(target, "../../store/", 12), 0);
		rec = json_object_get(inst, de->d_name);
		cr_assert_not_null(rec, "%s in the generation but not installed", de->d_name);
		cr_assert_str_eq(json_string_value(json_object_get(rec, "entry")), target + 12);
		snprintf(rel, sizeof(rel), "%s/%s/kmpkg.yaml", link, de->d_name);
		yaml = fx_path(root, rel);
		cr_assert_eq(stat(yaml, &st), 0, "store entry of %s incomplete", de->d_name);
		snprintf(rel, sizeof(rel), "%s/%s/bin/tool", link, de->d_name);
		free(yaml);
		yaml = fx_path(root, rel);
		cr_assert_eq(stat(yaml, &st), 0, "store entry of %s incomplete", de->d_name);
		free(yaml);
		free(target);
	}
	closedir(d);
	cr_assert_eq((size_t)n, json_object_size(inst), "generation has %d plugins, installed %zu", n,
		     json_object_size(inst));
	tmp = fx_path(root, "kmpkg/tmp");
	cr_assert_eq(fx_count(tmp), 0, "staging left in kmpkg/tmp");
	json_object_foreach(txns, k, v)
		cr_assert_str_eq(json_string_value(json_object_get(v, "state")), "done", "txn %s unfinished", k);
	free(tmp);
	free(gdir);
	free(link);
	json_decref(inst);
	json_decref(txns);
}

#endif
