/*
 * mirror.c - the signed lookup answers this peer mirrors (see mirror.h).
 *
 * A small table, searched linearly (MIRROR_MAX services: a peer hosts a
 * handful), under one mutex, mirror->lock, taken alone: no other lock is
 * taken while it is held, and it is never held across I/O.  An offer is
 * parsed and checked before the lock is taken; only the comparison with
 * the held answer and the swap happen under it.
 *
 * Which of two valid answers is kept: the higher version; at an equal or
 * lower version, the one that expires later if it says the same thing
 * (an authority re-signed the same state), else the one held.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/signed_answer.h"
#include "fedfs/mirror.h"

struct mirror_entry {
	char subject[MIRROR_SUBJECT_MAX];
	char *text;			/* the answer's canonical bytes */
	size_t len;
	json_t *answer;			/* parsed, for the rollback check */
	struct signed_meta m;
};

struct mirror {
	uint8_t key[ED25519_PUB_LEN];	/* immutable */
	pthread_mutex_t lock;
	size_t n;			/* lock */
	struct mirror_entry e[MIRROR_MAX];	/* lock: [0, n) in use */
};

struct mirror *
mirror_new(const uint8_t key[ED25519_PUB_LEN])
{
	struct mirror *mi = calloc(1, sizeof(*mi));

	if (mi == NULL)
		return NULL;
	memcpy(mi->key, key, ED25519_PUB_LEN);
	pthread_mutex_init(&mi->lock, NULL);
	return mi;
}

static void
mirror_entry_clear(struct mirror_entry *x)
{
	free(x->text);
	json_decref(x->answer);
	memset(x, 0, sizeof(*x));
}

void
mirror_free(struct mirror *mi)
{
	if (mi == NULL)
		return;
	for (size_t i = 0; i < mi->n; i++)
		mirror_entry_clear(&mi->e[i]);
	pthread_mutex_destroy(&mi->lock);
	free(mi);
}

/* The entry of subject, or NULL.  Lock held. */
static struct mirror_entry *
mirror_find(struct mirror *mi, const char *subject)
{
	for (size_t i = 0; i < mi->n; i++)
		if (strcmp(mi->e[i].subject, subject) == 0)
			return &mi->e[i];
	return NULL;
}

/* A slot for a new subject: a free one, else the one expiring first
 * (cleared).  Lock held. */
static struct mirror_entry *
mirror_slot(struct mirror *mi)
{
	size_t i, first = 0;

	if (mi->n < MIRROR_MAX)
		return &mi->e[mi->n++];
	for (i = 1; i < mi->n; i++)
		if (mi->e[i].m.expires < mi->e[first].m.expires)
			first = i;
	mirror_entry_clear(&mi->e[first]);
	return &mi->e[first];
}

/* Parse, verify and canonicalise an offer.  Returns the answer (*canon
 * malloc'd) or NULL with e set. */
static json_t *
mirror_check(const struct mirror *mi, const char *subject, const char *text,
	     size_t len, time_t now, struct signed_meta *m, char **canon,
	     struct err *e)
{
	enum signed_verdict v;
	json_t *j;

	if (strlen(subject) >= MIRROR_SUBJECT_MAX) {
		err_set(e, "service name too long");
		return NULL;
	}
	if ((j = signed_answer_parse(text, len, e)) == NULL)
		return NULL;
	v = signed_answer_verify(j, SIGNED_LOOKUP, subject, mi->key, now, m,
				 e);
	if (v != SIGNED_OK) {
		json_decref(j);
		return NULL;
	}
	if ((*canon = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
		err_set(e, "out of memory");
		json_decref(j);
		return NULL;
	}
	return j;
}

/* Should the checked answer j (meta m) replace held?  Sets e when it is
 * a rollback (then it does not). */
static bool
mirror_newer(const json_t *j, const struct signed_meta *m,
	     const struct mirror_entry *held, const char *subject,
	     struct err *e, bool *rollback)
{
	*rollback = false;
	if (held == NULL || m->version > held->m.version)
		return true;
	if (signed_answer_not_older(j, m, held->answer, &held->m,
				    SIGNED_LOOKUP, subject, e) == -1) {
		*rollback = true;
		return false;
	}
	return m->expires > held->m.expires;
}

int
mirror_offer(struct mirror *mi, const char *subject, const char *text,
	     size_t len, time_t now, struct err *e)
{
	struct signed_meta m;
	struct mirror_entry *x;
	char *canon = NULL;
	bool rollback;
	json_t *j;

	if ((j = mirror_check(mi, subject, text, len, now, &m, &canon, e)) ==
	    NULL)
		return -1;
	pthread_mutex_lock(&mi->lock);
	x = mirror_find(mi, subject);
	if (!mirror_newer(j, &m, x, subject, e, &rollback)) {
		pthread_mutex_unlock(&mi->lock);
		json_decref(j);
		free(canon);
		return rollback ? -1 : 0;
	}
	if (x == NULL)
		x = mirror_slot(mi);
	else
		mirror_entry_clear(x);
	snprintf(x->subject, sizeof(x->subject), "%s", subject);
	x->text = canon;
	x->len = strlen(canon);
	x->answer = j;
	x->m = m;
	pthread_mutex_unlock(&mi->lock);
	return 1;
}

char *
mirror_get(struct mirror *mi, const char *subject, size_t *len)
{
	struct mirror_entry *x;
	char *copy = NULL;

	pthread_mutex_lock(&mi->lock);
	if ((x = mirror_find(mi, subject)) != NULL &&
	    (copy = malloc(x->len + 1)) != NULL) {
		memcpy(copy, x->text, x->len + 1);
		*len = x->len;
	}
	pthread_mutex_unlock(&mi->lock);
	return copy;
}

static bool
mirror_listed(const char *subject, const char *const *subjects, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(subject, subjects[i]) == 0)
			return true;
	return false;
}

void
mirror_keep_only(struct mirror *mi, const char *const *subjects, size_t n)
{
	size_t i = 0;

	pthread_mutex_lock(&mi->lock);
	while (i < mi->n) {
		if (mirror_listed(mi->e[i].subject, subjects, n)) {
			i++;
			continue;
		}
		mirror_entry_clear(&mi->e[i]);
		mi->e[i] = mi->e[--mi->n];	/* the last moves in */
		memset(&mi->e[mi->n], 0, sizeof(mi->e[mi->n]));
	}
	pthread_mutex_unlock(&mi->lock);
}

size_t
mirror_count(struct mirror *mi)
{
	size_t n;

	pthread_mutex_lock(&mi->lock);
	n = mi->n;
	pthread_mutex_unlock(&mi->lock);
	return n;
}
