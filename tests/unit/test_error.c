/* error, buf, diag and sha256: the side channel, the buffer, the renderers,
 * the digest every package, cache entry and file is named or checked by. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmpkg/buf.h"
#include "kmpkg/diag.h"
#include "kmpkg/error.h"
#include "kmpkg/sha256.h"

Test(error, set_returns_class_and_records_fields)
{
	int rc = kmpkg_error_set(KMPKG_EVERIFY, "E_DIGEST", "/artifact/sha256", "re-download it",
				 "digest %s differs\nsecond line", "abc");
	const struct kmpkg_error *e = kmpkg_error_last();

	cr_assert_eq(rc, KMPKG_EVERIFY);
	cr_assert_eq(e->klass, -4);
	cr_assert_str_eq(e->code, "E_DIGEST");
	cr_assert_str_eq(e->field, "/artifact/sha256");
	cr_assert_str_eq(e->message, "digest abc differs second line");
	cr_assert_str_eq(e->next_step, "re-download it");
}

Test(error, errno_maps_disk_full_to_resource)
{
	int rc = kmpkg_error_errno(ENOSPC, "write", "/x/y");

	cr_assert_eq(rc, KMPKG_ERESOURCE);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_DISK_FULL");
	cr_assert(strstr(kmpkg_error_last()->message, "/x/y") != NULL);
}

Test(error, errno_read_only_file_system_says_remount)
{
	int rc = kmpkg_error_errno(EROFS, "open", "R/kmpkg/lock");

	cr_assert_eq(rc, KMPKG_ERESOURCE);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_PERMISSION");
	cr_assert(strstr(kmpkg_error_last()->next_step, "remount") != NULL, "%s", kmpkg_error_last()->next_step);
	kmpkg_error_errno(EACCES, "open", "R/kmpkg/lock");
	cr_assert_str_eq(kmpkg_error_last()->code, "E_PERMISSION");
	cr_assert(strstr(kmpkg_error_last()->next_step, "remount") == NULL, "%s", kmpkg_error_last()->next_step);
}

Test(error, prefix_adds_context)
{
	kmpkg_error_set(KMPKG_EGENERIC, "E_X", NULL, NULL, "inner");
	kmpkg_error_prefix("outer %d", 1);
	cr_assert_str_eq(kmpkg_error_last()->message, "outer 1: inner");
}

Test(buf, grows_and_detaches)
{
	struct kmpkg_buf b = KMPKG_BUF_INIT;
	char *s;
	int i;

	for (i = 0; i < 1000; i++)
		cr_assert_eq(kmpkg_buf_printf(&b, "%d,", i), 0);
	cr_assert_eq(b.len, strlen(b.ptr));
	cr_assert(strncmp(b.ptr, "0,1,2,", 6) == 0);
	s = kmpkg_buf_detach(&b);
	cr_assert_null(b.ptr);
	cr_assert_eq(strlen(s), 3890);
	free(s);
}

Test(diag, text_and_github_rendering)
{
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	kmpkg_diags_add(&d, KMPKG_SEV_ERROR, "HOST_RANGE_UNSATISFIED", "/host", "a/kmpkg.yaml", 5, 7,
			">=2.0.0", "1.6.0", "install foo@1.1.3", "host %s not in range", "1.6.0");
	kmpkg_diags_add(&d, KMPKG_SEV_WARNING, "UNKNOWN_FIELD", "/x", "a/kmpkg.yaml", 9, 1, NULL, NULL,
			NULL, "unknown field");
	cr_assert_eq(kmpkg_diags_count(&d, KMPKG_SEV_ERROR), 1);
	cr_assert_eq(kmpkg_diags_count(&d, KMPKG_SEV_WARNING), 1);

	f = open_memstream(&out, &len);
	kmpkg_diags_write_text(&d, f, 0);
	fclose(f);
	cr_assert(strstr(out, "a/kmpkg.yaml:5:7: error[HOST_RANGE_UNSATISFIED]: host 1.6.0 not in range") == out);
	cr_assert(strstr(out, "  next step: install foo@1.1.3\n") != NULL);
	cr_assert(strstr(out, "a/kmpkg.yaml:9:1: warning[UNKNOWN_FIELD]") != NULL);
	free(out);

	f = open_memstream(&out, &len);
	kmpkg_diags_write_github(&d, f);
	fclose(f);
	cr_assert(strstr(out, "::error file=a/kmpkg.yaml,line=5,col=7,title=HOST_RANGE_UNSATISFIED::host 1.6.0") == out);
	free(out);
	kmpkg_diags_release(&d);
}

Test(diag, json_has_every_field)
{
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	json_t *j;

	kmpkg_diags_add(&d, KMPKG_SEV_ERROR, "C", "/f", "file", 2, 3, "r", NULL, "n", "m");
	j = kmpkg_diags_to_json(&d);
	cr_assert_eq(json_array_size(j), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 0), "code")), "C");
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(j, 0), "line")), 2);
	cr_assert(json_is_null(json_object_get(json_array_get(j, 0), "actual")));
	json_decref(j);
	kmpkg_diags_release(&d);
}

/* FIPS 180-2 vectors, and a stream fed in uneven pieces gives the one-shot
 * digest (the download, extraction and cache checks feed 64 KiB reads). */
Test(sha256, known_vectors)
{
	char hex[65];

	kmpkg_sha256_buf_hex("", 0, hex);
	cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	kmpkg_sha256_buf_hex("abc", 3, hex);
	cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	kmpkg_sha256_buf_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
	cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(sha256, stream_in_pieces_equals_one_shot)
{
	size_t n = 1000000, off = 0, step = 1;
	unsigned char *m = malloc(n), md[32];
	struct kmpkg_sha256 h;
	char one[65], streamed[65], again[65];

	cr_assert_not_null(m);
	memset(m, 'a', n);
	kmpkg_sha256_buf_hex(m, n, one);
	/* a million 'a': the third FIPS 180-2 vector */
	cr_assert_str_eq(one, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	kmpkg_sha256_init(&h);
	while (off < n) {
		size_t k = step < n - off ? step : n - off;

		kmpkg_sha256_update(&h, m + off, k);
		off += k;
		step = step * 3 + 1;
	}
	kmpkg_sha256_hex(&h, streamed);
	cr_assert_str_eq(streamed, one);
	/* initialised again, the context starts over */
	kmpkg_sha256_init(&h);
	kmpkg_sha256_update(&h, "abc", 3);
	kmpkg_sha256_final(&h, md);
	kmpkg_hex(again, md, sizeof(md));
	cr_assert_str_eq(again, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	free(m);
}
