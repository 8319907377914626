/* TEMPORARY weak stand-ins for kmpkg_semver_satisfies/compare until the
 * semver module (branch wt-semver) is merged; the real definitions override
 * these. Handles X.Y.Z, ^, ~, comparators, * and || only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmpkg/error.h"
#include "kmpkg/semver.h"

static int fb_parse(long v[3], const char *s)
{
	char *end;
	int i;

	for (i = 0; i < 3; i++) {
		v[i] = strtol(s, &end, 10);
		if (end == s)
			return -1;
		s = end;
		if (i < 2) {
			if (*s != '.')
				return -1;
			s++;
		}
	}
	return (*s == '\0' || *s == '-' || *s == '+' || *s == ' ') ? 0 : -1;
}

static int fb_cmp(const long a[3], const long b[3])
{
	int i;

	for (i = 0; i < 3; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return 0;
}

__attribute__((weak)) int kmpkg_semver_compare(int *out, const char *a, const char *b)
{
	long x[3], y[3];

	if (fb_parse(x, a) || fb_parse(y, b))
		return KMPKG_EUSAGE;
	*out = fb_cmp(x, y);
	return 0;
}

static int fb_one(const long v[3], const char *c)
{
	long w[3], hi[3];
	int k;

	if (strcmp(c, "*") == 0 || *c == '\0')
		return 1;
	if (c[0] == '^' || c[0] == '~') {
		if (fb_parse(w, c + 1))
			return -1;
		memcpy(hi, w, sizeof(hi));
		if (c[0] == '~' || (w[0] == 0 && w[1] != 0)) {
			hi[1]++;
			hi[2] = 0;
		} else if (w[0] == 0) {
			hi[2]++;
		} else {
			hi[0]++;
			hi[1] = hi[2] = 0;
		}
		return fb_cmp(v, w) >= 0 && fb_cmp(v, hi) < 0;
	}
	if (strncmp(c, ">=", 2) == 0)
		return fb_parse(w, c + 2) ? -1 : fb_cmp(v, w) >= 0;
	if (strncmp(c, "<=", 2) == 0)
		return fb_parse(w, c + 2) ? -1 : fb_cmp(v, w) <= 0;
	if (c[0] == '>')
		return fb_parse(w, c + 1) ? -1 : fb_cmp(v, w) > 0;
	if (c[0] == '<')
		return fb_parse(w, c + 1) ? -1 : fb_cmp(v, w) < 0;
	k = c[0] == '=' ? 1 : 0;
	return fb_parse(w, c + k) ? -1 : fb_cmp(v, w) == 0;
}

__attribute__((weak)) int kmpkg_semver_satisfies(const char *version, const char *range)
{
	char *copy = strdup(range), *alt, *save1 = NULL;
	long v[3];
	int any = 0;

	if (!copy || fb_parse(v, version)) {
		free(copy);
		return KMPKG_EUSAGE;
	}
	for (alt = strtok_r(copy, "|", &save1); alt; alt = strtok_r(NULL, "|", &save1)) {
		char *c, *save2 = NULL;
		int all = 1;

		for (c = strtok_r(alt, " ", &save2); c; c = strtok_r(NULL, " ", &save2)) {
			int r = fb_one(v, c);

			if (r < 0) {
				free(copy);
				return KMPKG_EUSAGE;
			}
			all &= r;
		}
		any |= all;
	}
	free(copy);
	return any;
}
