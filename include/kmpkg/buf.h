/* A growable byte buffer: bytes and their length travel together. */
#ifndef KMPKG_BUF_H
#define KMPKG_BUF_H

#include <stddef.h>
#include <stdarg.h>

struct kmpkg_buf {
	char *ptr;  /* always NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
};

#define KMPKG_BUF_INIT { NULL, 0, 0 }

int kmpkg_buf_grow(struct kmpkg_buf *b, size_t extra);
int kmpkg_buf_put(struct kmpkg_buf *b, const void *data, size_t len);
int kmpkg_buf_puts(struct kmpkg_buf *b, const char *s);
int kmpkg_buf_printf(struct kmpkg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kmpkg_buf_clear(struct kmpkg_buf *b);
/* Hands the bytes to the caller (free() them) and resets the buffer. */
char *kmpkg_buf_detach(struct kmpkg_buf *b);
void kmpkg_buf_release(struct kmpkg_buf *b);

/* n bytes as 2n lowercase hex digits and a NUL into out (2n + 1 bytes). */
void kmpkg_hex(char *out, const unsigned char *d, size_t n);

#endif
