/*
 * preflight: every diagnostic code, every format, --installed, packages and
 * --changed-since, through the sanitized binary (KMPKG_BIN) with the
 * fixtures in fixtures/preflight/.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct run {
	int status;
	char *out, *err;
	json_t *doc; /* stdout parsed as JSON, or NULL */
};

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = calloc(1, 1 << 18);
	size_t n;

	cr_assert_not_null(f);
	n = fread(s, 1, (1 << 18) - 1, f);
	s[n] = '\0';
	fclose(f);
	return s;
}

/* Runs kmpkg with args (NULL-terminated) in cwd (NULL: the source tree). */
static struct run kmpkg_in(const char *cwd, const char *const *args)
{
	const char *bin = getenv("KMPKG_BIN"), *top = getenv("KMPKG_SRCDIR");
	char dir[] = "/tmp/kmpkg-pft-XXXXXX", out[64], err[64];
	const char *argv[40];
	struct run r;
	pid_t pid;
	int i, st;

	cr_assert_not_null(bin);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(err, sizeof(err), "%s/err", dir);
	argv[0] = bin;
	for (i = 0; args[i] && i < 38; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600), e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(o, 1);
		dup2(e, 2);
		if (chdir(cwd ? cwd : top) != 0)
			_exit(127);
		unsetenv("KMPKG_ROOT");
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	r.status = WEXITSTATUS(st);
	r.out = slurp(out);
	r.err = slurp(err);
	r.doc = json_loads(r.out, 0, NULL);
	unlink(out);
	unlink(err);
	rmdir(dir);
	return r;
}

static struct run kmpkg(const char *const *args)
{
	return kmpkg_in(NULL, args);
}

static void release(struct run *r)
{
	free(r->out);
	free(r->err);
	json_decref(r->doc);
}

#define P(f) "fixtures/preflight/" f
#define HOST "--host", P("host.yaml")

static json_t *diags(const struct run *r)
{
	json_t *d = json_object_get(r->doc, "diagnostics");

	cr_assert(json_is_array(d), "no JSON document: %s / %s", r->out, r->err);
	return d;
}

/* The n-th diagnostic with this code (0-based), or NULL. */
static json_t *find(const struct run *r, const char *code, size_t nth)
{
	json_t *d = diags(r), *x;
	size_t i;

	json_array_foreach(d, i, x)
		if (!strcmp(json_string_value(json_object_get(x, "code")), code) && nth-- == 0)
			return x;
	return NULL;
}

static const char *str(json_t *x, const char *key)
{
	const char *s = json_string_value(json_object_get(x, key));

	return s ? s : "(null)";
}

/* Asserts one finding: code, severity, field, file suffix, line and a
 * substring of next_step. */
static void expect(const struct run *r, const char *code, size_t nth, const char *sev, const char *field,
		   const char *file, int line, const char *next)
{
	json_t *x = find(r, code, nth);
	const char *f;

	cr_assert_not_null(x, "no %s #%zu in %s", code, nth, r->out);
	cr_assert_str_eq(str(x, "severity"), sev);
	cr_assert_str_eq(str(x, "field"), field);
	f = str(x, "file");
	cr_assert(strlen(f) >= strlen(file) && !strcmp(f + strlen(f) - strlen(file), file), "file %s", f);
	cr_assert_eq(json_integer_value(json_object_get(x, "line")), line, "%s line", code);
	cr_assert_gt(json_integer_value(json_object_get(x, "column")), 0);
	cr_assert(strstr(str(x, "next_step"), next) != NULL, "%s next_step: %s", code, str(x, "next_step"));
}

static long count(const struct run *r, const char *key)
{
	return (long)json_integer_value(json_object_get(r->doc, key));
}

/* --- every code --------------------------------------------------------- */

Test(preflight, host_range_unsatisfied_suggests_newest_passing_version)
{
	const char *args[] = { "preflight", "--format", "json", HOST, P("dd-1.0.0.yaml"), P("dd-1.1.3.yaml"),
			       P("dd-1.2.0.yaml"), NULL };
	struct run r = kmpkg(args);

	cr_assert_eq(r.status, 3, "%s", r.err);
	cr_assert_eq(count(&r, "errors"), 1, "%s", r.out);
	expect(&r, "HOST_RANGE_UNSATISFIED", 0, "error", "/host", "dd-1.2.0.yaml", 5,
	       "install datadog-exporter@1.1.3, the newest version whose host range accepts 1.6.0");
	cr_assert_str_eq(str(find(&r, "HOST_RANGE_UNSATISFIED", 0), "required"), ">=2.0.0");
	cr_assert_str_eq(str(find(&r, "HOST_RANGE_UNSATISFIED", 0), "actual"), "1.6.0");
	release(&r);
}

Test(preflight, host_range_unsatisfied_without_alternative)
{
	const char *args[] = { "preflight", "--format", "json", HOST, P("dd-1.2.0.yaml"), NULL };
	struct run r = kmpkg(args);

	cr_assert_eq(r.status, 3);
	expect(&r, "HOST_RANGE_UNSATISFIED", 0, "error", "/host", "dd-1.2.0.yaml", 5,
	       "widen `host` to include 1.6.0 or run on a host within >=2.0.0");
	release(&r);
}

Test(preflight, prerelease_host_passes_with_warning)
{
	const char *lax[] = { "preflight", "--format", "json", "--host", P("host-rc.yaml"), P("prerelease-ok.yaml"), NULL };
	const char *strict[] = { "preflight", "--strict", "--host", P("host-rc.yaml"), P("prerelease-ok.yaml"), NULL };
	struct run r = kmpkg(lax);

	cr_assert_eq(r.status, 0, "%s", r.out);
	cr_assert_eq(count(&r, "errors"), 0);
	cr_assert_eq(count(&r, "warnings"), 1);
	expect(&r, "HOST_PRERELEASE", 0, "warning", "/host", "prerelease-ok.yaml", 5, "judged as host 1.7.0");
	cr_assert_str_eq(str(find(&r, "HOST_PRERELEASE", 0), "actual"), "1.7.0-rc.1");
	release(&r);
	r = kmpkg(strict);
	cr_assert_eq(r.status, 3);
	cr_assert(strstr(r.out, "warning[HOST_PRERELEASE]") != NULL, "%s", r.out);
	release(&r);
}

Test(preflight, prerelease_of_next_major_stays_outside_upper_bound)
{
	const char *args[] = { "preflight", "--format", "json", "--host", P("host-2rc.yaml"), P("upper-bound.yaml"), NULL };
	struct run r = kmpkg(args);

	cr_assert_eq(r.status, 3);
	expect(&r, "HOST_RANGE_UNSATISFIED", 0, "error", "/host", "upper-bound.yaml", 5, "2.0.0-rc.1");
	cr_assert_null(find(&r, "HOST_PRERELEASE", 0));
	release(&r);
}

Test(preflight, api_range_unsatisfied)
{
	const char *args[] = { "preflight", "--format", "json", HOST, P("api-too-new.yaml"), NULL };
	struct run r = kmpkg(args);

	cr_assert_eq(r.status, 3);
	expect(&r, "API_RANGE_UNSATISFIED", 0, "error", "/api", "api-too-new.yaml", 6, "provides API ^3.0.0");
	cr_assert_str_eq(str(find(&r, "API_RANGE_UNSATISFIED", 0), "actual"), "2.3.0");
	release(&r);
}

Test(preflight, range_invalid)
{
	const char *args[] = { "preflight", "--format", "json", HOST, P("range-invalid.yaml"), NULL };
	struct run r = kmpkg(args);

	cr_assert_eq(r.status, 3);
	cr_assert_eq(count(&r, "errors"), 2, "%s", r.out);
	expect(&r, "RANGE_INVALID", 0, "error", "/host", "range-invalid.yaml", 5, "node-semver range");
	expect(&r, "RANGE_INVALID", 1, "error", "/api", "range-invalid.yaml", 6, "node-semver range");
	release(&r);
}

Test(preflight, capability_missing_unless_another_plugin_provides_it)
{
	const char *alone[] = { "preflight", "--format", "json", HOST, P("capability-missing.yaml"), NULL };
	const char *with[] = { "preflight", "--format", "json", HOST, P("capability-missing.yaml"), P("provider.yaml"), NULL };
	struct run r = kmpkg(alone);

	cr_assert_eq(r.status, 3);
	cr_assert_eq(count(&r, "errors"), 1, "%s", r.out);
	expect(&r, "CAPABILITY_MISSING", 0, "error", "/capabilities/requires/1", "capability-missing.yaml", 9,
	       "a plugin that provides exporter.s3");
	release(&r);
	r = kmpkg(with);
	cr_assert_eq(r.status, 0, "%s", r.out);
	release(&r);
}

Test(preflight, permission_not_allowed)
{
	const char *args[] = { "preflight", "--format", "json", HOST, P("permission-not-allowed.yaml"), NULL };
	struct run r = kmpkg(args);

	cr_assert_eq(r.status, 3);
	cr_assert_eq(count(&r, "errors"), 1, "%s", r.out);
	expect(&r, "PERMISSION_NOT_ALLOWED", 0, "error", "/permissions/1", "permission-not-allowed.yaml", 8,
	       "add process_exec to permissions_allowed");
	release(&r);
}

Test(preflight, permission_undeclared)
{
	const char *args[] = { "preflight", "--format", "json", HOST, P("permission-undeclared.yaml"), NULL };
	struct run r = kmpkg(args);

	cr_assert_eq(r.status, 3);
	cr_assert_eq(count(&r, "errors"), 1, "%s", r.out);
	expect(&r, "PERMISSION_UNDECLARED", 0, "error", "/capabilities/requires/1", "permission-undeclared.yaml", 9,
	       "add network to permissions (capability http.client uses it)");
	release(&r);
}

Test(preflight, tier_too_low_and_unknown)
{
	const char *args[] = { "preflight", "--format", "json", HOST, P("tier-too-low.yaml"), P("tier-unknown.yaml"), NULL };
	struct run r = kmpkg(args);

	cr_assert_eq(r.status, 3);
	cr_assert_eq(count(&r, "errors"), 2, "%s", r.out);
	expect(&r, "TIER_TOO_LOW", 0, "error", "/tier", "tier-too-low.yaml", 7, "upgrade the host to tier enterprise");
	expect(&r, "TIER_UNKNOWN", 0, "error", "/tier", "tier-unknown.yaml", 7, "free, pro, team, enterprise");
	release(&r);
}

Test(preflight, tier_too_low_suggests_a_version_for_the_host_tier)
{
	const char *args[] = { "preflight", "--format", "json", HOST, P("index-entry.yaml"), P("dd-1.1.3.yaml"), NULL };
	struct run r = kmpkg(args);

	cr_assert_eq(r.status, 3);
	expect(&r, "TIER_TOO_LOW", 0, "error", "/tier", "index-entry.yaml", 6,
	       "install datadog-exporter@1.1.3, the newest version available for tier team");
	release(&r);
}

Test(preflight, dependency_range_invalid)
{
	const char *args[] = { "preflight", "--format", "json", HOST, P("dep-range-invalid.yaml"), NULL };
	struct run r = kmpkg(args);

	cr_assert_eq(r.status, 3);
	cr_assert_eq(count(&r, "errors"), 1, "%s", r.out);
	expect(&r, "DEPENDENCY_RANGE_INVALID", 0, "error", "/dependencies/json-helpers", "dep-range-invalid.yaml", 9,
	       "\"^1.0.0\"");
	release(&r);
}

Test(preflight, dependency_unresolved_by_the_check_set)
{
	const char *old[] = { "preflight", "--format", "json", HOST, P("dep-unresolved.yaml"), P("json-helpers-1.1.0.yaml"), NULL };
	const char *cur[] = { "preflight", "--format", "json", HOST, P("dep-unresolved.yaml"), P("json-helpers-2.1.0.yaml"), NULL };
	struct run r = kmpkg(old);

	cr_assert_eq(r.status, 3);
	cr_assert_eq(count(&r, "errors"), 2, "%s", r.out);
	expect(&r, "DEPENDENCY_UNRESOLVED", 0, "error", "/dependencies/json-helpers", "dep-unresolved.yaml", 9,
	       "widen the range to accept 1.1.0");
	cr_assert_str_eq(str(find(&r, "DEPENDENCY_UNRESOLVED", 0), "actual"), "1.1.0");
	expect(&r, "DEPENDENCY_UNRESOLVED", 1, "error", "/dependencies/yaml-helpers", "dep-unresolved.yaml", 10,
	       "pass --installed");
	release(&r);
	r = kmpkg(cur);
	cr_assert_eq(r.status, 3);
	cr_assert_eq(count(&r, "errors"), 1, "%s", r.out);
	expect(&r, "DEPENDENCY_UNRESOLVED", 0, "error", "/dependencies/yaml-helpers", "dep-unresolved.yaml", 10,
	       "yaml-helpers");
	release(&r);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	fclose(f);
}

static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

#define HELPER(name, version)                                                                          \
	"apiVersion: kmpkg/v1\nname: " name "\nversion: " version "\nhost: \">=1.0.0\"\ntier: free\n"

Test(preflight, installed_set_resolves_dependencies)
{
	char root[] = "/tmp/kmpkg-pft-root-XXXXXX", path[512];
	const char *without[] = { "preflight", "--format", "json", HOST, P("dep-unresolved.yaml"), NULL };
	const char *args[] = { "--root", root, "preflight", "--format", "json", "--installed", HOST,
			       P("dep-unresolved.yaml"), NULL };
	const char *replaced[] = { "--root", root, "preflight", "--format", "json", "--installed", HOST,
				   P("dep-unresolved.yaml"), P("json-helpers-1.1.0.yaml"), NULL };
	struct run r;

	cr_assert_not_null(mkdtemp(root));
	sh("mkdir -p %s/plugins/json-helpers %s/plugins/yaml-helpers %s/plugins/broken", root, root, root);
	snprintf(path, sizeof(path), "%s/plugins/json-helpers/kmpkg.yaml", root);
	write_file(path, HELPER("json-helpers", "2.0.1"));
	snprintf(path, sizeof(path), "%s/plugins/yaml-helpers/kmpkg.yaml", root);
	write_file(path, HELPER("yaml-helpers", "1.4.0"));
	snprintf(path, sizeof(path), "%s/plugins/broken/kmpkg.yaml", root);
	write_file(path, "name: [\n");

	r = kmpkg(without);
	cr_assert_eq(r.status, 3);
	cr_assert_eq(count(&r, "errors"), 2);
	release(&r);
	r = kmpkg(args);
	cr_assert_eq(r.status, 0, "%s %s", r.out, r.err);
	cr_assert_eq(count(&r, "errors"), 0);
	release(&r);
	/* json-helpers 1.1.0 in the check set replaces the installed 2.0.1. */
	r = kmpkg(replaced);
	cr_assert_eq(r.status, 3);
	expect(&r, "DEPENDENCY_UNRESOLVED", 0, "error", "/dependencies/json-helpers", "dep-unresolved.yaml", 9, "1.1.0");
	cr_assert_null(find(&r, "DEPENDENCY_UNRESOLVED", 1));
	release(&r);
	sh("rm -rf %s", root);
}

Test(preflight, host_profile_default_and_missing)
{
	char root[] = "/tmp/kmpkg-pft-root-XXXXXX";
	const char *args[] = { "--root", root, "--json", "preflight", P("ok.yaml"), NULL };
	const char *given[] = { "--json", "preflight", "--host", "no/such/host.yaml", P("ok.yaml"), NULL };
	const char *top = getenv("KMPKG_SRCDIR");
	json_t *e;
	struct run r;

	cr_assert_not_null(mkdtemp(root));
	r = kmpkg(args);
	cr_assert_eq(r.status, 2);
	e = json_object_get(r.doc, "error");
	cr_assert_str_eq(str(e, "code"), "E_HOST_PROFILE_MISSING");
	cr_assert(strstr(str(e, "message"), "/kmpkg/host.yaml") != NULL, "%s", r.out);
	cr_assert(strstr(str(e, "next_step"), "--host") != NULL);
	release(&r);
	r = kmpkg(given);
	cr_assert_eq(r.status, 2);
	cr_assert_str_eq(str(json_object_get(r.doc, "error"), "code"), "E_HOST_PROFILE_MISSING");
	release(&r);

	sh("mkdir -p %s/kmpkg && cp %s/fixtures/preflight/host-rc.yaml %s/kmpkg/host.yaml", root, top, root);
	r = kmpkg(args);
	cr_assert_eq(r.status, 0, "%s", r.out);
	cr_assert(strstr(str(r.doc, "host"), "/kmpkg/host.yaml") != NULL);
	cr_assert_not_null(find(&r, "HOST_PRERELEASE", 0), "the default host profile was not used: %s", r.out);
	release(&r);
	sh("rm -rf %s", root);
}

Test(preflight, schema_findings_come_first_and_stop_host_checks)
{
	const char *args[] = { "preflight", "--format", "json", HOST, "fixtures/manifests/bad-name.yaml", NULL };
	struct run r = kmpkg(args);

	cr_assert_eq(r.status, 3);
	cr_assert_eq(count(&r, "errors"), 1, "%s", r.out);
	expect(&r, "MANIFEST_INVALID_VALUE", 0, "error", "/name", "bad-name.yaml", 2, "lowercase");
	release(&r);
}

Test(preflight, invalid_host_profile_is_a_finding)
{
	const char *args[] = { "preflight", "--format", "json", "--host", P("host-invalid.yaml"), P("ok.yaml"), NULL };
	struct run r = kmpkg(args);

	cr_assert_eq(r.status, 3);
	expect(&r, "HOST_INVALID_VALUE", 0, "error", "/version", "host-invalid.yaml", 2, "1.6.0");
	release(&r);
}

Test(preflight, package_manifest_is_checked)
{
	char dir[] = "/tmp/kmpkg-pft-pkg-XXXXXX";
	const char *top = getenv("KMPKG_SRCDIR");
	char pkg[128];
	const char *pack[] = { "pack", NULL, "-o", pkg, NULL };
	const char *args[] = { "preflight", "--format", "json", HOST, pkg, NULL };
	char src[128];
	struct run r;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/p", dir);
	snprintf(pkg, sizeof(pkg), "%s/p.kmpkg", dir);
	sh("cp -r %s/fixtures/plugins/hello-1.0.0 %s && sed -i 's/^tier: free/tier: enterprise/' %s/kmpkg.yaml",
	   top, src, src);
	pack[1] = src;
	r = kmpkg(pack);
	cr_assert_eq(r.status, 0, "%s", r.err);
	release(&r);
	r = kmpkg(args);
	cr_assert_eq(r.status, 3, "%s %s", r.out, r.err);
	expect(&r, "TIER_TOO_LOW", 0, "error", "/tier", "p.kmpkg(kmpkg.yaml)", 7, "enterprise");
	release(&r);
	sh("rm -rf %s", dir);
}

/* --- formats -------------------------------------------------------------- */

Test(preflight, format_text)
{
	const char *args[] = { "preflight", HOST, P("ok.yaml"), P("api-too-new.yaml"), NULL };
	struct run r = kmpkg(args);

	cr_assert_eq(r.status, 3);
	cr_assert(strstr(r.out, "fixtures/preflight/api-too-new.yaml:6:6: error[API_RANGE_UNSATISFIED]: ") == r.out,
		  "%s", r.out);
	cr_assert(strstr(r.out, "\n  required: ^3.0.0; actual: 2.3.0\n") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "\n  next step: build the plugin against a provided API") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "2 files checked: 1 error, 0 warnings\n") != NULL, "%s", r.out);
	release(&r);
}

Test(preflight, format_json_document)
{
	const char *args[] = { "--json", "preflight", HOST, P("ok.yaml"), P("tier-too-low.yaml"), NULL };
	struct run r = kmpkg(args);
	json_t *d0;

	cr_assert_eq(r.status, 3);
	cr_assert_not_null(r.doc, "%s", r.out);
	cr_assert_str_eq(str(r.doc, "host"), P("host.yaml"));
	cr_assert_eq(json_array_size(json_object_get(r.doc, "files")), 2);
	cr_assert_eq(json_array_size(json_object_get(r.doc, "skipped")), 0);
	cr_assert(json_is_null(json_object_get(r.doc, "changed_since")));
	cr_assert_eq(count(&r, "errors"), 1);
	cr_assert_eq(count(&r, "warnings"), 0);
	d0 = json_array_get(diags(&r), 0);
	cr_assert_str_eq(str(d0, "code"), "TIER_TOO_LOW");
	cr_assert_str_eq(str(d0, "required"), "enterprise");
	cr_assert_str_eq(str(d0, "actual"), "team");
	cr_assert_eq(json_integer_value(json_object_get(d0, "column")), 7);
	release(&r);
}

Test(preflight, format_github)
{
	const char *args[] = { "preflight", "--format", "github", HOST, P("permission-undeclared.yaml"), NULL };
	struct run r = kmpkg(args);

	cr_assert_eq(r.status, 3);
	cr_assert(strstr(r.out, "::error file=fixtures/preflight/permission-undeclared.yaml,line=9,col=30,"
				"title=PERMISSION_UNDECLARED::capability 'http.client' implies permission 'network'") == r.out,
		  "%s", r.out);
	cr_assert(strstr(r.out, "next step: add network to permissions") != NULL);
	release(&r);
}

static int validate_sarif(const char *file)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
		 "python3 -c 'import json, sys, jsonschema\n"
		 "s = json.load(open(\"/work/shared/conformance/sarif-schema-2.1.0.json\"))\n"
		 "errs = list(jsonschema.Draft4Validator(s).iter_errors(json.load(open(sys.argv[1]))))\n"
		 "[print(e.message, file=sys.stderr) for e in errs[:3]]\n"
		 "sys.exit(1 if errs else 0)' %s",
		 file);
	return system(cmd);
}

Test(preflight, format_sarif_validates_against_the_schema)
{
	const char *args[] = { "preflight", "--format", "sarif", "--host", P("host-rc.yaml"), P("range-invalid.yaml"),
			       P("prerelease-ok.yaml"), P("capability-missing.yaml"), P("ok.yaml"), NULL };
	char dir[] = "/tmp/kmpkg-pft-sarif-XXXXXX", file[128], bad[128];
	struct run r = kmpkg(args);
	json_t *run, *rules, *res, *loc;
	char *broken;
	FILE *f;

	cr_assert_eq(r.status, 3);
	cr_assert_not_null(r.doc, "%s", r.out);
	cr_assert_str_eq(str(r.doc, "version"), "2.1.0");
	cr_assert(strstr(str(r.doc, "$schema"), "sarif-schema-2.1.0.json") != NULL);
	run = json_array_get(json_object_get(r.doc, "runs"), 0);
	cr_assert_str_eq(str(json_object_get(json_object_get(run, "tool"), "driver"), "name"), "kmpkg");
	rules = json_object_get(json_object_get(json_object_get(run, "tool"), "driver"), "rules");
	cr_assert_eq(json_array_size(rules), 3, "one rule per code used");
	cr_assert_eq(json_array_size(json_object_get(run, "results")), 6);
	res = json_array_get(json_object_get(run, "results"), 0);
	cr_assert_str_eq(str(res, "ruleId"), "RANGE_INVALID");
	cr_assert_str_eq(str(res, "level"), "error");
	loc = json_object_get(json_array_get(json_object_get(res, "locations"), 0), "physicalLocation");
	cr_assert_str_eq(str(json_object_get(loc, "artifactLocation"), "uri"), "fixtures/preflight/range-invalid.yaml");
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(loc, "region"), "startLine")), 5);
	cr_assert_str_eq(str(json_object_get(res, "properties"), "field"), "/host");
	cr_assert_str_eq(str(json_array_get(json_object_get(run, "results"), 2), "ruleId"), "HOST_PRERELEASE");
	cr_assert_str_eq(str(json_array_get(json_object_get(run, "results"), 2), "level"), "warning");

	cr_assert_not_null(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/out.sarif", dir);
	snprintf(bad, sizeof(bad), "%s/bad.sarif", dir);
	write_file(file, r.out);
	cr_assert_eq(validate_sarif(file), 0, "kmpkg's SARIF does not validate");
	/* The validator itself must be able to say no. */
	json_object_set_new(res, "level", json_string("fatal"));
	broken = json_dumps(r.doc, 0);
	f = fopen(bad, "w");
	fputs(broken, f);
	fclose(f);
	free(broken);
	cr_assert_neq(validate_sarif(bad), 0);
	unlink(file);
	unlink(bad);
	rmdir(dir);
	release(&r);
}

Test(preflight, usage_errors)
{
	const char *fmt[] = { "preflight", "--format", "xml", HOST, P("ok.yaml"), NULL };
	const char *none[] = { "preflight", HOST, NULL };
	struct run r = kmpkg(fmt);

	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "sarif") != NULL, "%s", r.err);
	release(&r);
	r = kmpkg(none);
	cr_assert_eq(r.status, 2);
	release(&r);
}

/* --- --changed-since ------------------------------------------------------ */

static const char *change_of(const struct run *r, const char *file)
{
	return str(json_object_get(r->doc, "changes"), file);
}

Test(preflight, changed_since_checks_changed_manifests_and_their_dependents)
{
	char dir[] = "/tmp/kmpkg-pft-git-XXXXXX", host[512];
	const char *top = getenv("KMPKG_SRCDIR");
	const char *args[] = { "preflight", "--format", "json", "--host", host, "--changed-since", "main",
			       "plugins/dependent.yaml", "plugins/json-helpers-1.1.0.yaml", "plugins/ok.yaml",
			       "plugins/tier-too-low.yaml", "plugins/provider.yaml", "plugins/api-too-new.yaml", NULL };
	const char *all[] = { "preflight", "--format", "json", "--host", host, "plugins/dependent.yaml",
			      "plugins/ok.yaml", "plugins/tier-too-low.yaml", NULL };
	struct run r;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(host, sizeof(host), "%s/fixtures/preflight/host.yaml", top);
	sh("cd %s && git init -q -b main . && git config user.email ci@example.com && git config user.name ci && "
	   "mkdir plugins && for f in json-helpers-1.1.0 dependent ok tier-too-low api-too-new; do "
	   "cp %s/fixtures/preflight/$f.yaml plugins/; done && git add -A && git commit -qm base",
	   dir, top);
	/* main moves on after the branch point: its changes are not ours. */
	sh("cd %s && git branch feature && echo '# later' >> plugins/ok.yaml && git commit -qam later && "
	   "git checkout -q feature",
	   dir);
	/* On the branch: a commit modifying json-helpers, an untracked new
	 * plugin, a staged change to api-too-new. ok and tier-too-low stay. */
	sh("cd %s && sed -i 's/^description:.*/description: changed/' plugins/json-helpers-1.1.0.yaml && "
	   "git commit -qam change && cp %s/fixtures/preflight/provider.yaml plugins/ && "
	   "echo '# note' >> plugins/api-too-new.yaml && git add plugins/api-too-new.yaml",
	   dir, top);
	r = kmpkg_in(dir, args);
	cr_assert_eq(r.status, 3, "%s %s", r.out, r.err);
	cr_assert_str_eq(change_of(&r, "plugins/json-helpers-1.1.0.yaml"), "modified");
	cr_assert_str_eq(change_of(&r, "plugins/provider.yaml"), "added");
	cr_assert_str_eq(change_of(&r, "plugins/api-too-new.yaml"), "modified");
	cr_assert_str_eq(change_of(&r, "plugins/dependent.yaml"), "depends-on-changed");
	cr_assert_str_eq(change_of(&r, "plugins/ok.yaml"), "unchanged");
	cr_assert_str_eq(change_of(&r, "plugins/tier-too-low.yaml"), "unchanged");
	cr_assert_eq(json_array_size(json_object_get(r.doc, "files")), 4);
	cr_assert_eq(json_array_size(json_object_get(r.doc, "skipped")), 2);
	/* Only api-too-new fails; tier-too-low would, but is not checked. */
	cr_assert_eq(count(&r, "errors"), 1, "%s", r.out);
	cr_assert_not_null(find(&r, "API_RANGE_UNSATISFIED", 0));
	cr_assert_null(find(&r, "TIER_TOO_LOW", 0));
	release(&r);

	/* Deleting json-helpers makes its dependent fail; nothing else changed. */
	sh("cd %s && git reset -q --hard && rm plugins/provider.yaml && git rm -q plugins/json-helpers-1.1.0.yaml && "
	   "git commit -qm drop",
	   dir);
	r = kmpkg_in(dir, all);
	cr_assert_eq(r.status, 3); /* without --changed-since: everything, tier-too-low too */
	cr_assert_not_null(find(&r, "TIER_TOO_LOW", 0));
	release(&r);
	{
		const char *since[] = { "preflight", "--format", "json", "--host", host, "--changed-since", "main",
					"plugins/dependent.yaml", "plugins/ok.yaml", "plugins/tier-too-low.yaml", NULL };

		r = kmpkg_in(dir, since);
		cr_assert_eq(r.status, 3, "%s", r.out);
		cr_assert_str_eq(change_of(&r, "plugins/dependent.yaml"), "depends-on-changed");
		cr_assert_eq(json_array_size(json_object_get(r.doc, "files")), 1);
		cr_assert_eq(count(&r, "errors"), 1);
		expect(&r, "DEPENDENCY_UNRESOLVED", 0, "error", "/dependencies/json-helpers", "dependent.yaml", 9,
		       "json-helpers");
		release(&r);
	}
	sh("rm -rf %s", dir);
}

Test(preflight, changed_since_errors)
{
	char dir[] = "/tmp/kmpkg-pft-git-XXXXXX", host[512];
	const char *top = getenv("KMPKG_SRCDIR");
	const char *args[] = { "--json", "preflight", "--host", host, "--changed-since", "origin/main", "ok.yaml", NULL };
	struct run r;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(host, sizeof(host), "%s/fixtures/preflight/host.yaml", top);
	sh("cp %s/fixtures/preflight/ok.yaml %s/", top, dir);
	r = kmpkg_in(dir, args);
	cr_assert_eq(r.status, 2, "%s", r.out);
	cr_assert_str_eq(str(json_object_get(r.doc, "error"), "code"), "E_GIT_REPO_NOT_FOUND");
	release(&r);
	sh("cd %s && git init -q -b main . && git config user.email ci@example.com && git config user.name ci && "
	   "git add -A && git commit -qm base",
	   dir);
	r = kmpkg_in(dir, args);
	cr_assert_eq(r.status, 2, "%s", r.out);
	cr_assert_str_eq(str(json_object_get(r.doc, "error"), "code"), "E_GIT_REV_NOT_FOUND");
	cr_assert(strstr(str(json_object_get(r.doc, "error"), "next_step"), "fetch-depth: 0") != NULL);
	release(&r);
	sh("rm -rf %s", dir);
}
