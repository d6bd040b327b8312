/*
 * gen_seeds.c - write the fuzz targets' seed inputs (run by
 * scripts/fuzz-seeds.sh; not a fuzz target itself).
 *
 *   gen_seeds OUTDIR
 *
 * Builds synthetic UML COW files over a 64 KiB zero base (the base the
 * fuzz targets use), packs each with delta_pack (4096-byte chunks), signs
 * it into a .fedsnap with a fixed, published test key, and writes:
 *
 *   OUTDIR/fuzz_delta/<name>        the payload alone
 *   OUTDIR/fuzz_fedsnap/<name>      the whole .fedsnap
 *   OUTDIR/fuzz_manifest/<name>     the manifest line alone
 *
 * plus a hand-built payload for a corner of the stream/chunk boundary
 * (gen_chunk_edge).
 * Everything is deterministic (fixed key, fixed pseudo-random data, fixed
 * time), so running it again gives the same bytes.  The key (fuzz_key.h)
 * signs nothing but fuzz inputs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "common/cow.h"
#include "common/delta.h"
#include "common/fedsnap.h"
#include "common/manifest.h"
#include "fuzz_key.h"

#define BASE_LEN (64u << 10)
#define SECTORS (BASE_LEN / COW_SECTOR)
#define CHUNK 4096u

int main(int argc, char **argv);

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint8_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint8_t)(rng >> 24);
}

static void
die(const char *what, const struct err *e)
{
	fprintf(stderr, "gen_seeds: %s%s%s\n", what, e ? ": " : "",
		e ? e->msg : "");
	exit(1);
}

static void
write_file(const char *dir, const char *sub, const char *name,
	   const void *buf, size_t len)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		die(path, NULL);
	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0 ||
	    write(fd, buf, len) != (ssize_t)len || close(fd) < 0)
		die(path, NULL);
}

/* How a seed's COW differs from the zero base. */
enum fill { F_ZERO, F_PATTERN, F_RANDOM };

struct run {
	uint32_t first, count;
	enum fill fill;
};

struct seed {
	const char *name;
	const char *machine;
	const char *extra;		/* JSON object of extra members, or NULL */
	struct run runs[8];
};

static const struct seed seeds[] = {
	{ "empty", "uml", NULL, { { 0, 0, F_ZERO } } },
	{ "one-sector", "uml", NULL, { { 5, 1, F_PATTERN } } },
	/* written but unchanged sectors: the COW holds them, the delta not */
	{ "rewritten-zeros", "uml", NULL,
	  { { 0, 8, F_ZERO }, { 8, 2, F_PATTERN }, { 10, 6, F_ZERO } } },
	{ "extents", "uml", NULL,
	  { { 0, 1, F_PATTERN }, { 3, 4, F_PATTERN }, { 17, 9, F_RANDOM },
	    { 64, 1, F_PATTERN }, { 127, 1, F_PATTERN } } },
	{ "random-multichunk", "uml", NULL,
	  { { 10, 30, F_RANDOM }, { 50, 20, F_RANDOM } } },
	{ "whole-image", "uml", NULL, { { 0, SECTORS, F_PATTERN } } },
	{ "qemu-extra", "qemu",
	  "{\"resume\":{\"machine\":\"microvm\",\"qemu\":\"7.2\"},"
	  "\"zz\":[1,-2,0.5,true,null,\"\\u00e9\"]}",
	  { { 1, 3, F_RANDOM } } },
};

static void
make_cow(const char *cow_path, const char *base_path, const struct seed *sd)
{
	struct cow_header h;
	struct err e;
	uint8_t bitmap[SECTORS / 8] = { 0 }, sector[COW_SECTOR];
	int fd;

	if (cow_header_for_base(base_path, &h, &e) < 0)
		die("cow header", &e);
	if ((fd = open(cow_path, O_RDWR | O_CREAT | O_TRUNC, 0644)) < 0)
		die(cow_path, NULL);
	if (cow_write_header(fd, &h, &e) < 0)
		die("cow write", &e);
	for (int r = 0; r < 8 && sd->runs[r].count > 0; r++) {
		const struct run *ru = &sd->runs[r];

		for (uint32_t s = ru->first; s < ru->first + ru->count; s++) {
			for (size_t i = 0; i < COW_SECTOR; i++)
				sector[i] = ru->fill == F_ZERO ? 0 :
					    ru->fill == F_RANDOM ? rnd() :
					    (uint8_t)("fed!"[i % 4] + s);
			if (pwrite(fd, sector, COW_SECTOR,
				   (off_t)(h.data_offset + (uint64_t)s *
					   COW_SECTOR)) != COW_SECTOR)
				die("cow data", NULL);
			bitmap[s / 8] |= (uint8_t)(1u << (s % 8));
		}
	}
	if (pwrite(fd, bitmap, h.bitmap_len, (off_t)h.bitmap_offset) !=
	    (ssize_t)h.bitmap_len)
		die("cow bitmap", NULL);
	close(fd);
}

static void
gen(const char *outdir, const char *tmpdir, const char *base_path,
    const struct seed *sd)
{
	struct manifest m;
	struct delta_stats st;
	struct err e;
	json_error_t jerr;
	char cow_path[4096], snap_path[4096], *bytes, *buf;
	uint8_t base_hash[SHA256_LEN];
	size_t len;
	int cfd, bfd, pfd, sfd;
	struct stat sst;

	snprintf(cow_path, sizeof(cow_path), "%s/%s.cow", tmpdir, sd->name);
	snprintf(snap_path, sizeof(snap_path), "%s/%s.fedsnap", tmpdir,
		 sd->name);
	make_cow(cow_path, base_path, sd);

	memset(&m, 0, sizeof(m));
	if ((cfd = open(cow_path, O_RDONLY)) < 0 ||
	    (bfd = open(base_path, O_RDONLY)) < 0 ||
	    (pfd = memfd_create("payload", 0)) < 0)
		die("open", NULL);
	if (delta_pack(cfd, bfd, pfd, CHUNK, &m.delta, &st, &e) < 0)
		die("delta_pack", &e);
	if (lseek(bfd, 0, SEEK_SET) < 0 || sha256_fd(bfd, base_hash, &e) < 0)
		die("hash base", &e);
	close(cfd);
	close(bfd);

	snprintf(m.name, sizeof(m.name), "fuzz-%s", sd->name);
	if (ed25519_public(fuzz_test_seed, m.owner, &e) < 0)
		die("key", &e);
	snprintf(m.created, sizeof(m.created), "2026-01-02T03:04:05Z");
	m.version = 1 + (int64_t)(sd - seeds);
	snprintf(m.host, sizeof(m.host), "%s.example.org", sd->name);
	m.port = 80;
	m.guest_port = 8080;
	memcpy(m.base, base_hash, SHA256_LEN);
	sha256("fuzz kernel", 11, m.kernel);
	snprintf(m.machine, sizeof(m.machine), "%s", sd->machine);
	snprintf(m.format, sizeof(m.format), "%s", DELTA_FORMAT_FEDCOW1);
	if (sd->extra != NULL &&
	    (m.extra = json_loads(sd->extra, 0, &jerr)) == NULL)
		die(jerr.text, NULL);

	if ((bytes = manifest_serialize(&m, &len, &e)) == NULL)
		die("serialise", &e);
	write_file(outdir, "fuzz_manifest", sd->name, bytes, len);
	free(bytes);

	/* the payload alone */
	if ((buf = malloc(m.delta.size)) == NULL ||
	    pread(pfd, buf, m.delta.size, 0) != (ssize_t)m.delta.size)
		die("read payload", NULL);
	write_file(outdir, "fuzz_delta", sd->name, buf, m.delta.size);
	free(buf);

	if (fedsnap_write(snap_path, &m, fuzz_test_seed, pfd, NULL, &e) < 0)
		die("fedsnap_write", &e);
	if ((sfd = open(snap_path, O_RDONLY)) < 0 || fstat(sfd, &sst) < 0 ||
	    (buf = malloc((size_t)sst.st_size)) == NULL ||
	    pread(sfd, buf, (size_t)sst.st_size, 0) != sst.st_size)
		die(snap_path, NULL);
	write_file(outdir, "fuzz_fedsnap", sd->name, buf, (size_t)sst.st_size);
	printf("%-18s payload %6llu bytes, %2u chunks, %3u extents, "
	       ".fedsnap %6lld bytes\n", sd->name,
	       (unsigned long long)m.delta.size, m.delta.nchunks, st.extents,
	       (long long)sst.st_size);
	free(buf);
	close(sfd);
	close(pfd);
	unlink(snap_path);
	unlink(cow_path);
	manifest_free(&m);
}

/*
 * fuzz_delta/edge-stream-ends-at-chunk: a zlib stream built by hand from
 * stored blocks (7 changed sectors, then empty blocks as padding) to be
 * exactly one chunk long, followed by one more byte: a second chunk after
 * the end of the stream, which random mutation does not find.
 */
static void
gen_chunk_edge(const char *outdir)
{
	static uint8_t plain[24 + 16 + 7 * COW_SECTOR + 16], z[CHUNK + 1];
	size_t plen = sizeof(plain), at = 0;
	uLong adler;

	memcpy(plain, "FEDCOW1", 8);
	plain[8 + 5] = 1;			/* image size 64 KiB, big-endian */
	plain[16 + 2] = 2;			/* sector size 512 */
	plain[24 + 7] = 8;			/* extent: first 8, 7 sectors */
	plain[24 + 15] = 7;
	memset(plain + 40, 0x5a, 7 * COW_SECTOR);
	plain[plen - 9] = 1;			/* end: 1 extent */
	z[at++] = 0x78;
	z[at++] = 0x01;
	/* data block, then empty blocks until the last (final) one ends the
	 * stream, Adler-32 included, exactly at CHUNK bytes */
	z[at++] = 0;
	z[at++] = (uint8_t)plen;
	z[at++] = (uint8_t)(plen >> 8);
	z[at++] = (uint8_t)~plen;
	z[at++] = (uint8_t)(~plen >> 8);
	memcpy(z + at, plain, plen);
	at += plen;
	if ((CHUNK - at - 4) % 5 != 0)
		die("chunk edge: padding does not fit", NULL);
	while (at + 5 + 4 <= CHUNK) {
		z[at] = at + 5 + 4 == CHUNK;	/* BFINAL on the last */
		at++;
		z[at++] = 0;
		z[at++] = 0;
		z[at++] = 0xff;
		z[at++] = 0xff;
	}
	adler = adler32(adler32(0, NULL, 0), plain, (uInt)plen);
	z[at++] = (uint8_t)(adler >> 24);
	z[at++] = (uint8_t)(adler >> 16);
	z[at++] = (uint8_t)(adler >> 8);
	z[at++] = (uint8_t)adler;
	z[at++] = 0;				/* the byte in chunk 1 */
	write_file(outdir, "fuzz_delta", "edge-stream-ends-at-chunk", z, at);
}

int
main(int argc, char **argv)
{
	char tmpdir[] = "/tmp/fed-gen-seeds.XXXXXX", base_path[64];
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: gen_seeds OUTDIR\n");
		return 2;
	}
	if (mkdtemp(tmpdir) == NULL)
		die("mkdtemp", NULL);
	snprintf(base_path, sizeof(base_path), "%s/base.img", tmpdir);
	if ((fd = open(base_path, O_WRONLY | O_CREAT | O_EXCL, 0644)) < 0 ||
	    ftruncate(fd, BASE_LEN) < 0 || close(fd) < 0)
		die(base_path, NULL);
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
		gen(argv[1], tmpdir, base_path, &seeds[i]);
	gen_chunk_edge(argv[1]);
	unlink(base_path);
	rmdir(tmpdir);
	return 0;
}
