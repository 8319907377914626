/* fetch: downloads into the cache against tests/unit/fetch_server.py, a
 * misbehaving HTTP server on 127.0.0.1 started per test. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "kmpkg/error.h"
#include "kmpkg/fetch.h"

#define SIZE 200000 /* as in fetch_server.py */

static unsigned char data[SIZE];
static char data_sha[65];
static char tmp[PATH_MAX];
static char cache[PATH_MAX + 16];
static char logpath[PATH_MAX + 16];
static char final_path[PATH_MAX + 100];
static char part_path[PATH_MAX + 100];
static pid_t server = -1;
static int port;

struct prog {
	uint64_t max, total;
	unsigned calls;
};

static void on_progress(void *ctx, uint64_t now, uint64_t total)
{
	struct prog *p = ctx;

	if (now > p->max)
		p->max = now;
	p->total = total;
	p->calls++;
}

static void sha_hex(const unsigned char *p, size_t n, char out[65])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int len = 0, i;

	EVP_Digest(p, n, d, &len, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void server_start(void)
{
	const char *src = getenv("KMPKG_SRCDIR");
	char script[PATH_MAX + 64];
	char line[32] = "";
	sigset_t none;
	FILE *f;
	int p[2];

	snprintf(script, sizeof(script), "%s/tests/unit/fetch_server.py", src ? src : ".");
	cr_assert_eq(pipe(p), 0);
	server = fork();
	cr_assert(server >= 0);
	if (server == 0) {
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGALRM, SIG_DFL);
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl("/usr/bin/python3", "python3", script, logpath, "60", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(line, sizeof(line), f), "fetch_server.py did not report a port");
	fclose(f);
	port = atoi(line);
	cr_assert(port > 0 && port < 65536);
}

static void server_stop(void)
{
	if (server > 0) {
		kill(server, SIGKILL);
		waitpid(server, NULL, 0);
		server = -1;
	}
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	size_t i;

	for (i = 0; i < SIZE; i++)
		data[i] = (unsigned char)((i * 31 + 7) % 251);
	sha_hex(data, SIZE, data_sha);
	strcpy(tmp, "/tmp/kmpkg-fetch-XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(cache, sizeof(cache), "%s/cache", tmp);
	snprintf(logpath, sizeof(logpath), "%s/server.log", tmp);
	snprintf(final_path, sizeof(final_path), "%s/%s", cache, data_sha);
	snprintf(part_path, sizeof(part_path), "%s/%s.part", cache, data_sha);
	server_start();
}

static void teardown(void)
{
	server_stop();
	if (tmp[0])
		nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(fetch, .init = setup, .fini = teardown);

static void url(char *dst, size_t cap, const char *path)
{
	snprintf(dst, cap, "http://127.0.0.1:%d%s", port, path);
}

static void opts(struct kmpkg_fetch_opts *o, const char *const *urls, size_t n, struct prog *p)
{
	kmpkg_fetch_opts_init(o);
	o->urls = urls;
	o->nurls = n;
	o->expect_sha256 = data_sha;
	o->expect_size = SIZE;
	o->cache_dir = cache;
	o->connect_timeout_ms = 2000;
	o->low_speed_bytes = 1000;
	o->low_speed_secs = 3;
	o->total_timeout_ms = 10000;
	o->retries = 0;
	o->backoff_ms = 10;
	if (p) {
		memset(p, 0, sizeof(*p));
		o->progress = on_progress;
		o->progress_ctx = p;
	}
}

static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static long long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* The file holds exactly the server's data. */
static void assert_data(const char *path)
{
	static unsigned char got[SIZE + 1];
	FILE *f = fopen(path, "rb");
	size_t n;

	cr_assert_not_null(f, "cannot open %s", path);
	n = fread(got, 1, sizeof(got), f);
	fclose(f);
	cr_assert_eq(n, SIZE);
	cr_assert(memcmp(got, data, SIZE) == 0, "content of %s differs", path);
}

/* Lines of the server's request log ("PATH RANGE") equal to `line`. */
static int log_count(const char *line)
{
	char buf[512];
	FILE *f = fopen(logpath, "r");
	int n = 0;

	if (!f)
		return 0;
	while (fgets(buf, sizeof(buf), f)) {
		buf[strcspn(buf, "\n")] = '\0';
		if (strcmp(buf, line) == 0)
			n++;
	}
	fclose(f);
	return n;
}

/* Entries in the cache directory, "." and ".." aside. */
static int cache_entries(void)
{
	DIR *d = opendir(cache);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void write_file(const char *path, const unsigned char *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f, "cannot create %s", path);
	cr_assert_eq(fwrite(p, 1, n, f), n);
	cr_assert_eq(fclose(f), 0);
}

static const char *code(void)
{
	return kmpkg_error_last()->code;
}

static const char *msg(void)
{
	return kmpkg_error_last()->message;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(fetch, good_download_lands_in_cache)
{
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	struct prog p;
	char *out = NULL;

	url(u, sizeof(u), "/good");
	opts(&o, urls, 1, &p);
	cr_assert_eq(kmpkg_fetch(&out, &o), 0, "%s", msg());
	cr_assert_str_eq(out, final_path);
	assert_data(out);
	cr_assert(!exists(part_path));
	cr_assert_eq(p.max, SIZE);
	cr_assert_eq(p.total, SIZE);
	cr_assert_eq(log_count("/good -"), 1);
	free(out);
}

Test(fetch, uppercase_digest_accepted)
{
	char u[128], upper[65];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;
	int i;

	for (i = 0; i < 65; i++)
		upper[i] = (data_sha[i] >= 'a' && data_sha[i] <= 'f') ? (char)(data_sha[i] - 32) : data_sha[i];
	url(u, sizeof(u), "/good");
	opts(&o, urls, 1, NULL);
	o.expect_sha256 = upper;
	cr_assert_eq(kmpkg_fetch(&out, &o), 0, "%s", msg());
	cr_assert_str_eq(out, final_path);
	free(out);
}

Test(fetch, cached_hit_needs_no_network)
{
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	url(u, sizeof(u), "/good");
	opts(&o, urls, 1, NULL);
	cr_assert_eq(kmpkg_fetch(&out, &o), 0, "%s", msg());
	free(out);
	out = NULL;
	server_stop();
	cr_assert_eq(kmpkg_fetch(&out, &o), 0, "%s", msg());
	cr_assert_str_eq(out, final_path);
	assert_data(out);
	free(out);
}

Test(fetch, corrupt_cache_entry_is_fetched_again)
{
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;
	FILE *f;

	cr_assert_eq(mkdir(cache, 0755), 0);
	f = fopen(final_path, "wb");
	cr_assert_not_null(f);
	data[5] ^= 1;
	fwrite(data, 1, SIZE, f);
	data[5] ^= 1;
	fclose(f);
	url(u, sizeof(u), "/good");
	opts(&o, urls, 1, NULL);
	cr_assert_eq(kmpkg_fetch(&out, &o), 0, "%s", msg());
	assert_data(out);
	cr_assert_eq(log_count("/good -"), 1);
	free(out);
}

Test(fetch, not_found_moves_to_next_mirror_without_retry)
{
	char u1[128], u2[128];
	const char *urls[2] = { u1, u2 };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	url(u1, sizeof(u1), "/404");
	url(u2, sizeof(u2), "/good");
	opts(&o, urls, 2, NULL);
	o.retries = 3;
	cr_assert_eq(kmpkg_fetch(&out, &o), 0, "%s", msg());
	assert_data(out);
	cr_assert_eq(log_count("/404 -"), 1);
	cr_assert_eq(log_count("/good -"), 1);
	free(out);
}

Test(fetch, all_mirrors_failing_reports_last_and_count)
{
	char u1[128], u2[128];
	const char *urls[2] = { u1, u2 };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	url(u1, sizeof(u1), "/404");
	url(u2, sizeof(u2), "/missing");
	opts(&o, urls, 2, NULL);
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_EGENERIC);
	cr_assert_null(out);
	cr_assert_str_eq(code(), "E_FETCH_HTTP");
	cr_assert(strstr(msg(), "2 mirrors tried") != NULL, "%s", msg());
	cr_assert(strstr(msg(), "HTTP 404") != NULL, "%s", msg());
	cr_assert(strstr(msg(), u2) != NULL, "%s", msg());
	cr_assert(kmpkg_error_last()->next_step[0] != '\0');
	cr_assert(!exists(part_path));
	cr_assert(!exists(final_path));
}

Test(fetch, server_error_is_retried)
{
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	url(u, sizeof(u), "/flaky");
	opts(&o, urls, 1, NULL);
	o.retries = 2;
	cr_assert_eq(kmpkg_fetch(&out, &o), 0, "%s", msg());
	assert_data(out);
	cr_assert_eq(log_count("/flaky -"), 2);
	free(out);
}

Test(fetch, endless_body_stops_at_cap)
{
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	struct prog p;
	char *out = NULL;
	double t0 = now_s();

	url(u, sizeof(u), "/endless");
	opts(&o, urls, 1, &p);
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_FETCH_TOO_LARGE");
	cr_assert(strstr(msg(), u) != NULL, "%s", msg());
	cr_assert(p.max <= SIZE, "held %llu bytes", (unsigned long long)p.max);
	cr_assert(p.max > 0);
	cr_assert(now_s() - t0 < 5.0);
	cr_assert_eq(cache_entries(), 0);
}

Test(fetch, announced_length_over_cap_is_refused)
{
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	struct prog p;
	char *out = NULL;

	url(u, sizeof(u), "/biglen");
	opts(&o, urls, 1, &p);
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_FETCH_TOO_LARGE");
	cr_assert_eq(p.max, 0);
	cr_assert_eq(cache_entries(), 0);
}

Test(fetch, dropped_transfer_resumes_with_range)
{
	char u[128], line[160];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;
	long long part;

	url(u, sizeof(u), "/drop");
	opts(&o, urls, 1, NULL);
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_FETCH_SIZE");
	cr_assert(strstr(msg(), u) != NULL, "%s", msg());
	part = file_size(part_path);
	cr_assert(part > 0 && part < SIZE, "part is %lld bytes", part);
	cr_assert(!exists(final_path));

	cr_assert_eq(kmpkg_fetch(&out, &o), 0, "%s", msg());
	assert_data(out);
	cr_assert(!exists(part_path));
	snprintf(line, sizeof(line), "/drop bytes=%lld-", part);
	cr_assert_eq(log_count("/drop -"), 1);
	cr_assert_eq(log_count(line), 1);
	free(out);
}

Test(fetch, dropped_transfer_resumes_within_one_call)
{
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	url(u, sizeof(u), "/drop");
	opts(&o, urls, 1, NULL);
	o.retries = 1;
	cr_assert_eq(kmpkg_fetch(&out, &o), 0, "%s", msg());
	assert_data(out);
	cr_assert_eq(log_count("/drop -"), 1);
	cr_assert_eq(log_count("/drop bytes=100000-"), 1);
	free(out);
}

Test(fetch, ignored_range_restarts_from_zero)
{
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	url(u, sizeof(u), "/drop-norange");
	opts(&o, urls, 1, NULL);
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_FETCH_SIZE");
	cr_assert(exists(part_path));
	cr_assert_eq(kmpkg_fetch(&out, &o), 0, "%s", msg());
	assert_data(out);
	cr_assert_eq(log_count("/drop-norange bytes=100000-"), 1);
	free(out);
}

Test(fetch, wrong_hash_leaves_nothing)
{
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	url(u, sizeof(u), "/wrong");
	opts(&o, urls, 1, NULL);
	o.retries = 2;
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_EVERIFY);
	cr_assert_null(out);
	cr_assert_str_eq(code(), "E_FETCH_DIGEST");
	cr_assert_str_eq(kmpkg_error_last()->field, "/artifact/sha256");
	cr_assert(strstr(msg(), u) != NULL, "%s", msg());
	cr_assert(strstr(msg(), data_sha) != NULL, "%s", msg());
	cr_assert_eq(log_count("/wrong -"), 1); /* wrong content is not retried */
	cr_assert(!exists(part_path));
	cr_assert(!exists(final_path));
	cr_assert_eq(cache_entries(), 0);
}

Test(fetch, wrong_mirror_then_good_mirror)
{
	char u1[128], u2[128];
	const char *urls[2] = { u1, u2 };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	url(u1, sizeof(u1), "/wrong");
	url(u2, sizeof(u2), "/good");
	opts(&o, urls, 2, NULL);
	cr_assert_eq(kmpkg_fetch(&out, &o), 0, "%s", msg());
	assert_data(out);
	free(out);
}

Test(fetch, digest_failure_is_named_after_later_mirror_fails)
{
	char u1[128], u2[128];
	const char *urls[2] = { u1, u2 };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	url(u1, sizeof(u1), "/wrong");
	url(u2, sizeof(u2), "/404");
	opts(&o, urls, 2, NULL);
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_FETCH_HTTP");
	cr_assert(strstr(msg(), "wrong sha256") != NULL, "%s", msg());
	cr_assert_eq(cache_entries(), 0);
}

Test(fetch, corrupt_prefix_is_not_resumed_twice)
{
	static unsigned char junk[SIZE / 2];
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	memset(junk, 'x', sizeof(junk));
	cr_assert_eq(mkdir(cache, 0755), 0);
	write_file(part_path, junk, sizeof(junk));
	url(u, sizeof(u), "/good");
	opts(&o, urls, 1, NULL);
	cr_assert_eq(kmpkg_fetch(&out, &o), 0, "%s", msg());
	assert_data(out);
	cr_assert_eq(log_count("/good bytes=100000-"), 1);
	cr_assert_eq(log_count("/good -"), 1);
	free(out);
}

Test(fetch, complete_part_is_published_without_network)
{
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	cr_assert_eq(mkdir(cache, 0755), 0);
	write_file(part_path, data, SIZE);
	server_stop();
	url(u, sizeof(u), "/good");
	opts(&o, urls, 1, NULL);
	cr_assert_eq(kmpkg_fetch(&out, &o), 0, "%s", msg());
	assert_data(out);
	cr_assert(!exists(part_path));
	free(out);
}

Test(fetch, short_complete_body_is_size_error)
{
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	url(u, sizeof(u), "/short");
	opts(&o, urls, 1, NULL);
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_FETCH_SIZE");
	cr_assert_str_eq(kmpkg_error_last()->field, "/artifact/size");
	cr_assert(!exists(final_path));
}

Test(fetch, slow_server_times_out)
{
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;
	double t0 = now_s();

	url(u, sizeof(u), "/slow");
	opts(&o, urls, 1, NULL);
	o.low_speed_secs = 1;
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_FETCH_TIMEOUT");
	cr_assert(strstr(msg(), u) != NULL, "%s", msg());
	cr_assert(now_s() - t0 < 4.0, "took %.1f s", now_s() - t0);
	cr_assert(!exists(final_path));
}

Test(fetch, file_url)
{
	char src[PATH_MAX + 16], u[PATH_MAX + 32];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	snprintf(src, sizeof(src), "%s/artifact.kmpkg", tmp);
	write_file(src, data, SIZE);
	snprintf(u, sizeof(u), "file://%s", src);
	opts(&o, urls, 1, NULL);
	cr_assert_eq(kmpkg_fetch(&out, &o), 0, "%s", msg());
	assert_data(out);
	free(out);
}

Test(fetch, file_url_missing)
{
	char u[PATH_MAX + 32];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	snprintf(u, sizeof(u), "file://%s/nope.kmpkg", tmp);
	opts(&o, urls, 1, NULL);
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_FETCH_UNREACHABLE");
	cr_assert_eq(cache_entries(), 0);
}

Test(fetch, unreachable_port_fails_fast)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;
	double t0;
	int s;

	/* A port that was free a moment ago: nothing listens there. */
	s = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(s >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(s, (struct sockaddr *)&a, &len), 0);
	close(s);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/good", ntohs(a.sin_port));
	opts(&o, urls, 1, NULL);
	o.retries = 2;
	t0 = now_s();
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_FETCH_UNREACHABLE");
	cr_assert(strstr(msg(), u) != NULL, "%s", msg());
	cr_assert(strstr(msg(), "1 mirror tried") != NULL, "%s", msg());
	cr_assert(now_s() - t0 < 2.0);
	cr_assert_eq(cache_entries(), 0);
}

Test(fetch, redirect_is_followed)
{
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	url(u, sizeof(u), "/redirect");
	opts(&o, urls, 1, NULL);
	cr_assert_eq(kmpkg_fetch(&out, &o), 0, "%s", msg());
	assert_data(out);
	free(out);
}

Test(fetch, redirect_to_file_is_refused)
{
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	url(u, sizeof(u), "/redirect-file");
	opts(&o, urls, 1, NULL);
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_FETCH_URL");
}

Test(fetch, redirect_loop_is_bounded)
{
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	url(u, sizeof(u), "/loop");
	opts(&o, urls, 1, NULL);
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_FETCH_REDIRECT");
	cr_assert(log_count("/loop -") <= 6);
}

Test(fetch, other_schemes_are_refused)
{
	const char *urls[1] = { "ftp://127.0.0.1/x.kmpkg" };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	opts(&o, urls, 1, NULL);
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_FETCH_URL");
}

Test(fetch, credentials_are_not_in_messages)
{
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	snprintf(u, sizeof(u), "http://user:s3cret@127.0.0.1:%d/404", port);
	opts(&o, urls, 1, NULL);
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_FETCH_HTTP");
	cr_assert(strstr(msg(), "s3cret") == NULL, "%s", msg());
	cr_assert(strstr(msg(), "/404") != NULL, "%s", msg());
}

Test(fetch, bad_options_are_refused)
{
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	url(u, sizeof(u), "/good");
	opts(&o, urls, 1, NULL);
	o.expect_sha256 = "abc";
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_FETCH_ARGS");
	opts(&o, urls, 1, NULL);
	o.expect_size = 0;
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_FETCH_ARGS");
	opts(&o, urls, 0, NULL);
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_EGENERIC);
	cr_assert_str_eq(code(), "E_FETCH_ARGS");
	cr_assert_eq(log_count("/good -"), 0);
}

Test(fetch, unusable_cache_dir_is_resource_error)
{
	char u[128];
	const char *urls[1] = { u };
	struct kmpkg_fetch_opts o;
	char *out = NULL;

	url(u, sizeof(u), "/good");
	opts(&o, urls, 1, NULL);
	o.cache_dir = "/dev/null/cache";
	cr_assert_eq(kmpkg_fetch(&out, &o), KMPKG_ERESOURCE);
	cr_assert_null(out);
}
