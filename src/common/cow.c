/*
 * cow.c - reading and writing the header of a UML COW file (version 3).
 *
 * Only the layout UML writes today is accepted: version 3, packed header,
 * 512-byte sectors, bitmap format 0.  Every size read from a header is
 * bounded before it is used to size anything.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cow.h"

#define COW_MAGIC_BYTES "OOOM"		/* htonl(0x4f4f4f4d) */
#define COW_VERSION 3
#define COW_OFF_VERSION 4
#define COW_OFF_MTIME 8
#define COW_OFF_SIZE 12
#define COW_OFF_SECTORSIZE 20
#define COW_OFF_ALIGNMENT 24
#define COW_OFF_FORMAT 28
#define COW_OFF_BACKING 32

static uint64_t
cow_round_up(uint64_t x, uint64_t align)
{
	return (x + align - 1) / align * align;
}

static uint32_t
cow_get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return be32toh(v);
}

static uint64_t
cow_get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return be64toh(v);
}

static void
cow_put32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, sizeof(v));
}

static void
cow_put64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, sizeof(v));
}

/* Derive the bitmap and data offsets, as cow_sizes() in UML does. */
static void
cow_layout(struct cow_header *h)
{
	uint64_t sectors = (h->size + h->sectorsize - 1) / h->sectorsize;

	h->bitmap_offset = cow_round_up(COW_HEADER_LEN, h->alignment);
	h->bitmap_len = (sectors + 7) / 8;
	h->data_offset = cow_round_up(h->bitmap_offset + h->bitmap_len,
				      h->alignment);
}

int
cow_read_header(int fd, struct cow_header *h, struct err *e)
{
	uint8_t raw[COW_HEADER_LEN];
	ssize_t n;

	memset(h, 0, sizeof(*h));
	n = pread(fd, raw, sizeof(raw), 0);
	if (n < 0)
		return err_sys(e, "COW header");
	if ((size_t)n < sizeof(raw))
		return err_set(e, "COW file too short for a header (%zd bytes)",
			       n);
	if (memcmp(raw, COW_MAGIC_BYTES, 4) != 0)
		return err_set(e, "not a UML COW file (no OOOM magic)");
	if (cow_get32(raw + COW_OFF_VERSION) != COW_VERSION)
		return err_set(e, "COW version %u not supported (only 3)",
			       cow_get32(raw + COW_OFF_VERSION));
	if (memcmp(raw + COW_OFF_BACKING, "\0\0\0\0", 4) == 0)
		return err_set(e, "COW file has the pre-2006 unpacked v3 layout, "
			       "not supported");
	h->mtime = cow_get32(raw + COW_OFF_MTIME);
	h->size = cow_get64(raw + COW_OFF_SIZE);
	h->sectorsize = cow_get32(raw + COW_OFF_SECTORSIZE);
	h->alignment = cow_get32(raw + COW_OFF_ALIGNMENT);
	if (cow_get32(raw + COW_OFF_FORMAT) != 0)
		return err_set(e, "COW format %u not supported (only bitmap, 0)",
			       cow_get32(raw + COW_OFF_FORMAT));
	if (h->sectorsize != COW_SECTOR)
		return err_set(e, "COW sector size %u not supported (only %u)",
			       h->sectorsize, COW_SECTOR);
	if (h->alignment < COW_SECTOR || h->alignment > (1u << 20) ||
	    (h->alignment & (h->alignment - 1)) != 0)
		return err_set(e, "COW alignment %u is not a power of two in "
			       "[512, 1 MiB]", h->alignment);
	if (h->size == 0 || h->size > COW_IMAGE_MAX ||
	    h->size % h->sectorsize != 0)
		return err_set(e, "COW base size %llu is not a positive multiple "
			       "of %u up to 1 TiB", (unsigned long long)h->size,
			       h->sectorsize);
	memcpy(h->backing_file, raw + COW_OFF_BACKING, COW_PATH_MAX);
	h->backing_file[COW_PATH_MAX] = '\0';
	cow_layout(h);
	return 0;
}

int
cow_header_for_base(const char *backing_path, struct cow_header *h,
		    struct err *e)
{
	struct stat st;
	size_t len = strlen(backing_path);

	memset(h, 0, sizeof(*h));
	if (backing_path[0] != '/')
		return err_set(e, "base path %s must be absolute", backing_path);
	if (len >= COW_PATH_MAX)
		return err_set(e, "base path is %zu bytes, UML allows %u", len,
			       COW_PATH_MAX - 1);
	if (stat(backing_path, &st) < 0)
		return err_sys(e, "base %s", backing_path);
	if (!S_ISREG(st.st_mode))
		return err_set(e, "base %s is not a regular file", backing_path);
	h->mtime = (uint32_t)st.st_mtime;
	h->size = (uint64_t)st.st_size;
	h->sectorsize = COW_SECTOR;
	h->alignment = COW_ALIGN;
	if (h->size == 0 || h->size > COW_IMAGE_MAX ||
	    h->size % COW_SECTOR != 0)
		return err_set(e, "base %s: size %llu is not a positive multiple "
			       "of %u up to 1 TiB", backing_path,
			       (unsigned long long)h->size, COW_SECTOR);
	memcpy(h->backing_file, backing_path, len + 1);
	cow_layout(h);
	return 0;
}

int
cow_write_header(int fd, const struct cow_header *h, struct err *e)
{
	uint8_t raw[COW_HEADER_LEN];

	memset(raw, 0, sizeof(raw));
	memcpy(raw, COW_MAGIC_BYTES, 4);
	cow_put32(raw + COW_OFF_VERSION, COW_VERSION);
	cow_put32(raw + COW_OFF_MTIME, h->mtime);
	cow_put64(raw + COW_OFF_SIZE, h->size);
	cow_put32(raw + COW_OFF_SECTORSIZE, h->sectorsize);
	cow_put32(raw + COW_OFF_ALIGNMENT, h->alignment);
	cow_put32(raw + COW_OFF_FORMAT, 0);
	memcpy(raw + COW_OFF_BACKING, h->backing_file,
	       strnlen(h->backing_file, COW_PATH_MAX - 1));
	if (pwrite(fd, raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return err_sys(e, "write COW header");
	if (ftruncate(fd, (off_t)(h->data_offset + h->size)) < 0)
		return err_sys(e, "size COW file");
	return 0;
}
