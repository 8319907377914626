/*
 * `kmpkg pack` (SPEC §5): a plugin directory into a byte-for-byte
 * reproducible .kmpkg. Format: POSIX tar (pax restricted: plain ustar
 * headers unless a name needs a pax record) compressed with zstd (level 3,
 * one frame, single-threaded; zstd frames hold no name or time). Entries sorted by path with kmpkg.yaml
 * first, mtime 0 or $SOURCE_DATE_EPOCH, uid/gid 0 "root"/"root", modes 0755
 * for directories and executables and 0644 otherwise, no xattrs, ACLs or
 * flags. Symlinks are kept when they stay inside the directory; hardlinks,
 * devices, FIFOs and sockets are refused, as extraction would refuse them.
 * The same tree gives the same bytes with the same libarchive and libzstd.
 * zstd, not gzip: extraction decompresses at memory speed (an install of
 * the 1 MiB / 100-file bench payload spent ~4 ms of CPU in zlib's inflate).
 */
#ifndef KMPKG_PACK_H
#define KMPKG_PACK_H

#include <stdint.h>

struct kmpkg_pack_result {
	char *file;        /* the path written */
	char sha256[65];   /* lowercase hex of the whole file */
	uint64_t size;     /* bytes */
	char *name;        /* from kmpkg.yaml */
	char *version;
};

/* Packs `dir` into `output`, or into "<name>-<version>.kmpkg" in the current
 * directory when output is NULL. The file is written to a temporary name in
 * the same directory, fsynced and renamed over `output`; on error nothing is
 * left behind. Errors: KMPKG_EVERIFY with E_MANIFEST_MISSING,
 * E_MANIFEST_TOO_LARGE, E_MANIFEST_SCHEMA, E_ARCHIVE_* (what extraction
 * would refuse); KMPKG_EUSAGE for a bad SOURCE_DATE_EPOCH; KMPKG_ERESOURCE
 * for I/O. Release *out with kmpkg_pack_result_release. */
int kmpkg_pack(struct kmpkg_pack_result *out, const char *dir, const char *output);

void kmpkg_pack_result_release(struct kmpkg_pack_result *r);

#endif
