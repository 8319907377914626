/*
 * Which files changed in a git working tree since a revision (libgit2), for
 * `kmpkg preflight --changed-since REV` in pull-request CI.
 */
#ifndef KMPKG_CHANGED_H
#define KMPKG_CHANGED_H

#include <stddef.h>

enum kmpkg_change {
	KMPKG_CHANGE_NONE = 0,  /* tracked and identical */
	KMPKG_CHANGE_ADDED,     /* added, or untracked */
	KMPKG_CHANGE_MODIFIED,  /* modified, renamed, copied or type-changed */
	KMPKG_CHANGE_OUTSIDE,   /* not inside the repository's working directory */
};

/* A file deleted since the revision, with its old contents. */
struct kmpkg_changed_file {
	char *path;  /* relative to the repository's working directory */
	char *data;  /* NUL-terminated */
	size_t len;
};

struct kmpkg_changed_files {
	struct kmpkg_changed_file *v;
	size_t n;
};

/*
 * Opens the repository containing paths[0] (searching upwards from its
 * directory) and diffs a base tree against the working directory, index
 * included: the base is the merge base of rev and HEAD (like `git diff
 * REV...`), or rev itself when HEAD is unborn or the two share no history.
 * out[i] classifies paths[i] (n entries). When deleted is not NULL it gets
 * every deleted file whose name ends in .yaml or .yml (at most 64 KiB each),
 * so callers can tell what the deleted manifests provided.
 * Errors: KMPKG_EUSAGE with E_GIT_REPO_NOT_FOUND, E_GIT_REV_NOT_FOUND or
 * E_GIT_BARE; KMPKG_EGENERIC with E_GIT for other libgit2 failures.
 */
int kmpkg_changed_since(enum kmpkg_change *out, struct kmpkg_changed_files *deleted,
			const char *const *paths, size_t n, const char *rev);
void kmpkg_changed_files_release(struct kmpkg_changed_files *f);

#endif
