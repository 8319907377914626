/* kmpkg update [NAME|PATH...]: installed plugins to the newest versions their
 * remembered constraints allow (all, or those named), resolved from the
 * sources; a PATH updates from that .kmpkg file. */
#include "cmdutil.h"
#include "kmpkg/error.h"
#include "plan.h"

int kmpkg_cmd_update(struct kmpkg_cli *cli, int argc, char **argv)
{
	struct kmpkg_cmdopts o;
	json_t *s = NULL;
	size_t i, n, names = 0;
	int err;

	err = kmpkg_cmdutil_parse(&o, cli, "update", KMPKG_OPT_SIGNATURE | KMPKG_OPT_HOST, argc, argv,
				  "update [--dry-run] [--correlation-id ID] [--allow-unsigned] "
				  "[--allow-permission PERM]... [--host FILE] [--signature FILE] [NAME...|PATH...]");
	if (err)
		return err > 0 ? 0 : err;
	n = argc > o.first_arg ? (size_t)(argc - o.first_arg) : 0;
	for (i = 0; i < n; i++)
		names += kmpkg_plan_is_name(argv[o.first_arg + (int)i]);
	if (n == 0) {
		err = o.txn.signature ? kmpkg_cli_usage("update", "--signature applies to a local .kmpkg file")
				      : kmpkg_plan_run(cli, &o, NULL, 0, KMPKG_PLAN_UPDATE_ALL);
	} else if (names > 0 && names < n) {
		err = kmpkg_cli_usage("update", "give either plugin names or .kmpkg files, not both");
	} else if (names > 0) {
		if (o.txn.signature)
			err = kmpkg_cli_usage("update", "--signature applies to a local .kmpkg file");
		else
			err = kmpkg_plan_run(cli, &o, argv + o.first_arg, n, KMPKG_PLAN_UPDATE);
	} else if (o.txn.signature && n > 1) {
		err = kmpkg_cli_usage("update", "--signature applies to a single package");
	} else {
		err = kmpkg_txn_update(&s, &o.txn, argv + o.first_arg, n);
		if (!err)
			kmpkg_cmdutil_print_summary(cli, s);
		else
			json_decref(s);
	}
	kmpkg_cmdutil_release(&o);
	return err;
}
