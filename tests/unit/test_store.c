/*
 * test_store.c - the chunk store: only verified bytes reach a name, what a
 * crash left is cleaned, the quota evicts least recently used chunks and
 * never pinned ones, a fetched chunk is readable before it is synced.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <limits.h>
#include <pthread.h>
#include <sys/syscall.h>

#include "fedfs/store.h"
#include "lib/testutil.h"

/*
 * The store's renames and directory fsyncs, in order, while io_log.on: a
 * rename survives a crash only once its directory is synced after it.
 * These definitions take the place of libc's for the whole test program
 * (the store's calls included) and do what libc's do.
 */
static struct {
	pthread_mutex_t lock;
	bool on;
	int n;
	char what[1024][PATH_MAX + 8];
} io_log = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void
io_note(const char *verb, const char *path)
{
	pthread_mutex_lock(&io_log.lock);
	if (io_log.on && io_log.n < 1024)
		snprintf(io_log.what[io_log.n++], sizeof(io_log.what[0]),
			 "%s %s", verb, path);
	pthread_mutex_unlock(&io_log.lock);
}

int
fsync(int fd)
{
	char link[64], path[PATH_MAX];
	struct stat st;
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) &&
	    (n = readlink(link, path, sizeof(path) - 1)) > 0) {
		path[n] = '\0';
		io_note("fsync", path);
	}
	return (int)syscall(SYS_fsync, fd);
}

int
rename(const char *from, const char *to)
{
	char path[PATH_MAX], *slash;
	int rc = (int)syscall(SYS_rename, from, to);

	/* logged as its directory, resolved as fsync's are */
	snprintf(path, sizeof(path), "%s", to);
	if (rc == 0 && (slash = strrchr(path, '/')) != NULL) {
		char real[PATH_MAX];

		*slash = '\0';
		if (realpath(path, real) != NULL)
			io_note("rename", real);
	}
	return rc;
}

/* Was the directory that holds path synced after path was renamed in? */
static bool
io_name_synced(const char *path)
{
	char dir[PATH_MAX], real[PATH_MAX], *slash;
	bool renamed = false, synced = false;

	snprintf(dir, sizeof(dir), "%s", path);
	cr_assert((slash = strrchr(dir, '/')) != NULL);
	*slash = '\0';
	cr_assert(realpath(dir, real) != NULL);
	pthread_mutex_lock(&io_log.lock);
	for (int i = 0; i < io_log.n; i++) {
		const char *w = io_log.what[i];

		if (strncmp(w, "rename ", 7) == 0 && strcmp(w + 7, real) == 0) {
			renamed = true;
			synced = false;
		} else if (strncmp(w, "fsync ", 6) == 0 &&
			   strcmp(w + 6, real) == 0 && renamed) {
			synced = true;
		}
	}
	pthread_mutex_unlock(&io_log.lock);
	return renamed && synced;
}

static char *dir;
static void setup(void) { dir = tu_tmpdir(); }
static void teardown(void) { tu_rmtree(dir); free(dir); }
TestSuite(store, .init = setup, .fini = teardown);

#define CHUNK 4096

static void
chunk(uint8_t buf[CHUNK], uint8_t hash[32], uint32_t seed)
{
	tu_fill(buf, CHUNK, seed);
	sha256(buf, CHUNK, hash);
}

Test(store, put_then_open_gives_the_bytes)
{
	struct store *s;
	struct err e;
	uint8_t buf[CHUNK], got[CHUNK], h[32];
	uint64_t size;
	int fd;

	cr_assert_eq(store_open(dir, 0, &s, &e), 0, "%s", e.msg);
	chunk(buf, h, 1);
	cr_assert(!store_has(s, h));
	cr_assert_eq(store_put(s, h, buf, CHUNK, STORE_COPIED_IN, &e), 0, "%s", e.msg);
	cr_assert(store_has(s, h));
	fd = store_open_chunk(s, h, &size);
	cr_assert(fd >= 0);
	cr_assert_eq(size, CHUNK);
	cr_assert_eq(read(fd, got, CHUNK), CHUNK);
	cr_assert_arr_eq(buf, got, CHUNK);
	close(fd);
	store_close(s);
}

Test(store, refuses_bytes_that_do_not_match_their_name)
{
	struct store *s;
	struct err e;
	uint8_t buf[CHUNK], h[32];
	char path[512];
	struct stat st;

	cr_assert_eq(store_open(dir, 0, &s, &e), 0);
	chunk(buf, h, 2);
	buf[100] ^= 1;
	cr_assert_eq(store_put(s, h, buf, CHUNK, STORE_COPIED_IN, &e), STORE_BAD_HASH);
	cr_assert(strstr(e.msg, "hash mismatch") != NULL, "%s", e.msg);
	cr_assert(!store_has(s, h));
	store_chunk_path(s, h, path, sizeof(path));
	cr_assert_eq(stat(path, &st), -1, "an unverified chunk got a name");
	store_close(s);
}

Test(store, reopen_indexes_chunks_and_removes_temporaries)
{
	struct store *s;
	struct err e;
	uint8_t buf[CHUNK], h[32];
	char *tmp;
	struct store_stats st;
	struct stat sb;

	cr_assert_eq(store_open(dir, 0, &s, &e), 0);
	chunk(buf, h, 3);
	cr_assert_eq(store_put(s, h, buf, CHUNK, STORE_COPIED_IN, &e), 0);
	store_close(s);
	/* what a crash in the middle of a put leaves */
	cr_assert(asprintf(&tmp, "%s/chunks/tmp/123.4", dir) > 0);
	tu_write_file(tmp, buf, 100);
	cr_assert_eq(store_open(dir, 0, &s, &e), 0, "%s", e.msg);
	cr_assert(store_has(s, h));
	store_get_stats(s, &st);
	cr_assert_eq(st.chunks, 1);
	cr_assert_eq(st.bytes, CHUNK);
	cr_assert_eq(stat(tmp, &sb), -1, "a temporary survived the reopen");
	store_close(s);
	free(tmp);
}

Test(store, quota_evicts_least_recently_used_but_not_pinned)
{
	struct store *s;
	struct err e;
	uint8_t buf[CHUNK], h[8][32];
	struct store_stats st;
	int fd;

	cr_assert_eq(store_open(dir, 4 * CHUNK, &s, &e), 0);
	store_enforce_quota(s);
	for (uint32_t i = 0; i < 4; i++) {
		chunk(buf, h[i], 10 + i);
		cr_assert_eq(store_put(s, h[i], buf, CHUNK, STORE_COPIED_IN, &e), 0);
	}
	store_pin(s, h[0]);			/* pinned: never goes */
	fd = store_open_chunk(s, h[1], NULL);	/* used: goes last */
	close(fd);
	chunk(buf, h[4], 14);
	cr_assert_eq(store_put(s, h[4], buf, CHUNK, STORE_COPIED_IN, &e), 0);
	cr_assert(store_has(s, h[0]), "a pinned chunk was evicted");
	cr_assert(store_has(s, h[1]), "the recently used chunk was evicted");
	cr_assert(!store_has(s, h[2]), "the least recently used stayed");
	cr_assert(store_has(s, h[4]));
	store_get_stats(s, &st);
	cr_assert_eq(st.evictions, 1);
	cr_assert_leq(st.bytes, 4 * CHUNK);
	/* everything pinned: the store goes over quota rather than evict */
	for (uint32_t i = 0; i < 8; i++) {
		if (i >= 5)
			chunk(buf, h[i], 10 + i);
		store_pin(s, h[i]);
		if (i >= 5)
			cr_assert_eq(store_put(s, h[i], buf, CHUNK, STORE_COPIED_IN, &e), 0);
	}
	for (uint32_t i = 5; i < 8; i++)
		cr_assert(store_has(s, h[i]));
	/* unpinning lets the quota act again */
	for (uint32_t i = 0; i < 8; i++)
		store_unpin(s, h[i]);
	store_get_stats(s, &st);
	cr_assert_leq(st.bytes, 4 * CHUNK);
	store_close(s);
}

Test(store, pins_before_the_chunk_arrives)
{
	struct store *s;
	struct err e;
	uint8_t buf[CHUNK], h[3][32];

	cr_assert_eq(store_open(dir, 2 * CHUNK, &s, &e), 0);
	store_enforce_quota(s);
	chunk(buf, h[0], 20);
	store_pin(s, h[0]);
	cr_assert_eq(store_put(s, h[0], buf, CHUNK, STORE_COPIED_IN, &e), 0);
	for (uint32_t i = 1; i < 3; i++) {
		chunk(buf, h[i], 20 + i);
		cr_assert_eq(store_put(s, h[i], buf, CHUNK, STORE_COPIED_IN, &e), 0);
	}
	cr_assert(store_has(s, h[0]));
	store_close(s);
}

/* Whether the first page of the file at path is in the page cache. */
static bool
resident(void *arg)
{
	const char *path = arg;
	unsigned char vec = 0;
	int fd = open(path, O_RDONLY);
	void *p;

	cr_assert(fd >= 0);
	p = mmap(NULL, CHUNK, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert(p != MAP_FAILED);
	cr_assert_eq(mincore(p, CHUNK, &vec), 0);
	munmap(p, CHUNK);
	close(fd);
	return vec & 1;
}

Test(store, prefetch_reads_a_held_chunk_into_the_page_cache)
{
	struct store *s;
	struct err e;
	uint8_t buf[CHUNK], h[32], other[32];
	char path[512];
	int fd;

	cr_assert_eq(store_open(dir, 0, &s, &e), 0, "%s", e.msg);
	chunk(buf, h, 7);
	cr_assert_eq(store_put(s, h, buf, CHUNK, STORE_COPIED_IN, &e), 0, "%s", e.msg);
	store_chunk_path(s, h, path, sizeof(path));
	fd = open(path, O_RDONLY);	/* put fsynced it: clean pages go */
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	if (resident(path))
		cr_skip_test("this filesystem keeps the pages (tmpfs?)");
	chunk(buf, other, 8);		/* not held: ignored */
	store_prefetch(s, other);
	store_prefetch(s, h);
	cr_assert(tu_poll(5000, resident, path),
		  "the chunk did not reach the page cache");
	store_close(s);
}

Test(store, prefetch_is_a_hint_that_never_blocks_or_outlives_the_store)
{
	struct store *s;
	struct err e;
	uint8_t buf[CHUNK], h[32];

	cr_assert_eq(store_open(dir, 0, &s, &e), 0, "%s", e.msg);
	/* far more than the queue holds, most not held, one held */
	chunk(buf, h, 9);
	cr_assert_eq(store_put(s, h, buf, CHUNK, STORE_COPIED_IN, &e), 0, "%s", e.msg);
	for (uint32_t i = 0; i < 1000; i++) {
		uint8_t x[32];

		chunk(buf, x, 100 + i);
		store_prefetch(s, i % 10 ? x : h);
	}
	store_close(s);			/* joins the thread, frees the queue */
	cr_assert_eq(store_open(dir, 0, &s, &e), 0, "%s", e.msg);
	cr_assert(store_has(s, h));
	store_close(s);
}

Test(store, remembers_which_chunks_came_from_peers)
{
	struct store *s;
	struct err e;
	uint8_t buf[CHUNK], mine[32], theirs[32];

	cr_assert_eq(store_open(dir, 0, &s, &e), 0, "%s", e.msg);
	chunk(buf, mine, 11);
	cr_assert_eq(store_put(s, mine, buf, CHUNK, STORE_COPIED_IN, &e), 0);
	chunk(buf, theirs, 12);
	cr_assert(!store_fetched(s, theirs), "not held yet");
	cr_assert_eq(store_put(s, theirs, buf, CHUNK, STORE_FETCHED, &e), 0);
	cr_assert(!store_fetched(s, mine));
	cr_assert(store_fetched(s, theirs));
	for (uint32_t i = 0; i < 5000; i++) {	/* the table grows */
		uint8_t other[32];

		chunk(buf, other, 20000 + i);
		store_pin(s, other);
	}
	cr_assert(store_fetched(s, theirs), "forgotten as the table grew");
	store_close(s);
	/* after a restart nothing is known to be relayed: the stricter
	 * limit of an origin applies */
	cr_assert_eq(store_open(dir, 0, &s, &e), 0, "%s", e.msg);
	cr_assert(store_has(s, theirs));
	cr_assert(!store_fetched(s, theirs));
	store_close(s);
}

/* Files in dir/chunks/tmp. */
static int
temporaries(void)
{
	char *tmp = tu_path(dir, "chunks/tmp");
	DIR *dp = opendir(tmp);
	struct dirent *d;
	int n = 0;

	cr_assert(dp != NULL);
	while ((d = readdir(dp)) != NULL)
		n += d->d_name[0] != '.';
	closedir(dp);
	free(tmp);
	return n;
}

#define MANY 200		/* more than wait to be synced at once */

static bool
all_synced(void *arg)
{
	struct store_stats st;

	store_get_stats(arg, &st);
	return st.unsynced_chunks == 0;
}

Test(store, a_fetched_chunk_is_readable_at_once_and_named_once_synced)
{
	struct store *s;
	struct err e;
	uint8_t buf[CHUNK], got[CHUNK], h[MANY][32];
	char path[512];
	struct stat sb;
	int fd;

	cr_assert_eq(store_open(dir, 0, &s, &e), 0, "%s", e.msg);
	for (uint32_t i = 0; i < MANY; i++) {
		chunk(buf, h[i], 300 + i);
		cr_assert_eq(store_put(s, h[i], buf, CHUNK, STORE_FETCHED, &e),
			     0, "%s", e.msg);
		fd = store_open_chunk(s, h[i], NULL);
		cr_assert(fd >= 0, "chunk %u not readable after its put", i);
		cr_assert_eq(pread(fd, got, CHUNK, 0), CHUNK);
		cr_assert_arr_eq(buf, got, CHUNK);
		close(fd);
	}
	/* named while the store runs, not only when it closes */
	cr_assert(tu_poll(10000, all_synced, s), "chunks left unsynced");
	for (uint32_t i = 0; i < MANY; i++) {
		store_chunk_path(s, h[i], path, sizeof(path));
		cr_assert_eq(stat(path, &sb), 0, "chunk %u has no name", i);
	}
	cr_assert_eq(temporaries(), 0);
	store_close(s);
	cr_assert_eq(temporaries(), 0);
	cr_assert_eq(store_open(dir, 0, &s, &e), 0, "%s", e.msg);
	for (uint32_t i = 0; i < MANY; i++) {
		cr_assert(store_has(s, h[i]), "chunk %u lost", i);
		store_chunk_path(s, h[i], path, sizeof(path));
		cr_assert_eq(stat(path, &sb), 0, "chunk %u has no name", i);
	}
	store_close(s);
}

Test(store, a_crash_with_chunks_pending_leaves_only_whole_verified_ones)
{
	struct store *s;
	struct store_stats st;
	struct err e;
	uint8_t buf[CHUNK], h[32];
	char path[512];
	int status, named = 0;
	pid_t pid;

	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {			/* killed with puts still pending */
		if (store_open(dir, 0, &s, &e) < 0)
			_exit(2);
		for (uint32_t i = 0; i < MANY; i++) {
			chunk(buf, h, 600 + i);
			if (store_put(s, h, buf, CHUNK, STORE_FETCHED, &e) < 0)
				_exit(3);
		}
		raise(SIGKILL);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status), "the writer ended with %d", status);
	cr_assert_eq(store_open(dir, 0, &s, &e), 0, "%s", e.msg);
	cr_assert_eq(temporaries(), 0, "temporaries survived the reopen");
	for (uint32_t i = 0; i < MANY; i++) {
		uint8_t *data, got[32];
		size_t len;

		chunk(buf, h, 600 + i);
		store_chunk_path(s, h, path, sizeof(path));
		if (access(path, F_OK) < 0) {
			cr_assert(!store_has(s, h));
			continue;
		}
		data = tu_read_file(path, &len);
		sha256(data, len, got);
		cr_assert_arr_eq(got, h, 32, "chunk %u: its file fails its hash",
				 i);
		cr_assert(store_has(s, h));
		free(data);
		named++;
	}
	store_get_stats(s, &st);
	cr_assert_eq(st.chunks, (uint64_t)named);
	store_close(s);
}

static bool
within_quota(void *arg)
{
	struct store_stats st;

	store_get_stats(arg, &st);
	return st.bytes <= st.max_bytes;
}

Test(store, pending_chunks_stay_readable_and_the_quota_holds_once_synced)
{
	struct store *s;
	struct err e;
	uint8_t buf[CHUNK], h[32];
	int fd;

	cr_assert_eq(store_open(dir, 4 * CHUNK, &s, &e), 0, "%s", e.msg);
	store_enforce_quota(s);
	for (uint32_t i = 0; i < 32; i++) {
		chunk(buf, h, 900 + i);
		cr_assert_eq(store_put(s, h, buf, CHUNK, STORE_FETCHED, &e), 0);
		/* the reader that asked for it finds it, quota or not */
		fd = store_open_chunk(s, h, NULL);
		cr_assert(fd >= 0, "chunk %u gone before its reader came", i);
		close(fd);
	}
	cr_assert(tu_poll(5000, within_quota, s),
		  "over the quota with everything synced");
	store_close(s);
}

/* What was pinned and over the quota when fedfs stopped (a publisher's
 * only copy of its base, say) is there after a restart: the quota waits
 * for the pins before it evicts. */
Test(store, a_restart_keeps_the_pinned_chunks_over_the_quota)
{
	struct store *s;
	struct err e;
	uint8_t buf[CHUNK], h[8][32];
	struct store_stats st;

	cr_assert_eq(store_open(dir, 4 * CHUNK, &s, &e), 0, "%s", e.msg);
	store_enforce_quota(s);
	for (uint32_t i = 0; i < 8; i++) {
		chunk(buf, h[i], 500 + i);
		store_pin(s, h[i]);
		cr_assert_eq(store_put(s, h[i], buf, CHUNK, STORE_COPIED_IN,
				       &e), 0, "%s", e.msg);
	}
	store_close(s);

	/* as fedfs starts: open, pin what pins.json says, then the quota */
	cr_assert_eq(store_open(dir, 4 * CHUNK, &s, &e), 0, "%s", e.msg);
	for (uint32_t i = 0; i < 8; i++)
		store_pin(s, h[i]);
	store_enforce_quota(s);
	for (uint32_t i = 0; i < 8; i++)
		cr_assert(store_has(s, h[i]), "pinned chunk %u evicted at "
			  "restart", i);
	store_close(s);

	/* nothing pinned any more: the quota evicts down to 4 */
	cr_assert_eq(store_open(dir, 4 * CHUNK, &s, &e), 0, "%s", e.msg);
	store_enforce_quota(s);
	store_get_stats(s, &st);
	cr_assert_eq(st.chunks, 4);
	store_close(s);
}

/* A chunk copied in (publish/, commit/) is on disk for good when
 * store_put returns, even when a fetched copy of it was still waiting for
 * the syncer: its name is there. */
Test(store, a_chunk_copied_in_is_durable_even_when_a_fetched_copy_was_pending)
{
	enum { N = 200 };
	static uint8_t h[N][32];
	struct store *s;
	struct err e;
	uint8_t buf[CHUNK];
	char path[512];

	cr_assert_eq(store_open(dir, 0, &s, &e), 0, "%s", e.msg);
	for (uint32_t i = 0; i < N; i++) {
		chunk(buf, h[i], 700 + i);
		cr_assert_eq(store_put(s, h[i], buf, CHUNK, STORE_FETCHED, &e),
			     0, "%s", e.msg);
	}
	for (uint32_t i = 0; i < N; i++) {
		chunk(buf, h[i], 700 + i);
		cr_assert_eq(store_put(s, h[i], buf, CHUNK, STORE_COPIED_IN,
				       &e), 0, "%s", e.msg);
		store_chunk_path(s, h[i], path, sizeof(path));
		cr_assert_eq(access(path, F_OK), 0, "chunk %u copied in but "
			     "not yet named", i);
		cr_assert(store_durable(s, h[i]));
	}
	store_close(s);
}

/* Committing a delta just read (cp deltas/X commit/) needs its chunks for
 * good: fetched ones were fsynced and renamed by the syncer, which syncs no
 * directory (a cache need not survive a crash whole).  store_durable, which
 * ingest relies on, and a copy-in of a chunk held so, must sync the
 * directory the rename went into, or a crash could lose the chunk of a
 * snapshot this peer said it hosts. */
Test(store, a_fetched_chunk_needed_for_good_has_its_name_synced)
{
	struct store *s;
	struct err e;
	uint8_t buf[CHUNK], h[2][32];
	char path[512];

	cr_assert_eq(store_open(dir, 0, &s, &e), 0, "%s", e.msg);
	pthread_mutex_lock(&io_log.lock);
	io_log.on = true;
	io_log.n = 0;
	pthread_mutex_unlock(&io_log.lock);
	for (uint32_t i = 0; i < 2; i++) {
		chunk(buf, h[i], 900 + i);
		cr_assert_eq(store_put(s, h[i], buf, CHUNK, STORE_FETCHED, &e),
			     0, "%s", e.msg);
	}
	/* ingest's way: store_durable */
	cr_assert(store_durable(s, h[0]));
	store_chunk_path(s, h[0], path, sizeof(path));
	cr_assert(io_name_synced(path), "store_durable said so of %s, but "
		  "its directory was not synced after its rename", path);
	/* publish's way: a copy-in of a chunk already held */
	chunk(buf, h[1], 901);
	cr_assert_eq(store_put(s, h[1], buf, CHUNK, STORE_COPIED_IN, &e), 0,
		     "%s", e.msg);
	store_chunk_path(s, h[1], path, sizeof(path));
	cr_assert(io_name_synced(path), "copied in, %s is not durable: its "
		  "directory was not synced after its rename", path);
	pthread_mutex_lock(&io_log.lock);
	io_log.on = false;
	pthread_mutex_unlock(&io_log.lock);
	store_close(s);
}
