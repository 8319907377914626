/* sig: signatures made by the real minisign and openssl CLIs verify; altered
 * files, altered trusted comments, unknown keys and wrong bindings do not;
 * trusted keys are added, listed and removed. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kmpkg/error.h"
#include "kmpkg/sig.h"
#include "sig_parse.h"

static char tmp[256];
static char root[300];
static char pkg[300];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void setup(void)
{
	FILE *f;

	snprintf(tmp, sizeof(tmp), "/tmp/kmpkg-sig-XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(root, sizeof(root), "%s/root", tmp);
	snprintf(pkg, sizeof(pkg), "%s/foo-1.0.0.kmpkg", tmp);
	f = fopen(pkg, "w");
	cr_assert_not_null(f);
	fputs("pretend this is a package\n", f);
	fclose(f);
}

static void teardown(void)
{
	sh("rm -rf '%s'", tmp);
}

TestSuite(sig, .init = setup, .fini = teardown);

/* A minisign key pair tmp/NAME.pub, tmp/NAME.sec; *id gets its key id. */
static void minisign_keys(const char *name, char id[17])
{
	char p[400], line[256];
	FILE *f;
	size_t n;
	int i;

	cr_assert_eq(sh("cd %s && minisign -G -p %s.pub -s %s.sec -W </dev/null >/dev/null 2>&1", tmp, name, name),
		     0);
	snprintf(p, sizeof(p), "%s/%s.pub", tmp, name);
	f = fopen(p, "r");
	cr_assert_not_null(fgets(line, sizeof(line), f));
	fclose(f);
	cr_assert(strncmp(line, "untrusted comment: minisign public key ", 39) == 0);
	/* minisign prints the id without leading zeros (%llX): pad it to 16. */
	n = strcspn(line + 39, " \r\n");
	cr_assert(n >= 1 && n <= 16);
	memset(id, '0', 16);
	for (i = 0; i < (int)n; i++)
		id[16 - n + (size_t)i] = (char)tolower((unsigned char)line[39 + i]);
	id[16] = '\0';
}

static void minisign_sign(const char *key, const char *comment, const char *flags)
{
	cr_assert_eq(sh("cd %s && minisign -S %s -s %s.sec -m %s -t '%s' </dev/null >/dev/null 2>&1", tmp, flags,
			key, pkg, comment),
		     0);
}

static void trust(const char *file)
{
	struct kmpkg_key k;
	char p[400];

	snprintf(p, sizeof(p), "%s/%s", tmp, file);
	cr_assert_eq(kmpkg_sig_key_add(&k, root, p), 0, "%s", kmpkg_error_last()->message);
	kmpkg_key_release(&k);
}

static void check_fails(const char *code, const char *name, const char *version, const char *sha, bool allow)
{
	struct kmpkg_sig_result r;
	int rc = kmpkg_sig_check(root, pkg, NULL, name, version, sha, allow, &r);

	cr_assert_eq(rc, KMPKG_EVERIFY, "rc %d %s", rc, kmpkg_error_last()->message);
	cr_assert_str_eq(kmpkg_error_last()->code, code, "%s", kmpkg_error_last()->message);
	cr_assert_neq(kmpkg_error_last()->next_step[0], '\0');
	cr_assert(!r.verified);
}

static void check_ok(struct kmpkg_sig_result *r, const char *name, const char *version, const char *sha)
{
	int rc = kmpkg_sig_check(root, pkg, NULL, name, version, sha, false, r);

	cr_assert_eq(rc, 0, "%s: %s", kmpkg_error_last()->code, kmpkg_error_last()->message);
	cr_assert(r->verified);
	cr_assert_str_eq(r->status, "verified");
}

static void append(const char *text)
{
	FILE *f = fopen(pkg, "a");

	fputs(text, f);
	fclose(f);
}

Test(sig, unsigned_is_fine_without_trusted_keys)
{
	struct kmpkg_sig_result r;

	cr_assert_eq(kmpkg_sig_check(root, pkg, NULL, "foo", "1.0.0", NULL, false, &r), 0);
	cr_assert(!r.verified);
	cr_assert_str_eq(r.status, "unsigned, no trusted keys");
}

Test(sig, minisign_verifies_and_records_key)
{
	struct kmpkg_sig_result r;
	char id[17];

	minisign_keys("a", id);
	trust("a.pub");
	minisign_sign("a", "name=foo version=1.0.0", "");
	check_ok(&r, "foo", "1.0.0", NULL);
	cr_assert_str_eq(r.kind, "minisign");
	cr_assert_str_eq(r.key_id, id);
	cr_assert_str_eq(r.trusted_comment, "name=foo version=1.0.0");
	cr_assert(strstr(r.signature, ".minisig") != NULL);
}

Test(sig, minisign_refuses_tampered_file)
{
	char id[17];

	minisign_keys("a", id);
	trust("a.pub");
	minisign_sign("a", "name=foo version=1.0.0", "");
	append("x");
	check_fails("E_SIGNATURE_INVALID", "foo", "1.0.0", NULL, true);
}

Test(sig, minisign_refuses_tampered_trusted_comment)
{
	char id[17];

	minisign_keys("a", id);
	trust("a.pub");
	minisign_sign("a", "name=foo version=1.0.0", "");
	cr_assert_eq(sh("sed -i 's/^trusted comment: .*/trusted comment: name=foo version=2.0.0/' %s.minisig", pkg), 0);
	check_fails("E_SIGNATURE_INVALID", "foo", "2.0.0", NULL, false);
	cr_assert(strstr(kmpkg_error_last()->message, "trusted comment") != NULL);
}

Test(sig, minisign_refuses_unknown_key)
{
	char a[17], b[17];

	minisign_keys("a", a);
	minisign_keys("b", b);
	trust("a.pub");
	minisign_sign("b", "name=foo version=1.0.0", "");
	check_fails("E_SIGNATURE_UNKNOWN_KEY", "foo", "1.0.0", NULL, true);
	cr_assert(strstr(kmpkg_error_last()->message, b) != NULL);
}

Test(sig, minisign_binding_name_and_version)
{
	char id[17];

	minisign_keys("a", id);
	trust("a.pub");
	minisign_sign("a", "name=foo version=1.0.0", "");
	check_fails("E_SIGNATURE_MISMATCH", "bar", "1.0.0", NULL, false);
	check_fails("E_SIGNATURE_MISMATCH", "foo", "1.0.1", NULL, false);
	check_fails("E_SIGNATURE_MISMATCH", "fo", "1.0.0", NULL, false);
}

Test(sig, minisign_binding_sha256)
{
	struct kmpkg_sig_result r;
	char id[17], cmt[200], sha[65];
	FILE *p;

	minisign_keys("a", id);
	trust("a.pub");
	snprintf(cmt, sizeof(cmt), "sha256sum %s", pkg);
	p = popen(cmt, "r");
	cr_assert_eq(fread(sha, 1, 64, p), 64);
	sha[64] = '\0';
	pclose(p);
	snprintf(cmt, sizeof(cmt), "name=foo sha256=%s", sha);
	minisign_sign("a", cmt, "");
	check_ok(&r, "foo", "1.0.0", sha);
	check_ok(&r, "foo", NULL, NULL);
	check_fails("E_SIGNATURE_MISMATCH", "foo", "1.0.0",
		    "0000000000000000000000000000000000000000000000000000000000000000", false);
}

Test(sig, minisign_legacy_signature)
{
	struct kmpkg_sig_result r;
	char id[17];

	minisign_keys("a", id);
	trust("a.pub");
	minisign_sign("a", "name=foo version=1.0.0", "-l");
	cr_assert_eq(sh("sed -n 2p %s.minisig | base64 -d | head -c 2 | grep -qx Ed", pkg), 0, "not legacy");
	check_ok(&r, "foo", "1.0.0", NULL);
	cr_assert_str_eq(r.key_id, id);
	append("x");
	check_fails("E_SIGNATURE_INVALID", "foo", "1.0.0", NULL, false);
}

Test(sig, missing_signature_once_a_key_is_trusted)
{
	struct kmpkg_sig_result r;
	char id[17];

	minisign_keys("a", id);
	trust("a.pub");
	check_fails("E_SIGNATURE_MISSING", "foo", "1.0.0", NULL, false);
	cr_assert_eq(kmpkg_sig_check(root, pkg, NULL, "foo", "1.0.0", NULL, true, &r), 0);
	cr_assert(!r.verified);
	cr_assert_str_eq(r.status, "unsigned, allowed");
}

Test(sig, allow_unsigned_never_waives_a_bad_signature)
{
	char id[17];

	minisign_keys("a", id);
	trust("a.pub");
	cr_assert_eq(sh("printf 'untrusted comment: x\\nnot base64!\\ntrusted comment: y\\nzz\\n' > %s.minisig", pkg),
		     0);
	check_fails("E_SIGNATURE_INVALID", "foo", "1.0.0", NULL, true);
}

Test(sig, explicit_signature_path)
{
	struct kmpkg_sig_result r;
	char id[17], other[400];

	minisign_keys("a", id);
	trust("a.pub");
	minisign_sign("a", "name=foo version=1.0.0", "");
	snprintf(other, sizeof(other), "%s/elsewhere.minisig", tmp);
	cr_assert_eq(sh("mv %s.minisig %s", pkg, other), 0);
	cr_assert_eq(kmpkg_sig_check(root, pkg, other, "foo", "1.0.0", NULL, false, &r), 0);
	cr_assert(r.verified);
	cr_assert_str_eq(r.signature, other);
	cr_assert_eq(kmpkg_sig_check(root, pkg, "/nonexistent.sig", "foo", "1.0.0", NULL, true, &r),
		     KMPKG_ENOTFOUND);
}

static void openssl_keys(const char *name, const char *alg)
{
	cr_assert_eq(sh("cd %s && openssl genpkey %s -out %s.key 2>/dev/null && openssl pkey -in %s.key -pubout -out %s.pem",
			tmp, alg, name, name, name),
		     0);
}

static void openssl_sign(const char *name)
{
	cr_assert_eq(sh("cd %s && openssl dgst -sha256 -sign %s.key -out %s.sig %s", tmp, name, pkg, pkg), 0);
}

static void pem_id(const char *name, char id[17])
{
	char cmd[500];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "openssl pkey -pubin -in %s/%s.pem -outform DER | sha256sum", tmp, name);
	p = popen(cmd, "r");
	cr_assert_eq(fread(id, 1, 16, p), 16);
	id[16] = '\0';
	pclose(p);
}

Test(sig, openssl_rsa)
{
	struct kmpkg_sig_result r;
	char id[17];

	openssl_keys("rsa", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048");
	trust("rsa.pem");
	pem_id("rsa", id);
	openssl_sign("rsa");
	check_ok(&r, "foo", "1.0.0", NULL);
	cr_assert_str_eq(r.kind, "openssl");
	cr_assert_str_eq(r.key_id, id);
	append("x");
	check_fails("E_SIGNATURE_INVALID", "foo", "1.0.0", NULL, true);
}

Test(sig, openssl_ec_p256_and_wrong_key)
{
	struct kmpkg_sig_result r;
	char id[17];

	openssl_keys("ec", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256");
	openssl_keys("ec2", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256");
	trust("ec.pem");
	pem_id("ec", id);
	openssl_sign("ec");
	check_ok(&r, "foo", "1.0.0", NULL);
	cr_assert_str_eq(r.key_id, id);
	openssl_sign("ec2");
	check_fails("E_SIGNATURE_INVALID", "foo", "1.0.0", NULL, false);
}

Test(sig, openssl_signature_without_pem_keys_is_unknown)
{
	char id[17];

	minisign_keys("a", id);
	trust("a.pub");
	openssl_keys("ec", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256");
	openssl_sign("ec");
	check_fails("E_SIGNATURE_UNKNOWN_KEY", "foo", "1.0.0", NULL, false);
}

Test(sig, key_add_list_remove)
{
	struct kmpkg_keylist *l = NULL;
	struct kmpkg_key k;
	char a[17], upper[17], pem[17], p[400];
	int i;

	minisign_keys("a", a);
	openssl_keys("ec", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256");
	pem_id("ec", pem);
	trust("a.pub");
	trust("a.pub"); /* again: fine */
	trust("ec.pem");
	cr_assert_eq(kmpkg_sig_key_list(&l, root), 0);
	cr_assert_eq(l->n, 2);
	cr_assert(strcmp(l->v[0].id, l->v[1].id) < 0);
	for (i = 0; i < 2; i++) {
		if (strcmp(l->v[i].type, "minisign") == 0) {
			cr_assert_str_eq(l->v[i].id, a);
			cr_assert_str_eq(l->v[i].algorithm, "ed25519");
		} else {
			cr_assert_str_eq(l->v[i].id, pem);
			cr_assert_str_eq(l->v[i].algorithm, "ec-prime256v1");
		}
	}
	kmpkg_keylist_free(l);
	snprintf(p, sizeof(p), "%s/kmpkg/keys/%s.pub", root, a);
	cr_assert_eq(access(p, R_OK), 0);
	cr_assert_eq(sh("ls -A %s/kmpkg/keys | grep -c . | grep -qx 2", root), 0, "temp files left");

	for (i = 0; i < 17; i++)
		upper[i] = (char)toupper((unsigned char)a[i]);
	cr_assert_eq(kmpkg_sig_key_remove(&k, root, upper), 0);
	cr_assert_str_eq(k.id, a);
	kmpkg_key_release(&k);
	cr_assert_neq(access(p, F_OK), 0);
	cr_assert_eq(kmpkg_sig_key_remove(&k, root, upper), KMPKG_ENOTFOUND);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_KEY_NOT_FOUND");
	cr_assert_eq(kmpkg_sig_key_list(&l, root), 0);
	cr_assert_eq(l->n, 1);
	kmpkg_keylist_free(l);
}

Test(sig, key_add_refuses_private_and_garbage)
{
	struct kmpkg_key k;
	char id[17], p[400];

	minisign_keys("a", id);
	openssl_keys("ec", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256");
	openssl_keys("ed", "-algorithm ED25519");
	snprintf(p, sizeof(p), "%s/ec.key", tmp);
	cr_assert_eq(kmpkg_sig_key_add(&k, root, p), KMPKG_EUSAGE);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_KEY_PRIVATE");
	snprintf(p, sizeof(p), "%s/a.sec", tmp);
	cr_assert_eq(kmpkg_sig_key_add(&k, root, p), KMPKG_EUSAGE);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_KEY_PRIVATE");
	snprintf(p, sizeof(p), "%s/ed.pem", tmp);
	cr_assert_eq(kmpkg_sig_key_add(&k, root, p), KMPKG_EUSAGE);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_KEY_UNSUPPORTED");
	cr_assert_eq(kmpkg_sig_key_add(&k, root, pkg), KMPKG_EUSAGE);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_KEY_INVALID");
	snprintf(p, sizeof(p), "%s/none.pub", tmp);
	cr_assert_eq(kmpkg_sig_key_add(&k, root, p), KMPKG_ENOTFOUND);
}

Test(sig, cli_key_commands)
{
	const char *bin = getenv("KMPKG_BIN");
	char id[17], line[1024], cmd[1024];
	FILE *p;

	cr_assert_not_null(bin);
	minisign_keys("a", id);
	cr_assert_eq(sh("%s --root %s key add %s/a.pub | grep -q %s", bin, root, tmp, id), 0);
	snprintf(cmd, sizeof(cmd), "%s --root %s --json key list", bin, root);
	p = popen(cmd, "r");
	cr_assert_not_null(fgets(line, sizeof(line), p));
	cr_assert_eq(pclose(p), 0);
	cr_assert(strstr(line, "{\"keys\":[{\"id\":\"") == line, "%s", line);
	cr_assert(strstr(line, id) != NULL);
	cr_assert_eq(sh("%s --root %s key list | grep -q '^%s  minisign'", bin, root, id), 0);
	cr_assert_eq(sh("%s --root %s key remove %s >/dev/null", bin, root, id), 0);
	cr_assert_eq(sh("%s --root %s key remove %s 2>/dev/null", bin, root, id), 9);
	cr_assert_eq(sh("%s --root %s key add %s 2>/dev/null", bin, root, pkg), 2);
	cr_assert_eq(sh("%s --root %s key frob 2>/dev/null", bin, root), 2);
	cr_assert_eq(sh("%s --root %s --json key remove 0123456789abcdef | grep -q E_KEY_NOT_FOUND", bin, root), 0);
}

/* The text parsers alone (src/sig_parse.h), on the fuzz seeds' key and signature. */
static char *slurp(const char *rel)
{
	char p[1024];
	long n;
	char *t;
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", getenv("KMPKG_SRCDIR"), rel);
	f = fopen(p, "rb");
	cr_assert_not_null(f, "%s", p);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	t = malloc((size_t)n + 1);
	cr_assert_not_null(t);
	cr_assert_eq(fread(t, 1, (size_t)n, f), (size_t)n);
	t[n] = '\0';
	fclose(f);
	return t;
}

Test(sig, parse_minisign_texts)
{
	struct kmpkg_minisign_key k;
	struct kmpkg_minisig ms;
	char *t = slurp("fixtures/fuzz/minisign/key.pub");
	char bad[] = "untrusted comment: x\nRUSDOjBg\ntrusted comment: y\nAAAA\n";

	cr_assert(kmpkg_sig_parse_pub(&k, t));
	cr_assert_str_eq(k.comment, "minisign public key 235F970460303A83");
	cr_assert_eq(k.kid[0], 0x83);
	cr_assert_eq(k.kid[7], 0x23);
	free(t);
	t = slurp("fixtures/fuzz/minisign/pkg.minisig");
	cr_assert_eq(kmpkg_sig_parse_minisig(&ms, t, "pkg.minisig"), 0);
	cr_assert_eq(ms.alg[1], 'D');
	cr_assert_eq(memcmp(ms.kid, k.kid, 8), 0);
	cr_assert(strncmp(ms.trusted_comment, "name=hello version=1.0.0 sha256=21d0", 36) == 0);
	cr_assert_eq(kmpkg_sig_check_binding(ms.trusted_comment, "hello", "1.0.0", NULL,
					     "21d0730ecf98500368243368e6a1798cbf373b49e4641fc2de65beb9f97e5706",
					     "pkg.minisig"), 0);
	cr_assert_eq(kmpkg_sig_check_binding(ms.trusted_comment, "hellO", NULL, NULL,
					     "21d0730ecf98500368243368e6a1798cbf373b49e4641fc2de65beb9f97e5706",
					     "pkg.minisig"), KMPKG_EVERIFY);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_SIGNATURE_MISMATCH");
	free(t);
	cr_assert_eq(kmpkg_sig_parse_minisig(&ms, bad, "bad.minisig"), KMPKG_EVERIFY);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_SIGNATURE_INVALID");
}
