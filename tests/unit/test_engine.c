/* engine: install, update, health-check rollback, quarantine, remove,
 * rollback, gc, dry-run, lock and bad input through the sanitized kmpkg. */
#include <lmdb.h>
#include <sys/stat.h>

#include "kmfix.h"
#include "kmpkg/lock.h"
#include "kmpkg/txn.h"

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

TestSuite(engine, .init = setup, .fini = teardown, .timeout = 60);

static json_t *json_of(const char *s)
{
	json_error_t je;
	json_t *j = json_loads(s, 0, &je);

	cr_assert_not_null(j, "not JSON: %s", s);
	return j;
}

Test(engine, install_local_end_to_end)
{
	char *p = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL), *link, *store;
	json_t *rec, *txns, *t, *doc;
	struct kres r = fx_run(R, NULL, "--json", "install", p, NULL);
	const char *k, *id;

	cr_assert_eq(r.status, 0, "%s", r.err);
	doc = json_of(r.out);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "outcome")), "committed");
	id = json_string_value(json_object_get(doc, "id"));
	cr_assert_eq(strlen(id), 36);
	cr_assert_eq(id[14], '7', "UUIDv7 version nibble: %s", id);
	cr_assert(strchr("89ab", id[19]) != NULL, "RFC 9562 variant: %s", id);

	link = fx_readlink(R, "plugins");
	cr_assert_str_eq(link, "kmpkg/generations/1");
	free(link);
	link = fx_readlink(R, "kmpkg/generations/1/foo");
	cr_assert_eq(strncmp(link, "../../store/foo-1.0.0-", 22), 0, "%s", link);
	cr_assert_eq(strlen(link), 22 + 12);
	store = fx_path(R, "kmpkg/generations/1/foo/bin/tool");
	cr_assert_eq(access(store, X_OK), 0);
	free(store);
	store = fx_path(R, "kmpkg/tmp");
	cr_assert_eq(fx_count(store), 0);
	free(store);

	rec = fx_get(R, KMPKG_DB_INSTALLED, "foo");
	cr_assert_not_null(rec);
	cr_assert_str_eq(json_string_value(json_object_get(rec, "version")), "1.0.0");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "entry")), link + 12);
	/* The file list is in the files db under the entry; the installed and
	 * store records are lean. */
	cr_assert_null(json_object_get(rec, "files"));
	cr_assert_geq(json_integer_value(json_object_get(rec, "nfiles")), 2);
	{
		const char *entry = json_string_value(json_object_get(rec, "entry"));
		json_t *srec = fx_get(R, KMPKG_DB_STORE, entry), *files = fx_get(R, KMPKG_DB_FILES, entry);

		cr_assert_not_null(srec);
		cr_assert_null(json_object_get(srec, "files"));
		cr_assert_str_eq(json_string_value(json_object_get(srec, "entry")), entry);
		cr_assert_not_null(files);
		cr_assert_geq(json_array_size(files), 2);
		{
			size_t fi, digests = 0;
			json_t *f;

			json_array_foreach(files, fi, f)
				digests += json_string_length(json_object_get(f, "sha256")) == 64;
			cr_assert_geq(digests, 1);
		}
		json_decref(srec);
		json_decref(files);
	}
	cr_assert_eq(strlen(json_string_value(json_object_get(rec, "sha256"))), 64);
	cr_assert_eq(fx_meta(R, "active"), 1);
	cr_assert_eq(fx_meta(R, "known_good"), 1);
	cr_assert_eq(fx_meta(R, "schema"), 1);

	txns = fx_all(R, KMPKG_DB_TXNS);
	cr_assert_eq(json_object_size(txns), 1);
	json_object_foreach(txns, k, t) {
		cr_assert_str_eq(json_string_value(json_object_get(t, "outcome")), "committed");
		cr_assert_str_eq(json_string_value(json_object_get(t, "phase")), "health-check");
	}
	fx_check_invariants(R);
	json_decref(txns);
	json_decref(rec);
	free(link);
	free(p);
	json_decref(doc);
	fx_free(&r);

	r = fx_run(R, NULL, "list", NULL);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "foo") && strstr(r.out, "1.0.0"), "%s", r.out);
	fx_free(&r);
}

Test(engine, journal_has_every_phase_start_and_end)
{
	char *p = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL);
	struct kres r;
	json_t *j, *ev;
	size_t i;
	const char *want[] = { "download", "verify", "dependency-prepare", "activate", "health-check" };

	fx_ok(0, R, NULL, "install", "--correlation-id", "ci-run-42", p, NULL);
	r = fx_run(R, NULL, "--json", "show", "ci-run", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	j = json_of(r.out);
	cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "ci-run-42");
	cr_assert_eq(json_array_size(json_object_get(j, "journal")), 10);
	json_array_foreach(json_object_get(j, "journal"), i, ev) {
		cr_assert_str_eq(json_string_value(json_object_get(ev, "phase")), want[i / 2]);
		cr_assert_str_eq(json_string_value(json_object_get(ev, "event")), i % 2 ? "end" : "start");
		if (i % 2)
			cr_assert(json_is_integer(json_object_get(ev, "duration_ms")));
	}
	ev = json_array_get(json_object_get(j, "journal"), 9);
	cr_assert(strstr(json_string_value(json_object_get(json_array_get(json_object_get(ev, "output"), 0), "output")),
			 "foo 1.0.0 health output"));
	json_decref(j);
	fx_free(&r);
	fx_ok(2, R, NULL, "install", "--correlation-id", "ci-run-42", p, NULL); /* reused */
	fx_ok(2, R, NULL, "install", "--correlation-id", "bad id!", p, NULL);
	fx_ok(9, R, NULL, "show", "nope", NULL);
	free(p);
}

Test(engine, failing_update_rolls_back_and_quarantines)
{
	char *p1 = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL);
	char *p2 = fx_pkg(W, "foo", "1.1.0", TOOL_FAIL, NULL);
	struct kres r;
	json_t *e, *rec, *txn;
	char *q, *link;

	fx_ok(0, R, NULL, "install", p1, NULL);
	r = fx_run(R, NULL, "--json", "update", "--correlation-id", "bad-update", p2, NULL);
	cr_assert_eq(r.status, 6, "%s %s", r.out, r.err);
	e = json_of(r.out);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(e, "error"), "code")), "E_HEALTH_FAILED");
	json_decref(e);
	fx_free(&r);

	link = fx_readlink(R, "plugins");
	cr_assert_str_eq(link, "kmpkg/generations/1");
	free(link);
	rec = fx_get(R, KMPKG_DB_INSTALLED, "foo");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "version")), "1.0.0");
	json_decref(rec);
	txn = fx_get(R, KMPKG_DB_TXNS, "bad-update");
	cr_assert_str_eq(json_string_value(json_object_get(txn, "outcome")), "rolled-back");
	cr_assert_eq(json_integer_value(json_object_get(txn, "returned_to")), 1);
	cr_assert(strstr(json_string_value(json_object_get(txn, "reason")), "exited with status 1"));
	json_decref(txn);

	q = fx_path(R, "kmpkg/quarantine/foo-1.1.0-bad-update/health-output.txt");
	{
		FILE *f = fopen(q, "r");
		char buf[512] = "";

		cr_assert_not_null(f, "no %s", q);
		cr_assert_gt(fread(buf, 1, sizeof(buf) - 1, f), 0);
		fclose(f);
		cr_assert(strstr(buf, "foo 1.1.0 health output") && strstr(buf, "to stderr"), "%s", buf);
	}
	free(q);
	q = fx_path(R, "kmpkg/quarantine/foo-1.1.0-bad-update/package/bin/tool");
	cr_assert_eq(access(q, F_OK), 0);
	free(q);
	q = fx_path(R, "kmpkg/generations/2");
	cr_assert_eq(access(q, F_OK), -1, "failed generation left behind");
	free(q);
	q = fx_path(R, "kmpkg/store");
	cr_assert_eq(fx_count(q), 1, "failed store entry not quarantined");
	free(q);
	fx_check_invariants(R);

	/* The next generation number is not reused. */
	free(p1);
	p1 = fx_pkg(W, "foo", "1.2.0", TOOL_OK, NULL);
	fx_ok(0, R, NULL, "update", p1, NULL);
	link = fx_readlink(R, "plugins");
	cr_assert_str_eq(link, "kmpkg/generations/3");
	free(link);
	free(p1);
	free(p2);
}

Test(engine, first_install_failing_returns_to_empty_generation)
{
	char *p = fx_pkg(W, "foo", "1.0.0", TOOL_FAIL, NULL), *link;

	fx_ok(6, R, NULL, "install", p, NULL);
	link = fx_readlink(R, "plugins");
	cr_assert_str_eq(link, "kmpkg/generations/0");
	fx_check_invariants(R);
	free(link);
	free(p);
}

Test(engine, health_command_missing_or_not_executable)
{
	char *p = fx_pkg(W, "foo", "1.0.0", TOOL_MISSING, NULL);
	char *q = fx_pkg(W, "bar", "1.0.0", TOOL_NOEXEC, NULL);
	struct kres r = fx_run(R, NULL, "--json", "install", p, NULL);
	json_t *e = json_of(r.out), *err = json_object_get(e, "error");
	char *store;

	cr_assert_eq(r.status, 4);
	cr_assert_str_eq(json_string_value(json_object_get(err, "code")), "E_HEALTH_COMMAND_MISSING");
	cr_assert_str_eq(json_string_value(json_object_get(err, "field")), "/health_check/command/0");
	json_decref(e);
	fx_free(&r);
	r = fx_run(R, NULL, "install", q, NULL);
	cr_assert_eq(r.status, 4);
	cr_assert(strstr(r.err, "E_HEALTH_COMMAND_MISSING") && strstr(r.err, "not an executable"), "%s", r.err);
	fx_free(&r);
	store = fx_path(R, "kmpkg/store");
	cr_assert_eq(fx_count(store), 0);
	free(store);
	fx_check_invariants(R);
	free(p);
	free(q);
}

/* Two packages in one transaction: verify extracts both into the staging,
 * makes them (and the new generation's links) durable with one syncfs and
 * only then publishes them. The second refused after its extraction: the
 * first is not left in the store either. Both good: one generation holding
 * both. */
Test(engine, multi_package_verify_publishes_all_or_nothing)
{
	char *a = fx_pkg(W, "alpha", "1.0.0", TOOL_OK, NULL), *b = fx_pkg(W, "beta", "1.0.0", TOOL_NOEXEC, NULL);
	char *store = fx_path(R, "kmpkg/store"), *gens = fx_path(R, "kmpkg/generations"), *tmp = fx_path(R, "kmpkg/tmp");
	char *link;

	fx_ok(4, R, NULL, "install", a, b, NULL);
	cr_assert_eq(fx_count(store), 0, "an entry of the refused transaction was published");
	cr_assert_eq(fx_count(gens), 1, "only generation 0");
	cr_assert_eq(fx_count(tmp), 0, "staging left behind");
	free(b);
	b = fx_pkg(W, "beta", "1.0.0", TOOL_OK, NULL);
	fx_ok(0, R, NULL, "install", a, b, NULL);
	cr_assert_eq(fx_count(store), 2);
	link = fx_readlink(R, "plugins/alpha");
	cr_assert_not_null(link);
	free(link);
	link = fx_readlink(R, "plugins/beta");
	cr_assert_not_null(link);
	free(link);
	cr_assert_eq(fx_count(tmp), 0, "staging left behind");
	fx_check_invariants(R);
	free(a);
	free(b);
	free(store);
	free(gens);
	free(tmp);
}

Test(engine, corrupt_truncated_and_manifestless_archives)
{
	char *good = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL), cmd[1024], *link;
	char *bad = fx_path(W, "garbage.kmpkg"), *trunc = fx_path(W, "trunc.kmpkg"), *nom = fx_path(W, "nom.kmpkg");

	fx_ok(0, R, NULL, "install", good, NULL);
	snprintf(cmd, sizeof(cmd),
		 "head -c 3000 /dev/urandom > '%s' && head -c 100 '%s' > '%s' && mkdir -p '%s/nm' && echo x > '%s/nm/a' && tar czf '%s' -C '%s/nm' .",
		 bad, good, trunc, W, W, nom, W);
	cr_assert_eq(system(cmd), 0);
	fx_ok(4, R, NULL, "install", bad, NULL);
	fx_ok(4, R, NULL, "install", trunc, NULL);
	fx_ok(4, R, NULL, "install", nom, NULL);
	fx_ok(9, R, NULL, "install", "/nonexistent/x.kmpkg", NULL);
	link = fx_readlink(R, "plugins");
	cr_assert_str_eq(link, "kmpkg/generations/1");
	cr_assert_eq(fx_meta(R, "next_gen"), 2);
	fx_check_invariants(R);
	free(link);
	free(good);
	free(bad);
	free(trunc);
	free(nom);
}

Test(engine, install_by_name_needs_a_source)
{
	struct kres r = fx_run(R, NULL, "install", "foo@^1.0.0", NULL);

	cr_assert_eq(r.status, 9);
	cr_assert(strstr(r.err, "installing by name needs a source (kmpkg source add)"), "%s", r.err);
	fx_free(&r);
}

Test(engine, dependencies_checked_and_removal_refused)
{
	char *lib = fx_pkg(W, "json-helpers", "1.2.0", TOOL_OK, NULL);
	char *lib2 = fx_pkg(W, "json-helpers", "2.0.0", TOOL_OK, NULL);
	char *app = fx_pkg(W, "exporter", "1.0.0", TOOL_OK, "dependencies:\n  json-helpers: \"^1.0.0\"\n");
	struct kres r = fx_run(R, NULL, "--json", "install", app, NULL);
	json_t *e = json_of(r.out), *err = json_object_get(e, "error");

	cr_assert_eq(r.status, 5);
	cr_assert_str_eq(json_string_value(json_object_get(err, "code")), "E_DEPENDENCY_MISSING");
	cr_assert_str_eq(json_string_value(json_object_get(err, "field")), "/dependencies/json-helpers");
	json_decref(e);
	fx_free(&r);
	fx_check_invariants(R);

	fx_ok(0, R, NULL, "install", app, lib, NULL); /* both in one transaction */
	fx_ok(5, R, NULL, "update", lib2, NULL);      /* would break exporter */
	r = fx_run(R, NULL, "remove", "json-helpers", NULL);
	cr_assert_eq(r.status, 5);
	cr_assert(strstr(r.err, "E_DEPENDENT_BROKEN") && strstr(r.err, "exporter"), "%s", r.err);
	fx_free(&r);
	fx_ok(9, R, NULL, "remove", "nothere", NULL);
	fx_ok(0, R, NULL, "remove", "exporter", "json-helpers", NULL);
	e = fx_all(R, KMPKG_DB_INSTALLED);
	cr_assert_eq(json_object_size(e), 0);
	json_decref(e);
	fx_check_invariants(R);
	fx_ok(0, R, NULL, "install", app, lib, NULL);
	fx_ok(0, R, NULL, "remove", "--force", "json-helpers", NULL);
	e = fx_all(R, KMPKG_DB_INSTALLED);
	cr_assert_eq(json_object_size(e), 1);
	json_decref(e);
	free(lib);
	free(lib2);
	free(app);
}

Test(engine, update_rules)
{
	char *p1 = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL), *p2 = fx_pkg(W, "foo", "2.0.0", TOOL_OK, NULL);
	struct kres r;

	fx_ok(9, R, NULL, "update", p1, NULL); /* not installed */
	fx_ok(0, R, NULL, "install", p2, NULL);
	fx_ok(1, R, NULL, "update", p1, NULL); /* older */
	r = fx_run(R, NULL, "update", p2, NULL); /* same: nothing to do */
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "nothing to do"), "%s", r.out);
	fx_free(&r);
	cr_assert_eq(fx_meta(R, "active"), 1);
	fx_ok(0, R, NULL, "install", p1, NULL); /* install replaces any version */
	cr_assert_eq(fx_meta(R, "active"), 2);
	free(p1);
	free(p2);
}

Test(engine, rollback_generation_and_plugin)
{
	char *a1 = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL), *a2 = fx_pkg(W, "foo", "1.1.0", TOOL_OK, NULL);
	char *a3 = fx_pkg(W, "foo", "1.2.0", TOOL_OK, NULL), *b1 = fx_pkg(W, "bar", "0.1.0", TOOL_OK, NULL);
	json_t *rec;

	fx_ok(9, R, NULL, "rollback", NULL); /* nothing before generation 0 */
	fx_ok(0, R, NULL, "install", a1, NULL); /* gen 1 */
	fx_ok(0, R, NULL, "update", a2, NULL);  /* gen 2 */
	fx_ok(0, R, NULL, "install", b1, NULL); /* gen 3 */
	fx_ok(0, R, NULL, "update", a3, NULL);  /* gen 4 */
	fx_ok(0, R, NULL, "rollback", NULL);    /* -> gen 3 */
	cr_assert_eq(fx_meta(R, "active"), 3);
	rec = fx_get(R, KMPKG_DB_INSTALLED, "foo");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "version")), "1.1.0");
	json_decref(rec);
	fx_ok(0, R, NULL, "rollback", NULL); /* -> gen 2: bar goes */
	cr_assert_eq(fx_meta(R, "active"), 2);
	cr_assert_null(fx_get(R, KMPKG_DB_INSTALLED, "bar"));
	fx_check_invariants(R);
	fx_ok(0, R, NULL, "rollback", "--to", "4", NULL);
	cr_assert_eq(fx_meta(R, "active"), 4);
	fx_ok(9, R, NULL, "rollback", "--to", "99", NULL);
	fx_ok(2, R, NULL, "rollback", "--to", "x", NULL);

	/* One plugin: foo 1.2.0 -> 1.1.0 in a new generation, bar stays. */
	fx_ok(0, R, NULL, "rollback", "foo", NULL);
	cr_assert_eq(fx_meta(R, "active"), 5);
	rec = fx_get(R, KMPKG_DB_INSTALLED, "foo");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "version")), "1.1.0");
	json_decref(rec);
	rec = fx_get(R, KMPKG_DB_INSTALLED, "bar");
	cr_assert_not_null(rec);
	json_decref(rec);
	fx_ok(0, R, NULL, "rollback", "foo", "--to", "1.0.0", NULL);
	rec = fx_get(R, KMPKG_DB_INSTALLED, "foo");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "version")), "1.0.0");
	json_decref(rec);
	fx_ok(9, R, NULL, "rollback", "foo", "--to", "9.9.9", NULL);
	fx_ok(9, R, NULL, "rollback", "nothere", NULL);
	fx_check_invariants(R);
	free(a1);
	free(a2);
	free(a3);
	free(b1);
}

Test(engine, gc_keeps_active_and_known_good)
{
	char *p[4];
	char *d;
	int i;
	struct kres r;
	json_t *g;

	for (i = 0; i < 4; i++) {
		char v[16];

		snprintf(v, sizeof(v), "1.%d.0", i);
		p[i] = fx_pkg(W, "foo", v, i == 3 ? TOOL_FAIL : TOOL_OK, NULL);
	}
	fx_ok(0, R, NULL, "install", p[0], NULL);
	fx_ok(0, R, NULL, "update", p[1], NULL);
	fx_ok(0, R, NULL, "update", p[2], NULL);
	fx_ok(6, R, NULL, "update", p[3], NULL); /* quarantined */
	r = fx_run(R, NULL, "--json", "gc", "--dry-run", "--keep", "1", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	g = json_loads(r.out, 0, NULL);
	cr_assert_eq(json_array_size(json_object_get(g, "generations")), 3); /* 0, 1, 2 */
	cr_assert_eq(json_array_size(json_object_get(g, "quarantine")), 1);
	json_decref(g);
	fx_free(&r);
	d = fx_path(R, "kmpkg/generations");
	cr_assert_eq(fx_count(d), 4);
	fx_ok(0, R, NULL, "gc", "--keep", "1", NULL);
	cr_assert_eq(fx_count(d), 1);
	free(d);
	d = fx_path(R, "kmpkg/store");
	cr_assert_eq(fx_count(d), 1);
	free(d);
	d = fx_path(R, "kmpkg/cache");
	cr_assert_eq(fx_count(d), 1);
	free(d);
	d = fx_path(R, "kmpkg/quarantine");
	cr_assert_eq(fx_count(d), 0);
	free(d);
	g = fx_all(R, KMPKG_DB_STORE);
	cr_assert_eq(json_object_size(g), 1);
	json_decref(g);
	fx_check_invariants(R);
	fx_ok(9, R, NULL, "rollback", NULL); /* nothing kept before */
	for (i = 0; i < 4; i++)
		free(p[i]);
}

Test(engine, dry_run_changes_nothing)
{
	char *p = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL);
	struct kres r = fx_run(R, NULL, "install", "--dry-run", p, NULL);

	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "would install") && strstr(r.out, "foo 1.0.0"), "%s", r.out);
	cr_assert_eq(access(R, F_OK), -1, "dry run created the root");
	fx_free(&r);
	fx_ok(0, R, NULL, "install", p, NULL);
	fx_ok(0, R, NULL, "remove", "--dry-run", "foo", NULL);
	fx_ok(0, R, NULL, "rollback", "--dry-run", NULL);
	cr_assert_eq(fx_meta(R, "active"), 1);
	cr_assert_eq(fx_meta(R, "next_gen"), 2);
	free(p);
}

Test(engine, second_writer_gets_locked_and_readers_do_not_block)
{
	char *p = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL), pid[32];
	struct kmpkg_lock *l = NULL;
	struct kmpkg_state *st = NULL;
	struct kmpkg_state_txn *t = NULL;
	json_t *h;
	struct kres r;

	fx_ok(0, R, NULL, "install", p, NULL);
	cr_assert_eq(kmpkg_lock_acquire(&l, R, 0), 0);
	cr_assert_eq(kmpkg_state_open(&st, R, true), 0);
	cr_assert_eq(kmpkg_state_begin(&t, st, true), 0);
	h = json_pack("{s:i, s:s, s:s, s:s}", "pid", (int)getpid(), "id", "holder-txn", "op", "install", "phase", "verify");
	cr_assert_eq(kmpkg_state_puts(t, KMPKG_DB_LOCK, "holder", h), 0);
	cr_assert_eq(kmpkg_state_commit(t), 0);
	json_decref(h);
	kmpkg_state_free(st);

	r = fx_run(R, NULL, "--wait", "0", "remove", "foo", NULL);
	snprintf(pid, sizeof(pid), "pid %d", (int)getpid());
	cr_assert_eq(r.status, 8, "%s", r.err);
	cr_assert(strstr(r.err, "E_LOCKED") && strstr(r.err, pid) && strstr(r.err, "holder-txn"), "%s", r.err);
	fx_free(&r);
	r = fx_run(R, NULL, "list", NULL);
	cr_assert_eq(r.status, 0);
	fx_free(&r);
	r = fx_run(R, NULL, "status", NULL);
	cr_assert_eq(r.status, 0);
	fx_free(&r);
	kmpkg_lock_release(l);
	fx_ok(0, R, NULL, "remove", "foo", NULL);
	free(p);
}

Test(engine, history_status_info_show)
{
	char *p1 = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL), *p2 = fx_pkg(W, "foo", "1.1.0", TOOL_FAIL, NULL);
	struct kres r;
	json_t *j;

	fx_ok(0, R, NULL, "install", "--correlation-id", "aaa-1", p1, NULL);
	fx_ok(6, R, NULL, "update", "--correlation-id", "aaa-2", p2, NULL);
	r = fx_run(R, NULL, "--json", "history", NULL);
	cr_assert_eq(r.status, 0);
	j = json_loads(r.out, 0, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "transactions"), 0), "id")), "aaa-2");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "transactions"), 0), "outcome")), "rolled-back");
	json_decref(j);
	fx_free(&r);
	r = fx_run(R, NULL, "status", NULL);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "update foo 1.0.0 \u2192 1.1.0") && strstr(r.out, "rolled-back"), "%s", r.out);
	fx_free(&r);
	fx_ok(2, R, NULL, "show", "aaa", NULL); /* ambiguous */
	r = fx_run(R, NULL, "show", "aaa-2", NULL);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "health-check") && strstr(r.out, "rollback") && strstr(r.out, "foo 1.1.0 health output"),
		  "%s", r.out);
	fx_free(&r);
	r = fx_run(R, NULL, "--json", "info", "foo", NULL);
	cr_assert_eq(r.status, 0);
	j = json_loads(r.out, 0, NULL);
	cr_assert_eq(json_array_size(json_object_get(j, "history")), 2);
	cr_assert_geq(json_integer_value(json_object_get(j, "files_count")), 2);
	json_decref(j);
	fx_free(&r);
	fx_ok(9, R, NULL, "info", "nothere", NULL);
	free(p1);
	free(p2);
}

Test(engine, fsync_eio_fails_the_step_and_changes_nothing)
{
	char *p = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL), *q = fx_pkg(W, "foo", "1.1.0", TOOL_OK, NULL);
	int n, failed = 0;

	fx_ok(0, R, NULL, "install", p, NULL);
	for (n = 1; n < 40; n += 3) {
		char num[16];
		struct kres r;

		snprintf(num, sizeof(num), "%d", n);
		setenv("KMPKG_FAULT_FSYNC_EIO", num, 1);
		r = fx_run(R, NULL, "update", q, NULL);
		unsetenv("KMPKG_FAULT_FSYNC_EIO");
		cr_assert(r.status == 0 || r.status == 10, "fsync EIO #%d: status %d: %s", n, r.status, r.err);
		if (r.status == 10) {
			failed++;
			cr_assert(strstr(r.err, "E_IO"), "%s", r.err);
		}
		fx_free(&r);
		fx_ok(0, R, NULL, "list", NULL);
		fx_check_invariants(R);
		if (fx_meta(R, "active") != 1)
			fx_ok(0, R, NULL, "rollback", "foo", NULL);
	}
	cr_assert_gt(failed, 0);
	free(p);
	free(q);
}

/* Each of an install's commits failing in turn (EIO from LMDB), including
 * those queued on the committer thread (the starts of download, verify and
 * health-check, the end of download): exit 10 naming the state database,
 * the root consistent, and the same install re-run succeeds. */
Test(engine, each_failed_commit_of_an_install_is_recovered)
{
	char *p = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL);
	int n, failed = 0, passed = 0;

	for (n = 1; n <= 12; n++) {
		char num[16], *root = fx_path(W, "r");
		struct kres r;
		bool fail;

		fx_rmrf(root);
		fx_ok(0, root, NULL, "gc", NULL);
		snprintf(num, sizeof(num), "%d", n);
		setenv("KMPKG_FAULT_COMMIT_EIO", num, 1);
		r = fx_run(root, NULL, "install", p, NULL);
		unsetenv("KMPKG_FAULT_COMMIT_EIO");
		cr_assert(r.status == 0 || r.status == 10, "commit EIO #%d: status %d: %s", n, r.status, r.err);
		fail = r.status == 10;
		failed += fail;
		passed += !fail;
		if (fail)
			cr_assert(strstr(r.err, "E_IO") && strstr(r.err, "state database"), "#%d: %s", n, r.err);
		fx_free(&r);
		fx_ok(0, root, NULL, "list", NULL);
		fx_check_invariants(root);
		if (fail) {
			fx_ok(0, root, NULL, "install", p, NULL);
			fx_check_invariants(root);
		}
		/* a generation number used by a rolled-back attempt is not reused */
		cr_assert_gt(fx_meta(root, "active"), 0, "#%d: no generation active after the re-run", n);
		cr_assert_eq(fx_meta(root, "active"), fx_meta(root, "known_good"), "#%d", n);
		fx_rmrf(root);
		free(root);
	}
	/* ten commits in an install: the first ten fail, the rest pass */
	cr_assert_eq(failed, 10);
	cr_assert_eq(passed, 2);
	free(p);
}

/* A real full disk (a 1 MiB tmpfs in a user+mount namespace) and then a
 * read-only root: exit 10, the previous generation active, no staging. */
Test(engine, disk_full_and_read_only_root)
{
	char *small = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL), script[4096], *log = fx_path(W, "log"), buf[4096] = "";
	char *big = fx_path(W, "big.kmpkg");
	const char *bin = getenv("KMPKG_BIN");
	FILE *f;
	int rc;

	snprintf(script, sizeof(script),
		 "set -u; d='%s'; mkdir -p \"$d/big/bin\" \"$d/dfroot\" && cp \"$d/src-foo-1.0.0/kmpkg.yaml\" \"$d/big/\" && "
		 "sed -i 's/1.0.0/3.0.0/' \"$d/big/kmpkg.yaml\" && cp \"$d/src-foo-1.0.0/bin/tool\" \"$d/big/bin/\" && "
		 "head -c 2000000 /dev/urandom > \"$d/big/blob\" && tar czf '%s' -C \"$d/big\" . || exit 89; "
		 "unshare -rm sh -c '"
		 "r=%s/dfroot; mount -t tmpfs -o size=1m tmpfs $r || exit 90; "
		 "%s --root $r install %s >/dev/null 2>&1 || exit 91; "
		 "%s --root $r install %s 2>%s/err1; echo full=$?; "
		 "echo link=$(readlink $r/plugins); echo tmp=$(ls -A $r/kmpkg/tmp | wc -l); "
		 "echo cache=$(ls -A $r/kmpkg/cache | wc -l); "
		 "mount -o remount,ro $r; %s --root $r remove foo 2>%s/err2; echo ro=$?; "
		 "%s --root $r list; echo list=$?' > '%s' 2>&1",
		 W, big, W, bin, small, bin, big, W, bin, W, bin, log);
	rc = system(script);
	if (WIFEXITED(rc) && WEXITSTATUS(rc) == 90)
		cr_skip_test("cannot mount a tmpfs in a user namespace here");
	f = fopen(log, "r");
	cr_assert_not_null(f);
	cr_assert_gt(fread(buf, 1, sizeof(buf) - 1, f), 0);
	fclose(f);
	cr_assert(strstr(buf, "full=10\n"), "%s", buf);
	cr_assert(strstr(buf, "link=kmpkg/generations/1\n"), "%s", buf);
	cr_assert(strstr(buf, "tmp=0\n"), "%s", buf);
	cr_assert(strstr(buf, "cache=1\n"), "half-written archive in the cache: %s", buf);
	cr_assert(strstr(buf, "ro=10\n"), "%s", buf);
	cr_assert(strstr(buf, "foo") && strstr(buf, "list=0\n"), "%s", buf);
	free(log);
	log = fx_path(W, "err1");
	f = fopen(log, "r");
	cr_assert_not_null(f);
	cr_assert_gt(fread(buf, 1, sizeof(buf) - 1, f), 0);
	fclose(f);
	cr_assert(strstr(buf, "E_DISK_FULL"), "%s", buf);
	free(log);
	log = fx_path(W, "err2");
	f = fopen(log, "r");
	cr_assert_not_null(f);
	memset(buf, 0, sizeof(buf));
	cr_assert_gt(fread(buf, 1, sizeof(buf) - 1, f), 0);
	fclose(f);
	cr_assert(strstr(buf, "E_PERMISSION") && strstr(buf, "next step: remount"), "%s", buf);
	free(log);
	free(small);
	free(big);
}

/* status while a transaction runs: what, which phase, which pid; readers
 * do not wait and a second writer is refused. */
Test(engine, status_shows_the_transaction_in_flight)
{
	char *p1 = fx_pkg(W, "foo", "1.2.0", TOOL_OK, NULL), *p2 = fx_pkg(W, "foo", "1.3.0", TOOL_SLOW, NULL);
	const char *bin = getenv("KMPKG_BIN");
	char want[64];
	struct kres r = { 0, NULL, NULL };
	pid_t pid;
	int i, st;

	fx_ok(0, R, NULL, "install", p1, NULL);
	pid = fork();
	if (pid == 0) {
		int dn = open("/dev/null", O_WRONLY);

		dup2(dn, 1);
		dup2(dn, 2);
		execl(bin, bin, "--root", R, "update", "--correlation-id", "slow-one", p2, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 100; i++) {
		r = fx_run(R, NULL, "status", NULL);
		if (strstr(r.out, "health-check"))
			break;
		fx_free(&r);
		r.out = NULL;
		usleep(50 * 1000);
	}
	cr_assert_not_null(r.out, "never saw the health-check phase");
	snprintf(want, sizeof(want), "held by pid %d, transaction slow-one", (int)pid);
	cr_assert(strstr(r.out, "updating foo 1.2.0 \u2192 1.3.0 \u2014 phase 5/5 health-check"), "%s", r.out);
	cr_assert(strstr(r.out, want), "%s", r.out);
	fx_free(&r);
	fx_ok(8, R, NULL, "remove", "foo", NULL);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	r = fx_run(R, NULL, "status", NULL);
	cr_assert(strstr(r.out, "committed"), "%s", r.out);
	fx_free(&r);
	free(p1);
	free(p2);
}

/* Signatures go through kmpkg_sig_check in verify (openssl EC key). */
Test(engine, signatures_checked_in_verify)
{
	char *foo = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL), *bar = fx_pkg(W, "bar", "1.0.0", TOOL_OK, NULL);
	char *baz = fx_pkg(W, "baz", "1.0.0", TOOL_OK, NULL), cmd[2048], *pub = fx_path(W, "pub.pem");
	char *wrong = fx_path(W, "wrong.sig");
	json_t *rec;

	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem 2>/dev/null && "
		 "openssl pkey -in key.pem -pubout -out pub.pem && "
		 "openssl dgst -sha256 -sign key.pem -out '%s.sig' '%s' && "
		 "openssl dgst -sha256 -sign key.pem -out wrong.sig '%s'",
		 W, bar, bar, foo);
	cr_assert_eq(system(cmd), 0);
	fx_ok(0, R, NULL, "key", "add", pub, NULL);
	fx_ok(4, R, NULL, "install", foo, NULL);
	fx_check_invariants(R);
	fx_ok(0, R, NULL, "install", "--allow-unsigned", foo, NULL);
	fx_ok(0, R, NULL, "install", bar, NULL);
	rec = fx_get(R, KMPKG_DB_INSTALLED, "bar");
	cr_assert(json_is_true(json_object_get(json_object_get(rec, "signature"), "verified")));
	json_decref(rec);
	fx_ok(4, R, NULL, "install", "--signature", wrong, baz, NULL);
	cr_assert_null(fx_get(R, KMPKG_DB_INSTALLED, "baz"));
	fx_check_invariants(R);
	free(foo);
	free(bar);
	free(baz);
	free(pub);
	free(wrong);
}

/* The API a source resolver uses: expectations and remembered constraints. */
Test(engine, targets_api_checks_expectations_and_keeps_constraints)
{
	char *p = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL);
	struct kmpkg_txn_opts o = { 0 };
	struct kmpkg_txn_target t = { 0 };
	json_t *out = NULL, *rec;

	o.root = R;
	t.path = p;
	t.expect_sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
	cr_assert_eq(kmpkg_txn_install_targets(&out, &o, &t, 1, false), KMPKG_EVERIFY);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_DIGEST_MISMATCH");
	json_decref(out);
	t.expect_sha256 = NULL;
	t.expect_name = "bar";
	cr_assert_eq(kmpkg_txn_install_targets(&out, &o, &t, 1, false), KMPKG_EVERIFY);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_MANIFEST_MISMATCH");
	cr_assert_str_eq(kmpkg_error_last()->field, "/name");
	json_decref(out);
	t.expect_name = "foo";
	t.expect_version = "1.0.1";
	cr_assert_eq(kmpkg_txn_install_targets(&out, &o, &t, 1, false), KMPKG_EVERIFY);
	cr_assert_str_eq(kmpkg_error_last()->field, "/version");
	json_decref(out);
	fx_check_invariants(R);
	t.expect_version = "1.0.0";
	t.constraint = "^1.0.0";
	cr_assert_eq(kmpkg_txn_install_targets(&out, &o, &t, 1, false), 0);
	json_decref(out);
	rec = fx_get(R, KMPKG_DB_INSTALLED, "foo");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "constraint")), "^1.0.0");
	json_decref(rec);
	t.constraint = "~1.0.0"; /* same package, new constraint: nothing to activate */
	cr_assert_eq(kmpkg_txn_install_targets(&out, &o, &t, 1, false), 0);
	json_decref(out);
	rec = fx_get(R, KMPKG_DB_INSTALLED, "foo");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "constraint")), "~1.0.0");
	json_decref(rec);
	cr_assert_eq(fx_meta(R, "active"), 1);
	fx_check_invariants(R);
	free(p);
}

/* What `list` reads: one listing record per plugin, version\0entry\0
 * constraint\0description\0, in step with the installed db. A root whose
 * listing holds the JSON arrays of an earlier kmpkg is listed from the
 * installed records instead, with the same output. */
Test(engine, listing_records_and_an_older_format)
{
	char *p = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL), *q = fx_pkg(W, "bar", "2.0.0", TOOL_OK, NULL);
	struct kmpkg_state *st = NULL;
	struct kmpkg_state_txn *t = NULL;
	struct kmpkg_listing l;
	MDB_val k, v;
	struct kres before, after;
	json_t *old;

	fx_ok(0, R, NULL, "install", p, q, NULL);

	/* The records themselves, read raw. */
	{
		MDB_env *env = NULL;
		MDB_txn *txn = NULL;
		MDB_dbi dbi;
		char *dir = fx_path(R, "kmpkg/state");

		cr_assert_eq(mdb_env_create(&env), 0);
		cr_assert_eq(mdb_env_set_maxdbs(env, 16), 0);
		cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY, 0644), 0);
		cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
		cr_assert_eq(mdb_dbi_open(txn, "listing", 0, &dbi), 0);
		k.mv_data = "foo";
		k.mv_size = 3;
		cr_assert_eq(mdb_get(txn, dbi, &k, &v), 0);
		cr_assert_eq(kmpkg_state_listing_parse(&l, v.mv_data, v.mv_size), 0);
		cr_assert_str_eq(l.version, "1.0.0");
		cr_assert_eq(strncmp(l.entry, "foo-1.0.0-", 10), 0);
		cr_assert_null(l.constraint);
		cr_assert_eq(((const char *)v.mv_data)[v.mv_size - 1], '\0');
		/* Not a listing record: three fields, or no NUL at the end. */
		cr_assert_neq(kmpkg_state_listing_parse(&l, "1.0.0\0e\0\0", 9), 0);
		cr_assert_neq(kmpkg_state_listing_parse(&l, "1.0.0\0e\0\0d", 10), 0);
		cr_assert_neq(kmpkg_state_listing_parse(&l, "[\"1.0.0\",\"e\",null,null]", 24), 0);
		mdb_txn_abort(txn);
		mdb_env_close(env);
		free(dir);
	}

	before = fx_run(R, NULL, "--json", "list", NULL);
	cr_assert_eq(before.status, 0, "%s", before.err);

	/* An earlier kmpkg's listing: JSON arrays. */
	cr_assert_eq(kmpkg_state_open(&st, R, true), 0);
	cr_assert_eq(kmpkg_state_begin(&t, st, true), 0);
	old = json_pack("[s, s, n, n]", "1.0.0", "foo-1.0.0-000000000000");
	cr_assert_eq(kmpkg_state_puts(t, KMPKG_DB_LISTING, "bar", old), 0);
	cr_assert_eq(kmpkg_state_puts(t, KMPKG_DB_LISTING, "foo", old), 0);
	json_decref(old);
	cr_assert_eq(kmpkg_state_commit(t), 0);
	kmpkg_state_free(st);

	after = fx_run(R, NULL, "--json", "list", NULL);
	cr_assert_eq(after.status, 0, "%s", after.err);
	cr_assert_str_eq(after.out, before.out);
	fx_free(&before);
	fx_free(&after);
	after = fx_run(R, NULL, "list", NULL);
	cr_assert_eq(after.status, 0, "%s", after.err);
	cr_assert(strstr(after.out, "bar") && strstr(after.out, "2.0.0"), "%s", after.out);
	fx_free(&after);

	/* The next transaction rewrites every listing record in the present format. */
	{
		char *z = fx_pkg(W, "baz", "3.0.0", TOOL_OK, NULL);
		MDB_env *env = NULL;
		MDB_txn *txn = NULL;
		MDB_dbi dbi;
		char *dir = fx_path(R, "kmpkg/state");
		const char *names[] = { "bar", "baz", "foo" };
		size_t i;

		fx_ok(0, R, NULL, "install", z, NULL);
		cr_assert_eq(mdb_env_create(&env), 0);
		cr_assert_eq(mdb_env_set_maxdbs(env, 16), 0);
		cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY, 0644), 0);
		cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
		cr_assert_eq(mdb_dbi_open(txn, "listing", 0, &dbi), 0);
		for (i = 0; i < 3; i++) {
			k.mv_data = (void *)names[i];
			k.mv_size = strlen(names[i]);
			cr_assert_eq(mdb_get(txn, dbi, &k, &v), 0);
			cr_assert_eq(kmpkg_state_listing_parse(&l, v.mv_data, v.mv_size), 0, "%s", names[i]);
		}
		cr_assert_str_eq(l.version, "1.0.0");
		mdb_txn_abort(txn);
		mdb_env_close(env);
		free(dir);
		free(z);
	}
	free(p);
	free(q);
}

/* data.mdb keeps written zeros past LMDB's last page, so that commits
 * rewrite blocks in place instead of growing the file. */
Test(engine, state_file_keeps_headroom)
{
	char *p = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL), *data = fx_path(R, "kmpkg/state/data.mdb");
	struct stat st;
	MDB_env *env = NULL;
	MDB_envinfo info;
	MDB_stat ms;
	char *dir = fx_path(R, "kmpkg/state");

	fx_ok(0, R, NULL, "install", p, NULL);
	cr_assert_eq(stat(data, &st), 0);
	cr_assert_eq(mdb_env_create(&env), 0);
	cr_assert_eq(mdb_env_set_maxdbs(env, 16), 0);
	cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY, 0644), 0);
	cr_assert_eq(mdb_env_info(env, &info), 0);
	cr_assert_eq(mdb_env_stat(env, &ms), 0);
	cr_assert_geq(st.st_size, (off_t)(info.me_last_pgno + 1) * ms.ms_psize + (64 << 10),
		      "data.mdb %lld bytes, last page %zu", (long long)st.st_size, (size_t)info.me_last_pgno);
	mdb_env_close(env);
	/* And LMDB reads it as usual. */
	fx_ok(0, R, NULL, "list", NULL);
	fx_ok(0, R, NULL, "verify", NULL);
	free(dir);
	free(data);
	free(p);
}

/* verify finds a store entry changed on disk and names the way back;
 * install --reinstall puts the package's files back in place (one
 * RENAME_EXCHANGE), in the same generation, with no health check. */
Test(engine, reinstall_repairs_a_modified_store_entry)
{
	char *p = fx_pkg(W, "foo", "1.0.0", TOOL_OK, NULL), *link, *entry, *f, *cmd;
	struct kres r;
	const char *ns;
	json_t *doc;
	FILE *fp;

	fx_ok(0, R, NULL, "install", p, NULL);
	link = fx_readlink(R, "plugins");
	entry = fx_readlink(R, "kmpkg/generations/1/foo");
	cr_assert_not_null(entry);
	f = fx_path(R, "kmpkg/generations/1/foo/kmpkg.yaml");
	fp = fopen(f, "a");
	cr_assert_not_null(fp);
	fputs("# changed behind kmpkg's back\n", fp);
	fclose(fp);

	r = fx_run(R, NULL, "verify", NULL);
	cr_assert_eq(r.status, 4, "%s", r.err);
	ns = strstr(r.err, "install --reinstall ");
	cr_assert_not_null(ns, "%s", r.err);
	cmd = strdup(ns + strlen("install --reinstall "));
	cmd[strcspn(cmd, "\n")] = '\0';
	cr_assert(strstr(cmd, "/kmpkg/cache/") != NULL, "%s", cmd);
	fx_free(&r);

	/* Without the flag an install of the same package changes nothing. */
	fx_ok(0, R, NULL, "install", cmd, NULL);
	fx_ok(4, R, NULL, "verify", NULL);

	r = fx_run(R, NULL, "--json", "install", "--reinstall", cmd, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	doc = json_loads(r.out, 0, NULL);
	cr_assert_not_null(doc, "%s", r.out);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "reason")), "reinstalled");
	cr_assert(json_is_true(json_object_get(json_array_get(json_object_get(doc, "changes"), 0), "reinstalled")));
	json_decref(doc);
	fx_free(&r);
	fx_ok(0, R, NULL, "verify", NULL);
	{
		char *now = fx_readlink(R, "plugins");

		cr_assert_str_eq(now, link, "the same generation stays active");
		free(now);
	}
	cr_assert_eq(fx_meta(R, "active"), 1);
	cr_assert_eq(fx_meta(R, "known_good"), 1);
	f = (free(f), fx_path(R, "kmpkg/tmp"));
	cr_assert_eq(fx_count(f), 0);
	/* --reinstall takes files, not names. */
	fx_ok(2, R, NULL, "install", "--reinstall", "foo", NULL);
	fx_check_invariants(R);
	free(cmd);
	free(f);
	free(entry);
	free(link);
	free(p);
}
