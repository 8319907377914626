/* Preflight checks of one manifest (include/kmpkg/preflight.h). */
#include "kmpkg/error.h"
#include "kmpkg/preflight.h"

int kmpkg_preflight_check_file(const char *path, const struct kmpkg_host *host, struct kmpkg_diags *d)
{
	struct kmpkg_manifest *m = NULL;
	size_t before = kmpkg_diags_count(d, KMPKG_SEV_ERROR);
	int err;

	(void)host; /* host checks (ranges, tier, capabilities, permissions) come here */
	err = kmpkg_manifest_load_file(&m, path, d);
	if (err && err != KMPKG_EUSAGE)
		goto cleanup;
	err = kmpkg_diags_count(d, KMPKG_SEV_ERROR) > before ? KMPKG_EPREFLIGHT : 0;
cleanup:
	kmpkg_manifest_free(m);
	return err;
}
