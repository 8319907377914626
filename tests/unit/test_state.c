/* state: the LMDB state database (with the catalog that search scans), uuid
 * and the lock. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kmpkg/error.h"
#include "kmpkg/index.h"
#include "kmpkg/lock.h"
#include "kmpkg/state.h"
#include "kmpkg/uuid.h"

static char root[] = "/tmp/kmpkg-state-XXXXXX";

static void setup(void)
{
	cr_assert_not_null(mkdtemp(root));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(state, .init = setup, .fini = teardown);

Test(state, readonly_open_of_a_fresh_root_is_not_found)
{
	struct kmpkg_state *s = NULL;

	cr_assert_eq(kmpkg_state_open(&s, root, false), KMPKG_ENOTFOUND);
	cr_assert_null(s);
}

Test(state, put_get_del_survive_reopen_and_txn_end)
{
	struct kmpkg_state *s = NULL;
	struct kmpkg_state_txn *t = NULL;
	json_t *v = json_pack("{s:s, s:i}", "name", "foo", "n", 3), *got = NULL;
	int64_t n;

	cr_assert_eq(kmpkg_state_open(&s, root, true), 0);
	cr_assert_eq(kmpkg_state_begin(&t, s, true), 0);
	cr_assert_eq(kmpkg_state_puts(t, KMPKG_DB_INSTALLED, "foo", v), 0);
	cr_assert_eq(kmpkg_state_meta_set(t, "active", 7), 0);
	cr_assert_eq(kmpkg_state_commit(t), 0);
	kmpkg_state_free(s);

	cr_assert_eq(kmpkg_state_open(&s, root, false), 0);
	cr_assert_eq(kmpkg_state_begin(&t, s, false), 0);
	cr_assert_eq(kmpkg_state_gets(&got, t, KMPKG_DB_INSTALLED, "foo"), 0);
	cr_assert_eq(kmpkg_state_meta_get(&n, t, "active", -1), 0);
	cr_assert_eq(kmpkg_state_meta_get(&n, t, "active", -1), 0);
	cr_assert_eq(n, 7);
	cr_assert_eq(kmpkg_state_meta_get(&n, t, "missing", 42), 0);
	cr_assert_eq(n, 42);
	cr_assert_eq(kmpkg_state_meta_get(&n, t, "schema", 0), 0);
	cr_assert_eq(n, KMPKG_STATE_SCHEMA);
	cr_assert_eq(kmpkg_state_begin(&(struct kmpkg_state_txn *){ NULL }, s, true) != 0, 1); /* read-only env */
	kmpkg_state_abort(t);
	kmpkg_state_free(s);
	/* the value is a copy: still valid after the transaction and env are gone */
	cr_assert(json_equal(got, v));
	json_decref(got);

	cr_assert_eq(kmpkg_state_open(&s, root, true), 0);
	cr_assert_eq(kmpkg_state_begin(&t, s, true), 0);
	cr_assert_eq(kmpkg_state_dels(t, KMPKG_DB_INSTALLED, "foo"), 0);
	cr_assert_eq(kmpkg_state_dels(t, KMPKG_DB_INSTALLED, "foo"), 0);
	cr_assert_eq(kmpkg_state_gets(&got, t, KMPKG_DB_INSTALLED, "foo"), KMPKG_ENOTFOUND);
	kmpkg_state_abort(t); /* aborted: foo is back */
	cr_assert_eq(kmpkg_state_begin(&t, s, false), 0);
	cr_assert_eq(kmpkg_state_gets(&got, t, KMPKG_DB_INSTALLED, "foo"), 0);
	json_decref(got);
	kmpkg_state_abort(t);
	kmpkg_state_free(s);
	json_decref(v);
}

static int collect_gen(void *ctx, const void *key, size_t klen, json_t *val)
{
	cr_assert_eq(klen, 4);
	json_array_append_new(ctx, json_integer(kmpkg_state_gen_from_key(key)));
	json_decref(val);
	return 0;
}

static int collect_seq(void *ctx, const void *key, size_t klen, json_t *val)
{
	json_array_append_new(ctx, json_pack("{s:s%, s:o}", "key", (const char *)key, klen - 4, "v", val));
	return 0;
}

Test(state, generation_keys_sort_numerically_and_journal_by_prefix)
{
	struct kmpkg_state *s = NULL;
	struct kmpkg_state_txn *t = NULL;
	json_t *a = json_array(), *e = json_object(), *j = json_array();
	uint32_t gens[] = { 256, 2, 255, 70000, 0 };
	size_t i;

	cr_assert_eq(kmpkg_state_open(&s, root, true), 0);
	cr_assert_eq(kmpkg_state_begin(&t, s, true), 0);
	for (i = 0; i < 5; i++)
		cr_assert_eq(kmpkg_state_gen_put(t, gens[i], e), 0);
	for (i = 0; i < 300; i++) {
		json_t *ev = json_integer((json_int_t)i);

		cr_assert_eq(kmpkg_state_journal_put(t, "abc", (uint32_t)i, ev), 0);
		cr_assert_eq(kmpkg_state_journal_put(t, "abcd", (uint32_t)i, ev), 0);
		json_decref(ev);
	}
	cr_assert_eq(kmpkg_state_commit(t), 0);
	cr_assert_eq(kmpkg_state_begin(&t, s, false), 0);
	cr_assert_eq(kmpkg_state_foreach(t, KMPKG_DB_GENERATIONS, NULL, 0, false, collect_gen, a), 0);
	cr_assert_eq(json_array_size(a), 5);
	cr_assert_eq(json_integer_value(json_array_get(a, 0)), 0);
	cr_assert_eq(json_integer_value(json_array_get(a, 2)), 255);
	cr_assert_eq(json_integer_value(json_array_get(a, 3)), 256);
	cr_assert_eq(json_integer_value(json_array_get(a, 4)), 70000);
	cr_assert_eq(kmpkg_state_foreach(t, KMPKG_DB_JOURNAL, "abc", 3, false, collect_seq, j), 0);
	cr_assert_eq(json_array_size(j), 600); /* the prefix also matches "abcd": callers check the length */
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(j, 299), "v")), 299);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 299), "key")), "abc");
	kmpkg_state_abort(t);
	kmpkg_state_free(s);
	json_decref(a);
	json_decref(e);
	json_decref(j);
}

/* Collects search hits as "name version versions description|- src,src". */
static int collect_hit(void *ctx, const struct kmpkg_search_hit *h)
{
	const char *src = h->sources;
	char line[512];
	size_t i, n;

	n = (size_t)snprintf(line, sizeof(line), "%s %s %ld %s", h->name, h->version, h->versions,
			     h->description ? h->description : "-");
	for (i = 0; i < h->nsources; i++, src += strlen(src) + 1)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s", i ? "," : " ", src);
	json_array_append_new(ctx, json_string(line));
	return 0;
}

/* The catalog is not JSON (search reads it without parsing); a record an
 * earlier kmpkg wrote as JSON is still found, with the same fields. */
Test(state, catalog_records_round_trip_and_search_reads_both_formats)
{
	const char *two[] = { "main", "mirror" }, *one[] = { "main" };
	struct kmpkg_state *s = NULL;
	struct kmpkg_state_txn *t = NULL;
	struct kmpkg_catalog c;
	json_t *old = json_pack("{s:s, s:s, s:s, s:[s], s:i}", "name", "legacy", "version", "0.9.0", "description",
				"Old Format tool", "sources", "main", "versions", 3);
	json_t *hits = json_array(), *want;

	cr_assert_eq(kmpkg_state_open(&s, root, true), 0);
	cr_assert_eq(kmpkg_state_begin(&t, s, true), 0);
	cr_assert_eq(kmpkg_state_catalog_put(t, "alpha", "1.2.0", "Alpha: formats things", 2, two, 2), 0);
	cr_assert_eq(kmpkg_state_catalog_put(t, "beta", "2.0.0", NULL, 1, one, 1), 0);
	cr_assert_eq(kmpkg_state_puts(t, KMPKG_DB_CATALOG, "legacy", old), 0);
	cr_assert_eq(kmpkg_state_commit(t), 0);

	cr_assert_eq(kmpkg_state_begin(&t, s, false), 0);
	/* everything, in name order */
	cr_assert_eq(kmpkg_index_search(t, "", collect_hit, hits), 0);
	want = json_pack("[s, s, s]", "alpha 1.2.0 2 Alpha: formats things main,mirror", "beta 2.0.0 1 - main",
			 "legacy 0.9.0 3 Old Format tool main");
	cr_assert(json_equal(hits, want));
	json_decref(want);
	/* a description match, case folded, in both formats */
	json_array_clear(hits);
	cr_assert_eq(kmpkg_index_search(t, "FORMAT", collect_hit, hits), 0);
	cr_assert_eq(json_array_size(hits), 2);
	cr_assert_str_eq(json_string_value(json_array_get(hits, 0)), "alpha 1.2.0 2 Alpha: formats things main,mirror");
	cr_assert_str_eq(json_string_value(json_array_get(hits, 1)), "legacy 0.9.0 3 Old Format tool main");
	/* a name match only */
	json_array_clear(hits);
	cr_assert_eq(kmpkg_index_search(t, "bet", collect_hit, hits), 0);
	cr_assert_eq(json_array_size(hits), 1);
	kmpkg_state_abort(t);

	/* the codec refuses what is not a catalog record */
	cr_assert_eq(kmpkg_state_catalog_parse(&c, "1.0.0\0d\0" "2\0src\0", 14), 0);
	cr_assert_str_eq(c.version, "1.0.0");
	cr_assert_eq(c.versions, 2);
	cr_assert_eq(c.nsources, 1);
	cr_assert_eq(kmpkg_state_catalog_parse(&c, "{\"name\":\"x\"}", 12), KMPKG_EGENERIC);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_STATE_CORRUPT");
	cr_assert_eq(kmpkg_state_catalog_parse(&c, "1.0.0\0d\0two\0", 12), KMPKG_EGENERIC);
	cr_assert_eq(kmpkg_state_catalog_parse(&c, "1.0.0\0d\0" "2\0src", 13), KMPKG_EGENERIC);
	kmpkg_state_free(s);
	json_decref(hits);
	json_decref(old);
}

Test(uuid, v7_layout_and_order)
{
	char a[37], b[37];

	cr_assert_eq(kmpkg_uuid_v7(a), 0);
	usleep(2000);
	cr_assert_eq(kmpkg_uuid_v7(b), 0);
	cr_assert_eq(strlen(a), 36);
	cr_assert_eq(a[8], '-');
	cr_assert_eq(a[14], '7');
	cr_assert(strchr("89ab", a[19]));
	cr_assert_lt(strcmp(a, b), 0, "later ids sort later: %s %s", a, b);
	cr_assert(kmpkg_uuid_id_valid(a));
	cr_assert(kmpkg_uuid_id_valid("ci-run_42.1"));
	cr_assert(!kmpkg_uuid_id_valid(""));
	cr_assert(!kmpkg_uuid_id_valid("a b"));
	cr_assert(!kmpkg_uuid_id_valid("../x"));
	cr_assert(!kmpkg_uuid_id_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 65 */
}

Test(lock, second_holder_is_refused_and_lock_dies_with_holder)
{
	struct kmpkg_lock *l = NULL, *m = NULL;
	int p[2], st;
	pid_t pid;
	char c;

	cr_assert(!kmpkg_lock_is_held(root));
	cr_assert_eq(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		struct kmpkg_lock *k = NULL;

		if (kmpkg_lock_acquire(&k, root, 0) != 0)
			_exit(1);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	cr_assert_eq(read(p[0], &c, 1), 1);
	cr_assert(kmpkg_lock_is_held(root));
	cr_assert_eq(kmpkg_lock_try(&l, root), KMPKG_ELOCKED);
	cr_assert_eq(kmpkg_lock_acquire(&l, root, 0), KMPKG_ELOCKED);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_LOCKED");
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	cr_assert(!kmpkg_lock_is_held(root));
	cr_assert_eq(kmpkg_lock_acquire(&l, root, 0), 0, "lock did not die with its holder");
	/* A second open file description in the same process conflicts too. */
	cr_assert_eq(kmpkg_lock_try(&m, root), KMPKG_ELOCKED);
	kmpkg_lock_release(l);
	cr_assert_eq(kmpkg_lock_try(&m, root), 0);
	kmpkg_lock_release(m);
	close(p[0]);
	close(p[1]);
}
