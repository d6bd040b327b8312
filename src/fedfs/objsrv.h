/*
 * objsrv.h - the object server: every peer serves the verified chunks it
 * holds to other peers, at GET /objects/<sha256> (one Range allowed),
 * and its figures at GET /metrics (Prometheus text).  A HEAD is answered
 * with the status and headers of the GET, without the body, and is never
 * told busy (503): it costs no upload.
 *
 * A peer that mirrors the authority's signed lookup answers (fedfs/mirror.h)
 * serves them at GET /v1/lookup?host=H&port=P, the authority's own path;
 * 404 when it holds none for that service.
 *
 * Only chunks in the store are served, looked up by hash: the path is
 * never used to build a file name, so nothing outside the store can be
 * reached.  Anything else is 404.
 */
#ifndef FED_FEDFS_OBJSRV_H
#define FED_FEDFS_OBJSRV_H

#include <stdint.h>

#include "common/err.h"
#include "fedfs/store.h"

struct objsrv;

/* Appends the Prometheus text of the rest of fedfs to buf (may be NULL). */
typedef void (*objsrv_metrics_fn)(void *arg, char **buf, size_t *len);

/* Listen on "addr:port" (port 0: any; see objsrv_port) and serve s. */
int objsrv_start(const char *listen, struct store *s,
		 objsrv_metrics_fn metrics, void *metrics_arg,
		 struct objsrv **out, struct err *e);

/*
 * Serve GET /status (the JSON fn writes into a malloc'd buf, with the
 * metrics_arg given to objsrv_start) and the peer's page at GET / that
 * reads it.  Until this is called, /status answers 404.
 */
void objsrv_set_status(struct objsrv *o, objsrv_metrics_fn fn);

/*
 * The answer held for subject ("host:port"): a malloc'd buffer (*len
 * bytes) the object server frees, or NULL if none.  arg: the metrics_arg
 * given to objsrv_start.
 */
typedef char *(*objsrv_lookup_fn)(void *arg, const char *subject,
				  size_t *len);

/* Serve GET /v1/lookup from fn.  Until this is called, it answers 404. */
void objsrv_set_lookup(struct objsrv *o, objsrv_lookup_fn fn);

/* The port actually bound. */
uint16_t objsrv_port(const struct objsrv *o);

/* Bytes and requests served so far. */
void objsrv_counters(const struct objsrv *o, uint64_t *bytes,
		     uint64_t *requests, uint64_t *not_found);

void objsrv_stop(struct objsrv *o);

#endif
