/*
 * io.h - whole reads and writes: the loops around pread(2), write(2) and
 * pwrite(2) that retry EINTR and short transfers, written once.
 */
#ifndef FED_IO_H
#define FED_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Read len bytes of fd at off: fewer only at end of file.  Returns the
 * bytes read, or -1 (errno set). */
ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off);

/* Write all len bytes of buf to fd.  Returns 0, or -1 (errno set). */
int write_full(int fd, const void *buf, size_t len);

/* Write all len bytes of buf to fd at off.  Returns 0, or -1. */
int pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* Make close(fd) send a reset instead of a FIN (SO_LINGER 0): for a
 * relayed stream that was cut, so the far end does not take it for whole.
 * Ignores fd < 0. */
void io_reset_on_close(int fd);

#endif
