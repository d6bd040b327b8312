/*
 * api_status.c - GET /healthz (liveness) and GET /metrics (Prometheus).
 *
 * /healthz says the process accepts and answers requests, and where its
 * store is: the engine, the database host (or file) and whether a write
 * could be made there, as last asked, at most AUTHORITY_WHERE_TTL_S ago.
 * So it stays as cheap as an answer can be (the baseline bench/authority.sh
 * measures lookups against) while a failover shows in it within a second.
 */
#include <stdlib.h>

#include "authority/authority.h"
#include "common/log.h"
#include "common/timefmt.h"

#define AUTHORITY_WHERE_TTL_S 1.0

/* Where the store is, asked again if what is known is older than the ttl:
 * by one request, while the others answer with what is known. */
static void
healthz_where(struct authority *a, struct authstore_where *w)
{
	double now = mono_now();
	struct err e;

	pthread_mutex_lock(&a->where_lock);
	if (a->where_at == 0 || now - a->where_at >= AUTHORITY_WHERE_TTL_S) {
		a->where_at = now;	/* the others go on meanwhile */
		pthread_mutex_unlock(&a->where_lock);
		if (authstore_where(a->store, w, &e) == -1) {
			log_warn("healthz: %s", e.msg);
			w->writable = false;
		}
		pthread_mutex_lock(&a->where_lock);
		a->where = *w;
	}
	*w = a->where;
	pthread_mutex_unlock(&a->where_lock);
}

void
api_healthz(struct call *c, struct reply *r)
{
	struct authstore_where w;

	healthz_where(c->a, &w);
	call_reply(r, 200, json_pack("{s:s,s:{s:s,s:s,s:b}}", "status", "ok",
				     "store", "engine",
				     authstore_engine(c->a->store),
				     "host", w.host, "writable", w.writable));
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
