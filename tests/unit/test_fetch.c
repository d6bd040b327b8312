/*
 * test_fetch.c - the fetcher against real object servers on loopback: it
 * gets every chunk, verified, from a live source; a source that is gone
 * is not asked for every chunk; with every source gone a read fails
 * quickly and says whom it asked.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/hex.h"
#include "fedfs/fetch.h"
#include "fedfs/fetch_int.h"
#include "fedfs/objsrv.h"
#include "fedfs/store.h"
#include "lib/testutil.h"

#define CHUNK 65536
#define NCHUNKS 32

static char *dir;
static struct store *origin, *reader;
static struct objsrv *srv;
static struct chunk_index ix;
static struct fetch_object obj;
static char live[FETCH_ADDR_MAX], gone[FETCH_ADDR_MAX];
static const char *order[2];		/* what the sources callback says */
static int norder;

/* A socket bound to a free loopback port, listening or not; out is its
 * "127.0.0.1:port". */
static int
loopback_socket(char *out, bool listening)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(fd >= 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	if (listening)
		cr_assert_eq(listen(fd, 128), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	snprintf(out, FETCH_ADDR_MAX, "127.0.0.1:%u", ntohs(a.sin_port));
	return fd;
}

/* A loopback port nobody listens on: bound, then closed. */
static void
gone_addr(char *out)
{
	close(loopback_socket(out, false));
}

/* A loopback port that drops connections, as the address of a peer whose
 * machine is gone may: a listener whose accept queue (of one) is full, so
 * the kernel drops every further SYN.  fds[2]: close them when done. */
static void
hole_addr(char *out, int fds[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fds[0] = socket(AF_INET, SOCK_STREAM, 0);
	fds[1] = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(fds[0] >= 0 && fds[1] >= 0);
	cr_assert_eq(bind(fds[0], (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(fds[0], 0), 0);
	cr_assert_eq(getsockname(fds[0], (struct sockaddr *)&a, &len), 0);
	cr_assert_eq(connect(fds[1], (struct sockaddr *)&a, sizeof(a)), 0);
	snprintf(out, FETCH_ADDR_MAX, "127.0.0.1:%u", ntohs(a.sin_port));
}

static int
sources(void *arg, const uint8_t id[SHA256_LEN], char addrs[][FETCH_ADDR_MAX],
	int max)
{
	(void)arg;
	(void)id;
	for (int i = 0; i < norder && i < max; i++)
		snprintf(addrs[i], FETCH_ADDR_MAX, "%s", order[i]);
	return norder;
}

/* Another sources callback, for lists longer than two. */
static const char **multi_order;
static int multi_n;

static int
multi_sources(void *arg, const uint8_t id[SHA256_LEN],
	      char addrs[][FETCH_ADDR_MAX], int max)
{
	(void)arg;
	(void)id;
	for (int i = 0; i < multi_n && i < max; i++)
		snprintf(addrs[i], FETCH_ADDR_MAX, "%s", multi_order[i]);
	return multi_n;
}

static void
setup(void)
{
	char *o, *r;
	struct err e;
	uint8_t buf[CHUNK];

	cr_assert_eq(crypto_init(&e), 0);
	dir = tu_tmpdir();
	o = tu_path(dir, "origin");
	r = tu_path(dir, "reader");
	cr_assert_eq(mkdir(o, 0700), 0);
	cr_assert_eq(mkdir(r, 0700), 0);
	cr_assert_eq(store_open(o, 0, &origin, &e), 0, "%s", e.msg);
	cr_assert_eq(store_open(r, 0, &reader, &e), 0, "%s", e.msg);
	free(o);
	free(r);
	ix.size = (uint64_t)NCHUNKS * CHUNK;
	ix.chunk_size = CHUNK;
	ix.nchunks = NCHUNKS;
	ix.chunks = calloc(NCHUNKS, SHA256_LEN);
	for (uint32_t i = 0; i < NCHUNKS; i++) {
		tu_fill(buf, CHUNK, 1000 + i);
		sha256(buf, CHUNK, ix.chunks[i]);
		cr_assert_eq(store_put(origin, ix.chunks[i], buf, CHUNK,
				       STORE_COPIED_IN, &e), 0, "%s", e.msg);
	}
	memset(obj.id, 0x5a, SHA256_LEN);
	obj.index = &ix;
	snprintf(obj.label, sizeof(obj.label), "test object");
	cr_assert_eq(objsrv_start("127.0.0.1:0", origin, NULL, NULL, &srv, &e),
		     0, "%s", e.msg);
	snprintf(live, sizeof(live), "127.0.0.1:%u", objsrv_port(srv));
	gone_addr(gone);
}

static void
teardown(void)
{
	objsrv_stop(srv);
	store_close(origin);
	store_close(reader);
	free(ix.chunks);
	tu_rmtree(dir);
	free(dir);
}

TestSuite(fetch, .init = setup, .fini = teardown);

/* The figures .status shows for the source at addr. */
static json_int_t
source_stat(struct fetcher *f, const char *addr, const char *what)
{
	json_t *st = fetcher_status(f), *s;
	json_int_t v = -1;
	size_t i;

	json_array_foreach(json_object_get(st, "sources"), i, s)
		if (strcmp(json_string_value(json_object_get(s, "addr")),
			   addr) == 0)
			v = json_integer_value(json_object_get(s, what));
	json_decref(st);
	return v;
}

Test(fetch, gets_every_chunk_verified_from_a_live_source)
{
	struct fetcher *f;
	struct err e;

	order[0] = live;
	norder = 1;
	cr_assert_eq(fetcher_start(reader, sources, NULL, NULL, &f, &e), 0);
	for (uint32_t i = 0; i < NCHUNKS; i++) {
		cr_assert_eq(fetcher_get(f, &obj, i, 0, &e), 0, "chunk %u: %s",
			     i, e.msg);
		cr_assert(store_has(reader, ix.chunks[i]));
		cr_assert(store_fetched(reader, ix.chunks[i]));
	}
	cr_assert_eq(source_stat(f, live, "chunks"), NCHUNKS);
	fetcher_stop(f);
}

Test(fetch, a_source_that_is_gone_is_not_asked_for_every_chunk)
{
	struct fetcher *f;
	struct err e;
	json_int_t errors;

	/* listed first, as the authority may list a peer that left */
	order[0] = gone;
	order[1] = live;
	norder = 2;
	cr_assert_eq(fetcher_start(reader, sources, NULL, NULL, &f, &e), 0);
	for (uint32_t i = 0; i < NCHUNKS; i++)
		cr_assert_eq(fetcher_get(f, &obj, i, 0, &e), 0, "chunk %u: %s",
			     i, e.msg);
	errors = source_stat(f, gone, "errors");
	cr_assert(errors >= 0 && errors <= 2,
		  "the gone source was asked %lld times for %d chunks",
		  (long long)errors, NCHUNKS);
	cr_assert_eq(source_stat(f, live, "chunks"), NCHUNKS);
	fetcher_stop(f);
}

Test(fetch, with_every_source_gone_a_read_fails_fast_and_says_why)
{
	struct fetcher *f;
	struct err e;
	struct timespec t0, t1;

	order[0] = gone;
	norder = 1;
	cr_assert_eq(fetcher_start(reader, sources, NULL, NULL, &f, &e), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(fetcher_get(f, &obj, 3, 0, &e), -1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_assert(t1.tv_sec - t0.tv_sec < 10, "took %lld s",
		  (long long)(t1.tv_sec - t0.tv_sec));
	cr_assert(strstr(e.msg, "chunk 3") != NULL, "%s", e.msg);
	cr_assert(strstr(e.msg, gone) != NULL, "%s", e.msg);
	cr_assert(!store_has(reader, ix.chunks[3]));
	fetcher_stop(f);
}

Test(fetch, a_source_down_is_still_asked_when_the_others_lack_the_chunk)
{
	struct fetcher *f;
	struct fetch_object other;
	struct store *empty;
	struct objsrv *lacking, *back;
	char lack[FETCH_ADDR_MAX], *edir, listen[FETCH_ADDR_MAX];
	struct timespec t0, t1;
	struct err e;
	double secs;

	/* the holder fails three times in a row: down for 4 s */
	order[0] = gone;
	norder = 1;
	cr_assert_eq(fetcher_start(reader, sources, NULL, NULL, &f, &e), 0);
	for (uint32_t i = 0; i < 3; i++)
		cr_assert_eq(fetcher_get(f, &obj, i, 0, &e), -1);
	/* then it comes back, beside a peer that lacks the chunk (404) */
	snprintf(listen, sizeof(listen), "%s", gone);
	cr_assert_eq(objsrv_start(listen, origin, NULL, NULL, &back, &e), 0,
		     "%s", e.msg);
	edir = tu_path(dir, "empty");
	cr_assert_eq(mkdir(edir, 0700), 0);
	cr_assert_eq(store_open(edir, 0, &empty, &e), 0, "%s", e.msg);
	cr_assert_eq(objsrv_start("127.0.0.1:0", empty, NULL, NULL, &lacking,
				  &e), 0, "%s", e.msg);
	snprintf(lack, sizeof(lack), "127.0.0.1:%u", objsrv_port(lacking));
	order[0] = lack;
	order[1] = gone;
	norder = 2;
	/* another object (sources are cached per object), same chunks */
	other = obj;
	other.id[0] ^= 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(fetcher_get(f, &other, 10, 0, &e), 0, "%s", e.msg);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	cr_assert(secs < 3.0, "took %.1f s: waited out the holder's 4 s down",
		  secs);
	fetcher_stop(f);
	objsrv_stop(lacking);
	objsrv_stop(back);
	store_close(empty);
	free(edir);
}

/* Seconds since t0. */
static double
since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) +
	       (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

Test(fetch, a_reader_ahead_of_the_transfers_never_waits_on_an_idle_fetcher)
{
	struct fetcher *f;
	struct store *fresh;
	struct timespec t0;
	struct err e;
	double worst = 0, t;
	uint32_t at = 0;

	/* read-ahead of every chunk at once: more jobs than transfers run
	 * together (FETCH_PARALLEL), so the queue must start the rest as the
	 * first ones end, not when the fetch thread next wakes for something
	 * else (its idle wait is a second).  Whether the first transfers all
	 * end together is up to the scheduler: eight rounds, each into an
	 * empty store */
	cr_assert(NCHUNKS > FETCH_PARALLEL);
	order[0] = live;
	norder = 1;
	for (int round = 0; round < 8; round++) {
		char name[32], *path;

		snprintf(name, sizeof(name), "ahead%d", round);
		path = tu_path(dir, name);
		cr_assert_eq(mkdir(path, 0700), 0);
		cr_assert_eq(store_open(path, 0, &fresh, &e), 0, "%s", e.msg);
		cr_assert_eq(fetcher_start(fresh, sources, NULL, NULL, &f, &e),
			     0);
		for (uint32_t i = 0; i < NCHUNKS; i++) {
			clock_gettime(CLOCK_MONOTONIC, &t0);
			cr_assert_eq(fetcher_get(f, &obj, i, i == 0 ?
						 NCHUNKS - 1 : 0, &e), 0,
				     "chunk %u: %s", i, e.msg);
			if ((t = since(&t0)) > worst) {
				worst = t;
				at = i;
			}
		}
		fetcher_stop(f);
		store_close(fresh);
		free(path);
	}
	cr_assert(worst < 0.5, "chunk %u waited %.2f s for a fetcher with "
		  "nothing else to do", at, worst);
}

/* A source that says busy (503) to everyone, even to an asker that says it
 * is its last resort (a peer at its upload cap does), until told to serve. */
static struct {
	int asked;
	int insisted;			/* asks that said "last resort" */
	bool serve;
	pthread_mutex_t lock;
} busy_src = { .lock = PTHREAD_MUTEX_INITIALIZER };

static enum MHD_Result
busy_answer(void *cls, struct MHD_Connection *c, const char *url,
	    const char *method, const char *version, const char *upload,
	    size_t *upload_len, void **state)
{
	static uint8_t chunk[CHUNK];
	struct MHD_Response *r;
	enum MHD_Result ret;
	bool serve;

	(void)cls, (void)url, (void)method, (void)version, (void)upload;
	(void)upload_len, (void)state;
	pthread_mutex_lock(&busy_src.lock);
	busy_src.asked++;
	busy_src.insisted += MHD_lookup_connection_value(c, MHD_HEADER_KIND,
			FETCH_LAST_RESORT_HDR) != NULL;
	serve = busy_src.serve;
	pthread_mutex_unlock(&busy_src.lock);
	tu_fill(chunk, CHUNK, 1000);		/* chunk 0 */
	r = MHD_create_response_from_buffer(serve ? CHUNK : 0, chunk,
					    MHD_RESPMEM_MUST_COPY);
	ret = MHD_queue_response(c, serve ? MHD_HTTP_OK :
				 MHD_HTTP_SERVICE_UNAVAILABLE, r);
	MHD_destroy_response(r);
	return ret;
}

static bool
asked_three_times(void *arg)
{
	bool yes;

	(void)arg;
	pthread_mutex_lock(&busy_src.lock);
	yes = busy_src.asked >= 3;
	pthread_mutex_unlock(&busy_src.lock);
	return yes;
}

static void *
get_chunk0(void *arg)
{
	struct err e;

	return (void *)(intptr_t)fetcher_get(arg, &obj, 0, 0, &e);
}

Test(fetch, a_source_busy_even_for_a_last_resort_is_asked_again_after_a_wait)
{
	struct MHD_Daemon *mhd;
	struct fetcher *f;
	struct timespec t0;
	char addr[FETCH_ADDR_MAX];
	pthread_t t;
	struct err e;
	void *rc;
	double secs;

	mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
			       busy_answer, NULL, MHD_OPTION_END);
	cr_assert(mhd != NULL);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u",
		 MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_BIND_PORT)->port);
	order[0] = addr;
	norder = 1;
	cr_assert_eq(fetcher_start(reader, sources, NULL, NULL, &f, &e), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(pthread_create(&t, NULL, get_chunk0, f), 0);
	/* asked, asked again as the last resort (once the authority was
	 * asked anew), then after a wait: not in a loop as fast as the source
	 * can say no */
	cr_assert(tu_poll(10000, asked_three_times, NULL));
	secs = since(&t0);
	pthread_mutex_lock(&busy_src.lock);
	busy_src.serve = true;
	pthread_mutex_unlock(&busy_src.lock);
	cr_assert_eq(pthread_join(t, &rc), 0);
	cr_assert_eq((intptr_t)rc, 0, "the chunk never came once served");
	cr_assert(secs >= 0.05, "asked 3 times in %.3f s: no wait before "
		  "asking a busy source again", secs);
	fetcher_stop(f);
	MHD_stop_daemon(mhd);
}

static char busy_addr[FETCH_ADDR_MAX];
static int busy_lists;

/* The authority's answer as peers start reading at once: first only the
 * owner (busy: it sent the chunk to another peer this window), then the
 * peer that fetched it too, announced a moment later. */
static int
owner_then_peer(void *arg, const uint8_t id[SHA256_LEN],
		char addrs[][FETCH_ADDR_MAX], int max)
{
	(void)arg;
	(void)id;
	(void)max;
	snprintf(addrs[0], FETCH_ADDR_MAX, "%s", busy_addr);
	if (__atomic_fetch_add(&busy_lists, 1, __ATOMIC_SEQ_CST) == 0)
		return 1;
	snprintf(addrs[1], FETCH_ADDR_MAX, "%s", live);
	return 2;
}

/* A busy owner, on a list of holders asked for before it said so, is not
 * insisted upon: the fetcher asks the authority anew, and probes and asks
 * the peer that appears (never heard from, but not down) rather than make
 * the owner send the chunk once more. */
Test(fetch, a_busy_owner_sends_the_reader_to_a_peer_that_appeared_meanwhile)
{
	struct MHD_Daemon *mhd;
	struct fetcher *f;
	struct timespec t0;
	struct err e;

	mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
			       busy_answer, NULL, MHD_OPTION_END);
	cr_assert(mhd != NULL);
	snprintf(busy_addr, sizeof(busy_addr), "127.0.0.1:%u",
		 MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_BIND_PORT)->port);
	cr_assert_eq(fetcher_start(reader, owner_then_peer, NULL, NULL, &f,
				   &e), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(fetcher_get(f, &obj, 0, 0, &e), 0, "%s", e.msg);
	cr_assert_eq(source_stat(f, live, "chunks"), 1);
	cr_assert(busy_lists >= 2, "the authority was not asked anew");
	cr_assert_eq(busy_src.insisted, 0, "the owner was insisted upon "
		     "on a list that predates its busy");
	cr_assert(since(&t0) < FETCH_SOURCES_TTL_S,
		  "%.2f s: the new holder waited for the list's TTL", since(&t0));
	fetcher_stop(f);
	MHD_stop_daemon(mhd);
}

/* How many of this process's threads are called name (/proc/self/task). */
static int
threads_named(const char *name)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	int n = 0;

	cr_assert(d != NULL);
	while ((de = readdir(d)) != NULL) {
		char path[300], comm[32] = "";
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
			 de->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;	/* a thread that just ended */
		if (fgets(comm, sizeof(comm), f) != NULL)
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
		n += strcmp(comm, name) == 0;
	}
	closedir(d);
	return n;
}

static bool
fetcher_threads_named(void *arg)
{
	(void)arg;
	return threads_named("fed-fetch") == 1 && threads_named("fed-verify") > 0;
}

/* `top -H`, perf and gdb tell the fetcher's threads from libfuse's. */
Test(fetch, its_threads_say_what_they_do)
{
	struct fetcher *f;
	struct err e;

	cr_assert_eq(fetcher_start(reader, sources, NULL, NULL, &f, &e), 0);
	cr_assert(tu_poll(5000, fetcher_threads_named, NULL),
		  "no thread named fed-fetch, or none fed-verify");
	cr_assert_eq(threads_named("fed-sync"), 2, "one syncer per store");
	fetcher_stop(f);
	cr_assert_eq(threads_named("fed-fetch"), 0, "stopped, still running");
}

static struct fetcher *stats_f;

static bool
live_gave_every_chunk(void *arg)
{
	(void)arg;
	return source_stat(stats_f, live, "chunks") == NCHUNKS;
}

/* A peer that left, at an address that drops packets, beside a live one:
 * a sequential reader's read-ahead (every chunk at once) does not wait out
 * a connect timeout (2 s) on it, not even for the first chunk: it is
 * probed, and meanwhile the live one, which answered at once, serves. */
Test(fetch, a_source_that_drops_connections_is_not_waited_on)
{
	char hole[FETCH_ADDR_MAX];
	struct fetcher *f;
	struct err e;
	double first, secs;
	int fds[2];
	json_int_t errors;
	struct timespec t0;

	hole_addr(hole, fds);
	order[0] = hole;
	order[1] = live;
	norder = 2;
	cr_assert_eq(fetcher_start(reader, sources, NULL, NULL, &f, &e), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(fetcher_get(f, &obj, 0, NCHUNKS - 1, &e), 0, "%s", e.msg);
	first = since(&t0);
	for (uint32_t i = 1; i < NCHUNKS; i++)
		cr_assert_eq(fetcher_get(f, &obj, i, 0, &e), 0, "chunk %u: %s",
			     i, e.msg);
	secs = since(&t0);
	errors = source_stat(f, hole, "errors");
	cr_assert(first < 0.5, "the first chunk took %.2f s", first);
	cr_assert(secs < 1.0, "%d chunks took %.2f s", NCHUNKS, secs);
	cr_assert(errors >= 0 && errors <= 1, "the silent source failed %lld "
		  "times", (long long)errors);
	/* a chunk is readable once stored, a moment before the verifier
	 * counts it: the count is waited for */
	stats_f = f;
	cr_assert(tu_poll(5000, live_gave_every_chunk, NULL),
		  "the live source gave %lld of %d chunks",
		  (long long)source_stat(f, live, "chunks"), NCHUNKS);
	fetcher_stop(f);	/* its probe still waiting: stopped all the same */
	close(fds[0]);
	close(fds[1]);
}

/* A peer that holds nothing (it says 404 to everything): its object
 * server on an empty store under dir/name, and its address in addr. */
static void
lacking_start(const char *name, struct store **store, struct objsrv **server,
	      char addr[FETCH_ADDR_MAX])
{
	char *path = tu_path(dir, name);
	struct err e;

	cr_assert_eq(mkdir(path, 0700), 0);
	cr_assert_eq(store_open(path, 0, store, &e), 0, "%s", e.msg);
	free(path);
	cr_assert_eq(objsrv_start("127.0.0.1:0", *store, NULL, NULL, server,
				  &e), 0, "%s", e.msg);
	snprintf(addr, FETCH_ADDR_MAX, "127.0.0.1:%u", objsrv_port(*server));
}

/* A peer that does not hold a chunk yet says so in a few words (404): for
 * a last chunk shorter than those words that is no lie, and the peer stays
 * a good source.  Asked first or second at random: eight fresh readers. */
Test(fetch, a_404_for_a_tiny_last_chunk_is_not_a_lie)
{
	struct store *empty, *r;
	struct objsrv *lacking;
	struct chunk_index tix = { .size = CHUNK + 10, .chunk_size = CHUNK,
				   .nchunks = 2 };
	struct fetch_object tobj = { .index = &tix };
	char lack[FETCH_ADDR_MAX], *path;
	uint8_t buf[CHUNK];
	struct fetcher *f;
	struct err e;

	tu_fill(buf, CHUNK, 77);
	tix.chunks = calloc(2, SHA256_LEN);
	sha256(buf, CHUNK, tix.chunks[0]);
	sha256(buf, 10, tix.chunks[1]);
	cr_assert_eq(store_put(origin, tix.chunks[1], buf, 10, STORE_COPIED_IN,
			       &e), 0);
	memset(tobj.id, 0x77, SHA256_LEN);
	snprintf(tobj.label, sizeof(tobj.label), "tiny object");
	lacking_start("lacking", &empty, &lacking, lack);
	order[0] = lack;
	order[1] = live;
	norder = 2;
	for (int round = 0; round < 8; round++) {
		char name[32];

		snprintf(name, sizeof(name), "tiny%d", round);
		path = tu_path(dir, name);
		cr_assert_eq(mkdir(path, 0700), 0);
		cr_assert_eq(store_open(path, 0, &r, &e), 0, "%s", e.msg);
		free(path);
		cr_assert_eq(fetcher_start(r, sources, NULL, NULL, &f, &e), 0);
		cr_assert_eq(fetcher_get(f, &tobj, 1, 0, &e), 0, "%s", e.msg);
		cr_assert(source_stat(f, lack, "bad_chunks") <= 0,
			  "a peer that lacks the chunk was called a liar");
		cr_assert(source_stat(f, lack, "errors") <= 0,
			  "a peer that lacks the chunk counted as failing");
		fetcher_stop(f);
		store_close(r);
	}
	objsrv_stop(lacking);
	store_close(empty);
	free(tix.chunks);
}

static struct fetcher *ahead_f;

static bool
all_after_the_first_held(void *arg)
{
	(void)arg;
	for (uint32_t i = 1; i < NCHUNKS; i++)
		if (!store_has(reader, ix.chunks[i]))
			return false;
	return true;
}

/* A reader that has chunk 0 open already asks only for what comes after
 * it: were chunk 0 evicted meanwhile, waiting on its fetch would hold up a
 * read that has its bytes. */
Test(fetch, read_ahead_alone_fetches_only_the_next_chunks)
{
	struct err e;

	order[0] = live;
	norder = 1;
	cr_assert_eq(fetcher_start(reader, sources, NULL, NULL, &ahead_f, &e),
		     0);
	fetcher_ahead(ahead_f, &obj, 0, NCHUNKS - 1);
	cr_assert(tu_poll(10000, all_after_the_first_held, NULL));
	cr_assert(!store_has(reader, ix.chunks[0]), "chunk 0 was fetched");
	fetcher_stop(ahead_f);
}

static int growing_calls;
static char growing_lack[FETCH_ADDR_MAX];

/* The authority's answer while peers start reading: at first only a peer
 * that does not hold the chunk yet, then the live one too. */
static int
growing_sources(void *arg, const uint8_t id[SHA256_LEN],
		char addrs[][FETCH_ADDR_MAX], int max)
{
	(void)arg;
	(void)id;
	(void)max;
	snprintf(addrs[0], FETCH_ADDR_MAX, "%s", growing_lack);
	if (__atomic_fetch_add(&growing_calls, 1, __ATOMIC_SEQ_CST) == 0)
		return 1;
	snprintf(addrs[1], FETCH_ADDR_MAX, "%s", live);
	return 2;
}

/* A reader waiting on a chunk nobody listed has yet keeps asking the
 * authority, and gets it from the holder that appears: it does not go on
 * asking the stale list until the busy deadline (20 s) and fail. */
Test(fetch, a_waiting_reader_finds_a_holder_that_appears_later)
{
	struct store *empty;
	struct objsrv *lacking;
	struct fetcher *f;
	struct err e;

	lacking_start("lacking", &empty, &lacking, growing_lack);
	cr_assert_eq(fetcher_start(reader, growing_sources, NULL, NULL, &f,
				   &e), 0);
	cr_assert_eq(fetcher_get(f, &obj, 5, 0, &e), 0, "%s", e.msg);
	cr_assert(growing_calls >= 2);
	cr_assert_eq(source_stat(f, live, "chunks"), 1);
	fetcher_stop(f);
	objsrv_stop(lacking);
	store_close(empty);
}

/* Sources per object: object 'A' is held only by a gone peer (its address
 * drops connections), any other by the live source. */
static char hole[FETCH_ADDR_MAX];

static int
sources_by_object(void *arg, const uint8_t id[SHA256_LEN],
		  char addrs[][FETCH_ADDR_MAX], int max)
{
	(void)arg;
	(void)max;
	snprintf(addrs[0], FETCH_ADDR_MAX, "%s", id[0] == 'A' ? hole : live);
	return 1;
}

static void *
get_chunk0_of(void *arg)
{
	struct fetcher **fo = arg;
	struct err e;

	return (void *)(intptr_t)fetcher_get(fo[0], (struct fetch_object *)fo[1],
					     0, 0, &e);
}

static bool
chunk0_on_its_way(void *arg)
{
	json_t *st = fetcher_status(arg);
	bool yes = json_integer_value(json_object_get(st, "jobs")) >= 1;

	json_decref(st);
	return yes;
}

/* A chunk two objects share is fetched once, from the sources of the one
 * asked first; when those fail, a reader of the other still gets it from
 * its own object's sources instead of an error. */
Test(fetch, a_shared_chunk_comes_from_the_readers_own_sources_when_the_others_fail)
{
	struct fetch_object a = obj, b = obj;
	struct fetcher *f;
	void *args[2], *rc_a;
	pthread_t t;
	struct err e;
	int fds[2];

	hole_addr(hole, fds);
	memset(a.id, 'A', SHA256_LEN);
	memset(b.id, 'B', SHA256_LEN);
	snprintf(a.label, sizeof(a.label), "object A");
	snprintf(b.label, sizeof(b.label), "object B");
	cr_assert_eq(fetcher_start(reader, sources_by_object, NULL, NULL, &f,
				   &e), 0);
	args[0] = f;
	args[1] = &a;
	cr_assert_eq(pthread_create(&t, NULL, get_chunk0_of, args), 0);
	cr_assert(tu_poll(5000, chunk0_on_its_way, f));	/* A's job runs */
	cr_assert_eq(fetcher_get(f, &b, 0, 0, &e), 0,
		     "the reader of B, whose source holds the chunk: %s", e.msg);
	cr_assert(store_has(reader, ix.chunks[0]));
	cr_assert_eq(pthread_join(t, &rc_a), 0);
	fetcher_stop(f);
	close(fds[0]);
	close(fds[1]);
}

/* A loopback port that accepts and never answers, as a peer whose process
 * is stopped (SIGSTOP) does: a listener nobody accepts from, whose kernel
 * completes the handshakes and queues the requests. */
static int
stalled_addr(char *out)
{
	return loopback_socket(out, true);
}

Test(fetch, a_source_that_accepts_and_stalls_costs_less_than_the_first_byte_deadline)
{
	char stalled[FETCH_ADDR_MAX];
	int fd = stalled_addr(stalled);
	struct timespec t0;
	struct fetcher *f;
	struct err e;
	double first, all;

	order[0] = stalled;	/* unmeasured both: asked in random order */
	order[1] = live;
	norder = 2;
	cr_assert_eq(fetcher_start(reader, sources, NULL, NULL, &f, &e), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(fetcher_get(f, &obj, 0, 0, &e), 0, "%s", e.msg);
	first = since(&t0);
	cr_assert(first < FETCH_FIRST_BYTE_MS / 1000.0 + 0.5,
		  "the first chunk took %.2f s", first);
	for (uint32_t i = 1; i < NCHUNKS; i++)
		cr_assert_eq(fetcher_get(f, &obj, i, 0, &e), 0, "chunk %u: %s",
			     i, e.msg);
	all = since(&t0);
	/* each job races the stalled one for a stagger at most until its
	 * first try is cut off, then it is down and not asked */
	cr_assert(all < 2 * FETCH_FIRST_BYTE_MS / 1000.0 + 1.0,
		  "%d chunks took %.2f s", NCHUNKS, all);
	cr_assert_eq(source_stat(f, live, "chunks"), NCHUNKS);
	fetcher_stop(f);
	close(fd);
}

/* The stalled source alone: cut off at the deadline, said in .status. */
Test(fetch, a_stalled_only_source_fails_at_the_first_byte_deadline)
{
	char stalled[FETCH_ADDR_MAX];
	int fd = stalled_addr(stalled);
	struct timespec t0;
	struct fetcher *f;
	struct err e;
	double secs;

	order[0] = stalled;
	norder = 1;
	cr_assert_eq(fetcher_start(reader, sources, NULL, NULL, &f, &e), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(fetcher_get(f, &obj, 0, 0, &e), -1);
	secs = since(&t0);
	cr_assert(secs >= FETCH_FIRST_BYTE_MS / 1000.0 - 0.05 &&
		  secs < FETCH_FIRST_BYTE_MS / 1000.0 + 0.5, "took %.2f s", secs);
	cr_assert(strstr(e.msg, "no answer within") != NULL, "%s", e.msg);
	cr_assert_eq(source_stat(f, stalled, "cut_off"), 1);
	fetcher_stop(f);
	close(fd);
}

/* Sources whose addresses drop packets, n of them: a read fails within
 * about one probe deadline whatever n, and the next read at once. */
static void
dead_sources_fail_fast(int n)
{
	static char holes[8][FETCH_ADDR_MAX];
	static const char *list[8];
	int fds[8][2];
	struct timespec t0;
	struct fetcher *f;
	struct err e;
	double first, second;

	for (int i = 0; i < n; i++) {
		hole_addr(holes[i], fds[i]);
		list[i] = holes[i];
	}
	multi_order = list;
	multi_n = n;
	cr_assert_eq(fetcher_start(reader, multi_sources, NULL, NULL, &f, &e),
		     0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(fetcher_get(f, &obj, 0, 4, &e), -1);
	first = since(&t0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(fetcher_get(f, &obj, 9, 0, &e), -1);
	second = since(&t0);
	cr_assert(first < FETCH_FIRST_BYTE_MS / 1000.0 + 1.0,
		  "%d dead sources: the first read took %.2f s", n, first);
	cr_assert(second < 0.3, "%d dead sources, known down: the next read "
		  "took %.2f s", n, second);
	/* it says whom it asked, as far as an error line holds */
	cr_assert(strstr(e.msg, "down: ") != NULL, "%s", e.msg);
	for (int i = 0, named = 0; i < n; i++) {
		named += strstr(e.msg, holes[i]) != NULL;
		cr_assert(i < n - 1 || named >= (n < 4 ? n : 4), "%s", e.msg);
	}
	fetcher_stop(f);
	for (int i = 0; i < n; i++) {
		close(fds[i][0]);
		close(fds[i][1]);
	}
}

Test(fetch, one_dead_source_gives_an_error_within_the_bound)
{
	dead_sources_fail_fast(1);
}

Test(fetch, eight_dead_sources_give_an_error_within_the_same_bound)
{
	dead_sources_fail_fast(8);
}

/* A source that answers 200 with a complete body of the wrong length: the
 * first 100 bytes of chunk 0.  (curl took the whole of what it said it
 * would send: a liar, not a broken connection.) */
static enum MHD_Result
short_answer(void *cls, struct MHD_Connection *c, const char *url,
	     const char *method, const char *version, const char *upload,
	     size_t *upload_len, void **state)
{
	static uint8_t chunk[CHUNK];
	struct MHD_Response *r;
	enum MHD_Result ret;

	(void)cls, (void)url, (void)method, (void)version, (void)upload;
	(void)upload_len, (void)state;
	tu_fill(chunk, CHUNK, 1000);		/* chunk 0 */
	r = MHD_create_response_from_buffer(100, chunk, MHD_RESPMEM_MUST_COPY);
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static struct {
	int n;
	struct fetch_liar l;
	pthread_mutex_t lock;
} reported = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void
on_liar(void *arg, const struct fetch_liar *l)
{
	(void)arg;
	pthread_mutex_lock(&reported.lock);
	reported.n++;
	reported.l = *l;
	pthread_mutex_unlock(&reported.lock);
}

/* A source caught sending a copy of the wrong length is a liar like one
 * whose copy fails its hash: marked bad for the object and reported, once,
 * with the evidence (chunk, expected hash, hash of what it sent), and
 * not asked again for that object. */
Test(fetch, a_wrong_length_copy_is_reported_as_a_lie)
{
	struct MHD_Daemon *mhd;
	struct fetcher *f;
	char addr[FETCH_ADDR_MAX];
	uint8_t sent[SHA256_LEN], buf[CHUNK];
	struct err e;

	mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
			       short_answer, NULL, MHD_OPTION_END);
	cr_assert(mhd != NULL);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u",
		 MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_BIND_PORT)->port);
	order[0] = addr;	/* the only source: it is asked */
	norder = 1;
	cr_assert_eq(fetcher_start(reader, sources, NULL, NULL, &f, &e), 0);
	fetcher_on_liar(f, on_liar, NULL);
	cr_assert_eq(fetcher_get(f, &obj, 0, 0, &e), -1, "a wrong copy taken");
	cr_assert(strstr(e.msg, "sent 100 bytes, the chunk has") != NULL, "%s",
		  e.msg);
	/* a bad source for the object: not asked for its other chunks */
	cr_assert_eq(fetcher_get(f, &obj, 1, 0, &e), -1);
	pthread_mutex_lock(&reported.lock);
	cr_assert_eq(reported.n, 1, "reported once, not per chunk: %d",
		     reported.n);
	cr_assert_str_eq(reported.l.addr, addr);
	cr_assert_eq(reported.l.chunk, 0);
	cr_assert_arr_eq(reported.l.expected, ix.chunks[0], SHA256_LEN);
	tu_fill(buf, CHUNK, 1000);
	sha256(buf, 100, sent);
	cr_assert_arr_eq(reported.l.received, sent, SHA256_LEN);
	pthread_mutex_unlock(&reported.lock);
	cr_assert_eq(source_stat(f, addr, "bad_chunks"), 1);
	fetcher_stop(f);
	MHD_stop_daemon(mhd);
}

/* .status and /metrics say what was fetched of each object, against its
 * size: how lazy a cold start was (issue: "fetch only what the boot
 * touches"). */
Test(fetch, what_was_fetched_is_counted_per_object)
{
	struct fetcher *f;
	struct err e;
	json_t *st, *o;
	size_t len;
	char *m, hex[2 * SHA256_LEN + 1];

	order[0] = live;
	norder = 1;
	cr_assert_eq(fetcher_start(reader, sources, NULL, NULL, &f, &e), 0);
	for (uint32_t i = 0; i < 3; i++)
		cr_assert_eq(fetcher_get(f, &obj, i, 0, &e), 0, "%s", e.msg);
	st = fetcher_status(f);
	cr_assert_eq(json_array_size(json_object_get(st, "objects")), 1);
	o = json_array_get(json_object_get(st, "objects"), 0);
	hex_encode(obj.id, SHA256_LEN, hex);
	cr_assert_str_eq(json_string_value(json_object_get(o, "id")), hex);
	cr_assert_str_eq(json_string_value(json_object_get(o, "label")),
			 "test object");
	cr_assert_eq(json_integer_value(json_object_get(o, "size")),
		     (json_int_t)ix.size);
	cr_assert_eq(json_integer_value(json_object_get(o, "fetched_chunks")), 3);
	cr_assert_eq(json_integer_value(json_object_get(o, "fetched_bytes")),
		     3 * CHUNK);
	json_decref(st);
	m = fetcher_metrics(f, &len);
	cr_assert(strstr(m, hex) != NULL, "per object in /metrics");
	free(m);
	fetcher_stop(f);
}

/* The bytes behind an fd, hashed. */
static void
fd_sha(int fd, size_t len, uint8_t out[SHA256_LEN])
{
	uint8_t buf[CHUNK];

	cr_assert_eq(pread(fd, buf, len, 0), (ssize_t)len);
	sha256(buf, len, out);
}

/* The read path's step: fetcher_open hands back an open fd of the chunk,
 * fetched and verified, or held already; the fd's bytes are the chunk's
 * even once the store lets the file go. */
static bool
chunk2_durable(void *arg)
{
	(void)arg;
	return store_durable(reader, ix.chunks[2]);
}

Test(fetch, fetcher_open_hands_back_the_verified_chunk)
{
	char path[512];
	struct fetcher *f;
	uint8_t got[SHA256_LEN];
	struct err e;
	int fd;

	order[0] = live;
	norder = 1;
	cr_assert_eq(fetcher_start(reader, sources, NULL, NULL, &f, &e), 0);
	fd = fetcher_open(f, &obj, 2, 1, &e);	/* fetched */
	cr_assert_geq(fd, 0, "%s", e.msg);
	cr_assert(tu_poll(10000, chunk2_durable, NULL), "synced");
	store_chunk_path(reader, ix.chunks[2], path, sizeof(path));
	cr_assert_eq(unlink(path), 0, "its file gone (as by an eviction)");
	fd_sha(fd, CHUNK, got);
	cr_assert_arr_eq(got, ix.chunks[2], SHA256_LEN, "its bytes, still");
	close(fd);
	cr_assert_eq(fetcher_get(f, &obj, 1, 0, &e), 0, "%s", e.msg);
	fd = fetcher_open(f, &obj, 1, 0, &e);	/* held already */
	cr_assert_geq(fd, 0, "%s", e.msg);
	fd_sha(fd, CHUNK, got);
	cr_assert_arr_eq(got, ix.chunks[1], SHA256_LEN);
	close(fd);
	cr_assert_eq(fetcher_open(f, &obj, NCHUNKS, 0, &e), -1, "no such chunk");
	fetcher_stop(f);
}
