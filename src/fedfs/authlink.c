/*
 * authlink.c - the authority as fedfs's read path sees it: known down or
 * not, and a thread that tells it things no reader should wait for.
 *
 * Down.  A reader that needs the sources of an object asks the authority
 * (catalog_sources), bounded by CATALOG_SOURCES_TIMEOUT_MS.  When such a
 * call cannot reach it, the authority is down for AUTHLINK_DOWN_S (longer
 * than a source's: it is one server, and the sources it gave stay good),
 * doubling per failure in a row up to AUTHLINK_DOWN_MAX_S, and readers
 * meanwhile do not ask it at all: the fetcher uses the sources it last
 * learnt (or has none, and the read fails at once).  One answer clears it.
 * Without this, with the authority's packets dropped, every read paid the
 * full connect timeout, again and again.  Said once when it goes down and
 * once when it is back, not per call.
 *
 * Telling.  "I hold this object" (the first fetch of an object) and "this
 * source lied" (a chunk that failed its hash) are signed POSTs a reader
 * used to make itself, or should not wait for: they are queued here
 * (at most AUTHLINK_QUEUE_MAX) and sent by one thread, in order, each
 * bounded by AUTHLINK_TELL_TIMEOUT_MS; while the authority is down the
 * thread waits for the end of the backoff.  A report that could not be
 * sent is tried again, AUTHLINK_TRIES times in all; an announce that
 * could not is marked not announced and queued again at the object's next
 * fetch (catalog_announce).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/http.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "fedfs/fedfs.h"

#define AUTHLINK_DOWN_S 4.0
#define AUTHLINK_DOWN_MAX_S 16.0
#define AUTHLINK_QUEUE_MAX 256
#define AUTHLINK_TRIES 5
#define AUTHLINK_TELL_TIMEOUT_MS 5000L

enum authlink_kind { TELL_ANNOUNCE, TELL_LIAR };

struct authlink_tell {
	enum authlink_kind kind;
	uint8_t id[SHA256_LEN];		/* TELL_ANNOUNCE */
	struct fetch_liar liar;		/* TELL_LIAR */
	int tries;
	struct authlink_tell *next;
};

bool
authlink_down(struct fedfs *fs, double *left)
{
	struct authlink *l = &fs->link;
	double now = mono_now();
	bool down;

	pthread_mutex_lock(&l->lock);
	down = l->down_until > now;
	if (left != NULL)
		*left = down ? l->down_until - now : 0;
	pthread_mutex_unlock(&l->lock);
	return down;
}

void
authlink_result(struct fedfs *fs, bool reached, const char *why)
{
	struct authlink *l = &fs->link;
	double down;
	unsigned was;

	pthread_mutex_lock(&l->lock);
	was = l->fails;
	if (reached) {
		l->fails = 0;
		l->down_until = 0;
	} else {
		down = AUTHLINK_DOWN_S * (double)(1u << (l->fails < 6 ? l->fails
								       : 6));
		if (down > AUTHLINK_DOWN_MAX_S)
			down = AUTHLINK_DOWN_MAX_S;
		l->fails++;
		l->down_until = mono_now() + down;
	}
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	if (reached && was > 0)
		log_info("the authority %s answers again", fs->authority);
	else if (!reached && was == 0)
		log_warn("the authority %s is unreachable: %s (readers use the "
			 "sources they know; asked again in %.0f s)",
			 fs->authority, why ? why : "no answer", AUTHLINK_DOWN_S);
}

/* t last in the queue.  Lock held. */
static void
authlink_append(struct authlink *l, struct authlink_tell *t)
{
	t->next = NULL;
	if (l->tail != NULL)
		l->tail->next = t;
	else
		l->head = t;
	l->tail = t;
	l->queued++;
}

/* Queue t (taken) to be told; dropped with a line if the queue is full. */
static void
authlink_queue(struct fedfs *fs, struct authlink_tell *t)
{
	struct authlink *l = &fs->link;

	pthread_mutex_lock(&l->lock);
	if (l->queued >= AUTHLINK_QUEUE_MAX || !l->started || l->stop) {
		pthread_mutex_unlock(&l->lock);
		log_warn("too much to tell the authority: dropped a %s",
			 t->kind == TELL_LIAR ? "report" : "announce");
		free(t);
		return;
	}
	authlink_append(l, t);
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

void
authlink_announce(struct fedfs *fs, const uint8_t id[SHA256_LEN])
{
	struct authlink_tell *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return;
	t->kind = TELL_ANNOUNCE;
	memcpy(t->id, id, SHA256_LEN);
	authlink_queue(fs, t);
}

void
authlink_liar(void *arg, const struct fetch_liar *liar)
{
	struct authlink_tell *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return;
	t->kind = TELL_LIAR;
	t->liar = *liar;
	authlink_queue(arg, t);
}

/* POST /v1/reports {"kind": "bad_chunk", ...}.  Returns 0 when the
 * authority answered (whatever it said: a refusal is not tried again),
 * -1 when it could not be reached. */
static int
authlink_send_report(struct fedfs *fs, const struct fetch_liar *l)
{
	char obj[SHA256_HEX_LEN + 1], exp[SHA256_HEX_LEN + 1],
	     got[SHA256_HEX_LEN + 1];
	json_t *body, *reply = NULL;
	long status = 0;
	struct err e;
	int rc;

	hex_encode(l->object, SHA256_LEN, obj);
	hex_encode(l->expected, SHA256_LEN, exp);
	hex_encode(l->received, SHA256_LEN, got);
	body = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "kind", "bad_chunk",
			 "object", obj, "addr", l->addr,
			 "chunk", (json_int_t)l->chunk, "expected", exp,
			 "received", got);
	if (body == NULL)
		return 0;
	rc = authority_call_within(fs->authority, "POST", "/v1/reports", body,
				   fs->seed, AUTHLINK_TELL_TIMEOUT_MS, &status,
				   &reply, &e);
	json_decref(body);
	if (rc < 0) {
		authlink_result(fs, false, e.msg);
		return -1;
	}
	authlink_result(fs, true, NULL);
	if (status == 200 || status == 201) {
		log_info("reported %s to the authority: chunk %u of %.16s.. "
			 "hashed to %.16s.., not %.16s.. (report %lld)", l->addr,
			 l->chunk, obj, got, exp, (long long)json_integer_value(
			     json_object_get(reply, "report")));
	} else {
		authority_refused(status, reply, &e);
		log_warn("report of %s for %.16s.. refused: %s", l->addr, obj,
			 e.msg);
	}
	json_decref(reply);
	return 0;
}

/* Tell t.  Returns whether it is done with (told, refused or given up). */
static bool
authlink_tell(struct fedfs *fs, struct authlink_tell *t)
{
	if (t->kind == TELL_ANNOUNCE) {
		catalog_announce(fs, t->id);
		return true;
	}
	if (authlink_send_report(fs, &t->liar) == 0)
		return true;
	if (++t->tries < AUTHLINK_TRIES)
		return false;
	log_warn("gave up reporting %s to the authority after %d tries",
		 t->liar.addr, AUTHLINK_TRIES);
	return true;
}

/* The next thing to tell, once the authority is not known down; NULL
 * when stopping.  Lock held. */
static struct authlink_tell *
authlink_next(struct authlink *l)
{
	struct authlink_tell *t;

	for (;;) {
		double now = mono_now();

		if (l->stop)
			return NULL;
		if (l->head != NULL && l->down_until <= now)
			break;
		if (l->head == NULL) {
			pthread_cond_wait(&l->cond, &l->lock);
		} else {
			struct timespec until;
			double left = l->down_until - now;

			clock_gettime(CLOCK_MONOTONIC, &until);
			timespec_add(&until, left);
			pthread_cond_timedwait(&l->cond, &l->lock, &until);
		}
	}
	t = l->head;
	l->head = t->next;
	if (l->head == NULL)
		l->tail = NULL;
	l->queued--;
	return t;
}

static void *
authlink_loop(void *arg)
{
	struct fedfs *fs = arg;
	struct authlink *l = &fs->link;
	struct authlink_tell *t;

	pthread_setname_np(pthread_self(), "fed-tell");
	pthread_mutex_lock(&l->lock);
	while ((t = authlink_next(l)) != NULL) {
		pthread_mutex_unlock(&l->lock);
		if (authlink_tell(fs, t)) {
			free(t);
			pthread_mutex_lock(&l->lock);
			continue;
		}
		pthread_mutex_lock(&l->lock);
		authlink_append(l, t);	/* again, last */
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

int
authlink_start(struct fedfs *fs)
{
	struct authlink *l = &fs->link;
	pthread_condattr_t ca;

	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&l->thread, NULL, authlink_loop, fs) != 0)
		return -1;
	pthread_mutex_lock(&l->lock);
	l->started = true;
	pthread_mutex_unlock(&l->lock);
	return 0;
}

/* Stop telling: what is left is dropped (an announce is made again at the
 * next start's first fetch; a report, at the liar's next lie). */
void
authlink_stop(struct fedfs *fs)
{
	struct authlink *l = &fs->link;
	struct authlink_tell *t;

	pthread_mutex_lock(&l->lock);
	if (!l->started) {
		pthread_mutex_unlock(&l->lock);
		return;
	}
	l->stop = true;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->thread, NULL);
	while ((t = l->head) != NULL) {
		l->head = t->next;
		free(t);
	}
	l->tail = NULL;
	l->queued = 0;
}
