/*
 * chunkidx.h - the index every fedfs file is read through.
 *
 * A file of `size` bytes is cut into chunks of `chunk_size` bytes (the last
 * one shorter); the index lists each chunk's SHA-256 and, for kernels and
 * bases, the whole file's SHA-256, which is also its name.  A reader fetches
 * any chunk from any source and trusts it only if its hash matches.
 *
 * JSON form (inside a trust entry or a manifest's "delta"):
 *   {"sha256":"..", "size":N, "chunk_size":N, "chunks":["..", ..]}
 * ("sha256" is absent for a delta, whose id is its manifest's hash.)
 */
#ifndef FED_CHUNKIDX_H
#define FED_CHUNKIDX_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "common/crypto.h"
#include "common/err.h"

#define CHUNK_SIZE_MIN     4096u
#define CHUNK_SIZE_MAX     (16u << 20)
#define CHUNK_SIZE_DEFAULT (1u << 20)
#define CHUNKS_MAX         100000u	/* bounds an index to ~7 MB of JSON */

struct chunk_index {
	bool has_file_hash;
	uint8_t file_hash[SHA256_LEN];
	uint64_t size;
	uint32_t chunk_size;
	uint32_t nchunks;
	uint8_t (*chunks)[SHA256_LEN];	/* nchunks entries, owned */
};

/* Number of chunks a file of size bytes has with chunk_size chunks. */
uint64_t chunkidx_count(uint64_t size, uint32_t chunk_size);

/* Byte length of chunk i. */
uint32_t chunkidx_chunk_len(const struct chunk_index *ix, uint32_t i);

/* True iff chunk_size is a power of two within [MIN, MAX]. */
bool chunkidx_valid_chunk_size(uint64_t chunk_size);

/* Index everything readable from fd (from offset 0), with the whole-file
 * hash.  Streams: memory use is the index, not the file. */
int chunkidx_build_fd(int fd, uint32_t chunk_size, struct chunk_index *ix,
		      struct err *e);

/* To JSON (new reference).  NULL only on out of memory. */
json_t *chunkidx_to_json(const struct chunk_index *ix);

/* From JSON, checking every bound and that chunk count matches size.
 * want_file_hash: the "sha256" member is required (else forbidden). */
int chunkidx_from_json(const json_t *j, bool want_file_hash,
		       struct chunk_index *ix, struct err *e);

/* Verify that buf (len bytes) is chunk i.  Returns 0 or -1. */
int chunkidx_verify_chunk(const struct chunk_index *ix, uint32_t i,
			  const void *buf, size_t len, struct err *e);

void chunkidx_free(struct chunk_index *ix);

#endif
