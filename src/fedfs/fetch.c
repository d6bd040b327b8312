/*
 * fetch.c - verified chunk fetching from peers (see fetch.h).
 *
 *   reader thread               fetch thread (curl multi)      verifiers
 *   -------------               -------------------------      ---------
 *   fetcher_open(o, i)
 *     held?  -> open, return fd
 *     sources of o (cached 2 s)
 *     job for chunk i -------> queue -> transfer from the best
 *     (one per hash)              ^     source not yet tried
 *     wait on the job             |     200, right length ----> store_put
 *                                 |     404 / 503: busy           (hashes)
 *                                 |     error: next source      ok: done
 *     <--- broadcast -------------+---- none left: fail,    bad: source
 *                                 |     or, if some were        bad for o,
 *                                 '---- busy, retry later <---- requeue
 *
 * A reader gets the chunk as an open fd: the verifier opens it right after
 * store_put (a pending chunk is never evicted) and each waiter takes a dup,
 * so the read path is read -> fetch -> verify (store_put's hash, decided by
 * its return code) -> store -> reply, without a second open that could
 * find it evicted.
 * (fetcher_get is the same wait without the fd.)
 *
 * (fetch_race.c races a job's tries over its sources; fetch_peers.c
 * keeps what is known of sources across jobs: see fetch_int.h.)
 *
 * A source that does not hold a chunk yet (404) or is busy serving others
 * (503: an owner limits its uploads so peers fetch from each other) is not
 * a failure: when every source was busy the job waits and asks again,
 * backing off, for up to FETCH_BUSY_DEADLINE_S.
 *
 * The lock guards the job table, the queues, the source table and the
 * statistics; transfers and store_put run outside it.  Only the fetch
 * thread touches the curl multi handle.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "fedfs/fetch_int.h"

/* --- tables (lock held) ------------------------------------------------ */

static struct fetch_job **
fetch_bucket(struct fetcher *f, const uint8_t hash[SHA256_LEN])
{
	uint32_t h;

	memcpy(&h, hash, sizeof(h));
	return &f->jobs[h % FETCH_JOB_BUCKETS];
}

static struct fetch_job *
fetch_job_find(struct fetcher *f, const uint8_t hash[SHA256_LEN])
{
	for (struct fetch_job *j = *fetch_bucket(f, hash); j; j = j->hnext)
		if (memcmp(j->hash, hash, SHA256_LEN) == 0)
			return j;
	return NULL;
}

static void
fetch_job_unlist(struct fetcher *f, struct fetch_job *j)
{
	struct fetch_job **p = fetch_bucket(f, j->hash);

	while (*p && *p != j)
		p = &(*p)->hnext;
	if (*p) {
		*p = j->hnext;
		f->njobs--;
	}
}

/* A buffer of at least len bytes, from the pool if one fits.  Lock held. */
uint8_t *
fetch_buf_get(struct fetcher *f, size_t len, size_t *cap)
{
	for (int i = 0; i < f->npool; i++) {
		if (f->pool[i].cap >= len) {
			uint8_t *b = f->pool[i].buf;

			*cap = f->pool[i].cap;
			f->pool[i] = f->pool[--f->npool];
			return b;
		}
	}
	*cap = len ? len : 1;
	return malloc(*cap);
}

/* Give a buffer back (kept if there is room).  Lock held. */
void
fetch_buf_put(struct fetcher *f, uint8_t *buf, size_t cap)
{
	if (buf == NULL)
		return;
	if (f->npool < FETCH_POOL) {
		f->pool[f->npool].buf = buf;
		f->pool[f->npool].cap = cap;
		f->npool++;
		return;
	}
	free(buf);
}

/* Drop a reference to j.  Lock held. */
void
fetch_job_put(struct fetch_job *j)
{
	if (--j->refs > 0)
		return;
	if (j->fd >= 0)
		close(j->fd);
	fetch_buf_put(j->f, j->buf, j->cap);
	free(j);
}

/* Add "addr: why" to what j's error will say it tried.  Lock held. */
void
fetch_tried(struct fetch_job *j, const char *addr, const char *why)
{
	size_t n = strlen(j->tried);

	snprintf(j->tried + n, sizeof(j->tried) - n, "%s%s: %s",
		 n ? "; " : "", addr, why);
}

/* Take j off f->racing if it is there (it leaves JOB_RUNNING). */
static void
fetch_racing_unlink(struct fetcher *f, struct fetch_job *j)
{
	struct fetch_job **p = &f->racing;

	if (j->state != JOB_RUNNING)
		return;
	while (*p != NULL && *p != j)
		p = &(*p)->rnext;
	if (*p != NULL)
		*p = j->rnext;
	j->rnext = NULL;
}

void
fetch_queue_push(struct fetcher *f, struct fetch_job *j, bool front)
{
	fetch_racing_unlink(f, j);
	j->qnext = NULL;
	if (front) {
		j->qnext = f->qhead;
		f->qhead = j;
		if (f->qtail == NULL)
			f->qtail = j;
	} else {
		if (f->qtail)
			f->qtail->qnext = j;
		else
			f->qhead = j;
		f->qtail = j;
	}
	j->state = JOB_QUEUED;
}

/* A complete copy of j's chunk (j->buf) for a verifier to hash and store. */
void
fetch_verify_push(struct fetcher *f, struct fetch_job *j)
{
	fetch_racing_unlink(f, j);
	j->state = JOB_VERIFYING;
	j->qnext = NULL;
	if (f->vtail)
		f->vtail->qnext = j;
	else
		f->vhead = j;
	f->vtail = j;
	pthread_cond_signal(&f->verify);
}

/* --- jobs --------------------------------------------------------------- */

/* Queue a fetch of chunk i of o unless held or already on its way.
 * Returns the job (with a reference for the caller if want_ref), or NULL
 * if the chunk is held.  Lock held. */
static struct fetch_job *
fetch_enqueue(struct fetcher *f, const struct fetch_object *o, uint32_t i,
	      bool want_ref)
{
	const uint8_t *hash = o->index->chunks[i];
	struct fetch_job *j = fetch_job_find(f, hash);

	if (j == NULL) {
		if (store_has(f->store, hash))
			return NULL;
		if ((j = calloc(1, sizeof(*j))) == NULL) {
			f->enqueue_failed = true;
			return NULL;
		}
		memcpy(j->hash, hash, SHA256_LEN);
		j->f = f;
		j->obj = o;
		j->chunk = i;
		j->len = chunkidx_chunk_len(o->index, i);
		j->state = JOB_QUEUED;
		j->refs = 1;		/* the fetch thread's */
		j->fd = -1;
		j->round_began = mono_now();
		fetch_job_sources(f, j);
		j->hnext = *fetch_bucket(f, hash);
		*fetch_bucket(f, hash) = j;
		f->njobs++;
		fetch_queue_push(f, j, false);
		curl_multi_wakeup(f->multi);
	}
	if (want_ref)
		j->refs++;
	return j;
}

/* Fail a job: no source could give the chunk.  Lock held. */
void
fetch_job_fail(struct fetcher *f, struct fetch_job *j)
{
	char hex[2 * SHA256_LEN + 1];

	hex_encode(j->hash, SHA256_LEN, hex);
	if (j->tried[0] == '\0')
		snprintf(j->tried, sizeof(j->tried), "no source is known");
	log_error("chunk %u (%.16s..) of %s: no valid copy; tried %s",
		  j->chunk, hex, j->obj->label, j->tried);
	fetch_racing_unlink(f, j);
	j->state = JOB_FAILED;
	f->failed_chunks++;
	fetch_job_unlist(f, j);
	pthread_cond_broadcast(&f->done);
	fetch_job_put(j);
}

/* Find out whether the source at addr answers: a connect, in the
 * background, that no job waits on (fetch_probe_finished).  Fetch thread,
 * lock held. */
void
fetch_job_defer(struct fetcher *f, struct fetch_job *j, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, &j->not_before);
	timespec_add(&j->not_before, ms / 1000.0);
	fetch_queue_push(f, j, false);
}

/* The copy of j's chunk was stored: credit its source.  Lock held. */
static void
fetch_verified(struct fetcher *f, struct fetch_job *j, double secs)
{
	struct fetch_peer *p = fetch_peer(f, j->from);
	double v = secs > 0 ? (double)j->got / secs : 1e12;

	if (p != NULL) {
		p->fails = 0;
		p->down_until = 0;
		p->alive = true;
		p->speed = p->speed > 0 ? 0.7 * p->speed + 0.3 * v : v;
		p->bytes += j->got;
		p->chunks++;
	}
	f->fetched_chunks++;
	f->fetched_bytes += j->got;
	fetch_count_object(f, j->obj, j->got);
	j->state = JOB_DONE;
	fetch_job_unlist(f, j);
	pthread_cond_broadcast(&f->done);
	fetch_job_put(j);
}

/* The copy of j's chunk was not stored (e says why; liar: it is not the
 * chunk): on to the next source, and a liar is bad for the object, never
 * asked for it again.  Lock held. */
static void
fetch_unverified(struct fetcher *f, struct fetch_job *j, bool liar,
		 const struct err *e)
{
	struct fetch_peer *p = fetch_peer(f, j->from);

	if (p != NULL)
		p->errors++;
	if (liar) {
		if (p != NULL)
			p->bad_chunks++;
		log_warn("chunk %u of %s from %s: hash mismatch; %s is now a "
			 "bad source for it", j->chunk, j->obj->label, j->from,
			 j->from);
		fetch_mark_bad(f, j->obj->id, j->from);
		fetch_tried(j, j->from, "hash mismatch");
	} else {
		fetch_tried(j, j->from, e->msg);
	}
	fetch_buf_put(f, j->buf, j->cap);
	j->buf = NULL;
	/* the fetch thread tries the next source */
	fetch_queue_push(f, j, true);
	curl_multi_wakeup(f->multi);
}

void
fetch_liar_evidence(struct fetch_liar *l, const struct fetch_job *j,
		    const char *addr, const void *buf, size_t got)
{
	memset(l, 0, sizeof(*l));
	memcpy(l->object, j->obj->id, SHA256_LEN);
	snprintf(l->addr, sizeof(l->addr), "%s", addr);
	l->chunk = j->chunk;
	memcpy(l->expected, j->hash, SHA256_LEN);
	sha256(buf, got, l->received);
}

/* Tell whoever wants to know (fetcher_on_liar) that j->from sent bytes
 * that hash to something else than chunk j.  Lock not held. */
static void
fetch_report_liar(struct fetcher *f, const struct fetch_job *j)
{
	struct fetch_liar l;

	if (f->liar == NULL)
		return;
	fetch_liar_evidence(&l, j, j->from, j->buf, j->got);
	f->liar(f->liar_arg, &l);
}

/* A good chunk from j->from could not be stored here (disk full of pinned
 * chunks, an I/O error): this peer's failure, not the source's, which is
 * not counted against it; the job fails, as another source's copy would
 * fail the same way.  Lock held. */
static void
fetch_store_failed(struct fetcher *f, struct fetch_job *j, const struct err *e)
{
	log_warn("chunk %u of %s from %s: good, but not stored here: %s "
		 "(a local error, not the source's)", j->chunk, j->obj->label,
		 j->from, e->msg);
	fetch_tried(j, "this peer's store", e->msg);
	fetch_job_fail(f, j);
}

/* Verifier thread: hash and store chunks as they arrive. */
static void *
fetch_verifier(void *arg)
{
	struct fetcher *f = arg;
	struct fetch_job *j;
	struct err e;
	double secs;
	bool liar, first;
	int rc;

	pthread_setname_np(pthread_self(), "fed-verify");
	pthread_mutex_lock(&f->lock);
	for (;;) {
		while (!f->stop && f->vhead == NULL)
			pthread_cond_wait(&f->verify, &f->lock);
		if (f->stop)
			break;
		j = f->vhead;
		f->vhead = j->qnext;
		if (f->vhead == NULL)
			f->vtail = NULL;
		pthread_mutex_unlock(&f->lock);

		rc = store_put(f->store, j->hash, j->buf, j->got,
			       STORE_FETCHED, &e);
		/* its readers get this fd: opened while the chunk is pending,
		 * which no eviction takes, so no reader finds it gone */
		if (rc == 0)
			j->fd = store_open_chunk(f->store, j->hash, NULL);
		secs = mono_now() - j->started;
		/* store_put hashes what it is given: the one place that
		 * knows a copy is not the chunk */
		liar = rc == STORE_BAD_HASH;
		if (liar) {
			pthread_mutex_lock(&f->lock);
			first = !fetch_is_bad(f, j->obj->id, j->from);
			pthread_mutex_unlock(&f->lock);
			if (first)
				fetch_report_liar(f, j);
		}
		pthread_mutex_lock(&f->lock);
		if (rc == 0)
			fetch_verified(f, j, secs);
		else if (rc == STORE_LOCAL_ERROR)
			fetch_store_failed(f, j, &e);
		else
			fetch_unverified(f, j, liar, &e);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

static bool
fetch_ready(const struct fetch_job *j, const struct timespec *now)
{
	return j->not_before.tv_sec < now->tv_sec ||
	       (j->not_before.tv_sec == now->tv_sec &&
		j->not_before.tv_nsec <= now->tv_nsec);
}

/* Start the queued jobs that may go (those waiting out a backoff stay
 * queued), as long as fewer than FETCH_PARALLEL tries are in flight.
 * Returns the milliseconds until the next waiting one may (at most wait).
 * Lock held. */
static int
fetch_start_queued(struct fetcher *f, int wait_ms)
{
	struct fetch_job **pp = &f->qhead, *prev = NULL;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	while (*pp != NULL && f->running < FETCH_PARALLEL) {
		struct fetch_job *j = *pp;

		if (!fetch_ready(j, &now)) {
			long ms = (j->not_before.tv_sec - now.tv_sec) * 1000 +
				  (j->not_before.tv_nsec - now.tv_nsec) /
				  1000000 + 1;

			if (ms < wait_ms)
				wait_ms = (int)ms;
			prev = j;
			pp = &j->qnext;
			continue;
		}
		*pp = j->qnext;
		if (f->qtail == j)
			f->qtail = prev;
		j->qnext = NULL;
		if (j->sources_due) {
			j->sources_due = false;
			fetch_job_sources(f, j);
		}
		fetch_job_start(f, j);
	}
	return wait_ms;
}

static void *
fetch_loop(void *arg)
{
	struct fetcher *f = arg;
	CURLMsg *msg;
	int still, left, wait_ms, ended;

	pthread_setname_np(pthread_self(), "fed-fetch");
	for (;;) {
		pthread_mutex_lock(&f->lock);
		if (f->stop) {
			pthread_mutex_unlock(&f->lock);
			break;
		}
		wait_ms = fetch_race_scan(f, mono_now());
		wait_ms = fetch_start_queued(f, wait_ms);
		pthread_mutex_unlock(&f->lock);

		curl_multi_perform(f->multi, &still);
		ended = 0;
		while ((msg = curl_multi_info_read(f->multi, &left)) != NULL) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			ended++;
			fetch_try_finished(f, msg->easy_handle,
					   msg->data.result);
		}
		/* a transfer that ended freed a slot for a queued job: start
		 * it now.  Nothing else would wake the poll if no other
		 * transfer is left to make noise */
		if (ended == 0)
			curl_multi_poll(f->multi, NULL, 0, wait_ms, NULL);
	}
	return NULL;
}

/* --- public ------------------------------------------------------------- */

int
fetcher_start(struct store *s, fetch_sources_fn sources, void *arg,
	      const char *self, struct fetcher **out, struct err *e)
{
	struct fetcher *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return err_sys(e, "fetcher");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	f->store = s;
	f->sources = sources;
	f->sources_arg = arg;
	snprintf(f->self, sizeof(f->self), "%s", self ? self : "");
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->done, NULL);
	pthread_cond_init(&f->verify, NULL);
	if ((f->multi = curl_multi_init()) == NULL) {
		free(f);
		return err_set(e, "fetcher: curl_multi_init failed");
	}
	/* above every try in flight: one queued inside curl for a
	 * connection would be cut off at its first-byte deadline */
	curl_multi_setopt(f->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			  (long)FETCH_TRIES_MAX + 1);
	f->last_resort_hdr = curl_slist_append(NULL, FETCH_LAST_RESORT_HDR
					       ": 1");
	if (pthread_create(&f->thread, NULL, fetch_loop, f) != 0) {
		curl_multi_cleanup(f->multi);
		free(f);
		return err_set(e, "fetcher: cannot start its thread");
	}
	for (int i = 0; i < FETCH_VERIFIERS; i++)
		if (pthread_create(&f->verifiers[i], NULL, fetch_verifier, f) != 0)
			abort();	/* no threads left: nothing sensible */
	*out = f;
	return 0;
}

void
fetcher_stop(struct fetcher *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&f->lock);
	f->stop = true;
	curl_multi_wakeup(f->multi);
	pthread_cond_broadcast(&f->verify);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	for (int i = 0; i < FETCH_VERIFIERS; i++)
		pthread_join(f->verifiers[i], NULL);
	/* abandon what is left: readers are gone when fedfs stops.  Tries
	 * first: a job their references keep (done) goes with the last */
	fetch_race_stop(f);
	for (int b = 0; b < FETCH_JOB_BUCKETS; b++) {
		struct fetch_job *j = f->jobs[b], *next;

		for (; j; j = next) {
			next = j->hnext;
			free(j->buf);
			free(j);
		}
	}
	for (int i = 0; i < f->npool; i++)
		free(f->pool[i].buf);
	curl_multi_cleanup(f->multi);
	curl_slist_free_all(f->last_resort_hdr);
	pthread_cond_destroy(&f->verify);
	pthread_cond_destroy(&f->done);
	pthread_mutex_destroy(&f->lock);
	fetch_peers_free(f);
	free(f);
}

void
fetcher_on_liar(struct fetcher *f, fetch_liar_fn fn, void *arg)
{
	pthread_mutex_lock(&f->lock);
	f->liar = fn;
	f->liar_arg = arg;
	pthread_mutex_unlock(&f->lock);
}

/*
 * Wait for chunk i of o: queued unless held or on its way, with the next
 * `ahead` behind it.  Returns 0 when it is held, with *fd (if fd) an open
 * descriptor of it (a dup of the one its job opened, or opened here if it
 * was held already; -1 if it went meanwhile), or -1 with e set.
 */
static int
fetch_wait(struct fetcher *f, const struct fetch_object *o, uint32_t i,
	   uint32_t ahead, int *fd, struct err *e)
{
	struct fetch_job *j;
	int rc = 0, retries = 0;

	fetch_refresh_sources(f, o);
	pthread_mutex_lock(&f->lock);
again:
	f->enqueue_failed = false;
	j = fetch_enqueue(f, o, i, true);
	if (j == NULL && f->enqueue_failed) {
		pthread_mutex_unlock(&f->lock);
		return err_set(e, "chunk %u of %s: out of memory", i, o->label);
	}
	for (uint32_t k = 1; k <= ahead && i + k < o->index->nchunks; k++)
		fetch_enqueue(f, o, i + k, false);
	ahead = 0;
	if (j != NULL) {
		f->waits++;
		while (j->state != JOB_DONE && j->state != JOB_FAILED) {
			struct timespec until;

			/* a job whose sources were all busy or lacked the
			 * chunk goes round again with the source list this
			 * thread keeps fresh: holders appear as peers read */
			clock_gettime(CLOCK_REALTIME, &until);
			timespec_add(&until, FETCH_SOURCES_TTL_S);
			if (pthread_cond_timedwait(&f->done, &f->lock,
						   &until) == ETIMEDOUT ||
			    fetch_sources_wanted(f, o)) {
				pthread_mutex_unlock(&f->lock);
				fetch_refresh_sources(f, o);
				pthread_mutex_lock(&f->lock);
			}
		}
		/* a chunk two objects share (zeros, most often) is fetched
		 * once, from the sources of the object that asked first: if
		 * those failed, this object's own may have it.  Asked again,
		 * it gets a job of its own (the failed one is unlisted) */
		if (j->state == JOB_FAILED && retries < 2 &&
		    memcmp(j->obj->id, o->id, SHA256_LEN) != 0) {
			retries++;
			fetch_job_put(j);
			goto again;
		}
		if (j->state == JOB_FAILED)
			rc = err_set(e, "chunk %u of %s: no valid copy (%s)", i,
				     o->label, j->tried);
		else if (fd != NULL && j->fd >= 0)
			*fd = fcntl(j->fd, F_DUPFD_CLOEXEC, 0);
		fetch_job_put(j);
	}
	pthread_mutex_unlock(&f->lock);
	if (rc == 0 && fd != NULL && *fd < 0)	/* held before it was asked */
		*fd = store_open_chunk(f->store, o->index->chunks[i], NULL);
	return rc;
}

int
fetcher_get(struct fetcher *f, const struct fetch_object *o, uint32_t i,
	    uint32_t ahead, struct err *e)
{
	if (i >= o->index->nchunks)
		return err_set(e, "chunk %u of %s does not exist", i, o->label);
	if (store_has(f->store, o->index->chunks[i]) && ahead == 0)
		return 0;
	return fetch_wait(f, o, i, ahead, NULL, e);
}

int
fetcher_open(struct fetcher *f, const struct fetch_object *o, uint32_t i,
	     uint32_t ahead, struct err *e)
{
	int fd;

	if (i >= o->index->nchunks)
		return err_set(e, "chunk %u of %s does not exist", i, o->label);
	/* held: open (and so verified, store_open_chunk) */
	if ((fd = store_open_chunk(f->store, o->index->chunks[i], NULL)) >= 0) {
		fetcher_ahead(f, o, i, ahead);
		return fd;
	}
	/* not held, or dropped as bad just now: fetched, then open; once
	 * more should it go between its fetch and the open (held before it
	 * was asked, and evicted since) */
	for (int attempt = 0; attempt < 2; attempt++) {
		fd = -1;
		if (fetch_wait(f, o, i, ahead, &fd, e) < 0)
			return -1;
		if (fd >= 0)
			return fd;
		ahead = 0;
	}
	return err_set(e, "chunk %u of %s: evicted as soon as fetched (is "
		       "the store too small for what is read at once?)", i,
		       o->label);
}

void
fetcher_ahead(struct fetcher *f, const struct fetch_object *o, uint32_t i,
	      uint32_t ahead)
{
	if (ahead == 0)
		return;
	fetch_refresh_sources(f, o);
	pthread_mutex_lock(&f->lock);
	for (uint32_t k = 1; k <= ahead && i + k < o->index->nchunks; k++)
		fetch_enqueue(f, o, i + k, false);
	pthread_mutex_unlock(&f->lock);
}
