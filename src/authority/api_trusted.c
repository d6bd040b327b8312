/*
 * api_trusted.c - trusted kernels and bases.
 *
 *   GET    /v1/trusted            every entry, revoked ones marked
 *   GET    /v1/trusted/<sha256>   one entry
 *   POST   /v1/trusted            admin-signed: trust a hash (with its index)
 *   DELETE /v1/trusted/<sha256>   admin-signed: revoke
 *
 * An entry carries the file's chunk index so that fedfs can verify each
 * chunk of a kernel or base it fetches lazily.  Revocation is final: a
 * revoked hash stays listed (marked "revoked": peers must learn to stop
 * using it) and cannot be trusted again; every snapshot that uses it stops
 * being lookupable and takes no new commitments (the queries check it,
 * nothing is rewritten).  Adding the same entry twice is harmless (200);
 * adding the same hash with another kind or index is a conflict (409).
 */
#include <stdlib.h>
#include <string.h>

#include "authority/authority.h"

/* The JSON form of an entry (new reference), or NULL on out of memory. */
static json_t *
trusted_json(const struct authstore_trusted *t)
{
	json_t *ix = json_loads(t->index_json ? t->index_json : "", 0, NULL);
	json_t *j;

	if (ix == NULL)
		ix = json_null();
	j = json_pack("{s:s, s:s, s:s, s:o, s:b, s:o}", "sha256", t->sha256,
		      "kind", t->kind, "name", t->name,
		      "added", call_time_json(t->added), "revoked", t->revoked != 0,
		      "index", ix);
	if (j != NULL && t->revoked != 0)
		json_object_set_new(j, "revoked_at", call_time_json(t->revoked));
	return j;
}

static int
trusted_list_one(void *arg, const struct authstore_trusted *t)
{
	json_t *j = trusted_json(t);

	return j == NULL || json_array_append_new(arg, j) == -1;
}

void
api_trusted_list(struct call *c, struct reply *r)
{
	json_t *list = json_array();
	struct err e;
	int rc;

	if (list == NULL) {
		call_reply(r, 500, NULL);
		return;
	}
	rc = authstore_trusted_list(c->a->store, trusted_list_one, list, &e);
	if (rc != 0) {
		json_decref(list);
		if (rc == -1)
			call_store_error(r, &e);
		else
			call_reply(r, 500, NULL);
		return;
	}
	call_reply(r, 200, json_pack("{s:o}", "trusted", list));
}

void
api_trusted_get(struct call *c, struct reply *r)
{
	struct authstore_trusted t;
	struct err e;
	int rc;

	if (call_hex_arg(c, r, "sha256") == -1)
		return;
	if ((rc = authstore_trusted_get(c->a->store, c->arg, &t, &e)) == -1) {
		call_store_error(r, &e);
		return;
	}
	if (rc == 0) {
		call_error(r, 404, "%s is not a trusted kernel or base",
			   c->arg);
		return;
	}
	call_reply(r, 200, trusted_json(&t));
	authstore_trusted_free(&t);
}

void
api_trusted_post(struct call *c, struct reply *r)
{
	struct authstore_trusted t, old = { .index_json = NULL };
	struct authapi_trust in;
	json_t *ixj = NULL;
	struct err e;
	int rc, parsed = 0;

	memset(&t, 0, sizeof(t));
	if (call_admin(c, r) == -1 || call_body(c, r) == -1)
		return;
	if (authapi_trust_parse(c->json, &in, &e) == -1) {
		call_error(r, 400, "%s", e.msg);
		goto done;
	}
	parsed = 1;
	/* Stored in the one form chunkidx emits, so equal indexes compare
	 * equal as text. */
	if ((ixj = chunkidx_to_json(&in.index)) == NULL ||
	    (t.index_json = json_dumps(ixj, JSON_COMPACT | JSON_SORT_KEYS)) ==
	    NULL) {
		call_reply(r, 500, NULL);
		goto done;
	}
	memcpy(t.sha256, in.sha256, sizeof(t.sha256));
	memcpy(t.kind, in.kind, sizeof(t.kind));
	memcpy(t.name, in.name, sizeof(t.name));
	t.added = c->now;

	if (call_begin(c, r) == -1)
		goto done;
	if ((rc = authstore_trusted_get(c->a->store, t.sha256, &old, &e)) == -1) {
		call_rollback(c);
		call_store_error(r, &e);
		goto done;
	}
	if (rc == 1) {
		if (old.revoked != 0) {
			call_rollback(c);
			call_error(r, 409, "%s was revoked; a revoked hash "
				   "cannot be trusted again", t.sha256);
			goto done;
		}
		if (strcmp(old.kind, t.kind) != 0 ||
		    strcmp(old.index_json, t.index_json) != 0) {
			call_rollback(c);
			call_error(r, 409, "%s is already trusted as a %s "
				   "with another index", t.sha256, old.kind);
			goto done;
		}
	} else if (authstore_trusted_add(c->a->store, &t, &e) == -1) {
		call_rollback(c);
		call_store_error(r, &e);
		goto done;
	}
	if (call_commit(c, r) == -1)
		goto done;
	call_reply(r, rc == 1 ? 200 : 201, trusted_json(rc == 1 ? &old : &t));
done:
	authstore_trusted_free(&old);
	free(t.index_json);
	json_decref(ixj);
	if (parsed)
		authapi_trust_free(&in);
}

void
api_trusted_delete(struct call *c, struct reply *r)
{
	struct authstore_trusted t = { .index_json = NULL };
	struct err e;
	int rc;

	if (call_admin(c, r) == -1 || call_hex_arg(c, r, "sha256") == -1)
		return;
	if (call_begin(c, r) == -1)
		return;
	if ((rc = authstore_trusted_get(c->a->store, c->arg, &t, &e)) == -1)
		goto authstore_bad;
	if (rc == 0) {
		call_rollback(c);
		call_error(r, 404, "%s is not a trusted kernel or base",
			   c->arg);
		return;
	}
	if (t.revoked == 0) {
		if (authstore_trusted_revoke(c->a->store, c->arg, c->now,
					 &e) == -1)
			goto authstore_bad;
		t.revoked = c->now;
	}
	if (call_commit(c, r) == 0)
		call_reply(r, 200, trusted_json(&t));
	authstore_trusted_free(&t);
	return;
authstore_bad:
	call_rollback(c);
	call_store_error(r, &e);
	authstore_trusted_free(&t);
}
