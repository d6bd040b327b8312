/*
 * api_lookup.c - what clients and owners ask about a service.
 *
 *   GET /v1/lookup?host=H&port=P        clients: who serves it
 *   GET /v1/services/<H>:<P>/peers      the owner's view of its hosts
 *
 * Lookup answers exactly {"host", "port", "ttl", "peers": [{"peer", "addr",
 * "port"}]}: the peers committed to the service's newest snapshot that say
 * they are up and were not reported by its owner, with the address and
 * mapped port they serve it at.  A service whose newest snapshot uses a
 * revoked base or kernel answers an empty list.  An unknown service is 404
 * with "fallback": "dns", telling the client to use ordinary DNS.
 *
 * Signed (--key), each peer also names its object server, "mirror",
 * where a peer pinning the key mirrors the answer (lookup_mirrors).
 *
 * "ttl" is how long a client may keep the answer: --ttl, or
 * AUTHORITY_NEGATIVE_TTL (2 s) when no peer serves it, as DNS keeps a
 * negative answer briefly.  With --key the answer is signed (sign.c) and,
 * for an unknown service, the 404 too, with "host" and "port" added so it
 * names what it is about: a client that pins the key would otherwise take
 * an unsigned "fallback": "dns" from anyone in the path.
 *
 * This is the hot path: an answer is kept (lookup_cache.c) until the next
 * change (a signed one at most half its validity) and signed once when
 * computed, not per request; computing one takes one indexed query for
 * the service and one range scan of its commitments, no transaction.
 *
 * The owner's view lists every commitment to any version of the service,
 * up or not, with where each serves and for how long it has been up, and
 * every report made about the service.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authority/authority.h"

static int
lookup_one(void *arg, const char *peer, const char *addr, uint16_t port)
{
	json_t *j = json_pack("{s:s, s:s, s:i}", "peer", peer, "addr", addr,
			      "port", (int)port);

	return j == NULL || json_array_append_new(arg, j) == -1;
}

/*
 * With a key: each peer's object server, as it registered it, as "mirror"
 * (inside the signed bytes): where a fedfs that pins the key mirrors this
 * very answer (docs/fedfs.md, "Mirrored lookup answers"), so a client
 * that holds it can ask those peers when every authority is down.  One
 * point query per peer, once per change (the answer is cached).  Unsigned
 * answers keep their three members: a peer's copy of one proves nothing.
 * Returns 0 or -1 with e set.
 */
static int
lookup_mirrors(struct call *c, json_t *peers, struct err *e)
{
	struct authstore_peer ap;
	size_t i;
	json_t *p;
	int rc;

	if (!c->a->cfg.has_key)
		return 0;
	json_array_foreach(peers, i, p) {
		rc = authstore_peer_get(c->a->store,
				json_string_value(json_object_get(p, "peer")),
				&ap, e);
		if (rc == -1)
			return -1;
		if (rc == 1 && ap.addr[0] != '\0' &&
		    json_object_set_new(p, "mirror", json_string(ap.addr)) == -1)
			return err_set(e, "out of memory");
	}
	return 0;
}

/* Parse a decimal port 1..65535 with nothing else.  Returns 0 or -1. */
static int
lookup_port(const char *s, uint16_t *port)
{
	unsigned long v;
	char *end;

	if (s == NULL || !isdigit((unsigned char)s[0]) || strlen(s) > 5)
		return -1;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || v < 1 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* Sign j for host:port if the authority has a key; *refresh_at is when a
 * cached copy must be signed again (0: never).  Returns 0, or -1 (j
 * released). */
static int
lookup_sign(struct call *c, json_t *j, const char *host, uint16_t port,
	    int64_t *refresh_at)
{
	time_t issued;
	struct err e;

	*refresh_at = 0;
	if (!c->a->cfg.has_key)
		return 0;
	if (json_object_set_new(j, "host", json_string(host)) == -1 ||
	    json_object_set_new(j, "port", json_integer(port)) == -1 ||
	    authority_sign(c->a, j, SIGNED_LOOKUP, &issued, &e) == -1) {
		json_decref(j);
		return -1;
	}
	*refresh_at = (int64_t)issued + c->a->cfg.answer_ttl / 2;
	return 0;
}

/* Answer r with j (signed if there is a key) as text (JSON and a newline),
 * and keep a copy. */
static void
lookup_answer(struct call *c, struct reply *r, const char *host,
	      uint16_t port, uint64_t gen, unsigned status, json_t *j)
{
	char key[AUTHAPI_ADDR_MAX + 1];
	int64_t refresh_at = 0;
	size_t len = 0;
	char *text;

	if (j != NULL && lookup_sign(c, j, host, port, &refresh_at) == -1)
		j = NULL;
	text = j ? call_json_text(j, &len) : NULL;
	json_decref(j);
	if (text == NULL) {
		call_reply(r, 500, NULL);
		return;
	}
	snprintf(key, sizeof(key), "%s:%u", host, port);
	if (!c->a->cfg.no_lookup_cache)
		lookup_cache_put(c->a->lookups, key, gen, refresh_at, status,
				 text, len);
	r->status = status;
	r->text = text;
	r->text_len = len;
	r->content_type = "application/json";
}

/* How long a client may keep an answer listing peers. */
static int
lookup_ttl(const struct call *c, const json_t *peers)
{
	int ttl = c->a->cfg.ttl;

	if (json_array_size(peers) == 0 && ttl > AUTHORITY_NEGATIVE_TTL)
		ttl = AUTHORITY_NEGATIVE_TTL;
	return ttl;
}

void
api_lookup(struct call *c, struct reply *r)
{
	char host[AUTHAPI_HOST_MAX + 1], key[AUTHAPI_ADDR_MAX + 1];
	const char *qhost = call_query(c, "host");
	unsigned status;
	json_t *peers;
	uint16_t port;
	uint64_t gen;
	struct err e;
	size_t i;
	int rc;

	if (qhost == NULL || call_query(c, "port") == NULL) {
		call_error(r, 400, "the 'host' and 'port' query parameters "
			   "are required");
		return;
	}
	if (strlen(qhost) > AUTHAPI_HOST_MAX) {
		call_error(r, 400, "bad 'host' parameter: too long");
		return;
	}
	for (i = 0; qhost[i] != '\0'; i++)	/* DNS names are caseless */
		host[i] = (char)tolower((unsigned char)qhost[i]);
	host[i] = '\0';
	if (authapi_host_check(host, &e) == -1) {
		call_error(r, 400, "bad 'host' parameter");
		return;
	}
	if (lookup_port(call_query(c, "port"), &port) == -1) {
		call_error(r, 400, "bad 'port' parameter: must be 1..65535");
		return;
	}

	snprintf(key, sizeof(key), "%s:%u", host, port);
	gen = atomic_load(&c->a->generation);	/* before the store */
	if (!c->a->cfg.no_lookup_cache &&
	    lookup_cache_get(c->a->lookups, key, gen, (int64_t)c->now, &status,
			     &r->text, &r->text_len) == 1) {
		r->status = status;
		r->content_type = "application/json";
		return;
	}
	if ((peers = json_array()) == NULL) {
		call_reply(r, 500, NULL);
		return;
	}
	rc = authstore_lookup(c->a->store, host, port, lookup_one, peers, &e);
	if (rc == 0) {
		json_decref(peers);
		lookup_answer(c, r, host, port, gen, 404,
			      json_pack("{s:s, s:s}", "error",
					"unknown service", "fallback", "dns"));
		return;
	}
	if (rc == 1 && lookup_mirrors(c, peers, &e) == -1)
		rc = -1;
	if (rc != 1) {
		json_decref(peers);
		if (rc == -1)
			call_store_error(r, &e);
		else
			call_reply(r, 500, NULL);
		return;
	}
	lookup_answer(c, r, host, port, gen, 200,
		      json_pack("{s:s, s:i, s:i, s:o}", "host", host,
				"port", (int)port, "ttl", lookup_ttl(c, peers),
				"peers", peers));
}

struct hosts_ctx {
	json_t *list;
	const char *newest;
	int64_t now;
};

static int
hosts_one(void *arg, const struct authstore_commitment *k)
{
	struct hosts_ctx *h = arg;
	json_t *j;

	j = json_pack("{s:s, s:s, s:I, s:b, s:b, s:s, s:o, s:o, s:I}",
		      "peer", k->peer, "snapshot", k->snapshot,
		      "version", (json_int_t)k->version,
		      "newest", strcmp(k->snapshot, h->newest) == 0,
		      "up", k->up, "object_addr", k->peer_addr,
		      "committed", call_time_json(k->created),
		      "updated", call_time_json(k->updated),
		      "up_seconds", (json_int_t)(k->up ? h->now - k->up_since
						 : 0));
	if (j != NULL && k->has_addr) {
		json_object_set_new(j, "addr", json_string(k->addr));
		json_object_set_new(j, "port", json_integer(k->port));
	}
	return j == NULL || json_array_append_new(h->list, j) == -1;
}

static int
hosts_report(void *arg, const struct authstore_report *rp)
{
	json_t *j = json_pack("{s:I, s:s, s:s, s:s, s:o}",
			      "id", (json_int_t)rp->id, "peer", rp->peer,
			      "reporter", rp->reporter, "reason", rp->reason,
			      "at", call_time_json(rp->at));

	return j == NULL || json_array_append_new(arg, j) == -1;
}

void
api_service_peers(struct call *c, struct reply *r)
{
	char host[MANIFEST_HOST_MAX + 1], service[AUTHAPI_ADDR_MAX + 1];
	struct authstore_snapshot n;
	struct authstore_service sv;
	struct hosts_ctx h;
	json_t *reports;
	uint16_t port;
	struct err e;
	int rc, usable = 0;

	if (service_parse(c->arg, host, &port, &e) == -1) {
		call_error(r, 400, "bad service in path: %s", e.msg);
		return;
	}
	if ((rc = authstore_service_get(c->a->store, host, port, &sv, &e)) == -1) {
		call_store_error(r, &e);
		return;
	}
	if (rc == 0) {
		call_error(r, 404, "unknown service %s:%u", host, port);
		return;
	}
	if (sv.newest[0] != '\0' &&
	    authstore_snapshot_get(c->a->store, sv.newest, &n, false, &e) == 1)
		usable = n.usable;
	h.list = json_array();
	h.newest = sv.newest;
	h.now = c->now;
	reports = json_array();
	if (h.list == NULL || reports == NULL ||
	    authstore_commitment_list(c->a->store, sv.id, hosts_one, &h, &e) != 0 ||
	    authstore_report_list(c->a->store, sv.id, hosts_report, reports,
			      &e) != 0) {
		json_decref(h.list);
		json_decref(reports);
		call_error(r, 500, "internal error: cannot list the hosts");
		return;
	}
	snprintf(service, sizeof(service), "%s:%u", host, port);
	call_reply(r, 200, json_pack(
	    "{s:s, s:s, s:i, s:s, s:s, s:I, s:b, s:o, s:o}",
	    "service", service,
	    "host", host, "port", (int)port, "owner", sv.owner,
	    "newest", sv.newest, "version", (json_int_t)sv.newest_version,
	    "usable", usable, "peers", h.list, "reports", reports));
}
