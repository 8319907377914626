/* kmpkg gc [--keep N]: delete generations, store entries, cache files and
 * quarantine that no kept generation needs. */
#include "cmdutil.h"
#include "kmpkg/error.h"

#define GC_KEEP_DEFAULT 3

int kmpkg_cmd_gc(struct kmpkg_cli *cli, int argc, char **argv)
{
	struct kmpkg_cmdopts o;
	json_t *s = NULL;
	int err;

	err = kmpkg_cmdutil_parse(&o, cli, "gc", KMPKG_OPT_KEEP, argc, argv,
				  "gc [--dry-run] [--keep N] [--correlation-id ID]");
	if (err)
		return err > 0 ? 0 : err;
	if (o.first_arg < argc) {
		err = kmpkg_cli_usage("gc", "gc takes no operands");
		goto cleanup;
	}
	err = kmpkg_txn_gc(&s, &o.txn, o.keep > 0 ? o.keep : GC_KEEP_DEFAULT);
	if (err) {
		json_decref(s);
		goto cleanup;
	}
	if (cli->json) {
		kmpkg_cli_print_json(s);
	} else {
		kmpkg_cli_say(cli, "%s %zu generation(s), %zu store entr%s, %zu cache file(s), %zu quarantined version(s)\n",
			      o.txn.dry_run ? "would remove" : "removed",
			      json_array_size(json_object_get(s, "generations")),
			      json_array_size(json_object_get(s, "store")),
			      json_array_size(json_object_get(s, "store")) == 1 ? "y" : "ies",
			      json_array_size(json_object_get(s, "cache")),
			      json_array_size(json_object_get(s, "quarantine")));
		json_decref(s);
	}
cleanup:
	kmpkg_cmdutil_release(&o);
	return err;
}
