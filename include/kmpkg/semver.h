/*
 * SemVer 2.0.0 versions and node-semver ranges (default options: not loose,
 * no includePrerelease). node-semver 7.x is the reference for every behaviour.
 */
#ifndef KMPKG_SEMVER_H
#define KMPKG_SEMVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kmpkg_semver_ident {
	char *str;      /* the identifier as written */
	bool numeric;   /* all digits: compared as a number */
	uint64_t num;   /* its value when numeric, UINT64_MAX if it does not fit */
};

struct kmpkg_semver {
	uint64_t major, minor, patch;
	struct kmpkg_semver_ident *pre; /* pre-release identifiers, npre of them */
	size_t npre;
	char *build;                    /* build metadata without '+', or NULL */
};

/* Parses a strict SemVer 2.0.0 version as node-semver's strict regex does: a
 * leading 'v' and surrounding whitespace are allowed; '=' is not (node only
 * takes it in loose mode; in ranges "=1.2.3" is the '=' operator). At most 256
 * characters, numbers at most 2^53-1. Returns 0, or KMPKG_EUSAGE with
 * E_SEMVER_INVALID. Release with kmpkg_semver_release. */
int kmpkg_semver_parse(struct kmpkg_semver *out, const char *s);
void kmpkg_semver_release(struct kmpkg_semver *v);
/* -1, 0 or 1; build metadata is ignored (SemVer §10). */
int kmpkg_semver_cmp(const struct kmpkg_semver *a, const struct kmpkg_semver *b);
/* Canonical "1.2.3-pre.1+build" into a malloc'd string. */
char *kmpkg_semver_format(const struct kmpkg_semver *v);
/* Without build metadata: node-semver's `version` ("1.2.3-pre.1"), what
 * semver.valid() returns and what ranges print; malloc'd. */
char *kmpkg_semver_format_short(const struct kmpkg_semver *v);

struct kmpkg_semver_range; /* opaque: a union of comparator sets */

/* Parses a node-semver range ("" and "*" match any release). Returns 0 or
 * KMPKG_EUSAGE with E_RANGE_INVALID (also for ranges over 65536 bytes). */
int kmpkg_semver_range_parse(struct kmpkg_semver_range **out, const char *s);
void kmpkg_semver_range_free(struct kmpkg_semver_range *r);
bool kmpkg_semver_range_test(const struct kmpkg_semver_range *r, const struct kmpkg_semver *v);
/* The range in node-semver's normalised form (e.g. ">=1.2.3 <2.0.0-0"), malloc'd. */
char *kmpkg_semver_range_format(const struct kmpkg_semver_range *r);

/* String conveniences for the CLI and callers that hold text.
 * satisfies: 1 yes, 0 no, KMPKG_EUSAGE if either is malformed.
 * compare: -1/0/1 through *out, or KMPKG_EUSAGE. valid: true/false. */
int kmpkg_semver_satisfies(const char *version, const char *range);
int kmpkg_semver_compare(int *out, const char *a, const char *b);
bool kmpkg_semver_valid(const char *version);

#endif
