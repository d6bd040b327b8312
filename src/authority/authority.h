/*
 * authority.h - fed-authority: the REST service peers, owners and clients
 * talk to (docs/design.md "Authority REST"; docs/authority-api.md).
 *
 * The daemon's rooms:
 *
 *   main.c          options, signals, start and stop
 *   server.c        libmicrohttpd: connections, body collection and cap,
 *                   routing, one log line and metrics per request
 *   call.c          what every handler shares: JSON replies and errors,
 *                   body parsing, signed-request checks, transactions
 *   replay.c        signatures seen within the validity window
 *   lookup_cache.c  lookup answers, valid until the next change
 *   metrics.c       Prometheus counters and histograms
 *   sign.c          signed lookup and sources answers (--key): versions
 *   api_*.c         one file per resource: peers, trusted, snapshots,
 *                   commitments (and sources), lookup (and services),
 *                   reports, owner keys (api_keys.c)
 *   authstore.h     the engine-neutral store, authstore_sqlite.c its engine
 *
 * This header holds the types they share; the public part for main() and
 * tests is authority_start() / authority_port() / authority_stop().
 */
#ifndef FED_AUTHORITY_H
#define FED_AUTHORITY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "authority/authstore.h"
#include "common/crypto.h"
#include "common/err.h"
#include "common/signed_answer.h"

/* ---- configuration and life cycle ---- */

#define AUTHORITY_TTL_DEFAULT        30
/* ttl of a lookup answer with no peers: like a DNS negative answer, kept
 * only briefly, so a client that looked just before the first peer came
 * up does not see "no peer serves it" for a whole --ttl */
#define AUTHORITY_NEGATIVE_TTL       2
#define AUTHORITY_ANSWER_TTL_DEFAULT 600	/* signed answers' validity, s */
#define AUTHORITY_PEER_TTL_DEFAULT   180
#define AUTHORITY_FORGET_DEFAULT     (30 * 86400)
#define AUTHORITY_SIGNED_RATE_DEFAULT  20	/* per client address, a second */
#define AUTHORITY_SIGNED_BURST_DEFAULT 600
#define AUTHORITY_ALLOWANCE_DEFAULT  1
#define AUTHORITY_BODY_MAX_DEFAULT   (1u << 20)
#define AUTHORITY_CONN_TIMEOUT       30	/* seconds idle before close */
#define AUTHORITY_PER_IP_DEFAULT     256
#define AUTHORITY_CONN_LIMIT_DEFAULT 4096
#define AUTHORITY_SOURCES_MAX        256	/* per /v1/sources answer */

struct authority_config {
	const char *listen;		/* "ADDR:PORT"; port 0: any free */
	const char *db_path;
	bool has_admin;
	uint8_t admin[ED25519_PUB_LEN];
	int ttl;			/* lookup answers' ttl, seconds */
	/* --key: lookup and sources answers are signed with it (sign.c),
	 * valid answer_ttl seconds from when they are signed */
	bool has_key;
	uint8_t key_seed[ED25519_SEED_LEN];
	uint8_t key_pub[ED25519_PUB_LEN];
	int answer_ttl;
	/* Seconds a peer (for sources) or a commitment (for lookups) stays
	 * live without being refreshed; 0: forever.  Peers refresh at a
	 * third of it (the replies to POST /v1/peers and PUT
	 * /v1/commitments say how long it is). */
	int peer_ttl;
	/* Seconds after which a peer not heard from is forgotten, with what
	 * it said it holds, unless it owns a service or holds a commitment;
	 * counted only once the authority has itself run that long; 0, or
	 * no peer_ttl: never (sweep.c). */
	int forget_after;
	/* Signed requests a client address may send: rate a second on
	 * average (0: no limit), burst at once (ratelimit.c). */
	double signed_rate;
	unsigned signed_burst;
	int publish_allowance;		/* services an owner may have free */
	unsigned threads;		/* 0: one per core */
	unsigned conn_timeout;		/* seconds */
	unsigned per_ip_limit;
	unsigned conn_limit;
	size_t body_max;
	bool no_lookup_cache;		/* every lookup asks the store */
	bool quiet;			/* no log line per request */
};

/* Fill c with the defaults above (listen and db_path NULL). */
void authority_config_defaults(struct authority_config *c);

/*
 * Open the store and start serving.  Returns the running authority (the
 * caller stops it with authority_stop(), which frees it), or NULL with e
 * set.  cfg is copied.
 */
struct authority *authority_start(const struct authority_config *cfg,
				  struct err *e);

/* The port actually listened on (useful with port 0). */
uint16_t authority_port(const struct authority *a);

/* Stop accepting, finish requests in progress, close the store, free a. */
void authority_stop(struct authority *a);

/* ---- signed requests per client (ratelimit.c) ---- */

struct ratelimit;

/* rate a second, burst at once, per client address; NULL on out of
 * memory.  Release with ratelimit_free(). */
struct ratelimit *ratelimit_new(double rate, double burst);
void ratelimit_free(struct ratelimit *rl);
/* May the client at sa send one more now (monotonic seconds)?  Takes a
 * token if so.  Always true with rate 0, or no address. */
bool ratelimit_take(struct ratelimit *rl, const struct sockaddr *sa,
		    double now);

/* ---- replay protection (replay.c) ---- */

struct replay;

/* An empty set; NULL on out of memory.  Release with replay_free(). */
struct replay *replay_new(void);
void replay_free(struct replay *r);
/*
 * A signed request is known by its id: the SHA-256 of the signer's key and
 * of everything the signature covers (call_replay_id), not by the
 * signature's bytes, which an observer can alter into another valid
 * signature of the same request (an Ed25519 S plus the group order, where
 * a verifier does not refuse it).
 */
#define REPLAY_ID_LEN SHA256_LEN

/*
 * Remember request id until expires.  Returns 0 if it was new (and is now
 * remembered), 1 if it was already there (a replay), -1 if the set is full
 * of unexpired ids.
 */
int replay_check_add(struct replay *r, const uint8_t id[REPLAY_ID_LEN],
		     int64_t expires, int64_t now);
size_t replay_count(struct replay *r);

/* ---- lookup answers (lookup_cache.c) ---- */

struct lookup_cache;

/* An empty cache; NULL on out of memory.  Release with lookup_cache_free. */
struct lookup_cache *lookup_cache_new(void);
void lookup_cache_free(struct lookup_cache *c);
/*
 * The answer kept for key at generation gen, not due for refreshing at now
 * (unix seconds): returns 1 with *status and a malloc'd copy of the body in
 * *body (the caller frees it), or 0.
 */
int lookup_cache_get(struct lookup_cache *c, const char *key, uint64_t gen,
		     int64_t now, unsigned *status, char **body, size_t *len);
/* Keep (a copy of) an answer computed from the store as of generation gen,
 * read before the store was, until refresh_at (unix seconds; 0: as long as
 * gen lasts): a signed answer is signed again before it grows old. */
void lookup_cache_put(struct lookup_cache *c, const char *key, uint64_t gen,
		      int64_t refresh_at, unsigned status, const char *body,
		      size_t len);

/* ---- metrics (metrics.c) ---- */

enum route_id {
	ROUTE_DASHBOARD, ROUTE_HEALTHZ, ROUTE_METRICS,
	ROUTE_PEERS, ROUTE_PEER,
	ROUTE_TRUSTED, ROUTE_TRUSTED_ONE,
	ROUTE_SNAPSHOTS, ROUTE_SNAPSHOT,
	ROUTE_SOURCES,
	ROUTE_COMMITMENTS, ROUTE_COMMITMENT,
	ROUTE_LOOKUP, ROUTE_SERVICE_PEERS,
	ROUTE_REPORTS,
	ROUTE_KEYS, ROUTE_KEY,
	ROUTE_UNKNOWN,
	ROUTE_COUNT
};

#define METRICS_STATUSES 16
#define METRICS_BUCKETS  14

struct metrics {
	atomic_uint_fast64_t requests[ROUTE_COUNT][METRICS_STATUSES];
	atomic_uint_fast64_t buckets[ROUTE_COUNT][METRICS_BUCKETS];
	atomic_uint_fast64_t count[ROUTE_COUNT];
	atomic_uint_fast64_t sum_us[ROUTE_COUNT];
	atomic_uint_fast64_t signed_answers[2];	/* by enum signed_kind */
};

/* The label of a route ("/v1/peers/{id}"). */
const char *route_name(enum route_id id);

/* Count one request (thread-safe, lock-free). */
void metrics_observe(struct metrics *m, enum route_id route, unsigned status,
		     uint64_t usec);

/* The Prometheus text exposition of m and the store's counts (malloc'd,
 * *len set; the caller frees it), or NULL on out of memory. */
char *metrics_render(struct metrics *m, const struct authstore_counts *counts,
		     size_t replay_entries, size_t *len);

/* ---- the running authority ---- */

struct authority {
	struct authority_config cfg;
	char admin_hex[2 * ED25519_PUB_LEN + 1];
	struct authstore *store;
	struct replay *replay;
	struct ratelimit *limits;
	struct lookup_cache *lookups;
	atomic_uint_fast64_t generation;	/* +1 after every change */
	atomic_uint_fast64_t writes;		/* transactions begun */
	struct metrics metrics;
	struct MHD_Daemon *mhd;
	uint16_t port;
	char *listen;			/* owned copy of cfg.listen */
	time_t started;
	int64_t last_seen;		/* the store's latest refresh at start */
	pthread_t sweeper;		/* expires commitments (sweep.c) */
	pthread_mutex_t sweep_lock;
	pthread_cond_t sweep_wake;
	bool sweeping, sweep_stop;
	/* where the store is, as /healthz says it: asked at most every
	 * AUTHORITY_WHERE_TTL_S (api_status.c); all where_lock */
	pthread_mutex_t where_lock;
	struct authstore_where where;
	double where_at;		/* mono_now() when asked; 0: never */
	/* the last version a signed answer got (sign.c); version_lock */
	pthread_mutex_t version_lock;
	int64_t last_version;
};

/* ---- signed answers (sign.c) ---- */

/*
 * Sign answer j of kind with the authority's key (cfg.has_key must be
 * true): adds issued_at, expires, version, key and signature, counts it in
 * the metrics, and sets *issued to its issue time.  Returns 0, or -1 with e
 * set.
 */
int authority_sign(struct authority *a, json_t *j, enum signed_kind kind,
		   time_t *issued, struct err *e);

/* ---- liveness (sweep.c) ---- */

/* The oldest refresh that still counts (peers.updated, commitments.updated
 * at or after it are live), or INT64_MIN when nothing expires (no
 * --peer-ttl).  For one ttl after a start it is counted from when the
 * authority last ran, not from now: while it was down nobody could
 * refresh. */
int64_t sweep_cutoff(const struct authority *a, time_t now);

/* Peers whose last word is older than this are forgotten (INT64_MIN:
 * none yet: the authority has not run for a whole forget_after). */
int64_t sweep_forget_cutoff(const struct authority *a, time_t now);

/* Start / stop the thread that marks down the commitments not refreshed
 * within the peer ttl (so lookups drop them) and forgets peers long gone.
 * Returns 0/-1. */
int sweep_start(struct authority *a, struct err *e);
void sweep_stop(struct authority *a);

/* One sweep: commitments up but not refreshed since cutoff go down, their
 * up time counted until their last refresh.  Returns how many, or -1. */
int sweep_once(struct authority *a, int64_t cutoff, struct err *e);

/* One request as a handler sees it. */
struct call {
	struct authority *a;
	struct MHD_Connection *conn;
	const char *method;
	const char *target;	/* as sent, with query: what was signed */
	const char *path;	/* decoded, without the query */
	const char *arg;	/* the path's variable part, or NULL */
	const char *body;
	size_t body_len;
	json_t *json;		/* body parsed by call_body(); owned */
	time_t now;
	/* after call_signed(): */
	char signer[2 * ED25519_PUB_LEN + 1];
	uint8_t rid[REPLAY_ID_LEN];	/* the request's id (replay.c) */
	char sig_hex[2 * REPLAY_ID_LEN + 1];	/* its hex, kept in seen_sigs */
	time_t sig_date;
};

/* What a handler answers: a JSON body, or a text body (metrics). */
struct reply {
	unsigned status;
	json_t *json;		/* owned */
	char *text;		/* owned, malloc'd */
	size_t text_len;
	const char *content_type;
	const char *allow;	/* for 405 */
	const char *retry_after;	/* seconds, for 503 */
};

typedef void (*handler_fn)(struct call *c, struct reply *r);

/* ---- call.c: the helpers every handler uses ---- */

/* Answer status with j (stolen; NULL means out of memory: 500).  Returns 0. */
int call_reply(struct reply *r, unsigned status, json_t *j);
/* Answer status with {"error": "<message>"}.  Returns -1 (a refusal). */
int call_error(struct reply *r, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Answer 500 for a store failure (logged with its detail).  Returns -1. */
int call_store_error(struct reply *r, const struct err *e);

/* Parse the body as a JSON object into c->json, or answer 400. */
int call_body(struct call *c, struct reply *r);
/* Check the request's signature (401) and that it is new (409); fills
 * c->signer.  Returns 0, or -1 with the refusal in r. */
int call_signed(struct call *c, struct reply *r);
/* call_signed() and the signer must be the admin key (403). */
int call_admin(struct call *c, struct reply *r);
/* The signer must be a registered peer (403). */
int call_registered(struct call *c, struct reply *r);
/* Check c->arg is 64 lower-case hex (400 naming what). */
int call_hex_arg(struct call *c, struct reply *r, const char *what);
/* Begin the write transaction of a signed request: the signature is
 * recorded in it, so a replay is refused after a restart too. */
int call_begin(struct call *c, struct reply *r);
/* Commit it (500 on failure).  Returns 0 or -1. */
int call_commit(struct call *c, struct reply *r);
/* The same for a change no lookup answer can see (a peer's registration, a
 * commitment reported up again where it was): cached lookups stay valid.
 * Peers refresh both every minute or so (sweep.c); were each refresh a
 * change, thousands of peers would keep the lookup cache empty. */
int call_commit_quiet(struct call *c, struct reply *r);
/* Roll back (after a refusal). */
void call_rollback(struct call *c);

/* j as compact JSON and a newline (malloc'd, *len set), or NULL. */
char *call_json_text(const json_t *j, size_t *len);

/* A query parameter of the request, or NULL. */
const char *call_query(struct call *c, const char *name);

/* Time as the API shows it (RFC 3339), as a new JSON string. */
json_t *call_time_json(int64_t t);

/* ---- handlers (api_*.c) ---- */

void api_healthz(struct call *c, struct reply *r);
void api_dashboard(struct call *c, struct reply *r);
void api_metrics(struct call *c, struct reply *r);
void api_peers_post(struct call *c, struct reply *r);
void api_peer_get(struct call *c, struct reply *r);
void api_trusted_list(struct call *c, struct reply *r);
void api_trusted_post(struct call *c, struct reply *r);
void api_trusted_get(struct call *c, struct reply *r);
void api_trusted_delete(struct call *c, struct reply *r);
void api_snapshots_list(struct call *c, struct reply *r);
void api_snapshots_post(struct call *c, struct reply *r);
void api_snapshot_get(struct call *c, struct reply *r);
void api_sources_get(struct call *c, struct reply *r);
void api_sources_post(struct call *c, struct reply *r);
void api_sources_delete(struct call *c, struct reply *r);
void api_commitments_post(struct call *c, struct reply *r);
void api_commitment_put(struct call *c, struct reply *r);
void api_commitment_delete(struct call *c, struct reply *r);
void api_lookup(struct call *c, struct reply *r);
void api_service_peers(struct call *c, struct reply *r);
void api_reports_post(struct call *c, struct reply *r);
/* Owner keys (api_keys.c): POST /v1/keys, GET /v1/keys/<key>. */
void api_keys_post(struct call *c, struct reply *r);
void api_key_get(struct call *c, struct reply *r);
/* The signer may act as an owner: not rotated nor revoked (403 naming its
 * successor).  Returns 0 or -1 with the refusal in r. */
int keys_check_signer(struct call *c, struct reply *r);
/* The service may change: its owner is not revoked awaiting a successor
 * (403: frozen).  Returns 0 or -1 with the refusal in r. */
int keys_check_service(struct call *c, struct reply *r,
		       const struct authstore_service *sv);
/* The "bad_chunk" kind of report (api_bad_chunks.c), after call_body. */
void api_reports_bad_chunk(struct call *c, struct reply *r);

#endif
