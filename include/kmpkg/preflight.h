/*
 * Preflight (SPEC §9): the compatibility gate run by `kmpkg preflight` in CI
 * and before every install or update. This first form checks each manifest
 * against the schema (src/manifest.c); checks against a host profile are
 * added here, behind the same function.
 */
#ifndef KMPKG_PREFLIGHT_H
#define KMPKG_PREFLIGHT_H

#include "kmpkg/diag.h"
#include "kmpkg/manifest.h"

/*
 * Loads the manifest at path and appends every finding to d (host may be
 * NULL: schema checks only). Returns 0 when no error-severity finding was
 * added (warnings may have been), KMPKG_EPREFLIGHT when one was,
 * KMPKG_ENOTFOUND / KMPKG_ERESOURCE when the file cannot be read, or
 * KMPKG_EGENERIC when out of memory (error set, no finding).
 */
int kmpkg_preflight_check_file(const char *path, const struct kmpkg_host *host, struct kmpkg_diags *d);

#endif
