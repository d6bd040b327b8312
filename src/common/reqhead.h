/*
 * reqhead.h - the head of an HTTP/1.x request to a proxy, read strictly.
 *
 * `fed proxy` reads request heads from any program on the network; this is
 * the part that parses those untrusted bytes, kept free of sockets so it
 * can be tested and fuzzed on its own (tests/unit/test_reqhead.c,
 * fuzz/fuzz_reqhead.c).
 *
 * Accepted: a request line `METHOD SP TARGET SP HTTP/1.0|HTTP/1.1 CRLF`
 * where METHOD is upper-case letters and TARGET is either an absolute
 * http:// URL (plain forwarding) or, for CONNECT, host:port (a tunnel);
 * then header lines.  Every line ends in CRLF and nowhere else, and no
 * header line is folded: a bare CR or LF, or a continuation line, could be
 * read differently by the next hop than by us (request smuggling), so
 * such a head is refused rather than repaired.
 */
#ifndef FED_REQHEAD_H
#define FED_REQHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/manifest.h"

struct reqhead {
	char method[16];
	char host[MANIFEST_HOST_MAX + 1];	/* a DNS name or IPv4 */
	uint16_t port;			/* 80 for http:// without one */
	const char *path;		/* into the head ("/" if none) */
	size_t path_len;
	const char *version;		/* into the head, 8 bytes */
	bool tunnel;			/* CONNECT */
};

/*
 * Parse head[0, len), which ends with the empty line ("\r\n\r\n") and
 * holds no NUL byte.  Returns 0 with r filled (its pointers point into
 * head), or -1 with e saying what is wrong, for a 400 reply.
 */
int reqhead_parse(const char *head, size_t len, struct reqhead *r,
		  struct err *e);

#endif
