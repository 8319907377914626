/* host: the host-profile loader (SPEC §8), findings coded HOST_*. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmpkg/diag.h"
#include "kmpkg/error.h"
#include "kmpkg/manifest.h"

#define BASE "host: km\nversion: 1.6.0\n"

static void expect_one(const char *what, const char *y, const char *code, int line, int col, const char *field)
{
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_host *h = NULL;
	int rc = kmpkg_host_load_buf(&h, "h.yaml", y, strlen(y), &d);

	cr_assert_eq(rc, KMPKG_EUSAGE, "%s: rc %d", what, rc);
	cr_assert_null(h, "%s", what);
	cr_assert_eq(d.n, 1, "%s: %zu findings, first %s", what, d.n, d.n ? d.v[0].code : "-");
	cr_assert_str_eq(d.v[0].code, code, "%s", what);
	cr_assert_eq(d.v[0].line, line, "%s: line %d column %d", what, d.v[0].line, d.v[0].column);
	cr_assert_eq(d.v[0].column, col, "%s: column %d", what, d.v[0].column);
	cr_assert_str_eq(d.v[0].field, field, "%s: field %s", what, d.v[0].field);
	kmpkg_diags_release(&d);
}

Test(host, valid_profile_loads_every_field)
{
	const char *top = getenv("KMPKG_SRCDIR");
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_host *h = NULL;
	char *path = NULL;
	int line, col;

	cr_assert(asprintf(&path, "%s/fixtures/hosts/valid.yaml", top ? top : ".") > 0);
	cr_assert_eq(kmpkg_host_load_file(&h, path, &d), 0);
	cr_assert_eq(d.n, 0);
	cr_assert_str_eq(h->file, path);
	cr_assert_str_eq(h->host, "km");
	cr_assert_str_eq(h->version, "1.6.0");
	cr_assert_eq(h->api.n, 1);
	cr_assert_str_eq(h->api.v[0], "2.3.0");
	cr_assert_str_eq(h->tier, "team");
	cr_assert_eq(h->tiers.n, 4);
	cr_assert_str_eq(h->tiers.v[0], "free");
	cr_assert_str_eq(h->tiers.v[3], "enterprise");
	cr_assert_eq(h->capabilities.n, 2);
	cr_assert_str_eq(h->capabilities.v[1], "http.client");
	cr_assert_eq(h->permissions_allowed.n, 2);
	cr_assert_str_eq(h->permissions_allowed.v[1], "filesystem_read");
	cr_assert(kmpkg_strlist_contains(&h->tiers, "pro"));
	cr_assert_not(kmpkg_strlist_contains(&h->tiers, "gold"));
	cr_assert(kmpkg_posmap_find(h->pos, "/tiers/2", &line, &col));
	cr_assert_eq(line, 5);
	cr_assert_eq(col, 20);
	kmpkg_host_free(h);
	free(path);
}

Test(host, minimal_profile)
{
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_host *h = NULL;

	cr_assert_eq(kmpkg_host_load_buf(&h, "h.yaml", BASE, strlen(BASE), &d), 0);
	cr_assert_eq(d.n, 0);
	cr_assert_eq(h->api.n, 0);
	cr_assert_null(h->tier);
	kmpkg_host_free(h);
}

Test(host, findings)
{
	expect_one("no host", "version: 1.6.0\n", "HOST_MISSING_FIELD", 1, 1, "/host");
	expect_one("no version", "host: km\n", "HOST_MISSING_FIELD", 1, 1, "/version");
	expect_one("host list", "host: [km]\nversion: 1.6.0\n", "HOST_TYPE", 1, 7, "/host");
	expect_one("version bad", "host: km\nversion: 1.6\n", "HOST_INVALID_VALUE", 2, 10, "/version");
	expect_one("api string", BASE "api: 2.3.0\n", "HOST_TYPE", 3, 6, "/api");
	expect_one("api item bad", BASE "api: [2.3.0, '2.x']\n", "HOST_INVALID_VALUE", 3, 14, "/api/1");
	expect_one("tier not listed", BASE "tier: gold\ntiers: [free, pro]\n", "HOST_INVALID_VALUE", 3, 7, "/tier");
	expect_one("tier without tiers", BASE "tier: pro\n", "HOST_MISSING_FIELD", 1, 1, "/tiers");
	expect_one("tiers repeated", BASE "tiers: [free, pro, free]\n", "HOST_INVALID_VALUE", 3, 20, "/tiers/2");
	expect_one("capabilities map", BASE "capabilities: {a: b}\n", "HOST_TYPE", 3, 15, "/capabilities");
	expect_one("permissions item", BASE "permissions_allowed: [network, [x]]\n", "HOST_TYPE", 3, 32,
		   "/permissions_allowed/1");
	expect_one("alias", BASE "api: &a [1.0.0]\n", "YAML_ALIAS", 3, 6, "/api");
	expect_one("empty", "", "HOST_EMPTY", 1, 1, "");
	expect_one("list", "- km\n", "HOST_TYPE", 1, 1, "");
}

Test(host, unknown_field_is_a_warning)
{
	const char *y = BASE "colour: blue\n";
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_host *h = NULL;

	cr_assert_eq(kmpkg_host_load_buf(&h, "h.yaml", y, strlen(y), &d), 0);
	cr_assert_eq(d.n, 1);
	cr_assert_str_eq(d.v[0].code, "HOST_UNKNOWN_FIELD");
	cr_assert_eq(d.v[0].severity, KMPKG_SEV_WARNING);
	kmpkg_host_free(h);
	kmpkg_diags_release(&d);
}

Test(host, too_large)
{
	size_t n = KMPKG_MANIFEST_MAX_BYTES + 1;
	char *y = malloc(n + 1);
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_host *h = NULL;

	memset(y, '#', n);
	y[n] = '\0';
	cr_assert_eq(kmpkg_host_load_buf(&h, "h.yaml", y, n, &d), KMPKG_EUSAGE);
	cr_assert_eq(d.n, 1);
	cr_assert_str_eq(d.v[0].code, "HOST_TOO_LARGE");
	kmpkg_diags_release(&d);
	free(y);
}

Test(host, missing_file)
{
	struct kmpkg_diags d = KMPKG_DIAGS_INIT;
	struct kmpkg_host *h = NULL;

	cr_assert_eq(kmpkg_host_load_file(&h, "/nonexistent/host.yaml", &d), KMPKG_ENOTFOUND);
	cr_assert_eq(d.n, 0);
}
