/*
 * test_io.c - common/io.c: whole reads stop only at end of file, whole
 * writes write everything, errors come back as -1 with errno.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/io.h"

#define BIG (3u << 20)

static uint8_t *
pattern(size_t len)
{
	uint8_t *p = malloc(len);

	cr_assert(p != NULL);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 131 + (i >> 12));
	return p;
}

Test(io, write_then_read_back_whole)
{
	uint8_t *want = pattern(BIG), *got = malloc(BIG);
	FILE *f = tmpfile();

	cr_assert(f != NULL && got != NULL);
	cr_assert_eq(write_full(fileno(f), want, BIG), 0);
	cr_assert_eq(pread_full(fileno(f), got, BIG, 0), (ssize_t)BIG);
	cr_assert(memcmp(want, got, BIG) == 0);
	/* at an offset, across what one read(2) would give */
	cr_assert_eq(pread_full(fileno(f), got, 1u << 20, 12345),
		     (ssize_t)(1u << 20));
	cr_assert(memcmp(want + 12345, got, 1u << 20) == 0);
	fclose(f);
	free(want);
	free(got);
}

Test(io, pwrite_places_bytes_at_offsets_in_any_order)
{
	uint8_t *want = pattern(BIG), *got = malloc(BIG);
	FILE *f = tmpfile();

	cr_assert(f != NULL && got != NULL);
	/* second half first: the file grows past a hole, then fills it */
	cr_assert_eq(pwrite_full(fileno(f), want + BIG / 2, BIG / 2, BIG / 2), 0);
	cr_assert_eq(pwrite_full(fileno(f), want, BIG / 2, 0), 0);
	cr_assert_eq(pread_full(fileno(f), got, BIG, 0), (ssize_t)BIG);
	cr_assert(memcmp(want, got, BIG) == 0);
	errno = 0;
	cr_assert_eq(pwrite_full(-1, want, 1, 0), -1);
	cr_assert_eq(errno, EBADF);
	fclose(f);
	free(want);
	free(got);
}

Test(io, read_is_short_only_at_end_of_file)
{
	uint8_t buf[100];
	FILE *f = tmpfile();

	cr_assert(f != NULL);
	cr_assert_eq(write_full(fileno(f), "0123456789", 10), 0);
	cr_assert_eq(pread_full(fileno(f), buf, sizeof(buf), 4), 6);
	cr_assert(memcmp(buf, "456789", 6) == 0);
	cr_assert_eq(pread_full(fileno(f), buf, sizeof(buf), 10), 0);
	cr_assert_eq(pread_full(fileno(f), buf, sizeof(buf), 1000), 0);
	fclose(f);
}

/* A pipe holds 64 KiB: writing more needs several write(2)s. */
static void *
drain(void *arg)
{
	int fd = *(int *)arg;
	size_t *total = malloc(sizeof(*total));
	char buf[4096];
	ssize_t n;

	*total = 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		*total += (size_t)n;
	return total;
}

Test(io, write_goes_on_after_short_writes)
{
	uint8_t *p = pattern(BIG);
	pthread_t t;
	size_t *total;
	int fds[2];

	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(pthread_create(&t, NULL, drain, &fds[0]), 0);
	cr_assert_eq(write_full(fds[1], p, BIG), 0);
	close(fds[1]);
	pthread_join(t, (void **)&total);
	cr_assert_eq(*total, BIG);
	close(fds[0]);
	free(total);
	free(p);
}

Test(io, errors_are_minus_one_with_errno)
{
	uint8_t buf[8];
	int fds[2];

	errno = 0;
	cr_assert_eq(pread_full(-1, buf, sizeof(buf), 0), -1);
	cr_assert_eq(errno, EBADF);
	cr_assert_eq(pipe(fds), 0);
	errno = 0;
	cr_assert_eq(pread_full(fds[0], buf, sizeof(buf), 0), -1);
	cr_assert_eq(errno, ESPIPE);	/* a pipe has no offsets */
	close(fds[1]);
	errno = 0;
	cr_assert_eq(write_full(fds[1], "x", 1), -1);
	cr_assert_eq(errno, EBADF);
	close(fds[0]);
}
