/* Correlation IDs: UUIDv7 (RFC 9562) or an ID chosen by the caller. */
#ifndef KMPKG_UUID_H
#define KMPKG_UUID_H

#include <stdbool.h>

#define KMPKG_ID_MAX 64

/* 48-bit Unix ms timestamp, version 7, RFC variant, 74 random bits from
 * getrandom(2), as 36 lowercase characters + NUL. */
int kmpkg_uuid_v7(char out[37]);
/* [A-Za-z0-9._-]{1,64} */
bool kmpkg_uuid_id_valid(const char *id);

#endif
