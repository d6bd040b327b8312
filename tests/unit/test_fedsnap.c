/*
 * test_fedsnap.c - the .fedsnap container and the COW <-> delta packing,
 * on synthetic COW files written in UML's format: round trip, only
 * differing sectors kept, and each kind of damage refused with its own
 * error: truncation at several offsets, a tampered chunk, a tampered
 * manifest, a wrong signer, trailing bytes, another base.
 * (tests/e2e/fedsnap.sh does the same round trip through a real UML boot.)
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cow.h"
#include "common/delta.h"
#include "common/fedsnap.h"
#include "common/hex.h"
#include "lib/testutil.h"

#define SECTORS 2048u			/* a 1 MiB base */

static char *dir, *base, *cow, *snap;
static uint8_t seed[32], owner[32];

/* sectors the "guest" wrote; 100 is rewritten with the base's own bytes */
static int
written(uint64_t s)
{
	return s < 10 || s == 100 || (s >= 1000 && s < 1400) || s == SECTORS - 1;
}

static void
make_base_and_cow(void)
{
	uint8_t *img = malloc(SECTORS * 512), *bitmap, sector[512];
	struct cow_header h;
	struct err e;
	int fd;

	tu_fill(img, SECTORS * 512, 42);
	tu_write_file(base, img, SECTORS * 512);
	cr_assert_eq(cow_header_for_base(base, &h, &e), 0, "%s", e.msg);
	fd = open(cow, O_RDWR | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0);
	cr_assert_eq(cow_write_header(fd, &h, &e), 0, "%s", e.msg);
	bitmap = calloc(1, h.bitmap_len);
	for (uint64_t s = 0; s < SECTORS; s++) {
		if (!written(s))
			continue;
		bitmap[s / 8] |= (uint8_t)(1u << (s % 8));
		if (s == 100)
			memcpy(sector, img + s * 512, 512);
		else
			tu_fill(sector, 512, (uint32_t)s + 7);
		cr_assert_eq(pwrite(fd, sector, 512, (off_t)(h.data_offset +
			     s * 512)), 512);
	}
	cr_assert_eq(pwrite(fd, bitmap, h.bitmap_len, (off_t)h.bitmap_offset),
		     (ssize_t)h.bitmap_len);
	close(fd);
	free(bitmap);
	free(img);
}

/* Pack the COW over the base into snap with 4 KiB chunks. */
static void
pack(struct delta_stats *st)
{
	struct manifest m;
	struct err e;
	int cfd = open(cow, O_RDONLY), bfd = open(base, O_RDONLY);
	char *payload = tu_path(dir, "payload");
	int pfd = open(payload, O_RDWR | O_CREAT | O_TRUNC, 0600);

	memset(&m, 0, sizeof(m));
	strcpy(m.name, "web");
	memcpy(m.owner, owner, 32);
	strcpy(m.created, "2026-11-25T23:52:53Z");
	m.version = 3;
	strcpy(m.host, "www.example.org");
	m.port = 80;
	m.guest_port = 80;
	cr_assert_eq(sha256_fd(bfd, m.base, &e), 0);
	memset(m.kernel, 0x22, 32);
	strcpy(m.machine, "uml");
	strcpy(m.format, DELTA_FORMAT_FEDCOW1);
	cr_assert_eq(delta_pack(cfd, bfd, pfd, 4096, &m.delta, st, &e), 0,
		     "%s", e.msg);
	cr_assert_eq(fedsnap_write(snap, &m, seed, pfd, NULL, &e), 0, "%s",
		     e.msg);
	manifest_free(&m);
	close(pfd);
	close(cfd);
	close(bfd);
	unlink(payload);
	free(payload);
}

static void
setup(void)
{
	struct err e;

	dir = tu_tmpdir();
	base = tu_path(dir, "base.img");
	cow = tu_path(dir, "web.cow");
	snap = tu_path(dir, "web.fedsnap");
	cr_assert_eq(ed25519_keygen(seed, owner, &e), 0);
	make_base_and_cow();
}

static void
teardown(void)
{
	tu_rmtree(dir);
	free(dir);
	free(base);
	free(cow);
	free(snap);
}

TestSuite(fedsnap, .init = setup, .fini = teardown);

/* What the guest sees at sector s through COW file path over the base. */
static void
disk_sector(const char *path, uint64_t s, uint8_t out[512])
{
	struct cow_header h;
	struct err e;
	uint8_t byte;
	int fd = open(path, O_RDONLY), bfd = open(base, O_RDONLY);

	cr_assert_eq(cow_read_header(fd, &h, &e), 0, "%s", e.msg);
	cr_assert_eq(pread(fd, &byte, 1, (off_t)(h.bitmap_offset + s / 8)), 1);
	if (byte & (1u << (s % 8)))
		cr_assert_eq(pread(fd, out, 512, (off_t)(h.data_offset + s * 512)),
			     512);
	else
		cr_assert_eq(pread(bfd, out, 512, (off_t)(s * 512)), 512);
	close(fd);
	close(bfd);
}

static bool
in_cow(const char *path, uint64_t s)
{
	struct cow_header h;
	struct err e;
	uint8_t byte;
	int fd = open(path, O_RDONLY);

	cr_assert_eq(cow_read_header(fd, &h, &e), 0);
	cr_assert_eq(pread(fd, &byte, 1, (off_t)(h.bitmap_offset + s / 8)), 1);
	close(fd);
	return byte & (1u << (s % 8));
}

Test(fedsnap, round_trip_keeps_only_changed_sectors)
{
	struct delta_stats st, ust;
	struct fedsnap s;
	struct err e;
	char *out = tu_path(dir, "unpacked.cow");
	uint8_t a[512], b[512];

	pack(&st);
	cr_assert_eq(st.cow_sectors, 10 + 1 + 400 + 1);
	/* whole 4 KiB blocks: 0-15, 1000-1399, 2040-2047; the block of
	 * sector 100 reads as the base and is not kept */
	cr_assert_eq(st.changed_bytes, (16 + 400 + 8) * 512, "got %lu",
		     (unsigned long)st.changed_bytes);
	cr_assert_eq(fedsnap_open(snap, &s, &e), 0, "%s", e.msg);
	cr_assert_eq(fedsnap_verify_payload(&s, &e), 0, "%s", e.msg);
	cr_assert_gt(s.m.delta.nchunks, 10);
	cr_assert_eq(delta_unpack(s.fd, s.payload_offset, &s.m.delta, base, out,
				  &ust, &e), 0, "%s", e.msg);
	cr_assert_eq(ust.changed_bytes, st.changed_bytes);
	cr_assert_eq(ust.extents, st.extents);
	for (uint64_t i = 0; i < SECTORS; i++) {
		disk_sector(cow, i, a);
		disk_sector(out, i, b);
		cr_assert_arr_eq(a, b, 512, "sector %lu differs", (unsigned long)i);
	}
	cr_assert(in_cow(out, 5));
	cr_assert(in_cow(out, 15), "blocks are kept whole");
	cr_assert(!in_cow(out, 16));
	cr_assert(!in_cow(out, 100));
	cr_assert(!in_cow(out, 500));
	fedsnap_close(&s);
	free(out);
}

#include <zlib.h>

/* A payload written by hand whose only extent covers sectors 3-4: unpack
 * must still give UML a bitmap of whole 4 KiB blocks, the rest of the
 * block filled from the base. */
Test(fedsnap, unpack_makes_partial_blocks_whole)
{
	uint8_t raw[24 + 16 + 1024 + 16], packed[4096], data[1024], a[512],
		b[512], *img;
	uLongf plen = sizeof(packed);
	struct chunk_index ix;
	struct err e;
	char *payload = tu_path(dir, "hand.payload"), *out = tu_path(dir, "h.cow");
	size_t ilen;
	int fd;

	memset(raw, 0, sizeof(raw));
	memcpy(raw, "FEDCOW1", 8);
	raw[8 + 5] = 0x10;			/* image size 1 MiB, big-endian */
	raw[16 + 2] = 0x02;			/* sector size 512 */
	raw[24 + 7] = 3;			/* first sector 3 */
	raw[24 + 15] = 2;			/* two sectors */
	tu_fill(data, sizeof(data), 99);
	memcpy(raw + 40, data, sizeof(data));
	raw[40 + 1024 + 7] = 1;			/* end: one extent */
	cr_assert_eq(compress(packed, &plen, raw, sizeof(raw)), Z_OK);
	tu_write_file(payload, packed, plen);
	fd = open(payload, O_RDONLY);
	cr_assert_eq(chunkidx_build_fd(fd, 4096, &ix, &e), 0, "%s", e.msg);
	ix.has_file_hash = false;
	cr_assert_eq(delta_unpack(fd, 0, &ix, base, out, NULL, &e), 0, "%s",
		     e.msg);
	img = tu_read_file(base, &ilen);
	for (uint64_t s = 0; s < 8; s++) {
		cr_assert(in_cow(out, s), "sector %lu", (unsigned long)s);
		disk_sector(out, s, a);
		memcpy(b, s == 3 || s == 4 ? data + (s - 3) * 512 : img + s * 512,
		       512);
		cr_assert_arr_eq(a, b, 512, "sector %lu", (unsigned long)s);
	}
	cr_assert(!in_cow(out, 8));
	close(fd);
	chunkidx_free(&ix);
	free(img);
	free(payload);
	free(out);
}

Test(fedsnap, id_is_the_manifest_hash)
{
	struct delta_stats st;
	struct fedsnap s;
	struct err e;
	uint8_t id[32];

	pack(&st);
	cr_assert_eq(fedsnap_open(snap, &s, &e), 0, "%s", e.msg);
	sha256(s.manifest_bytes, s.manifest_len, id);
	cr_assert_arr_eq(id, s.id, 32);
	cr_assert_eq(s.payload_offset, 10 + s.manifest_len + 1 + 133);
	fedsnap_close(&s);
}

/* Copy snap truncated to len bytes and return the error of open+verify. */
static const char *
error_when_truncated(size_t len)
{
	static struct err e;
	size_t n;
	uint8_t *all = tu_read_file(snap, &n);
	char *cut = tu_path(dir, "cut.fedsnap");
	struct fedsnap s;
	int rc;

	cr_assert_lt(len, n);
	tu_write_file(cut, all, len);
	rc = fedsnap_open(cut, &s, &e);
	if (rc == 0) {
		rc = fedsnap_verify_payload(&s, &e);
		fedsnap_close(&s);
	}
	cr_assert_eq(rc, -1, "truncated at %zu accepted", len);
	free(all);
	free(cut);
	return e.msg;
}

Test(fedsnap, truncated_at_several_offsets)
{
	struct delta_stats st;
	struct fedsnap s;
	struct err e;
	uint64_t off, size;
	size_t mlen;
	const char *msg;

	pack(&st);
	cr_assert_eq(fedsnap_open(snap, &s, &e), 0);
	off = s.payload_offset;
	size = s.m.delta.size;
	mlen = s.manifest_len;
	fedsnap_close(&s);

	cr_assert_str_eq(error_when_truncated(0),
			 "not a .fedsnap file (it must start with \"FEDSNAP 1\")");
	cr_assert(strstr(error_when_truncated(5), "not a .fedsnap") != NULL);
	msg = error_when_truncated(10 + mlen / 2);
	cr_assert(strstr(msg, "manifest line has no end") != NULL, "%s", msg);
	msg = error_when_truncated(10 + mlen + 1 + 50);
	cr_assert(strstr(msg, "signature line is incomplete") != NULL, "%s", msg);
	msg = error_when_truncated((size_t)off);
	cr_assert(strstr(msg, "payload ends in chunk 0 ") != NULL, "%s", msg);
	msg = error_when_truncated((size_t)(off + 4096 * 3 + 10));
	cr_assert(strstr(msg, "payload ends in chunk 3 ") != NULL, "%s", msg);
	msg = error_when_truncated((size_t)(off + size - 1));
	cr_assert(strstr(msg, "truncated: payload ends in chunk") != NULL, "%s",
		  msg);
}

static void
flip_byte(const char *path, uint64_t at)
{
	uint8_t b;
	int fd = open(path, O_RDWR);

	cr_assert_eq(pread(fd, &b, 1, (off_t)at), 1);
	b ^= 0x01;
	cr_assert_eq(pwrite(fd, &b, 1, (off_t)at), 1);
	close(fd);
}

Test(fedsnap, tampered_chunk_is_named_and_unpack_leaves_nothing)
{
	struct delta_stats st;
	struct fedsnap s;
	struct err e;
	char *out = tu_path(dir, "unpacked.cow");
	struct stat sb;

	pack(&st);
	cr_assert_eq(fedsnap_open(snap, &s, &e), 0);
	flip_byte(snap, s.payload_offset + 4096 * 2 + 17);
	cr_assert_eq(fedsnap_verify_payload(&s, &e), -1);
	cr_assert(strstr(e.msg, "chunk 2 ") != NULL, "%s", e.msg);
	cr_assert(strstr(e.msg, "hash mismatch") != NULL, "%s", e.msg);
	cr_assert_eq(delta_unpack(s.fd, s.payload_offset, &s.m.delta, base, out,
				  NULL, &e), -1);
	cr_assert(strstr(e.msg, "chunk 2 ") != NULL, "%s", e.msg);
	cr_assert_eq(stat(out, &sb), -1, "a partial COW file was left");
	fedsnap_close(&s);
	free(out);
}

Test(fedsnap, tampered_manifest)
{
	struct delta_stats st;
	struct fedsnap s;
	struct err e;
	size_t n;
	uint8_t *all;
	char *at;

	pack(&st);
	all = tu_read_file(snap, &n);
	at = strstr((char *)all, "\"version\":3");
	cr_assert_not_null(at);
	at[10] = '4';			/* still canonical, another version */
	tu_write_file(snap, all, n);
	cr_assert_eq(fedsnap_open(snap, &s, &e), -1);
	cr_assert(strstr(e.msg, "signature does not verify") != NULL, "%s",
		  e.msg);
	at[10] = '3';
	at = strstr((char *)all, "\"name\":\"web\"");
	at[1] = 'N';			/* a key that breaks canonical order */
	tu_write_file(snap, all, n);
	cr_assert_eq(fedsnap_open(snap, &s, &e), -1);
	cr_assert(strstr(e.msg, "manifest") != NULL, "%s", e.msg);
	free(all);
}

Test(fedsnap, wrong_signer)
{
	struct delta_stats st;
	struct fedsnap s;
	struct err e;
	uint8_t other_seed[32], other_pub[32], sig[64];
	char hex[129];
	size_t n;
	uint8_t *all;

	pack(&st);
	cr_assert_eq(fedsnap_open(snap, &s, &e), 0);
	cr_assert_eq(ed25519_keygen(other_seed, other_pub, &e), 0);
	cr_assert_eq(ed25519_sign(other_seed, s.manifest_bytes, s.manifest_len,
				  sig, &e), 0);
	hex_encode(sig, 64, hex);
	all = tu_read_file(snap, &n);
	memcpy(all + 10 + s.manifest_len + 1 + 4, hex, 128);
	fedsnap_close(&s);
	tu_write_file(snap, all, n);
	cr_assert_eq(fedsnap_open(snap, &s, &e), -1);
	cr_assert(strstr(e.msg, "signature does not verify for the manifest's "
			 "owner") != NULL, "%s", e.msg);
	free(all);
}

/* The signature in upper case is the same signature, but a second file of
 * the same snapshot: refused, as docs/formats.md says lower case. */
Test(fedsnap, signature_line_in_upper_case)
{
	struct delta_stats st;
	struct fedsnap s;
	struct err e;
	size_t n, at;
	uint8_t *all;

	pack(&st);
	cr_assert_eq(fedsnap_open(snap, &s, &e), 0);
	all = tu_read_file(snap, &n);
	at = 10 + s.manifest_len + 1 + 4;
	fedsnap_close(&s);
	for (size_t i = at; i < at + 128; i++)
		if (all[i] >= 'a' && all[i] <= 'f')
			all[i] = (uint8_t)(all[i] - 'a' + 'A');
	tu_write_file(snap, all, n);
	cr_assert_eq(fedsnap_open(snap, &s, &e), -1);
	cr_assert(strstr(e.msg, "lower-case hex") != NULL, "%s", e.msg);
	free(all);
}

Test(fedsnap, writer_refuses_a_key_that_is_not_the_owner)
{
	struct manifest m;
	struct err e;
	uint8_t other_seed[32], other_pub[32];

	memset(&m, 0, sizeof(m));
	memcpy(m.owner, owner, 32);
	cr_assert_eq(ed25519_keygen(other_seed, other_pub, &e), 0);
	cr_assert_eq(fedsnap_write(snap, &m, other_seed, -1, NULL, &e), -1);
	cr_assert(strstr(e.msg, "not the manifest's owner") != NULL, "%s", e.msg);
}

Test(fedsnap, trailing_bytes_and_garbage)
{
	struct delta_stats st;
	struct fedsnap s;
	struct err e;
	int fd;

	pack(&st);
	fd = open(snap, O_WRONLY | O_APPEND);
	cr_assert_eq(write(fd, "x", 1), 1);
	close(fd);
	cr_assert_eq(fedsnap_open(snap, &s, &e), 0);
	cr_assert_eq(fedsnap_verify_payload(&s, &e), -1);
	cr_assert(strstr(e.msg, "trailing data") != NULL, "%s", e.msg);
	fedsnap_close(&s);

	tu_write_file(snap, "FEDSNAP 1\n{}\nsig 00\n", 20);
	cr_assert_eq(fedsnap_open(snap, &s, &e), -1);
	cr_assert(strstr(e.msg, "signature line") != NULL, "%s", e.msg);
	tu_write_file(snap, "\x7f" "ELF\x02\x01\x01", 7);
	cr_assert_eq(fedsnap_open(snap, &s, &e), -1);
	cr_assert(strstr(e.msg, "not a .fedsnap") != NULL, "%s", e.msg);
}

Test(fedsnap, unpack_refuses_another_base)
{
	struct delta_stats st;
	struct fedsnap s;
	struct err e;
	char *other = tu_path(dir, "other.img"), *out = tu_path(dir, "u.cow");
	uint8_t *img = calloc(1, 4096 * 512);

	pack(&st);
	tu_write_file(other, img, 4096 * 512);
	cr_assert_eq(fedsnap_open(snap, &s, &e), 0);
	cr_assert_eq(delta_unpack(s.fd, s.payload_offset, &s.m.delta, other, out,
				  NULL, &e), -1);
	cr_assert(strstr(e.msg, "over a base of 1048576 bytes") != NULL, "%s",
		  e.msg);
	fedsnap_close(&s);
	free(img);
	free(other);
	free(out);
}

Test(fedsnap, cow_header_refuses_what_uml_would_not_write)
{
	char *path = tu_path(dir, "bad.cow");
	struct cow_header h;
	struct err e;
	uint8_t raw[4200];
	int fd;

	memset(raw, 0, sizeof(raw));
	tu_write_file(path, raw, 100);
	fd = open(path, O_RDONLY);
	cr_assert_eq(cow_read_header(fd, &h, &e), -1);
	cr_assert(strstr(e.msg, "too short") != NULL, "%s", e.msg);
	close(fd);
	tu_write_file(path, raw, sizeof(raw));
	fd = open(path, O_RDONLY);
	cr_assert_eq(cow_read_header(fd, &h, &e), -1);
	cr_assert(strstr(e.msg, "OOOM") != NULL, "%s", e.msg);
	close(fd);
	/* a valid header with a huge size */
	cr_assert_eq(cow_header_for_base(base, &h, &e), 0);
	fd = open(path, O_RDWR | O_TRUNC);
	cr_assert_eq(cow_write_header(fd, &h, &e), 0);
	raw[0] = 0xff;
	cr_assert_eq(pwrite(fd, raw, 1, 12), 1);	/* size's top byte */
	cr_assert_eq(cow_read_header(fd, &h, &e), -1);
	cr_assert(strstr(e.msg, "up to 1 TiB") != NULL, "%s", e.msg);
	close(fd);
	free(path);
}
