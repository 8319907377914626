/* Installing by name: resolution from the index cache, fetch, one transaction (src/plan.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kmpkg/buf.h"
#include "kmpkg/error.h"
#include "kmpkg/fetch.h"
#include "kmpkg/fsutil.h"
#include "kmpkg/index.h"
#include "kmpkg/lock.h"
#include "kmpkg/preflight.h"
#include "kmpkg/resolve.h"
#include "kmpkg/semver.h"
#include "kmpkg/sha256.h"
#include "kmpkg/source.h"
#include "kmpkg/state.h"
#include "plan.h"

#define SIGNATURE_MAX_BYTES (64 * 1024)

static const char *js(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

bool kmpkg_plan_is_name(const char *operand)
{
	const char *at = strchr(operand, '@');
	size_t n = at ? (size_t)(at - operand) : strlen(operand);
	char name[64];

	if (strchr(operand, '/') || n == 0 || n >= sizeof(name) || kmpkg_fsutil_exists(operand))
		return false;
	memcpy(name, operand, n);
	name[n] = '\0';
	return kmpkg_manifest_name_valid(name);
}

int kmpkg_plan_load_host(struct kmpkg_host **out, const char *root, const char *file)
{
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	char *kdir = kmpkg_fsutil_join(root, "kmpkg");
	char *path = file ? strdup(file) : kmpkg_fsutil_join(kdir, "host.yaml");
	size_t i;
	int err = 0;

	*out = NULL;
	if (!path) {
		err = kmpkg_error_errno(ENOMEM, "load host profile", file);
		goto cleanup;
	}
	if (!kmpkg_fsutil_exists(path)) {
		/* The default profile is optional (host checks are skipped with a
		 * warning); one named with --host must exist. */
		if (file)
			err = kmpkg_error_set(KMPKG_EUSAGE, "E_HOST_PROFILE_MISSING", NULL,
					      "give the path of a host profile (kmpkg-host(5))",
					      "no host profile at %s", file);
		goto cleanup;
	}
	err = kmpkg_host_load_file(out, path, &d);
	if (err == KMPKG_EUSAGE) {
		for (i = 0; i < d.n && d.v[i].severity != KMPKG_SEV_ERROR; i++)
			;
		err = kmpkg_error_set(KMPKG_EUSAGE, "E_HOST_PROFILE_INVALID", i < d.n ? d.v[i].field : NULL,
				      "fix the host profile (see kmpkg-host(5)); 'kmpkg preflight' shows every finding",
				      "%s:%d:%d: %s", path, i < d.n ? d.v[i].line : 0, i < d.n ? d.v[i].column : 0,
				      i < d.n ? d.v[i].message : "invalid host profile");
	}
cleanup:
	kmpkg_diags_release(&d);
	free(path);
	free(kdir);
	return err;
}

bool kmpkg_plan_passes(const struct kmpkg_host *host, const json_t *summary, const json_t *provided, char *why,
		       size_t whylen)
{
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_manifest *m = NULL;
	struct kmpkg_preflight_ctx ctx;
	bool ok = true;
	size_t i;

	if (why && whylen)
		why[0] = '\0';
	if (!host)
		return true;
	kmpkg_index_manifest(&m, summary);
	memset(&ctx, 0, sizeof(ctx));
	ctx.host = host;
	ctx.given = &m;
	ctx.ngiven = 1;
	ctx.skip_dependencies = true;
	kmpkg_preflight_check_manifest(&ctx, m, &d);
	kmpkg_error_clear();
	for (i = 0; i < d.n; i++) {
		const struct kmpkg_diag *f = &d.v[i];

		if (f->severity != KMPKG_SEV_ERROR)
			continue;
		if (strcmp(f->code, "CAPABILITY_MISSING") == 0 && f->required && provided &&
		    json_object_get(provided, f->required))
			continue;
		/* Elevated permissions are a grant the operator gives at install
		 * (--allow-permission), judged by the engine's gate: they do not
		 * make a version incompatible with the host. */
		if (strcmp(f->code, "PERMISSION_NOT_ALLOWED") == 0 || strcmp(f->code, "PERMISSION_NOT_GRANTED") == 0)
			continue;
		ok = false;
		if (why && whylen)
			snprintf(why, whylen, "%s: %s", f->code, f->message);
		break;
	}
	kmpkg_diags_release(&d);
	kmpkg_manifest_free(m);
	return ok;
}

/* ---- loading the resolver ------------------------------------------------ */

struct loader {
	struct kmpkg_resolver *r;
	struct kmpkg_state_txn *t;
	json_t *seen;      /* names whose versions were loaded */
	json_t *queue;     /* names still to load */
	json_t *keep;      /* every summary handed to the resolver (userdata lifetime) */
	json_t *provided;  /* capability -> true */
	json_t *installed; /* name -> installed record */
	const struct kmpkg_host *host;
};

static void want(struct loader *l, const char *name)
{
	if (!json_object_get(l->seen, name)) {
		json_object_set_new(l->seen, name, json_true());
		json_array_append_new(l->queue, json_string(name));
	}
}

/* dep names / ranges of an object {name: range}, borrowed from it. */
static void deps_of(const json_t *deps, const char ***names, const char ***ranges, size_t *n)
{
	const char *k;
	json_t *v;
	size_t i = 0;

	*n = json_object_size(deps);
	*names = calloc(*n + 1, sizeof(**names));
	*ranges = calloc(*n + 1, sizeof(**ranges));
	if (!*names || !*ranges)
		abort();
	json_object_foreach((json_t *)deps, k, v) {
		(*names)[i] = k;
		(*ranges)[i] = json_is_string(v) ? json_string_value(v) : "*";
		i++;
	}
}

static int load_name(struct loader *l, const char *name, size_t *count)
{
	json_t *vers = NULL, *s, *c;
	const char *k;
	size_t i;
	int err;

	*count = 0;
	if ((err = kmpkg_index_versions(&vers, l->t, name)) != 0)
		return err;
	json_array_foreach(vers, i, s) {
		struct kmpkg_resolve_candidate cand;
		const char **dn = NULL, **dr = NULL;
		json_t *dv;

		memset(&cand, 0, sizeof(cand));
		deps_of(json_object_get(s, "deps"), &dn, &dr, &cand.ndeps);
		cand.name = js(s, "name");
		cand.version = js(s, "version");
		cand.dep_names = dn;
		cand.dep_ranges = dr;
		cand.userdata = s;
		err = kmpkg_resolver_add_candidate(l->r, &cand);
		free(dn);
		free(dr);
		if (err) {
			/* A version the resolver cannot read is not a candidate. */
			kmpkg_error_clear();
			err = 0;
			continue;
		}
		(*count)++;
		json_array_append(l->keep, s);
		json_object_foreach(json_object_get(s, "deps"), k, dv)
			want(l, k);
	}
	json_array_foreach(vers, i, s) {
		size_t j;

		json_array_foreach(json_object_get(s, "provides"), j, c)
			if (json_is_string(c))
				json_object_set_new(l->provided, json_string_value(c), json_true());
	}
	json_decref(vers);
	return 0;
}

static int collect_installed(void *ctx, const void *key, size_t klen, json_t *val)
{
	char *k = strndup(key, klen);

	if (!k)
		abort();
	json_object_set_new(ctx, k, val);
	free(k);
	return 0;
}

static bool filter(void *ctx, const char *name, const char *version, void *userdata, char *why, size_t whylen)
{
	struct loader *l = ctx;

	(void)name;
	(void)version;
	return kmpkg_plan_passes(l->host, userdata, l->provided, why, whylen);
}

/* ---- fetching ------------------------------------------------------------ */

/* A target's fetch callback context (struct kmpkg_txn_target.fetch). */
struct fetched {
	const struct kmpkg_cli *cli;
	const json_t *sum; /* the chosen summary */
};

/* The one-line download bar on stderr (TTY only, not --quiet or --json). */
struct bar {
	const char *label;
	int last; /* per mille drawn last, -1 before the first */
	bool drawn;
};

static void draw_fetch(void *ctx, uint64_t now, uint64_t total)
{
	struct bar *b = ctx;
	char cells[31];
	int pm = total ? (int)(now >= total ? 1000 : now * 1000 / total) : 0, full = pm * 30 / 1000, i;

	if (pm == b->last)
		return;
	b->last = pm;
	for (i = 0; i < 30; i++)
		cells[i] = i < full ? '=' : i == full ? '>' : ' ';
	cells[30] = '\0';
	if (total >= 1024 * 1024)
		fprintf(stderr, "\r\033[Kdownloading %s [%s] %3d%% %.1f/%.1f MiB", b->label, cells, pm / 10,
			(double)now / 1048576.0, (double)total / 1048576.0);
	else
		fprintf(stderr, "\r\033[Kdownloading %s [%s] %3d%% %.1f/%.1f KiB", b->label, cells, pm / 10,
			(double)now / 1024.0, (double)total / 1024.0);
	b->drawn = true;
}

static bool is_url(const char *s)
{
	return strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0 || strncmp(s, "file://", 7) == 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The path of a file named relative to the artifact: beside it in the
 * repository ("artifacts/x.kmpkg" + "x.kmpkg.minisig"). */
static char *beside(const char *artifact, const char *rel)
{
	const char *slash = strrchr(artifact, '/');
	struct kmpkg_buf b = KMPKG_BUF_INIT;

	if (slash)
		kmpkg_buf_put(&b, artifact, (size_t)(slash - artifact + 1));
	kmpkg_buf_puts(&b, rel);
	return kmpkg_buf_detach(&b);
}

/* Puts the artifact's signature (if the index names one: a path in the
 * repository, or an http(s)/file URL fetched with a size cap) beside the
 * cached package, where the engine's verify phase looks. What was fetched is
 * not trusted here: the verify phase checks it against the trusted keys. */
static int fetch_signature(struct kmpkg_source *src, const json_t *sum, const char *cached)
{
	const json_t *a = json_object_get(sum, "artifact");
	const char *sig = js(a, "signature"), *url = js(a, "url");
	struct kmpkg_buf b = KMPKG_BUF_INIT, dest = KMPKG_BUF_INIT;
	char *path = NULL;
	int err = 0;

	kmpkg_buf_printf(&dest, "%s.minisig", cached);
	unlink(dest.ptr);
	kmpkg_buf_clear(&dest);
	kmpkg_buf_printf(&dest, "%s.sig", cached);
	unlink(dest.ptr);
	kmpkg_buf_clear(&dest);
	if (!sig)
		goto cleanup;
	if (is_url(sig)) {
		struct kmpkg_fetch_opts fo;
		size_t q = strcspn(sig, "?#");

		kmpkg_fetch_opts_init(&fo);
		if ((err = kmpkg_fetch_small(&b, sig, SIGNATURE_MAX_BYTES, &fo)) != 0)
			goto cleanup;
		path = strndup(sig, q); /* the URL's path decides the kind */
		if (!path)
			abort();
	} else {
		if (!src)
			goto cleanup; /* no repository to read it from */
		path = url && !is_url(url) ? beside(url, sig) : strdup(sig);
		err = kmpkg_source_read_blob(&b, src, js(sum, "commit"), path, SIGNATURE_MAX_BYTES);
		if (err == KMPKG_ENOTFOUND && strcmp(path, sig) != 0) {
			kmpkg_error_clear();
			err = kmpkg_source_read_blob(&b, src, js(sum, "commit"), sig, SIGNATURE_MAX_BYTES);
		}
		if (err)
			goto cleanup;
	}
	kmpkg_buf_printf(&dest, "%s%s", cached, ends_with(path, ".minisig") ? ".minisig" : ".sig");
	err = kmpkg_fsutil_write_file(dest.ptr, b.ptr ? b.ptr : "", b.len, 0644);
cleanup:
	free(path);
	kmpkg_buf_release(&b);
	kmpkg_buf_release(&dest);
	return err;
}

/* A package kept in the source repository: read from the objects at the
 * indexed commit, checked, then published in the cache as *out. */
static int from_repo(char **out, struct kmpkg_source *src, const json_t *sum, const char *cache)
{
	const json_t *a = json_object_get(sum, "artifact");
	const char *url = js(a, "url"), *sha = js(a, "sha256"), *source = js(sum, "source");
	uint64_t size = (uint64_t)json_integer_value(json_object_get(a, "size"));
	struct kmpkg_buf blob = KMPKG_BUF_INIT;
	char got[65];
	int err;

	*out = NULL;
	if ((err = kmpkg_fsutil_mkdir_p(cache, 0755)) != 0)
		goto cleanup;
	*out = kmpkg_fsutil_join(cache, sha);
	if (kmpkg_fsutil_exists(*out))
		goto cleanup;
	err = kmpkg_source_read_blob(&blob, src, js(sum, "commit"), url, (size_t)size);
	if (err && strcmp(kmpkg_error_last()->code, "E_SOURCE_BLOB_TOO_LARGE") == 0)
		err = kmpkg_error_set(KMPKG_EVERIFY, "E_ARTIFACT_SIZE", "/artifact/size",
				      "the index and the repository disagree; run 'kmpkg source update'",
				      "%s in source %s is larger than its indexed size %llu", url, source,
				      (unsigned long long)size);
	if (err)
		goto cleanup;
	if (blob.len != size) {
		err = kmpkg_error_set(KMPKG_EVERIFY, "E_ARTIFACT_SIZE", "/artifact/size",
				      "the index and the repository disagree; run 'kmpkg source update'",
				      "%s in source %s has %zu bytes, the index says %llu", url, source, blob.len,
				      (unsigned long long)size);
		goto cleanup;
	}
	kmpkg_sha256_buf_hex(blob.ptr, blob.len, got);
	if (strcmp(got, sha) != 0) {
		err = kmpkg_error_set(KMPKG_EVERIFY, "E_FETCH_DIGEST", "/artifact/sha256",
				      "the index and the repository disagree; run 'kmpkg source update'",
				      "%s in source %s has sha256 %s, the index says %s", url, source, got, sha);
		goto cleanup;
	}
	err = kmpkg_fsutil_write_file(*out, blob.ptr, blob.len, 0644);
cleanup:
	if (err) {
		free(*out);
		*out = NULL;
	}
	kmpkg_buf_release(&blob);
	return err;
}

/*
 * Makes the chosen version's package available in kmpkg/cache/<sha256>:
 * artifact.url first (a URL, or a path read from the repository's objects),
 * then artifact.mirrors in order (an extension of SPEC §6). A package read
 * from the repository falls back to the mirrors when the read fails for any
 * reason but a local resource error.
 */
static int fetch_one(char **out, const struct kmpkg_cli *cli, const json_t *sum)
{
	const json_t *a = json_object_get(sum, "artifact"), *mirrors = json_object_get(a, "mirrors"), *m;
	const char *url = js(a, "url"), *sha = js(a, "sha256"), *source = js(sum, "source");
	uint64_t size = (uint64_t)json_integer_value(json_object_get(a, "size"));
	char *cache = kmpkg_cmdutil_cache_dir(cli->root);
	const char **urls = NULL;
	struct kmpkg_source *src = NULL;
	struct kmpkg_buf label = KMPKG_BUF_INIT;
	struct bar bar = { NULL, -1, false };
	size_t nurls = 0, i;
	int err = 0;

	*out = NULL;
	if (!url || !sha || !size) {
		err = kmpkg_error_set(KMPKG_EVERIFY, "E_INDEX_ENTRY", "/artifact", "run 'kmpkg source update'",
				      "the index entry of %s %s has no usable artifact", js(sum, "name"), js(sum, "version"));
		goto cleanup;
	}
	urls = calloc(json_array_size(mirrors) + 2, sizeof(*urls));
	if (!urls)
		abort();
	if (is_url(url))
		urls[nurls++] = url;
	json_array_foreach(mirrors, i, m)
		if (json_is_string(m))
			urls[nurls++] = json_string_value(m);
	if (source && (err = kmpkg_source_open(&src, cli->root, source, false)) != 0) {
		if (is_url(url) || nurls > 0)
			kmpkg_error_clear(); /* needed for a signature only, or the mirrors serve it */
		else
			goto cleanup;
		err = 0;
	}
	if (!is_url(url)) {
		err = src ? from_repo(out, src, sum, cache) : KMPKG_ENOTFOUND;
		if (err == 0 || nurls == 0 || err == KMPKG_ERESOURCE) {
			if (err && !src)
				err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_SOURCE_NOT_FOUND", NULL,
						      "run 'kmpkg source update'", "%s %s is kept in source %s, which is gone",
						      js(sum, "name"), js(sum, "version"), source ? source : "?");
			if (err)
				goto cleanup;
		} else {
			kmpkg_error_clear();
			err = 0;
		}
	}
	if (!*out) {
		struct kmpkg_fetch_opts fo;

		kmpkg_buf_printf(&label, "%s %s", js(sum, "name"), js(sum, "version"));
		bar.label = label.ptr;
		kmpkg_fetch_opts_init(&fo);
		fo.urls = urls;
		fo.nurls = nurls;
		fo.expect_sha256 = sha;
		fo.expect_size = size;
		fo.cache_dir = cache;
		if (cli->tty && !cli->quiet && !cli->json) {
			fo.progress = draw_fetch;
			fo.progress_ctx = &bar;
		}
		err = kmpkg_fetch(out, &fo);
		if (bar.drawn)
			fprintf(stderr, "\r\033[K");
		if (err)
			goto cleanup;
	}
	err = fetch_signature(src, sum, *out);
cleanup:
	if (err) {
		free(*out);
		*out = NULL;
	}
	kmpkg_source_close(src);
	kmpkg_buf_release(&label);
	free(urls);
	free(cache);
	return err;
}

/* Called by the engine in the transaction's download phase. */
static int fetch_target(char **path, void *ctx)
{
	const struct fetched *f = ctx;

	return fetch_one(path, f->cli, f->sum);
}

/* ---- the plan ---------------------------------------------------------------- */

/* A requested NAME@RANGE whose installed version stays: the transaction
 * still runs (as nothing to do) to remember the new constraint. */
static const char *new_constraint(const struct kmpkg_resolution_item *it, const struct kmpkg_resolve_request *reqs,
				  size_t n, const json_t *installed)
{
	const char *cur = js(json_object_get(installed, it->name), "constraint");
	size_t j;

	for (j = 0; j < n; j++) {
		if (strcmp(reqs[j].name, it->name) != 0 || !reqs[j].range)
			continue;
		if (it->action != KMPKG_RESOLVE_KEEP)
			return reqs[j].range;
		if ((!cur || strcmp(cur, reqs[j].range) != 0) && json_object_get(it->userdata, "artifact"))
			return reqs[j].range;
	}
	return NULL;
}

static json_t *plan_changes(const struct kmpkg_resolution *res, const struct kmpkg_resolve_request *reqs, size_t n,
			    const json_t *installed)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < res->n; i++) {
		const struct kmpkg_resolution_item *it = &res->items[i];
		const json_t *s = it->userdata;

		if (it->action == KMPKG_RESOLVE_KEEP && !new_constraint(it, reqs, n, installed))
			continue;
		json_array_append_new(a, json_pack("{s:s, s:s?, s:s, s:s, s:s?, s:s?, s:b}", "name", it->name, "from",
						   it->installed_version, "to", it->version, "action",
						   kmpkg_resolve_action_name(it->action), "source", js(s, "source"),
						   "commit", js(s, "commit"), "requested", it->requested));
	}
	return a;
}

static void print_plan(const struct kmpkg_cli *cli, const char *op, json_t *changes)
{
	struct kmpkg_buf b = KMPKG_BUF_INIT;
	const json_t *c;
	size_t i;

	if (cli->json) {
		kmpkg_cli_print_json(json_pack("{s:s, s:s, s:b, s:O}", "op", op, "outcome", "planned", "dry_run", 1,
					       "changes", changes));
		return;
	}
	json_array_foreach(changes, i, c) {
		kmpkg_buf_printf(&b, "%s%s ", i ? ", " : " ", js(c, "name"));
		if (js(c, "from"))
			kmpkg_buf_printf(&b, "%s \u2192 ", js(c, "from"));
		kmpkg_buf_printf(&b, "%s (%s %.12s)", js(c, "to"), js(c, "source") ? js(c, "source") : "?",
				 js(c, "commit") ? js(c, "commit") : "");
	}
	kmpkg_cli_say(cli, "would %s:%s\n", op, b.ptr ? b.ptr : " nothing (already resolved)");
	kmpkg_cli_say(cli, "  (dry run: nothing changed)\n");
	kmpkg_buf_release(&b);
}

static int parse_requests(struct kmpkg_resolve_request **out, char ***owned, char *const *operands, size_t n,
			  enum kmpkg_plan_mode mode, const json_t *installed)
{
	struct kmpkg_resolve_request *reqs = calloc(n + 1, sizeof(*reqs));
	char **names = calloc(n + 1, sizeof(*names));
	struct kmpkg_semver_range *r = NULL;
	size_t i;
	int err = 0;

	if (!reqs || !names)
		abort();
	*out = reqs;
	*owned = names;
	for (i = 0; i < n; i++) {
		const char *at = strchr(operands[i], '@');

		names[i] = at ? strndup(operands[i], (size_t)(at - operands[i])) : strdup(operands[i]);
		if (!names[i])
			abort();
		reqs[i].name = names[i];
		reqs[i].range = at ? at + 1 : NULL;
		if (at && mode != KMPKG_PLAN_INSTALL)
			return kmpkg_cli_usage("update", "update stays inside the remembered constraint; "
							 "'kmpkg install %s' sets a new one", operands[i]);
		if (at && (!at[1] || kmpkg_semver_range_parse(&r, at + 1) != 0))
			return kmpkg_error_set(KMPKG_EUSAGE, "E_RANGE_INVALID", operands[i],
					       "write a node-semver range, e.g. NAME@^1.2.0 or NAME@'>=1.0.0 <2.0.0'",
					       "'%s' is not a valid range in %s", at + 1, operands[i]);
		kmpkg_semver_range_free(r);
		r = NULL;
		if (mode == KMPKG_PLAN_UPDATE && !json_object_get(installed, names[i]))
			return kmpkg_error_set(KMPKG_ENOTFOUND, "E_NOT_INSTALLED", operands[i],
					       "install it with 'kmpkg install NAME'",
					       "%s is not installed, so it cannot be updated", names[i]);
	}
	return err;
}

static int count_sources(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	(void)key;
	(void)klen;
	(void)val;
	(void)vlen;
	(*(size_t *)ctx)++;
	return 1;
}

int kmpkg_plan_run(const struct kmpkg_cli *cli, struct kmpkg_cmdopts *o, char *const *operands, size_t n,
		   enum kmpkg_plan_mode mode)
{
	const char *op = mode == KMPKG_PLAN_INSTALL ? "install" : "update";
	struct kmpkg_state *st = NULL;
	struct kmpkg_host *host = NULL;
	struct kmpkg_resolution *res = NULL;
	struct kmpkg_resolve_request *reqs = NULL;
	struct kmpkg_lock *lock = NULL;
	struct kmpkg_txn_target *tg = NULL;
	struct fetched *fx = NULL;
	struct loader l;
	char **owned = NULL;
	json_t *changes = NULL, *summary = NULL, *v;
	const char *k;
	size_t i, j, nsources = 0, ntg = 0;
	bool all_upgrades = true;
	int err;

	memset(&l, 0, sizeof(l));
	l.seen = json_object();
	l.queue = json_array();
	l.keep = json_array();
	l.provided = json_object();
	l.installed = json_object();
	if ((err = kmpkg_cmdutil_open_reader(&st, cli->root)) != 0)
		goto cleanup;
	if (st) {
		if ((err = kmpkg_state_begin(&l.t, st, false)) != 0)
			goto cleanup;
		if ((err = kmpkg_state_foreach_raw(l.t, KMPKG_DB_SOURCES, NULL, 0, count_sources, &nsources)) != 0 ||
		    (err = kmpkg_state_foreach(l.t, KMPKG_DB_INSTALLED, NULL, 0, false, collect_installed,
					       l.installed)) != 0)
			goto cleanup;
	}
	if ((err = parse_requests(&reqs, &owned, operands, n, mode, l.installed)) != 0)
		goto cleanup;
	if (nsources == 0) {
		if (mode == KMPKG_PLAN_UPDATE_ALL) {
			if (cli->json)
				kmpkg_cli_print_json(json_pack("{s:s, s:s, s:[]}", "op", "update", "outcome",
							       "nothing to do", "changes"));
			else
				kmpkg_cli_say(cli, "nothing to update: no source is configured (kmpkg source add); "
						   "give a .kmpkg PATH to update from a file\n");
			goto cleanup;
		}
		err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_NEEDS_SOURCE", NULL,
				      "add a source with 'kmpkg source add NAME URL', or give a .kmpkg file",
				      "%s '%s': %s by name needs a source (kmpkg source add)", op, operands[0],
				      mode == KMPKG_PLAN_INSTALL ? "installing" : "updating");
		goto cleanup;
	}
	if ((err = kmpkg_plan_load_host(&host, cli->root, o->txn.host_file)) != 0)
		goto cleanup;
	l.host = host;
	if ((err = kmpkg_resolver_new(&l.r)) != 0)
		goto cleanup;
	kmpkg_resolver_set_filter(l.r, filter, &l);

	/* Candidates: the requested plugins, the installed ones and, transitively,
	 * every plugin their versions depend on; nothing else is read. */
	for (i = 0; i < n; i++)
		want(&l, reqs[i].name);
	json_object_foreach(l.installed, k, v)
		want(&l, k);
	for (i = 0; i < json_array_size(l.queue); i++) {
		const char *name = json_string_value(json_array_get(l.queue, i));
		size_t count;

		if ((err = load_name(&l, name, &count)) != 0)
			goto cleanup;
		for (j = 0; j < n; j++) {
			if (count == 0 && strcmp(reqs[j].name, name) == 0 && !json_object_get(l.installed, name)) {
				err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_PLUGIN_NOT_FOUND", operands[j],
						      "'kmpkg search TERM' lists what the sources offer; "
						      "'kmpkg source update' refreshes them",
						      "no source offers a plugin named %s", name);
				goto cleanup;
			}
		}
	}
	json_object_foreach(l.installed, k, v) {
		struct kmpkg_resolve_installed in;
		const char **dn = NULL, **dr = NULL;

		memset(&in, 0, sizeof(in));
		deps_of(json_object_get(v, "deps"), &dn, &dr, &in.ndeps);
		in.name = k;
		in.version = js(v, "version");
		in.constraint = js(v, "constraint");
		in.dep_names = dn;
		in.dep_ranges = dr;
		in.userdata = v;
		err = in.version ? kmpkg_resolver_add_installed(l.r, &in) : 0;
		free(dn);
		free(dr);
		if (err)
			goto cleanup;
	}
	err = kmpkg_resolve(&res, l.r, reqs, n, mode == KMPKG_PLAN_UPDATE_ALL ? KMPKG_RESOLVE_UPGRADE_ALL : 0);
	if (err)
		goto cleanup;
	changes = plan_changes(res, reqs, n, l.installed);
	/* Close the read transaction before anything takes the lock. */
	kmpkg_state_abort(l.t);
	l.t = NULL;
	kmpkg_state_free(st);
	st = NULL;

	if (json_array_size(changes) == 0) {
		if (cli->json)
			kmpkg_cli_print_json(json_pack("{s:s, s:s, s:b, s:O}", "op", op, "outcome", "nothing to do",
						       "dry_run", o->txn.dry_run, "changes", changes));
		else
			kmpkg_cli_say(cli, "nothing to do: the installed versions already satisfy the request\n");
		goto cleanup;
	}
	if (o->txn.dry_run) {
		print_plan(cli, op, changes);
		goto cleanup;
	}

	if ((err = kmpkg_lock_acquire(&lock, cli->root, cli->wait_secs)) != 0)
		goto cleanup;
	tg = calloc(res->n + 1, sizeof(*tg));
	fx = calloc(res->n + 1, sizeof(*fx));
	if (!tg || !fx)
		abort();
	for (i = 0; i < res->n; i++) {
		const struct kmpkg_resolution_item *it = &res->items[i];
		const json_t *s = it->userdata;

		if (it->action == KMPKG_RESOLVE_KEEP && !new_constraint(it, reqs, n, l.installed))
			continue;
		if (it->action != KMPKG_RESOLVE_UPGRADE)
			all_upgrades = false;
		fx[ntg].cli = cli;
		fx[ntg].sum = s;
		tg[ntg].fetch = fetch_target;
		tg[ntg].fetch_ctx = &fx[ntg];
		tg[ntg].expect_name = it->name;
		tg[ntg].expect_version = it->version;
		tg[ntg].expect_sha256 = js(json_object_get(s, "artifact"), "sha256");
		tg[ntg].source = js(s, "source");
		tg[ntg].source_commit = js(s, "commit");
		tg[ntg].constraint = new_constraint(it, reqs, n, l.installed);
		ntg++;
	}
	o->txn.lock = lock;
	/* `update` moves installed plugins forward; anything else (a new
	 * dependency, a forced downgrade) is an install of the resolved set. */
	err = kmpkg_txn_install_targets(&summary, &o->txn, tg, ntg, mode != KMPKG_PLAN_INSTALL && all_upgrades);
	o->txn.lock = NULL;
	if (summary) {
		json_object_set(summary, "resolved", changes);
		if (!err)
			kmpkg_cmdutil_print_summary(cli, summary);
		else
			json_decref(summary);
		summary = NULL;
	}
cleanup:
	free(fx);
	free(tg);
	kmpkg_lock_release(lock);
	kmpkg_resolution_free(res);
	kmpkg_resolver_free(l.r);
	kmpkg_state_abort(l.t);
	kmpkg_state_free(st);
	kmpkg_host_free(host);
	for (i = 0; owned && i < n; i++)
		free(owned[i]);
	free(owned);
	free(reqs);
	json_decref(changes);
	json_decref(summary);
	json_decref(l.seen);
	json_decref(l.queue);
	json_decref(l.keep);
	json_decref(l.provided);
	json_decref(l.installed);
	return err;
}
