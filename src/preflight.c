/*
 * Preflight checks (include/kmpkg/preflight.h). Order per manifest: schema
 * (the loader), then ranges against the host (host, api), tier, capabilities,
 * permissions, dependencies. The code catalogue below is the source of the
 * SARIF rule texts and must match man/kmpkg-preflight.1.
 *
 * Pre-release hosts: node-semver lets a pre-release satisfy a range only when
 * a comparator names a pre-release of the same major.minor.patch, so a host
 * 1.7.0-rc.1 (or Helm's 1.27.0-eks-x trap) fails ">=1.4.0". Operators expect
 * a release candidate of 1.7.0 to run what 1.7.0 runs: when the strict test
 * fails but the release tuple 1.7.0 satisfies the range, the check passes
 * with the warning HOST_PRERELEASE (--strict turns it into a failure). The
 * tuple rule, unlike node-semver's includePrerelease, keeps "<2.0.0" closed
 * to a 2.0.0-rc.1 host.
 *
 * The sources' index (ctx->index, optional): a dependency that neither the
 * check set nor the installed set satisfies is resolved by an indexed version
 * in its range that passes on the host (index_passes: host, api, tier,
 * capabilities; permissions are an install-time grant, as in the resolver's
 * filter); a host, api, tier or capability finding names the newest other
 * indexed version of the plugin that passes (index_next_step), unless the
 * check set has one at least as new. Without an index nothing changes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kmpkg/archive.h"
#include "kmpkg/buf.h"
#include "kmpkg/error.h"
#include "kmpkg/index.h"
#include "kmpkg/preflight.h"
#include "kmpkg/semver.h"

/* --- the code catalogue ------------------------------------------------- */

struct code_doc {
	const char *code, *summary, *help;
};

static const struct code_doc catalogue[] = {
	{ "HOST_RANGE_UNSATISFIED", "The plugin's host range does not accept the host version.",
	  "Install a version of the plugin whose `host` range accepts this host, widen `host`, or run on a host within the range." },
	{ "HOST_PRERELEASE", "The host is a pre-release: accepted because its release version satisfies the host range.",
	  "Nothing is required; run a release host, or use --strict to make pre-release hosts fail." },
	{ "API_RANGE_UNSATISFIED", "No plugin API version provided by the host satisfies the plugin's api range.",
	  "Install a version of the plugin built for an API the host provides, or run a host that provides the API range." },
	{ "RANGE_INVALID", "The host or api range is not a node-semver range.",
	  "Write a node-semver range such as \">=1.4.0 <2.0.0\" or \"^2.1.0\"." },
	{ "CAPABILITY_MISSING", "A required capability is provided neither by the host nor by another plugin of the check set.",
	  "Install (and preflight together) a plugin that provides it, or run on a host that offers it." },
	{ "PERMISSION_NOT_ALLOWED", "A declared permission is not in the host's permissions_allowed.",
	  "Have the host operator allow the permission, or use a plugin version that does not need it." },
	{ "PERMISSION_NOT_GRANTED", "install/update: a declared permission is neither allowed by the host profile nor granted on this root.",
	  "Grant it with --allow-permission PERM on the install or update (recorded), or have the host operator allow it." },
	{ "NO_HOST_PROFILE", "install/update: the root has no host profile, so host, api, tier and capability checks were skipped.",
	  "Write the host profile to <root>/kmpkg/host.yaml (kmpkg-host(5)) or pass --host FILE." },
	{ "PERMISSION_UNDECLARED", "A required capability implies a permission the manifest does not declare.",
	  "Declare the implied permission in `permissions`." },
	{ "TIER_TOO_LOW", "The plugin needs a higher subscription tier than the host has.",
	  "Upgrade the host's tier or install a plugin version for the host's tier." },
	{ "TIER_UNKNOWN", "The plugin's tier is not one of the host's tiers.",
	  "Use one of the tier names listed in the host profile's `tiers`." },
	{ "DEPENDENCY_RANGE_INVALID", "A dependency's version range is not a node-semver range.",
	  "Write a node-semver range such as \"^1.0.0\"." },
	{ "DEPENDENCY_UNRESOLVED", "Nothing satisfies a dependency: no manifest of the check set (or the installed set with --installed), and no version the sources' index offers that passes on this host.",
	  "Add a satisfying version of the dependency to the run or to a source, pass --installed, or widen the range." },
};

void kmpkg_preflight_code_help(const char *code, const char **summary, const char **help)
{
	size_t i;

	for (i = 0; i < sizeof(catalogue) / sizeof(catalogue[0]); i++) {
		if (!strcmp(catalogue[i].code, code)) {
			*summary = catalogue[i].summary;
			*help = catalogue[i].help;
			return;
		}
	}
	if (!strncmp(code, "YAML_", 5)) {
		*summary = "The file is not acceptable YAML for kmpkg (syntax, limits, anchors, tags, duplicates).";
		*help = "Fix the YAML as the message says; see kmpkg-manifest(5) for the limits.";
	} else if (!strncmp(code, "HOST_", 5)) {
		*summary = "The host profile does not match the host-profile schema.";
		*help = "Fix the host profile as the message says; see kmpkg-host(5).";
	} else {
		*summary = "The manifest does not match the manifest schema.";
		*help = "Fix the manifest as the message says; see kmpkg-manifest(5).";
	}
}

/* --- capability -> permission ------------------------------------------- */

static const struct {
	const char *pattern; /* exact, or "prefix.*" */
	const char *permission;
} implied[] = {
	{ "http.*", "network" },
	{ "net.*", "network" },
	{ "filesystem.write", "filesystem_write" },
	{ "filesystem.*", "filesystem_read" },
	{ "secrets.*", "secrets" },
};

const char *kmpkg_preflight_implied_permission(const char *cap)
{
	size_t i, n;

	for (i = 0; i < sizeof(implied) / sizeof(implied[0]); i++) {
		const char *p = implied[i].pattern;

		n = strlen(p);
		if (n >= 2 && !strcmp(p + n - 2, ".*")) {
			if (!strncmp(cap, p, n - 1) && cap[n - 1] != '\0')
				return implied[i].permission;
		} else if (!strcmp(cap, p)) {
			return implied[i].permission;
		}
	}
	return NULL;
}

/* --- loading -------------------------------------------------------------- */

bool kmpkg_preflight_is_package(const char *path)
{
	static const struct {
		size_t off, len;
		const char *magic;
	} magics[] = {
		{ 0, 2, "\x1f\x8b" },             /* gzip */
		{ 0, 6, "\xfd" "7zXZ\x00" },      /* xz */
		{ 0, 4, "\x28\xb5\x2f\xfd" },     /* zstd */
		{ 0, 4, "PK\x03\x04" },           /* zip */
		{ 257, 5, "ustar" },              /* tar */
	};
	unsigned char head[262];
	size_t len = strlen(path), i;
	ssize_t n;
	int fd;

	if (len > 6 && !strcmp(path + len - 6, ".kmpkg"))
		return true;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, head, sizeof(head));
	close(fd);
	for (i = 0; n > 0 && i < sizeof(magics) / sizeof(magics[0]); i++)
		if ((size_t)n >= magics[i].off + magics[i].len &&
		    !memcmp(head + magics[i].off, magics[i].magic, magics[i].len))
			return true;
	return false;
}

int kmpkg_preflight_load(struct kmpkg_manifest **out, const char *path, struct kmpkg_diags *d)
{
	struct kmpkg_buf label = KMPKG_BUF_INIT;
	char *data = NULL;
	size_t len = 0;
	int err;

	*out = NULL;
	if (kmpkg_preflight_is_package(path)) {
		if ((err = kmpkg_archive_read_manifest(&data, &len, path)) != 0)
			goto cleanup;
		if ((err = kmpkg_buf_printf(&label, "%s(kmpkg.yaml)", path)) != 0)
			goto cleanup;
		err = kmpkg_manifest_load_buf(out, label.ptr, data, len, d);
	} else {
		err = kmpkg_manifest_load_file(out, path, d);
	}
	if (err == KMPKG_EUSAGE)
		err = KMPKG_EPREFLIGHT;
cleanup:
	free(data);
	kmpkg_buf_release(&label);
	return err;
}

void kmpkg_preflight_manifests_free(struct kmpkg_manifest **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		kmpkg_manifest_free(v[i]);
	free(v);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int kmpkg_preflight_load_installed(struct kmpkg_manifest ***out, size_t *n, const char *root)
{
	struct kmpkg_buf path = KMPKG_BUF_INIT;
	struct kmpkg_diags scratch = KMPKG_DIAGS_INIT;
	struct kmpkg_manifest **v = NULL, *m = NULL;
	char **names = NULL;
	size_t nnames = 0, cap = 0, nv = 0, i;
	struct dirent *e;
	DIR *dir = NULL;
	int err = 0;

	*out = NULL;
	*n = 0;
	if ((err = kmpkg_buf_printf(&path, "%s/plugins", root)) != 0)
		goto cleanup;
	dir = opendir(path.ptr);
	if (!dir && errno != ENOENT && errno != ENOTDIR) {
		err = kmpkg_error_errno(errno, "open the plugin directory", path.ptr);
		goto cleanup;
	}
	while (dir && (e = readdir(dir)) != NULL) {
		char *s;

		if (e->d_name[0] == '.')
			continue;
		if (nnames == cap) {
			char **nn = realloc(names, (cap ? cap * 2 : 16) * sizeof(*names));

			if (!nn)
				goto oom;
			names = nn;
			cap = cap ? cap * 2 : 16;
		}
		if (!(s = strdup(e->d_name)))
			goto oom;
		names[nnames++] = s;
	}
	/* Directory order is the file system's: sort for stable output. */
	if (nnames)
		qsort(names, nnames, sizeof(*names), cmp_names);
	v = calloc(nnames ? nnames : 1, sizeof(*v));
	if (!v)
		goto oom;
	for (i = 0; i < nnames; i++) {
		kmpkg_buf_clear(&path);
		if ((err = kmpkg_buf_printf(&path, "%s/plugins/%s/kmpkg.yaml", root, names[i])) != 0)
			goto cleanup;
		if (access(path.ptr, F_OK) != 0)
			continue;
		err = kmpkg_manifest_load_file(&m, path.ptr, &scratch);
		if (err == KMPKG_EGENERIC)
			goto cleanup;
		err = 0; /* a broken installed manifest provides nothing */
		if (m)
			v[nv++] = m;
		m = NULL;
	}
	*out = v;
	*n = nv;
	v = NULL;
	nv = 0;
	goto cleanup;
oom:
	err = kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
cleanup:
	if (dir)
		closedir(dir);
	for (i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	kmpkg_preflight_manifests_free(v, nv);
	kmpkg_diags_release(&scratch);
	kmpkg_buf_release(&path);
	return err;
}

/* --- checks --------------------------------------------------------------- */

struct check {
	const struct kmpkg_preflight_ctx *ctx;
	const struct kmpkg_manifest *m;
	struct kmpkg_diags *d;
	size_t errors;
	bool oom;
};

static void report(struct check *c, enum kmpkg_severity sev, const char *code, const char *field,
		   const char *required, const char *actual, const char *next_step, const char *fmt, ...)
	__attribute__((format(printf, 8, 9)));

static void report(struct check *c, enum kmpkg_severity sev, const char *code, const char *field,
		   const char *required, const char *actual, const char *next_step, const char *fmt, ...)
{
	char msg[1024];
	int line = 0, col = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kmpkg_posmap_find(c->m->pos, field, &line, &col);
	if (kmpkg_diags_add(c->d, sev, code, field, c->m->file, line, col, required, actual, next_step,
			    "%s", msg) != 0)
		c->oom = true;
	else if (sev == KMPKG_SEV_ERROR)
		c->errors++;
}

/* JSON Pointer token escaping (RFC 6901): ~ -> ~0, / -> ~1. */
static void pointer_append(struct kmpkg_buf *b, const char *token)
{
	kmpkg_buf_puts(b, "/");
	for (; *token; token++) {
		if (*token == '~')
			kmpkg_buf_puts(b, "~0");
		else if (*token == '/')
			kmpkg_buf_puts(b, "~1");
		else
			kmpkg_buf_put(b, token, 1);
	}
}

static void join(struct kmpkg_buf *b, const struct kmpkg_strlist *l, const char *empty)
{
	size_t i;

	if (l->n == 0) {
		kmpkg_buf_puts(b, empty);
		return;
	}
	for (i = 0; i < l->n; i++)
		kmpkg_buf_printf(b, "%s%s", i ? ", " : "", l->v[i]);
}

enum range_result { RANGE_BAD = -1, RANGE_NO = 0, RANGE_YES = 1, RANGE_YES_PRERELEASE = 2 };

/* Host version against a range with the pre-release rule described at the top. */
static enum range_result test_host(const char *range, const char *version)
{
	struct kmpkg_semver_range *r = NULL;
	struct kmpkg_semver v, tuple;
	enum range_result res = RANGE_BAD;

	if (kmpkg_semver_range_parse(&r, range) != 0)
		return RANGE_BAD;
	if (kmpkg_semver_parse(&v, version) != 0)
		goto cleanup;
	if (kmpkg_semver_range_test(r, &v)) {
		res = RANGE_YES;
	} else {
		res = RANGE_NO;
		tuple = v;
		tuple.pre = NULL;
		tuple.npre = 0;
		tuple.build = NULL;
		if (v.npre && kmpkg_semver_range_test(r, &tuple))
			res = RANGE_YES_PRERELEASE;
	}
	kmpkg_semver_release(&v);
cleanup:
	kmpkg_semver_range_free(r);
	kmpkg_error_clear();
	return res;
}

/* Any of the versions in l satisfying range (strict node-semver). */
static enum range_result test_any(const char *range, const struct kmpkg_strlist *l)
{
	struct kmpkg_semver_range *r = NULL;
	enum range_result res = RANGE_NO;
	size_t i;

	if (kmpkg_semver_range_parse(&r, range) != 0) {
		kmpkg_error_clear();
		return RANGE_BAD;
	}
	for (i = 0; i < l->n && res == RANGE_NO; i++) {
		struct kmpkg_semver v;

		if (kmpkg_semver_parse(&v, l->v[i]) != 0)
			continue;
		if (kmpkg_semver_range_test(r, &v))
			res = RANGE_YES;
		kmpkg_semver_release(&v);
	}
	kmpkg_semver_range_free(r);
	kmpkg_error_clear();
	return res;
}

/* Why range does not parse, from the semver module, into why. */
static void range_why(char *why, size_t n, const char *range)
{
	struct kmpkg_semver_range *r = NULL;
	const char *msg, *colon;

	why[0] = '\0';
	if (kmpkg_semver_range_parse(&r, range) != 0) {
		msg = kmpkg_error_last()->message;
		colon = strstr(msg, "': ");
		snprintf(why, n, ": %s", colon ? colon + 3 : msg);
	}
	kmpkg_semver_range_free(r);
	kmpkg_error_clear();
}

static long tier_index(const struct kmpkg_host *h, const char *tier)
{
	size_t i;

	for (i = 0; i < h->tiers.n; i++)
		if (!strcmp(h->tiers.v[i], tier))
			return (long)i;
	return -1;
}

/* The host's own tier: its `tier`, else the lowest listed. */
static long host_tier(const struct kmpkg_host *h)
{
	if (h->tier)
		return tier_index(h, h->tier);
	return h->tiers.n ? 0 : -1;
}

/* Whether m passes the host checks that do not depend on other plugins. */
static bool host_compatible(const struct kmpkg_host *h, const struct kmpkg_manifest *m)
{
	long t;

	if (m->host && test_host(m->host, h->version) <= RANGE_NO)
		return false;
	if (m->api && test_any(m->api, &h->api) != RANGE_YES)
		return false;
	if (m->tier) {
		t = tier_index(h, m->tier);
		if (t < 0 || t > host_tier(h))
			return false;
	}
	return true;
}

static int version_cmp(const char *a, const char *b)
{
	int r = 0;

	if (kmpkg_semver_compare(&r, a, b) != 0) {
		kmpkg_error_clear();
		return strcmp(a, b);
	}
	return r;
}

/* The newest other version of m in the check set that passes the host
 * checks, or NULL: the best next step when m itself does not fit. */
static const struct kmpkg_manifest *newest_alternative(const struct check *c)
{
	const struct kmpkg_preflight_ctx *ctx = c->ctx;
	const struct kmpkg_manifest *best = NULL;
	size_t i;

	for (i = 0; i < ctx->ngiven; i++) {
		const struct kmpkg_manifest *o = ctx->given[i];

		if (!o || o == c->m || strcmp(o->name, c->m->name) || !strcmp(o->version, c->m->version))
			continue;
		if (!host_compatible(ctx->host, o))
			continue;
		if (!best || version_cmp(o->version, best->version) > 0)
			best = o;
	}
	return best;
}

/* --- the index cache (ctx->index) ----------------------------------------- */

int kmpkg_preflight_index_load(json_t **out, struct kmpkg_state_txn *t, struct kmpkg_manifest *const *v, size_t n)
{
	json_t *idx = json_object(), *vers = NULL;
	size_t i, j;
	int err = 0;

	*out = NULL;
	if (!idx)
		return kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
	for (i = 0; i < n; i++) {
		for (j = 0; v[i] && j <= v[i]->ndeps; j++) {
			const char *name = j ? v[i]->deps[j - 1].name : v[i]->name;

			if (json_object_get(idx, name))
				continue;
			if ((err = kmpkg_index_versions(&vers, t, name)) != 0)
				goto cleanup;
			json_object_set_new(idx, name, vers);
			vers = NULL;
		}
	}
	*out = idx;
	idx = NULL;
cleanup:
	json_decref(idx);
	return err;
}

static const char *sum_str(const json_t *sum, const char *key)
{
	const char *s = json_string_value(json_object_get(sum, key));

	return s ? s : "";
}

/* The indexed versions of `name`, newest first; NULL when there are none or
 * the index is not consulted. */
static const json_t *indexed(const struct kmpkg_preflight_ctx *ctx, const char *name)
{
	const json_t *v = ctx->index ? json_object_get(ctx->index, name) : NULL;

	return json_array_size(v) ? v : NULL;
}

/* "1.0.0, 2.0.0, 3.0.0": the distinct versions of vers, oldest first,
 * leaving out `except` (may be NULL). */
static void offered(struct kmpkg_buf *b, const json_t *vers, const char *except)
{
	const char *prev = NULL;
	size_t i = json_array_size(vers), n = 0;

	while (i-- > 0) {
		const char *v = sum_str(json_array_get(vers, i), "version");

		if ((prev && !strcmp(prev, v)) || (except && !version_cmp(v, except)))
			continue;
		kmpkg_buf_printf(b, "%s%s", n++ ? ", " : "", v);
		prev = v;
	}
}

/* A plugin other than `self` (by name) of the check or installed set
 * provides cap. */
static bool provided_by_other(const struct kmpkg_preflight_ctx *ctx, const char *self, const char *cap)
{
	size_t k, i;

	for (k = 0; k < 2; k++) {
		struct kmpkg_manifest *const *v = k ? ctx->installed : ctx->given;
		size_t n = k ? ctx->ninstalled : ctx->ngiven;

		for (i = 0; v && i < n; i++)
			if (v[i] && strcmp(v[i]->name, self) && kmpkg_strlist_contains(&v[i]->provides, cap))
				return true;
	}
	return false;
}

/*
 * Whether the indexed version sum would pass on this host: host range, api,
 * tier, and every required capability offered by the host or by another
 * plugin of the check or installed set. Permissions do not count: they are a
 * grant given at install (--allow-permission), as in the resolver's filter.
 * why (may be NULL) gets the first failure.
 */
static bool index_passes(const struct kmpkg_preflight_ctx *ctx, const json_t *sum, struct kmpkg_buf *why)
{
	const struct kmpkg_host *h = ctx->host;
	struct kmpkg_manifest *o = NULL;
	struct kmpkg_buf have = KMPKG_BUF_INIT;
	bool ok = false;
	size_t i;
	long t;

	if (!h)
		return true;
	kmpkg_index_manifest(&o, sum);
	if (o->host && test_host(o->host, h->version) <= RANGE_NO) {
		if (why)
			kmpkg_buf_printf(why, "its host range %s does not accept %s", o->host, h->version);
		goto cleanup;
	}
	if (o->api && test_any(o->api, &h->api) != RANGE_YES) {
		join(&have, &h->api, "none");
		if (why)
			kmpkg_buf_printf(why, "it speaks API %s; the host provides %s", o->api, have.ptr);
		goto cleanup;
	}
	if (o->tier) {
		t = tier_index(h, o->tier);
		if (t < 0 || t > host_tier(h)) {
			if (why)
				kmpkg_buf_printf(why, "it needs tier %s", o->tier);
			goto cleanup;
		}
	}
	for (i = 0; i < o->requires.n; i++) {
		const char *cap = o->requires.v[i];

		if (kmpkg_strlist_contains(&h->capabilities, cap) || provided_by_other(ctx, o->name, cap))
			continue;
		if (why)
			kmpkg_buf_printf(why, "it requires capability %s, which nothing here provides", cap);
		goto cleanup;
	}
	ok = true;
cleanup:
	kmpkg_buf_release(&have);
	kmpkg_manifest_free(o);
	return ok;
}

enum index_step { INDEX_NOTHING, INDEX_PASSES, INDEX_NONE_PASSES };

/*
 * The next step the sources give a manifest failing a host, api, tier or
 * capability check: INDEX_PASSES with "NAME V (source S) passes on this host:
 * kmpkg install NAME@V" in next for the newest other indexed version that
 * passes (unless alt, from the check set, is at least as new);
 * INDEX_NONE_PASSES with "no version ... passes on this host (...); " in next
 * when the sources offer others and none passes (and alt is NULL), for the
 * caller to complete; INDEX_NOTHING (next untouched) otherwise.
 */
static enum index_step index_next_step(struct kmpkg_buf *next, const struct check *c,
				       const struct kmpkg_manifest *alt)
{
	const json_t *vers = indexed(c->ctx, c->m->name), *sum;
	struct kmpkg_buf list = KMPKG_BUF_INIT;
	enum index_step res = INDEX_NOTHING;
	size_t i, others = 0;

	json_array_foreach(vers, i, sum) {
		const char *v = sum_str(sum, "version");

		if (!version_cmp(v, c->m->version))
			continue;
		others++;
		if (alt && version_cmp(v, alt->version) <= 0)
			goto cleanup; /* the check set's alternative is as new */
		if (!index_passes(c->ctx, sum, NULL))
			continue;
		kmpkg_buf_printf(next, "%s %s (source %s) passes on this host: kmpkg install %s@%s", c->m->name, v,
				 sum_str(sum, "source"), c->m->name, v);
		res = INDEX_PASSES;
		goto cleanup;
	}
	if (others && !alt) {
		offered(&list, vers, c->m->version);
		kmpkg_buf_printf(next, "no other version of %s in the sources passes on this host either (they offer "
				       "%s); ",
				 c->m->name, list.ptr);
		res = INDEX_NONE_PASSES;
	}
cleanup:
	kmpkg_buf_release(&list);
	return res;
}

static void check_host_range(struct check *c)
{
	const struct kmpkg_host *h = c->ctx->host;
	const struct kmpkg_manifest *m = c->m, *alt;
	struct kmpkg_buf next = KMPKG_BUF_INIT;
	char why[256];

	if (!m->host)
		return;
	switch (test_host(m->host, h->version)) {
	case RANGE_BAD:
		range_why(why, sizeof(why), m->host);
		report(c, KMPKG_SEV_ERROR, "RANGE_INVALID", "/host", "a node-semver range", m->host,
		       "write a node-semver range such as \">=1.4.0 <2.0.0\"",
		       "host range '%.200s' is not a node-semver range%s", m->host, why);
		break;
	case RANGE_NO:
		alt = newest_alternative(c);
		if (index_next_step(&next, c, alt) == INDEX_PASSES)
			;
		else if (alt)
			kmpkg_buf_printf(&next, "install %s@%s, the newest version whose host range accepts %s",
					 alt->name, alt->version, h->version);
		else
			kmpkg_buf_printf(&next, "widen `host` to include %s or run on a host within %s",
					 h->version, m->host);
		report(c, KMPKG_SEV_ERROR, "HOST_RANGE_UNSATISFIED", "/host", m->host, h->version, next.ptr,
		       "%s@%s supports hosts %s; this host is %s", m->name, m->version, m->host, h->version);
		break;
	case RANGE_YES_PRERELEASE:
		kmpkg_buf_printf(&next, "none required (judged as host %.*s); run a release host, or pass "
					"--strict to refuse pre-release hosts",
				 (int)strcspn(h->version, "-+"), h->version);
		report(c, KMPKG_SEV_WARNING, "HOST_PRERELEASE", "/host", m->host, h->version, next.ptr,
		       "host %s is a pre-release, which node-semver excludes from %s; accepted because its "
		       "release version satisfies the range",
		       h->version, m->host);
		break;
	case RANGE_YES:
		break;
	}
	kmpkg_buf_release(&next);
}

static void check_api_range(struct check *c)
{
	const struct kmpkg_host *h = c->ctx->host;
	const struct kmpkg_manifest *m = c->m, *alt;
	struct kmpkg_buf next = KMPKG_BUF_INIT, have = KMPKG_BUF_INIT;
	char why[256];

	if (!m->api)
		return;
	join(&have, &h->api, "none");
	switch (test_any(m->api, &h->api)) {
	case RANGE_BAD:
		range_why(why, sizeof(why), m->api);
		report(c, KMPKG_SEV_ERROR, "RANGE_INVALID", "/api", "a node-semver range", m->api,
		       "write a node-semver range such as \"^2.1.0\"",
		       "api range '%.200s' is not a node-semver range%s", m->api, why);
		break;
	case RANGE_NO:
		alt = newest_alternative(c);
		if (index_next_step(&next, c, alt) == INDEX_PASSES)
			;
		else if (alt)
			kmpkg_buf_printf(&next, "install %s@%s, the newest version whose api range accepts %s",
					 alt->name, alt->version, have.ptr);
		else
			kmpkg_buf_printf(&next, "build the plugin against a provided API (%s) or run on a host "
						"that provides API %s",
					 have.ptr, m->api);
		report(c, KMPKG_SEV_ERROR, "API_RANGE_UNSATISFIED", "/api", m->api, have.ptr, next.ptr,
		       "%s@%s speaks API %s; the host provides %s", m->name, m->version, m->api, have.ptr);
		break;
	default:
		break;
	}
	kmpkg_buf_release(&next);
	kmpkg_buf_release(&have);
}

static void check_tier(struct check *c)
{
	const struct kmpkg_host *h = c->ctx->host;
	const struct kmpkg_manifest *m = c->m, *alt;
	struct kmpkg_buf next = KMPKG_BUF_INIT, tiers = KMPKG_BUF_INIT;
	long want, have;

	if (!m->tier)
		return;
	join(&tiers, &h->tiers, "none");
	want = tier_index(h, m->tier);
	have = host_tier(h);
	if (want < 0) {
		kmpkg_buf_printf(&next, "use one of the host's tiers (%s)", tiers.ptr);
		report(c, KMPKG_SEV_ERROR, "TIER_UNKNOWN", "/tier", tiers.ptr, m->tier, next.ptr,
		       "tier '%s' is not one of the host's tiers", m->tier);
	} else if (have >= 0 && want > have) {
		alt = newest_alternative(c);
		if (index_next_step(&next, c, alt) == INDEX_PASSES)
			;
		else if (alt)
			kmpkg_buf_printf(&next, "install %s@%s, the newest version available for tier %s",
					 alt->name, alt->version, h->tiers.v[have]);
		else
			kmpkg_buf_printf(&next, "upgrade the host to tier %s or use a plugin version for tier %s",
					 m->tier, h->tiers.v[have]);
		report(c, KMPKG_SEV_ERROR, "TIER_TOO_LOW", "/tier", m->tier, h->tiers.v[have], next.ptr,
		       "%s@%s needs tier %s; this host has tier %s", m->name, m->version, m->tier,
		       h->tiers.v[have]);
	}
	kmpkg_buf_release(&next);
	kmpkg_buf_release(&tiers);
}

static bool provided_by_set(struct kmpkg_manifest *const *v, size_t n, const struct kmpkg_manifest *self,
			    const char *cap)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i] && v[i] != self && kmpkg_strlist_contains(&v[i]->provides, cap))
			return true;
	return false;
}

static void check_capabilities(struct check *c)
{
	const struct kmpkg_preflight_ctx *ctx = c->ctx;
	const struct kmpkg_manifest *m = c->m;
	struct kmpkg_buf field = KMPKG_BUF_INIT, next = KMPKG_BUF_INIT, have = KMPKG_BUF_INIT;
	size_t i;

	join(&have, &ctx->host->capabilities, "none");
	for (i = 0; i < m->requires.n; i++) {
		const char *cap = m->requires.v[i];

		if (kmpkg_strlist_contains(&ctx->host->capabilities, cap) ||
		    provided_by_set(ctx->given, ctx->ngiven, m, cap) ||
		    provided_by_set(ctx->installed, ctx->ninstalled, m, cap))
			continue;
		kmpkg_buf_clear(&field);
		kmpkg_buf_printf(&field, "/capabilities/requires/%zu", i);
		kmpkg_buf_clear(&next);
		if (index_next_step(&next, c, NULL) != INDEX_PASSES)
			kmpkg_buf_printf(&next, "preflight and install a plugin that provides %s together with %s, "
						"or run on a host that offers it (this host offers: %s)",
					 cap, m->name, have.ptr);
		report(c, KMPKG_SEV_ERROR, "CAPABILITY_MISSING", field.ptr, cap, have.ptr, next.ptr,
		       "capability '%s' is provided neither by the host nor by a plugin of this check", cap);
	}
	kmpkg_buf_release(&field);
	kmpkg_buf_release(&next);
	kmpkg_buf_release(&have);
}

bool kmpkg_preflight_permission_ok(const struct kmpkg_preflight_ctx *ctx, const char *p)
{
	return (ctx->host && kmpkg_strlist_contains(&ctx->host->permissions_allowed, p)) ||
	       (ctx->granted && kmpkg_strlist_contains(ctx->granted, p));
}

/* The engine's next step: one command granting every permission of the
 * manifest that is still missing. */
static void grant_step(struct kmpkg_buf *next, const struct check *c)
{
	const struct kmpkg_preflight_ctx *ctx = c->ctx;
	const struct kmpkg_manifest *m = c->m;
	size_t i, n = 0;

	kmpkg_buf_puts(next, ctx->grant_command);
	for (i = 0; i < m->permissions.n; i++) {
		if (kmpkg_preflight_permission_ok(ctx, m->permissions.v[i]))
			continue;
		kmpkg_buf_printf(next, " --allow-permission %s", m->permissions.v[i]);
		n++;
	}
	if (ctx->grant_args && ctx->grant_args[0])
		kmpkg_buf_printf(next, " %s", ctx->grant_args);
	kmpkg_buf_printf(next, " (grants %s to %s on this root), or have the host operator allow %s in "
			       "permissions_allowed of %s",
			 n > 1 ? "them" : "it", m->name, n > 1 ? "them" : "it",
			 ctx->host && ctx->host->file ? ctx->host->file : "the host profile (kmpkg-host(5))");
}

static void check_permissions(struct check *c)
{
	static const struct kmpkg_strlist none = { NULL, 0 };
	const struct kmpkg_preflight_ctx *ctx = c->ctx;
	const struct kmpkg_host *h = ctx->host;
	const struct kmpkg_manifest *m = c->m;
	struct kmpkg_buf field = KMPKG_BUF_INIT, next = KMPKG_BUF_INIT, allowed = KMPKG_BUF_INIT,
			 declared = KMPKG_BUF_INIT;
	size_t i;

	join(&allowed, h ? &h->permissions_allowed : &none, "none");
	if (ctx->granted && ctx->granted->n) {
		kmpkg_buf_puts(&allowed, "; granted: ");
		join(&allowed, ctx->granted, "none");
	}
	join(&declared, &m->permissions, "none");
	for (i = 0; i < m->permissions.n; i++) {
		const char *p = m->permissions.v[i];

		if (kmpkg_preflight_permission_ok(ctx, p))
			continue;
		kmpkg_buf_clear(&field);
		kmpkg_buf_printf(&field, "/permissions/%zu", i);
		kmpkg_buf_clear(&next);
		if (ctx->grant_command) {
			grant_step(&next, c);
			report(c, KMPKG_SEV_ERROR, "PERMISSION_NOT_GRANTED", field.ptr, allowed.ptr, p, next.ptr,
			       "%s@%s needs permission '%s', which the host profile does not allow and "
			       "which is not granted on this root",
			       m->name, m->version, p);
			continue;
		}
		kmpkg_buf_printf(&next, "ask the host operator to add %s to permissions_allowed in %s (or "
					"`kmpkg install --allow-permission %s` to grant it to this plugin), or use a version "
					"of %s that does not need it",
				 p, h->file ? h->file : "the host profile", p, m->name);
		report(c, KMPKG_SEV_ERROR, "PERMISSION_NOT_ALLOWED", field.ptr, allowed.ptr, p, next.ptr,
		       "permission '%s' is not allowed by the host", p);
	}
	for (i = 0; i < m->requires.n; i++) {
		const char *cap = m->requires.v[i], *p = kmpkg_preflight_implied_permission(cap);

		if (!p || kmpkg_strlist_contains(&m->permissions, p))
			continue;
		kmpkg_buf_clear(&field);
		kmpkg_buf_printf(&field, "/capabilities/requires/%zu", i);
		kmpkg_buf_clear(&next);
		kmpkg_buf_printf(&next, "add %s to permissions (capability %s uses it)", p, cap);
		report(c, KMPKG_SEV_ERROR, "PERMISSION_UNDECLARED", field.ptr, p, declared.ptr, next.ptr,
		       "capability '%s' implies permission '%s', which is not declared", cap, p);
	}
	kmpkg_buf_release(&field);
	kmpkg_buf_release(&next);
	kmpkg_buf_release(&allowed);
	kmpkg_buf_release(&declared);
}

/* Candidates for a dependency: the check set, then installed plugins whose
 * name the check set does not hold (those it holds would be replaced). */
static bool dep_candidate(const struct kmpkg_preflight_ctx *ctx, const struct kmpkg_manifest *o, bool installed,
			  const char *name)
{
	size_t i;

	if (!o || strcmp(o->name, name))
		return false;
	if (!installed)
		return true;
	for (i = 0; i < ctx->ngiven; i++)
		if (ctx->given[i] && !strcmp(ctx->given[i]->name, name))
			return false;
	return true;
}

/*
 * A dependency the check and installed sets do not satisfy, against the
 * sources' index: true when an indexed version satisfies r and passes on this
 * host. Otherwise *sat = the newest satisfying one (or NULL), why = why it
 * does not pass, *best = the newest indexed version that passes (else the
 * newest), for the next step.
 */
static bool index_resolves(const struct kmpkg_preflight_ctx *ctx, const json_t *vers,
			   const struct kmpkg_semver_range *r, const json_t **sat, const json_t **best,
			   struct kmpkg_buf *why)
{
	const json_t *sum;
	size_t i;

	*sat = NULL;
	*best = NULL;
	json_array_foreach(vers, i, sum) {
		struct kmpkg_semver sv;
		bool in_range;

		if (kmpkg_semver_parse(&sv, sum_str(sum, "version")) != 0) {
			kmpkg_error_clear();
			continue;
		}
		in_range = kmpkg_semver_range_test(r, &sv);
		kmpkg_semver_release(&sv);
		if (in_range && !*sat) {
			*sat = sum;
			if (index_passes(ctx, sum, why))
				return true;
		} else if (in_range && index_passes(ctx, sum, NULL)) {
			return true;
		}
		if (!*best && !in_range && index_passes(ctx, sum, NULL))
			*best = sum;
	}
	if (!*best)
		*best = json_array_get(vers, 0);
	return false;
}

static void check_dependencies(struct check *c)
{
	const struct kmpkg_preflight_ctx *ctx = c->ctx;
	const struct kmpkg_manifest *m = c->m;
	struct kmpkg_buf field = KMPKG_BUF_INIT, next = KMPKG_BUF_INIT, seen = KMPKG_BUF_INIT,
			 msg = KMPKG_BUF_INIT, why = KMPKG_BUF_INIT;
	size_t i, j, k;

	for (i = 0; i < m->ndeps; i++) {
		const struct kmpkg_dependency *dep = &m->deps[i];
		const char *newest = NULL;
		const json_t *vers = indexed(ctx, dep->name), *sat = NULL, *best = NULL;
		struct kmpkg_semver_range *r = NULL;
		bool ok = false;
		size_t found = 0;

		kmpkg_buf_clear(&field);
		kmpkg_buf_puts(&field, "/dependencies");
		pointer_append(&field, dep->name);
		if (kmpkg_semver_range_parse(&r, dep->range) != 0) {
			char rwhy[256];

			kmpkg_error_clear();
			range_why(rwhy, sizeof(rwhy), dep->range);
			kmpkg_buf_clear(&next);
			kmpkg_buf_printf(&next, "write a node-semver range such as \"^1.0.0\" for %s", dep->name);
			report(c, KMPKG_SEV_ERROR, "DEPENDENCY_RANGE_INVALID", field.ptr, "a node-semver range",
			       dep->range, next.ptr, "dependency %s: '%.200s' is not a node-semver range%s",
			       dep->name, dep->range, rwhy);
			continue;
		}
		kmpkg_buf_clear(&seen);
		for (k = 0; k < 2 && !ok; k++) {
			struct kmpkg_manifest *const *v = k ? ctx->installed : ctx->given;
			size_t n = k ? ctx->ninstalled : ctx->ngiven;

			for (j = 0; j < n && !ok; j++) {
				struct kmpkg_semver sv;

				if (!dep_candidate(ctx, v[j], k == 1, dep->name))
					continue;
				kmpkg_buf_printf(&seen, "%s%s", found++ ? ", " : "", v[j]->version);
				if (!newest || version_cmp(v[j]->version, newest) > 0)
					newest = v[j]->version;
				if (kmpkg_semver_parse(&sv, v[j]->version) != 0) {
					kmpkg_error_clear();
					continue;
				}
				ok = kmpkg_semver_range_test(r, &sv);
				kmpkg_semver_release(&sv);
			}
		}
		kmpkg_buf_clear(&why);
		if (!ok && vers)
			ok = index_resolves(ctx, vers, r, &sat, &best, &why);
		kmpkg_semver_range_free(r);
		if (ok)
			continue;
		kmpkg_buf_clear(&next);
		kmpkg_buf_clear(&msg);
		kmpkg_buf_printf(&msg, "dependency %s %s: %s", dep->name, dep->range,
				 found ? "no version in this check satisfies the range" : "no manifest of it in this check");
		if (vers) {
			kmpkg_buf_printf(&msg, "; sources offer %s ", dep->name);
			offered(&msg, vers, NULL);
			if (found)
				kmpkg_buf_puts(&seen, "; ");
			kmpkg_buf_puts(&seen, "sources: ");
			offered(&seen, vers, NULL);
		}
		if (sat) {
			kmpkg_buf_printf(&msg, "; the newest within %s, %s, does not pass on this host: %s", dep->range,
					 sum_str(sat, "version"), why.ptr);
			kmpkg_buf_printf(&next, "%s %s (source %s) is the newest version within %s and does not pass on "
						"this host (%s): publish a version of %s within %s that does, or widen the range",
					 dep->name, sum_str(sat, "version"), sum_str(sat, "source"), dep->range, why.ptr,
					 dep->name, dep->range);
		} else if (vers) {
			kmpkg_buf_printf(&msg, "; none satisfies %s", dep->range);
			kmpkg_buf_printf(&next, "widen the range to accept %s %s (source %s), the newest the sources "
						"offer that passes on this host, or publish a version of %s within %s",
					 dep->name, sum_str(best, "version"), sum_str(best, "source"), dep->name,
					 dep->range);
			if (!index_passes(ctx, best, NULL)) {
				kmpkg_buf_clear(&next);
				kmpkg_buf_printf(&next, "publish a version of %s within %s that passes on this host "
							"(none the sources offer does), or widen the range",
						 dep->name, dep->range);
			}
		} else {
			if (ctx->index)
				kmpkg_buf_printf(&msg, "; no source offers %s", dep->name);
			if (!found)
				kmpkg_buf_printf(&next, "add a manifest of %s within %s to this preflight run (e.g. its "
							"source index file)%s%s",
						 dep->name, dep->range,
						 ctx->installed ? "" : ", or pass --installed to check against the installed plugins",
						 ctx->index ? ", or add a source that offers it (kmpkg source add)" : "");
			else
				kmpkg_buf_printf(&next, "add a version of %s within %s to this run, or widen the range to "
							"accept %s",
						 dep->name, dep->range, newest);
		}
		report(c, KMPKG_SEV_ERROR, "DEPENDENCY_UNRESOLVED", field.ptr, dep->range,
		       found || vers ? seen.ptr : "none", next.ptr, "%s", msg.ptr);
	}
	kmpkg_buf_release(&field);
	kmpkg_buf_release(&next);
	kmpkg_buf_release(&seen);
	kmpkg_buf_release(&msg);
	kmpkg_buf_release(&why);
}

int kmpkg_preflight_check_manifest(const struct kmpkg_preflight_ctx *ctx, const struct kmpkg_manifest *m,
				   struct kmpkg_diags *d)
{
	struct check c = { ctx, m, d, 0, false };

	if (ctx->host) {
		check_host_range(&c);
		check_api_range(&c);
		check_tier(&c);
		check_capabilities(&c);
	}
	if (ctx->host || ctx->grant_command)
		check_permissions(&c);
	if (!ctx->skip_dependencies)
		check_dependencies(&c);
	if (c.oom)
		return kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
	return c.errors ? KMPKG_EPREFLIGHT : 0;
}

int kmpkg_preflight_check_file(const char *path, const struct kmpkg_host *host, struct kmpkg_diags *d)
{
	struct kmpkg_manifest *m = NULL;
	struct kmpkg_preflight_ctx ctx = { .host = host, .skip_dependencies = true };
	int err;

	err = kmpkg_preflight_load(&m, path, d);
	if (err)
		goto cleanup;
	ctx.given = &m;
	ctx.ngiven = 1;
	err = kmpkg_preflight_check_manifest(&ctx, m, d);
cleanup:
	kmpkg_manifest_free(m);
	return err;
}
