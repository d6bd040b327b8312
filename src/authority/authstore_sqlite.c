/*
 * authstore_sqlite.c - the authority's store (authstore.h) on SQLite.
 *
 * Durability: the database runs in WAL mode with synchronous=FULL, so
 * COMMIT returns only after the write-ahead log is fsync'ed; a reply sent
 * after sq_commit() survives kill -9 and power loss alike.
 *
 * Threads: SQLite connections are not shared.  Each thread that touches the
 * store gets its own connection (opened on first use, kept in a pthread key,
 * closed when the thread exits or at authstore_close) with its own prepared
 * statements, prepared once on first use.  Readers never block in WAL mode;
 * writers take the store's wlock before BEGIN IMMEDIATE, so they queue in the
 * process instead of spinning on SQLITE_BUSY.
 *
 * Schema: versioned with PRAGMA user_version.  authstore_migrations[i] takes a
 * database from version i to i + 1; authstore_open applies the missing ones in
 * one transaction and refuses a database newer than this program.
 *
 * Every statement is reset as soon as its rows are read (authstore_done), so no
 * connection holds a read snapshot between calls.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "authority/authstore_int.h"

/* ---- schema ---- */

static const char *const authstore_migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE peers("
	"  key TEXT PRIMARY KEY NOT NULL,"
	"  addr TEXT NOT NULL,"
	"  registered INTEGER NOT NULL,"
	"  updated INTEGER NOT NULL,"
	"  uptime_total INTEGER NOT NULL DEFAULT 0"
	") WITHOUT ROWID;"
	"CREATE TABLE trusted("
	"  sha256 TEXT PRIMARY KEY NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN ('kernel', 'base')),"
	"  name TEXT NOT NULL DEFAULT '',"
	"  idx TEXT NOT NULL,"
	"  added INTEGER NOT NULL,"
	"  revoked INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE TABLE services("
	"  id INTEGER PRIMARY KEY,"
	"  host TEXT NOT NULL,"
	"  port INTEGER NOT NULL,"
	"  owner TEXT NOT NULL,"
	"  newest TEXT,"
	"  newest_version INTEGER NOT NULL DEFAULT -1,"
	"  created INTEGER NOT NULL,"
	"  UNIQUE (host, port)"
	");"
	"CREATE INDEX services_owner ON services(owner);"
	"CREATE TABLE snapshots("
	"  id TEXT PRIMARY KEY NOT NULL,"
	"  service INTEGER NOT NULL REFERENCES services(id),"
	"  owner TEXT NOT NULL,"
	"  version INTEGER NOT NULL,"
	"  base TEXT NOT NULL,"
	"  kernel TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  created TEXT NOT NULL,"
	"  manifest TEXT NOT NULL,"
	"  signature TEXT NOT NULL,"
	"  announced INTEGER NOT NULL,"
	"  UNIQUE (service, version)"
	");"
	"CREATE INDEX snapshots_base ON snapshots(base);"
	"CREATE INDEX snapshots_kernel ON snapshots(kernel);"
	"CREATE TABLE commitments("
	"  snapshot TEXT NOT NULL REFERENCES snapshots(id),"
	"  peer TEXT NOT NULL,"
	"  service INTEGER NOT NULL,"
	"  up INTEGER NOT NULL DEFAULT 0,"
	"  addr TEXT,"
	"  port INTEGER,"
	"  created INTEGER NOT NULL,"
	"  updated INTEGER NOT NULL,"
	"  up_since INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (snapshot, peer)"
	") WITHOUT ROWID;"
	"CREATE INDEX commitments_peer ON commitments(peer, up);"
	"CREATE INDEX commitments_service ON commitments(service, peer);"
	"CREATE TABLE holdings("
	"  sha256 TEXT NOT NULL,"
	"  peer TEXT NOT NULL,"
	"  updated INTEGER NOT NULL,"
	"  PRIMARY KEY (sha256, peer)"
	") WITHOUT ROWID;"
	"CREATE TABLE reports("
	"  id INTEGER PRIMARY KEY,"
	"  service INTEGER NOT NULL,"
	"  peer TEXT NOT NULL,"
	"  reporter TEXT NOT NULL,"
	"  reason TEXT NOT NULL,"
	"  at INTEGER NOT NULL"
	");"
	"CREATE INDEX reports_service_peer ON reports(service, peer);"
	"CREATE TABLE seen_sigs("
	"  sig TEXT PRIMARY KEY NOT NULL,"
	"  expires INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE INDEX seen_sigs_expires ON seen_sigs(expires);",
	/* 1 -> 2: the sweep finds commitments up and not refreshed
	 * (sweep.c) without a scan of them all */
	"CREATE INDEX commitments_up_updated ON commitments(up, updated);",
	/* 2 -> 3: peers long lapsed are forgotten (sweep.c) */
	"CREATE INDEX peers_updated ON peers(updated);",
	/* 3 -> 4: peers caught serving bad chunks of an object, by the peers
	 * that caught them, with the evidence; no longer its sources.  A
	 * report names the source by its address (what the reporter
	 * fetched from): peers_addr finds whose it is */
	"CREATE TABLE bad_sources("
	"  id INTEGER PRIMARY KEY,"
	"  sha256 TEXT NOT NULL,"
	"  peer TEXT NOT NULL,"
	"  reporter TEXT NOT NULL,"
	"  chunk INTEGER NOT NULL,"
	"  expected TEXT NOT NULL,"
	"  received TEXT NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  UNIQUE (sha256, peer, reporter)"
	");"
	"CREATE INDEX peers_addr ON peers(addr);",
	/* 4 -> 5: owner keys rotated or revoked, with the records that
	 * said so (api_keys.c); a key changes once, so key is the chain's
	 * link to its successor, and key_changes_successor its way back */
	"CREATE TABLE key_changes("
	"  key TEXT PRIMARY KEY NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN ('rotated', 'revoked')),"
	"  successor TEXT,"
	"  record TEXT NOT NULL,"
	"  signature TEXT NOT NULL,"
	"  new_signature TEXT NOT NULL DEFAULT '',"
	"  at INTEGER NOT NULL,"
	"  confirm_record TEXT NOT NULL DEFAULT '',"
	"  confirm_signature TEXT NOT NULL DEFAULT '',"
	"  confirmed_at INTEGER NOT NULL DEFAULT 0"
	") WITHOUT ROWID;"
	"CREATE UNIQUE INDEX key_changes_successor ON key_changes(successor);",
};
#define AUTHSTORE_SCHEMA_VERSION \
	((int)(sizeof(authstore_migrations) / sizeof(authstore_migrations[0])))

/* ---- statements ---- */

enum authstore_stmt_id {
	S_BEGIN, S_COMMIT, S_ROLLBACK,
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

/* oldest first, along peers_updated; the owner and commitment checks use
 * services_owner and commitments_peer */
#define FORGETTABLE_PEERS \
	"SELECT p.key FROM peers p WHERE p.updated < ?1 " \
	"AND NOT EXISTS (SELECT 1 FROM services v WHERE v.owner = p.key) " \
	"AND NOT EXISTS (SELECT 1 FROM commitments c WHERE c.peer = p.key) " \
	"ORDER BY p.updated, p.key LIMIT ?2"

/* x.peer was not caught serving bad chunks of ?1 (a snapshot's owner
 * stays its source whatever is said: see authstore_bad_source_add) */
#define NOT_BAD_SOURCE \
	"NOT EXISTS (SELECT 1 FROM bad_sources b WHERE b.sha256 = ?1 " \
	"AND b.peer = x.peer)"

static const char *const authstore_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SIG_ADD] = "INSERT OR IGNORE INTO seen_sigs(sig, expires) "
	    "VALUES (?1, ?2)",
	[S_SIG_PRUNE] = "DELETE FROM seen_sigs WHERE expires < ?1",
	[S_SIG_LIST] = "SELECT sig, expires FROM seen_sigs",
	[S_PEER_GET] = "SELECT key, addr, registered, updated, uptime_total "
	    "FROM peers WHERE key = ?1",
	[S_PEER_INSERT] = "INSERT OR IGNORE INTO peers(key, addr, "
	    "registered, updated) VALUES (?1, ?2, ?3, ?3)",
	[S_PEER_UPDATE] = "UPDATE peers SET addr = ?2, updated = ?3 "
	    "WHERE key = ?1",
	[S_CONTRIB_OWNED] = "SELECT count(*) FROM services WHERE owner = ?1",
	[S_CONTRIB_HOSTED] = "SELECT count(DISTINCT c.service) "
	    "FROM commitments c JOIN services s ON s.id = c.service "
	    "WHERE c.peer = ?1 AND c.up = 1 AND s.owner <> ?1",
	[S_CONTRIB_COMMITS] = "SELECT count(*), COALESCE(sum(up), 0), "
	    "COALESCE(sum(CASE WHEN up = 1 THEN ?2 - up_since ELSE 0 END), 0) "
	    "FROM commitments WHERE peer = ?1",
	[S_TRUST_GET] = "SELECT sha256, kind, name, idx, added, revoked "
	    "FROM trusted WHERE sha256 = ?1",
	[S_TRUST_ADD] = "INSERT INTO trusted(sha256, kind, name, idx, added) "
	    "VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_TRUST_REVOKE] = "UPDATE trusted SET revoked = ?2 "
	    "WHERE sha256 = ?1 AND revoked = 0",
	[S_TRUST_LIST] = "SELECT sha256, kind, name, idx, added, revoked "
	    "FROM trusted ORDER BY rowid",
	[S_SERVICE_GET] = "SELECT id, host, port, owner, "
	    "COALESCE(newest, ''), newest_version, created "
	    "FROM services WHERE host = ?1 AND port = ?2",
	[S_SERVICE_ADD] = "INSERT INTO services(host, port, owner, created) "
	    "VALUES (?1, ?2, ?3, ?4)",
	[S_SERVICE_NEWEST] = "UPDATE services SET newest = ?2, "
	    "newest_version = ?3 WHERE id = ?1 AND newest_version < ?3",
	[S_SNAP_GET] = "SELECT " SNAP_COLUMNS ", n.manifest FROM snapshots n "
	    "JOIN services s ON s.id = n.service WHERE n.id = ?1",
	[S_SNAP_ADD] = "INSERT INTO snapshots(id, service, owner, version, "
	    "base, kernel, name, created, manifest, signature, announced) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[S_SNAP_LIST_ALL] = "SELECT " SNAP_COLUMNS " FROM snapshots n "
	    "JOIN services s ON s.id = n.service "
	    "ORDER BY s.host, s.port, n.version DESC",
	[S_SNAP_LIST_SERVICE] = "SELECT " SNAP_COLUMNS " FROM snapshots n "
	    "JOIN services s ON s.id = n.service "
	    "WHERE s.host = ?1 AND s.port = ?2 ORDER BY n.version DESC",
	[S_COMMIT_GET] = "SELECT " COMMIT_COLUMNS COMMIT_FROM
	    " WHERE c.snapshot = ?1 AND c.peer = ?2",
	[S_COMMIT_ADD] = "INSERT INTO commitments(snapshot, peer, service, "
	    "up, addr, port, created, updated, up_since) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
	[S_COMMIT_SET] = "UPDATE commitments SET up = ?3, addr = ?4, "
	    "port = ?5, updated = ?6, up_since = ?7 "
	    "WHERE snapshot = ?1 AND peer = ?2",
	[S_COMMIT_DELETE] = "DELETE FROM commitments "
	    "WHERE snapshot = ?1 AND peer = ?2",
	[S_COMMIT_LIST] = "SELECT " COMMIT_COLUMNS COMMIT_FROM
	    " WHERE c.service = ?1 ORDER BY n.version DESC, c.peer",
	[S_UPTIME_ADD] = "UPDATE peers SET uptime_total = uptime_total + ?2 "
	    "WHERE key = ?1",
	[S_UPTIME_ADD_SERVICE] = "UPDATE peers SET uptime_total = "
	    "uptime_total + (SELECT COALESCE(sum(?3 - up_since), 0) "
	    "FROM commitments WHERE service = ?1 AND peer = ?2 AND up = 1) "
	    "WHERE key = ?2",
	[S_COMMIT_DELETE_SERVICE] = "DELETE FROM commitments "
	    "WHERE service = ?1 AND peer = ?2",
	/* a commitment not refreshed since ?1: up time until its last
	 * refresh, then down */
	[S_EXPIRE_UPTIME] = "UPDATE peers SET uptime_total = uptime_total + "
	    "(SELECT COALESCE(sum(c.updated - c.up_since), 0) FROM commitments c "
	    "WHERE c.peer = peers.key AND c.up = 1 AND c.updated < ?1 "
	    "AND c.updated > c.up_since) "
	    "WHERE key IN (SELECT peer FROM commitments WHERE up = 1 "
	    "AND updated < ?1)",
	[S_EXPIRE_DOWN] = "UPDATE commitments SET up = 0, up_since = 0 "
	    "WHERE up = 1 AND updated < ?1",
	/* a batch of peers not heard from since ?1, unless they own a
	 * service (a snapshot's owner owns its service) or hold a commitment:
	 * their key names something others depend on.  What they said they
	 * hold goes first, then they; reports name peers by key and stay. */
	[S_FORGET_HOLDINGS] = "DELETE FROM holdings WHERE peer IN ("
	    FORGETTABLE_PEERS ")",
	[S_FORGET_PEERS] = "DELETE FROM peers WHERE key IN ("
	    FORGETTABLE_PEERS ")",
	[S_REPORTED] = "SELECT 1 FROM reports WHERE service = ?1 "
	    "AND peer = ?2 LIMIT 1",
	[S_REPORT_ADD] = "INSERT INTO reports(service, peer, reporter, "
	    "reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_REPORT_LIST] = "SELECT id, peer, reporter, reason, at "
	    "FROM reports WHERE service = ?1 ORDER BY id",
	[S_BAD_ADD] = "INSERT OR IGNORE INTO bad_sources(sha256, peer, "
	    "reporter, chunk, expected, received, at) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_BAD_GET] = "SELECT id FROM bad_sources WHERE sha256 = ?1 "
	    "AND peer = ?2 AND reporter = ?3",
	[S_PEERS_AT] = "SELECT key FROM peers WHERE addr = ?1 ORDER BY key",
	[S_HOLD_GET] = "SELECT 1 FROM holdings WHERE sha256 = ?1 "
	    "AND peer = ?2",
	[S_HOLD_PUT] = "INSERT INTO holdings(sha256, peer, updated) "
	    "VALUES (?1, ?2, ?3) ON CONFLICT (sha256, peer) "
	    "DO UPDATE SET updated = excluded.updated",
	[S_HOLD_DELETE] = "DELETE FROM holdings WHERE sha256 = ?1 "
	    "AND peer = ?2",
	[S_SOURCES_SNAP] = "SELECT x.peer, p.addr, min(x.prio) AS prio FROM ("
	    " SELECT owner AS peer, 0 AS prio FROM snapshots WHERE id = ?1"
	    " UNION ALL SELECT peer, 1 FROM commitments WHERE snapshot = ?1"
	    " UNION ALL SELECT peer, 2 FROM holdings WHERE sha256 = ?1"
	    ") AS x JOIN peers p ON p.key = x.peer AND p.updated >= ?4 "
	    "WHERE NOT EXISTS (SELECT 1 FROM reports r WHERE r.service = ?2 "
	    "AND r.peer = x.peer) AND (x.prio = 0 OR " NOT_BAD_SOURCE ") "
	    "GROUP BY x.peer ORDER BY prio, random() LIMIT ?3",
	[S_SOURCES_OBJ] = "SELECT x.peer, p.addr, min(x.prio) AS prio FROM ("
	    " SELECT c.peer AS peer, 1 AS prio FROM snapshots n"
	    "  JOIN commitments c ON c.snapshot = n.id"
	    "  WHERE n.base = ?1 OR n.kernel = ?1"
	    " UNION ALL SELECT peer, 2 FROM holdings WHERE sha256 = ?1"
	    ") AS x JOIN peers p ON p.key = x.peer AND p.updated >= ?4 "
	    "WHERE " NOT_BAD_SOURCE " "
	    "GROUP BY x.peer ORDER BY prio, random() LIMIT ?3",
	/* One statement, so one read lock: a row per serving peer, or one
	 * row of NULLs when the service exists but nobody serves it (or
	 * its newest snapshot uses a revoked base or kernel). */
	[S_LOOKUP] = "SELECT c.peer, c.addr, c.port FROM services s "
	    "LEFT JOIN snapshots n ON n.id = s.newest "
	    "LEFT JOIN commitments c ON c.snapshot = n.id AND c.up = 1 "
	    "AND c.addr IS NOT NULL "
	    "AND NOT EXISTS (SELECT 1 FROM reports r WHERE r.service = s.id "
	    "AND r.peer = c.peer) "
	    "AND NOT EXISTS (SELECT 1 FROM trusted t WHERE t.sha256 IN "
	    "(n.base, n.kernel) AND t.revoked <> 0) "
	    "WHERE s.host = ?1 AND s.port = ?2 ORDER BY c.peer",
	[S_KEY_GET] = "SELECT " KEY_COLUMNS " FROM key_changes WHERE key = ?1",
	[S_KEY_TO] = "SELECT " KEY_COLUMNS " FROM key_changes "
	    "WHERE successor = ?1",
	[S_KEY_ADD] = "INSERT INTO key_changes(key, kind, successor, record, "
	    "signature, new_signature, at) VALUES (?1, ?2, NULLIF(?3, ''), "
	    "?4, ?5, ?6, ?7)",
	[S_KEY_CONFIRM] = "UPDATE key_changes SET successor = ?2, "
	    "confirm_record = ?3, confirm_signature = ?4, confirmed_at = ?5 "
	    "WHERE key = ?1 AND kind = 'revoked' AND successor IS NULL",
	[S_SERVICES_TRANSFER] = "UPDATE services SET owner = ?2 "
	    "WHERE owner = ?1",
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
	/* about when the authority last ran: its latest refresh taken */
	[S_LAST_SEEN] = "SELECT max(COALESCE((SELECT max(updated) FROM peers), 0),"
	    " COALESCE((SELECT max(updated) FROM commitments), 0))",
};

/* ---- connections ---- */

struct authstore_conn {
	struct authstore *st;
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT];
	int in_tx;
	struct authstore_conn *prev, *next;	/* the store's conns; its lock */
};

struct sqlite_store {
	struct authstore base;		/* first: the handle handed out */
	char *path;
	pthread_key_t key;
	pthread_mutex_t lock;		/* protects conns */
	pthread_mutex_t wlock;		/* held by the one writer */
	struct authstore_conn *conns;
};

static struct sqlite_store *
sq(struct authstore *st)
{
	return (struct sqlite_store *)st;
}

static void
authstore_conn_close(struct authstore_conn *c)
{
	int i;

	for (i = 0; i < S_COUNT; i++)
		sqlite3_finalize(c->stmt[i]);
	sqlite3_close(c->db);
	free(c);
}

/* pthread key destructor: the thread that owned c is exiting. */
static void
authstore_conn_release(void *p)
{
	struct authstore_conn *c = p;
	struct authstore *st = c->st;

	pthread_mutex_lock(&sq(st)->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		sq(st)->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&sq(st)->lock);
	if (c->in_tx)
		pthread_mutex_unlock(&sq(st)->wlock);
	authstore_conn_close(c);
}

static int
authstore_exec(sqlite3 *db, const char *sql, struct err *e)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		err_set(e, "store: %s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Open a connection to the file at path with this store's settings. */
static sqlite3 *
authstore_connect(const char *path, struct err *e)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
			    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		err_set(e, "store: %s: %s", path,
			db ? sqlite3_errmsg(db) : "out of memory");
		goto bad;
	}
	sqlite3_busy_timeout(db, 10000);
	/* Reads through a memory map and a bigger page cache: fewer system
	 * calls per lookup.  synchronous = FULL: a commit is on disk. */
	if (authstore_exec(db, "PRAGMA synchronous = FULL;"
			   "PRAGMA foreign_keys = ON;"
			   "PRAGMA mmap_size = 1073741824;"
			   "PRAGMA cache_size = -16384;", e) == -1)
		goto bad;
	return db;
bad:
	sqlite3_close(db);
	return NULL;
}

/* This thread's connection, opened on first use. */
static struct authstore_conn *
authstore_conn(struct authstore *st, struct err *e)
{
	struct authstore_conn *c = pthread_getspecific(sq(st)->key);

	if (c != NULL)
		return c;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		err_set(e, "store: out of memory");
		return NULL;
	}
	c->st = st;
	if ((c->db = authstore_connect(sq(st)->path, e)) == NULL) {
		free(c);
		return NULL;
	}
	if (pthread_setspecific(sq(st)->key, c) != 0) {
		err_set(e, "store: cannot keep a connection");
		authstore_conn_close(c);
		return NULL;
	}
	pthread_mutex_lock(&sq(st)->lock);
	c->next = sq(st)->conns;
	if (sq(st)->conns)
		sq(st)->conns->prev = c;
	sq(st)->conns = c;
	pthread_mutex_unlock(&sq(st)->lock);
	return c;
}

/* Statement id on this thread's connection, ready for binding. */
static sqlite3_stmt *
authstore_stmt(struct authstore *st, enum authstore_stmt_id id, struct err *e)
{
	struct authstore_conn *c = authstore_conn(st, e);

	if (c == NULL)
		return NULL;
	if (c->stmt[id] == NULL &&
	    sqlite3_prepare_v3(c->db, authstore_sql[id], -1,
			       SQLITE_PREPARE_PERSISTENT, &c->stmt[id],
			       NULL) != SQLITE_OK) {
		err_set(e, "store: prepare: %s", sqlite3_errmsg(c->db));
		return NULL;
	}
	return c->stmt[id];
}

/* Finish with s: reset it (ending its read) and drop its bindings. */
static void
authstore_done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

static int
authstore_fail(sqlite3_stmt *s, struct err *e)
{
	err_set(e, "store: %s", sqlite3_errmsg(sqlite3_db_handle(s)));
	authstore_done(s);
	return -1;
}

/* Step a statement that returns no rows, then reset it. */
static int
authstore_run(sqlite3_stmt *s, struct err *e)
{
	int rc = sqlite3_step(s);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return authstore_fail(s, e);
	authstore_done(s);
	return 0;
}

static void
authstore_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

/* Copy text column i into buf (size bytes, always NUL-terminated). */
static void
authstore_col(sqlite3_stmt *s, int i, char *buf, size_t size)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	size_t n = t ? (size_t)sqlite3_column_bytes(s, i) : 0;

	if (n >= size)
		n = size - 1;
	if (n)
		memcpy(buf, t, n);
	buf[n] = '\0';
}

static int
authstore_migrate(sqlite3 *db, struct err *e)
{
	sqlite3_stmt *s = NULL;
	int version, i;
	char sql[64];

	/* WAL is a property of the database file: set once, kept. */
	if (authstore_exec(db, "PRAGMA journal_mode = WAL;", e) == -1)
		return -1;
	if (authstore_exec(db, "BEGIN IMMEDIATE;", e) == -1)
		return -1;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) !=
	    SQLITE_OK || sqlite3_step(s) != SQLITE_ROW) {
		err_set(e, "store: %s", sqlite3_errmsg(db));
		goto bad;
	}
	version = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	s = NULL;
	if (version > AUTHSTORE_SCHEMA_VERSION) {
		err_set(e, "store: database schema version %d is newer than "
			"this program's (%d)", version, AUTHSTORE_SCHEMA_VERSION);
		goto bad;
	}
	for (i = version; i < AUTHSTORE_SCHEMA_VERSION; i++)
		if (authstore_exec(db, authstore_migrations[i], e) == -1) {
			err_wrap(e, "migration to schema %d", i + 1);
			goto bad;
		}
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d;",
		 AUTHSTORE_SCHEMA_VERSION);
	if (authstore_exec(db, sql, e) == -1 || authstore_exec(db, "COMMIT;", e) == -1)
		goto bad;
	return 0;
bad:
	sqlite3_finalize(s);
	sqlite3_exec(db, "ROLLBACK;", NULL, NULL, NULL);
	return -1;
}

static struct authstore *
sq_open(const char *path, struct err *e)
{
	struct sqlite_store *q;
	sqlite3 *db;

	if ((q = calloc(1, sizeof(*q))) == NULL ||
	    (q->path = strdup(path)) == NULL) {
		free(q);
		err_set(e, "store: out of memory");
		return NULL;
	}
	q->base.ops = &authstore_sqlite_ops;
	if ((db = authstore_connect(path, e)) == NULL)
		goto bad;
	if (authstore_migrate(db, e) == -1) {
		sqlite3_close(db);
		goto bad;
	}
	sqlite3_close(db);
	if (pthread_key_create(&q->key, authstore_conn_release) != 0) {
		err_set(e, "store: cannot create a thread key");
		goto bad;
	}
	pthread_mutex_init(&q->lock, NULL);
	pthread_mutex_init(&q->wlock, NULL);
	return &q->base;
bad:
	free(q->path);
	free(q);
	return NULL;
}

static void
sq_close(struct authstore *st)
{
	struct sqlite_store *q = sq(st);
	struct authstore_conn *c, *next;

	pthread_key_delete(q->key);
	for (c = q->conns; c != NULL; c = next) {
		next = c->next;
		authstore_conn_close(c);
	}
	pthread_mutex_destroy(&q->lock);
	pthread_mutex_destroy(&q->wlock);
	free(q->path);
	free(q);
}

static int
sq_where(struct authstore *st, struct authstore_where *w, struct err *e)
{
	(void)e;
	snprintf(w->host, sizeof(w->host), "%s", sq(st)->path);
	w->writable = access(sq(st)->path, W_OK) == 0;
	return 0;
}

/* ---- transactions ---- */

static void sq_rollback(struct authstore *st);

static int
sq_begin(struct authstore *st, struct err *e)
{
	struct authstore_conn *c = authstore_conn(st, e);
	sqlite3_stmt *s;

	if (c == NULL)
		return -1;
	pthread_mutex_lock(&sq(st)->wlock);
	if ((s = authstore_stmt(st, S_BEGIN, e)) == NULL ||
	    authstore_run(s, e) == -1) {
		pthread_mutex_unlock(&sq(st)->wlock);
		return -1;
	}
	c->in_tx = 1;
	return 0;
}

static int
sq_commit(struct authstore *st, struct err *e)
{
	struct authstore_conn *c = authstore_conn(st, e);
	sqlite3_stmt *s;

	if (c == NULL || !c->in_tx)
		return err_set(e, "store: commit without a transaction");
	if ((s = authstore_stmt(st, S_COMMIT, e)) == NULL ||
	    authstore_run(s, e) == -1) {
		sq_rollback(st);
		return -1;
	}
	c->in_tx = 0;
	pthread_mutex_unlock(&sq(st)->wlock);
	return 0;
}

static void
sq_rollback(struct authstore *st)
{
	struct authstore_conn *c = authstore_conn(st, NULL);
	sqlite3_stmt *s;

	if (c == NULL || !c->in_tx)
		return;
	if ((s = authstore_stmt(st, S_ROLLBACK, NULL)) != NULL)
		authstore_run(s, NULL);
	if (!sqlite3_get_autocommit(c->db))	/* ROLLBACK itself failed */
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	c->in_tx = 0;
	pthread_mutex_unlock(&sq(st)->wlock);
}

/* ---- replay protection ---- */

static int
sq_sig_add(struct authstore *st, const char *sig_hex, int64_t expires,
	      struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_SIG_ADD, e);

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, sig_hex);
	sqlite3_bind_int64(s, 2, expires);
	if (authstore_run(s, e) == -1)
		return -1;
	return sqlite3_changes(authstore_conn(st, NULL)->db) == 0;
}

static int
sq_sig_prune(struct authstore *st, int64_t now, struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_SIG_PRUNE, e);

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, now);
	return authstore_run(s, e);
}

static int
sq_sig_load(struct authstore *st, int64_t now,
	       int (*cb)(void *, const char *, int64_t), void *arg,
	       struct err *e)
{
	char sig[2 * ED25519_SIG_LEN + 1];
	sqlite3_stmt *s;
	int rc;

	if (sq_begin(st, e) == -1)
		return -1;
	if (sq_sig_prune(st, now, e) == -1)
		goto bad;
	if (sq_commit(st, e) == -1)
		return -1;
	if ((s = authstore_stmt(st, S_SIG_LIST, e)) == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		authstore_col(s, 0, sig, sizeof(sig));
		if ((rc = cb(arg, sig, sqlite3_column_int64(s, 1))) != 0) {
			authstore_done(s);
			return rc;
		}
	}
	if (rc != SQLITE_DONE)
		return authstore_fail(s, e);
	authstore_done(s);
	return 0;
bad:
	sq_rollback(st);
	return -1;
}

/* ---- peers ---- */

static int
sq_peer_get(struct authstore *st, const char *key, struct authstore_peer *p,
	       struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_PEER_GET, e);
	int rc;

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, key);
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		authstore_done(s);
		return 0;
	}
	if (rc != SQLITE_ROW)
		return authstore_fail(s, e);
	authstore_col(s, 0, p->key, sizeof(p->key));
	authstore_col(s, 1, p->addr, sizeof(p->addr));
	p->registered = sqlite3_column_int64(s, 2);
	p->updated = sqlite3_column_int64(s, 3);
	p->uptime_total = sqlite3_column_int64(s, 4);
	authstore_done(s);
	return 1;
}

static int
sq_peer_put(struct authstore *st, const char *key, const char *addr,
	       int64_t now, bool *created, struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_PEER_INSERT, e);

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, key);
	authstore_bind_text(s, 2, addr);
	sqlite3_bind_int64(s, 3, now);
	if (authstore_run(s, e) == -1)
		return -1;
	*created = sqlite3_changes(sqlite3_db_handle(s)) > 0;
	if (*created)
		return 0;
	if ((s = authstore_stmt(st, S_PEER_UPDATE, e)) == NULL)
		return -1;
	authstore_bind_text(s, 1, key);
	authstore_bind_text(s, 2, addr);
	sqlite3_bind_int64(s, 3, now);
	return authstore_run(s, e);
}

/* Run a statement bound with (key, now) returning one row of up to 3
 * integers into out. */
static int
authstore_ints(struct authstore *st, enum authstore_stmt_id id, const char *key,
	   int64_t now, int64_t *out, int n, struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, id, e);
	int i;

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, key);
	if (sqlite3_bind_parameter_count(s) >= 2)
		sqlite3_bind_int64(s, 2, now);
	if (sqlite3_step(s) != SQLITE_ROW)
		return authstore_fail(s, e);
	for (i = 0; i < n; i++)
		out[i] = sqlite3_column_int64(s, i);
	authstore_done(s);
	return 0;
}

static int
sq_peer_contribution(struct authstore *st, const char *key, int64_t now,
			struct authstore_contribution *c, struct err *e)
{
	struct authstore_peer p;
	int64_t v[3];
	int rc;

	memset(c, 0, sizeof(*c));
	if (authstore_ints(st, S_CONTRIB_OWNED, key, now, v, 1, e) == -1)
		return -1;
	c->services_owned = v[0];
	if (authstore_ints(st, S_CONTRIB_HOSTED, key, now, v, 1, e) == -1)
		return -1;
	c->services_hosted = v[0];
	if (authstore_ints(st, S_CONTRIB_COMMITS, key, now, v, 3, e) == -1)
		return -1;
	c->commitments = v[0];
	c->commitments_up = v[1];
	c->uptime_seconds = v[2];
	if ((rc = sq_peer_get(st, key, &p, e)) == -1)
		return -1;
	if (rc == 1)
		c->uptime_seconds += p.uptime_total;
	return 0;
}

/* ---- trusted ---- */

/* Fill t from a trusted row; index_json is borrowed from the statement. */
static void
authstore_trusted_row(sqlite3_stmt *s, struct authstore_trusted *t)
{
	authstore_col(s, 0, t->sha256, sizeof(t->sha256));
	authstore_col(s, 1, t->kind, sizeof(t->kind));
	authstore_col(s, 2, t->name, sizeof(t->name));
	t->index_json = (char *)sqlite3_column_text(s, 3);
	t->added = sqlite3_column_int64(s, 4);
	t->revoked = sqlite3_column_int64(s, 5);
}

static int
sq_trusted_get(struct authstore *st, const char *sha256,
		  struct authstore_trusted *t, struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_TRUST_GET, e);
	int rc;

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, sha256);
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		authstore_done(s);
		return 0;
	}
	if (rc != SQLITE_ROW)
		return authstore_fail(s, e);
	authstore_trusted_row(s, t);
	t->index_json = strdup(t->index_json ? t->index_json : "");
	authstore_done(s);
	if (t->index_json == NULL)
		return err_set(e, "store: out of memory");
	return 1;
}

static int
sq_trusted_add(struct authstore *st, const struct authstore_trusted *t,
		  struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_TRUST_ADD, e);

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, t->sha256);
	authstore_bind_text(s, 2, t->kind);
	authstore_bind_text(s, 3, t->name);
	authstore_bind_text(s, 4, t->index_json);
	sqlite3_bind_int64(s, 5, t->added);
	return authstore_run(s, e);
}

static int
sq_trusted_revoke(struct authstore *st, const char *sha256, int64_t now,
		     struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_TRUST_REVOKE, e);

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, sha256);
	sqlite3_bind_int64(s, 2, now);
	return authstore_run(s, e);
}

static int
sq_trusted_list(struct authstore *st,
		   int (*cb)(void *, const struct authstore_trusted *), void *arg,
		   struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_TRUST_LIST, e);
	struct authstore_trusted t;
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		authstore_trusted_row(s, &t);
		if ((rc = cb(arg, &t)) != 0) {
			authstore_done(s);
			return rc;
		}
	}
	if (rc != SQLITE_DONE)
		return authstore_fail(s, e);
	authstore_done(s);
	return 0;
}


/* ---- services and snapshots ---- */

static int
sq_service_get(struct authstore *st, const char *host, uint16_t port,
		  struct authstore_service *sv, struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_SERVICE_GET, e);
	int rc;

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, host);
	sqlite3_bind_int(s, 2, port);
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		authstore_done(s);
		return 0;
	}
	if (rc != SQLITE_ROW)
		return authstore_fail(s, e);
	sv->id = sqlite3_column_int64(s, 0);
	authstore_col(s, 1, sv->host, sizeof(sv->host));
	sv->port = (uint16_t)sqlite3_column_int(s, 2);
	authstore_col(s, 3, sv->owner, sizeof(sv->owner));
	authstore_col(s, 4, sv->newest, sizeof(sv->newest));
	sv->newest_version = sqlite3_column_int64(s, 5);
	sv->created = sqlite3_column_int64(s, 6);
	authstore_done(s);
	return 1;
}

static int
sq_service_add(struct authstore *st, struct authstore_service *sv,
	       struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_SERVICE_ADD, e);

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, sv->host);
	sqlite3_bind_int(s, 2, sv->port);
	authstore_bind_text(s, 3, sv->owner);
	sqlite3_bind_int64(s, 4, sv->created);
	if (authstore_run(s, e) == -1)
		return -1;
	sv->id = sqlite3_last_insert_rowid(sqlite3_db_handle(s));
	sv->newest[0] = '\0';
	sv->newest_version = -1;
	return 0;
}

static void
authstore_snapshot_row(sqlite3_stmt *s, struct authstore_snapshot *n)
{
	memset(n, 0, sizeof(*n));
	authstore_col(s, 0, n->id, sizeof(n->id));
	n->service = sqlite3_column_int64(s, 1);
	authstore_col(s, 2, n->host, sizeof(n->host));
	n->port = (uint16_t)sqlite3_column_int(s, 3);
	authstore_col(s, 4, n->owner, sizeof(n->owner));
	n->version = sqlite3_column_int64(s, 5);
	authstore_col(s, 6, n->base, sizeof(n->base));
	authstore_col(s, 7, n->kernel, sizeof(n->kernel));
	authstore_col(s, 8, n->name, sizeof(n->name));
	authstore_col(s, 9, n->created, sizeof(n->created));
	authstore_col(s, 10, n->signature, sizeof(n->signature));
	n->announced = sqlite3_column_int64(s, 11);
	n->usable = sqlite3_column_int(s, 12) != 0;
}

static int
sq_snapshot_get(struct authstore *st, const char *id,
		   struct authstore_snapshot *n, bool want_manifest,
		   struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_SNAP_GET, e);
	char *m;
	int rc;

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, id);
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		authstore_done(s);
		return 0;
	}
	if (rc != SQLITE_ROW)
		return authstore_fail(s, e);
	authstore_snapshot_row(s, n);
	if (want_manifest) {
		n->manifest_len = (size_t)sqlite3_column_bytes(s, 13);
		if ((m = malloc(n->manifest_len + 1)) == NULL) {
			authstore_done(s);
			return err_set(e, "store: out of memory");
		}
		memcpy(m, sqlite3_column_text(s, 13), n->manifest_len);
		m[n->manifest_len] = '\0';
		n->manifest = m;
	}
	authstore_done(s);
	return 1;
}

static int
sq_snapshot_add(struct authstore *st, const struct authstore_snapshot *n,
		   struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_SNAP_ADD, e);

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, n->id);
	sqlite3_bind_int64(s, 2, n->service);
	authstore_bind_text(s, 3, n->owner);
	sqlite3_bind_int64(s, 4, n->version);
	authstore_bind_text(s, 5, n->base);
	authstore_bind_text(s, 6, n->kernel);
	authstore_bind_text(s, 7, n->name);
	authstore_bind_text(s, 8, n->created);
	sqlite3_bind_text(s, 9, n->manifest, (int)n->manifest_len,
			  SQLITE_STATIC);
	authstore_bind_text(s, 10, n->signature);
	sqlite3_bind_int64(s, 11, n->announced);
	if (authstore_run(s, e) == -1)
		return -1;
	if ((s = authstore_stmt(st, S_SERVICE_NEWEST, e)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, n->service);
	authstore_bind_text(s, 2, n->id);
	sqlite3_bind_int64(s, 3, n->version);
	return authstore_run(s, e);
}

static int
sq_snapshot_list(struct authstore *st, const char *host, uint16_t port,
		    int (*cb)(void *, const struct authstore_snapshot *),
		    void *arg, struct err *e)
{
	sqlite3_stmt *s;
	struct authstore_snapshot n;
	int rc;

	s = authstore_stmt(st, host ? S_SNAP_LIST_SERVICE : S_SNAP_LIST_ALL, e);
	if (s == NULL)
		return -1;
	if (host) {
		authstore_bind_text(s, 1, host);
		sqlite3_bind_int(s, 2, port);
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		authstore_snapshot_row(s, &n);
		if ((rc = cb(arg, &n)) != 0) {
			authstore_done(s);
			return rc;
		}
	}
	if (rc != SQLITE_DONE)
		return authstore_fail(s, e);
	authstore_done(s);
	return 0;
}

/* ---- commitments ---- */

static void
authstore_commitment_row(sqlite3_stmt *s, struct authstore_commitment *c)
{
	memset(c, 0, sizeof(*c));
	authstore_col(s, 0, c->snapshot, sizeof(c->snapshot));
	authstore_col(s, 1, c->peer, sizeof(c->peer));
	c->service = sqlite3_column_int64(s, 2);
	c->up = sqlite3_column_int(s, 3) != 0;
	c->has_addr = sqlite3_column_type(s, 4) != SQLITE_NULL;
	authstore_col(s, 4, c->addr, sizeof(c->addr));
	c->port = (uint16_t)sqlite3_column_int(s, 5);
	c->created = sqlite3_column_int64(s, 6);
	c->updated = sqlite3_column_int64(s, 7);
	c->up_since = sqlite3_column_int64(s, 8);
	c->version = sqlite3_column_int64(s, 9);
	authstore_col(s, 10, c->peer_addr, sizeof(c->peer_addr));
}

static int
sq_commitment_get(struct authstore *st, const char *snapshot,
		     const char *peer, struct authstore_commitment *c,
		     struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_COMMIT_GET, e);
	int rc;

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, snapshot);
	authstore_bind_text(s, 2, peer);
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		authstore_done(s);
		return 0;
	}
	if (rc != SQLITE_ROW)
		return authstore_fail(s, e);
	authstore_commitment_row(s, c);
	authstore_done(s);
	return 1;
}

static int
sq_commitment_add(struct authstore *st, const struct authstore_commitment *c,
		     struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_COMMIT_ADD, e);

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, c->snapshot);
	authstore_bind_text(s, 2, c->peer);
	sqlite3_bind_int64(s, 3, c->service);
	sqlite3_bind_int(s, 4, c->up);
	if (c->has_addr) {
		authstore_bind_text(s, 5, c->addr);
		sqlite3_bind_int(s, 6, c->port);
	}
	sqlite3_bind_int64(s, 7, c->created);
	sqlite3_bind_int64(s, 8, c->up ? c->up_since : 0);
	return authstore_run(s, e);
}

/* Credit the peer with the seconds since up_since. */
static int
authstore_uptime_add(struct authstore *st, const char *peer, int64_t seconds,
		 struct err *e)
{
	sqlite3_stmt *s;

	if (seconds <= 0)
		return 0;
	if ((s = authstore_stmt(st, S_UPTIME_ADD, e)) == NULL)
		return -1;
	authstore_bind_text(s, 1, peer);
	sqlite3_bind_int64(s, 2, seconds);
	return authstore_run(s, e);
}

static int
sq_commitment_set(struct authstore *st, const char *snapshot,
		     const char *peer, const struct authapi_serving *sv,
		     int64_t now, struct err *e)
{
	struct authstore_commitment c;
	sqlite3_stmt *s;
	int rc;

	if ((rc = sq_commitment_get(st, snapshot, peer, &c, e)) != 1)
		return rc == 0 ? err_set(e, "store: no such commitment") : -1;
	if (c.up && !sv->up &&
	    authstore_uptime_add(st, peer, now - c.up_since, e) == -1)
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
	if ((s = authstore_stmt(st, S_COMMIT_SET, e)) == NULL)
		return -1;
	authstore_bind_text(s, 1, snapshot);
	authstore_bind_text(s, 2, peer);
	sqlite3_bind_int(s, 3, sv->up);
	if (c.has_addr) {
		authstore_bind_text(s, 4, c.addr);
		sqlite3_bind_int(s, 5, c.port);
	}
	sqlite3_bind_int64(s, 6, now);
	sqlite3_bind_int64(s, 7, c.up_since);
	return authstore_run(s, e);
}

static int
sq_commitments_expire(struct authstore *st, int64_t cutoff,
			     struct err *e)
{
	sqlite3_stmt *s;

	if ((s = authstore_stmt(st, S_EXPIRE_UPTIME, e)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, cutoff);
	if (authstore_run(s, e) == -1 ||
	    (s = authstore_stmt(st, S_EXPIRE_DOWN, e)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, cutoff);
	if (authstore_run(s, e) == -1)
		return -1;
	return sqlite3_changes(sqlite3_db_handle(s));
}

static int
sq_peers_forget(struct authstore *st, int64_t cutoff, unsigned max,
		       struct err *e)
{
	sqlite3_stmt *s;

	/* the same batch twice: the same rows, in one transaction */
	if ((s = authstore_stmt(st, S_FORGET_HOLDINGS, e)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, cutoff);
	sqlite3_bind_int(s, 2, (int)max);
	if (authstore_run(s, e) == -1 ||
	    (s = authstore_stmt(st, S_FORGET_PEERS, e)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, cutoff);
	sqlite3_bind_int(s, 2, (int)max);
	if (authstore_run(s, e) == -1)
		return -1;
	return sqlite3_changes(sqlite3_db_handle(s));
}

static int
sq_commitment_delete(struct authstore *st, const char *snapshot,
			const char *peer, int64_t now, struct err *e)
{
	struct authstore_commitment c;
	sqlite3_stmt *s;
	int rc;

	if ((rc = sq_commitment_get(st, snapshot, peer, &c, e)) != 1)
		return rc;
	if (c.up && authstore_uptime_add(st, peer, now - c.up_since, e) == -1)
		return -1;
	if ((s = authstore_stmt(st, S_COMMIT_DELETE, e)) == NULL)
		return -1;
	authstore_bind_text(s, 1, snapshot);
	authstore_bind_text(s, 2, peer);
	if (authstore_run(s, e) == -1)
		return -1;
	return 1;
}

static int
sq_commitment_list(struct authstore *st, int64_t service,
		      int (*cb)(void *, const struct authstore_commitment *),
		      void *arg, struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_COMMIT_LIST, e);
	struct authstore_commitment c;
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, service);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		authstore_commitment_row(s, &c);
		if ((rc = cb(arg, &c)) != 0) {
			authstore_done(s);
			return rc;
		}
	}
	if (rc != SQLITE_DONE)
		return authstore_fail(s, e);
	authstore_done(s);
	return 0;
}

/* ---- reports ---- */

static int
sq_reported(struct authstore *st, int64_t service, const char *peer,
	       struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_REPORTED, e);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, service);
	authstore_bind_text(s, 2, peer);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return authstore_fail(s, e);
	authstore_done(s);
	return rc == SQLITE_ROW;
}

static int
sq_report_add(struct authstore *st, int64_t service, const char *peer,
		 const char *reporter, const char *reason, int64_t now,
		 int64_t *id, struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_REPORT_ADD, e);

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, service);
	authstore_bind_text(s, 2, peer);
	authstore_bind_text(s, 3, reporter);
	authstore_bind_text(s, 4, reason);
	sqlite3_bind_int64(s, 5, now);
	if (authstore_run(s, e) == -1)
		return -1;
	*id = sqlite3_last_insert_rowid(sqlite3_db_handle(s));

	if ((s = authstore_stmt(st, S_UPTIME_ADD_SERVICE, e)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, service);
	authstore_bind_text(s, 2, peer);
	sqlite3_bind_int64(s, 3, now);
	if (authstore_run(s, e) == -1)
		return -1;
	if ((s = authstore_stmt(st, S_COMMIT_DELETE_SERVICE, e)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, service);
	authstore_bind_text(s, 2, peer);
	return authstore_run(s, e);
}

static int
sq_report_list(struct authstore *st, int64_t service,
		  int (*cb)(void *, const struct authstore_report *), void *arg,
		  struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_REPORT_LIST, e);
	struct authstore_report r;
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, service);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		r.id = sqlite3_column_int64(s, 0);
		authstore_col(s, 1, r.peer, sizeof(r.peer));
		authstore_col(s, 2, r.reporter, sizeof(r.reporter));
		r.reason = (const char *)sqlite3_column_text(s, 3);
		r.at = sqlite3_column_int64(s, 4);
		if ((rc = cb(arg, &r)) != 0) {
			authstore_done(s);
			return rc;
		}
	}
	if (rc != SQLITE_DONE)
		return authstore_fail(s, e);
	authstore_done(s);
	return 0;
}

/* ---- bad sources ---- */

static int
sq_bad_source_add(struct authstore *st,
			 const struct authstore_bad_source *b, int64_t *id,
			 bool *created, struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_BAD_ADD, e);
	int rc;

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, b->sha256);
	authstore_bind_text(s, 2, b->peer);
	authstore_bind_text(s, 3, b->reporter);
	sqlite3_bind_int64(s, 4, b->chunk);
	authstore_bind_text(s, 5, b->expected);
	authstore_bind_text(s, 6, b->received);
	sqlite3_bind_int64(s, 7, b->at);
	if (authstore_run(s, e) == -1)
		return -1;
	*created = sqlite3_changes(sqlite3_db_handle(s)) > 0;
	if ((s = authstore_stmt(st, S_BAD_GET, e)) == NULL)
		return -1;
	authstore_bind_text(s, 1, b->sha256);
	authstore_bind_text(s, 2, b->peer);
	authstore_bind_text(s, 3, b->reporter);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW)
		return rc == SQLITE_DONE ? (authstore_done(s), 0)
					 : authstore_fail(s, e);
	*id = sqlite3_column_int64(s, 0);
	authstore_done(s);
	return 0;
}

static int
sq_peers_at(struct authstore *st, const char *addr,
		   int (*cb)(void *, const char *), void *arg, struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_PEERS_AT, e);
	char key[AUTHSTORE_HEX];
	int rc;

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, addr);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		authstore_col(s, 0, key, sizeof(key));
		if ((rc = cb(arg, key)) != 0) {
			authstore_done(s);
			return rc;
		}
	}
	if (rc != SQLITE_DONE)
		return authstore_fail(s, e);
	authstore_done(s);
	return 0;
}

/* ---- holdings and sources ---- */

static int
sq_holding_put(struct authstore *st, const char *sha256, const char *peer,
		  int64_t now, bool *created, struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_HOLD_GET, e);
	int rc;

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, sha256);
	authstore_bind_text(s, 2, peer);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return authstore_fail(s, e);
	authstore_done(s);
	*created = rc == SQLITE_DONE;
	if ((s = authstore_stmt(st, S_HOLD_PUT, e)) == NULL)
		return -1;
	authstore_bind_text(s, 1, sha256);
	authstore_bind_text(s, 2, peer);
	sqlite3_bind_int64(s, 3, now);
	return authstore_run(s, e);
}

static int
sq_holding_delete(struct authstore *st, const char *sha256, const char *peer,
		     struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_HOLD_DELETE, e);

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, sha256);
	authstore_bind_text(s, 2, peer);
	if (authstore_run(s, e) == -1)
		return -1;
	return sqlite3_changes(sqlite3_db_handle(s)) > 0;
}

static int
sq_sources(struct authstore *st, const char *sha256, int64_t service,
	      unsigned max, int64_t cutoff,
	      int (*cb)(void *, const char *, const char *, enum authstore_role),
	      void *arg, struct err *e)
{
	char peer[AUTHSTORE_HEX], addr[AUTHAPI_ADDR_MAX + 1];
	sqlite3_stmt *s;
	int rc;

	s = authstore_stmt(st, service > 0 ? S_SOURCES_SNAP : S_SOURCES_OBJ, e);
	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, sha256);
	if (service > 0)
		sqlite3_bind_int64(s, 2, service);
	sqlite3_bind_int(s, 3, (int)max);
	sqlite3_bind_int64(s, 4, cutoff);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		authstore_col(s, 0, peer, sizeof(peer));
		authstore_col(s, 1, addr, sizeof(addr));
		if ((rc = cb(arg, peer, addr,
			     (enum authstore_role)sqlite3_column_int(s, 2))) != 0) {
			authstore_done(s);
			return rc;
		}
	}
	if (rc != SQLITE_DONE)
		return authstore_fail(s, e);
	authstore_done(s);
	return 0;
}

/* ---- lookup ---- */

static int
sq_lookup(struct authstore *st, const char *host, uint16_t port,
		 int (*cb)(void *, const char *, const char *, uint16_t),
		 void *arg, struct err *e)
{
	char peer[AUTHSTORE_HEX], addr[AUTHAPI_HOST_MAX + 1];
	sqlite3_stmt *s = authstore_stmt(st, S_LOOKUP, e);
	int rc, found = 0;

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, host);
	sqlite3_bind_int(s, 2, port);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		found = 1;
		if (sqlite3_column_type(s, 0) == SQLITE_NULL)
			continue;
		authstore_col(s, 0, peer, sizeof(peer));
		authstore_col(s, 1, addr, sizeof(addr));
		if ((rc = cb(arg, peer, addr,
			     (uint16_t)sqlite3_column_int(s, 2))) != 0) {
			authstore_done(s);
			return rc;
		}
	}
	if (rc != SQLITE_DONE)
		return authstore_fail(s, e);
	authstore_done(s);
	return found;
}

/* ---- counts ---- */

static int64_t
sq_last_seen(struct authstore *st, struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_LAST_SEEN, e);
	int64_t v;

	if (s == NULL)
		return -1;
	if (sqlite3_step(s) != SQLITE_ROW)
		return authstore_fail(s, e);
	v = sqlite3_column_int64(s, 0);
	authstore_done(s);
	return v;
}

/* ---- owner keys ---- */

static void
authstore_key_row(sqlite3_stmt *s, struct authstore_key_change *k)
{
	memset(k, 0, sizeof(*k));
	authstore_col(s, 0, k->key, sizeof(k->key));
	authstore_col(s, 1, k->kind, sizeof(k->kind));
	authstore_col(s, 2, k->successor, sizeof(k->successor));
	authstore_col(s, 3, k->record, sizeof(k->record));
	authstore_col(s, 4, k->signature, sizeof(k->signature));
	authstore_col(s, 5, k->new_signature, sizeof(k->new_signature));
	k->at = sqlite3_column_int64(s, 6);
	authstore_col(s, 7, k->confirm_record, sizeof(k->confirm_record));
	authstore_col(s, 8, k->confirm_signature,
		      sizeof(k->confirm_signature));
	k->confirmed_at = sqlite3_column_int64(s, 9);
}

/* The one row of statement id bound with key, into k: 1, 0 or -1. */
static int
authstore_key_one(struct authstore *st, enum authstore_stmt_id id,
		  const char *key, struct authstore_key_change *k,
		  struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, id, e);
	int rc;

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, key);
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		authstore_done(s);
		return 0;
	}
	if (rc != SQLITE_ROW)
		return authstore_fail(s, e);
	authstore_key_row(s, k);
	authstore_done(s);
	return 1;
}

static int
sq_key_change_get(struct authstore *st, const char *key,
		  struct authstore_key_change *k, struct err *e)
{
	return authstore_key_one(st, S_KEY_GET, key, k, e);
}

static int
sq_key_change_to(struct authstore *st, const char *key,
		 struct authstore_key_change *k, struct err *e)
{
	return authstore_key_one(st, S_KEY_TO, key, k, e);
}

static int
sq_key_change_add(struct authstore *st, const struct authstore_key_change *k,
		  struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_KEY_ADD, e);

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, k->key);
	authstore_bind_text(s, 2, k->kind);
	authstore_bind_text(s, 3, k->successor);
	authstore_bind_text(s, 4, k->record);
	authstore_bind_text(s, 5, k->signature);
	authstore_bind_text(s, 6, k->new_signature);
	sqlite3_bind_int64(s, 7, k->at);
	return authstore_run(s, e);
}

static int
sq_key_confirm(struct authstore *st, const char *key, const char *successor,
	       const char *record, const char *signature, int64_t at,
	       struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_KEY_CONFIRM, e);

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, key);
	authstore_bind_text(s, 2, successor);
	authstore_bind_text(s, 3, record);
	authstore_bind_text(s, 4, signature);
	sqlite3_bind_int64(s, 5, at);
	if (authstore_run(s, e) == -1)
		return -1;
	return sqlite3_changes(sqlite3_db_handle(s)) > 0;
}

static int
sq_services_transfer(struct authstore *st, const char *from, const char *to,
		     struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_SERVICES_TRANSFER, e);

	if (s == NULL)
		return -1;
	authstore_bind_text(s, 1, from);
	authstore_bind_text(s, 2, to);
	if (authstore_run(s, e) == -1)
		return -1;
	return sqlite3_changes(sqlite3_db_handle(s));
}

static int
sq_counts(struct authstore *st, struct authstore_counts *c, struct err *e)
{
	sqlite3_stmt *s = authstore_stmt(st, S_COUNTS, e);

	if (s == NULL)
		return -1;
	if (sqlite3_step(s) != SQLITE_ROW)
		return authstore_fail(s, e);
	c->peers = sqlite3_column_int64(s, 0);
	c->trusted = sqlite3_column_int64(s, 1);
	c->revoked = sqlite3_column_int64(s, 2);
	c->services = sqlite3_column_int64(s, 3);
	c->snapshots = sqlite3_column_int64(s, 4);
	c->commitments = sqlite3_column_int64(s, 5);
	c->commitments_up = sqlite3_column_int64(s, 6);
	c->holdings = sqlite3_column_int64(s, 7);
	c->reports = sqlite3_column_int64(s, 8);
	c->keys_rotated = sqlite3_column_int64(s, 9);
	c->keys_revoked = sqlite3_column_int64(s, 10);
	c->keys_frozen = sqlite3_column_int64(s, 11);
	authstore_done(s);
	return 0;
}

const struct authstore_ops authstore_sqlite_ops = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.sig_add = sq_sig_add,
	.sig_prune = sq_sig_prune,
	.sig_load = sq_sig_load,
	.peer_get = sq_peer_get,
	.peer_put = sq_peer_put,
	.peer_contribution = sq_peer_contribution,
	.trusted_get = sq_trusted_get,
	.trusted_add = sq_trusted_add,
	.trusted_revoke = sq_trusted_revoke,
	.trusted_list = sq_trusted_list,
	.service_get = sq_service_get,
	.service_add = sq_service_add,
	.snapshot_get = sq_snapshot_get,
	.snapshot_add = sq_snapshot_add,
	.snapshot_list = sq_snapshot_list,
	.commitment_get = sq_commitment_get,
	.commitment_add = sq_commitment_add,
	.commitment_set = sq_commitment_set,
	.commitment_delete = sq_commitment_delete,
	.commitments_expire = sq_commitments_expire,
	.peers_forget = sq_peers_forget,
	.commitment_list = sq_commitment_list,
	.reported = sq_reported,
	.report_add = sq_report_add,
	.report_list = sq_report_list,
	.bad_source_add = sq_bad_source_add,
	.peers_at = sq_peers_at,
	.holding_put = sq_holding_put,
	.holding_delete = sq_holding_delete,
	.sources = sq_sources,
	.lookup = sq_lookup,
	.key_change_get = sq_key_change_get,
	.key_change_to = sq_key_change_to,
	.key_change_add = sq_key_change_add,
	.key_confirm = sq_key_confirm,
	.services_transfer = sq_services_transfer,
	.counts = sq_counts,
	.last_seen = sq_last_seen,
	.where = sq_where,
};
