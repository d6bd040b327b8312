/*
 * authority_load.c - fill an authority database for bench/authority.sh.
 *
 *   authority_load DB SERVICES COMMITMENTS PEERS
 *
 * Writes straight through the store interface (authority/authstore.h) in one
 * transaction, so 10 000 services and 100 000 commitments load in seconds:
 * through HTTP every one would be a signed request (an Ed25519 signature
 * and verification each) and a durable commit.  That path is what the unit
 * tests exercise; the benchmark measures lookups, which read the same rows
 * whichever way they were written.
 *
 * Service i is svc<i>.example.org:80, owned by peer i % PEERS, with one
 * snapshot (version 1, on a trusted base and kernel; its manifest bytes are
 * a placeholder, as nothing here reads them).  Commitments are spread
 * evenly: service i gets COMMITMENTS / SERVICES peers, all up, each at
 * 10.x.y.z and a port of its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authority/authstore.h"
#include "common/crypto.h"
#include "common/hex.h"

static void
load_die(const char *what, const struct err *e)
{
	fprintf(stderr, "authority_load: %s: %s\n", what, e ? e->msg : "");
	exit(1);
}

/* A fake but well-formed 64-hex key or hash derived from (kind, n). */
static void
load_hex(const char *kind, long n, char out[AUTHSTORE_HEX])
{
	uint8_t h[SHA256_LEN];
	char buf[64];

	snprintf(buf, sizeof(buf), "%s-%ld", kind, n);
	sha256(buf, strlen(buf), h);
	hex_encode(h, SHA256_LEN, out);
}

int
main(int argc, char **argv)
{
	struct authstore *st;
	struct authstore_trusted t;
	struct err e;
	char base[AUTHSTORE_HEX], kernel[AUTHSTORE_HEX];
	long services, commitments, peers, per, i, j;
	int64_t now = 1700000000;
	bool created;

	if (argc != 5) {
		fprintf(stderr, "usage: authority_load DB SERVICES "
			"COMMITMENTS PEERS\n");
		return 2;
	}
	services = atol(argv[2]);
	commitments = atol(argv[3]);
	peers = atol(argv[4]);
	if (services < 1 || peers < 2 || commitments < 0)
		return 2;
	per = commitments / services;
	if (per >= peers)
		load_die("need more peers than commitments per service", NULL);

	if ((st = authstore_open(argv[1], &e)) == NULL)
		load_die("open", &e);
	if (authstore_begin(st, &e) == -1)
		load_die("begin", &e);

	for (i = 0; i < peers; i++) {
		char key[AUTHSTORE_HEX], addr[64];

		load_hex("peer", i, key);
		snprintf(addr, sizeof(addr), "10.%ld.%ld.1:7000",
			 (i >> 8) & 255, i & 255);
		if (authstore_peer_put(st, key, addr, now, &created, &e) == -1)
			load_die("peer", &e);
	}

	memset(&t, 0, sizeof(t));
	load_hex("base", 0, base);
	load_hex("kernel", 0, kernel);
	t.index_json = "{}";
	t.added = now;
	memcpy(t.sha256, base, sizeof(t.sha256));
	strcpy(t.kind, "base");
	if (authstore_trusted_add(st, &t, &e) == -1)
		load_die("trust", &e);
	memcpy(t.sha256, kernel, sizeof(t.sha256));
	strcpy(t.kind, "kernel");
	if (authstore_trusted_add(st, &t, &e) == -1)
		load_die("trust", &e);

	for (i = 0; i < services; i++) {
		struct authstore_service sv;
		struct authstore_snapshot n;
		char placeholder[64];

		memset(&sv, 0, sizeof(sv));
		snprintf(sv.host, sizeof(sv.host), "svc%ld.example.org", i);
		sv.port = 80;
		load_hex("peer", i % peers, sv.owner);
		sv.created = now;
		if (authstore_service_add(st, &sv, &e) == -1)
			load_die("service", &e);

		memset(&n, 0, sizeof(n));
		load_hex("snapshot", i, n.id);
		n.service = sv.id;
		memcpy(n.owner, sv.owner, sizeof(n.owner));
		n.version = 1;
		memcpy(n.base, base, sizeof(n.base));
		memcpy(n.kernel, kernel, sizeof(n.kernel));
		strcpy(n.name, "bench");
		strcpy(n.created, "2026-01-01T00:00:00Z");
		memset(n.signature, '0', 128);
		n.announced = now;
		snprintf(placeholder, sizeof(placeholder), "{\"bench\":%ld}", i);
		n.manifest = placeholder;
		n.manifest_len = strlen(placeholder);
		if (authstore_snapshot_add(st, &n, &e) == -1)
			load_die("snapshot", &e);

		for (j = 0; j < per; j++) {
			struct authstore_commitment c;

			memset(&c, 0, sizeof(c));
			memcpy(c.snapshot, n.id, sizeof(c.snapshot));
			/* the owner never hosts its own service */
			load_hex("peer", (i + 1 + j) % peers, c.peer);
			c.service = sv.id;
			c.up = true;
			c.has_addr = true;
			snprintf(c.addr, sizeof(c.addr), "10.%ld.%ld.%ld",
				 100 + j, (i >> 8) & 255, i & 255);
			c.port = (uint16_t)(20000 + (i * per + j) % 40000);
			c.created = c.updated = c.up_since = now;
			if (authstore_commitment_add(st, &c, &e) == -1)
				load_die("commitment", &e);
		}
	}
	if (authstore_commit(st, &e) == -1)
		load_die("commit", &e);
	authstore_close(st);
	printf("loaded %ld peers, %ld services, %ld commitments\n", peers,
	       services, per * services);
	return 0;
}
