/*
 * signed_answer.c - sign (the authority) and check (every client) lookup
 * and sources answers; the format is in signed_answer.h and
 * docs/authority-api.md ("Signed answers").
 *
 * The canonical bytes are jansson's own dump, compact with sorted keys, of
 * the answer without its "signature": the signer and the checker run the
 * same code on the same values, so neither writes JSON by hand, and the
 * checker verifies the object it then uses (what it parsed), not bytes it
 * would parse again differently.  The answers hold only objects, arrays,
 * strings of ASCII and integers, for which that dump is one string.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/hex.h"
#include "common/keyfile.h"
#include "common/signed_answer.h"
#include "common/timefmt.h"

/* The members the signature adds; what an answer "says" is the rest. */
static const char *const signed_fields[] = {
	"issued_at", "expires", "version", "key", "signature",
};

const char *
signed_answer_domain(enum signed_kind kind)
{
	return kind == SIGNED_SOURCES ? "fed-sources-v1\n" : "fed-lookup-v1\n";
}

static const char *
signed_kind_name(enum signed_kind kind)
{
	return kind == SIGNED_SOURCES ? "sources" : "lookup";
}

/* The canonical bytes of j (domain, then j without "signature"), malloc'd
 * with *len, or NULL with e set. */
static char *
signed_canonical(const json_t *j, enum signed_kind kind, size_t *len,
		 struct err *e)
{
	const char *dom = signed_answer_domain(kind);
	size_t dlen = strlen(dom), blen;
	json_t *copy = json_copy((json_t *)j);
	char *body, *out;

	if (copy == NULL) {
		err_set(e, "out of memory");
		return NULL;
	}
	json_object_del(copy, "signature");
	body = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(copy);
	if (body == NULL) {
		err_set(e, "out of memory");
		return NULL;
	}
	if ((blen = strlen(body)) > SIGNED_ANSWER_MAX) {
		free(body);
		err_set(e, "answer of %zu bytes is over the %u a signed answer "
			"may have", blen, SIGNED_ANSWER_MAX);
		return NULL;
	}
	if ((out = malloc(dlen + blen)) == NULL) {
		free(body);
		err_set(e, "out of memory");
		return NULL;
	}
	memcpy(out, dom, dlen);
	memcpy(out + dlen, body, blen);
	free(body);
	*len = dlen + blen;
	return out;
}

int
signed_answer_sign(json_t *j, enum signed_kind kind,
		   const uint8_t seed[ED25519_SEED_LEN],
		   const uint8_t pub[ED25519_PUB_LEN], time_t issued, int ttl,
		   int64_t version, struct err *e)
{
	char t0[RFC3339_LEN + 1], t1[RFC3339_LEN + 1];
	char key[2 * ED25519_PUB_LEN + 1], sighex[2 * ED25519_SIG_LEN + 1];
	uint8_t sig[ED25519_SIG_LEN];
	size_t len;
	char *msg;
	int rc;

	if (!json_is_object(j))
		return err_set(e, "sign: the answer is not an object");
	rfc3339_format(issued, t0);
	rfc3339_format(issued + ttl, t1);
	hex_encode(pub, ED25519_PUB_LEN, key);
	if (json_object_set_new(j, "issued_at", json_string(t0)) == -1 ||
	    json_object_set_new(j, "expires", json_string(t1)) == -1 ||
	    json_object_set_new(j, "version",
				json_integer((json_int_t)version)) == -1 ||
	    json_object_set_new(j, "key", json_string(key)) == -1)
		return err_set(e, "out of memory");
	json_object_del(j, "signature");
	if ((msg = signed_canonical(j, kind, &len, e)) == NULL)
		return -1;
	rc = ed25519_sign(seed, msg, len, sig, e);
	free(msg);
	if (rc == -1)
		return -1;
	hex_encode(sig, ED25519_SIG_LEN, sighex);
	if (json_object_set_new(j, "signature", json_string(sighex)) == -1)
		return err_set(e, "out of memory");
	return 0;
}

/* Does j say it is about subject?  Returns 0 or -1 with e set. */
static int
signed_subject_check(const json_t *j, enum signed_kind kind,
		     const char *subject, struct err *e)
{
	char about[320];
	const char *host;
	json_t *port;

	if (kind == SIGNED_SOURCES) {
		host = json_string_value(json_object_get(j, "sha256"));
		if (host == NULL)
			return err_set(e, "'sha256' is missing");
		snprintf(about, sizeof(about), "%s", host);
	} else {
		host = json_string_value(json_object_get(j, "host"));
		port = json_object_get(j, "port");
		if (host == NULL || !json_is_integer(port))
			return err_set(e, "'host' or 'port' is missing");
		snprintf(about, sizeof(about), "%s:%lld", host,
			 (long long)json_integer_value(port));
	}
	if (strcmp(about, subject) != 0)
		return err_set(e, "it is about %s, not %s (an answer for "
			       "something else)", about, subject);
	return 0;
}

/* A member that must be an RFC 3339 time.  Returns 0 or -1. */
static int
signed_time(const json_t *j, const char *name, time_t *t, struct err *e)
{
	const char *s = json_string_value(json_object_get(j, name));

	if (s == NULL)
		return err_set(e, "'%s' is missing (not a signed answer?)",
			       name);
	if (rfc3339_parse(s, t) == -1)
		return err_set(e, "'%s' is not an RFC 3339 time", name);
	return 0;
}

/* The signed fields of j into m, the key and signature decoded.  Returns 0
 * or -1 with e set. */
static int
signed_fields_get(const json_t *j, struct signed_meta *m,
		  uint8_t key[ED25519_PUB_LEN], uint8_t sig[ED25519_SIG_LEN],
		  struct err *e)
{
	const char *k = json_string_value(json_object_get(j, "key"));
	const char *s = json_string_value(json_object_get(j, "signature"));
	json_t *v = json_object_get(j, "version");

	if (s == NULL)
		return err_set(e, "'signature' is missing (is the authority "
			       "started with --key?)");
	if (strlen(s) != 2 * ED25519_SIG_LEN ||
	    hex_decode(s, sig, ED25519_SIG_LEN) == -1)
		return err_set(e, "'signature' must be %d hex digits",
			       2 * ED25519_SIG_LEN);
	if (k == NULL || strlen(k) != 2 * ED25519_PUB_LEN ||
	    hex_decode(k, key, ED25519_PUB_LEN) == -1)
		return err_set(e, "'key' must be %d hex digits",
			       2 * ED25519_PUB_LEN);
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return err_set(e, "'version' must be a whole number");
	m->version = (int64_t)json_integer_value(v);
	if (signed_time(j, "issued_at", &m->issued_at, e) == -1 ||
	    signed_time(j, "expires", &m->expires, e) == -1)
		return -1;
	if (m->expires < m->issued_at)
		return err_set(e, "'expires' is before 'issued_at'");
	return 0;
}

/* "3 minutes" for secs, in the largest unit that keeps it >= 2. */
static void
signed_ago(int64_t secs, char *out, size_t size)
{
	static const struct { int64_t s; const char *name; } units[] = {
		{ 86400, "days" }, { 3600, "hours" }, { 60, "minutes" },
	};
	size_t i;

	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (secs >= 2 * units[i].s) {
			snprintf(out, size, "%lld %s",
				 (long long)(secs / units[i].s), units[i].name);
			return;
		}
	snprintf(out, size, "%lld second%s", (long long)secs,
		 secs == 1 ? "" : "s");
}

/* Is sig, by key, good for j?  Returns 0 or -1 with e set. */
static int
signed_sig_check(const json_t *j, enum signed_kind kind,
		 const uint8_t key[ED25519_PUB_LEN],
		 const uint8_t sig[ED25519_SIG_LEN], struct err *e)
{
	size_t len;
	char *msg;
	int rc;

	if ((msg = signed_canonical(j, kind, &len, e)) == NULL)
		return -1;
	rc = ed25519_verify(key, msg, len, sig);
	free(msg);
	return rc == 0 ? 0 : err_set(e, "bad signature (altered, or not "
				     "signed by the authority)");
}

enum signed_verdict
signed_answer_verify(const json_t *j, enum signed_kind kind,
		     const char *subject, const uint8_t key[ED25519_PUB_LEN],
		     time_t now, struct signed_meta *m, struct err *e)
{
	char t0[RFC3339_LEN + 1], ago[32], khex[2 * ED25519_PUB_LEN + 1];
	uint8_t akey[ED25519_PUB_LEN], sig[ED25519_SIG_LEN];
	const char *what = signed_kind_name(kind);
	struct signed_meta got;

	if (!json_is_object(j)) {
		err_set(e, "not a JSON object");
		goto bad;
	}
	if (signed_fields_get(j, &got, akey, sig, e) == -1 ||
	    signed_subject_check(j, kind, subject, e) == -1)
		goto bad;
	if (memcmp(akey, key, ED25519_PUB_LEN) != 0) {
		hex_encode(akey, ED25519_PUB_LEN, khex);
		err_set(e, "signed by key %.16s..., not the pinned authority "
			"key", khex);
		goto bad;
	}
	if (signed_sig_check(j, kind, key, sig, e) == -1)
		goto bad;
	*m = got;
	if (got.expires > now)
		return SIGNED_OK;
	rfc3339_format(got.issued_at, t0);
	signed_ago((int64_t)(now - got.expires), ago, sizeof(ago));
	err_set(e, "%s answer for %s expired %s ago (issued %s); the "
		"authority or a replay is stale; --allow-stale uses it anyway",
		what, subject, ago, t0);
	return SIGNED_EXPIRED;
bad:
	err_wrap(e, "%s answer for %s refused", what, subject);
	return SIGNED_BAD;
}

/* j without the signed fields (a new reference), or NULL. */
static json_t *
signed_content(const json_t *j)
{
	json_t *c = json_copy((json_t *)j);
	size_t i;

	for (i = 0; c != NULL && i < sizeof(signed_fields) /
	     sizeof(signed_fields[0]); i++)
		json_object_del(c, signed_fields[i]);
	return c;
}

int
signed_answer_not_older(const json_t *j, const struct signed_meta *m,
			const json_t *held, const struct signed_meta *hm,
			enum signed_kind kind, const char *subject,
			struct err *e)
{
	json_t *a, *b;
	int same;

	if (held == NULL || hm == NULL || m->version >= hm->version)
		return 0;
	a = signed_content(j);
	b = signed_content(held);
	same = a != NULL && b != NULL && json_equal(a, b);
	json_decref(a);
	json_decref(b);
	if (same)
		return 0;
	return err_set(e, "%s answer for %s refused: version %lld is older "
		       "than version %lld already held (a rollback)",
		       signed_kind_name(kind), subject, (long long)m->version,
		       (long long)hm->version);
}

json_t *
signed_answer_parse(const char *text, size_t len, struct err *e)
{
	json_error_t je;
	json_t *j;

	if (len > SIGNED_ANSWER_MAX) {
		err_set(e, "answer of %zu bytes is over the %u a signed answer "
			"may have", len, SIGNED_ANSWER_MAX);
		return NULL;
	}
	if ((j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		err_set(e, "answer is not JSON: %s", je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		err_set(e, "answer is not a JSON object");
		return NULL;
	}
	return j;
}

int
signed_trust_key(const char *arg, uint8_t key[ED25519_PUB_LEN],
		 struct err *e)
{
	struct stat st;

	if (arg == NULL || arg[0] == '\0')
		return err_set(e, "--authority-key: empty");
	/* 64 hex digits that are not also a file's name: the key itself */
	if (strlen(arg) == 2 * ED25519_PUB_LEN && stat(arg, &st) == -1 &&
	    hex_decode(arg, key, ED25519_PUB_LEN) == 0)
		return 0;
	if (pubkey_load(arg, key, e) == -1)
		return err_wrap(e, "--authority-key");
	return 0;
}
