/* sources_cli: kmpkg source add/list/update/remove, search, info and install
 * NAME[@RANGE] against fixture source repositories (scripts/make-fixture-source)
 * over file://, through the sanitized kmpkg. */
#include "kmfix.h"

static char *W, *R, *REPO; /* work dir, root, fixture source repository */

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	cr_assert_eq(system(cmd), 0, "failed: %s", cmd);
}

#define GITENV "GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t " \
	       "GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t"

/* A fixture source at REPO (extra: "--expired" or ""), the host profile in the root. */
static void make_source(const char *extra)
{
	const char *srcdir = getenv("KMPKG_SRCDIR");

	cr_assert_not_null(srcdir);
	sh("'%s/scripts/make-fixture-source' '%s' %s >/dev/null", srcdir, REPO, extra);
	sh("mkdir -p '%s/kmpkg' && cp '%s/fixtures/host.yaml' '%s/kmpkg/host.yaml'", R, srcdir, R);
}

/* Writes plugins/NAME/VERSION.yaml (a manifest body plus a made-up https
 * artifact) into REPO and commits it. */
static void index_file(const char *name, const char *version, const char *body)
{
	sh("mkdir -p '%s/plugins/%s' && printf 'apiVersion: kmpkg/v1\\nname: %s\\nversion: %s\\n%s"
	   "artifact:\\n  url: https://example.invalid/%s-%s.kmpkg\\n  sha256: %064d\\n  size: 100\\n' "
	   "> '%s/plugins/%s/%s.yaml' && cd '%s' && " GITENV " git add -A && " GITENV " git commit -qm '%s %s'",
	   REPO, name, name, version, body, name, version, 7, REPO, name, version, REPO, name, version);
}

static char *url(void)
{
	char *u = malloc(strlen(REPO) + 8);

	sprintf(u, "file://%s", REPO);
	return u;
}

static char *head(void)
{
	char cmd[600], buf[64] = "";
	FILE *p;

	snprintf(cmd, sizeof(cmd), "git -C '%s' rev-parse HEAD", REPO);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_not_null(fgets(buf, sizeof(buf), p));
	pclose(p);
	buf[strcspn(buf, "\n")] = '\0';
	return strdup(buf);
}

static json_t *json_of(const char *s)
{
	json_error_t je;
	json_t *j = json_loads(s, 0, &je);

	cr_assert_not_null(j, "not JSON: %s", s);
	return j;
}

/* Runs kmpkg --json ARGS... (NULL-terminated), expects status `want`,
 * returns the document. */
static json_t *run_jsonf(int want, ...)
{
	const char *args[32];
	struct kres r;
	json_t *d;
	va_list ap;
	int n = 1;

	args[0] = "--json";
	va_start(ap, want);
	while (n < 31 && (args[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	args[n] = NULL;
	r = fx_runv(R, NULL, args);
	cr_assert_eq(r.status, want, "kmpkg %s: status %d, want %d; out %s err %s", args[1], r.status, want, r.out,
		     r.err);
	d = json_of(r.out);
	fx_free(&r);
	return d;
}

#define run_json(want, ...) run_jsonf(want, __VA_ARGS__, NULL)

static void add_demo(void)
{
	char *u = url();

	fx_ok(0, R, NULL, "source", "add", "demo", u, NULL);
	free(u);
}

static void setup(void)
{
	W = fx_tmpdir();
	R = fx_path(W, "root");
	REPO = fx_path(W, "repo");
}

static void teardown(void)
{
	(void)fx_pkg; /* kmfix.h's package builder and invariants are for engine tests */
	(void)fx_check_invariants;
	fx_rmrf(W);
	free(W);
	free(R);
	free(REPO);
}

TestSuite(sources_cli, .init = setup, .fini = teardown, .timeout = 60);

Test(sources_cli, add_list_search_info_remove)
{
	char *commit, *clone;
	json_t *d, *s, *v;
	size_t i;

	make_source("");
	commit = head();
	add_demo();

	d = run_json(0, "source", "list");
	s = json_array_get(json_object_get(d, "sources"), 0);
	cr_assert_eq(json_array_size(json_object_get(d, "sources")), 1);
	cr_assert_str_eq(json_string_value(json_object_get(s, "name")), "demo");
	cr_assert_str_eq(json_string_value(json_object_get(s, "trusted")), commit);
	cr_assert_eq(json_integer_value(json_object_get(s, "entries")), 4);
	cr_assert_null(json_object_get(s, "token"));
	json_decref(d);

	d = run_json(0, "search", "HELLO");
	cr_assert_eq(json_array_size(json_object_get(d, "results")), 1);
	s = json_array_get(json_object_get(d, "results"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(s, "name")), "hello");
	cr_assert_str_eq(json_string_value(json_object_get(s, "version")), "3.0.0", "newest version per plugin");
	json_decref(d);
	d = run_json(0, "search", "shared by other");
	cr_assert_eq(json_array_size(json_object_get(d, "results")), 1, "description matches");
	json_decref(d);

	d = run_json(0, "info", "hello");
	cr_assert(json_is_false(json_object_get(d, "installed")));
	cr_assert_eq(json_array_size(json_object_get(d, "available")), 3);
	json_array_foreach(json_object_get(d, "available"), i, v) {
		cr_assert(json_is_true(json_object_get(v, "passes_preflight")));
		cr_assert_str_eq(json_string_value(json_object_get(v, "commit")), commit);
	}
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(d, "available"), 0), "version")),
			 "3.0.0");
	json_decref(d);

	/* An older host: hello's host range (>=1.4.0 <2.0.0) rejects it. */
	sh("sed -i 's/^version: .*/version: 1.2.0/' '%s/kmpkg/host.yaml'", R);
	d = run_json(0, "info", "hello");
	v = json_array_get(json_object_get(d, "available"), 0);
	cr_assert(json_is_false(json_object_get(v, "passes_preflight")));
	cr_assert_not_null(strstr(json_string_value(json_object_get(v, "reason")), "HOST_RANGE"));
	json_decref(d);

	fx_ok(1, R, NULL, "source", "add", "demo", "file:///nonexistent", NULL); /* E_SOURCE_EXISTS */
	d = run_json(0, "source", "remove", "demo");
	cr_assert_eq(json_integer_value(json_object_get(d, "entries")), 4);
	json_decref(d);
	clone = fx_path(R, "kmpkg/sources/demo.git");
	cr_assert_eq(access(clone, F_OK), -1, "the bare clone is removed");
	d = run_json(0, "search", "hello");
	cr_assert_eq(json_array_size(json_object_get(d, "results")), 0);
	json_decref(d);
	d = fx_all(R, KMPKG_DB_INDEX);
	cr_assert_eq(json_object_size(d), 0);
	json_decref(d);
	fx_ok(9, R, NULL, "source", "remove", "demo", NULL);
	fx_ok(9, R, NULL, "info", "hello", NULL);
	free(clone);
	free(commit);
}

Test(sources_cli, update_applies_the_diff)
{
	json_t *d, *s;
	char *c2;

	make_source("");
	add_demo();
	index_file("hello", "4.0.0", "description: hello four\\n");
	sh("cd '%s' && " GITENV " git rm -q plugins/json-helpers/1.1.0.yaml && " GITENV " git commit -qm rm", REPO);
	c2 = head();
	d = run_json(0, "source", "update");
	s = json_array_get(json_object_get(d, "sources"), 0);
	cr_assert(json_is_true(json_object_get(s, "changed")));
	cr_assert_str_eq(json_string_value(json_object_get(s, "to")), c2);
	cr_assert_eq(json_integer_value(json_object_get(s, "entries")), 4);
	json_decref(d);
	d = run_json(0, "search", "hello");
	s = json_array_get(json_object_get(d, "results"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(s, "version")), "4.0.0");
	cr_assert_str_eq(json_string_value(json_object_get(s, "description")), "hello four");
	json_decref(d);
	d = run_json(0, "search", "json");
	cr_assert_eq(json_array_size(json_object_get(d, "results")), 0, "deleted index file leaves the cache");
	json_decref(d);
	/* Nothing new: up to date. */
	d = run_json(0, "source", "update", "demo");
	cr_assert(json_is_false(json_object_get(json_array_get(json_object_get(d, "sources"), 0), "changed")));
	json_decref(d);
	fx_ok(9, R, NULL, "source", "update", "nosuch", NULL);
	free(c2);
}

Test(sources_cli, force_push_refused)
{
	struct kres r;
	char *before;
	json_t *d;

	make_source("");
	before = head();
	add_demo();
	sh("cd '%s' && " GITENV " git reset -q --hard HEAD~1", REPO);
	index_file("evil", "1.0.0", "");
	r = fx_run(R, NULL, "source", "update", "demo", NULL);
	cr_assert_eq(r.status, 4, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "E_SOURCE_FORCE_PUSHED"), "%s", r.err);
	fx_free(&r);
	d = run_json(0, "source", "list");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(d, "sources"), 0), "trusted")),
			 before, "the trusted commit stays");
	json_decref(d);
	d = run_json(0, "search", "evil");
	cr_assert_eq(json_array_size(json_object_get(d, "results")), 0);
	json_decref(d);
	free(before);
}

Test(sources_cli, expired_refused)
{
	struct kres r;
	char *u, *clone;
	json_t *d;

	make_source("--expired");
	u = url();
	r = fx_run(R, NULL, "source", "add", "old", u, NULL);
	cr_assert_eq(r.status, 4, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "E_SOURCE_EXPIRED"), "%s", r.err);
	fx_free(&r);
	d = run_json(0, "source", "list");
	cr_assert_eq(json_array_size(json_object_get(d, "sources")), 0, "a refused add records nothing");
	json_decref(d);
	clone = fx_path(R, "kmpkg/sources/old.git");
	cr_assert_eq(access(clone, F_OK), -1, "a refused add leaves no clone");
	free(clone);
	free(u);
}

Test(sources_cli, invalid_index_manifest_skipped)
{
	struct kres r;
	char *u;
	json_t *d;

	make_source("");
	/* Wrong version type and no artifact: fails the schema; the rest stays usable. */
	sh("mkdir -p '%s/plugins/broken' && printf 'apiVersion: kmpkg/v1\\nname: broken\\nversion: [1]\\n' > "
	   "'%s/plugins/broken/1.0.0.yaml' && cd '%s' && " GITENV " git add -A && " GITENV " git commit -qm b",
	   REPO, REPO, REPO);
	u = url();
	r = fx_run(R, NULL, "source", "add", "demo", u, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "warning"), "%s", r.err);
	cr_assert_not_null(strstr(r.err, "plugins/broken/1.0.0.yaml"), "%s", r.err);
	fx_free(&r);
	d = run_json(0, "source", "add", "demo2", u);
	cr_assert_eq(json_array_size(json_object_get(d, "warnings")), 1);
	cr_assert_eq(json_integer_value(json_object_get(d, "entries")), 4);
	json_decref(d);
	d = run_json(0, "search", "broken");
	cr_assert_eq(json_array_size(json_object_get(d, "results")), 0);
	json_decref(d);
	fx_ok(9, R, NULL, "install", "broken", NULL);
	free(u);
}

Test(sources_cli, install_by_name)
{
	json_t *d, *rec, *txns, *t, *res;
	char *commit, *bin, *link;
	const char *k;
	int n = 0;

	make_source("");
	commit = head();
	add_demo();
	d = run_json(0, "install", "hello@^1");
	cr_assert_str_eq(json_string_value(json_object_get(d, "outcome")), "committed");
	json_decref(d);
	bin = fx_path(R, "plugins/hello/bin/hello");
	cr_assert_eq(access(bin, X_OK), 0);
	free(bin);
	link = fx_readlink(R, "plugins");
	cr_assert_str_eq(link, "kmpkg/generations/1");
	free(link);
	rec = fx_get(R, KMPKG_DB_INSTALLED, "hello");
	cr_assert_not_null(rec);
	cr_assert_str_eq(json_string_value(json_object_get(rec, "version")), "1.0.0");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "constraint")), "^1");
	json_decref(rec);
	txns = fx_all(R, KMPKG_DB_TXNS);
	json_object_foreach(txns, k, t) {
		res = json_array_get(json_object_get(t, "resolved"), 0);
		cr_assert_not_null(res, "the transaction records what it resolved against");
		cr_assert_str_eq(json_string_value(json_object_get(res, "source")), "demo");
		cr_assert_str_eq(json_string_value(json_object_get(res, "commit")), commit);
		cr_assert_str_eq(json_string_value(json_object_get(res, "version")), "1.0.0");
		n++;
	}
	cr_assert_eq(n, 1);
	json_decref(txns);

	/* update stays inside ^1: nothing newer there. */
	d = run_json(0, "update");
	cr_assert_str_eq(json_string_value(json_object_get(d, "outcome")), "nothing to do");
	json_decref(d);
	/* A new range replaces the constraint; the dependency comes along. */
	d = run_json(0, "install", "hello@^2");
	cr_assert_str_eq(json_string_value(json_object_get(d, "outcome")), "committed");
	cr_assert_eq(json_array_size(json_object_get(d, "changes")), 2);
	json_decref(d);
	rec = fx_get(R, KMPKG_DB_INSTALLED, "json-helpers");
	cr_assert_not_null(rec);
	cr_assert_str_eq(json_string_value(json_object_get(rec, "version")), "1.1.0");
	json_decref(rec);
	rec = fx_get(R, KMPKG_DB_INSTALLED, "hello");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "constraint")), "^2");
	json_decref(rec);
	fx_ok(9, R, NULL, "update", "nothere", NULL);
	fx_ok(2, R, NULL, "install", "hello@^^^", NULL);
	free(commit);
}

/* A package fetched by name is published in the cache by the fetcher; the
 * download phase hashes it there and does not copy it onto itself (the
 * entry keeps its inode when the package is installed again). */
Test(sources_cli, fetched_package_is_not_copied_again)
{
	char *cache = fx_path(R, "kmpkg/cache"), *entry = NULL;
	struct stat before, after;
	struct dirent *de;
	DIR *d;
	json_t *o;

	make_source("");
	add_demo();
	fx_ok(0, R, NULL, "install", "hello@^1", NULL);
	cr_assert_eq(fx_count(cache), 1, "one package in the cache");
	d = opendir(cache);
	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			entry = fx_path(cache, de->d_name);
	closedir(d);
	cr_assert_not_null(entry);
	cr_assert_eq(stat(entry, &before), 0);
	fx_ok(0, R, NULL, "remove", "hello", NULL);
	o = run_json(0, "install", "hello@^1");
	cr_assert_str_eq(json_string_value(json_object_get(o, "outcome")), "committed");
	json_decref(o);
	cr_assert_eq(stat(entry, &after), 0);
	cr_assert_eq(after.st_ino, before.st_ino, "the cached package was copied onto itself");
	cr_assert_eq(fx_count(cache), 1);
	free(entry);
	free(cache);
}

Test(sources_cli, unsatisfiable_exits_5_naming_the_plugins)
{
	struct kres r;
	json_t *d;

	make_source("");
	index_file("cee", "1.0.0", "");
	index_file("cee", "2.0.0", "");
	index_file("alpha", "1.0.0", "dependencies:\\n  cee: \"^2.0.0\"\\n");
	index_file("bravo", "1.0.0", "dependencies:\\n  cee: \"^1.0.0\"\\n");
	add_demo();
	r = fx_run(R, NULL, "install", "alpha", "bravo", NULL);
	cr_assert_eq(r.status, 5, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "alpha"), "%s", r.err);
	cr_assert_not_null(strstr(r.err, "bravo"), "%s", r.err);
	cr_assert_not_null(strstr(r.err, "cee"), "%s", r.err);
	fx_free(&r);
	d = run_json(5, "install", "alpha", "bravo");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(d, "error"), "code")), "E_RESOLVE_CONFLICT");
	json_decref(d);
	d = fx_all(R, KMPKG_DB_INSTALLED);
	cr_assert_eq(json_object_size(d), 0);
	json_decref(d);
}

Test(sources_cli, dry_run_changes_nothing)
{
	struct kres r;
	json_t *d, *c;
	char *cache;

	make_source("");
	add_demo();
	r = fx_run(R, NULL, "install", "--dry-run", "hello@^2", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_not_null(strstr(r.out, "would install"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "json-helpers 1.1.0"), "%s", r.out);
	fx_free(&r);
	d = run_json(0, "install", "--dry-run", "hello@^2");
	cr_assert_str_eq(json_string_value(json_object_get(d, "outcome")), "planned");
	c = json_array_get(json_object_get(d, "changes"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(c, "name")), "hello");
	cr_assert_str_eq(json_string_value(json_object_get(c, "to")), "2.0.0");
	json_decref(d);
	d = fx_all(R, KMPKG_DB_TXNS);
	cr_assert_eq(json_object_size(d), 0);
	json_decref(d);
	d = fx_all(R, KMPKG_DB_INSTALLED);
	cr_assert_eq(json_object_size(d), 0);
	json_decref(d);
	cache = fx_path(R, "kmpkg/cache");
	cr_assert_leq(fx_count(cache), 0, "nothing downloaded");
	free(cache);
}
