/* pack: the same tree gives the same bytes whatever its mtimes, modes and
 * owners; the output extracts with the hardened extractor; what extraction
 * would refuse is refused here already. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kmpkg/archive.h"
#include "kmpkg/error.h"
#include "kmpkg/pack.h"

static char tmp[256];

/* Runs a shell command with every "%s" replaced by the test's temp dir. */
static void run(const char *tmpl)
{
	char cmd[2048];
	size_t o = 0;

	for (; *tmpl && o + sizeof(tmp) < sizeof(cmd); tmpl++) {
		if (tmpl[0] == '%' && tmpl[1] == 's') {
			o += (size_t)snprintf(cmd + o, sizeof(cmd) - o, "%s", tmp);
			tmpl++;
		} else {
			cmd[o++] = *tmpl;
		}
	}
	cmd[o] = '\0';
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void put(const char *rel, const char *text, mode_t mode)
{
	char p[600];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", tmp, rel);
	f = fopen(p, "w");
	cr_assert_not_null(f, "%s", p);
	fputs(text, f);
	fclose(f);
	cr_assert_eq(chmod(p, mode), 0);
}

static void setup(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/kmpkg-pack-XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
	run("mkdir -p %s/tree/bin %s/tree/empty %s/tree/share/doc %s/out");
	put("tree/kmpkg.yaml", "apiVersion: kmpkg/v1\nname: foo\nversion: 1.2.3 # comment\n", 0644);
	put("tree/bin/tool", "#!/bin/sh\necho hi\n", 0755);
	put("tree/share/doc/readme", "hello\n", 0600);
	run("ln -s bin/tool %s/tree/current");
	run("ln -s ../../kmpkg.yaml %s/tree/share/doc/manifest");
}

static void teardown(void)
{
	run("rm -rf %s");
}

TestSuite(pack, .init = setup, .fini = teardown);

static void pack_ok(struct kmpkg_pack_result *r, const char *dir, const char *out)
{
	char d[600], o[600];
	int rc;

	snprintf(d, sizeof(d), "%s/%s", tmp, dir);
	snprintf(o, sizeof(o), "%s/%s", tmp, out);
	rc = kmpkg_pack(r, d, o);
	cr_assert_eq(rc, 0, "%s: %s", kmpkg_error_last()->code, kmpkg_error_last()->message);
	cr_assert_str_eq(r->file, o);
	cr_assert_eq(strlen(r->sha256), 64);
}

static int count(const char *rel)
{
	char p[600];
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(p, sizeof(p), "%s/%s", tmp, rel);
	d = opendir(p);
	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

Test(pack, same_tree_same_bytes_whatever_the_metadata)
{
	struct kmpkg_pack_result a = { 0 }, b = { 0 }, c = { 0 };
	struct timespec ts[2] = { { 1234567890, 5 }, { 1500000000, 7 } };
	char p[600];

	pack_ok(&a, "tree", "out/a.kmpkg");
	pack_ok(&b, "tree", "out/b.kmpkg");
	cr_assert_str_eq(a.sha256, b.sha256);
	cr_assert_eq(a.size, b.size);
	cr_assert_str_eq(a.name, "foo");
	cr_assert_str_eq(a.version, "1.2.3");

	/* a copy with other mtimes, permissions and owner */
	run("cp -a %s/tree %s/copy");
	run("chmod 0700 %s/copy/bin/tool %s/copy/bin %s/copy/empty && chmod 0640 %s/copy/kmpkg.yaml");
	run("chmod 0666 %s/copy/share/doc/readme");
	snprintf(p, sizeof(p), "%s/copy/bin/tool", tmp);
	cr_assert_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
	snprintf(p, sizeof(p), "%s/copy/share", tmp);
	cr_assert_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
	snprintf(p, sizeof(p), "%s/copy/current", tmp);
	cr_assert_eq(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
	if (geteuid() == 0)
		run("chown -hR 1234:4321 %s/copy");
	pack_ok(&c, "copy", "out/c.kmpkg");
	cr_assert_str_eq(a.sha256, c.sha256);
	kmpkg_pack_result_release(&a);
	kmpkg_pack_result_release(&b);
	kmpkg_pack_result_release(&c);
}

Test(pack, content_change_changes_bytes)
{
	struct kmpkg_pack_result a = { 0 }, b = { 0 };

	pack_ok(&a, "tree", "out/a.kmpkg");
	put("tree/share/doc/readme", "hellO\n", 0600);
	pack_ok(&b, "tree", "out/b.kmpkg");
	cr_assert_str_neq(a.sha256, b.sha256);
	kmpkg_pack_result_release(&a);
	kmpkg_pack_result_release(&b);
}

Test(pack, source_date_epoch_sets_mtime)
{
	struct kmpkg_pack_result a = { 0 }, b = { 0 }, c = { 0 };

	pack_ok(&a, "tree", "out/a.kmpkg");
	setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
	pack_ok(&b, "tree", "out/b.kmpkg");
	pack_ok(&c, "tree", "out/c.kmpkg");
	cr_assert_str_neq(a.sha256, b.sha256);
	cr_assert_str_eq(b.sha256, c.sha256);
	run("tar --zstd -tvf %s/out/b.kmpkg | grep -q 2023-11-1");
	kmpkg_pack_result_release(&a);
	setenv("SOURCE_DATE_EPOCH", "yesterday", 1);
	cr_assert_eq(kmpkg_pack(&a, "/nonexistent", NULL), KMPKG_EUSAGE);
	unsetenv("SOURCE_DATE_EPOCH");
	kmpkg_pack_result_release(&b);
	kmpkg_pack_result_release(&c);
}

Test(pack, output_extracts_with_normalised_entries)
{
	struct kmpkg_pack_result a = { 0 };
	struct kmpkg_filelist *fl = NULL;
	char pkg[600], dest[600], *m = NULL;
	size_t len = 0, i;
	unsigned char hdr[4];
	FILE *f;

	pack_ok(&a, "tree", "out/a.kmpkg");
	snprintf(pkg, sizeof(pkg), "%s/out/a.kmpkg", tmp);
	snprintf(dest, sizeof(dest), "%s/x", tmp);
	/* one zstd frame (its magic number first) */
	f = fopen(pkg, "rb");
	cr_assert_eq(fread(hdr, 1, 4, f), 4);
	fclose(f);
	cr_assert_eq(hdr[0], 0x28);
	cr_assert_eq(hdr[1], 0xb5);
	cr_assert_eq(hdr[2], 0x2f);
	cr_assert_eq(hdr[3], 0xfd);

	cr_assert_eq(kmpkg_archive_extract(&fl, pkg, dest, NULL), 0, "%s", kmpkg_error_last()->message);
	cr_assert_eq(fl->n, 9, "%zu", fl->n);
	for (i = 0; i < fl->n; i++) {
		if (strcmp(fl->v[i].path, "bin/tool") == 0)
			cr_assert_eq(fl->v[i].mode, 0755);
		if (strcmp(fl->v[i].path, "share/doc/readme") == 0) {
			cr_assert_eq(fl->v[i].mode, 0644);
			cr_assert_str_eq(fl->v[i].sha256,
					 "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
		}
		if (strcmp(fl->v[i].path, "current") == 0)
			cr_assert_str_eq(fl->v[i].link_target, "bin/tool");
	}
	kmpkg_filelist_free(fl);
	/* kmpkg.yaml comes first and is found by the manifest reader */
	run("tar --zstd -tf %s/out/a.kmpkg | head -n 1 | grep -qx kmpkg.yaml");
	cr_assert_eq(kmpkg_archive_read_manifest(&m, &len, pkg), 0);
	cr_assert(strstr(m, "name: foo") != NULL);
	free(m);
	run("tar --zstd -tvf %s/out/a.kmpkg | grep -v ' root/root ' | wc -l | grep -qx 0");
	kmpkg_pack_result_release(&a);
}

static void pack_refused(const char *code)
{
	struct kmpkg_pack_result r = { 0 };
	char d[600], o[600];

	snprintf(d, sizeof(d), "%s/tree", tmp);
	snprintf(o, sizeof(o), "%s/out/r.kmpkg", tmp);
	cr_assert_eq(kmpkg_pack(&r, d, o), KMPKG_EVERIFY, "%s", kmpkg_error_last()->message);
	cr_assert_str_eq(kmpkg_error_last()->code, code, "%s", kmpkg_error_last()->message);
	cr_assert_null(r.file);
	cr_assert_eq(count("out"), 0, "no output or temp file left");
}

Test(pack, refuses_fifo)
{
	run("mkfifo %s/tree/bin/pipe");
	pack_refused("E_ARCHIVE_SPECIAL_FILE");
}

Test(pack, refuses_hardlink)
{
	run("ln %s/tree/bin/tool %s/tree/bin/tool2");
	pack_refused("E_ARCHIVE_HARDLINK");
}

Test(pack, refuses_symlink_outside)
{
	run("ln -s ../../out %s/tree/bin/escape");
	pack_refused("E_ARCHIVE_LINK_ESCAPE");
}

Test(pack, refuses_absolute_symlink)
{
	run("ln -s /etc/passwd %s/tree/passwd");
	pack_refused("E_ARCHIVE_LINK_ESCAPE");
}

Test(pack, refuses_missing_manifest)
{
	run("rm %s/tree/kmpkg.yaml");
	pack_refused("E_MANIFEST_MISSING");
}

Test(pack, refuses_manifest_without_version)
{
	put("tree/kmpkg.yaml", "apiVersion: kmpkg/v1\nname: foo\n", 0644);
	pack_refused("E_MANIFEST_SCHEMA");
	cr_assert_str_eq(kmpkg_error_last()->field, "/version");
}

Test(pack, refuses_bad_name)
{
	put("tree/kmpkg.yaml", "apiVersion: kmpkg/v1\nname: ../Foo\nversion: 1.0.0\n", 0644);
	pack_refused("E_MANIFEST_SCHEMA");
	cr_assert_str_eq(kmpkg_error_last()->field, "/name");
}

Test(pack, refuses_large_manifest)
{
	run("head -c 70000 /dev/zero | tr '\\0' '#' >> %s/tree/kmpkg.yaml");
	pack_refused("E_MANIFEST_TOO_LARGE");
}

Test(pack, cli_default_name_text_and_json)
{
	const char *bin = getenv("KMPKG_BIN");
	char cmd[1024], line[512];
	FILE *p;

	cr_assert_not_null(bin);
	snprintf(cmd, sizeof(cmd), "cd %s/out && %s pack ../tree 2>&1", tmp, bin);
	p = popen(cmd, "r");
	cr_assert_not_null(fgets(line, sizeof(line), p));
	cr_assert_eq(pclose(p), 0);
	cr_assert(strncmp(line, "foo-1.2.3.kmpkg sha256 ", 23) == 0, "%s", line);
	cr_assert(strstr(line, " size ") != NULL);
	snprintf(cmd, sizeof(cmd), "%s --json pack %s/tree -o %s/out/j.kmpkg", bin, tmp, tmp);
	p = popen(cmd, "r");
	cr_assert_not_null(fgets(line, sizeof(line), p));
	cr_assert_eq(pclose(p), 0);
	cr_assert(strstr(line, "\"sha256\":\"") != NULL, "%s", line);
	cr_assert(strstr(line, "\"file\":\"") != NULL, "%s", line);
	cr_assert(strstr(line, "\"size\":") != NULL, "%s", line);
	snprintf(cmd, sizeof(cmd), "%s pack %s/nope 2>/dev/null", bin, tmp);
	cr_assert_eq(WEXITSTATUS(system(cmd)), 9);
	snprintf(cmd, sizeof(cmd), "%s pack 2>/dev/null", bin);
	cr_assert_eq(WEXITSTATUS(system(cmd)), 2);
	run("rm %s/tree/kmpkg.yaml");
	snprintf(cmd, sizeof(cmd), "%s pack %s/tree -o %s/out/z.kmpkg 2>/dev/null", bin, tmp, tmp);
	cr_assert_eq(WEXITSTATUS(system(cmd)), 4);
}
