/*
 * authstore_pg.c - the authority's store (authstore.h) on PostgreSQL.
 *
 * For when one machine is not enough: several authorities, one database,
 * a primary with a synchronous standby (docs/authority-ha.md).  --db is a
 * libpq URI, which may name several hosts:
 *
 *   postgresql://fed@db1:5432,db2:5432/fed
 *
 * Durability: a write is acknowledged after COMMIT returns, which with
 * synchronous_standby_names set is after the standby has it on disk too;
 * so an acknowledged write survives the loss of the primary.
 *
 * Connections: each thread that touches the store gets its own (opened on
 * first use, kept in a pthread key), as with SQLite, with its statements
 * prepared on first use.  Each thread has two links, both through the URI's
 * host list:
 *   rw  target_session_attrs=read-write: whichever host is the primary;
 *       every transaction and, while it is up, every read;
 *   ro  target_session_attrs=any: a standby will do; reads are answered
 *       there while no primary is reachable (a failover).
 * A link whose connection broke (SQLSTATE class 08, 57P01-3, or a write
 * refused as read-only, 25006, after a promotion elsewhere) is dropped and
 * made again on next use.  A read outside a transaction is retried once on
 * a new link; a transaction is not (the caller says 503).  While no primary
 * answers, new rw links are tried at most once every PG_RETRY_MS by the
 * whole process, so a failover costs requests a fast 503, not a connect
 * timeout each.  connect_timeout, tcp_user_timeout and statement_timeout
 * bound every call: nothing waits on a dead host for long.
 *
 * Writers: every transaction takes one advisory lock (PG_LOCK) first, so
 * writes are serial across all authorities, as SQLite's BEGIN IMMEDIATE
 * makes them in one process: the API's read-then-write steps keep their
 * meaning.  Replay protection is the seen_sigs table, shared by all.
 *
 * Changes: every transaction NOTIFYs fed_changed (sent on COMMIT only); a
 * thread of the store's ("fed-pg-listen") LISTENs on the primary and tells
 * the authority, whose lookup cache is then invalid.  After it lost the
 * primary and found it again it says so too: it may have missed some.
 * While there is no primary nothing can change, so the cache stays valid.
 *
 * Schema: versioned in table fed_schema; pg_migrations[i] takes the
 * database from version i to i + 1, applied at open under PG_LOCK in one
 * transaction; a database newer than this program is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "authority/authstore_int.h"
#include "common/log.h"
#include "common/timefmt.h"

#define PG_LOCK		0x66656431	/* "fed1": the writers' advisory lock */
#define PG_RETRY_MS	1000		/* a missing primary is looked for */
#define PG_LISTEN_MS	500		/* the listener's poll and retry */
#define PG_ARGS_MAX	12

/* ---- schema ---- */

/* Text compares byte by byte (COLLATE "C"), as SQLite's does, so orders
 * (and so answers) are the same on both engines. */
#define T "TEXT COLLATE \"C\""

static const char *const pg_migrations[] = {
	/* 0 -> 1: what SQLite's schema 4 holds */
	"CREATE TABLE peers("
	"  key " T " PRIMARY KEY,"
	"  addr " T " NOT NULL,"
	"  registered BIGINT NOT NULL,"
	"  updated BIGINT NOT NULL,"
	"  uptime_total BIGINT NOT NULL DEFAULT 0);"
	"CREATE INDEX peers_updated ON peers(updated);"
	"CREATE INDEX peers_addr ON peers(addr);"
	"CREATE TABLE trusted("
	"  seq BIGSERIAL UNIQUE,"
	"  sha256 " T " PRIMARY KEY,"
	"  kind " T " NOT NULL CHECK (kind IN ('kernel', 'base')),"
	"  name " T " NOT NULL DEFAULT '',"
	"  idx TEXT NOT NULL,"
	"  added BIGINT NOT NULL,"
	"  revoked BIGINT NOT NULL DEFAULT 0);"
	"CREATE TABLE services("
	"  id BIGSERIAL PRIMARY KEY,"
	"  host " T " NOT NULL,"
	"  port INTEGER NOT NULL,"
	"  owner " T " NOT NULL,"
	"  newest " T ","
	"  newest_version BIGINT NOT NULL DEFAULT -1,"
	"  created BIGINT NOT NULL,"
	"  UNIQUE (host, port));"
	"CREATE INDEX services_owner ON services(owner);"
	"CREATE TABLE snapshots("
	"  id " T " PRIMARY KEY,"
	"  service BIGINT NOT NULL REFERENCES services(id),"
	"  owner " T " NOT NULL,"
	"  version BIGINT NOT NULL,"
	"  base " T " NOT NULL,"
	"  kernel " T " NOT NULL,"
	"  name " T " NOT NULL,"
	"  created " T " NOT NULL,"
	"  manifest TEXT NOT NULL,"
	"  signature " T " NOT NULL,"
	"  announced BIGINT NOT NULL,"
	"  UNIQUE (service, version));"
	"CREATE INDEX snapshots_base ON snapshots(base);"
	"CREATE INDEX snapshots_kernel ON snapshots(kernel);"
	"CREATE TABLE commitments("
	"  snapshot " T " NOT NULL REFERENCES snapshots(id),"
	"  peer " T " NOT NULL,"
	"  service BIGINT NOT NULL,"
	"  up INTEGER NOT NULL DEFAULT 0,"
	"  addr " T ","
	"  port INTEGER,"
	"  created BIGINT NOT NULL,"
	"  updated BIGINT NOT NULL,"
	"  up_since BIGINT NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (snapshot, peer));"
	"CREATE INDEX commitments_peer ON commitments(peer, up);"
	"CREATE INDEX commitments_service ON commitments(service, peer);"
	"CREATE INDEX commitments_up_updated ON commitments(up, updated);"
	"CREATE TABLE holdings("
	"  sha256 " T " NOT NULL,"
	"  peer " T " NOT NULL,"
	"  updated BIGINT NOT NULL,"
	"  PRIMARY KEY (sha256, peer));"
	"CREATE TABLE reports("
	"  id BIGSERIAL PRIMARY KEY,"
	"  service BIGINT NOT NULL,"
	"  peer " T " NOT NULL,"
	"  reporter " T " NOT NULL,"
	"  reason TEXT NOT NULL,"
	"  at BIGINT NOT NULL);"
	"CREATE INDEX reports_service_peer ON reports(service, peer);"
	"CREATE TABLE seen_sigs("
	"  sig " T " PRIMARY KEY,"
	"  expires BIGINT NOT NULL);"
	"CREATE INDEX seen_sigs_expires ON seen_sigs(expires);"
	"CREATE TABLE bad_sources("
	"  id BIGSERIAL PRIMARY KEY,"
	"  sha256 " T " NOT NULL,"
	"  peer " T " NOT NULL,"
	"  reporter " T " NOT NULL,"
	"  chunk BIGINT NOT NULL,"
	"  expected " T " NOT NULL,"
	"  received " T " NOT NULL,"
	"  at BIGINT NOT NULL,"
	"  UNIQUE (sha256, peer, reporter));",
	/* 1 -> 2: owner keys rotated or revoked (SQLite's schema 5) */
	"CREATE TABLE key_changes("
	"  key " T " PRIMARY KEY,"
	"  kind " T " NOT NULL CHECK (kind IN ('rotated', 'revoked')),"
	"  successor " T ","
	"  record TEXT NOT NULL,"
	"  signature " T " NOT NULL,"
	"  new_signature " T " NOT NULL DEFAULT '',"
	"  at BIGINT NOT NULL,"
	"  confirm_record TEXT NOT NULL DEFAULT '',"
	"  confirm_signature " T " NOT NULL DEFAULT '',"
	"  confirmed_at BIGINT NOT NULL DEFAULT 0);"
	"CREATE UNIQUE INDEX key_changes_successor ON key_changes(successor);",
};
#define PG_SCHEMA_VERSION \
	((int)(sizeof(pg_migrations) / sizeof(pg_migrations[0])))

/* ---- statements: the SQLite engine's, in PostgreSQL's dialect ---- */

enum pg_stmt_id {
	S_SIG_ADD, S_SIG_PRUNE, S_SIG_LIST,
	S_PEER_GET, S_PEER_INSERT, S_PEER_UPDATE,
	S_CONTRIB_OWNED, S_CONTRIB_HOSTED, S_CONTRIB_COMMITS,
	S_TRUST_GET, S_TRUST_ADD, S_TRUST_REVOKE, S_TRUST_LIST,
	S_SERVICE_GET, S_SERVICE_ADD, S_SERVICE_NEWEST,
	S_SNAP_GET, S_SNAP_ADD, S_SNAP_LIST_ALL, S_SNAP_LIST_SERVICE,
	S_COMMIT_GET, S_COMMIT_ADD, S_COMMIT_SET, S_COMMIT_DELETE,
	S_COMMIT_LIST, S_UPTIME_ADD, S_UPTIME_ADD_SERVICE,
	S_COMMIT_DELETE_SERVICE, S_EXPIRE_UPTIME, S_EXPIRE_DOWN,
	S_FORGET_HOLDINGS, S_FORGET_PEERS,
	S_REPORTED, S_REPORT_ADD, S_REPORT_LIST,
	S_BAD_ADD, S_BAD_GET, S_PEERS_AT,
	S_HOLD_GET, S_HOLD_PUT, S_HOLD_DELETE,
	S_SOURCES_SNAP, S_SOURCES_OBJ,
	S_LOOKUP,
	S_KEY_GET, S_KEY_TO, S_KEY_ADD, S_KEY_CONFIRM, S_SERVICES_TRANSFER,
	S_COUNTS, S_LAST_SEEN,
	S_COUNT
};

#define KEY_COLUMNS \
	"key, kind, COALESCE(successor, ''), record, signature, " \
	"new_signature, at, confirm_record, confirm_signature, confirmed_at"


#define SNAP_COLUMNS \
	"n.id, n.service, s.host, s.port, n.owner, n.version, n.base, " \
	"n.kernel, n.name, n.created, n.signature, n.announced, " \
	"NOT EXISTS (SELECT 1 FROM trusted t WHERE t.sha256 IN " \
	"(n.base, n.kernel) AND t.revoked <> 0)"
#define COMMIT_COLUMNS \
	"c.snapshot, c.peer, c.service, c.up, c.addr, c.port, c.created, " \
	"c.updated, c.up_since, n.version, COALESCE(p.addr, '')"
#define COMMIT_FROM \
	" FROM commitments c JOIN snapshots n ON n.id = c.snapshot" \
	" LEFT JOIN peers p ON p.key = c.peer"
#define FORGETTABLE_PEERS \
	"SELECT p.key FROM peers p WHERE p.updated < $1 " \
	"AND NOT EXISTS (SELECT 1 FROM services v WHERE v.owner = p.key) " \
	"AND NOT EXISTS (SELECT 1 FROM commitments c WHERE c.peer = p.key) " \
	"ORDER BY p.updated, p.key LIMIT $2"
#define NOT_BAD_SOURCE \
	"NOT EXISTS (SELECT 1 FROM bad_sources b WHERE b.sha256 = $1 " \
	"AND b.peer = x.peer)"

static const char *const pg_sql[S_COUNT] = {
	[S_SIG_ADD] = "INSERT INTO seen_sigs(sig, expires) VALUES ($1, $2) "
	    "ON CONFLICT DO NOTHING",
	[S_SIG_PRUNE] = "DELETE FROM seen_sigs WHERE expires < $1",
	[S_SIG_LIST] = "SELECT sig, expires FROM seen_sigs",
	[S_PEER_GET] = "SELECT key, addr, registered, updated, uptime_total "
	    "FROM peers WHERE key = $1",
	[S_PEER_INSERT] = "INSERT INTO peers(key, addr, registered, updated) "
	    "VALUES ($1, $2, $3, $3) ON CONFLICT DO NOTHING",
	[S_PEER_UPDATE] = "UPDATE peers SET addr = $2, updated = $3 "
	    "WHERE key = $1",
	[S_CONTRIB_OWNED] = "SELECT count(*) FROM services WHERE owner = $1",
	[S_CONTRIB_HOSTED] = "SELECT count(DISTINCT c.service) "
	    "FROM commitments c JOIN services s ON s.id = c.service "
	    "WHERE c.peer = $1 AND c.up = 1 AND s.owner <> $1",
	[S_CONTRIB_COMMITS] = "SELECT count(*), COALESCE(sum(up), 0), "
	    "COALESCE(sum(CASE WHEN up = 1 THEN $2::bigint - up_since "
	    "ELSE 0 END), 0) FROM commitments WHERE peer = $1",
	[S_TRUST_GET] = "SELECT sha256, kind, name, idx, added, revoked "
	    "FROM trusted WHERE sha256 = $1",
	[S_TRUST_ADD] = "INSERT INTO trusted(sha256, kind, name, idx, added) "
	    "VALUES ($1, $2, $3, $4, $5)",
	[S_TRUST_REVOKE] = "UPDATE trusted SET revoked = $2 "
	    "WHERE sha256 = $1 AND revoked = 0",
	[S_TRUST_LIST] = "SELECT sha256, kind, name, idx, added, revoked "
	    "FROM trusted ORDER BY seq",
	[S_SERVICE_GET] = "SELECT id, host, port, owner, "
	    "COALESCE(newest, ''), newest_version, created "
	    "FROM services WHERE host = $1 AND port = $2",
	[S_SERVICE_ADD] = "INSERT INTO services(host, port, owner, created) "
	    "VALUES ($1, $2, $3, $4) RETURNING id",
	[S_SERVICE_NEWEST] = "UPDATE services SET newest = $2, "
	    "newest_version = $3 WHERE id = $1 AND newest_version < $3",
	[S_SNAP_GET] = "SELECT " SNAP_COLUMNS ", n.manifest FROM snapshots n "
	    "JOIN services s ON s.id = n.service WHERE n.id = $1",
	[S_SNAP_ADD] = "INSERT INTO snapshots(id, service, owner, version, "
	    "base, kernel, name, created, manifest, signature, announced) "
	    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
	[S_SNAP_LIST_ALL] = "SELECT " SNAP_COLUMNS " FROM snapshots n "
	    "JOIN services s ON s.id = n.service "
	    "ORDER BY s.host, s.port, n.version DESC",
	[S_SNAP_LIST_SERVICE] = "SELECT " SNAP_COLUMNS " FROM snapshots n "
	    "JOIN services s ON s.id = n.service "
	    "WHERE s.host = $1 AND s.port = $2 ORDER BY n.version DESC",
	[S_COMMIT_GET] = "SELECT " COMMIT_COLUMNS COMMIT_FROM
	    " WHERE c.snapshot = $1 AND c.peer = $2",
	[S_COMMIT_ADD] = "INSERT INTO commitments(snapshot, peer, service, "
	    "up, addr, port, created, updated, up_since) "
	    "VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
	[S_COMMIT_SET] = "UPDATE commitments SET up = $3, addr = $4, "
	    "port = $5, updated = $6, up_since = $7 "
	    "WHERE snapshot = $1 AND peer = $2",
	[S_COMMIT_DELETE] = "DELETE FROM commitments "
	    "WHERE snapshot = $1 AND peer = $2",
	[S_COMMIT_LIST] = "SELECT " COMMIT_COLUMNS COMMIT_FROM
	    " WHERE c.service = $1 ORDER BY n.version DESC, c.peer",
	[S_UPTIME_ADD] = "UPDATE peers SET uptime_total = uptime_total + $2 "
	    "WHERE key = $1",
	[S_UPTIME_ADD_SERVICE] = "UPDATE peers SET uptime_total = "
	    "uptime_total + (SELECT COALESCE(sum($3::bigint - up_since), 0) "
	    "FROM commitments WHERE service = $1 AND peer = $2 AND up = 1) "
	    "WHERE key = $2",
	[S_COMMIT_DELETE_SERVICE] = "DELETE FROM commitments "
	    "WHERE service = $1 AND peer = $2",
	[S_EXPIRE_UPTIME] = "UPDATE peers SET uptime_total = uptime_total + "
	    "(SELECT COALESCE(sum(c.updated - c.up_since), 0) FROM commitments c "
	    "WHERE c.peer = peers.key AND c.up = 1 AND c.updated < $1 "
	    "AND c.updated > c.up_since) "
	    "WHERE key IN (SELECT peer FROM commitments WHERE up = 1 "
	    "AND updated < $1)",
	[S_EXPIRE_DOWN] = "UPDATE commitments SET up = 0, up_since = 0 "
	    "WHERE up = 1 AND updated < $1",
	[S_FORGET_HOLDINGS] = "DELETE FROM holdings WHERE peer IN ("
	    FORGETTABLE_PEERS ")",
	[S_FORGET_PEERS] = "DELETE FROM peers WHERE key IN ("
	    FORGETTABLE_PEERS ")",
	[S_REPORTED] = "SELECT 1 FROM reports WHERE service = $1 "
	    "AND peer = $2 LIMIT 1",
	[S_REPORT_ADD] = "INSERT INTO reports(service, peer, reporter, "
	    "reason, at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
	[S_REPORT_LIST] = "SELECT id, peer, reporter, reason, at "
	    "FROM reports WHERE service = $1 ORDER BY id",
	[S_BAD_ADD] = "INSERT INTO bad_sources(sha256, peer, reporter, chunk, "
	    "expected, received, at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
	    "ON CONFLICT DO NOTHING",
	[S_BAD_GET] = "SELECT id FROM bad_sources WHERE sha256 = $1 "
	    "AND peer = $2 AND reporter = $3",
	[S_PEERS_AT] = "SELECT key FROM peers WHERE addr = $1 ORDER BY key",
	[S_HOLD_GET] = "SELECT 1 FROM holdings WHERE sha256 = $1 "
	    "AND peer = $2",
	[S_HOLD_PUT] = "INSERT INTO holdings(sha256, peer, updated) "
	    "VALUES ($1, $2, $3) ON CONFLICT (sha256, peer) "
	    "DO UPDATE SET updated = excluded.updated",
	[S_HOLD_DELETE] = "DELETE FROM holdings WHERE sha256 = $1 "
	    "AND peer = $2",
	[S_SOURCES_SNAP] = "SELECT x.peer, p.addr, min(x.prio) AS prio FROM ("
	    " SELECT owner AS peer, 0 AS prio FROM snapshots WHERE id = $1"
	    " UNION ALL SELECT peer, 1 FROM commitments WHERE snapshot = $1"
	    " UNION ALL SELECT peer, 2 FROM holdings WHERE sha256 = $1"
	    ") AS x JOIN peers p ON p.key = x.peer AND p.updated >= $4 "
	    "WHERE NOT EXISTS (SELECT 1 FROM reports r WHERE r.service = $2 "
	    "AND r.peer = x.peer) AND (x.prio = 0 OR " NOT_BAD_SOURCE ") "
	    "GROUP BY x.peer, p.addr ORDER BY prio, random() LIMIT $3",
	/* the same, with no service: $2 is not there */
	[S_SOURCES_OBJ] = "SELECT x.peer, p.addr, min(x.prio) AS prio FROM ("
	    " SELECT c.peer AS peer, 1 AS prio FROM snapshots n"
	    "  JOIN commitments c ON c.snapshot = n.id"
	    "  WHERE n.base = $1 OR n.kernel = $1"
	    " UNION ALL SELECT peer, 2 FROM holdings WHERE sha256 = $1"
	    ") AS x JOIN peers p ON p.key = x.peer AND p.updated >= $3 "
	    "WHERE " NOT_BAD_SOURCE " "
	    "GROUP BY x.peer, p.addr ORDER BY prio, random() LIMIT $2",
	[S_LOOKUP] = "SELECT c.peer, c.addr, c.port FROM services s "
	    "LEFT JOIN snapshots n ON n.id = s.newest "
	    "LEFT JOIN commitments c ON c.snapshot = n.id AND c.up = 1 "
	    "AND c.addr IS NOT NULL "
	    "AND NOT EXISTS (SELECT 1 FROM reports r WHERE r.service = s.id "
	    "AND r.peer = c.peer) "
	    "AND NOT EXISTS (SELECT 1 FROM trusted t WHERE t.sha256 IN "
	    "(n.base, n.kernel) AND t.revoked <> 0) "
	    "WHERE s.host = $1 AND s.port = $2 ORDER BY c.peer",
	[S_KEY_GET] = "SELECT " KEY_COLUMNS " FROM key_changes WHERE key = $1",
	[S_KEY_TO] = "SELECT " KEY_COLUMNS " FROM key_changes "
	    "WHERE successor = $1",
	[S_KEY_ADD] = "INSERT INTO key_changes(key, kind, successor, record, "
	    "signature, new_signature, at) VALUES ($1, $2, NULLIF($3, ''), "
	    "$4, $5, $6, $7)",
	[S_KEY_CONFIRM] = "UPDATE key_changes SET successor = $2, "
	    "confirm_record = $3, confirm_signature = $4, confirmed_at = $5 "
	    "WHERE key = $1 AND kind = 'revoked' AND successor IS NULL",
	[S_SERVICES_TRANSFER] = "UPDATE services SET owner = $2 "
	    "WHERE owner = $1",
	[S_COUNTS] = "SELECT (SELECT count(*) FROM peers),"
	    " (SELECT count(*) FROM trusted),"
	    " (SELECT count(*) FROM trusted WHERE revoked <> 0),"
	    " (SELECT count(*) FROM services),"
	    " (SELECT count(*) FROM snapshots),"
	    " (SELECT count(*) FROM commitments),"
	    " (SELECT count(*) FROM commitments WHERE up = 1),"
	    " (SELECT count(*) FROM holdings),"
	    " (SELECT count(*) FROM reports),"
	    " (SELECT count(*) FROM key_changes WHERE kind = 'rotated'),"
	    " (SELECT count(*) FROM key_changes WHERE kind = 'revoked'),"
	    " (SELECT count(*) FROM key_changes WHERE kind = 'revoked'"
	    " AND successor IS NULL)",
	[S_LAST_SEEN] = "SELECT GREATEST("
	    "COALESCE((SELECT max(updated) FROM peers), 0),"
	    " COALESCE((SELECT max(updated) FROM commitments), 0))",
};

/* ---- the store ---- */

/* One connection and which statements it has prepared. */
struct pg_link {
	PGconn *pg;
	bool prepared[S_COUNT];
};

struct pg_conn {
	struct pg_store *q;
	struct pg_link rw, ro;
	bool in_tx;			/* a transaction is open on rw */
	struct pg_conn *prev, *next;	/* the store's conns; its lock */
};

struct pg_store {
	struct authstore base;		/* first: the handle handed out */
	char *uri;
	pthread_key_t key;
	pthread_mutex_t lock;		/* protects conns */
	struct pg_conn *conns;
	_Atomic long long rw_retry_at;	/* ms (mono): no primary until then */
	atomic_bool rw_lost;		/* said that the primary is gone */
	/* the listener (authstore_watch) */
	pthread_t listener;
	bool listening;
	atomic_bool stopping;
	int stop_pipe[2];
	void (*changed)(void *arg);
	void *changed_arg;
};

static struct pg_store *
pq(struct authstore *st)
{
	return (struct pg_store *)st;
}

static long long
pg_now_ms(void)
{
	return (long long)(mono_now() * 1000.0);
}

/* Connect through the URI, to a host whose sessions are attrs ("read-write"
 * or "any").  Our defaults go before the URI (which may override them);
 * target_session_attrs after it (which it may not). */
static PGconn *
pg_connect(const char *uri, const char *attrs, struct err *e)
{
	const char *keys[] = {
		"connect_timeout", "application_name", "keepalives",
		"keepalives_idle", "keepalives_interval", "keepalives_count",
		"tcp_user_timeout", "options", "dbname",
		"target_session_attrs", NULL
	};
	const char *values[] = {
		"3", "fed-authority", "1", "5", "2", "2", "5000",
		"-c statement_timeout=5000 "
		"-c idle_in_transaction_session_timeout=10000",
		uri, attrs, NULL
	};
	PGconn *pg = PQconnectdbParams(keys, values, 1);
	char msg[512], *nl;

	if (pg != NULL && PQstatus(pg) == CONNECTION_OK)
		return pg;
	snprintf(msg, sizeof(msg), "%s", pg ? PQerrorMessage(pg)
					     : "out of memory");
	while ((nl = strchr(msg, '\n')) != NULL)	/* one line */
		*nl = nl[1] ? ' ' : '\0';
	err_set(e, "store: no %sdatabase server reachable: %s",
		strcmp(attrs, "any") ? "writable " : "", msg);
	PQfinish(pg);
	return NULL;
}

static void
pg_link_drop(struct pg_link *l)
{
	PQfinish(l->pg);
	memset(l, 0, sizeof(*l));
}

static void
pg_conn_close(struct pg_conn *c)
{
	pg_link_drop(&c->rw);
	pg_link_drop(&c->ro);
	free(c);
}

/* pthread key destructor: the thread that owned c is exiting. */
static void
pg_conn_release(void *p)
{
	struct pg_conn *c = p;
	struct pg_store *q = c->q;

	pthread_mutex_lock(&q->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		q->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&q->lock);
	pg_conn_close(c);	/* an open transaction ends with the session */
}

/* This thread's connections, made on first use. */
static struct pg_conn *
pg_conn(struct pg_store *q, struct err *e)
{
	struct pg_conn *c = pthread_getspecific(q->key);

	if (c != NULL)
		return c;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		err_set(e, "store: out of memory");
		return NULL;
	}
	c->q = q;
	if (pthread_setspecific(q->key, c) != 0) {
		free(c);
		err_set(e, "store: cannot keep a connection");
		return NULL;
	}
	pthread_mutex_lock(&q->lock);
	c->next = q->conns;
	if (q->conns)
		q->conns->prev = c;
	q->conns = c;
	pthread_mutex_unlock(&q->lock);
	return c;
}

/* The link to the primary, connected if need be.  NULL with e set and the
 * store unavailable if no primary answers (or none did lately). */
static struct pg_link *
pg_rw(struct pg_store *q, struct pg_conn *c, struct err *e)
{
	long long now = pg_now_ms();

	if (c->rw.pg != NULL)
		return &c->rw;
	if (now < atomic_load(&q->rw_retry_at)) {
		authstore_set_unavailable(true);
		err_set(e, "store: no writable database server (looked for "
			"one less than %d ms ago)", PG_RETRY_MS);
		return NULL;
	}
	if ((c->rw.pg = pg_connect(q->uri, "read-write", e)) == NULL) {
		atomic_store(&q->rw_retry_at, now + PG_RETRY_MS);
		if (!atomic_exchange(&q->rw_lost, true))
			log_warn("%s; answering writes 503 until one is", e->msg);
		authstore_set_unavailable(true);
		return NULL;
	}
	if (atomic_exchange(&q->rw_lost, false))
		log_info("store: writing to %s:%s again", PQhost(c->rw.pg),
			 PQport(c->rw.pg));
	return &c->rw;
}

/* The link to any server, for reads while there is no primary. */
static struct pg_link *
pg_ro(struct pg_store *q, struct pg_conn *c, struct err *e)
{
	if (c->ro.pg == NULL &&
	    (c->ro.pg = pg_connect(q->uri, "any", e)) == NULL) {
		authstore_set_unavailable(true);
		return NULL;
	}
	return &c->ro;
}

/* Did r (NULL: no result at all) fail because the session is gone or can
 * no longer write (a standby now, or shutting down)? */
static bool
pg_lost(PGconn *pg, const PGresult *r)
{
	const char *state;

	if (PQstatus(pg) != CONNECTION_OK || r == NULL)
		return true;
	if ((state = PQresultErrorField(r, PG_DIAG_SQLSTATE)) == NULL)
		return false;
	return strncmp(state, "08", 2) == 0 ||		/* connection */
	       strncmp(state, "57P0", 4) == 0 ||	/* shutting down */
	       strcmp(state, "25006") == 0;		/* read-only now */
}

/* Was r a wait cut short (statement_timeout, lock_timeout)?  Busy: the
 * caller may retry later too. */
static bool
pg_busy(const PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	return state != NULL && (strcmp(state, "57014") == 0 ||
				 strcmp(state, "55P03") == 0);
}

static bool
pg_ok(const PGresult *r)
{
	ExecStatusType s = PQresultStatus(r);

	return r != NULL && (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK);
}

/* Say r's error (or the connection's) in e, on one line. */
static void
pg_error(PGconn *pg, const PGresult *r, struct err *e)
{
	const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
			  : NULL;
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	char buf[256], *nl;

	snprintf(buf, sizeof(buf), "%s", m ? m : PQerrorMessage(pg));
	if ((nl = strchr(buf, '\n')) != NULL)
		*nl = '\0';
	err_set(e, "store: %s:%s: %s%s%s%s", PQhost(pg) ? PQhost(pg) : "?",
		PQport(pg) ? PQport(pg) : "?", buf, state ? " (SQLSTATE " : "",
		state ? state : "", state ? ")" : "");
}

/* Run statement id with text args v[0..n) on link l, preparing it on first
 * use.  Returns the result (PQclear it) or NULL with e set; *lost says the
 * link broke (and was dropped). */
static PGresult *
pg_exec(struct pg_link *l, enum pg_stmt_id id, const char *const *v, int n,
	bool *lost, struct err *e)
{
	char name[16];
	PGresult *r;

	*lost = false;
	snprintf(name, sizeof(name), "s%d", (int)id);
	if (!l->prepared[id]) {
		r = PQprepare(l->pg, name, pg_sql[id], 0, NULL);
		if (!pg_ok(r))
			goto bad;
		PQclear(r);
		l->prepared[id] = true;
	}
	r = PQexecPrepared(l->pg, name, n, v, NULL, NULL, 0);
	if (pg_ok(r))
		return r;
bad:
	pg_error(l->pg, r, e);
	if (pg_lost(l->pg, r)) {
		*lost = true;
		pg_link_drop(l);
		authstore_set_unavailable(true);
	} else if (pg_busy(r)) {
		authstore_set_unavailable(true);
	}
	PQclear(r);
	return NULL;
}

/* Run a statement: in this thread's transaction if one is open (no retry:
 * the caller rolls back), else as a read on the primary, retried once on
 * a new link, then on any server. */
static PGresult *
pg_run(struct authstore *st, enum pg_stmt_id id, const char *const *v, int n,
       struct err *e)
{
	struct pg_store *q = pq(st);
	struct pg_conn *c = pg_conn(q, e);
	struct pg_link *l;
	PGresult *r;
	bool lost;
	int tries;

	if (c == NULL)
		return NULL;
	if (c->in_tx) {
		if (c->rw.pg == NULL) {
			authstore_set_unavailable(true);
			err_set(e, "store: the transaction's connection is "
				"gone");
			return NULL;
		}
		return pg_exec(&c->rw, id, v, n, &lost, e);
	}
	for (tries = 0; tries < 2; tries++) {
		if ((l = pg_rw(q, c, e)) == NULL)
			break;
		if ((r = pg_exec(l, id, v, n, &lost, e)) != NULL || !lost)
			return r;
	}
	for (tries = 0; tries < 2; tries++) {
		if ((l = pg_ro(q, c, e)) == NULL)
			return NULL;
		if ((r = pg_exec(l, id, v, n, &lost, e)) != NULL || !lost)
			return r;
	}
	return NULL;
}

/* ---- arguments and columns ---- */

struct pg_args {
	const char *v[PG_ARGS_MAX];
	char num[PG_ARGS_MAX][24];
	int n;
};

static void
arg_text(struct pg_args *a, const char *s)
{
	a->v[a->n++] = s;
}

static void
arg_int(struct pg_args *a, int64_t x)
{
	snprintf(a->num[a->n], sizeof(a->num[a->n]), "%lld", (long long)x);
	a->v[a->n] = a->num[a->n];
	a->n++;
}

static void
arg_null(struct pg_args *a)
{
	a->v[a->n++] = NULL;
}

static PGresult *
pg_do(struct authstore *st, enum pg_stmt_id id, const struct pg_args *a,
      struct err *e)
{
	return pg_run(st, id, a->v, a->n, e);
}

/* Run a statement for its effect: rows it changed, or -1. */
static int
pg_change(struct authstore *st, enum pg_stmt_id id, const struct pg_args *a,
	  struct err *e)
{
	PGresult *r = pg_do(st, id, a, e);
	int n;

	if (r == NULL)
		return -1;
	n = atoi(PQcmdTuples(r));
	PQclear(r);
	return n;
}

static int64_t
col_int(const PGresult *r, int row, int col)
{
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static bool
col_bool(const PGresult *r, int row, int col)
{
	return PQgetvalue(r, row, col)[0] == 't';
}

static void
col_text(const PGresult *r, int row, int col, char *buf, size_t size)
{
	snprintf(buf, size, "%s", PQgetvalue(r, row, col));
}

/* ---- open, close, where ---- */

static int
pg_simple(PGconn *pg, const char *sql, struct err *e)
{
	PGresult *r = PQexec(pg, sql);
	int rc = 0;

	if (!pg_ok(r)) {
		pg_error(pg, r, e);
		rc = -1;
	}
	PQclear(r);
	return rc;
}

static int
pg_schema_version(PGconn *pg, int *version, struct err *e)
{
	PGresult *r = PQexec(pg, "SELECT version FROM fed_schema");

	if (!pg_ok(r)) {
		pg_error(pg, r, e);
		PQclear(r);
		return -1;
	}
	*version = PQntuples(r) ? atoi(PQgetvalue(r, 0, 0)) : 0;
	PQclear(r);
	return 0;
}

/* Bring the schema up to date, under the writers' lock so that two
 * authorities starting at once do it once. */
static int
pg_migrate(PGconn *pg, struct err *e)
{
	char sql[128];
	int version, i;

	snprintf(sql, sizeof(sql), "BEGIN; SELECT pg_advisory_xact_lock(%d);"
		 "CREATE TABLE IF NOT EXISTS fed_schema(version INTEGER "
		 "NOT NULL)", PG_LOCK);
	if (pg_simple(pg, sql, e) == -1 ||
	    pg_schema_version(pg, &version, e) == -1)
		goto bad;
	if (version > PG_SCHEMA_VERSION) {
		err_set(e, "store: database schema version %d is newer than "
			"this program's (%d)", version, PG_SCHEMA_VERSION);
		goto bad;
	}
	for (i = version; i < PG_SCHEMA_VERSION; i++)
		if (pg_simple(pg, pg_migrations[i], e) == -1) {
			err_wrap(e, "migration to schema %d", i + 1);
			goto bad;
		}
	snprintf(sql, sizeof(sql), "DELETE FROM fed_schema;"
		 "INSERT INTO fed_schema VALUES (%d); COMMIT", PG_SCHEMA_VERSION);
	if (version < PG_SCHEMA_VERSION && pg_simple(pg, sql, e) == -1)
		goto bad;
	if (version == PG_SCHEMA_VERSION && pg_simple(pg, "COMMIT", e) == -1)
		goto bad;
	return 0;
bad:
	PQclear(PQexec(pg, "ROLLBACK"));
	return -1;
}

static struct authstore *
pg_open(const char *uri, struct err *e)
{
	struct pg_store *q;
	PGconn *pg;

	if ((q = calloc(1, sizeof(*q))) == NULL ||
	    (q->uri = strdup(uri)) == NULL) {
		free(q);
		err_set(e, "store: out of memory");
		return NULL;
	}
	q->base.ops = &authstore_pg_ops;
	q->stop_pipe[0] = q->stop_pipe[1] = -1;
	if ((pg = pg_connect(uri, "read-write", e)) == NULL)
		goto bad;
	if (pg_migrate(pg, e) == -1) {
		PQfinish(pg);
		goto bad;
	}
	PQfinish(pg);
	if (pthread_key_create(&q->key, pg_conn_release) != 0) {
		err_set(e, "store: cannot create a thread key");
		goto bad;
	}
	pthread_mutex_init(&q->lock, NULL);
	return &q->base;
bad:
	free(q->uri);
	free(q);
	return NULL;
}

static void
pg_close(struct authstore *st)
{
	struct pg_store *q = pq(st);
	struct pg_conn *c, *next;

	if (q->listening) {
		atomic_store(&q->stopping, true);
		if (write(q->stop_pipe[1], "x", 1) == -1)
			log_warn("store: cannot wake the listener: %s",
				 strerror(errno));
		pthread_join(q->listener, NULL);
		close(q->stop_pipe[0]);
		close(q->stop_pipe[1]);
	}
	pthread_key_delete(q->key);
	for (c = q->conns; c != NULL; c = next) {
		next = c->next;
		pg_conn_close(c);
	}
	pthread_mutex_destroy(&q->lock);
	free(q->uri);
	free(q);
}

/* Is link l's session still there?  Drops it if not. */
static bool
pg_alive(struct pg_link *l, bool *in_recovery)
{
	PGresult *r = PQexec(l->pg, "SELECT pg_is_in_recovery()");
	bool ok = pg_ok(r);

	if (ok)
		*in_recovery = col_bool(r, 0, 0);
	else if (pg_lost(l->pg, r))
		pg_link_drop(l);
	PQclear(r);
	return ok;
}

/* Where: the primary this thread writes to, if one answers, else any
 * server that does (not writable); host is "" if none. */
static int
pg_where(struct authstore *st, struct authstore_where *w, struct err *e)
{
	struct pg_store *q = pq(st);
	struct pg_conn *c = pg_conn(q, e);
	struct pg_link *l;
	bool standby = true;

	if (c == NULL)
		return -1;
	if (c->in_tx)
		return err_set(e, "store: where, in a transaction");
	if ((l = pg_rw(q, c, e)) != NULL && pg_alive(l, &standby))
		w->writable = !standby;
	else if ((l = pg_ro(q, c, e)) == NULL || !pg_alive(l, &standby))
		return 0;	/* nothing reachable: host "" */
	snprintf(w->host, sizeof(w->host), "%s:%s", PQhost(l->pg),
		 PQport(l->pg));
	return 0;
}

/* ---- transactions ---- */

static int
pg_begin_on(struct pg_link *l, bool *lost, struct err *e)
{
	char sql[128];
	PGresult *r;

	snprintf(sql, sizeof(sql), "BEGIN; SELECT pg_advisory_xact_lock(%d); "
		 "NOTIFY fed_changed", PG_LOCK);
	r = PQexec(l->pg, sql);
	*lost = false;
	if (pg_ok(r)) {
		PQclear(r);
		return 0;
	}
	pg_error(l->pg, r, e);
	if (pg_lost(l->pg, r)) {
		*lost = true;
		pg_link_drop(l);
		authstore_set_unavailable(true);
	} else {
		if (pg_busy(r))
			authstore_set_unavailable(true);
		PQclear(PQexec(l->pg, "ROLLBACK"));
	}
	PQclear(r);
	return -1;
}

/* BEGIN on the primary, on a new link once if the old one had broken
 * (nothing was done yet: safe to retry). */
static int
pg_begin(struct authstore *st, struct err *e)
{
	struct pg_store *q = pq(st);
	struct pg_conn *c = pg_conn(q, e);
	struct pg_link *l;
	bool lost;
	int tries;

	if (c == NULL)
		return -1;
	if (c->in_tx && c->rw.pg != NULL)
		return err_set(e, "store: a transaction is already open");
	c->in_tx = false;
	for (tries = 0; tries < 2; tries++) {
		if ((l = pg_rw(q, c, e)) == NULL)
			return -1;
		if (pg_begin_on(l, &lost, e) == 0) {
			c->in_tx = true;
			return 0;
		}
		if (!lost)
			return -1;
	}
	return -1;
}

/* COMMIT.  Acknowledged only when the server says it committed: a
 * transaction that had failed ends in ROLLBACK, and a connection lost
 * while committing leaves the outcome unknown (an error here: the client
 * retries; replayed signatures make that safe). */
static int
pg_commit(struct authstore *st, struct err *e)
{
	struct pg_conn *c = pg_conn(pq(st), e);
	PGresult *r;
	int rc = -1;

	if (c == NULL || !c->in_tx)
		return err_set(e, "store: commit without a transaction");
	c->in_tx = false;
	if (c->rw.pg == NULL) {
		authstore_set_unavailable(true);
		return err_set(e, "store: the connection broke in the "
			       "transaction");
	}
	r = PQexec(c->rw.pg, "COMMIT");
	if (pg_ok(r) && strcmp(PQcmdStatus(r), "COMMIT") == 0)
		rc = 0;
	else if (pg_ok(r))
		err_set(e, "store: the transaction failed and was rolled back");
	else {
		pg_error(c->rw.pg, r, e);
		if (pg_lost(c->rw.pg, r)) {
			pg_link_drop(&c->rw);
			authstore_set_unavailable(true);
		} else {
			PQclear(PQexec(c->rw.pg, "ROLLBACK"));
		}
	}
	PQclear(r);
	return rc;
}

static void
pg_rollback(struct authstore *st)
{
	struct pg_conn *c = pg_conn(pq(st), NULL);
	PGresult *r;

	if (c == NULL || !c->in_tx)
		return;
	c->in_tx = false;
	if (c->rw.pg == NULL)
		return;
	r = PQexec(c->rw.pg, "ROLLBACK");
	if (!pg_ok(r) && pg_lost(c->rw.pg, r))
		pg_link_drop(&c->rw);
	PQclear(r);
}

/* ---- replay protection ---- */

static int
pg_sig_add(struct authstore *st, const char *sig_hex, int64_t expires,
	   struct err *e)
{
	struct pg_args a = { .n = 0 };
	int n;

	arg_text(&a, sig_hex);
	arg_int(&a, expires);
	if ((n = pg_change(st, S_SIG_ADD, &a, e)) == -1)
		return -1;
	return n == 0;
}

static int
pg_sig_prune(struct authstore *st, int64_t now, struct err *e)
{
	struct pg_args a = { .n = 0 };

	arg_int(&a, now);
	return pg_change(st, S_SIG_PRUNE, &a, e) == -1 ? -1 : 0;
}

static int
pg_sig_load(struct authstore *st, int64_t now,
	    int (*cb)(void *, const char *, int64_t), void *arg,
	    struct err *e)
{
	PGresult *r;
	int i, rc = 0;

	if (pg_begin(st, e) == -1)
		return -1;
	if (pg_sig_prune(st, now, e) == -1) {
		pg_rollback(st);
		return -1;
	}
	if (pg_commit(st, e) == -1)
		return -1;
	if ((r = pg_run(st, S_SIG_LIST, NULL, 0, e)) == NULL)
		return -1;
	for (i = 0; i < PQntuples(r) && rc == 0; i++)
		rc = cb(arg, PQgetvalue(r, i, 0), col_int(r, i, 1));
	PQclear(r);
	return rc;
}

/* ---- peers ---- */

static int
pg_peer_get(struct authstore *st, const char *key, struct authstore_peer *p,
	    struct err *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *r;
	int found;

	arg_text(&a, key);
	if ((r = pg_do(st, S_PEER_GET, &a, e)) == NULL)
		return -1;
	if ((found = PQntuples(r) > 0)) {
		col_text(r, 0, 0, p->key, sizeof(p->key));
		col_text(r, 0, 1, p->addr, sizeof(p->addr));
		p->registered = col_int(r, 0, 2);
		p->updated = col_int(r, 0, 3);
		p->uptime_total = col_int(r, 0, 4);
	}
	PQclear(r);
	return found;
}

static int
pg_peer_put(struct authstore *st, const char *key, const char *addr,
	    int64_t now, bool *created, struct err *e)
{
	struct pg_args a = { .n = 0 };
	int n;

	arg_text(&a, key);
	arg_text(&a, addr);
	arg_int(&a, now);
	if ((n = pg_change(st, S_PEER_INSERT, &a, e)) == -1)
		return -1;
	if ((*created = n > 0))
		return 0;
	return pg_change(st, S_PEER_UPDATE, &a, e) == -1 ? -1 : 0;
}

/* One row of up to 3 integers from a statement bound with (key[, now]). */
static int
pg_ints(struct authstore *st, enum pg_stmt_id id, const char *key,
	int64_t now, bool with_now, int64_t *out, int n, struct err *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *r;
	int i;

	arg_text(&a, key);
	if (with_now)
		arg_int(&a, now);
	if ((r = pg_do(st, id, &a, e)) == NULL)
		return -1;
	for (i = 0; i < n; i++)
		out[i] = PQntuples(r) ? col_int(r, 0, i) : 0;
	PQclear(r);
	return 0;
}

static int
pg_peer_contribution(struct authstore *st, const char *key, int64_t now,
		     struct authstore_contribution *c, struct err *e)
{
	struct authstore_peer p;
	int64_t v[3];
	int rc;

	memset(c, 0, sizeof(*c));
	if (pg_ints(st, S_CONTRIB_OWNED, key, now, false, v, 1, e) == -1)
		return -1;
	c->services_owned = v[0];
	if (pg_ints(st, S_CONTRIB_HOSTED, key, now, false, v, 1, e) == -1)
		return -1;
	c->services_hosted = v[0];
	if (pg_ints(st, S_CONTRIB_COMMITS, key, now, true, v, 3, e) == -1)
		return -1;
	c->commitments = v[0];
	c->commitments_up = v[1];
	c->uptime_seconds = v[2];
	if ((rc = pg_peer_get(st, key, &p, e)) == -1)
		return -1;
	if (rc == 1)
		c->uptime_seconds += p.uptime_total;
	return 0;
}

/* ---- trusted ---- */

/* Fill t from row i; index_json is borrowed from r. */
static void
pg_trusted_row(const PGresult *r, int i, struct authstore_trusted *t)
{
	col_text(r, i, 0, t->sha256, sizeof(t->sha256));
	col_text(r, i, 1, t->kind, sizeof(t->kind));
	col_text(r, i, 2, t->name, sizeof(t->name));
	t->index_json = PQgetvalue(r, i, 3);
	t->added = col_int(r, i, 4);
	t->revoked = col_int(r, i, 5);
}

static int
pg_trusted_get(struct authstore *st, const char *sha256,
	       struct authstore_trusted *t, struct err *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *r;

	arg_text(&a, sha256);
	if ((r = pg_do(st, S_TRUST_GET, &a, e)) == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 0;
	}
	pg_trusted_row(r, 0, t);
	t->index_json = strdup(t->index_json);
	PQclear(r);
	if (t->index_json == NULL)
		return err_set(e, "store: out of memory");
	return 1;
}

static int
pg_trusted_add(struct authstore *st, const struct authstore_trusted *t,
	       struct err *e)
{
	struct pg_args a = { .n = 0 };

	arg_text(&a, t->sha256);
	arg_text(&a, t->kind);
	arg_text(&a, t->name);
	arg_text(&a, t->index_json);
	arg_int(&a, t->added);
	return pg_change(st, S_TRUST_ADD, &a, e) == -1 ? -1 : 0;
}

static int
pg_trusted_revoke(struct authstore *st, const char *sha256, int64_t now,
		  struct err *e)
{
	struct pg_args a = { .n = 0 };

	arg_text(&a, sha256);
	arg_int(&a, now);
	return pg_change(st, S_TRUST_REVOKE, &a, e) == -1 ? -1 : 0;
}

static int
pg_trusted_list(struct authstore *st,
		int (*cb)(void *, const struct authstore_trusted *), void *arg,
		struct err *e)
{
	struct authstore_trusted t;
	PGresult *r;
	int i, rc = 0;

	if ((r = pg_run(st, S_TRUST_LIST, NULL, 0, e)) == NULL)
		return -1;
	for (i = 0; i < PQntuples(r) && rc == 0; i++) {
		pg_trusted_row(r, i, &t);
		rc = cb(arg, &t);
	}
	PQclear(r);
	return rc;
}

/* ---- services and snapshots ---- */

static int
pg_service_get(struct authstore *st, const char *host, uint16_t port,
	       struct authstore_service *sv, struct err *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *r;
	int found;

	arg_text(&a, host);
	arg_int(&a, port);
	if ((r = pg_do(st, S_SERVICE_GET, &a, e)) == NULL)
		return -1;
	if ((found = PQntuples(r) > 0)) {
		sv->id = col_int(r, 0, 0);
		col_text(r, 0, 1, sv->host, sizeof(sv->host));
		sv->port = (uint16_t)col_int(r, 0, 2);
		col_text(r, 0, 3, sv->owner, sizeof(sv->owner));
		col_text(r, 0, 4, sv->newest, sizeof(sv->newest));
		sv->newest_version = col_int(r, 0, 5);
		sv->created = col_int(r, 0, 6);
	}
	PQclear(r);
	return found;
}

static int
pg_service_add(struct authstore *st, struct authstore_service *sv,
	       struct err *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *r;

	arg_text(&a, sv->host);
	arg_int(&a, sv->port);
	arg_text(&a, sv->owner);
	arg_int(&a, sv->created);
	if ((r = pg_do(st, S_SERVICE_ADD, &a, e)) == NULL)
		return -1;
	sv->id = col_int(r, 0, 0);
	PQclear(r);
	sv->newest[0] = '\0';
	sv->newest_version = -1;
	return 0;
}

static void
pg_snapshot_row(const PGresult *r, int i, struct authstore_snapshot *n)
{
	memset(n, 0, sizeof(*n));
	col_text(r, i, 0, n->id, sizeof(n->id));
	n->service = col_int(r, i, 1);
	col_text(r, i, 2, n->host, sizeof(n->host));
	n->port = (uint16_t)col_int(r, i, 3);
	col_text(r, i, 4, n->owner, sizeof(n->owner));
	n->version = col_int(r, i, 5);
	col_text(r, i, 6, n->base, sizeof(n->base));
	col_text(r, i, 7, n->kernel, sizeof(n->kernel));
	col_text(r, i, 8, n->name, sizeof(n->name));
	col_text(r, i, 9, n->created, sizeof(n->created));
	col_text(r, i, 10, n->signature, sizeof(n->signature));
	n->announced = col_int(r, i, 11);
	n->usable = col_bool(r, i, 12);
}

static int
pg_snapshot_get(struct authstore *st, const char *id,
		struct authstore_snapshot *n, bool want_manifest,
		struct err *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *r;
	char *m;

	arg_text(&a, id);
	if ((r = pg_do(st, S_SNAP_GET, &a, e)) == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 0;
	}
	pg_snapshot_row(r, 0, n);
	if (want_manifest) {
		n->manifest_len = (size_t)PQgetlength(r, 0, 13);
		if ((m = malloc(n->manifest_len + 1)) == NULL) {
			PQclear(r);
			return err_set(e, "store: out of memory");
		}
		memcpy(m, PQgetvalue(r, 0, 13), n->manifest_len + 1);
		n->manifest = m;
	}
	PQclear(r);
	return 1;
}

static int
pg_snapshot_add(struct authstore *st, const struct authstore_snapshot *n,
		struct err *e)
{
	struct pg_args a = { .n = 0 }, b = { .n = 0 };
	char *manifest;
	int rc;

	/* text parameters end at a NUL: a manifest with one in it could not
	 * be stored as signed */
	if (memchr(n->manifest, '\0', n->manifest_len) != NULL)
		return err_set(e, "store: the manifest holds a NUL byte");
	if ((manifest = strndup(n->manifest, n->manifest_len)) == NULL)
		return err_set(e, "store: out of memory");
	arg_text(&a, n->id);
	arg_int(&a, n->service);
	arg_text(&a, n->owner);
	arg_int(&a, n->version);
	arg_text(&a, n->base);
	arg_text(&a, n->kernel);
	arg_text(&a, n->name);
	arg_text(&a, n->created);
	arg_text(&a, manifest);
	arg_text(&a, n->signature);
	arg_int(&a, n->announced);
	rc = pg_change(st, S_SNAP_ADD, &a, e);
	free(manifest);
	if (rc == -1)
		return -1;
	arg_int(&b, n->service);
	arg_text(&b, n->id);
	arg_int(&b, n->version);
	return pg_change(st, S_SERVICE_NEWEST, &b, e) == -1 ? -1 : 0;
}

static int
pg_snapshot_list(struct authstore *st, const char *host, uint16_t port,
		 int (*cb)(void *, const struct authstore_snapshot *),
		 void *arg, struct err *e)
{
	struct pg_args a = { .n = 0 };
	struct authstore_snapshot n;
	PGresult *r;
	int i, rc = 0;

	if (host) {
		arg_text(&a, host);
		arg_int(&a, port);
	}
	r = pg_do(st, host ? S_SNAP_LIST_SERVICE : S_SNAP_LIST_ALL, &a, e);
	if (r == NULL)
		return -1;
	for (i = 0; i < PQntuples(r) && rc == 0; i++) {
		pg_snapshot_row(r, i, &n);
		rc = cb(arg, &n);
	}
	PQclear(r);
	return rc;
}

/* ---- commitments ---- */

static void
pg_commitment_row(const PGresult *r, int i, struct authstore_commitment *c)
{
	memset(c, 0, sizeof(*c));
	col_text(r, i, 0, c->snapshot, sizeof(c->snapshot));
	col_text(r, i, 1, c->peer, sizeof(c->peer));
	c->service = col_int(r, i, 2);
	c->up = col_int(r, i, 3) != 0;
	c->has_addr = !PQgetisnull(r, i, 4);
	col_text(r, i, 4, c->addr, sizeof(c->addr));
	c->port = (uint16_t)col_int(r, i, 5);
	c->created = col_int(r, i, 6);
	c->updated = col_int(r, i, 7);
	c->up_since = col_int(r, i, 8);
	c->version = col_int(r, i, 9);
	col_text(r, i, 10, c->peer_addr, sizeof(c->peer_addr));
}

static int
pg_commitment_get(struct authstore *st, const char *snapshot,
		  const char *peer, struct authstore_commitment *c,
		  struct err *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *r;
	int found;

	arg_text(&a, snapshot);
	arg_text(&a, peer);
	if ((r = pg_do(st, S_COMMIT_GET, &a, e)) == NULL)
		return -1;
	if ((found = PQntuples(r) > 0))
		pg_commitment_row(r, 0, c);
	PQclear(r);
	return found;
}

static int
pg_commitment_add(struct authstore *st, const struct authstore_commitment *c,
		  struct err *e)
{
	struct pg_args a = { .n = 0 };

	arg_text(&a, c->snapshot);
	arg_text(&a, c->peer);
	arg_int(&a, c->service);
	arg_int(&a, c->up);
	if (c->has_addr) {
		arg_text(&a, c->addr);
		arg_int(&a, c->port);
	} else {
		arg_null(&a);
		arg_null(&a);
	}
	arg_int(&a, c->created);
	arg_int(&a, c->up ? c->up_since : 0);
	return pg_change(st, S_COMMIT_ADD, &a, e) == -1 ? -1 : 0;
}

/* Credit the peer with seconds of up time. */
static int
pg_uptime_add(struct authstore *st, const char *peer, int64_t seconds,
	      struct err *e)
{
	struct pg_args a = { .n = 0 };

	if (seconds <= 0)
		return 0;
	arg_text(&a, peer);
	arg_int(&a, seconds);
	return pg_change(st, S_UPTIME_ADD, &a, e) == -1 ? -1 : 0;
}

static int
pg_commitment_set(struct authstore *st, const char *snapshot,
		  const char *peer, const struct authapi_serving *sv,
		  int64_t now, struct err *e)
{
	struct authstore_commitment c;
	struct pg_args a = { .n = 0 };
	int rc;

	if ((rc = pg_commitment_get(st, snapshot, peer, &c, e)) != 1)
		return rc == 0 ? err_set(e, "store: no such commitment") : -1;
	if (c.up && !sv->up &&
	    pg_uptime_add(st, peer, now - c.up_since, e) == -1)
		return -1;
	if (sv->up && !c.up)
		c.up_since = now;
	else if (!sv->up)
		c.up_since = 0;
	if (sv->has_addr) {
		snprintf(c.addr, sizeof(c.addr), "%s", sv->addr);
		c.port = sv->port;
		c.has_addr = true;
	}
	arg_text(&a, snapshot);
	arg_text(&a, peer);
	arg_int(&a, sv->up);
	if (c.has_addr) {
		arg_text(&a, c.addr);
		arg_int(&a, c.port);
	} else {
		arg_null(&a);
		arg_null(&a);
	}
	arg_int(&a, now);
	arg_int(&a, c.up_since);
	return pg_change(st, S_COMMIT_SET, &a, e) == -1 ? -1 : 0;
}

static int
pg_commitments_expire(struct authstore *st, int64_t cutoff, struct err *e)
{
	struct pg_args a = { .n = 0 };

	arg_int(&a, cutoff);
	if (pg_change(st, S_EXPIRE_UPTIME, &a, e) == -1)
		return -1;
	return pg_change(st, S_EXPIRE_DOWN, &a, e);
}

static int
pg_peers_forget(struct authstore *st, int64_t cutoff, unsigned max,
		struct err *e)
{
	struct pg_args a = { .n = 0 };

	/* the same batch twice: the same rows, in one transaction */
	arg_int(&a, cutoff);
	arg_int(&a, max);
	if (pg_change(st, S_FORGET_HOLDINGS, &a, e) == -1)
		return -1;
	return pg_change(st, S_FORGET_PEERS, &a, e);
}

static int
pg_commitment_delete(struct authstore *st, const char *snapshot,
		     const char *peer, int64_t now, struct err *e)
{
	struct authstore_commitment c;
	struct pg_args a = { .n = 0 };
	int rc;

	if ((rc = pg_commitment_get(st, snapshot, peer, &c, e)) != 1)
		return rc;
	if (c.up && pg_uptime_add(st, peer, now - c.up_since, e) == -1)
		return -1;
	arg_text(&a, snapshot);
	arg_text(&a, peer);
	return pg_change(st, S_COMMIT_DELETE, &a, e) == -1 ? -1 : 1;
}

static int
pg_commitment_list(struct authstore *st, int64_t service,
		   int (*cb)(void *, const struct authstore_commitment *),
		   void *arg, struct err *e)
{
	struct pg_args a = { .n = 0 };
	struct authstore_commitment c;
	PGresult *r;
	int i, rc = 0;

	arg_int(&a, service);
	if ((r = pg_do(st, S_COMMIT_LIST, &a, e)) == NULL)
		return -1;
	for (i = 0; i < PQntuples(r) && rc == 0; i++) {
		pg_commitment_row(r, i, &c);
		rc = cb(arg, &c);
	}
	PQclear(r);
	return rc;
}

/* ---- reports ---- */

static int
pg_reported(struct authstore *st, int64_t service, const char *peer,
	    struct err *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *r;
	int found;

	arg_int(&a, service);
	arg_text(&a, peer);
	if ((r = pg_do(st, S_REPORTED, &a, e)) == NULL)
		return -1;
	found = PQntuples(r) > 0;
	PQclear(r);
	return found;
}

static int
pg_report_add(struct authstore *st, int64_t service, const char *peer,
	      const char *reporter, const char *reason, int64_t now,
	      int64_t *id, struct err *e)
{
	struct pg_args a = { .n = 0 }, b = { .n = 0 };
	PGresult *r;

	arg_int(&a, service);
	arg_text(&a, peer);
	arg_text(&a, reporter);
	arg_text(&a, reason);
	arg_int(&a, now);
	if ((r = pg_do(st, S_REPORT_ADD, &a, e)) == NULL)
		return -1;
	*id = col_int(r, 0, 0);
	PQclear(r);
	arg_int(&b, service);
	arg_text(&b, peer);
	arg_int(&b, now);
	if (pg_change(st, S_UPTIME_ADD_SERVICE, &b, e) == -1)
		return -1;
	b.n = 2;
	return pg_change(st, S_COMMIT_DELETE_SERVICE, &b, e) == -1 ? -1 : 0;
}

static int
pg_report_list(struct authstore *st, int64_t service,
	       int (*cb)(void *, const struct authstore_report *), void *arg,
	       struct err *e)
{
	struct pg_args a = { .n = 0 };
	struct authstore_report rep;
	PGresult *r;
	int i, rc = 0;

	arg_int(&a, service);
	if ((r = pg_do(st, S_REPORT_LIST, &a, e)) == NULL)
		return -1;
	for (i = 0; i < PQntuples(r) && rc == 0; i++) {
		rep.id = col_int(r, i, 0);
		col_text(r, i, 1, rep.peer, sizeof(rep.peer));
		col_text(r, i, 2, rep.reporter, sizeof(rep.reporter));
		rep.reason = PQgetvalue(r, i, 3);
		rep.at = col_int(r, i, 4);
		rc = cb(arg, &rep);
	}
	PQclear(r);
	return rc;
}

/* ---- bad sources ---- */

static int
pg_bad_source_add(struct authstore *st, const struct authstore_bad_source *b,
		  int64_t *id, bool *created, struct err *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *r;
	int n;

	arg_text(&a, b->sha256);
	arg_text(&a, b->peer);
	arg_text(&a, b->reporter);
	arg_int(&a, b->chunk);
	arg_text(&a, b->expected);
	arg_text(&a, b->received);
	arg_int(&a, b->at);
	if ((n = pg_change(st, S_BAD_ADD, &a, e)) == -1)
		return -1;
	*created = n > 0;
	a.n = 3;
	if ((r = pg_do(st, S_BAD_GET, &a, e)) == NULL)
		return -1;
	if (PQntuples(r) > 0)
		*id = col_int(r, 0, 0);
	PQclear(r);
	return 0;
}

static int
pg_peers_at(struct authstore *st, const char *addr,
	    int (*cb)(void *, const char *), void *arg, struct err *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *r;
	int i, rc = 0;

	arg_text(&a, addr);
	if ((r = pg_do(st, S_PEERS_AT, &a, e)) == NULL)
		return -1;
	for (i = 0; i < PQntuples(r) && rc == 0; i++)
		rc = cb(arg, PQgetvalue(r, i, 0));
	PQclear(r);
	return rc;
}

/* ---- holdings and sources ---- */

static int
pg_holding_put(struct authstore *st, const char *sha256, const char *peer,
	       int64_t now, bool *created, struct err *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *r;

	arg_text(&a, sha256);
	arg_text(&a, peer);
	if ((r = pg_do(st, S_HOLD_GET, &a, e)) == NULL)
		return -1;
	*created = PQntuples(r) == 0;
	PQclear(r);
	arg_int(&a, now);
	return pg_change(st, S_HOLD_PUT, &a, e) == -1 ? -1 : 0;
}

static int
pg_holding_delete(struct authstore *st, const char *sha256, const char *peer,
		  struct err *e)
{
	struct pg_args a = { .n = 0 };
	int n;

	arg_text(&a, sha256);
	arg_text(&a, peer);
	if ((n = pg_change(st, S_HOLD_DELETE, &a, e)) == -1)
		return -1;
	return n > 0;
}

static int
pg_sources(struct authstore *st, const char *sha256, int64_t service,
	   unsigned max, int64_t cutoff,
	   int (*cb)(void *, const char *, const char *, enum authstore_role),
	   void *arg, struct err *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *r;
	int i, rc = 0;

	arg_text(&a, sha256);
	if (service > 0)
		arg_int(&a, service);
	arg_int(&a, max);
	arg_int(&a, cutoff);
	r = pg_do(st, service > 0 ? S_SOURCES_SNAP : S_SOURCES_OBJ, &a, e);
	if (r == NULL)
		return -1;
	for (i = 0; i < PQntuples(r) && rc == 0; i++)
		rc = cb(arg, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
			(enum authstore_role)col_int(r, i, 2));
	PQclear(r);
	return rc;
}

/* ---- lookup ---- */

static int
pg_lookup(struct authstore *st, const char *host, uint16_t port,
	  int (*cb)(void *, const char *, const char *, uint16_t),
	  void *arg, struct err *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *r;
	int i, rc = 0, found;

	arg_text(&a, host);
	arg_int(&a, port);
	if ((r = pg_do(st, S_LOOKUP, &a, e)) == NULL)
		return -1;
	found = PQntuples(r) > 0;
	for (i = 0; i < PQntuples(r) && rc == 0; i++) {
		if (PQgetisnull(r, i, 0))
			continue;
		rc = cb(arg, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
			(uint16_t)col_int(r, i, 2));
	}
	PQclear(r);
	return rc != 0 ? rc : found;
}

/* ---- counts ---- */

static int64_t
pg_last_seen(struct authstore *st, struct err *e)
{
	PGresult *r = pg_run(st, S_LAST_SEEN, NULL, 0, e);
	int64_t v;

	if (r == NULL)
		return -1;
	v = col_int(r, 0, 0);
	PQclear(r);
	return v;
}

/* ---- owner keys ---- */

/* The first row of r (if any) into k: 1 or 0. */
static int
pg_key_row(const PGresult *r, struct authstore_key_change *k)
{
	if (PQntuples(r) == 0)
		return 0;
	memset(k, 0, sizeof(*k));
	col_text(r, 0, 0, k->key, sizeof(k->key));
	col_text(r, 0, 1, k->kind, sizeof(k->kind));
	col_text(r, 0, 2, k->successor, sizeof(k->successor));
	col_text(r, 0, 3, k->record, sizeof(k->record));
	col_text(r, 0, 4, k->signature, sizeof(k->signature));
	col_text(r, 0, 5, k->new_signature, sizeof(k->new_signature));
	k->at = col_int(r, 0, 6);
	col_text(r, 0, 7, k->confirm_record, sizeof(k->confirm_record));
	col_text(r, 0, 8, k->confirm_signature, sizeof(k->confirm_signature));
	k->confirmed_at = col_int(r, 0, 9);
	return 1;
}

/* The row of statement id bound with key, into k: 1, 0 or -1. */
static int
pg_key_one(struct authstore *st, enum pg_stmt_id id, const char *key,
	   struct authstore_key_change *k, struct err *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *r;
	int found;

	arg_text(&a, key);
	if ((r = pg_do(st, id, &a, e)) == NULL)
		return -1;
	found = pg_key_row(r, k);
	PQclear(r);
	return found;
}

static int
pg_key_change_get(struct authstore *st, const char *key,
		  struct authstore_key_change *k, struct err *e)
{
	return pg_key_one(st, S_KEY_GET, key, k, e);
}

static int
pg_key_change_to(struct authstore *st, const char *key,
		 struct authstore_key_change *k, struct err *e)
{
	return pg_key_one(st, S_KEY_TO, key, k, e);
}

static int
pg_key_change_add(struct authstore *st, const struct authstore_key_change *k,
		  struct err *e)
{
	struct pg_args a = { .n = 0 };

	arg_text(&a, k->key);
	arg_text(&a, k->kind);
	arg_text(&a, k->successor);
	arg_text(&a, k->record);
	arg_text(&a, k->signature);
	arg_text(&a, k->new_signature);
	arg_int(&a, k->at);
	return pg_change(st, S_KEY_ADD, &a, e) == -1 ? -1 : 0;
}

static int
pg_key_confirm(struct authstore *st, const char *key, const char *successor,
	       const char *record, const char *signature, int64_t at,
	       struct err *e)
{
	struct pg_args a = { .n = 0 };
	int n;

	arg_text(&a, key);
	arg_text(&a, successor);
	arg_text(&a, record);
	arg_text(&a, signature);
	arg_int(&a, at);
	if ((n = pg_change(st, S_KEY_CONFIRM, &a, e)) == -1)
		return -1;
	return n > 0;
}

static int
pg_services_transfer(struct authstore *st, const char *from, const char *to,
		     struct err *e)
{
	struct pg_args a = { .n = 0 };

	arg_text(&a, from);
	arg_text(&a, to);
	return pg_change(st, S_SERVICES_TRANSFER, &a, e);
}

static int
pg_counts(struct authstore *st, struct authstore_counts *c, struct err *e)
{
	PGresult *r = pg_run(st, S_COUNTS, NULL, 0, e);

	if (r == NULL)
		return -1;
	c->peers = col_int(r, 0, 0);
	c->trusted = col_int(r, 0, 1);
	c->revoked = col_int(r, 0, 2);
	c->services = col_int(r, 0, 3);
	c->snapshots = col_int(r, 0, 4);
	c->commitments = col_int(r, 0, 5);
	c->commitments_up = col_int(r, 0, 6);
	c->holdings = col_int(r, 0, 7);
	c->reports = col_int(r, 0, 8);
	c->keys_rotated = col_int(r, 0, 9);
	c->keys_revoked = col_int(r, 0, 10);
	c->keys_frozen = col_int(r, 0, 11);
	PQclear(r);
	return 0;
}

/* ---- the listener ---- */

/* Wait up to ms for the stop pipe (or fd, if >= 0, to be readable). */
static void
pg_listen_wait(struct pg_store *q, int fd, int ms)
{
	struct pollfd p[2] = {
		{ .fd = q->stop_pipe[0], .events = POLLIN },
		{ .fd = fd, .events = POLLIN },
	};

	if (poll(p, fd >= 0 ? 2 : 1, ms) == -1 && errno != EINTR)
		log_warn("store: listener: poll: %s", strerror(errno));
}

/* A session on the primary that LISTENs, or NULL. */
static PGconn *
pg_listen_connect(struct pg_store *q, bool *said)
{
	struct err e;
	PGconn *pg = pg_connect(q->uri, "read-write", &e);

	if (pg != NULL && pg_simple(pg, "LISTEN fed_changed", &e) == 0) {
		if (*said)
			log_info("store: listening for changes on %s:%s "
				 "again", PQhost(pg), PQport(pg));
		*said = false;
		return pg;
	}
	if (!*said)
		log_warn("%s; the lookup cache holds until it is back", e.msg);
	*said = true;
	PQfinish(pg);
	return NULL;
}

static void *
pg_listen_main(void *arg)
{
	struct pg_store *q = arg;
	PGconn *pg = NULL;
	PGnotify *n;
	bool said = false, any;

	while (!atomic_load(&q->stopping)) {
		if (pg == NULL) {
			if ((pg = pg_listen_connect(q, &said)) == NULL) {
				pg_listen_wait(q, -1, PG_LISTEN_MS);
				continue;
			}
			q->changed(q->changed_arg);	/* may have missed some */
		}
		pg_listen_wait(q, PQsocket(pg), PG_LISTEN_MS);
		if (PQconsumeInput(pg) == 0) {
			log_warn("store: lost the session that listens for "
				 "changes: %s", PQerrorMessage(pg));
			PQfinish(pg);
			pg = NULL;
			continue;
		}
		for (any = false; (n = PQnotifies(pg)) != NULL; any = true)
			PQfreemem(n);
		if (any)
			q->changed(q->changed_arg);
	}
	PQfinish(pg);
	return NULL;
}

static int
pg_watch(struct authstore *st, void (*changed)(void *arg), void *arg,
	 struct err *e)
{
	struct pg_store *q = pq(st);

	if (q->listening)
		return err_set(e, "store: already watched");
	if (pipe2(q->stop_pipe, O_CLOEXEC) == -1)
		return err_set(e, "store: pipe: %s", strerror(errno));
	q->changed = changed;
	q->changed_arg = arg;
	if ((errno = pthread_create(&q->listener, NULL, pg_listen_main, q))) {
		close(q->stop_pipe[0]);
		close(q->stop_pipe[1]);
		return err_set(e, "store: cannot start the listener: %s",
			       strerror(errno));
	}
	pthread_setname_np(q->listener, "fed-pg-listen");
	q->listening = true;
	return 0;
}

const struct authstore_ops authstore_pg_ops = {
	.name = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.sig_add = pg_sig_add,
	.sig_prune = pg_sig_prune,
	.sig_load = pg_sig_load,
	.peer_get = pg_peer_get,
	.peer_put = pg_peer_put,
	.peer_contribution = pg_peer_contribution,
	.trusted_get = pg_trusted_get,
	.trusted_add = pg_trusted_add,
	.trusted_revoke = pg_trusted_revoke,
	.trusted_list = pg_trusted_list,
	.service_get = pg_service_get,
	.service_add = pg_service_add,
	.snapshot_get = pg_snapshot_get,
	.snapshot_add = pg_snapshot_add,
	.snapshot_list = pg_snapshot_list,
	.commitment_get = pg_commitment_get,
	.commitment_add = pg_commitment_add,
	.commitment_set = pg_commitment_set,
	.commitment_delete = pg_commitment_delete,
	.commitments_expire = pg_commitments_expire,
	.peers_forget = pg_peers_forget,
	.commitment_list = pg_commitment_list,
	.reported = pg_reported,
	.report_add = pg_report_add,
	.report_list = pg_report_list,
	.bad_source_add = pg_bad_source_add,
	.peers_at = pg_peers_at,
	.holding_put = pg_holding_put,
	.holding_delete = pg_holding_delete,
	.sources = pg_sources,
	.lookup = pg_lookup,
	.key_change_get = pg_key_change_get,
	.key_change_to = pg_key_change_to,
	.key_change_add = pg_key_change_add,
	.key_confirm = pg_key_confirm,
	.services_transfer = pg_services_transfer,
	.counts = pg_counts,
	.last_seen = pg_last_seen,
	.where = pg_where,
	.watch = pg_watch,
};
