/*
 * test_keyrec.c - owner key records (common/keyrec.c) without an
 * authority: each type encodes to one canonical line and parses back;
 * a signature covers the domain and the record, so it does not verify
 * for the bare bytes, another record or another key; the body a client
 * makes is the body the authority parses.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/hex.h"
#include "common/keyrec.h"

struct k {
	uint8_t seed[ED25519_SEED_LEN], pub[ED25519_PUB_LEN];
	char hex[2 * ED25519_PUB_LEN + 1];
};

static void
k_new(struct k *k)
{
	struct err e;

	cr_assert_eq(crypto_init(&e), 0, "%s", e.msg);
	cr_assert_eq(ed25519_keygen(k->seed, k->pub, &e), 0, "%s", e.msg);
	hex_encode(k->pub, ED25519_PUB_LEN, k->hex);
}

static struct keyrec
rotation(const struct k *old, const struct k *new_)
{
	struct keyrec r = { .type = KEYREC_ROTATION, .issued_at = 1765108800 };

	memcpy(r.old, old->hex, sizeof(r.old));
	memcpy(r.new_, new_->hex, sizeof(r.new_));
	return r;
}

Test(keyrec, each_type_is_one_canonical_line_that_parses_back)
{
	static const enum keyrec_type types[] = {
		KEYREC_ROTATION, KEYREC_REVOCATION, KEYREC_CONFIRMATION,
	};
	struct k a, b;
	struct keyrec r, back;
	struct err e;
	size_t len;
	char *line;

	k_new(&a);
	k_new(&b);
	for (size_t i = 0; i < 3; i++) {
		r = rotation(&a, &b);
		r.type = types[i];
		if (r.type == KEYREC_REVOCATION)
			r.new_[0] = '\0';
		line = keyrec_encode(&r, &len, &e);
		cr_assert_not_null(line, "%s", e.msg);
		cr_expect(strstr(line, keyrec_type_name(r.type)) != NULL);
		cr_expect(strstr(line, "\"issued_at\":\"2025-12-07T12:00:00Z\"")
			  != NULL, "%s", line);
		cr_assert_eq(keyrec_parse(line, len, &back, &e), 0, "%s: %s",
			     line, e.msg);
		cr_expect_eq(back.type, r.type);
		cr_expect_str_eq(back.old, r.old);
		cr_expect_str_eq(back.new_, r.new_);
		cr_expect_eq(back.issued_at, r.issued_at);
		free(line);
	}
}

Test(keyrec, a_signature_covers_the_domain_the_record_and_the_key)
{
	uint8_t sig[ED25519_SIG_LEN];
	struct k a, b;
	struct keyrec r;
	struct err e;
	size_t len, len2;
	char *line, *other;

	k_new(&a);
	k_new(&b);
	r = rotation(&a, &b);
	line = keyrec_encode(&r, &len, &e);
	cr_assert_eq(keyrec_sign(a.seed, line, len, sig, &e), 0, "%s", e.msg);
	cr_expect_eq(keyrec_verify(a.hex, line, len, sig), 0);
	cr_expect_neq(keyrec_verify(b.hex, line, len, sig), 0, "another key");
	r.issued_at++;
	other = keyrec_encode(&r, &len2, &e);
	cr_expect_neq(keyrec_verify(a.hex, other, len2, sig), 0,
		      "another record");
	/* the bare bytes, signed as a manifest would be, are not a record's
	 * signature */
	cr_assert_eq(ed25519_sign(a.seed, line, len, sig, &e), 0);
	cr_expect_neq(keyrec_verify(a.hex, line, len, sig), 0,
		      "no domain");
	free(line);
	free(other);
}

Test(keyrec, the_body_a_client_makes_is_the_one_the_authority_reads)
{
	struct keyrec_body b;
	struct keyrec r, back;
	struct k a, n;
	struct err e;
	json_t *body;

	k_new(&a);
	k_new(&n);
	r = rotation(&a, &n);
	body = keyrec_body_make(&r, a.seed, n.seed, &e);
	cr_assert_not_null(body, "%s", e.msg);
	cr_assert_eq(keyrec_body_parse(body, &b, &e), 0, "%s", e.msg);
	cr_expect(b.has_new_sig);
	cr_assert_eq(keyrec_parse(b.record, b.record_len, &back, &e), 0);
	cr_expect_eq(keyrec_verify(a.hex, b.record, b.record_len, b.sig), 0);
	cr_expect_eq(keyrec_verify(n.hex, b.record, b.record_len, b.new_sig),
		     0);
	json_decref(body);
}

Test(keyrec, refusals_say_what_is_wrong)
{
	static const struct {
		const char *text, *words;
	} bad[] = {
		{ "", "0 bytes" },
		{ "{", "not JSON" },
		{ "\"x\"", "not JSON" },	/* jansson: not an object/array */
		{ "{}", "'type'" },
		{ "{\"type\":\"fed-key-revocation-v1\"}", "'issued_at'" },
		{ "{\"issued_at\":\"2025-12-07T12:00:00Z\",\"key\":\"AB\","
		  "\"type\":\"fed-key-revocation-v1\"}", "'key' must be a key" },
		{ "{\"issued_at\":\"2025-12-07 12:00:00\",\"key\":\"AB\","
		  "\"type\":\"fed-key-revocation-v1\"}", "'issued_at'" },
	};
	struct keyrec r;
	struct err e;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e.msg[0] = '\0';
		cr_expect_eq(keyrec_parse(bad[i].text, strlen(bad[i].text), &r,
					  &e), -1, "%s", bad[i].text);
		cr_expect(strstr(e.msg, bad[i].words) != NULL,
			  "'%s': '%s' lacks '%s'", bad[i].text, e.msg,
			  bad[i].words);
	}
}
