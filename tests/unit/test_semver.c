/* semver: node-semver conformance rows, own edge cases, and the CLI. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kmpkg/error.h"
#include "kmpkg/semver.h"

/* ---- helpers ----------------------------------------------------------- */

static char *range_fmt(const char *s)
{
	struct kmpkg_semver_range *r = NULL;
	char *f;

	if (kmpkg_semver_range_parse(&r, s))
		return strdup("INVALID");
	f = kmpkg_semver_range_format(r);
	kmpkg_semver_range_free(r);
	return f;
}

static void assert_range(const char *in, const char *want)
{
	char *got = range_fmt(in);

	cr_expect_str_eq(got, want, "range [%s]: got [%s], want [%s]", in, got, want);
	free(got);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *repeat(const char *unit, size_t times, const char *tail)
{
	size_t ul = strlen(unit), tl = strlen(tail), i;
	char *s = malloc(ul * times + tl + 1);

	cr_assert_not_null(s);
	for (i = 0; i < times; i++)
		memcpy(s + i * ul, unit, ul);
	memcpy(s + ul * times, tail, tl + 1);
	return s;
}

/* ---- node-semver fixture rows ------------------------------------------ */

struct row {
	int line;
	char *op, *a, *b, *expect;
};

/* Reads fixtures/semver/node-fixtures.tsv: op, arg1, arg2, expected, split
 * on single tabs (fields may be empty or start with spaces). */
static size_t load_rows(struct row **out)
{
	const char *dir = getenv("KMPKG_SRCDIR");
	char path[4096], *line = NULL;
	size_t cap = 0, n = 0, alloc = 0;
	ssize_t len;
	int lineno = 0;
	struct row *rows = NULL;
	FILE *f;

	cr_assert_not_null(dir, "KMPKG_SRCDIR is not set");
	snprintf(path, sizeof(path), "%s/fixtures/semver/node-fixtures.tsv", dir);
	f = fopen(path, "r");
	cr_assert_not_null(f, "cannot open %s", path);
	while ((len = getline(&line, &cap, f)) >= 0) {
		char *fields[4], *p = line;
		int k;

		lineno++;
		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		for (k = 0; k < 4; k++) {
			fields[k] = p;
			p = strchr(p, '\t');
			if (k < 3) {
				cr_assert_not_null(p, "line %d: fewer than 4 fields", lineno);
				*p++ = '\0';
			}
		}
		if (n == alloc) {
			alloc = alloc ? alloc * 2 : 64;
			rows = realloc(rows, alloc * sizeof(*rows));
			cr_assert_not_null(rows);
		}
		rows[n].line = lineno;
		rows[n].op = strdup(fields[0]);
		rows[n].a = strdup(fields[1]);
		rows[n].b = strdup(fields[2]);
		rows[n].expect = strdup(fields[3]);
		n++;
	}
	free(line);
	fclose(f);
	*out = rows;
	return n;
}

static void free_rows(struct row *rows, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(rows[i].op);
		free(rows[i].a);
		free(rows[i].b);
		free(rows[i].expect);
	}
	free(rows);
}

static void run_rows(const char *op)
{
	struct row *rows;
	size_t n = load_rows(&rows), i, seen = 0, failed = 0;

	for (i = 0; i < n; i++) {
		struct row *r = &rows[i];
		bool ok;
		int got = 0;

		if (strcmp(r->op, op) != 0)
			continue;
		seen++;
		if (strcmp(op, "satisfies") == 0) {
			got = kmpkg_semver_satisfies(r->a, r->b);
			if (strcmp(r->expect, "x") == 0)
				ok = got == 0 || got == KMPKG_EUSAGE;
			else
				ok = got == atoi(r->expect);
		} else if (strcmp(op, "compare") == 0) {
			int c = 99;

			got = kmpkg_semver_compare(&c, r->a, r->b);
			ok = got == 0 && c == atoi(r->expect);
			got = got ? got : c;
		} else {
			got = kmpkg_semver_valid(r->a);
			ok = got == atoi(r->expect);
		}
		if (!ok) {
			failed++;
			cr_log_error("node-fixtures.tsv line %d: %s [%s] [%s] expected %s, got %d", r->line, r->op,
				     r->a, r->b, r->expect, got);
		}
	}
	free_rows(rows, n);
	cr_assert(seen > 0, "no %s rows in the fixture file", op);
	cr_assert_eq(failed, 0, "%zu of %zu %s rows failed (see the log above)", failed, seen, op);
}

Test(semver, node_fixtures_satisfies)
{
	run_rows("satisfies");
}

Test(semver, node_fixtures_compare)
{
	run_rows("compare");
}

Test(semver, node_fixtures_valid)
{
	run_rows("valid");
}

/* ---- versions ---------------------------------------------------------- */

Test(semver, parse_fields_and_format)
{
	struct kmpkg_semver v;
	char *f, *s;

	cr_assert_eq(kmpkg_semver_parse(&v, " v1.22.333-alpha.7.x-y+build.5 "), 0);
	cr_assert_eq(v.major, 1);
	cr_assert_eq(v.minor, 22);
	cr_assert_eq(v.patch, 333);
	cr_assert_eq(v.npre, 3);
	cr_assert_str_eq(v.pre[0].str, "alpha");
	cr_assert(!v.pre[0].numeric);
	cr_assert(v.pre[1].numeric);
	cr_assert_eq(v.pre[1].num, 7);
	cr_assert_str_eq(v.pre[2].str, "x-y");
	cr_assert_str_eq(v.build, "build.5");
	f = kmpkg_semver_format(&v);
	s = kmpkg_semver_format_short(&v);
	cr_assert_str_eq(f, "1.22.333-alpha.7.x-y+build.5");
	cr_assert_str_eq(s, "1.22.333-alpha.7.x-y");
	free(f);
	free(s);
	kmpkg_semver_release(&v);
}

Test(semver, numbers_up_to_max_safe_integer)
{
	int c;

	cr_assert(kmpkg_semver_valid("9007199254740991.9007199254740991.9007199254740991"));
	cr_assert(!kmpkg_semver_valid("9007199254740992.0.0"));
	cr_assert(!kmpkg_semver_valid("0.9007199254740992.0"));
	cr_assert(!kmpkg_semver_valid("0.0.18446744073709551616"));
	cr_assert(!kmpkg_semver_valid("0.0.99999999999999999999999999999999"));
	/* pre-release numbers have no limit; beyond 2^53 node compares them
	 * as doubles, so these two are equal, whatever follows */
	cr_assert(kmpkg_semver_valid("1.2.3-99999999999999999999"));
	cr_assert_eq(kmpkg_semver_compare(&c, "1.2.3-9007199254740993.b", "1.2.3-9007199254740992.a"), 0);
	cr_assert_eq(c, 0);
	cr_assert_eq(kmpkg_semver_compare(&c, "1.2.3-9007199254741000", "1.2.3-9007199254740992"), 0);
	cr_assert_eq(c, 1);
	cr_assert_eq(kmpkg_semver_compare(&c, "1.2.3-99999999999999999999", "1.2.3-a"), 0);
	cr_assert_eq(c, -1);
	cr_assert_eq(kmpkg_semver_compare(&c, "1.2.3-2", "1.2.3-10"), 0);
	cr_assert_eq(c, -1);
}

Test(semver, leading_zeros)
{
	cr_assert(!kmpkg_semver_valid("01.2.3"));
	cr_assert(!kmpkg_semver_valid("1.02.3"));
	cr_assert(!kmpkg_semver_valid("1.2.03"));
	cr_assert(!kmpkg_semver_valid("1.2.3-01"));
	cr_assert(!kmpkg_semver_valid("1.2.3-00"));
	cr_assert(!kmpkg_semver_valid("1.2.3-a.01"));
	cr_assert(kmpkg_semver_valid("1.2.3-0"));
	cr_assert(kmpkg_semver_valid("1.2.3-0a"));
	cr_assert(kmpkg_semver_valid("1.2.3-00a"));
	cr_assert(kmpkg_semver_valid("1.2.3+01")); /* build identifiers may */
	cr_assert(kmpkg_semver_valid("0.0.0"));
}

Test(semver, shapes_node_rejects)
{
	const char *bad[] = { "", " ", "1", "1.2", "1.2.3.4", "=1.2.3", "V1.2.3", "vv1.2.3", "1.2.3-",
			      "1.2.3+", "1.2.3-a..b", "1.2.3+a..b", "1.2.3-a_b", "1.2.3 1", "-1.2.3",
			      "1.2.3beta", "1.2.-3", "1.2.3-\xc3\xa9", NULL };
	int i;

	for (i = 0; bad[i]; i++) {
		struct kmpkg_semver v;

		cr_expect_eq(kmpkg_semver_parse(&v, bad[i]), KMPKG_EUSAGE, "[%s] accepted", bad[i]);
		cr_expect_str_eq(kmpkg_error_last()->code, "E_SEMVER_INVALID");
	}
}

Test(semver, javascript_whitespace_is_trimmed)
{
	cr_assert(kmpkg_semver_valid("\t1.2.3\n"));
	cr_assert(kmpkg_semver_valid("\xc2\xa0" "1.2.3\xe3\x80\x80"));  /* U+00A0, U+3000 */
	cr_assert(kmpkg_semver_valid("\xef\xbb\xbf" "1.2.3"));            /* U+FEFF */
	cr_assert(!kmpkg_semver_valid("\xc2\x85" "1.2.3"));              /* U+0085 is not \s */
}

Test(semver, build_metadata_is_ignored_for_precedence)
{
	int c = 7;

	cr_assert_eq(kmpkg_semver_compare(&c, "1.2.3+a", "1.2.3+b"), 0);
	cr_assert_eq(c, 0);
	cr_assert_eq(kmpkg_semver_compare(&c, "1.2.3-rc.1+zzz", "1.2.3-rc.1"), 0);
	cr_assert_eq(c, 0);
	cr_assert_eq(kmpkg_semver_compare(&c, "1.2.3+999", "1.2.4+0"), 0);
	cr_assert_eq(c, -1);
	cr_assert_eq(kmpkg_semver_satisfies("1.2.3+build", "1.2.3"), 1);
	cr_assert_eq(kmpkg_semver_satisfies("1.2.3", "=1.2.3+other"), 1);
}

Test(semver, precedence_semver_spec_order)
{
	const char *order[] = { "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
				"1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0",
				NULL };
	int i, j, c;

	for (i = 0; order[i]; i++) {
		for (j = 0; order[j]; j++) {
			cr_assert_eq(kmpkg_semver_compare(&c, order[i], order[j]), 0);
			cr_expect_eq(c, i < j ? -1 : i > j ? 1 : 0, "%s vs %s", order[i], order[j]);
		}
	}
}

Test(semver, max_length_256)
{
	char *ok = repeat("a", 250, "");
	char *v256, *v257, *pad;

	v256 = malloc(300);
	v257 = malloc(300);
	snprintf(v256, 300, "1.2.3-%s", ok);
	snprintf(v257, 300, "1.2.3-%sa", ok);
	cr_assert_eq(strlen(v256), 256);
	cr_assert(kmpkg_semver_valid(v256));
	cr_assert(!kmpkg_semver_valid(v257));
	cr_assert_str_eq(kmpkg_error_last()->code, "E_SEMVER_INVALID");
	/* the limit applies before trimming, as in node */
	pad = repeat(" ", 251, "1.2.3");
	cr_assert(kmpkg_semver_valid(pad));
	free(pad);
	pad = repeat(" ", 252, "1.2.3");
	cr_assert(!kmpkg_semver_valid(pad));
	free(pad);
	free(ok);
	free(v256);
	free(v257);
}

Test(semver, very_long_input_rejected_quickly)
{
	char *huge = repeat("1", 20u << 20, ""); /* 20 MiB */
	struct kmpkg_semver_range *r = NULL;
	double t0 = now();

	cr_assert(!kmpkg_semver_valid(huge));
	cr_assert_eq(kmpkg_semver_range_parse(&r, huge), KMPKG_EUSAGE);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_RANGE_INVALID");
	cr_assert_null(r);
	cr_assert(now() - t0 < 0.5, "took %.3f s", now() - t0);
	free(huge);
}

/* ---- ranges ------------------------------------------------------------ */

Test(semver, desugaring_matches_node)
{
	assert_range("^0.0.1", ">=0.0.1 <0.0.2-0");
	assert_range("<1.2", "<1.2.0-0");
	assert_range(">1", ">=2.0.0");
	assert_range(">1.2", ">=1.3.0");
	assert_range("<=0.7.x", "<0.8.0-0");
	assert_range("<=7.x", "<8.0.0-0");
	assert_range(">=1.x", ">=1.0.0");
	assert_range("1.2.3 - 2.3.4", ">=1.2.3 <=2.3.4");
	assert_range("1.2 - 2.3.4", ">=1.2.0 <=2.3.4");
	assert_range("1.2.3 - 2.3", ">=1.2.3 <2.4.0-0");
	assert_range("1.2.3 - 2", ">=1.2.3 <3.0.0-0");
	assert_range("1.2.3+a - 2.3.4-b+c", ">=1.2.3 <=2.3.4-b");
	assert_range("x - 1.0.0", "<=1.0.0");
	assert_range("1.x - x", ">=1.0.0");
	assert_range("~1.2.3", ">=1.2.3 <1.3.0-0");
	assert_range("~1.2.3-beta.2", ">=1.2.3-beta.2 <1.3.0-0");
	assert_range("~1", ">=1.0.0 <2.0.0-0");
	assert_range("1.2.x || 2.x", ">=1.2.0 <1.3.0-0||>=2.0.0 <3.0.0-0");
	assert_range(">= 1.2.3", ">=1.2.3");
	assert_range("<    2.0.0", "<2.0.0");
	assert_range("=1.2.3", "1.2.3");
	assert_range("v1.2.3", "1.2.3");
	assert_range("1.2.3 - 2.3.4 || >=3 <=3.1", ">=1.2.3 <=2.3.4||>=3.0.0 <3.2.0-0");
	assert_range("~1.2.3 || ^2 || 3.x || >4.5 <=5.x",
		     ">=1.2.3 <1.3.0-0||>=2.0.0 <3.0.0-0||>=3.0.0 <4.0.0-0||>=4.6.0 <6.0.0-0");
}

Test(semver, tilde_greater)
{
	assert_range("~>1.2", ">=1.2.0 <1.3.0-0");
	assert_range("~> 1.2.3", ">=1.2.3 <1.3.0-0");
	assert_range("~>1", ">=1.0.0 <2.0.0-0");
	assert_range("~>x", "");
	cr_assert_eq(kmpkg_semver_satisfies("3.2.9", "~>3.2.1"), 1);
	cr_assert_eq(kmpkg_semver_satisfies("3.3.0", "~>3.2.1"), 0);
	cr_assert_eq(kmpkg_semver_satisfies("1.2.3", "~>"), KMPKG_EUSAGE);
}

Test(semver, caret_on_zero_versions)
{
	/* >=0.0.0 is dropped as "any" (replaceGTE0), so node prints only the top */
	assert_range("^0.0.0", "<0.0.1-0");
	assert_range("^0.0", "<0.1.0-0");
	assert_range("^0", "<1.0.0-0");
	assert_range("^0.x", "<1.0.0-0");
	assert_range("^0.0.x", "<0.1.0-0");
	assert_range("^0.1", ">=0.1.0 <0.2.0-0");
	assert_range("^0.1.x", ">=0.1.0 <0.2.0-0");
	assert_range("^0.1.2", ">=0.1.2 <0.2.0-0");
	assert_range("^0.0.3", ">=0.0.3 <0.0.4-0");
	assert_range("^0.0.3-beta", ">=0.0.3-beta <0.0.4-0");
	assert_range("^ 0.2", ">=0.2.0 <0.3.0-0");
	cr_assert_eq(kmpkg_semver_satisfies("0.0.4", "^0.0.3"), 0);
	cr_assert_eq(kmpkg_semver_satisfies("0.1.9", "^0.1.2"), 1);
	cr_assert_eq(kmpkg_semver_satisfies("0.2.0", "^0.1.2"), 0);
	cr_assert_eq(kmpkg_semver_satisfies("0.0.3-rc", "^0.0.3-beta"), 1);
}

Test(semver, any_and_null_sets)
{
	assert_range("", "");
	assert_range("*", "");
	assert_range("x", "");
	assert_range(">=*", "");
	assert_range("||", "");
	assert_range(">=0.0.0", "");
	assert_range("1.2.3 || *", "");
	assert_range("<x", "<0.0.0-0");
	assert_range(">x || 1.0", ">=1.0.0 <1.1.0-0");
	assert_range("<0.0.0-0 || 1.2.3", "1.2.3");
	assert_range("<0.0.0-0 || <0.0.0", "<0.0.0");
	assert_range(">=1.0.0 >=1.0.0 1.0.0 =1.0.0", ">=1.0.0 1.0.0");
	assert_range("^1.2 ^1", ">=1.2.0 <2.0.0-0 >=1.0.0");
	cr_assert_eq(kmpkg_semver_satisfies("0.0.0", "<x"), 0);
	cr_assert_eq(kmpkg_semver_satisfies("1.2.3-pre", "*"), 0);
}

Test(semver, prerelease_rule_across_sets)
{
	cr_assert_eq(kmpkg_semver_satisfies("1.2.3-beta", ">=1.2.3-alpha <1.2.4 || >2.0.0"), 1);
	cr_assert_eq(kmpkg_semver_satisfies("1.2.4-beta", ">=1.2.3-alpha"), 0);
	cr_assert_eq(kmpkg_semver_satisfies("1.2.4-beta", "<1.0.0 || >=1.2.4-alpha"), 1);
	cr_assert_eq(kmpkg_semver_satisfies("2.0.0-rc.1", "^1.0.0 || >=2.0.0-rc.0"), 1);
	/* the tuple must come from the set that matches, not another one */
	cr_assert_eq(kmpkg_semver_satisfies("1.2.4-beta", "1.2.3-alpha - 1.3.0 || >=1.0.0 <2.0.0"), 0);
	cr_assert_eq(kmpkg_semver_satisfies("1.2.4-beta", ">=1.2.4-a <1.2.4-z || >=9.0.0-a"), 1);
	cr_assert_eq(kmpkg_semver_satisfies("1.2.4-beta", ">=9.0.0-a || >=1.0.0"), 0);
	cr_assert_eq(kmpkg_semver_satisfies("1.2.3-beta", ">=1.2.3-alpha <1.2.3-zeta"), 1);
}

Test(semver, node_quirks_kept)
{
	/* STAR is removed wherever it is found in a word */
	assert_range("1.2.3>*", "1.2.3");
	/* an operator split from its version by another '=' */
	assert_range("> = 1.2.3", "INVALID");
	/* the hyphen range copies "=1.2.3" after ">=" */
	assert_range("=1.2.3 - 2", "INVALID");
	assert_range("v1.2.3 - 2", ">=1.2.3 <3.0.0-0");
	/* "+M + 1" beyond 2^53-1 makes an invalid comparator */
	assert_range("^9007199254740991", "INVALID");
	assert_range("~1.9007199254740990", ">=1.9007199254740990.0 <1.9007199254740991.0-0");
	/* the safe regexes cap identifiers at 250 characters after the first */
	{
		char *ok = repeat("a", 251, "");
		char *bad = repeat("a", 252, "");
		char buf[300];

		snprintf(buf, sizeof(buf), "1.2.x-%s", ok);
		assert_range(buf, ">=1.2.0 <1.3.0-0");
		snprintf(buf, sizeof(buf), "1.2.x-%s", bad);
		assert_range(buf, "INVALID");
		free(ok);
		free(bad);
	}
	/* whitespace after the operators and Unicode spaces between words */
	assert_range(">=1.2.3\xe2\x80\x83<2", ">=1.2.3 <2.0.0-0");
	assert_range("~ 1.0", ">=1.0.0 <1.1.0-0");
}

Test(semver, invalid_ranges)
{
	const char *bad[] = { "^", "~", ">", ">=", "1.2.3 - ", "- 1.2.3", "1.2.3 -", "1 - 2 - 3", "a",
			      "1.2.3 |", "1.2.3 || |", ">=1.2.3 <", "01.2.3", "1.2.03", "1.2.3-01", "^01",
			      "!1.2.3", "1.2.3 && 2.0.0", "9007199254740992.0.0", ">1.2.3-", NULL };
	int i;

	for (i = 0; bad[i]; i++) {
		struct kmpkg_semver_range *r = (void *)1;

		cr_expect_eq(kmpkg_semver_range_parse(&r, bad[i]), KMPKG_EUSAGE, "[%s] accepted", bad[i]);
		cr_expect_null(r);
		cr_expect_str_eq(kmpkg_error_last()->code, "E_RANGE_INVALID");
	}
}

Test(semver, pathological_ranges_are_linear)
{
	struct { const char *unit; size_t times; const char *tail; const char *want; } cases[] = {
		{ "||", 30000, "", "" },
		{ "v ", 30000, "1", "INVALID" },
		{ "0", 65000, "", "INVALID" },
		{ ">= ", 21000, "1", "INVALID" },
		{ "~ ", 30000, "1", "INVALID" },
		{ "^1.2.3 ", 9000, "", ">=1.2.3 <2.0.0-0" },
		{ "1.2.3 || ", 7000, "1.2.3", NULL },
		{ "1.2.3-a.", 8000, "a", "INVALID" },
		{ "x", 65536, "", "INVALID" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *s = repeat(cases[i].unit, cases[i].times, cases[i].tail);
		double t0 = now();
		char *got = range_fmt(s);
		double dt = now() - t0;

		cr_expect(dt < 1.0, "case %zu took %.3f s", i, dt);
		if (cases[i].want)
			cr_expect_str_eq(got, cases[i].want, "case %zu", i);
		else
			cr_expect(strncmp(got, "1.2.3||1.2.3||", 14) == 0, "case %zu: %.40s", i, got);
		free(got);
		free(s);
	}
	/* over the 64 KiB limit */
	{
		char *s = repeat(" ", 65537, "1.2.3");

		assert_range(s, "INVALID");
		free(s);
	}
}

Test(semver, range_object_api)
{
	struct kmpkg_semver_range *r = NULL;
	struct kmpkg_semver v;
	char *f;

	cr_assert_eq(kmpkg_semver_range_parse(&r, "  ^1.2.3   ||\t~0.4  "), 0);
	f = kmpkg_semver_range_format(r);
	cr_assert_str_eq(f, ">=1.2.3 <2.0.0-0||>=0.4.0 <0.5.0-0");
	free(f);
	cr_assert_eq(kmpkg_semver_parse(&v, "0.4.9"), 0);
	cr_assert(kmpkg_semver_range_test(r, &v));
	kmpkg_semver_release(&v);
	cr_assert_eq(kmpkg_semver_parse(&v, "0.5.0"), 0);
	cr_assert(!kmpkg_semver_range_test(r, &v));
	kmpkg_semver_release(&v);
	kmpkg_semver_range_free(r);
	kmpkg_semver_range_free(NULL);
	kmpkg_semver_release(NULL);
}

Test(semver, string_conveniences)
{
	int c = 5;

	cr_assert_eq(kmpkg_semver_satisfies("1.2.3", "^1"), 1);
	cr_assert_eq(kmpkg_semver_satisfies("2.0.0", "^1"), 0);
	cr_assert_eq(kmpkg_semver_satisfies("1.2", "^1"), KMPKG_EUSAGE);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_SEMVER_INVALID");
	cr_assert_eq(kmpkg_semver_satisfies("1.2.3", "^1 ||| 2"), KMPKG_EUSAGE);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_RANGE_INVALID");
	cr_assert_neq(kmpkg_error_last()->next_step[0], '\0');
	cr_assert_eq(kmpkg_semver_compare(&c, "1.0.0", "x"), KMPKG_EUSAGE);
	cr_assert_eq(kmpkg_semver_compare(&c, "v2.0.0", "1.9.9"), 0);
	cr_assert_eq(c, 1);
}

/* ---- CLI --------------------------------------------------------------- */

struct run {
	int status;
	char out[8192];
	char err[8192];
};

static void slurp(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	ssize_t k;

	while (n + 1 < cap && (k = read(fd, buf + n, cap - 1 - n)) > 0)
		n += (size_t)k;
	buf[n] = '\0';
}

/* Runs $KMPKG_BIN with args (NULL-terminated); stdout and stderr captured. */
static void run_kmpkg(struct run *r, const char *const *args)
{
	const char *bin = getenv("KMPKG_BIN");
	const char *argv[16];
	int out[2], err[2], st, i;
	pid_t pid;

	cr_assert_not_null(bin, "KMPKG_BIN is not set");
	argv[0] = bin;
	for (i = 0; args[i]; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	cr_assert_eq(pipe(out), 0);
	cr_assert_eq(pipe(err), 0);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		dup2(out[1], 1);
		dup2(err[1], 2);
		close(out[0]);
		close(err[0]);
		setenv("ASAN_OPTIONS", "detect_leaks=1", 1);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	slurp(out[0], r->out, sizeof(r->out));
	slurp(err[0], r->err, sizeof(r->err));
	close(out[0]);
	close(err[0]);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "kmpkg did not exit normally");
	r->status = WEXITSTATUS(st);
}

#define RUN(r, ...) run_kmpkg((r), (const char *const[]){ __VA_ARGS__, NULL })

Test(semver, cli_satisfies_statuses)
{
	struct run r;

	RUN(&r, "semver", "satisfies", "1.2.3", "^1.2.3");
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "1.2.3 satisfies >=1.2.3 <2.0.0-0\n");
	RUN(&r, "semver", "satisfies", "2.0.0", "^1.2.3");
	cr_assert_eq(r.status, 1);
	cr_assert_str_eq(r.err, "");
	RUN(&r, "--quiet", "semver", "satisfies", "1.2.3", "");
	cr_assert_eq(r.status, 0);
	cr_assert_str_eq(r.out, "");
	RUN(&r, "semver", "satisfies", "1.2", "^1.2.3");
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "error[E_SEMVER_INVALID]") != NULL, "%s", r.err);
	cr_assert(strstr(r.err, "next step:") != NULL);
	RUN(&r, "semver", "satisfies", "1.2.3", "^1.2.3 ||| 2");
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "error[E_RANGE_INVALID]") != NULL, "%s", r.err);
	RUN(&r, "semver", "satisfies", "1.2.3");
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "E_USAGE") != NULL);
}

Test(semver, cli_satisfies_json)
{
	struct run r;
	json_t *j, *e;

	RUN(&r, "--json", "semver", "satisfies", "v1.2.3+b", ">= 1.2.3");
	cr_assert_eq(r.status, 0);
	cr_assert_str_eq(r.out, "{\"satisfies\":true,\"version\":\"1.2.3\",\"range\":\">=1.2.3\"}\n");
	RUN(&r, "semver", "--json", "satisfies", "1.2.3", "^1.2.3");
	cr_assert_str_eq(r.out, "{\"satisfies\":true,\"version\":\"1.2.3\",\"range\":\">=1.2.3 <2.0.0-0\"}\n");
	RUN(&r, "--json", "semver", "satisfies", "1.2.3-pre", "^1.2.3");
	cr_assert_eq(r.status, 1);
	cr_assert_str_eq(r.out, "{\"satisfies\":false,\"version\":\"1.2.3-pre\",\"range\":\">=1.2.3 <2.0.0-0\"}\n");

	RUN(&r, "--json", "semver", "satisfies", "nope", "^1");
	cr_assert_eq(r.status, 2);
	j = json_loads(r.out, 0, NULL);
	cr_assert_not_null(j, "not JSON: %s", r.out);
	e = json_object_get(j, "error");
	cr_assert_str_eq(json_string_value(json_object_get(e, "code")), "E_SEMVER_INVALID");
	cr_assert_str_eq(json_string_value(json_object_get(e, "field")), "version");
	cr_assert(strlen(json_string_value(json_object_get(e, "next_step"))) > 0);
	json_decref(j);

	RUN(&r, "--json", "semver", "satisfies", "1.2.3", "^\xff");
	cr_assert_eq(r.status, 2);
	j = json_loads(r.out, 0, NULL);
	cr_assert_not_null(j, "not JSON: %s", r.out);
	e = json_object_get(j, "error");
	cr_assert_str_eq(json_string_value(json_object_get(e, "code")), "E_RANGE_INVALID");
	cr_assert_str_eq(json_string_value(json_object_get(e, "field")), "range");
	json_decref(j);
}

Test(semver, cli_compare)
{
	struct run r;

	RUN(&r, "semver", "compare", "1.2.3", "1.10.0");
	cr_assert_eq(r.status, 0);
	cr_assert_str_eq(r.out, "-1\n");
	RUN(&r, "semver", "compare", "1.2.3+a", "v1.2.3+b");
	cr_assert_str_eq(r.out, "0\n");
	RUN(&r, "--quiet", "semver", "compare", "2.0.0", "2.0.0-rc.1");
	cr_assert_eq(r.status, 0);
	cr_assert_str_eq(r.out, "1\n");
	RUN(&r, "--json", "semver", "compare", "2.0.0", "2.0.0-rc.1");
	cr_assert_str_eq(r.out, "{\"compare\":1,\"a\":\"2.0.0\",\"b\":\"2.0.0-rc.1\"}\n");
	RUN(&r, "semver", "compare", "2.0", "2.0.0");
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "E_SEMVER_INVALID") != NULL);
	RUN(&r, "--json", "semver", "compare", "2.0.0", "x");
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.out, "\"field\":\"version\"") != NULL, "%s", r.out);
}

Test(semver, cli_valid)
{
	struct run r;

	RUN(&r, "semver", "valid", " v1.2.3-rc.1+build.5 ");
	cr_assert_eq(r.status, 0);
	cr_assert_str_eq(r.out, "1.2.3-rc.1\n");
	RUN(&r, "--json", "semver", "valid", "1.2.3+build.5");
	cr_assert_eq(r.status, 0);
	cr_assert_str_eq(r.out, "{\"valid\":true,\"input\":\"1.2.3+build.5\",\"version\":\"1.2.3\",\"build\":\"build.5\"}\n");
	RUN(&r, "semver", "valid", "1.2");
	cr_assert_eq(r.status, 1);
	cr_assert_str_eq(r.out, "");
	RUN(&r, "--json", "semver", "valid", "=1.2.3");
	cr_assert_eq(r.status, 1);
	cr_assert(strncmp(r.out, "{\"valid\":false,\"input\":\"=1.2.3\",\"reason\":", 41) == 0, "%s", r.out);
	cr_assert(strstr(r.out, "\"error\"") == NULL);
	RUN(&r, "--json", "semver", "valid", "\xff\xfe");
	cr_assert_eq(r.status, 1);
	cr_assert(strncmp(r.out, "{\"valid\":false", 14) == 0, "%s", r.out);
}

Test(semver, cli_usage)
{
	struct run r;

	RUN(&r, "semver");
	cr_assert_eq(r.status, 2);
	RUN(&r, "semver", "bogus", "1");
	cr_assert_eq(r.status, 2);
	RUN(&r, "semver", "valid");
	cr_assert_eq(r.status, 2);
	RUN(&r, "semver", "valid", "1.0.0", "2.0.0");
	cr_assert_eq(r.status, 2);
	RUN(&r, "semver", "--help");
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "kmpkg semver satisfies") != NULL);
	RUN(&r, "semver", "satisfies", "--", "1.0.0", ">=1");
	cr_assert_eq(r.status, 0);
}
