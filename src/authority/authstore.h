/*
 * authstore.h - what the authority remembers, behind an engine-neutral
 * interface.
 *
 * The handlers (api_*.c) speak only this interface.  Two engines implement
 * it (authstore_int.h): SQLite (authstore_sqlite.c), the embedded default
 * for one machine, and PostgreSQL (authstore_pg.c), which several
 * authorities share and which survives the loss of one machine with a
 * synchronous standby (docs/authority-ha.md).
 *
 * Records and their keys (all hashes and keys are 64 lower-case hex):
 *
 *   peer        key -> object-server address, uptime accumulated so far
 *   trusted     sha256 -> kind (kernel|base), name, chunk index (JSON
 *               text), added, revoked (0: not revoked)
 *   service     (host, port) -> owner, newest snapshot
 *   snapshot    id -> service, owner, version, base, kernel, manifest bytes,
 *               owner's signature
 *   commitment  (snapshot, peer) -> up?, serving address and port, up since
 *   holding     (sha256, peer): the peer announced it holds that object
 *   report      service, peer, reporter, reason, time (all kept)
 *   bad source  (sha256, peer, reporter) -> chunk, expected and received
 *               hashes, time: peer was caught serving bad bytes of that
 *               object; it is no longer among its sources
 *   seen sig    signature -> expiry (replay protection across restarts)
 *   key change  owner key -> rotated (to a successor) or revoked (a
 *               successor once the admin confirms one), with the signed
 *               records that said so: the chain of an owner's keys
 *
 * Threads: every function may be called from any thread; each thread gets
 * its own connection to the engine.  A change is made between authstore_begin()
 * and authstore_commit() on one thread: one writer at a time (in the process
 * on SQLite; among all authorities sharing a PostgreSQL database), and
 * authstore_commit() returns only once the change is durable (on disk, and
 * on PostgreSQL also on the synchronous standby if there is one: a crash or
 * kill -9 afterwards loses nothing).  Reads outside a transaction see the
 * last committed state.
 *
 * Return values: 0 success / -1 error with e set; "get" functions return
 * 1 found, 0 not found, -1 error.  Listing functions call cb once per row;
 * a non-zero return from cb stops the listing and is returned.  Strings
 * handed to callbacks are valid only during the call.
 */
#ifndef FED_AUTHORITY_AUTHSTORE_H
#define FED_AUTHORITY_AUTHSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/authapi.h"
#include "common/err.h"
#include "common/hex.h"

#define AUTHSTORE_HEX (SHA256_HEX_LEN + 1)

struct authstore;

/* Open (creating and migrating the schema as needed) the store at db: a
 * postgres:// or postgresql:// URI (libpq's, several hosts allowed), or
 * else an SQLite file's path.  Returns a handle the caller releases with
 * authstore_close(), or NULL. */
struct authstore *authstore_open(const char *db, struct err *e);

/* "sqlite" or "postgresql". */
const char *authstore_engine(const struct authstore *st);

/* Where this authority's store is, for /healthz. */
struct authstore_where {
	char host[256];		/* the database host ("host:port"), or file */
	bool writable;		/* a write could be made there now */
};
int authstore_where(struct authstore *st, struct authstore_where *w,
		    struct err *e);

/* Call changed(arg), from a thread of the store's, whenever another
 * process may have committed a change (and when the store lost track of
 * them for a while), until authstore_close().  A store nobody else writes
 * (SQLite) never calls it.  Returns 0, or -1 with e set. */
int authstore_watch(struct authstore *st, void (*changed)(void *arg),
		    void *arg, struct err *e);

/* Was the last error of a call on this thread that no database that can
 * take writes was reachable (the primary is gone, no standby promoted
 * yet)?  Then the caller may say 503 and ask to retry later. */
bool authstore_unavailable(void);

/* Close every connection.  No other thread may be using st. */
void authstore_close(struct authstore *st);

/* Start a write transaction on this thread (waits for other writers). */
int authstore_begin(struct authstore *st, struct err *e);
/* Make it durable.  On failure the transaction is rolled back. */
int authstore_commit(struct authstore *st, struct err *e);
/* Abandon it (no-op if none is open on this thread). */
void authstore_rollback(struct authstore *st);

/* ---- replay protection ---- */

/* Remember a signature until expires (inside a transaction).  Returns 0,
 * 1 if it was remembered already (by any authority sharing the store: a
 * replay), or -1. */
int authstore_sig_add(struct authstore *st, const char *sig_hex, int64_t expires,
		  struct err *e);
/* Forget signatures that expired before now (inside a transaction). */
int authstore_sig_prune(struct authstore *st, int64_t now, struct err *e);
/* Forget expired signatures, then call cb for every remembered one. */
int authstore_sig_load(struct authstore *st, int64_t now,
		   int (*cb)(void *arg, const char *sig_hex, int64_t expires),
		   void *arg, struct err *e);

/* ---- peers ---- */

struct authstore_peer {
	char key[AUTHSTORE_HEX];
	char addr[AUTHAPI_ADDR_MAX + 1];
	int64_t registered;
	int64_t updated;
	int64_t uptime_total;	/* seconds, from finished up intervals */
};

int authstore_peer_get(struct authstore *st, const char *key, struct authstore_peer *p,
		   struct err *e);
/* Insert or update (addr, updated); *created tells which. */
int authstore_peer_put(struct authstore *st, const char *key, const char *addr,
		   int64_t now, bool *created, struct err *e);

struct authstore_contribution {
	int64_t services_owned;		/* services this key owns */
	int64_t services_hosted;	/* other owners' services it serves, up */
	int64_t commitments;		/* all its commitments */
	int64_t commitments_up;
	int64_t uptime_seconds;		/* summed over all commitments, ever */
};
int authstore_peer_contribution(struct authstore *st, const char *key, int64_t now,
			    struct authstore_contribution *c, struct err *e);

/* ---- trusted kernels and bases ---- */

struct authstore_trusted {
	char sha256[AUTHSTORE_HEX];
	char kind[8];
	char name[AUTHAPI_NAME_MAX + 1];
	char *index_json;	/* malloc'd by get/list; borrowed by add */
	int64_t added;
	int64_t revoked;	/* time of revocation, 0 if trusted */
};

/* t->index_json is malloc'd: release with authstore_trusted_free(). */
int authstore_trusted_get(struct authstore *st, const char *sha256,
		      struct authstore_trusted *t, struct err *e);
int authstore_trusted_add(struct authstore *st, const struct authstore_trusted *t,
		      struct err *e);
int authstore_trusted_revoke(struct authstore *st, const char *sha256, int64_t now,
			 struct err *e);
/* All entries, oldest first (index_json owned by the store during cb). */
int authstore_trusted_list(struct authstore *st,
		       int (*cb)(void *arg, const struct authstore_trusted *t),
		       void *arg, struct err *e);
void authstore_trusted_free(struct authstore_trusted *t);

/* ---- services and snapshots ---- */

struct authstore_service {
	int64_t id;
	char host[AUTHAPI_HOST_MAX + 1];
	uint16_t port;
	char owner[AUTHSTORE_HEX];
	char newest[AUTHSTORE_HEX];
	int64_t newest_version;
	int64_t created;
};

int authstore_service_get(struct authstore *st, const char *host, uint16_t port,
		      struct authstore_service *s, struct err *e);
/* Create a service without snapshots yet; fills s->id. */
int authstore_service_add(struct authstore *st, struct authstore_service *s,
		      struct err *e);

struct authstore_snapshot {
	char id[AUTHSTORE_HEX];
	int64_t service;
	char host[AUTHAPI_HOST_MAX + 1];
	uint16_t port;
	char owner[AUTHSTORE_HEX];
	int64_t version;
	char base[AUTHSTORE_HEX];
	char kernel[AUTHSTORE_HEX];
	char name[MANIFEST_NAME_MAX + 1];
	char created[RFC3339_LEN + 1];
	char signature[2 * ED25519_SIG_LEN + 1];
	int64_t announced;
	bool usable;		/* base and kernel trusted, not revoked */
	const char *manifest;	/* only with want_manifest / for add */
	size_t manifest_len;
};

/* With want_manifest, s->manifest is malloc'd: release with free(). */
int authstore_snapshot_get(struct authstore *st, const char *id,
		       struct authstore_snapshot *s, bool want_manifest,
		       struct err *e);
/* Add a snapshot and make it its service's newest. */
int authstore_snapshot_add(struct authstore *st, const struct authstore_snapshot *s,
		       struct err *e);
/* Snapshots of one service (host non-NULL) newest first, or of all. */
int authstore_snapshot_list(struct authstore *st, const char *host, uint16_t port,
			int (*cb)(void *arg, const struct authstore_snapshot *s),
			void *arg, struct err *e);

/* ---- commitments ---- */

struct authstore_commitment {
	char snapshot[AUTHSTORE_HEX];
	char peer[AUTHSTORE_HEX];
	int64_t service;
	bool up;
	bool has_addr;
	char addr[AUTHAPI_HOST_MAX + 1];
	uint16_t port;
	int64_t created;
	int64_t updated;
	int64_t up_since;	/* 0 when down */
	int64_t version;	/* of the snapshot (read only) */
	char peer_addr[AUTHAPI_ADDR_MAX + 1];	/* object server (read only) */
};

int authstore_commitment_get(struct authstore *st, const char *snapshot,
			 const char *peer, struct authstore_commitment *c,
			 struct err *e);
int authstore_commitment_add(struct authstore *st, const struct authstore_commitment *c,
			 struct err *e);
/* Set up/addr/port, accounting the peer's uptime when it goes down. */
int authstore_commitment_set(struct authstore *st, const char *snapshot,
			 const char *peer, const struct authapi_serving *s,
			 int64_t now, struct err *e);
/* Withdraw (accounting uptime).  Returns 1 if it existed, 0 if not. */
int authstore_commitment_delete(struct authstore *st, const char *snapshot,
			    const char *peer, int64_t now, struct err *e);
/* Commitments up but not refreshed (set) since cutoff go down, their
 * peers credited with the up time until that last refresh.  Returns how
 * many went down, or -1. */
int authstore_commitments_expire(struct authstore *st, int64_t cutoff,
				 struct err *e);
/* Forget at most max peers not heard from since cutoff that own no service
 * and hold no commitment, with their holdings.  Returns how many, or -1. */
int authstore_peers_forget(struct authstore *st, int64_t cutoff,
			   unsigned max, struct err *e);
/* Every commitment to any version of a service. */
int authstore_commitment_list(struct authstore *st, int64_t service,
			  int (*cb)(void *arg,
				    const struct authstore_commitment *c),
			  void *arg, struct err *e);

/* ---- reports ---- */

/* 1 if peer was reported for the service, 0 if not, -1 on error. */
int authstore_reported(struct authstore *st, int64_t service, const char *peer,
		   struct err *e);
/* Keep a report and drop the peer's commitments to that service.  *id is
 * the report's number. */
int authstore_report_add(struct authstore *st, int64_t service, const char *peer,
		     const char *reporter, const char *reason, int64_t now,
		     int64_t *id, struct err *e);

struct authstore_report {
	int64_t id;
	char peer[AUTHSTORE_HEX];
	char reporter[AUTHSTORE_HEX];
	const char *reason;
	int64_t at;
};
int authstore_report_list(struct authstore *st, int64_t service,
		      int (*cb)(void *arg, const struct authstore_report *r),
		      void *arg, struct err *e);

/* ---- bad sources ---- */

struct authstore_bad_source {
	char sha256[AUTHSTORE_HEX];	/* the object */
	char peer[AUTHSTORE_HEX];	/* who served bad bytes of it */
	char reporter[AUTHSTORE_HEX];
	uint32_t chunk;
	char expected[AUTHSTORE_HEX], received[AUTHSTORE_HEX];
	int64_t at;
};
/* Keep the mark (inside a transaction): from then on b->peer is not among
 * the sources of b->sha256, but when it is the owner of that snapshot.
 * The same reporter marking the same peer for the same object again
 * changes nothing (*created false).  *id: the mark's number. */
int authstore_bad_source_add(struct authstore *st,
			     const struct authstore_bad_source *b, int64_t *id,
			     bool *created, struct err *e);
/* Every peer registered with object-server address addr ("host:port"). */
int authstore_peers_at(struct authstore *st, const char *addr,
		       int (*cb)(void *arg, const char *peer), void *arg,
		       struct err *e);

/* ---- sources (who holds an object) ---- */

/* Record that peer holds sha256; *created tells whether it is new. */
int authstore_holding_put(struct authstore *st, const char *sha256, const char *peer,
		      int64_t now, bool *created, struct err *e);
/* Returns 1 if removed, 0 if there was none. */
int authstore_holding_delete(struct authstore *st, const char *sha256,
			 const char *peer, struct err *e);

enum authstore_role { AUTHSTORE_ROLE_OWNER, AUTHSTORE_ROLE_COMMITTED, AUTHSTORE_ROLE_HOLDER };

/*
 * Sources of a snapshot (service > 0: excluding peers reported for it) or
 * of a kernel or base (service == 0): the owner, peers committed to it (for
 * a kernel or base: to any snapshot that uses it) and peers holding it,
 * less those caught serving bad chunks of it (a snapshot's owner stays);
 * each peer once, with its best role, owners first; at most max.  Only
 * peers registered (or refreshed) at or after cutoff.
 */
int authstore_sources(struct authstore *st, const char *sha256, int64_t service,
		  unsigned max, int64_t cutoff,
		  int (*cb)(void *arg, const char *peer, const char *addr,
			    enum authstore_role role),
		  void *arg, struct err *e);

/* ---- lookup ---- */

/*
 * The peers serving the newest snapshot of host:port that are up and not
 * reported, in peer order.  Returns 1 if the service exists (cb called for
 * each peer; none if its newest snapshot is unusable), 0 if it does not.
 */
int authstore_lookup(struct authstore *st, const char *host, uint16_t port,
		 int (*cb)(void *arg, const char *peer, const char *addr,
			   uint16_t port),
		 void *arg, struct err *e);

/* ---- owner keys: rotations, revocations, confirmations ---- */

#define AUTHSTORE_KEYREC_MAX 512	/* = KEYREC_MAX (common/keyrec.h) */
#define AUTHSTORE_SIG_HEX (2 * ED25519_SIG_LEN + 1)

/* What happened to one key.  A key changes at most once: rotated by its
 * holder, or revoked by the admin (and then, once, confirmed: a successor
 * named by the admin).  successor is "" while a revoked key has none. */
struct authstore_key_change {
	char key[AUTHSTORE_HEX];
	char kind[8];				/* "rotated" or "revoked" */
	char successor[AUTHSTORE_HEX];
	char record[AUTHSTORE_KEYREC_MAX + 1];	/* rotation or revocation */
	char signature[AUTHSTORE_SIG_HEX];	/* by key, or the admin */
	char new_signature[AUTHSTORE_SIG_HEX];	/* by successor; "" revoked */
	int64_t at;
	char confirm_record[AUTHSTORE_KEYREC_MAX + 1];	/* "" until then */
	char confirm_signature[AUTHSTORE_SIG_HEX];
	int64_t confirmed_at;			/* 0 until then */
};

/* The change of key (1), none (0), or -1. */
int authstore_key_change_get(struct authstore *st, const char *key,
			     struct authstore_key_change *k, struct err *e);
/* The change whose successor is key: who it succeeded (1), none (0). */
int authstore_key_change_to(struct authstore *st, const char *key,
			    struct authstore_key_change *k, struct err *e);
/* Record a rotation or revocation (inside a transaction; the confirm_*
 * fields are ignored).  A key already changed is a store error: check
 * first. */
int authstore_key_change_add(struct authstore *st,
			     const struct authstore_key_change *k,
			     struct err *e);
/* Name the successor of a revoked key that has none (inside a
 * transaction).  Returns 1 if done, 0 if key is not revoked or has one. */
int authstore_key_confirm(struct authstore *st, const char *key,
			  const char *successor, const char *record,
			  const char *signature, int64_t at, struct err *e);
/* Every service owned by from is owned by to (inside a transaction).
 * Returns how many, or -1. */
int authstore_services_transfer(struct authstore *st, const char *from,
				const char *to, struct err *e);

/* ---- counts (for /metrics) ---- */

struct authstore_counts {
	int64_t peers, trusted, revoked, services, snapshots;
	int64_t commitments, commitments_up, holdings, reports;
	/* owner keys rotated, revoked, and revoked awaiting a successor */
	int64_t keys_rotated, keys_revoked, keys_frozen;
};
int authstore_counts(struct authstore *st, struct authstore_counts *c, struct err *e);

/* The latest refresh recorded (peers' or commitments' updated), about when
 * the authority last ran; 0 for none, -1 on error. */
int64_t authstore_last_seen(struct authstore *st, struct err *e);

#endif
