/*
 * authapi.h - the JSON bodies of the authority's REST API, for both sides.
 *
 * docs/authority-api.md is the reference; this file is its code.  The
 * authority parses every request body with these functions, and clients
 * parse lookup answers with them, so the two cannot drift apart.  The
 * parsers are strict about what they read (every member named below has
 * its type, its bounds and its format checked; hashes and keys are 64
 * lower-case hex) and ignore members they do not know, so a newer client
 * can send more.
 *
 * Nothing here allocates except where a function says so, and nothing here
 * talks to the network or the store: this is the part of the authority that
 * reads untrusted bytes, kept small enough to fuzz on its own
 * (fuzz/fuzz_authority_json.c).
 */
#ifndef FED_AUTHAPI_H
#define FED_AUTHAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/chunkidx.h"
#include "common/crypto.h"
#include "common/err.h"
#include "common/hex.h"
#include "common/manifest.h"

#define AUTHAPI_HOST_MAX   MANIFEST_HOST_MAX
#define AUTHAPI_ADDR_MAX   (AUTHAPI_HOST_MAX + 6)	/* "host:port" */
#define AUTHAPI_NAME_MAX   128	/* a trust entry's optional name */
#define AUTHAPI_REASON_MAX 1024	/* a report's reason */

/*
 * Parse buf as one JSON object (duplicate keys refused).  Returns 0 with
 * *out a new reference the caller releases, or -1 with e set ("body is not
 * JSON: ..." or "body must be a JSON object").
 */
int authapi_parse_object(const char *buf, size_t len, json_t **out,
			 struct err *e);

/* Check "host:port" (a DNS name or IPv4, port 1..65535). Returns 0 or -1. */
int authapi_addr_check(const char *s, struct err *e);

/* Check a bare host (a DNS name or IPv4).  Returns 0 or -1. */
int authapi_host_check(const char *s, struct err *e);

/* POST /v1/peers: {"addr": "host:port"} (the peer's object server). */
struct authapi_register {
	char addr[AUTHAPI_ADDR_MAX + 1];
};
int authapi_register_parse(const json_t *j, struct authapi_register *r,
			   struct err *e);

/* POST /v1/trusted: {"kind": "kernel"|"base", "index": {chunk index with
 * "sha256"}, "name": optional string}.  On success t->index owns memory:
 * release with authapi_trust_free(). */
struct authapi_trust {
	char kind[8];				/* "kernel" or "base" */
	char name[AUTHAPI_NAME_MAX + 1];	/* "" if absent */
	struct chunk_index index;
	char sha256[SHA256_HEX_LEN + 1];	/* index.file_hash in hex */
};
int authapi_trust_parse(const json_t *j, struct authapi_trust *t,
			struct err *e);
void authapi_trust_free(struct authapi_trust *t);

/* POST /v1/snapshots: {"manifest": "<canonical manifest line>",
 * "signature": "<128 hex>"}.  a->manifest points into j (borrowed: valid
 * while j is); only the outer form is checked here, the manifest itself is
 * for fedsnap_check_signed_manifest(). */
struct authapi_announce {
	const char *manifest;
	size_t manifest_len;
	uint8_t sig[ED25519_SIG_LEN];
};
int authapi_announce_parse(const json_t *j, struct authapi_announce *a,
			   struct err *e);

/* PUT /v1/commitments/<id>: {"up": bool (default true), "addr": host,
 * "port": 1..65535}; addr and port are required when up. */
struct authapi_serving {
	bool up;
	bool has_addr;
	char addr[AUTHAPI_HOST_MAX + 1];
	uint16_t port;
};
int authapi_serving_parse(const json_t *j, struct authapi_serving *s,
			  struct err *e);

/* POST /v1/commitments: {"snapshot": "<id>"}, optionally with the members
 * of a PUT (then has_serving) to commit and report in one request. */
struct authapi_commit {
	char snapshot[SHA256_HEX_LEN + 1];
	bool has_serving;
	struct authapi_serving serving;
};
int authapi_commit_parse(const json_t *j, struct authapi_commit *c,
			 struct err *e);

/* POST /v1/reports: {"service": "host:port", "peer": "<key>",
 * "reason": "non-empty text"}. */
struct authapi_report {
	char host[AUTHAPI_HOST_MAX + 1];
	uint16_t port;
	char peer[SHA256_HEX_LEN + 1];
	char reason[AUTHAPI_REASON_MAX + 1];
};
int authapi_report_parse(const json_t *j, struct authapi_report *r,
			 struct err *e);

/* POST /v1/reports with "kind": "bad_chunk": a peer caught serving bytes
 * that fail their hash.  {"kind": "bad_chunk", "object": "<sha256 of the
 * object whose sources it was listed in>", "addr": "host:port" (the
 * source, as listed), "chunk": 0..2^32-1, "expected": "<sha256>",
 * "received": "<sha256>"}; expected and received must differ. */
#define AUTHAPI_REPORT_BAD_CHUNK "bad_chunk"
struct authapi_bad_chunk {
	char object[SHA256_HEX_LEN + 1];
	char addr[AUTHAPI_ADDR_MAX + 1];
	uint32_t chunk;
	char expected[SHA256_HEX_LEN + 1];
	char received[SHA256_HEX_LEN + 1];
};
/* Is j a bad_chunk report (else the owner's kind, above)? */
bool authapi_report_is_bad_chunk(const json_t *j);
int authapi_bad_chunk_parse(const json_t *j, struct authapi_bad_chunk *b,
			    struct err *e);

/* A reply of GET /v1/lookup: {"host", "port", "ttl", "peers": [{"peer",
 * "addr", "port"}]}.  On success l->peers is malloc'd (npeers entries, NULL
 * if none): release with authapi_lookup_free(). */
struct authapi_lookup_peer {
	char peer[SHA256_HEX_LEN + 1];
	char addr[AUTHAPI_HOST_MAX + 1];
	uint16_t port;
};
struct authapi_lookup {
	char host[AUTHAPI_HOST_MAX + 1];
	uint16_t port;
	int ttl;
	size_t npeers;
	struct authapi_lookup_peer *peers;
};
int authapi_lookup_parse(const json_t *j, struct authapi_lookup *l,
			 struct err *e);
void authapi_lookup_free(struct authapi_lookup *l);

#endif
