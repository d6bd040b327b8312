/*
 * test_authority_store.c - the SQLite store under the interface: schema
 * versioning (migrations run once, a newer database is refused), WAL and
 * synchronous=FULL in force, transactions that roll back leave nothing,
 * and connections from many threads.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authority/authstore.h"
#include "lib/testutil.h"

static char *dir, *db;

static void
setup(void)
{
	dir = tu_tmpdir();
	db = tu_path(dir, "store.db");
}

static void
teardown(void)
{
	tu_rmtree(dir);
	free(dir);
	free(db);
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 30);

static int
pragma_int(const char *path, const char *pragma)
{
	sqlite3 *h;
	sqlite3_stmt *s;
	char sql[64];
	int v;

	cr_assert_eq(sqlite3_open(path, &h), SQLITE_OK);
	snprintf(sql, sizeof(sql), "PRAGMA %s", pragma);
	cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &s, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(h);
	return v;
}

static const char *const K1 =
	"1111111111111111111111111111111111111111111111111111111111111111";

Test(store, migrations_are_versioned)
{
	struct authstore *st;
	struct err e;
	bool created;

	st = authstore_open(db, &e);
	cr_assert_not_null(st, "%s", e.msg);
	cr_assert_eq(authstore_begin(st, &e), 0, "%s", e.msg);
	cr_assert_eq(authstore_peer_put(st, K1, "a.example.org:1", 10, &created,
				    &e), 0, "%s", e.msg);
	cr_assert_eq(authstore_commit(st, &e), 0, "%s", e.msg);
	authstore_close(st);
	cr_assert_eq(pragma_int(db, "user_version"), 5);

	/* A database of version 1 (before the sweep's indexes, the bad
	 * sources and the key changes) is taken to 5, its data kept. */
	{
		sqlite3 *h;

		cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
		cr_assert_eq(sqlite3_exec(h, "DROP INDEX commitments_up_updated;"
					  "DROP INDEX peers_updated;"
					  "DROP INDEX peers_addr;"
					  "DROP TABLE bad_sources;"
					  "DROP TABLE key_changes;"
					  "PRAGMA user_version = 1", NULL, NULL,
					  NULL), SQLITE_OK);
		sqlite3_close(h);
	}
	st = authstore_open(db, &e);
	cr_assert_not_null(st, "%s", e.msg);
	authstore_close(st);
	cr_assert_eq(pragma_int(db, "user_version"), 5);
	{
		sqlite3 *h;
		sqlite3_stmt *q;

		cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
		cr_assert_eq(sqlite3_prepare_v2(h, "SELECT count(*) FROM "
						"sqlite_master WHERE name IN "
						"('commitments_up_updated', "
						"'peers_updated')", -1, &q,
						NULL), SQLITE_OK);
		cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
		cr_assert_eq(sqlite3_column_int(q, 0), 2, "the indexes are "
			     "not both there after the migrations");
		sqlite3_finalize(q);
		sqlite3_close(h);
	}
	{
		struct authstore_peer p;

		st = authstore_open(db, &e);
		cr_assert_not_null(st, "%s", e.msg);
		cr_assert_eq(authstore_peer_get(st, K1, &p, &e), 1,
			     "the data was not kept");
		authstore_close(st);
	}

	/* Opening again migrates nothing and keeps the data. */
	st = authstore_open(db, &e);
	cr_assert_not_null(st, "%s", e.msg);
	{
		struct authstore_peer p;

		cr_assert_eq(authstore_peer_get(st, K1, &p, &e), 1);
		cr_assert_str_eq(p.addr, "a.example.org:1");
	}
	authstore_close(st);

	/* A database from a newer program is refused, untouched. */
	{
		sqlite3 *h;

		cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
		cr_assert_eq(sqlite3_exec(h, "PRAGMA user_version = 99", NULL,
					  NULL, NULL), SQLITE_OK);
		sqlite3_close(h);
	}
	cr_assert_null(authstore_open(db, &e));
	cr_assert(strstr(e.msg, "newer") != NULL, "%s", e.msg);
	cr_assert_eq(pragma_int(db, "user_version"), 99);
}

Test(store, wal_mode)
{
	struct authstore *st;
	struct err e;

	st = authstore_open(db, &e);
	cr_assert_not_null(st, "%s", e.msg);
	authstore_close(st);
	{
		sqlite3 *h;
		sqlite3_stmt *s;

		cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
		cr_assert_eq(sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1,
						&s, NULL), SQLITE_OK);
		cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
		cr_assert_str_eq((const char *)sqlite3_column_text(s, 0),
				 "wal");
		sqlite3_finalize(s);
		sqlite3_close(h);
	}
}

Test(store, rollback_leaves_nothing)
{
	struct authstore_peer p;
	struct authstore *st;
	struct err e;
	bool created;

	st = authstore_open(db, &e);
	cr_assert_not_null(st, "%s", e.msg);
	cr_assert_eq(authstore_begin(st, &e), 0);
	cr_assert_eq(authstore_peer_put(st, K1, "a.example.org:1", 10, &created,
				    &e), 0);
	cr_assert(created);
	authstore_rollback(st);
	cr_assert_eq(authstore_peer_get(st, K1, &p, &e), 0);
	/* and the writer lock was released */
	cr_assert_eq(authstore_begin(st, &e), 0);
	authstore_rollback(st);
	authstore_close(st);
}

struct reader {
	struct authstore *st;
	int found;
};

static void *
reader_run(void *arg)
{
	struct reader *r = arg;
	struct authstore_peer p;
	struct err e;
	int i;

	for (i = 0; i < 200; i++)
		if (authstore_peer_get(r->st, K1, &p, &e) == 1)
			r->found++;
	return NULL;
}

Test(store, many_threads)
{
	struct reader r[4];
	pthread_t t[4];
	struct authstore *st;
	struct err e;
	bool created;
	int i;

	st = authstore_open(db, &e);
	cr_assert_not_null(st, "%s", e.msg);
	cr_assert_eq(authstore_begin(st, &e), 0);
	cr_assert_eq(authstore_peer_put(st, K1, "a.example.org:1", 10, &created,
				    &e), 0);
	cr_assert_eq(authstore_commit(st, &e), 0);
	for (i = 0; i < 4; i++) {
		r[i].st = st;
		r[i].found = 0;
		cr_assert_eq(pthread_create(&t[i], NULL, reader_run, &r[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(r[i].found, 200);
	}
	authstore_close(st);
}
