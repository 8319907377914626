/* verify: `kmpkg verify` through the sanitized CLI reports modified, missing
 * and extra files of installed plugins, never follows a symlink, and does not
 * block on the write lock. */
#include "kmfix.h"
#include "kmpkg/lock.h"

static char *W, *R;

static void setup(void)
{
	W = fx_tmpdir();
	R = fx_path(W, "root");
}

static void teardown(void)
{
	fx_rmrf(W);
	free(W);
	free(R);
}

TestSuite(verify, .init = setup, .fini = teardown, .timeout = 60);

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A package with a health tool, a data file, a symlink and a nested
 * directory:  kmpkg.yaml bin/tool bin/link -> ../lib/data lib/data
 * lib/sub/notes.txt. Installs it into R; returns its store entry path. */
static char *install_rich(const char *name)
{
	char *entry;
	json_t *rec;

	cr_assert_eq(sh("cd '%s' && rm -rf src-%s && mkdir -p src-%s/bin src-%s/lib/sub && cd src-%s && "
			"printf 'apiVersion: kmpkg/v1\\nname: %s\\nversion: 1.0.0\\ndescription: d\\n"
			"health_check:\\n  command: [bin/tool]\\n' > kmpkg.yaml && "
			"printf '#!/bin/sh\\nexit 0\\n' > bin/tool && chmod 755 bin/tool && "
			"printf 'abcdef\\n' > lib/data && printf 'notes\\n' > lib/sub/notes.txt && "
			"ln -s ../lib/data bin/link && tar czf ../%s.kmpkg .",
			W, name, name, name, name, name, name),
		     0);
	{
		char pkg[600];

		snprintf(pkg, sizeof(pkg), "%s/%s.kmpkg", W, name);
		fx_ok(0, R, NULL, "install", pkg, NULL);
	}
	rec = fx_get(R, KMPKG_DB_INSTALLED, name);
	cr_assert_not_null(rec);
	entry = malloc(strlen(R) + 300);
	sprintf(entry, "%s/kmpkg/store/%s", R, json_string_value(json_object_get(rec, "entry")));
	json_decref(rec);
	return entry;
}

static json_t *json_of(const char *s)
{
	json_error_t je;
	json_t *j = json_loads(s, 0, &je);

	cr_assert_not_null(j, "not JSON: %s", s);
	return j;
}

/* The plugin report for `name` in a --json verify document. */
static json_t *plugin_of(json_t *doc, const char *name)
{
	json_t *p;
	size_t i;

	json_array_foreach(json_object_get(doc, "plugins"), i, p)
		if (strcmp(json_string_value(json_object_get(p, "name")), name) == 0)
			return p;
	cr_assert_fail("no report for %s", name);
	return NULL;
}

static bool has_str(const json_t *a, const char *s)
{
	json_t *v;
	size_t i;

	json_array_foreach(a, i, v)
		if (strcmp(json_string_value(v), s) == 0)
			return true;
	return false;
}

/* The "what" list of a modified path joined with ',' or NULL. */
static char *what_of(json_t *p, const char *path)
{
	static char buf[256];
	json_t *m, *w;
	size_t i, j;

	json_array_foreach(json_object_get(p, "modified"), i, m) {
		if (strcmp(json_string_value(json_object_get(m, "path")), path) != 0)
			continue;
		buf[0] = '\0';
		json_array_foreach(json_object_get(m, "what"), j, w) {
			if (j)
				strcat(buf, ",");
			strcat(buf, json_string_value(w));
		}
		return buf;
	}
	return NULL;
}

Test(verify, clean_install_exits_zero)
{
	char *e = install_rich("foo");
	struct kres r;
	json_t *doc, *p;

	char *b = install_rich("bar"), *z = fx_pkg(W, "baz", "1.0.0", TOOL_OK, NULL);

	fx_ok(0, R, NULL, "install", z, NULL);
	fx_check_invariants(R);
	r = fx_run(R, NULL, "verify", NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "verified 3 plugins, 19 files: all match"), "%s", r.out);
	fx_free(&r);
	r = fx_run(R, NULL, "--json", "verify", "foo", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	doc = json_of(r.out);
	cr_assert(json_is_true(json_object_get(doc, "ok")));
	cr_assert_eq(json_array_size(json_object_get(doc, "plugins")), 1);
	p = plugin_of(doc, "foo");
	cr_assert_str_eq(json_string_value(json_object_get(p, "version")), "1.0.0");
	cr_assert(json_is_true(json_object_get(p, "ok")));
	cr_assert_eq(json_array_size(json_object_get(p, "modified")), 0);
	cr_assert_eq(json_array_size(json_object_get(p, "missing")), 0);
	cr_assert_eq(json_array_size(json_object_get(p, "extra")), 0);
	json_decref(doc);
	fx_free(&r);
	r = fx_run(R, NULL, "--quiet", "verify", NULL);
	cr_assert_eq(r.status, 0);
	cr_assert_str_eq(r.out, "");
	fx_free(&r);
	free(e);
	free(b);
	free(z);
}

Test(verify, reports_each_kind_of_change)
{
	char *e = install_rich("foo"), *b = install_rich("bar");
	struct kres r;
	json_t *doc, *p;

	/* Same size, other content: only the digest can tell. */
	cr_assert_eq(sh("printf 'abcdeX\\n' > '%s/lib/data'", e), 0);
	cr_assert_eq(sh("chmod 700 '%s/bin/tool' && chmod 0700 '%s/lib/sub'", e, e), 0);
	cr_assert_eq(sh("rm '%s/lib/sub/notes.txt'", e), 0);
	cr_assert_eq(sh("echo x > '%s/lib/sub/planted' && mkdir '%s/evil' && touch '%s/evil/inner'", e, e, e), 0);
	cr_assert_eq(sh("ln -sfn /etc/passwd '%s/bin/link'", e), 0);
	cr_assert_eq(sh("echo more >> '%s/kmpkg.yaml'", e), 0);

	r = fx_run(R, NULL, "verify", NULL);
	cr_assert_eq(r.status, 4, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "foo: modified lib/data (sha256)\n"), "%s", r.out);
	cr_assert(strstr(r.out, "foo: modified bin/tool (mode)\n"), "%s", r.out);
	cr_assert(strstr(r.out, "foo: modified lib/sub (mode)\n"), "%s", r.out);
	cr_assert(strstr(r.out, "foo: modified kmpkg.yaml (size, sha256)\n"), "%s", r.out);
	cr_assert(strstr(r.out, "foo: modified bin/link (link)\n"), "%s", r.out);
	cr_assert(strstr(r.out, "foo: missing lib/sub/notes.txt\n"), "%s", r.out);
	cr_assert(strstr(r.out, "foo: extra evil\n"), "%s", r.out);
	cr_assert(strstr(r.out, "foo: extra lib/sub/planted\n"), "%s", r.out);
	cr_assert_null(strstr(r.out, "evil/inner"), "%s", r.out);
	cr_assert_null(strstr(r.out, "bar:"), "%s", r.out);
	cr_assert(strstr(r.out, "5 modified, 1 missing, 2 extra"), "%s", r.out);
	cr_assert(strstr(r.err, "error[E_VERIFY_MODIFIED]") && strstr(r.err, "1 of 2"), "%s", r.err);
	fx_free(&r);

	r = fx_run(R, NULL, "--json", "verify", NULL);
	cr_assert_eq(r.status, 4);
	doc = json_of(r.out);
	cr_assert(json_is_false(json_object_get(doc, "ok")));
	cr_assert_str_eq(json_string_value(json_object_get(doc, "code")), "E_VERIFY_MODIFIED");
	p = plugin_of(doc, "foo");
	cr_assert(json_is_false(json_object_get(p, "ok")));
	cr_assert_str_eq(what_of(p, "lib/data"), "sha256");
	cr_assert_str_eq(what_of(p, "bin/link"), "link");
	cr_assert_str_eq(what_of(p, "bin/tool"), "mode");
	cr_assert_null(what_of(p, "lib/sub/notes.txt"));
	cr_assert(has_str(json_object_get(p, "missing"), "lib/sub/notes.txt"));
	cr_assert(has_str(json_object_get(p, "extra"), "evil"));
	cr_assert(has_str(json_object_get(p, "extra"), "lib/sub/planted"));
	cr_assert_eq(json_array_size(json_object_get(p, "extra")), 2);
	cr_assert(json_is_true(json_object_get(plugin_of(doc, "bar"), "ok")));
	json_decref(doc);
	fx_free(&r);

	/* Naming only the clean plugin is clean. */
	fx_ok(0, R, NULL, "verify", "bar", NULL);
	fx_ok(4, R, NULL, "verify", "bar", "foo", NULL);
	free(e);
	free(b);
}

Test(verify, type_changes_are_not_followed)
{
	char *e = install_rich("foo");
	struct kres r;
	json_t *doc, *p;

	/* lib becomes a symlink to a copy elsewhere: verify must not look through it. */
	cr_assert_eq(sh("cp -a '%s/lib' '%s/outside' && rm -rf '%s/lib' && ln -s '%s/outside' '%s/lib'", e, W, e, W, e),
		     0);
	/* bin/tool becomes a FIFO: reading it must not hang. */
	cr_assert_eq(sh("rm '%s/bin/tool' && mkfifo '%s/bin/tool'", e, e), 0);
	r = fx_run(R, NULL, "--json", "verify", NULL);
	cr_assert_eq(r.status, 4, "%s", r.err);
	doc = json_of(r.out);
	p = plugin_of(doc, "foo");
	cr_assert_str_eq(what_of(p, "lib"), "type");
	cr_assert_str_eq(what_of(p, "bin/tool"), "type");
	cr_assert(has_str(json_object_get(p, "missing"), "lib/data"));
	cr_assert(has_str(json_object_get(p, "missing"), "lib/sub"));
	cr_assert(has_str(json_object_get(p, "missing"), "lib/sub/notes.txt"));
	/* bin/link -> ../lib/data is unchanged as a link, whatever it points at now. */
	cr_assert_null(what_of(p, "bin/link"));
	cr_assert_eq(json_array_size(json_object_get(p, "extra")), 0);
	json_decref(doc);
	fx_free(&r);

	/* A regular file where a directory was. */
	cr_assert_eq(sh("rm '%s/lib' && echo x > '%s/lib'", e, e), 0);
	r = fx_run(R, NULL, "verify", "foo", NULL);
	cr_assert_eq(r.status, 4);
	cr_assert(strstr(r.out, "foo: modified lib (type)\n"), "%s", r.out);
	fx_free(&r);
	free(e);
}

Test(verify, whole_store_entry_missing)
{
	char *e = install_rich("foo");
	struct kres r;
	json_t *doc, *p;

	cr_assert_eq(sh("rm -rf '%s'", e), 0);
	r = fx_run(R, NULL, "--json", "verify", "foo", NULL);
	cr_assert_eq(r.status, 4, "%s", r.err);
	doc = json_of(r.out);
	p = plugin_of(doc, "foo");
	cr_assert_eq(json_array_size(json_object_get(p, "missing")), 8);
	cr_assert(has_str(json_object_get(p, "missing"), "kmpkg.yaml"));
	json_decref(doc);
	fx_free(&r);
	free(e);
}

Test(verify, unknown_name_fresh_root_and_usage)
{
	struct kres r;
	json_t *doc;
	char *e;

	/* A root with no state at all. */
	r = fx_run(R, NULL, "verify", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "no plugins installed"), "%s", r.out);
	fx_free(&r);
	fx_ok(9, R, NULL, "verify", "foo", NULL);

	e = install_rich("foo");
	r = fx_run(R, NULL, "--json", "verify", "foo", "nope", NULL);
	cr_assert_eq(r.status, 9);
	doc = json_of(r.out);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "error"), "code")), "E_NOT_INSTALLED");
	json_decref(doc);
	fx_free(&r);
	r = fx_run(R, NULL, "verify", "--bogus", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "E_USAGE"), "%s", r.err);
	fx_free(&r);
	r = fx_run(R, NULL, "verify", "--help", NULL);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "usage: kmpkg verify"), "%s", r.out);
	fx_free(&r);
	free(e);
}

Test(verify, does_not_wait_for_the_write_lock)
{
	char *e = install_rich("foo");
	struct kmpkg_lock *l = NULL;

	cr_assert_eq(kmpkg_lock_acquire(&l, R, 0), 0);
	fx_ok(0, R, NULL, "--wait", "0", "verify", NULL);
	cr_assert_eq(sh("echo x >> '%s/lib/data'", e), 0);
	fx_ok(4, R, NULL, "--wait", "0", "verify", NULL);
	kmpkg_lock_release(l);
	/* and verify changed nothing: the same report again. */
	fx_ok(4, R, NULL, "verify", NULL);
	free(e);
}
