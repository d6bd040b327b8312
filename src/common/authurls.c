/*
 * authurls.c - parse a client's list of authority URLs and remember which
 * one answered last (see authurls.h).
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "common/authurls.h"

/* The last good index per list: a few slots, enough for the lists one
 * process uses (one, normally).  A list seen when all slots are taken
 * replaces the oldest slot. */
#define AUTHURLS_SLOTS 8

struct authurls_slot {
	char list[AUTHURLS_INPUT_MAX];	/* "" if free */
	size_t good;			/* index that answered last */
	unsigned fails[AUTHURLS_MAX];	/* failures in a row, per URL */
	double down_until[AUTHURLS_MAX];	/* CLOCK_MONOTONIC s, per URL */
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

static double
authurls_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
authurls_order(const char *list, size_t n, size_t order[])
{
	struct authurls_slot *s;
	bool down[AUTHURLS_MAX] = { false };
	double now = authurls_now();
	size_t first = 0, k, i, m = 0;
	int pass;

	pthread_mutex_lock(&authurls_lock);
	if ((s = authurls_find(list)) != NULL) {
		first = s->good < n ? s->good : 0;
		for (i = 0; i < n && i < AUTHURLS_MAX; i++)
			down[i] = s->down_until[i] > now;
	}
	pthread_mutex_unlock(&authurls_lock);
	for (pass = 0; pass < 2; pass++)
		for (k = 0; k < n; k++) {
			i = (first + k) % n;
			if (down[i] == (pass == 1))
				order[m++] = i;
		}
}

/* list's slot, taken (the oldest replaced) if it has none.  Lock held. */
static struct authurls_slot *
authurls_slot(const char *list)
{
	struct authurls_slot *s;

	if ((s = authurls_find(list)) != NULL)
		return s;
	s = &authurls_slots[authurls_next_slot];
	authurls_next_slot = (authurls_next_slot + 1) % AUTHURLS_SLOTS;
	memset(s, 0, sizeof(*s));
	strcpy(s->list, list);
	return s;
}

void
authurls_result(const char *list, size_t i, bool ok)
{
	struct authurls_slot *s;
	double down;

	if (strlen(list) >= AUTHURLS_INPUT_MAX || i >= AUTHURLS_MAX)
		return;
	pthread_mutex_lock(&authurls_lock);
	s = authurls_slot(list);
	if (ok) {
		s->good = i;
		s->fails[i] = 0;
		s->down_until[i] = 0;
	} else {
		down = AUTHURLS_DOWN_S *
		    (double)(1u << (s->fails[i] < 4 ? s->fails[i] : 4));
		if (down > AUTHURLS_DOWN_MAX_S)
			down = AUTHURLS_DOWN_MAX_S;
		s->fails[i]++;
		s->down_until[i] = authurls_now() + down;
	}
	pthread_mutex_unlock(&authurls_lock);
}

bool
authurls_failover(int rc, long status)
{
	return rc == -1 || status >= 500 || status == 0;
}
