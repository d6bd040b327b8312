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
 * What is held is checked again before it is used: store_open_chunk
 * hashes a chunk's file before it hands it out, unless that file (same
 * inode, size and mtime) was verified before and is still wholly in the
 * page cache, which is then what a reader or a peer is sent.  So a chunk
 * is hashed at least once each time it enters the page cache through
 * fedfs (a page dropped and read back behind fedfs's back, by another
 * program, between two opens, waits for the scrubber).  A chunk whose
 * file is corrupt, short or gone is dropped (a pinned one stays pinned,
 * not held), logged in one line, and reads as not held: the caller
 * fetches it again.  store_verify_chunk does the same check unconditionally
 * (the scrubber, fsck).
 *
 * The store has a quota: after a put, least recently used chunks are
 * evicted until it fits, except pinned ones (chunks of snapshots this peer
 * committed to or published, and of the bases and kernels they need).  If
 * everything is pinned the store goes over its quota and says so.  A write
 * that finds the disk full (ENOSPC, EDQUOT) evicts unpinned chunks and
 * tries again; only if nothing can be evicted does store_put fail, with
 * STORE_LOCAL_ERROR (the disk's fault, not the bytes').
 *
 * All functions are thread-safe.
 */
#ifndef FED_FEDFS_STORE_H
#define FED_FEDFS_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/chunkidx.h"
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
	uint64_t bad_chunks;		/* dropped: corrupt, short or gone */
	uint64_t verified_bytes;	/* hashed again after being stored */
	uint64_t disk_full;		/* writes that met ENOSPC/EDQUOT */
	uint64_t write_errors;		/* puts that failed here */
};

/* What store_put and store_verify_chunk return besides 0. */
enum store_rc {
	STORE_LOCAL_ERROR = -1,	/* could not write or read it here */
	STORE_BAD_HASH = -2,	/* the bytes are not the chunk they claim */
};

/* Names a chunk for a log line ("chunk 3 of base 3f2a.."), into buf; the
 * store calls it when it drops a bad chunk, outside its lock. */
typedef void (*store_describe_fn)(void *arg, const uint8_t hash[SHA256_LEN],
				  char *buf, size_t bufsz);

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

/* Change the quota (0: none), evicting at once if the quota is on. */
void store_set_quota(struct store *s, uint64_t max_bytes);

/* What the store's filesystem could hold for it: the bytes free there
 * (for an unprivileged user: statvfs f_bavail) plus the bytes the store
 * holds already.  0 if statvfs fails. */
uint64_t store_capacity(struct store *s);

/* Verify chunks when opened (the default), or not (a benchmark knob:
 * --no-verify-store). */
void store_set_verify(struct store *s, bool on);
bool store_verifying(struct store *s);

/* How a dropped chunk is named in the log (default: its hash alone). */
void store_set_describe(struct store *s, store_describe_fn fn, void *arg);

/* True iff the chunk is held. */
bool store_has(struct store *s, const uint8_t hash[SHA256_LEN]);

/* True iff the chunk is held, once it is on disk for good, bytes and name:
 * a fetched chunk still waiting for the syncer is waited for, and the
 * directory it was renamed into is synced if nobody did since. */
bool store_durable(struct store *s, const uint8_t hash[SHA256_LEN]);

/* Open a held chunk read-only and mark it used, verified (see above).
 * Returns an fd the caller closes, or -1 (errno ENOENT if not held, or
 * found bad and dropped just now).  *size gets its length. */
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
 * they do not match, nothing is stored and STORE_BAD_HASH is returned with
 * e saying "hash mismatch"; if they cannot be written here (disk full with
 * nothing left to evict, I/O error), STORE_LOCAL_ERROR.  Storing a chunk already held is a cheap success that
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

/*
 * Hash a held chunk's file now, whatever was verified before; drop it if
 * it is bad.  Returns 0 if good, STORE_BAD_HASH if it was bad (dropped
 * and logged; why gets "corrupt: got <hex>" or "short: N of M bytes"),
 * STORE_LOCAL_ERROR if it could not be read (errno; ENOENT: not held).
 * *bytes gets the bytes read.
 */
int store_verify_chunk(struct store *s, const uint8_t hash[SHA256_LEN],
		       uint64_t *bytes, char *why, size_t whysz);

/* The hashes of the chunks held now (a copy, malloc'd, *n of them; NULL
 * with *n 0 if none or out of memory): for the scrubber. */
uint8_t (*store_list(struct store *s, size_t *n))[SHA256_LEN];

/* Would n more pinned bytes fit?  The pinned bytes are never evicted, so
 * they must fit in what the filesystem has free plus what eviction can
 * give back (held, unpinned, synced chunks), keeping STORE_RESERVE spare
 * for the cache.  Returns 0, or -1 with e saying how much is missing. */
#define STORE_RESERVE (4ull << 20)
int store_room_for_pinned(struct store *s, uint64_t n, struct err *e);

/* Bytes of the distinct chunks of ix that are not held: what storing
 * them will take. */
uint64_t store_missing_bytes(struct store *s, const struct chunk_index *ix);

/* Pin or unpin a chunk (counted: n pins need n unpins).  A chunk may be
 * pinned before it is held. */
void store_pin(struct store *s, const uint8_t hash[SHA256_LEN]);
void store_unpin(struct store *s, const uint8_t hash[SHA256_LEN]);

void store_get_stats(struct store *s, struct store_stats *st);

#endif
