/* Output helpers for the command layer (src/cli.h). */
#include <stdarg.h>
#include <stdio.h>

#include "cli.h"
#include "kmpkg/error.h"

void kmpkg_cli_print_json(json_t *doc)
{
	if (!doc) {
		puts("{\"error\":{\"code\":\"E_NOMEM\",\"field\":\"\",\"message\":\"out of memory\",\"next_step\":\"\"}}");
		return;
	}
	json_dumpf(doc, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
	fputc('\n', stdout);
	fflush(stdout);
	json_decref(doc);
}

void kmpkg_cli_say(const struct kmpkg_cli *cli, const char *fmt, ...)
{
	va_list ap;

	if (cli->json || cli->quiet)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

int kmpkg_cli_usage(const char *cmd, const char *fmt, ...)
{
	char msg[512];
	char next[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (cmd)
		snprintf(next, sizeof(next), "see 'kmpkg %s --help' or kmpkg-%s(1)", cmd, cmd);
	else
		snprintf(next, sizeof(next), "see 'kmpkg --help' or kmpkg(1)");
	return kmpkg_error_set(KMPKG_EUSAGE, "E_USAGE", NULL, next, "%s", msg);
}
