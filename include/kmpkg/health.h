/*
 * Health checks: run a plugin's health command in its directory with
 * KMPKG_CORRELATION_ID, stdin from /dev/null, in its own process group that is
 * killed whole on timeout, under CPU, memory and core-size rlimits, with
 * stdout+stderr captured up to a bound.
 */
#ifndef KMPKG_HEALTH_H
#define KMPKG_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults applied when the corresponding option is 0. */
#define KMPKG_HEALTH_DEFAULT_TIMEOUT_MS 5000u
#define KMPKG_HEALTH_DEFAULT_OUTPUT_CAP ((size_t)64 * 1024)
#define KMPKG_HEALTH_DEFAULT_RLIMIT_AS ((uint64_t)1 << 30)
#define KMPKG_HEALTH_RLIMIT_NOFILE 1024u

struct kmpkg_health_opts {
	char *const *argv;          /* argv[0] relative to cwd (or absolute); NULL-terminated */
	const char *cwd;            /* the plugin's directory */
	uint32_t timeout_ms;        /* default KMPKG_HEALTH_DEFAULT_TIMEOUT_MS when 0 */
	const char *correlation_id; /* exported as KMPKG_CORRELATION_ID (omitted when NULL) */
	const char *plugin_name;    /* exported as KMPKG_PLUGIN (omitted when NULL) */
	const char *plugin_version; /* exported as KMPKG_PLUGIN_VERSION (omitted when NULL) */
	size_t output_cap;          /* bytes of output kept; default 64 KiB when 0 */
	uint64_t rlimit_as_bytes;   /* default 1 GiB when 0 */
	uint64_t rlimit_cpu_secs;   /* default: timeout rounded up + 1 when 0 */
};

struct kmpkg_health_result {
	bool passed;       /* exited with status 0 before the timeout */
	bool timed_out;
	int exit_code;     /* when it exited, else -1 */
	int signal;        /* when killed by a signal (SIGKILL after a timeout), else 0 */
	uint64_t duration_ms;
	char *output;      /* captured stdout+stderr, NUL-terminated, may be "" */
	size_t output_len;
	bool truncated;    /* more output than output_cap was produced */
	char reason[256];  /* one line: "exited with status 3", "timed out after 5000 ms", ... */
};

/* Runs the check. Returns 0 when the command ran (pass or fail is in *out),
 * KMPKG_EHEALTH with E_HEALTH_EXEC when it could not be started (missing, not
 * executable: *out still describes it), KMPKG_ERESOURCE for fork/pipe errors.
 * The environment is clean: PATH=/usr/local/bin:/usr/bin:/bin, HOME (when the
 * caller has it), LANG=C and the KMPKG_* variables above. argv[0] is resolved
 * against cwd, never through PATH. Every descriptor above 2 is closed in the
 * child. Whatever is left in the check's process group when it exits is
 * killed. Uses waitpid on the child only, so the caller must not ignore
 * SIGCHLD. Release *out with kmpkg_health_result_release in every case. */
int kmpkg_health_run(struct kmpkg_health_result *out, const struct kmpkg_health_opts *opts);
void kmpkg_health_result_release(struct kmpkg_health_result *r);

#endif
