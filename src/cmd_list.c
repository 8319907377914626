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

/* A listing record [version, entry, constraint, description] as the
 * fields of an installed record. */
static int collect_brief(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	json_error_t je;
	json_t *a = json_loadb(val, vlen, 0, &je);

	if (!json_is_array(a) || json_array_size(a) != 4) {
		json_decref(a);
		return kmpkg_error_set(KMPKG_EGENERIC, "E_STATE_CORRUPT", NULL, NULL,
				       "unreadable record in listing: %.*s", (int)klen, (const char *)key);
	}
	json_array_append_new(ctx, json_pack("{s:s#, s:O, s:O, s:O, s:O}", "name", (const char *)key, (int)klen,
					     "version", json_array_get(a, 0), "entry", json_array_get(a, 1),
					     "constraint", json_array_get(a, 2), "description",
					     json_array_get(a, 3)));
	json_decref(a);
	return 0;
}

int kmpkg_cmd_list(struct kmpkg_cli *cli, int argc, char **argv)
{
	struct kmpkg_state *st = NULL;
	struct kmpkg_state_txn *t = NULL;
	json_t *all = json_array(), *v, *out = NULL;
	int64_t active = 0;
	size_t i;
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
	if (st) {
		size_t ninst = 0, nlist = 0;

		if ((err = kmpkg_state_begin(&t, st, false)) != 0 ||
		    (err = kmpkg_state_meta_get(&active, t, "active", 0)) != 0 ||
		    (err = kmpkg_state_count(&ninst, t, KMPKG_DB_INSTALLED)) != 0 ||
		    (err = kmpkg_state_count(&nlist, t, KMPKG_DB_LISTING)) != 0)
			goto cleanup;
		/* The listing db holds the installed set in brief; a root written
		 * before it existed has fewer records there: read the full ones. */
		if (ninst == nlist)
			err = kmpkg_state_foreach_raw(t, KMPKG_DB_LISTING, NULL, 0, collect_brief, all);
		else
			err = kmpkg_state_foreach(t, KMPKG_DB_INSTALLED, NULL, 0, false, collect, all);
		if (err)
			goto cleanup;
	}
	if (cli->json) {
		out = json_pack("{s:I, s:[]}", "generation", (json_int_t)active, "plugins");
		json_array_foreach(all, i, v) {
			json_array_append_new(json_object_get(out, "plugins"),
					      json_pack("{s:O, s:O, s:O, s:O?, s:O?}", "name", json_object_get(v, "name"),
							"version", json_object_get(v, "version"), "entry",
							json_object_get(v, "entry"), "description",
							json_object_get(v, "description"), "constraint",
							json_object_get(v, "constraint")));
		}
		kmpkg_cli_print_json(out);
	} else if (!cli->quiet) {
		json_array_foreach(all, i, v) {
			const char *d = json_string_value(json_object_get(v, "description"));

			printf("%-24s %-12s %s\n", json_string_value(json_object_get(v, "name")),
			       json_string_value(json_object_get(v, "version")), d ? d : "");
		}
		if (json_array_size(all) == 0)
			printf("no plugins installed\n");
	}
done:
	err = 0;
cleanup:
	kmpkg_state_abort(t);
	kmpkg_state_free(st);
	json_decref(all);
	return err;
}
