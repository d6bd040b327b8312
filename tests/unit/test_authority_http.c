/*
 * test_authority_http.c - hostile and broken requests: malformed JSON,
 * wrong types, unknown paths and methods, bodies over the cap (announced or
 * chunked), non-hex ids, path tricks ('..', '%2e%2e', encoded and raw NUL),
 * garbage on the socket, too many connections from one address.  Each must
 * get a clean 4xx (JSON where the authority answers itself), and the server
 * must answer /healthz afterwards.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/http.h"
#include "lib/authfix.h"
#include "lib/testutil.h"

static struct authfix F;

static void
setup(void)
{
	authfix_start(&F, NULL);
}

static void
teardown(void)
{
	cr_expect(authfix_alive(&F), "the server must still answer");
	authfix_stop(&F);
}

TestSuite(http, .init = setup, .fini = teardown, .timeout = 60);

/* Status and error of a raw reply. */
static void
expect_raw(long st, char *text, long want, const char *words)
{
	json_t *j = json_loads(text ? text : "", 0, NULL);

	cr_expect_not_null(j, "reply to a %ld is not JSON: %s", st,
			   text ? text : "");
	af_expect(st, j, want, words);
	free(text);
}

/* A signed request with this exact body text. */
static void
signed_body(const char *method, const char *path, const char *body,
	    long want, const char *words)
{
	struct tkey k;
	char *text;
	long st;

	tkey_new(&k);
	st = af_signed_raw(&F, &k, time(NULL), method, path, body, &text);
	expect_raw(st, text, want, words);
}

Test(http, malformed_json)
{
	static const char *const bodies[] = {
		"{", "{\"addr\":}", "not json", "{\"addr\":\"a:1\",}",
		"\xff\xfe{}", "{\"addr\":\"a:1\"} trailing",
	};
	static const char *const paths[] = {
		"/v1/peers", "/v1/trusted", "/v1/snapshots", "/v1/commitments",
		"/v1/reports",
	};
	size_t i, j;

	for (j = 0; j < sizeof(paths) / sizeof(paths[0]); j++)
		for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
			if (j == 1)	/* admin-only: 403 before the body */
				continue;
			signed_body("POST", paths[j], bodies[i], 400,
				    "body is not JSON");
		}
}

Test(http, bodies_that_are_not_objects)
{
	signed_body("POST", "/v1/peers", "[]", 400, "must be a JSON object");
	signed_body("POST", "/v1/peers", "\"x\"", 400, "must be a JSON object");
	signed_body("POST", "/v1/peers", "42", 400, "must be a JSON object");
	signed_body("POST", "/v1/peers", "", 400, "a JSON body is required");
	signed_body("POST", "/v1/peers",
		    "{\"addr\":\"a.b:1\",\"addr\":\"c.d:2\"}", 400,
		    "duplicate");
}

Test(http, wrong_types)
{
	signed_body("POST", "/v1/peers", "{\"addr\":7000}", 400,
		    "'addr' must be a string");
	signed_body("POST", "/v1/peers", "{\"addr\":\"no-port\"}", 400,
		    "'addr'");
	signed_body("POST", "/v1/peers", "{\"addr\":\"a\\u0000b:1\"}", 400,
		    "NUL");
	signed_body("POST", "/v1/snapshots",
		    "{\"manifest\":1,\"signature\":\"00\"}", 400,
		    "'manifest' must be a string");
	signed_body("POST", "/v1/snapshots",
		    "{\"manifest\":\"{}\",\"signature\":\"00\"}", 400,
		    "'signature' must be 128 hex digits");
	signed_body("POST", "/v1/commitments", "{\"snapshot\":12}", 400,
		    "'snapshot' must be a string");
	signed_body("POST", "/v1/commitments", "{\"snapshot\":\"abc\"}", 400,
		    "64 lower-case hex");
	signed_body("POST", "/v1/commitments",
		    "{\"snapshot\":\"" "0000000000000000000000000000000000000000000000000000000000000000"
		    "\",\"up\":\"yes\"}", 400, "'up' must be true or false");
	signed_body("POST", "/v1/reports",
		    "{\"service\":\"a.b:1\",\"peer\":\"" "0000000000000000000000000000000000000000000000000000000000000000"
		    "\",\"reason\":5}", 400, "'reason' must be a string");
	signed_body("POST", "/v1/reports",
		    "{\"service\":[],\"peer\":\"x\",\"reason\":\"r\"}", 400,
		    "'service' must be a string");
}

Test(http, unknown_paths)
{
	static const char *const paths[] = {
		"/v1", "/v1/", "/v2/peers", "/index.html", "/v1/peers/x/y", "/v1/unknown",
		"//v1/peers", "/v1/peers/", "/healthz/x", "/v1/services/a.b:1",
		"/v1/services//peers",
	};
	size_t i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		char *text;
		long st = af_raw(&F, "GET", paths[i], NULL, 0, NULL, &text);

		expect_raw(st, text, 404, "no such endpoint");
	}
}

/* GET / is the dashboard: the page, which puts data in as text only */
Test(http, dashboard_page)
{
	char *text;
	long st = af_raw(&F, "GET", "/", NULL, 0, NULL, &text);

	cr_assert_eq(st, 200);
	cr_assert(strstr(text, "<title>fed federation</title>") != NULL);
	cr_assert(strstr(text, "/v1/snapshots") != NULL);
	cr_assert(strstr(text, "innerHTML") == NULL, "data must go in as text");
	free(text);
	st = af_raw(&F, "POST", "/", NULL, 0, NULL, &text);
	cr_assert_eq(st, 405);
	free(text);
}

Test(http, wrong_methods)
{
	struct http_reply r;
	char url[128];
	struct err e;
	char *text;
	long st;

	st = af_raw(&F, "DELETE", "/v1/peers", NULL, 0, NULL, &text);
	expect_raw(st, text, 405, "not allowed");
	st = af_raw(&F, "PATCH", "/v1/lookup", NULL, 0, NULL, &text);
	expect_raw(st, text, 405, "not allowed");
	st = af_raw(&F, "GET", "/v1/commitments", NULL, 0, NULL, &text);
	expect_raw(st, text, 405, "allowed: POST");
	/* the Allow header says what is */
	snprintf(url, sizeof(url), "%s/v1/trusted", F.url);
	{
		const char *h[] = { NULL };

		cr_assert_eq(http_request("PUT", url, h, NULL, 0, 5000, 0, &r,
					  &e), 0, "%s", e.msg);
		cr_assert_eq(r.status, 405);
		cr_assert(strstr(r.body, "GET, HEAD, POST") != NULL, "%s",
			  r.body);
		http_reply_free(&r);
	}
}

Test(http, oversized_bodies)
{
	size_t n = (1u << 20) + 1;
	char *big = malloc(n);
	const char *chunked[] = { "Transfer-Encoding: chunked", NULL };
	char *text;
	long st;

	memset(big, ' ', n);
	st = af_raw(&F, "POST", "/v1/peers", big, n, NULL, &text);
	expect_raw(st, text, 413, "too large");
	st = af_raw(&F, "POST", "/v1/snapshots", big, n, chunked, &text);
	expect_raw(st, text, 413, "too large");
	/* just under the cap is read (and refused for what it is) */
	st = af_raw(&F, "POST", "/v1/peers", big, n - 1, NULL, &text);
	expect_raw(st, text, 401, "must be signed");
	free(big);
}

Test(http, non_hex_ids)
{
	static const char *const paths[] = {
		"/v1/peers/xyz",
		"/v1/peers/ABCDEF0000000000000000000000000000000000000000000000000000000000",
		"/v1/peers/000000000000000000000000000000000000000000000000000000000000000",
		"/v1/peers/00000000000000000000000000000000000000000000000000000000000000000",
		"/v1/snapshots/g000000000000000000000000000000000000000000000000000000000000000",
		"/v1/trusted/%20",
		"/v1/sources/0x00",
	};
	size_t i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		char *text;
		long st = af_raw(&F, "GET", paths[i], NULL, 0, NULL, &text);

		expect_raw(st, text, 400, "64 lower-case hex");
	}
	signed_body("PUT", "/v1/commitments/zz", "{}", 400,
		    "64 lower-case hex");
	signed_body("DELETE", "/v1/commitments/zz", "", 400,
		    "64 lower-case hex");
}

Test(http, path_tricks)
{
	static const char *const dots[] = {
		"/v1/peers/..", "/v1/peers/.", "/v1/peers/%2e%2e",
		"/v1/peers/%2E%2E", "/v1/%2e%2e/v1/peers", "/v1/peers/../trusted",
		"/v1/peers/..%2f..%2fetc%2fpasswd", "/v1/services/../peers",
	};
	static const char *const nuls[] = {
		"/v1/trusted/ab%00cd", "/v1/peers/%00", "/healthz%00",
		"/v1/lookup%00?host=a&port=1",
		/* in the query: the value would end at the NUL */
		"/v1/lookup?host=www.example.org%00.evil&port=80",
	};
	size_t i;

	for (i = 0; i < sizeof(dots) / sizeof(dots[0]); i++) {
		char *text;
		long st;

		/* curl would normalise "..": send the target as is */
		st = af_raw(&F, "GET", dots[i], NULL, 0, NULL, &text);
		if (st == 400)
			expect_raw(st, text, 400, "bad path");
		else
			expect_raw(st, text, 404, "no such endpoint");
	}
	for (i = 0; i < sizeof(nuls) / sizeof(nuls[0]); i++) {
		char *text;
		long st = af_raw(&F, "GET", nuls[i], NULL, 0, NULL, &text);

		expect_raw(st, text, 400, "encoded NUL");
	}
	{
		/* a path of bytes that are not UTF-8: 404 that says so, not
		 * a 500 "out of memory" from quoting them into JSON */
		char *text;
		long st = af_raw(&F, "GET", "/v1/%ff%fe", NULL, 0, NULL, &text);

		expect_raw(st, text, 404, "no such endpoint");
	}
}

/* Send raw bytes on a new connection; the reply's first line. */
static void
raw_exchange(const void *req, size_t len, char *line, size_t size)
{
	struct sockaddr_in sa;
	char buf[4096];
	ssize_t n;
	size_t got = 0;
	struct timeval tv = { 5, 0 };
	int fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(F.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cr_assert_eq(write(fd, req, len), (ssize_t)len);
	while (got < sizeof(buf) - 1 &&
	       (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fd);
	snprintf(line, size, "%.*s", (int)strcspn(buf, "\r\n"), buf);
}

Test(http, garbage_on_the_socket)
{
	static const char nul_req[] = "GET /v1/peers/\0/x HTTP/1.1\r\n"
				      "Host: x\r\n\r\n";
	static const char ctl_req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n"
				      "X-Fed-Key: \x01\x02\r\n"
				      "Connection: close\r\n\r\n";
	static const char ok_req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n"
				     "Connection: close\r\n\r\n";
	char line[256];

	raw_exchange("GARBAGE\r\n\r\n", 11, line, sizeof(line));
	cr_expect(strncmp(line, "HTTP/1.1 4", 10) == 0 || line[0] == '\0',
		  "garbage: '%s'", line);
	raw_exchange(nul_req, sizeof(nul_req) - 1, line, sizeof(line));
	cr_expect(strncmp(line, "HTTP/1.1 4", 10) == 0 || line[0] == '\0',
		  "raw NUL: '%s'", line);
	raw_exchange(ctl_req, strlen(ctl_req), line, sizeof(line));
	cr_expect(strncmp(line, "HTTP/1.1 ", 9) == 0, "'%s'", line);
	{
		char big[9000];

		memcpy(big, "GET /", 5);
		memset(big + 5, 'a', sizeof(big) - 5);
		memcpy(big + sizeof(big) - 15, " HTTP/1.1\r\n\r\n", 14);
		raw_exchange(big, sizeof(big) - 1, line, sizeof(line));
		cr_expect(strncmp(line, "HTTP/1.1 4", 10) == 0 ||
			  line[0] == '\0', "long URI: '%s'", line);
	}
	raw_exchange(ok_req, strlen(ok_req), line, sizeof(line));
	cr_expect_str_eq(line, "HTTP/1.1 200 OK");
}

Test(http, head_healthz)
{
	cr_assert_eq(af_raw(&F, "HEAD", "/healthz", NULL, 0, NULL, NULL), 200);
}

/* GET /healthz without asserting: true iff it answered 200 (a tu_poll
 * condition; arg is the struct authfix). */
static bool
probe(void *arg)
{
	struct authfix *f = arg;
	struct http_reply r;
	char url[128];
	struct err e;
	bool ok;

	snprintf(url, sizeof(url), "%s/healthz", f->url);
	if (http_request("GET", url, NULL, NULL, 0, 2000, 0, &r, &e) == -1)
		return false;
	ok = r.status == 200;
	http_reply_free(&r);
	return ok;
}

Test(http, per_ip_connection_limit)
{
	struct authority_config c;
	struct sockaddr_in sa;
	struct authfix g;
	int fds[6], i, refused = 0;

	authority_config_defaults(&c);
	c.per_ip_limit = 3;
	c.threads = 1;
	authfix_start(&g, &c);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(g.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < 6; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		cr_assert_eq(connect(fds[i], (struct sockaddr *)&sa,
				     sizeof(sa)), 0);
	}
	/* The connections past the limit are closed by the server: a read
	 * on them sees EOF (or a reset) quickly. */
	for (i = 0; i < 6; i++) {
		struct pollfd p = { fds[i], POLLIN, 0 };
		char ch;

		if (poll(&p, 1, i < 3 ? 100 : 3000) == 1 &&
		    read(fds[i], &ch, 1) <= 0)
			refused++;
	}
	cr_expect_eq(refused, 3, "%d connections refused", refused);
	for (i = 0; i < 6; i++)
		close(fds[i]);
	/* once they are gone, new ones are served */
	cr_assert(tu_poll(10000, probe, &g), "not served 10 s after the "
		  "other connections closed");
	authfix_stop(&g);
}
