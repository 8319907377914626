/* SARIF 2.1.0 renderer (include/kmpkg/sarif.h), built with jansson. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kmpkg/buf.h"
#include "kmpkg/sarif.h"

#define SARIF_SCHEMA "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"

/* RFC 3986 path characters pass; everything else is percent-encoded. */
static void uri_encode(struct kmpkg_buf *b, const char *s)
{
	static const char keep[] = "-._~!$&'()*+,;=:@/";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    (ch && strchr(keep, ch)))
			kmpkg_buf_put(b, s, 1);
		else
			kmpkg_buf_printf(b, "%%%02X", ch);
	}
}

static json_t *artifact_uri(const char *file, const char *base_dir)
{
	struct kmpkg_buf b = KMPKG_BUF_INIT;
	size_t blen = base_dir ? strlen(base_dir) : 0;
	json_t *j;

	while (blen > 1 && base_dir[blen - 1] == '/')
		blen--;
	if (file[0] == '/' && blen && !strncmp(file, base_dir, blen) && file[blen] == '/') {
		file += blen + 1;
	} else if (file[0] == '/') {
		kmpkg_buf_puts(&b, "file://");
	}
	while (!strncmp(file, "./", 2))
		file += 2;
	uri_encode(&b, file);
	j = json_string(b.ptr ? b.ptr : "");
	kmpkg_buf_release(&b);
	return j;
}

static size_t rule_index(json_t *rules, const char *code, kmpkg_sarif_rule_fn rule, bool *oom)
{
	const char *summary = "kmpkg diagnostic", *help = "See kmpkg-preflight(1).";
	size_t i;
	json_t *r;

	for (i = 0; i < json_array_size(rules); i++)
		if (!strcmp(json_string_value(json_object_get(json_array_get(rules, i), "id")), code))
			return i;
	if (rule)
		rule(code, &summary, &help);
	r = json_pack("{s:s, s:s, s:{s:s}, s:{s:s}}", "id", code, "name", code, "shortDescription", "text",
		      summary, "help", "text", help);
	if (!r || json_array_append_new(rules, r) != 0)
		*oom = true;
	return i;
}

json_t *kmpkg_sarif_from_diags(const struct kmpkg_diags *d, kmpkg_sarif_rule_fn rule, const char *base_dir,
			       const char *tool_version)
{
	json_t *rules = json_array(), *results = json_array(), *driver = NULL, *log = NULL;
	struct kmpkg_buf text = KMPKG_BUF_INIT;
	bool oom = !rules || !results;
	size_t i;

	for (i = 0; !oom && i < d->n; i++) {
		const struct kmpkg_diag *x = &d->v[i];
		json_t *res, *loc, *props, *phys;
		size_t idx = rule_index(rules, x->code, rule, &oom);

		kmpkg_buf_clear(&text);
		if (x->next_step)
			kmpkg_buf_printf(&text, "%s (next step: %s)", x->message, x->next_step);
		else
			kmpkg_buf_puts(&text, x->message);
		phys = json_pack("{s:{s:o}}", "artifactLocation", "uri", artifact_uri(x->file, base_dir));
		/* region.startLine must be >= 1: leave the region out when unknown. */
		if (phys && x->line > 0)
			json_object_set_new(phys, "region", json_pack("{s:i, s:i}", "startLine", x->line,
								       "startColumn", x->column > 0 ? x->column : 1));
		loc = json_pack("[{s:o}]", "physicalLocation", phys);
		props = json_pack("{s:s}", "field", x->field);
		if (props && x->required)
			json_object_set_new(props, "required", json_string(x->required));
		if (props && x->actual)
			json_object_set_new(props, "actual", json_string(x->actual));
		if (props && x->next_step)
			json_object_set_new(props, "next_step", json_string(x->next_step));
		res = json_pack("{s:s, s:I, s:s, s:{s:s}, s:o, s:o}", "ruleId", x->code, "ruleIndex",
				(json_int_t)idx, "level", x->severity == KMPKG_SEV_ERROR ? "error" : "warning",
				"message", "text", text.ptr ? text.ptr : x->message, "locations", loc,
				"properties", props);
		if (!res || json_array_append_new(results, res) != 0)
			oom = true;
	}
	kmpkg_buf_release(&text);
	if (oom)
		goto fail;
	driver = json_pack("{s:s, s:s, s:o}", "name", "kmpkg", "informationUri", KMPKG_SARIF_INFORMATION_URI,
			   "rules", rules);
	rules = NULL;
	if (driver && tool_version)
		json_object_set_new(driver, "version", json_string(tool_version));
	log = json_pack("{s:s, s:s, s:[{s:{s:o}, s:o}]}", "$schema", SARIF_SCHEMA, "version", "2.1.0", "runs",
			"tool", "driver", driver, "results", results);
	return log;
fail:
	json_decref(rules);
	json_decref(results);
	return NULL;
}
