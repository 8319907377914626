/* kmpkg history: transactions, newest first. */
#include <stdio.h>
#include <string.h>

#include "cmdutil.h"
#include "kmpkg/error.h"

int kmpkg_cmd_history(struct kmpkg_cli *cli, int argc, char **argv)
{
	struct kmpkg_state *st = NULL;
	struct kmpkg_state_txn *t = NULL;
	json_t *txns = NULL, *r, *out;
	size_t i;
	int err;

	if (argc > 1) {
		if (strcmp(argv[1], "--help") == 0) {
			printf("usage: kmpkg history\n");
			return 0;
		}
		return kmpkg_cli_usage("history", "history takes no arguments");
	}
	if ((err = kmpkg_cmdutil_open_reader(&st, cli->root)) != 0)
		goto cleanup;
	if (st) {
		if ((err = kmpkg_state_begin(&t, st, false)) != 0 || (err = kmpkg_cmdutil_txns(&txns, t)) != 0)
			goto cleanup;
	} else {
		txns = json_array();
	}
	if (cli->json) {
		out = json_array();
		json_array_foreach(txns, i, r) {
			json_t *names = json_array(), *c;
			size_t j;

			json_array_foreach(json_object_get(r, "changes"), j, c)
				json_array_append(names, json_object_get(c, "name"));
			json_array_append_new(out, json_pack("{s:O, s:O, s:o, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}", "id",
							     json_object_get(r, "id"), "op", json_object_get(r, "op"),
							     "plugins", names, "changes", json_object_get(r, "changes"),
							     "outcome", json_object_get(r, "outcome"), "reason",
							     json_object_get(r, "reason"), "started",
							     json_object_get(r, "started"), "ended",
							     json_object_get(r, "ended"), "generation",
							     json_object_get(r, "to_gen")));
		}
		kmpkg_cli_print_json(json_pack("{s:o}", "transactions", out));
	} else if (!cli->quiet) {
		json_array_foreach(txns, i, r) {
			char *d = kmpkg_cmdutil_describe(r);
			const char *oc = json_string_value(json_object_get(r, "outcome"));

			printf("%s  %s  %-12s %s\n", json_string_value(json_object_get(r, "id")),
			       json_string_value(json_object_get(r, "started")), oc ? oc : "in-flight", d);
			free(d);
		}
		if (json_array_size(txns) == 0)
			printf("no transactions yet\n");
	}
	err = 0;
cleanup:
	json_decref(txns);
	kmpkg_state_abort(t);
	kmpkg_state_free(st);
	return err;
}
