/*
 * libFuzzer target: minisign public keys, .minisig files and the trusted
 * comment's name=/version=/sha256= binding (src/sig_parse.h), each on the
 * whole input. An input that parses as a signature also goes through
 * kmpkg_sig_check end to end, against a package and a trusted key made once
 * in a private directory under $TMPDIR; the seed corpus holds that key's real
 * signatures of the package (fixtures/fuzz/minisign/), so mutations start
 * from signatures that verify.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kmpkg/error.h"
#include "kmpkg/sig.h"
#include "sig_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fixtures/fuzz/minisign/key.pub; pkg.minisig signs PACKAGE with it. */
static const char PUBKEY[] = "untrusted comment: minisign public key 235F970460303A83\n"
			     "RWSDOjBgBJdfI47h80w02xchE5SvhUZ306GL6DcwYvU3hXZGm109s6oy\n";
static const char PACKAGE[] = "fuzz package\n";
static const char PACKAGE_SHA[] = "21d0730ecf98500368243368e6a1798cbf373b49e4641fc2de65beb9f97e5706";

static char *base, *root, *pkg, *sigpath;

static void cleanup_base(void)
{
	char *cmd = NULL;

	if (base && asprintf(&cmd, "rm -rf '%s'", base) >= 0 && system(cmd) != 0)
		fprintf(stderr, "fuzz_minisign: could not remove %s\n", base);
	free(cmd);
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		perror(path);
		abort();
	}
}

static void setup(void)
{
	const char *tmp = getenv("TMPDIR");
	struct kmpkg_key key;
	char *keyfile = NULL;

	if (asprintf(&base, "%s/fuzz-minisign-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0 || !mkdtemp(base))
		abort();
	atexit(cleanup_base);
	if (asprintf(&root, "%s/root", base) < 0 || asprintf(&pkg, "%s/hello-1.0.0.kmpkg", base) < 0 ||
	    asprintf(&sigpath, "%s/hello-1.0.0.kmpkg.minisig", base) < 0 ||
	    asprintf(&keyfile, "%s/key.pub", base) < 0)
		abort();
	write_file(keyfile, PUBKEY, strlen(PUBKEY));
	write_file(pkg, PACKAGE, strlen(PACKAGE));
	if (kmpkg_sig_key_add(&key, root, keyfile) != 0) {
		fprintf(stderr, "fuzz_minisign: key add: %s\n", kmpkg_error_last()->message);
		abort();
	}
	kmpkg_key_release(&key);
	free(keyfile);
}

static char *text_of(const uint8_t *data, size_t size)
{
	char *t = malloc(size + 1);

	if (!t)
		abort();
	memcpy(t, data, size);
	t[size] = '\0';
	return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kmpkg_minisign_key k;
	struct kmpkg_minisig ms;
	struct kmpkg_sig_result res;
	char *t;
	int rc;

	if (!base)
		setup();

	t = text_of(data, size);
	if (kmpkg_sig_parse_pub(&k, t) && strnlen(k.comment, sizeof(k.comment)) == sizeof(k.comment))
		abort(); /* unterminated comment */
	free(t);

	t = text_of(data, size);
	kmpkg_sig_check_binding(t, "hello", "1.0.0", NULL, PACKAGE_SHA, "fuzz.minisig");
	kmpkg_sig_check_binding(t, NULL, NULL, PACKAGE_SHA, PACKAGE_SHA, "fuzz.minisig");
	kmpkg_sig_check_binding(t, "", "", "", "", "fuzz.minisig");
	kmpkg_error_clear();
	free(t);

	t = text_of(data, size);
	rc = kmpkg_sig_parse_minisig(&ms, t, "fuzz.minisig");
	if (rc == 0) {
		if (ms.alg[0] != 'E' || (ms.alg[1] != 'D' && ms.alg[1] != 'd'))
			abort();
		if (strchr(ms.trusted_comment, '\n'))
			abort(); /* the comment spans lines */
		kmpkg_sig_check_binding(ms.trusted_comment, "hello", "1.0.0", PACKAGE_SHA, PACKAGE_SHA,
					"fuzz.minisig");
		kmpkg_error_clear();

		/* End to end, as the engine's verify phase reads it. */
		write_file(sigpath, data, size);
		rc = kmpkg_sig_check(root, pkg, NULL, "hello", "1.0.0", PACKAGE_SHA, false, &res);
		if (rc == 0 && (!res.verified || strcmp(res.kind, "minisign") != 0))
			abort();
		if (rc != 0 && res.verified)
			abort();
		unlink(sigpath);
	}
	kmpkg_error_clear();
	free(t);
	return 0;
}
