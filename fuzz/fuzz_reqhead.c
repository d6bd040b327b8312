/*
 * fuzz_reqhead.c - libFuzzer target for reqhead_parse(), the parser of
 * what any program sends to `fed proxy`.
 *
 * The input is one request head; the target adds the empty line that ends
 * it when missing, so most inputs reach the request-line checks.  An
 * accepted head must say something self-consistent: its pointers point
 * inside the input, the version is HTTP/1.0 or HTTP/1.1, the method is
 * upper-case letters, a path starts with '/' and holds no byte <= ' ', and
 * the host passes service_parse again.  A refusal carries one line of
 * printable ASCII.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/reqhead.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_require(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "accepted head breaks: %s\n", what);
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reqhead r;
	struct err e = { { 0 } };
	char *head, svc[MANIFEST_HOST_MAX + 8], host[MANIFEST_HOST_MAX + 1];
	size_t len = size;
	uint16_t port;

	if (size > 16384)
		return 0;
	if ((head = malloc(size + 4)) == NULL)
		return 0;
	memcpy(head, data, size);
	if (size < 4 || memcmp(head + size - 4, "\r\n\r\n", 4) != 0) {
		memcpy(head + size, "\r\n\r\n", 4);
		len += 4;
	}
	if (reqhead_parse(head, len, &r, &e) < 0) {
		fuzz_check_msg("reqhead_parse", e.msg);
		free(head);
		return 0;
	}
	fuzz_require(r.version >= head && r.version + 8 <= head + len,
		     "version outside the head");
	fuzz_require(memcmp(r.version, "HTTP/1.1", 8) == 0 ||
		     memcmp(r.version, "HTTP/1.0", 8) == 0, "version");
	fuzz_require(r.method[0] != '\0', "empty method");
	for (const char *m = r.method; *m; m++)
		fuzz_require(*m >= 'A' && *m <= 'Z', "method");
	if (!r.tunnel) {
		fuzz_require(r.path_len >= 1 && r.path[0] == '/', "path");
		fuzz_require(r.path_len == 1 ||
			     (r.path >= head && r.path + r.path_len <= head + len),
			     "path outside the head");
		for (size_t i = 0; i < r.path_len; i++)
			fuzz_require((unsigned char)r.path[i] > ' ', "path byte");
	}
	snprintf(svc, sizeof(svc), "%s:%u", r.host, r.port);
	fuzz_require(service_parse(svc, host, &port, &e) == 0 &&
		     strcmp(host, r.host) == 0 && port == r.port, "host");
	free(head);
	return 0;
}
