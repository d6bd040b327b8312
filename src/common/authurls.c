/*
 * authurls.c - parse a client's list of authority URLs and remember which
 * one answered last (see authurls.h).
 */
#include <pthread.h>
#include <string.h>

#include "common/authurls.h"

/* The last good index per list: a few slots, enough for the lists one
 * process uses (one, normally).  A list seen when all slots are taken
 * replaces the oldest slot. */
#define AUTHURLS_SLOTS 8

struct authurls_slot {
	char list[AUTHURLS_INPUT_MAX];	/* "" if free */
	size_t good;			/* index that answered last */
};

static pthread_mutex_t authurls_lock = PTHREAD_MUTEX_INITIALIZER;
static struct authurls_slot authurls_slots[AUTHURLS_SLOTS];	/* authurls_lock */
static size_t authurls_next_slot;				/* authurls_lock */

/* Check and copy one element [s, s+len) into out; 0 or -1. */
static int
authurls_one(const char *s, size_t len, size_t idx, char *out,
	     struct err *e)
{
	size_t i, scheme;

	if (len == 0)
		return err_set(e, "authority list: element %zu is empty", idx + 1);
	if (len >= AUTHURLS_URL_MAX)
		return err_set(e, "authority list: element %zu is longer than "
			       "%d bytes", idx + 1, AUTHURLS_URL_MAX - 1);
	if (len > 7 && strncmp(s, "http://", 7) == 0)
		scheme = 7;
	else if (len > 8 && strncmp(s, "https://", 8) == 0)
		scheme = 8;
	else
		return err_set(e, "authority list: element %zu (%.*s) is not an "
			       "http:// or https:// URL", idx + 1, (int)len, s);
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return err_set(e, "authority list: element %zu has a "
				       "space or control character", idx + 1);
	while (len > scheme && s[len - 1] == '/')
		len--;
	if (len == scheme)
		return err_set(e, "authority list: element %zu has no host",
			       idx + 1);
	memcpy(out, s, len);
	out[len] = '\0';
	return 0;
}

int
authurls_parse(const char *list, struct authurls *out, struct err *e)
{
	const char *p, *comma;
	size_t total;

	out->n = 0;
	if (list == NULL || list[0] == '\0')
		return err_set(e, "authority list: empty");
	total = strnlen(list, AUTHURLS_INPUT_MAX);
	if (total >= AUTHURLS_INPUT_MAX)
		return err_set(e, "authority list: longer than %d bytes",
			       AUTHURLS_INPUT_MAX - 1);
	for (p = list;; p = comma + 1) {
		comma = strchr(p, ',');
		if (out->n == AUTHURLS_MAX)
			return err_set(e, "authority list: more than %d URLs",
				       AUTHURLS_MAX);
		if (authurls_one(p, comma ? (size_t)(comma - p) : strlen(p),
				 out->n, out->url[out->n], e) == -1)
			return -1;
		out->n++;
		if (comma == NULL)
			return 0;
	}
}

/* The slot for list, or NULL.  Caller holds authurls_lock. */
static struct authurls_slot *
authurls_find(const char *list)
{
	size_t i;

	for (i = 0; i < AUTHURLS_SLOTS; i++)
		if (authurls_slots[i].list[0] != '\0' &&
		    strcmp(authurls_slots[i].list, list) == 0)
			return &authurls_slots[i];
	return NULL;
}

size_t
authurls_first(const char *list, size_t n)
{
	struct authurls_slot *s;
	size_t i = 0;

	pthread_mutex_lock(&authurls_lock);
	if ((s = authurls_find(list)) != NULL)
		i = s->good;
	pthread_mutex_unlock(&authurls_lock);
	return i < n ? i : 0;
}

void
authurls_good(const char *list, size_t i)
{
	struct authurls_slot *s;

	if (strlen(list) >= AUTHURLS_INPUT_MAX)
		return;
	pthread_mutex_lock(&authurls_lock);
	if ((s = authurls_find(list)) == NULL) {
		s = &authurls_slots[authurls_next_slot];
		authurls_next_slot = (authurls_next_slot + 1) % AUTHURLS_SLOTS;
		strcpy(s->list, list);
	}
	s->good = i;
	pthread_mutex_unlock(&authurls_lock);
}

bool
authurls_failover(int rc, long status)
{
	return rc == -1 || status >= 500 || status == 0;
}
