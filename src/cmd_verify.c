/* kmpkg verify [NAME...]: installed files against their install-time records
 * (like rpm -V). Read-only: reads the state like `list` and never takes the
 * write lock. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmdutil.h"
#include "kmpkg/error.h"
#include "kmpkg/fsutil.h"
#include "kmpkg/verify.h"

#define USAGE "usage: kmpkg verify [NAME...]"

static int collect(void *ctx, const void *key, size_t klen, json_t *val)
{
	(void)key;
	(void)klen;
	json_array_append_new(ctx, val);
	return 0;
}

/* The records to check: the named plugins (in argument order, once each),
 * or every installed one. */
static int records(json_t **out, struct kmpkg_state *st, int argc, char **argv)
{
	struct kmpkg_state_txn *t = NULL;
	json_t *all = json_array(), *rec = NULL, *v;
	size_t j;
	int i, err = 0;

	*out = NULL;
	if (st && (err = kmpkg_state_begin(&t, st, false)) != 0)
		goto cleanup;
	if (argc == 0) {
		if (t)
			err = kmpkg_state_foreach(t, KMPKG_DB_INSTALLED, NULL, 0, false, collect, all);
		if (err)
			goto cleanup;
	}
	for (i = 0; argc > 0 && i < argc; i++) {
		bool dup = false;

		json_array_foreach(all, j, v)
			dup = dup || strcmp(json_string_value(json_object_get(v, "name")), argv[i]) == 0;
		if (dup)
			continue;
		err = t ? kmpkg_state_gets(&rec, t, KMPKG_DB_INSTALLED, argv[i]) : KMPKG_ENOTFOUND;
		if (err == KMPKG_ENOTFOUND || (err == 0 && !json_is_string(json_object_get(rec, "name")))) {
			err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_NOT_INSTALLED", NULL,
					      "'kmpkg list' shows what is installed", "%s is not installed", argv[i]);
			goto cleanup;
		}
		if (err)
			goto cleanup;
		json_array_append_new(all, rec);
		rec = NULL;
	}
	/* The per-file digests live in the files db under the entry (in the
	 * store record on roots from before it): the installed and store
	 * records stay small for list, status and rollback. */
	json_array_foreach(all, j, v) {
		json_t *store = NULL, *files = NULL;
		const char *entry = json_string_value(json_object_get(v, "entry"));

		if (!t || json_object_get(v, "files") || !entry)
			continue;
		err = kmpkg_state_gets(&files, t, KMPKG_DB_FILES, entry);
		if (err == KMPKG_ENOTFOUND) {
			err = kmpkg_state_gets(&store, t, KMPKG_DB_STORE, entry);
			if (err == 0)
				files = json_incref(json_object_get(store, "files"));
		}
		if (err == KMPKG_ENOTFOUND)
			err = 0;
		if (err)
			goto cleanup;
		if (files)
			json_object_set(v, "files", files);
		json_decref(files);
		json_decref(store);
	}
cleanup:
	kmpkg_state_abort(t);
	json_decref(rec);
	if (err == 0)
		*out = all;
	else
		json_decref(all);
	return err;
}

/* The way back for a plugin found changed: its package, kept in the cache
 * under its digest, installed again; NULL when the cache no longer has it. */
static char *reinstall_step(const char *root, const json_t *rec)
{
	const char *sha = json_string_value(json_object_get(rec, "sha256"));
	char *cache, *f, *step = NULL;

	if (!sha || strlen(sha) != 64)
		return NULL;
	cache = kmpkg_cmdutil_cache_dir(root);
	f = kmpkg_fsutil_join(cache, sha);
	if (kmpkg_fsutil_exists(f) &&
	    asprintf(&step, "find out who changed them; then put the package back: kmpkg --root %s install --reinstall %s",
		     root, f) < 0)
		step = NULL;
	free(f);
	free(cache);
	return step;
}

static void print_text(const json_t *rep)
{
	const char *name = json_string_value(json_object_get(rep, "name"));
	json_t *m, *w;
	size_t i, j;

	json_array_foreach(json_object_get(rep, "modified"), i, m) {
		printf("%s: modified %s (", name, json_string_value(json_object_get(m, "path")));
		json_array_foreach(json_object_get(m, "what"), j, w)
			printf("%s%s", j ? ", " : "", json_string_value(w));
		printf(")\n");
	}
	json_array_foreach(json_object_get(rep, "missing"), i, m)
		printf("%s: missing %s\n", name, json_string_value(m));
	json_array_foreach(json_object_get(rep, "extra"), i, m)
		printf("%s: extra %s\n", name, json_string_value(m));
}

int kmpkg_cmd_verify(struct kmpkg_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kmpkg_state *st = NULL;
	json_t *recs = NULL, *reps = json_array(), *rep = NULL, *rec;
	size_t i, nfiles = 0, nmod = 0, nmiss = 0, nextra = 0, nbad = 0;
	char *again = NULL;
	int c, err;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'h') {
			printf("%s\n", USAGE);
			err = 0;
			goto cleanup;
		}
		err = kmpkg_cli_usage("verify", "unknown option %s; %s", argv[optind - 1], USAGE);
		goto cleanup;
	}
	if ((err = kmpkg_cmdutil_open_reader(&st, cli->root)) != 0 ||
	    (err = records(&recs, st, argc - optind, argv + optind)) != 0)
		goto cleanup;
	/* The read transaction is over: hashing does not pin a reader slot. */
	json_array_foreach(recs, i, rec) {
		if ((err = kmpkg_verify_plugin(&rep, cli->root, rec)) != 0)
			goto cleanup;
		nfiles += json_array_size(json_object_get(rec, "files"));
		nmod += json_array_size(json_object_get(rep, "modified"));
		nmiss += json_array_size(json_object_get(rep, "missing"));
		nextra += json_array_size(json_object_get(rep, "extra"));
		if (kmpkg_verify_count(rep) > 0 && nbad++ == 0)
			again = reinstall_step(cli->root, rec);
		if (!cli->json && !cli->quiet)
			print_text(rep);
		json_array_append_new(reps, rep);
		rep = NULL;
	}
	if (cli->json) {
		json_t *doc = json_pack("{s:O, s:b}", "plugins", reps, "ok", nbad == 0);

		if (nbad)
			json_object_set_new(doc, "code", json_string("E_VERIFY_MODIFIED"));
		kmpkg_cli_print_json(doc);
		/* The report is the one JSON document: exit 4 without an error object. */
		err = nbad ? -KMPKG_EVERIFY : 0;
		goto cleanup;
	}
	if (!cli->quiet) {
		if (json_array_size(recs) == 0)
			printf("no plugins installed\n");
		else if (nbad == 0)
			printf("verified %zu plugin%s, %zu file%s: all match\n", json_array_size(recs),
			       json_array_size(recs) == 1 ? "" : "s", nfiles, nfiles == 1 ? "" : "s");
		else
			printf("verified %zu plugin%s, %zu file%s: %zu modified, %zu missing, %zu extra\n",
			       json_array_size(recs), json_array_size(recs) == 1 ? "" : "s", nfiles,
			       nfiles == 1 ? "" : "s", nmod, nmiss, nextra);
	}
	/* The findings come before main's error line on a shared terminal or log. */
	fflush(stdout);
	if (nbad)
		err = kmpkg_error_set(KMPKG_EVERIFY, "E_VERIFY_MODIFIED", NULL,
				      again ? again
					    : "find out who changed them; then put the package back with "
					      "'kmpkg install --reinstall FILE' (FILE: the plugin's .kmpkg)",
				      "%zu of %zu installed plugin%s differ%s from what was installed", nbad,
				      json_array_size(recs), json_array_size(recs) == 1 ? "" : "s",
				      nbad == 1 ? "s" : "");
cleanup:
	free(again);
	kmpkg_state_free(st);
	json_decref(recs);
	json_decref(reps);
	json_decref(rep);
	return err;
}
