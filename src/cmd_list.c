/* kmpkg list: the installed plugins (the active generation). */
#include <stdio.h>
#include <string.h>

#include "cmdutil.h"
#include "kmpkg/error.h"

static int collect(void *ctx, const void *key, size_t klen, json_t *val)
{
	(void)key;
	(void)klen;
	json_array_append_new(ctx, val);
	return 0;
}

struct brief {
	struct kmpkg_cli *cli;
	json_t *all; /* --json: the plugins array */
	size_t n;
};

/* One plugin: printed at once, or added to the --json array. */
static void emit(struct brief *b, const char *name, size_t nlen, const struct kmpkg_listing *l)
{
	b->n++;
	if (b->all) {
		json_t *p = json_pack("{s:s#, s:s, s:s}", "name", name, (int)nlen, "version", l->version, "entry",
				      l->entry);

		if (l->description)
			json_object_set_new(p, "description", json_string(l->description));
		if (l->constraint)
			json_object_set_new(p, "constraint", json_string(l->constraint));
		json_array_append_new(b->all, p);
	} else if (!b->cli->quiet) {
		printf("%-24.*s %-12s %s\n", (int)nlen, name, l->version, l->description ? l->description : "");
	}
}

/* A listing record (include/kmpkg/state.h), read without parsing. */
static int each_brief(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct kmpkg_listing l;
	int err;

	if ((err = kmpkg_state_listing_parse(&l, val, vlen)) != 0)
		return err;
	emit(ctx, key, klen, &l);
	return 0;
}

int kmpkg_cmd_list(struct kmpkg_cli *cli, int argc, char **argv)
{
	struct kmpkg_state *st = NULL;
	struct kmpkg_state_txn *t = NULL;
	struct brief b = { cli, NULL, 0 };
	json_t *all = NULL, *v;
	int64_t active = 0;
	size_t i, ninst = 0, nlist = 0;
	int err;

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		printf("usage: kmpkg list\n");
		goto done;
	}
	if (argc > 1) {
		err = kmpkg_cli_usage("list", "list takes no arguments");
		goto cleanup;
	}
	if ((err = kmpkg_cmdutil_open_reader(&st, cli->root)) != 0)
		goto cleanup;
	if (cli->json)
		b.all = json_array();
	if (st) {
		if ((err = kmpkg_state_begin(&t, st, false)) != 0 ||
		    (err = kmpkg_state_meta_get(&active, t, "active", 0)) != 0 ||
		    (err = kmpkg_state_count(&ninst, t, KMPKG_DB_INSTALLED)) != 0 ||
		    (err = kmpkg_state_count(&nlist, t, KMPKG_DB_LISTING)) != 0)
			goto cleanup;
		/* The listing db holds the installed set in brief. A root written
		 * before it existed has fewer records there, one written before its
		 * present format fails on the first record (nothing printed yet):
		 * both read the full records. */
		if (ninst == nlist)
			err = kmpkg_state_foreach_raw(t, KMPKG_DB_LISTING, NULL, 0, each_brief, &b);
		if (ninst != nlist || (err && b.n == 0)) {
			kmpkg_error_clear();
			all = json_array();
			if ((err = kmpkg_state_foreach(t, KMPKG_DB_INSTALLED, NULL, 0, false, collect, all)) != 0)
				goto cleanup;
			json_array_foreach(all, i, v) {
				struct kmpkg_listing l = { json_string_value(json_object_get(v, "version")),
							   json_string_value(json_object_get(v, "entry")),
							   json_string_value(json_object_get(v, "constraint")),
							   json_string_value(json_object_get(v, "description")) };
				const char *name = json_string_value(json_object_get(v, "name"));

				if (!name || !l.version || !l.entry) {
					err = kmpkg_error_set(KMPKG_EGENERIC, "E_STATE_CORRUPT", NULL, NULL,
							      "unreadable installed record");
					goto cleanup;
				}
				emit(&b, name, strlen(name), &l);
			}
		} else if (err) {
			goto cleanup;
		}
	}
	if (cli->json) {
		kmpkg_cli_print_json(json_pack("{s:I, s:O}", "generation", (json_int_t)active, "plugins", b.all));
	} else if (!cli->quiet && b.n == 0) {
		printf("no plugins installed\n");
	}
done:
	err = 0;
cleanup:
	kmpkg_state_abort(t);
	kmpkg_state_free(st);
	json_decref(all);
	json_decref(b.all);
	return err;
}
