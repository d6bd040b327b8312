/*
 * api_reports.c - POST /v1/reports: an owner says a peer misbehaves.
 *
 * Only the service's owner may report (403), about a registered peer other
 * than itself.  The report is kept (all of them are: the owner's view of
 * the service lists them), the peer's commitments to that service are
 * dropped (their up time credited), and from then on the peer is absent
 * from the service's lookups and sources and may not commit to it again.
 * Its other services are untouched.
 *
 * A body with "kind": "bad_chunk" is another report, from any registered
 * peer: api_bad_chunks.c.
 */
#include <stdio.h>
#include <string.h>

#include "authority/authority.h"

void
api_reports_post(struct call *c, struct reply *r)
{
	char service[AUTHAPI_ADDR_MAX + 1];
	struct authapi_report in;
	struct authstore_service sv;
	struct authstore_peer p;
	int64_t id;
	struct err e;
	int rc;

	if (call_signed(c, r) == -1 || call_body(c, r) == -1)
		return;
	if (authapi_report_is_bad_chunk(c->json)) {
		api_reports_bad_chunk(c, r);
		return;
	}
	if (authapi_report_parse(c->json, &in, &e) == -1) {
		call_error(r, 400, "%s", e.msg);
		return;
	}
	snprintf(service, sizeof(service), "%s:%u", in.host, in.port);
	if ((rc = authstore_service_get(c->a->store, in.host, in.port, &sv,
				    &e)) == -1) {
		call_store_error(r, &e);
		return;
	}
	if (rc == 0) {
		call_error(r, 404, "unknown service %s", service);
		return;
	}
	if (keys_check_signer(c, r) == -1)
		return;
	if (strcmp(sv.owner, c->signer) != 0) {
		call_error(r, 403, "only the owner of %s may report its "
			   "peers", service);
		return;
	}
	if (strcmp(in.peer, c->signer) == 0) {
		call_error(r, 400, "an owner cannot report itself");
		return;
	}
	if ((rc = authstore_peer_get(c->a->store, in.peer, &p, &e)) == -1) {
		call_store_error(r, &e);
		return;
	}
	if (rc == 0) {
		call_error(r, 404, "peer %s is not registered", in.peer);
		return;
	}
	if (call_begin(c, r) == -1)
		return;
	if (authstore_report_add(c->a->store, sv.id, in.peer, c->signer,
			     in.reason, c->now, &id, &e) == -1) {
		call_rollback(c);
		call_store_error(r, &e);
		return;
	}
	if (call_commit(c, r) == 0)
		call_reply(r, 201, json_pack("{s:I, s:s, s:s, s:s, s:o}",
					     "report", (json_int_t)id,
					     "service", service,
					     "peer", in.peer,
					     "reason", in.reason,
					     "at", call_time_json(c->now)));
}
