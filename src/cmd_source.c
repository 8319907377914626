/*
 * kmpkg source add NAME URL [--ref REF] [--key KEYFILE] [--token-env VAR],
 * source list, source remove NAME, source update [NAME].
 *
 * add and update follow include/kmpkg/source.h: under the root lock, fetch
 * (with the trust checks against the commit recorded in LMDB), apply the
 * index diff to the index cache and record the new trusted commit in one
 * LMDB commit, then mark the commit trusted in the bare clone.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cmdutil.h"
#include "kmpkg/error.h"
#include "kmpkg/index.h"
#include "kmpkg/lock.h"
#include "kmpkg/sig.h"
#include "kmpkg/source.h"
#include "kmpkg/state.h"
#include "kmpkg/txn.h"

#define USAGE                                                                                      \
	"source add NAME URL [--ref REF] [--key KEYFILE] [--token-env VAR] | source list | "        \
	"source remove NAME | source update [NAME]"

struct source_opts {
	const char *ref;
	const char *key;
	const char *token_env;
};

static const char *js(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *json_now(void)
{
	char buf[32];
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

static json_t *meta_json(const struct kmpkg_source_meta *m)
{
	json_t *o = json_pack("{s:s?, s:s?}", "name", m->name, "description", m->description);

	if (m->has_expires) {
		char buf[32];
		time_t t = (time_t)m->expires;
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_object_set_new(o, "expires", json_string(buf));
	}
	return o;
}

static void restore_error(const struct kmpkg_error *e)
{
	if (e->klass)
		kmpkg_error_set(e->klass, e->code, e->field[0] ? e->field : NULL, e->next_step[0] ? e->next_step : NULL,
				"%s", e->message);
}

/* ---- progress (TTY only) ---------------------------------------------- */

struct progress {
	const struct kmpkg_cli *cli;
	const char *name;
	bool drawn;
};

static int draw_progress(const struct kmpkg_source_progress *p, void *payload)
{
	struct progress *pr = payload;

	fprintf(stderr, "\rfetching %s: %u/%u objects, %zu KiB", pr->name, p->received_objects, p->total_objects,
		p->received_bytes / 1024);
	pr->drawn = true;
	return 0;
}

static void end_progress(struct progress *pr)
{
	if (pr->drawn)
		fprintf(stderr, "\r\033[K");
	pr->drawn = false;
}

static void fetch_opts(struct kmpkg_source_fetch_opts *fo, struct progress *pr, const struct kmpkg_cli *cli,
		       const char *name, const char *ref, const char *token_env)
{
	memset(fo, 0, sizeof(*fo));
	fo->ref = ref;
	fo->token_env = token_env;
	pr->cli = cli;
	pr->name = name;
	pr->drawn = false;
	if (cli->tty && !cli->quiet && !cli->json) {
		fo->progress = draw_progress;
		fo->progress_payload = pr;
	}
}

static void print_warnings(const struct kmpkg_cli *cli, const char *source, const json_t *warnings)
{
	const json_t *w;
	size_t i;

	if (cli->json)
		return;
	json_array_foreach(warnings, i, w)
		fprintf(stderr, "kmpkg: warning: source %s: %s: skipped: %s\n", source, js(w, "path"), js(w, "reason"));
}

/* ---- the locked, writable part shared by add and update ----------------- */

struct writer {
	struct kmpkg_lock *lock;
	struct kmpkg_state *st;
};

static int writer_open(struct writer *w, const struct kmpkg_cli *cli)
{
	int err;

	memset(w, 0, sizeof(*w));
	/* Finish whatever a killed transaction left, as every writer does. */
	if ((err = kmpkg_txn_recover(cli->root, cli->wait_secs)) != 0)
		return err;
	if ((err = kmpkg_lock_acquire(&w->lock, cli->root, cli->wait_secs)) != 0)
		return err;
	return kmpkg_state_open(&w->st, cli->root, true);
}

static void writer_close(struct writer *w)
{
	kmpkg_state_free(w->st);
	kmpkg_lock_release(w->lock);
}

static int get_source(json_t **out, struct kmpkg_state *st, const char *name)
{
	struct kmpkg_state_txn *t = NULL;
	int err;

	*out = NULL;
	if ((err = kmpkg_state_begin(&t, st, false)) != 0)
		return err;
	err = kmpkg_state_gets(out, t, KMPKG_DB_SOURCES, name);
	kmpkg_state_abort(t);
	return err;
}

/* Fetches, syncs the index cache from rec's trusted commit and commits the
 * new record; then trusts the commit. rec is updated in place. */
static int sync_source(json_t *rec, json_t **warnings, size_t *entries, struct writer *w,
		       const struct kmpkg_cli *cli, struct kmpkg_source *src, bool *changed)
{
	struct kmpkg_source_update_result res;
	struct kmpkg_index_sync_result sr = { 0 };
	struct kmpkg_source_fetch_opts fo;
	struct kmpkg_state_txn *t = NULL;
	struct progress pr;
	const char *name = js(rec, "name"), *trusted = js(rec, "trusted");
	int err;

	memset(&res, 0, sizeof(res));
	fetch_opts(&fo, &pr, cli, name, js(rec, "ref"), js(rec, "token_env"));
	err = kmpkg_source_update(&res, src, js(rec, "url"), &fo, trusted);
	end_progress(&pr);
	if (err) {
		if (strcmp(kmpkg_error_last()->code, "E_SOURCE_FORCE_PUSHED") == 0 ||
		    strcmp(kmpkg_error_last()->code, "E_SOURCE_EXPIRED") == 0)
			kmpkg_error_prefix("source %s", name);
		goto cleanup;
	}
	*changed = !trusted || strcmp(trusted, res.commit) != 0;
	if ((err = kmpkg_state_begin(&t, w->st, true)) != 0)
		goto cleanup;
	if ((err = kmpkg_index_sync(&sr, t, src, name, trusted, res.commit)) != 0)
		goto cleanup;
	if ((err = kmpkg_index_count(entries, t, name)) != 0)
		goto cleanup;
	json_object_set_new(rec, "trusted", json_string(res.commit));
	json_object_set_new(rec, "updated", json_now());
	json_object_set_new(rec, "meta", meta_json(&res.meta));
	json_object_set_new(rec, "entries", json_integer((json_int_t)*entries));
	json_object_set(rec, "skipped", sr.warnings);
	if ((err = kmpkg_state_puts(t, KMPKG_DB_SOURCES, name, rec)) != 0)
		goto cleanup;
	err = kmpkg_state_commit(t);
	t = NULL;
	if (err)
		goto cleanup;
	/* LMDB names the commit now; the ref in the clone follows. */
	if ((err = kmpkg_source_trust(src, res.commit)) != 0)
		goto cleanup;
	*warnings = json_incref(sr.warnings);
cleanup:
	kmpkg_state_abort(t);
	kmpkg_index_sync_result_release(&sr);
	kmpkg_source_update_result_release(&res);
	return err;
}

static json_t *source_json(const json_t *rec)
{
	json_t *o = json_deep_copy(rec);

	json_object_del(o, "skipped");
	json_object_del(o, "keys_added");
	return o;
}

/* ---- add ------------------------------------------------------------------ */

static int source_add(struct kmpkg_cli *cli, const char *name, const char *url, const struct source_opts *so)
{
	struct writer w;
	struct kmpkg_source *src = NULL;
	struct kmpkg_key key = { 0 };
	struct kmpkg_keylist *before = NULL;
	json_t *rec = NULL, *warnings = NULL, *keys = json_array(), *keys_added = json_array();
	size_t entries = 0, i;
	bool changed = false, created = false, known = false;
	int err;

	if (!kmpkg_source_name_valid(name)) {
		err = kmpkg_error_set(KMPKG_EUSAGE, "E_SOURCE_NAME_INVALID", "NAME", "use [a-z0-9][a-z0-9-]{0,62}",
				      "source name '%s' is not valid", name);
		goto cleanup;
	}
	if (so->token_env && (!*so->token_env || strchr(so->token_env, '='))) {
		err = kmpkg_cli_usage("source", "--token-env takes the NAME of an environment variable");
		goto cleanup;
	}
	if ((err = writer_open(&w, cli)) != 0)
		goto close;
	err = get_source(&rec, w.st, name);
	if (err == 0) {
		err = kmpkg_error_set(KMPKG_EGENERIC, "E_SOURCE_EXISTS", "NAME",
				      "'kmpkg source update' refreshes it; 'kmpkg source remove' first to re-add it",
				      "source %s already exists (%s)", name, js(rec, "url") ? js(rec, "url") : "?");
		goto close;
	}
	if (err != KMPKG_ENOTFOUND)
		goto close;
	json_decref(rec);
	rec = NULL;
	created = true;
	if ((err = kmpkg_source_open(&src, cli->root, name, true)) != 0)
		goto close;
	rec = json_pack("{s:s, s:s, s:s?, s:s?, s:n, s:o}", "name", name, "url", url, "ref", so->ref, "token_env",
			so->token_env, "trusted", "added", json_now());
	if (so->key) {
		/* The source's signing key joins the trusted keys, tied to it. */
		if ((err = kmpkg_sig_key_list(&before, cli->root)) != 0)
			goto close;
		if ((err = kmpkg_sig_key_add(&key, cli->root, so->key)) != 0)
			goto close;
		for (i = 0; i < before->n; i++)
			known |= strcmp(before->v[i].id, key.id) == 0;
		json_array_append_new(keys, json_string(key.id));
		if (!known)
			json_array_append_new(keys_added, json_string(key.id));
	}
	json_object_set(rec, "keys", keys);
	json_object_set(rec, "keys_added", keys_added);
	if ((err = sync_source(rec, &warnings, &entries, &w, cli, src, &changed)) != 0) {
		if (so->key && !known) {
			struct kmpkg_key gone = { 0 };
			struct kmpkg_error saved = *kmpkg_error_last();

			if (kmpkg_sig_key_remove(&gone, cli->root, key.id) == 0)
				kmpkg_key_release(&gone);
			restore_error(&saved);
		}
		goto close;
	}
	created = false;
	print_warnings(cli, name, warnings);
	if (cli->json) {
		kmpkg_cli_print_json(json_pack("{s:s, s:o, s:I, s:O}", "op", "source add", "source", source_json(rec),
					       "entries", (json_int_t)entries, "warnings", warnings));
	} else {
		kmpkg_cli_say(cli, "added source %s (%s) at %.12s: %zu plugin versions indexed%s\n", name, url,
			      js(rec, "trusted"), entries,
			      json_array_size(warnings) ? ", some index files skipped (see warnings)" : "");
		if (so->key)
			kmpkg_cli_say(cli, "  trusted %s key %s for this source\n", key.type, key.id);
	}
close:
	if (created && err) {
		/* A failed add leaves nothing behind: no record, no clone. */
		struct kmpkg_error saved = *kmpkg_error_last();

		kmpkg_source_close(src);
		src = NULL;
		kmpkg_source_delete(cli->root, name);
		restore_error(&saved);
	}
	kmpkg_source_close(src);
	writer_close(&w);
cleanup:
	kmpkg_keylist_free(before);
	kmpkg_key_release(&key);
	json_decref(rec);
	json_decref(warnings);
	json_decref(keys);
	json_decref(keys_added);
	return err;
}

/* ---- update ---------------------------------------------------------------- */

static int collect_names(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	char *k = strndup(key, klen);

	(void)val;
	(void)vlen;
	if (!k)
		abort();
	json_array_append_new(ctx, json_string(k));
	free(k);
	return 0;
}

static int source_update(struct kmpkg_cli *cli, const char *only)
{
	struct writer w;
	struct kmpkg_state_txn *t = NULL;
	struct kmpkg_error first = { 0 };
	json_t *names = json_array(), *results = json_array(), *n;
	size_t i;
	int err;

	if ((err = writer_open(&w, cli)) != 0)
		goto cleanup;
	if (only) {
		json_array_append_new(names, json_string(only));
	} else {
		if ((err = kmpkg_state_begin(&t, w.st, false)) != 0)
			goto cleanup;
		err = kmpkg_state_foreach_raw(t, KMPKG_DB_SOURCES, NULL, 0, collect_names, names);
		kmpkg_state_abort(t);
		t = NULL;
		if (err)
			goto cleanup;
	}
	json_array_foreach(names, i, n) {
		const char *name = json_string_value(n);
		struct kmpkg_source *src = NULL;
		json_t *rec = NULL, *warnings = NULL;
		char before[KMPKG_SOURCE_OID_HEX + 1] = "";
		size_t entries = 0;
		bool changed = false;

		err = get_source(&rec, w.st, name);
		if (err == KMPKG_ENOTFOUND)
			err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_SOURCE_NOT_FOUND", "NAME",
					      "'kmpkg source list' shows the sources", "no source named %s", name);
		if (!err) {
			snprintf(before, sizeof(before), "%s", js(rec, "trusted") ? js(rec, "trusted") : "");
			err = kmpkg_source_open(&src, cli->root, name, true);
		}
		if (!err)
			err = sync_source(rec, &warnings, &entries, &w, cli, src, &changed);
		kmpkg_source_close(src);
		if (err) {
			if (!first.klass)
				first = *kmpkg_error_last();
			if (!cli->json && names && json_array_size(names) > 1)
				fprintf(stderr, "kmpkg: error[%s]: %s\n", kmpkg_error_last()->code,
					kmpkg_error_last()->message);
			json_array_append_new(results, json_pack("{s:s, s:s, s:s}", "name", name, "error",
								 kmpkg_error_last()->code, "message",
								 kmpkg_error_last()->message));
		} else {
			print_warnings(cli, name, warnings);
			json_array_append_new(results, json_pack("{s:s, s:s?, s:s, s:b, s:I, s:O}", "name", name, "from",
								 before[0] ? before : NULL, "to", js(rec, "trusted"),
								 "changed", changed, "entries", (json_int_t)entries,
								 "warnings", warnings));
			if (changed)
				kmpkg_cli_say(cli, "updated source %s: %.12s \u2192 %.12s, %zu plugin versions indexed\n",
					      name, before, js(rec, "trusted"), entries);
			else
				kmpkg_cli_say(cli, "source %s is up to date (%.12s, %zu plugin versions)\n", name,
					      js(rec, "trusted"), entries);
		}
		json_decref(rec);
		json_decref(warnings);
		err = 0;
	}
	if (first.klass) {
		restore_error(&first);
		err = first.klass;
	} else if (cli->json) {
		kmpkg_cli_print_json(json_pack("{s:s, s:O}", "op", "source update", "sources", results));
	} else if (json_array_size(names) == 0) {
		kmpkg_cli_say(cli, "no sources (kmpkg source add NAME URL)\n");
	}
cleanup:
	writer_close(&w);
	json_decref(names);
	json_decref(results);
	return err;
}

/* ---- remove ----------------------------------------------------------------- */

static int other_source_has_key(void *ctx, const void *key, size_t klen, json_t *val)
{
	json_t *ids = ctx, *k;
	size_t i, j;

	(void)key;
	(void)klen;
	json_array_foreach(json_object_get(val, "keys"), i, k) {
		for (j = 0; j < json_array_size(ids); j++) {
			if (json_equal(json_array_get(ids, j), k)) {
				json_array_remove(ids, j);
				break;
			}
		}
	}
	json_decref(val);
	return 0;
}

static int source_remove(struct kmpkg_cli *cli, const char *name)
{
	struct writer w;
	struct kmpkg_state_txn *t = NULL;
	json_t *rec = NULL, *drop = NULL, *k;
	size_t count = 0, i;
	int err;

	if ((err = writer_open(&w, cli)) != 0)
		goto cleanup;
	if ((err = kmpkg_state_begin(&t, w.st, true)) != 0)
		goto cleanup;
	err = kmpkg_state_gets(&rec, t, KMPKG_DB_SOURCES, name);
	if (err == KMPKG_ENOTFOUND)
		err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_SOURCE_NOT_FOUND", "NAME", "'kmpkg source list' shows the sources",
				      "no source named %s", name);
	if (err)
		goto cleanup;
	if ((err = kmpkg_index_remove_source(&count, t, name)) != 0 ||
	    (err = kmpkg_state_dels(t, KMPKG_DB_SOURCES, name)) != 0)
		goto cleanup;
	/* Keys this source brought in go with it, unless another source uses them. */
	drop = json_deep_copy(json_object_get(rec, "keys_added"));
	if (!drop)
		drop = json_array();
	if ((err = kmpkg_state_foreach(t, KMPKG_DB_SOURCES, NULL, 0, false, other_source_has_key, drop)) != 0)
		goto cleanup;
	err = kmpkg_state_commit(t);
	t = NULL;
	if (err)
		goto cleanup;
	json_array_foreach(drop, i, k) {
		struct kmpkg_key gone = { 0 };

		if (kmpkg_sig_key_remove(&gone, cli->root, json_string_value(k)) == 0)
			kmpkg_key_release(&gone);
		kmpkg_error_clear();
	}
	if ((err = kmpkg_source_delete(cli->root, name)) != 0)
		goto cleanup;
	if (cli->json)
		kmpkg_cli_print_json(json_pack("{s:s, s:s, s:I, s:O}", "op", "source remove", "name", name, "entries",
					       (json_int_t)count, "keys_removed", drop));
	else
		kmpkg_cli_say(cli, "removed source %s (%zu plugin versions dropped from the index)\n", name, count);
cleanup:
	kmpkg_state_abort(t);
	writer_close(&w);
	json_decref(rec);
	json_decref(drop);
	return err;
}

/* ---- list --------------------------------------------------------------------- */

static int collect_recs(void *ctx, const void *key, size_t klen, json_t *val)
{
	(void)key;
	(void)klen;
	json_array_append_new(ctx, val);
	return 0;
}

static int source_list(struct kmpkg_cli *cli)
{
	struct kmpkg_state *st = NULL;
	struct kmpkg_state_txn *t = NULL;
	json_t *all = json_array(), *r, *out;
	size_t i;
	int err;

	if ((err = kmpkg_cmdutil_open_reader(&st, cli->root)) != 0)
		goto cleanup;
	if (st) {
		if ((err = kmpkg_state_begin(&t, st, false)) != 0)
			goto cleanup;
		if ((err = kmpkg_state_foreach(t, KMPKG_DB_SOURCES, NULL, 0, false, collect_recs, all)) != 0)
			goto cleanup;
	}
	if (cli->json) {
		out = json_array();
		json_array_foreach(all, i, r)
			json_array_append_new(out, source_json(r));
		kmpkg_cli_print_json(json_pack("{s:o}", "sources", out));
	} else if (!cli->quiet) {
		if (json_array_size(all) == 0)
			printf("no sources (kmpkg source add NAME URL)\n");
		json_array_foreach(all, i, r) {
			printf("%-16s %s%s%s\n", js(r, "name"), js(r, "url"), js(r, "ref") ? " ref " : "",
			       js(r, "ref") ? js(r, "ref") : "");
			printf("  commit %.12s, %lld plugin versions, updated %s%s%s\n",
			       js(r, "trusted") ? js(r, "trusted") : "-", (long long)json_integer_value(json_object_get(r, "entries")),
			       js(r, "updated") ? js(r, "updated") : "never",
			       js(json_object_get(r, "meta"), "expires") ? ", expires " : "",
			       js(json_object_get(r, "meta"), "expires") ? js(json_object_get(r, "meta"), "expires") : "");
			if (json_array_size(json_object_get(r, "skipped")) > 0)
				printf("  %zu index files skipped (kmpkg source update %s shows why)\n",
				       json_array_size(json_object_get(r, "skipped")), js(r, "name"));
		}
	}
cleanup:
	kmpkg_state_abort(t);
	kmpkg_state_free(st);
	json_decref(all);
	return err;
}

int kmpkg_cmd_source(struct kmpkg_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "ref", required_argument, NULL, 'r' },
		{ "key", required_argument, NULL, 'k' },
		{ "token-env", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct source_opts so = { NULL, NULL, NULL };
	const char *sub;
	int c, nargs;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			so.ref = optarg;
			break;
		case 'k':
			so.key = optarg;
			break;
		case 't':
			so.token_env = optarg;
			break;
		case 'h':
			printf("usage: kmpkg %s\n", USAGE);
			return 0;
		default:
			return kmpkg_cli_usage("source", "unknown or misplaced option '%s'; usage: kmpkg %s",
					       argv[optind - 1] ? argv[optind - 1] : "?", USAGE);
		}
	}
	if (optind >= argc)
		return kmpkg_cli_usage("source", "source needs a subcommand: add, list, remove or update");
	sub = argv[optind];
	nargs = argc - optind - 1;
	if (strcmp(sub, "add") != 0 && (so.ref || so.key || so.token_env))
		return kmpkg_cli_usage("source", "--ref, --key and --token-env belong to 'source add'");
	if (strcmp(sub, "add") == 0) {
		if (nargs != 2)
			return kmpkg_cli_usage("source", "usage: kmpkg source add NAME URL [--ref REF] [--key KEYFILE] "
							 "[--token-env VAR]");
		return source_add(cli, argv[optind + 1], argv[optind + 2], &so);
	}
	if (strcmp(sub, "list") == 0) {
		if (nargs != 0)
			return kmpkg_cli_usage("source", "source list takes no arguments");
		return source_list(cli);
	}
	if (strcmp(sub, "remove") == 0) {
		if (nargs != 1)
			return kmpkg_cli_usage("source", "usage: kmpkg source remove NAME");
		return source_remove(cli, argv[optind + 1]);
	}
	if (strcmp(sub, "update") == 0) {
		if (nargs > 1)
			return kmpkg_cli_usage("source", "usage: kmpkg source update [NAME]");
		return source_update(cli, nargs ? argv[optind + 1] : NULL);
	}
	return kmpkg_cli_usage("source", "unknown source subcommand '%s'", sub);
}
