/*
 * reqhead.c - strict parsing of a proxy request's head (see reqhead.h).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/reqhead.h"

/* "host[:port]" of length len (port dflt when absent) into r. */
static int
reqhead_authority(struct reqhead *r, const char *s, size_t len,
		  uint16_t dflt, struct err *e)
{
	char buf[MANIFEST_HOST_MAX + 8];

	if (len == 0 || len > MANIFEST_HOST_MAX + 6)
		return err_set(e, "bad host in the request target");
	if (memchr(s, ':', len) != NULL)
		snprintf(buf, sizeof(buf), "%.*s", (int)len, s);
	else
		snprintf(buf, sizeof(buf), "%.*s:%u", (int)len, s, dflt);
	if (service_parse(buf, r->host, &r->port, e) == -1)
		return err_wrap(e, "request target '%s'", buf);
	return 0;
}

int
reqhead_parse(const char *head, size_t len, struct reqhead *r,
	      struct err *e)
{
	const char *p = head, *sp1, *sp2, *eol, *t, *slash;
	size_t mlen, tlen;

	memset(r, 0, sizeof(*r));
	if (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) != 0)
		return err_set(e, "the request head does not end with an "
			       "empty line");
	if (memchr(head, '\0', len) != NULL)
		return err_set(e, "NUL byte in the request head");
	for (size_t i = 0; i + 2 < len; i++)
		if ((p[i] == '\r' && p[i + 1] != '\n') ||
		    (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')) ||
		    (p[i] == '\n' && (p[i + 1] == ' ' || p[i + 1] == '\t')))
			return err_set(e, "bare CR or LF, or a folded header "
				       "line, in the request head");

	eol = memmem(p, len, "\r\n", 2);	/* found: the head ends so */
	sp1 = memchr(p, ' ', (size_t)(eol - p));
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
	if (sp1 == NULL || sp2 == NULL || eol - sp2 - 1 != 8 ||
	    (strncmp(sp2 + 1, "HTTP/1.1", 8) != 0 &&
	     strncmp(sp2 + 1, "HTTP/1.0", 8) != 0))
		return err_set(e, "malformed request line (want METHOD "
			       "TARGET HTTP/1.x)");
	mlen = (size_t)(sp1 - p);
	if (mlen == 0 || mlen >= sizeof(r->method))
		return err_set(e, "bad method");
	for (t = p; t < sp1; t++)
		if (*t < 'A' || *t > 'Z')
			return err_set(e, "bad method");
	memcpy(r->method, p, mlen);
	r->method[mlen] = '\0';
	r->version = sp2 + 1;
	t = sp1 + 1;
	tlen = (size_t)(sp2 - t);
	for (size_t i = 0; i < tlen; i++)
		if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f)
			return err_set(e, "control character or non-ASCII byte "
				       "in the request target");

	if (strcmp(r->method, "CONNECT") == 0) {
		r->tunnel = true;
		if (memchr(t, ':', tlen) == NULL)
			return err_set(e, "CONNECT needs host:port");
		return reqhead_authority(r, t, tlen, 443, e);
	}
	if (tlen < 8 || strncasecmp(t, "http://", 7) != 0)
		return err_set(e, "want an absolute http:// target (or "
			       "CONNECT for https)");
	t += 7;
	tlen -= 7;
	slash = memchr(t, '/', tlen);
	if (reqhead_authority(r, t, slash ? (size_t)(slash - t) : tlen, 80,
			      e) == -1)
		return -1;
	r->path = slash ? slash : "/";
	r->path_len = slash ? tlen - (size_t)(slash - t) : 1;
	return 0;
}
