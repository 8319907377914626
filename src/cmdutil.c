/* Shared option parsing and rendering for the engine's commands (src/cmdutil.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmdutil.h"
#include "kmpkg/buf.h"
#include "kmpkg/error.h"
#include "kmpkg/fsutil.h"

/* Progress on a terminal only, one line per phase as it starts (apt's
 * "Unpacking ..." lines): "  [2/5 verify] installing hello 1.0.0". */
static void show_phase(void *ctx, const char *phase, const json_t *rec)
{
	char *what = kmpkg_cmdutil_describe(rec);

	(void)ctx;
	fprintf(stderr, "  [%d/5 %s] %s\n", kmpkg_txn_phase_index(phase), phase, what ? what : "");
	free(what);
}

int kmpkg_cmdutil_parse(struct kmpkg_cmdopts *out, struct kmpkg_cli *cli, const char *cmd, unsigned extra,
			int argc, char **argv, const char *usage)
{
	static const struct option longopts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "correlation-id", required_argument, NULL, 'c' },
		{ "allow-unsigned", no_argument, NULL, 'u' },
		{ "allow-permission", required_argument, NULL, 'p' },
		{ "signature", required_argument, NULL, 's' },
		{ "force", no_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "keep", required_argument, NULL, 'k' },
		{ "host", required_argument, NULL, 'H' },
		{ "reinstall", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(out, 0, sizeof(*out));
	out->txn.root = cli->root;
	out->txn.wait_secs = cli->wait_secs;
	if (!cli->quiet && !cli->json && isatty(STDERR_FILENO))
		out->txn.on_phase = show_phase;
	out->keep = -1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "nfh", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			out->txn.dry_run = true;
			break;
		case 'c':
			out->txn.correlation_id = optarg;
			break;
		case 'u':
			/* Said loudly, whatever --quiet: it weakens what the operator's keys protect. */
			if (!out->txn.allow_unsigned)
				fprintf(stderr, "kmpkg: warning: --allow-unsigned: packages without a signature "
						"will be installed although signing keys are trusted; use it for local "
						"development only\n");
			out->txn.allow_unsigned = true;
			break;
		case 'p': {
			char **v = realloc(out->txn.allow_permissions,
					   (out->txn.n_allow_permissions + 1) * sizeof(*v));

			if (!v)
				abort();
			v[out->txn.n_allow_permissions++] = optarg;
			out->txn.allow_permissions = v;
			break;
		}
		case 's':
			if (!(extra & KMPKG_OPT_SIGNATURE))
				goto bad;
			out->txn.signature = optarg;
			break;
		case 'H':
			if (!(extra & KMPKG_OPT_HOST))
				goto bad;
			out->txn.host_file = optarg;
			break;
		case 'r':
			if (!(extra & KMPKG_OPT_REINSTALL))
				goto bad;
			out->txn.reinstall = true;
			break;
		case 'f':
			if (!(extra & KMPKG_OPT_FORCE))
				goto bad;
			out->txn.force = true;
			break;
		case 't':
			if (!(extra & KMPKG_OPT_TO))
				goto bad;
			out->to = optarg;
			break;
		case 'k': {
			char *end;
			long k;

			if (!(extra & KMPKG_OPT_KEEP))
				goto bad;
			k = strtol(optarg, &end, 10);
			if (*end || end == optarg || k < 1 || k > 100000)
				return kmpkg_cli_usage(cmd, "--keep takes a number of generations >= 1, not '%s'", optarg);
			out->keep = (int)k;
			break;
		}
		case 'h':
			printf("usage: kmpkg %s\n", usage);
			return 1;
		default:
			goto bad;
		}
	}
	out->first_arg = optind;
	return 0;
bad:
	return kmpkg_cli_usage(cmd, "unknown or misplaced option '%s'; usage: kmpkg %s",
			       argv[optind - 1] ? argv[optind - 1] : "?", usage);
}

void kmpkg_cmdutil_release(struct kmpkg_cmdopts *o)
{
	free(o->txn.allow_permissions);
	o->txn.allow_permissions = NULL;
}

static const char *js(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static const char *verb(const char *op, bool done)
{
	if (!op)
		return "changing";
	if (done)
		return op;
	if (strcmp(op, "install") == 0)
		return "installing";
	if (strcmp(op, "update") == 0)
		return "updating";
	if (strcmp(op, "remove") == 0)
		return "removing";
	if (strcmp(op, "rollback") == 0)
		return "rolling back";
	if (strcmp(op, "gc") == 0)
		return "collecting garbage";
	return op;
}

static void describe_changes(struct kmpkg_buf *b, const json_t *changes)
{
	const json_t *c;
	size_t i;

	json_array_foreach(changes, i, c) {
		const char *from = js(c, "from"), *to = js(c, "to");

		kmpkg_buf_printf(b, "%s%s", i ? ", " : " ", js(c, "name"));
		if (json_is_true(json_object_get(c, "reinstalled")))
			kmpkg_buf_printf(b, " %s (reinstalled)", to ? to : "?");
		else if (from && to)
			kmpkg_buf_printf(b, " %s \u2192 %s", from, to);
		else if (to)
			kmpkg_buf_printf(b, " %s", to);
		else if (from)
			kmpkg_buf_printf(b, " %s \u2192 (removed)", from);
	}
}

char *kmpkg_cmdutil_describe(const json_t *rec)
{
	struct kmpkg_buf b = KMPKG_BUF_INIT;
	const json_t *changes = json_object_get(rec, "changes");
	const json_t *v;
	size_t i;

	kmpkg_buf_puts(&b, verb(js(rec, "op"), js(rec, "outcome") != NULL));
	if (json_array_size(changes) > 0) {
		describe_changes(&b, changes);
	} else if (json_is_array(json_object_get(rec, "targets"))) {
		json_array_foreach(json_object_get(rec, "targets"), i, v)
			if (json_is_string(v))
				kmpkg_buf_printf(&b, "%s%s", i ? ", " : " ", json_string_value(v));
	}
	if (!b.ptr)
		kmpkg_buf_puts(&b, "");
	return kmpkg_buf_detach(&b);
}

void kmpkg_cmdutil_print_summary(const struct kmpkg_cli *cli, json_t *s)
{
	const char *outcome, *op;
	const json_t *w;
	size_t i;
	struct kmpkg_buf b = KMPKG_BUF_INIT;

	if (!s)
		return;
	if (cli->json) {
		kmpkg_cli_print_json(s);
		return;
	}
	outcome = js(s, "outcome") ? js(s, "outcome") : "?";
	op = js(s, "op");
	describe_changes(&b, json_object_get(s, "changes"));
	if (strcmp(outcome, "planned") == 0) {
		kmpkg_cli_say(cli, "would %s:%s\n", op ? op : "change", b.ptr ? b.ptr : " nothing");
		if (json_integer_value(json_object_get(s, "generation")) > 0 && b.ptr)
			kmpkg_cli_say(cli, "  as generation %lld (dry run: nothing changed)\n",
				      (long long)json_integer_value(json_object_get(s, "generation")));
	} else if (js(s, "reason") && strcmp(js(s, "reason"), "nothing to do") == 0) {
		kmpkg_cli_say(cli, "nothing to do (transaction %s)\n", js(s, "id"));
	} else if (js(s, "reason") && strcmp(js(s, "reason"), "already active") == 0) {
		kmpkg_cli_say(cli, "generation %lld is already active\n",
			      (long long)json_integer_value(json_object_get(s, "generation")));
	} else {
		kmpkg_cli_say(cli, "%s:%s\n", outcome, b.ptr ? b.ptr : "");
		kmpkg_cli_say(cli, "  generation %lld is active (transaction %s)\n",
			      (long long)json_integer_value(json_object_get(s, "generation")), js(s, "id"));
	}
	/* Preflight warnings (e.g. NO_HOST_PROFILE): on stderr, like main's errors. */
	json_array_foreach(json_object_get(s, "warnings"), i, w)
		if (!cli->quiet)
			fprintf(stderr, "kmpkg: warning[%s]: %s\n", js(w, "code"), js(w, "message"));
	kmpkg_buf_release(&b);
	json_decref(s);
}

char *kmpkg_cmdutil_cache_dir(const char *root)
{
	char *kdir = kmpkg_fsutil_join(root, "kmpkg"), *cache = kmpkg_fsutil_join(kdir, "cache");

	free(kdir);
	return cache;
}

int kmpkg_cmdutil_open_reader(struct kmpkg_state **out, const char *root)
{
	int err;

	*out = NULL;
	err = kmpkg_state_open(out, root, false);
	if (err == KMPKG_ENOTFOUND) {
		kmpkg_error_clear();
		*out = NULL;
		return 0;
	}
	if (err || !kmpkg_txn_needs_recovery(root, *out))
		return err;
	/* Something to finish first: with our environment closed (one per
	 * process), then opened again on the recovered state. */
	kmpkg_state_free(*out);
	*out = NULL;
	kmpkg_txn_recover_if_idle(root);
	return kmpkg_state_open(out, root, false);
}

static int collect(void *ctx, const void *key, size_t klen, json_t *val)
{
	(void)key;
	(void)klen;
	json_array_append_new(ctx, val);
	return 0;
}

static int by_order_desc(const void *a, const void *b)
{
	json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "order"));
	json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "order"));

	return x < y ? 1 : x > y ? -1 : 0;
}

int kmpkg_cmdutil_txns(json_t **out, struct kmpkg_state_txn *t)
{
	json_t *a = json_array(), *sorted = json_array(), **v;
	size_t i, n;
	int err;

	*out = NULL;
	if ((err = kmpkg_state_foreach(t, KMPKG_DB_TXNS, NULL, 0, false, collect, a)) != 0) {
		json_decref(a);
		json_decref(sorted);
		return err;
	}
	n = json_array_size(a);
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		abort();
	for (i = 0; i < n; i++)
		v[i] = json_array_get(a, i);
	qsort(v, n, sizeof(*v), by_order_desc);
	for (i = 0; i < n; i++)
		json_array_append(sorted, v[i]);
	free(v);
	json_decref(a);
	*out = sorted;
	return 0;
}

struct prefix_ctx {
	json_t *found;
	size_t n;
	const char *exact;
};

static int prefix_match(void *ctx, const void *key, size_t klen, json_t *val)
{
	struct prefix_ctx *p = ctx;

	if (strlen(p->exact) == klen) {
		/* An exact id wins over longer ids that share it as a prefix. */
		json_decref(p->found);
		p->found = val;
		p->n = 1;
		return 1;
	}
	(void)key;
	p->n++;
	if (!p->found)
		p->found = val;
	else
		json_decref(val);
	return 0;
}

int kmpkg_cmdutil_find_txn(json_t **out, struct kmpkg_state_txn *t, const char *prefix)
{
	struct prefix_ctx p = { NULL, 0, prefix };
	int err;

	*out = NULL;
	if (!*prefix)
		return kmpkg_cli_usage(NULL, "empty transaction id");
	if ((err = kmpkg_state_foreach(t, KMPKG_DB_TXNS, prefix, strlen(prefix), false, prefix_match, &p)) != 0) {
		json_decref(p.found);
		return err;
	}
	if (p.n == 0)
		return kmpkg_error_set(KMPKG_ENOTFOUND, "E_TXN_NOT_FOUND", NULL, "'kmpkg history' lists transactions",
				       "no transaction with id %s", prefix);
	if (p.n > 1) {
		json_decref(p.found);
		return kmpkg_error_set(KMPKG_EUSAGE, "E_AMBIGUOUS_ID", NULL, "give more characters of the id",
				       "%zu transactions start with %s", p.n, prefix);
	}
	*out = p.found;
	return 0;
}
