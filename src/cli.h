/*
 * The command-line layer: global options, the command table and output
 * helpers shared by src/cmd_<name>.c. Only this layer prints.
 */
#ifndef KMPKG_CLI_H
#define KMPKG_CLI_H

#include <jansson.h>
#include <stdbool.h>

struct kmpkg_cli {
	const char *root;  /* --root, KMPKG_ROOT, --system, --project or $HOME/.km */
	bool json;         /* print exactly one JSON document on stdout */
	bool quiet;
	bool color;        /* stderr is a TTY and neither --no-color nor NO_COLOR */
	bool tty;          /* stderr is a TTY: progress may be shown */
	int wait_secs;     /* --wait: how long a writer waits for the lock */
};

struct kmpkg_cmd {
	const char *name;
	const char *summary;
	int (*run)(struct kmpkg_cli *cli, int argc, char **argv);
};

/* The static command table (src/commands.c), terminated by a NULL name. */
extern const struct kmpkg_cmd kmpkg_commands[];

/* One per src/cmd_<name>.c; argv[0] is the command name, options follow. */
#define KMPKG_CMD_DECL(n) int kmpkg_cmd_##n(struct kmpkg_cli *cli, int argc, char **argv)
KMPKG_CMD_DECL(install);
KMPKG_CMD_DECL(update);
KMPKG_CMD_DECL(remove);
KMPKG_CMD_DECL(rollback);
KMPKG_CMD_DECL(list);
KMPKG_CMD_DECL(info);
KMPKG_CMD_DECL(search);
KMPKG_CMD_DECL(status);
KMPKG_CMD_DECL(history);
KMPKG_CMD_DECL(show);
KMPKG_CMD_DECL(source);
KMPKG_CMD_DECL(preflight);
KMPKG_CMD_DECL(verify);
KMPKG_CMD_DECL(key);
KMPKG_CMD_DECL(gc);
KMPKG_CMD_DECL(pack);
KMPKG_CMD_DECL(semver);

/* Prints a JSON document on stdout (compact, one line) and takes it over. */
void kmpkg_cli_print_json(json_t *doc);
/* Text output unless --quiet; nothing in --json mode. */
void kmpkg_cli_say(const struct kmpkg_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets a usage error (exit 2) naming the command's man page. */
int kmpkg_cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define KMPKG_VERSION "0.1.0"

#endif
