/*
 * fuzz_authority_json.c - libFuzzer target for the authority's request
 * body parsing (common/authapi.c), the code that reads every untrusted body
 * the authority receives, and for the lookup answer parser clients use.
 *
 * The input is one request body.  It goes through authapi_parse_object()
 * exactly as the server does, then through every body parser in turn
 * (register, trust, announce, commit, serving, report, bad_chunk, key
 * record) and the lookup parser; an announcement that parses also goes
 * through fedsnap_check_signed_manifest(), as the handler does next, and a
 * key record's body through keyrec_parse().
 *
 * Checked after each run:
 *  - a refusal leaves one non-empty line in the error;
 *  - what a parser accepts holds its promises: addresses pass the address
 *    check, hashes and keys are 64 lower-case hex, a trust entry's sha256
 *    is its index's file hash, strings fit their bounds, a lookup's peer
 *    count matches the array;
 *  - everything is freed (ASan's leak check covers the error paths).
 *
 * Seeds (fuzz/seeds/fuzz_authority_json/) are one valid body per endpoint.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/authapi.h"
#include "common/fedsnap.h"
#include "common/hex.h"
#include "common/keyrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static _Noreturn void
fuzz_fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_authority_json: %s: %s\n", what, detail);
	abort();
}

/* A refusal must explain itself in one line. */
static void
fuzz_check_refusal(const char *who, const struct err *e)
{
	if (e->msg[0] == '\0' || strchr(e->msg, '\n') != NULL)
		fuzz_fail(who, "bad error message");
}

/* POST /v1/keys: what keyrec_parse accepts is canonical, its own bytes. */
static void
fuzz_keyrec(const json_t *j)
{
	struct keyrec_body b;
	struct keyrec r;
	struct err e;
	size_t len;
	char *again;

	e.msg[0] = '\0';
	if (keyrec_body_parse(j, &b, &e) != 0) {
		fuzz_check_refusal("key body", &e);
		return;
	}
	e.msg[0] = '\0';
	if (keyrec_parse(b.record, b.record_len, &r, &e) != 0) {
		fuzz_check_refusal("key record", &e);
		return;
	}
	if (!hex_is_sha256(r.old) ||
	    (r.type != KEYREC_REVOCATION &&
	     (!hex_is_sha256(r.new_) || strcmp(r.old, r.new_) == 0)))
		fuzz_fail("key record", "accepted a bad key");
	if ((again = keyrec_encode(&r, &len, &e)) == NULL)
		return;
	if (len != b.record_len || memcmp(again, b.record, len) != 0)
		fuzz_fail("key record", "accepted a non-canonical record");
	free(again);
}

static void
fuzz_parsers(const json_t *j)
{
	struct authapi_register reg;
	struct authapi_trust t;
	struct authapi_announce an;
	struct authapi_commit c;
	struct authapi_serving s;
	struct authapi_report rp;
	struct authapi_bad_chunk bc;
	struct authapi_lookup l;
	struct err e;
	char hex[SHA256_HEX_LEN + 1];
	size_t i;

	e.msg[0] = '\0';
	if (authapi_register_parse(j, &reg, &e) == 0) {
		if (authapi_addr_check(reg.addr, &e) != 0)
			fuzz_fail("register", "accepted a bad address");
	} else {
		fuzz_check_refusal("register", &e);
	}

	e.msg[0] = '\0';
	if (authapi_trust_parse(j, &t, &e) == 0) {
		if (strcmp(t.kind, "kernel") != 0 && strcmp(t.kind, "base") != 0)
			fuzz_fail("trust", "accepted a bad kind");
		hex_encode(t.index.file_hash, SHA256_LEN, hex);
		if (!t.index.has_file_hash || strcmp(hex, t.sha256) != 0)
			fuzz_fail("trust", "sha256 is not the index's hash");
		if (strlen(t.name) > AUTHAPI_NAME_MAX)
			fuzz_fail("trust", "name too long");
		authapi_trust_free(&t);
	} else {
		fuzz_check_refusal("trust", &e);
	}

	e.msg[0] = '\0';
	if (authapi_announce_parse(j, &an, &e) == 0) {
		struct manifest m;

		if (an.manifest == NULL || an.manifest_len == 0 ||
		    an.manifest_len > MANIFEST_MAX_BYTES)
			fuzz_fail("announce", "bad manifest bounds");
		e.msg[0] = '\0';
		/* manifest.c's own target checks its messages; here only
		 * that a refusal has one (an unknown member's name, quoted,
		 * may hold an escaped newline: reported to its owner). */
		if (fedsnap_check_signed_manifest(an.manifest, an.manifest_len,
						  an.sig, &m, &e) == 0)
			manifest_free(&m);
		else if (e.msg[0] == '\0')
			fuzz_fail("announce manifest", "no error message");
	} else {
		fuzz_check_refusal("announce", &e);
	}

	e.msg[0] = '\0';
	if (authapi_commit_parse(j, &c, &e) == 0) {
		if (!hex_is_sha256(c.snapshot))
			fuzz_fail("commit", "snapshot is not a hash");
		if (c.has_serving && c.serving.up && !c.serving.has_addr)
			fuzz_fail("commit", "up without an address");
	} else {
		fuzz_check_refusal("commit", &e);
	}

	e.msg[0] = '\0';
	if (authapi_serving_parse(j, &s, &e) == 0) {
		if (s.up && (!s.has_addr || s.port == 0))
			fuzz_fail("serving", "up without an address");
		if (s.has_addr && authapi_host_check(s.addr, &e) != 0)
			fuzz_fail("serving", "accepted a bad host");
	} else {
		fuzz_check_refusal("serving", &e);
	}

	e.msg[0] = '\0';
	if (authapi_report_parse(j, &rp, &e) == 0) {
		if (!hex_is_sha256(rp.peer) || rp.port == 0 ||
		    rp.reason[0] == '\0' ||
		    strlen(rp.reason) > AUTHAPI_REASON_MAX)
			fuzz_fail("report", "accepted a bad report");
	} else {
		fuzz_check_refusal("report", &e);
	}

	e.msg[0] = '\0';
	if (authapi_bad_chunk_parse(j, &bc, &e) == 0) {
		if (!authapi_report_is_bad_chunk(j) || !hex_is_sha256(bc.object) ||
		    !hex_is_sha256(bc.expected) || !hex_is_sha256(bc.received) ||
		    strcmp(bc.expected, bc.received) == 0 ||
		    authapi_addr_check(bc.addr, &e) != 0)
			fuzz_fail("bad_chunk", "accepted a bad report");
	} else {
		fuzz_check_refusal("bad_chunk", &e);
	}

	e.msg[0] = '\0';
	if (authapi_lookup_parse(j, &l, &e) == 0) {
		if (l.npeers != json_array_size(json_object_get(j, "peers")))
			fuzz_fail("lookup", "peer count");
		for (i = 0; i < l.npeers; i++)
			if (!hex_is_sha256(l.peers[i].peer) ||
			    l.peers[i].port == 0)
				fuzz_fail("lookup", "accepted a bad peer");
		authapi_lookup_free(&l);
	} else {
		fuzz_check_refusal("lookup", &e);
		if (l.peers != NULL)
			fuzz_fail("lookup", "peers left after a refusal");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e = { { 0 } };
	json_t *j;

	if (authapi_parse_object((const char *)data, size, &j, &e) != 0) {
		fuzz_check_refusal("parse", &e);
		if (j != NULL)
			fuzz_fail("parse", "object left after a refusal");
		return 0;
	}
	if (!json_is_object(j))
		fuzz_fail("parse", "accepted a non-object");
	fuzz_parsers(j);
	fuzz_keyrec(j);
	json_decref(j);
	return 0;
}
