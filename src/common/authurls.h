/*
 * authurls.h - the list of authorities a client knows, and which one it
 * asks first (issue 20 item 4: "Clients know several authorities").
 *
 * Every program that takes --authority (fed, fedfs, fed-vmrunner, fed
 * proxy) takes "URL1,URL2,...": up to AUTHURLS_MAX http:// or https://
 * URLs.  authority_call() (http.h) walks the list: it goes on with the next
 * URL on a connection error, a timeout or a 5xx, and stops at the first
 * one that answers anything else (a 4xx is an answer).  The URL that
 * answered is remembered for that list, so the next call starts with it.
 * A URL that failed is tried last for AUTHURLS_DOWN_S, doubling per failure
 * in a row up to AUTHURLS_DOWN_MAX_S (as fedfs's authlink does for the
 * authority as a whole), so a dead one is not paid for by every call.
 *
 * This memory is process-wide, one slot per distinct list string, under
 * one mutex (authurls_lock in authurls.c): fedfs and fed-vmrunner call
 * from several threads.
 */
#ifndef FED_AUTHURLS_H
#define FED_AUTHURLS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

#define AUTHURLS_MAX       8	/* URLs in one list */
#define AUTHURLS_URL_MAX   512	/* bytes in one URL, NUL included */
#define AUTHURLS_INPUT_MAX 2048	/* bytes in the whole list */
#define AUTHURLS_DOWN_S     4.0	/* a failed URL is tried last this long */
#define AUTHURLS_DOWN_MAX_S 16.0

struct authurls {
	size_t n;
	char url[AUTHURLS_MAX][AUTHURLS_URL_MAX];
};

/*
 * Parse "URL1,URL2,..." into out.  Refuses, with e saying which element
 * and why: an empty list or element, a URL not starting with http:// or
 * https:// or with nothing after it, one with spaces or control bytes,
 * more than AUTHURLS_MAX URLs, a URL or a list over its size.  Trailing
 * slashes of each URL are dropped.  Returns 0 or -1.
 */
int authurls_parse(const char *list, struct authurls *out, struct err *e);

/*
 * The order to try list's n URLs in, into order[n]: from the one that
 * answered last (0 at first) round the list, those not known down first,
 * then those that are.
 */
void authurls_order(const char *list, size_t n, size_t order[]);

/* Remember how index i of list did: answered (ok), or failed. */
void authurls_result(const char *list, size_t i, bool ok);

/* Should a call go on with the next URL after this outcome?  rc is -1 for
 * no usable reply (connection error, timeout, not JSON), else status. */
bool authurls_failover(int rc, long status);

#endif
