/* kmpkg info NAME: the installed record and the versions it went through. */
#include <stdio.h>
#include <string.h>

#include "cmdutil.h"
#include "kmpkg/error.h"

static const char *js(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* History of `name`: [{id, op, from, to, outcome, started}] newest first. */
static json_t *history_of(const json_t *txns, const char *name)
{
	json_t *h = json_array(), *r, *c;
	size_t i, j;

	json_array_foreach(txns, i, r) {
		json_array_foreach(json_object_get(r, "changes"), j, c) {
			if (!js(c, "name") || strcmp(js(c, "name"), name) != 0)
				continue;
			json_array_append_new(h, json_pack("{s:O, s:O, s:O?, s:O?, s:O?, s:O?}", "id",
							   json_object_get(r, "id"), "op", json_object_get(r, "op"),
							   "from", json_object_get(c, "from"), "to",
							   json_object_get(c, "to"), "outcome",
							   json_object_get(r, "outcome"), "started",
							   json_object_get(r, "started")));
		}
	}
	return h;
}

int kmpkg_cmd_info(struct kmpkg_cli *cli, int argc, char **argv)
{
	struct kmpkg_state *st = NULL;
	struct kmpkg_state_txn *t = NULL;
	json_t *rec = NULL, *txns = NULL, *hist = NULL, *v;
	const char *name, *k;
	size_t i;
	int err;

	if (argc != 2 || argv[1][0] == '-') {
		if (argc == 2 && strcmp(argv[1], "--help") == 0) {
			printf("usage: kmpkg info NAME\n");
			return 0;
		}
		return kmpkg_cli_usage("info", "usage: kmpkg info NAME");
	}
	name = argv[1];
	if ((err = kmpkg_cmdutil_open_reader(&st, cli->root)) != 0)
		goto cleanup;
	if (st) {
		if ((err = kmpkg_state_begin(&t, st, false)) != 0)
			goto cleanup;
		err = kmpkg_state_gets(&rec, t, KMPKG_DB_INSTALLED, name);
		if (err && err != KMPKG_ENOTFOUND)
			goto cleanup;
		if ((err = kmpkg_cmdutil_txns(&txns, t)) != 0)
			goto cleanup;
	}
	hist = history_of(txns, name);
	if (!rec && json_array_size(hist) == 0) {
		err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_NOT_INSTALLED", NULL, "'kmpkg list' shows what is installed",
				      "%s is not installed and has no history", name);
		goto cleanup;
	}
	if (cli->json) {
		json_t *o = json_pack("{s:s, s:b, s:O}", "name", name, "installed", rec != NULL, "history", hist);

		if (rec) {
			json_object_set(o, "record", rec);
			json_object_set_new(o, "files_count", json_integer((json_int_t)json_array_size(json_object_get(rec, "files"))));
		}
		kmpkg_cli_print_json(o);
	} else if (!cli->quiet) {
		printf("name:          %s\n", name);
		if (rec) {
			printf("version:       %s\n", js(rec, "version"));
			if (js(rec, "description"))
				printf("description:   %s\n", js(rec, "description"));
			printf("store entry:   kmpkg/store/%s\n", js(rec, "entry"));
			printf("archive:       sha256 %s\n", js(rec, "sha256"));
			printf("files:         %zu\n", json_array_size(json_object_get(rec, "files")));
			if (json_object_size(json_object_get(rec, "deps")) > 0) {
				printf("dependencies: ");
				json_object_foreach(json_object_get(rec, "deps"), k, v)
					printf(" %s %s", k, json_string_value(v));
				printf("\n");
			}
			if (js(rec, "constraint"))
				printf("constraint:    %s\n", js(rec, "constraint"));
			if (json_array_size(json_object_get(rec, "permissions")) > 0) {
				printf("permissions:  ");
				json_array_foreach(json_object_get(rec, "permissions"), i, v)
					printf(" %s", json_string_value(v));
				printf("\n");
			}
			if (json_array_size(json_object_get(rec, "granted_permissions")) > 0) {
				/* --allow-permission grants (kmpkg-install(1)); the rest is host-allowed. */
				printf("granted:      ");
				json_array_foreach(json_object_get(rec, "granted_permissions"), i, v)
					printf(" %s", json_string_value(v));
				printf("\n");
			}
			if (js(json_object_get(rec, "signature"), "status"))
				printf("signature:     %s\n", js(json_object_get(rec, "signature"), "status"));
			printf("installed by:  %s\n", js(rec, "installed_by"));
		} else {
			printf("installed:     no\n");
		}
		printf("history:\n");
		json_array_foreach(hist, i, v) {
			printf("  %s  %-8s %s%s%s  %s  %s\n", js(v, "started") ? js(v, "started") : "", js(v, "op"),
			       js(v, "from") ? js(v, "from") : "", js(v, "from") && js(v, "to") ? " \u2192 " : "",
			       js(v, "to") ? js(v, "to") : "", js(v, "outcome") ? js(v, "outcome") : "in flight",
			       js(v, "id"));
		}
	}
	err = 0;
cleanup:
	json_decref(rec);
	json_decref(txns);
	json_decref(hist);
	kmpkg_state_abort(t);
	kmpkg_state_free(st);
	return err;
}
