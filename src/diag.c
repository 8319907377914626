/* Diagnostics list and its text, GitHub and JSON renderers (include/kmpkg/diag.h). */
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kmpkg/diag.h"
#include "kmpkg/error.h"

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int kmpkg_diags_add(struct kmpkg_diags *d, enum kmpkg_severity sev, const char *code,
		    const char *field, const char *file, int line, int column,
		    const char *required, const char *actual, const char *next_step,
		    const char *fmt, ...)
{
	struct kmpkg_diag *x;
	char msg[1024];
	va_list ap;

	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		struct kmpkg_diag *v = realloc(d->v, cap * sizeof(*v));

		if (!v)
			return kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
		d->v = v;
		d->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	x = &d->v[d->n++];
	x->code = strdup(code);
	x->severity = sev;
	x->field = strdup(field ? field : "");
	x->file = strdup(file ? file : "");
	x->line = line;
	x->column = column;
	x->message = strdup(msg);
	x->required = dup_or_null(required);
	x->actual = dup_or_null(actual);
	x->next_step = dup_or_null(next_step);
	return 0;
}

size_t kmpkg_diags_count(const struct kmpkg_diags *d, enum kmpkg_severity sev)
{
	size_t i, n = 0;

	for (i = 0; i < d->n; i++)
		n += d->v[i].severity == sev;
	return n;
}

void kmpkg_diags_release(struct kmpkg_diags *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		struct kmpkg_diag *x = &d->v[i];

		free(x->code);
		free(x->field);
		free(x->file);
		free(x->message);
		free(x->required);
		free(x->actual);
		free(x->next_step);
	}
	free(d->v);
	d->v = NULL;
	d->n = d->cap = 0;
}

static const char *sevname(enum kmpkg_severity s)
{
	return s == KMPKG_SEV_ERROR ? "error" : "warning";
}

void kmpkg_diags_write_text(const struct kmpkg_diags *d, FILE *f, int color)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		const struct kmpkg_diag *x = &d->v[i];
		const char *on = "", *off = "";

		if (color) {
			on = x->severity == KMPKG_SEV_ERROR ? "\033[1;31m" : "\033[1;33m";
			off = "\033[0m";
		}
		fprintf(f, "%s:%d:%d: %s%s[%s]%s: %s", x->file, x->line, x->column, on,
			sevname(x->severity), x->code, off, x->message);
		if (x->field[0])
			fprintf(f, " (at %s)", x->field);
		fputc('\n', f);
		if (x->required || x->actual)
			fprintf(f, "  required: %s; actual: %s\n", x->required ? x->required : "-",
				x->actual ? x->actual : "-");
		if (x->next_step)
			fprintf(f, "  next step: %s\n", x->next_step);
	}
}

/* GitHub workflow commands: properties escape % \r \n : , and data % \r \n. */
static void gh_escape(FILE *f, const char *s, int property)
{
	for (; *s; s++) {
		switch (*s) {
		case '%': fputs("%25", f); break;
		case '\r': fputs("%0D", f); break;
		case '\n': fputs("%0A", f); break;
		case ':': fputs(property ? "%3A" : ":", f); break;
		case ',': fputs(property ? "%2C" : ",", f); break;
		default: fputc(*s, f);
		}
	}
}

void kmpkg_diags_write_github(const struct kmpkg_diags *d, FILE *f)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		const struct kmpkg_diag *x = &d->v[i];

		fprintf(f, "::%s file=", sevname(x->severity));
		gh_escape(f, x->file, 1);
		fprintf(f, ",line=%d,col=%d,title=", x->line > 0 ? x->line : 1,
			x->column > 0 ? x->column : 1);
		gh_escape(f, x->code, 1);
		fputs("::", f);
		gh_escape(f, x->message, 0);
		if (x->next_step) {
			gh_escape(f, " — next step: ", 0);
			gh_escape(f, x->next_step, 0);
		}
		fputc('\n', f);
	}
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

json_t *kmpkg_diags_to_json(const struct kmpkg_diags *d)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < d->n; i++) {
		const struct kmpkg_diag *x = &d->v[i];

		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:s, s:o, s:o, s:o}",
			"code", x->code, "severity", sevname(x->severity), "field", x->field,
			"file", x->file, "line", x->line, "column", x->column,
			"message", x->message, "required", str_or_null(x->required),
			"actual", str_or_null(x->actual), "next_step", str_or_null(x->next_step)));
	}
	return arr;
}
