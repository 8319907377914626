/*
 * kmpkg preflight MANIFEST... [--host FILE] [--format text|json|github|sarif]
 * [--strict] [--changed-since REV] [--installed] [--no-index]: loads the host
 * profile, every manifest (kmpkg.yaml, source index file or .kmpkg package)
 * and, when the root has state, the sources' index cache for the plugins
 * they name (dependencies and next steps, src/preflight.c), chooses
 * which to check (all, or with --changed-since those changed in git and those
 * depending on a changed one), checks them (src/preflight.c) and renders the
 * findings; exit 3 when any is an error (or, with --strict, a warning).
 */
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmdutil.h"
#include "kmpkg/buf.h"
#include "kmpkg/changed.h"
#include "kmpkg/diag.h"
#include "kmpkg/error.h"
#include "kmpkg/manifest.h"
#include "kmpkg/preflight.h"
#include "kmpkg/sarif.h"

enum format { FMT_TEXT, FMT_JSON, FMT_GITHUB, FMT_SARIF };

/* Why a file is (not) checked; with --changed-since only. */
enum reason { R_ALL, R_UNCHANGED, R_ADDED, R_MODIFIED, R_OUTSIDE, R_DEPENDENT };

static const char *const reason_names[] = { "checked", "unchanged", "added", "modified", "outside-repository",
					    "depends-on-changed" };

struct run {
	const char *host_path;
	struct kmpkg_host *host;
	char **files;
	int nfiles;
	struct kmpkg_manifest **m;      /* nfiles entries, NULL when the file has schema errors */
	struct kmpkg_diags *fd;         /* nfiles per-file diagnostic lists (schema findings) */
	enum reason *why;
	struct kmpkg_manifest **installed;
	size_t ninstalled;
	struct kmpkg_manifest **gone;   /* manifests deleted since REV */
	size_t ngone;
	json_t *index;                  /* the root's index cache (ctx.index), or NULL */
	const char *index_root;         /* the root it came from, or NULL */
};

static void help(void)
{
	printf("usage: kmpkg preflight MANIFEST... [--host HOSTFILE] [--format text|json|github|sarif]\n"
	       "                       [--strict] [--changed-since REV] [--installed] [--no-index]\n"
	       "Checks manifests (kmpkg.yaml, source index files, .kmpkg packages) against a host\n"
	       "profile, each other and the sources' index of the root (--root, KMPKG_ROOT);\n"
	       "exits 3 if any finding is an error (--strict: or a warning).\n"
	       "See kmpkg-preflight(1), kmpkg-manifest(5), kmpkg-host(5).\n");
}

static bool checked(const struct run *r, int i)
{
	return r->why[i] != R_UNCHANGED;
}

static int copy_diags(struct kmpkg_diags *dst, const struct kmpkg_diags *src)
{
	size_t i;
	int err;

	for (i = 0; i < src->n; i++) {
		const struct kmpkg_diag *x = &src->v[i];

		err = kmpkg_diags_add(dst, x->severity, x->code, x->field, x->file, x->line, x->column,
				      x->required, x->actual, x->next_step, "%s", x->message);
		if (err)
			return err;
	}
	return 0;
}

static int find_host(struct run *r, const struct kmpkg_cli *cli, struct kmpkg_buf *path, struct kmpkg_diags *d)
{
	int err;

	if (!r->host_path) {
		if ((err = kmpkg_buf_printf(path, "%s/kmpkg/host.yaml", cli->root)) != 0)
			return err;
		r->host_path = path->ptr;
	}
	if (access(r->host_path, F_OK) != 0)
		return kmpkg_error_set(KMPKG_EUSAGE, "E_HOST_PROFILE_MISSING", "--host",
				       "pass --host HOSTFILE or write the host profile there (see kmpkg-host(5))",
				       "no host profile at %s", r->host_path);
	err = kmpkg_host_load_file(&r->host, r->host_path, d);
	return err == KMPKG_EUSAGE ? 0 : err; /* its findings are in d; host checks are skipped */
}

/* The root's index cache for the plugins the manifests name; nothing (and
 * 0) for a root without state. */
static int load_index(struct run *r, const struct kmpkg_cli *cli)
{
	struct kmpkg_state *st = NULL;
	struct kmpkg_state_txn *t = NULL;
	int err;

	if ((err = kmpkg_cmdutil_open_reader(&st, cli->root)) != 0 || !st)
		goto cleanup;
	if ((err = kmpkg_state_begin(&t, st, false)) != 0)
		goto cleanup;
	if ((err = kmpkg_preflight_index_load(&r->index, t, r->m, (size_t)r->nfiles)) != 0)
		goto cleanup;
	r->index_root = cli->root;
cleanup:
	kmpkg_state_abort(t);
	kmpkg_state_free(st);
	return err;
}

static bool depends_on(const struct kmpkg_manifest *m, const struct kmpkg_manifest *changed)
{
	size_t i;

	if (!strcmp(m->name, changed->name))
		return false; /* another version of the same plugin is no dependent */
	for (i = 0; i < m->ndeps; i++)
		if (!strcmp(m->deps[i].name, changed->name))
			return true;
	for (i = 0; i < m->requires.n; i++)
		if (kmpkg_strlist_contains(&changed->provides, m->requires.v[i]))
			return true;
	return false;
}

/* --changed-since: mark changed files, then unchanged ones that depend on a
 * changed or deleted manifest (by dependency or required capability). */
static int select_changed(struct run *r, const char *rev)
{
	struct kmpkg_changed_files del = { NULL, 0 };
	struct kmpkg_diags scratch = KMPKG_DIAGS_INIT;
	enum kmpkg_change *ch = NULL;
	size_t k;
	int i, j, err;

	ch = calloc((size_t)r->nfiles, sizeof(*ch));
	r->gone = NULL;
	if (!ch)
		return kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
	err = kmpkg_changed_since(ch, &del, (const char *const *)r->files, (size_t)r->nfiles, rev);
	if (err)
		goto cleanup;
	for (i = 0; i < r->nfiles; i++)
		r->why[i] = ch[i] == KMPKG_CHANGE_ADDED ? R_ADDED :
			    ch[i] == KMPKG_CHANGE_MODIFIED ? R_MODIFIED :
			    ch[i] == KMPKG_CHANGE_OUTSIDE ? R_OUTSIDE : R_UNCHANGED;
	r->gone = calloc(del.n ? del.n : 1, sizeof(*r->gone));
	if (!r->gone) {
		err = kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
		goto cleanup;
	}
	for (k = 0; k < del.n; k++) {
		struct kmpkg_manifest *m = NULL;

		if (kmpkg_manifest_load_buf(&m, del.v[k].path, del.v[k].data, del.v[k].len, &scratch) == 0)
			r->gone[r->ngone++] = m;
		kmpkg_error_clear();
	}
	for (i = 0; i < r->nfiles; i++) {
		if (r->why[i] != R_UNCHANGED || !r->m[i])
			continue;
		for (j = 0; j < r->nfiles && r->why[i] == R_UNCHANGED; j++)
			if ((r->why[j] == R_ADDED || r->why[j] == R_MODIFIED) && r->m[j] &&
			    depends_on(r->m[i], r->m[j]))
				r->why[i] = R_DEPENDENT;
		for (k = 0; k < r->ngone && r->why[i] == R_UNCHANGED; k++)
			if (depends_on(r->m[i], r->gone[k]))
				r->why[i] = R_DEPENDENT;
	}
cleanup:
	free(ch);
	kmpkg_changed_files_release(&del);
	kmpkg_diags_release(&scratch);
	return err;
}

static json_t *json_run(const struct run *r, const char *rev, const struct kmpkg_diags *d)
{
	json_t *files = json_array(), *skipped = json_array(), *changes = json_object();
	int i;

	for (i = 0; i < r->nfiles; i++) {
		json_array_append_new(checked(r, i) ? files : skipped, json_string(r->files[i]));
		if (rev)
			json_object_set_new(changes, r->files[i], json_string(reason_names[r->why[i]]));
	}
	return json_pack("{s:s, s:s?, s:o, s:o, s:o, s:o, s:o, s:I, s:I}", "host", r->host_path, "index",
			 r->index_root, "files", files,
			 "skipped", skipped, "changed_since", rev ? json_string(rev) : json_null(), "changes",
			 changes, "diagnostics", kmpkg_diags_to_json(d), "errors",
			 (json_int_t)kmpkg_diags_count(d, KMPKG_SEV_ERROR), "warnings",
			 (json_int_t)kmpkg_diags_count(d, KMPKG_SEV_WARNING));
}

static void render(enum format fmt, const struct kmpkg_cli *cli, const struct run *r, const char *rev,
		   const struct kmpkg_diags *d)
{
	size_t nerr = kmpkg_diags_count(d, KMPKG_SEV_ERROR), nwarn = kmpkg_diags_count(d, KMPKG_SEV_WARNING);
	char cwd[PATH_MAX];
	int i, n = 0;

	for (i = 0; i < r->nfiles; i++)
		n += checked(r, i);
	switch (fmt) {
	case FMT_JSON:
		kmpkg_cli_print_json(json_run(r, rev, d));
		return;
	case FMT_SARIF:
		kmpkg_cli_print_json(kmpkg_sarif_from_diags(d, kmpkg_preflight_code_help,
							    getcwd(cwd, sizeof(cwd)) ? cwd : NULL, KMPKG_VERSION));
		return;
	case FMT_GITHUB:
		kmpkg_diags_write_github(d, stdout);
		return;
	case FMT_TEXT:
		break;
	}
	kmpkg_diags_write_text(d, stdout, cli->color);
	if (rev)
		kmpkg_cli_say(cli, "%d of %d file%s checked (changed since %s or depending on a change): ", n,
			      r->nfiles, r->nfiles == 1 ? "" : "s", rev);
	else
		kmpkg_cli_say(cli, "%d file%s checked: ", n, n == 1 ? "" : "s");
	kmpkg_cli_say(cli, "%zu error%s, %zu warning%s\n", nerr, nerr == 1 ? "" : "s", nwarn, nwarn == 1 ? "" : "s");
}

static int parse_format(enum format *out, const char *s)
{
	static const char *const names[] = { "text", "json", "github", "sarif" };
	int i;

	for (i = 0; i < 4; i++) {
		if (!strcmp(s, names[i])) {
			*out = (enum format)i;
			return 0;
		}
	}
	return kmpkg_cli_usage("preflight", "unknown --format '%s' (text, json, github or sarif)", s);
}

int kmpkg_cmd_preflight(struct kmpkg_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "format", required_argument, NULL, 'f' },
		{ "strict", no_argument, NULL, 's' },
		{ "changed-since", required_argument, NULL, 'c' },
		{ "installed", no_argument, NULL, 'i' },
		{ "no-index", no_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_buf host_default = KMPKG_BUF_INIT;
	struct kmpkg_preflight_ctx ctx = { 0 };
	struct run r = { 0 };
	const char *rev = NULL;
	enum format fmt = FMT_TEXT;
	bool strict = false, installed = false, fmt_given = false, use_index = true;
	int c, i, err = 0;

	while ((c = getopt_long(argc, argv, "hf:", opts, NULL)) != -1) {
		switch (c) {
		case 'H':
			r.host_path = optarg;
			break;
		case 'f':
			if ((err = parse_format(&fmt, optarg)) != 0)
				return err;
			fmt_given = true;
			break;
		case 's':
			strict = true;
			break;
		case 'c':
			if (!*optarg)
				return kmpkg_cli_usage("preflight", "--changed-since needs a revision");
			rev = optarg;
			break;
		case 'i':
			installed = true;
			break;
		case 'x':
			use_index = false;
			break;
		case 'h':
			help();
			return 0;
		default:
			return kmpkg_cli_usage("preflight", "unknown option");
		}
	}
	if (cli->json && !(fmt_given && fmt == FMT_SARIF))
		fmt = FMT_JSON;
	if (optind >= argc)
		return kmpkg_cli_usage("preflight", "name at least one manifest file");
	r.files = argv + optind;
	r.nfiles = argc - optind;
	r.m = calloc((size_t)r.nfiles, sizeof(*r.m));
	r.fd = calloc((size_t)r.nfiles, sizeof(*r.fd));
	r.why = calloc((size_t)r.nfiles, sizeof(*r.why));
	if (!r.m || !r.fd || !r.why) {
		err = kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
		goto cleanup;
	}

	/* Every input is read before any output: an unreadable file stops the
	 * run and --json still prints exactly one document (the error). */
	if ((err = find_host(&r, cli, &host_default, &d)) != 0)
		goto cleanup;
	for (i = 0; i < r.nfiles; i++) {
		err = kmpkg_preflight_load(&r.m[i], r.files[i], &r.fd[i]);
		if (err && err != KMPKG_EPREFLIGHT)
			goto cleanup;
		err = 0;
	}
	if (installed &&
	    (err = kmpkg_preflight_load_installed(&r.installed, &r.ninstalled, cli->root)) != 0)
		goto cleanup;
	if (use_index && (err = load_index(&r, cli)) != 0)
		goto cleanup;
	if (rev && (err = select_changed(&r, rev)) != 0)
		goto cleanup;

	ctx.host = r.host;
	ctx.given = r.m;
	ctx.ngiven = (size_t)r.nfiles;
	ctx.installed = installed ? r.installed : NULL;
	ctx.ninstalled = r.ninstalled;
	ctx.index = r.index;
	for (i = 0; i < r.nfiles; i++) {
		if (!checked(&r, i))
			continue;
		if ((err = copy_diags(&d, &r.fd[i])) != 0)
			goto cleanup;
		if (!r.m[i])
			continue;
		err = kmpkg_preflight_check_manifest(&ctx, r.m[i], &d);
		if (err && err != KMPKG_EPREFLIGHT)
			goto cleanup;
		err = 0;
	}
	render(fmt, cli, &r, rev, &d);
	if (kmpkg_diags_count(&d, KMPKG_SEV_ERROR) > 0 ||
	    (strict && kmpkg_diags_count(&d, KMPKG_SEV_WARNING) > 0))
		err = -KMPKG_EPREFLIGHT; /* a positive status: the findings are the message */
cleanup:
	for (i = 0; i < r.nfiles; i++) {
		if (r.m)
			kmpkg_manifest_free(r.m[i]);
		if (r.fd)
			kmpkg_diags_release(&r.fd[i]);
	}
	free(r.m);
	free(r.fd);
	free(r.why);
	kmpkg_preflight_manifests_free(r.installed, r.ninstalled);
	kmpkg_preflight_manifests_free(r.gone, r.ngone);
	kmpkg_host_free(r.host);
	json_decref(r.index);
	kmpkg_buf_release(&host_default);
	kmpkg_diags_release(&d);
	return err;
}
