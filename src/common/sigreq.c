/*
 * sigreq.c - signing and checking requests to the authority.
 *
 * The signed message is METHOD "\n" PATH "\n" DATE "\n" hex(SHA-256(body)):
 * it binds the request to one resource, one moment and one body, so a
 * signature cannot be moved to another request, and the server's replay
 * cache only has to remember signatures for the freshness window.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/sigreq.h"

/* Build the message to sign (malloc'd). */
static char *
sigreq_message(const char *method, const char *path, const char *date,
	       const void *body, size_t body_len, size_t *len)
{
	uint8_t digest[SHA256_LEN];
	char digest_hex[2 * SHA256_LEN + 1];
	char *msg = NULL;
	int n;

	sha256(body ? body : "", body ? body_len : 0, digest);
	hex_encode(digest, SHA256_LEN, digest_hex);
	n = asprintf(&msg, "%s\n%s\n%s\n%s", method, path, date, digest_hex);
	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return msg;
}

int
sigreq_sign(const uint8_t seed[ED25519_SEED_LEN], const char *method,
	    const char *path, const void *body, size_t body_len, time_t now,
	    struct sigreq *out, struct err *e)
{
	uint8_t pub[ED25519_PUB_LEN], sig[ED25519_SIG_LEN];
	size_t len;
	char *msg;
	int rc;

	if (ed25519_public(seed, pub, e) < 0)
		return -1;
	rfc3339_format(now, out->date);
	if ((msg = sigreq_message(method, path, out->date, body, body_len,
				  &len)) == NULL)
		return err_sys(e, "sign request");
	rc = ed25519_sign(seed, msg, len, sig, e);
	free(msg);
	if (rc < 0)
		return -1;
	hex_encode(pub, ED25519_PUB_LEN, out->key);
	hex_encode(sig, ED25519_SIG_LEN, out->sig);
	return 0;
}

int
sigreq_id(const uint8_t pub[ED25519_PUB_LEN], const char *method,
	  const char *path, const char *date, const void *body,
	  size_t body_len, uint8_t out[SHA256_LEN])
{
	struct sha256_ctx h;
	size_t len;
	char *msg;

	if ((msg = sigreq_message(method, path, date, body, body_len,
				  &len)) == NULL)
		return -1;
	sha256_init(&h);
	sha256_update(&h, pub, ED25519_PUB_LEN);
	sha256_update(&h, msg, len);
	sha256_final(&h, out);
	free(msg);
	return 0;
}

enum sigreq_verdict
sigreq_verify(const char *key, const char *date, const char *sig,
	      const char *method, const char *path, const void *body,
	      size_t body_len, time_t now, uint8_t pub[ED25519_PUB_LEN],
	      struct err *e)
{
	uint8_t k[ED25519_PUB_LEN], s[ED25519_SIG_LEN];
	time_t when;
	size_t len;
	char *msg;
	int rc;

	if (key == NULL || date == NULL || sig == NULL) {
		err_set(e, "request is not signed: %s missing",
			key == NULL ? SIGREQ_HDR_KEY :
			date == NULL ? SIGREQ_HDR_DATE : SIGREQ_HDR_SIG);
		return SIGREQ_MALFORMED;
	}
	if (strlen(key) != 2 * ED25519_PUB_LEN ||
	    hex_decode(key, k, ED25519_PUB_LEN) < 0) {
		err_set(e, "%s is not a 64-hex-digit public key", SIGREQ_HDR_KEY);
		return SIGREQ_MALFORMED;
	}
	if (strlen(sig) != 2 * ED25519_SIG_LEN ||
	    hex_decode(sig, s, ED25519_SIG_LEN) < 0) {
		err_set(e, "%s is not a 128-hex-digit signature", SIGREQ_HDR_SIG);
		return SIGREQ_MALFORMED;
	}
	if (rfc3339_parse(date, &when) < 0) {
		err_set(e, "%s is not an RFC 3339 UTC time like "
			"2026-01-02T03:04:05Z", SIGREQ_HDR_DATE);
		return SIGREQ_MALFORMED;
	}
	if (when > now + SIGREQ_MAX_SKEW || when < now - SIGREQ_MAX_SKEW) {
		err_set(e, "%s %s is more than %d s from the server's clock",
			SIGREQ_HDR_DATE, date, SIGREQ_MAX_SKEW);
		return SIGREQ_STALE;
	}
	if ((msg = sigreq_message(method, path, date, body, body_len,
				  &len)) == NULL) {
		err_sys(e, "verify request");
		return SIGREQ_MALFORMED;
	}
	rc = ed25519_verify(k, msg, len, s);
	free(msg);
	if (rc < 0) {
		err_set(e, "signature does not verify for key %.16s..", key);
		return SIGREQ_BAD_SIGNATURE;
	}
	if (pub != NULL)
		memcpy(pub, k, ED25519_PUB_LEN);
	return SIGREQ_OK;
}
