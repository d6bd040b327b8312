/*
 * client.h - how a client reaches a federated service: look it up (with an
 * on-disk cache), pick the best peer, fetch through it, proxy for others,
 * and audit what peers serve.  docs/client.md tells the whole story.
 *
 * Four parts:
 *
 *   lookup   client_lookup(): the authority's answer for host:port, kept
 *            on disk for its ttl (one JSON file per service, written
 *            atomically).  Past the ttl the authority is asked again; if
 *            it cannot be reached the stale answer is used (one log line
 *            says so).  Names the authority does not know (404 with
 *            "fallback":"dns") go to the system resolver.
 *   select   per-peer statistics (latency to first byte, bandwidth,
 *            failures; EWMA) kept in <cache>/peers.json so successive runs
 *            learn, and the pure function client_select_order() that turns
 *            them into the order in which to try peers.
 *   get      client_get(): one request through the chosen peer with
 *            libcurl (CURLOPT_CONNECT_TO: the Host header stays the
 *            service's name), failing over to the next peer when a peer
 *            refuses or times out.
 *   proxy    client_proxy_*(): an HTTP proxy (absolute-form requests and
 *            CONNECT) that does the same for any program.
 *
 * Nothing here prints except through common/log.h.  Errors follow
 * common/err.h: -1 and one line in e.
 */
#ifndef FED_CLIENT_H
#define FED_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>

#include <jansson.h>

#include "common/authapi.h"
#include "common/err.h"
#include "common/signed_answer.h"

#define CLIENT_CONNECT_TIMEOUT_MS 2000L	/* per peer */
#define CLIENT_RETRY_MAX          4	/* peers tried per request */
#define CLIENT_EWMA_ALPHA         0.3	/* weight of the newest sample */
#define CLIENT_EXPLORE_EVERY      10	/* 1 request in 10 explores */
#define CLIENT_FAIL_PENALTY_S     10.0	/* per consecutive failure */
#define CLIENT_EXPECT_BYTES       65536.0	/* size assumed for costing */
#define CLIENT_STATS_MAX          1024	/* peers remembered */

/* Where the cache lives: dir if not NULL, else $FED_CACHE, else
 * $XDG_CACHE_HOME/fed, else $HOME/.cache/fed.  Created (0700, with
 * parents) if missing.  Returns a malloc'd path, or NULL with e set. */
char *client_cache_dir(const char *dir, struct err *e);

/* ---- lookup ---- */

enum client_source {
	CLIENT_SRC_AUTHORITY,	/* asked the authority just now */
	CLIENT_SRC_CACHE,	/* cached answer within its ttl */
	CLIENT_SRC_STALE,	/* cached answer past its ttl: authority down */
	CLIENT_SRC_DNS,		/* unknown to the authority: system resolver */
	CLIENT_SRC_MIRROR,	/* authorities down: a peer's signed copy */
};

/* One place to connect to.  peer is "" for a DNS answer. */
struct client_peer {
	char peer[SHA256_HEX_LEN + 1];
	char addr[AUTHAPI_HOST_MAX + 1];	/* IPv4/IPv6 literal or name */
	uint16_t port;
};

struct client_lookup {
	char host[AUTHAPI_HOST_MAX + 1];
	uint16_t port;
	enum client_source source;
	int ttl;
	int64_t fetched;		/* unix time the answer was fetched */
	size_t npeers;
	struct client_peer *peers;	/* malloc'd */
};

/*
 * Who serves host:port.  authority: base URL; cache_dir: as returned by
 * client_cache_dir().  now: the current unix time (a parameter so tests can
 * age the cache).  A known service with no peer up is a success with
 * npeers 0.  When the authority is unreachable (or answers 5xx) and nothing
 * is cached, the system resolver is tried (source DNS) after a warning.
 * Returns 0 (release l with client_lookup_free) or -1 with e set.
 */
int client_lookup(const char *authority, const char *cache_dir,
		  const char *host, uint16_t port, int64_t now,
		  struct client_lookup *l, struct err *e);
void client_lookup_free(struct client_lookup *l);

/*
 * The same, checking the authority's signed answers when trust is on
 * (--authority-key; NULL or off: as client_lookup): an answer that does not
 * verify, is about another service, or is older than the cached one is
 * refused (-1, e says which); an expired one is refused too, unless a
 * cached answer still valid can be used instead, or trust->allow_stale
 * (then used with a warning).  Only verified, unexpired answers are
 * cached, and a cached answer is used only while it verifies and has not
 * expired (or, expired, under allow_stale when the authority cannot be
 * reached).
 */
int client_lookup_trusted(const char *authority, const char *cache_dir,
			  const struct signed_trust *trust, const char *host,
			  uint16_t port, int64_t now, struct client_lookup *l,
			  struct err *e);
const char *client_source_name(enum client_source s);

/* The system resolver's addresses for host:port into l (source DNS). */
int client_lookup_dns(const char *host, uint16_t port,
		      struct client_lookup *l, struct err *e);

/* ---- mirrors: peers serving the authority's signed answers ---- */

#define CLIENT_MIRRORS_MAX        16	/* in one --mirror list */
#define CLIENT_MIRROR_TIMEOUT_MS  2000L	/* per mirror asked */

struct client_mirrors {
	size_t n;
	char addr[CLIENT_MIRRORS_MAX][AUTHAPI_ADDR_MAX + 1];	/* "A:P" */
};

/*
 * Parse --mirror "ADDR:PORT,..." (ADDR a DNS name or an IPv4 address,
 * PORT 1..65535, at most CLIENT_MIRRORS_MAX) into m.  Returns 0, or -1
 * with e naming the element and why.
 */
int client_mirrors_parse(const char *list, struct client_mirrors *m,
			 struct err *e);

/*
 * Add to m the mirrors a verified lookup answer names: each peer's
 * "mirror" (its object server, which a signed answer names: docs/
 * authority-api.md), skipping malformed ones, ones already in m and any
 * beyond CLIENT_MIRRORS_MAX.  answer may be NULL.
 */
void client_mirrors_learn(struct client_mirrors *m, const json_t *answer);

/* One mirror's reply, as client_mirror_choose() judges it. */
struct client_mirror_reply {
	char name[AUTHAPI_ADDR_MAX + 1];	/* "ADDR:PORT", for messages */
	json_t *answer;			/* parsed 200 body; NULL: none */
	char why[ERR_MSG_MAX];		/* in: why none; out: why skipped */
	struct signed_meta m;		/* out, when it verified */
	bool expired;			/* out */
};

/*
 * Pure: which of n mirrors' replies to use for subject ("host:port") at
 * now, given the answer held (NULL: none; hm its meta).  A reply counts if
 * it verifies against t's key, names subject and is not older than held
 * (signed_answer_verify, signed_answer_not_older); among those the
 * highest version wins, an unexpired one before any expired one, and an
 * expired one only with t->allow_stale.  Every reply not chosen for being
 * invalid gets its why filled.  Returns the index chosen, or -1.
 */
int client_mirror_choose(struct client_mirror_reply *r, size_t n,
			 const char *subject, const struct signed_trust *t,
			 const json_t *held, const struct signed_meta *hm,
			 time_t now);

/*
 * Ask every mirror of ms (in turn, CLIENT_MIRROR_TIMEOUT_MS each)
 * for host:port's lookup answer and choose one as above; each mirror
 * skipped is said on stderr (log_warn) with why, so a lying peer is
 * named.  Returns 0 with *answer (a new reference), its meta *m, and
 * from the mirror that gave it, or -1 with e set (no mirror gave a valid
 * answer).
 */
int client_mirror_ask(const struct signed_trust *t,
		      const struct client_mirrors *ms, const char *host,
		      uint16_t port, const json_t *held,
		      const struct signed_meta *hm, time_t now,
		      json_t **answer, struct client_mirror_reply *from,
		      struct err *e);

/* ---- peer statistics and selection ---- */

/* What is known about one peer endpoint ("peer@addr:port"). */
struct client_stat {
	char key[SHA256_HEX_LEN + AUTHAPI_HOST_MAX + 16];
	unsigned samples;		/* successful requests measured */
	double latency_s;		/* EWMA, time to first byte */
	double bw_Bps;			/* EWMA, bytes/s after first byte; 0 unknown */
	unsigned fails;			/* consecutive failures */
	unsigned fails_total;
	int64_t last_try;		/* unix ms of the last attempt */
};

/* All statistics, shared by the threads of one process (mu). */
struct client_stats {
	pthread_mutex_t mu;
	char *path;			/* <cache>/peers.json, or NULL: memory only */
	uint64_t requests;		/* selections made: drives exploration */
	size_t n;
	struct client_stat s[CLIENT_STATS_MAX];
};

/* Load path (missing or unreadable file: start empty, with a warning if
 * it is corrupt).  path may be NULL.  Returns a new object, or NULL with e
 * set (out of memory).  Free with client_stats_free. */
struct client_stats *client_stats_load(const char *path, struct err *e);
void client_stats_free(struct client_stats *st);
/* Write the statistics atomically (tmp + rename).  Returns 0 or -1. */
int client_stats_save(struct client_stats *st, struct err *e);

/* The stat key of a peer. */
void client_stat_key(const struct client_peer *p, char *key, size_t size);

/* Record one outcome (pure: updates *s only).  ok: latency_s and, when
 * bytes and xfer_s are big enough to mean something, bandwidth. */
void client_stat_success(struct client_stat *s, double latency_s,
			 uint64_t bytes, double xfer_s, int64_t now_ms);
void client_stat_failure(struct client_stat *s, int64_t now_ms);

/* Expected seconds for a request of `bytes` to this peer (failures add
 * CLIENT_FAIL_PENALTY_S each).  A never-measured peer costs 0. */
double client_stat_cost(const struct client_stat *s, double bytes);

/*
 * The order in which to try n peers, given their statistics (stats[i]
 * for peer i; NULL when never seen) and request, the running count of
 * selections.  Pure.  Rules, in order:
 *   1. peers never tried come first, rotated by request (round-robin), so
 *      the first requests measure every peer once;
 *   2. every CLIENT_EXPLORE_EVERY-th request, the tried peer whose last
 *      attempt is oldest goes first (exploration: a slow or failed peer
 *      that recovered can win back);
 *   3. then by ascending client_stat_cost() (ties: lower index).
 * Fills order[0..n-1] with a permutation of 0..n-1.
 */
void client_select_order(const struct client_stat *const *stats, size_t n,
			 uint64_t request, size_t *order);

/*
 * Under st->mu: find (or create) the stats of l's peers, compute the order
 * and count the request.  order has l->npeers entries.
 */
void client_stats_order(struct client_stats *st,
			const struct client_lookup *l, size_t *order);

/* Under st->mu: record an outcome for p (success when ok) and save. */
void client_stats_record(struct client_stats *st, const struct client_peer *p,
			 bool ok, double latency_s, uint64_t bytes,
			 double xfer_s);

/* ---- get ---- */

struct client_get_opts {
	const char *authority;
	const char *cache_dir;		/* from client_cache_dir() */
	const struct signed_trust *trust;	/* NULL: answers unchecked */
	struct client_stats *stats;	/* may be NULL: no learning */
	FILE *out;			/* the body goes here */
	bool progress;			/* libcurl's progress meter on stderr */
	long timeout_ms;		/* total per attempt; <= 0: 300 s */
};

struct client_get_result {
	long status;			/* HTTP status, 0 if none */
	uint64_t bytes;
	double seconds;
	struct client_peer used;	/* who answered */
	enum client_source source;
	char tried[ERR_MSG_MAX];	/* "peer addr:port: why; ..." */
};

/*
 * GET url (http:// or https://) through the best peer serving its host and
 * port; the body is written to o->out as it arrives.  A peer that refuses,
 * times out or fails before any body byte is marked failed and the next is
 * tried (at most CLIENT_RETRY_MAX).  Returns 0 when an HTTP reply arrived,
 * whatever its status (a status >= 400 writes no body), or -1 with e
 * naming each peer tried and why.
 */
int client_get(const char *url, const struct client_get_opts *o,
	       struct client_get_result *r, struct err *e);

/* ---- proxy ---- */

#define CLIENT_PROXY_HEAD_MAX  16384	/* request line + headers */
#define CLIENT_PROXY_CONN_MAX  256	/* connections served at once */
#define CLIENT_PROXY_IDLE_MS   60000	/* a tunnel idle this long is closed */

struct client_proxy_config {
	const char *listen;		/* "ADDR:PORT", port 0: any */
	const char *authority;
	const char *cache_dir;
	const struct signed_trust *trust;	/* NULL: unchecked; copied */
	struct client_stats *stats;	/* may be NULL */
};

struct client_proxy;

/* Listen and serve in a background thread.  Returns NULL with e set. */
struct client_proxy *client_proxy_start(const struct client_proxy_config *c,
					struct err *e);
uint16_t client_proxy_port(const struct client_proxy *p);
/* Stop accepting, close every connection, wait for them, free. */
void client_proxy_stop(struct client_proxy *p);

/* ---- audit ---- */

enum client_verdict {
	CLIENT_AUDIT_OK,
	CLIENT_AUDIT_MISMATCH,
	CLIENT_AUDIT_UNREACHABLE,
	CLIENT_AUDIT_HTTP,		/* status >= 400 (or not 2xx) */
};

struct client_audit_row {
	struct client_peer p;
	enum client_verdict verdict;
	long status;
	double latency_ms;
	char sha256[SHA256_HEX_LEN + 1];	/* of the body; "" if none */
	char why[ERR_MSG_MAX];			/* for unreachable */
};

/*
 * Fetch path from every peer serving host:port according to the owner's
 * view (GET /v1/services/<host>:<port>/peers: peers up, with an address),
 * directly at each peer's addr:port with Host: host:port, and compare the
 * body's SHA-256 with expect (64 hex).  *rows malloc'd (*n entries).
 * Returns 0 or -1 with e set (authority unreachable or refused).
 */
int client_audit(const char *authority, const char *host, uint16_t port,
		 const char *path, const char *expect,
		 struct client_audit_row **rows, size_t *n, struct err *e);
const char *client_verdict_name(enum client_verdict v);

/*
 * Report peer (64 hex) for service host:port to the authority, signed by
 * seed (the owner's): POST /v1/reports.  Returns 0 with *reply (may be
 * NULL: not wanted) the authority's answer, or -1 with e set (unreachable,
 * or the authority's refusal).
 */
int client_report(const char *authority, const uint8_t *seed,
		  const char *host, uint16_t port, const char *peer,
		  const char *reason, json_t **reply, struct err *e);

#endif
