/*
 * api_bad_chunks.c - POST /v1/reports with "kind": "bad_chunk": a peer
 * says another sent it bytes of an object that fail their hash.
 *
 * fedfs verifies every chunk it fetches against the object's index, so it
 * knows for sure that the bytes it got from an address were not the chunk;
 * what it cannot prove to anyone else is that the address sent them.  So a
 * report is believed only so far:
 *
 *   - the reporter signs it and must be a registered peer (403), and may
 *     not report itself (400);
 *   - the evidence must fit what the authority knows: the object is a
 *     snapshot or a trusted kernel or base (404), the chunk exists in its
 *     index and "expected" is that chunk's hash there (422), and
 *     "received" differs from it (400);
 *   - the source is named by the address the reporter fetched from; every
 *     peer registered at that address is marked (409 if none is, or only
 *     the reporter);
 *   - a mark drops the peer from GET /v1/sources of that one object only:
 *     nothing else of it changes (its other objects, its commitments, its
 *     services, its lookups);
 *   - a snapshot's owner is never dropped from its own snapshot's sources
 *     (the mark is kept, "dropped": false): anyone could otherwise make a
 *     snapshot unreachable with one report; and at least one source of it
 *     signed what it serves.
 *
 * Marks are kept in the store (authstore_bad_source_add) and so survive a
 * restart.  A hostile registered peer can still drop honest holders of an
 * object it reads, one object at a time: readers then fetch from the owner
 * or the others, slower, never wrong (every chunk is verified).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authority/authority.h"
#include "common/log.h"

/* Peers registered at one address, less the reporter. */
struct bad_peers {
	const char *reporter;
	bool reporter_there;
	size_t n;
	char keys[8][AUTHSTORE_HEX];
};

static int
bad_peers_one(void *arg, const char *peer)
{
	struct bad_peers *p = arg;

	if (strcmp(peer, p->reporter) == 0)
		p->reporter_there = true;
	else if (p->n < sizeof(p->keys) / sizeof(p->keys[0]))
		snprintf(p->keys[p->n++], AUTHSTORE_HEX, "%s", peer);
	return 0;
}

/* Does chunk i of ix hash to expected (hex)?  Replies 422 if not. */
static int
bad_chunk_in_index(struct reply *r, const struct chunk_index *ix,
		   const struct authapi_bad_chunk *b)
{
	char hex[SHA256_HEX_LEN + 1];

	if (b->chunk >= ix->nchunks)
		return call_error(r, 422, "%s has %u chunks, not %u", b->object,
				  ix->nchunks, b->chunk + 1);
	hex_encode(ix->chunks[b->chunk], SHA256_LEN, hex);
	if (strcmp(hex, b->expected) != 0)
		return call_error(r, 422, "chunk %u of %s is %s, not 'expected'",
				  b->chunk, b->object, hex);
	return 0;
}

/* Check the evidence against the object's index; owner is set to a
 * snapshot's owner ("" for a kernel or base).  Returns 0, or -1 with the
 * refusal in r. */
static int
bad_chunk_evidence(struct call *c, struct reply *r,
		   const struct authapi_bad_chunk *b, char owner[AUTHSTORE_HEX])
{
	struct authstore_snapshot n;
	struct authstore_trusted t;
	struct chunk_index ix;
	struct manifest m;
	json_error_t je;
	json_t *j;
	struct err e;
	int rc;

	owner[0] = '\0';
	if ((rc = authstore_snapshot_get(c->a->store, b->object, &n, true,
					 &e)) == -1)
		return call_store_error(r, &e);
	if (rc == 1) {
		snprintf(owner, AUTHSTORE_HEX, "%s", n.owner);
		rc = manifest_parse(n.manifest, n.manifest_len, &m, &e);
		free((void *)n.manifest);
		if (rc == -1)
			return call_error(r, 500, "stored manifest: %s", e.msg);
		rc = bad_chunk_in_index(r, &m.delta, b);
		manifest_free(&m);
		return rc;
	}
	if ((rc = authstore_trusted_get(c->a->store, b->object, &t, &e)) == -1)
		return call_store_error(r, &e);
	if (rc == 0)
		return call_error(r, 404, "%s is neither a snapshot nor a "
				  "trusted kernel or base", b->object);
	j = json_loads(t.index_json, 0, &je);
	authstore_trusted_free(&t);
	if (j == NULL || chunkidx_from_json(j, true, &ix, &e) == -1) {
		json_decref(j);
		return call_error(r, 500, "stored chunk index unreadable");
	}
	json_decref(j);
	rc = bad_chunk_in_index(r, &ix, b);
	chunkidx_free(&ix);
	return rc;
}

/* Mark every peer in p bad for the object (but a snapshot's owner: kept,
 * not dropped); into dropped and kept.  Inside the transaction. */
static int
bad_chunk_mark(struct call *c, const struct authapi_bad_chunk *b,
	       const struct bad_peers *p, const char *owner, json_t *dropped,
	       json_t *kept, int64_t *id, struct err *e)
{
	struct authstore_bad_source s;
	bool created;

	memset(&s, 0, sizeof(s));
	snprintf(s.sha256, sizeof(s.sha256), "%s", b->object);
	snprintf(s.reporter, sizeof(s.reporter), "%s", c->signer);
	snprintf(s.expected, sizeof(s.expected), "%s", b->expected);
	snprintf(s.received, sizeof(s.received), "%s", b->received);
	s.chunk = b->chunk;
	s.at = c->now;
	for (size_t i = 0; i < p->n; i++) {
		snprintf(s.peer, sizeof(s.peer), "%s", p->keys[i]);
		if (authstore_bad_source_add(c->a->store, &s, id, &created,
					     e) == -1)
			return -1;
		json_array_append_new(strcmp(p->keys[i], owner) == 0 ? kept
				      : dropped, json_string(p->keys[i]));
	}
	return 0;
}

void
api_reports_bad_chunk(struct call *c, struct reply *r)
{
	struct authapi_bad_chunk b;
	struct bad_peers p = { .reporter = c->signer };
	char owner[AUTHSTORE_HEX];
	json_t *dropped, *kept;
	int64_t id = 0;
	struct err e;

	if (call_registered(c, r) == -1)
		return;
	if (authapi_bad_chunk_parse(c->json, &b, &e) == -1) {
		call_error(r, 400, "%s", e.msg);
		return;
	}
	if (bad_chunk_evidence(c, r, &b, owner) == -1)
		return;
	if (authstore_peers_at(c->a->store, b.addr, bad_peers_one, &p,
			       &e) == -1) {
		call_store_error(r, &e);
		return;
	}
	if (p.n == 0) {
		if (p.reporter_there)
			call_error(r, 400, "a peer cannot report itself");
		else
			call_error(r, 409, "no peer is registered at %s", b.addr);
		return;
	}
	dropped = json_array();
	kept = json_array();
	if (call_begin(c, r) == -1)
		goto out;
	if (bad_chunk_mark(c, &b, &p, owner, dropped, kept, &id, &e) == -1) {
		call_rollback(c);
		call_store_error(r, &e);
		goto out;
	}
	if (call_commit(c, r) == 0) {
		log_info("peer %.16s.. reports %s (%zu peer%s) for chunk %u of "
			 "%.16s..: dropped as its source", c->signer, b.addr, p.n,
			 p.n == 1 ? "" : "s", b.chunk, b.object);
		call_reply(r, 201, json_pack("{s:I, s:s, s:s, s:s, s:I, s:O, "
					     "s:O, s:o}", "report", (json_int_t)id,
					     "kind", AUTHAPI_REPORT_BAD_CHUNK,
					     "object", b.object, "addr", b.addr,
					     "chunk", (json_int_t)b.chunk,
					     "dropped", dropped, "kept", kept,
					     "at", call_time_json(c->now)));
	}
out:
	json_decref(dropped);
	json_decref(kept);
}
