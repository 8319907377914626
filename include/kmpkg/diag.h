/*
 * Diagnostics (SPEC §9): findings of the manifest loader, the host-profile
 * loader and preflight. A list owns its findings and their strings.
 */
#ifndef KMPKG_DIAG_H
#define KMPKG_DIAG_H

#include <stddef.h>
#include <stdio.h>

enum kmpkg_severity { KMPKG_SEV_ERROR = 0, KMPKG_SEV_WARNING = 1 };

struct kmpkg_diag {
	char *code;       /* stable, e.g. "HOST_RANGE_UNSATISFIED" */
	enum kmpkg_severity severity;
	char *field;      /* JSON Pointer, "" for the whole document */
	char *file;       /* as given by the caller */
	int line, column; /* 1-based; 0 when unknown */
	char *message;
	char *required;   /* may be NULL */
	char *actual;     /* may be NULL */
	char *next_step;  /* may be NULL */
};

struct kmpkg_diags {
	struct kmpkg_diag *v;
	size_t n, cap;
};

#define KMPKG_DIAGS_INIT { NULL, 0, 0 }

/* Appends a finding; strings are copied (NULL allowed except code/message).
 * Returns 0 or KMPKG_EGENERIC on allocation failure. */
int kmpkg_diags_add(struct kmpkg_diags *d, enum kmpkg_severity sev, const char *code,
		    const char *field, const char *file, int line, int column,
		    const char *required, const char *actual, const char *next_step,
		    const char *fmt, ...) __attribute__((format(printf, 11, 12)));
size_t kmpkg_diags_count(const struct kmpkg_diags *d, enum kmpkg_severity sev);
void kmpkg_diags_release(struct kmpkg_diags *d);

/* Renderers. text: "file:line:col: error[CODE]: message\n  next step: ...";
 * github: "::error file=...,line=...,col=...,title=CODE::message". */
void kmpkg_diags_write_text(const struct kmpkg_diags *d, FILE *f, int color);
void kmpkg_diags_write_github(const struct kmpkg_diags *d, FILE *f);
/* JSON array of objects with every field of struct kmpkg_diag (jansson json_t *). */
struct json_t;
struct json_t *kmpkg_diags_to_json(const struct kmpkg_diags *d);

#endif
