/*
 * Verification of installed plugins against what was recorded at install
 * time (`kmpkg verify`, like `rpm -V`). Every installed plugin has an
 * immutable store entry <root>/kmpkg/store/<entry> and, in the `installed`
 * database, one record per extracted file: {path, type ('f','d','l'), mode,
 * size, sha256, link}. Verification re-reads the entry without following
 * any symlink (openat with O_NOFOLLOW, fstatat AT_SYMLINK_NOFOLLOW), hashes
 * regular files in 64 KiB chunks (memory does not grow with file size) and
 * compares.
 *
 * Findings:
 *   modified  the path exists but differs; "what" lists, in this order, any of
 *             "type" (file/directory/symlink changed; nothing else is
 *             compared then), "mode", "size", "sha256", "link" (symlink
 *             target), "unreadable" (content could not be read)
 *   missing   a recorded path is absent (or a parent is no longer a
 *             directory)
 *   extra     a path in the entry that was never recorded; an extra
 *             directory is reported once, its contents are not listed
 */
#ifndef KMPKG_VERIFY_H
#define KMPKG_VERIFY_H

#include <jansson.h>

/* Checks the store entry of one installed record (as read from the
 * `installed` database; borrowed). *out = {name, version, entry, ok,
 * modified: [{path, what: [...]}], missing: [path...], extra: [path...]},
 * paths relative to the plugin's root, modified and missing in record
 * order, extra sorted. Findings are not errors: the return value is 0 with
 * ok false. Errors: KMPKG_EVERIFY/E_VERIFY_BAD_RECORD for a record without
 * a usable entry name or file list (or with unsafe paths), KMPKG_ERESOURCE
 * for I/O other than "absent". */
int kmpkg_verify_plugin(json_t **out, const char *root, const json_t *rec);

/* Number of findings in a report made by kmpkg_verify_plugin. */
size_t kmpkg_verify_count(const json_t *report);

#endif
