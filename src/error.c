/* The per-thread error side channel (include/kmpkg/error.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kmpkg/error.h"

static _Thread_local struct kmpkg_error last;

static void copy(char *dst, size_t cap, const char *src)
{
	if (!src)
		src = "";
	snprintf(dst, cap, "%s", src);
}

int kmpkg_error_vset(int klass, const char *code, const char *field, const char *next_step,
		     const char *fmt, va_list ap)
{
	char *nl;

	last.klass = klass;
	copy(last.code, sizeof(last.code), code);
	copy(last.field, sizeof(last.field), field);
	copy(last.next_step, sizeof(last.next_step), next_step);
	vsnprintf(last.message, sizeof(last.message), fmt, ap);
	/* Messages are one line: fold anything a caller let through. */
	while ((nl = strpbrk(last.message, "\r\n")) != NULL)
		*nl = ' ';
	return klass;
}

int kmpkg_error_set(int klass, const char *code, const char *field, const char *next_step,
		    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kmpkg_error_vset(klass, code, field, next_step, fmt, ap);
	va_end(ap);
	return klass;
}

int kmpkg_error_errno(int err, const char *what, const char *path)
{
	const char *code = "E_IO";
	const char *next = "check the file system under the root and retry";

	switch (err) {
	case ENOSPC:
	case EDQUOT:
		code = "E_DISK_FULL";
		next = "free space on the file system that holds the root, then retry";
		break;
	case EACCES:
	case EPERM:
		code = "E_PERMISSION";
		next = "run as a user that can write the root, or choose another --root";
		break;
	case EROFS:
		code = "E_PERMISSION";
		next = "remount the file system that holds the root read-write, or choose another --root";
		break;
	case ENOENT:
		code = "E_IO";
		break;
	default:
		break;
	}
	return kmpkg_error_set(KMPKG_ERESOURCE, code, NULL, next, "%s %s: %s", what,
			       path ? path : "", strerror(err));
}

const struct kmpkg_error *kmpkg_error_last(void)
{
	return &last;
}

void kmpkg_error_clear(void)
{
	memset(&last, 0, sizeof(last));
}

void kmpkg_error_prefix(const char *fmt, ...)
{
	char prefix[512];
	char msg[sizeof(last.message)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	snprintf(msg, sizeof(msg), "%s: %s", prefix, last.message);
	memcpy(last.message, msg, sizeof(msg));
}
