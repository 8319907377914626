/* The static command table: one src/cmd_<name>.c per entry, in help order. */
#include <stddef.h>

#include "cli.h"

const struct kmpkg_cmd kmpkg_commands[] = {
	{ "preflight", "check manifests against a host profile (CI gate)", kmpkg_cmd_preflight },
	{ "key", "manage trusted signing keys", kmpkg_cmd_key },
	{ "pack", "build a reproducible .kmpkg from a plugin directory", kmpkg_cmd_pack },
	{ "semver", "compare versions and test ranges (node-semver rules)", kmpkg_cmd_semver },
	{ NULL, NULL, NULL },
};
