/*
 * Signatures and trusted keys (include/kmpkg/sig.h).
 *
 * minisign formats (https://jedisct1.github.io/minisign/):
 *   public key   "untrusted comment: ..." \n base64("Ed" || keyid[8] || pk[32])
 *   .minisig     "untrusted comment: ..." \n base64(alg[2] || keyid[8] || sig[64])
 *                "trusted comment: TEXT"  \n base64(global_sig[64])
 * sig signs BLAKE2b-512(file) for alg "ED", the file for legacy "Ed";
 * global_sig signs sig || TEXT. Key ids are shown as minisign shows them:
 * the 8 bytes read as a little-endian integer, in hex.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kmpkg/buf.h"
#include "kmpkg/error.h"
#include "kmpkg/fsutil.h"
#include "kmpkg/sha256.h"
#include "kmpkg/sig.h"
#include "sig_parse.h"

#define MAX_SMALL_FILE (16 * 1024)          /* keys and signatures */
#define MAX_LEGACY_MESSAGE (256u << 20)     /* legacy "Ed" signs the whole file in memory */

static const char NEXT_INVALID[] =
	"do not install it; fetch the package and its signature again from the publisher";
static const char NEXT_UNKNOWN[] =
	"if you trust the publisher, add their public key with 'kmpkg key add FILE'";

/* ---- small helpers ------------------------------------------------------- */

static void minisign_id(char out[17], const unsigned char kid[8])
{
	unsigned char be[8];
	int i;

	for (i = 0; i < 8; i++)
		be[i] = kid[7 - i];
	kmpkg_hex(out, be, 8);
}

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict base64 of exactly `want` bytes (padding required, no spaces). */
static bool b64decode(unsigned char *out, size_t want, const char *s, size_t n)
{
	size_t i, o = 0;
	uint32_t acc = 0;
	int bits = 0;

	while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n % 4)
		return false;
	for (i = 0; i < n; i++) {
		int v;

		if (s[i] == '=') {
			size_t j;

			for (j = i; j < n; j++)
				if (s[j] != '=')
					return false;
			if (n - i > 2)
				return false;
			break;
		}
		if ((v = b64val((unsigned char)s[i])) < 0)
			return false;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == want)
				return false;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return o == want;
}

static void b64encode(char *out, const unsigned char *in, size_t n)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* Reads a small file (keys, signatures) NUL-terminated. */
static int read_small(char **out, size_t *len, const char *path, int missing_class, const char *missing_code)
{
	struct stat st;
	char *buf = NULL;
	ssize_t n;
	int fd = -1, rc = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT && missing_code)
			rc = kmpkg_error_set(missing_class, missing_code, NULL, "check the path",
					     "%s does not exist", path);
		else
			rc = kmpkg_error_errno(errno, "open", path);
		goto cleanup;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_SMALL_FILE) {
		rc = kmpkg_error_set(KMPKG_EVERIFY, "E_SIGNATURE_INVALID", NULL, NEXT_INVALID,
				     "%s is not a regular file of at most %d bytes", path, MAX_SMALL_FILE);
		goto cleanup;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = kmpkg_error_errno(ENOMEM, "read", path);
		goto cleanup;
	}
	n = read(fd, buf, (size_t)st.st_size);
	if (n < 0) {
		rc = kmpkg_error_errno(errno, "read", path);
		goto cleanup;
	}
	buf[n] = '\0';
	if (len)
		*len = (size_t)n;
	*out = buf;
	buf = NULL;
cleanup:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

/* Splits text into at most max lines (without "\n" or "\r\n"); modifies text. */
static size_t split_lines(char **lines, size_t max, char *text)
{
	size_t n = 0;

	while (*text && n < max) {
		char *nl = strchr(text, '\n');

		lines[n++] = text;
		if (!nl)
			break;
		*nl = '\0';
		if (nl > text && nl[-1] == '\r')
			nl[-1] = '\0';
		text = nl + 1;
	}
	return n;
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- keys ----------------------------------------------------------------- */

/* Parses a minisign public key file: optional comment line, base64 line. */
bool kmpkg_sig_parse_pub(struct kmpkg_minisign_key *k, char *text)
{
	char *lines[4];
	unsigned char raw[42];
	size_t n = split_lines(lines, 4, text), i = 0;
	const char *uc = "untrusted comment: ";

	memset(k, 0, sizeof(*k));
	if (n && starts_with(lines[0], "untrusted comment:")) {
		snprintf(k->comment, sizeof(k->comment), "%s",
			 starts_with(lines[0], uc) ? lines[0] + strlen(uc) : lines[0] + strlen(uc) - 1);
		i = 1;
	}
	if (i >= n || !b64decode(raw, sizeof(raw), lines[i], strlen(lines[i])))
		return false;
	if (raw[0] != 'E' || raw[1] != 'd')
		return false;
	memcpy(k->kid, raw + 2, 8);
	memcpy(k->pk, raw + 10, 32);
	return true;
}

static char *keys_dir(const char *root)
{
	char *p = NULL;

	if (asprintf(&p, "%s/kmpkg/keys", root) < 0)
		return NULL;
	return p;
}

static bool is_key_name(const char *name, const char **ext)
{
	size_t i;

	if (strlen(name) != 20)
		return false;
	for (i = 0; i < 16; i++)
		if (!isxdigit((unsigned char)name[i]) || isupper((unsigned char)name[i]))
			return false;
	if (strcmp(name + 16, ".pub") && strcmp(name + 16, ".pem"))
		return false;
	*ext = name + 16;
	return true;
}

static void algorithm_of(char *out, size_t cap, EVP_PKEY *pk)
{
	char group[64] = "";
	size_t glen = 0;

	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
		snprintf(out, cap, "rsa-%d", EVP_PKEY_get_bits(pk));
		break;
	case EVP_PKEY_EC:
		if (!EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen))
			snprintf(group, sizeof(group), "unknown");
		snprintf(out, cap, "ec-%s", group);
		break;
	default:
		snprintf(out, cap, "%s", "unsupported");
	}
}

static EVP_PKEY *load_pem(const char *text, size_t len)
{
	BIO *bio = BIO_new_mem_buf(text, (int)len);
	EVP_PKEY *pk = NULL;

	if (bio)
		pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ERR_clear_error();
	return pk;
}

static int pem_id(char out[17], EVP_PKEY *pk)
{
	unsigned char *der = NULL;
	char hex[65];
	int n = i2d_PUBKEY(pk, &der);

	if (n <= 0)
		return kmpkg_error_set(KMPKG_EUSAGE, "E_KEY_INVALID", NULL, NULL, "cannot encode the public key");
	/* The first 8 bytes of the SHA-256 of the DER public key. */
	kmpkg_sha256_buf_hex(der, (size_t)n, hex);
	OPENSSL_free(der);
	memcpy(out, hex, 16);
	out[16] = '\0';
	return 0;
}

/* Key files go through the durable-write helper (temp, fsync, rename,
 * fsync of the directory). */
static int write_atomic(const char *dir, const char *name, const char *data, size_t len)
{
	char *dst = kmpkg_fsutil_join(dir, name);
	int rc = kmpkg_fsutil_write_file(dst, data, len, 0644);

	free(dst);
	return rc;
}

static int mkdirs(const char *root)
{
	char *p = kmpkg_fsutil_join(root, "kmpkg/keys");
	int rc = kmpkg_fsutil_mkdir_p(p, 0755);

	free(p);
	return rc;
}

void kmpkg_key_release(struct kmpkg_key *k)
{
	if (!k)
		return;
	free(k->comment);
	free(k->file);
	k->comment = k->file = NULL;
}

void kmpkg_keylist_free(struct kmpkg_keylist *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->n; i++)
		kmpkg_key_release(&l->v[i]);
	free(l->v);
	free(l);
}

/* Describes the trusted key stored in dir/name (0 or an error). */
static int describe_key(struct kmpkg_key *k, const char *dir, const char *name)
{
	char *path = NULL, *text = NULL;
	size_t len = 0;
	const char *ext;
	int rc = 0;

	memset(k, 0, sizeof(*k));
	if (!is_key_name(name, &ext))
		return kmpkg_error_set(KMPKG_EUSAGE, "E_KEY_INVALID", NULL, NULL, "%s is not a key file", name);
	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return kmpkg_error_errno(ENOMEM, "read", name);
	if ((rc = read_small(&text, &len, path, KMPKG_ENOTFOUND, "E_KEY_NOT_FOUND")) != 0)
		goto cleanup;
	memcpy(k->id, name, 16);
	k->id[16] = '\0';
	if (strcmp(ext, ".pub") == 0) {
		struct kmpkg_minisign_key mk;

		if (!kmpkg_sig_parse_pub(&mk, text)) {
			rc = kmpkg_error_set(KMPKG_EUSAGE, "E_KEY_INVALID", NULL, NULL, "%s is not a minisign key", path);
			goto cleanup;
		}
		snprintf(k->type, sizeof(k->type), "minisign");
		snprintf(k->algorithm, sizeof(k->algorithm), "ed25519");
		k->comment = strdup(mk.comment);
	} else {
		EVP_PKEY *pk = load_pem(text, len);

		if (!pk) {
			rc = kmpkg_error_set(KMPKG_EUSAGE, "E_KEY_INVALID", NULL, NULL, "%s is not a PEM key", path);
			goto cleanup;
		}
		snprintf(k->type, sizeof(k->type), "pem");
		algorithm_of(k->algorithm, sizeof(k->algorithm), pk);
		EVP_PKEY_free(pk);
		k->comment = strdup("");
	}
	k->file = path;
	path = NULL;
	if (!k->comment) {
		rc = kmpkg_error_errno(ENOMEM, "read", name);
		goto cleanup;
	}
cleanup:
	if (rc)
		kmpkg_key_release(k);
	free(path);
	free(text);
	return rc;
}

int kmpkg_sig_key_add(struct kmpkg_key *out, const char *root, const char *key_file)
{
	struct kmpkg_buf canon = KMPKG_BUF_INIT;
	struct kmpkg_minisign_key mk;
	EVP_PKEY *pk = NULL;
	BIO *bio = NULL;
	char *text = NULL, *copy = NULL, *dir = NULL, name[32];
	char id[17];
	size_t len = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if ((rc = read_small(&text, &len, key_file, KMPKG_ENOTFOUND, "E_NOT_FOUND")) != 0) {
		if (strcmp(kmpkg_error_last()->code, "E_SIGNATURE_INVALID") == 0)
			rc = kmpkg_error_set(KMPKG_EUSAGE, "E_KEY_INVALID", NULL, NULL,
					     "%s is not a key file of at most %d bytes", key_file, MAX_SMALL_FILE);
		goto cleanup;
	}
	if (strlen(text) != len || strstr(text, "PRIVATE KEY-----") || strstr(text, "secret key")) {
		rc = kmpkg_error_set(KMPKG_EUSAGE, strlen(text) != len ? "E_KEY_INVALID" : "E_KEY_PRIVATE", NULL,
				     "give the public key (minisign .pub file or PEM PUBLIC KEY)",
				     "%s is not a public key", key_file);
		goto cleanup;
	}
	if (!(copy = strdup(text))) {
		rc = kmpkg_error_errno(ENOMEM, "read", key_file);
		goto cleanup;
	}
	if (strstr(text, "-----BEGIN PUBLIC KEY-----")) {
		pk = load_pem(text, len);
		if (!pk) {
			rc = kmpkg_error_set(KMPKG_EUSAGE, "E_KEY_INVALID", NULL, "give a PEM PUBLIC KEY",
					     "%s: unreadable PEM public key", key_file);
			goto cleanup;
		}
		if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA && EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC) {
			rc = kmpkg_error_set(KMPKG_EUSAGE, "E_KEY_UNSUPPORTED", NULL,
					     "use minisign for Ed25519, or an RSA or EC key with openssl dgst -sha256 -sign",
					     "%s: only RSA and EC PEM keys are supported", key_file);
			goto cleanup;
		}
		if ((rc = pem_id(id, pk)) != 0)
			goto cleanup;
		bio = BIO_new(BIO_s_mem());
		if (!bio || !PEM_write_bio_PUBKEY(bio, pk)) {
			rc = kmpkg_error_errno(ENOMEM, "encode", key_file);
			goto cleanup;
		}
		{
			char *mem = NULL;
			long n = BIO_get_mem_data(bio, &mem);

			if (kmpkg_buf_put(&canon, mem, (size_t)n)) {
				rc = kmpkg_error_errno(ENOMEM, "encode", key_file);
				goto cleanup;
			}
		}
		snprintf(name, sizeof(name), "%s.pem", id);
	} else if (kmpkg_sig_parse_pub(&mk, copy)) {
		unsigned char raw[42];
		char b64[64];

		raw[0] = 'E';
		raw[1] = 'd';
		memcpy(raw + 2, mk.kid, 8);
		memcpy(raw + 10, mk.pk, 32);
		b64encode(b64, raw, sizeof(raw));
		minisign_id(id, mk.kid);
		if (kmpkg_buf_printf(&canon, "untrusted comment: %s\n%s\n",
				     mk.comment[0] ? mk.comment : "minisign public key", b64)) {
			rc = kmpkg_error_errno(ENOMEM, "encode", key_file);
			goto cleanup;
		}
		snprintf(name, sizeof(name), "%s.pub", id);
	} else {
		rc = kmpkg_error_set(KMPKG_EUSAGE, "E_KEY_INVALID", NULL,
				     "give a minisign public key file or a PEM PUBLIC KEY",
				     "%s is neither a minisign public key nor a PEM public key", key_file);
		goto cleanup;
	}
	if ((rc = mkdirs(root)) != 0)
		goto cleanup;
	if (!(dir = keys_dir(root))) {
		rc = kmpkg_error_errno(ENOMEM, "add key", key_file);
		goto cleanup;
	}
	if ((rc = write_atomic(dir, name, canon.ptr, canon.len)) != 0)
		goto cleanup;
	rc = describe_key(out, dir, name);
cleanup:
	EVP_PKEY_free(pk);
	BIO_free(bio);
	kmpkg_buf_release(&canon);
	free(text);
	free(copy);
	free(dir);
	return rc;
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(((const struct kmpkg_key *)a)->id, ((const struct kmpkg_key *)b)->id);
}

int kmpkg_sig_key_list(struct kmpkg_keylist **out, const char *root)
{
	struct kmpkg_keylist *l = NULL;
	DIR *d = NULL;
	struct dirent *de;
	char *dir = NULL;
	size_t alloc = 0;
	int rc = 0;

	*out = NULL;
	l = calloc(1, sizeof(*l));
	dir = keys_dir(root);
	if (!l || !dir) {
		rc = kmpkg_error_errno(ENOMEM, "list keys", root);
		goto cleanup;
	}
	d = opendir(dir);
	if (!d) {
		if (errno != ENOENT)
			rc = kmpkg_error_errno(errno, "open", dir);
		goto done;
	}
	while ((de = readdir(d)) != NULL) {
		struct kmpkg_key k;
		const char *ext;

		if (!is_key_name(de->d_name, &ext))
			continue;
		if (describe_key(&k, dir, de->d_name) != 0) {
			kmpkg_error_clear();
			continue;
		}
		if (l->n == alloc) {
			size_t na = alloc ? alloc * 2 : 8;
			struct kmpkg_key *nv = realloc(l->v, na * sizeof(*nv));

			if (!nv) {
				kmpkg_key_release(&k);
				rc = kmpkg_error_errno(ENOMEM, "list keys", root);
				goto cleanup;
			}
			l->v = nv;
			alloc = na;
		}
		l->v[l->n++] = k;
	}
	if (l->n)
		qsort(l->v, l->n, sizeof(l->v[0]), cmp_key);
done:
	*out = l;
	l = NULL;
cleanup:
	if (d)
		closedir(d);
	kmpkg_keylist_free(l);
	free(dir);
	return rc;
}

int kmpkg_sig_key_remove(struct kmpkg_key *out, const char *root, const char *id)
{
	char lower[17], name[32], *dir = NULL, *path = NULL;
	const char *exts[] = { ".pub", ".pem" };
	size_t i;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (strlen(id) != 16)
		goto not_found;
	for (i = 0; i < 16; i++) {
		if (!isxdigit((unsigned char)id[i]))
			goto not_found;
		lower[i] = (char)tolower((unsigned char)id[i]);
	}
	lower[16] = '\0';
	if (!(dir = keys_dir(root))) {
		rc = kmpkg_error_errno(ENOMEM, "remove key", id);
		goto cleanup;
	}
	for (i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "%s%s", lower, exts[i]);
		if (describe_key(out, dir, name) != 0) {
			kmpkg_error_clear();
			continue;
		}
		rc = kmpkg_fsutil_rmtree(out->file);
		goto cleanup;
	}
not_found:
	rc = kmpkg_error_set(KMPKG_ENOTFOUND, "E_KEY_NOT_FOUND", NULL, "see 'kmpkg key list' for the ids",
			     "no trusted key has id %s", id);
cleanup:
	if (rc)
		kmpkg_key_release(out);
	free(dir);
	free(path);
	return rc;
}

/* ---- verification --------------------------------------------------------- */

struct digests {
	unsigned char blake[64];
	char sha256[65];
};

static int hash_file(struct digests *out, const char *path)
{
	EVP_MD_CTX *b = EVP_MD_CTX_new();
	struct kmpkg_sha256 s;
	char *buf = malloc(65536);
	int fd = -1, rc = 0;

	if (!b || !buf || !EVP_DigestInit_ex(b, EVP_blake2b512(), NULL)) {
		rc = kmpkg_error_errno(ENOMEM, "hash", path);
		goto cleanup;
	}
	kmpkg_sha256_init(&s);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = errno == ENOENT ? kmpkg_error_set(KMPKG_ENOTFOUND, "E_NOT_FOUND", NULL, "check the path",
						       "package %s does not exist", path)
				     : kmpkg_error_errno(errno, "open", path);
		goto cleanup;
	}
	for (;;) {
		ssize_t n = read(fd, buf, 65536);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = kmpkg_error_errno(errno, "read", path);
			goto cleanup;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(b, buf, (size_t)n);
		kmpkg_sha256_update(&s, buf, (size_t)n);
	}
	EVP_DigestFinal_ex(b, out->blake, NULL);
	kmpkg_sha256_hex(&s, out->sha256);
cleanup:
	if (fd >= 0)
		close(fd);
	EVP_MD_CTX_free(b);
	free(buf);
	return rc;
}

static bool ed25519_ok(const unsigned char pk[32], const unsigned char sig[64], const unsigned char *msg,
		       size_t len)
{
	EVP_PKEY *key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, 32);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = false;

	if (key && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1)
		ok = EVP_DigestVerify(ctx, sig, 64, msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return ok;
}

static int read_whole(unsigned char **out, size_t *len, const char *path)
{
	struct kmpkg_buf b = KMPKG_BUF_INIT;
	char chunk[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	*out = NULL;
	if (fd < 0)
		return kmpkg_error_errno(errno, "open", path);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = kmpkg_error_errno(errno, "read", path);
			goto cleanup;
		}
		if (n == 0)
			break;
		if (b.len + (size_t)n > MAX_LEGACY_MESSAGE) {
			rc = kmpkg_error_set(KMPKG_EVERIFY, "E_SIGNATURE_INVALID", NULL,
					     "ask the publisher for a prehashed (default) minisign signature",
					     "%s: too large for a legacy minisign signature", path);
			goto cleanup;
		}
		if (kmpkg_buf_put(&b, chunk, (size_t)n)) {
			rc = kmpkg_error_errno(ENOMEM, "read", path);
			goto cleanup;
		}
	}
	*len = b.len;
	*out = (unsigned char *)kmpkg_buf_detach(&b);
cleanup:
	close(fd);
	kmpkg_buf_release(&b);
	return rc;
}

/* Each name=, version=, sha256= token must match what is expected. */
int kmpkg_sig_check_binding(const char *comment, const char *name, const char *version,
			    const char *sha_expected, const char *sha_actual, const char *sig_path)
{
	const char *p = comment;

	while (*p) {
		const char *end;
		size_t n;

		while (*p == ' ' || *p == '\t')
			p++;
		end = p + strcspn(p, " \t");
		n = (size_t)(end - p);
		if (n) {
			const char *want[3] = { name, version, NULL };
			const char *keys[3] = { "name=", "version=", "sha256=" };
			int i;

			for (i = 0; i < 3; i++) {
				size_t kl = strlen(keys[i]);
				const char *val = p + kl;
				size_t vl = n - kl;
				bool bad = false;

				if (n < kl || strncmp(p, keys[i], kl) != 0)
					continue;
				if (i < 2)
					bad = want[i] && (strlen(want[i]) != vl || strncmp(val, want[i], vl) != 0);
				else
					bad = (sha_expected &&
					       (strlen(sha_expected) != vl || strncasecmp(val, sha_expected, vl) != 0)) ||
					      strlen(sha_actual) != vl || strncasecmp(val, sha_actual, vl) != 0;
				if (bad)
					return kmpkg_error_set(KMPKG_EVERIFY, "E_SIGNATURE_MISMATCH", NULL,
							       "the signature is for another package; do not install it",
							       "%s: trusted comment says %.*s, expected %s", sig_path,
							       (int)n, p,
							       i == 0 ? name : i == 1 ? version
									   : (sha_expected ? sha_expected : sha_actual));
			}
		}
		p = end;
	}
	return 0;
}

int kmpkg_sig_parse_minisig(struct kmpkg_minisig *out, char *text, const char *sig_path)
{
	char *lines[5];
	unsigned char raw[74];
	size_t n;

	memset(out, 0, sizeof(*out));
	n = split_lines(lines, 5, text);
	if (n < 4 || !starts_with(lines[0], "untrusted comment:") ||
	    !b64decode(raw, sizeof(raw), lines[1], strlen(lines[1])) ||
	    !starts_with(lines[2], "trusted comment: ") ||
	    !b64decode(out->global, sizeof(out->global), lines[3], strlen(lines[3])) ||
	    (n == 5 && lines[4][0] != '\0'))
		return kmpkg_error_set(KMPKG_EVERIFY, "E_SIGNATURE_INVALID", NULL, NEXT_INVALID,
				       "%s is not a well-formed minisign signature", sig_path);
	if (!(raw[0] == 'E' && (raw[1] == 'D' || raw[1] == 'd')))
		return kmpkg_error_set(KMPKG_EVERIFY, "E_SIGNATURE_INVALID", NULL, NEXT_INVALID,
				       "%s: unknown signature algorithm", sig_path);
	memcpy(out->alg, raw, 2);
	memcpy(out->kid, raw + 2, 8);
	memcpy(out->sig, raw + 10, 64);
	out->trusted_comment = lines[2] + strlen("trusted comment: ");
	return 0;
}

static int verify_minisign(struct kmpkg_sig_result *res, const char *keydir, const char *package, char *text,
			   const char *sig_path, const char *name, const char *version, const char *sha256)
{
	struct digests dg;
	struct kmpkg_minisign_key mk;
	struct kmpkg_minisig ms;
	char *keytext = NULL, *keypath = NULL, id[17];
	unsigned char *msg = NULL, *gmsg = NULL;
	const char *tc;
	size_t tclen, mlen = 0;
	int rc = 0;

	if ((rc = kmpkg_sig_parse_minisig(&ms, text, sig_path)) != 0)
		goto cleanup;
	minisign_id(id, ms.kid);
	if (asprintf(&keypath, "%s/%s.pub", keydir, id) < 0) {
		keypath = NULL;
		rc = kmpkg_error_errno(ENOMEM, "verify", sig_path);
		goto cleanup;
	}
	if (access(keypath, F_OK) != 0) {
		rc = kmpkg_error_set(KMPKG_EVERIFY, "E_SIGNATURE_UNKNOWN_KEY", NULL, NEXT_UNKNOWN,
				     "%s is signed by minisign key %s, which is not trusted", sig_path, id);
		goto cleanup;
	}
	if ((rc = read_small(&keytext, NULL, keypath, KMPKG_EVERIFY, "E_SIGNATURE_UNKNOWN_KEY")) != 0)
		goto cleanup;
	if (!kmpkg_sig_parse_pub(&mk, keytext) || memcmp(mk.kid, ms.kid, 8) != 0) {
		rc = kmpkg_error_set(KMPKG_EVERIFY, "E_SIGNATURE_UNKNOWN_KEY", NULL,
				     "remove and add the key again with 'kmpkg key'",
				     "trusted key file %s is damaged", keypath);
		goto cleanup;
	}
	if ((rc = hash_file(&dg, package)) != 0)
		goto cleanup;
	if (ms.alg[1] == 'D') {
		if (!ed25519_ok(mk.pk, ms.sig, dg.blake, sizeof(dg.blake)))
			goto invalid;
	} else {
		if ((rc = read_whole(&msg, &mlen, package)) != 0)
			goto cleanup;
		if (!ed25519_ok(mk.pk, ms.sig, msg, mlen))
			goto invalid;
	}
	tc = ms.trusted_comment;
	tclen = strlen(tc);
	gmsg = malloc(64 + tclen);
	if (!gmsg) {
		rc = kmpkg_error_errno(ENOMEM, "verify", sig_path);
		goto cleanup;
	}
	memcpy(gmsg, ms.sig, 64);
	memcpy(gmsg + 64, tc, tclen);
	if (!ed25519_ok(mk.pk, ms.global, gmsg, 64 + tclen)) {
		rc = kmpkg_error_set(KMPKG_EVERIFY, "E_SIGNATURE_INVALID", NULL, NEXT_INVALID,
				     "%s: the trusted comment was altered (global signature does not verify)",
				     sig_path);
		goto cleanup;
	}
	if ((rc = kmpkg_sig_check_binding(tc, name, version, sha256, dg.sha256, sig_path)) != 0)
		goto cleanup;
	res->verified = true;
	snprintf(res->status, sizeof(res->status), "verified");
	snprintf(res->kind, sizeof(res->kind), "minisign");
	snprintf(res->key_id, sizeof(res->key_id), "%s", id);
	snprintf(res->trusted_comment, sizeof(res->trusted_comment), "%s", tc);
	goto cleanup;
invalid:
	rc = kmpkg_error_set(KMPKG_EVERIFY, "E_SIGNATURE_INVALID", NULL, NEXT_INVALID,
			     "%s does not verify %s with key %s: the package or signature was altered", sig_path,
			     package, id);
cleanup:
	free(keytext);
	free(keypath);
	free(msg);
	free(gmsg);
	return rc;
}

static int verify_pem_one(bool *ok, EVP_PKEY *pk, const char *package, const unsigned char *sig, size_t slen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char *buf = malloc(65536);
	int fd = -1, rc = 0;

	*ok = false;
	if (!ctx || !buf || EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pk) != 1) {
		rc = kmpkg_error_errno(ENOMEM, "verify", package);
		goto cleanup;
	}
	fd = open(package, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = kmpkg_error_errno(errno, "open", package);
		goto cleanup;
	}
	for (;;) {
		ssize_t n = read(fd, buf, 65536);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = kmpkg_error_errno(errno, "read", package);
			goto cleanup;
		}
		if (n == 0)
			break;
		EVP_DigestVerifyUpdate(ctx, buf, (size_t)n);
	}
	*ok = EVP_DigestVerifyFinal(ctx, sig, slen) == 1;
cleanup:
	ERR_clear_error();
	if (fd >= 0)
		close(fd);
	EVP_MD_CTX_free(ctx);
	free(buf);
	return rc;
}

static int verify_openssl(struct kmpkg_sig_result *res, const char *keydir, const char *package,
			  const unsigned char *sig, size_t slen, const char *sig_path)
{
	DIR *d = opendir(keydir);
	struct dirent *de;
	size_t tried = 0;
	int rc = 0;

	if (!d)
		return kmpkg_error_errno(errno, "open", keydir);
	while ((de = readdir(d)) != NULL) {
		char *path = NULL, *text = NULL;
		const char *ext;
		size_t len = 0;
		EVP_PKEY *pk;
		bool ok = false;

		if (!is_key_name(de->d_name, &ext) || strcmp(ext, ".pem") != 0)
			continue;
		if (asprintf(&path, "%s/%s", keydir, de->d_name) < 0) {
			rc = kmpkg_error_errno(ENOMEM, "verify", sig_path);
			break;
		}
		if (read_small(&text, &len, path, KMPKG_EVERIFY, NULL) != 0) {
			kmpkg_error_clear();
			free(path);
			continue;
		}
		free(path);
		pk = load_pem(text, len);
		free(text);
		if (!pk)
			continue;
		tried++;
		rc = verify_pem_one(&ok, pk, package, sig, slen);
		EVP_PKEY_free(pk);
		if (rc)
			break;
		if (ok) {
			res->verified = true;
			snprintf(res->status, sizeof(res->status), "verified");
			snprintf(res->kind, sizeof(res->kind), "openssl");
			snprintf(res->key_id, sizeof(res->key_id), "%.16s", de->d_name);
			break;
		}
	}
	closedir(d);
	if (rc || res->verified)
		return rc;
	if (tried == 0)
		return kmpkg_error_set(KMPKG_EVERIFY, "E_SIGNATURE_UNKNOWN_KEY", NULL, NEXT_UNKNOWN,
				       "%s is an OpenSSL signature and no PEM key is trusted", sig_path);
	return kmpkg_error_set(KMPKG_EVERIFY, "E_SIGNATURE_INVALID", NULL, NEXT_INVALID,
			       "%s does not verify %s with any of the %zu trusted PEM keys", sig_path, package,
			       tried);
}

static size_t count_trusted(const char *keydir)
{
	DIR *d = opendir(keydir);
	struct dirent *de;
	size_t n = 0;
	const char *ext;

	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (is_key_name(de->d_name, &ext))
			n++;
	closedir(d);
	return n;
}

int kmpkg_sig_check(const char *root, const char *package_path, const char *sig_path,
		    const char *expect_name, const char *expect_version, const char *expect_sha256,
		    bool allow_unsigned, struct kmpkg_sig_result *out)
{
	char *keydir = NULL, *found = NULL, *text = NULL;
	const char *use = NULL;
	size_t len = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!(keydir = keys_dir(root))) {
		rc = kmpkg_error_errno(ENOMEM, "verify", package_path);
		goto cleanup;
	}
	if (sig_path) {
		if (access(sig_path, F_OK) != 0) {
			rc = kmpkg_error_set(KMPKG_ENOTFOUND, "E_SIGNATURE_NOT_FOUND", "--signature",
					     "check the path given with --signature", "signature %s does not exist",
					     sig_path);
			goto cleanup;
		}
		use = sig_path;
	} else {
		const char *exts[] = { ".minisig", ".sig" };
		size_t i;

		for (i = 0; i < 2 && !use; i++) {
			free(found);
			if (asprintf(&found, "%s%s", package_path, exts[i]) < 0) {
				found = NULL;
				rc = kmpkg_error_errno(ENOMEM, "verify", package_path);
				goto cleanup;
			}
			if (access(found, F_OK) == 0)
				use = found;
		}
	}
	if (use)
		snprintf(out->signature, sizeof(out->signature), "%s", use);
	if (count_trusted(keydir) == 0) {
		snprintf(out->status, sizeof(out->status), "%s",
			 use ? "not checked, no trusted keys" : "unsigned, no trusted keys");
		goto cleanup;
	}
	if (!use) {
		if (allow_unsigned) {
			snprintf(out->status, sizeof(out->status), "unsigned, allowed");
			goto cleanup;
		}
		rc = kmpkg_error_set(KMPKG_EVERIFY, "E_SIGNATURE_MISSING", NULL,
				     "get PACKAGE.minisig or PACKAGE.sig from the publisher, or pass --allow-unsigned",
				     "%s is not signed and trusted keys are configured", package_path);
		goto cleanup;
	}
	if ((rc = read_small(&text, &len, use, KMPKG_ENOTFOUND, "E_SIGNATURE_NOT_FOUND")) != 0)
		goto cleanup;
	if (starts_with(text, "untrusted comment:"))
		rc = verify_minisign(out, keydir, package_path, text, use, expect_name, expect_version,
				     expect_sha256);
	else
		rc = verify_openssl(out, keydir, package_path, (const unsigned char *)text, len, use);
	if (rc == 0 && !out->verified)
		rc = kmpkg_error_set(KMPKG_EVERIFY, "E_SIGNATURE_INVALID", NULL, NEXT_INVALID,
				     "%s was not verified", use);
cleanup:
	if (rc) {
		out->verified = false;
		out->key_id[0] = '\0';
	}
	free(keydir);
	free(found);
	free(text);
	return rc;
}
