/* kmpkg show ID: one transaction's phase timeline (unique ID prefixes accepted). */
#include <stdio.h>
#include <string.h>

#include "cmdutil.h"
#include "kmpkg/error.h"

struct jctx {
	json_t *events;
	size_t idlen;
};

static int collect(void *ctx, const void *key, size_t klen, json_t *val)
{
	struct jctx *j = ctx;

	(void)key;
	if (klen == j->idlen + 4)
		json_array_append_new(j->events, val);
	else
		json_decref(val);
	return 0;
}

static const char *js(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Captured health output, indented, one "| " per line. */
static void print_output(const char *o)
{
	const char *nl;

	while (o && *o) {
		nl = strchr(o, '\n');
		printf("      | %.*s\n", nl ? (int)(nl - o) : (int)strlen(o), o);
		o = nl ? nl + 1 : NULL;
	}
}

int kmpkg_cmd_show(struct kmpkg_cli *cli, int argc, char **argv)
{
	struct kmpkg_state *st = NULL;
	struct kmpkg_state_txn *t = NULL;
	struct jctx j = { NULL, 0 };
	json_t *rec = NULL, *ev, *r;
	const char *id;
	size_t i, k;
	int err;

	if (argc != 2 || argv[1][0] == '-') {
		if (argc == 2 && strcmp(argv[1], "--help") == 0) {
			printf("usage: kmpkg show ID\n");
			return 0;
		}
		return kmpkg_cli_usage("show", "usage: kmpkg show ID");
	}
	if ((err = kmpkg_cmdutil_open_reader(&st, cli->root)) != 0)
		goto cleanup;
	if (!st) {
		err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_TXN_NOT_FOUND", NULL, NULL, "no transaction with id %s", argv[1]);
		goto cleanup;
	}
	if ((err = kmpkg_state_begin(&t, st, false)) != 0 || (err = kmpkg_cmdutil_find_txn(&rec, t, argv[1])) != 0)
		goto cleanup;
	id = js(rec, "id");
	j.events = json_array();
	j.idlen = strlen(id);
	if ((err = kmpkg_state_foreach(t, KMPKG_DB_JOURNAL, id, j.idlen, false, collect, &j)) != 0)
		goto cleanup;
	if (cli->json) {
		json_object_set(rec, "journal", j.events);
		kmpkg_cli_print_json(json_incref(rec));
	} else if (!cli->quiet) {
		char *d = kmpkg_cmdutil_describe(rec);

		printf("transaction %s: %s\n", id, d);
		free(d);
		printf("  outcome:  %s", js(rec, "outcome") ? js(rec, "outcome") : "in flight");
		if (js(rec, "reason"))
			printf(" (%s)", js(rec, "reason"));
		if (json_is_integer(json_object_get(rec, "returned_to")))
			printf(", returned to generation %lld",
			       (long long)json_integer_value(json_object_get(rec, "returned_to")));
		printf("\n  started:  %s\n", js(rec, "started") ? js(rec, "started") : "");
		if (js(rec, "ended"))
			printf("  ended:    %s\n", js(rec, "ended"));
		json_array_foreach(j.events, i, ev) {
			const char *event = js(ev, "event");

			if (!event || strcmp(event, "end") != 0) {
				printf("  %s  %-20s start%s%s\n", js(ev, "time"), js(ev, "phase"),
				       js(ev, "reason") ? ": " : "", js(ev, "reason") ? js(ev, "reason") : "");
				continue;
			}
			printf("  %s  %-20s %-6s %5lld ms", js(ev, "time"), js(ev, "phase"), js(ev, "outcome"),
			       (long long)json_integer_value(json_object_get(ev, "duration_ms")));
			if (js(ev, "code"))
				printf("  error[%s]: %s", js(ev, "code"), js(ev, "message"));
			printf("\n");
			/* Preflight findings of the verify phase (kmpkg-preflight(1) codes). */
			json_array_foreach(json_object_get(ev, "findings"), k, r) {
				printf("      %s[%s] %s: %s\n", js(r, "severity") ? js(r, "severity") : "error",
				       js(r, "code"), js(r, "field") && js(r, "field")[0] ? js(r, "field") : "/",
				       js(r, "message"));
				if (js(r, "next_step"))
					printf("        next step: %s\n", js(r, "next_step"));
			}
			json_array_foreach(json_object_get(ev, "output"), k, r) {
				if (json_is_true(json_object_get(r, "skipped"))) {
					printf("      skipped: %s\n", js(r, "reason") ? js(r, "reason") : "");
					continue;
				}
				printf("      %s %s: %s\n", js(r, "name"), js(r, "version"),
				       json_is_true(json_object_get(r, "passed")) ? "passed" : js(r, "reason"));
				print_output(js(r, "output"));
			}
		}
	}
	err = 0;
cleanup:
	json_decref(rec);
	json_decref(j.events);
	kmpkg_state_abort(t);
	kmpkg_state_free(st);
	return err;
}
