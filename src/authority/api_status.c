/*
 * api_status.c - GET /healthz (liveness) and GET /metrics (Prometheus).
 *
 * /healthz answers without touching the store: it says the process accepts
 * and answers requests, nothing more (the store's health shows in /metrics
 * and in the 500s it causes).
 */
#include <stdlib.h>

#include "authority/authority.h"

void
api_healthz(struct call *c, struct reply *r)
{
	(void)c;
	call_reply(r, 200, json_pack("{s:s}", "status", "ok"));
}

void
api_metrics(struct call *c, struct reply *r)
{
	struct authstore_counts counts;
	struct err e;

	if (authstore_counts(c->a->store, &counts, &e) == -1) {
		call_store_error(r, &e);
		return;
	}
	r->text = metrics_render(&c->a->metrics, &counts,
				 replay_count(c->a->replay), &r->text_len);
	if (r->text == NULL) {
		call_error(r, 500, "out of memory");
		return;
	}
	r->status = 200;
	r->content_type = "text/plain; version=0.0.4; charset=utf-8";
}
