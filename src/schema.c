/* Typed field getters over a yamltree (src/schema.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmpkg/buf.h"
#include "kmpkg/error.h"
#include "kmpkg/semver.h"
#include "schema.h"

static char *pointer_of(kmpkg_ynode *n)
{
	struct kmpkg_buf b = KMPKG_BUF_INIT;

	if (kmpkg_yamltree_path(&b, n) != 0 || kmpkg_buf_puts(&b, "") != 0) {
		kmpkg_buf_release(&b);
		return NULL;
	}
	return kmpkg_buf_detach(&b);
}

static char *child_pointer(kmpkg_ynode *map, const char *key)
{
	struct kmpkg_buf b = KMPKG_BUF_INIT;
	int err = kmpkg_yamltree_path(&b, map);

	err = err ? err : kmpkg_buf_puts(&b, "/");
	for (; !err && *key; key++)
		err = *key == '~' ? kmpkg_buf_puts(&b, "~0") :
		      *key == '/' ? kmpkg_buf_puts(&b, "~1") : kmpkg_buf_put(&b, key, 1);
	if (err) {
		kmpkg_buf_release(&b);
		return NULL;
	}
	return kmpkg_buf_detach(&b);
}

void kmpkg_schema_report(struct kmpkg_schema *s, enum kmpkg_severity sev, const char *suffix,
			 kmpkg_ynode *at, const char *field, const char *required, const char *actual,
			 const char *next_step, const char *fmt, ...)
{
	char code[64], msg[1024];
	char *own = NULL;
	va_list ap;

	snprintf(code, sizeof(code), "%s_%s", s->prefix, suffix);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!field) {
		own = pointer_of(at);
		if (!own) {
			s->oom = true;
			return;
		}
		field = own;
	}
	if (kmpkg_diags_add(s->d, sev, code, field, s->file, at ? at->line : 0, at ? at->column : 0,
			    required, actual, next_step, "%s", msg) != 0)
		s->oom = true;
	else if (sev == KMPKG_SEV_ERROR)
		s->errors++;
	free(own);
}

kmpkg_ynode *kmpkg_schema_field(struct kmpkg_schema *s, kmpkg_ynode *map, const char *key, bool required)
{
	kmpkg_ynode *n = kmpkg_yamltree_get(map, key);
	char *field;

	if (n && !(n->type == KMPKG_YT_SCALAR && n->kind == KMPKG_YT_NULL))
		return n;
	if (required) {
		field = child_pointer(map, key);
		if (!field) {
			s->oom = true;
			return NULL;
		}
		kmpkg_schema_report(s, KMPKG_SEV_ERROR, "MISSING_FIELD", n ? n : map, field, NULL, NULL,
				    "add the field", "required field '%s' is missing", key);
		free(field);
	}
	return NULL;
}

bool kmpkg_schema_is_string(struct kmpkg_schema *s, kmpkg_ynode *n)
{
	if (n->type == KMPKG_YT_SCALAR && n->kind != KMPKG_YT_BOOL && n->kind != KMPKG_YT_NULL)
		return true;
	kmpkg_schema_report(s, KMPKG_SEV_ERROR, "TYPE", n, NULL, "string", kmpkg_yamltree_describe(n),
			    n->type == KMPKG_YT_SCALAR ? "quote the value" : "write a single string value",
			    "expected a string, found a %s", kmpkg_yamltree_describe(n));
	return false;
}

bool kmpkg_schema_is_map(struct kmpkg_schema *s, kmpkg_ynode *n)
{
	if (n->type == KMPKG_YT_MAP)
		return true;
	kmpkg_schema_report(s, KMPKG_SEV_ERROR, "TYPE", n, NULL, "mapping", kmpkg_yamltree_describe(n),
			    "write the field as a mapping of keys to values",
			    "expected a mapping, found a %s", kmpkg_yamltree_describe(n));
	return false;
}

void kmpkg_schema_string(struct kmpkg_schema *s, char **out, kmpkg_ynode *map, const char *key,
			 bool required)
{
	kmpkg_ynode *n = kmpkg_schema_field(s, map, key, required);

	*out = NULL;
	if (!n || !kmpkg_schema_is_string(s, n))
		return;
	*out = strdup(n->str);
	if (!*out)
		s->oom = true;
}

kmpkg_ynode *kmpkg_schema_strlist(struct kmpkg_schema *s, struct kmpkg_strlist *out, kmpkg_ynode *map,
				  const char *key, bool required)
{
	kmpkg_ynode *n = kmpkg_schema_field(s, map, key, required);
	size_t i, before = s->errors;

	out->v = NULL;
	out->n = 0;
	if (!n)
		return NULL;
	if (n->type != KMPKG_YT_SEQ) {
		kmpkg_schema_report(s, KMPKG_SEV_ERROR, "TYPE", n, NULL, "list of strings",
				    kmpkg_yamltree_describe(n), "write a list, e.g. [a, b]",
				    "expected a list of strings, found a %s", kmpkg_yamltree_describe(n));
		return NULL;
	}
	for (i = 0; i < n->n; i++) {
		kmpkg_ynode *it = n->items[i];

		if (!kmpkg_schema_is_string(s, it))
			continue;
		if (it->len == 0)
			kmpkg_schema_report(s, KMPKG_SEV_ERROR, "INVALID_VALUE", it, NULL, "a non-empty string",
					    "\"\"", "remove the empty entry", "empty string in the list");
	}
	if (s->errors != before)
		return NULL;
	out->v = calloc(n->n + 1, sizeof(*out->v));
	if (!out->v) {
		s->oom = true;
		return NULL;
	}
	for (i = 0; i < n->n; i++) {
		out->v[i] = strdup(n->items[i]->str);
		if (!out->v[i]) {
			s->oom = true;
			break;
		}
		out->n++;
	}
	return n;
}

bool kmpkg_schema_uint(struct kmpkg_schema *s, uint64_t *out, kmpkg_ynode *map, const char *key,
		       bool required, uint64_t min, uint64_t max)
{
	kmpkg_ynode *n = kmpkg_schema_field(s, map, key, required);
	unsigned long long v = 0;
	const char *p;
	char req[96];
	bool overflow = false;

	if (!n)
		return false;
	if (n->type != KMPKG_YT_SCALAR || n->kind != KMPKG_YT_INT) {
		kmpkg_schema_report(s, KMPKG_SEV_ERROR, "TYPE", n, NULL, "integer", kmpkg_yamltree_describe(n),
				    "write a plain decimal integer without quotes",
				    "expected an integer, found a %s", kmpkg_yamltree_describe(n));
		return false;
	}
	snprintf(req, sizeof(req), "%llu..%llu", (unsigned long long)min, (unsigned long long)max);
	p = n->str;
	if (*p == '+')
		p++;
	if (strspn(p, "0123456789") != strlen(p) || !*p) {
		/* negative, hexadecimal or octal: the schema wants plain decimal */
		kmpkg_schema_report(s, KMPKG_SEV_ERROR, "INVALID_VALUE", n, NULL, req, n->str,
				    "write a decimal integer in range", "'%.64s' is not in %s", n->str, req);
		return false;
	}
	for (; *p; p++) {
		if (v > (~0ULL - (unsigned)(*p - '0')) / 10)
			overflow = true;
		else
			v = v * 10 + (unsigned)(*p - '0');
	}
	if (overflow || v < min || v > max) {
		kmpkg_schema_report(s, KMPKG_SEV_ERROR, "INVALID_VALUE", n, NULL, req, n->str,
				    "write a value in range", "%.64s is out of range %s", n->str, req);
		return false;
	}
	*out = v;
	return true;
}

void kmpkg_schema_unknown(struct kmpkg_schema *s, kmpkg_ynode *map, const char *const *known)
{
	size_t i, k;

	for (i = 0; i < map->n; i++) {
		for (k = 0; known[k]; k++)
			if (!strcmp(map->keys[i]->str, known[k]))
				break;
		if (!known[k])
			kmpkg_schema_report(s, KMPKG_SEV_WARNING, "UNKNOWN_FIELD", map->keys[i], NULL, NULL, NULL,
					    "remove the field or check its spelling", "unknown field '%.100s'",
					    map->keys[i]->str);
	}
}

/* SemVer 2.0.0 exactly as written: the semver module's parser also takes
 * node-semver's leading "v" and surrounding blanks, which a manifest must not
 * have, so the canonical form must equal the input. */
bool kmpkg_schema_semver_valid(const char *v)
{
	struct kmpkg_semver sv;
	char *canon;
	bool ok;

	if (kmpkg_semver_parse(&sv, v) != 0)
		return false;
	canon = kmpkg_semver_format(&sv);
	ok = canon && strcmp(canon, v) == 0;
	free(canon);
	kmpkg_semver_release(&sv);
	return ok;
}

bool kmpkg_schema_relpath_valid(const char *path)
{
	const char *p = path;

	if (!*p || *p == '/')
		return false;
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return false;
		p += n;
		if (*p == '/')
			p++;
	}
	return true;
}

void kmpkg_strlist_release(struct kmpkg_strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

bool kmpkg_strlist_contains(const struct kmpkg_strlist *l, const char *s)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->v[i], s))
			return true;
	return false;
}

int kmpkg_schema_close(struct kmpkg_posmap **pos, struct kmpkg_schema *s, struct kmpkg_yamltree **tree)
{
	if (!s->oom && s->errors)
		return KMPKG_EUSAGE;
	if (!s->oom)
		*pos = calloc(1, sizeof(**pos));
	if (s->oom || !*pos)
		return kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
	(*pos)->tree = *tree;
	*tree = NULL;
	return 0;
}
