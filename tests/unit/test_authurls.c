/*
 * test_authurls.c - a client's list of authorities (src/common/authurls.c)
 * and the failover in authority_call (src/common/http.c), against real
 * HTTP servers on loopback: a port nobody listens on, one that accepts and
 * never answers, one that answers 503 with Retry-After, one that answers
 * 404, and one that answers 200 and checks the request's signature.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/authurls.h"
#include "common/crypto.h"
#include "common/http.h"
#include "common/sigreq.h"

struct srv {
	struct MHD_Daemon *d;
	unsigned status;	/* what it answers */
	atomic_int hits;	/* requests it saw */
	atomic_int bad_sig;	/* signed requests that did not verify */
	unsigned port;
};

static struct srv S503, S404, SOK;
static int stall_fd = -1;
static unsigned dead_port, stall_port;

static enum MHD_Result
srv_answer(void *cls, struct MHD_Connection *c, const char *url,
	   const char *method, const char *version, const char *upload,
	   size_t *upload_len, void **state)
{
	struct srv *s = cls;
	char body[128];
	const char *sig;
	struct MHD_Response *r;
	enum MHD_Result rc;
	struct err e;

	(void)version; (void)upload; (void)upload_len; (void)state;
	atomic_fetch_add(&s->hits, 1);
	sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, SIGREQ_HDR_SIG);
	if (sig != NULL &&
	    sigreq_verify(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						      SIGREQ_HDR_KEY),
			  MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						      SIGREQ_HDR_DATE),
			  sig, method, url, "", 0, time(NULL), NULL,
			  &e) != SIGREQ_OK)
		atomic_fetch_add(&s->bad_sig, 1);
	snprintf(body, sizeof(body), "{\"port\":%u}", s->port);
	r = MHD_create_response_from_buffer(strlen(body), body,
					    MHD_RESPMEM_MUST_COPY);
	if (s->status == 503)
		MHD_add_response_header(r, "Retry-After", "1");
	rc = MHD_queue_response(c, s->status, r);
	MHD_destroy_response(r);
	return rc;
}

static void
srv_start(struct srv *s, unsigned status)
{
	const union MHD_DaemonInfo *i;

	s->status = status;
	atomic_store(&s->hits, 0);
	atomic_store(&s->bad_sig, 0);
	s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
				srv_answer, s, MHD_OPTION_END);
	cr_assert_not_null(s->d);
	i = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = i->port;
}

/* A bound loopback socket's port; listening (and never accepting) if
 * listen_it, else closed again so nobody listens there. */
static unsigned
loopback_port(bool listen_it, int *fd_out)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(fd >= 0 && bind(fd, (void *)&a, sizeof(a)) == 0);
	cr_assert(getsockname(fd, (void *)&a, &al) == 0);
	if (listen_it)
		cr_assert(listen(fd, 16) == 0);
	if (fd_out != NULL)
		*fd_out = fd;
	else
		close(fd);
	return ntohs(a.sin_port);
}

static void
setup(void)
{
	struct err e;

	cr_assert(crypto_init(&e) == 0);
	srv_start(&S503, 503);
	srv_start(&S404, 404);
	srv_start(&SOK, 200);
	dead_port = loopback_port(false, NULL);
	stall_port = loopback_port(true, &stall_fd);
}

static void
teardown(void)
{
	MHD_stop_daemon(S503.d);
	MHD_stop_daemon(S404.d);
	MHD_stop_daemon(SOK.d);
	close(stall_fd);
}

TestSuite(authurls, .init = setup, .fini = teardown, .timeout = 60);

static void
expect_refused(const char *list, const char *words)
{
	struct authurls l;
	struct err e = { "" };

	cr_expect(authurls_parse(list, &l, &e) == -1, "accepted: %s", list);
	cr_expect(strstr(e.msg, words) != NULL, "%s: said \"%s\", not \"%s\"",
		  list, e.msg, words);
}

Test(authurls, parses_a_list)
{
	struct authurls l;
	struct err e;

	cr_assert(authurls_parse("http://a:1/,https://b//,http://c:3", &l,
				 &e) == 0, "%s", e.msg);
	cr_expect(l.n == 3);
	cr_expect_str_eq(l.url[0], "http://a:1");
	cr_expect_str_eq(l.url[1], "https://b");
	cr_expect_str_eq(l.url[2], "http://c:3");
	cr_assert(authurls_parse("http://only", &l, &e) == 0);
	cr_expect(l.n == 1);
}

Test(authurls, refuses_malformed_lists)
{
	char big[AUTHURLS_INPUT_MAX + 16], url[AUTHURLS_URL_MAX + 16];
	size_t i;

	expect_refused("", "empty");
	expect_refused("http://a,,http://b", "element 2 is empty");
	expect_refused("http://a,", "element 2 is empty");
	expect_refused(",http://a", "element 1 is empty");
	expect_refused("ftp://a", "not an http:// or https:// URL");
	expect_refused("a:8080", "not an http:// or https:// URL");
	expect_refused("http://", "not an http:// or https:// URL");
	expect_refused("http:///", "no host");
	expect_refused("http://a b", "space or control");
	expect_refused("http://a,http://b,http://c,http://d,http://e,"
		       "http://f,http://g,http://h,http://i", "more than 8");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "http://", 7);
	expect_refused(big, "longer than");
	memset(url, 'b', sizeof(url) - 1);
	url[sizeof(url) - 1] = '\0';
	memcpy(url, "http://", 7);
	expect_refused(url, "element 1 is longer than");
	for (i = 0; i < 3; i++)
		cr_expect(authurls_failover(0, 500 + (long)i));
	cr_expect(authurls_failover(-1, 0));
	cr_expect(!authurls_failover(0, 404));
	cr_expect(!authurls_failover(0, 409));
	cr_expect(!authurls_failover(0, 200));
}

/* Call list; return the status (-1 if the call failed) and the answering
 * server's port in *port. */
static long
call(const char *list, const uint8_t *seed, long timeout_ms, unsigned *port)
{
	json_t *reply = NULL;
	struct err e = { "" };
	long st = 0;

	*port = 0;
	if (authority_call_within(list, "GET", "/v1/x", NULL, seed,
				  timeout_ms, &st, &reply, &e) == -1)
		return -1;
	if (json_is_object(reply))
		*port = (unsigned)json_integer_value(json_object_get(reply,
								     "port"));
	json_decref(reply);
	return st;
}

Test(authurls, dead_and_503_fail_over_and_the_good_one_sticks)
{
	char list[256];
	unsigned port;

	snprintf(list, sizeof(list), "http://127.0.0.1:%u,http://127.0.0.1:%u,"
		 "http://127.0.0.1:%u", dead_port, S503.port, SOK.port);
	cr_assert(call(list, NULL, 2000, &port) == 200);
	cr_expect(port == SOK.port);
	cr_expect(atomic_load(&S503.hits) == 1);
	/* the next call starts with the one that answered */
	cr_assert(call(list, NULL, 2000, &port) == 200);
	cr_expect(port == SOK.port);
	cr_expect(atomic_load(&S503.hits) == 1, "asked the 503 one again");
	cr_expect(atomic_load(&SOK.hits) == 2);
}

Test(authurls, a_4xx_is_an_answer)
{
	char list[256];
	unsigned port;

	snprintf(list, sizeof(list), "http://127.0.0.1:%u,http://127.0.0.1:%u",
		 S404.port, SOK.port);
	cr_expect(call(list, NULL, 2000, &port) == 404);
	cr_expect(port == S404.port);
	cr_expect(atomic_load(&SOK.hits) == 0);
}

Test(authurls, all_down_gives_the_last_outcome)
{
	char list[256];
	unsigned port;

	snprintf(list, sizeof(list), "http://127.0.0.1:%u,http://127.0.0.1:%u",
		 dead_port, S503.port);
	cr_expect(call(list, NULL, 2000, &port) == 503);
	snprintf(list, sizeof(list), "http://127.0.0.1:%u,http://127.0.0.1:%u",
		 S503.port, dead_port);
	cr_expect(call(list, NULL, 2000, &port) == -1);
}

Test(authurls, a_stalled_one_costs_one_timeout)
{
	struct timespec a, b;
	char list[256];
	unsigned port;
	double s;

	snprintf(list, sizeof(list), "http://127.0.0.1:%u,http://127.0.0.1:%u",
		 stall_port, SOK.port);
	clock_gettime(CLOCK_MONOTONIC, &a);
	cr_assert(call(list, NULL, 500, &port) == 200);
	clock_gettime(CLOCK_MONOTONIC, &b);
	s = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	cr_expect(port == SOK.port);
	cr_expect(s >= 0.4 && s < 1.5, "took %.2f s for a 0.5 s timeout", s);
}

Test(authurls, a_signed_request_verifies_at_the_next_authority)
{
	uint8_t seed[ED25519_SEED_LEN], pub[ED25519_PUB_LEN];
	char list[256];
	unsigned port;
	struct err e;

	cr_assert(ed25519_keygen(seed, pub, &e) == 0);
	snprintf(list, sizeof(list), "http://127.0.0.1:%u,http://127.0.0.1:%u",
		 S503.port, SOK.port);
	cr_assert(call(list, seed, 2000, &port) == 200);
	cr_expect(port == SOK.port);
	cr_expect(atomic_load(&S503.hits) == 1);
	cr_expect(atomic_load(&SOK.bad_sig) == 0, "signature did not verify");
	cr_expect(atomic_load(&S503.bad_sig) == 0);
}

Test(authurls, known_down_urls_are_tried_last)
{
	const char *l = "http://a,http://b,http://c";
	size_t o[3];

	authurls_order(l, 3, o);
	cr_expect(o[0] == 0 && o[1] == 1 && o[2] == 2);
	authurls_result(l, 0, false);
	authurls_result(l, 1, true);
	authurls_order(l, 3, o);
	cr_expect(o[0] == 1 && o[1] == 2 && o[2] == 0, "%zu %zu %zu", o[0],
		  o[1], o[2]);
	/* the one that answered dies too: the third before the dead first */
	authurls_result(l, 1, false);
	authurls_order(l, 3, o);
	cr_expect(o[0] == 2, "%zu %zu %zu", o[0], o[1], o[2]);
	authurls_result(l, 0, true);
	authurls_order(l, 3, o);
	cr_expect(o[0] == 0 && o[1] == 2 && o[2] == 1, "%zu %zu %zu", o[0],
		  o[1], o[2]);
}
