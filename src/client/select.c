/*
 * select.c - which peer to try first: per-peer statistics and the order
 * they imply (paper section 3.6).
 *
 * Each peer endpoint ("peer@addr:port") keeps an EWMA (weight
 * CLIENT_EWMA_ALPHA on the newest sample) of its latency to the first byte
 * and of its bandwidth after it, and a count of consecutive failures.  The
 * expected time of a request is latency + CLIENT_EXPECT_BYTES / bandwidth,
 * plus CLIENT_FAIL_PENALTY_S per consecutive failure, so a peer that just
 * failed goes behind every peer that works.
 *
 * The order (client_select_order) is a pure function of the statistics
 * and a request counter, which is what the unit tests check.  The
 * statistics are kept in <cache>/peers.json (tmp + rename after every
 * outcome) so successive `fed get` runs learn; two processes updating at
 * once may lose one sample each, which only costs a little learning.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "common/log.h"

static int64_t
select_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
client_stat_key(const struct client_peer *p, char *key, size_t size)
{
	snprintf(key, size, "%s@%s:%u", p->peer[0] ? p->peer : "dns", p->addr,
		 p->port);
}

static double
select_ewma(double old, double sample, bool first)
{
	return first ? sample : CLIENT_EWMA_ALPHA * sample +
	    (1 - CLIENT_EWMA_ALPHA) * old;
}

void
client_stat_success(struct client_stat *s, double latency_s, uint64_t bytes,
		    double xfer_s, int64_t now_ms)
{
	if (latency_s < 0)
		latency_s = 0;
	s->latency_s = select_ewma(s->latency_s, latency_s, s->samples == 0);
	/* A few KiB in under a millisecond says nothing about bandwidth. */
	if (bytes >= 16384 && xfer_s >= 0.001)
		s->bw_Bps = select_ewma(s->bw_Bps, (double)bytes / xfer_s,
					s->bw_Bps == 0);
	s->samples++;
	s->fails = 0;
	s->last_try = now_ms;
}

void
client_stat_failure(struct client_stat *s, int64_t now_ms)
{
	s->fails++;
	s->fails_total++;
	s->last_try = now_ms;
}

double
client_stat_cost(const struct client_stat *s, double bytes)
{
	double t = s->latency_s;

	if (s->bw_Bps > 0)
		t += bytes / s->bw_Bps;
	return t + CLIENT_FAIL_PENALTY_S * s->fails;
}

static bool
select_tried(const struct client_stat *s)
{
	return s != NULL && (s->samples > 0 || s->fails_total > 0);
}

void
client_select_order(const struct client_stat *const *stats, size_t n,
		    uint64_t request, size_t *order)
{
	size_t i, j, k = 0, untried = 0, first_tried;

	if (n == 0)
		return;
	/* 1. untried peers, rotated by the request counter */
	for (i = 0; i < n; i++)
		if (!select_tried(stats[i]))
			untried++;
	for (j = 0; j < n && untried > 0; j++) {
		i = (j + (size_t)(request % n)) % n;
		if (!select_tried(stats[i]))
			order[k++] = i;
	}
	first_tried = k;
	for (i = 0; i < n; i++)
		if (select_tried(stats[i]))
			order[k++] = i;
	/* 3. tried ones by cost (insertion sort: n is small; stable) */
	for (i = first_tried + 1; i < n; i++) {
		size_t v = order[i];
		double c = client_stat_cost(stats[v], CLIENT_EXPECT_BYTES);

		for (j = i; j > first_tried &&
		     client_stat_cost(stats[order[j - 1]],
				      CLIENT_EXPECT_BYTES) > c; j--)
			order[j] = order[j - 1];
		order[j] = v;
	}
	/* 2. exploration: the stalest tried peer to the front of them */
	if (first_tried == 0 && n > 1 &&
	    request % CLIENT_EXPLORE_EVERY == CLIENT_EXPLORE_EVERY - 1) {
		size_t stale = 0;

		for (i = 1; i < n; i++)
			if (stats[order[i]]->last_try <
			    stats[order[stale]]->last_try)
				stale = i;
		j = order[stale];
		memmove(&order[1], &order[0], stale * sizeof(*order));
		order[0] = j;
	}
}

/* ---- the shared, persisted table ---- */

static struct client_stat *
select_find(struct client_stats *st, const char *key, bool create)
{
	size_t i, oldest = 0;

	for (i = 0; i < st->n; i++)
		if (strcmp(st->s[i].key, key) == 0)
			return &st->s[i];
	if (!create)
		return NULL;
	if (st->n < CLIENT_STATS_MAX) {
		i = st->n++;
	} else {
		/* full: forget the peer tried longest ago */
		for (i = 1; i < st->n; i++)
			if (st->s[i].last_try < st->s[oldest].last_try)
				oldest = i;
		i = oldest;
	}
	memset(&st->s[i], 0, sizeof(st->s[i]));
	snprintf(st->s[i].key, sizeof(st->s[i].key), "%s", key);
	return &st->s[i];
}

struct client_stats *
client_stats_load(const char *path, struct err *e)
{
	struct client_stats *st;
	json_error_t je;
	json_t *j, *peers, *v;
	const char *key;

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		err_set(e, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&st->mu, NULL);
	if (path == NULL)
		return st;
	if ((st->path = strdup(path)) == NULL) {
		client_stats_free(st);
		err_set(e, "out of memory");
		return NULL;
	}
	if ((j = json_load_file(path, 0, &je)) == NULL) {
		if (access(path, F_OK) == 0)
			log_warn("%s: unreadable, starting afresh: %s", path,
				 je.text);
		return st;
	}
	st->requests = (uint64_t)json_integer_value(json_object_get(j,
								   "requests"));
	peers = json_object_get(j, "peers");
	json_object_foreach(peers, key, v) {
		struct client_stat *s;

		if (!json_is_object(v) || strlen(key) >= sizeof(s->key))
			continue;
		if ((s = select_find(st, key, true)) == NULL)
			break;
		s->samples = (unsigned)json_integer_value(
		    json_object_get(v, "samples"));
		s->latency_s = json_number_value(json_object_get(v,
								 "latency_s"));
		s->bw_Bps = json_number_value(json_object_get(v, "bw_Bps"));
		s->fails = (unsigned)json_integer_value(json_object_get(v,
								  "fails"));
		s->fails_total = (unsigned)json_integer_value(
		    json_object_get(v, "fails_total"));
		s->last_try = json_integer_value(json_object_get(v,
								 "last_try"));
		if (!(s->latency_s >= 0))
			s->latency_s = 0;
		if (!(s->bw_Bps >= 0))
			s->bw_Bps = 0;
	}
	json_decref(j);
	return st;
}

void
client_stats_free(struct client_stats *st)
{
	if (st == NULL)
		return;
	pthread_mutex_destroy(&st->mu);
	free(st->path);
	free(st);
}

int
client_stats_save(struct client_stats *st, struct err *e)
{
	json_t *j, *peers;
	char *tmp = NULL;
	size_t i;
	int rc = -1;

	if (st->path == NULL)
		return 0;
	if ((peers = json_object()) == NULL)
		return err_set(e, "out of memory");
	for (i = 0; i < st->n; i++) {
		const struct client_stat *s = &st->s[i];

		json_object_set_new(peers, s->key, json_pack(
		    "{s:i, s:f, s:f, s:i, s:i, s:I}", "samples",
		    (int)s->samples, "latency_s", s->latency_s, "bw_Bps",
		    s->bw_Bps, "fails", (int)s->fails, "fails_total",
		    (int)s->fails_total, "last_try", (json_int_t)s->last_try));
	}
	j = json_pack("{s:I, s:o}", "requests", (json_int_t)st->requests,
		      "peers", peers);
	if (j == NULL)
		return err_set(e, "out of memory");
	if (asprintf(&tmp, "%s.%ld.%lx.tmp", st->path, (long)getpid(),
		     (unsigned long)pthread_self()) == -1) {
		json_decref(j);
		return err_set(e, "out of memory");
	}
	if (json_dump_file(j, tmp, JSON_COMPACT) == -1 ||
	    rename(tmp, st->path) == -1) {
		err_sys(e, "%s: cannot write", st->path);
		unlink(tmp);
	} else {
		rc = 0;
	}
	free(tmp);
	json_decref(j);
	return rc;
}

void
client_stats_order(struct client_stats *st, const struct client_lookup *l,
		   size_t *order)
{
	const struct client_stat **ss;
	char key[sizeof(st->s[0].key)];
	size_t i;

	if (l->npeers == 0)
		return;
	if ((ss = calloc(l->npeers, sizeof(*ss))) == NULL) {
		for (i = 0; i < l->npeers; i++)
			order[i] = i;
		return;
	}
	pthread_mutex_lock(&st->mu);
	for (i = 0; i < l->npeers; i++) {
		client_stat_key(&l->peers[i], key, sizeof(key));
		ss[i] = select_find(st, key, false);
	}
	client_select_order(ss, l->npeers, st->requests, order);
	st->requests++;
	pthread_mutex_unlock(&st->mu);
	free(ss);
}

void
client_stats_record(struct client_stats *st, const struct client_peer *p,
		    bool ok, double latency_s, uint64_t bytes, double xfer_s)
{
	char key[sizeof(st->s[0].key)];
	struct client_stat *s;
	struct err e;

	client_stat_key(p, key, sizeof(key));
	pthread_mutex_lock(&st->mu);
	if ((s = select_find(st, key, true)) != NULL) {
		if (ok)
			client_stat_success(s, latency_s, bytes, xfer_s,
					    select_now_ms());
		else
			client_stat_failure(s, select_now_ms());
	}
	if (client_stats_save(st, &e) == -1)
		log_warn("peer statistics: %s", e.msg);
	pthread_mutex_unlock(&st->mu);
}
