/*
 * hostport.c - "ADDR:PORT" strings, socket addresses and listening sockets.
 *
 * The only place netmap turns text into addresses and back, and the one
 * way it opens a listener: SO_REUSEADDR (a restart can rebind a port that
 * still has connections in TIME_WAIT, never one that another socket is
 * listening on), non-blocking, close-on-exec, backlog SOMAXCONN.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "netmap/netmap.h"

int
hostport_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len,
	       struct err *e)
{
	struct addrinfo hints, *res = NULL;
	char host[256];
	const char *port, *colon, *start;
	size_t hlen;
	int rc;

	if (s[0] == '[') {		/* [v6]:port */
		const char *end = strchr(s, ']');

		if (end == NULL || end[1] != ':')
			return err_set(e, "'%s': expected [ADDRESS]:PORT", s);
		start = s + 1;
		hlen = (size_t)(end - start);
		port = end + 2;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return err_set(e, "'%s': expected ADDRESS:PORT", s);
		start = s;
		hlen = (size_t)(colon - s);
		port = colon + 1;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return err_set(e, "'%s': expected ADDRESS:PORT", s);
	memcpy(host, start, hlen);
	host[hlen] = '\0';
	if (*port == '\0' || strspn(port, "0123456789") != strlen(port) ||
	    strlen(port) > 5 || atoi(port) > 65535)
		return err_set(e, "'%s': bad port", s);

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0)
		return err_set(e, "'%s': %s", s, gai_strerror(rc));
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

char *
hostport_format(const struct sockaddr *sa, char buf[HOSTPORT_STRLEN])
{
	char a[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		snprintf(buf, HOSTPORT_STRLEN, "%s:%u", a, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
		snprintf(buf, HOSTPORT_STRLEN, "[%s]:%u", a,
			 ntohs(in6->sin6_port));
	} else {
		snprintf(buf, HOSTPORT_STRLEN, "(family %d)", sa->sa_family);
	}
	return buf;
}

uint16_t
hostport_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}

int
hostport_listen(const struct sockaddr *sa, socklen_t len, int *fd,
		struct err *e)
{
	char where[HOSTPORT_STRLEN];
	int s, one = 1, saved;

	s = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return err_sys(e, "socket");
	if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
		err_sys(e, "SO_REUSEADDR");
		goto bad;
	}
	if (bind(s, sa, len) < 0) {
		err_sys(e, "bind %s", hostport_format(sa, where));
		goto bad;
	}
	if (listen(s, SOMAXCONN) < 0) {
		err_sys(e, "listen %s", hostport_format(sa, where));
		goto bad;
	}
	*fd = s;
	return 0;
bad:
	saved = errno;
	close(s);
	errno = saved;
	return -1;
}

int
netns_socket(int netns_fd, int domain, int type, int protocol)
{
	int self, fd, saved;

	if (netns_fd < 0)
		return socket(domain, type, protocol);
	if ((self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	if (setns(netns_fd, CLONE_NEWNET) < 0) {
		saved = errno;
		close(self);
		errno = saved;
		return -1;
	}
	fd = socket(domain, type, protocol);
	saved = errno;
	if (setns(self, CLONE_NEWNET) < 0) {
		/* this thread would go on in the wrong namespace */
		log_error("netns_socket: cannot return to our namespace: %s",
			  strerror(errno));
		abort();
	}
	close(self);
	errno = saved;
	return fd;
}
