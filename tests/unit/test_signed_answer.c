/*
 * test_signed_answer.c - the check every client makes of the authority's
 * signed answers (common/signed_answer.c): a good answer is accepted; one
 * byte altered, another key, another service, an expired answer (unless
 * --allow-stale's caller takes it), a lower version than the one held, a
 * malformed or unsigned answer and an oversized one are refused, each with
 * a message that says which.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/hex.h"
#include "common/signed_answer.h"
#include "lib/testutil.h"

#define SUBJECT "www.example.org:80"
#define T0 1800000000		/* issue time of the answers below */

static uint8_t seed[ED25519_SEED_LEN], pub[ED25519_PUB_LEN];

static void
keys(void)
{
	struct err e;

	cr_assert_eq(ed25519_keygen(seed, pub, &e), 0, "%s", e.msg);
}

TestSuite(signed_answer, .init = keys);

/* A lookup answer for SUBJECT with one peer, signed at T0 for 600 s. */
static json_t *
lookup_answer(int64_t version, const char *addr)
{
	json_t *j = json_pack("{s:s, s:i, s:i, s:[{s:s, s:s, s:i}]}",
			      "host", "www.example.org", "port", 80, "ttl", 30,
			      "peers", "peer", "aa", "addr", addr, "port",
			      40001);
	struct err e;

	cr_assert_not_null(j);
	cr_assert_eq(signed_answer_sign(j, SIGNED_LOOKUP, seed, pub, T0, 600,
					version, &e), 0, "%s", e.msg);
	return j;
}

static enum signed_verdict
verify(const json_t *j, time_t now, struct signed_meta *m, struct err *e)
{
	return signed_answer_verify(j, SIGNED_LOOKUP, SUBJECT, pub, now, m, e);
}

Test(signed_answer, a_valid_answer_is_accepted_with_its_fields)
{
	json_t *j = lookup_answer(T0 * 1000LL, "192.0.2.7");
	struct signed_meta m;
	struct err e;

	cr_assert_eq(verify(j, T0 + 1, &m, &e), SIGNED_OK, "%s", e.msg);
	cr_expect_eq(m.issued_at, T0);
	cr_expect_eq(m.expires, T0 + 600);
	cr_expect_eq(m.version, T0 * 1000LL);
	cr_expect_str_eq(json_string_value(json_object_get(j, "issued_at")),
			 "2027-01-15T08:00:00Z");
	json_decref(j);
}

Test(signed_answer, a_reparsed_answer_still_verifies)
{
	json_t *j = lookup_answer(1, "192.0.2.7"), *k;
	struct signed_meta m;
	struct err e;
	char *text = json_dumps(j, JSON_INDENT(2));	/* other bytes */

	k = signed_answer_parse(text, strlen(text), &e);
	cr_assert_not_null(k, "%s", e.msg);
	cr_expect_eq(verify(k, T0 + 1, &m, &e), SIGNED_OK, "%s", e.msg);
	free(text);
	json_decref(j);
	json_decref(k);
}

Test(signed_answer, one_byte_altered_is_refused)
{
	json_t *j = lookup_answer(1, "192.0.2.7");
	json_t *p = json_array_get(json_object_get(j, "peers"), 0);
	struct signed_meta m;
	struct err e;

	/* a café router sends the client to its own server */
	json_object_set_new(p, "addr", json_string("192.0.2.8"));
	cr_assert_eq(verify(j, T0 + 1, &m, &e), SIGNED_BAD);
	cr_expect(strstr(e.msg, "bad signature") != NULL, "%s", e.msg);
	cr_expect(strstr(e.msg, "lookup answer for " SUBJECT " refused")
		  != NULL, "%s", e.msg);
	json_decref(j);
}

Test(signed_answer, an_altered_signature_is_refused)
{
	json_t *j = lookup_answer(1, "192.0.2.7");
	char sig[2 * ED25519_SIG_LEN + 1];
	struct signed_meta m;
	struct err e;

	snprintf(sig, sizeof(sig), "%s",
		 json_string_value(json_object_get(j, "signature")));
	sig[10] = sig[10] == '0' ? '1' : '0';
	json_object_set_new(j, "signature", json_string(sig));
	cr_assert_eq(verify(j, T0 + 1, &m, &e), SIGNED_BAD);
	cr_expect(strstr(e.msg, "bad signature") != NULL, "%s", e.msg);
	json_decref(j);
}

Test(signed_answer, signed_by_another_key_is_refused)
{
	uint8_t s2[ED25519_SEED_LEN], p2[ED25519_PUB_LEN];
	json_t *j = json_pack("{s:s, s:i, s:i, s:[]}", "host",
			      "www.example.org", "port", 80, "ttl", 30,
			      "peers");
	struct signed_meta m;
	struct err e;
	char hex[65];

	cr_assert_eq(ed25519_keygen(s2, p2, &e), 0);
	cr_assert_eq(signed_answer_sign(j, SIGNED_LOOKUP, s2, p2, T0, 600, 1,
					&e), 0);
	cr_assert_eq(verify(j, T0 + 1, &m, &e), SIGNED_BAD);
	cr_expect(strstr(e.msg, "not the pinned authority key") != NULL,
		  "%s", e.msg);
	/* naming the pinned key does not help: the signature is not its */
	hex_encode(pub, ED25519_PUB_LEN, hex);
	json_object_set_new(j, "key", json_string(hex));
	cr_assert_eq(verify(j, T0 + 1, &m, &e), SIGNED_BAD);
	cr_expect(strstr(e.msg, "bad signature") != NULL, "%s", e.msg);
	json_decref(j);
}

Test(signed_answer, an_answer_for_another_service_or_purpose_is_refused)
{
	json_t *j = lookup_answer(1, "192.0.2.7");
	struct signed_meta m;
	struct err e;

	cr_assert_eq(signed_answer_verify(j, SIGNED_LOOKUP, "www.example.org:81",
					  pub, T0 + 1, &m, &e), SIGNED_BAD);
	cr_expect(strstr(e.msg, "not www.example.org:81") != NULL, "%s",
		  e.msg);
	/* the same object with a sha256, checked as a sources answer: the
	 * domain string differs, so the signature does not verify */
	json_object_set_new(j, "sha256", json_string("ab"));
	cr_assert_eq(signed_answer_verify(j, SIGNED_SOURCES, "ab", pub, T0 + 1,
					  &m, &e), SIGNED_BAD);
	cr_expect(strstr(e.msg, "bad signature") != NULL, "%s", e.msg);
	json_decref(j);
}

Test(signed_answer, expired_is_refused_saying_when_and_how_to_override)
{
	json_t *j = lookup_answer(1, "192.0.2.7");
	struct signed_meta m;
	struct err e;

	cr_assert_eq(verify(j, T0 + 600, &m, &e), SIGNED_EXPIRED);
	cr_expect(strstr(e.msg, "expired 0 seconds ago") != NULL, "%s",
		  e.msg);
	cr_assert_eq(verify(j, T0 + 600 + 180, &m, &e), SIGNED_EXPIRED);
	cr_expect(strstr(e.msg, "lookup answer for " SUBJECT " expired 3 "
			 "minutes ago (issued 2027-01-15T08:00:00Z)") != NULL,
		  "%s", e.msg);
	cr_expect(strstr(e.msg, "--allow-stale uses it anyway") != NULL,
		  "%s", e.msg);
	/* the signature did verify: an --allow-stale caller may use it */
	cr_expect_eq(m.version, 1);
	cr_expect_eq(m.expires, T0 + 600);
	json_decref(j);
}

Test(signed_answer, a_lower_version_than_held_is_refused)
{
	json_t *old = lookup_answer(5, "192.0.2.7");
	json_t *held = lookup_answer(7, "192.0.2.9");
	json_t *same = lookup_answer(6, "192.0.2.9");
	struct signed_meta mo, mh, ms;
	struct err e;

	cr_assert_eq(verify(old, T0 + 1, &mo, &e), SIGNED_OK);
	cr_assert_eq(verify(held, T0 + 1, &mh, &e), SIGNED_OK);
	cr_assert_eq(verify(same, T0 + 1, &ms, &e), SIGNED_OK);
	cr_expect_eq(signed_answer_not_older(old, &mo, held, &mh, SIGNED_LOOKUP,
					     SUBJECT, &e), -1);
	cr_expect(strstr(e.msg, "version 5 is older than version 7 already "
			 "held (a rollback)") != NULL, "%s", e.msg);
	/* newer, or nothing held: fine */
	cr_expect_eq(signed_answer_not_older(held, &mh, old, &mo, SIGNED_LOOKUP,
					     SUBJECT, &e), 0);
	cr_expect_eq(signed_answer_not_older(old, &mo, NULL, NULL,
					     SIGNED_LOOKUP, SUBJECT, &e), 0);
	/* lower, but saying what the held one says: nothing rolls back */
	cr_expect_eq(signed_answer_not_older(same, &ms, held, &mh,
					     SIGNED_LOOKUP, SUBJECT, &e), 0);
	json_decref(old);
	json_decref(held);
	json_decref(same);
}

Test(signed_answer, malformed_or_unsigned_answers_say_what_is_missing)
{
	static const char *const drop[] = {
		"signature", "key", "version", "issued_at", "expires", "host",
	};
	struct signed_meta m;
	struct err e;
	size_t i;
	json_t *j;

	for (i = 0; i < sizeof(drop) / sizeof(drop[0]); i++) {
		j = lookup_answer(1, "192.0.2.7");
		json_object_del(j, drop[i]);
		cr_expect_eq(verify(j, T0 + 1, &m, &e), SIGNED_BAD, "%s",
			     drop[i]);
		cr_expect(strstr(e.msg, drop[i]) != NULL, "%s: %s", drop[i],
			  e.msg);
		json_decref(j);
	}
	j = lookup_answer(1, "192.0.2.7");
	json_object_set_new(j, "expires", json_string("tomorrow"));
	cr_expect_eq(verify(j, T0 + 1, &m, &e), SIGNED_BAD);
	cr_expect(strstr(e.msg, "'expires' is not an RFC 3339 time") != NULL,
		  "%s", e.msg);
	json_object_set_new(j, "signature", json_string("xyz"));
	cr_expect_eq(verify(j, T0 + 1, &m, &e), SIGNED_BAD);
	cr_expect(strstr(e.msg, "'signature' must be 128 hex digits") != NULL,
		  "%s", e.msg);
	json_decref(j);
	j = json_array();
	cr_expect_eq(verify(j, T0 + 1, &m, &e), SIGNED_BAD);
	cr_expect(strstr(e.msg, "not a JSON object") != NULL, "%s", e.msg);
	json_decref(j);

	cr_expect_null(signed_answer_parse("{\"a\":1,", 7, &e));
	cr_expect(strstr(e.msg, "not JSON") != NULL, "%s", e.msg);
	cr_expect_null(signed_answer_parse("{\"a\":1,\"a\":2}", 13, &e));
	cr_expect(strstr(e.msg, "not JSON") != NULL, "%s", e.msg);
	cr_expect_null(signed_answer_parse("[1]", 3, &e));
	cr_expect(strstr(e.msg, "not a JSON object") != NULL, "%s", e.msg);
}

Test(signed_answer, oversized_answers_are_bounded)
{
	size_t n = SIGNED_ANSWER_MAX + 16, i;
	char *big = malloc(n + 1);
	struct signed_meta m;
	json_t *j, *peers;
	struct err e;

	cr_assert_not_null(big);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	big[n] = '\0';
	cr_expect_null(signed_answer_parse(big, n, &e));
	cr_expect(strstr(e.msg, "over the") != NULL, "%s", e.msg);
	free(big);

	/* an answer whose canonical bytes pass the bound: neither signed
	 * nor checked */
	j = lookup_answer(1, "192.0.2.7");
	peers = json_object_get(j, "peers");
	for (i = 0; i < SIGNED_ANSWER_MAX / 40 + 1; i++)
		json_array_append_new(peers, json_pack("{s:s, s:s, s:i}",
			"peer", "aa", "addr", "192.0.2.200", "port", 40001));
	cr_expect_eq(verify(j, T0 + 1, &m, &e), SIGNED_BAD);
	cr_expect(strstr(e.msg, "over the") != NULL, "%s", e.msg);
	cr_expect_eq(signed_answer_sign(j, SIGNED_LOOKUP, seed, pub, T0, 600,
					2, &e), -1);
	json_decref(j);
}

Test(signed_answer, the_pinned_key_is_hex_or_a_public_key_file)
{
	char hex[65], *dir = tu_tmpdir(), *path = tu_path(dir, "auth.pub");
	uint8_t k[ED25519_PUB_LEN];
	struct err e;

	hex_encode(pub, ED25519_PUB_LEN, hex);
	cr_assert_eq(signed_trust_key(hex, k, &e), 0, "%s", e.msg);
	cr_expect_eq(memcmp(k, pub, sizeof(k)), 0);
	memset(k, 0, sizeof(k));
	hex[64] = '\n';
	tu_write_file(path, hex, 65);
	cr_assert_eq(signed_trust_key(path, k, &e), 0, "%s", e.msg);
	cr_expect_eq(memcmp(k, pub, sizeof(k)), 0);
	cr_expect_eq(signed_trust_key("/nonexistent/key", k, &e), -1);
	cr_expect(strstr(e.msg, "--authority-key") != NULL, "%s", e.msg);
	cr_expect_eq(signed_trust_key("abc", k, &e), -1);
	tu_rmtree(dir);
	free(path);
	free(dir);
}
