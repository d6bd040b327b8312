/*
 * fetch_int.h - what the fetcher's files share (not for the rest of fedfs).
 *
 * The fetcher is three files, one per concern:
 *
 *   fetch.c        jobs (one per chunk hash), the queue, the fetch thread's
 *                  loop, the verifiers and the public functions of fetch.h
 *   fetch_race.c   tries: the transfers of a job, raced a few at once over
 *                  its sources (a stagger, a first-byte deadline), probes,
 *                  and what a try's end says of its source
 *   fetch_peers.c  what is known of sources across jobs: speed, down with
 *                  backoff, bad for an object; cached source lists; the
 *                  figures of .status and /metrics
 *
 * Locks: one, f->lock, guards everything below that says "lock"; the curl
 * multi handle and each try's curl handle and buffer belong to the fetch
 * thread (curl callbacks run on it, outside the lock).  store_put and the
 * sources and liar callbacks run without the lock.  No other lock is taken
 * while f->lock is held, except the store's own (store_has).
 */
#ifndef FED_FEDFS_FETCH_INT_H
#define FED_FEDFS_FETCH_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <curl/curl.h>

#include "fedfs/fetch.h"

/* A try that has not had a byte of an answer (connect included) this long
 * is cut off: a source that accepts and stalls (a stopped process, a
 * machine that stopped scheduling it) costs a reader this, not the
 * low-speed limit. */
#define FETCH_FIRST_BYTE_MS 1000L
/* A job whose tries have had no answer this long starts one more, on its
 * next source (happy eyeballs); a try that fails starts the next at once. */
#define FETCH_STAGGER_MS 200L
#define FETCH_RACE 3			/* tries of one job in flight, at most */
/* tries in flight: FETCH_PARALLEL first tries of jobs, and this many more
 * for the races (a job's second try must not wait for another's first) */
#define FETCH_RACE_EXTRA 8
#define FETCH_TRIES_MAX (FETCH_PARALLEL + FETCH_RACE_EXTRA)
#define FETCH_PROBE_WAIT_MS 50		/* at most, for a probe's answer */
#define FETCH_LOW_SPEED_BYTES 4096L	/* below this many bytes/s ... */
#define FETCH_LOW_SPEED_S 3L		/* ... for this long: give up */
#define FETCH_TOTAL_MS 60000L
/* libcurl's receive buffer: its 16 KiB default made a 1 MiB chunk 64
 * recv() and 64 poll() calls on the one fetch thread; 512 KiB is the most
 * it takes */
#define FETCH_RECV_BUF (512L << 10)
#define FETCH_SOURCES_TTL_S 2.0	/* holders appear as peers start reading */
/* A job whose only holders said busy, on a list of them asked for before
 * its round began, asks for it anew and waits this long before insisting */
#define FETCH_SOURCES_ANEW_MS 100L
#define FETCH_JOB_BUCKETS 1024
#define FETCH_TRIED_MAX 600
#define FETCH_VERIFIERS 4		/* threads hashing and storing chunks */
#define FETCH_POOL 64			/* chunk buffers kept for reuse */
#define FETCH_BUSY_DEADLINE_S 20	/* keep asking busy sources this long */
#define FETCH_BACKOFF_MS 100		/* first wait when every source was busy */
/* a source that failed: not asked for this long, doubling per failure in
 * a row.  Twice the first-byte deadline: finding a source dead takes one,
 * and a read the kernel retries at once must find it still down */
#define FETCH_DOWN_S 2.0
#define FETCH_DOWN_MAX_S 16.0		/* ... doubling per failure, up to this */
#define FETCH_OBJECTS_MAX 64		/* objects whose fetches are counted */
#define FETCH_LOG_EVERY_S 10.0		/* cut-off lines: at most one per */

enum fetch_state {
	JOB_QUEUED,			/* in the queue, to start (again) */
	JOB_RUNNING,			/* tries in flight, none complete */
	JOB_VERIFYING,			/* a complete copy is with a verifier */
	JOB_DONE, JOB_FAILED
};

struct fetch_job;

/* One transfer of a job's chunk from one source. */
struct fetch_try {
	struct fetch_job *job;		/* holds a reference on it */
	CURL *easy;
	char addr[FETCH_ADDR_MAX];
	uint8_t *buf;			/* from the pool */
	size_t cap, got;
	bool too_long;
	bool answered;			/* a header arrived: the source is there */
	double started;			/* mono_now() */
	char curl_err[CURL_ERROR_SIZE];
	struct fetch_try *next;		/* f->tries; lock */
};

/* Fields are under f->lock, but for buf..from, which the verifier holding
 * the job (JOB_VERIFYING) owns. */
struct fetch_job {
	struct fetcher *f;
	uint8_t hash[SHA256_LEN];
	const struct fetch_object *obj;
	uint32_t chunk, len;
	enum fetch_state state;
	int refs;			/* waiters, tries, one while unfinished */
	char addrs[FETCH_SOURCES_MAX][FETCH_ADDR_MAX];
	int naddrs, next;		/* sources for this job, next to try */
	char tried[FETCH_TRIED_MAX];	/* "a: timeout; b: hash mismatch" */
	int ntries;			/* tries in flight */
	double next_race;		/* mono_now() when one more may start */
	/* the complete copy, handed from its try to a verifier */
	uint8_t *buf;
	size_t cap, got;
	int fd;				/* the stored chunk, open; -1 till then */
	double started;			/* its try's start, for the speed */
	char from[FETCH_ADDR_MAX];	/* its source */
	time_t first_try;		/* for the busy deadline */
	double round_began;		/* mono_now(): created, or its last round
					 * ended (the next began to wait) */
	bool sources_due;		/* re-read its sources as it next starts */
	bool asked_anew;		/* it asked for its sources anew */
	int busy;			/* sources busy (503) in this round */
	int absent;			/* live sources without it yet (404) */
	bool last_resort;		/* only busy sources can give it */
	bool probing;			/* waits for a probe's answer */
	int rounds;			/* rounds that found all busy */
	struct timespec not_before;	/* when a waiting job may go again */
	struct fetch_job *hnext;	/* job table chain */
	struct fetch_job *qnext;	/* queue, verify queue */
	struct fetch_job *rnext;	/* f->racing: JOB_RUNNING */
};

/* What is known of one source address, across objects.  Lock. */
struct fetch_peer {
	char addr[FETCH_ADDR_MAX];
	double speed;			/* bytes/s, EWMA; 0: not measured */
	uint64_t bytes, chunks, errors, bad_chunks, cut;
	unsigned fails;			/* transfers failed in a row */
	double down_until;		/* mono_now(): not asked till then */
	char why[96];			/* its last failure */
	bool alive;			/* it answered its last probe or transfer */
	CURL *probe;			/* a connect to find out, or NULL */
};

/* "source addr gave a bad chunk of object id": never ask it again. */
struct fetch_bad {
	uint8_t id[SHA256_LEN];
	char addr[FETCH_ADDR_MAX];
};

/* Cached source list of one object.  Lock. */
struct fetch_srcs {
	uint8_t id[SHA256_LEN];
	double fetched;			/* mono_now() when it was asked for */
	bool wanted;			/* a job asks for it anew, TTL or not */
	bool asking;			/* a reader thread is asking for it */
	int n;
	char addrs[FETCH_SOURCES_MAX][FETCH_ADDR_MAX];
};

struct fetcher {
	struct store *store;
	fetch_sources_fn sources;
	void *sources_arg;
	fetch_liar_fn liar;		/* set before the first fetch */
	void *liar_arg;
	/* A source caught sending a wrong-length copy, to be reported once the
	 * fetch thread lets go of the lock (fetch_try_finished); lock */
	struct fetch_liar wrong_length;
	bool wrong_length_pending;
	char self[FETCH_ADDR_MAX];

	pthread_mutex_t lock;
	bool enqueue_failed;		/* fetch_enqueue had no memory; lock */
	pthread_cond_t done;		/* a job finished */
	pthread_cond_t verify;		/* a chunk arrived to be stored */
	pthread_t thread;
	pthread_t verifiers[FETCH_VERIFIERS];
	bool stop;			/* lock */
	CURLM *multi;			/* fetch thread (wakeup: any) */

	/* all lock: */
	struct fetch_job *jobs[FETCH_JOB_BUCKETS];
	int njobs;				/* listed in jobs */
	struct fetch_job *qhead, *qtail;	/* to start */
	struct fetch_job *vhead, *vtail;	/* to verify and store */
	struct fetch_job *racing;		/* JOB_RUNNING */
	struct fetch_try *tries;		/* in flight */
	int running;				/* how many */

	struct fetch_peer *peers;	/* lock */
	size_t npeers;
	struct fetch_bad *bad;		/* lock */
	size_t nbad;
	struct fetch_srcs *srcs;	/* lock */
	size_t nsrcs;
	struct curl_slist *last_resort_hdr;

	/* chunk buffers kept for reuse: fresh ones would page-fault their
	 * way through every megabyte received; lock */
	struct fetch_pooled { uint8_t *buf; size_t cap; } pool[FETCH_POOL];
	int npool;

	/* What was fetched of each object (the most recent FETCH_OBJECTS_MAX
	 * objects fetched from; an older one's figures go): lock */
	struct fetch_objstat {
		uint8_t id[SHA256_LEN];
		char label[80];
		uint64_t size;			/* the object's, from its index */
		uint64_t chunks, bytes;		/* fetched and verified */
		double last;			/* mono_now() of the last */
	} objstats[FETCH_OBJECTS_MAX];
	size_t nobjstats;

	/* lock: */
	uint64_t fetched_chunks, fetched_bytes, failed_chunks, waits;
	uint64_t cut_total, cut_unlogged;	/* tries cut off, not yet said */
	double cut_logged;			/* when last said */
};

/* fetch.c */
uint8_t *fetch_buf_get(struct fetcher *f, size_t len, size_t *cap);
void fetch_buf_put(struct fetcher *f, uint8_t *buf, size_t cap);
void fetch_job_put(struct fetch_job *j);
void fetch_job_fail(struct fetcher *f, struct fetch_job *j);
void fetch_job_defer(struct fetcher *f, struct fetch_job *j, long ms);
void fetch_queue_push(struct fetcher *f, struct fetch_job *j, bool front);
void fetch_verify_push(struct fetcher *f, struct fetch_job *j);
void fetch_tried(struct fetch_job *j, const char *addr, const char *why);

/* fetch_race.c (fetch thread, lock held unless said) */
void fetch_job_start(struct fetcher *f, struct fetch_job *j);
int fetch_race_scan(struct fetcher *f, double now);
void fetch_try_finished(struct fetcher *f, CURL *easy, CURLcode rc);
void fetch_race_stop(struct fetcher *f);

/* fetch_peers.c (lock held unless said) */
struct fetch_peer *fetch_peer(struct fetcher *f, const char *addr);
/* Count bytes fetched of object o.  Lock held. */
void fetch_count_object(struct fetcher *f, const struct fetch_object *o,
			uint64_t bytes);
/* The evidence against addr, which sent buf (got bytes) for chunk j. */
void fetch_liar_evidence(struct fetch_liar *l, const struct fetch_job *j,
			 const char *addr, const void *buf, size_t got);
bool fetch_is_bad(struct fetcher *f, const uint8_t id[SHA256_LEN],
		  const char *addr);
void fetch_mark_bad(struct fetcher *f, const uint8_t id[SHA256_LEN],
		    const char *addr);
bool fetch_peer_down(const struct fetch_peer *p, double now);
void fetch_peer_failed(struct fetcher *f, struct fetch_peer *p,
		       const char *why);
void fetch_peer_cut(struct fetcher *f, struct fetch_peer *p, double now);
void fetch_job_sources(struct fetcher *f, struct fetch_job *j);
void fetch_tried_down(struct fetcher *f, struct fetch_job *j, int from,
		      int to);
void fetch_refresh_sources(struct fetcher *f, const struct fetch_object *o);
/* Is a fresh source list of o wanted by a job (fetch_sources_fresh)?
 * Lock held. */
bool fetch_sources_wanted(struct fetcher *f, const struct fetch_object *o);
/* May j, whose only holders said busy, insist on them now?  Yes if its
 * list was asked for since its round began, or it asked anew before; if
 * not, the list is wanted anew and waiting threads are woken to ask.
 * Lock held. */
bool fetch_sources_fresh(struct fetcher *f, struct fetch_job *j);
void fetch_peers_free(struct fetcher *f);

#endif
