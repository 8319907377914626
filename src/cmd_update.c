/* kmpkg update PATH...: move installed plugins to the newer versions in these packages. */
#include "cmdutil.h"
#include "kmpkg/error.h"

int kmpkg_cmd_update(struct kmpkg_cli *cli, int argc, char **argv)
{
	struct kmpkg_cmdopts o;
	json_t *s = NULL;
	int err;

	err = kmpkg_cmdutil_parse(&o, cli, "update", KMPKG_OPT_SIGNATURE | KMPKG_OPT_HOST, argc, argv,
				  "update [--dry-run] [--correlation-id ID] [--allow-unsigned] "
				  "[--allow-permission PERM]... [--host FILE] [--signature FILE] [PATH...]");
	if (err)
		return err > 0 ? 0 : err;
	if (o.first_arg >= argc) {
		/* Updating every plugin resolves versions from sources, which this
		 * engine does not read yet: with no source nothing can be newer. */
		if (cli->json)
			kmpkg_cli_print_json(json_pack("{s:s, s:s, s:[]}", "op", "update", "outcome", "nothing to do",
						       "changes"));
		else
			kmpkg_cli_say(cli, "nothing to update: no source is configured (kmpkg source add); "
					   "give a .kmpkg PATH to update from a file\n");
		err = 0;
	} else if (o.txn.signature && argc - o.first_arg > 1) {
		err = kmpkg_cli_usage("update", "--signature applies to a single package");
	} else {
		err = kmpkg_txn_update(&s, &o.txn, argv + o.first_arg, (size_t)(argc - o.first_arg));
		if (!err)
			kmpkg_cmdutil_print_summary(cli, s);
		else
			json_decref(s);
	}
	kmpkg_cmdutil_release(&o);
	return err;
}
