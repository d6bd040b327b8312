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
#include "common/manifest.h"

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

/*
 * What a client trusts (--authority-key KEY, --allow-stale): t->on when a
 * key is given (64 hex digits or a public key file).  --allow-stale without
 * a key is a usage error: there is nothing to be stale; so is --mirror
 * (mirrors: "ADDR:PORT,...", checked here; may be NULL) without one: a
 * peer's answer is worth its signature.  Returns 0, or the
 * exit status after one line on stderr.
 */
struct signed_trust;
int cli_trust(const char *cmd, const char *key, bool allow_stale,
	      const char *mirrors, struct signed_trust *t);

/* Format n bytes for people: "12.3 MiB". */
const char *cli_bytes(uint64_t n, char buf[32]);

/* keys (cmd_key.c) */
int cmd_keygen(int argc, char **argv);
int cmd_pubkey(int argc, char **argv);
int cmd_key(int argc, char **argv);

/* snapshots (cmd_snapshot.c) */
int cmd_snapshot(int argc, char **argv);

/*
 * The options `fed snapshot pack` and `fed snapshot create` share, and the
 * manifest fields they fill from them: one parser, so the two commands
 * cannot drift apart.  Use SNAP_LONG_OPTS in the option table, pass each
 * option to snap_opt() first, then snap_manifest_fill().
 */
struct snap_opts {
	const char *service, *key, *name;
	uint64_t guest_port, version, chunk_size;
	struct egress egress;	/* --egress: what the guest asks to open */
	bool json;
};
#define SNAP_LONG_OPTS \
	{ "service", required_argument, NULL, 's' }, \
	{ "guest-port", required_argument, NULL, 'g' }, \
	{ "key", required_argument, NULL, 'K' }, \
	{ "name", required_argument, NULL, 'n' }, \
	{ "version", required_argument, NULL, 'v' }, \
	{ "chunk-size", required_argument, NULL, 'C' }, \
	{ "egress", required_argument, NULL, 'E' }, \
	{ "json", no_argument, NULL, 'j' }

/* Defaults: version = now, the default chunk size, nothing else set. */
void snap_opts_init(struct snap_opts *o);

/* Option ch (its argument in optarg) of command cmd: 1 if it was one of
 * SNAP_LONG_OPTS and is fine, 0 if it is not one of them, 2 after printing
 * a usage error (the exit status). */
int snap_opt(struct snap_opts *o, int ch, const char *cmd);

/* Load the key into seed and fill m's owner, service, guest port, name,
 * created, version, egress, machine "uml" and delta format from o (--service,
 * --guest-port and --key given).  Returns 0, or 1 after one line on stderr. */
int snap_manifest_fill(const struct snap_opts *o, struct manifest *m,
		       uint8_t seed[ED25519_SEED_LEN]);

/* What snap_pack_write() packs, and how it says so. */
struct snap_pack {
	const char *cow;	/* the UML copy-on-write file */
	const char *base;	/* the base image under it */
	const char *out;	/* the snapshot to write */
	const uint8_t *seed;	/* the owner's key, signs the manifest */
	uint32_t chunk_size;
	bool json;		/* print the result as JSON, not for people */
	bool hash_base;		/* take m's base hash here, from the very file
				 * packed against (pack; create hashed it
				 * before its boot) */
	bool temp_cow;		/* cow is a temporary file of ours: a failure
				 * to pack does not name it */
};

/* Pack p->cow over p->base into the signed snapshot p->out, m filled but
 * for its delta (and base hash, with p->hash_base), and print what was
 * written: the one packing of `fed snapshot pack` and `create`.  Returns 0,
 * or 1 after one line on stderr. */
int snap_pack_write(const struct snap_pack *p, struct manifest *m);

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

/* this host's readiness (cmd_doctor.c) */
int cmd_doctor(int argc, char **argv);

/* what the vmrunner runs (cmd_status.c) */
int cmd_status(int argc, char **argv);

#endif
