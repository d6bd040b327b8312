/*
 * delta.c - packing a UML COW file into a delta payload, and back.
 *
 * Pack:   COW bitmap -> runs of written sectors -> compare with the base ->
 *         differing sectors as extents -> deflate -> fixed-size chunks,
 *         each hashed into the index as it is written.
 * Unpack: chunk -> verify its hash -> inflate -> parse records -> write
 *         sectors into a new COW file and set their bits -> rename.
 *
 * Both directions stream: memory is one extent, one chunk and zlib's
 * windows, plus the COW bitmap (1/4096 of the image: 256 KiB per GiB).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "common/cow.h"
#include "common/delta.h"
#include "common/io.h"

#define DELTA_HDR_LEN 24
#define DELTA_REC_LEN 16
#define DELTA_IO_BUF (256u << 10)
#define DELTA_RUN_BLOCKS 32u		/* compare 128 KiB at a time */

/* --- small I/O helpers ------------------------------------------------ */

/* pread_full for a read that must be whole: 0, 1 if short (end of
 * file), -1 on error (errno set) */
static int
delta_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t n = pread_full(fd, buf, len, off);

	return n < 0 ? -1 : (size_t)n == len ? 0 : 1;
}

static void
delta_put32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

static void
delta_put64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static uint64_t
delta_get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return be64toh(v);
}

static uint32_t
delta_get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return be32toh(v);
}

/* --- pack: deflate into fixed chunks ----------------------------------- */

struct delta_out {
	z_stream z;
	int fd;
	uint8_t *buf;			/* deflate output */
	struct chunk_index *ix;
	uint32_t cap;			/* entries allocated in ix->chunks */
	struct sha256_ctx cur;		/* hash of the chunk being filled */
	uint32_t cur_len;
};

/* Append n compressed bytes: write them, and hash them into chunks. */
static int
delta_out_emit(struct delta_out *o, const uint8_t *p, size_t n,
	       struct err *e)
{
	if (write_full(o->fd, p, n) < 0)
		return err_sys(e, "write delta payload");
	o->ix->size += n;
	while (n > 0) {
		uint32_t room = o->ix->chunk_size - o->cur_len;
		uint32_t take = n < room ? (uint32_t)n : room;

		if (o->cur_len == 0)
			sha256_init(&o->cur);
		sha256_update(&o->cur, p, take);
		o->cur_len += take;
		p += take;
		n -= take;
		if (o->cur_len == o->ix->chunk_size) {
			if (o->ix->nchunks == CHUNKS_MAX)
				return err_set(e, "delta needs more than %u "
					       "chunks; use a larger chunk "
					       "size", CHUNKS_MAX);
			if (o->ix->nchunks == o->cap) {
				uint32_t ncap = o->cap ? o->cap * 2 : 64;
				void *q = realloc(o->ix->chunks,
						  (size_t)ncap * SHA256_LEN);

				if (q == NULL)
					return err_sys(e, "delta index");
				o->ix->chunks = q;
				o->cap = ncap;
			}
			sha256_final(&o->cur, o->ix->chunks[o->ix->nchunks++]);
			o->cur_len = 0;
		}
	}
	return 0;
}

/* Compress len bytes (flush: Z_NO_FLUSH or Z_FINISH). */
static int
delta_out_write(struct delta_out *o, const void *data, size_t len, int flush,
		struct err *e)
{
	int zrc;

	o->z.next_in = (Bytef *)(uintptr_t)data;
	o->z.avail_in = (uInt)len;
	do {
		o->z.next_out = o->buf;
		o->z.avail_out = DELTA_IO_BUF;
		zrc = deflate(&o->z, flush);
		if (zrc == Z_STREAM_ERROR)
			return err_set(e, "deflate failed");
		if (delta_out_emit(o, o->buf, DELTA_IO_BUF - o->z.avail_out,
				   e) < 0)
			return -1;
	} while (o->z.avail_out == 0 || (flush == Z_FINISH && zrc != Z_STREAM_END));
	return 0;
}

/* Close the last, short chunk. */
static int
delta_out_finish(struct delta_out *o, struct err *e)
{
	if (o->cur_len == 0)
		return 0;
	if (o->ix->nchunks == o->cap) {
		void *q = realloc(o->ix->chunks,
				  ((size_t)o->cap + 1) * SHA256_LEN);

		if (q == NULL)
			return err_sys(e, "delta index");
		o->ix->chunks = q;
		o->cap++;
	}
	sha256_final(&o->cur, o->ix->chunks[o->ix->nchunks++]);
	o->cur_len = 0;
	return 0;
}

struct delta_extent {
	uint64_t first;
	uint32_t count;
	uint8_t *data;			/* DELTA_EXTENT_SECTORS sectors */
};

static int
delta_flush_extent(struct delta_out *o, struct delta_extent *x,
		   struct delta_stats *st, struct err *e)
{
	uint8_t rec[DELTA_REC_LEN];

	if (x->count == 0)
		return 0;
	delta_put64(rec, x->first);
	delta_put64(rec + 8, x->count);
	if (delta_out_write(o, rec, sizeof(rec), Z_NO_FLUSH, e) < 0 ||
	    delta_out_write(o, x->data, (size_t)x->count * COW_SECTOR,
			    Z_NO_FLUSH, e) < 0)
		return -1;
	st->extents++;
	st->changed_bytes += (uint64_t)x->count * COW_SECTOR;
	x->count = 0;
	return 0;
}

static int
delta_add_sector(struct delta_out *o, struct delta_extent *x, uint64_t s,
		 const uint8_t *data, struct delta_stats *st, struct err *e)
{
	if (x->count > 0 && (x->first + x->count != s ||
			     x->count == DELTA_EXTENT_SECTORS))
		if (delta_flush_extent(o, x, st, e) < 0)
			return -1;
	if (x->count == 0)
		x->first = s;
	memcpy(x->data + (size_t)x->count * COW_SECTOR, data, COW_SECTOR);
	x->count++;
	return 0;
}

/* --- pack: what the COW and the raw image packers share ---------------- */

/*
 * What a packer holds while it runs: the payload stream, the extent being
 * gathered, and one run of the image and of the base to compare.
 * delta_packer_init() takes nothing yet, so a packer may return early
 * until delta_packer_alloc(); from then on it ends in delta_packer_done().
 */
struct delta_packer {
	struct delta_out o;
	struct delta_extent x;
	uint8_t *img_buf;		/* DELTA_RUN_BLOCKS blocks each */
	uint8_t *base_buf;
	bool z_ready;			/* o.z is to be ended */
};

/* Zero p, ix and st, and check the chunk size. */
static int
delta_packer_init(struct delta_packer *p, struct chunk_index *ix,
		  struct delta_stats *st, uint32_t chunk_size, struct err *e)
{
	memset(ix, 0, sizeof(*ix));
	memset(st, 0, sizeof(*st));
	memset(p, 0, sizeof(*p));
	p->o.ix = ix;
	if (!chunkidx_valid_chunk_size(chunk_size))
		return err_set(e, "chunk size %u is not a power of two in "
			       "[%u, %u]", chunk_size, CHUNK_SIZE_MIN,
			       CHUNK_SIZE_MAX);
	return 0;
}

/* Allocate p's buffers.  Returns 0, or -1 with errno set. */
static int
delta_packer_alloc(struct delta_packer *p)
{
	p->x.data = malloc((size_t)DELTA_EXTENT_SECTORS * COW_SECTOR);
	p->img_buf = malloc((size_t)DELTA_RUN_BLOCKS * DELTA_BLOCK);
	p->base_buf = malloc((size_t)DELTA_RUN_BLOCKS * DELTA_BLOCK);
	p->o.buf = malloc(DELTA_IO_BUF);
	return p->x.data && p->img_buf && p->base_buf && p->o.buf ? 0 : -1;
}

/* Start the payload into out_fd: the header of an image of image_size
 * bytes. */
static int
delta_packer_start(struct delta_packer *p, int out_fd, uint64_t image_size,
		   struct err *e)
{
	uint8_t hdr[DELTA_HDR_LEN];

	p->o.fd = out_fd;
	if (deflateInit(&p->o.z, Z_DEFAULT_COMPRESSION) != Z_OK)
		return err_set(e, "deflateInit failed");
	p->z_ready = true;
	memcpy(hdr, DELTA_MAGIC, 8);
	delta_put64(hdr + 8, image_size);
	delta_put32(hdr + 16, COW_SECTOR);
	delta_put32(hdr + 20, 0);
	return delta_out_write(&p->o, hdr, sizeof(hdr), Z_NO_FLUSH, e);
}

/* Read sectors [first, first + count) of the image (img_fd, its sector 0
 * at img_off) and of the base into p's run buffers. */
static int
delta_packer_read(struct delta_packer *p, int img_fd, uint64_t img_off,
		  int base_fd, uint64_t first, uint64_t count, struct err *e)
{
	if (delta_pread_full(img_fd, p->img_buf, count * COW_SECTOR,
			     img_off + first * COW_SECTOR) ||
	    delta_pread_full(base_fd, p->base_buf, count * COW_SECTOR,
			     first * COW_SECTOR))
		return err_set(e, "cannot read sectors %llu..%llu",
			       (unsigned long long)first,
			       (unsigned long long)(first + count - 1));
	return 0;
}

/* Keep, whole, each block of the run read (sectors [first, first +
 * count)) whose bytes as the guest sees them differ from the base's. */
static int
delta_packer_keep(struct delta_packer *p, uint64_t first, uint64_t count,
		  struct delta_stats *st, struct err *e)
{
	for (uint64_t i = 0; i < count; i += DELTA_BLOCK_SECTORS) {
		uint64_t len = count - i < DELTA_BLOCK_SECTORS ? count - i
							      : DELTA_BLOCK_SECTORS;
		const uint8_t *r = p->img_buf + i * COW_SECTOR;

		if (memcmp(r, p->base_buf + i * COW_SECTOR,
			   len * COW_SECTOR) == 0)
			continue;
		for (uint64_t k = 0; k < len; k++)
			if (delta_add_sector(&p->o, &p->x, first + i + k,
					     r + k * COW_SECTOR, st, e) < 0)
				return -1;
	}
	return 0;
}

/* The last extent, then the end record (flush: as for delta_out_write). */
static int
delta_packer_end(struct delta_packer *p, struct delta_stats *st, int flush,
		 struct err *e)
{
	uint8_t end[DELTA_REC_LEN];

	if (delta_flush_extent(&p->o, &p->x, st, e) < 0)
		return -1;
	delta_put64(end, st->extents);
	delta_put64(end + 8, 0);
	return delta_out_write(&p->o, end, sizeof(end), flush, e);
}

/* Let go of what p holds, and on failure (rc < 0) of the index.
 * Returns rc. */
static int
delta_packer_done(struct delta_packer *p, int rc)
{
	if (p->z_ready) {
		deflateEnd(&p->o.z);
		if (p->o.cur_len > 0)
			sha256_abort(&p->o.cur);
	}
	free(p->o.buf);
	free(p->base_buf);
	free(p->img_buf);
	free(p->x.data);
	if (rc < 0)
		chunkidx_free(p->o.ix);
	return rc;
}

/* --- pack: a UML COW file ---------------------------------------------- */

/* Pack the run of COW blocks [b, b + n): each block whose contents, as
 * the guest sees them, differ from the base is kept whole. */
static int
delta_pack_run(struct delta_packer *p, const struct cow_header *h,
	       const uint8_t *bitmap, uint64_t b, uint64_t n, int cow_fd,
	       int base_fd, struct delta_stats *st, struct err *e)
{
	uint64_t sectors = h->size / COW_SECTOR;
	uint64_t first = b * DELTA_BLOCK_SECTORS;
	uint64_t count = n * DELTA_BLOCK_SECTORS;

	if (first + count > sectors)
		count = sectors - first;
	if (delta_packer_read(p, cow_fd, h->data_offset, base_fd, first, count,
			      e) < 0)
		return -1;
	/* what the guest reads: sectors not in the COW come from the base */
	for (uint64_t i = 0; i < count; i++) {
		uint8_t bits = bitmap[b + i / DELTA_BLOCK_SECTORS];

		if (bits & (1u << (i % DELTA_BLOCK_SECTORS)))
			st->cow_sectors++;
		else
			memcpy(p->img_buf + i * COW_SECTOR,
			       p->base_buf + i * COW_SECTOR, COW_SECTOR);
	}
	return delta_packer_keep(p, first, count, st, e);
}

int
delta_pack(int cow_fd, int base_fd, int out_fd, uint32_t chunk_size,
	   struct chunk_index *ix, struct delta_stats *st, struct err *e)
{
	struct cow_header h;
	struct delta_packer p;
	uint8_t *bitmap = NULL;
	uint64_t b;
	struct stat bst;
	int rc = -1;

	if (delta_packer_init(&p, ix, st, chunk_size, e) < 0)
		return -1;
	if (cow_read_header(cow_fd, &h, e) < 0)
		return -1;
	if (fstat(base_fd, &bst) < 0)
		return err_sys(e, "base");
	if ((uint64_t)bst.st_size != h.size)
		return err_set(e, "the COW file is over a base of %llu bytes, "
			       "this base has %llu", (unsigned long long)h.size,
			       (unsigned long long)bst.st_size);
	st->image_size = h.size;
	ix->chunk_size = chunk_size;

	bitmap = malloc(h.bitmap_len);
	if (delta_packer_alloc(&p) < 0 || bitmap == NULL) {
		err_sys(e, "delta pack");
		goto bad;
	}
	if (delta_pread_full(cow_fd, bitmap, h.bitmap_len, h.bitmap_offset)) {
		err_set(e, "COW file: cannot read its %llu-byte bitmap",
			(unsigned long long)h.bitmap_len);
		goto bad;
	}
	if (delta_packer_start(&p, out_fd, h.size, e) < 0)
		goto bad;

	/* one bitmap byte is one 4 KiB block: walk runs of written blocks */
	for (b = 0; b < h.bitmap_len;) {
		uint64_t n;

		if (bitmap[b] == 0) {
			b++;
			continue;
		}
		for (n = 1; b + n < h.bitmap_len && n < DELTA_RUN_BLOCKS &&
			    bitmap[b + n] != 0; n++)
			;
		if (delta_pack_run(&p, &h, bitmap, b, n, cow_fd, base_fd, st,
				   e) < 0)
			goto bad;
		b += n;
	}
	if (delta_packer_end(&p, st, Z_FINISH, e) < 0 ||
	    delta_out_finish(&p.o, e) < 0)
		goto bad;
	st->payload_bytes = ix->size;
	rc = 0;
bad:
	free(bitmap);
	return delta_packer_done(&p, rc);
}

/* --- pack: a raw image and a memory state ------------------------------ */

/* Append what fd holds, from where it is to its end, to the stream;
 * *count gets the bytes. */
static int
delta_packer_append(struct delta_packer *p, int fd, uint8_t *buf,
		    uint64_t *count, const char *what, struct err *e)
{
	ssize_t n;

	while (fd >= 0 && (n = read(fd, buf, DELTA_IO_BUF)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_sys(e, "read %s", what);
		if (delta_out_write(&p->o, buf, (size_t)n, Z_NO_FLUSH, e) < 0)
			return -1;
		*count += (uint64_t)n;
	}
	return 0;
}

int
delta_pack_raw(int raw_fd, int base_fd, int state_fd, int ram_fd, int out_fd,
	       uint32_t chunk_size, struct chunk_index *ix,
	       struct delta_stats *st, struct err *e)
{
	struct delta_packer p;
	uint8_t *sbuf = NULL;
	const uint64_t run = (uint64_t)DELTA_RUN_BLOCKS * DELTA_BLOCK_SECTORS;
	uint64_t sectors;
	struct stat rst, bst;
	int rc = -1;

	if (delta_packer_init(&p, ix, st, chunk_size, e) < 0)
		return -1;
	if (fstat(raw_fd, &rst) < 0 || fstat(base_fd, &bst) < 0)
		return err_sys(e, "raw image or base");
	if (rst.st_size != bst.st_size || bst.st_size % COW_SECTOR != 0)
		return err_set(e, "the raw image has %lld bytes, the base %lld "
			       "(must be equal, whole sectors)",
			       (long long)rst.st_size, (long long)bst.st_size);
	st->image_size = (uint64_t)bst.st_size;
	sectors = st->image_size / COW_SECTOR;
	ix->chunk_size = chunk_size;
	sbuf = malloc(DELTA_IO_BUF);
	if (delta_packer_alloc(&p) < 0 || sbuf == NULL) {
		err_sys(e, "delta pack");
		goto bad;
	}
	if (delta_packer_start(&p, out_fd, st->image_size, e) < 0)
		goto bad;
	/* the image's blocks that differ from the base, a run at a time */
	for (uint64_t s = 0; s < sectors; s += run) {
		uint64_t count = sectors - s < run ? sectors - s : run;

		if (delta_packer_read(&p, raw_fd, 0, base_fd, s, count, e) < 0 ||
		    delta_packer_keep(&p, s, count, st, e) < 0)
			goto bad;
	}
	/* the machine follows the end record, in the same stream */
	if (delta_packer_end(&p, st, Z_NO_FLUSH, e) < 0 ||
	    delta_packer_append(&p, state_fd, sbuf, &st->state_bytes,
				"device state", e) < 0 ||
	    delta_packer_append(&p, ram_fd, sbuf, &st->ram_bytes, "memory",
				e) < 0)
		goto bad;
	if (delta_out_write(&p.o, NULL, 0, Z_FINISH, e) < 0 ||
	    delta_out_finish(&p.o, e) < 0)
		goto bad;
	st->payload_bytes = ix->size;
	rc = 0;
bad:
	free(sbuf);
	return delta_packer_done(&p, rc);
}

/* --- unpack: verified chunks -> inflate -> records -> COW -------------- */

enum delta_state { DS_HEADER, DS_RECORD, DS_DATA, DS_END };

struct delta_in {
	enum delta_state state;
	struct cow_header h;
	int cow_fd;
	uint8_t *bitmap;
	uint8_t need[DELTA_HDR_LEN];	/* a header or record being gathered */
	size_t have;
	uint64_t next_sector;		/* extents must start at or after */
	uint64_t data_left;		/* bytes of the current extent */
	uint64_t write_at;		/* file offset for them */
	struct delta_stats *st;
	int state_fd;			/* fedqemu2: device state out; -1 */
	uint64_t state_left;		/* its bytes still expected */
	int ram_fd;			/* fedqemu2: memory out; -1 */
	uint64_t ram_left, ram_at;	/* bytes still expected, offset */
};

/* Are the n bytes at p all zero? */
static bool
delta_is_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Bytes after the end record: device state, then memory.  The memory
 * file is new and sized at the end, so zeros are simply not written. */
static int
delta_in_machine(struct delta_in *in, const uint8_t *p, size_t n,
		 struct err *e)
{
	if (in->state_fd < 0 && in->ram_fd < 0)
		return err_set(e, "delta: data after the end record");
	if (n > in->state_left + in->ram_left)
		return err_set(e, "delta: the saved machine is longer than the "
			       "%llu bytes recorded", (unsigned long long)
			       (in->st->state_bytes + in->st->ram_bytes +
				in->state_left + in->ram_left));
	if (in->state_left > 0) {
		size_t take = n < in->state_left ? n : (size_t)in->state_left;

		if (write_full(in->state_fd, p, take) < 0)
			return err_sys(e, "write device state");
		in->state_left -= take;
		in->st->state_bytes += take;
		p += take;
		n -= take;
	}
	while (n > 0) {
		/* one 4 KiB page of the file at a time */
		size_t take = DELTA_BLOCK - (size_t)(in->ram_at % DELTA_BLOCK);

		if (take > n)
			take = n;
		if (!delta_is_zero(p, take) &&
		    pwrite_full(in->ram_fd, p, take, in->ram_at) < 0)
			return err_sys(e, "write memory");
		in->ram_at += take;
		in->ram_left -= take;
		in->st->ram_bytes += take;
		p += take;
		n -= take;
	}
	return 0;
}

static int
delta_in_record(struct delta_in *in, struct err *e)
{
	uint64_t sectors = in->h.size / COW_SECTOR;
	uint64_t first = delta_get64(in->need), n = delta_get64(in->need + 8);

	if (n == 0) {
		if (first != in->st->extents)
			return err_set(e, "delta: end record counts %llu extents, "
				       "%u were read", (unsigned long long)first,
				       in->st->extents);
		in->state = DS_END;
		return 0;
	}
	if (in->st->extents == DELTA_EXTENTS_MAX)
		return err_set(e, "delta: more than %u extents",
			       DELTA_EXTENTS_MAX);
	if (n > DELTA_EXTENT_SECTORS)
		return err_set(e, "delta: extent of %llu sectors, at most %u",
			       (unsigned long long)n, DELTA_EXTENT_SECTORS);
	if (first < in->next_sector || first > sectors || n > sectors - first)
		return err_set(e, "delta: extent %llu+%llu is out of order or "
			       "beyond the %llu-sector image",
			       (unsigned long long)first, (unsigned long long)n,
			       (unsigned long long)sectors);
	for (uint64_t s = first; in->bitmap != NULL && s < first + n; s++)
		in->bitmap[s / 8] |= (uint8_t)(1u << (s % 8));
	in->next_sector = first + n;
	in->data_left = n * COW_SECTOR;
	in->write_at = in->h.data_offset + first * COW_SECTOR;
	in->st->extents++;
	in->st->changed_bytes += n * COW_SECTOR;
	in->state = DS_DATA;
	return 0;
}

/* Consume n inflated bytes. */
static int
delta_in_consume(struct delta_in *in, const uint8_t *p, size_t n,
		 struct err *e)
{
	while (n > 0) {
		size_t want, take;

		switch (in->state) {
		case DS_HEADER:
		case DS_RECORD:
			want = in->state == DS_HEADER ? DELTA_HDR_LEN
						      : DELTA_REC_LEN;
			take = want - in->have < n ? want - in->have : n;
			memcpy(in->need + in->have, p, take);
			in->have += take;
			p += take;
			n -= take;
			if (in->have < want)
				break;
			in->have = 0;
			if (in->state == DS_RECORD) {
				if (delta_in_record(in, e) < 0)
					return -1;
				break;
			}
			if (memcmp(in->need, DELTA_MAGIC, 8) != 0)
				return err_set(e, "delta: payload is not a "
					       "fedcow1 stream");
			if (delta_get64(in->need + 8) != in->h.size)
				return err_set(e, "delta was made over a base of "
					       "%llu bytes, this base has %llu",
					       (unsigned long long)
					       delta_get64(in->need + 8),
					       (unsigned long long)in->h.size);
			if (delta_get32(in->need + 16) != COW_SECTOR ||
			    delta_get32(in->need + 20) != 0)
				return err_set(e, "delta: unsupported sector "
					       "size or flags");
			in->state = DS_RECORD;
			break;
		case DS_DATA:
			take = in->data_left < n ? (size_t)in->data_left : n;
			if (pwrite(in->cow_fd, p, take, (off_t)in->write_at) !=
			    (ssize_t)take)
				return err_sys(e, "write COW data");
			in->write_at += take;
			in->data_left -= take;
			p += take;
			n -= take;
			if (in->data_left == 0)
				in->state = DS_RECORD;
			break;
		case DS_END:
			if (delta_in_machine(in, p, n, e) < 0)
				return -1;
			n = 0;
			break;
		}
	}
	return 0;
}

/*
 * UML 6.1 misreads a COW file whose bitmap mixes "in the COW" and "in the
 * base" sectors within one 4 KiB block (do_io() advances its offset by the
 * last run only), so every block the delta touches is made whole: sectors
 * of it the delta does not carry are copied from the base.
 */
static int
delta_whole_blocks(struct delta_in *in, const char *base_path, struct err *e)
{
	uint64_t sectors = in->h.size / COW_SECTOR;
	uint8_t sector[COW_SECTOR];
	int base_fd = -1;

	for (uint64_t b = 0; b < in->h.bitmap_len; b++) {
		uint8_t bits = in->bitmap[b];

		if (bits == 0 || bits == 0xff)
			continue;
		if (base_fd < 0 &&
		    (base_fd = open(base_path, O_RDONLY | O_CLOEXEC)) < 0)
			return err_sys(e, "base %s", base_path);
		for (unsigned k = 0; k < DELTA_BLOCK_SECTORS; k++) {
			uint64_t s = b * DELTA_BLOCK_SECTORS + k;

			if (s >= sectors || (bits & (1u << k)))
				continue;
			if (delta_pread_full(base_fd, sector, COW_SECTOR,
					     s * COW_SECTOR) ||
			    pwrite(in->cow_fd, sector, COW_SECTOR,
				   (off_t)(in->h.data_offset + s * COW_SECTOR)) !=
			    COW_SECTOR) {
				close(base_fd);
				return err_sys(e, "fill sector %llu from the base",
					       (unsigned long long)s);
			}
			in->bitmap[b] |= (uint8_t)(1u << k);
		}
	}
	if (base_fd >= 0)
		close(base_fd);
	return 0;
}

static int
delta_fsync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = -1;

	if (copy == NULL)
		return -1;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		rc = fsync(fd);
		close(fd);
	}
	free(copy);
	return rc;
}

/* Copy the base into fd as a sparse raw image (all-zero blocks are left
 * as holes).  Returns 0/-1. */
static int
delta_copy_base(const char *base_path, int fd, uint64_t size, struct err *e)
{
	uint8_t *buf = malloc(DELTA_IO_BUF);
	int base_fd = open(base_path, O_RDONLY | O_CLOEXEC), rc = -1;

	if (buf == NULL || base_fd < 0) {
		err_sys(e, "base %s", base_path);
		goto bad;
	}
	for (uint64_t at = 0; at < size; at += DELTA_IO_BUF) {
		size_t len = size - at < DELTA_IO_BUF ? (size_t)(size - at)
						      : DELTA_IO_BUF;

		if (delta_pread_full(base_fd, buf, len, at)) {
			err_sys(e, "read base %s", base_path);
			goto bad;
		}
		for (size_t b = 0; b < len; b += DELTA_BLOCK) {
			size_t bl = len - b < DELTA_BLOCK ? len - b : DELTA_BLOCK;

			if (delta_is_zero(buf + b, bl))
				continue;
			if (pwrite(fd, buf + b, bl, (off_t)(at + b)) !=
			    (ssize_t)bl) {
				err_sys(e, "write raw image");
				goto bad;
			}
		}
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		err_sys(e, "size raw image");
		goto bad;
	}
	rc = 0;
bad:
	if (base_fd >= 0)
		close(base_fd);
	free(buf);
	return rc;
}

/* A file an unpacker writes: at a temporary name beside path until it is
 * complete, then fsynced and renamed. */
struct delta_file {
	const char *path;		/* NULL: not wanted */
	char *tmp;
	int fd;
};

static int
delta_file_open(struct delta_file *f, const char *path, struct err *e)
{
	f->path = path;
	f->tmp = NULL;
	f->fd = -1;
	if (path == NULL)
		return 0;
	if (asprintf(&f->tmp, "%s.tmp.XXXXXX", path) < 0) {
		f->tmp = NULL;
		return err_sys(e, "unpack");
	}
	if ((f->fd = mkstemp(f->tmp)) < 0 || fchmod(f->fd, 0644) < 0)
		return err_sys(e, "create %s", f->tmp);
	return 0;
}

/* fsync, close and rename into place.  Returns 0/-1. */
static int
delta_file_commit(struct delta_file *f, struct err *e)
{
	int rc;

	if (f->path == NULL)
		return 0;
	rc = fsync(f->fd);
	if (close(f->fd) < 0)
		rc = -1;
	f->fd = -1;
	if (rc < 0)
		return err_sys(e, "write %s", f->tmp);
	if (rename(f->tmp, f->path) < 0)
		return err_sys(e, "rename to %s", f->path);
	free(f->tmp);
	f->tmp = NULL;
	return 0;
}

/* Drop what is left of an uncommitted file. */
static void
delta_file_abort(struct delta_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->tmp != NULL) {
		unlink(f->tmp);
		free(f->tmp);
		f->tmp = NULL;
	}
}

/*
 * Both unpackers: into a UML COW file (raw false) or a raw image (raw true,
 * a sparse copy of the base with the extents written over it); with m,
 * the stream must carry exactly the machine m describes after its end
 * record.
 */
static int
delta_unpack_to(int payload_fd, uint64_t off, const struct chunk_index *ix,
		const char *base_path, const char *cow_path, bool raw,
		const struct delta_machine *m, struct delta_stats *st,
		struct err *e)
{
	static const struct delta_machine none;
	struct delta_file img = { NULL, NULL, -1 }, state = img, ram = img;
	struct delta_in in;
	struct delta_stats local;
	z_stream z;
	uint8_t *chunk = NULL, *out = NULL;
	bool z_ready = false, z_ended = false;
	int rc = -1;

	if (st == NULL)
		st = &local;
	if (m == NULL)
		m = &none;
	memset(st, 0, sizeof(*st));
	memset(&in, 0, sizeof(in));
	memset(&z, 0, sizeof(z));
	in.st = st;
	if (cow_header_for_base(base_path, &in.h, e) < 0)
		return -1;
	st->image_size = in.h.size;
	if (delta_file_open(&img, cow_path, e) < 0 ||
	    delta_file_open(&state, m->state_path, e) < 0 ||
	    delta_file_open(&ram, m->ram_path, e) < 0)
		goto bad;
	in.cow_fd = img.fd;
	in.state_fd = state.fd;
	in.state_left = state.fd >= 0 ? m->state_size : 0;
	in.ram_fd = ram.fd;
	in.ram_left = ram.fd >= 0 ? m->ram_size : 0;
	if (raw) {
		in.h.data_offset = 0;
		if (delta_copy_base(base_path, in.cow_fd, in.h.size, e) < 0)
			goto bad;
	} else if (cow_write_header(in.cow_fd, &in.h, e) < 0 ||
		   (in.bitmap = calloc(1, in.h.bitmap_len)) == NULL) {
		err_sys(e, "unpack");
		goto bad;
	}
	chunk = malloc(ix->chunk_size);
	out = malloc(DELTA_IO_BUF);
	if (!chunk || !out) {
		err_sys(e, "unpack");
		goto bad;
	}
	if (inflateInit(&z) != Z_OK) {
		err_set(e, "inflateInit failed");
		goto bad;
	}
	z_ready = true;

	for (uint32_t i = 0; i < ix->nchunks; i++) {
		uint32_t len = chunkidx_chunk_len(ix, i);
		int r = delta_pread_full(payload_fd, chunk, len,
					 off + (uint64_t)i * ix->chunk_size);

		if (r != 0) {
			if (r < 0)
				err_sys(e, "read chunk %u", i);
			else
				err_set(e, "payload truncated in chunk %u of %u",
					i, ix->nchunks);
			goto bad;
		}
		if (chunkidx_verify_chunk(ix, i, chunk, len, e) < 0)
			goto bad;
		if (z_ended) {
			err_set(e, "delta: chunk %u follows the end of the "
				"compressed stream", i);
			goto bad;
		}
		z.next_in = chunk;
		z.avail_in = len;
		while (z.avail_in > 0 && !z_ended) {
			int zrc;

			z.next_out = out;
			z.avail_out = DELTA_IO_BUF;
			zrc = inflate(&z, Z_NO_FLUSH);
			if (zrc != Z_OK && zrc != Z_STREAM_END) {
				err_set(e, "delta: corrupt compressed data in "
					"chunk %u (%s)", i,
					z.msg ? z.msg : "inflate error");
				goto bad;
			}
			if (delta_in_consume(&in, out,
					     DELTA_IO_BUF - z.avail_out, e) < 0)
				goto bad;
			if (zrc == Z_STREAM_END)
				z_ended = true;
		}
		if (z_ended && z.avail_in > 0) {
			err_set(e, "delta: bytes after the end of the compressed "
				"stream in chunk %u", i);
			goto bad;
		}
	}
	/* inflate may hold output back until asked again */
	while (!z_ended) {
		int zrc;

		z.next_out = out;
		z.avail_out = DELTA_IO_BUF;
		zrc = inflate(&z, Z_FINISH);
		if (delta_in_consume(&in, out, DELTA_IO_BUF - z.avail_out,
				     e) < 0)
			goto bad;
		if (zrc == Z_STREAM_END)
			z_ended = true;
		else if (z.avail_out != 0) {
			err_set(e, "delta: compressed stream is truncated");
			goto bad;
		}
	}
	if (in.state != DS_END) {
		err_set(e, "delta: stream ends before its end record");
		goto bad;
	}
	if (in.state_left + in.ram_left > 0) {
		err_set(e, "delta: the saved machine is %llu bytes short of the "
			"%llu recorded", (unsigned long long)(in.state_left +
			in.ram_left), (unsigned long long)(m->state_size +
			m->ram_size));
		goto bad;
	}
	if (!raw) {
		if (delta_whole_blocks(&in, base_path, e) < 0)
			goto bad;
		if (pwrite(in.cow_fd, in.bitmap, in.h.bitmap_len,
			   (off_t)in.h.bitmap_offset) !=
		    (ssize_t)in.h.bitmap_len) {
			err_sys(e, "write %s", img.tmp);
			goto bad;
		}
	}
	if (ram.fd >= 0 && ftruncate(ram.fd, (off_t)m->ram_size) < 0) {
		err_sys(e, "size %s", ram.tmp);
		goto bad;
	}
	/* the image last: its presence says the machine is all there */
	if (delta_file_commit(&state, e) < 0 || delta_file_commit(&ram, e) < 0 ||
	    delta_file_commit(&img, e) < 0)
		goto bad;
	delta_fsync_dir(cow_path);
	rc = 0;
bad:
	if (z_ready)
		inflateEnd(&z);
	delta_file_abort(&img);
	delta_file_abort(&state);
	delta_file_abort(&ram);
	free(out);
	free(chunk);
	free(in.bitmap);
	return rc;
}

int
delta_unpack(int payload_fd, uint64_t off, const struct chunk_index *ix,
	     const char *base_path, const char *cow_path,
	     struct delta_stats *st, struct err *e)
{
	return delta_unpack_to(payload_fd, off, ix, base_path, cow_path, false,
			       NULL, st, e);
}

int
delta_unpack_raw(int payload_fd, uint64_t off, const struct chunk_index *ix,
		 const char *base_path, const char *raw_path,
		 const struct delta_machine *m, struct delta_stats *st,
		 struct err *e)
{
	return delta_unpack_to(payload_fd, off, ix, base_path, raw_path, true,
			       m, st, e);
}
