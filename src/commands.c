/* The static command table: one src/cmd_<name>.c per entry, in help order. */
#include <stddef.h>

#include "cli.h"

const struct kmpkg_cmd kmpkg_commands[] = {
	{ "semver", "compare versions and test ranges (node-semver rules)", kmpkg_cmd_semver },
	{ "version", "print kmpkg's version", kmpkg_cmd_version },
	{ NULL, NULL, NULL },
};
