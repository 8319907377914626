/* kmpkg status [ID]: what is in flight, or the last outcome. Never waits
 * for the lock; finishes an interrupted transaction when the lock is free. */
#include <stdio.h>
#include <string.h>

#include "cmdutil.h"
#include "kmpkg/error.h"
#include "kmpkg/lock.h"

static const char *js(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void print_line(const json_t *rec, const json_t *holder)
{
	char *d = kmpkg_cmdutil_describe(rec);
	const char *phase = js(rec, "phase");
	int idx = kmpkg_txn_phase_index(phase);

	if (holder || !js(rec, "outcome")) {
		printf("%s", d);
		if (idx)
			printf(" \u2014 phase %d/5 %s", idx, phase);
		else if (phase)
			printf(" \u2014 %s", phase);
		if (holder)
			printf(" (held by pid %lld, transaction %s)\n",
			       (long long)json_integer_value(json_object_get(holder, "pid")), js(rec, "id"));
		else
			printf(" (interrupted; the next kmpkg command recovers it; transaction %s)\n", js(rec, "id"));
	} else {
		printf("last: %s \u2014 %s", d, js(rec, "outcome"));
		if (js(rec, "reason"))
			printf(" (%s)", js(rec, "reason"));
		printf(" at %s, transaction %s\n", js(rec, "ended") ? js(rec, "ended") : "?", js(rec, "id"));
	}
	free(d);
}

int kmpkg_cmd_status(struct kmpkg_cli *cli, int argc, char **argv)
{
	struct kmpkg_state *st = NULL;
	struct kmpkg_state_txn *t = NULL;
	json_t *rec = NULL, *holder = NULL, *txns = NULL, *last = NULL, *out;
	int64_t active = 0, known_good = 0;
	bool held;
	int err;

	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		if (argc == 2 && strcmp(argv[1], "--help") == 0) {
			printf("usage: kmpkg status [ID]\n");
			return 0;
		}
		return kmpkg_cli_usage("status", "usage: kmpkg status [ID]");
	}
	if ((err = kmpkg_cmdutil_open_reader(&st, cli->root)) != 0)
		goto cleanup;
	held = kmpkg_lock_is_held(cli->root);
	if (st) {
		if ((err = kmpkg_state_begin(&t, st, false)) != 0)
			goto cleanup;
		kmpkg_state_meta_get(&active, t, "active", 0);
		kmpkg_state_meta_get(&known_good, t, "known_good", 0);
		if (argc == 2) {
			if ((err = kmpkg_cmdutil_find_txn(&rec, t, argv[1])) != 0)
				goto cleanup;
		} else {
			if (held && kmpkg_state_gets(&holder, t, KMPKG_DB_LOCK, "holder") == 0 && js(holder, "id"))
				kmpkg_state_gets(&rec, t, KMPKG_DB_TXNS, js(holder, "id"));
			if (!rec && kmpkg_state_gets(&last, t, KMPKG_DB_META, "last_txn") == 0 && json_is_string(last))
				kmpkg_state_gets(&rec, t, KMPKG_DB_TXNS, json_string_value(last));
			kmpkg_error_clear();
			if (!rec) {
				/* A root from before last_txn was kept: scan. */
				if ((err = kmpkg_cmdutil_txns(&txns, t)) != 0)
					goto cleanup;
				rec = json_incref(json_array_get(txns, 0));
			}
		}
		if (holder && (!rec || !js(rec, "id") || strcmp(js(rec, "id"), js(holder, "id")) != 0)) {
			json_decref(holder);
			holder = NULL;
		}
	} else if (argc == 2) {
		err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_TXN_NOT_FOUND", NULL, NULL, "no transaction with id %s", argv[1]);
		goto cleanup;
	}
	if (cli->json) {
		out = json_pack("{s:b, s:I, s:I}", "locked", held, "generation", (json_int_t)active, "known_good",
				(json_int_t)known_good);
		if (rec) {
			json_object_set(out, "transaction", rec);
			json_object_set_new(out, "phase_index", json_integer(kmpkg_txn_phase_index(js(rec, "phase"))));
		}
		if (holder)
			json_object_set(out, "holder", holder);
		kmpkg_cli_print_json(out);
	} else if (!cli->quiet) {
		if (rec)
			print_line(rec, holder);
		else if (held)
			printf("another kmpkg holds the lock\n");
		else
			printf("nothing has happened yet\n");
		printf("generation %lld is active; known-good: %lld\n", (long long)active, (long long)known_good);
	}
	err = 0;
cleanup:
	json_decref(rec);
	json_decref(holder);
	json_decref(last);
	json_decref(txns);
	kmpkg_state_abort(t);
	kmpkg_state_free(st);
	return err;
}
