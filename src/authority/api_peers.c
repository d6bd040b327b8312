/*
 * api_peers.c - POST /v1/peers (register or move), GET /v1/peers/<id>.
 *
 * Registration proves possession of the key: the request is signed by the
 * very key it registers, so nobody can register (or move) another's.  The
 * address is the peer's object server (fedfs --serve), where others fetch
 * the chunks it holds.  Re-registering updates the address (200), and is
 * how a peer says it is still there: the reply's peer_ttl is how long its
 * registration counts as live without another (0: forever; sweep.c).
 *
 * GET shows the peer's contribution: the other owners' services it hosts
 * and keeps up, its commitments, the seconds its commitments have been up,
 * and from those the number of services it may own (the reciprocity rule,
 * api_snapshots.c).
 */
#include "authority/authority.h"

void
api_peers_post(struct call *c, struct reply *r)
{
	struct authapi_register reg;
	struct err e;
	bool created;

	if (call_signed(c, r) == -1 || call_body(c, r) == -1)
		return;
	if (authapi_register_parse(c->json, &reg, &e) == -1) {
		call_error(r, 400, "%s", e.msg);
		return;
	}
	if (call_begin(c, r) == -1)
		return;
	if (authstore_peer_put(c->a->store, c->signer, reg.addr, c->now, &created,
			   &e) == -1) {
		call_rollback(c);
		call_store_error(r, &e);
		return;
	}
	if (call_commit_quiet(c, r) == -1)	/* lookups do not read peers */
		return;
	call_reply(r, created ? 201 : 200,
		   json_pack("{s:s, s:s, s:b, s:i}", "peer", c->signer, "addr",
			     reg.addr, "created", created, "peer_ttl",
			     c->a->cfg.peer_ttl));
}

void
api_peer_get(struct call *c, struct reply *r)
{
	struct authstore_contribution k;
	struct authstore_peer p;
	struct err e;
	int rc;

	if (call_hex_arg(c, r, "peer id") == -1)
		return;
	if ((rc = authstore_peer_get(c->a->store, c->arg, &p, &e)) == -1 ||
	    (rc == 1 && authstore_peer_contribution(c->a->store, c->arg, c->now,
						&k, &e) == -1)) {
		call_store_error(r, &e);
		return;
	}
	if (rc == 0) {
		call_error(r, 404, "peer %s is not registered", c->arg);
		return;
	}
	call_reply(r, 200, json_pack(
	    "{s:s, s:s, s:o, s:o, s:I, s:I,"
	    " s:{s:I, s:I, s:I, s:I}}",
	    "peer", p.key, "addr", p.addr,
	    "registered", call_time_json(p.registered),
	    "updated", call_time_json(p.updated),
	    "services_owned", (json_int_t)k.services_owned,
	    "publish_allowance", (json_int_t)(c->a->cfg.publish_allowance +
					      k.services_hosted),
	    "contribution",
	    "services_hosted", (json_int_t)k.services_hosted,
	    "commitments", (json_int_t)k.commitments,
	    "commitments_up", (json_int_t)k.commitments_up,
	    "uptime_seconds", (json_int_t)k.uptime_seconds));
}
