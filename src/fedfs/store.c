/*
 * store.c - the chunk store (see store.h).
 *
 * In memory: an open-addressing hash table of entries keyed by chunk hash,
 * and an intrusive LRU list of the held, unpinned ones (most recent at the
 * head).  Entries exist for held chunks and for pinned ones not yet held.
 * One mutex guards the table and the list; file I/O happens outside it
 * except for the rename that publishes a chunk and the unlink of an
 * eviction, which must agree with the table.
 *
 * A chunk fetched from a peer is readable as soon as it is verified and
 * written: a reader is given its temporary file while the syncer thread
 * fsyncs it and renames it to its name behind the reader's back (a crash
 * before that leaves only a temporary, removed at start: a cache miss, not
 * a bad chunk).  A pending chunk is never evicted.  At most
 * STORE_PENDING_MAX wait so; beyond that, and for chunks copied in (a
 * publisher's word that it holds them), store_put syncs before it returns.
 *
 * Verification (store_check_fd): an entry remembers that its file was
 * hashed and matched (verified, with the file's inode, size and mtime); a
 * later open trusts that only while mincore says the whole file is still
 * in the page cache, so the bytes a reader or peer is sent came into the
 * cache through a hash.  One thread hashes a chunk at a time (verifying);
 * others wait for its verdict.  A pending chunk is trusted: it was written
 * from bytes hashed a moment ago and is still dirty in the page cache.
 *
 * Locks: s->lock only (no other lock is taken under it; the describe
 * callback, which takes fedfs->lock, is called without it).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/hex.h"
#include "common/io.h"
#include "common/log.h"
#include "fedfs/store.h"

#define STORE_PREFETCH_MAX 64	/* chunks waiting to be read ahead */
#define STORE_READAHEAD_THREADS 4	/* opening them, in parallel */
#define STORE_PENDING_MAX 64	/* fetched chunks waiting to be synced */
#define STORE_FULL_RETRIES 3	/* writes tried again after ENOSPC */
#define STORE_HASH_BUF (256u << 10)	/* read at a time when verifying */

struct store_entry {
	uint8_t hash[SHA256_LEN];
	bool used;			/* slot in use */
	bool held;			/* file present */
	bool fetched;			/* from a peer (store_put) */
	bool pending;			/* held, in tmp/ till synced */
	bool name_synced;		/* its directory synced since named */
	uint64_t tmp_seq;		/* its name there, when pending */
	bool verified;			/* its file hashed and matched: */
	bool verifying;			/* a thread hashes it now */
	ino_t v_ino;			/* ... that file, as it was then */
	struct timespec v_mtime;
	uint32_t pins;
	uint64_t size;
	struct store_entry *prev, *next;	/* LRU, only held && !pins */
};

struct store {
	char *dir;			/* .../chunks */
	pthread_mutex_t lock;		/* guards every field below */
	uint64_t max_bytes;
	bool quota_on;			/* store_enforce_quota was called */
	bool verify;			/* store_set_verify; default on */
	store_describe_fn describe;	/* store_set_describe */
	void *describe_arg;
	pthread_cond_t verified_cond;	/* a chunk's verifying ended */
	struct store_entry *slots;	/* open addressing, power of two */
	size_t nslots, nused;
	struct store_entry *lru_head, *lru_tail;
	struct store_stats st;
	uint64_t tmp_seq;
	/* read-ahead from disk (store_prefetch): a ring of chunks for the
	 * read-ahead threads to open and fadvise, under the same lock */
	uint8_t ra_q[STORE_PREFETCH_MAX][SHA256_LEN];
	unsigned ra_head, ra_n;
	pthread_cond_t ra_cond;
	pthread_t ra_threads[STORE_READAHEAD_THREADS];
	int ra_started;
	bool ra_stopping;
	/* fetched chunks written and readable, to fsync and rename: a ring
	 * for the syncer thread, under the same lock */
	struct store_pend {
		uint8_t hash[SHA256_LEN];
		uint64_t seq;		/* tmp/PID.SEQ */
		int fd;
	} sync_q[STORE_PENDING_MAX];
	unsigned sync_head, sync_n;
	pthread_cond_t sync_cond;	/* something to sync, or stopping */
	pthread_cond_t synced_cond;	/* a batch was synced (store_durable) */
	pthread_t sync_thread;
	bool sync_started, sync_stopping;
};

/* --- table ------------------------------------------------------------ */

static size_t
store_slot_of(const struct store *s, const uint8_t hash[SHA256_LEN])
{
	uint64_t h;

	memcpy(&h, hash, sizeof(h));	/* already uniformly distributed */
	return (size_t)h & (s->nslots - 1);
}

/* The entry for hash, or NULL if absent (create: make one). */
static struct store_entry *
store_find(struct store *s, const uint8_t hash[SHA256_LEN], bool create);

static int
store_grow(struct store *s)
{
	struct store_entry *old = s->slots;
	size_t oldn = s->nslots;
	struct store_entry *nslots = calloc(oldn * 2, sizeof(*nslots));

	if (nslots == NULL)
		return -1;
	s->slots = nslots;
	s->nslots = oldn * 2;
	s->nused = 0;
	s->lru_head = s->lru_tail = NULL;
	/* re-insert, keeping LRU order: walk the old list tail to head */
	for (size_t i = 0; i < oldn; i++) {
		struct store_entry *o = &old[i], *n;

		if (!o->used)
			continue;
		n = store_find(s, o->hash, true);
		n->held = o->held;
		n->fetched = o->fetched;
		n->pending = o->pending;
		n->tmp_seq = o->tmp_seq;
		n->name_synced = o->name_synced;
		n->verified = o->verified;
		n->verifying = o->verifying;
		n->v_ino = o->v_ino;
		n->v_mtime = o->v_mtime;
		n->pins = o->pins;
		n->size = o->size;
	}
	/* order is lost on growth: rebuild the list in slot order (growth
	 * is rare and only makes eviction order approximate once) */
	for (size_t i = 0; i < s->nslots; i++) {
		struct store_entry *n = &s->slots[i];

		if (n->used && n->held && !n->pending && n->pins == 0) {
			n->prev = NULL;
			n->next = s->lru_head;
			if (s->lru_head)
				s->lru_head->prev = n;
			s->lru_head = n;
			if (s->lru_tail == NULL)
				s->lru_tail = n;
		}
	}
	free(old);
	return 0;
}

static struct store_entry *
store_find(struct store *s, const uint8_t hash[SHA256_LEN], bool create)
{
	size_t i = store_slot_of(s, hash);

	for (;;) {
		struct store_entry *x = &s->slots[i];

		if (!x->used) {
			if (!create)
				return NULL;
			if ((s->nused + 1) * 4 > s->nslots * 3) {
				if (store_grow(s) < 0)
					return NULL;
				return store_find(s, hash, true);
			}
			memset(x, 0, sizeof(*x));
			memcpy(x->hash, hash, SHA256_LEN);
			x->used = true;
			s->nused++;
			return x;
		}
		if (memcmp(x->hash, hash, SHA256_LEN) == 0)
			return x;
		i = (i + 1) & (s->nslots - 1);
	}
}

/* --- LRU -------------------------------------------------------------- */

static void
store_lru_unlink(struct store *s, struct store_entry *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else if (s->lru_head == x)
		s->lru_head = x->next;
	if (x->next)
		x->next->prev = x->prev;
	else if (s->lru_tail == x)
		s->lru_tail = x->prev;
	x->prev = x->next = NULL;
}

static bool
store_lru_linked(const struct store *s, const struct store_entry *x)
{
	return x->prev != NULL || s->lru_head == x;
}

static void
store_lru_push(struct store *s, struct store_entry *x)
{
	x->prev = NULL;
	x->next = s->lru_head;
	if (s->lru_head)
		s->lru_head->prev = x;
	s->lru_head = x;
	if (s->lru_tail == NULL)
		s->lru_tail = x;
}

/* Move a held, unpinned entry to the head (most recently used); a pending
 * one joins the list when it is synced. */
static void
store_touch(struct store *s, struct store_entry *x)
{
	if (!x->held || x->pending || x->pins > 0)
		return;
	if (store_lru_linked(s, x))
		store_lru_unlink(s, x);
	store_lru_push(s, x);
}

/* --- files ------------------------------------------------------------ */

void
store_chunk_path(struct store *s, const uint8_t hash[SHA256_LEN], char *buf,
		 size_t bufsz)
{
	char hex[2 * SHA256_LEN + 1];

	hex_encode(hash, SHA256_LEN, hex);
	snprintf(buf, bufsz, "%s/%.2s/%s", s->dir, hex, hex);
}

/* Path of the temporary file number seq into buf. */
static void
store_tmp_path(struct store *s, uint64_t seq, char *buf, size_t bufsz)
{
	snprintf(buf, bufsz, "%s/tmp/%d.%llu", s->dir, (int)getpid(),
		 (unsigned long long)seq);
}

/* fsync and close fd, closed whatever fails: -1 with errno from the first
 * failure. */
static int
store_fsync_close(int fd)
{
	int rc = fsync(fd), err = errno;

	if (close(fd) < 0 && rc == 0) {
		rc = -1;
		err = errno;
	}
	errno = err;
	return rc;
}

/* fsync the directory that holds path. */
static int
store_sync_dir(const char *path)
{
	char dir[512];
	char *slash;
	int fd, rc;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL)
		return 0;
	*slash = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = store_fsync_close(fd);
	return rc;
}

/* x is no longer held (its file is gone or going).  Lock held. */
static void
store_forget_locked(struct store *s, struct store_entry *x)
{
	if (store_lru_linked(s, x))
		store_lru_unlink(s, x);
	x->held = false;
	x->verified = false;
	s->st.bytes -= x->size;
	s->st.chunks--;
}

/* Evict the least recently used chunk.  Returns its size, 0 if there is
 * none to evict.  Lock held. */
static uint64_t
store_evict_one_locked(struct store *s)
{
	struct store_entry *x = s->lru_tail;
	char path[512];
	uint64_t size;

	if (x == NULL)
		return 0;
	store_chunk_path(s, x->hash, path, sizeof(path));
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("store: cannot evict %s: %s", path, strerror(errno));
	size = x->size;
	store_forget_locked(s, x);
	s->st.evictions++;
	return size > 0 ? size : 1;
}

/* Evict least recently used chunks until the store fits (once the quota
 * is on: store_enforce_quota).  Lock held. */
static void
store_evict_locked(struct store *s)
{
	if (!s->quota_on)
		return;
	while (s->max_bytes > 0 && s->st.bytes > s->max_bytes &&
	       store_evict_one_locked(s) > 0)
		;
	if (s->max_bytes > 0 && s->st.bytes > s->max_bytes)
		log_warn("store: %llu bytes held, over the %llu quota: the rest "
			 "is pinned by committed or published snapshots",
			 (unsigned long long)s->st.bytes,
			 (unsigned long long)s->max_bytes);
}

static int
store_mkdirs(const char *dir, struct err *e)
{
	char sub[600];

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return err_sys(e, "mkdir %s", dir);
	for (int i = 0; i < 256; i++) {
		snprintf(sub, sizeof(sub), "%s/%02x", dir, i);
		if (mkdir(sub, 0755) < 0 && errno != EEXIST)
			return err_sys(e, "mkdir %s", sub);
	}
	snprintf(sub, sizeof(sub), "%s/tmp", dir);
	if (mkdir(sub, 0700) < 0 && errno != EEXIST)
		return err_sys(e, "mkdir %s", sub);
	return 0;
}

/* Remove what a crash left in tmp/, and index every chunk file. */
static int
store_scan(struct store *s, struct err *e)
{
	char sub[600], path[900];
	struct dirent *d;
	struct stat st;
	DIR *dp;

	snprintf(sub, sizeof(sub), "%s/tmp", s->dir);
	if ((dp = opendir(sub)) == NULL)
		return err_sys(e, "open %s", sub);
	while ((d = readdir(dp)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", sub, d->d_name);
		if (unlink(path) == 0)
			log_info("store: removed %s, left by an interrupted "
				 "fetch", path);
	}
	closedir(dp);
	for (int i = 0; i < 256; i++) {
		snprintf(sub, sizeof(sub), "%s/%02x", s->dir, i);
		if ((dp = opendir(sub)) == NULL)
			return err_sys(e, "open %s", sub);
		while ((d = readdir(dp)) != NULL) {
			uint8_t hash[SHA256_LEN];
			struct store_entry *x;

			if (d->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", sub, d->d_name);
			if (!hex_is_sha256(d->d_name) ||
			    strncmp(d->d_name, sub + strlen(sub) - 2, 2) != 0 ||
			    lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
				log_warn("store: ignoring stray %s", path);
				continue;
			}
			hex_decode(d->d_name, hash, SHA256_LEN);
			if ((x = store_find(s, hash, true)) == NULL) {
				closedir(dp);
				return err_sys(e, "store index");
			}
			x->held = true;
			x->size = (uint64_t)st.st_size;
			s->st.bytes += x->size;
			s->st.chunks++;
			store_lru_push(s, x);
		}
		closedir(dp);
	}
	return 0;
}

/* A read-ahead thread: open each queued chunk and ask the kernel to read
 * it from disk in the background.  Opening is what costs when the chunk's
 * directory block and inode are not cached (a cold cache, after a reboot):
 * two or three small reads, one after another, each a disk's latency.
 * Here it is off the path of the read that will want the chunk next, and
 * STORE_READAHEAD_THREADS chunks are opened at once (one thread alone
 * left a warm read of a 256 MiB delta ~10% slower: bench/fedfs.sh). */
static void *
store_prefetcher(void *arg)
{
	struct store *s = arg;
	uint8_t hash[SHA256_LEN];

	pthread_setname_np(pthread_self(), "fed-readahead");
	pthread_mutex_lock(&s->lock);
	for (;;) {
		int fd;

		while (s->ra_n == 0 && !s->ra_stopping)
			pthread_cond_wait(&s->ra_cond, &s->lock);
		if (s->ra_stopping)
			break;
		memcpy(hash, s->ra_q[s->ra_head], SHA256_LEN);
		s->ra_head = (s->ra_head + 1) % STORE_PREFETCH_MAX;
		s->ra_n--;
		pthread_mutex_unlock(&s->lock);
		if ((fd = store_open_chunk(s, hash, NULL)) >= 0) {
			posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
			close(fd);
		}
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Give a pending chunk its name once synced (err 0), or drop it.  Lock
 * held. */
static void
store_synced_locked(struct store *s, const struct store_pend *p, int err)
{
	char tmp[600], path[512], hex[2 * SHA256_LEN + 1];
	struct store_entry *x;

	store_tmp_path(s, p->seq, tmp, sizeof(tmp));
	store_chunk_path(s, p->hash, path, sizeof(path));
	if (err == 0 && rename(tmp, path) < 0)
		err = errno;
	if ((x = store_find(s, p->hash, false)) == NULL)
		return;			/* cannot be: entries stay */
	x->pending = false;
	/* a put that synced the same chunk itself meanwhile (copied in) gave
	 * it its name all the same */
	if (err != 0 && access(path, F_OK) == 0) {
		unlink(tmp);
		err = 0;
	}
	if (err == 0) {
		store_touch(s, x);
		store_evict_locked(s);
		return;
	}
	hex_encode(p->hash, SHA256_LEN, hex);
	log_warn("store: chunk %.16s.. dropped: cannot sync %s: %s", hex, tmp,
		 strerror(err));
	unlink(tmp);
	store_forget_locked(s, x);
	s->st.write_errors++;
}

/* The syncer thread: make pending chunks durable and give them their
 * names, all that wait at once: their writeback is started together, then
 * each is fsynced.  (Synced one by one, each chunk waited for its own
 * write and journal commit, and the syncer fell behind a fetch.)  On
 * store_close, it syncs all that are left before it ends.  A chunk that
 * cannot be synced is dropped (a later read fetches it again): its name
 * never points at bytes that might not survive. */
static void *
store_syncer(void *arg)
{
	struct store *s = arg;
	struct store_pend batch[STORE_PENDING_MAX];
	int err[STORE_PENDING_MAX];
	unsigned n;

	pthread_setname_np(pthread_self(), "fed-sync");
	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (s->sync_n == 0 && !s->sync_stopping)
			pthread_cond_wait(&s->sync_cond, &s->lock);
		if (s->sync_n == 0)
			break;			/* stopping, and all synced */
		/* the slots stay taken until done: store_put's bound counts
		 * these too */
		n = s->sync_n;
		for (unsigned i = 0; i < n; i++)
			batch[i] = s->sync_q[(s->sync_head + i) %
					     STORE_PENDING_MAX];
		pthread_mutex_unlock(&s->lock);
		for (unsigned i = 0; i < n; i++)
			sync_file_range(batch[i].fd, 0, 0,
					SYNC_FILE_RANGE_WRITE);
		for (unsigned i = 0; i < n; i++) {
			err[i] = fsync(batch[i].fd) < 0 ? errno : 0;
			if (close(batch[i].fd) < 0 && err[i] == 0)
				err[i] = errno;
		}
		pthread_mutex_lock(&s->lock);
		s->sync_head = (s->sync_head + n) % STORE_PENDING_MAX;
		s->sync_n -= n;
		for (unsigned i = 0; i < n; i++)
			store_synced_locked(s, &batch[i], err[i]);
		pthread_cond_broadcast(&s->synced_cond);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

void
store_prefetch(struct store *s, const uint8_t hash[SHA256_LEN])
{
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->ra_n; i++)
		if (memcmp(s->ra_q[(s->ra_head + i) % STORE_PREFETCH_MAX],
			   hash, SHA256_LEN) == 0)
			goto out;		/* already on its way */
	if (s->ra_n == STORE_PREFETCH_MAX)
		goto out;			/* a hint: drop it */
	memcpy(s->ra_q[(s->ra_head + s->ra_n) % STORE_PREFETCH_MAX], hash,
	       SHA256_LEN);
	s->ra_n++;
	pthread_cond_signal(&s->ra_cond);
out:
	pthread_mutex_unlock(&s->lock);
}

int
store_open(const char *dir, uint64_t max_bytes, struct store **out,
	   struct err *e)
{
	struct store *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return err_sys(e, "store");
	if (asprintf(&s->dir, "%s/chunks", dir) < 0) {
		free(s);
		return err_sys(e, "store");
	}
	s->max_bytes = max_bytes;
	s->st.max_bytes = max_bytes;
	s->verify = true;
	s->nslots = 1024;
	if ((s->slots = calloc(s->nslots, sizeof(*s->slots))) == NULL) {
		free(s->dir);
		free(s);
		return err_sys(e, "store");
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->ra_cond, NULL);
	pthread_cond_init(&s->sync_cond, NULL);
	pthread_cond_init(&s->synced_cond, NULL);
	pthread_cond_init(&s->verified_cond, NULL);
	if (store_mkdirs(s->dir, e) < 0 || store_scan(s, e) < 0) {
		store_close(s);
		return -1;
	}
	for (int i = 0; i < STORE_READAHEAD_THREADS; i++) {
		if (pthread_create(&s->ra_threads[i], NULL, store_prefetcher,
				   s) != 0) {
			store_close(s);
			return err_set(e, "store: cannot start a read-ahead "
				       "thread");
		}
		s->ra_started++;
	}
	if (pthread_create(&s->sync_thread, NULL, store_syncer, s) != 0) {
		store_close(s);
		return err_set(e, "store: cannot start the syncer thread");
	}
	s->sync_started = true;
	*out = s;
	return 0;
}

void
store_enforce_quota(struct store *s)
{
	pthread_mutex_lock(&s->lock);
	s->quota_on = true;
	store_evict_locked(s);
	pthread_mutex_unlock(&s->lock);
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	if (s->sync_started) {		/* after syncing what is pending */
		pthread_mutex_lock(&s->lock);
		s->sync_stopping = true;
		pthread_cond_signal(&s->sync_cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->sync_thread, NULL);
	}
	if (s->ra_started > 0) {
		pthread_mutex_lock(&s->lock);
		s->ra_stopping = true;
		pthread_cond_broadcast(&s->ra_cond);
		pthread_mutex_unlock(&s->lock);
		for (int i = 0; i < s->ra_started; i++)
			pthread_join(s->ra_threads[i], NULL);
	}
	pthread_cond_destroy(&s->ra_cond);
	pthread_cond_destroy(&s->sync_cond);
	pthread_cond_destroy(&s->synced_cond);
	pthread_cond_destroy(&s->verified_cond);
	pthread_mutex_destroy(&s->lock);
	free(s->slots);
	free(s->dir);
	free(s);
}

bool
store_has(struct store *s, const uint8_t hash[SHA256_LEN])
{
	struct store_entry *x;
	bool held;

	pthread_mutex_lock(&s->lock);
	x = store_find(s, hash, false);
	held = x != NULL && x->held;
	pthread_mutex_unlock(&s->lock);
	return held;
}

bool
store_durable(struct store *s, const uint8_t hash[SHA256_LEN])
{
	struct store_entry *x;
	char path[512];
	bool held, synced;

	pthread_mutex_lock(&s->lock);
	/* found again after each wait: the table may have grown */
	while ((x = store_find(s, hash, false)) != NULL && x->held &&
	       x->pending)
		pthread_cond_wait(&s->synced_cond, &s->lock);
	held = x != NULL && x->held;
	synced = held && x->name_synced;
	pthread_mutex_unlock(&s->lock);
	if (!held || synced)
		return held;
	/* the syncer made the bytes durable and renamed the file, but a
	 * crash may still lose the rename until its directory is synced: a
	 * cache need not pay that for every chunk, a commitment does (on
	 * ext4 the first such sync commits the journal, the next are free) */
	store_chunk_path(s, hash, path, sizeof(path));
	if (store_sync_dir(path) < 0)
		return false;
	pthread_mutex_lock(&s->lock);
	if ((x = store_find(s, hash, false)) != NULL && x->held)
		x->name_synced = true;
	else
		held = false;		/* evicted meanwhile */
	pthread_mutex_unlock(&s->lock);
	return held;
}

bool
store_fetched(struct store *s, const uint8_t hash[SHA256_LEN])
{
	struct store_entry *x;
	bool fetched;

	pthread_mutex_lock(&s->lock);
	x = store_find(s, hash, false);
	fetched = x != NULL && x->held && x->fetched;
	pthread_mutex_unlock(&s->lock);
	return fetched;
}

/* --- verification ------------------------------------------------------ */

/* Is all of fd's [0, len) in the page cache now?  (mincore on a mapping
 * that is never touched: no page is read or faulted in.) */
static bool
store_resident(int fd, uint64_t len)
{
	unsigned char vec[(CHUNK_SIZE_MAX >> 12) + 1];
	long page = sysconf(_SC_PAGESIZE);
	size_t pages;
	bool all = true;
	void *p;

	if (len == 0)
		return true;
	if (page <= 0 || len > CHUNK_SIZE_MAX ||
	    (pages = (size_t)((len + (uint64_t)page - 1) / (uint64_t)page)) >
	    sizeof(vec))
		return false;
	p = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return false;
	if (mincore(p, (size_t)len, vec) < 0)
		all = false;
	for (size_t i = 0; all && i < pages; i++)
		all = (vec[i] & 1) != 0;
	munmap(p, (size_t)len);
	return all;
}

/* SHA-256 of fd's bytes from offset 0 to its end (at most max + 1 bytes:
 * enough to tell a file too long); *got: how many.  Returns 0 or -1
 * (errno). */
static int
store_hash_fd(int fd, uint64_t max, uint8_t out[SHA256_LEN], uint64_t *got)
{
	struct sha256_ctx c;
	uint8_t *buf = malloc(STORE_HASH_BUF);
	ssize_t n;

	*got = 0;
	if (buf == NULL)
		return -1;
	sha256_init(&c);
	while (*got <= max &&
	       (n = pread(fd, buf, STORE_HASH_BUF, (off_t)*got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			sha256_abort(&c);
			free(buf);
			errno = err;
			return -1;
		}
		sha256_update(&c, buf, (size_t)n);
		*got += (uint64_t)n;
	}
	sha256_final(&c, out);
	free(buf);
	return 0;
}

static bool
store_same_file(const struct store_entry *x, const struct stat *st)
{
	return x->v_ino == st->st_ino && (uint64_t)st->st_size == x->size &&
	       x->v_mtime.tv_sec == st->st_mtim.tv_sec &&
	       x->v_mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* Remember that the file st describes holds x's bytes.  Lock held. */
static void
store_mark_verified(struct store_entry *x, const struct stat *st)
{
	x->verified = true;
	x->v_ino = st->st_ino;
	x->v_mtime = st->st_mtim;
}

/* Drop x, found bad in the file whose inode is ino, unless its name now
 * holds another file (a good copy stored meanwhile).  Lock held: renames
 * into names happen under it too. */
static void
store_drop_locked(struct store *s, struct store_entry *x, ino_t ino)
{
	char path[512];
	struct stat st;

	store_chunk_path(s, x->hash, path, sizeof(path));
	if (lstat(path, &st) == 0 && st.st_ino != ino)
		return;
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("store: cannot remove bad chunk file %s: %s", path,
			 strerror(errno));
	store_forget_locked(s, x);
	s->st.bad_chunks++;
}

/* The log line of a chunk dropped as bad.  Lock not held. */
static void
store_log_bad(struct store *s, const uint8_t hash[SHA256_LEN],
	      const char *why)
{
	char what[160], hex[2 * SHA256_LEN + 1];
	store_describe_fn fn;
	void *arg;

	hex_encode(hash, SHA256_LEN, hex);
	pthread_mutex_lock(&s->lock);
	fn = s->describe;
	arg = s->describe_arg;
	pthread_mutex_unlock(&s->lock);
	snprintf(what, sizeof(what), "chunk %.16s..", hex);
	if (fn != NULL)
		fn(arg, hash, what, sizeof(what));
	log_warn("store: %s is bad on disk: expected sha256 %s, %s; dropped "
		 "from the store, to be fetched again from its sources",
		 what, hex, why);
}

/* Wait for x's verifying to end; returns x found again (the table may
 * have grown), NULL if no longer held.  Lock held. */
static struct store_entry *
store_wait_verifying(struct store *s, const uint8_t hash[SHA256_LEN])
{
	struct store_entry *x;

	while ((x = store_find(s, hash, false)) != NULL && x->held &&
	       x->verifying)
		pthread_cond_wait(&s->verified_cond, &s->lock);
	return x != NULL && x->held ? x : NULL;
}

/* Hash fd, the file of x (size want), and record the verdict.  Returns 0
 * if good, STORE_BAD_HASH (dropped; why says what was found), or
 * STORE_LOCAL_ERROR (unreadable: errno). */
static int
store_hash_verdict(struct store *s, const uint8_t hash[SHA256_LEN], int fd,
		   const struct stat *st, uint64_t want, uint64_t *bytes,
		   char *why, size_t whysz)
{
	char hex[2 * SHA256_LEN + 1];
	uint8_t got[SHA256_LEN];
	struct store_entry *x;
	uint64_t n = 0;
	int rc, err = 0;

	if (store_hash_fd(fd, want, got, &n) < 0) {
		rc = STORE_LOCAL_ERROR;
		err = errno;
	} else if (n == want && memcmp(got, hash, SHA256_LEN) == 0) {
		rc = 0;
	} else {
		rc = STORE_BAD_HASH;
		hex_encode(got, SHA256_LEN, hex);
		snprintf(why, whysz, "%s %s (%llu of %llu bytes)", n < want ?
			 "a short file, got" : "got", hex,
			 (unsigned long long)n, (unsigned long long)want);
	}
	pthread_mutex_lock(&s->lock);
	s->st.verified_bytes += n;
	if ((x = store_find(s, hash, false)) != NULL) {
		x->verifying = false;
		if (rc == 0 && x->held)
			store_mark_verified(x, st);
		else if (rc == STORE_BAD_HASH && x->held)
			store_drop_locked(s, x, st->st_ino);
	}
	pthread_cond_broadcast(&s->verified_cond);
	pthread_mutex_unlock(&s->lock);
	if (bytes)
		*bytes = n;
	if (rc == STORE_BAD_HASH)
		store_log_bad(s, hash, why);
	errno = err;
	return rc;
}

/*
 * Is fd, just opened as the chunk named hash, that chunk?  Unless force,
 * a file verified before and still wholly in the page cache is taken as
 * it is; else it is hashed now (by one thread at a time).  Returns as
 * store_verify_chunk does.
 */
static int
store_check_fd(struct store *s, const uint8_t hash[SHA256_LEN], int fd,
	       bool force, uint64_t *bytes, char *why, size_t whysz)
{
	struct store_entry *x;
	struct stat st;
	uint64_t want;
	bool resident;

	if (bytes)
		*bytes = 0;
	if (fstat(fd, &st) < 0)
		return STORE_LOCAL_ERROR;
	resident = store_resident(fd, (uint64_t)st.st_size);
	pthread_mutex_lock(&s->lock);
	if ((x = store_find(s, hash, false)) != NULL && x->verifying) {
		/* another thread hashes it: its verdict, then look again */
		x = store_wait_verifying(s, hash);
		resident = x != NULL && store_resident(fd, x->size);
	}
	if (x == NULL || !x->held) {
		pthread_mutex_unlock(&s->lock);
		errno = ENOENT;
		return STORE_LOCAL_ERROR;
	}
	if (x->pending || (!force && !s->verify) ||
	    (!force && resident && x->verified && store_same_file(x, &st))) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	x->verifying = true;
	want = x->size;
	pthread_mutex_unlock(&s->lock);
	return store_hash_verdict(s, hash, fd, &st, want, bytes, why, whysz);
}

/* Open a held chunk's file (its temporary while pending) without marking
 * it used.  A held chunk whose file is gone is dropped and logged.
 * Returns an fd, or -1 (errno ENOENT if not held). */
static int
store_open_file(struct store *s, const uint8_t hash[SHA256_LEN],
		uint64_t *size)
{
	char path[512], tmp[600];
	struct store_entry *x;
	uint64_t len = 0;
	bool held, pending = false;
	int fd = -1;

	store_chunk_path(s, hash, path, sizeof(path));
	pthread_mutex_lock(&s->lock);
	x = store_find(s, hash, false);
	if ((held = x != NULL && x->held)) {
		len = x->size;
		if ((pending = x->pending))
			store_tmp_path(s, x->tmp_seq, tmp, sizeof(tmp));
	}
	pthread_mutex_unlock(&s->lock);
	if (!held) {
		errno = ENOENT;
		return -1;
	}
	/* opened outside the lock, which a cold open (directory and inode
	 * read from disk) would hold for a disk's latency; one evicted in
	 * between is simply not found.  A pending chunk is in tmp/ until the
	 * syncer renames it, which it may have done by now: then it is under
	 * its name */
	if (pending)
		fd = open(tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno != ENOENT)
			return -1;
		pthread_mutex_lock(&s->lock);
		x = store_find(s, hash, false);
		held = x != NULL && x->held && !x->pending &&
		       access(path, F_OK) < 0;
		if (held) {		/* not evicted: gone behind its back */
			store_forget_locked(s, x);
			s->st.bad_chunks++;
		}
		pthread_mutex_unlock(&s->lock);
		if (held)
			store_log_bad(s, hash, "its file is gone");
		errno = ENOENT;
		return -1;
	}
	if (size)
		*size = len;
	return fd;
}

int
store_open_chunk(struct store *s, const uint8_t hash[SHA256_LEN],
		 uint64_t *size)
{
	struct store_entry *x;
	char why[160];
	int fd;

	if ((fd = store_open_file(s, hash, size)) < 0)
		return -1;
	if (store_check_fd(s, hash, fd, false, NULL, why, sizeof(why)) != 0) {
		close(fd);
		errno = ENOENT;		/* not held (any more) */
		return -1;
	}
	pthread_mutex_lock(&s->lock);
	x = store_find(s, hash, false);
	if (x != NULL && x->held)
		store_touch(s, x);
	pthread_mutex_unlock(&s->lock);
	return fd;
}

int
store_verify_chunk(struct store *s, const uint8_t hash[SHA256_LEN],
		   uint64_t *bytes, char *why, size_t whysz)
{
	bool resident, held;
	uint64_t size;
	int fd, rc;

	if (bytes)
		*bytes = 0;
	snprintf(why, whysz, "%s", "");
	held = store_has(s, hash);
	if ((fd = store_open_file(s, hash, &size)) < 0) {
		if (!held || errno != ENOENT)
			return STORE_LOCAL_ERROR;
		snprintf(why, whysz, "its file is gone");
		return STORE_BAD_HASH;	/* dropped by store_open_file */
	}
	resident = store_resident(fd, size);
	rc = store_check_fd(s, hash, fd, true, bytes, why, whysz);
	/* a scrub reads what nobody asked for: leave the page cache as it
	 * found it */
	if (!resident)
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	return rc;
}

/* --- putting ------------------------------------------------------------ */

/* Account a chunk now held, in the file st describes (lock held). */
static void
store_add_locked(struct store *s, struct store_entry *x, size_t len,
		 enum store_from from, const struct stat *st)
{
	x->held = true;
	x->name_synced = false;
	x->fetched = from == STORE_FETCHED;
	x->size = len;
	store_mark_verified(x, st);	/* from bytes just hashed */
	s->st.bytes += len;
	s->st.chunks++;
	s->st.puts++;
}

/* The disk is full (err: ENOSPC or EDQUOT) writing len bytes of the chunk
 * named hash: evict unpinned chunks to free len and STORE_RESERVE more
 * (waiting once for the syncer if only pending chunks could go).  Returns
 * true if anything was freed: worth trying again. */
static bool
store_make_room(struct store *s, const uint8_t hash[SHA256_LEN], size_t len,
		int err)
{
	char hex[2 * SHA256_LEN + 1];
	uint64_t freed = 0, k, want = len + STORE_RESERVE;
	unsigned n = 0;

	pthread_mutex_lock(&s->lock);
	s->st.disk_full++;
	for (int waited = 0; freed < want; ) {
		if ((k = store_evict_one_locked(s)) > 0) {
			freed += k;
			n++;
			continue;
		}
		if (waited++ || s->sync_n == 0)
			break;
		/* what is left may be pending: synced, it can go */
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		pthread_cond_timedwait(&s->synced_cond, &s->lock, &until);
	}
	pthread_mutex_unlock(&s->lock);
	hex_encode(hash, SHA256_LEN, hex);
	if (n > 0)
		log_warn("store: %s writing chunk %.16s..: evicted %u chunks "
			 "(%llu bytes) to make room; trying again", strerror(err),
			 hex, n, (unsigned long long)freed);
	else
		log_warn("store: %s writing chunk %.16s..: nothing left to "
			 "evict (what is held is pinned or being synced)",
			 strerror(err), hex);
	return n > 0;
}

/* Write buf to a new temporary file, making room if the disk is full.
 * Returns its fd (open for writing; *seq its number, *st its stat), or
 * -1 with e set. */
static int
store_write_tmp(struct store *s, const uint8_t hash[SHA256_LEN],
		const void *buf, size_t len, uint64_t *seq, struct stat *st,
		struct err *e)
{
	char tmp[600];
	int fd, err;

	for (int attempt = 0;; attempt++) {
		pthread_mutex_lock(&s->lock);
		*seq = s->tmp_seq++;
		pthread_mutex_unlock(&s->lock);
		store_tmp_path(s, *seq, tmp, sizeof(tmp));
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0 && write_full(fd, buf, len) == 0 &&
		    fstat(fd, st) == 0)
			return fd;
		err = errno;
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		if ((err != ENOSPC && err != EDQUOT) ||
		    attempt == STORE_FULL_RETRIES ||
		    !store_make_room(s, hash, len, err)) {
			errno = err;
			return err_sys(e, "store %s", tmp);
		}
	}
}

/* A fetched chunk written to its temporary: readable now, synced and named
 * by the syncer.  Returns true if it was queued (or was held already);
 * false if the queue is full and the caller syncs it.  Lock held. */
static bool
store_queue_pending_locked(struct store *s, const uint8_t hash[SHA256_LEN],
			   size_t len, uint64_t seq, int fd,
			   const struct stat *st)
{
	struct store_entry *x;
	struct store_pend *q;
	char tmp[600];

	if (s->sync_stopping || s->sync_n >= STORE_PENDING_MAX ||
	    (x = store_find(s, hash, true)) == NULL)
		return false;
	if (x->held) {			/* another put was quicker */
		close(fd);
		store_tmp_path(s, seq, tmp, sizeof(tmp));
		unlink(tmp);
		return true;
	}
	q = &s->sync_q[(s->sync_head + s->sync_n) % STORE_PENDING_MAX];
	store_add_locked(s, x, len, STORE_FETCHED, st);
	x->pending = true;
	x->tmp_seq = seq;
	memcpy(q->hash, hash, SHA256_LEN);
	q->seq = seq;
	q->fd = fd;
	s->sync_n++;
	pthread_cond_signal(&s->sync_cond);
	store_evict_locked(s);
	return true;
}

/* Sync the temporary fd (number seq) and give it its name.  Returns 0 or
 * -1 with e set. */
static int
store_sync_name(struct store *s, const uint8_t hash[SHA256_LEN], size_t len,
		enum store_from from, uint64_t seq, int fd,
		const struct stat *st, struct err *e)
{
	char tmp[600], path[512];
	struct store_entry *x;

	store_tmp_path(s, seq, tmp, sizeof(tmp));
	store_chunk_path(s, hash, path, sizeof(path));
	if (store_fsync_close(fd) < 0) {
		err_sys(e, "store %s", tmp);
		unlink(tmp);
		return -1;
	}
	pthread_mutex_lock(&s->lock);
	if (rename(tmp, path) < 0) {
		pthread_mutex_unlock(&s->lock);
		err_sys(e, "store %s", path);
		unlink(tmp);
		return -1;
	}
	x = store_find(s, hash, true);
	if (x != NULL && !x->held) {
		store_add_locked(s, x, len, from, st);
		store_touch(s, x);
		store_evict_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
	/* copied in, this may be the only copy there is (a publisher's): its
	 * name must outlive a crash as its bytes do */
	if (from == STORE_COPIED_IN) {
		if (store_sync_dir(path) < 0)
			return err_sys(e, "store %s: syncing its directory",
				       path);
		pthread_mutex_lock(&s->lock);
		if ((x = store_find(s, hash, false)) != NULL && x->held)
			x->name_synced = true;
		pthread_mutex_unlock(&s->lock);
	}
	return 0;
}

int
store_put(struct store *s, const uint8_t hash[SHA256_LEN], const void *buf,
	  size_t len, enum store_from from, struct err *e)
{
	uint8_t got[SHA256_LEN];
	char hex[2 * SHA256_LEN + 1];
	struct stat st;
	uint64_t seq;
	bool queued;
	int fd;

	sha256(buf, len, got);
	if (memcmp(got, hash, SHA256_LEN) != 0) {
		hex_encode(hash, SHA256_LEN, hex);
		err_set(e, "chunk %.16s..: hash mismatch", hex);
		return STORE_BAD_HASH;
	}
	/* held: a chunk copied in must be on disk for good when this
	 * returns, and a fetched copy of it may still wait for the syncer */
	if (from == STORE_COPIED_IN ? store_durable(s, hash) : store_has(s, hash))
		return 0;
	if ((fd = store_write_tmp(s, hash, buf, len, &seq, &st, e)) >= 0) {
		pthread_mutex_lock(&s->lock);
		queued = from == STORE_FETCHED &&
			 store_queue_pending_locked(s, hash, len, seq, fd, &st);
		pthread_mutex_unlock(&s->lock);
		if (queued ||
		    store_sync_name(s, hash, len, from, seq, fd, &st, e) == 0)
			return 0;
	}
	pthread_mutex_lock(&s->lock);
	s->st.write_errors++;
	pthread_mutex_unlock(&s->lock);
	return STORE_LOCAL_ERROR;
}

/* --- room and listing ------------------------------------------------------ */

/* Bytes free on the store's filesystem; -1 if statvfs fails. */
static int64_t
store_free_bytes(struct store *s)
{
	struct statvfs sv;

	if (statvfs(s->dir, &sv) < 0)
		return -1;
	return (int64_t)((uint64_t)sv.f_bavail * sv.f_frsize);
}

uint64_t
store_capacity(struct store *s)
{
	int64_t avail = store_free_bytes(s);
	uint64_t held;

	if (avail < 0)
		return 0;
	pthread_mutex_lock(&s->lock);
	held = s->st.bytes;
	pthread_mutex_unlock(&s->lock);
	return (uint64_t)avail + held;
}

int
store_room_for_pinned(struct store *s, uint64_t n, struct err *e)
{
	int64_t avail = store_free_bytes(s);
	uint64_t evictable = 0, room;

	if (avail < 0)
		return err_sys(e, "statvfs %s", s->dir);
	pthread_mutex_lock(&s->lock);
	for (const struct store_entry *x = s->lru_head; x; x = x->next)
		evictable += x->size;
	pthread_mutex_unlock(&s->lock);
	room = (uint64_t)avail + evictable;
	room = room > STORE_RESERVE ? room - STORE_RESERVE : 0;
	if (n <= room)
		return 0;
	return err_set(e, "the chunk store cannot hold it: %.1f MiB more "
		       "must be pinned, and its filesystem can take %.1f MiB "
		       "(%.1f MiB free, %.1f MiB of cache to evict, %.1f MiB "
		       "kept spare)", (double)n / 1048576, (double)room / 1048576,
		       (double)avail / 1048576, (double)evictable / 1048576,
		       (double)STORE_RESERVE / 1048576);
}

/* A missing chunk and its length, for store_missing_bytes's sort. */
struct store_missing {
	const uint8_t *hash;
	uint32_t len;
};

static int
store_missing_cmp(const void *a, const void *b)
{
	return memcmp(((const struct store_missing *)a)->hash,
		      ((const struct store_missing *)b)->hash, SHA256_LEN);
}

uint64_t
store_missing_bytes(struct store *s, const struct chunk_index *ix)
{
	struct store_missing *m = malloc((ix->nchunks + 1) * sizeof(*m));
	uint64_t bytes = 0;
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; i < ix->nchunks; i++) {
		const struct store_entry *x = store_find(s, ix->chunks[i], false);

		if (x != NULL && x->held)
			continue;
		if (m == NULL)		/* no memory: count every one */
			bytes += chunkidx_chunk_len(ix, i);
		else
			m[n++] = (struct store_missing){ ix->chunks[i],
				chunkidx_chunk_len(ix, i) };
	}
	pthread_mutex_unlock(&s->lock);
	/* a chunk that appears twice (zeros, most often) is stored once */
	if (m != NULL)
		qsort(m, n, sizeof(*m), store_missing_cmp);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || store_missing_cmp(&m[i - 1], &m[i]) != 0)
			bytes += m[i].len;
	free(m);
	return bytes;
}

uint8_t (*store_list(struct store *s, size_t *n))[SHA256_LEN]
{
	uint8_t (*out)[SHA256_LEN];
	size_t k = 0;

	pthread_mutex_lock(&s->lock);
	out = s->st.chunks ? malloc(s->st.chunks * SHA256_LEN) : NULL;
	for (size_t i = 0; out != NULL && i < s->nslots; i++)
		if (s->slots[i].used && s->slots[i].held && k < s->st.chunks)
			memcpy(out[k++], s->slots[i].hash, SHA256_LEN);
	pthread_mutex_unlock(&s->lock);
	*n = k;
	return out;
}

void
store_set_quota(struct store *s, uint64_t max_bytes)
{
	pthread_mutex_lock(&s->lock);
	s->max_bytes = s->st.max_bytes = max_bytes;
	store_evict_locked(s);
	pthread_mutex_unlock(&s->lock);
}

void
store_set_verify(struct store *s, bool on)
{
	pthread_mutex_lock(&s->lock);
	s->verify = on;
	pthread_mutex_unlock(&s->lock);
}

bool
store_verifying(struct store *s)
{
	bool on;

	pthread_mutex_lock(&s->lock);
	on = s->verify;
	pthread_mutex_unlock(&s->lock);
	return on;
}

void
store_set_describe(struct store *s, store_describe_fn fn, void *arg)
{
	pthread_mutex_lock(&s->lock);
	s->describe = fn;
	s->describe_arg = arg;
	pthread_mutex_unlock(&s->lock);
}

/* --- pins and figures ------------------------------------------------------- */

void
store_pin(struct store *s, const uint8_t hash[SHA256_LEN])
{
	struct store_entry *x;

	pthread_mutex_lock(&s->lock);
	if ((x = store_find(s, hash, true)) != NULL) {
		if (x->pins++ == 0 && store_lru_linked(s, x))
			store_lru_unlink(s, x);
	}
	pthread_mutex_unlock(&s->lock);
}

void
store_unpin(struct store *s, const uint8_t hash[SHA256_LEN])
{
	struct store_entry *x;

	pthread_mutex_lock(&s->lock);
	x = store_find(s, hash, false);
	if (x != NULL && x->pins > 0 && --x->pins == 0 && x->held &&
	    !x->pending) {
		store_lru_push(s, x);
		store_evict_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
}

void
store_get_stats(struct store *s, struct store_stats *st)
{
	pthread_mutex_lock(&s->lock);
	*st = s->st;
	st->pinned_chunks = 0;
	st->unsynced_chunks = s->sync_n;
	for (size_t i = 0; i < s->nslots; i++)
		if (s->slots[i].used && s->slots[i].held && s->slots[i].pins)
			st->pinned_chunks++;
	pthread_mutex_unlock(&s->lock);
}
