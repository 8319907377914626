/*
 * libFuzzer target: the manifest and host-profile loaders (SPEC §6, §8) on
 * arbitrary bytes, then every consumer of what they return (positions,
 * diagnostics renderers), so a loader that hands back a half-built result
 * shows up here and not in preflight. An accepted manifest's version must
 * also be one the semver module (the resolver's) accepts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kmpkg/diag.h"
#include "kmpkg/error.h"
#include "kmpkg/manifest.h"
#include "kmpkg/semver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const pointers[] = {
	"", "/name", "/version", "/dependencies", "/dependencies/json-helpers", "/capabilities/requires/0",
	"/health/command/0", "/artifact/sha256", "/tiers/1", "/a~1b/~0c", "/x/", "//",
};

static void render(const struct kmpkg_diags *d)
{
	static FILE *sink;
	json_t *j;

	if (!sink)
		sink = fopen("/dev/null", "w");
	if (sink) {
		kmpkg_diags_write_text(d, sink, 1);
		kmpkg_diags_write_github(d, sink);
	}
	j = kmpkg_diags_to_json(d);
	json_decref(j);
}

static void probe(const struct kmpkg_posmap *pos)
{
	size_t i;
	int line, col;

	for (i = 0; i < sizeof(pointers) / sizeof(pointers[0]); i++)
		kmpkg_posmap_find(pos, pointers[i], &line, &col);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kmpkg_diags diags = KMPKG_DIAGS_INIT;
	struct kmpkg_manifest *m = NULL;
	struct kmpkg_host *h = NULL;
	char *copy;
	int rc;

	/* An exact-size copy without a terminating NUL: an over-read is a bug. */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);

	rc = kmpkg_manifest_load_buf(&m, "fuzz.yaml", copy, size, &diags);
	if (rc == 0 && !m)
		abort();
	if (rc != 0 && m)
		abort();
	if (m) {
		probe(m->pos);
		if (!kmpkg_manifest_name_valid(m->name))
			abort(); /* the loader accepted a name the rule refuses */
		if (!kmpkg_semver_valid(m->version))
			abort(); /* a version the resolver would refuse */
		kmpkg_strlist_contains(&m->requires, "net");
	}
	render(&diags);
	kmpkg_manifest_free(m);
	kmpkg_diags_release(&diags);
	kmpkg_error_clear();

	rc = kmpkg_host_load_buf(&h, "fuzz-host.yaml", copy, size, &diags);
	if (rc == 0 && !h)
		abort();
	if (rc != 0 && h)
		abort();
	if (h) {
		probe(h->pos);
		size_t i;

		kmpkg_strlist_contains(&h->tiers, h->tier ? h->tier : "");
		if (!h->version || !kmpkg_semver_valid(h->version))
			abort();
		for (i = 0; i < h->api.n; i++)
			if (!kmpkg_semver_valid(h->api.v[i]))
				abort();
	}
	render(&diags);
	kmpkg_host_free(h);
	kmpkg_diags_release(&diags);
	kmpkg_error_clear();

	free(copy);
	return 0;
}
