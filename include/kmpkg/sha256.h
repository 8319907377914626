/*
 * SHA-256, with libcrypto's SHA256_Init/Update/Final (src/sha256.c).
 *
 * Not EVP: OpenSSL 3 sets up its default provider and fetches the algorithm
 * on a process's first EVP_DigestInit_ex, 1.7 ms here, and every install
 * made that call on its critical path (the download's digest). The SHA256_*
 * functions run the same code (SHA-NI where the CPU has it: 0.7 ms per MiB
 * here either way) with no provider. They are deprecated in OpenSSL 3 but
 * still part of its libcrypto; src/sha256.c is the one file that calls them,
 * and every SHA-256 in kmpkg goes through it. Other digests and signatures
 * (BLAKE2b, Ed25519, RSA, ECDSA) stay with EVP.
 */
#ifndef KMPKG_SHA256_H
#define KMPKG_SHA256_H

#include <stddef.h>

#include <openssl/sha.h>

struct kmpkg_sha256 {
	SHA256_CTX c;
};

void kmpkg_sha256_init(struct kmpkg_sha256 *h);
void kmpkg_sha256_update(struct kmpkg_sha256 *h, const void *p, size_t n);
/* The digest (32 bytes); h must be initialised again before reuse. */
void kmpkg_sha256_final(struct kmpkg_sha256 *h, unsigned char md[32]);
/* The digest in lowercase hex, NUL-terminated. */
void kmpkg_sha256_hex(struct kmpkg_sha256 *h, char out[65]);
/* The hex digest of n bytes at p. */
void kmpkg_sha256_buf_hex(const void *p, size_t n, char out[65]);

#endif
