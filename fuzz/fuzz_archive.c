/*
 * libFuzzer target: package archives. The entry checks
 * (kmpkg_archive_normalise_path, kmpkg_archive_check_symlink) run on the
 * input's text; then the input, written as a file, is extracted with
 * kmpkg_archive_extract into box/dest, where box is a private directory
 * under $TMPDIR, and read with kmpkg_archive_read_manifest.
 *
 * An input that starts with "#entries\n" is a list of entries instead, one
 * per line: a type letter (f file, x executable, d directory, l symlink,
 * h hardlink, s setuid file, p FIFO), the path, and after a tab the
 * symlink or hardlink target or the file's content. It is written as a pax
 * tar with libarchive, which lets the fuzzer work on names and link graphs
 * directly rather than through tar headers and compression.
 *
 * Invariants checked after every extraction: box holds dest and nothing
 * else on success, nothing at all on failure (dest removed, nothing written
 * beside it); on success what is on disk below dest is exactly the returned
 * file list (same paths, same types, no symlink pointing outside dest once
 * resolved by the kernel).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "kmpkg/archive.h"
#include "kmpkg/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *base, *input, *box, *dest, *dest_real;

static void cleanup_base(void)
{
	char *cmd = NULL;

	if (base && asprintf(&cmd, "rm -rf '%s'", base) >= 0 && system(cmd) != 0)
		fprintf(stderr, "fuzz_archive: could not remove %s\n", base);
	free(cmd);
}

static void setup(void)
{
	const char *tmp = getenv("TMPDIR");

	if (asprintf(&base, "%s/fuzz-archive-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0 || !mkdtemp(base))
		abort();
	atexit(cleanup_base);
	if (asprintf(&input, "%s/input.kmpkg", base) < 0 || asprintf(&box, "%s/box", base) < 0 ||
	    asprintf(&dest, "%s/box/dest", base) < 0 || mkdir(box, 0700) != 0)
		abort();
}

/* Names in dir other than "." and ".."; aborts if dir cannot be read. */
static size_t list_dir(const char *dir, const char *only)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (!d)
		abort();
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!only || strcmp(de->d_name, only) != 0) {
			fprintf(stderr, "fuzz_archive: unexpected %s/%s\n", dir, de->d_name);
			abort();
		}
		n++;
	}
	closedir(d);
	return n;
}

/* Counts everything below dir (never following symlinks). */
static size_t count_tree(int dirfd)
{
	DIR *d;
	struct dirent *de;
	size_t n = 0;
	int fd = dup(dirfd);

	if (fd < 0 || !(d = fdopendir(fd)))
		abort();
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n++;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			abort();
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub < 0)
				abort();
			n += count_tree(sub);
			close(sub);
		}
	}
	closedir(d);
	return n;
}

static void remove_below(int dirfd)
{
	DIR *d;
	struct dirent *de;
	int fd = dup(dirfd);

	if (fd < 0 || !(d = fdopendir(fd)))
		abort();
	while ((de = readdir(d)) != NULL) {
		int sub;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || unlinkat(dirfd, de->d_name, 0) == 0)
			continue;
		sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			abort();
		remove_below(sub);
		close(sub);
		if (unlinkat(dirfd, de->d_name, AT_REMOVEDIR) != 0)
			abort();
	}
	closedir(d);
}

static void remove_tree(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		abort();
	remove_below(fd);
	close(fd);
	if (rmdir(dir) != 0)
		abort();
}

static void check_on_disk(const struct kmpkg_filelist *l)
{
	char *p = NULL, real[PATH_MAX];
	size_t i, dl = strlen(dest_real);
	int fd;

	for (i = 0; i < l->n; i++) {
		const struct kmpkg_file *f = &l->v[i];
		struct stat st;

		if (asprintf(&p, "%s/%s", dest, f->path) < 0)
			abort();
		if (lstat(p, &st) != 0)
			abort(); /* listed but not on disk */
		if ((f->type == 'f' && !S_ISREG(st.st_mode)) || (f->type == 'd' && !S_ISDIR(st.st_mode)) ||
		    (f->type == 'l' && !S_ISLNK(st.st_mode)))
			abort();
		if ((st.st_mode & 07000) != 0)
			abort(); /* set-id or sticky bit */
		/* A symlink, resolved by the kernel, must stay inside dest. */
		if (f->type == 'l' && realpath(p, real) &&
		    (strncmp(real, dest_real, dl) != 0 || (real[dl] != '\0' && real[dl] != '/'))) {
			fprintf(stderr, "fuzz_archive: %s -> %s resolves to %s\n", f->path, f->link_target, real);
			abort();
		}
		free(p);
		p = NULL;
	}
	fd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		abort();
	if (count_tree(fd) != l->n) {
		fprintf(stderr, "fuzz_archive: %zu entries listed, %zu on disk\n", l->n, count_tree(fd));
		abort();
	}
	close(fd);
}

static void check_entry_names(const uint8_t *data, size_t size)
{
	char *t = malloc(size + 1), *nl, *out = NULL;
	bool is_dir;

	if (!t)
		abort();
	memcpy(t, data, size);
	t[size] = '\0';
	if (kmpkg_archive_normalise_path(&out, &is_dir, t, 4096) == 0) {
		/* A normalised name is a fixed point, and never climbs. */
		char *again = NULL;
		bool d2;

		if (kmpkg_archive_normalise_path(&again, &d2, out, 4096) != 0 || strcmp(again, out) != 0)
			abort();
		if (out[0] == '/' || !strcmp(out, "..") || !strncmp(out, "../", 3) || strstr(out, "/../") ||
		    strstr(out, "//"))
			abort();
		free(again);
	}
	free(out);
	kmpkg_error_clear();
	/* "path\ntarget" as a symlink entry. */
	nl = strchr(t, '\n');
	if (nl) {
		*nl = '\0';
		kmpkg_archive_check_symlink(t, nl + 1);
	} else {
		kmpkg_archive_check_symlink("a/b", t);
	}
	kmpkg_error_clear();
	free(t);
}

static const char ENTRIES[] = "#entries\n";

/* Writes the entry list in text (modified) as a pax tar to path. */
static void write_entries(const char *path, char *text)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	char *line, *next;

	if (!a || !e || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_open_filename(a, path) != ARCHIVE_OK)
		abort();
	for (line = text; line && *line; line = next) {
		char *tab;
		const char *arg = "";

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		tab = strchr(line, '\t');
		if (tab) {
			*tab = '\0';
			arg = tab + 1;
		}
		if (!line[0] || !line[1])
			continue;
		archive_entry_clear(e);
		archive_entry_copy_pathname(e, line + 1);
		archive_entry_set_mtime(e, 0, 0);
		switch (line[0]) {
		case 'd':
			archive_entry_set_filetype(e, AE_IFDIR);
			archive_entry_set_perm(e, 0755);
			break;
		case 'l':
			archive_entry_set_filetype(e, AE_IFLNK);
			archive_entry_set_perm(e, 0777);
			archive_entry_copy_symlink(e, arg);
			break;
		case 'h':
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_perm(e, 0644);
			archive_entry_copy_hardlink(e, arg);
			break;
		case 'p':
			archive_entry_set_filetype(e, AE_IFIFO);
			archive_entry_set_perm(e, 0644);
			break;
		default:
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_perm(e, line[0] == 's' ? 04755 : line[0] == 'x' ? 0755 : 0644);
			archive_entry_set_size(e, (la_int64_t)strlen(arg));
		}
		if (archive_write_header(a, e) < ARCHIVE_WARN)
			continue; /* libarchive refused to write it: skip the entry */
		if (archive_entry_filetype(e) == AE_IFREG && !archive_entry_hardlink(e) && *arg)
			archive_write_data(a, arg, strlen(arg));
	}
	archive_entry_free(e);
	if (archive_write_close(a) != ARCHIVE_OK)
		abort();
	archive_write_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kmpkg_extract_limits lim;
	struct kmpkg_filelist *l = NULL;
	char *manifest = NULL;
	size_t mlen = 0;
	FILE *f;
	int rc;

	if (!base)
		setup();
	check_entry_names(data, size);

	if (size >= sizeof(ENTRIES) - 1 && memcmp(data, ENTRIES, sizeof(ENTRIES) - 1) == 0) {
		char *text = malloc(size + 1);

		if (!text)
			abort();
		memcpy(text, data, size);
		text[size] = '\0';
		write_entries(input, text + sizeof(ENTRIES) - 1);
		free(text);
	} else {
		f = fopen(input, "wb");
		if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
			abort();
	}
	kmpkg_extract_limits_default(&lim);
	lim.max_total_bytes = 8u << 20; /* keep each run fast; the caps are what is tested */
	lim.max_files = 2000;
	rc = kmpkg_archive_extract(&l, input, dest, &lim);
	if (getenv("KMPKG_FUZZ_VERBOSE")) /* triage: what extraction said */
		fprintf(stderr, "extract: %d %s %s (%zu entries)\n", rc, rc ? kmpkg_error_last()->code : "",
			rc ? kmpkg_error_last()->message : "", l ? l->n : 0);
	kmpkg_error_clear();
	if (rc == 0) {
		if (!l || list_dir(box, "dest") != 1)
			abort();
		if (!dest_real && !(dest_real = realpath(dest, NULL)))
			abort();
		check_on_disk(l);
		if (kmpkg_filelist_check_links(l) != 0)
			abort(); /* extraction accepted links its own check refuses */
		kmpkg_filelist_free(l);
		remove_tree(dest);
	} else {
		if (l)
			abort();
		if (list_dir(box, NULL) != 0)
			abort(); /* a refusal left something behind */
	}

	rc = kmpkg_archive_read_manifest(&manifest, &mlen, input);
	if (rc == 0 && (!manifest || mlen > KMPKG_ARCHIVE_MAX_MANIFEST || strlen(manifest) > mlen))
		abort();
	free(manifest);
	kmpkg_error_clear();
	return 0;
}
