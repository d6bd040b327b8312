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
	uint64_t state_bytes;		/* fedqemu2: device state, inflated */
	uint64_t ram_bytes;		/* fedqemu2: memory, inflated */
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

/*
 * "fedqemu2+zlib" (a QEMU running-state snapshot): the same stream, made
 * from a raw disk image (as large as the base) instead of a COW file, and
 * with the machine saved after the end record, in the same zlib stream and
 * so in the same verified chunks: its device state (QEMU's migration
 * stream, read from state_fd to its end) and then its memory (the guest's
 * RAM file, read from ram_fd to its end; zeros cost next to nothing).
 * Either fd may be -1: none.  st->state_bytes and st->ram_bytes say how
 * many bytes of each were packed.
 */
int delta_pack_raw(int raw_fd, int base_fd, int state_fd, int ram_fd,
		   int out_fd, uint32_t chunk_size, struct chunk_index *ix,
		   struct delta_stats *st, struct err *e);

/*
 * Unpack such a payload: raw_path becomes a sparse copy of the base with
 * the delta's extents written over it; state_path (if not NULL) the
 * exactly state_size bytes of device state, ram_path (if not NULL) the
 * exactly ram_size bytes of memory, sparse (zeros are holes).  Each chunk
 * is verified before it is inflated; every file is written to a temporary
 * name and renamed, so on failure none is left.
 */
struct delta_machine {
	const char *state_path;
	uint64_t state_size;
	const char *ram_path;
	uint64_t ram_size;
};
int delta_unpack_raw(int payload_fd, uint64_t off, const struct chunk_index *ix,
		     const char *base_path, const char *raw_path,
		     const struct delta_machine *m, struct delta_stats *st,
		     struct err *e);

#endif
