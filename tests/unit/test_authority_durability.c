/*
 * test_authority_durability.c - "no acknowledged record lost".
 *
 * bin/fed-authority runs as a child.  A writer thread makes changes as fast
 * as it can (register a new peer, commit it to a snapshot, report it up at
 * a port of its own) and records each one the authority acknowledged with a
 * 2xx.  The test waits until the writer has a random number of
 * acknowledgements, then kill -9s the server mid-stream, restarts it on the
 * same database and checks that every acknowledged change is there.  Three
 * rounds, so restarts of a database that was itself recovered are covered.
 *
 * Also: a signed request accepted before a crash cannot be replayed after
 * the restart (the signature was stored with the change).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/http.h"
#include "lib/authfix.h"
#include "lib/testutil.h"

#define WRITES_MAX 4000

enum step { STEP_REGISTERED = 1, STEP_COMMITTED = 2, STEP_UP = 3 };

struct writer {
	struct authfix *f;
	char snapshot[65];
	struct tkey keys[WRITES_MAX];
	int steps[WRITES_MAX];		/* acknowledged steps per key */
	int first, n;			/* keys of this round: [first, n) */
	atomic_int acks;
	int target;			/* acks to wait for before the kill */
	atomic_bool stop;
};

static struct authfix F;

/* tu_poll condition: the writer has had its target of acknowledgements. */
static bool
enough_acks(void *arg)
{
	struct writer *w = arg;

	return atomic_load(&w->acks) >= w->target;
}

static void
setup(void)
{
	memset(&F, 0, sizeof(F));
	authfix_spawn(&F, NULL);
}

static void
teardown(void)
{
	authfix_stop(&F);
}

TestSuite(durability, .init = setup, .fini = teardown, .timeout = 120);

/* One request, without asserting (the server dies under us): the status,
 * 0 on a transport error. */
static long
try_call(struct authfix *f, const char *method, const char *path,
	 json_t *body, const struct tkey *k)
{
	long status = 0;
	struct err e;
	int rc;

	rc = authority_call(f->url, method, path, body, k->seed, &status, NULL,
			    &e);
	json_decref(body);
	return rc == 0 ? status : 0;
}

static void *
writer_run(void *arg)
{
	struct writer *w = arg;
	char path[128], addr[32];
	long st;
	int i;

	for (i = w->first; i < WRITES_MAX && !atomic_load(&w->stop); i++) {
		struct tkey *k = &w->keys[i];
		struct err e;

		if (ed25519_keygen(k->seed, k->pub, &e) == -1)
			break;
		hex_encode(k->pub, ED25519_PUB_LEN, k->hex);
		w->n = i + 1;
		snprintf(addr, sizeof(addr), "10.%d.%d.1:7000", i / 250 + 1,
			 i % 250 + 1);
		st = try_call(w->f, "POST", "/v1/peers",
			      json_pack("{s:s}", "addr", addr), k);
		if (st != 201)
			break;
		w->steps[i] = STEP_REGISTERED;
		atomic_fetch_add(&w->acks, 1);

		st = try_call(w->f, "POST", "/v1/commitments",
			      json_pack("{s:s}", "snapshot", w->snapshot), k);
		if (st != 201)
			break;
		w->steps[i] = STEP_COMMITTED;
		atomic_fetch_add(&w->acks, 1);

		snprintf(path, sizeof(path), "/v1/commitments/%s",
			 w->snapshot);
		st = try_call(w->f, "PUT", path,
			      json_pack("{s:b, s:s, s:i}", "up", 1, "addr",
					"192.0.2.1", "port", 20000 + i), k);
		if (st != 200)
			break;
		w->steps[i] = STEP_UP;
		atomic_fetch_add(&w->acks, 1);
	}
	return NULL;
}

/* Every acknowledged step of keys [0, w->n) is in the store. */
static void
verify(struct writer *w)
{
	json_t *view, *p;
	char path[128];
	int i, present = 0, *seen;
	size_t j;

	seen = calloc(WRITES_MAX, sizeof(*seen));
	cr_assert_eq(af_call(w->f, "GET",
			     "/v1/services/durable.example.org:80/peers", NULL,
			     NULL, &view), 200);
	for (i = 0; i < w->n; i++) {
		if (w->steps[i] == 0)
			continue;
		snprintf(path, sizeof(path), "/v1/peers/%s", w->keys[i].hex);
		cr_assert_eq(af_call(w->f, "GET", path, NULL, NULL, NULL), 200,
			     "peer %d acknowledged but lost", i);
		present++;
	}
	json_array_foreach(json_object_get(view, "peers"), j, p) {
		const char *peer = json_string_value(json_object_get(p,
								     "peer"));

		for (i = 0; i < w->n; i++)
			if (strcmp(peer, w->keys[i].hex) == 0) {
				seen[i] = json_is_true(json_object_get(p, "up"))
				    ? STEP_UP : STEP_COMMITTED;
				if (seen[i] == STEP_UP)
					cr_assert_eq(json_integer_value(
					    json_object_get(p, "port")),
					    20000 + i);
			}
	}
	for (i = 0; i < w->n; i++)
		cr_assert_geq(seen[i] ? seen[i] : (w->steps[i] ? 1 : 0),
			      w->steps[i],
			      "key %d: step %d acknowledged, %d found", i,
			      w->steps[i], seen[i]);
	json_decref(view);
	free(seen);
	cr_log_info("verified %d acknowledged peers", present);
}

Test(durability, kill9_loses_no_acknowledged_change)
{
	struct writer *w = calloc(1, sizeof(*w));
	struct tkey owner;
	char base[65], kernel[65];
	int round;

	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	w->f = &F;
	tkey_new(&owner);
	af_register(&F, &owner, "10.0.0.1:7000");
	af_trust(&F, "base", base);
	af_trust(&F, "kernel", kernel);
	cr_assert_eq(af_announce(&F, &owner, &owner, "durable.example.org",
				 80, 1, base, kernel, w->snapshot, NULL), 201);

	for (round = 0; round < 3; round++) {
		pthread_t t;
		int target = 30 + rand() % 300;

		atomic_store(&w->acks, 0);
		atomic_store(&w->stop, false);
		w->first = w->n;
		cr_assert_eq(pthread_create(&t, NULL, writer_run, w), 0);
		w->target = target;
		cr_assert(tu_poll(60000, enough_acks, w),
			  "writer too slow: %d acks", atomic_load(&w->acks));
		authfix_kill9(&F);
		atomic_store(&w->stop, true);
		pthread_join(t, NULL);
		cr_log_info("round %d: killed after %d acknowledgements",
			    round, atomic_load(&w->acks));

		authfix_spawn(&F, NULL);
		verify(w);
	}
	free(w);
}

Test(durability, replay_refused_after_restart)
{
	const char *body = "{\"addr\":\"10.0.0.1:7000\"}";
	time_t now = time(NULL);
	struct tkey k;
	char *text;
	long st;

	tkey_new(&k);
	st = af_signed_raw(&F, &k, now, "POST", "/v1/peers", body, &text);
	cr_assert_eq(st, 201, "%s", text);
	free(text);
	authfix_kill9(&F);
	authfix_spawn(&F, NULL);
	st = af_signed_raw(&F, &k, now, "POST", "/v1/peers", body, &text);
	cr_assert_eq(st, 409, "%s", text);
	cr_assert(strstr(text, "replayed") != NULL, "%s", text);
	free(text);
}

Test(durability, clean_shutdown_and_restart)
{
	struct tkey k;
	char path[128];

	tkey_new(&k);
	af_register(&F, &k, "10.0.0.5:7000");
	/* SIGTERM, then start again on the same database */
	kill(F.pid, SIGTERM);
	{
		int status;

		cr_assert_eq(waitpid(F.pid, &status, 0), F.pid);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			  "fed-authority did not exit cleanly on SIGTERM");
	}
	F.pid = 0;
	authfix_spawn(&F, NULL);
	snprintf(path, sizeof(path), "/v1/peers/%s", k.hex);
	cr_assert_eq(af_call(&F, "GET", path, NULL, NULL, NULL), 200);
}
