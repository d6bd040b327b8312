/*
 * fedsnap.h - the signed delta snapshot container (docs/design.md ".fedsnap format"; docs/formats.md).
 *
 *   "FEDSNAP 1\n"
 *   <manifest: canonical JSON, one line> "\n"
 *   "sig " <128 hex: owner's Ed25519 signature of the manifest bytes> "\n"
 *   <payload: exactly manifest.delta.size bytes, chunked as the manifest says>
 *
 * fedsnap_open() reads and checks everything before the payload (bounded:
 * a manifest line over MANIFEST_MAX_BYTES is refused without reading it
 * whole); the payload is only ever streamed, chunk by chunk, so a multi-GB
 * snapshot costs one chunk of memory.
 *
 * What this file can check alone is the signature, the format and the
 * chunks.  Whether the owner is registered and the base and kernel are
 * trusted is the authority's knowledge: callers check that separately.
 */
#ifndef FED_FEDSNAP_H
#define FED_FEDSNAP_H

#include <stdint.h>

#include "common/crypto.h"
#include "common/err.h"
#include "common/manifest.h"

#define FEDSNAP_MAGIC "FEDSNAP 1\n"
#define FEDSNAP_SIG_PREFIX "sig "

struct fedsnap {
	int fd;				/* owned; -1 when closed */
	char *manifest_bytes;		/* exactly as in the file, NUL added */
	size_t manifest_len;
	struct manifest m;
	uint8_t sig[ED25519_SIG_LEN];
	uint8_t id[SHA256_LEN];		/* SHA-256 of manifest_bytes */
	uint64_t payload_offset;	/* where the payload starts in fd */
};

/* Open path and check header, manifest and the owner's signature. */
int fedsnap_open(const char *path, struct fedsnap *s, struct err *e);

/* Same on an open fd (read from offset 0 with pread); takes ownership of fd
 * (closed by fedsnap_close, also on failure). */
int fedsnap_fdopen(int fd, struct fedsnap *s, struct err *e);

/* Read and hash every payload chunk; check the payload is exactly
 * delta.size bytes and nothing follows.  The error names the chunk. */
int fedsnap_verify_payload(struct fedsnap *s, struct err *e);

/* Check that the file is exactly as long as its payload says (neither
 * truncated nor followed by anything), without reading the payload. */
int fedsnap_check_length(struct fedsnap *s, struct err *e);

/* Check a detached manifest + signature, as the authority receives them:
 * parse (canonical form required) and verify the owner's signature.
 * On success m is filled (release with manifest_free). */
int fedsnap_check_signed_manifest(const char *bytes, size_t len,
				  const uint8_t sig[ED25519_SIG_LEN],
				  struct manifest *m, struct err *e);

/* Sign manifest bytes with the owner's seed. */
int fedsnap_sign_manifest(const uint8_t seed[ED25519_SEED_LEN],
			  const char *bytes, size_t len,
			  uint8_t sig[ED25519_SIG_LEN], struct err *e);

/*
 * Write a complete .fedsnap at path, atomically (temporary file in the same
 * directory, fsync, rename): serialise m, sign it with seed (whose public
 * key must be m->owner), then copy m->delta.size payload bytes from
 * payload_fd (from offset 0).  The id is written to id if not NULL.
 */
int fedsnap_write(const char *path, const struct manifest *m,
		  const uint8_t seed[ED25519_SEED_LEN], int payload_fd,
		  uint8_t id[SHA256_LEN], struct err *e);

void fedsnap_close(struct fedsnap *s);

#endif
