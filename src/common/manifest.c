/*
 * manifest.c - parsing, validating and serialising snapshot manifests.
 *
 * Canonical form is what jansson emits with JSON_COMPACT | JSON_SORT_KEYS |
 * JSON_ENSURE_ASCII: keys sorted, no whitespace, non-ASCII escaped.  A
 * manifest is parsed from its bytes, validated field by field, and then
 * re-serialised; if that does not give back the same bytes, the input was
 * not canonical and is refused.  So one manifest has one id.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/manifest.h"

#define MANIFEST_DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)

static const char *const manifest_known[] = {
	"base", "created", "delta", "kernel", "machine", "name", "owner",
	"qemu", "service", "version", "egress", NULL,
};

/* s as it may appear in an error message: at most outsz - 1 bytes, each
 * byte that is not printable ASCII shown as '?' (input must not add lines
 * or terminal escapes to logs and error replies). */
static const char *
manifest_printable(const char *s, char *out, size_t outsz)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < outsz; i++)
		out[i] = (unsigned char)s[i] >= 0x20 &&
			 (unsigned char)s[i] < 0x7f ? s[i] : '?';
	out[i] = '\0';
	return out;
}

static bool
manifest_is_known(const char *key)
{
	for (int i = 0; manifest_known[i] != NULL; i++)
		if (strcmp(key, manifest_known[i]) == 0)
			return true;
	return false;
}

static bool
manifest_name_ok(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > MANIFEST_NAME_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '-' &&
		    *s != '_')
			return false;
	return true;
}

/* A lower-case DNS name or dotted IPv4 address: labels of [a-z0-9-],
 * 1..63 bytes, not starting or ending with '-'. */
static bool
manifest_host_ok(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > MANIFEST_HOST_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
		if (c == '-' && label == 0)
			return false;
		label++;
	}
	return true;
}

int
service_parse(const char *s, char host[MANIFEST_HOST_MAX + 1],
	      uint16_t *port, struct err *e)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long p;
	size_t hlen;

	if (colon == NULL)
		return err_set(e, "service '%s' is not HOST:PORT", s);
	hlen = (size_t)(colon - s);
	if (hlen == 0 || hlen > MANIFEST_HOST_MAX)
		return err_set(e, "service '%s': host must be 1..%d bytes", s,
			       MANIFEST_HOST_MAX);
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (!manifest_host_ok(host))
		return err_set(e, "service '%s': host must be a lower-case DNS "
			       "name or IPv4 address", s);
	p = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || p < 1 || p > 65535 ||
	    !isdigit((unsigned char)colon[1]))
		return err_set(e, "service '%s': port must be 1..65535", s);
	*port = (uint16_t)p;
	return 0;
}

/* 1..max bytes, each in the set allowed (plus alphanumerics). */
static bool
manifest_word_ok(const char *s, size_t max, const char *allowed)
{
	size_t len = strlen(s);

	if (len == 0 || len > max)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && strchr(allowed, *s) == NULL)
			return false;
	return true;
}

static int
manifest_qemu_validate(const struct manifest_qemu *q, struct err *e)
{
	size_t i, n;
	json_t *a;

	if (q->args == NULL)
		return err_set(e, "manifest: machine \"qemu\" needs the field "
			       "'qemu'");
	if (!manifest_word_ok(q->version, MANIFEST_QEMU_VERSION_MAX, ".") ||
	    strspn(q->version, "0123456789.") != strlen(q->version))
		return err_set(e, "manifest: 'qemu.version' must be 1..%d "
			       "characters of 0-9 and .",
			       MANIFEST_QEMU_VERSION_MAX);
	if (!manifest_word_ok(q->machine, MANIFEST_QEMU_MACHINE_MAX, ".-_"))
		return err_set(e, "manifest: 'qemu.machine' must be 1..%d "
			       "characters of A-Z a-z 0-9 . - _",
			       MANIFEST_QEMU_MACHINE_MAX);
	if (q->mem_mb < MANIFEST_QEMU_MEM_MIN || q->mem_mb > MANIFEST_QEMU_MEM_MAX)
		return err_set(e, "manifest: 'qemu.mem_mb' must be %d..%d",
			       MANIFEST_QEMU_MEM_MIN, MANIFEST_QEMU_MEM_MAX);
	if (q->state_size == 0 || q->state_size > MANIFEST_QEMU_STATE_MAX)
		return err_set(e, "manifest: 'qemu.state_size' must be 1..%llu",
			       MANIFEST_QEMU_STATE_MAX);
	if (!json_is_array(q->args) || (n = json_array_size(q->args)) == 0 ||
	    n > MANIFEST_QEMU_ARGS_MAX)
		return err_set(e, "manifest: 'qemu.args' must be an array of "
			       "1..%d strings", MANIFEST_QEMU_ARGS_MAX);
	json_array_foreach(q->args, i, a) {
		const char *v = json_string_value(a);
		size_t len = json_string_length(a);

		if (v == NULL || len == 0 || len > MANIFEST_QEMU_ARG_MAX ||
		    strlen(v) != len)
			return err_set(e, "manifest: 'qemu.args[%zu]' must be a "
				       "string of 1..%d bytes", i,
				       MANIFEST_QEMU_ARG_MAX);
		for (; *v; v++)
			if ((unsigned char)*v < 0x20 || (unsigned char)*v > 0x7e)
				return err_set(e, "manifest: 'qemu.args[%zu]' "
					       "must be printable ASCII", i);
	}
	return 0;
}

int
manifest_validate(const struct manifest *m, struct err *e)
{
	char shown[sizeof(m->format)];
	time_t t;

	if (!manifest_name_ok(m->name))
		return err_set(e, "manifest: 'name' must be 1..%d characters "
			       "of A-Z a-z 0-9 . _ - (not starting with . or -)",
			       MANIFEST_NAME_MAX);
	if (rfc3339_parse(m->created, &t) < 0)
		return err_set(e, "manifest: 'created' must be an RFC 3339 UTC "
			       "time like 2026-01-02T03:04:05Z");
	if (m->version < 1 || m->version > MANIFEST_VERSION_MAX)
		return err_set(e, "manifest: 'version' must be 1..%lld",
			       MANIFEST_VERSION_MAX);
	if (!manifest_host_ok(m->host))
		return err_set(e, "manifest: 'service.host' must be a lower-case "
			       "DNS name or IPv4 address of at most %d bytes",
			       MANIFEST_HOST_MAX);
	if (m->port == 0 || m->guest_port == 0)
		return err_set(e, "manifest: service ports must be 1..65535");
	if (strcmp(m->machine, "uml") != 0 && strcmp(m->machine, "qemu") != 0)
		return err_set(e, "manifest: 'machine' must be \"uml\" or "
			       "\"qemu\"");
	if (strcmp(m->format, DELTA_FORMAT_FEDCOW1) != 0 &&
	    strcmp(m->format, DELTA_FORMAT_FEDQEMU2) != 0)
		return err_set(e, "manifest: unknown delta format '%s'",
			       manifest_printable(m->format, shown,
						  sizeof(shown)));
	if (strcmp(m->machine, "qemu") == 0) {
		if (strcmp(m->format, DELTA_FORMAT_FEDQEMU2) != 0)
			return err_set(e, "manifest: machine \"qemu\" needs "
				       "delta format '%s'", DELTA_FORMAT_FEDQEMU2);
		if (manifest_qemu_validate(&m->qemu, e) < 0)
			return -1;
	} else {
		if (strcmp(m->format, DELTA_FORMAT_FEDCOW1) != 0)
			return err_set(e, "manifest: machine \"uml\" needs "
				       "delta format '%s'", DELTA_FORMAT_FEDCOW1);
		if (m->qemu.args != NULL)
			return err_set(e, "manifest: field 'qemu' is only for "
				       "machine \"qemu\"");
	}
	if (m->egress.n > EGRESS_MAX)
		return err_set(e, "manifest: at most %d egress rules", EGRESS_MAX);
	if (!chunkidx_valid_chunk_size(m->delta.chunk_size))
		return err_set(e, "manifest: 'delta.chunk_size' is not a power "
			       "of two in [%u, %u]", CHUNK_SIZE_MIN,
			       CHUNK_SIZE_MAX);
	if (m->delta.size == 0)
		return err_set(e, "manifest: 'delta.size' must be positive");
	if (m->delta.nchunks !=
	    chunkidx_count(m->delta.size, m->delta.chunk_size))
		return err_set(e, "manifest: 'delta.chunks' does not match "
			       "'delta.size'");
	return 0;
}

/* Copy a string member into dst (dstsz bytes); refuse missing or too long. */
static int
manifest_get_string(const json_t *obj, const char *where, const char *key,
		    char *dst, size_t dstsz, struct err *e)
{
	const json_t *v = json_object_get(obj, key);
	size_t len;

	if (v == NULL)
		return err_set(e, "manifest: field '%s%s' is missing", where, key);
	if (!json_is_string(v))
		return err_set(e, "manifest: field '%s%s' must be a string",
			       where, key);
	len = json_string_length(v);
	if (len >= dstsz)
		return err_set(e, "manifest: field '%s%s' is %zu bytes, at most "
			       "%zu allowed", where, key, len, dstsz - 1);
	if (strlen(json_string_value(v)) != len)
		return err_set(e, "manifest: field '%s%s' contains NUL", where,
			       key);
	memcpy(dst, json_string_value(v), len + 1);
	return 0;
}

static int
manifest_get_hash(const json_t *obj, const char *key, uint8_t out[32],
		  struct err *e)
{
	char hex[2 * SHA256_LEN + 2];

	if (manifest_get_string(obj, "", key, hex, sizeof(hex), e) < 0)
		return -1;
	if (!hex_is_sha256(hex))
		return err_set(e, "manifest: field '%s' must be 64 lower-case "
			       "hex digits", key);
	hex_decode(hex, out, SHA256_LEN);
	return 0;
}

static int
manifest_get_int(const json_t *obj, const char *where, const char *key,
		 long long lo, long long hi, long long *out, struct err *e)
{
	const json_t *v = json_object_get(obj, key);

	if (v == NULL)
		return err_set(e, "manifest: field '%s%s' is missing", where, key);
	if (!json_is_integer(v))
		return err_set(e, "manifest: field '%s%s' must be an integer",
			       where, key);
	*out = json_integer_value(v);
	if (*out < lo || *out > hi)
		return err_set(e, "manifest: field '%s%s' is %lld, must be "
			       "%lld..%lld", where, key, *out, lo, hi);
	return 0;
}

/* Refuse members of a nested object that this version does not know. */
static int
manifest_only_keys(const json_t *obj, const char *where,
		   const char *const *allowed, struct err *e)
{
	const char *key;
	char shown[MANIFEST_NAME_MAX + 1];
	json_t *v;

	json_object_foreach((json_t *)obj, key, v) {
		bool ok = false;

		for (int i = 0; allowed[i] != NULL; i++)
			if (strcmp(key, allowed[i]) == 0)
				ok = true;
		if (!ok)
			return err_set(e, "manifest: unknown field '%s%s'", where,
				       manifest_printable(key, shown,
							  sizeof(shown)));
	}
	return 0;
}

static int
manifest_qemu_from_json(const json_t *obj, struct manifest_qemu *q,
			struct err *e)
{
	static const char *const qemu_keys[] = { "args", "machine", "mem_mb",
		"state_size", "version", NULL };
	long long n;

	if (!json_is_object(obj))
		return err_set(e, "manifest: field 'qemu' must be an object");
	if (manifest_only_keys(obj, "qemu.", qemu_keys, e) < 0 ||
	    manifest_get_string(obj, "qemu.", "version", q->version,
				sizeof(q->version), e) < 0 ||
	    manifest_get_string(obj, "qemu.", "machine", q->machine,
				sizeof(q->machine), e) < 0 ||
	    manifest_get_int(obj, "qemu.", "mem_mb", MANIFEST_QEMU_MEM_MIN,
			     MANIFEST_QEMU_MEM_MAX, &n, e) < 0)
		return -1;
	q->mem_mb = (uint32_t)n;
	if (manifest_get_int(obj, "qemu.", "state_size", 1,
			     (long long)MANIFEST_QEMU_STATE_MAX, &n, e) < 0)
		return -1;
	q->state_size = (uint64_t)n;
	if (json_object_get(obj, "args") == NULL)
		return err_set(e, "manifest: field 'qemu.args' is missing");
	if (!json_is_array(json_object_get(obj, "args")))
		return err_set(e, "manifest: field 'qemu.args' must be an array");
	q->args = json_deep_copy(json_object_get(obj, "args"));
	if (q->args == NULL)
		return err_set(e, "manifest: out of memory");
	return 0;
}

static int
manifest_from_json(const json_t *root, struct manifest *m, struct err *e)
{
	static const char *const service_keys[] = { "host", "port",
		"guest_port", NULL };
	static const char *const delta_keys[] = { "format", "size",
		"chunk_size", "chunks", NULL };
	const json_t *service, *delta, *qemu;
	const char *key;
	json_t *v;
	long long n;
	struct err sub;

	if (!json_is_object(root))
		return err_set(e, "manifest: not a JSON object");
	if (manifest_get_string(root, "", "name", m->name, sizeof(m->name), e) < 0 ||
	    manifest_get_hash(root, "owner", m->owner, e) < 0 ||
	    manifest_get_string(root, "", "created", m->created,
				sizeof(m->created), e) < 0 ||
	    manifest_get_int(root, "", "version", 1, MANIFEST_VERSION_MAX, &n,
			     e) < 0)
		return -1;
	m->version = n;
	if ((service = json_object_get(root, "service")) == NULL)
		return err_set(e, "manifest: field 'service' is missing");
	if (!json_is_object(service))
		return err_set(e, "manifest: field 'service' must be an object");
	if (manifest_only_keys(service, "service.", service_keys, e) < 0 ||
	    manifest_get_string(service, "service.", "host", m->host,
				sizeof(m->host), e) < 0 ||
	    manifest_get_int(service, "service.", "port", 1, 65535, &n, e) < 0)
		return -1;
	m->port = (uint16_t)n;
	if (manifest_get_int(service, "service.", "guest_port", 1, 65535, &n,
			     e) < 0)
		return -1;
	m->guest_port = (uint16_t)n;
	if (manifest_get_hash(root, "base", m->base, e) < 0 ||
	    manifest_get_hash(root, "kernel", m->kernel, e) < 0 ||
	    manifest_get_string(root, "", "machine", m->machine,
				sizeof(m->machine), e) < 0)
		return -1;
	if ((delta = json_object_get(root, "delta")) == NULL)
		return err_set(e, "manifest: field 'delta' is missing");
	if (!json_is_object(delta))
		return err_set(e, "manifest: field 'delta' must be an object");
	if (manifest_only_keys(delta, "delta.", delta_keys, e) < 0 ||
	    manifest_get_string(delta, "delta.", "format", m->format,
				sizeof(m->format), e) < 0)
		return -1;
	if (chunkidx_from_json(delta, false, &m->delta, &sub) < 0)
		return err_set(e, "manifest: delta: %s", sub.msg);
	if ((qemu = json_object_get(root, "qemu")) != NULL &&
	    manifest_qemu_from_json(qemu, &m->qemu, e) < 0)
		return -1;
	if ((v = json_object_get(root, "egress")) != NULL &&
	    egress_from_json(v, &m->egress, e) < 0)
		return -1;

	/* keep what a newer writer added */
	json_object_foreach((json_t *)root, key, v) {
		if (manifest_is_known(key))
			continue;
		if (m->extra == NULL && (m->extra = json_object()) == NULL)
			return err_set(e, "manifest: out of memory");
		if (json_object_set(m->extra, key, v) < 0)
			return err_set(e, "manifest: out of memory");
	}
	return manifest_validate(m, e);
}

int
manifest_parse(const char *buf, size_t len, struct manifest *m,
	       struct err *e)
{
	json_error_t jerr;
	json_t *root;
	char *again = NULL, shown[sizeof(jerr.text)];
	size_t again_len = 0;

	memset(m, 0, sizeof(*m));
	if (len > MANIFEST_MAX_BYTES)
		return err_set(e, "manifest: %zu bytes, more than the %u allowed",
			       len, MANIFEST_MAX_BYTES);
	if (memchr(buf, '\n', len) != NULL)
		return err_set(e, "manifest: must be one line");
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return err_set(e, "manifest: invalid JSON at byte %d: %s",
			       jerr.position,
			       manifest_printable(jerr.text, shown, sizeof(shown)));
	if (manifest_from_json(root, m, e) < 0)
		goto bad;
	if ((again = manifest_serialize(m, &again_len, e)) == NULL)
		goto bad;
	if (again_len != len || memcmp(again, buf, len) != 0) {
		err_set(e, "manifest: not in canonical form (compact JSON, keys "
			"sorted, ASCII only)");
		goto bad;
	}
	free(again);
	json_decref(root);
	return 0;
bad:
	free(again);
	json_decref(root);
	manifest_free(m);
	return -1;
}

json_t *
manifest_to_json(const struct manifest *m)
{
	char owner[2 * ED25519_PUB_LEN + 1], base[2 * SHA256_LEN + 1],
	     kernel[2 * SHA256_LEN + 1];
	json_t *root = NULL, *delta;

	hex_encode(m->owner, ED25519_PUB_LEN, owner);
	hex_encode(m->base, SHA256_LEN, base);
	hex_encode(m->kernel, SHA256_LEN, kernel);
	if ((delta = chunkidx_to_json(&m->delta)) == NULL)
		return NULL;
	if (json_object_set_new(delta, "format", json_string(m->format)) < 0)
		goto bad;
	root = json_pack("{s:s,s:s,s:s,s:I,s:{s:s,s:i,s:i},s:s,s:s,s:s,s:O}",
			 "name", m->name, "owner", owner, "created", m->created,
			 "version", (json_int_t)m->version,
			 "service", "host", m->host, "port", (int)m->port,
			 "guest_port", (int)m->guest_port,
			 "base", base, "kernel", kernel, "machine", m->machine,
			 "delta", delta);
	if (root == NULL)
		goto bad;
	if (m->qemu.args != NULL &&
	    json_object_set_new(root, "qemu", json_pack("{s:O,s:s,s:i,s:I,s:s}",
			"args", m->qemu.args, "machine", m->qemu.machine,
			"mem_mb", (int)m->qemu.mem_mb,
			"state_size", (json_int_t)m->qemu.state_size,
			"version", m->qemu.version)) < 0)
		goto bad;
	if (m->egress.n > 0 &&
	    json_object_set_new(root, "egress", egress_to_json(&m->egress)) < 0)
		goto bad;
	if (m->extra != NULL) {
		const char *key;
		json_t *v;

		json_object_foreach(m->extra, key, v) {
			if (manifest_is_known(key))
				continue;
			if (json_object_set(root, key, v) < 0)
				goto bad;
		}
	}
	json_decref(delta);
	return root;
bad:
	json_decref(delta);
	json_decref(root);
	return NULL;
}

char *
manifest_serialize(const struct manifest *m, size_t *len, struct err *e)
{
	json_t *root;
	char *s;

	if (manifest_validate(m, e) < 0)
		return NULL;
	if ((root = manifest_to_json(m)) == NULL) {
		err_set(e, "manifest: out of memory");
		return NULL;
	}
	s = json_dumps(root, MANIFEST_DUMP_FLAGS);
	json_decref(root);
	if (s == NULL) {
		err_set(e, "manifest: cannot serialise");
		return NULL;
	}
	*len = strlen(s);
	if (*len > MANIFEST_MAX_BYTES) {
		err_set(e, "manifest: %zu bytes, more than the %u allowed", *len,
			MANIFEST_MAX_BYTES);
		free(s);
		return NULL;
	}
	return s;
}

void
manifest_id(const char *bytes, size_t len, uint8_t id[SHA256_LEN])
{
	sha256(bytes, len, id);
}

int
manifest_check_version(const struct manifest *m, int64_t newest_seen,
		       struct err *e)
{
	if (newest_seen >= 0 && m->version < newest_seen)
		return err_set(e, "version %" PRId64 " of %s:%u is older than "
			       "version %" PRId64 " already seen (rollback "
			       "refused)", m->version, m->host, m->port,
			       newest_seen);
	return 0;
}

void
manifest_free(struct manifest *m)
{
	chunkidx_free(&m->delta);
	json_decref(m->qemu.args);
	m->qemu.args = NULL;
	json_decref(m->extra);
	m->extra = NULL;
}
