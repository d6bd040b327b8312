/*
 * test_store_verify.c - what the store holds is checked before it is used:
 * a chunk file corrupted, cut short or removed behind the store's back is
 * never handed out, but dropped and counted; a verified chunk still in the
 * page cache is not hashed again; the scrubber and fsck's scrub_all find
 * bad chunks nobody reads; a full disk evicts unpinned chunks and tries
 * again, and fails as a local error only when everything is pinned; pinned
 * bytes that cannot fit are refused up front.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fedfs/scrub.h"
#include "fedfs/store.h"
#include "lib/testutil.h"

#define CHUNK 65536

static char *dir;
static bool mounted;

static void setup(void) { dir = tu_tmpdir(); mounted = false; }
static void
teardown(void)
{
	if (mounted)
		umount2(dir, MNT_DETACH);
	tu_rmtree(dir);
	free(dir);
}
TestSuite(store_verify, .init = setup, .fini = teardown);

static void
chunk(uint8_t *buf, uint8_t hash[32], uint32_t seed)
{
	tu_fill(buf, CHUNK, seed);
	sha256(buf, CHUNK, hash);
}

/* A store in dir holding one chunk made from seed; its bytes in buf. */
static struct store *
store_with_one(uint8_t *buf, uint8_t h[32], uint32_t seed)
{
	struct store *s;
	struct err e;

	cr_assert_eq(store_open(dir, 0, &s, &e), 0, "%s", e.msg);
	chunk(buf, h, seed);
	cr_assert_eq(store_put(s, h, buf, CHUNK, STORE_COPIED_IN, &e), 0,
		     "%s", e.msg);
	return s;
}

/* Overwrite 64 bytes in the middle of a chunk's file, in place. */
static void
spoil(struct store *s, const uint8_t h[32], bool keep_mtime)
{
	char path[512];
	uint8_t junk[64];
	struct stat st;
	int fd;

	store_chunk_path(s, h, path, sizeof(path));
	cr_assert_eq(stat(path, &st), 0);
	memset(junk, 0xa5, sizeof(junk));
	cr_assert((fd = open(path, O_WRONLY)) >= 0);
	cr_assert_eq(pwrite(fd, junk, sizeof(junk), CHUNK / 2), 64);
	cr_assert_eq(fsync(fd), 0);
	if (keep_mtime) {
		struct timespec t[2] = { st.st_atim, st.st_mtim };

		cr_assert_eq(futimens(fd, t), 0);
		/* out of the page cache: read back from disk next time */
		cr_assert_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	}
	close(fd);
}

static void
expect_dropped(struct store *s, const uint8_t h[32])
{
	struct store_stats st;
	char path[512];

	errno = 0;
	cr_assert_eq(store_open_chunk(s, h, NULL), -1,
		     "a bad chunk was handed out");
	cr_assert_eq(errno, ENOENT);
	cr_assert(!store_has(s, h), "a bad chunk is still held");
	store_chunk_path(s, h, path, sizeof(path));
	cr_assert_eq(access(path, F_OK), -1, "its file is still there");
	store_get_stats(s, &st);
	cr_assert_eq(st.bad_chunks, 1);
	cr_assert_eq(st.chunks, 0);
	cr_assert_eq(st.bytes, 0);
}

Test(store_verify, a_corrupted_chunk_is_dropped_not_handed_out)
{
	uint8_t buf[CHUNK], got[CHUNK], h[32];
	struct store *s = store_with_one(buf, h, 1);
	struct err e;
	int fd;

	spoil(s, h, false);
	expect_dropped(s, h);
	/* and fetched again, it is good */
	cr_assert_eq(store_put(s, h, buf, CHUNK, STORE_FETCHED, &e), 0);
	cr_assert((fd = store_open_chunk(s, h, NULL)) >= 0);
	cr_assert_eq(pread(fd, got, CHUNK, 0), CHUNK);
	cr_assert_arr_eq(got, buf, CHUNK);
	close(fd);
	store_close(s);
}

Test(store_verify, corruption_with_its_mtime_put_back_is_caught_once_out_of_cache)
{
	uint8_t buf[CHUNK], h[32];
	struct store *s = store_with_one(buf, h, 2);
	int fd;

	/* verified once, at put; opened now it is trusted from the cache */
	cr_assert((fd = store_open_chunk(s, h, NULL)) >= 0);
	close(fd);
	spoil(s, h, true);
	expect_dropped(s, h);
	store_close(s);
}

Test(store_verify, a_truncated_or_removed_chunk_is_dropped)
{
	uint8_t buf[CHUNK], h[32], h2[32];
	struct store *s = store_with_one(buf, h, 3);
	struct store_stats st;
	char path[512];
	struct err e;

	store_chunk_path(s, h, path, sizeof(path));
	cr_assert_eq(truncate(path, CHUNK / 2), 0);
	expect_dropped(s, h);
	chunk(buf, h2, 4);
	cr_assert_eq(store_put(s, h2, buf, CHUNK, STORE_COPIED_IN, &e), 0);
	store_chunk_path(s, h2, path, sizeof(path));
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(store_open_chunk(s, h2, NULL), -1);
	cr_assert(!store_has(s, h2));
	store_get_stats(s, &st);
	cr_assert_eq(st.bad_chunks, 2);
	store_close(s);
}

Test(store_verify, a_verified_chunk_in_the_page_cache_is_not_hashed_again)
{
	uint8_t buf[CHUNK], h[32];
	struct store *s = store_with_one(buf, h, 5);
	struct store_stats a, b;
	int fd;

	for (int i = 0; i < 2; i++) {	/* warm it into the cache */
		cr_assert((fd = store_open_chunk(s, h, NULL)) >= 0);
		close(fd);
	}
	store_get_stats(s, &a);
	for (int i = 0; i < 10; i++) {
		cr_assert((fd = store_open_chunk(s, h, NULL)) >= 0);
		close(fd);
	}
	store_get_stats(s, &b);
	cr_assert_eq(b.verified_bytes, a.verified_bytes,
		     "hashed %llu bytes again",
		     (unsigned long long)(b.verified_bytes - a.verified_bytes));
	store_close(s);
}

Test(store_verify, after_a_restart_every_chunk_is_hashed_at_first_open)
{
	uint8_t buf[CHUNK], h[32];
	struct store *s = store_with_one(buf, h, 6);
	struct store_stats st;
	struct err e;
	int fd;

	store_close(s);
	cr_assert_eq(store_open(dir, 0, &s, &e), 0);
	cr_assert((fd = store_open_chunk(s, h, NULL)) >= 0);
	close(fd);
	store_get_stats(s, &st);
	cr_assert_eq(st.verified_bytes, CHUNK);
	store_close(s);
}

Test(store_verify, scrub_all_finds_and_drops_bad_chunks_after_a_restart)
{
	uint8_t buf[CHUNK], h[32], h2[32];
	struct store *s = store_with_one(buf, h, 7);
	struct scrub_report r;
	struct err e;

	chunk(buf, h2, 8);
	cr_assert_eq(store_put(s, h2, buf, CHUNK, STORE_COPIED_IN, &e), 0);
	spoil(s, h, false);
	store_close(s);
	cr_assert_eq(store_open(dir, 0, &s, &e), 0);
	scrub_all(s, &r);
	cr_assert_eq(r.chunks, 2);
	cr_assert_eq(r.good, 1);
	cr_assert_eq(r.bad, 1);
	cr_assert_eq(json_array_size(r.bad_list), 1);
	cr_assert(strstr(json_string_value(json_object_get(
		json_array_get(r.bad_list, 0), "why")), "got ") != NULL);
	cr_assert(!store_has(s, h));
	cr_assert(store_has(s, h2));
	json_decref(r.bad_list);
	store_close(s);
}

static struct store *scrubbed;
static uint8_t scrubbed_hash[32];
static bool
counted_bad(void *arg)
{
	json_t *j = scrub_status(arg);
	bool bad = json_integer_value(json_object_get(j, "bad")) == 1;

	json_decref(j);
	return bad;
}

Test(store_verify, the_scrubber_drops_a_bad_chunk_nobody_reads)
{
	uint8_t buf[CHUNK];
	struct scrubber *sc;
	struct err e;
	json_t *j;

	scrubbed = store_with_one(buf, scrubbed_hash, 9);
	spoil(scrubbed, scrubbed_hash, false);
	cr_assert_eq(scrub_start(scrubbed, 1 << 20, &sc, &e), 0);
	cr_assert(tu_poll(5000, counted_bad, sc), "not scrubbed in 5 s");
	cr_assert(!store_has(scrubbed, scrubbed_hash));
	j = scrub_status(sc);
	cr_assert_eq(json_integer_value(json_object_get(j, "chunks")), 1);
	json_decref(j);
	scrub_stop(sc);
	store_close(scrubbed);
}

/* dir becomes a tmpfs of kib KiB (root only). */
static void
small_disk(unsigned kib)
{
	char opt[64];

	if (geteuid() != 0)
		cr_skip_test("needs root to mount a tmpfs");
	snprintf(opt, sizeof(opt), "size=%uk", kib);
	cr_assert_eq(mount("tmpfs", dir, "tmpfs", 0, opt), 0, "%s",
		     strerror(errno));
	mounted = true;
}

Test(store_verify, a_full_disk_evicts_and_every_put_succeeds)
{
	uint8_t buf[CHUNK], got[CHUNK], h[32];
	struct store_stats st;
	struct store *s;
	struct err e;
	int fd;

	small_disk(8192);
	cr_assert_eq(store_open(dir, 0, &s, &e), 0, "%s", e.msg);
	store_enforce_quota(s);
	for (uint32_t i = 0; i < 200; i++) {	/* 12.5 MiB into 8 */
		chunk(buf, h, 100 + i);
		cr_assert_eq(store_put(s, h, buf, CHUNK, i % 2 ? STORE_FETCHED :
			     STORE_COPIED_IN, &e), 0, "put %u: %s", i, e.msg);
		cr_assert((fd = store_open_chunk(s, h, NULL)) >= 0, "open %u", i);
		cr_assert_eq(pread(fd, got, CHUNK, 0), CHUNK);
		cr_assert_arr_eq(got, buf, CHUNK);
		close(fd);
	}
	store_get_stats(s, &st);
	cr_assert_gt(st.disk_full, 0);
	cr_assert_gt(st.evictions, 0);
	cr_assert_eq(st.write_errors, 0);
	store_close(s);
}

Test(store_verify, a_disk_full_of_pinned_chunks_is_a_local_error)
{
	uint8_t buf[CHUNK], h[32];
	struct store *s;
	struct err e;
	int rc = 0;

	small_disk(1024);
	cr_assert_eq(store_open(dir, 0, &s, &e), 0, "%s", e.msg);
	for (uint32_t i = 0; i < 64 && rc == 0; i++) {
		chunk(buf, h, 300 + i);
		store_pin(s, h);
		rc = store_put(s, h, buf, CHUNK, STORE_COPIED_IN, &e);
	}
	cr_assert_eq(rc, STORE_LOCAL_ERROR);
	cr_assert(strstr(e.msg, "No space") != NULL, "%s", e.msg);
	store_close(s);
}

Test(store_verify, pinned_bytes_that_cannot_fit_are_refused)
{
	struct store *s;
	struct err e;

	small_disk(16384);
	cr_assert_eq(store_open(dir, 0, &s, &e), 0, "%s", e.msg);
	cr_assert_eq(store_room_for_pinned(s, 8 << 20, &e), 0, "%s", e.msg);
	cr_assert_eq(store_room_for_pinned(s, 64 << 20, &e), -1);
	cr_assert(strstr(e.msg, "cannot hold it") != NULL, "%s", e.msg);
	cr_assert_lt(store_capacity(s), 17 << 20);
	store_close(s);
}
