/*
 * Downloads of package artifacts (SPEC §6 `artifact`: url, sha256, size) into
 * the content-addressed cache (SPEC §3 `kmpkg/cache/<sha256>`), with libcurl.
 *
 * The expected digest and size come from a trusted source index; everything a
 * server sends is hostile until it matches them. A body is streamed into
 * <cache_dir>/<sha256>.part while it is hashed, cut off as soon as it exceeds
 * the expected size (endless data), and published as <cache_dir>/<sha256> only
 * after its size and SHA-256 match exactly (fsync, rename, fsync of the
 * directory). A .part left by an interrupted transfer is resumed with a Range
 * request; a prefix that turns out wrong is deleted and fetched again from
 * zero, never resumed twice.
 *
 * The caller holds the root lock: two fetches of the same digest into the same
 * cache at once are not supported. Nothing is printed; progress goes to the
 * optional callback and the caller decides whether to draw it (TTY only).
 */
#ifndef KMPKG_FETCH_H
#define KMPKG_FETCH_H

#include <stddef.h>
#include <stdint.h>

struct kmpkg_fetch_opts {
	/* Mirrors tried in order; schemes http, https and file. Borrowed for
	 * the duration of the call. */
	const char *const *urls;
	size_t nurls;
	const char *expect_sha256; /* 64 hex digits (either case); required */
	uint64_t expect_size;      /* exact size in bytes, > 0; also the hard cap */
	const char *cache_dir;     /* created (one level) when missing */

	/* Per attempt. 0 disables a limit (connect: libcurl's own 300 s). A
	 * transfer slower than low_speed_bytes per second for low_speed_secs
	 * seconds is abandoned as a timeout (slow-retrieval defence). */
	long connect_timeout_ms;
	long low_speed_bytes;
	long low_speed_secs;
	long total_timeout_ms;

	/* Extra attempts per mirror after a transient failure (timeout,
	 * connection refused or reset, short body, HTTP 408/429/5xx); other
	 * failures (404, digest, too large, TLS) move to the next mirror at
	 * once. The n-th retry waits backoff_ms * 2^(n-1), at most 30 s. */
	unsigned retries;
	unsigned backoff_ms;

	/* Optional: called with the bytes held so far (resumed prefix included)
	 * and expect_size, from the thread that called kmpkg_fetch. */
	void (*progress)(void *ctx, uint64_t now, uint64_t total);
	void *progress_ctx;
};

/* Zeroes *o and sets the defaults: connect 10 s, below 1024 B/s for 30 s is a
 * timeout, no total limit, 2 retries, backoff 500 ms. */
void kmpkg_fetch_opts_init(struct kmpkg_fetch_opts *o);

/*
 * Makes <cache_dir>/<sha256> hold the artifact and sets *out to that path
 * (malloc'd, the caller frees it). A cached file that re-hashes correctly is
 * returned without any network access; a cached file that does not is deleted
 * and fetched again.
 *
 * Errors (the message names the URL; after several mirrors it says how many
 * were tried and reports the last failure):
 *   KMPKG_EGENERIC  E_FETCH_ARGS        options unusable (no URL, bad digest, size 0)
 *                   E_FETCH_INIT        libcurl missing or failed to initialise
 *                   E_FETCH_UNREACHABLE resolve/connect failed, file:// missing
 *                   E_FETCH_HTTP        HTTP error status (in the message), bad Content-Range
 *                   E_FETCH_REDIRECT    too many redirects
 *                   E_FETCH_URL         malformed URL or scheme not allowed (also on redirect)
 *                   E_FETCH_TLS         certificate or TLS handshake failure
 *                   E_FETCH_TOO_LARGE   body larger than expect_size (nothing kept)
 *                   E_FETCH_SIZE        body ended short (the .part is kept for a resume)
 *                   E_FETCH_TIMEOUT     connect, low-speed or total timeout
 *   KMPKG_EVERIFY   E_FETCH_DIGEST      SHA-256 differs (the .part is deleted)
 *   KMPKG_ERESOURCE via kmpkg_error_errno for the cache's disk I/O (stops at once)
 */
int kmpkg_fetch(char **out, const struct kmpkg_fetch_opts *o);

struct kmpkg_buf;

/*
 * Appends to out a small document that the index names but does not pin by
 * digest (a detached signature, checked afterwards against trusted keys): at
 * most `max` bytes from the URL (http, https or file), into memory, nothing
 * on disk. Uses o's timeouts, retries and backoff; o's urls, digest, size,
 * cache_dir and progress are ignored (o may be NULL: the defaults).
 * Errors as kmpkg_fetch (E_FETCH_TOO_LARGE past `max`), with field
 * "/artifact/signature"; out is left empty on error.
 */
int kmpkg_fetch_small(struct kmpkg_buf *out, const char *url, size_t max, const struct kmpkg_fetch_opts *o);

#endif
