/*
 * api_dashboard.c - GET /: the dashboard page (src/authority/dashboard.html,
 * built in as dashboard_page by the Makefile).  The page reads the public
 * JSON API itself; this only hands it out.
 */
#include <stdlib.h>
#include <string.h>

#include "authority/authority.h"

extern const char dashboard_page[];

void
api_dashboard(struct call *c, struct reply *r)
{
	size_t len = strlen(dashboard_page);

	(void)c;
	if ((r->text = malloc(len)) == NULL) {
		call_error(r, 500, "out of memory");
		return;
	}
	memcpy(r->text, dashboard_page, len);
	r->text_len = len;
	r->status = 200;
	r->content_type = "text/html; charset=utf-8";
}
