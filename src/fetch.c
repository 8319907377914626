/*
 * Artifact downloads (include/kmpkg/fetch.h).
 *
 * One call walks the mirrors in order. Each attempt:
 *   1. re-hashes <sha>.part from disk (the resumable prefix); a prefix that is
 *      already complete is checked and published without network;
 *   2. asks for the rest with "Range: bytes=<size>-" (http/https only; file://
 *      always starts from zero) and streams the body into the .part while
 *      hashing it. The first body byte decides: 206 must start exactly at our
 *      offset, any other success status means the server ignored the Range and
 *      the .part starts over. A body that would pass expect_size is cut off by
 *      the write callback (libcurl's MAXFILESIZE only sees Content-Length);
 *   3. on a complete body checks size and SHA-256, fsyncs, renames to <sha>,
 *      fsyncs the directory.
 * The outcome of an attempt says what comes next (enum next): a transient
 * failure retries the same mirror after a backoff and keeps the prefix; wrong
 * content found after a resume empties the .part and retries that mirror once
 * from zero (so a corrupt prefix is never resumed again); wrong content from
 * zero, HTTP 4xx, TLS and URL errors move to the next mirror; a disk error
 * stops everything. An empty .part is removed when the call fails.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli.h" /* KMPKG_VERSION, for the User-Agent */
#include "kmpkg/buf.h"
#include "kmpkg/error.h"
#include "kmpkg/fetch.h"
#include "kmpkg/fsutil.h"
#include "kmpkg/sha256.h"

#define BACKOFF_CAP_MS 30000u
#define MAX_REDIRECTS 5L

enum next {
	NEXT_DONE,    /* published in the cache */
	NEXT_RETRY,   /* transient: same mirror after a backoff, prefix kept */
	NEXT_RESTART, /* the resumed prefix proved wrong: .part emptied, same mirror again */
	NEXT_MIRROR,  /* this mirror cannot serve the artifact */
	NEXT_FAIL,    /* local failure: stop */
};

struct fetch {
	const struct kmpkg_fetch_opts *o;
	char sha[65];         /* expected digest, lowercase */
	char *final_path;     /* <cache>/<sha> */
	char *part_path;      /* <cache>/<sha>.part */
	int fd;               /* the .part, open for the whole call */
	struct kmpkg_sha256 md; /* SHA-256 of the .part's first `off` bytes */
	uint64_t off;         /* bytes in the .part */
	uint64_t resume_from; /* offset this attempt asked for */
	CURL *h;              /* this attempt's handle */
	int is_http;
	int started;          /* this attempt saw its first body byte */
	int64_t cr_start;     /* Content-Range start of the current response, or -1 */
	int too_large, bad_range, io_errno;
	unsigned digest_mismatches;
	char url[512];        /* the current URL without credentials, for messages */
	char errbuf[CURL_ERROR_SIZE];
};

/* The libcurl entry points used here, filled once by curl_init(). */
static struct {
	CURLcode (*global_init)(long flags);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *h, CURLoption opt, ...);
	CURLcode (*easy_perform)(CURL *h);
	CURLcode (*easy_getinfo)(CURL *h, CURLINFO info, ...);
	void (*easy_cleanup)(CURL *h);
	const char *(*easy_strerror)(CURLcode cc);
} cu;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_ready;
static char curl_init_error[256];

/* libcurl is loaded only when a fetch happens (kmpkg does not link it).
 * Two reasons. Start-up: libcurl and the 20-odd libraries it pulls in
 * (GSSAPI, LDAP, RTMP, SSH, PSL, IDN, nghttp2...) cost about 4 ms per process
 * to map and initialise, which every `list`, `status` or `rollback` would pay
 * for nothing. And in test builds (Zig's clang instrumentation with GCC's
 * libasan) the constructor of libp11-kit, pulled in through GnuTLS, corrupts
 * glibc's setlocale lock when it runs before main, and every Criterion worker
 * hangs in exit(); loaded after main it is harmless. */
static int sym(void *lib, const char *name, void *fnptr)
{
	void *p = dlsym(lib, name);

	if (!p)
		return -1;
	memcpy(fnptr, &p, sizeof(p));
	return 0;
}

static int curl_resolve(void)
{
	void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);

	if (!lib) {
		snprintf(curl_init_error, sizeof(curl_init_error), "%s", dlerror());
		return -1;
	}
	if (sym(lib, "curl_global_init", &cu.global_init) || sym(lib, "curl_easy_init", &cu.easy_init) ||
	    sym(lib, "curl_easy_setopt", &cu.easy_setopt) || sym(lib, "curl_easy_perform", &cu.easy_perform) ||
	    sym(lib, "curl_easy_getinfo", &cu.easy_getinfo) || sym(lib, "curl_easy_cleanup", &cu.easy_cleanup) ||
	    sym(lib, "curl_easy_strerror", &cu.easy_strerror)) {
		snprintf(curl_init_error, sizeof(curl_init_error), "libcurl.so.4 lacks an entry point");
		return -1;
	}
	return 0;
}

static void curl_init(void)
{
	CURLcode cc;

	if (curl_resolve() != 0)
		return;
	cc = cu.global_init(CURL_GLOBAL_DEFAULT);
	if (cc != CURLE_OK) {
		snprintf(curl_init_error, sizeof(curl_init_error), "%s", cu.easy_strerror(cc));
		return;
	}
	curl_ready = 1;
}

void kmpkg_fetch_opts_init(struct kmpkg_fetch_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->connect_timeout_ms = 10000;
	o->low_speed_bytes = 1024;
	o->low_speed_secs = 30;
	o->total_timeout_ms = 0;
	o->retries = 2;
	o->backoff_ms = 500;
}

/* Copies url into dst with any user:password@ replaced by "***@". */
static void redact(char *dst, size_t cap, const char *url)
{
	const char *p = strstr(url, "://");
	const char *end, *at = NULL, *q;

	if (!p) {
		snprintf(dst, cap, "%s", url);
		return;
	}
	p += 3;
	end = p + strcspn(p, "/?#");
	for (q = p; q < end; q++)
		if (*q == '@')
			at = q;
	if (!at)
		snprintf(dst, cap, "%s", url);
	else
		snprintf(dst, cap, "%.*s***%s", (int)(p - url), url, at);
}

static int has_scheme(const char *url, const char *scheme)
{
	size_t n = strlen(scheme);

	return strncasecmp(url, scheme, n) == 0 && strncmp(url + n, "://", 3) == 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Feeds fd from its current offset to EOF into md; *n gets the byte count. */
static int hash_rest(int fd, struct kmpkg_sha256 *md, uint64_t *n)
{
	char buf[16384];
	ssize_t r;

	*n = 0;
	for (;;) {
		r = read(fd, buf, sizeof(buf));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (r == 0)
			return 0;
		kmpkg_sha256_update(md, buf, (size_t)r);
		*n += (uint64_t)r;
	}
}

static int ensure_dir(const char *dir)
{
	return kmpkg_fsutil_mkdir(dir, 0755);
}

/* A cached <sha> that re-hashes correctly sets *hit; one that does not is
 * deleted (a cache holds only verified files). */
static int check_cached(struct fetch *f, int *hit)
{
	struct kmpkg_sha256 md;
	struct stat st;
	char hex[65];
	uint64_t n = 0;
	int fd = -1, ret = 0, err;

	*hit = 0;
	fd = open(f->final_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			goto cleanup;
		if (errno != ELOOP) {
			ret = kmpkg_error_errno(errno, "open", f->final_path);
			goto cleanup;
		}
		goto stale;
	}
	if (fstat(fd, &st) != 0) {
		ret = kmpkg_error_errno(errno, "stat", f->final_path);
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->o->expect_size)
		goto stale;
	kmpkg_sha256_init(&md);
	err = hash_rest(fd, &md, &n);
	if (err) {
		ret = kmpkg_error_errno(err, "read", f->final_path);
		goto cleanup;
	}
	kmpkg_sha256_hex(&md, hex);
	if (n == f->o->expect_size && strcmp(hex, f->sha) == 0) {
		*hit = 1;
		goto cleanup;
	}
stale:
	if (unlink(f->final_path) != 0 && errno != ENOENT)
		ret = kmpkg_error_errno(errno, "remove corrupt cache entry", f->final_path);
cleanup:
	if (fd >= 0)
		close(fd);
	return ret;
}

/* Empties the .part and the running hash: the next byte written is byte 0. */
static int part_reset(struct fetch *f)
{
	if (ftruncate(f->fd, 0) != 0)
		return kmpkg_error_errno(errno, "truncate", f->part_path);
	if (lseek(f->fd, 0, SEEK_SET) != 0)
		return kmpkg_error_errno(errno, "seek", f->part_path);
	kmpkg_sha256_init(&f->md);
	f->off = 0;
	return 0;
}

/* Called once the .part holds expect_size bytes: consumes the hash. On a match
 * the file is made durable under its final name and *ok set. */
static int publish_if_valid(struct fetch *f, int *ok, char hex[65])
{
	int rc;

	*ok = 0;
	kmpkg_sha256_hex(&f->md, hex);
	if (strcmp(hex, f->sha) != 0)
		return 0;
	/* The durable-write helper: fsync, close, rename, fsync of the cache. */
	rc = kmpkg_fsutil_commit_temp(f->fd, f->part_path, f->final_path);
	f->fd = -1;
	if (rc == 0)
		*ok = 1;
	return rc;
}

static void progress(struct fetch *f)
{
	if (f->o->progress)
		f->o->progress(f->o->progress_ctx, f->off, f->o->expect_size);
}

/* Re-reads the .part: the prefix this attempt resumes from. A prefix that is
 * already whole is verified here; *done is set when it got published. */
static int part_prepare(struct fetch *f, int *done)
{
	char hex[65];
	uint64_t n = 0;
	int ret, err, ok = 0;

	*done = 0;
	if (lseek(f->fd, 0, SEEK_SET) != 0)
		return kmpkg_error_errno(errno, "seek", f->part_path);
	kmpkg_sha256_init(&f->md);
	err = hash_rest(f->fd, &f->md, &n);
	if (err)
		return kmpkg_error_errno(err, "read", f->part_path);
	f->off = n;
	if (f->off == f->o->expect_size) {
		ret = publish_if_valid(f, &ok, hex);
		if (ret || ok) {
			*done = ok;
			return ret;
		}
	}
	/* Over-long or wrong whole prefixes are useless; file:// is local and
	 * always read from the start. */
	if (f->off >= f->o->expect_size || !f->is_http) {
		ret = part_reset(f);
		if (ret)
			return ret;
	}
	return 0;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *ud)
{
	struct fetch *f = ud;
	size_t len = size * nitems;
	char line[128];
	char *p, *end;
	unsigned long long start;

	if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		/* A new response (after a redirect, or a 1xx) starts afresh. */
		f->cr_start = -1;
		return len;
	}
	if (len < 14 || strncasecmp(buf, "Content-Range:", 14) != 0)
		return len;
	snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) ? len : sizeof(line) - 1), buf);
	p = line + 14;
	p += strspn(p, " \t");
	if (strncasecmp(p, "bytes", 5) != 0)
		return len;
	p += 5;
	p += strspn(p, " \t");
	if (*p < '0' || *p > '9')
		return len;
	errno = 0;
	start = strtoull(p, &end, 10);
	if (errno == 0 && *end == '-' && start <= INT64_MAX)
		f->cr_start = (int64_t)start;
	return len;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct fetch *f = ud;
	size_t len = size * nmemb;
	long code = 0;
	int err;

	if (!f->started) {
		f->started = 1;
		if (f->is_http) {
			cu.easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &code);
			if (code == 206) {
				if (f->cr_start < 0 || (uint64_t)f->cr_start != f->off) {
					f->bad_range = 1;
					return 0;
				}
			} else if (f->off > 0) {
				/* The server ignored the Range: the body is the whole file. */
				if (ftruncate(f->fd, 0) != 0 || lseek(f->fd, 0, SEEK_SET) != 0) {
					f->io_errno = errno;
					return 0;
				}
				kmpkg_sha256_init(&f->md);
				f->off = 0;
				f->resume_from = 0;
			}
		}
	}
	/* The endless-data defence: never hold more than the index promised. */
	if (len > f->o->expect_size - f->off) {
		f->too_large = 1;
		return 0;
	}
	err = write_all(f->fd, ptr, len);
	if (err) {
		f->io_errno = err;
		return 0;
	}
	kmpkg_sha256_update(&f->md, ptr, len);
	f->off += len;
	progress(f);
	return len;
}

static const char *curl_detail(struct fetch *f, CURLcode cc)
{
	return f->errbuf[0] ? f->errbuf : cu.easy_strerror(cc);
}

/* Turns a failed transfer into an error and what to do next. */
static int classify(struct fetch *f, CURLcode cc, enum next *next)
{
	const char *nstep_retry = "check the network connection and proxy settings, then retry";
	long status = 0;
	int resumed = f->resume_from > 0;

	switch (cc) {
	case CURLE_HTTP_RETURNED_ERROR:
		cu.easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &status);
		if (status == 416 && resumed)
			*next = NEXT_RESTART;
		else if (status == 408 || status == 429 || status >= 500)
			*next = NEXT_RETRY;
		else
			*next = NEXT_MIRROR;
		return kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_HTTP", "/artifact/url",
				       status >= 500 ? "the server failed; retry later"
						     : "the artifact URL is wrong or the file was removed: run "
						       "`kmpkg source update`, or tell the source's maintainer",
				       "HTTP %ld from %s", status, f->url);
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		*next = NEXT_RETRY;
		return kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_UNREACHABLE", "/artifact/url", nstep_retry,
				       "cannot reach %s: %s", f->url, curl_detail(f, cc));
	case CURLE_FILE_COULDNT_READ_FILE:
		*next = NEXT_MIRROR;
		return kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_UNREACHABLE", "/artifact/url",
				       "check that the file exists and is readable",
				       "cannot read %s: %s", f->url, curl_detail(f, cc));
	case CURLE_OPERATION_TIMEDOUT:
		*next = NEXT_RETRY;
		return kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_TIMEOUT", "/artifact/url",
				       "the server is too slow or unreachable; retry later (the download resumes)",
				       "timed out fetching %s after %" PRIu64 " of %" PRIu64 " bytes: %s", f->url,
				       f->off, f->o->expect_size, curl_detail(f, cc));
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		*next = NEXT_RETRY;
		if (f->off > f->resume_from || cc == CURLE_PARTIAL_FILE)
			return kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_SIZE", "/artifact/size",
					       "retry: the download resumes where it stopped",
					       "transfer from %s ended after %" PRIu64 " of %" PRIu64 " bytes: %s",
					       f->url, f->off, f->o->expect_size, curl_detail(f, cc));
		return kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_UNREACHABLE", "/artifact/url", nstep_retry,
				       "connection to %s failed: %s", f->url, curl_detail(f, cc));
	case CURLE_TOO_MANY_REDIRECTS:
		*next = NEXT_MIRROR;
		return kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_REDIRECT", "/artifact/url",
				       "fix the artifact URL in the source index",
				       "more than %ld redirects from %s", MAX_REDIRECTS, f->url);
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		*next = NEXT_MIRROR;
		return kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_URL", "/artifact/url",
				       "use an http, https or file URL (redirects: http or https, never "
				       "https to http)",
				       "refused URL %s: %s", f->url, curl_detail(f, cc));
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
		*next = NEXT_MIRROR;
		return kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_TLS", "/artifact/url",
				       "check the system CA certificates and the URL's host name",
				       "TLS verification failed for %s: %s", f->url, curl_detail(f, cc));
	case CURLE_OUT_OF_MEMORY:
		*next = NEXT_FAIL;
		return kmpkg_error_errno(ENOMEM, "download", f->url);
	default:
		*next = NEXT_MIRROR;
		return kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_UNREACHABLE", "/artifact/url", nstep_retry,
				       "fetching %s failed: %s", f->url, curl_detail(f, cc));
	}
}

static int setup_handle(struct fetch *f, const char *url)
{
	const struct kmpkg_fetch_opts *o = f->o;
	char range[32];
	CURLcode sc = CURLE_OK;

	f->h = cu.easy_init();
	if (!f->h)
		return kmpkg_error_errno(ENOMEM, "initialise libcurl for", f->url);
#define SET(opt, val) (sc = sc != CURLE_OK ? sc : cu.easy_setopt(f->h, opt, val))
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, "http,https,file");
	/* No redirect to file://, and none from https down to http. */
	SET(CURLOPT_REDIR_PROTOCOLS_STR, has_scheme(url, "https") ? "https" : "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 1L);
	SET(CURLOPT_MAXREDIRS, MAX_REDIRECTS);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_FAILONERROR, 1L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_USERAGENT, "kmpkg/" KMPKG_VERSION);
	SET(CURLOPT_ERRORBUFFER, f->errbuf);
	SET(CURLOPT_WRITEFUNCTION, write_cb);
	SET(CURLOPT_WRITEDATA, f);
	SET(CURLOPT_HEADERFUNCTION, header_cb);
	SET(CURLOPT_HEADERDATA, f);
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->expect_size);
	if (o->connect_timeout_ms > 0)
		SET(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
	if (o->low_speed_bytes > 0 && o->low_speed_secs > 0) {
		SET(CURLOPT_LOW_SPEED_LIMIT, o->low_speed_bytes);
		SET(CURLOPT_LOW_SPEED_TIME, o->low_speed_secs);
	}
	if (o->total_timeout_ms > 0)
		SET(CURLOPT_TIMEOUT_MS, o->total_timeout_ms);
	if (f->off > 0) {
		/* CURLOPT_RANGE rather than RESUME_FROM: a 200 reply is ours to handle. */
		snprintf(range, sizeof(range), "%" PRIu64 "-", f->off);
		SET(CURLOPT_RANGE, range);
	}
#undef SET
	if (sc != CURLE_OK)
		return kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_ARGS", NULL,
				       "install a libcurl of version 7.85 or later with http, https and file",
				       "libcurl refused an option for %s: %s", f->url, cu.easy_strerror(sc));
	return 0;
}

/* One transfer from one URL; *next says what the caller does after it. */
static int attempt(struct fetch *f, const char *url, enum next *next)
{
	char hex[65];
	CURLcode cc;
	int ret = 0, done = 0, ok = 0;

	*next = NEXT_FAIL;
	redact(f->url, sizeof(f->url), url);
	f->is_http = !has_scheme(url, "file");
	f->started = 0;
	f->cr_start = -1;
	f->too_large = f->bad_range = f->io_errno = 0;
	f->errbuf[0] = '\0';

	ret = part_prepare(f, &done);
	if (ret)
		goto cleanup;
	if (done) {
		*next = NEXT_DONE;
		goto cleanup;
	}
	f->resume_from = f->off;
	progress(f);
	ret = setup_handle(f, url);
	if (ret)
		goto cleanup;
	cc = cu.easy_perform(f->h);

	if (f->io_errno) {
		ret = kmpkg_error_errno(f->io_errno, "write", f->part_path);
		goto cleanup;
	}
	if (f->too_large || cc == CURLE_FILESIZE_EXCEEDED) {
		ret = part_reset(f);
		if (ret)
			goto cleanup;
		*next = f->resume_from > 0 ? NEXT_RESTART : NEXT_MIRROR;
		ret = kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_TOO_LARGE", "/artifact/size",
				      "the mirror serves another file than the source index describes: run "
				      "`kmpkg source update`, or tell the source's maintainer",
				      "%s sent more than the expected %" PRIu64 " bytes", f->url,
				      f->o->expect_size);
		goto cleanup;
	}
	if (f->bad_range) {
		ret = part_reset(f);
		if (ret)
			goto cleanup;
		*next = f->resume_from > 0 ? NEXT_RESTART : NEXT_MIRROR;
		ret = kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_HTTP", "/artifact/url", "retry later",
				      "%s answered a range request from byte %" PRIu64
				      " with another range",
				      f->url, f->resume_from);
		goto cleanup;
	}
	if (cc != CURLE_OK) {
		ret = classify(f, cc, next);
		if (*next == NEXT_RESTART) {
			int r2 = part_reset(f);

			if (r2) {
				*next = NEXT_FAIL;
				ret = r2;
			}
		}
		goto cleanup;
	}
	if (f->off < f->o->expect_size) {
		/* A close-delimited body that stopped early looks like this too:
		 * keep the prefix, a retry resumes it. */
		*next = NEXT_RETRY;
		ret = kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_SIZE", "/artifact/size",
				      "retry: the download resumes where it stopped",
				      "%s ended after %" PRIu64 " of %" PRIu64 " bytes", f->url, f->off,
				      f->o->expect_size);
		goto cleanup;
	}
	ret = publish_if_valid(f, &ok, hex);
	if (ret)
		goto cleanup;
	if (ok) {
		*next = NEXT_DONE;
		goto cleanup;
	}
	f->digest_mismatches++;
	ret = part_reset(f);
	if (ret)
		goto cleanup;
	*next = f->resume_from > 0 ? NEXT_RESTART : NEXT_MIRROR;
	ret = kmpkg_error_set(KMPKG_EVERIFY, "E_FETCH_DIGEST", "/artifact/sha256",
			      "the mirror serves another file than the source index describes: do not use it; "
			      "run `kmpkg source update` and retry",
			      "%s: sha256 %s, expected %s", f->url, hex, f->sha);
cleanup:
	if (f->h) {
		cu.easy_cleanup(f->h);
		f->h = NULL;
	}
	return ret;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static uint64_t backoff(const struct kmpkg_fetch_opts *o, unsigned retry)
{
	uint64_t d = o->backoff_ms;
	unsigned i;

	for (i = 0; i < retry && d < BACKOFF_CAP_MS; i++)
		d *= 2;
	return d < BACKOFF_CAP_MS ? d : BACKOFF_CAP_MS;
}

static int check_opts(const struct kmpkg_fetch_opts *o, char sha[65])
{
	size_t i;

	if (!o->urls || o->nurls == 0 || !o->cache_dir || !o->cache_dir[0])
		return kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_ARGS", "/artifact/url", NULL,
				       "fetch needs at least one URL and a cache directory");
	for (i = 0; i < o->nurls; i++)
		if (!o->urls[i] || !o->urls[i][0])
			return kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_ARGS", "/artifact/url", NULL,
					       "mirror %zu has an empty URL", i + 1);
	if (!o->expect_sha256 || strlen(o->expect_sha256) != 64 ||
	    strspn(o->expect_sha256, "0123456789abcdefABCDEF") != 64)
		return kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_ARGS", "/artifact/sha256",
				       "give the artifact's sha256 as 64 hex digits",
				       "expected sha256 is not 64 hex digits");
	if (o->expect_size == 0 || o->expect_size > (uint64_t)INT64_MAX)
		return kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_ARGS", "/artifact/size",
				       "give the artifact's exact size in bytes", "expected size %" PRIu64
				       " is out of range", o->expect_size);
	for (i = 0; i < 64; i++)
		sha[i] = (char)((o->expect_sha256[i] >= 'A' && o->expect_sha256[i] <= 'F')
					? o->expect_sha256[i] - 'A' + 'a'
					: o->expect_sha256[i]);
	sha[64] = '\0';
	return 0;
}

int kmpkg_fetch(char **out, const struct kmpkg_fetch_opts *o)
{
	struct fetch f;
	const struct kmpkg_error *e;
	struct kmpkg_error last;
	enum next next = NEXT_MIRROR;
	size_t i, tried = 0;
	unsigned retry;
	int ret = 0, hit = 0, done = 0, restarted;

	memset(&f, 0, sizeof(f));
	f.fd = -1;
	f.o = o;
	*out = NULL;

	ret = check_opts(o, f.sha);
	if (ret)
		goto cleanup;
	pthread_once(&curl_once, curl_init);
	if (!curl_ready) {
		ret = kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_INIT", NULL, "install libcurl 7.85 or later (libcurl.so.4)",
				      "libcurl initialisation failed: %s", curl_init_error);
		goto cleanup;
	}
	if (asprintf(&f.final_path, "%s/%s", o->cache_dir, f.sha) < 0) {
		f.final_path = NULL;
		ret = kmpkg_error_errno(ENOMEM, "allocate", NULL);
		goto cleanup;
	}
	if (asprintf(&f.part_path, "%s/%s.part", o->cache_dir, f.sha) < 0) {
		f.part_path = NULL;
		ret = kmpkg_error_errno(ENOMEM, "allocate", NULL);
		goto cleanup;
	}
	ret = ensure_dir(o->cache_dir);
	if (ret)
		goto cleanup;
	ret = check_cached(&f, &hit);
	if (ret)
		goto cleanup;
	if (hit) {
		done = 1;
		goto cleanup;
	}

	f.fd = open(f.part_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (f.fd < 0) {
		ret = kmpkg_error_errno(errno, "open", f.part_path);
		goto cleanup;
	}

	for (i = 0; i < o->nurls && !done; i++) {
		tried++;
		restarted = 0;
		retry = 0;
		for (;;) {
			ret = attempt(&f, o->urls[i], &next);
			if (next == NEXT_DONE) {
				done = 1;
				break;
			}
			if (next == NEXT_FAIL)
				goto cleanup;
			if (next == NEXT_RESTART && !restarted) {
				restarted = 1;
				continue;
			}
			if (next == NEXT_RETRY && retry < o->retries) {
				sleep_ms(backoff(o, retry));
				retry++;
				continue;
			}
			break;
		}
	}
	if (done) {
		ret = 0;
		goto cleanup;
	}
	e = kmpkg_error_last();
	memcpy(&last, e, sizeof(last));
	if (f.digest_mismatches > 0 && strcmp(last.code, "E_FETCH_DIGEST") != 0)
		ret = kmpkg_error_set(last.klass, last.code, last.field, last.next_step,
				      "%zu mirror%s tried, last failure: %s; %u served a file with the wrong sha256",
				      tried, tried == 1 ? "" : "s", last.message, f.digest_mismatches);
	else
		ret = kmpkg_error_set(last.klass, last.code, last.field, last.next_step,
				      "%zu mirror%s tried, last failure: %s", tried, tried == 1 ? "" : "s",
				      last.message);

cleanup:
	if (f.fd >= 0) {
		close(f.fd);
		/* An empty .part resumes nothing: leave no trace of a failed fetch. */
		if (!done && f.off == 0)
			unlink(f.part_path);
	}
	if (done) {
		*out = f.final_path;
		f.final_path = NULL;
	}
	free(f.final_path);
	free(f.part_path);
	return ret;
}

/* ---- small unpinned documents (signatures) ----------------------------- */

struct small {
	struct kmpkg_buf *b;
	size_t max;
	int too_large, oom;
};

static size_t small_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct small *sm = ud;
	size_t len = size * nmemb;

	if (len > sm->max - sm->b->len) {
		sm->too_large = 1;
		return 0;
	}
	if (kmpkg_buf_put(sm->b, ptr, len) != 0) {
		sm->oom = 1;
		return 0;
	}
	return len;
}

static size_t ignore_header(char *buf, size_t size, size_t nitems, void *ud)
{
	(void)buf;
	(void)ud;
	return size * nitems;
}

/* Re-labels the error classify() set for the artifact as one about its
 * signature. */
static int as_signature(int ret)
{
	struct kmpkg_error e;

	memcpy(&e, kmpkg_error_last(), sizeof(e));
	if (ret != 0 && e.klass == ret && strcmp(e.field, "/artifact/url") == 0)
		return kmpkg_error_set(e.klass, e.code, "/artifact/signature", e.next_step[0] ? e.next_step : NULL,
				       "signature: %s", e.message);
	return ret;
}

int kmpkg_fetch_small(struct kmpkg_buf *out, const char *url, size_t max, const struct kmpkg_fetch_opts *o)
{
	struct kmpkg_fetch_opts defaults, oo;
	struct small sm = { out, max, 0, 0 };
	struct fetch f;
	enum next next = NEXT_FAIL;
	unsigned retry = 0;
	CURLcode cc;
	int ret = 0;

	if (!o) {
		kmpkg_fetch_opts_init(&defaults);
		o = &defaults;
	}
	oo = *o;
	oo.expect_size = max;
	oo.progress = NULL;
	memset(&f, 0, sizeof(f));
	f.fd = -1;
	f.o = &oo;
	kmpkg_buf_clear(out);
	if (!url || !url[0] || max == 0)
		return kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_ARGS", "/artifact/signature", NULL,
				       "fetching a signature needs a URL and a size limit");
	pthread_once(&curl_once, curl_init);
	if (!curl_ready)
		return kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_INIT", NULL, "install libcurl 7.85 or later (libcurl.so.4)",
				       "libcurl initialisation failed: %s", curl_init_error);
	redact(f.url, sizeof(f.url), url);
	f.is_http = !has_scheme(url, "file");
	for (;;) {
		CURLcode sc = CURLE_OK;

		kmpkg_buf_clear(out);
		f.off = 0; /* never a Range request: a signature is fetched whole */
		sm.too_large = sm.oom = 0;
		f.errbuf[0] = '\0';
		if ((ret = setup_handle(&f, url)) != 0)
			goto cleanup;
		/* The same protocol, redirect, TLS and timeout rules as an
		 * artifact; only the destination differs. */
		sc = cu.easy_setopt(f.h, CURLOPT_WRITEFUNCTION, small_write);
		sc = sc ? sc : cu.easy_setopt(f.h, CURLOPT_WRITEDATA, &sm);
		sc = sc ? sc : cu.easy_setopt(f.h, CURLOPT_HEADERFUNCTION, ignore_header);
		if (sc != CURLE_OK) {
			ret = kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_ARGS", NULL, NULL,
					      "libcurl refused an option for %s: %s", f.url, cu.easy_strerror(sc));
			goto cleanup;
		}
		cc = cu.easy_perform(f.h);
		if (sm.oom) {
			ret = kmpkg_error_errno(ENOMEM, "download", f.url);
			goto cleanup;
		}
		if (sm.too_large || cc == CURLE_FILESIZE_EXCEEDED) {
			ret = kmpkg_error_set(KMPKG_EGENERIC, "E_FETCH_TOO_LARGE", "/artifact/signature",
					      "the signature URL in the source index is wrong; tell the source's maintainer",
					      "%s sent more than %zu bytes for a signature", f.url, max);
			goto cleanup;
		}
		if (cc == CURLE_OK)
			goto cleanup;
		f.off = out->len;
		ret = as_signature(classify(&f, cc, &next));
		cu.easy_cleanup(f.h);
		f.h = NULL;
		if (next != NEXT_RETRY || retry >= o->retries)
			goto cleanup;
		sleep_ms(backoff(o, retry));
		retry++;
	}
cleanup:
	if (f.h)
		cu.easy_cleanup(f.h);
	if (ret)
		kmpkg_buf_clear(out);
	return ret;
}
