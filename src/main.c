/*
 * kmpkg entry point: parses the global options, dispatches to the command
 * table, and maps the error side channel to an exit status (SPEC §2) and to a
 * one-line message on stderr, or to the JSON error object in --json mode.
 */
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "kmpkg/error.h"

static void usage(FILE *f)
{
	const struct kmpkg_cmd *c;

	fprintf(f, "usage: kmpkg [--root DIR | --system | --project] [--json] [--quiet] [--no-color]\n"
		   "             [--wait SECS] COMMAND [ARGS]\n\ncommands:\n");
	for (c = kmpkg_commands; c->name; c++)
		fprintf(f, "  %-10s %s\n", c->name, c->summary);
	fprintf(f, "\nSee kmpkg(1) and kmpkg-COMMAND(1).\n");
}

static void report(const struct kmpkg_cli *cli, int status)
{
	const struct kmpkg_error *e = kmpkg_error_last();
	const char *code = e->code[0] ? e->code : "E_FAILED";
	const char *msg = e->message[0] ? e->message : "failed";

	if (cli->json) {
		json_t *err = json_pack("{s:s, s:s, s:s, s:s, s:i}", "code", code, "field", e->field,
					"message", msg, "next_step", e->next_step, "exit", status);
		kmpkg_cli_print_json(json_pack("{s:o}", "error", err));
		return;
	}
	if (cli->color)
		fprintf(stderr, "kmpkg: \033[1;31merror[%s]\033[0m: %s\n", code, msg);
	else
		fprintf(stderr, "kmpkg: error[%s]: %s\n", code, msg);
	if (e->next_step[0])
		fprintf(stderr, "  next step: %s\n", e->next_step);
}

/* Global options may stand before the command or among its arguments (before
 * a "--"); they are taken out of argv so commands see only their own. */
static int take_globals(struct kmpkg_cli *cli, int *argc, char **argv, bool *help, bool *version)
{
	static char cwd[PATH_MAX];
	int i, out = 1;
	bool after_dashdash = false;

	for (i = 1; i < *argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;

		if (after_dashdash || a[0] != '-') {
			argv[out++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			after_dashdash = true;
			argv[out++] = argv[i];
			continue;
		}
		if (strcmp(a, "--json") == 0) {
			cli->json = true;
		} else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
			cli->quiet = true;
		} else if (strcmp(a, "--no-color") == 0) {
			cli->color = false;
		} else if (strcmp(a, "--system") == 0) {
			cli->root = "/usr/local/share/km";
		} else if (strcmp(a, "--project") == 0) {
			if (!getcwd(cwd, sizeof(cwd)))
				return kmpkg_cli_usage(NULL, "cannot read the current directory");
			cli->root = cwd;
		} else if (strcmp(a, "--version") == 0) {
			*version = true;
		} else if ((strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) && out == 1) {
			*help = true;
		} else if (strncmp(a, "--root", 6) == 0 && (a[6] == '\0' || a[6] == '=')) {
			val = a[6] == '=' ? a + 7 : (i + 1 < *argc ? argv[++i] : NULL);
			if (!val || !*val)
				return kmpkg_cli_usage(NULL, "--root needs a directory");
			cli->root = val;
		} else if (strncmp(a, "--wait", 6) == 0 && (a[6] == '\0' || a[6] == '=')) {
			char *end;
			long secs;

			val = a[6] == '=' ? a + 7 : (i + 1 < *argc ? argv[++i] : NULL);
			if (!val)
				return kmpkg_cli_usage(NULL, "--wait needs a number of seconds");
			secs = strtol(val, &end, 10);
			if (*end || end == val || secs < 0 || secs > 86400)
				return kmpkg_cli_usage(NULL, "--wait takes seconds from 0 to 86400, not '%s'", val);
			cli->wait_secs = (int)secs;
		} else {
			argv[out++] = argv[i];
		}
	}
	argv[out] = NULL;
	*argc = out;
	return 0;
}

int main(int argc, char **argv)
{
	struct kmpkg_cli cli = { 0 };
	const struct kmpkg_cmd *c;
	static char home_root[PATH_MAX];
	bool help = false, version = false;
	const char *env;
	int err;

	cli.tty = isatty(STDERR_FILENO);
	cli.color = cli.tty && !getenv("NO_COLOR");
	cli.root = getenv("KMPKG_ROOT");
	if (!cli.root || !*cli.root) {
		env = getenv("HOME");
		snprintf(home_root, sizeof(home_root), "%s/.km", env && *env ? env : ".");
		cli.root = home_root;
	}

	if ((err = take_globals(&cli, &argc, argv, &help, &version)) != 0)
		goto out;
	if (version) {
		if (cli.json)
			kmpkg_cli_print_json(json_pack("{s:s}", "version", KMPKG_VERSION));
		else
			printf("kmpkg %s\n", KMPKG_VERSION);
		return 0;
	}
	if (help || argc < 2) {
		usage(help ? stdout : stderr);
		if (help)
			return 0;
		err = kmpkg_cli_usage(NULL, "no command given");
		goto out;
	}
	for (c = kmpkg_commands; c->name; c++)
		if (strcmp(c->name, argv[1]) == 0)
			break;
	if (!c->name) {
		err = kmpkg_cli_usage(NULL, "unknown command '%s'", argv[1]);
		goto out;
	}
	kmpkg_error_clear();
	optind = 0; /* commands parse their own options with getopt_long */
	err = c->run(&cli, argc - 1, argv + 1);
out:
	if (err < 0) {
		report(&cli, -err);
		return -err;
	}
	return err;
}
