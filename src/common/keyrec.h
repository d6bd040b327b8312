/*
 * keyrec.h - owner key records: rotation, revocation, confirmation
 * (docs/formats.md, "Key records"; docs/authority-api.md, "Owner keys").
 *
 * A record is one line of canonical JSON (jansson's JSON_COMPACT |
 * JSON_SORT_KEYS | JSON_ENSURE_ASCII dump, as a manifest), whose "type"
 * says what it does:
 *
 *   rotation      {"issued_at":T,"new":K2,"old":K1,"type":"fed-key-rotation-v1"}
 *                 signed by K1 (the owner) and by K2 (proof of possession)
 *   revocation    {"issued_at":T,"key":K,"type":"fed-key-revocation-v1"}
 *                 signed by the admin: K is compromised
 *   confirmation  {"issued_at":T,"new":K2,"old":K1,"type":"fed-key-confirmation-v1"}
 *                 signed by the admin: K2 takes over the revoked K1
 *
 * A signature covers KEYREC_DOMAIN then the record's bytes, so no record
 * can be taken for a manifest, a signed request or a signed answer, nor
 * the other way round.  The CLI builds and signs records; the authority
 * parses and verifies them with the same code.  Nothing here allocates but
 * keyrec_encode(), nor talks to the network.
 */
#ifndef FED_KEYREC_H
#define FED_KEYREC_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "common/crypto.h"
#include "common/err.h"

#define KEYREC_MAX	512		/* bytes of a record (they are ~200) */
#define KEYREC_DOMAIN	"fed-key-record-v1\n"

enum keyrec_type {
	KEYREC_ROTATION,
	KEYREC_REVOCATION,
	KEYREC_CONFIRMATION,
};

struct keyrec {
	enum keyrec_type type;
	/* rotation, confirmation: the key replaced; revocation: the key */
	char old[2 * ED25519_PUB_LEN + 1];
	/* rotation, confirmation: its successor; revocation: "" */
	char new_[2 * ED25519_PUB_LEN + 1];
	time_t issued_at;
};

/* "fed-key-rotation-v1" etc. */
const char *keyrec_type_name(enum keyrec_type t);

/* The canonical bytes of r (malloc'd, NUL-terminated, *len without the
 * NUL), or NULL with e set. */
char *keyrec_encode(const struct keyrec *r, size_t *len, struct err *e);

/* Parse a record: canonical, of a known type, exactly its members, keys
 * 64 lower-case hex (old and new differ), issued_at RFC 3339.  Returns 0
 * with r filled, or -1 with e set ("key record: ..."). */
int keyrec_parse(const char *buf, size_t len, struct keyrec *r,
		 struct err *e);

/* Sign / verify the record bytes (under KEYREC_DOMAIN).  sign: 0 or -1;
 * verify: 0 iff sig is pub's signature of them. */
int keyrec_sign(const uint8_t seed[ED25519_SEED_LEN], const char *buf,
		size_t len, uint8_t sig[ED25519_SIG_LEN], struct err *e);
int keyrec_verify(const char *pub_hex, const char *buf, size_t len,
		  const uint8_t sig[ED25519_SIG_LEN]);

/* The body of POST /v1/keys:
 *   {"record": "<the record line>", "signature": "<128 hex>",
 *    "new_signature": "<128 hex>"}      (a rotation only: by the new key)
 * b->record borrows from j.  Returns 0, or -1 with e set (the 400). */
struct keyrec_body {
	const char *record;
	size_t record_len;
	uint8_t sig[ED25519_SIG_LEN];
	uint8_t new_sig[ED25519_SIG_LEN];
	int has_new_sig;
};
int keyrec_body_parse(const json_t *j, struct keyrec_body *b, struct err *e);

/* The same body, built and signed by seed (and new_seed for a rotation;
 * NULL otherwise).  Returns a new reference, or NULL with e set. */
json_t *keyrec_body_make(const struct keyrec *r,
			 const uint8_t seed[ED25519_SEED_LEN],
			 const uint8_t *new_seed, struct err *e);

#endif
