/*
 * fetch.c - one GET through the best peer serving the URL's service.
 *
 * read URL -> lookup host:port -> order the peers -> for each, libcurl with
 * CURLOPT_CONNECT_TO "host:port:addr:peerport" (the TCP connection goes to
 * the peer, the Host header and TLS name stay the service's) -> record the
 * outcome in the statistics.
 *
 * A peer that fails before the first body byte (refused, connect timeout
 * after CLIENT_CONNECT_TIMEOUT_MS, reset, empty reply) is marked failed and
 * the next one is tried, at most CLIENT_RETRY_MAX peers.  Once body bytes
 * have been written out there is no going back: that failure is final.
 * Each failure is remembered in r->tried for the error line.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "client/client.h"
#include "common/log.h"

struct fetch_sink {
	CURL *h;
	FILE *out;
	uint64_t bytes;
	bool checked, discard, write_failed;
};

static size_t
fetch_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct fetch_sink *s = arg;
	size_t n = size * nmemb;

	if (!s->checked) {
		long status = 0;

		curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
		s->discard = status >= 400;
		s->checked = true;
	}
	s->bytes += n;
	if (s->discard)
		return n;
	if (fwrite(ptr, 1, n, s->out) != n) {
		s->write_failed = true;
		return 0;
	}
	return n;
}

/* Append "what; " to r->tried. */
static void
fetch_tried(struct client_get_result *r, const struct client_peer *p,
	    const char *why)
{
	size_t len = strlen(r->tried);
	char id[16];

	snprintf(id, sizeof(id), "%.8s ", p->peer);
	snprintf(r->tried + len, sizeof(r->tried) - len, "%s%s%s:%u: %s",
		 len ? "; " : "", p->peer[0] ? id : "", p->addr, p->port, why);
}

/* Split url into host and port (default by scheme). */
static int
fetch_parse_url(const char *url, char *host, size_t hsize, uint16_t *port,
		struct err *e)
{
	CURLU *u = curl_url();
	char *h = NULL, *p = NULL, *scheme = NULL;
	int rc = -1;

	if (u == NULL)
		return err_set(e, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) !=
	    CURLUE_OK) {
		err_set(e, "%s: not a URL", url);
		goto done;
	}
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
		err_set(e, "%s: only http and https URLs", url);
		goto done;
	}
	if (strlen(h) >= hsize) {
		err_set(e, "%s: host name too long", url);
		goto done;
	}
	strcpy(host, h);
	*port = (uint16_t)atoi(p);
	rc = 0;
done:
	curl_free(scheme);
	curl_free(h);
	curl_free(p);
	curl_url_cleanup(u);
	return rc;
}

/* One attempt at peer p.  Returns the curl code. */
static CURLcode
fetch_one(CURL *h, const char *url, const char *host, uint16_t port,
	  const struct client_peer *p, const struct client_get_opts *o,
	  struct fetch_sink *s)
{
	char connect_to[2 * AUTHAPI_HOST_MAX + 32];
	struct curl_slist *ct;
	CURLcode rc;

	snprintf(connect_to, sizeof(connect_to),
		 strchr(p->addr, ':') ? "%s:%u:[%s]:%u" : "%s:%u:%s:%u", host,
		 port, p->addr, p->port);
	if ((ct = curl_slist_append(NULL, connect_to)) == NULL)
		return CURLE_OUT_OF_MEMORY;
	curl_easy_reset(h);
	memset(s, 0, sizeof(*s));
	s->h = h;
	s->out = o->out;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CONNECT_TO, ct);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 CLIENT_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
			 o->timeout_ms > 0 ? o->timeout_ms : 300000L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "fed-get/1");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fetch_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, o->progress ? 0L : 1L);
	rc = curl_easy_perform(h);
	curl_slist_free_all(ct);
	return rc;
}

int
client_get(const char *url, const struct client_get_opts *o,
	   struct client_get_result *r, struct err *e)
{
	char host[AUTHAPI_HOST_MAX + 1];
	struct client_lookup l;
	struct fetch_sink s;
	size_t *order = NULL, i, tries;
	uint16_t port = 0;
	CURL *h = NULL;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	if (fetch_parse_url(url, host, sizeof(host), &port, e) == -1)
		return -1;
	if (client_lookup_trusted(o->authority, o->cache_dir, o->trust, host,
				  port, (int64_t)time(NULL), &l, e) == -1)
		return -1;
	r->source = l.source;
	if (l.npeers == 0) {
		err_set(e, "%s:%u: no peer serves it now (%s)", host, port,
			client_source_name(l.source));
		goto done;
	}
	if ((order = calloc(l.npeers, sizeof(*order))) == NULL ||
	    (h = curl_easy_init()) == NULL) {
		err_set(e, "out of memory");
		goto done;
	}
	for (i = 0; i < l.npeers; i++)
		order[i] = i;
	if (o->stats != NULL && l.source != CLIENT_SRC_DNS)
		client_stats_order(o->stats, &l, order);
	tries = l.npeers < CLIENT_RETRY_MAX ? l.npeers : CLIENT_RETRY_MAX;
	for (i = 0; i < tries; i++) {
		const struct client_peer *p = &l.peers[order[i]];
		bool learn = o->stats != NULL && p->peer[0] != '\0';
		double ttfb = 0, total = 0;
		CURLcode cc;

		log_debug("GET %s via %.8s %s:%u", url,
			  p->peer[0] ? p->peer : "dns", p->addr, p->port);
		cc = fetch_one(h, url, host, port, p, o, &s);
		if (cc != CURLE_OK) {
			char why[160];
			long oserr = 0;

			curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &oserr);
			snprintf(why, sizeof(why), "%s%s%s", s.write_failed ?
				 "cannot write the body" :
				 curl_easy_strerror(cc), oserr ? ": " : "",
				 oserr ? strerror((int)oserr) : "");
			fetch_tried(r, p, why);
			if (s.write_failed) {
				err_set(e, "%s: cannot write the body", url);
				goto done;
			}
			if (learn)
				client_stats_record(o->stats, p, false, 0, 0, 0);
			if (s.bytes > 0) {
				err_set(e, "%s: transfer from %s:%u broke: %s",
					url, p->addr, p->port,
					curl_easy_strerror(cc));
				goto done;
			}
			continue;
		}
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
		curl_easy_getinfo(h, CURLINFO_STARTTRANSFER_TIME, &ttfb);
		curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &total);
		r->bytes = s.bytes;
		r->seconds = total;
		r->used = *p;
		if (learn)
			client_stats_record(o->stats, p, true, ttfb, s.bytes,
					    total - ttfb);
		rc = 0;
		goto done;
	}
	err_set(e, "%s: no peer answered (%s)", url, r->tried);
done:
	curl_easy_cleanup(h);
	free(order);
	client_lookup_free(&l);
	return rc;
}
