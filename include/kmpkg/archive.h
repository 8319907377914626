/*
 * Package archives (SPEC §5): tar (plain, gzip, xz, zstd) or zip, read with
 * libarchive and checked entry by entry by kmpkg itself before anything is
 * written (libarchive's secure flags alone let outside symlinks, devices,
 * FIFOs, setuid bits, duplicates and bombs through).
 */
#ifndef KMPKG_ARCHIVE_H
#define KMPKG_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kmpkg_extract_limits {
	uint64_t max_total_bytes; /* sum of regular file sizes; default 512 MiB */
	uint64_t max_files;       /* entries of any kind; default 10000 */
	uint64_t max_ratio;       /* unpacked bytes / archive bytes; default 200 */
	size_t max_path;          /* bytes in a path; default 4096 (components <= 255) */
};

/* One installed file, as recorded at install time for `kmpkg verify`. */
struct kmpkg_file {
	char *path;         /* relative, normalised ("bin/tool", no "./") */
	char type;          /* 'f' regular, 'd' directory, 'l' symlink */
	unsigned mode;      /* permission bits after normalisation */
	uint64_t size;
	char sha256[65];    /* lowercase hex for 'f'; "" otherwise */
	char *link_target;  /* for 'l', else NULL */
};

struct kmpkg_filelist {
	struct kmpkg_file *v;
	size_t n;
};

void kmpkg_extract_limits_default(struct kmpkg_extract_limits *l);

/* Extracts `archive` into `dest_dir`, which must not exist yet: it is created
 * (mode 0755), entered, and written with relative names only. On any refusal
 * or error dest_dir and everything under it is removed and nothing else was
 * written. Files are not fsynced one by one: the caller batches durability
 * (syncfs) before publishing them. Errors: KMPKG_EVERIFY with E_ARCHIVE_*
 * codes for unsafe or corrupt input, KMPKG_ERESOURCE for I/O. On success
 * *out lists every entry with its sha256 (free with kmpkg_filelist_free). */
int kmpkg_archive_extract(struct kmpkg_filelist **out, const char *archive, const char *dest_dir,
			  const struct kmpkg_extract_limits *limits);

/* kmpkg_archive_extract that also hashes every byte of `archive` as
 * libarchive reads it (read in order, never skipped or sought; the rest of
 * the file after the archive's end too) and refuses, before returning, an
 * archive whose SHA-256 is not expect_sha256 (KMPKG_EVERIFY,
 * E_DIGEST_MISMATCH; dest_dir removed). What was extracted is exactly what
 * was hashed: no window between a check and the read. expect_sha256 NULL:
 * kmpkg_archive_extract. */
int kmpkg_archive_extract_sha256(struct kmpkg_filelist **out, const char *archive, const char *dest_dir,
				 const struct kmpkg_extract_limits *limits, const char *expect_sha256);

/* Reads kmpkg.yaml from the root of the archive (at most 64 KiB) without
 * extracting anything. KMPKG_EVERIFY/E_MANIFEST_MISSING when absent. */
int kmpkg_archive_read_manifest(char **out, size_t *len, const char *archive);

void kmpkg_filelist_free(struct kmpkg_filelist *l);

/* Shared with `kmpkg pack`, which refuses what extraction would refuse. */

/* Hard bounds that the limits struct cannot raise. */
#define KMPKG_ARCHIVE_MAX_COMPONENT 255
#define KMPKG_ARCHIVE_MAX_DEPTH 128
#define KMPKG_ARCHIVE_MAX_MANIFEST (64 * 1024)

/* Normalises an entry name: strips "./" and empty components, refuses
 * absolute paths, "..", backslashes, control characters, components over 255
 * bytes, more than KMPKG_ARCHIVE_MAX_DEPTH levels and paths over max_path
 * bytes. *out is "" for the archive root ("./"); *is_dir tells whether the
 * name ended in '/'. Errors: KMPKG_EVERIFY (E_ARCHIVE_UNSAFE_PATH,
 * E_ARCHIVE_LIMIT). */
int kmpkg_archive_normalise_path(char **out, bool *is_dir, const char *raw, size_t max_path);

/* Refuses (KMPKG_EVERIFY, E_ARCHIVE_LINK_ESCAPE) a symlink at `path` whose
 * target is absolute, empty, or climbs above the package root when resolved
 * lexically from the symlink's own directory. */
int kmpkg_archive_check_symlink(const char *path, const char *target);

/* Sorts l by path and refuses symlinks that escape the package root when
 * the other symlinks of the package are followed (a -> b/.. with b -> ..). */
int kmpkg_filelist_check_links(struct kmpkg_filelist *l);

#endif
