/*
 * authcall.c - test tool: one call to an authority's REST API, signed if
 * a key is given, as fedfs and fed-vmrunner make them.
 *
 *   authcall URL METHOD PATH [--key KEYFILE] [--body JSON]
 *   authcall URL announce HOST:PORT,VERSION,BASE,KERNEL --key KEYFILE
 *   authcall sign METHOD PATH --key KEYFILE [--body TEXT]
 *
 * Prints the HTTP status, a space and the reply's JSON on one line, and
 * exits 0 when the authority answered (whatever the status) and 1 when it
 * could not be reached (saying why on stderr).  `announce` makes a manifest
 * of service HOST:PORT at VERSION on those trusted base and kernel hashes
 * (a delta of two chunks of random hashes: the authority never reads a
 * delta), signs it with the key and posts it (POST /v1/snapshots), as fedfs
 * does for a copy into publish/.  `sign` sends nothing: it prints the
 * three signature headers of that request ("X-Fed-Key: ..." lines) over
 * the body's exact bytes, so a test can send one signed request twice
 * (curl -H), to see a replay refused.  URL may be a list, as for every client
 * (common/authurls.h).  End-to-end tests use it to write snapshots and
 * commitments without a fedfs mount or a VM; not installed, built by
 * `make check`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/crypto.h"
#include "common/fedsnap.h"
#include "common/authapi.h"
#include "common/hex.h"
#include "common/http.h"
#include "common/keyfile.h"
#include "common/manifest.h"
#include "common/sigreq.h"
#include "common/timefmt.h"

static int
usage(void)
{
	fprintf(stderr, "usage: authcall URL METHOD PATH [--key KEYFILE] "
		"[--body JSON]\n       authcall URL announce "
		"HOST:PORT,VERSION,BASE,KERNEL --key KEYFILE\n"
		"       authcall sign METHOD PATH --key KEYFILE "
		"[--body TEXT]\n");
	return 2;
}

/* A manifest of the service spec names ("HOST:PORT,VERSION,BASE,KERNEL")
 * owned by the key of seed, serialized into *bytes (malloc'd). */
static int
announce_manifest(const char *spec, const uint8_t seed[ED25519_SEED_LEN],
		  char **bytes, size_t *len, struct err *e)
{
	char host[AUTHAPI_HOST_MAX + 1], base[65], kernel[65];
	unsigned port;
	long long version;
	struct manifest m;

	if (sscanf(spec, "%253[^:]:%u,%lld,%64[0-9a-f],%64[0-9a-f]", host,
		   &port, &version, base, kernel) != 5 || port > 65535)
		return err_set(e, "announce: want HOST:PORT,VERSION,BASE,KERNEL");
	memset(&m, 0, sizeof(m));
	strcpy(m.name, "web");
	if (ed25519_public(seed, m.owner, e) == -1)
		return -1;
	rfc3339_format(time(NULL), m.created);
	m.version = version;
	snprintf(m.host, sizeof(m.host), "%s", host);
	m.port = (uint16_t)port;
	m.guest_port = 80;
	if (hex_decode(base, m.base, SHA256_LEN) == -1 ||
	    hex_decode(kernel, m.kernel, SHA256_LEN) == -1)
		return err_set(e, "announce: hashes are 64 hex digits");
	strcpy(m.machine, "uml");
	strcpy(m.format, DELTA_FORMAT_FEDCOW1);
	m.delta.size = 5000;
	m.delta.chunk_size = 4096;
	m.delta.nchunks = 2;
	if ((m.delta.chunks = calloc(2, SHA256_LEN)) == NULL)
		return err_set(e, "out of memory");
	for (int i = 0; i < 2; i++) {	/* every manifest differs */
		char salt[96];
		struct timespec t;

		clock_gettime(CLOCK_REALTIME, &t);
		snprintf(salt, sizeof(salt), "authcall %d %lld.%09ld %d",
			 (int)getpid(), (long long)t.tv_sec, t.tv_nsec, i);
		sha256(salt, strlen(salt), m.delta.chunks[i]);
	}
	*bytes = manifest_serialize(&m, len, e);
	manifest_free(&m);
	return *bytes != NULL ? 0 : -1;
}

/* The body of POST /v1/snapshots for the manifest spec names. */
static json_t *
announce_body(const char *spec, const uint8_t seed[ED25519_SEED_LEN],
	      struct err *e)
{
	char sighex[2 * ED25519_SIG_LEN + 1], *bytes = NULL;
	uint8_t sig[ED25519_SIG_LEN];
	json_t *body = NULL;
	size_t len;

	if (announce_manifest(spec, seed, &bytes, &len, e) == -1)
		return NULL;
	if (fedsnap_sign_manifest(seed, bytes, len, sig, e) == 0) {
		hex_encode(sig, ED25519_SIG_LEN, sighex);
		body = json_pack("{s:s%,s:s}", "manifest", bytes, len,
				 "signature", sighex);
	}
	free(bytes);
	return body;
}

/* The signature headers of method path with body text (may be NULL). */
static int
sign_only(const uint8_t seed[ED25519_SEED_LEN], const char *method,
	  const char *path, const char *text)
{
	struct sigreq sr;
	struct err e;

	if (sigreq_sign(seed, method, path, text, text ? strlen(text) : 0,
			time(NULL), &sr, &e) == -1) {
		fprintf(stderr, "authcall: %s\n", e.msg);
		return 1;
	}
	printf("%s: %s\n%s: %s\n%s: %s\n", SIGREQ_HDR_KEY, sr.key,
	       SIGREQ_HDR_DATE, sr.date, SIGREQ_HDR_SIG, sr.sig);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *url, *method, *path, *key = NULL, *text = NULL;
	uint8_t seed[ED25519_SEED_LEN];
	json_t *body = NULL, *reply = NULL;
	json_error_t je;
	struct err e;
	long status = 0;
	char *out;
	int i;

	if (argc < 4)
		return usage();
	url = argv[1], method = argv[2], path = argv[3];
	for (i = 4; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--key") == 0)
			key = argv[i + 1];
		else if (strcmp(argv[i], "--body") == 0)
			text = argv[i + 1];
		else
			return usage();
	}
	if (i != argc || crypto_init(&e) == -1)
		return usage();
	if (key != NULL && keyfile_load(key, seed, NULL, &e) == -1) {
		fprintf(stderr, "authcall: %s\n", e.msg);
		return 2;
	}
	if (strcmp(url, "sign") == 0)
		return key ? sign_only(seed, method, path, text) : usage();
	if (strcmp(method, "announce") == 0) {
		if (key == NULL ||
		    (body = announce_body(path, seed, &e)) == NULL) {
			fprintf(stderr, "authcall: %s\n", key ? e.msg :
				"announce needs --key");
			return 2;
		}
		method = "POST", path = "/v1/snapshots";
	} else if (text != NULL && (body = json_loads(text, 0, &je)) == NULL) {
		fprintf(stderr, "authcall: --body: %s\n", je.text);
		return 2;
	}
	if (authority_call(url, method, path, body, key ? seed : NULL,
			   &status, &reply, &e) == -1) {
		fprintf(stderr, "authcall: %s\n", e.msg);
		json_decref(body);
		return 1;
	}
	out = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
	printf("%ld %s\n", status, out ? out : "");
	free(out);
	json_decref(reply);
	json_decref(body);
	return 0;
}
