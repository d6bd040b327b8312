/*
 * fuzz_delta.c - libFuzzer target for delta_unpack(), past the signature.
 *
 * The input is a delta payload ("fedcow1+zlib").  Its chunk index is built
 * from the input itself (4096-byte chunks), so every chunk verifies and the
 * fuzzer reaches inflate and the record parser.  The base is a 64 KiB zero
 * file in a per-process scratch directory.
 *
 * Checked after each run:
 *  - a failed unpack leaves nothing behind: no COW at cow_path, no
 *    temporary file (fuzz_check_dir);
 *  - a successful unpack gives a COW that delta_pack() reads back, and
 *    pack and unpack agree: P2 = pack(unpack(input)) unpacks (with the
 *    stats pack reported), and packing that again gives P2 byte for byte
 *    (the packer's output is canonical).
 *
 * Most byte mutations of a zlib stream only break it (and its Adler-32),
 * so the custom mutator below usually inflates the input, mutates the
 * plain record stream and deflates it again (at a random level): the
 * record parser then sees well-formed compressed data with malformed
 * records.  Half the time the plain stream gets libFuzzer's byte-level
 * mutations, a quarter of the time a record-level one (move, resize, drop
 * or add an extent, end count kept right) that gets past the parser's
 * checks; the last quarter mutates the compressed bytes as they are, for
 * inflate's error paths.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "common/delta.h"
#include "fuzz_util.h"

#define FUZZ_CHUNK 4096u
#define FUZZ_PLAIN_MAX (1u << 20)	/* inflated size the mutator handles */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
			       unsigned int seed);

struct fuzz_rec {
	uint64_t first, n;
	const uint8_t *data;		/* n sectors, or NULL: fill */
};

static uint64_t
fuzz_get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void
fuzz_put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/*
 * A record-level mutation of the plain stream in buf (len bytes, room for
 * cap): move, resize, drop or add one extent, usually keeping the end
 * record's count right, so that unpack gets past its checks with extents
 * it has not seen (unaligned, adjacent, at the image's end...).  Returns
 * the new length.
 */
static size_t
fuzz_mutate_records(uint8_t *buf, size_t len, size_t cap, unsigned r)
{
	static uint8_t out[FUZZ_PLAIN_MAX];
	struct fuzz_rec rec[64];
	unsigned nrec = 0, i, sectors = FUZZ_BASE_LEN / 512;
	size_t at = 24, o;

	if (len < 24)
		return len;
	while (nrec < 64 && at + 16 <= len) {
		uint64_t n = fuzz_get64(buf + at + 8);

		if (n == 0 || n > 2048 || at + 16 + n * 512 > len)
			break;
		rec[nrec].first = fuzz_get64(buf + at);
		rec[nrec].n = n;
		rec[nrec].data = buf + at + 16;
		nrec++;
		at += 16 + n * 512;
	}
	i = nrec ? (r >> 4) % nrec : 0;
	switch ((r >> 1) % 5) {
	case 0:			/* move */
		if (nrec)
			rec[i].first = (r >> 9) % (sectors + 2);
		break;
	case 1:			/* resize, new sectors filled */
		if (nrec && (r >> 9) % 24 + 1 <= rec[i].n)
			rec[i].n = (r >> 9) % 24 + 1;
		else if (nrec)
			rec[i].data = NULL, rec[i].n = (r >> 9) % 24 + 1;
		break;
	case 2:			/* drop */
		if (nrec) {
			memmove(&rec[i], &rec[i + 1],
				(nrec - i - 1) * sizeof(rec[0]));
			nrec--;
		}
		break;
	default:		/* add, after record i */
		if (nrec < 64) {
			unsigned at_i = nrec ? i + 1 : 0;

			memmove(&rec[at_i + 1], &rec[at_i],
				(nrec - at_i) * sizeof(rec[0]));
			rec[at_i].first = nrec ? rec[i].first + rec[i].n +
					  (r >> 9) % 3 : (r >> 9) % sectors;
			rec[at_i].n = (r >> 13) % 16 + 1;
			rec[at_i].data = NULL;
			nrec++;
		}
		break;
	}
	memcpy(out, buf, 24);
	o = 24;
	for (i = 0; i < nrec; i++) {
		size_t dl = (size_t)rec[i].n * 512;

		if (o + 16 + dl + 16 > cap)
			break;
		fuzz_put64(out + o, rec[i].first);
		fuzz_put64(out + o + 8, rec[i].n);
		if (rec[i].data != NULL)
			memcpy(out + o + 16, rec[i].data, dl);
		else
			memset(out + o + 16, (int)(0x41 + i), dl);
		o += 16 + dl;
	}
	/* the end record: usually right, sometimes off by one */
	fuzz_put64(out + o, i + ((r >> 20) % 8 == 0));
	fuzz_put64(out + o + 8, 0);
	o += 16;
	memcpy(buf, out, o);
	return o;
}

size_t
LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
			unsigned int seed)
{
	static uint8_t *plain, *packed;
	z_stream z;
	size_t plen;
	uLongf clen;
	int zrc;

	if (seed % 4 == 0)
		return LLVMFuzzerMutate(data, size, max_size);
	if (plain == NULL &&
	    ((plain = malloc(FUZZ_PLAIN_MAX)) == NULL ||
	     (packed = malloc(compressBound(FUZZ_PLAIN_MAX))) == NULL))
		fuzz_die("mutator buffers");
	memset(&z, 0, sizeof(z));
	if (inflateInit(&z) != Z_OK)
		fuzz_die("inflateInit");
	z.next_in = data;
	z.avail_in = (uInt)size;
	z.next_out = plain;
	z.avail_out = FUZZ_PLAIN_MAX;
	zrc = inflate(&z, Z_FINISH);
	plen = z.total_out;
	inflateEnd(&z);
	/* keep what inflated, even from a broken stream */
	if (plen == 0 && zrc != Z_STREAM_END)
		return LLVMFuzzerMutate(data, size, max_size);
	if (seed % 4 == 1)
		plen = fuzz_mutate_records(plain, plen, FUZZ_PLAIN_MAX, seed);
	else
		plen = LLVMFuzzerMutate(plain, plen, FUZZ_PLAIN_MAX);
	clen = compressBound(FUZZ_PLAIN_MAX);
	if (compress2(packed, &clen, plain, plen, (int)(seed / 4 % 10)) != Z_OK ||
	    clen > max_size)
		return LLVMFuzzerMutate(data, size, max_size);
	memcpy(data, packed, clen);
	return clen;
}

/* Pack the COW at cow over the base into a new memfd; abort on failure. */
static int
fuzz_pack(const char *cow, struct chunk_index *ix, struct delta_stats *st)
{
	struct err e;
	int cfd = open(cow, O_RDONLY | O_CLOEXEC);
	int bfd = open(fuzz_base, O_RDONLY | O_CLOEXEC);
	int out = memfd_create("fuzz_delta_pack", MFD_CLOEXEC);

	if (cfd < 0 || bfd < 0 || out < 0)
		fuzz_die("open for pack");
	if (delta_pack(cfd, bfd, out, FUZZ_CHUNK, ix, st, &e) < 0) {
		fprintf(stderr, "fuzz: cannot pack a COW delta_unpack made: %s\n",
			e.msg);
		abort();
	}
	close(cfd);
	close(bfd);
	return out;
}

/* The whole contents of fd (malloc'd), its length in *len. */
static uint8_t *
fuzz_slurp(int fd, size_t *len)
{
	struct stat st;
	uint8_t *buf;

	if (fstat(fd, &st) < 0 || (buf = malloc((size_t)st.st_size + 1)) == NULL)
		fuzz_die("slurp");
	if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size)
		fuzz_die("slurp read");
	*len = (size_t)st.st_size;
	return buf;
}

static void
fuzz_round_trip(const char *cow, const struct delta_stats *st1)
{
	struct chunk_index ix2, ix3;
	struct delta_stats st2, st3, ust;
	struct err e;
	char cow2[600];
	uint8_t *p2, *p3;
	size_t l2, l3;
	int fd2, fd3;

	fd2 = fuzz_pack(cow, &ix2, &st2);
	if (st2.image_size != FUZZ_BASE_LEN || st1->image_size != FUZZ_BASE_LEN ||
	    st2.payload_bytes != ix2.size)
		fuzz_die("pack of an unpacked COW: inconsistent stats");
	fuzz_path(cow2, sizeof(cow2), "out2.cow");
	if (delta_unpack(fd2, 0, &ix2, fuzz_base, cow2, &ust, &e) < 0) {
		fprintf(stderr, "fuzz: delta_unpack refused delta_pack's "
			"output: %s\n", e.msg);
		abort();
	}
	if (ust.changed_bytes != st2.changed_bytes ||
	    ust.extents != st2.extents)
		fuzz_die("unpack stats differ from pack stats");
	fd3 = fuzz_pack(cow2, &ix3, &st3);
	p2 = fuzz_slurp(fd2, &l2);
	p3 = fuzz_slurp(fd3, &l3);
	if (l2 != l3 || memcmp(p2, p3, l2) != 0 || ix2.nchunks != ix3.nchunks ||
	    memcmp(ix2.chunks, ix3.chunks, (size_t)ix2.nchunks * SHA256_LEN))
		fuzz_die("pack(unpack(P)) != P for a packed P");
	free(p2);
	free(p3);
	chunkidx_free(&ix2);
	chunkidx_free(&ix3);
	close(fd2);
	close(fd3);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const made[] = { "out.cow", NULL };
	static const char *const made2[] = { "out.cow", "out2.cow", NULL };
	struct chunk_index ix;
	struct delta_stats st;
	struct err e = { { 0 } };
	char cow[600];
	int fd, rc;

	fuzz_setup("fuzz_delta");
	fd = fuzz_memfd("fuzz_delta", data, size);
	if (chunkidx_build_fd(fd, FUZZ_CHUNK, &ix, &e) < 0) {
		fprintf(stderr, "fuzz: chunkidx_build_fd: %s\n", e.msg);
		abort();
	}
	if (ix.size != size)
		fuzz_die("index size differs from the input");
	fuzz_path(cow, sizeof(cow), "out.cow");
	rc = delta_unpack(fd, 0, &ix, fuzz_base, cow, &st, &e);
#ifdef FUZZ_TRACE
	fprintf(stderr, "unpack %d: %s\n", rc, rc < 0 ? e.msg : "ok");
#endif
	if (rc < 0)
		fuzz_check_msg("delta_unpack", e.msg);
	if (rc == 0)
		fuzz_round_trip(cow, &st);
	fuzz_check_dir(rc, rc == 0 ? made2 : made);
	chunkidx_free(&ix);
	close(fd);
	return 0;
}
