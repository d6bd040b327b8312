/*
 * mirror_feed.c - keeping this peer's mirror (mirror.h) of the
 * authority's signed lookup answers fed, and serving it.
 *
 * Only with --authority-key: without the authority's key a peer cannot
 * tell a forged answer from a good one, so it mirrors nothing.  At every
 * catalogue refresh (CATALOG_PERIOD_S, catalog.c's thread) it lists the
 * services it has committed to (live nodes of commit/), asks the authority
 * for each one's lookup answer, and offers each to the mirror, which keeps
 * it only if it verifies and is the freshest.  Services no longer hosted
 * are forgotten.  While the authority is known down (authlink.c) nothing
 * is asked: what is held is served until a fresher one comes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/http.h"
#include "common/log.h"
#include "fedfs/fedfs.h"
#include "fedfs/mirror.h"

#define MIRROR_FEED_TIMEOUT_MS 2000L	/* per lookup asked */

/* The distinct services committed to, into subjects (at most max);
 * returns how many.  Takes fs->lock (read). */
static size_t
mirror_feed_hosted(struct fedfs *fs, char (*subjects)[MIRROR_SUBJECT_MAX],
		   size_t max)
{
	size_t n = 0, j;

	pthread_rwlock_rdlock(&fs->lock);
	for (size_t i = INO_FIRST_DYNAMIC; i < fs->nnodes && n < max; i++) {
		struct node *x = fs->nodes[i];

		if (x == NULL || x->type != NODE_COMMIT || !x->live ||
		    x->obj == NULL || x->obj->service[0] == '\0' ||
		    strlen(x->obj->service) >= MIRROR_SUBJECT_MAX)
			continue;
		for (j = 0; j < n; j++)
			if (strcmp(subjects[j], x->obj->service) == 0)
				break;
		if (j == n)
			memcpy(subjects[n++], x->obj->service,
			       strlen(x->obj->service) + 1);
	}
	pthread_rwlock_unlock(&fs->lock);
	return n;
}

/* Ask the authority for subject's answer and offer it to the mirror. */
static void
mirror_feed_one(struct fedfs *fs, const char *subject)
{
	const char *colon = strrchr(subject, ':');
	char path[MIRROR_SUBJECT_MAX + 32], *text;
	json_t *reply = NULL;
	struct err e;
	long status;
	int rc;

	if (colon == NULL)
		return;
	snprintf(path, sizeof(path), "/v1/lookup?host=%.*s&port=%s",
		 (int)(colon - subject), subject, colon + 1);
	if (authority_call_within(fs->authority, "GET", path, NULL, NULL,
				  MIRROR_FEED_TIMEOUT_MS, &status, &reply,
				  &e) == -1) {
		log_debug("mirror: %s: authority not reached: %s", subject,
			  e.msg);
		return;
	}
	if (status != 200 || reply == NULL) {
		log_debug("mirror: %s: the authority answered %ld", subject,
			  status);
		json_decref(reply);
		return;
	}
	text = json_dumps(reply, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(reply);
	if (text == NULL)
		return;
	rc = mirror_offer(fs->mirror, subject, text, strlen(text),
			  time(NULL), &e);
	if (rc == -1)
		log_warn("mirror: the authority's answer for %s not kept: %s",
			 subject, e.msg);
	else if (rc == 1)
		log_debug("mirror: holding a fresh answer for %s", subject);
	free(text);
}

void
mirror_feed_refresh(struct fedfs *fs)
{
	static char subjects[MIRROR_MAX][MIRROR_SUBJECT_MAX];	/* one thread */
	const char *keep[MIRROR_MAX];
	size_t n;

	if (fs->mirror == NULL || authlink_down(fs, NULL))
		return;
	n = mirror_feed_hosted(fs, subjects, MIRROR_MAX);
	for (size_t i = 0; i < n; i++) {
		mirror_feed_one(fs, subjects[i]);
		keep[i] = subjects[i];
	}
	mirror_keep_only(fs->mirror, keep, n);
}

char *
mirror_feed_serve(void *arg, const char *subject, size_t *len)
{
	struct fedfs *fs = arg;

	return fs->mirror != NULL ? mirror_get(fs->mirror, subject, len) : NULL;
}
