/*
 * fuzz_key.h - the Ed25519 seed the fuzz seeds are signed with.
 *
 * Published on purpose: it signs nothing but fuzz inputs (gen_seeds.c uses
 * it for the seeds, fuzz_fedsnap.c's mutator to re-sign mutated
 * manifests).  No authority registers its public key.
 */
#ifndef FED_FUZZ_KEY_H
#define FED_FUZZ_KEY_H

#include <stdint.h>

#include "common/crypto.h"

static const uint8_t fuzz_test_seed[ED25519_SEED_LEN] = {
	'f', 'e', 'd', '-', 'f', 'u', 'z', 'z', '-', 's', 'e', 'e', 'd',
	's', '-', 'n', 'o', 't', '-', 'a', '-', 's', 'e', 'c', 'r', 'e',
	't', '-', 'k', 'e', 'y', '!',
};

#endif
