/*
 * replay.c - the set of signed requests seen within the validity window.
 *
 * A chained hash table keyed by the request's id (REPLAY_ID_LEN: a SHA-256,
 * uniformly distributed, of requests whose signature verified, so nobody
 * can aim at one bucket cheaply).  Each entry
 * expires when its date leaves the window; expired entries are dropped from
 * a bucket whenever it is visited, and the whole table is swept when it
 * reaches REPLAY_MAX, which bounds memory (~100 bytes an entry) whatever the
 * request rate: past that, signed requests are refused until some expire.
 *
 * One mutex: only signed requests (state changes) come here, each already
 * paying an Ed25519 verification, so contention is not the bottleneck.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "authority/authority.h"

#define REPLAY_BUCKETS 65536u
#define REPLAY_MAX     1000000u

struct replay_entry {
	uint8_t id[REPLAY_ID_LEN];
	int64_t expires;
	struct replay_entry *next;
};

struct replay {
	pthread_mutex_t lock;
	size_t count;
	struct replay_entry *bucket[REPLAY_BUCKETS];
};

struct replay *
replay_new(void)
{
	struct replay *r = calloc(1, sizeof(*r));

	if (r != NULL)
		pthread_mutex_init(&r->lock, NULL);
	return r;
}

void
replay_free(struct replay *r)
{
	struct replay_entry *x, *next;
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < REPLAY_BUCKETS; i++)
		for (x = r->bucket[i]; x != NULL; x = next) {
			next = x->next;
			free(x);
		}
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static size_t
replay_hash(const uint8_t id[REPLAY_ID_LEN])
{
	return ((size_t)id[0] << 8 | id[1]) % REPLAY_BUCKETS;
}

/* Drop expired entries of bucket i.  Called with the lock held. */
static void
replay_prune(struct replay *r, size_t i, int64_t now)
{
	struct replay_entry **pp = &r->bucket[i], *x;

	while ((x = *pp) != NULL) {
		if (x->expires < now) {
			*pp = x->next;
			free(x);
			r->count--;
		} else {
			pp = &x->next;
		}
	}
}

int
replay_check_add(struct replay *r, const uint8_t id[REPLAY_ID_LEN],
		 int64_t expires, int64_t now)
{
	size_t h = replay_hash(id), i;
	struct replay_entry *x;
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	replay_prune(r, h, now);
	for (x = r->bucket[h]; x != NULL; x = x->next)
		if (memcmp(x->id, id, REPLAY_ID_LEN) == 0) {
			rc = 1;
			goto out;
		}
	if (r->count >= REPLAY_MAX)
		for (i = 0; i < REPLAY_BUCKETS; i++)
			replay_prune(r, i, now);
	if (r->count >= REPLAY_MAX || (x = malloc(sizeof(*x))) == NULL) {
		rc = -1;
		goto out;
	}
	memcpy(x->id, id, REPLAY_ID_LEN);
	x->expires = expires;
	x->next = r->bucket[h];
	r->bucket[h] = x;
	r->count++;
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

size_t
replay_count(struct replay *r)
{
	size_t n;

	pthread_mutex_lock(&r->lock);
	n = r->count;
	pthread_mutex_unlock(&r->lock);
	return n;
}
