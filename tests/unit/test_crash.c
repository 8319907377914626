/* crash: kill -9 (KMPKG_FAULT) at every named point of install, update,
 * failing update, rollback, remove and gc, and inside recovery itself; the
 * next command must recover to a consistent state and the same command,
 * re-run, must succeed. */
#include "kmfix.h"
#include "kmpkg/fault.h"

static char *W;

static void setup(void)
{
	W = fx_tmpdir();
}

static void teardown(void)
{
	fx_rmrf(W);
	free(W);
}

TestSuite(crash, .init = setup, .fini = teardown, .timeout = 120);

static const char *const pkg_points[] = {
	"download:start", "download:end", "verify:start", "verify:after-extract", "verify:after-store",
	"verify:end", "dependency-prepare:start", "dependency-prepare:end", "activate:start",
	"activate:after-gendir", "activate:after-swap", "activate:end", "health-check:start",
	"health-check:after-run", "health-check:end", "commit:after-record", NULL,
};

/* update differs from install in verify and activate only */
static const char *const update_points[] = {
	"verify:after-store", "activate:after-gendir", "activate:after-swap", "health-check:after-run", NULL,
};

static const char *const failing_points[] = {
	"activate:after-swap", "activate:end", "health-check:start", "health-check:after-run", "health-check:end",
	"rollback:start", "rollback:after-swap", "rollback:after-commit", "rollback:after-quarantine", NULL,
};

/* rollback to a known-good generation records only activation, then commits */
static const char *const switch_points[] = {
	"activate:start", "activate:after-swap", "activate:end", "commit:after-record", NULL,
};

/* rollback NAME builds a new generation: the steps rollback GEN lacks */
static const char *const plugin_points[] = {
	"activate:after-gendir", "activate:after-swap", "health-check:end", NULL,
};

/* Not health-check:end: the commit that ends the health check records the
 * outcome, so after a kill there the plugin is removed and a re-run says so. */
static const char *const remove_points[] = {
	"dependency-prepare:start", "dependency-prepare:end", "activate:start", "activate:after-gendir",
	"activate:after-swap", "activate:end", "health-check:start", NULL,
};

static const char *const gc_points[] = {
	"gc:after-commit", "discard:after-rename", "gc:after-generations", "gc:after-store", NULL,
};

static void copy_root(const char *from, const char *to)
{
	char cmd[1200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", to, from, to);
	cr_assert_eq(system(cmd), 0);
}

/* For each point: a copy of base, the command killed there, a reader that
 * recovers, the invariants, the command again with rerun_status. */
static void sweep(const char *base, const char *const *cmd, const char *const *points, int rerun_status)
{
	char *dst = fx_path(W, "victim");
	size_t i;

	for (i = 0; points[i]; i++) {
		struct kres r;

		copy_root(base, dst);
		r = fx_runv(dst, points[i], cmd);
		cr_assert_eq(r.status, -SIGKILL, "%s %s: fault point %s not reached (status %d): %s", cmd[0],
			     cmd[1] ? cmd[1] : "", points[i], r.status, r.err);
		fx_free(&r);
		fx_ok(0, dst, NULL, "list", NULL);
		fx_check_invariants(dst);
		r = fx_runv(dst, NULL, cmd);
		cr_assert_eq(r.status, rerun_status, "re-run after a kill at %s: status %d: %s", points[i], r.status,
			     r.err);
		fx_free(&r);
		fx_check_invariants(dst);
	}
	fx_rmrf(dst);
	free(dst);
}

static char *empty_base(void)
{
	char *b = fx_path(W, "base");

	cr_assert_eq(mkdir(b, 0755), 0);
	return b;
}

Test(crash, install)
{
	char *b = empty_base(), *p = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL);
	const char *cmd[] = { "install", p, NULL };

	sweep(b, cmd, pkg_points, 0);
	free(p);
	free(b);
}

Test(crash, update)
{
	char *b = empty_base(), *p = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL), *q = fx_pkg(W, "foo", "1.1.0", TOOL_OK, NULL);
	const char *cmd[] = { "update", q, NULL };

	fx_ok(0, b, NULL, "install", p, NULL);
	sweep(b, cmd, update_points, 0);
	free(p);
	free(q);
	free(b);
}

/* install --reinstall of an installed package whose entry was changed */
static const char *const reinstall_points[] = {
	"download:end", "verify:after-extract", "verify:after-exchange", "verify:end", "dependency-prepare:end", NULL,
};

Test(crash, reinstall)
{
	char *b = empty_base(), *p = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL), *f;
	const char *cmd[] = { "install", "--reinstall", p, NULL };
	FILE *fp;

	fx_ok(0, b, NULL, "install", p, NULL);
	f = fx_path(b, "kmpkg/generations/1/foo/kmpkg.yaml");
	fp = fopen(f, "a");
	cr_assert_not_null(fp);
	fputs("# changed\n", fp);
	fclose(fp);
	sweep(b, cmd, reinstall_points, 0);
	free(f);
	free(p);
	free(b);
}

Test(crash, failing_update)
{
	char *b = empty_base(), *p = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL), *q = fx_pkg(W, "foo", "1.1.0", TOOL_FAIL, NULL);
	const char *cmd[] = { "update", q, NULL };

	fx_ok(0, b, NULL, "install", p, NULL);
	sweep(b, cmd, failing_points, 6);
	free(p);
	free(q);
	free(b);
}

Test(crash, rollback)
{
	char *b = empty_base(), *p = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL), *q = fx_pkg(W, "foo", "1.1.0", TOOL_OK, NULL);
	const char *cmd[] = { "rollback", NULL };
	const char *cmd1[] = { "rollback", "foo", NULL };

	fx_ok(0, b, NULL, "install", p, NULL);
	fx_ok(0, b, NULL, "update", q, NULL);
	sweep(b, cmd, switch_points, 0);
	sweep(b, cmd1, plugin_points, 0);
	free(p);
	free(q);
	free(b);
}

Test(crash, remove)
{
	char *b = empty_base(), *p = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL);
	const char *cmd[] = { "remove", "foo", NULL };

	fx_ok(0, b, NULL, "install", p, NULL);
	sweep(b, cmd, remove_points, 0);
	free(p);
	free(b);
}

Test(crash, gc)
{
	char *b = empty_base(), *p = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL), *q = fx_pkg(W, "foo", "1.1.0", TOOL_OK, NULL);
	char *x = fx_pkg(W, "foo", "1.2.0", TOOL_FAIL, NULL);
	const char *cmd[] = { "gc", "--keep", "1", NULL };

	fx_ok(0, b, NULL, "install", p, NULL);
	fx_ok(0, b, NULL, "update", q, NULL);
	fx_ok(6, b, NULL, "update", x, NULL);
	sweep(b, cmd, gc_points, 0);
	free(p);
	free(q);
	free(x);
	free(b);
}

/* Recovery killed at each of its own steps is finished by the next command. */
Test(crash, recovery_itself)
{
	static const char *const after_activation[] = {
		"recovery:start", "rollback:start", "rollback:after-swap", "rollback:after-commit",
		"rollback:after-quarantine", NULL,
	};
	char *b = empty_base(), *p = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL), *q = fx_pkg(W, "foo", "1.1.0", TOOL_OK, NULL);
	char *v = fx_path(W, "victim");
	const char *cmd[] = { "update", q, NULL };
	struct kres r;
	size_t i;

	fx_ok(0, b, NULL, "install", p, NULL);
	for (i = 0; after_activation[i]; i++) {
		copy_root(b, v);
		r = fx_runv(v, "activate:after-swap", cmd);
		cr_assert_eq(r.status, -SIGKILL);
		fx_free(&r);
		r = fx_run(v, after_activation[i], "status", NULL);
		/* rollback:after-quarantine is not reached when nothing failed a check */
		cr_assert(r.status == -SIGKILL || strcmp(after_activation[i], "rollback:after-quarantine") == 0,
			  "recovery point %s not reached (%d)", after_activation[i], r.status);
		fx_free(&r);
		fx_ok(0, v, NULL, "list", NULL);
		fx_check_invariants(v);
		cr_assert_eq(fx_meta(v, "active"), 1);
		fx_ok(0, v, NULL, "update", q, NULL);
		fx_check_invariants(v);
	}
	/* Not yet activated: aborted, the half-made generation removed. */
	copy_root(b, v);
	r = fx_runv(v, "activate:after-gendir", cmd);
	cr_assert_eq(r.status, -SIGKILL);
	fx_free(&r);
	r = fx_run(v, "recovery:after-discard", "history", NULL);
	cr_assert_eq(r.status, -SIGKILL);
	fx_free(&r);
	r = fx_run(v, NULL, "--json", "history", NULL);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "\"aborted\""), "%s", r.out);
	fx_free(&r);
	fx_check_invariants(v);
	{
		char *g = fx_path(v, "kmpkg/generations/2");

		cr_assert_eq(access(g, F_OK), -1);
		free(g);
	}
	fx_rmrf(v);
	free(v);
	free(p);
	free(q);
	free(b);
}

/* Every point listed in src/fault.c is exercised by some sweep above. */
Test(crash, every_fault_point_is_swept)
{
	const char *const *lists[] = { pkg_points, failing_points, switch_points, remove_points, gc_points,
				       reinstall_points, NULL };
	static const char *const extra[] = { "recovery:start", "recovery:after-discard", NULL };
	size_t i, j, k;

	for (i = 0; kmpkg_fault_points[i]; i++) {
		bool found = false;

		for (j = 0; lists[j] && !found; j++)
			for (k = 0; lists[j][k] && !found; k++)
				found = strcmp(lists[j][k], kmpkg_fault_points[i]) == 0;
		for (k = 0; extra[k] && !found; k++)
			found = strcmp(extra[k], kmpkg_fault_points[i]) == 0;
		cr_assert(found, "fault point %s is never swept", kmpkg_fault_points[i]);
	}
}
