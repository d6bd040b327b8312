/*
 * fedfs.h - what the parts of fedfs share: the catalogue of objects and the
 * nodes the filesystem shows.
 *
 *   /fed/kernels/<sha256>        OBJ_KERNEL  trusted, not revoked
 *   /fed/bases/<sha256>          OBJ_BASE
 *   /fed/deltas/<id>.fedsnap     OBJ_DELTA   announced, base+kernel trusted
 *   /fed/services/<host>:<port>  symlink to the newest delta of a service
 *   /fed/publish/, /fed/commit/  where owners and peers copy files in
 *   /fed/.status                 JSON figures
 *
 * Every file is a sequence of chunks named in an index: a kernel's or
 * base's comes with its trust entry, a delta's is in its signed manifest
 * (a delta file is its header — magic, manifest, signature line — which
 * fedfs holds in memory, followed by the payload chunks).
 *
 * Objects are created by catalogue refreshes and by ingest, and never
 * freed while fedfs runs: pointers to them stay valid, and a revoked or
 * withdrawn one is only marked not `listed`.  Nodes (inode numbers) work
 * the same way.  fedfs->lock (a rwlock) guards the tables; an object's
 * immutable fields (id, index, header) may be read without it once the
 * object is published in a table.
 */
#ifndef FED_FEDFS_H
#define FED_FEDFS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "common/chunkidx.h"
#include "common/crypto.h"
#include "common/manifest.h"
#include "common/signed_answer.h"
#include "fedfs/fetch.h"
#include "fedfs/objsrv.h"
#include "fedfs/store.h"

enum fobj_kind { OBJ_KERNEL, OBJ_BASE, OBJ_DELTA };

struct fobj {
	enum fobj_kind kind;
	uint8_t id[SHA256_LEN];		/* file hash, or snapshot id */
	char name[2 * SHA256_LEN + 16];	/* its file name */
	struct chunk_index index;	/* of the file, or of the payload */
	char *header;			/* delta: bytes before the payload */
	size_t header_len;
	uint64_t size;			/* header_len + index.size */
	time_t mtime;
	struct fetch_object fo;
	/* delta only */
	char service[MANIFEST_HOST_MAX + 8];	/* "host:port" */
	int64_t version;
	uint8_t base[SHA256_LEN], kernel[SHA256_LEN];
	const char *manifest;		/* inside header */
	size_t manifest_len;
	char sig_hex[2 * ED25519_SIG_LEN + 1];
	/* mutable, under fedfs->lock */
	bool usable;			/* the authority says so */
	bool announced;			/* we told it we hold chunks */
	bool published;			/* by this peer: kept, pinned */
	bool listed;			/* in the catalogue now */
	bool unnamed_said;		/* its service name is too long for
					 * services/, and the log said so */
	int pins;			/* commitments and publications */
	uint64_t ino;
};

enum node_type {
	NODE_DIR, NODE_OBJ, NODE_SERVICE, NODE_COMMIT, NODE_INCOMING,
	NODE_STATUS,
};

/* Fixed inode numbers. */
enum {
	INO_ROOT = 1, INO_KERNELS, INO_BASES, INO_DELTAS, INO_SERVICES,
	INO_PUBLISH, INO_COMMIT, INO_STATUS, INO_FIRST_DYNAMIC = 16,
};

#define FEDFS_NAME_MAX 200

struct node {
	uint64_t ino;
	enum node_type type;
	uint64_t parent;
	char name[FEDFS_NAME_MAX + 1];
	struct fobj *obj;		/* OBJ, SERVICE (target), COMMIT */
	bool live;			/* still shown */
	/* NODE_INCOMING: a file being written into publish/ or commit/ */
	int fd;
	char *path;
	bool ingested;
	int ingest_rc;
	uint64_t written;
	/* so far an exact copy of [0, copy_end) of copy_of (copied with
	 * copy_file_range from fedfs itself, as cp does): ingest need not
	 * hash again bytes that came from the store */
	struct fobj *copy_of;
	uint64_t copy_end;
	bool copy_broken;		/* written some other way too */
};

/* What the read path tells the authority, in the background (authlink.c). */
struct authlink_tell;

/*
 * The link to the authority as the read path sees it: whether it is known
 * down (then readers use the sources they last learnt, without waiting on
 * it), and what is to be told to it off the read path.  Locks: fs->lock
 * may be held when link.lock is taken, never the other way round.
 */
struct authlink {
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* something to tell, or stop */
	pthread_t thread;
	bool started, stop;		/* lock */
	double down_until;		/* lock: mono_now(); not asked till */
	unsigned fails;			/* lock: calls failed in a row */
	struct authlink_tell *head, *tail;	/* lock: to tell, in order */
	unsigned queued;		/* lock */
};

struct fedfs {
	/* configuration */
	char *mountpoint, *state_dir, *authority, *serve, *public_addr;
	uint8_t seed[ED25519_SEED_LEN], pub[ED25519_PUB_LEN];
	char peer_id[2 * ED25519_PUB_LEN + 1];
	uint64_t cache_max;

	struct store *store;
	struct fetcher *fetcher;
	struct objsrv *objsrv;
	struct scrubber *scrubber;	/* NULL: not scrubbing */

	pthread_rwlock_t lock;
	struct fobj **objs;
	size_t nobjs;
	struct node **nodes;		/* by ino; NULL for unused */
	size_t nnodes;
	json_t *trusted;		/* last GET /v1/trusted "trusted" */
	time_t refreshed;		/* last successful catalogue refresh */
	time_t authority_contact;	/* last answer from the authority */
	char authority_error[ERR_MSG_MAX];
	uint64_t ingest_ok, ingest_refused;

	pthread_t refresher;
	pthread_mutex_t refresh_lock;	/* one refresh at a time */
	pthread_cond_t refresh_cond;
	bool stopping;
	bool registered;		/* POST /v1/peers answered */
	time_t register_next;		/* when to register (again), mono s */
	int peer_ttl;			/* the authority said: again within */
	struct fuse_session *session;
	struct authlink link;
	/* --authority-key: sources answers must verify (catalog.c); the
	 * last verified one of each object, to refuse a rollback */
	struct signed_trust trust;
	pthread_mutex_t sources_lock;
	json_t *sources_held;	/* sources_lock: hex -> {"v": version,
				 * "a": answer} */
	/* --authority-key: the signed lookup answers of the services this
	 * peer hosts, served to clients (mirror.h; its own lock); NULL
	 * without a pinned key */
	struct mirror *mirror;
};

/* authlink.c */
int authlink_start(struct fedfs *fs);
void authlink_stop(struct fedfs *fs);
/* Is the authority known unreachable now?  Then a reader does not ask
 * it: *left (may be NULL) says for how many more seconds. */
bool authlink_down(struct fedfs *fs, double *left);
/* A call to the authority reached it (or not: why), for authlink_down. */
void authlink_result(struct fedfs *fs, bool reached, const char *why);
/* Announce holding object id, in the background. */
void authlink_announce(struct fedfs *fs, const uint8_t id[SHA256_LEN]);
/* A fetch_liar_fn (arg: the fedfs): report the liar, in the background. */
void authlink_liar(void *arg, const struct fetch_liar *l);

/* catalog.c */
int catalog_load(struct fedfs *fs);	/* from the state dir */
/* Ask the authority for the catalogue.  timeout_ms > 0 (a caller someone
 * waits on): in that time at most, and not at all while another refresh
 * runs; 0: the default bound per request, after any refresh under way. */
int catalog_refresh(struct fedfs *fs, long timeout_ms);
int catalog_start(struct fedfs *fs);	/* the periodic refresher */
void catalog_stop(struct fedfs *fs);
int catalog_sources(void *arg, const uint8_t id[SHA256_LEN],
		    char addrs[][FETCH_ADDR_MAX], int max);
/* Tell the authority this peer holds (part of) id; false if it could not
 * (then the object is marked not announced, to be tried again). */
bool catalog_announce(struct fedfs *fs, const uint8_t id[SHA256_LEN]);
/* Name the chunk hash for a log line ("chunk 3 of base 3f2a.."), into
 * buf, if an object has it (store_describe_fn).  Takes the lock (read),
 * waiting for it 1 s at most; buf is left as it was if it cannot. */
void catalog_describe_chunk(void *arg, const uint8_t hash[SHA256_LEN],
			    char *buf, size_t bufsz);
/* Lock held (write): */
struct fobj *catalog_find(struct fedfs *fs, enum fobj_kind kind,
			  const uint8_t id[SHA256_LEN]);
const json_t *catalog_trusted_entry(struct fedfs *fs,
				    const uint8_t sha[SHA256_LEN],
				    const char *kind);
/* Write the catalogue to STATE/catalog.json (what a restart with the
 * authority down shows, and what pins.json's entries are looked up in).
 * Lock held. */
void catalog_save(struct fedfs *fs);
struct fobj *catalog_add_delta(struct fedfs *fs, const char *manifest,
			       size_t len, const uint8_t sig[ED25519_SIG_LEN],
			       const struct manifest *m);
int64_t catalog_newest_version(struct fedfs *fs, const char *service);
void catalog_rebuild_services(struct fedfs *fs);
struct node *node_new(struct fedfs *fs, enum node_type type, uint64_t parent,
		      const char *name, struct fobj *obj);
struct node *node_get(struct fedfs *fs, uint64_t ino);
struct node *node_lookup(struct fedfs *fs, uint64_t parent, const char *name);

/* pins.c: what this peer committed to or published, kept across restarts */
int pins_load(struct fedfs *fs);
int pins_save(struct fedfs *fs);
void pins_object(struct fedfs *fs, struct fobj *o, bool pin);
/* Pin (or unpin) every chunk of ix in the store (counted, see store.h). */
void pins_chunks(struct fedfs *fs, const struct chunk_index *ix, bool pin);

/* ingest.c: a file written into publish/ or commit/ was closed */
int ingest_file(struct fedfs *fs, struct node *n);
int commit_withdraw(struct fedfs *fs, struct node *n);

/* mirror_feed.c: the mirror of signed lookup answers (mirror.h) */
struct mirror;
/* Ask the authority for the answer of every hosted service; keep the
 * fresh ones, forget the services no longer hosted.  Catalogue thread. */
void mirror_feed_refresh(struct fedfs *fs);
/* An objsrv_lookup_fn (arg: the fedfs). */
char *mirror_feed_serve(void *arg, const char *subject, size_t *len);

/* status.c */
json_t *fedfs_status(struct fedfs *fs);
void fedfs_metrics(void *arg, char **buf, size_t *len);
/* .status as JSON text (objsrv_set_status: the peer's /status). */
void fedfs_status_text(void *arg, char **buf, size_t *len);

#endif
