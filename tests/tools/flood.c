/*
 * flood.c - test tool: hold a flood of idle connections to a server, as
 * a hostile set of peers does.
 *
 *   flood PREFIX HOST PORT
 *
 * Opens 64 TCP connections from each of the 16 addresses PREFIX1 ..
 * PREFIX16 (e.g. PREFIX "127.0.1." on lo, where every 127/8 address is
 * local) to HOST:PORT, sends nothing, prints "ready" once all are tried
 * (a connect the server refuses is not an error: refusing is its right),
 * and holds them until killed.  Exit status 2 on a usage error.  The
 * object server's flood test and bench/fedfs_net.sh use it.  Not
 * installed; built by `make check`.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define FLOOD_ADDRS	16
#define FLOOD_PER_ADDR	64

/* One connection from src to dst, left open; -1 if no socket. */
static int
flood_one(const struct sockaddr_in *src, const struct sockaddr_in *dst)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (const struct sockaddr *)src, sizeof(*src)) < 0) {
		perror("flood: bind");
		close(fd);
		return -1;
	}
	(void)connect(fd, (const struct sockaddr *)dst, sizeof(*dst));
	return fd;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in dst = { .sin_family = AF_INET };
	char addr[INET_ADDRSTRLEN + 4];
	struct rlimit nofile;
	int port = argc == 4 ? atoi(argv[3]) : 0;

	if (argc != 4 || port <= 0 || port > 65535 ||
	    inet_pton(AF_INET, argv[2], &dst.sin_addr) != 1) {
		fprintf(stderr, "usage: flood PREFIX HOST PORT (an IPv4 HOST)\n");
		return 2;
	}
	dst.sin_port = htons((uint16_t)port);
	/* 1,024 sockets and stdio: more than a soft limit of 1,024 */
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	for (int a = 1; a <= FLOOD_ADDRS; a++) {
		struct sockaddr_in src = { .sin_family = AF_INET };

		snprintf(addr, sizeof(addr), "%s%d", argv[1], a);
		if (inet_pton(AF_INET, addr, &src.sin_addr) != 1) {
			fprintf(stderr, "flood: %s is not an IPv4 address\n", addr);
			return 2;
		}
		for (int k = 0; k < FLOOD_PER_ADDR; k++)
			flood_one(&src, &dst);
	}
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
