/*
 * cmd_key.c - `fed keygen`, `fed pubkey`, and `fed key`: an owner key's
 * rotation, and the admin's revocation and confirmation of a successor.
 *
 *   fed key rotate --key OLD --new NEW           the owner: NEW succeeds OLD
 *   fed key revoke PUBKEY --key ADMIN            the admin: PUBKEY is stolen
 *   fed key confirm PUBKEY --successor NEWPUB --key ADMIN
 *                                                the admin: NEWPUB takes over
 *   fed key show PUBKEY                          the chain from PUBKEY on
 *
 * Each builds the key record (common/keyrec.h), signs it, and posts it to
 * the authority (POST /v1/keys, signed by --key); the authority keeps the
 * chain (docs/authority-api.md, "Owner keys").
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/cli.h"
#include "common/hex.h"
#include "common/http.h"
#include "common/keyfile.h"
#include "common/keyrec.h"
#include "common/signed_answer.h"

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

/* ---- fed key ---- */

static const char key_help[] =
	"usage: fed key rotate --key OLD.key --new NEW.key [--authority URL] [--json]\n"
	"       fed key revoke PUBKEY --key ADMIN.key [--authority URL] [--json]\n"
	"       fed key confirm PUBKEY --successor NEWPUB --key ADMIN.key\n"
	"                       [--authority URL] [--json]\n"
	"       fed key show PUBKEY [--authority URL] [--json]\n"
	"\n"
	"An owner's key, its successor, and the authority's record of them.\n"
	"\n"
	"  rotate   the owner names its new key: a rotation record signed by the\n"
	"           old key and by the new one (proof the owner has it).  From\n"
	"           then on the new key owns the old one's services and the old\n"
	"           key is refused as an owner.  Run fedfs with the new key to\n"
	"           publish, and register it (fed register --key NEW.key).\n"
	"  revoke   the admin: PUBKEY is compromised.  Its services take no new\n"
	"           snapshot (they are frozen) until a successor is confirmed;\n"
	"           what peers serve goes on being served.\n"
	"  confirm  the admin: NEWPUB succeeds the revoked PUBKEY and owns its\n"
	"           services.\n"
	"  show     what happened to PUBKEY, and the key that holds its services.\n"
	"\n"
	"PUBKEY and NEWPUB are 64 hex digits or a public key file.  --authority\n"
	"defaults to $FED_AUTHORITY (a list URL1,URL2,... is tried in turn).  A\n"
	"key changes only once: rotating or revoking it again is refused.\n";

struct key_opts {
	const char *url, *key, *new_key, *successor;
	bool json;
};

/* Print the authority's view of a key. */
static void
key_print(const struct key_opts *o, const json_t *v)
{
	const char *cur = json_string_value(json_object_get(v, "current"));

	if (o->json) {
		json_dumpf(v, stdout, JSON_COMPACT);
		putchar('\n');
		return;
	}
	printf("key %s: %s\n", json_string_value(json_object_get(v, "key")),
	       json_string_value(json_object_get(v, "state")));
	if (cur != NULL)
		printf("its services are owned by %s\n", cur);
	else
		printf("its services are frozen until the admin confirms a "
		       "successor (fed key confirm)\n");
}

/* Send body (stolen; NULL for a GET of path) to the authority, signed by
 * seed, and print the answer.  Returns the exit status. */
static int
key_send(const struct key_opts *o, const char *method, const char *path,
	 json_t *body, const uint8_t *seed)
{
	json_t *reply = NULL;
	struct err e;
	long status;
	int rc;

	rc = authority_call(o->url, method, path, body, seed, &status, &reply,
			    &e);
	json_decref(body);
	if (rc == -1)
		return cli_fail("%s", e.msg);
	if (status < 200 || status >= 300) {
		authority_refused(status, reply, &e);
		json_decref(reply);
		return cli_fail("%s", e.msg);
	}
	key_print(o, reply);
	json_decref(reply);
	return 0;
}

/* A public key argument into hex.  0, or -1 after saying why. */
static int
key_pub_arg(const char *arg, char hex[2 * ED25519_PUB_LEN + 1])
{
	uint8_t pub[ED25519_PUB_LEN];
	struct err e;

	if (signed_trust_key(arg, pub, &e) == -1) {
		cli_fail("%s: %s", arg, e.msg);
		return -1;
	}
	hex_encode(pub, ED25519_PUB_LEN, hex);
	return 0;
}

static int
key_rotate(const struct key_opts *o)
{
	uint8_t seed[ED25519_SEED_LEN], nseed[ED25519_SEED_LEN];
	uint8_t pub[ED25519_PUB_LEN], npub[ED25519_PUB_LEN];
	struct keyrec r = { .type = KEYREC_ROTATION };
	json_t *body;
	struct err e;
	int rc;

	if (o->new_key == NULL)
		return cli_usage("key", "rotate needs --new NEW.key");
	if (keyfile_load(o->key, seed, pub, &e) == -1 ||
	    keyfile_load(o->new_key, nseed, npub, &e) == -1)
		return cli_fail("%s", e.msg);
	hex_encode(pub, ED25519_PUB_LEN, r.old);
	hex_encode(npub, ED25519_PUB_LEN, r.new_);
	r.issued_at = time(NULL);
	body = keyrec_body_make(&r, seed, nseed, &e);
	explicit_bzero(nseed, sizeof(nseed));
	rc = body == NULL ? cli_fail("%s", e.msg) :
	    key_send(o, "POST", "/v1/keys", body, seed);
	explicit_bzero(seed, sizeof(seed));
	return rc;
}

/* The admin's record of type t about key (and successor). */
static int
key_admin(const struct key_opts *o, enum keyrec_type t, const char *key)
{
	uint8_t seed[ED25519_SEED_LEN];
	struct keyrec r = { .type = t };
	json_t *body;
	struct err e;
	int rc;

	if (key_pub_arg(key, r.old) == -1 ||
	    (t == KEYREC_CONFIRMATION && key_pub_arg(o->successor, r.new_) == -1))
		return 1;
	if (keyfile_load(o->key, seed, NULL, &e) == -1)
		return cli_fail("%s", e.msg);
	r.issued_at = time(NULL);
	body = keyrec_body_make(&r, seed, NULL, &e);
	rc = body == NULL ? cli_fail("%s", e.msg) :
	    key_send(o, "POST", "/v1/keys", body, seed);
	explicit_bzero(seed, sizeof(seed));
	return rc;
}

static int
key_show(const struct key_opts *o, const char *key)
{
	char hex[2 * ED25519_PUB_LEN + 1], path[128];

	if (key_pub_arg(key, hex) == -1)
		return 1;
	snprintf(path, sizeof(path), "/v1/keys/%s", hex);
	return key_send(o, "GET", path, NULL, NULL);
}

/* Run subcommand sub with its one argument (or none, for rotate). */
static int
key_run(const struct key_opts *o, const char *sub, int nargs, char **args)
{
	bool rotate = strcmp(sub, "rotate") == 0;

	if (o->url == NULL || o->url[0] == '\0')
		return cli_usage("key", "--authority URL is required (or set "
				 "FED_AUTHORITY)");
	if (nargs != (rotate ? 0 : 1))
		return cli_usage("key", rotate ? "rotate takes no argument" :
				 "%s needs exactly one PUBKEY", sub);
	if (strcmp(sub, "show") == 0)
		return key_show(o, args[0]);
	if (o->key == NULL)
		return cli_usage("key", "--key KEYFILE is required");
	if (rotate)
		return key_rotate(o);
	if (strcmp(sub, "revoke") == 0)
		return key_admin(o, KEYREC_REVOCATION, args[0]);
	if (strcmp(sub, "confirm") == 0) {
		if (o->successor == NULL)
			return cli_usage("key", "confirm needs --successor "
					 "NEWPUB");
		return key_admin(o, KEYREC_CONFIRMATION, args[0]);
	}
	return cli_usage("key", "unknown subcommand '%s'", sub);
}

int
cmd_key(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "authority", required_argument, NULL, 'A' },
		{ "key", required_argument, NULL, 'K' },
		{ "new", required_argument, NULL, 'N' },
		{ "successor", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct key_opts o = { .url = getenv("FED_AUTHORITY") };
	const char *sub;
	int c;

	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
				  strcmp(argv[1], "-h") == 0)) {
			fputs(key_help, stdout);
			return 0;
		}
		return cli_usage("key", "need rotate, revoke, confirm or show");
	}
	sub = argv[1];
	argc--;
	argv++;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'A': o.url = optarg; break;
		case 'K': o.key = optarg; break;
		case 'N': o.new_key = optarg; break;
		case 'S': o.successor = optarg; break;
		case 'j': o.json = true; break;
		case 'h': fputs(key_help, stdout); return 0;
		default: return cli_usage("key", "bad option");
		}
	}
	return key_run(&o, sub, argc - optind, argv + optind);
}
