/*
 * cli.h - the `fed` command: one binary, git-style subcommands.
 *
 * Each subcommand is a function taking its own argc/argv (argv[0] is the
 * subcommand's name) and returning the process exit status: 0 on success,
 * 1 on failure after printing one line to stderr, 2 on a usage error.
 */
#ifndef FED_CLI_H
#define FED_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "common/crypto.h"

struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

/* Print "fed: <message>" on stderr; returns 1 (the failure status). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "fed <cmd>: <message>" and a hint to use --help; returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Parse a decimal unsigned integer in [lo, hi].  Returns 0 or -1. */
int cli_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

/* Format n bytes for people: "12.3 MiB". */
const char *cli_bytes(uint64_t n, char buf[32]);

/* keys (cmd_key.c) */
int cmd_keygen(int argc, char **argv);
int cmd_pubkey(int argc, char **argv);

/* snapshots (cmd_snapshot.c) */
int cmd_snapshot(int argc, char **argv);
int cmd_snapshot_create(int argc, char **argv);	/* cmd_create.c */

/* the authority (cmd_authority.c) */
int cmd_register(int argc, char **argv);
int cmd_trust(int argc, char **argv);
int cmd_lookup(int argc, char **argv);
int cmd_hosts(int argc, char **argv);
int cmd_report(int argc, char **argv);

/* visitors and owners' checks (cmd_client.c) */
int cmd_get(int argc, char **argv);
int cmd_proxy(int argc, char **argv);
int cmd_audit(int argc, char **argv);

/* what the vmrunner runs (cmd_status.c) */
int cmd_status(int argc, char **argv);

#endif
