/* The static command table: one src/cmd_<name>.c per entry, in help order. */
#include <stddef.h>

#include "cli.h"

const struct kmpkg_cmd kmpkg_commands[] = {
	{ "version", "print kmpkg's version", kmpkg_cmd_version },
	{ "pack", "build a reproducible .kmpkg from a plugin directory", kmpkg_cmd_pack },
	{ "key", "manage trusted signing keys", kmpkg_cmd_key },
	{ NULL, NULL, NULL },
};
