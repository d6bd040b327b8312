/*
 * proxy.c - an HTTP proxy that reaches federated services through their
 * peers and everything else directly, for curl -x, browsers, any program.
 *
 * One connection, one request:
 *
 *   read head (at most CLIENT_PROXY_HEAD_MAX bytes, else 431) -> parse the
 *   request line strictly (else 400) -> lookup host:port (authority, cache,
 *   or DNS) -> connect to the best peer, failing over on refusal or a
 *   CLIENT_CONNECT_TIMEOUT_MS timeout (else 502 naming the peers tried) ->
 *   CONNECT: answer 200 and tunnel bytes both ways;
 *   absolute-form (GET http://host:port/path HTTP/1.1): send the request
 *   line in origin form, the headers minus hop-by-hop ones, and
 *   "Connection: close", then relay both ways (a request body passes
 *   through untouched) until the peer closes -> record latency and bytes
 *   for the peer -> one log line.
 *
 * Design choice: a thread per connection, at most CLIENT_PROXY_CONN_MAX at
 * once (the next gets 503 at once), each with small stacks and two 16 KiB
 * buffers.  That is simple to read and bounded; an epoll loop would carry
 * more connections per byte of memory but needs every step (lookup, DNS,
 * connect, the statistics file) to be non-blocking, which libc's resolver
 * and our lookup are not.  The relay itself is non-blocking (poll on both
 * sockets, one buffer per direction), so neither side can wedge the other.
 *
 * Limits, on purpose: one request per client connection (the proxy closes
 * after the reply; clients open another); "Connection: close" towards the
 * peer; only http:// in absolute form (https goes through CONNECT, as
 * browsers do).  Stopping (client_proxy_stop, SIGTERM in `fed proxy`)
 * closes the listener and every open connection within a quarter second.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "common/io.h"
#include "common/log.h"
#include "common/manifest.h"
#include "common/reqhead.h"
#include "common/timefmt.h"

#define PROXY_BUF       16384
#define PROXY_HEAD_MS   10000	/* the whole head must arrive in this */
#define PROXY_TICK_MS   250	/* how often threads look at `stopping` */
#define PROXY_STACK     (256u << 10)

struct client_proxy {
	struct client_proxy_config cfg;
	char *authority, *cache_dir;
	struct signed_trust trust;	/* copied from cfg; off if none */
	int lfd;
	int stop_pipe[2];
	uint16_t port;
	pthread_t acceptor;
	pthread_mutex_t mu;
	pthread_cond_t idle;
	int active;			/* connections being served (mu) */
	atomic_int stopping;
};

struct proxy_conn {
	struct client_proxy *px;
	int cfd, ufd;
	char client[64];
	char *head;			/* CLIENT_PROXY_HEAD_MAX + 1 */
	size_t head_len, head_end;	/* bytes read; end of the head */
	struct reqhead req;		/* the request line, into head */
	struct client_peer used;
	long status;
	uint64_t up_bytes, down_bytes;
	double ttfb_s, xfer_s;
};

/* Write all of buf to a (non-blocking) socket, waiting up to 10 s. */
static int
proxy_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	double deadline = mono_now() + 10;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == -1 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (mono_now() > deadline)
			return -1;
		struct pollfd pf = { fd, POLLOUT, 0 };
		poll(&pf, 1, PROXY_TICK_MS);
	}
	return 0;
}

/* A complete error reply with a one-line text body; sets c->status. */
static void
proxy_reply(struct proxy_conn *c, int status, const char *reason,
	    const char *fmt, ...)
{
	char body[ERR_MSG_MAX + 128], head[256];
	va_list ap;
	int blen, hlen;

	va_start(ap, fmt);
	blen = vsnprintf(body, sizeof(body) - 1, fmt, ap);
	va_end(ap);
	if (blen < 0)
		blen = 0;
	if ((size_t)blen > sizeof(body) - 2)
		blen = (int)sizeof(body) - 2;
	body[blen++] = '\n';
	hlen = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n"
			"Content-Type: text/plain; charset=utf-8\r\n"
			"Content-Length: %d\r\nConnection: close\r\n\r\n",
			status, reason, blen);
	c->status = status;
	if (proxy_write_all(c->cfd, head, (size_t)hlen) == 0)
		proxy_write_all(c->cfd, body, (size_t)blen);
}

/* Read until the blank line ending the head.  Returns 0, or -1 after
 * replying (or when the client went away: c->status stays 0). */
static int
proxy_read_head(struct proxy_conn *c)
{
	double deadline = mono_now() + PROXY_HEAD_MS / 1000.0;
	char *end;

	for (;;) {
		struct pollfd pf = { c->cfd, POLLIN, 0 };
		ssize_t n;

		if (c->px->stopping)
			return -1;
		if (mono_now() > deadline) {
			proxy_reply(c, 408, "Request Timeout", "fed proxy: the "
				    "request head did not arrive within %d s",
				    PROXY_HEAD_MS / 1000);
			return -1;
		}
		if (poll(&pf, 1, PROXY_TICK_MS) <= 0)
			continue;
		n = recv(c->cfd, c->head + c->head_len,
			 CLIENT_PROXY_HEAD_MAX - c->head_len, 0);
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
			return -1;
		if (n < 0)
			continue;
		c->head_len += (size_t)n;
		c->head[c->head_len] = '\0';
		if ((end = strstr(c->head, "\r\n\r\n")) != NULL) {
			c->head_end = (size_t)(end - c->head) + 4;
			return 0;
		}
		if (memchr(c->head, '\0', c->head_len) != NULL) {
			proxy_reply(c, 400, "Bad Request", "fed proxy: NUL "
				    "byte in the request head");
			return -1;
		}
		if (c->head_len == CLIENT_PROXY_HEAD_MAX) {
			proxy_reply(c, 431, "Request Header Fields Too Large",
				    "fed proxy: request head larger than %d "
				    "bytes", CLIENT_PROXY_HEAD_MAX);
			return -1;
		}
	}
}

/* The request line (common/reqhead.c).  Returns 0, or -1 after replying
 * 400. */
static int
proxy_parse_request(struct proxy_conn *c)
{
	struct err e;

	if (reqhead_parse(c->head, c->head_end, &c->req, &e) == -1) {
		proxy_reply(c, 400, "Bad Request", "fed proxy: %s", e.msg);
		return -1;
	}
	return 0;
}

/* Connect to addr:port within CLIENT_CONNECT_TIMEOUT_MS; non-blocking fd
 * or -1 with why set. */
static int
proxy_connect(const struct client_peer *p, char *why, size_t wsize)
{
	struct addrinfo hints, *res = NULL, *ai;
	char portstr[8];
	int fd = -1, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof(portstr), "%u", p->port);
	if ((rc = getaddrinfo(p->addr, portstr, &hints, &res)) != 0) {
		snprintf(why, wsize, "%s", gai_strerror(rc));
		return -1;
	}
	snprintf(why, wsize, "no address");
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		struct pollfd pf;
		int err = 0;
		socklen_t elen = sizeof(err);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
			    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1) {
			snprintf(why, wsize, "socket: %s", strerror(errno));
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			pf.fd = fd;
			pf.events = POLLOUT;
			pf.revents = 0;
			rc = poll(&pf, 1, CLIENT_CONNECT_TIMEOUT_MS);
			if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR,
						  &err, &elen) == 0 && err == 0)
				break;
			if (rc == 0)
				snprintf(why, wsize, "connect timed out after "
					 "%ld ms", CLIENT_CONNECT_TIMEOUT_MS);
			else
				snprintf(why, wsize, "%s",
					 strerror(err ? err : errno));
		} else {
			snprintf(why, wsize, "%s", strerror(errno));
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* Look up and connect, failing over.  Returns 0 with c->ufd, or -1 after
 * replying (502 or 504). */
static int
proxy_upstream(struct proxy_conn *c)
{
	struct client_proxy *px = c->px;
	struct client_lookup l;
	char tried[ERR_MSG_MAX], why[160];
	size_t *order, i, tries, len = 0;
	struct err e;

	if (client_lookup_trusted(px->authority, px->cache_dir, &px->trust,
				  c->req.host, c->req.port, (int64_t)time(NULL),
				  &l, &e) == -1) {
		proxy_reply(c, 502, "Bad Gateway", "fed proxy: %s", e.msg);
		return -1;
	}
	if (l.npeers == 0) {
		proxy_reply(c, 502, "Bad Gateway", "fed proxy: %s:%u: no peer "
			    "serves it now", c->req.host, c->req.port);
		client_lookup_free(&l);
		return -1;
	}
	if ((order = calloc(l.npeers, sizeof(*order))) == NULL) {
		proxy_reply(c, 503, "Service Unavailable", "fed proxy: out "
			    "of memory");
		client_lookup_free(&l);
		return -1;
	}
	for (i = 0; i < l.npeers; i++)
		order[i] = i;
	if (px->cfg.stats != NULL && l.source != CLIENT_SRC_DNS)
		client_stats_order(px->cfg.stats, &l, order);
	tried[0] = '\0';
	tries = l.npeers < CLIENT_RETRY_MAX ? l.npeers : CLIENT_RETRY_MAX;
	for (i = 0; i < tries && !px->stopping; i++) {
		const struct client_peer *p = &l.peers[order[i]];

		if ((c->ufd = proxy_connect(p, why, sizeof(why))) != -1) {
			c->used = *p;
			break;
		}
		if (px->cfg.stats != NULL && p->peer[0] != '\0')
			client_stats_record(px->cfg.stats, p, false, 0, 0, 0);
		len += (size_t)snprintf(tried + len, sizeof(tried) - len,
					"%s%.8s%s%s:%u: %s", len ? "; " : "",
					p->peer, p->peer[0] ? " " : "",
					p->addr, p->port, why);
		if (len >= sizeof(tried))
			len = sizeof(tried) - 1;
	}
	free(order);
	client_lookup_free(&l);
	if (c->ufd == -1) {
		proxy_reply(c, 502, "Bad Gateway", "fed proxy: no peer "
			    "answered for %s:%u (tried %s)", c->req.host, c->req.port,
			    tried);
		return -1;
	}
	return 0;
}

static bool
proxy_hop_by_hop(const char *line, size_t len)
{
	static const char *const drop[] = { "connection:", "proxy-connection:",
					    "keep-alive:", "proxy-authorization:",
					    "te:", "upgrade:" };

	for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++) {
		size_t dl = strlen(drop[i]);

		if (len >= dl && strncasecmp(line, drop[i], dl) == 0)
			return true;
	}
	return false;
}

/* Send the rewritten head and what followed it.  Returns 0 or -1. */
static int
proxy_send_head(struct proxy_conn *c)
{
	char *out, *o;
	const char *line, *eol, *end = c->head + c->head_end - 2;

	if ((out = malloc(CLIENT_PROXY_HEAD_MAX + 256)) == NULL)
		return -1;
	o = out + sprintf(out, "%s %.*s %.8s\r\n", c->req.method, (int)c->req.path_len,
			  c->req.path, c->req.version);
	line = strstr(c->head, "\r\n") + 2;
	for (; line < end; line = eol + 2) {
		eol = strstr(line, "\r\n");
		if (proxy_hop_by_hop(line, (size_t)(eol - line)))
			continue;
		/* the request line names the host: a Host header that says
		 * otherwise is not passed on (RFC 9112 3.2.2), or a request
		 * for a would reach whatever b is on a's server */
		if (strncasecmp(line, "host", 4) == 0 &&
		    line[4 + strspn(line + 4, " \t")] == ':')
			continue;
		memcpy(o, line, (size_t)(eol - line) + 2);
		o += eol - line + 2;
	}
	if (c->req.port == 80)
		o += sprintf(o, "Host: %s\r\n", c->req.host);
	else
		o += sprintf(o, "Host: %s:%u\r\n", c->req.host, c->req.port);
	o += sprintf(o, "Connection: close\r\n\r\n");
	if (proxy_write_all(c->ufd, out, (size_t)(o - out)) == -1 ||
	    proxy_write_all(c->ufd, c->head + c->head_end,
			    c->head_len - c->head_end) == -1) {
		free(out);
		return -1;
	}
	c->up_bytes += c->head_len - c->head_end;
	free(out);
	return 0;
}

/* One direction's buffer. */
struct proxy_pipe {
	char buf[PROXY_BUF];
	size_t len, off;
	bool eof;			/* source closed */
};

/*
 * Relay until the peer has closed and everything it sent reached the
 * client (or, in a tunnel, both sides closed), the connection went idle
 * for CLIENT_PROXY_IDLE_MS, an error, or the proxy stops.
 */
static void
proxy_relay(struct proxy_conn *c)
{
	struct proxy_pipe *up, *down;	/* client->peer, peer->client */
	double start = mono_now(), first = 0, last = start;
	int fds[2] = { c->cfd, c->ufd };

	up = calloc(1, sizeof(*up));
	down = calloc(1, sizeof(*down));
	if (up == NULL || down == NULL)
		goto done;
	while (!c->px->stopping) {
		struct pollfd pf[2];
		struct proxy_pipe *in[2] = { up, down }, *outp[2] = { down, up };
		int i, n;

		bool moved = false;

		for (i = 0; i < 2; i++) {
			pf[i].events = 0;
			pf[i].revents = 0;
			if (!in[i]->eof && in[i]->len == 0)
				pf[i].events |= POLLIN;
			if (outp[i]->len > outp[i]->off)
				pf[i].events |= POLLOUT;
			/* poll reports a hang-up or an error whatever was
			 * asked: a socket nothing is wanted from (its bytes
			 * wait for the other side to take them) is left out,
			 * or each such report would wake the loop at once,
			 * moving nothing, for as long as it lasts */
			pf[i].fd = pf[i].events ? fds[i] : -1;
		}
		if (pf[0].events == 0 && pf[1].events == 0)
			break;
		n = poll(pf, 2, PROXY_TICK_MS);
		if (n == -1 && errno != EINTR)
			break;
		if (n <= 0) {
			if ((mono_now() - last) * 1000 > CLIENT_PROXY_IDLE_MS)
				break;
			continue;
		}
		for (i = 0; i < 2; i++) {
			ssize_t r;

			if (pf[i].revents & (POLLIN | POLLHUP | POLLERR) &&
			    pf[i].events & POLLIN) {
				r = recv(fds[i], in[i]->buf, PROXY_BUF, 0);
				if (r > 0) {
					moved = true;
					last = mono_now();
					in[i]->len = (size_t)r;
					in[i]->off = 0;
					if (i == 1 && first == 0)
						first = last;
					if (i == 1)
						c->down_bytes += (uint64_t)r;
					else
						c->up_bytes += (uint64_t)r;
					if (i == 1 && c->status == 0 &&
					    !c->req.tunnel && r >= 12 &&
					    strncmp(in[i]->buf, "HTTP/1.", 7)
					    == 0)
						c->status = strtol(in[i]->buf + 9,
								   NULL, 10);
				} else if (r == 0) {
					in[i]->eof = true;
				} else if (errno != EAGAIN && errno != EINTR) {
					/* reset, not ended: the other side
					 * must not take a cut stream for a
					 * whole one (a peer that reset before
					 * answering gets its 502 instead) */
					if (i == 0 || c->req.tunnel ||
					    c->down_bytes > 0)
						io_reset_on_close(fds[1 - i]);
					goto done;
				}
			}
			if (pf[i].revents & (POLLOUT | POLLHUP | POLLERR) &&
			    pf[i].events & POLLOUT) {
				struct proxy_pipe *o = outp[i];

				r = send(fds[i], o->buf + o->off,
					 o->len - o->off, MSG_NOSIGNAL);
				if (r > 0) {
					o->off += (size_t)r;
					moved = true;
					last = mono_now();
				} else if (r == -1 && errno != EAGAIN &&
					   errno != EINTR) {
					io_reset_on_close(fds[1 - i]);
					goto done;
				}
				if (o->off == o->len)
					o->len = o->off = 0;
			}
		}
		/* a side that closed, once its bytes are out: close the
		 * other side's writing half */
		if (up->eof && up->len == 0)
			shutdown(c->ufd, SHUT_WR);
		if (down->eof && down->len == 0) {
			/* nothing came: proxy_serve answers 502 itself */
			if (!c->req.tunnel && c->down_bytes == 0)
				break;
			shutdown(c->cfd, SHUT_WR);
			if (!c->req.tunnel || up->eof)
				break;
		}
		/* woken with nothing moved, and not by the clock: a hang-up
		 * or error on a socket still asked for something; the idle
		 * limit holds here too */
		if (!moved && (mono_now() - last) * 1000 > CLIENT_PROXY_IDLE_MS)
			break;
	}
done:
	if (first > 0) {
		c->ttfb_s = first - start;
		c->xfer_s = last - first;
	}
	free(up);
	free(down);
}

static void
proxy_serve(struct proxy_conn *c)
{
	struct client_proxy *px = c->px;
	static const char established[] =
		"HTTP/1.1 200 Connection established\r\n\r\n";
	char via[AUTHAPI_HOST_MAX + 32] = "-";
	bool ok = false;

	if (proxy_read_head(c) == -1 || proxy_parse_request(c) == -1)
		goto log;
	if (proxy_upstream(c) == -1)
		goto log;
	snprintf(via, sizeof(via), "%.8s%s%s:%u", c->used.peer,
		 c->used.peer[0] ? " " : "dns ", c->used.addr, c->used.port);
	if (c->req.tunnel) {
		c->status = 200;
		if (proxy_write_all(c->cfd, established,
				    sizeof(established) - 1) == -1 ||
		    proxy_write_all(c->ufd, c->head + c->head_end,
				    c->head_len - c->head_end) == -1)
			goto log;
	} else if (proxy_send_head(c) == -1) {
		proxy_reply(c, 502, "Bad Gateway", "fed proxy: %s:%u: cannot "
			    "send the request", c->used.addr, c->used.port);
		goto log;
	}
	proxy_relay(c);
	ok = c->down_bytes > 0;
	if (px->cfg.stats != NULL && c->used.peer[0] != '\0')
		client_stats_record(px->cfg.stats, &c->used, ok, c->ttfb_s,
				    c->down_bytes, c->xfer_s);
	if (!c->req.tunnel && c->down_bytes == 0 && c->status == 0)
		proxy_reply(c, 502, "Bad Gateway", "fed proxy: %s:%u closed "
			    "without answering", c->used.addr, c->used.port);
log:
	if (c->req.method[0] == '\0' && c->status == 0)
		return;		/* nothing arrived: not a request */
	log_info("%s %s %s:%u via %s %ld %llu bytes", c->client,
		 c->req.method[0] ? c->req.method : "-", c->req.host[0] ? c->req.host : "-",
		 c->req.port, via, c->status, (unsigned long long)c->down_bytes);
}

static void *
proxy_conn_main(void *arg)
{
	struct proxy_conn *c = arg;
	struct client_proxy *px = c->px;

	pthread_setname_np(pthread_self(), "fed-proxy-conn");
	proxy_serve(c);
	close(c->cfd);
	if (c->ufd != -1)
		close(c->ufd);
	free(c->head);
	free(c);
	pthread_mutex_lock(&px->mu);
	if (--px->active == 0)
		pthread_cond_broadcast(&px->idle);
	pthread_mutex_unlock(&px->mu);
	return NULL;
}

static void
proxy_accept_one(struct client_proxy *px, pthread_attr_t *attr)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct proxy_conn *c;
	char host[INET6_ADDRSTRLEN], serv[8];
	pthread_t t;
	int fd;

	fd = accept4(px->lfd, (struct sockaddr *)&ss, &sl,
		     SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1)
		return;
	pthread_mutex_lock(&px->mu);
	if (px->active >= CLIENT_PROXY_CONN_MAX) {
		static const char busy[] =
			"HTTP/1.1 503 Service Unavailable\r\nContent-Length: "
			"25\r\nConnection: close\r\n\r\nfed proxy: too busy now\r\n";

		pthread_mutex_unlock(&px->mu);
		(void)!send(fd, busy, sizeof(busy) - 1,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		return;
	}
	px->active++;
	pthread_mutex_unlock(&px->mu);
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->head = malloc(CLIENT_PROXY_HEAD_MAX + 1)) ==
	    NULL)
		goto bad;
	c->px = px;
	c->cfd = fd;
	c->ufd = -1;
	if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv,
			sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(c->client, sizeof(c->client), "%s:%s", host, serv);
	else
		snprintf(c->client, sizeof(c->client), "?");
	if (pthread_create(&t, attr, proxy_conn_main, c) != 0)
		goto bad;
	return;
bad:
	if (c != NULL)
		free(c->head);
	free(c);
	close(fd);
	pthread_mutex_lock(&px->mu);
	if (--px->active == 0)
		pthread_cond_broadcast(&px->idle);
	pthread_mutex_unlock(&px->mu);
}

static void *
proxy_accept_main(void *arg)
{
	struct client_proxy *px = arg;
	pthread_attr_t attr;

	pthread_setname_np(pthread_self(), "fed-proxy");
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, PROXY_STACK);
	while (!px->stopping) {
		struct pollfd pf[2] = { { px->lfd, POLLIN, 0 },
					{ px->stop_pipe[0], POLLIN, 0 } };

		if (poll(pf, 2, -1) == -1 && errno != EINTR)
			break;
		if (pf[1].revents)
			break;
		if (pf[0].revents & POLLIN)
			proxy_accept_one(px, &attr);
	}
	pthread_attr_destroy(&attr);
	return NULL;
}

/* Bind "ADDR:PORT" (ADDR a name, IPv4, or [IPv6]).  Returns fd or -1. */
static int
proxy_listen(const char *listen_on, uint16_t *port, struct err *e)
{
	struct addrinfo hints, *res = NULL, *ai;
	char host[256];
	const char *colon = strrchr(listen_on, ':');
	size_t hl;
	int fd = -1, one = 1, rc;

	if (colon == NULL || colon == listen_on || colon[1] == '\0')
		return err_set(e, "--listen %s: want ADDR:PORT", listen_on);
	hl = (size_t)(colon - listen_on);
	if (listen_on[0] == '[' && hl > 2 && listen_on[hl - 1] == ']')
		snprintf(host, sizeof(host), "%.*s", (int)hl - 2, listen_on + 1);
	else
		snprintf(host, sizeof(host), "%.*s", (int)hl, listen_on);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res)) != 0)
		return err_set(e, "--listen %s: %s", listen_on,
			       gai_strerror(rc));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd == -1)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 128) == 0)
			break;
		err_sys(e, "--listen %s", listen_on);
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1)
		return -1;
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char serv[8];

		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
		    getnameinfo((struct sockaddr *)&ss, sl, NULL, 0, serv,
				sizeof(serv), NI_NUMERICSERV) == 0)
			*port = (uint16_t)atoi(serv);
	}
	return fd;
}

/* Release what client_proxy_start made (the threads are gone by now). */
static void
proxy_free(struct client_proxy *px)
{
	if (px->lfd != -1)
		close(px->lfd);
	if (px->stop_pipe[0] != -1) {
		close(px->stop_pipe[0]);
		close(px->stop_pipe[1]);
	}
	free(px->authority);
	free(px->cache_dir);
	pthread_cond_destroy(&px->idle);
	pthread_mutex_destroy(&px->mu);
	free(px);
}

struct client_proxy *
client_proxy_start(const struct client_proxy_config *cfg, struct err *e)
{
	struct client_proxy *px;

	if ((px = calloc(1, sizeof(*px))) == NULL) {
		err_set(e, "out of memory");
		return NULL;
	}
	px->cfg = *cfg;
	if (cfg->trust != NULL)
		px->trust = *cfg->trust;
	px->cfg.trust = NULL;	/* px->trust is the copy */
	px->lfd = -1;
	px->stop_pipe[0] = px->stop_pipe[1] = -1;
	pthread_mutex_init(&px->mu, NULL);
	pthread_cond_init(&px->idle, NULL);
	px->authority = strdup(cfg->authority);
	px->cache_dir = strdup(cfg->cache_dir);
	if (px->authority == NULL || px->cache_dir == NULL) {
		err_set(e, "out of memory");
		goto bad;
	}
	if ((px->lfd = proxy_listen(cfg->listen, &px->port, e)) == -1)
		goto bad;
	if (pipe2(px->stop_pipe, O_CLOEXEC) == -1) {
		err_sys(e, "pipe");
		goto bad;
	}
	if (pthread_create(&px->acceptor, NULL, proxy_accept_main, px) != 0) {
		err_set(e, "cannot start the proxy's thread");
		goto bad;
	}
	return px;
bad:
	proxy_free(px);
	return NULL;
}

uint16_t
client_proxy_port(const struct client_proxy *p)
{
	return p->port;
}

void
client_proxy_stop(struct client_proxy *px)
{
	if (px == NULL)
		return;
	px->stopping = 1;
	(void)!write(px->stop_pipe[1], "x", 1);
	pthread_join(px->acceptor, NULL);
	close(px->lfd);		/* no new connection waits in the backlog */
	px->lfd = -1;
	/* every connection thread looks at `stopping` each PROXY_TICK_MS
	 * (a connect in progress within CLIENT_CONNECT_TIMEOUT_MS) */
	pthread_mutex_lock(&px->mu);
	while (px->active > 0)
		pthread_cond_wait(&px->idle, &px->mu);
	pthread_mutex_unlock(&px->mu);
	proxy_free(px);
}
