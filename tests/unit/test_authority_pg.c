/*
 * test_authority_pg.c - what the PostgreSQL store (authstore_pg.c) adds to
 * the authority, against a real server: tests/run.sh runs this file only
 * with FED_TEST_STORE=postgres and FED_TEST_PG (a server it started).
 *
 * The schema is versioned and a newer one refused; two authorities opening
 * one new database at once make its schema once; two authorities on one
 * database agree at once (a commitment made through one is in the other's
 * lookups, though it had cached an answer; a signature used on one is a
 * replay on the other); and when the database goes away, writes answer 503
 * quickly, cached lookups are still answered, and /healthz says it cannot
 * write.  (Failover to a standby: tests/e2e/authority_ha.sh.)
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "authority/authstore.h"
#include "common/log.h"
#include "lib/authfix.h"
#include "lib/pgfix.h"
#include "lib/testutil.h"

static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* The single value sql selects on the database at uri. */
static long
pg_value(const char *uri, const char *sql)
{
	PGconn *pg = PQconnectdb(uri);
	PGresult *r;
	long v;

	cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s", PQerrorMessage(pg));
	r = PQexec(pg, sql);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql,
		     PQresultErrorMessage(r));
	v = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(pg);
	return v;
}

static void
setup(void)
{
	cr_assert(pgfix_wanted(), "run with FED_TEST_STORE=postgres "
		  "(tests/run.sh does)");
	log_init("test-authority-pg", false);
}

TestSuite(authority_pg, .init = setup, .timeout = 60);

Test(authority_pg, a_database_of_a_newer_schema_is_refused)
{
	char *db = pgfix_db_new();
	struct authstore *st;
	struct err e;

	st = authstore_open(db, &e);
	cr_assert_not_null(st, "%s", e.msg);
	cr_assert_str_eq(authstore_engine(st), "postgresql");
	authstore_close(st);
	cr_assert_eq(pg_value(db, "SELECT version FROM fed_schema"), 2);

	pgfix_exec(db, "UPDATE fed_schema SET version = 99");
	cr_assert_null(authstore_open(db, &e));
	cr_assert(strstr(e.msg, "newer than this program") != NULL, "%s",
		  e.msg);
	pgfix_db_drop(db);
	free(db);
}

Test(authority_pg, a_database_of_schema_1_gets_the_key_changes)
{
	char *db = pgfix_db_new();
	struct authstore *st;
	struct err e;

	st = authstore_open(db, &e);
	cr_assert_not_null(st, "%s", e.msg);
	authstore_close(st);
	pgfix_exec(db, "DROP TABLE key_changes; UPDATE fed_schema SET version = 1");
	st = authstore_open(db, &e);
	cr_assert_not_null(st, "%s", e.msg);
	authstore_close(st);
	cr_assert_eq(pg_value(db, "SELECT version FROM fed_schema"), 2);
	cr_assert_eq(pg_value(db, "SELECT count(*) FROM key_changes"), 0);
	pgfix_db_drop(db);
	free(db);
}

static void *
open_close(void *db)
{
	struct authstore *st;
	struct err e;

	st = authstore_open(db, &e);
	if (st == NULL)
		return strdup(e.msg);
	authstore_close(st);
	return NULL;
}

Test(authority_pg, two_authorities_starting_at_once_make_the_schema_once)
{
	char *db = pgfix_db_new();
	pthread_t t[4];
	char *msg;
	int i;

	for (i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, open_close, db), 0);
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], (void **)&msg);
		cr_assert_null(msg, "open %d: %s", i, msg);
	}
	cr_assert_eq(pg_value(db, "SELECT count(*) FROM fed_schema"), 1);
	cr_assert_eq(pg_value(db, "SELECT count(*) FROM pg_tables WHERE "
			      "tablename = 'commitments'"), 1);
	pgfix_db_drop(db);
	free(db);
}

/* A second authority on f's database, with f's admin key. */
static void
second(struct authfix *g, const struct authfix *f)
{
	struct authority_config c;
	struct err e;

	memset(g, 0, sizeof(*g));
	authority_config_defaults(&c);
	c.has_admin = true;
	memcpy(c.admin, f->admin.pub, ED25519_PUB_LEN);
	c.listen = "127.0.0.1:0";
	c.db_path = f->db;
	g->a = authority_start(&c, &e);
	cr_assert_not_null(g->a, "second authority: %s", e.msg);
	g->port = authority_port(g->a);
	g->admin = f->admin;
	snprintf(g->url, sizeof(g->url), "http://127.0.0.1:%u", g->port);
}

Test(authority_pg, a_commitment_through_one_is_in_the_others_lookups_at_once)
{
	struct authfix a, b;
	struct af_world w;
	json_t *reply;
	double t0, waited;
	bool seen = false;

	authfix_start(&a, NULL);
	second(&b, &a);
	af_world_make(&a, &w, 1);
	/* b answers, and caches, a lookup with nobody in it */
	cr_assert_eq(af_lookup(&b, "www.example.org", 80, &reply), 200);
	cr_assert_eq(json_array_size(json_object_get(reply, "peers")), 0);
	json_decref(reply);

	af_commit_up(&a, &w.p1, w.id, "192.0.2.1", 40001);
	for (t0 = now_s(); !seen && now_s() - t0 < 2.0; ) {
		cr_assert_eq(af_lookup(&b, "www.example.org", 80, &reply), 200);
		seen = af_lookup_has(reply, w.p1.hex);
		json_decref(reply);
	}
	waited = now_s() - t0;
	cr_assert(seen, "b still answers its cached lookup 2 s after the "
		  "commitment through a");
	cr_log_info("the commitment through a was in b's lookups after "
		    "%.1f ms", waited * 1000);
	authority_stop(b.a);
	authfix_stop(&a);
}

Test(authority_pg, a_signature_used_on_one_authority_is_a_replay_on_the_other)
{
	struct authfix a, b;
	struct tkey k;
	struct sigreq sr;
	struct err e;
	const char *body = "{\"addr\":\"10.0.0.9:7000\"}";
	char *text;
	long st;

	authfix_start(&a, NULL);
	second(&b, &a);
	tkey_new(&k);
	cr_assert_eq(sigreq_sign(k.seed, "POST", "/v1/peers", body,
				 strlen(body), time(NULL), &sr, &e), 0, "%s",
		     e.msg);
	st = af_send_signed(&a, &sr, "POST", "/v1/peers", body, &text);
	cr_assert_eq(st, 201, "register through a: %ld %s", st, text);
	free(text);
	st = af_send_signed(&b, &sr, "POST", "/v1/peers", body, &text);
	cr_assert_eq(st, 409, "the same request through b: %ld %s", st, text);
	cr_assert(strstr(text, "replayed") != NULL, "%s", text);
	free(text);
	authority_stop(b.a);
	authfix_stop(&a);
}

Test(authority_pg, with_the_database_gone_writes_are_503_fast_and_cached_reads_answer)
{
	struct authfix f;
	struct af_world w;
	struct tkey k;
	json_t *reply;
	char *text, sql[200];
	double t0;
	long st;

	authfix_start(&f, NULL);
	af_world_make(&f, &w, 1);
	af_commit_up(&f, &w.p1, w.id, "192.0.2.1", 40001);
	/* the commit's own NOTIFY comes back through the listener and makes
	 * the cache stale once more: let it come before the lookup is
	 * cached (a loaded machine delivered it after, and the cached answer
	 * this test reads below was gone) */
	{
		uint64_t g = atomic_load(&f.a->generation);

		for (t0 = now_s(); atomic_load(&f.a->generation) == g &&
		     now_s() - t0 < 1.0; )
			usleep(10000);
	}
	cr_assert_eq(af_lookup(&f, "www.example.org", 80, &reply), 200);
	json_decref(reply);

	/* every session on it ends, and it cannot be connected to again */
	snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)",
		 strrchr(f.db, '/') + 1);
	pgfix_exec(pgfix_server(), sql);

	tkey_new(&k);
	t0 = now_s();
	st = af_call(&f, "POST", "/v1/peers",
		     json_pack("{s:s}", "addr", "10.0.0.9:7000"), &k, &reply);
	cr_assert_eq(st, 503, "a write with no database: %ld %s", st,
		     af_error(reply));
	cr_assert(strstr(af_error(reply), "retry later") != NULL, "%s",
		  af_error(reply));
	json_decref(reply);
	cr_assert_lt(now_s() - t0, 5.0, "the write took %.1f s",
		     now_s() - t0);

	cr_assert_eq(af_lookup(&f, "www.example.org", 80, &reply), 200,
		     "the cached lookup is still answered");
	cr_assert(af_lookup_has(reply, w.p1.hex));
	json_decref(reply);

	/* /healthz: alive, but it cannot write (asked at most 1 s ago) */
	for (t0 = now_s(); now_s() - t0 < 3.0; ) {
		st = af_raw(&f, "GET", "/healthz", NULL, 0, NULL, &text);
		cr_assert_eq(st, 200);
		if (strstr(text, "\"writable\":false") != NULL)
			break;
		free(text);
		text = NULL;
	}
	cr_assert_not_null(text, "/healthz still says writable 3 s after "
			   "the database went away");
	free(text);
	authfix_stop(&f);	/* its drop: IF EXISTS */
}
