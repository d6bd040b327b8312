/*
 * sign.c - the authority's signature on lookup and sources answers
 * (--key; the format is common/signed_answer.h, docs/authority-api.md
 * "Signed answers").
 *
 * The version.  A client refuses an answer older than one it holds, so the
 * version of a service's answers must only grow, across restarts and
 * across the authorities that share one database.  It is the time the
 * answer is signed, in milliseconds since the epoch, made strictly greater
 * than the last version this process gave (two answers signed within one
 * millisecond still differ).  Why a clock and not a counter in the
 * database: a counter would be a write on the read path (every lookup that
 * signs would have to take the write lock, on every authority of the set),
 * while the time needs nothing shared.  What it assumes: the authorities
 * over one database run NTP-synced clocks (they already must: signed
 * requests are refused beyond 300 s), and a clock is not set back by more
 * than what a restart takes.  Two authorities a few milliseconds apart may
 * give versions out of order for the same state; the client accepts a
 * lower version that says the same thing as the one it holds
 * (signed_answer_not_older), so that costs nothing, and a lower version
 * that says something else is an older state, rightly refused.
 *
 * One key for all the authorities over one database (each started with
 * the same --key file): a client pins one public key, beside the admin key
 * it already has, and any authority's answer verifies.  A set of keys the
 * admin signs would let one authority's key be retired alone, at the cost
 * of a key list to distribute and check; one key is what this builds.
 */
#include <pthread.h>
#include <time.h>

#include "authority/authority.h"

/* The next version: now in ms, above the last one given.  Sets *issued to
 * the second it was taken. */
static int64_t
sign_next_version(struct authority *a, time_t *issued)
{
	struct timespec ts;
	int64_t v;

	clock_gettime(CLOCK_REALTIME, &ts);
	*issued = ts.tv_sec;
	v = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	pthread_mutex_lock(&a->version_lock);
	if (v <= a->last_version)
		v = a->last_version + 1;
	a->last_version = v;
	pthread_mutex_unlock(&a->version_lock);
	return v;
}

int
authority_sign(struct authority *a, json_t *j, enum signed_kind kind,
	       time_t *issued, struct err *e)
{
	int64_t version = sign_next_version(a, issued);

	if (signed_answer_sign(j, kind, a->cfg.key_seed, a->cfg.key_pub,
			       *issued, a->cfg.answer_ttl, version, e) == -1)
		return -1;
	atomic_fetch_add_explicit(&a->metrics.signed_answers[kind], 1,
				  memory_order_relaxed);
	return 0;
}
