/* Fault injection for crash tests (include/kmpkg/fault.h). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmpkg/fault.h"

const char *const kmpkg_fault_points[] = {
	"download:start", "download:end",
	"verify:start", "verify:after-extract", "verify:after-exchange", "verify:after-store", "verify:end",
	"dependency-prepare:start", "dependency-prepare:end",
	"activate:start", "activate:after-gendir", "activate:after-swap", "activate:end",
	"health-check:start", "health-check:after-run", "health-check:end", "commit:after-record",
	"rollback:start", "rollback:after-swap", "rollback:after-commit", "rollback:after-quarantine",
	"recovery:start", "recovery:after-discard",
	"gc:after-commit", "gc:after-generations", "gc:after-store", "discard:after-rename",
	NULL,
};

#ifdef KMPKG_TESTING
void kmpkg_fault(const char *point)
{
	const char *want = getenv("KMPKG_FAULT");
	size_t i;

	for (i = 0; kmpkg_fault_points[i]; i++)
		if (strcmp(kmpkg_fault_points[i], point) == 0)
			break;
	if (!kmpkg_fault_points[i]) {
		fprintf(stderr, "kmpkg: fault point '%s' is not in kmpkg_fault_points\n", point);
		abort();
	}
	if (want && strcmp(want, point) == 0) {
		fflush(NULL);
		raise(SIGKILL);
	}
}

/* True on the n-th call counted in *calls, n from the environment variable
 * env. Atomic: commits are counted on the engine's committer thread too
 * (one at a time: LMDB's writer lock). */
static bool nth_call(const char *env, long *calls)
{
	const char *n = getenv(env);

	if (!n || !*n)
		return false;
	return __atomic_add_fetch(calls, 1, __ATOMIC_RELAXED) == strtol(n, NULL, 10);
}

bool kmpkg_fault_fsync_eio(void)
{
	static long calls;

	return nth_call("KMPKG_FAULT_FSYNC_EIO", &calls);
}

bool kmpkg_fault_commit_eio(void)
{
	static long calls;

	return nth_call("KMPKG_FAULT_COMMIT_EIO", &calls);
}
#endif
