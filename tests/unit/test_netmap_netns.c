/*
 * test_netmap_netns.c - a relay mapping whose target is in another network
 * namespace (how the vmrunner reaches a QEMU machine, docs/vmrunner.md):
 * a child process makes its own namespace, brings its lo up and serves on
 * 127.0.0.1 there; the relay, in the test's namespace, connects into it.
 * The same address in the test's own namespace is not what answers.
 * Needs root (CAP_SYS_ADMIN for the namespace); skipped otherwise.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "netmap/netmap.h"

/* In a new namespace: lo up, listen on 127.0.0.1 (port sent on out),
 * answer each connection with "ns:" + what it sent. */
static void
child_serve(int out)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	struct ifreq ifr;
	int s, fd;

	if (unshare(CLONE_NEWNET) < 0)
		_exit(1);
	s = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		_exit(2);
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		_exit(3);
	close(s);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		_exit(4);
	if (write(out, &sa.sin_port, sizeof(sa.sin_port)) < 0)
		_exit(5);
	for (;;) {
		char buf[256] = "ns:";
		int c = accept(fd, NULL, NULL);
		ssize_t n;

		if (c < 0)
			continue;
		n = read(c, buf + 3, sizeof(buf) - 4);
		if (n > 0 && write(c, buf, (size_t)n + 3) < 0)
			_exit(6);
		close(c);
	}
}

static int
listen_any(uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(fd >= 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 8), 0);
	getsockname(fd, (struct sockaddr *)&sa, &len);
	*port = ntohs(sa.sin_port);
	return fd;
}

static int
ask(uint16_t port, const char *msg, char *out, size_t outsz)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	size_t got = 0;
	ssize_t n;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    write(fd, msg, strlen(msg)) < 0) {
		close(fd);
		return -1;
	}
	shutdown(fd, SHUT_WR);
	while (got + 1 < outsz && (n = read(fd, out + got, outsz - got - 1)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(fd);
	return 0;
}

Test(netns, relay_connects_into_another_namespace, .timeout = 30)
{
	struct sockaddr_in target = { .sin_family = AF_INET };
	struct relay *r;
	struct err e;
	char path[64], reply[256];
	uint16_t ns_port, host_port;
	int pfd[2], nsfd, lfd, status;
	pid_t pid;

	if (geteuid() != 0)
		cr_skip_test("needs root for a network namespace");
	signal(SIGPIPE, SIG_IGN);
	cr_assert_eq(pipe(pfd), 0);
	if ((pid = fork()) == 0) {
		close(pfd[0]);
		child_serve(pfd[1]);
	}
	close(pfd[1]);
	cr_assert_eq(read(pfd[0], &ns_port, sizeof(ns_port)),
		     (ssize_t)sizeof(ns_port), "the child could not serve");
	close(pfd[0]);
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert(nsfd >= 0);

	/* a socket made with netns_socket is in the child's namespace */
	{
		int s = netns_socket(nsfd, AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_port = ns_port };

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		cr_assert(s >= 0);
		cr_assert_eq(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
		close(s);
	}

	cr_assert_eq(relay_new(NULL, &r, &e), 0, "%s", e.msg);
	lfd = listen_any(&host_port);
	target.sin_port = ns_port;
	target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(relay_map_add_ns(r, "svc", lfd, (struct sockaddr *)&target,
				      sizeof(target), nsfd, &e), 0, "%s", e.msg);
	close(nsfd);	/* the relay keeps its own */
	cr_assert_eq(ask(host_port, "hello", reply, sizeof(reply)), 0);
	cr_assert_str_eq(reply, "ns:hello");
	/* switching to a target in our own namespace: nothing listens there
	 * on that port, so the client is reset, no "ns:" reply */
	cr_assert_eq(relay_map_switch_ns(r, "svc", (struct sockaddr *)&target,
					 sizeof(target), -1, &e), 0, "%s", e.msg);
	ask(host_port, "again", reply, sizeof(reply));
	cr_assert_str_neq(reply, "ns:again");
	relay_free(r);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
}
