/*
 * test_authority_life.c - the authority's life cycle, through real HTTP:
 * register an owner and peers, trust a base and a kernel, announce a
 * snapshot, commit two peers, report one, see lookups show only the other,
 * revoke the base and see lookups empty.  Then the details around it:
 * re-registration, newer versions, withdrawal, sources, the owner's view,
 * contribution, metrics.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/authfix.h"
#include "common/manifest.h"

static struct authfix F;

static void
setup(void)
{
	authfix_start(&F, NULL);
}

static void
teardown(void)
{
	authfix_stop(&F);
}

TestSuite(authority_life, .init = setup, .fini = teardown, .timeout = 60);

Test(authority_life, full_cycle)
{
	struct af_world w;
	json_t *reply;
	char path[256];
	long st;

	af_world_make(&F, &w, 1);

	/* Known service, nobody serving yet: 200 with no peers. */
	st = af_lookup(&F, "www.example.org", 80, &reply);
	cr_assert_eq(st, 200);
	cr_assert_eq(json_array_size(json_object_get(reply, "peers")), 0);
	/* kept briefly, as DNS keeps a negative answer: the first peer to
	 * come up is seen within seconds, not a whole --ttl */
	cr_assert_eq(json_integer_value(json_object_get(reply, "ttl")),
		     AUTHORITY_NEGATIVE_TTL);
	cr_assert_null(json_object_get(reply, "signature"), "no --key");
	json_decref(reply);

	af_commit_up(&F, &w.p1, w.id, "192.0.2.1", 40001);
	af_commit_up(&F, &w.p2, w.id, "192.0.2.2", 40002);
	st = af_lookup(&F, "www.example.org", 80, &reply);
	cr_assert_eq(st, 200);
	cr_assert_eq(json_array_size(json_object_get(reply, "peers")), 2);
	cr_assert(af_lookup_has(reply, w.p1.hex));
	cr_assert(af_lookup_has(reply, w.p2.hex));
	/* exactly the members DESIGN.md names */
	cr_assert_str_eq(json_string_value(json_object_get(reply, "host")),
			 "www.example.org");
	cr_assert_eq(json_integer_value(json_object_get(reply, "port")), 80);
	cr_assert_eq(json_integer_value(json_object_get(reply, "ttl")), 30);
	cr_assert_eq(json_object_size(reply), 4);
	{
		json_t *p = json_array_get(json_object_get(reply, "peers"), 0);

		cr_assert_eq(json_object_size(p), 3);
		cr_assert(json_is_string(json_object_get(p, "addr")));
		cr_assert(json_is_integer(json_object_get(p, "port")));
	}
	json_decref(reply);

	/* The owner reports p1: p1 vanishes, p2 stays. */
	st = af_call(&F, "POST", "/v1/reports",
		     json_pack("{s:s, s:s, s:s}", "service", "www.example.org:80",
			       "peer", w.p1.hex, "reason", "served a defaced page"),
		     &w.owner, &reply);
	cr_assert_eq(st, 201, "%s", af_error(reply));
	json_decref(reply);
	st = af_lookup(&F, "www.example.org", 80, &reply);
	cr_assert_eq(st, 200);
	cr_assert_eq(json_array_size(json_object_get(reply, "peers")), 1);
	cr_assert(!af_lookup_has(reply, w.p1.hex));
	cr_assert(af_lookup_has(reply, w.p2.hex));
	{
		json_t *p = json_array_get(json_object_get(reply, "peers"), 0);

		cr_assert_str_eq(json_string_value(json_object_get(p, "addr")),
				 "192.0.2.2");
		cr_assert_eq(json_integer_value(json_object_get(p, "port")),
			     40002);
	}
	json_decref(reply);

	/* Revoke the base: the service is still known, but nobody serves. */
	snprintf(path, sizeof(path), "/v1/trusted/%s", w.base);
	st = af_call(&F, "DELETE", path, NULL, &F.admin, &reply);
	cr_assert_eq(st, 200, "%s", af_error(reply));
	cr_assert(json_is_true(json_object_get(reply, "revoked")));
	json_decref(reply);
	st = af_lookup(&F, "www.example.org", 80, &reply);
	cr_assert_eq(st, 200);
	cr_assert_eq(json_array_size(json_object_get(reply, "peers")), 0);
	json_decref(reply);

	/* Unknown services fall back to DNS. */
	st = af_lookup(&F, "unknown.example.org", 80, &reply);
	cr_assert_eq(st, 404);
	cr_assert_str_eq(json_string_value(json_object_get(reply, "fallback")),
			 "dns");
	json_decref(reply);
}

Test(authority_life, reregistration_moves_the_peer)
{
	struct tkey k;
	json_t *reply;
	char path[128];
	long st;

	tkey_new(&k);
	st = af_call(&F, "POST", "/v1/peers",
		     json_pack("{s:s}", "addr", "10.0.0.9:7000"), &k, &reply);
	cr_assert_eq(st, 201);
	cr_assert(json_is_true(json_object_get(reply, "created")));
	json_decref(reply);
	st = af_call(&F, "POST", "/v1/peers",
		     json_pack("{s:s}", "addr", "peer9.example.org:7001"), &k,
		     &reply);
	cr_assert_eq(st, 200);
	cr_assert(json_is_false(json_object_get(reply, "created")));
	json_decref(reply);
	snprintf(path, sizeof(path), "/v1/peers/%s", k.hex);
	st = af_call(&F, "GET", path, NULL, NULL, &reply);
	cr_assert_eq(st, 200);
	cr_assert_str_eq(json_string_value(json_object_get(reply, "addr")),
			 "peer9.example.org:7001");
	cr_assert_str_eq(json_string_value(json_object_get(reply, "peer")),
			 k.hex);
	json_decref(reply);
}

Test(authority_life, newest_version_wins_and_withdrawal)
{
	struct af_world w;
	char id2[65], path[128];
	json_t *reply;
	long st;

	af_world_make(&F, &w, 1);
	af_commit_up(&F, &w.p1, w.id, "192.0.2.1", 40001);
	st = af_announce(&F, &w.owner, &w.owner, "www.example.org", 80, 2,
			 w.base, w.kernel, id2, &reply);
	cr_assert_eq(st, 201, "%s", af_error(reply));
	json_decref(reply);
	/* p1 serves version 1 only: not listed for the newest. */
	st = af_lookup(&F, "www.example.org", 80, &reply);
	cr_assert_eq(json_array_size(json_object_get(reply, "peers")), 0);
	json_decref(reply);
	af_commit_up(&F, &w.p2, id2, "192.0.2.2", 40002);
	st = af_lookup(&F, "www.example.org", 80, &reply);
	cr_assert_eq(json_array_size(json_object_get(reply, "peers")), 1);
	cr_assert(af_lookup_has(reply, w.p2.hex));
	json_decref(reply);

	/* Down: gone from lookups; up again: back. */
	snprintf(path, sizeof(path), "/v1/commitments/%s", id2);
	st = af_call(&F, "PUT", path, json_pack("{s:b}", "up", 0), &w.p2,
		     &reply);
	cr_assert_eq(st, 200, "%s", af_error(reply));
	cr_assert(json_is_false(json_object_get(reply, "up")));
	json_decref(reply);
	st = af_lookup(&F, "www.example.org", 80, &reply);
	cr_assert_eq(json_array_size(json_object_get(reply, "peers")), 0);
	json_decref(reply);

	/* Withdraw. */
	st = af_call(&F, "DELETE", path, NULL, &w.p2, &reply);
	cr_assert_eq(st, 200, "%s", af_error(reply));
	json_decref(reply);
	st = af_call(&F, "DELETE", path, NULL, &w.p2, &reply);
	af_expect(st, reply, 404, "no commitment");

	/* The catalogue lists both versions, newest first. */
	st = af_call(&F, "GET", "/v1/snapshots?service=www.example.org:80",
		     NULL, NULL, &reply);
	cr_assert_eq(st, 200);
	cr_assert_eq(json_array_size(json_object_get(reply, "snapshots")), 2);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(
	    json_object_get(reply, "snapshots"), 0), "version")), 2);
	json_decref(reply);
}

Test(authority_life, snapshot_get_returns_the_exact_manifest)
{
	struct af_world w;
	char path[128];
	json_t *reply;
	long st;

	af_world_make(&F, &w, 1);
	snprintf(path, sizeof(path), "/v1/snapshots/%s", w.id);
	st = af_call(&F, "GET", path, NULL, NULL, &reply);
	cr_assert_eq(st, 200);
	/* Same manifest inputs give the same bytes except "created", so
	 * check the id instead: SHA-256 of the returned bytes. */
	{
		const char *m = json_string_value(json_object_get(reply,
								  "manifest"));
		uint8_t id[SHA256_LEN];
		char hex[65];

		cr_assert_not_null(m);
		manifest_id(m, strlen(m), id);
		hex_encode(id, SHA256_LEN, hex);
		cr_assert_str_eq(hex, w.id);
		cr_assert_eq(strlen(json_string_value(json_object_get(
		    reply, "signature"))), 128);
		cr_assert_str_eq(json_string_value(json_object_get(reply,
								   "owner")),
				 w.owner.hex);
	}
	json_decref(reply);

	/* Announcing the same manifest again is a harmless retry. */
	st = af_call(&F, "GET", path, NULL, NULL, &reply);
	{
		const char *m = json_string_value(json_object_get(reply,
								  "manifest"));
		const char *s = json_string_value(json_object_get(reply,
								  "signature"));
		json_t *r2;

		st = af_call(&F, "POST", "/v1/snapshots",
			     json_pack("{s:s, s:s}", "manifest", m,
				       "signature", s), &w.owner, &r2);
		cr_assert_eq(st, 200, "%s", af_error(r2));
		json_decref(r2);
	}
	json_decref(reply);
}

Test(authority_life, sources_of_snapshots_and_bases)
{
	struct af_world w;
	json_t *reply, *src;
	char path[128];
	long st;
	size_t i;
	int roles[3] = { 0, 0, 0 };

	af_world_make(&F, &w, 1);
	af_commit_up(&F, &w.p1, w.id, "192.0.2.1", 40001);
	snprintf(path, sizeof(path), "/v1/sources/%s", w.id);
	st = af_call(&F, "POST", path, NULL, &w.p2, &reply);
	cr_assert_eq(st, 201, "%s", af_error(reply));
	json_decref(reply);

	st = af_call(&F, "GET", path, NULL, NULL, &reply);
	cr_assert_eq(st, 200);
	cr_assert_str_eq(json_string_value(json_object_get(reply, "kind")),
			 "snapshot");
	json_array_foreach(json_object_get(reply, "sources"), i, src) {
		const char *role = json_string_value(json_object_get(src,
								     "role"));
		const char *peer = json_string_value(json_object_get(src,
								     "peer"));
		const char *addr = json_string_value(json_object_get(src,
								     "addr"));

		if (strcmp(role, "owner") == 0) {
			roles[0]++;
			cr_assert_str_eq(peer, w.owner.hex);
			cr_assert_str_eq(addr, "10.0.0.1:7000");
		} else if (strcmp(role, "committed") == 0) {
			roles[1]++;
			cr_assert_str_eq(peer, w.p1.hex);
			cr_assert_str_eq(addr, "10.0.0.2:7000");
		} else {
			roles[2]++;
			cr_assert_str_eq(peer, w.p2.hex);
		}
	}
	cr_assert(roles[0] == 1 && roles[1] == 1 && roles[2] == 1);
	json_decref(reply);

	/* A base's sources: peers committed to snapshots using it. */
	snprintf(path, sizeof(path), "/v1/sources/%s", w.base);
	st = af_call(&F, "GET", path, NULL, NULL, &reply);
	cr_assert_eq(st, 200);
	cr_assert_str_eq(json_string_value(json_object_get(reply, "kind")),
			 "base");
	cr_assert_eq(json_array_size(json_object_get(reply, "sources")), 1);
	json_decref(reply);

	/* A reported peer is no longer a source of that service. */
	st = af_call(&F, "POST", "/v1/reports",
		     json_pack("{s:s, s:s, s:s}", "service", "www.example.org:80",
			       "peer", w.p2.hex, "reason", "corrupt chunks"),
		     &w.owner, NULL);
	cr_assert_eq(st, 201);
	snprintf(path, sizeof(path), "/v1/sources/%s", w.id);
	st = af_call(&F, "GET", path, NULL, NULL, &reply);
	json_array_foreach(json_object_get(reply, "sources"), i, src)
		cr_assert_str_neq(json_string_value(json_object_get(src,
								    "peer")),
				  w.p2.hex);
	json_decref(reply);

	/* Withdrawing a holding. */
	snprintf(path, sizeof(path), "/v1/sources/%s", w.base);
	st = af_call(&F, "POST", path, NULL, &w.p1, NULL);
	cr_assert_eq(st, 201);
	st = af_call(&F, "DELETE", path, NULL, &w.p1, NULL);
	cr_assert_eq(st, 200);
	st = af_call(&F, "DELETE", path, NULL, &w.p1, &reply);
	af_expect(st, reply, 404, "did not announce");
}

Test(authority_life, owner_view_and_contribution)
{
	struct af_world w;
	json_t *reply, *p;
	char path[256];
	long st;

	af_world_make(&F, &w, 1);
	af_commit_up(&F, &w.p1, w.id, "192.0.2.1", 40001);
	af_commit_up(&F, &w.p2, w.id, "192.0.2.2", 40002);
	st = af_call(&F, "POST", "/v1/reports",
		     json_pack("{s:s, s:s, s:s}", "service", "www.example.org:80",
			       "peer", w.p2.hex, "reason", "slow"),
		     &w.owner, NULL);
	cr_assert_eq(st, 201);

	st = af_call(&F, "GET", "/v1/services/www.example.org:80/peers", NULL,
		     NULL, &reply);
	cr_assert_eq(st, 200);
	cr_assert_str_eq(json_string_value(json_object_get(reply, "owner")),
			 w.owner.hex);
	cr_assert_eq(json_array_size(json_object_get(reply, "peers")), 1);
	p = json_array_get(json_object_get(reply, "peers"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(p, "peer")),
			 w.p1.hex);
	cr_assert(json_is_true(json_object_get(p, "up")));
	cr_assert_eq(json_array_size(json_object_get(reply, "reports")), 1);
	p = json_array_get(json_object_get(reply, "reports"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(p, "reason")),
			 "slow");
	json_decref(reply);

	/* p1 hosts another owner's service: its allowance grew by one. */
	snprintf(path, sizeof(path), "/v1/peers/%s", w.p1.hex);
	st = af_call(&F, "GET", path, NULL, NULL, &reply);
	cr_assert_eq(st, 200);
	p = json_object_get(reply, "contribution");
	cr_assert_eq(json_integer_value(json_object_get(p, "services_hosted")),
		     1);
	cr_assert_eq(json_integer_value(json_object_get(p, "commitments_up")),
		     1);
	cr_assert_eq(json_integer_value(json_object_get(reply,
							"publish_allowance")),
		     2);
	json_decref(reply);
	snprintf(path, sizeof(path), "/v1/peers/%s", w.owner.hex);
	st = af_call(&F, "GET", path, NULL, NULL, &reply);
	cr_assert_eq(json_integer_value(json_object_get(reply,
							"services_owned")),
		     1);
	json_decref(reply);
}

Test(authority_life, trusted_list_marks_revoked)
{
	char base[65], kernel[65], path[128];
	json_t *reply, *t;
	size_t i;
	long st;
	int seen = 0;

	af_trust(&F, "base", base);
	af_trust(&F, "kernel", kernel);
	snprintf(path, sizeof(path), "/v1/trusted/%s", kernel);
	cr_assert_eq(af_call(&F, "DELETE", path, NULL, &F.admin, NULL), 200);
	/* revoking again is harmless */
	cr_assert_eq(af_call(&F, "DELETE", path, NULL, &F.admin, NULL), 200);
	st = af_call(&F, "GET", "/v1/trusted", NULL, NULL, &reply);
	cr_assert_eq(st, 200);
	json_array_foreach(json_object_get(reply, "trusted"), i, t) {
		const char *sha = json_string_value(json_object_get(t,
								    "sha256"));
		json_t *ix = json_object_get(t, "index");

		cr_assert(json_is_array(json_object_get(ix, "chunks")));
		cr_assert_eq(json_integer_value(json_object_get(ix, "size")),
			     10000);
		if (strcmp(sha, base) == 0) {
			cr_assert(json_is_false(json_object_get(t, "revoked")));
			seen++;
		} else if (strcmp(sha, kernel) == 0) {
			cr_assert(json_is_true(json_object_get(t, "revoked")));
			seen++;
		}
	}
	cr_assert_eq(seen, 2);
	json_decref(reply);
}

Test(authority_life, health_and_metrics)
{
	char *text = NULL;
	struct af_world w;
	long st;

	af_world_make(&F, &w, 1);
	af_commit_up(&F, &w.p1, w.id, "192.0.2.1", 40001);
	cr_assert(authfix_alive(&F));
	st = af_raw(&F, "GET", "/metrics", NULL, 0, NULL, &text);
	cr_assert_eq(st, 200);
	cr_assert(strstr(text, "fed_authority_requests_total{endpoint="
			 "\"/v1/snapshots\",status=\"201\"} 1") != NULL, "%s",
		  text);
	cr_assert(strstr(text, "fed_authority_request_duration_seconds_bucket"
			 "{endpoint=\"/healthz\",le=\"+Inf\"}") != NULL);
	cr_assert(strstr(text, "fed_authority_peers 3\n") != NULL);
	cr_assert(strstr(text, "fed_authority_snapshots 1\n") != NULL);
	cr_assert(strstr(text, "fed_authority_commitments 1\n") != NULL);
	free(text);
}

Test(authority_life, every_change_is_seen_by_the_next_lookup)
{
	struct af_world w;
	char path[128];
	json_t *reply;
	int i;

	af_world_make(&F, &w, 1);
	af_commit_up(&F, &w.p1, w.id, "192.0.2.1", 40000);
	snprintf(path, sizeof(path), "/v1/commitments/%s", w.id);
	for (i = 1; i <= 20; i++) {
		bool up = i % 2 == 0;

		/* the same lookup twice: the second is answered from memory */
		cr_assert_eq(af_lookup(&F, "www.example.org", 80, &reply), 200);
		json_decref(reply);
		cr_assert_eq(af_call(&F, "PUT", path,
				     json_pack("{s:b, s:s, s:i}", "up", up,
					       "addr", "192.0.2.1", "port",
					       40000 + i), &w.p1, NULL), 200);
		cr_assert_eq(af_lookup(&F, "www.example.org", 80, &reply), 200);
		cr_assert_eq(af_lookup_has(reply, w.p1.hex), up,
			     "change %d not seen", i);
		if (up)
			cr_assert_eq(json_integer_value(json_object_get(
			    json_array_get(json_object_get(reply, "peers"), 0),
			    "port")), 40000 + i);
		json_decref(reply);
	}
}
