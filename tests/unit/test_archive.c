/* archive: hostile packages are refused with nothing left behind; valid
 * ones extract with normalised modes, symlinks and digests. Every archive is
 * built here with libarchive's writer. */
#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "kmpkg/archive.h"
#include "kmpkg/error.h"

enum { F, D, L, H, CHR, FIFO };

struct ent {
	const char *path;
	int kind;
	unsigned mode;
	const char *data;   /* file content, symlink or hardlink target */
	size_t zeros;       /* when data is NULL: this many zero bytes */
};

static char tmp[256];
static char dest[300];
static char marker[300];
static char pkg[300];

static void setup(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/kmpkg-archive-XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(dest, sizeof(dest), "%s/dest", tmp);
	snprintf(marker, sizeof(marker), "%s/marker", tmp);
	snprintf(pkg, sizeof(pkg), "%s/pkg", tmp);
	cr_assert_eq(mkdir(marker, 0755), 0);
}

static void teardown(void)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(archive, .init = setup, .fini = teardown);

/* fmt: "tar", "zip"; filter: NULL, "gzip", "zstd", "xz". */
static void build(const char *path, const char *fmt, const char *filter, const struct ent *v, size_t n)
{
	struct archive *a = archive_write_new();
	size_t i;

	if (strcmp(fmt, "zip") == 0)
		archive_write_set_format_zip(a);
	else
		archive_write_set_format_pax_restricted(a);
	if (filter && strcmp(filter, "gzip") == 0)
		archive_write_add_filter_gzip(a);
	else if (filter && strcmp(filter, "zstd") == 0)
		archive_write_add_filter_zstd(a);
	else if (filter && strcmp(filter, "xz") == 0)
		archive_write_add_filter_xz(a);
	cr_assert_eq(archive_write_open_filename(a, path), ARCHIVE_OK, "%s", archive_error_string(a));
	for (i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		size_t len = v[i].data ? strlen(v[i].data) : v[i].zeros;

		archive_entry_set_pathname(e, v[i].path);
		archive_entry_set_mtime(e, 0, 0);
		switch (v[i].kind) {
		case F:
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_size(e, (la_int64_t)len);
			break;
		case D:
			archive_entry_set_filetype(e, AE_IFDIR);
			break;
		case L:
			archive_entry_set_filetype(e, AE_IFLNK);
			archive_entry_set_symlink(e, v[i].data);
			break;
		case H:
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_hardlink(e, v[i].data);
			archive_entry_set_size(e, 0);
			break;
		case CHR:
			archive_entry_set_filetype(e, AE_IFCHR);
			archive_entry_set_rdev(e, makedev(1, 3));
			break;
		case FIFO:
			archive_entry_set_filetype(e, AE_IFIFO);
			break;
		}
		archive_entry_set_perm(e, v[i].mode ? v[i].mode : (v[i].kind == D ? 0755 : 0644));
		cr_assert_eq(archive_write_header(a, e), ARCHIVE_OK, "%s: %s", v[i].path, archive_error_string(a));
		if (v[i].kind == F && v[i].data) {
			cr_assert_eq(archive_write_data(a, v[i].data, len), (la_ssize_t)len);
		} else if (v[i].kind == F) {
			static char zero[65536];
			size_t left = len;

			while (left) {
				size_t c = left < sizeof(zero) ? left : sizeof(zero);

				cr_assert_eq(archive_write_data(a, zero, c), (la_ssize_t)c);
				left -= c;
			}
		}
		archive_entry_free(e);
	}
	cr_assert_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void assert_clean(void)
{
	struct stat st;

	cr_assert_eq(lstat(dest, &st), -1, "dest_dir left behind");
	cr_assert_eq(errno, ENOENT);
	cr_assert_eq(count_entries(marker), 0, "something was written outside dest_dir");
	/* tmp holds only pkg and marker */
	cr_assert_eq(count_entries(tmp), 2);
}

static void refuse_lim(const struct ent *v, size_t n, const char *filter, const struct kmpkg_extract_limits *l,
		       const char *code, const char *needle)
{
	struct kmpkg_filelist *fl = NULL;
	int rc;

	build(pkg, "tar", filter, v, n);
	rc = kmpkg_archive_extract(&fl, pkg, dest, l);
	cr_assert_eq(rc, KMPKG_EVERIFY, "rc %d: %s", rc, kmpkg_error_last()->message);
	cr_assert_str_eq(kmpkg_error_last()->code, code, "%s", kmpkg_error_last()->message);
	cr_assert_neq(kmpkg_error_last()->next_step[0], '\0');
	if (needle)
		cr_assert(strstr(kmpkg_error_last()->message, needle) != NULL, "%s", kmpkg_error_last()->message);
	cr_assert_null(fl);
	assert_clean();
}

static void refuse(const struct ent *v, size_t n, const char *code, const char *needle)
{
	refuse_lim(v, n, NULL, NULL, code, needle);
}

#define N(v) (sizeof(v) / sizeof(v[0]))

Test(archive, refuses_absolute_path)
{
	struct ent v[] = { { "kmpkg.yaml", F, 0, "x", 0 }, { "/tmp/evil", F, 0, "x", 0 } };

	refuse(v, N(v), "E_ARCHIVE_UNSAFE_PATH", "/tmp/evil");
}

Test(archive, refuses_dotdot)
{
	struct ent v[] = { { "a/file", F, 0, "x", 0 }, { "a/../../marker/evil", F, 0, "x", 0 } };

	refuse(v, N(v), "E_ARCHIVE_UNSAFE_PATH", "../marker/evil");
}

Test(archive, refuses_symlink_outside)
{
	struct ent v[] = { { "link", L, 0, "../marker", 0 } };

	refuse(v, N(v), "E_ARCHIVE_LINK_ESCAPE", "link");
}

Test(archive, refuses_absolute_symlink)
{
	struct ent v[] = { { "etc", L, 0, "/etc", 0 } };

	refuse(v, N(v), "E_ARCHIVE_LINK_ESCAPE", "etc");
}

Test(archive, refuses_nested_symlink_climbing_out)
{
	struct ent v[] = { { "a/b/up", L, 0, "../../..", 0 } };

	refuse(v, N(v), "E_ARCHIVE_LINK_ESCAPE", "a/b/up");
}

Test(archive, refuses_symlink_chain_escape)
{
	/* each lexically inside; followed together they reach the parent */
	struct ent v[] = { { "sub/up", L, 0, "..", 0 }, { "x", L, 0, "sub/up/../marker", 0 } };

	refuse(v, N(v), "E_ARCHIVE_LINK_ESCAPE", "x");
}

Test(archive, refuses_writing_through_symlink)
{
	struct ent v[] = { { "sub", D, 0, NULL, 0 }, { "l", L, 0, "sub", 0 }, { "l/f", F, 0, "x", 0 } };

	refuse(v, N(v), "E_ARCHIVE_LINK_ESCAPE", "l/f");
}

Test(archive, refuses_hardlink)
{
	struct ent v[] = { { "a", F, 0, "x", 0 }, { "b", H, 0, "a", 0 } };

	refuse(v, N(v), "E_ARCHIVE_HARDLINK", "b");
}

Test(archive, refuses_device)
{
	struct ent v[] = { { "null", CHR, 0, NULL, 0 } };

	refuse(v, N(v), "E_ARCHIVE_SPECIAL_FILE", "null");
}

Test(archive, refuses_fifo)
{
	struct ent v[] = { { "pipe", FIFO, 0, NULL, 0 } };

	refuse(v, N(v), "E_ARCHIVE_SPECIAL_FILE", "pipe");
}

Test(archive, refuses_setuid)
{
	struct ent v[] = { { "bin/tool", F, 04755, "x", 0 } };

	refuse(v, N(v), "E_ARCHIVE_SETID", "bin/tool");
}

Test(archive, refuses_setgid_dir)
{
	struct ent v[] = { { "d/", D, 02755, NULL, 0 } };

	refuse(v, N(v), "E_ARCHIVE_SETID", "d/");
}

Test(archive, refuses_sticky)
{
	struct ent v[] = { { "t", F, 01644, "x", 0 } };

	refuse(v, N(v), "E_ARCHIVE_SETID", "t");
}

Test(archive, refuses_duplicate)
{
	struct ent v[] = { { "a", F, 0, "x", 0 }, { "a", F, 0, "y", 0 } };

	refuse(v, N(v), "E_ARCHIVE_DUPLICATE", "a");
}

Test(archive, refuses_duplicate_dot_slash)
{
	struct ent v[] = { { "a", F, 0, "x", 0 }, { "./a", F, 0, "y", 0 } };

	refuse(v, N(v), "E_ARCHIVE_DUPLICATE", "./a");
}

Test(archive, refuses_dir_then_file)
{
	struct ent v[] = { { "a/", D, 0, NULL, 0 }, { "a", F, 0, "y", 0 } };

	refuse(v, N(v), "E_ARCHIVE_DUPLICATE", "a");
}

Test(archive, refuses_file_then_child)
{
	struct ent v[] = { { "a", F, 0, "y", 0 }, { "a/b", F, 0, "y", 0 } };

	refuse(v, N(v), "E_ARCHIVE_DUPLICATE", "a/b");
}

Test(archive, refuses_implicit_dir_then_file)
{
	struct ent v[] = { { "a/b", F, 0, "y", 0 }, { "a", F, 0, "y", 0 } };

	refuse(v, N(v), "E_ARCHIVE_DUPLICATE", "a");
}

Test(archive, refuses_control_characters)
{
	struct ent v[] = { { "evil\nname", F, 0, "y", 0 } };

	refuse(v, N(v), "E_ARCHIVE_UNSAFE_PATH", "evil\\x0aname");
}

Test(archive, refuses_long_component)
{
	char name[300];
	struct ent v[] = { { name, F, 0, "y", 0 } };

	memset(name, 'a', 256);
	name[256] = '\0';
	refuse(v, N(v), "E_ARCHIVE_LIMIT", NULL);
}

Test(archive, refuses_long_path)
{
	char name[4200];
	struct ent v[] = { { name, F, 0, "y", 0 } };
	size_t i;

	for (i = 0; i + 1 < sizeof(name); i++)
		name[i] = (i % 100 == 99) ? '/' : 'a';
	name[sizeof(name) - 1] = '\0';
	refuse(v, N(v), "E_ARCHIVE_LIMIT", NULL);
}

Test(archive, refuses_total_size)
{
	struct kmpkg_extract_limits l;
	struct ent v[] = { { "a", F, 0, NULL, 600 }, { "b", F, 0, NULL, 600 } };

	kmpkg_extract_limits_default(&l);
	l.max_total_bytes = 1000;
	refuse_lim(v, N(v), NULL, &l, "E_ARCHIVE_LIMIT", "b");
}

Test(archive, refuses_file_count)
{
	struct kmpkg_extract_limits l;
	struct ent v[] = { { "a", F, 0, "1", 0 }, { "b", F, 0, "2", 0 }, { "c", F, 0, "3", 0 } };

	kmpkg_extract_limits_default(&l);
	l.max_files = 2;
	refuse_lim(v, N(v), NULL, &l, "E_ARCHIVE_LIMIT", "c");
}

Test(archive, refuses_compression_bomb)
{
	struct ent v[] = { { "kmpkg.yaml", F, 0, "name: x\n", 0 }, { "zeros", F, 0, NULL, 8u << 20 } };

	refuse_lim(v, N(v), "gzip", NULL, "E_ARCHIVE_LIMIT", "ratio");
}

Test(archive, refuses_truncated)
{
	struct kmpkg_filelist *fl = NULL;
	struct ent v[] = { { "kmpkg.yaml", F, 0, "name: x\n", 0 }, { "big", F, 0, NULL, 200000 } };
	struct stat st;

	build(pkg, "tar", NULL, v, N(v));
	cr_assert_eq(stat(pkg, &st), 0);
	cr_assert_eq(truncate(pkg, st.st_size / 2), 0);
	cr_assert_eq(kmpkg_archive_extract(&fl, pkg, dest, NULL), KMPKG_EVERIFY);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_ARCHIVE_CORRUPT");
	assert_clean();
}

Test(archive, refuses_truncated_gzip)
{
	struct kmpkg_filelist *fl = NULL;
	struct ent v[] = { { "kmpkg.yaml", F, 0, "name: x\n", 0 }, { "big", F, 0, "0123456789abcdef", 0 } };
	struct stat st;

	build(pkg, "tar", "gzip", v, N(v));
	cr_assert_eq(stat(pkg, &st), 0);
	cr_assert_eq(truncate(pkg, st.st_size - 12), 0);
	cr_assert_eq(kmpkg_archive_extract(&fl, pkg, dest, NULL), KMPKG_EVERIFY);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_ARCHIVE_CORRUPT");
	assert_clean();
}

Test(archive, refuses_garbage)
{
	struct kmpkg_filelist *fl = NULL;
	FILE *f = fopen(pkg, "w");
	int i;

	for (i = 0; i < 3000; i++)
		fputc((i * 7919) & 0xff, f);
	fclose(f);
	cr_assert_eq(kmpkg_archive_extract(&fl, pkg, dest, NULL), KMPKG_EVERIFY);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_ARCHIVE_CORRUPT");
	assert_clean();
}

Test(archive, refuses_existing_dest)
{
	struct kmpkg_filelist *fl = NULL;
	struct ent v[] = { { "kmpkg.yaml", F, 0, "x", 0 } };
	struct stat st;

	build(pkg, "tar", NULL, v, N(v));
	cr_assert_eq(mkdir(dest, 0700), 0);
	cr_assert_neq(kmpkg_archive_extract(&fl, pkg, dest, NULL), 0);
	cr_assert_eq(stat(dest, &st), 0, "a dest_dir we did not create must stay");
}

static const struct kmpkg_file *find(const struct kmpkg_filelist *l, const char *path)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i].path, path) == 0)
			return &l->v[i];
	return NULL;
}

static unsigned mode_of(const char *rel)
{
	char p[600];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dest, rel);
	cr_assert_eq(lstat(p, &st), 0, "%s missing", p);
	return st.st_mode & 07777;
}

static void extract_valid(const char *fmt, const char *filter)
{
	struct ent v[] = {
		{ "./kmpkg.yaml", F, 0600, "name: foo\nversion: 1.0.0\n", 0 },
		{ "bin/", D, 0700, NULL, 0 },
		{ "bin/tool", F, 0700, "#!/bin/sh\necho hi\n", 0 },
		{ "share/doc/readme", F, 0640, "hello\n", 0 },
		{ "share/doc/", D, 0700, NULL, 0 },
		{ "current", L, 0, "bin/tool", 0 },
		{ "share/doc/up", L, 0, "../../kmpkg.yaml", 0 },
	};
	struct kmpkg_filelist *fl = NULL;
	const struct kmpkg_file *f;
	char buf[600], p[600];
	ssize_t n;
	int rc;

	build(pkg, fmt, filter, v, N(v));
	rc = kmpkg_archive_extract(&fl, pkg, dest, NULL);
	cr_assert_eq(rc, 0, "%s", kmpkg_error_last()->message);
	cr_assert_not_null(fl);
	cr_assert_eq(fl->n, 8, "%zu entries", fl->n); /* 7 + implicit share/ */
	cr_assert_eq(mode_of("."), 0755);
	cr_assert_eq(mode_of("bin"), 0755);
	cr_assert_eq(mode_of("share"), 0755);
	cr_assert_eq(mode_of("bin/tool"), 0755);
	cr_assert_eq(mode_of("kmpkg.yaml"), 0644);
	cr_assert_eq(mode_of("share/doc/readme"), 0644);
	f = find(fl, "kmpkg.yaml");
	cr_assert_not_null(f);
	cr_assert_eq(f->type, 'f');
	cr_assert_str_eq(f->sha256, "860d70378a756851f28b4aae027442642df1a95d00314e4aaca2fe36a511a57e");
	f = find(fl, "bin/tool");
	cr_assert_str_eq(f->sha256, "299001868fb8c02fd431c336c6d058f5558c5dff5b5af5e6fe04b870a6a9cbba");
	cr_assert_eq(f->mode, 0755);
	cr_assert_eq(f->size, 18);
	f = find(fl, "share/doc/readme");
	cr_assert_str_eq(f->sha256, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
	f = find(fl, "share/doc");
	cr_assert_eq(f->type, 'd');
	cr_assert_str_eq(f->sha256, "");
	f = find(fl, "share");
	cr_assert_not_null(f);
	cr_assert_eq(f->type, 'd');
	f = find(fl, "current");
	cr_assert_eq(f->type, 'l');
	cr_assert_str_eq(f->link_target, "bin/tool");
	snprintf(p, sizeof(p), "%s/current", dest);
	n = readlink(p, buf, sizeof(buf) - 1);
	cr_assert_eq(n, 8);
	buf[n] = '\0';
	cr_assert_str_eq(buf, "bin/tool");
	snprintf(p, sizeof(p), "%s/share/doc/up", dest);
	cr_assert_eq(access(p, R_OK), 0);
	cr_assert_eq(count_entries(marker), 0);
	kmpkg_filelist_free(fl);
}

Test(archive, extracts_tar)
{
	extract_valid("tar", NULL);
}

Test(archive, extracts_tar_gz)
{
	extract_valid("tar", "gzip");
}

Test(archive, extracts_tar_zst)
{
	extract_valid("tar", "zstd");
}

Test(archive, extracts_tar_xz)
{
	extract_valid("tar", "xz");
}

Test(archive, extracts_zip)
{
	extract_valid("zip", NULL);
}

Test(archive, root_entry_and_explicit_dir_after_implicit_are_fine)
{
	struct ent v[] = { { "./", D, 0, NULL, 0 }, { "a/b", F, 0, "x", 0 }, { "a/", D, 0, NULL, 0 } };
	struct kmpkg_filelist *fl = NULL;

	build(pkg, "tar", NULL, v, N(v));
	cr_assert_eq(kmpkg_archive_extract(&fl, pkg, dest, NULL), 0, "%s", kmpkg_error_last()->message);
	cr_assert_eq(fl->n, 2);
	kmpkg_filelist_free(fl);
}

Test(archive, reads_manifest)
{
	struct ent v[] = { { "bin/x", F, 0, "x", 0 }, { "./kmpkg.yaml", F, 0, "name: foo\n", 0 } };
	char *m = NULL;
	size_t len = 0;

	build(pkg, "tar", "gzip", v, N(v));
	cr_assert_eq(kmpkg_archive_read_manifest(&m, &len, pkg), 0, "%s", kmpkg_error_last()->message);
	cr_assert_eq(len, 10);
	cr_assert_str_eq(m, "name: foo\n");
	free(m);
	cr_assert_eq(count_entries(tmp), 2, "reading the manifest extracts nothing");
}

Test(archive, manifest_missing)
{
	struct ent v[] = { { "sub/kmpkg.yaml", F, 0, "name: foo\n", 0 } };
	char *m = NULL;
	size_t len = 0;

	build(pkg, "tar", NULL, v, N(v));
	cr_assert_eq(kmpkg_archive_read_manifest(&m, &len, pkg), KMPKG_EVERIFY);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_MANIFEST_MISSING");
	cr_assert_null(m);
}

Test(archive, manifest_too_large)
{
	struct ent v[] = { { "kmpkg.yaml", F, 0, NULL, 65537 } };
	char *m = NULL;
	size_t len = 0;

	build(pkg, "zip", NULL, v, N(v));
	cr_assert_eq(kmpkg_archive_read_manifest(&m, &len, pkg), KMPKG_EVERIFY);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_MANIFEST_TOO_LARGE");
	cr_assert_null(m);
}

Test(archive, normalise_path)
{
	char *p = NULL;
	bool dir = false;

	cr_assert_eq(kmpkg_archive_normalise_path(&p, &dir, ".//a/./b/", 4096), 0);
	cr_assert_str_eq(p, "a/b");
	cr_assert(dir);
	free(p);
	cr_assert_eq(kmpkg_archive_normalise_path(&p, &dir, "a\\..\\b", 4096), KMPKG_EVERIFY);
	cr_assert_eq(kmpkg_archive_check_symlink("a/b/c", "../../x"), 0);
	cr_assert_eq(kmpkg_archive_check_symlink("a/b/c", "../../../x"), KMPKG_EVERIFY);
	cr_assert_eq(kmpkg_archive_check_symlink("c", "./x/../y"), 0);
}

/* The file's SHA-256 (sha256sum), for kmpkg_archive_extract_sha256. */
static void file_sha256(char out[65], const char *path)
{
	char cmd[400];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "sha256sum '%s'", path);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_eq(fscanf(p, "%64s", out), 1);
	pclose(p);
}

/* Hashed as it is read: the right digest extracts (tar, also with bytes
 * after the archive's end that libarchive never asks for; zip, read with
 * seeks, hashed whole first); any other digest leaves nothing. */
static void digest_checked(const char *fmt, const char *filter, bool trailing)
{
	struct ent v[] = {
		{ "./kmpkg.yaml", F, 0644, "name: foo\nversion: 1.0.0\n", 0 },
		{ "bin/tool", F, 0755, "#!/bin/sh\necho hi\n", 0 },
	};
	struct kmpkg_filelist *fl = NULL;
	char sha[65], wrong[65];
	char cmd[400];

	build(pkg, fmt, filter, v, N(v));
	if (trailing) {
		snprintf(cmd, sizeof(cmd), "head -c 70000 /dev/urandom >> '%s'", pkg);
		cr_assert_eq(system(cmd), 0);
	}
	file_sha256(sha, pkg);
	memcpy(wrong, sha, sizeof(wrong));
	wrong[0] = wrong[0] == '0' ? '1' : '0';
	cr_assert_eq(kmpkg_archive_extract_sha256(&fl, pkg, dest, NULL, wrong), KMPKG_EVERIFY);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_DIGEST_MISMATCH");
	cr_assert(strstr(kmpkg_error_last()->message, sha), "%s", kmpkg_error_last()->message);
	cr_assert_null(fl);
	assert_clean();
	cr_assert_eq(kmpkg_archive_extract_sha256(&fl, pkg, dest, NULL, sha), 0, "%s", kmpkg_error_last()->message);
	cr_assert_eq(fl->n, 3);
	kmpkg_filelist_free(fl);
}

Test(archive, digest_checked_while_reading_tar_with_trailing_bytes)
{
	digest_checked("tar", NULL, true);
}

Test(archive, digest_checked_while_reading_tar_zstd)
{
	digest_checked("tar", "zstd", false);
}

Test(archive, digest_checked_while_reading_tar_gzip)
{
	digest_checked("tar", "gzip", false);
}

Test(archive, digest_checked_for_zip)
{
	digest_checked("zip", NULL, false);
}
