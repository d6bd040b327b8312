/*
 * api_snapshots.c - the snapshot catalogue.
 *
 *   POST /v1/snapshots                  owner-signed: announce a manifest
 *   GET  /v1/snapshots[?service=H:P]    the catalogue (one service's,
 *                                       newest first)
 *   GET  /v1/snapshots/<id>             manifest bytes + owner's signature
 *
 * An announcement is accepted only if, in this order:
 *   the body is {"manifest": "<canonical line>", "signature": "<hex>"} (400)
 *   the manifest parses, is canonical and its owner signed it      (422)
 *   the request is signed by the manifest's owner                  (403)
 *   the owner is a registered peer                                 (403)
 *   the owner's key was not rotated nor revoked (api_keys.c)       (403)
 *   base and kernel are trusted, of that kind, not revoked         (422)
 *   the service host:port is not owned by another key              (403)
 *   nor frozen: owned by a revoked key awaiting its successor      (403)
 *   its version is greater than the newest of the service          (409)
 *   a new service fits the owner's publish allowance               (403)
 * The same manifest announced again is answered 200 with the entry, so a
 * client may retry an announcement whose reply it lost.
 *
 * Reciprocity (paper 3.4): an owner may own --publish-allowance services
 * plus one per other owner's service it currently hosts and keeps up.  Only
 * new services count; new versions of a service one owns are always
 * accepted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authority/authority.h"
#include "common/fedsnap.h"
#include "common/hex.h"

static json_t *
snapshot_json(const struct authstore_snapshot *n)
{
	char service[AUTHAPI_ADDR_MAX + 1];

	snprintf(service, sizeof(service), "%s:%u", n->host, n->port);
	return json_pack("{s:s, s:s, s:s, s:i, s:s, s:I, s:s, s:s, s:s, s:s,"
			 " s:o, s:b}",
			 "id", n->id, "service", service, "host", n->host,
			 "port", (int)n->port, "owner", n->owner,
			 "version", (json_int_t)n->version, "name", n->name,
			 "base", n->base, "kernel", n->kernel,
			 "created", n->created,
			 "announced", call_time_json(n->announced),
			 "usable", n->usable);
}

/* Base or kernel hash must be trusted as kind and not revoked. */
static int
snapshots_check_trusted(struct call *c, struct reply *r, const char *kind,
			const uint8_t hash[SHA256_LEN])
{
	char hex[SHA256_HEX_LEN + 1];
	struct authstore_trusted t;
	struct err e;
	int rc;

	hex_encode(hash, SHA256_LEN, hex);
	if ((rc = authstore_trusted_get(c->a->store, hex, &t, &e)) == -1)
		return call_store_error(r, &e);
	if (rc == 0)
		return call_error(r, 422, "%s %s is not trusted", kind, hex);
	rc = 0;
	if (strcmp(t.kind, kind) != 0)
		rc = call_error(r, 422, "%s %s is trusted as a %s, not a %s",
				kind, hex, t.kind, kind);
	else if (t.revoked != 0)
		rc = call_error(r, 422, "%s %s is revoked", kind, hex);
	authstore_trusted_free(&t);
	return rc;
}

/* Inside the transaction: may the signer own one more service? */
static int
snapshots_check_allowance(struct call *c, struct reply *r)
{
	struct authstore_contribution k;
	struct err e;
	int64_t allowance;

	if (authstore_peer_contribution(c->a->store, c->signer, c->now, &k,
				    &e) == -1)
		return call_store_error(r, &e);
	allowance = c->a->cfg.publish_allowance + k.services_hosted;
	if (k.services_owned >= allowance)
		return call_error(r, 403, "publish allowance exhausted: you "
				  "own %lld service(s) and may own %lld (%d, "
				  "plus one per other owner's service you "
				  "host and keep up, now %lld); commit to "
				  "another owner's service and keep it up to "
				  "earn one more",
				  (long long)k.services_owned,
				  (long long)allowance,
				  c->a->cfg.publish_allowance,
				  (long long)k.services_hosted);
	return 0;
}

void
api_snapshots_post(struct call *c, struct reply *r)
{
	struct authapi_announce an;
	struct authstore_snapshot n, old;
	struct authstore_service sv;
	struct manifest m;
	uint8_t id[SHA256_LEN];
	struct err e;
	int rc, have_m = 0, existing;

	if (call_signed(c, r) == -1 || call_body(c, r) == -1)
		return;
	if (authapi_announce_parse(c->json, &an, &e) == -1) {
		call_error(r, 400, "%s", e.msg);
		return;
	}
	if (fedsnap_check_signed_manifest(an.manifest, an.manifest_len,
					  an.sig, &m, &e) == -1) {
		call_error(r, 422, "manifest refused: %s", e.msg);
		return;
	}
	have_m = 1;

	memset(&n, 0, sizeof(n));
	hex_encode(m.owner, ED25519_PUB_LEN, n.owner);
	if (strcmp(n.owner, c->signer) != 0) {
		call_error(r, 403, "the request is signed by %s but the "
			   "manifest's owner is %s", c->signer, n.owner);
		goto done;
	}
	if (call_registered(c, r) == -1 ||
	    snapshots_check_trusted(c, r, "base", m.base) == -1 ||
	    snapshots_check_trusted(c, r, "kernel", m.kernel) == -1)
		goto done;

	manifest_id(an.manifest, an.manifest_len, id);
	hex_encode(id, SHA256_LEN, n.id);
	snprintf(n.host, sizeof(n.host), "%s", m.host);
	n.port = m.port;
	n.version = m.version;
	hex_encode(m.base, SHA256_LEN, n.base);
	hex_encode(m.kernel, SHA256_LEN, n.kernel);
	snprintf(n.name, sizeof(n.name), "%s", m.name);
	snprintf(n.created, sizeof(n.created), "%s", m.created);
	hex_encode(an.sig, ED25519_SIG_LEN, n.signature);
	n.announced = c->now;
	n.manifest = an.manifest;
	n.manifest_len = an.manifest_len;
	n.usable = true;

	if (call_begin(c, r) == -1)
		goto done;
	if ((existing = authstore_snapshot_get(c->a->store, n.id, &old, false,
					   &e)) == -1)
		goto authstore_bad;
	if (keys_check_signer(c, r) == -1) {
		call_rollback(c);
		goto done;
	}
	if (existing == 1) {
		/* The very same manifest: a retry.  Record the signature. */
		if (call_commit(c, r) == 0)
			call_reply(r, 200, snapshot_json(&old));
		goto done;
	}
	if ((rc = authstore_service_get(c->a->store, m.host, m.port, &sv,
				    &e)) == -1)
		goto authstore_bad;
	if (rc == 1 && keys_check_service(c, r, &sv) == -1) {
		call_rollback(c);
		goto done;
	}
	if (rc == 1 && strcmp(sv.owner, c->signer) != 0) {
		call_rollback(c);
		call_error(r, 403, "service %s:%u is owned by another key "
			   "(%s)", m.host, m.port, sv.owner);
		goto done;
	}
	if (rc == 1 && m.version <= sv.newest_version) {
		call_rollback(c);
		call_error(r, 409, "rollback refused: version %lld is not "
			   "greater than version %lld, the newest of %s:%u",
			   (long long)m.version,
			   (long long)sv.newest_version, m.host, m.port);
		goto done;
	}
	if (rc == 0) {
		if (snapshots_check_allowance(c, r) == -1) {
			call_rollback(c);
			goto done;
		}
		memset(&sv, 0, sizeof(sv));
		snprintf(sv.host, sizeof(sv.host), "%s", m.host);
		sv.port = m.port;
		memcpy(sv.owner, c->signer, sizeof(sv.owner));
		sv.created = c->now;
		if (authstore_service_add(c->a->store, &sv, &e) == -1)
			goto authstore_bad;
	}
	n.service = sv.id;
	if (authstore_snapshot_add(c->a->store, &n, &e) == -1)
		goto authstore_bad;
	if (call_commit(c, r) == 0)
		call_reply(r, 201, snapshot_json(&n));
	goto done;
authstore_bad:
	call_rollback(c);
	call_store_error(r, &e);
done:
	if (have_m)
		manifest_free(&m);
}

static int
snapshots_list_one(void *arg, const struct authstore_snapshot *n)
{
	json_t *j = snapshot_json(n);

	return j == NULL || json_array_append_new(arg, j) == -1;
}

void
api_snapshots_list(struct call *c, struct reply *r)
{
	char host[MANIFEST_HOST_MAX + 1];
	const char *service;
	uint16_t port = 0;
	json_t *list;
	struct err e;
	int rc;

	service = call_query(c, "service");
	if (service != NULL &&
	    service_parse(service, host, &port, &e) == -1) {
		call_error(r, 400, "bad 'service' parameter: %s", e.msg);
		return;
	}
	if ((list = json_array()) == NULL) {
		call_reply(r, 500, NULL);
		return;
	}
	rc = authstore_snapshot_list(c->a->store, service ? host : NULL, port,
				 snapshots_list_one, list, &e);
	if (rc != 0) {
		json_decref(list);
		if (rc == -1)
			call_store_error(r, &e);
		else
			call_reply(r, 500, NULL);
		return;
	}
	call_reply(r, 200, json_pack("{s:o}", "snapshots", list));
}

void
api_snapshot_get(struct call *c, struct reply *r)
{
	struct authstore_snapshot n;
	struct err e;
	json_t *j;
	int rc;

	if (call_hex_arg(c, r, "snapshot id") == -1)
		return;
	if ((rc = authstore_snapshot_get(c->a->store, c->arg, &n, true,
				     &e)) == -1) {
		call_store_error(r, &e);
		return;
	}
	if (rc == 0) {
		call_error(r, 404, "no snapshot %s", c->arg);
		return;
	}
	j = snapshot_json(&n);
	if (j != NULL) {
		json_object_set_new(j, "manifest",
				    json_stringn(n.manifest, n.manifest_len));
		json_object_set_new(j, "signature", json_string(n.signature));
	}
	free((char *)n.manifest);
	call_reply(r, 200, j);
}
