/*
 * signed_answer.h - answers the authority signs, and the one check every
 * client makes of them (docs/authority-api.md, "Signed answers").
 *
 * Who a client talks to is decided by two answers: GET /v1/lookup (which
 * peers serve host:port) and GET /v1/sources/<sha256> (whom a peer fetches
 * an object from).  An authority started with --key adds to each
 *
 *   "issued_at": RFC 3339 time it was signed,
 *   "expires":   RFC 3339 time after which it proves nothing
 *                (issued_at + --answer-ttl),
 *   "version":   an integer that only grows per service (the issue time
 *                in milliseconds, see the authority's sign.c),
 *   "key":       the authority's public key, hex,
 *   "signature": hex Ed25519 signature of the canonical bytes:
 *
 *     DOMAIN || json_dumps(answer without "signature",
 *                          JSON_COMPACT | JSON_SORT_KEYS)
 *
 * with DOMAIN "fed-lookup-v1\n" or "fed-sources-v1\n", so an answer for one
 * purpose never verifies as the other.  The answer names what it is about
 * (host and port; sha256), and the check compares that with what was asked,
 * so an answer for one service cannot be passed off for another.
 *
 * A client that pins the authority's key (--authority-key) accepts an
 * answer only if it verifies, has not expired (or, with --allow-stale, only
 * when no fresh one can be had, saying so) and is not older than the one
 * it holds (a rollback).  Without a pinned key nothing is checked, as
 * before.
 */
#ifndef FED_SIGNED_ANSWER_H
#define FED_SIGNED_ANSWER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "common/crypto.h"
#include "common/err.h"

/* The largest canonical answer signed or checked: the authority's answers
 * are at most a few hundred KiB (256 sources; a lookup's peers). */
#define SIGNED_ANSWER_MAX (1u << 20)

enum signed_kind {
	SIGNED_LOOKUP,		/* GET /v1/lookup; subject "host:port" */
	SIGNED_SOURCES,		/* GET /v1/sources/<sha256>; subject the hash */
};

/* What a client trusts.  on false: no --authority-key, nothing checked. */
struct signed_trust {
	bool on;
	uint8_t key[ED25519_PUB_LEN];
	bool allow_stale;	/* --allow-stale */
	/* --mirror "ADDR:PORT,...": peers' object servers asked for a signed
	 * answer when no authority answers (client/mirror.c); NULL: none.
	 * Only with on: an unsigned answer from a peer proves nothing. */
	const char *mirrors;
};

/* The signed fields of a verified answer. */
struct signed_meta {
	time_t issued_at;
	time_t expires;
	int64_t version;
};

/* What signed_answer_verify() found. */
enum signed_verdict {
	SIGNED_BAD = -1,	/* malformed, another subject, bad signature */
	SIGNED_OK = 0,		/* verifies and has not expired */
	SIGNED_EXPIRED = 1,	/* verifies, but expires <= now */
};

/* The domain string of kind (with its newline). */
const char *signed_answer_domain(enum signed_kind kind);

/*
 * Authority side: add issued_at, expires (issued + ttl seconds), version,
 * key and signature to the answer object j, signed with seed (pub its
 * public key).  Returns 0, or -1 with e set (j may then hold some of the
 * fields: the caller discards it).
 */
int signed_answer_sign(json_t *j, enum signed_kind kind,
		       const uint8_t seed[ED25519_SEED_LEN],
		       const uint8_t pub[ED25519_PUB_LEN], time_t issued,
		       int ttl, int64_t version, struct err *e);

/*
 * Check j, an answer of kind about subject ("host:port" or the hash),
 * against the pinned key at time now.  Fills m when the signature verifies.
 * Returns SIGNED_OK; SIGNED_EXPIRED with e saying how long ago, e.g.
 * "lookup answer for H:P expired 3 minutes ago (issued ...); the authority
 * or a replay is stale; --allow-stale uses it anyway"; or SIGNED_BAD with e
 * saying what is wrong.
 */
enum signed_verdict signed_answer_verify(const json_t *j,
					 enum signed_kind kind,
					 const char *subject,
					 const uint8_t key[ED25519_PUB_LEN],
					 time_t now, struct signed_meta *m,
					 struct err *e);

/*
 * The rollback check: may j (verified, meta m) replace held (verified, meta
 * hm; NULL: nothing held)?  Yes if its version is at least held's, or if
 * it says the same thing as held apart from the signed fields (two
 * authorities over one database, or a re-signed cached answer: nothing
 * rolls back).  Returns 0, or -1 with e naming both versions.
 */
int signed_answer_not_older(const json_t *j, const struct signed_meta *m,
			    const json_t *held, const struct signed_meta *hm,
			    enum signed_kind kind, const char *subject,
			    struct err *e);

/*
 * Parse text (len bytes, at most SIGNED_ANSWER_MAX) as one JSON object
 * without duplicate keys.  Returns it (the caller decrefs), or NULL with e
 * set.
 */
json_t *signed_answer_parse(const char *text, size_t len, struct err *e);

/*
 * A pinned key from an option's value: 64 hex digits, or the name of a
 * public key file (as --admin-key reads).  Returns 0 or -1 with e set.
 */
int signed_trust_key(const char *arg, uint8_t key[ED25519_PUB_LEN],
		     struct err *e);

#endif
