/*
 * test_objsrv.c - the object server through plain HTTP on loopback, as a
 * peer (or a misbehaving one) talks to it: a HEAD says what the GET would,
 * without the body; one address reading slowly cannot take every upload
 * slot from the others.
 *
 * Askers are told apart by address: the whole of 127.0.0.0/8 is loopback,
 * so a connection bound to 127.0.0.2 comes from another peer than one bound
 * to 127.0.0.3.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/hex.h"
#include "common/proc.h"
#include "fedfs/fetch.h"
#include "fedfs/objsrv.h"
#include "fedfs/store.h"
#include "lib/testutil.h"

#define SMALL 65536
/* More than a loopback socket's send buffer can hold (at most tcp_wmem's
 * 4 MiB by default): a reply to an asker that does not read stays in
 * flight, its upload slot held, as long as the test needs it. */
#define BIG (8u << 20)
#define MAX_UPLOADS 32		/* objsrv.c's OBJSRV_MAX_UPLOADS */
#define REPLY_MAX (SMALL + 4096)

static char *dir;
static struct store *store;
static struct objsrv *srv;
static char small_hex[2 * SHA256_LEN + 1], big_hex[2 * SHA256_LEN + 1];

static void
put_chunk(size_t len, uint32_t seed, char *hex)
{
	uint8_t hash[SHA256_LEN], *buf = malloc(len);
	struct err e;

	cr_assert(buf != NULL);
	tu_fill(buf, len, seed);
	sha256(buf, len, hash);
	cr_assert_eq(store_put(store, hash, buf, len, STORE_COPIED_IN, &e), 0,
		     "%s", e.msg);
	hex_encode(hash, SHA256_LEN, hex);
	free(buf);
}

static void
setup(void)
{
	struct err e;

	cr_assert_eq(crypto_init(&e), 0);
	dir = tu_tmpdir();
	cr_assert_eq(store_open(dir, 0, &store, &e), 0, "%s", e.msg);
	put_chunk(SMALL, 1, small_hex);
	put_chunk(BIG, 2, big_hex);
	cr_assert_eq(objsrv_start("127.0.0.1:0", store, NULL, NULL, &srv, &e),
		     0, "%s", e.msg);
}

static void
teardown(void)
{
	objsrv_stop(srv);
	store_close(store);
	tu_rmtree(dir);
	free(dir);
}

TestSuite(objsrv, .init = setup, .fini = teardown);

/* A connection to the server from address from (127.x.y.z).  rcvbuf: if
 * not 0, a receive buffer that small, as a peer that reads slowly has. */
static int
connect_from(const char *from, int rcvbuf)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert(fd >= 0);
	if (rcvbuf != 0)
		cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
					sizeof(rcvbuf)), 0);
	/* a reply that never comes fails the test, not hangs it */
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)),
		     0);
	cr_assert_eq(inet_pton(AF_INET, from, &a.sin_addr), 1);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0,
		     "bind %s: %s", from, strerror(errno));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(objsrv_port(srv));
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0,
		     "connect: %s", strerror(errno));
	return fd;
}

/* Ask for /objects/hex; extra: more header lines, each ending in CRLF. */
static void
ask(int fd, const char *method, const char *hex, const char *extra)
{
	char req[512];
	int n = snprintf(req, sizeof(req), "%s /objects/%s HTTP/1.1\r\n"
			 "Host: test\r\n%s\r\n", method, hex, extra);

	cr_assert(n > 0 && (size_t)n < sizeof(req));
	cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
}

/* The whole reply to a request sent with "Connection: close", up to the
 * server's close, into buf (NUL-terminated).  Returns its length. */
static size_t
read_reply(int fd, char *buf, size_t max)
{
	size_t len = 0;
	ssize_t n;

	while ((n = recv(fd, buf + len, max - 1 - len, 0)) > 0)
		len += (size_t)n;
	cr_assert_eq(n, 0, "reply cut short or not ended: %s",
		     n < 0 ? strerror(errno) : "more than expected");
	buf[len] = '\0';
	return len;
}

/* One request on a connection of its own from address from: its reply. */
static size_t
request(const char *from, const char *method, const char *hex,
	const char *extra, char *buf, size_t max)
{
	char hdrs[256];
	int fd = connect_from(from, 0);
	size_t len;

	snprintf(hdrs, sizeof(hdrs), "%.200sConnection: close\r\n", extra);
	ask(fd, method, hex, hdrs);
	len = read_reply(fd, buf, max);
	close(fd);
	return len;
}

static int
status_of(const char *reply)
{
	int status = 0;

	cr_assert_eq(sscanf(reply, "HTTP/1.1 %d ", &status), 1,
		     "not an HTTP reply: %.40s", reply);
	return status;
}

/* The value of header name in reply ("" if there is none), into out. */
static const char *
header(const char *reply, const char *name, char *out, size_t max)
{
	const char *end = strstr(reply, "\r\n\r\n");
	size_t nlen = strlen(name);

	out[0] = '\0';
	for (const char *p = strstr(reply, "\r\n"); p != NULL && p < end;
	     p = strstr(p + 2, "\r\n")) {
		const char *v = p + 2 + nlen, *eol;

		if (strncasecmp(p + 2, name, nlen) != 0 || *v != ':')
			continue;
		v += strspn(v + 1, " ") + 1;
		eol = strstr(v, "\r\n");
		snprintf(out, max, "%.*s", (int)(eol - v), v);
		break;
	}
	return out;
}

/* Where the body starts (after the blank line ending the headers). */
static size_t
body_at(const char *reply)
{
	const char *end = strstr(reply, "\r\n\r\n");

	cr_assert(end != NULL, "no end of headers");
	return (size_t)(end + 4 - reply);
}

/* A HEAD of hex (with header lines extra) answers what a GET does, with
 * the same headers, and sends no body. */
static void
head_is_get(const char *extra, int want_status, const char *want_length,
	    const char *want_range)
{
	static const char *same[] = {
		"Content-Length", "Content-Range", "Accept-Ranges",
		"Content-Type", "Cache-Control",
	};
	static char get[REPLY_MAX], head[REPLY_MAX];
	char hdrs[256], gv[128], hv[128];
	size_t glen, hlen;

	/* the last resort: a second GET within the window is not refused */
	snprintf(hdrs, sizeof(hdrs), "%s: 1\r\n%s", FETCH_LAST_RESORT_HDR,
		 extra);
	glen = request("127.0.0.1", "GET", small_hex, hdrs, get, sizeof(get));
	hlen = request("127.0.0.1", "HEAD", small_hex, extra, head,
		       sizeof(head));
	cr_assert_eq(status_of(get), want_status);
	cr_assert_str_eq(header(get, "Content-Length", gv, sizeof(gv)),
			 want_length);
	cr_assert_str_eq(header(get, "Content-Range", gv, sizeof(gv)),
			 want_range);
	cr_assert_eq(glen - body_at(get), strtoull(want_length, NULL, 10));
	cr_assert_eq(status_of(head), want_status, "HEAD: %d, GET: %d",
		     status_of(head), want_status);
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
		cr_assert_str_eq(header(head, same[i], hv, sizeof(hv)),
				 header(get, same[i], gv, sizeof(gv)),
				 "%s: HEAD says \"%s\", GET \"%s\"", same[i],
				 hv, gv);
	cr_assert_eq(hlen, body_at(head), "a HEAD was sent %zu body bytes",
		     hlen - body_at(head));
}

Test(objsrv, a_head_says_what_the_get_would_without_the_body)
{
	char len[32];

	snprintf(len, sizeof(len), "%u", SMALL);
	head_is_get("", 200, len, "");
}

Test(objsrv, a_head_with_a_range_says_what_the_get_would_without_the_body)
{
	char range[64];

	snprintf(range, sizeof(range), "bytes 100-1123/%u", SMALL);
	head_is_get("Range: bytes=100-1123\r\n", 206, "1024", range);
}

/* The connections of a peer that asks for the big chunk on each and reads
 * nothing: each holds an upload slot while its reply is in flight. */
static int greedy[MAX_UPLOADS];

/* Has every greedy connection got its reply's status line? */
static bool
greedy_answered(void *arg)
{
	char line[16];

	(void)arg;
	for (int i = 0; i < MAX_UPLOADS; i++)
		if (recv(greedy[i], line, 12, MSG_PEEK | MSG_DONTWAIT) != 12)
			return false;
	return true;
}

/* Is the address greedy used served again (its slots given back)? */
static bool
greedy_served_again(void *arg)
{
	static char reply[REPLY_MAX];
	char hdrs[64];

	(void)arg;
	snprintf(hdrs, sizeof(hdrs), "%s: 1\r\n", FETCH_LAST_RESORT_HDR);
	request("127.0.0.2", "GET", small_hex, hdrs, reply, sizeof(reply));
	return status_of(reply) == 200;
}

Test(objsrv, one_slow_asker_cannot_take_every_upload_slot)
{
	static char reply[REPLY_MAX];
	char hdrs[64], line[16];
	size_t len;
	int held = 0;

	/* says it is the last resort, which every asker can say: the chunk's
	 * spread does not stop it, only the upload slots do */
	snprintf(hdrs, sizeof(hdrs), "%s: 1\r\n", FETCH_LAST_RESORT_HDR);
	for (int i = 0; i < MAX_UPLOADS; i++) {
		greedy[i] = connect_from("127.0.0.2", 4096);
		ask(greedy[i], "GET", big_hex, hdrs);
	}
	cr_assert(tu_poll(10000, greedy_answered, NULL),
		  "the greedy asker's requests were not all answered");
	for (int i = 0; i < MAX_UPLOADS; i++) {
		cr_assert_eq(recv(greedy[i], line, 12, MSG_PEEK), 12);
		line[12] = '\0';
		if (strcmp(line, "HTTP/1.1 200") == 0)
			held++;
	}

	/* another peer, whose only source this is, is served meanwhile */
	len = request("127.0.0.3", "GET", small_hex, hdrs, reply,
		      sizeof(reply));
	cr_assert_eq(status_of(reply), 200, "another peer was refused while "
		     "one held %d uploads", held);
	cr_assert_eq(len - body_at(reply), SMALL);
	cr_assert(held <= MAX_UPLOADS / 2, "one address holds %d of %d upload "
		  "slots", held, MAX_UPLOADS);
	/* ... but a fetcher's parallel transfers to one source all fit */
	cr_assert(held >= FETCH_PARALLEL, "one address was sent only %d at "
		  "once, a fetcher asks for %d", held, FETCH_PARALLEL);

	/* gone, its slots are free again for it as for anyone */
	for (int i = 0; i < MAX_UPLOADS; i++)
		close(greedy[i]);
	cr_assert(tu_poll(10000, greedy_served_again, NULL),
		  "the slots of closed connections were not given back");
}

/* A request with a body is answered 400, with why, not an empty reply. */
Test(objsrv, a_request_with_a_body_gets_400)
{
	char buf[4096];
	int fd = connect_from("127.0.0.1", 0);

	ask(fd, "POST", small_hex, "Content-Length: 5\r\nConnection: close\r\n");
	cr_assert_eq(send(fd, "hello", 5, MSG_NOSIGNAL), 5);
	read_reply(fd, buf, sizeof(buf));
	close(fd);
	cr_assert_eq(status_of(buf), 400, "%.200s", buf);
	cr_assert(strstr(buf, "no request body expected") != NULL, "%s", buf);
	fd = connect_from("127.0.0.1", 0);
	ask(fd, "GET", small_hex, "Transfer-Encoding: chunked\r\n"
	    "Connection: close\r\n");
	cr_assert_eq(send(fd, "5\r\nhello\r\n0\r\n\r\n", 15, MSG_NOSIGNAL), 15);
	read_reply(fd, buf, sizeof(buf));
	close(fd);
	cr_assert_eq(status_of(buf), 400, "%.200s", buf);
}

static long
served_connections(void)
{
	char buf[1 << 16];
	const char *p;
	int fd = connect_from("127.0.3.1", 0);
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: t\r\n"
				  "Connection: close\r\n\r\n";

	cr_assert_eq(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL),
		     (ssize_t)sizeof(req) - 1);
	read_reply(fd, buf, sizeof(buf));
	close(fd);
	p = strstr(buf, "\nfedfs_served_connections ");
	return p != NULL ? strtol(p + 26, NULL, 10) : -1;
}

static bool
flood_in(void *arg)
{
	(void)arg;
	return served_connections() >= 960;
}

/* 16 addresses holding 64 idle connections each fill every slot; a peer
 * that comes next is still served, in full, and so is the next one. */
Test(objsrv, a_flood_of_idle_connections_from_16_addresses_leaves_room_for_a_peer)
{
	static int flood[16 * 64];
	char buf[1 << 20], from[32];
	struct err e;

	/* the server's limits follow the fd limit: restart it raised */
	objsrv_stop(srv);
	proc_raise_nofile();
	cr_assert_eq(objsrv_start("127.0.0.1:0", store, NULL, NULL, &srv, &e),
		     0, "%s", e.msg);
	for (int a = 0; a < 16; a++) {
		snprintf(from, sizeof(from), "127.0.1.%d", a + 1);
		for (int k = 0; k < 64; k++)
			flood[a * 64 + k] = connect_from(from, 0);
	}
	cr_assert(tu_poll(10000, flood_in, NULL), "the flood is not in: %ld",
		  served_connections());
	for (int i = 0; i < 2; i++) {
		snprintf(from, sizeof(from), "127.0.2.%d", i + 1);
		/* a chunk each: a second send of one within its window
		 * would be told busy, as it should */
		request(from, "GET", i == 0 ? big_hex : small_hex, "", buf,
			sizeof(buf));
		cr_assert_eq(status_of(buf), 200, "%.200s", buf);
	}
	for (size_t i = 0; i < sizeof(flood) / sizeof(flood[0]); i++)
		close(flood[i]);
}
