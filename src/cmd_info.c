/* kmpkg info NAME: the installed record, the versions it went through, and
 * every version the sources offer (index cache), with whether each would
 * pass preflight on this host (<root>/kmpkg/host.yaml). */
#include <stdio.h>
#include <string.h>

#include "cmdutil.h"
#include "kmpkg/error.h"
#include "kmpkg/index.h"
#include "plan.h"

static const char *js(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* History of `name`: [{id, op, from, to, outcome, started}] newest first. */
static json_t *history_of(const json_t *txns, const char *name)
{
	json_t *h = json_array(), *r, *c;
	size_t i, j;

	json_array_foreach(txns, i, r) {
		json_array_foreach(json_object_get(r, "changes"), j, c) {
			if (!js(c, "name") || strcmp(js(c, "name"), name) != 0)
				continue;
			json_array_append_new(h, json_pack("{s:O, s:O, s:O?, s:O?, s:O?, s:O?}", "id",
							   json_object_get(r, "id"), "op", json_object_get(r, "op"),
							   "from", json_object_get(c, "from"), "to",
							   json_object_get(c, "to"), "outcome",
							   json_object_get(r, "outcome"), "started",
							   json_object_get(r, "started")));
		}
	}
	return h;
}

/* [{version, source, commit, description, passes, reason, installed}] newest first. */
static json_t *available_of(const json_t *vers, const struct kmpkg_host *host, const json_t *rec)
{
	json_t *a = json_array(), *s;
	char why[512];
	size_t i;

	json_array_foreach(vers, i, s) {
		bool ok = kmpkg_plan_passes(host, s, NULL, why, sizeof(why));
		const char *iv = rec ? js(rec, "version") : NULL;

		json_array_append_new(a, json_pack("{s:O, s:O?, s:O?, s:O?, s:O?, s:b, s:s?, s:b, s:O?, s:O?}", "version",
						   json_object_get(s, "version"), "source", json_object_get(s, "source"),
						   "commit", json_object_get(s, "commit"), "description",
						   json_object_get(s, "description"), "deps", json_object_get(s, "deps"),
						   "passes_preflight", ok, "reason", ok ? NULL : why, "installed",
						   iv && strcmp(iv, js(s, "version")) == 0, "host",
						   json_object_get(s, "host"), "api", json_object_get(s, "api")));
	}
	return a;
}

int kmpkg_cmd_info(struct kmpkg_cli *cli, int argc, char **argv)
{
	struct kmpkg_state *st = NULL;
	struct kmpkg_state_txn *t = NULL;
	struct kmpkg_host *host = NULL;
	json_t *rec = NULL, *txns = NULL, *hist = NULL, *vers = NULL, *avail = NULL, *v;
	const char *name, *k;
	size_t i;
	int err;

	if (argc != 2 || argv[1][0] == '-') {
		if (argc == 2 && strcmp(argv[1], "--help") == 0) {
			printf("usage: kmpkg info NAME\n");
			return 0;
		}
		return kmpkg_cli_usage("info", "usage: kmpkg info NAME");
	}
	name = argv[1];
	if ((err = kmpkg_cmdutil_open_reader(&st, cli->root)) != 0)
		goto cleanup;
	if (st) {
		if ((err = kmpkg_state_begin(&t, st, false)) != 0)
			goto cleanup;
		err = kmpkg_state_gets(&rec, t, KMPKG_DB_INSTALLED, name);
		if (err && err != KMPKG_ENOTFOUND)
			goto cleanup;
		if ((err = kmpkg_cmdutil_txns(&txns, t)) != 0)
			goto cleanup;
		if ((err = kmpkg_index_versions(&vers, t, name)) != 0)
			goto cleanup;
	}
	hist = history_of(txns, name);
	if (!rec && json_array_size(hist) == 0 && json_array_size(vers) == 0) {
		err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_NOT_INSTALLED", NULL,
				      "'kmpkg list' shows what is installed, 'kmpkg search TERM' what the sources offer",
				      "%s is not installed, has no history and no source offers it", name);
		goto cleanup;
	}
	if (json_array_size(vers) > 0 && (err = kmpkg_plan_load_host(&host, cli->root, NULL)) != 0)
		goto cleanup;
	avail = available_of(vers, host, rec);
	if (cli->json) {
		json_t *o = json_pack("{s:s, s:b, s:O, s:O, s:b}", "name", name, "installed", rec != NULL, "history", hist,
				      "available", avail, "host_profile", host != NULL);

		if (rec) {
			json_object_set(o, "record", rec);
			json_object_set_new(o, "files_count", json_integer(json_integer_value(json_object_get(rec, "nfiles"))));
		}
		kmpkg_cli_print_json(o);
	} else if (!cli->quiet) {
		printf("name:          %s\n", name);
		if (rec) {
			printf("version:       %s\n", js(rec, "version"));
			if (js(rec, "description"))
				printf("description:   %s\n", js(rec, "description"));
			printf("store entry:   kmpkg/store/%s\n", js(rec, "entry"));
			printf("archive:       sha256 %s\n", js(rec, "sha256"));
			printf("files:         %lld\n", (long long)json_integer_value(json_object_get(rec, "nfiles")));
			if (json_object_size(json_object_get(rec, "deps")) > 0) {
				printf("dependencies: ");
				json_object_foreach(json_object_get(rec, "deps"), k, v)
					printf(" %s %s", k, json_string_value(v));
				printf("\n");
			}
			if (js(rec, "constraint"))
				printf("constraint:    %s\n", js(rec, "constraint"));
			if (json_array_size(json_object_get(rec, "permissions")) > 0) {
				printf("permissions:  ");
				json_array_foreach(json_object_get(rec, "permissions"), i, v)
					printf(" %s", json_string_value(v));
				printf("\n");
			}
			if (json_array_size(json_object_get(rec, "granted_permissions")) > 0) {
				/* --allow-permission grants (kmpkg-install(1)); the rest is host-allowed. */
				printf("granted:      ");
				json_array_foreach(json_object_get(rec, "granted_permissions"), i, v)
					printf(" %s", json_string_value(v));
				printf("\n");
			}
			if (js(json_object_get(rec, "signature"), "status"))
				printf("signature:     %s\n", js(json_object_get(rec, "signature"), "status"));
			printf("installed by:  %s\n", js(rec, "installed_by"));
		} else {
			printf("installed:     no\n");
			if (json_array_size(vers) > 0 && js(json_array_get(vers, 0), "description"))
				printf("description:   %s\n", js(json_array_get(vers, 0), "description"));
		}
		if (json_array_size(avail) > 0) {
			printf("available%s:\n", host ? " (preflight on this host)" : " (no host profile: not checked)");
			json_array_foreach(avail, i, v) {
				printf("  %-12s %-12s %.12s  %s%s%s%s\n", js(v, "version"), js(v, "source"),
				       js(v, "commit") ? js(v, "commit") : "",
				       json_is_true(json_object_get(v, "passes_preflight")) ? "ok" : "incompatible",
				       js(v, "reason") ? ": " : "", js(v, "reason") ? js(v, "reason") : "",
				       json_is_true(json_object_get(v, "installed")) ? "  (installed)" : "");
			}
		}
		if (json_array_size(hist) > 0)
			printf("history:\n");
		json_array_foreach(hist, i, v) {
			printf("  %s  %-8s %s%s%s  %s  %s\n", js(v, "started") ? js(v, "started") : "", js(v, "op"),
			       js(v, "from") ? js(v, "from") : "", js(v, "from") && js(v, "to") ? " \u2192 " : "",
			       js(v, "to") ? js(v, "to") : "", js(v, "outcome") ? js(v, "outcome") : "in flight",
			       js(v, "id"));
		}
	}
	err = 0;
cleanup:
	json_decref(rec);
	json_decref(txns);
	json_decref(hist);
	json_decref(vers);
	json_decref(avail);
	kmpkg_host_free(host);
	kmpkg_state_abort(t);
	kmpkg_state_free(st);
	return err;
}
