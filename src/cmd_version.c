/* kmpkg version: the same as --version, as a command for scripts. */
#include <stdio.h>

#include "cli.h"

int kmpkg_cmd_version(struct kmpkg_cli *cli, int argc, char **argv)
{
	(void)argv;
	if (argc > 1)
		return kmpkg_cli_usage("version", "version takes no arguments");
	if (cli->json)
		kmpkg_cli_print_json(json_pack("{s:s}", "version", KMPKG_VERSION));
	else
		printf("kmpkg %s\n", KMPKG_VERSION);
	return 0;
}
