/*
 * test_authority_refusals.c - every refusal the authority makes, one test
 * each, checking the status and the words of the error: signatures (401),
 * replays (409), who may do what (403), what must exist (404), rollback and
 * conflicts (409), invalid documents (422), reciprocity.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fedsnap.h"
#include "common/hex.h"
#include "common/sigreq.h"
#include "common/manifest.h"
#include "lib/authfix.h"
#include "lib/testutil.h"

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

TestSuite(refusals, .init = setup, .fini = teardown, .timeout = 60);

static json_t *
parse(const char *text)
{
	json_t *j = json_loads(text ? text : "", 0, NULL);

	cr_assert_not_null(j, "reply is not JSON: %s", text ? text : "");
	return j;
}

/* ---- signatures and replays ---- */

Test(refusals, unsigned_request)
{
	char *text;
	long st = af_raw(&F, "POST", "/v1/peers", "{\"addr\":\"a.b:1\"}", 16,
			 NULL, &text);

	af_expect(st, parse(text), 401, "must be signed");
	free(text);
}

Test(refusals, bad_signature)
{
	const char *headers[5];
	char hk[128], hd[64], hs[200], *text;
	const char *body = "{\"addr\":\"10.0.0.1:7000\"}";
	struct sigreq sr;
	struct tkey k;
	struct err e;
	long st;

	tkey_new(&k);
	/* signed for another body */
	cr_assert_eq(sigreq_sign(k.seed, "POST", "/v1/peers", "{}", 2,
				 time(NULL), &sr, &e), 0);
	snprintf(hk, sizeof(hk), "X-Fed-Key: %s", sr.key);
	snprintf(hd, sizeof(hd), "X-Fed-Date: %s", sr.date);
	snprintf(hs, sizeof(hs), "X-Fed-Signature: %s", sr.sig);
	headers[0] = hk;
	headers[1] = hd;
	headers[2] = hs;
	headers[3] = NULL;
	st = af_raw(&F, "POST", "/v1/peers", body, strlen(body), headers,
		    &text);
	af_expect(st, parse(text), 401, "bad signature");
	free(text);
}

Test(refusals, signature_by_another_key)
{
	const char *headers[4];
	char hk[128], hd[64], hs[200], *text;
	const char *body = "{\"addr\":\"10.0.0.1:7000\"}";
	struct sigreq sr;
	struct tkey k, other;
	struct err e;
	long st;

	tkey_new(&k);
	tkey_new(&other);
	cr_assert_eq(sigreq_sign(k.seed, "POST", "/v1/peers", body,
				 strlen(body), time(NULL), &sr, &e), 0);
	snprintf(hk, sizeof(hk), "X-Fed-Key: %s", other.hex);
	snprintf(hd, sizeof(hd), "X-Fed-Date: %s", sr.date);
	snprintf(hs, sizeof(hs), "X-Fed-Signature: %s", sr.sig);
	headers[0] = hk;
	headers[1] = hd;
	headers[2] = hs;
	headers[3] = NULL;
	st = af_raw(&F, "POST", "/v1/peers", body, strlen(body), headers,
		    &text);
	af_expect(st, parse(text), 401, "bad signature");
	free(text);
}

Test(refusals, malformed_signature_headers)
{
	const char *headers[] = { "X-Fed-Key: 1234", "X-Fed-Date: yesterday",
				  "X-Fed-Signature: zz", NULL };
	const char *only_key[2] = { NULL, NULL };
	char *text, hk[128];
	struct tkey k;
	long st;

	st = af_raw(&F, "POST", "/v1/peers", "{}", 2, headers, &text);
	af_expect(st, parse(text), 401, "bad signature headers");
	free(text);
	tkey_new(&k);
	snprintf(hk, sizeof(hk), "X-Fed-Key: %s", k.hex);
	only_key[0] = hk;
	st = af_raw(&F, "POST", "/v1/peers", "{}", 2, only_key, &text);
	af_expect(st, parse(text), 401, "bad signature headers");
	free(text);
}

Test(refusals, stale_and_future_dates)
{
	const char *body = "{\"addr\":\"10.0.0.1:7000\"}";
	struct tkey k;
	char *text;
	long st;

	tkey_new(&k);
	st = af_signed_raw(&F, &k, time(NULL) - 400, "POST", "/v1/peers",
			   body, &text);
	af_expect(st, parse(text), 401, "stale");
	free(text);
	st = af_signed_raw(&F, &k, time(NULL) + 400, "POST", "/v1/peers",
			   body, &text);
	af_expect(st, parse(text), 401, "stale");
	free(text);
	/* within the window is fine */
	st = af_signed_raw(&F, &k, time(NULL) - 200, "POST", "/v1/peers",
			   body, &text);
	cr_assert_eq(st, 201, "%s", text);
	free(text);
}

Test(refusals, replay)
{
	const char *body = "{\"addr\":\"10.0.0.1:7000\"}";
	time_t now = time(NULL);
	struct tkey k;
	char *text;
	long st;

	tkey_new(&k);
	st = af_signed_raw(&F, &k, now, "POST", "/v1/peers", body, &text);
	cr_assert_eq(st, 201, "%s", text);
	free(text);
	st = af_signed_raw(&F, &k, now, "POST", "/v1/peers", body, &text);
	af_expect(st, parse(text), 409, "replayed");
	free(text);
	/* A refused request cannot be replayed either. */
	st = af_signed_raw(&F, &k, now, "POST", "/v1/reports", "{}", &text);
	cr_assert_eq(st, 400);
	free(text);
	st = af_signed_raw(&F, &k, now, "POST", "/v1/reports", "{}", &text);
	af_expect(st, parse(text), 409, "replayed");
	free(text);
}


/* The same request with its signature re-encoded (S + L) is the same
 * request: not a new one to apply again.  (Accepted before: a third party
 * could bring back a commitment its peer had withdrawn.) */
Test(refusals, replay_with_the_signature_re_encoded)
{
	const char *body = "{\"addr\":\"10.0.0.1:7000\"}";
	uint8_t sig[64];
	struct sigreq sr;
	struct tkey k;
	struct err e;
	char *text;
	long st;

	tkey_new(&k);
	cr_assert_eq(sigreq_sign(k.seed, "POST", "/v1/peers", body,
				 strlen(body), time(NULL), &sr, &e), 0);
	st = af_send_signed(&F, &sr, "POST", "/v1/peers", body, &text);
	cr_assert_eq(st, 201, "%s", text);
	free(text);
	cr_assert_eq(hex_decode(sr.sig, sig, sizeof(sig)), 0);
	tu_ed25519_s_plus_l(sig);
	hex_encode(sig, sizeof(sig), sr.sig);
	st = af_send_signed(&F, &sr, "POST", "/v1/peers", body, &text);
	cr_assert(st == 401 || st == 409, "a re-encoded replay got %ld: %s",
		  st, text);
	free(text);
}

/* ---- trusted ---- */

Test(refusals, trust_by_non_admin)
{
	struct tkey k;
	json_t *reply;
	long st;

	tkey_new(&k);
	st = af_call(&F, "POST", "/v1/trusted",
		     json_pack("{s:s, s:{}}", "kind", "base", "index"), &k,
		     &reply);
	af_expect(st, reply, 403, "only the admin key");
	st = af_call(&F, "DELETE", "/v1/trusted/"
		     "0000000000000000000000000000000000000000000000000000000000000000",
		     NULL, &k, &reply);
	af_expect(st, reply, 403, "only the admin key");
}

/* tu_poll condition: a new key's registration is taken. */
static bool
registers(void *arg)
{
	struct authfix *g = arg;
	struct tkey k;
	json_t *reply;
	long st;

	tkey_new(&k);
	st = af_call(g, "POST", "/v1/peers",
		     json_pack("{s:s}", "addr", "10.0.0.5:7000"), &k, &reply);
	json_decref(reply);
	return st == 201;
}

Test(refusals, signed_requests_are_limited_per_client)
{
	static const char body[] = "{\"addr\": \"10.0.0.5:7000\"}";
	struct authority_config c;
	struct authfix g;
	json_t *reply;
	int ok = 0, limited = 0;
	char *text;
	long st;

	authority_config_defaults(&c);
	c.signed_rate = 2;
	c.signed_burst = 5;
	authfix_start(&g, &c);
	/* raw requests: authority_call would wait and try a 429 again */
	for (int i = 0; i < 12; i++) {
		struct tkey k;

		tkey_new(&k);
		st = af_signed_raw(&g, &k, time(NULL), "POST", "/v1/peers",
				   body, &text);
		if (st == 201) {
			ok++;
		} else {
			cr_assert_eq(st, 429, "%ld: %s", st, text);
			cr_assert(strstr(text, "too many signed requests from "
					 "this address") != NULL, "%s", text);
			limited++;
		}
		free(text);
	}
	/* the burst, and perhaps one refilled meanwhile; not all twelve */
	cr_assert(ok >= 5 && ok <= 7, "%d of 12 taken at once", ok);
	cr_assert_eq(ok + limited, 12);
	/* reads are not limited */
	st = af_call(&g, "GET", "/healthz", NULL, NULL, &reply);
	cr_assert_eq(st, 200);
	json_decref(reply);
	/* empty again (a token may have come back meanwhile) ... */
	for (int i = 0; i < 20 && st != 429; i++) {
		struct tkey k;

		tkey_new(&k);
		st = af_signed_raw(&g, &k, time(NULL), "POST", "/v1/peers",
				   body, &text);
		free(text);
	}
	cr_assert_eq(st, 429);
	/* ... and a client through authority_call waits a second and is
	 * taken: the bucket refills */
	cr_assert(registers(&g), "a signed request after the limit, sent "
		  "again a second later, was refused");
	authfix_stop(&g);
}

Test(refusals, trust_without_admin_key)
{
	struct authority_config c;
	struct authfix g;
	json_t *reply;
	long st;

	authority_config_defaults(&c);
	authfix_start(&g, &c);
	st = af_call(&g, "POST", "/v1/trusted",
		     json_pack("{s:s, s:{}}", "kind", "base", "index"),
		     &g.admin, &reply);
	af_expect(st, reply, 403, "no admin key");
	authfix_stop(&g);
}

Test(refusals, trust_conflicts)
{
	char base[65], path[128];
	json_t *reply, *entry;
	long st;

	af_trust(&F, "base", base);
	snprintf(path, sizeof(path), "/v1/trusted/%s", base);
	cr_assert_eq(af_call(&F, "GET", path, NULL, NULL, &entry), 200);

	/* the same entry again: fine */
	st = af_call(&F, "POST", "/v1/trusted",
		     json_pack("{s:s, s:O}", "kind", "base", "index",
			       json_object_get(entry, "index")),
		     &F.admin, &reply);
	cr_assert_eq(st, 200, "%s", af_error(reply));
	json_decref(reply);
	/* the same hash as a kernel: conflict */
	st = af_call(&F, "POST", "/v1/trusted",
		     json_pack("{s:s, s:O}", "kind", "kernel", "index",
			       json_object_get(entry, "index")),
		     &F.admin, &reply);
	af_expect(st, reply, 409, "already trusted as a base");
	/* revoked: cannot come back */
	cr_assert_eq(af_call(&F, "DELETE", path, NULL, &F.admin, NULL), 200);
	st = af_call(&F, "POST", "/v1/trusted",
		     json_pack("{s:s, s:O}", "kind", "base", "index",
			       json_object_get(entry, "index")),
		     &F.admin, &reply);
	af_expect(st, reply, 409, "cannot be trusted again");
	json_decref(entry);
}

Test(refusals, trust_bad_index)
{
	json_t *reply;
	long st;

	st = af_call(&F, "POST", "/v1/trusted",
		     json_pack("{s:s, s:{s:i, s:i, s:[]}}", "kind", "base",
			       "index", "size", 10, "chunk_size", 4096,
			       "chunks"), &F.admin, &reply);
	af_expect(st, reply, 400, "'index'");
	st = af_call(&F, "POST", "/v1/trusted",
		     json_pack("{s:s, s:{}}", "kind", "firmware", "index"),
		     &F.admin, &reply);
	af_expect(st, reply, 400, "'kind' must be");
	st = af_call(&F, "POST", "/v1/trusted", json_pack("{s:s}", "kind",
							  "base"),
		     &F.admin, &reply);
	af_expect(st, reply, 400, "'index' is missing");
}

Test(refusals, revoke_unknown)
{
	json_t *reply;
	long st;

	st = af_call(&F, "DELETE", "/v1/trusted/"
		     "1111111111111111111111111111111111111111111111111111111111111111",
		     NULL, &F.admin, &reply);
	af_expect(st, reply, 404, "not a trusted");
}

/* ---- snapshots ---- */

Test(refusals, announce_non_canonical_manifest)
{
	struct af_world w;
	char *bytes, sig[129], *spaced;
	json_t *reply;
	size_t len;
	long st;

	af_world_make(&F, &w, 5);
	af_manifest(&w.owner, "other.example.org", 80, 1, w.base, w.kernel,
		    &bytes, &len, sig);
	spaced = malloc(len + 2);
	spaced[0] = ' ';
	memcpy(spaced + 1, bytes, len + 1);
	st = af_call(&F, "POST", "/v1/snapshots",
		     json_pack("{s:s, s:s}", "manifest", spaced, "signature",
			       sig), &w.owner, &reply);
	af_expect(st, reply, 422, "manifest refused");
	free(spaced);
	free(bytes);
}

Test(refusals, announce_bad_manifest_signature)
{
	struct af_world w;
	char *bytes, sig[129], sig2[129];
	json_t *reply;
	size_t len;
	long st;

	af_world_make(&F, &w, 5);
	af_manifest(&w.owner, "www.example.org", 80, 6, w.base, w.kernel,
		    &bytes, &len, sig);
	free(bytes);
	/* the signature of another manifest */
	af_manifest(&w.owner, "www.example.org", 80, 7, w.base, w.kernel,
		    &bytes, &len, sig2);
	st = af_call(&F, "POST", "/v1/snapshots",
		     json_pack("{s:s, s:s}", "manifest", bytes, "signature",
			       sig), &w.owner, &reply);
	af_expect(st, reply, 422, "signature does not verify");
	free(bytes);
}

Test(refusals, announce_signed_by_another_key)
{
	struct af_world w;
	json_t *reply;
	long st;

	af_world_make(&F, &w, 5);
	st = af_announce(&F, &w.p1, &w.owner, "www.example.org", 80, 6,
			 w.base, w.kernel, NULL, &reply);
	af_expect(st, reply, 403, "manifest's owner is");
}

Test(refusals, announce_by_unregistered_owner)
{
	struct af_world w;
	struct tkey stranger;
	json_t *reply;
	long st;

	af_world_make(&F, &w, 5);
	tkey_new(&stranger);
	st = af_announce(&F, &stranger, &stranger, "new.example.org", 80, 1,
			 w.base, w.kernel, NULL, &reply);
	af_expect(st, reply, 403, "is not registered");
}

Test(refusals, announce_untrusted_base)
{
	struct af_world w;
	json_t *reply;
	long st;

	af_world_make(&F, &w, 5);
	st = af_announce(&F, &w.owner, &w.owner, "www.example.org", 80, 6,
			 "2222222222222222222222222222222222222222222222222222222222222222",
			 w.kernel, NULL, &reply);
	af_expect(st, reply, 422, "is not trusted");
}

Test(refusals, announce_revoked_kernel)
{
	struct af_world w;
	char path[128];
	json_t *reply;
	long st;

	af_world_make(&F, &w, 5);
	snprintf(path, sizeof(path), "/v1/trusted/%s", w.kernel);
	cr_assert_eq(af_call(&F, "DELETE", path, NULL, &F.admin, NULL), 200);
	st = af_announce(&F, &w.owner, &w.owner, "www.example.org", 80, 6,
			 w.base, w.kernel, NULL, &reply);
	af_expect(st, reply, 422, "is revoked");
}

Test(refusals, announce_base_and_kernel_swapped)
{
	struct af_world w;
	json_t *reply;
	long st;

	af_world_make(&F, &w, 5);
	st = af_announce(&F, &w.owner, &w.owner, "www.example.org", 80, 6,
			 w.kernel, w.base, NULL, &reply);
	af_expect(st, reply, 422, "is trusted as a kernel, not a base");
}

Test(refusals, announce_service_of_another_owner)
{
	struct af_world w;
	json_t *reply;
	long st;

	af_world_make(&F, &w, 5);
	st = af_announce(&F, &w.p1, &w.p1, "www.example.org", 80, 9, w.base,
			 w.kernel, NULL, &reply);
	af_expect(st, reply, 403, "is owned by another key");
}

Test(refusals, announce_rollback)
{
	struct af_world w;
	json_t *reply;
	long st;

	af_world_make(&F, &w, 5);	/* version 5 */
	st = af_announce(&F, &w.owner, &w.owner, "www.example.org", 80, 4,
			 w.base, w.kernel, NULL, &reply);
	af_expect(st, reply, 409, "rollback refused: version 4 is not greater "
		  "than version 5");
	/* same version, other content */
	st = af_announce(&F, &w.owner, &w.owner, "www.example.org", 80, 5,
			 w.base, w.kernel, NULL, &reply);
	af_expect(st, reply, 409, "rollback refused");
}

Test(refusals, publish_allowance_and_how_to_earn_more)
{
	struct af_world w;
	char id2[65];
	json_t *reply;
	long st;

	af_world_make(&F, &w, 5);	/* the owner has its one free service */
	st = af_announce(&F, &w.owner, &w.owner, "second.example.org", 80, 1,
			 w.base, w.kernel, NULL, &reply);
	af_expect(st, reply, 403, "publish allowance exhausted");
	st = af_announce(&F, &w.owner, &w.owner, "second.example.org", 80, 1,
			 w.base, w.kernel, NULL, &reply);
	cr_assert(strstr(af_error(reply), "commit to another owner's "
			 "service") != NULL, "%s", af_error(reply));
	json_decref(reply);

	/* The owner hosts p1's service and keeps it up: one more. */
	cr_assert_eq(af_announce(&F, &w.p1, &w.p1, "p1.example.org", 80, 1,
				 w.base, w.kernel, id2, NULL), 201);
	af_commit_up(&F, &w.owner, id2, "192.0.2.9", 40009);
	st = af_announce(&F, &w.owner, &w.owner, "second.example.org", 80, 1,
			 w.base, w.kernel, NULL, &reply);
	cr_assert_eq(st, 201, "%s", af_error(reply));
	json_decref(reply);
	/* a third one needs more */
	st = af_announce(&F, &w.owner, &w.owner, "third.example.org", 80, 1,
			 w.base, w.kernel, NULL, &reply);
	af_expect(st, reply, 403, "publish allowance exhausted");
	/* new versions of owned services are always fine */
	st = af_announce(&F, &w.owner, &w.owner, "www.example.org", 80, 6,
			 w.base, w.kernel, NULL, &reply);
	cr_assert_eq(st, 201, "%s", af_error(reply));
	json_decref(reply);
}

/* ---- commitments ---- */

Test(refusals, commit_by_unregistered_peer)
{
	struct af_world w;
	struct tkey stranger;
	json_t *reply;
	long st;

	af_world_make(&F, &w, 5);
	tkey_new(&stranger);
	st = af_call(&F, "POST", "/v1/commitments",
		     json_pack("{s:s}", "snapshot", w.id), &stranger, &reply);
	af_expect(st, reply, 403, "is not registered");
}

Test(refusals, commit_to_unknown_snapshot)
{
	struct af_world w;
	json_t *reply;
	long st;

	af_world_make(&F, &w, 5);
	st = af_call(&F, "POST", "/v1/commitments",
		     json_pack("{s:s}", "snapshot",
			       "3333333333333333333333333333333333333333333333333333333333333333"),
		     &w.p1, &reply);
	af_expect(st, reply, 404, "no snapshot");
}

Test(refusals, commit_to_revoked_snapshot)
{
	struct af_world w;
	char path[128];
	json_t *reply;
	long st;

	af_world_make(&F, &w, 5);
	snprintf(path, sizeof(path), "/v1/trusted/%s", w.base);
	cr_assert_eq(af_call(&F, "DELETE", path, NULL, &F.admin, NULL), 200);
	st = af_call(&F, "POST", "/v1/commitments",
		     json_pack("{s:s}", "snapshot", w.id), &w.p1, &reply);
	af_expect(st, reply, 403, "revoked base or kernel");
}

Test(refusals, reported_peer_cannot_commit_again_but_keeps_others)
{
	struct af_world w;
	char other_id[65], path[128];
	json_t *reply;
	long st;

	af_world_make(&F, &w, 5);
	/* p1 hosts the owner's service and p2's */
	cr_assert_eq(af_announce(&F, &w.p2, &w.p2, "p2.example.org", 80, 1,
				 w.base, w.kernel, other_id, NULL), 201);
	af_commit_up(&F, &w.p1, w.id, "192.0.2.1", 40001);
	af_commit_up(&F, &w.p1, other_id, "192.0.2.1", 40002);
	cr_assert_eq(af_call(&F, "POST", "/v1/reports",
			     json_pack("{s:s, s:s, s:s}", "service",
				       "www.example.org:80", "peer", w.p1.hex,
				       "reason", "tampered"),
			     &w.owner, NULL), 201);

	st = af_call(&F, "POST", "/v1/commitments",
		     json_pack("{s:s}", "snapshot", w.id), &w.p1, &reply);
	af_expect(st, reply, 403, "was reported by the owner");
	snprintf(path, sizeof(path), "/v1/commitments/%s", w.id);
	st = af_call(&F, "PUT", path, json_pack("{s:b, s:s, s:i}", "up", 1,
					       "addr", "192.0.2.1", "port", 1),
		     &w.p1, &reply);
	af_expect(st, reply, 403, "was reported by the owner");
	/* its other service is untouched */
	cr_assert_eq(af_lookup(&F, "p2.example.org", 80, &reply), 200);
	cr_assert(af_lookup_has(reply, w.p1.hex));
	json_decref(reply);
}

Test(refusals, put_without_commitment)
{
	struct af_world w;
	char path[128];
	json_t *reply;
	long st;

	af_world_make(&F, &w, 5);
	snprintf(path, sizeof(path), "/v1/commitments/%s", w.id);
	st = af_call(&F, "PUT", path, json_pack("{s:b, s:s, s:i}", "up", 1,
					       "addr", "192.0.2.1", "port", 1),
		     &w.p1, &reply);
	af_expect(st, reply, 404, "POST /v1/commitments first");
}

Test(refusals, put_up_without_address)
{
	struct af_world w;
	char path[128];
	json_t *reply;
	long st;

	af_world_make(&F, &w, 5);
	af_commit_up(&F, &w.p1, w.id, "192.0.2.1", 40001);
	snprintf(path, sizeof(path), "/v1/commitments/%s", w.id);
	st = af_call(&F, "PUT", path, json_pack("{s:b}", "up", 1), &w.p1,
		     &reply);
	af_expect(st, reply, 400, "'addr' is missing");
	st = af_call(&F, "PUT", path, json_pack("{s:b, s:s, s:i}", "up", 1,
					       "addr", "192.0.2.1", "port",
					       70000), &w.p1, &reply);
	af_expect(st, reply, 400, "'port' must be between 1 and 65535");
}

/* ---- reports ---- */

Test(refusals, report_by_non_owner)
{
	struct af_world w;
	json_t *reply;
	long st;

	af_world_make(&F, &w, 5);
	st = af_call(&F, "POST", "/v1/reports",
		     json_pack("{s:s, s:s, s:s}", "service", "www.example.org:80",
			       "peer", w.p2.hex, "reason", "spite"),
		     &w.p1, &reply);
	af_expect(st, reply, 403, "only the owner of www.example.org:80");
}

Test(refusals, report_self_unknown_service_unregistered_peer_no_reason)
{
	struct af_world w;
	struct tkey stranger;
	json_t *reply;
	long st;

	af_world_make(&F, &w, 5);
	tkey_new(&stranger);
	st = af_call(&F, "POST", "/v1/reports",
		     json_pack("{s:s, s:s, s:s}", "service", "www.example.org:80",
			       "peer", w.owner.hex, "reason", "x"),
		     &w.owner, &reply);
	af_expect(st, reply, 400, "cannot report itself");
	st = af_call(&F, "POST", "/v1/reports",
		     json_pack("{s:s, s:s, s:s}", "service", "nope.example.org:80",
			       "peer", w.p1.hex, "reason", "x"),
		     &w.owner, &reply);
	af_expect(st, reply, 404, "unknown service");
	st = af_call(&F, "POST", "/v1/reports",
		     json_pack("{s:s, s:s, s:s}", "service", "www.example.org:80",
			       "peer", stranger.hex, "reason", "x"),
		     &w.owner, &reply);
	af_expect(st, reply, 404, "is not registered");
	st = af_call(&F, "POST", "/v1/reports",
		     json_pack("{s:s, s:s, s:s}", "service", "www.example.org:80",
			       "peer", w.p1.hex, "reason", "  "),
		     &w.owner, &reply);
	af_expect(st, reply, 400, "'reason' is empty");
}

/* ---- reads ---- */

Test(refusals, lookup_bad_queries)
{
	json_t *reply;
	long st;

	st = af_call(&F, "GET", "/v1/lookup", NULL, NULL, &reply);
	af_expect(st, reply, 400, "are required");
	st = af_call(&F, "GET", "/v1/lookup?host=a.example.org", NULL, NULL,
		     &reply);
	af_expect(st, reply, 400, "are required");
	st = af_call(&F, "GET", "/v1/lookup?host=a.example.org&port=0", NULL,
		     NULL, &reply);
	af_expect(st, reply, 400, "bad 'port'");
	st = af_call(&F, "GET", "/v1/lookup?host=a.example.org&port=80x",
		     NULL, NULL, &reply);
	af_expect(st, reply, 400, "bad 'port'");
	st = af_call(&F, "GET", "/v1/lookup?host=a_b!&port=80", NULL, NULL,
		     &reply);
	af_expect(st, reply, 400, "bad 'host'");
	st = af_call(&F, "GET", "/v1/lookup?host=nobody.example.org&port=80",
		     NULL, NULL, &reply);
	cr_assert_str_eq(json_string_value(json_object_get(reply, "fallback")),
			 "dns");
	af_expect(st, reply, 404, "unknown service");
}

Test(refusals, sources)
{
	struct af_world w;
	struct tkey stranger;
	char path[128];
	json_t *reply;
	long st;

	af_world_make(&F, &w, 5);
	tkey_new(&stranger);
	st = af_call(&F, "GET", "/v1/sources/"
		     "4444444444444444444444444444444444444444444444444444444444444444",
		     NULL, NULL, &reply);
	af_expect(st, reply, 404, "neither a snapshot nor");
	snprintf(path, sizeof(path), "/v1/sources/%s", w.id);
	st = af_call(&F, "POST", path, NULL, &stranger, &reply);
	af_expect(st, reply, 403, "is not registered");
	cr_assert_eq(af_call(&F, "POST", "/v1/reports",
			     json_pack("{s:s, s:s, s:s}", "service",
				       "www.example.org:80", "peer", w.p1.hex,
				       "reason", "bad chunks"),
			     &w.owner, NULL), 201);
	st = af_call(&F, "POST", path, NULL, &w.p1, &reply);
	af_expect(st, reply, 403, "was reported");
	snprintf(path, sizeof(path), "/v1/trusted/%s", w.kernel);
	cr_assert_eq(af_call(&F, "DELETE", path, NULL, &F.admin, NULL), 200);
	snprintf(path, sizeof(path), "/v1/sources/%s", w.kernel);
	st = af_call(&F, "GET", path, NULL, NULL, &reply);
	af_expect(st, reply, 410, "is revoked");
	snprintf(path, sizeof(path), "/v1/sources/%s", w.id);
	st = af_call(&F, "GET", path, NULL, NULL, &reply);
	af_expect(st, reply, 410, "uses a revoked");
}

Test(refusals, unknown_things)
{
	json_t *reply;
	long st;

	st = af_call(&F, "GET", "/v1/peers/"
		     "5555555555555555555555555555555555555555555555555555555555555555",
		     NULL, NULL, &reply);
	af_expect(st, reply, 404, "is not registered");
	st = af_call(&F, "GET", "/v1/snapshots/"
		     "5555555555555555555555555555555555555555555555555555555555555555",
		     NULL, NULL, &reply);
	af_expect(st, reply, 404, "no snapshot");
	st = af_call(&F, "GET", "/v1/trusted/"
		     "5555555555555555555555555555555555555555555555555555555555555555",
		     NULL, NULL, &reply);
	af_expect(st, reply, 404, "not a trusted");
	st = af_call(&F, "GET", "/v1/services/nope.example.org:80/peers", NULL,
		     NULL, &reply);
	af_expect(st, reply, 404, "unknown service");
	st = af_call(&F, "GET", "/v1/services/nope.example.org/peers", NULL,
		     NULL, &reply);
	af_expect(st, reply, 400, "bad service");
	st = af_call(&F, "GET", "/v1/snapshots?service=bad", NULL, NULL,
		     &reply);
	af_expect(st, reply, 400, "bad 'service'");
}
