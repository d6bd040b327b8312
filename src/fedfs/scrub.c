/*
 * scrub.c - checking the whole chunk store again (see scrub.h).
 *
 * The background thread takes a list of the chunks held (store_list),
 * verifies them one by one, and after each waits as long as its bytes take
 * at the configured rate: a token bucket with no burst, so a scrub never
 * reads faster than the rate over any chunk.  A pass done, it waits
 * SCRUB_PASS_PAUSE_S and starts again with a fresh list.  The waits are
 * on a condition variable, so scrub_stop is prompt.
 *
 * sc->lock guards the figures and stopping; the store's own lock is taken
 * by store_* calls, never under sc->lock (order: none nested).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/hex.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "fedfs/scrub.h"

struct scrubber {
	struct store *store;
	uint64_t rate;			/* bytes/s; immutable */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;		/* stopping (CLOCK_MONOTONIC waits) */
	bool stopping;			/* sc->lock */
	uint64_t passes, chunks, bytes, bad;	/* sc->lock */
};

/* Record one chunk's verdict into r (NULL: nowhere). */
static void
scrub_note(struct scrub_report *r, const uint8_t hash[SHA256_LEN], int rc,
	   uint64_t bytes, const char *why)
{
	char hex[2 * SHA256_LEN + 1];

	if (r == NULL)
		return;
	r->chunks++;
	r->bytes += bytes;
	if (rc == 0) {
		r->good++;
		return;
	}
	if (rc != STORE_BAD_HASH) {
		r->unreadable++;	/* evicted meanwhile, or EIO */
		return;
	}
	r->bad++;
	hex_encode(hash, SHA256_LEN, hex);
	if (r->bad_list != NULL)
		json_array_append_new(r->bad_list, json_pack("{s:s,s:s}",
				      "chunk", hex, "why", why));
}

void
scrub_all(struct store *s, struct scrub_report *r)
{
	uint8_t (*list)[SHA256_LEN];
	char why[200];
	uint64_t bytes;
	size_t n;

	memset(r, 0, sizeof(*r));
	r->bad_list = json_array();
	list = store_list(s, &n);
	for (size_t i = 0; i < n; i++) {
		int rc = store_verify_chunk(s, list[i], &bytes, why, sizeof(why));

		scrub_note(r, list[i], rc, bytes, why);
	}
	free(list);
}

/* Wait until the monotonic time *t or until stopping.  Returns true if
 * stopping.  sc->lock held. */
static bool
scrub_wait_until(struct scrubber *sc, const struct timespec *t)
{
	while (!sc->stopping &&
	       pthread_cond_timedwait(&sc->wake, &sc->lock, t) != ETIMEDOUT)
		;
	return sc->stopping;
}

/* One pass over what is held now, paced.  Returns true if stopping. */
static bool
scrub_pass(struct scrubber *sc)
{
	struct timespec next, now;
	uint8_t (*list)[SHA256_LEN];
	char why[200];
	bool stop = false;
	uint64_t bytes;
	size_t n;

	list = store_list(sc->store, &n);
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (size_t i = 0; i < n && !stop; i++) {
		int rc = store_verify_chunk(sc->store, list[i], &bytes, why,
					    sizeof(why));

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > next.tv_sec ||
		    (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec))
			next = now;		/* no burst after a slow read */
		timespec_add(&next, (double)bytes / (double)sc->rate);
		pthread_mutex_lock(&sc->lock);
		sc->chunks++;
		sc->bytes += bytes;
		sc->bad += rc == STORE_BAD_HASH;
		stop = scrub_wait_until(sc, &next);
		pthread_mutex_unlock(&sc->lock);
	}
	free(list);
	return stop;
}

static void *
scrub_thread(void *arg)
{
	struct scrubber *sc = arg;
	struct timespec t;
	bool stop = false;

	pthread_setname_np(pthread_self(), "fed-scrub");
	while (!stop) {
		stop = scrub_pass(sc);
		pthread_mutex_lock(&sc->lock);
		if (!stop)
			sc->passes++;
		clock_gettime(CLOCK_MONOTONIC, &t);
		t.tv_sec += SCRUB_PASS_PAUSE_S;
		stop = stop || scrub_wait_until(sc, &t);
		pthread_mutex_unlock(&sc->lock);
	}
	return NULL;
}

int
scrub_start(struct store *s, uint64_t rate, struct scrubber **out,
	    struct err *e)
{
	struct scrubber *sc = calloc(1, sizeof(*sc));
	pthread_condattr_t ca;

	if (sc == NULL)
		return err_sys(e, "scrubber");
	sc->store = s;
	sc->rate = rate;
	pthread_mutex_init(&sc->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sc->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&sc->thread, NULL, scrub_thread, sc) != 0) {
		pthread_cond_destroy(&sc->wake);
		pthread_mutex_destroy(&sc->lock);
		free(sc);
		return err_set(e, "cannot start the scrubber thread");
	}
	*out = sc;
	return 0;
}

void
scrub_stop(struct scrubber *sc)
{
	if (sc == NULL)
		return;
	pthread_mutex_lock(&sc->lock);
	sc->stopping = true;
	pthread_cond_broadcast(&sc->wake);
	pthread_mutex_unlock(&sc->lock);
	pthread_join(sc->thread, NULL);
	pthread_cond_destroy(&sc->wake);
	pthread_mutex_destroy(&sc->lock);
	free(sc);
}

json_t *
scrub_status(struct scrubber *sc)
{
	json_t *j;

	if (sc == NULL)
		return json_pack("{s:I}", "rate", (json_int_t)0);
	pthread_mutex_lock(&sc->lock);
	j = json_pack("{s:I,s:I,s:I,s:I,s:I}", "rate", (json_int_t)sc->rate,
		      "passes", (json_int_t)sc->passes,
		      "chunks", (json_int_t)sc->chunks,
		      "bytes", (json_int_t)sc->bytes,
		      "bad", (json_int_t)sc->bad);
	pthread_mutex_unlock(&sc->lock);
	return j;
}
