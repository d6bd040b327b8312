/*
 * test_client_signed.c - the client's lookup with the authority's key
 * pinned (client_lookup_trusted), against a real authority started with
 * that key (authfix): a signed answer is used and cached; an answer from
 * an authority without the key, or signed by another, is refused; an
 * answer older than the cached one is refused (rollback); an expired
 * answer is refused unless --allow-stale, from the authority and from the
 * cache; a cache file that does not verify is ignored, and nothing that
 * failed a check is ever written to the cache.
 *
 * The client's clock is the `now` argument, so "an hour later" needs no
 * waiting: the authority's answers are valid for 600 s.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "common/signed_answer.h"
#include "lib/authfix.h"
#include "lib/testutil.h"

#define HOST "www.example.org"
#define PORT 80

static struct authfix F;
static struct tkey K;			/* the authority's key */
static struct signed_trust T;		/* the client pins K */
static struct af_world W;
static char *cache;

/* Start an authority (signing with K if keyed) serving W, p1 up. */
static void
start(bool keyed)
{
	authfix_start_signed(&F, keyed ? &K : NULL, 600);
	af_world_make(&F, &W, 1);
	af_commit_up(&F, &W.p1, W.id, "192.0.2.1", 40001);
}

static void
setup(void)
{
	tkey_new(&K);
	memset(&T, 0, sizeof(T));
	T.on = true;
	memcpy(T.key, K.pub, ED25519_PUB_LEN);
	cache = tu_tmpdir();
}

static void
teardown(void)
{
	authfix_stop(&F);
	tu_rmtree(cache);
	free(cache);
}

TestSuite(client_signed, .init = setup, .fini = teardown, .timeout = 60);

static char *
cache_file(void)
{
	char *p;

	cr_assert_neq(asprintf(&p, "%s/lookup/%s:%d.json", cache, HOST, PORT),
		      -1);
	return p;
}

static bool
cached(void)
{
	char *p = cache_file();
	bool there = access(p, F_OK) == 0;

	free(p);
	return there;
}

/* Write a cache entry holding answer, fetched at fetched. */
static void
cache_put(json_t *answer, int64_t fetched)
{
	char *dir, *p = cache_file();
	json_t *j = json_pack("{s:I, s:i, s:o}", "fetched", (json_int_t)fetched,
			      "ttl", 30, "answer", answer);

	cr_assert_neq(asprintf(&dir, "%s/lookup", cache), -1);
	mkdir(dir, 0700);
	cr_assert_eq(json_dump_file(j, p, JSON_COMPACT), 0);
	json_decref(j);
	free(dir);
	free(p);
}

/* An answer for HOST:PORT listing addr, signed by seed/pub. */
static json_t *
answer_signed(const struct tkey *k, time_t issued, int64_t version,
	      const char *addr)
{
	json_t *j = json_pack("{s:s, s:i, s:i, s:[{s:s, s:s, s:i}]}",
			      "host", HOST, "port", PORT, "ttl", 30, "peers",
			      "peer", W.p2.hex, "addr", addr, "port", 40002);
	struct err e;

	cr_assert_eq(signed_answer_sign(j, SIGNED_LOOKUP, k->seed, k->pub,
					issued, 600, version, &e), 0, "%s",
		     e.msg);
	return j;
}

static int
lookup(int64_t now, struct client_lookup *l, struct err *e)
{
	return client_lookup_trusted(F.url, cache, &T, HOST, PORT, now, l, e);
}

Test(client_signed, a_signed_answer_is_used_and_cached)
{
	struct client_lookup l;
	struct err e;
	int64_t now = time(NULL);

	start(true);
	cr_assert_eq(lookup(now, &l, &e), 0, "%s", e.msg);
	cr_expect_eq(l.source, CLIENT_SRC_AUTHORITY);
	cr_assert_eq(l.npeers, 1);
	cr_expect_str_eq(l.peers[0].addr, "192.0.2.1");
	client_lookup_free(&l);
	cr_expect(cached());
	/* within the ttl the cached answer, checked again, is used */
	cr_assert_eq(lookup(now + 1, &l, &e), 0, "%s", e.msg);
	cr_expect_eq(l.source, CLIENT_SRC_CACHE);
	client_lookup_free(&l);
}

Test(client_signed, an_unsigned_authority_is_refused_and_nothing_cached)
{
	struct client_lookup l;
	struct err e;

	start(false);
	cr_assert_eq(lookup(time(NULL), &l, &e), -1);
	cr_expect(strstr(e.msg, "'signature' is missing") != NULL, "%s",
		  e.msg);
	cr_expect(!cached(), "a refused answer must not be cached");
}

Test(client_signed, an_answer_signed_by_another_key_is_refused)
{
	struct client_lookup l;
	struct err e;

	start(true);
	tkey_new(&K);			/* the client now pins another key */
	memcpy(T.key, K.pub, ED25519_PUB_LEN);
	cr_assert_eq(lookup(time(NULL), &l, &e), -1);
	cr_expect(strstr(e.msg, "not the pinned authority key") != NULL, "%s",
		  e.msg);
	cr_expect(!cached());
}

Test(client_signed, an_answer_older_than_the_cached_one_is_refused)
{
	struct client_lookup l;
	struct err e;
	int64_t now = time(NULL);

	start(true);
	/* the client holds an answer from the future's authority: version
	 * far above anything signed now, fetched long ago (past its ttl) */
	cache_put(answer_signed(&K, now, INT64_C(1) << 60, "192.0.2.9"),
		  now - 100);
	cr_assert_eq(lookup(now, &l, &e), -1);
	cr_expect(strstr(e.msg, "is older than version") != NULL, "%s",
		  e.msg);
	cr_expect(strstr(e.msg, "(a rollback)") != NULL, "%s", e.msg);
}

Test(client_signed, an_expired_answer_is_refused_unless_allow_stale)
{
	struct client_lookup l;
	struct err e;
	int64_t later = time(NULL) + 3600;	/* answers last 600 s */

	start(true);
	cr_assert_eq(lookup(later, &l, &e), -1);
	cr_expect(strstr(e.msg, "lookup answer for " HOST ":80 expired")
		  != NULL, "%s", e.msg);
	cr_expect(strstr(e.msg, "--allow-stale uses it anyway") != NULL,
		  "%s", e.msg);
	cr_expect(!cached());
	T.allow_stale = true;
	cr_assert_eq(lookup(later, &l, &e), 0, "%s", e.msg);
	cr_expect_eq(l.npeers, 1);
	client_lookup_free(&l);
	cr_expect(!cached(), "an expired answer is not cached");
}

Test(client_signed, an_expired_cached_answer_needs_allow_stale_when_down)
{
	struct client_lookup l;
	struct err e;
	int64_t now = time(NULL);

	start(true);
	cr_assert_eq(lookup(now, &l, &e), 0, "%s", e.msg);
	client_lookup_free(&l);
	authority_stop(F.a);		/* nobody to ask now */
	F.a = NULL;
	/* five minutes on, the cached answer is still valid: used */
	cr_assert_eq(lookup(now + 300, &l, &e), 0, "%s", e.msg);
	cr_expect_eq(l.source, CLIENT_SRC_STALE);
	client_lookup_free(&l);
	/* an hour on it has expired: refused, saying why */
	cr_assert_eq(lookup(now + 3600, &l, &e), -1);
	cr_expect(strstr(e.msg, "authority unreachable") != NULL, "%s", e.msg);
	cr_expect(strstr(e.msg, "expired") != NULL, "%s", e.msg);
	T.allow_stale = true;
	cr_assert_eq(lookup(now + 3600, &l, &e), 0, "%s", e.msg);
	cr_expect_eq(l.source, CLIENT_SRC_STALE);
	cr_expect_eq(l.npeers, 1);
	client_lookup_free(&l);
}

Test(client_signed, a_cache_file_that_does_not_verify_is_ignored)
{
	struct client_lookup l;
	json_t *a;
	struct err e;
	int64_t now = time(NULL);
	struct tkey other;

	start(true);
	/* a cached answer forged by another key, within its ttl */
	tkey_new(&other);
	a = answer_signed(&other, now, 1, "192.0.2.66");
	json_object_set_new(a, "key", json_string(K.hex));
	cache_put(a, now);
	cr_assert_eq(lookup(now, &l, &e), 0, "%s", e.msg);
	cr_expect_eq(l.source, CLIENT_SRC_AUTHORITY, "not the forged cache");
	cr_assert_eq(l.npeers, 1);
	cr_expect_str_eq(l.peers[0].addr, "192.0.2.1");
	client_lookup_free(&l);
}

Test(client_signed, without_a_pinned_key_nothing_is_checked)
{
	struct client_lookup l;
	struct err e;

	start(false);
	cr_assert_eq(client_lookup_trusted(F.url, cache, NULL, HOST, PORT,
					   time(NULL), &l, &e), 0, "%s", e.msg);
	cr_expect_eq(l.npeers, 1);
	client_lookup_free(&l);
}
