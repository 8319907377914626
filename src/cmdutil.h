/*
 * Shared by the engine's commands (install, update, remove, rollback, gc and
 * the read-only list, info, status, history, show): the options of mutating
 * commands and the rendering of a transaction summary.
 */
#ifndef KMPKG_CMDUTIL_H
#define KMPKG_CMDUTIL_H

#include <jansson.h>
#include <stdbool.h>

#include "cli.h"
#include "kmpkg/state.h"
#include "kmpkg/txn.h"

enum {
	KMPKG_OPT_FORCE = 1 << 0,
	KMPKG_OPT_TO = 1 << 1,
	KMPKG_OPT_KEEP = 1 << 2,
	KMPKG_OPT_SIGNATURE = 1 << 3,
	KMPKG_OPT_HOST = 1 << 4,      /* --host FILE: the host profile for preflight */
	KMPKG_OPT_REINSTALL = 1 << 5, /* --reinstall */
};

struct kmpkg_cmdopts {
	struct kmpkg_txn_opts txn;
	const char *to;   /* rollback --to */
	int keep;         /* gc --keep, -1 when not given */
	int first_arg;    /* index of the first operand in argv */
};

/* Parses the common options of a mutating command (plus those in `extra`);
 * on success the operands are argv[out->first_arg .. argc-1]. */
int kmpkg_cmdutil_parse(struct kmpkg_cmdopts *out, struct kmpkg_cli *cli, const char *cmd, unsigned extra,
			int argc, char **argv, const char *usage);
void kmpkg_cmdutil_release(struct kmpkg_cmdopts *o);

/* Prints a transaction summary (text or JSON) and takes it over. */
void kmpkg_cmdutil_print_summary(const struct kmpkg_cli *cli, json_t *s);

/* "updating foo 1.2.0 → 1.3.0, bar 2.0.0" from a record in flight, "update
 * foo 1.2.0 → 1.3.0" from a finished one. */
char *kmpkg_cmdutil_describe(const json_t *rec);

/* <root>/kmpkg/cache, where every installed package is kept under its
 * SHA-256. */
char *kmpkg_cmdutil_cache_dir(const char *root);

/* Opens the state read-only after finishing interrupted work if nobody holds
 * the lock. *out is NULL (and 0 returned) for a root with no state yet. */
int kmpkg_cmdutil_open_reader(struct kmpkg_state **out, const char *root);

/* Every transaction record, newest first. */
int kmpkg_cmdutil_txns(json_t **out, struct kmpkg_state_txn *t);

/* The transaction whose id is `prefix` or starts with it: KMPKG_ENOTFOUND
 * E_TXN_NOT_FOUND when none, KMPKG_EUSAGE E_AMBIGUOUS_ID when several. */
int kmpkg_cmdutil_find_txn(json_t **out, struct kmpkg_state_txn *t, const char *prefix);

#endif
