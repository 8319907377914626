/* source: fetching, trust checks and index walking over fixture repositories
 * made by scripts/make-fixture-source and changed with the git CLI. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "kmpkg/archive.h"
#include "kmpkg/buf.h"
#include "kmpkg/diag.h"
#include "kmpkg/error.h"
#include "kmpkg/manifest.h"
#include "kmpkg/source.h"

static char dir[64];   /* temp dir: <dir>/repo (fixture), <dir>/root (kmpkg root) */
static char repo[128];
static char root[128];
static char url[160];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/kmpkg-source-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(repo, sizeof(repo), "%s/repo", dir);
	snprintf(root, sizeof(root), "%s/root", dir);
	snprintf(url, sizeof(url), "file://%s", repo);
	cr_assert_eq(mkdir(root, 0755), 0);
	/* git CLI calls in the tests: no user config, a fixed identity */
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
	setenv("GIT_AUTHOR_NAME", "t", 1);
	setenv("GIT_AUTHOR_EMAIL", "t@kmpkg.invalid", 1);
	setenv("GIT_COMMITTER_NAME", "t", 1);
	setenv("GIT_COMMITTER_EMAIL", "t@kmpkg.invalid", 1);
}

static void teardown(void)
{
	if (dir[0])
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(source, .init = setup, .fini = teardown, .timeout = 20);

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void make_fixture(const char *args)
{
	const char *srcdir = getenv("KMPKG_SRCDIR");

	cr_assert_not_null(srcdir, "KMPKG_SRCDIR is not set");
	cr_assert_eq(sh("'%s/scripts/make-fixture-source' '%s' %s >/dev/null", srcdir, repo, args), 0);
}

/* `git -C repo rev-parse REV` */
static void rev_parse(char out[41], const char *rev)
{
	char cmd[512];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "git -C '%s' rev-parse '%s'", repo, rev);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_not_null(fgets(out, 41, p));
	pclose(p);
	cr_assert_eq(strlen(out), 40);
}

static void write_file(const char *rel, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", repo, rel);
	f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

static void commit_all(const char *msg)
{
	cr_assert_eq(sh("git -C '%s' add -A && git -C '%s' commit -q -m '%s'", repo, repo, msg), 0);
}

static const char *code(void)
{
	return kmpkg_error_last()->code;
}

static struct kmpkg_source *open_src(void)
{
	struct kmpkg_source *src = NULL;

	cr_assert_eq(kmpkg_source_open(&src, root, "demo", true), 0, "%s", kmpkg_error_last()->message);
	return src;
}

/* update with default options; returns the status */
static int update(struct kmpkg_source_update_result *res, struct kmpkg_source *src, const char *u,
		  const char *trusted)
{
	struct kmpkg_source_fetch_opts o = { 0 };

	return kmpkg_source_update(res, src, u, &o, trusted);
}

Test(source, first_fetch_over_file_url)
{
	struct kmpkg_source *src;
	struct kmpkg_source_update_result res;
	struct kmpkg_source_index idx;
	struct kmpkg_buf b = KMPKG_BUF_INIT;
	char head[41], trusted[41], path[PATH_MAX];
	struct stat st;
	static const char *const paths[] = { "plugins/hello/1.0.0.yaml", "plugins/hello/2.0.0.yaml",
					     "plugins/hello/3.0.0.yaml", "plugins/json-helpers/1.1.0.yaml" };

	make_fixture("");
	rev_parse(head, "HEAD");
	src = open_src();
	cr_assert_eq(update(&res, src, url, NULL), 0, "%s", kmpkg_error_last()->message);
	cr_assert_str_eq(res.commit, head);
	cr_assert(res.changed);
	cr_assert_str_eq(res.meta.api_version, "kmpkg/v1");
	cr_assert_str_eq(res.meta.name, "fixture");
	cr_assert_str_eq(res.meta.description, "Demo plugins for kmpkg's tests");
	cr_assert(res.meta.has_expires);
	cr_assert_eq(res.meta.expires, 4070908800LL); /* 2099-01-01T00:00:00Z */

	/* a bare clone where SPEC §3 puts it, no working tree */
	snprintf(path, sizeof(path), "%s/kmpkg/sources/demo.git/HEAD", root);
	cr_assert_eq(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/kmpkg/sources/demo.git/plugins", root);
	cr_assert_neq(stat(path, &st), 0);

	cr_assert_eq(kmpkg_source_index_list(&idx, src, res.commit), 0, "%s", kmpkg_error_last()->message);
	cr_assert_eq(idx.n, 4);
	cr_assert_eq(idx.nskipped, 0);
	for (size_t i = 0; i < 4; i++)
		cr_assert_str_eq(idx.entries[i].path, paths[i]);
	cr_assert_str_eq(idx.entries[1].name, "hello");
	cr_assert_str_eq(idx.entries[1].version, "2.0.0");
	cr_assert_str_eq(idx.entries[3].name, "json-helpers");
	cr_assert_str_eq(idx.entries[3].version, "1.1.0");
	cr_assert_eq(kmpkg_source_read_blob_id(&b, src, idx.entries[1].blob, 65536), 0);
	cr_assert_eq(b.len, idx.entries[1].size);
	cr_assert_not_null(strstr(b.ptr, "version: 2.0.0\n"));
	cr_assert_not_null(strstr(b.ptr, "url: artifacts/hello-2.0.0.kmpkg\n"));

	/* trust is recorded only when asked */
	cr_assert_eq(kmpkg_source_trusted(trusted, src), KMPKG_ENOTFOUND);
	cr_assert_eq(kmpkg_source_trust(src, res.commit), 0);
	cr_assert_eq(kmpkg_source_trusted(trusted, src), 0);
	cr_assert_str_eq(trusted, head);

	kmpkg_buf_release(&b);
	kmpkg_source_index_release(&idx);
	kmpkg_source_update_result_release(&res);
	kmpkg_source_close(src);
}

Test(source, plain_path_branch_and_tag_refs)
{
	struct kmpkg_source *src = open_src();
	struct kmpkg_source_fetch_opts o = { 0 };
	char got[41], want[41];

	make_fixture("");
	cr_assert_eq(sh("git -C '%s' tag -a -m v1 v1 HEAD~2 && git -C '%s' branch old HEAD~1", repo, repo), 0);

	o.ref = "v1"; /* annotated tag: peeled to its commit */
	cr_assert_eq(kmpkg_source_fetch(got, src, repo, &o), 0, "%s", kmpkg_error_last()->message);
	rev_parse(want, "HEAD~2");
	cr_assert_str_eq(got, want);

	o.ref = "old";
	cr_assert_eq(kmpkg_source_fetch(got, src, repo, &o), 0, "%s", kmpkg_error_last()->message);
	rev_parse(want, "HEAD~1");
	cr_assert_str_eq(got, want);

	o.ref = "refs/heads/main";
	cr_assert_eq(kmpkg_source_fetch(got, src, repo, &o), 0, "%s", kmpkg_error_last()->message);
	rev_parse(want, "HEAD");
	cr_assert_str_eq(got, want);

	o.ref = "nope";
	cr_assert_eq(kmpkg_source_fetch(got, src, repo, &o), KMPKG_ENOTFOUND);
	cr_assert_str_eq(code(), "E_SOURCE_REF_NOT_FOUND");

	o.ref = "bad..ref";
	cr_assert_eq(kmpkg_source_fetch(got, src, repo, &o), KMPKG_EUSAGE);
	cr_assert_str_eq(code(), "E_SOURCE_URL_INVALID");
	kmpkg_source_close(src);
}

Test(source, update_returns_exact_diff)
{
	struct kmpkg_source *src = open_src();
	struct kmpkg_source_update_result r1, r2, r3;
	struct kmpkg_source_diff d;
	struct kmpkg_source_index idx;

	make_fixture("");
	cr_assert_eq(update(&r1, src, url, NULL), 0, "%s", kmpkg_error_last()->message);
	cr_assert_eq(kmpkg_source_index_list(&idx, src, r1.commit), 0);
	cr_assert_str_eq(idx.entries[0].path, "plugins/hello/1.0.0.yaml");

	cr_assert_eq(sh("cd '%s' && echo '# amended' >>plugins/hello/1.0.0.yaml && git rm -q plugins/hello/2.0.0.yaml"
			" && mkdir plugins/newp && sed 's/^name: hello/name: newp/; s/^version: .*/version: 0.1.0/'"
			" plugins/hello/3.0.0.yaml >plugins/newp/0.1.0.yaml && echo more >artifacts/extra.txt", repo), 0);
	commit_all("change the index");

	cr_assert_eq(update(&r2, src, url, r1.commit), 0, "%s", kmpkg_error_last()->message);
	cr_assert(r2.changed);
	cr_assert_str_neq(r2.commit, r1.commit);

	cr_assert_eq(kmpkg_source_index_diff(&d, src, r1.commit, r2.commit), 0, "%s", kmpkg_error_last()->message);
	cr_assert_eq(d.n, 3);
	cr_assert_eq(d.nskipped, 0);
	cr_assert_eq(d.changes[0].kind, KMPKG_SOURCE_MODIFIED);
	cr_assert_str_eq(d.changes[0].entry.path, "plugins/hello/1.0.0.yaml");
	cr_assert_str_eq(d.changes[0].old_blob, idx.entries[0].blob);
	cr_assert_str_neq(d.changes[0].entry.blob, idx.entries[0].blob);
	cr_assert_eq(d.changes[1].kind, KMPKG_SOURCE_DELETED);
	cr_assert_str_eq(d.changes[1].entry.path, "plugins/hello/2.0.0.yaml");
	cr_assert_str_eq(d.changes[1].entry.version, "2.0.0");
	cr_assert_eq(d.changes[2].kind, KMPKG_SOURCE_ADDED);
	cr_assert_str_eq(d.changes[2].entry.path, "plugins/newp/0.1.0.yaml");
	cr_assert_str_eq(d.changes[2].entry.name, "newp");
	cr_assert_str_eq(d.changes[2].entry.version, "0.1.0");
	kmpkg_source_diff_release(&d);

	/* from nothing: everything is added */
	cr_assert_eq(kmpkg_source_index_diff(&d, src, NULL, r2.commit), 0);
	cr_assert_eq(d.n, 4);
	for (size_t i = 0; i < d.n; i++)
		cr_assert_eq(d.changes[i].kind, KMPKG_SOURCE_ADDED);
	kmpkg_source_diff_release(&d);

	/* nothing new */
	cr_assert_eq(update(&r3, src, url, r2.commit), 0);
	cr_assert_not(r3.changed);
	cr_assert_str_eq(r3.commit, r2.commit);

	kmpkg_source_index_release(&idx);
	kmpkg_source_update_result_release(&r1);
	kmpkg_source_update_result_release(&r2);
	kmpkg_source_update_result_release(&r3);
	kmpkg_source_close(src);
}

Test(source, force_push_is_refused)
{
	struct kmpkg_source *src = open_src();
	struct kmpkg_source_update_result r1, r2;
	char trusted[41], fetched[41];

	make_fixture("");
	cr_assert_eq(update(&r1, src, url, NULL), 0, "%s", kmpkg_error_last()->message);
	cr_assert_eq(kmpkg_source_trust(src, r1.commit), 0);

	/* rewrite history: drop the last commit, amend the one before */
	cr_assert_eq(sh("cd '%s' && git reset -q --hard HEAD~1 && echo '# rewritten' >>plugins/hello/1.0.0.yaml"
			" && git commit -q -a --amend -m rewritten", repo), 0);
	cr_assert_eq(update(&r2, src, url, r1.commit), KMPKG_EVERIFY);
	cr_assert_str_eq(code(), "E_SOURCE_FORCE_PUSHED");
	cr_assert_not_null(strstr(kmpkg_error_last()->next_step, "kmpkg source remove demo"),
			   "%s", kmpkg_error_last()->next_step);
	/* the trusted ref did not move; the rewritten commit was fetched */
	cr_assert_eq(kmpkg_source_trusted(trusted, src), 0);
	cr_assert_str_eq(trusted, r1.commit);
	rev_parse(fetched, "HEAD");
	cr_assert_str_eq(r2.commit, fetched);

	/* an unrelated history (orphan commit) is refused the same way */
	cr_assert_eq(sh("cd '%s' && git checkout -q --orphan other && git commit -q -m orphan"
			" && git branch -q -M other main", repo), 0);
	kmpkg_source_update_result_release(&r2);
	cr_assert_eq(update(&r2, src, url, r1.commit), KMPKG_EVERIFY);
	cr_assert_str_eq(code(), "E_SOURCE_FORCE_PUSHED");

	/* a trusted commit this repository never saw cannot be an ancestor */
	kmpkg_source_update_result_release(&r2);
	cr_assert_eq(update(&r2, src, url, "0123456789abcdef0123456789abcdef01234567"), KMPKG_EVERIFY);
	cr_assert_str_eq(code(), "E_SOURCE_FORCE_PUSHED");

	kmpkg_source_update_result_release(&r1);
	kmpkg_source_update_result_release(&r2);
	kmpkg_source_close(src);
}

Test(source, expired_index_is_refused)
{
	struct kmpkg_source *src = open_src();
	struct kmpkg_source_update_result r;
	struct kmpkg_source_fetch_opts o = { 0 };

	make_fixture("--expired");
	cr_assert_eq(update(&r, src, url, NULL), KMPKG_EVERIFY);
	cr_assert_str_eq(code(), "E_SOURCE_EXPIRED");
	cr_assert_not_null(strstr(kmpkg_error_last()->message, "2000-01-01T00:00:00Z"), "%s",
			   kmpkg_error_last()->message);
	kmpkg_source_update_result_release(&r);

	/* the clock decides: before the expiry it is accepted */
	o.now = 946684799; /* 1999-12-31T23:59:59Z */
	cr_assert_eq(kmpkg_source_update(&r, src, url, &o, NULL), 0, "%s", kmpkg_error_last()->message);
	kmpkg_source_update_result_release(&r);
	o.now = 946684800;
	cr_assert_eq(kmpkg_source_update(&r, src, url, &o, NULL), KMPKG_EVERIFY);
	cr_assert_str_eq(code(), "E_SOURCE_EXPIRED");
	kmpkg_source_update_result_release(&r);
	kmpkg_source_close(src);
}

Test(source, source_manifest_is_checked)
{
	struct kmpkg_source *src = open_src();
	struct kmpkg_source_update_result r;

	make_fixture("");
	write_file("kmpkg-source.yaml", "apiVersion: kmpkg/v2\nname: fixture\ndescription: x\n");
	commit_all("bad apiVersion");
	cr_assert_eq(update(&r, src, url, NULL), KMPKG_EVERIFY);
	cr_assert_str_eq(code(), "E_SOURCE_MANIFEST");
	cr_assert_str_eq(kmpkg_error_last()->field, "/apiVersion");

	write_file("kmpkg-source.yaml", "a: &x 1\nb: *x\n");
	commit_all("alias");
	cr_assert_eq(update(&r, src, url, NULL), KMPKG_EVERIFY);
	cr_assert_str_eq(code(), "E_SOURCE_MANIFEST");

	write_file("kmpkg-source.yaml", "apiVersion: kmpkg/v1\nname: fixture\ndescription: x\nexpires: tomorrow\n");
	commit_all("bad expires");
	cr_assert_eq(update(&r, src, url, NULL), KMPKG_EVERIFY);
	cr_assert_str_eq(code(), "E_SOURCE_MANIFEST");
	cr_assert_str_eq(kmpkg_error_last()->field, "/expires");

	write_file("kmpkg-source.yaml", "apiVersion: kmpkg/v1\nname: fixture\n");
	commit_all("no description");
	cr_assert_eq(update(&r, src, url, NULL), KMPKG_EVERIFY);
	cr_assert_str_eq(kmpkg_error_last()->field, "/description");

	cr_assert_eq(sh("git -C '%s' rm -q kmpkg-source.yaml && git -C '%s' commit -q -m gone", repo, repo), 0);
	cr_assert_eq(update(&r, src, url, NULL), KMPKG_EVERIFY);
	cr_assert_str_eq(code(), "E_SOURCE_MANIFEST");

	/* no expires at all: valid forever */
	write_file("kmpkg-source.yaml", "apiVersion: kmpkg/v1\nname: fixture\ndescription: x\n");
	commit_all("no expiry");
	cr_assert_eq(update(&r, src, url, NULL), 0, "%s", kmpkg_error_last()->message);
	cr_assert_not(r.meta.has_expires);
	kmpkg_source_update_result_release(&r);
	kmpkg_source_close(src);
}

Test(source, bad_index_paths_are_skipped_with_a_reason)
{
	struct kmpkg_source *src = open_src();
	struct kmpkg_source_update_result r1, r2;
	struct kmpkg_source_index idx;
	struct kmpkg_source_diff d;
	static const struct {
		const char *path, *reason;
	} want[] = {
		{ "plugins/Bad_Name", "plugin name 'Bad_Name'" },
		{ "plugins/README.md", "not in a plugin directory" },
		{ "plugins/hello/01.0.0.yaml", "not a SemVer version" },
		{ "plugins/hello/link.yaml", "not a SemVer version" },
		{ "plugins/hello/notes.txt", "not a <version>.yaml file" },
		{ "plugins/hello/sub", "a directory inside plugins/<name>/" },
		{ "plugins/hello/v4.0.0.yaml", "not a SemVer version" },
		{ "plugins/json-helpers/9.9.9.yaml", "a symbolic link" },
	};

	make_fixture("");
	cr_assert_eq(update(&r1, src, url, NULL), 0);
	cr_assert_eq(sh("cd '%s' && mkdir plugins/Bad_Name plugins/hello/sub && touch plugins/Bad_Name/1.0.0.yaml"
			" plugins/README.md plugins/hello/notes.txt plugins/hello/v4.0.0.yaml plugins/hello/01.0.0.yaml"
			" plugins/hello/sub/1.0.0.yaml && ln -s ../hello/1.0.0.yaml plugins/json-helpers/9.9.9.yaml"
			" && ln -s 1.0.0.yaml plugins/hello/link.yaml", repo), 0);
	commit_all("junk");
	cr_assert_eq(update(&r2, src, url, r1.commit), 0, "%s", kmpkg_error_last()->message);

	cr_assert_eq(kmpkg_source_index_list(&idx, src, r2.commit), 0, "%s", kmpkg_error_last()->message);
	cr_assert_eq(idx.n, 4);
	cr_assert_eq(idx.nskipped, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < idx.nskipped; i++) {
		size_t j;

		for (j = 0; j < idx.nskipped; j++)
			if (!strcmp(idx.skipped[j].path, want[i].path))
				break;
		cr_assert_lt(j, idx.nskipped, "%s not skipped", want[i].path);
		cr_assert_not_null(strstr(idx.skipped[j].reason, want[i].reason), "%s: %s", want[i].path,
				   idx.skipped[j].reason);
	}

	/* the diff reports the same files as skipped, and no change */
	cr_assert_eq(kmpkg_source_index_diff(&d, src, r1.commit, r2.commit), 0);
	cr_assert_eq(d.n, 0);
	cr_assert_eq(d.nskipped, 8);
	kmpkg_source_diff_release(&d);

	kmpkg_source_index_release(&idx);
	kmpkg_source_update_result_release(&r1);
	kmpkg_source_update_result_release(&r2);
	kmpkg_source_close(src);
}

Test(source, artifact_blob_is_read_and_bounded)
{
	struct kmpkg_source *src = open_src();
	struct kmpkg_source_update_result r;
	struct kmpkg_buf b = KMPKG_BUF_INIT;
	char path[PATH_MAX];
	struct stat st;
	FILE *f;
	char *disk;

	make_fixture("");
	cr_assert_eq(update(&r, src, url, NULL), 0);
	snprintf(path, sizeof(path), "%s/artifacts/hello-1.0.0.kmpkg", repo);
	cr_assert_eq(stat(path, &st), 0);
	disk = malloc((size_t)st.st_size);
	f = fopen(path, "rb");
	cr_assert_not_null(f);
	cr_assert_eq(fread(disk, 1, (size_t)st.st_size, f), (size_t)st.st_size);
	fclose(f);

	cr_assert_eq(kmpkg_source_read_blob(&b, src, r.commit, "artifacts/hello-1.0.0.kmpkg", (size_t)st.st_size), 0,
		     "%s", kmpkg_error_last()->message);
	cr_assert_eq(b.len, (size_t)st.st_size);
	cr_assert_eq(memcmp(b.ptr, disk, b.len), 0);
	kmpkg_buf_clear(&b);

	cr_assert_eq(kmpkg_source_read_blob(&b, src, r.commit, "artifacts/hello-1.0.0.kmpkg",
					    (size_t)st.st_size - 1), KMPKG_EVERIFY);
	cr_assert_str_eq(code(), "E_SOURCE_BLOB_TOO_LARGE");
	cr_assert_eq(b.len, 0);

	cr_assert_eq(kmpkg_source_read_blob(&b, src, r.commit, "artifacts/none.kmpkg", 1 << 20), KMPKG_ENOTFOUND);
	cr_assert_str_eq(code(), "E_SOURCE_PATH_NOT_FOUND");
	cr_assert_eq(kmpkg_source_read_blob(&b, src, r.commit, "artifacts", 1 << 20), KMPKG_ENOTFOUND);
	cr_assert_eq(kmpkg_source_read_blob(&b, src, r.commit, "../etc/passwd", 1 << 20), KMPKG_EVERIFY);
	cr_assert_str_eq(code(), "E_SOURCE_PATH_INVALID");
	cr_assert_eq(kmpkg_source_read_blob(&b, src, r.commit, "/artifacts/hello-1.0.0.kmpkg", 1 << 20),
		     KMPKG_EVERIFY);
	cr_assert_eq(kmpkg_source_read_blob(&b, src, r.commit, "artifacts/./hello-1.0.0.kmpkg", 1 << 20),
		     KMPKG_EVERIFY);
	cr_assert_eq(kmpkg_source_read_blob(&b, src, "nothex", "kmpkg-source.yaml", 1 << 20), KMPKG_EUSAGE);
	cr_assert_str_eq(code(), "E_SOURCE_COMMIT_INVALID");

	free(disk);
	kmpkg_buf_release(&b);
	kmpkg_source_update_result_release(&r);
	kmpkg_source_close(src);
}

struct counter {
	int calls;
	int cancel;
};

static int count_progress(const struct kmpkg_source_progress *p, void *payload)
{
	struct counter *c = payload;

	(void)p;
	c->calls++;
	return c->cancel;
}

Test(source, progress_is_forwarded_and_can_cancel)
{
	struct kmpkg_source *src = open_src();
	struct kmpkg_source_fetch_opts o = { 0 };
	struct counter c = { 0, 0 };
	char got[41];

	make_fixture("");
	o.progress = count_progress;
	o.progress_payload = &c;
	c.cancel = 1;
	cr_assert_eq(kmpkg_source_fetch(got, src, url, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_SOURCE_CANCELLED");
	cr_assert_eq(c.calls, 1);
	c.cancel = 0;
	c.calls = 0;
	cr_assert_eq(kmpkg_source_fetch(got, src, url, &o), 0, "%s", kmpkg_error_last()->message);
	cr_assert_gt(c.calls, 0);
	kmpkg_source_close(src);
}

Test(source, urls_and_names_are_validated)
{
	struct kmpkg_source *src = NULL;
	char got[41];

	cr_assert_eq(kmpkg_source_open(&src, root, "Bad_Name", true), KMPKG_EUSAGE);
	cr_assert_str_eq(code(), "E_SOURCE_NAME_INVALID");
	cr_assert_eq(kmpkg_source_open(&src, root, "../x", true), KMPKG_EUSAGE);
	cr_assert_eq(kmpkg_source_open(&src, root, "demo", false), KMPKG_ENOTFOUND);
	cr_assert_str_eq(code(), "E_SOURCE_NOT_FOUND");

	src = open_src();
	cr_assert_eq(kmpkg_source_fetch(got, src, "https://user:secret@example.invalid/x.git", NULL), KMPKG_EUSAGE);
	cr_assert_str_eq(code(), "E_SOURCE_URL_INVALID");
	cr_assert_null(strstr(kmpkg_error_last()->message, "secret"));
	cr_assert_eq(kmpkg_source_fetch(got, src, "ftp://example.invalid/x.git", NULL), KMPKG_EUSAGE);
	cr_assert_eq(kmpkg_source_fetch(got, src, "/nonexistent/kmpkg/repo", NULL), KMPKG_EUSAGE);
	cr_assert_eq(kmpkg_source_fetch(got, src, "", NULL), KMPKG_EUSAGE);
	/* nothing listening: a fetch error, exit 1 */
	cr_assert_eq(kmpkg_source_fetch(got, src, "http://127.0.0.1:1/x.git", NULL), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_SOURCE_FETCH");
	kmpkg_source_close(src);

	/* delete, then it is gone; deleting again is fine */
	cr_assert_eq(kmpkg_source_delete(root, "demo"), 0);
	cr_assert_eq(kmpkg_source_open(&src, root, "demo", false), KMPKG_ENOTFOUND);
	cr_assert_eq(kmpkg_source_delete(root, "demo"), 0);
	cr_assert_eq(kmpkg_source_delete(root, "../etc"), KMPKG_EUSAGE);
}

Test(source, url_change_refetches_from_the_new_remote)
{
	struct kmpkg_source *src = open_src();
	struct kmpkg_source_update_result r1, r2;
	char other[160], head[41];

	make_fixture("");
	cr_assert_eq(update(&r1, src, url, NULL), 0);
	/* a mirror with one more commit on top */
	snprintf(other, sizeof(other), "%s/mirror", dir);
	cr_assert_eq(sh("git clone -q --bare '%s' '%s'", repo, other), 0);
	cr_assert_eq(sh("cd '%s' && echo '# more' >>plugins/hello/3.0.0.yaml && git commit -q -a -m more"
			" && git push -q '%s' HEAD:main", repo, other), 0);
	rev_parse(head, "HEAD");
	cr_assert_eq(update(&r2, src, other, r1.commit), 0, "%s", kmpkg_error_last()->message);
	cr_assert_str_eq(r2.commit, head);
	kmpkg_source_update_result_release(&r1);
	kmpkg_source_update_result_release(&r2);
	kmpkg_source_close(src);
}

Test(source, many_plugins)
{
	struct kmpkg_source *src = open_src();
	struct kmpkg_source_update_result r;
	struct kmpkg_source_index idx;

	make_fixture("--extra 200");
	cr_assert_eq(update(&r, src, url, NULL), 0, "%s", kmpkg_error_last()->message);
	cr_assert_eq(kmpkg_source_index_list(&idx, src, r.commit), 0);
	cr_assert_eq(idx.n, 204);
	cr_assert_eq(idx.nskipped, 0);
	cr_assert_str_eq(idx.entries[0].path, "plugins/extra-00001/1.0.0.yaml");
	cr_assert_str_eq(idx.entries[199].name, "extra-00200");
	kmpkg_source_index_release(&idx);
	kmpkg_source_update_result_release(&r);
	kmpkg_source_close(src);
}

Test(source, times_parse)
{
	int64_t t = 0;

	cr_assert_eq(kmpkg_source_parse_time(&t, "1970-01-01"), 0);
	cr_assert_eq(t, 0);
	cr_assert_eq(kmpkg_source_parse_time(&t, "2099-01-01T00:00:00Z"), 0);
	cr_assert_eq(t, 4070908800LL);
	cr_assert_eq(kmpkg_source_parse_time(&t, "2000-03-01t01:02:03.999+02:30"), 0);
	cr_assert_eq(t, 951872523LL - 9000);
	cr_assert_eq(kmpkg_source_parse_time(&t, "2024-02-29 10:00:00-01:00"), 0);
	cr_assert_eq(t, 1709200800LL + 3600);
	cr_assert_eq(kmpkg_source_parse_time(&t, "2023-02-29"), KMPKG_EUSAGE);
	cr_assert_eq(kmpkg_source_parse_time(&t, "2023-13-01"), KMPKG_EUSAGE);
	cr_assert_eq(kmpkg_source_parse_time(&t, "2023-01-01T24:00:00Z"), KMPKG_EUSAGE);
	cr_assert_eq(kmpkg_source_parse_time(&t, "2023-01-01T00:00:00"), KMPKG_EUSAGE);
	cr_assert_eq(kmpkg_source_parse_time(&t, "2023-01-01T00:00Z"), KMPKG_EUSAGE);
	cr_assert_eq(kmpkg_source_parse_time(&t, "2023-01-01Z"), KMPKG_EUSAGE);
	cr_assert_eq(kmpkg_source_parse_time(&t, "tomorrow"), KMPKG_EUSAGE);
	cr_assert_eq(kmpkg_source_parse_time(&t, ""), KMPKG_EUSAGE);
}

/* A free TCP port on 127.0.0.1 (bound to port 0, then released). */
static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static bool port_open(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

Test(source, fetch_over_git_daemon)
{
	struct kmpkg_source *src;
	struct kmpkg_source_update_result r;
	struct kmpkg_source_index idx;
	char head[41], gurl[128], portarg[32], basearg[160];
	int port = -1, tries, st;
	pid_t pid = -1;

	make_fixture("");
	rev_parse(head, "HEAD");
	for (tries = 0; tries < 3 && pid < 0; tries++) {
		int i;

		port = free_port();
		if (port < 0)
			break;
		snprintf(portarg, sizeof(portarg), "--port=%d", port);
		snprintf(basearg, sizeof(basearg), "--base-path=%s", dir);
		pid = fork();
		cr_assert_neq(pid, -1);
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);

			if (null >= 0) {
				dup2(null, 1);
				dup2(null, 2);
			}
			execlp("git", "git", "daemon", "--export-all", "--reuseaddr", "--listen=127.0.0.1", portarg,
			       basearg, (char *)NULL);
			_exit(127);
		}
		for (i = 0; i < 100 && !port_open(port); i++) {
			if (waitpid(pid, &st, WNOHANG) == pid) {
				pid = -1;
				break;
			}
			usleep(30000);
		}
		if (pid > 0 && !port_open(port)) {
			kill(pid, SIGTERM);
			waitpid(pid, &st, 0);
			pid = -1;
		}
	}
	if (pid < 0)
		cr_skip_test("git daemon did not start");

	snprintf(gurl, sizeof(gurl), "git://127.0.0.1:%d/repo", port);
	src = open_src();
	st = update(&r, src, gurl, NULL);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	cr_assert_eq(st, 0, "%s", kmpkg_error_last()->message);
	cr_assert_str_eq(r.commit, head);
	cr_assert_eq(kmpkg_source_index_list(&idx, src, r.commit), 0);
	cr_assert_eq(idx.n, 4);
	kmpkg_source_index_release(&idx);
	kmpkg_source_update_result_release(&r);
	kmpkg_source_close(src);
}

/* base64 text of an ssh .pub file's key blob, decoded */
static size_t b64_decode(unsigned char *out, const char *b64)
{
	size_t n = strlen(b64);
	int len = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);

	cr_assert_gt(len, 0);
	return (size_t)len - (n > 0 && b64[n - 1] == '=') - (n > 1 && b64[n - 2] == '=');
}

static size_t read_pubkey(unsigned char *out, const char *file)
{
	char line[1024], type[64], b64[900];
	FILE *f = fopen(file, "r");

	cr_assert_not_null(f, "%s", file);
	cr_assert_not_null(fgets(line, sizeof(line), f));
	fclose(f);
	cr_assert_eq(sscanf(line, "%63s %899s", type, b64), 2);
	return b64_decode(out, b64);
}

Test(source, ssh_known_hosts_matching)
{
	unsigned char k1[700], k2[700];
	size_t l1, l2;
	char path[PATH_MAX], kh[PATH_MAX], pub[1024];
	FILE *f;

	if (sh("ssh-keygen -q -t ed25519 -N '' -C t -f '%s/hk1' && ssh-keygen -q -t ed25519 -N '' -C t -f '%s/hk2'",
	       dir, dir) != 0)
		cr_skip_test("ssh-keygen is not available");
	snprintf(path, sizeof(path), "%s/hk1.pub", dir);
	l1 = read_pubkey(k1, path);
	snprintf(path, sizeof(path), "%s/hk2.pub", dir);
	l2 = read_pubkey(k2, path);
	f = fopen(path, "r");
	cr_assert_not_null(fgets(pub, sizeof(pub), f));
	fclose(f);
	snprintf(path, sizeof(path), "%s/hk1.pub", dir);
	f = fopen(path, "r");
	cr_assert_not_null(fgets(pub, sizeof(pub), f));
	fclose(f);
	pub[strcspn(pub, " ")] = '\0'; /* key type */
	{
		char *b = pub + strlen(pub) + 1;

		b[strcspn(b, " \n")] = '\0';
		snprintf(kh, sizeof(kh), "%s/known_hosts", dir);
		f = fopen(kh, "w");
		cr_assert_not_null(f);
		fprintf(f, "# comment\n\nexample.com,other.org %s %s\n[git.example.com]:2222 %s %s\n"
			   "*.wild.test,!bad.wild.test %s %s\n", pub, b, pub, b, pub, b);
		cr_assert_eq(fclose(f), 0);
	}
	cr_assert_eq(kmpkg_source__known_hosts_check(kh, "example.com", 22, k1, l1), 1);
	cr_assert_eq(kmpkg_source__known_hosts_check(kh, "EXAMPLE.com", 22, k1, l1), 1);
	cr_assert_eq(kmpkg_source__known_hosts_check(kh, "other.org", 22, k1, l1), 1);
	cr_assert_eq(kmpkg_source__known_hosts_check(kh, "example.com", 22, k2, l2), 0);
	cr_assert_eq(kmpkg_source__known_hosts_check(kh, "example.com", 2222, k1, l1), 0);
	cr_assert_eq(kmpkg_source__known_hosts_check(kh, "git.example.com", 2222, k1, l1), 1);
	cr_assert_eq(kmpkg_source__known_hosts_check(kh, "git.example.com", 22, k1, l1), 0);
	cr_assert_eq(kmpkg_source__known_hosts_check(kh, "a.wild.test", 22, k1, l1), 1);
	cr_assert_eq(kmpkg_source__known_hosts_check(kh, "bad.wild.test", 22, k1, l1), 0);
	cr_assert_eq(kmpkg_source__known_hosts_check(kh, "nothere.test", 22, k1, l1), 0);

	/* hashed entries, as ssh writes them with HashKnownHosts */
	cr_assert_eq(sh("ssh-keygen -q -H -f '%s' >/dev/null 2>&1", kh), 0);
	cr_assert_eq(sh("grep -q '^|1|' '%s' && ! grep -q example.com '%s'", kh, kh), 0);
	cr_assert_eq(kmpkg_source__known_hosts_check(kh, "example.com", 22, k1, l1), 1);
	cr_assert_eq(kmpkg_source__known_hosts_check(kh, "git.example.com", 2222, k1, l1), 1);
	cr_assert_eq(kmpkg_source__known_hosts_check(kh, "example.com", 22, k2, l2), 0);
	cr_assert_eq(kmpkg_source__known_hosts_check(kh, "nothere.test", 22, k1, l1), 0);

	/* a revoked key loses even when another line accepts it */
	f = fopen(kh, "a");
	cr_assert_not_null(f);
	fprintf(f, "@revoked example.com %s %s", pub, pub + strlen(pub) + 1);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(kmpkg_source__known_hosts_check(kh, "example.com", 22, k1, l1), -1);
	snprintf(path, sizeof(path), "%s/missing", dir);
	cr_assert_eq(kmpkg_source__known_hosts_check(path, "example.com", 22, k1, l1), 0);
}

/* An HTTP server that answers every request with 401 and logs the
 * Authorization header it got (or "-") to <dir>/auth.log. */
static void http_401_server(int lfd)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/auth.log", dir);
	alarm(15);
	for (;;) {
		char req[8192];
		size_t n = 0;
		ssize_t r;
		int c = accept(lfd, NULL, NULL);
		const char *auth;
		FILE *log;
		static const char resp[] = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"kmpkg\"\r\n"
					   "Content-Length: 0\r\nConnection: close\r\n\r\n";

		if (c < 0)
			_exit(1);
		while (n < sizeof(req) - 1 && (r = read(c, req + n, sizeof(req) - 1 - n)) > 0) {
			n += (size_t)r;
			req[n] = '\0';
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		req[n] = '\0';
		auth = strstr(req, "Authorization: ");
		log = fopen(path, "a");
		if (log) {
			if (auth)
				fprintf(log, "%.*s\n", (int)strcspn(auth + 15, "\r\n"), auth + 15);
			else
				fputs("-\n", log);
			fclose(log);
		}
		if (write(c, resp, sizeof(resp) - 1) < 0)
			_exit(1);
		close(c);
	}
}

Test(source, https_token_comes_from_the_named_variable)
{
	struct kmpkg_source *src = open_src();
	struct kmpkg_source_fetch_opts o = { 0 };
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	char hurl[128], got[41], expect[128], log[4096], path[PATH_MAX];
	unsigned char enc[128];
	size_t n;
	int lfd;
	pid_t pid;
	FILE *f;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(lfd, 8), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0)
		http_401_server(lfd);
	close(lfd);
	snprintf(hurl, sizeof(hurl), "http://127.0.0.1:%d/repo.git", ntohs(a.sin_port));

	cr_assert_eq(kmpkg_source_fetch(got, src, hurl, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_SOURCE_FETCH");
	cr_assert_not_null(strstr(kmpkg_error_last()->message, "no token variable"), "%s", kmpkg_error_last()->message);

	o.token_env = "KMPKG_TEST_TOKEN";
	unsetenv("KMPKG_TEST_TOKEN");
	cr_assert_eq(kmpkg_source_fetch(got, src, hurl, &o), KMPKG_EGENERIC);
	cr_assert_not_null(strstr(kmpkg_error_last()->message, "KMPKG_TEST_TOKEN is not set"), "%s",
			   kmpkg_error_last()->message);

	setenv("KMPKG_TEST_TOKEN", "s3cret-token", 1);
	cr_assert_eq(kmpkg_source_fetch(got, src, hurl, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_SOURCE_FETCH");
	cr_assert_not_null(strstr(kmpkg_error_last()->message, "refused the token in KMPKG_TEST_TOKEN"), "%s",
			   kmpkg_error_last()->message);
	cr_assert_null(strstr(kmpkg_error_last()->message, "s3cret"));
	kmpkg_source_close(src);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);

	/* the token went to the server as the password of x-access-token ... */
	EVP_EncodeBlock(enc, (const unsigned char *)"x-access-token:s3cret-token", 27);
	snprintf(expect, sizeof(expect), "Basic %s", enc);
	snprintf(path, sizeof(path), "%s/auth.log", dir);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	n = fread(log, 1, sizeof(log) - 1, f);
	log[n] = '\0';
	fclose(f);
	cr_assert_not_null(strstr(log, expect), "%s", log);
	/* ... and was stored nowhere in the bare repository */
	cr_assert_neq(sh("grep -rq s3cret '%s/kmpkg/sources/demo.git'", root), 0);
	unsetenv("KMPKG_TEST_TOKEN");
}

/* The fixture's index files are valid manifests for the engine, and each
 * artifact kept in the repository has the digest and size the index says. */
Test(source, fixture_index_matches_its_artifacts)
{
	struct kmpkg_source *src = open_src();
	struct kmpkg_source_update_result r;
	struct kmpkg_source_index idx;

	make_fixture("");
	cr_assert_eq(update(&r, src, url, NULL), 0);
	cr_assert_eq(kmpkg_source_index_list(&idx, src, r.commit), 0);
	cr_assert_eq(idx.n, 4);
	for (size_t i = 0; i < idx.n; i++) {
		struct kmpkg_buf y = KMPKG_BUF_INIT, art = KMPKG_BUF_INIT;
		struct kmpkg_diags diags = KMPKG_DIAGS_INIT;
		struct kmpkg_manifest *m = NULL;
		unsigned char md[32];
		char hex[65];

		cr_assert_eq(kmpkg_source_read_blob_id(&y, src, idx.entries[i].blob, KMPKG_MANIFEST_MAX_BYTES), 0);
		cr_assert_eq(kmpkg_manifest_load_buf(&m, idx.entries[i].path, y.ptr, y.len, &diags), 0, "%s: %s",
			     idx.entries[i].path, diags.n ? diags.v[0].message : "");
		cr_assert_str_eq(m->name, idx.entries[i].name);
		cr_assert_str_eq(m->version, idx.entries[i].version);
		cr_assert(m->has_artifact);
		cr_assert_eq(kmpkg_source_read_blob(&art, src, r.commit, m->artifact.url, m->artifact.size), 0, "%s",
			     kmpkg_error_last()->message);
		cr_assert_eq(art.len, m->artifact.size);
		cr_assert_not_null(SHA256((const unsigned char *)art.ptr, art.len, md));
		for (int j = 0; j < 32; j++)
			snprintf(hex + 2 * j, 3, "%02x", md[j]);
		cr_assert_str_eq(hex, m->artifact.sha256);
		{
			/* the package extracts under kmpkg's own safety rules */
			struct kmpkg_filelist *fl = NULL;
			char file[PATH_MAX], dest[PATH_MAX];
			FILE *f;

			snprintf(file, sizeof(file), "%s/pkg-%zu.kmpkg", dir, i);
			snprintf(dest, sizeof(dest), "%s/x-%zu", dir, i);
			f = fopen(file, "wb");
			cr_assert_not_null(f);
			cr_assert_eq(fwrite(art.ptr, 1, art.len, f), art.len);
			cr_assert_eq(fclose(f), 0);
			cr_assert_eq(kmpkg_archive_extract(&fl, file, dest, NULL), 0, "%s", kmpkg_error_last()->message);
			kmpkg_filelist_free(fl);
		}
		kmpkg_manifest_free(m);
		kmpkg_diags_release(&diags);
		kmpkg_buf_release(&y);
		kmpkg_buf_release(&art);
	}
	kmpkg_source_index_release(&idx);
	kmpkg_source_update_result_release(&r);
	kmpkg_source_close(src);
}
