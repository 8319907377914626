/* The LMDB state database (include/kmpkg/state.h). */
#include <dirent.h>
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kmpkg/buf.h"
#include "kmpkg/error.h"
#include "kmpkg/fault.h"
#include "kmpkg/fsutil.h"
#include "kmpkg/state.h"
#include "kmpkg/uuid.h"

/* Big enough for years of history; the file is sparse until used. */
#define STATE_MAPSIZE ((size_t)1 << 30)

/* Written zeros kept past LMDB's last page in data.mdb (headroom()). */
#define STATE_HEADROOM ((off_t)256 << 10)
#define STATE_HEADROOM_MIN ((off_t)64 << 10)

static const char *const db_names[KMPKG_DB_COUNT] = {
	"meta", "txns", "journal", "installed", "store", "generations", "lock", "sources", "index", "catalog", "listing",
	"files",
};

struct kmpkg_state {
	MDB_env *env;
	MDB_dbi dbi[KMPKG_DB_COUNT];
	bool have[KMPKG_DB_COUNT]; /* read-only opens of an old env may lack some */
	bool writable;
};

struct kmpkg_state_txn {
	struct kmpkg_state *s;
	MDB_txn *txn;
};

static int mdb_err(int rc, const char *what)
{
	if (rc == MDB_MAP_FULL)
		return kmpkg_error_set(KMPKG_ERESOURCE, "E_STATE_FULL", NULL,
				       "run 'kmpkg gc' to drop old history", "%s: state database is full", what);
	if (rc == ENOSPC || rc == EIO || rc == EACCES || rc == EROFS || rc == EPERM || rc == EDQUOT)
		return kmpkg_error_errno(rc, what, "state database");
	return kmpkg_error_set(KMPKG_EGENERIC, "E_STATE", NULL, "run 'kmpkg status' and retry",
			       "%s: %s", what, mdb_strerror(rc));
}

/* Creates the environment as <kdir>/state.new-<uuid>, with every named db
 * and the schema record committed, and renames it to `dir` (durably): a
 * process killed while creating the state leaves a state.new-* directory,
 * never a half-initialised kmpkg/state. Leftovers are removed here (the
 * caller holds the root lock, or is first: a fresh root). */
/*
 * LMDB appends pages at the end of data.mdb. A commit that grows the file
 * has its fdatasync write the new size and blocks through the file system's
 * journal; one that rewrites blocks already written only flushes them (here
 * 0.6 against 0.4 ms, for each of the ten commits of an install). So the
 * file is kept with at least STATE_HEADROOM_MIN bytes of written zeros past
 * LMDB's last page: LMDB never reads past that page (the meta page says where
 * it is) and writes over the zeros as it grows. Topped up to STATE_HEADROOM
 * by a writer that finds less; `sync` makes the zeros durable at once, else
 * the next commit's fdatasync does.
 */
static int headroom(MDB_env *env, bool sync)
{
	static const char zeros[65536];
	MDB_envinfo info;
	MDB_stat ms;
	struct stat st;
	off_t used, want, at;
	int fd, rc;

	if ((rc = mdb_env_get_fd(env, &fd)) != 0 || (rc = mdb_env_info(env, &info)) != 0 ||
	    (rc = mdb_env_stat(env, &ms)) != 0)
		return mdb_err(rc, "state size");
	if (fstat(fd, &st) != 0)
		return kmpkg_error_errno(errno, "stat", "kmpkg/state/data.mdb");
	used = (off_t)(info.me_last_pgno + 1) * (off_t)ms.ms_psize;
	if (st.st_size >= used + STATE_HEADROOM_MIN)
		return 0;
	want = used + STATE_HEADROOM;
	for (at = st.st_size > used ? st.st_size : used; at < want;) {
		size_t n = (size_t)(want - at) < sizeof(zeros) ? (size_t)(want - at) : sizeof(zeros);
		ssize_t w = pwrite(fd, zeros, n, at);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return kmpkg_error_errno(errno, "extend", "kmpkg/state/data.mdb");
		at += w;
	}
	return sync ? kmpkg_fsutil_fsync_fd(fd, "kmpkg/state/data.mdb") : 0;
}

static int create_env(const char *kdir, const char *dir)
{
	char id[37], name[10 + sizeof(id)] = "state.new-";
	char *tmp = NULL;
	DIR *d = NULL;
	struct dirent *de;
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_val k = { 6, (void *)"schema" }, v = { 1, (void *)"1" };
	int rc, err, i;

	if ((err = kmpkg_fsutil_mkdir_p(kdir, 0755)) != 0)
		return err;
	d = opendir(kdir);
	while (d && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "state.new-", 10) == 0) {
			char *old = kmpkg_fsutil_join(kdir, de->d_name);

			err = kmpkg_fsutil_rmtree(old);
			free(old);
			if (err)
				goto cleanup;
		}
	}
	if ((err = kmpkg_uuid_v7(id)) != 0)
		goto cleanup;
	memcpy(name + 10, id, sizeof(id));
	tmp = kmpkg_fsutil_join(kdir, name);
	if (mkdir(tmp, 0755) != 0) {
		err = kmpkg_error_errno(errno, "create", tmp);
		free(tmp);
		tmp = NULL;
		goto cleanup;
	}
	if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_maxdbs(env, 16)) != 0 ||
	    (rc = mdb_env_set_mapsize(env, STATE_MAPSIZE)) != 0 || (rc = mdb_env_open(env, tmp, 0, 0644)) != 0 ||
	    (rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0) {
		err = mdb_err(rc, "create state");
		goto cleanup;
	}
	for (i = 0; i < KMPKG_DB_COUNT; i++) {
		if ((rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &dbi)) != 0) {
			err = mdb_err(rc, "create database");
			goto cleanup;
		}
		if (i == KMPKG_DB_META && (rc = mdb_put(txn, dbi, &k, &v, 0)) != 0) {
			err = mdb_err(rc, "initialise state");
			goto cleanup;
		}
	}
	if ((err = headroom(env, false)) != 0)
		goto cleanup;
	rc = mdb_txn_commit(txn); /* durable: default flags; syncs the headroom too */
	txn = NULL;
	if (rc != 0) {
		err = mdb_err(rc, "commit");
		goto cleanup;
	}
	mdb_env_close(env);
	env = NULL;
	if ((err = kmpkg_fsutil_fsync_dir(tmp)) != 0 || (err = kmpkg_fsutil_rename(tmp, dir)) != 0)
		goto cleanup;
	free(tmp);
	tmp = NULL;
cleanup:
	if (txn)
		mdb_txn_abort(txn);
	if (env)
		mdb_env_close(env);
	if (tmp) {
		kmpkg_fsutil_rmtree(tmp);
		free(tmp);
	}
	if (d)
		closedir(d);
	return err;
}

int kmpkg_state_open(struct kmpkg_state **out, const char *root, bool writable)
{
	struct kmpkg_state *s = NULL;
	char *kdir = NULL, *dir = NULL;
	MDB_txn *txn = NULL;
	int rc, err = 0, dead = 0, i;

	*out = NULL;
	kdir = kmpkg_fsutil_join(root, "kmpkg");
	dir = kmpkg_fsutil_join(kdir, "state");
	if (!writable && !kmpkg_fsutil_exists(dir)) {
		err = KMPKG_ENOTFOUND;
		goto cleanup;
	}
	if (writable && !kmpkg_fsutil_exists(dir) && (err = create_env(kdir, dir)) != 0)
		goto cleanup;
	s = calloc(1, sizeof(*s));
	if (!s)
		abort();
	s->writable = writable;
	if ((rc = mdb_env_create(&s->env)) != 0 || (rc = mdb_env_set_maxdbs(s->env, 16)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, STATE_MAPSIZE)) != 0) {
		err = mdb_err(rc, "create environment");
		goto cleanup;
	}
	/* Default flags on purpose: LMDB then syncs data and meta pages on
	 * every commit; none of its relaxed-durability modes is ever used
	 * (each can lose acknowledged commits). */
	rc = mdb_env_open(s->env, dir, writable ? 0 : MDB_RDONLY, 0644);
	if (rc != 0) {
		err = rc == ENOENT && !writable ? KMPKG_ENOTFOUND : mdb_err(rc, "open state");
		goto cleanup;
	}
	mdb_reader_check(s->env, &dead);
	if (writable && (err = headroom(s->env, true)) != 0)
		goto cleanup;

	rc = mdb_txn_begin(s->env, NULL, writable ? 0 : MDB_RDONLY, &txn);
	if (rc != 0) {
		err = mdb_err(rc, "begin");
		goto cleanup;
	}
	for (i = 0; i < KMPKG_DB_COUNT; i++) {
		rc = mdb_dbi_open(txn, db_names[i], writable ? MDB_CREATE : 0, &s->dbi[i]);
		if (rc == MDB_NOTFOUND && !writable)
			continue;
		if (rc != 0) {
			err = mdb_err(rc, "open database");
			goto cleanup;
		}
		s->have[i] = true;
	}
	if (writable) {
		MDB_val k = { 6, (void *)"schema" }, v;

		if (mdb_get(txn, s->dbi[KMPKG_DB_META], &k, &v) == MDB_NOTFOUND) {
			v.mv_data = "1";
			v.mv_size = 1;
			if ((rc = mdb_put(txn, s->dbi[KMPKG_DB_META], &k, &v, 0)) != 0) {
				err = mdb_err(rc, "initialise state");
				goto cleanup;
			}
		}
		rc = mdb_txn_commit(txn);
	} else {
		rc = mdb_txn_commit(txn); /* keeps the dbi handles */
	}
	txn = NULL;
	if (rc != 0) {
		err = mdb_err(rc, "commit");
		goto cleanup;
	}
	*out = s;
	s = NULL;
cleanup:
	if (txn)
		mdb_txn_abort(txn);
	kmpkg_state_free(s);
	free(dir);
	free(kdir);
	return err;
}

void kmpkg_state_free(struct kmpkg_state *s)
{
	if (!s)
		return;
	if (s->env)
		mdb_env_close(s->env);
	free(s);
}

int kmpkg_state_begin(struct kmpkg_state_txn **out, struct kmpkg_state *s, bool write)
{
	struct kmpkg_state_txn *t;
	int rc;

	*out = NULL;
	if (write && !s->writable)
		return kmpkg_error_set(KMPKG_EGENERIC, "E_STATE", NULL, NULL, "state opened read-only");
	t = calloc(1, sizeof(*t));
	if (!t)
		abort();
	t->s = s;
	rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
	if (rc != 0) {
		free(t);
		return mdb_err(rc, "begin");
	}
	*out = t;
	return 0;
}

int kmpkg_state_commit(struct kmpkg_state_txn *t)
{
	int rc;

	if (kmpkg_fault_commit_eio()) {
		mdb_txn_abort(t->txn);
		rc = EIO;
	} else {
		rc = mdb_txn_commit(t->txn);
	}
	free(t);
	return rc ? mdb_err(rc, "commit") : 0;
}

void kmpkg_state_abort(struct kmpkg_state_txn *t)
{
	if (!t)
		return;
	mdb_txn_abort(t->txn);
	free(t);
}

int kmpkg_state_get(json_t **out, struct kmpkg_state_txn *t, enum kmpkg_db db, const void *key,
		    size_t klen)
{
	MDB_val k = { klen, (void *)key }, v;
	json_error_t jerr;
	int rc;

	*out = NULL;
	if (!t->s->have[db])
		return KMPKG_ENOTFOUND;
	rc = mdb_get(t->txn, t->s->dbi[db], &k, &v);
	if (rc == MDB_NOTFOUND)
		return KMPKG_ENOTFOUND;
	if (rc != 0)
		return mdb_err(rc, "read");
	/* json_loadb copies: the value outlives the LMDB transaction. */
	*out = json_loadb(v.mv_data, v.mv_size, JSON_DECODE_ANY, &jerr);
	if (!*out)
		return kmpkg_error_set(KMPKG_EGENERIC, "E_STATE_CORRUPT", NULL, NULL,
				       "unreadable record in %s: %s", db_names[db], jerr.text);
	return 0;
}

int kmpkg_state_put(struct kmpkg_state_txn *t, enum kmpkg_db db, const void *key, size_t klen,
		    const json_t *val)
{
	MDB_val k = { klen, (void *)key }, v;
	char *s;
	int rc;

	s = json_dumps(val, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	if (!s)
		return kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "cannot encode record");
	v.mv_size = strlen(s);
	v.mv_data = s;
	rc = mdb_put(t->txn, t->s->dbi[db], &k, &v, 0);
	free(s);
	return rc ? mdb_err(rc, "write") : 0;
}

/* name -> the n fields, each followed by a NUL (NULL: empty): the
 * encoding of the listing and catalog dbs. */
static int put_fields(struct kmpkg_state_txn *t, enum kmpkg_db db, const char *name, const char *const *f, size_t n)
{
	struct kmpkg_buf b = KMPKG_BUF_INIT;
	MDB_val k = { strlen(name), (void *)name }, v;
	size_t i;
	int rc;

	for (i = 0; i < n; i++)
		if ((f[i] && kmpkg_buf_puts(&b, f[i])) || kmpkg_buf_put(&b, "", 1)) {
			kmpkg_buf_release(&b);
			return kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "cannot encode record");
		}
	v.mv_size = b.len;
	v.mv_data = b.ptr;
	rc = mdb_put(t->txn, t->s->dbi[db], &k, &v, 0);
	kmpkg_buf_release(&b);
	return rc ? mdb_err(rc, "write") : 0;
}

int kmpkg_state_listing_put(struct kmpkg_state_txn *t, const char *name, const struct kmpkg_listing *l)
{
	const char *f[4] = { l->version, l->entry, l->constraint, l->description };

	return put_fields(t, KMPKG_DB_LISTING, name, f, 4);
}

/* The n NUL-terminated fields at p (an empty one as NULL) into f; the end
 * of the last, or NULL when there are fewer than n before end. */
static const char *take_fields(const char *p, const char *end, const char **f, size_t n)
{
	const char *nul;
	size_t i;

	for (i = 0; i < n; i++) {
		if (p >= end || !(nul = memchr(p, '\0', (size_t)(end - p))))
			return NULL;
		f[i] = nul > p ? p : NULL;
		p = nul + 1;
	}
	return p;
}

int kmpkg_state_listing_parse(struct kmpkg_listing *out, const void *val, size_t vlen)
{
	const char *end = (const char *)val + vlen, *f[4];

	if (take_fields(val, end, f, 4) != end || !f[0] || !f[1])
		return kmpkg_error_set(KMPKG_EGENERIC, "E_STATE_CORRUPT", NULL, NULL,
				       "listing record of %zu bytes is not version\\0entry\\0constraint\\0description\\0",
				       vlen);
	out->version = f[0];
	out->entry = f[1];
	out->constraint = f[2];
	out->description = f[3];
	return 0;
}

int kmpkg_state_catalog_put(struct kmpkg_state_txn *t, const char *name, const char *version,
			    const char *description, long versions, const char *const *sources, size_t nsources)
{
	const char **f = calloc(3 + nsources, sizeof(*f));
	char num[24];
	int err;

	if (!f)
		abort();
	snprintf(num, sizeof(num), "%ld", versions);
	f[0] = version;
	f[1] = description;
	f[2] = num;
	if (nsources)
		memcpy(f + 3, sources, nsources * sizeof(*f));
	err = put_fields(t, KMPKG_DB_CATALOG, name, f, 3 + nsources);
	free(f);
	return err;
}

int kmpkg_state_catalog_parse(struct kmpkg_catalog *out, const void *val, size_t vlen)
{
	const char *end = (const char *)val + vlen, *f[3], *p, *next, *src;
	char *num_end = NULL;

	memset(out, 0, sizeof(*out));
	p = take_fields(val, end, f, 3);
	if (p && f[0] && f[0][0] != '{' && f[2])
		out->versions = strtol(f[2], &num_end, 10);
	if (num_end && !*num_end) {
		out->sources = p;
		for (; (next = take_fields(p, end, &src, 1)) != NULL; p = next)
			out->nsources++;
		if (p == end) {
			out->version = f[0];
			out->description = f[1];
			return 0;
		}
	}
	return kmpkg_error_set(KMPKG_EGENERIC, "E_STATE_CORRUPT", NULL, NULL,
			       "catalog record of %zu bytes is not version\\0description\\0versions\\0sources", vlen);
}

int kmpkg_state_del(struct kmpkg_state_txn *t, enum kmpkg_db db, const void *key, size_t klen)
{
	MDB_val k = { klen, (void *)key };
	int rc = mdb_del(t->txn, t->s->dbi[db], &k, NULL);

	return rc && rc != MDB_NOTFOUND ? mdb_err(rc, "delete") : 0;
}

static bool has_prefix(const MDB_val *k, const void *prefix, size_t plen)
{
	return k->mv_size >= plen && memcmp(k->mv_data, prefix, plen) == 0;
}

int kmpkg_state_foreach(struct kmpkg_state_txn *t, enum kmpkg_db db, const void *prefix, size_t plen,
			bool reverse, kmpkg_state_fn fn, void *ctx)
{
	MDB_cursor *c = NULL;
	MDB_val k, v;
	int rc, err = 0;
	MDB_cursor_op op;

	if (!t->s->have[db])
		return 0;
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[db], &c)) != 0)
		return mdb_err(rc, "cursor");
	if (!reverse) {
		if (plen) {
			k.mv_size = plen;
			k.mv_data = (void *)prefix;
			rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		} else {
			rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
		}
		op = MDB_NEXT;
	} else {
		rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
		op = MDB_PREV;
		/* Step back to the last key with the prefix: scan is fine at this size. */
		while (rc == 0 && plen && !has_prefix(&k, prefix, plen) &&
		       memcmp(k.mv_data, prefix, k.mv_size < plen ? k.mv_size : plen) > 0)
			rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
	}
	for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, op)) {
		json_error_t jerr;
		json_t *val;
		int r;

		if (plen && !has_prefix(&k, prefix, plen))
			break;
		val = json_loadb(v.mv_data, v.mv_size, JSON_DECODE_ANY, &jerr);
		if (!val) {
			err = kmpkg_error_set(KMPKG_EGENERIC, "E_STATE_CORRUPT", NULL, NULL,
					      "unreadable record in %s: %s", db_names[db], jerr.text);
			goto cleanup;
		}
		r = fn(ctx, k.mv_data, k.mv_size, val);
		if (r < 0) {
			err = r;
			goto cleanup;
		}
		if (r > 0)
			break;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		err = mdb_err(rc, "read");
cleanup:
	mdb_cursor_close(c);
	return err;
}

int kmpkg_state_foreach_raw(struct kmpkg_state_txn *t, enum kmpkg_db db, const void *prefix, size_t plen,
			    kmpkg_state_raw_fn fn, void *ctx)
{
	MDB_cursor *c = NULL;
	MDB_val k, v;
	int rc, err = 0;

	if (!t->s->have[db])
		return 0;
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[db], &c)) != 0)
		return mdb_err(rc, "cursor");
	if (plen) {
		k.mv_size = plen;
		k.mv_data = (void *)prefix;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	} else {
		rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	}
	for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		int r;

		if (plen && !has_prefix(&k, prefix, plen))
			break;
		r = fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
		if (r < 0) {
			err = r;
			goto cleanup;
		}
		if (r > 0)
			break;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		err = mdb_err(rc, "read");
cleanup:
	mdb_cursor_close(c);
	return err;
}

int kmpkg_state_count(size_t *out, struct kmpkg_state_txn *t, enum kmpkg_db db)
{
	MDB_stat st;
	int rc;

	*out = 0;
	if (!t->s->have[db])
		return 0;
	if ((rc = mdb_stat(t->txn, t->s->dbi[db], &st)) != 0)
		return mdb_err(rc, "stat");
	*out = st.ms_entries;
	return 0;
}

int kmpkg_state_gets(json_t **out, struct kmpkg_state_txn *t, enum kmpkg_db db, const char *key)
{
	return kmpkg_state_get(out, t, db, key, strlen(key));
}

int kmpkg_state_puts(struct kmpkg_state_txn *t, enum kmpkg_db db, const char *key, const json_t *val)
{
	return kmpkg_state_put(t, db, key, strlen(key), val);
}

int kmpkg_state_dels(struct kmpkg_state_txn *t, enum kmpkg_db db, const char *key)
{
	return kmpkg_state_del(t, db, key, strlen(key));
}

int kmpkg_state_meta_get(int64_t *out, struct kmpkg_state_txn *t, const char *key, int64_t dflt)
{
	json_t *v = NULL;
	int err;

	*out = dflt;
	err = kmpkg_state_gets(&v, t, KMPKG_DB_META, key);
	if (err == KMPKG_ENOTFOUND)
		return 0;
	if (err)
		return err;
	if (json_is_integer(v))
		*out = json_integer_value(v);
	json_decref(v);
	return 0;
}

int kmpkg_state_meta_set(struct kmpkg_state_txn *t, const char *key, int64_t v)
{
	json_t *j = json_integer(v);
	int err = kmpkg_state_puts(t, KMPKG_DB_META, key, j);

	json_decref(j);
	return err;
}

void kmpkg_state_gen_key(unsigned char out[4], uint32_t n)
{
	out[0] = (unsigned char)(n >> 24);
	out[1] = (unsigned char)(n >> 16);
	out[2] = (unsigned char)(n >> 8);
	out[3] = (unsigned char)n;
}

uint32_t kmpkg_state_gen_from_key(const void *key)
{
	const unsigned char *k = key;

	return (uint32_t)k[0] << 24 | (uint32_t)k[1] << 16 | (uint32_t)k[2] << 8 | k[3];
}

int kmpkg_state_gen_get(json_t **out, struct kmpkg_state_txn *t, uint32_t n)
{
	unsigned char k[4];

	kmpkg_state_gen_key(k, n);
	return kmpkg_state_get(out, t, KMPKG_DB_GENERATIONS, k, 4);
}

int kmpkg_state_gen_put(struct kmpkg_state_txn *t, uint32_t n, const json_t *val)
{
	unsigned char k[4];

	kmpkg_state_gen_key(k, n);
	return kmpkg_state_put(t, KMPKG_DB_GENERATIONS, k, 4, val);
}

int kmpkg_state_journal_put(struct kmpkg_state_txn *t, const char *id, uint32_t seq, const json_t *val)
{
	size_t n = strlen(id);
	unsigned char *k = malloc(n + 4);
	int err;

	if (!k)
		abort();
	memcpy(k, id, n);
	kmpkg_state_gen_key(k + n, seq);
	err = kmpkg_state_put(t, KMPKG_DB_JOURNAL, k, n + 4, val);
	free(k);
	return err;
}
