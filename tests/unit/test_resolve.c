/* resolve: PubGrub dependency resolution (include/kmpkg/resolve.h). */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kmpkg/error.h"
#include "kmpkg/resolve.h"
#include "kmpkg/semver.h"

/* cand(r, "a", "1.0.0", "b", "^1.0.0", ..., NULL): a candidate and its deps. */
static void vcand(struct kmpkg_resolver *r, void *ud, const char *name, const char *version, va_list ap)
{
	const char *names[16], *ranges[16];
	struct kmpkg_resolve_candidate c = { 0 };
	size_t n = 0;
	const char *dn;

	while ((dn = va_arg(ap, const char *)) != NULL) {
		cr_assert_lt(n, 16);
		names[n] = dn;
		ranges[n] = va_arg(ap, const char *);
		n++;
	}
	c.name = name;
	c.version = version;
	c.dep_names = names;
	c.dep_ranges = ranges;
	c.ndeps = n;
	c.userdata = ud;
	cr_assert_eq(kmpkg_resolver_add_candidate(r, &c), 0, "add %s %s: %s", name, version,
		     kmpkg_error_last()->message);
}

static void cand(struct kmpkg_resolver *r, const char *name, const char *version, ...)
{
	va_list ap;

	va_start(ap, version);
	vcand(r, NULL, name, version, ap);
	va_end(ap);
}

static void inst(struct kmpkg_resolver *r, const char *name, const char *version, const char *constraint)
{
	struct kmpkg_resolve_installed i = { 0 };

	i.name = name;
	i.version = version;
	i.constraint = constraint;
	cr_assert_eq(kmpkg_resolver_add_installed(r, &i), 0, "%s", kmpkg_error_last()->message);
}

static const struct kmpkg_resolution_item *item(const struct kmpkg_resolution *res, const char *name)
{
	size_t i;

	for (i = 0; i < res->n; i++)
		if (strcmp(res->items[i].name, name) == 0)
			return &res->items[i];
	return NULL;
}

static const char *ver(const struct kmpkg_resolution *res, const char *name)
{
	const struct kmpkg_resolution_item *it = item(res, name);

	return it ? it->version : "(none)";
}

static struct kmpkg_resolution *solve(struct kmpkg_resolver *r, unsigned flags, ...)
{
	struct kmpkg_resolve_request reqs[16];
	struct kmpkg_resolution *res = NULL;
	size_t n = 0;
	const char *name;
	va_list ap;
	int rc;

	va_start(ap, flags);
	while ((name = va_arg(ap, const char *)) != NULL) {
		reqs[n].name = name;
		reqs[n].range = va_arg(ap, const char *);
		n++;
	}
	va_end(ap);
	rc = kmpkg_resolve(&res, r, reqs, n, flags);
	cr_assert_eq(rc, 0, "resolve failed: %s: %s", kmpkg_error_last()->code, kmpkg_error_last()->message);
	cr_assert_not_null(res);
	return res;
}

/* Expects a failure; returns the error message. */
static const char *solve_fail(struct kmpkg_resolver *r, const char *code, const char *name, const char *range)
{
	struct kmpkg_resolve_request req = { name, range };
	struct kmpkg_resolution *res = NULL;
	int rc = kmpkg_resolve(&res, r, &req, 1, 0);

	cr_assert_eq(rc, KMPKG_EDEPS, "rc %d (%s)", rc, kmpkg_error_last()->message);
	cr_assert_null(res);
	cr_assert_str_eq(kmpkg_error_last()->code, code, "%s: %s", kmpkg_error_last()->code,
			 kmpkg_error_last()->message);
	cr_assert(strchr(kmpkg_error_last()->message, '\n') == NULL);
	cr_log_info("%s: %s", code, kmpkg_error_last()->message);
	return kmpkg_error_last()->message;
}

static struct kmpkg_resolver *newr(void)
{
	struct kmpkg_resolver *r = NULL;

	cr_assert_eq(kmpkg_resolver_new(&r), 0);
	return r;
}

#define HAS(msg, s) cr_assert(strstr((msg), (s)) != NULL, "\"%s\" not in: %s", (s), (msg))

Test(resolve, simple_chain)
{
	struct kmpkg_resolver *r = newr();
	struct kmpkg_resolution *res;

	cand(r, "a", "1.0.0", "b", "^1.0.0", NULL);
	cand(r, "b", "1.0.0", "c", "^2.0.0", NULL);
	cand(r, "b", "1.2.0", "c", "^2.0.0", NULL);
	cand(r, "c", "2.0.0", NULL);
	cand(r, "c", "2.1.0", NULL);
	cand(r, "c", "3.0.0", NULL);
	cand(r, "unrelated", "1.0.0", NULL);
	res = solve(r, 0, "a", NULL, NULL);
	cr_assert_eq(res->n, 3);
	cr_assert_str_eq(res->items[0].name, "a"); /* sorted by name */
	cr_assert_str_eq(ver(res, "a"), "1.0.0");
	cr_assert_str_eq(ver(res, "b"), "1.2.0");
	cr_assert_str_eq(ver(res, "c"), "2.1.0");
	cr_assert_eq(item(res, "c")->action, KMPKG_RESOLVE_INSTALL);
	cr_assert_null(item(res, "c")->installed_version);
	cr_assert(item(res, "a")->requested);
	cr_assert_not(item(res, "b")->requested);
	kmpkg_resolution_free(res);
	kmpkg_resolver_free(r);
}

Test(resolve, diamond)
{
	struct kmpkg_resolver *r = newr();
	struct kmpkg_resolution *res;

	cand(r, "a", "1.0.0", "b", "^1.0.0", "c", "^1.0.0", NULL);
	cand(r, "b", "1.0.0", "d", "^1.0.0", NULL);
	cand(r, "b", "1.1.0", "d", ">=1.1.0 <1.3.0", NULL);
	cand(r, "c", "1.0.0", "d", "<1.2.0", NULL);
	cand(r, "c", "1.1.0", "d", "^2.0.0", NULL); /* newest c cannot fit with any b */
	cand(r, "d", "1.0.0", NULL);
	cand(r, "d", "1.1.0", NULL);
	cand(r, "d", "1.2.0", NULL);
	cand(r, "d", "2.0.0", NULL);
	res = solve(r, 0, "a", "", NULL);
	cr_assert_str_eq(ver(res, "b"), "1.1.0");
	cr_assert_str_eq(ver(res, "c"), "1.0.0");
	cr_assert_str_eq(ver(res, "d"), "1.1.0");
	kmpkg_resolution_free(res);
	kmpkg_resolver_free(r);
}

/* The examples of dart-lang/pub doc/solver.md. */
Test(resolve, pub_avoiding_conflict_during_decision)
{
	struct kmpkg_resolver *r = newr();
	struct kmpkg_resolution *res;

	cand(r, "foo", "1.0.0", NULL);
	cand(r, "foo", "1.1.0", "bar", "^2.0.0", NULL);
	cand(r, "bar", "1.0.0", NULL);
	cand(r, "bar", "1.1.0", NULL);
	cand(r, "bar", "2.0.0", NULL);
	res = solve(r, 0, "foo", "^1.0.0", "bar", "^1.0.0", NULL);
	cr_assert_str_eq(ver(res, "foo"), "1.0.0");
	cr_assert_str_eq(ver(res, "bar"), "1.1.0");
	kmpkg_resolution_free(res);
	kmpkg_resolver_free(r);
}

Test(resolve, pub_conflict_resolution)
{
	struct kmpkg_resolver *r = newr();
	struct kmpkg_resolution *res;

	cand(r, "foo", "1.0.0", NULL);
	cand(r, "foo", "2.0.0", "bar", "^1.0.0", NULL);
	cand(r, "bar", "1.0.0", "foo", "^1.0.0", NULL);
	res = solve(r, 0, "foo", ">=1.0.0", NULL);
	cr_assert_str_eq(ver(res, "foo"), "1.0.0");
	cr_assert_null(item(res, "bar"));
	kmpkg_resolution_free(res);
	kmpkg_resolver_free(r);
}

Test(resolve, pub_partial_satisfier)
{
	struct kmpkg_resolver *r = newr();
	struct kmpkg_resolution *res;

	cand(r, "foo", "1.0.0", NULL);
	cand(r, "foo", "1.1.0", "left", "^1.0.0", "right", "^1.0.0", NULL);
	cand(r, "left", "1.0.0", "shared", ">=1.0.0", NULL);
	cand(r, "right", "1.0.0", "shared", "<2.0.0", NULL);
	cand(r, "shared", "2.0.0", NULL);
	cand(r, "shared", "1.0.0", "target", "^1.0.0", NULL);
	cand(r, "target", "2.0.0", NULL);
	cand(r, "target", "1.0.0", NULL);
	res = solve(r, 0, "foo", "^1.0.0", "target", "^2.0.0", NULL);
	cr_assert_str_eq(ver(res, "foo"), "1.0.0");
	cr_assert_str_eq(ver(res, "target"), "2.0.0");
	cr_assert_eq(res->n, 2);
	kmpkg_resolution_free(res);
	kmpkg_resolver_free(r);
}

Test(resolve, pub_linear_error)
{
	struct kmpkg_resolver *r = newr();
	struct kmpkg_resolve_request reqs[] = { { "foo", "^1.0.0" }, { "baz", "^1.0.0" } };
	struct kmpkg_resolution *res = NULL;
	const char *m;

	cand(r, "foo", "1.0.0", "bar", "^2.0.0", NULL);
	cand(r, "bar", "2.0.0", "baz", "^3.0.0", NULL);
	cand(r, "baz", "1.0.0", NULL);
	cand(r, "baz", "3.0.0", NULL);
	cr_assert_eq(kmpkg_resolve(&res, r, reqs, 2, 0), KMPKG_EDEPS);
	m = kmpkg_error_last()->message;
	cr_log_info("%s", m);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_RESOLVE_CONFLICT");
	HAS(m, "foo 1.0.0 needs bar ^2.0.0");
	HAS(m, "bar 2.0.0 needs baz ^3.0.0");
	HAS(m, "baz ^1.0.0 was requested");
	kmpkg_resolver_free(r);
}

Test(resolve, newest_wins_and_prerelease_only_when_asked)
{
	struct kmpkg_resolver *r = newr();
	struct kmpkg_resolution *res;

	cand(r, "a", "1.0.0", NULL);
	cand(r, "a", "1.5.0", NULL);
	cand(r, "a", "2.0.0", NULL);
	cand(r, "a", "2.1.0-beta.1", NULL);
	cand(r, "a", "1.6.0-rc.1", NULL);
	cand(r, "x", "1.0.0", "a", ">=1.0.0", NULL);
	res = solve(r, 0, "a", "^1.0.0", NULL);
	cr_assert_str_eq(ver(res, "a"), "1.5.0");
	kmpkg_resolution_free(res);
	res = solve(r, 0, "a", NULL, NULL);
	cr_assert_str_eq(ver(res, "a"), "2.0.0");
	kmpkg_resolution_free(res);
	res = solve(r, 0, "x", NULL, NULL);
	cr_assert_str_eq(ver(res, "a"), "2.0.0");
	kmpkg_resolution_free(res);
	res = solve(r, 0, "a", "^2.1.0-beta.1", NULL);
	cr_assert_str_eq(ver(res, "a"), "2.1.0-beta.1");
	kmpkg_resolution_free(res);
	res = solve(r, 0, "a", "1.6.0-rc.1", NULL);
	cr_assert_str_eq(ver(res, "a"), "1.6.0-rc.1");
	kmpkg_resolution_free(res);
	kmpkg_resolver_free(r);
}

Test(resolve, keep_installed_unless_upgrading)
{
	struct kmpkg_resolver *r = newr();
	struct kmpkg_resolution *res;

	cand(r, "a", "1.0.0", "b", "^1.0.0", NULL);
	cand(r, "b", "1.0.0", NULL);
	cand(r, "b", "1.1.0", NULL);
	cand(r, "z", "1.0.0", NULL);
	cand(r, "z", "2.0.0", NULL);
	inst(r, "b", "1.0.0", NULL);
	inst(r, "z", "1.0.0", "^1.0.0");
	res = solve(r, 0, "a", NULL, NULL);
	cr_assert_eq(res->n, 3);
	cr_assert_str_eq(ver(res, "b"), "1.0.0");
	cr_assert_eq(item(res, "b")->action, KMPKG_RESOLVE_KEEP);
	cr_assert_str_eq(item(res, "b")->installed_version, "1.0.0");
	cr_assert_eq(item(res, "a")->action, KMPKG_RESOLVE_INSTALL);
	cr_assert_eq(item(res, "z")->action, KMPKG_RESOLVE_KEEP);
	kmpkg_resolution_free(res);
	/* `update`: everything to the newest its constraint allows. */
	res = solve(r, KMPKG_RESOLVE_UPGRADE_ALL, NULL);
	cr_assert_eq(res->n, 2);
	cr_assert_str_eq(ver(res, "b"), "1.1.0");
	cr_assert_eq(item(res, "b")->action, KMPKG_RESOLVE_UPGRADE);
	cr_assert_str_eq(ver(res, "z"), "1.0.0"); /* ^1.0.0 stays */
	kmpkg_resolution_free(res);
	/* `update z`: range NULL keeps the constraint; other plugins stay. */
	res = solve(r, 0, "z", NULL, NULL);
	cr_assert_str_eq(ver(res, "z"), "1.0.0");
	cr_assert_str_eq(ver(res, "b"), "1.0.0");
	kmpkg_resolution_free(res);
	/* `install z@^2`: the new range replaces the constraint. */
	res = solve(r, 0, "z", "^2.0.0", NULL);
	cr_assert_str_eq(ver(res, "z"), "2.0.0");
	cr_assert_eq(item(res, "z")->action, KMPKG_RESOLVE_UPGRADE);
	kmpkg_resolution_free(res);
	/* `update b`: the requested plugin prefers its newest. */
	res = solve(r, 0, "b", NULL, NULL);
	cr_assert_str_eq(ver(res, "b"), "1.1.0");
	kmpkg_resolution_free(res);
	kmpkg_resolver_free(r);
}

Test(resolve, installed_must_move)
{
	struct kmpkg_resolver *r = newr();
	struct kmpkg_resolution *res;

	cand(r, "a", "1.0.0", "b", "^2.0.0", NULL);
	cand(r, "d", "1.0.0", "b", "^1.0.0", NULL);
	cand(r, "b", "1.0.0", NULL);
	cand(r, "b", "1.5.0", NULL);
	cand(r, "b", "2.0.0", NULL);
	cand(r, "b", "2.1.0", NULL);
	inst(r, "b", "1.0.0", NULL);
	res = solve(r, 0, "a", NULL, NULL);
	cr_assert_str_eq(ver(res, "b"), "2.1.0");
	cr_assert_eq(item(res, "b")->action, KMPKG_RESOLVE_UPGRADE);
	kmpkg_resolution_free(res);
	kmpkg_resolver_free(r);

	r = newr();
	cand(r, "d", "1.0.0", "b", "^1.0.0", NULL);
	cand(r, "b", "1.0.0", NULL);
	cand(r, "b", "1.5.0", NULL);
	cand(r, "b", "2.0.0", NULL);
	inst(r, "b", "2.0.0", NULL);
	res = solve(r, 0, "d", NULL, NULL);
	cr_assert_str_eq(ver(res, "b"), "1.5.0");
	cr_assert_eq(item(res, "b")->action, KMPKG_RESOLVE_DOWNGRADE);
	kmpkg_resolution_free(res);
	kmpkg_resolver_free(r);
}

Test(resolve, requested_newest_moves_unconstrained_installed)
{
	struct kmpkg_resolver *r = newr();
	struct kmpkg_resolution *res;

	cand(r, "a", "1.0.0", "b", "^1.0.0", NULL);
	cand(r, "a", "2.0.0", "b", "^2.0.0", NULL);
	cand(r, "b", "1.0.0", NULL);
	cand(r, "b", "2.0.0", NULL);
	inst(r, "b", "1.0.0", NULL);
	res = solve(r, 0, "a", NULL, NULL);
	cr_assert_str_eq(ver(res, "a"), "2.0.0");
	cr_assert_str_eq(ver(res, "b"), "2.0.0");
	cr_assert_eq(item(res, "b")->action, KMPKG_RESOLVE_UPGRADE);
	kmpkg_resolution_free(res);
	/* with a constraint, b stays and a settles for 1.0.0 */
	inst(r, "b", "1.0.0", "^1.0.0");
	res = solve(r, 0, "a", NULL, NULL);
	cr_assert_str_eq(ver(res, "a"), "1.0.0");
	cr_assert_str_eq(ver(res, "b"), "1.0.0");
	kmpkg_resolution_free(res);
	kmpkg_resolver_free(r);
}

Test(resolve, installed_version_missing_from_sources)
{
	struct kmpkg_resolver *r = newr();
	struct kmpkg_resolve_installed i = { 0 };
	const char *dn[] = { "b" }, *dr[] = { "^1.0.0" };
	struct kmpkg_resolution *res;
	int tag = 7;

	cand(r, "b", "1.0.0", NULL);
	cand(r, "b", "2.0.0", NULL);
	i.name = "local";
	i.version = "0.3.0-dev";
	i.dep_names = dn;
	i.dep_ranges = dr;
	i.ndeps = 1;
	i.userdata = &tag;
	cr_assert_eq(kmpkg_resolver_add_installed(r, &i), 0);
	res = solve(r, 0, NULL);
	cr_assert_eq(res->n, 2);
	cr_assert_str_eq(ver(res, "local"), "0.3.0-dev");
	cr_assert_eq(item(res, "local")->userdata, &tag);
	cr_assert_eq(item(res, "local")->action, KMPKG_RESOLVE_KEEP);
	cr_assert_str_eq(ver(res, "b"), "1.0.0");
	kmpkg_resolution_free(res);
	kmpkg_resolver_free(r);
}

Test(resolve, conflict_with_installed_is_explained)
{
	struct kmpkg_resolver *r = newr();
	struct kmpkg_resolution *res = NULL;
	const struct kmpkg_resolve_step *steps;
	const char *m;
	size_t n, i;
	bool depends_a = false, depends_c = false;

	cand(r, "a", "1.0.0", NULL);
	cand(r, "a", "2.0.0", "b", "^3.0.0", NULL);
	cand(r, "c", "1.4.0", "b", "^2.0.0", NULL);
	cand(r, "b", "2.0.0", NULL);
	cand(r, "b", "3.0.0", NULL);
	inst(r, "c", "1.4.0", NULL);
	inst(r, "b", "2.0.0", NULL);
	m = solve_fail(r, "E_RESOLVE_CONFLICT", "a", "^2.0.0");
	HAS(m, "a 2.0.0");
	HAS(m, "b ^3.0.0");
	HAS(m, "c 1.4.0");
	HAS(m, "b ^2.0.0");
	HAS(m, "a 2.0.0 needs b ^3.0.0");
	HAS(m, "c 1.4.0 (installed) needs b ^2.0.0");
	HAS(m, "no version of b satisfies both");
	HAS(m, "; ");
	cr_assert_str_not_empty(kmpkg_error_last()->next_step);
	steps = kmpkg_resolver_explanation(r, &n);
	cr_assert_geq(n, 3);
	for (i = 0; i < n; i++) {
		cr_assert_not_null(steps[i].text);
		if (steps[i].kind == KMPKG_RESOLVE_STEP_DEPENDS && strcmp(steps[i].name, "a") == 0) {
			cr_assert_str_eq(steps[i].version, "2.0.0");
			cr_assert_str_eq(steps[i].dep_name, "b");
			cr_assert_str_eq(steps[i].range, "^3.0.0");
			depends_a = true;
		}
		if (steps[i].kind == KMPKG_RESOLVE_STEP_DEPENDS && strcmp(steps[i].name, "c") == 0)
			depends_c = true;
	}
	cr_assert(depends_a && depends_c);
	cr_assert_eq(steps[n - 1].kind, KMPKG_RESOLVE_STEP_DERIVED);

	/* Without the range, the older a fits. */
	{
		struct kmpkg_resolve_request req = { "a", NULL };

		cr_assert_eq(kmpkg_resolve(&res, r, &req, 1, 0), 0);
		cr_assert_str_eq(ver(res, "a"), "1.0.0");
		cr_assert_str_eq(ver(res, "b"), "2.0.0");
		kmpkg_resolution_free(res);
		kmpkg_resolver_explanation(r, &n);
		cr_assert_eq(n, 0);
	}
	kmpkg_resolver_free(r);
}

Test(resolve, installed_constraint_is_respected)
{
	struct kmpkg_resolver *r = newr();
	const char *m;

	cand(r, "a", "1.0.0", "b", "^2.0.0", NULL);
	cand(r, "b", "1.0.0", NULL);
	cand(r, "b", "2.0.0", NULL);
	inst(r, "b", "1.0.0", "^1.0.0");
	m = solve_fail(r, "E_RESOLVE_CONFLICT", "a", NULL);
	HAS(m, "a 1.0.0 needs b ^2.0.0");
	HAS(m, "b 1.0.0 is installed with constraint ^1.0.0");
	kmpkg_resolver_free(r);
}

Test(resolve, cycles_terminate)
{
	struct kmpkg_resolver *r = newr();
	struct kmpkg_resolution *res;
	const char *m;

	cand(r, "a", "1.0.0", "b", "^1.0.0", NULL);
	cand(r, "a", "2.0.0", "b", "^2.0.0", NULL);
	cand(r, "b", "1.0.0", "a", "^1.0.0", NULL);
	cand(r, "b", "2.0.0", "a", "^1.0.0", NULL); /* cannot go with a 2 */
	cand(r, "s", "1.0.0", "s", "^1.0.0", NULL); /* depends on itself */
	cand(r, "t", "1.0.0", "u", "*", NULL);
	cand(r, "u", "1.0.0", "v", "*", NULL);
	cand(r, "v", "1.0.0", "t", "^2.0.0", NULL); /* a cycle that cannot close */
	res = solve(r, 0, "a", NULL, "s", NULL, NULL);
	cr_assert_str_eq(ver(res, "a"), "1.0.0");
	cr_assert_str_eq(ver(res, "b"), "1.0.0");
	cr_assert_str_eq(ver(res, "s"), "1.0.0");
	kmpkg_resolution_free(res);
	/* b 2.0.0 needs a ^1.0.0, whose only version needs b ^1.0.0 */
	res = solve(r, 0, "b", NULL, NULL);
	cr_assert_str_eq(ver(res, "b"), "1.0.0");
	cr_assert_str_eq(ver(res, "a"), "1.0.0");
	kmpkg_resolution_free(res);
	m = solve_fail(r, "E_RESOLVE_NO_MATCH", "t", NULL);
	HAS(m, "v 1.0.0 needs t ^2.0.0");
	kmpkg_resolver_free(r);
}

Test(resolve, missing_name)
{
	struct kmpkg_resolver *r = newr();
	const char *m;

	cand(r, "a", "1.0.0", "zzz", "^1.0.0", NULL);
	m = solve_fail(r, "E_RESOLVE_NOT_FOUND", "nosuch", NULL);
	HAS(m, "nosuch");
	m = solve_fail(r, "E_RESOLVE_NOT_FOUND", "a", NULL);
	HAS(m, "a 1.0.0 needs zzz ^1.0.0");
	HAS(m, "no plugin named zzz");
	kmpkg_resolver_free(r);
}

Test(resolve, no_match_for_a_range)
{
	struct kmpkg_resolver *r = newr();
	const struct kmpkg_resolve_step *steps;
	size_t n;
	const char *m;

	cand(r, "a", "1.0.0", NULL);
	cand(r, "a", "1.1.0", NULL);
	m = solve_fail(r, "E_RESOLVE_NO_MATCH", "a", "^9.0.0");
	HAS(m, "a ^9.0.0");
	steps = kmpkg_resolver_explanation(r, &n);
	cr_assert_eq(n, 1);
	cr_assert_eq(steps[0].kind, KMPKG_RESOLVE_STEP_NO_MATCH);
	cr_assert_str_eq(steps[0].dep_name, "a");
	cr_assert_null(steps[0].name);
	kmpkg_resolver_free(r);
}

struct reject_ctx {
	const char *reject[4];
	int calls;
};

static bool reject_filter(void *ctx, const char *name, const char *version, void *ud, char *why, size_t len)
{
	struct reject_ctx *c = ctx;
	char nv[128];
	int i;

	(void)ud;
	c->calls++;
	snprintf(nv, sizeof(nv), "%s@%s", name, version);
	for (i = 0; i < 4 && c->reject[i]; i++) {
		if (strcmp(c->reject[i], nv) == 0) {
			snprintf(why, len, "host range >=9.0.0 does not accept 1.6.0");
			return false;
		}
	}
	return true;
}

Test(resolve, filter_rejects_newest)
{
	struct kmpkg_resolver *r = newr();
	struct reject_ctx ctx = { { "a@2.0.0", NULL }, 0 };
	struct kmpkg_resolution *res;
	const struct kmpkg_resolve_step *steps;
	const char *m;
	size_t n, i;
	bool rejected = false;

	cand(r, "a", "1.0.0", NULL);
	cand(r, "a", "1.1.0", NULL);
	cand(r, "a", "2.0.0", NULL);
	cand(r, "b", "1.0.0", "a", "^1.1.0", NULL);
	kmpkg_resolver_set_filter(r, reject_filter, &ctx);
	res = solve(r, 0, "a", NULL, NULL);
	cr_assert_str_eq(ver(res, "a"), "1.1.0");
	cr_assert_eq(ctx.calls, 2);
	kmpkg_resolution_free(res);

	/* Nothing passes: the explanation carries the filter's reason. */
	ctx.reject[1] = "a@1.1.0";
	m = solve_fail(r, "E_RESOLVE_NO_MATCH", "b", NULL);
	HAS(m, "a 1.1.0 is rejected: host range >=9.0.0 does not accept 1.6.0");
	HAS(m, "b 1.0.0 needs a ^1.1.0");
	steps = kmpkg_resolver_explanation(r, &n);
	for (i = 0; i < n; i++)
		if (steps[i].kind == KMPKG_RESOLVE_STEP_REJECTED) {
			cr_assert_str_eq(steps[i].name, "a");
			cr_assert_str_eq(steps[i].range, "host range >=9.0.0 does not accept 1.6.0");
			rejected = true;
		}
	cr_assert(rejected);

	/* The installed version is kept without asking the filter. */
	inst(r, "a", "1.1.0", NULL);
	ctx.calls = 0;
	res = solve(r, 0, "b", NULL, NULL);
	cr_assert_str_eq(ver(res, "a"), "1.1.0");
	cr_assert_eq(item(res, "a")->action, KMPKG_RESOLVE_KEEP);
	cr_assert_eq(ctx.calls, 1); /* b only */
	kmpkg_resolution_free(res);
	kmpkg_resolver_free(r);
}

Test(resolve, malformed_input)
{
	struct kmpkg_resolver *r = newr();
	struct kmpkg_resolve_candidate c = { 0 };
	struct kmpkg_resolve_installed in = { 0 };
	struct kmpkg_resolve_request req = { "a", "^^nope" };
	struct kmpkg_resolution *res = NULL;

	c.name = "a";
	c.version = "1.x";
	cr_assert_eq(kmpkg_resolver_add_candidate(r, &c), KMPKG_EUSAGE);
	c.name = "";
	c.version = "1.0.0";
	cr_assert_eq(kmpkg_resolver_add_candidate(r, &c), KMPKG_EUSAGE);
	in.name = "a";
	in.version = "1.0.0";
	in.constraint = ">>=1";
	cr_assert_eq(kmpkg_resolver_add_installed(r, &in), KMPKG_EUSAGE);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_RANGE_INVALID");
	/* a malformed dependency range makes only that version unusable */
	cand(r, "a", "1.0.0", NULL);
	cand(r, "a", "2.0.0", "b", "not a range", NULL);
	cand(r, "b", "1.0.0", NULL);
	cr_assert_eq(kmpkg_resolve(&res, r, &req, 1, 0), KMPKG_EUSAGE);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_RANGE_INVALID");
	cr_assert_null(res);
	req.range = NULL;
	cr_assert_eq(kmpkg_resolve(&res, r, &req, 1, 0), 0);
	cr_assert_str_eq(ver(res, "a"), "1.0.0");
	kmpkg_resolution_free(res);
	req.range = "2.0.0";
	cr_assert_eq(kmpkg_resolve(&res, r, &req, 1, 0), KMPKG_EDEPS);
	HAS(kmpkg_error_last()->message, "a 2.0.0 has a malformed range for b: \"not a range\"");
	kmpkg_resolver_free(r);
}

Test(resolve, duplicates_first_wins_and_order_does_not_matter)
{
	struct kmpkg_resolver *r1 = newr(), *r2 = newr();
	struct kmpkg_resolution *x, *y;
	int first = 1, second = 2;
	struct kmpkg_resolve_candidate c = { 0 };
	size_t i;

	c.name = "d";
	c.version = "1.0.0";
	c.userdata = &first;
	cr_assert_eq(kmpkg_resolver_add_candidate(r1, &c), 0);
	c.userdata = &second;
	c.version = "1.0.0+other";
	cr_assert_eq(kmpkg_resolver_add_candidate(r1, &c), 0);

	cand(r1, "a", "1.0.0", "b", "*", "c", "*", NULL);
	cand(r1, "b", "1.0.0", "d", "^1.0.0", NULL);
	cand(r1, "b", "2.0.0", "d", "^2.0.0", NULL);
	cand(r1, "c", "1.0.0", "d", "^1.0.0", NULL);
	cand(r1, "c", "2.0.0", "d", "^2.0.0", NULL);
	cand(r1, "d", "2.0.0", "b", "^1.0.0", NULL);

	cand(r2, "d", "2.0.0", "b", "^1.0.0", NULL);
	cand(r2, "c", "2.0.0", "d", "^2.0.0", NULL);
	cand(r2, "c", "1.0.0", "d", "^1.0.0", NULL);
	cand(r2, "b", "2.0.0", "d", "^2.0.0", NULL);
	cand(r2, "b", "1.0.0", "d", "^1.0.0", NULL);
	cand(r2, "a", "1.0.0", "b", "*", "c", "*", NULL);
	cand(r2, "d", "1.0.0", NULL);

	x = solve(r1, 0, "a", NULL, NULL);
	y = solve(r2, 0, "a", NULL, NULL);
	cr_assert_eq(x->n, y->n);
	for (i = 0; i < x->n; i++) {
		cr_assert_str_eq(x->items[i].name, y->items[i].name);
		cr_assert_str_eq(x->items[i].version, y->items[i].version);
	}
	cr_assert_str_eq(ver(x, "d"), "1.0.0");
	cr_assert_eq(item(x, "d")->userdata, &first);
	cr_assert_str_eq(item(x, "d")->version, "1.0.0");
	kmpkg_resolution_free(x);
	kmpkg_resolution_free(y);
	kmpkg_resolver_free(r1);
	kmpkg_resolver_free(r2);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A generated index of 10,000 plugins with 3 versions each. Dependencies
 * point at "library" plugins (the first 500) with a lower number, plus an
 * occasional edge to the next plugin (cycles); when `dense`, at any of the
 * next 200 plugins instead, so that a request pulls in most of the index. */
static struct kmpkg_resolver *big_index(bool dense)
{
	struct kmpkg_resolver *r = newr();
	static const char *vers[] = { "1.0.0", "1.1.0", "2.0.0" };
	unsigned seed = 12345;
	size_t i, v;

	for (i = 0; i < 10000; i++) {
		char name[16], dn[3][16];
		const char *dnames[3], *dranges[3];

		snprintf(name, sizeof(name), "p%05zu", i);
		for (v = 0; v < 3; v++) {
			struct kmpkg_resolve_candidate c = { 0 };
			size_t k, nd = (seed = seed * 1103515245u + 12345u) % 4;

			for (k = 0; k < nd; k++) {
				size_t target;

				seed = seed * 1103515245u + 12345u;
				if (dense)
					target = k == 2 && i > 10 ? i - 1 - (seed >> 8) % 10 : i + 1 + (seed >> 8) % 200;
				else if (k == 2 && (seed >> 8) % 5 == 0)
					target = i + 1;
				else
					target = i ? (seed >> 8) % (i < 500 ? i : 500) : 1;
				if (target >= 10000)
					target = i ? i - 1 : 1;
				snprintf(dn[k], sizeof(dn[k]), "p%05zu", target);
				dnames[k] = dn[k];
				/* mostly compatible ranges; the newest versions
				 * sometimes demand a major version */
				dranges[k] = v == 2 && (seed >> 4) % 8 == 0 ? "^2.0.0"
					     : (seed >> 4) % 4 == 1 ? "^1.0.0" : ">=1.0.0";
			}
			c.name = name;
			c.version = vers[v];
			c.dep_names = dnames;
			c.dep_ranges = dranges;
			c.ndeps = nd;
			cr_assert_eq(kmpkg_resolver_add_candidate(r, &c), 0);
		}
	}
	return r;
}

static double timed_resolve(struct kmpkg_resolver *r, size_t first, size_t step, size_t *selected)
{
	struct kmpkg_resolution *res = NULL;
	struct kmpkg_resolve_request reqs[5];
	char names[5][16];
	double t0;
	size_t i;

	for (i = 0; i < 5; i++) {
		snprintf(names[i], sizeof(names[i]), "p%05zu", first + i * step);
		reqs[i].name = names[i];
		reqs[i].range = NULL;
	}
	t0 = now_ms();
	cr_assert_eq(kmpkg_resolve(&res, r, reqs, 5, 0), 0, "%s", kmpkg_error_last()->message);
	t0 = now_ms() - t0;
	*selected = res->n;
	kmpkg_resolution_free(res);
	return t0;
}

Test(resolve, ten_thousand_plugins, .timeout = 60)
{
	double t0 = now_ms(), tindex, t1, t2;
	struct kmpkg_resolver *r = big_index(false);
	size_t n1, n2;

	tindex = now_ms() - t0;
	t1 = timed_resolve(r, 9000, 131, &n1);
	t2 = timed_resolve(r, 9000, 131, &n2); /* again, ranges cached */
	fprintf(stderr, "resolve: 10000 plugins: index %.1f ms, resolve %.1f ms (again %.1f ms), %zu selected\n",
		tindex, t1, t2, n1);
	cr_assert_eq(n1, n2);
	cr_assert_geq(n1, 5);
	cr_assert_lt(t1, 500.0);
	cr_assert_lt(t2, 500.0);
	kmpkg_resolver_free(r);
}

/* Nearly the whole index in one resolution: terminates, in seconds at worst. */
Test(resolve, ten_thousand_plugins_dense, .timeout = 60)
{
	struct kmpkg_resolver *r = big_index(true);
	size_t n;
	double t = timed_resolve(r, 100, 1931, &n);

	fprintf(stderr, "resolve: 10000 plugins, dense: resolve %.1f ms, %zu selected\n", t, n);
	cr_assert_gt(n, 5000);
	cr_assert_lt(t, 10000.0);
	kmpkg_resolver_free(r);
}

/* Random small worlds checked against brute force: the resolver finds a
 * solution exactly when one exists, and what it returns is one. */
#define RW_PKGS 5
#define RW_VERS 3

struct rworld {
	int nvers[RW_PKGS];
	int ndeps[RW_PKGS][RW_VERS];
	int dep_pkg[RW_PKGS][RW_VERS][2];
	const char *dep_range[RW_PKGS][RW_VERS][2];
	bool rejected[RW_PKGS][RW_VERS];
	const char *req_range;
};

static const char *rw_names[RW_PKGS] = { "a", "b", "c", "d", "e" };
static const char *rw_vers[RW_VERS] = { "1.0.0", "1.1.0", "2.0.0" };

static bool rw_filter(void *ctx, const char *name, const char *version, void *ud, char *why, size_t len)
{
	const struct rworld *w = ctx;
	int p = name[0] - 'a', v;

	(void)ud;
	(void)why;
	(void)len;
	for (v = 0; v < RW_VERS; v++)
		if (strcmp(rw_vers[v], version) == 0)
			return !w->rejected[p][v];
	return true;
}

static bool rw_sat(const char *version, const char *range)
{
	static const char *seen_v[64], *seen_r[64];
	static bool seen_ok[64];
	static int nseen;
	int i, rc;

	for (i = 0; i < nseen; i++)
		if (seen_v[i] == version && seen_r[i] == range)
			return seen_ok[i];
	rc = kmpkg_semver_satisfies(version, range);
	cr_assert_geq(rc, 0);
	if (nseen < 64) {
		seen_v[nseen] = version;
		seen_r[nseen] = range;
		seen_ok[nseen++] = rc == 1;
	}
	return rc == 1;
}

/* sel[p] = version index or -1 */
static bool rw_valid(const struct rworld *w, const int *sel)
{
	int p, k;

	if (sel[0] < 0 || !rw_sat(rw_vers[sel[0]], w->req_range))
		return false;
	for (p = 0; p < RW_PKGS; p++) {
		if (sel[p] < 0)
			continue;
		if (sel[p] >= w->nvers[p] || w->rejected[p][sel[p]])
			return false;
		for (k = 0; k < w->ndeps[p][sel[p]]; k++) {
			int q = w->dep_pkg[p][sel[p]][k];

			if (sel[q] < 0 || !rw_sat(rw_vers[sel[q]], w->dep_range[p][sel[p]][k]))
				return false;
		}
	}
	return true;
}

Test(resolve, random_worlds_match_brute_force)
{
	static const char *ranges[] = { "^1.0.0", "^2.0.0", ">=1.1.0", "<1.1.0", "*", "1.0.0 || 2.0.0",
					"~1.1.0", "^3.0.0" };
	unsigned seed = 4242;
	int iter, solvable = 0;

	for (iter = 0; iter < 400; iter++) {
		struct rworld w;
		struct kmpkg_resolver *r = newr();
		struct kmpkg_resolve_request req;
		struct kmpkg_resolution *res = NULL;
		int p, v, k, sel[RW_PKGS], rc;
		long combo, ncombo = 1;
		bool exists = false;

		memset(&w, 0, sizeof(w));
#define RND(n) ((int)(((seed = seed * 1103515245u + 12345u) >> 8) % (unsigned)(n)))
		for (p = 0; p < RW_PKGS; p++) {
			w.nvers[p] = 1 + RND(RW_VERS);
			for (v = 0; v < w.nvers[p]; v++) {
				const char *dn[2], *dr[2];
				struct kmpkg_resolve_candidate c = { 0 };

				w.ndeps[p][v] = RND(3);
				w.rejected[p][v] = RND(8) == 0;
				for (k = 0; k < w.ndeps[p][v]; k++) {
					w.dep_pkg[p][v][k] = RND(RW_PKGS);
					w.dep_range[p][v][k] = ranges[RND(8)];
					dn[k] = rw_names[w.dep_pkg[p][v][k]];
					dr[k] = w.dep_range[p][v][k];
				}
				c.name = rw_names[p];
				c.version = rw_vers[v];
				c.dep_names = dn;
				c.dep_ranges = dr;
				c.ndeps = (size_t)w.ndeps[p][v];
				cr_assert_eq(kmpkg_resolver_add_candidate(r, &c), 0);
			}
		}
		w.req_range = ranges[RND(5)];
#undef RND
		kmpkg_resolver_set_filter(r, rw_filter, &w);
		for (p = 0; p < RW_PKGS; p++)
			ncombo *= RW_VERS + 1;
		for (combo = 0; combo < ncombo && !exists; combo++) {
			long c = combo;

			for (p = 0; p < RW_PKGS; p++) {
				sel[p] = (int)(c % (RW_VERS + 1)) - 1;
				c /= RW_VERS + 1;
			}
			exists = rw_valid(&w, sel);
		}
		req.name = "a";
		req.range = w.req_range;
		rc = kmpkg_resolve(&res, r, &req, 1, 0);
		cr_assert_eq(rc == 0, exists, "world %d: resolver %d, brute force %d: %s", iter, rc, exists,
			     rc ? kmpkg_error_last()->message : "");
		if (rc == 0) {
			size_t i;

			solvable++;
			for (p = 0; p < RW_PKGS; p++)
				sel[p] = -1;
			for (i = 0; i < res->n; i++)
				for (v = 0; v < RW_VERS; v++)
					if (strcmp(res->items[i].version, rw_vers[v]) == 0)
						sel[res->items[i].name[0] - 'a'] = v;
			cr_assert(rw_valid(&w, sel), "world %d: invalid solution", iter);
			kmpkg_resolution_free(res);
		} else {
			cr_assert_eq(rc, KMPKG_EDEPS);
			cr_assert_str_not_empty(kmpkg_error_last()->message);
		}
		kmpkg_resolver_free(r);
	}
	cr_log_info("%d of 400 worlds solvable", solvable);
	cr_assert_gt(solvable, 50);
	cr_assert_lt(solvable, 390);
}
