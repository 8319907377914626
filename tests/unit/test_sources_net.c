/* sources_net: kmpkg source add/update and install by name against real git
 * servers on loopback (`git daemon`, `git http-backend` behind
 * tests/unit/net_server.py) and artifacts from net_server.py's misbehaving
 * routes, through the sanitized kmpkg. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <time.h>

#include "kmfix.h"

static char *W, *R, *REPO, *PKGS, *LOG; /* work dir, root, source repository, packages, server log */
static pid_t http_pid = -1, daemon_pid = -1;
static int http_port, daemon_port;

#define GITENV "GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t " \
	       "GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t"

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	cr_assert_eq(system(cmd), 0, "failed: %s", cmd);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	char *s = NULL;
	va_list ap;

	va_start(ap, f);
	cr_assert(vasprintf(&s, f, ap) >= 0);
	va_end(ap);
	return s;
}

/* Skips the test when git lacks the server program (a git without it). */
static void need_git_program(const char *prog)
{
	char *cmd = fmt("test -x \"$(git --exec-path)/%s\"", prog);
	int rc = system(cmd);

	free(cmd);
	if (rc != 0)
		cr_skip_test("%s is not installed with git here: this test needs a real git server on loopback", prog);
}

/* A port nothing listens on (at the time of the call). */
static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0), port;

	cr_assert(s >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(s, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(s);
	return port;
}

static bool port_open(int port)
{
	struct sockaddr_in a;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	ok = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(s);
	return ok;
}

/* git daemon serving W (git://127.0.0.1:PORT/repo is REPO), in its own
 * process group so that teardown also ends the upload-pack children. */
static void daemon_start(void)
{
	char *base = fmt("--base-path=%s", W), *port;
	int i;

	need_git_program("git-daemon");
	daemon_port = free_port();
	port = fmt("--port=%d", daemon_port);
	daemon_pid = fork();
	cr_assert(daemon_pid >= 0);
	if (daemon_pid == 0) {
		int null = open("/dev/null", O_RDWR);

		setpgid(0, 0);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
		setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
		execlp("git", "git", "daemon", "--reuseaddr", "--export-all", base, "--listen=127.0.0.1", port,
		       (char *)NULL);
		_exit(127);
	}
	setpgid(daemon_pid, daemon_pid);
	for (i = 0; i < 200 && !port_open(daemon_port); i++)
		usleep(25000);
	cr_assert(port_open(daemon_port), "git daemon did not listen on port %d", daemon_port);
	free(base);
	free(port);
}

static void daemon_stop(void)
{
	if (daemon_pid > 0) {
		kill(-daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
		daemon_pid = -1;
	}
}

/* net_server.py: git http-backend for W, artifacts from REPO/artifacts. */
static void http_start(void)
{
	const char *src = getenv("KMPKG_SRCDIR");
	char *script = fmt("%s/tests/unit/net_server.py", src ? src : "."), *files = fmt("%s/artifacts", REPO);
	char line[32] = "";
	sigset_t none;
	FILE *f;
	int p[2];

	need_git_program("git-http-backend");
	cr_assert_eq(pipe(p), 0);
	http_pid = fork();
	cr_assert(http_pid >= 0);
	if (http_pid == 0) {
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGALRM, SIG_DFL);
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl("/usr/bin/python3", "python3", script, W, files, LOG, "60", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(line, sizeof(line), f), "net_server.py did not report a port");
	fclose(f);
	http_port = atoi(line);
	cr_assert(http_port > 0 && http_port < 65536);
	free(script);
	free(files);
}

static void http_stop(void)
{
	if (http_pid > 0) {
		kill(http_pid, SIGKILL);
		waitpid(http_pid, NULL, 0);
		http_pid = -1;
	}
}

/* The fixture source at REPO (extra: options of make-fixture-source), the
 * host profile in the root. */
static void make_source(const char *extra)
{
	const char *srcdir = getenv("KMPKG_SRCDIR");

	cr_assert_not_null(srcdir);
	sh("'%s/scripts/make-fixture-source' '%s' %s >/dev/null", srcdir, REPO, extra);
	sh("mkdir -p '%s/kmpkg' && cp '%s/fixtures/host.yaml' '%s/kmpkg/host.yaml'", R, srcdir, R);
}

static void commit_all(const char *msg)
{
	sh("cd '%s' && " GITENV " git add -A && " GITENV " git commit -qm '%s'", REPO, msg);
}

/* plugins/NAME/VERSION.yaml with a made-up https artifact, committed. */
static void index_fake(const char *name, const char *version)
{
	sh("mkdir -p '%s/plugins/%s' && printf 'apiVersion: kmpkg/v1\\nname: %s\\nversion: %s\\n"
	   "artifact:\\n  url: https://example.invalid/%s-%s.kmpkg\\n  sha256: %064d\\n  size: 100\\n' "
	   "> '%s/plugins/%s/%s.yaml'",
	   REPO, name, name, version, name, version, 7, REPO, name, version);
	commit_all(name);
}

static char *head(void)
{
	char *cmd = fmt("git -C '%s' rev-parse HEAD", REPO), buf[64] = "";
	FILE *p = popen(cmd, "r");

	cr_assert_not_null(p);
	cr_assert_not_null(fgets(buf, sizeof(buf), p));
	pclose(p);
	free(cmd);
	buf[strcspn(buf, "\n")] = '\0';
	return strdup(buf);
}

static json_t *json_of(const char *s)
{
	json_error_t je;
	json_t *j = json_loads(s, 0, &je);

	cr_assert_not_null(j, "not JSON: %s", s);
	return j;
}

/* kmpkg --json ARGS... (NULL-terminated): expects status `want`, returns the document. */
static json_t *run_jsonf(int want, ...)
{
	const char *args[32];
	struct kres r;
	json_t *d;
	va_list ap;
	int n = 1;

	args[0] = "--json";
	va_start(ap, want);
	while (n < 31 && (args[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	args[n] = NULL;
	r = fx_runv(R, NULL, args);
	cr_assert_eq(r.status, want, "kmpkg %s %s: status %d, want %d; out %s err %s", args[1], args[2] ? args[2] : "",
		     r.status, want, r.out, r.err);
	d = json_of(r.out);
	fx_free(&r);
	return d;
}

#define run_json(want, ...) run_jsonf(want, __VA_ARGS__, NULL)

static const char *jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "(none)";
}

static const char *err_code(const json_t *d)
{
	return jstr(json_object_get(d, "error"), "code");
}

static json_t *first_source(void)
{
	json_t *d = run_json(0, "source", "list"), *s = json_incref(json_array_get(json_object_get(d, "sources"), 0));

	json_decref(d);
	return s;
}

static bool log_has(const char *needle)
{
	FILE *f = fopen(LOG, "r");
	char line[1024];
	bool hit = false;

	if (!f)
		return false;
	while (!hit && fgets(line, sizeof(line), f))
		hit = strstr(line, needle) != NULL;
	fclose(f);
	return hit;
}

static void setup(void)
{
	W = fx_tmpdir();
	R = fx_path(W, "root");
	REPO = fx_path(W, "repo");
	PKGS = fx_path(W, "pkgs");
	LOG = fx_path(W, "server.log");
}

static void teardown(void)
{
	(void)fx_check_invariants;
	(void)fx_meta;
	http_stop();
	daemon_stop();
	fx_rmrf(W);
	free(W);
	free(R);
	free(REPO);
	free(PKGS);
	free(LOG);
}

TestSuite(sources_net, .init = setup, .fini = teardown, .timeout = 60);

Test(sources_net, git_daemon_add_update_force_push)
{
	char *url, *c1, *c2;
	json_t *d, *s, *index;
	struct kres r;

	make_source("");
	daemon_start();
	c1 = head();
	url = fmt("git://127.0.0.1:%d/repo", daemon_port);
	d = run_json(0, "source", "add", "demo", url);
	cr_assert_eq(json_integer_value(json_object_get(d, "entries")), 4);
	json_decref(d);
	s = first_source();
	cr_assert_str_eq(jstr(s, "trusted"), c1);
	cr_assert_str_eq(jstr(s, "url"), url);
	json_decref(s);
	/* In-repository artifacts come from the fetched objects. */
	d = run_json(0, "install", "hello@^1");
	cr_assert_str_eq(jstr(d, "outcome"), "committed");
	json_decref(d);

	/* A new commit: fetched and applied from the trusted one. */
	index_fake("hello", "4.0.0");
	c2 = head();
	d = run_json(0, "source", "update", "demo");
	s = json_array_get(json_object_get(d, "sources"), 0);
	cr_assert(json_is_true(json_object_get(s, "changed")));
	cr_assert_str_eq(jstr(s, "from"), c1);
	cr_assert_str_eq(jstr(s, "to"), c2);
	cr_assert_eq(json_integer_value(json_object_get(s, "entries")), 5);
	json_decref(d);
	d = run_json(0, "info", "hello");
	cr_assert_str_eq(jstr(json_array_get(json_object_get(d, "available"), 0), "version"), "4.0.0");
	json_decref(d);

	/* Force-pushed: refused, the trusted commit and the index stay. */
	index = fx_all(R, KMPKG_DB_INDEX);
	sh("cd '%s' && " GITENV " git reset -q --hard HEAD~2", REPO);
	index_fake("evil", "1.0.0");
	r = fx_run(R, NULL, "source", "update", "demo", NULL);
	cr_assert_eq(r.status, 4, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "E_SOURCE_FORCE_PUSHED"), "%s", r.err);
	fx_free(&r);
	s = first_source();
	cr_assert_str_eq(jstr(s, "trusted"), c2, "the trusted commit stays");
	json_decref(s);
	d = fx_all(R, KMPKG_DB_INDEX);
	cr_assert(json_equal(d, index), "the index cache is unchanged");
	json_decref(d);

	/* The server gone: a clear code, still nothing changed. */
	daemon_stop();
	d = run_json(1, "source", "update", "demo");
	cr_assert_str_eq(err_code(d), "E_SOURCE_FETCH");
	json_decref(d);
	s = first_source();
	cr_assert_str_eq(jstr(s, "trusted"), c2);
	json_decref(s);
	json_decref(index);
	free(url);
	free(c1);
	free(c2);
}

Test(sources_net, http_backend_add_and_install_by_name)
{
	char *base, *url, *bin;
	json_t *d, *rec;

	http_start();
	base = fmt("--artifact-base http://127.0.0.1:%d/art/good", http_port);
	make_source(base);
	/* A bare repository, as hosting services serve them. */
	sh("git clone -q --bare '%s' '%s/repo.git'", REPO, W);
	url = fmt("http://127.0.0.1:%d/repo.git", http_port);
	d = run_json(0, "source", "add", "demo", url);
	cr_assert_eq(json_integer_value(json_object_get(d, "entries")), 4);
	json_decref(d);
	cr_assert(log_has("/repo.git/info/refs?service=git-upload-pack"), "smart HTTP was used");

	d = run_json(0, "install", "hello@^2");
	cr_assert_str_eq(jstr(d, "outcome"), "committed");
	cr_assert_eq(json_array_size(json_object_get(d, "changes")), 2);
	json_decref(d);
	cr_assert(log_has("GET /art/good/hello-2.0.0.kmpkg"));
	cr_assert(log_has("GET /art/good/json-helpers-1.1.0.kmpkg"));
	bin = fx_path(R, "plugins/hello/bin/hello");
	cr_assert_eq(access(bin, X_OK), 0);
	rec = fx_get(R, KMPKG_DB_INSTALLED, "hello");
	cr_assert_str_eq(jstr(rec, "version"), "2.0.0");
	json_decref(rec);
	free(bin);
	free(url);
	free(base);
}

Test(sources_net, unreachable_source_records_nothing)
{
	const char *schemes[] = { "git://127.0.0.1:%d/repo", "http://127.0.0.1:%d/repo.git" };
	int port = free_port();
	char *clone = NULL;
	json_t *d;
	size_t i;

	for (i = 0; i < 2; i++) {
		char *url = fmt(schemes[i], port);

		d = run_json(1, "source", "add", "gone", url);
		cr_assert_str_eq(err_code(d), "E_SOURCE_FETCH", "%s", url);
		json_decref(d);
		d = run_json(0, "source", "list");
		cr_assert_eq(json_array_size(json_object_get(d, "sources")), 0, "a failed add records nothing");
		json_decref(d);
		clone = fx_path(R, "kmpkg/sources/gone.git");
		cr_assert_eq(access(clone, F_OK), -1, "a failed add leaves no clone");
		free(clone);
		free(url);
	}
}

/* ---- artifacts from a misbehaving server ------------------------------------- */

struct art {
	const char *name; /* plugin, 1.0.0 */
	char sha[65];
	long size;
};

static void sha_file(struct art *a, const char *path)
{
	unsigned char md[EVP_MAX_MD_SIZE], buf[8192];
	unsigned int len = 0, i;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	FILE *f = fopen(path, "rb");
	size_t n;

	cr_assert_not_null(f);
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	a->size = 0;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		EVP_DigestUpdate(c, buf, n);
		a->size += (long)n;
	}
	fclose(f);
	EVP_DigestFinal_ex(c, md, &len);
	EVP_MD_CTX_free(c);
	for (i = 0; i < 32; i++)
		snprintf(a->sha + 2 * i, 3, "%02x", md[i]);
}

/* Packs NAME 1.0.0 into REPO/artifacts and indexes it at
 * /art/<behaviour>/NAME-1.0.0.kmpkg (behaviour "in-repo-missing": at a path
 * in the repository that does not exist); more_yaml goes inside artifact:. */
static void index_art(struct art *a, const char *name, const char *behaviour, const char *more_yaml)
{
	char *pkg = fx_pkg(PKGS, name, "1.0.0", TOOL_OK, NULL), *yaml = fmt("%s/plugins/%s/1.0.0.yaml", REPO, name);
	FILE *f;

	a->name = name;
	sha_file(a, pkg);
	sh("cp '%s' '%s/artifacts/' && mkdir -p '%s/plugins/%s'", pkg, REPO, REPO, name);
	f = fopen(yaml, "w");
	cr_assert_not_null(f);
	fprintf(f, "apiVersion: kmpkg/v1\nname: %s\nversion: 1.0.0\nhealth_check:\n  command: [bin/tool, --health]\n"
		   "artifact:\n", name);
	if (strcmp(behaviour, "in-repo-missing") == 0)
		fprintf(f, "  url: artifacts/not-committed-%s.kmpkg\n", name);
	else
		fprintf(f, "  url: http://127.0.0.1:%d/art/%s/%s-1.0.0.kmpkg\n", http_port, behaviour, name);
	fprintf(f, "  sha256: %s\n  size: %ld\n%s", a->sha, a->size, more_yaml ? more_yaml : "");
	fclose(f);
	free(yaml);
	free(pkg);
}

enum { A_DROPALWAYS, A_ENDLESS, A_SHORT, A_LONG, A_WRONG, A_DROP, A_MIRROR, A_SIG404, A_REPOMIRROR, A_N };
static struct art arts[A_N];

/* A source over git http-backend whose index points at misbehaving routes,
 * and hello 1.0.0 installed from it: the state every failure must keep. */
static void artifact_source(void)
{
	char *base, *url, *more;
	json_t *d;

	sh("mkdir -p '%s'", PKGS);
	http_start();
	base = fmt("--artifact-base http://127.0.0.1:%d/art/good", http_port);
	make_source(base);
	index_art(&arts[A_DROPALWAYS], "p-dropalways", "dropalways", NULL);
	index_art(&arts[A_ENDLESS], "p-endless", "endless", NULL);
	index_art(&arts[A_SHORT], "p-short", "short", NULL);
	index_art(&arts[A_LONG], "p-long", "long", NULL);
	index_art(&arts[A_WRONG], "p-wrong", "wrong", NULL);
	index_art(&arts[A_DROP], "p-drop", "drop", NULL);
	more = fmt("  mirrors:\n    - http://127.0.0.1:%d/art/good/p-mirror-1.0.0.kmpkg\n", http_port);
	index_art(&arts[A_MIRROR], "p-mirror", "404", more);
	free(more);
	more = fmt("  mirrors: [http://127.0.0.1:%d/art/good/p-repomirror-1.0.0.kmpkg]\n", http_port);
	index_art(&arts[A_REPOMIRROR], "p-repomirror", "in-repo-missing", more);
	free(more);
	more = fmt("  signature: http://127.0.0.1:%d/art/404/p-sig404-1.0.0.kmpkg.minisig\n", http_port);
	index_art(&arts[A_SIG404], "p-sig404", "good", more);
	free(more);
	/* A mirror that is not a URL fails the schema: skipped, the rest usable. */
	sh("mkdir -p '%s/plugins/p-badmirror' && printf 'apiVersion: kmpkg/v1\\nname: p-badmirror\\nversion: 1.0.0\\n"
	   "artifact:\\n  url: https://example.invalid/x.kmpkg\\n  sha256: %064d\\n  size: 100\\n"
	   "  mirrors: [ftp://example.invalid/x.kmpkg]\\n' > '%s/plugins/p-badmirror/1.0.0.yaml'",
	   REPO, 7, REPO);
	commit_all("artifacts");
	url = fmt("http://127.0.0.1:%d/repo", http_port);
	d = run_json(0, "source", "add", "demo", url);
	cr_assert_eq(json_array_size(json_object_get(d, "warnings")), 1);
	cr_assert_str_eq(jstr(json_array_get(json_object_get(d, "warnings"), 0), "path"),
			 "plugins/p-badmirror/1.0.0.yaml");
	cr_assert_eq(json_integer_value(json_object_get(d, "entries")), 4 + A_N);
	json_decref(d);
	d = run_json(0, "install", "hello@^1");
	cr_assert_str_eq(jstr(d, "outcome"), "committed");
	json_decref(d);
	free(url);
	free(base);
}

struct snapshot {
	char *link;
	json_t *list;
};

static struct snapshot snap(void)
{
	struct snapshot s;

	s.link = fx_readlink(R, "plugins");
	s.list = run_json(0, "list");
	cr_assert_not_null(s.link);
	return s;
}

static void snap_free(struct snapshot *s)
{
	free(s->link);
	json_decref(s->list);
}

/* The installed set and the active generation are as before; no staging
 * and no unverified file in the cache under the artifact's digest. */
static void assert_unchanged(const struct snapshot *before, const struct art *a, bool verified)
{
	struct snapshot now = snap();
	char *tmp = fx_path(R, "kmpkg/tmp"), *rel = fmt("kmpkg/cache/%s", a->sha), *cached = fx_path(R, rel);

	cr_assert_str_eq(now.link, before->link, "%s: plugins moved", a->name);
	cr_assert(json_equal(now.list, before->list), "%s: kmpkg list changed", a->name);
	cr_assert_leq(fx_count(tmp), 0, "%s: staging left in kmpkg/tmp", a->name);
	if (!verified)
		cr_assert_eq(access(cached, F_OK), -1, "%s: an unverified file is in the cache as %s", a->name, rel);
	snap_free(&now);
	free(tmp);
	free(rel);
	free(cached);
}

/* The download was a phase of a transaction: the newest one for NAME is
 * aborted, with the code and exit status, its download phase failed. */
static void assert_aborted(const char *name, const char *code, int status)
{
	json_t *txns = fx_all(R, KMPKG_DB_TXNS), *t, *hit = NULL;
	const char *k, *newest = "";

	json_object_foreach(txns, k, t) {
		const json_t *tg = json_object_get(t, "targets");

		if (strcmp(k, newest) > 0 && json_is_array(tg) && json_array_size(tg) == 1 &&
		    strcmp(json_string_value(json_array_get(tg, 0)), name) == 0) {
			newest = k;
			hit = t;
		}
	}
	cr_assert_not_null(hit, "%s: no transaction recorded", name);
	cr_assert_str_eq(jstr(hit, "outcome"), "aborted", "%s", name);
	cr_assert_str_eq(jstr(hit, "code"), code, "%s", name);
	cr_assert_eq(json_integer_value(json_object_get(hit, "exit")), status, "%s", name);
	cr_assert_str_eq(jstr(hit, "phase"), "download", "%s: failed in the download phase", name);
	json_decref(txns);
}

Test(sources_net, artifact_faults_leave_state_as_before)
{
	static const struct {
		int which, status;
		const char *code;
	} cases[] = {
		{ A_DROPALWAYS, 1, "E_FETCH_SIZE" },
		{ A_ENDLESS, 1, "E_FETCH_TOO_LARGE" },
		{ A_SHORT, 1, "E_FETCH_SIZE" },
		{ A_LONG, 1, "E_FETCH_TOO_LARGE" },
		{ A_WRONG, 4, "E_FETCH_DIGEST" },
		{ A_SIG404, 1, "E_FETCH_HTTP" },
	};
	struct snapshot before;
	json_t *d;
	size_t i;

	artifact_source();
	before = snap();
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct art *a = &arts[cases[i].which];

		d = run_json(cases[i].status, "install", a->name);
		cr_assert_str_eq(err_code(d), cases[i].code, "%s", a->name);
		if (cases[i].which == A_SIG404) /* the signature's URL failed, not the package's */
			cr_assert_str_eq(jstr(json_object_get(d, "error"), "field"), "/artifact/signature");
		json_decref(d);
		/* A package whose digest matched may stay in the cache. */
		assert_unchanged(&before, a, cases[i].which == A_SIG404);
		assert_aborted(a->name, cases[i].code, cases[i].status);
	}
	cr_assert(log_has("GET /art/404/p-sig404-1.0.0.kmpkg.minisig"));
	/* A wrong digest leaves no partial file to resume from. */
	{
		char *rel = fmt("kmpkg/cache/%s.part", arts[A_WRONG].sha), *part = fx_path(R, rel);

		cr_assert_eq(access(part, F_OK), -1, "the wrong bytes were kept");
		free(rel);
		free(part);
	}
	fx_ok(9, R, NULL, "install", "p-badmirror", NULL);
	snap_free(&before);
}

Test(sources_net, resume_after_a_drop_and_mirror_after_a_404)
{
	json_t *d, *rec;
	char *line;

	artifact_source();
	/* Cut halfway: the retry asks for the rest and the install succeeds. */
	d = run_json(0, "install", "p-drop");
	cr_assert_str_eq(jstr(d, "outcome"), "committed");
	json_decref(d);
	line = fmt("GET /art/drop/p-drop-1.0.0.kmpkg bytes=%ld-", arts[A_DROP].size / 2);
	cr_assert(log_has(line), "the second request resumes at the half");
	free(line);
	/* The first mirror (url) 404s, the second serves it. */
	d = run_json(0, "install", "p-mirror");
	cr_assert_str_eq(jstr(d, "outcome"), "committed");
	json_decref(d);
	cr_assert(log_has("GET /art/404/p-mirror-1.0.0.kmpkg"));
	cr_assert(log_has("GET /art/good/p-mirror-1.0.0.kmpkg"));
	rec = fx_get(R, KMPKG_DB_INSTALLED, "p-mirror");
	cr_assert_not_null(rec);
	cr_assert_str_eq(jstr(rec, "version"), "1.0.0");
	json_decref(rec);
	/* Not in the repository: the mirror serves it. */
	d = run_json(0, "install", "p-repomirror");
	cr_assert_str_eq(jstr(d, "outcome"), "committed");
	json_decref(d);
	cr_assert(log_has("GET /art/good/p-repomirror-1.0.0.kmpkg"));
	rec = fx_get(R, KMPKG_DB_INSTALLED, "hello");
	cr_assert_not_null(rec, "earlier plugins stay installed");
	json_decref(rec);
}

Test(sources_net, signature_url_is_fetched_and_verified)
{
	struct art a, b;
	char *base, *url, *more, *key;
	json_t *d, *rec, *sig;

	if (system("command -v minisign >/dev/null 2>&1") != 0)
		cr_skip_test("minisign is not installed: it makes the test's signature");
	sh("mkdir -p '%s'", PKGS);
	http_start();
	base = fmt("--artifact-base http://127.0.0.1:%d/art/good", http_port);
	make_source(base);
	more = fmt("  signature: http://127.0.0.1:%d/art/good/p-signed-1.0.0.kmpkg.minisig\n", http_port);
	index_art(&a, "p-signed", "good", more);
	sh("cd '%s' && minisign -G -p k.pub -s k.sec -W </dev/null >/dev/null 2>&1 && "
	   "minisign -S -s k.sec -m '%s/artifacts/p-signed-1.0.0.kmpkg' -t 'name=p-signed version=1.0.0' "
	   "</dev/null >/dev/null 2>&1",
	   W, REPO);
	/* Another package with p-signed's signature: fetched, then refused. */
	free(more);
	more = fmt("  signature: http://127.0.0.1:%d/art/good/p-signed-1.0.0.kmpkg.minisig\n", http_port);
	index_art(&b, "p-badsig", "good", more);
	commit_all("signed");
	url = fmt("http://127.0.0.1:%d/repo", http_port);
	fx_ok(0, R, NULL, "source", "add", "demo", url, NULL);
	key = fx_path(W, "k.pub");
	fx_ok(0, R, NULL, "key", "add", key, NULL);
	d = run_json(0, "install", "p-signed");
	cr_assert_str_eq(jstr(d, "outcome"), "committed");
	json_decref(d);
	cr_assert(log_has("GET /art/good/p-signed-1.0.0.kmpkg.minisig"));
	rec = fx_get(R, KMPKG_DB_INSTALLED, "p-signed");
	cr_assert_not_null(rec);
	sig = json_object_get(rec, "signature");
	cr_assert(json_is_object(sig), "the installed record has the signature check: %s", json_dumps(rec, 0));
	cr_assert_str_eq(jstr(sig, "kind"), "minisign");
	json_decref(rec);
	d = run_json(4, "install", "p-badsig");
	cr_assert_eq(strncmp(err_code(d), "E_SIGNATURE", 11), 0, "%s", err_code(d));
	json_decref(d);
	cr_assert_null(fx_get(R, KMPKG_DB_INSTALLED, "p-badsig"));
	free(key);
	free(url);
	free(more);
	free(base);
}
