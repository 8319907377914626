/*
 * The transaction engine (include/kmpkg/txn.h).
 *
 * NOTES ON THE DESIGN
 *
 * Files (under the root, SPEC §3):
 *
 *   plugins -> kmpkg/generations/<N>          the only thing the host reads
 *   kmpkg/generations/<N>/<name> -> ../../store/<entry>
 *   kmpkg/store/<name>-<version>-<sha12>/     immutable, complete or absent
 *   kmpkg/cache/<sha256>                      archives, hashed while copied
 *   kmpkg/tmp/<id>/                           staging of transaction <id>
 *   kmpkg/quarantine/<name>-<version>-<id>/   health-output.txt, record.json,
 *                                             package/ (the failed store entry)
 *   kmpkg/state/                              LMDB (include/kmpkg/state.h)
 *   kmpkg/lock                                OFD lock (include/kmpkg/lock.h)
 *
 * Every step on disk goes through include/kmpkg/fsutil.h. Store entries and
 * generation directories are built under kmpkg/tmp/<id>/ and renamed into
 * place complete; directories are deleted by renaming them into kmpkg/tmp
 * first (kmpkg_fsutil_discard), so no half-built or half-deleted tree ever
 * carries a real name.
 *
 * States of a transaction record (txns DB, field "state"):
 *
 *   running  --(all phases passed)------------------------------> done/committed
 *   running  --(failure before activate started the swap)-------> done/aborted
 *   running  --(health check failed, or crash after the swap)---> cleanup/rolled-back
 *   cleanup  --(quarantine written, failed generation deleted)--> done/rolled-back
 *
 * Phases of "running" (field "phase"; each start and end is its own durable
 * LMDB commit with a journal event, done by phase_begin / phase_end, or
 * queued on the committer thread by phase_begin_async / phase_end_async for
 * the starts of download, verify and health-check and the end of download,
 * durable before the phase's first durable step: see commit_async):
 *
 *   1 download            download_one: a target's fetch callback first (install
 *                         by name: the HTTP download, src/fetch.c), then stream
 *                         each .kmpkg into cache/<sha256>
 *   2 verify              verify_manifest: read + check the manifest,
 *                         signature; preflight_changes: the preflight gate
 *                         (below); store_extract: extract to tmp/<id>/,
 *                         hashing the cached archive as it is read;
 *                         stage_sync: the new generation's links under
 *                         tmp/<id>/ too, one syncfs for all; store_publish:
 *                         rename into store/
 *   3 dependency-prepare  check_deps: every dependency of the new set satisfied
 *   4 activate            activate: record to_gen (same commit as the start
 *                         event), rename tmp/<id>/gen-N (built now when
 *                         verify did not stage it) to generations/N,
 *                         swap `plugins`; the end commit sets meta.active = N
 *                         and the installed set
 *   5 health-check        health_check: run each changed plugin's check; the
 *                         commit that ends it also records the outcome and
 *                         sets meta.known_good = N
 *
 * The record itself is first written by the commit that starts the first
 * phase (start_pending), so an install makes ten commits in all. Staging
 * under kmpkg/tmp is created and removed without directory syncs (it is
 * swept before anything else after a crash); the archive copied into the
 * cache, the extracted files and the store entry's name are made durable by
 * one syncfs before the entry is published under store/.
 *
 * The preflight gate (verify, before anything is extracted): every package
 * of an install/update is checked by kmpkg_preflight_check_manifest against
 * the host profile (opts.host_file, default kmpkg/host.yaml), with the
 * transaction's packages plus the installed plugins they do not replace as
 * the plugin set for capabilities; dependencies stay with phase 3 (exit 5).
 * Any error finding aborts the transaction (exit 3, code "E_" + the first
 * finding's code); all findings go into the verify end event ("findings"),
 * warnings also into the record and the summary ("warnings"). Decisions:
 *   - No host profile at the default path: host range, api, tier and
 *     capabilities are not judged (warning NO_HOST_PROFILE), but
 *     permissions still are, with nothing pre-allowed (least privilege).
 *     A --host FILE that does not exist is a usage error; an invalid
 *     profile aborts with its schema findings (exit 3).
 *   - A declared permission passes when the profile's permissions_allowed
 *     lists it, when the plugin's installed record lists it in
 *     granted_permissions (earlier grants: installs and updates inherit
 *     them), or when given with --allow-permission; else
 *     PERMISSION_NOT_GRANTED, whose next step is the exact command.
 *   - Grants made by the flag go into rec.granted {name: [perm]} at verify
 *     and into installed[name].granted_permissions only in the commit that
 *     ends the transaction committed (record_grants via commit_extra), so a
 *     rolled-back or aborted change grants nothing. write_installed carries
 *     granted_permissions across versions like the constraint; remove drops
 *     the record and with it the grants. Host-allowed permissions are never
 *     recorded as grants. The commit that makes a generation known-good
 *     also records in it the grants its plugins hold ("grants"); when a
 *     generation is re-activated (rollback, or the automatic way back), a
 *     plugin with no installed record then gets the grants it had there,
 *     one installed keeps its own (gen_grants, snapshot_grants).
 *   - --dry-run runs the same gate (no journal).
 *
 * remove runs phases 3-4 (no download, nothing to check); rollback runs 3-5
 * and re-activates an existing generation (new_gen = false) or, for one
 * plugin, a new one. gc is a record with op "gc" and one commit; its
 * deletions afterwards only touch what no kept generation references.
 *
 * Invariants recovery relies on:
 *
 *   I1 `plugins` always names a complete generation directory: directories
 *      appear under generations/ only by rename of a finished tree, and the
 *      swap is one rename of a symlink.
 *   I2 Outside a transaction meta.active == meta.known_good and `plugins`
 *      points at it; the installed DB equals the active generation's set.
 *   I3 meta.known_good changes only in the commit that ends a transaction
 *      as committed, so during a transaction it is the generation to return to.
 *   I4 rec.to_gen is recorded durably before any generation directory or
 *      swap of the transaction exists. Hence: a running transaction whose
 *      to_gen is unset, or whose to_gen is neither what `plugins` points at
 *      nor meta.active, and which was not rolling back, changed nothing
 *      visible: recovery aborts it (removing its new generation directory).
 *      Otherwise it was activated: recovery swaps back to meta.known_good,
 *      restores installed, and records rolled-back (recover_one).
 *   I5 Every recovery step is idempotent (swap to a target already in place,
 *      mkdir of an existing directory, discard of a missing path are no-ops),
 *      so recovery killed half-way is finished by the next command.
 *   I6 Only one process mutates a root: the OFD lock, held for the whole
 *      command including recovery.
 *
 * Fault points (test builds, KMPKG_FAULT=<point>, listed in src/fault.c):
 * "<phase>:start" and "<phase>:end" after each phase commit, plus
 * verify:after-extract, verify:after-exchange (--reinstall), verify:after-store,
 * activate:after-gendir,
 * activate:after-swap, health-check:after-run,
 * commit:after-record (committed, staging not yet removed), rollback:start,
 * rollback:after-swap, rollback:after-commit, rollback:after-quarantine,
 * recovery:start, recovery:after-discard, gc:after-commit,
 * gc:after-generations, gc:after-store, and discard:after-rename inside
 * kmpkg_fsutil_discard (a tree moved into kmpkg/tmp, not yet deleted).
 * Readers sweep kmpkg/tmp when it is not empty, so such leftovers are gone
 * after the next command of any kind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kmpkg/archive.h"
#include "kmpkg/buf.h"
#include "kmpkg/error.h"
#include "kmpkg/fault.h"
#include "kmpkg/fsutil.h"
#include "kmpkg/health.h"
#include "kmpkg/lock.h"
#include "kmpkg/manifest.h"
#include "kmpkg/preflight.h"
#include "kmpkg/semver.h"
#include "kmpkg/sha256.h"
#include "kmpkg/sig.h"
#include "kmpkg/state.h"
#include "kmpkg/txn.h"
#include "kmpkg/uuid.h"
#include "kmpkg/worker.h"

#define JOURNAL_OUTPUT_MAX (16 * 1024)
#define ARCHIVE_MAX_BYTES ((uint64_t)1 << 30)

const char *const kmpkg_txn_phases[5] = {
	"download", "verify", "dependency-prepare", "activate", "health-check",
};

int kmpkg_txn_phase_index(const char *phase)
{
	int i;

	for (i = 0; phase && i < 5; i++)
		if (strcmp(phase, kmpkg_txn_phases[i]) == 0)
			return i + 1;
	return 0;
}

struct change {
	char *name;
	char *path;          /* the .kmpkg given; NULL for remove and rollback */
	char sha256[65];
	char *cache;         /* kmpkg/cache/<sha256> */
	bool copied;         /* into the cache by this transaction (cache_writeback) */
	char *version;       /* NULL when removed */
	char *entry;         /* new store entry, NULL when removed */
	char *from_version;  /* NULL when newly installed */
	char *from_entry;
	json_t *rec;         /* the new store record (owned), NULL when removed */
	bool noop;           /* same entry as installed: nothing to do */
	bool repaired;       /* --reinstall: its store entry was extracted again */
	bool extracted;      /* verify wrote it to the staging (store_extract) */
	const struct kmpkg_txn_target *target; /* expectations and constraint, or NULL */
	struct kmpkg_manifest *m; /* the package's manifest, during verify */
	json_t *sig;         /* signature result, from verify_manifest to store_extract */
	json_t *grants;      /* the plugin's granted_permissions once committed, NULL: unchanged */
};

struct paths {
	char *root, *kdir, *store, *gens, *cache, *tmp, *quar, *plugins;
};

/* What the committer's jobs (commit_job) share; written on its thread, read by
 * commit_wait once the queue is empty. */
struct committer {
	struct kmpkg_state *st;
	char id[KMPKG_ID_MAX + 1];
	int64_t order;    /* the number the numbering commit gave, once made */
	bool number_lost; /* the numbering commit failed or was dropped */
};

struct engine {
	const struct kmpkg_txn_opts *o;
	struct paths p;
	struct kmpkg_state *st;
	struct kmpkg_lock *lock;
	char id[KMPKG_ID_MAX + 1];
	const char *op;
	json_t *rec;          /* this transaction's record, rewritten at each commit */
	uint32_t seq;         /* journal sequence */
	int64_t active, known_good, next_gen;
	json_t *cur;          /* {name: entry} of the active generation */
	json_t *next;         /* the set this transaction activates */
	struct change *ch;
	size_t nch;
	int64_t to_gen;       /* -1 until activate */
	bool new_gen;
	bool target_healthy;  /* rollback to a generation that passed its checks */
	bool start_pending;   /* txn_start deferred: the first commit records it */
	bool gen_staged;      /* tmp/<id>/gen-<to_gen> built and synced in verify */
	struct kmpkg_worker *committer; /* commits queued on a thread (commit_async) */
	struct committer committer_ctx;
	const char *ended_async; /* the phase whose end is queued (phase_end_async) */
	uint64_t phase_t0;
	char *staging;        /* kmpkg/tmp/<id> */
	json_t *findings;     /* preflight findings, journaled with the verify end event */
	json_t *warnings;     /* preflight warnings [{code, message}], for the summary */
};

/* ---- small utilities ------------------------------------------------ */

static void now_iso(char out[32])
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

static json_t *json_now(void)
{
	char t[32];

	now_iso(t);
	return json_string(t);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

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

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

static const char *jstr(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Cleanup code may overwrite the error side channel: keep the first error. */
static void err_save(struct kmpkg_error *s)
{
	*s = *kmpkg_error_last();
}

static int err_restore(const struct kmpkg_error *s)
{
	return kmpkg_error_set(s->klass, s->code, s->field, s->next_step, "%s", s->message);
}

static void paths_init(struct paths *p, const char *root)
{
	p->root = xstrdup(root);
	p->kdir = kmpkg_fsutil_join(root, "kmpkg");
	p->store = kmpkg_fsutil_join(p->kdir, "store");
	p->gens = kmpkg_fsutil_join(p->kdir, "generations");
	p->cache = kmpkg_fsutil_join(p->kdir, "cache");
	p->tmp = kmpkg_fsutil_join(p->kdir, "tmp");
	p->quar = kmpkg_fsutil_join(p->kdir, "quarantine");
	p->plugins = kmpkg_fsutil_join(root, "plugins");
}

static void paths_release(struct paths *p)
{
	free(p->root);
	free(p->kdir);
	free(p->store);
	free(p->gens);
	free(p->cache);
	free(p->tmp);
	free(p->quar);
	free(p->plugins);
}

static char *gen_dir(const struct engine *e, int64_t n)
{
	return xasprintf("%s/%lld", e->p.gens, (long long)n);
}

static char *gen_link_target(int64_t n)
{
	return xasprintf("kmpkg/generations/%lld", (long long)n);
}

/* Which generation `plugins` points at, or -1. */
static int64_t plugins_gen(const struct engine *e)
{
	char *t = NULL, *end;
	int64_t n = -1;

	if (kmpkg_fsutil_readlink(&t, e->p.plugins) != 0) {
		kmpkg_error_clear();
		return -1;
	}
	if (strncmp(t, "kmpkg/generations/", 18) == 0) {
		n = strtoll(t + 18, &end, 10);
		if (*end || end == t + 18)
			n = -1;
	}
	free(t);
	return n;
}

static void change_release(struct change *c)
{
	free(c->name);
	free(c->path);
	free(c->cache);
	free(c->version);
	free(c->entry);
	free(c->from_version);
	free(c->from_entry);
	json_decref(c->rec);
	kmpkg_manifest_free(c->m);
	json_decref(c->sig);
	json_decref(c->grants);
}

static struct change *add_change(struct engine *e)
{
	struct change *v = realloc(e->ch, (e->nch + 1) * sizeof(*v));

	if (!v)
		abort();
	e->ch = v;
	memset(&v[e->nch], 0, sizeof(*v));
	return &v[e->nch++];
}

static json_t *changes_json(const struct engine *e)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < e->nch; i++) {
		const struct change *c = &e->ch[i];

		if (c->noop && !c->repaired)
			continue;
		json_array_append_new(a, json_pack("{s:s, s:s?, s:s?, s:s?, s:s?}", "name", c->name, "from",
						   c->from_version, "to", c->version, "entry", c->entry,
						   "from_entry", c->from_entry));
		if (c->repaired)
			json_object_set_new(json_array_get(a, json_array_size(a) - 1), "reinstalled", json_true());
	}
	return a;
}

static size_t real_changes(const struct engine *e)
{
	size_t i, n = 0;

	for (i = 0; i < e->nch; i++)
		n += !e->ch[i].noop;
	return n;
}

/* ---- state helpers -------------------------------------------------- */

/* The {name: entry} set of generation n (a new reference). */
static int gen_set(json_t **out, struct kmpkg_state_txn *t, int64_t n)
{
	json_t *g = NULL;
	int err;

	*out = NULL;
	err = kmpkg_state_gen_get(&g, t, (uint32_t)n);
	if (err == KMPKG_ENOTFOUND)
		return kmpkg_error_set(KMPKG_ENOTFOUND, "E_GENERATION_NOT_FOUND", NULL, NULL,
				       "generation %lld does not exist", (long long)n);
	if (err)
		return err;
	*out = json_object_get(g, "plugins");
	*out = *out ? json_deep_copy(*out) : json_object();
	json_decref(g);
	return 0;
}


/* foreach callback: {key (as a string): value} into the json object ctx. */
static int collect_obj(void *ctx, const void *key, size_t klen, json_t *val)
{
	char *k = strndup(key, klen);

	if (!k)
		abort();
	json_object_set_new(ctx, k, val);
	free(k);
	return 0;
}

/* foreach callback over generations: [{"n": N, "rec": {...}}] in key order. */
static int collect_gens(void *ctx, const void *key, size_t klen, json_t *val)
{
	if (klen != 4) {
		json_decref(val);
		return 0;
	}
	json_array_append_new(ctx, json_pack("{s:I, s:o}", "n", (json_int_t)kmpkg_state_gen_from_key(key),
					     "rec", val));
	return 0;
}

/* A store entry's record without its file list, which goes to the files db
 * (include/kmpkg/state.h); del_store drops both. */
static int put_store(struct kmpkg_state_txn *t, const char *entry, const json_t *rec)
{
	json_t *brief = json_copy((json_t *)rec); /* shallow: only "files" goes */
	const json_t *files = json_object_get(rec, "files");
	int err;

	if (!brief)
		abort();
	json_object_del(brief, "files");
	err = kmpkg_state_puts(t, KMPKG_DB_STORE, entry, brief);
	if (!err && files)
		err = kmpkg_state_puts(t, KMPKG_DB_FILES, entry, files);
	json_decref(brief);
	return err;
}

static int del_store(struct kmpkg_state_txn *t, const char *entry)
{
	int err = kmpkg_state_dels(t, KMPKG_DB_STORE, entry);

	return err ? err : kmpkg_state_dels(t, KMPKG_DB_FILES, entry);
}

/* Every change to the installed set goes through these two, which keep the
 * listing db (what `list` reads) in step in the same LMDB transaction. */
static int put_installed(struct kmpkg_state_txn *t, const char *name, const json_t *rec)
{
	struct kmpkg_listing l = { jstr(rec, "version"), jstr(rec, "entry"), jstr(rec, "constraint"),
				   jstr(rec, "description") };
	int err = kmpkg_state_puts(t, KMPKG_DB_INSTALLED, name, rec);

	return err ? err : kmpkg_state_listing_put(t, name, &l);
}

static int del_installed(struct kmpkg_state_txn *t, const char *name)
{
	int err = kmpkg_state_dels(t, KMPKG_DB_INSTALLED, name);

	return err ? err : kmpkg_state_dels(t, KMPKG_DB_LISTING, name);
}

/* The "grants" of generation n ({name: [permission]}, written when it
 * became known-good); *out NULL when it has none. */
static int gen_grants(json_t **out, struct kmpkg_state_txn *t, int64_t n)
{
	json_t *g = NULL;
	int err;

	*out = NULL;
	if (n < 0)
		return 0;
	err = kmpkg_state_gen_get(&g, t, (uint32_t)n);
	if (err == KMPKG_ENOTFOUND)
		return 0;
	if (err)
		return err;
	*out = json_incref(json_object_get(g, "grants"));
	json_decref(g);
	return 0;
}

struct grants_scan {
	const json_t *plugins; /* the generation's set */
	json_t *grants;
};

/* One installed record, raw: only those that mention grants are parsed. */
static int scan_grants(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	static const char mark[] = "\"granted_permissions\"";
	struct grants_scan *g = ctx;
	json_error_t je;
	json_t *rec = NULL;
	char *name;
	int err = 0;

	if (!memmem(val, vlen, mark, sizeof(mark) - 1))
		return 0;
	if (!(name = strndup(key, klen)))
		abort();
	if (json_object_get(g->plugins, name)) {
		if ((rec = json_loadb(val, vlen, 0, &je)) == NULL)
			err = kmpkg_error_set(KMPKG_EGENERIC, "E_STATE_CORRUPT", NULL, NULL,
					      "unreadable installed record of %s: %s", name, je.text);
		else if (json_array_size(json_object_get(rec, "granted_permissions")))
			json_object_set(g->grants, name, json_object_get(rec, "granted_permissions"));
	}
	json_decref(rec);
	free(name);
	return err;
}

/* Records in generation record g the grants its plugins hold now (the
 * installed db as this commit leaves it), so that re-activating it later
 * brings back, with a plugin removed since, what had been granted to it. */
static int snapshot_grants(json_t *g, struct kmpkg_state_txn *t)
{
	struct grants_scan sc = { json_object_get(g, "plugins"), json_object() };
	int err = kmpkg_state_foreach_raw(t, KMPKG_DB_INSTALLED, NULL, 0, scan_grants, &sc);

	if (!err && json_object_size(sc.grants))
		json_object_set(g, "grants", sc.grants);
	else if (!err)
		json_object_del(g, "grants");
	json_decref(sc.grants);
	return err;
}

static int first_listing(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct kmpkg_listing l;

	(void)key;
	(void)klen;
	*(bool *)ctx = kmpkg_state_listing_parse(&l, val, vlen) == 0;
	kmpkg_error_clear();
	return 1;
}

/* Whether the listing db is in the present format (its first record tells). */
static bool listing_current(struct kmpkg_state_txn *t)
{
	bool ok = false;

	if (kmpkg_state_foreach_raw(t, KMPKG_DB_LISTING, NULL, 0, first_listing, &ok) != 0) {
		kmpkg_error_clear();
		return false;
	}
	return ok;
}

/* Rewrites the installed DB as `set` (name -> store entry), keeping each
 * plugin's constraint and grants from its previous record; gen_grants (NULL
 * or the "grants" of the generation being re-activated) supplies the grants
 * of plugins that have no record now. */
static int write_installed(struct kmpkg_state_txn *t, json_t *set, const json_t *gen_grants)
{
	json_t *old = json_object(), *val, *rec = NULL, *copy;
	const char *name;
	void *tmp;
	size_t ninst = 0, nlist = 0;
	int err;

	if ((err = kmpkg_state_foreach(t, KMPKG_DB_INSTALLED, NULL, 0, false, collect_obj, old)) != 0 ||
	    (err = kmpkg_state_count(&ninst, t, KMPKG_DB_INSTALLED)) != 0 ||
	    (err = kmpkg_state_count(&nlist, t, KMPKG_DB_LISTING)) != 0)
		goto cleanup;
	/* Listing records in an earlier format (JSON) count as missing: this
	 * transaction rewrites them all. */
	if (nlist > 0 && !listing_current(t))
		nlist = 0;
	json_object_foreach_safe(old, tmp, name, val) {
		if (!json_object_get(set, name) && (err = del_installed(t, name)) != 0)
			goto cleanup;
	}
	json_object_foreach(set, name, val) {
		json_t *was = json_object_get(old, name);

		/* Unchanged plugins keep their record: a transaction writes what
		 * it changes, not the whole installed set (unless the listing db
		 * is not complete yet: a root from before it existed). */
		if (was && ninst == nlist && json_equal(json_object_get(was, "entry"), val))
			continue;
		err = kmpkg_state_gets(&rec, t, KMPKG_DB_STORE, json_string_value(val));
		if (err == KMPKG_ENOTFOUND)
			err = kmpkg_error_set(KMPKG_EGENERIC, "E_STATE_CORRUPT", NULL, NULL,
					      "no store record for %s", json_string_value(val));
		if (err)
			goto cleanup;
		copy = json_object_get(json_object_get(old, name), "constraint");
		json_object_set(rec, "constraint", copy ? copy : json_null());
		/* A store record from before the files db may still hold the
		 * file list: installed records never do (list and status read
		 * every one). */
		json_object_del(rec, "files");
		/* Grants belong to the plugin on this root, not to one version.
		 * One not installed now, brought back by re-activating a
		 * generation, gets the grants it had in that generation. */
		copy = json_object_get(json_object_get(old, name), "granted_permissions");
		if (!copy && !was)
			copy = json_object_get(gen_grants, name);
		if (copy)
			json_object_set(rec, "granted_permissions", copy);
		err = put_installed(t, name, rec);
		json_decref(rec);
		rec = NULL;
		if (err)
			goto cleanup;
	}
cleanup:
	json_decref(old);
	return err;
}

/* ---- commits, phases, journal --------------------------------------- */

typedef int (*extra_fn)(struct engine *e, struct kmpkg_state_txn *t, void *arg);

static int commit_wait(struct engine *e);

/* The lock holder record for the commit of e->rec; NULL once the record is
 * done (the commit deletes it). */
static json_t *holder_record(const struct engine *e)
{
	if (strcmp(jstr(e->rec, "state") ? jstr(e->rec, "state") : "", "done") == 0)
		return NULL;
	/* Nothing shared with e->rec: commit_async hands it to a thread. */
	return json_pack("{s:I, s:s, s:s, s:s?, s:o}", "pid", (json_int_t)getpid(), "id", e->id, "op",
			 jstr(e->rec, "op"), "phase", jstr(e->rec, "phase"), "since", json_now());
}

/* The first commit of a record also numbers it (txn_seq) and makes it the
 * newest (meta last_txn); its number is set in rec and, unless NULL, *order. */
static int number_record(struct kmpkg_state_txn *t, const char *id, json_t *rec, int64_t *order)
{
	json_t *last = json_string(id);
	int64_t n;
	int err;

	err = kmpkg_state_meta_get(&n, t, "txn_seq", 0);
	if (!err)
		err = kmpkg_state_meta_set(t, "txn_seq", n + 1);
	/* The newest transaction, for status without a scan of history. */
	if (!err)
		err = kmpkg_state_puts(t, KMPKG_DB_META, "last_txn", last);
	json_decref(last);
	if (err)
		return err;
	json_object_set_new(rec, "order", json_integer(n + 1));
	if (order)
		*order = n + 1;
	return 0;
}

/* The writes every commit makes: the journal event (if any), the record
 * (numbered first when `number`), the lock holder (deleted when NULL). */
static int commit_writes(struct kmpkg_state_txn *t, const char *id, uint32_t seq, const json_t *event,
			 json_t *rec, const json_t *holder, bool number, int64_t *order)
{
	int err;

	if (event && (err = kmpkg_state_journal_put(t, id, seq, event)) != 0)
		return err;
	if (number && (err = number_record(t, id, rec, order)) != 0)
		return err;
	if ((err = kmpkg_state_puts(t, KMPKG_DB_TXNS, id, rec)) != 0)
		return err;
	return holder ? kmpkg_state_puts(t, KMPKG_DB_LOCK, "holder", holder)
		      : kmpkg_state_dels(t, KMPKG_DB_LOCK, "holder");
}

/* One durable commit: an optional journal event (taken over), the
 * transaction record, the lock holder record and whatever `extra` writes.
 * The commits still queued on the committer are waited for first. */
static int commit_with(struct engine *e, json_t *event, extra_fn extra, void *arg)
{
	struct kmpkg_state_txn *t = NULL;
	json_t *holder = NULL;
	int err;

	if ((err = commit_wait(e)) != 0)
		goto cleanup;
	holder = holder_record(e);
	if ((err = kmpkg_state_begin(&t, e->st, true)) != 0)
		goto cleanup;
	err = commit_writes(t, e->id, event ? ++e->seq : 0, event, e->rec, holder, e->start_pending, NULL);
	if (err)
		goto cleanup;
	if (extra && (err = extra(e, t, arg)) != 0)
		goto cleanup;
	err = kmpkg_state_commit(t);
	t = NULL;
	if (!err)
		e->start_pending = false;
cleanup:
	kmpkg_state_abort(t);
	json_decref(holder);
	json_decref(event);
	return err;
}

/*
 * Commits on a thread: the committer, a worker (include/kmpkg/worker.h).
 * The start of a phase must be durable before the phase's first durable
 * step, not before its work in the staging; and the end of a phase before
 * the next phase's first durable step. So download's start, its end and
 * verify's start, and health-check's start are queued here (commit_async)
 * while the main thread goes on copying into the cache, extracting, or
 * running the health command; commit_wait waits until the queue is empty,
 * and is called before every commit made on the main thread, before each of
 * those phases' first durable step (phase_started) and in engine_release.
 * Queued commits run in order, one LMDB write transaction each; each works
 * on copies of the record, event and holder, so the main thread may go on
 * changing e->rec. After a failed commit the ones queued behind it are
 * dropped (each depends on the one before); commit_wait returns the failure
 * with its error.
 */
struct commit_job {
	uint32_t seq;
	json_t *event, *rec, *holder;
	bool number;
};

static int commit_job(void *ctx, void *job, bool failed)
{
	struct committer *c = ctx;
	struct commit_job *j = job;
	struct kmpkg_state_txn *t = NULL;
	int err = 0;

	/* A record copied before the numbering commit was made. */
	if (!j->number && c->order > 0)
		json_object_set_new(j->rec, "order", json_integer(c->order));
	if (failed) {
		c->number_lost |= j->number;
	} else if ((err = kmpkg_state_begin(&t, c->st, true)) == 0 &&
		   (err = commit_writes(t, c->id, j->seq, j->event, j->rec, j->holder, j->number, &c->order)) == 0) {
		err = kmpkg_state_commit(t);
		t = NULL;
	}
	kmpkg_state_abort(t);
	if (err && j->number) {
		c->number_lost = true;
		c->order = 0;
	}
	json_decref(j->event);
	json_decref(j->rec);
	json_decref(j->holder);
	free(j);
	return err;
}

/* commit_with(e, event, NULL, NULL) queued on the committer. */
static int commit_async(struct engine *e, json_t *event)
{
	struct commit_job *j;

	if (!e->committer) {
		e->committer_ctx.st = e->st;
		snprintf(e->committer_ctx.id, sizeof(e->committer_ctx.id), "%s", e->id);
		if (!(e->committer = kmpkg_worker_new(commit_job, &e->committer_ctx, 0)))
			return commit_with(e, event, NULL, NULL);
	}
	if (!(j = calloc(1, sizeof(*j))))
		abort();
	j->seq = ++e->seq;
	j->event = event;
	j->rec = json_deep_copy(e->rec);
	j->holder = holder_record(e);
	j->number = e->start_pending;
	/* numbered by this commit (commit_wait puts it back if it failed) */
	e->start_pending = false;
	/* An earlier failure is for commit_wait to report. */
	if (kmpkg_worker_push(e->committer, j) != 0)
		kmpkg_error_clear();
	return 0;
}

/* Waits until every queued commit is done; the first failure is returned
 * (with its error) as commit_with's would have been. */
static int commit_wait(struct engine *e)
{
	struct committer *c = &e->committer_ctx;
	int err;

	if (!e->committer)
		return 0;
	err = kmpkg_worker_wait(e->committer);
	if (c->order > 0)
		json_object_set_new(e->rec, "order", json_integer(c->order));
	if (c->number_lost)
		e->start_pending = true;
	c->number_lost = false;
	return err;
}

static void fault_at(const char *phase, const char *what)
{
#ifdef KMPKG_TESTING
	char name[64];

	snprintf(name, sizeof(name), "%s:%s", phase, what);
	kmpkg_fault(name);
#else
	(void)phase;
	(void)what;
#endif
}

/* The journal event that starts `phase`, with the record moved to it. */
static json_t *phase_start_event(struct engine *e, const char *phase)
{
	json_object_set_new(e->rec, "phase", json_string(phase));
	e->phase_t0 = mono_ms();
	return json_pack("{s:s, s:s, s:o}", "phase", phase, "event", "start", "time", json_now());
}

static int phase_begin(struct engine *e, const char *phase, extra_fn extra, void *arg)
{
	int err = commit_with(e, phase_start_event(e, phase), extra, arg);

	if (!err)
		fault_at(phase, "start");
	if (!err && e->o->on_phase)
		e->o->on_phase(e->o->on_phase_ctx, phase, e->rec);
	return err;
}

/* phase_begin whose commit runs on a thread (commit_async): the phase's
 * work in the staging overlaps it. The caller calls phase_started before
 * the phase's first durable step. */
static int phase_begin_async(struct engine *e, const char *phase)
{
	int err = commit_async(e, phase_start_event(e, phase));

	if (!err && e->o->on_phase)
		e->o->on_phase(e->o->on_phase_ctx, phase, e->rec);
	return err;
}

/* The start of `phase` made durable (commit_wait); on failure the phase's
 * staging is dropped, as after a failed phase_begin nothing of it stays. */
static int phase_started(struct engine *e, const char *phase)
{
	int err = commit_wait(e);

	if (err) {
		if (e->staging)
			kmpkg_fsutil_remove_staging(e->staging);
		return err;
	}
	if (e->ended_async)
		fault_at(e->ended_async, "end");
	e->ended_async = NULL;
	fault_at(phase, "start");
	return 0;
}

/* The journal event that ends `phase`; `failure` is 0 or the error class
 * whose details are in the side channel. output is taken over. */
static json_t *phase_end_event(struct engine *e, const char *phase, int failure, json_t *output)
{
	const struct kmpkg_error *le = kmpkg_error_last();
	json_t *ev;

	ev = json_pack("{s:s, s:s, s:o, s:I, s:s}", "phase", phase, "event", "end", "time", json_now(),
		       "duration_ms", (json_int_t)(mono_ms() - e->phase_t0), "outcome",
		       failure ? "failed" : "ok");
	if (failure) {
		json_object_set_new(ev, "code", json_string(le->code));
		json_object_set_new(ev, "message", json_string(le->message));
		json_object_set_new(ev, "exit", json_integer(-failure));
	}
	if (output)
		json_object_set_new(ev, "output", output);
	if (e->findings) {
		json_object_set_new(ev, "findings", e->findings);
		e->findings = NULL;
	}
	return ev;
}

/* Records the end of a phase (phase_end_event), with what `extra` writes. */
static int phase_end(struct engine *e, const char *phase, int failure, json_t *output, extra_fn extra,
		     void *arg)
{
	int err = commit_with(e, phase_end_event(e, phase, failure, output), extra, arg);

	if (!err)
		fault_at(phase, "end");
	return err;
}

/* The successful end of `phase` queued on the committer (commit_async),
 * followed by the next phase's phase_begin_async: the next phase's work in
 * the staging overlaps both, and its phase_started makes both durable. */
static int phase_end_async(struct engine *e, const char *phase)
{
	int err = commit_async(e, phase_end_event(e, phase, 0, NULL));

	if (!err)
		e->ended_async = phase;
	return err;
}

/* The outcome in the record, for the next commit (which may also end a
 * phase); unset_done takes it back when that commit failed, so the record
 * stays in flight for the way back. */
static void set_done(struct engine *e, const char *outcome)
{
	json_object_set_new(e->rec, "state", json_string("done"));
	json_object_set_new(e->rec, "outcome", json_string(outcome));
	json_object_set_new(e->rec, "ended", json_now());
}

static void unset_done(struct engine *e)
{
	json_object_set_new(e->rec, "state", json_string("running"));
	json_object_del(e->rec, "outcome");
	json_object_del(e->rec, "ended");
}

static int finish(struct engine *e, const char *outcome, const char *reason, extra_fn extra, void *arg)
{
	set_done(e, outcome);
	if (reason)
		json_object_set_new(e->rec, "reason", json_string(reason));
	return commit_with(e, NULL, extra, arg);
}

/* Failure before anything was activated: record it, drop the staging, leave
 * everything visible as it was. Returns the original error. */
static int abort_txn(struct engine *e, const char *phase, int failure)
{
	struct kmpkg_error saved;
	char *gd = NULL;

	err_save(&saved);
	if (phase)
		phase_end(e, phase, failure, NULL, NULL, NULL);
	json_object_set_new(e->rec, "code", json_string(saved.code));
	json_object_set_new(e->rec, "exit", json_integer(-failure));
	if (e->new_gen && e->to_gen >= 0) {
		gd = gen_dir(e, e->to_gen);
		kmpkg_fsutil_discard(gd, e->p.tmp);
	}
	if (e->staging)
		kmpkg_fsutil_remove_staging(e->staging);
	finish(e, "aborted", saved.message, NULL, NULL);
	free(gd);
	return err_restore(&saved);
}

/* ---- engine lifecycle --------------------------------------------------- */

static int recover_all(struct engine *e);

static int layout_init(struct engine *e)
{
	struct kmpkg_state_txn *t = NULL;
	const char *dirs[5];
	json_t *g = NULL;
	int64_t active;
	struct stat st;
	char *g0 = NULL;
	bool made = false;
	int err = 0, i;

	dirs[0] = e->p.store;
	dirs[1] = e->p.gens;
	dirs[2] = e->p.cache;
	dirs[3] = e->p.tmp;
	dirs[4] = e->p.quar;
	/* Missing directories are made without syncs, then synced once: by an
	 * fsync of kmpkg/, or for a new root by the syncfs below. */
	for (i = 0; i < 5; i++) {
		if (kmpkg_fsutil_is_dir(dirs[i]))
			continue;
		if ((err = kmpkg_fsutil_mkdir_staging(dirs[i], 0755)) != 0)
			goto cleanup;
		made = true;
	}
	if (lstat(e->p.plugins, &st) == 0 && !S_ISLNK(st.st_mode)) {
		err = kmpkg_error_set(KMPKG_EGENERIC, "E_ROOT_CONFLICT", NULL,
				      "move it away; kmpkg manages plugins as a symlink to a generation",
				      "%s exists and is not a kmpkg-managed symlink", e->p.plugins);
		goto cleanup;
	}
	if ((err = kmpkg_state_begin(&t, e->st, true)) != 0)
		goto cleanup;
	if ((err = kmpkg_state_meta_get(&active, t, "active", -1)) != 0)
		goto cleanup;
	if (active >= 0 && made && (err = kmpkg_fsutil_fsync_dir(e->p.kdir)) != 0)
		goto cleanup;
	if (active < 0) {
		/* A new root. Generation 0, the empty set, known-good by
		 * definition, and `plugins` pointing at it join the directories
		 * above; one syncfs makes them all durable before the commit
		 * that records generation 0 (a kill before it: the next writer
		 * finds each step done and does the rest). */
		g0 = gen_dir(e, 0);
		if ((err = kmpkg_fsutil_mkdir_staging(g0, 0755)) != 0)
			goto cleanup;
		if (plugins_gen(e) != 0) {
			char *lt = gen_link_target(0);

			err = kmpkg_fsutil_symlink_swap_batched(e->p.plugins, lt);
			free(lt);
			if (err)
				goto cleanup;
		}
		if ((err = kmpkg_fsutil_sync_tree(e->p.kdir)) != 0)
			goto cleanup;
		g = json_pack("{s:{}, s:n, s:o, s:b}", "plugins", "txn", "created", json_now(), "healthy", 1);
		if ((err = kmpkg_state_gen_put(t, 0, g)) != 0 || (err = kmpkg_state_meta_set(t, "active", 0)) != 0 ||
		    (err = kmpkg_state_meta_set(t, "known_good", 0)) != 0 ||
		    (err = kmpkg_state_meta_set(t, "next_gen", 1)) != 0)
			goto cleanup;
		err = kmpkg_state_commit(t);
		t = NULL;
	}
cleanup:
	kmpkg_state_abort(t);
	json_decref(g);
	free(g0);
	return err;
}

static int load_meta(struct engine *e)
{
	struct kmpkg_state_txn *t = NULL;
	int err;

	json_decref(e->cur);
	e->cur = NULL;
	if (!e->st) {
		e->active = e->known_good = 0;
		e->next_gen = 1;
		e->cur = json_object();
		return 0;
	}
	if ((err = kmpkg_state_begin(&t, e->st, false)) != 0)
		return err;
	if ((err = kmpkg_state_meta_get(&e->active, t, "active", 0)) != 0 ||
	    (err = kmpkg_state_meta_get(&e->known_good, t, "known_good", 0)) != 0 ||
	    (err = kmpkg_state_meta_get(&e->next_gen, t, "next_gen", 1)) != 0)
		goto cleanup;
	err = gen_set(&e->cur, t, e->active);
	if (err == KMPKG_ENOTFOUND) {
		kmpkg_error_clear();
		e->cur = json_object();
		err = 0;
	}
cleanup:
	kmpkg_state_abort(t);
	return err;
}

static int pick_id(struct engine *e)
{
	struct kmpkg_state_txn *t = NULL;
	json_t *old = NULL;
	int err;

	if (!e->o->correlation_id)
		return kmpkg_uuid_v7(e->id);
	if (!kmpkg_uuid_id_valid(e->o->correlation_id))
		return kmpkg_error_set(KMPKG_EUSAGE, "E_CORRELATION_ID_INVALID", "--correlation-id",
				       "use 1 to 64 characters from [A-Za-z0-9._-]",
				       "invalid correlation id '%s'", e->o->correlation_id);
	snprintf(e->id, sizeof(e->id), "%s", e->o->correlation_id);
	if (!e->st)
		return 0;
	if ((err = kmpkg_state_begin(&t, e->st, false)) != 0)
		return err;
	err = kmpkg_state_gets(&old, t, KMPKG_DB_TXNS, e->id);
	kmpkg_state_abort(t);
	json_decref(old);
	if (err == KMPKG_ENOTFOUND)
		return 0;
	if (err)
		return err;
	return kmpkg_error_set(KMPKG_EUSAGE, "E_CORRELATION_ID_USED", "--correlation-id",
			       "choose a new correlation id", "transaction %s already exists", e->id);
}

static void engine_release(struct engine *e)
{
	size_t i;

	commit_wait(e);
	kmpkg_worker_free(e->committer);
	for (i = 0; i < e->nch; i++)
		change_release(&e->ch[i]);
	free(e->ch);
	json_decref(e->rec);
	json_decref(e->cur);
	json_decref(e->next);
	json_decref(e->findings);
	json_decref(e->warnings);
	free(e->staging);
	kmpkg_state_free(e->st);
	kmpkg_lock_release(e->lock);
	paths_release(&e->p);
}

static void engine_init(struct engine *e, const struct kmpkg_txn_opts *o, const char *op)
{
	memset(e, 0, sizeof(*e));
	e->o = o;
	e->op = op;
	e->to_gen = -1;
	paths_init(&e->p, o->root);
}

/* Mutating commands: lock, state, layout, recovery, meta, id. */
static int engine_open(struct engine *e)
{
	int err;

	if (!e->o->lock && (err = kmpkg_lock_acquire(&e->lock, e->o->root, e->o->wait_secs)) != 0)
		return err;
	if ((err = kmpkg_state_open(&e->st, e->o->root, true)) != 0)
		return err;
	if ((err = layout_init(e)) != 0)
		return err;
	if ((err = recover_all(e)) != 0)
		return err;
	if ((err = load_meta(e)) != 0)
		return err;
	return pick_id(e);
}

/* --dry-run: no lock, read-only state when there is one, nothing written. */
static int engine_open_readonly(struct engine *e)
{
	int err = kmpkg_state_open(&e->st, e->o->root, false);

	if (err == KMPKG_ENOTFOUND) {
		kmpkg_error_clear();
		e->st = NULL;
	} else if (err) {
		return err;
	}
	if ((err = load_meta(e)) != 0)
		return err;
	return pick_id(e);
}

/* Transactions are numbered in start order ("order") for history. */
static int txn_start(struct engine *e, json_t *targets)
{
	json_t *perms = json_array();
	size_t i;

	for (i = 0; i < e->o->n_allow_permissions; i++)
		json_array_append_new(perms, json_string(e->o->allow_permissions[i]));
	e->rec = json_pack("{s:s, s:s, s:o, s:s, s:n, s:o, s:I, s:I, s:I, s:b, s:o, s:o, s:[]}", "id", e->id,
			   "op", e->op, "targets", targets, "state", "running", "phase", "started",
			   json_now(), "pid", (json_int_t)getpid(), "from_gen", (json_int_t)e->active,
			   "known_good", (json_int_t)e->known_good, "allow_unsigned", e->o->allow_unsigned,
			   "allowed_permissions", perms, "order", json_integer(0),
			   "changes");
	e->staging = kmpkg_fsutil_join(e->p.tmp, e->id);
	if (e->start_pending)
		return 0; /* recorded by the first phase commit (see run_from_deps) */
	e->start_pending = true; /* numbered by this commit */
	return commit_with(e, NULL, NULL, NULL);
}

static json_t *summary(const struct engine *e)
{
	json_t *s = json_pack("{s:s, s:s, s:o, s:I}", "id", e->id, "op", e->op, "changes", changes_json(e),
			      "generation", (json_int_t)(e->to_gen >= 0 ? e->to_gen : e->active));

	if (e->rec) {
		const char *k[] = { "outcome", "reason", "returned_to" };
		size_t i;

		for (i = 0; i < 3; i++)
			if (json_object_get(e->rec, k[i]))
				json_object_set(s, k[i], json_object_get(e->rec, k[i]));
	}
	if (e->warnings && json_array_size(e->warnings))
		json_object_set(s, "warnings", e->warnings);
	return s;
}

/* ---- phase 1: download ------------------------------------------------ */

static int open_package(int *out, const char *path)
{
	struct stat st;

	*out = open(path, O_RDONLY | O_CLOEXEC);
	if (*out < 0) {
		if (errno == ENOENT)
			return kmpkg_error_set(KMPKG_ENOTFOUND, "E_PACKAGE_NOT_FOUND", NULL,
					       "check the path of the .kmpkg file", "%s does not exist", path);
		return kmpkg_error_errno(errno, "open", path);
	}
	if (fstat(*out, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(*out);
		*out = -1;
		return kmpkg_error_set(KMPKG_EUSAGE, "E_PACKAGE_NOT_FILE", NULL, "give a .kmpkg file",
				       "%s is not a regular file", path);
	}
	return 0;
}

/* Hashes fd to its end; when wfd >= 0 also copies the bytes there. */
static int hash_copy(char out[65], int fd, int wfd, const char *what, const char *wpath)
{
	unsigned char buf[65536];
	struct kmpkg_sha256 h;
	uint64_t total = 0;

	kmpkg_sha256_init(&h);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf)), off = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kmpkg_error_errno(errno, "read", what);
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (total > ARCHIVE_MAX_BYTES)
			return kmpkg_error_set(KMPKG_EVERIFY, "E_ARCHIVE_TOO_LARGE", NULL, NULL,
					       "%s is larger than %llu bytes", what,
					       (unsigned long long)ARCHIVE_MAX_BYTES);
		kmpkg_sha256_update(&h, buf, (size_t)n);
		while (wfd >= 0 && off < n) {
			ssize_t w = write(wfd, buf + off, (size_t)(n - off));

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return kmpkg_error_errno(errno, "write", wpath);
			off += w;
		}
	}
	kmpkg_sha256_hex(&h, out);
	return 0;
}

static int expect_digest(const struct change *c)
{
	if (c->target && c->target->expect_sha256 && strcmp(c->target->expect_sha256, c->sha256) != 0)
		return kmpkg_error_set(KMPKG_EVERIFY, "E_DIGEST_MISMATCH", "/artifact/sha256",
				       "the artifact changed or is corrupt; refresh the source and retry",
				       "%s has sha256 %s, expected %s", c->path, c->sha256, c->target->expect_sha256);
	return 0;
}

/* Streams the package into kmpkg/cache/<sha256> (temp + rename; synced with
 * the extracted files in stage_sync). */
static int copy_into_cache(struct engine *e, struct change *c, int fd)
{
	char *tmp = NULL;
	int wfd = -1, err;

	/* The partial copy lives in the staging (swept after a crash) and is
	 * renamed into the cache only once complete. Its sync is batched with
	 * the extracted files' (stage_sync): the cache is a cache, hashed
	 * again as it is extracted (store_extract; src/fetch.c re-hashes a
	 * cached download before reusing it), and the copy made here always
	 * replaces what the cache held under that name. */
	if ((err = kmpkg_fsutil_mkdir_staging(e->staging, 0755)) != 0 ||
	    (err = kmpkg_fsutil_open_temp(&wfd, &tmp, e->staging)) != 0)
		goto cleanup;
	/* Its write-back starts later (cache_writeback); synced with the files. */
	if ((err = hash_copy(c->sha256, fd, wfd, c->path, tmp)) != 0 || (err = expect_digest(c)) != 0)
		goto cleanup;
	c->cache = kmpkg_fsutil_join(e->p.cache, c->sha256);
	err = kmpkg_fsutil_commit_temp_batched(wfd, tmp, c->cache);
	wfd = -1;
	c->copied = !err;
cleanup:
	if (wfd >= 0) {
		close(wfd);
		unlink(tmp);
	}
	free(tmp);
	return err;
}

/* A package fetched by name is in the cache already, published under its
 * digest by src/fetch.c with the durable-write helper: it is hashed (the
 * digest names the store entry), not copied onto itself. Anywhere else
 * (not expected), it is copied like a local file. */
static int download_fetched(struct engine *e, struct change *c, int fd)
{
	char *at;
	int err;

	if ((err = hash_copy(c->sha256, fd, -1, c->path, NULL)) != 0)
		return err;
	at = kmpkg_fsutil_join(e->p.cache, c->sha256);
	if (strcmp(at, c->path) == 0) {
		c->cache = at;
		return expect_digest(c);
	}
	free(at);
	if (lseek(fd, 0, SEEK_SET) != 0)
		return kmpkg_error_errno(errno, "seek", c->path);
	return copy_into_cache(e, c, fd);
}

/* Starts the write-back of the packages copied into the cache once the
 * download phase's commits are durable, so that it overlaps verify's
 * extraction; verify's sync makes them durable. Started as each copy is
 * written, it would put 1 MiB per MiB installed in front of those commits'
 * flushes on the same device (3 ms more for the 1 MiB package of
 * scripts/bench on journaled ext4). A hint: nothing fails here. */
static void cache_writeback(const struct engine *e)
{
	size_t i;

	for (i = 0; i < e->nch; i++) {
		int fd;

		if (!e->ch[i].copied || (fd = open(e->ch[i].cache, O_RDONLY | O_CLOEXEC)) < 0)
			continue;
		kmpkg_fsutil_writeback_start(fd);
		close(fd);
	}
}

static int download_one(struct engine *e, struct change *c)
{
	bool fetched = false;
	int fd = -1, err;

	if (!c->path && c->target && c->target->fetch) {
		if ((err = c->target->fetch(&c->path, c->target->fetch_ctx)) != 0)
			return err;
		fetched = true;
	}
	if ((err = open_package(&fd, c->path)) != 0)
		return err;
	err = fetched ? download_fetched(e, c, fd) : copy_into_cache(e, c, fd);
	close(fd);
	return err;
}

/* ---- phase 2: verify ------------------------------------------------------ */

static int manifest_error(const struct kmpkg_diags *d, const char *label)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		const struct kmpkg_diag *g = &d->v[i];

		if (g->severity != KMPKG_SEV_ERROR)
			continue;
		return kmpkg_error_set(KMPKG_EVERIFY, "E_MANIFEST_INVALID", g->field, g->next_step,
				       "%s:%d:%d: %s [%s]", label, g->line, g->column, g->message, g->code);
	}
	return kmpkg_error_set(KMPKG_EVERIFY, "E_MANIFEST_INVALID", NULL, NULL, "%s is not a valid manifest", label);
}

/* Reads and checks the manifest inside `archive` (label names it). */
static int load_manifest(struct kmpkg_manifest **out, const char *archive, const char *label)
{
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	char *text = NULL, *lab = NULL;
	size_t len = 0;
	int err;

	*out = NULL;
	if ((err = kmpkg_archive_read_manifest(&text, &len, archive)) != 0)
		goto cleanup;
	lab = xasprintf("%s:kmpkg.yaml", label);
	err = kmpkg_manifest_load_buf(out, lab, text, len, &d);
	if (err == KMPKG_EUSAGE)
		err = manifest_error(&d, lab);
cleanup:
	kmpkg_diags_release(&d);
	free(text);
	free(lab);
	return err;
}

static json_t *strlist_json(const struct kmpkg_strlist *l)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < l->n; i++)
		json_array_append_new(a, json_string(l->v[i]));
	return a;
}

static json_t *files_json(const struct kmpkg_filelist *fl)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; fl && i < fl->n; i++) {
		const struct kmpkg_file *f = &fl->v[i];
		char type[2] = { f->type, 0 };

		json_array_append_new(a, json_pack("{s:s, s:s, s:I, s:I, s:s?, s:s?}", "path", f->path, "type",
						   type, "mode", (json_int_t)f->mode, "size", (json_int_t)f->size,
						   "sha256", f->sha256[0] ? f->sha256 : NULL, "link",
						   f->link_target));
	}
	return a;
}

/* The store record of a package: everything later phases, rollback and the
 * read-only commands need without opening the archive again. */
static json_t *store_record(const struct engine *e, const struct change *c, const struct kmpkg_manifest *m,
			    const struct kmpkg_filelist *fl)
{
	json_t *deps = json_object(), *health = json_null();
	size_t i;

	for (i = 0; i < m->ndeps; i++)
		json_object_set_new(deps, m->deps[i].name, json_string(m->deps[i].range));
	if (m->health_command.n > 0)
		health = json_pack("{s:o, s:I}", "command", strlist_json(&m->health_command), "timeout_ms",
				   (json_int_t)m->health_timeout_ms);
	return json_pack("{s:s, s:s, s:s, s:s, s:s?, s:o, s:o, s:o, s:o, s:s?, s:s, s:o, s:I}", "name", m->name,
			 "version", m->version, "entry", c->entry, "sha256", c->sha256, "description",
			 m->description, "deps", deps, "health", health, "permissions",
			 strlist_json(&m->permissions), "files", files_json(fl), "entrypoint", m->entrypoint,
			 "installed_by", e->id, "created", json_now(), "nfiles", (json_int_t)(fl ? fl->n : 0));
}

static int check_health_command(const struct kmpkg_manifest *m, const char *dir)
{
	const char *cmd;
	struct stat st;
	char *p = NULL;
	int err = 0;

	if (m->health_command.n == 0)
		return 0;
	cmd = m->health_command.v[0];
	if (cmd[0] == '/' || strstr(cmd, "..")) {
		err = kmpkg_error_set(KMPKG_EVERIFY, "E_HEALTH_COMMAND_MISSING", "/health_check/command/0",
				      "name a program inside the package, relative to its root",
				      "%s %s: health check command '%s' is not inside the package", m->name,
				      m->version, cmd);
		goto cleanup;
	}
	p = kmpkg_fsutil_join(dir, cmd);
	if (stat(p, &st) != 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 0111))
		err = kmpkg_error_set(KMPKG_EVERIFY, "E_HEALTH_COMMAND_MISSING", "/health_check/command/0",
				      "ship the health check program in the package with its executable bit set",
				      "%s %s: health check command '%s' %s", m->name, m->version, cmd,
				      stat(p, &st) != 0 ? "is missing from the package" : "is not an executable file");
cleanup:
	free(p);
	return err;
}

static struct change *find_change(struct engine *e, const char *name, const struct change *except)
{
	size_t i;

	for (i = 0; i < e->nch; i++)
		if (&e->ch[i] != except && e->ch[i].name && strcmp(e->ch[i].name, name) == 0)
			return &e->ch[i];
	return NULL;
}

/* Store record of an entry, or NULL. */
static json_t *store_get(struct engine *e, const char *entry)
{
	struct kmpkg_state_txn *t = NULL;
	json_t *r = NULL;

	if (!e->st || kmpkg_state_begin(&t, e->st, false) != 0) {
		kmpkg_error_clear();
		return NULL;
	}
	if (kmpkg_state_gets(&r, t, KMPKG_DB_STORE, entry) != 0)
		r = NULL;
	kmpkg_state_abort(t);
	return r;
}

/* Names the change after its manifest and decides what it does relative to
 * the installed set: install replaces any version, update only moves up. */
static int classify(struct engine *e, struct change *c, const struct kmpkg_manifest *m, bool update)
{
	const char *cur_entry;
	json_t *cur_rec = NULL;
	int cmp = 0, err = 0;

	c->name = xstrdup(m->name);
	c->version = xstrdup(m->version);
	c->entry = xasprintf("%s-%s-%.12s", m->name, m->version, c->sha256);
	if (find_change(e, c->name, c))
		return kmpkg_error_set(KMPKG_EUSAGE, "E_DUPLICATE_TARGET", NULL, "give each plugin once",
				       "%s is given more than once", c->name);
	cur_entry = jstr(e->cur, c->name);
	if (cur_entry) {
		c->from_entry = xstrdup(cur_entry);
		cur_rec = store_get(e, cur_entry);
		c->from_version = xstrdup(cur_rec ? jstr(cur_rec, "version") : "?");
		c->noop = strcmp(cur_entry, c->entry) == 0;
	}
	if (update && !cur_entry) {
		err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_NOT_INSTALLED", NULL, "install it with 'kmpkg install PATH'",
				      "%s is not installed, so it cannot be updated", c->name);
		goto cleanup;
	}
	if (update && !c->noop) {
		if (kmpkg_semver_compare(&cmp, c->version, c->from_version) != 0)
			cmp = 1;
		if (cmp <= 0) {
			err = kmpkg_error_set(KMPKG_EGENERIC, "E_NOT_NEWER", NULL,
					      "use 'kmpkg install PATH' to replace it, or 'kmpkg rollback NAME'",
					      "%s %s is not newer than the installed %s", c->name, c->version,
					      c->from_version);
			goto cleanup;
		}
	}
cleanup:
	json_decref(cur_rec);
	return err;
}

static int check_expected(const struct change *c, const struct kmpkg_manifest *m)
{
	const struct kmpkg_txn_target *t = c->target;

	if (t && t->expect_name && strcmp(t->expect_name, m->name) != 0)
		return kmpkg_error_set(KMPKG_EVERIFY, "E_MANIFEST_MISMATCH", "/name", NULL,
				       "%s contains %s, not %s", c->path, m->name, t->expect_name);
	if (t && t->expect_version && strcmp(t->expect_version, m->version) != 0)
		return kmpkg_error_set(KMPKG_EVERIFY, "E_MANIFEST_MISMATCH", "/version", NULL,
				       "%s contains %s %s, not version %s", c->path, m->name, m->version,
				       t->expect_version);
	return 0;
}

/* Verify, first half: the digest of the cached archive, its manifest (kept
 * in c->m for preflight), what it must be and the signature. */
static int verify_manifest(struct engine *e, struct change *c, bool update)
{
	struct kmpkg_sig_result sr;
	const char *slash = strrchr(c->path, '/');
	int err;

	/* The cache's digest is checked on the bytes extraction reads
	 * (store_extract): what is published is what was hashed. */
	if ((err = load_manifest(&c->m, c->cache, slash ? slash + 1 : c->path)) != 0)
		goto cleanup;
	if ((err = check_expected(c, c->m)) != 0)
		goto cleanup;
	if ((err = classify(e, c, c->m, update)) != 0 || (c->noop && !e->o->reinstall))
		goto cleanup;
	/* The signature sits beside the package the operator named. */
	if ((err = kmpkg_sig_check(e->p.root, c->path, e->o->signature, c->m->name, c->m->version, c->sha256,
				   e->o->allow_unsigned, &sr)) != 0)
		goto cleanup;
	c->sig = json_pack("{s:s, s:b, s:s, s:s}", "status", sr.status, "verified", sr.verified, "kind", sr.kind,
			   "key_id", sr.key_id);
cleanup:
	return err;
}

/* Verify, second half (after preflight passed): extract into the staging
 * and check the health command. Made durable by stage_sync, then published
 * by store_publish. */
static int store_extract(struct engine *e, struct change *c)
{
	struct kmpkg_extract_limits lim;
	struct kmpkg_filelist *fl = NULL;
	char *stage = NULL;
	int err;

	if (c->noop && !e->o->reinstall)
		return 0;
	if ((err = kmpkg_fsutil_mkdir_staging(e->staging, 0755)) != 0)
		goto cleanup;
	stage = kmpkg_fsutil_join(e->staging, c->entry);
	if ((err = kmpkg_fsutil_remove_staging(stage)) != 0)
		goto cleanup;
	kmpkg_extract_limits_default(&lim);
	/* The archive hashed as it is read: the digest the download computed
	 * (and the signature covers) is the digest of what is extracted. */
	if ((err = kmpkg_archive_extract_sha256(&fl, c->cache, stage, &lim, c->sha256)) != 0)
		goto cleanup;
	kmpkg_fault("verify:after-extract");
	if ((err = check_health_command(c->m, stage)) != 0)
		goto cleanup;
	c->rec = store_record(e, c, c->m, fl);
	json_object_set(c->rec, "signature", c->sig);
	c->extracted = true;
cleanup:
	kmpkg_filelist_free(fl);
	free(stage);
	return err;
}

static void build_next(struct engine *e);
static int gen_links(struct engine *e, const char *dir);

/* Everything verify wrote to the staging, made durable at once: the cache
 * copies, every extracted entry and, when the transaction makes a new
 * generation, that generation's directory of links (tmp/<id>/gen-N: it
 * only waits for activation to be renamed into place), all by one syncfs. */
static int stage_sync(struct engine *e)
{
	char *stage = NULL;
	bool any = false;
	size_t i;
	int err;

	for (i = 0; i < e->nch; i++)
		any |= e->ch[i].extracted;
	if (!any)
		return 0;
	build_next(e);
	if (real_changes(e) > 0) {
		stage = xasprintf("%s/gen-%lld", e->staging, (long long)e->next_gen);
		if ((err = kmpkg_fsutil_remove_staging(stage)) != 0 ||
		    (err = kmpkg_fsutil_mkdir_staging(stage, 0755)) != 0 || (err = gen_links(e, stage)) != 0)
			goto cleanup;
	}
	if ((err = kmpkg_fsutil_sync_tree(e->staging)) != 0)
		goto cleanup;
	e->gen_staged = stage != NULL;
cleanup:
	free(stage);
	return err;
}

/* The synced tree takes the entry's name in the store; an entry already
 * there (same name, version and digest) is immutable and reused, except
 * with --reinstall: the fresh tree and the entry trade places in one rename
 * (RENAME_EXCHANGE), so the entry is never absent or half written, and what
 * was there (modified, perhaps) leaves with the staging. */
static int store_publish(struct engine *e, struct change *c)
{
	char *stage = NULL, *dest = NULL;
	int err;

	if (!c->extracted)
		return 0;
	stage = kmpkg_fsutil_join(e->staging, c->entry);
	dest = kmpkg_fsutil_join(e->p.store, c->entry);
	if (kmpkg_fsutil_is_dir(dest)) {
		if (e->o->reinstall) {
			if ((err = kmpkg_fsutil_exchange(stage, dest)) != 0)
				goto cleanup;
			c->repaired = true;
			kmpkg_fault("verify:after-exchange");
		}
		err = kmpkg_fsutil_remove_staging(stage);
	} else {
		err = kmpkg_fsutil_publish(stage, dest);
	}
	if (!err)
		kmpkg_fault("verify:after-store");
cleanup:
	free(stage);
	free(dest);
	return err;
}

/* ---- phase 2, continued: preflight (SPEC §1, §8, §9) ----------------------- */

/* The host profile: --host FILE, else <root>/kmpkg/host.yaml. Without one
 * (the default path absent) *out stays NULL and d gets NO_HOST_PROFILE; an
 * invalid profile leaves its error findings in d. */
static int load_host(struct kmpkg_host **out, struct engine *e, struct kmpkg_diags *d)
{
	char *path = e->o->host_file ? xstrdup(e->o->host_file) : kmpkg_fsutil_join(e->p.kdir, "host.yaml");
	int err = 0;

	*out = NULL;
	if (!kmpkg_fsutil_exists(path)) {
		if (e->o->host_file) {
			err = kmpkg_error_set(KMPKG_EUSAGE, "E_HOST_PROFILE_MISSING", "--host",
					      "give the path of a host profile (kmpkg-host(5))", "no host profile at %s",
					      path);
			goto cleanup;
		}
		err = kmpkg_diags_add(d, KMPKG_SEV_WARNING, "NO_HOST_PROFILE", "", path, 0, 0, "a host profile", "none",
				      "write the host profile there (kmpkg-host(5)) or pass --host FILE",
				      "no host profile at %s: host version, api, tier and capability checks skipped "
				      "(permissions still need a grant)",
				      path);
		goto cleanup;
	}
	err = kmpkg_host_load_file(out, path, d);
	if (err == KMPKG_EUSAGE)
		err = 0; /* its findings are in d and end the transaction */
cleanup:
	free(path);
	return err;
}

static void strlist_add(struct kmpkg_strlist *l, const char *s)
{
	char **v;

	if (kmpkg_strlist_contains(l, s))
		return;
	v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (!v)
		abort();
	l->v = v;
	l->v[l->n++] = xstrdup(s);
}

/* The permissions granted to `name` by earlier transactions on this root. */
static void prior_grants(struct engine *e, const char *name, struct kmpkg_strlist *out)
{
	struct kmpkg_state_txn *t = NULL;
	json_t *rec = NULL, *p;
	size_t i;

	if (!e->st || kmpkg_state_begin(&t, e->st, false) != 0)
		goto cleanup;
	if (kmpkg_state_gets(&rec, t, KMPKG_DB_INSTALLED, name) != 0)
		goto cleanup;
	json_array_foreach(json_object_get(rec, "granted_permissions"), i, p)
		if (json_is_string(p))
			strlist_add(out, json_string_value(p));
cleanup:
	kmpkg_state_abort(t);
	json_decref(rec);
	kmpkg_error_clear();
}

/* A command-line word as the operator would retype it. */
static void shell_word(struct kmpkg_buf *b, const char *w)
{
	const char *p;

	if (w[0] && strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._/@+:,=-") ==
			    strlen(w)) {
		kmpkg_buf_puts(b, w);
		return;
	}
	kmpkg_buf_puts(b, "'");
	for (p = w; *p; p++) {
		if (*p == '\'')
			kmpkg_buf_puts(b, "'\\''");
		else
			kmpkg_buf_put(b, p, 1);
	}
	kmpkg_buf_puts(b, "'");
}

/* The targets of this transaction as given on the command line. */
static char *target_args(const struct engine *e)
{
	struct kmpkg_buf b = KMPKG_BUF_INIT;
	size_t i;

	for (i = 0; i < e->nch; i++) {
		const struct change *c = &e->ch[i];
		const struct kmpkg_txn_target *t = c->target;
		char *w = t && t->expect_name ? xasprintf("%s%s%s", t->expect_name, t->constraint ? "@" : "",
							  t->constraint ? t->constraint : "")
					      : xstrdup(c->path ? c->path : "?");

		if (i)
			kmpkg_buf_puts(&b, " ");
		shell_word(&b, w);
		free(w);
	}
	return b.ptr ? kmpkg_buf_detach(&b) : xstrdup("");
}

/* What this transaction grants c's plugin: the --allow-permission values
 * it declares and needs (neither allowed by the host nor granted before).
 * c->grants = earlier grants + those; NULL when nothing new. */
static void note_grants(struct change *c, const struct kmpkg_host *host,
			const struct kmpkg_strlist *prior, json_t *granted)
{
	json_t *fresh = json_array();
	size_t i;

	for (i = 0; i < c->m->permissions.n; i++) {
		const char *p = c->m->permissions.v[i];

		if ((host && kmpkg_strlist_contains(&host->permissions_allowed, p)) ||
		    kmpkg_strlist_contains(prior, p))
			continue;
		json_array_append_new(fresh, json_string(p)); /* passed, so granted by the flag */
	}
	if (json_array_size(fresh)) {
		c->grants = strlist_json(prior);
		json_array_extend(c->grants, fresh);
		json_object_set(granted, c->name, fresh);
	}
	json_decref(fresh);
}

static bool needs_plugin_capability(const struct engine *e, const struct kmpkg_host *host)
{
	size_t i, j;

	for (i = 0; i < e->nch; i++)
		for (j = 0; !e->ch[i].noop && e->ch[i].m && j < e->ch[i].m->requires.n; j++)
			if (!kmpkg_strlist_contains(&host->capabilities, e->ch[i].m->requires.v[j]))
				return true;
	return false;
}

/* The first error finding as the transaction's error (exit 3). */
static int preflight_error(const struct kmpkg_diags *d, const char *id)
{
	size_t i, nerr = kmpkg_diags_count(d, KMPKG_SEV_ERROR);
	char code[64], more[160] = "";

	for (i = 0; i < d->n; i++) {
		const struct kmpkg_diag *g = &d->v[i];

		if (g->severity != KMPKG_SEV_ERROR)
			continue;
		snprintf(code, sizeof(code), "E_%s", g->code);
		if (nerr > 1)
			snprintf(more, sizeof(more), "; %zu more error%s%s%s", nerr - 1, nerr > 2 ? "s" : "",
				 id ? ", see kmpkg show " : "", id ? id : "");
		return kmpkg_error_set(KMPKG_EPREFLIGHT, code, g->field, g->next_step,
				       "%s:%d:%d: %s (required: %s; actual: %s)%s", g->file, g->line, g->column,
				       g->message, g->required ? g->required : "-", g->actual ? g->actual : "-", more);
	}
	return 0;
}

/* The index cache's versions of the transaction's plugins (ctx.index: the
 * next step of a finding names the newest indexed version that passes), or
 * NULL: without state or sources the gate works as before. */
static json_t *preflight_index(const struct engine *e, struct kmpkg_manifest *const *given)
{
	struct kmpkg_state_txn *t = NULL;
	json_t *idx = NULL;

	if (e->st && kmpkg_state_begin(&t, e->st, false) == 0)
		kmpkg_preflight_index_load(&idx, t, given, e->nch);
	kmpkg_state_abort(t);
	kmpkg_error_clear();
	return idx;
}

/*
 * Preflight of every package of the transaction against the host profile,
 * with the transaction's packages and the installed plugins they do not
 * replace as the plugin set (capabilities); dependencies are left to
 * dependency-prepare. Findings go to e->findings (the verify end event),
 * warnings also to e->warnings; grants to c->grants and rec.granted.
 */
static int preflight_changes(struct engine *e)
{
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_host *host = NULL;
	struct kmpkg_manifest **inst = NULL, **given = NULL, **others = NULL;
	struct kmpkg_preflight_ctx ctx = { 0 };
	json_t *granted = json_object(), *index = NULL;
	char *cmd = NULL, *args = NULL;
	size_t ninst = 0, nothers = 0, i, j;
	int err;

	if ((err = load_host(&host, e, &d)) != 0)
		goto cleanup;
	/* Installed manifests matter only for a capability the host lacks. */
	if (host && needs_plugin_capability(e, host) &&
	    (err = kmpkg_preflight_load_installed(&inst, &ninst, e->p.root)) != 0)
		goto cleanup;
	given = calloc(e->nch + 1, sizeof(*given));
	others = calloc(ninst + 1, sizeof(*others));
	if (!given || !others)
		abort();
	for (i = 0; i < e->nch; i++)
		given[i] = e->ch[i].m;
	for (j = 0; j < ninst; j++)
		if (!find_change(e, inst[j]->name, NULL))
			others[nothers++] = inst[j];
	cmd = xasprintf("kmpkg %s", e->op);
	args = target_args(e);
	ctx.host = host;
	ctx.given = given;
	ctx.ngiven = e->nch;
	ctx.installed = others;
	ctx.ninstalled = nothers;
	ctx.skip_dependencies = true;
	ctx.grant_command = cmd;
	ctx.grant_args = args;
	ctx.index = index = preflight_index(e, given);
	for (i = 0; i < e->nch; i++) {
		struct change *c = &e->ch[i];
		struct kmpkg_strlist prior = { NULL, 0 }, allowed = { NULL, 0 };
		int rc;

		if (c->noop || !c->m)
			continue;
		prior_grants(e, c->name, &prior);
		for (j = 0; j < prior.n; j++)
			strlist_add(&allowed, prior.v[j]);
		for (j = 0; j < e->o->n_allow_permissions; j++)
			strlist_add(&allowed, e->o->allow_permissions[j]);
		ctx.granted = &allowed;
		rc = kmpkg_preflight_check_manifest(&ctx, c->m, &d);
		if (rc == 0)
			note_grants(c, host, &prior, granted);
		kmpkg_strlist_release(&prior);
		kmpkg_strlist_release(&allowed);
		if (rc == KMPKG_EGENERIC) {
			err = rc;
			goto cleanup;
		}
	}
	if (d.n) {
		json_decref(e->findings);
		e->findings = kmpkg_diags_to_json(&d);
	}
	json_decref(e->warnings);
	e->warnings = json_array();
	for (i = 0; i < d.n; i++)
		if (d.v[i].severity == KMPKG_SEV_WARNING)
			json_array_append_new(e->warnings, json_pack("{s:s, s:s}", "code", d.v[i].code, "message",
								     d.v[i].message));
	if (e->rec) {
		json_object_set(e->rec, "granted", granted);
		if (json_array_size(e->warnings))
			json_object_set(e->rec, "warnings", e->warnings);
	}
	err = preflight_error(&d, e->rec ? e->id : NULL);
cleanup:
	kmpkg_preflight_manifests_free(inst, ninst);
	kmpkg_host_free(host);
	kmpkg_diags_release(&d);
	json_decref(granted);
	json_decref(index);
	free(given);
	free(others);
	free(cmd);
	free(args);
	return err;
}

/* Writes c->grants into the installed records (the commit that ends the
 * transaction as committed, so a rolled-back change grants nothing). */
static int record_grants(struct engine *e, struct kmpkg_state_txn *t)
{
	json_t *rec = NULL;
	size_t i;
	int err = 0;

	for (i = 0; i < e->nch && !err; i++) {
		const struct change *c = &e->ch[i];

		if (!c->grants || !c->entry)
			continue;
		if ((err = kmpkg_state_gets(&rec, t, KMPKG_DB_INSTALLED, c->name)) != 0)
			return err;
		json_object_set(rec, "granted_permissions", c->grants);
		err = put_installed(t, c->name, rec);
		json_decref(rec);
		rec = NULL;
	}
	return err;
}

/* ---- phase 3: dependency-prepare ---------------------------------------- */

/* e->next = the active set with this transaction's changes. */
static void build_next(struct engine *e)
{
	size_t i;

	json_decref(e->next);
	e->next = json_deep_copy(e->cur);
	for (i = 0; i < e->nch; i++) {
		const struct change *c = &e->ch[i];

		if (c->entry)
			json_object_set_new(e->next, c->name, json_string(c->entry));
		else
			json_object_del(e->next, c->name);
	}
}

/* The store record of `name` in the new set (borrowed from a change, or a
 * new reference from the state, released through *own). */
static const json_t *next_rec(struct engine *e, const char *name, json_t **own)
{
	const struct change *c = find_change(e, name, NULL);

	*own = NULL;
	if (c && c->rec)
		return c->rec;
	if (!jstr(e->next, name))
		return NULL;
	*own = store_get(e, jstr(e->next, name));
	return *own;
}

static int check_deps(struct engine *e)
{
	const char *name, *dname;
	json_t *entry, *range, *own = NULL, *downer = NULL;
	int err = 0;

	build_next(e);
	json_object_foreach(e->next, name, entry) {
		const json_t *rec = next_rec(e, name, &own);
		const struct change *self = find_change(e, name, NULL);
		bool changed = self && !self->noop;

		json_object_foreach(json_object_get(rec, "deps"), dname, range) {
			const struct change *dc = find_change(e, dname, NULL);
			const json_t *drec;
			char field[300];
			const char *dver;
			int sat;

			if (!changed && !(dc && !dc->noop))
				continue; /* neither side changes: not this transaction's business */
			if (!changed && e->o->force)
				continue; /* remove --force: the operator accepted broken dependents */
			snprintf(field, sizeof(field), "/dependencies/%s", dname);
			drec = next_rec(e, dname, &downer);
			dver = drec ? jstr(drec, "version") : NULL;
			sat = dver ? kmpkg_semver_satisfies(dver, json_string_value(range)) : 0;
			if (sat < 0) {
				err = kmpkg_error_set(KMPKG_EVERIFY, "E_RANGE_INVALID", field, NULL,
						      "%s: dependency range '%s' for %s is malformed", name,
						      json_string_value(range), dname);
			} else if (sat == 0 && changed) {
				err = kmpkg_error_set(KMPKG_EDEPS, "E_DEPENDENCY_MISSING", field,
						      "install a matching version first or in the same command",
						      "%s %s needs %s %s, but %s%s%s", name, jstr(rec, "version"), dname,
						      json_string_value(range),
						      dver ? "this would give it version " : "it is not installed",
						      dver ? dver : "", "");
			} else if (sat == 0) {
				err = kmpkg_error_set(KMPKG_EDEPS, "E_DEPENDENT_BROKEN", field,
						      "change or remove the dependent in the same command, or use --force",
						      "%s %s needs %s %s, which this %s would %s", name,
						      jstr(rec, "version"), dname, json_string_value(range), e->op,
						      dver ? "replace with an unsuitable version" : "remove");
			}
			json_decref(downer);
			downer = NULL;
			if (err)
				break;
		}
		json_decref(own);
		own = NULL;
		if (err)
			break;
	}
	return err;
}

/* ---- phase 4: activate -------------------------------------------------- */

static int activate_begin_extra(struct engine *e, struct kmpkg_state_txn *t, void *arg)
{
	size_t i;
	int err;

	(void)arg;
	if (e->new_gen && (err = kmpkg_state_meta_set(t, "next_gen", e->to_gen + 1)) != 0)
		return err;
	for (i = 0; i < e->nch; i++)
		if (e->ch[i].rec && (err = put_store(t, e->ch[i].entry, e->ch[i].rec)) != 0)
			return err;
	return 0;
}

/* install NAME@RANGE remembers RANGE; a later install NAME@OTHER replaces it. */
static int apply_constraints(struct engine *e, struct kmpkg_state_txn *t, void *arg)
{
	json_t *rec = NULL;
	size_t i;
	int err = 0;

	(void)arg;
	for (i = 0; i < e->nch && !err; i++) {
		const struct change *c = &e->ch[i];

		if (!c->target || !c->target->constraint || !c->entry)
			continue;
		if ((err = kmpkg_state_gets(&rec, t, KMPKG_DB_INSTALLED, c->name)) != 0)
			return err;
		json_object_set_new(rec, "constraint", json_string(c->target->constraint));
		err = put_installed(t, c->name, rec);
		json_decref(rec);
		rec = NULL;
	}
	return err;
}

static int activate_end_extra(struct engine *e, struct kmpkg_state_txn *t, void *arg)
{
	json_t *g, *grants = NULL;
	int err;

	(void)arg;
	if ((err = kmpkg_state_meta_set(t, "active", e->to_gen)) != 0)
		return err;
	if (e->new_gen) {
		g = json_pack("{s:O, s:s, s:o, s:b}", "plugins", e->next, "txn", e->id, "created", json_now(),
			      "healthy", 0);
		err = kmpkg_state_gen_put(t, (uint32_t)e->to_gen, g);
		json_decref(g);
		if (err)
			return err;
	}
	if (!e->new_gen && (err = gen_grants(&grants, t, e->to_gen)) != 0)
		return err;
	err = write_installed(t, e->next, grants);
	json_decref(grants);
	if (err)
		return err;
	return apply_constraints(e, t, NULL);
}

/* One link per plugin of e->next in dir: NAME -> ../../store/ENTRY. */
static int gen_links(struct engine *e, const char *dir)
{
	char *target = NULL, *link = NULL;
	const char *name;
	json_t *entry;
	int err = 0;

	json_object_foreach(e->next, name, entry) {
		free(target);
		free(link);
		target = xasprintf("../../store/%s", json_string_value(entry));
		link = kmpkg_fsutil_join(dir, name);
		if ((err = kmpkg_fsutil_symlink(target, link)) != 0)
			break;
	}
	free(target);
	free(link);
	return err;
}

/* Builds generation to_gen (when new) under tmp and renames it into place,
 * then swaps `plugins` to it: the one visible step of the transaction. */
static int activate_fs(struct engine *e)
{
	char *gd = NULL, *stage = NULL, *lt = NULL;
	int err = 0;

	gd = gen_dir(e, e->to_gen);
	if (e->new_gen && !kmpkg_fsutil_is_dir(gd)) {
		stage = xasprintf("%s/gen-%lld", e->staging, (long long)e->to_gen);
		/* Staged and synced in verify (stage_sync) for the same set, or
		 * built now and synced on its own. */
		if (!e->gen_staged &&
		    ((err = kmpkg_fsutil_remove_staging(stage)) != 0 ||
		     (err = kmpkg_fsutil_mkdir_staging(stage, 0755)) != 0 || (err = gen_links(e, stage)) != 0 ||
		     (err = kmpkg_fsutil_fsync_dir(stage)) != 0))
			goto cleanup;
		if ((err = kmpkg_fsutil_publish(stage, gd)) != 0)
			goto cleanup;
		kmpkg_fault("activate:after-gendir");
	}
	lt = gen_link_target(e->to_gen);
	if ((err = kmpkg_fsutil_symlink_swap(e->p.plugins, lt)) != 0)
		goto cleanup;
	kmpkg_fault("activate:after-swap");
cleanup:
	free(gd);
	free(stage);
	free(lt);
	return err;
}

/* ---- phase 5: health-check ------------------------------------------------ */

static json_t *bounded_string(const char *s, size_t len)
{
	if (len > JOURNAL_OUTPUT_MAX)
		len = JOURNAL_OUTPUT_MAX;
	return json_stringn_nocheck(s ? s : "", s ? len : 0);
}

/* Runs the checks of every plugin this transaction brings in. *results is a
 * JSON array of {name, version, entry, passed, reason, exit_code, signal,
 * duration_ms, output, truncated}. Returns 0 when all passed, KMPKG_EHEALTH
 * with the first failure described otherwise. */
static int run_checks(struct engine *e, json_t **results)
{
	const struct kmpkg_error *le;
	int first_fail = 0;
	size_t i;

	*results = json_array();
	for (i = 0; i < e->nch; i++) {
		const struct change *c = &e->ch[i];
		json_t *own = NULL, *health, *cmd, *r;
		const json_t *rec;
		struct kmpkg_health_opts ho;
		struct kmpkg_health_result hr;
		char **argv = NULL, *dir = NULL;
		size_t k, n;
		int rc;

		if (c->noop || !c->entry)
			continue;
		rec = c->rec ? c->rec : (own = store_get(e, c->entry));
		health = json_object_get(rec, "health");
		cmd = json_object_get(health, "command");
		if (!json_is_array(cmd) || json_array_size(cmd) == 0) {
			json_decref(own);
			continue;
		}
		n = json_array_size(cmd);
		argv = calloc(n + 1, sizeof(*argv));
		if (!argv)
			abort();
		for (k = 0; k < n; k++)
			argv[k] = (char *)json_string_value(json_array_get(cmd, k));
		dir = kmpkg_fsutil_join(e->p.store, c->entry);
		memset(&ho, 0, sizeof(ho));
		memset(&hr, 0, sizeof(hr));
		ho.argv = argv;
		ho.cwd = dir;
		ho.timeout_ms = (uint32_t)json_integer_value(json_object_get(health, "timeout_ms"));
		if (ho.timeout_ms == 0)
			ho.timeout_ms = 5000;
		ho.correlation_id = e->id;
		ho.plugin_name = c->name;
		ho.plugin_version = c->version;
		rc = kmpkg_health_run(&hr, &ho);
		le = kmpkg_error_last();
		if (rc != 0 && !hr.reason[0])
			snprintf(hr.reason, sizeof(hr.reason), "%s", le->message);
		r = json_pack("{s:s, s:s, s:s, s:b, s:s, s:i, s:i, s:I, s:o, s:b}", "name", c->name, "version",
			      c->version, "entry", c->entry, "passed", rc == 0 && hr.passed, "reason", hr.reason,
			      "exit_code", hr.exit_code, "signal", hr.signal, "duration_ms",
			      (json_int_t)hr.duration_ms, "output", bounded_string(hr.output, hr.output_len),
			      "truncated", hr.truncated || hr.output_len > JOURNAL_OUTPUT_MAX);
		json_array_append_new(*results, r);
		if (!(rc == 0 && hr.passed) && !first_fail) {
			first_fail = 1;
			kmpkg_error_set(KMPKG_EHEALTH, "E_HEALTH_FAILED", NULL, NULL,
					"health check of %s %s failed: %s", c->name, c->version, hr.reason);
		}
		kmpkg_health_result_release(&hr);
		free(argv);
		free(dir);
		json_decref(own);
	}
	return first_fail ? KMPKG_EHEALTH : 0;
}

static int commit_extra(struct engine *e, struct kmpkg_state_txn *t, void *arg);

/* A rollback to a known-good generation: the end of activation and the
 * outcome in one commit. */
static int activate_end_commit_extra(struct engine *e, struct kmpkg_state_txn *t, void *arg)
{
	int err = activate_end_extra(e, t, arg);

	return err ? err : commit_extra(e, t, arg);
}

static int commit_extra(struct engine *e, struct kmpkg_state_txn *t, void *arg)
{
	json_t *g = NULL;
	int err;

	(void)arg;
	if ((err = kmpkg_state_gen_get(&g, t, (uint32_t)e->to_gen)) != 0)
		return err;
	/* A rollback to a known-good generation checks nothing: the
	 * transaction that checked it stays named. */
	if (!json_is_true(json_object_get(g, "healthy")))
		json_object_set_new(g, "checked_by", json_string(e->id));
	json_object_set_new(g, "healthy", json_true());
	if ((err = record_grants(e, t)) == 0 && (err = snapshot_grants(g, t)) == 0)
		err = kmpkg_state_gen_put(t, (uint32_t)e->to_gen, g);
	json_decref(g);
	if (!err)
		err = kmpkg_state_meta_set(t, "known_good", e->to_gen);
	return err;
}

/* ---- rollback to the known-good generation, quarantine -------------------- */

struct rb_arg {
	int64_t k;
	bool mark_failed; /* the target generation failed its checks */
};

static int rollback_commit_extra(struct engine *e, struct kmpkg_state_txn *t, void *arg)
{
	const struct rb_arg *a = arg;
	json_t *set = NULL, *g = NULL, *grants = NULL;
	int err;

	if ((err = kmpkg_state_meta_set(t, "active", a->k)) != 0)
		goto cleanup;
	if ((err = gen_set(&set, t, a->k)) != 0 || (err = gen_grants(&grants, t, a->k)) != 0 ||
	    (err = write_installed(t, set, grants)) != 0)
		goto cleanup;
	if (e->to_gen >= 0 && e->to_gen != a->k) {
		if (e->new_gen) {
			unsigned char key[4];

			kmpkg_state_gen_key(key, (uint32_t)e->to_gen);
			err = kmpkg_state_del(t, KMPKG_DB_GENERATIONS, key, 4);
		} else if (a->mark_failed && kmpkg_state_gen_get(&g, t, (uint32_t)e->to_gen) == 0) {
			json_object_set_new(g, "healthy", json_false());
			json_object_set_new(g, "failed_by", json_string(e->id));
			err = kmpkg_state_gen_put(t, (uint32_t)e->to_gen, g);
		}
	}
cleanup:
	json_decref(set);
	json_decref(g);
	json_decref(grants);
	return err;
}

static int referenced_entries(json_t **out, struct engine *e)
{
	struct kmpkg_state_txn *t = NULL;
	json_t *gens = json_array(), *g, *entry;
	const char *name;
	size_t i;
	int err;

	*out = json_object();
	if ((err = kmpkg_state_begin(&t, e->st, false)) != 0)
		goto cleanup;
	if ((err = kmpkg_state_foreach(t, KMPKG_DB_GENERATIONS, NULL, 0, false, collect_gens, gens)) != 0)
		goto cleanup;
	json_array_foreach(gens, i, g) {
		json_object_foreach(json_object_get(json_object_get(g, "rec"), "plugins"), name, entry)
			json_object_set_new(*out, json_string_value(entry), json_true());
	}
cleanup:
	kmpkg_state_abort(t);
	json_decref(gens);
	return err;
}

/* Keeps the evidence of one failed version: its captured output, its
 * result record and, when no generation uses it any more, its store entry. */
static int quarantine_one(struct engine *e, const json_t *f, const json_t *referenced, json_t *moved)
{
	const char *entry = jstr(f, "entry");
	char *q = NULL, *p = NULL, *src = NULL, *pkg = NULL, *text = NULL;
	int err;

	q = xasprintf("%s/%s-%s-%s", e->p.quar, jstr(f, "name"), jstr(f, "version"), e->id);
	if ((err = kmpkg_fsutil_mkdir(q, 0755)) != 0)
		goto cleanup;
	p = kmpkg_fsutil_join(q, "health-output.txt");
	if (!kmpkg_fsutil_exists(p)) {
		const char *out = jstr(f, "output") ? jstr(f, "output") : "";

		text = xasprintf("# kmpkg health check of %s %s, transaction %s\n# result: %s\n%s", jstr(f, "name"),
				 jstr(f, "version"), e->id, jstr(f, "reason") ? jstr(f, "reason") : "", out);
		if ((err = kmpkg_fsutil_write_file(p, text, strlen(text), 0644)) != 0)
			goto cleanup;
		free(text);
		text = NULL;
	}
	free(p);
	p = kmpkg_fsutil_join(q, "record.json");
	if (!kmpkg_fsutil_exists(p)) {
		text = json_dumps(f, JSON_INDENT(2) | JSON_SORT_KEYS);
		if ((err = kmpkg_fsutil_write_file(p, text, strlen(text), 0644)) != 0)
			goto cleanup;
	}
	src = kmpkg_fsutil_join(e->p.store, entry);
	pkg = kmpkg_fsutil_join(q, "package");
	if (kmpkg_fsutil_is_dir(src) && !json_object_get(referenced, entry)) {
		if ((err = kmpkg_fsutil_rename(src, pkg)) != 0)
			goto cleanup;
	}
	if (!kmpkg_fsutil_exists(src))
		json_array_append_new(moved, json_string(entry));
cleanup:
	free(q);
	free(p);
	free(src);
	free(pkg);
	free(text);
	return err;
}

static int drop_store_records(struct engine *e, struct kmpkg_state_txn *t, void *arg)
{
	json_t *v;
	size_t i;
	int err;

	(void)e;
	json_array_foreach((json_t *)arg, i, v) {
		if ((err = del_store(t, json_string_value(v))) != 0)
			return err;
	}
	return 0;
}

/* The rolled-back transaction's leftovers: quarantine, the failed new
 * generation directory, the staging. Idempotent; ends the record as done. */
static int cleanup_rolled_back(struct engine *e)
{
	json_t *referenced = NULL, *moved = json_array(), *f;
	char *gd = NULL;
	size_t i;
	int err;

	if ((err = referenced_entries(&referenced, e)) != 0)
		goto cleanup;
	json_array_foreach(json_object_get(e->rec, "failed"), i, f) {
		if (json_is_true(json_object_get(f, "passed")))
			continue;
		if ((err = quarantine_one(e, f, referenced, moved)) != 0)
			goto cleanup;
	}
	if (e->new_gen && e->to_gen >= 0 &&
	    e->to_gen != json_integer_value(json_object_get(e->rec, "returned_to"))) {
		gd = gen_dir(e, e->to_gen);
		if ((err = kmpkg_fsutil_discard(gd, e->p.tmp)) != 0)
			goto cleanup;
	}
	kmpkg_fault("rollback:after-quarantine");
	if (e->staging && (err = kmpkg_fsutil_remove_staging(e->staging)) != 0)
		goto cleanup;
	json_object_set_new(e->rec, "state", json_string("done"));
	err = commit_with(e, NULL, drop_store_records, moved);
cleanup:
	json_decref(referenced);
	json_decref(moved);
	free(gd);
	return err;
}

/* Swaps back to meta.known_good and records the transaction rolled-back.
 * Any failure to get there is KMPKG_EROLLBACK: the operator must look. */
static int rollback_txn(struct engine *e, const char *reason, json_t *failed)
{
	struct kmpkg_state_txn *t = NULL;
	struct rb_arg a = { 0, failed != NULL };
	char *lt = NULL;
	json_t *ev;
	uint64_t t0 = mono_ms();
	int err, start_err;

	json_object_set_new(e->rec, "rolling_back", json_true());
	if (failed)
		json_object_set(e->rec, "failed", failed);
	ev = json_pack("{s:s, s:s, s:o, s:s}", "phase", "rollback", "event", "start", "time", json_now(),
		       "reason", reason);
	/* Even if this record cannot be written, swap back: recovery treats a
	 * transaction whose generation was active as activated either way. */
	start_err = commit_with(e, ev, NULL, NULL);
	if (!start_err)
		kmpkg_fault("rollback:start");
	if ((err = kmpkg_state_begin(&t, e->st, false)) != 0)
		goto fail;
	err = kmpkg_state_meta_get(&a.k, t, "known_good", 0);
	kmpkg_state_abort(t);
	if (err)
		goto fail;
	if (plugins_gen(e) != a.k) {
		lt = gen_link_target(a.k);
		if ((err = kmpkg_fsutil_symlink_swap(e->p.plugins, lt)) != 0)
			goto fail;
	}
	kmpkg_fault("rollback:after-swap");
	if ((err = start_err) != 0)
		goto fail;
	json_object_set_new(e->rec, "state", json_string("cleanup"));
	json_object_set_new(e->rec, "outcome", json_string("rolled-back"));
	json_object_set_new(e->rec, "reason", json_string(reason));
	json_object_set_new(e->rec, "returned_to", json_integer(a.k));
	json_object_set_new(e->rec, "ended", json_now());
	ev = json_pack("{s:s, s:s, s:o, s:I, s:s, s:I}", "phase", "rollback", "event", "end", "time", json_now(),
		       "duration_ms", (json_int_t)(mono_ms() - t0), "outcome", "ok", "returned_to",
		       (json_int_t)a.k);
	if ((err = commit_with(e, ev, rollback_commit_extra, &a)) != 0)
		goto fail;
	e->active = a.k;
	kmpkg_fault("rollback:after-commit");
	/* The state is consistent now; leftovers are finished by the next command if this fails. */
	if (cleanup_rolled_back(e) != 0)
		kmpkg_error_clear();
	free(lt);
	return 0;
fail:
	free(lt);
	{
		char msg[sizeof(kmpkg_error_last()->message)];

		snprintf(msg, sizeof(msg), "%s", kmpkg_error_last()->message);
		return kmpkg_error_set(KMPKG_EROLLBACK, "E_ROLLBACK_FAILED", NULL,
				       "fix the cause, then run 'kmpkg status' to finish the recovery",
				       "rolling back transaction %s failed: %s", e->id, msg);
	}
}

/* ---- crash recovery ----------------------------------------------------------- */

struct seq_ctx {
	size_t idlen;
	uint32_t max;
};

static int seq_max(void *ctx, const void *key, size_t klen, json_t *val)
{
	struct seq_ctx *s = ctx;

	json_decref(val);
	if (klen == s->idlen + 4) {
		uint32_t n = kmpkg_state_gen_from_key((const char *)key + s->idlen);

		if (n > s->max)
			s->max = n;
	}
	return 0;
}

static int recover_one(struct engine *parent, json_t *rec)
{
	struct engine r;
	struct kmpkg_state_txn *t = NULL;
	struct seq_ctx sc = { 0, 0 };
	const char *state = jstr(rec, "state"), *phase = jstr(rec, "phase");
	char reason[256];
	json_t *ev;
	bool activated;
	int err;

	memset(&r, 0, sizeof(r));
	r.o = parent->o;
	r.st = parent->st;
	r.lock = parent->lock;
	r.p = parent->p;
	r.rec = rec;
	r.op = jstr(rec, "op") ? jstr(rec, "op") : "?";
	snprintf(r.id, sizeof(r.id), "%s", jstr(rec, "id") ? jstr(rec, "id") : "");
	r.to_gen = json_is_integer(json_object_get(rec, "to_gen")) ? json_integer_value(json_object_get(rec, "to_gen")) : -1;
	r.new_gen = json_is_true(json_object_get(rec, "new_gen"));
	r.staging = kmpkg_fsutil_join(r.p.tmp, r.id);
	sc.idlen = strlen(r.id);
	if ((err = kmpkg_state_begin(&t, r.st, false)) != 0)
		goto cleanup;
	err = kmpkg_state_foreach(t, KMPKG_DB_JOURNAL, r.id, sc.idlen, false, seq_max, &sc);
	kmpkg_state_abort(t);
	if (err)
		goto cleanup;
	r.seq = sc.max;
	if ((err = load_meta(&r)) != 0)
		goto cleanup;

	if (state && strcmp(state, "cleanup") == 0) {
		err = cleanup_rolled_back(&r);
		goto cleanup;
	}
	snprintf(reason, sizeof(reason), "interrupted during %s (the process died); recovered by pid %d",
		 phase ? phase : "start", (int)getpid());
	ev = json_pack("{s:s, s:s, s:o, s:s}", "phase", "recovery", "event", "start", "time", json_now(),
		       "reason", reason);
	if ((err = commit_with(&r, ev, NULL, NULL)) != 0)
		goto cleanup;
	kmpkg_fault("recovery:start");
	activated = r.to_gen >= 0 && strcmp(r.op, "gc") != 0 &&
		    (plugins_gen(&r) == r.to_gen || r.active == r.to_gen ||
		     json_is_true(json_object_get(rec, "rolling_back")));
	if (activated) {
		err = rollback_txn(&r, reason, NULL);
	} else {
		if (r.new_gen && r.to_gen >= 0 && r.to_gen != r.active) {
			char *gd = gen_dir(&r, r.to_gen);

			err = kmpkg_fsutil_discard(gd, r.p.tmp);
			free(gd);
			if (err)
				goto cleanup;
		}
		kmpkg_fault("recovery:after-discard");
		if ((err = kmpkg_fsutil_remove_staging(r.staging)) != 0)
			goto cleanup;
		err = finish(&r, "aborted", reason, NULL, NULL);
	}
cleanup:
	json_decref(r.cur);
	json_decref(r.next);
	json_decref(r.rec);
	free(r.staging);
	return err;
}

static int collect_unfinished(void *ctx, const void *key, size_t klen, json_t *val)
{
	const char *s = jstr(val, "state");

	(void)key;
	(void)klen;
	if (s && strcmp(s, "done") != 0)
		json_array_append_new(ctx, val);
	else
		json_decref(val);
	return 0;
}

static int unfinished(json_t **out, struct kmpkg_state *st)
{
	struct kmpkg_state_txn *t = NULL;
	int err;

	json_t *holder = NULL;

	*out = json_array();
	if ((err = kmpkg_state_begin(&t, st, false)) != 0)
		return err;
	/* commit_with writes the lock holder record in every commit of an
	 * unfinished transaction and deletes it in the commit that records the
	 * outcome, so no holder means nothing in flight: readers then pay one
	 * lookup, not a scan of the whole history. */
	err = kmpkg_state_gets(&holder, t, KMPKG_DB_LOCK, "holder");
	json_decref(holder);
	if (err == KMPKG_ENOTFOUND)
		err = 0;
	else if (err == 0)
		err = kmpkg_state_foreach(t, KMPKG_DB_TXNS, NULL, 0, false, collect_unfinished, *out);
	kmpkg_state_abort(t);
	return err;
}

static int recover_all(struct engine *e)
{
	json_t *list = NULL, *rec;
	struct dirent *de;
	DIR *d = NULL;
	char *lt = NULL;
	size_t i;
	int err;

	if ((err = unfinished(&list, e->st)) != 0)
		goto cleanup;
	json_array_foreach(list, i, rec) {
		if ((err = recover_one(e, json_incref(rec))) != 0)
			goto cleanup;
	}
	/* Staging of finished transactions, half-discarded trees. */
	d = opendir(e->p.tmp);
	while (d && (de = readdir(d)) != NULL) {
		char *p;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		p = kmpkg_fsutil_join(e->p.tmp, de->d_name);
		err = kmpkg_fsutil_remove_staging(p);
		free(p);
		if (err)
			goto cleanup;
	}
	if ((err = load_meta(e)) != 0)
		goto cleanup;
	if (plugins_gen(e) != e->active) {
		lt = gen_link_target(e->active);
		err = kmpkg_fsutil_symlink_swap(e->p.plugins, lt);
	}
cleanup:
	if (d)
		closedir(d);
	free(lt);
	json_decref(list);
	return err;
}

int kmpkg_txn_recover(const char *root, int wait_secs)
{
	struct kmpkg_txn_opts o;
	struct engine e;
	int err;

	memset(&o, 0, sizeof(o));
	o.root = root;
	o.wait_secs = wait_secs;
	engine_init(&e, &o, "recover");
	if ((err = kmpkg_lock_acquire(&e.lock, root, wait_secs)) != 0)
		goto cleanup;
	if ((err = kmpkg_state_open(&e.st, root, true)) != 0 || (err = layout_init(&e)) != 0)
		goto cleanup;
	err = recover_all(&e);
cleanup:
	engine_release(&e);
	return err;
}

bool kmpkg_txn_needs_recovery(const char *root, struct kmpkg_state *st)
{
	json_t *list = NULL;
	bool need;
	char *kdir, *tmp;
	DIR *d;
	struct dirent *de;

	need = unfinished(&list, st) == 0 && json_array_size(list) > 0;
	json_decref(list);
	kmpkg_error_clear();
	if (need)
		return true;
	/* A process killed after its outcome was recorded but before its
	 * staging (or a tree being discarded) was gone. */
	kdir = kmpkg_fsutil_join(root, "kmpkg");
	tmp = kmpkg_fsutil_join(kdir, "tmp");
	d = opendir(tmp);
	while (d && !need && (de = readdir(d)) != NULL)
		need = strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	if (d)
		closedir(d);
	free(tmp);
	free(kdir);
	return need;
}

void kmpkg_txn_recover_if_idle(const char *root)
{
	struct kmpkg_txn_opts o;
	struct engine e;

	if (kmpkg_lock_is_held(root))
		goto out;
	memset(&o, 0, sizeof(o));
	o.root = root;
	engine_init(&e, &o, "recover");
	if (kmpkg_lock_try(&e.lock, root) == 0 && kmpkg_state_open(&e.st, root, true) == 0)
		recover_all(&e);
	engine_release(&e);
out:
	kmpkg_error_clear();
}

/* ---- the pipeline from dependency-prepare to the outcome ----------------- */

static int health_failed_error(struct engine *e, json_t *results)
{
	json_t *f;
	size_t i;

	json_array_foreach(results, i, f) {
		char next[512];

		if (json_is_true(json_object_get(f, "passed")))
			continue;
		snprintf(next, sizeof(next), "see 'kmpkg show %s'; the output is kept in kmpkg/quarantine/%s-%s-%s/",
			 e->id, jstr(f, "name"), jstr(f, "version"), e->id);
		return kmpkg_error_set(KMPKG_EHEALTH, "E_HEALTH_FAILED", NULL, next,
				       "health check of %s %s failed (%s); rolled back to generation %lld",
				       jstr(f, "name"), jstr(f, "version"), jstr(f, "reason"), (long long)e->active);
	}
	return kmpkg_error_set(KMPKG_EHEALTH, "E_HEALTH_FAILED", NULL, NULL,
			       "health check failed; rolled back to generation %lld", (long long)e->active);
}

/* After a failure in activate: if the swap is visible, roll back (keeping
 * the activation error as the exit status), else abort. */
static int activate_failed(struct engine *e, int failure)
{
	struct kmpkg_error saved;
	int err;

	if (plugins_gen(e) != e->to_gen)
		return abort_txn(e, "activate", failure);
	err_save(&saved);
	phase_end(e, "activate", failure, NULL, NULL, NULL);
	if ((err = rollback_txn(e, saved.message, NULL)) != 0)
		return err;
	return err_restore(&saved);
}

/* A commit failed after the swap (disk full, I/O): go back to the
 * known-good generation now rather than leave the unchecked one active
 * until the next command recovers it. Keeps the original error. */
static int after_activation_failed(struct engine *e, int failure)
{
	struct kmpkg_error saved;
	int err;

	err_save(&saved);
	json_object_set_new(e->rec, "state", json_string("running"));
	json_object_del(e->rec, "outcome");
	if ((err = rollback_txn(e, saved.message, NULL)) != 0)
		return err;
	(void)failure;
	return err_restore(&saved);
}

/* The store records of entries --reinstall put back (their file lists, for
 * verify), with the constraints. */
static int reinstall_extra(struct engine *e, struct kmpkg_state_txn *t, void *arg)
{
	size_t i;
	int err;

	for (i = 0; i < e->nch; i++)
		if (e->ch[i].repaired && e->ch[i].rec && (err = put_store(t, e->ch[i].entry, e->ch[i].rec)) != 0)
			return err;
	return apply_constraints(e, t, arg);
}

static int run_from_deps(struct engine *e, int64_t to_gen, bool new_gen)
{
	bool known_good_target = !new_gen && e->target_healthy;
	json_t *results = NULL;
	int err, started;

	json_object_set_new(e->rec, "changes", changes_json(e));
	if (known_good_target) {
		/* Back to a whole generation that passed its health checks when
		 * it became known-good: the same store entries, already checked.
		 * Its dependencies are still checked, but only activation is
		 * recorded as a phase (its start with the transaction record, its
		 * end with the outcome: two durable commits) and no health command
		 * runs: the way back must be quick and must not hang on a plugin. */
		if ((err = check_deps(e)) != 0)
			return abort_txn(e, NULL, err);
	} else {
		if ((err = phase_begin(e, "dependency-prepare", NULL, NULL)) != 0)
			return err;
		if ((err = check_deps(e)) != 0)
			return abort_txn(e, "dependency-prepare", err);
		if ((err = phase_end(e, "dependency-prepare", 0, NULL, NULL, NULL)) != 0)
			return err;
	}
	/* A rollback to another generation switches even if the sets are equal. */
	if (real_changes(e) == 0 && (new_gen || to_gen == e->active)) {
		bool repaired = false;
		size_t i;

		for (i = 0; i < e->nch; i++)
			repaired |= e->ch[i].repaired;
		if (e->staging)
			kmpkg_fsutil_remove_staging(e->staging);
		/* --reinstall of what is active: the entries were put back in
		 * verify; no generation changes and no health check runs (the
		 * same package passed it when it was installed). */
		return finish(e, "committed", repaired ? "reinstalled" : "nothing to do",
			      repaired ? reinstall_extra : apply_constraints, NULL);
	}

	e->to_gen = to_gen;
	e->new_gen = new_gen;
	json_object_set_new(e->rec, "to_gen", json_integer(to_gen));
	json_object_set_new(e->rec, "new_gen", json_boolean(new_gen));
	if ((err = phase_begin(e, "activate", activate_begin_extra, NULL)) != 0)
		return err;
	if ((err = activate_fs(e)) != 0)
		return activate_failed(e, err);
	if (known_good_target) {
		/* Two commits in all: the transaction with the start of
		 * activation (txn_start was deferred), and the end of activation
		 * with the outcome. */
		set_done(e, "committed");
		if ((err = phase_end(e, "activate", 0, NULL, activate_end_commit_extra, NULL)) != 0) {
			unset_done(e);
			return activate_failed(e, err);
		}
		e->active = to_gen;
		e->known_good = to_gen;
		kmpkg_fault("commit:after-record");
		goto cleanup;
	}
	if ((err = phase_end(e, "activate", 0, NULL, activate_end_extra, NULL)) != 0)
		return activate_failed(e, err);
	e->active = to_gen;

	if ((err = phase_begin_async(e, "health-check")) != 0)
		return after_activation_failed(e, err);
	err = run_checks(e, &results);
	if ((started = phase_started(e, "health-check")) != 0) {
		json_decref(results);
		return after_activation_failed(e, started);
	}
	kmpkg_fault("health-check:after-run");
	if (err == 0) {
		/* The end of the health check and the outcome: one commit. */
		set_done(e, "committed");
		if ((err = phase_end(e, "health-check", 0, json_incref(results), commit_extra, NULL)) != 0) {
			unset_done(e);
			err = after_activation_failed(e, err);
			goto cleanup;
		}
		e->known_good = to_gen;
		kmpkg_fault("commit:after-record");
		if (e->staging)
			kmpkg_fsutil_remove_staging(e->staging);
		goto cleanup;
	}
	phase_end(e, "health-check", err, json_incref(results), NULL, NULL);
	if ((err = rollback_txn(e, kmpkg_error_last()->message, results)) != 0)
		goto cleanup;
	err = health_failed_error(e, results);
cleanup:
	json_decref(results);
	return err;
}

/* ---- operations ------------------------------------------------------------- */

static bool looks_like_path(const char *s)
{
	size_t n = strlen(s);

	return strchr(s, '/') || (n > 6 && strcmp(s + n - 6, ".kmpkg") == 0) || kmpkg_fsutil_exists(s);
}

static json_t *plan_json(struct engine *e)
{
	json_t *s = summary(e);

	json_object_set_new(s, "outcome", json_string("planned"));
	json_object_set_new(s, "dry_run", json_true());
	return s;
}

static int plan_packages(struct engine *e, bool update)
{
	size_t i;
	int fd = -1, err = 0;

	for (i = 0; i < e->nch; i++) {
		struct change *c = &e->ch[i];
		const char *slash = strrchr(c->path, '/');

		if ((err = open_package(&fd, c->path)) != 0 || (err = hash_copy(c->sha256, fd, -1, c->path, NULL)) != 0)
			goto cleanup;
		close(fd);
		fd = -1;
		if ((err = load_manifest(&c->m, c->path, slash ? slash + 1 : c->path)) != 0)
			goto cleanup;
		if ((err = check_expected(c, c->m)) != 0 || (err = classify(e, c, c->m, update)) != 0)
			goto cleanup;
		c->rec = store_record(e, c, c->m, NULL);
	}
	if ((err = preflight_changes(e)) != 0)
		goto cleanup;
	if ((err = check_deps(e)) != 0)
		goto cleanup;
	e->to_gen = real_changes(e) ? e->next_gen : -1;
cleanup:
	if (fd >= 0)
		close(fd);
	return err;
}

int kmpkg_txn_install_targets(json_t **out, const struct kmpkg_txn_opts *o, const struct kmpkg_txn_target *tg,
			      size_t n, bool update)
{
	struct engine e;
	json_t *targets = NULL;
	size_t i;
	int err, started;

	*out = NULL;
	engine_init(&e, o, update ? "update" : "install");
	err = o->dry_run ? engine_open_readonly(&e) : engine_open(&e);
	if (err)
		goto cleanup;
	for (i = 0; i < n; i++) {
		struct change *c = add_change(&e);

		c->path = xstrdup(tg[i].path);
		c->target = &tg[i];
	}
	if (o->dry_run) {
		for (i = 0; i < e.nch && !err; i++)
			if (!e.ch[i].path && tg[i].fetch)
				err = tg[i].fetch(&e.ch[i].path, tg[i].fetch_ctx);
		if (!err && (err = plan_packages(&e, update)) == 0)
			*out = plan_json(&e);
		goto cleanup;
	}
	targets = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(targets, tg[i].expect_name ? json_sprintf("%s%s%s", tg[i].expect_name,
										tg[i].constraint ? "@" : "",
										tg[i].constraint ? tg[i].constraint : "")
								 : json_string(tg[i].path));
	/* The record is first written by the commit that starts the download. */
	e.start_pending = true;
	if ((err = txn_start(&e, targets)) != 0)
		goto cleanup;
	/* Which source index each target was resolved against: written with the
	 * record by the next commit (the start of download). */
	for (i = 0; i < n; i++) {
		if (!tg[i].source)
			continue;
		if (!json_object_get(e.rec, "resolved"))
			json_object_set_new(e.rec, "resolved", json_array());
		json_array_append_new(json_object_get(e.rec, "resolved"),
				      json_pack("{s:s?, s:s?, s:s, s:s?}", "name", tg[i].expect_name, "version",
						tg[i].expect_version, "source", tg[i].source, "commit",
						tg[i].source_commit));
	}

	if ((err = phase_begin_async(&e, "download")) != 0)
		goto cleanup;
	for (i = 0; i < e.nch && !err; i++)
		err = download_one(&e, &e.ch[i]);
	if ((started = phase_started(&e, "download")) != 0) {
		err = started;
		goto cleanup;
	}
	cache_writeback(&e);
	if (err) {
		err = abort_txn(&e, "download", err);
		goto cleanup;
	}
	if ((err = phase_end_async(&e, "download")) != 0)
		goto cleanup;
	if ((err = phase_begin_async(&e, "verify")) != 0)
		goto cleanup;
	for (i = 0; i < e.nch && !err; i++)
		err = verify_manifest(&e, &e.ch[i], update);
	if (!err)
		err = preflight_changes(&e);
	for (i = 0; i < e.nch && !err; i++)
		err = store_extract(&e, &e.ch[i]);
	if (!err)
		err = stage_sync(&e);
	if ((started = phase_started(&e, "verify")) != 0) {
		err = started;
		goto cleanup;
	}
	for (i = 0; i < e.nch && !err; i++)
		err = store_publish(&e, &e.ch[i]);
	json_object_set_new(e.rec, "changes", changes_json(&e));
	if (err) {
		err = abort_txn(&e, "verify", err);
		goto cleanup;
	}
	if ((err = phase_end(&e, "verify", 0, NULL, NULL, NULL)) != 0)
		goto cleanup;
	err = run_from_deps(&e, e.next_gen, true);
cleanup:
	if (e.rec || (o->dry_run && !*out && !err))
		*out = summary(&e);
	engine_release(&e);
	return err;
}

static int op_paths(json_t **out, const struct kmpkg_txn_opts *o, char *const *paths, size_t n, bool update)
{
	struct kmpkg_txn_target *tg;
	size_t i;
	int err;

	*out = NULL;
	for (i = 0; i < n; i++) {
		if (!looks_like_path(paths[i]))
			return kmpkg_error_set(KMPKG_ENOTFOUND, "E_NEEDS_SOURCE", NULL,
					       "add a source with 'kmpkg source add NAME URL', or give a .kmpkg file",
					       "%s '%s': %s by name needs a source (kmpkg source add)",
					       update ? "update" : "install", paths[i],
					       update ? "updating" : "installing");
	}
	tg = calloc(n ? n : 1, sizeof(*tg));
	if (!tg)
		abort();
	for (i = 0; i < n; i++)
		tg[i].path = paths[i];
	err = kmpkg_txn_install_targets(out, o, tg, n, update);
	free(tg);
	return err;
}

int kmpkg_txn_install(json_t **out, const struct kmpkg_txn_opts *o, char *const *paths, size_t n)
{
	return op_paths(out, o, paths, n, false);
}

int kmpkg_txn_update(json_t **out, const struct kmpkg_txn_opts *o, char *const *paths, size_t n)
{
	return op_paths(out, o, paths, n, true);
}

/* A change that moves `name` from the active set to `entry` (NULL: removed). */
static void change_to(struct engine *e, const char *name, const char *entry)
{
	struct change *c = add_change(e);
	const char *from = jstr(e->cur, name);
	json_t *r;

	c->name = xstrdup(name);
	if (from) {
		c->from_entry = xstrdup(from);
		r = store_get(e, from);
		c->from_version = xstrdup(r && jstr(r, "version") ? jstr(r, "version") : "?");
		json_decref(r);
	}
	if (entry) {
		c->entry = xstrdup(entry);
		r = store_get(e, entry);
		c->version = xstrdup(r && jstr(r, "version") ? jstr(r, "version") : "?");
		json_decref(r);
	}
}

int kmpkg_txn_remove(json_t **out, const struct kmpkg_txn_opts *o, char *const *names, size_t n)
{
	struct engine e;
	json_t *targets = NULL;
	size_t i;
	int err;

	*out = NULL;
	engine_init(&e, o, "remove");
	err = o->dry_run ? engine_open_readonly(&e) : engine_open(&e);
	if (err)
		goto cleanup;
	for (i = 0; i < n; i++) {
		if (!jstr(e.cur, names[i])) {
			err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_NOT_INSTALLED", NULL, "'kmpkg list' shows what is installed",
					      "%s is not installed", names[i]);
			goto cleanup;
		}
		if (find_change(&e, names[i], NULL)) {
			err = kmpkg_error_set(KMPKG_EUSAGE, "E_DUPLICATE_TARGET", NULL, "give each plugin once",
					      "%s is given more than once", names[i]);
			goto cleanup;
		}
		change_to(&e, names[i], NULL);
	}
	if (o->dry_run) {
		if ((err = check_deps(&e)) == 0) {
			e.to_gen = e.next_gen;
			*out = plan_json(&e);
		}
		goto cleanup;
	}
	targets = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(targets, json_string(names[i]));
	if ((err = txn_start(&e, targets)) != 0)
		goto cleanup;
	err = run_from_deps(&e, e.next_gen, true);
cleanup:
	if (e.rec)
		*out = summary(&e);
	engine_release(&e);
	return err;
}

static int load_gens(json_t **out, struct engine *e)
{
	struct kmpkg_state_txn *t = NULL;
	int err;

	*out = json_array();
	if (!e->st)
		return 0;
	if ((err = kmpkg_state_begin(&t, e->st, false)) != 0)
		return err;
	err = kmpkg_state_foreach(t, KMPKG_DB_GENERATIONS, NULL, 0, false, collect_gens, *out);
	kmpkg_state_abort(t);
	return err;
}

int kmpkg_txn_rollback(json_t **out, const struct kmpkg_txn_opts *o, const char *name, const char *to)
{
	struct engine e;
	json_t *gens = NULL, *g, *set = NULL, *entry, *r;
	const char *k;
	int64_t target = -1, to_gen;
	bool new_gen;
	size_t i;
	int err;

	*out = NULL;
	engine_init(&e, o, "rollback");
	err = o->dry_run ? engine_open_readonly(&e) : engine_open(&e);
	if (err || (err = load_gens(&gens, &e)) != 0)
		goto cleanup;
	if (!name) {
		if (to) {
			char *end;

			target = strtoll(to, &end, 10);
			if (*end || end == to || target < 0) {
				err = kmpkg_error_set(KMPKG_EUSAGE, "E_USAGE", "--to",
						      "give a generation number, or NAME --to VERSION",
						      "'%s' is not a generation number", to);
				goto cleanup;
			}
		}
		set = NULL;
		for (i = json_array_size(gens); i-- > 0;) {
			json_int_t n = json_integer_value(json_object_get(json_array_get(gens, i), "n"));
			const json_t *rec = json_object_get(json_array_get(gens, i), "rec");
			char *gd = gen_dir(&e, n);
			bool ok = kmpkg_fsutil_is_dir(gd);

			free(gd);
			if (ok && (to ? n == target
				      : n < e.known_good && json_is_true(json_object_get(rec, "healthy")))) {
				target = n;
				set = json_object_get(rec, "plugins");
				e.target_healthy = json_is_true(json_object_get(rec, "healthy"));
				break;
			}
		}
		if (!set) {
			if (to)
				err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_GENERATION_NOT_FOUND", "--to",
						      "'kmpkg history' lists the transactions and their generations",
						      "generation %s does not exist", to);
			else
				err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_NO_EARLIER_GENERATION", NULL,
						      "'kmpkg history' lists what happened",
						      "there is no known-good generation before generation %lld",
						      (long long)e.known_good);
			goto cleanup;
		}
		json_object_foreach(e.cur, k, entry) {
			if (!json_equal(entry, json_object_get(set, k)))
				change_to(&e, k, jstr(set, k));
		}
		json_object_foreach(set, k, entry) {
			if (!json_object_get(e.cur, k))
				change_to(&e, k, json_string_value(entry));
		}
		to_gen = target;
		new_gen = false;
	} else {
		const char *cur = jstr(e.cur, name);
		const char *found = NULL;

		if (!cur) {
			err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_NOT_INSTALLED", NULL,
					      "'kmpkg list' shows what is installed", "%s is not installed", name);
			goto cleanup;
		}
		for (i = json_array_size(gens); i-- > 0 && !found;) {
			const json_t *rec = json_object_get(json_array_get(gens, i), "rec");
			const char *cand = jstr(json_object_get(rec, "plugins"), name);

			if (!cand || strcmp(cand, cur) == 0 || !json_is_true(json_object_get(rec, "healthy")))
				continue;
			r = store_get(&e, cand);
			if (r && (!to || (jstr(r, "version") && strcmp(jstr(r, "version"), to) == 0)))
				found = cand;
			json_decref(r);
		}
		if (!found) {
			err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_NO_PREVIOUS_VERSION", NULL,
					      "'kmpkg info NAME' lists the versions it had",
					      "no earlier known-good %s%s%s to roll back to", name,
					      to ? " version " : "", to ? to : "");
			goto cleanup;
		}
		change_to(&e, name, found);
		to_gen = e.next_gen;
		new_gen = true;
	}
	if (real_changes(&e) == 0 && !new_gen && to_gen == e.active) {
		*out = summary(&e);
		json_object_set_new(*out, "outcome", json_string("committed"));
		json_object_set_new(*out, "reason", json_string("already active"));
		goto cleanup;
	}
	if (o->dry_run) {
		if ((err = check_deps(&e)) == 0) {
			e.to_gen = to_gen;
			*out = plan_json(&e);
		}
		goto cleanup;
	}
	g = json_array();
	if (name)
		json_array_append_new(g, json_string(name));
	else
		json_array_append_new(g, json_sprintf("generation %lld", (long long)to_gen));
	/* Back to a known-good generation: recorded with the start of
	 * activation, in one commit (see run_from_deps). */
	e.start_pending = !new_gen && e.target_healthy;
	if ((err = txn_start(&e, g)) != 0)
		goto cleanup;
	err = run_from_deps(&e, to_gen, new_gen);
cleanup:
	if (e.rec)
		*out = summary(&e);
	json_decref(gens);
	engine_release(&e);
	return err;
}

/* ---- gc ----------------------------------------------------------------------- */

/* Names in `dir` that `keep` (a json object, or NULL for none) does not
 * hold, as a json array. */
static json_t *scan_unkept(const char *dir, const json_t *keep, int64_t never)
{
	json_t *a = json_array();
	struct dirent *de;
	DIR *d = opendir(dir);
	char nb[32];

	snprintf(nb, sizeof(nb), "%lld", (long long)never);
	while (d && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (keep && json_object_get(keep, de->d_name))
			continue;
		if (never >= 0 && strcmp(de->d_name, nb) == 0)
			continue;
		json_array_append_new(a, json_string(de->d_name));
	}
	if (d)
		closedir(d);
	return a;
}

struct gc_plan {
	json_t *drop_gens;     /* numbers whose records go */
	json_t *drop_store;    /* store records that go */
	json_t *kept_gens;     /* {"N": true} */
	json_t *kept_entries;  /* {entry: true} */
	json_t *kept_cache;    /* {sha256: true} */
};

static int gc_commit_extra(struct engine *e, struct kmpkg_state_txn *t, void *arg)
{
	const struct gc_plan *g = arg;
	unsigned char key[4];
	json_t *v;
	size_t i;
	int err;

	(void)e;
	json_array_foreach(g->drop_gens, i, v) {
		kmpkg_state_gen_key(key, (uint32_t)json_integer_value(v));
		if ((err = kmpkg_state_del(t, KMPKG_DB_GENERATIONS, key, 4)) != 0)
			return err;
	}
	json_array_foreach(g->drop_store, i, v) {
		if ((err = del_store(t, json_string_value(v))) != 0)
			return err;
	}
	return 0;
}

static int discard_all(const char *dir, const json_t *names, const char *trash)
{
	json_t *v;
	size_t i;
	int err;

	json_array_foreach(names, i, v) {
		char *p = kmpkg_fsutil_join(dir, json_string_value(v));

		err = kmpkg_fsutil_discard(p, trash);
		free(p);
		if (err)
			return err;
	}
	return 0;
}

int kmpkg_txn_gc(json_t **out, const struct kmpkg_txn_opts *o, int keep)
{
	struct gc_plan g = { json_array(), json_array(), json_object(), json_object(), json_object() };
	struct kmpkg_state_txn *t = NULL;
	json_t *gens = NULL, *store = json_object(), *v, *entry, *dirs_g = NULL, *dirs_s = NULL, *dirs_c = NULL,
	       *dirs_q = NULL;
	const char *k;
	struct engine e;
	size_t i, n;
	int err;

	*out = NULL;
	engine_init(&e, o, "gc");
	err = o->dry_run ? engine_open_readonly(&e) : engine_open(&e);
	if (err || (err = load_gens(&gens, &e)) != 0)
		goto cleanup;
	if (e.st) {
		if ((err = kmpkg_state_begin(&t, e.st, false)) != 0)
			goto cleanup;
		err = kmpkg_state_foreach(t, KMPKG_DB_STORE, NULL, 0, false, collect_obj, store);
		kmpkg_state_abort(t);
		if (err)
			goto cleanup;
	}
	n = json_array_size(gens);
	for (i = 0; i < n; i++) {
		json_t *ge = json_array_get(gens, i);
		json_int_t num = json_integer_value(json_object_get(ge, "n"));
		char key[32];

		snprintf(key, sizeof(key), "%lld", (long long)num);
		if (i + (size_t)keep >= n || num == e.active || num == e.known_good) {
			json_object_set_new(g.kept_gens, key, json_true());
			json_object_foreach(json_object_get(json_object_get(ge, "rec"), "plugins"), k, entry)
				json_object_set_new(g.kept_entries, json_string_value(entry), json_true());
		} else {
			json_array_append_new(g.drop_gens, json_integer(num));
		}
	}
	json_object_foreach(store, k, v) {
		if (json_object_get(g.kept_entries, k))
			json_object_set_new(g.kept_cache, jstr(v, "sha256") ? jstr(v, "sha256") : "", json_true());
		else
			json_array_append_new(g.drop_store, json_string(k));
	}
	/* What the disk holds beyond the records: orphans of earlier crashes too. */
	dirs_g = scan_unkept(e.p.gens, g.kept_gens, e.active);
	dirs_s = scan_unkept(e.p.store, g.kept_entries, -1);
	dirs_c = scan_unkept(e.p.cache, g.kept_cache, -1);
	dirs_q = scan_unkept(e.p.quar, NULL, -1);
	if (o->dry_run) {
		*out = json_pack("{s:s, s:s, s:b, s:O, s:O, s:O, s:O}", "op", "gc", "outcome", "planned", "dry_run", 1,
				 "generations", dirs_g, "store", dirs_s, "cache", dirs_c, "quarantine", dirs_q);
		goto cleanup;
	}
	if ((err = txn_start(&e, json_pack("{s:i}", "keep", keep))) != 0)
		goto cleanup;
	json_object_set_new(e.rec, "removed", json_pack("{s:O, s:O, s:O, s:O}", "generations", dirs_g, "store",
							 dirs_s, "cache", dirs_c, "quarantine", dirs_q));
	if ((err = finish(&e, "committed", NULL, gc_commit_extra, &g)) != 0)
		goto cleanup;
	kmpkg_fault("gc:after-commit");
	if ((err = discard_all(e.p.gens, dirs_g, e.p.tmp)) != 0)
		goto cleanup;
	kmpkg_fault("gc:after-generations");
	if ((err = discard_all(e.p.store, dirs_s, e.p.tmp)) != 0)
		goto cleanup;
	kmpkg_fault("gc:after-store");
	if ((err = discard_all(e.p.cache, dirs_c, e.p.tmp)) != 0 ||
	    (err = discard_all(e.p.quar, dirs_q, e.p.tmp)) != 0)
		goto cleanup;
	*out = json_pack("{s:s, s:s, s:s, s:O, s:O, s:O, s:O}", "id", e.id, "op", "gc", "outcome", "committed",
			 "generations", dirs_g, "store", dirs_s, "cache", dirs_c, "quarantine", dirs_q);
cleanup:
	json_decref(g.drop_gens);
	json_decref(g.drop_store);
	json_decref(g.kept_gens);
	json_decref(g.kept_entries);
	json_decref(g.kept_cache);
	json_decref(gens);
	json_decref(store);
	json_decref(dirs_g);
	json_decref(dirs_s);
	json_decref(dirs_c);
	json_decref(dirs_q);
	engine_release(&e);
	return err;
}
