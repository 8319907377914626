/* engine_preflight: the verify phase runs preflight (host range, api, tier,
 * capabilities, permissions) before anything reaches the store; an
 * incompatible package ends the transaction aborted with exit 3, and
 * permissions follow least privilege (--allow-permission grants, recorded). */
#include "kmfix.h"

static char *W, *R; /* work dir with packages, root */

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

TestSuite(engine_preflight, .init = setup, .fini = teardown, .timeout = 60);

#define HOST_YAML                                                                                         \
	"host: km\nversion: 1.6.0\napi: [2.3.0]\ntier: team\ntiers: [free, pro, team, enterprise]\n"      \
	"capabilities: [message.stream, http.client]\npermissions_allowed: [network, filesystem_read]\n"

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	fclose(f);
}

/* <root>/kmpkg/host.yaml = the profile above. */
static void host_profile(void)
{
	char *dir = fx_path(R, "kmpkg"), *p = fx_path(R, "kmpkg/host.yaml");

	mkdir(R, 0755);
	mkdir(dir, 0755);
	write_file(p, HOST_YAML);
	free(dir);
	free(p);
}

static json_t *json_of(const char *s)
{
	json_error_t je;
	json_t *j = json_loads(s, 0, &je);

	cr_assert_not_null(j, "not JSON: %s", s);
	return j;
}

static const char *jstr(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Runs args (with --json) expecting exit `want`; returns the error object
 * of the JSON document (a new reference) when want != 0. */
static json_t *run_err(int want, const char *const *args)
{
	const char *argv[24];
	struct kres r;
	json_t *doc, *err = NULL;
	int n = 0;

	argv[n++] = "--json";
	while (*args && n < 23)
		argv[n++] = *args++;
	argv[n] = NULL;
	r = fx_runv(R, NULL, argv);
	cr_assert_eq(r.status, want, "kmpkg %s: status %d, want %d; out: %s err: %s", argv[1], r.status, want,
		     r.out, r.err);
	if (want != 0) {
		doc = json_of(r.out);
		err = json_incref(json_object_get(doc, "error"));
		cr_assert_not_null(err, "%s", r.out);
		json_decref(doc);
	}
	fx_free(&r);
	return err;
}

#define RUN(want, ...) run_err(want, (const char *const[]){ __VA_ARGS__, NULL })

/* The transaction with correlation id `id` via `kmpkg --json show`. */
static json_t *show(const char *id)
{
	struct kres r = fx_run(R, NULL, "--json", "show", id, NULL);
	json_t *doc;

	cr_assert_eq(r.status, 0, "%s", r.err);
	doc = json_of(r.out);
	fx_free(&r);
	return doc;
}

/* The findings of the verify end event of a `show` document. */
static const json_t *verify_findings(const json_t *txn)
{
	const json_t *ev;
	size_t i;

	json_array_foreach(json_object_get(txn, "journal"), i, ev) {
		const char *phase = jstr(ev, "phase"), *event = jstr(ev, "event");

		if (phase && event && !strcmp(phase, "verify") && !strcmp(event, "end"))
			return json_object_get(ev, "findings");
	}
	return NULL;
}

static bool has_finding(const json_t *findings, const char *code, const char *severity)
{
	const json_t *f;
	size_t i;

	json_array_foreach(findings, i, f)
		if (!strcmp(jstr(f, "code"), code) && !strcmp(jstr(f, "severity"), severity))
			return true;
	return false;
}

/* Installs a compatible plugin so that later failures have something to keep. */
static void base_install(void)
{
	char *p = fx_pkg(W, "base", "1.0.0", TOOL_OK, "host: \">=1.4.0 <2.0.0\"\napi: \"^2.1.0\"\ntier: free\n");

	fx_ok(0, R, NULL, "install", p, NULL);
	free(p);
}

/* Nothing of the aborted transaction is visible: plugins -> generation 1
 * with base only, the store holds base only, no staging, outcome aborted. */
static void assert_unchanged(const char *id, const char *code)
{
	char *link = fx_readlink(R, "plugins"), *p;
	json_t *txn = show(id);

	cr_assert_str_eq(link, "kmpkg/generations/1");
	p = fx_path(R, "kmpkg/store");
	cr_assert_eq(fx_count(p), 1, "a store entry was added");
	free(p);
	p = fx_path(R, "kmpkg/tmp");
	cr_assert_eq(fx_count(p), 0, "staging left behind");
	free(p);
	p = fx_path(R, "kmpkg/generations");
	cr_assert_eq(fx_count(p), 2, "a generation was added");
	free(p);
	cr_assert_str_eq(jstr(txn, "outcome"), "aborted");
	cr_assert_str_eq(jstr(txn, "phase"), "verify");
	cr_assert_str_eq(jstr(txn, "code"), code);
	cr_assert_eq(json_integer_value(json_object_get(txn, "exit")), 3);
	cr_assert_eq(fx_meta(R, "active"), 1);
	fx_check_invariants(R);
	free(link);
	json_decref(txn);
}

Test(engine_preflight, host_range_mismatch_aborts_and_changes_nothing)
{
	char *p;
	json_t *err, *txn;

	host_profile();
	base_install();
	p = fx_pkg(W, "bar", "1.0.0", TOOL_OK, "host: \">=2.0.0\"\n");
	err = RUN(3, "install", "--correlation-id", "host-range", p);
	cr_assert_str_eq(jstr(err, "code"), "E_HOST_RANGE_UNSATISFIED");
	cr_assert_str_eq(jstr(err, "field"), "/host");
	cr_assert(strstr(jstr(err, "message"), "kmpkg.yaml:") != NULL, "%s", jstr(err, "message"));
	cr_assert(strstr(jstr(err, "message"), ">=2.0.0") != NULL, "%s", jstr(err, "message"));
	cr_assert(strstr(jstr(err, "message"), "1.6.0") != NULL, "%s", jstr(err, "message"));
	cr_assert(strstr(jstr(err, "next_step"), "1.6.0") != NULL, "%s", jstr(err, "next_step"));
	assert_unchanged("host-range", "E_HOST_RANGE_UNSATISFIED");
	txn = show("host-range");
	cr_assert(has_finding(verify_findings(txn), "HOST_RANGE_UNSATISFIED", "error"));
	cr_assert_null(fx_get(R, KMPKG_DB_INSTALLED, "bar"));
	json_decref(txn);
	json_decref(err);
	free(p);
}

Test(engine_preflight, api_mismatch_and_tier_too_high)
{
	char *a, *t, *u;
	json_t *err;

	host_profile();
	base_install();
	a = fx_pkg(W, "apiv3", "1.0.0", TOOL_OK, "api: \"^3.0.0\"\n");
	err = RUN(3, "install", "--correlation-id", "api", a);
	cr_assert_str_eq(jstr(err, "code"), "E_API_RANGE_UNSATISFIED");
	cr_assert_str_eq(jstr(err, "field"), "/api");
	assert_unchanged("api", "E_API_RANGE_UNSATISFIED");
	json_decref(err);

	t = fx_pkg(W, "ent", "1.0.0", TOOL_OK, "tier: enterprise\n");
	err = RUN(3, "install", "--correlation-id", "tier2", t);
	cr_assert_str_eq(jstr(err, "code"), "E_TIER_TOO_LOW");
	cr_assert_str_eq(jstr(err, "field"), "/tier");
	cr_assert(strstr(jstr(err, "message"), "enterprise") != NULL);
	assert_unchanged("tier2", "E_TIER_TOO_LOW");
	json_decref(err);

	/* http.client implies network, which the manifest must declare. */
	u = fx_pkg(W, "undecl", "1.0.0", TOOL_OK, "capabilities:\n  requires: [http.client]\n");
	err = RUN(3, "install", "--correlation-id", "undeclared", u);
	cr_assert_str_eq(jstr(err, "code"), "E_PERMISSION_UNDECLARED");
	assert_unchanged("undeclared", "E_PERMISSION_UNDECLARED");
	json_decref(err);
	free(a);
	free(t);
	free(u);
}

Test(engine_preflight, capability_from_the_same_transaction_or_installed)
{
	char *needs, *prov, *needs2;
	json_t *err, *txn;

	host_profile();
	base_install();
	needs = fx_pkg(W, "needs", "1.0.0", TOOL_OK, "capabilities:\n  requires: [json.helpers]\n");
	prov = fx_pkg(W, "prov", "1.0.0", TOOL_OK, "capabilities:\n  provides: [json.helpers]\n");
	err = RUN(3, "install", "--correlation-id", "cap-missing", needs);
	cr_assert_str_eq(jstr(err, "code"), "E_CAPABILITY_MISSING");
	cr_assert_str_eq(jstr(err, "field"), "/capabilities/requires/0");
	assert_unchanged("cap-missing", "E_CAPABILITY_MISSING");
	json_decref(err);

	/* Provided by another package of the same transaction. */
	json_decref(RUN(0, "install", "--correlation-id", "cap-together", needs, prov));
	txn = show("cap-together");
	cr_assert_str_eq(jstr(txn, "outcome"), "committed");
	json_decref(txn);

	/* Provided by an installed plugin the transaction does not replace. */
	needs2 = fx_pkg(W, "needs", "1.1.0", TOOL_OK, "capabilities:\n  requires: [json.helpers]\n");
	json_decref(RUN(0, "update", needs2));
	fx_check_invariants(R);
	free(needs);
	free(prov);
	free(needs2);
}

/* NAME's installed record: VERSION and, in order, the granted permissions
 * (NULL-terminated). */
static const char *const secrets[] = { "secrets", NULL };
static const char *const both[] = { "secrets", "process_exec", NULL };

static void expect_installed(const char *name, const char *version, const char *const *grants)
{
	json_t *rec = fx_get(R, KMPKG_DB_INSTALLED, name), *g;
	size_t i;

	cr_assert_not_null(rec, "%s is not installed", name);
	cr_assert_str_eq(jstr(rec, "version"), version);
	g = json_object_get(rec, "granted_permissions");
	for (i = 0; grants[i]; i++)
		cr_assert_str_eq(json_string_value(json_array_get(g, i)), grants[i]);
	cr_assert_eq(json_array_size(g), i, "%s holds %zu grants, expected %zu", name, json_array_size(g), i);
	json_decref(rec);
}

Test(engine_preflight, permission_needs_a_grant_and_updates_inherit_it)
{
	char *p1, *p11, *p12;
	json_t *err, *txn, *g;
	struct kres r;

	host_profile();
	base_install();
	/* network is allowed by the host; secrets is not. */
	p1 = fx_pkg(W, "vault", "1.0.0", TOOL_OK, "permissions: [network, secrets]\n");
	err = RUN(3, "install", "--correlation-id", "perm-denied", p1);
	cr_assert_str_eq(jstr(err, "code"), "E_PERMISSION_NOT_GRANTED");
	cr_assert_str_eq(jstr(err, "field"), "/permissions/1");
	cr_assert(strstr(jstr(err, "message"), "'secrets'") != NULL, "%s", jstr(err, "message"));
	cr_assert(strstr(jstr(err, "next_step"), "kmpkg install --allow-permission secrets ") != NULL, "%s",
		  jstr(err, "next_step"));
	cr_assert_null(strstr(jstr(err, "next_step"), "--allow-permission network"), "%s", jstr(err, "next_step"));
	assert_unchanged("perm-denied", "E_PERMISSION_NOT_GRANTED");
	json_decref(err);

	json_decref(RUN(0, "install", "--correlation-id", "perm-granted", "--allow-permission", "secrets", p1));
	/* Only what the host does not allow is a grant. */
	expect_installed("vault", "1.0.0", secrets);
	txn = fx_get(R, KMPKG_DB_TXNS, "perm-granted");
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(txn, "allowed_permissions"), 0)),
			 "secrets");
	g = json_object_get(json_object_get(txn, "granted"), "vault");
	cr_assert_eq(json_array_size(g), 1);
	cr_assert_str_eq(json_string_value(json_array_get(g, 0)), "secrets");
	json_decref(txn);
	r = fx_run(R, NULL, "info", "vault", NULL);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "granted:       secrets\n") != NULL, "%s", r.out);
	fx_free(&r);

	/* The update inherits the grant. */
	p11 = fx_pkg(W, "vault", "1.1.0", TOOL_OK, "permissions: [network, secrets]\n");
	json_decref(RUN(0, "update", p11));

	/* A new elevated permission needs the flag again, and only it is named. */
	p12 = fx_pkg(W, "vault", "1.2.0", TOOL_OK, "permissions: [secrets, process_exec]\n");
	err = RUN(3, "update", "--correlation-id", "perm-new", p12);
	cr_assert_str_eq(jstr(err, "code"), "E_PERMISSION_NOT_GRANTED");
	cr_assert(strstr(jstr(err, "message"), "'process_exec'") != NULL, "%s", jstr(err, "message"));
	cr_assert(strstr(jstr(err, "next_step"), "kmpkg update --allow-permission process_exec ") != NULL, "%s",
		  jstr(err, "next_step"));
	cr_assert_null(strstr(jstr(err, "next_step"), "allow-permission secrets"), "%s", jstr(err, "next_step"));
	json_decref(err);
	expect_installed("vault", "1.1.0", secrets);

	json_decref(RUN(0, "update", "--allow-permission", "process_exec", p12));
	expect_installed("vault", "1.2.0", both);
	fx_check_invariants(R);
	free(p1);
	free(p11);
	free(p12);
}

Test(engine_preflight, grant_of_a_rolled_back_update_is_not_kept)
{
	char *p1, *p2;

	host_profile();
	p1 = fx_pkg(W, "vault", "1.0.0", TOOL_OK, "permissions: [secrets]\n");
	p2 = fx_pkg(W, "vault", "2.0.0", TOOL_FAIL, "permissions: [secrets, process_exec]\n");
	json_decref(RUN(0, "install", "--allow-permission", "secrets", p1));
	json_decref(RUN(6, "update", "--allow-permission", "process_exec", p2));
	expect_installed("vault", "1.0.0", secrets);
	fx_check_invariants(R);
	free(p1);
	free(p2);
}

/* A generation records the grants its plugins held when it became
 * known-good: re-activating it brings a removed plugin back with them, and
 * a plugin installed now keeps its own. */
Test(engine_preflight, rollback_restores_the_grants_of_a_removed_plugin)
{
	char *p1, *p11;

	host_profile();
	p1 = fx_pkg(W, "vault", "1.0.0", TOOL_OK, "permissions: [secrets]\n");
	p11 = fx_pkg(W, "vault", "1.1.0", TOOL_OK, "permissions: [secrets]\n");
	json_decref(RUN(0, "install", "--allow-permission", "secrets", p1));
	json_decref(RUN(0, "remove", "vault"));
	cr_assert_null(fx_get(R, KMPKG_DB_INSTALLED, "vault"), "remove drops the record and its grants");

	/* Back to the generation with vault in it. */
	json_decref(RUN(0, "rollback"));
	expect_installed("vault", "1.0.0", secrets);
	/* So an update needs no flag again. */
	json_decref(RUN(0, "update", p11));
	expect_installed("vault", "1.1.0", secrets);
	fx_check_invariants(R);
	free(p1);
	free(p11);
}

Test(engine_preflight, no_host_profile_warns_and_keeps_least_privilege)
{
	char *p, *q;
	struct kres r;
	json_t *txn, *err;

	/* No profile: host range, api, tier and capabilities are not judged. */
	p = fx_pkg(W, "free", "1.0.0", TOOL_OK,
		   "host: \">=9.0.0\"\napi: \"^9.0.0\"\ncapabilities:\n  requires: [nowhere.cap]\n");
	r = fx_run(R, NULL, "install", "--correlation-id", "no-host", p, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.err, "warning[NO_HOST_PROFILE]") != NULL, "%s", r.err);
	fx_free(&r);
	txn = show("no-host");
	cr_assert_str_eq(jstr(txn, "outcome"), "committed");
	cr_assert(has_finding(verify_findings(txn), "NO_HOST_PROFILE", "warning"));
	cr_assert_str_eq(jstr(json_array_get(json_object_get(txn, "warnings"), 0), "code"), "NO_HOST_PROFILE");
	json_decref(txn);

	/* ... but nothing is pre-allowed: even network needs a grant. */
	q = fx_pkg(W, "net", "1.0.0", TOOL_OK, "permissions: [network]\n");
	err = RUN(3, "install", q);
	cr_assert_str_eq(jstr(err, "code"), "E_PERMISSION_NOT_GRANTED");
	cr_assert(strstr(jstr(err, "next_step"), "--allow-permission network") != NULL);
	json_decref(err);
	json_decref(RUN(0, "install", "--allow-permission", "network", q));
	fx_check_invariants(R);
	free(p);
	free(q);
}

Test(engine_preflight, host_option_dry_run_and_invalid_profile)
{
	char *p, *hp, *bad, *store;
	json_t *err;

	base_install(); /* no profile in the root: passes with a warning */
	hp = fx_path(W, "other-host.yaml");
	write_file(hp, HOST_YAML);
	p = fx_pkg(W, "bar", "1.0.0", TOOL_OK, "host: \">=2.0.0\"\n");

	err = RUN(3, "install", "--host", hp, p);
	cr_assert_str_eq(jstr(err, "code"), "E_HOST_RANGE_UNSATISFIED");
	json_decref(err);

	/* --dry-run runs the same checks and writes nothing. */
	store = fx_path(R, "kmpkg/store");
	err = RUN(3, "install", "--dry-run", "--host", hp, p);
	cr_assert_str_eq(jstr(err, "code"), "E_HOST_RANGE_UNSATISFIED");
	cr_assert_eq(fx_count(store), 1);
	json_decref(err);

	err = RUN(2, "install", "--host", "/nonexistent/host.yaml", p);
	cr_assert_str_eq(jstr(err, "code"), "E_HOST_PROFILE_MISSING");
	cr_assert_str_eq(jstr(err, "field"), "--host");
	json_decref(err);

	bad = fx_path(W, "bad-host.yaml");
	write_file(bad, "host: km\napi: [2.3.0]\n"); /* version missing */
	err = RUN(3, "install", "--host", bad, p);
	cr_assert_eq(strncmp(jstr(err, "code"), "E_HOST_", 7), 0, "%s", jstr(err, "code"));
	json_decref(err);

	err = RUN(2, "remove", "--host", hp, "base");
	json_decref(err);
	cr_assert_eq(fx_count(store), 1);
	fx_check_invariants(R);
	free(store);
	free(p);
	free(hp);
	free(bad);
}
