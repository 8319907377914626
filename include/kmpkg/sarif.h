/*
 * SARIF 2.1.0 (OASIS) rendering of diagnostics, for code-scanning uploads
 * (GitHub's upload-sarif, GitLab's SAST report viewers): one run whose tool
 * is kmpkg, one rule per code used, one result per finding.
 */
#ifndef KMPKG_SARIF_H
#define KMPKG_SARIF_H

#include "kmpkg/diag.h"

/* Describes a rule: a one-line summary and a remedy (borrowed strings). */
typedef void (*kmpkg_sarif_rule_fn)(const char *code, const char **summary, const char **help);

/*
 * The SARIF log as a jansson object (the caller's). Result locations name
 * each file relative to base_dir when it lies below it (absolute paths are
 * made relative first; others become file:// URIs). rule may be NULL;
 * tool_version (driver.version) may be NULL.
 * Returns NULL when out of memory.
 */
struct json_t *kmpkg_sarif_from_diags(const struct kmpkg_diags *d, kmpkg_sarif_rule_fn rule,
				      const char *base_dir, const char *tool_version);

/* driver.informationUri: where kmpkg's documentation lives. */
#define KMPKG_SARIF_INFORMATION_URI "https://github.com/kilometers-ai/kmpkg"


#endif
