/*
 * Package signatures and trusted keys (SPEC §5, kmpkg-key(1)), with OpenSSL 3
 * libcrypto only.
 *
 * Two signature formats:
 *  - minisign: PACKAGE.minisig, Ed25519 over BLAKE2b-512(file) ("ED") or over
 *    the file itself (legacy "Ed"), plus a global signature over the
 *    signature and the trusted comment. Tokens name=, version= and sha256= in
 *    the trusted comment bind the signature to one package.
 *  - OpenSSL: PACKAGE.sig, raw output of `openssl dgst -sha256 -sign KEY`
 *    (RSA PKCS#1 v1.5 or ECDSA DER) checked with a trusted PEM public key.
 *
 * Trusted keys are files under <root>/kmpkg/keys/, one per key, named by key
 * id (16 lowercase hex): "<id>.pub" for minisign keys (id = minisign's own key
 * id, as minisign prints it), "<id>.pem" for RSA/EC public keys (id = first 16
 * hex of sha256 of the DER SubjectPublicKeyInfo).
 */
#ifndef KMPKG_SIG_H
#define KMPKG_SIG_H

#include <stdbool.h>
#include <stddef.h>

struct kmpkg_sig_result {
	bool verified;              /* a signature verified with a trusted key */
	char status[64];            /* "verified", "unsigned, no trusted keys",
				     * "not checked, no trusted keys", "unsigned, allowed" */
	char kind[16];              /* "minisign", "openssl" or "" */
	char key_id[17];            /* the key that verified it, or "" */
	char signature[4096];       /* path of the signature file used, or "" */
	char trusted_comment[1024]; /* minisign's trusted comment, or "" */
};

/*
 * Checks the signature of package_path for the engine's verify phase.
 * sig_path NULL means PACKAGE.minisig, else PACKAGE.sig, beside the package.
 * With no trusted key in root an unsigned package passes. Once a key is
 * trusted: no signature => E_SIGNATURE_MISSING (waived by allow_unsigned),
 * a bad one => E_SIGNATURE_INVALID, a key not trusted =>
 * E_SIGNATURE_UNKNOWN_KEY, a trusted comment naming another name, version or
 * sha256 than expected (NULL: not checked; sha256= is also checked against
 * the file) => E_SIGNATURE_MISMATCH; all KMPKG_EVERIFY. An explicit sig_path
 * that does not exist is KMPKG_ENOTFOUND/E_SIGNATURE_NOT_FOUND.
 */
int kmpkg_sig_check(const char *root, const char *package_path, const char *sig_path,
		    const char *expect_name, const char *expect_version, const char *expect_sha256,
		    bool allow_unsigned, struct kmpkg_sig_result *out);

struct kmpkg_key {
	char id[17];        /* 16 lowercase hex */
	char type[16];      /* "minisign" or "pem" */
	char algorithm[32]; /* "ed25519", "rsa-3072", "ec-prime256v1", ... */
	char *comment;      /* minisign's untrusted comment; "" for PEM */
	char *file;         /* the file under <root>/kmpkg/keys/ */
};

struct kmpkg_keylist {
	struct kmpkg_key *v;
	size_t n;
};

/* Trusts the public key in key_file (minisign .pub or PEM RSA/EC public key),
 * written atomically to <root>/kmpkg/keys/. Adding a trusted key again is not
 * an error. Errors: KMPKG_EUSAGE E_KEY_INVALID, E_KEY_PRIVATE (a secret key
 * was given), E_KEY_UNSUPPORTED; KMPKG_ENOTFOUND when key_file is absent. */
int kmpkg_sig_key_add(struct kmpkg_key *out, const char *root, const char *key_file);
/* Every trusted key, sorted by id; unreadable files are skipped. */
int kmpkg_sig_key_list(struct kmpkg_keylist **out, const char *root);
/* Removes the key with this id (any case). KMPKG_ENOTFOUND E_KEY_NOT_FOUND. */
int kmpkg_sig_key_remove(struct kmpkg_key *out, const char *root, const char *id);

void kmpkg_key_release(struct kmpkg_key *k);
void kmpkg_keylist_free(struct kmpkg_keylist *l);

#endif
