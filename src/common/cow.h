/*
 * cow.h - User-Mode Linux copy-on-write files (ubd COW, version 3).
 *
 * The format is UML's own (arch/um/drivers/cow_user.c): a packed header,
 * big-endian integers,
 *
 *   u32 magic "OOOM" (0x4f4f4f4d)   u32 version (3)   u32 mtime of the base
 *   u64 size of the base            u32 sector size   u32 alignment
 *   u32 cow_format (0: bitmap)      char backing_file[4096]
 *
 * then, at the header size rounded up to `alignment`, a bitmap of one bit
 * per sector (bit i of byte i/8, least significant first) saying which
 * sectors live in this file; then, at the bitmap's end rounded up to
 * `alignment`, sector i's data at data_offset + i * sectorsize (a sparse
 * file: only written sectors take space).
 *
 * UML refuses a COW file whose recorded base size or mtime differs from the
 * base it is given, so cow_create() records the local base's.
 */
#ifndef FED_COW_H
#define FED_COW_H

#include <stdint.h>

#include "common/err.h"

#define COW_HEADER_LEN     4128u	/* sizeof the packed v3 header */
#define COW_PATH_MAX       4096u
#define COW_SECTOR         512u
#define COW_ALIGN          4096u	/* what UML writes (PAGE_SIZE) */
#define COW_IMAGE_MAX      (1ull << 40)	/* 1 TiB: bounds the bitmap */

struct cow_header {
	uint32_t mtime;
	uint64_t size;			/* of the base image, bytes */
	uint32_t sectorsize;
	uint32_t alignment;
	char backing_file[COW_PATH_MAX + 1];
	uint64_t bitmap_offset;
	uint64_t bitmap_len;
	uint64_t data_offset;
};

/* Read and check the header of a COW file open at fd. */
int cow_read_header(int fd, struct cow_header *h, struct err *e);

/* Fill h for a new COW file over the base at backing_path (absolute). */
int cow_header_for_base(const char *backing_path, struct cow_header *h,
			struct err *e);

/* Write h at offset 0 of fd and size the file (data_offset + size). */
int cow_write_header(int fd, const struct cow_header *h, struct err *e);

#endif
