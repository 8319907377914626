/*
 * kmpkg preflight FILE... [--host FILE] [--format text|json|github] [--strict]:
 * checks manifests and renders their findings; exit 3 when any is an error
 * (or, with --strict, a warning). The checks are in src/preflight.c.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kmpkg/diag.h"
#include "kmpkg/error.h"
#include "kmpkg/manifest.h"
#include "kmpkg/preflight.h"

enum format { FMT_TEXT, FMT_JSON, FMT_GITHUB };

static void help(void)
{
	printf("usage: kmpkg preflight MANIFEST... [--host HOSTFILE] [--format text|json|github] [--strict]\n"
	       "Checks each manifest; exits 3 if any finding is an error (--strict: or a warning).\n"
	       "See kmpkg-preflight(1), kmpkg-manifest(5), kmpkg-host(5).\n");
}

static void render(enum format fmt, const struct kmpkg_cli *cli, char **files, int nfiles,
		   const struct kmpkg_diags *d)
{
	size_t nerr = kmpkg_diags_count(d, KMPKG_SEV_ERROR), nwarn = kmpkg_diags_count(d, KMPKG_SEV_WARNING);
	json_t *jfiles;
	int i;

	if (fmt == FMT_JSON) {
		jfiles = json_array();
		for (i = 0; jfiles && i < nfiles; i++)
			json_array_append_new(jfiles, json_string(files[i]));
		kmpkg_cli_print_json(json_pack("{s:o, s:o, s:I, s:I}", "files", jfiles, "diagnostics",
					       kmpkg_diags_to_json(d), "errors", (json_int_t)nerr,
					       "warnings", (json_int_t)nwarn));
		return;
	}
	if (fmt == FMT_GITHUB) {
		kmpkg_diags_write_github(d, stdout);
		return;
	}
	kmpkg_diags_write_text(d, stdout, cli->color);
	kmpkg_cli_say(cli, "%d file%s checked: %zu error%s, %zu warning%s\n", nfiles, nfiles == 1 ? "" : "s",
		      nerr, nerr == 1 ? "" : "s", nwarn, nwarn == 1 ? "" : "s");
}

int kmpkg_cmd_preflight(struct kmpkg_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "format", required_argument, NULL, 'f' },
		{ "strict", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_host *host = NULL;
	const char *host_path = NULL;
	enum format fmt = FMT_TEXT;
	bool strict = false;
	int c, i, err = 0;

	while ((c = getopt_long(argc, argv, "hf:", opts, NULL)) != -1) {
		switch (c) {
		case 'H':
			host_path = optarg;
			break;
		case 'f':
			if (!strcmp(optarg, "text"))
				fmt = FMT_TEXT;
			else if (!strcmp(optarg, "json"))
				fmt = FMT_JSON;
			else if (!strcmp(optarg, "github"))
				fmt = FMT_GITHUB;
			else
				return kmpkg_cli_usage("preflight", "unknown --format '%s' (text, json or github)",
						       optarg);
			break;
		case 's':
			strict = true;
			break;
		case 'h':
			help();
			return 0;
		default:
			return kmpkg_cli_usage("preflight", "unknown option");
		}
	}
	if (cli->json)
		fmt = FMT_JSON;
	if (optind >= argc)
		return kmpkg_cli_usage("preflight", "name at least one manifest file");

	/* An unreadable file stops everything before any output, so --json
	 * still prints exactly one document (the error). */
	if (host_path) {
		err = kmpkg_host_load_file(&host, host_path, &d);
		if (err && err != KMPKG_EUSAGE)
			goto cleanup;
		err = 0;
	}
	for (i = optind; i < argc; i++) {
		err = kmpkg_preflight_check_file(argv[i], host, &d);
		if (err && err != KMPKG_EPREFLIGHT)
			goto cleanup;
		err = 0;
	}
	render(fmt, cli, argv + optind, argc - optind, &d);
	if (kmpkg_diags_count(&d, KMPKG_SEV_ERROR) > 0 ||
	    (strict && kmpkg_diags_count(&d, KMPKG_SEV_WARNING) > 0))
		err = -KMPKG_EPREFLIGHT; /* a positive status: the findings are the message */
cleanup:
	kmpkg_host_free(host);
	kmpkg_diags_release(&d);
	return err;
}
