/*
 * main.c - `fed`, the command people use: dispatch to a subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/crypto.h"
#include "common/log.h"

static const struct cli_command commands[] = {
	{ "keygen", cmd_keygen, "create a key (prints the public key)" },
	{ "pubkey", cmd_pubkey, "print a key file's public key" },
	{ "key", cmd_key, "rotate an owner key; revoke, confirm one (admin)" },
	{ "snapshot", cmd_snapshot, "pack, verify, inspect, unpack snapshots" },
	/* commands that talk to the authority are added here */
	{ "register", cmd_register, "register this key as a peer" },
	{ "trust", cmd_trust, "trust, revoke, list kernels and bases (admin)" },
	{ "lookup", cmd_lookup, "who serves HOST:PORT (falls back to DNS)" },
	{ "hosts", cmd_hosts, "an owner's view of the peers hosting a service" },
	{ "report", cmd_report, "report a peer hosting your service (owner)" },
	{ "get", cmd_get, "fetch a URL through the best peer (like curl)" },
	{ "proxy", cmd_proxy, "HTTP proxy to federated services for any program" },
	{ "audit", cmd_audit, "check what every peer serves for your service" },
	{ "status", cmd_status, "what the vmrunner runs on this peer" },
	{ "doctor", cmd_doctor, "check this host's readiness, say what to fix" },
};

static void
usage(FILE *f)
{
	fputs("usage: fed COMMAND [ARGS]   (fed COMMAND --help for more)\n\n"
	      "fed keeps services highly available by running copies of the\n"
	      "machines that serve them on many untrusted peers.\n\n", f);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name,
			commands[i].summary);
}

int
main(int argc, char **argv)
{
	struct err e;

	log_init("fed", false);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (crypto_init(&e) < 0)
		return cli_fail("%s", e.msg);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "fed: unknown command '%s' (see fed --help)\n", argv[1]);
	return 2;
}
