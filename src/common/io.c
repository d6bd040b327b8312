/*
 * io.c - whole reads and writes (io.h).
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/io.h"

ssize_t
pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;		/* end of file */
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Write all of buf: at *off with pwrite(2), or with write(2) if off is
 * NULL (pipes and sockets have no offsets). */
static int
io_write_all(int fd, const void *buf, size_t len, const uint64_t *off)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = off != NULL ? pwrite(fd, (const char *)buf + done,
					 len - done, (off_t)(*off + done))
				: write(fd, (const char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

int
write_full(int fd, const void *buf, size_t len)
{
	return io_write_all(fd, buf, len, NULL);
}

int
pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	return io_write_all(fd, buf, len, &off);
}

void
io_reset_on_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}
