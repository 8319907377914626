/* The static command table: one src/cmd_<name>.c per entry, in help order. */
#include <stddef.h>

#include "cli.h"

const struct kmpkg_cmd kmpkg_commands[] = {
	{ "install", "install plugins from .kmpkg files (one transaction)", kmpkg_cmd_install },
	{ "update", "update installed plugins from newer .kmpkg files", kmpkg_cmd_update },
	{ "remove", "uninstall plugins", kmpkg_cmd_remove },
	{ "rollback", "back to the last known-good generation or version", kmpkg_cmd_rollback },
	{ "list", "list installed plugins", kmpkg_cmd_list },
	{ "info", "one plugin's record and version history", kmpkg_cmd_info },
	{ "search", "search the source indexes by name and description", kmpkg_cmd_search },
	{ "status", "what is in flight, or the last outcome", kmpkg_cmd_status },
	{ "history", "transactions, newest first", kmpkg_cmd_history },
	{ "show", "one transaction's phase timeline", kmpkg_cmd_show },
	{ "source", "manage git-hosted plugin indexes (add, list, remove, update)", kmpkg_cmd_source },
	{ "gc", "delete generations and files no longer needed", kmpkg_cmd_gc },
	{ "preflight", "check manifests against a host profile (CI gate)", kmpkg_cmd_preflight },
	{ "verify", "re-hash installed files against their install-time records", kmpkg_cmd_verify },
	{ "key", "manage trusted signing keys", kmpkg_cmd_key },
	{ "pack", "build a reproducible .kmpkg from a plugin directory", kmpkg_cmd_pack },
	{ "semver", "compare versions and test ranges (node-semver rules)", kmpkg_cmd_semver },
	{ NULL, NULL, NULL },
};
