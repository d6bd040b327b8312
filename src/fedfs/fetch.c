/*
 * fetch.c - verified chunk fetching from peers (see fetch.h).
 *
 *   reader thread               fetch thread (curl multi)      verifiers
 *   -------------               -------------------------      ---------
 *   fetcher_get(o, i)
 *     held?  -> return
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
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "common/hex.h"
#include "common/log.h"
#include "fedfs/fetch.h"

#define FETCH_CONNECT_MS 2000L
#define FETCH_PROBE_WAIT_MS 50		/* at most, for a probe's answer */
#define FETCH_LOW_SPEED_BYTES 4096L	/* below this many bytes/s ... */
#define FETCH_LOW_SPEED_S 5L		/* ... for this long: give up */
#define FETCH_TOTAL_MS 60000L
/* libcurl's receive buffer: its 16 KiB default made a 1 MiB chunk 64
 * recv() and 64 poll() calls on the one fetch thread; 512 KiB is the most
 * it takes */
#define FETCH_RECV_BUF (512L << 10)
#define FETCH_SOURCES_TTL_S 2	/* holders appear as peers start reading */
#define FETCH_JOB_BUCKETS 1024
#define FETCH_TRIED_MAX 600
#define FETCH_VERIFIERS 4		/* threads hashing and storing chunks */
#define FETCH_POOL 64			/* chunk buffers kept for reuse */
#define FETCH_BUSY_DEADLINE_S 20	/* keep asking busy sources this long */
#define FETCH_BACKOFF_MS 100		/* first wait when every source was busy */
#define FETCH_DOWN_S 1.0		/* a source that failed: asked last for */
#define FETCH_DOWN_MAX_S 60.0		/* ... doubling per failure, up to this */

enum fetch_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED };

struct fetcher;

struct fetch_job {
	struct fetcher *f;
	uint8_t hash[SHA256_LEN];
	const struct fetch_object *obj;
	uint32_t chunk, len;
	enum fetch_state state;
	int refs;			/* waiters, plus one while in flight */
	char addrs[FETCH_SOURCES_MAX][FETCH_ADDR_MAX];
	int naddrs, next;		/* sources for this job, next to try */
	char tried[FETCH_TRIED_MAX];	/* "a: timeout; b: hash mismatch" */
	uint8_t *buf;			/* from the fetcher's pool */
	size_t cap;
	size_t got;
	bool too_long;
	CURL *easy;
	char curl_err[CURL_ERROR_SIZE];
	struct timespec started;
	time_t first_try;		/* for the busy deadline */
	int busy;			/* sources busy (503) in this round */
	int absent;			/* live sources without it yet (404) */
	bool last_resort;		/* only busy sources can give it */
	bool probing;			/* waits for a probe's answer */
	int rounds;			/* rounds that found all busy */
	struct timespec not_before;	/* when a waiting job may go again */
	struct fetch_job *hnext;	/* job table chain */
	struct fetch_job *qnext;	/* queue */
};

/* What is known of one source address, across objects. */
struct fetch_peer {
	char addr[FETCH_ADDR_MAX];
	double speed;			/* bytes/s, EWMA; 0: not measured */
	uint64_t bytes, chunks, errors, bad_chunks;
	unsigned fails;			/* transfers failed in a row */
	double down_until;		/* fetch_now(): asked last till then */
	bool alive;			/* it answered its last probe or transfer */
	CURL *probe;			/* a connect to find out, or NULL */
};

/* "source addr gave a bad chunk of object id": never ask it again. */
struct fetch_bad {
	uint8_t id[SHA256_LEN];
	char addr[FETCH_ADDR_MAX];
};

/* Cached source list of one object. */
struct fetch_srcs {
	uint8_t id[SHA256_LEN];
	time_t fetched;
	int n;
	char addrs[FETCH_SOURCES_MAX][FETCH_ADDR_MAX];
};

struct fetcher {
	struct store *store;
	fetch_sources_fn sources;
	void *sources_arg;
	char self[FETCH_ADDR_MAX];

	pthread_mutex_t lock;
	bool enqueue_failed;		/* fetch_enqueue had no memory */
	pthread_cond_t done;		/* a job finished */
	pthread_cond_t verify;		/* a chunk arrived to be stored */
	pthread_t thread;
	pthread_t verifiers[FETCH_VERIFIERS];
	bool stop;
	CURLM *multi;

	struct fetch_job *jobs[FETCH_JOB_BUCKETS];
	struct fetch_job *qhead, *qtail;	/* to transfer */
	struct fetch_job *vhead, *vtail;	/* to verify and store */
	int running;

	struct fetch_peer *peers;
	size_t npeers;
	struct fetch_bad *bad;
	size_t nbad;
	struct fetch_srcs *srcs;
	size_t nsrcs;
	struct curl_slist *last_resort_hdr;

	/* chunk buffers kept for reuse: fresh ones would page-fault their
	 * way through every megabyte received */
	struct fetch_pooled { uint8_t *buf; size_t cap; } pool[FETCH_POOL];
	int npool;

	uint64_t fetched_chunks, fetched_bytes, failed_chunks, waits;
};

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
	if (*p)
		*p = j->hnext;
}

/* A buffer of at least len bytes, from the pool if one fits.  Lock held. */
static uint8_t *
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
static void
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
static void
fetch_job_put(struct fetch_job *j)
{
	if (--j->refs > 0)
		return;
	if (j->easy != NULL)
		curl_easy_cleanup(j->easy);
	fetch_buf_put(j->f, j->buf, j->cap);
	free(j);
}

/* Seconds on the monotonic clock. */
static double
fetch_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static struct fetch_peer *
fetch_peer(struct fetcher *f, const char *addr)
{
	struct fetch_peer *p;

	for (size_t i = 0; i < f->npeers; i++)
		if (strcmp(f->peers[i].addr, addr) == 0)
			return &f->peers[i];
	p = realloc(f->peers, (f->npeers + 1) * sizeof(*p));
	if (p == NULL)
		return NULL;
	f->peers = p;
	p = &f->peers[f->npeers++];
	memset(p, 0, sizeof(*p));
	snprintf(p->addr, sizeof(p->addr), "%s", addr);
	return p;
}

static bool
fetch_is_bad(struct fetcher *f, const uint8_t id[SHA256_LEN], const char *addr)
{
	for (size_t i = 0; i < f->nbad; i++)
		if (memcmp(f->bad[i].id, id, SHA256_LEN) == 0 &&
		    strcmp(f->bad[i].addr, addr) == 0)
			return true;
	return false;
}

static void
fetch_mark_bad(struct fetcher *f, const uint8_t id[SHA256_LEN],
	       const char *addr)
{
	struct fetch_bad *b;

	if (fetch_is_bad(f, id, addr))
		return;
	if ((b = realloc(f->bad, (f->nbad + 1) * sizeof(*b))) == NULL)
		return;
	f->bad = b;
	memcpy(f->bad[f->nbad].id, id, SHA256_LEN);
	snprintf(f->bad[f->nbad].addr, FETCH_ADDR_MAX, "%s", addr);
	f->nbad++;
}

static struct fetch_srcs *
fetch_srcs_find(struct fetcher *f, const uint8_t id[SHA256_LEN])
{
	for (size_t i = 0; i < f->nsrcs; i++)
		if (memcmp(f->srcs[i].id, id, SHA256_LEN) == 0)
			return &f->srcs[i];
	return NULL;
}

/* --- sources ------------------------------------------------------------ */

/* Make sure the sources of o are known (asks the authority at most every
 * FETCH_SOURCES_TTL_S).  Called without the lock. */
static void
fetch_refresh_sources(struct fetcher *f, const struct fetch_object *o)
{
	struct fetch_srcs *s, fresh;
	time_t now = time(NULL);
	int n;

	pthread_mutex_lock(&f->lock);
	s = fetch_srcs_find(f, o->id);
	if (s != NULL && now - s->fetched < FETCH_SOURCES_TTL_S && s->n > 0) {
		pthread_mutex_unlock(&f->lock);
		return;
	}
	pthread_mutex_unlock(&f->lock);

	memset(&fresh, 0, sizeof(fresh));
	n = f->sources(f->sources_arg, o->id, fresh.addrs, FETCH_SOURCES_MAX);
	if (n < 0)
		return;			/* keep what we knew */
	memcpy(fresh.id, o->id, SHA256_LEN);
	fresh.fetched = now;
	fresh.n = n;

	pthread_mutex_lock(&f->lock);
	if ((s = fetch_srcs_find(f, o->id)) == NULL) {
		void *p = realloc(f->srcs, (f->nsrcs + 1) * sizeof(*f->srcs));

		if (p != NULL) {
			f->srcs = p;
			s = &f->srcs[f->nsrcs++];
		}
	}
	if (s != NULL)
		*s = fresh;
	pthread_mutex_unlock(&f->lock);
}

/* Order of sources for a new job: not bad for the object, not ourselves;
 * unmeasured ones first (in random order, to spread load and learn their
 * speed), then the measured ones fastest first.  Sources down (a transfer
 * from them failed lately, FETCH_DOWN_S doubling per failure in a row) come
 * last, and are left out of a job's first round while any other is up: a
 * peer gone stays listed by the authority, and asked for every chunk it
 * would cost each a connect timeout.  Lock held. */
static void
fetch_job_sources(struct fetcher *f, struct fetch_job *j)
{
	struct fetch_srcs *s = fetch_srcs_find(f, j->obj->id);
	double speed[FETCH_SOURCES_MAX], now = fetch_now();
	int up = 0;

	j->naddrs = 0;
	if (s == NULL)
		return;
	for (int i = 0; i < s->n; i++) {
		struct fetch_peer *p;

		if (strcmp(s->addrs[i], f->self) == 0 ||
		    fetch_is_bad(f, j->obj->id, s->addrs[i]))
			continue;
		p = fetch_peer(f, s->addrs[i]);
		memcpy(j->addrs[j->naddrs], s->addrs[i], FETCH_ADDR_MAX);
		if (p != NULL && p->down_until > now) {
			speed[j->naddrs] = -(double)p->fails;
		} else {
			speed[j->naddrs] = p && p->speed > 0 ? p->speed
				: 1e18 + (double)(rand() % 1000);
			up++;
		}
		j->naddrs++;
	}
	/* insertion sort, fastest first: at most FETCH_SOURCES_MAX */
	for (int i = 1; i < j->naddrs; i++) {
		char a[FETCH_ADDR_MAX];
		double v = speed[i];
		int k = i;

		memcpy(a, j->addrs[i], FETCH_ADDR_MAX);
		while (k > 0 && speed[k - 1] < v) {
			speed[k] = speed[k - 1];
			memcpy(j->addrs[k], j->addrs[k - 1], FETCH_ADDR_MAX);
			k--;
		}
		speed[k] = v;
		memcpy(j->addrs[k], a, FETCH_ADDR_MAX);
	}
	/* the first time round, the down ones only when nobody else is up;
	 * in later rounds (every source busy or lacking it) last: a source
	 * down after one failure may be the only one with the chunk */
	if (up > 0 && j->rounds == 0)
		j->naddrs = up;
	j->next = 0;
}

static void
fetch_tried(struct fetch_job *j, const char *addr, const char *why)
{
	size_t n = strlen(j->tried);

	snprintf(j->tried + n, sizeof(j->tried) - n, "%s%s: %s",
		 n ? "; " : "", addr, why);
}

static void
fetch_queue_push(struct fetcher *f, struct fetch_job *j, bool front)
{
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
		fetch_job_sources(f, j);
		j->hnext = *fetch_bucket(f, hash);
		*fetch_bucket(f, hash) = j;
		fetch_queue_push(f, j, false);
		curl_multi_wakeup(f->multi);
	}
	if (want_ref)
		j->refs++;
	return j;
}

static size_t
fetch_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct fetch_job *j = arg;
	size_t n = size * nmemb;
	long status = 0;

	/* only a 200's body is the chunk: a 404's or 503's few words are not,
	 * and a short last chunk is shorter than they are ("more than the
	 * chunk" would make a peer that lacks it a liar) */
	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200)
		return n;
	if (j->got + n > j->len) {
		j->too_long = true;
		return 0;		/* aborts the transfer */
	}
	memcpy(j->buf + j->got, data, n);
	j->got += n;
	return n;
}

/* Fail a job: no source could give the chunk.  Lock held. */
static void
fetch_job_fail(struct fetcher *f, struct fetch_job *j)
{
	char hex[2 * SHA256_LEN + 1];

	hex_encode(j->hash, SHA256_LEN, hex);
	if (j->tried[0] == '\0')
		snprintf(j->tried, sizeof(j->tried), "no source is known");
	log_error("chunk %u (%.16s..) of %s: no valid copy; tried %s",
		  j->chunk, hex, j->obj->label, j->tried);
	j->state = JOB_FAILED;
	f->failed_chunks++;
	fetch_job_unlist(f, j);
	pthread_cond_broadcast(&f->done);
	fetch_job_put(j);
}

/* Find out whether the source at addr answers: a connect, in the
 * background, that no job waits on (fetch_probe_finished).  Fetch thread,
 * lock held. */
static void
fetch_probe_start(struct fetcher *f, struct fetch_peer *p)
{
	char url[FETCH_ADDR_MAX + 16];

	if (p->probe != NULL || (p->probe = curl_easy_init()) == NULL)
		return;
	snprintf(url, sizeof(url), "http://%s/", p->addr);
	curl_easy_setopt(p->probe, CURLOPT_URL, url);
	curl_easy_setopt(p->probe, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(p->probe, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(p->probe, CURLOPT_PROXY, "");
	curl_easy_setopt(p->probe, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(p->probe, CURLOPT_CONNECTTIMEOUT_MS, FETCH_CONNECT_MS);
	curl_multi_add_handle(f->multi, p->probe);
}

/* A source failed: asked last for a while, doubling per failure in a row.
 * Lock held. */
static void
fetch_peer_failed(struct fetch_peer *p)
{
	double down = FETCH_DOWN_S * (double)(1u << (p->fails < 6 ? p->fails : 6));

	p->errors++;
	p->fails++;
	p->down_until = fetch_now() + (down < FETCH_DOWN_MAX_S ? down
							       : FETCH_DOWN_MAX_S);
}

/* If easy is a probe, record what it found and say so.  Fetch thread,
 * lock not held. */
static bool
fetch_probe_finished(struct fetcher *f, CURL *easy, CURLcode rc)
{
	bool was = false;

	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->npeers && !was; i++) {
		struct fetch_peer *p = &f->peers[i];

		if (p->probe != easy)
			continue;
		was = true;
		p->alive = rc == CURLE_OK;
		if (rc != CURLE_OK)
			fetch_peer_failed(p);
		curl_multi_remove_handle(f->multi, easy);
		curl_easy_cleanup(easy);
		p->probe = NULL;
	}
	/* the jobs waiting for an answer may go now */
	for (struct fetch_job *j = f->qhead; was && j != NULL; j = j->qnext) {
		if (j->probing) {
			j->probing = false;
			memset(&j->not_before, 0, sizeof(j->not_before));
		}
	}
	pthread_mutex_unlock(&f->lock);
	return was;
}

/* Bring j's first source left that is known to answer to the front (the
 * others keep their order); failing that, probe those not known to,
 * unless down.  Returns whether one answers, and in *probing whether some
 * probe of j's sources is in flight.  Fetch thread, lock held. */
static bool
fetch_job_front(struct fetcher *f, struct fetch_job *j, bool *probing)
{
	double now = fetch_now();
	char a[FETCH_ADDR_MAX];
	int k;

	*probing = false;
	for (k = j->next; k < j->naddrs; k++) {
		const struct fetch_peer *p = fetch_peer(f, j->addrs[k]);

		if (!fetch_is_bad(f, j->obj->id, j->addrs[k]) &&
		    (p == NULL || p->alive))
			break;
	}
	if (k < j->naddrs) {
		if (k > j->next) {
			memcpy(a, j->addrs[k], FETCH_ADDR_MAX);
			memmove(j->addrs[j->next + 1], j->addrs[j->next],
				(size_t)(k - j->next) * FETCH_ADDR_MAX);
			memcpy(j->addrs[j->next], a, FETCH_ADDR_MAX);
		}
		return true;
	}
	for (k = j->next; k < j->naddrs; k++) {
		struct fetch_peer *p = fetch_peer(f, j->addrs[k]);

		if (p == NULL || fetch_is_bad(f, j->obj->id, j->addrs[k]))
			continue;
		if (p->probe == NULL && p->down_until <= now)
			fetch_probe_start(f, p);
		*probing |= p->probe != NULL;
	}
	return false;
}

/*
 * Which source a job asks next.  A peer that left stays listed by the
 * authority, and where its address drops packets a transfer sent there
 * waits out its connect timeout: the sixteen a sequential reader starts at
 * once would each wait on it, then on the next peer that left.  So a job
 * asks only sources known to answer (the job's order among them: untried
 * first, at random, then fastest); when none is left it probes the others
 * at once, all of them, and waits for the first answer.  Those that do
 * not answer are down for a while and asked only when nothing else is
 * left, as one of them may be the only holder.  Except when a holder said
 * busy in this round: then the job goes to the next round, which insists
 * on that holder (its last resort) rather than wait on one that may be
 * gone: an owner says busy to send readers to the peers that fetched the
 * chunk before, gone or not.  Fetch thread, lock held.
 */
enum fetch_pick { PICK_GO, PICK_WAIT, PICK_SKIP };

static enum fetch_pick
fetch_job_pick(struct fetcher *f, struct fetch_job *j)
{
	bool probing;

	if (fetch_job_front(f, j, &probing))
		return PICK_GO;
	if (j->busy > 0)
		return PICK_SKIP;
	return probing ? PICK_WAIT : PICK_GO;
}

/* Queue j to start again in ms milliseconds.  Lock held. */
static void
fetch_job_defer(struct fetcher *f, struct fetch_job *j, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, &j->not_before);
	j->not_before.tv_sec += ms / 1000;
	j->not_before.tv_nsec += (ms % 1000) * 1000000L;
	if (j->not_before.tv_nsec >= 1000000000L) {
		j->not_before.tv_sec++;
		j->not_before.tv_nsec -= 1000000000L;
	}
	fetch_queue_push(f, j, false);
}

/* Start the job's transfer from its next source; when none is left, wait
 * and go round again if some were only busy, else fail.  Fetch thread,
 * lock held. */
static void
fetch_job_start(struct fetcher *f, struct fetch_job *j)
{
	char url[FETCH_ADDR_MAX + 100], hex[2 * SHA256_LEN + 1];
	const char *addr;

	while (j->next < j->naddrs) {
		if (fetch_is_bad(f, j->obj->id, j->addrs[j->next])) {
			j->next++;
			continue;
		}
		switch (fetch_job_pick(f, j)) {
		case PICK_WAIT:
			j->probing = true;
			fetch_job_defer(f, j, FETCH_PROBE_WAIT_MS);
			return;
		case PICK_SKIP:
			j->next++;
			continue;
		case PICK_GO:
			break;
		}
		addr = j->addrs[j->next++];
		if (j->easy == NULL && (j->easy = curl_easy_init()) == NULL)
			break;
		if (j->buf == NULL &&
		    (j->buf = fetch_buf_get(f, j->len, &j->cap)) == NULL)
			break;
		j->got = 0;
		j->too_long = false;
		j->curl_err[0] = '\0';
		hex_encode(j->hash, SHA256_LEN, hex);
		snprintf(url, sizeof(url), "http://%s/objects/%s", addr, hex);
		curl_easy_reset(j->easy);
		curl_easy_setopt(j->easy, CURLOPT_URL, url);
		curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, fetch_write_cb);
		curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
		curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
		curl_easy_setopt(j->easy, CURLOPT_ERRORBUFFER, j->curl_err);
		curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(j->easy, CURLOPT_PROXY, "");
		curl_easy_setopt(j->easy, CURLOPT_CONNECTTIMEOUT_MS,
				 FETCH_CONNECT_MS);
		curl_easy_setopt(j->easy, CURLOPT_LOW_SPEED_LIMIT,
				 FETCH_LOW_SPEED_BYTES);
		curl_easy_setopt(j->easy, CURLOPT_LOW_SPEED_TIME,
				 FETCH_LOW_SPEED_S);
		curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, FETCH_TOTAL_MS);
		curl_easy_setopt(j->easy, CURLOPT_PROTOCOLS_STR, "http");
		curl_easy_setopt(j->easy, CURLOPT_BUFFERSIZE, FETCH_RECV_BUF);
		/* nobody else could give it last round: ask the busy ones to
		 * serve us anyway (see objsrv_spread_ok) */
		curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER,
				 j->last_resort ? f->last_resort_hdr : NULL);
		clock_gettime(CLOCK_MONOTONIC, &j->started);
		if (j->first_try == 0)
			j->first_try = j->started.tv_sec;
		j->state = JOB_RUNNING;
		curl_multi_add_handle(f->multi, j->easy);
		f->running++;
		return;
	}
	if (j->busy + j->absent > 0 && j->started.tv_sec - j->first_try <
	    FETCH_BUSY_DEADLINE_S) {
		/* some source has it coming or was busy: ask again later,
		 * in a fresh order (new holders may have appeared); if only
		 * busy sources hold it, tell them they are the last resort */
		long ms = FETCH_BACKOFF_MS << (j->rounds < 4 ? j->rounds : 4);
		bool insisted = j->last_resort;

		/* nobody alive lacks it: only busy sources hold it (the
		 * others are down or lied).  Waiting frees none of them, as
		 * they limit sends per window: insist at once.  One busy even
		 * so is at its cap of uploads at once: that frees up, wait */
		j->last_resort = j->absent == 0;
		if (j->absent == 0 && !insisted)
			ms = 0;
		j->rounds++;
		j->busy = 0;
		j->absent = 0;
		fetch_job_sources(f, j);
		fetch_job_defer(f, j, ms);
		return;
	}
	fetch_job_fail(f, j);
}

/* A transfer ended: hand a complete chunk to the verifiers, or move on.
 * Fetch thread, lock not held. */
static void
fetch_job_finished(struct fetcher *f, struct fetch_job *j, CURLcode rc)
{
	const char *addr = j->addrs[j->next - 1];
	long status = 0;
	char why[160];
	bool bad = false, busy = false;

	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
	pthread_mutex_lock(&f->lock);
	curl_multi_remove_handle(f->multi, j->easy);
	f->running--;
	{
		/* any HTTP answer, even 503 or a cut body, says it is there */
		struct fetch_peer *p = fetch_peer(f, addr);

		if (p != NULL)
			p->alive = status > 0;
	}
	if (rc == CURLE_OK && status == 200 && j->got == j->len) {
		/* verified and stored by a verifier thread */
		j->qnext = NULL;
		if (f->vtail)
			f->vtail->qnext = j;
		else
			f->vhead = j;
		f->vtail = j;
		pthread_cond_signal(&f->verify);
		pthread_mutex_unlock(&f->lock);
		return;
	}
	if (rc != CURLE_OK && !j->too_long) {
		snprintf(why, sizeof(why), "%.150s", j->curl_err[0] ?
			 j->curl_err : curl_easy_strerror(rc));
	} else if (j->too_long) {
		snprintf(why, sizeof(why), "sent more than the chunk's %u bytes",
			 j->len);
		bad = true;
	} else if (status == 404) {
		snprintf(why, sizeof(why), "does not hold it yet");
		busy = true;
	} else if (status == 503) {
		snprintf(why, sizeof(why), "busy");
		busy = true;
	} else if (status != 200) {
		snprintf(why, sizeof(why), "HTTP %ld", status);
	} else {
		snprintf(why, sizeof(why), "sent %zu bytes, the chunk has %u",
			 j->got, j->len);
		bad = true;
	}
	{
		struct fetch_peer *p = fetch_peer(f, addr);

		if (p != NULL && !busy)
			fetch_peer_failed(p);
		if (p != NULL && bad)
			p->bad_chunks++;
	}
	if (bad) {
		log_warn("chunk %u of %s from %s: %s; %s is now a bad source "
			 "for it", j->chunk, j->obj->label, addr, why, addr);
		fetch_mark_bad(f, j->obj->id, addr);
	}
	if (status == 404)
		j->absent++;
	else if (busy)
		j->busy++;
	else
		fetch_tried(j, addr, why);
	fetch_job_start(f, j);
	pthread_mutex_unlock(&f->lock);
}

/* A good chunk from addr could not be stored here (disk full of pinned
 * chunks, an I/O error): this peer's failure, not the source's, which is
 * not counted against it; the job fails, as another source's copy would
 * fail the same way.  Lock held. */
static void
fetch_store_failed(struct fetcher *f, struct fetch_job *j, const char *addr,
		   const struct err *e)
{
	log_warn("chunk %u of %s from %s: good, but not stored here: %s "
		 "(a local error, not the source's)", j->chunk, j->obj->label,
		 addr, e->msg);
	fetch_tried(j, "this peer's store", e->msg);
	fetch_job_fail(f, j);
}

/* Verifier thread: hash and store chunks as they arrive. */
static void *
fetch_verifier(void *arg)
{
	struct fetcher *f = arg;
	struct fetch_job *j;
	struct timespec now;
	struct err e;
	double secs;
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
		clock_gettime(CLOCK_MONOTONIC, &now);
		secs = (double)(now.tv_sec - j->started.tv_sec) +
		       (double)(now.tv_nsec - j->started.tv_nsec) / 1e9;

		pthread_mutex_lock(&f->lock);
		{
			const char *addr = j->addrs[j->next - 1];
			struct fetch_peer *p = fetch_peer(f, addr);

			if (rc == 0) {
				double v = secs > 0 ? (double)j->got / secs : 1e12;

				if (p != NULL) {
					p->fails = 0;
					p->down_until = 0;
					p->speed = p->speed > 0 ?
						0.7 * p->speed + 0.3 * v : v;
					p->bytes += j->got;
					p->chunks++;
				}
				f->fetched_chunks++;
				f->fetched_bytes += j->got;
				j->state = JOB_DONE;
				fetch_job_unlist(f, j);
				pthread_cond_broadcast(&f->done);
				fetch_job_put(j);
				continue;
			}
			if (rc == STORE_LOCAL_ERROR) {
				fetch_store_failed(f, j, addr, &e);
				continue;
			}
			if (p != NULL)
				p->errors++;
			if (rc == STORE_BAD_HASH) {
				if (p != NULL)
					p->bad_chunks++;
				log_warn("chunk %u of %s from %s: hash mismatch; "
					 "%s is now a bad source for it",
					 j->chunk, j->obj->label, addr, addr);
				fetch_mark_bad(f, j->obj->id, addr);
				fetch_tried(j, addr, "hash mismatch");
			} else {
				fetch_tried(j, addr, e.msg);
			}
			/* the fetch thread tries the next source */
			fetch_queue_push(f, j, true);
			curl_multi_wakeup(f->multi);
		}
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

static void *
fetch_loop(void *arg)
{
	struct fetcher *f = arg;
	struct timespec now;
	CURLMsg *msg;
	int still, left, wait_ms, ended;

	pthread_setname_np(pthread_self(), "fed-fetch");
	for (;;) {
		pthread_mutex_lock(&f->lock);
		if (f->stop) {
			pthread_mutex_unlock(&f->lock);
			break;
		}
		/* start what may go; jobs waiting out a backoff stay queued */
		clock_gettime(CLOCK_MONOTONIC, &now);
		wait_ms = 1000;
		{
			struct fetch_job **pp = &f->qhead, *prev = NULL;

			while (*pp != NULL && f->running < FETCH_PARALLEL) {
				struct fetch_job *j = *pp;

				if (!fetch_ready(j, &now)) {
					long ms = (j->not_before.tv_sec -
						   now.tv_sec) * 1000 +
						  (j->not_before.tv_nsec -
						   now.tv_nsec) / 1000000 + 1;

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
				fetch_job_start(f, j);
			}
		}
		pthread_mutex_unlock(&f->lock);

		curl_multi_perform(f->multi, &still);
		ended = 0;
		while ((msg = curl_multi_info_read(f->multi, &left)) != NULL) {
			struct fetch_job *j = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			ended++;
			if (fetch_probe_finished(f, msg->easy_handle,
						 msg->data.result))
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  (char **)&j);
			fetch_job_finished(f, j, msg->data.result);
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
	curl_multi_setopt(f->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			  (long)FETCH_PARALLEL);
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
	/* abandon what is left: readers are gone when fedfs stops */
	for (int b = 0; b < FETCH_JOB_BUCKETS; b++) {
		struct fetch_job *j = f->jobs[b], *next;

		for (; j; j = next) {
			next = j->hnext;
			if (j->easy) {
				curl_multi_remove_handle(f->multi, j->easy);
				curl_easy_cleanup(j->easy);
			}
			free(j->buf);
			free(j);
		}
	}
	for (size_t i = 0; i < f->npeers; i++) {
		if (f->peers[i].probe != NULL) {
			curl_multi_remove_handle(f->multi, f->peers[i].probe);
			curl_easy_cleanup(f->peers[i].probe);
		}
	}
	for (int i = 0; i < f->npool; i++)
		free(f->pool[i].buf);
	curl_multi_cleanup(f->multi);
	curl_slist_free_all(f->last_resort_hdr);
	pthread_cond_destroy(&f->verify);
	pthread_cond_destroy(&f->done);
	pthread_mutex_destroy(&f->lock);
	free(f->peers);
	free(f->bad);
	free(f->srcs);
	free(f);
}

int
fetcher_get(struct fetcher *f, const struct fetch_object *o, uint32_t i,
	    uint32_t ahead, struct err *e)
{
	struct fetch_job *j;
	int rc = 0, retries = 0;

	if (i >= o->index->nchunks)
		return err_set(e, "chunk %u of %s does not exist", i, o->label);
	if (store_has(f->store, o->index->chunks[i]) && ahead == 0)
		return 0;
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
			until.tv_sec += FETCH_SOURCES_TTL_S;
			if (pthread_cond_timedwait(&f->done, &f->lock,
						   &until) == ETIMEDOUT) {
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
		fetch_job_put(j);
	}
	pthread_mutex_unlock(&f->lock);
	return rc;
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

json_t *
fetcher_status(struct fetcher *f)
{
	json_t *j = json_object(), *peers = json_array(), *bad = json_array();
	char hex[2 * SHA256_LEN + 1];
	double now = fetch_now();

	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->npeers; i++) {
		struct fetch_peer *p = &f->peers[i];

		json_array_append_new(peers, json_pack(
		    "{s:s,s:I,s:I,s:I,s:I,s:f,s:b}", "addr", p->addr,
		    "bytes", (json_int_t)p->bytes, "chunks", (json_int_t)p->chunks,
		    "errors", (json_int_t)p->errors,
		    "bad_chunks", (json_int_t)p->bad_chunks,
		    "bytes_per_second", p->speed,
		    "down", p->down_until > now));
	}
	for (size_t i = 0; i < f->nbad; i++) {
		hex_encode(f->bad[i].id, SHA256_LEN, hex);
		json_array_append_new(bad, json_pack("{s:s,s:s}", "addr",
		    f->bad[i].addr, "object", hex));
	}
	json_object_set_new(j, "sources", peers);
	json_object_set_new(j, "bad_sources", bad);
	json_object_set_new(j, "fetched_chunks", json_integer((json_int_t)f->fetched_chunks));
	json_object_set_new(j, "fetched_bytes", json_integer((json_int_t)f->fetched_bytes));
	json_object_set_new(j, "failed_chunks", json_integer((json_int_t)f->failed_chunks));
	json_object_set_new(j, "in_flight", json_integer(f->running));
	pthread_mutex_unlock(&f->lock);
	return j;
}

char *
fetcher_metrics(struct fetcher *f, size_t *len)
{
	char *buf = NULL;
	size_t cap = 0;
	FILE *m = open_memstream(&buf, &cap);

	if (m == NULL)
		return NULL;
	pthread_mutex_lock(&f->lock);
	fprintf(m, "# TYPE fedfs_fetched_chunks_total counter\n"
		"fedfs_fetched_chunks_total %" PRIu64 "\n"
		"# TYPE fedfs_fetched_bytes_total counter\n"
		"fedfs_fetched_bytes_total %" PRIu64 "\n"
		"# TYPE fedfs_failed_chunks_total counter\n"
		"fedfs_failed_chunks_total %" PRIu64 "\n"
		"# TYPE fedfs_source_bytes_total counter\n",
		f->fetched_chunks, f->fetched_bytes, f->failed_chunks);
	for (size_t i = 0; i < f->npeers; i++)
		fprintf(m, "fedfs_source_bytes_total{source=\"%s\"} %" PRIu64 "\n",
			f->peers[i].addr, f->peers[i].bytes);
	fprintf(m, "# TYPE fedfs_source_errors_total counter\n");
	for (size_t i = 0; i < f->npeers; i++)
		fprintf(m, "fedfs_source_errors_total{source=\"%s\"} %" PRIu64 "\n",
			f->peers[i].addr, f->peers[i].errors);
	fprintf(m, "# TYPE fedfs_bad_sources gauge\nfedfs_bad_sources %zu\n",
		f->nbad);
	pthread_mutex_unlock(&f->lock);
	fclose(m);
	*len = cap;
	return buf;
}
