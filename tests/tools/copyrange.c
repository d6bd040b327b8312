/*
 * copyrange.c - test tool: copy a file with copy_file_range(2), as cp
 * does, optionally out of order or with one byte changed afterwards.
 *
 *   copyrange SRC DST [--split N] [--poke OFF]
 *
 * DST is created (it must not exist).  --split N copies [N, end) first,
 * then [0, N): the same bytes, not in order.  --poke OFF then rewrites the
 * byte at OFF of DST with its bits flipped, through write(2).  Exit status
 * 0 when the close succeeded (fedfs checks a file copied into publish/ or
 * commit/ at close), 1 when a call failed, saying which and why.  The
 * end-to-end tests use it to make sure a copy taken from fedfs itself,
 * which fedfs does not hash again, is one only when every byte came from
 * the object in order.  Not installed; built by `make check`.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
copy(int in, int out, off_t from, off_t to)
{
	off_t i = from, o = from;

	while (i < to) {
		ssize_t n = copy_file_range(in, &i, out, &o, (size_t)(to - i), 0);

		if (n < 0) {
			fprintf(stderr, "copyrange: copy_file_range at %lld: %s\n",
				(long long)i, strerror(errno));
			return -1;
		}
		if (n == 0) {
			fprintf(stderr, "copyrange: source ends at %lld\n",
				(long long)i);
			return -1;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	long long split = -1, poke = -1;
	struct stat st;
	int in, out;

	if (argc < 3) {
		fprintf(stderr, "usage: copyrange SRC DST [--split N] "
			"[--poke OFF]\n");
		return 2;
	}
	for (int i = 3; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--split") == 0)
			split = atoll(argv[i + 1]);
		else if (strcmp(argv[i], "--poke") == 0)
			poke = atoll(argv[i + 1]);
		else {
			fprintf(stderr, "copyrange: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if ((in = open(argv[1], O_RDONLY)) < 0 || fstat(in, &st) < 0) {
		fprintf(stderr, "copyrange: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	out = open(argv[2], O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (out < 0) {
		fprintf(stderr, "copyrange: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	if (split > 0 && split < st.st_size) {
		if (copy(in, out, (off_t)split, st.st_size) < 0 ||
		    copy(in, out, 0, (off_t)split) < 0)
			return 1;
	} else if (copy(in, out, 0, st.st_size) < 0) {
		return 1;
	}
	if (poke >= 0) {
		unsigned char b;

		if (pread(in, &b, 1, (off_t)poke) != 1) {
			fprintf(stderr, "copyrange: no byte at %lld\n", poke);
			return 1;
		}
		b ^= 0xff;
		if (pwrite(out, &b, 1, (off_t)poke) != 1) {
			fprintf(stderr, "copyrange: write at %lld: %s\n", poke,
				strerror(errno));
			return 1;
		}
	}
	if (close(out) < 0) {
		fprintf(stderr, "copyrange: close %s: %s\n", argv[2],
			strerror(errno));
		return 1;
	}
	close(in);
	return 0;
}
