/*
 * The minisign text parsers of src/sig.c, private to kmpkg: exposed only so
 * that fuzz/fuzz_minisign.c and tests/unit/test_sig.c can reach them without
 * files, keys or a package. Not part of the public interface.
 */
#ifndef KMPKG_SIG_PARSE_H
#define KMPKG_SIG_PARSE_H

#include <stdbool.h>

/* A minisign public key: "untrusted comment: ..." (optional) and base64 of
 * "Ed" || key id (8) || Ed25519 public key (32). */
struct kmpkg_minisign_key {
	unsigned char kid[8];
	unsigned char pk[32];
	char comment[512];
};

/* A .minisig file: four lines, the last newline optional. */
struct kmpkg_minisig {
	unsigned char alg[2];        /* "ED" (BLAKE2b-512 prehashed) or "Ed" (legacy) */
	unsigned char kid[8];
	unsigned char sig[64];       /* over the package or its hash */
	unsigned char global[64];    /* over sig || trusted comment */
	const char *trusted_comment; /* borrowed from the parsed text */
};

/* Parses a public key file's text (modified in place); false if malformed. */
bool kmpkg_sig_parse_pub(struct kmpkg_minisign_key *out, char *text);

/* Parses a signature file's text (modified in place; out->trusted_comment
 * points into it). 0, or KMPKG_EVERIFY E_SIGNATURE_INVALID naming sig_path. */
int kmpkg_sig_parse_minisig(struct kmpkg_minisig *out, char *text, const char *sig_path);

/* Checks the name=, version= and sha256= tokens of a trusted comment against
 * what is expected (NULL name, version or sha_expected: not checked; sha256=
 * is always checked against sha_actual). 0 or KMPKG_EVERIFY
 * E_SIGNATURE_MISMATCH. */
int kmpkg_sig_check_binding(const char *comment, const char *name, const char *version,
			    const char *sha_expected, const char *sha_actual, const char *sig_path);

#endif
