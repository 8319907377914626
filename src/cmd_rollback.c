/* kmpkg rollback [NAME] [--to GEN|VERSION]: back to the last known-good state. */
#include "cmdutil.h"
#include "kmpkg/error.h"

int kmpkg_cmd_rollback(struct kmpkg_cli *cli, int argc, char **argv)
{
	struct kmpkg_cmdopts o;
	json_t *s = NULL;
	int err;

	err = kmpkg_cmdutil_parse(&o, cli, "rollback", KMPKG_OPT_TO, argc, argv,
				  "rollback [--dry-run] [--correlation-id ID] [NAME] [--to GEN|VERSION]");
	if (err)
		return err > 0 ? 0 : err;
	if (argc - o.first_arg > 1) {
		err = kmpkg_cli_usage("rollback", "rollback takes at most one plugin NAME");
	} else {
		err = kmpkg_txn_rollback(&s, &o.txn, o.first_arg < argc ? argv[o.first_arg] : NULL, o.to);
		if (!err)
			kmpkg_cmdutil_print_summary(cli, s);
		else
			json_decref(s);
	}
	kmpkg_cmdutil_release(&o);
	return err;
}
