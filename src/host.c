/*
 * The host-profile loader (include/kmpkg/manifest.h, SPEC §8): what the
 * Kilometers host offers, read with the same bounded reader and field
 * getters as manifests; findings are coded HOST_*.
 */
#include <stdlib.h>
#include <string.h>

#include "kmpkg/error.h"
#include "kmpkg/manifest.h"
#include "schema.h"
#include "yamltree.h"

void kmpkg_host_free(struct kmpkg_host *h)
{
	if (!h)
		return;
	free(h->file);
	free(h->host);
	free(h->version);
	kmpkg_strlist_release(&h->api);
	free(h->tier);
	kmpkg_strlist_release(&h->tiers);
	kmpkg_strlist_release(&h->capabilities);
	kmpkg_strlist_release(&h->permissions_allowed);
	if (h->pos) {
		kmpkg_yamltree_free(h->pos->tree);
		free(h->pos);
	}
	free(h);
}

static const char *const host_fields[] = {
	"host", "version", "api", "tier", "tiers", "capabilities", "permissions_allowed", NULL,
};

#define SEMVER_RULE "SemVer 2.0.0 (MAJOR.MINOR.PATCH[-PRE][+BUILD])"

static void check_tiers(struct kmpkg_schema *s, struct kmpkg_host *h, kmpkg_ynode *root, kmpkg_ynode *tiers)
{
	size_t i, j;

	for (i = 0; tiers && i < h->tiers.n; i++)
		for (j = 0; j < i; j++)
			if (!strcmp(h->tiers.v[i], h->tiers.v[j]))
				kmpkg_schema_report(s, KMPKG_SEV_ERROR, "INVALID_VALUE", tiers->items[i], NULL,
						    "distinct tier names", h->tiers.v[i], "remove the repeated tier",
						    "tier '%.100s' is listed twice", h->tiers.v[i]);
	if (!h->tier)
		return;
	if (!tiers) {
		if (!kmpkg_yamltree_get(root, "tiers"))
			kmpkg_schema_report(s, KMPKG_SEV_ERROR, "MISSING_FIELD", root, "/tiers", NULL, NULL,
					    "add tiers: [free, pro, team, enterprise] (lowest first)",
					    "required field 'tiers' is missing (tier is set)");
		return;
	}
	if (!kmpkg_strlist_contains(&h->tiers, h->tier))
		kmpkg_schema_report(s, KMPKG_SEV_ERROR, "INVALID_VALUE", kmpkg_yamltree_get(root, "tier"), NULL,
				    "one of tiers", h->tier, "use one of the names listed in tiers",
				    "tier '%.100s' is not in tiers", h->tier);
}

int kmpkg_host_load_buf(struct kmpkg_host **out, const char *file, const char *data, size_t len,
			struct kmpkg_diags *diags)
{
	struct kmpkg_schema s = { file, "HOST", diags, 0, false };
	struct kmpkg_host *h = NULL;
	struct kmpkg_yamltree *t = NULL;
	kmpkg_ynode *root, *api, *tiers;
	size_t i;
	int err;

	*out = NULL;
	if ((err = kmpkg_schema_open(&t, file, data, len, "HOST", diags)) != 0)
		return err;
	root = t->root;
	h = calloc(1, sizeof(*h));
	if (!h || !(h->file = strdup(file))) {
		err = kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
		goto cleanup;
	}
	kmpkg_schema_string(&s, &h->host, root, "host", true);
	if (h->host && !h->host[0])
		kmpkg_schema_report(&s, KMPKG_SEV_ERROR, "INVALID_VALUE", kmpkg_yamltree_get(root, "host"), NULL,
				    "a host name", "\"\"", "name the host, e.g. km", "host is empty");
	kmpkg_schema_string(&s, &h->version, root, "version", true);
	if (h->version && !kmpkg_schema_semver_valid(h->version))
		kmpkg_schema_report(&s, KMPKG_SEV_ERROR, "INVALID_VALUE", kmpkg_yamltree_get(root, "version"),
				    NULL, SEMVER_RULE, h->version, "write the host's full version, e.g. 1.6.0",
				    "'%.100s' is not a SemVer 2.0.0 version", h->version);
	api = kmpkg_schema_strlist(&s, &h->api, root, "api", false);
	for (i = 0; api && i < h->api.n; i++)
		if (!kmpkg_schema_semver_valid(h->api.v[i]))
			kmpkg_schema_report(&s, KMPKG_SEV_ERROR, "INVALID_VALUE", api->items[i], NULL, SEMVER_RULE,
					    h->api.v[i], "list full API versions, e.g. [2.3.0]",
					    "'%.100s' is not a SemVer 2.0.0 version", h->api.v[i]);
	kmpkg_schema_string(&s, &h->tier, root, "tier", false);
	tiers = kmpkg_schema_strlist(&s, &h->tiers, root, "tiers", false);
	check_tiers(&s, h, root, tiers);
	kmpkg_schema_strlist(&s, &h->capabilities, root, "capabilities", false);
	kmpkg_schema_strlist(&s, &h->permissions_allowed, root, "permissions_allowed", false);
	kmpkg_schema_unknown(&s, root, host_fields);

	if ((err = kmpkg_schema_close(&h->pos, &s, &t)) != 0)
		goto cleanup;
	*out = h;
	h = NULL;
cleanup:
	kmpkg_host_free(h);
	kmpkg_yamltree_free(t);
	return err;
}

int kmpkg_host_load_file(struct kmpkg_host **out, const char *path, struct kmpkg_diags *diags)
{
	char *data = NULL;
	size_t len, total;
	int err;

	*out = NULL;
	if ((err = kmpkg_yamltree_read_file(&data, &len, &total, path, KMPKG_MANIFEST_MAX_BYTES)) != 0)
		return err;
	if (!data)
		return kmpkg_yamltree_too_large(path, "HOST", total, KMPKG_MANIFEST_MAX_BYTES, diags);
	err = kmpkg_host_load_buf(out, path, data, len, diags);
	free(data);
	return err;
}
