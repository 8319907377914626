/* kmpkg search TERM: plugins of the source indexes whose name or description
 * contains TERM (case-insensitive), newest version each, from the index
 * cache's catalog (never from git). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmdutil.h"
#include "kmpkg/error.h"
#include "kmpkg/index.h"

struct found {
	struct kmpkg_cli *cli;
	json_t *all; /* --json: the hits as objects */
	size_t n;
};

static int each_hit(void *ctx, const struct kmpkg_search_hit *h)
{
	struct found *f = ctx;
	const char *src = h->sources;
	json_t *sources;
	size_t i;

	f->n++;
	if (!f->all) {
		if (!f->cli->quiet)
			printf("%-24s %-10s %s\n", h->name, h->version, h->description ? h->description : "");
		return 0;
	}
	sources = json_array();
	for (i = 0; i < h->nsources; i++, src += strlen(src) + 1)
		json_array_append_new(sources, json_string(src));
	json_array_append_new(f->all, json_pack("{s:s?, s:s, s:o, s:s, s:I}", "description", h->description, "name",
						h->name, "sources", sources, "version", h->version, "versions",
						(json_int_t)h->versions));
	return 0;
}

int kmpkg_cmd_search(struct kmpkg_cli *cli, int argc, char **argv)
{
	struct kmpkg_state *st = NULL;
	struct kmpkg_state_txn *t = NULL;
	struct found f = { cli, NULL, 0 };
	int err;

	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		printf("usage: kmpkg search TERM\n");
		return 0;
	}
	if (argc != 2 || (argv[1][0] == '-' && argv[1][1] != '\0'))
		return kmpkg_cli_usage("search", "usage: kmpkg search TERM");
	if ((err = kmpkg_cmdutil_open_reader(&st, cli->root)) != 0)
		goto cleanup;
	if (cli->json)
		f.all = json_array();
	if (st) {
		if ((err = kmpkg_state_begin(&t, st, false)) != 0)
			goto cleanup;
		if ((err = kmpkg_index_search(t, argv[1], each_hit, &f)) != 0)
			goto cleanup;
	}
	if (cli->json) {
		kmpkg_cli_print_json(json_pack("{s:s, s:O}", "term", argv[1], "results", f.all));
	} else if (!cli->quiet && f.n == 0) {
		printf("no plugin matches '%s' (kmpkg source update refreshes the indexes)\n", argv[1]);
	}
cleanup:
	json_decref(f.all);
	kmpkg_state_abort(t);
	kmpkg_state_free(st);
	return err;
}
