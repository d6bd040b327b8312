/*
 * call.c - what every handler shares: replies, body parsing, signed-request
 * checks and write transactions.
 *
 * A state-changing handler reads like
 *
 *     call_signed -> call_body -> parse -> call_begin -> checks and writes
 *       -> call_commit -> call_reply
 *
 * with every refusal answered by call_error() and returned at once.
 *
 * Replays.  A signature is remembered from its first verified use until its
 * date leaves the validity window (date + SIGREQ_MAX_SKEW): after that the
 * date alone makes it stale.  The in-memory set (replay.c) catches replays
 * of every signed request, accepted or refused, and two copies racing in
 * parallel.  Signatures of requests that changed state are also written in
 * the same transaction as the change, and reloaded at start, so a request
 * whose change survived a crash or restart cannot be replayed either.
 * Refused requests are not persisted: replaying one after a restart changes
 * nothing it did not already fail to change.  Every CALL_PRUNE_EVERY
 * transactions, stored signatures that expired are deleted, so the table
 * holds about one validity window's worth.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "authority/authority.h"
#include "common/authapi.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/sigreq.h"
#include "common/timefmt.h"

#define CALL_PRUNE_EVERY 256	/* transactions between replay-table prunes */
/* Seconds a client is told to wait while the database fails over: a
 * standby is promoted within seconds (docs/authority-ha.md) */
#define CALL_RETRY_AFTER "2"

int
call_reply(struct reply *r, unsigned status, json_t *j)
{
	json_decref(r->json);
	if (j == NULL) {
		r->status = 500;
		r->json = json_pack("{s:s}", "error", "out of memory");
		return 0;
	}
	r->status = status;
	r->json = j;
	return 0;
}

int
call_error(struct reply *r, unsigned status, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX + 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* the message may quote the request (a path of bytes that are not
	 * UTF-8, or cut inside a character): '?' for anything not printable
	 * ASCII, or json_pack refuses it and the client reads "out of
	 * memory" */
	for (char *p = msg; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	call_reply(r, status, json_pack("{s:s}", "error", msg));
	return -1;
}

/* A store error: 503 with Retry-After while no database that takes
 * writes can be reached (a failover under way), else 500. */
int
call_store_error(struct reply *r, const struct err *e)
{
	log_error("%s", e->msg);
	if (authstore_unavailable()) {
		r->retry_after = CALL_RETRY_AFTER;
		return call_error(r, 503, "the authority's database is not "
				  "reachable (failing over?); retry later");
	}
	return call_error(r, 500, "internal error: the store failed");
}

int
call_body(struct call *c, struct reply *r)
{
	struct err e;

	if (c->json != NULL)
		return 0;
	if (c->body_len == 0)
		return call_error(r, 400, "a JSON body is required");
	if (authapi_parse_object(c->body, c->body_len, &c->json, &e) == -1)
		return call_error(r, 400, "%s", e.msg);
	return 0;
}

int
call_signed(struct call *c, struct reply *r)
{
	const union MHD_ConnectionInfo *ci;
	const char *key, *date, *sig;
	enum sigreq_verdict v;
	struct timespec t;
	uint8_t pub[ED25519_PUB_LEN];
	struct err e;
	int rc;

	key = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND,
					  SIGREQ_HDR_KEY);
	date = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND,
					   SIGREQ_HDR_DATE);
	sig = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND,
					  SIGREQ_HDR_SIG);
	if (key == NULL && date == NULL && sig == NULL)
		return call_error(r, 401, "this request must be signed "
				  "(%s, %s, %s headers)", SIGREQ_HDR_KEY,
				  SIGREQ_HDR_DATE, SIGREQ_HDR_SIG);
	/* before the costly part: a verification, a replay entry */
	ci = MHD_get_connection_info(c->conn,
				     MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	clock_gettime(CLOCK_MONOTONIC, &t);
	if (!ratelimit_take(c->a->limits, ci ? ci->client_addr : NULL,
			    (double)t.tv_sec + t.tv_nsec / 1e9))
		return call_error(r, 429, "too many signed requests from this "
				  "address (at most %g a second, %u at once); "
				  "retry in a moment", c->a->cfg.signed_rate,
				  c->a->cfg.signed_burst);
	e.msg[0] = '\0';
	v = sigreq_verify(key, date, sig, c->method, c->target, c->body,
			  c->body_len, c->now, pub, &e);
	switch (v) {
	case SIGREQ_OK:
		break;
	case SIGREQ_MALFORMED:
		return call_error(r, 401, "bad signature headers: %s", e.msg);
	case SIGREQ_STALE:
		return call_error(r, 401, "stale request: %s", e.msg);
	case SIGREQ_BAD_SIGNATURE:
	default:
		return call_error(r, 401, "bad signature: %s", e.msg);
	}
	hex_encode(pub, ED25519_PUB_LEN, c->signer);
	if (rfc3339_parse(date, &c->sig_date) == -1)
		return call_error(r, 401, "bad signature headers");
	/* known by what was signed, not by the signature's bytes */
	if (sigreq_id(pub, c->method, c->target, date, c->body, c->body_len,
		      c->rid) < 0)
		return call_error(r, 500, "out of memory");
	hex_encode(c->rid, REPLAY_ID_LEN, c->sig_hex);
	rc = replay_check_add(c->a->replay, c->rid,
			      (int64_t)c->sig_date + SIGREQ_MAX_SKEW + 1,
			      (int64_t)c->now);
	if (rc == 1)
		return call_error(r, 409, "replayed request: this signature "
				  "was already used; sign the request again");
	if (rc == -1)
		return call_error(r, 503, "too many signed requests in the "
				  "validity window; retry later");
	return 0;
}

int
call_admin(struct call *c, struct reply *r)
{
	if (!c->a->cfg.has_admin)
		return call_error(r, 403, "this authority has no admin key "
				  "(start it with --admin-key)");
	if (call_signed(c, r) == -1)
		return -1;
	if (strcmp(c->signer, c->a->admin_hex) != 0)
		return call_error(r, 403, "only the admin key may change "
				  "trusted kernels and bases");
	return 0;
}

int
call_registered(struct call *c, struct reply *r)
{
	struct authstore_peer p;
	struct err e;
	int rc;

	if ((rc = authstore_peer_get(c->a->store, c->signer, &p, &e)) == -1)
		return call_store_error(r, &e);
	if (rc == 0)
		return call_error(r, 403, "peer %s is not registered "
				  "(fed register first)", c->signer);
	return 0;
}

int
call_hex_arg(struct call *c, struct reply *r, const char *what)
{
	if (c->arg == NULL || !hex_is_sha256(c->arg))
		return call_error(r, 400, "bad %s in path: must be 64 "
				  "lower-case hex digits", what);
	return 0;
}

int
call_begin(struct call *c, struct reply *r)
{
	struct err e;

	if (authstore_begin(c->a->store, &e) == -1)
		return call_store_error(r, &e);
	/* Now and then, forget signatures whose dates went stale. */
	if (atomic_fetch_add(&c->a->writes, 1) % CALL_PRUNE_EVERY == 0 &&
	    authstore_sig_prune(c->a->store, (int64_t)c->now, &e) == -1) {
		authstore_rollback(c->a->store);
		return call_store_error(r, &e);
	}
	if (c->sig_hex[0] == '\0')
		return 0;
	switch (authstore_sig_add(c->a->store, c->sig_hex,
				  (int64_t)c->sig_date + SIGREQ_MAX_SKEW + 1,
				  &e)) {
	case 0:
		return 0;
	case 1:		/* another authority on the same store took it */
		authstore_rollback(c->a->store);
		return call_error(r, 409, "replayed request: this signature "
				  "was already used; sign the request again");
	default:
		authstore_rollback(c->a->store);
		return call_store_error(r, &e);
	}
}

int
call_commit_quiet(struct call *c, struct reply *r)
{
	struct err e;

	if (authstore_commit(c->a->store, &e) == -1)
		return call_store_error(r, &e);
	return 0;
}

int
call_commit(struct call *c, struct reply *r)
{
	if (call_commit_quiet(c, r) == -1)
		return -1;
	/* after the commit: see lookup_cache.c for why */
	atomic_fetch_add(&c->a->generation, 1);
	return 0;
}

void
call_rollback(struct call *c)
{
	authstore_rollback(c->a->store);
}

char *
call_json_text(const json_t *j, size_t *len)
{
	char *text = json_dumps(j, JSON_COMPACT), *t;

	if (text == NULL)
		return NULL;
	*len = strlen(text);
	if ((t = realloc(text, *len + 2)) == NULL) {
		free(text);
		return NULL;
	}
	t[(*len)++] = '\n';
	t[*len] = '\0';
	return t;
}

const char *
call_query(struct call *c, const char *name)
{
	return MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND,
					   name);
}

json_t *
call_time_json(int64_t t)
{
	char buf[RFC3339_LEN + 1];

	rfc3339_format((time_t)t, buf);
	return json_string(buf);
}
