/*
 * http.h - the HTTP client every component uses to talk to the authority and
 * to peers, on libcurl.
 *
 * Two levels:
 *
 *   http_request()    one plain request: method, URL, optional body and
 *                     headers, bounded connect and total time, and a cap on
 *                     the reply's size (a bigger reply is an error, not a
 *                     truncated success).
 *   authority_call()  one request to the authority's REST API: the body is a
 *                     JSON object, the request is signed (docs/design.md "Keys and
 *                     signatures") when a seed is given, and the reply is
 *                     parsed as JSON.
 *
 * Each thread keeps one curl handle (and so its open connections) for its
 * lifetime, so a component that talks to the same server repeatedly reuses
 * the connection.  Proxies from the environment are not used: fed talks to
 * its peers directly.  libcurl is initialised once per process, on first
 * use (pthread_once); calling these from several threads at once is safe.
 */
#ifndef FED_HTTP_H
#define FED_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/crypto.h"
#include "common/err.h"

#define HTTP_CONNECT_TIMEOUT_MS 5000L	/* never more than the total */
#define HTTP_TIMEOUT_MS         30000L	/* default total time */
#define HTTP_REPLY_MAX          (16u << 20)	/* default reply cap */

struct http_reply {
	long status;			/* HTTP status, 0 if none */
	char *body;			/* malloc'd, NUL added (not counted) */
	size_t len;
};

/*
 * Send one request.  headers: NULL or a NULL-terminated array of
 * "Name: value" strings.  body may be NULL (len 0).  timeout_ms <= 0 means
 * HTTP_TIMEOUT_MS; max_reply 0 means HTTP_REPLY_MAX.
 *
 * Returns 0 when a reply arrived, whatever its status (r filled: the caller
 * owns r->body and releases it with http_reply_free), or -1 with e set on a
 * transport failure, a timeout or a reply over max_reply (r empty).
 */
int http_request(const char *method, const char *url,
		 const char *const *headers, const void *body, size_t len,
		 long timeout_ms, size_t max_reply, struct http_reply *r,
		 struct err *e);

/* Release r's body (r may be reused afterwards). */
void http_reply_free(struct http_reply *r);

/*
 * Call the authority at base_url ("http://host:port", no path) with method
 * and path ("/v1/...", with any query string).  body (may be NULL: no body)
 * is sent as compact JSON; it is not consumed.  With seed, the request is
 * signed with that key (X-Fed-Key, X-Fed-Date, X-Fed-Signature).
 *
 * A signed request refused as a replay (409, which the authority answers
 * before changing anything) is re-signed in the next second and sent once
 * more: two identical requests from one key within one second would
 * otherwise carry the same signature.  One refused as over this address's
 * rate of signed requests (429) is signed again and sent once more a
 * second later.
 *
 * Returns 0 when the authority answered, whatever the status: *status is
 * set and *reply (if reply is not NULL) is the parsed JSON reply (a new
 * reference the caller releases with json_decref; NULL if the body was
 * empty).  Returns -1 with e set when the authority could not be reached or
 * its reply is not JSON.
 */
int authority_call(const char *base_url, const char *method,
		   const char *path, json_t *body,
		   const uint8_t *seed, long *status, json_t **reply,
		   struct err *e);

/* The same, each attempt bounded by timeout_ms (0: HTTP_TIMEOUT_MS): for a
 * caller someone waits on, as a FUSE listing does. */
int authority_call_within(const char *base_url, const char *method,
			  const char *path, json_t *body,
			  const uint8_t *seed, long timeout_ms, long *status,
			  json_t **reply, struct err *e);

/*
 * The error line of a refused call, for a person: "authority: 403: <the
 * reply's "error" member>".  Always returns -1, so callers can
 * `return authority_refused(status, reply, e);`.
 */
int authority_refused(long status, const json_t *reply, struct err *e);

#endif
