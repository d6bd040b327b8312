/*
 * crypto.h - SHA-256 and Ed25519, through libgcrypt.
 *
 * crypto_init() initialises libgcrypt exactly once per process (version
 * check, secure memory, INITIALIZATION_FINISHED); every function below calls
 * it, so callers need not, but a program may call it early to fail fast.
 *
 * Ed25519 keys are a 32-byte secret seed and a 32-byte public key
 * (RFC 8032); signatures are 64 bytes.  Seeds are kept in caller memory:
 * callers should wipe them (explicit_bzero) when done.
 */
#ifndef FED_CRYPTO_H
#define FED_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define SHA256_LEN 32
#define ED25519_SEED_LEN 32
#define ED25519_PUB_LEN 32
#define ED25519_SIG_LEN 64

/* Returns 0, or -1 if libgcrypt is too old or cannot initialise. */
int crypto_init(struct err *e);

/* One-shot SHA-256. */
void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN]);

/* Streaming SHA-256.  The context owns a libgcrypt handle: always finish
 * with sha256_final() (or sha256_abort() on an error path). */
struct sha256_ctx {
	void *hd;
};
void sha256_init(struct sha256_ctx *c);
void sha256_update(struct sha256_ctx *c, const void *data, size_t len);
void sha256_final(struct sha256_ctx *c, uint8_t out[SHA256_LEN]);
void sha256_abort(struct sha256_ctx *c);

/* SHA-256 of everything readable from fd from its current offset to EOF. */
int sha256_fd(int fd, uint8_t out[SHA256_LEN], struct err *e);

/* A fresh random seed and its public key.  Returns 0 or -1. */
int ed25519_keygen(uint8_t seed[ED25519_SEED_LEN],
		   uint8_t pub[ED25519_PUB_LEN], struct err *e);

/* The public key of a seed.  Returns 0 or -1. */
int ed25519_public(const uint8_t seed[ED25519_SEED_LEN],
		   uint8_t pub[ED25519_PUB_LEN], struct err *e);

/* Sign msg with seed.  Returns 0 or -1. */
int ed25519_sign(const uint8_t seed[ED25519_SEED_LEN], const void *msg,
		 size_t len, uint8_t sig[ED25519_SIG_LEN], struct err *e);

/* Returns 0 iff sig is a valid signature of msg by pub, else -1. */
int ed25519_verify(const uint8_t pub[ED25519_PUB_LEN], const void *msg,
		   size_t len, const uint8_t sig[ED25519_SIG_LEN]);

#endif
