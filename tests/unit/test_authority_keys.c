/*
 * test_authority_keys.c - owner key rotation, revocation and confirmation
 * (api_keys.c), through a real authority over real HTTP, on either engine
 * (FED_TEST_STORE=postgres): after a rotation the old key is refused as an
 * owner and the new one announces; a rotation not by the key's holder, of
 * a key already rotated, or with a malformed record is refused, each with
 * its words; the admin's revocation freezes the key's services and its
 * confirmation of a successor hands them over; a stolen key rotated by the
 * thief is taken back; the chain survives a restart.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/keyrec.h"
#include "common/timefmt.h"
#include "lib/authfix.h"
#include "lib/testutil.h"

#define HOST "www.example.org"

static struct authfix F;
static struct af_world W;

static void
setup(void)
{
	authfix_start(&F, NULL);
	af_world_make(&F, &W, 1);
}

static void
teardown(void)
{
	authfix_stop(&F);
}

TestSuite(keys, .init = setup, .fini = teardown, .timeout = 60);

/* Stop the authority and start it again on the same store. */
static void
restart(void)
{
	struct authority_config c;
	struct err e;

	authority_stop(F.a);
	authority_config_defaults(&c);
	c.has_admin = true;
	memcpy(c.admin, F.admin.pub, ED25519_PUB_LEN);
	c.listen = "127.0.0.1:0";
	c.db_path = F.db;
	F.a = authority_start(&c, &e);
	cr_assert_not_null(F.a, "%s", e.msg);
	F.port = authority_port(F.a);
	snprintf(F.url, sizeof(F.url), "http://127.0.0.1:%u", F.port);
}

/* A record of type t for old (and new_, or NULL), issued now. */
static struct keyrec
rec(enum keyrec_type t, const struct tkey *old, const struct tkey *new_)
{
	struct keyrec r;

	memset(&r, 0, sizeof(r));
	r.type = t;
	snprintf(r.old, sizeof(r.old), "%s", old->hex);
	if (new_ != NULL)
		snprintf(r.new_, sizeof(r.new_), "%s", new_->hex);
	r.issued_at = time(NULL);
	return r;
}

/* POST /v1/keys a record signed by rec_signer (and new_signer), the request
 * by req_signer.  Returns the status; *reply as af_call. */
static long
post_rec(const struct keyrec *r, const struct tkey *rec_signer,
	 const struct tkey *new_signer, const struct tkey *req_signer,
	 json_t **reply)
{
	struct err e;
	json_t *body = keyrec_body_make(r, rec_signer->seed,
					new_signer ? new_signer->seed : NULL,
					&e);

	cr_assert_not_null(body, "%s", e.msg);
	return af_call(&F, "POST", "/v1/keys", body, req_signer, reply);
}

/* old rotates to new_ (asserts 201). */
static void
rotate(const struct tkey *old, const struct tkey *new_)
{
	struct keyrec r = rec(KEYREC_ROTATION, old, new_);
	json_t *reply;
	long st = post_rec(&r, old, new_, old, &reply);

	cr_assert_eq(st, 201, "rotate: %ld %s", st, af_error(reply));
	json_decref(reply);
}

/* The admin revokes k, or confirms new_ as its successor (asserts 201). */
static void
admin_says(enum keyrec_type t, const struct tkey *k, const struct tkey *new_)
{
	struct keyrec r = rec(t, k, new_);
	json_t *reply;
	long st = post_rec(&r, &F.admin, NULL, &F.admin, &reply);

	cr_assert_eq(st, 201, "admin: %ld %s", st, af_error(reply));
	json_decref(reply);
}

/* GET /v1/keys/<k> (asserts 200). */
static json_t *
key_view(const struct tkey *k)
{
	char path[128];
	json_t *reply;
	long st;

	snprintf(path, sizeof(path), "/v1/keys/%s", k->hex);
	st = af_call(&F, "GET", path, NULL, NULL, &reply);
	cr_assert_eq(st, 200, "%ld %s", st, af_error(reply));
	return reply;
}

static const char *
str(const json_t *j, const char *name)
{
	const char *s = json_string_value(json_object_get(j, name));

	return s ? s : "(null)";
}

/* A fresh key, registered as a peer (an owner announces as one). */
static void
fresh(struct tkey *k, const char *addr)
{
	tkey_new(k);
	af_register(&F, k, addr);
}

static long
announce(const struct tkey *k, int64_t version, json_t **reply)
{
	return af_announce(&F, k, k, HOST, 80, version, W.base, W.kernel,
			   NULL, reply);
}

Test(keys, after_a_rotation_the_old_key_is_refused_and_the_new_one_announces)
{
	struct tkey next;
	json_t *reply, *v;
	long st;

	fresh(&next, "10.0.0.1:7000");
	rotate(&W.owner, &next);

	v = key_view(&W.owner);
	cr_expect_str_eq(str(v, "state"), "rotated");
	cr_expect_str_eq(str(v, "successor"), next.hex);
	cr_expect_str_eq(str(v, "current"), next.hex);
	cr_expect_eq(json_array_size(json_object_get(v, "chain")), 1);
	json_decref(v);
	v = key_view(&next);
	cr_expect_str_eq(str(v, "state"), "current");
	cr_expect_str_eq(str(v, "predecessor"), W.owner.hex);
	json_decref(v);

	st = announce(&W.owner, 2, &reply);
	af_expect(st, reply, 403, "was rotated to");
	st = announce(&next, 2, &reply);
	cr_assert_eq(st, 201, "%ld %s", st, af_error(reply));
	cr_expect_str_eq(str(reply, "owner"), next.hex);
	json_decref(reply);
	/* versions still only grow, whoever signs */
	st = announce(&next, 2, &reply);
	af_expect(st, reply, 409, "rollback refused");

	/* the old key may not report the service's peers either */
	st = af_call(&F, "POST", "/v1/reports",
		     json_pack("{s:s, s:s, s:s}", "service", HOST ":80",
			       "peer", W.p1.hex, "reason", "bad"),
		     &W.owner, &reply);
	af_expect(st, reply, 403, "was rotated to");
}

Test(keys, a_rotation_not_by_the_keys_holder_is_refused)
{
	struct tkey thief, next;
	struct keyrec r;
	json_t *reply;
	long st;

	tkey_new(&thief);
	tkey_new(&next);
	r = rec(KEYREC_ROTATION, &W.owner, &next);
	/* the record signed by another key, the request by the owner */
	st = post_rec(&r, &thief, &next, &W.owner, &reply);
	af_expect(st, reply, 422, "bad signature: not the old key's");
	/* all signed by another key */
	st = post_rec(&r, &thief, &next, &thief, &reply);
	af_expect(st, reply, 403, "only a key's holder may rotate it");
	/* the new key's signature is not the new key's */
	st = post_rec(&r, &W.owner, &thief, &W.owner, &reply);
	af_expect(st, reply, 422, "bad signature: not the new key's");
	/* or missing */
	st = post_rec(&r, &W.owner, NULL, &W.owner, &reply);
	af_expect(st, reply, 400, "'new_signature' is missing");
	/* and the owner still owns it */
	st = announce(&W.owner, 2, &reply);
	af_expect(st, reply, 201, NULL);
}

Test(keys, a_key_changes_only_once)
{
	struct tkey next, other, third;
	struct keyrec r;
	json_t *body, *reply;
	struct err e;
	long st;

	tkey_new(&next);
	tkey_new(&other);
	r = rec(KEYREC_ROTATION, &W.owner, &next);
	body = keyrec_body_make(&r, W.owner.seed, next.seed, &e);
	cr_assert_not_null(body);
	st = af_call(&F, "POST", "/v1/keys", json_copy(body), &W.owner,
		     &reply);
	af_expect(st, reply, 201, NULL);
	/* the same record again: a retry */
	st = af_call(&F, "POST", "/v1/keys", body, &W.owner, &reply);
	af_expect(st, reply, 200, NULL);

	r = rec(KEYREC_ROTATION, &W.owner, &other);
	st = post_rec(&r, &W.owner, &other, &W.owner, &reply);
	af_expect(st, reply, 409, "was rotated to");
	/* back to a key that changed: no loop in the chain */
	r = rec(KEYREC_ROTATION, &next, &W.owner);
	st = post_rec(&r, &next, &W.owner, &next, &reply);
	af_expect(st, reply, 409, "was itself rotated");
	/* a key succeeds one key only */
	fresh(&third, "10.0.0.8:7000");
	r = rec(KEYREC_ROTATION, &third, &next);
	st = post_rec(&r, &third, &next, &third, &reply);
	af_expect(st, reply, 409, "already succeeds");
	/* the admin revokes the key that holds the services, not the old */
	r = rec(KEYREC_REVOCATION, &W.owner, NULL);
	st = post_rec(&r, &F.admin, NULL, &F.admin, &reply);
	af_expect(st, reply, 409, "revoke");
}

/* POST /v1/keys with body text as it is, signed by the owner. */
static void
expect_refused(const char *record, long want, const char *words)
{
	uint8_t sig[ED25519_SIG_LEN];
	char hex[2 * ED25519_SIG_LEN + 1];
	json_t *reply;
	struct err e;
	long st;

	/* a record too long to sign gets any signature */
	if (keyrec_sign(W.owner.seed, record, strlen(record), sig, &e) == -1)
		memset(sig, 0, sizeof(sig));
	hex_encode(sig, ED25519_SIG_LEN, hex);
	st = af_call(&F, "POST", "/v1/keys",
		     json_pack("{s:s, s:s, s:s}", "record", record,
			       "signature", hex, "new_signature", hex),
		     &W.owner, &reply);
	af_expect(st, reply, want, words);
}

Test(keys, malformed_records_are_refused_with_their_reason)
{
	char good[600], spaced[700], when[RFC3339_LEN + 1], fut[600];
	char big[KEYREC_MAX + 32];
	struct tkey next;
	json_t *reply;
	long st;

	tkey_new(&next);
	rfc3339_format(time(NULL), when);
	snprintf(good, sizeof(good), "{\"issued_at\":\"%s\",\"new\":\"%s\","
		 "\"old\":\"%s\",\"type\":\"fed-key-rotation-v1\"}", when,
		 next.hex, W.owner.hex);
	snprintf(spaced, sizeof(spaced), "{\"issued_at\": \"%s\",\"new\":"
		 "\"%s\",\"old\":\"%s\",\"type\":\"fed-key-rotation-v1\"}",
		 when, next.hex, W.owner.hex);
	expect_refused(spaced, 422, "not canonical");
	expect_refused("not json", 422, "key record: not JSON");
	expect_refused("[1]", 422, "must be a JSON object");
	expect_refused("{\"type\":\"fed-key-rotation-v9\"}", 422, "'type'");
	snprintf(spaced, sizeof(spaced), "{\"issued_at\":\"%s\",\"new\":"
		 "\"%s\",\"old\":\"%s\",\"type\":\"fed-key-rotation-v1\"}",
		 when, "ABC", W.owner.hex);
	expect_refused(spaced, 422, "'new' must be a key");
	snprintf(spaced, sizeof(spaced), "{\"issued_at\":\"%s\",\"new\":"
		 "\"%s\",\"old\":\"%s\",\"type\":\"fed-key-rotation-v1\"}",
		 when, W.owner.hex, W.owner.hex);
	expect_refused(spaced, 422, "cannot succeed itself");
	snprintf(spaced, sizeof(spaced), "{\"issued_at\":\"%s\",\"new\":"
		 "\"%s\",\"old\":\"%s\",\"type\":\"fed-key-rotation-v1\","
		 "\"x\":1}", when, next.hex, W.owner.hex);
	expect_refused(spaced, 422, "not canonical");
	rfc3339_format(time(NULL) + 3600, when);
	snprintf(fut, sizeof(fut), "{\"issued_at\":\"%s\",\"new\":\"%s\","
		 "\"old\":\"%s\",\"type\":\"fed-key-rotation-v1\"}", when,
		 next.hex, W.owner.hex);
	expect_refused(fut, 422, "in the future");
	memset(big, ' ', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	expect_refused(big, 422, "bytes (1..512 allowed)");

	/* body members */
	st = af_call(&F, "POST", "/v1/keys", json_pack("{s:s}", "record",
		     good), &W.owner, &reply);
	af_expect(st, reply, 400, "'signature' is missing");
	st = af_call(&F, "POST", "/v1/keys", json_pack("{s:s, s:s}",
		     "record", good, "signature", "xyz"), &W.owner, &reply);
	af_expect(st, reply, 400, "'signature' must be 128 hex digits");
	st = af_call(&F, "POST", "/v1/keys", json_pack("{s:i}", "record", 1),
		     &W.owner, &reply);
	af_expect(st, reply, 400, "'record' must be a string");
	st = af_call(&F, "GET", "/v1/keys/XYZ", NULL, NULL, &reply);
	af_expect(st, reply, 400, NULL);
	/* nothing changed */
	st = announce(&W.owner, 2, &reply);
	af_expect(st, reply, 201, NULL);
}

Test(keys, a_revocation_freezes_the_keys_services)
{
	struct tkey next, other;
	struct keyrec r;
	json_t *reply, *v;
	long st;

	af_commit_up(&F, &W.p1, W.id, "192.0.2.1", 40001);
	tkey_new(&next);
	/* only the admin revokes */
	r = rec(KEYREC_REVOCATION, &W.owner, NULL);
	st = post_rec(&r, &W.p1, NULL, &W.p1, &reply);
	af_expect(st, reply, 403, "only the admin key");
	admin_says(KEYREC_REVOCATION, &W.owner, NULL);
	r = rec(KEYREC_REVOCATION, &W.owner, NULL);
	r.issued_at -= 1;
	st = post_rec(&r, &F.admin, NULL, &F.admin, &reply);
	af_expect(st, reply, 409, "was revoked");

	v = key_view(&W.owner);
	cr_expect_str_eq(str(v, "state"), "revoked");
	cr_expect(json_is_null(json_object_get(v, "current")));
	json_decref(v);

	st = announce(&W.owner, 2, &reply);
	af_expect(st, reply, 403, "frozen until the admin confirms");
	fresh(&other, "10.0.0.9:7000");
	st = announce(&other, 2, &reply);
	af_expect(st, reply, 403, "is frozen");
	/* the owner cannot rotate its way out */
	r = rec(KEYREC_ROTATION, &W.owner, &next);
	st = post_rec(&r, &W.owner, &next, &W.owner, &reply);
	af_expect(st, reply, 409, "was revoked");
	/* /metrics counts it */
	{
		char *text;

		cr_assert_eq(af_raw(&F, "GET", "/metrics", NULL, 0, NULL,
				    &text), 200);
		cr_expect(strstr(text, "fed_authority_owner_keys_frozen 1\n")
			  != NULL, "%s", text);
		cr_expect(strstr(text, "fed_authority_owner_keys_revoked 1\n")
			  != NULL);
		free(text);
	}
	/* what was served goes on being served */
	st = af_lookup(&F, HOST, 80, &reply);
	cr_expect_eq(st, 200);
	cr_expect(af_lookup_has(reply, W.p1.hex));
	json_decref(reply);
}

Test(keys, the_admins_confirmation_hands_the_services_to_the_new_key)
{
	struct tkey next, other;
	struct keyrec r;
	json_t *reply, *v;
	long st;

	fresh(&next, "10.0.0.1:7000");
	tkey_new(&other);
	r = rec(KEYREC_CONFIRMATION, &W.owner, &next);
	st = post_rec(&r, &F.admin, NULL, &F.admin, &reply);
	af_expect(st, reply, 409, "is not revoked");
	admin_says(KEYREC_REVOCATION, &W.owner, NULL);
	/* only the admin confirms */
	st = post_rec(&r, &next, NULL, &next, &reply);
	af_expect(st, reply, 403, "only the admin key");
	admin_says(KEYREC_CONFIRMATION, &W.owner, &next);
	r = rec(KEYREC_CONFIRMATION, &W.owner, &other);
	st = post_rec(&r, &F.admin, NULL, &F.admin, &reply);
	af_expect(st, reply, 409, "already confirmed");

	v = key_view(&W.owner);
	cr_expect_str_eq(str(v, "state"), "revoked");
	cr_expect_str_eq(str(v, "successor"), next.hex);
	cr_expect_str_eq(str(v, "current"), next.hex);
	json_decref(v);

	st = announce(&W.owner, 2, &reply);
	af_expect(st, reply, 403, "its successor is");
	st = announce(&next, 2, &reply);
	af_expect(st, reply, 201, NULL);
}

Test(keys, a_stolen_key_rotated_by_the_thief_is_taken_back)
{
	struct tkey thief, mine;
	json_t *reply, *v;
	long st;

	tkey_new(&thief);
	fresh(&mine, "10.0.0.1:7000");
	rotate(&W.owner, &thief);
	admin_says(KEYREC_REVOCATION, &thief, NULL);
	admin_says(KEYREC_CONFIRMATION, &thief, &mine);

	v = key_view(&W.owner);
	cr_expect_str_eq(str(v, "current"), mine.hex);
	cr_expect_eq(json_array_size(json_object_get(v, "chain")), 2);
	json_decref(v);
	st = announce(&mine, 2, &reply);
	af_expect(st, reply, 201, NULL);
}

Test(keys, the_chain_survives_a_restart)
{
	struct tkey next, third;
	json_t *reply, *v;
	long st;

	fresh(&next, "10.0.0.1:7000");
	fresh(&third, "10.0.0.1:7000");
	rotate(&W.owner, &next);
	admin_says(KEYREC_REVOCATION, &next, NULL);
	restart();

	st = announce(&W.owner, 2, &reply);
	af_expect(st, reply, 403, "was rotated to");
	st = announce(&next, 2, &reply);
	af_expect(st, reply, 403, "frozen");
	admin_says(KEYREC_CONFIRMATION, &next, &third);
	restart();

	v = key_view(&W.owner);
	cr_expect_str_eq(str(v, "current"), third.hex);
	json_decref(v);
	st = announce(&third, 2, &reply);
	af_expect(st, reply, 201, NULL);
}
