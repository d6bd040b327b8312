/*
 * sigreq.h - signed requests to the authority (docs/design.md "Keys and
 * signatures").
 *
 * Every request that changes the authority's state carries
 *
 *   X-Fed-Key:       <hex public key>
 *   X-Fed-Date:      <RFC 3339 UTC time>
 *   X-Fed-Signature: <hex Ed25519 signature of
 *                     METHOD "\n" PATH "\n" DATE "\n" hex(SHA-256(body))>
 *
 * PATH is the request target as sent, including any query string.
 * Replay detection (the same signature twice) is the server's job: it keeps
 * seen signatures for the validity window, SIGREQ_MAX_SKEW seconds.
 */
#ifndef FED_SIGREQ_H
#define FED_SIGREQ_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/crypto.h"
#include "common/err.h"
#include "common/timefmt.h"

#define SIGREQ_MAX_SKEW 300	/* seconds either side of the server's clock */

#define SIGREQ_HDR_KEY  "X-Fed-Key"
#define SIGREQ_HDR_DATE "X-Fed-Date"
#define SIGREQ_HDR_SIG  "X-Fed-Signature"

struct sigreq {
	char key[2 * ED25519_PUB_LEN + 1];
	char date[RFC3339_LEN + 1];
	char sig[2 * ED25519_SIG_LEN + 1];
};

/* Sign a request made at time now.  Returns 0 or -1. */
int sigreq_sign(const uint8_t seed[ED25519_SEED_LEN], const char *method,
		const char *path, const void *body, size_t body_len,
		time_t now, struct sigreq *out, struct err *e);

enum sigreq_verdict {
	SIGREQ_OK = 0,
	SIGREQ_MALFORMED,	/* a header missing or not in its format */
	SIGREQ_STALE,		/* date more than SIGREQ_MAX_SKEW from now */
	SIGREQ_BAD_SIGNATURE,	/* does not verify for that key */
};

/*
 * The id of a signed request: SHA-256 of the signer's key and of the
 * message it signed.  Two requests have one id exactly when they are the
 * same request by the same key, whatever bytes their signatures are: a
 * replay cache keyed by it cannot be passed by re-encoding a signature.
 * Returns 0, or -1 (out of memory).
 */
int sigreq_id(const uint8_t pub[ED25519_PUB_LEN], const char *method,
	      const char *path, const char *date, const void *body,
	      size_t body_len, uint8_t out[SHA256_LEN]);

/*
 * Check a request's headers (any may be NULL: missing) against method, path
 * and body, at server time now.  On success the signer's public key is in
 * pub (if not NULL).  On failure e says why, in words fit for a 401 body.
 */
enum sigreq_verdict sigreq_verify(const char *key, const char *date,
				  const char *sig, const char *method,
				  const char *path, const void *body,
				  size_t body_len, time_t now,
				  uint8_t pub[ED25519_PUB_LEN], struct err *e);

#endif
