/*
 * mkcow.c - test tool: a UML copy-on-write file over a base image, with
 * sector 0 written (random bytes), as a guest that wrote one sector
 * leaves it.
 *
 *   mkcow BASE COW
 *
 * BASE must be an absolute path (UML's COW names its backing file).  It
 * lets an end-to-end test pack a small delta snapshot (fed snapshot pack)
 * without booting a machine, when what it tests is not the guest (the
 * lookup answers peers mirror, say).  Exit status 0, or 1 saying why.  Not
 * installed; built by `make check`.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/cow.h"

int
main(int argc, char **argv)
{
	struct cow_header h;
	uint8_t sector[512], bit = 1;
	struct err e;
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: mkcow BASE COW\n");
		return 1;
	}
	if (cow_header_for_base(argv[1], &h, &e) < 0) {
		fprintf(stderr, "mkcow: %s\n", e.msg);
		return 1;
	}
	if ((fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644)) < 0) {
		perror(argv[2]);
		return 1;
	}
	if (cow_write_header(fd, &h, &e) < 0) {
		fprintf(stderr, "mkcow: %s\n", e.msg);
		close(fd);
		return 1;
	}
	if (getrandom(sector, sizeof(sector), 0) != (ssize_t)sizeof(sector) ||
	    pwrite(fd, sector, sizeof(sector), (off_t)h.data_offset) !=
	    (ssize_t)sizeof(sector) ||
	    pwrite(fd, &bit, 1, (off_t)h.bitmap_offset) != 1 || close(fd) != 0) {
		perror("mkcow: write");
		return 1;
	}
	return 0;
}
