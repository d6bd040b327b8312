/*
 * crypto.c - SHA-256 and Ed25519 on libgcrypt.
 *
 * libgcrypt must be initialised once, before any other call, and told when
 * that is finished; crypto_init() does it under pthread_once so any thread
 * may call it first.  Secure memory holds the secret keys libgcrypt copies
 * into its S-expressions.
 *
 * Ed25519 uses libgcrypt's EdDSA with the "eddsa" flag (RFC 8032 encoding:
 * the secret is the 32-byte seed `d`, the public key `q` is the 32-byte
 * compressed point, a signature is r || s).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gcrypt.h>

#include "common/crypto.h"

#define CRYPTO_MIN_GCRYPT "1.8.0"
#define CRYPTO_SECMEM_BYTES (32 * 1024)

static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static int crypto_ready = -1;

/* Release (and wipe) libgcrypt's secure memory pool at exit. */
static void
crypto_atexit(void)
{
	gcry_control(GCRYCTL_TERM_SECMEM);
}

static void
crypto_init_once(void)
{
	if (gcry_check_version(CRYPTO_MIN_GCRYPT) == NULL)
		return;
	gcry_control(GCRYCTL_SUSPEND_SECMEM_WARN);
	gcry_control(GCRYCTL_INIT_SECMEM, CRYPTO_SECMEM_BYTES, 0);
	gcry_control(GCRYCTL_RESUME_SECMEM_WARN);
	gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
	atexit(crypto_atexit);
	crypto_ready = 0;
}

int
crypto_init(struct err *e)
{
	pthread_once(&crypto_once, crypto_init_once);
	if (crypto_ready != 0)
		return err_set(e, "libgcrypt %s is older than the %s we need",
			       gcry_check_version(NULL), CRYPTO_MIN_GCRYPT);
	return 0;
}

void
sha256(const void *data, size_t len, uint8_t out[SHA256_LEN])
{
	crypto_init(NULL);
	gcry_md_hash_buffer(GCRY_MD_SHA256, out, data, len);
}

void
sha256_init(struct sha256_ctx *c)
{
	gcry_md_hd_t hd = NULL;

	crypto_init(NULL);
	/* Only fails for an unknown algorithm or out of memory. */
	if (gcry_md_open(&hd, GCRY_MD_SHA256, 0) != 0)
		abort();
	c->hd = hd;
}

void
sha256_update(struct sha256_ctx *c, const void *data, size_t len)
{
	gcry_md_write((gcry_md_hd_t)c->hd, data, len);
}

void
sha256_final(struct sha256_ctx *c, uint8_t out[SHA256_LEN])
{
	gcry_md_hd_t hd = c->hd;

	memcpy(out, gcry_md_read(hd, GCRY_MD_SHA256), SHA256_LEN);
	gcry_md_close(hd);
	c->hd = NULL;
}

void
sha256_abort(struct sha256_ctx *c)
{
	if (c->hd != NULL)
		gcry_md_close((gcry_md_hd_t)c->hd);
	c->hd = NULL;
}

int
sha256_fd(int fd, uint8_t out[SHA256_LEN], struct err *e)
{
	static const size_t bufsz = 1 << 20;
	struct sha256_ctx c;
	uint8_t *buf;
	ssize_t n;

	if ((buf = malloc(bufsz)) == NULL)
		return err_sys(e, "sha256");
	sha256_init(&c);
	while ((n = read(fd, buf, bufsz)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			sha256_abort(&c);
			free(buf);
			return err_sys(e, "read");
		}
		sha256_update(&c, buf, (size_t)n);
	}
	sha256_final(&c, out);
	free(buf);
	return 0;
}

/* Copy the value of token `name` in sexp s (exactly len bytes) to out. */
static int
crypto_sexp_bytes(gcry_sexp_t s, const char *name, uint8_t *out, size_t len)
{
	gcry_sexp_t t = gcry_sexp_find_token(s, name, 0);
	const char *data;
	size_t n = 0;

	if (t == NULL)
		return -1;
	data = gcry_sexp_nth_data(t, 1, &n);
	if (data == NULL || n > len) {
		gcry_sexp_release(t);
		return -1;
	}
	/* r and s are fixed-length little-endian strings; pad if shortened */
	memset(out, 0, len - n);
	memcpy(out + (len - n), data, n);
	gcry_sexp_release(t);
	return 0;
}

int
ed25519_public(const uint8_t seed[ED25519_SEED_LEN],
	       uint8_t pub[ED25519_PUB_LEN], struct err *e)
{
	gcry_sexp_t key = NULL;
	gcry_ctx_t ctx = NULL;
	gcry_mpi_t q = NULL;
	const void *qbuf;
	unsigned int nbits = 0;
	int rc = -1;

	if (crypto_init(e) < 0)
		return -1;
	if (gcry_sexp_build(&key, NULL,
	    "(private-key (ecc (curve Ed25519) (flags eddsa) (d %b)))",
	    ED25519_SEED_LEN, seed) != 0) {
		err_set(e, "ed25519: cannot build key");
		goto bad;
	}
	if (gcry_mpi_ec_new(&ctx, key, NULL) != 0) {
		err_set(e, "ed25519: cannot make curve context");
		goto bad;
	}
	/* "q@eddsa": the public key, computed from d, in RFC 8032 encoding */
	if ((q = gcry_mpi_ec_get_mpi("q@eddsa", ctx, 0)) == NULL) {
		err_set(e, "ed25519: cannot derive public key");
		goto bad;
	}
	qbuf = gcry_mpi_get_opaque(q, &nbits);
	if (qbuf == NULL || nbits != 8 * ED25519_PUB_LEN) {
		err_set(e, "ed25519: public key has %u bits", nbits);
		goto bad;
	}
	memcpy(pub, qbuf, ED25519_PUB_LEN);
	rc = 0;
bad:
	gcry_mpi_release(q);
	gcry_ctx_release(ctx);
	gcry_sexp_release(key);
	return rc;
}

int
ed25519_keygen(uint8_t seed[ED25519_SEED_LEN], uint8_t pub[ED25519_PUB_LEN],
	       struct err *e)
{
	if (crypto_init(e) < 0)
		return -1;
	gcry_randomize(seed, ED25519_SEED_LEN, GCRY_VERY_STRONG_RANDOM);
	return ed25519_public(seed, pub, e);
}

int
ed25519_sign(const uint8_t seed[ED25519_SEED_LEN], const void *msg,
	     size_t len, uint8_t sig[ED25519_SIG_LEN], struct err *e)
{
	gcry_sexp_t key = NULL, data = NULL, sv = NULL;
	uint8_t pub[ED25519_PUB_LEN];
	int rc = -1;

	if (len > INT_MAX)
		return err_set(e, "ed25519: message too long to sign");
	if (ed25519_public(seed, pub, e) < 0)
		return -1;
	if (gcry_sexp_build(&key, NULL,
	    "(private-key (ecc (curve Ed25519) (flags eddsa) (q %b) (d %b)))",
	    ED25519_PUB_LEN, pub, ED25519_SEED_LEN, seed) != 0 ||
	    gcry_sexp_build(&data, NULL,
	    "(data (flags eddsa) (hash-algo sha512) (value %b))",
	    (int)len, msg) != 0) {
		err_set(e, "ed25519: cannot build signing request");
		goto bad;
	}
	if (gcry_pk_sign(&sv, data, key) != 0) {
		err_set(e, "ed25519: signing failed");
		goto bad;
	}
	if (crypto_sexp_bytes(sv, "r", sig, 32) < 0 ||
	    crypto_sexp_bytes(sv, "s", sig + 32, 32) < 0) {
		err_set(e, "ed25519: unexpected signature shape");
		goto bad;
	}
	rc = 0;
bad:
	gcry_sexp_release(sv);
	gcry_sexp_release(data);
	gcry_sexp_release(key);
	return rc;
}

/* Is the S half of an Ed25519 signature (32 bytes, little-endian) below
 * the group order L, as RFC 8032 (5.1.7) requires?  libgcrypt 1.10 does not
 * check it, and S + L verifies too: a second signature of the same message
 * that anyone can make from the first. */
static bool
ed25519_s_canonical(const uint8_t s[32])
{
	static const uint8_t l[32] = {	/* 2^252 + 27742317777372353535851937790883648493 */
		0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
		0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
	};

	for (int i = 31; i >= 0; i--)
		if (s[i] != l[i])
			return s[i] < l[i];
	return false;			/* S == L */
}

int
ed25519_verify(const uint8_t pub[ED25519_PUB_LEN], const void *msg,
	       size_t len, const uint8_t sig[ED25519_SIG_LEN])
{
	gcry_sexp_t key = NULL, data = NULL, sv = NULL;
	int rc = -1;

	if (len > INT_MAX || crypto_init(NULL) < 0)
		return -1;
	if (!ed25519_s_canonical(sig + 32))
		return -1;
	if (gcry_sexp_build(&key, NULL,
	    "(public-key (ecc (curve Ed25519) (flags eddsa) (q %b)))",
	    ED25519_PUB_LEN, pub) != 0 ||
	    gcry_sexp_build(&data, NULL,
	    "(data (flags eddsa) (hash-algo sha512) (value %b))",
	    (int)len, msg) != 0 ||
	    gcry_sexp_build(&sv, NULL, "(sig-val (eddsa (r %b) (s %b)))",
	    32, sig, 32, sig + 32) != 0)
		goto bad;
	if (gcry_pk_verify(sv, data, key) == 0)
		rc = 0;
bad:
	gcry_sexp_release(sv);
	gcry_sexp_release(data);
	gcry_sexp_release(key);
	return rc;
}
