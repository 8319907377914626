/* The static command table: one src/cmd_<name>.c per entry, in help order. */
#include <stddef.h>

#include "cli.h"

const struct kmpkg_cmd kmpkg_commands[] = {
	{ "preflight", "check manifests against a host profile (CI gate)", kmpkg_cmd_preflight },
	{ NULL, NULL, NULL },
};
