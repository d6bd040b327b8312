/*
 * fetch_race.c - a job's tries: its chunk asked of several sources, raced
 * (see fetch_int.h for the files of the fetcher).
 *
 *   t=0      try 1 on the best source known to answer
 *   +200 ms  no answer yet: try 2 on the next one (FETCH_STAGGER_MS)
 *   +400 ms  still none: try 3 (at most FETCH_RACE at once)
 *   a try fails (refused, reset, an HTTP error): the next starts at once
 *   a try has no answer within FETCH_FIRST_BYTE_MS: cut off, its source
 *            down (fetch_peers.c), the next starts at once
 *   the first complete copy goes to a verifier; other tries that answered
 *   are dropped (they are alive, only slower); those that have not
 *   answered run to their deadline, so that a source that accepts and
 *   stalls is found out and not asked again, by this job or any other.
 *
 * "Known to answer": a job asks first the sources whose last probe or
 * transfer answered; when none of those is left, it probes the others at
 * once (a connect, in parallel, bounded by the same deadline) and waits
 * for the first to answer.  A source that does not is down.  So a dead
 * network costs one probe deadline whatever the number of sources, and
 * sources are never waited on one after another.
 *
 * Busy (503) and not yet held (404) are answers, not failures: when every
 * source of a round said so, the job goes round again (fetch.c's header
 * comment); that is decided here too, when its last try has ended.
 *
 * Everything here runs on the fetch thread with f->lock held, but
 * fetch_try_finished, which takes it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "fedfs/fetch_int.h"

enum fetch_next { NEXT_STARTED, NEXT_WAIT, NEXT_NONE };

/* --- transfers ---------------------------------------------------------- */

static size_t
fetch_header_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct fetch_try *t = arg;

	(void)data;
	t->answered = true;
	return size * nmemb;
}

static size_t
fetch_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct fetch_try *t = arg;
	size_t n = size * nmemb;
	long status = 0;

	/* only a 200's body is the chunk: a 404's or 503's few words are not,
	 * and a short last chunk is shorter than they are ("more than the
	 * chunk" would make a peer that lacks it a liar) */
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200)
		return n;
	if (t->got + n > t->job->len) {
		t->too_long = true;
		return 0;		/* aborts the transfer */
	}
	memcpy(t->buf + t->got, data, n);
	t->got += n;
	return n;
}

static void
fetch_try_setopt(struct fetcher *f, struct fetch_try *t, const char *url)
{
	CURL *h = t->easy;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, fetch_header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fetch_write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(h, CURLOPT_PRIVATE, t);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t->curl_err);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, FETCH_FIRST_BYTE_MS);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, FETCH_LOW_SPEED_BYTES);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, FETCH_LOW_SPEED_S);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, FETCH_TOTAL_MS);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, FETCH_RECV_BUF);
	/* nobody else could give it last round: ask the busy ones to serve
	 * us anyway (see objsrv_spread_ok) */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER,
			 t->job->last_resort ? f->last_resort_hdr : NULL);
}

/* Start a try of j from addr.  Returns 0, or -1 (no memory). */
static int
fetch_try_start(struct fetcher *f, struct fetch_job *j, const char *addr)
{
	char url[FETCH_ADDR_MAX + 100], hex[2 * SHA256_LEN + 1];
	struct fetch_try *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	if ((t->easy = curl_easy_init()) == NULL ||
	    (t->buf = fetch_buf_get(f, j->len, &t->cap)) == NULL) {
		if (t->easy != NULL)
			curl_easy_cleanup(t->easy);
		free(t);
		return -1;
	}
	t->job = j;
	snprintf(t->addr, sizeof(t->addr), "%s", addr);
	hex_encode(j->hash, SHA256_LEN, hex);
	snprintf(url, sizeof(url), "http://%s/objects/%s", addr, hex);
	fetch_try_setopt(f, t, url);
	t->started = mono_now();
	if (j->first_try == 0)
		j->first_try = time(NULL);
	j->refs++;
	j->ntries++;
	t->next = f->tries;
	f->tries = t;
	f->running++;
	curl_multi_add_handle(f->multi, t->easy);
	return 0;
}

/* Take t out of flight and free it (its job loses a reference). */
static void
fetch_try_free(struct fetcher *f, struct fetch_try *t)
{
	struct fetch_try **p = &f->tries;

	while (*p != NULL && *p != t)
		p = &(*p)->next;
	if (*p != NULL)
		*p = t->next;
	curl_multi_remove_handle(f->multi, t->easy);
	curl_easy_cleanup(t->easy);
	fetch_buf_put(f, t->buf, t->cap);
	f->running--;
	t->job->ntries--;
	fetch_job_put(t->job);
	free(t);
}

/* Has a try of j in flight had an answer? */
static bool
fetch_job_answered(const struct fetcher *f, const struct fetch_job *j)
{
	for (const struct fetch_try *t = f->tries; t != NULL; t = t->next)
		if (t->job == j && t->answered)
			return true;
	return false;
}

/* --- probes ------------------------------------------------------------- */

/* Find out whether the source at p answers: a connect, in the background,
 * that no job waits on (fetch_probe_finished). */
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
	curl_easy_setopt(p->probe, CURLOPT_CONNECTTIMEOUT_MS,
			 FETCH_FIRST_BYTE_MS);
	curl_multi_add_handle(f->multi, p->probe);
}

/* If easy is a probe, record what it found and say so. */
static bool
fetch_probe_finished(struct fetcher *f, CURL *easy, CURLcode rc)
{
	bool was = false;

	for (size_t i = 0; i < f->npeers && !was; i++) {
		struct fetch_peer *p = &f->peers[i];

		if (p->probe != easy)
			continue;
		was = true;
		if (rc == CURLE_OK)
			p->alive = true;
		else
			fetch_peer_failed(f, p, curl_easy_strerror(rc));
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
	for (struct fetch_job *j = f->racing; was && j != NULL; j = j->rnext)
		j->next_race = 0;
	return was;
}

/* --- which source next -------------------------------------------------- */

/* Move j's source k to position j->next (the others keep their order). */
static void
fetch_job_front(struct fetch_job *j, int k)
{
	char a[FETCH_ADDR_MAX];

	if (k <= j->next)
		return;
	memcpy(a, j->addrs[k], FETCH_ADDR_MAX);
	memmove(j->addrs[j->next + 1], j->addrs[j->next],
		(size_t)(k - j->next) * FETCH_ADDR_MAX);
	memcpy(j->addrs[j->next], a, FETCH_ADDR_MAX);
}

/*
 * Bring the source j asks next to j->next.  First a source known to
 * answer; failing that, the others are probed, all at once, and the job
 * waits for the first answer (NEXT_WAIT).  In a job's first round a
 * source down is never asked (fetch_job_sources left those out, and one
 * may have gone down since); in later rounds one is, when nothing else is
 * left, but not while a holder said busy in this round: then the job goes
 * to the next round, which insists on that holder (its last resort) rather
 * than wait on one that may be gone: an owner says busy to send readers to
 * the peers that fetched the chunk before, gone or not.  A source never
 * heard from is not down, though: it is probed even then, as it is most
 * often a peer that started reading just now, and the one to ask.
 */
static enum fetch_next
fetch_job_pick(struct fetcher *f, struct fetch_job *j)
{
	double now = mono_now();
	bool probing = false;
	int k, any = -1;

	for (k = j->next; k < j->naddrs; k++) {
		const struct fetch_peer *p = fetch_peer(f, j->addrs[k]);

		if (fetch_is_bad(f, j->obj->id, j->addrs[k]) ||
		    (j->rounds == 0 && fetch_peer_down(p, now)))
			continue;
		if (p == NULL || p->alive) {
			fetch_job_front(j, k);
			return NEXT_STARTED;
		}
		if (any < 0)
			any = k;
	}
	if (any < 0)
		return NEXT_NONE;
	for (k = any; k < j->naddrs; k++) {
		struct fetch_peer *p = fetch_peer(f, j->addrs[k]);

		if (p == NULL || fetch_is_bad(f, j->obj->id, j->addrs[k]))
			continue;
		if (p->probe == NULL && !fetch_peer_down(p, now))
			fetch_probe_start(f, p);
		probing |= p->probe != NULL;
	}
	if (probing)
		return NEXT_WAIT;
	if (j->busy > 0 || j->rounds == 0)
		return NEXT_NONE;
	fetch_job_front(j, any);	/* down, but maybe the only holder */
	return NEXT_STARTED;
}

/* Start one more try of j if a source is left.  NEXT_WAIT: wait for a
 * probe, or for a free transfer slot. */
static enum fetch_next
fetch_job_next(struct fetcher *f, struct fetch_job *j)
{
	enum fetch_next n;

	if (f->running >= FETCH_TRIES_MAX)
		return NEXT_WAIT;
	n = fetch_job_pick(f, j);
	if (n != NEXT_STARTED) {
		if (n == NEXT_NONE && j->rounds == 0)
			fetch_tried_down(f, j, j->next, j->naddrs);
		if (n == NEXT_NONE)
			j->next = j->naddrs;
		return n;
	}
	if (fetch_try_start(f, j, j->addrs[j->next]) == -1)
		return NEXT_WAIT;
	j->next++;
	return NEXT_STARTED;
}

/* Make j racing (JOB_RUNNING, on f->racing), to race again at when. */
static void
fetch_job_racing(struct fetcher *f, struct fetch_job *j, double when)
{
	if (j->state != JOB_RUNNING) {
		j->state = JOB_RUNNING;
		j->rnext = f->racing;
		f->racing = j;
	}
	j->next_race = when;
}

/* No source left in this round and nothing in flight: go round again if
 * some were only busy or lacked it, else fail. */
static void
fetch_job_round_end(struct fetcher *f, struct fetch_job *j)
{
	long ms;
	bool insisted = j->last_resort;

	if (j->busy + j->absent == 0 ||
	    time(NULL) - j->first_try >= FETCH_BUSY_DEADLINE_S) {
		fetch_job_fail(f, j);
		return;
	}
	/* some source has it coming or was busy: ask again later, in a
	 * fresh order, from the list as it is then (new holders appear as
	 * peers read; fetch_start_queued reads it); if only busy sources
	 * hold it, tell them they are the last resort.  Nobody alive lacks
	 * it: only busy sources hold it (the others are down or lied).
	 * Waiting frees none of them, as they limit sends per window: insist
	 * at once, on a list of holders asked for since the job began (see
	 * fetch_sources_fresh).  One busy even so is at its cap of uploads
	 * at once: that frees up, wait */
	ms = FETCH_BACKOFF_MS << (j->rounds < 4 ? j->rounds : 4);
	j->last_resort = j->absent == 0;
	if (j->absent == 0 && !insisted) {
		if (fetch_sources_fresh(f, j))
			ms = 0;
		else {
			j->last_resort = false;
			ms = FETCH_SOURCES_ANEW_MS;
		}
	}
	j->rounds++;
	j->round_began = mono_now();
	j->busy = 0;
	j->absent = 0;
	j->sources_due = true;
	fetch_job_defer(f, j, ms);
}

/* Start (or go on with) j, queued or with its tries all failed. */
void
fetch_job_start(struct fetcher *f, struct fetch_job *j)
{
	double now = mono_now();

	switch (fetch_job_next(f, j)) {
	case NEXT_STARTED:
		fetch_job_racing(f, j, now + FETCH_STAGGER_MS / 1000.0);
		return;
	case NEXT_WAIT:
		if (j->ntries > 0) {
			fetch_job_racing(f, j, now + FETCH_PROBE_WAIT_MS / 1000.0);
		} else {
			j->probing = true;
			fetch_job_defer(f, j, FETCH_PROBE_WAIT_MS);
		}
		return;
	case NEXT_NONE:
		if (j->ntries > 0)
			fetch_job_racing(f, j, 1e300);	/* till one ends */
		else
			fetch_job_round_end(f, j);
		return;
	}
}

/* --- ends of tries ------------------------------------------------------ */

/* t's source sent a copy of the wrong length: the evidence (what it sent,
 * hashed; for one too long, its first bytes) kept to be reported as for a
 * copy that fails its hash.  Lock held. */
static void
fetch_hold_wrong_length(struct fetcher *f, const struct fetch_try *t)
{
	fetch_liar_evidence(&f->wrong_length, t->job, t->addr, t->buf, t->got);
	f->wrong_length_pending = true;
}

/* What the end of a try that did not bring the chunk says of its source
 * (cut: no answer within the deadline); counted in its job if the job
 * still races. */
static void
fetch_try_judge(struct fetcher *f, struct fetch_try *t, CURLcode rc,
		long status, bool cut)
{
	struct fetch_job *j = t->job;
	struct fetch_peer *p = fetch_peer(f, t->addr);
	bool bad = false, busy = false;
	char why[160];

	if (cut) {
		snprintf(why, sizeof(why), "no answer within %ld ms",
			 FETCH_FIRST_BYTE_MS);
	} else if (t->too_long) {
		snprintf(why, sizeof(why), "sent more than the chunk's %u bytes",
			 j->len);
		bad = true;
	} else if (rc != CURLE_OK) {
		snprintf(why, sizeof(why), "%.150s", t->curl_err[0] ?
			 t->curl_err : curl_easy_strerror(rc));
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
			 t->got, j->len);
		bad = true;
	}
	if (p != NULL) {
		if (cut)
			fetch_peer_cut(f, p, mono_now());
		else if (!busy)
			fetch_peer_failed(f, p, why);
		else
			p->alive = true;
		if (bad)
			p->bad_chunks++;
	}
	if (bad && f->liar != NULL && !fetch_is_bad(f, j->obj->id, t->addr))
		fetch_hold_wrong_length(f, t);
	if (bad) {
		log_warn("chunk %u of %s from %s: %s; %s is now a bad source "
			 "for it", j->chunk, j->obj->label, t->addr, why,
			 t->addr);
		fetch_mark_bad(f, j->obj->id, t->addr);
	}
	if (j->state != JOB_RUNNING)
		return;			/* late: the job has its copy */
	if (status == 404 && !cut && rc == CURLE_OK)
		j->absent++;
	else if (busy)
		j->busy++;
	else
		fetch_tried(j, t->addr, why);
}

/* A try ended (or was cut): the chunk to a verifier, or on to the next
 * source. */
static void
fetch_try_ended(struct fetcher *f, struct fetch_try *t, CURLcode rc, bool cut)
{
	struct fetch_job *j = t->job;
	long status = 0;

	if (!cut)
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	if (!cut && rc == CURLE_OK && status == 200 && t->got == j->len &&
	    !t->too_long) {
		if (j->state == JOB_RUNNING) {
			/* the winner: its buffer goes with the job */
			j->buf = t->buf;
			j->cap = t->cap;
			j->got = t->got;
			j->started = t->started;
			snprintf(j->from, sizeof(j->from), "%s", t->addr);
			t->buf = NULL;
			fetch_verify_push(f, j);
		}
		fetch_try_free(f, t);
		return;
	}
	fetch_try_judge(f, t, rc, status, cut);
	fetch_try_free(f, t);
	if (j->state != JOB_RUNNING)
		return;
	if (j->ntries == 0)
		fetch_job_start(f, j);
	else if (!fetch_job_answered(f, j))
		j->next_race = 0;	/* the next one now */
}

void
fetch_try_finished(struct fetcher *f, CURL *easy, CURLcode rc)
{
	struct fetch_try *t = NULL;
	struct fetch_liar l;
	bool report;

	pthread_mutex_lock(&f->lock);
	if (!fetch_probe_finished(f, easy, rc)) {
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
		if (t != NULL)
			fetch_try_ended(f, t, rc, false);
	}
	if ((report = f->wrong_length_pending))
		l = f->wrong_length;
	f->wrong_length_pending = false;
	pthread_mutex_unlock(&f->lock);
	if (report)		/* set before the first fetch: read unlocked */
		f->liar(f->liar_arg, &l);
}

/*
 * What time asks of tries in flight: cut those without an answer past the
 * deadline, drop those that answered for a job that has its copy, and
 * start the next try of jobs whose tries have had no answer for a
 * stagger.  Returns the milliseconds until the next such moment (at most
 * 1000).
 */
int
fetch_race_scan(struct fetcher *f, double now)
{
	double wait = 1.0;
	struct fetch_try *t, *tnext;
	struct fetch_job *j;

	for (t = f->tries; t != NULL; t = tnext) {
		double deadline = t->started + FETCH_FIRST_BYTE_MS / 1000.0;

		tnext = t->next;
		if (t->answered && (t->job->state == JOB_VERIFYING ||
				    t->job->state == JOB_DONE)) {
			fetch_try_free(f, t);	/* alive, only slower */
		} else if (!t->answered && now >= deadline) {
			fetch_try_ended(f, t, CURLE_OPERATION_TIMEDOUT, true);
			tnext = f->tries;	/* the list may have changed */
		} else if (!t->answered && deadline - now < wait) {
			wait = deadline - now;
		}
	}
	for (j = f->racing; j != NULL; j = j->rnext) {
		if (j->ntries >= FETCH_RACE || fetch_job_answered(f, j))
			continue;
		if (now >= j->next_race) {
			enum fetch_next n = fetch_job_next(f, j);

			j->next_race = n == NEXT_STARTED ?
				now + FETCH_STAGGER_MS / 1000.0 :
				n == NEXT_WAIT ?
				now + FETCH_PROBE_WAIT_MS / 1000.0 : 1e300;
		}
		if (j->next_race - now < wait)
			wait = j->next_race - now;
	}
	return wait > 0 ? (int)(wait * 1000) + 1 : 0;
}

/* Abandon every try and probe (fetcher_stop). */
void
fetch_race_stop(struct fetcher *f)
{
	while (f->tries != NULL)
		fetch_try_free(f, f->tries);
	for (size_t i = 0; i < f->npeers; i++) {
		if (f->peers[i].probe != NULL) {
			curl_multi_remove_handle(f->multi, f->peers[i].probe);
			curl_easy_cleanup(f->peers[i].probe);
			f->peers[i].probe = NULL;
		}
	}
}
