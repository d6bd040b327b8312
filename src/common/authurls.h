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
 *
 * The memory of the last good URL is process-wide, one slot per distinct
 * list string, under one mutex (authurls_lock in authurls.c): fedfs and
 * fed-vmrunner call from several threads.
 */
#ifndef FED_AUTHURLS_H
#define FED_AUTHURLS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

#define AUTHURLS_MAX       8	/* URLs in one list */
#define AUTHURLS_URL_MAX   512	/* bytes in one URL, NUL included */
#define AUTHURLS_INPUT_MAX 2048	/* bytes in the whole list */

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

/* The index to try first for list (the last that answered; 0 at first). */
size_t authurls_first(const char *list, size_t n);

/* Remember that index i of list answered. */
void authurls_good(const char *list, size_t i);

/* Should a call go on with the next URL after this outcome?  rc is -1 for
 * no usable reply (connection error, timeout, not JSON), else status. */
bool authurls_failover(int rc, long status);

#endif
