/*
 * api_commitments.c - peers committing to host a snapshot.
 *
 *   POST   /v1/commitments        peer-signed: {"snapshot": "<id>"} commits
 *                                 the signer (optionally with the members
 *                                 of a PUT, to report in the same request)
 *   PUT    /v1/commitments/<id>   peer-signed: {"up", "addr", "port"}: where
 *                                 it serves the guest (address and mapped
 *                                 port) and whether it is up
 *   DELETE /v1/commitments/<id>   peer-signed: withdraw
 *
 * A commitment is the pair (snapshot id, signing peer): <id> is the
 * snapshot's id, and a peer can only ever change its own.  Refused: an
 * unregistered signer (403), an unknown snapshot (404), a snapshot whose
 * base or kernel is revoked (403), a peer the service's owner reported
 * (403).  Committing twice is harmless (200).  Up time is accounted per
 * peer: each interval from "up" to "down" (or withdrawal, or report) is
 * added to the peer's total, shown by GET /v1/peers/<id>.
 *
 * A commitment that is up must be re-reported (PUT again) within the
 * reply's peer_ttl, or it goes down by itself (sweep.c).
 */
#include <stdio.h>
#include <string.h>

#include "authority/authority.h"

static json_t *
commitment_json(const struct authstore_commitment *k, const char *host,
		uint16_t port)
{
	char service[AUTHAPI_ADDR_MAX + 1];
	json_t *j;

	snprintf(service, sizeof(service), "%s:%u", host, port);
	j = json_pack("{s:s, s:s, s:s, s:b, s:o, s:o}",
		      "snapshot", k->snapshot, "peer", k->peer,
		      "service", service, "up", k->up,
		      "created", call_time_json(k->created),
		      "updated", call_time_json(k->updated));
	if (j != NULL && k->has_addr) {
		json_object_set_new(j, "addr", json_string(k->addr));
		json_object_set_new(j, "port", json_integer(k->port));
	}
	return j;
}

/* The snapshot must exist (404), be usable (403) and the signer not be
 * reported for its service (403).  Fills n.  Inside the transaction. */
/* A commitment as its peer's request is answered: with the peer ttl it
 * must re-report within. */
static json_t *
commitment_reply(const struct call *c, const struct authstore_commitment *k,
		 const char *host, uint16_t port)
{
	json_t *j = commitment_json(k, host, port);

	if (j != NULL)
		json_object_set_new(j, "peer_ttl",
				    json_integer(c->a->cfg.peer_ttl));
	return j;
}

static int
commitments_check(struct call *c, struct reply *r, const char *id,
		  struct authstore_snapshot *n)
{
	struct err e;
	int rc;

	if ((rc = authstore_snapshot_get(c->a->store, id, n, false, &e)) == -1)
		return call_store_error(r, &e);
	if (rc == 0)
		return call_error(r, 404, "no snapshot %s", id);
	if ((rc = authstore_reported(c->a->store, n->service, c->signer,
				 &e)) == -1)
		return call_store_error(r, &e);
	if (rc == 1)
		return call_error(r, 403, "peer %s was reported by the owner "
				  "of %s:%u and may not host it", c->signer,
				  n->host, n->port);
	return 0;
}

void
api_commitments_post(struct call *c, struct reply *r)
{
	struct authstore_commitment k;
	struct authstore_snapshot n;
	struct authapi_commit in;
	struct err e;
	int rc;

	if (call_signed(c, r) == -1 || call_body(c, r) == -1)
		return;
	if (authapi_commit_parse(c->json, &in, &e) == -1) {
		call_error(r, 400, "%s", e.msg);
		return;
	}
	if (call_registered(c, r) == -1 || call_begin(c, r) == -1)
		return;
	if (commitments_check(c, r, in.snapshot, &n) == -1)
		goto refused;
	if ((rc = authstore_commitment_get(c->a->store, in.snapshot, c->signer,
				       &k, &e)) == -1)
		goto authstore_bad;
	if (rc == 0 && !n.usable) {
		call_error(r, 403, "snapshot %s uses a revoked base or kernel "
			   "and takes no new commitments", in.snapshot);
		goto refused;
	}
	if (rc == 0) {
		memset(&k, 0, sizeof(k));
		memcpy(k.snapshot, in.snapshot, sizeof(k.snapshot));
		memcpy(k.peer, c->signer, sizeof(k.peer));
		k.service = n.service;
		k.created = k.updated = c->now;
		if (authstore_commitment_add(c->a->store, &k, &e) == -1)
			goto authstore_bad;
	}
	if (in.has_serving &&
	    authstore_commitment_set(c->a->store, in.snapshot, c->signer,
				 &in.serving, c->now, &e) == -1)
		goto authstore_bad;
	if (authstore_commitment_get(c->a->store, in.snapshot, c->signer, &k,
				 &e) != 1)
		goto authstore_bad;
	if (call_commit(c, r) == 0)
		call_reply(r, rc == 0 ? 201 : 200,
			   commitment_reply(c, &k, n.host, n.port));
	return;
authstore_bad:
	call_store_error(r, &e);
refused:
	call_rollback(c);
}

void
api_commitment_put(struct call *c, struct reply *r)
{
	struct authapi_serving sv;
	struct authstore_commitment k;
	struct authstore_snapshot n;
	struct err e;
	bool same;
	int rc;

	if (call_signed(c, r) == -1 || call_hex_arg(c, r, "snapshot id") == -1
	    || call_body(c, r) == -1)
		return;
	if (authapi_serving_parse(c->json, &sv, &e) == -1) {
		call_error(r, 400, "%s", e.msg);
		return;
	}
	if (call_begin(c, r) == -1)
		return;
	if (commitments_check(c, r, c->arg, &n) == -1)
		goto refused;
	if ((rc = authstore_commitment_get(c->a->store, c->arg, c->signer, &k,
				       &e)) == -1)
		goto authstore_bad;
	if (rc == 0) {
		call_error(r, 404, "peer %s has no commitment to %s (POST "
			   "/v1/commitments first)", c->signer, c->arg);
		goto refused;
	}
	/* up where it was up: only its refresh time changes, which no
	 * lookup shows (sweep.c) */
	same = k.up && sv.up && k.has_addr && sv.has_addr &&
	       strcmp(k.addr, sv.addr) == 0 && k.port == sv.port;
	if (authstore_commitment_set(c->a->store, c->arg, c->signer, &sv, c->now,
				 &e) == -1 ||
	    authstore_commitment_get(c->a->store, c->arg, c->signer, &k, &e) != 1)
		goto authstore_bad;
	if ((same ? call_commit_quiet(c, r) : call_commit(c, r)) == 0)
		call_reply(r, 200, commitment_reply(c, &k, n.host, n.port));
	return;
authstore_bad:
	call_store_error(r, &e);
refused:
	call_rollback(c);
}

void
api_commitment_delete(struct call *c, struct reply *r)
{
	struct err e;
	int rc;

	if (call_signed(c, r) == -1 ||
	    call_hex_arg(c, r, "snapshot id") == -1 || call_begin(c, r) == -1)
		return;
	rc = authstore_commitment_delete(c->a->store, c->arg, c->signer, c->now,
				     &e);
	if (rc != 1) {
		call_rollback(c);
		if (rc == -1)
			call_store_error(r, &e);
		else
			call_error(r, 404, "peer %s has no commitment to %s",
				   c->signer, c->arg);
		return;
	}
	if (call_commit(c, r) == 0)
		call_reply(r, 200, json_pack("{s:s, s:s, s:b}", "snapshot",
					     c->arg, "peer", c->signer,
					     "withdrawn", 1));
}
