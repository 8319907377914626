/* preflight_cli: `kmpkg preflight` through the sanitized binary (KMPKG_BIN). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct run {
	int status;
	char *out, *err;
};

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = calloc(1, 1 << 16);
	size_t n;

	cr_assert_not_null(f);
	n = fread(s, 1, (1 << 16) - 1, f);
	s[n] = '\0';
	fclose(f);
	return s;
}

/* Runs kmpkg with args (NULL-terminated) from the source tree. */
static struct run kmpkg(const char *const *args)
{
	const char *bin = getenv("KMPKG_BIN"), *top = getenv("KMPKG_SRCDIR");
	char dir[] = "/tmp/kmpkg-pf-XXXXXX", out[64], err[64];
	const char *argv[32];
	struct run r;
	pid_t pid;
	int i, st;

	cr_assert_not_null(bin);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(err, sizeof(err), "%s/err", dir);
	argv[0] = bin;
	for (i = 0; args[i] && i < 30; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600), e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(o, 1);
		dup2(e, 2);
		if (top && chdir(top) != 0)
			_exit(127);
		setenv("ASAN_OPTIONS", "detect_leaks=1", 1);
		unsetenv("KMPKG_ROOT");
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	r.status = WEXITSTATUS(st);
	r.out = slurp(out);
	r.err = slurp(err);
	unlink(out);
	unlink(err);
	rmdir(dir);
	return r;
}

static void release(struct run *r)
{
	free(r->out);
	free(r->err);
}

#define M(f) "fixtures/manifests/" f

Test(preflight_cli, valid_manifest_passes)
{
	const char *args[] = { "preflight", "--host", "fixtures/hosts/valid.yaml", M("valid-full.yaml"), M("valid-minimal.yaml"), "fixtures/plugins/json-helpers-1.1.0/kmpkg.yaml", NULL };
	struct run r = kmpkg(args);

	cr_assert_eq(r.status, 0, "status %d: %s", r.status, r.err);
	cr_assert(strstr(r.out, "3 files checked: 0 errors, 0 warnings") != NULL, "%s", r.out);
	release(&r);
}

Test(preflight_cli, error_exits_3_with_text_diagnostic)
{
	const char *args[] = { "preflight", "--host", "fixtures/hosts/valid.yaml", M("valid-full.yaml"), "fixtures/plugins/json-helpers-1.1.0/kmpkg.yaml", M("bad-name.yaml"), NULL };
	struct run r = kmpkg(args);

	cr_assert_eq(r.status, 3);
	cr_assert(strstr(r.out, "fixtures/manifests/bad-name.yaml:2:7: error[MANIFEST_INVALID_VALUE]: ") == r.out,
		  "%s", r.out);
	cr_assert(strstr(r.out, "  next step: ") != NULL);
	cr_assert(strstr(r.out, "1 error, 0 warnings") != NULL);
	release(&r);
}

Test(preflight_cli, json_document)
{
	const char *args[] = { "preflight", "--host", "fixtures/hosts/valid.yaml", "--format", "json", M("duplicate-key.yaml"), M("unknown-field.yaml"), NULL };
	struct run r = kmpkg(args);
	json_error_t je;
	json_t *j, *d0;

	cr_assert_eq(r.status, 3);
	j = json_loads(r.out, 0, &je);
	cr_assert_not_null(j, "not one JSON document: %s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(j, "errors")), 1);
	cr_assert_eq(json_integer_value(json_object_get(j, "warnings")), 1);
	cr_assert_eq(json_array_size(json_object_get(j, "files")), 2);
	d0 = json_array_get(json_object_get(j, "diagnostics"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(d0, "code")), "YAML_DUPLICATE_KEY");
	cr_assert_str_eq(json_string_value(json_object_get(d0, "field")), "/dependencies/json-helpers");
	cr_assert_eq(json_integer_value(json_object_get(d0, "line")), 6);
	cr_assert_eq(json_integer_value(json_object_get(d0, "column")), 3);
	json_decref(j);
	release(&r);
}

Test(preflight_cli, global_json_flag)
{
	const char *args[] = { "--json", "preflight", "--host", "fixtures/hosts/valid.yaml", M("valid-minimal.yaml"), NULL };
	struct run r = kmpkg(args);
	json_error_t je;
	json_t *j;

	cr_assert_eq(r.status, 0);
	j = json_loads(r.out, 0, &je);
	cr_assert_not_null(j, "%s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(j, "errors")), 0);
	json_decref(j);
	release(&r);
}

Test(preflight_cli, github_annotations)
{
	const char *args[] = { "preflight", "--host", "fixtures/hosts/valid.yaml", M("two-documents.yaml"), "--format=github", NULL };
	struct run r = kmpkg(args);

	cr_assert_eq(r.status, 3);
	cr_assert(strstr(r.out, "::error file=fixtures/manifests/two-documents.yaml,line=4,col=1,"
				"title=YAML_MULTIPLE_DOCUMENTS::") == r.out, "%s", r.out);
	release(&r);
}

Test(preflight_cli, warnings_fail_only_when_strict)
{
	const char *lax[] = { "preflight", "--host", "fixtures/hosts/valid.yaml", M("unknown-field.yaml"), NULL };
	const char *strict[] = { "preflight", "--host", "fixtures/hosts/valid.yaml", "--strict", M("unknown-field.yaml"), NULL };
	struct run r = kmpkg(lax);

	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "warning[MANIFEST_UNKNOWN_FIELD]") != NULL);
	release(&r);
	r = kmpkg(strict);
	cr_assert_eq(r.status, 3);
	release(&r);
}

Test(preflight_cli, missing_file_exits_9)
{
	const char *args[] = { "preflight", "--host", "fixtures/hosts/valid.yaml", M("valid-full.yaml"), "no/such/kmpkg.yaml", NULL };
	struct run r = kmpkg(args);

	cr_assert_eq(r.status, 9);
	cr_assert(strstr(r.err, "error[E_NOT_FOUND]") != NULL, "%s", r.err);
	cr_assert_str_eq(r.out, "");
	release(&r);
}

Test(preflight_cli, usage_errors_exit_2)
{
	const char *none[] = { "preflight", NULL };
	const char *fmt[] = { "preflight", "--format", "xml", M("valid-full.yaml"), NULL };
	struct run r = kmpkg(none);

	cr_assert_eq(r.status, 2);
	release(&r);
	r = kmpkg(fmt);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "E_USAGE") != NULL);
	release(&r);
}

Test(preflight_cli, host_profile_findings_are_reported)
{
	const char *ok[] = { "preflight", "--host", "fixtures/hosts/valid.yaml", M("valid-full.yaml"), "fixtures/plugins/json-helpers-1.1.0/kmpkg.yaml", NULL };
	const char *bad[] = { "preflight", "--host", "fixtures/hosts/tier-not-listed.yaml", M("valid-full.yaml"), "fixtures/plugins/json-helpers-1.1.0/kmpkg.yaml", NULL };
	struct run r = kmpkg(ok);

	cr_assert_eq(r.status, 0, "%s", r.out);
	release(&r);
	r = kmpkg(bad);
	cr_assert_eq(r.status, 3);
	cr_assert(strstr(r.out, "tier-not-listed.yaml:4:7: error[HOST_INVALID_VALUE]") != NULL, "%s", r.out);
	release(&r);
}

Test(preflight_cli, hostile_input_is_fast)
{
	char dir[] = "/tmp/kmpkg-pf-XXXXXX", *path = NULL;
	const char *args[] = { "preflight", "--host", "fixtures/hosts/valid.yaml", NULL, NULL };
	struct run r;
	FILE *f;
	int i;

	cr_assert_not_null(mkdtemp(dir));
	cr_assert(asprintf(&path, "%s/deep.yaml", dir) > 0);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	for (i = 0; i < 40000; i++)
		fputc('[', f);
	fclose(f);
	args[3] = path;
	r = kmpkg(args);
	cr_assert_eq(r.status, 3);
	cr_assert(strstr(r.out, ":1:33: error[YAML_TOO_DEEP]") != NULL, "%s", r.out);
	release(&r);
	unlink(path);
	rmdir(dir);
	free(path);
}
