/*
 * test_delta_qemu.c - the "fedqemu2+zlib" payload: a raw disk image packed
 * against its base with the device state and the memory in the same
 * stream, unpacked back byte for byte (the memory sparse); a tampered
 * chunk, a machine of the wrong length and a plain fedcow1 payload where
 * a machine is expected are refused.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/delta.h"
#include "lib/testutil.h"

#define IMG (1u << 20)		/* 1 MiB image */
#define STATE (300u * 1000)	/* not a multiple of anything */
#define RAM (2u << 20)		/* 2 MiB of memory, mostly zeros */

struct fixture {
	char *dir, *base, *raw, *state, *ram, *payload, *out_raw, *out_state,
	     *out_ram;
	uint8_t *base_bytes, *raw_bytes, *state_bytes, *ram_bytes;
	struct chunk_index ix;
	struct delta_stats st;
};

static void
fixture_make(struct fixture *f, bool with_state)
{
	int raw_fd, base_fd, state_fd = -1, ram_fd = -1, out_fd;
	struct err e;

	memset(f, 0, sizeof(*f));
	f->dir = tu_tmpdir();
	f->base = tu_path(f->dir, "base.img");
	f->raw = tu_path(f->dir, "disk.raw");
	f->state = tu_path(f->dir, "state.bin");
	f->ram = tu_path(f->dir, "ram.img");
	f->out_ram = tu_path(f->dir, "out.ram");
	f->payload = tu_path(f->dir, "payload");
	f->out_raw = tu_path(f->dir, "out.raw");
	f->out_state = tu_path(f->dir, "out.state");
	f->base_bytes = calloc(1, IMG);
	f->raw_bytes = malloc(IMG);
	f->state_bytes = malloc(STATE);
	f->ram_bytes = calloc(1, RAM);
	tu_fill(f->base_bytes + 8192, 64 * 1024, 1);	/* some data, some zeros */
	memcpy(f->raw_bytes, f->base_bytes, IMG);
	memset(f->raw_bytes + 4096 * 5 + 100, 0x5a, 10);	/* inside a block */
	tu_fill(f->raw_bytes + 4096 * 100, 3 * 4096, 2);	/* three blocks */
	f->raw_bytes[IMG - 1] ^= 0xff;				/* the last byte */
	tu_fill(f->state_bytes, STATE, 3);
	memset(f->state_bytes, 0, STATE / 2);	/* compressible */
	tu_fill(f->ram_bytes + 4096 * 3, 4096, 4);	/* a page */
	tu_fill(f->ram_bytes + 4096 * 10 + 7, 100, 5);	/* part of one */
	f->ram_bytes[RAM - 1] = 0x42;			/* the last byte */
	tu_write_file(f->base, f->base_bytes, IMG);
	tu_write_file(f->raw, f->raw_bytes, IMG);
	tu_write_file(f->state, f->state_bytes, STATE);
	tu_write_file(f->ram, f->ram_bytes, RAM);

	raw_fd = open(f->raw, O_RDONLY);
	base_fd = open(f->base, O_RDONLY);
	if (with_state) {
		state_fd = open(f->state, O_RDONLY);
		ram_fd = open(f->ram, O_RDONLY);
	}
	out_fd = open(f->payload, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(raw_fd >= 0 && base_fd >= 0 && out_fd >= 0);
	cr_assert_eq(delta_pack_raw(raw_fd, base_fd, state_fd, ram_fd, out_fd,
				    4096, &f->ix, &f->st, &e), 0, "%s", e.msg);
	close(raw_fd);
	close(base_fd);
	close(out_fd);
	if (state_fd >= 0)
		close(state_fd);
	if (ram_fd >= 0)
		close(ram_fd);
}

static void
fixture_free(struct fixture *f)
{
	chunkidx_free(&f->ix);
	tu_rmtree(f->dir);
	free(f->dir);
	free(f->base);
	free(f->raw);
	free(f->state);
	free(f->ram);
	free(f->out_ram);
	free(f->payload);
	free(f->out_raw);
	free(f->out_state);
	free(f->base_bytes);
	free(f->raw_bytes);
	free(f->state_bytes);
	free(f->ram_bytes);
}

/* Unpack expecting state_size bytes of device state and ram_size of
 * memory (0 and 0: a disk only). */
static int
unpack(struct fixture *f, uint64_t state_size, uint64_t ram_size,
       struct err *e)
{
	struct delta_machine m = { f->out_state, state_size, f->out_ram,
				   ram_size };
	int fd = open(f->payload, O_RDONLY), rc;

	cr_assert(fd >= 0);
	rc = delta_unpack_raw(fd, 0, &f->ix, f->base, f->out_raw,
			      state_size + ram_size ? &m : NULL, NULL, e);
	close(fd);
	return rc;
}

Test(delta_qemu, raw_image_state_and_memory_round_trip)
{
	struct fixture f;
	struct err e;
	struct stat st;
	uint8_t *got;
	size_t len;

	fixture_make(&f, true);
	cr_assert_eq(f.st.state_bytes, STATE);
	cr_assert_eq(f.st.ram_bytes, RAM);
	cr_assert_eq(f.st.changed_bytes, 5 * 4096, "whole 4 KiB blocks kept");
	cr_assert_lt(f.ix.size, STATE, "compressed");
	cr_assert_gt(f.ix.nchunks, 1);
	cr_assert_eq(unpack(&f, STATE, RAM, &e), 0, "%s", e.msg);
	got = tu_read_file(f.out_raw, &len);
	cr_assert_eq(len, IMG);
	cr_assert_arr_eq(got, f.raw_bytes, IMG);
	free(got);
	got = tu_read_file(f.out_state, &len);
	cr_assert_eq(len, STATE);
	cr_assert_arr_eq(got, f.state_bytes, STATE);
	free(got);
	got = tu_read_file(f.out_ram, &len);
	cr_assert_eq(len, RAM);
	cr_assert_arr_eq(got, f.ram_bytes, RAM);
	free(got);
	/* zeros are holes: three pages hold data */
	cr_assert_eq(stat(f.out_ram, &st), 0);
	cr_assert_leq(st.st_blocks * 512, 3 * 4096 + 4096, "%lld bytes on disk",
		      (long long)st.st_blocks * 512);
	fixture_free(&f);
}

Test(delta_qemu, a_tampered_chunk_is_refused_by_number_and_nothing_is_left)
{
	struct fixture f;
	struct err e;
	uint8_t *p;
	size_t len;
	uint32_t victim;

	fixture_make(&f, true);
	victim = f.ix.nchunks - 1;	/* in the memory */
	p = tu_read_file(f.payload, &len);
	p[(size_t)victim * 4096] ^= 0x01;
	tu_write_file(f.payload, p, len);
	free(p);
	cr_assert_eq(unpack(&f, STATE, RAM, &e), -1);
	cr_assert(strstr(e.msg, "chunk") != NULL, "%s", e.msg);
	cr_assert(access(f.out_raw, F_OK) < 0, "no raw image left");
	cr_assert(access(f.out_state, F_OK) < 0, "no state left");
	cr_assert(access(f.out_ram, F_OK) < 0, "no memory left");
	fixture_free(&f);
}

Test(delta_qemu, the_machine_length_must_match_the_manifest)
{
	struct fixture f;
	struct err e;

	fixture_make(&f, true);
	cr_assert_eq(unpack(&f, STATE, RAM + 1, &e), -1);
	cr_assert(strstr(e.msg, "saved machine is 1 bytes short") != NULL,
		  "%s", e.msg);
	cr_assert_eq(unpack(&f, STATE, RAM - 4096, &e), -1);
	cr_assert(strstr(e.msg, "saved machine is longer than") != NULL, "%s",
		  e.msg);
	cr_assert(access(f.out_state, F_OK) < 0);
	cr_assert(access(f.out_ram, F_OK) < 0);
	fixture_free(&f);
}

Test(delta_qemu, no_machine_where_one_is_expected_and_the_reverse)
{
	struct fixture f;
	struct err e;

	fixture_make(&f, false);
	cr_assert_eq(f.st.state_bytes, 0);
	cr_assert_eq(f.st.ram_bytes, 0);
	cr_assert_eq(unpack(&f, 0, 0, &e), 0, "%s", e.msg);	/* disk only */
	cr_assert_eq(unpack(&f, STATE, RAM, &e), -1);
	cr_assert(strstr(e.msg, "short") != NULL, "%s", e.msg);
	fixture_free(&f);

	fixture_make(&f, true);
	cr_assert_eq(unpack(&f, 0, 0, &e), -1, "a machine where none is "
		     "expected");
	cr_assert(strstr(e.msg, "data after the end record") != NULL, "%s",
		  e.msg);
	fixture_free(&f);
}
