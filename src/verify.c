/* Re-hashing installed plugins against their install-time records. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kmpkg/archive.h"
#include "kmpkg/buf.h"
#include "kmpkg/error.h"
#include "kmpkg/fsutil.h"
#include "kmpkg/sha256.h"
#include "kmpkg/verify.h"

#define CHUNK 65536

/* The recorded paths, sorted, for the extra-file walk. Borrowed from rec. */
struct known {
	const char **path;
	char *type;
	size_t n;
};

/* An absent path, or one whose parent is not a directory any more. */
static bool is_absent(int err)
{
	return err == ENOENT || err == ENOTDIR || err == ELOOP;
}

static int bad_record(const char *name, const char *why)
{
	return kmpkg_error_set(KMPKG_EVERIFY, "E_VERIFY_BAD_RECORD", NULL,
			       "reinstall the plugin with 'kmpkg install PATH' to record its files again",
			       "%s: the install record %s", name ? name : "?", why);
}

static const char *js(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* sha256 of an open file, streamed. 1 when a read fails with EIO and the
 * like is not an error of ours but a finding ("unreadable"). */
static int hash_fd(char out[65], int fd, const char *path)
{
	struct kmpkg_sha256 md;
	char *buf = malloc(CHUNK);
	int rc = 0;

	out[0] = '\0';
	if (!buf)
		return kmpkg_error_errno(ENOMEM, "hash", path);
	kmpkg_sha256_init(&md);
	for (;;) {
		ssize_t n = read(fd, buf, CHUNK);

		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = 1;
			goto cleanup;
		}
		kmpkg_sha256_update(&md, buf, (size_t)n);
	}
	kmpkg_sha256_hex(&md, out);
cleanup:
	free(buf);
	return rc;
}

/* Opens the directory holding `path` below rootfd without following a
 * symlink anywhere. *out = -1 (and 0 returned) when a component is absent
 * or no longer a directory. */
static int open_parent(int *out, int rootfd, const char *path)
{
	const char *p = path, *q;
	int fd = -1, sub, rc = 0;

	*out = -1;
	fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		rc = kmpkg_error_errno(errno, "dup", path);
		goto cleanup;
	}
	while ((q = strchr(p, '/')) != NULL) {
		char comp[KMPKG_ARCHIVE_MAX_COMPONENT + 1];
		size_t n = (size_t)(q - p);

		if (n == 0 || n > KMPKG_ARCHIVE_MAX_COMPONENT) {
			rc = kmpkg_error_set(KMPKG_EVERIFY, "E_VERIFY_BAD_RECORD", NULL, NULL,
					     "recorded path %s is not normalised", path);
			goto cleanup;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		sub = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			if (!is_absent(errno))
				rc = kmpkg_error_errno(errno, "open", path);
			goto cleanup;
		}
		close(fd);
		fd = sub;
		p = q + 1;
	}
	*out = fd;
	fd = -1;
cleanup:
	if (fd >= 0)
		close(fd);
	return rc;
}

static const char *leaf(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static bool type_matches(char type, mode_t m)
{
	return (type == 'f' && S_ISREG(m)) || (type == 'd' && S_ISDIR(m)) || (type == 'l' && S_ISLNK(m));
}

/* The target of the symlink `name` in dirfd; NULL when unreadable. */
static char *read_link(int dirfd, const char *name, size_t hint)
{
	size_t cap = hint + 2 < 64 ? 64 : hint + 2;
	char *t = NULL;
	ssize_t n;

	for (;;) {
		char *nt = realloc(t, cap);

		if (!nt)
			break;
		t = nt;
		n = readlinkat(dirfd, name, t, cap);
		if (n < 0)
			break;
		if ((size_t)n < cap) {
			t[n] = '\0';
			return t;
		}
		if (cap > 65536)
			break;
		cap *= 2;
	}
	free(t);
	return NULL;
}

/* Compares one recorded file; appends to `modified` or `missing`. */
static int check_file(int rootfd, const json_t *f, json_t *modified, json_t *missing)
{
	const char *path = js(f, "path"), *type = js(f, "type"), *sha = js(f, "sha256"), *link = js(f, "link");
	json_t *what = json_array();
	struct stat st, st2;
	char *target = NULL, got[65];
	int parent = -1, fd = -1, rc;

	if ((rc = open_parent(&parent, rootfd, path)) != 0)
		goto cleanup;
	if (parent < 0) {
		json_array_append_new(missing, json_string(path));
		goto cleanup;
	}
	if (fstatat(parent, leaf(path), &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (!is_absent(errno))
			rc = kmpkg_error_errno(errno, "stat", path);
		else
			json_array_append_new(missing, json_string(path));
		goto cleanup;
	}
	if (!type_matches(type[0], st.st_mode)) {
		json_array_append_new(what, json_string("type"));
		goto done;
	}
	if (type[0] != 'l' && (json_int_t)(st.st_mode & 07777) != json_integer_value(json_object_get(f, "mode")))
		json_array_append_new(what, json_string("mode"));
	if (type[0] == 'f') {
		if ((json_int_t)st.st_size != json_integer_value(json_object_get(f, "size")))
			json_array_append_new(what, json_string("size"));
		/* O_NONBLOCK: a FIFO swapped in after the fstatat must not hang us. */
		fd = openat(parent, leaf(path), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st2) != 0 || !S_ISREG(st2.st_mode) || st2.st_ino != st.st_ino ||
		    st2.st_dev != st.st_dev) {
			json_array_append_new(what, json_string("unreadable"));
		} else if ((rc = hash_fd(got, fd, path)) < 0) {
			goto cleanup;
		} else if (rc == 1) {
			rc = 0;
			json_array_append_new(what, json_string("unreadable"));
		} else if (!sha || strcmp(got, sha) != 0) {
			json_array_append_new(what, json_string("sha256"));
		}
	} else if (type[0] == 'l') {
		target = read_link(parent, leaf(path), (size_t)st.st_size);
		if (!target)
			json_array_append_new(what, json_string("unreadable"));
		else if (!link || strcmp(target, link) != 0)
			json_array_append_new(what, json_string("link"));
	}
done:
	if (json_array_size(what) > 0)
		json_array_append_new(modified, json_pack("{s:s, s:O}", "path", path, "what", what));
cleanup:
	if (parent >= 0)
		close(parent);
	if (fd >= 0)
		close(fd);
	free(target);
	json_decref(what);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Index of path in k, or -1. */
static long known_find(const struct known *k, const char *path)
{
	size_t lo = 0, hi = k->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(path, k->path[mid]);

		if (c == 0)
			return (long)mid;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

/* Lists below dirfd (named prefix, "" for the root) every entry that is not
 * recorded; descends only into recorded directories that are still real
 * directories, so the depth is bounded by the record's. */
static int walk_extra(int dirfd, struct kmpkg_buf *prefix, const struct known *k, struct kmpkg_buf *names,
		      size_t *nnames)
{
	size_t base = prefix->len;
	struct dirent *de;
	DIR *d = NULL;
	int fd = -1, sub = -1, rc = 0;

	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		rc = kmpkg_error_errno(errno, "open", prefix->len ? prefix->ptr : ".");
		goto cleanup;
	}
	fd = -1;
	while ((errno = 0, de = readdir(d)) != NULL) {
		long i;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		prefix->len = base;
		if (base && kmpkg_buf_put(prefix, "/", 1)) {
			rc = kmpkg_error_errno(ENOMEM, "walk", NULL);
			goto cleanup;
		}
		if (kmpkg_buf_puts(prefix, de->d_name)) {
			rc = kmpkg_error_errno(ENOMEM, "walk", NULL);
			goto cleanup;
		}
		i = known_find(k, prefix->ptr);
		if (i < 0) {
			/* NUL-separated list, sorted by the caller. */
			if (kmpkg_buf_put(names, prefix->ptr, prefix->len + 1)) {
				rc = kmpkg_error_errno(ENOMEM, "walk", NULL);
				goto cleanup;
			}
			(*nnames)++;
			continue;
		}
		if (k->type[i] != 'd')
			continue;
		sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			if (is_absent(errno))
				continue; /* reported as modified (type) */
			rc = kmpkg_error_errno(errno, "open", prefix->ptr);
			goto cleanup;
		}
		rc = walk_extra(sub, prefix, k, names, nnames);
		close(sub);
		sub = -1;
		if (rc)
			goto cleanup;
	}
	if (errno) {
		rc = kmpkg_error_errno(errno, "readdir", prefix->len ? prefix->ptr : ".");
		goto cleanup;
	}
cleanup:
	prefix->len = base;
	if (prefix->ptr)
		prefix->ptr[base] = '\0';
	if (d)
		closedir(d);
	if (fd >= 0)
		close(fd);
	if (sub >= 0)
		close(sub);
	return rc;
}

/* Sorted json array of the NUL-separated names. */
static json_t *sorted_names(const struct kmpkg_buf *names, size_t n)
{
	const char **v = calloc(n ? n : 1, sizeof(*v));
	json_t *a = json_array();
	size_t i, off = 0;

	if (!v || !a) {
		free(v);
		json_decref(a);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		v[i] = names->ptr + off;
		off += strlen(v[i]) + 1;
	}
	qsort(v, n, sizeof(*v), cmp_str);
	for (i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	free(v);
	return a;
}

/* A record's path is used below the entry's fd: it must be normalised. */
static bool safe_path(const char *p)
{
	char *norm = NULL;
	bool is_dir = false, ok;

	if (!p || !*p)
		return false;
	ok = kmpkg_archive_normalise_path(&norm, &is_dir, p, 4096) == 0 && strcmp(norm, p) == 0;
	kmpkg_error_clear();
	free(norm);
	return ok;
}

int kmpkg_verify_plugin(json_t **out, const char *root, const json_t *rec)
{
	const char *name = js(rec, "name"), *entry = js(rec, "entry");
	const json_t *files = json_object_get(rec, "files"), *f;
	json_t *rep = NULL, *modified = json_array(), *missing = json_array(), *extra = NULL;
	struct kmpkg_buf prefix = KMPKG_BUF_INIT, names = KMPKG_BUF_INIT;
	struct known k = { NULL, NULL, 0 };
	char *store = NULL, *dir = NULL;
	size_t i, nnames = 0;
	int rootfd = -1, rc = 0;

	*out = NULL;
	if (!name || !entry || !*entry || strchr(entry, '/') || entry[0] == '.') {
		rc = bad_record(name, "names no store entry");
		goto cleanup;
	}
	if (!json_is_array(files)) {
		rc = bad_record(name, "has no file list");
		goto cleanup;
	}
	k.n = json_array_size(files);
	k.path = calloc(k.n ? k.n : 1, sizeof(*k.path));
	k.type = calloc(k.n ? k.n : 1, 1);
	if (!k.path || !k.type || !modified || !missing) {
		rc = kmpkg_error_errno(ENOMEM, "verify", name);
		goto cleanup;
	}
	json_array_foreach(files, i, f) {
		const char *p = js(f, "path"), *t = js(f, "type");

		if (!safe_path(p) || !t || !strchr("fdl", t[0]) || !t[0] || t[1]) {
			rc = bad_record(name, "has a malformed file entry");
			goto cleanup;
		}
		k.path[i] = p;
	}
	qsort(k.path, k.n, sizeof(*k.path), cmp_str);
	json_array_foreach(files, i, f) {
		long j = known_find(&k, js(f, "path"));

		k.type[j] = js(f, "type")[0];
	}

	store = kmpkg_fsutil_join(root, "kmpkg/store");
	dir = kmpkg_fsutil_join(store, entry);
	rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0) {
		if (!is_absent(errno)) {
			rc = kmpkg_error_errno(errno, "open", dir);
			goto cleanup;
		}
		/* The whole entry is gone: every recorded file is missing. */
		json_array_foreach(files, i, f)
			json_array_append_new(missing, json_string(js(f, "path")));
		extra = json_array();
	} else {
		json_array_foreach(files, i, f)
			if ((rc = check_file(rootfd, f, modified, missing)) != 0)
				goto cleanup;
		if ((rc = walk_extra(rootfd, &prefix, &k, &names, &nnames)) != 0)
			goto cleanup;
		extra = sorted_names(&names, nnames);
	}
	if (!extra) {
		rc = kmpkg_error_errno(ENOMEM, "verify", name);
		goto cleanup;
	}
	rep = json_pack("{s:s, s:O?, s:s, s:b, s:O, s:O, s:O}", "name", name, "version",
			json_object_get(rec, "version"), "entry", entry, "ok",
			json_array_size(modified) + json_array_size(missing) + json_array_size(extra) == 0,
			"modified", modified, "missing", missing, "extra", extra);
	if (!rep) {
		rc = kmpkg_error_errno(ENOMEM, "verify", name);
		goto cleanup;
	}
	*out = rep;
cleanup:
	if (rootfd >= 0)
		close(rootfd);
	kmpkg_buf_release(&prefix);
	kmpkg_buf_release(&names);
	free(k.path);
	free(k.type);
	free(store);
	free(dir);
	json_decref(modified);
	json_decref(missing);
	json_decref(extra);
	return rc;
}

size_t kmpkg_verify_count(const json_t *report)
{
	return json_array_size(json_object_get(report, "modified")) +
	       json_array_size(json_object_get(report, "missing")) + json_array_size(json_object_get(report, "extra"));
}
