/*
 * test_mirror.c - peers mirroring the authority's signed lookup answers
 * (issue 21, "Peers mirror"): the store a peer keeps (fedfs/mirror.c),
 * the choice a client makes among mirrors' replies (client/mirror.c), and
 * both through real HTTP: an honest and a lying object server, the client
 * asking them both.
 *
 * The store keeps an answer only if it verifies, is about the service,
 * has not expired and is the freshest; the client takes the freshest
 * valid reply and names why each other one was skipped, so a lying peer
 * can neither forge an answer nor roll one back.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "common/crypto.h"
#include "common/http.h"
#include "common/signed_answer.h"
#include "fedfs/mirror.h"
#include "fedfs/objsrv.h"
#include "fedfs/store.h"
#include "lib/testutil.h"

#define SUBJECT "www.example.org:80"

static uint8_t seed[ED25519_SEED_LEN], pub[ED25519_PUB_LEN];
static uint8_t seed2[ED25519_SEED_LEN], pub2[ED25519_PUB_LEN];
static time_t now;

static void
keys(void)
{
	struct err e;

	cr_assert_eq(crypto_init(&e), 0, "%s", e.msg);
	cr_assert_eq(ed25519_keygen(seed, pub, &e), 0, "%s", e.msg);
	cr_assert_eq(ed25519_keygen(seed2, pub2, &e), 0, "%s", e.msg);
	now = time(NULL);
}

TestSuite(mirror, .init = keys);
TestSuite(mirror_choose, .init = keys);
TestSuite(mirror_http, .init = keys);

/* A lookup answer for host:80 with one peer at addr, signed with sd/pk
 * at issued for ttl s, as version. */
static json_t *
answer_by(const char *host, const char *addr, time_t issued, int ttl,
	  int64_t version, const uint8_t *sd, const uint8_t *pk)
{
	json_t *j = json_pack("{s:s, s:i, s:i, s:[{s:s, s:s, s:i}]}",
			      "host", host, "port", 80, "ttl", 30, "peers",
			      "peer", "aa", "addr", addr, "port", 40001);
	struct err e;

	cr_assert_not_null(j);
	cr_assert_eq(signed_answer_sign(j, SIGNED_LOOKUP, sd, pk, issued, ttl,
					version, &e), 0, "%s", e.msg);
	return j;
}

static json_t *
answer(const char *addr, int64_t version)
{
	return answer_by("www.example.org", addr, now, 600, version, seed,
			 pub);
}

/* The answer's text (malloc'd). */
static char *
text_of(const json_t *j)
{
	char *t = json_dumps(j, JSON_COMPACT);

	cr_assert_not_null(t);
	return t;
}

/* Offer j to mi as SUBJECT; returns mirror_offer's result. */
static int
offer(struct mirror *mi, const json_t *j, struct err *e)
{
	char *t = text_of(j);
	int rc = mirror_offer(mi, SUBJECT, t, strlen(t), now, e);

	free(t);
	return rc;
}

/* The version of the answer mi holds for SUBJECT (-1: none). */
static int64_t
held_version(struct mirror *mi)
{
	size_t len;
	char *t = mirror_get(mi, SUBJECT, &len);
	json_t *j;
	int64_t v;

	if (t == NULL)
		return -1;
	j = json_loadb(t, len, 0, NULL);
	cr_assert_not_null(j);
	v = json_integer_value(json_object_get(j, "version"));
	json_decref(j);
	free(t);
	return v;
}

/* ---- the store a peer keeps ---- */

Test(mirror, a_valid_answer_is_kept_and_served_as_it_verifies)
{
	struct mirror *mi = mirror_new(pub);
	json_t *a = answer("192.0.2.7", 10), *k;
	struct signed_meta m;
	struct err e;
	size_t len;
	char *t;

	cr_assert_eq(offer(mi, a, &e), 1, "%s", e.msg);
	t = mirror_get(mi, SUBJECT, &len);
	cr_assert_not_null(t);
	cr_expect_eq(strlen(t), len);
	k = signed_answer_parse(t, len, &e);
	cr_assert_not_null(k, "%s", e.msg);
	cr_expect_eq(signed_answer_verify(k, SIGNED_LOOKUP, SUBJECT, pub, now,
					  &m, &e), SIGNED_OK, "%s", e.msg);
	cr_expect_eq(m.version, 10);
	cr_expect(json_equal(a, k));
	cr_expect_null(mirror_get(mi, "other.example.org:80", &len));
	free(t);
	json_decref(k);
	json_decref(a);
	mirror_free(mi);
}

Test(mirror, a_forged_answer_is_refused_and_the_held_one_kept)
{
	struct mirror *mi = mirror_new(pub);
	json_t *a = answer("192.0.2.7", 10), *f = answer("192.0.2.7", 20);
	json_t *other = answer_by("www.example.org", "192.0.2.9", now, 600, 30,
				  seed2, pub2);
	struct err e;

	cr_assert_eq(offer(mi, a, &e), 1, "%s", e.msg);
	/* one byte altered after signing: the café router's own address */
	json_object_set_new(json_array_get(json_object_get(f, "peers"), 0),
			    "addr", json_string("192.0.2.66"));
	cr_expect_eq(offer(mi, f, &e), -1);
	cr_expect(strstr(e.msg, "signature") != NULL, "%s", e.msg);
	cr_expect_eq(offer(mi, other, &e), -1, "signed by another key");
	cr_expect_eq(held_version(mi), 10);
	json_decref(a);
	json_decref(f);
	json_decref(other);
	mirror_free(mi);
}

Test(mirror, the_freshest_version_wins_and_a_rollback_is_refused)
{
	struct mirror *mi = mirror_new(pub);
	json_t *v10 = answer("192.0.2.7", 10), *v20 = answer("192.0.2.8", 20);
	json_t *v20b = answer("192.0.2.8", 20);
	struct err e;

	cr_assert_eq(offer(mi, v10, &e), 1, "%s", e.msg);
	cr_assert_eq(offer(mi, v20, &e), 1, "%s", e.msg);
	cr_expect_eq(held_version(mi), 20);
	cr_expect_eq(offer(mi, v10, &e), -1, "an older state");
	cr_expect(strstr(e.msg, "rollback") != NULL, "%s", e.msg);
	cr_expect_eq(offer(mi, v20b, &e), 0, "the same again: kept as is");
	cr_expect_eq(held_version(mi), 20);
	json_decref(v10);
	json_decref(v20);
	json_decref(v20b);
	mirror_free(mi);
}

Test(mirror, an_expired_answer_or_one_about_another_service_is_refused)
{
	struct mirror *mi = mirror_new(pub);
	json_t *old = answer_by("www.example.org", "192.0.2.7", now - 1000,
				600, 10, seed, pub);
	json_t *other = answer_by("evil.example.org", "192.0.2.7", now, 600,
				  10, seed, pub);
	struct err e;

	cr_expect_eq(offer(mi, old, &e), -1);
	cr_expect(strstr(e.msg, "expired") != NULL, "%s", e.msg);
	cr_expect_eq(offer(mi, other, &e), -1, "another service's answer");
	cr_expect_eq(mirror_count(mi), 0);
	json_decref(old);
	json_decref(other);
	mirror_free(mi);
}

Test(mirror, services_no_longer_hosted_are_forgotten)
{
	struct mirror *mi = mirror_new(pub);
	json_t *a = answer("192.0.2.7", 10);
	json_t *b = answer_by("b.example.org", "192.0.2.7", now, 600, 10, seed,
			      pub);
	const char *keep[] = { "b.example.org:80" };
	char *t = text_of(b);
	struct err e;
	size_t len;
	char *got;

	cr_assert_eq(offer(mi, a, &e), 1, "%s", e.msg);
	cr_assert_eq(mirror_offer(mi, keep[0], t, strlen(t), now, &e), 1, "%s",
		     e.msg);
	cr_expect_eq(mirror_count(mi), 2);
	mirror_keep_only(mi, keep, 1);
	cr_expect_eq(mirror_count(mi), 1);
	cr_expect_null(mirror_get(mi, SUBJECT, &len));
	got = mirror_get(mi, keep[0], &len);
	cr_expect_not_null(got);
	free(got);
	free(t);
	json_decref(a);
	json_decref(b);
	mirror_free(mi);
}

Test(mirror, a_full_table_makes_room_by_the_answer_expiring_first)
{
	struct mirror *mi = mirror_new(pub);
	char host[64], subject[80], *t;
	struct err e;
	size_t len;
	json_t *j;

	for (int i = 0; i <= MIRROR_MAX; i++) {
		snprintf(host, sizeof(host), "s%d.example.org", i);
		snprintf(subject, sizeof(subject), "%s:80", host);
		/* s0 expires first */
		j = answer_by(host, "192.0.2.7", now, 600 + i, 1, seed, pub);
		t = text_of(j);
		cr_assert_eq(mirror_offer(mi, subject, t, strlen(t), now, &e),
			     1, "%s", e.msg);
		free(t);
		json_decref(j);
	}
	cr_expect_eq(mirror_count(mi), MIRROR_MAX);
	cr_expect_null(mirror_get(mi, "s0.example.org:80", &len));
	t = mirror_get(mi, "s1.example.org:80", &len);
	cr_expect_not_null(t);
	free(t);
	mirror_free(mi);
}

/* ---- the client's choice ---- */

static struct signed_trust
trust(bool allow_stale)
{
	struct signed_trust t = { .on = true, .allow_stale = allow_stale };

	memcpy(t.key, pub, sizeof(pub));
	return t;
}

static void
reply(struct client_mirror_reply *r, const char *name, json_t *answer)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->answer = answer;
	if (answer == NULL)
		snprintf(r->why, sizeof(r->why), "not reached");
}

static void
replies_free(struct client_mirror_reply *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(r[i].answer);
}

Test(mirror_choose, the_freshest_valid_reply_wins_and_a_forged_one_is_named)
{
	struct signed_trust t = trust(false);
	struct client_mirror_reply r[4];
	json_t *forged = answer("192.0.2.7", 90);

	json_object_set_new(forged, "ttl", json_integer(3600));
	reply(&r[0], "a:1", answer("192.0.2.7", 50));
	reply(&r[1], "b:1", answer("192.0.2.8", 70));
	reply(&r[2], "liar:1", forged);
	reply(&r[3], "dead:1", NULL);
	cr_expect_eq(client_mirror_choose(r, 4, SUBJECT, &t, NULL, NULL, now),
		     1);
	cr_expect(strstr(r[2].why, "signature") != NULL, "%s", r[2].why);
	cr_expect_str_eq(r[3].why, "not reached");
	cr_expect_eq(r[1].m.version, 70);
	replies_free(r, 4);
}

Test(mirror_choose, a_reply_older_than_the_one_held_is_a_rollback)
{
	struct signed_trust t = trust(false);
	struct client_mirror_reply r[1];
	json_t *held = answer("192.0.2.9", 80);
	struct signed_meta hm;
	struct err e;

	cr_assert_eq(signed_answer_verify(held, SIGNED_LOOKUP, SUBJECT, pub,
					  now, &hm, &e), SIGNED_OK);
	reply(&r[0], "old:1", answer("192.0.2.7", 50));
	cr_expect_eq(client_mirror_choose(r, 1, SUBJECT, &t, held, &hm, now),
		     -1);
	cr_expect(strstr(r[0].why, "rollback") != NULL, "%s", r[0].why);
	replies_free(r, 1);
	json_decref(held);
}

Test(mirror_choose, an_expired_reply_only_with_allow_stale_and_after_a_fresh)
{
	struct signed_trust strict = trust(false), stale = trust(true);
	struct client_mirror_reply r[2];
	json_t *old = answer_by("www.example.org", "192.0.2.7", now - 1000,
				600, 90, seed, pub);

	reply(&r[0], "old:1", old);
	cr_expect_eq(client_mirror_choose(r, 1, SUBJECT, &strict, NULL, NULL,
					  now), -1);
	cr_expect(strstr(r[0].why, "expired") != NULL, "%s", r[0].why);
	cr_expect_eq(client_mirror_choose(r, 1, SUBJECT, &stale, NULL, NULL,
					  now), 0);
	cr_expect(r[0].expired);
	reply(&r[1], "fresh:1", answer("192.0.2.8", 10));
	cr_expect_eq(client_mirror_choose(r, 2, SUBJECT, &stale, NULL, NULL,
					  now), 1, "fresh before expired");
	replies_free(r, 2);
}

Test(mirror_choose, an_answer_for_another_service_is_skipped)
{
	struct signed_trust t = trust(false);
	struct client_mirror_reply r[1];

	reply(&r[0], "a:1", answer_by("evil.example.org", "192.0.2.7", now,
				      600, 10, seed, pub));
	cr_expect_eq(client_mirror_choose(r, 1, SUBJECT, &t, NULL, NULL, now),
		     -1);
	cr_expect(r[0].why[0] != '\0');
	replies_free(r, 1);
}

Test(mirror_choose, a_mirror_list_is_parsed_or_refused_saying_why)
{
	struct client_mirrors m;
	char big[1024];
	struct err e;
	size_t n = 0;

	cr_assert_eq(client_mirrors_parse("10.0.0.1:8081,peer.example.org:9",
					  &m, &e), 0, "%s", e.msg);
	cr_expect_eq(m.n, 2);
	cr_expect_str_eq(m.addr[1], "peer.example.org:9");
	cr_expect_eq(client_mirrors_parse("10.0.0.1", &m, &e), -1);
	cr_expect_eq(client_mirrors_parse("10.0.0.1:0", &m, &e), -1);
	cr_expect(strstr(e.msg, "port") != NULL, "%s", e.msg);
	cr_expect_eq(client_mirrors_parse("10.0.0.1:1,,10.0.0.2:1", &m, &e),
		     -1);
	cr_expect(strstr(e.msg, "empty") != NULL, "%s", e.msg);
	cr_expect_eq(client_mirrors_parse("a b:1", &m, &e), -1);
	for (int i = 0; i <= CLIENT_MIRRORS_MAX; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%s10.0.0.%d:1",
				      i ? "," : "", i + 1);
	cr_expect_eq(client_mirrors_parse(big, &m, &e), -1);
	cr_expect(strstr(e.msg, "more than") != NULL, "%s", e.msg);
}

Test(mirror_choose, the_mirrors_a_verified_answer_names_are_learnt)
{
	json_t *a = json_pack("{s:[{s:s}, {s:s}, {s:s}, {s:i}, {}]}", "peers",
			      "mirror", "10.0.0.2:7000", "mirror",
			      "10.0.0.2:7000", "mirror", "bad host:1",
			      "mirror", 7);
	struct client_mirrors m;
	struct err e;

	cr_assert_not_null(a);
	cr_assert_eq(client_mirrors_parse("10.0.0.1:7000", &m, &e), 0);
	client_mirrors_learn(&m, a);
	cr_expect_eq(m.n, 2, "one given, one learnt once, the bad ones not");
	cr_expect_str_eq(m.addr[1], "10.0.0.2:7000");
	client_mirrors_learn(&m, NULL);
	cr_expect_eq(m.n, 2);
	json_decref(a);
}

/* ---- through HTTP: an honest mirror and a liar ---- */

static struct mirror *honest;
static char *forged_text;

static char *
serve_honest(void *arg, const char *subject, size_t *len)
{
	(void)arg;
	return mirror_get(honest, subject, len);
}

static char *
serve_forged(void *arg, const char *subject, size_t *len)
{
	(void)arg;
	if (strcmp(subject, SUBJECT) != 0)
		return NULL;
	*len = strlen(forged_text);
	return strdup(forged_text);
}

Test(mirror_http, a_client_takes_the_honest_mirror_and_skips_the_liar)
{
	struct objsrv *good, *liar;
	struct store *st;
	char *dir = tu_tmpdir(), list[64], url[128];
	json_t *a = answer("192.0.2.7", 10), *f = answer("192.0.2.66", 99);
	struct signed_trust t = trust(false);
	struct client_mirror_reply from;
	struct client_mirrors ms;
	struct http_reply hr = { 0 };
	json_t *got = NULL;
	struct err e;

	cr_assert_eq(store_open(dir, 0, &st, &e), 0, "%s", e.msg);
	honest = mirror_new(pub);
	cr_assert_eq(offer(honest, a, &e), 1, "%s", e.msg);
	json_object_set_new(f, "version", json_integer(100)); /* breaks it */
	forged_text = text_of(f);
	cr_assert_eq(objsrv_start("127.0.0.1:0", st, NULL, NULL, &good, &e), 0,
		     "%s", e.msg);
	cr_assert_eq(objsrv_start("127.0.0.1:0", st, NULL, NULL, &liar, &e), 0,
		     "%s", e.msg);
	objsrv_set_lookup(good, serve_honest);
	objsrv_set_lookup(liar, serve_forged);

	/* the path is the authority's; 404 for a service not mirrored, 400
	 * for a bad query; the port as the authority writes it */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/lookup?host="
		 "www.example.org&port=080", objsrv_port(good));
	cr_assert_eq(http_request("GET", url, NULL, NULL, 0, 5000, 0, &hr, &e),
		     0, "%s", e.msg);
	cr_expect_eq(hr.status, 200);
	http_reply_free(&hr);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/lookup?host="
		 "nobody.example.org&port=80", objsrv_port(good));
	cr_assert_eq(http_request("GET", url, NULL, NULL, 0, 5000, 0, &hr, &e),
		     0, "%s", e.msg);
	cr_expect_eq(hr.status, 404);
	http_reply_free(&hr);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/lookup?host=x",
		 objsrv_port(good));
	cr_assert_eq(http_request("GET", url, NULL, NULL, 0, 5000, 0, &hr, &e),
		     0, "%s", e.msg);
	cr_expect_eq(hr.status, 400);
	http_reply_free(&hr);

	snprintf(list, sizeof(list), "127.0.0.1:%u,127.0.0.1:%u",
		 objsrv_port(liar), objsrv_port(good));
	cr_assert_eq(client_mirrors_parse(list, &ms, &e), 0, "%s", e.msg);
	cr_assert_eq(client_mirror_ask(&t, &ms, "www.example.org", 80, NULL,
				       NULL, now, &got, &from, &e), 0, "%s",
		     e.msg);
	cr_expect(json_equal(got, a), "the honest answer");
	cr_expect_eq(from.m.version, 10);
	cr_expect(strstr(list, from.name) != NULL && strstr(from.name,
		  "127.0.0.1:") == from.name);
	json_decref(got);

	/* with only the liar, nothing */
	snprintf(list, sizeof(list), "127.0.0.1:%u", objsrv_port(liar));
	cr_assert_eq(client_mirrors_parse(list, &ms, &e), 0, "%s", e.msg);
	cr_expect_eq(client_mirror_ask(&t, &ms, "www.example.org", 80, NULL,
				       NULL, now, &got, &from, &e), -1);
	objsrv_stop(good);
	objsrv_stop(liar);
	store_close(st);
	mirror_free(honest);
	free(forged_text);
	json_decref(a);
	json_decref(f);
	tu_rmtree(dir);
	free(dir);
}
