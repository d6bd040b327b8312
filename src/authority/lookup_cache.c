/*
 * lookup_cache.c - lookup answers, kept until the next change.
 *
 * Lookups are the hot path and the catalogue is read far more often than
 * it changes, so the finished reply of GET /v1/lookup (status and JSON
 * bytes, 404s included) is kept per host:port, tagged with the authority's
 * generation: a counter call_commit() increments after every committed
 * change.  An entry is served only while its tag equals the current
 * generation, so a change is visible to the very next lookup.
 *
 * Why the tag is safe: a filler reads the generation *before* querying
 * the store, and writers increment it *after* their commit returns.  If a
 * change commits while a filler queries, the generation moves past the
 * filler's tag and its (possibly older) answer is never served.  At worst
 * a filler that saw the new rows carries the old tag and is discarded:
 * wasted work, never a stale answer.
 *
 * A signed answer (--key) also carries a refresh time: it is served until
 * then, half its validity, and signed again by the next lookup, so what a
 * client gets is fresh for at least half of --answer-ttl; between changes
 * and refreshes every lookup is answered with the same signed bytes (one
 * signature per change, not per request).
 *
 * Memory: at most LOOKUP_CACHE_MAX entries (each a few hundred bytes to a
 * few KiB); stale entries are dropped from a bucket whenever it is filled.
 * Buckets are guarded by striped mutexes, held only to copy bytes.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "authority/authority.h"

#define LOOKUP_CACHE_BUCKETS 16384u
#define LOOKUP_CACHE_STRIPES 64u
#define LOOKUP_CACHE_MAX     50000u

struct lookup_entry {
	struct lookup_entry *next;
	uint64_t gen;
	int64_t refresh_at;	/* unix seconds; 0: never */
	unsigned status;
	size_t len;
	char *body;
	char key[];		/* "host:port" */
};

struct lookup_cache {
	pthread_mutex_t stripe[LOOKUP_CACHE_STRIPES];
	atomic_size_t count;
	struct lookup_entry *bucket[LOOKUP_CACHE_BUCKETS];
};

struct lookup_cache *
lookup_cache_new(void)
{
	struct lookup_cache *c = calloc(1, sizeof(*c));
	unsigned i;

	if (c == NULL)
		return NULL;
	for (i = 0; i < LOOKUP_CACHE_STRIPES; i++)
		pthread_mutex_init(&c->stripe[i], NULL);
	return c;
}

static void
lookup_entry_free(struct lookup_entry *x)
{
	free(x->body);
	free(x);
}

void
lookup_cache_free(struct lookup_cache *c)
{
	struct lookup_entry *x, *next;
	unsigned i;

	if (c == NULL)
		return;
	for (i = 0; i < LOOKUP_CACHE_BUCKETS; i++)
		for (x = c->bucket[i]; x != NULL; x = next) {
			next = x->next;
			lookup_entry_free(x);
		}
	for (i = 0; i < LOOKUP_CACHE_STRIPES; i++)
		pthread_mutex_destroy(&c->stripe[i]);
	free(c);
}

/* FNV-1a of the key. */
static unsigned
lookup_cache_hash(const char *key)
{
	uint32_t h = 2166136261u;

	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h % LOOKUP_CACHE_BUCKETS;
}

int
lookup_cache_get(struct lookup_cache *c, const char *key, uint64_t gen,
		 int64_t now, unsigned *status, char **body, size_t *len)
{
	unsigned b = lookup_cache_hash(key);
	pthread_mutex_t *m = &c->stripe[b % LOOKUP_CACHE_STRIPES];
	struct lookup_entry *x;
	int rc = 0;

	pthread_mutex_lock(m);
	for (x = c->bucket[b]; x != NULL; x = x->next)
		if (x->gen == gen && strcmp(x->key, key) == 0) {
			if (x->refresh_at != 0 && now >= x->refresh_at)
				break;	/* due for signing again */
			if ((*body = malloc(x->len + 1)) != NULL) {
				memcpy(*body, x->body, x->len + 1);
				*len = x->len;
				*status = x->status;
				rc = 1;
			}
			break;
		}
	pthread_mutex_unlock(m);
	return rc;
}

void
lookup_cache_put(struct lookup_cache *c, const char *key, uint64_t gen,
		 int64_t refresh_at, unsigned status, const char *body,
		 size_t len)
{
	unsigned b = lookup_cache_hash(key);
	pthread_mutex_t *m = &c->stripe[b % LOOKUP_CACHE_STRIPES];
	struct lookup_entry **pp, *x, *n;
	size_t klen = strlen(key);

	if ((n = malloc(sizeof(*n) + klen + 1)) == NULL)
		return;
	if ((n->body = malloc(len + 1)) == NULL) {
		free(n);
		return;
	}
	memcpy(n->key, key, klen + 1);
	memcpy(n->body, body, len);
	n->body[len] = '\0';
	n->len = len;
	n->gen = gen;
	n->refresh_at = refresh_at;
	n->status = status;

	pthread_mutex_lock(m);
	/* drop stale entries and any older answer for this key; keep a
	 * newer one (a filler that raced a change, or a refresh) */
	for (pp = &c->bucket[b]; (x = *pp) != NULL;) {
		if (strcmp(x->key, key) == 0 && (x->gen > gen ||
		    (x->gen == gen && (x->refresh_at == 0 ||
				       x->refresh_at >= refresh_at)))) {
			pthread_mutex_unlock(m);
			lookup_entry_free(n);
			return;
		}
		if (x->gen < gen || strcmp(x->key, key) == 0) {
			*pp = x->next;
			lookup_entry_free(x);
			atomic_fetch_sub(&c->count, 1);
		} else {
			pp = &x->next;
		}
	}
	if (atomic_load(&c->count) >= LOOKUP_CACHE_MAX) {
		pthread_mutex_unlock(m);
		lookup_entry_free(n);
		return;
	}
	n->next = c->bucket[b];
	c->bucket[b] = n;
	atomic_fetch_add(&c->count, 1);
	pthread_mutex_unlock(m);
}
