/*
 * hex.h - lower-case hexadecimal, the only text form of hashes and keys.
 */
#ifndef FED_HEX_H
#define FED_HEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_HEX_LEN 64	/* also the length of a hex Ed25519 public key */

/* Write 2*len lower-case hex digits and a NUL to out (2*len+1 bytes). */
void hex_encode(const uint8_t *in, size_t len, char *out);

/*
 * Decode exactly 2*len hex digits from in (lower or upper case) into out.
 * Returns 0, or -1 if in is not exactly that many hex digits followed by NUL.
 */
int hex_decode(const char *in, uint8_t *out, size_t len);

/* True iff s is exactly 64 lower-case hex digits (a hash, key or id). */
bool hex_is_sha256(const char *s);

#endif
