/* kmpkg pack DIR [-o FILE]: a reproducible .kmpkg from a plugin directory. */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "kmpkg/error.h"
#include "kmpkg/pack.h"

int kmpkg_cmd_pack(struct kmpkg_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kmpkg_pack_result r = { 0 };
	const char *output = NULL;
	int c, rc;

	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			output = optarg;
			break;
		case 'h':
			printf("usage: kmpkg pack DIR [-o FILE]\n");
			return 0;
		default:
			return kmpkg_cli_usage("pack", "unknown option for pack");
		}
	}
	if (argc - optind != 1)
		return kmpkg_cli_usage("pack", "pack takes one plugin directory");
	if ((rc = kmpkg_pack(&r, argv[optind], output)) != 0)
		return rc;
	if (cli->json)
		kmpkg_cli_print_json(json_pack("{s:s, s:s, s:I, s:s, s:s}", "file", r.file, "sha256", r.sha256,
					       "size", (json_int_t)r.size, "name", r.name, "version", r.version));
	else if (!cli->quiet)
		printf("%s sha256 %s size %llu\n", r.file, r.sha256, (unsigned long long)r.size);
	kmpkg_pack_result_release(&r);
	return 0;
}
