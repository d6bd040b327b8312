/*
 * authapi.c - parsers for the authority API's JSON bodies (see authapi.h).
 *
 * Every parser reads its members through the three getters below, which
 * name the member in their error ("'addr' must be a string"), so a refusal
 * always tells the sender which member is wrong and why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/authapi.h"

/* A required (or, with optional, possibly absent: returns 1) string member
 * of at most max bytes, without NUL bytes.  Returns 0, 1 or -1. */
static int
authapi_get_string(const json_t *j, const char *name, bool optional,
		   size_t max, const char **out, size_t *len, struct err *e)
{
	const json_t *v = json_object_get(j, name);

	if (v == NULL) {
		if (optional)
			return 1;
		return err_set(e, "'%s' is missing", name);
	}
	if (!json_is_string(v))
		return err_set(e, "'%s' must be a string", name);
	*len = json_string_length(v);
	*out = json_string_value(v);
	if (*len > max)
		return err_set(e, "'%s' is longer than %zu bytes", name, max);
	if (memchr(*out, '\0', *len) != NULL)
		return err_set(e, "'%s' contains a NUL byte", name);
	return 0;
}

/* Copy a required string member into buf (bufsize includes the NUL). */
static int
authapi_copy_string(const json_t *j, const char *name, char *buf,
		    size_t bufsize, struct err *e)
{
	const char *s;
	size_t len;

	if (authapi_get_string(j, name, false, bufsize - 1, &s, &len, e) != 0)
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return 0;
}

/* A required integer member within [min, max]. */
static int
authapi_get_int(const json_t *j, const char *name, json_int_t min,
		json_int_t max, json_int_t *out, struct err *e)
{
	const json_t *v = json_object_get(j, name);

	if (v == NULL)
		return err_set(e, "'%s' is missing", name);
	if (!json_is_integer(v))
		return err_set(e, "'%s' must be an integer", name);
	*out = json_integer_value(v);
	if (*out < min || *out > max)
		return err_set(e, "'%s' must be between %lld and %lld", name,
			       (long long)min, (long long)max);
	return 0;
}

/* A required hash or key member: 64 lower-case hex digits. */
static int
authapi_get_hex64(const json_t *j, const char *name,
		  char out[SHA256_HEX_LEN + 1], struct err *e)
{
	if (authapi_copy_string(j, name, out, SHA256_HEX_LEN + 1, e) == -1)
		return -1;
	if (!hex_is_sha256(out))
		return err_set(e, "'%s' must be 64 lower-case hex digits",
			       name);
	return 0;
}

int
authapi_parse_object(const char *buf, size_t len, json_t **out,
		     struct err *e)
{
	json_error_t je;
	json_t *j;

	*out = NULL;
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (j == NULL) {
		/* jansson quotes the input near the error: err_set keeps
		 * the message one printable line */
		return err_set(e, "body is not JSON: %s (line %d, column %d)",
			       je.text, je.line, je.column);
	}
	if (!json_is_object(j)) {
		json_decref(j);
		return err_set(e, "body must be a JSON object");
	}
	*out = j;
	return 0;
}

int
authapi_addr_check(const char *s, struct err *e)
{
	char host[MANIFEST_HOST_MAX + 1];
	uint16_t port;
	const char *p;

	if (strlen(s) > AUTHAPI_ADDR_MAX)
		return err_set(e, "address is too long");
	/* Refused here, before an error message could quote them. */
	for (p = s; *p != '\0'; p++)
		if (*p <= ' ' || *p >= 0x7f)
			return err_set(e, "address must be printable ASCII "
				       "without spaces");
	return service_parse(s, host, &port, e);
}

int
authapi_host_check(const char *s, struct err *e)
{
	char buf[AUTHAPI_ADDR_MAX + 1];

	if (strlen(s) > AUTHAPI_HOST_MAX)
		return err_set(e, "host is too long");
	snprintf(buf, sizeof(buf), "%s:1", s);
	return authapi_addr_check(buf, e);
}

int
authapi_register_parse(const json_t *j, struct authapi_register *r,
		       struct err *e)
{
	if (authapi_copy_string(j, "addr", r->addr, sizeof(r->addr), e) == -1)
		return -1;
	if (authapi_addr_check(r->addr, e) == -1)
		return err_wrap(e, "'addr'");
	return 0;
}

int
authapi_trust_parse(const json_t *j, struct authapi_trust *t, struct err *e)
{
	const json_t *ix;
	const char *name;
	size_t len;
	int rc;

	memset(t, 0, sizeof(*t));
	if (authapi_get_string(j, "kind", false, 64, &name, &len, e) != 0)
		return -1;
	if (strcmp(name, "kernel") != 0 && strcmp(name, "base") != 0)
		return err_set(e, "'kind' must be \"kernel\" or \"base\"");
	memcpy(t->kind, name, len + 1);
	rc = authapi_get_string(j, "name", true, AUTHAPI_NAME_MAX, &name,
				&len, e);
	if (rc == -1)
		return -1;
	if (rc == 0) {
		memcpy(t->name, name, len);
		t->name[len] = '\0';
	}
	if ((ix = json_object_get(j, "index")) == NULL)
		return err_set(e, "'index' is missing");
	if (!json_is_object(ix))
		return err_set(e, "'index' must be an object");
	if (chunkidx_from_json(ix, true, &t->index, e) == -1)
		return err_wrap(e, "'index'");
	hex_encode(t->index.file_hash, SHA256_LEN, t->sha256);
	return 0;
}

void
authapi_trust_free(struct authapi_trust *t)
{
	chunkidx_free(&t->index);
}

int
authapi_announce_parse(const json_t *j, struct authapi_announce *a,
		       struct err *e)
{
	const char *sig;
	size_t len;

	memset(a, 0, sizeof(*a));
	if (authapi_get_string(j, "manifest", false, MANIFEST_MAX_BYTES,
			       &a->manifest, &a->manifest_len, e) != 0)
		return -1;
	if (a->manifest_len == 0)
		return err_set(e, "'manifest' is empty");
	if (authapi_get_string(j, "signature", false, 2 * ED25519_SIG_LEN,
			       &sig, &len, e) != 0)
		return -1;
	if (len != 2 * ED25519_SIG_LEN ||
	    hex_decode(sig, a->sig, ED25519_SIG_LEN) == -1)
		return err_set(e, "'signature' must be 128 hex digits");
	return 0;
}

int
authapi_serving_parse(const json_t *j, struct authapi_serving *s,
		      struct err *e)
{
	const json_t *up = json_object_get(j, "up");
	json_int_t port;

	memset(s, 0, sizeof(*s));
	s->up = true;
	if (up != NULL) {
		if (!json_is_boolean(up))
			return err_set(e, "'up' must be true or false");
		s->up = json_is_true(up);
	}
	if (!s->up && json_object_get(j, "addr") == NULL &&
	    json_object_get(j, "port") == NULL)
		return 0;
	if (authapi_copy_string(j, "addr", s->addr, sizeof(s->addr), e) == -1)
		return -1;
	if (authapi_host_check(s->addr, e) == -1)
		return err_wrap(e, "'addr'");
	if (authapi_get_int(j, "port", 1, 65535, &port, e) == -1)
		return -1;
	s->port = (uint16_t)port;
	s->has_addr = true;
	return 0;
}

int
authapi_commit_parse(const json_t *j, struct authapi_commit *c,
		     struct err *e)
{
	memset(c, 0, sizeof(*c));
	if (authapi_get_hex64(j, "snapshot", c->snapshot, e) == -1)
		return -1;
	if (json_object_get(j, "up") != NULL ||
	    json_object_get(j, "addr") != NULL ||
	    json_object_get(j, "port") != NULL) {
		if (authapi_serving_parse(j, &c->serving, e) == -1)
			return -1;
		c->has_serving = true;
	}
	return 0;
}

int
authapi_report_parse(const json_t *j, struct authapi_report *r,
		     struct err *e)
{
	char service[AUTHAPI_ADDR_MAX + 1];
	const char *reason;
	size_t len, i;

	memset(r, 0, sizeof(*r));
	if (authapi_copy_string(j, "service", service, sizeof(service),
				e) == -1)
		return -1;
	if (authapi_addr_check(service, e) == -1 ||
	    service_parse(service, r->host, &r->port, e) == -1)
		return err_wrap(e, "'service'");
	if (authapi_get_hex64(j, "peer", r->peer, e) == -1)
		return -1;
	if (authapi_get_string(j, "reason", false, AUTHAPI_REASON_MAX,
			       &reason, &len, e) != 0)
		return -1;
	for (i = 0; i < len; i++)
		if (reason[i] != ' ' && reason[i] != '\t' &&
		    reason[i] != '\n')
			break;
	if (i == len)
		return err_set(e, "'reason' is empty");
	memcpy(r->reason, reason, len);
	r->reason[len] = '\0';
	return 0;
}

bool
authapi_report_is_bad_chunk(const json_t *j)
{
	const char *kind = json_string_value(json_object_get(j, "kind"));

	return kind != NULL && strcmp(kind, AUTHAPI_REPORT_BAD_CHUNK) == 0;
}

int
authapi_bad_chunk_parse(const json_t *j, struct authapi_bad_chunk *b,
			struct err *e)
{
	json_int_t n;

	memset(b, 0, sizeof(*b));
	if (!authapi_report_is_bad_chunk(j))
		return err_set(e, "'kind' must be \"%s\"",
			       AUTHAPI_REPORT_BAD_CHUNK);
	if (authapi_get_hex64(j, "object", b->object, e) == -1 ||
	    authapi_copy_string(j, "addr", b->addr, sizeof(b->addr), e) == -1)
		return -1;
	if (authapi_addr_check(b->addr, e) == -1)
		return err_wrap(e, "'addr'");
	if (authapi_get_int(j, "chunk", 0, UINT32_MAX, &n, e) == -1)
		return -1;
	b->chunk = (uint32_t)n;
	if (authapi_get_hex64(j, "expected", b->expected, e) == -1 ||
	    authapi_get_hex64(j, "received", b->received, e) == -1)
		return -1;
	if (strcmp(b->expected, b->received) == 0)
		return err_set(e, "'received' is 'expected': that chunk was "
			       "good");
	return 0;
}

int
authapi_lookup_parse(const json_t *j, struct authapi_lookup *l,
		     struct err *e)
{
	const json_t *peers, *p;
	json_int_t n;
	size_t i;

	memset(l, 0, sizeof(*l));
	if (!json_is_object(j))
		return err_set(e, "lookup: not a JSON object");
	if (authapi_copy_string(j, "host", l->host, sizeof(l->host), e) == -1)
		goto bad;
	if (authapi_get_int(j, "port", 1, 65535, &n, e) == -1)
		goto bad;
	l->port = (uint16_t)n;
	if (authapi_get_int(j, "ttl", 0, 86400, &n, e) == -1)
		goto bad;
	l->ttl = (int)n;
	peers = json_object_get(j, "peers");
	if (!json_is_array(peers)) {
		err_set(e, "'peers' must be an array");
		goto bad;
	}
	l->npeers = json_array_size(peers);
	if (l->npeers == 0)
		return 0;
	if ((l->peers = calloc(l->npeers, sizeof(*l->peers))) == NULL) {
		err_set(e, "out of memory");
		goto bad;
	}
	json_array_foreach(peers, i, p) {
		struct authapi_lookup_peer *lp = &l->peers[i];

		if (!json_is_object(p)) {
			err_set(e, "'peers[%zu]' must be an object", i);
			goto bad;
		}
		if (authapi_get_hex64(p, "peer", lp->peer, e) == -1 ||
		    authapi_copy_string(p, "addr", lp->addr, sizeof(lp->addr),
					e) == -1 ||
		    authapi_get_int(p, "port", 1, 65535, &n, e) == -1) {
			err_wrap(e, "peers[%zu]", i);
			goto bad;
		}
		lp->port = (uint16_t)n;
	}
	return 0;
bad:
	err_wrap(e, "lookup");
	authapi_lookup_free(l);
	return -1;
}

void
authapi_lookup_free(struct authapi_lookup *l)
{
	free(l->peers);
	l->peers = NULL;
	l->npeers = 0;
}
