/* preflight_index: `kmpkg preflight` and the engine's verify-phase gate
 * consulting the sources' index cache of the root (a fixture source from
 * scripts/make-fixture-source, added with `kmpkg source add`): dependencies
 * satisfied by an indexed version, what the sources offer when nothing
 * satisfies, and next steps naming the newest indexed version that passes. */
#include "kmfix.h"

static char *W, *R, *REPO, *TOP; /* work dir, root, fixture source, source tree */

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

/* Writes plugins/NAME/VERSION.yaml (a manifest body plus a made-up https
 * artifact) into REPO and commits it. */
static void index_file(const char *name, const char *version, const char *body)
{
	char path[700];
	FILE *f;

	sh("mkdir -p '%s/plugins/%s'", REPO, name);
	snprintf(path, sizeof(path), "%s/plugins/%s/%s.yaml", REPO, name, version);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "apiVersion: kmpkg/v1\nname: %s\nversion: %s\n%sartifact:\n  url: https://example.invalid/%s-%s.kmpkg\n"
		   "  sha256: %064d\n  size: 100\n",
		name, version, body, name, version, 7);
	fclose(f);
	sh("cd '%s' && " GITENV " git add -A && " GITENV " git commit -qm '%s %s'", REPO, name, version);
}

/* REPO (the fixture source, plus any index files written since) added to R as "demo". */
static void add_demo(void)
{
	char url[600];

	snprintf(url, sizeof(url), "file://%s", REPO);
	fx_ok(0, R, NULL, "source", "add", "demo", url, NULL);
}

/* The fixture source at REPO; fixtures/host.yaml as R's host profile. */
static void make_source(void)
{
	sh("'%s/scripts/make-fixture-source' '%s' >/dev/null", TOP, REPO);
	sh("mkdir -p '%s/kmpkg' && cp '%s/fixtures/host.yaml' '%s/kmpkg/host.yaml'", R, TOP, R);
}

/* Writes W/NAME with a manifest body after apiVersion; returns its path. */
static char *manifest(const char *name, const char *body)
{
	char *p = fx_path(W, name);
	FILE *f = fopen(p, "w");

	cr_assert_not_null(f);
	fprintf(f, "apiVersion: kmpkg/v1\n%sentrypoint: bin/x\n", body);
	fclose(f);
	return p;
}

static json_t *json_of(const char *s)
{
	json_error_t je;
	json_t *j = json_loads(s, 0, &je);

	cr_assert_not_null(j, "not JSON: %s", s);
	return j;
}

/* kmpkg --root root --json ARGS... (NULL-terminated), expecting `want`. */
static json_t *run_jsonf(int want, const char *root, ...)
{
	const char *args[32];
	struct kres r;
	json_t *d;
	va_list ap;
	int n = 1;

	args[0] = "--json";
	va_start(ap, root);
	while (n < 31 && (args[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	args[n] = NULL;
	r = fx_runv(root, NULL, args);
	cr_assert_eq(r.status, want, "kmpkg %s: status %d, want %d; out %s err %s", args[1], r.status, want, r.out,
		     r.err);
	d = json_of(r.out);
	fx_free(&r);
	return d;
}

#define run_json(want, root, ...) run_jsonf(want, root, __VA_ARGS__, NULL)

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	cr_assert_not_null(s, "no string %s", key);
	return s;
}

/* The diagnostic of `code` at `field` in a preflight document. */
static const json_t *finding(const json_t *doc, const char *code, const char *field)
{
	const json_t *g;
	size_t i;

	json_array_foreach(json_object_get(doc, "diagnostics"), i, g)
		if (!strcmp(str(g, "code"), code) && !strcmp(str(g, "field"), field))
			return g;
	cr_assert_fail("no %s at %s", code, field);
	return NULL;
}

static void setup(void)
{
	W = fx_tmpdir();
	R = fx_path(W, "root");
	REPO = fx_path(W, "repo");
	TOP = getenv("KMPKG_SRCDIR");
	cr_assert_not_null(TOP);
}

static void teardown(void)
{
	(void)fx_pkg; /* kmfix.h's engine helpers this suite does not use */
	fx_rmrf(W);
	free(W);
	free(R);
	free(REPO);
}

TestSuite(preflight_index, .init = setup, .fini = teardown, .timeout = 60);

#define GATED "/fixtures/gated/hello-4.0.0/kmpkg.yaml"
#define HELLO3 "hello 3.0.0 (source demo) passes on this host: kmpkg install hello@3.0.0"

Test(preflight_index, dependency_satisfied_only_by_the_index)
{
	char *m = manifest("needs.yaml", "name: needs\nversion: 1.0.0\nhost: \">=1.0.0\"\n"
					 "dependencies:\n  json-helpers: \"^1.0.0\"\n  hello: \"^3\"\n");
	char *bare = fx_path(W, "bare");
	const json_t *g;
	json_t *d;

	make_source();
	add_demo();
	d = run_json(0, R, "preflight", m);
	cr_assert_eq(json_integer_value(json_object_get(d, "errors")), 0);
	cr_assert_str_eq(str(d, "index"), R);
	json_decref(d);

	/* --no-index: the check set alone, as before the index existed. */
	d = run_json(3, R, "preflight", "--no-index", m);
	cr_assert(json_is_null(json_object_get(d, "index")));
	g = finding(d, "DEPENDENCY_UNRESOLVED", "/dependencies/json-helpers");
	cr_assert_str_eq(str(g, "message"), "dependency json-helpers ^1.0.0: no manifest of it in this check");
	cr_assert_str_eq(str(g, "actual"), "none");
	json_decref(d);

	/* A root without state: unchanged behaviour. */
	sh("mkdir -p '%s/kmpkg' && cp '%s/fixtures/host.yaml' '%s/kmpkg/host.yaml'", bare, TOP, bare);
	d = run_json(3, bare, "preflight", m);
	cr_assert(json_is_null(json_object_get(d, "index")));
	cr_assert_eq(json_integer_value(json_object_get(d, "errors")), 2);
	g = finding(d, "DEPENDENCY_UNRESOLVED", "/dependencies/hello");
	cr_assert_str_eq(str(g, "message"), "dependency hello ^3: no manifest of it in this check");
	json_decref(d);
	sh("test ! -e '%s/kmpkg/state'", bare); /* preflight creates no state */
	free(bare);
	free(m);
}

Test(preflight_index, unresolvable_dependency_lists_what_the_sources_offer)
{
	char *m3 = manifest("m3.yaml", "name: m3\nversion: 1.0.0\ndependencies:\n  json-helpers: \"^3\"\n"
				       "  nowhere: \"^1\"\n");
	char *m2 = manifest("m2.yaml", "name: m2\nversion: 1.0.0\ndependencies:\n  json-helpers: \"^2\"\n");
	char *m1 = manifest("m1.yaml", "name: m1\nversion: 1.0.0\ndependencies:\n  json-helpers: \"~1.1\"\n");
	const json_t *g;
	json_t *d;

	make_source();
	/* json-helpers 2.0.0 is for km 2.x hosts: it satisfies ^2 but does not pass on 1.6.0. */
	index_file("json-helpers", "2.0.0", "host: \">=2.0.0\"\n");
	add_demo();

	d = run_json(3, R, "preflight", m3);
	cr_assert_eq(json_integer_value(json_object_get(d, "errors")), 2);
	g = finding(d, "DEPENDENCY_UNRESOLVED", "/dependencies/json-helpers");
	cr_assert_eq(json_integer_value(json_object_get(g, "line")), 5);
	cr_assert_str_eq(str(g, "message"), "dependency json-helpers ^3: no manifest of it in this check; sources "
					    "offer json-helpers 1.1.0, 2.0.0; none satisfies ^3");
	cr_assert_str_eq(str(g, "required"), "^3");
	cr_assert_str_eq(str(g, "actual"), "sources: 1.1.0, 2.0.0");
	cr_assert_str_eq(str(g, "next_step"), "widen the range to accept json-helpers 1.1.0 (source demo), the "
					      "newest the sources offer that passes on this host, or publish a "
					      "version of json-helpers within ^3");
	g = finding(d, "DEPENDENCY_UNRESOLVED", "/dependencies/nowhere");
	cr_assert_str_eq(str(g, "message"), "dependency nowhere ^1: no manifest of it in this check; no source offers nowhere");
	cr_assert_not_null(strstr(str(g, "next_step"), "or add a source that offers it (kmpkg source add)"));
	json_decref(d);

	/* Satisfied only by a version that does not pass: named, with why. */
	d = run_json(3, R, "preflight", m2);
	g = finding(d, "DEPENDENCY_UNRESOLVED", "/dependencies/json-helpers");
	cr_assert_str_eq(str(g, "message"), "dependency json-helpers ^2: no manifest of it in this check; sources "
					    "offer json-helpers 1.1.0, 2.0.0; the newest within ^2, 2.0.0, does not "
					    "pass on this host: its host range >=2.0.0 does not accept 1.6.0");
	cr_assert_str_eq(str(g, "next_step"), "json-helpers 2.0.0 (source demo) is the newest version within ^2 "
					      "and does not pass on this host (its host range >=2.0.0 does not "
					      "accept 1.6.0): publish a version of json-helpers within ^2 that does, "
					      "or widen the range");
	json_decref(d);

	/* An older satisfying version that passes is enough. */
	d = run_json(0, R, "preflight", m1);
	cr_assert_eq(json_integer_value(json_object_get(d, "errors")), 0);
	json_decref(d);

	/* The check set still comes first: a given version is reported with the sources' ones. */
	{
		char *jh = manifest("jh.yaml", "name: json-helpers\nversion: 2.1.0\n");

		d = run_json(3, R, "preflight", m3, jh);
		g = finding(d, "DEPENDENCY_UNRESOLVED", "/dependencies/json-helpers");
		cr_assert_str_eq(str(g, "actual"), "2.1.0; sources: 1.1.0, 2.0.0");
		cr_assert_not_null(strstr(str(g, "message"), "no version in this check satisfies the range; sources offer"));
		json_decref(d);
		free(jh);
	}
	free(m1);
	free(m2);
	free(m3);
}

Test(preflight_index, next_step_names_the_newest_passing_version)
{
	char gated[600];
	char *host3 = fx_path(W, "host3.yaml");
	char *m9 = manifest("hello9.yaml", "name: hello\nversion: 9.0.0\ntier: enterprise\n"
					   "capabilities:\n  requires: [message.stream, pager.duty]\n");
	char *h35 = manifest("hello35.yaml", "name: hello\nversion: 3.5.0\nhost: \">=1.0.0\"\n");
	const json_t *g;
	json_t *d;

	snprintf(gated, sizeof(gated), "%s" GATED, TOP);
	make_source();
	add_demo();

	d = run_json(3, R, "preflight", gated);
	cr_assert_eq(json_integer_value(json_object_get(d, "errors")), 2);
	g = finding(d, "HOST_RANGE_UNSATISFIED", "/host");
	cr_assert_eq(json_integer_value(json_object_get(g, "line")), 5);
	cr_assert_str_eq(str(g, "next_step"), HELLO3);
	g = finding(d, "API_RANGE_UNSATISFIED", "/api");
	cr_assert_str_eq(str(g, "next_step"), HELLO3);
	json_decref(d);

	/* Tier and capability findings get the same next step. */
	d = run_json(3, R, "preflight", m9);
	cr_assert_str_eq(str(finding(d, "TIER_TOO_LOW", "/tier"), "next_step"), HELLO3);
	cr_assert_str_eq(str(finding(d, "CAPABILITY_MISSING", "/capabilities/requires/1"), "next_step"), HELLO3);
	json_decref(d);

	/* A newer passing version in the check set wins over the sources. */
	d = run_json(3, R, "preflight", gated, h35);
	cr_assert_str_eq(str(finding(d, "HOST_RANGE_UNSATISFIED", "/host"), "next_step"),
			 "install hello@3.5.0, the newest version whose host range accepts 1.6.0");
	json_decref(d);

	/* A host none of the indexed versions runs on: said so. */
	sh("sed 's/^version: .*/version: 3.1.0/' '%s/fixtures/host.yaml' > '%s'", TOP, host3);
	d = run_json(3, R, "preflight", "--host", host3, gated);
	cr_assert_str_eq(str(finding(d, "HOST_RANGE_UNSATISFIED", "/host"), "next_step"),
			 "no other version of hello in the sources passes on this host either (they offer 1.0.0, "
			 "2.0.0, 3.0.0); widen `host` to include 3.1.0 or run on a host within >=2.0.0 <3.0.0");
	json_decref(d);

	/* Text format carries the same next step. */
	{
		struct kres r = fx_run(R, NULL, "preflight", gated, NULL);

		cr_assert_eq(r.status, 3);
		cr_assert_not_null(strstr(r.out, "  next step: " HELLO3 "\n"), "%s", r.out);
		fx_free(&r);
	}
	free(host3);
	free(m9);
	free(h35);
}

Test(preflight_index, engine_gate_names_the_newest_passing_version)
{
	char dir[600];
	char *pkg = fx_path(W, "hello-4.0.0.kmpkg"), *bare = fx_path(W, "bare");
	const json_t *e;
	json_t *d;

	snprintf(dir, sizeof(dir), "%s/fixtures/gated/hello-4.0.0", TOP);
	fx_ok(0, NULL, NULL, "pack", dir, "-o", pkg, NULL);
	make_source();
	add_demo();

	d = run_json(3, R, "install", pkg);
	e = json_object_get(d, "error");
	cr_assert_str_eq(str(e, "code"), "E_HOST_RANGE_UNSATISFIED");
	cr_assert_str_eq(str(e, "field"), "/host");
	cr_assert_str_eq(str(e, "next_step"), HELLO3);
	json_decref(d);
	d = fx_get(R, KMPKG_DB_INSTALLED, "hello");
	cr_assert_null(d, "nothing installed");
	fx_check_invariants(R);

	/* Without sources (no state, no index) the gate works as before. */
	sh("mkdir -p '%s/kmpkg' && cp '%s/fixtures/host.yaml' '%s/kmpkg/host.yaml'", bare, TOP, bare);
	d = run_json(3, bare, "install", pkg);
	e = json_object_get(d, "error");
	cr_assert_str_eq(str(e, "code"), "E_HOST_RANGE_UNSATISFIED");
	cr_assert_str_eq(str(e, "next_step"), "widen `host` to include 1.6.0 or run on a host within >=2.0.0 <3.0.0");
	json_decref(d);
	free(pkg);
	free(bare);
}
