/*
 * authority_write.c - commitments written per second, for bench/authority.sh.
 *
 *   authority_write URL SNAPSHOT PEERS THREADS
 *
 * Makes PEERS peer keys, registers each (POST /v1/peers), then commits
 * every one to SNAPSHOT (POST /v1/commitments, up, with an address) from
 * THREADS threads at once, and prints the commitments acknowledged per
 * second of that second phase.  Each is a real signed request: an Ed25519
 * signature here, its verification and a durable commit (SQLite's fsync,
 * or PostgreSQL's COMMIT, with a synchronous standby if it has one) there,
 * as a peer's commit makes them.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/crypto.h"
#include "common/http.h"
#include "common/timefmt.h"

struct writer {
	const char *url, *snapshot;
	uint8_t (*seeds)[ED25519_SEED_LEN];
	long from, to;		/* peers [from, to) */
	long done;
};

static void
die(const char *what, const struct err *e)
{
	fprintf(stderr, "authority_write: %s: %s\n", what, e ? e->msg : "");
	exit(1);
}

/* A signed call that must answer want (or, for a commit, 200 too). */
static int
call(const char *url, const char *path, json_t *body, const uint8_t *seed,
     long want)
{
	long status = 0;
	json_t *reply = NULL;
	struct err e;
	int rc;

	rc = authority_call(url, "POST", path, body, seed, &status, &reply, &e);
	json_decref(reply);
	json_decref(body);
	if (rc == -1)
		die(path, &e);
	return status == want || status == 200 ? 0 : -1;
}

static void *
writer_run(void *arg)
{
	struct writer *w = arg;

	for (long i = w->from; i < w->to; i++) {
		json_t *b = json_pack("{s:s,s:b,s:s,s:i}", "snapshot",
				      w->snapshot, "up", 1, "addr", "10.1.2.3",
				      "port", (int)(20000 + i % 40000));

		if (call(w->url, "/v1/commitments", b, w->seeds[i], 201) == 0)
			w->done++;
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	uint8_t pub[ED25519_PUB_LEN];
	struct writer *w;
	pthread_t *t;
	long peers, threads, done = 0;
	double start, secs;
	struct err e;

	if (argc != 5 || (peers = atol(argv[3])) < 1 ||
	    (threads = atol(argv[4])) < 1) {
		fprintf(stderr, "usage: authority_write URL SNAPSHOT PEERS "
			"THREADS\n");
		return 2;
	}
	if (crypto_init(&e) == -1)
		die("crypto", &e);
	uint8_t (*seeds)[ED25519_SEED_LEN] = calloc((size_t)peers,
						     sizeof(*seeds));
	w = calloc((size_t)threads, sizeof(*w));
	t = calloc((size_t)threads, sizeof(*t));
	if (seeds == NULL || w == NULL || t == NULL)
		die("out of memory", NULL);
	for (long i = 0; i < peers; i++) {
		char addr[64];

		if (ed25519_keygen(seeds[i], pub, &e) == -1)
			die("keygen", &e);
		snprintf(addr, sizeof(addr), "10.9.%ld.%ld:7000",
			 (i >> 8) & 255, i & 255);
		if (call(argv[1], "/v1/peers", json_pack("{s:s}", "addr",
							 addr), seeds[i],
			 201) == -1)
			die("register", NULL);
	}
	start = mono_now();
	for (long k = 0; k < threads; k++) {
		w[k] = (struct writer){ argv[1], argv[2], seeds,
					peers * k / threads,
					peers * (k + 1) / threads, 0 };
		if (pthread_create(&t[k], NULL, writer_run, &w[k]) != 0)
			die("pthread_create", NULL);
	}
	for (long k = 0; k < threads; k++) {
		pthread_join(t[k], NULL);
		done += w[k].done;
	}
	secs = mono_now() - start;
	if (done != peers)
		fprintf(stderr, "authority_write: %ld of %ld commitments "
			"refused\n", peers - done, peers);
	printf("%.0f commitments/s (%ld in %.2f s, %ld threads)\n",
	       (double)done / secs, done, secs, threads);
	free(seeds);
	free(w);
	free(t);
	return done == peers ? 0 : 1;
}
