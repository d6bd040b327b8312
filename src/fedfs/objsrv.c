/*
 * objsrv.c - serving verified chunks to other peers (see objsrv.h).
 *
 * libmicrohttpd with its own epoll thread pool.  A chunk is answered from
 * its file with MHD_create_response_from_fd_at_offset64, which sends it
 * with sendfile(2): no copy through this process.  Nothing here writes.
 *
 * Which connections are taken, and how many from whom, is objsrv_conn.c's:
 * a total well under the fd limit, a share per address, and room made for
 * newcomers by evicting idle connections of the busiest address.  Idle
 * connections are closed after OBJSRV_TIMEOUT_S.  libmicrohttpd's own
 * messages (a malformed request, a refusal) go to the log at most one per
 * OBJSRV_LOG_EVERY_S, with how many were not said.
 *
 * Locks: upload_lock, objsrv_recent_lock and the connection table's lock
 * (objsrv_conn.c) are each taken alone, never one inside another.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <time.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include <sys/resource.h>

#include <jansson.h>

#include "common/authapi.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "fedfs/fetch.h"
#include "fedfs/objsrv.h"
#include "fedfs/objsrv_conn.h"

#define OBJSRV_PREFIX "/objects/"
/* threads serving connections: more than cores, as a chunk not in the page
 * cache is read from disk inside sendfile and holds its thread, and every
 * connection on it, meanwhile (2 threads: a peer's 16 parallel fetches
 * were served two disk reads at a time) */
#define OBJSRV_THREADS 8
/* a connection idle this long is closed (a fetcher reconnects in a
 * round trip; a flood's idle ones hold nothing longer) */
#define OBJSRV_TIMEOUT_S 15
#define OBJSRV_LOG_EVERY_S 10.0	/* libmicrohttpd's lines: at most one per */
#define OBJSRV_MAX_UPLOADS 32	/* chunks sent at once; then 503 */
#define OBJSRV_CLIENT_UPLOADS (OBJSRV_MAX_UPLOADS / 2)	/* ... to one client */
#define OBJSRV_SPREAD 1			/* sends of one chunk per window ... */
#define OBJSRV_RELAY_SPREAD 4		/* ... or, of one fetched from a peer, */
#define OBJSRV_WINDOW_MS 2000		/* ... after which askers hear 503 */
#define OBJSRV_RECENT 4096		/* chunks remembered for that */

_Static_assert(OBJSRV_CLIENT_UPLOADS >= FETCH_PARALLEL,
	       "a fetcher's parallel transfers to one source fit its share");

/* An asker (see objsrv_client_key) and the chunk bodies being sent to it. */
struct objsrv_client {
	uint8_t key[16];
	unsigned uploads;		/* 0: a free entry */
};

struct objsrv {
	struct MHD_Daemon *mhd;
	struct store *store;
	uint16_t port;
	objsrv_metrics_fn metrics;
	void *metrics_arg;
	_Atomic(objsrv_metrics_fn) status;	/* /status; set once, any time */
	_Atomic(objsrv_lookup_fn) lookup;	/* /v1/lookup; set once */
	_Atomic uint64_t bytes, requests, not_found, busy;
	pthread_mutex_t upload_lock;
	unsigned uploads;		/* chunk bodies being sent; upload_lock */
	/* whom they go to; upload_lock.  Each client in it has at least one
	 * upload, so OBJSRV_MAX_UPLOADS entries always have room. */
	struct objsrv_client clients[OBJSRV_MAX_UPLOADS];
	/* what libmicrohttpd said while objsrv_start waited for it, to go on
	 * fedfs's own line if it fails (only the starter touches it) */
	pthread_t starter;
	bool starting;
	char why[512];
	struct objsrv_conns conns;
	pthread_mutex_t log_lock;	/* guards the two below */
	double logged;			/* mono_now() of the last MHD line */
	unsigned long unlogged;		/* MHD lines not said since */
};

/* A chunk recently sent, and how often in its window. */
struct objsrv_recent {
	uint8_t hash[SHA256_LEN];
	uint64_t window_start_ms;
	unsigned sends;
};

static pthread_mutex_t objsrv_recent_lock = PTHREAD_MUTEX_INITIALIZER;
static struct objsrv_recent objsrv_recent[OBJSRV_RECENT];

static uint64_t
objsrv_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/*
 * Should this send of chunk hash go ahead?  Peers that read the same
 * snapshot at once ask for the same chunk at once; sending it to
 * everybody makes this peer (typically the owner) the bottleneck.  So a
 * chunk copied in here (published) is sent at most OBJSRV_SPREAD times per
 * window: later askers hear 503 and fetch it from the peers that just got
 * it (fetch.c waits and asks again; if no other source could give it at
 * all, it says so with FETCH_LAST_RESORT_HDR and is served).  A peer that
 * fetched the chunk itself sends it to OBJSRV_RELAY_SPREAD askers per
 * window, so it spreads as a tree (1, 4, 16...) and not as a chain, one
 * new holder per window, while the origin waits out its window.  A lone
 * reader never asks twice and is never refused.
 */
static bool
objsrv_spread_ok(const uint8_t hash[SHA256_LEN], unsigned limit)
{
	uint32_t slot;
	struct objsrv_recent *r;
	uint64_t now = objsrv_now_ms();
	bool ok = true;

	memcpy(&slot, hash, sizeof(slot));
	r = &objsrv_recent[slot % OBJSRV_RECENT];
	pthread_mutex_lock(&objsrv_recent_lock);
	if (memcmp(r->hash, hash, SHA256_LEN) != 0 ||
	    now - r->window_start_ms > OBJSRV_WINDOW_MS) {
		memcpy(r->hash, hash, SHA256_LEN);
		r->window_start_ms = now;
		r->sends = 0;
	}
	if (r->sends >= limit)
		ok = false;
	else
		r->sends++;
	pthread_mutex_unlock(&objsrv_recent_lock);
	return ok;
}

/*
 * The client a connection counts against: its IPv4 address, or the /64 of
 * its IPv6 one (a host is typically given a whole /64 and may pick any
 * address in it; the server listens on IPv4 only today), as 16 bytes:
 * IPv4 as ::ffff:a.b.c.d, which no /64 with its host half zeroed can be.
 */
static void
objsrv_client_key(struct MHD_Connection *c, uint8_t key[16])
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	objsrv_addr_key(ci != NULL ? ci->client_addr : NULL, key);
}

/*
 * Take an upload slot for the asker on c: the client entry that holds it,
 * or NULL (say busy) if all OBJSRV_MAX_UPLOADS are taken or this client
 * has its OBJSRV_CLIENT_UPLOADS.
 *
 * The cap alone let one asker take every slot: 32 connections that read
 * slowly hold them until OBJSRV_TIMEOUT_S (and again after reconnecting),
 * and meanwhile every other peer heard 503, even one whose only source
 * this is (FETCH_LAST_RESORT_HDR).  So one client holds at most
 * OBJSRV_CLIENT_UPLOADS, half: whoever else asks finds the other half.
 * Half, not less: a fedfs fetcher runs up to FETCH_PARALLEL transfers to
 * one source and should not hear busy for its own count.  A fixed share,
 * not one dealt out among those asking, which would have to remember who
 * asked and was refused: this counts only who is being sent to, at most
 * one entry per slot, so a table of OBJSRV_MAX_UPLOADS entries scanned
 * under one lock (nothing next to a send).  MHD's per-IP connection limit
 * cannot do it: it counts connections, not replies in flight.  Two
 * addresses together can still take every slot; what a share per address
 * bounds is what one peer, broken or hostile, does to the others.
 */
static struct objsrv_client *
objsrv_upload_take(struct objsrv *o, struct MHD_Connection *c)
{
	struct objsrv_client *cl = NULL, *free_cl = NULL;
	uint8_t key[16];

	objsrv_client_key(c, key);
	pthread_mutex_lock(&o->upload_lock);
	if (o->uploads >= OBJSRV_MAX_UPLOADS)
		goto busy;
	for (size_t i = 0; i < OBJSRV_MAX_UPLOADS && cl == NULL; i++) {
		struct objsrv_client *x = &o->clients[i];

		if (x->uploads == 0) {
			if (free_cl == NULL)
				free_cl = x;
		} else if (memcmp(x->key, key, sizeof(key)) == 0) {
			cl = x;
		}
	}
	if (cl == NULL) {		/* free_cl: fewer clients than slots */
		cl = free_cl;
		memcpy(cl->key, key, sizeof(key));
	} else if (cl->uploads >= OBJSRV_CLIENT_UPLOADS) {
		cl = NULL;
		goto busy;
	}
	cl->uploads++;
	o->uploads++;
busy:
	pthread_mutex_unlock(&o->upload_lock);
	return cl;
}

/* Give back the upload slot cl took. */
static void
objsrv_upload_give(struct objsrv *o, struct objsrv_client *cl)
{
	pthread_mutex_lock(&o->upload_lock);
	cl->uploads--;
	o->uploads--;
	pthread_mutex_unlock(&o->upload_lock);
}

static enum MHD_Result
objsrv_reply_text(struct MHD_Connection *c, unsigned status, const char *text,
		  const char *type)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text),
	    (void *)text, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
objsrv_error(struct objsrv *o, struct MHD_Connection *c, unsigned status,
	     const char *why)
{
	json_t *j = json_pack("{s:s}", "error", why);
	char *body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	enum MHD_Result ret;

	json_decref(j);
	if (status == MHD_HTTP_NOT_FOUND)
		o->not_found++;
	if (body == NULL)
		return MHD_NO;
	ret = objsrv_reply_text(c, status, body, "application/json");
	free(body);
	return ret;
}

/* Does the request on c come with a body?  None is expected: it is
 * refused (400) on the first call, before libmicrohttpd reads it, as a
 * response can be queued then and not while the body comes in (queued
 * later, it failed, and the asker got an empty reply). */
static bool
objsrv_has_body(struct MHD_Connection *c)
{
	const char *len = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		MHD_HTTP_HEADER_CONTENT_LENGTH);

	return MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL ||
	       (len != NULL && strspn(len, "0") != strlen(len));
}

/*
 * Parse a single "bytes=A-B", "bytes=A-" or "bytes=-N" range of a size-byte
 * object.  Returns 1 with [*from, *to] set, 0 if there is no Range header,
 * -1 if it cannot be satisfied or parsed.
 */
static int
objsrv_range(const char *h, uint64_t size, uint64_t *from, uint64_t *to)
{
	unsigned long long a, b;
	int n = 0;

	if (h == NULL)
		return 0;
	if (size == 0)
		return -1;
	if (sscanf(h, "bytes=-%llu%n", &b, &n) == 1 && h[n] == '\0') {
		if (b == 0)
			return -1;
		*from = b >= size ? 0 : size - b;
		*to = size - 1;
		return 1;
	}
	n = 0;
	if (sscanf(h, "bytes=%llu-%n", &a, &n) == 1 && h[n] == '\0') {
		b = size - 1;
	} else {
		n = 0;
		if (sscanf(h, "bytes=%llu-%llu%n", &a, &b, &n) != 2 ||
		    h[n] != '\0' || b < a)
			return -1;
		if (b >= size)
			b = size - 1;
	}
	if (a >= size)
		return -1;
	*from = a;
	*to = b;
	return 1;
}

static enum MHD_Result
objsrv_object(struct objsrv *o, struct MHD_Connection *c, const char *hex,
	      bool head, void **state)
{
	uint8_t hash[SHA256_LEN];
	uint64_t size, from = 0, to;
	struct objsrv_client *cl = NULL;
	struct MHD_Response *r;
	enum MHD_Result ret;
	unsigned status = MHD_HTTP_OK;
	char crange[96];
	int fd, rng;

	if (!hex_is_sha256(hex))
		return objsrv_error(o, c, MHD_HTTP_NOT_FOUND,
				    "objects are named by 64 lower-case hex "
				    "digits");
	hex_decode(hex, hash, SHA256_LEN);
	if ((fd = store_open_chunk(o->store, hash, &size)) < 0)
		return objsrv_error(o, c, MHD_HTTP_NOT_FOUND, "not held here");
	/* a peer that sends to everyone at once sends to nobody fast: past
	 * its upload slots, say busy, and the asker fetches from the peers
	 * that already have the chunk (fetch.c retries later).  The slot is
	 * taken first: a send refused for want of one counts for no spread. */
	if (!head && (cl = objsrv_upload_take(o, c)) != NULL &&
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					FETCH_LAST_RESORT_HDR) == NULL &&
	    !objsrv_spread_ok(hash, store_fetched(o->store, hash) ?
			      OBJSRV_RELAY_SPREAD : OBJSRV_SPREAD)) {
		objsrv_upload_give(o, cl);
		cl = NULL;
	}
	if (!head && cl == NULL) {
		close(fd);
		o->busy++;
		r = MHD_create_response_from_buffer(0, NULL,
						    MHD_RESPMEM_PERSISTENT);
		if (r == NULL)
			return MHD_NO;
		MHD_add_response_header(r, "Retry-After", "1");
		ret = MHD_queue_response(c, MHD_HTTP_SERVICE_UNAVAILABLE, r);
		MHD_destroy_response(r);
		return ret;
	}
	to = size ? size - 1 : 0;
	rng = objsrv_range(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
			   MHD_HTTP_HEADER_RANGE), size, &from, &to);
	if (rng < 0) {
		close(fd);
		if (cl != NULL)
			objsrv_upload_give(o, cl);
		snprintf(crange, sizeof(crange), "bytes */%" PRIu64, size);
		r = MHD_create_response_from_buffer(0, NULL,
						    MHD_RESPMEM_PERSISTENT);
		if (r == NULL)
			return MHD_NO;
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, crange);
		ret = MHD_queue_response(c, MHD_HTTP_RANGE_NOT_SATISFIABLE, r);
		MHD_destroy_response(r);
		return ret;
	}
	/* A HEAD gets the very response a GET would, so the same status
	 * and headers: one made from an empty buffer said Content-Length: 0
	 * of every chunk.  libmicrohttpd sends a HEAD the headers only and
	 * never reads the file.  Takes fd: closed by MHD when the response
	 * is destroyed. */
	r = MHD_create_response_from_fd_at_offset64(size ? to - from + 1 : 0,
						     fd, (int64_t)from);
	if (r == NULL) {
		close(fd);
		if (cl != NULL)
			objsrv_upload_give(o, cl);
		return MHD_NO;
	}
	if (rng > 0) {
		status = MHD_HTTP_PARTIAL_CONTENT;
		snprintf(crange, sizeof(crange), "bytes %" PRIu64 "-%" PRIu64
			 "/%" PRIu64, from, to, size);
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, crange);
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/octet-stream");
	/* content-addressed: the bytes of a name never change */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
				"public, max-age=31536000, immutable");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	if (!head && size > 0)
		o->bytes += to - from + 1;
	if (cl != NULL && ret == MHD_YES)
		*state = cl;		/* given back when the reply is done */
	else if (cl != NULL)
		objsrv_upload_give(o, cl);
	return ret;
}

/* 200 with buf (malloc'd, len bytes, freed here) as type. */
static enum MHD_Result
objsrv_reply_buffer(struct MHD_Connection *c, char *buf, size_t len,
		    const char *type)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
objsrv_metrics(struct objsrv *o, struct MHD_Connection *c)
{
	struct store_stats st;
	unsigned open;
	uint64_t refused, evicted;
	char *buf = NULL, *more = NULL;
	size_t len = 0, mlen = 0;
	int n;

	store_get_stats(o->store, &st);
	objsrv_conns_counts(&o->conns, &open, &refused, &evicted);
	n = asprintf(&buf,
	    "# TYPE fedfs_served_connections gauge\n"
	    "fedfs_served_connections %u\n"
	    "# TYPE fedfs_served_connections_refused_total counter\n"
	    "fedfs_served_connections_refused_total %" PRIu64 "\n"
	    "# TYPE fedfs_served_connections_evicted_total counter\n"
	    "fedfs_served_connections_evicted_total %" PRIu64 "\n"
	    "# TYPE fedfs_served_bytes_total counter\n"
	    "fedfs_served_bytes_total %" PRIu64 "\n"
	    "# TYPE fedfs_served_requests_total counter\n"
	    "fedfs_served_requests_total %" PRIu64 "\n"
	    "# TYPE fedfs_served_not_found_total counter\n"
	    "fedfs_served_not_found_total %" PRIu64 "\n"
	    "# TYPE fedfs_served_busy_total counter\n"
	    "fedfs_served_busy_total %" PRIu64 "\n"
	    "# TYPE fedfs_cache_bytes gauge\nfedfs_cache_bytes %" PRIu64 "\n"
	    "# TYPE fedfs_cache_max_bytes gauge\nfedfs_cache_max_bytes %" PRIu64 "\n"
	    "# TYPE fedfs_cache_chunks gauge\nfedfs_cache_chunks %" PRIu64 "\n"
	    "# TYPE fedfs_cache_evictions_total counter\n"
	    "fedfs_cache_evictions_total %" PRIu64 "\n"
	    "# TYPE fedfs_cache_unsynced_chunks gauge\n"
	    "fedfs_cache_unsynced_chunks %" PRIu64 "\n",
	    open, refused, evicted,
	    (uint64_t)o->bytes, (uint64_t)o->requests, (uint64_t)o->not_found,
	    (uint64_t)o->busy,
	    st.bytes, st.max_bytes, st.chunks, st.evictions,
	    st.unsynced_chunks);
	if (n < 0)
		return MHD_NO;
	len = (size_t)n;
	if (o->metrics != NULL) {
		o->metrics(o->metrics_arg, &more, &mlen);
		if (more != NULL) {
			char *all = realloc(buf, len + mlen + 1);

			if (all != NULL) {
				memcpy(all + len, more, mlen + 1);
				buf = all;
				len += mlen;
			}
			free(more);
		}
	}
	return objsrv_reply_buffer(c, buf, len, "text/plain; version=0.0.4");
}

extern const char peer_page[];

void
objsrv_set_status(struct objsrv *o, objsrv_metrics_fn fn)
{
	atomic_store(&o->status, fn);
}

/* GET /status: this peer's .status JSON. */
static enum MHD_Result
objsrv_status(struct objsrv *o, struct MHD_Connection *c)
{
	objsrv_metrics_fn fn = atomic_load(&o->status);
	char *buf = NULL;
	size_t len = 0;

	if (fn == NULL)
		return objsrv_error(o, c, MHD_HTTP_NOT_FOUND, "no such path");
	fn(o->metrics_arg, &buf, &len);
	if (buf == NULL)
		return objsrv_error(o, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				    "out of memory");
	return objsrv_reply_buffer(c, buf, len, "application/json");
}

void
objsrv_set_lookup(struct objsrv *o, objsrv_lookup_fn fn)
{
	atomic_store(&o->lookup, fn);
}

/* "host:port" from the query of GET /v1/lookup into subject, the port
 * as the authority writes it (no leading zero).  Returns 0, or -1 with
 * why set. */
static int
objsrv_lookup_subject(struct MHD_Connection *c, char *subject, size_t size,
		      const char **why)
{
	const char *host = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
						       "host");
	const char *port = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
						       "port");
	unsigned long p;
	char *end;

	*why = "need ?host=H&port=P";
	if (host == NULL || port == NULL || host[0] == '\0' ||
	    port[0] < '0' || port[0] > '9' || strlen(port) > 5)
		return -1;
	p = strtoul(port, &end, 10);
	if (*end != '\0' || p < 1 || p > 65535)
		return -1;
	*why = "host name too long";
	if (strlen(host) > AUTHAPI_HOST_MAX ||
	    (size_t)snprintf(subject, size, "%s:%lu", host, p) >= size)
		return -1;
	return 0;
}

/* GET /v1/lookup?host=H&port=P: the signed answer mirrored for H:P. */
static enum MHD_Result
objsrv_lookup(struct objsrv *o, struct MHD_Connection *c)
{
	objsrv_lookup_fn fn = atomic_load(&o->lookup);
	char subject[AUTHAPI_ADDR_MAX + 1], why[AUTHAPI_ADDR_MAX + 64];
	const char *bad;
	size_t len = 0;
	char *buf;

	if (objsrv_lookup_subject(c, subject, sizeof(subject), &bad) == -1)
		return objsrv_error(o, c, MHD_HTTP_BAD_REQUEST, bad);
	buf = fn != NULL ? fn(o->metrics_arg, subject, &len) : NULL;
	if (buf == NULL) {
		snprintf(why, sizeof(why), "this peer mirrors no signed "
			 "answer for %s", subject);
		return objsrv_error(o, c, MHD_HTTP_NOT_FOUND, why);
	}
	return objsrv_reply_buffer(c, buf, len, "application/json");
}

static enum MHD_Result
objsrv_handle(void *cls, struct MHD_Connection *c, const char *url,
	      const char *method, const char *version, const char *upload,
	      size_t *upload_size, void **state)
{
	struct objsrv *o = cls;
	bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;

	(void)version;
	(void)upload;
	if (*state == NULL) {		/* first call: headers only */
		*state = o;
		objsrv_conns_busy(c, true);
		if (objsrv_has_body(c))
			return objsrv_error(o, c, MHD_HTTP_BAD_REQUEST,
					    "no request body expected");
		return MHD_YES;
	}
	if (*upload_size != 0)		/* refused above: never here */
		return MHD_NO;
	o->requests++;
	if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
		return objsrv_error(o, c, MHD_HTTP_METHOD_NOT_ALLOWED,
				    "only GET and HEAD");
	if (strncmp(url, OBJSRV_PREFIX, strlen(OBJSRV_PREFIX)) == 0)
		return objsrv_object(o, c, url + strlen(OBJSRV_PREFIX), head,
				     state);
	if (strcmp(url, "/metrics") == 0)
		return objsrv_metrics(o, c);
	if (strcmp(url, "/healthz") == 0)
		return objsrv_reply_text(c, MHD_HTTP_OK, "ok\n", "text/plain");
	if (strcmp(url, "/status") == 0)
		return objsrv_status(o, c);
	if (strcmp(url, "/v1/lookup") == 0)
		return objsrv_lookup(o, c);
	if (strcmp(url, "/") == 0 && atomic_load(&o->status) != NULL)
		return objsrv_reply_text(c, MHD_HTTP_OK, peer_page,
					 "text/html; charset=utf-8");
	return objsrv_error(o, c, MHD_HTTP_NOT_FOUND, "no such path");
}

/*
 * A request is done, sent or not.  A connection's state (the access
 * handler's *state) is NULL before its first call, then the objsrv, or,
 * while its reply is a chunk body, the struct objsrv_client whose upload
 * slot it holds: given back here.
 */
static void
objsrv_completed(void *cls, struct MHD_Connection *c, void **state,
		 enum MHD_RequestTerminationCode why)
{
	struct objsrv *o = cls;

	(void)why;
	objsrv_conns_busy(c, false);
	if (*state != NULL && *state != o)	/* its reply was a chunk body */
		objsrv_upload_give(o, *state);
	*state = NULL;
}

/*
 * libmicrohttpd's messages, as fedfs's log lines (not its own bare lines
 * on stderr).  While MHD_start_daemon runs, the last one is kept instead:
 * if the start fails, it says why on the one line that says so.
 */
static void
objsrv_mhd_log(void *arg, const char *fmt, va_list ap)
{
	struct objsrv *o = arg;
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
		msg[--n] = '\0';
	/* the pool's threads may log before the start returns: theirs go on
	 * to the log, not into why, which only the starter reads */
	if (pthread_equal(pthread_self(), o->starter) && o->starting) {
		snprintf(o->why, sizeof(o->why), "%s", msg);
		return;
	}
	/* one line per OBJSRV_LOG_EVERY_S: hostile traffic makes one per
	 * connection */
	pthread_mutex_lock(&o->log_lock);
	if (o->logged > 0 && mono_now() - o->logged < OBJSRV_LOG_EVERY_S) {
		o->unlogged++;
		pthread_mutex_unlock(&o->log_lock);
		return;
	}
	log_warn("object server: %s (and %lu more such lines unsaid in the "
		 "last %.0f s at most)", msg, o->unlogged, OBJSRV_LOG_EVERY_S);
	o->logged = mono_now();
	o->unlogged = 0;
	pthread_mutex_unlock(&o->log_lock);
}

int
objsrv_start(const char *listen, struct store *s, objsrv_metrics_fn metrics,
	     void *metrics_arg, struct objsrv **out, struct err *e)
{
	struct sockaddr_in sin;
	const char *colon = strrchr(listen, ':');
	char host[64];
	struct objsrv *o;
	const union MHD_DaemonInfo *info;
	unsigned limit, per_addr;
	struct rlimit rl;
	long port;
	char *end;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (colon == NULL || (size_t)(colon - listen) >= sizeof(host))
		return err_set(e, "--serve %s: expected ADDR:PORT", listen);
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 0 || port > 65535 ||
	    inet_pton(AF_INET, host, &sin.sin_addr) != 1)
		return err_set(e, "--serve %s: expected IPv4ADDR:PORT", listen);
	sin.sin_port = htons((uint16_t)port);
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return err_sys(e, "object server");
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		rl.rlim_cur = 1024;
	objsrv_conns_limits((unsigned long)rl.rlim_cur, &limit, &per_addr);
	if (objsrv_conns_init(&o->conns, limit, per_addr) != 0) {
		free(o);
		return err_set(e, "object server: cannot start");
	}
	o->store = s;
	pthread_mutex_init(&o->upload_lock, NULL);
	pthread_mutex_init(&o->log_lock, NULL);
	o->metrics = metrics;
	o->metrics_arg = metrics_arg;
	o->starter = pthread_self();
	o->starting = true;
	/* MHD binds sin; port is passed too for its messages, which
	 * would otherwise say "port 0" */
	o->mhd = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG,
	    (uint16_t)port, objsrv_conns_accept, &o->conns, objsrv_handle, o,
	    /* first, or what MHD checks before reading it goes to stderr */
	    MHD_OPTION_EXTERNAL_LOGGER, objsrv_mhd_log, o,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)OBJSRV_THREADS,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)OBJSRV_TIMEOUT_S,
	    /* the same share as objsrv_conns_accept; in all, room for the
	     * evicted ones until their threads have closed them */
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_addr,
	    MHD_OPTION_CONNECTION_LIMIT, limit + limit / 8,
	    MHD_OPTION_NOTIFY_CONNECTION, objsrv_conns_notify, &o->conns,
	    MHD_OPTION_NOTIFY_COMPLETED, objsrv_completed, o,
	    MHD_OPTION_END);
	o->starting = false;
	if (o->mhd == NULL) {
		pthread_mutex_destroy(&o->upload_lock);
		pthread_mutex_destroy(&o->log_lock);
		objsrv_conns_destroy(&o->conns);
		err_set(e, "object server: cannot listen on %s%s%s", listen,
			o->why[0] ? ": " : "", o->why);
		free(o);
		return -1;
	}
	if (o->why[0])	/* said, but started all the same */
		log_warn("object server: %s", o->why);
	log_info("object server: at most %u connections, %u from one address",
		 limit, per_addr);
	info = MHD_get_daemon_info(o->mhd, MHD_DAEMON_INFO_BIND_PORT);
	o->port = info ? info->port : (uint16_t)port;
	*out = o;
	return 0;
}

uint16_t
objsrv_port(const struct objsrv *o)
{
	return o->port;
}

void
objsrv_counters(const struct objsrv *o, uint64_t *bytes, uint64_t *requests,
		uint64_t *not_found)
{
	*bytes = o->bytes;
	*requests = o->requests;
	*not_found = o->not_found;
}

void
objsrv_stop(struct objsrv *o)
{
	if (o == NULL)
		return;
	MHD_stop_daemon(o->mhd);
	pthread_mutex_destroy(&o->upload_lock);
	pthread_mutex_destroy(&o->log_lock);
	objsrv_conns_destroy(&o->conns);
	free(o);
}
