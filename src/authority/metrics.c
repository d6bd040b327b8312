/*
 * metrics.c - Prometheus text exposition (format 0.0.4) of the authority.
 *
 *   fed_authority_requests_total{endpoint,status}        counter
 *   fed_authority_request_duration_seconds{endpoint}     histogram
 *   fed_authority_{peers,services,snapshots,...}         gauges (store)
 *   fed_authority_replay_signatures                      gauge
 *   fed_authority_answers_signed_total{kind}             counter (--key)
 *
 * Counters are C11 atomics updated with relaxed ordering by the request
 * threads, read without locks by the scraper: a scrape may see one request
 * counted in the total and not yet in its bucket, which Prometheus
 * tolerates.  Statuses are a fixed list (anything else counts as "other"),
 * so the label set is bounded.
 */
#include <stdio.h>
#include <stdlib.h>

#include "authority/authority.h"

static const char *const route_names[ROUTE_COUNT] = {
	[ROUTE_DASHBOARD] = "/",
	[ROUTE_HEALTHZ] = "/healthz",
	[ROUTE_METRICS] = "/metrics",
	[ROUTE_PEERS] = "/v1/peers",
	[ROUTE_PEER] = "/v1/peers/{id}",
	[ROUTE_TRUSTED] = "/v1/trusted",
	[ROUTE_TRUSTED_ONE] = "/v1/trusted/{sha256}",
	[ROUTE_SNAPSHOTS] = "/v1/snapshots",
	[ROUTE_SNAPSHOT] = "/v1/snapshots/{id}",
	[ROUTE_SOURCES] = "/v1/sources/{sha256}",
	[ROUTE_COMMITMENTS] = "/v1/commitments",
	[ROUTE_COMMITMENT] = "/v1/commitments/{id}",
	[ROUTE_LOOKUP] = "/v1/lookup",
	[ROUTE_SERVICE_PEERS] = "/v1/services/{service}/peers",
	[ROUTE_REPORTS] = "/v1/reports",
	[ROUTE_KEYS] = "/v1/keys",
	[ROUTE_KEY] = "/v1/keys/{key}",
	[ROUTE_UNKNOWN] = "unknown",
};

static const unsigned metrics_statuses[METRICS_STATUSES - 1] = {
	200, 201, 400, 401, 403, 404, 405, 409, 410, 413, 414, 422, 500,
	503, 431,
};

/* Upper bounds of the latency buckets, microseconds; the last is +Inf. */
static const uint64_t metrics_bounds_us[METRICS_BUCKETS - 1] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
	250000, 500000, 1000000,
};

const char *
route_name(enum route_id id)
{
	return (unsigned)id < ROUTE_COUNT ? route_names[id] : "unknown";
}

static unsigned
metrics_status_index(unsigned status)
{
	unsigned i;

	for (i = 0; i < METRICS_STATUSES - 1; i++)
		if (metrics_statuses[i] == status)
			return i;
	return METRICS_STATUSES - 1;
}

void
metrics_observe(struct metrics *m, enum route_id route, unsigned status,
		uint64_t usec)
{
	unsigned b;

	if ((unsigned)route >= ROUTE_COUNT)
		route = ROUTE_UNKNOWN;
	atomic_fetch_add_explicit(&m->requests[route]
				  [metrics_status_index(status)], 1,
				  memory_order_relaxed);
	for (b = 0; b < METRICS_BUCKETS - 1; b++)
		if (usec <= metrics_bounds_us[b])
			break;
	atomic_fetch_add_explicit(&m->buckets[route][b], 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&m->count[route], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->sum_us[route], usec,
				  memory_order_relaxed);
}

static void
metrics_gauge(FILE *f, const char *name, const char *help, long long v)
{
	fprintf(f, "# HELP fed_authority_%s %s\n# TYPE fed_authority_%s "
		"gauge\nfed_authority_%s %lld\n", name, help, name, name, v);
}

/* Answers signed, by kind: a lookup is signed once per change (and
 * refresh), not per request; sources per request. */
static void
metrics_signed(FILE *f, struct metrics *m)
{
	fputs("# HELP fed_authority_answers_signed_total Answers signed "
	      "with --key, by kind.\n"
	      "# TYPE fed_authority_answers_signed_total counter\n", f);
	fprintf(f, "fed_authority_answers_signed_total{kind=\"lookup\"} "
		"%llu\n", (unsigned long long)atomic_load_explicit(
		    &m->signed_answers[SIGNED_LOOKUP], memory_order_relaxed));
	fprintf(f, "fed_authority_answers_signed_total{kind=\"sources\"} "
		"%llu\n", (unsigned long long)atomic_load_explicit(
		    &m->signed_answers[SIGNED_SOURCES], memory_order_relaxed));
}

char *
metrics_render(struct metrics *m, const struct authstore_counts *c,
	       size_t replay_entries, size_t *len)
{
	char *buf = NULL;
	FILE *f;
	unsigned r, s, b;
	uint64_t v, cum;

	if ((f = open_memstream(&buf, len)) == NULL)
		return NULL;
	fputs("# HELP fed_authority_requests_total Requests answered, by "
	      "endpoint and status.\n"
	      "# TYPE fed_authority_requests_total counter\n", f);
	for (r = 0; r < ROUTE_COUNT; r++)
		for (s = 0; s < METRICS_STATUSES; s++) {
			v = atomic_load_explicit(&m->requests[r][s],
						 memory_order_relaxed);
			if (v == 0)
				continue;
			if (s < METRICS_STATUSES - 1)
				fprintf(f, "fed_authority_requests_total{"
					"endpoint=\"%s\",status=\"%u\"} %llu\n",
					route_names[r], metrics_statuses[s],
					(unsigned long long)v);
			else
				fprintf(f, "fed_authority_requests_total{"
					"endpoint=\"%s\",status=\"other\"} "
					"%llu\n", route_names[r],
					(unsigned long long)v);
		}

	fputs("# HELP fed_authority_request_duration_seconds Time from "
	      "request line to reply queued.\n"
	      "# TYPE fed_authority_request_duration_seconds histogram\n", f);
	for (r = 0; r < ROUTE_COUNT; r++) {
		uint64_t n = atomic_load_explicit(&m->count[r],
						  memory_order_relaxed);

		if (n == 0)
			continue;
		cum = 0;
		for (b = 0; b < METRICS_BUCKETS; b++) {
			cum += atomic_load_explicit(&m->buckets[r][b],
						    memory_order_relaxed);
			if (b < METRICS_BUCKETS - 1)
				fprintf(f, "fed_authority_request_duration_"
					"seconds_bucket{endpoint=\"%s\","
					"le=\"%g\"} %llu\n", route_names[r],
					(double)metrics_bounds_us[b] / 1e6,
					(unsigned long long)cum);
			else
				fprintf(f, "fed_authority_request_duration_"
					"seconds_bucket{endpoint=\"%s\","
					"le=\"+Inf\"} %llu\n", route_names[r],
					(unsigned long long)cum);
		}
		fprintf(f, "fed_authority_request_duration_seconds_sum{"
			"endpoint=\"%s\"} %.6f\n", route_names[r],
			(double)atomic_load_explicit(&m->sum_us[r],
						     memory_order_relaxed) /
			1e6);
		fprintf(f, "fed_authority_request_duration_seconds_count{"
			"endpoint=\"%s\"} %llu\n", route_names[r],
			(unsigned long long)cum);
	}

	metrics_gauge(f, "peers", "Registered peers.", c->peers);
	metrics_gauge(f, "trusted", "Trusted kernels and bases, revoked "
		      "included.", c->trusted);
	metrics_gauge(f, "revoked", "Revoked kernels and bases.", c->revoked);
	metrics_gauge(f, "services", "Services (host:port) announced.",
		      c->services);
	metrics_gauge(f, "snapshots", "Snapshots announced.", c->snapshots);
	metrics_gauge(f, "commitments", "Commitments.", c->commitments);
	metrics_gauge(f, "commitments_up", "Commitments reported up.",
		      c->commitments_up);
	metrics_gauge(f, "holdings", "Objects peers announced holding.",
		      c->holdings);
	metrics_gauge(f, "reports", "Misbehaviour reports kept.", c->reports);
	metrics_gauge(f, "owner_keys_rotated", "Owner keys rotated by their "
		      "holders.", c->keys_rotated);
	metrics_gauge(f, "owner_keys_revoked", "Owner keys revoked by the "
		      "admin.", c->keys_revoked);
	metrics_gauge(f, "owner_keys_frozen", "Revoked owner keys awaiting "
		      "a successor: their services take no snapshot.",
		      c->keys_frozen);
	metrics_gauge(f, "replay_signatures", "Signatures remembered for "
		      "replay protection.", (long long)replay_entries);
	metrics_signed(f, m);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
