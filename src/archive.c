/*
 * Hardened package extraction (include/kmpkg/archive.h, SPEC §5).
 *
 * libarchive only decodes; every decision is ours. Each header is checked
 * before its entry touches the disk: the name is normalised and bounded, the
 * type must be a regular file, a directory or a symlink whose target stays in
 * the package, no hardlinks, no set-id or sticky bits, no path seen before
 * (also as a parent directory), and the running totals stay under the size,
 * count and ratio caps. Writing happens under a directory fd opened once:
 * every component is opened with O_NOFOLLOW and leaves are created with
 * O_EXCL, so nothing the archive created (a symlink in particular) is ever
 * followed. A refusal removes dest_dir and everything in it; since nothing is
 * written outside it, that restores the prior state.
 *
 * After the last entry, symlinks are checked once more with the package's
 * other symlinks followed, which catches chains that are harmless one by one
 * (a -> b/.. with b -> ..).
 */
#include <archive.h>
#include <archive_entry.h>
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
#include "kmpkg/sha256.h"

#define RATIO_GRACE (1024 * 1024) /* the ratio cap applies above 1 MiB unpacked */
#define MAX_LINK_HOPS 40

static const char NEXT_UNSAFE[] =
	"do not install this package; ask its publisher for a package built with 'kmpkg pack'";

void kmpkg_extract_limits_default(struct kmpkg_extract_limits *l)
{
	l->max_total_bytes = 512ull * 1024 * 1024;
	l->max_files = 10000;
	l->max_ratio = 200;
	l->max_path = 4096;
}

void kmpkg_filelist_free(struct kmpkg_filelist *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->n; i++) {
		free(l->v[i].path);
		free(l->v[i].link_target);
	}
	free(l->v);
	free(l);
}

static int unsafe(const char *code, const char *path, const char *fmt, const char *detail)
{
	return kmpkg_error_set(KMPKG_EVERIFY, code, NULL, NEXT_UNSAFE, fmt, path, detail ? detail : "");
}

/* Printable rendering of an untrusted name for messages. */
static void printable(char *dst, size_t cap, const char *src)
{
	size_t o = 0;

	for (; *src && o + 5 < cap; src++) {
		unsigned char c = (unsigned char)*src;

		if (c < 0x20 || c == 0x7f)
			o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", c);
		else
			dst[o++] = (char)c;
	}
	dst[o] = '\0';
}

int kmpkg_archive_normalise_path(char **out, bool *is_dir, const char *raw, size_t max_path)
{
	struct kmpkg_buf b = KMPKG_BUF_INIT;
	char shown[512];
	const char *p, *q;
	size_t depth = 0;
	int rc = 0;

	*out = NULL;
	*is_dir = false;
	if (!raw)
		return unsafe("E_ARCHIVE_UNSAFE_PATH", "?", "entry %s%s has no readable name", NULL);
	printable(shown, sizeof(shown), raw);
	if (strlen(raw) > max_path) {
		rc = kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_LIMIT", NULL, NEXT_UNSAFE,
				     "entry %.200s...: path longer than %zu bytes", shown, max_path);
		goto cleanup;
	}
	for (p = raw; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c == 0x7f) {
			rc = unsafe("E_ARCHIVE_UNSAFE_PATH", shown, "entry %s: control character in name%s", NULL);
			goto cleanup;
		}
		if (c == '\\') {
			rc = unsafe("E_ARCHIVE_UNSAFE_PATH", shown, "entry %s: backslash in name%s", NULL);
			goto cleanup;
		}
	}
	if (raw[0] == '/') {
		rc = unsafe("E_ARCHIVE_UNSAFE_PATH", shown, "entry %s: absolute path%s", NULL);
		goto cleanup;
	}
	for (p = raw; *p; p = q) {
		size_t n;

		q = strchr(p, '/');
		if (!q)
			q = p + strlen(p);
		n = (size_t)(q - p);
		if (*q == '/')
			q++;
		if (n == 0 || (n == 1 && p[0] == '.'))
			continue;
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			rc = unsafe("E_ARCHIVE_UNSAFE_PATH", shown, "entry %s: '..' component%s", NULL);
			goto cleanup;
		}
		if (n > KMPKG_ARCHIVE_MAX_COMPONENT) {
			rc = kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_LIMIT", NULL, NEXT_UNSAFE,
					     "entry %.200s: a component is longer than %d bytes", shown,
					     KMPKG_ARCHIVE_MAX_COMPONENT);
			goto cleanup;
		}
		if (++depth > KMPKG_ARCHIVE_MAX_DEPTH) {
			rc = kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_LIMIT", NULL, NEXT_UNSAFE,
					     "entry %.200s: nested deeper than %d directories", shown,
					     KMPKG_ARCHIVE_MAX_DEPTH);
			goto cleanup;
		}
		if ((b.len && kmpkg_buf_put(&b, "/", 1)) || kmpkg_buf_put(&b, p, n)) {
			rc = kmpkg_error_errno(ENOMEM, "normalise", shown);
			goto cleanup;
		}
	}
	*is_dir = raw[0] && raw[strlen(raw) - 1] == '/';
	if (!b.ptr && kmpkg_buf_put(&b, "", 0)) {
		rc = kmpkg_error_errno(ENOMEM, "normalise", shown);
		goto cleanup;
	}
	*out = kmpkg_buf_detach(&b);
cleanup:
	kmpkg_buf_release(&b);
	return rc;
}

/* Pops the last component of a relative path kept in b; false at the root. */
static bool pop_component(struct kmpkg_buf *b)
{
	char *slash;

	if (b->len == 0)
		return false;
	slash = strrchr(b->ptr, '/');
	b->len = slash ? (size_t)(slash - b->ptr) : 0;
	b->ptr[b->len] = '\0';
	return true;
}

static int set_dirname(struct kmpkg_buf *b, const char *path)
{
	const char *slash = strrchr(path, '/');

	kmpkg_buf_clear(b);
	if (kmpkg_buf_put(b, path, slash ? (size_t)(slash - path) : 0))
		return kmpkg_error_errno(ENOMEM, "symlink check", path);
	return 0;
}

static int link_escape(const char *path, const char *target, const char *why)
{
	char p[512], t[512];

	printable(p, sizeof(p), path);
	printable(t, sizeof(t), target);
	return kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_LINK_ESCAPE", NULL, NEXT_UNSAFE,
			       "entry %s: symlink to '%s' %s", p, t, why);
}

/*
 * Resolves `target` from the directory of `path`. With `l` (sorted by path),
 * intermediate components that are symlinks of the package are followed.
 */
static int resolve_link(const char *path, const char *target, const struct kmpkg_filelist *l)
{
	struct kmpkg_buf dir = KMPKG_BUF_INIT, rest = KMPKG_BUF_INIT, cand = KMPKG_BUF_INIT;
	const unsigned char *c;
	size_t pos = 0, hops = 0;
	int rc;

	if (!target || !target[0])
		return link_escape(path, "", "has an empty target");
	if (target[0] == '/')
		return link_escape(path, target, "is absolute");
	for (c = (const unsigned char *)target; *c; c++)
		if (*c < 0x20 || *c == 0x7f)
			return link_escape(path, target, "has a control character");
	if (strlen(target) > 4096)
		return link_escape(path, target, "is longer than 4096 bytes");
	if ((rc = set_dirname(&dir, path)) != 0)
		goto cleanup;
	if (kmpkg_buf_puts(&rest, target)) {
		rc = kmpkg_error_errno(ENOMEM, "symlink check", path);
		goto cleanup;
	}
	while (pos < rest.len) {
		const char *p = rest.ptr + pos;
		const char *q = strchr(p, '/');
		size_t n = q ? (size_t)(q - p) : strlen(p);
		const struct kmpkg_file *hit = NULL;

		pos += n + (q ? 1 : 0);
		if (n == 0 || (n == 1 && p[0] == '.'))
			continue;
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (!pop_component(&dir)) {
				rc = link_escape(path, target, "points outside the package");
				goto cleanup;
			}
			continue;
		}
		kmpkg_buf_clear(&cand);
		if (kmpkg_buf_put(&cand, dir.ptr ? dir.ptr : "", dir.len) ||
		    (dir.len && kmpkg_buf_put(&cand, "/", 1)) || kmpkg_buf_put(&cand, p, n)) {
			rc = kmpkg_error_errno(ENOMEM, "symlink check", path);
			goto cleanup;
		}
		if (l && pos < rest.len) {
			size_t lo = 0, hi = l->n;

			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;
				int cmp = strcmp(l->v[mid].path, cand.ptr);

				if (cmp == 0) {
					hit = &l->v[mid];
					break;
				}
				if (cmp < 0)
					lo = mid + 1;
				else
					hi = mid;
			}
		}
		if (hit && hit->type == 'l' && hit->link_target) {
			struct kmpkg_buf next = KMPKG_BUF_INIT;

			if (++hops > MAX_LINK_HOPS) {
				rc = link_escape(path, target, "goes through too many symlinks");
				goto cleanup;
			}
			if (hit->link_target[0] == '/') {
				rc = link_escape(path, target, "goes through an absolute symlink");
				goto cleanup;
			}
			/* dir stays: the followed link lives in it. */
			if (kmpkg_buf_puts(&next, hit->link_target) || kmpkg_buf_put(&next, "/", 1) ||
			    kmpkg_buf_puts(&next, rest.ptr + pos)) {
				kmpkg_buf_release(&next);
				rc = kmpkg_error_errno(ENOMEM, "symlink check", path);
				goto cleanup;
			}
			kmpkg_buf_release(&rest);
			rest = next;
			pos = 0;
			continue;
		}
		kmpkg_buf_clear(&dir);
		if (kmpkg_buf_put(&dir, cand.ptr, cand.len)) {
			rc = kmpkg_error_errno(ENOMEM, "symlink check", path);
			goto cleanup;
		}
	}
	rc = 0;
cleanup:
	kmpkg_buf_release(&dir);
	kmpkg_buf_release(&rest);
	kmpkg_buf_release(&cand);
	return rc;
}

int kmpkg_archive_check_symlink(const char *path, const char *target)
{
	return resolve_link(path, target, NULL);
}

static int cmp_file(const void *a, const void *b)
{
	return strcmp(((const struct kmpkg_file *)a)->path, ((const struct kmpkg_file *)b)->path);
}

int kmpkg_filelist_check_links(struct kmpkg_filelist *l)
{
	size_t i;
	int rc;

	if (l->n)
		qsort(l->v, l->n, sizeof(l->v[0]), cmp_file);
	for (i = 0; i < l->n; i++) {
		if (l->v[i].type != 'l')
			continue;
		if ((rc = resolve_link(l->v[i].path, l->v[i].link_target, l)) != 0)
			return rc;
	}
	return 0;
}

/* ---- the set of paths seen so far ---------------------------------------- */

struct seen {
	size_t *slot; /* index + 1 into list->v, 0 = empty */
	size_t cap;
	struct kmpkg_filelist *list;
	size_t alloc;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct kmpkg_file *seen_find(const struct seen *s, const char *path)
{
	size_t i;

	if (!s->cap)
		return NULL;
	for (i = hash_str(path) & (s->cap - 1); s->slot[i]; i = (i + 1) & (s->cap - 1))
		if (strcmp(s->list->v[s->slot[i] - 1].path, path) == 0)
			return &s->list->v[s->slot[i] - 1];
	return NULL;
}

static void seen_insert_slot(size_t *slot, size_t cap, const char *path, size_t idx1)
{
	size_t i;

	for (i = hash_str(path) & (cap - 1); slot[i]; i = (i + 1) & (cap - 1))
		;
	slot[i] = idx1;
}

/* Appends a new entry (taking over path and link_target) and indexes it. */
static int seen_add(struct kmpkg_file **out, struct seen *s, char *path, char type)
{
	struct kmpkg_file *f;
	size_t i;

	if (s->list->n == s->alloc) {
		size_t na = s->alloc ? s->alloc * 2 : 64;
		struct kmpkg_file *nv = realloc(s->list->v, na * sizeof(*nv));

		if (!nv)
			return kmpkg_error_errno(ENOMEM, "extract", path);
		s->list->v = nv;
		s->alloc = na;
	}
	if ((s->list->n + 1) * 2 > s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 128;
		size_t *ns = calloc(ncap, sizeof(*ns));

		if (!ns)
			return kmpkg_error_errno(ENOMEM, "extract", path);
		for (i = 0; i < s->list->n; i++)
			seen_insert_slot(ns, ncap, s->list->v[i].path, i + 1);
		free(s->slot);
		s->slot = ns;
		s->cap = ncap;
	}
	f = &s->list->v[s->list->n++];
	memset(f, 0, sizeof(*f));
	f->path = path;
	f->type = type;
	seen_insert_slot(s->slot, s->cap, path, s->list->n);
	*out = f;
	return 0;
}

/* ---- writing under the destination fd ----------------------------------- */

/* Removes everything below dirfd (never following symlinks). */
static void remove_below(int dirfd, int depth)
{
	DIR *d;
	struct dirent *de;
	int fd = dup(dirfd);

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		int sub;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd, de->d_name, 0) == 0)
			continue;
		if (depth > KMPKG_ARCHIVE_MAX_DEPTH + 2)
			continue;
		sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			continue;
		remove_below(sub, depth + 1);
		close(sub);
		unlinkat(dirfd, de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

/* Opens the parent directory of `path` below rootfd, creating missing
 * directories (recorded as implicit entries) and never following a link. */
static int open_parent(int *out, int rootfd, const char *path, struct seen *s)
{
	struct kmpkg_buf pre = KMPKG_BUF_INIT;
	const char *p = path, *q;
	int fd = -1, sub = -1, rc = 0;

	*out = -1;
	fd = dup(rootfd);
	if (fd < 0) {
		rc = kmpkg_error_errno(errno, "dup", path);
		goto cleanup;
	}
	while ((q = strchr(p, '/')) != NULL) {
		char comp[KMPKG_ARCHIVE_MAX_COMPONENT + 1];
		size_t n = (size_t)(q - p);

		memcpy(comp, p, n);
		comp[n] = '\0';
		kmpkg_buf_clear(&pre);
		if (kmpkg_buf_put(&pre, path, (size_t)(q - path))) {
			rc = kmpkg_error_errno(ENOMEM, "extract", path);
			goto cleanup;
		}
		if (!seen_find(s, pre.ptr)) {
			struct kmpkg_file *f;
			char *dup_path = strdup(pre.ptr);

			if (!dup_path) {
				rc = kmpkg_error_errno(ENOMEM, "extract", path);
				goto cleanup;
			}
			if ((rc = seen_add(&f, s, dup_path, 'd')) != 0) {
				free(dup_path);
				goto cleanup;
			}
			f->mode = 0755;
			f->sha256[0] = 'i'; /* implicit: an explicit entry may follow */
			if (mkdirat(fd, comp, 0755) != 0) {
				rc = kmpkg_error_errno(errno, "mkdir", pre.ptr);
				goto cleanup;
			}
		}
		sub = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			rc = kmpkg_error_errno(errno, "open", pre.ptr);
			goto cleanup;
		}
		if (fchmod(sub, 0755) != 0) {
			rc = kmpkg_error_errno(errno, "chmod", pre.ptr);
			goto cleanup;
		}
		close(fd);
		fd = sub;
		sub = -1;
		p = q + 1;
	}
	*out = fd;
	fd = -1;
cleanup:
	if (fd >= 0)
		close(fd);
	if (sub >= 0)
		close(sub);
	kmpkg_buf_release(&pre);
	return rc;
}

static const char *leaf(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

struct extract {
	struct archive *a;
	const struct kmpkg_extract_limits *lim;
	uint64_t archive_bytes;
	uint64_t total;
	int rootfd;
	struct seen seen;
	char shown[512];
	/* The directory the previous entry went into (packages list a
	 * directory's files together): its path below the root and an fd
	 * opened by open_parent, reused while entries stay in it. */
	struct kmpkg_buf dir;
	int dirfd;
	/* The copy buffer for every file. */
	char *buf;
	/* Written files are closed through it: their write-back starts while
	 * the next ones are written (the caller's syncfs makes them durable). */
	struct kmpkg_worker *wb;
};

/* The parent directory of `path` (opened by open_parent), kept for the
 * next entries in the same directory. The fd is x's: do not close it. */
static int parent_of(int *out, struct extract *x, const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;
	int fd, rc;

	if (x->dirfd >= 0 && x->dir.len == n && (n == 0 || memcmp(x->dir.ptr, path, n) == 0)) {
		*out = x->dirfd;
		return 0;
	}
	if ((rc = open_parent(&fd, x->rootfd, path, &x->seen)) != 0)
		return rc;
	if (x->dirfd >= 0)
		close(x->dirfd);
	x->dirfd = -1;
	kmpkg_buf_clear(&x->dir);
	if (kmpkg_buf_put(&x->dir, path, n)) {
		close(fd);
		return kmpkg_error_errno(ENOMEM, "extract", path);
	}
	x->dirfd = fd;
	*out = fd;
	return 0;
}

static int corrupt(struct extract *x, const char *what)
{
	return kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_CORRUPT", NULL,
			       "download the package again; if it persists, report it to its publisher",
			       "%s%s%s: %s", what, x->shown[0] ? " " : "", x->shown,
			       archive_error_string(x->a) ? archive_error_string(x->a) : "unreadable archive");
}

static int over_limit(struct extract *x, uint64_t more)
{
	uint64_t total = x->total + more;

	if (more > x->lim->max_total_bytes || total > x->lim->max_total_bytes)
		return kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_LIMIT", NULL, NEXT_UNSAFE,
				       "entry %s: package unpacks to more than %llu bytes", x->shown,
				       (unsigned long long)x->lim->max_total_bytes);
	if (total > RATIO_GRACE && x->lim->max_ratio &&
	    total / x->lim->max_ratio > (x->archive_bytes ? x->archive_bytes : 1))
		return kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_LIMIT", NULL, NEXT_UNSAFE,
				       "entry %s: compression ratio above %llu (%llu bytes from %llu)",
				       x->shown, (unsigned long long)x->lim->max_ratio,
				       (unsigned long long)total, (unsigned long long)x->archive_bytes);
	return 0;
}

static int write_file(struct extract *x, struct kmpkg_file *f, int parent, unsigned perm)
{
	struct kmpkg_sha256 md;
	char *buf = x->buf;
	int fd = -1, rc = 0;

	if (!buf) {
		rc = kmpkg_error_errno(ENOMEM, "extract", f->path);
		goto cleanup;
	}
	kmpkg_sha256_init(&md);
	/* umask is 0 during extraction (kmpkg_archive_extract): perm is exact. */
	fd = openat(parent, leaf(f->path), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, perm);
	if (fd < 0) {
		rc = kmpkg_error_errno(errno, "create", f->path);
		goto cleanup;
	}
	for (;;) {
		la_ssize_t n = archive_read_data(x->a, buf, 65536);
		size_t off = 0;

		if (n == 0)
			break;
		if (n < 0) {
			rc = corrupt(x, "reading entry");
			goto cleanup;
		}
		if ((rc = over_limit(x, (uint64_t)n)) != 0)
			goto cleanup;
		x->total += (uint64_t)n;
		f->size += (uint64_t)n;
		kmpkg_sha256_update(&md, buf, (size_t)n);
		while (off < (size_t)n) {
			ssize_t w = write(fd, buf + off, (size_t)n - off);

			if (w < 0) {
				if (errno == EINTR)
					continue;
				rc = kmpkg_error_errno(errno, "write", f->path);
				goto cleanup;
			}
			off += (size_t)w;
		}
	}
	rc = kmpkg_fsutil_writeback_close(x->wb, fd, f->path);
	fd = -1;
	if (rc)
		goto cleanup;
	kmpkg_sha256_hex(&md, f->sha256);
cleanup:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Checks one header and writes its entry. */
static int extract_entry(struct extract *x, struct archive_entry *e)
{
	struct kmpkg_file *f = NULL, *old;
	const char *hl = archive_entry_hardlink(e);
	const char *raw = archive_entry_pathname(e);
	mode_t ft = archive_entry_filetype(e);
	unsigned mode = (unsigned)archive_entry_mode(e);
	char *path = NULL, *target = NULL;
	char type;
	bool is_dir = false;
	int parent = -1, fd = -1, rc;

	x->shown[0] = '\0';
	if (raw)
		printable(x->shown, sizeof(x->shown), raw);
	if ((rc = kmpkg_archive_normalise_path(&path, &is_dir, raw, x->lim->max_path)) != 0)
		goto cleanup;
	if (x->seen.list->n + 1 > x->lim->max_files) {
		rc = kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_LIMIT", NULL, NEXT_UNSAFE,
				     "entry %s: more than %llu entries", x->shown,
				     (unsigned long long)x->lim->max_files);
		goto cleanup;
	}
	if (hl) {
		rc = unsafe("E_ARCHIVE_HARDLINK", x->shown, "entry %s: hardlink%s", NULL);
		goto cleanup;
	}
	switch (ft) {
	case AE_IFREG:
		type = 'f';
		break;
	case AE_IFDIR:
		type = 'd';
		break;
	case AE_IFLNK:
		type = 'l';
		break;
	case AE_IFCHR:
	case AE_IFBLK:
	case AE_IFIFO:
	case AE_IFSOCK:
	default:
		rc = unsafe("E_ARCHIVE_SPECIAL_FILE", x->shown,
			    "entry %s: device, FIFO, socket or unknown type%s", NULL);
		goto cleanup;
	}
	if (mode & (S_ISUID | S_ISGID | S_ISVTX)) {
		rc = unsafe("E_ARCHIVE_SETID", x->shown, "entry %s: setuid, setgid or sticky bit%s", NULL);
		goto cleanup;
	}
	if (is_dir && type != 'd') {
		rc = unsafe("E_ARCHIVE_UNSAFE_PATH", x->shown, "entry %s: name ends in '/' but is not a directory%s",
			    NULL);
		goto cleanup;
	}
	if (path[0] == '\0') {
		/* "./": the package root itself, which we already made. */
		if (type != 'd')
			rc = unsafe("E_ARCHIVE_UNSAFE_PATH", x->shown, "entry %s: names the package root%s", NULL);
		goto cleanup;
	}
	/* Parents must be directories (or not yet exist). */
	{
		char *slash = path;

		while ((slash = strchr(slash, '/')) != NULL) {
			*slash = '\0';
			old = seen_find(&x->seen, path);
			if (old && old->type == 'l')
				rc = unsafe("E_ARCHIVE_LINK_ESCAPE", x->shown,
					    "entry %s: path goes through a symlink of the package%s", NULL);
			else if (old && old->type != 'd')
				rc = unsafe("E_ARCHIVE_DUPLICATE", x->shown,
					    "entry %s: a parent is a file earlier in the archive%s", NULL);
			*slash++ = '/';
			if (rc)
				goto cleanup;
		}
	}
	old = seen_find(&x->seen, path);
	if (old) {
		/* Only an explicit entry for a directory we made implicitly is fine. */
		if (type == 'd' && old->type == 'd' && old->mode == 0755 && old->size == 0 &&
		    old->sha256[0] == 'i') {
			old->sha256[0] = '\0';
			goto cleanup;
		}
		rc = unsafe("E_ARCHIVE_DUPLICATE", x->shown, "entry %s: path appears twice in the archive%s",
			    NULL);
		goto cleanup;
	}
	if (type == 'l') {
		const char *t = archive_entry_symlink(e);

		if ((rc = kmpkg_archive_check_symlink(path, t)) != 0)
			goto cleanup;
		if (!(target = strdup(t))) {
			rc = kmpkg_error_errno(ENOMEM, "extract", path);
			goto cleanup;
		}
	}
	if (type == 'f' && archive_entry_size_is_set(e) && archive_entry_size(e) > 0 &&
	    (rc = over_limit(x, (uint64_t)archive_entry_size(e))) != 0)
		goto cleanup;

	if ((rc = parent_of(&parent, x, path)) != 0)
		goto cleanup;
	if ((rc = seen_add(&f, &x->seen, path, type)) != 0)
		goto cleanup;
	path = NULL;
	if (type == 'd') {
		f->mode = 0755;
		if (mkdirat(parent, leaf(f->path), 0755) != 0) {
			rc = kmpkg_error_errno(errno, "mkdir", f->path);
			goto cleanup;
		}
		fd = openat(parent, leaf(f->path), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fchmod(fd, 0755) != 0) {
			rc = kmpkg_error_errno(errno, "chmod", f->path);
			goto cleanup;
		}
	} else if (type == 'l') {
		f->mode = 0777;
		f->link_target = target;
		f->size = strlen(target);
		target = NULL;
		if (symlinkat(f->link_target, parent, leaf(f->path)) != 0) {
			rc = kmpkg_error_errno(errno, "symlink", f->path);
			goto cleanup;
		}
	} else {
		f->mode = (mode & 0111) ? 0755 : 0644;
		rc = write_file(x, f, parent, f->mode);
	}
cleanup:
	if (fd >= 0)
		close(fd);
	free(path);
	free(target);
	return rc;
}

/* The archive as libarchive reads it when its digest is checked: every byte
 * handed over is hashed, in order, once (no skip or seek callback, so
 * nothing is passed over). */
struct hashed_reader {
	int fd;
	int err; /* errno of a failed read */
	struct kmpkg_sha256 md;
	char buf[65536];
};

static la_ssize_t hashed_read(struct archive *a, void *arg, const void **out)
{
	struct hashed_reader *h = arg;
	ssize_t n;

	(void)a;
	do
		n = read(h->fd, h->buf, sizeof(h->buf));
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		h->err = errno;
		return -1;
	}
	kmpkg_sha256_update(&h->md, h->buf, (size_t)n);
	*out = h->buf;
	return n;
}

/* Opens `archive` for libarchive; through h (its md initialised) when not
 * NULL, else with libarchive's own fd reader. *fdout stays open until after
 * archive_read_free. */
static int open_archive(struct archive **out, int *fdout, uint64_t *size, const char *archive,
			struct hashed_reader *h)
{
	struct archive *a = NULL;
	struct stat st;
	int fd = -1, rc = 0;

	*out = NULL;
	*fdout = -1;
	fd = open(archive, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = errno == ENOENT
			     ? kmpkg_error_set(KMPKG_ENOTFOUND, "E_NOT_FOUND", NULL, "check the path",
					       "package %s does not exist", archive)
			     : kmpkg_error_errno(errno, "open", archive);
		goto cleanup;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_CORRUPT", NULL, "give the path of a .kmpkg file",
				     "%s is not a regular file", archive);
		goto cleanup;
	}
	*size = (uint64_t)st.st_size;
	a = archive_read_new();
	if (!a) {
		rc = kmpkg_error_errno(ENOMEM, "archive", archive);
		goto cleanup;
	}
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_zip(a);
	if (h)
		h->fd = fd;
	if ((h ? archive_read_open2(a, h, NULL, hashed_read, NULL, NULL) : archive_read_open_fd(a, fd, 65536)) !=
	    ARCHIVE_OK) {
		rc = kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_CORRUPT", NULL,
				     "download the package again; if it persists, report it to its publisher",
				     "%s: %s", archive,
				     archive_error_string(a) ? archive_error_string(a) : "unreadable archive");
		goto cleanup;
	}
	*out = a;
	a = NULL;
	*fdout = fd;
	fd = -1;
cleanup:
	if (a)
		archive_read_free(a);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* The SHA-256 of what remains of fd after libarchive's last read (a zip's
 * central directory, padding, trailing bytes) added to h->md, then compared
 * with `expect`. */
static int finish_digest(struct hashed_reader *h, const char *archive, const char *expect)
{
	char hex[65];
	const void *p;
	la_ssize_t n;

	while ((n = hashed_read(NULL, h, &p)) > 0)
		;
	if (n < 0)
		return kmpkg_error_errno(h->err, "read", archive);
	kmpkg_sha256_hex(&h->md, hex);
	if (strcmp(hex, expect) != 0)
		return kmpkg_error_set(KMPKG_EVERIFY, "E_DIGEST_MISMATCH", NULL, "retry; check the disk",
				       "%s has sha256 %s, expected %s", archive, hex, expect);
	return 0;
}

/* For a zip (local header magic "PK\3\4", or "PK\5\6" when empty): the
 * whole file hashed and checked now, *h freed and set to NULL. */
static int hash_first_if_zip(struct hashed_reader **h, const char *archive, const char *expect)
{
	unsigned char magic[4];
	int fd, rc = 0;

	fd = open(archive, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* open_archive reports it */
	if (pread(fd, magic, 4, 0) == 4 && magic[0] == 'P' && magic[1] == 'K' &&
	    ((magic[2] == 3 && magic[3] == 4) || (magic[2] == 5 && magic[3] == 6))) {
		(*h)->fd = fd;
		rc = finish_digest(*h, archive, expect);
		free(*h);
		*h = NULL;
	}
	close(fd);
	return rc;
}

int kmpkg_archive_extract(struct kmpkg_filelist **out, const char *archive, const char *dest_dir,
			  const struct kmpkg_extract_limits *limits)
{
	return kmpkg_archive_extract_sha256(out, archive, dest_dir, limits, NULL);
}

int kmpkg_archive_extract_sha256(struct kmpkg_filelist **out, const char *archive, const char *dest_dir,
				 const struct kmpkg_extract_limits *limits, const char *expect_sha256)
{
	struct hashed_reader *h = NULL;
	struct kmpkg_extract_limits deflim;
	struct extract x;
	struct archive_entry *e;
	struct kmpkg_filelist *list = NULL;
	bool made = false;
	mode_t old_umask;
	size_t i;
	int afd = -1, rc = 0, r;

	*out = NULL;
	/* Files are created with their final mode (write_file), whatever the
	 * caller's umask; restored below. */
	old_umask = umask(0);
	memset(&x, 0, sizeof(x));
	x.rootfd = -1;
	x.dirfd = -1;
	x.buf = malloc(65536);
	x.wb = kmpkg_fsutil_writeback_new();
	if (!limits) {
		kmpkg_extract_limits_default(&deflim);
		limits = &deflim;
	}
	x.lim = limits;
	list = calloc(1, sizeof(*list));
	if (!list) {
		rc = kmpkg_error_errno(ENOMEM, "extract", archive);
		goto cleanup;
	}
	x.seen.list = list;
	if (expect_sha256) {
		if (!(h = calloc(1, sizeof(*h)))) {
			rc = kmpkg_error_errno(ENOMEM, "extract", archive);
			goto cleanup;
		}
		kmpkg_sha256_init(&h->md);
		/* A zip is read with seeks (its central directory is at the
		 * end): hashed whole first, then read as before. */
		if ((rc = hash_first_if_zip(&h, archive, expect_sha256)) != 0)
			goto cleanup;
	}
	if ((rc = open_archive(&x.a, &afd, &x.archive_bytes, archive, h)) != 0)
		goto cleanup;
	if (mkdir(dest_dir, 0755) != 0) {
		rc = kmpkg_error_errno(errno, "mkdir", dest_dir);
		goto cleanup;
	}
	made = true;
	x.rootfd = open(dest_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (x.rootfd < 0 || fchmod(x.rootfd, 0755) != 0) {
		rc = kmpkg_error_errno(errno, "open", dest_dir);
		goto cleanup;
	}
	for (;;) {
		r = archive_read_next_header(x.a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			rc = corrupt(&x, "after entry");
			goto cleanup;
		}
		if ((rc = extract_entry(&x, e)) != 0)
			goto cleanup;
	}
	if (list->n == 0) {
		rc = kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_CORRUPT", NULL,
				     "download the package again; if it persists, report it to its publisher",
				     "%s: the archive holds no entries", archive);
		goto cleanup;
	}
	/* Marker 'i' (implicit directory) has served its purpose. */
	for (i = 0; i < list->n; i++)
		if (list->v[i].type == 'd')
			list->v[i].sha256[0] = '\0';
	if ((rc = kmpkg_filelist_check_links(list)) != 0)
		goto cleanup;
	if (h && (rc = finish_digest(h, archive, expect_sha256)) != 0)
		goto cleanup;
	rc = kmpkg_fsutil_writeback_finish(x.wb);
	x.wb = NULL;
	if (rc)
		goto cleanup;
	*out = list;
	list = NULL;
cleanup:
	kmpkg_fsutil_writeback_finish(x.wb);
	if (x.a)
		archive_read_free(x.a);
	if (afd >= 0)
		close(afd);
	if (x.dirfd >= 0)
		close(x.dirfd);
	kmpkg_buf_release(&x.dir);
	free(x.buf);
	umask(old_umask);
	if (rc && x.rootfd >= 0)
		remove_below(x.rootfd, 0);
	if (x.rootfd >= 0)
		close(x.rootfd);
	if (rc && made)
		rmdir(dest_dir);
	free(x.seen.slot);
	kmpkg_filelist_free(list);
	free(h);
	return rc;
}

int kmpkg_archive_read_manifest(char **out, size_t *len, const char *archive)
{
	struct archive *a = NULL;
	struct archive_entry *e;
	char *path = NULL, *data = NULL;
	uint64_t asize;
	size_t got = 0;
	bool is_dir;
	int afd = -1, rc = 0, r;

	*out = NULL;
	*len = 0;
	if ((rc = open_archive(&a, &afd, &asize, archive, NULL)) != 0)
		goto cleanup;
	for (;;) {
		r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF) {
			rc = kmpkg_error_set(KMPKG_EVERIFY, "E_MANIFEST_MISSING", NULL,
					     "a package needs kmpkg.yaml at its root; build it with 'kmpkg pack'",
					     "%s has no kmpkg.yaml at its root", archive);
			goto cleanup;
		}
		if (r < ARCHIVE_WARN) {
			rc = kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_CORRUPT", NULL,
					     "download the package again; if it persists, report it to its publisher",
					     "%s: %s", archive,
					     archive_error_string(a) ? archive_error_string(a) : "unreadable archive");
			goto cleanup;
		}
		free(path);
		path = NULL;
		/* Names that extraction would refuse cannot be the manifest. */
		if (kmpkg_archive_normalise_path(&path, &is_dir, archive_entry_pathname(e), 4096) != 0) {
			kmpkg_error_clear();
			continue;
		}
		if (strcmp(path, "kmpkg.yaml") == 0)
			break;
	}
	if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e)) {
		rc = kmpkg_error_set(KMPKG_EVERIFY, "E_MANIFEST_MISSING", NULL,
				     "kmpkg.yaml must be a regular file; build the package with 'kmpkg pack'",
				     "%s: kmpkg.yaml is not a regular file", archive);
		goto cleanup;
	}
	if (archive_entry_size_is_set(e) && archive_entry_size(e) > KMPKG_ARCHIVE_MAX_MANIFEST)
		goto too_large;
	data = malloc(KMPKG_ARCHIVE_MAX_MANIFEST + 2);
	if (!data) {
		rc = kmpkg_error_errno(ENOMEM, "read", archive);
		goto cleanup;
	}
	for (;;) {
		la_ssize_t n = archive_read_data(a, data + got, KMPKG_ARCHIVE_MAX_MANIFEST + 1 - got);

		if (n == 0)
			break;
		if (n < 0) {
			rc = kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_CORRUPT", NULL,
					     "download the package again; if it persists, report it to its publisher",
					     "%s: kmpkg.yaml: %s", archive,
					     archive_error_string(a) ? archive_error_string(a) : "unreadable");
			goto cleanup;
		}
		got += (size_t)n;
		if (got > KMPKG_ARCHIVE_MAX_MANIFEST)
			goto too_large;
	}
	data[got] = '\0';
	*out = data;
	*len = got;
	data = NULL;
	goto cleanup;
too_large:
	rc = kmpkg_error_set(KMPKG_EVERIFY, "E_MANIFEST_TOO_LARGE", "/", "keep kmpkg.yaml under 64 KiB",
			     "%s: kmpkg.yaml is larger than %d bytes", archive, KMPKG_ARCHIVE_MAX_MANIFEST);
cleanup:
	if (a)
		archive_read_free(a);
	if (afd >= 0)
		close(afd);
	free(path);
	free(data);
	return rc;
}
