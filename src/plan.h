/*
 * Installing by name (`install NAME[@RANGE]...`, `update [NAME...]`): the
 * command-line side of resolution. Candidates come from the index cache
 * (include/kmpkg/index.h), the installed set from the state, the filter is
 * preflight against this host (<root>/kmpkg/host.yaml; no profile: every
 * version passes). The resolved artifacts are fetched into kmpkg/cache under
 * the root lock and handed to kmpkg_txn_install_targets as one transaction.
 */
#ifndef KMPKG_PLAN_H
#define KMPKG_PLAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "cli.h"
#include "cmdutil.h"
#include "kmpkg/manifest.h"

/* True when the operand is a plugin name or NAME@RANGE rather than a path. */
bool kmpkg_plan_is_name(const char *operand);

/* The host profile `file`, or (file NULL) <root>/kmpkg/host.yaml; *out NULL
 * (and 0) when file is NULL and there is none. */
int kmpkg_plan_load_host(struct kmpkg_host **out, const char *root, const char *file);

/* Preflight of one index summary on host (NULL: passes). On failure, a
 * one-line reason ("CODE: message") goes to why. provided (may be NULL) is an
 * object whose keys are capabilities some other plugin offers: a requirement
 * on one of them is left to the resolution rather than rejected. */
bool kmpkg_plan_passes(const struct kmpkg_host *host, const json_t *summary, const json_t *provided, char *why,
		       size_t whylen);

enum kmpkg_plan_mode {
	KMPKG_PLAN_INSTALL,     /* install NAME[@RANGE]... */
	KMPKG_PLAN_UPDATE,      /* update NAME... (inside the remembered constraints) */
	KMPKG_PLAN_UPDATE_ALL,  /* update with no operand */
};

/* Resolves the operands (names, NAME@RANGE), prints the plan (--dry-run) or
 * runs the transaction and prints its summary. */
int kmpkg_plan_run(const struct kmpkg_cli *cli, struct kmpkg_cmdopts *o, char *const *operands, size_t n,
		   enum kmpkg_plan_mode mode);

#endif
