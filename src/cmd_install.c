/* kmpkg install TARGET...: local .kmpkg packages, or NAME[@RANGE] resolved
 * from the sources' index cache; either way one transaction. */
#include "cmdutil.h"
#include "kmpkg/error.h"
#include "plan.h"

int kmpkg_cmd_install(struct kmpkg_cli *cli, int argc, char **argv)
{
	struct kmpkg_cmdopts o;
	json_t *s = NULL;
	size_t i, n, names = 0;
	int err;

	err = kmpkg_cmdutil_parse(&o, cli, "install", KMPKG_OPT_SIGNATURE | KMPKG_OPT_HOST | KMPKG_OPT_REINSTALL,
				  argc, argv,
				  "install [--dry-run] [--reinstall] [--correlation-id ID] [--allow-unsigned] "
				  "[--allow-permission PERM]... [--host FILE] [--signature FILE] TARGET... "
				  "(TARGET: NAME, NAME@RANGE or the PATH of a .kmpkg)");
	if (err)
		return err > 0 ? 0 : err;
	n = argc > o.first_arg ? (size_t)(argc - o.first_arg) : 0;
	for (i = 0; i < n; i++)
		names += kmpkg_plan_is_name(argv[o.first_arg + (int)i]);
	if (n == 0) {
		err = kmpkg_cli_usage("install", "install needs at least one target (NAME, NAME@RANGE or PATH of a .kmpkg)");
	} else if (names > 0 && names < n) {
		err = kmpkg_cli_usage("install", "give either plugin names or .kmpkg files, not both");
	} else if (names > 0) {
		if (o.txn.signature)
			err = kmpkg_cli_usage("install", "--signature applies to a local .kmpkg file");
		else if (o.txn.reinstall)
			err = kmpkg_cli_usage("install", "--reinstall takes .kmpkg files (every installed package "
							 "is kept in kmpkg/cache/SHA256; kmpkg verify names it)");
		else
			err = kmpkg_plan_run(cli, &o, argv + o.first_arg, n, KMPKG_PLAN_INSTALL);
	} else if (o.txn.signature && n > 1) {
		err = kmpkg_cli_usage("install", "--signature applies to a single package");
	} else {
		err = kmpkg_txn_install(&s, &o.txn, argv + o.first_arg, n);
		if (!err)
			kmpkg_cmdutil_print_summary(cli, s);
		else
			json_decref(s);
	}
	kmpkg_cmdutil_release(&o);
	return err;
}
