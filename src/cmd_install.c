/* kmpkg install PATH...: install local .kmpkg packages as one transaction. */
#include "cmdutil.h"
#include "kmpkg/error.h"

int kmpkg_cmd_install(struct kmpkg_cli *cli, int argc, char **argv)
{
	struct kmpkg_cmdopts o;
	json_t *s = NULL;
	int err;

	err = kmpkg_cmdutil_parse(&o, cli, "install", KMPKG_OPT_SIGNATURE | KMPKG_OPT_HOST, argc, argv,
				  "install [--dry-run] [--correlation-id ID] [--allow-unsigned] "
				  "[--allow-permission PERM]... [--host FILE] [--signature FILE] PATH...");
	if (err)
		return err > 0 ? 0 : err;
	if (o.first_arg >= argc) {
		err = kmpkg_cli_usage("install", "install needs at least one package (PATH of a .kmpkg)");
	} else if (o.txn.signature && argc - o.first_arg > 1) {
		err = kmpkg_cli_usage("install", "--signature applies to a single package");
	} else {
		err = kmpkg_txn_install(&s, &o.txn, argv + o.first_arg, (size_t)(argc - o.first_arg));
		if (!err)
			kmpkg_cmdutil_print_summary(cli, s);
		else
			json_decref(s);
	}
	kmpkg_cmdutil_release(&o);
	return err;
}
