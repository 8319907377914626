/* Files changed in a git working tree since a revision (include/kmpkg/changed.h). */
#include <git2.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kmpkg/buf.h"
#include "kmpkg/changed.h"
#include "kmpkg/error.h"

#define DELETED_MAX_BYTES (64 * 1024)

void kmpkg_changed_files_release(struct kmpkg_changed_files *f)
{
	size_t i;

	for (i = 0; f && i < f->n; i++) {
		free(f->v[i].path);
		free(f->v[i].data);
	}
	if (f) {
		free(f->v);
		f->v = NULL;
		f->n = 0;
	}
}

static int git_fail(const char *what)
{
	const git_error *e = git_error_last();

	return kmpkg_error_set(KMPKG_EGENERIC, "E_GIT", NULL, NULL, "%s: %s", what,
			       e && e->message ? e->message : "libgit2 error");
}

/* The absolute, symlink-free name of path's directory joined with its own
 * name (the file itself may be a symlink tracked as such). NULL on failure. */
static char *absolute_name(const char *path)
{
	char *d = strdup(path), *b = strdup(path), *out = NULL;
	char real[PATH_MAX];
	struct kmpkg_buf buf = KMPKG_BUF_INIT;

	if (!d || !b)
		goto cleanup;
	if (!realpath(dirname(d), real))
		goto cleanup;
	if (kmpkg_buf_printf(&buf, "%s/%s", strcmp(real, "/") ? real : "", basename(b)) == 0)
		out = kmpkg_buf_detach(&buf);
cleanup:
	kmpkg_buf_release(&buf);
	free(d);
	free(b);
	return out;
}

static bool yaml_name(const char *p)
{
	size_t n = strlen(p);

	return (n > 5 && !strcmp(p + n - 5, ".yaml")) || (n > 4 && !strcmp(p + n - 4, ".yml"));
}

static int add_deleted(struct kmpkg_changed_files *del, git_repository *repo, const git_diff_delta *dd)
{
	struct kmpkg_changed_file *v, *f;
	git_blob *blob = NULL;
	git_object_size_t size;
	int err = 0;

	if (!yaml_name(dd->old_file.path))
		return 0;
	if (git_blob_lookup(&blob, repo, &dd->old_file.id) != 0)
		return 0; /* not in the object database (e.g. a shallow clone): nothing to tell */
	size = git_blob_rawsize(blob);
	if (size > DELETED_MAX_BYTES)
		goto cleanup;
	v = realloc(del->v, (del->n + 1) * sizeof(*v));
	if (!v)
		goto oom;
	del->v = v;
	f = &v[del->n];
	f->path = strdup(dd->old_file.path);
	f->data = malloc((size_t)size + 1);
	if (!f->path || !f->data) {
		free(f->path);
		free(f->data);
		goto oom;
	}
	memcpy(f->data, git_blob_rawcontent(blob), (size_t)size);
	f->data[size] = '\0';
	f->len = (size_t)size;
	del->n++;
	goto cleanup;
oom:
	err = kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
cleanup:
	git_blob_free(blob);
	return err;
}

/* The tree to diff from: merge-base(rev, HEAD), else rev's own tree. */
static int base_tree(git_tree **out, git_repository *repo, const char *rev)
{
	git_object *obj = NULL, *commit = NULL;
	git_commit *base = NULL;
	git_oid head, mb;
	int err = 0;

	*out = NULL;
	if (git_revparse_single(&obj, repo, rev) != 0) {
		err = kmpkg_error_set(KMPKG_EUSAGE, "E_GIT_REV_NOT_FOUND", "--changed-since",
				      "fetch the base history (actions/checkout with fetch-depth: 0, or "
				      "`git fetch origin BRANCH`) or name an existing revision",
				      "revision '%s' is not in the repository", rev);
		goto cleanup;
	}
	if (git_object_peel(&commit, obj, GIT_OBJECT_COMMIT) == 0 &&
	    git_reference_name_to_id(&head, repo, "HEAD") == 0 &&
	    git_merge_base(&mb, repo, git_object_id(commit), &head) == 0) {
		if (git_commit_lookup(&base, repo, &mb) != 0) {
			err = git_fail("read the merge base");
			goto cleanup;
		}
		if (git_commit_tree(out, base) != 0)
			err = git_fail("read the merge base's tree");
		goto cleanup;
	}
	if (git_object_peel((git_object **)out, obj, GIT_OBJECT_TREE) != 0)
		err = kmpkg_error_set(KMPKG_EUSAGE, "E_GIT_REV_NOT_FOUND", "--changed-since",
				      "name a commit, branch or tag", "revision '%s' does not name a tree", rev);
cleanup:
	git_commit_free(base);
	git_object_free(commit);
	git_object_free(obj);
	return err;
}

int kmpkg_changed_since(enum kmpkg_change *out, struct kmpkg_changed_files *deleted,
			const char *const *paths, size_t n, const char *rev)
{
	git_diff_options opts;
	git_repository *repo = NULL;
	git_tree *tree = NULL;
	git_diff *diff = NULL;
	char **rel = NULL, *first = NULL, *dir;
	char workdir[PATH_MAX];
	size_t i, j, wlen, ndelta;
	int err = 0;

	git_libgit2_init();
	git_diff_options_init(&opts, GIT_DIFF_OPTIONS_VERSION);
	for (i = 0; i < n; i++)
		out[i] = KMPKG_CHANGE_OUTSIDE;
	if (n == 0)
		goto cleanup;
	first = absolute_name(paths[0]);
	if (!first) {
		err = kmpkg_error_set(KMPKG_EUSAGE, "E_NOT_FOUND", NULL, "check the path",
				      "%s: its directory does not exist", paths[0]);
		goto cleanup;
	}
	dir = strrchr(first, '/');
	*dir = '\0';
	if (git_repository_open_ext(&repo, first[0] ? first : "/", 0, NULL) != 0) {
		err = kmpkg_error_set(KMPKG_EUSAGE, "E_GIT_REPO_NOT_FOUND", "--changed-since",
				      "run in a git checkout of the manifests, or drop --changed-since",
				      "%s is not inside a git repository", paths[0]);
		goto cleanup;
	}
	if (!git_repository_workdir(repo) || !realpath(git_repository_workdir(repo), workdir)) {
		err = kmpkg_error_set(KMPKG_EUSAGE, "E_GIT_BARE", "--changed-since",
				      "check the manifests of a non-bare checkout",
				      "the repository of %s has no working directory", paths[0]);
		goto cleanup;
	}
	wlen = strlen(workdir);
	if ((err = base_tree(&tree, repo, rev)) != 0)
		goto cleanup;
	opts.flags = GIT_DIFF_INCLUDE_UNTRACKED | GIT_DIFF_RECURSE_UNTRACKED_DIRS;
	if (git_diff_tree_to_workdir_with_index(&diff, repo, tree, &opts) != 0) {
		err = git_fail("diff against the working directory");
		goto cleanup;
	}

	rel = calloc(n, sizeof(*rel));
	if (!rel) {
		err = kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
		goto cleanup;
	}
	for (i = 0; i < n; i++) {
		rel[i] = absolute_name(paths[i]);
		if (rel[i] && !strncmp(rel[i], workdir, wlen) && rel[i][wlen] == '/')
			out[i] = KMPKG_CHANGE_NONE;
	}
	ndelta = git_diff_num_deltas(diff);
	for (j = 0; j < ndelta; j++) {
		const git_diff_delta *dd = git_diff_get_delta(diff, j);
		enum kmpkg_change kind;

		switch (dd->status) {
		case GIT_DELTA_ADDED:
		case GIT_DELTA_UNTRACKED:
			kind = KMPKG_CHANGE_ADDED;
			break;
		case GIT_DELTA_MODIFIED:
		case GIT_DELTA_RENAMED:
		case GIT_DELTA_COPIED:
		case GIT_DELTA_TYPECHANGE:
			kind = KMPKG_CHANGE_MODIFIED;
			break;
		case GIT_DELTA_DELETED:
			if (deleted && (err = add_deleted(deleted, repo, dd)) != 0)
				goto cleanup;
			continue;
		default:
			continue;
		}
		for (i = 0; i < n; i++)
			if (out[i] == KMPKG_CHANGE_NONE && !strcmp(rel[i] + wlen + 1, dd->new_file.path))
				out[i] = kind;
	}
cleanup:
	for (i = 0; rel && i < n; i++)
		free(rel[i]);
	free(rel);
	free(first);
	git_diff_free(diff);
	git_tree_free(tree);
	git_repository_free(repo);
	git_libgit2_shutdown();
	return err;
}
