/*
 * sweep.c - peers and commitments that stopped refreshing.
 *
 * A peer that leaves without a word (its host died, its network went) would
 * otherwise stay a source of every object it announced and, worse, in the
 * lookups of every service it hosted: clients would keep trying it first.
 * So liveness is leased: a fedfs re-registers (POST /v1/peers) and a
 * vmrunner re-reports each commitment it serves (PUT /v1/commitments/<id>)
 * at a third of --peer-ttl, and what was not refreshed within it stops
 * counting:
 *
 *   sources  are filtered at query time (peers.updated >= cutoff): nothing
 *            caches them;
 *   lookups  are cached until the next change (lookup_cache.c), so expiry
 *            must be a change: this thread marks the commitments down in a
 *            transaction of its own, credits their up time until their last
 *            refresh, and moves the generation on like any writer.  A later
 *            refresh brings a commitment back up.
 *
 * While the authority was down nobody could refresh: for one ttl after a
 * start, liveness is judged as of when it last ran (the latest refresh in
 * the store), so peers that were live then have that long to come back,
 * and peers long gone stay gone.
 *
 * Peers not heard from for --forget-after (30 days) are forgotten, with the
 * holdings they announced, unless their key owns a service or holds a
 * commitment: anyone can register keys, and without this every key ever
 * registered would stay in the store.  Only once the authority has run for
 * a whole --forget-after itself: then a peer silent that long was silent
 * while the authority could hear it (a restart starts the count again; an
 * outage never counts against anyone).  At most every
 * SWEEP_FORGET_EVERY_S, in batches of SWEEP_FORGET_BATCH, a transaction
 * each, so the write lock is never held long; a forgotten peer that comes
 * back registers again (201, and fedfs announces its holdings again).
 */
#include <errno.h>
#include <stdint.h>

#include "authority/authority.h"
#include "common/log.h"

#define SWEEP_EVERY_MAX_S 10	/* a dead commitment is listed ttl + this */
#define SWEEP_FORGET_EVERY_S 3600
#define SWEEP_FORGET_BATCH 1000

int64_t
sweep_cutoff(const struct authority *a, time_t now)
{
	if (a->cfg.peer_ttl <= 0)
		return INT64_MIN;
	if (now - a->started < a->cfg.peer_ttl)
		return a->last_seen - a->cfg.peer_ttl;
	return (int64_t)now - a->cfg.peer_ttl;
}

int64_t
sweep_forget_cutoff(const struct authority *a, time_t now)
{
	if (a->cfg.peer_ttl <= 0 || a->cfg.forget_after <= 0 ||
	    now - a->started < a->cfg.forget_after)
		return INT64_MIN;
	return (int64_t)now - a->cfg.forget_after;
}

/* One forgetting (see the top), a batch per transaction.  Returns how many
 * peers, or -1. */
static int
sweep_forget(struct authority *a, int64_t cutoff, struct err *e)
{
	int n, total = 0;

	do {
		if (authstore_begin(a->store, e) == -1)
			return -1;
		if ((n = authstore_peers_forget(a->store, cutoff,
						SWEEP_FORGET_BATCH, e)) == -1) {
			authstore_rollback(a->store);
			return -1;
		}
		/* no lookup reads peers or holdings: the cache stays valid */
		if (authstore_commit(a->store, e) == -1)
			return -1;
		total += n;
	} while (n == SWEEP_FORGET_BATCH);
	return total;
}

int
sweep_once(struct authority *a, int64_t cutoff, struct err *e)
{
	int n;

	if (authstore_begin(a->store, e) == -1)
		return -1;
	if ((n = authstore_commitments_expire(a->store, cutoff, e)) == -1) {
		authstore_rollback(a->store);
		return -1;
	}
	if (authstore_commit(a->store, e) == -1)
		return -1;
	if (n > 0)	/* after the commit: see lookup_cache.c */
		atomic_fetch_add(&a->generation, 1);
	return n;
}

static void *
sweep_loop(void *arg)
{
	struct authority *a = arg;
	int every = a->cfg.peer_ttl / 6, forget_every = SWEEP_FORGET_EVERY_S;
	struct timespec until;
	double forgot_at = 0;
	struct err e;
	int n;

	if (every < 1)
		every = 1;
	if (every > SWEEP_EVERY_MAX_S)
		every = SWEEP_EVERY_MAX_S;
	if (a->cfg.forget_after / 2 < forget_every)	/* short, in tests */
		forget_every = a->cfg.forget_after / 2;
	pthread_mutex_lock(&a->sweep_lock);
	while (!a->sweep_stop) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += every;
		if (pthread_cond_timedwait(&a->sweep_wake, &a->sweep_lock,
					   &until) != ETIMEDOUT)
			continue;	/* woken to stop, or spuriously */
		pthread_mutex_unlock(&a->sweep_lock);
		if ((n = sweep_once(a, sweep_cutoff(a, time(NULL)), &e)) == -1)
			log_warn("expiring commitments: %s (next sweep in "
				 "%d s)", e.msg, every);
		else if (n > 0)
			log_info("%d commitment%s not refreshed for %d s: "
				 "marked down, out of lookups until refreshed",
				 n, n == 1 ? "" : "s", a->cfg.peer_ttl);
		clock_gettime(CLOCK_MONOTONIC, &until);
		if (sweep_forget_cutoff(a, time(NULL)) != INT64_MIN &&
		    until.tv_sec - forgot_at >= forget_every) {
			forgot_at = (double)until.tv_sec;
			n = sweep_forget(a, sweep_forget_cutoff(a, time(NULL)),
					 &e);
			if (n == -1)
				log_warn("forgetting peers: %s", e.msg);
			else if (n > 0)
				log_info("forgot %d peer%s not heard from for "
					 "%d s (they register again if they "
					 "come back)", n, n == 1 ? "" : "s",
					 a->cfg.forget_after);
		}
		pthread_mutex_lock(&a->sweep_lock);
	}
	pthread_mutex_unlock(&a->sweep_lock);
	return NULL;
}

int
sweep_start(struct authority *a, struct err *e)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&a->sweep_lock, NULL);
	/* its waits are intervals: a step of the wall clock must not
	 * stretch them */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->sweep_wake, &ca);
	pthread_condattr_destroy(&ca);
	a->sweep_stop = false;
	if (a->cfg.peer_ttl <= 0)
		return 0;
	if ((a->last_seen = authstore_last_seen(a->store, e)) == -1)
		return -1;
	if (pthread_create(&a->sweeper, NULL, sweep_loop, a) != 0)
		return err_set(e, "authority: cannot start the sweeper thread");
	pthread_setname_np(a->sweeper, "fed-sweep");
	a->sweeping = true;
	return 0;
}

void
sweep_stop(struct authority *a)
{
	if (!a->sweeping)
		return;
	pthread_mutex_lock(&a->sweep_lock);
	a->sweep_stop = true;
	pthread_cond_signal(&a->sweep_wake);
	pthread_mutex_unlock(&a->sweep_lock);
	pthread_join(a->sweeper, NULL);
	a->sweeping = false;
}
