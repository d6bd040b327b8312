/*
 * api_sources.c - who holds an object, for fedfs to fetch chunks from.
 *
 *   GET    /v1/sources/<sha256>   the sources of a snapshot (by id), kernel
 *                                 or base
 *   POST   /v1/sources/<sha256>   peer-signed: "I hold (part of) it"
 *   DELETE /v1/sources/<sha256>   peer-signed: "I no longer do"
 *
 * Sources are, each peer once with its best role: the snapshot's owner
 * ("owner"), peers committed to it ("committed"; for a kernel or base,
 * peers committed to any snapshot that uses it, which must hold it to run
 * it), and peers that announced holding it ("holder").  A peer reported by
 * a service's owner is not a source of that service's snapshots.  Every
 * source comes with its object-server address (its registration).  At most
 * AUTHORITY_SOURCES_MAX are listed: owner first, then committed peers, then
 * holders, each group in random order to spread the load.
 *
 * With --key the GET answer is signed (sign.c) like a lookup answer: it
 * decides whom a peer fetches from.  It is signed per request, not cached:
 * each answer lists the sources in a new random order, and a peer asks
 * once per object it opens, not per read.
 *
 * An object that is neither a snapshot nor a trusted kernel or base is 404;
 * a revoked one (or a snapshot using one) is 410: nobody should fetch it.
 */
#include <string.h>

#include "authority/authority.h"

enum source_kind { SOURCE_SNAPSHOT, SOURCE_TRUSTED };

/* What is c->arg?  Fills kind and (snapshots) n.  Returns 0, or -1 with the
 * refusal in r. */
static int
sources_object(struct call *c, struct reply *r, enum source_kind *kind,
	       char trusted_kind[8], struct authstore_snapshot *n)
{
	struct authstore_trusted t;
	struct err e;
	int rc;

	if ((rc = authstore_snapshot_get(c->a->store, c->arg, n, false, &e)) == -1)
		return call_store_error(r, &e);
	if (rc == 1) {
		*kind = SOURCE_SNAPSHOT;
		if (!n->usable)
			return call_error(r, 410, "snapshot %s uses a revoked "
					  "base or kernel", c->arg);
		return 0;
	}
	if ((rc = authstore_trusted_get(c->a->store, c->arg, &t, &e)) == -1)
		return call_store_error(r, &e);
	if (rc == 0)
		return call_error(r, 404, "%s is neither a snapshot nor a "
				  "trusted kernel or base", c->arg);
	*kind = SOURCE_TRUSTED;
	memcpy(trusted_kind, t.kind, 8);
	rc = t.revoked ? call_error(r, 410, "%s %s is revoked", t.kind,
				    c->arg) : 0;
	authstore_trusted_free(&t);
	return rc;
}

static int
sources_one(void *arg, const char *peer, const char *addr,
	    enum authstore_role role)
{
	static const char *const roles[] = { "owner", "committed", "holder" };
	json_t *j;

	j = json_pack("{s:s, s:s, s:s}", "peer", peer, "addr", addr, "role",
		      (unsigned)role < 3 ? roles[role] : "holder");
	return j == NULL || json_array_append_new(arg, j) == -1;
}

/* Answer 200 with j (stolen), signed if the authority has a key. */
static void
sources_reply(struct call *c, struct reply *r, json_t *j)
{
	time_t issued;
	struct err e;

	if (j != NULL && c->a->cfg.has_key &&
	    authority_sign(c->a, j, SIGNED_SOURCES, &issued, &e) == -1) {
		json_decref(j);
		call_error(r, 500, "cannot sign the answer: %s", e.msg);
		return;
	}
	call_reply(r, 200, j);
}

void
api_sources_get(struct call *c, struct reply *r)
{
	enum source_kind kind;
	char tkind[8] = "";
	struct authstore_snapshot n;
	json_t *list;
	struct err e;
	int rc;

	if (call_hex_arg(c, r, "sha256") == -1 ||
	    sources_object(c, r, &kind, tkind, &n) == -1)
		return;
	if ((list = json_array()) == NULL) {
		call_reply(r, 500, NULL);
		return;
	}
	rc = authstore_sources(c->a->store, c->arg,
			   kind == SOURCE_SNAPSHOT ? n.service : 0,
			   AUTHORITY_SOURCES_MAX,
			   sweep_cutoff(c->a, c->now), sources_one, list, &e);
	if (rc != 0) {
		json_decref(list);
		if (rc == -1)
			call_store_error(r, &e);
		else
			call_reply(r, 500, NULL);
		return;
	}
	sources_reply(c, r, json_pack("{s:s, s:s, s:o}", "sha256", c->arg,
				      "kind", kind == SOURCE_SNAPSHOT ?
				      "snapshot" : tkind, "sources", list));
}

void
api_sources_post(struct call *c, struct reply *r)
{
	enum source_kind kind;
	char tkind[8];
	struct authstore_snapshot n;
	struct err e;
	bool created;
	int rc;

	if (call_signed(c, r) == -1 || call_hex_arg(c, r, "sha256") == -1)
		return;
	if (c->body_len > 0 && call_body(c, r) == -1)
		return;
	if (call_registered(c, r) == -1 ||
	    sources_object(c, r, &kind, tkind, &n) == -1)
		return;
	if (kind == SOURCE_SNAPSHOT) {
		if ((rc = authstore_reported(c->a->store, n.service, c->signer,
					 &e)) == -1) {
			call_store_error(r, &e);
			return;
		}
		if (rc == 1) {
			call_error(r, 403, "peer %s was reported by the owner "
				   "of %s:%u and may not serve it", c->signer,
				   n.host, n.port);
			return;
		}
	}
	if (call_begin(c, r) == -1)
		return;
	if (authstore_holding_put(c->a->store, c->arg, c->signer, c->now,
			      &created, &e) == -1) {
		call_rollback(c);
		call_store_error(r, &e);
		return;
	}
	if (call_commit(c, r) == 0)
		call_reply(r, created ? 201 : 200,
			   json_pack("{s:s, s:s, s:b}", "sha256", c->arg,
				     "peer", c->signer, "holding", 1));
}

void
api_sources_delete(struct call *c, struct reply *r)
{
	struct err e;
	int rc;

	if (call_signed(c, r) == -1 || call_hex_arg(c, r, "sha256") == -1 ||
	    call_begin(c, r) == -1)
		return;
	rc = authstore_holding_delete(c->a->store, c->arg, c->signer, &e);
	if (rc != 1) {
		call_rollback(c);
		if (rc == -1)
			call_store_error(r, &e);
		else
			call_error(r, 404, "peer %s did not announce holding "
				   "%s", c->signer, c->arg);
		return;
	}
	if (call_commit(c, r) == 0)
		call_reply(r, 200, json_pack("{s:s, s:s, s:b}", "sha256",
					     c->arg, "peer", c->signer,
					     "holding", 0));
}
