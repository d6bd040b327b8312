/*
 * fetch_peers.c - what the fetcher knows of its sources, across jobs and
 * reads (see fetch_int.h for the files of the fetcher).
 *
 *   peers      per address: measured speed, errors, and "down": a source
 *              whose transfer or probe failed, or that accepted and sent
 *              nothing within the first-byte deadline, is not asked until
 *              FETCH_DOWN_S has passed, doubling per failure in a row up to
 *              FETCH_DOWN_MAX_S; one complete chunk from it clears that.
 *   bad        (object, address): it sent bytes that are not the chunk;
 *              never asked for that object again.
 *   srcs       the source list of each object, as the authority said at
 *              most FETCH_SOURCES_TTL_S ago (kept when it cannot be asked),
 *              or sooner when a job wants it anew (fetch_sources_fresh).
 *
 * Down is what makes a dead network cheap: the first read pays one probe
 * (FETCH_FIRST_BYTE_MS), in parallel over all sources, and those after it
 * fail at once until the backoff ends.  A source down is still asked in a
 * job's later rounds, once a live source said it lacks the chunk (404) or
 * is busy (503): it may be the only holder.
 *
 * Everything here runs with f->lock held, but fetch_refresh_sources.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "fedfs/fetch_int.h"

/* The entry of addr, made if new; NULL only without memory. */
struct fetch_peer *
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

bool
fetch_is_bad(struct fetcher *f, const uint8_t id[SHA256_LEN], const char *addr)
{
	for (size_t i = 0; i < f->nbad; i++)
		if (memcmp(f->bad[i].id, id, SHA256_LEN) == 0 &&
		    strcmp(f->bad[i].addr, addr) == 0)
			return true;
	return false;
}

void
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

bool
fetch_peer_down(const struct fetch_peer *p, double now)
{
	return p != NULL && p->down_until > now;
}

/* A source failed (why: for the log): down for a while, doubling per
 * failure in a row.  Said once when it goes down, not per failure. */
void
fetch_peer_failed(struct fetcher *f, struct fetch_peer *p, const char *why)
{
	double now = mono_now();
	double down = FETCH_DOWN_S * (double)(1u << (p->fails < 6 ? p->fails : 6));
	bool was_down = p->down_until > now;

	(void)f;
	p->errors++;
	p->alive = false;
	if (was_down)		/* tries in flight at once: one failure */
		return;
	if (down > FETCH_DOWN_MAX_S)
		down = FETCH_DOWN_MAX_S;
	p->fails++;
	p->down_until = now + down;
	snprintf(p->why, sizeof(p->why), "%s", why);
	if (!was_down)
		log_info("source %s is down: %s (not asked for %.0f s)",
			 p->addr, why, down);
}

/* A try from p had no answer within FETCH_FIRST_BYTE_MS: down, and said
 * at most once per FETCH_LOG_EVERY_S for all sources, with how many. */
void
fetch_peer_cut(struct fetcher *f, struct fetch_peer *p, double now)
{
	char why[96];

	snprintf(why, sizeof(why), "accepted but sent nothing within %ld ms",
		 FETCH_FIRST_BYTE_MS);
	p->cut++;
	f->cut_total++;
	f->cut_unlogged++;
	fetch_peer_failed(f, p, why);
	if (now - f->cut_logged < FETCH_LOG_EVERY_S && f->cut_logged > 0)
		return;
	log_warn("source %s %s: cut off (%" PRIu64 " transfer%s cut off so "
		 "far, %" PRIu64 " since the last such line)", p->addr, why,
		 f->cut_total, f->cut_total == 1 ? "" : "s", f->cut_unlogged);
	f->cut_logged = now;
	f->cut_unlogged = 0;
}

static struct fetch_srcs *
fetch_srcs_find(struct fetcher *f, const uint8_t id[SHA256_LEN])
{
	for (size_t i = 0; i < f->nsrcs; i++)
		if (memcmp(f->srcs[i].id, id, SHA256_LEN) == 0)
			return &f->srcs[i];
	return NULL;
}

/* Should the sources of o be asked for?  Not while another thread asks;
 * then when unknown, older than FETCH_SOURCES_TTL_S, or wanted anew.
 * Lock held. */
static bool
fetch_sources_due(const struct fetch_srcs *s, double now)
{
	if (s == NULL)
		return true;
	return !s->asking && (s->n == 0 || s->wanted ||
			      now - s->fetched >= FETCH_SOURCES_TTL_S);
}

/* Make sure the sources of o are known (asks at most every
 * FETCH_SOURCES_TTL_S, or sooner when a job wants them anew; what was
 * known stays when the callback fails).  Called without the lock. */
void
fetch_refresh_sources(struct fetcher *f, const struct fetch_object *o)
{
	struct fetch_srcs *s, fresh;
	int n;

	pthread_mutex_lock(&f->lock);
	s = fetch_srcs_find(f, o->id);
	if (!fetch_sources_due(s, mono_now())) {
		pthread_mutex_unlock(&f->lock);
		return;
	}
	if (s != NULL) {
		s->asking = true;
		s->wanted = false;
	}
	pthread_mutex_unlock(&f->lock);

	memset(&fresh, 0, sizeof(fresh));
	fresh.fetched = mono_now();	/* as asked: what it names is that old */
	n = f->sources(f->sources_arg, o->id, fresh.addrs, FETCH_SOURCES_MAX);
	memcpy(fresh.id, o->id, SHA256_LEN);
	fresh.n = n;

	pthread_mutex_lock(&f->lock);
	if ((s = fetch_srcs_find(f, o->id)) == NULL && n >= 0) {
		void *p = realloc(f->srcs, (f->nsrcs + 1) * sizeof(*f->srcs));

		if (p != NULL) {
			f->srcs = p;
			s = &f->srcs[f->nsrcs++];
		}
	}
	if (s != NULL && n >= 0)
		*s = fresh;
	else if (s != NULL)
		s->asking = false;	/* keep what we knew */
	pthread_mutex_unlock(&f->lock);
}

bool
fetch_sources_wanted(struct fetcher *f, const struct fetch_object *o)
{
	const struct fetch_srcs *s = fetch_srcs_find(f, o->id);

	return s != NULL && s->wanted && !s->asking;
}

/*
 * The authority's list of holders is asked for as a reader starts and
 * then every FETCH_SOURCES_TTL_S; peers that start reading an object at
 * once each announce themselves as a holder then, so a list asked a moment
 * before names only the owner (and announces are sent in the background:
 * even a peer's own may land after its first fetch).  Insisting on that
 * list (the owner limits sends per window, and would be the only holder
 * asked) would make every peer fetch the whole object from the owner.  So
 * a job asks anew, once, and its next round reads what came.
 */
bool
fetch_sources_fresh(struct fetcher *f, struct fetch_job *j)
{
	struct fetch_srcs *s = fetch_srcs_find(f, j->obj->id);

	if (j->asked_anew || s == NULL || s->fetched >= j->round_began)
		return true;
	j->asked_anew = true;
	s->wanted = true;
	pthread_cond_broadcast(&f->done);	/* a waiting reader asks */
	return false;
}

/* Sort j's sources by key, largest first (insertion sort: at most
 * FETCH_SOURCES_MAX). */
static void
fetch_sort_sources(struct fetch_job *j, double key[])
{
	for (int i = 1; i < j->naddrs; i++) {
		char a[FETCH_ADDR_MAX];
		double v = key[i];
		int k = i;

		memcpy(a, j->addrs[i], FETCH_ADDR_MAX);
		while (k > 0 && key[k - 1] < v) {
			key[k] = key[k - 1];
			memcpy(j->addrs[k], j->addrs[k - 1], FETCH_ADDR_MAX);
			k--;
		}
		key[k] = v;
		memcpy(j->addrs[k], a, FETCH_ADDR_MAX);
	}
}

/* Order of sources for a job's round: not bad for the object, not
 * ourselves; unmeasured ones first (in random order, to spread load and
 * learn their speed), then the measured ones fastest first.  Sources down
 * come last, and are left out of a job's first round: a peer gone stays
 * listed by the authority, and asking it for every chunk would cost each
 * a first-byte deadline.  In later rounds (every live source busy or
 * lacking the chunk) they are asked last, as one may be its only holder.
 * When all are down in the first round, they are named in j->tried: the
 * job fails at once, with what it knows. */
void
fetch_job_sources(struct fetcher *f, struct fetch_job *j)
{
	struct fetch_srcs *s = fetch_srcs_find(f, j->obj->id);
	double key[FETCH_SOURCES_MAX], now = mono_now();
	int up = 0;

	j->naddrs = 0;
	j->next = 0;
	if (s == NULL)
		return;
	for (int i = 0; i < s->n; i++) {
		struct fetch_peer *p;

		if (strcmp(s->addrs[i], f->self) == 0 ||
		    fetch_is_bad(f, j->obj->id, s->addrs[i]))
			continue;
		p = fetch_peer(f, s->addrs[i]);
		memcpy(j->addrs[j->naddrs], s->addrs[i], FETCH_ADDR_MAX);
		if (fetch_peer_down(p, now)) {
			key[j->naddrs] = -(double)p->fails;
		} else {
			key[j->naddrs] = p && p->speed > 0 ? p->speed
				: 1e18 + (double)(rand() % 1000);
			up++;
		}
		j->naddrs++;
	}
	fetch_sort_sources(j, key);
	if (j->rounds > 0)
		return;
	fetch_tried_down(f, j, up, j->naddrs);
	j->naddrs = up;
}

/* Say in j->tried that its sources from..to-1 that are down were not
 * asked, and why they are down. */
void
fetch_tried_down(struct fetcher *f, struct fetch_job *j, int from, int to)
{
	double now = mono_now();

	for (int i = from; i < to; i++) {
		const struct fetch_peer *p = fetch_peer(f, j->addrs[i]);
		char why[160];

		if (!fetch_peer_down(p, now))
			continue;
		snprintf(why, sizeof(why), "down: %s (not asked for %.1f s)",
			 p->why, p->down_until - now);
		fetch_tried(j, j->addrs[i], why);
	}
}

void
fetch_peers_free(struct fetcher *f)
{
	free(f->peers);
	free(f->bad);
	free(f->srcs);
	f->peers = NULL;
	f->bad = NULL;
	f->srcs = NULL;
	f->npeers = f->nbad = f->nsrcs = 0;
}

void
fetch_count_object(struct fetcher *f, const struct fetch_object *o,
		   uint64_t bytes)
{
	struct fetch_objstat *s = NULL;

	for (size_t i = 0; i < f->nobjstats && s == NULL; i++)
		if (memcmp(f->objstats[i].id, o->id, SHA256_LEN) == 0)
			s = &f->objstats[i];
	if (s == NULL && f->nobjstats < FETCH_OBJECTS_MAX)
		s = &f->objstats[f->nobjstats++];
	if (s == NULL) {			/* full: the stalest goes */
		s = &f->objstats[0];
		for (size_t i = 1; i < FETCH_OBJECTS_MAX; i++)
			if (f->objstats[i].last < s->last)
				s = &f->objstats[i];
	}
	if (memcmp(s->id, o->id, SHA256_LEN) != 0) {
		memset(s, 0, sizeof(*s));
		memcpy(s->id, o->id, SHA256_LEN);
		snprintf(s->label, sizeof(s->label), "%s", o->label);
		s->size = o->index->size;
	}
	s->chunks++;
	s->bytes += bytes;
	s->last = mono_now();
}

/* "objects": what was fetched of each, against its size.  Lock held. */
static json_t *
fetch_objects_json(const struct fetcher *f)
{
	json_t *a = json_array();
	char hex[2 * SHA256_LEN + 1];

	for (size_t i = 0; i < f->nobjstats; i++) {
		const struct fetch_objstat *s = &f->objstats[i];

		hex_encode(s->id, SHA256_LEN, hex);
		json_array_append_new(a, json_pack("{s:s,s:s,s:I,s:I,s:I}",
		    "id", hex, "label", s->label, "size", (json_int_t)s->size,
		    "fetched_chunks", (json_int_t)s->chunks,
		    "fetched_bytes", (json_int_t)s->bytes));
	}
	return a;
}

json_t *
fetcher_status(struct fetcher *f)
{
	json_t *j = json_object(), *peers = json_array(), *bad = json_array();
	char hex[2 * SHA256_LEN + 1];
	double now = mono_now();

	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->npeers; i++) {
		struct fetch_peer *p = &f->peers[i];

		json_array_append_new(peers, json_pack(
		    "{s:s,s:I,s:I,s:I,s:I,s:I,s:f,s:b}", "addr", p->addr,
		    "bytes", (json_int_t)p->bytes, "chunks", (json_int_t)p->chunks,
		    "errors", (json_int_t)p->errors,
		    "bad_chunks", (json_int_t)p->bad_chunks,
		    "cut_off", (json_int_t)p->cut,
		    "bytes_per_second", p->speed,
		    "down", fetch_peer_down(p, now)));
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
	json_object_set_new(j, "objects", fetch_objects_json(f));
	json_object_set_new(j, "failed_chunks", json_integer((json_int_t)f->failed_chunks));
	json_object_set_new(j, "cut_off", json_integer((json_int_t)f->cut_total));
	json_object_set_new(j, "in_flight", json_integer(f->running));
	json_object_set_new(j, "jobs", json_integer(f->njobs));
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
		"# TYPE fedfs_cut_off_total counter\n"
		"fedfs_cut_off_total %" PRIu64 "\n"
		"# TYPE fedfs_source_bytes_total counter\n",
		f->fetched_chunks, f->fetched_bytes, f->failed_chunks,
		f->cut_total);
	for (size_t i = 0; i < f->npeers; i++)
		fprintf(m, "fedfs_source_bytes_total{source=\"%s\"} %" PRIu64 "\n",
			f->peers[i].addr, f->peers[i].bytes);
	fprintf(m, "# TYPE fedfs_source_errors_total counter\n");
	for (size_t i = 0; i < f->npeers; i++)
		fprintf(m, "fedfs_source_errors_total{source=\"%s\"} %" PRIu64 "\n",
			f->peers[i].addr, f->peers[i].errors);
	fprintf(m, "# TYPE fedfs_bad_sources gauge\nfedfs_bad_sources %zu\n",
		f->nbad);
	fprintf(m, "# TYPE fedfs_object_fetched_bytes_total counter\n");
	for (size_t i = 0; i < f->nobjstats; i++) {
		char hex[2 * SHA256_LEN + 1];

		hex_encode(f->objstats[i].id, SHA256_LEN, hex);
		fprintf(m, "fedfs_object_fetched_bytes_total{object=\"%s\"} "
			"%" PRIu64 "\n", hex, f->objstats[i].bytes);
	}
	pthread_mutex_unlock(&f->lock);
	fclose(m);
	*len = cap;
	return buf;
}
