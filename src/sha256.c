/* SHA-256 with the low-level functions; include/kmpkg/sha256.h says why. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "kmpkg/sha256.h"

#include "kmpkg/buf.h"

void kmpkg_sha256_init(struct kmpkg_sha256 *h)
{
	SHA256_Init(&h->c);
}

void kmpkg_sha256_update(struct kmpkg_sha256 *h, const void *p, size_t n)
{
	SHA256_Update(&h->c, p, n);
}

void kmpkg_sha256_final(struct kmpkg_sha256 *h, unsigned char md[32])
{
	SHA256_Final(md, &h->c);
}

void kmpkg_sha256_hex(struct kmpkg_sha256 *h, char out[65])
{
	unsigned char md[32];

	kmpkg_sha256_final(h, md);
	kmpkg_hex(out, md, sizeof(md));
}

void kmpkg_sha256_buf_hex(const void *p, size_t n, char out[65])
{
	struct kmpkg_sha256 h;

	kmpkg_sha256_init(&h);
	kmpkg_sha256_update(&h, p, n);
	kmpkg_sha256_hex(&h, out);
}
