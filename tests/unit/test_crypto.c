/*
 * test_crypto.c - SHA-256 against NIST vectors, Ed25519 against RFC 8032
 * section 7.1 (exact public keys and signatures), and that one flipped bit
 * in message, key or signature makes verification fail.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/hex.h"
#include "lib/testutil.h"

static void
expect_sha256(const void *data, size_t len, const char *want)
{
	uint8_t d[SHA256_LEN];
	char hex[2 * SHA256_LEN + 1];

	sha256(data, len, d);
	hex_encode(d, SHA256_LEN, hex);
	cr_assert_str_eq(hex, want);
}

Test(sha256, nist_short_messages)
{
	expect_sha256("", 0,
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	expect_sha256("abc", 3,
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	expect_sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	    56, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	expect_sha256("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
	    "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu", 112,
	    "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

Test(sha256, nist_million_a_streamed_in_odd_pieces)
{
	static const char want[] =
	    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
	char *a = malloc(1000000);
	struct sha256_ctx c;
	uint8_t d[SHA256_LEN];
	char hex[2 * SHA256_LEN + 1];
	size_t off = 0, step = 1;

	memset(a, 'a', 1000000);
	expect_sha256(a, 1000000, want);
	sha256_init(&c);
	while (off < 1000000) {
		size_t n = step < 1000000 - off ? step : 1000000 - off;

		sha256_update(&c, a + off, n);
		off += n;
		step = step * 3 + 1;
	}
	sha256_final(&c, d);
	hex_encode(d, SHA256_LEN, hex);
	cr_assert_str_eq(hex, want);
	free(a);
}

struct rfc8032_vector {
	const char *secret, *public, *message, *signature;
};

/* RFC 8032, section 7.1: TEST 1, 2, 3 and TEST SHA(abc). */
static const struct rfc8032_vector rfc8032[] = {
	{ "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
	  "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
	  "",
	  "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
	  "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b" },
	{ "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
	  "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
	  "72",
	  "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
	  "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00" },
	{ "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
	  "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
	  "af82",
	  "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
	  "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a" },
	{ "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
	  "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
	  "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
	  "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
	  "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
	  "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704" },
};

Test(ed25519, rfc8032_public_keys_and_signatures)
{
	for (size_t i = 0; i < sizeof(rfc8032) / sizeof(rfc8032[0]); i++) {
		const struct rfc8032_vector *v = &rfc8032[i];
		uint8_t *seed, *msg, pub[ED25519_PUB_LEN], sig[ED25519_SIG_LEN];
		char hex[2 * ED25519_SIG_LEN + 1];
		size_t slen, mlen;
		struct err e;

		seed = tu_unhex(v->secret, &slen);
		msg = tu_unhex(v->message, &mlen);
		cr_assert_eq(ed25519_public(seed, pub, &e), 0, "%s", e.msg);
		hex_encode(pub, ED25519_PUB_LEN, hex);
		cr_assert_str_eq(hex, v->public, "vector %zu public key", i);
		cr_assert_eq(ed25519_sign(seed, msg, mlen, sig, &e), 0, "%s", e.msg);
		hex_encode(sig, ED25519_SIG_LEN, hex);
		cr_assert_str_eq(hex, v->signature, "vector %zu signature", i);
		cr_assert_eq(ed25519_verify(pub, msg, mlen, sig), 0);
		free(seed);
		free(msg);
	}
}

Test(ed25519, one_flipped_bit_anywhere_fails)
{
	const struct rfc8032_vector *v = &rfc8032[3];
	uint8_t *pub, *msg, *sig;
	size_t plen, mlen, slen;

	pub = tu_unhex(v->public, &plen);
	msg = tu_unhex(v->message, &mlen);
	sig = tu_unhex(v->signature, &slen);
	cr_assert_eq(ed25519_verify(pub, msg, mlen, sig), 0);
	for (size_t bit = 0; bit < 8 * mlen; bit += 37) {
		msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_assert_neq(ed25519_verify(pub, msg, mlen, sig), 0,
			      "message bit %zu", bit);
		msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	for (size_t bit = 0; bit < 8 * plen; bit += 13) {
		pub[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_assert_neq(ed25519_verify(pub, msg, mlen, sig), 0,
			      "key bit %zu", bit);
		pub[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	for (size_t bit = 0; bit < 8 * slen; bit += 11) {
		sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_assert_neq(ed25519_verify(pub, msg, mlen, sig), 0,
			      "signature bit %zu", bit);
		sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	cr_assert_eq(ed25519_verify(pub, msg, mlen, sig), 0);
	free(pub);
	free(msg);
	free(sig);
}


/* RFC 8032 5.1.7: S must be below L.  S + L verifies in libgcrypt 1.10, so
 * anyone could make a second signature of a signed request: refused. */
Test(ed25519, a_signature_with_s_plus_the_group_order_fails)
{
	uint8_t seed[ED25519_SEED_LEN], pub[ED25519_PUB_LEN],
		sig[ED25519_SIG_LEN];
	struct err e;

	cr_assert_eq(ed25519_keygen(seed, pub, &e), 0, "%s", e.msg);
	for (int i = 0; i < 16; i++) {
		char msg[32];

		snprintf(msg, sizeof(msg), "request %d", i);
		cr_assert_eq(ed25519_sign(seed, msg, strlen(msg), sig, &e), 0);
		cr_assert_eq(ed25519_verify(pub, msg, strlen(msg), sig), 0);
		tu_ed25519_s_plus_l(sig);
		cr_assert_neq(ed25519_verify(pub, msg, strlen(msg), sig), 0,
			      "S + L verified for '%s'", msg);
	}
}

Test(ed25519, fresh_keys_sign_and_verify)
{
	uint8_t seed[ED25519_SEED_LEN], pub[ED25519_PUB_LEN], pub2[ED25519_PUB_LEN],
		seed2[ED25519_SEED_LEN], sig[ED25519_SIG_LEN];
	struct err e;

	cr_assert_eq(ed25519_keygen(seed, pub, &e), 0, "%s", e.msg);
	cr_assert_eq(ed25519_keygen(seed2, pub2, &e), 0, "%s", e.msg);
	cr_assert_neq(memcmp(seed, seed2, sizeof(seed)), 0, "two keys alike");
	cr_assert_eq(ed25519_sign(seed, "hello", 5, sig, &e), 0, "%s", e.msg);
	cr_assert_eq(ed25519_verify(pub, "hello", 5, sig), 0);
	cr_assert_neq(ed25519_verify(pub2, "hello", 5, sig), 0, "wrong signer");
}

Test(hex, decode_refuses_bad_digits_and_lengths)
{
	uint8_t out[4];

	cr_assert_eq(hex_decode("00ff10AB", out, 4), 0);
	cr_assert_eq(out[1], 0xff);
	cr_assert_eq(hex_decode("00ff10A", out, 4), -1);
	cr_assert_eq(hex_decode("00ff10ABC", out, 4), -1);
	cr_assert_eq(hex_decode("00fg10AB", out, 4), -1);
	cr_assert(hex_is_sha256(
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	cr_assert(!hex_is_sha256(
	    "E3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	cr_assert(!hex_is_sha256("e3b0"));
}
