/*
 * fetch.h - fetching chunks from other peers, verified, into the store.
 *
 * A reader asks for chunk i of an object (a kernel, a base or a delta's
 * payload) and blocks until that chunk is in the store or no source has a
 * valid copy.  One fetch thread drives up to FETCH_PARALLEL transfers with
 * libcurl's multi interface; concurrent readers of the same chunk wait for
 * one transfer.  Sources come from the authority (through a callback) and
 * are raced: a job starts on the best source known to answer and, while
 * none has answered, on the next one every FETCH_STAGGER_MS (fetch_int.h),
 * a few at once; the first complete copy is verified.  A source that sends
 * bytes that fail their hash is marked bad for that object, never asked for
 * it again, and reported (fetcher_on_liar); one that fails or does not
 * answer within the first-byte deadline is down for a while (doubling per
 * failure in a row), across reads, and not asked meanwhile.
 *
 * Every wait is bounded: connect and first byte within FETCH_FIRST_BYTE_MS,
 * a low-speed limit (as CernVM-FS does) and a total time per transfer.
 * Sources are probed in parallel, never waited on one after another, so a
 * dead network gives EIO within about FETCH_FIRST_BYTE_MS whatever their
 * number, and at once while they are all known down.
 */
#ifndef FED_FEDFS_FETCH_H
#define FED_FEDFS_FETCH_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "common/chunkidx.h"
#include "common/err.h"
#include "fedfs/store.h"

#define FETCH_PARALLEL 16
#define FETCH_ADDR_MAX 262
#define FETCH_SOURCES_MAX 64
/* Sent when the sources that hold a chunk all said busy and no other
 * could give it: the object server then serves it anyway. */
#define FETCH_LAST_RESORT_HDR "X-Fed-Last-Resort"

/*
 * Fill addrs (up to max "host:port" object-server addresses) with the
 * sources of the object named id (a kernel's or base's SHA-256, a
 * snapshot's id).  Returns how many, or -1 if none could be learnt.
 */
typedef int (*fetch_sources_fn)(void *arg, const uint8_t id[SHA256_LEN],
				char addrs[][FETCH_ADDR_MAX], int max);

/*
 * What a reader fetches from.  Owned by the caller, who keeps it alive
 * while any fetch of it may run (objects live as long as fedfs does).
 */
struct fetch_object {
	uint8_t id[SHA256_LEN];		/* whose sources to ask for */
	const struct chunk_index *index;
	char label[80];			/* for log lines: "base 3f2a.." */
};

struct fetcher;

/* A source caught sending bytes that are not the chunk they were asked
 * for: the evidence, for the authority. */
struct fetch_liar {
	uint8_t object[SHA256_LEN];	/* the fetch_object's id */
	char addr[FETCH_ADDR_MAX];	/* the source */
	uint32_t chunk;
	uint8_t expected[SHA256_LEN];	/* the index's hash of the chunk */
	uint8_t received[SHA256_LEN];	/* the hash of what it sent */
};

/* Called (from a verifier thread, no lock held) once per source and
 * object it lied about; must not block long: queue and return. */
typedef void (*fetch_liar_fn)(void *arg, const struct fetch_liar *l);

/* Start the fetch thread.  self: this peer's own object-server address,
 * never used as a source (may be NULL). */
int fetcher_start(struct store *s, fetch_sources_fn sources, void *arg,
		  const char *self, struct fetcher **out, struct err *e);
void fetcher_stop(struct fetcher *f);

/* Have liars reported to fn (call before the first fetch). */
void fetcher_on_liar(struct fetcher *f, fetch_liar_fn fn, void *arg);

/*
 * Make chunk i of o held in the store, fetching it if needed, and start
 * fetching the next `ahead` chunks in the background.  Returns 0 when the
 * chunk is held, -1 (e says which sources were tried and why) when none
 * could give a valid copy.
 */
int fetcher_get(struct fetcher *f, const struct fetch_object *o, uint32_t i,
		uint32_t ahead, struct err *e);

/*
 * The read path's step: chunk i of o, held and verified, as an open file
 * descriptor the caller closes, fetched first if need be (with the next
 * `ahead` behind it).  The descriptor is opened while the chunk is held
 * (for a fetched one, by its verifier, before any eviction could take it),
 * so a reader never finds the chunk gone between its fetch and its read.
 * Returns the fd, or -1 (e says which sources were tried and why).
 */
int fetcher_open(struct fetcher *f, const struct fetch_object *o, uint32_t i,
		 uint32_t ahead, struct err *e);

/* Start fetching chunks i+1 .. i+ahead of o in the background (those not
 * held nor on their way), without waiting for any: for a reader that
 * already has chunk i. */
void fetcher_ahead(struct fetcher *f, const struct fetch_object *o,
		   uint32_t i, uint32_t ahead);

/* Statistics for .status and /metrics (a new JSON object). */
json_t *fetcher_status(struct fetcher *f);

/* Prometheus text of the same figures (malloc'd). */
char *fetcher_metrics(struct fetcher *f, size_t *len);

#endif
