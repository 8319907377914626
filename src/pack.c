/*
 * Reproducible packing (include/kmpkg/pack.h). Nothing about the packing host
 * reaches the output: entries are built from scratch (type, normalised mode,
 * size, fixed mtime, owner 0/0 "root") rather than copied from stat(2), and
 * the zstd frame carries neither a name nor a timestamp. The tree is walked
 * first, checked with the same rules as extraction, then written.
 */
#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kmpkg/archive.h"
#include "kmpkg/buf.h"
#include "kmpkg/error.h"
#include "kmpkg/fsutil.h"
#include "kmpkg/manifest.h"
#include "kmpkg/pack.h"
#include "kmpkg/sha256.h"

#define NEXT_TREE "remove or replace it in the plugin directory, then pack again"

void kmpkg_pack_result_release(struct kmpkg_pack_result *r)
{
	free(r->file);
	free(r->name);
	free(r->version);
	r->file = r->name = r->version = NULL;
}

static const struct kmpkg_diag *first_error(const struct kmpkg_diags *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (d->v[i].severity == KMPKG_SEV_ERROR)
			return &d->v[i];
	return NULL;
}

/*
 * DIR/kmpkg.yaml must be a regular file of at most 64 KiB that the manifest
 * loader accepts without an error finding; *name and *version are the caller's.
 */
static int pack_validate_manifest(char **name, char **version, int dirfd, const char *dir)
{
	struct stat st;
	char *text = NULL;
	struct kmpkg_manifest *m = NULL;
	struct kmpkg_diags diags = KMPKG_DIAGS_INIT;
	ssize_t got;
	int fd = -1, rc = 0;

	*name = *version = NULL;
	fd = openat(dirfd, "kmpkg.yaml", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = kmpkg_error_set(KMPKG_EVERIFY, "E_MANIFEST_MISSING", NULL,
				     "write kmpkg.yaml (see kmpkg-manifest(5)) at the top of the plugin directory",
				     "%s/kmpkg.yaml is missing or not a regular file", dir);
		goto cleanup;
	}
	if (st.st_size > KMPKG_ARCHIVE_MAX_MANIFEST) {
		rc = kmpkg_error_set(KMPKG_EVERIFY, "E_MANIFEST_TOO_LARGE", "/", "keep kmpkg.yaml under 64 KiB",
				     "%s/kmpkg.yaml is larger than %d bytes", dir, KMPKG_ARCHIVE_MAX_MANIFEST);
		goto cleanup;
	}
	text = calloc(1, (size_t)st.st_size + 1);
	if (!text) {
		rc = kmpkg_error_errno(ENOMEM, "read", "kmpkg.yaml");
		goto cleanup;
	}
	got = read(fd, text, (size_t)st.st_size);
	if (got < 0) {
		rc = kmpkg_error_errno(errno, "read", "kmpkg.yaml");
		goto cleanup;
	}
	text[got] = '\0';
	if ((rc = kmpkg_manifest_load_buf(&m, "kmpkg.yaml", text, (size_t)got, &diags)) != 0) {
		const struct kmpkg_diag *d = first_error(&diags);

		if (rc == KMPKG_EUSAGE && d)
			rc = kmpkg_error_set(KMPKG_EVERIFY, "E_MANIFEST_SCHEMA", d->field,
					     d->next_step ? d->next_step : "fix kmpkg.yaml (see kmpkg-manifest(5))",
					     "%s/kmpkg.yaml:%d:%d: %s [%s]", dir, d->line, d->column, d->message,
					     d->code);
		goto cleanup;
	}
	*name = strdup(m->name);
	*version = strdup(m->version);
	if (!*name || !*version)
		rc = kmpkg_error_errno(ENOMEM, "pack", dir);
cleanup:
	if (rc) {
		free(*name);
		free(*version);
		*name = *version = NULL;
	}
	if (fd >= 0)
		close(fd);
	free(text);
	kmpkg_manifest_free(m);
	kmpkg_diags_release(&diags);
	return rc;
}

struct walk {
	struct kmpkg_filelist *list;
	size_t alloc;
	uint64_t total;
	struct kmpkg_extract_limits lim;
	dev_t skip_dev; /* the output file, when it already lies in the tree */
	ino_t skip_ino;
	bool skip;
};

static int walk_add(struct walk *w, char *path, char type, unsigned mode, uint64_t size, char *target)
{
	struct kmpkg_file *f;

	if (w->list->n + 1 > w->lim.max_files)
		return kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_LIMIT", NULL, "split the plugin",
				       "%s: more than %llu entries", path, (unsigned long long)w->lim.max_files);
	if (w->list->n == w->alloc) {
		size_t na = w->alloc ? w->alloc * 2 : 64;
		struct kmpkg_file *nv = realloc(w->list->v, na * sizeof(*nv));

		if (!nv)
			return kmpkg_error_errno(ENOMEM, "pack", path);
		w->list->v = nv;
		w->alloc = na;
	}
	f = &w->list->v[w->list->n++];
	memset(f, 0, sizeof(*f));
	f->path = path;
	f->type = type;
	f->mode = mode;
	f->size = size;
	f->link_target = target;
	return 0;
}

static int walk_dir(struct walk *w, int dirfd, const char *prefix, int depth)
{
	DIR *d = NULL;
	struct dirent *de;
	char *raw = NULL, *path = NULL, *target = NULL;
	int fd = -1, sub = -1, rc = 0;
	bool is_dir;

	fd = dup(dirfd);
	if (fd < 0 || !(d = fdopendir(fd))) {
		rc = kmpkg_error_errno(errno, "open directory", prefix[0] ? prefix : ".");
		goto cleanup;
	}
	fd = -1;
	while ((errno = 0, de = readdir(d)) != NULL) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		free(raw);
		free(path);
		raw = path = NULL;
		if (asprintf(&raw, "%s%s%s", prefix, prefix[0] ? "/" : "", de->d_name) < 0) {
			raw = NULL;
			rc = kmpkg_error_errno(ENOMEM, "pack", de->d_name);
			goto cleanup;
		}
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			rc = kmpkg_error_errno(errno, "stat", raw);
			goto cleanup;
		}
		if (w->skip && st.st_dev == w->skip_dev && st.st_ino == w->skip_ino)
			continue;
		if ((rc = kmpkg_archive_normalise_path(&path, &is_dir, raw, w->lim.max_path)) != 0)
			goto cleanup;
		if (S_ISREG(st.st_mode)) {
			if (st.st_nlink > 1) {
				rc = kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_HARDLINK", NULL, NEXT_TREE,
						     "%s has %ju hard links; packages hold no hardlinks", raw,
						     (uintmax_t)st.st_nlink);
				goto cleanup;
			}
			w->total += (uint64_t)st.st_size;
			if (w->total > w->lim.max_total_bytes) {
				rc = kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_LIMIT", NULL, "make the plugin smaller",
						     "%s: the tree is larger than %llu bytes", raw,
						     (unsigned long long)w->lim.max_total_bytes);
				goto cleanup;
			}
			rc = walk_add(w, path, 'f', (st.st_mode & 0111) ? 0755 : 0644, (uint64_t)st.st_size, NULL);
			if (rc)
				goto cleanup;
			path = NULL;
		} else if (S_ISLNK(st.st_mode)) {
			char buf[4097];
			ssize_t n = readlinkat(dirfd, de->d_name, buf, sizeof(buf));

			if (n < 0 || (size_t)n >= sizeof(buf)) {
				rc = n < 0 ? kmpkg_error_errno(errno, "readlink", raw)
					   : kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_LIMIT", NULL, NEXT_TREE,
							     "%s: symlink target too long", raw);
				goto cleanup;
			}
			buf[n] = '\0';
			if ((rc = kmpkg_archive_check_symlink(path, buf)) != 0)
				goto cleanup;
			if (!(target = strdup(buf))) {
				rc = kmpkg_error_errno(ENOMEM, "pack", raw);
				goto cleanup;
			}
			if ((rc = walk_add(w, path, 'l', 0777, 0, target)) != 0)
				goto cleanup;
			path = target = NULL;
		} else if (S_ISDIR(st.st_mode)) {
			if (depth >= KMPKG_ARCHIVE_MAX_DEPTH) {
				rc = kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_LIMIT", NULL, NEXT_TREE,
						     "%s: nested too deep", raw);
				goto cleanup;
			}
			sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				rc = kmpkg_error_errno(errno, "open", raw);
				goto cleanup;
			}
			if ((rc = walk_add(w, path, 'd', 0755, 0, NULL)) != 0)
				goto cleanup;
			path = NULL;
			if ((rc = walk_dir(w, sub, raw, depth + 1)) != 0)
				goto cleanup;
			close(sub);
			sub = -1;
		} else {
			rc = kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_SPECIAL_FILE", NULL, NEXT_TREE,
					     "%s is a device, FIFO or socket; packages hold none", raw);
			goto cleanup;
		}
	}
	if (errno) {
		rc = kmpkg_error_errno(errno, "read directory", prefix[0] ? prefix : ".");
		goto cleanup;
	}
cleanup:
	if (d)
		closedir(d);
	if (fd >= 0)
		close(fd);
	if (sub >= 0)
		close(sub);
	free(raw);
	free(path);
	free(target);
	return rc;
}

struct sink {
	int fd;
	struct kmpkg_sha256 md;
	uint64_t size;
	int err;
};

static la_ssize_t sink_write(struct archive *a, void *data, const void *buf, size_t len)
{
	struct sink *s = data;
	size_t off = 0;

	(void)a;
	while (off < len) {
		ssize_t n = write(s->fd, (const char *)buf + off, len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* Recorded here, reported by archive_failed() once the
			 * archive_write_* call fails. */
			s->err = errno;
			return -1;
		}
		off += (size_t)n;
	}
	kmpkg_sha256_update(&s->md, buf, len);
	s->size += len;
	return (la_ssize_t)len;
}

static int archive_failed(struct archive *a, struct sink *s, const char *what, const char *path)
{
	if (s->err)
		return kmpkg_error_errno(s->err, what, path);
	return kmpkg_error_set(KMPKG_EGENERIC, "E_PACK", NULL, NULL, "%s %s: %s", what, path,
			       archive_error_string(a) ? archive_error_string(a) : "libarchive failed");
}

static int add_entry(struct archive *a, struct sink *s, int rootfd, const struct kmpkg_file *f, time_t mtime)
{
	struct archive_entry *e = archive_entry_new();
	char *buf = NULL;
	uint64_t left;
	int fd = -1, rc = 0;

	if (!e) {
		rc = kmpkg_error_errno(ENOMEM, "pack", f->path);
		goto cleanup;
	}
	archive_entry_set_pathname(e, f->path);
	archive_entry_set_mtime(e, mtime, 0);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_uname(e, "root");
	archive_entry_set_gname(e, "root");
	archive_entry_set_filetype(e, f->type == 'd' ? AE_IFDIR : f->type == 'l' ? AE_IFLNK : AE_IFREG);
	archive_entry_set_perm(e, f->mode);
	if (f->type == 'l')
		archive_entry_set_symlink(e, f->link_target);
	archive_entry_set_size(e, f->type == 'f' ? (la_int64_t)f->size : 0);
	if (f->type == 'f') {
		struct stat st;

		fd = openat(rootfd, f->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			rc = kmpkg_error_errno(errno, "open", f->path);
			goto cleanup;
		}
		if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size) {
			rc = kmpkg_error_set(KMPKG_EGENERIC, "E_PACK_CHANGED", NULL, "pack again when the tree is stable",
					     "%s changed while it was being packed", f->path);
			goto cleanup;
		}
	}
	if (archive_write_header(a, e) != ARCHIVE_OK) {
		rc = archive_failed(a, s, "write header of", f->path);
		goto cleanup;
	}
	if (f->type != 'f')
		goto cleanup;
	buf = malloc(65536);
	if (!buf) {
		rc = kmpkg_error_errno(ENOMEM, "pack", f->path);
		goto cleanup;
	}
	for (left = f->size; left;) {
		ssize_t n = read(fd, buf, left < 65536 ? (size_t)left : 65536);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = kmpkg_error_errno(errno, "read", f->path);
			goto cleanup;
		}
		if (n == 0) {
			rc = kmpkg_error_set(KMPKG_EGENERIC, "E_PACK_CHANGED", NULL, "pack again when the tree is stable",
					     "%s shrank while it was being packed", f->path);
			goto cleanup;
		}
		if (archive_write_data(a, buf, (size_t)n) != n) {
			rc = archive_failed(a, s, "write", f->path);
			goto cleanup;
		}
		left -= (uint64_t)n;
	}
cleanup:
	if (fd >= 0)
		close(fd);
	free(buf);
	archive_entry_free(e);
	return rc;
}

static int source_date_epoch(time_t *out)
{
	const char *s = getenv("SOURCE_DATE_EPOCH");
	char *end = NULL;
	long long v;

	*out = 0;
	if (!s || !*s)
		return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < 0 || s[0] == '-' || s[0] == '+' || s[0] == ' ')
		return kmpkg_error_set(KMPKG_EUSAGE, "E_USAGE", "SOURCE_DATE_EPOCH",
				       "set SOURCE_DATE_EPOCH to seconds since 1970 or unset it",
				       "SOURCE_DATE_EPOCH is not a non-negative integer: '%s'", s);
	*out = (time_t)v;
	return 0;
}

/* The directory that will hold `file` ("." for a bare name), malloc'd. */
static char *dir_of(const char *file)
{
	const char *slash = strrchr(file, '/');

	if (!slash)
		return strdup(".");
	if (slash == file)
		return strdup("/");
	return strndup(file, (size_t)(slash - file));
}

int kmpkg_pack(struct kmpkg_pack_result *out, const char *dir, const char *output)
{
	struct walk w;
	struct sink s = { .fd = -1 };
	struct archive *a = NULL;
	struct kmpkg_filelist *list = NULL;
	struct stat st;
	char *name = NULL, *version = NULL, *file = NULL, *tmp = NULL, *outdir = NULL;
	time_t mtime;
	size_t i;
	int rootfd = -1, rc = 0;

	memset(out, 0, sizeof(*out));
	memset(&w, 0, sizeof(w));
	if ((rc = source_date_epoch(&mtime)) != 0)
		goto cleanup;
	rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		rc = errno == ENOENT || errno == ENOTDIR
			     ? kmpkg_error_set(KMPKG_ENOTFOUND, "E_NOT_FOUND", NULL, "give a plugin directory",
					       "%s is not a directory", dir)
			     : kmpkg_error_errno(errno, "open", dir);
		goto cleanup;
	}
	if ((rc = pack_validate_manifest(&name, &version, rootfd, dir)) != 0)
		goto cleanup;
	if (output)
		file = strdup(output);
	else if (asprintf(&file, "%s-%s.kmpkg", name, version) < 0)
		file = NULL;
	if (!file || !(outdir = dir_of(file))) {
		rc = kmpkg_error_errno(ENOMEM, "pack", dir);
		goto cleanup;
	}

	list = calloc(1, sizeof(*list));
	if (!list) {
		rc = kmpkg_error_errno(ENOMEM, "pack", dir);
		goto cleanup;
	}
	w.list = list;
	kmpkg_extract_limits_default(&w.lim);
	if (stat(file, &st) == 0) {
		w.skip = true;
		w.skip_dev = st.st_dev;
		w.skip_ino = st.st_ino;
	}
	if ((rc = walk_dir(&w, rootfd, "", 0)) != 0)
		goto cleanup;
	/* Sorted by path, and no symlink chain leaves the tree. */
	if ((rc = kmpkg_filelist_check_links(list)) != 0)
		goto cleanup;

	if (!(a = archive_write_new())) {
		rc = kmpkg_error_errno(ENOMEM, "pack", dir);
		goto cleanup;
	}
	/* Written in a temporary file beside the output, published by the
	 * durable-write helper (fsync, rename, fsync of the directory). */
	if ((rc = kmpkg_fsutil_open_temp(&s.fd, &tmp, outdir)) != 0)
		goto cleanup;
	kmpkg_sha256_init(&s.md);
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_add_filter_zstd(a) != ARCHIVE_OK ||
	    archive_write_set_options(a, "zstd:compression-level=3") != ARCHIVE_OK ||
	    /* no zero padding after the zstd frame */
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open2(a, &s, NULL, sink_write, NULL, NULL) != ARCHIVE_OK) {
		rc = archive_failed(a, &s, "open", tmp);
		goto cleanup;
	}
	/* kmpkg.yaml first, so readers find the manifest at once. */
	for (i = 0; i < list->n; i++)
		if (strcmp(list->v[i].path, "kmpkg.yaml") == 0 &&
		    (rc = add_entry(a, &s, rootfd, &list->v[i], mtime)) != 0)
			goto cleanup;
	for (i = 0; i < list->n; i++)
		if (strcmp(list->v[i].path, "kmpkg.yaml") != 0 &&
		    (rc = add_entry(a, &s, rootfd, &list->v[i], mtime)) != 0)
			goto cleanup;
	if (archive_write_close(a) != ARCHIVE_OK) {
		rc = archive_failed(a, &s, "finish", tmp);
		goto cleanup;
	}
	if (fchmod(s.fd, 0644) != 0) {
		rc = kmpkg_error_errno(errno, "chmod", tmp);
		goto cleanup;
	}
	rc = kmpkg_fsutil_commit_temp(s.fd, tmp, file);
	s.fd = -1;
	free(tmp);
	tmp = NULL;
	if (rc != 0)
		goto cleanup;
	kmpkg_sha256_hex(&s.md, out->sha256);
	out->size = s.size;
	out->file = file;
	out->name = name;
	out->version = version;
	file = name = version = NULL;
cleanup:
	if (a)
		archive_write_free(a);
	if (s.fd >= 0)
		close(s.fd);
	if (tmp)
		unlink(tmp);
	if (rootfd >= 0)
		close(rootfd);
	kmpkg_filelist_free(list);
	free(tmp);
	free(outdir);
	free(file);
	free(name);
	free(version);
	return rc;
}
