/*
 * test_reqhead.c - the proxy's request-head parser on what browsers and
 * curl send, and on what an attacker might (common/reqhead.c).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "common/reqhead.h"

static int
parse(const char *head, struct reqhead *r, struct err *e)
{
	return reqhead_parse(head, strlen(head), r, e);
}

Test(reqhead, absolute_http_target)
{
	struct reqhead r;
	struct err e;

	cr_assert_eq(parse("GET http://www.example.org/a/b?c=1 HTTP/1.1\r\n"
			   "Host: www.example.org\r\nUser-Agent: curl\r\n\r\n",
			   &r, &e), 0, "%s", e.msg);
	cr_expect_str_eq(r.method, "GET");
	cr_expect_str_eq(r.host, "www.example.org");
	cr_expect_eq(r.port, 80);
	cr_expect_eq(r.path_len, strlen("/a/b?c=1"));
	cr_expect_eq(strncmp(r.path, "/a/b?c=1", r.path_len), 0);
	cr_expect_eq(strncmp(r.version, "HTTP/1.1", 8), 0);
	cr_expect_not(r.tunnel);
}

Test(reqhead, port_and_no_path)
{
	struct reqhead r;
	struct err e;

	cr_assert_eq(parse("POST HTTP://blog.example.org:8080 HTTP/1.0\r\n\r\n",
			   &r, &e), 0, "%s", e.msg);
	cr_expect_str_eq(r.host, "blog.example.org");
	cr_expect_eq(r.port, 8080);
	cr_expect_eq(r.path_len, 1);
	cr_expect_eq(r.path[0], '/');
}

Test(reqhead, connect)
{
	struct reqhead r;
	struct err e;

	cr_assert_eq(parse("CONNECT www.example.org:443 HTTP/1.1\r\n"
			   "Host: www.example.org:443\r\n\r\n", &r, &e), 0,
		     "%s", e.msg);
	cr_expect(r.tunnel);
	cr_expect_str_eq(r.host, "www.example.org");
	cr_expect_eq(r.port, 443);
}

/* each refusal names what is wrong */
static void
refused(const char *head, const char *why)
{
	struct reqhead r;
	struct err e;

	cr_assert_eq(parse(head, &r, &e), -1, "accepted: %s", head);
	cr_expect(strstr(e.msg, why) != NULL, "'%s' does not say '%s'", e.msg,
		  why);
}

Test(reqhead, refusals)
{
	refused("GET http://a.org/ HTTP/1.1\r\n", "empty line");
	refused("GET http://a.org/ HTTP/1.1\r\nX: a\nY: b\r\n\r\n", "bare CR or LF");
	refused("GET http://a.org/ HTTP/1.1\r\nX: a\rY: b\r\n\r\n", "bare CR or LF");
	refused("GET http://a.org/ HTTP/1.1\r\nX: a\r\n b\r\n\r\n", "folded");
	refused("GET http://a.org/ HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", "folded");
	refused("GET http://a.org/\r\n\r\n", "malformed request line");
	refused("GET http://a.org/ HTTP/2.0\r\n\r\n", "malformed request line");
	refused("GET  http://a.org/ HTTP/1.1\r\n\r\n", "malformed request line");
	refused("get http://a.org/ HTTP/1.1\r\n\r\n", "bad method");
	refused("ABCDEFGHIJKLMNOPQ http://a.org/ HTTP/1.1\r\n\r\n", "bad method");
	refused("GET /local HTTP/1.1\r\nHost: a.org\r\n\r\n", "absolute http://");
	refused("GET https://a.org/ HTTP/1.1\r\n\r\n", "absolute http://");
	refused("GET http://a.org/\x01 HTTP/1.1\r\n\r\n", "control character");
	refused("CONNECT a\xfd.org:443 HTTP/1.1\r\n\r\n", "non-ASCII");
	refused("CONNECT a.org HTTP/1.1\r\n\r\n", "host:port");
	refused("CONNECT a.org:99999 HTTP/1.1\r\n\r\n", "request target");
	refused("GET http://a_b.org/ HTTP/1.1\r\n\r\n", "request target");
	refused("GET http:///x HTTP/1.1\r\n\r\n", "bad host");
}

Test(reqhead, nul_byte)
{
	const char head[] = "GET http://a.org/\0 HTTP/1.1\r\n\r\n";
	struct reqhead r;
	struct err e;

	cr_expect_eq(reqhead_parse(head, sizeof(head) - 1, &r, &e), -1);
	cr_expect(strstr(e.msg, "NUL") != NULL, "%s", e.msg);
}

Test(reqhead, long_host_is_refused_not_truncated)
{
	char head[600];
	struct reqhead r;
	struct err e;

	memset(head, 0, sizeof(head));
	strcpy(head, "GET http://");
	memset(head + strlen(head), 'a', 300);
	strcat(head, ".org/ HTTP/1.1\r\n\r\n");
	cr_expect_eq(parse(head, &r, &e), -1);
}
