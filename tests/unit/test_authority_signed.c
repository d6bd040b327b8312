/*
 * test_authority_signed.c - a real authority with a key (--key) signs its
 * lookup and sources answers, over real HTTP: every answer verifies with
 * the authority's public key (common/signed_answer.c, the clients' check),
 * a lookup is signed once per change and not per request (the same bytes
 * twice, one signature in /metrics), versions grow, a cached answer is
 * signed again before it grows old, the 404 that sends a client to DNS is
 * signed too, and an answer with no peers has a short ttl.  The binary's
 * own --key loader is checked on a spawned fed-authority.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/signed_answer.h"
#include "lib/authfix.h"
#include "lib/testutil.h"

#define SVC "www.example.org:80"
#define LOOKUP "/v1/lookup?host=www.example.org&port=80"

static struct authfix F;
static struct tkey K;		/* the authority's key */

static void
start_with_ttl(int answer_ttl)
{
	tkey_new(&K);
	authfix_start_signed(&F, &K, answer_ttl);
}

static void
setup(void)
{
	start_with_ttl(600);
}

static void
teardown(void)
{
	authfix_stop(&F);
}

TestSuite(signed, .init = setup, .fini = teardown, .timeout = 60);

/* GET target as text; asserts want_status.  The caller frees it. */
static char *
get_text(const char *target, long want_status)
{
	char *text = NULL;
	long st = af_raw(&F, "GET", target, NULL, 0, NULL, &text);

	cr_assert_eq(st, want_status, "GET %s: %ld %s", target, st,
		     text ? text : "");
	return text;
}

/* GET target, parse and verify as kind about subject; fills m. */
static json_t *
get_verified(const char *target, long want_status, enum signed_kind kind,
	     const char *subject, struct signed_meta *m)
{
	char *text = get_text(target, want_status);
	struct err e;
	json_t *j = signed_answer_parse(text, strlen(text), &e);

	cr_assert_not_null(j, "%s: %s", target, e.msg);
	cr_assert_eq(signed_answer_verify(j, kind, subject, K.pub, time(NULL),
					  m, &e), SIGNED_OK, "%s: %s", target,
		     e.msg);
	free(text);
	return j;
}

/* The fed_authority_answers_signed_total of kind in /metrics. */
static long long
signed_count(const char *kind)
{
	char *text = get_text("/metrics", 200), pat[96], *p;
	long long n = -1;

	snprintf(pat, sizeof(pat),
		 "fed_authority_answers_signed_total{kind=\"%s\"} ", kind);
	if ((p = strstr(text, pat)) != NULL)
		n = strtoll(p + strlen(pat), NULL, 10);
	free(text);
	return n;
}

Test(signed, lookup_answers_verify_and_an_empty_one_has_a_short_ttl)
{
	struct signed_meta m, m2;
	struct af_world w;
	json_t *j;

	af_world_make(&F, &w, 1);
	j = get_verified(LOOKUP, 200, SIGNED_LOOKUP, SVC, &m);
	cr_expect_eq(json_array_size(json_object_get(j, "peers")), 0);
	cr_expect_eq(json_integer_value(json_object_get(j, "ttl")),
		     AUTHORITY_NEGATIVE_TTL);
	cr_expect_eq(m.expires - m.issued_at, 600);
	cr_expect_str_eq(json_string_value(json_object_get(j, "key")), K.hex);
	json_decref(j);

	af_commit_up(&F, &w.p1, w.id, "192.0.2.1", 40001);
	j = get_verified(LOOKUP, 200, SIGNED_LOOKUP, SVC, &m2);
	cr_expect_eq(json_array_size(json_object_get(j, "peers")), 1);
	cr_expect_eq(json_integer_value(json_object_get(j, "ttl")),
		     AUTHORITY_TTL_DEFAULT);
	cr_expect_gt(m2.version, m.version, "versions only grow");
	json_decref(j);
}

Test(signed, a_lookup_is_signed_once_per_change_not_per_request)
{
	struct signed_meta m;
	struct af_world w;
	char *a, *b, *c;
	json_t *j;

	af_world_make(&F, &w, 1);
	af_commit_up(&F, &w.p1, w.id, "192.0.2.1", 40001);
	cr_assert_eq(signed_count("lookup"), 0);
	a = get_text(LOOKUP, 200);
	b = get_text(LOOKUP, 200);
	cr_expect_str_eq(a, b, "the same signed bytes, from the cache");
	cr_expect_eq(signed_count("lookup"), 1);

	af_commit_up(&F, &w.p2, w.id, "192.0.2.2", 40002);	/* a change */
	c = get_text(LOOKUP, 200);
	cr_expect_str_neq(a, c);
	cr_expect_eq(signed_count("lookup"), 2);
	j = get_verified(LOOKUP, 200, SIGNED_LOOKUP, SVC, &m);
	cr_expect_eq(json_array_size(json_object_get(j, "peers")), 2);
	cr_expect_eq(signed_count("lookup"), 2);
	json_decref(j);
	free(a);
	free(b);
	free(c);
}

Test(signed, the_dns_fallback_of_an_unknown_service_is_signed)
{
	struct signed_meta m;
	json_t *j;

	j = get_verified("/v1/lookup?host=nobody.example.org&port=80", 404,
			 SIGNED_LOOKUP, "nobody.example.org:80", &m);
	cr_expect_str_eq(json_string_value(json_object_get(j, "fallback")),
			 "dns");
	json_decref(j);
}

Test(signed, sources_answers_verify_and_name_their_object)
{
	struct signed_meta m, m2;
	struct af_world w;
	char path[128];
	json_t *j;
	struct err e;

	af_world_make(&F, &w, 1);
	snprintf(path, sizeof(path), "/v1/sources/%s", w.id);
	j = get_verified(path, 200, SIGNED_SOURCES, w.id, &m);
	cr_expect_eq(json_array_size(json_object_get(j, "sources")), 1);
	/* a sources answer is no lookup answer, nor another object's */
	cr_expect_eq(signed_answer_verify(j, SIGNED_SOURCES, w.base, K.pub,
					  time(NULL), &m2, &e), SIGNED_BAD);
	json_object_set_new(j, "host", json_string("www.example.org"));
	json_object_set_new(j, "port", json_integer(80));
	cr_expect_eq(signed_answer_verify(j, SIGNED_LOOKUP, SVC, K.pub,
					  time(NULL), &m2, &e), SIGNED_BAD);
	json_decref(j);
	j = get_verified(path, 200, SIGNED_SOURCES, w.id, &m2);
	cr_expect_gt(m2.version, m.version);
	json_decref(j);
	cr_expect_eq(signed_count("sources"), 2);
}

/* Is the cached lookup answer signed again (a new signature)? */
static bool
resigned(void *arg)
{
	char *now = get_text(LOOKUP, 200);
	bool changed = strcmp(now, arg) != 0;

	free(now);
	return changed;
}

Test(signed, a_cached_answer_is_signed_again_before_it_expires)
{
	struct signed_meta m;
	struct af_world w;
	char *first;
	json_t *j;

	authfix_stop(&F);
	start_with_ttl(2);
	af_world_make(&F, &w, 1);
	first = get_text(LOOKUP, 200);
	/* valid 2 s, signed again once half of that has passed */
	cr_assert(tu_poll(5000, resigned, first),
		  "the answer was not signed again within 5 s");
	j = get_verified(LOOKUP, 200, SIGNED_LOOKUP, SVC, &m);
	cr_expect_eq(m.expires - m.issued_at, 2);
	json_decref(j);
	free(first);
}

Test(signed, the_binary_loads_its_key_file_and_signs)
{
	char hexnl[80], *keyfile;
	struct signed_meta m;
	const char *extra[] = { "--key", NULL, "--answer-ttl", "60", NULL };
	json_t *j;

	authfix_stop(&F);
	memset(&F, 0, sizeof(F));
	tkey_new(&F.admin);	/* authfix_spawn writes it as --admin-key */
	tkey_new(&K);
	F.dir = tu_tmpdir();
	F.db = tu_path(F.dir, "authority.db");
	keyfile = tu_path(F.dir, "authority.key");
	hex_encode(K.seed, ED25519_SEED_LEN, hexnl);
	strcat(hexnl, "\n");
	tu_write_file(keyfile, hexnl, strlen(hexnl));
	cr_assert_eq(chmod(keyfile, 0600), 0);
	extra[1] = keyfile;
	authfix_spawn(&F, extra);
	j = get_verified("/v1/lookup?host=nobody.example.org&port=80", 404,
			 SIGNED_LOOKUP, "nobody.example.org:80", &m);
	cr_expect_eq(m.expires - m.issued_at, 60);
	json_decref(j);
	free(keyfile);
}
