/* hostile: the acceptance corpus end to end. Every package here is
 * built outside kmpkg (libarchive's writer, the minisign and openssl CLIs),
 * installed with the sanitized `kmpkg install` over a root that already has
 * a good foo 1.0.0, and must be refused with exit 4 or 2 while the previous
 * generation stays exactly as it was, staging is empty, and nothing appears
 * where the package aimed outside the root. */
#include <archive.h>
#include <archive_entry.h>
#include <sys/sysmacros.h>

#include "kmfix.h"

enum { F, D, L, H, CHR, BLK, FIFO };

struct ent {
	const char *path;
	int kind;
	unsigned mode;
	const char *data; /* content, symlink or hardlink target */
	size_t zeros;     /* when data is NULL: this many zero bytes */
};

static char *W, *R, *OUT, *SENT;
static char abs_sentinel[128];

static void setup(void)
{
	/* tmpfs when there is one: the file-count bomb creates 10000 files, which
	 * costs seconds on a disk and is not what is tested. */
	W = strdup("/dev/shm/kmpkg-hostile-XXXXXX");
	if (!mkdtemp(W)) {
		free(W);
		W = fx_tmpdir();
	}
	R = fx_path(W, "root");
	OUT = fx_path(W, "outside");
	SENT = fx_path(W, "pwned");
	cr_assert_eq(mkdir(OUT, 0755), 0);
	snprintf(abs_sentinel, sizeof(abs_sentinel), "/tmp/kmpkg-hostile-%d-pwned", (int)getpid());
	(void)fx_pkg; /* kmfix.h's builder: these packages are built here instead */
}

static void teardown(void)
{
	fx_rmrf(W);
	unlink(abs_sentinel);
	free(W);
	free(R);
	free(OUT);
	free(SENT);
}

TestSuite(hostile, .init = setup, .fini = teardown, .timeout = 60);

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void add(struct archive *a, const struct ent *v)
{
	struct archive_entry *e = archive_entry_new();
	size_t len = v->data ? strlen(v->data) : v->zeros;

	archive_entry_set_pathname(e, v->path);
	archive_entry_set_mtime(e, 0, 0);
	switch (v->kind) {
	case F:
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_size(e, (la_int64_t)len);
		break;
	case D:
		archive_entry_set_filetype(e, AE_IFDIR);
		break;
	case L:
		archive_entry_set_filetype(e, AE_IFLNK);
		archive_entry_set_symlink(e, v->data);
		break;
	case H:
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_hardlink(e, v->data);
		archive_entry_set_size(e, 0);
		break;
	case CHR:
	case BLK:
		archive_entry_set_filetype(e, v->kind == CHR ? AE_IFCHR : AE_IFBLK);
		archive_entry_set_rdev(e, makedev(1, 3));
		break;
	case FIFO:
		archive_entry_set_filetype(e, AE_IFIFO);
		break;
	}
	archive_entry_set_perm(e, v->mode ? v->mode : (v->kind == D ? 0755 : 0644));
	cr_assert_eq(archive_write_header(a, e), ARCHIVE_OK, "%s: %s", v->path, archive_error_string(a));
	if (v->kind == F && v->data) {
		cr_assert_eq(archive_write_data(a, v->data, len), (la_ssize_t)len);
	} else if (v->kind == F) {
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

/* <W>/<file>: a package foo <version> (kmpkg.yaml, bin/, bin/tool as a
 * passing health check) followed by the entries v. fmt "tar" or "zip",
 * filter NULL or "gzip". manifest NULL: the standard one. */
static char *build(const char *file, const char *version, const char *fmt, const char *filter, const char *manifest,
		   const struct ent *v, size_t n)
{
	char *path = fx_path(W, file), yaml[512];
	struct archive *a = archive_write_new();
	size_t i;

	snprintf(yaml, sizeof(yaml),
		 "apiVersion: kmpkg/v1\nname: foo\nversion: %s\ndescription: d\nhealth_check:\n  command: [bin/tool]\n",
		 version);
	if (strcmp(fmt, "zip") == 0)
		archive_write_set_format_zip(a);
	else
		archive_write_set_format_pax_restricted(a);
	if (filter)
		archive_write_add_filter_gzip(a);
	cr_assert_eq(archive_write_open_filename(a, path), ARCHIVE_OK, "%s", archive_error_string(a));
	{
		struct ent base[] = {
			{ "kmpkg.yaml", F, 0644, manifest ? manifest : yaml, 0 },
			{ "bin", D, 0755, NULL, 0 },
			{ "bin/tool", F, 0755, "#!/bin/sh\nexit 0\n", 0 },
		};

		for (i = 0; i < sizeof(base) / sizeof(base[0]); i++)
			add(a, &base[i]);
	}
	for (i = 0; i < n; i++)
		add(a, &v[i]);
	cr_assert_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	return path;
}

static char *good_pkg(void)
{
	return build("foo-1.0.0.kmpkg", "1.0.0", "tar", "gzip", NULL, NULL, 0);
}

static void install_good(const char *pkg)
{
	fx_ok(0, R, NULL, "install", pkg, NULL);
}

/* The root is as install_good left it. */
static void assert_untouched(void)
{
	char *link = fx_readlink(R, "plugins"), *store = fx_path(R, "kmpkg/store"), *tmp = fx_path(R, "kmpkg/tmp");
	json_t *rec = fx_get(R, KMPKG_DB_INSTALLED, "foo");
	struct stat st;

	cr_assert_str_eq(link, "kmpkg/generations/1");
	cr_assert_eq(fx_meta(R, "active"), 1);
	cr_assert_eq(fx_meta(R, "known_good"), 1);
	cr_assert_not_null(rec);
	cr_assert_str_eq(json_string_value(json_object_get(rec, "version")), "1.0.0");
	cr_assert_eq(fx_count(store), 1, "a store entry was added");
	cr_assert_eq(fx_count(tmp), 0, "staging left behind");
	cr_assert_eq(fx_count(OUT), 0, "something was written outside the root");
	cr_assert_neq(lstat(SENT, &st), 0, "traversal reached %s", SENT);
	cr_assert_neq(lstat(abs_sentinel, &st), 0, "absolute path reached %s", abs_sentinel);
	fx_check_invariants(R);
	/* The files of the previous generation are byte for byte what was installed. */
	fx_ok(0, R, NULL, "verify", NULL);
	json_decref(rec);
	free(link);
	free(store);
	free(tmp);
}

/* kmpkg --json install [extra] pkg: refused with exit 4 or 2 and `code`
 * (a prefix when it ends in '_'). */
static void refused(const char *pkg, const char *code, const char *extra)
{
	struct kres r = extra ? fx_run(R, NULL, "--json", "install", extra, pkg, NULL)
			      : fx_run(R, NULL, "--json", "install", pkg, NULL);
	json_error_t je;
	json_t *doc = json_loads(r.out, 0, &je);
	const char *got;

	cr_assert(r.status == 4 || r.status == 2, "%s: exit %d, out %s err %s", pkg, r.status, r.out, r.err);
	cr_assert_not_null(doc, "not JSON: %s", r.out);
	got = json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
	cr_assert_not_null(got, "%s", r.out);
	if (code[strlen(code) - 1] == '_')
		cr_assert(strncmp(got, code, strlen(code)) == 0, "%s: code %s, want %s*", pkg, got, code);
	else
		cr_assert_str_eq(got, code, "%s: %s", pkg, r.out);
	json_decref(doc);
	fx_free(&r);
	assert_untouched();
}

/* Builds foo 1.1.0 with the hostile entries v (fmt "tar" gzipped, or
 * "zip") and expects it refused; the root must already hold the good one. */
static void refuse_entries(const struct ent *v, size_t n, const char *fmt, const char *code)
{
	char *bad = build("foo-1.1.0.kmpkg", "1.1.0", fmt, strcmp(fmt, "zip") ? "gzip" : NULL, NULL, v, n);

	refused(bad, code, NULL);
	free(bad);
}

/* Installs the good package, then refuses the hostile entries. */
static void hostile(const struct ent *v, size_t n, const char *code)
{
	char *good = good_pkg();

	install_good(good);
	refuse_entries(v, n, "tar", code);
	free(good);
}

#define N(v) (sizeof(v) / sizeof(v[0]))
#define REFUSE(code, ...)                                                                \
	do {                                                                             \
		struct ent v_[] = { __VA_ARGS__ };                                      \
		refuse_entries(v_, N(v_), "tar", code);                                   \
	} while (0)

/* "../" enough times to climb from any staging directory to "/". */
static char *climb(const char *to)
{
	char *s = malloc(64 * 3 + strlen(to) + 1);

	s[0] = '\0';
	for (int i = 0; i < 64; i++)
		strcat(s, "../");
	strcat(s, to[0] == '/' ? to + 1 : to);
	return s;
}

Test(hostile, path_traversal)
{
	char *good = good_pkg(), *t = climb(SENT);

	install_good(good);
	REFUSE("E_ARCHIVE_UNSAFE_PATH", { t, F, 0644, "pwned\n", 0 });
	REFUSE("E_ARCHIVE_UNSAFE_PATH", { "bin/../../pwned", F, 0644, "pwned\n", 0 });
	REFUSE("E_ARCHIVE_UNSAFE_PATH", { abs_sentinel, F, 0644, "pwned\n", 0 });
	{
		struct ent v[] = { { t, F, 0644, "pwned\n", 0 } };

		refuse_entries(v, N(v), "zip", "E_ARCHIVE_UNSAFE_PATH");
	}
	free(good);
	free(t);
}

Test(hostile, link_escapes)
{
	char *good = good_pkg(), *t = climb(OUT);

	install_good(good);
	/* A relative link out of the package, then a file written through it. */
	REFUSE("E_ARCHIVE_LINK_ESCAPE", { "lib", L, 0777, t, 0 }, { "lib/x", F, 0644, "pwned\n", 0 });
	REFUSE("E_ARCHIVE_LINK_ESCAPE", { "lib", L, 0777, OUT, 0 }, { "lib/x", F, 0644, "pwned\n", 0 });
	/* Each link stays inside lexically; followed together they climb out. */
	REFUSE("E_ARCHIVE_LINK_ESCAPE", { "a", D, 0755, NULL, 0 }, { "a/up", L, 0777, "..", 0 },
	       { "a/b", D, 0755, NULL, 0 }, { "a/b/esc", L, 0777, "../up/..", 0 });
	/* Even a link to inside the package must not be written through. */
	REFUSE("E_ARCHIVE_LINK_ESCAPE", { "lib", L, 0777, "bin", 0 }, { "lib/tool", F, 0755, "#!/bin/sh\n", 0 });
	free(good);
	free(t);
}

Test(hostile, hardlinks)
{
	char *good = good_pkg(), *t = climb("etc/passwd");

	install_good(good);
	REFUSE("E_ARCHIVE_HARDLINK", { "bin/passwd", H, 0644, "/etc/passwd", 0 });
	REFUSE("E_ARCHIVE_HARDLINK", { "bin/passwd", H, 0644, t, 0 });
	REFUSE("E_ARCHIVE_HARDLINK", { "bin/tool2", H, 0755, "bin/tool", 0 });
	free(good);
	free(t);
}

Test(hostile, devices_and_fifos)
{
	char *good = good_pkg();

	install_good(good);
	REFUSE("E_ARCHIVE_SPECIAL_FILE", { "bin/null", CHR, 0666, NULL, 0 });
	REFUSE("E_ARCHIVE_SPECIAL_FILE", { "bin/disk", BLK, 0660, NULL, 0 });
	REFUSE("E_ARCHIVE_SPECIAL_FILE", { "bin/pipe", FIFO, 0644, NULL, 0 });
	free(good);
}

Test(hostile, setid_bits)
{
	char *good = good_pkg();

	install_good(good);
	REFUSE("E_ARCHIVE_SETID", { "bin/root-shell", F, 04755, "#!/bin/sh\n", 0 });
	REFUSE("E_ARCHIVE_SETID", { "lib", D, 02755, NULL, 0 });
	REFUSE("E_ARCHIVE_SETID", { "lib", D, 01777, NULL, 0 });
	free(good);
}

Test(hostile, duplicates)
{
	char *good = good_pkg();

	install_good(good);
	/* A second bin/tool that would replace the checked one. */
	REFUSE("E_ARCHIVE_DUPLICATE", { "bin/tool", F, 0755, "#!/bin/sh\nexit 0 # evil\n", 0 });
	/* The manifest read first says foo 1.1.0; a second one says otherwise. */
	REFUSE("E_ARCHIVE_DUPLICATE",
	       { "./kmpkg.yaml", F, 0644, "apiVersion: kmpkg/v1\nname: bar\nversion: 6.6.6\ndescription: d\n", 0 });
	REFUSE("E_ARCHIVE_", { "bin/tool/", D, 0755, NULL, 0 });
	free(good);
}

Test(hostile, bad_names)
{
	char *good = good_pkg(), name[300];

	memset(name, 'a', 280);
	name[280] = '\0';
	install_good(good);
	REFUSE("E_ARCHIVE_UNSAFE_PATH", { "bin/\x1b[2Jevil", F, 0644, "x", 0 });
	REFUSE("E_ARCHIVE_", { name, F, 0644, "x", 0 });
	free(good);
}

Test(hostile, compression_bomb)
{
	/* 48 MiB of zeros gzip to ~50 KiB: a ratio far above 200. */
	struct ent v[] = { { "lib-zeros", F, 0644, NULL, (size_t)48 << 20 } };

	hostile(v, N(v), "E_ARCHIVE_LIMIT");
}

Test(hostile, file_count_bomb)
{
	enum { COUNT = 10050 };
	struct ent *v = calloc(COUNT, sizeof(*v));
	char(*names)[32] = calloc(COUNT, sizeof(*names));
	size_t i;

	for (i = 0; i < COUNT; i++) {
		snprintf(names[i], sizeof(names[i]), "many/%zu", i);
		v[i].path = names[i];
		v[i].kind = F;
		v[i].data = "";
	}
	hostile(v, COUNT, "E_ARCHIVE_LIMIT");
	free(v);
	free(names);
}

Test(hostile, truncated)
{
	char *good = good_pkg(), *bad;
	static char blob[200001];
	struct ent v[] = { { "lib-data", F, 0644, blob, 0 } };
	struct stat st;

	for (size_t i = 0; i < sizeof(blob) - 1; i++)
		blob[i] = (char)('a' + (i * 7919) % 26);
	install_good(good);
	/* Cut in the middle of a file's data (plain tar). */
	bad = build("foo-1.1.0.kmpkg", "1.1.0", "tar", NULL, NULL, v, N(v));
	cr_assert_eq(truncate(bad, 100000), 0);
	refused(bad, "E_ARCHIVE_CORRUPT", NULL);
	free(bad);
	/* The gzip trailer (CRC, length) cut off. */
	bad = build("foo-1.1.0.kmpkg", "1.1.0", "tar", "gzip", NULL, NULL, 0);
	cr_assert_eq(stat(bad, &st), 0);
	cr_assert_eq(truncate(bad, st.st_size - 12), 0);
	refused(bad, "E_ARCHIVE_CORRUPT", NULL);
	free(good);
	free(bad);
}

/* Hostile manifests. */

/* Once per test: the good package installed first. */
static void hostile_manifest(const char *yaml, const char *code)
{
	char *bad;
	struct stat st;
	char *active = fx_path(R, "plugins");

	if (lstat(active, &st) != 0) {
		char *good = good_pkg();

		install_good(good);
		free(good);
	}
	free(active);
	bad = build("foo-1.1.0.kmpkg", "1.1.0", "tar", "gzip", yaml, NULL, 0);
	refused(bad, code, NULL);
	free(bad);
}

Test(hostile, manifests)
{
	static const char head[] = "apiVersion: kmpkg/v1\nname: foo\nversion: 1.1.0\ndescription: ";
	size_t n = 70 * 1024;
	char *big = malloc(sizeof(head) + n + 2);

	/* Health checks that would run a program outside the package. */
	hostile_manifest("apiVersion: kmpkg/v1\nname: foo\nversion: 1.1.0\ndescription: d\n"
			 "health_check:\n  command: [/bin/sh, -c, \"touch /tmp/x\"]\n",
			 "E_MANIFEST_INVALID");
	hostile_manifest("apiVersion: kmpkg/v1\nname: foo\nversion: 1.1.0\ndescription: d\n"
			 "health_check:\n  command: [../../../../bin/sh]\n",
			 "E_MANIFEST_INVALID");
	/* A name that would be a path in the store. */
	hostile_manifest("apiVersion: kmpkg/v1\nname: ../../evil\nversion: 1.1.0\ndescription: d\n",
			 "E_MANIFEST_INVALID");
	/* A billion-laughs style alias expansion. */
	hostile_manifest("apiVersion: kmpkg/v1\nname: foo\nversion: 1.1.0\n"
			 "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
			 "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
			 "E_MANIFEST_INVALID");
	/* Over the 64 KiB manifest cap. */
	memcpy(big, head, sizeof(head) - 1);
	memset(big + sizeof(head) - 1, 'x', n);
	strcpy(big + sizeof(head) - 1 + n, "\n");
	hostile_manifest(big, "E_MANIFEST_TOO_LARGE");
	free(big);
}

Test(hostile, manifest_is_a_symlink)
{
	char *good = good_pkg(), *bad, *path = fx_path(W, "foo-1.1.0.kmpkg");
	struct archive *a = archive_write_new();
	struct ent v[] = { { "kmpkg.yaml", L, 0777, "/etc/passwd", 0 },
			   { "bin", D, 0755, NULL, 0 },
			   { "bin/tool", F, 0755, "#!/bin/sh\nexit 0\n", 0 } };
	size_t i;

	install_good(good);
	archive_write_set_format_pax_restricted(a);
	archive_write_add_filter_gzip(a);
	cr_assert_eq(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (i = 0; i < N(v); i++)
		add(a, &v[i]);
	cr_assert_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	bad = path;
	refused(bad, "E_MANIFEST_MISSING", NULL);
	free(good);
	free(bad);
}

/* Signatures made with the real minisign and openssl CLIs. */

static void minisign_keys(const char *name)
{
	cr_assert_eq(sh("cd '%s' && minisign -G -p %s.pub -s %s.sec -W </dev/null >/dev/null 2>&1", W, name, name), 0);
}

static void minisign_sign(const char *key, const char *pkg, const char *comment)
{
	cr_assert_eq(sh("cd '%s' && minisign -S -s %s.sec -m '%s' -t '%s' </dev/null >/dev/null 2>&1", W, key, pkg,
			comment),
		     0);
}

static char *sha256_of(const char *path)
{
	char cmd[700], *out = calloc(1, 65);
	FILE *p;

	snprintf(cmd, sizeof(cmd), "sha256sum '%s'", path);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_eq(fread(out, 1, 64, p), 64);
	pclose(p);
	return out;
}

/* Trusts key "k", installs a signed foo 1.0.0 and builds foo 1.1.0 (unsigned);
 * returns its path. */
static char *signed_setup(void)
{
	char *good = good_pkg(), *sha = sha256_of(good), comment[256], *pub = fx_path(W, "k.pub");

	minisign_keys("k");
	fx_ok(0, R, NULL, "key", "add", pub, NULL);
	snprintf(comment, sizeof(comment), "name=foo version=1.0.0 sha256=%s", sha);
	minisign_sign("k", good, comment);
	fx_ok(0, R, NULL, "install", good, NULL);
	{
		json_t *rec = fx_get(R, KMPKG_DB_INSTALLED, "foo");

		cr_assert(json_is_true(json_object_get(json_object_get(rec, "signature"), "verified")));
		json_decref(rec);
	}
	free(good);
	free(sha);
	free(pub);
	return build("foo-1.1.0.kmpkg", "1.1.0", "tar", "gzip", NULL, NULL, 0);
}

Test(hostile, minisign_for_another_name_version_or_digest)
{
	char *bad = signed_setup(), comment[200];

	minisign_sign("k", bad, "name=bar version=1.1.0");
	refused(bad, "E_SIGNATURE_MISMATCH", NULL);
	minisign_sign("k", bad, "name=foo version=1.0.0");
	refused(bad, "E_SIGNATURE_MISMATCH", NULL);
	snprintf(comment, sizeof(comment), "name=foo version=1.1.0 sha256=%064d", 0);
	minisign_sign("k", bad, comment);
	refused(bad, "E_SIGNATURE_MISMATCH", NULL);
	/* Tokens match whole values, not prefixes or extensions. */
	minisign_sign("k", bad, "name=fo version=1.1.0");
	refused(bad, "E_SIGNATURE_MISMATCH", NULL);
	minisign_sign("k", bad, "name=foo2 version=1.1.0");
	refused(bad, "E_SIGNATURE_MISMATCH", NULL);
	minisign_sign("k", bad, "name=foo version=1.1");
	refused(bad, "E_SIGNATURE_MISMATCH", NULL);
	minisign_sign("k", bad, "name=foo version=1.1.0-rc.1");
	refused(bad, "E_SIGNATURE_MISMATCH", NULL);
	free(bad);
}

Test(hostile, minisign_forged_key_id)
{
	char *bad = signed_setup();

	/* Signed by an untrusted key whose signature claims the trusted key's id. */
	minisign_keys("other");
	minisign_sign("other", bad, "name=foo version=1.1.0");
	cr_assert_eq(sh("cd '%s' && python3 -c '\n"
			"import base64,sys\n"
			"pub=base64.b64decode(open(\"k.pub\").read().splitlines()[1])\n"
			"l=open(sys.argv[1]).read().splitlines()\n"
			"sig=bytearray(base64.b64decode(l[1])); sig[2:10]=pub[2:10]\n"
			"l[1]=base64.b64encode(bytes(sig)).decode()\n"
			"open(sys.argv[1],\"w\").write(\"\\n\".join(l)+\"\\n\")' '%s.minisig'",
			W, bad),
		     0);
	refused(bad, "E_SIGNATURE_INVALID", NULL);
	free(bad);
}

Test(hostile, minisign_tampered_trusted_comment)
{
	char *bad = signed_setup();

	/* Signed for 1.0.0, comment edited to claim 1.1.0: the global signature breaks. */
	minisign_sign("k", bad, "name=foo version=1.0.0");
	cr_assert_eq(sh("sed -i 's/^trusted comment: name=foo version=1.0.0$/trusted comment: name=foo version=1.1.0/' "
			"'%s.minisig' && grep -q 'version=1.1.0' '%s.minisig'",
			bad, bad),
		     0);
	refused(bad, "E_SIGNATURE_INVALID", NULL);
	free(bad);
}

Test(hostile, minisign_wrong_key)
{
	char *bad = signed_setup();

	minisign_keys("other");
	minisign_sign("other", bad, "name=foo version=1.1.0");
	refused(bad, "E_SIGNATURE_UNKNOWN_KEY", NULL);
	free(bad);
}

Test(hostile, minisign_package_changed_after_signing)
{
	char *bad = signed_setup(), *evil;
	struct ent v[] = { { "bin/extra", F, 0755, "#!/bin/sh\n", 0 } };

	minisign_sign("k", bad, "name=foo version=1.1.0");
	/* Another package of the same name put in place of the signed one. */
	evil = build("evil.kmpkg", "1.1.0", "tar", "gzip", NULL, v, N(v));
	cr_assert_eq(rename(evil, bad), 0);
	refused(bad, "E_SIGNATURE_INVALID", NULL);
	free(bad);
	free(evil);
}

Test(hostile, minisign_signature_of_another_package_beside_it)
{
	char *bad = signed_setup(), *old = fx_path(W, "foo-1.0.0.kmpkg.minisig"), *sig;

	sig = malloc(strlen(bad) + 10);
	sprintf(sig, "%s.minisig", bad);
	cr_assert_eq(sh("cp '%s' '%s'", old, sig), 0);
	refused(bad, "E_SIGNATURE_INVALID", NULL);
	/* --signature naming it explicitly changes nothing. */
	cr_assert_eq(unlink(sig), 0);
	{
		char opt[700];

		snprintf(opt, sizeof(opt), "--signature=%s", old);
		refused(bad, "E_SIGNATURE_INVALID", opt);
	}
	free(bad);
	free(old);
	free(sig);
}

Test(hostile, minisign_garbage_and_missing)
{
	char *bad = signed_setup(), *sig = malloc(strlen(bad) + 10);

	refused(bad, "E_SIGNATURE_MISSING", NULL);
	sprintf(sig, "%s.minisig", bad);
	/* Not minisign's format: read as an OpenSSL signature, by no trusted PEM key. */
	cr_assert_eq(sh("head -c 300 /dev/urandom | base64 > '%s'", sig), 0);
	refused(bad, "E_SIGNATURE_", NULL);
	/* --allow-unsigned never waives a bad signature. */
	refused(bad, "E_SIGNATURE_", "--allow-unsigned");
	/* It waives a missing one, and says so. */
	cr_assert_eq(unlink(sig), 0);
	{
		struct kres r = fx_run(R, NULL, "install", "--allow-unsigned", bad, NULL);
		json_t *rec;

		cr_assert_eq(r.status, 0, "%s", r.err);
		cr_assert(strstr(r.err, "warning: --allow-unsigned"), "%s", r.err);
		rec = fx_get(R, KMPKG_DB_INSTALLED, "foo");
		cr_assert_str_eq(json_string_value(json_object_get(json_object_get(rec, "signature"), "status")),
				 "unsigned, allowed");
		json_decref(rec);
		fx_free(&r);
	}
	free(bad);
	free(sig);
}

Test(hostile, openssl_wrong_key_and_other_file)
{
	char *good = good_pkg(), *bad;

	cr_assert_eq(sh("cd '%s' && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null && "
			"openssl pkey -in rsa.pem -pubout -out rsa.pub.pem && "
			"openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem 2>/dev/null && "
			"openssl dgst -sha256 -sign rsa.pem -out '%s.sig' '%s'",
			W, good, good),
		     0);
	{
		char *pub = fx_path(W, "rsa.pub.pem");

		fx_ok(0, R, NULL, "key", "add", pub, NULL);
		free(pub);
	}
	install_good(good);
	bad = build("foo-1.1.0.kmpkg", "1.1.0", "tar", "gzip", NULL, NULL, 0);
	/* Signed by an untrusted EC key. */
	cr_assert_eq(sh("cd '%s' && openssl dgst -sha256 -sign ec.pem -out '%s.sig' '%s'", W, bad, bad), 0);
	refused(bad, "E_SIGNATURE_", NULL);
	/* The trusted key's signature of the 1.0.0 file. */
	cr_assert_eq(sh("cp '%s.sig' '%s.sig'", good, bad), 0);
	refused(bad, "E_SIGNATURE_INVALID", NULL);
	/* A truncated signature by the trusted key. */
	cr_assert_eq(sh("cd '%s' && openssl dgst -sha256 -sign rsa.pem -out '%s.sig' '%s' && truncate -s 100 '%s.sig'", W,
			bad, bad, bad),
		     0);
	refused(bad, "E_SIGNATURE_INVALID", NULL);
	free(good);
	free(bad);
}
