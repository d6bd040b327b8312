/*
 * pgfix.h - fresh PostgreSQL databases for tests that run the authority on
 * PostgreSQL.
 *
 * tests/run.sh starts a throwaway server (tests/lib/pg.sh) and runs the
 * authority's tests again with FED_TEST_STORE=postgres and FED_TEST_PG set
 * to a URI of it; each test then gets a database of its own, dropped when
 * it is done.
 */
#ifndef FED_TEST_PGFIX_H
#define FED_TEST_PGFIX_H

#include <stdbool.h>

/* Do the tests run on PostgreSQL (FED_TEST_STORE=postgres)? */
bool pgfix_wanted(void);

/* The server's URI (FED_TEST_PG); asserts it is set. */
const char *pgfix_server(void);

/* A new empty database on the server: its URI, malloc'd. */
char *pgfix_db_new(void);

/* Drop the database at uri (made by pgfix_db_new), whoever is on it. */
void pgfix_db_drop(const char *uri);

/* Run sql on the database at uri; asserts it succeeds. */
void pgfix_exec(const char *uri, const char *sql);

#endif
