/* kmpkg key add FILE | list | remove ID: the trusted signing keys. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kmpkg/error.h"
#include "kmpkg/sig.h"

static json_t *key_json(const struct kmpkg_key *k)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", k->id, "type", k->type, "algorithm", k->algorithm,
			 "comment", k->comment ? k->comment : "", "file", k->file ? k->file : "");
}

static int key_list(struct kmpkg_cli *cli)
{
	struct kmpkg_keylist *l = NULL;
	size_t i;
	int rc;

	if ((rc = kmpkg_sig_key_list(&l, cli->root)) != 0)
		return rc;
	if (cli->json) {
		json_t *arr = json_array();

		for (i = 0; i < l->n; i++)
			json_array_append_new(arr, key_json(&l->v[i]));
		kmpkg_cli_print_json(json_pack("{s:o}", "keys", arr));
	} else if (!cli->quiet) {
		if (l->n == 0)
			printf("no trusted keys: unsigned packages are accepted\n");
		for (i = 0; i < l->n; i++)
			printf("%s  %-8s  %-16s  %s\n", l->v[i].id, l->v[i].type, l->v[i].algorithm,
			       l->v[i].comment);
	}
	kmpkg_keylist_free(l);
	return 0;
}

int kmpkg_cmd_key(struct kmpkg_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kmpkg_key k;
	const char *sub;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			printf("usage: kmpkg key add FILE | kmpkg key list | kmpkg key remove ID\n");
			return 0;
		}
		return kmpkg_cli_usage("key", "unknown option for key");
	}
	if (optind >= argc)
		return kmpkg_cli_usage("key", "key needs a subcommand: add, list or remove");
	sub = argv[optind];
	if (strcmp(sub, "list") == 0) {
		if (argc - optind != 1)
			return kmpkg_cli_usage("key", "key list takes no arguments");
		return key_list(cli);
	}
	if (strcmp(sub, "add") == 0) {
		if (argc - optind != 2)
			return kmpkg_cli_usage("key", "key add takes one public key file");
		if ((rc = kmpkg_sig_key_add(&k, cli->root, argv[optind + 1])) != 0)
			return rc;
		if (cli->json)
			kmpkg_cli_print_json(json_pack("{s:o}", "added", key_json(&k)));
		else
			kmpkg_cli_say(cli, "trusted %s key %s (%s)\n", k.type, k.id, k.algorithm);
		kmpkg_key_release(&k);
		return 0;
	}
	if (strcmp(sub, "remove") == 0) {
		if (argc - optind != 2)
			return kmpkg_cli_usage("key", "key remove takes one key id");
		if ((rc = kmpkg_sig_key_remove(&k, cli->root, argv[optind + 1])) != 0)
			return rc;
		if (cli->json)
			kmpkg_cli_print_json(json_pack("{s:o}", "removed", key_json(&k)));
		else
			kmpkg_cli_say(cli, "removed %s key %s\n", k.type, k.id);
		kmpkg_key_release(&k);
		return 0;
	}
	return kmpkg_cli_usage("key", "unknown key subcommand '%s'", sub);
}
