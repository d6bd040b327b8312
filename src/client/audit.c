/*
 * audit.c - the owner polices its hosts (paper section 3.7): fetch one
 * path from every peer serving the service, straight at the peer's
 * address, and compare what comes back with the SHA-256 the owner expects.
 *
 * The list is the owner's view (GET /v1/services/<host>:<port>/peers),
 * not a lookup: it names every committed peer, with where it serves, even
 * when lookups would hide some.  Peers down or without an address are not
 * fetched (there is nowhere to ask), nor are peers already reported for
 * this service (the authority no longer sends visitors to them).  The request carries
 * Host: <host>:<port>, as a client's would, so a peer cannot tell an audit
 * from a visitor.  Peers are fetched one after another: an audit is a rare,
 * deliberate act, and one at a time keeps latencies comparable.
 *
 * client_report() is the one place that sends POST /v1/reports; both
 * `fed report` and `fed audit --report` use it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "common/crypto.h"
#include "common/hex.h"
#include "common/http.h"

#define AUDIT_TIMEOUT_MS 15000L

const char *
client_verdict_name(enum client_verdict v)
{
	switch (v) {
	case CLIENT_AUDIT_OK: return "ok";
	case CLIENT_AUDIT_MISMATCH: return "MISMATCH";
	case CLIENT_AUDIT_UNREACHABLE: return "unreachable";
	case CLIENT_AUDIT_HTTP: return "HTTP";
	}
	return "?";
}

static double
audit_ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 +
	    (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Fetch path from one peer and judge it. */
static void
audit_one(const char *host, uint16_t port, const char *path,
	  const char *expect, struct client_audit_row *row)
{
	char url[AUTHAPI_HOST_MAX + 2048], hosthdr[AUTHAPI_HOST_MAX + 16];
	const char *headers[2] = { hosthdr, NULL };
	struct http_reply r = { 0, NULL, 0 };
	uint8_t digest[SHA256_LEN];
	struct timespec t0;
	struct err e;

	snprintf(url, sizeof(url),
		 strchr(row->p.addr, ':') ? "http://[%s]:%u%s" :
		 "http://%s:%u%s", row->p.addr, row->p.port, path);
	snprintf(hosthdr, sizeof(hosthdr), "Host: %s:%u", host, port);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (http_request("GET", url, headers, NULL, 0, AUDIT_TIMEOUT_MS, 0, &r,
			 &e) == -1) {
		row->latency_ms = audit_ms_since(&t0);
		row->verdict = CLIENT_AUDIT_UNREACHABLE;
		snprintf(row->why, sizeof(row->why), "%s", e.msg);
		return;
	}
	row->latency_ms = audit_ms_since(&t0);
	row->status = r.status;
	sha256(r.body, r.len, digest);
	hex_encode(digest, SHA256_LEN, row->sha256);
	if (r.status < 200 || r.status >= 300)
		row->verdict = CLIENT_AUDIT_HTTP;
	else if (strcmp(row->sha256, expect) != 0)
		row->verdict = CLIENT_AUDIT_MISMATCH;
	else
		row->verdict = CLIENT_AUDIT_OK;
	http_reply_free(&r);
}

/* Was peer id already reported for this service (owner's view)? */
static bool
audit_reported(const json_t *view, const char *id)
{
	const json_t *r;
	size_t i;

	json_array_foreach(json_object_get(view, "reports"), i, r) {
		const char *peer = json_string_value(json_object_get(r,
								     "peer"));

		if (peer != NULL && strcmp(peer, id) == 0)
			return true;
	}
	return false;
}

int
client_audit(const char *authority, const char *host, uint16_t port,
	     const char *path, const char *expect,
	     struct client_audit_row **rows, size_t *n, struct err *e)
{
	char qpath[AUTHAPI_HOST_MAX + 64];
	json_t *reply = NULL, *peers, *p;
	struct client_audit_row *out;
	long status;
	size_t i, k = 0;

	*rows = NULL;
	*n = 0;
	if (!hex_is_sha256(expect))
		return err_set(e, "--expect must be 64 lower-case hex digits");
	if (path[0] != '/')
		return err_set(e, "--path must start with '/'");
	snprintf(qpath, sizeof(qpath), "/v1/services/%s:%u/peers", host, port);
	if (authority_call(authority, "GET", qpath, NULL, NULL, &status,
			   &reply, e) == -1)
		return -1;
	if (status != 200) {
		authority_refused(status, reply, e);
		json_decref(reply);
		return -1;
	}
	peers = json_object_get(reply, "peers");
	out = calloc(json_array_size(peers) + 1, sizeof(*out));
	if (out == NULL) {
		json_decref(reply);
		return err_set(e, "out of memory");
	}
	json_array_foreach(peers, i, p) {
		const char *id = json_string_value(json_object_get(p, "peer"));
		const char *addr = json_string_value(json_object_get(p, "addr"));
		json_int_t pp = json_integer_value(json_object_get(p, "port"));
		struct client_audit_row *row = &out[k];

		if (!json_is_true(json_object_get(p, "up")) || id == NULL ||
		    audit_reported(reply, id) ||
		    addr == NULL || pp < 1 || pp > 65535 ||
		    strlen(id) > SHA256_HEX_LEN ||
		    strlen(addr) > AUTHAPI_HOST_MAX)
			continue;
		strcpy(row->p.peer, id);
		strcpy(row->p.addr, addr);
		row->p.port = (uint16_t)pp;
		audit_one(host, port, path, expect, row);
		k++;
	}
	json_decref(reply);
	*rows = out;
	*n = k;
	return 0;
}

int
client_report(const char *authority, const uint8_t *seed, const char *host,
	      uint16_t port, const char *peer, const char *reason,
	      json_t **reply, struct err *e)
{
	char service[AUTHAPI_ADDR_MAX + 1];
	json_t *body, *r = NULL;
	long status;
	int rc;

	if (reply != NULL)
		*reply = NULL;
	if (!hex_is_sha256(peer))
		return err_set(e, "%s: not a peer id (64 lower-case hex "
			       "digits)", peer);
	snprintf(service, sizeof(service), "%s:%u", host, port);
	body = json_pack("{s:s, s:s, s:s}", "service", service, "peer", peer,
			 "reason", reason);
	if (body == NULL)
		return err_set(e, "out of memory");
	rc = authority_call(authority, "POST", "/v1/reports", body, seed,
			    &status, &r, e);
	json_decref(body);
	if (rc == -1)
		return -1;
	if (status < 200 || status >= 300) {
		authority_refused(status, r, e);
		json_decref(r);
		return -1;
	}
	if (reply != NULL)
		*reply = r;
	else
		json_decref(r);
	return 0;
}
