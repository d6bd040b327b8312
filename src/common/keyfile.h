/*
 * keyfile.h - key files as docs/design.md ("Keys and signatures") and
 * docs/formats.md fix them.
 *
 * A key file holds the 32-byte secret seed as 64 hex digits and a newline,
 * mode 0600.  A key file that group or others may read is refused: a secret
 * that leaked is no longer a proof of anything.  A public key file holds the
 * 64-hex public key (as printed by `fed pubkey`).
 */
#ifndef FED_KEYFILE_H
#define FED_KEYFILE_H

#include <stdint.h>

#include "common/crypto.h"
#include "common/err.h"

/* Create a new key at path (must not exist), mode 0600.  Fills seed/pub. */
int keyfile_create(const char *path, uint8_t seed[ED25519_SEED_LEN],
		   uint8_t pub[ED25519_PUB_LEN], struct err *e);

/* Load a secret key file; pub may be NULL. */
int keyfile_load(const char *path, uint8_t seed[ED25519_SEED_LEN],
		 uint8_t pub[ED25519_PUB_LEN], struct err *e);

/* Load a public key file: 64 hex digits, as `fed pubkey` prints.  (A
 * secret key file has the same shape, so it is never guessed at: callers
 * that hold a secret key use keyfile_load.) */
int pubkey_load(const char *path, uint8_t pub[ED25519_PUB_LEN],
		struct err *e);

#endif
