/* The index cache of the sources (include/kmpkg/index.h). */
#include <stdlib.h>
#include <string.h>

#include "kmpkg/buf.h"
#include "kmpkg/diag.h"
#include "kmpkg/error.h"
#include "kmpkg/index.h"
#include "kmpkg/semver.h"

static char *xstrdup(const char *s)
{
	char *p;

	if (!s)
		return NULL;
	p = strdup(s);
	if (!p)
		abort();
	return p;
}

static const char *js(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* name \0 version \0 source, without a final NUL; *len its length. */
static char *entry_key(size_t *len, const char *name, const char *version, const char *source)
{
	size_t a = strlen(name), b = version ? strlen(version) : 0, c = source ? strlen(source) : 0;
	char *k = malloc(a + b + c + 3);

	if (!k)
		abort();
	memcpy(k, name, a + 1);
	*len = a + 1;
	if (version) {
		memcpy(k + *len, version, b + 1);
		*len += b + 1;
		if (source) {
			memcpy(k + *len, source, c);
			*len += c;
		}
	}
	return k;
}

static json_t *strlist_json(const struct kmpkg_strlist *l)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < l->n; i++)
		json_array_append_new(a, json_string(l->v[i]));
	return a;
}

json_t *kmpkg_index_summary(const struct kmpkg_manifest *m, const char *source, const char *commit,
			    const char *path, const char *blob)
{
	json_t *deps = json_object();
	size_t i;

	for (i = 0; i < m->ndeps; i++)
		json_object_set_new(deps, m->deps[i].name, json_string(m->deps[i].range));
	/* "mirrors" only when the manifest has some: summaries cached before
	 * the field existed look the same as those without. */
	return json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:o, s:o, s:o, s:o, "
			 "s:{s:s?, s:s?, s:I, s:s?, s:o*}}",
			 "name", m->name, "version", m->version, "source", source, "commit", commit, "path", path,
			 "blob", blob, "description", m->description, "host", m->host, "api", m->api, "tier",
			 m->tier, "requires", strlist_json(&m->requires), "provides", strlist_json(&m->provides),
			 "permissions", strlist_json(&m->permissions), "deps", deps, "artifact", "url",
			 m->artifact.url, "sha256", m->artifact.sha256, "size", (json_int_t)m->artifact.size,
			 "signature", m->artifact.signature, "mirrors",
			 m->artifact.mirrors.n ? strlist_json(&m->artifact.mirrors) : NULL);
}

static void strlist_from(struct kmpkg_strlist *out, const json_t *a)
{
	const json_t *v;
	size_t i;

	out->n = 0;
	out->v = calloc(json_array_size(a) + 1, sizeof(*out->v));
	if (!out->v)
		abort();
	json_array_foreach(a, i, v)
		if (json_is_string(v))
			out->v[out->n++] = xstrdup(json_string_value(v));
}

int kmpkg_index_manifest(struct kmpkg_manifest **out, const json_t *s)
{
	struct kmpkg_manifest *m = calloc(1, sizeof(*m));
	const json_t *deps = json_object_get(s, "deps"), *v, *a = json_object_get(s, "artifact");
	const char *k;
	size_t i = 0;

	if (!m)
		abort();
	m->file = xstrdup(js(s, "path") ? js(s, "path") : "index");
	m->api_version = xstrdup("kmpkg/v1");
	m->name = xstrdup(js(s, "name") ? js(s, "name") : "");
	m->version = xstrdup(js(s, "version") ? js(s, "version") : "0.0.0");
	m->description = xstrdup(js(s, "description"));
	m->host = xstrdup(js(s, "host"));
	m->api = xstrdup(js(s, "api"));
	m->tier = xstrdup(js(s, "tier"));
	strlist_from(&m->requires, json_object_get(s, "requires"));
	strlist_from(&m->provides, json_object_get(s, "provides"));
	strlist_from(&m->permissions, json_object_get(s, "permissions"));
	m->deps = calloc(json_object_size(deps) + 1, sizeof(*m->deps));
	if (!m->deps)
		abort();
	json_object_foreach((json_t *)deps, k, v) {
		m->deps[i].name = xstrdup(k);
		m->deps[i].range = xstrdup(json_is_string(v) ? json_string_value(v) : "*");
		i++;
	}
	m->ndeps = i;
	m->health_timeout_ms = 5000;
	if (json_is_object(a)) {
		m->has_artifact = true;
		m->artifact.url = xstrdup(js(a, "url"));
		m->artifact.sha256 = xstrdup(js(a, "sha256"));
		m->artifact.size = (uint64_t)json_integer_value(json_object_get(a, "size"));
		m->artifact.signature = xstrdup(js(a, "signature"));
		strlist_from(&m->artifact.mirrors, json_object_get(a, "mirrors"));
	}
	*out = m;
	return 0;
}

/* ---- versions and the catalog ------------------------------------------ */

static int collect(void *ctx, const void *key, size_t klen, json_t *val)
{
	(void)key;
	(void)klen;
	json_array_append_new(ctx, val);
	return 0;
}

static int newest_first(const void *a, const void *b)
{
	const char *va = js(*(json_t *const *)a, "version"), *vb = js(*(json_t *const *)b, "version");
	int c = 0;

	if (va && vb && kmpkg_semver_compare(&c, va, vb) != 0)
		c = strcmp(va, vb);
	return -c;
}

int kmpkg_index_versions(json_t **out, struct kmpkg_state_txn *t, const char *name)
{
	json_t *a = json_array(), *sorted = NULL, **v = NULL;
	size_t klen, i, n;
	char *key = entry_key(&klen, name, NULL, NULL);
	int err;

	*out = NULL;
	if ((err = kmpkg_state_foreach(t, KMPKG_DB_INDEX, key, klen, false, collect, a)) != 0)
		goto cleanup;
	n = json_array_size(a);
	v = calloc(n + 1, sizeof(*v));
	if (!v)
		abort();
	for (i = 0; i < n; i++)
		v[i] = json_array_get(a, i);
	/* qsort is not stable: equal versions keep key (source) order by index. */
	for (i = 0; i < n; i++)
		json_object_set_new(v[i], "_i", json_integer((json_int_t)i));
	qsort(v, n, sizeof(*v), newest_first);
	sorted = json_array();
	for (i = 0; i < n; i++) {
		json_object_del(v[i], "_i");
		json_array_append(sorted, v[i]);
	}
	*out = sorted;
cleanup:
	free(v);
	free(key);
	json_decref(a);
	return err;
}

/* The catalog record of `name` (include/kmpkg/state.h), from its cached
 * versions; deleted when there is none left. */
static int refresh_catalog(struct kmpkg_state_txn *t, const char *name)
{
	json_t *vers = NULL, *top, *v;
	const char **sources;
	size_t i, j, n = 0;
	int err;

	if ((err = kmpkg_index_versions(&vers, t, name)) != 0)
		return err;
	if (json_array_size(vers) == 0) {
		err = kmpkg_state_dels(t, KMPKG_DB_CATALOG, name);
		goto cleanup;
	}
	top = json_array_get(vers, 0);
	sources = calloc(json_array_size(vers), sizeof(*sources));
	if (!sources)
		abort();
	json_array_foreach(vers, i, v) {
		const char *src = js(v, "source");
		bool seen = false;

		for (j = 0; j < n && src; j++)
			seen |= strcmp(sources[j], src) == 0;
		if (!seen && src)
			sources[n++] = src;
	}
	err = kmpkg_state_catalog_put(t, name, js(top, "version") ? js(top, "version") : "", js(top, "description"),
				      (long)json_array_size(vers), sources, n);
	free(sources);
cleanup:
	json_decref(vers);
	return err;
}

static int refresh_all(struct kmpkg_state_txn *t, json_t *names)
{
	const char *name;
	json_t *v;
	int err;

	json_object_foreach(names, name, v) {
		if ((err = refresh_catalog(t, name)) != 0)
			return err;
	}
	return 0;
}

/* ---- removing a source ----------------------------------------------- */

struct of_source {
	const char *source;
	size_t slen;
	struct kmpkg_buf keys; /* klen (size_t) ++ key, one after another */
	json_t *names;
};

static int match_source(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct of_source *o = ctx;
	const char *k = key, *nul1 = memchr(k, '\0', klen), *nul2;
	char *name;

	(void)val;
	(void)vlen;
	if (!nul1)
		return 0;
	nul2 = memchr(nul1 + 1, '\0', klen - (size_t)(nul1 + 1 - k));
	if (!nul2 || (size_t)(k + klen - (nul2 + 1)) != o->slen || memcmp(nul2 + 1, o->source, o->slen) != 0)
		return 0;
	kmpkg_buf_put(&o->keys, &klen, sizeof(klen));
	kmpkg_buf_put(&o->keys, key, klen);
	name = strndup(k, (size_t)(nul1 - k));
	if (!name)
		abort();
	json_object_set_new(o->names, name, json_true());
	free(name);
	return 0;
}

/* Deletes the entries of source; names of the plugins touched go to names. */
static int drop_source(size_t *count, struct kmpkg_state_txn *t, const char *source, json_t *names)
{
	struct of_source o = { source, strlen(source), KMPKG_BUF_INIT, names };
	size_t off = 0, n = 0;
	int err;

	if ((err = kmpkg_state_foreach_raw(t, KMPKG_DB_INDEX, NULL, 0, match_source, &o)) != 0)
		goto cleanup;
	while (off < o.keys.len) {
		size_t klen;

		memcpy(&klen, o.keys.ptr + off, sizeof(klen));
		off += sizeof(klen);
		if ((err = kmpkg_state_del(t, KMPKG_DB_INDEX, o.keys.ptr + off, klen)) != 0)
			goto cleanup;
		off += klen;
		n++;
	}
	if (count)
		*count = n;
cleanup:
	kmpkg_buf_release(&o.keys);
	return err;
}

struct counter {
	const char *source;
	size_t slen, n;
};

static int count_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct counter *c = ctx;
	const char *k = key;

	(void)val;
	(void)vlen;
	/* The source is what follows the second NUL. */
	if (klen > c->slen && k[klen - c->slen - 1] == '\0' && memcmp(k + klen - c->slen, c->source, c->slen) == 0 &&
	    memchr(k, '\0', klen - c->slen - 1) != NULL)
		c->n++;
	return 0;
}

int kmpkg_index_count(size_t *out, struct kmpkg_state_txn *t, const char *source)
{
	struct counter c = { source, strlen(source), 0 };
	int err = kmpkg_state_foreach_raw(t, KMPKG_DB_INDEX, NULL, 0, count_one, &c);

	*out = c.n;
	return err;
}

int kmpkg_index_remove_source(size_t *count, struct kmpkg_state_txn *t, const char *source)
{
	json_t *names = json_object();
	int err;

	if ((err = drop_source(count, t, source, names)) == 0)
		err = refresh_all(t, names);
	json_decref(names);
	return err;
}

/* ---- sync ---------------------------------------------------------------- */

static void warn(struct kmpkg_index_sync_result *r, const char *path, const char *reason)
{
	json_array_append_new(r->warnings, json_pack("{s:s, s:s}", "path", path, "reason", reason));
}

static int del_entry(struct kmpkg_state_txn *t, const struct kmpkg_source_entry *e, const char *source)
{
	size_t klen;
	char *k = entry_key(&klen, e->name, e->version, source);
	int err = kmpkg_state_del(t, KMPKG_DB_INDEX, k, klen);

	free(k);
	return err;
}

/* Reads, validates and stores one index file; an invalid one is a warning
 * (and removes what the path held before). */
static int put_entry(struct kmpkg_index_sync_result *r, struct kmpkg_state_txn *t, struct kmpkg_source *src,
		     const struct kmpkg_source_entry *e, const char *source, const char *commit)
{
	struct kmpkg_buf blob = KMPKG_BUF_INIT, why = KMPKG_BUF_INIT;
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_manifest *m = NULL;
	json_t *sum = NULL;
	size_t klen, i;
	char *k = NULL;
	int err;

	if ((err = kmpkg_source_read_blob_id(&blob, src, e->blob, KMPKG_SOURCE_INDEX_MAX_BYTES)) != 0) {
		if (err != KMPKG_EVERIFY)
			goto cleanup;
		kmpkg_buf_puts(&why, kmpkg_error_last()->message);
		kmpkg_error_clear();
		goto invalid;
	}
	err = kmpkg_manifest_load_buf(&m, e->path, blob.ptr ? blob.ptr : "", blob.len, &d);
	if (err == KMPKG_EUSAGE) {
		for (i = 0; i < d.n; i++) {
			if (d.v[i].severity != KMPKG_SEV_ERROR)
				continue;
			kmpkg_buf_printf(&why, "%d:%d: %s [%s]", d.v[i].line, d.v[i].column, d.v[i].message,
					 d.v[i].code);
			break;
		}
		if (!why.ptr)
			kmpkg_buf_puts(&why, "the manifest does not validate");
		kmpkg_error_clear();
		goto invalid;
	}
	if (err)
		goto cleanup;
	if (strcmp(m->name, e->name) != 0 || strcmp(m->version, e->version) != 0) {
		kmpkg_buf_printf(&why, "the manifest says %s %s, its path %s %s", m->name, m->version, e->name,
				 e->version);
		goto invalid;
	}
	if (!m->has_artifact || !m->artifact.url || !m->artifact.sha256 || !m->artifact.size) {
		kmpkg_buf_puts(&why, "no artifact block (url, sha256, size)");
		goto invalid;
	}
	sum = kmpkg_index_summary(m, source, commit, e->path, e->blob);
	k = entry_key(&klen, e->name, e->version, source);
	err = kmpkg_state_put(t, KMPKG_DB_INDEX, k, klen, sum);
	goto cleanup;
invalid:
	warn(r, e->path, why.ptr);
	err = del_entry(t, e, source);
	if (!err)
		err = 1; /* skipped */
cleanup:
	free(k);
	json_decref(sum);
	kmpkg_manifest_free(m);
	kmpkg_diags_release(&d);
	kmpkg_buf_release(&blob);
	kmpkg_buf_release(&why);
	return err;
}

int kmpkg_index_sync(struct kmpkg_index_sync_result *out, struct kmpkg_state_txn *t, struct kmpkg_source *src,
		     const char *source, const char *old_commit, const char *new_commit)
{
	struct kmpkg_source_diff d = { 0 };
	json_t *names = json_object();
	size_t i;
	int err;

	memset(out, 0, sizeof(*out));
	out->warnings = json_array();
	err = kmpkg_source_index_diff(&d, src, old_commit, new_commit);
	if (err && old_commit && strcmp(kmpkg_error_last()->code, "E_SOURCE_COMMIT_INVALID") == 0) {
		/* The cached commit is gone from the clone: start over. */
		kmpkg_error_clear();
		kmpkg_source_diff_release(&d);
		memset(&d, 0, sizeof(d));
		if ((err = drop_source(NULL, t, source, names)) != 0)
			goto cleanup;
		err = kmpkg_source_index_diff(&d, src, NULL, new_commit);
	}
	if (err)
		goto cleanup;
	for (i = 0; i < d.nskipped; i++)
		warn(out, d.skipped[i].path, d.skipped[i].reason);
	for (i = 0; i < d.n; i++) {
		const struct kmpkg_source_change *c = &d.changes[i];

		json_object_set_new(names, c->entry.name, json_true());
		if (c->kind == KMPKG_SOURCE_DELETED) {
			if ((err = del_entry(t, &c->entry, source)) != 0)
				goto cleanup;
			out->deleted++;
			continue;
		}
		err = put_entry(out, t, src, &c->entry, source, new_commit);
		if (err < 0)
			goto cleanup;
		if (err == 1 && c->kind == KMPKG_SOURCE_MODIFIED)
			out->deleted++;
		else if (err == 0 && c->kind == KMPKG_SOURCE_ADDED)
			out->added++;
		else if (err == 0)
			out->modified++;
		err = 0;
	}
	err = refresh_all(t, names);
cleanup:
	kmpkg_source_diff_release(&d);
	json_decref(names);
	return err;
}

void kmpkg_index_sync_result_release(struct kmpkg_index_sync_result *r)
{
	json_decref(r->warnings);
	r->warnings = NULL;
}

/* ---- search ------------------------------------------------------------- */

static char fold(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* term is already folded. */
static bool contains(const char *s, size_t n, const char *term, size_t tn)
{
	size_t i, j;

	if (tn == 0)
		return true;
	for (i = 0; i + tn <= n; i++) {
		if (fold(s[i]) != term[0])
			continue;
		for (j = 1; j < tn && fold(s[i + j]) == term[j]; j++)
			;
		if (j == tn)
			return true;
	}
	return false;
}

struct search_ctx {
	char *term;
	size_t tn;
	kmpkg_search_fn fn;
	void *ctx;
	struct kmpkg_buf name;  /* the hit's name, NUL-terminated */
	struct kmpkg_buf packed; /* sources of a JSON record, packed as in catalog */
};

/* A catalog record written by an earlier kmpkg (JSON) as a hit. */
static int json_hit(struct search_ctx *s, struct kmpkg_search_hit *h, json_t **rec, const void *val,
		    size_t vlen)
{
	json_error_t je;
	json_t *v;
	size_t i;

	if (!(*rec = json_loadb(val, vlen, 0, &je)))
		return kmpkg_error_set(KMPKG_EGENERIC, "E_STATE_CORRUPT", NULL, NULL, "unreadable catalog record: %s",
				       je.text);
	h->version = js(*rec, "version") ? js(*rec, "version") : "";
	h->description = js(*rec, "description");
	h->versions = (long)json_integer_value(json_object_get(*rec, "versions"));
	s->packed.len = 0;
	json_array_foreach(json_object_get(*rec, "sources"), i, v) {
		if (!json_is_string(v))
			continue;
		if (kmpkg_buf_puts(&s->packed, json_string_value(v)) || kmpkg_buf_put(&s->packed, "", 1))
			abort();
		h->nsources++;
	}
	h->sources = s->packed.ptr;
	return 0;
}

static int search_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct search_ctx *s = ctx;
	struct kmpkg_search_hit h;
	struct kmpkg_catalog c;
	json_t *rec = NULL;
	int err = 0;

	memset(&h, 0, sizeof(h));
	if (kmpkg_state_catalog_parse(&c, val, vlen) == 0) {
		h.version = c.version;
		h.description = c.description;
		h.versions = c.versions;
		h.sources = c.sources;
		h.nsources = c.nsources;
	} else {
		kmpkg_error_clear(); /* not this format: JSON, from an earlier kmpkg */
		if ((err = json_hit(s, &h, &rec, val, vlen)) != 0)
			return err;
	}
	if (contains(key, klen, s->term, s->tn) ||
	    (h.description && contains(h.description, strlen(h.description), s->term, s->tn))) {
		s->name.len = 0;
		if (kmpkg_buf_put(&s->name, key, klen) || kmpkg_buf_put(&s->name, "", 1))
			abort();
		h.name = s->name.ptr;
		err = s->fn(s->ctx, &h);
	}
	json_decref(rec);
	return err;
}

int kmpkg_index_search(struct kmpkg_state_txn *t, const char *term, kmpkg_search_fn fn, void *ctx)
{
	struct search_ctx s = { .fn = fn, .ctx = ctx, .name = KMPKG_BUF_INIT, .packed = KMPKG_BUF_INIT };
	size_t i;
	int err;

	s.tn = strlen(term);
	s.term = xstrdup(term);
	for (i = 0; i < s.tn; i++)
		s.term[i] = fold(s.term[i]);
	err = kmpkg_state_foreach_raw(t, KMPKG_DB_CATALOG, NULL, 0, search_one, &s);
	free(s.term);
	kmpkg_buf_release(&s.name);
	kmpkg_buf_release(&s.packed);
	return err;
}
