/*
 * Errors: every function that can fail returns int, 0 on success or one of the
 * negative KMPKG_E* classes below. The class is the process exit status negated
 * (SPEC §2), so main() maps an error with `return -err`. The details — a stable
 * string code (E_...), the field at fault, a one-line message and the next step
 * for the operator — go to a per-thread side channel set by kmpkg_error_set().
 * A caller that gets an error from a callee propagates it unchanged.
 */
#ifndef KMPKG_ERROR_H
#define KMPKG_ERROR_H

#include <stdarg.h>

enum {
	KMPKG_OK = 0,
	KMPKG_EGENERIC = -1,   /* other failure */
	KMPKG_EUSAGE = -2,     /* usage error or malformed input on the command line */
	KMPKG_EPREFLIGHT = -3, /* incompatibility found by preflight */
	KMPKG_EVERIFY = -4,    /* digest, signature, archive safety, manifest mismatch */
	KMPKG_EDEPS = -5,      /* dependency resolution failed */
	KMPKG_EHEALTH = -6,    /* health check failed, rolled back */
	KMPKG_EROLLBACK = -7,  /* rollback itself failed */
	KMPKG_ELOCKED = -8,    /* another kmpkg holds the lock */
	KMPKG_ENOTFOUND = -9,  /* plugin, version, source or transaction not found */
	KMPKG_ERESOURCE = -10, /* disk full, permission, I/O: nothing changed */
};

struct kmpkg_error {
	int klass;           /* one of the KMPKG_E* values, or 0 when clear */
	char code[64];       /* stable string, e.g. "E_MANIFEST_SCHEMA" */
	char field[256];     /* JSON Pointer or CLI field, may be empty */
	char message[1024];  /* one line */
	char next_step[512]; /* an action for the operator, may be empty */
};

/* Records the error for this thread and returns klass, so callers can write
 * `return kmpkg_error_set(KMPKG_EVERIFY, "E_DIGEST", NULL, "run ...", "...")`.
 * field and next_step may be NULL. */
int kmpkg_error_set(int klass, const char *code, const char *field, const char *next_step,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int kmpkg_error_vset(int klass, const char *code, const char *field, const char *next_step,
		     const char *fmt, va_list ap);

/* Like kmpkg_error_set with klass KMPKG_ERESOURCE for an errno-reporting call:
 * ENOSPC, EDQUOT, EIO, EACCES, EROFS, ... get codes E_DISK_FULL, E_IO, E_PERMISSION. */
int kmpkg_error_errno(int err, const char *what, const char *path);

/* The last error of this thread; borrowed, valid until the next set or clear. */
const struct kmpkg_error *kmpkg_error_last(void);
void kmpkg_error_clear(void);

/* Prefixes the current message with "prefix: " (context added by a caller). */
void kmpkg_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
