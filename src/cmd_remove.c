/* kmpkg remove NAME...: uninstall plugins as one transaction. */
#include "cmdutil.h"
#include "kmpkg/error.h"

int kmpkg_cmd_remove(struct kmpkg_cli *cli, int argc, char **argv)
{
	struct kmpkg_cmdopts o;
	json_t *s = NULL;
	int err;

	err = kmpkg_cmdutil_parse(&o, cli, "remove", KMPKG_OPT_FORCE, argc, argv,
				  "remove [--dry-run] [--force] [--correlation-id ID] NAME...");
	if (err)
		return err > 0 ? 0 : err;
	if (o.first_arg >= argc) {
		err = kmpkg_cli_usage("remove", "remove needs at least one plugin NAME");
	} else {
		err = kmpkg_txn_remove(&s, &o.txn, argv + o.first_arg, (size_t)(argc - o.first_arg));
		if (!err)
			kmpkg_cmdutil_print_summary(cli, s);
		else
			json_decref(s);
	}
	kmpkg_cmdutil_release(&o);
	return err;
}
