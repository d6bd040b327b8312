/*
 * cmd_authority.c - the `fed` subcommands that talk to the authority.
 *
 *   fed register --addr HOST:PORT           register (or move) this key
 *   fed trust add FILE --kind kernel|base   admin: trust a kernel or base
 *   fed trust revoke SHA256                 admin: revoke it
 *   fed trust list                          what is trusted
 *   fed lookup HOST:PORT                    who serves a service (or DNS)
 *   fed hosts HOST:PORT                     the owner's view of its hosts
 *   fed report HOST:PORT PEER --reason T    owner: a peer misbehaves
 *
 * Every one takes --authority URL[,URL...] (default: $FED_AUTHORITY); those that
 * change something take --key KEYFILE and sign with it.  Each prints what
 * happened for people, or the authority's JSON answer with --json; on a
 * refusal it prints the authority's error on one line and exits 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "client/client.h"
#include "common/authapi.h"
#include "common/authurls.h"
#include "common/chunkidx.h"
#include "common/hex.h"
#include "common/http.h"
#include "common/keyfile.h"
#include "common/manifest.h"
#include "common/signed_answer.h"
#include "common/timefmt.h"

/* Options every authority command shares. */
struct auth_opts {
	const char *url;
	const char *key;
	bool json;
	/* fed lookup: --authority-key, --allow-stale, --mirror */
	const char *authority_key;
	bool allow_stale;
	const char *mirrors;
};

#define AUTH_LONG_OPTS \
	{ "authority", required_argument, NULL, 'A' }, \
	{ "key", required_argument, NULL, 'K' }, \
	{ "json", no_argument, NULL, 'j' }, \
	{ "help", no_argument, NULL, 'h' }

/* Handle a shared option; returns 1 if ch was one. */
static int
auth_opt(struct auth_opts *o, int ch)
{
	switch (ch) {
	case 'A': o->url = optarg; return 1;
	case 'K': o->key = optarg; return 1;
	case 'j': o->json = true; return 1;
	default: return 0;
	}
}

/* Fill defaults and check what the command needs.  Returns 0 or the
 * usage status. */
static int
auth_check(struct auth_opts *o, const char *cmd, bool need_key)
{
	static struct authurls urls;	/* only checked; too big for a stack */
	struct err e;

	if (o->url == NULL)
		o->url = getenv("FED_AUTHORITY");
	if (o->url == NULL || o->url[0] == '\0')
		return cli_usage(cmd, "a valid --authority URL[,URL...] is required (or set "
				 "FED_AUTHORITY)");
	if (authurls_parse(o->url, &urls, &e) == -1)
		return cli_usage(cmd, "--authority: %s", e.msg);
	if (need_key && o->key == NULL)
		return cli_usage(cmd, "--key KEYFILE is required");
	return 0;
}

static void
auth_print_json(const json_t *j)
{
	json_dumpf(j, stdout, JSON_COMPACT);
	putchar('\n');
}

/*
 * One call to the authority: load the key (if o->key), sign, send.
 * Returns 0 with *reply set when the authority accepted (2xx), 1 after
 * printing why not.  A 404 is returned as 404 with *reply kept, when
 * keep_404.
 */
static int auth_answered(long status, bool keep_404, json_t **reply);

static int
auth_call(const struct auth_opts *o, const char *method, const char *path,
	  json_t *body, bool keep_404, json_t **reply)
{
	uint8_t seed[ED25519_SEED_LEN];
	struct err e;
	long status;
	int rc;

	*reply = NULL;
	if (o->key != NULL && keyfile_load(o->key, seed, NULL, &e) == -1)
		return cli_fail("%s", e.msg);
	rc = authority_call(o->url, method, path, body,
			    o->key ? seed : NULL, &status, reply, &e);
	explicit_bzero(seed, sizeof(seed));
	if (rc == -1)
		return cli_fail("%s", e.msg);
	return auth_answered(status, keep_404, reply);
}

/* What auth_call returns for an answer with status (*reply released when
 * it is a refusal, after saying so). */
static int
auth_answered(long status, bool keep_404, json_t **reply)
{
	struct err e;

	if (status >= 200 && status < 300)
		return 0;
	if (status == 404 && keep_404)
		return 404;
	authority_refused(status, *reply, &e);
	json_decref(*reply);
	*reply = NULL;
	return cli_fail("%s", e.msg);
}

/*
 * The command line of a question about one service (fed lookup, fed
 * hosts): the shared options and exactly one HOST:PORT.  Anyone may ask,
 * so a --key given is ignored.  Returns -1 with o, host and port set when
 * the command goes on, else the exit status (0 after --help).
 */
static int
auth_service_args(int argc, char **argv, const char *cmd, const char *help,
		  struct auth_opts *o, char host[MANIFEST_HOST_MAX + 1],
		  uint16_t *port)
{
	static const struct option opts[] = { AUTH_LONG_OPTS,
		{ "authority-key", required_argument, NULL, 'k' },
		{ "allow-stale", no_argument, NULL, 'S' },
		{ "mirror", required_argument, NULL, 'M' },
		{ NULL, 0, NULL, 0 } };
	struct err e;
	int ch, rc;

	*o = (struct auth_opts){ NULL, NULL, false, NULL, false, NULL };
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (auth_opt(o, ch))
			continue;
		if (ch == 'k' || ch == 'S' || ch == 'M') {
			if (strcmp(cmd, "lookup") != 0)
				return cli_usage(cmd, "--authority-key, "
						 "--allow-stale and --mirror "
						 "are for lookups");
			if (ch == 'k')
				o->authority_key = optarg;
			else if (ch == 'M')
				o->mirrors = optarg;
			else
				o->allow_stale = true;
			continue;
		}
		if (ch == 'h') {
			fputs(help, stdout);
			return 0;
		}
		return cli_usage(cmd, "bad option");
	}
	o->key = NULL;
	if ((rc = auth_check(o, cmd, false)) != 0)
		return rc;
	if (optind + 1 != argc)
		return cli_usage(cmd, "need exactly one HOST:PORT");
	if (service_parse(argv[optind], host, port, &e) == -1)
		return cli_fail("%s: %s", argv[optind], e.msg);
	return -1;
}

static const char *
auth_str(const json_t *j, const char *name)
{
	const char *s = json_string_value(json_object_get(j, name));

	return s ? s : "?";
}

/* ---- fed register ---- */

static const char register_help[] =
	"usage: fed register --addr HOST:PORT --authority URL[,URL...] --key KEYFILE "
	"[--json]\n"
	"\n"
	"Register this key with the authority as a peer whose object server\n"
	"(fedfs --serve) is reachable at HOST:PORT.  The request is signed by\n"
	"the key itself, proving it is ours.  Registering again moves the peer\n"
	"to the new address.\n";

int
cmd_register(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' },
		AUTH_LONG_OPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct auth_opts o = { NULL, NULL, false, NULL, false, NULL };
	const char *addr = NULL;
	json_t *body, *reply;
	struct err e;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (auth_opt(&o, ch))
			continue;
		switch (ch) {
		case 'a': addr = optarg; break;
		case 'h': fputs(register_help, stdout); return 0;
		default: return cli_usage("register", "bad option");
		}
	}
	if ((rc = auth_check(&o, "register", true)) != 0)
		return rc;
	if (addr == NULL || optind != argc)
		return cli_usage("register", "need --addr HOST:PORT and no "
				 "other argument");
	if (authapi_addr_check(addr, &e) == -1)
		return cli_fail("--addr %s: %s", addr, e.msg);
	if ((body = json_pack("{s:s}", "addr", addr)) == NULL)
		return cli_fail("out of memory");
	rc = auth_call(&o, "POST", "/v1/peers", body, false, &reply);
	json_decref(body);
	if (rc != 0)
		return rc;
	if (o.json)
		auth_print_json(reply);
	else
		printf("%s peer %s at %s\n",
		       json_is_true(json_object_get(reply, "created")) ?
		       "registered" : "updated", auth_str(reply, "peer"),
		       auth_str(reply, "addr"));
	json_decref(reply);
	return 0;
}

/* ---- fed trust ---- */

static const char trust_help[] =
	"usage: fed trust add FILE --kind kernel|base [--name NAME]\n"
	"                 [--chunk-size BYTES] --authority URL[,URL...] --key ADMINKEY\n"
	"       fed trust revoke SHA256 --authority URL[,URL...] --key ADMINKEY\n"
	"       fed trust list --authority URL[,URL...] [--json]\n"
	"\n"
	"add     index FILE (SHA-256 of the whole file and of each chunk) and\n"
	"        ask the authority to trust it as a kernel or base; the index\n"
	"        lets peers verify every chunk they fetch.  Signed by the admin.\n"
	"revoke  revoke a trusted hash: snapshots using it stop being served.\n"
	"list    every entry, revoked ones marked.\n";

static int
trust_add(const struct auth_opts *o, const char *file, const char *kind,
	  const char *name, uint32_t chunk_size)
{
	struct chunk_index ix;
	char sha[SHA256_HEX_LEN + 1], b[32];
	json_t *body = NULL, *reply = NULL, *ixj;
	struct err e;
	int fd, rc = 1;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1)
		return cli_fail("%s: %s", file, strerror(errno));
	rc = chunkidx_build_fd(fd, chunk_size, &ix, &e);
	close(fd);
	if (rc == -1)
		return cli_fail("%s: %s", file, e.msg);
	rc = 1;
	if ((ixj = chunkidx_to_json(&ix)) == NULL ||
	    (body = json_pack("{s:s, s:o}", "kind", kind, "index", ixj)) ==
	    NULL) {
		cli_fail("out of memory");
		goto done;
	}
	if (name != NULL)
		json_object_set_new(body, "name", json_string(name));
	if (auth_call(o, "POST", "/v1/trusted", body, false, &reply) != 0)
		goto done;
	hex_encode(ix.file_hash, SHA256_LEN, sha);
	if (o->json)
		auth_print_json(reply);
	else
		printf("trusted %s %s (%s, %u chunks)\n", kind, sha,
		       cli_bytes(ix.size, b), ix.nchunks);
	rc = 0;
done:
	json_decref(reply);
	json_decref(body);
	chunkidx_free(&ix);
	return rc;
}

static int
trust_revoke(const struct auth_opts *o, const char *sha)
{
	char path[128];
	json_t *reply;

	if (!hex_is_sha256(sha))
		return cli_fail("%s: not a SHA-256 (64 lower-case hex digits)",
				sha);
	snprintf(path, sizeof(path), "/v1/trusted/%s", sha);
	if (auth_call(o, "DELETE", path, NULL, false, &reply) != 0)
		return 1;
	if (o->json)
		auth_print_json(reply);
	else
		printf("revoked %s %s\n", auth_str(reply, "kind"), sha);
	json_decref(reply);
	return 0;
}

static int
trust_list(const struct auth_opts *o)
{
	json_t *reply, *t;
	size_t i;

	if (auth_call(o, "GET", "/v1/trusted", NULL, false, &reply) != 0)
		return 1;
	if (o->json) {
		auth_print_json(reply);
	} else {
		json_array_foreach(json_object_get(reply, "trusted"), i, t) {
			json_int_t size = json_integer_value(
			    json_object_get(json_object_get(t, "index"),
					    "size"));
			char b[32];

			printf("%-6s %s %10s %s%s\n", auth_str(t, "kind"),
			       auth_str(t, "sha256"),
			       cli_bytes((uint64_t)size, b),
			       json_is_true(json_object_get(t, "revoked")) ?
			       "REVOKED " : "", auth_str(t, "name"));
		}
	}
	json_decref(reply);
	return 0;
}

int
cmd_trust(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kind", required_argument, NULL, 'k' },
		{ "name", required_argument, NULL, 'n' },
		{ "chunk-size", required_argument, NULL, 'C' },
		AUTH_LONG_OPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct auth_opts o = { NULL, NULL, false, NULL, false, NULL };
	const char *sub, *kind = NULL, *name = NULL;
	uint64_t chunk_size = CHUNK_SIZE_DEFAULT;
	int ch, rc;

	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
				  strcmp(argv[1], "-h") == 0)) {
			fputs(trust_help, stdout);
			return 0;
		}
		return cli_usage("trust", "need add, revoke or list");
	}
	sub = argv[1];
	argc--;
	argv++;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (auth_opt(&o, ch))
			continue;
		switch (ch) {
		case 'k': kind = optarg; break;
		case 'n': name = optarg; break;
		case 'C':
			if (cli_parse_u64(optarg, 1, UINT32_MAX, &chunk_size) ||
			    !chunkidx_valid_chunk_size(chunk_size))
				return cli_usage("trust", "--chunk-size must be "
						 "a power of two, 4096..16777216");
			break;
		case 'h': fputs(trust_help, stdout); return 0;
		default: return cli_usage("trust", "bad option");
		}
	}
	if (strcmp(sub, "list") == 0) {
		if ((rc = auth_check(&o, "trust", false)) != 0)
			return rc;
		o.key = NULL;
		return optind == argc ? trust_list(&o) :
		    cli_usage("trust", "list takes no argument");
	}
	if ((rc = auth_check(&o, "trust", true)) != 0)
		return rc;
	if (strcmp(sub, "add") == 0) {
		if (optind + 1 != argc)
			return cli_usage("trust", "add needs exactly one FILE");
		if (kind == NULL || (strcmp(kind, "kernel") != 0 &&
				     strcmp(kind, "base") != 0))
			return cli_usage("trust", "--kind must be kernel or "
					 "base");
		return trust_add(&o, argv[optind], kind, name,
				 (uint32_t)chunk_size);
	}
	if (strcmp(sub, "revoke") == 0) {
		if (optind + 1 != argc)
			return cli_usage("trust", "revoke needs exactly one "
					 "SHA256");
		return trust_revoke(&o, argv[optind]);
	}
	return cli_usage("trust", "unknown subcommand '%s'", sub);
}

/* ---- fed lookup ---- */

static const char lookup_help[] =
	"usage: fed lookup HOST:PORT --authority URL[,URL...]\n"
	"                  [--authority-key PUB [--allow-stale]\n"
	"                  [--mirror ADDR:PORT[,ADDR:PORT...]]] [--json]\n"
	"\n"
	"Ask the authority which peers serve HOST:PORT now, and at which\n"
	"address and port.  When the authority does not know the service it\n"
	"says so, and the name is resolved by the system resolver instead\n"
	"(DNS, /etc/hosts).  The first line says which source answered.\n"
	"\n"
	"  --authority-key PUB  the authority's public key (64 hex digits or a\n"
	"                       file): the answer must be signed by it and not\n"
	"                       expired, else it is refused (exit 1, saying why)\n"
	"  --allow-stale        with --authority-key: use an expired answer\n"
	"                       when no fresh one can be had, saying so\n"
	"  --mirror ADDR:PORT,...  with --authority-key: when no authority\n"
	"                       answers, ask these peers' object servers for\n"
	"                       the signed answer they mirror and take the\n"
	"                       freshest valid one (a peer whose answer does\n"
	"                       not verify is skipped, saying why)\n";

/* With a pinned key: check the authority's reply about host:port.  Returns
 * 0 (use it; *signed_line says so), or 1 after saying why not. */
static int
lookup_verified(const struct signed_trust *t, const json_t *reply,
		const char *host, uint16_t port, char *signed_line,
		size_t size)
{
	char subject[MANIFEST_HOST_MAX + 8], until[RFC3339_LEN + 1];
	struct signed_meta m;
	enum signed_verdict v;
	struct err e;

	signed_line[0] = '\0';
	if (!t->on)
		return 0;
	snprintf(subject, sizeof(subject), "%s:%u", host, port);
	v = signed_answer_verify(reply, SIGNED_LOOKUP, subject, t->key,
				 time(NULL), &m, &e);
	if (v == SIGNED_BAD || (v == SIGNED_EXPIRED && !t->allow_stale))
		return cli_fail("%s", e.msg);
	if (v == SIGNED_EXPIRED)
		fprintf(stderr, "fed: warning: no fresh answer; using an "
			"expired one (--allow-stale): %s\n", e.msg);
	rfc3339_format(m.expires, until);
	snprintf(signed_line, size, ", signed, version %lld, %s %s",
		 (long long)m.version, v == SIGNED_OK ? "valid until" :
		 "EXPIRED at", until);
	return 0;
}

/* The system resolver's answer for host:port. */
static int
lookup_dns(const struct auth_opts *o, const char *host, uint16_t port)
{
	struct addrinfo hints, *res = NULL, *ai;
	char portstr[8], addr[INET6_ADDRSTRLEN];
	json_t *addrs = NULL;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof(portstr), "%u", port);
	if ((rc = getaddrinfo(host, portstr, &hints, &res)) != 0)
		return cli_fail("lookup %s:%u: unknown to the authority, and "
				"DNS: %s", host, port, gai_strerror(rc));
	if (o->json && (addrs = json_array()) == NULL) {
		freeaddrinfo(res);
		return cli_fail("out of memory");
	}
	if (!o->json)
		printf("source: dns (the authority does not know %s:%u)\n",
		       host, port);
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		const void *a = ai->ai_family == AF_INET6 ?
		    (const void *)&((struct sockaddr_in6 *)(void *)
				    ai->ai_addr)->sin6_addr :
		    (const void *)&((struct sockaddr_in *)(void *)
				    ai->ai_addr)->sin_addr;

		if (inet_ntop(ai->ai_family, a, addr, sizeof(addr)) == NULL)
			continue;
		if (o->json)
			json_array_append_new(addrs, json_string(addr));
		else
			printf("%s %u\n", addr, port);
	}
	freeaddrinfo(res);
	if (o->json) {
		json_t *j = json_pack("{s:s, s:s, s:i, s:o}", "source", "dns",
				      "host", host, "port", (int)port,
				      "addrs", addrs);

		auth_print_json(j);
		json_decref(j);
	}
	return 0;
}

/*
 * The authority's answer to GET path (as auth_call), or, with --mirror,
 * when no authority answers (unreachable, 5xx), the freshest valid one a
 * mirror gives (client/mirror.c); from then names the mirror, else it is
 * "".
 */
static int
lookup_ask(const struct auth_opts *o, const struct signed_trust *t,
	   const char *path, const char *host, uint16_t port, json_t **reply,
	   char *from, size_t size)
{
	struct client_mirror_reply mr;
	struct client_mirrors ms;
	struct err e, me;
	long status;
	int rc;

	from[0] = '\0';
	if (t->mirrors == NULL)
		return auth_call(o, "GET", path, NULL, true, reply);
	*reply = NULL;
	rc = authority_call(o->url, "GET", path, NULL, NULL, &status, reply,
			    &e);
	if (rc == 0 && status < 500)
		return auth_answered(status, true, reply);
	if (rc == 0)
		authority_refused(status, *reply, &e);
	json_decref(*reply);
	*reply = NULL;
	if (client_mirrors_parse(t->mirrors, &ms, &me) == -1 ||
	    client_mirror_ask(t, &ms, host, port, NULL, NULL, time(NULL),
			      reply, &mr, &me) == -1)
		return cli_fail("authority unreachable (%s); %s", e.msg,
				me.msg);
	fprintf(stderr, "fed: warning: authority unreachable (%s); answer "
		"mirrored by %s\n", e.msg, mr.name);
	snprintf(from, size, "%s", mr.name);
	return 0;
}

int
cmd_lookup(int argc, char **argv)
{
	struct auth_opts o;
	char from[AUTHAPI_ADDR_MAX + 1];
	char host[MANIFEST_HOST_MAX + 1], path[MANIFEST_HOST_MAX + 64];
	struct authapi_lookup l;
	struct signed_trust trust;
	char sline[128];
	json_t *reply;
	uint16_t port;
	struct err e;
	size_t i;
	int rc;

	if ((rc = auth_service_args(argc, argv, "lookup", lookup_help, &o,
				    host, &port)) != -1)
		return rc;
	if ((rc = cli_trust("lookup", o.authority_key, o.allow_stale,
			    o.mirrors, &trust)) != 0)
		return rc;
	snprintf(path, sizeof(path), "/v1/lookup?host=%s&port=%u", host,
		 port);
	rc = lookup_ask(&o, &trust, path, host, port, &reply, from,
			sizeof(from));
	if ((rc == 0 || rc == 404) &&
	    lookup_verified(&trust, reply, host, port, sline,
			    sizeof(sline)) != 0) {
		json_decref(reply);
		return 1;
	}
	if (rc == 404) {
		const char *fb = json_string_value(json_object_get(reply,
								   "fallback"));

		rc = fb && strcmp(fb, "dns") == 0 ? lookup_dns(&o, host, port)
		    : cli_fail("lookup %s:%u: %s", host, port,
			       auth_str(reply, "error"));
		json_decref(reply);
		return rc;
	}
	if (rc != 0)
		return rc;
	if (authapi_lookup_parse(reply, &l, &e) == -1) {
		json_decref(reply);
		return cli_fail("authority: %s", e.msg);
	}
	if (o.json) {
		json_object_set_new(reply, "source", json_string(from[0] ?
						"mirror" : "authority"));
		if (from[0])
			json_object_set_new(reply, "mirror", json_string(from));
		auth_print_json(reply);
	} else {
		printf("source: %s%s (ttl %ds%s): %zu peer%s serve%s %s:%u\n",
		       from[0] ? "mirror " : "authority", from, l.ttl, sline,
		       l.npeers, l.npeers == 1 ? "" : "s",
		       l.npeers == 1 ? "s" : "", l.host, l.port);
		for (i = 0; i < l.npeers; i++)
			printf("%s %u %s\n", l.peers[i].addr, l.peers[i].port,
			       l.peers[i].peer);
	}
	authapi_lookup_free(&l);
	json_decref(reply);
	return 0;
}

/* ---- fed hosts ---- */

static const char hosts_help[] =
	"usage: fed hosts HOST:PORT --authority URL[,URL...] [--json]\n"
	"\n"
	"The owner's view of a service: every peer committed to any version of\n"
	"it, whether it is up, where it serves and for how long, and every\n"
	"report made about its peers.\n";

int
cmd_hosts(int argc, char **argv)
{
	struct auth_opts o;
	char host[MANIFEST_HOST_MAX + 1], path[MANIFEST_HOST_MAX + 64];
	json_t *reply, *p;
	uint16_t port;
	size_t i;
	int rc;

	if ((rc = auth_service_args(argc, argv, "hosts", hosts_help, &o, host,
				    &port)) != -1)
		return rc;
	snprintf(path, sizeof(path), "/v1/services/%s:%u/peers", host, port);
	if (auth_call(&o, "GET", path, NULL, false, &reply) != 0)
		return 1;
	if (o.json) {
		auth_print_json(reply);
		json_decref(reply);
		return 0;
	}
	printf("%s:%u owner %s newest version %lld%s\n", host, port,
	       auth_str(reply, "owner"),
	       (long long)json_integer_value(json_object_get(reply, "version")),
	       json_is_true(json_object_get(reply, "usable")) ? "" :
	       " (REVOKED base or kernel)");
	json_array_foreach(json_object_get(reply, "peers"), i, p) {
		char where[AUTHAPI_ADDR_MAX + 1] = "-";

		if (json_object_get(p, "addr") != NULL)
			snprintf(where, sizeof(where), "%s:%lld",
				 auth_str(p, "addr"), (long long)
				 json_integer_value(json_object_get(p, "port")));
		printf("  %s v%lld %-4s %-21s up %llds%s\n", auth_str(p, "peer"),
		       (long long)json_integer_value(json_object_get(p,
								     "version")),
		       json_is_true(json_object_get(p, "up")) ? "up" : "down",
		       where, (long long)json_integer_value(
			   json_object_get(p, "up_seconds")),
		       json_is_true(json_object_get(p, "newest")) ? "" :
		       " (old version)");
	}
	json_array_foreach(json_object_get(reply, "reports"), i, p) {
		printf("  reported %s at %s: %s\n", auth_str(p, "peer"),
		       auth_str(p, "at"), auth_str(p, "reason"));
	}
	json_decref(reply);
	return 0;
}

/* ---- fed report ---- */

static const char report_help[] =
	"usage: fed report HOST:PORT PEER --reason TEXT --authority URL[,URL...] "
	"--key KEYFILE [--json]\n"
	"\n"
	"As the owner of HOST:PORT, report that PEER (its 64-hex key)\n"
	"misbehaves.  The peer disappears from the service's lookups and\n"
	"sources and may not host it again; its other services are untouched.\n";

int
cmd_report(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' },
		AUTH_LONG_OPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct auth_opts o = { NULL, NULL, false, NULL, false, NULL };
	char host[MANIFEST_HOST_MAX + 1];
	uint8_t seed[ED25519_SEED_LEN];
	const char *reason = NULL, *peer;
	json_t *reply;
	uint16_t port;
	struct err e;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (auth_opt(&o, ch))
			continue;
		switch (ch) {
		case 'r': reason = optarg; break;
		case 'h': fputs(report_help, stdout); return 0;
		default: return cli_usage("report", "bad option");
		}
	}
	if ((rc = auth_check(&o, "report", true)) != 0)
		return rc;
	if (optind + 2 != argc || reason == NULL)
		return cli_usage("report", "need HOST:PORT PEER --reason TEXT");
	if (service_parse(argv[optind], host, &port, &e) == -1)
		return cli_fail("%s: %s", argv[optind], e.msg);
	peer = argv[optind + 1];
	if (!hex_is_sha256(peer))
		return cli_fail("%s: not a peer id (64 lower-case hex digits)",
				peer);
	if (keyfile_load(o.key, seed, NULL, &e) == -1)
		return cli_fail("%s", e.msg);
	/* the one sender of POST /v1/reports, shared with fed audit */
	rc = client_report(o.url, seed, host, port, peer, reason, &reply, &e);
	explicit_bzero(seed, sizeof(seed));
	if (rc == -1)
		return cli_fail("%s", e.msg);
	if (o.json)
		auth_print_json(reply);
	else
		printf("reported %s for %s:%u (report %lld)\n", peer, host, port,
		       (long long)json_integer_value(json_object_get(reply,
								     "report")));
	json_decref(reply);
	return 0;
}
