/*
 * api_keys.c - owner keys: rotation by the owner, revocation and
 * confirmation of a successor by the admin (docs/authority-api.md, "Owner
 * keys"; the records are common/keyrec.h).
 *
 *   POST /v1/keys          a signed key record:
 *                            rotation      signed by the old key (record
 *                                          and request) and the new one
 *                            revocation    signed by the admin
 *                            confirmation  signed by the admin
 *   GET  /v1/keys/<key>    what happened to a key, and the chain from it
 *                          to the key that holds its services now
 *
 * The chain.  A key changes at most once (table key_changes): rotated to a
 * successor, or revoked and later, once, confirmed to one.  A successor
 * must be a key that never changed nor succeeded another, so the chain is
 * a line with no loop, and ends at the current key (or at a revoked key
 * awaiting its confirmation).
 * Services follow the chain: a rotation or confirmation makes the
 * successor own every service the old key owned, in the same transaction
 * that records it; so services.owner is always the chain's end.
 *
 * What the other handlers ask (keys_check_signer, keys_check_service): a
 * key that was rotated or revoked may no longer act as an owner (announce,
 * report), and a service whose owner is revoked and not yet confirmed is
 * frozen: it takes no new snapshot from anyone.  Its lookups go on
 * answering the peers that serve what was announced before (why: the
 * docs' "Owner keys").
 *
 * Not done: an authority does not push the chain to peers; they need not
 * know it, as they take a service's versions from the authority's
 * catalogue (docs/fedfs.md), which only lists what these checks let in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authority/authority.h"
#include "common/keyrec.h"
#include "common/sigreq.h"
#include "common/timefmt.h"

#define KEYS_CHAIN_MAX 64	/* links shown by GET /v1/keys/<key> */
/* links followed to the chain's end: it has no loop (a successor is a key
 * that never changed), so this only bounds a store gone wrong */
#define KEYS_WALK_MAX 4096

/* ---- what the other handlers ask ---- */

/* k's state for a person: "rotated to S at T" / "revoked by the admin at
 * T (...)", into buf. */
static void
keys_say(const struct authstore_key_change *k, char *buf, size_t size)
{
	char at[RFC3339_LEN + 1];

	rfc3339_format((time_t)k->at, at);
	if (strcmp(k->kind, "rotated") == 0)
		snprintf(buf, size, "was rotated to %s at %s: sign with %s",
			 k->successor, at, k->successor);
	else if (k->successor[0] != '\0')
		snprintf(buf, size, "was revoked by the admin at %s; its "
			 "successor is %s", at, k->successor);
	else
		snprintf(buf, size, "was revoked by the admin at %s; its "
			 "services are frozen until the admin confirms a "
			 "successor", at);
}

int
keys_check_signer(struct call *c, struct reply *r)
{
	struct authstore_key_change k;
	char why[400];
	struct err e;
	int rc;

	if ((rc = authstore_key_change_get(c->a->store, c->signer, &k,
					   &e)) == -1)
		return call_store_error(r, &e);
	if (rc == 0)
		return 0;
	keys_say(&k, why, sizeof(why));
	return call_error(r, 403, "key %s %s", c->signer, why);
}

int
keys_check_service(struct call *c, struct reply *r,
		   const struct authstore_service *sv)
{
	struct authstore_key_change k;
	char at[RFC3339_LEN + 1];
	struct err e;
	int rc;

	if ((rc = authstore_key_change_get(c->a->store, sv->owner, &k,
					   &e)) == -1)
		return call_store_error(r, &e);
	if (rc == 0 || strcmp(k.kind, "revoked") != 0 || k.successor[0])
		return 0;
	rfc3339_format((time_t)k.at, at);
	return call_error(r, 403, "service %s:%u is frozen: its owner key %s "
			  "was revoked by the admin at %s; it takes no new "
			  "snapshot until the admin confirms a successor "
			  "(fed key confirm)", sv->host, sv->port, sv->owner,
			  at);
}

/* ---- GET /v1/keys/<key> ---- */

static json_t *
keys_change_json(const struct authstore_key_change *k)
{
	json_t *j = json_pack("{s:s, s:s, s:s?, s:s, s:s, s:o}",
			      "key", k->key, "kind", k->kind,
			      "successor", k->successor[0] ? k->successor
							   : NULL,
			      "record", k->record, "signature", k->signature,
			      "at", call_time_json(k->at));

	if (j == NULL)
		return NULL;
	if (k->new_signature[0])
		json_object_set_new(j, "new_signature",
				    json_string(k->new_signature));
	if (k->confirmed_at != 0) {
		json_object_set_new(j, "confirm_record",
				    json_string(k->confirm_record));
		json_object_set_new(j, "confirm_signature",
				    json_string(k->confirm_signature));
		json_object_set_new(j, "confirmed_at",
				    call_time_json(k->confirmed_at));
	}
	return j;
}

/* Append the changes from key on to chain; *current gets the chain's end
 * (or "" when it ends at a revoked key with no successor).  0 or -1. */
static int
keys_walk(struct authority *a, const char *key, json_t *chain,
	  char current[AUTHSTORE_HEX], struct err *e)
{
	struct authstore_key_change k;
	int rc, n;

	snprintf(current, AUTHSTORE_HEX, "%s", key);
	for (n = 0; n < KEYS_WALK_MAX; n++) {
		if ((rc = authstore_key_change_get(a->store, current, &k,
						   e)) != 1)
			return rc;
		if (n < KEYS_CHAIN_MAX &&
		    json_array_append_new(chain, keys_change_json(&k)) == -1)
			return err_set(e, "out of memory");
		snprintf(current, AUTHSTORE_HEX, "%s", k.successor);
		if (current[0] == '\0')
			return 0;
	}
	return err_set(e, "store: the chain from %s is longer than %d keys",
		       key, KEYS_WALK_MAX);
}

/* The view of key (new reference), or NULL with e set. */
static json_t *
keys_view(struct authority *a, const char *key, struct err *e)
{
	struct authstore_key_change k, before;
	char current[AUTHSTORE_HEX];
	json_t *chain = json_array(), *j;
	int rc, prev;

	if (chain == NULL) {
		err_set(e, "out of memory");
		return NULL;
	}
	if (keys_walk(a, key, chain, current, e) == -1 ||
	    (rc = authstore_key_change_get(a->store, key, &k, e)) == -1 ||
	    (prev = authstore_key_change_to(a->store, key, &before, e)) == -1) {
		json_decref(chain);
		return NULL;
	}
	j = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:o}", "key", key,
		      "state", rc == 1 ? k.kind : "current",
		      "successor", rc == 1 && k.successor[0] ? k.successor
							      : NULL,
		      "current", current[0] ? current : NULL,
		      "predecessor", prev == 1 ? before.key : NULL,
		      "chain", chain);
	if (j == NULL)
		err_set(e, "out of memory");
	return j;
}

void
api_key_get(struct call *c, struct reply *r)
{
	struct err e;
	json_t *j;

	if (call_hex_arg(c, r, "key") == -1)
		return;
	if ((j = keys_view(c->a, c->arg, &e)) == NULL) {
		call_store_error(r, &e);
		return;
	}
	call_reply(r, 200, j);
}

/* ---- POST /v1/keys ---- */

/* One record being posted. */
struct keys_post {
	struct keyrec rec;
	struct keyrec_body body;
	char sig_hex[AUTHSTORE_SIG_HEX], new_sig_hex[AUTHSTORE_SIG_HEX];
};

/* Reply with the view of key after a change (status 201) or a retry of
 * one already made (200). */
static void
keys_reply(struct call *c, struct reply *r, unsigned status, const char *key)
{
	struct err e;
	json_t *j = keys_view(c->a, key, &e);

	if (j == NULL)
		call_store_error(r, &e);
	else
		call_reply(r, status, j);
}

/* The signer must be the admin (403). */
static int
keys_admin(struct call *c, struct reply *r)
{
	if (!c->a->cfg.has_admin)
		return call_error(r, 403, "this authority has no admin key "
				  "(start it with --admin-key)");
	if (strcmp(c->signer, c->a->admin_hex) != 0)
		return call_error(r, 403, "only the admin key may revoke an "
				  "owner key or confirm its successor");
	return 0;
}

/* The record's signature by pub (what) must verify (422). */
static int
keys_verify(struct reply *r, const struct keys_post *p, const char *pub,
	    const uint8_t *sig, const char *what)
{
	if (keyrec_verify(pub, p->body.record, p->body.record_len, sig) == 0)
		return 0;
	return call_error(r, 422, "key record: bad signature: not %s's (%s)",
			  what, pub);
}

/* A successor must be a key that never changed nor succeeded another
 * (409): the chain is a line, each key with one predecessor at most. */
static int
keys_check_fresh(struct call *c, struct reply *r, const char *key)
{
	struct authstore_key_change k;
	struct err e;
	int rc;

	if ((rc = authstore_key_change_get(c->a->store, key, &k, &e)) == -1)
		return call_store_error(r, &e);
	if (rc == 1)
		return call_error(r, 409, "key %s was itself %s: a successor "
				  "must be a fresh key", key, k.kind);
	if ((rc = authstore_key_change_to(c->a->store, key, &k, &e)) == -1)
		return call_store_error(r, &e);
	if (rc == 1)
		return call_error(r, 409, "key %s already succeeds %s: a key "
				  "succeeds one key only", key, k.key);
	if (c->a->cfg.has_admin && strcmp(key, c->a->admin_hex) == 0)
		return call_error(r, 409, "the admin key cannot own services");
	return 0;
}

/* Fill k for a rotation or revocation from p. */
static void
keys_change_fill(struct call *c, const struct keys_post *p, const char *kind,
		 struct authstore_key_change *k)
{
	memset(k, 0, sizeof(*k));
	snprintf(k->key, sizeof(k->key), "%s", p->rec.old);
	snprintf(k->kind, sizeof(k->kind), "%s", kind);
	snprintf(k->successor, sizeof(k->successor), "%s", p->rec.new_);
	memcpy(k->record, p->body.record, p->body.record_len);
	memcpy(k->signature, p->sig_hex, sizeof(k->signature));
	memcpy(k->new_signature, p->new_sig_hex, sizeof(k->new_signature));
	k->at = c->now;
}

/* Inside the transaction: refuse (409) a second change of p->rec.old,
 * unless it is this very record again (*retry: answer 200). */
static int
keys_check_unchanged(struct call *c, struct reply *r,
		     const struct keys_post *p, bool *retry)
{
	struct authstore_key_change k;
	char why[400];
	struct err e;
	int rc;

	*retry = false;
	if ((rc = authstore_key_change_get(c->a->store, p->rec.old, &k,
					   &e)) == -1)
		return call_store_error(r, &e);
	if (rc == 0)
		return 0;
	if (strcmp(k.record, p->body.record) == 0) {
		*retry = true;
		return 0;
	}
	if (p->rec.type == KEYREC_REVOCATION &&
	    strcmp(k.kind, "rotated") == 0)
		return call_error(r, 409, "key %s was already rotated to %s: "
				  "revoke %s, the key that holds its services "
				  "now", p->rec.old, k.successor, k.successor);
	keys_say(&k, why, sizeof(why));
	return call_error(r, 409, "key %s %s; a key changes only once",
			  p->rec.old, why);
}

/* Make the change p says of p->rec.old, kind "rotated" (to p->rec.new_)
 * or "revoked": in one transaction, refuse a key that changed already (or
 * answer 200 if it is this very record again), record it, hand the
 * services to the successor if there is one, commit and answer 201. */
static void
keys_change(struct call *c, struct reply *r, const struct keys_post *p,
	    const char *kind)
{
	struct authstore_key_change k;
	struct err e;
	bool retry;

	if (call_begin(c, r) == -1)
		return;
	if (keys_check_unchanged(c, r, p, &retry) == -1 ||
	    (!retry && p->rec.new_[0] &&
	     keys_check_fresh(c, r, p->rec.new_) == -1)) {
		call_rollback(c);
		return;
	}
	if (retry) {
		if (call_commit(c, r) == 0)
			keys_reply(c, r, 200, p->rec.old);
		return;
	}
	keys_change_fill(c, p, kind, &k);
	if (authstore_key_change_add(c->a->store, &k, &e) == -1 ||
	    (k.successor[0] &&
	     authstore_services_transfer(c->a->store, k.key, k.successor,
					 &e) == -1)) {
		call_rollback(c);
		call_store_error(r, &e);
		return;
	}
	if (call_commit(c, r) == 0)
		keys_reply(c, r, 201, k.key);
}

static void
keys_rotate(struct call *c, struct reply *r, const struct keys_post *p)
{
	if (strcmp(c->signer, p->rec.old) != 0) {
		call_error(r, 403, "the request is signed by %s but the record "
			   "rotates %s: only a key's holder may rotate it",
			   c->signer, p->rec.old);
		return;
	}
	if (!p->body.has_new_sig) {
		call_error(r, 400, "'new_signature' is missing: a rotation is "
			   "signed by the new key too, to prove its holder "
			   "has it");
		return;
	}
	if (keys_verify(r, p, p->rec.old, p->body.sig, "the old key") == -1 ||
	    keys_verify(r, p, p->rec.new_, p->body.new_sig, "the new key") == -1)
		return;
	keys_change(c, r, p, "rotated");
}

static void
keys_revoke(struct call *c, struct reply *r, const struct keys_post *p)
{
	if (keys_admin(c, r) == -1 ||
	    keys_verify(r, p, c->a->admin_hex, p->body.sig, "the admin") == -1)
		return;
	if (strcmp(p->rec.old, c->a->admin_hex) == 0) {
		call_error(r, 400, "the admin key cannot be revoked this way");
		return;
	}
	keys_change(c, r, p, "revoked");
}

/* Inside the transaction: p->rec.old must be revoked without a successor
 * (409; 200 when it is this very confirmation again: *retry). */
static int
keys_check_confirmable(struct call *c, struct reply *r,
		       const struct keys_post *p, bool *retry)
{
	struct authstore_key_change k;
	struct err e;
	int rc;

	*retry = false;
	if ((rc = authstore_key_change_get(c->a->store, p->rec.old, &k,
					   &e)) == -1)
		return call_store_error(r, &e);
	if (rc == 0 || strcmp(k.kind, "revoked") != 0)
		return call_error(r, 409, "key %s is not revoked: only a "
				  "revoked key's successor is confirmed (an "
				  "owner rotates its own key: fed key rotate)",
				  p->rec.old);
	if (k.successor[0] == '\0')
		return 0;
	if (strcmp(k.confirm_record, p->body.record) == 0) {
		*retry = true;
		return 0;
	}
	return call_error(r, 409, "key %s was revoked and its successor %s "
			  "already confirmed", p->rec.old, k.successor);
}

static void
keys_confirm(struct call *c, struct reply *r, const struct keys_post *p)
{
	struct err e;
	bool retry;

	if (keys_admin(c, r) == -1 ||
	    keys_verify(r, p, c->a->admin_hex, p->body.sig, "the admin") == -1 ||
	    call_begin(c, r) == -1)
		return;
	if (keys_check_confirmable(c, r, p, &retry) == -1 ||
	    (!retry && keys_check_fresh(c, r, p->rec.new_) == -1)) {
		call_rollback(c);
		return;
	}
	if (!retry &&
	    (authstore_key_confirm(c->a->store, p->rec.old, p->rec.new_,
				   p->body.record, p->sig_hex, c->now,
				   &e) != 1 ||
	     authstore_services_transfer(c->a->store, p->rec.old, p->rec.new_,
					 &e) == -1)) {
		call_rollback(c);
		call_store_error(r, &e);
		return;
	}
	if (call_commit(c, r) == 0)
		keys_reply(c, r, retry ? 200 : 201, p->rec.old);
}

/* Parse the body and its record into p (400, 422).  0 or -1. */
static int
keys_parse(struct call *c, struct reply *r, struct keys_post *p)
{
	struct err e;

	memset(p, 0, sizeof(*p));
	if (keyrec_body_parse(c->json, &p->body, &e) == -1)
		return call_error(r, 400, "%s", e.msg);
	if (keyrec_parse(p->body.record, p->body.record_len, &p->rec,
			 &e) == -1)
		return call_error(r, 422, "%s", e.msg);
	if ((int64_t)p->rec.issued_at > (int64_t)c->now + SIGREQ_MAX_SKEW)
		return call_error(r, 422, "key record: issued_at is in the "
				  "future (more than %d s from the authority's "
				  "clock)", SIGREQ_MAX_SKEW);
	hex_encode(p->body.sig, ED25519_SIG_LEN, p->sig_hex);
	if (p->body.has_new_sig)
		hex_encode(p->body.new_sig, ED25519_SIG_LEN, p->new_sig_hex);
	return 0;
}

void
api_keys_post(struct call *c, struct reply *r)
{
	struct keys_post p;

	if (call_signed(c, r) == -1 || call_body(c, r) == -1 ||
	    keys_parse(c, r, &p) == -1)
		return;
	switch (p.rec.type) {
	case KEYREC_ROTATION:
		keys_rotate(c, r, &p);
		break;
	case KEYREC_REVOCATION:
		keys_revoke(c, r, &p);
		break;
	case KEYREC_CONFIRMATION:
		keys_confirm(c, r, &p);
		break;
	}
}
