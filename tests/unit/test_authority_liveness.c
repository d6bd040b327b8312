/*
 * test_authority_liveness.c - peers and commitments that stop refreshing
 * (sweep.c), through real HTTP against an authority with a 2 s peer ttl:
 * a commitment not re-reported leaves lookups (and comes back when it is),
 * its peer is credited its up time until its last report and none for the
 * silence, a cached lookup answer does not outlive it, and a peer that
 * does not re-register is no longer a source; after a restart, peers are
 * judged as of when the authority last ran.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/authfix.h"
#include "lib/testutil.h"

#define TTL 2

static struct authfix F;

static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static void
setup(void)
{
	struct authority_config c;
	struct tkey admin;

	tkey_new(&admin);
	authority_config_defaults(&c);
	c.peer_ttl = TTL;
	c.has_admin = true;
	memcpy(c.admin, admin.pub, ED25519_PUB_LEN);
	authfix_start(&F, &c);
	F.admin = admin;
}

static void
teardown(void)
{
	authfix_stop(&F);
}

TestSuite(authority_liveness, .init = setup, .fini = teardown,
	  .timeout = 60);

/* Stop the authority and start it again on the same database (its port
 * changes), with forget_after if not 0. */
static void
restart(int forget_after)
{
	struct authority_config c;
	struct err e;

	authority_stop(F.a);
	authority_config_defaults(&c);
	c.peer_ttl = TTL;
	if (forget_after > 0)
		c.forget_after = forget_after;
	c.has_admin = true;
	memcpy(c.admin, F.admin.pub, ED25519_PUB_LEN);
	c.listen = "127.0.0.1:0";
	c.db_path = F.db;
	F.a = authority_start(&c, &e);
	cr_assert_not_null(F.a, "%s", e.msg);
	F.port = authority_port(F.a);
	snprintf(F.url, sizeof(F.url), "http://127.0.0.1:%u", F.port);
}

/* The usual cast (af_world_make), p1 and p2 committed and up. */
static void
world_make(struct af_world *w)
{
	af_world_make(&F, w, 1);
	af_commit_up(&F, &w->p1, w->id, "192.0.2.1", 40001);
	af_commit_up(&F, &w->p2, w->id, "192.0.2.2", 40002);
}

/* Does GET /v1/sources/<id> list peer hex? */
static bool
sources_has(const char *id, const char *hex)
{
	char path[128];
	json_t *reply, *src;
	bool found = false;
	size_t i;
	long st;

	snprintf(path, sizeof(path), "/v1/sources/%s", id);
	st = af_call(&F, "GET", path, NULL, NULL, &reply);
	cr_assert_eq(st, 200, "%s", af_error(reply));
	json_array_foreach(json_object_get(reply, "sources"), i, src)
		if (strcmp(json_string_value(json_object_get(src, "peer")),
			   hex) == 0)
			found = true;
	json_decref(reply);
	return found;
}

/* GET /v1/peers/<k>: the status, and the reply in *reply. */
static long
peer_get(const struct tkey *k, json_t **reply)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/peers/%s", k->hex);
	return af_call(&F, "GET", path, NULL, NULL, reply);
}

static json_int_t
uptime(const struct tkey *k)
{
	json_t *reply;
	json_int_t v;

	cr_assert_eq(peer_get(k, &reply), 200);
	v = json_integer_value(json_object_get(json_object_get(reply,
			"contribution"), "uptime_seconds"));
	json_decref(reply);
	return v;
}

/* Keep the owner and p1 refreshed (registration, and p1's commitment) at
 * about half the ttl until done(w) holds or the deadline passes; returns
 * the seconds it took, or -1. */
static double
refresh_until(struct af_world *w, bool (*done)(struct af_world *), double limit)
{
	double t0 = now_s(), last = 0;

	while (now_s() - t0 < limit) {
		if (now_s() - last >= 1.1) {	/* dates are to the second */
			af_register(&F, &w->owner, "10.0.0.1:7000");
			af_register(&F, &w->p1, "10.0.0.2:7000");
			af_commit_up(&F, &w->p1, w->id, "192.0.2.1", 40001);
			last = now_s();
		}
		if (done(w))
			return now_s() - t0;
		usleep(50 * 1000);
	}
	return -1;
}

static bool
p2_out_of_lookups(struct af_world *w)
{
	json_t *reply;
	bool p1, p2;

	cr_assert_eq(af_lookup(&F, "www.example.org", 80, &reply), 200);
	p1 = af_lookup_has(reply, w->p1.hex);
	p2 = af_lookup_has(reply, w->p2.hex);
	json_decref(reply);
	cr_assert(p1, "p1 refreshed its commitment but left the lookups");
	return !p2;
}

static bool
p2_no_source(struct af_world *w)
{
	cr_assert(sources_has(w->id, w->owner.hex), "the owner refreshed but "
		  "is no source");
	cr_assert(sources_has(w->id, w->p1.hex), "p1 refreshed but is no "
		  "source");
	return !sources_has(w->id, w->p2.hex);
}

Test(authority_liveness, a_commitment_not_reported_leaves_lookups)
{
	struct af_world w;
	json_t *reply;
	double took;

	world_make(&w);
	took = refresh_until(&w, p2_out_of_lookups, 15);
	cr_assert_geq(took, 0, "p2 stayed in the lookups for 15 s without "
		      "re-reporting (peer ttl %d s)", TTL);
	/* never before the ttl: counted from the authority's start */
	cr_assert_geq(took, TTL - 0.5, "p2 left the lookups after %.2f s", took);
	/* the silence earned no up time, and no more accrues */
	cr_assert_leq(uptime(&w.p2), 1);
	/* the refreshed peer's time keeps counting */
	cr_assert_geq(uptime(&w.p1), 1);

	/* reporting again brings it back, at once */
	af_commit_up(&F, &w.p2, w.id, "192.0.2.2", 40002);
	cr_assert_eq(af_lookup(&F, "www.example.org", 80, &reply), 200);
	cr_assert(af_lookup_has(reply, w.p2.hex));
	json_decref(reply);
}

Test(authority_liveness, a_peer_not_registered_again_is_no_source)
{
	struct af_world w;
	double took;

	world_make(&w);
	cr_assert(sources_has(w.id, w.p2.hex));
	took = refresh_until(&w, p2_no_source, 15);
	cr_assert_geq(took, 0, "p2 stayed a source for 15 s without "
		      "registering again (peer ttl %d s)", TTL);
	cr_assert_geq(took, TTL - 0.5, "p2 stopped being a source after "
		      "%.2f s", took);
	af_register(&F, &w.p2, "10.0.0.3:7000");
	cr_assert(sources_has(w.id, w.p2.hex));
}

Test(authority_liveness, replies_say_the_peer_ttl)
{
	struct tkey k;
	json_t *reply;
	long st;

	tkey_new(&k);
	st = af_call(&F, "POST", "/v1/peers",
		     json_pack("{s:s}", "addr", "10.0.0.9:7000"), &k, &reply);
	cr_assert_eq(st, 201, "%s", af_error(reply));
	cr_assert_eq(json_integer_value(json_object_get(reply, "peer_ttl")),
		     TTL);
	json_decref(reply);
}

/* tu_poll condition: the lookup no longer lists p2. */
static bool
lookup_lacks_p2(void *arg)
{
	struct af_world *w = arg;
	json_t *reply;
	bool has;

	cr_assert_eq(af_lookup(&F, "www.example.org", 80, &reply), 200);
	has = af_lookup_has(reply, w->p2.hex);
	json_decref(reply);
	return !has;
}

Test(authority_liveness, a_cached_lookup_does_not_outlive_the_commitment)
{
	struct af_world w;
	json_t *reply;

	af_world_make(&F, &w, 1);
	af_commit_up(&F, &w.p2, w.id, "192.0.2.2", 40002);
	/* answered, and so cached; from now on nothing is written but by
	 * the sweep */
	cr_assert_eq(af_lookup(&F, "www.example.org", 80, &reply), 200);
	cr_assert(af_lookup_has(reply, w.p2.hex));
	json_decref(reply);
	cr_assert(tu_poll(15000, lookup_lacks_p2, &w), "a lookup still lists "
		  "p2 15 s after its last report (peer ttl %d s)", TTL);
}

Test(authority_liveness, up_time_is_counted_until_the_last_report)
{
	struct af_world w;
	double t0;

	af_world_make(&F, &w, 1);
	af_commit_up(&F, &w.p2, w.id, "192.0.2.2", 40002);
	t0 = now_s();
	while (now_s() - t0 < 4.2) {	/* reported up for about 4 s */
		usleep(1100 * 1000);	/* dates are to the second */
		af_commit_up(&F, &w.p2, w.id, "192.0.2.2", 40002);
	}
	cr_assert(tu_poll(15000, lookup_lacks_p2, &w), "p2 never expired");
	/* about 4 s (dates are whole seconds), none of the silence */
	cr_assert(uptime(&w.p2) >= 3 && uptime(&w.p2) <= 5,
		  "p2 credited %lld s for about 4 s up",
		  (long long)uptime(&w.p2));
	usleep(1500 * 1000);
	cr_assert_leq(uptime(&w.p2), 5, "and its silence counts after all");
}

Test(authority_liveness, after_a_restart_peers_are_judged_as_of_the_last_run)
{
	struct tkey gone, live;
	char path[128], hash[65];
	json_t *reply;
	double t0;

	/* a trusted base both announce; "gone" stops after registering,
	 * "live" refreshes for 3.5 s more; then the authority restarts */
	tkey_new(&gone);
	tkey_new(&live);
	af_trust(&F, "base", hash);
	af_register(&F, &gone, "10.0.0.8:7000");
	af_register(&F, &live, "10.0.0.9:7000");
	snprintf(path, sizeof(path), "/v1/sources/%s", hash);
	cr_assert_eq(af_call(&F, "POST", path, NULL, &gone, &reply), 201);
	json_decref(reply);
	cr_assert_eq(af_call(&F, "POST", path, NULL, &live, &reply), 201);
	json_decref(reply);
	t0 = now_s();
	while (now_s() - t0 < 3.5) {
		usleep(1100 * 1000);
		af_register(&F, &live, "10.0.0.9:7000");
	}
	restart(0);
	/* at once, within the restart's grace: "live" was live when the
	 * authority stopped and is a source; "gone" had lapsed by then */
	cr_assert(sources_has(hash, live.hex));
	cr_assert_not(sources_has(hash, gone.hex), "a peer gone before the "
		      "restart is a source again after it");
}

static long
peer_status(const struct tkey *k)
{
	json_t *reply;
	long st = peer_get(k, &reply);

	json_decref(reply);
	return st;
}

Test(authority_liveness, peers_long_gone_are_forgotten_unless_they_matter)
{
	struct af_world w;
	struct tkey gone, live;
	char path[128], *text = NULL;
	json_t *reply;
	double t0, last = 0;

	restart(3);		/* forget after 3 s of silence */
	af_world_make(&F, &w, 1);	/* the owner owns a service */
	af_commit_up(&F, &w.p1, w.id, "192.0.2.1", 40001);	/* p1 committed */
	snprintf(path, sizeof(path), "/v1/sources/%s", w.id);
	cr_assert_eq(af_call(&F, "POST", path, NULL, &w.p1, &reply), 201);
	json_decref(reply);			/* ... and holds */
	cr_assert_eq(af_call(&F, "POST", path, NULL, &w.p2, &reply), 201);
	json_decref(reply);			/* p2 only holds */
	tkey_new(&gone);
	tkey_new(&live);
	af_register(&F, &gone, "10.0.0.7:7000");	/* gone only registered */
	t0 = now_s();
	while (peer_status(&gone) != 404) {
		cr_assert_lt(now_s() - t0, 20, "a peer silent for 20 s is still "
			     "registered (forget after 3 s)");
		if (now_s() - last >= 1.1) {	/* live keeps talking */
			af_register(&F, &live, "10.0.0.6:7000");
			last = now_s();
		}
		usleep(50 * 1000);
	}
	/* its last word at second S: forgotten once now - 3 > S */
	cr_assert_geq(now_s() - t0, 2.9, "forgotten after %.2f s",
		      now_s() - t0);
	cr_assert_eq(peer_status(&w.p2), 404, "a peer that only held");
	cr_assert_eq(peer_status(&live), 200, "a peer that kept talking");
	cr_assert_eq(peer_status(&w.owner), 200, "a service's owner");
	cr_assert_eq(peer_status(&w.p1), 200, "a peer with a commitment");
	/* p2's holding went with it; p1's, kept, stays */
	cr_assert_eq(af_raw(&F, "GET", "/metrics", NULL, 0, NULL, &text), 200);
	cr_assert(strstr(text, "\nfed_authority_holdings 1\n") != NULL,
		  "holdings: %.30s", strstr(text, "\nfed_authority_holdings ") ?
		  strstr(text, "\nfed_authority_holdings ") + 1 : "?");
	free(text);
	/* and one forgotten comes back by registering */
	af_register(&F, &gone, "10.0.0.7:7000");
	cr_assert_eq(peer_status(&gone), 200);
}
