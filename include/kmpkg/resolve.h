/*
 * Dependency resolution for `install NAME@RANGE...` and `update` (SPEC §1, §6):
 * a pure library (no I/O) implementing PubGrub (dart-lang/pub doc/solver.md):
 * unit propagation over incompatibilities, decisions, and conflict-driven
 * learning whose derivation tree becomes the explanation of a failure.
 *
 * The caller loads every candidate version it knows (source indexes) and the
 * installed set into a resolver, then asks for the plugins it wants. The
 * result is the newest set of versions that satisfies every range and passes
 * the compatibility filter, keeping installed versions unless they must move
 * (or are being updated). Version sets are finite sets of the known
 * candidates, so every set operation is exact; ranges follow node-semver
 * (pre-releases only when a range asks for them on the same major.minor.patch).
 *
 * Deterministic: the same resolver contents and request give the same answer.
 * Failures return KMPKG_EDEPS with code E_RESOLVE_NOT_FOUND (a plugin in the
 * proof has no versions at all), E_RESOLVE_NO_MATCH (no acceptable version of
 * a single range) or E_RESOLVE_CONFLICT (ranges that cannot hold together);
 * the message is the explanation on one line, steps separated by "; ", and
 * the steps are also available through kmpkg_resolver_explanation().
 */
#ifndef KMPKG_RESOLVE_H
#define KMPKG_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>

/* A version that can be installed: one manifest of a source index. All
 * strings are copied; userdata is the caller's (e.g. the manifest) and comes
 * back in the resolution and the filter. */
struct kmpkg_resolve_candidate {
	const char *name;
	const char *version;               /* SemVer 2.0.0 */
	const char *const *dep_names;      /* ndeps names ... */
	const char *const *dep_ranges;     /* ... and their node-semver ranges */
	size_t ndeps;
	void *userdata;
};

/* A plugin in the active generation. constraint: the range it was installed
 * with (`install NAME@RANGE`), NULL or "" when none: then any release, and
 * the installed version itself, is acceptable. The dependencies are used only
 * when no candidate has the same name and version (e.g. installed from a
 * local .kmpkg file); otherwise the candidate's are. */
struct kmpkg_resolve_installed {
	const char *name;
	const char *version;
	const char *constraint;
	const char *const *dep_names;
	const char *const *dep_ranges;
	size_t ndeps;
	void *userdata;
};

/* A requested plugin. range: a node-semver range that replaces the installed
 * constraint ("" or "*" = any release); NULL keeps the installed constraint
 * (`update NAME`), or means any release when NAME is not installed.
 * A requested plugin prefers its newest acceptable version over keeping the
 * installed one. */
struct kmpkg_resolve_request {
	const char *name;
	const char *range;
};

enum kmpkg_resolve_action {
	KMPKG_RESOLVE_KEEP,      /* installed, stays at this version */
	KMPKG_RESOLVE_INSTALL,   /* not installed yet */
	KMPKG_RESOLVE_UPGRADE,   /* installed, moves to a newer version */
	KMPKG_RESOLVE_DOWNGRADE, /* installed, moves to an older version */
};

struct kmpkg_resolution_item {
	char *name;
	char *version;
	char *installed_version;      /* NULL when not installed */
	enum kmpkg_resolve_action action;
	bool requested;               /* named in the request */
	void *userdata;               /* of the chosen candidate (or installed record) */
};

/* Every selected plugin (the requested ones, their dependencies, and every
 * installed plugin), sorted by name. Owned by the caller. */
struct kmpkg_resolution {
	struct kmpkg_resolution_item *items;
	size_t n;
};

enum kmpkg_resolve_step_kind {
	KMPKG_RESOLVE_STEP_REQUEST,   /* name range was requested */
	KMPKG_RESOLVE_STEP_INSTALLED, /* name version is installed (range = its constraint or NULL) */
	KMPKG_RESOLVE_STEP_DEPENDS,   /* name version needs dep_name range */
	KMPKG_RESOLVE_STEP_MISSING,   /* dep_name is needed (by name version, or requested when name
				       * is NULL) but has no versions at all */
	KMPKG_RESOLVE_STEP_NO_MATCH,  /* dep_name range is needed (same) but matches no version */
	KMPKG_RESOLVE_STEP_REJECTED,  /* name version rejected by the filter; range = its reason */
	KMPKG_RESOLVE_STEP_INVALID,   /* name version has a malformed range for dep_name */
	KMPKG_RESOLVE_STEP_DERIVED,   /* a conclusion from the steps before it */
};

/* One step of an explanation; strings borrowed from the resolver, valid until
 * its next kmpkg_resolve or kmpkg_resolver_free. Fields that do not apply to
 * the kind are NULL. */
struct kmpkg_resolve_step {
	enum kmpkg_resolve_step_kind kind;
	const char *text;     /* the sentence, as it appears in the error message */
	const char *name;
	const char *version;
	const char *dep_name;
	const char *range;
};

/* Compatibility predicate (preflight on this host). Return false to reject
 * name@version, writing a one-line reason into why (whylen bytes, NUL
 * terminated; leave empty for a generic reason). Called at most once per
 * version per kmpkg_resolve, never for the installed version of a plugin
 * (keeping what is installed is not an installation). */
typedef bool (*kmpkg_resolve_filter_fn)(void *ctx, const char *name, const char *version,
					void *userdata, char *why, size_t whylen);

enum {
	KMPKG_RESOLVE_UPGRADE_ALL = 1u << 0, /* every plugin prefers its newest version (`update`) */
};

struct kmpkg_resolver;

int kmpkg_resolver_new(struct kmpkg_resolver **out);
void kmpkg_resolver_free(struct kmpkg_resolver *r);

/* Adds a candidate. A second candidate with the same name and version (build
 * metadata ignored) is ignored: the first added wins. Errors: KMPKG_EUSAGE
 * with E_SEMVER_INVALID for a malformed version, E_RESOLVE_NAME for an empty
 * name. Dependency ranges are parsed when first needed; a malformed one makes
 * only that version unusable (an INVALID step if it matters). */
int kmpkg_resolver_add_candidate(struct kmpkg_resolver *r, const struct kmpkg_resolve_candidate *c);
/* Records an installed plugin (at most one per name: a second replaces the
 * first). Errors: KMPKG_EUSAGE with E_SEMVER_INVALID / E_RANGE_INVALID. */
int kmpkg_resolver_add_installed(struct kmpkg_resolver *r, const struct kmpkg_resolve_installed *i);
/* ok NULL removes the filter. */
void kmpkg_resolver_set_filter(struct kmpkg_resolver *r, kmpkg_resolve_filter_fn ok, void *ctx);

/* Resolves reqs[0..n) together with every installed plugin. 0 and *out set,
 * or: KMPKG_EDEPS (see above; *out NULL), KMPKG_EUSAGE with E_RANGE_INVALID /
 * E_RESOLVE_NAME for a malformed request, KMPKG_EGENERIC E_NOMEM. */
int kmpkg_resolve(struct kmpkg_resolution **out, struct kmpkg_resolver *r,
		  const struct kmpkg_resolve_request *reqs, size_t n, unsigned flags);
void kmpkg_resolution_free(struct kmpkg_resolution *res);

/* The explanation of the last failed kmpkg_resolve (n = 0 after a success). */
const struct kmpkg_resolve_step *kmpkg_resolver_explanation(const struct kmpkg_resolver *r,
							      size_t *n);

const char *kmpkg_resolve_action_name(enum kmpkg_resolve_action a);

#endif
