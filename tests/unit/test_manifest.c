/* manifest: the bounded YAML reader and the typed manifest loader (SPEC §6, §9). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kmpkg/buf.h"
#include "kmpkg/diag.h"
#include "kmpkg/error.h"
#include "kmpkg/manifest.h"

/* A bound that catches hangs and quadratic blow-ups under ASan on a loaded
 * 2-core machine; the real figure (well under 100 ms, about 1 ms in a release
 * build) is measured by scripts/bench, not asserted here. */
#define HOSTILE_BOUND_MS 1000.0
#include "yamltree.h"

#define HEAD "apiVersion: kmpkg/v1\nname: hello\nversion: 1.0.0\n"

static char *fixture(const char *name)
{
	const char *top = getenv("KMPKG_SRCDIR");
	char *p = NULL;

	cr_assert(asprintf(&p, "%s/fixtures/manifests/%s", top ? top : ".", name) > 0);
	return p;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Loads data and checks for exactly one finding with this code, position and field. */
static void expect_one(const char *what, const char *data, size_t len, const char *code, int line, int col,
		       const char *field)
{
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_manifest *m = NULL;
	double t0 = now_ms(), dt;
	int rc = kmpkg_manifest_load_buf(&m, "x.yaml", data, len, &d);

	dt = now_ms() - t0;
	cr_assert_eq(rc, KMPKG_EUSAGE, "%s: rc %d", what, rc);
	cr_assert_null(m, "%s", what);
	cr_assert_eq(d.n, 1, "%s: %zu findings, first %s", what, d.n, d.n ? d.v[0].code : "-");
	cr_assert_str_eq(d.v[0].code, code, "%s", what);
	cr_assert_eq(d.v[0].severity, KMPKG_SEV_ERROR, "%s", what);
	cr_assert_eq(d.v[0].line, line, "%s: line %d column %d", what, d.v[0].line, d.v[0].column);
	cr_assert_eq(d.v[0].column, col, "%s: column %d", what, d.v[0].column);
	cr_assert_str_eq(d.v[0].field, field, "%s: field %s", what, d.v[0].field);
	cr_assert_str_eq(d.v[0].file, "x.yaml", "%s", what);
	cr_assert(d.v[0].message[0] != '\0', "%s", what);
	cr_assert_lt(dt, HOSTILE_BOUND_MS, "%s took %.1f ms", what, dt);
	kmpkg_diags_release(&d);
}

static void expect_one_s(const char *what, const char *data, const char *code, int line, int col,
			 const char *field)
{
	expect_one(what, data, strlen(data), code, line, col, field);
}

static char *repeat(const char *prefix, const char *unit, size_t n, const char *suffix)
{
	size_t pl = strlen(prefix), ul = strlen(unit), sl = strlen(suffix), i;
	char *s = malloc(pl + ul * n + sl + 1), *p = s;

	cr_assert_not_null(s);
	memcpy(p, prefix, pl);
	p += pl;
	for (i = 0; i < n; i++, p += ul)
		memcpy(p, unit, ul);
	memcpy(p, suffix, sl + 1);
	return s;
}

static char *zeros_pointer(int n)
{
	return repeat("", "/0", (size_t)n, "");
}

Test(manifest, valid_full_example_loads_every_field)
{
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_manifest *m = NULL;
	char *path = fixture("valid-full.yaml");

	cr_assert_eq(kmpkg_manifest_load_file(&m, path, &d), 0);
	cr_assert_eq(d.n, 0);
	cr_assert_str_eq(m->file, path);
	cr_assert_str_eq(m->api_version, "kmpkg/v1");
	cr_assert_str_eq(m->name, "datadog-exporter");
	cr_assert_str_eq(m->version, "1.2.0");
	cr_assert_str_eq(m->description, "Export monitoring events to Datadog");
	cr_assert_str_eq(m->host, ">=1.4.0 <2.0.0");
	cr_assert_str_eq(m->api, "^2.1.0");
	cr_assert_str_eq(m->tier, "team");
	cr_assert_eq(m->requires.n, 1);
	cr_assert_str_eq(m->requires.v[0], "message.stream");
	cr_assert_eq(m->provides.n, 1);
	cr_assert_str_eq(m->provides.v[0], "exporter.datadog");
	cr_assert_eq(m->permissions.n, 1);
	cr_assert_str_eq(m->permissions.v[0], "network");
	cr_assert_eq(m->ndeps, 1);
	cr_assert_str_eq(m->deps[0].name, "json-helpers");
	cr_assert_str_eq(m->deps[0].range, "^1.0.0");
	cr_assert_str_eq(m->entrypoint, "bin/datadog-exporter");
	cr_assert_eq(m->health_command.n, 2);
	cr_assert_str_eq(m->health_command.v[0], "bin/datadog-exporter");
	cr_assert_str_eq(m->health_command.v[1], "--health");
	cr_assert_eq(m->health_timeout_ms, 5000);
	cr_assert(m->has_artifact);
	cr_assert_str_eq(m->artifact.url, "https://plugins.example.com/datadog-exporter-1.2.0.kmpkg");
	cr_assert_str_eq(m->artifact.sha256, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
	cr_assert_eq(m->artifact.size, 1048576);
	cr_assert_str_eq(m->artifact.signature, "datadog-exporter-1.2.0.kmpkg.minisig");
	kmpkg_manifest_free(m);
	free(path);
}

Test(manifest, posmap_finds_nodes_and_nearest_parent)
{
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_manifest *m = NULL;
	char *path = fixture("valid-full.yaml");
	int line, col;

	cr_assert_eq(kmpkg_manifest_load_file(&m, path, &d), 0);
	cr_assert(kmpkg_posmap_find(m->pos, "/host", &line, &col));
	cr_assert_eq(line, 5);
	cr_assert_eq(col, 7);
	cr_assert(kmpkg_posmap_find(m->pos, "/dependencies/json-helpers", &line, &col));
	cr_assert_eq(line, 13);
	cr_assert_eq(col, 17);
	cr_assert(kmpkg_posmap_find(m->pos, "/capabilities/requires/0", &line, &col));
	cr_assert_eq(line, 9);
	cr_assert_eq(col, 14);
	cr_assert(kmpkg_posmap_find(m->pos, "/health_check/command/1", &line, &col));
	cr_assert_eq(line, 16);
	cr_assert_eq(col, 35);
	cr_assert(kmpkg_posmap_find(m->pos, "", &line, &col));
	cr_assert_eq(line, 1);
	cr_assert_eq(col, 1);
	/* missing: the nearest existing parent */
	cr_assert_not(kmpkg_posmap_find(m->pos, "/capabilities/requires/7", &line, &col));
	cr_assert_eq(line, 9);
	cr_assert_eq(col, 13);
	cr_assert_not(kmpkg_posmap_find(m->pos, "/nope/deeper", &line, &col));
	cr_assert_eq(line, 1);
	kmpkg_manifest_free(m);
	free(path);
}

Test(manifest, minimal_gets_defaults)
{
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_manifest *m = NULL;
	char *path = fixture("valid-minimal.yaml");

	cr_assert_eq(kmpkg_manifest_load_file(&m, path, &d), 0);
	cr_assert_eq(d.n, 0);
	cr_assert_str_eq(m->version, "0.1.0-rc.1+build.5");
	cr_assert_null(m->description);
	cr_assert_null(m->host);
	cr_assert_null(m->tier);
	cr_assert_null(m->entrypoint);
	cr_assert_eq(m->requires.n, 0);
	cr_assert_eq(m->ndeps, 0);
	cr_assert_eq(m->health_command.n, 0);
	cr_assert_eq(m->health_timeout_ms, 5000);
	cr_assert_not(m->has_artifact);
	kmpkg_manifest_free(m);
	free(path);
}

Test(manifest, flow_style_tags_nulls_and_quoted_scalars)
{
	const char *y = "{apiVersion: !!str kmpkg/v1, name: '0abc', version: \"2.0.0-alpha.1\","
			" description: ~, tier: !!str 42, dependencies: {a-b: '*', c: \">=1 <2\"},"
			" health_check: {command: [run.sh], timeout_ms: !!int 600000}}";
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_manifest *m = NULL;

	cr_assert_eq(kmpkg_manifest_load_buf(&m, "f.yaml", y, strlen(y), &d), 0);
	cr_assert_eq(d.n, 0);
	cr_assert_str_eq(m->name, "0abc");
	cr_assert_null(m->description);
	cr_assert_str_eq(m->tier, "42");
	cr_assert_eq(m->ndeps, 2);
	cr_assert_str_eq(m->deps[1].name, "c");
	cr_assert_str_eq(m->deps[1].range, ">=1 <2");
	cr_assert_eq(m->health_timeout_ms, 600000);
	kmpkg_manifest_free(m);
}

Test(manifest, unknown_fields_are_warnings)
{
	const char *y = HEAD "homepage: x\ncapabilities:\n  wants: [a]\n";
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_manifest *m = NULL;

	cr_assert_eq(kmpkg_manifest_load_buf(&m, "f.yaml", y, strlen(y), &d), 0);
	cr_assert_not_null(m);
	cr_assert_eq(d.n, 2);
	cr_assert_str_eq(d.v[0].code, "MANIFEST_UNKNOWN_FIELD");
	cr_assert_eq(d.v[0].severity, KMPKG_SEV_WARNING);
	cr_assert_str_eq(d.v[0].field, "/capabilities/wants");
	cr_assert_eq(d.v[0].line, 6);
	cr_assert_eq(d.v[0].column, 3);
	cr_assert_str_eq(d.v[1].field, "/homepage");
	cr_assert_eq(d.v[1].line, 4);
	kmpkg_manifest_free(m);
	kmpkg_diags_release(&d);
}

Test(manifest, deep_flow_nesting_40k)
{
	char *seq = repeat(HEAD "x: ", "[", 40000, "");
	char *map = repeat("", "{a: ", 16000, ""); /* 4 bytes a level: 64,000 bytes */
	char *ptr = zeros_pointer(31), *fld;

	cr_assert_lt(strlen(seq), KMPKG_MANIFEST_MAX_BYTES);
	/* the root mapping is level 1: the 32nd '[' (column 4 + 31) is level 33 */
	cr_assert(asprintf(&fld, "/x%s", ptr) > 0);
	expect_one_s("flow sequences", seq, "YAML_TOO_DEEP", 4, 35, fld);
	free(fld);
	fld = repeat("", "/a", 32, "");
	expect_one_s("flow mappings", map, "YAML_TOO_DEEP", 1, 1 + 4 * 32, fld);
	free(fld);
	free(ptr);
	free(seq);
	free(map);
}

Test(manifest, deep_block_nesting)
{
	/* "- " per level: 32,000 levels is as deep as 64 KiB allows */
	char *blk = repeat("", "- ", 32000, "x\n");
	char *ptr = zeros_pointer(32);

	cr_assert_lt(strlen(blk), KMPKG_MANIFEST_MAX_BYTES);
	expect_one_s("block sequences", blk, "YAML_TOO_DEEP", 1, 65, ptr);
	free(ptr);
	free(blk);
}

Test(manifest, deep_block_nesting_40k_in_the_reader)
{
	struct kmpkg_yamltree_limits lim = { 1 << 20, KMPKG_MANIFEST_MAX_DEPTH, KMPKG_MANIFEST_MAX_SCALAR,
					     KMPKG_YAMLTREE_MAX_NODES };
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_yamltree *t = NULL;
	char *blk = repeat("", "- ", 40000, "x\n");
	double t0 = now_ms(), dt;
	int rc = kmpkg_yamltree_parse(&t, "b.yaml", blk, strlen(blk), "MANIFEST", &lim, &d);

	dt = now_ms() - t0;
	cr_assert_eq(rc, KMPKG_EUSAGE);
	cr_assert_null(t);
	cr_assert_eq(d.n, 1);
	cr_assert_str_eq(d.v[0].code, "YAML_TOO_DEEP");
	cr_assert_eq(d.v[0].column, 65);
	cr_assert_lt(dt, HOSTILE_BOUND_MS, "took %.1f ms", dt);
	kmpkg_diags_release(&d);
	free(blk);
}

Test(manifest, depth_32_is_allowed)
{
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_yamltree *t = NULL;
	char *ok = repeat("", "[", 32, "");
	char *s = malloc(100);

	strcpy(s, ok);
	memset(s + 32, ']', 32);
	s[64] = '\0';
	cr_assert_eq(kmpkg_yamltree_parse(&t, "d.yaml", s, strlen(s), "MANIFEST", NULL, &d), 0);
	cr_assert_eq(d.n, 0);
	cr_assert_eq(t->root->type, KMPKG_YT_SEQ);
	kmpkg_yamltree_free(t);
	free(ok);
	free(s);
}

Test(manifest, billion_laughs_and_anchors_and_aliases)
{
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_manifest *m = NULL;
	char *path = fixture("billion-laughs.yaml");
	double t0 = now_ms();

	cr_assert_eq(kmpkg_manifest_load_file(&m, path, &d), KMPKG_EUSAGE);
	cr_assert_lt(now_ms() - t0, HOSTILE_BOUND_MS);
	cr_assert_eq(d.n, 1);
	cr_assert_str_eq(d.v[0].code, "YAML_ALIAS");
	cr_assert_eq(d.v[0].line, 4);
	cr_assert_eq(d.v[0].column, 4);
	cr_assert_str_eq(d.v[0].field, "/a");
	kmpkg_diags_release(&d);
	free(path);

	expect_one_s("scalar anchor", HEAD "x: &a 1\n", "YAML_ALIAS", 4, 4, "/x");
	expect_one_s("mapping anchor", HEAD "x: &a {b: 1}\n", "YAML_ALIAS", 4, 4, "/x");
	expect_one_s("bare alias", HEAD "x: *nowhere\n", "YAML_ALIAS", 4, 4, "/x");
	expect_one_s("cycle", HEAD "x: &a [*a]\n", "YAML_ALIAS", 4, 4, "/x");
}

Test(manifest, duplicate_key_points_at_the_second)
{
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_manifest *m = NULL;
	char *path = fixture("duplicate-key.yaml");

	cr_assert_eq(kmpkg_manifest_load_file(&m, path, &d), KMPKG_EUSAGE);
	cr_assert_eq(d.n, 1);
	cr_assert_str_eq(d.v[0].code, "YAML_DUPLICATE_KEY");
	cr_assert_eq(d.v[0].line, 6);
	cr_assert_eq(d.v[0].column, 3);
	cr_assert_str_eq(d.v[0].field, "/dependencies/json-helpers");
	cr_assert(strstr(d.v[0].message, "line 5") != NULL);
	kmpkg_diags_release(&d);
	free(path);
	expect_one_s("top level", HEAD "name: again\n", "YAML_DUPLICATE_KEY", 4, 1, "/name");
	expect_one_s("flow", "{a: 1, b: 2, a: 3}", "YAML_DUPLICATE_KEY", 1, 14, "/a");
}

Test(manifest, two_documents)
{
	expect_one_s("two", HEAD "---\n" HEAD, "YAML_MULTIPLE_DOCUMENTS", 4, 1, "");
	expect_one_s("empty second", HEAD "--- \n", "YAML_MULTIPLE_DOCUMENTS", 4, 1, "");
}

Test(manifest, nul_raw_and_escaped)
{
	static const char raw[] = "apiVersion: kmpkg/v1\nname: he\0llo\nversion: 1.0.0\n";

	expect_one("raw NUL", raw, sizeof(raw) - 1, "YAML_NUL", 2, 9, "");
	expect_one_s("escaped \\0", HEAD "description: \"a\\0b\"\n", "YAML_NUL", 4, 14, "/description");
	expect_one_s("escaped \\x00", HEAD "description: \"a\\x00b\"\n", "YAML_NUL", 4, 14, "/description");
	expect_one_s("escaped \\u0000", HEAD "description: \"\\u0000\"\n", "YAML_NUL", 4, 14, "/description");
}

Test(manifest, long_scalar)
{
	char *s = repeat(HEAD "description: ", "x", 5 * 1024, "\n");
	char *ok = repeat(HEAD "description: ", "x", 4096, "\n");
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_manifest *m = NULL;

	expect_one_s("5 KiB", s, "YAML_SCALAR_TOO_LONG", 4, 14, "/description");
	cr_assert_eq(kmpkg_manifest_load_buf(&m, "ok.yaml", ok, strlen(ok), &d), 0);
	cr_assert_eq(strlen(m->description), 4096);
	kmpkg_manifest_free(m);
	free(s);
	free(ok);
}

Test(manifest, too_large_buffer_and_file)
{
	char *big = repeat(HEAD "description: >\n", "  xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
			   1040, "");
	char dir[] = "/tmp/kmpkg-manifest-XXXXXX", *path = NULL;
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_manifest *m = NULL;
	double t0;
	FILE *f;

	cr_assert_gt(strlen(big), 65 * 1024);
	expect_one_s("65 KiB buffer", big, "MANIFEST_TOO_LARGE", 1, 1, "");

	cr_assert_not_null(mkdtemp(dir));
	cr_assert(asprintf(&path, "%s/kmpkg.yaml", dir) > 0);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fwrite(big, 1, strlen(big), f);
	fclose(f);
	t0 = now_ms();
	cr_assert_eq(kmpkg_manifest_load_file(&m, path, &d), KMPKG_EUSAGE);
	cr_assert_lt(now_ms() - t0, HOSTILE_BOUND_MS);
	cr_assert_eq(d.n, 1);
	cr_assert_str_eq(d.v[0].code, "MANIFEST_TOO_LARGE");
	cr_assert_str_eq(d.v[0].file, path);
	{
		char act[64];

		snprintf(act, sizeof(act), "%zu bytes", strlen(big));
		cr_assert_str_eq(d.v[0].actual, act);
	}
	kmpkg_diags_release(&d);
	unlink(path);
	rmdir(dir);
	free(path);
	free(big);
}

Test(manifest, too_many_nodes)
{
	char *s = repeat("[", "1,", 12000, "1]");

	cr_assert_lt(strlen(s), KMPKG_MANIFEST_MAX_BYTES);
	/* node 10,001 is item 9999 (the sequence is node 1): column 2 + 2 * 9999 */
	expect_one_s("12k items", s, "YAML_TOO_MANY_NODES", 1, 20000, "/9999");
	free(s);
}

Test(manifest, reader_refusals)
{
	expect_one_s("custom tag", HEAD "tier: !evil x\n", "YAML_TAG", 4, 7, "/tier");
	expect_one_s("binary tag", HEAD "tier: !!binary aGk=\n", "YAML_TAG", 4, 7, "/tier");
	expect_one_s("TAG directive", "%TAG !! tag:evil.com,2000:\n---\n!!str a: 1\n", "YAML_TAG", 3, 1, "");
	expect_one_s("seq key", "{[a]: 1}", "YAML_KEY_NOT_SCALAR", 1, 2, "");
	expect_one_s("map key", HEAD "? {a: 1}\n: b\n", "YAML_KEY_NOT_SCALAR", 4, 3, "");
	expect_one_s("syntax", HEAD "tier: [x\n", "YAML_SYNTAX", 5, 1, "");
	expect_one_s("tab indent", "a:\n\tb: 1\n", "YAML_SYNTAX", 2, 1, "");
	expect_one_s("bad utf-8", HEAD "description: \xff\xfe\n", "YAML_SYNTAX", 4, 14, "");
	expect_one_s("empty", "", "MANIFEST_EMPTY", 1, 1, "");
	expect_one_s("comments only", "# nothing\n", "MANIFEST_EMPTY", 1, 1, "");
	expect_one_s("null document", "~\n", "MANIFEST_EMPTY", 1, 1, "");
	expect_one_s("list document", "- a\n", "MANIFEST_TYPE", 1, 1, "");
	expect_one_s("scalar document", "hello\n", "MANIFEST_TYPE", 1, 1, "");
}

struct field_case {
	const char *what;
	const char *yaml; /* appended to HEAD unless it starts with "apiVersion" */
	const char *code;
	int line, col;
	const char *field;
};

static void run_cases(const struct field_case *c, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char *y = NULL;

		if (strncmp(c[i].yaml, "apiVersion", 10) == 0)
			y = strdup(c[i].yaml);
		else
			cr_assert(asprintf(&y, "%s%s", HEAD, c[i].yaml) > 0);
		expect_one_s(c[i].what, y, c[i].code, c[i].line, c[i].col, c[i].field);
		free(y);
	}
}

Test(manifest, wrong_types_for_every_field)
{
	static const struct field_case cases[] = {
		{ "apiVersion list", "apiVersion: [kmpkg/v1]\nname: a\nversion: 1.0.0\n", "MANIFEST_TYPE", 1, 13, "/apiVersion" },
		{ "name map", "apiVersion: kmpkg/v1\nname: {a: b}\nversion: 1.0.0\n", "MANIFEST_TYPE", 2, 7, "/name" },
		{ "name bool", "apiVersion: kmpkg/v1\nname: true\nversion: 1.0.0\n", "MANIFEST_TYPE", 2, 7, "/name" },
		{ "version list", "apiVersion: kmpkg/v1\nname: a\nversion: [1]\n", "MANIFEST_TYPE", 3, 10, "/version" },
		{ "description list", "description: [a]\n", "MANIFEST_TYPE", 4, 14, "/description" },
		{ "host list", "host: [a]\n", "MANIFEST_TYPE", 4, 7, "/host" },
		{ "api map", "api: {a: 1}\n", "MANIFEST_TYPE", 4, 6, "/api" },
		{ "tier list", "tier: [a]\n", "MANIFEST_TYPE", 4, 7, "/tier" },
		{ "capabilities list", "capabilities: [a]\n", "MANIFEST_TYPE", 4, 15, "/capabilities" },
		{ "requires string", "capabilities:\n  requires: a\n", "MANIFEST_TYPE", 5, 13, "/capabilities/requires" },
		{ "provides item map", "capabilities:\n  provides: [a, {b: c}]\n", "MANIFEST_TYPE", 5, 17, "/capabilities/provides/1" },
		{ "requires item bool", "capabilities: {requires: [x, y, false]}\n", "MANIFEST_TYPE", 4, 33, "/capabilities/requires/2" },
		{ "permissions string", "permissions: network\n", "MANIFEST_TYPE", 4, 14, "/permissions" },
		{ "permissions item list", "permissions:\n  - network\n  - [a]\n", "MANIFEST_TYPE", 6, 5, "/permissions/1" },
		{ "dependencies list", "dependencies: [a]\n", "MANIFEST_TYPE", 4, 15, "/dependencies" },
		{ "dependency range list", "dependencies:\n  json-helpers: [1]\n", "MANIFEST_TYPE", 5, 17, "/dependencies/json-helpers" },
		{ "dependency range null", "dependencies:\n  json-helpers:\n", "MANIFEST_TYPE", 5, 16, "/dependencies/json-helpers" },
		{ "entrypoint map", "entrypoint: {a: b}\n", "MANIFEST_TYPE", 4, 13, "/entrypoint" },
		{ "health_check list", "health_check: [a]\n", "MANIFEST_TYPE", 4, 15, "/health_check" },
		{ "command string", "health_check:\n  command: bin/x\n", "MANIFEST_TYPE", 5, 12, "/health_check/command" },
		{ "timeout string", "health_check:\n  command: [bin/x]\n  timeout_ms: abc\n", "MANIFEST_TYPE", 6, 15, "/health_check/timeout_ms" },
		{ "timeout quoted", "health_check:\n  command: [bin/x]\n  timeout_ms: \"5000\"\n", "MANIFEST_TYPE", 6, 15, "/health_check/timeout_ms" },
		{ "timeout float", "health_check:\n  command: [bin/x]\n  timeout_ms: 5.5\n", "MANIFEST_TYPE", 6, 15, "/health_check/timeout_ms" },
		{ "artifact string", "artifact: x\n", "MANIFEST_TYPE", 4, 11, "/artifact" },
		{ "artifact url list", "artifact: {url: [a], sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, size: 1}\n", "MANIFEST_TYPE", 4, 17, "/artifact/url" },
		{ "artifact size string", "artifact: {url: a.kmpkg, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, size: big}\n", "MANIFEST_TYPE", 4, 106, "/artifact/size" },
		{ "mirrors string", "artifact: {url: a.kmpkg, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, size: 1, mirrors: 'https://m/a'}\n", "MANIFEST_TYPE", 4, 118, "/artifact/mirrors" },
		{ "mirror map", "artifact: {url: a.kmpkg, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, size: 1, mirrors: [{a: b}]}\n", "MANIFEST_TYPE", 4, 119, "/artifact/mirrors/0" },
		{ "artifact signature map", "artifact: {url: a.kmpkg, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, size: 1, signature: {}}\n", "MANIFEST_TYPE", 4, 120, "/artifact/signature" },
	};

	run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(manifest, missing_required_fields)
{
	static const struct field_case cases[] = {
		{ "apiVersion", "name: a\nversion: 1.0.0\n", "MANIFEST_MISSING_FIELD", 4, 1, "/apiVersion" },
		{ "no name", "apiVersion: kmpkg/v1\nversion: 1.0.0\n", "MANIFEST_MISSING_FIELD", 1, 1, "/name" },
		{ "null name", "apiVersion: kmpkg/v1\nname:\nversion: 1.0.0\n", "MANIFEST_MISSING_FIELD", 2, 6, "/name" },
		{ "no version", "apiVersion: kmpkg/v1\nname: a\n", "MANIFEST_MISSING_FIELD", 1, 1, "/version" },
		{ "health command", "health_check:\n  timeout_ms: 10\n", "MANIFEST_MISSING_FIELD", 5, 3, "/health_check/command" },
		{ "artifact sha256", "artifact:\n  url: https://x/y\n  size: 3\n", "MANIFEST_MISSING_FIELD", 5, 3, "/artifact/sha256" },
	};
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_manifest *m = NULL;
	char *path = fixture("missing-name.yaml");

	/* The case table appends to HEAD; the first entry is a full document */
	expect_one_s(cases[0].what, "name: a\nversion: 1.0.0\n", "MANIFEST_MISSING_FIELD", 1, 1, "/apiVersion");
	run_cases(cases + 1, sizeof(cases) / sizeof(cases[0]) - 1);
	cr_assert_eq(kmpkg_manifest_load_file(&m, path, &d), KMPKG_EUSAGE);
	cr_assert_eq(d.n, 1);
	cr_assert_str_eq(d.v[0].field, "/name");
	kmpkg_diags_release(&d);
	free(path);
}

Test(manifest, bad_values)
{
	static const struct field_case cases[] = {
		{ "apiVersion v2", "apiVersion: kmpkg/v2\nname: a\nversion: 1.0.0\n", "MANIFEST_INVALID_VALUE", 1, 13, "/apiVersion" },
		{ "name upper", "apiVersion: kmpkg/v1\nname: Hello\nversion: 1.0.0\n", "MANIFEST_INVALID_VALUE", 2, 7, "/name" },
		{ "name dash first", "apiVersion: kmpkg/v1\nname: -a\nversion: 1.0.0\n", "MANIFEST_INVALID_VALUE", 2, 7, "/name" },
		{ "name underscore", "apiVersion: kmpkg/v1\nname: a_b\nversion: 1.0.0\n", "MANIFEST_INVALID_VALUE", 2, 7, "/name" },
		{ "name 64 chars", "apiVersion: kmpkg/v1\nname: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nversion: 1.0.0\n", "MANIFEST_INVALID_VALUE", 2, 7, "/name" },
		{ "name empty", "apiVersion: kmpkg/v1\nname: ''\nversion: 1.0.0\n", "MANIFEST_INVALID_VALUE", 2, 7, "/name" },
		{ "version leading zero", "apiVersion: kmpkg/v1\nname: a\nversion: 1.02.0\n", "MANIFEST_INVALID_VALUE", 3, 10, "/version" },
		{ "version two parts", "apiVersion: kmpkg/v1\nname: a\nversion: 1.2\n", "MANIFEST_INVALID_VALUE", 3, 10, "/version" },
		{ "version v", "apiVersion: kmpkg/v1\nname: a\nversion: v1.2.3\n", "MANIFEST_INVALID_VALUE", 3, 10, "/version" },
		{ "version pre 01", "apiVersion: kmpkg/v1\nname: a\nversion: 1.2.3-01\n", "MANIFEST_INVALID_VALUE", 3, 10, "/version" },
		{ "version empty pre", "apiVersion: kmpkg/v1\nname: a\nversion: 1.2.3-a..b\n", "MANIFEST_INVALID_VALUE", 3, 10, "/version" },
		{ "version build empty", "apiVersion: kmpkg/v1\nname: a\nversion: 1.2.3+\n", "MANIFEST_INVALID_VALUE", 3, 10, "/version" },
		{ "version huge", "apiVersion: kmpkg/v1\nname: a\nversion: 9007199254740992.0.0\n", "MANIFEST_INVALID_VALUE", 3, 10, "/version" },
		{ "dep name", "dependencies:\n  Json_Helpers: ^1\n", "MANIFEST_INVALID_VALUE", 5, 3, "/dependencies/Json_Helpers" },
		{ "dep self", "dependencies:\n  hello: ^1\n", "MANIFEST_INVALID_VALUE", 5, 3, "/dependencies/hello" },
		{ "entrypoint dotdot", "entrypoint: bin/../../x\n", "MANIFEST_INVALID_VALUE", 4, 13, "/entrypoint" },
		{ "entrypoint absolute", "entrypoint: /usr/bin/x\n", "MANIFEST_INVALID_VALUE", 4, 13, "/entrypoint" },
		{ "command empty", "health_check:\n  command: []\n", "MANIFEST_INVALID_VALUE", 5, 12, "/health_check/command" },
		{ "command dotdot", "health_check:\n  command: [../x]\n", "MANIFEST_INVALID_VALUE", 5, 13, "/health_check/command/0" },
		{ "command absolute", "health_check:\n  command: [/bin/sh, -c, x]\n", "MANIFEST_INVALID_VALUE", 5, 13, "/health_check/command/0" },
		{ "timeout 0", "health_check:\n  command: [x]\n  timeout_ms: 0\n", "MANIFEST_INVALID_VALUE", 6, 15, "/health_check/timeout_ms" },
		{ "timeout big", "health_check:\n  command: [x]\n  timeout_ms: 600001\n", "MANIFEST_INVALID_VALUE", 6, 15, "/health_check/timeout_ms" },
		{ "timeout negative", "health_check:\n  command: [x]\n  timeout_ms: -5\n", "MANIFEST_INVALID_VALUE", 6, 15, "/health_check/timeout_ms" },
		{ "timeout overflow", "health_check:\n  command: [x]\n  timeout_ms: 99999999999999999999999\n", "MANIFEST_INVALID_VALUE", 6, 15, "/health_check/timeout_ms" },
		{ "sha256 short", "artifact: {url: a.kmpkg, sha256: abc, size: 1}\n", "MANIFEST_INVALID_VALUE", 4, 34, "/artifact/sha256" },
		{ "size 0", "artifact: {url: a.kmpkg, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, size: 0}\n", "MANIFEST_INVALID_VALUE", 4, 106, "/artifact/size" },
		{ "url ftp", "artifact: {url: 'ftp://x/y', sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, size: 1}\n", "MANIFEST_INVALID_VALUE", 4, 17, "/artifact/url" },
		{ "url dotdot", "artifact: {url: ../../etc/passwd, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, size: 1}\n", "MANIFEST_INVALID_VALUE", 4, 17, "/artifact/url" },
		{ "mirror relative", "artifact: {url: a.kmpkg, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, size: 1, mirrors: ['https://m/a', a.kmpkg]}\n", "MANIFEST_INVALID_VALUE", 4, 134, "/artifact/mirrors/1" },
		{ "mirror ftp", "artifact: {url: a.kmpkg, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, size: 1, mirrors: ['ftp://m/a']}\n", "MANIFEST_INVALID_VALUE", 4, 119, "/artifact/mirrors/0" },
		{ "mirror file relative", "artifact: {url: a.kmpkg, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, size: 1, mirrors: ['file://m/a']}\n", "MANIFEST_INVALID_VALUE", 4, 119, "/artifact/mirrors/0" },
		{ "mirror empty", "artifact: {url: a.kmpkg, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, size: 1, mirrors: ['']}\n", "MANIFEST_INVALID_VALUE", 4, 119, "/artifact/mirrors/0" },
		{ "17 mirrors", "artifact: {url: a.kmpkg, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, size: 1, mirrors: [http://a, http://a, http://a, http://a, http://a, http://a, http://a, http://a, http://a, http://a, http://a, http://a, http://a, http://a, http://a, http://a, http://a]}\n", "MANIFEST_INVALID_VALUE", 4, 118, "/artifact/mirrors" },
		{ "empty permission", "permissions: [network, '']\n", "MANIFEST_INVALID_VALUE", 4, 24, "/permissions/1" },
		{ "empty tier", "tier: ''\n", "MANIFEST_INVALID_VALUE", 4, 7, "/tier" },
	};

	run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(manifest, artifact_mirrors_in_order)
{
	const char *y = HEAD "artifact:\n  url: https://a.example/x.kmpkg\n"
			"  sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n  size: 3\n"
			"  mirrors: [https://b.example/x.kmpkg, 'http://c.example/x.kmpkg', file:///srv/x.kmpkg]\n";
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_manifest *m = NULL;

	cr_assert_eq(kmpkg_manifest_load_buf(&m, "f.yaml", y, strlen(y), &d), 0);
	cr_assert_eq(d.n, 0, "no warning for mirrors: %s", d.n ? d.v[0].message : "");
	cr_assert_eq(m->artifact.mirrors.n, 3);
	cr_assert_str_eq(m->artifact.mirrors.v[0], "https://b.example/x.kmpkg");
	cr_assert_str_eq(m->artifact.mirrors.v[1], "http://c.example/x.kmpkg");
	cr_assert_str_eq(m->artifact.mirrors.v[2], "file:///srv/x.kmpkg");
	kmpkg_manifest_free(m);
	kmpkg_diags_release(&d);
}

Test(manifest, every_problem_is_reported)
{
	const char *y = "apiVersion: kmpkg/v1\nname: Bad\nversion: x\npermissions: a\nextra: 1\n";
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_manifest *m = NULL;

	cr_assert_eq(kmpkg_manifest_load_buf(&m, "f.yaml", y, strlen(y), &d), KMPKG_EUSAGE);
	cr_assert_null(m);
	cr_assert_eq(kmpkg_diags_count(&d, KMPKG_SEV_ERROR), 3);
	cr_assert_eq(kmpkg_diags_count(&d, KMPKG_SEV_WARNING), 1);
	kmpkg_diags_release(&d);
}

Test(manifest, name_rule)
{
	cr_assert(kmpkg_manifest_name_valid("a"));
	cr_assert(kmpkg_manifest_name_valid("0-a-"));
	cr_assert(kmpkg_manifest_name_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 63 */
	cr_assert_not(kmpkg_manifest_name_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	cr_assert_not(kmpkg_manifest_name_valid(""));
	cr_assert_not(kmpkg_manifest_name_valid("-a"));
	cr_assert_not(kmpkg_manifest_name_valid("a.b"));
	cr_assert_not(kmpkg_manifest_name_valid("A"));
	cr_assert_not(kmpkg_manifest_name_valid(NULL));
}

Test(manifest, missing_file_is_not_found)
{
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_manifest *m = NULL;

	cr_assert_eq(kmpkg_manifest_load_file(&m, "/nonexistent/kmpkg.yaml", &d), KMPKG_ENOTFOUND);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_NOT_FOUND");
	cr_assert_eq(d.n, 0);
	cr_assert_eq(kmpkg_manifest_load_file(&m, "/tmp", &d), KMPKG_ERESOURCE);
	cr_assert_eq(d.n, 0);
}

Test(manifest, wide_mapping_duplicate_is_fast)
{
	struct kmpkg_buf b = KMPKG_BUF_INIT;
	char fld[32];
	int i;

	cr_assert_eq(kmpkg_buf_puts(&b, HEAD "dependencies:\n"), 0);
	for (i = 0; i < 4900; i++)
		cr_assert_eq(kmpkg_buf_printf(&b, "  k%d: \"1\"\n", i), 0);
	cr_assert_eq(kmpkg_buf_puts(&b, "  k4321: \"2\"\n"), 0);
	cr_assert_lt(b.len, KMPKG_MANIFEST_MAX_BYTES);
	snprintf(fld, sizeof(fld), "/dependencies/k4321");
	expect_one_s("4,900 keys", b.ptr, "YAML_DUPLICATE_KEY", 4 + 4900 + 1, 3, fld);
	kmpkg_buf_release(&b);
}
