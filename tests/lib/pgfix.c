/*
 * pgfix.c - fresh PostgreSQL databases for tests (see pgfix.h).
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "pgfix.h"

bool
pgfix_wanted(void)
{
	const char *s = getenv("FED_TEST_STORE");

	return s != NULL && strcmp(s, "postgres") == 0;
}

const char *
pgfix_server(void)
{
	const char *uri = getenv("FED_TEST_PG");

	cr_assert(uri != NULL && *uri, "FED_TEST_STORE=postgres needs "
		  "FED_TEST_PG, a URI of a server to make databases on");
	return uri;
}

void
pgfix_exec(const char *uri, const char *sql)
{
	PGconn *pg = PQconnectdb(uri);
	PGresult *r;

	cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s: %s", uri,
		     PQerrorMessage(pg));
	r = PQexec(pg, sql);
	cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK ||
		  PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql,
		  PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(pg);
}

/* The name of the database a URI names: after its last '/'. */
static const char *
pgfix_name(const char *uri)
{
	const char *slash = strrchr(uri, '/');

	cr_assert_not_null(slash, "no database in %s", uri);
	return slash + 1;
}

char *
pgfix_db_new(void)
{
	static atomic_uint serial;
	const char *server = pgfix_server();
	char sql[128], *uri;
	int n;

	n = snprintf(sql, sizeof(sql), "CREATE DATABASE fedt_%ld_%u_%u",
		     (long)getpid(), atomic_fetch_add(&serial, 1),
		     (unsigned)random() % 100000);
	cr_assert(n > 0 && (size_t)n < sizeof(sql));
	pgfix_exec(server, sql);
	n = (int)(pgfix_name(server) - server);
	cr_assert(asprintf(&uri, "%.*s%s", n, server, sql + 16) > 0);
	return uri;
}

void
pgfix_db_drop(const char *uri)
{
	char sql[160];

	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)",
		 pgfix_name(uri));
	pgfix_exec(pgfix_server(), sql);
}
