/*
 * store.h - the chunk store: verified chunks on local disk, by hash.
 *
 * STATE/chunks/ab/abcdef... holds one chunk per file, named by its SHA-256.
 * A chunk reaches its name only through store_put(), which hashes the bytes
 * itself, writes them to a temporary file, fsyncs and renames: a crash
 * leaves no partial or unverified file under a final name, and store_open()
 * removes the temporaries a crash left.  A chunk fetched from a peer can be
 * read as soon as store_put returns, from its temporary file, while a
 * store thread syncs and names it (a crash before then loses it, which is
 * a cache miss); one copied in is durable when store_put returns.
 *
 * The store has a quota: after a put, least recently used chunks are
 * evicted until it fits, except pinned ones (chunks of snapshots this peer
 * committed to or published, and of the bases and kernels they need).  If
 * everything is pinned the store goes over its quota and says so.
 *
 * All functions are thread-safe.
 */
#ifndef FED_FEDFS_STORE_H
#define FED_FEDFS_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/crypto.h"
#include "common/err.h"

struct store;

struct store_stats {
	uint64_t bytes;			/* held */
	uint64_t max_bytes;		/* quota, 0: none */
	uint64_t chunks;		/* held */
	uint64_t pinned_chunks;		/* held and pinned */
	uint64_t unsynced_chunks;	/* held, fetched, not yet synced */
	uint64_t evictions;
	uint64_t puts;
};

/* Open (creating) the store under dir/chunks, remove temporaries and index
 * what is there.  max_bytes 0 means no quota.  *out owned by the caller:
 * store_close(). */
int store_open(const char *dir, uint64_t max_bytes, struct store **out,
	       struct err *e);

/* Start keeping the quota: evict what does not fit, and from now on as
 * chunks come.  Not before: the caller first pins what must stay (at
 * start, the chunks of the snapshots committed and published here, which
 * the quota evicted when store_open did this itself). */
void store_enforce_quota(struct store *s);
void store_close(struct store *s);

/* True iff the chunk is held. */
bool store_has(struct store *s, const uint8_t hash[SHA256_LEN]);

/* True iff the chunk is held, once it is on disk for good, bytes and name:
 * a fetched chunk still waiting for the syncer is waited for, and the
 * directory it was renamed into is synced if nobody did since. */
bool store_durable(struct store *s, const uint8_t hash[SHA256_LEN]);

/* Open a held chunk read-only and mark it used.  Returns an fd the caller
 * closes, or -1 (errno ENOENT if not held).  *size gets its length. */
int store_open_chunk(struct store *s, const uint8_t hash[SHA256_LEN],
		     uint64_t *size);

/* Ask for a held chunk to be read from disk into the page cache soon, by
 * a thread of the store's (a hint: dropped when many are waiting, ignored
 * if the chunk is not held).  For sequential readers of an object, whose
 * next chunks are each a small file the kernel's readahead meets cold. */
void store_prefetch(struct store *s, const uint8_t hash[SHA256_LEN]);

/* Path of a chunk's file (held or not) into buf (at least 256 bytes). */
void store_chunk_path(struct store *s, const uint8_t hash[SHA256_LEN],
		      char *buf, size_t bufsz);

/* Where a chunk came from when it was first stored: copied in here
 * (publish/, commit/), or fetched from another peer, which makes this peer
 * one that relays it (objsrv.c lets a relay send it to more askers at
 * once than its origin does). */
enum store_from { STORE_COPIED_IN, STORE_FETCHED };

/*
 * Store len bytes as the chunk named hash.  The bytes are hashed here: if
 * they do not match, nothing is stored and -1 is returned with e saying
 * "hash mismatch".  Storing a chunk already held is a cheap success that
 * changes nothing.  On success the chunk is held and readable; if from is
 * STORE_COPIED_IN it is also on disk for good, if STORE_FETCHED it will be
 * shortly (store_close waits for it).
 */
int store_put(struct store *s, const uint8_t hash[SHA256_LEN],
	      const void *buf, size_t len, enum store_from from,
	      struct err *e);

/* True iff the chunk is held and was fetched from a peer since this store
 * was opened (what was held at start counts as copied in). */
bool store_fetched(struct store *s, const uint8_t hash[SHA256_LEN]);

/* Pin or unpin a chunk (counted: n pins need n unpins).  A chunk may be
 * pinned before it is held. */
void store_pin(struct store *s, const uint8_t hash[SHA256_LEN]);
void store_unpin(struct store *s, const uint8_t hash[SHA256_LEN]);

void store_get_stats(struct store *s, struct store_stats *st);

#endif
