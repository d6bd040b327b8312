/*
 * delta.h - turn a UML COW file into a delta payload and back.
 *
 * The payload ("fedcow1+zlib") is one zlib stream of:
 *
 *   "FEDCOW1\0"  u64 image_size  u32 sector_size  u32 flags (0)
 *   extents:      u64 first_sector  u64 nsectors  nsectors * sector_size bytes
 *   end:          u64 extent_count  u64 0
 *
 * (integers big-endian; extents sorted, disjoint, each at most
 * DELTA_EXTENT_SECTORS long, so packing streams with bounded memory).
 * Only 4 KiB blocks that differ from the base are kept, whole (UML misreads
 * COW files whose bitmap splits a block): not a sparse image.  The
 * compressed stream is cut into fixed-size chunks, each hashed into the
 * manifest's delta index, so it is verified before it is inflated.
 */
#ifndef FED_DELTA_H
#define FED_DELTA_H

#include <stdint.h>

#include "common/chunkidx.h"
#include "common/err.h"

#define DELTA_MAGIC "FEDCOW1"	/* 8 bytes with its NUL */
#define DELTA_EXTENT_SECTORS 2048u	/* 1 MiB of 512-byte sectors */
#define DELTA_BLOCK 4096u		/* the unit of change kept */
#define DELTA_BLOCK_SECTORS 8u		/* one byte of the COW bitmap */
#define DELTA_EXTENTS_MAX (1u << 22)

struct delta_stats {
	uint64_t image_size;		/* the base's size */
	uint64_t cow_sectors;		/* sectors the COW file holds */
	uint64_t changed_bytes;		/* bytes of the blocks that differ */
	uint32_t extents;
	uint64_t payload_bytes;		/* compressed */
};

/*
 * Read the COW file at cow_fd (a UML COW over the base at base_fd) and write
 * the compressed payload to out_fd (from its current offset); fill ix with
 * its chunk index (chunk_size bytes per chunk, no file hash).
 */
int delta_pack(int cow_fd, int base_fd, int out_fd, uint32_t chunk_size,
	       struct chunk_index *ix, struct delta_stats *st, struct err *e);

/*
 * Rebuild a COW file at cow_path over the base at base_path (absolute) from
 * the payload at [off, off + ix->size) of payload_fd, verifying each chunk
 * against ix before using a byte of it.  Written to a temporary name and
 * renamed: on failure nothing is left at cow_path.
 */
int delta_unpack(int payload_fd, uint64_t off, const struct chunk_index *ix,
		 const char *base_path, const char *cow_path,
		 struct delta_stats *st, struct err *e);

#endif
