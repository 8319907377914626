/*
 * libFuzzer target: SemVer versions and node-semver ranges. The input is up
 * to three lines: a version A, a range (also tried as a version B) and, when
 * present, a third text tried as both. Beyond "no crash", it checks what must
 * hold whatever node-semver's quirks: a formatted version parses back to an
 * equal version with the same text, comparison is antisymmetric, and a
 * formatted range parses back and admits exactly the same versions.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kmpkg/error.h"
#include "kmpkg/semver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_version(const char *s, struct kmpkg_semver *out, bool *ok)
{
	struct kmpkg_semver again;
	char *f = NULL, *g = NULL, *sh = NULL;

	*ok = kmpkg_semver_parse(out, s) == 0;
	kmpkg_error_clear();
	if (kmpkg_semver_valid(s) != *ok)
		abort();
	if (!*ok)
		return;
	f = kmpkg_semver_format(out);
	sh = kmpkg_semver_format_short(out);
	if (!f || !sh)
		abort();
	if (kmpkg_semver_parse(&again, f) != 0)
		abort(); /* canonical text does not parse */
	if (kmpkg_semver_cmp(out, &again) != 0)
		abort();
	g = kmpkg_semver_format(&again);
	if (!g || strcmp(f, g) != 0)
		abort();
	kmpkg_semver_release(&again);
	free(f);
	free(g);
	free(sh);
}

static void check_range(const char *s, const struct kmpkg_semver *const *vs, size_t nv)
{
	struct kmpkg_semver_range *r = NULL, *r2 = NULL;
	char *f = NULL, *f2 = NULL;
	size_t i;

	if (kmpkg_semver_range_parse(&r, s) != 0) {
		kmpkg_error_clear();
		return;
	}
	f = kmpkg_semver_range_format(r);
	if (!f)
		abort();
	if (kmpkg_semver_range_parse(&r2, f) != 0)
		abort(); /* a normalised range must parse */
	f2 = kmpkg_semver_range_format(r2);
	if (!f2)
		abort();
	for (i = 0; i < nv; i++)
		if (vs[i] && kmpkg_semver_range_test(r, vs[i]) != kmpkg_semver_range_test(r2, vs[i]))
			abort(); /* normalising changed the meaning */
	kmpkg_semver_range_free(r);
	kmpkg_semver_range_free(r2);
	free(f);
	free(f2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kmpkg_semver va, vb, vc;
	const struct kmpkg_semver *vs[3] = { NULL, NULL, NULL };
	char *text, *lines[3] = { "", "", "" };
	bool oka = false, okb = false, okc = false;
	size_t i, n = 0;
	int cmp1 = 0, cmp2 = 0;

	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	lines[n++] = text;
	for (i = 0; i < size && n < 3; i++) {
		if (text[i] == '\n') {
			text[i] = '\0';
			lines[n++] = text + i + 1;
		}
	}

	check_version(lines[0], &va, &oka);
	check_version(lines[1], &vb, &okb);
	check_version(lines[2], &vc, &okc);
	if (oka)
		vs[0] = &va;
	if (okb)
		vs[1] = &vb;
	if (okc)
		vs[2] = &vc;
	if (oka && okb) {
		int ab = kmpkg_semver_cmp(&va, &vb), ba = kmpkg_semver_cmp(&vb, &va);

		if (ab != -ba || ab < -1 || ab > 1)
			abort();
		if (kmpkg_semver_compare(&cmp1, lines[0], lines[1]) != 0 || cmp1 != ab)
			abort();
	} else if (kmpkg_semver_compare(&cmp2, lines[0], lines[1]) == 0) {
		abort(); /* compare accepted a version parse refused */
	}
	kmpkg_error_clear();

	check_range(lines[1], vs, 3);
	check_range(lines[2], vs, 3);
	kmpkg_semver_satisfies(lines[0], lines[1]);
	kmpkg_error_clear();

	if (oka)
		kmpkg_semver_release(&va);
	if (okb)
		kmpkg_semver_release(&vb);
	if (okc)
		kmpkg_semver_release(&vc);
	free(text);
	return 0;
}
