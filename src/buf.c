/* Growable byte buffer (include/kmpkg/buf.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmpkg/buf.h"
#include "kmpkg/error.h"

int kmpkg_buf_grow(struct kmpkg_buf *b, size_t extra)
{
	size_t want, cap;
	char *p;

	if (extra > SIZE_MAX - b->len - 1)
		return kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "buffer too large");
	want = b->len + extra + 1;
	if (want <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < want)
		cap = cap > SIZE_MAX / 2 ? want : cap * 2;
	p = realloc(b->ptr, cap);
	if (!p)
		return kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
	b->ptr = p;
	b->cap = cap;
	return 0;
}

int kmpkg_buf_put(struct kmpkg_buf *b, const void *data, size_t len)
{
	int err = kmpkg_buf_grow(b, len);

	if (err)
		return err;
	if (len)
		memcpy(b->ptr + b->len, data, len);
	b->len += len;
	b->ptr[b->len] = '\0';
	return 0;
}

int kmpkg_buf_puts(struct kmpkg_buf *b, const char *s)
{
	return kmpkg_buf_put(b, s, strlen(s));
}

int kmpkg_buf_printf(struct kmpkg_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, err;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return kmpkg_error_set(KMPKG_EGENERIC, "E_FORMAT", NULL, NULL, "format failed");
	if ((err = kmpkg_buf_grow(b, (size_t)n)) != 0)
		return err;
	va_start(ap, fmt);
	vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void kmpkg_buf_clear(struct kmpkg_buf *b)
{
	b->len = 0;
	if (b->ptr)
		b->ptr[0] = '\0';
}

char *kmpkg_buf_detach(struct kmpkg_buf *b)
{
	char *p = b->ptr;

	if (!p)
		p = calloc(1, 1);
	b->ptr = NULL;
	b->len = b->cap = 0;
	return p;
}

void kmpkg_buf_release(struct kmpkg_buf *b)
{
	free(b->ptr);
	b->ptr = NULL;
	b->len = b->cap = 0;
}

void kmpkg_hex(char *out, const unsigned char *d, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}
