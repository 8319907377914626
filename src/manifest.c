/*
 * The manifest loader (include/kmpkg/manifest.h, SPEC §6): the bounded
 * yamltree first, then one typed field at a time. Every problem in the
 * fields is its own diagnostic, so one run shows them all; the reader's
 * refusals (size, depth, aliases, ...) stop at the first.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "kmpkg/error.h"
#include "kmpkg/manifest.h"
#include "schema.h"
#include "yamltree.h"

#define NAME_RULE "[a-z0-9][a-z0-9-]{0,62}"

bool kmpkg_manifest_name_valid(const char *name)
{
	size_t i;

	if (!name || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
		return false;
	for (i = 1; name[i]; i++) {
		char c = name[i];

		if (i > 62 || !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

void kmpkg_manifest_free(struct kmpkg_manifest *m)
{
	size_t i;

	if (!m)
		return;
	free(m->file);
	free(m->api_version);
	free(m->name);
	free(m->version);
	free(m->description);
	free(m->host);
	free(m->api);
	free(m->tier);
	kmpkg_strlist_release(&m->requires);
	kmpkg_strlist_release(&m->provides);
	kmpkg_strlist_release(&m->permissions);
	for (i = 0; i < m->ndeps; i++) {
		free(m->deps[i].name);
		free(m->deps[i].range);
	}
	free(m->deps);
	free(m->entrypoint);
	kmpkg_strlist_release(&m->health_command);
	free(m->artifact.url);
	free(m->artifact.sha256);
	free(m->artifact.signature);
	kmpkg_strlist_release(&m->artifact.mirrors);
	if (m->pos) {
		kmpkg_yamltree_free(m->pos->tree);
		free(m->pos);
	}
	free(m);
}

bool kmpkg_posmap_find(const struct kmpkg_posmap *p, const char *pointer, int *line, int *column)
{
	const struct kmpkg_yamltree_node *n;
	bool exact = false;

	*line = *column = 0;
	if (!p || !p->tree || !pointer)
		return false;
	n = kmpkg_yamltree_find(p->tree->root, pointer, &exact);
	if (n) {
		*line = n->line;
		*column = n->column;
	}
	return exact;
}

int kmpkg_schema_open(struct kmpkg_yamltree **out, const char *file, const char *data, size_t len,
		      const char *prefix, struct kmpkg_diags *d)
{
	struct kmpkg_yamltree *t = NULL;
	const struct kmpkg_yamltree_node *r;
	char code[64];
	int err;

	*out = NULL;
	if ((err = kmpkg_yamltree_parse(&t, file, data, len, prefix, NULL, d)) != 0)
		return err;
	r = t->root;
	if (r->type == KMPKG_YT_SCALAR && r->kind == KMPKG_YT_NULL) {
		snprintf(code, sizeof(code), "%s_EMPTY", prefix);
		err = kmpkg_diags_add(d, KMPKG_SEV_ERROR, code, "", file, r->line, r->column, NULL, NULL,
				      "write the document", "the document is empty");
	} else if (r->type != KMPKG_YT_MAP) {
		snprintf(code, sizeof(code), "%s_TYPE", prefix);
		err = kmpkg_diags_add(d, KMPKG_SEV_ERROR, code, "", file, r->line, r->column, "mapping",
				      kmpkg_yamltree_describe(r), "write the document as a mapping of fields",
				      "the document must be a mapping, found a %s", kmpkg_yamltree_describe(r));
	}
	if (err == 0 && (r->type != KMPKG_YT_MAP))
		err = KMPKG_EUSAGE;
	if (err) {
		kmpkg_yamltree_free(t);
		return err;
	}
	*out = t;
	return 0;
}

static void check_relpath(struct kmpkg_schema *s, kmpkg_ynode *map, const char *key, const char *value)
{
	kmpkg_ynode *n = kmpkg_yamltree_get(map, key);

	if (value && !kmpkg_schema_relpath_valid(value))
		kmpkg_schema_report(s, KMPKG_SEV_ERROR, "INVALID_VALUE", n, NULL,
				    "a relative path inside the package without '..'", value,
				    "use a path relative to the package root, e.g. bin/NAME",
				    "'%.200s' is not a relative path inside the package", value);
}

static void load_capabilities(struct kmpkg_schema *s, struct kmpkg_manifest *m, kmpkg_ynode *root)
{
	static const char *const known[] = { "requires", "provides", NULL };
	kmpkg_ynode *c = kmpkg_schema_field(s, root, "capabilities", false);

	if (!c || !kmpkg_schema_is_map(s, c))
		return;
	kmpkg_schema_strlist(s, &m->requires, c, "requires", false);
	kmpkg_schema_strlist(s, &m->provides, c, "provides", false);
	kmpkg_schema_unknown(s, c, known);
}

static void load_dependencies(struct kmpkg_schema *s, struct kmpkg_manifest *m, kmpkg_ynode *root)
{
	kmpkg_ynode *deps = kmpkg_schema_field(s, root, "dependencies", false);
	size_t i;

	if (!deps)
		return;
	if (deps->type != KMPKG_YT_MAP) {
		kmpkg_schema_report(s, KMPKG_SEV_ERROR, "TYPE", deps, NULL, "mapping of name to range",
				    kmpkg_yamltree_describe(deps),
				    "write dependencies as NAME: RANGE lines, e.g. json-helpers: \"^1.0.0\"",
				    "expected a mapping of plugin names to version ranges, found a %s",
				    kmpkg_yamltree_describe(deps));
		return;
	}
	m->deps = calloc(deps->n ? deps->n : 1, sizeof(*m->deps));
	if (!m->deps) {
		s->oom = true;
		return;
	}
	for (i = 0; i < deps->n; i++) {
		kmpkg_ynode *k = deps->keys[i], *v = deps->items[i];
		bool ok = true;

		if (!kmpkg_manifest_name_valid(k->str)) {
			kmpkg_schema_report(s, KMPKG_SEV_ERROR, "INVALID_VALUE", k, NULL, NAME_RULE, k->str,
					    "use the dependency's plugin name (lowercase letters, digits, '-')",
					    "'%.100s' is not a valid plugin name", k->str);
			ok = false;
		} else if (m->name && !strcmp(k->str, m->name)) {
			kmpkg_schema_report(s, KMPKG_SEV_ERROR, "INVALID_VALUE", k, NULL, NULL, k->str,
					    "remove the dependency on itself", "a plugin cannot depend on itself");
			ok = false;
		}
		if (v->type == KMPKG_YT_SCALAR && v->kind == KMPKG_YT_NULL) {
			kmpkg_schema_report(s, KMPKG_SEV_ERROR, "TYPE", v, NULL, "range string", "null",
					    "write a range, e.g. \"^1.0.0\", or \"*\" for any version",
					    "dependency '%.100s' has no version range", k->str);
			ok = false;
		} else if (!kmpkg_schema_is_string(s, v)) {
			ok = false;
		}
		if (!ok)
			continue;
		m->deps[m->ndeps].name = strdup(k->str);
		m->deps[m->ndeps].range = strdup(v->str);
		m->ndeps++;
		if (!m->deps[m->ndeps - 1].name || !m->deps[m->ndeps - 1].range)
			s->oom = true;
	}
}

static void load_health(struct kmpkg_schema *s, struct kmpkg_manifest *m, kmpkg_ynode *root)
{
	static const char *const known[] = { "command", "timeout_ms", NULL };
	kmpkg_ynode *h = kmpkg_schema_field(s, root, "health_check", false), *cmd;
	uint64_t t;

	if (!h || !kmpkg_schema_is_map(s, h))
		return;
	cmd = kmpkg_schema_strlist(s, &m->health_command, h, "command", true);
	if (cmd && cmd->n == 0) {
		kmpkg_schema_report(s, KMPKG_SEV_ERROR, "INVALID_VALUE", cmd, NULL, "at least one element",
				    "[]", "name the program to run, e.g. [bin/NAME, --health]",
				    "health_check.command is empty");
	} else if (cmd && !kmpkg_schema_relpath_valid(m->health_command.v[0])) {
		kmpkg_schema_report(s, KMPKG_SEV_ERROR, "INVALID_VALUE", cmd->items[0], NULL,
				    "a relative path inside the package without '..'", m->health_command.v[0],
				    "run a program shipped in the package, e.g. bin/NAME",
				    "'%.200s' is not a relative path inside the package", m->health_command.v[0]);
	}
	if (kmpkg_schema_uint(s, &t, h, "timeout_ms", false, 1, 600000))
		m->health_timeout_ms = (uint32_t)t;
	kmpkg_schema_unknown(s, h, known);
}

static bool url_ok(const char *u)
{
	size_t i;

	for (i = 0; u[i]; i++)
		if ((unsigned char)u[i] <= ' ' || u[i] == 0x7f)
			return false;
	if (!strncmp(u, "https://", 8))
		return u[8] != '\0';
	if (!strncmp(u, "http://", 7))
		return u[7] != '\0';
	return !strstr(u, "://") && kmpkg_schema_relpath_valid(u);
}

/* A mirror is fetched as is, never read from the repository: an absolute
 * http, https or file URL. */
static bool mirror_ok(const char *u)
{
	size_t i;

	for (i = 0; u[i]; i++)
		if ((unsigned char)u[i] <= ' ' || u[i] == 0x7f)
			return false;
	if (!strncmp(u, "https://", 8))
		return u[8] != '\0';
	if (!strncmp(u, "http://", 7))
		return u[7] != '\0';
	return !strncmp(u, "file:///", 8) && u[8] != '\0';
}

/* artifact.mirrors (an extension of SPEC §6): a list of URLs tried in order
 * after artifact.url. */
static void load_mirrors(struct kmpkg_schema *s, struct kmpkg_manifest *m, kmpkg_ynode *a)
{
	kmpkg_ynode *n = kmpkg_schema_strlist(s, &m->artifact.mirrors, a, "mirrors", false);
	size_t i;

	if (!n)
		return;
	if (n->n > KMPKG_MANIFEST_MAX_MIRRORS)
		kmpkg_schema_report(s, KMPKG_SEV_ERROR, "INVALID_VALUE", n, NULL, "at most 16 mirrors", NULL,
				    "keep the 16 most reliable mirrors", "%zu mirrors, at most %d are allowed", n->n,
				    KMPKG_MANIFEST_MAX_MIRRORS);
	for (i = 0; i < m->artifact.mirrors.n; i++)
		if (!mirror_ok(m->artifact.mirrors.v[i]))
			kmpkg_schema_report(s, KMPKG_SEV_ERROR, "INVALID_VALUE", n->items[i], NULL,
					    "an https://, http:// or file:/// URL", m->artifact.mirrors.v[i],
					    "give the full URL of a copy of the artifact",
					    "'%.200s' is not a usable mirror URL", m->artifact.mirrors.v[i]);
}

static void load_artifact(struct kmpkg_schema *s, struct kmpkg_manifest *m, kmpkg_ynode *root)
{
	static const char *const known[] = { "url", "sha256", "size", "signature", "mirrors", NULL };
	kmpkg_ynode *a = kmpkg_schema_field(s, root, "artifact", false);
	size_t i;

	if (!a || !kmpkg_schema_is_map(s, a))
		return;
	m->has_artifact = true;
	kmpkg_schema_string(s, &m->artifact.url, a, "url", true);
	if (m->artifact.url && !url_ok(m->artifact.url))
		kmpkg_schema_report(s, KMPKG_SEV_ERROR, "INVALID_VALUE", kmpkg_yamltree_get(a, "url"), NULL,
				    "an https:// or http:// URL, or a relative path in the source", m->artifact.url,
				    "give an https URL or a path inside the source repository",
				    "'%.200s' is not a usable artifact location", m->artifact.url);
	kmpkg_schema_string(s, &m->artifact.sha256, a, "sha256", true);
	if (m->artifact.sha256) {
		char *h = m->artifact.sha256;
		bool ok = strlen(h) == 64 && strspn(h, "0123456789abcdefABCDEF") == 64;

		if (!ok)
			kmpkg_schema_report(s, KMPKG_SEV_ERROR, "INVALID_VALUE", kmpkg_yamltree_get(a, "sha256"),
					    NULL, "64 hexadecimal digits", h,
					    "write the output of 'sha256sum FILE' (64 hex digits)",
					    "sha256 must be 64 hexadecimal digits");
		for (i = 0; ok && h[i]; i++)
			h[i] = (char)tolower((unsigned char)h[i]);
	}
	kmpkg_schema_uint(s, &m->artifact.size, a, "size", true, 1, UINT64_MAX);
	kmpkg_schema_string(s, &m->artifact.signature, a, "signature", false);
	load_mirrors(s, m, a);
	kmpkg_schema_unknown(s, a, known);
}

static const char *const manifest_fields[] = {
	"apiVersion", "name", "version", "description", "host", "api", "tier", "capabilities",
	"permissions", "dependencies", "entrypoint", "health_check", "artifact", NULL,
};

int kmpkg_manifest_load_buf(struct kmpkg_manifest **out, const char *file, const char *data,
			    size_t len, struct kmpkg_diags *diags)
{
	struct kmpkg_schema s = { file, "MANIFEST", diags, 0, false };
	struct kmpkg_manifest *m = NULL;
	struct kmpkg_yamltree *t = NULL;
	kmpkg_ynode *root;
	int err;

	*out = NULL;
	if ((err = kmpkg_schema_open(&t, file, data, len, "MANIFEST", diags)) != 0)
		return err;
	root = t->root;
	m = calloc(1, sizeof(*m));
	if (!m || !(m->file = strdup(file))) {
		err = kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
		goto cleanup;
	}
	m->health_timeout_ms = 5000;

	kmpkg_schema_string(&s, &m->api_version, root, "apiVersion", true);
	if (m->api_version && strcmp(m->api_version, "kmpkg/v1") != 0)
		kmpkg_schema_report(&s, KMPKG_SEV_ERROR, "INVALID_VALUE", kmpkg_yamltree_get(root, "apiVersion"),
				    NULL, "kmpkg/v1", m->api_version,
				    "set apiVersion: kmpkg/v1 (or upgrade kmpkg if the manifest is newer)",
				    "unsupported apiVersion '%.100s'", m->api_version);
	kmpkg_schema_string(&s, &m->name, root, "name", true);
	if (m->name && !kmpkg_manifest_name_valid(m->name))
		kmpkg_schema_report(&s, KMPKG_SEV_ERROR, "INVALID_VALUE", kmpkg_yamltree_get(root, "name"), NULL,
				    NAME_RULE, m->name,
				    "use 1 to 63 lowercase letters, digits and '-', starting with a letter or digit",
				    "'%.100s' is not a valid plugin name", m->name);
	kmpkg_schema_string(&s, &m->version, root, "version", true);
	if (m->version && !kmpkg_schema_semver_valid(m->version))
		kmpkg_schema_report(&s, KMPKG_SEV_ERROR, "INVALID_VALUE", kmpkg_yamltree_get(root, "version"),
				    NULL, "SemVer 2.0.0 (MAJOR.MINOR.PATCH[-PRE][+BUILD])", m->version,
				    "write a full version such as 1.2.0",
				    "'%.100s' is not a SemVer 2.0.0 version", m->version);
	kmpkg_schema_string(&s, &m->description, root, "description", false);
	kmpkg_schema_string(&s, &m->host, root, "host", false);
	kmpkg_schema_string(&s, &m->api, root, "api", false);
	kmpkg_schema_string(&s, &m->tier, root, "tier", false);
	if (m->tier && !m->tier[0])
		kmpkg_schema_report(&s, KMPKG_SEV_ERROR, "INVALID_VALUE", kmpkg_yamltree_get(root, "tier"), NULL,
				    "a tier name", "\"\"", "name a tier, e.g. team, or remove the field",
				    "tier is empty");
	load_capabilities(&s, m, root);
	kmpkg_schema_strlist(&s, &m->permissions, root, "permissions", false);
	load_dependencies(&s, m, root);
	kmpkg_schema_string(&s, &m->entrypoint, root, "entrypoint", false);
	check_relpath(&s, root, "entrypoint", m->entrypoint);
	load_health(&s, m, root);
	load_artifact(&s, m, root);
	kmpkg_schema_unknown(&s, root, manifest_fields);

	if ((err = kmpkg_schema_close(&m->pos, &s, &t)) != 0)
		goto cleanup;
	*out = m;
	m = NULL;
cleanup:
	kmpkg_manifest_free(m);
	kmpkg_yamltree_free(t);
	return err;
}

int kmpkg_manifest_load_file(struct kmpkg_manifest **out, const char *path, struct kmpkg_diags *diags)
{
	char *data = NULL;
	size_t len, total;
	int err;

	*out = NULL;
	if ((err = kmpkg_yamltree_read_file(&data, &len, &total, path, KMPKG_MANIFEST_MAX_BYTES)) != 0)
		return err;
	if (!data)
		return kmpkg_yamltree_too_large(path, "MANIFEST", total, KMPKG_MANIFEST_MAX_BYTES, diags);
	err = kmpkg_manifest_load_buf(out, path, data, len, diags);
	free(data);
	return err;
}
