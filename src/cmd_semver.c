/*
 * kmpkg semver satisfies VERSION RANGE | compare A B | valid V
 *
 * Answers use the exit status: 0 yes, 1 no (an answer, not an error: no error
 * object in --json mode), 2 malformed input (E_SEMVER_INVALID/E_RANGE_INVALID).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kmpkg/error.h"
#include "kmpkg/semver.h"

static const char usage_text[] =
	"usage: kmpkg semver satisfies VERSION RANGE\n"
	"       kmpkg semver compare A B\n"
	"       kmpkg semver valid VERSION\n";

/* json_string for user input that may not be UTF-8. */
static json_t *json_input(const char *s)
{
	json_t *j = json_string(s);
	char *copy;
	size_t i;

	if (j)
		return j;
	if (!(copy = strdup(s)))
		return NULL;
	for (i = 0; copy[i]; i++)
		if ((unsigned char)copy[i] >= 0x80)
			copy[i] = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

/* Re-labels the library's error with the CLI field at fault. */
static int relabel(int err, const char *field)
{
	const struct kmpkg_error *e = kmpkg_error_last();
	struct kmpkg_error copy = *e;

	if (err != KMPKG_EUSAGE)
		return err;
	return kmpkg_error_set(err, copy.code, field, copy.next_step, "%s", copy.message);
}

static int cmd_satisfies(struct kmpkg_cli *cli, const char *version, const char *range)
{
	struct kmpkg_semver v = { 0 };
	struct kmpkg_semver_range *r = NULL;
	char *vs = NULL, *rs = NULL;
	bool yes;
	int err;

	if ((err = kmpkg_semver_parse(&v, version))) {
		err = relabel(err, "version");
		goto cleanup;
	}
	if ((err = kmpkg_semver_range_parse(&r, range))) {
		err = relabel(err, "range");
		goto cleanup;
	}
	yes = kmpkg_semver_range_test(r, &v);
	vs = kmpkg_semver_format_short(&v);
	rs = kmpkg_semver_range_format(r);
	if (!vs || !rs) {
		err = kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
		goto cleanup;
	}
	if (cli->json)
		kmpkg_cli_print_json(json_pack("{s:b, s:s, s:s}", "satisfies", yes, "version", vs, "range", rs));
	else
		kmpkg_cli_say(cli, "%s %s %s\n", vs, yes ? "satisfies" : "does not satisfy",
			      rs[0] ? rs : "* (any release)");
	err = yes ? 0 : 1;
cleanup:
	free(vs);
	free(rs);
	kmpkg_semver_range_free(r);
	kmpkg_semver_release(&v);
	return err;
}

static int cmd_compare(struct kmpkg_cli *cli, const char *a, const char *b)
{
	struct kmpkg_semver va = { 0 }, vb = { 0 };
	char *as = NULL, *bs = NULL;
	int err, c;

	if ((err = kmpkg_semver_parse(&va, a)) || (err = kmpkg_semver_parse(&vb, b))) {
		err = relabel(err, "version");
		goto cleanup;
	}
	c = kmpkg_semver_cmp(&va, &vb);
	if (cli->json) {
		as = kmpkg_semver_format_short(&va);
		bs = kmpkg_semver_format_short(&vb);
		if (!as || !bs) {
			err = kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
			goto cleanup;
		}
		kmpkg_cli_print_json(json_pack("{s:i, s:s, s:s}", "compare", c, "a", as, "b", bs));
	} else {
		printf("%d\n", c);
	}
cleanup:
	free(as);
	free(bs);
	kmpkg_semver_release(&va);
	kmpkg_semver_release(&vb);
	return err;
}

static int cmd_valid(struct kmpkg_cli *cli, const char *version)
{
	struct kmpkg_semver v = { 0 };
	char *vs = NULL;
	int err;

	if ((err = kmpkg_semver_parse(&v, version))) {
		if (err != KMPKG_EUSAGE)
			goto cleanup;
		/* "not valid" is the answer to the question asked. */
		if (cli->json)
			kmpkg_cli_print_json(json_pack("{s:b, s:o, s:s}", "valid", 0, "input", json_input(version),
						       "reason", kmpkg_error_last()->message));
		else if (!cli->quiet)
			fprintf(stderr, "kmpkg: %s\n", kmpkg_error_last()->message);
		kmpkg_error_clear();
		err = 1;
		goto cleanup;
	}
	if (!(vs = kmpkg_semver_format_short(&v))) {
		err = kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
		goto cleanup;
	}
	if (cli->json)
		kmpkg_cli_print_json(json_pack("{s:b, s:o, s:s, s:s?}", "valid", 1, "input", json_input(version),
					       "version", vs, "build", v.build));
	else
		printf("%s\n", vs);
cleanup:
	free(vs);
	kmpkg_semver_release(&v);
	return err;
}

int kmpkg_cmd_semver(struct kmpkg_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sub;
	int c, nargs;
	char **args;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			return kmpkg_cli_usage("semver", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return kmpkg_cli_usage("semver", "semver needs a subcommand: satisfies, compare or valid");
	sub = argv[optind];
	args = argv + optind + 1;
	nargs = argc - optind - 1;
	/* Operands may look like options ("-1" is no version, but say so
	 * rather than treat it as a flag); "--" is accepted and skipped. */
	if (nargs > 0 && strcmp(args[0], "--") == 0) {
		args++;
		nargs--;
	}
	if (strcmp(sub, "satisfies") == 0) {
		if (nargs != 2)
			return kmpkg_cli_usage("semver", "usage: kmpkg semver satisfies VERSION RANGE");
		return cmd_satisfies(cli, args[0], args[1]);
	}
	if (strcmp(sub, "compare") == 0) {
		if (nargs != 2)
			return kmpkg_cli_usage("semver", "usage: kmpkg semver compare A B");
		return cmd_compare(cli, args[0], args[1]);
	}
	if (strcmp(sub, "valid") == 0) {
		if (nargs != 1)
			return kmpkg_cli_usage("semver", "usage: kmpkg semver valid VERSION");
		return cmd_valid(cli, args[0]);
	}
	return kmpkg_cli_usage("semver", "unknown subcommand '%s' (satisfies, compare or valid)", sub);
}
