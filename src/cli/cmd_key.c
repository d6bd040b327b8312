/*
 * cmd_key.c - `fed keygen` and `fed pubkey`.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "common/hex.h"
#include "common/keyfile.h"

static const char keygen_help[] =
	"usage: fed keygen -o KEYFILE [--json]\n"
	"\n"
	"Create a new Ed25519 key.  KEYFILE gets the secret seed (64 hex digits,\n"
	"mode 0600; an existing file is never overwritten).  Prints the public\n"
	"key, which is also this peer's or owner's id.\n";

int
cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint8_t seed[ED25519_SEED_LEN], pub[ED25519_PUB_LEN];
	char hex[2 * ED25519_PUB_LEN + 1];
	const char *out = NULL;
	bool json = false;
	struct err e;
	int c;

	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'j': json = true; break;
		case 'h': fputs(keygen_help, stdout); return 0;
		default: return cli_usage("keygen", "bad option");
		}
	}
	if (out == NULL || optind != argc)
		return cli_usage("keygen", "need -o KEYFILE and nothing else");
	if (keyfile_create(out, seed, pub, &e) < 0)
		return cli_fail("%s", e.msg);
	explicit_bzero(seed, sizeof(seed));
	hex_encode(pub, ED25519_PUB_LEN, hex);
	if (json) {
		json_t *j = json_pack("{s:s,s:s}", "key", hex, "file", out);

		json_dumpf(j, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(j);
	} else
		printf("%s\n", hex);
	return 0;
}

static const char pubkey_help[] =
	"usage: fed pubkey KEYFILE\n"
	"\n"
	"Print the 64-hex public key (the id) of a key file.\n";

int
cmd_pubkey(int argc, char **argv)
{
	uint8_t seed[ED25519_SEED_LEN], pub[ED25519_PUB_LEN];
	char hex[2 * ED25519_PUB_LEN + 1];
	struct err e;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 ||
			  strcmp(argv[1], "-h") == 0)) {
		fputs(pubkey_help, stdout);
		return 0;
	}
	if (argc != 2)
		return cli_usage("pubkey", "need exactly one KEYFILE");
	if (keyfile_load(argv[1], seed, pub, &e) < 0)
		return cli_fail("%s", e.msg);
	explicit_bzero(seed, sizeof(seed));
	hex_encode(pub, ED25519_PUB_LEN, hex);
	printf("%s\n", hex);
	return 0;
}
