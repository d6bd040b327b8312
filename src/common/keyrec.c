/*
 * keyrec.c - owner key records (keyrec.h): build, parse, sign, verify.
 *
 * A record is parsed member by member, then encoded again from what was
 * parsed and compared with the bytes received: a record with a member too
 * many, out of order, with spaces or escapes jansson would not write, is
 * refused as "not canonical".  So a record has one byte string, and what
 * is signed is exactly what is stored and shown.
 */
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/keyrec.h"
#include "common/timefmt.h"

#define KEYREC_DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)

static const char *const keyrec_names[] = {
	[KEYREC_ROTATION] = "fed-key-rotation-v1",
	[KEYREC_REVOCATION] = "fed-key-revocation-v1",
	[KEYREC_CONFIRMATION] = "fed-key-confirmation-v1",
};

const char *
keyrec_type_name(enum keyrec_type t)
{
	return keyrec_names[t];
}

static bool
keyrec_is_key(const char *s)
{
	return s != NULL && hex_is_sha256(s);
}

char *
keyrec_encode(const struct keyrec *r, size_t *len, struct err *e)
{
	char when[RFC3339_LEN + 1], *out;
	json_t *j;

	rfc3339_format(r->issued_at, when);
	if (r->type == KEYREC_REVOCATION)
		j = json_pack("{s:s, s:s, s:s}", "type", keyrec_names[r->type],
			      "key", r->old, "issued_at", when);
	else
		j = json_pack("{s:s, s:s, s:s, s:s}", "type",
			      keyrec_names[r->type], "old", r->old, "new",
			      r->new_, "issued_at", when);
	out = j ? json_dumps(j, KEYREC_DUMP_FLAGS) : NULL;
	json_decref(j);
	if (out == NULL) {
		err_set(e, "key record: out of memory");
		return NULL;
	}
	*len = strlen(out);
	return out;
}

/* The type named by j's "type", or -1. */
static int
keyrec_type_of(const json_t *j)
{
	const char *t = json_string_value(json_object_get(j, "type"));

	for (size_t i = 0; t != NULL && i < 3; i++)
		if (strcmp(t, keyrec_names[i]) == 0)
			return (int)i;
	return -1;
}

/* Copy the key member name of j into out (65 bytes).  0 or -1. */
static int
keyrec_key_member(const json_t *j, const char *name, char *out,
		  struct err *e)
{
	const char *s = json_string_value(json_object_get(j, name));

	if (!keyrec_is_key(s))
		return err_set(e, "key record: '%s' must be a key (64 "
			       "lower-case hex digits)", name);
	memcpy(out, s, 2 * ED25519_PUB_LEN + 1);
	return 0;
}

/* Fill r from the object j.  0 or -1. */
static int
keyrec_fields(const json_t *j, struct keyrec *r, struct err *e)
{
	const char *when;
	int t;

	memset(r, 0, sizeof(*r));
	if ((t = keyrec_type_of(j)) < 0)
		return err_set(e, "key record: 'type' must be "
			       "fed-key-rotation-v1, fed-key-revocation-v1 or "
			       "fed-key-confirmation-v1");
	r->type = (enum keyrec_type)t;
	when = json_string_value(json_object_get(j, "issued_at"));
	if (when == NULL || rfc3339_parse(when, &r->issued_at) == -1)
		return err_set(e, "key record: 'issued_at' must be an RFC 3339 "
			       "UTC time (2026-12-07T12:00:00Z)");
	if (r->type == KEYREC_REVOCATION)
		return keyrec_key_member(j, "key", r->old, e);
	if (keyrec_key_member(j, "old", r->old, e) == -1 ||
	    keyrec_key_member(j, "new", r->new_, e) == -1)
		return -1;
	if (strcmp(r->old, r->new_) == 0)
		return err_set(e, "key record: 'new' is 'old': a key cannot "
			       "succeed itself");
	return 0;
}

int
keyrec_parse(const char *buf, size_t len, struct keyrec *r, struct err *e)
{
	json_error_t je;
	size_t clen;
	char *canon;
	json_t *j;
	int rc;

	if (len == 0 || len > KEYREC_MAX)
		return err_set(e, "key record: %zu bytes (1..%d allowed)", len,
			       KEYREC_MAX);
	if ((j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je)) == NULL)
		return err_set(e, "key record: not JSON: %s", je.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return err_set(e, "key record: must be a JSON object");
	}
	rc = keyrec_fields(j, r, e);
	json_decref(j);
	if (rc == -1)
		return -1;
	if ((canon = keyrec_encode(r, &clen, e)) == NULL)
		return -1;
	rc = clen == len && memcmp(canon, buf, len) == 0 ? 0 :
	    err_set(e, "key record: not canonical (compact JSON, keys sorted, "
		    "exactly the members of a %s: expected %s)",
		    keyrec_names[r->type], canon);
	free(canon);
	return rc;
}

/* KEYREC_DOMAIN then buf, malloc'd (*n its length), or NULL. */
static char *
keyrec_message(const char *buf, size_t len, size_t *n)
{
	size_t d = strlen(KEYREC_DOMAIN);
	char *m;

	if (len > KEYREC_MAX || (m = malloc(d + len)) == NULL)
		return NULL;
	memcpy(m, KEYREC_DOMAIN, d);
	memcpy(m + d, buf, len);
	*n = d + len;
	return m;
}

int
keyrec_sign(const uint8_t seed[ED25519_SEED_LEN], const char *buf,
	    size_t len, uint8_t sig[ED25519_SIG_LEN], struct err *e)
{
	size_t n;
	char *m = keyrec_message(buf, len, &n);
	int rc;

	if (m == NULL)
		return err_set(e, "key record: too long or out of memory");
	rc = ed25519_sign(seed, m, n, sig, e);
	free(m);
	return rc;
}

int
keyrec_verify(const char *pub_hex, const char *buf, size_t len,
	      const uint8_t sig[ED25519_SIG_LEN])
{
	uint8_t pub[ED25519_PUB_LEN];
	size_t n;
	char *m;
	int rc;

	if (hex_decode(pub_hex, pub, sizeof(pub)) == -1 ||
	    (m = keyrec_message(buf, len, &n)) == NULL)
		return -1;
	rc = ed25519_verify(pub, m, n, sig);
	free(m);
	return rc;
}

/* Decode the 128-hex signature member name of j into sig.  1 decoded,
 * 0 absent, -1 malformed. */
static int
keyrec_sig_member(const json_t *j, const char *name,
		  uint8_t sig[ED25519_SIG_LEN], struct err *e)
{
	const json_t *v = json_object_get(j, name);
	const char *s = json_string_value(v);

	if (v == NULL)
		return 0;
	if (s == NULL || strlen(s) != 2 * ED25519_SIG_LEN ||
	    hex_decode(s, sig, ED25519_SIG_LEN) == -1)
		return err_set(e, "'%s' must be 128 hex digits", name);
	return 1;
}

int
keyrec_body_parse(const json_t *j, struct keyrec_body *b, struct err *e)
{
	const json_t *rec = json_object_get(j, "record");
	int rc;

	memset(b, 0, sizeof(*b));
	if (!json_is_string(rec))
		return err_set(e, "'record' must be a string (the key record "
			       "line)");
	b->record = json_string_value(rec);
	b->record_len = json_string_length(rec);
	if ((rc = keyrec_sig_member(j, "signature", b->sig, e)) == -1)
		return -1;
	if (rc == 0)
		return err_set(e, "'signature' is missing");
	if ((rc = keyrec_sig_member(j, "new_signature", b->new_sig, e)) == -1)
		return -1;
	b->has_new_sig = rc;
	return 0;
}

/* Sign rec with seed and set member name of body to the hex.  0 or -1. */
static int
keyrec_body_sign(json_t *body, const char *name, const char *rec,
		 size_t len, const uint8_t *seed, struct err *e)
{
	uint8_t sig[ED25519_SIG_LEN];
	char hex[2 * ED25519_SIG_LEN + 1];

	if (keyrec_sign(seed, rec, len, sig, e) == -1)
		return -1;
	hex_encode(sig, ED25519_SIG_LEN, hex);
	if (json_object_set_new(body, name, json_string(hex)) == -1)
		return err_set(e, "key record: out of memory");
	return 0;
}

json_t *
keyrec_body_make(const struct keyrec *r, const uint8_t seed[ED25519_SEED_LEN],
		 const uint8_t *new_seed, struct err *e)
{
	size_t len;
	char *rec = keyrec_encode(r, &len, e);
	json_t *body;

	if (rec == NULL)
		return NULL;
	body = json_pack("{s:s}", "record", rec);
	if (body == NULL)
		err_set(e, "key record: out of memory");
	else if (keyrec_body_sign(body, "signature", rec, len, seed, e) == -1 ||
		 (new_seed != NULL &&
		  keyrec_body_sign(body, "new_signature", rec, len, new_seed,
				   e) == -1)) {
		json_decref(body);
		body = NULL;
	}
	free(rec);
	return body;
}
