/*
 * test_netmap_relay.c - the TCP relay, in process, against real sockets on
 * loopback: 1 000 concurrent connections with distinct payloads through
 * one mapping; 100 MiB byte for byte (and SHA-256); half-close; bounded
 * memory and in-flight bytes with a slow reader (backpressure); switching
 * a mapping's target with connections open; removing a mapping; connect
 * refused and connect timeout; counters; the API from many threads.
 *
 * The backends are a small epoll server in a thread of the test (echo,
 * echo after a one-byte tag, or "reply at EOF").
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/crypto.h"
#include "lib/testutil.h"
#include "netmap/netmap.h"

static void
setup(void)
{
	struct rlimit rl;

	signal(SIGPIPE, SIG_IGN);
	/* 1 000 relayed connections take ~8 000 descriptors here */
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max < 65536) {
		struct rlimit more = { 65536, 65536 };

		if (setrlimit(RLIMIT_NOFILE, &more) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

TestSuite(relay, .init = setup, .timeout = 180);

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
nap_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* ------------------------------------------------------- socket helpers */

static int
listen_local(uint16_t *port, int backlog)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0, "%m");
	cr_assert_eq(listen(fd, backlog), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static struct sockaddr_in
local_addr(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	return sin;
}

/* A blocking client connected to 127.0.0.1:port, with 30 s timeouts so a
 * bug shows as a failure, not a hang.  -1 with errno if refused. */
static int
dial(uint16_t port)
{
	struct sockaddr_in sin = local_addr(port);
	struct timeval tv = { 30, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0, "socket: %m");
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static void
send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		cr_assert(n > 0, "send: %m");
		p += n;
		len -= (size_t)n;
	}
}

/* Read until EOF (or cap bytes); returns the count.  Fails on an error. */
static size_t
recv_all(int fd, void *buf, size_t cap)
{
	size_t got = 0;

	while (got < cap) {
		ssize_t n = recv(fd, (uint8_t *)buf + got, cap - got, 0);

		cr_assert(n >= 0, "recv after %zu bytes: %m", got);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return got;
}

/* Wait (bounded) for fd to say EOF or reset; true if it did. */
static bool
ends_within(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&p, 1, ms) != 1)
		return false;
	return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

/* ------------------------------------------------------- test backends */

enum be_mode { BE_ECHO, BE_REPLY_AT_EOF };

struct be_conn {
	int fd;
	bool eof;
	size_t off, len, total;
	uint8_t buf[65536];
};

struct backend {
	enum be_mode mode;
	char tag;		/* sent first on every connection, if not 0 */
	int lfd, stopfd, epfd;
	uint16_t port;
	pthread_t th;
	atomic_int accepted;
};

static void
be_update(struct backend *b, struct be_conn *c)
{
	struct epoll_event ev = { .data.ptr = c };

	if (!c->eof && c->len < sizeof(c->buf))
		ev.events |= EPOLLIN;
	if (c->off < c->len)
		ev.events |= EPOLLOUT;
	epoll_ctl(b->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
be_close(struct backend *b, struct be_conn *c)
{
	epoll_ctl(b->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

static void
be_io(struct backend *b, struct be_conn *c)
{
	ssize_t n;

	if (!c->eof && c->len < sizeof(c->buf)) {
		n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
		if (n == 0)
			c->eof = true;
		else if (n > 0 && b->mode == BE_ECHO)
			c->len += (size_t)n;
		else if (n > 0)
			c->total += (size_t)n;
		else if (errno != EAGAIN) {
			be_close(b, c);
			return;
		}
	}
	if (b->mode == BE_REPLY_AT_EOF && c->eof && c->len == 0) {
		c->len = (size_t)snprintf((char *)c->buf, sizeof(c->buf),
					  "got %zu\n", c->total);
		c->off = 0;
	}
	if (c->off < c->len) {
		n = write(c->fd, c->buf + c->off, c->len - c->off);
		if (n > 0)
			c->off += (size_t)n;
		else if (n < 0 && errno != EAGAIN) {
			be_close(b, c);
			return;
		}
		if (c->off == c->len)
			c->off = c->len = b->mode == BE_ECHO ? 0 : c->len;
	}
	if (c->eof && (c->off == c->len)) {
		shutdown(c->fd, SHUT_WR);
		be_close(b, c);
		return;
	}
	be_update(b, c);
}

static void *
be_loop(void *arg)
{
	struct backend *b = arg;
	struct epoll_event evs[64];

	for (;;) {
		int n = epoll_wait(b->epfd, evs, 64, -1);

		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &b->stopfd)
				return NULL;
			if (evs[i].data.ptr == &b->lfd) {
				int fd;

				while ((fd = accept4(b->lfd, NULL, NULL,
						     SOCK_NONBLOCK)) >= 0) {
					struct be_conn *c = calloc(1, sizeof(*c));
					struct epoll_event ev = { .events = EPOLLIN,
								  .data.ptr = c };

					c->fd = fd;
					if (b->tag)
						c->buf[c->len++] = (uint8_t)b->tag;
					epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev);
					b->accepted++;
					be_io(b, c);
				}
				continue;
			}
			be_io(b, evs[i].data.ptr);
		}
	}
}

static struct backend *
backend_start(enum be_mode mode, char tag)
{
	struct backend *b = calloc(1, sizeof(*b));
	struct epoll_event ev = { .events = EPOLLIN };

	b->mode = mode;
	b->tag = tag;
	b->lfd = listen_local(&b->port, 4096);
	cr_assert_eq(fcntl(b->lfd, F_SETFL, O_NONBLOCK), 0);
	b->stopfd = eventfd(0, 0);
	b->epfd = epoll_create1(0);
	ev.data.ptr = &b->lfd;
	epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->lfd, &ev);
	ev.data.ptr = &b->stopfd;
	epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->stopfd, &ev);
	cr_assert_eq(pthread_create(&b->th, NULL, be_loop, b), 0);
	return b;
}

/* Stops the thread; open connections are left to the process exit. */
static void
backend_stop(struct backend *b)
{
	uint64_t one = 1;

	cr_assert_eq(write(b->stopfd, &one, sizeof(one)), 8);
	pthread_join(b->th, NULL);
	close(b->lfd);
	close(b->epfd);
	close(b->stopfd);
	free(b);
}

/* ------------------------------------------------------- relay helpers */

static struct relay *
relay_start(int connect_timeout_ms)
{
	struct relay_config cfg = { .connect_timeout_ms = connect_timeout_ms };
	struct relay *r = NULL;
	struct err e;

	cr_assert_eq(relay_new(&cfg, &r, &e), 0, "%s", e.msg);
	return r;
}

/* Map a fresh 127.0.0.1 port to 127.0.0.1:target; returns the port. */
static uint16_t
map(struct relay *r, const char *name, uint16_t target)
{
	struct sockaddr_in to = local_addr(target), at = local_addr(0);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct err e;
	int fd;

	cr_assert_eq(hostport_listen((struct sockaddr *)&at, sizeof(at), &fd,
				     &e), 0, "%s", e.msg);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	cr_assert_eq(relay_map_add(r, name, fd, (struct sockaddr *)&to,
				   sizeof(to), &e), 0, "%s", e.msg);
	return hostport_port((struct sockaddr *)&ss);
}

/* The counters of one mapping; fails the test if it is not there. */
static struct relay_map_info
info(struct relay *r, const char *name)
{
	struct relay_map_info *v, out;
	size_t n;
	struct err e;

	cr_assert_eq(relay_map_list(r, &v, &n, &e), 0, "%s", e.msg);
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0) {
			out = v[i];
			free(v);
			return out;
		}
	free(v);
	cr_assert_fail("no mapping %s", name);
	return out;
}

/* Poll the counters until active == want (or 10 s pass). */
static bool
wait_active(struct relay *r, const char *name, uint64_t want)
{
	int64_t deadline = now_ms() + 10000;

	while (now_ms() < deadline) {
		if (info(r, name).conns_active == want)
			return true;
		nap_ms(10);
	}
	return false;
}

/* ------------------------------------------------------------- tests */

Test(relay, thousand_concurrent_connections_get_their_own_bytes)
{
	enum { N = 1000 };
	struct backend *b = backend_start(BE_ECHO, 0);
	struct relay *r = relay_start(0);
	uint16_t port = map(r, "web", b->port);
	static int fds[N];
	static uint8_t want[8192], got[8192];
	struct relay_map_info mi;
	size_t total = 0;

	for (int i = 0; i < N; i++) {
		fds[i] = dial(port);
		cr_assert(fds[i] >= 0, "connection %d: %m", i);
	}
	/* all of them are open in the relay at once */
	cr_assert(wait_active(r, "web", N), "active: %llu",
		  (unsigned long long)info(r, "web").conns_active);
	for (int i = 0; i < N; i++) {
		size_t len = 1000 + (size_t)(i * 37) % 7000;

		tu_fill(want, len, (uint32_t)i + 1);
		send_all(fds[i], want, len);
		cr_assert_eq(shutdown(fds[i], SHUT_WR), 0);
		total += len;
	}
	for (int i = 0; i < N; i++) {
		size_t len = 1000 + (size_t)(i * 37) % 7000;

		tu_fill(want, len, (uint32_t)i + 1);
		cr_assert_eq(recv_all(fds[i], got, sizeof(got)), len,
			     "connection %d: wrong length", i);
		cr_assert_arr_eq(got, want, len, "connection %d: wrong bytes", i);
		close(fds[i]);
	}
	cr_assert(wait_active(r, "web", 0));
	mi = info(r, "web");
	cr_assert_eq(mi.conns_total, N);
	cr_assert_eq(mi.connect_failed, 0);
	cr_assert_eq(mi.bytes_up, total);
	cr_assert_eq(mi.bytes_down, total);
	relay_free(r);
	backend_stop(b);
}

struct pusher {
	int fd;
	const uint8_t *buf;
	size_t len;
	bool shut;		/* shutdown(SHUT_WR) when done */
};

static void *
pusher_run(void *arg)
{
	struct pusher *p = arg;

	send_all(p->fd, p->buf, p->len);
	if (p->shut)
		shutdown(p->fd, SHUT_WR);
	return NULL;
}

Test(relay, hundred_mib_round_trip_is_byte_exact)
{
	const size_t len = 100u << 20;
	struct backend *b = backend_start(BE_ECHO, 0);
	struct relay *r = relay_start(0);
	uint16_t port = map(r, "big", b->port);
	uint8_t *out = malloc(len), *in = malloc(len + 1);
	uint8_t h_out[SHA256_LEN], h_in[SHA256_LEN];
	struct pusher p;
	pthread_t th;
	int fd;

	cr_assert(out && in);
	tu_fill(out, len, 0x5eed);
	fd = dial(port);
	cr_assert(fd >= 0);
	p = (struct pusher){ fd, out, len, true };
	cr_assert_eq(pthread_create(&th, NULL, pusher_run, &p), 0);
	cr_assert_eq(recv_all(fd, in, len + 1), len);
	pthread_join(th, NULL);
	sha256(out, len, h_out);
	sha256(in, len, h_in);
	cr_assert_arr_eq(h_in, h_out, SHA256_LEN, "SHA-256 differs");
	cr_assert(memcmp(in, out, len) == 0, "bytes differ");
	close(fd);
	cr_assert(wait_active(r, "big", 0));
	cr_assert_eq(info(r, "big").bytes_up, len);
	cr_assert_eq(info(r, "big").bytes_down, len);
	relay_free(r);
	backend_stop(b);
	free(out);
	free(in);
}

Test(relay, half_close_lets_the_backend_answer_after_eof)
{
	struct backend *b = backend_start(BE_REPLY_AT_EOF, 0);
	struct relay *r = relay_start(0);
	uint16_t port = map(r, "hc", b->port);
	static uint8_t data[300000];
	char reply[64] = { 0 };
	int fd = dial(port);

	cr_assert(fd >= 0);
	tu_fill(data, sizeof(data), 7);
	send_all(fd, data, sizeof(data));
	cr_assert_eq(shutdown(fd, SHUT_WR), 0);
	/* the backend only answers once it has read EOF */
	cr_assert_eq(recv_all(fd, reply, sizeof(reply) - 1), 11);
	cr_assert_str_eq(reply, "got 300000\n");
	close(fd);
	cr_assert(wait_active(r, "hc", 0), "the session ends when both "
		  "directions are done");
	relay_free(r);
	backend_stop(b);
}

/* Resident set size of this process, bytes. */
static size_t
rss_bytes(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%ld %ld", &pages, &resident), 2);
	fclose(f);
	return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* The byte at offset off of the backpressure stream. */
static inline uint8_t
stream_byte(uint64_t off)
{
	return (uint8_t)((off * 131) ^ (off >> 11));
}

struct streamer {
	int fd;
	uint64_t limit;
	_Atomic uint64_t sent;
};

static void *
streamer_run(void *arg)
{
	struct streamer *s = arg;
	static uint8_t buf[65536];
	uint64_t off = 0;

	while (off < s->limit) {
		size_t n = sizeof(buf);
		ssize_t w;

		if (s->limit - off < n)
			n = (size_t)(s->limit - off);
		for (size_t i = 0; i < n; i++)
			buf[i] = stream_byte(off + i);
		w = send(s->fd, buf, n, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		off += (uint64_t)w;
		s->sent = off;
	}
	shutdown(s->fd, SHUT_WR);
	return NULL;
}

Test(relay, slow_reader_backpressure_keeps_memory_flat)
{
	const uint64_t total = 256u << 20;
	struct relay *r = relay_start(0);
	uint16_t tport;
	int lfd = listen_local(&tport, 16);
	uint16_t port = map(r, "slow", tport);
	static uint8_t buf[65536];
	struct streamer st = { .limit = total };
	int small = 64 * 1024, tfd;
	uint64_t got = 0, last;
	size_t rss0, rss;
	pthread_t th;
	int64_t t;

	st.fd = dial(port);
	cr_assert(st.fd >= 0);
	setsockopt(st.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	tfd = accept(lfd, NULL, NULL);	/* the relay's connection */
	cr_assert(tfd >= 0);
	setsockopt(tfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	setsockopt(tfd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ 30, 0 },
		   sizeof(struct timeval));
	rss0 = rss_bytes();
	cr_assert_eq(pthread_create(&th, NULL, streamer_run, &st), 0);

	/* 1: nobody reads.  The writer must stall, not fill the relay. */
	last = (uint64_t)-1;
	for (t = now_ms(); now_ms() - t < 10000; nap_ms(300)) {
		if (st.sent == last)
			break;
		last = st.sent;
	}
	cr_assert_eq(st.sent, last, "the writer never stalled");
	cr_log_info("stalled after %llu bytes",
		    (unsigned long long)st.sent);
	cr_assert_lt(st.sent, 64u << 20, "%llu bytes in flight",
		     (unsigned long long)st.sent);
	rss = rss_bytes();
	cr_assert_lt(rss, rss0 + (8u << 20), "RSS grew %zu KiB",
		     (rss - rss0) >> 10);

	/* 2: a slow reader, 64 KiB every 5 ms: in flight stays bounded */
	for (t = now_ms(); now_ms() - t < 1000; nap_ms(5)) {
		ssize_t n = recv(tfd, buf, sizeof(buf), MSG_DONTWAIT);

		for (ssize_t i = 0; i < n; i++)
			cr_assert_eq(buf[i], stream_byte(got + (uint64_t)i),
				     "byte %llu", (unsigned long long)(got + i));
		if (n > 0)
			got += (uint64_t)n;
		cr_assert_lt(st.sent - got, 64u << 20);
	}
	rss = rss_bytes();
	cr_assert_lt(rss, rss0 + (8u << 20), "RSS grew %zu KiB",
		     (rss - rss0) >> 10);

	/* 3: read the rest at full speed; every byte arrives, in order */
	for (;;) {
		ssize_t n = recv(tfd, buf, sizeof(buf), 0);

		cr_assert(n >= 0, "recv: %m");
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != stream_byte(got + (uint64_t)i))
				cr_assert_fail("byte %llu differs",
					       (unsigned long long)(got + i));
		got += (uint64_t)n;
	}
	pthread_join(th, NULL);
	cr_assert_eq(got, total);
	cr_assert_lt(rss_bytes(), rss0 + (8u << 20));
	close(tfd);
	close(st.fd);
	close(lfd);
	relay_free(r);
}

/* Connect *old through port (mapped to backend a, which greets 'A'),
 * switch mapping "svc" to backend b, connect *fresh (greeted 'B'). */
static void
switch_between(struct relay *r, uint16_t port, const struct backend *b,
	       int *old, int *fresh)
{
	struct sockaddr_in to_b = local_addr(b->port);
	struct err e;
	char c;

	*old = dial(port);
	cr_assert(*old >= 0);
	cr_assert_eq(recv(*old, &c, 1, 0), 1);
	cr_assert_eq(c, 'A');
	cr_assert_eq(relay_map_switch(r, "svc", (struct sockaddr *)&to_b,
				      sizeof(to_b), &e), 0, "%s", e.msg);
	*fresh = dial(port);
	cr_assert(*fresh >= 0);
	cr_assert_eq(recv(*fresh, &c, 1, 0), 1);
	cr_assert_eq(c, 'B', "a new connection reaches the new target");
}

Test(relay, switching_target_keeps_old_connections_and_moves_new_ones)
{
	struct backend *a = backend_start(BE_ECHO, 'A'),
		       *b = backend_start(BE_ECHO, 'B');
	struct relay *r = relay_start(0);
	uint16_t port = map(r, "svc", a->port);
	struct relay_map_info mi;
	char buf[8];
	int old, fresh;

	switch_between(r, port, b, &old, &fresh);
	mi = info(r, "svc");
	cr_assert_eq(hostport_port((struct sockaddr *)&mi.target), b->port);

	/* the old connection still talks to A, both ways */
	send_all(old, "still", 5);
	cr_assert_eq(recv(old, buf, 5, MSG_WAITALL), 5);
	cr_assert_arr_eq(buf, "still", 5);
	send_all(fresh, "fresh", 5);
	cr_assert_eq(recv(fresh, buf, 5, MSG_WAITALL), 5);
	cr_assert_arr_eq(buf, "fresh", 5);
	cr_assert_eq(a->accepted, 1);
	cr_assert_eq(b->accepted, 1);
	cr_assert_eq(info(r, "svc").conns_active, 2);

	/* the old target can go away once its connections are done */
	close(old);
	cr_assert(wait_active(r, "svc", 1));
	backend_stop(a);
	close(fresh);
	relay_free(r);
	backend_stop(b);
}

/* Once the old target goes away its connections are reset by the relay:
 * from a deleted tap or namespace no reset would ever come. */
Test(relay, old_connections_are_reset_on_demand_and_new_ones_kept)
{
	struct backend *a = backend_start(BE_ECHO, 'A'),
		       *b = backend_start(BE_ECHO, 'B');
	struct relay *r = relay_start(0);
	uint16_t port = map(r, "svc", a->port);
	char buf[8];
	int old, fresh;
	struct err e;

	switch_between(r, port, b, &old, &fresh);

	cr_assert_eq(relay_map_reset_old(r, "svc", &e), 0, "%s", e.msg);
	cr_assert(ends_within(old, 5000), "the old connection stays open");
	send_all(fresh, "fresh", 5);
	cr_assert_eq(recv(fresh, buf, 5, MSG_WAITALL), 5, "the new one was "
		     "cut too");
	cr_assert_arr_eq(buf, "fresh", 5);
	cr_assert_eq(relay_map_reset_old(r, "nope", &e), -1);
	close(old);
	close(fresh);
	relay_free(r);
	backend_stop(a);
	backend_stop(b);
}

Test(relay, removing_a_mapping_closes_its_port_and_connections)
{
	struct backend *b = backend_start(BE_ECHO, 0);
	struct relay *r = relay_start(0);
	uint16_t port = map(r, "gone", b->port), keep = map(r, "kept", b->port);
	struct relay_map_info *v;
	char buf[4];
	size_t n;
	int fd, other;
	struct err e;

	fd = dial(port);
	other = dial(keep);
	cr_assert(fd >= 0 && other >= 0);
	send_all(fd, "ping", 4);
	cr_assert_eq(recv(fd, buf, 4, MSG_WAITALL), 4);
	cr_assert(wait_active(r, "gone", 1));

	cr_assert_eq(relay_map_remove(r, "gone", &e), 0, "%s", e.msg);
	cr_assert(ends_within(fd, 5000), "the open connection is closed");
	cr_assert_eq(dial(port), -1, "the port no longer accepts");
	cr_assert_eq(errno, ECONNREFUSED);
	cr_assert_eq(relay_map_list(r, &v, &n, &e), 0, "%s", e.msg);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(v[0].name, "kept");
	free(v);
	cr_assert_eq(relay_map_remove(r, "gone", &e), -1);
	cr_assert(strstr(e.msg, "no mapping 'gone'") != NULL, "%s", e.msg);

	/* the other mapping is untouched */
	send_all(other, "pong", 4);
	cr_assert_eq(recv(other, buf, 4, MSG_WAITALL), 4);
	cr_assert_arr_eq(buf, "pong", 4);
	close(fd);
	close(other);
	relay_free(r);
	backend_stop(b);
}

Test(relay, refused_target_resets_the_client_and_counts)
{
	struct relay *r = relay_start(0);
	uint16_t dead;
	int lfd = listen_local(&dead, 1), fd;

	close(lfd);		/* nothing listens on dead now */
	fd = dial(map(r, "nobody-home", dead));
	cr_assert(fd >= 0);
	cr_assert(ends_within(fd, 5000));
	cr_assert(wait_active(r, "nobody-home", 0));
	cr_assert_eq(info(r, "nobody-home").connect_failed, 1);
	close(fd);
	relay_free(r);
}

Test(relay, connect_timeout_gives_up_on_a_silent_target)
{
	struct relay *r = relay_start(300);
	struct sockaddr_in sin;
	uint16_t tport;
	int lfd = listen_local(&tport, 0), fill[3], fd;
	int64_t t;

	/* a listener that never accepts, its queue full: SYNs are dropped */
	sin = local_addr(tport);
	for (int i = 0; i < 3; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&sin, sizeof(sin));
	}
	nap_ms(50);
	fd = dial(map(r, "silent", tport));
	cr_assert(fd >= 0);
	t = now_ms();
	cr_assert(ends_within(fd, 5000), "the client is let go");
	cr_assert_geq(now_ms() - t, 200);
	cr_assert_eq(info(r, "silent").connect_failed, 1);
	for (int i = 0; i < 3; i++)
		close(fill[i]);
	close(fd);
	close(lfd);
	relay_free(r);
}

Test(relay, a_silent_connection_is_closed_and_a_busy_one_kept)
{
	struct relay_config cfg = { .idle_timeout_s = 1 };
	struct backend *b = backend_start(BE_ECHO, 0);
	struct relay *r = NULL;
	struct err e;
	uint16_t port;
	int silent, busy;
	int64_t t0;
	char c;

	cr_assert_eq(relay_new(&cfg, &r, &e), 0, "%s", e.msg);
	port = map(r, "idle", b->port);
	silent = dial(port);
	busy = dial(port);
	cr_assert(silent >= 0 && busy >= 0);
	cr_assert(wait_active(r, "idle", 2));
	t0 = now_ms();
	/* busy says a byte every 200 ms and gets it back, for 2.5 s: more
	 * than twice the timeout */
	while (now_ms() - t0 < 2500) {
		send_all(busy, "x", 1);
		cr_assert_eq(recv(busy, &c, 1, 0), 1, "the busy connection "
			     "was closed after %lld ms", (long long)(now_ms() - t0));
		nap_ms(200);
	}
	/* silent has been let go meanwhile (how: the next test) */
	cr_assert(ends_within(silent, 0), "a connection silent for 2.5 s "
		  "with a 1 s idle timeout is still open");
	cr_assert_eq(info(r, "idle").idle_closed, 1);
	cr_assert_eq(info(r, "idle").conns_active, 1);
	send_all(busy, "y", 1);
	cr_assert_eq(recv(busy, &c, 1, 0), 1);
	cr_assert_eq(c, 'y');
	close(silent);
	close(busy);
	relay_free(r);
	backend_stop(b);
}

Test(relay, idle_connections_end_by_themselves_with_a_fin)
{
	struct relay_config cfg = { .idle_timeout_s = 1 };
	struct backend *b = backend_start(BE_ECHO, 0);
	struct relay *r = NULL;
	struct err e;
	uint16_t port;
	int fd[2];
	char c;

	cr_assert_eq(relay_new(&cfg, &r, &e), 0, "%s", e.msg);
	port = map(r, "quiet", b->port);
	fd[0] = dial(port);
	fd[1] = dial(port);
	/* nothing else happens: the relay must wake for the deadline
	 * itself (no call, no traffic to turn its loop) */
	for (int i = 0; i < 2; i++) {
		cr_assert(ends_within(fd[i], 3000), "connection %d is open "
			  "3 s into a 1 s idle timeout", i);
		cr_assert_eq(recv(fd[i], &c, 1, 0), 0, "ended by a FIN (a "
			     "clean end: nothing was lost), not a reset");
		close(fd[i]);
	}
	cr_assert_eq(info(r, "quiet").idle_closed, 2);
	relay_free(r);
	backend_stop(b);
}

/* Accepts one connection on lfd and sends into it until it fails. */
struct bulk_sender {
	int lfd;
	size_t sent;
};

static void *
bulk_send(void *arg)
{
	struct bulk_sender *bs = arg;
	static char chunk[65536];
	struct timeval tv = { 10, 0 };
	int fd = accept(bs->lfd, NULL, NULL);
	ssize_t n;

	memset(chunk, 'z', sizeof(chunk));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (bs->sent < (64u << 20) &&
	       (n = send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL)) > 0)
		bs->sent += (size_t)n;
	close(fd);
	return NULL;
}

Test(relay, an_idle_cut_with_bytes_stuck_is_a_reset)
{
	struct relay_config cfg = { .idle_timeout_s = 1 };
	struct bulk_sender bs = { 0 };
	struct relay *r = NULL;
	struct sockaddr_in sin;
	struct timeval tv = { 10, 0 };
	pthread_t th;
	uint16_t bport;
	int fd, rcv = 4096;
	ssize_t n;
	char buf[65536];

	bs.lfd = listen_local(&bport, 16);
	cr_assert_eq(pthread_create(&th, NULL, bulk_send, &bs), 0);
	cr_assert_eq(relay_new(&cfg, &r, NULL), 0);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	sin = local_addr(map(r, "stuck", bport));
	cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	/* a client that stops reading: the relay's pipe fills, nothing is
	 * delivered, and the idle timeout cuts the session */
	cr_assert(wait_active(r, "stuck", 1));
	while (info(r, "stuck").idle_closed == 0)
		nap_ms(50);	/* the test's own timeout bounds this */
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		;
	cr_assert_lt(n, 0, "bytes the sender wrote were dropped, and the "
		     "client read a clean end of stream");
	cr_assert_eq(errno, ECONNRESET, "%s", strerror(errno));
	pthread_join(th, NULL);
	close(fd);
	close(bs.lfd);
	relay_free(r);
}

Test(relay, api_refuses_bad_calls)
{
	struct relay *r = relay_start(0);
	struct sockaddr_in to = local_addr(9), zero = local_addr(0);
	uint16_t p;
	int lfd = listen_local(&p, 1), plain;
	struct err e;

	map(r, "dup", 9);
	cr_assert_eq(relay_map_add(r, "dup", lfd, (struct sockaddr *)&to,
				   sizeof(to), &e), -1);
	cr_assert(strstr(e.msg, "exists") != NULL, "%s", e.msg);
	cr_assert_eq(relay_map_add(r, "zero", lfd, (struct sockaddr *)&zero,
				   sizeof(zero), &e), -1);
	plain = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(relay_map_add(r, "plain", plain, (struct sockaddr *)&to,
				   sizeof(to), &e), -1);
	cr_assert(strstr(e.msg, "not a listening socket") != NULL, "%s",
		  e.msg);
	cr_assert_eq(relay_map_switch(r, "nope", (struct sockaddr *)&to,
				      sizeof(to), &e), -1);
	cr_assert_eq(relay_map_remove(r, "nope", &e), -1);
	close(plain);
	close(lfd);	/* failed adds leave the descriptor to the caller */
	relay_free(r);
}

struct churn {
	struct relay *r;
	int id;
	uint16_t target;
};

static void *
churn_run(void *arg)
{
	struct churn *c = arg;
	struct sockaddr_in to = local_addr(c->target);
	char name[32];
	struct err e;

	for (int i = 0; i < 50; i++) {
		struct relay_map_info *v;
		size_t n;
		uint16_t port;
		int fd;
		char buf[2];

		snprintf(name, sizeof(name), "t%d-%d", c->id, i);
		port = map(c->r, name, c->target);
		cr_assert_eq(relay_map_switch(c->r, name, (struct sockaddr *)&to,
					      sizeof(to), &e), 0, "%s", e.msg);
		fd = dial(port);
		cr_assert(fd >= 0);
		send_all(fd, "hi", 2);
		cr_assert_eq(recv(fd, buf, 2, MSG_WAITALL), 2);
		cr_assert_eq(relay_map_list(c->r, &v, &n, &e), 0, "%s", e.msg);
		free(v);
		cr_assert_eq(relay_map_remove(c->r, name, &e), 0, "%s", e.msg);
		close(fd);
	}
	return NULL;
}

Test(relay, api_is_safe_from_many_threads)
{
	struct backend *b = backend_start(BE_ECHO, 0);
	struct relay *r = relay_start(0);
	struct churn c[4];
	pthread_t th[4];
	struct relay_map_info *v;
	size_t n;
	struct err e;

	for (int i = 0; i < 4; i++) {
		c[i] = (struct churn){ r, i, b->port };
		cr_assert_eq(pthread_create(&th[i], NULL, churn_run, &c[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(relay_map_list(r, &v, &n, &e), 0, "%s", e.msg);
	cr_assert_eq(n, 0);
	relay_free(r);
	backend_stop(b);
}
