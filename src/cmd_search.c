/* kmpkg search TERM: plugins of the source indexes whose name or description
 * contains TERM (case-insensitive), newest version each, from the index
 * cache's catalog (never from git). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmdutil.h"
#include "kmpkg/error.h"
#include "kmpkg/index.h"

static const char *js(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

int kmpkg_cmd_search(struct kmpkg_cli *cli, int argc, char **argv)
{
	struct kmpkg_state *st = NULL;
	struct kmpkg_state_txn *t = NULL;
	json_t *hits = NULL, *h;
	size_t i;
	int err;

	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		printf("usage: kmpkg search TERM\n");
		return 0;
	}
	if (argc != 2 || (argv[1][0] == '-' && argv[1][1] != '\0'))
		return kmpkg_cli_usage("search", "usage: kmpkg search TERM");
	if ((err = kmpkg_cmdutil_open_reader(&st, cli->root)) != 0)
		goto cleanup;
	if (st) {
		if ((err = kmpkg_state_begin(&t, st, false)) != 0)
			goto cleanup;
		if ((err = kmpkg_index_search(&hits, t, argv[1])) != 0)
			goto cleanup;
	} else {
		hits = json_array();
	}
	if (cli->json) {
		kmpkg_cli_print_json(json_pack("{s:s, s:O}", "term", argv[1], "results", hits));
	} else if (!cli->quiet) {
		if (json_array_size(hits) == 0)
			printf("no plugin matches '%s' (kmpkg source update refreshes the indexes)\n", argv[1]);
		json_array_foreach(hits, i, h)
			printf("%-24s %-10s %s\n", js(h, "name"), js(h, "version"),
			       js(h, "description") ? js(h, "description") : "");
	}
cleanup:
	json_decref(hits);
	kmpkg_state_abort(t);
	kmpkg_state_free(st);
	return err;
}
