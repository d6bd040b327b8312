/*
 * authfix.h - a real authority for tests, and a client that speaks to it.
 *
 * authfix_start() runs an authority in the test process on an ephemeral
 * loopback port (a fresh database in a fresh directory, an admin key);
 * authfix_spawn() runs bin/fed-authority as a child instead (for kill -9).
 * Every request goes over real HTTP through common/http.c (libcurl).
 *
 * The helpers assert (Criterion) on anything unexpected, so a test reads as
 * the story it checks.
 */
#ifndef FED_TEST_AUTHFIX_H
#define FED_TEST_AUTHFIX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "authority/authority.h"
#include "common/crypto.h"
#include "common/hex.h"
#include "common/sigreq.h"

struct tkey {
	uint8_t seed[ED25519_SEED_LEN];
	uint8_t pub[ED25519_PUB_LEN];
	char hex[SHA256_HEX_LEN + 1];
};

struct authfix {
	char *dir;			/* removed by authfix_stop */
	char *db;
	struct authority *a;		/* in-process, or NULL */
	pid_t pid;			/* child, or 0 */
	uint16_t port;
	char url[64];
	struct tkey admin;
};

/* A new random key. */
void tkey_new(struct tkey *k);

/* Start an in-process authority; cfg may be NULL (defaults).  Its admin key
 * is f->admin unless cfg says otherwise. */
void authfix_start(struct authfix *f, const struct authority_config *cfg);

/* Start an in-process authority with defaults and f->admin as its admin,
 * signing its answers (--key) with key, valid answer_ttl seconds; key NULL:
 * unsigned. */
void authfix_start_signed(struct authfix *f, const struct tkey *key,
			  int answer_ttl);

/* Start bin/fed-authority (from $BINDIR, default "bin") on f->db with extra
 * arguments (NULL-terminated, may be NULL); waits for its port file. */
void authfix_spawn(struct authfix *f, const char *const *extra);
/* SIGKILL the child and reap it. */
void authfix_kill9(struct authfix *f);

/* Stop whatever runs and remove the directory. */
void authfix_stop(struct authfix *f);

/* GET /healthz answers 200. */
bool authfix_alive(struct authfix *f);

/* A request through authority_call: body stolen (may be NULL), signed by k
 * (may be NULL).  Returns the status; *reply (if reply) the JSON reply. */
long af_call(struct authfix *f, const char *method, const char *path,
	     json_t *body, const struct tkey *k, json_t **reply);

/* A raw request: body bytes, extra headers (NULL-terminated, may be NULL).
 * Returns the status; *text (if text) the reply body, malloc'd. */
long af_raw(struct authfix *f, const char *method, const char *target,
	    const char *body, size_t len, const char *const *headers,
	    char **text);

/* Signed raw request made at time `when` (for stale and replay tests). */
long af_signed_raw(struct authfix *f, const struct tkey *k, time_t when,
		   const char *method, const char *target, const char *body,
		   char **text);
/* Send a request with the signature headers of sr as they are (a test may
 * have altered them). */
long af_send_signed(struct authfix *f, const struct sigreq *sr,
		    const char *method, const char *target, const char *body,
		    char **text);

/* The "error" member of a reply ("" if none). */
const char *af_error(const json_t *reply);

/* Assert the reply is status with an error containing want; frees reply. */
void af_expect(long status, json_t *reply, long want_status,
	       const char *want_text);

/* Register k at addr (asserts 200 or 201). */
void af_register(struct authfix *f, const struct tkey *k, const char *addr);

/* Trust a fresh random file of kind as admin; its hash into sha. */
void af_trust(struct authfix *f, const char *kind, char sha[65]);

/* Build and sign a manifest; *bytes malloc'd. */
void af_manifest(const struct tkey *owner, const char *host, uint16_t port,
		 int64_t version, const char *base, const char *kernel,
		 char **bytes, size_t *len, char sig[129]);

/* Announce; the snapshot id into id (if not NULL).  Returns the status;
 * *reply as af_call. */
long af_announce(struct authfix *f, const struct tkey *signer,
		 const struct tkey *owner, const char *host, uint16_t port,
		 int64_t version, const char *base, const char *kernel,
		 char id[65], json_t **reply);

/* Commit k to snapshot id and report it up at addr:port (asserts 2xx). */
void af_commit_up(struct authfix *f, const struct tkey *k, const char *id,
		  const char *addr, uint16_t port);

/* GET /v1/lookup: the status, and the peers' keys in *peers (array reply
 * member, borrowed from *reply which the caller frees). */
long af_lookup(struct authfix *f, const char *host, uint16_t port,
	       json_t **reply);

/* The usual cast: an owner and two peers registered (at 10.0.0.1-3:7000),
 * a base and a kernel trusted, and the owner's snapshot of
 * www.example.org:80 at version announced (asserts 201; its id in id). */
struct af_world {
	struct tkey owner, p1, p2;
	char base[65], kernel[65], id[65];
};
void af_world_make(struct authfix *f, struct af_world *w, int64_t version);

/* True iff the lookup reply lists peer key hex. */
bool af_lookup_has(const json_t *reply, const char *hex);

#endif
